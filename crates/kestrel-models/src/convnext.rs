//! ConvNeXt (Liu et al. 2022, "A ConvNet for the 2020s"), in timm's layout:
//! `stem.0` (4×4/4 patch conv), `stem.1` (LayerNorm2d), `stages.N.downsample.{0,1}` (LayerNorm2d,
//! 2×2/2 conv; stages 1–3), `stages.N.blocks.M.{conv_dw, norm, mlp.fc1, mlp.fc2, gamma}`,
//! `head.norm`, `head.fc`.
//!
//! timm's small variants (atto..nano) use `conv_mlp=True`: the MLP is two 1×1 convs on NCHW;
//! the larger ones (tiny..large) use Linear layers on channels-last. Both are kept exactly, so
//! the weights have timm's shapes ([out, in, 1, 1] vs [out, in]).
//!
//! `stem.N` and `downsample.N` are Vecs of an enum of layers (variant names are skipped by the
//! weight loader), so the keys read as timm's without rename rules. The layer-scale parameter is
//! a plain `gamma` field of `Block`, which burn-store's norm renaming (gamma <-> weight) leaves
//! alone because `Block` is not a norm layer; the norms are [`LayerNorm2d`] with PyTorch names.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use crate::layers::{conv2d_init, drop_path, global_avg_pool, trunc_normal, Counted, LayerNorm2d};
use crate::variant::{imagenet_eval, tag, PretrainedTag, Variant};

const EPS: f64 = 1e-6;

/// One ConvNeXt variant (timm's `ConvNeXt(...)` arguments that the registered models use).
#[derive(Clone, Debug)]
pub struct ConvNeXtConfig {
    pub depths: Vec<usize>,
    pub dims: Vec<usize>,
    /// 1×1 convs (NCHW) for the MLP instead of Linear layers (channels-last).
    pub conv_mlp: bool,
    pub kernel_size: usize,
    pub patch_size: usize,
    pub mlp_ratio: usize,
    /// Layer-scale init value; `None` disables layer scale.
    pub ls_init_value: Option<f64>,
    /// Dropout before the classifier (timm's `drop_rate`).
    pub drop_rate: f64,
    /// Stochastic depth, increasing linearly from 0 over all blocks (timm's `drop_path_rate`).
    pub drop_path_rate: f64,
}

