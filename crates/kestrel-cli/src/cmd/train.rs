use std::path::PathBuf;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::Args;
use kestrel_data::recipe::Recipe;
use kestrel_train::optim::OptimizerKind;
use kestrel_train::schedule::ScheduleKind;
use kestrel_train::{ExistingRun, RunDir, TrainConfig, TrainError};

use super::common::{at_least_one, fresh_run_dir, DataArgs, ImgSizeArg};
use super::train_controls::{check_resume_flags, ControlArgs};
use super::train_finetune::FinetuneArgs;
use super::train_optim::OptimArgs;
use crate::device::{parse_device, DEVICE_HELP};

#[derive(Args, Debug)]
#[command(
    // `--lr -0.1` reaches the trainer's check and its message instead of clap's "unexpected argument".
    allow_negative_numbers = true,
    after_help = "Examples:\n  kestrel train                                   # LeNet-5 on the embedded MNIST subset\n  kestrel train --data /usr/share/datasets/fashion-mnist --epochs 15\n  kestrel train --data photos/ --model resnet20_cifar --optimizer sgd --lr 0.1\n  kestrel train --optimizer sgd --nesterov --lr 0.1 --schedule multistep --decay-milestones 4,8 --warmup-epochs 0\n  kestrel train --optimizer lamb --lr 5e-3 --weight-decay 0.02 --schedule cosine-restarts --restart-epochs 2 --restart-mult 2"
)]
pub struct TrainArgs {
    /// The whole training configuration as TOML (keys: the flags' names with `_`, e.g.
    /// `lr = 0.1`, `optimizer = "sgd"`, `label_smoothing = 0.1`), or a built-in recipe:
    /// `fashion-fast` (Fashion-MNIST in ~30 min on 2 cores), `fashion-best`. Flags given on the
    /// command line override it; an unknown key is an error. The effective configuration is
    /// saved in the run folder as config.toml (which --config reads back).
    #[arg(long, value_name = "FILE|NAME")]
    pub config: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Model name (see `kestrel models`).
    #[arg(long, default_value_t = TrainConfig::default().model)]
    pub model: String,
    /// Passes over the training split.
    #[arg(long, default_value_t = TrainConfig::default().epochs, value_parser = at_least_one)]
    pub epochs: usize,
    /// Images per optimizer step (also the evaluation batch).
    #[arg(long, visible_alias = "batch", default_value_t = TrainConfig::default().batch_size,
          value_parser = at_least_one)]
    pub batch_size: usize,
    #[command(flatten)]
    pub img_size: ImgSizeArg,
    /// Peak learning rate (reached after warm-up).
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    /// The lowest learning rate: the floor of cosine, cosine-restarts and poly, and where
    /// onecycle ends.
    #[arg(long, default_value_t = TrainConfig::default().min_lr)]
    pub min_lr: f64,
    /// sgd (torch SGD: --momentum, --dampening, --nesterov), adam, adamw (torch Adam/AdamW:
    /// --opt-betas, --opt-eps), rmsprop (torch RMSprop), rmsproptf (timm's TensorFlow-style
    /// RMSprop), lamb (timm's Lamb: trust ratio, global grad-norm clip). 1-D parameters
    /// (biases, norms) get no weight decay, as timm's param_groups_weight_decay.
    #[arg(long, visible_alias = "opt", default_value_t = TrainConfig::default().optimizer)]
    pub optimizer: OptimizerKind,
    /// Momentum of sgd, rmsprop and rmsproptf (0 = none).
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    pub momentum: f64,
    /// Nesterov momentum for sgd (timm's `--opt sgd` is Nesterov; here it is this flag).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay (decoupled for adamw, inside the trust ratio for lamb); none on 1-D
    /// parameters.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// step, multistep, exponential, cosine, cosine-restarts (SGDR), onecycle, poly or constant,
    /// after a linear warm-up of --warmup-epochs.
    #[arg(long, visible_alias = "sched", default_value_t = TrainConfig::default().schedule)]
    pub schedule: ScheduleKind,
    /// Linear warm-up from --warmup-lr to --lr, in epochs (fractions allowed), before the
    /// schedule starts; cut to half the run when longer.
    #[arg(long, default_value_t = TrainConfig::default().warmup_epochs)]
    pub warmup_epochs: f64,
    /// Label smoothing ε: targets 1 − ε + ε/K and ε/K (for ce and bce).
    #[arg(long, visible_alias = "smoothing", default_value_t = TrainConfig::default().label_smoothing)]
    pub label_smoothing: f32,
    /// Stochastic depth rate (timm's --drop-path). kestrel's models have no stochastic depth
    /// yet: only 0 is accepted, so that a timm command line is not silently changed.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub drop_path: f64,
    /// Training precision: f32 (default), or f16/bf16 mixed precision on a GPU device (f32
    /// parameters and optimizer, forward and backward in half; f16 with dynamic loss scaling).
    /// The CPU trains in f32 only.
    #[arg(long, value_name = "f32|f16|bf16", default_value = "f32")]
    pub precision: kestrel_train::Precision,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[command(flatten)]
    pub controls: ControlArgs,
    #[command(flatten)]
    pub finetune: FinetuneArgs,
    /// Random-crop padding in pixels (0 = no random crop). Not for ImageFolder photos, which
    /// train with timm's RandomResizedCrop + flip unless a recipe says otherwise.
    #[arg(long, default_value_t = TrainConfig::default().crop_padding)]
    pub crop_padding: usize,
    /// Random horizontal flips (not for digits).
    #[arg(long)]
    pub hflip: bool,
    /// Take the training batches in dataset order every epoch (torch's
    /// `DataLoader(shuffle=False)`) instead of a fresh seeded order: for comparing a run
    /// step by step with another training loop. TOML key: `shuffle = false`.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Augmentation recipe: a preset (basic, randaugment, autoaugment, trivialaugment, deit,
    /// cifar, cifar-autoaugment, mnist) with optional overrides, e.g.
    /// `randaugment,hflip=0.0,mixup.mixup_alpha=0.2`. Replaces --crop-padding/--hflip.
    #[arg(long, value_name = "SPEC", conflicts_with = "recipe_file")]
    pub recipe: Option<String>,
    /// Augmentation recipe from a JSON or TOML file (`preset = "..."` plus overrides). Its own
    /// `input_size`, when it states one, is the input size (--img-size wins over it).
    #[arg(long, value_name = "FILE")]
    pub recipe_file: Option<PathBuf>,
    /// Seed for initialisation, shuffling and augmentation: same seed, machine and thread count
    /// give the same run.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Data-loading threads (0 = all cores).
    #[arg(long, default_value_t = TrainConfig::default().workers)]
    pub workers: usize,
    /// Run folder for the checkpoint, metrics.json and logs (default: runs/<model>, or
    /// runs/<model>-2, ... when taken). An existing non-empty folder is an error.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start from a checkpoint folder's architecture and weights instead of a fresh model:
    /// fine-tunes a `kestrel prune` folder (its smaller channel counts included). --model
    /// defaults to the folder's model, --img-size to its input size.
    #[arg(long, value_name = "DIR")]
    pub init_from: Option<PathBuf>,
    /// Replace the earlier run in --out (the whole folder; only a kestrel run folder).
    #[arg(long)]
    pub overwrite: bool,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    /// No progress bar (logs per epoch only).
    #[arg(long)]
    pub quiet: bool,
}

