//! The model registry: every model kestrel can build, by timm's name, with its default input and
//! eval preprocessing. `kestrel models` prints this table.
//!
//! The registry only gathers and looks up: each family file declares its variants, their
//! aliases and timm's pretrained tags with their data configs in its own `VARIANTS` table
//! (`crate::variant`, timm's `default_cfgs` + `@register_model`), and [`REGISTRY`] chains
//! those tables, wrapping each build fn to return a [`Model`]. [`find`] / [`find_pretrained`]
//! resolve `NAME`, `NAME.TAG`, aliases and `tv:NAME`; unknown names get suggestions.

use std::ops::Deref;
use std::sync::LazyLock;

use burn::prelude::*;

use crate::error::ModelError;
use crate::model::Model;

pub use crate::variant::{
    BuildOptions, DataConfig, ModelInfo, PretrainedTag, Variant, IMAGENET_MEAN, IMAGENET_STD,
    MNIST_MEAN, MNIST_STD,
};

/// One registered model, as [`REGISTRY`] holds it: a family's [`Variant`] with its build fn
/// wrapped to return a [`Model`]. Its [`ModelInfo`] fields read through (`spec.name`).
pub struct ModelSpec {
    info: &'static ModelInfo,
    build: Box<dyn Fn(&BuildOptions, &Device) -> Model + Send + Sync>,
}

impl ModelSpec {
    fn of<M: Into<Model> + 'static>(v: &'static Variant<M>) -> Self {
        let build = v.build;
        ModelSpec {
            info: &v.info,
            build: Box::new(move |o, d| build(o, d).into()),
        }
    }

    pub fn build(&self, opts: &BuildOptions, device: &Device) -> Model {
        (self.build)(opts, device)
    }
}

impl Deref for ModelSpec {
    type Target = ModelInfo;
    fn deref(&self) -> &ModelInfo {
        self.info
    }
}

/// Every model kestrel can build, gathered from the family files' `VARIANTS` tables.
pub static REGISTRY: LazyLock<Vec<ModelSpec>> = LazyLock::new(|| {
    fn table<M: Into<Model> + 'static>(
        variants: &'static [Variant<M>],
    ) -> impl Iterator<Item = ModelSpec> {
        variants.iter().map(ModelSpec::of)
    }
    std::iter::empty()
        .chain(table(crate::lenet::VARIANTS))
        .chain(table(crate::resnet::VARIANTS))
        .chain(table(crate::mobilenet::VARIANTS))
        .chain(table(crate::shufflenet::VARIANTS))
        .chain(table(crate::alexnet::VARIANTS))
        .chain(table(crate::vgg::VARIANTS))
        .chain(table(crate::efficientnet::VARIANTS))
        .chain(table(crate::regnet::VARIANTS))
        .chain(table(crate::vit::VARIANTS))
        .chain(table(crate::swin::VARIANTS))
        .chain(table(crate::t2t::VARIANTS))
        .chain(table(crate::convnext::VARIANTS))
        .chain(table(crate::maxxvit::VARIANTS))
        .collect()
});

/// Finds a model by name or alias (case-insensitive). A `tv:` name is first looked up as an
/// alias (`tv:efficientnet_b0` is `tv_efficientnet_b0`, torchvision's, not timm's
/// `efficientnet_b0`), then without the prefix (`tv:resnet50`, `tv:mobilenet_v2`).
///
/// `NAME.TAG` (`resnet50.tv_in1k`) finds NAME and checks that it has pretrained tag TAG; see
/// [`find_pretrained`] for the tag's data config.
pub fn find(name: &str) -> Result<&'static ModelSpec, ModelError> {
    find_pretrained(name).map(|(spec, _)| spec)
}

/// The model and data config `name` selects: `NAME.TAG` that tag's, `tv:NAME` the `tv_in1k`
/// tag's when NAME has one (torchvision's weights), a bare name the default tag's.
pub fn find_pretrained(name: &str) -> Result<(&'static ModelSpec, DataConfig), ModelError> {
    let lower = name.trim().to_ascii_lowercase();
    let (arch, tag) = match lower.split_once('.') {
        Some((arch, tag)) => (arch, Some(tag)),
        None => (lower.as_str(), None),
    };
    let spec = find_arch(arch).map_err(|e| match e {
        ModelError::UnknownModel { suggestions, .. } => ModelError::UnknownModel {
            name: name.to_string(),
            suggestions,
        },
        e => e,
    })?;
    let tag = match tag {
        None if arch.starts_with("tv:") && spec.tags.iter().any(|t| t.tag == "tv_in1k") => {
            Some("tv_in1k")
        }
        tag => tag,
    };
    Ok((spec, spec.tag_data_config(tag)?))
}

fn find_arch(name: &str) -> Result<&'static ModelSpec, ModelError> {
    let exact = name.trim().to_ascii_lowercase();
    let lookup = |wanted: &str| {
        REGISTRY
            .iter()
            .find(|s| s.name == wanted || s.aliases.contains(&wanted))
    };
    let wanted = exact.strip_prefix("tv:").unwrap_or(&exact).to_string();
    lookup(&exact)
        .or_else(|| lookup(&wanted))
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            suggestions: suggest(&wanted),
        })
}

/// timm models whose torchvision counterpart kestrel registers under another name (same
/// family; the architecture may differ in BatchNorm eps or RegNet width rounding, and the eval
/// preprocessing differs). Used to point users who load a torchvision checkpoint under the timm
/// name to torchvision's model. The RegNets' pairs are the family's own table
/// ([`crate::regnet::TORCHVISION_NAMES`]).
const TORCHVISION_COUNTERPARTS: &[(&str, &str)] = &[
    ("mobilenetv2_100", "mobilenet_v2"),
    ("mobilenetv3_small_100", "mobilenet_v3_small"),
    ("mobilenetv3_large_100", "mobilenet_v3_large"),
];

/// The torchvision model that corresponds to timm model `name`, when kestrel registers it under
/// a different name: `mobilenet_v2` for `mobilenetv2_100`, `tv_efficientnet_b5` for
/// `efficientnet_b5`, `tv_convnext_tiny` for `convnext_tiny`, ...
pub fn torchvision_counterpart(name: &str) -> Option<&'static ModelSpec> {
    let spec = find(name).ok()?;
    let tv_name = TORCHVISION_COUNTERPARTS
        .iter()
        .chain(crate::regnet::TORCHVISION_NAMES)
        .find(|(timm, _)| *timm == spec.name)
        .map(|(_, tv)| tv.to_string())
        .unwrap_or_else(|| format!("tv:{}", spec.name));
    let tv = find(&tv_name).ok()?;
    (tv.name != spec.name && tv.family == spec.family).then_some(tv)
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
