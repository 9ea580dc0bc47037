//! CoAtNet (Dai et al. 2021, "Marrying Convolution and Attention for All Data Sizes") and MaxViT
//! (Tu et al. 2022, "Multi-Axis Vision Transformer"), after timm's `timm/models/maxxvit.py`
//! (its `MaxxVit`), with timm's key names: `stem.{conv1, norm1, conv2}`,
//! `stages.S.blocks.B.…`, `norm` (or the TF port's `head.norm`, `head.pre_logits.fc`), `head.fc`.
//!
//! - Block `C` ([`MbConvBlock`]): pre-norm MBConv: `shortcut.expand` (pool + 1×1 on the stride-2
//!   block), `pre_norm`, `conv1_1x1`, `norm1`, `conv2_kxk` (depthwise), `se_early` or `se`,
//!   `norm2`, `conv3_1x1`.
//! - Block `T` ([`TransformerBlock2d`], CoAtNet): full attention over the stage's map with a
//!   relative-position bias as large as the map; NCHW, 1×1-conv projections (`attn.qkv`,
//!   `attn.proj`, `mlp.fc1/fc2`); the stride-2 block pools after its norm (`norm1.norm`) and
//!   its shortcut (`shortcut.expand`).
//! - Block `M` ([`MaxxVitBlock`], MaxViT): MBConv (`conv`), then block attention (`attn_block`:
//!   non-overlapping windows) and grid attention (`attn_grid`: a dilated grid of the same size),
//!   channels-last, each with a relative-position term (`attn.rel_pos`: table, TF table or MLP).
//!
//! Attention is the shared [`crate::layers::attention`] core; relative positions are
//! [`crate::layers::pos_embed_rel::RelPos`]. The models are built for one input size (the
//! partitions are img/32 and CoAtNet's biases cover the stage maps), as timm's
//! `fixed_input_size`; another size is an error that names `--img-size`.

use burn::nn::conv::Conv2d;
use burn::nn::pool::AvgPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, tanh};

use crate::attention::SqueezeExcite;
use crate::layers::activations::Act;
use crate::layers::attention::{multi_head_attention, Attention, AttentionConfig};
use crate::layers::mlp::{ConvMlp, Mlp, MlpAct};
use crate::layers::padding::{create_conv2d, run_same};
use crate::layers::patch_embed::assert_input_size;
use crate::layers::pos_embed_rel::{RelPos, RelPosKind};
use crate::layers::{
    conv2d, conv2d_init, drop_path, make_divisible, trunc_normal, Counted, LayerNorm2d,
};
use crate::variant::{tag, BuildOptions, PretrainedTag, Variant};

/// Which block a stage is made of (timm's `block_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `C`: MBConv.
    Conv,
    /// `T`: CoAtNet's transformer block.
    Transformer,
    /// `M`: MaxViT's MBConv + block attention + grid attention.
    Max,
}

/// The convolutions' activation (timm's `act_layer` of `MaxxVitConvCfg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAct {
    Silu,
    /// `gelu_tanh` (the TF port).
    GeluTanh,
}

impl ConvAct {
    fn after_bn(self, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
        match self {
            ConvAct::Silu => Act::Silu.after_bn(bn, x),
            ConvAct::GeluTanh => gelu_approximate(crate::layers::bn(bn, x)),
        }
    }
}

/// timm's `MaxxVitConvCfg` (MBConv blocks and the stem), the fields the registered models set.
#[derive(Clone, Debug)]
pub struct ConvCfg {
    /// `stride_mode='pool'`: the stride-2 MBConv pools before its 1×1 expansion; else (`dw`)
    /// its depthwise conv strides.
    pub stride_pool: bool,
    /// Activation after `pre_norm` (`pre_norm_act`).
    pub pre_norm_act: bool,
    pub expand_ratio: f64,
    /// Expansion from the output width (`expand_output`), else from the input.
    pub expand_output: bool,
    /// Bias on `conv3_1x1` and the shortcut's `expand` (`output_bias`).
    pub output_bias: bool,
    /// SE between the depthwise conv and `norm2` (`attn_early`: `se_early`), else after it.
    pub attn_early: bool,
    /// SE width: `attn_ratio` × the output (expand_output) or the mid width.
    pub attn_ratio: f64,
    /// SE activation (`attn_act_layer`).
    pub se_act: Act,
    pub act: ConvAct,
    pub norm_eps: f64,
    /// TF "same" padding (`padding='same'`): strided convs pad asymmetrically.
    pub same_padding: bool,
}

