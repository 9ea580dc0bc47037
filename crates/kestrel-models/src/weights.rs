//! Weight import and export with timm/torchvision key names.
//!
//! kestrel's own checkpoints and the files users bring share one layout: PyTorch's (Linear weights
//! [out, in], BatchNorm `weight`/`bias`), with the family's timm key names. burn-store's PyTorch
//! adapters translate to burn's layout, and a few regex rules translate the names that burn
//! structs cannot spell (RegNet's 1-based `s1.b1` blocks are Vec index 1 here). torchvision checkpoints of
//! the families kestrel builds the timm way (MobileNetV2/V3, EfficientNet, RegNet, ConvNeXt) are
//! recognised by their keys and translated to timm's names by the family's `torchvision_to_timm`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::prelude::Shape;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    bridge, ApplyError, ApplyResult, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::TensorData;

use crate::error::ModelError;
use crate::model::Model;
use crate::translation::Translation;

/// Rules that turn checkpoint (PyTorch) names into kestrel module paths. (ResNet's
/// `layerN.M.downsample` needs none: it is a Vec of layers with PyTorch's indices, conv/BN or,
/// for ResNet-D, pool/conv/BN.)
const IMPORT_RULES: &[(&str, &str)] = &[
    // RegNet stages `s1..s4` hold 1-based blocks `bN`, stored at Vec index N; their
    // `downsample` (conv, bn) is the field `shortcut`.
    (r"^(s[1-4])\.b(\d+)\.downsample\.", "${1}.${2}.shortcut."),
    (r"^(s[1-4])\.b(\d+)\.", "${1}.${2}."),
];
/// The inverse of [`IMPORT_RULES`], applied when saving.
const EXPORT_RULES: &[(&str, &str)] = &[
    (r"^(s[1-4])\.(\d+)\.shortcut\.", "${1}.b${2}.downsample."),
    (r"^(s[1-4])\.(\d+)\.", "${1}.b${2}."),
];

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Leave the classifier as initialised (fine-tuning to a different class count): its
    /// tensors may be missing from the file or have another shape.
    pub reinit_classifier: bool,
    /// Extra (regex, replacement) rename rules, applied before kestrel's own.
    pub remap: Vec<(String, String)>,
}

fn remapper(rules: &[(String, String)], builtin: &[(&str, &str)]) -> Result<KeyRemapper, String> {
    let mut pairs: Vec<(String, String)> = rules.to_vec();
    pairs.extend(builtin.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    KeyRemapper::from_patterns(pairs).map_err(|e| format!("bad remap rule: {e}"))
}

/// Saves `model` as safetensors with PyTorch layout and timm names.
pub fn save_safetensors(model: &Model, path: &Path) -> Result<(), ModelError> {
    let werr = |reason: String| ModelError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let mut store = export_store(SafetensorsStore::from_file(path))
        .map_err(werr)?
        .overwrite(true);
    model.save_into(&mut store).map_err(|e| werr(e.to_string()))
}

/// The bytes [`save_safetensors`] would write, for callers that write the file themselves
/// (training checkpoints are staged, fsynced and renamed together with their companions).
pub fn safetensors_bytes(model: &Model) -> Result<Vec<u8>, ModelError> {
    let werr = |reason: String| ModelError::Weights {
        path: PathBuf::from("<in memory>"),
        reason,
    };
    let mut store = export_store(SafetensorsStore::from_bytes(None)).map_err(werr)?;
    model
        .save_into(&mut store)
        .map_err(|e| werr(e.to_string()))?;
    store.get_bytes().map_err(|e| werr(e.to_string()))
}

/// Every tensor of `model` (parameters and buffers) with the name its weight files give it
/// (timm's PyTorch name, as [`save_safetensors`] writes it) and its burn parameter id: how
/// fine-tuning finds tensors by name (`--freeze`, `--layer-decay`). Reads no tensor data.
pub fn tensor_names(model: &Model) -> Result<Vec<(burn::module::ParamId, String)>, ModelError> {
    let werr = |reason: String| ModelError::Weights {
        path: PathBuf::from("<in memory>"),
        reason,
    };
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let (tensors, _) = remapper(&[], EXPORT_RULES).map_err(werr)?.remap(tensors);
    Ok(tensors
        .into_iter()
        .filter_map(|t| Some((burn::module::ParamId::from(t.param_id?), t.name)))
        .collect())
}

/// PyTorch layout, no enum variant names, timm key names.
fn export_store(store: SafetensorsStore) -> Result<SafetensorsStore, String> {
    Ok(store
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .remap(remapper(&[], EXPORT_RULES)?))
}

/// Loads a safetensors or PyTorch (.pth/.pt, zip or legacy) checkpoint into `model`.
///
/// The state dict may sit at the top level or under `state_dict` or `model`.
/// `num_batches_tracked` buffers are ignored. Anything else that does not fit — missing keys,
/// unexpected keys, shape mismatches — is an error listing the first offenders.
///
/// Names go through three steps: the user's `--remap` rules; then, when the file is in
/// torchvision's layout (told by its keys, not by the model's name), the family's translation to
/// timm's names and shapes ([`Translation`]); then kestrel's own [`IMPORT_RULES`]. Errors name
/// tensors as the file does.
pub fn load_weights(
    model: &mut Model,
    path: &Path,
    opts: &LoadOptions,
) -> Result<WeightsLayout, ModelError> {
    Ok(load_weights_reporting(model, path, opts)?.layout)
}

/// What [`load_weights_reporting`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadReport {
    pub layout: WeightsLayout,
    /// With `reinit_classifier`: the file's classifier did not fit (another class count) or
    /// was absent, so the model's classifier is still its random initialisation.
    pub classifier_untrained: bool,
}

