//! Channel (and channel + spatial) attention blocks, as timm names them, pluggable into
//! residual blocks (timm's `attn_layer`):
//!
//! - [`SqueezeExcite`]: timm `SEModule` / torchvision `SqueezeExcitation` — global average
//!   pool, 1×1 conv `fc1` (bias), ReLU, 1×1 conv `fc2` (bias), sigmoid gate.
//! - [`EfficientNetSe`]: timm's `SqueezeExcite` of `_efficientnet_blocks.py` — the same
//!   block with the key names `conv_reduce`/`conv_expand` and a chosen act and gate
//!   (MobileNetV3's hard-sigmoid). Both run [`squeeze_excite`], the one implementation.
//! - [`Eca`]: timm `EcaModule` — global average pool, a 1-D conv `conv` across channels
//!   (kernel size from the channel count, no bias), sigmoid gate.
//! - [`Cbam`]: timm `CbamModule` — channel attention `channel.fc1/fc2` (no bias) shared by the
//!   average- and max-pooled descriptors, then spatial attention `spatial.conv` (7×7 conv + BN)
//!   on the per-pixel [mean, max] over channels.

use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d};
use burn::nn::{BatchNorm, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::layers::activations::Act;
use crate::layers::{batch_norm, conv2d, make_divisible, squeeze_excite, Counted};

/// Which attention a residual block applies to its branch output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttnKind {
    /// timm `'se'`: SEModule, rd_ratio 1/16, rd_divisor 8.
    Se,
    /// timm `'eca'`: EcaModule with the adaptive kernel size (gamma 2, beta 1).
    Eca,
    /// timm `'cbam'`: CbamModule, rd_ratio 1/16, rd_divisor 1, 7×7 spatial kernel.
    Cbam,
}

impl AttnKind {
    /// timm `create_attn(kind, channels)` with its defaults.
    pub fn init(self, channels: usize, device: &Device) -> BlockAttention {
        match self {
            AttnKind::Se => BlockAttention::Se(SqueezeExcite::new(
                channels,
                make_divisible(channels as f64 / 16.0, 8, None, 0.0),
                device,
            )),
            AttnKind::Eca => BlockAttention::Eca(Eca::new(channels, device)),
            AttnKind::Cbam => BlockAttention::Cbam(Cbam::new(channels, device)),
        }
    }
}

/// An attention layer inside a block; the variant name never appears in weight keys.
// Blocks are built once per model; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum BlockAttention {
    Se(SqueezeExcite),
    Eca(Eca),
    Cbam(Cbam),
}

impl BlockAttention {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            BlockAttention::Se(m) => m.forward(x),
            BlockAttention::Eca(m) => m.forward(x),
            BlockAttention::Cbam(m) => m.forward(x),
        }
    }
}

/// timm `SEModule`: `fc1` → act (ReLU unless timm's `act_layer` says otherwise: SiLU in
/// MaxViT's MBConv) → `fc2` → sigmoid, on the spatial mean.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
    #[module(skip)]
    pub act: Act,
}

impl SqueezeExcite {
    pub fn new(channels: usize, rd_channels: usize, device: &Device) -> Self {
        SqueezeExcite {
            fc1: conv2d(channels, rd_channels, 1, 1, 0, 1, true, device),
            fc2: conv2d(rd_channels, channels, 1, 1, 0, 1, true, device),
            act: Act::Relu,
        }
    }
    pub fn with_act(self, act: Act) -> Self {
        SqueezeExcite { act, ..self }
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        squeeze_excite(x, &self.fc1, &self.fc2, |s| self.act.apply(s), sigmoid)
    }
}

/// timm's `SqueezeExcite` (EfficientNet/MobileNet flavour): mean over H, W, 1×1 conv down,
/// act, 1×1 conv up, gate, rescale.
#[derive(Module, Debug)]
pub struct EfficientNetSe {
    pub conv_reduce: Conv2d,
    pub conv_expand: Conv2d,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub gate: Act,
}

impl EfficientNetSe {
    pub fn new(channels: usize, rd_channels: usize, act: Act, gate: Act, device: &Device) -> Self {
        EfficientNetSe {
            conv_reduce: conv2d(channels, rd_channels, 1, 1, 0, 1, true, device),
            conv_expand: conv2d(rd_channels, channels, 1, 1, 0, 1, true, device),
            act,
            gate,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        squeeze_excite(
            x,
            &self.conv_reduce,
            &self.conv_expand,
            |s| self.act.apply(s),
            |s| self.gate.apply(s),
        )
    }
}

/// timm `EcaModule` (non-MLP form).
#[derive(Module, Debug)]
pub struct Eca {
    pub conv: Conv1d,
}

impl Eca {
    /// Kernel size from the channel count: t = int(|log2(C) + 1| / 2), odd, at least 3.
    pub fn kernel_size(channels: usize) -> usize {
        let t = (((channels as f64).log2() + 1.0).abs() / 2.0) as usize;
        let k = if t % 2 == 1 { t } else { t + 1 };
        k.max(3)
    }
    pub fn new(channels: usize, device: &Device) -> Self {
        let k = Self::kernel_size(channels);
        let p = (k - 1) / 2;
        Eca {
            conv: Conv1dConfig::new(1, 1, k)
                .with_padding(PaddingConfig1d::Explicit(p, p))
                .with_bias(false)
                .init(device),
        }
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let y = x.clone().mean_dims(&[2, 3]).reshape([n, 1, c]);
        let y = sigmoid(self.conv.run(y)).reshape([n, c, 1, 1]);
        x * y
    }
}

/// timm CBAM `ChannelAttn`: shared MLP on the average- and max-pooled descriptors.
#[derive(Module, Debug)]
pub struct CbamChannel {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
}

/// timm `ConvNormAct` without activation: `conv` then `bn`.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// timm CBAM `SpatialAttn`.
#[derive(Module, Debug)]
pub struct CbamSpatial {
    pub conv: ConvBn,
}

#[derive(Module, Debug)]
pub struct Cbam {
    pub channel: CbamChannel,
    pub spatial: CbamSpatial,
}

impl Cbam {
    pub fn new(channels: usize, device: &Device) -> Self {
        let rd = make_divisible(channels as f64 / 16.0, 1, None, 0.0);
        Cbam {
            channel: CbamChannel {
                fc1: conv2d(channels, rd, 1, 1, 0, 1, false, device),
                fc2: conv2d(rd, channels, 1, 1, 0, 1, false, device),
            },
            spatial: CbamSpatial {
                conv: ConvBn {
                    conv: conv2d(2, 1, 7, 1, 3, 1, false, device),
                    bn: batch_norm(1, device),
                },
            },
        }
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let ch = &self.channel;
        let avg = x.clone().mean_dims(&[2, 3]);
        let max = x.clone().max_dim(2).max_dim(3);
        let a = ch.fc2.run(relu(ch.fc1.run(avg))) + ch.fc2.run(relu(ch.fc1.run(max)));
        let x = x * sigmoid(a);
        let s = Tensor::cat(vec![x.clone().mean_dim(1), x.clone().max_dim(1)], 1);
        let conv = &self.spatial.conv;
        let s = crate::layers::bn(&conv.bn, conv.conv.run(s));
        x * sigmoid(s)
    }
}
