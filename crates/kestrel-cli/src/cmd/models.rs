use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::*;
use clap::Args;
use kestrel_models::layers::count_macs;
use kestrel_models::{ModelSpec, REGISTRY};
use serde::{Deserialize, Serialize};

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
}

#[derive(Serialize, Deserialize, Clone)]
struct Stats {
    params: usize,
    macs: Option<u64>,
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

/// Cache file keyed by the binary's build (size and mtime), so a rebuilt model recounts.
fn cache_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let home = std::env::var_os("HOME")?;
    Some(
        PathBuf::from(home)
            .join(".cache/kestrel")
            .join(format!("model-stats-{}-{mtime}.json", meta.len())),
    )
}

fn measure(spec: &ModelSpec, with_macs: bool) -> Stats {
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device);
    let params = model.num_trainable_params();
    let macs = with_macs.then(|| {
        let [c, h, w] = spec.data_config().input_size;
        count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &device))).1
    });
    Stats { params, macs }
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
    let cache_file = cache_path();
    let mut cache: BTreeMap<String, Stats> = cache_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut dirty = false;
    let progress = std::io::stderr().is_terminal();
    let mut rows = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let cached = cache
            .get(spec.name)
            .filter(|s| a.no_macs || s.macs.is_some())
            .cloned();
        let stats = match cached {
            Some(s) => s,
            None => {
                if progress {
                    eprint!("\rcounting {}/{}: {:<28}", i + 1, specs.len(), spec.name);
                }
                let s = measure(spec, !a.no_macs);
                cache.insert(spec.name.to_string(), s.clone());
                dirty = true;
                s
            }
        };
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
    if dirty {
        if progress {
            eprint!("\r{:60}\r", "");
        }
        if let Some(p) = &cache_file {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(p, serde_json::to_string(&cache)?);
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:>12} {:>8} {:>8} {:>12} {:>6} {:<9}",
        "model", "family", "params", "GMACs", "classes", "input", "crop", "interp"
    );
    for r in rows {
        println!(
            "{:<24} {:<12} {:>12} {:>8} {:>8} {:>12} {:>6.3} {:<9}",
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
