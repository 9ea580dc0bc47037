//! Training recipes: every transform of this crate selected by name with parameters, from the
//! CLI (`Recipe::parse_cli("randaugment,hflip=0.0")`) or a JSON/TOML file, with the pipeline
//! order timm's `transforms_imagenet_train` uses:
//! crop → flips → auto-augment *or* colour jitter → ToTensor → Normalize → random erasing.
//! Mixup/CutMix act on batches; [`TrainTransform::mixup`] builds it for the loader.

use std::path::Path;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::augment::AutoAugmentKind;
use crate::error::{DataError, Result};
use crate::image::Image;
use crate::mixup::{Mixup, MixupConfig};
use crate::sample_transform::{Chw, SampleTransform};
use crate::transforms::{
    invalid, normalize, random_hflip, random_vflip, resize, to_channels, to_tensor, ColorJitter,
    CropMode, EraseValue, EvalTransform, Interpolation, Padding, PaddingMode, RandomCrop,
    RandomErasing, RandomResizedCrop, TimmEraseMode, TimmRandomErasing, IMAGENET_MEAN,
    IMAGENET_STD,
};

/// torchvision's `RandomResizedCrop` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomResizedCropConfig {
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

impl Default for RandomResizedCropConfig {
    fn default() -> Self {
        RandomResizedCropConfig {
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

/// torchvision's `RandomCrop` parameters (the crop size is the recipe's input size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomCropConfig {
    pub padding: usize,
    pub padding_mode: PaddingMode,
    pub pad_if_needed: bool,
    pub fill: u8,
}

impl Default for RandomCropConfig {
    fn default() -> Self {
        RandomCropConfig {
            padding: 4,
            padding_mode: PaddingMode::Constant,
            pad_if_needed: false,
            fill: 0,
        }
    }
}

/// torchvision's `ColorJitter` scalars. A file or CLI value that is a single number `v` means
/// timm's `color_jitter: v` (brightness = contrast = saturation = v, hue 0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorJitterConfig {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// Which random-erasing algorithm to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErasingStyle {
    #[default]
    Torchvision,
    Timm,
}

/// The erase value: a number, one number per channel, or `"random"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EraseValueConfig {
    Number(f32),
    PerChannel(Vec<f32>),
    Name(String),
}

impl Default for EraseValueConfig {
    fn default() -> Self {
        EraseValueConfig::Number(0.0)
    }
}

/// Random erasing parameters. `style = "torchvision"` uses `scale`, `ratio`, `value`;
/// `style = "timm"` uses `scale` as (min_area, max_area), `ratio[0]` as min_aspect (max is
/// `ratio[1]`), `mode` and `max_count`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomErasingConfig {
    pub prob: f64,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
    pub value: EraseValueConfig,
    pub style: ErasingStyle,
    pub mode: TimmEraseMode,
    pub max_count: usize,
}

impl Default for RandomErasingConfig {
    fn default() -> Self {
        RandomErasingConfig {
            prob: 0.25,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value: EraseValueConfig::default(),
            style: ErasingStyle::Torchvision,
            mode: TimmEraseMode::Pixel,
            max_count: 1,
        }
    }
}

/// A complete augmentation recipe. Field names follow timm's training arguments where they
/// exist; every field has a default (the "basic" preset), so files list only what differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// [channels, height, width] of the model input.
    pub input_size: [usize; 3],
    pub train_interpolation: Interpolation,
    pub random_resized_crop: Option<RandomResizedCropConfig>,
    pub random_crop: Option<RandomCropConfig>,
    pub hflip: f64,
    pub vflip: f64,
    pub color_jitter: Option<ColorJitterConfig>,
    /// timm skips colour jitter when an auto-augment policy is set; this keeps both.
    pub force_color_jitter: bool,
    /// A policy name, see [`crate::augment::AUTO_AUGMENT_NAMES`].
    pub auto_augment: Option<String>,
    pub random_erasing: Option<RandomErasingConfig>,
    pub mixup: Option<MixupConfig>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// timm's eval `crop_pct` (resize to `floor(size / crop_pct)`, then centre crop).
    pub eval_crop_pct: f64,
    pub eval_interpolation: Interpolation,
    pub eval_crop_mode: CropMode,
}

