//! Tokens-to-Token ViT (Yuan et al. 2021, "Tokens-to-Token ViT: Training Vision Transformers
//! from Scratch on ImageNet"), in the official repository's layout (`models/t2t_vit.py`):
//! `tokens_to_token.{attention1, attention2, project}`, `cls_token`, `pos_embed`,
//! `blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`, `head`.
//!
//! The T2T module re-structures the image progressively: a soft split (an unfold: overlapping
//! k×k patches, 7/4 then 3/2 and 3/2) turns the image into tokens, a token transformer mixes
//! them, they are folded back into a map and split again; the last split is projected to the
//! embedding width. Then a ViT backbone (the shared [`crate::vit::Block`]s, qkv without bias,
//! PyTorch's LayerNorm eps 1e-5) with a class token and a fixed sinusoidal position embedding
//! (a frozen parameter, in the checkpoint as in the official code), the final norm and the class
//! token's head.
//!
//! The token layers are the official `tokens_type='transformer'` ones (the repository's
//! `t2t_vit_t_*`): attention narrows the tokens to `token_dim` and adds its values as the skip
//! connection. The Performer token layers of the official `t2t_vit_*` names are not implemented:
//! those checkpoints (`kqv`, `w` keys) do not load. Parameter counts are the same to the
//! paper's precision (21.5 M, 39.2 M, 64.1 M).

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Distribution, TensorData};

use crate::layers::attention::{Attention, AttentionConfig};
use crate::layers::mlp::Mlp;
use crate::layers::patch_embed::assert_input_size;
use crate::layers::{trunc_normal, Counted, LayerNorm2d};
use crate::variant::{imagenet_eval, DataConfig, Variant};
use crate::vit::{Block, VitConfig};

/// PyTorch's `nn.LayerNorm` default, which the official code uses everywhere.
const EPS: f64 = 1e-5;

/// The official `T2T_ViT(...)` arguments (transformer token layers).
#[derive(Clone, Debug)]
pub struct T2tConfig {
    pub img_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// Replaces head_dim^-½ in the backbone's attention. The official pretrained models were
    /// built with `qk_scale = embed_dim^-½` (`t2t_vit_t_14(pretrained=True)`), without it
    /// otherwise.
    pub qk_scale: Option<f64>,
    /// Width of the token transformers' q, k, v and output (`token_dim`).
    pub token_dim: usize,
    /// The soft splits as (kernel, stride, padding), in order: a token transformer follows each
    /// but the last, which is projected to `embed_dim`. Official: (7, 4, 2), (3, 2, 1),
    /// (3, 2, 1); at most three.
    pub soft_splits: Vec<[usize; 3]>,
    /// Dropout after the position embedding and in the blocks (`drop_rate`).
    pub drop_rate: f64,
    pub attn_drop_rate: f64,
    /// Stochastic depth, linear from 0 over the backbone blocks.
    pub drop_path_rate: f64,
}