/// timm's `MaxxVitTransformerCfg`, the fields the registered models set.
#[derive(Clone, Debug)]
pub struct TransformerCfg {
    pub dim_head: usize,
    pub expand_ratio: f64,
    /// Bias on the stride-2 transformer block's shortcut `expand` (`shortcut_bias`).
    pub shortcut_bias: bool,
    /// qkv channels [heads, (q, k, v), d] (`head_first`, the `_rw` models) or [(q, k, v), heads, d].
    pub head_first: bool,
    pub rel_pos: RelPosKind,
    /// MaxViT's block and grid partitions are img_size / `partition_ratio`.
    pub partition_ratio: usize,
    pub norm_eps: f64,
    pub act: MlpAct,
    pub attn_drop: f64,
    pub proj_drop: f64,
}

/// timm's `MaxxVitCfg` and `MaxxVit(...)` arguments.
#[derive(Clone, Debug)]
pub struct MaxxVitConfig {
    pub img_size: usize,
    pub embed_dim: Vec<usize>,
    pub depths: Vec<usize>,
    pub block_type: Vec<BlockKind>,
    pub stem_width: [usize; 2],
    pub stem_bias: bool,
    /// The TF port's norm + MLP (tanh) head of this width (`head_hidden_size`).
    pub head_hidden_size: Option<usize>,
    pub conv: ConvCfg,
    pub transformer: TransformerCfg,
    /// Dropout before the classifier.
    pub drop_rate: f64,
    /// Stochastic depth, linear from 0 over all blocks (timm's default 0).
    pub drop_path_rate: f64,
}

/// `_rw_max_cfg()`: timm's own MaxViT (and the pico/nano CoAtNet) conv settings.
fn rw_max_conv() -> ConvCfg {
    ConvCfg {
        stride_pool: false,
        pre_norm_act: false,
        expand_ratio: 4.0,
        expand_output: false,
        output_bias: false,
        attn_early: false,
        attn_ratio: 1.0 / 16.0,
        se_act: Act::Silu,
        act: ConvAct::Silu,
        norm_eps: 1e-5,
        same_padding: false,
    }
}

fn rw_transformer(rel_pos: RelPosKind) -> TransformerCfg {
    TransformerCfg {
        dim_head: 32,
        expand_ratio: 4.0,
        shortcut_bias: true,
        head_first: true,
        rel_pos,
        partition_ratio: 32,
        norm_eps: 1e-6,
        act: MlpAct::Gelu,
        attn_drop: 0.0,
        proj_drop: 0.0,
    }
}

