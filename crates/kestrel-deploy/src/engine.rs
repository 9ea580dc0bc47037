//! The fast inference engine: a flat list of fused NHWC ops over kestrel-kernels, built once
//! from a model (see [`crate::lower`]) and run many times.
//!
//! Lowering produces a [`Graph`]: the fused ops with plain (BN-folded, unpacked OIHW) weights,
//! which exporters read. [`Engine::new`] packs its weights for the kernels.
//!
//! Every activation lives in a buffer from a per-engine arena. A buffer goes back to the arena
//! after the last op that reads it, and the arena keeps its buffers between runs, so after the
//! first image of a given shape a run allocates nothing and touches no fresh pages.

use std::sync::Mutex;

use kestrel_kernels::conv::{
    depthwise_fusion_pays, fuses_with_depthwise, pointwise_then_depthwise, Pointwise,
};
use kestrel_kernels::{pool2d, Act, Conv2d, ConvGeometry, QConv2d};

use crate::quant::ConvQuant;

/// An activation tensor of the graph, NHWC.
pub type Value = usize;

/// A convolution (or linear layer, as a 1×1 conv) before packing: BN already folded in.
#[derive(Clone, Debug)]
pub struct ConvSpec {
    pub geom: ConvGeometry,
    /// OIHW: `[out, in/groups, kh, kw]`.
    pub weight: Vec<f32>,
    /// One per output channel.
    pub bias: Vec<f32>,
    pub act: Act,
    /// Set by [`crate::quant`]: the weights are int8 (`weight` then holds their dequantized
    /// values, which is what an fp32 consumer of the graph sees), and with an input
    /// quantization the conv runs in int8.
    pub quant: Option<ConvQuant>,
}

impl ConvSpec {
    pub fn new(geom: ConvGeometry, weight: Vec<f32>, bias: Option<Vec<f32>>, act: Act) -> Self {
        let bias = bias.unwrap_or_else(|| vec![0.0; geom.out_ch]);
        ConvSpec {
            geom,
            weight,
            bias,
            act,
            quant: None,
        }
    }
    fn pack(&self) -> PackedConv {
        let int8 = self.quant.as_ref().and_then(|q| Some((q, q.input?)));
        let kind = match int8 {
            None => PackedKind::F32(Conv2d::for_inference(
                self.geom,
                &self.weight,
                Some(&self.bias),
                self.act,
            )),
            Some((q, input)) => PackedKind::Int8(QConv2d::new(
                self.geom,
                &q.weight,
                &q.w_scale,
                Some(&self.bias),
                self.act,
                input.scale,
                input.zero,
                input.max,
            )),
        };
        PackedConv {
            geom: self.geom,
            kind,
        }
    }
}

/// A conv packed for the kernels: fp32, or int8 when the graph was quantized.
pub struct PackedConv {
    pub geom: ConvGeometry,
    kind: PackedKind,
}

enum PackedKind {
    F32(Conv2d),
    Int8(QConv2d),
}

impl PackedConv {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) -> (usize, usize) {
        match &self.kind {
            PackedKind::F32(c) => c.forward(x, n, h, w, out, residual, add_after_act),
            PackedKind::Int8(c) => c.forward(x, n, h, w, out, residual, add_after_act),
        }
    }

    fn weight_bytes(&self) -> usize {
        match &self.kind {
            PackedKind::F32(c) => c.weight_bytes(),
            PackedKind::Int8(c) => c.weight_bytes(),
        }
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.kind, PackedKind::Int8(_))
    }
}

/// One fused op; `C` is the conv's form ([`ConvSpec`] in a [`Graph`], packed in an [`Engine`]).
#[derive(Clone)]
pub enum Op<C> {
    /// `out = act(conv(x) + bias [+ residual])` (or `act(..) + residual` when `add_after_act`).
    Conv {
        conv: C,
        x: Value,
        residual: Option<Value>,
        add_after_act: bool,
        out: Value,
    },
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        x: Value,
        out: Value,
    },
    /// `[n, h, w, c] -> [n, 1, 1, c]`.
    GlobalAvgPool { x: Value, out: Value },
    /// Average pooling without padding; in ceil mode overhanging windows average what they
    /// cover (PyTorch's `count_include_pad=False`).
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
        x: Value,
        out: Value,
    },
    /// PyTorch's `AdaptiveAvgPool2d(out_hw)`.
    AdaptiveAvgPool {
        out_hw: [usize; 2],
        x: Value,
        out: Value,
    },
    /// `[n, h, w, c] -> [n, 1, 1, c·h·w]` in PyTorch's NCHW flatten order.
    FlattenNchw { x: Value, out: Value },
    /// Layer norm over channels, in place (`out` takes over `x`'s buffer).
    LayerNorm {
        weight: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
        x: Value,
        out: Value,
    },
    /// Squeeze-and-excitation in place: `x · gate(expand(act(reduce(mean(x)))))`, where
    /// `reduce` and `expand` are 1×1 convs that carry their activations.
    SqueezeExcite {
        reduce: C,
        expand: C,
        x: Value,
        out: Value,
    },
    /// ECA in place: `x · sigmoid(conv1d_k(mean(x)))`, the 1-D conv across channels run as a
    /// `1 × k` conv over the pooled channel row (its activation is the sigmoid).
    Eca { conv: C, x: Value, out: Value },
    /// CBAM in place (timm's `CbamModule`): channel attention
    /// `x · sigmoid(fc2(fc1(mean(x))) + fc2(fc1(max(x))))` (`fc1` carries its activation, `fc2`
    /// none), then spatial attention `x · spatial([mean_c(x), max_c(x)])`, where `spatial` is
    /// the 2 → 1 conv (BN folded) that carries the sigmoid.
    Cbam {
        fc1: C,
        fc2: C,
        spatial: C,
        x: Value,
        out: Value,
    },
    /// `out = act(a + b)`, in place on `a`.
    AddAct {
        a: Value,
        b: Value,
        act: Act,
        out: Value,
    },
    /// Layer norm over channels into a new buffer (`x` stays: a pre-norm block's residual).
    LayerNormCopy {
        weight: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
        x: Value,
        out: Value,
    },
    /// A transformer's token sequence from a patch grid `[n, gh, gw, d]`: the prefix tokens
    /// (`[p, d]`: class, distillation) then the patches in row-major order, plus the position
    /// embedding (`[p + gh·gw, d]`), as `[n, 1, p + gh·gw, d]`.
    Tokens {
        prefix: Vec<f32>,
        pos_embed: Vec<f32>,
        x: Value,
        out: Value,
    },
    /// Multi-head self-attention over each image's tokens, from a fused qkv projection
    /// `[n, 1, t, 3·d]` (q already scaled) to `[n, 1, t, d]`.
    Attention { heads: usize, x: Value, out: Value },
    /// The T2T-ViT Performer's single-head linear attention over all of an image's pixels
    /// (tokens), from a fused projection `[n, h, w, 3·e]` in the official (k, q, v) order to
    /// `[n, h, w, e]`: with the positive random features φ(u) = exp(w·u − |u|²/2)/√m of the
    /// fixed `w` (`[m, e]`, row-major), y_t = φ(q_t)·(Σ_s φ(k_s) v_sᵀ) / (φ(q_t)·Σ_s φ(k_s) + eps).
    PerformerAttention {
        w: Vec<f32>,
        eps: f32,
        x: Value,
        out: Value,
    },
    /// The first `count` tokens of `[n, 1, t, d]`, side by side: `[n, 1, 1, count·d]`.
    FirstTokens { count: usize, x: Value, out: Value },
    /// Swin's shifted-window attention from a fused qkv map `[n, h, w, 3·c]` (q scaled) to
    /// `[n, h, w, c]`; see `kestrel_kernels::attention::WindowAttention`.
    WindowAttention {
        heads: usize,
        window: [usize; 2],
        shift: [usize; 2],
        /// `[heads][N][N]`.
        bias: Vec<f32>,
        /// `[windows][N][N]`.
        mask: Option<Vec<f32>>,
        pad_qkv: Vec<f32>,
        /// The map size the model was built for (the mask and shift fit it only).
        map_hw: [usize; 2],
        x: Value,
        out: Value,
    },
    /// Swin's patch merging gather: zero-pad to even sizes, then each 2 × 2 block's pixels
    /// side by side in timm's order (x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]).
    MergePatches { x: Value, out: Value },
    /// MaxViT's grid partition as contiguous windows: with `partition` = [ph, pw] and the
    /// map's grid g = [h/ph, w/pw], pixel (i·g_h + a, j·g_w + b) moves to (a·ph + i, b·pw + j),
    /// so grid window (a, b) becomes the window at block (a, b) that [`Op::WindowAttention`]
    /// reads; `inverse` moves it back. Every other op of the block is per token.
    GridToBlocks {
        partition: [usize; 2],
        inverse: bool,
        x: Value,
        out: Value,
    },
    /// The same pixels (tokens) in row-major order as an `hw` map: `[n, h, w, c]` with
    /// h·w = hw[0]·hw[1]. `[1, t]` makes a map a token sequence for [`Op::Attention`], and back.
    Reshape {
        hw: [usize; 2],
        x: Value,
        out: Value,
    },
}

