//! Post-training static int8 quantization of a lowered [`Graph`].
//!
//! - Weights: symmetric int8 per output channel (±127).
//! - Activations: asymmetric per tensor in 8 bits (0..=[`ACT_MAX`]), or 7 bits
//!   ([`QuantOptions::act_bits`]: the AVX2 kernel without VNNI takes about 1.5x the time for
//!   exact 8-bit sums; onnxruntime's `reduce_range` drops the weights' bit instead, which
//!   costs per-channel weights more accuracy), one scale and zero point per conv input, from a
//!   calibration pass of the fp32 engine over a few batches ([`Calibration`]): the observed
//!   min/max, a percentile of a uniform sample of the values, or TensorRT's entropy (KL)
//!   threshold.
//! - Which ops: every ungrouped conv (1×1, 3×3, the stem, linears as 1×1 convs). Depthwise and
//!   grouped convs, the SE/ECA gates and the rest stay fp32; activations between ops are f32.
//! - Weight rounding ([`Rounding`]): to nearest, or GPTQ against each conv input's second
//!   moments (gathered with [`Calibration::with_second_moments`]).
//! - Bias correction (optional, [`quantize_graph_keeping`]): each conv's bias absorbs the mean
//!   shift that rounding its weights causes on the calibration inputs.
//!
//! [`save`] / [`load`] write and read the int8 model file: the graph's parameters by op index
//! (int8 weights + scales for quantized convs, f32 for the rest), so the file is about 4×
//! smaller than the fp32 one. Loading lowers the same architecture and replaces every
//! parameter, checking that the file was made for that model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kestrel_kernels::int8::{ACT_MAX, ACT_MAX_7BIT, WEIGHT_MAX};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::engine::{ConvInput, ConvSpec, Engine, Graph, Op};

/// How a conv's weights (and, for an int8 conv, its input) are quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvQuant {
    /// OIHW int8 weights: within ±[`WEIGHT_MAX`] for an int8 conv, ±127 for one stored int8.
    pub weight: Vec<i8>,
    /// Per output channel: `real = w_scale[o] · q`.
    pub w_scale: Vec<f32>,
    /// The int8 conv's input quantization; None for a conv whose weights are only *stored* in
    /// int8 (depthwise and grouped convs: the file shrinks, the conv runs fp32 on the
    /// dequantized weights).
    pub input: Option<InputQuant>,
}

/// A u8 activation: `real = scale · (q − zero)`, `q` in `0..=max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputQuant {
    pub scale: f32,
    pub zero: u8,
    /// [`ACT_MAX`] for 8-bit activations, [`ACT_MAX_7BIT`] for 7-bit.
    pub max: u8,
}

/// The largest quantized activation of `bits`-bit activations (7 or 8).
pub fn act_max(bits: u8) -> Result<u8, String> {
    match bits {
        8 => Ok(ACT_MAX),
        7 => Ok(ACT_MAX_7BIT),
        b => Err(format!("activations are 7 or 8 bits, not {b}")),
    }
}

/// What to tell a user who quantizes with `bits`-bit activations on this CPU, if anything:
/// without AVX-512 VNNI the exact 8-bit sums take more AVX2 instructions than 7-bit ones
/// (resnet50 at batch 1 on an AVX2-only AMD EPYC, medians of 5: fp32 76.5 ms, 8-bit 61.2,
/// 7-bit 40.8; docs/deploy.md).
pub fn act_bits_notice(bits: u8) -> Option<String> {
    (bits == 8 && !kestrel_kernels::avx512_vnni()).then(|| {
        "this CPU has no AVX-512 VNNI, where int8 convs with 8-bit activations take about \
         1.5x the time of 7-bit ones (resnet50: 1.25x faster than fp32, against 1.9x with \
         --act-bits 7), at some accuracy (EfficientNet-Lite0: 96.6% top-1 agreement with \
         fp32 at 8 bits, 94.8% at 7). On a CPU with VNNI both widths run alike."
            .to_string()
    })
}

/// The weight range of convs stored in int8 but run in fp32 (no kernel saturation to avoid).
pub const STORED_WEIGHT_MAX: i8 = 127;

/// How the activation ranges are chosen from the calibration data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// The 0.01th and 99.99th percentiles (outliers clipped).
    Percentile,
    /// TensorRT's entropy calibration: the |x| threshold that minimises the KL divergence
    /// between the value histogram and its 128-level quantized version.
    Entropy,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "percentile" => Ok(Method::Percentile),
            "entropy" => Ok(Method::Entropy),
            other => Err(format!(
                "unknown calibration method '{other}' (expected minmax, percentile or entropy)"
            )),
        }
    }
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
            Method::Entropy => "entropy",
        }
    }
}

/// Whether a conv of the graph runs in int8 once quantized.
pub fn quantizable(conv: &ConvSpec) -> bool {
    conv.geom.groups == 1
}

/// Symmetric per-output-channel quantization of OIHW weights to `±max`:
/// `scale[o] = max|w[o]| / max`.
pub fn quantize_weights(w: &[f32], out_ch: usize, max: i8) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / out_ch.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(out_ch);
    for row in w.chunks(per.max(1)) {
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero channel: any scale gives zeros.
        let lim = max as f32;
        let scale = if amax > 0.0 { amax / lim } else { 1.0 };
        q.extend(
            row.iter()
                .map(|v| (v / scale).round_ties_even().clamp(-lim, lim) as i8),
        );
        scales.push(scale);
    }
    (q, scales)
}

