//! ShuffleNetV2 (Ma et al. 2018) in torchvision's layout: `conv1` (conv, BN, ReLU), max-pool,
//! `stage2..stage4` of `InvertedResidual` blocks (`branch1`, `branch2` as indexed
//! `nn.Sequential`s), `conv5` (1×1 conv, BN, ReLU), global average pooling, `fc`. torchvision
//! checkpoints (`shufflenet_v2_x0_5` ... `x2_0`) load unchanged.

use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;

use crate::layers::{conv2d, global_avg_pool, Counted};
use crate::sequential::{max_pool2d, run, Layer};
use crate::variant::{torchvision_224, Variant};

#[derive(Clone, Debug)]
pub struct ShuffleNetV2Config {
    /// Blocks per stage (torchvision: [4, 8, 4]).
    pub stages_repeats: Vec<usize>,
    /// Output channels of conv1, stage2, stage3, stage4, conv5.
    pub stages_out_channels: Vec<usize>,
}

impl ShuffleNetV2Config {
    fn new(out: [usize; 5]) -> Self {
        ShuffleNetV2Config {
            stages_repeats: vec![4, 8, 4],
            stages_out_channels: out.to_vec(),
        }
    }
    pub fn x0_5() -> Self {
        Self::new([24, 48, 96, 192, 1024])
    }
    pub fn x1_0() -> Self {
        Self::new([24, 116, 232, 464, 1024])
    }
    pub fn x1_5() -> Self {
        Self::new([24, 176, 352, 704, 1024])
    }
    pub fn x2_0() -> Self {
        Self::new([24, 244, 488, 976, 2048])
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> ShuffleNetV2 {
        assert_eq!(
            self.stages_repeats.len(),
            3,
            "ShuffleNetV2 has three stages"
        );
        assert_eq!(
            self.stages_out_channels.len(),
            5,
            "ShuffleNetV2 has five widths"
        );
        let ch = &self.stages_out_channels;
        let conv_bn_relu = |i: usize, o: usize, k: usize, s: usize| {
            vec![
                Layer::Conv(conv2d(i, o, k, s, k / 2, 1, false, device)),
                Layer::Bn(BatchNormConfig::new(o).init(device)),
                Layer::Relu(Relu::new()),
            ]
        };
        let mut in_ch = ch[0];
        let mut stages = Vec::new();
        for (&repeats, &out_ch) in self.stages_repeats.iter().zip(&ch[1..4]) {
            let mut blocks = vec![ShuffleBlock::new(in_ch, out_ch, 2, device)];
            for _ in 1..repeats {
                blocks.push(ShuffleBlock::new(out_ch, out_ch, 1, device));
            }
            stages.push(blocks);
            in_ch = out_ch;
        }
        let mut stages = stages.into_iter();
        ShuffleNetV2 {
            conv1: conv_bn_relu(in_chans, ch[0], 3, 2),
            maxpool: max_pool2d(3, 2, 1),
            stage2: stages.next().unwrap(),
            stage3: stages.next().unwrap(),
            stage4: stages.next().unwrap(),
            conv5: conv_bn_relu(in_ch, ch[4], 1, 1),
            fc: LinearConfig::new(ch[4], num_classes).init(device),
        }
    }
}

/// torchvision's ShuffleNetV2 `InvertedResidual`. Stride 1: split the channels in half, pass
/// one half through, transform the other with `branch2`. Stride 2: `branch1` (dw conv, BN, 1×1
/// conv, BN, ReLU) and `branch2` both see the whole input. Either way the halves are
/// concatenated and the channels shuffled in two groups.
#[derive(Module, Debug)]
pub struct ShuffleBlock {
    /// Empty for stride-1 blocks.
    pub branch1: Vec<Layer>,
    /// 1×1 conv, BN, ReLU, 3×3 dw conv, BN, 1×1 conv, BN, ReLU.
    pub branch2: Vec<Layer>,
    pub stride: usize,
}

impl ShuffleBlock {
    pub fn new(inp: usize, oup: usize, stride: usize, device: &Device) -> Self {
        let bf = oup / 2;
        assert!(
            stride != 1 || inp == bf * 2,
            "a stride-1 ShuffleNet block needs inp == oup (even)"
        );
        let bn = |c: usize| Layer::Bn(BatchNormConfig::new(c).init(device));
        let branch1 = if stride > 1 {
            vec![
                Layer::Conv(conv2d(inp, inp, 3, stride, 1, inp, false, device)),
                bn(inp),
                Layer::Conv(conv2d(inp, bf, 1, 1, 0, 1, false, device)),
                bn(bf),
                Layer::Relu(Relu::new()),
            ]
        } else {
            Vec::new()
        };
        let b2_in = if stride > 1 { inp } else { bf };
        let branch2 = vec![
            Layer::Conv(conv2d(b2_in, bf, 1, 1, 0, 1, false, device)),
            bn(bf),
            Layer::Relu(Relu::new()),
            Layer::Conv(conv2d(bf, bf, 3, stride, 1, bf, false, device)),
            bn(bf),
            Layer::Conv(conv2d(bf, bf, 1, 1, 0, 1, false, device)),
            bn(bf),
            Layer::Relu(Relu::new()),
        ];
        ShuffleBlock {
            branch1,
            branch2,
            stride,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = if self.stride == 1 {
            let mut halves = x.chunk(2, 1).into_iter();
            let x1 = halves.next().unwrap();
            let x2 = halves.next().unwrap();
            Tensor::cat(vec![x1, run(&self.branch2, x2)], 1)
        } else {
            Tensor::cat(
                vec![run(&self.branch1, x.clone()), run(&self.branch2, x)],
                1,
            )
        };
        channel_shuffle(out, 2)
    }
}

/// [N, g·c, H, W] -> view [N, g, c, H, W] -> transpose groups and channels -> [N, c·g, H, W].
pub fn channel_shuffle(x: Tensor<4>, groups: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, groups, c / groups, h, w])
        .swap_dims(1, 2)
        .reshape([n, c, h, w])
}

