//! timm's `Mlp` (`timm/layers/mlp.py`): `fc1`, GELU, dropout, `fc2`, dropout, on channels-last
//! tokens. Used by ViT/DeiT and Swin blocks.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::{trunc_normal, Counted};

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub drop: Dropout,
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
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = self.drop.forward(gelu(self.fc1.run(x)));
        self.drop.forward(self.fc2.run(x))
    }
}