impl Default for Recipe {
    /// The "basic" preset: torchvision's reference ImageNet training augmentation.
    fn default() -> Self {
        Recipe {
            input_size: [3, 224, 224],
            train_interpolation: Interpolation::Bilinear,
            random_resized_crop: Some(RandomResizedCropConfig::default()),
            random_crop: None,
            hflip: 0.5,
            vflip: 0.0,
            color_jitter: None,
            force_color_jitter: false,
            auto_augment: None,
            random_erasing: None,
            mixup: None,
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
            eval_crop_pct: 0.875,
            eval_interpolation: Interpolation::Bilinear,
            eval_crop_mode: CropMode::Center,
        }
    }
}

/// Preset names and what they are.
pub const PRESETS: [(&str, &str); 8] = [
    (
        "basic",
        "RandomResizedCrop + horizontal flip (torchvision reference)",
    ),
    (
        "randaugment",
        "basic + randaugment-n2-m9 + random erasing 0.25",
    ),
    ("autoaugment", "basic + autoaugment-imagenet"),
    (
        "trivialaugment",
        "basic + trivialaugment + random erasing 0.1",
    ),
    (
        "deit",
        "basic, bicubic + rand-m9-mstd0.5 + timm erasing 0.25 + mixup 0.8 / cutmix 1.0",
    ),
    (
        "cifar",
        "32x32: RandomCrop(padding 4) + horizontal flip, CIFAR-10 mean/std",
    ),
    ("cifar-autoaugment", "cifar + autoaugment-cifar10"),
    ("mnist", "1x28x28, no augmentation, MNIST mean/std"),
];

fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn cifar() -> Recipe {
    Recipe {
        input_size: [3, 32, 32],
        random_resized_crop: None,
        // pad_if_needed changes nothing for 32x32 CIFAR images and keeps smaller ones usable.
        random_crop: Some(RandomCropConfig {
            pad_if_needed: true,
            ..RandomCropConfig::default()
        }),
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
        eval_crop_pct: 1.0,
        ..Recipe::default()
    }
}

impl Recipe {
    /// A named preset (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Recipe> {
        let basic = Recipe::default();
        let r = match name.trim().to_ascii_lowercase().as_str() {
            "basic" | "default" => basic,
            "randaugment" => Recipe {
                auto_augment: Some("randaugment-n2-m9".into()),
                random_erasing: Some(RandomErasingConfig::default()),
                ..basic
            },
            "autoaugment" => Recipe {
                auto_augment: Some("autoaugment-imagenet".into()),
                ..basic
            },
            "trivialaugment" => Recipe {
                auto_augment: Some("trivialaugment".into()),
                random_erasing: Some(RandomErasingConfig {
                    prob: 0.1,
                    ..RandomErasingConfig::default()
                }),
                ..basic
            },
            "deit" => Recipe {
                train_interpolation: Interpolation::Bicubic,
                auto_augment: Some("rand-m9-mstd0.5".into()),
                random_erasing: Some(RandomErasingConfig {
                    style: crate::recipe::ErasingStyle::Timm,
                    ..RandomErasingConfig::default()
                }),
                mixup: Some(MixupConfig {
                    mixup_alpha: 0.8,
                    cutmix_alpha: 1.0,
                    ..MixupConfig::default()
                }),
                eval_interpolation: Interpolation::Bicubic,
                ..basic
            },
            "cifar" => cifar(),
            "cifar-autoaugment" => Recipe {
                auto_augment: Some("autoaugment-cifar10".into()),
                ..cifar()
            },
            "mnist" => Recipe {
                input_size: [1, 28, 28],
                random_resized_crop: None,
                hflip: 0.0,
                mean: vec![0.1307],
                std: vec![0.3081],
                eval_crop_pct: 1.0,
                ..basic
            },
            _ => {
                return invalid(format!(
                    "unknown recipe preset '{name}'; valid presets: {} (or a .json/.toml file)",
                    preset_names()
                ))
            }
        };
        Ok(r)
    }

    /// The CLI form: `PRESET_OR_FILE[,key=value...]`. Keys are field names, dotted for nested
    /// fields (`random_erasing.prob=0.25`); values are JSON (numbers, `true`, `null`, `[..]`)
    /// or bare strings (`auto_augment=rand-m9-n2`).
    pub fn parse_cli(spec: &str) -> Result<Recipe> {
        let parts = split_top_level(spec);
        let mut parts = parts.iter().map(String::as_str);
        let base = parts.next().unwrap_or("").trim();
        let mut value = if looks_like_file(base) {
            load_value(Path::new(base))?
        } else {
            preset_value(base)?
        };
        for item in parts.filter(|p| !p.trim().is_empty()) {
            let (key, raw) = item.split_once('=').ok_or_else(|| {
                DataError::Invalid(format!(
                    "recipe override '{item}' is not key=value (e.g. hflip=0.0)"
                ))
            })?;
            set_path(&mut value, key.trim(), parse_scalar(raw.trim()))?;
        }
        from_value(value)
    }

    /// A JSON (`.json`) or TOML (any other extension) file. A top-level `preset = "name"` starts
    /// from that preset; the file's keys replace the preset's (nested tables merge).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Recipe> {
        from_value(load_value(path.as_ref())?)
    }

    /// Checks every parameter by building the transforms (and Mixup) it describes.
    pub fn validate(&self) -> Result<()> {
        TrainTransform::from_recipe(self)?;
        self.eval_transform()?;
        if let Some(m) = &self.mixup {
            m.validate()?;
        }
        Ok(())
    }

    /// The eval transform this recipe's model is evaluated with.
    pub fn eval_transform(&self) -> Result<EvalTransform> {
        let [c, h, w] = self.input_size;
        EvalTransform::from_model_config(
            (c, h, w),
            self.eval_crop_pct,
            self.eval_interpolation,
            &self.mean,
            &self.std,
            self.eval_crop_mode.as_str(),
        )
    }
}

