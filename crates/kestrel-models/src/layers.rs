//! Small building blocks shared by the model families: conv + BN helpers with PyTorch padding
//! semantics, so that every family reads like its timm counterpart.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;

/// PyTorch's default init for conv/linear weights is Kaiming-uniform with a = sqrt(5); timm's
/// ResNet re-initialises convs with Kaiming-normal (fan_out, relu). We use the latter for convs.
pub fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }
}

/// A conv with symmetric PyTorch-style padding (`padding=p` on every side).
pub fn conv2d(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_groups(groups)
        .with_bias(bias)
        .with_initializer(kaiming_normal_fan_out())
        .init(device)
}

pub fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features).init(device)
}

/// Global average pooling over H and W: [N, C, H, W] -> [N, C].
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dims(&[2, 3]).reshape([n, c])
}