/// [`load_weights`], also saying whether the classifier was left untrained.
pub fn load_weights_reporting(
    model: &mut Model,
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, ModelError> {
    let werr = |reason: String| ModelError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(werr("file not found".into()));
    }
    let user = remapper(&opts.remap, &[]).map_err(werr)?;
    let builtin = remapper(&[], IMPORT_RULES).map_err(werr)?;
    let (result, origin) = if is_safetensors(path).map_err(|e| werr(e.to_string()))? {
        let tensors = catch(|| {
            SafetensorsStore::from_file(path)
                .get_all_tensors()
                .map(|m| m.values().cloned().collect::<Vec<_>>())
        })
        .map_err(werr)?
        .map_err(|e| werr(e.to_string()))?;
        catch(|| apply_tensors(model, tensors, &user, &builtin)).map_err(werr)?
    } else {
        let mut last_err = String::new();
        let mut found = None;
        for key in pytorch_top_level_key(path) {
            let read = catch(|| {
                let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
                if let Some(k) = key {
                    store = store.with_top_level_key(k);
                }
                store
                    .get_all_tensors()
                    .map(|m| m.values().cloned().collect::<Vec<_>>())
            })
            .map_err(werr)?;
            match read {
                Ok(tensors) => {
                    let (r, origin) =
                        catch(|| apply_tensors(model, tensors, &user, &builtin)).map_err(werr)?;
                    if !r.applied.is_empty() {
                        found = Some((r, origin));
                        break;
                    }
                    found = found.or(Some((r, origin)));
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        match found {
            Some(r) => r,
            None => {
                return Err(werr(format!(
                    "not a readable PyTorch checkpoint: {last_err}"
                )))
            }
        }
    };
    let classifier_untrained = check_result(model, path, &result, &origin, opts)?;
    Ok(LoadReport {
        layout: origin.layout,
        classifier_untrained,
    })
}

/// [`load_weights`] of a safetensors file already in memory (kestrel's sparse weight files are
/// expanded to one before loading); `path` names it in errors.
pub fn load_safetensors_bytes(
    model: &mut Model,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<(), ModelError> {
    let werr = |reason: String| ModelError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let user = remapper(&[], &[]).map_err(werr)?;
    let builtin = remapper(&[], IMPORT_RULES).map_err(werr)?;
    let tensors = catch(|| {
        SafetensorsStore::from_bytes(Some(bytes))
            .get_all_tensors()
            .map(|m| m.values().cloned().collect::<Vec<_>>())
    })
    .map_err(werr)?
    .map_err(|e| werr(e.to_string()))?;
    let (result, origin) =
        catch(|| apply_tensors(model, tensors, &user, &builtin)).map_err(werr)?;
    check_result(model, path, &result, &origin, &LoadOptions::default())?;
    Ok(())
}

/// Whose key layout a loaded checkpoint was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsLayout {
    /// timm's names (also kestrel's own checkpoints and torchvision files of the families whose
    /// names torchvision and timm share, e.g. ResNet).
    Timm,
    /// torchvision's names, translated by the family (MobileNetV2/V3, EfficientNet, RegNet,
    /// ConvNeXt).
    Torchvision,
}

/// Where the tensors the model saw came from.
struct Origin {
    /// Model name -> the file's own name.
    names: HashMap<String, String>,
    layout: WeightsLayout,
    /// Every tensor of the file, by its own name, with its shape.
    file_tensors: Vec<(String, Vec<usize>)>,
}

/// Picks the family's torchvision translation when the checkpoint's keys are in torchvision's
/// layout; `None` for timm-layout files and families without one.
fn torchvision_translation<'a>(model: &'a Model, keys: &BTreeSet<&str>) -> Option<Translation<'a>> {
    match model {
        Model::MobileNet(m) => m.torchvision_to_timm(keys),
        Model::EfficientNet(m) => m.torchvision_to_timm(keys),
        Model::RegNet(m) => m.torchvision_to_timm(keys),
        Model::ConvNeXt(m) => m.torchvision_to_timm(keys),
        _ => None,
    }
}

/// Renames (and where asked reshapes) `tensors` into kestrel's module paths and applies them.
/// Returns the result and, for every name the model saw, the name the file gave it.
fn apply_tensors(
    model: &mut Model,
    tensors: Vec<PackTensor>,
    user: &KeyRemapper,
    builtin: &KeyRemapper,
) -> (ApplyResult, Origin) {
    let file_names: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let file_tensors = tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect();
    let (tensors, _) = user.remap(tensors);
    let keys: BTreeSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let (tensors, layout) = match torchvision_translation(model, &keys) {
        None => (tensors, WeightsLayout::Timm),
        Some(translate) => {
            let translated = tensors
                .iter()
                .map(|t| match translate(&t.name, t.shape.as_slice()) {
                    None => t.clone(),
                    Some((name, None)) => {
                        let mut t = t.clone();
                        t.name = name;
                        t
                    }
                    Some((name, Some(shape))) => reshaped(t.clone(), name, shape),
                })
                .collect();
            (translated, WeightsLayout::Torchvision)
        }
    };
    let (tensors, _) = builtin.remap(tensors);
    let tensors = fit_to_model(model, tensors);
    let names = tensors
        .iter()
        .map(|t| t.name.clone())
        .zip(file_names)
        .collect();
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    *model = model.clone().to_device_float_dtype();
    (
        result,
        Origin {
            names,
            layout,
            file_tensors,
        },
    )
}

/// Tensors that a family adapts to its own configuration at load time: a ViT's `pos_embed` of
/// another grid is resampled to the model's (timm's `resample_abs_pos_embed`).
fn fit_to_model(model: &Model, tensors: Vec<PackTensor>) -> Vec<PackTensor> {
    let Model::Vit(vit) = model else {
        return tensors;
    };
    tensors
        .into_iter()
        .map(
            |t| match vit.pos_embed_resampler(&t.name, t.shape.as_slice()) {
                None => t,
                Some((shape, resample)) => {
                    let name = t.name.clone();
                    let target = Shape::from(shape.clone());
                    bridge::map_data(t, name, burn::tensor::DType::F32, target, move |data| {
                        let values = data
                            .convert::<f32>()
                            .try_to_vec::<f32>()
                            .unwrap_or_default();
                        TensorData::new(resample(values), shape.clone())
                    })
                }
            },
        )
        .collect()
}

/// `tensor` under a new name and shape (same element count; a different count is left for the
/// applier to report as a shape mismatch).
fn reshaped(tensor: PackTensor, name: String, shape: Vec<usize>) -> PackTensor {
    if shape.iter().product::<usize>() != tensor.shape.num_elements() {
        let mut t = tensor;
        t.name = name;
        return t;
    }
    let dtype = tensor.dtype;
    let target = Shape::from(shape);
    let new = target.clone();
    bridge::map_data(tensor, name, dtype, target, move |data| {
        let (bytes, _, dtype) = data.into_parts();
        TensorData::from_bytes(bytes, new.clone(), dtype)
    })
}

/// Candidate locations of the state dict inside a PyTorch file.
fn pytorch_top_level_key(_path: &Path) -> [Option<&'static str>; 3] {
    [None, Some("state_dict"), Some("model")]
}

fn is_safetensors(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    if path.extension().and_then(|e| e.to_str()) == Some("safetensors") {
        return Ok(true);
    }
    // A safetensors file starts with an 8-byte little-endian header length then '{'.
    let mut head = [0u8; 9];
    let mut f = std::fs::File::open(path)?;
    Ok(f.read_exact(&mut head).is_ok() && head[8] == b'{')
}

/// burn-store reports most problems as values, but a malformed file can still trip an
/// assertion deep in a reader; turn that into an error naming the file instead of a crash.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = kestrel_data::error::panic_message(p.as_ref());
        format!("corrupt or unreadable weights file ({msg})")
    })
}

