//! TF "same" padding (timm's `pad_same` / `Conv2dSame`), for the TensorFlow-ported weights
//! (EfficientNet `tf_*`, MobileNet `tf_*`) whose convs were built unpadded.

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use crate::layers::Counted;

/// Runs `conv`, first applying TF "same" padding when the conv was built without padding but
/// strides (timm `pad_same`: total max((⌈i/s⌉−1)·s + (k−1)·d + 1 − i, 0), the odd pixel after).
/// Convs built with symmetric padding (see [`BuilderConfig::conv`]) run unchanged.
pub fn run_same(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let unpadded = matches!(
        conv.padding,
        PaddingConfig2d::Explicit(0, 0, 0, 0) | PaddingConfig2d::Valid
    );
    if !unpadded || conv.kernel_size[0] == 1 {
        return conv.run(x);
    }
    let [_, _, h, w] = x.dims();
    let pad = |i: usize, k: usize, s: usize, d: usize| -> (usize, usize) {
        let total = ((i.div_ceil(s) - 1) * s + (k - 1) * d + 1).saturating_sub(i);
        (total / 2, total - total / 2)
    };
    let (top, bottom) = pad(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0]);
    let (left, right) = pad(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1]);
    let x = if top + bottom + left + right > 0 {
        x.pad((left, right, top, bottom), PadMode::Constant(0.0))
    } else {
        x
    };
    conv.run(x)
}
