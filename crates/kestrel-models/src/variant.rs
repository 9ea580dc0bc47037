//! What a family file declares about its models, below the families (timm's `default_cfgs` +
//! `@register_model`): a table `pub static VARIANTS: &[Variant<FamilyType>]` of its variants
//! and their pretrained configs, whose build fns return the family's own type. The registry
//! (above the families) gathers the tables, wraps each build in [`crate::model::Model`] and
//! does lookup and suggestions.
//!
//! Porting a family to the pattern (see `convnext.rs`): move its rows into a `VARIANTS` table in
//! its file, build with `cfg.init(..)` instead of `Model::Family(cfg.init(..))`, and chain the
//! table in `registry::REGISTRY`; the `models!` list in model.rs gives `Model: From<Family>`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

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

/// One variant of a family: its registry name, aliases, class count, eval data config, pretrained
/// tags and how to build it. `M` is the family's module type.
pub struct Variant<M> {
    pub name: &'static str,
    pub family: &'static str,
    /// torchvision (or other) names that resolve to this model.
    pub aliases: &'static [&'static str],
    pub default_num_classes: usize,
    /// The data config of a model without pretrained tags.
    pub data: fn() -> DataConfig,
    /// timm's pretrained tags, the default (timm's first-listed) first; empty when kestrel
    /// knows none.
    pub tags: &'static [PretrainedTag],
    pub build: fn(&BuildOptions, &Device) -> M,
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

/// timm's ResNet default: 224 px, crop_pct 0.875... timm's `resnet*` a1 weights use 0.95 bicubic,
/// but the architecture default (`_cfg`) is 0.875 bilinear, which is what we report.
pub fn imagenet_224() -> DataConfig {
    DataConfig {
        input_size: [3, 224, 224],
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
        crop_pct: 0.875,
        interpolation: "bilinear".into(),
        crop_mode: center(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

/// timm's default for its MobileNet weights: 224 px, crop 0.875, bicubic, ImageNet statistics.
pub fn imagenet_224_bicubic() -> DataConfig {
    DataConfig {
        interpolation: "bicubic".into(),
        ..imagenet_224()
    }
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
