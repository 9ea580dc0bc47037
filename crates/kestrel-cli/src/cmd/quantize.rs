//! `kestrel quantize`: post-training static int8 quantization (kestrel-deploy's `quant`) into a
//! run folder that every command takes as `--checkpoint DIR`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::prelude::Device;
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_deploy::quant::{self, Calibration, Method, QuantOptions, Rounding};
use kestrel_deploy::Engine;
use kestrel_train::checkpoint::{
    Checkpoint, CheckpointMeta, CHANNELS_FILE, FORMAT, INT8_FILE, META_FILE,
};

use super::source::{load, ModelSourceArgs};

/// Quantizes a model to int8: per-output-channel symmetric int8 weights (GPTQ-rounded), per-tensor
/// 7-bit u8 activations calibrated on a folder of images, bias correction.
#[derive(Args, Debug)]
#[command(
    after_help = "Every ungrouped conv and linear at least --int8-min-depth deep runs in int8 \
(u8 x i8 GEMM, i32 accumulation); depthwise/grouped convs, SE gates and pooling stay fp32. The output folder holds \
model.int8.safetensors, checkpoint.json and quantize_report.json; predict, eval, forward and \
bench take it as --checkpoint DIR (on the fast engine).\n\n\
Example:\n  kestrel quantize --model resnet50 --weights resnet50.safetensors --calib photos/ \
--output runs/resnet50-int8"
)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Folder of calibration images (searched recursively; JPEG, PNG, WebP, BMP, GIF).
    #[arg(long, value_name = "DIR")]
    pub calib: PathBuf,
    /// How many of them to use (the first N in path order).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub calib_images: usize,
    /// Activation ranges: minmax (observed min/max), percentile (0.01-99.99%), entropy
    /// (TensorRT's KL calibration).
    #[arg(long, default_value = "minmax")]
    pub method: Method,
    /// Images per calibration batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Keep the N ungrouped convs whose quantization alone moves the logits most in fp32
    /// compute (weights still stored int8), measured on the first calibration batch;
    /// quantize_report.json lists them with their error. Costs speed, not size.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_fp32: usize,
    /// Keep the fp32 weights of the N depthwise or grouped convs whose int8 weight storage
    /// alone moves the logits most (same sweep as --keep-fp32). They run fp32 either way, so
    /// this costs 3 bytes per weight kept and no speed; an early depthwise conv has few weights.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_fp32_depthwise: usize,
    /// Store depthwise and grouped convs' weights in fp32 (they run fp32 either way; int8
    /// storage shrinks the file a little more but rounds their weights).
    #[arg(long)]
    pub depthwise_fp32: bool,
    /// Skip bias correction. By default each conv's bias absorbs the mean shift that rounding
    /// its weights to int8 causes on the calibration images (-(W_int8 - W) * mean input, as
    /// OpenVINO's NNCF does); quantize_report.json records which was used.
    #[arg(long)]
    pub no_bias_correction: bool,
    /// How weights are rounded to int8: nearest, or gptq (each output channel's rounding
    /// errors fed forward through the calibration inputs' second moments, GPTQ/OBQ; rows
    /// longer than 2304 weights round to nearest).
    #[arg(long, default_value = "gptq")]
    pub rounding: Rounding,
    /// Convs whose dot products (input channels x kernel taps) are shorter than N keep fp32
    /// compute, weights stored int8 (an RGB stem's 27, a 16-channel 1x1: int8 is slower
    /// there); 0 puts every ungrouped conv in int8. quantize_report.json lists them.
    #[arg(long, default_value_t = quant::INT8_MIN_DEPTH, value_name = "N")]
    pub int8_min_depth: usize,
    /// Activation bits of the int8 convs' inputs: 8 (0..255, the most accurate), or 7
    /// (0..127). Both run exactly on every CPU; on a CPU without AVX-512 VNNI the exact 8-bit
    /// sums take more AVX2 instructions, so 7 runs the int8 convs about 1.5x faster there.
    #[arg(long, default_value_t = 8, value_name = "7|8", value_parser = clap::value_parser!(u8).range(7..=8))]
    pub act_bits: u8,
    /// The run folder to write.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
}

