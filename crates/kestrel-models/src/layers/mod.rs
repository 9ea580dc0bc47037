//! Building blocks shared by the model families (timm's `timm/layers`): conv + BN helpers with
//! PyTorch padding semantics, norms, drop-path and MAC counting here; in the submodules:
//! [`activations`] (`Act`, timm's activation names), [`padding`] (TF "same" padding,
//! `run_same`), [`channel_attention`] (SE/ECA/CBAM, and EfficientNet's SE), and the transformer
//! blocks [`attention`] (multi-head self-attention, fused qkv), [`mlp`], [`patch_embed`],
//! [`layer_scale`], [`pos_embed`] (absolute position-embedding resampling) and
//! [`pos_embed_rel`] (relative-position bias).
//!
//! A block goes here when more than one family uses it; a block only one family uses stays in
//! that family's file.

pub mod activations;
pub mod attention;
pub mod channel_attention;
pub mod layer_scale;
pub mod mlp;
pub mod padding;
pub mod patch_embed;
pub mod pos_embed;
pub mod pos_embed_rel;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;

/// PyTorch's default init for conv/linear weights is Kaiming-uniform with a = sqrt(5); timm's
/// ResNet re-initialises convs with Kaiming-normal (fan_out, relu). We use the latter for convs.
pub fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// A conv with symmetric PyTorch-style padding (`padding=p` on every side) and timm's ResNet
/// init ([`kaiming_normal_fan_out`]).
#[allow(clippy::too_many_arguments)]
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
    conv2d_init(
        in_ch,
        out_ch,
        kernel,
        stride,
        padding,
        groups,
        bias,
        kaiming_normal_fan_out(),
        device,
    )
}

/// [`conv2d`] with an explicit initializer (transformer stems and ConvNeXt use timm's
/// truncated normal, not the ResNet Kaiming init).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_init(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    init: Initializer,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_groups(groups)
        .with_bias(bias)
        .with_initializer(init)
        .init(device)
}

/// timm's `trunc_normal_(std=.02)` for transformer (and ConvNeXt) linears and convs; the
/// truncation at ±2 (100σ) never bites, so a plain normal is the same distribution.
pub fn trunc_normal() -> Initializer {
    Initializer::Normal {
        mean: 0.0,
        std: 0.02,
    }
}

pub fn batch_norm(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features).init(device)
}

/// `act(bn(x))`: in training on flex one fused kestrel op each way
/// ([`crate::kernels::batch_norm_act`]), else burn's `BatchNorm` followed by `burn_act`, which
/// must compute the same `act`.
pub fn bn_then<const D: usize>(
    bn: &BatchNorm,
    x: Tensor<D>,
    act: kestrel_kernels::Act,
    burn_act: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let x = match crate::kernels::batch_norm_act(bn, x, act) {
        Ok(y) => return y,
        Err(x) => x,
    };
    match crate::kernels::batch_norm_eval_act(bn, x, act) {
        Ok(y) => y,
        Err(x) => burn_act(bn.forward(x)),
    }
}

/// `bn(x)` (see [`bn_then`]).
pub fn bn<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    bn_then(bn, x, kestrel_kernels::Act::Identity, |y| y)
}

/// `relu(bn(x))` (see [`bn_then`]).
pub fn bn_relu<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    bn_then(
        bn,
        x,
        kestrel_kernels::Act::Relu,
        burn::tensor::activation::relu,
    )
}

/// timm's `make_divisible`: round `v` to the nearest multiple of `divisor` (at least `min_value`,
/// default `divisor`), going up one step if rounding lost more than `1 - round_limit` of `v`.
pub fn make_divisible(v: f64, divisor: usize, min_value: Option<usize>, round_limit: f64) -> usize {
    let min_value = min_value.unwrap_or(divisor);
    let d = divisor as f64;
    let mut new_v = min_value.max(((v + d / 2.0) as usize) / divisor * divisor);
    if (new_v as f64) < round_limit * v {
        new_v += divisor;
    }
    new_v
}

/// Global average pooling over H and W: [N, C, H, W] -> [N, C].
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dims(&[2, 3]).reshape([n, c])
}

// ---------------------------------------------------------------------------------------------
// Multiply-accumulate counting. Families call convolutions and linear layers through
// `Counted::run`, which records the MACs of each call while `count_macs` is active, so that the
// reported FLOPs come from the layers that actually ran, at the shapes they actually saw.

use std::cell::Cell;

use burn::nn::Linear;

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Adds `n` multiply-accumulates to the active count (matmuls in attention call this directly).
pub fn record_macs(n: u64) {
    MACS.with(|m| {
        if let Some(total) = m.get() {
            m.set(Some(total + n));
        }
    });
}

/// Runs `f` and returns its result with the MACs recorded while it ran.
pub fn count_macs<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let outer = MACS.with(|m| m.replace(Some(0)));
    let out = f();
    let total = MACS.with(|m| m.replace(outer)).unwrap_or(0);
    (out, total)
}

