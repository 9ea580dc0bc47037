//! Cross-entropy on soft targets. Hard labels, label smoothing and Mixup/CutMix all reduce to a
//! target distribution per sample, so one loss serves them all.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::TensorData;

/// Mean over the batch of −Σ_k target_k · log softmax(logits)_k.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let log_probs = log_softmax(logits, 1);
    (targets * log_probs).sum_dim(1).mean().neg()
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
