//! torch.optim.Adam and AdamW, `_single_tensor_adam` (AdamW is Adam with decoupled decay).

use burn::prelude::*;

use super::{OptimizerConfig, OptimizerKind, ParamState, ParamStep};

pub(super) fn step(
    config: &OptimizerConfig,
    step: &ParamStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: Option<ParamState>,
) -> (Tensor<1>, ParamState) {
    let [beta1, beta2] = config.betas;
    let (count, exp_avg, exp_avg_sq) = match state {
        Some(ParamState::Adam {
            step,
            exp_avg,
            exp_avg_sq,
        }) => (step + 1, exp_avg, exp_avg_sq),
        _ => (1, param.zeros_like(), param.zeros_like()),
    };
    let mut param = param;
    let mut grad = grad;
    if step.weight_decay != 0.0 {
        if config.kind == OptimizerKind::Adamw {
            param = param.mul_scalar(1.0 - step.lr * step.weight_decay);
        } else {
            grad = grad + param.clone().mul_scalar(step.weight_decay);
        }
    }
    // exp_avg.lerp_(grad, 1 - beta1)
    let exp_avg = exp_avg.clone() + (grad.clone() - exp_avg).mul_scalar(1.0 - beta1);
    let exp_avg_sq = exp_avg_sq.mul_scalar(beta2) + grad.square().mul_scalar(1.0 - beta2);
    // Bias corrections in f64, as torch computes them in Python floats.
    let bias_correction1 = 1.0 - beta1.powi(count as i32);
    let bias_correction2_sqrt = (1.0 - beta2.powi(count as i32)).sqrt();
    let step_size = step.lr / bias_correction1;
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias_correction2_sqrt)
        .add_scalar(config.eps());
    let param = param - (exp_avg.clone() / denom).mul_scalar(step_size);
    (
        param,
        ParamState::Adam {
            step: count,
            exp_avg,
            exp_avg_sq,
        },
    )
}
