use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kestrel_train::{evaluate_checkpoint, open_eval_data, Checkpoint, EvalOptions, Split};

use super::common::{at_least_one, engine_notice, DataArgs, EngineArgs, ImgSizeArg};
use crate::device::{parse_device, DEVICE_HELP};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EvalSplit {
    Train,
    Val,
    Test,
}

impl From<EvalSplit> for Split {
    fn from(s: EvalSplit) -> Split {
        match s {
            EvalSplit::Train => Split::Train,
            EvalSplit::Val => Split::Val,
            EvalSplit::Test => Split::Test,
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Which images are scored:\n  \
  without --data: the dataset the checkpoint was trained on, split as it was then;\n  \
  that dataset as --data: the same splits (the recorded validation fraction and seed);\n  \
  a folder of class folders as --data: all of it, as the test set (its class folders must be\n  \
  among the checkpoint's classes); a root with train/ val/ test/ folders: those folders.")]
pub struct EvalArgs {
    /// Checkpoint folder written by `kestrel train` (holds checkpoint.json and model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split of the dataset to evaluate.
    #[arg(long, value_enum, default_value = "test")]
    pub split: EvalSplit,
    /// Write one CSV row per image: its path, true and predicted label, the top-5 classes,
    /// then every class probability.
    #[arg(long, value_name = "FILE.csv")]
    pub save_predictions: Option<PathBuf>,
    /// Folder for metrics.json (default: <checkpoint>/eval-<split>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Images per inference batch.
    #[arg(long, default_value_t = EvalOptions::default().batch_size, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Flip test-time augmentation: each image scores the mean of its own and its horizontal
    /// mirror's class probabilities (what `train --tta-flip` reports).
    #[arg(long)]
    pub tta_flip: bool,
    #[command(flatten)]
    pub img_size: ImgSizeArg,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub precision: crate::device::PrecisionArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let mut device = parse_device(&a.device)?;
    a.precision.configure(&mut device, &a.device)?;
    a.engine.apply()?;
    if a.data.val_dir.is_some() {
        anyhow::bail!(
            "--val-dir is for training; to evaluate on a folder, give it as --data (it is then \
             the test set)"
        );
    }
    let split: Split = a.split.into();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.checkpoint.join(format!("eval-{}", split.name())));
    let mut ckpt = Checkpoint::open(&a.checkpoint)?;
    if let Some(hw) = a.img_size.hw() {
        ckpt.set_input_hw(hw, &device)?;
    }
    let data = open_eval_data(
        &ckpt,
        a.data.data.as_deref(),
        split,
        a.data.val_fraction()?,
        a.data.skip_bad_images,
    )?;
    let opts = EvalOptions {
        batch_size: a.batch_size,
        skip_bad_images: a.data.skip_bad_images,
        skipped_before: data.skipped_at_scan,
        engine: a.engine.engine,
        tta_flip: a.tta_flip,
    };
    let eval = evaluate_checkpoint(
        &ckpt,
        data.dataset.clone(),
        &data.description,
        &opts,
        &device,
    )?;
    engine_notice(&ckpt.meta.model, eval.engine_notice.clone());
    println!("\nevaluation on {}:", data.description);
    println!("{}", eval.report.to_table());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let metrics_path = out.join("metrics.json");
    eval.report.write_json(&metrics_path)?;
    println!("metrics written to {}", metrics_path.display());
    if let Some(csv) = &a.save_predictions {
        let p = &eval.predictions;
        let images: Vec<String> = p.indices.iter().map(|&i| data.dataset.source(i)).collect();
        kestrel_eval::write_predictions_csv(
            csv,
            Some(&images),
            &p.labels,
            &p.probs,
            p.num_classes,
            &ckpt.meta.class_names,
        )?;
        println!("predictions written to {}", csv.display());
    }
    Ok(())
}