#[derive(Module, Debug)]
pub struct ShuffleNetV2 {
    pub conv1: Vec<Layer>,
    pub maxpool: MaxPool2d,
    pub stage2: Vec<ShuffleBlock>,
    pub stage3: Vec<ShuffleBlock>,
    pub stage4: Vec<ShuffleBlock>,
    pub conv5: Vec<Layer>,
    pub fc: Linear,
}

impl ShuffleNetV2 {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.maxpool.forward(run(&self.conv1, x));
        for block in self.stage2.iter().chain(&self.stage3).chain(&self.stage4) {
            x = block.forward(x);
        }
        run(&self.conv5, x)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(global_avg_pool(self.forward_features(x)))
    }
}

impl crate::classifier::Classifier for ShuffleNetV2 {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        ShuffleNetV2::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["fc."]
    }
}

/// torchvision's ShuffleNetV2s (timm has none) and their eval transforms.
pub static VARIANTS: &[Variant<ShuffleNetV2>] = &[
    Variant::untagged(
        "shufflenet",
        "shufflenet_v2_x0_5",
        torchvision_224,
        |o, d| ShuffleNetV2Config::x0_5().init(o.num_classes, o.in_chans, d),
    ),
    Variant::untagged(
        "shufflenet",
        "shufflenet_v2_x1_0",
        torchvision_224,
        |o, d| ShuffleNetV2Config::x1_0().init(o.num_classes, o.in_chans, d),
    ),
    Variant::untagged(
        "shufflenet",
        "shufflenet_v2_x1_5",
        torchvision_224,
        |o, d| ShuffleNetV2Config::x1_5().init(o.num_classes, o.in_chans, d),
    ),
    Variant::untagged(
        "shufflenet",
        "shufflenet_v2_x2_0",
        torchvision_224,
        |o, d| ShuffleNetV2Config::x2_0().init(o.num_classes, o.in_chans, d),
    ),
];
