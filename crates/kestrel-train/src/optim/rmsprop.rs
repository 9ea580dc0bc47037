//! torch.optim.RMSprop (`_single_tensor_rmsprop`) and timm's RMSpropTF
//! (`_single_tensor_rmsprop_tf`), which differ in three places: the square average starts at
//! one, eps goes inside the square root, and the lr is accumulated in the momentum buffer.

use burn::prelude::*;

use super::{OptimizerConfig, OptimizerKind, ParamState, ParamStep};

pub(super) fn step(
    config: &OptimizerConfig,
    step: &ParamStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: Option<ParamState>,
) -> (Tensor<1>, ParamState) {
    let tensorflow = config.kind == OptimizerKind::Rmsproptf;
    let alpha = config.rmsprop_alpha;
    let eps = config.eps();
    let (square_avg, grad_avg, momentum_buffer) = match state {
        Some(ParamState::Rmsprop {
            square_avg,
            grad_avg,
            momentum_buffer,
        }) => (square_avg, grad_avg, momentum_buffer),
        _ => (
            if tensorflow {
                param.ones_like()
            } else {
                param.zeros_like()
            },
            None,
            None,
        ),
    };
    let mut grad = grad;
    if step.weight_decay != 0.0 {
        grad = grad + param.clone().mul_scalar(step.weight_decay);
    }
    let square_avg = if tensorflow {
        // square_avg.add_(grad.pow(2) - square_avg, alpha=1 - alpha): TensorFlow's order.
        square_avg.clone() + (grad.clone().square() - square_avg).mul_scalar(1.0 - alpha)
    } else {
        square_avg.mul_scalar(alpha) + grad.clone().square().mul_scalar(1.0 - alpha)
    };
    let grad_avg = config.centered.then(|| {
        let previous = grad_avg.unwrap_or_else(|| grad.zeros_like());
        previous.clone() + (grad.clone() - previous).mul_scalar(1.0 - alpha)
    });
    let variance = match &grad_avg {
        Some(mean) => square_avg.clone() - mean.clone().square(),
        None => square_avg.clone(),
    };
    let avg = if tensorflow {
        variance.add_scalar(eps).sqrt()
    } else {
        variance.sqrt().add_scalar(eps)
    };
    let (param, momentum_buffer) = if config.momentum > 0.0 {
        let buffer = momentum_buffer.unwrap_or_else(|| grad.zeros_like());
        if tensorflow {
            let buffer = buffer.mul_scalar(config.momentum) + (grad / avg).mul_scalar(step.lr);
            (param - buffer.clone(), Some(buffer))
        } else {
            let buffer = buffer.mul_scalar(config.momentum) + grad / avg;
            (param - buffer.clone().mul_scalar(step.lr), Some(buffer))
        }
    } else {
        (param - (grad / avg).mul_scalar(step.lr), None)
    };
    (
        param,
        ParamState::Rmsprop {
            square_avg,
            grad_avg,
            momentum_buffer,
        },
    )
}
