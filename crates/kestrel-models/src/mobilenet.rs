//! MobileNet V1, V2 and V3 (Howard et al. 2017; Sandler et al. 2018; Howard et al. 2019) in
//! timm's EfficientNet-builder layout: `conv_stem`, `bn1`, `blocks.S.B` (stages of
//! `DepthwiseSeparableConv` / `InvertedResidual` / `ConvBnAct`), then the head (`conv_head`,
//! `bn2` for the EfficientNet-style head; `conv_head` with bias and no norm for MobileNetV3's
//! "efficient head"), and `classifier`. timm checkpoints load unchanged.
//!
//! The blocks and the builder, shared with EfficientNet, are in [`crate::mbconv`] (timm's
//! `_efficientnet_builder.py` / `_efficientnet_blocks.py`); this file has the MobileNet presets
//! (timm's `_gen_mobilenet_*` block strings), stem and head. [`MobileNetConfig`] is the
//! top-level model (timm's `EfficientNet` and `MobileNetV3` classes, by [`HeadKind`]).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::layers::{conv2d, global_avg_pool, Counted};
use crate::mbconv::{add_tv_units, decode_arch_def};
/// The builder types in this family's public config and model.
pub use crate::mbconv::{Act, BuilderConfig, DepthTrunc, MbBlock, SeConfig};
use crate::variant::{imagenet_eval, tag, PretrainedTag, Variant};

/// Where the head's 1×1 conv sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// timm's `EfficientNet`: `conv_head` (no bias), `bn2`, act, then global pooling. No conv at
    /// all when `num_features` is 0 (MobileNetV1).
    ConvBn,
    /// timm's `MobileNetV3` "efficient head": global pooling, then `conv_head` with bias and act,
    /// no norm.
    PooledConv,
}

#[derive(Clone, Debug)]
pub struct MobileNetConfig {
    /// Block strings per stage (timm's `arch_def`).
    pub arch_def: Vec<Vec<&'static str>>,
    pub depth_multiplier: f64,
    pub depth_trunc: DepthTrunc,
    /// Leave the first and last stages' depth alone (timm's `fix_first_last` / `fix_stem_head`).
    pub fix_first_last: bool,
    pub stem_size: usize,
    /// Don't apply the width multiplier to the stem.
    pub fix_stem: bool,
    pub stem_kernel: usize,
    /// Head width; 0 = no head conv ([`HeadKind::ConvBn`] only).
    pub num_features: usize,
    pub head: HeadKind,
    pub builder: BuilderConfig,
    /// Dropout before the classifier.
    pub drop_rate: f64,
}

