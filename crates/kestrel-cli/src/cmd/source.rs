//! Where a model comes from: a kestrel checkpoint folder, or a registry name plus a weights file
//! (timm/torchvision safetensors or .pth). Either way we get the model, its eval preprocessing
//! and its class names.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::prelude::Device;
use clap::Args;
use kestrel_data::imagenet::imagenet_class_names;
use kestrel_data::SampleTransform;
use kestrel_models::weights::{load_weights, parse_remap_file, LoadOptions, WeightsLayout};
use kestrel_models::{BuildOptions, Model};
use kestrel_train::data_config::{eval_transform, resolve_data_config};
use kestrel_train::Checkpoint;

#[derive(Args, Debug, Clone)]
pub struct ModelSourceArgs {
    /// Checkpoint folder written by `kestrel train`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "weights"])]
    pub checkpoint: Option<PathBuf>,
    /// Registry model name (see `kestrel models`), used with --weights.
    #[arg(long)]
    pub model: Option<String>,
    /// timm/torchvision weights: .safetensors, or PyTorch .pth/.pt (zip or legacy; the state
    /// dict bare or under `state_dict` / `model`).
    #[arg(long, value_name = "FILE", requires = "model")]
    pub weights: Option<PathBuf>,
    /// Class count, when it differs from the model's default. With --weights from a checkpoint
    /// of another class count, only the classifier is re-initialised (for fine-tuning).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Regex rename rules for checkpoints from other codebases: one `REGEX => REPLACEMENT` per line.
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub remap: Option<PathBuf>,
    /// Class names, one per line (default: ImageNet's for 1000-class models, else class_<i>).
    #[arg(long, value_name = "FILE")]
    pub class_names: Option<PathBuf>,
}

pub struct LoadedModel {
    pub name: String,
    pub model: Model,
    pub transform: Arc<dyn SampleTransform>,
    pub class_names: Vec<String>,
    /// (channels, height, width) the model expects.
    pub input_size: [usize; 3],
}

pub fn load(args: &ModelSourceArgs, device: &Device) -> Result<LoadedModel> {
    if let Some(dir) = &args.checkpoint {
        let ckpt = Checkpoint::open(dir)?;
        let model = ckpt.load_model(device)?;
        return Ok(LoadedModel {
            name: ckpt.meta.model.clone(),
            model,
            transform: Arc::new(ckpt.meta.eval_transform()?),
            class_names: ckpt.meta.class_names.clone(),
            input_size: ckpt.meta.input_size(),
        });
    }
    let Some(name) = &args.model else {
        bail!("give either --checkpoint DIR, or --model NAME (with --weights FILE)");
    };
    let spec = kestrel_models::find(name)?;
    let dc = resolve_data_config(spec, None);
    let num_classes = args.num_classes.unwrap_or(spec.default_num_classes);
    let opts = BuildOptions {
        num_classes,
        in_chans: dc.input_size[0],
    };
    let mut model = spec.build(&opts, device);
    if let Some(weights) = &args.weights {
        let remap = match &args.remap {
            Some(f) => parse_remap_file(f)?,
            None => vec![],
        };
        let lo = LoadOptions {
            reinit_classifier: args.num_classes.is_some(),
            remap,
        };
        let layout = load_weights(&mut model, weights, &lo)?;
        if layout == WeightsLayout::Torchvision {
            if let Some(tv) = kestrel_models::torchvision_counterpart(spec.name) {
                eprintln!(
                    "warning: {} is a torchvision checkpoint, loaded into timm's `{}`. \
                     torchvision's own model is `{}`: its eval preprocessing differs, and for \
                     some variants (MobileNetV3, EfficientNet B5-B7, some RegNets) so do \
                     BatchNorm eps or widths, which changes the logits. Use --model {} to \
                     reproduce torchvision.",
                    weights.display(),
                    spec.name,
                    tv.name,
                    tv.name
                );
            }
        }
    }
    let transform = eval_transform(&dc)?;
    let class_names = match &args.class_names {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let names: Vec<String> = text
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect();
            if names.len() != num_classes {
                bail!(
                    "{}: {} class names for a {num_classes}-class model",
                    f.display(),
                    names.len()
                );
            }
            names
        }
        None if num_classes == 1000 => imagenet_class_names(),
        None => (0..num_classes).map(|i| format!("class_{i}")).collect(),
    };
    Ok(LoadedModel {
        name: spec.name.to_string(),
        model,
        transform: Arc::new(transform),
        class_names,
        input_size: dc.input_size,
    })
}
