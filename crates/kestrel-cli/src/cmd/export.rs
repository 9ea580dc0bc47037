//! `kestrel export`: a model as an ONNX file (via kestrel-deploy's lowered graph).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::prelude::Device;
use clap::Args;
use kestrel_deploy::onnx::{export, ExportMeta};

use super::source::{load, ModelSourceArgs};

/// Exports a model as ONNX: NCHW, opset 17, input `input` [batch, C, H, W], output `logits`
/// [batch, classes], BatchNorm folded, the eval preprocessing in the file's metadata_props. An
/// int8 run folder (`kestrel quantize`) exports as QDQ ONNX.
#[derive(Args, Debug)]
#[command(
    after_help = "The batch dimension is dynamic; the image size is fixed at export (TF \"same\" \
padding and adaptive pools are written out for it). TensorRT and OpenVINO read the same file.\n\n\
An int8 run folder (--checkpoint DIR of `kestrel quantize`) exports as QDQ ONNX: each int8 conv's \
input goes through Min (the top of its 7-bit range), QuantizeLinear and DequantizeLinear with \
the calibrated scale and zero point, and its int8 weights through a per-channel \
DequantizeLinear (fp32 dequantized weights for a zero-bias conv whose output several ops read, \
which OpenVINO would otherwise run wrongly; docs/deploy.md).\n\n\
Example:\n  kestrel export --model resnet50 --weights resnet50.safetensors --output resnet50.onnx"
)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Where to write the .onnx file.
    #[arg(long, value_name = "FILE.onnx")]
    pub output: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let device = Device::flex();
    let loaded = load(&a.source, &device)?;
    let [c, mut h, mut w] = loaded.input_size();
    if let Some(n) = a.source.img_size {
        if n == 0 {
            bail!("--img-size must be at least 1");
        }
        (h, w) = (n, n);
    }
    if h == 0 || w == 0 {
        bail!("{} has no fixed input size; give --img-size N", loaded.name);
    }
    loaded
        .model
        .check_input([c, h, w], &device)
        .map_err(|e| anyhow::anyhow!("--img-size {h}: {e}"))?;
    // An int8 run folder's graph (its int8 convs become QDQ nodes); otherwise the lowering.
    let lowered;
    let graph = match &loaded.int8 {
        Some(g) => g.as_ref(),
        None => {
            lowered = kestrel_deploy::lower_graph(&loaded.model, c).map_err(|e| {
                anyhow::anyhow!(
                    "cannot export {} (export goes through the fast engine's lowering): {e}",
                    loaded.name
                )
            })?;
            &lowered
        }
    };
    let mut metadata = preprocessing_metadata(&loaded.data_config);
    metadata.push(("num_classes".into(), loaded.class_names.len().to_string()));
    metadata.push((
        "class_names".into(),
        serde_json::to_string(&loaded.class_names)?,
    ));
    let meta = ExportMeta {
        model_name: loaded.name.clone(),
        input_size: [c, h, w],
        metadata,
    };
    let bytes = export(&graph, &meta).with_context(|| format!("cannot export {}", loaded.name))?;
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("--output: cannot write {}", a.output.display()))?;
    println!(
        "wrote {} ({} bytes, input [batch, {c}, {h}, {w}], {} graph ops) to {}",
        loaded.name,
        bytes.len(),
        graph.ops.len(),
        a.output.display()
    );
    Ok(())
}

/// The eval preprocessing as metadata_props: mean, std, crop_pct, interpolation, crop_mode (a
/// consumer needs them to feed the file the inputs the model was trained on). The loaded
/// model's data config is the one resolution every command uses (checkpoint or registry).
fn preprocessing_metadata(dc: &kestrel_models::DataConfig) -> Vec<(String, String)> {
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        ("mean".into(), list(&dc.mean)),
        ("std".into(), list(&dc.std)),
        ("crop_pct".into(), dc.crop_pct.to_string()),
        ("interpolation".into(), dc.interpolation.clone()),
        ("crop_mode".into(), dc.crop_mode.clone()),
    ]
}
