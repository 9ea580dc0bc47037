//! Optimizers written out as torch.optim and timm.optim write them, so a kestrel step matches a
//! PyTorch step to float rounding (tests/optim_parity.rs checks that against committed fixtures).
//!
//! burn's own optimizers differ in small ways that matter for parity (AdamW's default eps, no
//! dampening, no LAMB clipping by the global gradient norm), and LAMB needs every gradient
//! before the first update, which burn's per-parameter `Optimizer` trait cannot see. So the
//! update rules live here, on burn tensors, applied by a `ModuleMapper` over the model.
//!
//! Parameter groups follow timm's `param_groups_weight_decay`: parameters of rank ≤ 1 (biases,
//! norm scales and shifts) get no weight decay; everything else gets `weight_decay`.

mod adam;
mod lamb;
mod rmsprop;
mod sgd;
mod state;

pub use state::OptimizerState;

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay.
    Sgd,
    /// torch.optim.Adam: L2 weight decay added to the gradient.
    Adam,
    /// torch.optim.AdamW: decoupled weight decay.
    Adamw,
    /// torch.optim.RMSprop.
    Rmsprop,
    /// timm's RMSpropTF: TensorFlow's RMSprop (eps inside the sqrt, square average starting at
    /// one, lr inside the momentum buffer).
    Rmsproptf,
    /// timm's Lamb: Adam moments, a per-layer trust ratio, global gradient-norm clipping.
    Lamb,
}

pub const OPTIMIZER_NAMES: &str = "sgd, adam, adamw, rmsprop, rmsproptf, lamb";

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::Adamw),
            "rmsprop" => Ok(OptimizerKind::Rmsprop),
            "rmsproptf" => Ok(OptimizerKind::Rmsproptf),
            "lamb" => Ok(OptimizerKind::Lamb),
            other => Err(format!(
                "unknown optimizer '{other}'; valid: {OPTIMIZER_NAMES}"
            )),
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Rmsprop => "rmsprop",
            OptimizerKind::Rmsproptf => "rmsproptf",
            OptimizerKind::Lamb => "lamb",
        })
    }
}

impl OptimizerKind {
    /// Each optimizer's own default eps (torch's and timm's).
    pub fn default_eps(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.0,
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Rmsprop => 1e-8,
            OptimizerKind::Rmsproptf => 1e-10,
            OptimizerKind::Lamb => 1e-6,
        }
    }
}

/// Every optimizer hyper-parameter; each optimizer reads the ones it has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Applied to parameters of rank ≥ 2 only (see the module docs).
    pub weight_decay: f64,
    /// SGD and RMSprop momentum.
    pub momentum: f64,
    /// SGD: the fraction of the gradient held back from the momentum buffer.
    pub dampening: f64,
    pub nesterov: bool,
    /// Adam, AdamW, LAMB: the moment decay rates.
    pub betas: [f64; 2],
    /// None: the optimizer's own default ([`OptimizerKind::default_eps`]).
    pub eps: Option<f64>,
    /// RMSprop/RMSpropTF smoothing constant (timm uses 0.9; torch's own default is 0.99).
    pub rmsprop_alpha: f64,
    /// RMSprop/RMSpropTF: normalise by the gradient's estimated variance.
    pub centered: bool,
    /// LAMB: the global gradient norm is clipped to this before the update (None: no clip).
    pub lamb_max_grad_norm: Option<f64>,
    /// LAMB: cap the trust ratio at 1 (LAMBC).
    pub lamb_trust_clip: bool,
    /// LAMB: apply the trust ratio to parameters without weight decay too.
    pub lamb_always_adapt: bool,
    /// LAMB: average the gradient into the first moment with weight 1 − β1 (else weight 1).
    pub lamb_grad_averaging: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adamw,
            weight_decay: 0.0,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            betas: [0.9, 0.999],
            eps: None,
            rmsprop_alpha: 0.9,
            centered: false,
            lamb_max_grad_norm: Some(1.0),
            lamb_trust_clip: false,
            lamb_always_adapt: false,
            lamb_grad_averaging: true,
        }
    }
}

