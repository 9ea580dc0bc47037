//! ONNX export of a lowered [`Graph`].
//!
//! The engine's values are NHWC; ONNX's image ops are NCHW, so the exported graph is NCHW
//! throughout: input `input` `[batch, C, H, W]` (the batch a `batch` dim_param), output
//! `logits` `[batch, classes]`, opset 17. Weights are the graph's, BatchNorm already folded.
//!
//! Spatial sizes are fixed at export (`ExportMeta::input_size`): TF "same" padding and adaptive
//! pooling depend on them, and are written out as the explicit pads / kernels for that size.
//!
//! A quantized graph exports as QDQ ONNX: every int8 conv reads its input through
//! QuantizeLinear and DequantizeLinear (u8, so QuantizeLinear's saturation is the 0..255 range
//! of 8-bit activations), and its int8 weights through a per-channel DequantizeLinear, so that
//! the graph computes exactly what kestrel's int8 engine does (QuantizeLinear's rounding is the
//! engine's: divide, round half to even, add the zero point). 7-bit activations (`kestrel
//! quantize --act-bits 7`) put a Min with the top of their range before QuantizeLinear. The
//! convs stored in int8 but run in fp32 export their dequantized weights.
//!
//! One exception keeps the file correct in OpenVINO: an int8 conv with all-zero biases whose
//! output (no activation after it) is read by more than one op, e.g. the linear-bottleneck
//! output of a MobileNetV2 or EfficientNet at random init (BatchNorm folded from its default
//! statistics), both the next block's input and its residual, exports its weights as the fp32
//! values DequantizeLinear would make of them (`q as f32 * scale`, bit for bit), its input still
//! through QuantizeLinear and DequantizeLinear. OpenVINO 2026.4.1's CPU plugin otherwise runs
//! such a conv in int8 with its dequantization scale applied twice when the batch dimension is
//! dynamic. (For 7-bit inputs, the Min rather than a Clip with both bounds avoids a second such
//! bug: a Clip after a max pool of an int8 conv with zero biases and per-channel weight scales
//! is scaled per channel wrongly there.) scripts/openvino_qdq_repro.py has both; docs/deploy.md
//! the measurements. onnxruntime's logits are the same with either weight encoding (measured).

pub mod proto;

use std::fmt;

use kestrel_kernels::int8::ACT_MAX;
use kestrel_kernels::{Act, ConvGeometry};
use prost::Message;

use crate::engine::{ConvSpec, Graph, Op, Value};
use crate::quant::InputQuant;
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    attribute_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, DATA_TYPE_INT8, DATA_TYPE_UINT8,
};

/// The default-domain opset the export targets (LayerNormalization and HardSwish need ≥ 17/14).
pub const OPSET: i64 = 17;
/// IR version 8 is the one opset 17 shipped with (onnx 1.12); every current runtime reads it.
pub const IR_VERSION: i64 = 8;
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "logits";
pub const BATCH_DIM: &str = "batch";

