use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use kestrel_data::loader::{Loader, LoaderConfig, Sampler};
use kestrel_data::recipe::{Recipe, TrainTransform};

use super::common::DataArgs;

/// Measures the input pipeline alone: decode + the recipe's train transforms + batching.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel data-bench --data photos/ --recipe randaugment --workers 2"
)]
pub struct DataBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Recipe: a preset name with optional overrides (default: RandomResizedCrop 224, flip,
    /// RandAugment(2, 9), normalise).
    #[arg(long, default_value = "randaugment")]
    pub recipe: String,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Loader threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Epochs over the training split (the first one warms the page cache).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Also write the result as JSON here.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct DataBenchResult {
    recipe: String,
    images: usize,
    batch_size: usize,
    workers: usize,
    epoch_images_per_second: Vec<f64>,
    best_images_per_second: f64,
    skipped: usize,
}

pub fn run(a: DataBenchArgs) -> Result<()> {
    let splits = a.data.open()?;
    let recipe = Recipe::parse_cli(&a.recipe)?;
    let transform = Arc::new(TrainTransform::from_recipe(&recipe)?);
    let cfg = LoaderConfig {
        batch_size: a.batch_size,
        shuffle: true,
        drop_last: false,
        seed: 0,
        num_workers: a.workers,
        prefetch_batches: 2,
        skip_bad_images: a.data.skip_bad_images,
        sampler: Sampler::Shuffle,
    };
    let loader = Loader::new(splits.train.clone(), transform, cfg)?;
    let mut rates = Vec::new();
    for epoch in 0..a.epochs.max(1) {
        let start = Instant::now();
        let mut n = 0usize;
        for batch in loader.iter_epoch(epoch) {
            n += batch?.labels.len();
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("epoch {epoch}: {n} images, {rate:.1} images/s");
        rates.push(rate);
    }
    let result = DataBenchResult {
        recipe: a.recipe.clone(),
        images: splits.train.len(),
        batch_size: a.batch_size,
        workers: a.workers,
        best_images_per_second: rates.iter().cloned().fold(0.0, f64::max),
        epoch_images_per_second: rates,
        skipped: loader.skipped(),
    };
    println!(
        "best: {:.1} images/s ({} workers)",
        result.best_images_per_second, a.workers
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}