#[derive(serde::Serialize)]
struct Report {
    model: String,
    method: &'static str,
    calib_dir: String,
    calib_images: usize,
    /// The calibration images, relative to `calib_dir`.
    calib_files: Vec<String>,
    int8_file: &'static str,
    int8_bytes: u64,
    /// The fp32 safetensors the model came from, when it was one.
    fp32_file: Option<String>,
    fp32_bytes: Option<u64>,
    /// fp32_bytes / int8_bytes.
    size_ratio: Option<f64>,
    /// The lowered fp32 graph's parameters (BN folded) at 4 bytes each.
    fp32_graph_bytes: u64,
    int8_convs: usize,
    convs: usize,
    /// The convs kept in fp32: --keep-fp32's (fp32 compute), most sensitive first, then
    /// --keep-fp32-depthwise's (fp32 weights), then the short ones (--int8-min-depth, fp32
    /// compute).
    fp32_convs: Vec<Fp32Conv>,
    /// --keep-fp32 and --keep-fp32-depthwise.
    keep_fp32: usize,
    keep_fp32_depthwise: usize,
    /// --depthwise-fp32: depthwise/grouped weights stored in fp32.
    depthwise_fp32: bool,
    /// Whether biases absorbed the weights' rounding shift (off with --no-bias-correction).
    bias_correction: bool,
    /// --rounding: nearest or gptq.
    rounding: &'static str,
    /// --int8-min-depth.
    int8_min_depth: usize,
    /// --act-bits: 8 or 7.
    act_bits: u8,
    kestrel_version: &'static str,
}

