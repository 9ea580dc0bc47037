//! Fine-tuning controls over a model's named tensors: freezing (`--freeze`) and timm's
//! layer-wise lr decay (`--layer-decay`, timm's `param_groups_layer_decay`).
//!
//! Both work on the tensors' timm names ([`kestrel_models::weights::tensor_names`]), so a
//! pattern means what it means in timm. Layers are numbered as timm's `group_with_matcher` numbers
//! them, from each family's `group_matcher(coarse=False)` regexes (copied from timm 1.0).

use std::collections::{BTreeMap, HashMap, HashSet};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use kestrel_models::weights::tensor_names;
use kestrel_models::Model;

use crate::error::TrainError;

/// timm's `MATCH_PREV_GROUP`: a suffix that merges a match into the group before it.
const MATCH_PREV_GROUP: f64 = 99999.0;

/// One rule of a timm group matcher: a regex matched at the start of the name, the ordinal of
/// its dict entry, and an optional suffix ordinal.
struct Rule {
    regex: &'static str,
    ordinal: f64,
    suffix: Option<f64>,
}

const fn rule(regex: &'static str, ordinal: f64, suffix: Option<f64>) -> Rule {
    Rule {
        regex,
        ordinal,
        suffix,
    }
}

/// The family's `group_matcher(coarse=False)` from timm (stem = ordinal 0, blocks = 1).
fn group_rules(model: &Model) -> Option<Vec<Rule>> {
    Some(match model {
        Model::ResNet(_) => vec![
            rule(r"^conv1|bn1|maxpool", 0.0, None),
            rule(r"^layer(\d+)\.(\d+)", 1.0, None),
        ],
        // VisionTransformer's and VisionTransformerDistilled's stems together (a plain ViT has
        // no dist_token, a DeiT no reg_token: the union groups both as timm does).
        Model::Vit(_) => vec![
            rule(
                r"^cls_token|reg_token|pos_embed|patch_embed|norm_pre|dist_token",
                0.0,
                None,
            ),
            rule(r"^blocks\.(\d+)", 1.0, None),
            rule(r"^norm", 1.0, Some(MATCH_PREV_GROUP)),
        ],
        Model::ConvNeXt(_) => vec![
            rule(r"^stem", 0.0, None),
            rule(r"^stages\.(\d+)\.downsample", 1.0, Some(0.0)),
            rule(r"^stages\.(\d+)\.blocks\.(\d+)", 1.0, None),
            rule(r"^norm_pre", 1.0, Some(MATCH_PREV_GROUP)),
        ],
        Model::EfficientNet(_) => vec![
            rule(r"^conv_stem|bn1", 0.0, None),
            rule(r"^blocks\.(\d+)\.(\d+)", 1.0, None),
            rule(r"conv_head|bn2", 1.0, Some(MATCH_PREV_GROUP)),
        ],
        Model::RegNet(_) => vec![
            rule(r"^stem", 0.0, None),
            rule(r"^s(\d+)\.b(\d+)", 1.0, None),
        ],
        Model::Swin(_) => vec![
            rule(r"^patch_embed", 0.0, None),
            rule(r"^layers\.(\d+).downsample", 1.0, Some(0.0)),
            rule(r"^layers\.(\d+)\.\w+\.(\d+)", 1.0, None),
            rule(r"^norm", 1.0, Some(MATCH_PREV_GROUP)),
        ],
        _ => return None,
    })
}

/// The trainable parameters of `model` by timm name (BatchNorm running statistics are buffers
/// in PyTorch, not parameters, and are left out).
fn parameter_names(model: &Model) -> Result<Vec<(ParamId, String)>, TrainError> {
    Ok(tensor_names(model)?
        .into_iter()
        .filter(|(_, name)| {
            let last = name.rsplit('.').next().unwrap_or(name);
            !matches!(last, "running_mean" | "running_var" | "num_batches_tracked")
        })
        .collect())
}

/// timm's `group_with_matcher(named_parameters, group_matcher, reverse=True)`: each parameter
/// name's layer id. Unmatched names (the head) sort last.
pub fn layer_ids(model: &Model) -> Result<BTreeMap<String, usize>, TrainError> {
    let rules = group_rules(model).ok_or_else(|| {
        TrainError::Config(format!(
            "{} models have no layer grouping (timm's group_matcher) in kestrel yet; \
             --layer-decay and --freeze layers:N work for ResNet, ViT/DeiT, ConvNeXt, \
             EfficientNet, RegNet and Swin",
            model.kind()
        ))
    })?;
    // Python's re.match anchors every alternative at the start.
    let compiled: Vec<(regex::Regex, &Rule)> = rules
        .iter()
        .map(|r| {
            let re = regex::Regex::new(&format!("^(?:{})", r.regex)).expect("valid group regex");
            (re, r)
        })
        .collect();
    let ordinal_of = |name: &str| -> Vec<f64> {
        for (re, r) in &compiled {
            if let Some(caps) = re.captures(name) {
                let mut key = vec![r.ordinal];
                key.extend(
                    caps.iter()
                        .skip(1)
                        .flatten()
                        .map(|m| m.as_str().parse::<f64>().expect("digits")),
                );
                key.extend(r.suffix);
                return key;
            }
        }
        vec![f64::INFINITY]
    };
    let mut keys: Vec<(Vec<f64>, String)> = parameter_names(model)?
        .into_iter()
        .map(|(_, name)| (ordinal_of(&name), name))
        .collect();
    // Python sorts the distinct keys as tuples (lexicographically, shorter first on a tie).
    keys.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("no NaN ordinals"));
    let mut ids = BTreeMap::new();
    let mut lid: Option<usize> = None;
    let mut previous_key: Option<&Vec<f64>> = None;
    for (key, name) in &keys {
        if previous_key != Some(key) {
            let merges = *key.last().expect("non-empty key") == MATCH_PREV_GROUP;
            lid = Some(match lid {
                None => 0,
                Some(l) if merges => l,
                Some(l) => l + 1,
            });
            previous_key = Some(key);
        }
        ids.insert(name.clone(), lid.expect("set above"));
    }
    Ok(ids)
}

