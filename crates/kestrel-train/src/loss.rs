//! Classification and distillation losses, as torch and timm define them
//! (tests/loss_parity.rs checks each against committed torch values).
//!
//! Hard labels, label smoothing and Mixup/CutMix all reduce to a target distribution per
//! sample, so the class losses take soft targets; `smoothed_one_hot` makes them from labels.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

/// The training loss on the class head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Softmax cross-entropy on (smoothed, mixed) targets: timm's SoftTargetCrossEntropy, and
    /// torch's `F.cross_entropy(label_smoothing=ε)` on one-hot targets.
    #[default]
    Ce,
    /// Per-class sigmoid cross-entropy, timm's BinaryCrossEntropy.
    Bce,
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ce" => Ok(LossKind::Ce),
            "bce" => Ok(LossKind::Bce),
            other => Err(format!("unknown loss '{other}'; valid: ce, bce")),
        }
    }
}

/// The loss the trainer minimises: `kind` on `logits` against soft `targets`.
pub fn training_loss(
    kind: LossKind,
    logits: Tensor<2>,
    targets: Tensor<2>,
    bce_target_threshold: Option<f32>,
) -> Tensor<1> {
    match kind {
        LossKind::Ce => soft_cross_entropy(logits, targets),
        LossKind::Bce => binary_cross_entropy(logits, targets, bce_target_threshold, false),
    }
}

/// Mean over the batch of −Σ_k target_k · log softmax(logits)_k.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let log_probs = log_softmax(logits, 1);
    (targets * log_probs).sum_dim(1).mean().neg()
}

/// `F.cross_entropy(logits, labels, label_smoothing=smoothing)`.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize], smoothing: f32) -> Tensor<1> {
    let [n, k] = logits.dims();
    let device = logits.device();
    let targets = targets_tensor(smoothed_one_hot(labels, k, smoothing), n, k, &device);
    soft_cross_entropy(logits, targets)
}

/// timm's BinaryCrossEntropy on soft targets (smoothing, if any, already in them): a target
/// threshold turns targets into 0/1 (`target > threshold`); the loss is the mean over every
/// element, or with `sum_classes` summed over classes and averaged over the batch.
pub fn binary_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<2>,
    target_threshold: Option<f32>,
    sum_classes: bool,
) -> Tensor<1> {
    let targets = match target_threshold {
        Some(threshold) => targets.greater_elem(threshold).float(),
        None => targets,
    };
    // max(x, 0) − x·t + log(1 + e^−|x|): the overflow-free form of BCE with logits.
    let per_element =
        logits.clone().clamp_min(0.0) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    if sum_classes {
        per_element.sum_dim(1).mean()
    } else {
        per_element.mean()
    }
}

/// Hinton's distillation term: KL(teacher/T ‖ student/T)·T², averaged over the batch, as
/// `F.kl_div(log_softmax(s/T), log_softmax(t/T), reduction="batchmean", log_target=True)·T²`.
/// The teacher's logits are a constant.
pub fn distillation_kl(student: Tensor<2>, teacher: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [n, _] = student.dims();
    let log_student = log_softmax(student.div_scalar(temperature), 1);
    let log_teacher = log_softmax(teacher.detach().div_scalar(temperature), 1);
    (log_teacher.clone().exp() * (log_teacher - log_student))
        .sum()
        .div_scalar(n as f64)
        .mul_scalar(temperature * temperature)
}

/// The knowledge-distillation loss: KL·T²·α + CE·(1 − α), the CE on the (soft) targets.
pub fn distillation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    targets: Tensor<2>,
    temperature: f64,
    alpha: f64,
) -> Tensor<1> {
    let kl = distillation_kl(student.clone(), teacher, temperature);
    let ce = soft_cross_entropy(student, targets);
    kl.mul_scalar(alpha) + ce.mul_scalar(1.0 - alpha)
}

/// DeiT's hard distillation: the class head's CE on the targets, and the distillation head's
/// CE on the teacher's argmax, weighted (1 − α) and α (DeiT uses α = 0.5, an average).
pub fn hard_distillation_loss(
    class_logits: Tensor<2>,
    distillation_logits: Tensor<2>,
    teacher: Tensor<2>,
    targets: Tensor<2>,
    alpha: f64,
) -> Tensor<1> {
    let teacher_labels = teacher.detach().argmax(1);
    let distill = log_softmax(distillation_logits, 1)
        .gather(1, teacher_labels)
        .mean()
        .neg();
    let base = soft_cross_entropy(class_logits, targets);
    base.mul_scalar(1.0 - alpha) + distill.mul_scalar(alpha)
}

/// One-hot targets with label smoothing as timm and PyTorch define it:
/// on = 1 − ε + ε/K, off = ε/K.
pub fn smoothed_one_hot(labels: &[usize], num_classes: usize, smoothing: f32) -> Vec<f32> {
    let off = smoothing / num_classes as f32;
    let on = 1.0 - smoothing + off;
    let mut out = vec![off; labels.len() * num_classes];
    for (i, &y) in labels.iter().enumerate() {
        out[i * num_classes + y] = on;
    }
    out
}

pub fn targets_tensor(targets: Vec<f32>, n: usize, k: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(targets, [n, k]), device)
}
