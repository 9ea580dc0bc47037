//! `kestrel train` flags for the optimizer, the lr schedule and the loss beyond the basic ones
//! in train.rs; they fill the matching `TrainConfig` fields.

use clap::Args;
use kestrel_train::loss::LossKind;
use kestrel_train::schedule::SchedulePer;
use kestrel_train::TrainConfig;

#[derive(Args, Debug)]
pub struct OptimArgs {
    /// SGD dampening: the momentum buffer takes (1 − F) of each gradient (torch's `dampening`).
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().dampening)]
    pub dampening: f64,
    /// Adam, AdamW and LAMB moment decay rates β1 β2 (e.g. `--opt-betas 0.9 0.999`).
    #[arg(long, value_name = "B", num_args = 2,
          default_values_t = TrainConfig::default().opt_betas.to_vec())]
    pub opt_betas: Vec<f64>,
    /// Optimizer epsilon (default: the optimizer's own: 1e-8 Adam/AdamW/RMSprop, 1e-10
    /// RMSpropTF, 1e-6 LAMB).
    #[arg(long, value_name = "F")]
    pub opt_eps: Option<f64>,
    /// RMSprop/RMSpropTF smoothing constant α (timm's 0.9; torch's own default is 0.99).
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().rmsprop_alpha)]
    pub rmsprop_alpha: f64,
    /// Centered RMSprop/RMSpropTF: normalise by the gradient's estimated variance.
    #[arg(long)]
    pub rmsprop_centered: bool,
    /// LAMB: clip the global gradient norm to F before each update (0 = no clipping).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub lamb_max_grad_norm: f64,
    /// LAMB: cap the trust ratio at 1 (LAMBC).
    #[arg(long)]
    pub lamb_trust_clip: bool,
    /// LAMB: apply the trust ratio to parameters without weight decay (biases, norms) too.
    #[arg(long)]
    pub lamb_always_adapt: bool,
    /// LAMB: add the whole gradient to the first moment instead of (1 − β1) of it.
    #[arg(long)]
    pub lamb_no_grad_averaging: bool,
    /// When the lr changes: every optimizer `step`, or once per `epoch` (timm's default).
    #[arg(long, value_name = "WHEN", default_value = "step")]
    pub schedule_per: SchedulePer,
    /// The lr at the first warm-up update (default: 1% of --lr); the warm-up rises linearly
    /// from it to --lr.
    #[arg(long, value_name = "F")]
    pub warmup_lr: Option<f64>,
    /// step: multiply the lr by --decay-rate every N epochs (counted after the warm-up).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().decay_epochs)]
    pub decay_epochs: f64,
    /// multistep: multiply the lr by --decay-rate at each of these epochs (counted after the
    /// warm-up), e.g. `--decay-milestones 30,60,90`.
    #[arg(long, value_name = "E", num_args = 1.., value_delimiter = ',',
          default_values_t = TrainConfig::default().decay_milestones)]
    pub decay_milestones: Vec<f64>,
    /// The lr factor of step and multistep at each decay, and of exponential per epoch.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().decay_rate)]
    pub decay_rate: f64,
    /// cosine-restarts (SGDR): the first cycle's length T0, in epochs.
    #[arg(long, value_name = "T0", default_value_t = TrainConfig::default().restart_epochs)]
    pub restart_epochs: f64,
    /// cosine-restarts: each cycle is T_MULT times as long as the one before.
    #[arg(long, value_name = "T_MULT", default_value_t = TrainConfig::default().restart_mult)]
    pub restart_mult: f64,
    /// cosine-restarts: each cycle's peak lr is F times the one before.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().restart_decay)]
    pub restart_decay: f64,
    /// poly: lr = min_lr + (lr − min_lr)·(1 − t/T)^P.
    #[arg(long, value_name = "P", default_value_t = TrainConfig::default().poly_power)]
    pub poly_power: f64,
    /// onecycle: the fraction of the run (after any warm-up) spent rising to --lr.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().onecycle_pct)]
    pub onecycle_pct: f64,
    /// onecycle: it starts at --lr / F (torch's div_factor) and ends at --min-lr.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().onecycle_div)]
    pub onecycle_div: f64,
    /// Loss: `ce` (softmax cross-entropy; soft targets with Mixup/CutMix) or `bce` (timm's
    /// BinaryCrossEntropy: a sigmoid per class, on the same smoothed or mixed targets).
    #[arg(long, value_name = "LOSS", default_value = "ce")]
    pub loss: LossKind,
    /// bce: targets above F become 1 and the rest 0 (timm's --bce-target-thresh).
    #[arg(long, value_name = "F")]
    pub bce_target_thresh: Option<f32>,
}

impl OptimArgs {
    pub fn apply(&self, cfg: &mut TrainConfig) {
        cfg.dampening = self.dampening;
        cfg.opt_betas = [self.opt_betas[0], self.opt_betas[1]];
        cfg.opt_eps = self.opt_eps;
        cfg.rmsprop_alpha = self.rmsprop_alpha;
        cfg.rmsprop_centered = self.rmsprop_centered;
        // 0 turns the clip off; a negative value stays, for the optimizer to reject by name.
        cfg.lamb_max_grad_norm =
            (self.lamb_max_grad_norm != 0.0).then_some(self.lamb_max_grad_norm);
        cfg.lamb_trust_clip = self.lamb_trust_clip;
        cfg.lamb_always_adapt = self.lamb_always_adapt;
        cfg.lamb_grad_averaging = !self.lamb_no_grad_averaging;
        cfg.schedule_per = self.schedule_per;
        cfg.warmup_lr = self.warmup_lr;
        cfg.decay_epochs = self.decay_epochs;
        cfg.decay_milestones = self.decay_milestones.clone();
        cfg.decay_rate = self.decay_rate;
        cfg.restart_epochs = self.restart_epochs;
        cfg.restart_mult = self.restart_mult;
        cfg.restart_decay = self.restart_decay;
        cfg.poly_power = self.poly_power;
        cfg.onecycle_pct = self.onecycle_pct;
        cfg.onecycle_div = self.onecycle_div;
        cfg.loss = self.loss;
        cfg.bce_target_threshold = self.bce_target_thresh;
    }
}