impl MaxxVitConfig {
    fn new(
        img_size: usize,
        embed_dim: [usize; 4],
        depths: [usize; 4],
        block_type: [BlockKind; 4],
        stem_width: [usize; 2],
        conv: ConvCfg,
        transformer: TransformerCfg,
    ) -> Self {
        MaxxVitConfig {
            img_size,
            embed_dim: embed_dim.to_vec(),
            depths: depths.to_vec(),
            block_type: block_type.to_vec(),
            stem_width,
            stem_bias: false,
            head_hidden_size: None,
            conv,
            transformer,
            drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }

    const COAT: [BlockKind; 4] = [
        BlockKind::Conv,
        BlockKind::Conv,
        BlockKind::Transformer,
        BlockKind::Transformer,
    ];
    const MAX: [BlockKind; 4] = [BlockKind::Max; 4];

    /// `coatnet_pico_rw_224`.
    pub fn coatnet_pico_rw() -> Self {
        Self::new(
            224,
            [64, 128, 256, 512],
            [2, 3, 5, 2],
            Self::COAT,
            [32, 64],
            ConvCfg {
                output_bias: true,
                attn_ratio: 0.25,
                ..rw_max_conv()
            },
            rw_transformer(RelPosKind::Bias),
        )
    }

    /// `coatnet_nano_rw_224`: pico's settings, deeper, pooled strides.
    pub fn coatnet_nano_rw() -> Self {
        let pico = Self::coatnet_pico_rw();
        MaxxVitConfig {
            depths: vec![3, 4, 6, 3],
            conv: ConvCfg {
                stride_pool: true,
                ..pico.conv.clone()
            },
            ..pico
        }
    }

    /// `coatnet_0_rw_224` (`_rw_coat_cfg(conv_attn_early=True, transformer_shortcut_bias=False)`).
    pub fn coatnet_0_rw() -> Self {
        Self::new(
            224,
            [96, 192, 384, 768],
            [2, 3, 7, 2],
            Self::COAT,
            [32, 64],
            ConvCfg {
                stride_pool: true,
                pre_norm_act: true,
                attn_early: true,
                attn_ratio: 0.25,
                se_act: Act::Relu,
                ..rw_max_conv()
            },
            TransformerCfg {
                shortcut_bias: false,
                ..rw_transformer(RelPosKind::Bias)
            },
        )
    }

    /// `maxvit_pico_rw_256`.
    pub fn maxvit_pico_rw() -> Self {
        Self::new(
            256,
            [32, 64, 128, 256],
            [2, 2, 5, 2],
            Self::MAX,
            [24, 32],
            rw_max_conv(),
            rw_transformer(RelPosKind::Bias),
        )
    }

    /// `maxvit_nano_rw_256`.
    pub fn maxvit_nano_rw() -> Self {
        Self::new(
            256,
            [64, 128, 256, 512],
            [1, 2, 3, 1],
            Self::MAX,
            [32, 64],
            rw_max_conv(),
            rw_transformer(RelPosKind::Bias),
        )
    }

    /// `maxvit_rmlp_pico_rw_256`: pico with the relative-position MLP (512 hidden).
    pub fn maxvit_rmlp_pico_rw() -> Self {
        MaxxVitConfig {
            transformer: rw_transformer(RelPosKind::Mlp(512)),
            ..Self::maxvit_pico_rw()
        }
    }

    /// `maxvit_tiny_tf_224` (`_tf_cfg()`: the TensorFlow MaxViT's layout and numerics).
    pub fn maxvit_tiny_tf() -> Self {
        MaxxVitConfig {
            stem_bias: true,
            head_hidden_size: Some(512),
            ..Self::new(
                224,
                [64, 128, 256, 512],
                [2, 2, 5, 2],
                Self::MAX,
                [64, 64],
                ConvCfg {
                    expand_output: true,
                    output_bias: true,
                    attn_ratio: 0.25,
                    act: ConvAct::GeluTanh,
                    norm_eps: 1e-3,
                    same_padding: true,
                    ..rw_max_conv()
                },
                TransformerCfg {
                    head_first: false,
                    norm_eps: 1e-5,
                    act: MlpAct::GeluTanh,
                    ..rw_transformer(RelPosKind::BiasTf)
                },
            )
        }
    }

    pub fn with_img_size(self, img_size: usize) -> Self {
        MaxxVitConfig { img_size, ..self }
    }

    pub fn with_drop_path_rate(self, drop_path_rate: f64) -> Self {
        MaxxVitConfig {
            drop_path_rate,
            ..self
        }
    }

    fn bn(&self, c: usize, device: &Device) -> BatchNorm {
        BatchNormConfig::new(c)
            .with_epsilon(self.conv.norm_eps)
            .init(device)
    }

    /// A k×k conv as timm's `create_conv2d(padding=cfg.padding)`.
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
        create_conv2d(
            cin,
            cout,
            k,
            stride,
            groups,
            bias,
            self.conv.same_padding,
            device,
        )
    }

    fn downsample(&self, cin: usize, cout: usize, bias: bool, device: &Device) -> Downsample2d {
        Downsample2d {
            expand: (cin != cout).then(|| conv2d(cin, cout, 1, 1, 0, 1, bias, device)),
        }
    }