fn looks_like_file(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    lower.ends_with(".json") || lower.ends_with(".toml") || Path::new(base).is_file()
}

fn preset_value(name: &str) -> Result<Value> {
    serde_json::to_value(Recipe::preset(name)?)
        .map_err(|e| DataError::Invalid(format!("recipe preset '{name}': {e}")))
}

/// Whether a recipe file or CLI spec (see [`Recipe::parse_cli`]) sets `input_size` itself,
/// rather than taking its preset's. Training honours a stated size over the model's own.
pub fn states_input_size(spec_or_file: &str) -> Result<bool> {
    let parts = split_top_level(spec_or_file);
    let base = parts.first().map(|b| b.trim()).unwrap_or("");
    let in_overrides = parts.iter().skip(1).any(|p| {
        p.split_once('=')
            .is_some_and(|(k, _)| k.trim() == "input_size")
    });
    let in_file = looks_like_file(base)
        && read_value(Path::new(base))?
            .as_object()
            .is_some_and(|o| o.contains_key("input_size"));
    Ok(in_overrides || in_file)
}

fn load_value(path: &Path) -> Result<Value> {
    let mut value = read_value(path)?;
    let Some(obj) = value.as_object_mut() else {
        return Err(DataError::format(
            path,
            "a recipe file must be a table/object",
        ));
    };
    match obj.remove("preset") {
        None => Ok(value),
        Some(Value::String(name)) => {
            let mut base = preset_value(&name)?;
            merge(&mut base, value);
            Ok(base)
        }
        Some(other) => Err(DataError::format(
            path,
            format!("'preset' must be a name, got {other}"),
        )),
    }
}

/// A recipe file as written (no preset merged in).
fn read_value(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value: Value = if is_json {
        serde_json::from_str(&text).map_err(|e| DataError::format(path, e.to_string()))?
    } else {
        let t: toml::Value =
            toml::from_str(&text).map_err(|e| DataError::format(path, e.to_string()))?;
        serde_json::to_value(t).map_err(|e| DataError::format(path, e.to_string()))?
    };
    Ok(value)
}

