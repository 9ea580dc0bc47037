//! Batched inference: class probabilities for every sample a loader yields.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;
use kestrel_data::loader::Loader;
use kestrel_deploy::Runner;
use kestrel_models::Model;

use crate::error::TrainError;

/// Probabilities (row-major N×K), true labels and dataset indices, in loader order.
pub struct Predictions {
    pub labels: Vec<usize>,
    pub probs: Vec<f32>,
    pub indices: Vec<usize>,
    pub num_classes: usize,
}

/// Moves the batch's pixels into a tensor (no copy of the pixel buffer on the hot path).
pub fn batch_to_tensor(images: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(images, shape), device)
}

/// `model` should be in eval mode (`model.valid()`); runs on burn.
pub fn predict(model: &Model, loader: &Loader, device: &Device) -> Result<Predictions, TrainError> {
    predict_with(&Runner::Burn(model.clone(), device.clone()), loader, device)
}

/// [`predict`] on any engine.
pub fn predict_with(
    runner: &Runner,
    loader: &Loader,
    device: &Device,
) -> Result<Predictions, TrainError> {
    let mut out = Predictions {
        labels: vec![],
        probs: vec![],
        indices: vec![],
        num_classes: 0,
    };
    for batch in loader.iter_epoch(0) {
        let mut batch = batch?;
        if batch.labels.is_empty() {
            continue;
        }
        let logits = runner
            .forward(batch_to_tensor(
                std::mem::take(&mut batch.images),
                batch.shape,
                device,
            ))
            .map_err(TrainError::Engine)?;
        out.num_classes = logits.dims()[1];
        let probs = softmax(logits, 1).into_data();
        out.probs
            .extend(probs.try_to_vec::<f32>().expect("f32 logits"));
        out.labels.extend(&batch.labels);
        out.indices.extend(&batch.indices);
    }
    Ok(out)
}
