//! The model registry: every model kestrel can build, by timm's name, with its default input and
//! eval preprocessing. `kestrel models` prints this table.

use burn::prelude::*;
use serde::Serialize;

use crate::convnext::ConvNeXtConfig;
use crate::error::ModelError;
use crate::lenet::LeNet5;
use crate::model::Model;
use crate::resnet::ResNetConfig;

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
pub const MNIST_MEAN: [f32; 1] = [0.1307];
pub const MNIST_STD: [f32; 1] = [0.3081];

/// Eval-time preprocessing in timm's terms (`pretrained_cfg`).
#[derive(Clone, Debug, Serialize)]
pub struct DataConfig {
    /// (channels, height, width) the model expects.
    pub input_size: [usize; 3],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub crop_pct: f32,
    pub interpolation: &'static str,
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub num_classes: usize,
    pub in_chans: usize,
}

pub struct ModelSpec {
    pub name: &'static str,
    pub family: &'static str,
    /// torchvision (or other) names that resolve to this model.
    pub aliases: &'static [&'static str],
    pub default_num_classes: usize,
    pub data: fn() -> DataConfig,
    pub build: fn(&BuildOptions, &Device) -> Model,
}

impl ModelSpec {
    pub fn data_config(&self) -> DataConfig {
        (self.data)()
    }
    pub fn build(&self, opts: &BuildOptions, device: &Device) -> Model {
        (self.build)(opts, device)
    }
    pub fn default_options(&self) -> BuildOptions {
        BuildOptions {
            num_classes: self.default_num_classes,
            in_chans: self.data_config().input_size[0],
        }
    }
}

fn mnist_32() -> DataConfig {
    DataConfig {
        input_size: [1, 32, 32],
        mean: MNIST_MEAN.to_vec(),
        std: MNIST_STD.to_vec(),
        crop_pct: 1.0,
        interpolation: "bilinear",
    }
}

fn cifar_32() -> DataConfig {
    DataConfig {
        input_size: [3, 32, 32],
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
        crop_pct: 1.0,
        interpolation: "bilinear",
    }
}

/// timm's ResNet default: 224 px, crop_pct 0.875... timm's `resnet*` a1 weights use 0.95 bicubic,
/// but the architecture default (`_cfg`) is 0.875 bilinear, which is what we report.
fn imagenet_224() -> DataConfig {
    DataConfig {
        input_size: [3, 224, 224],
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
        crop_pct: 0.875,
        interpolation: "bilinear",
    }
}

/// timm's ConvNeXt `pretrained_cfg` for the default tag: 224 px bicubic, ImageNet mean/std;
/// crop_pct 0.875 (atto, femto, pico: `d*_in1k`; base, large: `fb_in22k_ft_in1k`) or 0.95
/// (nano, tiny, small: `in12k_ft_in1k`).
fn convnext_224_0875() -> DataConfig {
    DataConfig {
        interpolation: "bicubic",
        ..imagenet_224()
    }
}
fn convnext_224_095() -> DataConfig {
    DataConfig {
        crop_pct: 0.95,
        ..convnext_224_0875()
    }
}

macro_rules! convnext_spec {
    ($name:literal, $data:expr, $cfg:expr) => {
        ModelSpec {
            name: $name,
            family: "convnext",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            build: |o, d| Model::ConvNeXt($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

macro_rules! resnet_spec {
    ($name:literal, $aliases:expr, $cfg:expr) => {
        ModelSpec {
            name: $name,
            family: "resnet",
            aliases: $aliases,
            default_num_classes: 1000,
            data: imagenet_224,
            build: |o, d| Model::ResNet($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

pub static REGISTRY: &[ModelSpec] = &[
    ModelSpec {
        name: "lenet5",
        family: "lenet",
        aliases: &["lenet"],
        default_num_classes: 10,
        data: mnist_32,
        build: |o, d| Model::LeNet5(LeNet5::new(o.num_classes, o.in_chans, d)),
    },
    ModelSpec {
        name: "resnet8_cifar",
        family: "resnet",
        aliases: &[],
        default_num_classes: 10,
        data: cifar_32,
        build: |o, d| Model::ResNet(ResNetConfig::cifar(1).init(o.num_classes, o.in_chans, d)),
    },
    ModelSpec {
        name: "resnet20_cifar",
        family: "resnet",
        aliases: &[],
        default_num_classes: 10,
        data: cifar_32,
        build: |o, d| Model::ResNet(ResNetConfig::cifar(3).init(o.num_classes, o.in_chans, d)),
    },
    resnet_spec!("resnet18", &[], ResNetConfig::resnet18()),
    resnet_spec!("resnet34", &[], ResNetConfig::resnet34()),
    resnet_spec!("resnet50", &[], ResNetConfig::resnet50()),
    resnet_spec!("resnet101", &[], ResNetConfig::resnet101()),
    resnet_spec!("resnet152", &[], ResNetConfig::resnet152()),
    resnet_spec!("resnext50_32x4d", &[], ResNetConfig::resnext50_32x4d()),
    resnet_spec!("resnext101_32x8d", &[], ResNetConfig::resnext101_32x8d()),
    convnext_spec!("convnext_atto", convnext_224_0875, ConvNeXtConfig::atto()),
    convnext_spec!("convnext_femto", convnext_224_0875, ConvNeXtConfig::femto()),
    convnext_spec!("convnext_pico", convnext_224_0875, ConvNeXtConfig::pico()),
    convnext_spec!("convnext_nano", convnext_224_095, ConvNeXtConfig::nano()),
    convnext_spec!("convnext_tiny", convnext_224_095, ConvNeXtConfig::tiny()),
    convnext_spec!("convnext_small", convnext_224_095, ConvNeXtConfig::small()),
    convnext_spec!("convnext_base", convnext_224_0875, ConvNeXtConfig::base()),
    convnext_spec!("convnext_large", convnext_224_0875, ConvNeXtConfig::large()),
];

/// Finds a model by name or alias (case-insensitive; a `tv:` prefix is accepted).
pub fn find(name: &str) -> Result<&'static ModelSpec, ModelError> {
    let wanted = name.trim().trim_start_matches("tv:").to_ascii_lowercase();
    REGISTRY
        .iter()
        .find(|s| s.name == wanted || s.aliases.contains(&wanted.as_str()))
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            suggestions: suggest(&wanted),
        })
}

fn suggest(wanted: &str) -> Vec<String> {
    let prefix: String = wanted.chars().take(3).collect();
    let mut out: Vec<String> = REGISTRY
        .iter()
        .filter(|s| s.name.starts_with(&prefix) || s.family.starts_with(&prefix))
        .map(|s| s.name.to_string())
        .collect();
    if out.is_empty() {
        out = REGISTRY.iter().map(|s| s.name.to_string()).collect();
    }
    out
}
