//! EfficientNet B0–B7 (Tan & Le 2019) and EfficientNet-Lite0–4, in timm's layout
//! (`efficientnet.py` / `_efficientnet_builder.py`): `conv_stem`, `bn1`, `blocks.S.B` of
//! `DepthwiseSeparableConv` (`conv_dw`, `bn1`, `se`, `conv_pw`, `bn2`) and `InvertedResidual`
//! (`conv_pw`, `bn1`, `conv_dw`, `bn2`, `se.conv_reduce/conv_expand`, `conv_pwl`, `bn3`),
//! `conv_head`, `bn2`, `classifier`. The blocks are built by the shared builder in
//! [`crate::mbconv`]; this file has the B0 architecture, its scaling presets, stem and head.
//!
//! The `tf_` ports use TensorFlow's "same" padding — computed at run time from the input size,
//! asymmetric (extra pixel right/bottom) for stride-2 convs, as timm's `Conv2dSame` — and
//! BatchNorm eps 1e-3. Lite variants use ReLU6, no SE, a fixed 32-channel stem and 1280-channel
//! head, and do not scale the depth of the first and last stage.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::layers::{global_avg_pool, Counted};
use crate::mbconv::{add_tv_units, run_same, BlockArgs, BuilderConfig, SeConfig};
/// The shared builder types in this family's model (blocks, activation, squeeze-excite).
pub use crate::mbconv::{Act, BlockType, MbBlock, SqueezeExcite};
use crate::variant::{imagenet_eval, tag, PretrainedTag, Variant};

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

impl StageDef {
    /// The builder's arguments for one block of this stage: SE 0.25 of the block input unless
    /// `lite` (timm's `_gen_efficientnet` / `_gen_efficientnet_lite` block strings).
    fn block_args(&self, lite: bool) -> BlockArgs {
        BlockArgs {
            block_type: self.block,
            kernel: self.kernel,
            stride: self.stride,
            exp_ratio: self.exp_ratio as f64,
            out_chs: self.out_chs,
            se_ratio: if lite { 0.0 } else { 0.25 },
            act: None,
            noskip: false,
            skip: false,
            pw_act: false,
        }
    }
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
        st(Ds, 1, 3, 1, 1, 16),
        st(Ir, 2, 3, 2, 6, 24),
        st(Ir, 2, 5, 2, 6, 40),
        st(Ir, 3, 3, 2, 6, 80),
        st(Ir, 3, 5, 1, 6, 112),
        st(Ir, 4, 5, 2, 6, 192),
        st(Ir, 1, 3, 1, 6, 320),
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

    /// timm's `EfficientNetBuilder` for this variant: channels rounded to 8 (round limit 0.9),
    /// SiLU (ReLU6 for Lite), EfficientNet's SE sizing, TF "same" padding for the `tf_` ports.
    fn builder(&self) -> BuilderConfig {
        BuilderConfig {
            channel_multiplier: self.channel_multiplier,
            channel_divisor: 8,
            round_limit: 0.9,
            act: if self.lite { Act::Relu6 } else { Act::Silu },
            se: SeConfig::EFFICIENTNET,
            bn_eps: self.bn_eps,
            drop_path_rate: self.drop_path_rate,
            same_padding: self.tf,
        }
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
        let b = self.builder();
        let stem = if self.lite { 32 } else { b.round_chs(32) };
        let stages: Vec<Vec<BlockArgs>> = self
            .arch
            .iter()
            .zip(self.stage_repeats())
            .map(|(s, reps)| vec![s.block_args(self.lite); reps])
            .collect();
        let (blocks, head_in) = b.build(stem, &stages, device);
        let num_features = if self.lite { 1280 } else { b.round_chs(1280) };
        EfficientNet {
            conv_stem: b.conv(in_chans, stem, 3, 2, 1, false, device),
            bn1: b.bn(stem, device),
            blocks,
            conv_head: b.conv(head_in, num_features, 1, 1, 1, false, device),
            bn2: b.bn(num_features, device),
            classifier: LinearConfig::new(num_features, num_classes).init(device),
            dropout: DropoutConfig::new(self.drop_rate).init(),
            act: b.act,
        }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub conv_stem: Conv2d,
    pub bn1: BatchNorm,
    pub blocks: Vec<Vec<MbBlock>>,
    pub conv_head: Conv2d,
    pub bn2: BatchNorm,
    pub classifier: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub act: Act,
}

impl EfficientNet {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.act.after_bn(&self.bn1, run_same(&self.conv_stem, x));
        for block in self.blocks.iter().flatten() {
            x = block.forward(x);
        }
        self.act.after_bn(&self.bn2, self.conv_head.run(x))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = global_avg_pool(self.forward_features(x));
        self.classifier.run(self.dropout.forward(x))
    }
}

