//! MobileNet V1, V2 and V3 (Howard et al. 2017; Sandler et al. 2018; Howard et al. 2019) in
//! timm's EfficientNet-builder layout: `conv_stem`, `bn1`, `blocks.S.B` (stages of
//! `DepthwiseSeparableConv` / `InvertedResidual` / `ConvBnAct`), then the head (`conv_head`,
//! `bn2` for the EfficientNet-style head; `conv_head` with bias and no norm for MobileNetV3's
//! "efficient head"), and `classifier`. timm checkpoints load unchanged.
//!
//! The builder half of this file is generic and public, for every family that timm builds with
//! `_efficientnet_builder.py` (EfficientNet, MnasNet, FBNet, ...): [`BlockArgs::parse`] reads
//! timm's block strings (`"ir_r2_k3_s2_e6_c24_se0.25"`), [`decode_arch_def`] scales stage depths
//! exactly as timm does, and [`BuilderConfig::build`] makes the blocks with timm's channel
//! rounding, SE sizing and stochastic-depth schedule. [`MobileNetConfig`] is the top-level model
//! (timm's `EfficientNet` and `MobileNetV3` classes, by [`HeadKind`]).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;

pub use crate::layers::make_divisible;
use crate::layers::{conv2d, drop_path, global_avg_pool, Counted};

// ---------------------------------------------------------------------------------------------
// Activations and small helpers

/// The activations and gates timm's builder uses, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    Relu6,
    /// x · relu6(x + 3) / 6
    HardSwish,
    /// SiLU, timm's `swish`.
    Silu,
    Sigmoid,
    /// relu6(x + 3) / 6, timm's and torchvision's `hard_sigmoid`.
    HardSigmoid,
}

impl Act {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Identity => x,
            Act::Relu => activation::relu(x),
            Act::Relu6 => activation::relu6(x),
            Act::HardSwish => activation::hard_swish(x),
            Act::Silu => activation::silu(x),
            Act::Sigmoid => activation::sigmoid(x),
            Act::HardSigmoid => activation::hard_sigmoid(x, 1.0 / 6.0, 0.5),
        }
    }
}

/// Python's `round`: halves go to the even neighbour.
fn py_round(v: f64) -> usize {
    v.round_ties_even() as usize
}

// ---------------------------------------------------------------------------------------------
// Block definitions: timm's block strings

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// `ds`: depthwise-separable (MobileNetV2's first block, MobileNetV3's stem-side block).
    Ds,
    /// `dsa`: depthwise-separable with an activation after the point-wise conv and no skip
    /// (MobileNetV1).
    Dsa,
    /// `ir`: inverted residual (MBConv).
    Ir,
    /// `cn`: conv + BN + act.
    Cn,
}

/// One decoded block string, as timm's `_decode_block_str` returns it (one repeat).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockArgs {
    pub block_type: BlockType,
    pub kernel: usize,
    pub stride: usize,
    /// Expansion ratio (`e`), 1.0 where the string has none.
    pub exp_ratio: f64,
    /// Output channels before the width multiplier.
    pub out_chs: usize,
    /// Squeeze-excite ratio (`se`); 0 = no SE.
    pub se_ratio: f64,
    /// Block activation (`nre`, `nr6`, `nhs`, `nsw`); `None` = the model's.
    pub act: Option<Act>,
    /// No residual connection even where shapes allow it (`noskip`; always for `dsa`).
    pub noskip: bool,
    /// Residual connection forced on (`skip`; only `cn` reads it).
    pub skip: bool,
    /// Activation after the point-wise conv of a depthwise-separable block (`dsa`).
    pub pw_act: bool,
}