fn check_result(
    model: &Model,
    path: &Path,
    result: &ApplyResult,
    from: &Origin,
    opts: &LoadOptions,
) -> Result<bool, ModelError> {
    let origin = &from.names;
    // The file's own name for a tensor the model saw under `name`.
    fn file_name<'a>(origin: &'a HashMap<String, String>, name: &'a str) -> &'a str {
        origin.get(name).map_or(name, String::as_str)
    }
    let head = model.classifier_prefixes();
    let in_head = |name: &str| opts.reinit_classifier && head.iter().any(|p| name.starts_with(p));
    // In the file's terms (PyTorch's): a norm's `gamma`/`beta` are its `weight`/`bias`.
    fn pytorch_name(burn: &str) -> String {
        match (burn.strip_suffix(".gamma"), burn.strip_suffix(".beta")) {
            (Some(stem), _) => format!("{stem}.weight"),
            (_, Some(stem)) => format!("{stem}.bias"),
            _ => burn.to_string(),
        }
    }
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !in_head(p))
        .map(pytorch_name)
        .collect();
    let unexpected: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|p| !p.ends_with("num_batches_tracked") && !in_head(p))
        .filter(|p| {
            let leaf = p.rsplit('.').next().unwrap_or(p);
            !model.rebuilt_buffers().contains(&leaf)
        })
        .map(|p| file_name(origin, p))
        .collect();
    let mismatched: Vec<String> = result
        .errors
        .iter()
        .map(|e| {
            // burn prints shapes as `Shape { dims: [6, 1, 5, 5] }`; the file's tools say [6, 1, 5, 5].
            let msg = e
                .to_string()
                .replace("Shape { dims: ", "")
                .replace("] }", "]");
            let path = error_path(e);
            match file_name(origin, path) {
                orig if orig != path => msg.replacen(
                    &format!("'{path}'"),
                    &format!("'{orig}' (kestrel '{path}')"),
                    1,
                ),
                _ => msg.replacen(
                    &format!("'{path}'"),
                    &format!("'{}'", pytorch_name(path)),
                    1,
                ),
            }
        })
        .filter(|e| !head.iter().any(|p| opts.reinit_classifier && e.contains(p)))
        .collect();
    if result.applied.is_empty() && missing.is_empty() && mismatched.is_empty() {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            reason: "no tensors could be read from this file".into(),
        });
    }
    let classifier_untrained = opts.reinit_classifier
        && (result
            .missing
            .iter()
            .any(|(p, _)| head.iter().any(|h| p.starts_with(h)))
            || result
                .errors
                .iter()
                .any(|e| head.iter().any(|h| error_path(e).starts_with(h))));
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        return Ok(classifier_untrained);
    }
    let mut details = String::new();
    let mut list = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            details.push_str(&format!("  {title} ({}): ", items.len()));
            let shown: Vec<String> = items.iter().take(8).cloned().collect();
            details.push_str(&shown.join(", "));
            if items.len() > 8 {
                details.push_str(", ...");
            }
            details.push('\n');
        }
    };
    list("shape mismatches", mismatched);
    list("missing keys", missing);
    list(
        "unexpected keys",
        unexpected.iter().map(|s| s.to_string()).collect(),
    );
    if let Some(likely) = likely_architecture(model, &from.file_tensors) {
        details.push_str(&format!("  {likely}\n"));
    }
    Err(ModelError::Mismatch {
        path: PathBuf::from(path),
        model: model.kind().into(),
        details,
    })
}