impl ConvNeXtConfig {
    pub fn new(depths: [usize; 4], dims: [usize; 4], conv_mlp: bool) -> Self {
        ConvNeXtConfig {
            depths: depths.to_vec(),
            dims: dims.to_vec(),
            conv_mlp,
            kernel_size: 7,
            patch_size: 4,
            mlp_ratio: 4,
            ls_init_value: Some(1e-6),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }
    pub fn atto() -> Self {
        Self::new([2, 2, 6, 2], [40, 80, 160, 320], true)
    }
    pub fn femto() -> Self {
        Self::new([2, 2, 6, 2], [48, 96, 192, 384], true)
    }
    pub fn pico() -> Self {
        Self::new([2, 2, 6, 2], [64, 128, 256, 512], true)
    }
    pub fn nano() -> Self {
        Self::new([2, 2, 8, 2], [80, 160, 320, 640], true)
    }
    pub fn tiny() -> Self {
        Self::new([3, 3, 9, 3], [96, 192, 384, 768], false)
    }
    pub fn small() -> Self {
        Self::new([3, 3, 27, 3], [96, 192, 384, 768], false)
    }
    pub fn base() -> Self {
        Self::new([3, 3, 27, 3], [128, 256, 512, 1024], false)
    }
    pub fn large() -> Self {
        Self::new([3, 3, 27, 3], [192, 384, 768, 1536], false)
    }

    pub fn with_drop_rate(mut self, p: f64) -> Self {
        self.drop_rate = p;
        self
    }
    pub fn with_drop_path_rate(mut self, p: f64) -> Self {
        self.drop_path_rate = p;
        self
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> ConvNeXt {
        let conv = |i: usize, o: usize, k: usize, s: usize, groups: usize, pad: usize| {
            conv2d_init(i, o, k, s, pad, groups, true, trunc_normal(), device)
        };
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        let stem = vec![
            Layer::Conv(conv(
                in_chans,
                self.dims[0],
                self.patch_size,
                self.patch_size,
                1,
                0,
            )),
            Layer::Norm(LayerNorm2d::new(self.dims[0], EPS, device)),
        ];
        // Per-block stochastic depth: linspace(0, rate, total blocks).
        let total: usize = self.depths.iter().sum();
        let rate = |k: usize| {
            if total > 1 {
                self.drop_path_rate * k as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut k = 0;
        let mut prev = self.dims[0];
        let mut stages = Vec::new();
        for (i, (&depth, &dim)) in self.depths.iter().zip(&self.dims).enumerate() {
            let downsample = if i > 0 || prev != dim {
                let ks = if i > 0 { 2 } else { 1 };
                vec![
                    Layer::Norm(LayerNorm2d::new(prev, EPS, device)),
                    Layer::Conv(conv(prev, dim, ks, ks, 1, 0)),
                ]
            } else {
                Vec::new()
            };
            let hidden = dim * self.mlp_ratio;
            let blocks = (0..depth)
                .map(|_| {
                    let (fc1, fc2) = if self.conv_mlp {
                        (
                            Proj::Conv(conv(dim, hidden, 1, 1, 1, 0)),
                            Proj::Conv(conv(hidden, dim, 1, 1, 1, 0)),
                        )
                    } else {
                        (
                            Proj::Linear(linear(dim, hidden)),
                            Proj::Linear(linear(hidden, dim)),
                        )
                    };
                    let block = Block {
                        conv_dw: conv(dim, dim, self.kernel_size, 1, dim, self.kernel_size / 2),
                        norm: LayerNorm2d::new(dim, EPS, device),
                        mlp: Mlp { fc1, fc2 },
                        gamma: self
                            .ls_init_value
                            .map(|v| Param::from_tensor(Tensor::full([dim], v, device))),
                        drop_path: rate(k),
                    };
                    k += 1;
                    block
                })
                .collect();
            stages.push(Stage { downsample, blocks });
            prev = dim;
        }
        ConvNeXt {
            stem,
            stages,
            head: Head {
                norm: LayerNorm2d::new(prev, EPS, device),
                drop: DropoutConfig::new(self.drop_rate).init(),
                fc: linear(prev, num_classes),
            },
        }
    }
}

/// An element of timm's `nn.Sequential` stem / downsample.
#[derive(Module, Debug)]
pub enum Layer {
    Norm(LayerNorm2d),
    Conv(Conv2d),
}

impl Layer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Norm(n) => n.forward(x),
            Layer::Conv(c) => c.run(x),
        }
    }
}

/// An MLP projection: a Linear on channels-last, or a 1×1 conv on NCHW (`conv_mlp`).
#[derive(Module, Debug)]
pub enum Proj {
    Linear(Linear),
    Conv(Conv2d),
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Proj,
    pub fc2: Proj,
}

#[derive(Module, Debug)]
pub struct Block {
    pub conv_dw: Conv2d,
    pub norm: LayerNorm2d,
    pub mlp: Mlp,
    /// Layer scale, timm's name. Not a norm parameter: it keeps its name on load and save.
    pub gamma: Option<Param<Tensor<1>>>,
    pub drop_path: f64,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let y = self.conv_dw.run(x);
        let y = match (&self.mlp.fc1, &self.mlp.fc2) {
            (Proj::Conv(fc1), Proj::Conv(fc2)) => fc2.run(gelu(fc1.run(self.norm.forward(y)))),
            (Proj::Linear(fc1), Proj::Linear(fc2)) => {
                let y = self.norm.forward_last(y.permute([0, 2, 3, 1]));
                fc2.run(gelu(fc1.run(y))).permute([0, 3, 1, 2])
            }
            _ => unreachable!("fc1 and fc2 are built alike"),
        };
        let y = match &self.gamma {
            Some(g) => {
                let c = g.dims()[0];
                y * g.val().reshape([1, c, 1, 1])
            }
            None => y,
        };
        drop_path(y, self.drop_path) + shortcut
    }
}