impl MobileNetConfig {
    fn base(arch_def: &[&[&'static str]], channel_multiplier: f64, act: Act) -> Self {
        MobileNetConfig {
            arch_def: arch_def.iter().map(|s| s.to_vec()).collect(),
            depth_multiplier: 1.0,
            depth_trunc: DepthTrunc::Ceil,
            fix_first_last: false,
            stem_size: 32,
            fix_stem: false,
            stem_kernel: 3,
            num_features: 1280,
            head: HeadKind::ConvBn,
            builder: BuilderConfig {
                channel_multiplier,
                channel_divisor: 8,
                round_limit: 0.9,
                act,
                se: SeConfig::EFFICIENTNET,
                bn_eps: 1e-5,
                drop_path_rate: 0.0,
                same_padding: false,
            },
            drop_rate: 0.0,
        }
    }

    /// timm's `_gen_mobilenet_v2` (`mobilenetv2_050`, `_100`, `_140` use 0.5, 1.0, 1.4).
    pub fn mobilenet_v2(channel_multiplier: f64) -> Self {
        const ARCH: &[&[&str]] = &[
            &["ds_r1_k3_s1_c16"],
            &["ir_r2_k3_s2_e6_c24"],
            &["ir_r3_k3_s2_e6_c32"],
            &["ir_r4_k3_s2_e6_c64"],
            &["ir_r3_k3_s1_e6_c96"],
            &["ir_r3_k3_s2_e6_c160"],
            &["ir_r1_k3_s1_e6_c320"],
        ];
        let mut cfg = Self::base(ARCH, channel_multiplier, Act::Relu6);
        cfg.num_features = 1280.max(cfg.builder.round_chs(1280));
        cfg
    }

    /// timm's `_gen_mobilenet_v1` without the head conv (`mobilenetv1_100`).
    pub fn mobilenet_v1(channel_multiplier: f64) -> Self {
        const ARCH: &[&[&str]] = &[
            &["dsa_r1_k3_s1_c64"],
            &["dsa_r2_k3_s2_c128"],
            &["dsa_r2_k3_s2_c256"],
            &["dsa_r6_k3_s2_c512"],
            &["dsa_r2_k3_s2_c1024"],
        ];
        let mut cfg = Self::base(ARCH, channel_multiplier, Act::Relu6);
        cfg.num_features = 0;
        cfg
    }

    fn mobilenet_v3(
        arch: &[&[&'static str]],
        channel_multiplier: f64,
        num_features: usize,
    ) -> Self {
        let mut cfg = Self::base(arch, channel_multiplier, Act::HardSwish);
        cfg.stem_size = 16;
        cfg.fix_stem = channel_multiplier < 0.75;
        cfg.num_features = num_features;
        cfg.head = HeadKind::PooledConv;
        cfg.builder.se = SeConfig::MOBILENETV3;
        cfg
    }

    /// torchvision's MobileNetV3 (`mobilenet_v3_small` / `_large`): timm's architecture at the
    /// same width, with torchvision's BatchNorm eps 1e-3.
    pub fn torchvision_v3(self) -> Self {
        let mut cfg = self;
        cfg.builder.bn_eps = 1e-3;
        cfg
    }

    /// timm's `_gen_mobilenet_v3` for `mobilenetv3_large_*`.
    pub fn mobilenet_v3_large(channel_multiplier: f64) -> Self {
        const ARCH: &[&[&str]] = &[
            &["ds_r1_k3_s1_e1_c16_nre"],
            &["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
            &["ir_r3_k5_s2_e3_c40_se0.25_nre"],
            &[
                "ir_r1_k3_s2_e6_c80",
                "ir_r1_k3_s1_e2.5_c80",
                "ir_r2_k3_s1_e2.3_c80",
            ],
            &["ir_r2_k3_s1_e6_c112_se0.25"],
            &["ir_r3_k5_s2_e6_c160_se0.25"],
            &["cn_r1_k1_s1_c960"],
        ];
        Self::mobilenet_v3(ARCH, channel_multiplier, 1280)
    }

    /// timm's `_gen_mobilenet_v3` for `mobilenetv3_small_*`.
    pub fn mobilenet_v3_small(channel_multiplier: f64) -> Self {
        const ARCH: &[&[&str]] = &[
            &["ds_r1_k3_s2_e1_c16_se0.25_nre"],
            &["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
            &["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"],
            &["ir_r2_k5_s1_e3_c48_se0.25"],
            &["ir_r3_k5_s2_e6_c96_se0.25"],
            &["cn_r1_k1_s1_c576"],
        ];
        Self::mobilenet_v3(ARCH, channel_multiplier, 1024)
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> MobileNet {
        let b = &self.builder;
        let stem = if self.fix_stem {
            self.stem_size
        } else {
            b.round_chs(self.stem_size)
        };
        let k = self.stem_kernel;
        let arch: Vec<&[&str]> = self.arch_def.iter().map(Vec::as_slice).collect();
        let stages = decode_arch_def(
            &arch,
            self.depth_multiplier,
            self.depth_trunc,
            self.fix_first_last,
        );
        let (blocks, head_in) = b.build(stem, &stages, device);
        let (conv_head, bn2, features) = match (self.head, self.num_features) {
            (HeadKind::ConvBn, 0) => (None, None, head_in),
            (HeadKind::ConvBn, nf) => (
                Some(conv2d(head_in, nf, 1, 1, 0, 1, false, device)),
                Some(b.bn(nf, device)),
                nf,
            ),
            (HeadKind::PooledConv, nf) => (
                Some(conv2d(head_in, nf, 1, 1, 0, 1, true, device)),
                None,
                nf,
            ),
        };
        MobileNet {
            conv_stem: conv2d(in_chans, stem, k, 2, k / 2, 1, false, device),
            bn1: b.bn(stem, device),
            blocks,
            conv_head,
            bn2,
            classifier: LinearConfig::new(features, num_classes).init(device),
            dropout: DropoutConfig::new(self.drop_rate).init(),
            act: b.act,
            head: self.head,
        }
    }
}

#[derive(Module, Debug)]
pub struct MobileNet {
    pub conv_stem: Conv2d,
    pub bn1: BatchNorm,
    pub blocks: Vec<Vec<MbBlock>>,
    pub conv_head: Option<Conv2d>,
    pub bn2: Option<BatchNorm>,
    pub classifier: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub head: HeadKind,
}

impl MobileNet {
    /// Stem and blocks: [N, C, H, W] -> [N, C', H/32, W/32].
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.act.after_bn(&self.bn1, self.conv_stem.run(x));
        for block in self.blocks.iter().flatten() {
            x = block.forward(x);
        }
        x
    }

    /// Head conv and pooling: features -> [N, num_features].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        match self.head {
            HeadKind::ConvBn => {
                let x = match (&self.conv_head, &self.bn2) {
                    (Some(conv), Some(bn)) => self.act.after_bn(bn, conv.run(x)),
                    _ => x,
                };
                global_avg_pool(x)
            }
            HeadKind::PooledConv => {
                let x = x.mean_dims(&[2, 3]);
                let x = match &self.conv_head {
                    Some(conv) => self.act.apply(conv.run(x)),
                    None => x,
                };
                let [n, c, _, _] = x.dims();
                x.reshape([n, c])
            }
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_head(self.forward_features(x));
        self.classifier.run(self.dropout.forward(x))
    }
}

impl crate::classifier::Classifier for MobileNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        MobileNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["classifier."]
    }
}

impl MobileNet {
    /// torchvision's `mobilenet_v2` / `mobilenet_v3_*` key layout -> timm's, for a checkpoint
    /// whose keys show it (`features.0.0.weight` and `features.1.conv.*` or
    /// `features.1.block.*`). torchvision numbers the blocks flat (`features.K`, the stem is 0),
    /// timm by stage (`blocks.S.B`); the stage depths come from this model. Inside a block the
    /// layer groups are numbered in order (expand, depthwise, SE, project). MobileNetV2's head
    /// conv + BN is the last `features` entry and its classifier `classifier.1`; MobileNetV3's
    /// last `features` entry is timm's final `cn` block, and its `classifier.0` Linear
    /// [1280, 960] is timm's `conv_head` 1×1 conv [1280, 960, 1, 1] (`classifier.3` the
    /// classifier).
    pub(crate) fn torchvision_to_timm(
        &self,
        keys: &std::collections::BTreeSet<&str>,
    ) -> Option<crate::translation::Translation<'_>> {
        let v3 = self.head == HeadKind::PooledConv;
        let probe = if v3 {
            "features.1.block.0.0.weight"
        } else {
            "features.1.conv.0.0.weight"
        };
        if !(keys.contains("features.0.0.weight") && keys.contains(probe)) {
            return None;
        }
        let mut map = crate::translation::PrefixMap::default();
        map.add("features.0.0.", "conv_stem.");
        map.add("features.0.1.", "bn1.");
        let mut k = 1;
        for (s, stage) in self.blocks.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let to = format!("blocks.{s}.{b}.");
                let Some(units) = block.torchvision_units() else {
                    // A `cn` block is a bare `Conv2dNormActivation` in torchvision.
                    map.add(format!("features.{k}.0."), format!("{to}conv."));
                    map.add(format!("features.{k}.1."), format!("{to}bn1."));
                    k += 1;
                    continue;
                };
                let from = if v3 {
                    format!("features.{k}.block.")
                } else {
                    format!("features.{k}.conv.")
                };
                add_tv_units(&mut map, &from, &to, &units, !v3);
                k += 1;
            }
        }
        if v3 {
            map.add("classifier.0.", "conv_head.");
            map.add("classifier.3.", "classifier.");
        } else {
            map.add(format!("features.{k}.0."), "conv_head.");
            map.add(format!("features.{k}.1."), "bn2.");
            map.add("classifier.1.", "classifier.");
        }
        Some(Box::new(move |name: &str, shape: &[usize]| {
            let to = map.map(name)?;
            let reshape = match shape {
                [o, i] if v3 && to == "conv_head.weight" => Some(vec![*o, *i, 1, 1]),
                _ => None,
            };
            Some((to, reshape))
        }))
    }
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `mobilenetv2_050` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV2_050_TAGS: &[PretrainedTag] = &[
    tag!("lamb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `mobilenetv2_100` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV2_100_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `mobilenetv2_140` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV2_140_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `mobilenetv3_small_100` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV3_SMALL_100_TAGS: &[PretrainedTag] = &[
    tag!("lamb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `mobilenetv3_large_100` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV3_LARGE_100_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ra4_e3600_r224_in1k", 224, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(256), Some(1.0)),
    tag!("miil_in21k_ft_in1k", 224, 0.875, "bilinear", "center", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], None, None),
];
/// timm's `mobilenetv1_100` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MOBILENETV1_100_TAGS: &[PretrainedTag] = &[
    tag!("ra4_e3600_r224_in1k", 224, 0.875, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(256), Some(0.95)),
];
// END generated

