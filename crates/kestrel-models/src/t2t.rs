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
//! The token layers are either of the official ones ([`TokenLayerKind`]): `tokens_type=
//! 'performer'` (the repository's `t2t_vit_14/19/24`, `models/token_performer.py`: random-feature
//! linear attention with a fixed projection `w`, keys `kqv`, `proj`, `mlp.0`, `mlp.2`, `w`) or
//! `tokens_type='transformer'` (its `t2t_vit_t_14/19/24`: softmax attention). Both narrow the
//! tokens to `token_dim` and add their values as the skip connection. Parameter counts are the
//! official code's `sum(p.numel())` (the frozen `w` and `pos_embed` included) and the paper's
//! (21.5 M, 39.2 M, 64.1 M) for both kinds.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Distribution, TensorData};

use burn::nn::Gelu;

use crate::layers::attention::{Attention, AttentionConfig};
use crate::layers::mlp::Mlp;
use crate::layers::patch_embed::assert_input_size;
use crate::layers::{record_macs, trunc_normal, Counted, LayerNorm2d};
use crate::variant::{imagenet_eval, BuildOptions, DataConfig, Variant};
use crate::vit::{Block, VitConfig};

/// PyTorch's `nn.LayerNorm` default, which the official code uses everywhere.
const EPS: f64 = 1e-5;

/// Which official token layer follows each soft split but the last (`tokens_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenLayerKind {
    /// `Token_performer` ([`TokenPerformer`]): the official `t2t_vit_14/19/24`.
    Performer,
    /// `Token_transformer` ([`TokenTransformer`]): the official `t2t_vit_t_14/19/24`.
    Transformer,
}

