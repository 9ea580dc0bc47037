//! Where a model comes from: a kestrel checkpoint folder, or a registry name plus an optional
//! weights file (timm/torchvision safetensors or .pth). Either way the caller gets the model, its
//! eval transform (the one [`crate::data_config`] path) and its class names.

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;
use kestrel_data::imagenet::imagenet_class_names;
use kestrel_data::transforms::EvalTransform;
use kestrel_data::{Chw, Image, SampleTransform};
use kestrel_models::weights::{
    load_weights_reporting, parse_remap_file, LoadOptions, WeightsLayout,
};
use kestrel_models::{BuildOptions, DataConfig, Model};
use rand::SeedableRng;

use crate::checkpoint::Checkpoint;
use crate::data_config::{eval_transform, resolve_data_config};
use crate::error::TrainError;

/// A model from the registry, optionally with pretrained weights.
#[derive(Clone, Debug, Default)]
pub struct RegistrySource {
    /// Registry name (see `kestrel_models::REGISTRY`).
    pub model: String,
    /// timm/torchvision weights: .safetensors, or PyTorch .pth/.pt.
    pub weights: Option<PathBuf>,
    /// Class count, when it differs from the model's default. With `weights` of another class
    /// count, only the classifier is re-initialised (for fine-tuning).
    pub num_classes: Option<usize>,
    /// Regex rename rules for weights from other codebases (`REGEX => REPLACEMENT` per line).
    pub remap: Option<PathBuf>,
    /// Class names, one per line (default: ImageNet's for 1000 classes, else `class_<i>`).
    pub class_names: Option<PathBuf>,
    /// Square input size to build the model for and evaluate at (timm's `img_size`; default:
    /// the model's). A ViT's position embeddings in `weights` are resampled to it.
    pub img_size: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A folder written by [`crate::train`].
    Checkpoint(PathBuf),
    Registry(RegistrySource),
}

pub struct LoadedModel {
    /// The registry name.
    pub name: String,
    /// The model. For an int8 checkpoint, the architecture with untrained weights (its
    /// parameter count and MACs are right; run `int8` instead).
    pub model: Model,
    /// The int8 model of a `kestrel quantize` folder, which [`LoadedModel::runner`] runs.
    pub int8: Option<std::sync::Arc<kestrel_deploy::Graph>>,
    pub data_config: DataConfig,
    pub transform: EvalTransform,
    pub class_names: Vec<String>,
    /// Things the caller should tell the user (e.g. torchvision weights in a timm model).
    pub warnings: Vec<String>,
}

impl LoadedModel {
    /// (channels, height, width) the model expects.
    pub fn input_size(&self) -> [usize; 3] {
        self.data_config.input_size
    }

    /// The exact tensor the model is given for `image` (what `classify` feeds it).
    pub fn preprocess(&self, image: Image) -> Result<Chw, TrainError> {
        // The eval transform draws nothing; the RNG only satisfies the trait.
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        Ok(self.transform.apply(image, &mut rng)?)
    }

    /// The model prepared for inference on `engine` (see [`kestrel_deploy::Runner::new`]), with
    /// the reason when the fast engine was asked for and burn runs instead.
    pub fn runner(
        &self,
        device: &Device,
        engine: kestrel_deploy::EngineKind,
    ) -> (kestrel_deploy::Runner, Option<String>) {
        use burn::module::Module;
        if let Some(graph) = &self.int8 {
            return crate::checkpoint::int8_runner(graph, device, engine);
        }
        kestrel_deploy::Runner::new(self.model.valid(), self.input_size()[0], device, engine)
    }

    /// Names the classes from a file (one per line), which must have one name per class.
    pub fn set_class_names_from(&mut self, path: &std::path::Path) -> Result<(), TrainError> {
        self.class_names = read_class_names(path, self.class_names.len())?;
        Ok(())
    }

    /// Runs the model at `height` × `width` instead of its own input size (`--img-size`):
    /// the eval transform resizes and crops to it. A size the model cannot take is an error
    /// that says why.
    pub fn set_input_hw(
        &mut self,
        [height, width]: [usize; 2],
        device: &Device,
    ) -> Result<(), TrainError> {
        let mut dc = self.data_config.clone();
        dc.input_size[1] = height;
        dc.input_size[2] = width;
        check_img_size(&self.model, &self.name, dc.input_size, device)?;
        self.transform = eval_transform(&dc)?;
        self.data_config = dc;
        Ok(())
    }

    /// Class probabilities for one image, on `runner`.
    pub fn classify_with(
        &self,
        runner: &kestrel_deploy::Runner,
        image: Image,
    ) -> Result<Vec<f32>, TrainError> {
        let x = self.preprocess(image)?;
        Ok(self
            .classify_batch_with(runner, std::slice::from_ref(&x))?
            .pop()
            .expect("one row per input"))
    }