/// Deep merge: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Splits on commas outside brackets, braces and quotes, so `scale=[0.5,1.0]` stays whole.
fn split_top_level(spec: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for ch in spec.chars() {
        match ch {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts
}

fn parse_scalar(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn set_path(root: &mut Value, key: &str, v: Value) -> Result<()> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return invalid(format!("recipe override key '{key}' has an empty part"));
        }
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(obj) = cur else {
            return invalid(format!("recipe override '{key}' does not name a field"));
        };
        if i + 1 == parts.len() {
            obj.insert(part.to_string(), v);
            return Ok(());
        }
        cur = obj.entry(part.to_string()).or_insert(Value::Null);
    }
    Ok(())
}

/// timm's scalar `color_jitter: 0.4` expands to brightness/contrast/saturation.
fn expand_color_jitter(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        if let Some(n) = obj.get("color_jitter").and_then(Value::as_f64) {
            let expanded = serde_json::json!({
                "brightness": n, "contrast": n, "saturation": n, "hue": 0.0
            });
            obj.insert("color_jitter".into(), expanded);
        }
    }
}

fn from_value(mut value: Value) -> Result<Recipe> {
    expand_color_jitter(&mut value);
    let recipe: Recipe = serde_json::from_value(value)
        .map_err(|e| DataError::Invalid(format!("bad recipe: {e}")))?;
    recipe.validate()?;
    Ok(recipe)
}

// ---------------------------------------------------------------------------------------------
// The training transform
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Primary {
    ResizedCrop(RandomResizedCrop),
    Crop(RandomCrop),
    /// Neither crop: resize to the input size (aspect not kept) when the image differs.
    Squash((usize, usize), Interpolation),
}

#[derive(Clone, Debug, PartialEq)]
enum Erasing {
    Torchvision(RandomErasing),
    Timm(TimmRandomErasing),
}

/// The per-sample training transform a [`Recipe`] describes.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTransform {
    pub recipe: Recipe,
    primary: Primary,
    auto_augment: Option<AutoAugmentKind>,
    color_jitter: Option<ColorJitter>,
    erasing: Option<Erasing>,
}

fn check_flip(name: &str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        invalid(format!("{name} must be a probability in [0, 1], got {p}"))
    }
}

fn build_primary(r: &Recipe) -> Result<Primary> {
    let [_, h, w] = r.input_size;
    match (&r.random_resized_crop, &r.random_crop) {
        (Some(_), Some(_)) => invalid(
            "set either random_resized_crop or random_crop, not both (valid: one of them, or \
             neither to resize to input_size)",
        ),
        (Some(c), None) => Ok(Primary::ResizedCrop(RandomResizedCrop::new(
            (h, w),
            (c.scale[0], c.scale[1]),
            (c.ratio[0], c.ratio[1]),
            r.train_interpolation,
        )?)),
        (None, Some(c)) => {
            let mut crop = RandomCrop::new((h, w), Some(Padding::uniform(c.padding)))?;
            crop.pad_if_needed = c.pad_if_needed;
            crop.padding_mode = c.padding_mode;
            crop.fill = vec![c.fill];
            Ok(Primary::Crop(crop))
        }
        (None, None) => Ok(Primary::Squash((h, w), r.train_interpolation)),
    }
}

fn erase_value(v: &EraseValueConfig, channels: usize) -> Result<EraseValue> {
    match v {
        EraseValueConfig::Number(x) => Ok(EraseValue::Const(vec![*x])),
        EraseValueConfig::PerChannel(xs) if xs.len() == 1 || xs.len() == channels => {
            Ok(EraseValue::Const(xs.clone()))
        }
        EraseValueConfig::PerChannel(xs) => invalid(format!(
            "random_erasing value has {} entries; valid: 1 or {channels}",
            xs.len()
        )),
        EraseValueConfig::Name(s) if s.eq_ignore_ascii_case("random") => Ok(EraseValue::Random),
        EraseValueConfig::Name(s) => invalid(format!(
            "random_erasing value '{s}'; valid: a number, one number per channel, or \"random\""
        )),
    }
}