/// timm's `param_groups_layer_decay` lr scales: `decay^(layer_max − layer_id)` per parameter
/// name (the head, the last layer, keeps 1).
pub fn layer_decay_scales(model: &Model, decay: f64) -> Result<BTreeMap<String, f64>, TrainError> {
    if !(decay > 0.0 && decay <= 1.0) {
        return Err(TrainError::Config(format!(
            "--layer-decay {decay}: must be in (0, 1]"
        )));
    }
    let ids = layer_ids(model)?;
    let layer_max = ids.values().copied().max().unwrap_or(0);
    Ok(ids
        .into_iter()
        .map(|(name, id)| (name, decay.powi((layer_max - id) as i32)))
        .collect())
}

/// The lr scale of each parameter id under `--layer-decay`.
pub fn layer_decay_by_id(model: &Model, decay: f64) -> Result<HashMap<ParamId, f64>, TrainError> {
    let scales = layer_decay_scales(model, decay)?;
    Ok(parameter_names(model)?
        .into_iter()
        .filter_map(|(id, name)| scales.get(&name).map(|s| (id, *s)))
        .collect())
}

/// The names of the parameters `patterns` freeze. A pattern is `backbone` (everything but the
/// classifier), `layers:N` (the first N of timm's layer groups, the stem being the first), or a
/// tensor-name prefix that ends at a `.` (`layer1` is `layer1.*`, not `layer10.*`; `layer1.0.`
/// works too). A pattern that matches nothing, or freezing every parameter, is an error.
pub fn frozen_names(model: &Model, patterns: &[String]) -> Result<HashSet<String>, TrainError> {
    let names: Vec<String> = parameter_names(model)?
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let mut frozen = HashSet::new();
    for pattern in patterns {
        let pattern = pattern.trim();
        let matched: Vec<&String> = if pattern == "backbone" {
            let head = model.classifier_prefixes();
            names
                .iter()
                .filter(|n| !head.iter().any(|h| n.starts_with(h)))
                .collect()
        } else if let Some(count) = pattern.strip_prefix("layers:") {
            let count: usize = count.parse().map_err(|_| {
                TrainError::Config(format!(
                    "--freeze {pattern}: layers:N needs a whole number N"
                ))
            })?;
            let ids = layer_ids(model)?;
            names.iter().filter(|n| ids[n.as_str()] < count).collect()
        } else {
            names
                .iter()
                .filter(|n| {
                    n.starts_with(pattern)
                        && (pattern.ends_with('.')
                            || n.len() == pattern.len()
                            || n[pattern.len()..].starts_with('.'))
                })
                .collect()
        };
        if matched.is_empty() {
            let sample: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
            return Err(TrainError::Config(format!(
                "--freeze {pattern}: matches no parameter of {} (names look like: {}, ...)",
                model.kind(),
                sample.join(", ")
            )));
        }
        frozen.extend(matched.into_iter().cloned());
    }
    if frozen.len() == names.len() {
        return Err(TrainError::Config(format!(
            "--freeze {}: freezes every parameter; nothing would train",
            patterns.join(",")
        )));
    }
    Ok(frozen)
}

/// The parameter ids of [`frozen_names`].
pub fn frozen_ids(model: &Model, patterns: &[String]) -> Result<HashSet<ParamId>, TrainError> {
    let names = frozen_names(model, patterns)?;
    Ok(parameter_names(model)?
        .into_iter()
        .filter(|(_, n)| names.contains(n))
        .map(|(id, _)| id)
        .collect())
}

/// Drops the gradients of `frozen` parameters, so that clipping and the optimizer see them as
/// torch sees `requires_grad=False` parameters: no gradient, no update, no weight decay.
pub fn drop_frozen_gradients<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    frozen: &HashSet<ParamId>,
) {
    struct Dropper<'a> {
        grads: &'a mut GradientsParams,
        frozen: &'a HashSet<ParamId>,
    }
    impl ModuleVisitor for Dropper<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.frozen.contains(&param.id) {
                let _ = self.grads.remove::<D>(param.id);
            }
        }
    }
    if frozen.is_empty() {
        return;
    }
    module.visit(&mut Dropper { grads, frozen });
}
