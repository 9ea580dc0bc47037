//! Vision Transformer (Dosovitskiy et al. 2021) and DeiT (Touvron et al. 2021, with the
//! distillation token), in timm's layout (`timm/models/vision_transformer.py`, `deit.py`):
//! `patch_embed.proj`, `cls_token`, `dist_token` (distilled DeiT), `pos_embed`,
//! `blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}`, `norm`,
//! `head`, `head_dist`.
//!
//! Pre-norm blocks, the final norm, then the class token's head (timm's `global_pool='token'`,
//! no `fc_norm`). A distilled DeiT averages its two heads in eval, as timm does outside
//! `distilled_training`; [`VisionTransformer::forward_heads`] gives the loss both.
//!
//! The model is built for one image size. A checkpoint whose `pos_embed` has another grid is
//! resampled at load time, as timm's `checkpoint_filter_fn` does with `resample_abs_pos_embed`.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::layers::attention::{Attention, AttentionConfig};
use crate::layers::layer_scale::{maybe_scale, LayerScale};
use crate::layers::mlp::Mlp;
use crate::layers::patch_embed::PatchEmbed;
use crate::layers::pos_embed::resample_abs_pos_embed;
use crate::layers::{drop_path, trunc_normal, Counted, LayerNorm2d};
use crate::variant::{tag, PretrainedTag, Variant};

const EPS: f64 = 1e-6;

/// timm's `VisionTransformer(...)` arguments that the registered ViT/DeiT models use.
#[derive(Clone, Debug)]
pub struct VitConfig {
    pub img_size: usize,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// DeiT's distillation token and second head.
    pub distilled: bool,
    /// LayerScale init value (`init_values`); `None`: no layer scale.
    pub init_values: Option<f64>,
    /// Dropout after the position embedding and before the head (timm's `drop_rate`, `pos_drop_rate`).
    pub drop_rate: f64,
    /// Dropout on the attention weights (`attn_drop_rate`).
    pub attn_drop_rate: f64,
    /// Dropout after the attention and MLP projections (`proj_drop_rate`).
    pub proj_drop_rate: f64,
    /// Stochastic depth, linear from 0 over the blocks (`drop_path_rate`).
    pub drop_path_rate: f64,
}

impl VitConfig {
    pub fn new(patch_size: usize, embed_dim: usize, depth: usize, num_heads: usize) -> Self {
        VitConfig {
            img_size: 224,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            distilled: false,
            init_values: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            proj_drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }
    pub fn tiny(patch_size: usize) -> Self {
        Self::new(patch_size, 192, 12, 3)
    }
    pub fn small(patch_size: usize) -> Self {
        Self::new(patch_size, 384, 12, 6)
    }
    pub fn base(patch_size: usize) -> Self {
        Self::new(patch_size, 768, 12, 12)
    }
    pub fn large(patch_size: usize) -> Self {
        Self::new(patch_size, 1024, 24, 16)
    }
    /// This config at `img_size` when given (the registry's `--img-size`), else unchanged.
    pub fn at_size(self, img_size: Option<usize>) -> Self {
        match img_size {
            Some(size) => self.with_img_size(size),
            None => self,
        }
    }
    pub fn with_img_size(mut self, img_size: usize) -> Self {
        self.img_size = img_size;
        self
    }
    pub fn distilled(mut self) -> Self {
        self.distilled = true;
        self
    }

    pub fn num_prefix_tokens(&self) -> usize {
        1 + usize::from(self.distilled)
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> VisionTransformer {
        let d = self.embed_dim;
        let patch_embed = PatchEmbed::new(
            [self.img_size; 2],
            self.patch_size,
            in_chans,
            d,
            None,
            device,
        );
        let [gh, gw] = patch_embed.grid();
        let normal = |shape: [usize; 3], std: f64| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, std),
                device,
            ))
        };
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        let blocks = (0..self.depth)
            .map(|i| Block::new(self, EPS, self.block_drop_path(i), device))
            .collect();
        VisionTransformer {
            patch_embed,
            cls_token: normal([1, 1, d], 1e-6),
            dist_token: self.distilled.then(|| normal([1, 1, d], 0.02)),
            pos_embed: normal([1, self.num_prefix_tokens() + gh * gw, d], 0.02),
            pos_drop: DropoutConfig::new(self.drop_rate).init(),
            blocks,
            norm: LayerNorm2d::new(d, EPS, device),
            head_drop: DropoutConfig::new(self.drop_rate).init(),
            head: linear(d, num_classes),
            head_dist: self.distilled.then(|| linear(d, num_classes)),
        }
    }
}

