//! The one path from a model to its eval input, as timm's `resolve_data_config` +
//! `create_transform(is_training=False)`. Training, checkpoints and `--model … --weights …`
//! all go through these two functions, so the same weights see the same tensor however they
//! were loaded.

use kestrel_data::recipe::Recipe;
use kestrel_data::transforms::{BasicTrainTransform, EvalTransform, Interpolation};
use kestrel_models::{DataConfig, ModelSpec};

use crate::error::TrainError;

/// The model `name` selects and the data config it is trained and evaluated with. Without a
/// recipe that is the model's own (the pretrained config of `NAME.TAG`, or of the default tag,
/// as timm's `resolve_data_config(model=...)`); a recipe brings its normalisation and eval
/// resize/crop, while the model keeps its input size.
pub fn resolve_data_config(
    name: &str,
    recipe: Option<&Recipe>,
) -> Result<(&'static ModelSpec, DataConfig), TrainError> {
    let (spec, model) = kestrel_models::find_pretrained(name)?;
    let dc = match recipe {
        None => model,
        Some(r) => recipe_data_config(model.input_size, r),
    };
    Ok((spec, dc))
}

/// A recipe's eval settings (normalisation, `crop_pct`, interpolation, crop mode) at a model's
/// input size.
pub fn recipe_data_config(input_size: [usize; 3], r: &Recipe) -> DataConfig {
    DataConfig {
        input_size,
        mean: r.mean.clone(),
        std: r.std.clone(),
        crop_pct: r.eval_crop_pct,
        interpolation: r.eval_interpolation.name().into(),
        crop_mode: r.eval_crop_mode.as_str().into(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

/// timm's default for a folder of photos trained without a recipe, at a model's data config:
/// RandomResizedCrop + horizontal flip for training; resize + centre crop (the model's
/// `crop_pct` when it centre-crops, else timm's 0.875) for eval; the model's normalisation.
pub fn photo_recipe(dc: &DataConfig) -> Recipe {
    let basic = Recipe::default();
    let center = dc.crop_mode == "center";
    Recipe {
        input_size: dc.input_size,
        mean: dc.mean.clone(),
        std: dc.std.clone(),
        eval_crop_pct: if center {
            dc.crop_pct
        } else {
            basic.eval_crop_pct
        },
        eval_interpolation: dc.interpolation.parse().unwrap_or(basic.eval_interpolation),
        ..basic
    }
}

/// The eval transform of a data config: resize (by `crop_pct`), crop, `ToTensor`, `Normalize`.
pub fn eval_transform(dc: &DataConfig) -> Result<EvalTransform, TrainError> {
    let [c, h, w] = dc.input_size;
    let interpolation: Interpolation = dc.interpolation.parse()?;
    Ok(EvalTransform::from_model_config(
        (c, h, w),
        dc.crop_pct,
        interpolation,
        &dc.mean,
        &dc.std,
        &dc.crop_mode,
    )?)
}

/// The train transform of a run without a recipe: the eval transform, then the basic
/// random crop (`crop_padding` pixels) and horizontal flip.
pub fn basic_train_transform(
    dc: &DataConfig,
    crop_padding: usize,
    hflip: bool,
) -> Result<BasicTrainTransform, TrainError> {
    Ok(BasicTrainTransform {
        eval: eval_transform(dc)?,
        crop_padding,
        hflip,
    })
}