impl OptimizerConfig {
    pub fn eps(&self) -> f64 {
        self.eps.unwrap_or_else(|| self.kind.default_eps())
    }

    /// Checks the values as torch's constructors do, naming the CLI flag in the error.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |flag: &str, value: f64, want: &str| {
            Err(TrainError::Config(format!(
                "{flag} {value}: must be {want}"
            )))
        };
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("--weight-decay", self.weight_decay, "a number ≥ 0");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("--momentum", self.momentum, "in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.dampening) {
            return bad("--dampening", self.dampening, "in [0, 1]");
        }
        if self.kind == OptimizerKind::Sgd
            && self.nesterov
            && (self.momentum <= 0.0 || self.dampening != 0.0)
        {
            return Err(TrainError::Config(
                "--nesterov needs --momentum > 0 and --dampening 0 (as torch.optim.SGD)".into(),
            ));
        }
        for (i, &beta) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(&beta) {
                return bad(&format!("--opt-betas (beta{})", i + 1), beta, "in [0, 1)");
            }
        }
        if let Some(eps) = self.eps {
            if !(eps > 0.0 && eps.is_finite()) {
                return bad("--opt-eps", eps, "a positive number");
            }
        }
        if !(0.0..=1.0).contains(&self.rmsprop_alpha) {
            return bad("--rmsprop-alpha", self.rmsprop_alpha, "in [0, 1]");
        }
        if let Some(norm) = self.lamb_max_grad_norm {
            if !(norm > 0.0 && norm.is_finite()) {
                return bad(
                    "--lamb-max-grad-norm",
                    norm,
                    "a positive number (0 turns it off)",
                );
            }
        }
        Ok(())
    }
}

/// Per-parameter optimizer state, named as torch names it in `optimizer.state[p]`.
#[derive(Clone, Debug)]
pub enum ParamState {
    Sgd {
        momentum_buffer: Option<Tensor<1>>,
    },
    Adam {
        step: u64,
        exp_avg: Tensor<1>,
        exp_avg_sq: Tensor<1>,
    },
    Rmsprop {
        square_avg: Tensor<1>,
        grad_avg: Option<Tensor<1>>,
        momentum_buffer: Option<Tensor<1>>,
    },
    Lamb {
        exp_avg: Tensor<1>,
        exp_avg_sq: Tensor<1>,
    },
}

/// One update of one parameter, flattened to 1-D: the rules are element-wise apart from
/// LAMB's norms, which are over the whole tensor anyway.
pub(crate) struct ParamStep<'a> {
    pub lr: f64,
    /// 0 for the no-decay group.
    pub weight_decay: f64,
    /// LAMB's step count (per group in timm, and every group steps together).
    pub group_step: u64,
    /// LAMB: max(1, global grad norm / max norm), the divisor of every gradient.
    pub grad_divisor: Option<&'a Tensor<1>>,
}

/// An optimizer over a whole burn module, stepped like burn's `ModuleOptimizer`.
#[derive(Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    states: HashMap<ParamId, ParamState>,
    steps: u64,
    /// Per-parameter lr multipliers (timm's `lr_scale` of a parameter group: layer-wise lr
    /// decay); parameters not listed get 1.
    lr_scales: HashMap<ParamId, f64>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Result<Self, TrainError> {
        config.validate()?;
        Ok(Optimizer {
            config,
            states: HashMap::new(),
            steps: 0,
            lr_scales: HashMap::new(),
        })
    }

    /// Sets the lr multiplier of each listed parameter (the rest keep 1).
    pub fn set_lr_scales(&mut self, scales: HashMap<ParamId, f64>) {
        self.lr_scales = scales;
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The state of one parameter, if it has had a step.
    pub fn state(&self, id: &ParamId) -> Option<&ParamState> {
        self.states.get(id)
    }

    /// Updates every parameter of `module` that has a gradient in `grads`, with learning rate
    /// `lr`; parameters without one (frozen) are left alone, as torch skips `p.grad is None`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        self.steps += 1;
        let grad_divisor = match (self.config.kind, self.config.lamb_max_grad_norm) {
            (OptimizerKind::Lamb, Some(max_norm)) => global_grad_divisor(&module, &grads, max_norm),
            _ => None,
        };
        let mut mapper = StepMapper {
            config: &self.config,
            states: &mut self.states,
            grads: &mut grads,
            lr,
            lr_scales: &self.lr_scales,
            group_step: self.steps,
            grad_divisor,
        };
        module.map(&mut mapper)
    }
}

