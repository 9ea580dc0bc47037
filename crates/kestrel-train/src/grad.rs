//! Gradient controls between backward and the optimizer step: clipping by global norm
//! (`torch.nn.utils.clip_grad_norm_`), by value (`clip_grad_value_`) or adaptively (timm's
//! `adaptive_clip_grad`), and the NaN/inf check.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// timm's `--clip-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipMode {
    /// Scale every gradient by min(1, max_norm / (‖all gradients‖₂ + 1e-6)).
    Norm,
    /// Clamp each gradient element to [−v, v].
    Value,
    /// Adaptive gradient clipping (NFNets): per output unit, cap ‖g‖ at
    /// factor · max(‖w‖, 1e-3).
    Agc,
}

impl std::str::FromStr for ClipMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "norm" => Ok(ClipMode::Norm),
            "value" => Ok(ClipMode::Value),
            "agc" => Ok(ClipMode::Agc),
            other => Err(format!(
                "unknown clip mode '{other}'; valid: norm, value, agc"
            )),
        }
    }
}

impl std::fmt::Display for ClipMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClipMode::Norm => "norm",
            ClipMode::Value => "value",
            ClipMode::Agc => "agc",
        })
    }
}

/// One parameter and its gradient, flattened; `dims` is the parameter's shape.
pub struct ParamGrad {
    pub dims: Vec<usize>,
    pub param: Tensor<1>,
    pub grad: Tensor<1>,
}

/// timm's `unitwise_norm`: the whole tensor's L2 norm for rank ≤ 1, else one norm per slice
/// along the first (output) dimension, broadcast back over the slice.
fn unitwise_norm(x: Tensor<1>, dims: &[usize]) -> Tensor<1> {
    let n = x.dims()[0];
    if dims.len() <= 1 {
        return x.square().sum().sqrt().expand([n]);
    }
    let rows = dims[0];
    let cols = n / rows.max(1);
    x.reshape([rows, cols])
        .square()
        .sum_dim(1)
        .sqrt()
        .expand([rows, cols])
        .reshape([n])
}

/// The clipped gradients, in the order of `items`.
pub fn clip(mode: ClipMode, threshold: f64, items: Vec<ParamGrad>) -> Vec<Tensor<1>> {
    match mode {
        ClipMode::Value => items
            .into_iter()
            .map(|i| i.grad.clamp(-threshold, threshold))
            .collect(),
        ClipMode::Norm => {
            if items.is_empty() {
                return Vec::new();
            }
            let norms: Vec<Tensor<1>> = items
                .iter()
                .map(|i| i.grad.clone().square().sum().sqrt())
                .collect();
            let total = Tensor::cat(norms, 0).square().sum().sqrt();
            let coef = total
                .add_scalar(1e-6)
                .recip()
                .mul_scalar(threshold)
                .clamp_max(1.0);
            items
                .into_iter()
                .map(|i| {
                    let n = i.grad.dims()[0];
                    i.grad.mul(coef.clone().expand([n]))
                })
                .collect()
        }
        ClipMode::Agc => items
            .into_iter()
            .map(|i| {
                let max_norm = unitwise_norm(i.param, &i.dims)
                    .clamp_min(1e-3)
                    .mul_scalar(threshold);
                let grad_norm = unitwise_norm(i.grad.clone(), &i.dims);
                let clipped = i
                    .grad
                    .clone()
                    .mul(max_norm.clone().div(grad_norm.clone().clamp_min(1e-6)));
                clipped.mask_where(grad_norm.lower(max_norm), i.grad)
            })
            .collect(),
    }
}

/// Each parameter of `module` that has a gradient, with it (flattened, off the tape).
fn param_grads<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(ParamId, ParamGrad)> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        found: Vec<(ParamId, ParamGrad)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(grad) = self.grads.get::<D>(param.id) else {
                return;
            };
            let p = param.val();
            let p = if p.is_autodiff() { p.inner() } else { p };
            let dims = p.dims().to_vec();
            let n: usize = dims.iter().product();
            self.found.push((
                param.id,
                ParamGrad {
                    dims,
                    param: p.reshape([n]),
                    grad: grad.reshape([n]),
                },
            ));
        }
    }
    let mut c = Collect {
        grads,
        found: Vec::new(),
    };
    module.visit(&mut c);
    c.found
}

