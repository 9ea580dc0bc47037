//! EfficientNet B0–B7 (Tan & Le 2019) and EfficientNet-Lite0–4, in timm's layout
//! (`efficientnet.py` / `_efficientnet_builder.py`): `conv_stem`, `bn1`, `blocks.S.B` of
//! `DepthwiseSeparableConv` (`conv_dw`, `bn1`, `se`, `conv_pw`, `bn2`) and `InvertedResidual`
//! (`conv_pw`, `bn1`, `conv_dw`, `bn2`, `se.conv_reduce/conv_expand`, `conv_pwl`, `bn3`),
//! `conv_head`, `bn2`, `classifier`.
//!
//! The `tf_` ports use TensorFlow's "same" padding — computed at run time from the input size,
//! asymmetric (extra pixel right/bottom) for stride-2 convs, as timm's `Conv2dSame` — and
//! BatchNorm eps 1e-3. Lite variants use ReLU6, no SE, a fixed 32-channel stem and 1280-channel
//! head, and do not scale the depth of the first and last stage.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use crate::layers::{conv2d, drop_path, global_avg_pool, make_divisible, Counted};
/// The builder blocks' activation and squeeze-excite, shared with MobileNet.
pub use crate::mbconv::{Act, SqueezeExcite};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// `ds`: depthwise-separable (no expansion).
    DepthwiseSeparable,
    /// `ir`: inverted residual (MBConv).
    InvertedResidual,
}

/// One stage of timm's arch_def (e.g. `ir_r2_k3_s2_e6_c24_se0.25`).
#[derive(Clone, Debug)]
pub struct StageDef {
    pub block: BlockType,
    pub repeats: usize,
    pub kernel: usize,
    pub stride: usize,
    pub exp_ratio: usize,
    pub out_chs: usize,
}

const fn st(
    block: BlockType,
    repeats: usize,
    kernel: usize,
    stride: usize,
    exp: usize,
    out: usize,
) -> StageDef {
    StageDef {
        block,
        repeats,
        kernel,
        stride,
        exp_ratio: exp,
        out_chs: out,
    }
}

/// The B0 / Lite0 base architecture.
pub fn b0_arch() -> Vec<StageDef> {
    use BlockType::*;
    vec![
        st(DepthwiseSeparable, 1, 3, 1, 1, 16),
        st(InvertedResidual, 2, 3, 2, 6, 24),
        st(InvertedResidual, 2, 5, 2, 6, 40),
        st(InvertedResidual, 3, 3, 2, 6, 80),
        st(InvertedResidual, 3, 5, 1, 6, 112),
        st(InvertedResidual, 4, 5, 2, 6, 192),
        st(InvertedResidual, 1, 3, 1, 6, 320),
    ]
}

#[derive(Clone, Debug)]
pub struct EfficientNetConfig {
    pub arch: Vec<StageDef>,
    pub channel_multiplier: f64,
    pub depth_multiplier: f64,
    /// EfficientNet-Lite: ReLU6, no SE, fixed stem/head, first/last stage depth unscaled.
    pub lite: bool,
    /// TensorFlow port: "same" padding and BN eps 1e-3.
    pub tf: bool,
    /// BatchNorm epsilon: 1e-5 (timm's PyTorch-native weights, torchvision's B0–B4), 1e-3 (the
    /// TF ports, and torchvision's B5–B7 with symmetric padding: [`Self::torchvision_b`]).
    pub bn_eps: f64,
    /// Classifier dropout (timm `drop_rate`; 0 by default in timm).
    pub drop_rate: f64,
    /// Stochastic depth, linearly increasing over blocks (timm `drop_path_rate`).
    pub drop_path_rate: f64,
}

