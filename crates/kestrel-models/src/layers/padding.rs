//! TF "same" padding (timm's `pad_same` / `Conv2dSame`), for the TensorFlow-ported weights
//! (EfficientNet `tf_*`, MobileNet `tf_*`) whose convs were built unpadded.

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use crate::layers::{conv2d, Counted};

/// Runs `conv`, first applying TF "same" padding when the conv was built without padding but
/// strides (timm `pad_same`: total max((⌈i/s⌉−1)·s + (k−1)·d + 1 − i, 0), the odd pixel after).
/// Convs built with symmetric padding (see [`create_conv2d`]) run unchanged.
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

/// timm's `create_conv2d(padding='' or 'same')`: a k×k conv with PyTorch's symmetric padding
/// `((stride − 1) + (k − 1)) / 2` (timm's `get_padding`), or, for TF "same" padding with a
/// stride, none here and the asymmetric pad at run time ([`run_same`]).
#[allow(clippy::too_many_arguments)]
pub fn create_conv2d(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    same_padding: bool,
    device: &Device,
) -> Conv2d {
    let pad = if same_padding && stride > 1 {
        0
    } else {
        ((stride - 1) + (kernel - 1)) / 2
    };
    conv2d(in_ch, out_ch, kernel, stride, pad, groups, bias, device)
}
