//! Multi-head self-attention with a fused qkv projection, as timm's `Attention`
//! (`timm/layers/attention.py`) and Swin's `WindowAttention`: one `qkv` Linear, the result viewed
//! as [3, B, heads, N, head_dim] so that every head is one slice of a single batched matmul over
//! [B, heads, N, d] (no per-head copies of q, k or v), an optional relative-position bias
//! ([`super::pos_embed_rel`], Swin) and an optional additive window mask shared by every image of the batch,
//! softmax, attention dropout, `proj`, projection dropout.
//!
//! T2T-ViT's token transformer is the same layer with a narrower inner width (`qkv` maps `dim`
//! to 3·`inner_dim`, `proj` is `inner_dim` square), a scale from its input width, and `v` as the
//! skip connection ([`Attention::forward_with_values`]).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use burn::module::Param;

use super::pos_embed_rel::{relative_position_bias, relative_position_index, RelPos, RelPosKind};
use super::{record_macs, trunc_normal, Counted};

#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub attn_drop: Dropout,
    pub proj_drop: Dropout,
    /// Swin's relative-position bias table [(2·Wh−1)(2·Ww−1), heads] (timm's name).
    pub relative_position_bias_table: Option<Param<Tensor<2>>>,
    /// Its index, rebuilt from the window size (timm's non-persistent buffer of that name).
    #[module(skip)]
    pub relative_position_index: Vec<i64>,
    /// CoAtNet/MaxViT's relative-position term, timm's `attn.rel_pos` submodule.
    pub rel_pos: Option<RelPos>,
    pub num_heads: usize,
    /// The qkv output's channel order: [heads, (q, k, v), head_dim] (timm's `head_first`,
    /// MaxViT `_rw`) instead of [(q, k, v), heads, head_dim].
    pub head_first: bool,
    /// The factor on q·kᵀ: head_dim^-½, or the configured `qk_scale`.
    pub scale: f64,
}

/// timm's `Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)`.
#[derive(Clone, Debug)]
pub struct AttentionConfig {
    pub dim: usize,
    pub num_heads: usize,
    pub qkv_bias: bool,
    pub attn_drop: f64,
    pub proj_drop: f64,
    /// A relative-position bias over a window of this size (Swin's `WindowAttention`).
    pub window: Option<[usize; 2]>,
    /// Width of q, k, v and the output when it is not `dim` (T2T-ViT's token transformer,
    /// its `in_dim`).
    pub inner_dim: Option<usize>,
    /// Replaces head_dim^-½ (the official T2T-ViT's `qk_scale`).
    pub qk_scale: Option<f64>,
    /// Width of the output projection when it is not the attention's (CoAtNet's stage-opening
    /// transformer block, timm's `dim_out` with `expand_first=False`).
    pub out_dim: Option<usize>,
    /// A relative-position term over a window of this size ([`RelPosKind`]; CoAtNet, MaxViT).
    pub rel_pos: Option<(RelPosKind, [usize; 2])>,
    /// See [`Attention::head_first`].
    pub head_first: bool,
}

impl AttentionConfig {
    pub fn new(dim: usize, num_heads: usize) -> Self {
        AttentionConfig {
            dim,
            num_heads,
            qkv_bias: true,
            attn_drop: 0.0,
            proj_drop: 0.0,
            window: None,
            inner_dim: None,
            qk_scale: None,
            out_dim: None,
            rel_pos: None,
            head_first: false,
        }
    }

    pub fn init(&self, device: &Device) -> Attention {
        let inner = self.inner_dim.unwrap_or(self.dim);
        assert!(
            inner % self.num_heads == 0,
            "attention: width {inner} is not divisible by {} heads",
            self.num_heads
        );
        Attention {
            qkv: LinearConfig::new(self.dim, 3 * inner)
                .with_bias(self.qkv_bias)
                .with_initializer(trunc_normal())
                .init(device),
            proj: LinearConfig::new(inner, self.out_dim.unwrap_or(inner))
                .with_initializer(trunc_normal())
                .init(device),
            attn_drop: DropoutConfig::new(self.attn_drop).init(),
            proj_drop: DropoutConfig::new(self.proj_drop).init(),
            relative_position_bias_table: self.window.map(|[wh, ww]| {
                let rows = (2 * wh - 1) * (2 * ww - 1);
                Param::from_tensor(Tensor::random(
                    [rows, self.num_heads],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                ))
            }),
            relative_position_index: self
                .window
                .map_or_else(Vec::new, |[wh, ww]| relative_position_index(wh, ww)),
            rel_pos: self
                .rel_pos
                .map(|(kind, window)| kind.init(window, self.num_heads, device)),
            num_heads: self.num_heads,
            head_first: self.head_first,
            scale: self
                .qk_scale
                .unwrap_or(((inner / self.num_heads) as f64).powf(-0.5)),
        }
    }
}

