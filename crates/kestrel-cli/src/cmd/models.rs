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
    /// Only models whose name, alias or family matches this glob (`'resnet*'`, `'*_cifar'`),
    /// ignoring case; text without wildcards matches anywhere in the name. No match is an error.
    #[arg(long, value_name = "GLOB")]
    pub filter: Option<String>,
    /// Skip the MAC count (no forward passes; params only).
    #[arg(long)]
    pub no_macs: bool,
    /// List the pretrained tags (`NAME.TAG`, timm's default first) with their data configs
    /// instead of the models.
    #[arg(long)]
    pub tags: bool,
}

/// The models whose name, alias or family matches the glob `filter`, ignoring case.
pub fn filtered(filter: &str) -> Result<Vec<&'static ModelSpec>> {
    let f = filter.trim().to_ascii_lowercase();
    let glob = if f.contains(['*', '?', '[']) {
        f
    } else {
        format!("*{f}*")
    };
    let pattern = glob::Pattern::new(&glob)
        .map_err(|e| anyhow::anyhow!("--filter '{filter}': not a glob pattern: {e}"))?;
    let opts = glob::MatchOptions {
        case_sensitive: false,
        ..glob::MatchOptions::new()
    };
    let hit = |s: &str| pattern.matches_with(s, opts);
    Ok(REGISTRY
        .iter()
        .filter(|s| hit(s.name) || hit(s.family) || s.aliases.iter().any(|a| hit(a)))
        .collect())
}

/// A count as people write it: 11.7M, 61.1k, 950.
pub fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
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
    let specs: Vec<&ModelSpec> = match &a.filter {
        None => REGISTRY.iter().collect(),
        Some(f) => {
            let specs = filtered(f)?;
            if specs.is_empty() {
                anyhow::bail!(
                    "--filter '{f}': no model matches (names are like resnet50, \
                     efficientnet_lite0, resnet20_cifar; try --filter 'resnet*')"
                );
            }
            specs
        }
    };
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
        "{:<32} {:<12} {:>8} {:>8} {:>8} {:>12} {:>6} {:<9} {:<9} mean / std",
        "model", "family", "params", "GMACs", "classes", "input", "crop", "interp", "crop mode"
    );
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for r in rows {
        println!(
            "{:<32} {:<12} {:>8} {:>8} {:>8} {:>12} {:>6.3} {:<9} {:<9} {} / {}",
            r.name,
            r.family,
            human_count(r.params),
            r.gmacs
                .map(|g| format!("{g:.3}"))
                .unwrap_or_else(|| "-".into()),
            r.num_classes,
            format!(
                "{}x{}x{}",
                r.input_size[0], r.input_size[1], r.input_size[2]
            ),
            r.crop_pct,
            r.interpolation,
            r.crop_mode,
            list(&r.mean),
            list(&r.std)
        );
    }
    Ok(())
}
