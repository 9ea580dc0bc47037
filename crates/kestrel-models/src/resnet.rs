//! ResNet and ResNeXt (He et al. 2015; Xie et al. 2016), in timm's and torchvision's layout:
//! `conv1`, `bn1`, `layer1..layer4` of `BasicBlock`/`Bottleneck`, `fc`. Both libraries share the
//! key names, so either checkpoint loads unchanged.
//!
//! timm's ResNet-D options (He et al. 2018, "Bag of Tricks", §4.1) are config switches: the deep
//! stem (three 3×3 convs, `conv1.{0,1,3,4,6}`; `deep_tiered` for the 26t/`t` variants) and the
//! average-pool shortcut (`downsample.{1,2}` after a 2×2 ceil-mode average pool at index 0).
//! Wide ResNets are bottleneck ResNets with `base_width` 128.
//!
//! The same code builds the CIFAR-style ResNets of He et al. §4.2 (3×3 stem, no max-pool, three
//! stages of 16/32/64 channels), which suit 28–32 px inputs.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Identity, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

use crate::layers::channel_attention::{AttnKind, BlockAttention};
use crate::layers::Counted;
use crate::layers::{batch_norm, bn, bn_relu, conv2d, global_avg_pool};
use crate::sequential::{avg_pool2d_ceil, run, Layer};
use crate::variant::{tag, DataConfig, PretrainedTag, Variant};

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
    /// timm `stem_type='deep'`: 3×3/2 conv to `stem_width`, 3×3 to `stem_width`, 3×3 to
    /// 2·`stem_width`, each but the last with BN + ReLU, then the 3×3/2 max-pool.
    Deep,
    /// timm `stem_type='deep_tiered'`: as `Deep` with the first conv 3/4 as wide.
    DeepTiered,
}

