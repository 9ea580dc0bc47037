//! The training loop: seeded loader, cross-entropy, optimizer step, per-step LR schedule,
//! validation after each epoch, a progress bar, a JSON-lines log and the best checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_data::loader::{mix_seed, Loader, LoaderConfig, Sampler};
use kestrel_data::mixup::Mixup;
use kestrel_data::recipe::{Recipe, TrainTransform};
use kestrel_data::splits::Splits;
use kestrel_data::SampleTransform;
use kestrel_eval::EvalReport;
use kestrel_models::{BuildOptions, Model};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointMeta, FORMAT};
use crate::data_config::{
    basic_train_transform, eval_transform, photo_recipe, resolve_data_config,
};
use crate::error::TrainError;
use crate::evaluate::{evaluate_checkpoint, EvalOptions};
use crate::infer::{batch_to_tensor, predict};
use crate::loss::{smoothed_one_hot, targets_tensor, training_loss, LossKind};
use crate::optim::{Optimizer, OptimizerKind};
use crate::schedule::{Schedule, ScheduleKind, SchedulePer};

/// Missing keys take their default (a config from an older kestrel still loads).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub optimizer: OptimizerKind,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f64,
    pub label_smoothing: f32,
    // Optimizer, schedule and loss settings: see optim::OptimizerConfig, schedule::ScheduleConfig
    // and loss.rs for what each means.
    pub dampening: f64,
    pub opt_betas: [f64; 2],
    pub opt_eps: Option<f64>,
    pub rmsprop_alpha: f64,
    pub rmsprop_centered: bool,
    pub lamb_max_grad_norm: Option<f64>,
    pub lamb_trust_clip: bool,
    pub lamb_always_adapt: bool,
    pub lamb_grad_averaging: bool,
    pub schedule_per: SchedulePer,
    pub warmup_lr: Option<f64>,
    pub decay_epochs: f64,
    pub decay_milestones: Vec<f64>,
    pub decay_rate: f64,
    pub restart_epochs: f64,
    pub restart_mult: f64,
    pub restart_decay: f64,
    pub poly_power: f64,
    pub onecycle_pct: f64,
    pub onecycle_div: f64,
    pub loss: LossKind,
    pub bce_target_threshold: Option<f32>,
    /// Random-crop padding in pixels (0 = off) and horizontal flips: the basic augmentation.
    pub crop_padding: usize,
    pub hflip: bool,
    pub seed: u64,
    /// Loader threads (0 = all cores).
    pub workers: usize,
    pub skip_bad_images: bool,
    /// A timm/torchvision augmentation recipe (RandomResizedCrop, RandAugment, Mixup, ...).
    /// When set it replaces crop_padding/hflip and fixes the input size and normalisation.
    #[serde(default)]
    pub recipe: Option<Recipe>,
    /// The input [height, width] when it is not the model's (`--img-size`, or a recipe file's
    /// own `input_size`).
    pub input_hw: Option<[usize; 2]>,
}