impl EfficientNetConfig {
    pub fn new(channel_multiplier: f64, depth_multiplier: f64, lite: bool, tf: bool) -> Self {
        EfficientNetConfig {
            arch: b0_arch(),
            channel_multiplier,
            depth_multiplier,
            lite,
            tf,
            bn_eps: if tf { 1e-3 } else { 1e-5 },
            drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }
    /// `efficientnet_b{n}` (tf_efficientnet_b{n} with `tf`).
    pub fn b(n: usize, tf: bool) -> Self {
        let (c, d) = [
            (1.0, 1.0),
            (1.0, 1.1),
            (1.1, 1.2),
            (1.2, 1.4),
            (1.4, 1.8),
            (1.6, 2.2),
            (1.8, 2.6),
            (2.0, 3.1),
        ][n];
        Self::new(c, d, false, tf)
    }
    /// torchvision's `efficientnet_b{n}`: timm's `efficientnet_b{n}` (same widths, depths, SE
    /// widths, symmetric padding), with BatchNorm eps 1e-3 for B5–B7 as torchvision builds them.
    pub fn torchvision_b(n: usize) -> Self {
        let mut cfg = Self::b(n, false);
        if n >= 5 {
            cfg.bn_eps = 1e-3;
        }
        cfg
    }
    /// `efficientnet_lite{n}` (tf_efficientnet_lite{n} with `tf`).
    pub fn lite(n: usize, tf: bool) -> Self {
        let (c, d) = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)][n];
        Self::new(c, d, true, tf)
    }

    /// timm `round_channels`: make_divisible(c·multiplier, 8, round_limit 0.9).
    fn round_chs(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.channel_multiplier, 8, None, 0.9)
    }

    fn act(&self) -> Act {
        if self.lite {
            Act::Relu6
        } else {
            Act::Silu
        }
    }

    fn bn(&self, c: usize, device: &Device) -> BatchNorm {
        BatchNormConfig::new(c)
            .with_epsilon(self.bn_eps)
            .init(device)
    }

    /// A conv with timm's padding for this variant: symmetric k/2 (PyTorch), or TF "same":
    /// static k/2 for stride 1, none here and dynamic padding in `run_same` for stride 2.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bias: bool,
        device: &Device,
    ) -> Conv2d {
        let pad = if self.tf && stride > 1 {
            0
        } else {
            (k - 1) / 2
        };
        conv2d(cin, cout, k, stride, pad, groups, bias, device)
    }

    /// Per-stage repeat counts after depth scaling (timm `_scale_stage_depth`, 'ceil').
    pub fn stage_repeats(&self) -> Vec<usize> {
        let last = self.arch.len() - 1;
        self.arch
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if self.lite && (i == 0 || i == last) {
                    s.repeats
                } else {
                    // f64 product as Python's; ceil as math.ceil.
                    (s.repeats as f64 * self.depth_multiplier).ceil() as usize
                }
            })
            .collect()
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> EfficientNet {
        let act = self.act();
        let stem = if self.lite { 32 } else { self.round_chs(32) };
        let conv_stem = self.conv(in_chans, stem, 3, 2, 1, false, device);
        let bn1 = self.bn(stem, device);
        let repeats = self.stage_repeats();
        let total: usize = repeats.iter().sum();
        let mut idx = 0;
        let mut in_chs = stem;
        let mut blocks = Vec::new();
        for (s, &reps) in self.arch.iter().zip(&repeats) {
            let out = self.round_chs(s.out_chs);
            let mut stage = Vec::new();
            for r in 0..reps {
                let stride = if r == 0 { s.stride } else { 1 };
                let dpr = self.drop_path_rate * idx as f64 / total as f64;
                stage.push(match s.block {
                    BlockType::DepthwiseSeparable => EffBlock::Ds(DepthwiseSeparable::new(
                        self, in_chs, out, s.kernel, stride, dpr, device,
                    )),
                    BlockType::InvertedResidual => EffBlock::Ir(InvertedResidual::new(
                        self,
                        in_chs,
                        out,
                        s.kernel,
                        stride,
                        s.exp_ratio,
                        dpr,
                        device,
                    )),
                });
                in_chs = out;
                idx += 1;
            }
            blocks.push(stage);
        }
        let num_features = if self.lite {
            1280
        } else {
            self.round_chs(1280)
        };
        EfficientNet {
            conv_stem,
            bn1,
            blocks,
            conv_head: self.conv(in_chs, num_features, 1, 1, 1, false, device),
            bn2: self.bn(num_features, device),
            classifier: LinearConfig::new(num_features, num_classes).init(device),
            dropout: DropoutConfig::new(self.drop_rate).init(),
            act,
        }
    }
}