impl VitConfig {
    /// Block `i`'s stochastic-depth rate: linear from 0 to `drop_path_rate` over the blocks.
    pub(crate) fn block_drop_path(&self, i: usize) -> f64 {
        if self.depth > 1 {
            self.drop_path_rate * i as f64 / (self.depth - 1) as f64
        } else {
            0.0
        }
    }
}

/// timm's pre-norm `Block`.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm2d,
    pub attn: Attention,
    pub ls1: Option<LayerScale>,
    pub norm2: LayerNorm2d,
    pub mlp: Mlp,
    pub ls2: Option<LayerScale>,
    pub drop_path: f64,
}

impl Block {
    /// A block of `cfg`'s width, heads, MLP ratio, qkv bias, layer scale and dropouts, with
    /// LayerNorm eps `eps` (timm's ViT 1e-6; T2T-ViT uses PyTorch's default 1e-5).
    pub(crate) fn new(cfg: &VitConfig, eps: f64, drop_path: f64, device: &Device) -> Self {
        let d = cfg.embed_dim;
        Block {
            norm1: LayerNorm2d::new(d, eps, device),
            attn: AttentionConfig {
                qkv_bias: cfg.qkv_bias,
                attn_drop: cfg.attn_drop_rate,
                proj_drop: cfg.proj_drop_rate,
                ..AttentionConfig::new(d, cfg.num_heads)
            }
            .init(device),
            ls1: cfg.init_values.map(|v| LayerScale::new(d, v, device)),
            norm2: LayerNorm2d::new(d, eps, device),
            mlp: Mlp::new(
                d,
                (d as f64 * cfg.mlp_ratio) as usize,
                cfg.proj_drop_rate,
                device,
            ),
            ls2: cfg.init_values.map(|v| LayerScale::new(d, v, device)),
            drop_path,
        }
    }

    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = maybe_scale(
            &self.ls1,
            self.attn.forward(self.norm1.forward_last(x.clone())),
        );
        let x = x + drop_path(y, self.drop_path);
        let y = maybe_scale(
            &self.ls2,
            self.mlp.forward(self.norm2.forward_last(x.clone())),
        );
        x + drop_path(y, self.drop_path)
    }
}

#[derive(Module, Debug)]
pub struct VisionTransformer {
    pub patch_embed: PatchEmbed,
    pub cls_token: Param<Tensor<3>>,
    pub dist_token: Option<Param<Tensor<3>>>,
    pub pos_embed: Param<Tensor<3>>,
    pub pos_drop: Dropout,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm2d,
    pub head_drop: Dropout,
    pub head: Linear,
    pub head_dist: Option<Linear>,
}

impl VisionTransformer {
    fn num_prefix_tokens(&self) -> usize {
        1 + usize::from(self.dist_token.is_some())
    }

    /// Tokens after the final norm: [B, prefix + patches, D].
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<3> {
        let x = self.patch_embed.forward(x);
        let [b, gh, gw, d] = x.dims();
        let mut tokens = vec![self.cls_token.val().expand([b, 1, d])];
        if let Some(dist) = &self.dist_token {
            tokens.push(dist.val().expand([b, 1, d]));
        }
        tokens.push(x.reshape([b, gh * gw, d]));
        let mut x = self
            .pos_drop
            .forward(Tensor::cat(tokens, 1) + self.pos_embed.val());
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward_last(x)
    }

    /// The class-token logits and, for a distilled DeiT, the distillation-token logits (timm's
    /// `forward_head` under `distilled_training`), for a distillation loss.
    pub fn forward_heads(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        let x = self.forward_features(x);
        let [b, _, d] = x.dims();
        let token = |i: usize| {
            self.head_drop
                .forward(x.clone().narrow(1, i, 1).reshape([b, d]))
        };
        let cls = self.head.run(token(0));
        let dist = self.head_dist.as_ref().map(|h| h.run(token(1)));
        (cls, dist)
    }