/// One ResNet variant.
#[derive(Clone, Debug)]
pub struct ResNetConfig {
    pub block: BlockKind,
    pub layers: Vec<usize>,
    /// Output width of each stage before the bottleneck expansion.
    pub widths: Vec<usize>,
    pub stem: StemKind,
    /// Output width of the 7×7 / CIFAR stem conv; for the deep stems timm's `stem_width`, the
    /// width of the inner convs (the stem outputs twice that).
    pub stem_width: usize,
    /// timm `avg_down`: the projection shortcut average-pools (2×2, ceil mode) before a
    /// stride-1 1×1 conv instead of striding the conv.
    pub avg_down: bool,
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
            avg_down: false,
            attn: None,
        }
    }
    /// The "D" variant of `self`: deep stem of width 32 and average-pool shortcuts (timm's
    /// `stem_width=32, stem_type='deep', avg_down=True`).
    pub fn resnet_d(self) -> Self {
        ResNetConfig {
            stem: StemKind::Deep,
            stem_width: 32,
            avg_down: true,
            ..self
        }
    }
    /// The "T" variant: the D variant with the tiered deep stem (timm's `deep_tiered`).
    pub fn resnet_t(self) -> Self {
        ResNetConfig {
            stem: StemKind::DeepTiered,
            ..self.resnet_d()
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
    /// timm's `resnet26d` base: bottleneck blocks, two per stage.
    pub fn resnet26() -> Self {
        Self::imagenet(BlockKind::Bottleneck, [2, 2, 2, 2])
    }
    /// Wide ResNet-50-2 / 101-2 (Zagoruyko & Komodakis): bottlenecks twice as wide inside.
    pub fn wide_resnet50_2() -> Self {
        ResNetConfig {
            base_width: 128,
            ..Self::resnet50()
        }
    }
    pub fn wide_resnet101_2() -> Self {
        ResNetConfig {
            base_width: 128,
            ..Self::resnet101()
        }
    }
    /// timm's `seresnext101_32x4d` base: ResNeXt-101 32×4d.
    pub fn resnext101_32x4d() -> Self {
        ResNetConfig {
            groups: 32,
            base_width: 4,
            ..Self::resnet101()
        }
    }
    /// timm's `seresnext26d_32x4d` / `26t` base: ResNeXt 32×4d with two bottlenecks per stage.
    pub fn resnext26_32x4d() -> Self {
        ResNetConfig {
            groups: 32,
            base_width: 4,
            ..Self::resnet26()
        }
    }
    /// timm's SE-ResNet(X)s: a squeeze-excitation in every block (`attn_layer='se'`).
    pub fn se(self) -> Self {
        ResNetConfig {
            attn: Some(AttnKind::Se),
            ..self
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
            avg_down: false,
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
        let (conv1, stem_out) = match self.stem {
            StemKind::ImageNet | StemKind::Cifar => {
                let (kernel, stride, pad) = match self.stem {
                    StemKind::ImageNet => (7, 2, 3),
                    _ => (3, 1, 1),
                };
                let conv = conv2d(
                    in_chans,
                    self.stem_width,
                    kernel,
                    stride,
                    pad,
                    1,
                    false,
                    device,
                );
                (Stem::Conv(conv), self.stem_width)
            }
            StemKind::Deep | StemKind::DeepTiered => {
                let w = self.stem_width;
                let first = if self.stem == StemKind::DeepTiered {
                    3 * (w / 4)
                } else {
                    w
                };
                let layers = vec![
                    Layer::Conv(conv2d(in_chans, first, 3, 2, 1, 1, false, device)),
                    Layer::Bn(batch_norm(first, device)),
                    Layer::Relu(Relu::new()),
                    Layer::Conv(conv2d(first, w, 3, 1, 1, 1, false, device)),
                    Layer::Bn(batch_norm(w, device)),
                    Layer::Relu(Relu::new()),
                    Layer::Conv(conv2d(w, 2 * w, 3, 1, 1, 1, false, device)),
                ];
                (Stem::Deep(layers), 2 * w)
            }
        };
        let bn1 = batch_norm(stem_out, device);
        let maxpool = (self.stem != StemKind::Cifar).then(|| {
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init()
        });
        let mut in_ch = stem_out;
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

/// The stem's convolutions, `conv1` in timm (its BN and ReLU are `bn1`, `act1` either way).
#[derive(Module, Debug)]
pub enum Stem {
    /// One 7×7/2 (or CIFAR 3×3/1) conv: `conv1.weight`.
    Conv(Conv2d),
    /// timm's deep stem, its `nn.Sequential` indices as keys: conv, BN, ReLU, conv, BN, ReLU,
    /// conv (`conv1.0`, `conv1.1`, `conv1.3`, `conv1.4`, `conv1.6`).
    Deep(Vec<Layer>),
}

impl Stem {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Stem::Conv(conv) => conv.run(x),
            Stem::Deep(layers) => run(layers, x),
        }
    }
}

/// The projection shortcut as timm's `nn.Sequential`: `[conv 1×1/s, BN]` (`downsample.0`,
/// `downsample.1`), or with `avg_down` `[2×2/s ceil-mode average pool (identity at stride 1),
/// conv 1×1, BN]` (`downsample.1`, `downsample.2`).
fn downsample(
    cfg: &ResNetConfig,
    in_ch: usize,
    out_ch: usize,
    stride: usize,
    device: &Device,
) -> Vec<Layer> {
    let bn = Layer::Bn(batch_norm(out_ch, device));
    if !cfg.avg_down {
        let conv = conv2d(in_ch, out_ch, 1, stride, 0, 1, false, device);
        return vec![Layer::Conv(conv), bn];
    }
    let pool = if stride == 1 {
        Layer::Identity(Identity::new())
    } else {
        Layer::AvgPool(avg_pool2d_ceil(2, stride))
    };
    let conv = conv2d(in_ch, out_ch, 1, 1, 0, 1, false, device);
    vec![pool, Layer::Conv(conv), bn]
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
    /// The projection shortcut (see [`downsample`]), where the block changes shape.
    pub downsample: Option<Vec<Layer>>,
    /// Branch attention (SE/ECA/CBAM); timm names it `se` whatever its kind.
    pub se: Option<BlockAttention>,
}

impl Block {
    fn new(cfg: &ResNetConfig, in_ch: usize, width: usize, stride: usize, device: &Device) -> Self {
        let out_ch = width * cfg.expansion();
        let downsample = (stride != 1 || in_ch != out_ch)
            .then(|| downsample(cfg, in_ch, out_ch, stride, device));
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
            Some(ds) => run(ds, x.clone()),
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
        crate::kernels::residual_add(y, shortcut, true)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Stem,
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
        let mut x = bn_relu(&self.bn1, self.conv1.forward(x));
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

impl crate::classifier::Classifier for ResNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["fc."]
    }
}

/// He et al.'s CIFAR-10 ResNets: 32 px, CIFAR-10 statistics, no resize or crop.
pub(crate) fn cifar_32() -> DataConfig {
    DataConfig {
        input_size: [3, 32, 32],
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
        crop_pct: 1.0,
        interpolation: "bilinear".into(),
        crop_mode: "center".into(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `resnet18` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET18_TAGS: &[PretrainedTag] = &[
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_swsl_ig1b_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet34` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET34_TAGS: &[PretrainedTag] = &[
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("bt_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("ra4_e3600_r224_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(288), Some(1.0)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet50` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET50_TAGS: &[PretrainedTag] = &[
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a1h_in1k", 176, 0.9, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("b1k_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("b2k_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("c1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("c2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("d_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("ram_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("am_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("bt_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
    tag!("fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_swsl_ig1b_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet101` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET101_TAGS: &[PretrainedTag] = &[
    tag!("a1h_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet152` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET152_TAGS: &[PretrainedTag] = &[
    tag!("a1h_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnext50_32x4d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNEXT50_32X4D_TAGS: &[PretrainedTag] = &[
    tag!("a1h_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("ra_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
    tag!("fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_swsl_ig1b_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnext101_32x8d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNEXT101_32X8D_TAGS: &[PretrainedTag] = &[
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
    tag!("fb_wsl_ig1b_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_ssl_yfcc100m_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("fb_swsl_ig1b_ft_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet18d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET18D_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("ra4_e3600_r224_in1k", 224, 0.9, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(288), Some(1.0)),
];
/// timm's `resnet26d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET26D_TAGS: &[PretrainedTag] = &[
    tag!("bt_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `resnet34d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET34D_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `resnet50d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET50D_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("ra4_e3600_r224_in1k", 224, 0.95, "bicubic", "center", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], Some(288), Some(1.0)),
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `resnet101d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const RESNET101D_TAGS: &[PretrainedTag] = &[
    tag!("ra2_in1k", 256, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(320), Some(1.0)),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `seresnext26d_32x4d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNEXT26D_32X4D_TAGS: &[PretrainedTag] = &[
    tag!("bt_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnext26t_32x4d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNEXT26T_32X4D_TAGS: &[PretrainedTag] = &[
    tag!("bt_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `wide_resnet50_2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const WIDE_RESNET50_2_TAGS: &[PretrainedTag] = &[
    tag!("racm_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
];
/// timm's `wide_resnet101_2` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const WIDE_RESNET101_2_TAGS: &[PretrainedTag] = &[
    tag!("tv_in1k", 224, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("tv2_in1k", 176, 0.875, "bilinear", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.965)),
];
/// timm's `seresnet18` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNET18_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnet34` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNET34_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnet50` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNET50_TAGS: &[PretrainedTag] = &[
    tag!("a1_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a2_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("a3_in1k", 160, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(224), Some(0.95)),
    tag!("ra2_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnet101` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNET101_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnet152` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNET152_TAGS: &[PretrainedTag] = &[
    tag!("untrained", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnext50_32x4d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNEXT50_32X4D_TAGS: &[PretrainedTag] = &[
    tag!("racm_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `seresnext101_32x4d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNEXT101_32X4D_TAGS: &[PretrainedTag] = &[
    tag!("gluon_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("untrained", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(0.95)),
];
/// timm's `seresnext101_32x8d` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const SERESNEXT101_32X8D_TAGS: &[PretrainedTag] = &[
    tag!("ah_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
];
// END generated

/// The CIFAR ResNets, then timm's ResNets, ResNet-Ds, Wide ResNets and SE-ResNe(X)ts with
/// timm's pretrained tags (torchvision's weights are the `tv_in1k` / `tv2_in1k` tags;
/// `tv:resnet50` selects `tv_in1k`).
pub static VARIANTS: &[Variant<ResNet>] = &[
    Variant::untagged("resnet", "resnet8_cifar", cifar_32, |o, d| {
        ResNetConfig::cifar(1).init(o.num_classes, o.in_chans, d)
    })
    .num_classes(10),
    Variant::untagged("resnet", "resnet20_cifar", cifar_32, |o, d| {
        ResNetConfig::cifar(3).init(o.num_classes, o.in_chans, d)
    })
    .num_classes(10),
    Variant::tagged("resnet", "resnet18", RESNET18_TAGS, |o, d| {
        ResNetConfig::resnet18().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet34", RESNET34_TAGS, |o, d| {
        ResNetConfig::resnet34().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet50", RESNET50_TAGS, |o, d| {
        ResNetConfig::resnet50().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet101", RESNET101_TAGS, |o, d| {
        ResNetConfig::resnet101().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet152", RESNET152_TAGS, |o, d| {
        ResNetConfig::resnet152().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnext50_32x4d", RESNEXT50_32X4D_TAGS, |o, d| {
        ResNetConfig::resnext50_32x4d().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged(
        "resnet",
        "resnext101_32x8d",
        RESNEXT101_32X8D_TAGS,
        |o, d| ResNetConfig::resnext101_32x8d().init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged("resnet", "resnet18d", RESNET18D_TAGS, |o, d| {
        ResNetConfig::resnet18()
            .resnet_d()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet26d", RESNET26D_TAGS, |o, d| {
        ResNetConfig::resnet26()
            .resnet_d()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet34d", RESNET34D_TAGS, |o, d| {
        ResNetConfig::resnet34()
            .resnet_d()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet50d", RESNET50D_TAGS, |o, d| {
        ResNetConfig::resnet50()
            .resnet_d()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "resnet101d", RESNET101D_TAGS, |o, d| {
        ResNetConfig::resnet101()
            .resnet_d()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged(
        "resnet",
        "seresnext26d_32x4d",
        SERESNEXT26D_32X4D_TAGS,
        |o, d| {
            ResNetConfig::resnext26_32x4d()
                .resnet_d()
                .se()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "resnet",
        "seresnext26t_32x4d",
        SERESNEXT26T_32X4D_TAGS,
        |o, d| {
            ResNetConfig::resnext26_32x4d()
                .resnet_t()
                .se()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged("resnet", "wide_resnet50_2", WIDE_RESNET50_2_TAGS, |o, d| {
        ResNetConfig::wide_resnet50_2().init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged(
        "resnet",
        "wide_resnet101_2",
        WIDE_RESNET101_2_TAGS,
        |o, d| ResNetConfig::wide_resnet101_2().init(o.num_classes, o.in_chans, d),
    ),
    Variant::tagged("resnet", "seresnet18", SERESNET18_TAGS, |o, d| {
        ResNetConfig::resnet18()
            .se()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "seresnet34", SERESNET34_TAGS, |o, d| {
        ResNetConfig::resnet34()
            .se()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "seresnet50", SERESNET50_TAGS, |o, d| {
        ResNetConfig::resnet50()
            .se()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "seresnet101", SERESNET101_TAGS, |o, d| {
        ResNetConfig::resnet101()
            .se()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("resnet", "seresnet152", SERESNET152_TAGS, |o, d| {
        ResNetConfig::resnet152()
            .se()
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged(
        "resnet",
        "seresnext50_32x4d",
        SERESNEXT50_32X4D_TAGS,
        |o, d| {
            ResNetConfig::resnext50_32x4d()
                .se()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "resnet",
        "seresnext101_32x4d",
        SERESNEXT101_32X4D_TAGS,
        |o, d| {
            ResNetConfig::resnext101_32x4d()
                .se()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
    Variant::tagged(
        "resnet",
        "seresnext101_32x8d",
        SERESNEXT101_32X8D_TAGS,
        |o, d| {
            ResNetConfig::resnext101_32x8d()
                .se()
                .init(o.num_classes, o.in_chans, d)
        },
    ),
];