    fn mbconv(
        &self,
        cin: usize,
        cout: usize,
        stride: usize,
        drop_path: f64,
        device: &Device,
    ) -> MbConvBlock {
        let c = &self.conv;
        let base = if c.expand_output { cout } else { cin };
        let mid = make_divisible(base as f64 * c.expand_ratio, 8, None, 0.9);
        let rd = (c.attn_ratio * (if c.expand_output { cout } else { mid }) as f64) as usize;
        let se = || SqueezeExcite::new(mid, rd, device).with_act(c.se_act);
        let dw_stride = if c.stride_pool { 1 } else { stride };
        MbConvBlock {
            shortcut: (stride == 2).then(|| self.downsample(cin, cout, c.output_bias, device)),
            pre_norm: self.bn(cin, device),
            conv1_1x1: conv2d(cin, mid, 1, 1, 0, 1, false, device),
            norm1: self.bn(mid, device),
            conv2_kxk: self.conv(mid, mid, 3, dw_stride, mid, false, device),
            se_early: c.attn_early.then(se),
            norm2: self.bn(mid, device),
            se: (!c.attn_early).then(se),
            conv3_1x1: conv2d(mid, cout, 1, 1, 0, 1, c.output_bias, device),
            drop_path,
            pool_first: c.stride_pool && stride == 2,
            pre_norm_act: c.pre_norm_act,
            act: c.act,
        }
    }

    fn transformer_block(
        &self,
        dim: usize,
        dim_out: usize,
        stride: usize,
        feat: [usize; 2],
        drop_path: f64,
        device: &Device,
    ) -> TransformerBlock2d {
        let t = &self.transformer;
        let norm = LayerNorm2d::new(dim, t.norm_eps, device);
        let heads = dim / t.dim_head;
        let conv = |i, o| conv2d_init(i, o, 1, 1, 0, 1, true, trunc_normal(), device);
        TransformerBlock2d {
            shortcut: (stride == 2).then(|| self.downsample(dim, dim_out, t.shortcut_bias, device)),
            norm1: if stride == 2 {
                PreNorm::Pooled(PooledNorm { norm })
            } else {
                PreNorm::Plain(norm)
            },
            attn: Attention2d {
                // timm's `expand_first=False`: attention at the input width, `proj` widens.
                qkv: conv(dim, 3 * dim),
                rel_pos: Some(t.rel_pos.init(feat, heads, device)),
                proj: conv(dim, dim_out),
                attn_drop: DropoutConfig::new(t.attn_drop).init(),
                proj_drop: DropoutConfig::new(t.proj_drop).init(),
                num_heads: heads,
                head_first: t.head_first,
                scale: (t.dim_head as f64).powf(-0.5),
            },
            norm2: LayerNorm2d::new(dim_out, t.norm_eps, device),
            mlp: ConvMlp::new(
                dim_out,
                (dim_out as f64 * t.expand_ratio) as usize,
                t.proj_drop,
                t.act,
                device,
            ),
            drop_path,
        }
    }