/// The official `T2T_ViT(...)` arguments.
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
    /// The token layers' kind (`tokens_type`).
    pub token_layers: TokenLayerKind,
    /// Width of the token layers' q, k, v and output (`token_dim`).
    pub token_dim: usize,
    /// The soft splits as (kernel, stride, padding), in order: a token layer follows each
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
    /// With transformer token layers ([`T2tConfig::performer`] for the Performer ones).
    pub fn new(embed_dim: usize, depth: usize, num_heads: usize, mlp_ratio: f64) -> Self {
        T2tConfig {
            img_size: 224,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias: false,
            qk_scale: None,
            token_layers: TokenLayerKind::Transformer,
            token_dim: 64,
            soft_splits: vec![[7, 4, 2], [3, 2, 1], [3, 2, 1]],
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }
    /// T2T-ViT_t-14 (transformer token layers): width 384, 14 blocks, 6 heads, MLP ratio 3.
    pub fn t2t_vit_t_14() -> Self {
        Self::new(384, 14, 6, 3.0)
    }
    /// T2T-ViT_t-19: width 448, 19 blocks, 7 heads.
    pub fn t2t_vit_t_19() -> Self {
        Self::new(448, 19, 7, 3.0)
    }
    /// T2T-ViT_t-24: width 512, 24 blocks, 8 heads.
    pub fn t2t_vit_t_24() -> Self {
        Self::new(512, 24, 8, 3.0)
    }
    /// T2T-ViT-14: T2T-ViT_t-14 with Performer token layers.
    pub fn t2t_vit_14() -> Self {
        Self::t2t_vit_t_14().performer()
    }
    /// T2T-ViT-19 (Performer token layers).
    pub fn t2t_vit_19() -> Self {
        Self::t2t_vit_t_19().performer()
    }
    /// T2T-ViT-24 (Performer token layers).
    pub fn t2t_vit_24() -> Self {
        Self::t2t_vit_t_24().performer()
    }
    /// Performer token layers (`tokens_type='performer'`).
    pub fn performer(self) -> Self {
        T2tConfig {
            token_layers: TokenLayerKind::Performer,
            ..self
        }
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
                token_layers.push(match self.token_layers {
                    TokenLayerKind::Transformer => TokenLayer::Transformer(TokenTransformer::new(
                        width,
                        self.token_dim,
                        device,
                    )),
                    TokenLayerKind::Performer => {
                        TokenLayer::Performer(TokenPerformer::new(width, self.token_dim, device))
                    }
                });
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

/// The official `Token_performer` (`head_cnt=1, kernel_ratio=0.5`): single-head linear
/// attention from the split's width to `in_dim` through m = ½·`in_dim` positive random features
/// of the softmax kernel, φ(x) = exp(w·x − |x|²/2)/√m with a fixed random `w` [m, in_dim]
/// (orthogonal rows of norm √m; frozen, but a parameter in the checkpoint), then, as the token
/// transformer, its values as the skip connection and an `in_dim`-wide MLP with a residual.
#[derive(Module, Debug)]
pub struct TokenPerformer {
    pub norm1: LayerNorm2d,
    /// k, q and v, in that order (the official split).
    pub kqv: Linear,
    pub proj: Linear,
    pub dp: Dropout,
    pub norm2: LayerNorm2d,
    /// The official `nn.Sequential`: Linear, GELU, Linear, Dropout (keys `mlp.0`, `mlp.2`).
    pub mlp: Vec<PerformerMlpLayer>,
    pub w: Param<Tensor<2>>,
}

/// One entry of the Performer's MLP `nn.Sequential` (its index is its key).
#[derive(Module, Debug)]
pub enum PerformerMlpLayer {
    Linear(Linear),
    Gelu(Gelu),
    Dropout(Dropout),
}

/// The official `Token_performer`'s `dp1` and `dp2`, which `T2T_module` leaves at their default.
const PERFORMER_DROP: f64 = 0.1;
/// Added to the attention's normaliser (the official `epsilon`).
pub const PERFORMER_EPS: f64 = 1e-8;

impl TokenPerformer {
    fn new(dim: usize, in_dim: usize, device: &Device) -> Self {
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        let features = in_dim / 2;
        let w = Tensor::from_data(
            TensorData::new(
                orthogonal_random_features(features, in_dim, device),
                [features, in_dim],
            ),
            device,
        );
        TokenPerformer {
            norm1: LayerNorm2d::new(dim, EPS, device),
            kqv: linear(dim, 3 * in_dim),
            proj: linear(in_dim, in_dim),
            dp: DropoutConfig::new(PERFORMER_DROP).init(),
            norm2: LayerNorm2d::new(in_dim, EPS, device),
            mlp: vec![
                PerformerMlpLayer::Linear(linear(in_dim, in_dim)),
                PerformerMlpLayer::Gelu(Gelu::new()),
                PerformerMlpLayer::Linear(linear(in_dim, in_dim)),
                PerformerMlpLayer::Dropout(DropoutConfig::new(PERFORMER_DROP).init()),
            ],
            w: Param::from_tensor(w).set_require_grad(false),
        }
    }

    /// φ(x) = exp(w·x − |x|²/2)/√m, [B, T, d] -> [B, T, m] (the official `prm_exp`).
    fn random_features(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let w = self.w.val();
        let m = w.dims()[0];
        record_macs((b * t * d * m) as u64);
        let wx = x
            .clone()
            .reshape([b * t, d])
            .matmul(w.transpose())
            .reshape([b, t, m]);
        let half_sq_norm = (x.clone() * x).sum_dim(2).div_scalar(2.0);
        (wx - half_sq_norm).exp().div_scalar((m as f64).sqrt())
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let kqv = self.kqv.run(self.norm1.forward_last(x));
        let e = kqv.dims()[2] / 3;
        let k = self.random_features(kqv.clone().narrow(2, 0, e));
        let q = self.random_features(kqv.clone().narrow(2, e, e));
        let v = kqv.narrow(2, 2 * e, e);
        let [b, t, m] = q.dims();
        // Linear attention: y_t = Σ_s (φ(q_t)·φ(k_s)) v_s / Σ_s φ(q_t)·φ(k_s), summing over the
        // tokens first (φ(k)ᵀv [B, m, e]) so that no T×T matrix is formed.
        record_macs(2 * (b * t * m * e) as u64);
        let normaliser = (q.clone() * k.clone().sum_dim(1)).sum_dim(2);
        let kv = k.swap_dims(1, 2).matmul(v.clone());
        let y = q.matmul(kv) / normaliser.add_scalar(PERFORMER_EPS);
        let x = v + self.dp.forward(self.proj.run(y));
        let mut branch = self.norm2.forward_last(x.clone());
        for layer in &self.mlp {
            branch = match layer {
                PerformerMlpLayer::Linear(l) => l.run(branch),
                PerformerMlpLayer::Gelu(g) => g.forward(branch),
                PerformerMlpLayer::Dropout(d) => d.forward(branch),
            };
        }
        x + branch
    }
}

/// `rows` × `cols` (rows ≤ cols) values, row-major: orthonormal rows (Gram–Schmidt on Gaussian
/// draws) scaled to norm √rows, the distribution of the official
/// `nn.init.orthogonal_(randn(m, d)) * sqrt(m)`.
fn orthogonal_random_features(rows: usize, cols: usize, device: &Device) -> Vec<f32> {
    assert!(
        rows <= cols,
        "T2T-ViT Performer: more random features than dimensions"
    );
    let draws: Vec<f32> = Tensor::<2>::random([rows, cols], Distribution::Normal(0.0, 1.0), device)
        .into_data()
        .try_to_vec()
        .expect("f32 draws");
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(rows);
    for row in draws.chunks(cols) {
        let mut r: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        for u in &basis {
            let dot: f64 = r.iter().zip(u).map(|(a, b)| a * b).sum();
            r.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = r
            .iter()
            .map(|a| a * a)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        r.iter_mut().for_each(|a| *a /= norm);
        basis.push(r);
    }
    let scale = (rows as f64).sqrt();
    basis
        .into_iter()
        .flatten()
        .map(|a| (a * scale) as f32)
        .collect()
}

/// A token layer after a soft split (the variant name never reaches the weight files).
#[derive(Module, Debug)]
pub enum TokenLayer {
    Transformer(TokenTransformer),
    Performer(TokenPerformer),
}

impl TokenLayer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            TokenLayer::Transformer(layer) => layer.forward(x),
            TokenLayer::Performer(layer) => layer.forward(x),
        }
    }
}

