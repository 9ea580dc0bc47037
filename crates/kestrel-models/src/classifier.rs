//! The [`Classifier`] trait every family's top-level module implements. It lives below the
//! families (they import it; it imports none of them), and [`crate::model::Model`] above them
//! wraps the families' types, so no import circle runs through `model.rs`.

use burn::prelude::*;

/// What every family's top-level module provides.
pub trait Classifier {
    /// NCHW images -> logits [N, num_classes].
    fn forward(&self, x: Tensor<4>) -> Tensor<2>;
    /// Tensor-name prefixes (PyTorch names) of the classifier head, which `--num-classes`
    /// re-initialises when fine-tuning to another class count.
    fn classifier_prefixes(&self) -> &'static [&'static str];
    /// The logits and, for models with a second (distillation) head, that head's logits, for a
    /// loss that uses both (DeiT's hard distillation). `forward` is what eval uses.
    fn forward_heads(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        (self.forward(x), None)
    }
    /// Names (last path component) of buffers the model rebuilds from its configuration instead
    /// of loading (Swin's `relative_position_index`, `attn_mask`): checkpoints that contain them
    /// still load, and the file's values are ignored.
    fn rebuilt_buffers(&self) -> &'static [&'static str] {
        &[]
    }
}