    fn partition_attention(
        &self,
        dim: usize,
        block: bool,
        drop_path: f64,
        device: &Device,
    ) -> PartitionAttention {
        let t = &self.transformer;
        let p = self.img_size / t.partition_ratio;
        PartitionAttention {
            norm1: LayerNorm2d::new(dim, t.norm_eps, device),
            attn: AttentionConfig {
                attn_drop: t.attn_drop,
                proj_drop: t.proj_drop,
                rel_pos: Some((t.rel_pos, [p, p])),
                head_first: t.head_first,
                ..AttentionConfig::new(dim, dim / t.dim_head)
            }
            .init(device),
            norm2: LayerNorm2d::new(dim, t.norm_eps, device),
            mlp: Mlp::new(
                dim,
                (dim as f64 * t.expand_ratio) as usize,
                t.proj_drop,
                device,
            )
            .with_act(t.act),
            drop_path,
            block,
            partition: [p, p],
        }
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> MaxxVit {
        let [s0, s1] = self.stem_width;
        let stem = Stem {
            conv1: self.conv(in_chans, s0, 3, 2, 1, self.stem_bias, device),
            norm1: self.bn(s0, device),
            conv2: self.conv(s0, s1, 3, 1, 1, self.stem_bias, device),
            act: self.conv.act,
            img_size: self.img_size,
        };
        let total: usize = self.depths.iter().sum();
        let rate = |k: usize| {
            if total > 1 {
                self.drop_path_rate * k as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut feat = [self.img_size / 2; 2];
        let mut cin = s1;
        let mut k = 0;
        let mut stages = Vec::new();
        for (i, (&cout, &depth)) in self.embed_dim.iter().zip(&self.depths).enumerate() {
            feat = feat.map(|r| (r - 1) / 2 + 1);
            let blocks = (0..depth)
                .map(|j| {
                    let stride = if j == 0 { 2 } else { 1 };
                    let dp = rate(k);
                    k += 1;
                    let block = match self.block_type[i] {
                        BlockKind::Conv => {
                            MaxxBlock::Conv(self.mbconv(cin, cout, stride, dp, device))
                        }
                        BlockKind::Transformer => MaxxBlock::Transformer(
                            self.transformer_block(cin, cout, stride, feat, dp, device),
                        ),
                        BlockKind::Max => MaxxBlock::Max(MaxxVitBlock {
                            conv: self.mbconv(cin, cout, stride, dp, device),
                            attn_block: self.partition_attention(cout, true, dp, device),
                            attn_grid: self.partition_attention(cout, false, dp, device),
                        }),
                    };
                    cin = cout;
                    block
                })
                .collect();
            stages.push(MaxxVitStage { blocks });
        }
        let t = &self.transformer;
        let linear = |i, o| {
            LinearConfig::new(i, o)
                .with_initializer(trunc_normal())
                .init(device)
        };
        let head = match self.head_hidden_size {
            None => ClassifierHead {
                norm: None,
                pre_logits: None,
                drop: DropoutConfig::new(self.drop_rate).init(),
                fc: linear(cin, num_classes),
            },
            Some(hidden) => ClassifierHead {
                norm: Some(LayerNorm2d::new(cin, t.norm_eps, device)),
                pre_logits: Some(PreLogits {
                    fc: linear(cin, hidden),
                }),
                drop: DropoutConfig::new(self.drop_rate).init(),
                fc: linear(hidden, num_classes),
            },
        };
        MaxxVit {
            stem,
            stages,
            norm: self
                .head_hidden_size
                .is_none()
                .then(|| LayerNorm2d::new(cin, t.norm_eps, device)),
            head,
        }
    }
}

fn avg_pool2(x: Tensor<4>) -> Tensor<4> {
    AvgPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init()
        .forward(x)
}

/// timm's `Downsample2d(pool_type='avg2')`: a 2×2 average pool, then `expand` (1×1) where the
/// width changes.
#[derive(Module, Debug)]
pub struct Downsample2d {
    pub expand: Option<Conv2d>,
}

impl Downsample2d {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = avg_pool2(x);
        match &self.expand {
            Some(conv) => conv.run(x),
            None => x,
        }
    }
}

/// timm's `Stem`: 3×3/2 conv, BN + act, 3×3 conv.
#[derive(Module, Debug)]
pub struct Stem {
    pub conv1: Conv2d,
    pub norm1: BatchNorm,
    pub conv2: Conv2d,
    #[module(skip)]
    pub act: ConvAct,
    /// The input size the model is built for.
    pub img_size: usize,
}

impl Stem {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        assert_input_size([h, w], [self.img_size; 2]);
        let x = self.act.after_bn(&self.norm1, run_same(&self.conv1, x));
        run_same(&self.conv2, x)
    }
}

/// timm's `MbConvBlock` (pre-norm MBConv).
#[derive(Module, Debug)]
pub struct MbConvBlock {
    /// The stride-2 block's pooled shortcut (timm's `nn.Identity` otherwise).
    pub shortcut: Option<Downsample2d>,
    pub pre_norm: BatchNorm,
    pub conv1_1x1: Conv2d,
    pub norm1: BatchNorm,
    pub conv2_kxk: Conv2d,
    pub se_early: Option<SqueezeExcite>,
    pub norm2: BatchNorm,
    pub se: Option<SqueezeExcite>,
    pub conv3_1x1: Conv2d,
    pub drop_path: f64,
    /// `stride_mode='pool'`: timm's `down` (a parameterless 2×2 average pool).
    pub pool_first: bool,
    pub pre_norm_act: bool,
    #[module(skip)]
    pub act: ConvAct,
}

impl MbConvBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.shortcut {
            Some(down) => down.forward(x.clone()),
            None => x.clone(),
        };
        let mut x = if self.pre_norm_act {
            self.act.after_bn(&self.pre_norm, x)
        } else {
            crate::layers::bn(&self.pre_norm, x)
        };
        if self.pool_first {
            x = avg_pool2(x);
        }
        let x = self.act.after_bn(&self.norm1, self.conv1_1x1.run(x));
        let mut x = run_same(&self.conv2_kxk, x);
        if let Some(se) = &self.se_early {
            x = se.forward(x);
        }
        let mut x = self.act.after_bn(&self.norm2, x);
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        drop_path(self.conv3_1x1.run(x), self.drop_path) + shortcut
    }
}

