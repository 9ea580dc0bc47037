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
    // A second walk knows each parameter's rank, to put the flattened gradients back.
    struct Register<'a> {
        grads: &'a mut GradientsParams,
        clipped: std::collections::HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Register<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.clipped.remove(&param.id) {
                let dims: [usize; D] = param.val().dims();
                self.grads.register::<D>(param.id, g.reshape(dims));
            }
        }
    }
    module.visit(&mut Register { grads, clipped });
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