struct StepMapper<'a> {
    config: &'a OptimizerConfig,
    states: &'a mut HashMap<ParamId, ParamState>,
    grads: &'a mut GradientsParams,
    lr: f64,
    lr_scales: &'a HashMap<ParamId, f64>,
    group_step: u64,
    grad_divisor: Option<Tensor<1>>,
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        // The update happens off the autodiff tape; the parameter goes back onto it with the
        // same require-grad flag and checkpointing strategy it came with.
        let was_autodiff = tensor.is_autodiff();
        let require_grad = tensor.is_require_grad();
        let checkpointing = tensor.gradient_checkpointing_strategy();
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let flat_param: Tensor<1> = tensor.inner().reshape([numel]);
        let flat_grad: Tensor<1> = grad.inner().reshape([numel]);

        let step = ParamStep {
            lr: self.lr * self.lr_scales.get(&id).copied().unwrap_or(1.0),
            weight_decay: if D <= 1 {
                0.0
            } else {
                self.config.weight_decay
            },
            group_step: self.group_step,
            grad_divisor: self.grad_divisor.as_ref(),
        };
        let state = self.states.remove(&id);
        let (updated, state) = match self.config.kind {
            OptimizerKind::Sgd => sgd::step(self.config, &step, flat_param, flat_grad, state),
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                adam::step(self.config, &step, flat_param, flat_grad, state)
            }
            OptimizerKind::Rmsprop | OptimizerKind::Rmsproptf => {
                rmsprop::step(self.config, &step, flat_param, flat_grad, state)
            }
            OptimizerKind::Lamb => lamb::step(self.config, &step, flat_param, flat_grad, state),
        };
        self.states.insert(id, state);

        let mut updated: Tensor<D> = updated.reshape(dims);
        if was_autodiff {
            updated = Tensor::from_inner(updated);
            if let Some(strategy) = checkpointing {
                updated = updated.with_gradient_checkpointing_strategy(strategy);
            }
            if require_grad {
                updated = updated.require_grad();
            }
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// timm Lamb's `_get_clip_grad_norm`: max(1, ‖(‖g_1‖, …, ‖g_n‖)‖ / max_norm), over every
/// parameter that has a gradient.
fn global_grad_divisor<M: Module>(
    module: &M,
    grads: &GradientsParams,
    max_norm: f64,
) -> Option<Tensor<1>> {
    struct NormCollector<'a> {
        grads: &'a GradientsParams,
        squared_norms: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for NormCollector<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let norm = grad.inner().square().sum().sqrt();
                self.squared_norms.push(norm.square());
            }
        }
    }
    let mut collector = NormCollector {
        grads,
        squared_norms: Vec::new(),
    };
    module.visit(&mut collector);
    if collector.squared_norms.is_empty() {
        return None;
    }
    let global = Tensor::cat(collector.squared_norms, 0).sum().sqrt();
    Some(global.div_scalar(max_norm).clamp_min(1.0))
}

impl crate::trainer::TrainConfig {
    /// The optimizer settings of this training config.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
            betas: self.opt_betas,
            eps: self.opt_eps,
            rmsprop_alpha: self.rmsprop_alpha,
            centered: self.rmsprop_centered,
            lamb_max_grad_norm: self.lamb_max_grad_norm,
            lamb_trust_clip: self.lamb_trust_clip,
            lamb_always_adapt: self.lamb_always_adapt,
            lamb_grad_averaging: self.lamb_grad_averaging,
        }
    }
}