impl<C> Op<C> {
    /// The same op with its convs converted by `f`.
    fn map_conv<D>(&self, f: impl Fn(&C) -> D) -> Op<D> {
        match self {
            Op::Conv {
                conv,
                x,
                residual,
                add_after_act,
                out,
            } => Op::Conv {
                conv: f(conv),
                x: *x,
                residual: *residual,
                add_after_act: *add_after_act,
                out: *out,
            },
            Op::MaxPool {
                kernel,
                stride,
                pad,
                x,
                out,
            } => Op::MaxPool {
                kernel: *kernel,
                stride: *stride,
                pad: *pad,
                x: *x,
                out: *out,
            },
            Op::GlobalAvgPool { x, out } => Op::GlobalAvgPool { x: *x, out: *out },
            Op::AvgPool {
                kernel,
                stride,
                ceil_mode,
                x,
                out,
            } => Op::AvgPool {
                kernel: *kernel,
                stride: *stride,
                ceil_mode: *ceil_mode,
                x: *x,
                out: *out,
            },
            Op::AdaptiveAvgPool { out_hw, x, out } => Op::AdaptiveAvgPool {
                out_hw: *out_hw,
                x: *x,
                out: *out,
            },
            Op::FlattenNchw { x, out } => Op::FlattenNchw { x: *x, out: *out },
            Op::LayerNorm {
                weight,
                bias,
                eps,
                x,
                out,
            } => Op::LayerNorm {
                weight: weight.clone(),
                bias: bias.clone(),
                eps: *eps,
                x: *x,
                out: *out,
            },
            Op::SqueezeExcite {
                reduce,
                expand,
                x,
                out,
            } => Op::SqueezeExcite {
                reduce: f(reduce),
                expand: f(expand),
                x: *x,
                out: *out,
            },
            Op::Eca { conv, x, out } => Op::Eca {
                conv: f(conv),
                x: *x,
                out: *out,
            },
            Op::Cbam {
                fc1,
                fc2,
                spatial,
                x,
                out,
            } => Op::Cbam {
                fc1: f(fc1),
                fc2: f(fc2),
                spatial: f(spatial),
                x: *x,
                out: *out,
            },
            Op::PerformerAttention { w, eps, x, out } => Op::PerformerAttention {
                w: w.clone(),
                eps: *eps,
                x: *x,
                out: *out,
            },
            Op::AddAct { a, b, act, out } => Op::AddAct {
                a: *a,
                b: *b,
                act: *act,
                out: *out,
            },
            Op::LayerNormCopy {
                weight,
                bias,
                eps,
                x,
                out,
            } => Op::LayerNormCopy {
                weight: weight.clone(),
                bias: bias.clone(),
                eps: *eps,
                x: *x,
                out: *out,
            },
            Op::Tokens {
                prefix,
                pos_embed,
                x,
                out,
            } => Op::Tokens {
                prefix: prefix.clone(),
                pos_embed: pos_embed.clone(),
                x: *x,
                out: *out,
            },
            Op::Attention { heads, x, out } => Op::Attention {
                heads: *heads,
                x: *x,
                out: *out,
            },
            Op::FirstTokens { count, x, out } => Op::FirstTokens {
                count: *count,
                x: *x,
                out: *out,
            },
            Op::WindowAttention {
                heads,
                window,
                shift,
                bias,
                mask,
                pad_qkv,
                map_hw,
                x,
                out,
            } => Op::WindowAttention {
                heads: *heads,
                window: *window,
                shift: *shift,
                bias: bias.clone(),
                mask: mask.clone(),
                pad_qkv: pad_qkv.clone(),
                map_hw: *map_hw,
                x: *x,
                out: *out,
            },
            Op::MergePatches { x, out } => Op::MergePatches { x: *x, out: *out },
            Op::GridToBlocks {
                partition,
                inverse,
                x,
                out,
            } => Op::GridToBlocks {
                partition: *partition,
                inverse: *inverse,
                x: *x,
                out: *out,
            },
            Op::Reshape { hw, x, out } => Op::Reshape {
                hw: *hw,
                x: *x,
                out: *out,
            },
        }
    }

    pub fn inputs(&self) -> Vec<Value> {
        match self {
            Op::Conv { x, residual, .. } => std::iter::once(*x).chain(*residual).collect(),
            Op::MaxPool { x, .. }
            | Op::GlobalAvgPool { x, .. }
            | Op::AvgPool { x, .. }
            | Op::AdaptiveAvgPool { x, .. }
            | Op::FlattenNchw { x, .. }
            | Op::LayerNorm { x, .. }
            | Op::SqueezeExcite { x, .. }
            | Op::Eca { x, .. }
            | Op::Cbam { x, .. }
            | Op::PerformerAttention { x, .. }
            | Op::LayerNormCopy { x, .. }
            | Op::Tokens { x, .. }
            | Op::Attention { x, .. }
            | Op::FirstTokens { x, .. }
            | Op::WindowAttention { x, .. }
            | Op::MergePatches { x, .. }
            | Op::GridToBlocks { x, .. }
            | Op::Reshape { x, .. } => vec![*x],
            Op::AddAct { a, b, .. } => vec![*a, *b],
        }
    }
    /// The value the op defines.
    pub fn output(&self) -> Value {
        match self {
            Op::Conv { out, .. }
            | Op::MaxPool { out, .. }
            | Op::GlobalAvgPool { out, .. }
            | Op::AvgPool { out, .. }
            | Op::AdaptiveAvgPool { out, .. }
            | Op::FlattenNchw { out, .. }
            | Op::LayerNorm { out, .. }
            | Op::SqueezeExcite { out, .. }
            | Op::Eca { out, .. }
            | Op::Cbam { out, .. }
            | Op::PerformerAttention { out, .. }
            | Op::AddAct { out, .. }
            | Op::LayerNormCopy { out, .. }
            | Op::Tokens { out, .. }
            | Op::Attention { out, .. }
            | Op::FirstTokens { out, .. }
            | Op::WindowAttention { out, .. }
            | Op::MergePatches { out, .. }
            | Op::GridToBlocks { out, .. }
            | Op::Reshape { out, .. } => *out,
        }
    }