/// What the exported file says about the model besides its graph.
#[derive(Clone, Debug)]
pub struct ExportMeta {
    /// Registry model name (becomes the graph name).
    pub model_name: String,
    /// (channels, height, width) the export is specialised for.
    pub input_size: [usize; 3],
    /// Extra `metadata_props` (preprocessing: mean, std, crop_pct, interpolation, ...).
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// An op, or an op configuration, with no ONNX lowering here.
    Unsupported {
        op_index: usize,
        op: String,
        why: String,
    },
    /// The graph does not fit the requested input size (or is malformed).
    Shape(String),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Unsupported { op_index, op, why } => {
                write!(
                    f,
                    "ONNX export: op {op_index} ({op}) has no ONNX lowering: {why}"
                )
            }
            ExportError::Shape(why) => write!(f, "ONNX export: {why}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// Exports `graph` as a serialized ONNX `ModelProto`.
pub fn export(graph: &Graph, meta: &ExportMeta) -> Result<Vec<u8>, ExportError> {
    Ok(export_model(graph, meta)?.encode_to_vec())
}

/// Parses an ONNX file's bytes back into the same message types (for checks and tools).
pub fn decode(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}

/// As [`export`], returning the message itself.
pub fn export_model(graph: &Graph, meta: &ExportMeta) -> Result<ModelProto, ExportError> {
    let [c, h, w] = meta.input_size;
    if c != graph.in_ch {
        return Err(ExportError::Shape(format!(
            "input size has {c} channels; the model takes {}",
            graph.in_ch
        )));
    }
    let mut b = Builder::default();
    let mut names: Vec<Option<String>> = vec![None; graph.n_values];
    // Per value: (channels, height, width) in NCHW, the batch left dynamic.
    let mut shapes: Vec<Option<[usize; 3]>> = vec![None; graph.n_values];
    names[0] = Some(INPUT_NAME.to_string());
    shapes[0] = Some([c, h, w]);
    // How many ops (and the graph's output) read each value.
    let mut reads = vec![0usize; graph.n_values];
    for v in graph
        .ops
        .iter()
        .flat_map(|op| op.inputs())
        .chain([graph.output])
    {
        if let Some(r) = reads.get_mut(v) {
            *r += 1;
        }
    }

    for (i, op) in graph.ops.iter().enumerate() {
        let unsupported = |why: String| ExportError::Unsupported {
            op_index: i,
            op: op.name().to_string(),
            why,
        };
        let get = |v: Value| -> Result<(String, [usize; 3]), ExportError> {
            match (&names[v], shapes[v]) {
                (Some(n), Some(s)) => Ok((n.clone(), s)),
                _ => Err(ExportError::Shape(format!(
                    "op {i} reads value {v} before it is made"
                ))),
            }
        };
        let (out_name, out_shape) = match op {
            Op::Conv {
                conv,
                x,
                residual,
                add_after_act,
                out,
            } => {
                let (xn, s) = get(*x)?;
                // The conv node's own output is the op's when nothing follows it (OpenVINO
                // runs the pattern right when any bias is non-zero: measured, the repro script).
                let shared_output = conv.act == Act::Identity
                    && residual.is_none()
                    && reads.get(*out).is_some_and(|&r| r > 1)
                    && conv.bias.iter().all(|&b| b == 0.0);
                let weights = if shared_output {
                    Weights::Dequantized
                } else {
                    Weights::Int8
                };
                let (y, ys) = b.conv_with(conv, &xn, s, weights).map_err(unsupported)?;
                match residual {
                    None => (b.act(conv.act, &y).map_err(unsupported)?, ys),
                    Some(r) => {
                        let (rn, rs) = get(*r)?;
                        if rs != ys {
                            return Err(ExportError::Shape(format!(
                                "op {i} (conv): residual {rs:?} does not match output {ys:?}"
                            )));
                        }
                        let y = if *add_after_act {
                            let a = b.act(conv.act, &y).map_err(unsupported)?;
                            b.node("Add", &[&a, &rn], vec![])
                        } else {
                            let sum = b.node("Add", &[&y, &rn], vec![]);
                            b.act(conv.act, &sum).map_err(unsupported)?
                        };
                        (y, ys)
                    }
                }
            }
            Op::MaxPool {
                kernel,
                stride,
                pad,
                x,
                ..
            } => {
                let (xn, [c, h, w]) = get(*x)?;
                if h + 2 * pad[0] < kernel[0] || w + 2 * pad[1] < kernel[1] {
                    return Err(ExportError::Shape(format!(
                        "a {h}×{w} input is too small for the max pool at op {i}"
                    )));
                }
                let oh = (h + 2 * pad[0] - kernel[0]) / stride[0] + 1;
                let ow = (w + 2 * pad[1] - kernel[1]) / stride[1] + 1;
                let y = b.node(
                    "MaxPool",
                    &[&xn],
                    vec![
                        ints("kernel_shape", kernel),
                        ints("strides", stride),
                        ints("pads", &[pad[0], pad[1], pad[0], pad[1]]),
                    ],
                );
                (y, [c, oh, ow])
            }
            Op::GlobalAvgPool { x, .. } => {
                let (xn, [c, _, _]) = get(*x)?;
                (b.node("GlobalAveragePool", &[&xn], vec![]), [c, 1, 1])
            }
            Op::AvgPool {
                kernel,
                stride,
                ceil_mode,
                x,
                ..
            } => {
                let (xn, [c, h, w]) = get(*x)?;
                if h < kernel[0] || w < kernel[1] {
                    return Err(ExportError::Shape(format!(
                        "a {h}×{w} input is too small for the avg pool at op {i}"
                    )));
                }
                // ONNX's count_include_pad defaults to 0: overhanging ceil-mode windows average
                // what they cover, as PyTorch's count_include_pad=False.
                let mut attrs = vec![ints("kernel_shape", kernel), ints("strides", stride)];
                if *ceil_mode {
                    attrs.push(int("ceil_mode", 1));
                }
                let y = b.node("AveragePool", &[&xn], attrs);
                let out = |i: usize, a: usize| {
                    kestrel_kernels::pool2d::avg_pool_out(i, kernel[a], stride[a], *ceil_mode)
                };
                (y, [c, out(h, 0), out(w, 1)])
            }
            Op::AdaptiveAvgPool { out_hw, x, .. } => {
                let (xn, [c, h, w]) = get(*x)?;
                let y = if [h, w] == *out_hw {
                    xn
                } else if *out_hw == [1, 1] {
                    b.node("GlobalAveragePool", &[&xn], vec![])
                } else if h % out_hw[0] == 0 && w % out_hw[1] == 0 {
                    // Evenly divisible: PyTorch's bins are then a plain average pool.
                    let k = [h / out_hw[0], w / out_hw[1]];
                    b.node(
                        "AveragePool",
                        &[&xn],
                        vec![ints("kernel_shape", &k), ints("strides", &k)],
                    )
                } else {
                    return Err(unsupported(format!(
                        "adaptive average pooling from {h}×{w} to {}×{} (uneven bins)",
                        out_hw[0], out_hw[1]
                    )));
                };
                (y, [c, out_hw[0], out_hw[1]])
            }
            Op::FlattenNchw { x, .. } => {
                let (xn, [c, h, w]) = get(*x)?;
                // The engine's [n, 1, 1, c·h·w] NHWC is [n, c·h·w, 1, 1] in NCHW; ONNX's
                // row-major reshape of NCHW is PyTorch's flatten order already.
                let shape = b.int64_const(&[0, -1, 1, 1]);
                (b.node("Reshape", &[&xn, &shape], vec![]), [c * h * w, 1, 1])
            }
            Op::LayerNorm {
                weight,
                bias,
                eps,
                x,
                ..
            }
            | Op::LayerNormCopy {
                weight,
                bias,
                eps,
                x,
                ..
            } => {
                let (xn, s) = get(*x)?;
                if weight.len() != s[0] || bias.len() != s[0] {
                    return Err(ExportError::Shape(format!(
                        "op {i} (layer norm): {} weights for {} channels",
                        weight.len(),
                        s[0]
                    )));
                }
                // Normalise over channels: move them last, LayerNormalization on axis -1, back.
                let t = b.node("Transpose", &[&xn], vec![ints("perm", &[0, 2, 3, 1])]);
                let wn = b.float_init("ln_weight", &[weight.len()], weight);
                let bn = b.float_init("ln_bias", &[bias.len()], bias);
                let n = b.node(
                    "LayerNormalization",
                    &[&t, &wn, &bn],
                    vec![int("axis", -1), float("epsilon", *eps)],
                );
                (
                    b.node("Transpose", &[&n], vec![ints("perm", &[0, 3, 1, 2])]),
                    s,
                )
            }
            Op::SqueezeExcite {
                reduce, expand, x, ..
            } => {
                let (xn, s) = get(*x)?;
                let mean = b.node("GlobalAveragePool", &[&xn], vec![]);
                let (r, rs) = b.conv(reduce, &mean, [s[0], 1, 1]).map_err(unsupported)?;
                let r = b.act(reduce.act, &r).map_err(unsupported)?;
                let (g, _) = b.conv(expand, &r, rs).map_err(unsupported)?;
                let g = b.act(expand.act, &g).map_err(unsupported)?;
                (b.node("Mul", &[&xn, &g], vec![]), s)
            }
            Op::Eca { conv, x, .. } => {
                let (xn, s) = get(*x)?;
                let mean = b.node("GlobalAveragePool", &[&xn], vec![]);
                // The engine runs the 1-D conv across channels as a 1 × k conv over a 1 × c
                // image with one channel: the same in ONNX, via [n, 1, 1, c].
                let row_shape = b.int64_const(&[0, 1, 1, -1]);
                let row = b.node("Reshape", &[&mean, &row_shape], vec![]);
                let (g, gs) = b.conv(conv, &row, [1, 1, s[0]]).map_err(unsupported)?;
                if gs != [1, 1, s[0]] {
                    return Err(ExportError::Shape(format!(
                        "op {i} (eca): gate shape {gs:?} for {} channels",
                        s[0]
                    )));
                }
                let g = b.act(conv.act, &g).map_err(unsupported)?;
                let back_shape = b.int64_const(&[0, -1, 1, 1]);
                let g = b.node("Reshape", &[&g, &back_shape], vec![]);
                (b.node("Mul", &[&xn, &g], vec![]), s)
            }
            Op::Cbam {
                fc1,
                fc2,
                spatial,
                x,
                ..
            } => {
                let (xn, s) = get(*x)?;
                // Channel attention: the shared MLP on both pooled descriptors, summed.
                let mlp = |b: &mut Builder, pooled: &str| -> Result<String, String> {
                    let (r, rs) = b.conv(fc1, pooled, [s[0], 1, 1])?;
                    let r = b.act(fc1.act, &r)?;
                    let (a, _) = b.conv(fc2, &r, rs)?;
                    b.act(fc2.act, &a)
                };
                let avg = b.node("GlobalAveragePool", &[&xn], vec![]);
                let max = b.node("GlobalMaxPool", &[&xn], vec![]);
                let a = mlp(&mut b, &avg).map_err(unsupported)?;
                let m = mlp(&mut b, &max).map_err(unsupported)?;
                let sum = b.node("Add", &[&a, &m], vec![]);
                let gate = b.node("Sigmoid", &[&sum], vec![]);
                let xc = b.node("Mul", &[&xn, &gate], vec![]);
                // Spatial attention on [mean, max] over the channels (opset 17: axes attributes).
                let keep = || vec![ints("axes", &[1]), int("keepdims", 1)];
                let mean = b.node("ReduceMean", &[&xc], keep());
                let max = b.node("ReduceMax", &[&xc], keep());
                let desc = b.node("Concat", &[&mean, &max], vec![int("axis", 1)]);
                let (g, gs) = b
                    .conv(spatial, &desc, [2, s[1], s[2]])
                    .map_err(unsupported)?;
                if gs != [1, s[1], s[2]] {
                    return Err(ExportError::Shape(format!(
                        "op {i} (cbam): spatial gate {gs:?} for a {}×{} map",
                        s[1], s[2]
                    )));
                }
                let g = b.act(spatial.act, &g).map_err(unsupported)?;
                (b.node("Mul", &[&xc, &g], vec![]), s)
            }
            // [n, 3e, h, w] -> tokens [n, t, 3e]; k, q, v; φ by a MatMul with wᵀ; the linear
            // attention as two MatMuls and the normaliser; back to [n, e, h, w].
            Op::PerformerAttention { w, eps, x, .. } => {
                let (xn, [c3, h, wd]) = get(*x)?;
                let e = c3 / 3;
                if c3 % 3 != 0 || e == 0 || w.len() % e != 0 {
                    return Err(ExportError::Shape(format!(
                        "op {i} (performer attention): {c3} kqv channels for {} random-feature \
                         weights",
                        w.len()
                    )));
                }
                let m = w.len() / e;
                let t = h * wd;
                let flat = b.int64_const(&[0, c3 as i64, t as i64]);
                let tok = b.node("Reshape", &[&xn, &flat], vec![]);
                let tok = b.node("Transpose", &[&tok], vec![ints("perm", &[0, 2, 1])]);
                let axis2 = b.int64_const(&[2]);
                let part = |b: &mut Builder, k: usize| {
                    let (s0, s1) = (
                        b.int64_const(&[(k * e) as i64]),
                        b.int64_const(&[((k + 1) * e) as i64]),
                    );
                    b.node("Slice", &[&tok, &s0, &s1, &axis2], vec![])
                };
                let (k, q, v) = (part(&mut b, 0), part(&mut b, 1), part(&mut b, 2));
                // wᵀ: [e, m].
                let wt: Vec<f32> = (0..e * m).map(|j| w[(j % m) * e + j / m]).collect();
                let wt = b.float_init("random_features", &[e, m], &wt);
                let half = b.float_scalar(0.5);
                let inv_sqrt_m = b.float_scalar(1.0 / (m as f32).sqrt());
                let keep = int("keepdims", 1);
                let phi = |b: &mut Builder, u: &str| {
                    let wx = b.node("MatMul", &[u, &wt], vec![]);
                    let sq = b.node("Mul", &[u, u], vec![]);
                    let sq = b.node("ReduceSum", &[&sq, &axis2], vec![keep.clone()]);
                    let sq = b.node("Mul", &[&sq, &half], vec![]);
                    let d = b.node("Sub", &[&wx, &sq], vec![]);
                    let ex = b.node("Exp", &[&d], vec![]);
                    b.node("Mul", &[&ex, &inv_sqrt_m], vec![])
                };
                let (kp, qp) = (phi(&mut b, &k), phi(&mut b, &q));
                let axis1 = b.int64_const(&[1]);
                let ksum = b.node("ReduceSum", &[&kp, &axis1], vec![keep.clone()]);
                let norm = b.node("Mul", &[&qp, &ksum], vec![]);
                let norm = b.node("ReduceSum", &[&norm, &axis2], vec![keep.clone()]);
                let eps = b.float_scalar(*eps);
                let norm = b.node("Add", &[&norm, &eps], vec![]);
                let kpt = b.node("Transpose", &[&kp], vec![ints("perm", &[0, 2, 1])]);
                let kv = b.node("MatMul", &[&kpt, &v], vec![]);
                let y = b.node("MatMul", &[&qp, &kv], vec![]);
                let y = b.node("Div", &[&y, &norm], vec![]);
                let y = b.node("Transpose", &[&y], vec![ints("perm", &[0, 2, 1])]);
                let back = b.int64_const(&[0, e as i64, h as i64, wd as i64]);
                (b.node("Reshape", &[&y, &back], vec![]), [e, h, wd])
            }
            // The map is NCHW [n, c, h, w] here; windows are cut from its NHWC transpose.
            Op::WindowAttention {
                heads,
                window,
                shift,
                bias,
                mask,
                x,
                ..
            } => {
                let (xn, [c3, h, w]) = get(*x)?;
                let [wh, ww] = *window;
                if h % wh != 0 || w % ww != 0 {
                    return Err(unsupported(format!(
                        "a {h}×{w} map padded to whole {wh}×{ww} windows"
                    )));
                }
                let c = c3 / 3;
                let (nh, nw, tn) = (h / wh, w / ww, wh * ww);
                let (hh, dd) = (*heads as i64, (c / heads) as i64);
                let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<i64>>();
                // Cyclic shift along `axis` of NHWC: the rows from `s` on, then the first `s`.
                let roll = |b: &mut Builder, x: &str, axis: i64, s: usize, len: usize| {
                    if s == 0 {
                        return x.to_string();
                    }
                    let ax = b.int64_const(&[axis]);
                    let (a0, a1) = (b.int64_const(&[s as i64]), b.int64_const(&[len as i64]));
                    let (b0, b1) = (b.int64_const(&[0]), b.int64_const(&[s as i64]));
                    let hi = b.node("Slice", &[x, &a0, &a1, &ax], vec![]);
                    let lo = b.node("Slice", &[x, &b0, &b1, &ax], vec![]);
                    b.node("Concat", &[&hi, &lo], vec![int("axis", axis)])
                };
                let t = b.node("Transpose", &[&xn], vec![ints("perm", &[0, 2, 3, 1])]);
                let t = roll(&mut b, &t, 1, shift[0], h);
                let t = roll(&mut b, &t, 2, shift[1], w);
                let s6 = b.int64_const(&i64s(&[0, nh, wh, nw, ww, c3]));
                let t = b.node("Reshape", &[&t, &s6], vec![]);
                let t = b.node("Transpose", &[&t], vec![ints("perm", &[0, 1, 3, 2, 4, 5])]);
                // [windows·n, N, 3, heads, d] -> [3, windows·n, heads, N, d].
                let s5 = b.int64_const(&[-1, tn as i64, 3, hh, dd]);
                let t = b.node("Reshape", &[&t, &s5], vec![]);
                let t = b.node("Transpose", &[&t], vec![ints("perm", &[2, 0, 3, 1, 4])]);
                let head_shape = b.int64_const(&[-1, hh, tn as i64, dd]);
                let axis0 = b.int64_const(&[0]);
                let mut part = |k: i64| {
                    let (s0, s1) = (b.int64_const(&[k]), b.int64_const(&[k + 1]));
                    let sl = b.node("Slice", &[&t, &s0, &s1, &axis0], vec![]);
                    b.node("Reshape", &[&sl, &head_shape], vec![])
                };
                let (q, k, v) = (part(0), part(1), part(2));
                let kt = b.node("Transpose", &[&k], vec![ints("perm", &[0, 1, 3, 2])]);
                let sc = b.node("MatMul", &[&q, &kt], vec![]);
                let bn = b.float_init("rel_pos_bias", &[1, *heads, tn, tn], bias);
                let mut sc = b.node("Add", &[&sc, &bn], vec![]);
                if let Some(m) = mask {
                    let per_win = b.int64_const(&[-1, (nh * nw) as i64, hh, tn as i64, tn as i64]);
                    let s = b.node("Reshape", &[&sc, &per_win], vec![]);
                    let mn = b.float_init("attn_mask", &[1, nh * nw, 1, tn, tn], m);
                    let s = b.node("Add", &[&s, &mn], vec![]);
                    let back = b.int64_const(&[-1, hh, tn as i64, tn as i64]);
                    sc = b.node("Reshape", &[&s, &back], vec![]);
                }
                let a = b.node("Softmax", &[&sc], vec![int("axis", -1)]);
                let o = b.node("MatMul", &[&a, &v], vec![]);
                // [windows·n, heads, N, d] -> [n, nh, nw, wh, ww, c] -> [n, h, w, c].
                let o = b.node("Transpose", &[&o], vec![ints("perm", &[0, 2, 1, 3])]);
                // The batch is folded into the windows' leading dimension: -1 recovers it.
                let s6 = b.int64_const(&[-1, nh as i64, nw as i64, wh as i64, ww as i64, c as i64]);
                let o = b.node("Reshape", &[&o, &s6], vec![]);
                let o = b.node("Transpose", &[&o], vec![ints("perm", &[0, 1, 3, 2, 4, 5])]);
                let s4 = b.int64_const(&[-1, h as i64, w as i64, c as i64]);
                let o = b.node("Reshape", &[&o, &s4], vec![]);
                let o = roll(&mut b, &o, 1, (h - shift[0]) % h, h);
                let o = roll(&mut b, &o, 2, (w - shift[1]) % w, w);
                (
                    b.node("Transpose", &[&o], vec![ints("perm", &[0, 3, 1, 2])]),
                    [c, h, w],
                )
            }
            Op::MergePatches { x, .. } => {
                let (xn, [c, h, w]) = get(*x)?;
                if h % 2 + w % 2 > 0 {
                    return Err(unsupported(format!("patch merging of an odd {h}×{w} map")));
                }
                let axes = b.int64_const(&[2, 3]);
                let ends = b.int64_const(&[h as i64, w as i64]);
                let steps = b.int64_const(&[2, 2]);
                // timm's order: x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2].
                let parts: Vec<String> = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .into_iter()
                    .map(|(dy, dx)| {
                        let starts = b.int64_const(&[dy, dx]);
                        b.node("Slice", &[&xn, &starts, &ends, &axes, &steps], vec![])
                    })
                    .collect();
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                (
                    b.node("Concat", &refs, vec![int("axis", 1)]),
                    [4 * c, h / 2, w / 2],
                )
            }
            // [n, c, (ph, gh), (pw, gw)] <-> [n, c, (gh, ph), (gw, pw)]: the same swap both ways.
            Op::GridToBlocks {
                partition,
                inverse,
                x,
                ..
            } => {
                let (xn, [c, h, w]) = get(*x)?;
                let [ph, pw] = *partition;
                if h % ph != 0 || w % pw != 0 {
                    return Err(unsupported(format!(
                        "a {h}×{w} map that the {ph}×{pw} grid partition does not divide"
                    )));
                }
                let (gh, gw) = (h / ph, w / pw);
                let split = if *inverse {
                    [gh, ph, gw, pw]
                } else {
                    [ph, gh, pw, gw]
                };
                let [a, bb, cc, dd] = split.map(|v| v as i64);
                let s6 = b.int64_const(&[-1, c as i64, a, bb, cc, dd]);
                let t = b.node("Reshape", &[&xn, &s6], vec![]);
                let t = b.node("Transpose", &[&t], vec![ints("perm", &[0, 1, 3, 2, 5, 4])]);
                let s4 = b.int64_const(&[-1, c as i64, h as i64, w as i64]);
                (b.node("Reshape", &[&t, &s4], vec![]), [c, h, w])
            }
            // NCHW keeps the pixels row-major last, so the engine's reshape is ONNX's.
            Op::Reshape { hw, x, .. } => {
                let (xn, [c, h, w]) = get(*x)?;
                if h * w != hw[0] * hw[1] {
                    return Err(ExportError::Shape(format!(
                        "op {i} (reshape): a {h}×{w} map as {}×{}",
                        hw[0], hw[1]
                    )));
                }
                let s4 = b.int64_const(&[-1, c as i64, hw[0] as i64, hw[1] as i64]);
                (b.node("Reshape", &[&xn, &s4], vec![]), [c, hw[0], hw[1]])
            }
            // Tokens are NCHW [n, d, 1, t] here (the engine's NHWC [n, 1, t, d]).
            Op::Tokens {
                prefix,
                pos_embed,
                x,
                ..
            } => {
                let (xn, [d, gh, gw]) = get(*x)?;
                let p = prefix.len() / d;
                let t = p + gh * gw;
                if pos_embed.len() != t * d {
                    return Err(ExportError::Shape(format!(
                        "op {i} (tokens): a {gh}×{gw} patch grid and a position embedding of {} tokens",
                        pos_embed.len() / d
                    )));
                }
                // [t][d] -> [d][t]: channels first.
                let chan_first = |v: &[f32], tokens: usize| -> Vec<f32> {
                    (0..d * tokens)
                        .map(|k| v[(k % tokens) * d + k / tokens])
                        .collect()
                };
                let flat = b.int64_const(&[0, d as i64, 1, -1]);
                let patches = b.node("Reshape", &[&xn, &flat], vec![]);
                let pre = b.float_init("prefix_tokens", &[1, d, 1, p], &chan_first(prefix, p));
                // The prefix tokens broadcast over the (dynamic) batch.
                let shape = b.node("Shape", &[&xn], vec![]);
                let (zero, one) = (b.int64_const(&[0]), b.int64_const(&[1]));
                let batch = b.node("Slice", &[&shape, &zero, &one], vec![]);
                let rest = b.int64_const(&[d as i64, 1, p as i64]);
                let want = b.node("Concat", &[&batch, &rest], vec![int("axis", 0)]);
                let pre = b.node("Expand", &[&pre, &want], vec![]);
                let tokens = b.node("Concat", &[&pre, &patches], vec![int("axis", 3)]);
                let pos = b.float_init("pos_embed", &[1, d, 1, t], &chan_first(pos_embed, t));
                (b.node("Add", &[&tokens, &pos], vec![]), [d, 1, t])
            }
            Op::Attention { heads, x, .. } => {
                let (xn, [c3, one, t]) = get(*x)?;
                if one != 1 || c3 % (3 * heads) != 0 {
                    return Err(ExportError::Shape(format!(
                        "op {i} (attention): qkv of shape {c3}×{one}×{t} for {heads} heads"
                    )));
                }
                let (h, d) = (*heads as i64, (c3 / 3 / heads) as i64);
                let split = b.int64_const(&[0, 3, h, d, t as i64]);
                let qkv = b.node("Reshape", &[&xn, &split], vec![]);
                let axis1 = b.int64_const(&[1]);
                let head_shape = b.int64_const(&[0, h, d, t as i64]);
                // q, k and v as [n, heads, d, t].
                let mut part = |k: i64| {
                    let (s0, s1) = (b.int64_const(&[k]), b.int64_const(&[k + 1]));
                    let sl = b.node("Slice", &[&qkv, &s0, &s1, &axis1], vec![]);
                    b.node("Reshape", &[&sl, &head_shape], vec![])
                };
                let (q, k, v) = (part(0), part(1), part(2));
                let swap = || vec![ints("perm", &[0, 1, 3, 2])];
                let qt = b.node("Transpose", &[&q], swap());
                let scores = b.node("MatMul", &[&qt, &k], vec![]);
                let attn = b.node("Softmax", &[&scores], vec![int("axis", -1)]);
                let vt = b.node("Transpose", &[&v], swap());
                let o = b.node("MatMul", &[&attn, &vt], vec![]);
                let o = b.node("Transpose", &[&o], swap());
                let back = b.int64_const(&[0, h * d, 1, t as i64]);
                (b.node("Reshape", &[&o, &back], vec![]), [c3 / 3, 1, t])
            }
            Op::FirstTokens { count, x, .. } => {
                let (xn, [d, one, t]) = get(*x)?;
                if one != 1 || *count > t {
                    return Err(ExportError::Shape(format!(
                        "op {i}: the first {count} tokens of {d}×{one}×{t}"
                    )));
                }
                let (s0, s1, ax) = (
                    b.int64_const(&[0]),
                    b.int64_const(&[*count as i64]),
                    b.int64_const(&[3]),
                );
                let sl = b.node("Slice", &[&xn, &s0, &s1, &ax], vec![]);
                // [n, d, 1, count] -> [n, count, d, 1] -> [n, count·d, 1, 1]: token-major, as
                // the engine lays the tokens side by side.
                let tr = b.node("Transpose", &[&sl], vec![ints("perm", &[0, 3, 1, 2])]);
                let flat = b.int64_const(&[0, -1, 1, 1]);
                (b.node("Reshape", &[&tr, &flat], vec![]), [count * d, 1, 1])
            }
            Op::AddAct {
                a, b: other, act, ..
            } => {
                let (an, s) = get(*a)?;
                let (bn, bs) = get(*other)?;
                if s != bs {
                    return Err(ExportError::Shape(format!(
                        "op {i} (add): operand shapes {s:?} and {bs:?} differ"
                    )));
                }
                let sum = b.node("Add", &[&an, &bn], vec![]);
                (b.act(*act, &sum).map_err(unsupported)?, s)
            }
        };
        names[op.output()] = Some(out_name);
        shapes[op.output()] = Some(out_shape);
    }

    let (Some(last), Some([classes, oh, ow])) = (names[graph.output].clone(), shapes[graph.output])
    else {
        return Err(ExportError::Shape(
            "the graph's output is never computed".into(),
        ));
    };
    if (oh, ow) != (1, 1) {
        return Err(ExportError::Shape(format!(
            "the graph's output is {classes}×{oh}×{ow}, not [classes, 1, 1]"
        )));
    }
    // [batch, classes, 1, 1] -> [batch, classes] under the fixed output name.
    let flat = NodeProto {
        input: vec![last],
        output: vec![OUTPUT_NAME.to_string()],
        name: format!("n{}_Flatten", b.nodes.len()),
        op_type: "Flatten".into(),
        attribute: vec![int("axis", 1)],
        ..Default::default()
    };
    b.nodes.push(flat);

    let mut metadata_props = vec![
        entry("model", &meta.model_name),
        entry("input_size", &format!("{c},{h},{w}")),
        entry("layout", "NCHW"),
    ];
    metadata_props.extend(meta.metadata.iter().map(|(k, v)| entry(k, v)));
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "kestrel".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        model_version: 1,
        doc_string: format!("{} exported by kestrel (BatchNorm folded)", meta.model_name),
        graph: Some(GraphProto {
            node: b.nodes,
            name: meta.model_name.clone(),
            initializer: b.initializers,
            input: vec![tensor_info(
                INPUT_NAME,
                &[Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)],
            )],
            output: vec![tensor_info(OUTPUT_NAME, &[Dim::Batch, Dim::Fixed(classes)])],
            ..Default::default()
        }),
        metadata_props,
        ..Default::default()
    })
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn tensor_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam(BATCH_DIM.into()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: proto::DATA_TYPE_FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn entry(k: &str, v: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: v,
        ..Default::default()
    }
}

