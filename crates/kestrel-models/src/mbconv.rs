//! The MobileNet/EfficientNet building blocks, shared by every family timm builds with
//! `_efficientnet_builder.py` and `_efficientnet_blocks.py` (MobileNetV1–V3, EfficientNet,
//! EfficientNet-Lite, ...): [`BlockArgs::parse`] reads timm's block strings
//! (`"ir_r2_k3_s2_e6_c24_se0.25"`), [`decode_arch_def`] scales stage depths exactly as timm does,
//! and [`BuilderConfig::build`] makes the blocks (`DepthwiseSeparableConv`, `InvertedResidual`,
//! `ConvBnAct`, with squeeze-excite) with timm's channel rounding, SE sizing, padding and
//! stochastic-depth schedule. `TvUnit` / `add_tv_units` map torchvision's numbering of the
//! same blocks to timm's field names.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

pub use crate::layers::activations::Act;
/// timm's EfficientNet `SqueezeExcite` under the name this module has always exported.
pub use crate::layers::channel_attention::EfficientNetSe as SqueezeExcite;
use crate::layers::padding::create_conv2d;
pub use crate::layers::padding::run_same;
use crate::layers::{drop_path, make_divisible, Counted};

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Python's `round`: halves go to the even neighbour.
fn py_round(v: f64) -> usize {
    v.round_ties_even() as usize
}

// ---------------------------------------------------------------------------------------------
// Block definitions: timm's block strings

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// `ds`: depthwise-separable (the first block of MobileNetV2/V3 and EfficientNet).
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
        let mut y = self.act.after_bn(&self.bn1, run_same(&self.conv_dw, x));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = crate::layers::bn(&self.bn2, self.conv_pw.run(y));
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
        let y = self.act.after_bn(&self.bn1, self.conv_pw.run(x));
        let mut y = self.act.after_bn(&self.bn2, run_same(&self.conv_dw, y));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = crate::layers::bn(&self.bn3, self.conv_pwl.run(y));
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
        let y = self.act.after_bn(&self.bn1, run_same(&self.conv, x));
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

    /// The layer groups of torchvision's version of this block, in order (expand, depthwise,
    /// SE, project); `None` for a `cn` block, which torchvision stores as one bare
    /// `Conv2dNormActivation` rather than a block.
    pub(crate) fn torchvision_units(&self) -> Option<Vec<TvUnit>> {
        use TvUnit::{ConvBn, Se};
        let units = match self {
            MbBlock::Ds(b) => {
                let mut u = vec![ConvBn("conv_dw", "bn1")];
                u.extend(b.se.as_ref().map(|_| Se));
                u.push(ConvBn("conv_pw", "bn2"));
                u
            }
            MbBlock::Ir(b) => {
                let mut u = vec![ConvBn("conv_pw", "bn1"), ConvBn("conv_dw", "bn2")];
                u.extend(b.se.as_ref().map(|_| Se));
                u.push(ConvBn("conv_pwl", "bn3"));
                u
            }
            MbBlock::Cn(_) => return None,
        };
        Some(units)
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
    /// TensorFlow "same" padding (timm's `pad_type="same"`, the `tf_` ports): strided convs are
    /// built unpadded and padded asymmetrically at run time by [`run_same`].
    pub same_padding: bool,
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

    /// A conv with this builder's padding ([`create_conv2d`]; its kernels are odd, so the
    /// symmetric pad is (k−1)/2).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &self,
        in_chs: usize,
        out_chs: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bias: bool,
        device: &Device,
    ) -> Conv2d {
        create_conv2d(
            in_chs,
            out_chs,
            k,
            stride,
            groups,
            bias,
            self.same_padding,
            device,
        )
    }

    pub fn bn(&self, features: usize, device: &Device) -> BatchNorm {
        BatchNormConfig::new(features)
            .with_epsilon(self.bn_eps)
            .init(device)
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
        match args.block_type {
            BlockType::Ds | BlockType::Dsa => MbBlock::Ds(DepthwiseSeparable {
                conv_dw: self.conv(in_chs, in_chs, k, stride, in_chs, false, device),
                bn1: self.bn(in_chs, device),
                se: self.se_layer(args, in_chs, act, device),
                conv_pw: self.conv(in_chs, out_chs, 1, 1, 1, false, device),
                bn2: self.bn(out_chs, device),
                act,
                pw_act: args.pw_act,
                has_skip: stride == 1 && in_chs == out_chs && !args.noskip,
                drop_path_rate,
            }),
            BlockType::Ir => {
                let mid = make_divisible(in_chs as f64 * args.exp_ratio, 8, None, 0.9);
                MbBlock::Ir(InvertedResidual {
                    conv_pw: self.conv(in_chs, mid, 1, 1, 1, false, device),
                    bn1: self.bn(mid, device),
                    conv_dw: self.conv(mid, mid, k, stride, mid, false, device),
                    bn2: self.bn(mid, device),
                    se: self.se_layer(args, mid, act, device),
                    conv_pwl: self.conv(mid, out_chs, 1, 1, 1, false, device),
                    bn3: self.bn(out_chs, device),
                    act,
                    has_skip: stride == 1 && in_chs == out_chs && !args.noskip,
                    drop_path_rate,
                })
            }
            BlockType::Cn => MbBlock::Cn(ConvBnAct {
                conv: self.conv(in_chs, out_chs, k, stride, 1, false, device),
                bn1: self.bn(out_chs, device),
                act,
                has_skip: args.skip && stride == 1 && in_chs == out_chs,
                drop_path_rate,
            }),
        }
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
    map: &mut crate::translation::PrefixMap,
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
