use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_models::tensor_file::write_f32;
use kestrel_train::{load_model, ModelSource, RegistrySource};

use super::common::ImgSizeArg;

/// Writes the exact tensor a model sees at eval time (what `predict` and `eval` feed it), for
/// comparison with timm's `resolve_data_config` + `create_transform`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel preprocess --model resnet50 cat.jpg --output x.safetensors"
)]
pub struct PreprocessArgs {
    /// Checkpoint folder written by `kestrel train`: its recorded data config.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    pub checkpoint: Option<PathBuf>,
    /// Registry model name (`NAME` or `NAME.TAG`, see `kestrel models --tags`): its data config.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub img_size: ImgSizeArg,
    /// The image to preprocess (JPEG, PNG, WebP, BMP, GIF).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Output safetensors file; the tensor is stored as `input`, shape [1, C, H, W].
    #[arg(long, value_name = "X.safetensors")]
    pub output: PathBuf,
}

pub fn run(a: PreprocessArgs) -> Result<()> {
    let source = match (&a.checkpoint, &a.model) {
        (Some(dir), _) => ModelSource::Checkpoint(dir.clone()),
        (None, Some(model)) => ModelSource::Registry(RegistrySource {
            model: model.clone(),
            // A fixed-size model (ViT, Swin) is built for the size asked for.
            img_size: a.img_size.img_size,
            ..RegistrySource::default()
        }),
        (None, None) => bail!("give either --checkpoint DIR or --model NAME"),
    };
    let device = burn::prelude::Device::flex();
    let mut loaded = load_model(&source, &device)?;
    if let Some(hw) = a.img_size.hw() {
        loaded.set_input_hw(hw, &device)?;
    }
    let x = loaded.preprocess(decode_image_file(&a.image)?)?;
    let shape = [1, x.channels, x.height, x.width];
    write_f32(&a.output, "input", &shape, &x.data)?;
    println!("wrote {:?} to {}", shape, a.output.display());
    Ok(())
}
