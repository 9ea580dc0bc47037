//! Swin Transformer (Liu et al. 2021, "Hierarchical Vision Transformer using Shifted Windows"),
//! in timm's current layout (`timm/models/swin_transformer.py`, NHWC stages):
//! `patch_embed.{proj, norm}`, `layers.S.downsample.{norm, reduction}` (patch merging, stages
//! 1..), `layers.S.blocks.B.{norm1, attn.qkv, attn.proj, attn.relative_position_bias_table,
//! norm2, mlp.fc1, mlp.fc2}`, `norm`, `head.fc`.
//!
//! Blocks alternate plain and shifted windows (shift = window / 2); a window that covers the
//! whole feature map is shrunk to it and not shifted, as timm's `_calc_window_shift` does. The
//! relative-position index and the shifted-window mask are rebuilt from the configuration (timm
//! keeps them as non-persistent buffers); checkpoints that carry them (Microsoft's originals)
//! still load, their copies ignored.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::layers::attention::{Attention, AttentionConfig};
use crate::layers::mlp::Mlp;
use crate::layers::patch_embed::PatchEmbed;
use crate::layers::{drop_path, trunc_normal, Counted, LayerNorm2d};
use crate::variant::{tag, PretrainedTag, Variant};

/// PyTorch's `nn.LayerNorm` default, which timm's Swin uses.
const EPS: f64 = 1e-5;

/// timm's `SwinTransformer(...)` arguments that the registered models use.
#[derive(Clone, Debug)]
pub struct SwinConfig {
    pub img_size: usize,
    pub patch_size: usize,
    pub window_size: usize,
    pub embed_dim: usize,
    pub depths: Vec<usize>,
    pub num_heads: Vec<usize>,
    pub mlp_ratio: f64,
    /// Dropout before the classifier (`drop_rate`).
    pub drop_rate: f64,
    pub attn_drop_rate: f64,
    pub proj_drop_rate: f64,
    /// Stochastic depth, linear from 0 over all blocks; timm's default is 0.1.
    pub drop_path_rate: f64,
}