/// The transformer block's first norm: plain, or (stride 2) timm's `Sequential(norm, down)`.
#[derive(Module, Debug)]
pub enum PreNorm {
    Plain(LayerNorm2d),
    Pooled(PooledNorm),
}

#[derive(Module, Debug)]
pub struct PooledNorm {
    pub norm: LayerNorm2d,
}

/// timm's `Attention2d`: multi-head attention on NCHW maps with 1×1-conv projections.
#[derive(Module, Debug)]
pub struct Attention2d {
    pub qkv: Conv2d,
    pub rel_pos: Option<RelPos>,
    pub proj: Conv2d,
    pub attn_drop: Dropout,
    pub proj_drop: Dropout,
    pub num_heads: usize,
    pub head_first: bool,
    pub scale: f64,
}

impl Attention2d {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let n = h * w;
        let qkv = self.qkv.run(x);
        let c3 = qkv.dims()[1];
        let tokens = qkv.reshape([b, c3, n]).swap_dims(1, 2);
        let (y, _) = multi_head_attention(
            tokens,
            self.num_heads,
            self.head_first,
            self.scale,
            self.rel_pos.as_ref().map(|r| r.bias(n)),
            None,
            &self.attn_drop,
        );
        let y = y.swap_dims(1, 2).reshape([b, c3 / 3, h, w]);
        self.proj_drop.forward(self.proj.run(y))
    }
}

/// timm's `TransformerBlock2d` (CoAtNet's `T` blocks, NCHW).
#[derive(Module, Debug)]
pub struct TransformerBlock2d {
    pub shortcut: Option<Downsample2d>,
    pub norm1: PreNorm,
    pub attn: Attention2d,
    pub norm2: LayerNorm2d,
    pub mlp: ConvMlp,
    pub drop_path: f64,
}

impl TransformerBlock2d {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (shortcut, y) = match (&self.shortcut, &self.norm1) {
            (Some(down), PreNorm::Pooled(n)) => {
                (down.forward(x.clone()), avg_pool2(n.norm.forward(x)))
            }
            (_, PreNorm::Plain(n)) => (x.clone(), n.forward(x)),
            (None, PreNorm::Pooled(n)) => (x.clone(), avg_pool2(n.norm.forward(x))),
        };
        let x = shortcut + drop_path(self.attn.forward(y), self.drop_path);
        let y = self.mlp.forward(self.norm2.forward(x.clone()));
        x + drop_path(y, self.drop_path)
    }
}

