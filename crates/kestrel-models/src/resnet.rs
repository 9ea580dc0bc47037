//! ResNet and ResNeXt (He et al. 2015; Xie et al. 2016), in timm's and torchvision's layout:
//! `conv1`, `bn1`, `layer1..layer4` of `BasicBlock`/`Bottleneck`, `fc`. Both libraries share the
//! key names, so either checkpoint loads unchanged.
//!
//! The same code builds the CIFAR-style ResNets of He et al. §4.2 (3×3 stem, no max-pool, three
//! stages of 16/32/64 channels), which suit 28–32 px inputs.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::attention::{AttnKind, BlockAttention};
use crate::layers::Counted;
use crate::layers::{batch_norm, bn, bn_relu, conv2d, global_avg_pool};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StemKind {
    /// ImageNet stem: 7×7/2 conv then 3×3/2 max-pool (timm's default).
    ImageNet,
    /// CIFAR stem: one 3×3/1 conv, no pooling.
    Cifar,
}

/// One ResNet variant.
#[derive(Clone, Debug)]
pub struct ResNetConfig {
    pub block: BlockKind,
    pub layers: Vec<usize>,
    /// Output width of each stage before the bottleneck expansion.
    pub widths: Vec<usize>,
    pub stem: StemKind,
    pub stem_width: usize,
    /// ResNeXt cardinality and per-group width (1 and 64 for plain ResNets).
    pub groups: usize,
    pub base_width: usize,
    /// Attention on each block's residual branch (timm `block_args=dict(attn_layer=...)`).
    pub attn: Option<AttnKind>,
}

impl ResNetConfig {
    fn imagenet(block: BlockKind, layers: [usize; 4]) -> Self {
        ResNetConfig {
            block,
            layers: layers.to_vec(),
            widths: vec![64, 128, 256, 512],
            stem: StemKind::ImageNet,
            stem_width: 64,
            groups: 1,
            base_width: 64,
            attn: None,
        }
    }
    pub fn resnet18() -> Self {
        Self::imagenet(BlockKind::Basic, [2, 2, 2, 2])
    }
    pub fn resnet34() -> Self {
        Self::imagenet(BlockKind::Basic, [3, 4, 6, 3])
    }
    pub fn resnet50() -> Self {
        Self::imagenet(BlockKind::Bottleneck, [3, 4, 6, 3])
    }
    pub fn resnet101() -> Self {
        Self::imagenet(BlockKind::Bottleneck, [3, 4, 23, 3])
    }
    pub fn resnet152() -> Self {
        Self::imagenet(BlockKind::Bottleneck, [3, 8, 36, 3])
    }
    pub fn resnext50_32x4d() -> Self {
        ResNetConfig {
            groups: 32,
            base_width: 4,
            ..Self::resnet50()
        }
    }
    pub fn resnext101_32x8d() -> Self {
        ResNetConfig {
            groups: 32,
            base_width: 8,
            ..Self::resnet101()
        }
    }
    /// He et al.'s CIFAR ResNet with `n` basic blocks per stage: depth 6n + 2.
    pub fn cifar(n: usize) -> Self {
        ResNetConfig {
            block: BlockKind::Basic,
            layers: vec![n, n, n],
            widths: vec![16, 32, 64],
            stem: StemKind::Cifar,
            stem_width: 16,
            groups: 1,
            base_width: 64,
            attn: None,
        }
    }

    fn expansion(&self) -> usize {
        match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> ResNet {
        let (kernel, stride, pad) = match self.stem {
            StemKind::ImageNet => (7, 2, 3),
            StemKind::Cifar => (3, 1, 1),
        };
        let conv1 = conv2d(
            in_chans,
            self.stem_width,
            kernel,
            stride,
            pad,
            1,
            false,
            device,
        );
        let bn1 = batch_norm(self.stem_width, device);
        let maxpool = (self.stem == StemKind::ImageNet).then(|| {
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init()
        });
        let mut in_ch = self.stem_width;
        let mut stages = Vec::new();
        for (i, (&depth, &width)) in self.layers.iter().zip(&self.widths).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let mut blocks = Vec::new();
            for b in 0..depth {
                let block_stride = if b == 0 { stride } else { 1 };
                blocks.push(Block::new(self, in_ch, width, block_stride, device));
                in_ch = width * self.expansion();
            }
            stages.push(blocks);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        ResNet {
            conv1,
            bn1,
            maxpool,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            fc: LinearConfig::new(in_ch, num_classes).init(device),
        }
    }
}

/// The projection shortcut: 1×1 conv + BN. Stored as `downsample.0` / `downsample.1` in
/// PyTorch checkpoints; the weight loader maps those to `conv` / `bn`.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    /// Present for bottleneck blocks only.
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
    /// Branch attention (SE/ECA/CBAM); timm names it `se` whatever its kind.
    pub se: Option<BlockAttention>,
}

impl Block {
    fn new(cfg: &ResNetConfig, in_ch: usize, width: usize, stride: usize, device: &Device) -> Self {
        let out_ch = width * cfg.expansion();
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: conv2d(in_ch, out_ch, 1, stride, 0, 1, false, device),
            bn: batch_norm(out_ch, device),
        });
        let se = cfg.attn.map(|a| a.init(out_ch, device));
        match cfg.block {
            BlockKind::Basic => Block {
                conv1: conv2d(in_ch, width, 3, stride, 1, 1, false, device),
                bn1: batch_norm(width, device),
                conv2: conv2d(width, width, 3, 1, 1, 1, false, device),
                bn2: batch_norm(width, device),
                conv3: None,
                bn3: None,
                downsample,
                se,
            },
            BlockKind::Bottleneck => {
                // ResNeXt widens the 3×3 group conv: width·(base_width/64)·groups.
                let mid = width * cfg.base_width / 64 * cfg.groups;
                Block {
                    conv1: conv2d(in_ch, mid, 1, 1, 0, 1, false, device),
                    bn1: batch_norm(mid, device),
                    conv2: conv2d(mid, mid, 3, stride, 1, cfg.groups, false, device),
                    bn2: batch_norm(mid, device),
                    conv3: Some(conv2d(mid, out_ch, 1, 1, 0, 1, false, device)),
                    bn3: Some(batch_norm(out_ch, device)),
                    downsample,
                    se,
                }
            }
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(ds) => bn(&ds.bn, ds.conv.run(x.clone())),
            None => x.clone(),
        };
        let y = bn_relu(&self.bn1, self.conv1.run(x));
        let y = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => bn(bn3, conv3.run(bn_relu(&self.bn2, self.conv2.run(y)))),
            _ => bn(&self.bn2, self.conv2.run(y)),
        };
        let y = match &self.se {
            Some(attn) => attn.forward(y),
            None => y,
        };
        relu(y + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    pub fc: Linear,
}

impl ResNet {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = bn_relu(&self.bn1, self.conv1.run(x));
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        x
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(global_avg_pool(self.forward_features(x)))
    }
}

impl crate::model::Classifier for ResNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["fc."]
    }
}