#[derive(Module, Debug)]
pub struct Stage {
    /// Empty for stage 0 (timm's `nn.Identity`).
    pub downsample: Vec<Layer>,
    pub blocks: Vec<Block>,
}

/// timm's `NormMlpClassifierHead` without the hidden layer: avg-pool, norm, dropout, fc.
#[derive(Module, Debug)]
pub struct Head {
    pub norm: LayerNorm2d,
    pub drop: Dropout,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct ConvNeXt {
    pub stem: Vec<Layer>,
    pub stages: Vec<Stage>,
    pub head: Head,
}

impl ConvNeXt {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        for layer in &self.stem {
            x = layer.forward(x);
        }
        for stage in &self.stages {
            for layer in &stage.downsample {
                x = layer.forward(x);
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        x
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self
            .head
            .norm
            .forward_last(global_avg_pool(self.forward_features(x)));
        self.head.fc.run(self.head.drop.forward(x))
    }
}

impl crate::classifier::Classifier for ConvNeXt {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ConvNeXt::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head.fc."]
    }
}

impl ConvNeXt {
    /// torchvision's `convnext_*` key layout -> timm's, for a checkpoint whose keys show it
    /// (`features.0.0.weight`, `features.1.0.block.0.weight`): `features.0.{0,1}` is `stem`,
    /// `features.2k+1.M.block.{0,2,3,5}` is `stages.k.blocks.M.{conv_dw, norm, mlp.fc1, mlp.fc2}`,
    /// `features.2k.{0,1}` is `stages.k.downsample`, `classifier.{0,2}` is `head.{norm,fc}`, and
    /// the layer scale `layer_scale` [C, 1, 1] is `gamma` [C]. The architecture is timm's
    /// Linear-MLP ConvNeXt exactly (LayerNorm eps 1e-6 both).
    pub(crate) fn torchvision_to_timm(
        &self,
        keys: &std::collections::BTreeSet<&str>,
    ) -> Option<crate::translation::Translation<'_>> {
        if !(keys.contains("features.0.0.weight") && keys.contains("features.1.0.block.0.weight")) {
            return None;
        }
        Some(Box::new(|name: &str, shape: &[usize]| {
            let (head, rest) = name.split_once('.')?;
            match head {
                "classifier" => {
                    let (i, rest) = rest.split_once('.')?;
                    let to = match i {
                        "0" => "head.norm",
                        "2" => "head.fc",
                        _ => return None,
                    };
                    Some((format!("{to}.{rest}"), None))
                }
                "features" => {
                    let (f, rest) = rest.split_once('.')?;
                    let f: usize = f.parse().ok()?;
                    if f == 0 {
                        return Some((format!("stem.{rest}"), None));
                    }
                    let stage = (f - 1) / 2;
                    if f % 2 == 0 {
                        return Some((format!("stages.{}.downsample.{rest}", f / 2), None));
                    }
                    let (m, rest) = rest.split_once('.')?;
                    let prefix = format!("stages.{stage}.blocks.{m}");
                    if rest == "layer_scale" {
                        let c = *shape.first()?;
                        return Some((format!("{prefix}.gamma"), Some(vec![c])));
                    }
                    let rest = rest.strip_prefix("block.")?;
                    let (i, leaf) = rest.split_once('.')?;
                    let to = match i {
                        "0" => "conv_dw",
                        "2" => "norm",
                        "3" => "mlp.fc1",
                        "5" => "mlp.fc2",
                        _ => return None,
                    };
                    Some((format!("{prefix}.{to}.{leaf}"), None))
                }
                _ => None,
            }
        }))
    }
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `convnext_atto` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_ATTO_TAGS: &[PretrainedTag] = &[
    tag!("d2_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `convnext_femto` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_FEMTO_TAGS: &[PretrainedTag] = &[
    tag!("d1_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `convnext_pico` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_PICO_TAGS: &[PretrainedTag] = &[
    tag!("d1_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `convnext_nano` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_NANO_TAGS: &[PretrainedTag] = &[
    tag!("in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("d1h_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("r384_in12k_ft_in1k", 384, 1.0, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `convnext_tiny` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_TINY_TAGS: &[PretrainedTag] = &[
    tag!("in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("in12k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_in22k_ft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in22k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `convnext_small` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_SMALL_TAGS: &[PretrainedTag] = &[
    tag!("in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("in12k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_in22k_ft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in22k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `convnext_base` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_BASE_TAGS: &[PretrainedTag] = &[
    tag!("fb_in22k_ft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in22k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("clip_laion2b_augreg_ft_in12k_in1k", 256, 1.0, "bicubic", "center", [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711], None, None),
    tag!("clip_laion2b_augreg_ft_in12k_in1k_384", 384, 1.0, "bicubic", "squash", [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711], None, None),
    tag!("clip_laion2b_augreg_ft_in1k", 256, 1.0, "bicubic", "center", [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711], None, None),
    tag!("clip_laiona_augreg_ft_in1k_384", 384, 1.0, "bicubic", "center", [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711], None, None),
];
/// timm's `convnext_large` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const CONVNEXT_LARGE_TAGS: &[PretrainedTag] = &[
    tag!("fb_in22k_ft_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("fb_in22k_ft_in1k_384", 384, 1.0, "bicubic", "squash", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
// END generated

/// The ConvNeXt models: timm's names and default-tag data configs, then torchvision's weights
/// (their DEFAULT eval transforms: resize R, centre crop 224, bilinear; crop_pct chosen so that
/// floor(224 / crop_pct) = R) under timm's `tv_` prefix.
pub static VARIANTS: &[Variant<ConvNeXt>] = &[
    Variant::tagged("convnext", "convnext_atto", CONVNEXT_ATTO_TAGS, |o, d| {
        ConvNeXtConfig::atto().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_femto", CONVNEXT_FEMTO_TAGS, |o, d| {
        ConvNeXtConfig::femto().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_pico", CONVNEXT_PICO_TAGS, |o, d| {
        ConvNeXtConfig::pico().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_nano", CONVNEXT_NANO_TAGS, |o, d| {
        ConvNeXtConfig::nano().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_tiny", CONVNEXT_TINY_TAGS, |o, d| {
        ConvNeXtConfig::tiny().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_small", CONVNEXT_SMALL_TAGS, |o, d| {
        ConvNeXtConfig::small().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_base", CONVNEXT_BASE_TAGS, |o, d| {
        ConvNeXtConfig::base().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("convnext", "convnext_large", CONVNEXT_LARGE_TAGS, |o, d| {
        ConvNeXtConfig::large().init(o.num_classes, o.in_chans, d)
    }),
    // 236 -> 224
    Variant::untagged(
        "convnext",
        "tv_convnext_tiny",
        || imagenet_eval(224, 0.949, "bilinear"),
        |o, d| ConvNeXtConfig::tiny().init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:convnext_tiny"]),
    // 230 -> 224
    Variant::untagged(
        "convnext",
        "tv_convnext_small",
        || imagenet_eval(224, 0.9739, "bilinear"),
        |o, d| ConvNeXtConfig::small().init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:convnext_small"]),
    // 232 -> 224
    Variant::untagged(
        "convnext",
        "tv_convnext_base",
        || imagenet_eval(224, 0.965, "bilinear"),
        |o, d| ConvNeXtConfig::base().init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:convnext_base"]),
    // 232 -> 224
    Variant::untagged(
        "convnext",
        "tv_convnext_large",
        || imagenet_eval(224, 0.965, "bilinear"),
        |o, d| ConvNeXtConfig::large().init(o.num_classes, o.in_chans, d),
    )
    .aliases(&["tv:convnext_large"]),
];
