use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kestrel_train::{evaluate_checkpoint, Checkpoint, EvalOptions};

use super::common::{engine_notice, DataArgs, EngineArgs};
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
    #[arg(long, default_value_t = EvalOptions::default().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    a.engine.apply()?;
    let splits = a.data.open()?;
    let split_name = format!("{:?}", a.split).to_lowercase();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.checkpoint.join(format!("eval-{split_name}")));
    let dataset = match a.split {
        EvalSplit::Train => splits.train.clone(),
        EvalSplit::Val => splits.val.clone(),
        EvalSplit::Test => splits.test.clone(),
    };
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let opts = EvalOptions {
        batch_size: a.batch_size,
        skip_bad_images: a.data.skip_bad_images,
        skipped_before: splits.skipped_at_scan,
        engine: a.engine.engine,
    };
    let eval = evaluate_checkpoint(&ckpt, dataset, &splits.description, &opts, &device)?;
    engine_notice(&ckpt.meta.model, eval.engine_notice.clone());
    println!(
        "\nevaluation on the {:?} split of {}:",
        a.split, splits.description
    );
    println!("{}", eval.report.to_table());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let metrics_path = out.join("metrics.json");
    eval.report.write_json(&metrics_path)?;
    println!("metrics written to {}", metrics_path.display());
    if let Some(csv) = &a.save_predictions {
        let p = &eval.predictions;
        kestrel_eval::write_predictions_csv(
            csv,
            &p.labels,
            &p.probs,
            p.num_classes,
            &ckpt.meta.class_names,
        )?;
        println!("predictions written to {}", csv.display());
    }
    Ok(())
}
