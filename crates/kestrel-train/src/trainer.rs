//! The training loop: seeded loader, cross-entropy, optimizer step, per-step LR schedule,
//! validation after each epoch, a progress bar, a JSON-lines log and the best checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_data::loader::{mix_seed, Loader, LoaderConfig, Sampler};
use kestrel_data::mixup::Mixup;
use kestrel_data::recipe::{Recipe, TrainTransform};
use kestrel_data::splits::Splits;
use kestrel_data::SampleTransform;
use kestrel_eval::EvalReport;
use kestrel_models::weights::{load_weights, safetensors_bytes, LoadOptions};
use kestrel_models::{BuildOptions, Model};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::checkpoint::{Checkpoint, CheckpointMeta, FORMAT};
use crate::data_config::{
    basic_train_transform, eval_transform, photo_recipe, resolve_data_config,
};
use crate::ema::{EmaConfig, ModelEma};
use crate::error::TrainError;
use crate::evaluate::{evaluate_checkpoint, EvalOptions};
use crate::grad::{clip_gradients, gradients_finite, weights_finite, ClipMode};
use crate::infer::{batch_to_tensor, predict};
use crate::logs::{write_metrics_csv, EventWriter, StepLog};
use crate::loss::{
    distillation_loss, hard_distillation_loss, smoothed_one_hot, targets_tensor, training_loss,
    LossKind,
};
use crate::optim::{Optimizer, OptimizerKind};
use crate::run_state::{
    load_set, optimizer_state_bytes, save_set, DatasetFingerprint, LoadedSet, Progress, SetFiles,
    Slot, TrainState, STATE_FORMAT,
};
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
    /// Visit the training split in a fresh seeded order each epoch; false takes the batches in
    /// dataset order (torch's `DataLoader(shuffle=False)`), as a reference loop can.
    pub shuffle: bool,
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
    /// Keep a model EMA (timm's ModelEmaV3), evaluated each epoch and saved beside the weights.
    pub ema: bool,
    pub ema_decay: f64,
    /// ModelEmaV3's decay warm-up (γ = 1, power = 2/3).
    pub ema_warmup: bool,
    /// The EMA is the model that counts, as timm's train.py with --model-ema: the best epoch is
    /// chosen by the EMA's validation accuracy, and `model.safetensors` (what eval, predict,
    /// export and the test report read) holds that epoch's EMA weights.
    pub ema_eval: bool,
    /// Flip test-time augmentation in the final test report (and `kestrel eval --tta-flip`):
    /// each image scores the mean of its own and its mirror's class probabilities.
    pub tta_flip: bool,
    /// The float type the forward and backward passes compute in (`--precision`). f16 and bf16
    /// are mixed precision, on a GPU device: the parameters and the optimizer stay f32, each
    /// step runs a half-precision copy of the model whose casts are on the tape, and f16 adds
    /// dynamic loss scaling ([`crate::grad::LossScaler`]).
    pub precision: crate::Precision,
    /// Gradient clipping threshold (None = off), applied as `clip_mode` says.
    pub clip_grad: Option<f64>,
    pub clip_mode: ClipMode,
    /// Batches whose gradients are summed into one optimizer update.
    pub grad_accum: usize,
    /// Stop after this many epochs without a better validation accuracy (None = never).
    pub patience: Option<usize>,
    /// Write the resumable `last.*` checkpoint every this many optimizer steps as well as at each
    /// epoch end (0 = epoch ends only).
    pub checkpoint_every: usize,
    /// Start from this checkpoint folder's architecture and weights (a `kestrel prune` run
    /// folder: its channel counts too) instead of a fresh initialisation.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Fine-tuning: start from these timm/torchvision weights (any format `predict` loads); the
    /// classifier is re-initialised when its class count differs from the dataset's.
    pub weights: Option<PathBuf>,
    /// Regex rename rules for `weights` from other codebases (`REGEX => REPLACEMENT` per line).
    pub remap: Option<PathBuf>,
    /// Parameters that get no update: see [`crate::finetune::frozen_names`].
    pub freeze: Vec<String>,
    /// timm's layer-wise lr decay (None = off): see [`crate::finetune::layer_decay_scales`].
    pub layer_decay: Option<f64>,
    /// Knowledge distillation from a teacher (`kestrel distill`; None = plain training).
    pub distill: Option<DistillConfig>,
}

/// Where the teacher comes from and how its logits enter the loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistillConfig {
    /// A run folder of `kestrel train` ...
    pub teacher_run: Option<PathBuf>,
    /// ... or a registry model with timm/torchvision weights of the dataset's classes.
    pub teacher_model: Option<String>,
    pub teacher_weights: Option<PathBuf>,
    pub temperature: f64,
    /// The distillation term's weight; the label term gets 1 − alpha.
    pub alpha: f64,
    /// DeiT's hard distillation (CE on the teacher's argmax, through a distilled DeiT's
    /// distillation head) instead of the soft KL term.
    pub hard: bool,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            teacher_run: None,
            teacher_model: None,
            teacher_weights: None,
            temperature: 4.0,
            alpha: 0.7,
            hard: false,
        }
    }
}

