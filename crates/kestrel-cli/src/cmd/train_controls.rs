//! `kestrel train` flags for resuming, checkpointing and the training controls (EMA, gradient
//! clipping and accumulation, early stopping); they fill the matching `TrainConfig` fields.

use std::path::PathBuf;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use kestrel_train::grad::ClipMode;
use kestrel_train::TrainConfig;

#[derive(Args, Debug)]
pub struct ControlArgs {
    /// Continue the run in DIR from its last checkpoint (`last.*`): model, optimizer state,
    /// schedule, EMA, RNGs and loader position, mid-epoch too. The run keeps its saved
    /// configuration and data flags; --data and --model may be given to check they still match.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Also write the resumable `last.*` checkpoint every N optimizer steps (0 = at epoch ends
    /// only).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().checkpoint_every)]
    pub checkpoint_every: usize,
    /// Keep a model EMA (timm's ModelEmaV3: parameters and BatchNorm statistics), validated each
    /// epoch and saved as `model.ema.safetensors` / `last.ema.safetensors`.
    #[arg(long)]
    pub ema: bool,
    /// EMA decay per optimizer step.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().ema_decay)]
    pub ema_decay: f64,
    /// EMA decay warm-up, as ModelEmaV3's use_warmup: decay = min(F, 1 − (1 + t)^(−2/3)).
    #[arg(long)]
    pub ema_warmup: bool,
    /// The EMA is the model that counts (timm's train.py with --model-ema): the best epoch is
    /// chosen by the EMA's validation accuracy, and model.safetensors holds its EMA weights.
    #[arg(long)]
    pub ema_eval: bool,
    /// Flip test-time augmentation in the final test report: each image scores the mean of its
    /// own and its horizontal mirror's class probabilities (as airbench evaluates).
    #[arg(long)]
    pub tta_flip: bool,
    /// Clip gradients at F before each update, as --clip-mode says (default: no clipping).
    #[arg(long, value_name = "F")]
    pub clip_grad: Option<f64>,
    /// norm (global L2 norm ≤ F, torch clip_grad_norm_), value (each element in [−F, F]) or
    /// agc (timm's adaptive clipping: per unit ‖g‖ ≤ F·max(‖w‖, 1e-3); F ≈ 0.01).
    #[arg(long, value_name = "MODE", default_value_t = TrainConfig::default().clip_mode)]
    pub clip_mode: ClipMode,
    /// Sum the gradients of N batches into each optimizer update (the schedule counts updates).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().grad_accum)]
    pub grad_accum: usize,
    /// Early stopping: stop after N epochs without a better validation accuracy.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
}

impl ControlArgs {
    pub fn apply(&self, cfg: &mut TrainConfig) {
        cfg.checkpoint_every = self.checkpoint_every;
        cfg.ema = self.ema;
        cfg.ema_decay = self.ema_decay;
        cfg.ema_warmup = self.ema_warmup;
        cfg.ema_eval = self.ema_eval;
        cfg.tta_flip = self.tta_flip;
        cfg.clip_grad = self.clip_grad;
        cfg.clip_mode = self.clip_mode;
        cfg.grad_accum = self.grad_accum;
        cfg.patience = self.patience;
    }
}

/// Flags a resumed run may take: where it runs and what it shows, and the data and model flags,
/// which are checked against the run.
const RESUME_FLAGS: &[&str] = &[
    "resume",
    "quiet",
    "device",
    "model",
    "data",
    "val_dir",
    "val_fraction",
];

/// A resumed run keeps its configuration: any other flag given is an error naming it.
pub fn check_resume_flags(matches: &ArgMatches, run: &std::path::Path) -> Result<()> {
    for id in matches.ids() {
        let id = id.as_str();
        // Flattened structs appear as argument groups named after them.
        let is_group = id.chars().any(|c| c.is_ascii_uppercase());
        if !is_group
            && matches.value_source(id) == Some(ValueSource::CommandLine)
            && !RESUME_FLAGS.contains(&id)
        {
            anyhow::bail!(
                "--{}: a resumed run keeps the configuration it was started with (saved in {}); \
                 drop the flag, or start a new run",
                id.replace('_', "-"),
                run.join("last.state.json").display()
            );
        }
    }
    Ok(())
}
