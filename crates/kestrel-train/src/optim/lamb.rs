//! timm's Lamb, `_single_tensor_lamb` (the NVIDIA FusedLAMB variant).

use burn::prelude::*;

use super::{OptimizerConfig, ParamState, ParamStep};

pub(super) fn step(
    config: &OptimizerConfig,
    step: &ParamStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: Option<ParamState>,
) -> (Tensor<1>, ParamState) {
    let [beta1, beta2] = config.betas;
    let (exp_avg, exp_avg_sq) = match state {
        Some(ParamState::Lamb {
            exp_avg,
            exp_avg_sq,
        }) => (exp_avg, exp_avg_sq),
        _ => (param.zeros_like(), param.zeros_like()),
    };
    let grad = match step.grad_divisor {
        Some(divisor) => grad / divisor.clone(),
        None => grad,
    };
    let exp_avg = if config.lamb_grad_averaging {
        // exp_avg.lerp_(grad, 1 - beta1)
        exp_avg.clone() + (grad.clone() - exp_avg).mul_scalar(1.0 - beta1)
    } else {
        exp_avg.mul_scalar(beta1) + grad.clone()
    };
    let exp_avg_sq = exp_avg_sq.mul_scalar(beta2) + grad.square().mul_scalar(1.0 - beta2);
    let t = step.group_step as i32;
    let bias_correction1 = 1.0 - beta1.powi(t);
    let bias_correction2 = 1.0 - beta2.powi(t);
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias_correction2.sqrt())
        .add_scalar(config.eps());
    let mut update = exp_avg.clone().div_scalar(bias_correction1) / denom;
    if step.weight_decay != 0.0 {
        update = update + param.clone().mul_scalar(step.weight_decay);
    }
    // The layer-wise trust ratio ‖p‖/‖update‖, left at 1 where either norm is 0; by default
    // only for parameters that have weight decay.
    if step.weight_decay != 0.0 || config.lamb_always_adapt {
        let weight_norm = param.clone().square().sum().sqrt();
        let update_norm = update.clone().square().sum().sqrt();
        let both_positive = weight_norm
            .clone()
            .greater_elem(0.0)
            .bool_and(update_norm.clone().greater_elem(0.0));
        let ratio = weight_norm
            .ones_like()
            .mask_where(both_positive, weight_norm / update_norm);
        let ratio = if config.lamb_trust_clip {
            ratio.clamp_max(1.0)
        } else {
            ratio
        };
        update = update * ratio;
    }
    (
        param - update.mul_scalar(step.lr),
        ParamState::Lamb {
            exp_avg,
            exp_avg_sq,
        },
    )
}