/// The teacher of `d`, checked to fit the student's data: the same classes and input.
fn load_teacher(
    d: &DistillConfig,
    class_names: &[String],
    data_config: &kestrel_models::DataConfig,
    device: &Device,
) -> Result<Model, TrainError> {
    if !(d.temperature > 0.0 && d.temperature.is_finite()) {
        return Err(TrainError::Config(format!(
            "--temperature {}: must be a positive number",
            d.temperature
        )));
    }
    if !(0.0..=1.0).contains(&d.alpha) {
        return Err(TrainError::Config(format!(
            "--alpha {}: must be in [0, 1]",
            d.alpha
        )));
    }
    let (source, origin) = match (&d.teacher_run, &d.teacher_model, &d.teacher_weights) {
        (Some(run), None, None) => (
            crate::source::ModelSource::Checkpoint(run.clone()),
            run.display().to_string(),
        ),
        (None, Some(model), Some(weights)) => (
            crate::source::ModelSource::Registry(crate::source::RegistrySource {
                model: model.clone(),
                weights: Some(weights.clone()),
                num_classes: Some(class_names.len()),
                ..Default::default()
            }),
            weights.display().to_string(),
        ),
        _ => {
            return Err(TrainError::Config(
                "distillation needs a teacher: --teacher RUN_DIR, or --teacher-model NAME with                  --teacher-weights FILE"
                    .into(),
            ))
        }
    };
    let teacher = crate::source::load_model(&source, device)?;
    if teacher.int8.is_some() {
        return Err(TrainError::Config(format!(
            "--teacher {origin}: an int8 model cannot teach (its logits come from the int8              engine); use the float run it was quantized from"
        )));
    }
    if let Some(w) = teacher
        .warnings
        .iter()
        .find(|w| w.starts_with("--num-classes"))
    {
        return Err(TrainError::Config(format!(
            "--teacher-weights {origin}: the teacher must know the dataset's {} classes ({w})",
            class_names.len()
        )));
    }
    if matches!(source, crate::source::ModelSource::Checkpoint(_))
        && teacher.class_names != class_names
    {
        return Err(TrainError::Config(format!(
            "--teacher {origin}: its classes ({}) are not the dataset's ({})",
            teacher.class_names.join(", "),
            class_names.join(", ")
        )));
    }
    let (t, s) = (&teacher.data_config, data_config);
    if t.input_size != s.input_size || t.mean != s.mean || t.std != s.std {
        return Err(TrainError::Config(format!(
            "--teacher {origin}: it takes {:?} inputs normalised by mean {:?} std {:?}, the student {:?} with mean {:?} std {:?}; the teacher sees the student's batches, so they must match (give --img-size, or a teacher trained on the same input)",
            t.input_size, t.mean, t.std, s.input_size, s.mean, s.std
        )));
    }
    Ok(teacher.model)
}