/// The scale and zero point (0..=`max`) of the range `[lo, hi]` (widened to hold 0, which must
/// be exact: zero padding and ReLU outputs are real zeros) in `max + 1` levels.
pub fn activation_params(lo: f32, hi: f32, max: u8) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let levels = max as f32;
    let scale = ((hi - lo) / levels).max(1e-8);
    let zero = (-lo / scale).round_ties_even().clamp(0.0, levels) as u8;
    (scale, zero)
}

/// The values of one conv input seen during calibration.
#[derive(Clone, Debug)]
struct Observed {
    min: f32,
    max: f32,
    /// A uniform sample of the values (reservoir sampling), for percentile and entropy.
    samples: Vec<f32>,
    seen: u64,
    /// Per input channel, the sum of the values and how many pixels were summed: the mean
    /// input that bias correction needs.
    channel_sums: Vec<f64>,
    pixels: u64,
    /// With [`Calibration::with_second_moments`]: the summed `p pᵀ` of sampled im2col rows.
    second: Option<SecondMoment>,
}

/// `Σ p pᵀ` over sampled im2col rows `p` of one conv's input, per group: `groups` row-major
/// `k × k` blocks, `k` being the weights per output channel (input channels of the group ×
/// taps, in OIHW order). What GPTQ weighs the rounding errors with.
#[derive(Clone, Debug)]
struct SecondMoment {
    groups: usize,
    k: usize,
    sum: Vec<f64>,
    rows: u64,
}

/// At most this many im2col values (groups × rows × k) per conv input per batch, for the
/// second moments: 16 MiB of f32.
const SECOND_MOMENT_VALUES: usize = 1 << 22;

/// Values sampled per conv input per batch, and kept per conv input in all.
const SAMPLES_PER_BATCH: usize = 8192;
const SAMPLES_KEPT: usize = 1 << 18;

/// Activation statistics of every conv input of a graph, gathered batch by batch.
pub struct Calibration {
    ops: BTreeMap<usize, Observed>,
    images: usize,
    rng: u64,
    second_moments: bool,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            ops: BTreeMap::new(),
            images: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            second_moments: false,
        }
    }
}

impl Calibration {
    /// Also gathers each conv input's second moments (sampled im2col rows), which
    /// [`Rounding::Gptq`] needs.
    pub fn with_second_moments(mut self) -> Self {
        self.second_moments = true;
        self
    }

