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
use kestrel_data::preprocess::{Preprocess, RandomCropFlip};
use kestrel_data::recipe::{Recipe, TrainTransform};
use kestrel_data::splits::Splits;
use kestrel_data::SampleTransform;
use kestrel_models::{BuildOptions, Model};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointMeta};
use crate::error::TrainError;
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
    pub skipped_images: usize,
}

/// The eval preprocessing for `model_name` on images shaped like `sample`: convert channels,
/// then pad (when the image is smaller by an even margin, as 28 → 32 for LeNet) or resize.
pub fn preprocess_for(
    model_name: &str,
    sample_hw: (usize, usize),
) -> Result<Preprocess, TrainError> {
    let spec = kestrel_models::find(model_name)?;
    let dc = spec.data_config();
    let [c, h, w] = dc.input_size;
    let (sh, sw) = sample_hw;
    // Images the size of the training set are padded (28 → 32 for LeNet, as in the paper); any
    // other size is first resized to the training size, so predict takes any image.
    let (resize, pad) = if sh <= h && sw <= w && h - sh == w - sw && (h - sh) % 2 == 0 {
        (Some([sh, sw]), (h - sh) / 2)
    } else {
        (Some([h, w]), 0)
    };
    Ok(Preprocess {
        channels: c,
        resize,
        pad,
        mean: dc.mean.clone(),
        std: dc.std.clone(),
    })
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

/// Trains `cfg.model` on `splits`, writing the best checkpoint (by validation accuracy) and
/// `train_log.jsonl` into `out_dir`.
pub fn train(
    cfg: &TrainConfig,
    splits: &Splits,
    out_dir: &Path,
    device: &Device,
    show_progress: bool,
) -> Result<TrainOutcome, TrainError> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(TrainError::Config(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    if splits.train.is_empty() || splits.val.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: the training and validation splits must not be empty",
            splits.description
        )));
    }
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        return Err(TrainError::Config(format!(
            "--label-smoothing {}: must be in [0, 1)",
            cfg.label_smoothing
        )));
    }
    if let Some(t) = cfg.bce_target_threshold.filter(|t| !(0.0..1.0).contains(t)) {
        return Err(TrainError::Config(format!(
            "--bce-target-thresh {t}: must be in [0, 1)"
        )));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(TrainError::Config(format!(
            "--lr {}: must be a positive number",
            cfg.lr
        )));
    }
    // Before any data is read: a bad optimizer or schedule value fails at once.
    cfg.optimizer_config().validate()?;
    cfg.schedule_config().validate()?;
    let spec = kestrel_models::find(&cfg.model)?;
    let num_classes = splits.class_names.len();
    let first = first_sample(splits, cfg.skip_bad_images)?;
    let preprocess = preprocess_for(spec.name, (first.image.height, first.image.width))?;
    let (train_tf, eval_tf, mixup, in_chans): (
        Arc<dyn SampleTransform>,
        Arc<dyn SampleTransform>,
        Option<Mixup>,
        usize,
    ) = match &cfg.recipe {
        Some(recipe) => {
            // As timm: the model fixes the input size; the recipe brings the augmentations.
            let mut recipe = recipe.clone();
            recipe.input_size = spec.data_config().input_size;
            let recipe = &recipe;
            let train_tf = TrainTransform::from_recipe(recipe)?;
            let mixup = train_tf.mixup(num_classes)?;
            (
                Arc::new(train_tf),
                Arc::new(recipe.eval_transform()?),
                mixup,
                recipe.input_size[0],
            )
        }
        None => (
            Arc::new(RandomCropFlip {
                base: preprocess.clone(),
                crop_padding: cfg.crop_padding,
                hflip: cfg.hflip,
            }),
            Arc::new(preprocess.clone()),
            None,
            preprocess.channels,
        ),
    };

    device.seed(cfg.seed);
    let train_device = device.clone().autodiff();
    let mut model: Model = spec.build(
        &BuildOptions {
            num_classes,
            in_chans,
        },
        &train_device,
    );
    if let Some((c, h, w)) = train_tf.output_shape() {
        model.check_input([c, h, w], device)?;
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
        let (val_loss, val_acc) = loss_and_accuracy(&val.labels, &val.probs, val.num_classes);
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
                format: "kestrel-checkpoint-v1".into(),
                model: spec.name.into(),
                num_classes,
                in_chans,
                class_names: splits.class_names.clone(),
                preprocess: preprocess.clone(),
                recipe: cfg.recipe.clone().map(|mut r| {
                    r.input_size = spec.data_config().input_size;
                    r
                }),
                train_config: serde_json::to_value(cfg).expect("config serialises"),
                epoch,
                val_accuracy: Some(val_acc),
                kestrel_version: env!("CARGO_PKG_VERSION").into(),
            };
            Checkpoint::save(out_dir, &eval_model, &meta)?;
        }
        history.push(entry);
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        checkpoint_dir: out_dir.to_path_buf(),
        best_epoch: best.0,
        best_val_accuracy: best.1,
        history,
        seconds: started.elapsed().as_secs_f64(),
        skipped_images: train_loader.skipped() + val_loader.skipped(),
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

/// Mean negative log-likelihood and accuracy from probabilities.
pub fn loss_and_accuracy(labels: &[usize], probs: &[f32], k: usize) -> (f64, f64) {
    if labels.is_empty() || k == 0 {
        return (f64::NAN, 0.0);
    }
    let mut nll = 0.0f64;
    let mut correct = 0usize;
    for (i, &y) in labels.iter().enumerate() {
        let row = &probs[i * k..(i + 1) * k];
        nll -= (row[y].max(1e-12) as f64).ln();
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, &p)| if p > row[best] { j } else { best });
        correct += (argmax == y) as usize;
    }
    (
        nll / labels.len() as f64,
        correct as f64 / labels.len() as f64,
    )
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
