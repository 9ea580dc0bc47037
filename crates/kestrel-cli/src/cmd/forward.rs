use std::path::PathBuf;

use anyhow::{bail, Result};
use burn::prelude::*;
use burn::tensor::TensorData;
use clap::Args;

use super::common::{engine_notice, EngineArgs};
use super::source::{load, ModelSourceArgs};
use crate::device::{parse_device, DEVICE_HELP};
use kestrel_models::tensor_file::{read_f32, write_f32};

/// Runs a raw NCHW tensor through a model in eval mode.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel forward --model resnet50 --weights resnet50.safetensors --input x.safetensors --output y.safetensors"
)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// safetensors file holding the NCHW float32 tensor `input`.
    #[arg(long, value_name = "X.safetensors")]
    pub input: PathBuf,
    /// Where to write the logits, as the tensor `logits` [N, num_classes].
    #[arg(long, value_name = "Y.safetensors")]
    pub output: PathBuf,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub precision: crate::device::PrecisionArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(a: ForwardArgs) -> Result<()> {
    let mut device = parse_device(&a.device)?;
    a.precision.configure(&mut device, &a.device)?;
    a.engine.apply()?;
    let loaded = load(&a.source, &device)?;
    let (shape, data) = read_f32(&a.input, "input")?;
    if shape.len() != 4 {
        bail!(
            "{}: tensor 'input' has shape {shape:?} (rank {}); expected rank 4, [N, C, H, W]",
            a.input.display(),
            shape.len()
        );
    }
    if let Some([h, _]) = a
        .source
        .img_size
        .map(|n| [n, n])
        .filter(|hw| hw[..] != shape[2..])
    {
        bail!(
            "--img-size {h}: {}: tensor 'input' is {}x{} (shape {shape:?}); forward runs the \
             tensor as it is, so resize it (e.g. with `kestrel preprocess --img-size {h}`) or drop \
             --img-size",
            a.input.display(),
            shape[2],
            shape[3]
        );
    }
    let want_c = loaded.input_size()[0];
    if shape[1] != want_c {
        bail!(
            "{}: tensor 'input' has {} channels (shape {shape:?}); {} expects {want_c}",
            a.input.display(),
            shape[1],
            loaded.name
        );
    }
    loaded
        .model
        .check_input([shape[1], shape[2], shape[3]], &device)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: tensor 'input' of shape {shape:?}: {e}",
                a.input.display()
            )
        })?;
    let x = Tensor::<4>::from_data(
        TensorData::new(data, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let (runner, notice) = loaded.runner(&device, a.engine.engine);
    engine_notice(&loaded.name, notice);
    let logits = runner
        .forward(x)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.input.display()))?;
    let dims = logits.dims();
    let values: Vec<f32> = logits.into_data().try_to_vec().expect("f32 logits");
    write_f32(&a.output, "logits", &dims, &values)?;
    println!("wrote logits {:?} to {}", dims, a.output.display());
    Ok(())
}
