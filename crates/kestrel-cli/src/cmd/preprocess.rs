use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_models::tensor_file::write_f32;

use super::source::{load, ModelSourceArgs};

/// Writes the exact tensor a model sees at eval time (what `predict` and `eval` feed it), for
/// comparison with timm's `resolve_data_config` + `create_transform`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel preprocess --model resnet50 cat.jpg --output x.safetensors"
)]
pub struct PreprocessArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Output safetensors file; the tensor is stored as `input`, shape [1, C, H, W].
    #[arg(long, value_name = "X.safetensors")]
    pub output: PathBuf,
}

pub fn run(a: PreprocessArgs) -> Result<()> {
    let loaded = load(&a.source, &burn::prelude::Device::flex())?;
    let x = loaded.preprocess(decode_image_file(&a.image)?)?;
    let shape = [1, x.channels, x.height, x.width];
    write_f32(&a.output, "input", &shape, &x.data)?;
    println!("wrote {:?} to {}", shape, a.output.display());
    Ok(())
}
