//! VGG (Simonyan & Zisserman 2014), with and without batch norm, in torchvision's layout:
//! `features.N` (3×3 convs with bias, [BN], ReLU, 2×2 max-pools), adaptive average pooling to
//! 7×7, `classifier.N` (Linear 4096, ReLU, Dropout, Linear 4096, ReLU, Dropout, Linear).
//! torchvision checkpoints (`vgg11` ... `vgg19_bn`) load unchanged. timm's `vgg*` models use
//! another head (`pre_logits` convs), so kestrel's `vgg16` is torchvision's (`tv:vgg16`).

use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNormConfig, LinearConfig, Relu};
use burn::prelude::*;

use crate::layers::conv2d;
use crate::sequential::{dropout_mlp_head, run, run_head, HeadLayer, Layer};
use crate::variant::{torchvision_224, Variant};

/// A VGG feature configuration entry: a 3×3 conv of this width, or a max-pool (`M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggItem {
    Conv(usize),
    M,
}

use VggItem::{Conv as C, M};

#[derive(Clone, Debug)]
pub struct VggConfig {
    /// torchvision's `cfgs` entry.
    pub cfg: Vec<VggItem>,
    pub batch_norm: bool,
    /// Width of the two hidden classifier layers (4096); `None` for the small-image nets'
    /// head: global average pooling and one linear layer (`classifier.0`).
    pub hidden: Option<usize>,
    pub dropout: f64,
}

impl VggConfig {
    fn new(cfg: &[VggItem], batch_norm: bool) -> Self {
        VggConfig {
            cfg: cfg.to_vec(),
            batch_norm,
            hidden: Some(4096),
            dropout: 0.5,
        }
    }
    /// A small, wide VGG for 28–32 px images, designed as airbench designs its CIFAR-10 net:
    /// most convs run after the early pools, the width grows where the map is small, and the
    /// head is global average pooling and one linear layer. `[32, 64, M, 64, 128, M, 128, 256,
    /// M, 256]` with batch norm: 1.1 M parameters, 64 M MACs at 28 px (twice resnet20_cifar's,
    /// in 7 convs and a linear layer instead of 19 convs).
    pub fn vgg8_cifar() -> Self {
        let cfg = [C(32), C(64), M, C(64), C(128), M, C(128), C(256), M, C(256)];
        VggConfig {
            hidden: None,
            dropout: 0.0,
            ..Self::new(&cfg, true)
        }
    }
    /// torchvision's cfgs for the standard VGGs: five stages of 3×3 convs, 64 to 512 wide, each
    /// closed by a max-pool; the variants differ only in convs per stage.
    fn standard(convs_per_stage: [usize; 5], batch_norm: bool) -> Self {
        let cfg: Vec<VggItem> = [64, 128, 256, 512, 512]
            .into_iter()
            .zip(convs_per_stage)
            .flat_map(|(width, n)| std::iter::repeat_n(C(width), n).chain([M]))
            .collect();
        Self::new(&cfg, batch_norm)
    }
    /// torchvision cfg "A".
    pub fn vgg11(batch_norm: bool) -> Self {
        Self::standard([1, 1, 2, 2, 2], batch_norm)
    }
    /// torchvision cfg "B".
    pub fn vgg13(batch_norm: bool) -> Self {
        Self::standard([2, 2, 2, 2, 2], batch_norm)
    }
    /// torchvision cfg "D".
    pub fn vgg16(batch_norm: bool) -> Self {
        Self::standard([2, 2, 3, 3, 3], batch_norm)
    }
    /// torchvision cfg "E".
    pub fn vgg19(batch_norm: bool) -> Self {
        Self::standard([2, 2, 4, 4, 4], batch_norm)
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> Vgg {
        let mut features = Vec::new();
        let mut ch = in_chans;
        for item in &self.cfg {
            match *item {
                VggItem::M => features.push(Layer::max_pool(2, 2, 0)),
                VggItem::Conv(out) => {
                    features.push(Layer::Conv(conv2d(ch, out, 3, 1, 1, 1, true, device)));
                    if self.batch_norm {
                        features.push(Layer::Bn(BatchNormConfig::new(out).init(device)));
                    }
                    features.push(Layer::Relu(Relu::new()));
                    ch = out;
                }
            }
        }
        match self.hidden {
            Some(h) => Vgg {
                features,
                avgpool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
                classifier: dropout_mlp_head(
                    ch * 7 * 7,
                    h,
                    num_classes,
                    self.dropout,
                    false,
                    device,
                ),
            },
            None => Vgg {
                features,
                avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
                classifier: vec![HeadLayer::Linear(
                    LinearConfig::new(ch, num_classes).init(device),
                )],
            },
        }
    }
}

#[derive(Module, Debug)]
pub struct Vgg {
    pub features: Vec<Layer>,
    pub avgpool: AdaptiveAvgPool2d,
    pub classifier: Vec<HeadLayer>,
}

impl Vgg {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        run(&self.features, x)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(self.forward_features(x));
        run_head(&self.classifier, x.flatten(1, 3))
    }
}

impl crate::classifier::Classifier for Vgg {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        Vgg::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        match self.classifier.len() {
            1 => &["classifier.0."],
            _ => &["classifier.6."],
        }
    }
}

/// torchvision's VGGs and their eval transforms (`tv:vgg16` resolves here too). timm's `vgg16`
/// etc. share the names but not the head (timm's `pre_logits` ConvMlp), so timm's checkpoints and
/// pretrained tags (`vgg16.tv_in1k`, weights converted to that head) are not these.
pub static VARIANTS: &[Variant<Vgg>] = &[
    Variant::untagged("vgg", "vgg8_cifar", crate::resnet::cifar_32, |o, d| {
        VggConfig::vgg8_cifar().init(o.num_classes, o.in_chans, d)
    })
    .num_classes(10),
    Variant::untagged("vgg", "vgg11", torchvision_224, |o, d| {
        VggConfig::vgg11(false).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg11_bn", torchvision_224, |o, d| {
        VggConfig::vgg11(true).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg13", torchvision_224, |o, d| {
        VggConfig::vgg13(false).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg13_bn", torchvision_224, |o, d| {
        VggConfig::vgg13(true).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg16", torchvision_224, |o, d| {
        VggConfig::vgg16(false).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg16_bn", torchvision_224, |o, d| {
        VggConfig::vgg16(true).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg19", torchvision_224, |o, d| {
        VggConfig::vgg19(false).init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("vgg", "vgg19_bn", torchvision_224, |o, d| {
        VggConfig::vgg19(true).init(o.num_classes, o.in_chans, d)
    }),
];