pub trait Counted<const D: usize> {
    /// `forward`, counted.
    fn run(&self, x: Tensor<D>) -> Tensor<D>;
}

/// burn's `PaddingConfig2d` resolved for an `h × w` input, as `Conv2d::forward` resolves it
/// (its helper is crate-private): ((top, bottom), (left, right)).
fn conv_padding(conv: &Conv2d, h: usize, w: usize) -> [(usize, usize); 2] {
    use burn::nn::PaddingConfig2d;
    let same = |k: usize, s: usize, i: usize| {
        let total = ((i.div_ceil(s).max(1) - 1) * s + k).saturating_sub(i);
        (total / 2, total - total / 2)
    };
    match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [
            same(conv.kernel_size[0], conv.stride[0], h),
            same(conv.kernel_size[1], conv.stride[1], w),
        ],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    }
}

impl Counted<4> for Conv2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let options = burn::tensor::ops::ConvOptions::new_with_padding(
            self.stride,
            conv_padding(self, h, w),
            self.dilation,
            self.groups,
        );
        let y = crate::kernels::conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            options,
        );
        let [n, c_out, h, w] = y.dims();
        let [_, c_in_per_group, kh, kw] = self.weight.dims();
        record_macs((n * c_out * h * w * c_in_per_group * kh * kw) as u64);
        y
    }
}

impl<const D: usize> Counted<D> for Linear {
    fn run(&self, x: Tensor<D>) -> Tensor<D> {
        let y = self.forward(x);
        let [d_in, d_out] = self.weight.dims();
        let rows: usize = y.dims()[..D - 1].iter().product();
        record_macs((rows * d_in * d_out) as u64);
        y
    }
}

impl Counted<3> for burn::nn::conv::Conv1d {
    fn run(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.forward(x);
        let [n, c_out, l] = y.dims();
        let [_, c_in_per_group, k] = self.weight.dims();
        record_macs((n * c_out * l * c_in_per_group * k) as u64);
        y
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisation and regularisation shared by the modern (ConvNeXt-style) families.

use burn::module::Param;
use burn::tensor::Distribution;

/// Layer normalisation over one dimension with PyTorch's parameter names (`weight`, `bias`),
/// so checkpoints load without the norm renaming that burn-store applies to burn's own
/// `LayerNorm` (whose parameters are `gamma`/`beta`). [`LayerNorm2d::forward`] normalises the
/// channel dim of NCHW (timm's `LayerNorm2d`); [`LayerNorm2d::forward_last`] the last dim
/// (timm's channels-last `LayerNorm`). Biased variance, as PyTorch's `F.layer_norm`.
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm2d {
    pub fn new(channels: usize, eps: f64, device: &Device) -> Self {
        LayerNorm2d {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            eps,
        }
    }

    fn normalise<const D: usize>(&self, x: Tensor<D>, dim: usize) -> Tensor<D> {
        let (var, mean) = x.clone().var_mean_bias(dim);
        let y = (x - mean) / (var + self.eps).sqrt();
        let mut shape = [1usize; D];
        shape[dim] = self.weight.dims()[0];
        y * self.weight.val().reshape(shape) + self.bias.val().reshape(shape)
    }

    /// NCHW, normalised over C.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.normalise(x, 1)
    }

    /// Any rank, normalised over the last dim.
    pub fn forward_last<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.normalise(x, D - 1)
    }
}

/// Stochastic depth (Huang et al. 2016), as timm's `DropPath`: each sample's residual branch is
/// zeroed with probability `prob` and the survivors scaled by 1/(1−prob). Active only while
/// training, i.e. when the tensor lives on an autodiff device; the identity otherwise.
pub fn drop_path<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    if prob <= 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let keep = 1.0 - prob;
    let mut shape = [1usize; D];
    shape[0] = x.dims()[0];
    let mask: Tensor<D> = Tensor::random(shape, Distribution::Bernoulli(keep), &x.device());
    x * (mask / keep)
}

/// Squeeze-and-excitation (Hu et al. 2018), the computation behind timm's `SEModule` (ResNets,
/// RegNet: `fc1`/`fc2`, ReLU, sigmoid) and its EfficientNet/MobileNet `SqueezeExcite`
/// (`conv_reduce`/`conv_expand`, the block's activation, sigmoid or hard-sigmoid): the spatial
/// mean, a 1×1 conv down, `act`, a 1×1 conv up, `gate`, then rescaling of `x`. The modules keep
/// their own field (weight key) names and call this.
pub fn squeeze_excite(
    x: Tensor<4>,
    reduce: &Conv2d,
    expand: &Conv2d,
    act: impl Fn(Tensor<4>) -> Tensor<4>,
    gate: impl Fn(Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    let s = x.clone().mean_dims(&[2, 3]);
    let s = gate(expand.run(act(reduce.run(s))));
    x * s
}
