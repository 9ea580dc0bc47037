use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kestrel_data::loader::{Loader, LoaderConfig, Sampler};
use kestrel_data::splits::Splits;
use kestrel_eval::EvalReport;
use kestrel_train::infer::predict;
use kestrel_train::Checkpoint;

use super::common::DataArgs;
use crate::device::{parse_device, DEVICE_HELP};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EvalSplit {
    Train,
    Val,
    Test,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder written by `kestrel train` (holds checkpoint.json and model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split of the dataset to evaluate.
    #[arg(long, value_enum, default_value = "test")]
    pub split: EvalSplit,
    /// Write one CSV row per sample: true label, predicted label, then the class probabilities.
    #[arg(long, value_name = "FILE.csv")]
    pub save_predictions: Option<PathBuf>,
    /// Folder for metrics.json (default: <checkpoint>/eval-<split>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let splits = a.data.open()?;
    let split_name = format!("{:?}", a.split).to_lowercase();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.checkpoint.join(format!("eval-{split_name}")));
    evaluate_checkpoint(
        &a.checkpoint,
        &splits,
        a.split,
        &out,
        a.save_predictions.as_deref(),
        a.batch_size,
        splits.skipped_at_scan,
        a.data.skip_bad_images,
        &device,
    )
}

/// Runs the checkpoint over one split, prints the report and writes `metrics.json` into `out`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_checkpoint(
    checkpoint: &Path,
    splits: &Splits,
    split: EvalSplit,
    out: &Path,
    save_predictions: Option<&Path>,
    batch_size: usize,
    skipped_before: usize,
    skip_bad_images: bool,
    device: &burn::prelude::Device,
) -> Result<()> {
    let ckpt = Checkpoint::open(checkpoint)?;
    if ckpt.meta.class_names.len() != splits.class_names.len() {
        anyhow::bail!(
            "{}: checkpoint has {} classes but {} has {}",
            checkpoint.display(),
            ckpt.meta.class_names.len(),
            splits.description,
            splits.class_names.len()
        );
    }
    let model = ckpt.load_model(device)?;
    let dataset = match split {
        EvalSplit::Train => splits.train.clone(),
        EvalSplit::Val => splits.val.clone(),
        EvalSplit::Test => splits.test.clone(),
    };
    let cfg = LoaderConfig {
        batch_size,
        shuffle: false,
        drop_last: false,
        seed: 0,
        num_workers: 0,
        prefetch_batches: 2,
        skip_bad_images,
        sampler: Sampler::Sequential,
    };
    let loader = Loader::new(dataset.clone(), Arc::new(ckpt.meta.eval_transform()?), cfg)?;
    let preds = predict(&model, &loader, device)?;
    let mut report = EvalReport::compute(&preds.labels, &preds.probs, &ckpt.meta.class_names)?;
    report.skipped_images = Some(skipped_before + loader.skipped());
    println!(
        "\nevaluation on the {:?} split of {}:",
        split, splits.description
    );
    println!("{}", report.to_table());
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let metrics_path = out.join("metrics.json");
    report.write_json(&metrics_path)?;
    println!("metrics written to {}", metrics_path.display());
    if let Some(csv) = save_predictions {
        kestrel_eval::write_predictions_csv(
            csv,
            &preds.labels,
            &preds.probs,
            preds.num_classes,
            &ckpt.meta.class_names,
        )?;
        println!("predictions written to {}", csv.display());
    }
    Ok(())
}