    /// Runs `engine` (the fp32 graph) on one NCHW batch, recording every conv input.
    pub fn observe_batch(
        &mut self,
        engine: &Engine,
        x: &[f32],
        shape: [usize; 4],
    ) -> Result<(), String> {
        let Calibration {
            ops,
            rng,
            second_moments,
            ..
        } = self;
        let mut failed = None;
        engine.run_observed(x, shape, &mut |op, input| {
            let (values, channels) = (input.values, input.shape[3]);
            let o = ops.entry(op).or_insert_with(|| Observed {
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
                samples: Vec::new(),
                seen: 0,
                channel_sums: vec![0.0; channels],
                pixels: 0,
                second: None,
            });
            if *second_moments && failed.is_none() {
                if let Err(e) = add_second_moment(&mut o.second, &input, rng) {
                    failed = Some(format!("op {op} (conv): {e}"));
                }
            }
            for &v in values {
                // NaN-safe: a NaN input changes neither bound.
                o.min = o.min.min(v);
                o.max = o.max.max(v);
            }
            if o.channel_sums.len() == channels && channels > 0 {
                // NHWC: one pixel's channels are adjacent.
                for px in values.chunks_exact(channels) {
                    for (s, &v) in o.channel_sums.iter_mut().zip(px) {
                        *s += v as f64;
                    }
                }
                o.pixels += (values.len() / channels) as u64;
            }
            for _ in 0..SAMPLES_PER_BATCH.min(values.len()) {
                let v = values[next(rng) as usize % values.len()];
                o.seen += 1;
                if o.samples.len() < SAMPLES_KEPT {
                    o.samples.push(v);
                } else {
                    let j = next(rng) % o.seen;
                    if (j as usize) < SAMPLES_KEPT {
                        o.samples[j as usize] = v;
                    }
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        self.images += shape[0];
        Ok(())
    }

    /// `E[p pᵀ]` of op `op`'s im2col rows (`groups` row-major `k × k` blocks) and `k`, if
    /// second moments were gathered and are finite.
    pub fn second_moment(&self, op: usize) -> Option<(Vec<f64>, usize)> {
        let m = self.ops.get(&op)?.second.as_ref()?;
        let h: Vec<f64> = m.sum.iter().map(|v| v / m.rows.max(1) as f64).collect();
        (m.rows > 0 && h.iter().all(|v| v.is_finite())).then_some((h, m.k))
    }

    /// Images seen so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The mean of each input channel of op `op` over the calibration pixels, if it was
    /// observed with finite values.
    pub fn input_mean(&self, op: usize) -> Option<Vec<f32>> {
        let o = self.ops.get(&op)?;
        let mean: Vec<f32> = o
            .channel_sums
            .iter()
            .map(|s| (s / o.pixels.max(1) as f64) as f32)
            .collect();
        (o.pixels > 0 && mean.iter().all(|m| m.is_finite())).then_some(mean)
    }

    /// The range `[lo, hi]` chosen for the input of op `op`, if it was observed.
    pub fn range(&self, op: usize, method: Method, max: u8) -> Option<(f32, f32)> {
        let o = self.ops.get(&op)?;
        if !(o.min.is_finite() && o.max.is_finite()) {
            return None;
        }
        let mut s: Vec<f32> = o
            .samples
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if s.is_empty() || method == Method::MinMax {
            return Some((o.min, o.max));
        }
        Some(match method {
            Method::MinMax => unreachable!(),
            Method::Percentile => {
                s.sort_by(f32::total_cmp);
                let at = |q: f64| s[((q * s.len() as f64) as usize).min(s.len() - 1)];
                (at(1e-4).max(o.min), at(1.0 - 1e-4).min(o.max))
            }
            Method::Entropy => {
                // A non-negative tensor gets all max + 1 levels; a signed one about half on
                // each side.
                let all = max as usize + 1;
                let levels = if o.min >= 0.0 { all } else { all / 2 };
                let t = entropy_threshold(&s, levels);
                (o.min.max(-t), o.max.min(t))
            }
        })
    }
}

fn next(rng: &mut u64) -> u64 {
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *rng >> 17
}

/// TensorRT's entropy calibration on `|x|`: a 2048-bin histogram of `values`, the bin edge that
/// [`entropy_threshold_bin`] chooses.
pub fn entropy_threshold(values: &[f32], levels: usize) -> f32 {
    const BINS: usize = 2048;
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        return 0.0;
    }
    let width = amax / BINS as f32;
    let mut hist = vec![0f64; BINS];
    for v in values {
        hist[((v.abs() / width) as usize).min(BINS - 1)] += 1.0;
    }
    entropy_threshold_bin(&hist, levels, levels.min(BINS)) as f32 * width
}

/// The KL calibration of NVIDIA's pytorch-quantization (`_compute_amax_entropy`, TensorRT's
/// algorithm) on histogram `hist` of |x|: for every candidate threshold of `i ≥ start` bins, the
/// KL divergence between P, the first `i` bins with the outliers folded into the last, and Q,
/// those bins merged into `levels` levels, each level's mass spread over its non-empty bins.
/// Returns the `i` of least divergence (the last one on ties); the threshold is bin edge `i`.
///
/// Bin 0 is replaced by bin 1 first, as the reference does: a ReLU output's exact zeros (often
/// half the tensor) would otherwise dominate P, and the divergence would favour thresholds that
/// clip nearly everything else.
pub fn entropy_threshold_bin(hist: &[f64], levels: usize, start: usize) -> usize {
    let n = hist.len();
    let levels = levels.max(1);
    let mut bins = hist.to_vec();
    if n > 1 {
        bins[0] = bins[1];
    }
    let mut best = (f64::INFINITY, n);
    for i in start.clamp(1, n)..=n {
        let outliers: f64 = bins[i..].iter().sum();
        let mut p: Vec<f64> = bins[..i].to_vec();
        p[i - 1] += outliers;
        // Level of bin j: np.digitize over linspace(0, i, levels + 1), i.e. ⌊j·levels / i⌋
        // (exact in f64 for these sizes).
        let mut mass = vec![0f64; levels];
        let mut nonempty = vec![0usize; levels];
        for (j, &b) in bins[..i].iter().enumerate() {
            if b > 0.0 {
                let l = j * levels / i;
                mass[l] += b;
                nonempty[l] += 1;
            }
        }
        let q: Vec<f64> = bins[..i]
            .iter()
            .enumerate()
            .map(|(j, &b)| {
                let l = j * levels / i;
                if b > 0.0 {
                    mass[l] / nonempty[l] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if sp == 0.0 || sq == 0.0 {
            continue;
        }
        // scipy.stats.entropy(P, Q): infinite where Q is empty and P is not.
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(&pk, _)| pk > 0.0)
            .map(|(&pk, &qk)| {
                let (pk, qk) = (pk / sp, qk / sq);
                if qk == 0.0 {
                    f64::INFINITY
                } else {
                    pk * (pk / qk).ln()
                }
            })
            .sum();
        if kl <= best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// What [`quantize_graph`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantSummary {
    /// Convs (linears included) now computed in int8, of all convs; the others have their
    /// weights stored in int8.
    pub int8_convs: usize,
    pub convs: usize,
    /// The op indices of the quantizable convs kept in fp32 compute (weights stored in int8).
    pub fp32_convs: Vec<usize>,
}

/// Quantizes every [`quantizable`] conv of `graph` with the activation ranges of `calib`
/// (gathered on this graph's fp32 engine).
pub fn quantize_graph(
    graph: &mut Graph,
    calib: &Calibration,
    method: Method,
) -> Result<QuantSummary, String> {
    let opts = QuantOptions {
        method,
        ..QuantOptions::default()
    };
    quantize_graph_keeping(graph, calib, &opts)
}

/// `bias[o] −= Σ (rounded − weight)[o, c, ky, kx] · mean[c]` over the input channels `c` of
/// output `o`'s group (OIHW weights; `mean` has one value per input channel of the conv).
pub fn correct_bias(conv: &mut ConvSpec, rounded: &[f32], mean: &[f32]) -> Result<(), String> {
    let g = conv.geom;
    let in_per_group = g.in_ch / g.groups.max(1);
    let out_per_group = g.out_ch / g.groups.max(1);
    let taps = g.kernel[0] * g.kernel[1];
    if mean.len() != g.in_ch || rounded.len() != conv.weight.len() {
        return Err(format!(
            "bias correction: {} input means and {} rounded weights for a conv of {} input \
             channels and {} weights",
            mean.len(),
            rounded.len(),
            g.in_ch,
            conv.weight.len()
        ));
    }
    for o in 0..g.out_ch {
        let first = (o / out_per_group.max(1)) * in_per_group;
        let row = o * in_per_group * taps;
        let mut shift = 0f64;
        for c in 0..in_per_group {
            let at = row + c * taps;
            let dw: f64 = (at..at + taps)
                .map(|k| (rounded[k] - conv.weight[k]) as f64)
                .sum();
            shift += dw * mean[first + c] as f64;
        }
        conv.bias[o] -= shift as f32;
    }
    Ok(())
}

/// How [`quantize_graph_keeping`] rounds the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Each weight to the nearest level of its channel's scale.
    Nearest,
    /// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
    /// Pre-trained Transformers"; Optimal Brain Quantization's error feedback): the weights of
    /// an output channel are rounded one input position at a time, and each rounding error is
    /// spread over the positions not yet rounded through the inverse of the conv input's
    /// second moment `E[p pᵀ]`, so that `W_q · p` stays close to `W · p` on the calibration
    /// data. Needs [`Calibration::with_second_moments`].
    Gptq,
}

impl std::str::FromStr for Rounding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nearest" => Ok(Rounding::Nearest),
            "gptq" => Ok(Rounding::Gptq),
            other => Err(format!(
                "unknown rounding '{other}' (expected nearest or gptq)"
            )),
        }
    }
}

impl Rounding {
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Nearest => "nearest",
            Rounding::Gptq => "gptq",
        }
    }
}