impl Attention {
    /// Self-attention over `x` [B, N, C].
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_masked(x, None)
    }

    /// Self-attention with an additive `mask` [nW, N, N] (Swin's shifted-window mask): the batch
    /// is nW consecutive windows per image, and window w of every image gets `mask[w]`. The mask
    /// is broadcast, never repeated per image.
    pub fn forward_masked(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> Tensor<3> {
        self.attend(x, mask).0
    }

    /// Self-attention over `x` [B, N, C] and the values v [B, N, inner] (heads merged), which
    /// T2T-ViT's token transformer adds as its skip connection (its input is wider than its
    /// output).
    pub fn forward_with_values(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let (y, v) = self.attend(x, None);
        let [b, h, n, d] = v.dims();
        (y, v.swap_dims(1, 2).reshape([b, n, h * d]))
    }

    /// The output and v [B, heads, N, head_dim].
    fn attend(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> (Tensor<3>, Tensor<4>) {
        let n = x.dims()[1];
        let bias = self.bias(n);
        let (y, v) = multi_head_attention(
            self.qkv.run(x),
            self.num_heads,
            self.head_first,
            self.scale,
            bias,
            mask,
            &self.attn_drop,
        );
        (self.proj_drop.forward(self.proj.run(y)), v)
    }

    /// The relative-position bias [heads, N, N] over N tokens, if the layer has one.
    pub fn bias(&self, n: usize) -> Option<Tensor<3>> {
        if let Some(table) = &self.relative_position_bias_table {
            return Some(relative_position_bias(
                table.val(),
                &self.relative_position_index,
                n,
            ));
        }
        self.rel_pos.as_ref().map(|r| r.bias(n))
    }
}

/// The attention itself, from the fused projection `qkv` [B, N, 3·C] (channel order
/// [(q, k, v), heads, d], or [heads, (q, k, v), d] with `head_first`): every head is one slice of
/// a single batched matmul over [B, heads, N, d]; `bias` [heads, N, N] and `mask` [nW, N, N] (nW
/// consecutive windows per image) are broadcast, never repeated per image. Returns the heads
/// merged, [B, N, C], and v [B, heads, N, d]. Layers whose projections are 1×1 convs (CoAtNet's
/// `Attention2d`) call this between their convs.
pub fn multi_head_attention(
    qkv: Tensor<3>,
    h: usize,
    head_first: bool,
    scale: f64,
    bias: Option<Tensor<3>>,
    mask: Option<Tensor<3>>,
    attn_drop: &Dropout,
) -> (Tensor<3>, Tensor<4>) {
    let [b, n, c3] = qkv.dims();
    let c = c3 / 3;
    let d = c / h;
    let qkv = if head_first {
        qkv.reshape([b, n, h, 3, d]).permute([3, 0, 2, 1, 4])
    } else {
        qkv.reshape([b, n, 3, h, d]).permute([2, 0, 3, 1, 4])
    };
    let slice = |i: usize| -> Tensor<4> { qkv.clone().narrow(0, i, 1).reshape([b, h, n, d]) };
    let (q, k, v) = (slice(0), slice(1), slice(2));
    let q = q * scale;
    let mut attn = q.matmul(k.swap_dims(2, 3));
    if let Some(bias) = bias {
        attn = attn + bias.unsqueeze_dim(0);
    }
    if let Some(mask) = mask {
        let [nw, _, _] = mask.dims();
        attn = (attn.reshape([b / nw, nw, h, n, n]) + mask.reshape([1, nw, 1, n, n]))
            .reshape([b, h, n, n]);
    }
    let attn = attn_drop.forward(softmax(attn, 3));
    let y = attn.matmul(v.clone());
    // q·kᵀ and attn·v.
    record_macs(2 * (b * h * n * n * d) as u64);
    (y.swap_dims(1, 2).reshape([b, n, c]), v)
}