impl T2tConfig {
    pub fn new(embed_dim: usize, depth: usize, num_heads: usize, mlp_ratio: f64) -> Self {
        T2tConfig {
            img_size: 224,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias: false,
            qk_scale: None,
            token_dim: 64,
            soft_splits: vec![[7, 4, 2], [3, 2, 1], [3, 2, 1]],
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }
    /// T2T-ViT-14: width 384, 14 blocks, 6 heads, MLP ratio 3.
    pub fn t2t_vit_14() -> Self {
        Self::new(384, 14, 6, 3.0)
    }
    /// T2T-ViT-19: width 448, 19 blocks, 7 heads.
    pub fn t2t_vit_19() -> Self {
        Self::new(448, 19, 7, 3.0)
    }
    /// T2T-ViT-24: width 512, 24 blocks, 8 heads.
    pub fn t2t_vit_24() -> Self {
        Self::new(512, 24, 8, 3.0)
    }
    /// As the official pretrained checkpoints were built: `qk_scale = embed_dim^-½`.
    pub fn pretrained_scale(self) -> Self {
        T2tConfig {
            qk_scale: Some((self.embed_dim as f64).powf(-0.5)),
            ..self
        }
    }

    /// The side of the token grid after each soft split.
    fn grids(&self) -> Vec<usize> {
        let mut size = self.img_size;
        self.soft_splits
            .iter()
            .map(|&[k, s, p]| {
                size = (size + 2 * p).saturating_sub(k) / s + 1;
                size
            })
            .collect()
    }

    fn backbone(&self) -> VitConfig {
        VitConfig {
            mlp_ratio: self.mlp_ratio,
            qkv_bias: self.qkv_bias,
            drop_rate: self.drop_rate,
            attn_drop_rate: self.attn_drop_rate,
            proj_drop_rate: self.drop_rate,
            drop_path_rate: self.drop_path_rate,
            ..VitConfig::new(16, self.embed_dim, self.depth, self.num_heads)
        }
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> T2tVit {
        assert!(
            (1..=3).contains(&self.soft_splits.len()),
            "T2T-ViT: 1 to 3 soft splits"
        );
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        // Split i's token width: the channels it unfolds times k².
        let mut width = in_chans;
        let mut token_layers = Vec::new();
        let last = self.soft_splits.len() - 1;
        for (i, &[k, _, _]) in self.soft_splits.iter().enumerate() {
            width *= k * k;
            if i < last {
                token_layers.push(TokenTransformer::new(width, self.token_dim, device));
                width = self.token_dim;
            }
        }
        let mut token_layers = token_layers.into_iter();
        let grid = *self.grids().last().unwrap_or(&0);
        let d = self.embed_dim;
        let backbone = self.backbone();
        let blocks = (0..self.depth)
            .map(|i| {
                let mut block = Block::new(&backbone, EPS, backbone.block_drop_path(i), device);
                if let Some(scale) = self.qk_scale {
                    block.attn.scale = scale;
                }
                block
            })
            .collect();
        let pos_embed = Tensor::from_data(
            TensorData::new(
                sinusoid_encoding(grid * grid + 1, d),
                [1, grid * grid + 1, d],
            ),
            device,
        );
        T2tVit {
            tokens_to_token: T2tModule {
                attention1: token_layers.next(),
                attention2: token_layers.next(),
                project: linear(width, d),
                soft_splits: self.soft_splits.clone(),
                grids: self.grids(),
            },
            cls_token: Param::from_tensor(Tensor::random(
                [1, 1, d],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            pos_embed: Param::from_tensor(pos_embed).set_require_grad(false),
            pos_drop: DropoutConfig::new(self.drop_rate).init(),
            blocks,
            norm: LayerNorm2d::new(d, EPS, device),
            head: linear(d, num_classes),
            img_size: self.img_size,
        }
    }
}

/// The official `get_sinusoid_encoding(n_position, d_hid)`: position p, channel j has angle
/// p / 10000^(2⌊j/2⌋/d), sine on even channels, cosine on odd ones. [n·d], row-major.
pub fn sinusoid_encoding(n: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * d);
    for p in 0..n {
        for j in 0..d {
            let angle = p as f64 / 10000f64.powf((2 * (j / 2)) as f64 / d as f64);
            out.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    out
}

/// The official `Token_transformer`: single-head attention from the split's width to
/// `in_dim` (scale: the input width^-½, as the official code computes it), its values as the
/// skip connection, then an `in_dim`-wide MLP with a residual.
#[derive(Module, Debug)]
pub struct TokenTransformer {
    pub norm1: LayerNorm2d,
    pub attn: Attention,
    pub norm2: LayerNorm2d,
    pub mlp: Mlp,
}

impl TokenTransformer {
    fn new(dim: usize, in_dim: usize, device: &Device) -> Self {
        TokenTransformer {
            norm1: LayerNorm2d::new(dim, EPS, device),
            attn: AttentionConfig {
                qkv_bias: false,
                inner_dim: Some(in_dim),
                qk_scale: Some((dim as f64).powf(-0.5)),
                ..AttentionConfig::new(dim, 1)
            }
            .init(device),
            norm2: LayerNorm2d::new(in_dim, EPS, device),
            mlp: Mlp::new(in_dim, in_dim, 0.0, device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (y, v) = self.attn.forward_with_values(self.norm1.forward_last(x));
        let x = v + y;
        x.clone() + self.mlp.forward(self.norm2.forward_last(x))
    }
}

/// `tokens_to_token`: soft splits with token transformers between them, then `project`.
#[derive(Module, Debug)]
pub struct T2tModule {
    pub attention1: Option<TokenTransformer>,
    pub attention2: Option<TokenTransformer>,
    pub project: Linear,
    #[module(skip)]
    pub soft_splits: Vec<[usize; 3]>,
    /// The token grid's side after each split.
    #[module(skip)]
    pub grids: Vec<usize>,
}

/// PyTorch's `nn.Unfold(k, stride=s, padding=p)` then `.transpose(1, 2)`: [B, C, H, W] ->
/// [B, L, C·k²], each token's features channel-major (c·k² + row·k + column).
fn soft_split(x: Tensor<4>, [k, s, p]: [usize; 3]) -> Tensor<3> {
    unfold4d(x, [k, k], UnfoldOptions::new([s, s], [p, p], [1, 1])).swap_dims(1, 2)
}

impl T2tModule {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let layers = [&self.attention1, &self.attention2];
        let last = self.soft_splits.len() - 1;
        let mut x = x;
        for (i, &split) in self.soft_splits.iter().enumerate() {
            let tokens = soft_split(x, split);
            if i == last {
                return self.project.run(tokens);
            }
            let tokens = match layers[i] {
                Some(layer) => layer.forward(tokens),
                None => tokens,
            };
            // Back to a map for the next split: [B, L, C] -> [B, C, g, g].
            let [b, _, c] = tokens.dims();
            let g = self.grids[i];
            x = tokens.swap_dims(1, 2).reshape([b, c, g, g]);
        }
        unreachable!("a T2T module has at least one soft split")
    }
}

#[derive(Module, Debug)]
pub struct T2tVit {
    pub tokens_to_token: T2tModule,
    pub cls_token: Param<Tensor<3>>,
    /// The fixed sinusoidal position embedding (frozen, but a parameter in the checkpoint).
    pub pos_embed: Param<Tensor<3>>,
    pub pos_drop: Dropout,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm2d,
    pub head: Linear,
    /// The input size the token grid (and `pos_embed`) is built for.
    #[module(skip)]
    pub img_size: usize,
}

impl T2tVit {
    /// Tokens after the final norm: [B, 1 + tokens, D].
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<3> {
        let [_, _, h, w] = x.dims();
        assert_input_size([h, w], [self.img_size; 2]);
        let x = self.tokens_to_token.forward(x);
        let [b, _, d] = x.dims();
        let x = Tensor::cat(vec![self.cls_token.val().expand([b, 1, d]), x], 1);
        let mut x = self.pos_drop.forward(x + self.pos_embed.val());
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward_last(x)
    }

    /// The class token's logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_features(x);
        let [b, _, d] = x.dims();
        self.head.run(x.narrow(1, 0, 1).reshape([b, d]))
    }
}

impl crate::classifier::Classifier for T2tVit {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        T2tVit::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head."]
    }
}

/// The official repository's `_cfg`: 224 px, crop 0.9, bicubic, ImageNet statistics.
fn t2t_data() -> DataConfig {
    imagenet_eval(224, 0.9, "bicubic")
}

/// T2T-ViT (official repository, transformer token layers; `t2t_vit_t_N` is the official name
/// of that variant; timm has no T2T-ViT), built as the official pretrained checkpoints were
/// (`qk_scale = embed_dim^-½`).
pub static VARIANTS: &[Variant<T2tVit>] = &[
    Variant::untagged("t2t_vit", "t2t_vit_14", t2t_data, |o, d| {
        let cfg = T2tConfig::t2t_vit_14().pretrained_scale();
        let img_size = o.img_size.unwrap_or(cfg.img_size);
        T2tConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
    })
    .aliases(&["t2t_vit_t_14"]),
    Variant::untagged("t2t_vit", "t2t_vit_19", t2t_data, |o, d| {
        let cfg = T2tConfig::t2t_vit_19().pretrained_scale();
        let img_size = o.img_size.unwrap_or(cfg.img_size);
        T2tConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
    })
    .aliases(&["t2t_vit_t_19"]),
    Variant::untagged("t2t_vit", "t2t_vit_24", t2t_data, |o, d| {
        let cfg = T2tConfig::t2t_vit_24().pretrained_scale();
        let img_size = o.img_size.unwrap_or(cfg.img_size);
        T2tConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
    })
    .aliases(&["t2t_vit_t_24"]),
];