/// timm's MobileNets with their pretrained tags, then torchvision's.
pub static VARIANTS: &[Variant<MobileNet>] = &[
    Variant::tagged(
        "mobilenet",
        "mobilenetv2_050",
        MOBILENETV2_050_TAGS,
        |o, d| MobileNetConfig::mobilenet_v2(0.5).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "mobilenet",
        "mobilenetv2_100",
        MOBILENETV2_100_TAGS,
        |o, d| MobileNetConfig::mobilenet_v2(1.0).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "mobilenet",
        "mobilenetv2_140",
        MOBILENETV2_140_TAGS,
        |o, d| MobileNetConfig::mobilenet_v2(1.4).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "mobilenet",
        "mobilenetv3_small_100",
        MOBILENETV3_SMALL_100_TAGS,
        |o, d| MobileNetConfig::mobilenet_v3_small(1.0).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "mobilenet",
        "mobilenetv3_large_100",
        MOBILENETV3_LARGE_100_TAGS,
        |o, d| MobileNetConfig::mobilenet_v3_large(1.0).init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged(
        "mobilenet",
        "mobilenetv1_100",
        MOBILENETV1_100_TAGS,
        |o, d| MobileNetConfig::mobilenet_v1(1.0).init(o.num_classes, o.in_chans, d),
    ),
    // torchvision's MobileNetV2/V3 (timm's builders; the loader translates torchvision's key
    // layout), data = the DEFAULT weights' eval transforms (resize R, centre crop 224; crop_pct
    // chosen so that floor(224 / crop_pct) = R).
    // 232 -> 224
    Variant::untagged(
        "mobilenet",
        "mobilenet_v2",
        || imagenet_eval(224, 0.965, "bilinear"),
        |o, d| MobileNetConfig::mobilenet_v2(1.0).init(o.num_classes, o.in_chans, d),
    ),
    // 256 -> 224
    Variant::untagged(
        "mobilenet",
        "mobilenet_v3_small",
        || imagenet_eval(224, 0.875, "bilinear"),
        |o, d| {
            MobileNetConfig::mobilenet_v3_small(1.0)
                .torchvision_v3()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    // 232 -> 224
    Variant::untagged(
        "mobilenet",
        "mobilenet_v3_large",
        || imagenet_eval(224, 0.965, "bilinear"),
        |o, d| {
            MobileNetConfig::mobilenet_v3_large(1.0)
                .torchvision_v3()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
];