impl Default for TrainConfig {
    /// The recipe `kestrel train` uses with no arguments: LeNet-5 on the embedded MNIST subset.
    fn default() -> Self {
        TrainConfig {
            model: "lenet5".into(),
            // 20 epochs with a 2 px random translation and label smoothing 0.1 (timm's default
            // smoothing): 98.5–98.8% on the embedded MNIST test split over three seeds, in
            // about 30 s on 2 cores; 12 epochs without them gave 97.7%.
            epochs: 20,
            batch_size: 64,
            lr: 2e-3,
            min_lr: 1e-5,
            optimizer: OptimizerKind::Adamw,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 1.0,
            label_smoothing: 0.1,
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
            crop_padding: 2,
            hflip: false,
            shuffle: true,
            seed: 42,
            workers: 0,
            skip_bad_images: false,
            recipe: None,
            input_hw: None,
            ema: false,
            // timm's --model-ema-decay default.
            ema_decay: 0.9998,
            ema_warmup: false,
            ema_eval: false,
            tta_flip: false,
            precision: crate::Precision::F32,
            clip_grad: None,
            clip_mode: ClipMode::Norm,
            grad_accum: 1,
            patience: None,
            checkpoint_every: 0,
            init_from: None,
            weights: None,
            remap: None,
            freeze: Vec::new(),
            layer_decay: None,
            distill: None,
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
    /// The EMA model's validation loss and accuracy (runs with --ema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_val_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_val_accuracy: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
}

pub struct TrainOutcome {
    pub checkpoint_dir: PathBuf,
    /// Early stopping ended the run before `epochs`.
    pub stopped_early: bool,
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
    let shuffle = train && cfg.shuffle;
    let lc = LoaderConfig {
        batch_size: cfg.batch_size,
        shuffle,
        // Dropping a ragged last batch keeps BN statistics sane, but never drop the only batch.
        drop_last: train && splits_part.len() >= cfg.batch_size,
        seed: cfg.seed,
        num_workers: cfg.workers,
        prefetch_batches: 2,
        skip_bad_images: cfg.skip_bad_images,
        sampler: if shuffle {
            Sampler::Shuffle
        } else {
            Sampler::Sequential
        },
    };
    Ok(Loader::new(splits_part, transform, lc)?)
}

/// How [`train_run`] runs, beyond the training configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub show_progress: bool,
    /// Continue the run in `out_dir` from its `last.*` checkpoint.
    pub resume: bool,
    /// Kept in the checkpoints' state for the caller that starts the run again (the CLI keeps
    /// its data flags here).
    pub launch: serde_json::Value,
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
    let opts = RunOptions {
        show_progress,
        ..RunOptions::default()
    };
    train_run(cfg, splits, out_dir, device, &opts)
}

impl TrainConfig {
    /// Range checks of the fields that need no data, naming the field.
    fn validate(&self) -> Result<(), TrainError> {
        let invalid = |field, value: String, reason| TrainError::InvalidField {
            field,
            value,
            reason,
        };
        if self.epochs == 0 {
            return Err(invalid("epochs", "0".into(), "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "0".into(), "must be at least 1"));
        }
        if self.grad_accum == 0 {
            return Err(invalid("grad_accum", "0".into(), "must be at least 1"));
        }
        if self.ema_eval && !self.ema {
            return Err(TrainError::Config(
                "--ema-eval: there is no EMA to evaluate; add --ema".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            let value = self.label_smoothing.to_string();
            return Err(invalid("label_smoothing", value, "must be in [0, 1)"));
        }
        if let Some(t) = self
            .bce_target_threshold
            .filter(|t| !(0.0..1.0).contains(t))
        {
            return Err(TrainError::Config(format!(
                "--bce-target-thresh {t}: must be in [0, 1)"
            )));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(invalid(
                "lr",
                self.lr.to_string(),
                "must be a positive number",
            ));
        }
        if let Some(c) = self.clip_grad.filter(|c| !(*c > 0.0 && c.is_finite())) {
            return Err(invalid(
                "clip_grad",
                c.to_string(),
                "must be a positive number",
            ));
        }
        if self.patience == Some(0) {
            return Err(invalid("patience", "0".into(), "must be at least 1"));
        }
        self.optimizer_config().validate()?;
        self.schedule_config().validate()?;
        if self.ema {
            self.ema_config().validate()?;
        }
        Ok(())
    }

    /// The EMA settings of this training config.
    pub fn ema_config(&self) -> EmaConfig {
        EmaConfig {
            decay: self.ema_decay,
            use_warmup: self.ema_warmup,
            ..EmaConfig::default()
        }
    }
}

/// The model of checkpoint folder `dir` (architecture, channel counts, weights) for
/// `--init-from`: it must be `model` with `num_classes` classes.
fn init_from_checkpoint(
    dir: &Path,
    model: &str,
    num_classes: usize,
    device: &Device,
) -> Result<Model, TrainError> {
    let ckpt = Checkpoint::open(dir)?;
    let mismatch =
        |reason: String| TrainError::Config(format!("--init-from {}: {reason}", dir.display()));
    if ckpt.meta.model != model {
        return Err(mismatch(format!(
            "holds {}, but the run trains {model}",
            ckpt.meta.model
        )));
    }
    if ckpt.meta.num_classes != num_classes {
        return Err(mismatch(format!(
            "has {} classes, the data {num_classes}",
            ckpt.meta.num_classes
        )));
    }
    ckpt.load_model(device)
}

/// Reseeds the backend RNG (dropout, drop-path) before each batch, from the seed and the
/// batch's position: a resumed run draws the same masks without saving the RNG.
const TAG_BACKEND_RNG: u64 = 0x6b65_7374_7265_6c31;

/// Trains as [`train`] does; with `opts.resume`, continues the run in `out_dir`.
pub fn train_run(
    cfg: &TrainConfig,
    splits: &Splits,
    out_dir: &Path,
    device: &Device,
    opts: &RunOptions,
) -> Result<TrainOutcome, TrainError> {
    // Before any data is read: a bad value fails at once.
    cfg.validate()?;
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
            return Err(TrainError::InvalidField {
                field: "img_size",
                value: format!("{h}x{w}"),
                reason: "must be at least 1",
            });
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

    if let Some(reason) = cfg.precision.unsupported_on(device) {
        return Err(TrainError::InvalidField {
            field: "precision",
            value: cfg.precision.to_string(),
            reason,
        });
    }
    device.seed(cfg.seed);
    let train_device = device.clone().autodiff();
    let mut model: Model = match (&cfg.weights, opts.resume) {
        // Fine-tuning goes through the one registry loader `predict` uses; a resumed run loads
        // its own checkpoint below instead.
        (Some(weights), false) => {
            let loaded = crate::source::load_model(
                &crate::source::ModelSource::Registry(crate::source::RegistrySource {
                    model: cfg.model.clone(),
                    weights: Some(weights.clone()),
                    num_classes: Some(num_classes),
                    remap: cfg.remap.clone(),
                    ..Default::default()
                }),
                &train_device,
            )?;
            for w in loaded
                .warnings
                .iter()
                .filter(|w| !w.starts_with("--num-classes"))
            {
                println!("warning: {w}");
            }
            if loaded.data_config.input_size[0] != in_chans {
                return Err(TrainError::Config(format!(
                    "{}: a {}-channel model, but the data has {in_chans} channels",
                    weights.display(),
                    loaded.data_config.input_size[0]
                )));
            }
            loaded.model
        }
        _ => spec.build(
            &BuildOptions {
                num_classes,
                in_chans,
                // The fixed-size models (ViT/DeiT, Swin, T2T-ViT, CoAtNet/MaxViT) are built
                // for --img-size (position embeddings, windows and biases sized for it); a
                // non-square size leaves them at their own, which check_input then reports.
                img_size: cfg.input_hw.and_then(|[h, w]| (h == w).then_some(h)),
            },
            &train_device,
        ),
    };
    if let Some(dir) = &cfg.init_from {
        model = init_from_checkpoint(dir, spec.name, num_classes, &train_device)?;
        // The run's own checkpoints have the pruned architecture too.
        let counts = dir.join(crate::checkpoint::CHANNELS_FILE);
        if counts.exists() {
            std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
            let to = out_dir.join(crate::checkpoint::CHANNELS_FILE);
            std::fs::copy(&counts, &to).map_err(|e| TrainError::io(&to, e))?;
        }
    }
    let teacher = match &cfg.distill {
        Some(d) => Some(load_teacher(d, &splits.class_names, &data_config, device)?),
        None => None,
    };
    let frozen = if cfg.freeze.is_empty() {
        Default::default()
    } else {
        crate::finetune::frozen_ids(&model, &cfg.freeze)?
    };
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

    let batches_per_epoch = train_loader.num_batches().max(1);
    // As timm: a short last group of batches still makes an update.
    let updates_per_epoch = batches_per_epoch.div_ceil(cfg.grad_accum);
    let schedule = Schedule::new(&cfg.schedule_config(), cfg.epochs, updates_per_epoch)?;
    if let Some(asked) = schedule.warmup_clamped_from {
        println!(
            "note: --warmup-epochs {} ({asked} updates) is cut to half the run ({} updates)",
            cfg.warmup_epochs, schedule.warmup_units
        );
    }
    let mut optim = Optimizer::new(cfg.optimizer_config())?;
    if let Some(decay) = cfg.layer_decay {
        optim.set_lr_scales(crate::finetune::layer_decay_by_id(&model, decay)?);
    }
    let mut ema = cfg.ema.then(|| ModelEma::new(cfg.ema_config(), &model));

    let fingerprint = DatasetFingerprint::of(splits);
    let mut progress = Progress::start();
    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
    let log_path = out_dir.join("train_log.jsonl");
    if opts.resume {
        let set = load_set(out_dir, Slot::Last, device)?;
        check_resumable(&set, cfg, spec.name, &fingerprint)?;
        load_weights(&mut model, &set.weights_path, &LoadOptions::default())?;
        optim
            .import_state(&model, set.optimizer)
            .map_err(|e| TrainError::Checkpoint {
                path: out_dir.join(Slot::Last.optimizer_file()),
                reason: e.to_string(),
            })?;
        if let Some(ema) = ema.as_mut() {
            let path = set
                .ema_path
                .as_ref()
                .ok_or_else(|| TrainError::Checkpoint {
                    path: set.state_path.clone(),
                    reason: "lists no EMA weights, but the run keeps an EMA".into(),
                })?;
            load_weights(&mut ema.model, path, &LoadOptions::default())?;
            ema.updates = set.state.progress.ema_updates;
        }
        progress = set.state.progress;
    }
    // The log holds the epochs the checkpoint has seen; later ones are appended as they end.
    let mut log_text = String::new();
    for entry in &progress.history {
        log_text.push_str(&serde_json::to_string(entry).expect("log entry serialises"));
        log_text.push('\n');
    }
    write_atomic(&log_path, log_text.as_bytes())?;
    write_atomic(
        &out_dir.join(crate::config_file::CONFIG_FILE),
        crate::config_file::config_toml(cfg).as_bytes(),
    )?;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .map_err(|e| TrainError::io(&log_path, e))?;

    let csv_path = out_dir.join("metrics.csv");
    write_metrics_csv(&csv_path, &progress.history)?;
    let mut events = EventWriter::create(out_dir)?;
    let mut step_log = StepLog::open(out_dir, progress.step)?;

    let ckpt = Checkpointer {
        dir: out_dir,
        cfg,
        model_name: spec.name,
        num_classes,
        fingerprint: &fingerprint,
        launch: &opts.launch,
        meta: CheckpointMeta {
            format: FORMAT.into(),
            model: spec.name.into(),
            num_classes,
            in_chans,
            class_names: splits.class_names.clone(),
            data_config: data_config.clone(),
            recipe: recipe.clone(),
            train_config: serde_json::to_value(cfg).expect("config serialises"),
            epoch: 0,
            val_accuracy: None,
            kestrel_version: env!("CARGO_PKG_VERSION").into(),
            data: Some(splits.source.clone()),
        },
    };
    let mut last_saved: Option<PathBuf> = None;

    let total_steps = (cfg.epochs * updates_per_epoch) as u64;
    let bar = progress_bar(opts.show_progress, total_steps);
    bar.set_position(progress.step as u64);
    let started = Instant::now();
    let seconds_before = progress.seconds;
    // f16's loss scale, carried across resumes in the progress record.
    let mut scaler =
        (cfg.precision == crate::Precision::F16).then(|| progress.loss_scaler.unwrap_or_default());
    while progress.epoch <= cfg.epochs && !progress.stopped_early {
        let epoch = progress.epoch;
        let epoch_start = Instant::now();
        let seconds_this_epoch_before = progress.epoch_seconds;
        if progress.batches_done == 0 {
            progress.epoch_lr_start = schedule.lr_at(epoch - 1, progress.step);
        }
        let mut lr = schedule.lr_at(epoch - 1, progress.step);
        let mut accumulated = GradientsAccumulator::<Model>::new();
        // The mean of the batch losses of the update being accumulated.
        let mut update_loss = 0.0f64;
        for batch in train_loader.iter_epoch_from(epoch, progress.batches_done) {
            let mut batch = batch?;
            let n = batch.labels.len();
            let b = batch.batch_index;
            // The group of batches this one adds its gradient to; its last one steps.
            let group_start = b - b % cfg.grad_accum;
            let group_len = cfg.grad_accum.min(batches_per_epoch - group_start);
            let group_ends = b + 1 == group_start + group_len;
            lr = schedule.lr_at(epoch - 1, progress.step);
            // Mixup/CutMix mix the batch in place and return soft targets (with the recipe's
            // label smoothing); otherwise targets are one-hot, smoothed by --label-smoothing.
            let targets = match &mixup {
                Some(m) => {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(mix_seed(&[
                        cfg.seed,
                        epoch as u64,
                        b as u64,
                    ]));
                    m.apply(&mut batch.images, batch.shape, &batch.labels, &mut rng)?
                }
                None => smoothed_one_hot(&batch.labels, num_classes, cfg.label_smoothing),
            };
            device.seed(mix_seed(&[
                cfg.seed,
                epoch as u64,
                b as u64,
                TAG_BACKEND_RNG,
            ]));
            let x = batch_to_tensor(
                std::mem::take(&mut batch.images),
                batch.shape,
                &train_device,
            );
            let y = targets_tensor(targets, n, num_classes, &train_device);
            // The teacher sees the student's batch, off the autodiff tape.
            let teacher_logits = teacher
                .as_ref()
                .map(|t| Tensor::<2>::from_inner(t.forward(x.clone().inner())));
            // Mixed precision: a half copy of the model (its casts on the tape, so the gradients
            // reach the f32 parameters) sees a half batch; its logits come back as f32 for the
            // loss.
            let half = cfg.precision.half_dtype();
            let half_model;
            let (x, student) = match half {
                Some(dtype) => {
                    half_model = model.clone().to_float_dtype(dtype);
                    (x.cast(dtype), &half_model)
                }
                None => (x, &model),
            };
            let as_f32 = |t: Tensor<2>| match half {
                Some(_) => t.cast(burn::tensor::FloatDType::F32),
                None => t,
            };
            let (logits, loss) = match (&cfg.distill, teacher_logits) {
                (Some(d), Some(t)) if d.hard => {
                    let (class, dist) = student.forward_heads(x);
                    let (class, dist) = (as_f32(class), dist.map(as_f32));
                    let dist_head = dist.clone().unwrap_or_else(|| class.clone());
                    let loss = hard_distillation_loss(class.clone(), dist_head, t, y, d.alpha);
                    let logits = match dist {
                        Some(dist) => (class + dist).div_scalar(2.0),
                        None => class,
                    };
                    (logits, loss)
                }
                (Some(d), Some(t)) => {
                    let logits = as_f32(student.forward(x));
                    let loss = distillation_loss(logits.clone(), t, y, d.temperature, d.alpha);
                    (logits, loss)
                }
                _ => {
                    let logits = as_f32(student.forward(x));
                    let loss = training_loss(cfg.loss, logits.clone(), y, cfg.bce_target_threshold);
                    (logits, loss)
                }
            };
            let loss_value: f32 = loss.clone().into_scalar();
            // `step` is the update that failed (1-based).
            let diverged =
                |what, value: String, step: usize, kept: &Option<PathBuf>| TrainError::Diverged {
                    what,
                    value,
                    epoch,
                    step,
                    kept: kept.clone(),
                };
            if !loss_value.is_finite() {
                return Err(diverged(
                    "loss",
                    loss_value.to_string(),
                    progress.step + 1,
                    &last_saved,
                ));
            }
            // Each batch's mean loss counts 1/group_len of the update, as timm divides by
            // its accumulation steps.
            let loss = if group_len > 1 {
                loss.div_scalar(group_len as f64)
            } else {
                loss
            };
            let loss = match &scaler {
                Some(sc) => loss.mul_scalar(sc.scale),
                None => loss,
            };
            accumulated.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
            // The half copy cast the shared BatchNorm statistics (and updated them in half);
            // the f32 model keeps f32 ones.
            if half.is_some() {
                model = model.to_float_dtype(burn::tensor::FloatDType::F32);
            }

            let preds: Vec<i64> = logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .unwrap_or_default();
            progress.epoch_correct += preds
                .iter()
                .zip(&batch.labels)
                .filter(|(p, y)| **p as usize == **y)
                .count();
            update_loss += loss_value as f64 / group_len as f64;
            progress.epoch_loss_sum += loss_value as f64 * n as f64;
            progress.epoch_seen += n;
            if !group_ends {
                continue;
            }
            let mut grads = accumulated.grads();
            crate::finetune::drop_frozen_gradients(&model, &mut grads, &frozen);
            if let Some(sc) = scaler.as_mut() {
                let apply = sc.unscale(&model, &mut grads);
                progress.loss_scaler = Some(*sc);
                if !apply {
                    // An overflow in f16: this update is skipped with a smaller scale, as
                    // torch's GradScaler does; only a scale that keeps falling is divergence.
                    if sc.scale < crate::grad::LossScaler::MIN_SCALE {
                        return Err(diverged(
                            "gradient",
                            format!("overflow at every loss scale down to {}", sc.scale),
                            progress.step + 1,
                            &last_saved,
                        ));
                    }
                    update_loss = 0.0;
                    progress.batches_done = b + 1;
                    bar.inc(1);
                    continue;
                }
            }
            if !gradients_finite(&model, &grads) {
                return Err(diverged(
                    "gradient",
                    "NaN or inf".into(),
                    progress.step + 1,
                    &last_saved,
                ));
            }
            if let Some(threshold) = cfg.clip_grad {
                clip_gradients(&model, &mut grads, cfg.clip_mode, threshold);
            }
            model = optim.step(lr, model, grads);
            progress.step += 1;
            progress.batches_done = b + 1;
            if let Some(ema) = ema.as_mut() {
                ema.update(&model);
                progress.ema_updates = ema.updates;
            }
            let secs = epoch_start.elapsed().as_secs_f64().max(1e-9);
            let throughput = progress.epoch_seen as f64 / (secs + seconds_this_epoch_before);
            step_log.record(progress.step, epoch, update_loss, lr)?;
            events.scalar("train/loss", progress.step, update_loss)?;
            events.scalar("train/lr", progress.step, lr)?;
            update_loss = 0.0;
            events.scalar("train/images_per_second", progress.step, throughput)?;
            bar.set_message(format!(
                "epoch {epoch}/{} loss {:.4} acc {:.2}% {:.0} img/s",
                cfg.epochs,
                progress.epoch_loss_sum / progress.epoch_seen as f64,
                100.0 * progress.epoch_correct as f64 / progress.epoch_seen as f64,
                progress.epoch_seen as f64 / (secs + seconds_this_epoch_before)
            ));
            bar.inc(1);
            if cfg.checkpoint_every > 0
                && progress.step % cfg.checkpoint_every == 0
                && progress.batches_done < batches_per_epoch
            {
                progress.epoch_seconds =
                    seconds_this_epoch_before + epoch_start.elapsed().as_secs_f64();
                progress.seconds = seconds_before + started.elapsed().as_secs_f64();
                if !weights_finite(&model) {
                    return Err(diverged(
                        "weights",
                        "NaN or inf".into(),
                        progress.step,
                        &last_saved,
                    ));
                }
                // The step log covers every step a checkpoint holds (a resume keeps those).
                step_log.flush()?;
                ckpt.save(Slot::Last, &model, &optim, ema.as_ref(), &progress)?;
                last_saved = Some(out_dir.join(Slot::Last.weights_file()));
            }
        }
        let train_secs = seconds_this_epoch_before + epoch_start.elapsed().as_secs_f64();

        // A checkpoint is only ever written from finite weights.
        if !weights_finite(&model) {
            return Err(TrainError::Diverged {
                what: "weights",
                value: "NaN or inf".into(),
                epoch,
                step: progress.step,
                kept: last_saved,
            });
        }
        let eval_model = model.valid();
        let (val_loss, val_acc) = validate(&eval_model, &val_loader, device)?;
        let ema_val = match &ema {
            Some(ema) => Some(validate(&ema.model, &val_loader, device)?),
            None => None,
        };
        let seen = progress.epoch_seen;
        let entry = EpochLog {
            epoch,
            lr,
            lr_start: progress.epoch_lr_start,
            train_loss: progress.epoch_loss_sum / seen.max(1) as f64,
            train_accuracy: progress.epoch_correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy: val_acc,
            ema_val_loss: ema_val.map(|v| v.0),
            ema_val_accuracy: ema_val.map(|v| v.1),
            seconds: seconds_this_epoch_before + epoch_start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_secs.max(1e-9),
        };
        let ema_part = match ema_val {
            Some((l, a)) => format!(" | ema val loss {l:.4} acc {:.2}%", 100.0 * a),
            None => String::new(),
        };
        let line = format!(
            "epoch {:>3}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}%{ema_part} | lr {:.2e} | {:.1}s, {:.0} img/s",
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
        events.epoch(&entry)?;
        progress.history.push(entry);
        write_metrics_csv(&csv_path, &progress.history)?;
        // A plot that cannot be drawn is worth a warning, not the run.
        let curves = out_dir.join(crate::plots::CURVES_FILE);
        if let Err(e) = crate::plots::plot_curves(&progress.history, &curves) {
            bar.suspend(|| eprintln!("warning: {e}"));
        }
        // With --ema-eval the EMA's accuracy picks the best epoch, whose EMA weights are saved.
        let chosen_acc = match (cfg.ema_eval, ema_val) {
            (true, Some((_, a))) => a,
            _ => val_acc,
        };
        let improved = chosen_acc > progress.best_val_accuracy;
        if improved {
            progress.best_epoch = epoch;
            progress.best_val_accuracy = chosen_acc;
            progress.epochs_since_best = 0;
        } else {
            progress.epochs_since_best += 1;
        }
        if let Some(patience) = cfg.patience {
            if progress.epochs_since_best >= patience && epoch < cfg.epochs {
                progress.stopped_early = true;
                bar.suspend(|| {
                    println!(
                        "early stopping: no better validation accuracy for {patience} epochs (best {:.2}% at epoch {})",
                        100.0 * progress.best_val_accuracy,
                        progress.best_epoch
                    )
                });
            }
        }
        progress.epoch += 1;
        progress.batches_done = 0;
        progress.epoch_loss_sum = 0.0;
        progress.epoch_correct = 0;
        progress.epoch_seen = 0;
        progress.epoch_seconds = 0.0;
        progress.seconds = seconds_before + started.elapsed().as_secs_f64();
        step_log.flush()?;
        if improved {
            let best = match (&ema, cfg.ema_eval) {
                (Some(ema), true) => &ema.model,
                _ => &eval_model,
            };
            ckpt.save_best(best, &optim, ema.as_ref(), &progress, epoch, chosen_acc)?;
        }
        ckpt.save(Slot::Last, &model, &optim, ema.as_ref(), &progress)?;
        last_saved = Some(out_dir.join(Slot::Last.weights_file()));
    }
    bar.finish_and_clear();
    let seconds = seconds_before + started.elapsed().as_secs_f64();
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
            tta_flip: cfg.tta_flip,
            ..EvalOptions::default()
        },
        device,
    )?;
    let metrics_path = out_dir.join("metrics.json");
    test.report.write_json(&metrics_path)?;
    if let Err(e) =
        crate::plots::plot_confusion(&test.report, &out_dir.join(crate::plots::CONFUSION_FILE))
    {
        eprintln!("warning: {e}");
    }
    Ok(TrainOutcome {
        checkpoint_dir: out_dir.to_path_buf(),
        stopped_early: progress.stopped_early,
        best_epoch: progress.best_epoch,
        best_val_accuracy: progress.best_val_accuracy,
        history: progress.history,
        seconds,
        skipped_images: skipped_in_training,
        test_report: test.report,
        metrics_path,
    })
}

/// Validation loss (log loss) and accuracy of an eval-mode model.
fn validate(model: &Model, loader: &Loader, device: &Device) -> Result<(f64, f64), TrainError> {
    let val = predict(model, loader, device)?;
    let loss = kestrel_eval::log_loss(&val.labels, &val.probs, val.num_classes)?;
    let preds = kestrel_eval::argmax_predictions(&val.probs, val.num_classes)?;
    Ok((loss, kestrel_eval::accuracy(&val.labels, &preds)?))
}

/// A resume must continue the same run: the same model, configuration and dataset.
fn check_resumable(
    set: &LoadedSet,
    cfg: &TrainConfig,
    model_name: &str,
    fingerprint: &DatasetFingerprint,
) -> Result<(), TrainError> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: set.state_path.clone(),
        reason,
    };
    let state = &set.state;
    if state.model != model_name {
        return Err(bad(format!(
            "a run of {}, not of {model_name}; resume it as it was started",
            state.model
        )));
    }
    if state.dataset != *fingerprint {
        let (was, now) = (&state.dataset, fingerprint);
        return Err(bad(format!(
            "the dataset changed since this run started: it trained on {} ({} train / {} val \
             images, {} classes, fingerprint {:08x}), now {} ({} / {} images, {} classes, \
             fingerprint {:08x})",
            was.description,
            was.train_images,
            was.val_images,
            was.class_names.len(),
            was.crc32c,
            now.description,
            now.train_images,
            now.val_images,
            now.class_names.len(),
            now.crc32c
        )));
    }
    let now = serde_json::to_value(cfg).expect("config serialises");
    // Read back through TrainConfig: a key added since the run started (`shuffle`) takes its
    // default, which is what the run did, instead of counting as a change.
    let was = serde_json::from_value::<TrainConfig>(state.train_config.clone())
        .map(|c| serde_json::to_value(c).expect("config serialises"))
        .unwrap_or_else(|_| state.train_config.clone());
    if was != now {
        let keys: Vec<String> = match (&was, &now) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => b
                .iter()
                .filter(|(k, v)| a.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => vec!["train_config".into()],
        };
        return Err(bad(format!(
            "the training configuration differs from the run's (in: {}); a resumed run keeps \
             its configuration",
            keys.join(", ")
        )));
    }
    Ok(())
}

/// Writes the checkpoint sets of one run.
struct Checkpointer<'a> {
    dir: &'a Path,
    cfg: &'a TrainConfig,
    model_name: &'a str,
    num_classes: usize,
    fingerprint: &'a DatasetFingerprint,
    launch: &'a serde_json::Value,
    /// `checkpoint.json` less the epoch and accuracy.
    meta: CheckpointMeta,
}

impl Checkpointer<'_> {
    fn state(&self, optim: &Optimizer, progress: &Progress) -> TrainState {
        TrainState {
            format: STATE_FORMAT.into(),
            model: self.model_name.into(),
            num_classes: self.num_classes,
            dataset: self.fingerprint.clone(),
            train_config: serde_json::to_value(self.cfg).expect("config serialises"),
            launch: self.launch.clone(),
            optimizer_steps: optim.steps(),
            progress: progress.clone(),
            files: Default::default(),
        }
    }