impl BlockArgs {
    /// Parses one of timm's block strings, e.g. `"ir_r3_k5_s2_e6_c40_se0.25_nre"`, into the
    /// block arguments and the repeat count. Panics on a malformed string (these are constants).
    pub fn parse(s: &str) -> (BlockArgs, usize) {
        let mut ops = s.split('_');
        let block_type = match ops.next() {
            Some("ds") => BlockType::Ds,
            Some("dsa") => BlockType::Dsa,
            Some("ir") => BlockType::Ir,
            Some("cn") => BlockType::Cn,
            other => panic!("block string '{s}': unsupported block type {other:?}"),
        };
        let mut args = BlockArgs {
            block_type,
            kernel: 3,
            stride: 1,
            exp_ratio: 1.0,
            out_chs: 0,
            se_ratio: 0.0,
            act: None,
            noskip: block_type == BlockType::Dsa,
            skip: false,
            pw_act: block_type == BlockType::Dsa,
        };
        let mut repeats = None;
        for op in ops {
            match op {
                "noskip" => args.noskip = true,
                "skip" => args.skip = true,
                _ if op.starts_with('n') => {
                    args.act = match &op[1..] {
                        "re" => Some(Act::Relu),
                        "r6" => Some(Act::Relu6),
                        "hs" => Some(Act::HardSwish),
                        "sw" => Some(Act::Silu),
                        _ => args.act,
                    }
                }
                _ => {
                    let at = op
                        .find(|c: char| c.is_ascii_digit())
                        .unwrap_or_else(|| panic!("block string '{s}': bad option '{op}'"));
                    let (key, value) = op.split_at(at);
                    let num = |v: &str| -> f64 {
                        v.parse()
                            .unwrap_or_else(|_| panic!("block string '{s}': bad number in '{op}'"))
                    };
                    match key {
                        "r" => repeats = Some(num(value) as usize),
                        "k" => args.kernel = num(value) as usize,
                        "s" => args.stride = num(value) as usize,
                        "e" => args.exp_ratio = num(value),
                        "c" => args.out_chs = num(value) as usize,
                        "se" => args.se_ratio = num(value),
                        _ => panic!("block string '{s}': unsupported option '{op}'"),
                    }
                }
            }
        }
        let repeats = repeats.unwrap_or_else(|| panic!("block string '{s}': no repeat count"));
        (args, repeats)
    }
}

/// How [`decode_arch_def`] turns scaled repeat counts into integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthTrunc {
    /// EfficientNet's default.
    Ceil,
    Round,
}

/// timm's `_scale_stage_depth`: scales a stage's total repeats, then shares them out over its
/// block definitions from the last to the first.
fn scale_stage_depth(
    stack: &[(BlockArgs, usize)],
    depth_multiplier: f64,
    trunc: DepthTrunc,
) -> Vec<BlockArgs> {
    let mut num_repeat: usize = stack.iter().map(|(_, r)| r).sum();
    let mut scaled = match trunc {
        DepthTrunc::Round => 1.max(py_round(num_repeat as f64 * depth_multiplier)) as i64,
        DepthTrunc::Ceil => (num_repeat as f64 * depth_multiplier).ceil() as i64,
    };
    let mut repeats_scaled = Vec::new();
    for (_, r) in stack.iter().rev() {
        let rs = 1.max((*r as f64 / num_repeat as f64 * scaled as f64).round_ties_even() as i64);
        repeats_scaled.push(rs as usize);
        num_repeat -= r;
        scaled -= rs;
    }
    repeats_scaled.reverse();
    stack
        .iter()
        .zip(repeats_scaled)
        .flat_map(|((args, _), n)| std::iter::repeat_n(args.clone(), n))
        .collect()
}

