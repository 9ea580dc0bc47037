//! torchvision's `nn.Sequential` layouts. A `Vec` of these enums gives exactly PyTorch's indexed
//! key names (`features.3.weight`, `classifier.6.bias`, `branch2.5.weight`): layers without
//! parameters (ReLU, pooling, dropout) still take their index, and the enum variant names never
//! reach the weight files.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, Dropout, DropoutConfig, Identity, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use crate::layers::Counted;

/// One entry of a convolutional `nn.Sequential` (NCHW in, NCHW out).
#[derive(Module, Debug)]
pub enum Layer {
    Conv(Conv2d),
    Bn(BatchNorm),
    Relu(Relu),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    /// `nn.Identity`: keeps its index where PyTorch's Sequential has one (timm's stride-1
    /// ResNet-D shortcut).
    Identity(Identity),
}

impl Layer {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Conv(conv) => conv.run(x),
            Layer::Bn(bn) => crate::layers::bn(bn, x),
            Layer::Relu(relu) => relu.forward(x),
            Layer::MaxPool(pool) => pool.forward(x),
            Layer::AvgPool(pool) => crate::kernels::avg_pool2d(pool, x),
            Layer::Identity(_) => x,
        }
    }

    /// `nn.MaxPool2d(kernel, stride, padding)` (floor mode).
    pub fn max_pool(kernel: usize, stride: usize, padding: usize) -> Layer {
        Layer::MaxPool(max_pool2d(kernel, stride, padding))
    }
}

/// `nn.AvgPool2d(kernel, stride, ceil_mode=True, count_include_pad=False)`, unpadded: windows
/// that overhang the input average only what they cover (timm's ResNet-D shortcut).
pub fn avg_pool2d_ceil(kernel: usize, stride: usize) -> AvgPool2d {
    AvgPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_ceil_mode(true)
        .with_count_include_pad(false)
        .init()
}

/// `nn.MaxPool2d(kernel, stride, padding)` (floor mode).
pub fn max_pool2d(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .init()
}

/// Runs the layers in order.
pub fn run(layers: &[Layer], mut x: Tensor<4>) -> Tensor<4> {
    let mut i = 0;
    while i < layers.len() {
        // BN then ReLU runs as one fused op in training (layers::bn_relu).
        if let (Layer::Bn(bn), Some(Layer::Relu(_))) = (&layers[i], layers.get(i + 1)) {
            x = crate::layers::bn_relu(bn, x);
            i += 2;
        } else {
            x = layers[i].forward(x);
            i += 1;
        }
    }
    x
}

/// One entry of a fully connected `nn.Sequential` ([N, F] in and out).
#[derive(Module, Debug)]
pub enum HeadLayer {
    Linear(Linear),
    Relu(Relu),
    Dropout(Dropout),
}

impl HeadLayer {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            HeadLayer::Linear(linear) => linear.run(x),
            HeadLayer::Relu(relu) => relu.forward(x),
            HeadLayer::Dropout(dropout) => dropout.forward(x),
        }
    }

    pub fn dropout(prob: f64) -> HeadLayer {
        HeadLayer::Dropout(DropoutConfig::new(prob).init())
    }
}

/// Runs the head layers in order.
pub fn run_head(layers: &[HeadLayer], x: Tensor<2>) -> Tensor<2> {
    layers.iter().fold(x, |x, layer| layer.forward(x))
}

/// torchvision's AlexNet/VGG classifier: two hidden Linear + ReLU layers of `hidden` units with
/// dropout, then the output Linear. AlexNet drops out before each hidden Linear, VGG after each
/// hidden ReLU; the layer indices (`classifier.N`, the weight keys) follow from that order.
pub fn dropout_mlp_head(
    in_features: usize,
    hidden: usize,
    num_classes: usize,
    dropout: f64,
    dropout_first: bool,
    device: &Device,
) -> Vec<HeadLayer> {
    let mut head = Vec::with_capacity(7);
    for width_in in [in_features, hidden] {
        let linear = HeadLayer::Linear(LinearConfig::new(width_in, hidden).init(device));
        if dropout_first {
            head.extend([
                HeadLayer::dropout(dropout),
                linear,
                HeadLayer::Relu(Relu::new()),
            ]);
        } else {
            head.extend([
                linear,
                HeadLayer::Relu(Relu::new()),
                HeadLayer::dropout(dropout),
            ]);
        }
    }
    head.push(HeadLayer::Linear(
        LinearConfig::new(hidden, num_classes).init(device),
    ));
    head
}