/// timm's `PartitionAttentionCl`: block (window) or grid partition, attention, MLP, on NHWC.
#[derive(Module, Debug)]
pub struct PartitionAttention {
    pub norm1: LayerNorm2d,
    pub attn: Attention,
    pub norm2: LayerNorm2d,
    pub mlp: Mlp,
    pub drop_path: f64,
    /// Block (contiguous windows) or grid (tokens H/g apart) partition.
    pub block: bool,
    #[module(skip)]
    pub partition: [usize; 2],
}

impl PartitionAttention {
    /// [B, H, W, C] -> [B·windows, ph·pw, C]; returns the windows and the (nh, nw) split.
    fn partition(&self, x: Tensor<4>) -> Tensor<3> {
        let [b, h, w, c] = x.dims();
        let [ph, pw] = self.partition;
        assert!(
            h % ph == 0 && w % pw == 0,
            "MaxViT partition {ph}×{pw} does not divide the {h}×{w} feature map"
        );
        if self.block {
            x.reshape([b, h / ph, ph, w / pw, pw, c])
                .permute([0, 1, 3, 2, 4, 5])
                .reshape([b * (h / ph) * (w / pw), ph * pw, c])
        } else {
            x.reshape([b, ph, h / ph, pw, w / pw, c])
                .permute([0, 2, 4, 1, 3, 5])
                .reshape([b * (h / ph) * (w / pw), ph * pw, c])
        }
    }

    fn reverse(&self, y: Tensor<3>, [b, h, w, c]: [usize; 4]) -> Tensor<4> {
        let [ph, pw] = self.partition;
        if self.block {
            y.reshape([b, h / ph, w / pw, ph, pw, c])
                .permute([0, 1, 3, 2, 4, 5])
                .reshape([b, h, w, c])
        } else {
            y.reshape([b, h / ph, w / pw, ph, pw, c])
                .permute([0, 3, 1, 4, 2, 5])
                .reshape([b, h, w, c])
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dims = x.dims();
        let y = self.norm1.forward_last(x.clone());
        let y = self.reverse(self.attn.forward(self.partition(y)), dims);
        let x = x + drop_path(y, self.drop_path);
        let y = self.mlp.forward(self.norm2.forward_last(x.clone()));
        x + drop_path(y, self.drop_path)
    }
}

/// timm's `MaxxVitBlock`: MBConv, block attention, grid attention.
#[derive(Module, Debug)]
pub struct MaxxVitBlock {
    pub conv: MbConvBlock,
    pub attn_block: PartitionAttention,
    pub attn_grid: PartitionAttention,
}

impl MaxxVitBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x).permute([0, 2, 3, 1]);
        let x = self.attn_grid.forward(self.attn_block.forward(x));
        x.permute([0, 3, 1, 2])
    }
}

/// One block of a stage; the variant name never appears in weight keys.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum MaxxBlock {
    Conv(MbConvBlock),
    Transformer(TransformerBlock2d),
    Max(MaxxVitBlock),
}

#[derive(Module, Debug)]
pub struct MaxxVitStage {
    pub blocks: Vec<MaxxBlock>,
}

/// The TF port's `head.pre_logits.fc` (then tanh).
#[derive(Module, Debug)]
pub struct PreLogits {
    pub fc: Linear,
}

/// timm's `ClassifierHead` (average pool, dropout, `fc`), or with `norm` and `pre_logits` its
/// `NormMlpClassifierHead` (pool, LayerNorm, Linear + tanh, dropout, `fc`).
#[derive(Module, Debug)]
pub struct ClassifierHead {
    pub norm: Option<LayerNorm2d>,
    pub pre_logits: Option<PreLogits>,
    pub drop: Dropout,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct MaxxVit {
    pub stem: Stem,
    pub stages: Vec<MaxxVitStage>,
    /// The final norm (timm's `nn.Identity` when the head normalises).
    pub norm: Option<LayerNorm2d>,
    pub head: ClassifierHead,
}

impl MaxxVit {
    /// NCHW features after the final norm.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for stage in &self.stages {
            for block in &stage.blocks {
                x = match block {
                    MaxxBlock::Conv(b) => b.forward(x),
                    MaxxBlock::Transformer(b) => b.forward(x),
                    MaxxBlock::Max(b) => b.forward(x),
                };
            }
        }
        match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_features(x);
        let [b, c, _, _] = x.dims();
        let mut x = x.mean_dims(&[2, 3]);
        if let Some(norm) = &self.head.norm {
            x = norm.forward(x);
        }
        let mut x = x.reshape([b, c]);
        if let Some(pre) = &self.head.pre_logits {
            x = tanh(pre.fc.run(x));
        }
        self.head.fc.run(self.head.drop.forward(x))
    }
}