impl Default for TrainConfig {
    /// The recipe `kestrel train` uses with no arguments: LeNet-5 on the embedded MNIST subset.
    fn default() -> Self {
        TrainConfig {
            model: "lenet5".into(),
            epochs: 12,
            batch_size: 64,
            lr: 2e-3,
            min_lr: 1e-5,
            optimizer: OptimizerKind::Adamw,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 1.0,
            label_smoothing: 0.0,
            dampening: 0.0,
            opt_betas: [0.9, 0.999],
            opt_eps: None,
            rmsprop_alpha: 0.9,
            rmsprop_centered: false,
            lamb_max_grad_norm: Some(1.0),
            lamb_trust_clip: false,
            lamb_always_adapt: false,
            lamb_grad_averaging: true,
            schedule_per: SchedulePer::Step,
            warmup_lr: None,
            decay_epochs: 30.0,
            decay_milestones: vec![30.0, 60.0, 90.0],
            decay_rate: 0.1,
            restart_epochs: 10.0,
            restart_mult: 1.0,
            restart_decay: 1.0,
            poly_power: 1.0,
            onecycle_pct: 0.3,
            onecycle_div: 25.0,
            loss: LossKind::Ce,
            bce_target_threshold: None,
            crop_padding: 0,
            hflip: false,
            seed: 42,
            workers: 0,
            skip_bad_images: false,
            recipe: None,
            input_hw: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// The lr of the epoch's last optimizer step.
    pub lr: f64,
    /// The lr of the epoch's first optimizer step.
    #[serde(default)]
    pub lr_start: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

pub struct TrainOutcome {
    pub checkpoint_dir: PathBuf,
    pub best_epoch: usize,
    pub best_val_accuracy: f64,
    pub history: Vec<EpochLog>,
    pub seconds: f64,
    /// Images skipped by the training and validation loaders.
    pub skipped_images: usize,
    /// The best checkpoint evaluated on the test split (also written to `metrics_path`).
    pub test_report: EvalReport,
    pub metrics_path: PathBuf,
}

fn loader(
    splits_part: Arc<dyn kestrel_data::Dataset>,
    transform: Arc<dyn SampleTransform>,
    cfg: &TrainConfig,
    train: bool,
) -> Result<Loader, TrainError> {
    let lc = LoaderConfig {
        batch_size: cfg.batch_size,
        shuffle: train,
        // Dropping a ragged last batch keeps BN statistics sane, but never drop the only batch.
        drop_last: train && splits_part.len() >= cfg.batch_size,
        seed: cfg.seed,
        num_workers: cfg.workers,
        prefetch_batches: 2,
        skip_bad_images: cfg.skip_bad_images,
        sampler: if train {
            Sampler::Shuffle
        } else {
            Sampler::Sequential
        },
    };
    Ok(Loader::new(splits_part, transform, lc)?)
}

/// Trains `cfg.model` on `splits`, writing the best checkpoint (by validation accuracy),
/// `train_log.jsonl` and the best checkpoint's test-split `metrics.json` into `out_dir`.
pub fn train(
    cfg: &TrainConfig,
    splits: &Splits,
    out_dir: &Path,
    device: &Device,
    show_progress: bool,
) -> Result<TrainOutcome, TrainError> {
    let invalid = |field, value: String, reason| TrainError::InvalidField {
        field,
        value,
        reason,
    };
    if cfg.epochs == 0 {
        return Err(invalid("epochs", "0".into(), "must be at least 1"));
    }
    if cfg.batch_size == 0 {
        return Err(invalid("batch_size", "0".into(), "must be at least 1"));
    }
    if splits.class_names.len() < 2 {
        return Err(TrainError::Config(format!(
            "{}: {} class ({}); a classifier needs at least two",
            splits.description,
            splits.class_names.len(),
            splits.class_names.join(", ")
        )));
    }
    if splits.train.is_empty() || splits.val.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: the training and validation splits must not be empty",
            splits.description
        )));
    }
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        let value = cfg.label_smoothing.to_string();
        return Err(invalid("label_smoothing", value, "must be in [0, 1)"));
    }
    if let Some(t) = cfg.bce_target_threshold.filter(|t| !(0.0..1.0).contains(t)) {
        return Err(TrainError::Config(format!(
            "--bce-target-thresh {t}: must be in [0, 1)"
        )));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(invalid(
            "lr",
            cfg.lr.to_string(),
            "must be a positive number",
        ));
    }
    // Before any data is read: a bad optimizer or schedule value fails at once.
    cfg.optimizer_config().validate()?;
    cfg.schedule_config().validate()?;
    // Photos without a recipe get timm's default: RandomResizedCrop + flip, resize + centre crop.
    let recipe = match (&cfg.recipe, splits.kind) {
        (None, kestrel_data::DatasetKind::ImageFolder) => {
            Some(photo_recipe(&resolve_data_config(&cfg.model, None)?.1))
        }
        (r, _) => r.clone(),
    };
    let (spec, mut data_config) = resolve_data_config(&cfg.model, recipe.as_ref())?;
    if let Some([h, w]) = cfg.input_hw {
        if h == 0 || w == 0 {
            return Err(invalid(
                "img_size",
                format!("{h}x{w}"),
                "must be at least 1",
            ));
        }
        data_config.input_size[1..].copy_from_slice(&[h, w]);
    }
    let num_classes = splits.class_names.len();
    // Fail on an unreadable training set before building the model.
    first_sample(splits, cfg.skip_bad_images)?;
    // As timm: the model (or --img-size) fixes the input size; a recipe brings the augmentations.
    let recipe = recipe.map(|r| Recipe {
        input_size: data_config.input_size,
        ..r
    });
    let (train_tf, mixup): (Arc<dyn SampleTransform>, Option<Mixup>) = match &recipe {
        Some(recipe) => {
            let train_tf = TrainTransform::from_recipe(recipe)?;
            let mixup = train_tf.mixup(num_classes)?;
            (Arc::new(train_tf), mixup)
        }
        None => (
            Arc::new(basic_train_transform(
                &data_config,
                cfg.crop_padding,
                cfg.hflip,
            )?),
            None,
        ),
    };
    let eval_tf: Arc<dyn SampleTransform> = Arc::new(eval_transform(&data_config)?);
    let in_chans = data_config.input_size[0];

    device.seed(cfg.seed);
    let train_device = device.clone().autodiff();
    let mut model: Model = spec.build(
        &BuildOptions {
            num_classes,
            in_chans,
            img_size: None,
        },
        &train_device,
    );
    if let Some((c, h, w)) = train_tf.output_shape() {
        model
            .check_input([c, h, w], device)
            .map_err(|e| match cfg.input_hw {
                Some([h, w]) => TrainError::Config(format!("--img-size {h}x{w}: {e}")),
                None => e.into(),
            })?;
    }

    let train_loader = loader(splits.train.clone(), train_tf, cfg, true)?;
    let val_loader = loader(splits.val.clone(), eval_tf, cfg, false)?;

    let steps_per_epoch = train_loader.num_batches().max(1);
    let schedule = Schedule::new(&cfg.schedule_config(), cfg.epochs, steps_per_epoch)?;
    if let Some(asked) = schedule.warmup_clamped_from {
        println!(
            "note: --warmup-epochs {} ({asked} updates) is cut to half the run ({} updates)",
            cfg.warmup_epochs, schedule.warmup_units
        );
    }
    let mut optim = Optimizer::new(cfg.optimizer_config())?;

    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
    let log_path = out_dir.join("train_log.jsonl");
    let mut log = std::fs::File::create(&log_path).map_err(|e| TrainError::io(&log_path, e))?;

    let bar = progress_bar(show_progress, (cfg.epochs * steps_per_epoch) as u64);
    let started = Instant::now();
    let mut history = Vec::new();
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut step = 0usize;
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = schedule.lr_at(epoch - 1, step);
        let lr_start = lr;
        for batch in train_loader.iter_epoch(epoch) {
            let mut batch = batch?;
            let n = batch.labels.len();
            if n == 0 {
                continue;
            }
            lr = schedule.lr_at(epoch - 1, step);
            // Mixup/CutMix mix the batch in place and return soft targets (with the recipe's
            // label smoothing); otherwise targets are one-hot, smoothed by --label-smoothing.
            let targets = match &mixup {
                Some(m) => {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(mix_seed(&[
                        cfg.seed,
                        epoch as u64,
                        step as u64,
                    ]));
                    m.apply(&mut batch.images, batch.shape, &batch.labels, &mut rng)?
                }
                None => smoothed_one_hot(&batch.labels, num_classes, cfg.label_smoothing),
            };
            let x = batch_to_tensor(
                std::mem::take(&mut batch.images),
                batch.shape,
                &train_device,
            );
            let y = targets_tensor(targets, n, num_classes, &train_device);
            let logits = model.forward(x);
            let loss = training_loss(cfg.loss, logits.clone(), y, cfg.bce_target_threshold);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);

            let loss_value: f32 = loss.into_scalar();
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    loss: loss_value,
                    epoch,
                    step,
                });
            }
            let preds: Vec<i64> = logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .unwrap_or_default();
            correct += preds
                .iter()
                .zip(&batch.labels)
                .filter(|(p, y)| **p as usize == **y)
                .count();
            loss_sum += loss_value as f64 * n as f64;
            seen += n;
            step += 1;
            let secs = epoch_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "epoch {epoch}/{} loss {:.4} acc {:.2}% {:.0} img/s",
                cfg.epochs,
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                seen as f64 / secs
            ));
            bar.inc(1);
        }
        let train_secs = epoch_start.elapsed().as_secs_f64();

        let eval_model = model.valid();
        let val = predict(&eval_model, &val_loader, &device.clone())?;
        let val_loss = kestrel_eval::log_loss(&val.labels, &val.probs, val.num_classes)?;
        let val_preds = kestrel_eval::argmax_predictions(&val.probs, val.num_classes)?;
        let val_acc = kestrel_eval::accuracy(&val.labels, &val_preds)?;
        let entry = EpochLog {
            epoch,
            lr,
            lr_start,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy: val_acc,
            seconds: epoch_start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_secs.max(1e-9),
        };
        let line = format!(
            "epoch {:>3}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | lr {:.2e} | {:.1}s, {:.0} img/s",
            epoch,
            entry.train_loss,
            100.0 * entry.train_accuracy,
            entry.val_loss,
            100.0 * entry.val_accuracy,
            entry.lr,
            entry.seconds,
            entry.images_per_second
        );
        // suspend() prints above the bar when it is drawn, and plainly when it is hidden.
        bar.suspend(|| println!("{line}"));
        writeln!(
            log,
            "{}",
            serde_json::to_string(&entry).expect("log entry serialises")
        )
        .map_err(|e| TrainError::io(&log_path, e))?;
        if val_acc > best.1 {
            best = (epoch, val_acc);
            let meta = CheckpointMeta {
                format: FORMAT.into(),
                model: spec.name.into(),
                num_classes,
                in_chans,
                class_names: splits.class_names.clone(),
                data_config: data_config.clone(),
                recipe: recipe.clone(),
                train_config: serde_json::to_value(cfg).expect("config serialises"),
                epoch,
                val_accuracy: Some(val_acc),
                kestrel_version: env!("CARGO_PKG_VERSION").into(),
                data: Some(splits.source.clone()),
            };
            Checkpoint::save(out_dir, &eval_model, &meta)?;
        }
        history.push(entry);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let skipped_in_training = train_loader.skipped() + val_loader.skipped();

    // The best checkpoint on the test split, as `kestrel eval` would report it.
    let best_checkpoint = Checkpoint::open(out_dir)?;
    let test = evaluate_checkpoint(
        &best_checkpoint,
        splits.test.clone(),
        &format!("the test split of {}", splits.description),
        &EvalOptions {
            batch_size: cfg.batch_size,
            skip_bad_images: cfg.skip_bad_images,
            skipped_before: splits.skipped_at_scan + skipped_in_training,
            ..EvalOptions::default()
        },
        device,
    )?;
    let metrics_path = out_dir.join("metrics.json");
    test.report.write_json(&metrics_path)?;
    Ok(TrainOutcome {
        checkpoint_dir: out_dir.to_path_buf(),
        best_epoch: best.0,
        best_val_accuracy: best.1,
        history,
        seconds,
        skipped_images: skipped_in_training,
        test_report: test.report,
        metrics_path,
    })
}

/// The first training sample that decodes (with `skip_bad_images`, bad ones are passed over).
fn first_sample(
    splits: &Splits,
    skip_bad_images: bool,
) -> Result<kestrel_data::Sample, TrainError> {
    let mut last_err = None;
    for i in 0..splits.train.len() {
        match splits.train.get(i) {
            Ok(sample) => return Ok(sample),
            Err(e) if skip_bad_images => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(match last_err {
        Some(e) => e.into(),
        None => TrainError::Config(format!(
            "{}: the training split is empty",
            splits.description
        )),
    })
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} steps {msg} | ETA {eta}")
            .expect("valid progress template"),
    );
    bar
}
