//! Each loss matches torch / timm on the same logits and targets
//! (scripts/make_optim_fixtures.py): CE with label smoothing, soft-target CE, timm's
//! BinaryCrossEntropy, the KD loss and DeiT's hard distillation.

use crate::common;

use burn::prelude::*;
use burn::tensor::TensorData;
use kestrel_train::loss::{
    binary_cross_entropy, cross_entropy, distillation_loss, hard_distillation_loss,
    smoothed_one_hot, soft_cross_entropy, targets_tensor,
};
use serde_json::Value;

use common::{assert_close, f32s, fixture};

fn matrix(case: &Value, key: &str, device: &Device) -> Tensor<2> {
    let n = case["n"].as_u64().unwrap() as usize;
    let k = case["k"].as_u64().unwrap() as usize;
    Tensor::from_data(TensorData::new(f32s(&case[key]), [n, k]), device)
}

fn labels(case: &Value) -> Vec<usize> {
    case["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// The case's targets: given soft targets, or its labels one-hot with its smoothing.
fn targets(case: &Value, device: &Device) -> Tensor<2> {
    if case.get("targets").is_some() {
        return matrix(case, "targets", device);
    }
    let n = case["n"].as_u64().unwrap() as usize;
    let k = case["k"].as_u64().unwrap() as usize;
    let smoothing = case["smoothing"].as_f64().unwrap_or(0.0) as f32;
    targets_tensor(smoothed_one_hot(&labels(case), k, smoothing), n, k, device)
}

#[test]
fn every_loss_matches_torch_and_timm() {
    let fixture = fixture("losses.json");
    let device = Device::flex();
    let mut families = std::collections::BTreeSet::new();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let logits = matrix(case, "logits", &device);
        let f = |key: &str| case[key].as_f64().unwrap();
        let family = name.split('_').next().unwrap();
        families.insert(family.to_string());
        let loss = match family {
            "ce" => cross_entropy(logits, &labels(case), f("smoothing") as f32),
            "soft" => soft_cross_entropy(logits, targets(case, &device)),
            "bce" => binary_cross_entropy(
                logits,
                targets(case, &device),
                case["target_threshold"].as_f64().map(|t| t as f32),
                case["sum_classes"].as_bool().unwrap(),
            ),
            "kd" => distillation_loss(
                logits,
                matrix(case, "teacher", &device),
                targets(case, &device),
                f("temperature"),
                f("alpha"),
            ),
            "deit" => hard_distillation_loss(
                logits,
                matrix(case, "dist_logits", &device),
                matrix(case, "teacher", &device),
                targets(case, &device),
                f("alpha"),
            ),
            other => panic!("{name}: unknown loss family {other}"),
        };
        let got = loss.into_scalar::<f32>() as f64;
        assert_close(name, &[got], &[f("value")], 1e-6, 0.0);
        println!("{name}: {got} vs {}", f("value"));
    }
    assert_eq!(families.len(), 5, "{families:?}");
}