/// Everything [`quantize_graph_keeping`] can be told besides the graph and the calibration.
#[derive(Clone, Debug)]
pub struct QuantOptions {
    pub method: Method,
    /// Op indices of convs to keep in fp32: a [`quantizable`] one keeps fp32 compute (its
    /// weights still stored in int8), a depthwise or grouped one (fp32 compute either way)
    /// keeps its fp32 weights.
    pub keep_fp32: Vec<usize>,
    /// Depthwise and grouped convs keep fp32 weights (not stored in int8).
    pub depthwise_fp32: bool,
    pub bias_correction: bool,
    pub rounding: Rounding,
    /// Quantizable convs whose dot products (input channels per group × taps) are shorter
    /// than this keep fp32 compute (weights stored in int8), as `keep_fp32` does: int8 does
    /// not pay there (an RGB stem's 27, a 16-channel 1×1), see [`INT8_MIN_DEPTH`]. 0 puts
    /// every quantizable conv in int8.
    pub min_depth: usize,
    /// Activation bits, 8 or 7 (see the module docs).
    pub act_bits: u8,
}

/// `kestrel quantize`'s default [`QuantOptions::min_depth`]: on mobilenetv2_100 (AVX-512
/// VNNI, batch 1) the 3×3 RGB stem (depth 27) took 0.31 ms in int8 against 0.18 ms in fp32;
/// the quantize pass over the input and the f32 epilogue cost more than the short integer
/// dot products save (docs/deploy.md).
pub const INT8_MIN_DEPTH: usize = 32;

/// The dot-product length of a conv: input channels per group × kernel taps.
pub fn depth(conv: &ConvSpec) -> usize {
    let g = conv.geom;
    g.in_ch / g.groups.max(1) * g.kernel[0] * g.kernel[1]
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            method: Method::MinMax,
            keep_fp32: Vec::new(),
            depthwise_fp32: false,
            bias_correction: false,
            rounding: Rounding::Nearest,
            min_depth: 0,
            act_bits: 8,
        }
    }
}

/// [`quantize_graph`] with options. The convs at op indices `keep_fp32` run in fp32 (their
/// weights are stored in int8, as a depthwise conv's are): the layers whose quantization hurts
/// most (see [`sensitivity`]). With `depthwise_fp32`, depthwise and grouped convs (fp32
/// compute either way) keep their fp32 weights too: on EfficientNet-Lite0 their int8 storage
/// alone moves the top-1 of 4.4% of the photo crops (docs/deploy.md), for a few percent of the
/// file.
///
/// With `bias_correction`, each conv whose weights are rounded has its bias shifted by
/// `−(W_q − W) · E[x]`, `E[x]` being its input's per-channel mean over the calibration pixels
/// (Nagel et al. 2019, "Data-Free Quantization", §4.2; OpenVINO NNCF's bias correction): the
/// rounding errors of a row of weights do not average out against inputs that are mostly
/// positive (after ReLU), so without it every output channel is shifted by a constant.
///
/// With [`Rounding::Gptq`], convs whose rows are longer than [`GPTQ_MAX_K`] weights, or whose
/// second moments are not finite, are rounded to nearest (the K³ factorisation would dominate
/// the quantize time).
pub fn quantize_graph_keeping(
    graph: &mut Graph,
    calib: &Calibration,
    opts: &QuantOptions,
) -> Result<QuantSummary, String> {
    if opts.rounding == Rounding::Gptq && !calib.second_moments {
        return Err("GPTQ rounding needs second moments; calibrate with \
             Calibration::with_second_moments"
            .to_string());
    }
    let a_max = act_max(opts.act_bits)?;
    let mut summary = QuantSummary {
        int8_convs: 0,
        convs: 0,
        fp32_convs: Vec::new(),
    };
    for (i, op) in graph.ops.iter_mut().enumerate() {
        let Op::Conv { conv, .. } = op else { continue };
        summary.convs += 1;
        if !quantizable(conv) && (opts.depthwise_fp32 || opts.keep_fp32.contains(&i)) {
            continue;
        }
        let unobserved =
            || format!("op {i} (conv) saw no finite calibration values; calibrate on real images");
        let int8 = !opts.keep_fp32.contains(&i) && depth(conv) >= opts.min_depth;
        let (max, input) = if quantizable(conv) && int8 {
            let (lo, hi) = calib.range(i, opts.method, a_max).ok_or_else(unobserved)?;
            let (scale, zero) = activation_params(lo, hi, a_max);
            summary.int8_convs += 1;
            let input = InputQuant {
                scale,
                zero,
                max: a_max,
            };
            (WEIGHT_MAX, Some(input))
        } else {
            if quantizable(conv) {
                summary.fp32_convs.push(i);
            }
            (STORED_WEIGHT_MAX, None)
        };
        let g = conv.geom;
        let k = depth(conv);
        // A conv whose moments are not finite (NaN inputs) rounds to nearest.
        let moments = (opts.rounding == Rounding::Gptq && k <= GPTQ_MAX_K)
            .then(|| calib.second_moment(i))
            .flatten();
        let (weight, w_scale) = match moments {
            Some((_, hk)) if hk != k => {
                return Err(format!(
                    "op {i} (conv): second moments of {hk}-long rows for a conv of {k} weights \
                     per output channel"
                ))
            }
            Some((h, _)) => gptq_weights(&conv.weight, g.out_ch, g.groups.max(1), &h, max),
            None => quantize_weights(&conv.weight, g.out_ch, max),
        };
        let rounded = dequantize(&weight, &w_scale);
        if opts.bias_correction {
            let mean = calib.input_mean(i).ok_or_else(unobserved)?;
            correct_bias(conv, &rounded, &mean).map_err(|e| format!("op {i} (conv): {e}"))?;
        }
        conv.weight = rounded;
        conv.quant = Some(ConvQuant {
            weight,
            w_scale,
            input,
        });
    }
    Ok(summary)
}