/// timm's `decode_arch_def`: block strings per stage -> block arguments per stage, with the
/// depth multiplier applied (stages 0 and last left alone when `fix_first_last`).
pub fn decode_arch_def(
    arch_def: &[&[&str]],
    depth_multiplier: f64,
    trunc: DepthTrunc,
    fix_first_last: bool,
) -> Vec<Vec<BlockArgs>> {
    let last = arch_def.len().saturating_sub(1);
    arch_def
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let stack: Vec<(BlockArgs, usize)> =
                stage.iter().map(|s| BlockArgs::parse(s)).collect();
            let m = if fix_first_last && (i == 0 || i == last) {
                1.0
            } else {
                depth_multiplier
            };
            scale_stage_depth(&stack, m, trunc)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Blocks

/// How squeeze-excite layers are sized and activated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeConfig {
    /// The gate: sigmoid (EfficientNet) or hard-sigmoid (MobileNetV3).
    pub gate: Act,
    /// An activation that overrides the block's (MobileNetV3 forces ReLU); `None` = the block's.
    pub act: Option<Act>,
    /// Reduce from the expanded (mid) channels with the ratio as given (MobileNetV3,
    /// `se_from_exp=True`), or from the block input (EfficientNet: ratio / exp_ratio of mid).
    pub from_exp: bool,
    /// Round the reduced width with `make_divisible(·, 8)` (MobileNetV3) instead of Python's
    /// `round` (EfficientNet).
    pub round_divisible: bool,
}

impl SeConfig {
    /// timm's EfficientNet: sigmoid gate, block activation, width from the block input.
    pub const EFFICIENTNET: SeConfig = SeConfig {
        gate: Act::Sigmoid,
        act: None,
        from_exp: false,
        round_divisible: false,
    };
    /// timm's MobileNetV3: hard-sigmoid gate, ReLU, width from the expanded channels rounded to 8.
    pub const MOBILENETV3: SeConfig = SeConfig {
        gate: Act::HardSigmoid,
        act: Some(Act::Relu),
        from_exp: true,
        round_divisible: true,
    };
}

/// timm's `SqueezeExcite` (EfficientNet/MobileNet flavour): mean over H, W, 1×1 conv down,
/// act, 1×1 conv up, gate, rescale.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub conv_reduce: Conv2d,
    pub conv_expand: Conv2d,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub gate: Act,
}

impl SqueezeExcite {
    pub fn new(channels: usize, rd_channels: usize, act: Act, gate: Act, device: &Device) -> Self {
        SqueezeExcite {
            conv_reduce: conv2d(channels, rd_channels, 1, 1, 0, 1, true, device),
            conv_expand: conv2d(rd_channels, channels, 1, 1, 0, 1, true, device),
            act,
            gate,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dims(&[2, 3]);
        let s = self.act.apply(self.conv_reduce.run(s));
        let s = self.gate.apply(self.conv_expand.run(s));
        x.mul(s)
    }
}

fn bn(features: usize, eps: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features)
        .with_epsilon(eps)
        .init(device)
}

/// timm's `DepthwiseSeparableConv`: dw conv, BN, act, [SE], pw conv, BN, [act], [+ shortcut].
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    pub conv_dw: Conv2d,
    pub bn1: BatchNorm,
    pub se: Option<SqueezeExcite>,
    pub conv_pw: Conv2d,
    pub bn2: BatchNorm,
    #[module(skip)]
    pub act: Act,
    pub pw_act: bool,
    pub has_skip: bool,
    pub drop_path_rate: f64,
}

impl DepthwiseSeparable {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let mut y = self.act.apply(self.bn1.forward(self.conv_dw.run(x)));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.bn2.forward(self.conv_pw.run(y));
        if self.pw_act {
            y = self.act.apply(y);
        }
        if self.has_skip {
            y = drop_path(y, self.drop_path_rate) + shortcut;
        }
        y
    }
}

/// timm's `InvertedResidual` (MBConv): pw expand, BN, act, dw conv, BN, act, [SE], pw linear,
/// BN, [+ shortcut].
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
    pub has_skip: bool,
    pub drop_path_rate: f64,
}

impl InvertedResidual {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let y = self.act.apply(self.bn1.forward(self.conv_pw.run(x)));
        let mut y = self.act.apply(self.bn2.forward(self.conv_dw.run(y)));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.bn3.forward(self.conv_pwl.run(y));
        if self.has_skip {
            drop_path(y, self.drop_path_rate) + shortcut
        } else {
            y
        }
    }
}