    /// The input whose buffer the op writes in place, if any.
    pub fn in_place(&self) -> Option<Value> {
        match self {
            Op::LayerNorm { x, .. }
            | Op::SqueezeExcite { x, .. }
            | Op::Eca { x, .. }
            | Op::Cbam { x, .. } => Some(*x),
            Op::AddAct { a, .. } => Some(*a),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str
    where
        C: HasGeometry,
    {
        match self {
            Op::Conv { conv, .. } if conv.geometry().is_depthwise() => "depthwise conv",
            Op::Conv { conv, .. } if conv.geometry().kernel == [1, 1] => "1x1 conv / linear",
            Op::Conv { conv, .. } if conv.is_winograd() => "3x3 conv (winograd)",
            Op::Conv { .. } => "conv",
            Op::MaxPool { .. } => "max pool",
            Op::GlobalAvgPool { .. } | Op::AvgPool { .. } | Op::AdaptiveAvgPool { .. } => {
                "avg pool"
            }
            Op::FlattenNchw { .. } => "flatten",
            Op::LayerNorm { .. } | Op::LayerNormCopy { .. } => "layer norm",
            Op::Attention { .. } | Op::WindowAttention { .. } | Op::PerformerAttention { .. } => {
                "attention"
            }
            Op::MergePatches { .. } | Op::GridToBlocks { .. } | Op::Reshape { .. } => "tokens",
            Op::Tokens { .. } | Op::FirstTokens { .. } => "tokens",
            Op::SqueezeExcite { .. } | Op::Eca { .. } | Op::Cbam { .. } => "channel attention",
            Op::AddAct { .. } => "add",
        }
    }
}

/// Both forms of a conv know their geometry.
pub trait HasGeometry {
    fn geometry(&self) -> &ConvGeometry;
    /// Whether the conv runs as Winograd (decided when it is packed).
    fn is_winograd(&self) -> bool {
        false
    }
}
impl HasGeometry for ConvSpec {
    fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }
}
impl HasGeometry for PackedConv {
    fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }
    fn is_winograd(&self) -> bool {
        matches!(&self.kind, PackedKind::F32(c) if c.is_winograd())
    }
}

/// Builds a graph op by op; values are numbered in creation order.
pub struct GraphBuilder {
    ops: Vec<Op<ConvSpec>>,
    next_value: usize,
    in_ch: usize,
}

impl GraphBuilder {
    /// A graph whose input (value 0) has `in_ch` channels.
    pub fn new(in_ch: usize) -> (GraphBuilder, Value) {
        (
            GraphBuilder {
                ops: Vec::new(),
                next_value: 1,
                in_ch,
            },
            0,
        )
    }

    fn fresh(&mut self) -> Value {
        self.next_value += 1;
        self.next_value - 1
    }

    fn push(&mut self, make: impl FnOnce(Value) -> Op<ConvSpec>) -> Value {
        let out = self.fresh();
        self.ops.push(make(out));
        out
    }

    pub fn conv(&mut self, x: Value, conv: ConvSpec) -> Value {
        self.push(|out| Op::Conv {
            conv,
            x,
            residual: None,
            add_after_act: false,
            out,
        })
    }

    /// `act(conv(x) + residual)`, or `act(conv(x)) + residual` when `add_after_act`.
    pub fn conv_residual(
        &mut self,
        x: Value,
        conv: ConvSpec,
        residual: Value,
        add_after_act: bool,
    ) -> Value {
        self.push(|out| Op::Conv {
            conv,
            x,
            residual: Some(residual),
            add_after_act,
            out,
        })
    }

    pub fn max_pool(
        &mut self,
        x: Value,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> Value {
        self.push(|out| Op::MaxPool {
            kernel,
            stride,
            pad,
            x,
            out,
        })
    }

    pub fn global_avg_pool(&mut self, x: Value) -> Value {
        self.push(|out| Op::GlobalAvgPool { x, out })
    }

    pub fn avg_pool(&mut self, x: Value, kernel: [usize; 2], stride: [usize; 2]) -> Value {
        self.push(|out| Op::AvgPool {
            kernel,
            stride,
            ceil_mode: false,
            x,
            out,
        })
    }

    /// [`Self::avg_pool`] in ceil mode (timm's ResNet-D shortcut).
    pub fn avg_pool_ceil(&mut self, x: Value, kernel: [usize; 2], stride: [usize; 2]) -> Value {
        self.push(|out| Op::AvgPool {
            kernel,
            stride,
            ceil_mode: true,
            x,
            out,
        })
    }

    pub fn adaptive_avg_pool(&mut self, x: Value, out_hw: [usize; 2]) -> Value {
        self.push(|out| Op::AdaptiveAvgPool { out_hw, x, out })
    }

    pub fn flatten_nchw(&mut self, x: Value) -> Value {
        self.push(|out| Op::FlattenNchw { x, out })
    }

    pub fn layer_norm(&mut self, x: Value, weight: Vec<f32>, bias: Vec<f32>, eps: f32) -> Value {
        self.push(|out| Op::LayerNorm {
            weight,
            bias,
            eps,
            x,
            out,
        })
    }

    /// [`Self::layer_norm`] into a new value, keeping `x`.
    pub fn layer_norm_copy(
        &mut self,
        x: Value,
        weight: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
    ) -> Value {
        self.push(|out| Op::LayerNormCopy {
            weight,
            bias,
            eps,
            x,
            out,
        })
    }

    pub fn tokens(&mut self, x: Value, prefix: Vec<f32>, pos_embed: Vec<f32>) -> Value {
        self.push(|out| Op::Tokens {
            prefix,
            pos_embed,
            x,
            out,
        })
    }

    pub fn attention(&mut self, qkv: Value, heads: usize) -> Value {
        self.push(|out| Op::Attention { heads, x: qkv, out })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn window_attention(
        &mut self,
        qkv: Value,
        heads: usize,
        window: [usize; 2],
        shift: [usize; 2],
        bias: Vec<f32>,
        mask: Option<Vec<f32>>,
        pad_qkv: Vec<f32>,
        map_hw: [usize; 2],
    ) -> Value {
        self.push(|out| Op::WindowAttention {
            heads,
            window,
            shift,
            bias,
            mask,
            pad_qkv,
            map_hw,
            x: qkv,
            out,
        })
    }

    pub fn merge_patches(&mut self, x: Value) -> Value {
        self.push(|out| Op::MergePatches { x, out })
    }

    /// See [`Op::GridToBlocks`].
    pub fn grid_to_blocks(&mut self, x: Value, partition: [usize; 2], inverse: bool) -> Value {
        self.push(|out| Op::GridToBlocks {
            partition,
            inverse,
            x,
            out,
        })
    }

    /// See [`Op::Reshape`].
    pub fn reshape(&mut self, x: Value, hw: [usize; 2]) -> Value {
        self.push(|out| Op::Reshape { hw, x, out })
    }

    pub fn first_tokens(&mut self, x: Value, count: usize) -> Value {
        self.push(|out| Op::FirstTokens { count, x, out })
    }

    pub fn squeeze_excite(&mut self, x: Value, reduce: ConvSpec, expand: ConvSpec) -> Value {
        self.push(|out| Op::SqueezeExcite {
            reduce,
            expand,
            x,
            out,
        })
    }

    pub fn eca(&mut self, x: Value, conv: ConvSpec) -> Value {
        self.push(|out| Op::Eca { conv, x, out })
    }

    /// See [`Op::Cbam`].
    pub fn cbam(&mut self, x: Value, fc1: ConvSpec, fc2: ConvSpec, spatial: ConvSpec) -> Value {
        self.push(|out| Op::Cbam {
            fc1,
            fc2,
            spatial,
            x,
            out,
        })
    }

    /// See [`Op::PerformerAttention`]: `kqv` `[n, h, w, 3·e]`, `w` `[m, e]` row-major.
    pub fn performer_attention(&mut self, kqv: Value, w: Vec<f32>, eps: f32) -> Value {
        self.push(|out| Op::PerformerAttention {
            w,
            eps,
            x: kqv,
            out,
        })
    }

    pub fn add_act(&mut self, a: Value, b: Value, act: Act) -> Value {
        self.push(|out| Op::AddAct { a, b, act, out })
    }

    /// Finishes the graph with `output` as its `[n, 1, 1, classes]` result, checking that no op
    /// writes in place a value that a later op still reads.
    pub fn finish(self, output: Value) -> Result<Graph, String> {
        let n_values = self.next_value;
        let mut last_use = vec![usize::MAX; n_values];
        for (i, op) in self.ops.iter().enumerate() {
            for v in op.inputs() {
                last_use[v] = i;
            }
        }
        for (i, op) in self.ops.iter().enumerate() {
            if let Some(v) = op.in_place() {
                if last_use[v] != i {
                    return Err(format!(
                        "op {i} ({}) writes value {v} in place but a later op reads it",
                        op.name()
                    ));
                }
            }
        }
        Ok(Graph {
            ops: self.ops,
            in_ch: self.in_ch,
            output,
            n_values,
        })
    }
}

/// A lowered model: fused ops with plain weights. Value 0 is the NHWC input.
#[derive(Clone)]
pub struct Graph {
    pub ops: Vec<Op<ConvSpec>>,
    pub in_ch: usize,
    pub output: Value,
    pub n_values: usize,
}

#[derive(Default)]
struct Arena {
    free: Vec<Vec<f32>>,
    /// The longest buffer taken since this was last reset.
    largest: usize,
}

impl Arena {
    /// A buffer of exactly `len` elements, reusing the smallest free one that fits. Its
    /// contents are stale: every op writes all of its output.
    fn take(&mut self, len: usize) -> Vec<f32> {
        self.largest = self.largest.max(len);
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut buf = self.free.swap_remove(i);
                // SAFETY: every arena buffer was created zero-filled to its full capacity
                // (below), so all `len <= capacity` elements are initialised f32 values.
                unsafe { buf.set_len(len) };
                buf
            }
            // Zero-filled to capacity, which is `len`: the invariant above.
            None => vec![0.0; len],
        }
    }
    fn give(&mut self, buf: Vec<f32>) {
        self.free.push(buf);
    }
}