    fn files(
        &self,
        model: &Model,
        optim: &Optimizer,
        ema: Option<&ModelEma>,
    ) -> Result<SetFiles, TrainError> {
        Ok(SetFiles {
            weights: safetensors_bytes(&model.valid())?,
            optimizer: optimizer_state_bytes(&optim.export_state(model)),
            ema: ema.map(|e| safetensors_bytes(&e.model)).transpose()?,
            meta: None,
        })
    }

    fn save(
        &self,
        slot: Slot,
        model: &Model,
        optim: &Optimizer,
        ema: Option<&ModelEma>,
        progress: &Progress,
    ) -> Result<(), TrainError> {
        let files = self.files(model, optim, ema)?;
        save_set(self.dir, slot, files, self.state(optim, progress))
    }

    fn save_best(
        &self,
        model: &Model,
        optim: &Optimizer,
        ema: Option<&ModelEma>,
        progress: &Progress,
        epoch: usize,
        val_accuracy: f64,
    ) -> Result<(), TrainError> {
        let meta = CheckpointMeta {
            epoch,
            val_accuracy: Some(val_accuracy),
            ..self.meta.clone()
        };
        let mut files = self.files(model, optim, ema)?;
        files.meta =
            Some(serde_json::to_vec_pretty(&meta).expect("checkpoint metadata serialises"));
        save_set(self.dir, Slot::Best, files, self.state(optim, progress))
    }
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