/// The registry's spelling of a model name, keeping a `.TAG` (it selects the data config).
fn registry_spelling(model: &str) -> Result<String> {
    let spec = kestrel_models::find(model)?;
    Ok(match model.trim().to_ascii_lowercase().split_once('.') {
        Some((_, tag)) => format!("{}.{tag}", spec.name),
        None => spec.name.to_string(),
    })
}

/// The TrainConfig keys a typed flag sets (most flags are their key; keys that are not
/// TrainConfig's are ignored by the merge).
fn config_keys(flag_id: &str) -> Vec<&str> {
    match flag_id {
        "recipe" => vec!["recipe"],
        "recipe_file" => vec!["recipe", "input_hw"],
        "img_size" => vec!["input_hw"],
        "lamb_no_grad_averaging" => vec!["lamb_grad_averaging"],
        "bce_target_thresh" => vec!["bce_target_threshold"],
        "no_shuffle" => vec!["shuffle"],
        id => vec![id],
    }
}

/// The library names TrainConfig fields; the user typed flags.
fn with_flag_names(e: TrainError) -> anyhow::Error {
    match e {
        TrainError::InvalidField {
            field,
            value,
            reason,
        } => anyhow::anyhow!("--{} {value}: {reason}", field.replace('_', "-")),
        e => e.into(),
    }
}

pub fn run(a: TrainArgs, matches: &clap::ArgMatches) -> Result<()> {
    run_with(a, matches, None)
}