/// An arena taken from an engine's idle ones for one run, and given back when dropped.
struct ArenaLease<'a> {
    arena: Arena,
    home: &'a Mutex<Vec<Arena>>,
}

impl<'a> ArenaLease<'a> {
    fn new(home: &'a Mutex<Vec<Arena>>) -> Self {
        let arena = home
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        ArenaLease { arena, home }
    }
}

impl Drop for ArenaLease<'_> {
    fn drop(&mut self) {
        let arena = std::mem::take(&mut self.arena);
        self.home
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(arena);
    }
}

impl std::ops::Deref for ArenaLease<'_> {
    type Target = Arena;
    fn deref(&self) -> &Arena {
        &self.arena
    }
}

impl std::ops::DerefMut for ArenaLease<'_> {
    fn deref_mut(&mut self) -> &mut Arena {
        &mut self.arena
    }
}

/// The channel-attention rescale shared by SE and ECA, in place: `x · gate(mean(x))`, where
/// `gate` writes the `[n, c]` channel weights from the `[n, c]` spatial means.
fn rescale_by_pooled_gate(
    arena: &mut Arena,
    x: &mut [f32],
    s: Shape,
    gate: impl FnOnce(&mut Arena, &[f32], &mut [f32]),
) {
    let mut mean = arena.take(s.n * s.c);
    pool2d::global_avg_pool(x, s.n, s.h * s.w, s.c, &mut mean);
    let mut g = arena.take(s.n * s.c);
    gate(arena, &mean, &mut g);
    kestrel_kernels::norm::scale_channels(x, s.n, s.h * s.w, s.c, &g);
    arena.give(mean);
    arena.give(g);
}

/// CBAM in place on `x` (`[n, h, w, c]`): see [`Op::Cbam`].
fn cbam(
    arena: &mut Arena,
    x: &mut [f32],
    s: Shape,
    fc1: &PackedConv,
    fc2: &PackedConv,
    spatial: &PackedConv,
) {
    let (n, hw, c) = (s.n, s.h * s.w, s.c);
    // Channel attention: the average- then the max-pooled descriptors as 2n pixels through the
    // shared MLP, the two results summed.
    let mut pooled = arena.take(2 * n * c);
    pool2d::global_avg_pool(x, n, hw, c, &mut pooled[..n * c]);
    for b in 0..n {
        let mx = &mut pooled[(n + b) * c..][..c];
        mx.fill(f32::NEG_INFINITY);
        for px in x[b * hw * c..][..hw * c].chunks_exact(c) {
            for (m, &v) in mx.iter_mut().zip(px) {
                *m = m.max(v);
            }
        }
    }
    let rd = fc1.geom.out_ch;
    let mut mid = arena.take(2 * n * rd);
    fc1.forward(&pooled, 2 * n, 1, 1, &mut mid, None, false);
    let mut att = arena.take(2 * n * c);
    fc2.forward(&mid, 2 * n, 1, 1, &mut att, None, false);
    let (avg, max) = att.split_at_mut(n * c);
    for (a, m) in avg.iter_mut().zip(max.iter()) {
        *a = 1.0 / (1.0 + (-(*a + m)).exp());
    }
    kestrel_kernels::norm::scale_channels(x, n, hw, c, avg);
    arena.give(pooled);
    arena.give(mid);
    arena.give(att);
    // Spatial attention: per pixel [mean, max] over the channels, the conv (its sigmoid
    // included), and each pixel scaled by its gate.
    let mut desc = arena.take(2 * n * hw);
    for (d, px) in desc.chunks_exact_mut(2).zip(x.chunks_exact(c)) {
        let (sum, mx) = px.iter().fold((0f32, f32::NEG_INFINITY), |(sum, mx), &v| {
            (sum + v, mx.max(v))
        });
        d[0] = sum / c as f32;
        d[1] = mx;
    }
    let mut gate = arena.take(n * hw);
    spatial.forward(&desc, n, s.h, s.w, &mut gate, None, false);
    for (px, g) in x.chunks_exact_mut(c).zip(&gate) {
        px.iter_mut().for_each(|v| *v *= g);
    }
    arena.give(desc);
    arena.give(gate);
}

/// Rows a task of the Performer op takes.
const PERFORMER_ROWS_PER_TASK: usize = 64;

/// φ(u) = exp(w·u − |u|²/2)/√m for each of the rows `u` of width `e` that start every `stride`
/// floats of `x`, into `out` (`[rows, m]`); `wt` is wᵀ (`[e, m]`). Split across the pool by rows.
fn random_features(x: &[f32], stride: usize, e: usize, wt: &[f32], out: &mut [f32]) {
    let m = wt.len() / e;
    let inv_sqrt_m = 1.0 / (m as f32).sqrt();
    let per = PERFORMER_ROWS_PER_TASK;
    let tasks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(per * m).map(Mutex::new).collect();
    kestrel_kernels::threads::parallel_for(tasks.len(), |ti| {
        let mut o = tasks[ti].lock().unwrap_or_else(|e| e.into_inner());
        for (r, of) in o.chunks_exact_mut(m).enumerate() {
            let u = &x[(ti * per + r) * stride..][..e];
            let half_sq = 0.5 * u.iter().map(|v| v * v).sum::<f32>();
            // w·u as a sum of wᵀ's rows (runs over m lanes).
            of.fill(0.0);
            for (&ui, wr) in u.iter().zip(wt.chunks_exact(m)) {
                for (a, &b) in of.iter_mut().zip(wr) {
                    *a += ui * b;
                }
            }
            of.iter_mut()
                .for_each(|v| *v = (*v - half_sq).exp() * inv_sqrt_m);
        }
    });
}

/// One image's Performer attention (see [`Op::PerformerAttention`]): `kqv` `[t, 3·e]` to `out`
/// `[t, e]`, with `wt` = wᵀ (`[e, m]`) and `scratch` of at least 2·t·m + m·e + m floats.
fn performer_attention(
    kqv: &[f32],
    t: usize,
    e: usize,
    wt: &[f32],
    eps: f32,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let m = wt.len() / e;
    let (kp, rest) = scratch.split_at_mut(t * m);
    let (qp, rest) = rest.split_at_mut(t * m);
    let (kv, rest) = rest.split_at_mut(m * e);
    let ksum = &mut rest[..m];
    random_features(kqv, 3 * e, e, wt, kp);
    random_features(&kqv[e..], 3 * e, e, wt, qp);
    // Σ_s φ(k_s) v_sᵀ ([m, e]) and Σ_s φ(k_s) ([m]).
    kv.fill(0.0);
    ksum.fill(0.0);
    for s in 0..t {
        let v = &kqv[s * 3 * e + 2 * e..][..e];
        for (j, &k) in kp[s * m..][..m].iter().enumerate() {
            ksum[j] += k;
            for (a, &b) in kv[j * e..][..e].iter_mut().zip(v) {
                *a += k * b;
            }
        }
    }
    let (kv, ksum) = (&*kv, &*ksum);
    let per = PERFORMER_ROWS_PER_TASK;
    let tasks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(per * e).map(Mutex::new).collect();
    kestrel_kernels::threads::parallel_for(tasks.len(), |ti| {
        let mut o = tasks[ti].lock().unwrap_or_else(|e| e.into_inner());
        for (r, or) in o.chunks_exact_mut(e).enumerate() {
            let q = &qp[(ti * per + r) * m..][..m];
            let norm: f32 = q.iter().zip(ksum).map(|(a, b)| a * b).sum();
            or.fill(0.0);
            for (&qj, kvr) in q.iter().zip(kv.chunks_exact(e)) {
                for (a, &b) in or.iter_mut().zip(kvr) {
                    *a += qj * b;
                }
            }
            let inv = 1.0 / (norm + eps);
            or.iter_mut().for_each(|v| *v *= inv);
        }
    });
}

