use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_data::decode::decode_image_file;
use rand::SeedableRng;

use super::source::{load, ModelSourceArgs};
use super::tensors::write_f32;

/// Writes the exact tensor a model sees at eval time, for comparison with timm's
/// `resolve_data_config` + `create_transform`.
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
    let image = decode_image_file(&a.image)?;
    let chw = loaded
        .transform
        .apply(image, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    let shape = [1, chw.channels, chw.height, chw.width];
    write_f32(&a.output, "input", &shape, &chw.data)?;
    println!("wrote {:?} to {}", shape, a.output.display());
    Ok(())
}
