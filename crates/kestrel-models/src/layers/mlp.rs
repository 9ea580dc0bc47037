//! timm's `Mlp` (`timm/layers/mlp.py`): `fc1`, GELU, dropout, `fc2`, dropout, on channels-last
//! tokens (ViT/DeiT, Swin, MaxViT blocks); and its `ConvMlp`, the same with 1×1 convs on NCHW
//! maps (CoAtNet's transformer blocks).

use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, gelu_approximate};

use super::{conv2d_init, trunc_normal, Counted};

/// The hidden activation: timm's `gelu` (erf) or `gelu_tanh` (the TensorFlow ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpAct {
    Gelu,
    GeluTanh,
}

impl MlpAct {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            MlpAct::Gelu => gelu(x),
            MlpAct::GeluTanh => gelu_approximate(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub drop: Dropout,
    #[module(skip)]
    pub act: MlpAct,
}

impl Mlp {
    /// `dim` -> `hidden` -> `dim`, timm's `Mlp(dim, hidden, drop=drop)`.
    pub fn new(dim: usize, hidden: usize, drop: f64, device: &Device) -> Self {
        let linear = |i, o| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        Mlp {
            fc1: linear(dim, hidden),
            fc2: linear(hidden, dim),
            drop: DropoutConfig::new(drop).init(),
            act: MlpAct::Gelu,
        }
    }

    pub fn with_act(self, act: MlpAct) -> Self {
        Mlp { act, ..self }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = self.drop.forward(self.act.apply(self.fc1.run(x)));
        self.drop.forward(self.fc2.run(x))
    }
}

/// timm's `ConvMlp` without its (identity) norm: `fc1` 1×1 conv, act, dropout, `fc2` 1×1 conv.
#[derive(Module, Debug)]
pub struct ConvMlp {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
    pub drop: Dropout,
    #[module(skip)]
    pub act: MlpAct,
}

impl ConvMlp {
    pub fn new(dim: usize, hidden: usize, drop: f64, act: MlpAct, device: &Device) -> Self {
        let conv = |i, o| conv2d_init(i, o, 1, 1, 0, 1, true, trunc_normal(), device);
        ConvMlp {
            fc1: conv(dim, hidden),
            fc2: conv(hidden, dim),
            drop: DropoutConfig::new(drop).init(),
            act,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.drop.forward(self.act.apply(self.fc1.run(x)));
        self.fc2.run(x)
    }
}