/// A model compiled for the fast path.
pub struct Engine {
    ops: Vec<Op<PackedConv>>,
    last_use: Vec<usize>,
    in_ch: usize,
    output: Value,
    n_values: usize,
    /// Idle arenas: a run leases one (or makes one), so runs on several threads at once each
    /// have their own.
    arenas: Mutex<Vec<Arena>>,
    /// For each op: how many of the ops after it can run fused into it ([`Engine::fused_convs`]):
    /// 1 for an fp32 1×1 conv whose output only the next op, an fp32 depthwise conv, reads; 2
    /// when the depthwise output in turn feeds only an fp32 1×1 conv.
    fused: Vec<usize>,
    /// Per input size (h, w): the longest value one image makes, in floats.
    per_image_peak: Mutex<std::collections::HashMap<(usize, usize), usize>>,
}

/// A batch runs in chunks whose largest value holds about this many floats (4 MiB: the two
/// cores' L2 twice over, well inside the L3). Measured on mobilenetv2_100 at batch 32 (largest
/// value 1.2 M floats an image): one image at a time 77–95 img/s, whole batch 60–68.
const CHUNK_BUDGET_FLOATS: usize = 1 << 20;

/// How [`Engine::run_nchw_planned`] runs a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchPlan {
    /// Every op over the whole batch at once.
    Whole,
    /// Chunks of images sized to the cache, one after another, each op across all threads.
    Chunked,
    /// Cache-sized chunks, one per thread at a time, each chunk on a single thread (what
    /// `run_nchw` does; chunks left over when there are fewer than threads run as `Chunked`).
    Streamed,
}

/// A conv op's conv, input, whether it has no residual, and output.
fn conv_op(op: Option<&Op<PackedConv>>) -> Option<(&PackedKind, Value, bool, Value)> {
    match op {
        Some(Op::Conv {
            conv: PackedConv { kind, .. },
            x,
            residual,
            out,
            ..
        }) => Some((kind, *x, residual.is_none(), *out)),
        _ => None,
    }
}

/// A dense 1×1 conv op (fp32 or int8) as a fused block's expand or projection stage.
fn pointwise_op(op: Option<&Op<PackedConv>>) -> Option<(&dyn Pointwise, Value, bool, Value)> {
    let (kind, x, plain, out) = conv_op(op)?;
    let pw: &dyn Pointwise = match kind {
        PackedKind::F32(c) if c.is_dense_pointwise() => c,
        PackedKind::Int8(c) if c.is_dense_pointwise() => c,
        _ => return None,
    };
    Some((pw, x, plain, out))
}

/// An fp32 depthwise conv op (the fused block's middle stage).
fn depthwise_op(op: Option<&Op<PackedConv>>) -> Option<(&Conv2d, Value, bool, Value)> {
    match conv_op(op)? {
        (PackedKind::F32(c), x, plain, out) if c.is_depthwise() => Some((c, x, plain, out)),
        _ => None,
    }
}

/// Shape of an NHWC value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl Shape {
    fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
}

/// Time spent per op kind in one profiled run.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// (op name, seconds, multiply-accumulates)
    pub by_kind: Vec<(&'static str, f64, u64)>,
    /// Every op in graph order: (op name, what it computed, seconds, multiply-accumulates).
    pub by_op: Vec<(&'static str, String, f64, u64)>,
}

/// One conv's input as [`Engine::run_observed`] shows it.
pub struct ConvInput<'a> {
    /// NHWC values.
    pub values: &'a [f32],
    /// `[n, h, w, c]`.
    pub shape: [usize; 4],
    pub geom: &'a ConvGeometry,
}

impl Engine {
    /// Packs the graph's weights for the kernels.
    pub fn new(graph: &Graph) -> Engine {
        let mut last_use = vec![usize::MAX; graph.n_values];
        for (i, op) in graph.ops.iter().enumerate() {
            for v in op.inputs() {
                last_use[v] = i;
            }
        }
        let ops: Vec<Op<PackedConv>> = graph
            .ops
            .iter()
            .map(|op| op.map_conv(ConvSpec::pack))
            .collect();
        // Value v feeds op j alone.
        let only_into = |v: Value, j: usize| last_use[v] == j && v != graph.output;
        let fused = (0..ops.len())
            .map(|i| {
                let (Some((a, _, true, a_out)), Some((d, d_in, d_plain, d_out))) =
                    (pointwise_op(ops.get(i)), depthwise_op(ops.get(i + 1)))
                else {
                    return 0;
                };
                if d_in != a_out || !only_into(a_out, i + 1) || !fuses_with_depthwise(a, d) {
                    return 0;
                }
                match pointwise_op(ops.get(i + 2)) {
                    Some((p, p_in, _, _))
                        if d_plain
                            && p_in == d_out
                            && only_into(d_out, i + 2)
                            && p.in_ch() == d.geom.out_ch =>
                    {
                        2
                    }
                    _ => 1,
                }
            })
            .collect();
        Engine {
            ops,
            fused,
            last_use,
            in_ch: graph.in_ch,
            output: graph.output,
            n_values: graph.n_values,
            arenas: Mutex::default(),
            per_image_peak: Mutex::default(),
        }
    }

    /// The same engine with every conv run on its own (no expand → depthwise fusion): for
    /// measuring what the fusion buys.
    pub fn without_fusion(mut self) -> Engine {
        self.fused.iter_mut().for_each(|f| *f = 0);
        self
    }

    /// The convs op i runs fused: (expand, depthwise, the projection if fused too).
    #[allow(clippy::type_complexity)]
    fn fused_convs(&self, i: usize) -> Option<(&dyn Pointwise, &Conv2d, Option<&dyn Pointwise>)> {
        let pw = |j: usize| pointwise_op(self.ops.get(j)).map(|(c, ..)| c);
        let dw = depthwise_op(self.ops.get(i + 1)).map(|(c, ..)| c);
        match self.fused[i] {
            1 => Some((pw(i)?, dw?, None)),
            2 => Some((pw(i)?, dw?, Some(pw(i + 2)?))),
            _ => None,
        }
    }

    pub fn in_channels(&self) -> usize {
        self.in_ch
    }

    pub fn num_ops(&self) -> usize {
        self.ops.len()
    }