/// timm's `ConvBnAct`: conv, BN, act, [+ shortcut].
#[derive(Module, Debug)]
pub struct ConvBnAct {
    pub conv: Conv2d,
    pub bn1: BatchNorm,
    #[module(skip)]
    pub act: Act,
    pub has_skip: bool,
    pub drop_path_rate: f64,
}

impl ConvBnAct {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let y = self.act.apply(self.bn1.forward(self.conv.run(x)));
        if self.has_skip {
            drop_path(y, self.drop_path_rate) + shortcut
        } else {
            y
        }
    }
}

/// Any block the builder makes. The variant names never reach the weight files.
// Blocks are built once per model; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum MbBlock {
    Ds(DepthwiseSeparable),
    Ir(InvertedResidual),
    Cn(ConvBnAct),
}

impl MbBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            MbBlock::Ds(b) => b.forward(x),
            MbBlock::Ir(b) => b.forward(x),
            MbBlock::Cn(b) => b.forward(x),
        }
    }
}

/// timm's `EfficientNetBuilder` settings.
#[derive(Clone, Debug)]
pub struct BuilderConfig {
    /// Width multiplier applied to every block's output channels (timm's `round_chs_fn`:
    /// `round_channels(c, multiplier, divisor, round_limit=...)`).
    pub channel_multiplier: f64,
    pub channel_divisor: usize,
    pub round_limit: f64,
    /// The model's default activation (blocks may override it).
    pub act: Act,
    pub se: SeConfig,
    pub bn_eps: f64,
    /// Stochastic depth at the last block; block i of n gets rate · i / n.
    pub drop_path_rate: f64,
}

impl BuilderConfig {
    /// timm's `round_chs_fn`.
    pub fn round_chs(&self, chs: usize) -> usize {
        if self.channel_multiplier == 0.0 {
            return chs;
        }
        make_divisible(
            chs as f64 * self.channel_multiplier,
            self.channel_divisor,
            None,
            self.round_limit,
        )
    }

    fn se_layer(
        &self,
        args: &BlockArgs,
        chs: usize,
        block_act: Act,
        device: &Device,
    ) -> Option<SqueezeExcite> {
        if args.se_ratio <= 0.0 {
            return None;
        }
        let ratio = if self.se.from_exp {
            args.se_ratio
        } else {
            args.se_ratio / args.exp_ratio
        };
        let v = chs as f64 * ratio;
        let rd = if self.se.round_divisible {
            make_divisible(v, 8, None, 0.9)
        } else {
            py_round(v)
        };
        let act = self.se.act.unwrap_or(block_act);
        Some(SqueezeExcite::new(chs, rd, act, self.se.gate, device))
    }

    /// timm's `EfficientNetBuilder.__call__`: builds the stages from `in_chs` input channels.
    /// Returns the stages and the last stage's output channels.
    pub fn build(
        &self,
        in_chs: usize,
        stages: &[Vec<BlockArgs>],
        device: &Device,
    ) -> (Vec<Vec<MbBlock>>, usize) {
        let total: usize = stages.iter().map(Vec::len).sum();
        let mut idx = 0;
        let mut in_chs = in_chs;
        let mut out = Vec::with_capacity(stages.len());
        for stage in stages {
            let mut blocks = Vec::with_capacity(stage.len());
            for (b, args) in stage.iter().enumerate() {
                let stride = if b == 0 { args.stride } else { 1 };
                let dpr = self.drop_path_rate * idx as f64 / total as f64;
                let block = self.make_block(args, in_chs, stride, dpr, device);
                in_chs = self.round_chs(args.out_chs);
                blocks.push(block);
                idx += 1;
            }
            out.push(blocks);
        }
        (out, in_chs)
    }