    /// Class probabilities for already preprocessed inputs (all of the model's input size),
    /// run as one batch on `runner`: one row per input, in order. `kestrel serve` batches
    /// requests through this.
    pub fn classify_batch_with(
        &self,
        runner: &kestrel_deploy::Runner,
        inputs: &[Chw],
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let Some(first) = inputs.first() else {
            return Ok(vec![]);
        };
        let shape = [first.channels, first.height, first.width];
        let mut batch = Vec::with_capacity(inputs.len() * first.data.len());
        for x in inputs {
            if [x.channels, x.height, x.width] != shape {
                return Err(TrainError::Config(format!(
                    "a batch mixes input sizes: {:?} and {:?}",
                    shape,
                    [x.channels, x.height, x.width]
                )));
            }
            batch.extend_from_slice(&x.data);
        }
        let (logits, classes) = runner
            .logits(&batch, [inputs.len(), shape[0], shape[1], shape[2]])
            .map_err(TrainError::Engine)?;
        Ok(logits
            .chunks_exact(classes.max(1))
            .map(|row| {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let exp: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                exp.into_iter().map(|e| e / sum).collect()
            })
            .collect())
    }

    /// Class probabilities for one image, on burn (an int8 model: on the fast engine).
    pub fn classify(&self, image: Image, device: &Device) -> Result<Vec<f32>, TrainError> {
        if self.int8.is_some() {
            let (runner, _) = self.runner(device, kestrel_deploy::EngineKind::Fast);
            return self.classify_with(&runner, image);
        }
        let x = self.preprocess(image)?;
        let x = Tensor::<4>::from_data(
            TensorData::new(x.data, [1, x.channels, x.height, x.width]),
            device,
        );
        Ok(softmax(self.model.forward(x), 1)
            .into_data()
            .try_to_vec()
            .expect("f32 logits"))
    }
}

/// An error naming `--img-size` when `model` cannot run on `[c, h, w]` inputs.
pub fn check_img_size(
    model: &Model,
    name: &str,
    input_size: [usize; 3],
    device: &Device,
) -> Result<(), TrainError> {
    let [c, h, w] = input_size;
    if h == 0 || w == 0 {
        return Err(TrainError::Config(format!(
            "--img-size {h}x{w}: must be at least 1"
        )));
    }
    model
        .check_input([c, h, w], device)
        .map_err(|e| TrainError::Config(format!("--img-size {h}x{w} ({name}): {e}")))
}

/// Builds the model `source` names, on `device`, with its weights and eval transform.
pub fn load_model(source: &ModelSource, device: &Device) -> Result<LoadedModel, TrainError> {
    match source {
        ModelSource::Checkpoint(dir) => {
            let ckpt = Checkpoint::open(dir)?;
            let (model, int8) = if ckpt.is_int8() {
                let graph = ckpt.load_int8_graph()?;
                (
                    ckpt.build_architecture(device)?,
                    Some(std::sync::Arc::new(graph)),
                )
            } else {
                (ckpt.load_model(device)?, None)
            };
            Ok(LoadedModel {
                name: ckpt.meta.model.clone(),
                model,
                int8,
                transform: ckpt.meta.eval_transform()?,
                data_config: ckpt.meta.data_config.clone(),
                class_names: ckpt.meta.class_names.clone(),
                warnings: vec![],
            })
        }
        ModelSource::Registry(src) => load_registry(src, device),
    }
}

fn load_registry(src: &RegistrySource, device: &Device) -> Result<LoadedModel, TrainError> {
    let (spec, mut data_config) = resolve_data_config(&src.model, None)?;
    if let Some(n) = src.img_size {
        data_config.input_size = [data_config.input_size[0], n, n];
    }
    let num_classes = src.num_classes.unwrap_or(spec.default_num_classes);
    let opts = BuildOptions {
        num_classes,
        in_chans: data_config.input_size[0],
        img_size: src.img_size,
    };
    let mut model = spec.build(&opts, device);
    let mut warnings = vec![];
    if let Some(weights) = &src.weights {
        let remap = match &src.remap {
            Some(f) => parse_remap_file(f)?,
            None => vec![],
        };
        let lo = LoadOptions {
            reinit_classifier: src.num_classes.is_some(),
            remap,
        };
        let report = load_weights_reporting(&mut model, weights, &lo)?;
        if report.classifier_untrained {
            warnings.push(format!(
                "--num-classes {num_classes}: {} has no {num_classes}-class classifier, so the \
                 model's classifier is new and untrained: these predictions mean nothing until \
                 it is fine-tuned",
                weights.display()
            ));
        }
        if report.layout == WeightsLayout::Torchvision {
            if let Some(tv) = kestrel_models::torchvision_counterpart(spec.name) {
                warnings.push(format!(
                    "{} is a torchvision checkpoint, loaded into timm's `{}`. torchvision's own \
                     model is `{}`: its eval preprocessing differs, and for some variants \
                     (MobileNetV3, EfficientNet B5-B7, some RegNets) so do BatchNorm eps or \
                     widths, which changes the logits. Load it as `{}` to reproduce torchvision.",
                    weights.display(),
                    spec.name,
                    tv.name,
                    tv.name
                ));
            }
        }
    }
    let class_names = match &src.class_names {
        Some(f) => read_class_names(f, num_classes)?,
        None if num_classes == 1000 => imagenet_class_names(),
        None => (0..num_classes).map(|i| format!("class_{i}")).collect(),
    };
    Ok(LoadedModel {
        name: spec.name.to_string(),
        model,
        int8: None,
        transform: eval_transform(&data_config)?,
        data_config,
        class_names,
        warnings,
    })
}

/// One class name per non-empty line; there must be one per class.
fn read_class_names(path: &std::path::Path, num_classes: usize) -> Result<Vec<String>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() != num_classes {
        return Err(TrainError::Config(format!(
            "{}: {} class names for a {num_classes}-class model",
            path.display(),
            names.len()
        )));
    }
    Ok(names)
}