    /// Bytes of packed weights.
    pub fn weight_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Conv { conv, .. } => conv.weight_bytes(),
                Op::SqueezeExcite { reduce, expand, .. } => {
                    reduce.weight_bytes() + expand.weight_bytes()
                }
                Op::Cbam {
                    fc1, fc2, spatial, ..
                } => fc1.weight_bytes() + fc2.weight_bytes() + spatial.weight_bytes(),
                Op::PerformerAttention { w, .. } => 4 * w.len(),
                _ => 0,
            })
            .sum()
    }

    /// Runs NCHW images `x` (`[n, c, h, w]`, row-major) and returns the logits `[n, classes]`.
    pub fn run_nchw(
        &self,
        x: &[f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, String> {
        self.run_nchw_planned(x, [n, c, h, w], BatchPlan::Streamed)
    }

    /// [`Engine::run_nchw`] with the batch split as `plan` says (the logits do not depend on
    /// it: images are independent at inference).
    pub fn run_nchw_planned(
        &self,
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        plan: BatchPlan,
    ) -> Result<Vec<f32>, String> {
        if n <= 1 || plan == BatchPlan::Whole {
            return self.run_inner(x, n, c, h, w, None, None).map(|(v, _)| v);
        }
        self.check_input(x, n, c, h, w)?;
        // Inference treats images independently, so a batch runs in chunks small enough for
        // each layer's output to stay in cache: at batch 32 the whole batch's 112² maps are
        // ~150 MiB a layer, which every memory-bound pass (depthwise, 1×1 convs) then streams
        // from DRAM. The chunk follows from the largest value one image makes at this input
        // size, learnt from the first image the first time.
        let per = c * h * w;
        let known = self
            .per_image_peak
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(h, w))
            .copied();
        let (mut logits, done, peak) = match known {
            Some(p) => (Vec::new(), 0, p),
            None => {
                let (v, largest) = self.run_inner(&x[..per], 1, c, h, w, None, None)?;
                self.per_image_peak
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((h, w), largest);
                (v, 1, largest)
            }
        };
        let chunk = (CHUNK_BUDGET_FLOATS / peak.max(1)).clamp(1, n);
        let chunks: Vec<(usize, usize)> = (done..n)
            .step_by(chunk)
            .map(|b| (b, chunk.min(n - b)))
            .collect();
        // With a chunk for every thread, each thread runs whole chunks on its own (the kernels
        // run inline inside a pool task): no wake-up per layer, and no layer too small to
        // split. What is left over runs one chunk at a time across all threads.
        let threads = kestrel_kernels::threads::num_threads();
        let streamed = if threads > 1 && plan != BatchPlan::Chunked {
            chunks.len() / threads * threads
        } else {
            0
        };
        let run = |&(b, m): &(usize, usize)| {
            self.run_inner(&x[b * per..(b + m) * per], m, c, h, w, None, None)
                .map(|(v, _)| v)
        };
        let results: Vec<Mutex<Option<Result<Vec<f32>, String>>>> =
            (0..streamed).map(|_| Mutex::new(None)).collect();
        kestrel_kernels::threads::parallel_for(streamed, |i| {
            let r = run(&chunks[i]);
            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        for r in results {
            let r = r.into_inner().unwrap_or_else(|e| e.into_inner());
            logits.extend_from_slice(&r.expect("every task ran")?);
        }
        for ch in &chunks[streamed..] {
            logits.extend_from_slice(&run(ch)?);
        }
        Ok(logits)
    }

    /// As [`Engine::run_nchw`], showing `observe` the input of every [`Op::Conv`] before the
    /// conv runs, with the op's index: what calibration reads.
    pub fn run_observed(
        &self,
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        observe: &mut dyn FnMut(usize, ConvInput<'_>),
    ) -> Result<Vec<f32>, String> {
        self.run_inner(x, n, c, h, w, None, Some(observe))
            .map(|(v, _)| v)
    }

    /// How many convs run on int8 weights, of all convs.
    pub fn int8_convs(&self) -> (usize, usize) {
        let convs = self.ops.iter().filter_map(|op| match op {
            Op::Conv { conv, .. } => Some(conv.is_int8()),
            _ => None,
        });
        convs.fold((0, 0), |(q, all), is| (q + is as usize, all + 1))
    }

    /// As [`Engine::run_nchw`], timing each op kind.
    pub fn profile_nchw(
        &self,
        x: &[f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Profile, String> {
        let mut prof = Profile::default();
        self.run_inner(x, n, c, h, w, Some(&mut prof), None)?;
        Ok(prof)
    }

    fn check_input(&self, x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Result<(), String> {
        if c != self.in_ch {
            return Err(format!(
                "input has {c} channels; the model expects {}",
                self.in_ch
            ));
        }
        if x.len() != n * c * h * w {
            return Err(format!(
                "input holds {} values; [{n}, {c}, {h}, {w}] needs {}",
                x.len(),
                n * c * h * w
            ));
        }
        Ok(())
    }

    /// Runs the graph on `n` images; returns the logits and the largest value (in floats)
    /// any op made.
    fn run_inner(
        &self,
        x: &[f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        mut prof: Option<&mut Profile>,
        mut observe: Option<&mut dyn FnMut(usize, ConvInput<'_>)>,
    ) -> Result<(Vec<f32>, usize), String> {
        self.check_input(x, n, c, h, w)?;
        let mut arena = ArenaLease::new(&self.arenas);
        arena.largest = 0;
        let mut bufs: Vec<Option<Vec<f32>>> = (0..self.n_values).map(|_| None).collect();
        let mut shapes: Vec<Option<Shape>> = vec![None; self.n_values];
        // NCHW -> NHWC.
        let mut input = arena.take(x.len());
        for b in 0..n {
            for ch in 0..c {
                let plane = &x[(b * c + ch) * h * w..][..h * w];
                for (p, &v) in plane.iter().enumerate() {
                    input[(b * h * w + p) * c + ch] = v;
                }
            }
        }
        bufs[0] = Some(input);
        shapes[0] = Some(Shape { n, h, w, c });

        // How many of the next ops an op ran fused into itself.
        let mut run_by_previous = 0;
        for (i, op) in self.ops.iter().enumerate() {
            if run_by_previous > 0 {
                run_by_previous -= 1;
                for v in op.inputs() {
                    if self.last_use[v] == i && v != self.output {
                        if let Some(b) = bufs[v].take() {
                            arena.give(b);
                        }
                    }
                }
                continue;
            }
            let t0 = prof.as_ref().map(|_| std::time::Instant::now());
            let mut macs = 0u64;
            let mut detail = String::new();
            let mut kind = op.name();
            let shape_of = |v: Value, shapes: &[Option<Shape>]| {
                shapes[v].ok_or_else(|| {
                    format!("op {i} ({}) reads value {v} before it is made", op.name())
                })
            };
            match op {
                Op::Conv {
                    conv,
                    x,
                    residual,
                    add_after_act,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.c != conv.geom.in_ch {
                        return Err(format!(
                            "op {i} (conv): input has {} channels, the conv takes {}",
                            s.c, conv.geom.in_ch
                        ));
                    }
                    let (oh, ow) = conv.geom.output_hw(s.h, s.w).ok_or_else(|| {
                        format!(
                            "a {}×{} input is too small for a {:?} kernel at op {i}",
                            h, w, conv.geom.kernel
                        )
                    })?;
                    let os = Shape {
                        n,
                        h: oh,
                        w: ow,
                        c: conv.geom.out_ch,
                    };
                    let check_residual = |j: usize, r: &Option<Value>, want: Shape| match r {
                        Some(r) if shape_of(*r, &shapes)? != want => Err(format!(
                            "op {j} (conv): residual {:?} does not match output {want:?}",
                            shape_of(*r, &shapes)?
                        )),
                        _ => Ok(()),
                    };
                    check_residual(i, residual, os)?;
                    // An expand conv, the depthwise conv after it (and the projection after
                    // that) run as one pass where that pays (calibration needs every conv
                    // input materialised).
                    let fused = self.fused_convs(i).filter(|(pw, dw, _)| {
                        observe.is_none() && depthwise_fusion_pays(*pw, dw, n, s.h, s.w)
                    });
                    if let Some((pw32, dw32, pj32)) = fused {
                        let Op::Conv {
                            conv: dw,
                            out: dout,
                            ..
                        } = &self.ops[i + 1]
                        else {
                            unreachable!("fused_convs names convs")
                        };
                        let last = i + 1 + pj32.is_some() as usize;
                        let Op::Conv {
                            conv: lconv,
                            residual: lres,
                            add_after_act: lafter,
                            out: lout,
                            ..
                        } = &self.ops[last]
                        else {
                            unreachable!("fused_convs names convs")
                        };
                        let (dh, dwid) = dw.geom.output_hw(oh, ow).ok_or_else(|| {
                            format!("a {h}×{w} input is too small for op {}", i + 1)
                        })?;
                        let ls = Shape {
                            n,
                            h: dh,
                            w: dwid,
                            c: lconv.geom.out_ch,
                        };
                        check_residual(last, lres, ls)?;
                        let mut o = arena.take(ls.len());
                        let xb = bufs[*x].as_deref().expect("live input");
                        let rb = lres.map(|r| bufs[r].as_deref().expect("live residual"));
                        pointwise_then_depthwise(
                            pw32, dw32, pj32, xb, n, s.h, s.w, &mut o, rb, *lafter,
                        );
                        macs = (conv.geom.macs(s.h, s.w)
                            + dw.geom.macs(oh, ow)
                            + pj32.map_or(0, |p| (p.in_ch() * p.out_ch() * dh * dwid) as u64))
                            * n as u64;
                        if prof.is_some() {
                            kind = if pj32.is_some() {
                                "1x1 + depthwise + 1x1 (fused)"
                            } else {
                                "1x1 conv + depthwise (fused)"
                            };
                            detail = format!(
                                "1x1 {}->{} + {}x{} /{} dw{} at {}x{}{}",
                                conv.geom.in_ch,
                                conv.geom.out_ch,
                                dw.geom.kernel[0],
                                dw.geom.kernel[1],
                                dw.geom.stride[0],
                                pj32.map_or(String::new(), |p| format!(" + 1x1 ->{}", p.out_ch())),
                                dh,
                                dwid,
                                if lres.is_some() { " +res" } else { "" }
                            );
                        }
                        shapes[*out] = Some(os);
                        shapes[*dout] = Some(Shape {
                            c: dw.geom.out_ch,
                            ..ls
                        });
                        bufs[*lout] = Some(o);
                        shapes[*lout] = Some(ls);
                        run_by_previous = last - i;
                    } else {
                        let mut o = arena.take(os.len());
                        let xb = bufs[*x].as_deref().expect("live input");
                        let rb = residual.map(|r| bufs[r].as_deref().expect("live residual"));
                        if let Some(f) = observe.as_deref_mut() {
                            let shape = [n, s.h, s.w, s.c];
                            f(
                                i,
                                ConvInput {
                                    values: xb,
                                    shape,
                                    geom: &conv.geom,
                                },
                            );
                        }
                        conv.forward(xb, n, s.h, s.w, &mut o, rb, *add_after_act);
                        macs = conv.geom.macs(s.h, s.w) * n as u64;
                        if prof.is_some() {
                            let g = &conv.geom;
                            detail = format!(
                                "{}x{} /{} {}->{} at {}x{}{}",
                                g.kernel[0],
                                g.kernel[1],
                                g.stride[0],
                                g.in_ch,
                                g.out_ch,
                                oh,
                                ow,
                                if residual.is_some() { " +res" } else { "" }
                            );
                        }
                        bufs[*out] = Some(o);
                        shapes[*out] = Some(os);
                    }
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.h + 2 * pad[0] < kernel[0] || s.w + 2 * pad[1] < kernel[1] {
                        return Err(format!(
                            "a {h}×{w} input is too small for the max pool at op {i}"
                        ));
                    }
                    let oh = (s.h + 2 * pad[0] - kernel[0]) / stride[0] + 1;
                    let ow = (s.w + 2 * pad[1] - kernel[1]) / stride[1] + 1;
                    let os = Shape {
                        n,
                        h: oh,
                        w: ow,
                        c: s.c,
                    };
                    let mut o = arena.take(os.len());
                    pool2d::max_pool(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h,
                        s.w,
                        s.c,
                        *kernel,
                        *stride,
                        *pad,
                        &mut o,
                    );
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::GlobalAvgPool { x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let os = Shape {
                        n,
                        h: 1,
                        w: 1,
                        c: s.c,
                    };
                    let mut o = arena.take(os.len());
                    pool2d::global_avg_pool(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h * s.w,
                        s.c,
                        &mut o,
                    );
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::AvgPool {
                    kernel,
                    stride,
                    ceil_mode,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.h < kernel[0] || s.w < kernel[1] {
                        return Err(format!(
                            "a {h}×{w} input is too small for the avg pool at op {i}"
                        ));
                    }
                    let oh = pool2d::avg_pool_out(s.h, kernel[0], stride[0], *ceil_mode);
                    let ow = pool2d::avg_pool_out(s.w, kernel[1], stride[1], *ceil_mode);
                    let os = Shape {
                        n,
                        h: oh,
                        w: ow,
                        c: s.c,
                    };
                    let mut o = arena.take(os.len());
                    pool2d::avg_pool(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h,
                        s.w,
                        s.c,
                        *kernel,
                        *stride,
                        *ceil_mode,
                        &mut o,
                    );
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::AdaptiveAvgPool { out_hw, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let os = Shape {
                        n,
                        h: out_hw[0],
                        w: out_hw[1],
                        c: s.c,
                    };
                    let mut o = arena.take(os.len());
                    pool2d::adaptive_avg_pool(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h,
                        s.w,
                        s.c,
                        out_hw[0],
                        out_hw[1],
                        &mut o,
                    );
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::FlattenNchw { x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let os = Shape {
                        n,
                        h: 1,
                        w: 1,
                        c: s.c * s.h * s.w,
                    };
                    let mut o = arena.take(os.len());
                    pool2d::flatten_nchw(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h,
                        s.w,
                        s.c,
                        &mut o,
                    );
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::LayerNorm {
                    weight,
                    bias,
                    eps,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let mut b = bufs[*x].take().expect("live input");
                    kestrel_kernels::norm::layer_norm_rows(&mut b, s.c, weight, bias, *eps);
                    bufs[*out] = Some(b);
                    shapes[*out] = Some(s);
                }
                Op::SqueezeExcite {
                    reduce,
                    expand,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let mut b = bufs[*x].take().expect("live input");
                    rescale_by_pooled_gate(&mut arena, &mut b, s, |arena, mean, gate| {
                        let mut mid = arena.take(n * reduce.geom.out_ch);
                        reduce.forward(mean, n, 1, 1, &mut mid, None, false);
                        expand.forward(&mid, n, 1, 1, gate, None, false);
                        arena.give(mid);
                    });
                    bufs[*out] = Some(b);
                    shapes[*out] = Some(s);
                }
                Op::Eca { conv, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let mut b = bufs[*x].take().expect("live input");
                    rescale_by_pooled_gate(&mut arena, &mut b, s, |_, mean, gate| {
                        // [n, c] as n images of 1 × c pixels with one channel.
                        conv.forward(mean, n, 1, s.c, gate, None, false);
                    });
                    bufs[*out] = Some(b);
                    shapes[*out] = Some(s);
                }
                Op::Cbam {
                    fc1,
                    fc2,
                    spatial,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.c != fc1.geom.in_ch || spatial.geom.output_hw(s.h, s.w) != Some((s.h, s.w))
                    {
                        return Err(format!(
                            "op {i} (cbam): a {}×{}×{} map for a block of {} channels",
                            s.h, s.w, s.c, fc1.geom.in_ch
                        ));
                    }
                    let mut b = bufs[*x].take().expect("live input");
                    cbam(&mut arena, &mut b, s, fc1, fc2, spatial);
                    macs = (fc1.geom.macs(1, 1) + fc2.geom.macs(1, 1)) * 2 * n as u64
                        + spatial.geom.macs(s.h, s.w) * n as u64;
                    bufs[*out] = Some(b);
                    shapes[*out] = Some(s);
                }
                Op::PerformerAttention { w, eps, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let e = s.c / 3;
                    if s.c % 3 != 0 || e == 0 || w.len() % e != 0 {
                        return Err(format!(
                            "op {i} (performer attention): {} kqv channels for a random-feature \
                             projection of {} values",
                            s.c,
                            w.len()
                        ));
                    }
                    let m = w.len() / e;
                    let t = s.h * s.w;
                    let os = Shape { c: e, ..s };
                    let mut o = arena.take(os.len());
                    let xb = bufs[*x].as_deref().expect("live input");
                    let mut scratch = arena.take(2 * t * m + m * e + m);
                    // wᵀ, [e, m]: the random features as sums of its rows.
                    let wt: Vec<f32> = (0..e * m).map(|j| w[(j % m) * e + j / m]).collect();
                    for b in 0..n {
                        performer_attention(
                            &xb[b * t * s.c..][..t * s.c],
                            t,
                            e,
                            &wt,
                            *eps,
                            &mut scratch,
                            &mut o[b * t * e..][..t * e],
                        );
                    }
                    arena.give(scratch);
                    macs = (n * t * m * (2 * e + 2 * e + 1)) as u64;
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::AddAct { a, b, act, out } => {
                    let s = shape_of(*a, &shapes)?;
                    if shape_of(*b, &shapes)? != s {
                        return Err(format!("op {i} (add): operand shapes differ"));
                    }
                    let mut ab = bufs[*a].take().expect("live input");
                    let bb = bufs[*b].as_deref().expect("live input");
                    for (x, y) in ab.iter_mut().zip(bb) {
                        *x += *y;
                    }
                    act.apply_slice(&mut ab);
                    bufs[*out] = Some(ab);
                    shapes[*out] = Some(s);
                }
                Op::LayerNormCopy {
                    weight,
                    bias,
                    eps,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let mut o = arena.take(s.len());
                    o.copy_from_slice(bufs[*x].as_deref().expect("live input"));
                    kestrel_kernels::norm::layer_norm_rows(&mut o, s.c, weight, bias, *eps);
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(s);
                }
                Op::Tokens {
                    prefix,
                    pos_embed,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let d = s.c;
                    let p = prefix.len() / d;
                    let t = p + s.h * s.w;
                    if pos_embed.len() != t * d {
                        return Err(format!(
                            "a {h}×{w} input gives {} patches; the position embedding has {} \
                             (the model was built for another image size)",
                            s.h * s.w,
                            pos_embed.len() / d - p
                        ));
                    }
                    let os = Shape {
                        n,
                        h: 1,
                        w: t,
                        c: d,
                    };
                    let mut o = arena.take(os.len());
                    let xb = bufs[*x].as_deref().expect("live input");
                    for b in 0..n {
                        let img = &mut o[b * t * d..][..t * d];
                        img[..p * d].copy_from_slice(prefix);
                        img[p * d..].copy_from_slice(&xb[b * (t - p) * d..][..(t - p) * d]);
                        for (v, e) in img.iter_mut().zip(pos_embed) {
                            *v += e;
                        }
                    }
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::Attention { heads, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.c % (3 * heads) != 0 {
                        return Err(format!(
                            "op {i} (attention): {} qkv channels for {heads} heads",
                            s.c
                        ));
                    }
                    let d = s.c / 3;
                    let os = Shape { c: d, ..s };
                    let mut o = arena.take(os.len());
                    kestrel_kernels::attention::self_attention(
                        bufs[*x].as_deref().expect("live input"),
                        n * s.h,
                        s.w,
                        *heads,
                        d / heads,
                        &mut o,
                    );
                    macs = 2 * (n * s.h * s.w * s.w * d) as u64;
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::WindowAttention {
                    heads,
                    window,
                    shift,
                    bias,
                    mask,
                    pad_qkv,
                    map_hw,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let [wh, ww] = *window;
                    let wins = s.h.div_ceil(wh) * s.w.div_ceil(ww);
                    let n_tok = wh * ww;
                    if [s.h, s.w] != *map_hw || s.c != pad_qkv.len() {
                        return Err(format!(
                            "a {h}×{w} input gives a {}×{} map at op {i}, whose attention \
                             windows fit {}×{} (the model was built for another image size)",
                            s.h, s.w, map_hw[0], map_hw[1]
                        ));
                    }
                    let os = Shape { c: s.c / 3, ..s };
                    let mut o = arena.take(os.len());
                    kestrel_kernels::attention::WindowAttention {
                        heads: *heads,
                        window: *window,
                        shift: *shift,
                        bias,
                        mask: mask.as_deref(),
                        pad_qkv,
                    }
                    .run(
                        bufs[*x].as_deref().expect("live input"),
                        n,
                        s.h,
                        s.w,
                        &mut o,
                    );
                    macs = 2 * (n * wins * n_tok * n_tok * os.c) as u64;
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::MergePatches { x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let os = Shape {
                        n,
                        h: s.h.div_ceil(2),
                        w: s.w.div_ceil(2),
                        c: 4 * s.c,
                    };
                    let mut o = arena.take(os.len());
                    let xb = bufs[*x].as_deref().expect("live input");
                    let c = s.c;
                    for b in 0..n {
                        for y in 0..os.h {
                            for xo in 0..os.w {
                                let dst = ((b * os.h + y) * os.w + xo) * os.c;
                                // Block slot k = 2·dx + dy, as timm's cat order.
                                for (k, (dy, dx)) in
                                    [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate()
                                {
                                    let (iy, ix) = (2 * y + dy, 2 * xo + dx);
                                    let d = &mut o[dst + k * c..][..c];
                                    if iy < s.h && ix < s.w {
                                        d.copy_from_slice(
                                            &xb[((b * s.h + iy) * s.w + ix) * c..][..c],
                                        );
                                    } else {
                                        d.fill(0.0);
                                    }
                                }
                            }
                        }
                    }
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
                Op::GridToBlocks {
                    partition,
                    inverse,
                    x,
                    out,
                } => {
                    let s = shape_of(*x, &shapes)?;
                    let [ph, pw] = *partition;
                    if s.h % ph != 0 || s.w % pw != 0 {
                        return Err(format!(
                            "a {h}×{w} input gives a {}×{} map at op {i}, which the {ph}×{pw} \
                             grid partition does not divide (the model was built for another \
                             image size)",
                            s.h, s.w
                        ));
                    }
                    let (gh, gw) = (s.h / ph, s.w / pw);
                    let mut o = arena.take(s.len());
                    let xb = bufs[*x].as_deref().expect("live input");
                    let c = s.c;
                    for b in 0..n {
                        for (i_, a) in (0..ph).flat_map(|i_| (0..gh).map(move |a| (i_, a))) {
                            for (j, bb) in (0..pw).flat_map(|j| (0..gw).map(move |bb| (j, bb))) {
                                let grid = (b * s.h + i_ * gh + a) * s.w + j * gw + bb;
                                let block = (b * s.h + a * ph + i_) * s.w + bb * pw + j;
                                let (src, dst) = if *inverse {
                                    (block, grid)
                                } else {
                                    (grid, block)
                                };
                                o[dst * c..][..c].copy_from_slice(&xb[src * c..][..c]);
                            }
                        }
                    }
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(s);
                }
                Op::Reshape { hw, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    if s.h * s.w != hw[0] * hw[1] {
                        return Err(format!(
                            "a {h}×{w} input gives {} tokens at op {i}, not the {}×{} the model \
                             was built for (--img-size)",
                            s.h * s.w,
                            hw[0],
                            hw[1]
                        ));
                    }
                    let mut o = arena.take(s.len());
                    o.copy_from_slice(bufs[*x].as_deref().expect("live input"));
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(Shape {
                        h: hw[0],
                        w: hw[1],
                        ..s
                    });
                }
                Op::FirstTokens { count, x, out } => {
                    let s = shape_of(*x, &shapes)?;
                    let per = s.h * s.w;
                    if *count > per {
                        return Err(format!("op {i}: {count} tokens of {per}"));
                    }
                    let os = Shape {
                        n,
                        h: 1,
                        w: 1,
                        c: count * s.c,
                    };
                    let mut o = arena.take(os.len());
                    let xb = bufs[*x].as_deref().expect("live input");
                    for b in 0..n {
                        o[b * os.c..][..os.c].copy_from_slice(&xb[b * per * s.c..][..os.c]);
                    }
                    bufs[*out] = Some(o);
                    shapes[*out] = Some(os);
                }
            }
            // Release the buffers no later op reads.
            for v in op.inputs() {
                if self.last_use[v] == i && v != self.output {
                    if let Some(b) = bufs[v].take() {
                        arena.give(b);
                    }
                }
            }
            if let (Some(p), Some(t0)) = (prof.as_deref_mut(), t0) {
                let dt = t0.elapsed().as_secs_f64();
                p.by_op.push((kind, detail, dt, macs));
                match p.by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
                    Some(e) => {
                        e.1 += dt;
                        e.2 += macs;
                    }
                    None => p.by_kind.push((kind, dt, macs)),
                }
            }
        }
        shapes[self.output].ok_or("the graph's output was never computed")?;
        let out = bufs[self.output]
            .take()
            .ok_or("the graph's output was released")?;
        let logits = out.clone();
        arena.give(out);
        // Return the input too.
        if let Some(b) = bufs[0].take() {
            arena.give(b);
        }
        for b in bufs.into_iter().flatten() {
            arena.give(b);
        }
        Ok((logits, arena.largest))
    }
}
