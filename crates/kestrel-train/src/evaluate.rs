//! Evaluating a checkpoint on a dataset: its eval transform, batched inference and the
//! kestrel-eval report.

use std::sync::Arc;

use burn::prelude::*;
use kestrel_data::loader::{Loader, LoaderConfig, Sampler};
use kestrel_data::Dataset;
use kestrel_eval::EvalReport;

use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::infer::{predict_with, Predictions};
use kestrel_deploy::EngineKind;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub batch_size: usize,
    /// Skip unreadable images (counted in the report) instead of failing.
    pub skip_bad_images: bool,
    /// Images already skipped before this evaluation (while scanning or training), added to
    /// the report's count.
    pub skipped_before: usize,
    /// The inference engine (the fast one falls back to burn for models it does not cover).
    pub engine: EngineKind,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 256,
            skip_bad_images: false,
            skipped_before: 0,
            engine: EngineKind::Fast,
        }
    }
}

pub struct Evaluation {
    pub report: EvalReport,
    pub predictions: Predictions,
    /// Why the fast engine was not used, when it was asked for and fell back to burn.
    pub engine_notice: Option<String>,
}

/// Runs `checkpoint` over `dataset` (described as `dataset_name` in errors) and computes the
/// report. The dataset must have the checkpoint's classes.
pub fn evaluate_checkpoint(
    checkpoint: &Checkpoint,
    dataset: Arc<dyn Dataset>,
    dataset_name: &str,
    opts: &EvalOptions,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let class_names = &checkpoint.meta.class_names;
    let dataset_classes = dataset.class_names().len();
    if class_names.len() != dataset_classes {
        return Err(TrainError::Checkpoint {
            path: checkpoint.dir.clone(),
            reason: format!(
                "the checkpoint has {} classes but {dataset_name} has {dataset_classes}",
                class_names.len()
            ),
        });
    }
    let cfg = LoaderConfig {
        batch_size: opts.batch_size,
        shuffle: false,
        drop_last: false,
        seed: 0,
        num_workers: 0,
        prefetch_batches: 2,
        skip_bad_images: opts.skip_bad_images,
        sampler: Sampler::Sequential,
    };
    let loader = Loader::new(dataset, Arc::new(checkpoint.meta.eval_transform()?), cfg)?;
    let (runner, engine_notice) = checkpoint.runner(device, opts.engine)?;
    let predictions = predict_with(&runner, &loader, device)?;
    let report = EvalReport::compute(&predictions.labels, &predictions.probs, class_names)?
        .with_skipped_images(Some(opts.skipped_before + loader.skipped()));
    Ok(Evaluation {
        report,
        predictions,
        engine_notice,
    })
}