    fn make_block(
        &self,
        args: &BlockArgs,
        in_chs: usize,
        stride: usize,
        drop_path_rate: f64,
        device: &Device,
    ) -> MbBlock {
        let out_chs = self.round_chs(args.out_chs);
        let act = args.act.unwrap_or(self.act);
        let k = args.kernel;
        let pad = k / 2;
        let eps = self.bn_eps;
        match args.block_type {
            BlockType::Ds | BlockType::Dsa => MbBlock::Ds(DepthwiseSeparable {
                conv_dw: conv2d(in_chs, in_chs, k, stride, pad, in_chs, false, device),
                bn1: bn(in_chs, eps, device),
                se: self.se_layer(args, in_chs, act, device),
                conv_pw: conv2d(in_chs, out_chs, 1, 1, 0, 1, false, device),
                bn2: bn(out_chs, eps, device),
                act,
                pw_act: args.pw_act,
                has_skip: stride == 1 && in_chs == out_chs && !args.noskip,
                drop_path_rate,
            }),
            BlockType::Ir => {
                let mid = make_divisible(in_chs as f64 * args.exp_ratio, 8, None, 0.9);
                MbBlock::Ir(InvertedResidual {
                    conv_pw: conv2d(in_chs, mid, 1, 1, 0, 1, false, device),
                    bn1: bn(mid, eps, device),
                    conv_dw: conv2d(mid, mid, k, stride, pad, mid, false, device),
                    bn2: bn(mid, eps, device),
                    se: self.se_layer(args, mid, act, device),
                    conv_pwl: conv2d(mid, out_chs, 1, 1, 0, 1, false, device),
                    bn3: bn(out_chs, eps, device),
                    act,
                    has_skip: stride == 1 && in_chs == out_chs && !args.noskip,
                    drop_path_rate,
                })
            }
            BlockType::Cn => MbBlock::Cn(ConvBnAct {
                conv: conv2d(in_chs, out_chs, k, stride, pad, 1, false, device),
                bn1: bn(out_chs, eps, device),
                act,
                has_skip: args.skip && stride == 1 && in_chs == out_chs,
                drop_path_rate,
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model

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
                Some(bn(nf, b.bn_eps, device)),
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
            bn1: bn(stem, b.bn_eps, device),
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
        let mut x = self.act.apply(self.bn1.forward(self.conv_stem.run(x)));
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
                    (Some(conv), Some(bn)) => self.act.apply(bn.forward(conv.run(x))),
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

impl crate::model::Classifier for MobileNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        MobileNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["classifier."]
    }
}

// ---------------------------------------------------------------------------------------------
// torchvision's key layout

/// One layer group of a torchvision block's `nn.Sequential`, in order: a conv + BN
/// (`Conv2dNormActivation`: `.0` conv, `.1` BN) stored as the named timm fields, or a
/// squeeze-excite (`fc1`, `fc2` = timm's `se.conv_reduce`, `se.conv_expand`).
pub(crate) enum TvUnit {
    ConvBn(&'static str, &'static str),
    Se,
}

/// Adds torchvision's numbering of `units` (`{from}N.`) -> timm's fields (`{to}field.`).
/// `split_last`: the last conv and BN are two entries of the Sequential (MobileNetV2's
/// `conv.{N, N+1}`) instead of one `Conv2dNormActivation`.
pub(crate) fn add_tv_units(
    map: &mut crate::weights::PrefixMap,
    from: &str,
    to: &str,
    units: &[TvUnit],
    split_last: bool,
) {
    for (i, unit) in units.iter().enumerate() {
        match unit {
            TvUnit::ConvBn(conv, bn) if split_last && i + 1 == units.len() => {
                map.add(format!("{from}{i}."), format!("{to}{conv}."));
                map.add(format!("{from}{}.", i + 1), format!("{to}{bn}."));
            }
            TvUnit::ConvBn(conv, bn) => {
                map.add(format!("{from}{i}.0."), format!("{to}{conv}."));
                map.add(format!("{from}{i}.1."), format!("{to}{bn}."));
            }
            TvUnit::Se => {
                map.add(format!("{from}{i}.fc1."), format!("{to}se.conv_reduce."));
                map.add(format!("{from}{i}.fc2."), format!("{to}se.conv_expand."));
            }
        }
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
    ) -> Option<crate::weights::Translation<'_>> {
        use TvUnit::{ConvBn, Se};
        let v3 = self.head == HeadKind::PooledConv;
        let probe = if v3 {
            "features.1.block.0.0.weight"
        } else {
            "features.1.conv.0.0.weight"
        };
        if !(keys.contains("features.0.0.weight") && keys.contains(probe)) {
            return None;
        }
        let mut map = crate::weights::PrefixMap::default();
        map.add("features.0.0.", "conv_stem.");
        map.add("features.0.1.", "bn1.");
        let mut k = 1;
        for (s, stage) in self.blocks.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let to = format!("blocks.{s}.{b}.");
                let units = match block {
                    MbBlock::Ds(d) => {
                        let mut u = vec![ConvBn("conv_dw", "bn1")];
                        u.extend(d.se.as_ref().map(|_| Se));
                        u.push(ConvBn("conv_pw", "bn2"));
                        u
                    }
                    MbBlock::Ir(d) => {
                        let mut u = vec![ConvBn("conv_pw", "bn1"), ConvBn("conv_dw", "bn2")];
                        u.extend(d.se.as_ref().map(|_| Se));
                        u.push(ConvBn("conv_pwl", "bn3"));
                        u
                    }
                    MbBlock::Cn(_) => {
                        map.add(format!("features.{k}.0."), format!("{to}conv."));
                        map.add(format!("features.{k}.1."), format!("{to}bn1."));
                        k += 1;
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_timm() {
        // Values from timm.layers.make_divisible.
        assert_eq!(make_divisible(88.08, 8, None, 0.9), 88);
        assert_eq!(make_divisible(16.0 * 0.35, 8, None, 0.9), 8);
        assert_eq!(make_divisible(320.0 * 1.4, 8, None, 0.9), 448);
        assert_eq!(make_divisible(1280.0 * 1.4, 8, None, 0.9), 1792);
        assert_eq!(make_divisible(24.0 * 0.35, 8, None, 0.9), 8);
        assert_eq!(make_divisible(13.0, 8, None, 0.9), 16);
    }

    #[test]
    fn block_strings_parse_like_timm() {
        let (a, r) = BlockArgs::parse("ir_r3_k5_s2_e4.5_c40_se0.25_nre");
        assert_eq!(r, 3);
        assert_eq!(a.block_type, BlockType::Ir);
        assert_eq!((a.kernel, a.stride, a.out_chs), (5, 2, 40));
        assert_eq!((a.exp_ratio, a.se_ratio), (4.5, 0.25));
        assert_eq!(a.act, Some(Act::Relu));
        let (a, _) = BlockArgs::parse("dsa_r2_k3_s2_c128");
        assert!(a.noskip && a.pw_act);
    }

    #[test]
    fn stage_depth_scaling_matches_timm() {
        // timm decode_arch_def([...], depth_multiplier=0.34) for MobileNetV3-large's stage 3:
        // 1 + 1 + 2 repeats -> 1 + 1 + 1.
        let stage: &[&str] = &[
            "ir_r1_k3_s2_e6_c80",
            "ir_r1_k3_s1_e2.5_c80",
            "ir_r2_k3_s1_e2.3_c80",
        ];
        let d = decode_arch_def(&[stage], 0.34, DepthTrunc::Ceil, false);
        assert_eq!(d[0].len(), 3);
        let d = decode_arch_def(&[&["ir_r4_k3_s2_e6_c64"]], 0.34, DepthTrunc::Ceil, false);
        assert_eq!(d[0].len(), 2);
    }
}