/// How an int8 conv's weights are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Weights {
    /// INT8 initializer through a per-channel DequantizeLinear.
    Int8,
    /// Their dequantized values as an fp32 initializer (an int8 conv with zero biases whose
    /// output several nodes read; see the module docs).
    Dequantized,
}

/// Accumulates nodes and initializers with unique names.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    counter: usize,
}

impl Builder {
    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    /// Appends `op_type(inputs)` and returns its (single) output's name.
    fn node(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op_type.to_ascii_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("n{}_{op_type}", self.nodes.len()),
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
        out
    }

    fn float_init(&mut self, stem: &str, dims: &[usize], v: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: proto::DATA_TYPE_FLOAT,
            name: name.clone(),
            // raw_data is little-endian by the ONNX spec, and the compact form every tool reads.
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn float_scalar(&mut self, v: f32) -> String {
        self.float_init("const", &[], &[v])
    }

    fn int64_const(&mut self, v: &[i64]) -> String {
        let name = self.fresh("shape");
        self.initializers.push(TensorProto {
            dims: vec![v.len() as i64],
            data_type: proto::DATA_TYPE_INT64,
            name: name.clone(),
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// A conv on an NCHW value of shape `s` (no activation): its output name and shape.
    fn conv(
        &mut self,
        conv: &ConvSpec,
        x: &str,
        s: [usize; 3],
    ) -> Result<(String, [usize; 3]), String> {
        self.conv_with(conv, x, s, Weights::Int8)
    }

    /// As [`Builder::conv`], an int8 conv's weights written as `weights` says.
    fn conv_with(
        &mut self,
        conv: &ConvSpec,
        x: &str,
        s: [usize; 3],
        weights: Weights,
    ) -> Result<(String, [usize; 3]), String> {
        let g: &ConvGeometry = &conv.geom;
        let [c, h, w] = s;
        if c != g.in_ch {
            return Err(format!(
                "input has {c} channels, the conv takes {}",
                g.in_ch
            ));
        }
        let (oh, ow) = g
            .output_hw(h, w)
            .ok_or_else(|| format!("a {h}×{w} input is too small for a {:?} kernel", g.kernel))?;
        // For TF "same" this is the padding for this input size (the export's fixed size).
        let [top, bottom, left, right] = g.pads(h, w);
        let want = g.out_ch * (g.in_ch / g.groups) * g.kernel[0] * g.kernel[1];
        if conv.weight.len() != want || conv.bias.len() != g.out_ch {
            return Err(format!(
                "{} weights and {} biases for a {:?} conv",
                conv.weight.len(),
                conv.bias.len(),
                g
            ));
        }
        let wdims = [g.out_ch, g.in_ch / g.groups, g.kernel[0], g.kernel[1]];
        let int8 = conv.quant.as_ref().and_then(|q| Some((q, q.input?)));
        let (x, wn) = match int8 {
            // Weights stored in int8 but computed in fp32 (depthwise) export their dequantized
            // values, which is what the engine computes with.
            None => (
                x.to_string(),
                self.float_init("weight", &wdims, &conv.weight),
            ),
            Some((q, input)) => {
                self.qdq_operands(x, input, &q.weight, &q.w_scale, &wdims, weights)?
            }
        };
        let bn = self.float_init("bias", &[g.out_ch], &conv.bias);
        let y = self.node(
            "Conv",
            &[&x, &wn, &bn],
            vec![
                ints("kernel_shape", &g.kernel),
                ints("strides", &g.stride),
                ints("dilations", &g.dilation),
                // ONNX order: begin of each spatial axis, then end of each.
                ints("pads", &[top, left, bottom, right]),
                int("group", g.groups as i64),
            ],
        );
        Ok((y, [g.out_ch, oh, ow]))
    }

    /// The QDQ form of an int8 conv's operands: the input through `QuantizeLinear` →
    /// `DequantizeLinear` with the calibrated scale and zero point (u8 saturation is the
    /// 8-bit range; a 7-bit range's top is first applied by a `Min`: at the bottom u8
    /// saturates at 0 itself, so a Clip's lower bound would change nothing, and OpenVINO
    /// 2026.4.1 mis-scales a Clip after a max pool of an int8 conv with zero biases), and the
    /// int8 weights through a per-output-channel `DequantizeLinear` (axis 0, zero points 0),
    /// or with [`Weights::Dequantized`] that DequantizeLinear's output itself as an fp32
    /// initializer. Returns the dequantized input's and weights' names.
    fn qdq_operands(
        &mut self,
        x: &str,
        input: InputQuant,
        weight: &[i8],
        w_scale: &[f32],
        wdims: &[usize; 4],
        weights: Weights,
    ) -> Result<(String, String), String> {
        if weight.len() != wdims.iter().product::<usize>() || w_scale.len() != wdims[0] {
            return Err(format!(
                "{} int8 weights and {} scales for weights of shape {wdims:?}",
                weight.len(),
                w_scale.len()
            ));
        }
        let (s, z) = (input.scale, input.zero);
        // u8 QuantizeLinear saturates at 0 and 255, the 8-bit range; a 7-bit range's top is
        // clipped first.
        let clipped = if input.max < ACT_MAX {
            let hi = self.float_scalar(s * (input.max - z) as f32);
            self.node("Min", &[x, &hi], vec![])
        } else {
            x.to_string()
        };
        let scale = self.float_scalar(s);
        let zero = self.byte_init("x_zero", DATA_TYPE_UINT8, &[], &[z]);
        let xq = self.node("QuantizeLinear", &[&clipped, &scale, &zero], vec![]);
        let xd = self.node("DequantizeLinear", &[&xq, &scale, &zero], vec![]);
        if weights == Weights::Dequantized {
            // DequantizeLinear's y = (q − 0) · scale[o], in f32.
            let per = weight.len() / wdims[0].max(1);
            let w: Vec<f32> = weight
                .iter()
                .enumerate()
                .map(|(k, &v)| v as f32 * w_scale[k / per])
                .collect();
            return Ok((xd, self.float_init("weight_dequantized", wdims, &w)));
        }
        let wq = self.byte_init(
            "weight_int8",
            DATA_TYPE_INT8,
            wdims,
            &weight.iter().map(|&v| v as u8).collect::<Vec<_>>(),
        );
        let ws = self.float_init("weight_scale", &[wdims[0]], w_scale);
        let wz = self.byte_init(
            "weight_zero",
            DATA_TYPE_INT8,
            &[wdims[0]],
            &vec![0; wdims[0]],
        );
        let wd = self.node("DequantizeLinear", &[&wq, &ws, &wz], vec![int("axis", 0)]);
        Ok((xd, wd))
    }

    /// A one-byte-per-element initializer (u8 or i8, by `data_type`).
    fn byte_init(&mut self, stem: &str, data_type: i32, dims: &[usize], v: &[u8]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data: v.to_vec(),
            ..Default::default()
        });
        name
    }

    /// `act(x)` as ONNX nodes (x itself for the identity).
    fn act(&mut self, act: Act, x: &str) -> Result<String, String> {
        Ok(match act {
            Act::Identity => x.to_string(),
            Act::Relu => self.node("Relu", &[x], vec![]),
            Act::Relu6 => {
                let lo = self.float_scalar(0.0);
                let hi = self.float_scalar(6.0);
                self.node("Clip", &[x, &lo, &hi], vec![])
            }
            Act::HardSwish => self.node("HardSwish", &[x], vec![]),
            // relu6(x + 3) / 6 = max(0, min(1, x/6 + 1/2)).
            Act::HardSigmoid => self.node(
                "HardSigmoid",
                &[x],
                vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
            ),
            Act::Sigmoid => self.node("Sigmoid", &[x], vec![]),
            Act::Silu => {
                let s = self.node("Sigmoid", &[x], vec![]);
                self.node("Mul", &[x, &s], vec![])
            }
            // Opset 17 has no Gelu op: x · ½ · (1 + erf(x / √2)), the exact form.
            Act::Gelu => {
                let inv_sqrt2 = self.float_scalar(std::f32::consts::FRAC_1_SQRT_2);
                let scaled = self.node("Mul", &[x, &inv_sqrt2], vec![]);
                let erf = self.node("Erf", &[&scaled], vec![]);
                let one = self.float_scalar(1.0);
                let onep = self.node("Add", &[&erf, &one], vec![]);
                let half = self.float_scalar(0.5);
                let hx = self.node("Mul", &[x, &half], vec![]);
                self.node("Mul", &[&hx, &onep], vec![])
            }
            Act::ScaledTanh => {
                let k = self.float_scalar(2.0 / 3.0);
                let scaled = self.node("Mul", &[x, &k], vec![]);
                let t = self.node("Tanh", &[&scaled], vec![]);
                let a = self.float_scalar(1.7159);
                self.node("Mul", &[&t, &a], vec![])
            }
            Act::Tanh => self.node("Tanh", &[x], vec![]),
            // ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
            Act::GeluTanh => {
                let x2 = self.node("Mul", &[x, x], vec![]);
                let x3 = self.node("Mul", &[&x2, x], vec![]);
                let c = self.float_scalar(0.044_715);
                let cx3 = self.node("Mul", &[&x3, &c], vec![]);
                let inner = self.node("Add", &[x, &cx3], vec![]);
                let k = self.float_scalar(0.797_884_6);
                let u = self.node("Mul", &[&inner, &k], vec![]);
                let t = self.node("Tanh", &[&u], vec![]);
                let one = self.float_scalar(1.0);
                let onep = self.node("Add", &[&t, &one], vec![]);
                let half = self.float_scalar(0.5);
                let hx = self.node("Mul", &[x, &half], vec![]);
                self.node("Mul", &[&hx, &onep], vec![])
            }
        })
    }
}
