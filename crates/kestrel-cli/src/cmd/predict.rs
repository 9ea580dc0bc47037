use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_data::image_files_under;
use kestrel_eval::top_k_classes;

use super::common::{engine_notice, EngineArgs};
use super::source::{load, ModelSourceArgs};
use crate::device::{parse_device, DEVICE_HELP};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kestrel predict --checkpoint runs/lenet5 digit.png\n  kestrel predict --model resnet50 --weights resnet50.safetensors cat.jpg --json\n  kestrel predict --checkpoint runs/resnet8_cifar photos/   # every image under photos/"
)]
pub struct PredictArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Images to classify (JPEG, PNG, WebP, BMP, GIF); a folder stands for every image in it,
    /// recursively.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Predict with a randomly initialised --model (no --weights): only for trying things out.
    #[arg(long, conflicts_with_all = ["weights", "checkpoint"])]
    pub random_weights: bool,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub precision: crate::device::PrecisionArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(serde::Serialize)]
struct Ranked {
    class: String,
    index: usize,
    probability: f32,
}

#[derive(serde::Serialize)]
struct Prediction {
    image: String,
    top: Vec<Ranked>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    let mut device = parse_device(&a.device)?;
    a.precision.configure(&mut device, &a.device)?;
    a.engine.apply()?;
    if a.source.model.is_some() && a.source.weights.is_none() {
        if !a.random_weights {
            anyhow::bail!(
                "--model {} without --weights would predict with random weights; give --weights \
                 FILE (or --random-weights to try the model untrained)",
                a.source.model.as_deref().unwrap_or_default()
            );
        }
        eprintln!("warning: --random-weights: these predictions come from an untrained model");
    }
    let mut images = Vec::new();
    for path in &a.images {
        if path.is_dir() {
            images.extend(image_files_under(path)?);
        } else {
            images.push(path.clone());
        }
    }
    let loaded = load(&a.source, &device)?;
    let (runner, notice) = loaded.runner(&device, a.engine.engine);
    engine_notice(&loaded.name, notice);
    let mut results = Vec::new();
    for path in &images {
        let probs = loaded
            .classify_with(&runner, decode_image_file(path)?)
            .with_context(|| format!("{}", path.display()))?;
        let top = top_k_classes(&probs, a.top_k)
            .into_iter()
            .map(|i| Ranked {
                class: loaded.class_names[i].clone(),
                index: i,
                probability: probs[i],
            })
            .collect();
        results.push(Prediction {
            image: path.display().to_string(),
            top,
        });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!("{}", r.image);
            for (rank, t) in r.top.iter().enumerate() {
                println!(
                    "  {}. {:<28} {:7.3}%",
                    rank + 1,
                    t.class,
                    100.0 * t.probability
                );
            }
        }
    }
    Ok(())
}
