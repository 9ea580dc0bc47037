//! Evaluating a checkpoint on a dataset: its eval transform, batched inference and the
//! kestrel-eval report.

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use kestrel_data::loader::{Loader, LoaderConfig, Sampler};
use kestrel_data::sample_transform::{Chw, SampleTransform};
use kestrel_data::splits::{has_split_folders, is_packed_dataset, open_dataset, open_eval_folder};
use kestrel_data::transforms::EvalTransform;
use kestrel_data::Image;
use kestrel_data::{Dataset, SplitOptions};
use kestrel_eval::EvalReport;
use rand::rngs::StdRng;

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
    /// Flip test-time augmentation: each image's class probabilities are the mean of its own
    /// and its horizontal mirror's, as airbench evaluates.
    pub tta_flip: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 256,
            skip_bad_images: false,
            skipped_before: 0,
            engine: EngineKind::Fast,
            tta_flip: false,
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
    let dataset_classes = dataset.class_names();
    if class_names.as_slice() != dataset_classes {
        return Err(TrainError::Checkpoint {
            path: checkpoint.dir.clone(),
            reason: format!(
                "the checkpoint's {} classes [{}] are not those of {dataset_name}: {} classes [{}]",
                class_names.len(),
                class_names.join(", "),
                dataset_classes.len(),
                dataset_classes.join(", ")
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
    let eval_tf = checkpoint.meta.eval_transform()?;
    let loader = Loader::new(dataset.clone(), Arc::new(eval_tf.clone()), cfg.clone())?;
    let (runner, engine_notice) = checkpoint.runner(device, opts.engine)?;
    let mut predictions = predict_with(&runner, &loader, device)?;
    if opts.tta_flip {
        let mirrored = Loader::new(dataset, Arc::new(Mirrored(eval_tf)), cfg)?;
        let flipped = predict_with(&runner, &mirrored, device)?;
        // Both passes read the same images in the same order (a skipped image is skipped twice).
        assert_eq!(
            flipped.indices, predictions.indices,
            "same sequential order"
        );
        for (p, q) in predictions.probs.iter_mut().zip(&flipped.probs) {
            *p = 0.5 * (*p + q);
        }
    }
    let report = EvalReport::compute(&predictions.labels, &predictions.probs, class_names)?
        .with_skipped_images(Some(opts.skipped_before + loader.skipped()));
    Ok(Evaluation {
        report,
        predictions,
        engine_notice,
    })
}

/// The eval transform, then a horizontal mirror of the tensor: the second view of flip TTA.
struct Mirrored(EvalTransform);

impl SampleTransform for Mirrored {
    fn apply(&self, image: Image, rng: &mut StdRng) -> kestrel_data::error::Result<Chw> {
        let mut x = self.0.apply(image, rng)?;
        for row in x.data.chunks_exact_mut(x.width) {
            row.reverse();
        }
        Ok(x)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        self.0.output_shape()
    }
}

/// The split of a dataset to evaluate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// The images [`open_eval_data`] chose, labelled with the checkpoint's classes.
pub struct EvalData {
    pub dataset: Arc<dyn Dataset>,
    /// What was scored, for the report header and errors ("the test split (data/test) of ...").
    pub description: String,
    pub skipped_at_scan: usize,
}

/// The data `kestrel eval` scores `checkpoint` on.
///
/// * No `data`: the dataset the checkpoint recorded at training time, split as it was then.
/// * `data` is that dataset: the same splits (so "val" is the run's validation split; a
///   `val_fraction` other than the recorded one is an error).
/// * Another IDX/CIFAR dataset, or a folder with `train/` `val/` `test/` folders: its splits.
/// * Another folder of class folders: the test set, whole (it has no train or val split).
///
/// A folder's class names must be among the checkpoint's.
pub fn open_eval_data(
    checkpoint: &Checkpoint,
    data: Option<&Path>,
    split: Split,
    val_fraction: Option<f64>,
    skip_bad_images: bool,
) -> Result<EvalData, TrainError> {
    let recorded = checkpoint.meta.data.as_ref();
    let bad = |reason: String| TrainError::Config(reason);
    let opts = match (recorded, data) {
        (Some(r), d) if d.is_none() || r.is_path(d) => {
            if let Some(v) = val_fraction.filter(|&v| v != r.val_fraction) {
                return Err(bad(format!(
                    "--val-fraction {v}: {} was trained with a validation fraction of {} of this \
                     dataset; the splits are the recorded ones (drop --val-fraction)",
                    checkpoint.dir.display(),
                    r.val_fraction
                )));
            }
            r.split_options(skip_bad_images)
        }
        (None, None) => {
            return Err(bad(format!(
                "{} does not record the dataset it was trained on (it is from an older kestrel); \
                 give --data DIR",
                checkpoint.dir.display()
            )))
        }
        (_, Some(root)) => {
            let opts = SplitOptions {
                val_fraction: val_fraction
                    .or(recorded.map(|r| r.val_fraction))
                    .unwrap_or(SplitOptions::default().val_fraction),
                skip_bad_images,
                ..SplitOptions::default()
            };
            let folder = root.is_dir() && !is_packed_dataset(root);
            if folder && (split == Split::Test || !has_split_folders(root)) {
                if split != Split::Test {
                    return Err(bad(format!(
                        "--split {}: {} is a folder of class folders, which has no {} split; \
                         it is evaluated whole as the test set (--split test)",
                        split.name(),
                        root.display(),
                        split.name()
                    )));
                }
                let folder = open_eval_folder(root, &checkpoint.meta.class_names, skip_bad_images)?;
                let description = format!(
                    "ImageFolder {} ({} images, the test set)",
                    folder.root().display(),
                    folder.len()
                );
                return Ok(EvalData {
                    skipped_at_scan: folder.skipped(),
                    dataset: Arc::new(folder),
                    description,
                });
            }
            opts
        }
        (Some(_), None) => unreachable!("the first arm takes every recorded source without --data"),
    };
    let path = data
        .map(Path::to_path_buf)
        .or_else(|| recorded.and_then(|r| r.path.clone()));
    let splits = open_dataset(path.as_deref(), &opts)?;
    let (dataset, origin) = match split {
        Split::Train => (splits.train.clone(), "training split".to_string()),
        Split::Val => (splits.val.clone(), splits.val_origin.clone()),
        Split::Test => (splits.test.clone(), splits.test_origin.clone()),
    };
    Ok(EvalData {
        description: format!(
            "the {} split ({origin}, {} images) of {}",
            split.name(),
            dataset.len(),
            splits.description
        ),
        dataset,
        skipped_at_scan: splits.skipped_at_scan,
    })
}