fn build_erasing(c: &RandomErasingConfig, channels: usize) -> Result<Erasing> {
    match c.style {
        ErasingStyle::Torchvision => Ok(Erasing::Torchvision(RandomErasing::new(
            c.prob,
            (c.scale[0], c.scale[1]),
            (c.ratio[0], c.ratio[1]),
            erase_value(&c.value, channels)?,
        )?)),
        ErasingStyle::Timm => Ok(Erasing::Timm(TimmRandomErasing::new(
            c.prob,
            (c.scale[0], c.scale[1]),
            c.ratio[0],
            Some(c.ratio[1]),
            c.mode,
            (1, c.max_count),
        )?)),
    }
}

impl TrainTransform {
    pub fn from_recipe(recipe: &Recipe) -> Result<Self> {
        let [c, h, w] = recipe.input_size;
        if !(c == 1 || c == 3) || h == 0 || w == 0 {
            return invalid(format!(
                "input_size must be [1 or 3, H > 0, W > 0], got [{c}, {h}, {w}]"
            ));
        }
        if recipe.mean.len() != c || recipe.std.len() != c {
            return invalid(format!(
                "mean and std need {c} values each (one per channel), got {} and {}",
                recipe.mean.len(),
                recipe.std.len()
            ));
        }
        if recipe.std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return invalid("std values must be positive");
        }
        check_flip("hflip", recipe.hflip)?;
        check_flip("vflip", recipe.vflip)?;
        let auto_augment = match &recipe.auto_augment {
            Some(name) if !name.trim().is_empty() && name.trim() != "none" => {
                Some(AutoAugmentKind::parse(name)?)
            }
            _ => None,
        };
        let color_jitter = match &recipe.color_jitter {
            Some(j) if auto_augment.is_none() || recipe.force_color_jitter => Some(
                ColorJitter::new(j.brightness, j.contrast, j.saturation, j.hue)?,
            ),
            Some(j) => {
                // Validate even when timm's rule switches it off.
                ColorJitter::new(j.brightness, j.contrast, j.saturation, j.hue)?;
                None
            }
            None => None,
        };
        let erasing = match &recipe.random_erasing {
            Some(e) if e.prob > 0.0 => Some(build_erasing(e, c)?),
            Some(e) => {
                build_erasing(e, c)?;
                None
            }
            None => None,
        };
        Ok(TrainTransform {
            recipe: recipe.clone(),
            primary: build_primary(recipe)?,
            auto_augment,
            color_jitter,
            erasing,
        })
    }

    /// The `u8` part of the pipeline: crop, flips, auto-augment or colour jitter.
    pub fn apply_image(&self, image: Image, rng: &mut StdRng) -> Result<Image> {
        let img = to_channels(image, self.recipe.input_size[0])?;
        let img = match &self.primary {
            Primary::ResizedCrop(c) => c.apply(&img, rng)?,
            Primary::Crop(c) => c.apply(&img, rng)?,
            Primary::Squash((h, w), interp) => resize(&img, *h, *w, *interp)?,
        };
        let mut img = random_hflip(img, self.recipe.hflip, rng)?;
        if self.recipe.vflip > 0.0 {
            img = random_vflip(img, self.recipe.vflip, rng)?;
        }
        if let Some(aa) = &self.auto_augment {
            img = aa.apply(&img, rng)?;
        }
        if let Some(cj) = &self.color_jitter {
            img = cj.apply(&img, rng)?;
        }
        Ok(img)
    }

    /// The batch-level Mixup/CutMix the recipe asks for, if any.
    pub fn mixup(&self, num_classes: usize) -> Result<Option<Mixup>> {
        self.recipe
            .mixup
            .clone()
            .map(|m| Mixup::new(m, num_classes))
            .transpose()
    }
}

impl SampleTransform for TrainTransform {
    fn apply(&self, image: Image, rng: &mut StdRng) -> Result<Chw> {
        let img = self.apply_image(image, rng)?;
        let mut x = to_tensor(&img)?;
        normalize(&mut x, &self.recipe.mean, &self.recipe.std)?;
        match &self.erasing {
            Some(Erasing::Torchvision(e)) => e.apply(&mut x, rng)?,
            Some(Erasing::Timm(e)) => e.apply(&mut x, rng)?,
            None => {}
        }
        Ok(x)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        let [c, h, w] = self.recipe.input_size;
        Some((c, h, w))
    }
}