/// Runs `conv`, first applying TF "same" padding when the conv was built without padding but
/// strides (timm `pad_same`: total max((⌈i/s⌉−1)·s + (k−1)·d + 1 − i, 0), the odd pixel after).
fn run_same(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let unpadded = matches!(
        conv.padding,
        burn::nn::PaddingConfig2d::Explicit(0, 0, 0, 0) | burn::nn::PaddingConfig2d::Valid
    );
    if !unpadded || conv.kernel_size[0] == 1 {
        return conv.run(x);
    }
    let [_, _, h, w] = x.dims();
    let pad = |i: usize, k: usize, s: usize, d: usize| -> (usize, usize) {
        let total = ((i.div_ceil(s) - 1) * s + (k - 1) * d + 1).saturating_sub(i);
        (total / 2, total - total / 2)
    };
    let (top, bottom) = pad(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0]);
    let (left, right) = pad(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1]);
    let x = if top + bottom + left + right > 0 {
        x.pad((left, right, top, bottom), PadMode::Constant(0.0))
    } else {
        x
    };
    conv.run(x)
}

/// SE channels as timm computes them: rd_ratio = 0.25 / exp_ratio (se_from_exp=False), then
/// Python's round(mid_chs · rd_ratio) (ties to even).
fn se_channels(mid_chs: usize, exp_ratio: usize) -> usize {
    (mid_chs as f64 * (0.25 / exp_ratio as f64)).round_ties_even() as usize
}

#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    pub conv_dw: Conv2d,
    pub bn1: BatchNorm,
    pub se: Option<SqueezeExcite>,
    pub conv_pw: Conv2d,
    pub bn2: BatchNorm,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub has_skip: bool,
    #[module(skip)]
    pub drop_path: f64,
}

impl DepthwiseSeparable {
    fn new(
        cfg: &EfficientNetConfig,
        in_chs: usize,
        out_chs: usize,
        k: usize,
        stride: usize,
        drop_path: f64,
        device: &Device,
    ) -> Self {
        let act = cfg.act();
        let se = (!cfg.lite).then(|| {
            let rd = se_channels(in_chs, 1);
            SqueezeExcite::new(in_chs, rd, act, Act::Sigmoid, device)
        });
        DepthwiseSeparable {
            conv_dw: cfg.conv(in_chs, in_chs, k, stride, in_chs, false, device),
            bn1: cfg.bn(in_chs, device),
            se,
            conv_pw: cfg.conv(in_chs, out_chs, 1, 1, 1, false, device),
            bn2: cfg.bn(out_chs, device),
            act,
            has_skip: stride == 1 && in_chs == out_chs,
            drop_path,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let mut y = self.act.apply(self.bn1.forward(run_same(&self.conv_dw, x)));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.bn2.forward(self.conv_pw.run(y));
        if self.has_skip {
            drop_path(y, self.drop_path) + shortcut
        } else {
            y
        }
    }
}

#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub conv_pw: Conv2d,
    pub bn1: BatchNorm,
    pub conv_dw: Conv2d,
    pub bn2: BatchNorm,
    pub se: Option<SqueezeExcite>,
    pub conv_pwl: Conv2d,
    pub bn3: BatchNorm,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub has_skip: bool,
    #[module(skip)]
    pub drop_path: f64,
}