    /// Logits; a distilled DeiT averages its two heads.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self.forward_heads(x) {
            (cls, Some(dist)) => (cls + dist) / 2.0,
            (cls, None) => cls,
        }
    }

    /// For a checkpoint's `pos_embed` of shape `shape` that differs from the model's: the shape
    /// the model wants and the resampling to it (timm's `resample_abs_pos_embed`, bicubic, the
    /// prefix tokens kept). `None` when the tensor is not the position embedding or already fits,
    /// or cannot be a square grid with this model's prefix tokens (the loader then reports it).
    #[allow(clippy::type_complexity)]
    pub(crate) fn pos_embed_resampler(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Option<(Vec<usize>, Box<dyn Fn(Vec<f32>) -> Vec<f32> + Send + Sync>)> {
        let want = self.pos_embed.dims();
        if name != "pos_embed" || shape == want.as_slice() || shape.len() != 3 {
            return None;
        }
        let (prefix, d) = (self.num_prefix_tokens(), want[2]);
        if shape[0] != 1 || shape[2] != d || shape[1] <= prefix {
            return None;
        }
        let old = ((shape[1] - prefix) as f64).sqrt().round() as usize;
        if old * old != shape[1] - prefix {
            return None;
        }
        let new = self.patch_embed.grid();
        Some((
            want.to_vec(),
            Box::new(move |data| resample_abs_pos_embed(&data, d, [old, old], new, prefix)),
        ))
    }
}

impl crate::classifier::Classifier for VisionTransformer {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        VisionTransformer::forward(self, x)
    }
    fn forward_heads(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        VisionTransformer::forward_heads(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head.", "head_dist."]
    }
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `vit_tiny_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_TINY_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("augreg_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `vit_small_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_SMALL_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("augreg_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("augreg_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `vit_base_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_BASE_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("augreg2_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("augreg_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("orig_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("augreg_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("sam_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `vit_large_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_LARGE_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("augreg_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `vit_base_patch32_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_BASE_PATCH32_224_TAGS: &[PretrainedTag] = &[
    tag!("augreg_in21k_ft_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("augreg_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("sam_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `vit_base_patch16_384` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const VIT_BASE_PATCH16_384_TAGS: &[PretrainedTag] = &[
    tag!("augreg_in21k_ft_in1k", 384, 1.0, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("orig_in21k_ft_in1k", 384, 1.0, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
    tag!("augreg_in1k", 384, 1.0, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `deit_tiny_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_TINY_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `deit_small_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_SMALL_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `deit_base_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_BASE_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `deit_tiny_distilled_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_TINY_DISTILLED_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `deit_small_distilled_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_SMALL_DISTILLED_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `deit_base_distilled_patch16_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const DEIT_BASE_DISTILLED_PATCH16_224_TAGS: &[PretrainedTag] = &[
    tag!("fb_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
// END generated

/// timm's ViTs (default tags: augreg, mean = std = 0.5) and DeiTs (fb_in1k, ImageNet
/// statistics), built for `--img-size` when given.
pub static VARIANTS: &[Variant<VisionTransformer>] = &[
    Variant::tagged(
        "vit",
        "vit_tiny_patch16_224",
        VIT_TINY_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::tiny(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "vit_small_patch16_224",
        VIT_SMALL_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::small(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "vit_base_patch16_224",
        VIT_BASE_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::base(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "vit_large_patch16_224",
        VIT_LARGE_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::large(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "vit_base_patch32_224",
        VIT_BASE_PATCH32_224_TAGS,
        |o, d| {
            VitConfig::base(32)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "vit_base_patch16_384",
        VIT_BASE_PATCH16_384_TAGS,
        |o, d| {
            VitConfig::base(16)
                .with_img_size(384)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_tiny_patch16_224",
        DEIT_TINY_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::tiny(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_small_patch16_224",
        DEIT_SMALL_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::small(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_base_patch16_224",
        DEIT_BASE_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::base(16)
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_tiny_distilled_patch16_224",
        DEIT_TINY_DISTILLED_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::tiny(16)
                .distilled()
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_small_distilled_patch16_224",
        DEIT_SMALL_DISTILLED_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::small(16)
                .distilled()
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "vit",
        "deit_base_distilled_patch16_224",
        DEIT_BASE_DISTILLED_PATCH16_224_TAGS,
        |o, d| {
            VitConfig::base(16)
                .distilled()
                .at_size(o.img_size)
                .init(o.num_classes, o.in_chans, d)
        },
    ),
];
