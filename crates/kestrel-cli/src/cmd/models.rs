use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;
use kestrel_models::stats::StatsCache;
use kestrel_models::{ModelSpec, REGISTRY};
use serde::Serialize;

#[derive(Args, Debug)]
#[command(
    after_help = "MACs are multiply-accumulates of the convolutions and linear layers (and attention \
matmuls) that run in one forward pass at the default input, batch 1; FLOPs ≈ 2 × MACs.\n\
Counting runs each model once and is cached per kestrel binary in ~/.cache/kestrel/."
)]
pub struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only models whose name or family contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the MAC count (no forward passes; params only).
    #[arg(long)]
    pub no_macs: bool,
    /// List the pretrained tags (`NAME.TAG`, timm's default first) with their data configs
    /// instead of the models.
    #[arg(long)]
    pub tags: bool,
}

#[derive(Serialize)]
struct TagRow {
    name: String,
    default: bool,
    #[serde(flatten)]
    data: kestrel_models::DataConfig,
}

fn print_tags(specs: &[&ModelSpec], json: bool) -> Result<()> {
    let rows: Vec<TagRow> = specs
        .iter()
        .flat_map(|s| {
            s.tags.iter().enumerate().map(|(i, t)| TagRow {
                name: format!("{}.{}", s.name, t.tag),
                default: i == 0,
                data: (t.data)(),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<36} {:>12} {:>6} {:<9} {:>12} {:>9}",
        "tag", "input", "crop", "interp", "test input", "test crop"
    );
    let size = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
    for r in rows {
        println!(
            "{:<36} {:>12} {:>6.3} {:<9} {:>12} {:>9}",
            format!("{}{}", r.name, if r.default { " *" } else { "" }),
            size(r.data.input_size),
            r.data.crop_pct,
            r.data.interpolation,
            r.data
                .test_input_size
                .map(size)
                .unwrap_or_else(|| "-".into()),
            r.data
                .test_crop_pct
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    println!("(* = the default: the bare name's data config)");
    Ok(())
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    family: &'static str,
    aliases: &'static [&'static str],
    params: usize,
    /// Multiply-accumulates at the default input, batch 1.
    macs: Option<u64>,
    gmacs: Option<f64>,
    num_classes: usize,
    input_size: [usize; 3],
    mean: Vec<f32>,
    std: Vec<f32>,
    crop_pct: f64,
    interpolation: String,
    crop_mode: String,
}

pub fn run(a: ModelsArgs) -> Result<()> {
    let specs: Vec<&ModelSpec> = REGISTRY
        .iter()
        .filter(|s| {
            a.filter
                .as_ref()
                .is_none_or(|f| s.name.contains(f.as_str()) || s.family.contains(f.as_str()))
        })
        .collect();
    if a.tags {
        return print_tags(&specs, a.json);
    }
    let mut cache = StatsCache::open(StatsCache::default_path());
    let progress = std::io::stderr().is_terminal();
    let mut counted = false;
    let mut rows = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let with_macs = !a.no_macs;
        if progress && cache.get(spec, with_macs).is_none() {
            eprint!("\rcounting {}/{}: {:<32}", i + 1, specs.len(), spec.name);
            counted = true;
        }
        let stats = cache.get_or_measure(spec, with_macs);
        let dc = spec.data_config();
        rows.push(Row {
            name: spec.name,
            family: spec.family,
            aliases: spec.aliases,
            params: stats.params,
            macs: stats.macs,
            gmacs: stats.macs.map(|m| m as f64 / 1e9),
            num_classes: spec.default_num_classes,
            input_size: dc.input_size,
            mean: dc.mean,
            std: dc.std,
            crop_pct: dc.crop_pct,
            interpolation: dc.interpolation,
            crop_mode: dc.crop_mode,
        });
    }
    if counted {
        eprint!("\r{:60}\r", "");
    }
    cache.save();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<32} {:<12} {:>12} {:>8} {:>8} {:>12} {:>6} {:<9}",
        "model", "family", "params", "GMACs", "classes", "input", "crop", "interp"
    );
    for r in rows {
        println!(
            "{:<32} {:<12} {:>12} {:>8} {:>8} {:>12} {:>6.3} {:<9}",
            r.name,
            r.family,
            r.params,
            r.gmacs
                .map(|g| format!("{g:.3}"))
                .unwrap_or_else(|| "-".into()),
            r.num_classes,
            format!(
                "{}x{}x{}",
                r.input_size[0], r.input_size[1], r.input_size[2]
            ),
            r.crop_pct,
            r.interpolation
        );
    }
    Ok(())
}