/// The longest output-channel row (input channels per group × taps) that [`Rounding::Gptq`]
/// factorises; longer rows round to nearest.
pub const GPTQ_MAX_K: usize = 2304;

/// GPTQ's dampening: `λ = 0.01 · mean(diag H)` added to the diagonal (the GPTQ paper's value),
/// which keeps the factorisation stable where inputs are nearly collinear.
const GPTQ_DAMP: f64 = 0.01;

/// Weights `w` (OIHW, `out_ch` rows in `groups` equal groups) rounded by GPTQ to `±max` with
/// [`quantize_weights`]' per-channel scales, against `h`: `groups` row-major `k × k` second
/// moments of the input's im2col rows. Returns the int8 weights and the scales.
pub fn gptq_weights(
    w: &[f32],
    out_ch: usize,
    groups: usize,
    h: &[f64],
    max: i8,
) -> (Vec<i8>, Vec<f32>) {
    let (nearest, scales) = quantize_weights(w, out_ch, max);
    let k = w.len() / out_ch.max(1);
    let per = out_ch / groups.max(1);
    if k == 0 || per * groups != out_ch || h.len() != groups * k * k {
        return (nearest, scales);
    }
    let lim = max as f64;
    let mut q = vec![0i8; w.len()];
    for g in 0..groups {
        let rows = g * per..(g + 1) * per;
        let Some(u) = inverse_hessian_factor(&h[g * k * k..(g + 1) * k * k], k) else {
            // Not positive definite even after dampening: nearest for this group.
            let at = rows.start * k..rows.end * k;
            q[at.clone()].copy_from_slice(&nearest[at]);
            continue;
        };
        // Rows are independent once U is known.
        use rayon::prelude::*;
        q[rows.start * k..rows.end * k]
            .par_chunks_mut(k)
            .zip(rows)
            .for_each(|(qo, o)| {
                let mut row: Vec<f64> = w[o * k..(o + 1) * k].iter().map(|&v| v as f64).collect();
                let s = scales[o] as f64;
                for j in 0..k {
                    let level = (row[j] / s).round_ties_even().clamp(-lim, lim);
                    qo[j] = level as i8;
                    let err = (row[j] - level * s) / u[j * k + j];
                    let uj = &u[j * k..(j + 1) * k];
                    for (r, &uv) in row[j + 1..].iter_mut().zip(&uj[j + 1..]) {
                        *r -= err * uv;
                    }
                }
            });
    }
    (q, scales)
}

/// The upper Cholesky factor `U` of `(H + λI)⁻¹` (`U` row-major, `(H + λI)⁻¹ = Uᵀ U`), for
/// a row-major `k × k` second moment `h`; columns that never saw a value get a unit diagonal.
/// None if the dampened matrix is not positive definite.
///
/// With `P` the index reversal and `C` the lower Cholesky factor of `P H P`,
/// `U = P C⁻¹ P`: `Uᵀ U = P (C Cᵀ)⁻¹ P = H⁻¹`, one factorisation and one triangular inverse
/// instead of an inverse and a second factorisation.
fn inverse_hessian_factor(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
    let damp = GPTQ_DAMP * mean_diag.max(1e-12);
    let mut a = vec![0f64; k * k];
    for r in 0..k {
        for c in 0..k {
            a[r * k + c] = h[(k - 1 - r) * k + (k - 1 - c)];
        }
        if a[r * k + r] <= 0.0 {
            a[r * k + r] = 1.0;
        }
        a[r * k + r] += damp;
    }
    let l = cholesky_lower(&a, k)?;
    // C⁻¹ row by row: row r = (e_r − Σ_{m<r} C[r][m] · row m) / C[r][r].
    let mut li = vec![0f64; k * k];
    for r in 0..k {
        let (done, rest) = li.split_at_mut(r * k);
        let row = &mut rest[..k];
        for m in 0..r {
            let f = l[r * k + m];
            for (x, &y) in row[..=m].iter_mut().zip(&done[m * k..m * k + m + 1]) {
                *x -= f * y;
            }
        }
        row[r] = 1.0;
        let d = l[r * k + r];
        row[..=r].iter_mut().for_each(|x| *x /= d);
    }
    let mut u = vec![0f64; k * k];
    for r in 0..k {
        for c in r..k {
            u[r * k + c] = li[(k - 1 - r) * k + (k - 1 - c)];
        }
    }
    Some(u)
}

