//! LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to document
//! recognition").
//!
//! As in the paper: a 32×32 input (28×28 digits padded by 2), C1 = 6 maps of 5×5 convolutions,
//! S2 = 2×2 subsampling, C3 = 16 maps of 5×5, S4 = 2×2 subsampling, C5 = 120 maps of 5×5 (a
//! convolution that covers the whole 5×5 input, so it is fully connected), F6 = 84 units, then the
//! output layer. Subsampling is average pooling and the squashing function is the paper's scaled
//! tanh, 1.7159·tanh(2x/3). Two simplifications, both standard: C3 connects to all six S2 maps
//! (the paper's sparse connection table was a hardware economy), and the output is a linear layer
//! trained with cross-entropy instead of Euclidean RBF units.

use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::layers::conv2d;
use crate::layers::Counted;
use crate::variant::{DataConfig, Variant, MNIST_MEAN, MNIST_STD};
use burn::nn::conv::Conv2d;

#[derive(Module, Debug)]
pub struct LeNet5 {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub pool: AvgPool2d,
}

/// The paper's squashing function: A·tanh(S·x) with A = 1.7159 and S = 2/3.
/// 1.7159·tanh(2x/3): one kestrel kernel pass each way where it applies (flex), else burn's ops.
fn scaled_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    crate::kernels::activation(x, kestrel_kernels::Act::ScaledTanh)
        .unwrap_or_else(|x| x.mul_scalar(2.0 / 3.0).tanh().mul_scalar(1.7159))
}

impl LeNet5 {
    pub fn new(num_classes: usize, in_chans: usize, device: &Device) -> Self {
        LeNet5 {
            conv1: conv2d(in_chans, 6, 5, 1, 0, 1, true, device),
            conv2: conv2d(6, 16, 5, 1, 0, 1, true, device),
            conv3: conv2d(16, 120, 5, 1, 0, 1, true, device),
            fc1: LinearConfig::new(120, 84).init(device),
            fc2: LinearConfig::new(84, num_classes).init(device),
            pool: AvgPool2dConfig::new([2, 2]).init(),
        }
    }

    /// `x`: [N, C, 32, 32] -> logits [N, num_classes].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = crate::kernels::avg_pool2d(&self.pool, scaled_tanh(self.conv1.run(x))); // 6×14×14
        let x = crate::kernels::avg_pool2d(&self.pool, scaled_tanh(self.conv2.run(x))); // 16×5×5
        let x = scaled_tanh(self.conv3.run(x)); // 120×1×1
        let x: Tensor<2> = x.flatten(1, 3);
        let x = scaled_tanh(self.fc1.run(x));
        self.fc2.run(x)
    }
}

impl crate::classifier::Classifier for LeNet5 {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        LeNet5::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["fc2."]
    }
}

/// LeNet-5 as in LeCun et al. 1998: 28×28 digits centred in a 32×32 field (crop_mode "pad":
/// other sizes are first resized to 28×28), MNIST mean/std.
fn mnist_32() -> DataConfig {
    DataConfig {
        input_size: [1, 32, 32],
        mean: MNIST_MEAN.to_vec(),
        std: MNIST_STD.to_vec(),
        crop_pct: 0.875,
        interpolation: "bilinear".into(),
        crop_mode: "pad".into(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

pub static VARIANTS: &[Variant<LeNet5>] =
    &[Variant::untagged("lenet", "lenet5", mnist_32, |o, d| {
        LeNet5::new(o.num_classes, o.in_chans, d)
    })
    .aliases(&["lenet"])
    .num_classes(10)];