impl SwinConfig {
    pub fn new(embed_dim: usize, depths: [usize; 4], num_heads: [usize; 4]) -> Self {
        SwinConfig {
            img_size: 224,
            patch_size: 4,
            window_size: 7,
            embed_dim,
            depths: depths.to_vec(),
            num_heads: num_heads.to_vec(),
            mlp_ratio: 4.0,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            proj_drop_rate: 0.0,
            drop_path_rate: 0.1,
        }
    }
    pub fn tiny() -> Self {
        Self::new(96, [2, 2, 6, 2], [3, 6, 12, 24])
    }
    pub fn small() -> Self {
        Self::new(96, [2, 2, 18, 2], [3, 6, 12, 24])
    }
    pub fn base() -> Self {
        Self::new(128, [2, 2, 18, 2], [4, 8, 16, 32])
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> SwinTransformer {
        let patch_embed = PatchEmbed::new(
            [self.img_size; 2],
            self.patch_size,
            in_chans,
            self.embed_dim,
            Some(EPS),
            device,
        );
        let total: usize = self.depths.iter().sum();
        let rate = |k: usize| {
            if total > 1 {
                self.drop_path_rate * k as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut k = 0;
        let mut res = patch_embed.grid();
        let mut in_dim = self.embed_dim;
        let mut layers = Vec::new();
        for (i, (&depth, &heads)) in self.depths.iter().zip(&self.num_heads).enumerate() {
            let dim = self.embed_dim << i;
            let downsample = (i > 0).then(|| {
                res = [res[0].div_ceil(2), res[1].div_ceil(2)];
                PatchMerging {
                    norm: LayerNorm2d::new(4 * in_dim, EPS, device),
                    reduction: LinearConfig::new(4 * in_dim, dim)
                        .with_bias(false)
                        .with_initializer(trunc_normal())
                        .init(device),
                }
            });
            let blocks = (0..depth)
                .map(|j| {
                    // timm's `_calc_window_shift`: a window as large as the map is the map, unshifted.
                    let window = res.map(|r| r.min(self.window_size));
                    let shift = if j % 2 == 1 {
                        res.map(|r| {
                            if r <= self.window_size {
                                0
                            } else {
                                self.window_size / 2
                            }
                        })
                    } else {
                        [0, 0]
                    };
                    let block = SwinBlock {
                        norm1: LayerNorm2d::new(dim, EPS, device),
                        attn: AttentionConfig {
                            attn_drop: self.attn_drop_rate,
                            proj_drop: self.proj_drop_rate,
                            window: Some(window),
                            ..AttentionConfig::new(dim, heads)
                        }
                        .init(device),
                        norm2: LayerNorm2d::new(dim, EPS, device),
                        mlp: Mlp::new(
                            dim,
                            (dim as f64 * self.mlp_ratio) as usize,
                            self.proj_drop_rate,
                            device,
                        ),
                        drop_path: rate(k),
                        window,
                        shift,
                        attn_mask: shifted_window_mask(res, window, shift),
                    };
                    k += 1;
                    block
                })
                .collect();
            layers.push(SwinStage { downsample, blocks });
            in_dim = dim;
        }
        SwinTransformer {
            patch_embed,
            layers,
            norm: LayerNorm2d::new(in_dim, EPS, device),
            head: SwinHead {
                drop: DropoutConfig::new(self.drop_rate).init(),
                fc: LinearConfig::new(in_dim, num_classes)
                    .with_initializer(trunc_normal())
                    .init(device),
            },
        }
    }
}

/// timm's `get_attn_mask` for a `res` feature map (padded up to whole windows): tokens of a
/// shifted window that came from different regions of the rolled map must not attend to each
/// other (−100 before the softmax). [nW·N·N], row-major, windows in `window_partition` order;
/// `None` without a shift.
fn shifted_window_mask(res: [usize; 2], window: [usize; 2], shift: [usize; 2]) -> Option<Vec<f32>> {
    if shift == [0, 0] {
        return None;
    }
    let hp = res[0].div_ceil(window[0]) * window[0];
    let wp = res[1].div_ceil(window[1]) * window[1];
    // Region label along one axis: [0, L−window), [L−window, L−shift), [L−shift, L).
    let region = |p: usize, len: usize, w: usize, s: usize| {
        if p < len - w {
            0
        } else if p < len - s {
            1
        } else {
            2
        }
    };
    let n = window[0] * window[1];
    let mut mask = Vec::new();
    for wy in 0..hp / window[0] {
        for wx in 0..wp / window[1] {
            let labels: Vec<usize> = (0..n)
                .map(|t| {
                    let y = wy * window[0] + t / window[1];
                    let x = wx * window[1] + t % window[1];
                    region(y, hp, window[0], shift[0]) * 3 + region(x, wp, window[1], shift[1])
                })
                .collect();
            for &a in &labels {
                mask.extend(labels.iter().map(|&b| if a == b { 0.0 } else { -100.0 }));
            }
        }
    }
    Some(mask)
}

/// timm's `SwinTransformerBlock` on NHWC maps.
#[derive(Module, Debug)]
pub struct SwinBlock {
    pub norm1: LayerNorm2d,
    pub attn: Attention,
    pub norm2: LayerNorm2d,
    pub mlp: Mlp,
    pub drop_path: f64,
    #[module(skip)]
    pub window: [usize; 2],
    #[module(skip)]
    pub shift: [usize; 2],
    /// The shifted-window mask, rebuilt (timm's non-persistent `attn_mask`).
    #[module(skip)]
    pub attn_mask: Option<Vec<f32>>,
}

impl SwinBlock {
    fn window_attention(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let [wh, ww] = self.window;
        let [sh, sw] = self.shift;
        let shifted = if sh + sw > 0 {
            x.roll(&[-(sh as i64), -(sw as i64)], &[1, 2])
        } else {
            x
        };
        let (hp, wp) = (h.div_ceil(wh) * wh, w.div_ceil(ww) * ww);
        let padded = if (hp, wp) != (h, w) {
            let device = shifted.device();
            let right = Tensor::zeros([b, h, wp - w, c], &device);
            let row = Tensor::cat(vec![shifted, right], 2);
            let bottom = Tensor::zeros([b, hp - h, wp, c], &device);
            Tensor::cat(vec![row, bottom], 1)
        } else {
            shifted
        };
        let (nh, nw) = (hp / wh, wp / ww);
        let windows: Tensor<3> = padded
            .reshape([b, nh, wh, nw, ww, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b * nh * nw, wh * ww, c]);
        let n = wh * ww;
        let mask = self.attn_mask.as_ref().map(|m| {
            Tensor::<3>::from_data(
                TensorData::new(m.clone(), [nh * nw, n, n]),
                &windows.device(),
            )
        });
        let y = self.attn.forward_masked(windows, mask);
        let y: Tensor<4> = y
            .reshape([b, nh, nw, wh, ww, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, hp, wp, c]);
        let y = if (hp, wp) != (h, w) {
            y.slice([0..b, 0..h, 0..w, 0..c])
        } else {
            y
        };
        if sh + sw > 0 {
            y.roll(&[sh as i64, sw as i64], &[1, 2])
        } else {
            y
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.window_attention(self.norm1.forward_last(x.clone()));
        let x = x + drop_path(y, self.drop_path);
        let y = self.mlp.forward(self.norm2.forward_last(x.clone()));
        x + drop_path(y, self.drop_path)
    }
}

/// timm's `PatchMerging`: each 2×2 neighbourhood concatenated (channel order (0,0), (1,0),
/// (0,1), (1,1)), normalised, and projected to twice the width.
#[derive(Module, Debug)]
pub struct PatchMerging {
    pub norm: LayerNorm2d,
    pub reduction: Linear,
}

impl PatchMerging {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let x = if h % 2 + w % 2 > 0 {
            let device = x.device();
            let x = Tensor::cat(vec![x, Tensor::zeros([b, h, w % 2, c], &device)], 2);
            Tensor::cat(vec![x, Tensor::zeros([b, h % 2, w + w % 2, c], &device)], 1)
        } else {
            x
        };
        let [b, h, w, c] = x.dims();
        let x: Tensor<4> = x
            .reshape([b, h / 2, 2, w / 2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([b, h / 2, w / 2, 4 * c]);
        self.reduction.run(self.norm.forward_last(x))
    }
}

#[derive(Module, Debug)]
pub struct SwinStage {
    /// `None` for stage 0 (timm's `nn.Identity`).
    pub downsample: Option<PatchMerging>,
    pub blocks: Vec<SwinBlock>,
}

/// timm's `ClassifierHead` (average pool over NHWC, dropout, `fc`).
#[derive(Module, Debug)]
pub struct SwinHead {
    pub drop: Dropout,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct SwinTransformer {
    pub patch_embed: PatchEmbed,
    pub layers: Vec<SwinStage>,
    pub norm: LayerNorm2d,
    pub head: SwinHead,
}

impl SwinTransformer {
    /// NHWC features after the final norm.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.patch_embed.forward(x);
        for stage in &self.layers {
            if let Some(down) = &stage.downsample {
                x = down.forward(x);
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        self.norm.forward_last(x)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_features(x);
        let [b, _, _, c] = x.dims();
        let x = x.mean_dims(&[1, 2]).reshape([b, c]);
        self.head.fc.run(self.head.drop.forward(x))
    }
}

impl crate::classifier::Classifier for SwinTransformer {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        SwinTransformer::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head.fc."]
    }
    fn rebuilt_buffers(&self) -> &'static [&'static str] {
        &["relative_position_index", "attn_mask"]
    }
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `swin_tiny_patch4_window7_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SWIN_TINY_PATCH4_WINDOW7_224_TAGS: &[PretrainedTag] = &[
    tag!("ms_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ms_in22k_ft_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `swin_small_patch4_window7_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SWIN_SMALL_PATCH4_WINDOW7_224_TAGS: &[PretrainedTag] = &[
    tag!("ms_in22k_ft_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ms_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `swin_base_patch4_window7_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SWIN_BASE_PATCH4_WINDOW7_224_TAGS: &[PretrainedTag] = &[
    tag!("ms_in22k_ft_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ms_in1k", 224, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
// END generated

/// timm's Swin Transformers with their pretrained tags (fixed input size; `--img-size` builds
/// another).
pub static VARIANTS: &[Variant<SwinTransformer>] = &[
    Variant::tagged(
        "swin",
        "swin_tiny_patch4_window7_224",
        SWIN_TINY_PATCH4_WINDOW7_224_TAGS,
        |o, d| {
            let cfg = SwinConfig::tiny();
            let img_size = o.img_size.unwrap_or(cfg.img_size);
            SwinConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "swin",
        "swin_small_patch4_window7_224",
        SWIN_SMALL_PATCH4_WINDOW7_224_TAGS,
        |o, d| {
            let cfg = SwinConfig::small();
            let img_size = o.img_size.unwrap_or(cfg.img_size);
            SwinConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "swin",
        "swin_base_patch4_window7_224",
        SWIN_BASE_PATCH4_WINDOW7_224_TAGS,
        |o, d| {
            let cfg = SwinConfig::base();
            let img_size = o.img_size.unwrap_or(cfg.img_size);
            SwinConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
        },
    ),
];
