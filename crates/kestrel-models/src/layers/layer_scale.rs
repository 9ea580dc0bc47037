//! timm's `LayerScale` (Touvron et al. 2021, CaiT): a learnt per-channel scale `gamma` of a
//! residual branch, on channels-last tokens.

use burn::module::Param;
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct LayerScale {
    /// timm's name. `LayerScale` is not a norm layer, so the loader keeps the name.
    pub gamma: Param<Tensor<1>>,
}

impl LayerScale {
    pub fn new(dim: usize, init_value: f64, device: &Device) -> Self {
        LayerScale {
            gamma: Param::from_tensor(Tensor::full([dim], init_value, device)),
        }
    }

    /// Scales the last dim.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut shape = [1usize; D];
        shape[D - 1] = self.gamma.dims()[0];
        x * self.gamma.val().reshape(shape)
    }
}

/// Applies an optional layer scale (timm's `nn.Identity` when `init_values` is None).
pub fn maybe_scale<const D: usize>(ls: &Option<LayerScale>, x: Tensor<D>) -> Tensor<D> {
    match ls {
        Some(ls) => ls.forward(x),
        None => x,
    }
}