/// Clips the gradients of `module` in place.
pub fn clip_gradients<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    mode: ClipMode,
    threshold: f64,
) {
    let (ids, items): (Vec<ParamId>, Vec<ParamGrad>) =
        param_grads(module, grads).into_iter().unzip();
    let clipped = ids.into_iter().zip(clip(mode, threshold, items)).collect();
    register_flat(module, grads, clipped);
}

/// Multiplies every gradient of `module` by `factor` in place.
pub fn scale_gradients<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    let scaled = param_grads(module, grads)
        .into_iter()
        .map(|(id, item)| (id, item.grad.mul_scalar(factor)))
        .collect();
    register_flat(module, grads, scaled);
}

/// Puts flattened gradients back under their parameters, in each parameter's shape (a walk of
/// the module knows the ranks).
fn register_flat<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    flat: std::collections::HashMap<ParamId, Tensor<1>>,
) {
    struct Register<'a> {
        grads: &'a mut GradientsParams,
        flat: std::collections::HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Register<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.flat.remove(&param.id) {
                let dims: [usize; D] = param.val().dims();
                self.grads.register::<D>(param.id, g.reshape(dims));
            }
        }
    }
    module.visit(&mut Register { grads, flat });
}

/// Dynamic loss scaling for f16 training, as torch's `GradScaler` with its defaults: the loss is
/// multiplied by `scale` before backward, so that small gradients survive f16's range; the
/// gradients are divided by it before the update. An update whose gradients overflowed is
/// skipped and the scale halved; after `GROWTH_INTERVAL` good updates in a row it doubles.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Good updates since the scale last changed.
    pub good_steps: u32,
    /// Updates skipped for overflow, over the whole run.
    pub skipped: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    pub const GROWTH_INTERVAL: u32 = 2000;
    /// Below this the gradients overflow however small the loss is made: the run has diverged.
    pub const MIN_SCALE: f64 = 1.0 / 65536.0;

    /// Unscales `grads` in place and says whether to apply them: false (skip the update, halve
    /// the scale) when any gradient is NaN or infinite.
    pub fn unscale<M: Module>(&mut self, module: &M, grads: &mut GradientsParams) -> bool {
        if !gradients_finite(module, grads) {
            self.scale *= 0.5;
            self.good_steps = 0;
            self.skipped += 1;
            return false;
        }
        scale_gradients(module, grads, 1.0 / self.scale);
        self.good_steps += 1;
        if self.good_steps >= Self::GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }
}

/// False when any gradient holds a NaN or an infinity.
pub fn gradients_finite<M: Module>(module: &M, grads: &GradientsParams) -> bool {
    all_finite(
        param_grads(module, grads)
            .into_iter()
            .map(|(_, i)| i.grad)
            .collect(),
    )
}

/// False when any parameter or buffer of `module` holds a NaN or an infinity (an update with
/// a huge learning rate can overflow the weights while the gradients were finite).
pub fn weights_finite<M: Module>(module: &M) -> bool {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let t = if t.is_autodiff() { t.inner() } else { t };
            let n: usize = t.dims().iter().product();
            self.0.push(t.reshape([n]));
        }
    }
    let mut c = Collect(Vec::new());
    module.visit(&mut c);
    all_finite(c.0)
}

/// One device read for all of them: `sum(t · 0)` is NaN exactly when `t` is not all finite.
fn all_finite(tensors: Vec<Tensor<1>>) -> bool {
    let probes: Vec<Tensor<1>> = tensors
        .into_iter()
        .map(|t| t.mul_scalar(0.0).sum())
        .collect();
    if probes.is_empty() {
        return true;
    }
    let probe: f32 = Tensor::cat(probes, 0).sum().into_scalar();
    probe.is_finite()
}