/// A conv kept in fp32 compute.
#[derive(serde::Serialize)]
struct Fp32Conv {
    /// Its op index in the int8 file (`ops.{op}.*`).
    op: usize,
    /// `KHxKW IN->OUT /STRIDE`, with ` gGROUPS` for a depthwise or grouped conv.
    conv: String,
    /// "short": its dot product is under --int8-min-depth; "sensitive": --keep-fp32 or
    /// --keep-fp32-depthwise chose it.
    reason: &'static str,
    /// For a sensitive one: the median over the sweep's images of max|logits - fp32| /
    /// max|fp32 logits| with only this conv in int8.
    logit_error: Option<f32>,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    if a.calib_images == 0 || a.batch_size == 0 {
        bail!("--calib-images and --batch-size must be at least 1");
    }
    let device = Device::flex();
    let loaded = load(&a.source, &device)?;
    if loaded.int8.is_some() {
        bail!("the model is already int8; quantize the fp32 model it came from");
    }
    let files = kestrel_data::image_files_under(&a.calib)
        .with_context(|| format!("--calib {}: cannot list images", a.calib.display()))?;
    if files.is_empty() {
        bail!(
            "--calib {}: no image files (JPEG, PNG, WebP, BMP, GIF) in the folder",
            a.calib.display()
        );
    }
    let files: Vec<PathBuf> = files.into_iter().take(a.calib_images).collect();
    let [c, _, _] = loaded.input_size();
    let mut graph = kestrel_deploy::lower_graph(&loaded.model, c).map_err(|e| {
        anyhow::anyhow!(
            "cannot quantize {} (quantization goes through the fast engine's lowering): {e}",
            loaded.name
        )
    })?;
    let fp32_graph_bytes: u64 = graph_param_bytes(&graph);
    let engine = Engine::new(&graph);
    let rounding = a.rounding;
    let mut calib = Calibration::default();
    if rounding == Rounding::Gptq {
        calib = calib.with_second_moments();
    }
    let mut first_batch = None;
    for chunk in files.chunks(a.batch_size) {
        let mut batch = Vec::new();
        let mut shape = [0, 0, 0, 0];
        for f in chunk {
            let x = decode_image_file(f)
                .map_err(anyhow::Error::from)
                .and_then(|img| loaded.preprocess(img).map_err(anyhow::Error::from))
                .with_context(|| format!("--calib: {}", f.display()))?;
            shape = [chunk.len(), x.channels, x.height, x.width];
            batch.extend_from_slice(&x.data);
        }
        calib
            .observe_batch(&engine, &batch, shape)
            .map_err(|e| anyhow::anyhow!("--calib {}: {e}", a.calib.display()))?;
        if first_batch.is_none() && (a.keep_fp32 > 0 || a.keep_fp32_depthwise > 0) {
            first_batch = Some((batch, shape));
        }
    }
    if let Some(n) = quant::act_bits_notice(a.act_bits) {
        eprintln!("note: {n}");
    }
    let bias_correction = !a.no_bias_correction;
    let mut opts = QuantOptions {
        method: a.method,
        keep_fp32: Vec::new(),
        depthwise_fp32: a.depthwise_fp32,
        bias_correction,
        rounding,
        min_depth: a.int8_min_depth,
        act_bits: a.act_bits,
    };
    // `KHxKW IN->OUT /STRIDE` of every conv, for the report.
    let described: Vec<String> = graph
        .ops
        .iter()
        .map(|op| match op {
            kestrel_deploy::Op::Conv { conv, .. } => {
                let g = conv.geom;
                let groups = if g.groups > 1 {
                    format!(" g{}", g.groups)
                } else {
                    String::new()
                };
                format!(
                    "{}x{} {}->{} /{}{groups}",
                    g.kernel[0], g.kernel[1], g.in_ch, g.out_ch, g.stride[0]
                )
            }
            _ => String::new(),
        })
        .collect();
    let describe = |op: usize| described[op].clone();
    let mut fp32_convs = Vec::new();
    if let Some((x, shape)) = &first_batch {
        let ranked = quant::sensitivity(&graph, &calib, &opts, x, *shape)
            .map_err(|e| anyhow::anyhow!("--keep-fp32: {e}"))?;
        let grouped = |op: usize| matches!(&graph.ops[op], kestrel_deploy::Op::Conv { conv, .. } if !quant::quantizable(conv));
        let dense = ranked.iter().filter(|r| !grouped(r.0)).take(a.keep_fp32);
        let depthwise = ranked
            .iter()
            .filter(|r| grouped(r.0))
            .take(a.keep_fp32_depthwise);
        for &(op, logit_error) in dense.chain(depthwise) {
            fp32_convs.push(Fp32Conv {
                op,
                conv: describe(op),
                reason: "sensitive",
                logit_error: Some(logit_error),
            });
        }
    }
    opts.keep_fp32 = fp32_convs.iter().map(|c| c.op).collect();
    let summary = quant::quantize_graph_keeping(&mut graph, &calib, &opts)
        .map_err(|e| anyhow::anyhow!("--calib {}: {e}", a.calib.display()))?;
    for op in summary.fp32_convs.iter().copied() {
        if !opts.keep_fp32.contains(&op) {
            fp32_convs.push(Fp32Conv {
                op,
                conv: describe(op),
                reason: "short",
                logit_error: None,
            });
        }
    }

    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("--output: cannot create {}", a.output.display()))?;
    let meta_pairs = vec![
        ("method".to_string(), a.method.name().to_string()),
        ("calib_images".to_string(), calib.images().to_string()),
        ("bias_correction".to_string(), bias_correction.to_string()),
        ("rounding".to_string(), rounding.name().to_string()),
        ("int8_min_depth".to_string(), a.int8_min_depth.to_string()),
        ("act_bits".to_string(), a.act_bits.to_string()),
    ];
    let int8_path = a.output.join(INT8_FILE);
    let int8_bytes = quant::save(&graph, &loaded.name, &meta_pairs, &int8_path)
        .map_err(|e| anyhow::anyhow!("--output: {e}"))?;
    let info = serde_json::json!({
        "method": a.method.name(),
        "calib_dir": a.calib.display().to_string(),
        "from": a.source.checkpoint.as_ref().or(a.source.weights.as_ref()).map(|p| p.display().to_string()),
    });
    let meta = derived_meta(&a.source, &loaded, "quantized", info)?;
    // A channel-pruned model's architecture needs its channel counts beside the int8 file.
    if let Some(dir) = &a.source.checkpoint {
        let counts = dir.join(CHANNELS_FILE);
        if counts.exists() {
            std::fs::copy(&counts, a.output.join(CHANNELS_FILE))
                .with_context(|| format!("--output: cannot copy {}", counts.display()))?;
        }
    }
    let meta_path = a.output.join(META_FILE);
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("--output: cannot write {}", meta_path.display()))?;

    let fp32_file = match (&a.source.checkpoint, &a.source.weights) {
        (Some(dir), _) => Some(dir.join(kestrel_train::checkpoint::WEIGHTS_FILE)),
        (None, Some(w)) if w.extension().is_some_and(|e| e == "safetensors") => Some(w.clone()),
        _ => None,
    };
    let fp32_bytes = fp32_file
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| m.len());
    let report = Report {
        model: loaded.name.clone(),
        method: a.method.name(),
        calib_dir: a.calib.display().to_string(),
        calib_images: calib.images(),
        calib_files: files
            .iter()
            .map(|f| f.strip_prefix(&a.calib).unwrap_or(f).display().to_string())
            .collect(),
        int8_file: INT8_FILE,
        int8_bytes,
        fp32_file: fp32_file.as_ref().map(|f| f.display().to_string()),
        fp32_bytes,
        size_ratio: fp32_bytes.map(|b| b as f64 / int8_bytes as f64),
        fp32_graph_bytes,
        int8_convs: summary.int8_convs,
        convs: summary.convs,
        fp32_convs,
        keep_fp32: a.keep_fp32,
        keep_fp32_depthwise: a.keep_fp32_depthwise,
        depthwise_fp32: a.depthwise_fp32,
        bias_correction,
        rounding: rounding.name(),
        int8_min_depth: a.int8_min_depth,
        act_bits: a.act_bits,
        kestrel_version: env!("CARGO_PKG_VERSION"),
    };
    let report_path = a.output.join("quantize_report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("--output: cannot write {}", report_path.display()))?;
    println!(
        "quantized {} ({} of {} convs int8, {} calibration images, {}): {} bytes{} -> {}",
        loaded.name,
        summary.int8_convs,
        summary.convs,
        calib.images(),
        a.method.name(),
        int8_bytes,
        report
            .size_ratio
            .map(|r| format!(" ({r:.2}x smaller than the fp32 file)"))
            .unwrap_or_default(),
        a.output.display()
    );
    Ok(())
}