/// `Σ a[i]·b[i]` with four partial sums, so the compiler vectorises it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The lower Cholesky factor of a row-major symmetric `k × k` matrix, or None if it is not
/// positive definite.
fn cholesky_lower(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; k * k];
    for r in 0..k {
        for c in 0..=r {
            let s = dot(&l[r * k..r * k + c], &l[c * k..c * k + c]);
            if r == c {
                let d = a[r * k + r] - s;
                if !(d > 0.0) {
                    return None;
                }
                l[r * k + r] = d.sqrt();
            } else {
                l[r * k + c] = (a[r * k + c] - s) / l[c * k + c];
            }
        }
    }
    Some(l)
}

/// Adds sampled im2col rows of one conv input to `second` (created on first use): up to
/// [`SECOND_MOMENT_VALUES`] values per call, output positions drawn uniformly.
fn add_second_moment(
    second: &mut Option<SecondMoment>,
    input: &ConvInput<'_>,
    rng: &mut u64,
) -> Result<(), String> {
    let geom = input.geom;
    let [n, h, w, c] = input.shape;
    let groups = geom.groups.max(1);
    let cg = geom.in_ch / groups;
    let [kh, kw] = geom.kernel;
    let k = cg * kh * kw;
    if c != geom.in_ch || input.values.len() != n * h * w * c || k == 0 {
        return Err(format!(
            "an input of {c} channels ({} values for [{n}, {h}, {w}, {c}]) for a conv of {} \
             input channels",
            input.values.len(),
            geom.in_ch
        ));
    }
    let Some((oh, ow)) = geom.output_hw(h, w) else {
        return Ok(());
    };
    let positions = n * oh * ow;
    let rows = (SECOND_MOMENT_VALUES / (groups * k))
        .clamp(16, 4096)
        .min(positions);
    if rows == 0 {
        return Ok(());
    }
    let [top, _, left, _] = geom.pads(h, w);
    // [groups][rows][k], each row in OIHW weight order (channel, ky, kx).
    let mut p = vec![0f32; groups * rows * k];
    for r in 0..rows {
        let at = if rows == positions {
            r
        } else {
            next(rng) as usize % positions
        };
        let (b, oy, ox) = (at / (oh * ow), at / ow % oh, at % ow);
        for ky in 0..kh {
            let iy = (oy * geom.stride[0] + ky * geom.dilation[0]) as isize - top as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            for kx in 0..kw {
                let ix = (ox * geom.stride[1] + kx * geom.dilation[1]) as isize - left as isize;
                if ix < 0 || ix >= w as isize {
                    continue;
                }
                let px = ((b * h + iy as usize) * w + ix as usize) * c;
                for g in 0..groups {
                    let dst = (g * rows + r) * k;
                    for ci in 0..cg {
                        p[dst + (ci * kh + ky) * kw + kx] = input.values[px + g * cg + ci];
                    }
                }
            }
        }
    }
    let prod = gram(p, groups, rows, k);
    let m = second.get_or_insert_with(|| SecondMoment {
        groups,
        k,
        sum: vec![0.0; groups * k * k],
        rows: 0,
    });
    if m.groups != groups || m.k != k {
        return Err(format!(
            "second moments of {} groups of {} changed to {groups} of {k}",
            m.groups, m.k
        ));
    }
    for (s, v) in m.sum.iter_mut().zip(prod) {
        *s += v as f64;
    }
    m.rows += rows as u64;
    Ok(())
}

/// `pᵀ p` per group of `p` (`[groups][rows][k]`), through burn's matmul on the CPU backend.
fn gram(p: Vec<f32>, groups: usize, rows: usize, k: usize) -> Vec<f32> {
    use burn::prelude::{Device, Tensor};
    use burn::tensor::TensorData;
    let t = Tensor::<3>::from_data(TensorData::new(p, [groups, rows, k]), &Device::flex());
    let g = t.clone().swap_dims(1, 2).matmul(t);
    g.into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor converts to f32")
}

/// How much quantizing one conv alone moves the logits: for every [`quantizable`] conv of
/// `graph` (the fp32 graph) at least `opts.min_depth` deep, and every depthwise or grouped
/// conv unless `opts.depthwise_fp32` keeps them fp32 anyway, the median over the images `x`
/// (NCHW, `shape`) of `max|logits − fp32 logits| / max|fp32 logits|` with only that conv
/// quantized: in int8 compute, or for a depthwise one, with its weights rounded to int8
/// storage (the others in fp32 compute on fp32 weights; with `bias_correction`, that conv's
/// bias corrected). Returns `(op index, error)`, most sensitive first.
pub fn sensitivity(
    graph: &Graph,
    calib: &Calibration,
    opts: &QuantOptions,
    x: &[f32],
    shape: [usize; 4],
) -> Result<Vec<(usize, f32)>, String> {
    let [n, c, h, w] = shape;
    let reference = Engine::new(graph).run_nchw(x, n, c, h, w)?;
    let convs: Vec<usize> = graph
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Conv { conv, .. }
                if (quantizable(conv) && depth(conv) >= opts.min_depth)
                    || (!quantizable(conv) && !opts.depthwise_fp32) =>
            {
                Some(i)
            }
            _ => None,
        })
        .collect();
    let classes = reference.len() / n.max(1);
    // Every conv quantized once; each trial swaps one of them into the fp32 graph, so the
    // other convs keep their fp32 weights (rounding theirs too would add the same error to
    // every conv's figure and flatten the ranking).
    let mut all = graph.clone();
    let each = QuantOptions {
        keep_fp32: Vec::new(),
        ..opts.clone()
    };
    quantize_graph_keeping(&mut all, calib, &each)?;
    let mut out = Vec::with_capacity(convs.len());
    for &i in &convs {
        let mut g = graph.clone();
        g.ops[i] = all.ops[i].clone();
        let got = Engine::new(&g).run_nchw(x, n, c, h, w)?;
        let mut errs: Vec<f32> = got
            .chunks(classes)
            .zip(reference.chunks(classes))
            .map(|(a, b)| {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs())) / scale
            })
            .collect();
        errs.sort_by(f32::total_cmp);
        out.push((i, errs[errs.len() / 2]));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

