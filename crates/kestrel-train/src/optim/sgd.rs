//! torch.optim.SGD, `_single_tensor_sgd`.

use burn::prelude::*;

use super::{OptimizerConfig, ParamState, ParamStep};

pub(super) fn step(
    config: &OptimizerConfig,
    step: &ParamStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: Option<ParamState>,
) -> (Tensor<1>, ParamState) {
    let mut grad = grad;
    if step.weight_decay != 0.0 {
        grad = grad + param.clone().mul_scalar(step.weight_decay);
    }
    let mut momentum_buffer = None;
    if config.momentum != 0.0 {
        let previous = match state {
            Some(ParamState::Sgd { momentum_buffer }) => momentum_buffer,
            _ => None,
        };
        // The first buffer is the gradient itself, undampened, as torch starts it.
        let buffer = match previous {
            None => grad.clone(),
            Some(buffer) => {
                buffer.mul_scalar(config.momentum) + grad.clone().mul_scalar(1.0 - config.dampening)
            }
        };
        grad = if config.nesterov {
            grad + buffer.clone().mul_scalar(config.momentum)
        } else {
            buffer.clone()
        };
        momentum_buffer = Some(buffer);
    }
    (
        param - grad.mul_scalar(step.lr),
        ParamState::Sgd { momentum_buffer },
    )
}
