//! What a family file declares about its models, below the families (timm's `default_cfgs` +
//! `@register_model`): a table `pub static VARIANTS: &[Variant<FamilyType>]` of its variants
//! and their pretrained configs, whose build fns return the family's own type. The registry
//! (above the families) gathers the tables, wraps each build in [`crate::model::Model`] and
//! does lookup and suggestions.
//!
//! A row is `Variant::tagged(FAMILY, NAME, NAME_TAGS, build)` for a timm name (its bare data
//! config is the default tag's) or `Variant::untagged(FAMILY, NAME, data, build)` for one timm
//! has no weights for (torchvision's names, LeNet-5, the CIFAR ResNets), with `.aliases(..)` /
//! `.num_classes(..)` where they differ from none and 1000. The `NAME_TAGS` tables are written
//! by `scripts/make_pretrained_tags.py` between the family file's `BEGIN generated` and
//! `END generated` lines. Adding a family: give its file a `VARIANTS` table, chain it in
//! `registry::REGISTRY` and add the family to the `models!` list in model.rs
//! (`Model: From<Family>`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

pub use kestrel_data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
pub const MNIST_MEAN: [f32; 1] = [0.1307];
pub const MNIST_STD: [f32; 1] = [0.3081];

/// Eval-time preprocessing in timm's terms (the data keys of `pretrained_cfg`, what
/// `resolve_data_config` returns). Checkpoints store it, so it is owned and serialisable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// (channels, height, width) the model expects.
    pub input_size: [usize; 3],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub crop_pct: f64,
    /// A resampling filter name: nearest, bilinear, bicubic, box, hamming, lanczos.
    pub interpolation: String,
    /// timm's `crop_mode` (center, squash, border) or kestrel's `pad` (see kestrel-data's
    /// `CropMode`).
    #[serde(default = "center")]
    pub crop_mode: String,
    /// timm's `test_input_size` / `test_crop_pct`: a larger eval size these weights were also
    /// measured at (informational; eval uses `input_size`, as timm's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_input_size: Option<[usize; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_crop_pct: Option<f64>,
}

pub(crate) fn center() -> String {
    "center".into()
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub num_classes: usize,
    pub in_chans: usize,
    /// Square input size for the models that are built for one (ViT/DeiT, Swin, T2T-ViT:
    /// their `img_size`); `None` is the model's default. Other families take any size and ignore it.
    pub img_size: Option<usize>,
}

/// One pretrained weight set of a model, timm's `NAME.TAG` (`resnet50.a1_in1k`): the data
/// config those weights were trained and evaluated with.
pub struct PretrainedTag {
    pub tag: &'static str,
    pub data: fn() -> DataConfig,
}

/// What the registry knows of a model besides how to build it: its name, aliases, class count
/// and pretrained tags with their data configs.
pub struct ModelInfo {
    pub name: &'static str,
    pub family: &'static str,
    /// torchvision (or other) names that resolve to this model.
    pub aliases: &'static [&'static str],
    pub default_num_classes: usize,
    /// The data config of the bare name: the default tag's where there are tags.
    pub data: fn() -> DataConfig,
    /// timm's pretrained tags, the default (timm's first-listed) first; empty when kestrel
    /// knows none.
    pub tags: &'static [PretrainedTag],
}

impl ModelInfo {
    /// The data config of the bare name: the default tag's, as timm's `create_model(NAME)`.
    pub fn data_config(&self) -> DataConfig {
        (self.data)()
    }

    /// The data config of pretrained tag `tag` (`None`: the default).
    pub fn tag_data_config(&self, tag: Option<&str>) -> Result<DataConfig, ModelError> {
        let Some(tag) = tag else {
            return Ok(self.data_config());
        };
        self.tags
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| (t.data)())
            .ok_or_else(|| ModelError::UnknownTag {
                model: self.name.to_string(),
                tag: tag.to_string(),
                tags: self.tags.iter().map(|t| t.tag.to_string()).collect(),
            })
    }

    pub fn default_options(&self) -> BuildOptions {
        BuildOptions {
            num_classes: self.default_num_classes,
            in_chans: self.data_config().input_size[0],
            img_size: None,
        }
    }
}

/// One variant of a family: its [`ModelInfo`] and how to build it. `M` is the family's module
/// type.
pub struct Variant<M> {
    pub info: ModelInfo,
    pub build: fn(&BuildOptions, &Device) -> M,
}

impl<M> Variant<M> {
    /// A timm model with pretrained tags `tags` (default first; the bare name's data config is
    /// the default's), 1000 classes, no aliases.
    pub const fn tagged(
        family: &'static str,
        name: &'static str,
        tags: &'static [PretrainedTag],
        build: fn(&BuildOptions, &Device) -> M,
    ) -> Self {
        Variant {
            info: ModelInfo {
                name,
                family,
                aliases: &[],
                default_num_classes: 1000,
                data: tags[0].data,
                tags,
            },
            build,
        }
    }

    /// A model without pretrained tags, evaluated with `data`; 1000 classes, no aliases.
    pub const fn untagged(
        family: &'static str,
        name: &'static str,
        data: fn() -> DataConfig,
        build: fn(&BuildOptions, &Device) -> M,
    ) -> Self {
        Variant {
            info: ModelInfo {
                name,
                family,
                aliases: &[],
                default_num_classes: 1000,
                data,
                tags: &[],
            },
            build,
        }
    }

    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.info.aliases = aliases;
        self
    }

    pub const fn num_classes(mut self, n: usize) -> Self {
        self.info.default_num_classes = n;
        self
    }
}

/// An ImageNet-normalised square eval config without a test size.
pub fn imagenet_eval(size: usize, crop_pct: f64, interpolation: &str) -> DataConfig {
    DataConfig {
        input_size: [3, size, size],
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
        crop_pct,
        interpolation: interpolation.into(),
        crop_mode: center(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

/// torchvision's classic ImageNet eval transforms (resize 256, centre crop 224, bilinear), as
/// timm's `_cfg` writes them: 224 px, crop_pct 0.875.
pub fn torchvision_224() -> DataConfig {
    imagenet_eval(224, 0.875, "bilinear")
}

/// A [`PretrainedTag`] from timm's `pretrained_cfg` values: `tag!(TAG, SIZE, CROP_PCT,
/// INTERPOLATION, CROP_MODE, MEAN, STD, TEST_SIZE, TEST_CROP_PCT)` (square sizes; the test values
/// `None` where timm has none). Family tables are written with it by
/// `scripts/make_pretrained_tags.py`'s output, checked against timm by tests/pretrained_cfgs.rs.
macro_rules! tag {
    ($tag:literal, $size:literal, $crop:literal, $interp:literal, $mode:literal, $mean:expr, $std:expr, $test_size:expr, $test_crop:expr) => {
        $crate::variant::PretrainedTag {
            tag: $tag,
            data: || $crate::variant::DataConfig {
                input_size: [3, $size, $size],
                mean: $mean.to_vec(),
                std: $std.to_vec(),
                crop_pct: $crop,
                interpolation: $interp.into(),
                crop_mode: $mode.into(),
                test_input_size: Option::<usize>::map($test_size, |s| [3, s, s]),
                test_crop_pct: $test_crop,
            },
        }
    };
}
pub(crate) use tag;
