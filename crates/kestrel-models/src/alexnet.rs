//! AlexNet (Krizhevsky et al. 2012) as torchvision builds it (the one-GPU variant of
//! "One weird trick", Krizhevsky 2014): `features.N` (11×11/4, 5×5, three 3×3 convs with ReLU and
//! 3×3/2 max-pools), adaptive average pooling to 6×6, `classifier.N` (Dropout, Linear 4096, ReLU,
//! Dropout, Linear 4096, ReLU, Linear). torchvision's `alexnet` checkpoints load unchanged.

use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::Relu;
use burn::prelude::*;

use crate::layers::conv2d;
use crate::sequential::{dropout_mlp_head, run, run_head, HeadLayer, Layer};
use crate::variant::{torchvision_224, Variant};

#[derive(Clone, Debug)]
pub struct AlexNetConfig {
    /// Output channels of the five convolutions (64, 192, 384, 256, 256).
    pub widths: [usize; 5],
    /// Width of the two hidden classifier layers (4096).
    pub hidden: usize,
    pub dropout: f64,
}

impl AlexNetConfig {
    pub fn alexnet() -> Self {
        AlexNetConfig {
            widths: [64, 192, 384, 256, 256],
            hidden: 4096,
            dropout: 0.5,
        }
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> AlexNet {
        let w = self.widths;
        let conv = |i: usize, o: usize, k: usize, s: usize, p: usize| {
            Layer::Conv(conv2d(i, o, k, s, p, 1, true, device))
        };
        let relu = || Layer::Relu(Relu::new());
        let features = vec![
            conv(in_chans, w[0], 11, 4, 2),
            relu(),
            Layer::max_pool(3, 2, 0),
            conv(w[0], w[1], 5, 1, 2),
            relu(),
            Layer::max_pool(3, 2, 0),
            conv(w[1], w[2], 3, 1, 1),
            relu(),
            conv(w[2], w[3], 3, 1, 1),
            relu(),
            conv(w[3], w[4], 3, 1, 1),
            relu(),
            Layer::max_pool(3, 2, 0),
        ];
        let h = self.hidden;
        AlexNet {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new([6, 6]).init(),
            classifier: dropout_mlp_head(w[4] * 6 * 6, h, num_classes, self.dropout, true, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct AlexNet {
    pub features: Vec<Layer>,
    pub avgpool: AdaptiveAvgPool2d,
    pub classifier: Vec<HeadLayer>,
}

impl AlexNet {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        run(&self.features, x)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(self.forward_features(x));
        run_head(&self.classifier, x.flatten(1, 3))
    }
}

impl crate::classifier::Classifier for AlexNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        AlexNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["classifier.6."]
    }
}

/// torchvision's `alexnet` (timm has none): torchvision's eval transforms.
pub static VARIANTS: &[Variant<AlexNet>] = &[Variant::untagged(
    "alexnet",
    "alexnet",
    torchvision_224,
    |o, d| AlexNetConfig::alexnet().init(o.num_classes, o.in_chans, d),
)];