/// `train`, or with `distill` the student's run of `kestrel distill`.
pub fn run_with(
    a: TrainArgs,
    matches: &clap::ArgMatches,
    distill: Option<kestrel_train::DistillConfig>,
) -> Result<()> {
    let device = parse_device(&a.device)?;
    if a.drop_path != 0.0 {
        anyhow::bail!(
            "--drop-path {}: kestrel's models have no stochastic depth yet; drop the flag (or give 0)",
            a.drop_path
        );
    }
    let recipe_spec = a
        .recipe
        .clone()
        .or_else(|| a.recipe_file.as_ref().map(|f| f.display().to_string()));
    let resume = a.controls.resume.clone();
    if let Some(run) = &resume {
        check_resume_flags(matches, run)?;
    }
    let mut cfg = TrainConfig {
        model: registry_spelling(&a.model)?,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        min_lr: a.min_lr,
        optimizer: a.optimizer,
        momentum: a.momentum,
        nesterov: a.nesterov,
        weight_decay: a.weight_decay,
        schedule: a.schedule,
        warmup_epochs: a.warmup_epochs,
        label_smoothing: a.label_smoothing,
        crop_padding: a.crop_padding,
        hflip: a.hflip,
        shuffle: !a.no_shuffle,
        seed: a.seed,
        workers: a.workers,
        skip_bad_images: a.data.skip_bad_images,
        precision: a.precision,
        recipe: match (&a.recipe, &a.recipe_file) {
            (Some(spec), _) => Some(Recipe::parse_cli(spec)?),
            (None, Some(file)) => Some(Recipe::from_file(file)?),
            (None, None) => None,
        },
        ..TrainConfig::default()
    };
    // An explicit size wins: --img-size, else a recipe's own input_size.
    cfg.input_hw = match (a.img_size.hw(), &cfg.recipe, &recipe_spec) {
        (Some(hw), _, _) => Some(hw),
        (None, Some(r), Some(spec)) if kestrel_data::recipe::states_input_size(spec)? => {
            Some([r.input_size[1], r.input_size[2]])
        }
        _ => None,
    };
    if let Some(dir) = &a.init_from {
        let init = kestrel_train::Checkpoint::open(dir)?;
        if matches.value_source("model") != Some(clap::parser::ValueSource::CommandLine) {
            cfg.model = init.meta.model.clone();
        }
        let [_, h, w] = init.meta.input_size();
        cfg.input_hw = cfg.input_hw.or(Some([h, w]));
        cfg.init_from = Some(dir.clone());
    }
    a.optim.apply(&mut cfg);
    a.controls.apply(&mut cfg);
    a.finetune.apply(&mut cfg)?;
    if let Some(spec) = &a.config {
        let file = kestrel_train::config_file::read_config(spec)?;
        let typed: Vec<&str> = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .flat_map(|id| config_keys(id.as_str()))
            .collect();
        cfg = kestrel_train::config_file::merge_config(&cfg, &file, &typed)?;
        cfg.model = registry_spelling(&cfg.model)
            .map_err(|e| anyhow::anyhow!("{}: model: {e:#}", file.origin))?;
    }
    if distill.is_some() {
        cfg.distill = distill;
    }
    let mut data = a.data.clone();
    if let Some(run) = &resume {
        // The run's own configuration and data flags; --model and --data, when given, are
        // checked against the run instead.
        let (state, state_path) =
            kestrel_train::run_state::read_state(run, kestrel_train::run_state::Slot::Last)?;
        let given_model = cfg.model.clone();
        cfg = serde_json::from_value(state.train_config.clone())
            .map_err(|e| anyhow::anyhow!("{}: its train_config: {e}", state_path.display()))?;
        if matches.value_source("model") == Some(clap::parser::ValueSource::CommandLine) {
            cfg.model = given_model;
        }
        let saved: DataArgs = serde_json::from_value(state.launch.clone())
            .map_err(|e| anyhow::anyhow!("{}: its data flags: {e}", state_path.display()))?;
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        data = DataArgs {
            data: if given("data") { data.data } else { saved.data },
            val_dir: if given("val_dir") {
                data.val_dir
            } else {
                saved.val_dir
            },
            val_fraction: if given("val_fraction") {
                data.val_fraction
            } else {
                saved.val_fraction
            },
            skip_bad_images: saved.skip_bad_images,
        };
    }
    // Checked before the data is read: an earlier run is never overwritten by accident, and a
    // resumed run keeps its folder.
    let existing = if resume.is_some() {
        ExistingRun::Keep
    } else if a.overwrite {
        ExistingRun::Replace
    } else {
        ExistingRun::Refuse
    };
    let out_path = match (&resume, &a.out) {
        (Some(run), _) => run.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => fresh_run_dir(std::path::Path::new("runs"), &cfg.model),
    };
    let out = RunDir::prepare(&out_path, existing)?;
    let splits = data.open()?;
    println!(
        "kestrel train: {} on {} ({} train / {} val / {} test images)",
        cfg.model,
        splits.description,
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
    );
    println!("run folder: {}", out.path.display());
    let opts = kestrel_train::RunOptions {
        show_progress: !a.quiet,
        resume: resume.is_some(),
        launch: serde_json::to_value(&data).expect("data flags serialise"),
    };
    let outcome = match kestrel_train::train_run(&cfg, &splits, &out.path, &device, &opts) {
        Ok(o) => o,
        Err(e) => {
            if out.discard_unfinished() {
                eprintln!(
                    "note: removed {} (the run failed before its first checkpoint)",
                    out.path.display()
                );
            }
            return Err(with_flag_names(e));
        }
    };
    println!(
        "trained {} epochs in {:.1}s; best validation accuracy {:.2}% at epoch {}",
        outcome.history.len(),
        outcome.seconds,
        100.0 * outcome.best_val_accuracy,
        outcome.best_epoch
    );
    println!(
        "\nevaluation on the test split ({}) of {}:",
        splits.test_origin, splits.description
    );
    println!("{}", outcome.test_report.to_table());
    println!("metrics written to {}", outcome.metrics_path.display());
    Ok(())
}