impl crate::model::Classifier for MaxxVit {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        MaxxVit::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head.fc."]
    }
    fn rebuilt_buffers(&self) -> &'static [&'static str] {
        &[
            "relative_position_index",
            "rel_coords_log",
            "height_lookup",
            "width_lookup",
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Registry: each name's configuration at the requested input size (`--img-size`) and timm's
// pretrained tags (an `untrained` tag is timm's name for a config without released weights).

fn build(cfg: MaxxVitConfig, o: &BuildOptions, d: &Device) -> MaxxVit {
    let size = o.img_size.unwrap_or(cfg.img_size);
    cfg.with_img_size(size).init(o.num_classes, o.in_chans, d)
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `coatnet_0_rw_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const COATNET_0_RW_224_TAGS: &[PretrainedTag] = &[
    tag!("sw_in1k", 224, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `coatnet_nano_rw_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const COATNET_NANO_RW_224_TAGS: &[PretrainedTag] = &[
    tag!("sw_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `coatnet_pico_rw_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const COATNET_PICO_RW_224_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 224, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `maxvit_tiny_tf_224` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MAXVIT_TINY_TF_224_TAGS: &[PretrainedTag] = &[
    tag!("in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `maxvit_nano_rw_256` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MAXVIT_NANO_RW_256_TAGS: &[PretrainedTag] = &[
    tag!("sw_in1k", 256, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `maxvit_pico_rw_256` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MAXVIT_PICO_RW_256_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 256, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
/// timm's `maxvit_rmlp_pico_rw_256` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const MAXVIT_RMLP_PICO_RW_256_TAGS: &[PretrainedTag] = &[
    tag!("sw_in1k", 256, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], None, None),
];
// END generated

/// CoAtNet and MaxViT (timm `maxxvit.py`; fixed input size).
pub static VARIANTS: &[Variant<MaxxVit>] = &[
    Variant::tagged(
        "coatnet",
        "coatnet_0_rw_224",
        COATNET_0_RW_224_TAGS,
        |o, d| build(MaxxVitConfig::coatnet_0_rw(), o, d),
    ),
    Variant::tagged(
        "coatnet",
        "coatnet_nano_rw_224",
        COATNET_NANO_RW_224_TAGS,
        |o, d| build(MaxxVitConfig::coatnet_nano_rw(), o, d),
    ),
    Variant::tagged(
        "coatnet",
        "coatnet_pico_rw_224",
        COATNET_PICO_RW_224_TAGS,
        |o, d| build(MaxxVitConfig::coatnet_pico_rw(), o, d),
    ),
    Variant::tagged(
        "maxvit",
        "maxvit_tiny_tf_224",
        MAXVIT_TINY_TF_224_TAGS,
        |o, d| build(MaxxVitConfig::maxvit_tiny_tf(), o, d),
    ),
    Variant::tagged(
        "maxvit",
        "maxvit_nano_rw_256",
        MAXVIT_NANO_RW_256_TAGS,
        |o, d| build(MaxxVitConfig::maxvit_nano_rw(), o, d),
    ),
    Variant::tagged(
        "maxvit",
        "maxvit_pico_rw_256",
        MAXVIT_PICO_RW_256_TAGS,
        |o, d| build(MaxxVitConfig::maxvit_pico_rw(), o, d),
    ),
    Variant::tagged(
        "maxvit",
        "maxvit_rmlp_pico_rw_256",
        MAXVIT_RMLP_PICO_RW_256_TAGS,
        |o, d| build(MaxxVitConfig::maxvit_rmlp_pico_rw(), o, d),
    ),
];