fn graph_param_bytes(graph: &kestrel_deploy::Graph) -> u64 {
    use kestrel_deploy::Op;
    let conv = |c: &kestrel_deploy::ConvSpec| (c.weight.len() + c.bias.len()) as u64 * 4;
    graph
        .ops
        .iter()
        .map(|op| match op {
            Op::Conv { conv: c, .. } | Op::Eca { conv: c, .. } => conv(c),
            Op::SqueezeExcite { reduce, expand, .. } => conv(reduce) + conv(expand),
            Op::Cbam {
                fc1, fc2, spatial, ..
            } => conv(fc1) + conv(fc2) + conv(spatial),
            Op::PerformerAttention { w, .. } => w.len() as u64 * 4,
            Op::LayerNorm { weight, bias, .. } | Op::LayerNormCopy { weight, bias, .. } => {
                (weight.len() + bias.len()) as u64 * 4
            }
            Op::Tokens {
                prefix, pos_embed, ..
            } => (prefix.len() + pos_embed.len()) as u64 * 4,
            _ => 0,
        })
        .sum()
}

/// The `checkpoint.json` of a run folder derived from a model (`quantize`, `prune`): the source
/// checkpoint's, or one made from the registry model, with the step (`step`: `info`) recorded
/// in `train_config` (a checkpoint's own training config under `trained`).
pub(crate) fn derived_meta(
    source: &ModelSourceArgs,
    loaded: &kestrel_train::LoadedModel,
    step: &str,
    info: serde_json::Value,
) -> Result<CheckpointMeta> {
    let mut record = serde_json::Map::new();
    record.insert(step.to_string(), info);
    if let Some(dir) = &source.checkpoint {
        let mut meta = Checkpoint::open(dir)?.meta;
        record.insert("trained".to_string(), meta.train_config);
        meta.train_config = serde_json::Value::Object(record);
        return Ok(meta);
    }
    let [c, _, _] = loaded.input_size();
    Ok(CheckpointMeta {
        format: FORMAT.to_string(),
        model: loaded.name.clone(),
        num_classes: loaded.class_names.len(),
        in_chans: c,
        class_names: loaded.class_names.clone(),
        data_config: loaded.data_config.clone(),
        recipe: None,
        train_config: serde_json::Value::Object(record),
        epoch: 0,
        val_accuracy: None,
        kestrel_version: env!("CARGO_PKG_VERSION").to_string(),
        // No training data behind a registry model: `eval` needs --data.
        data: None,
    })
}
