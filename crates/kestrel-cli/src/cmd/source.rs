//! The flags that name a model: `--checkpoint DIR`, or `--model NAME` with optional
//! `--weights FILE`. Loading is kestrel-train's [`kestrel_train::load_model`].

use std::path::PathBuf;

use anyhow::{bail, Result};
use burn::prelude::Device;
use clap::Args;
use kestrel_train::{load_model, LoadedModel, ModelSource, RegistrySource};

#[derive(Args, Debug, Clone)]
pub struct ModelSourceArgs {
    /// Checkpoint folder written by `kestrel train`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "weights", "num_classes"])]
    pub checkpoint: Option<PathBuf>,
    /// Registry model name (see `kestrel models`), used with --weights.
    #[arg(long)]
    pub model: Option<String>,
    /// timm/torchvision weights: .safetensors, or PyTorch .pth/.pt (zip or legacy; the state
    /// dict bare or under `state_dict` / `model`).
    #[arg(
        long,
        visible_alias = "pretrained",
        value_name = "FILE",
        requires = "model"
    )]
    pub weights: Option<PathBuf>,
    /// Class count, when it differs from the model's default. With --weights from a checkpoint
    /// of another class count, only the classifier is re-initialised (for fine-tuning).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Regex rename rules for checkpoints from other codebases: one `REGEX => REPLACEMENT` per line.
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub remap: Option<PathBuf>,
    /// Class names, one per line, one per class (default: the checkpoint's; ImageNet's for
    /// 1000-class models; else class_<i>).
    #[arg(long, value_name = "FILE")]
    pub class_names: Option<PathBuf>,
    /// Square input size to build --model for and preprocess to (default: the model's). ViT/DeiT,
    /// Swin, T2T-ViT, CoAtNet and MaxViT are built for one size; a ViT's position embeddings in --weights are resampled
    /// to it, as timm does. For `export`, also the size the file is specialised for. With
    /// --checkpoint: evaluate at N instead of the trained size. `forward` checks it against the
    /// tensor, which it runs as it is, never resized. A size the model cannot take is an error.
    #[arg(long, value_name = "N", value_parser = crate::cmd::common::at_least_one)]
    pub img_size: Option<usize>,
}

impl ModelSourceArgs {
    pub fn source(&self) -> Result<ModelSource> {
        if let Some(dir) = &self.checkpoint {
            return Ok(ModelSource::Checkpoint(dir.clone()));
        }
        let Some(model) = &self.model else {
            bail!("give either --checkpoint DIR, or --model NAME (with --weights FILE)");
        };
        Ok(ModelSource::Registry(RegistrySource {
            model: model.clone(),
            weights: self.weights.clone(),
            num_classes: self.num_classes,
            remap: self.remap.clone(),
            class_names: self.class_names.clone(),
            img_size: self.img_size,
        }))
    }
}

/// Loads the model the flags name, printing the loader's warnings to stderr.
pub fn load(args: &ModelSourceArgs, device: &Device) -> Result<LoadedModel> {
    let mut loaded = load_model(&args.source()?, device)?;
    // Checks that the model (a registry model is already built for N) takes N×N inputs, and
    // makes a checkpoint's eval transform resize to N.
    if let Some(n) = args.img_size {
        loaded.set_input_hw([n, n], device)?;
    }
    if let (Some(_), Some(names)) = (&args.checkpoint, &args.class_names) {
        loaded.set_class_names_from(names)?;
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded)
}