/// `w_scale[o] · q` for OIHW weights.
fn dequantize(q: &[i8], w_scale: &[f32]) -> Vec<f32> {
    let per = q.len() / w_scale.len().max(1);
    q.iter()
        .enumerate()
        .map(|(k, &v)| v as f32 * w_scale[k / per])
        .collect()
}

/// `kestrel.format` of the int8 model file.
pub const FORMAT: &str = "kestrel-int8-v1";

/// A named parameter of the graph, with its dtype-specific bytes.
enum Param {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

/// Every parameter of `graph` by name (`ops.{i}.{field}`), with its shape.
fn params(graph: &Graph) -> Vec<(String, Vec<usize>, Param)> {
    let mut out = Vec::new();
    let mut conv = |prefix: String, c: &ConvSpec| {
        let g = &c.geom;
        let shape = vec![g.out_ch, g.in_ch / g.groups, g.kernel[0], g.kernel[1]];
        match &c.quant {
            Some(q) => {
                out.push((
                    format!("{prefix}.weight"),
                    shape,
                    Param::I8(q.weight.clone()),
                ));
                out.push((
                    format!("{prefix}.weight_scale"),
                    vec![g.out_ch],
                    Param::F32(q.w_scale.clone()),
                ));
                if let Some(iq) = q.input {
                    out.push((
                        format!("{prefix}.input_quant"),
                        vec![3],
                        Param::F32(vec![iq.scale, iq.zero as f32, iq.max as f32]),
                    ));
                }
            }
            None => out.push((
                format!("{prefix}.weight"),
                shape,
                Param::F32(c.weight.clone()),
            )),
        }
        out.push((
            format!("{prefix}.bias"),
            vec![g.out_ch],
            Param::F32(c.bias.clone()),
        ));
    };
    let mut norms = Vec::new();
    for (i, op) in graph.ops.iter().enumerate() {
        match op {
            Op::Conv { conv: c, .. } | Op::Eca { conv: c, .. } => conv(format!("ops.{i}"), c),
            Op::SqueezeExcite { reduce, expand, .. } => {
                conv(format!("ops.{i}.reduce"), reduce);
                conv(format!("ops.{i}.expand"), expand);
            }
            Op::Cbam {
                fc1, fc2, spatial, ..
            } => {
                conv(format!("ops.{i}.fc1"), fc1);
                conv(format!("ops.{i}.fc2"), fc2);
                conv(format!("ops.{i}.spatial"), spatial);
            }
            Op::PerformerAttention { w, .. } => {
                norms.push((format!("ops.{i}.random_features"), w.clone()));
            }
            Op::LayerNorm { weight, bias, .. } | Op::LayerNormCopy { weight, bias, .. } => {
                norms.push((format!("ops.{i}.norm_weight"), weight.clone()));
                norms.push((format!("ops.{i}.norm_bias"), bias.clone()));
            }
            Op::Tokens {
                prefix, pos_embed, ..
            } => {
                norms.push((format!("ops.{i}.prefix_tokens"), prefix.clone()));
                norms.push((format!("ops.{i}.pos_embed"), pos_embed.clone()));
            }
            Op::WindowAttention {
                bias,
                mask,
                pad_qkv,
                ..
            } => {
                norms.push((format!("ops.{i}.attn_bias"), bias.clone()));
                norms.push((format!("ops.{i}.pad_qkv"), pad_qkv.clone()));
                if let Some(m) = mask {
                    norms.push((format!("ops.{i}.attn_mask"), m.clone()));
                }
            }
            _ => {}
        }
    }
    out.extend(
        norms
            .into_iter()
            .map(|(k, v)| (k, vec![v.len()], Param::F32(v))),
    );
    out
}

/// Writes the quantized `graph` of model `model` as safetensors, with `metadata` (string
/// pairs) beside the format and model name. Returns the file's size.
pub fn save(
    graph: &Graph,
    model: &str,
    metadata: &[(String, String)],
    path: &Path,
) -> Result<u64, String> {
    let params = params(graph);
    let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = params
        .into_iter()
        .map(|(name, shape, p)| match p {
            Param::F32(v) => (
                name,
                shape,
                Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            Param::I8(v) => (name, shape, Dtype::I8, v.iter().map(|&x| x as u8).collect()),
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, dt, b)| {
            TensorView::new(*dt, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("tensor {name}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut meta: HashMap<String, String> = metadata.iter().cloned().collect();
    meta.insert("kestrel.format".into(), FORMAT.into());
    meta.insert("kestrel.model".into(), model.into());
    let file = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| format!("serialising {}: {e}", path.display()))?;
    std::fs::write(path, &file).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(file.len() as u64)
}

/// The metadata of an int8 model file (its `kestrel.model` included).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Loads the int8 model file `path` into `graph`, the fp32 lowering of model `model` (any
/// weights: all of them are replaced). Every parameter's shape is checked, and a file made for
/// another model is rejected naming both.
pub fn load(mut graph: Graph, model: &str, path: &Path) -> Result<Graph, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("kestrel.format").map(String::as_str) != Some(FORMAT) {
        return Err(format!(
            "{} is not a kestrel int8 model file (no kestrel.format = {FORMAT})",
            path.display()
        ));
    }
    let built_for = meta.get("kestrel.model").cloned().unwrap_or_default();
    if built_for != model {
        return Err(format!(
            "{} was quantized from {built_for}, not {model}",
            path.display()
        ));
    }
    let f32s = |name: &str, len: usize| -> Result<Vec<f32>, String> {
        let t = st
            .tensor(name)
            .map_err(|_| format!("{}: tensor {name} is missing", path.display()))?;
        if t.dtype() != Dtype::F32 || t.data().len() != len * 4 {
            return Err(format!(
                "{}: tensor {name} is {:?} {:?}; {model} needs F32 with {len} values",
                path.display(),
                t.dtype(),
                t.shape()
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let conv = |prefix: String, c: &mut ConvSpec| -> Result<(), String> {
        let g = c.geom;
        let len = c.weight.len();
        c.bias = f32s(&format!("{prefix}.bias"), g.out_ch)?;
        let wname = format!("{prefix}.weight");
        let t = st
            .tensor(&wname)
            .map_err(|_| format!("{}: tensor {wname} is missing", path.display()))?;
        match t.dtype() {
            Dtype::I8 => {
                if t.data().len() != len {
                    return Err(format!(
                        "{}: tensor {wname} has shape {:?}; {model} needs {len} int8 values there",
                        path.display(),
                        t.shape()
                    ));
                }
                let weight: Vec<i8> = t.data().iter().map(|&b| b as i8).collect();
                let w_scale = f32s(&format!("{prefix}.weight_scale"), g.out_ch)?;
                let iq_name = format!("{prefix}.input_quant");
                let input = match st.tensor(&iq_name) {
                    Err(_) => None,
                    Ok(_) if !quantizable(c) => {
                        return Err(format!(
                            "{}: {iq_name}: the conv at {prefix} is grouped and has no int8 kernel",
                            path.display()
                        ))
                    }
                    Ok(t) => {
                        // (scale, zero point, largest value); files made before 8-bit
                        // activations hold the first two, for 7-bit activations.
                        let len = t.data().len() / 4;
                        let iq = f32s(&iq_name, if len == 2 { 2 } else { 3 })?;
                        let max = iq.get(2).copied().unwrap_or(ACT_MAX_7BIT as f32);
                        if !(iq[0] > 0.0
                            && iq[0].is_finite()
                            && (max == ACT_MAX as f32 || max == ACT_MAX_7BIT as f32)
                            && (0.0..=max).contains(&iq[1])
                            && iq[1].fract() == 0.0)
                        {
                            return Err(format!(
                                "{}: {iq_name} {iq:?} is not a (scale > 0, zero point, maximum \
                                 {ACT_MAX_7BIT} or {ACT_MAX}) triple with the zero point in \
                                 0..=maximum",
                                path.display()
                            ));
                        }
                        Some(InputQuant {
                            scale: iq[0],
                            zero: iq[1] as u8,
                            max: max as u8,
                        })
                    }
                };
                let max = if input.is_some() {
                    WEIGHT_MAX
                } else {
                    STORED_WEIGHT_MAX
                };
                if let Some(w) = weight.iter().find(|w| w.unsigned_abs() > max as u8) {
                    return Err(format!(
                        "{}: tensor {wname} holds {w}, outside ±{max}",
                        path.display()
                    ));
                }
                c.weight = dequantize(&weight, &w_scale);
                c.quant = Some(ConvQuant {
                    weight,
                    w_scale,
                    input,
                });
            }
            _ => {
                c.weight = f32s(&wname, len)?;
                c.quant = None;
            }
        }
        Ok(())
    };
    for (i, op) in graph.ops.iter_mut().enumerate() {
        match op {
            Op::Conv { conv: c, .. } | Op::Eca { conv: c, .. } => conv(format!("ops.{i}"), c)?,
            Op::SqueezeExcite { reduce, expand, .. } => {
                conv(format!("ops.{i}.reduce"), reduce)?;
                conv(format!("ops.{i}.expand"), expand)?;
            }
            Op::Cbam {
                fc1, fc2, spatial, ..
            } => {
                conv(format!("ops.{i}.fc1"), fc1)?;
                conv(format!("ops.{i}.fc2"), fc2)?;
                conv(format!("ops.{i}.spatial"), spatial)?;
            }
            Op::PerformerAttention { w, .. } => {
                *w = f32s(&format!("ops.{i}.random_features"), w.len())?;
            }
            Op::LayerNorm { weight, bias, .. } | Op::LayerNormCopy { weight, bias, .. } => {
                *weight = f32s(&format!("ops.{i}.norm_weight"), weight.len())?;
                *bias = f32s(&format!("ops.{i}.norm_bias"), bias.len())?;
            }
            Op::Tokens {
                prefix, pos_embed, ..
            } => {
                *prefix = f32s(&format!("ops.{i}.prefix_tokens"), prefix.len())?;
                *pos_embed = f32s(&format!("ops.{i}.pos_embed"), pos_embed.len())?;
            }
            Op::WindowAttention {
                bias,
                mask,
                pad_qkv,
                ..
            } => {
                *bias = f32s(&format!("ops.{i}.attn_bias"), bias.len())?;
                *pad_qkv = f32s(&format!("ops.{i}.pad_qkv"), pad_qkv.len())?;
                if let Some(m) = mask {
                    *m = f32s(&format!("ops.{i}.attn_mask"), m.len())?;
                }
            }
            _ => {}
        }
    }
    let expected = params(&graph).len();
    if st.len() != expected {
        return Err(format!(
            "{}: {} tensors, but {model}'s graph has {expected} parameters",
            path.display(),
            st.len()
        ));
    }
    Ok(graph)
}