impl crate::classifier::Classifier for EfficientNet {
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
    ) -> Option<crate::translation::Translation<'_>> {
        if !(keys.contains("features.0.0.weight") && keys.contains("features.1.0.block.0.0.weight"))
        {
            return None;
        }
        let mut map = crate::translation::PrefixMap::default();
        map.add("features.0.0.", "conv_stem.");
        map.add("features.0.1.", "bn1.");
        for (s, stage) in self.blocks.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let units = block
                    .torchvision_units()
                    .expect("EfficientNet has only ds and ir blocks");
                add_tv_units(
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

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `efficientnet_b0` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B0_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ra4_e3600_r224_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(256), Some(1.0)),
];
/// timm's `efficientnet_b1` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B1_TAGS: &[PretrainedTag] = &[
    tag!("ra4_e3600_r240_in1k", 240, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(288), Some(1.0)),
    tag!("ft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(256), Some(1.0)),
];
/// timm's `efficientnet_b2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B2_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 256, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
];
/// timm's `efficientnet_b3` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B3_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 288, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(320), Some(1.0)),
];
/// timm's `efficientnet_b4` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B4_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 320, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(384), Some(1.0)),
];
/// timm's `efficientnet_b5` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B5_TAGS: &[PretrainedTag] = &[
    tag!("sw_in12k_ft_in1k", 448, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_b6` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B6_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 528, 0.942, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_b7` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_B7_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 600, 0.949, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b0` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B0_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 224, 0.875, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b1` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B1_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 240, 0.882, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 240, 0.882, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 240, 0.882, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 240, 0.882, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B2_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 260, 0.89, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 260, 0.89, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 260, 0.89, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 260, 0.89, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b3` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B3_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 300, 0.904, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 300, 0.904, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 300, 0.904, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 300, 0.904, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b4` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B4_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 380, 0.922, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 380, 0.922, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 380, 0.922, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 380, 0.922, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b5` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B5_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 456, 0.934, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 456, 0.934, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("ra_in1k", 456, 0.934, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("aa_in1k", 456, 0.934, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("in1k", 456, 0.934, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b6` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B6_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 528, 0.942, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 528, 0.942, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("aa_in1k", 528, 0.942, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_b7` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_B7_TAGS: &[PretrainedTag] = &[
    tag!("ns_jft_in1k", 600, 0.949, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ap_in1k", 600, 0.949, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("ra_in1k", 600, 0.949, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("aa_in1k", 600, 0.949, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_lite0` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_LITE0_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_lite1` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_LITE1_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 240, 0.882, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_lite2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_LITE2_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 260, 0.89, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_lite3` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_LITE3_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 300, 0.904, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `efficientnet_lite4` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const EFFICIENTNET_LITE4_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 380, 0.922, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `tf_efficientnet_lite0` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_LITE0_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 224, 0.875, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `tf_efficientnet_lite1` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_LITE1_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 240, 0.882, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `tf_efficientnet_lite2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_LITE2_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 260, 0.89, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `tf_efficientnet_lite3` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_LITE3_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 300, 0.904, "bilinear", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `tf_efficientnet_lite4` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const TF_EFFICIENTNET_LITE4_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 380, 0.92, "bilinear", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
// END generated

/// timm's EfficientNets and EfficientNet-Lites (timm's and the `tf_` ports) with their
/// pretrained tags, then torchvision's.
pub static VARIANTS: &[Variant<EfficientNet>] = &[
    Variant::tagged(
        "efficientnet",
        "efficientnet_b0",
        EFFICIENTNET_B0_TAGS,
        |o, d| EfficientNetConfig::b(0, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b1",
        EFFICIENTNET_B1_TAGS,
        |o, d| EfficientNetConfig::b(1, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b2",
        EFFICIENTNET_B2_TAGS,
        |o, d| EfficientNetConfig::b(2, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b3",
        EFFICIENTNET_B3_TAGS,
        |o, d| EfficientNetConfig::b(3, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b4",
        EFFICIENTNET_B4_TAGS,
        |o, d| EfficientNetConfig::b(4, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b5",
        EFFICIENTNET_B5_TAGS,
        |o, d| EfficientNetConfig::b(5, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b6",
        EFFICIENTNET_B6_TAGS,
        |o, d| EfficientNetConfig::b(6, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_b7",
        EFFICIENTNET_B7_TAGS,
        |o, d| EfficientNetConfig::b(7, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b0",
        TF_EFFICIENTNET_B0_TAGS,
        |o, d| EfficientNetConfig::b(0, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b1",
        TF_EFFICIENTNET_B1_TAGS,
        |o, d| EfficientNetConfig::b(1, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b2",
        TF_EFFICIENTNET_B2_TAGS,
        |o, d| EfficientNetConfig::b(2, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b3",
        TF_EFFICIENTNET_B3_TAGS,
        |o, d| EfficientNetConfig::b(3, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b4",
        TF_EFFICIENTNET_B4_TAGS,
        |o, d| EfficientNetConfig::b(4, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b5",
        TF_EFFICIENTNET_B5_TAGS,
        |o, d| EfficientNetConfig::b(5, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b6",
        TF_EFFICIENTNET_B6_TAGS,
        |o, d| EfficientNetConfig::b(6, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_b7",
        TF_EFFICIENTNET_B7_TAGS,
        |o, d| EfficientNetConfig::b(7, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_lite0",
        EFFICIENTNET_LITE0_TAGS,
        |o, d| EfficientNetConfig::lite(0, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_lite1",
        EFFICIENTNET_LITE1_TAGS,
        |o, d| EfficientNetConfig::lite(1, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_lite2",
        EFFICIENTNET_LITE2_TAGS,
        |o, d| EfficientNetConfig::lite(2, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_lite3",
        EFFICIENTNET_LITE3_TAGS,
        |o, d| EfficientNetConfig::lite(3, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "efficientnet_lite4",
        EFFICIENTNET_LITE4_TAGS,
        |o, d| EfficientNetConfig::lite(4, false).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_lite0",
        TF_EFFICIENTNET_LITE0_TAGS,
        |o, d| EfficientNetConfig::lite(0, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_lite1",
        TF_EFFICIENTNET_LITE1_TAGS,
        |o, d| EfficientNetConfig::lite(1, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_lite2",
        TF_EFFICIENTNET_LITE2_TAGS,
        |o, d| EfficientNetConfig::lite(2, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_lite3",
        TF_EFFICIENTNET_LITE3_TAGS,
        |o, d| EfficientNetConfig::lite(3, true).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "efficientnet",
        "tf_efficientnet_lite4",
        TF_EFFICIENTNET_LITE4_TAGS,
        |o, d| EfficientNetConfig::lite(4, true).init(o.num_classes, o.in_chans, d),
    ),
    // torchvision's EfficientNets under timm's `tv_` prefix (`tv:efficientnet_b0` finds them):
    // timm's builder with torchvision's BatchNorm eps, data = the DEFAULT weights' eval
    // transforms (resize R, centre crop C; crop_pct chosen so that floor(C / crop_pct) = R).
    // 256 -> 224
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b0",
        || imagenet_eval(224, 0.875, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(0).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b0"]),
    // 255 -> 240 (IMAGENET1K_V2)
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b1",
        || imagenet_eval(240, 0.941, "bilinear"),
        |o, d| EfficientNetConfig::torchvision_b(1).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b1"]),
    // 288 -> 288
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b2",
        || imagenet_eval(288, 1.0, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(2).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b2"]),
    // 320 -> 300
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b3",
        || imagenet_eval(300, 0.9375, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(3).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b3"]),
    // 384 -> 380
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b4",
        || imagenet_eval(380, 0.9895, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(4).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b4"]),
    // 456 -> 456
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b5",
        || imagenet_eval(456, 1.0, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(5).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b5"]),
    // 528 -> 528
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b6",
        || imagenet_eval(528, 1.0, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(6).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b6"]),
    // 600 -> 600
    Variant::untagged(
        "efficientnet",
        "tv_efficientnet_b7",
        || imagenet_eval(600, 1.0, "bicubic"),
        |o, d| EfficientNetConfig::torchvision_b(7).init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:efficientnet_b7"]),
];