/// `tokens_to_token`: soft splits with token layers between them, then `project`.
#[derive(Module, Debug)]
pub struct T2tModule {
    pub attention1: Option<TokenLayer>,
    pub attention2: Option<TokenLayer>,
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

/// A registered variant: the official configuration `cfg` with the pretrained `qk_scale`, at
/// the requested input size.
fn build(cfg: T2tConfig, o: &BuildOptions, d: &Device) -> T2tVit {
    let cfg = cfg.pretrained_scale();
    let img_size = o.img_size.unwrap_or(cfg.img_size);
    T2tConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d)
}

/// T2T-ViT (official repository; timm has no T2T-ViT) under the official names: `t2t_vit_N`
/// with Performer token layers, `t2t_vit_t_N` with transformer ones, built as the official
/// pretrained checkpoints were (`qk_scale = embed_dim^-½`).
pub static VARIANTS: &[Variant<T2tVit>] = &[
    Variant::untagged("t2t_vit", "t2t_vit_14", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_14(), o, d)
    }),
    Variant::untagged("t2t_vit", "t2t_vit_19", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_19(), o, d)
    }),
    Variant::untagged("t2t_vit", "t2t_vit_24", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_24(), o, d)
    }),
    Variant::untagged("t2t_vit", "t2t_vit_t_14", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_t_14(), o, d)
    }),
    Variant::untagged("t2t_vit", "t2t_vit_t_19", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_t_19(), o, d)
    }),
    Variant::untagged("t2t_vit", "t2t_vit_t_24", t2t_data, |o, d| {
        build(T2tConfig::t2t_vit_t_24(), o, d)
    }),
];