impl InvertedResidual {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: &EfficientNetConfig,
        in_chs: usize,
        out_chs: usize,
        k: usize,
        stride: usize,
        exp_ratio: usize,
        drop_path: f64,
        device: &Device,
    ) -> Self {
        let act = cfg.act();
        let mid = make_divisible((in_chs * exp_ratio) as f64, 8, None, 0.9);
        let se = (!cfg.lite).then(|| {
            let rd = se_channels(mid, exp_ratio);
            SqueezeExcite::new(mid, rd, act, Act::Sigmoid, device)
        });
        InvertedResidual {
            conv_pw: cfg.conv(in_chs, mid, 1, 1, 1, false, device),
            bn1: cfg.bn(mid, device),
            conv_dw: cfg.conv(mid, mid, k, stride, mid, false, device),
            bn2: cfg.bn(mid, device),
            se,
            conv_pwl: cfg.conv(mid, out_chs, 1, 1, 1, false, device),
            bn3: cfg.bn(out_chs, device),
            act,
            has_skip: stride == 1 && in_chs == out_chs,
            drop_path,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let y = self.act.apply(self.bn1.forward(self.conv_pw.run(x)));
        let mut y = self.act.apply(self.bn2.forward(run_same(&self.conv_dw, y)));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.bn3.forward(self.conv_pwl.run(y));
        if self.has_skip {
            drop_path(y, self.drop_path) + shortcut
        } else {
            y
        }
    }
}

/// A block of `blocks.S`; the variant name never appears in weight keys.
// Blocks are built once per model; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum EffBlock {
    Ds(DepthwiseSeparable),
    Ir(InvertedResidual),
}

impl EffBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            EffBlock::Ds(b) => b.forward(x),
            EffBlock::Ir(b) => b.forward(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub conv_stem: Conv2d,
    pub bn1: BatchNorm,
    pub blocks: Vec<Vec<EffBlock>>,
    pub conv_head: Conv2d,
    pub bn2: BatchNorm,
    pub classifier: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub act: Act,
}

impl EfficientNet {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self
            .act
            .apply(self.bn1.forward(run_same(&self.conv_stem, x)));
        for block in self.blocks.iter().flatten() {
            x = block.forward(x);
        }
        self.act.apply(self.bn2.forward(self.conv_head.run(x)))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = global_avg_pool(self.forward_features(x));
        self.classifier.run(self.dropout.forward(x))
    }
}

impl crate::model::Classifier for EfficientNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        EfficientNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["classifier."]
    }
}

impl EfficientNet {
    /// torchvision's `efficientnet_b*` key layout -> timm's, for a checkpoint whose keys show it
    /// (`features.0.0.weight`, `features.1.0.block.0.0.weight`): `features.0` is the stem,
    /// `features.S+1.B.block.N` the units of `blocks.S.B` in order (expand, depthwise, SE,
    /// project; each conv + BN a `Conv2dNormActivation`), the last `features` entry the head
    /// conv + BN, `classifier.1` the classifier.
    pub(crate) fn torchvision_to_timm(
        &self,
        keys: &std::collections::BTreeSet<&str>,
    ) -> Option<crate::weights::Translation<'_>> {
        use crate::mbconv::TvUnit::{ConvBn, Se};
        if !(keys.contains("features.0.0.weight") && keys.contains("features.1.0.block.0.0.weight"))
        {
            return None;
        }
        let mut map = crate::weights::PrefixMap::default();
        map.add("features.0.0.", "conv_stem.");
        map.add("features.0.1.", "bn1.");
        for (s, stage) in self.blocks.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let units = match block {
                    EffBlock::Ds(d) => {
                        let mut u = vec![ConvBn("conv_dw", "bn1")];
                        u.extend(d.se.as_ref().map(|_| Se));
                        u.push(ConvBn("conv_pw", "bn2"));
                        u
                    }
                    EffBlock::Ir(d) => {
                        let mut u = vec![ConvBn("conv_pw", "bn1"), ConvBn("conv_dw", "bn2")];
                        u.extend(d.se.as_ref().map(|_| Se));
                        u.push(ConvBn("conv_pwl", "bn3"));
                        u
                    }
                };
                crate::mbconv::add_tv_units(
                    &mut map,
                    &format!("features.{}.{b}.block.", s + 1),
                    &format!("blocks.{s}.{b}."),
                    &units,
                    false,
                );
            }
        }
        let last = self.blocks.len() + 1;
        map.add(format!("features.{last}.0."), "conv_head.");
        map.add(format!("features.{last}.1."), "bn2.");
        map.add("classifier.1.", "classifier.");
        Some(Box::new(move |name: &str, _shape: &[usize]| {
            map.map(name).map(|n| (n, None))
        }))
    }
}