/// Every tensor of `model` (parameters and buffers) as its weight files name and shape it.
/// Reads no tensor data (parameters are lazy until used).
fn file_layout(model: &Model) -> BTreeSet<(String, Vec<usize>)> {
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let tensors = match remapper(&[], EXPORT_RULES) {
        Ok(rules) => rules.remap(tensors).0,
        Err(_) => tensors,
    };
    tensors
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect()
}

/// For a file that does not fit `model`: the registry models whose tensors (names and shapes, as
/// weight files spell them) match the file's better than `model`'s do, as a sentence for the
/// error ("this file looks like `resnet50` ..."). The score is the Jaccard index of the two
/// (name, shape) sets; `None` when no registry model beats `model` or none shares half its
/// tensors with the file. Builds each registry model at its defaults (lazily: no weights are
/// made) and lists the tensors of those within a factor of two of the file's size.
fn likely_architecture(model: &Model, file: &[(String, Vec<usize>)]) -> Option<String> {
    let file: BTreeSet<(String, Vec<usize>)> = file
        .iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    if file.is_empty() {
        return None;
    }
    let score = |tensors: &BTreeSet<(String, Vec<usize>)>| {
        let shared = file.intersection(tensors).count();
        (
            shared,
            shared as f64 / (file.len() + tensors.len() - shared) as f64,
        )
    };
    let (_, own) = score(&file_layout(model));
    let device = burn::prelude::Device::flex();
    let mut best: Vec<(&'static str, usize)> = Vec::new();
    let mut best_score = own.max(0.5);
    // Listing a model's tensors as files name them materialises its weights, so only models of
    // about the file's size are listed (their parameter count is read from lazy shapes).
    let file_values: usize = file.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    for spec in crate::registry::REGISTRY.iter() {
        let candidate = spec.build(&spec.default_options(), &device);
        let params = candidate.num_trainable_params();
        if params * 2 < file_values || params > file_values * 2 {
            continue;
        }
        let (shared, s) = score(&file_layout(&candidate));
        if s > best_score + 1e-9 {
            best_score = s;
            best = vec![(spec.name, shared)];
        } else if (s - best_score).abs() <= 1e-9 && !best.is_empty() {
            best.push((spec.name, shared));
        }
    }
    let (_, shared) = *best.first()?;
    let names: Vec<String> = best.iter().map(|(n, _)| format!("`{n}`")).collect();
    Some(format!(
        "this file looks like {} ({shared} of its {} tensors match that model's names and \
         shapes): load it into that model",
        names.join(" or "),
        file.len()
    ))
}

fn error_path(e: &ApplyError) -> &str {
    match e {
        ApplyError::ShapeMismatch { path, .. }
        | ApplyError::DTypeMismatch { path, .. }
        | ApplyError::AdapterError { path, .. }
        | ApplyError::LoadError { path, .. } => path,
    }
}

/// Parses a `--remap` file: one `REGEX => REPLACEMENT` (or tab-separated) rule per line;
/// blank lines and `#` comments are skipped.
pub fn parse_remap_file(path: &Path) -> Result<Vec<(String, String)>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (from, to) = line
            .split_once("=>")
            .or_else(|| line.split_once('\t'))
            .ok_or_else(|| ModelError::Weights {
                path: path.to_path_buf(),
                reason: format!("line {}: expected 'REGEX => REPLACEMENT'", i + 1),
            })?;
        let from = from.trim().to_string();
        regex_check(&from).map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", i + 1),
        })?;
        rules.push((from, to.trim().to_string()));
    }
    Ok(rules)
}

fn regex_check(pattern: &str) -> Result<(), String> {
    KeyRemapper::new()
        .add_pattern(pattern, "")
        .map(|_| ())
        .map_err(|e| e.to_string())
}
