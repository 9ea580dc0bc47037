//! The activations and gates the MobileNet/EfficientNet builder, the fast engine's lowering and
//! the fused batch norm name (timm's `get_act_layer` names), as one enum.

use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::activation;

/// The activations and gates timm's builder uses, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    Relu6,
    /// x · relu6(x + 3) / 6
    HardSwish,
    /// SiLU, timm's `swish`.
    Silu,
    Sigmoid,
    /// relu6(x + 3) / 6, timm's and torchvision's `hard_sigmoid`.
    HardSigmoid,
}

impl Act {
    /// The kernels' name for this activation.
    pub fn kernel(self) -> kestrel_kernels::Act {
        match self {
            Act::Identity => kestrel_kernels::Act::Identity,
            Act::Relu => kestrel_kernels::Act::Relu,
            Act::Relu6 => kestrel_kernels::Act::Relu6,
            Act::HardSwish => kestrel_kernels::Act::HardSwish,
            Act::Silu => kestrel_kernels::Act::Silu,
            Act::Sigmoid => kestrel_kernels::Act::Sigmoid,
            Act::HardSigmoid => kestrel_kernels::Act::HardSigmoid,
        }
    }

    /// `self(bn(x))`, fused in training where the kernels can (see [`crate::layers::bn_then`]).
    pub fn after_bn<const D: usize>(self, bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
        crate::layers::bn_then(bn, x, self.kernel(), |y| self.apply(y))
    }

    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        // Each runs as one kestrel op each way where it can.
        if self == Act::Identity {
            return x;
        }
        let x = match crate::kernels::activation(x, self.kernel()) {
            Ok(y) => return y,
            Err(x) => x,
        };
        match self {
            Act::Identity => x,
            Act::Relu => activation::relu(x),
            Act::Relu6 => activation::relu6(x),
            Act::HardSwish => activation::hard_swish(x),
            Act::Silu => activation::silu(x),
            Act::Sigmoid => activation::sigmoid(x),
            Act::HardSigmoid => activation::hard_sigmoid(x, 1.0 / 6.0, 0.5),
        }
    }
}
