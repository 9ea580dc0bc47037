//! RegNetX / RegNetY (Radosavovic et al. 2020), in timm's layout (`regnet.py`): `stem.conv`,
//! `stem.bn`, stages `s1..s4` of blocks `b1..bN` (`conv1/conv2/conv3` each `.conv` + `.bn`,
//! `se.fc1/fc2` for Y, `downsample.conv/.bn`, the field `shortcut` here), `head.fc`.
//!
//! Stage widths come from timm's quantized linear generator (`generate_regnet`, computed in
//! float32 as timm does), then `adjust_widths_groups_comp`.
//!
//! Blocks are stored as `Vec<Option<Block>>` with an empty slot 0, so that their indices are
//! timm's 1-based `bN`; the weight loader maps `s1.b1.` to `s1.1.` and back.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::layers::channel_attention::{ConvBn, SqueezeExcite};
use crate::layers::{batch_norm, conv2d, drop_path, global_avg_pool, make_divisible, Counted};
use crate::variant::{imagenet_eval, tag, DataConfig, PretrainedTag, Variant};

#[derive(Clone, Debug)]
pub struct RegNetConfig {
    pub w0: usize,
    pub wa: f32,
    pub wm: f32,
    pub depth: usize,
    pub group_size: usize,
    pub bottle_ratio: f64,
    /// 0.25 for RegNetY (SE), 0 for RegNetX.
    pub se_ratio: f64,
    pub stem_width: usize,
    /// 0: timm's `quantize_float` rounds bottleneck widths to the group size. Otherwise
    /// `make_divisible(w, group, round_limit = this)`, torchvision's rounding (timm's
    /// `group_min_ratio`, 0.9 for its `*_tv` configs and kestrel's torchvision `regnet_*`).
    pub group_min_ratio: f64,
    pub drop_rate: f64,
    pub drop_path_rate: f64,
}

/// One stage: (out width, depth, group size).
#[derive(Clone, Debug, PartialEq)]
pub struct StageArgs {
    pub width: usize,
    pub depth: usize,
    pub group_size: usize,
}

/// (timm name, torchvision name) of the RegNets both libraries have: the same generator
/// parameters (torchvision rounds widths differently, see [`RegNetConfig::torchvision`]).
pub const TORCHVISION_NAMES: &[(&str, &str)] = &[
    ("regnetx_004", "regnet_x_400mf"),
    ("regnetx_008", "regnet_x_800mf"),
    ("regnetx_016", "regnet_x_1_6gf"),
    ("regnetx_032", "regnet_x_3_2gf"),
    ("regnetx_080", "regnet_x_8gf"),
    ("regnetx_160", "regnet_x_16gf"),
    ("regnety_004", "regnet_y_400mf"),
    ("regnety_008", "regnet_y_800mf"),
    ("regnety_016", "regnet_y_1_6gf"),
    ("regnety_032", "regnet_y_3_2gf"),
    ("regnety_080", "regnet_y_8gf"),
    ("regnety_160", "regnet_y_16gf"),
];

impl RegNetConfig {
    pub fn new(w0: usize, wa: f32, wm: f32, group_size: usize, depth: usize, se: bool) -> Self {
        RegNetConfig {
            w0,
            wa,
            wm,
            depth,
            group_size,
            bottle_ratio: 1.0,
            se_ratio: if se { 0.25 } else { 0.0 },
            stem_width: 32,
            group_min_ratio: 0.0,
            drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }

    /// timm `model_cfgs` by name (regnetx_002 … regnety_160), and torchvision's
    /// `regnet_{x,y}_{400mf..16gf}` (the same generator parameters with torchvision's width
    /// rounding, see [`Self::torchvision`]).
    pub fn by_name(name: &str) -> Option<Self> {
        if let Some(timm) = Self::torchvision_name(name) {
            return Self::by_name(timm).map(Self::torchvision);
        }
        let x = |w0, wa, wm, g, d| Some(Self::new(w0, wa, wm, g, d, false));
        let y = |w0, wa, wm, g, d| Some(Self::new(w0, wa, wm, g, d, true));
        match name {
            "regnetx_002" => x(24, 36.44, 2.49, 8, 13),
            "regnetx_004" => x(24, 24.48, 2.54, 16, 22),
            "regnetx_006" => x(48, 36.97, 2.24, 24, 16),
            "regnetx_008" => x(56, 35.73, 2.28, 16, 16),
            "regnetx_016" => x(80, 34.01, 2.25, 24, 18),
            "regnetx_032" => x(88, 26.31, 2.25, 48, 25),
            "regnetx_040" => x(96, 38.65, 2.43, 40, 23),
            "regnetx_064" => x(184, 60.83, 2.07, 56, 17),
            "regnetx_080" => x(80, 49.56, 2.88, 120, 23),
            "regnetx_120" => x(168, 73.36, 2.37, 112, 19),
            "regnetx_160" => x(216, 55.59, 2.1, 128, 22),
            "regnety_002" => y(24, 36.44, 2.49, 8, 13),
            "regnety_004" => y(48, 27.89, 2.09, 8, 16),
            "regnety_006" => y(48, 32.54, 2.32, 16, 15),
            "regnety_008" => y(56, 38.84, 2.4, 16, 14),
            "regnety_016" => y(48, 20.71, 2.65, 24, 27),
            "regnety_032" => y(80, 42.63, 2.66, 24, 21),
            "regnety_040" => y(96, 31.41, 2.24, 64, 22),
            "regnety_064" => y(112, 33.22, 2.27, 72, 25),
            "regnety_080" => y(192, 76.82, 2.19, 56, 17),
            "regnety_120" => y(168, 73.36, 2.37, 112, 19),
            "regnety_160" => y(200, 106.23, 2.48, 112, 18),
            _ => None,
        }
    }

    /// The timm config that torchvision's `regnet_*` model shares its generator parameters with.
    fn torchvision_name(name: &str) -> Option<&'static str> {
        TORCHVISION_NAMES
            .iter()
            .find(|(_, tv)| *tv == name)
            .map(|(timm, _)| *timm)
    }

    /// torchvision's width rounding (`group_min_ratio` 0.9, as timm's `regnetx_004_tv`): it
    /// changes regnet_x_400mf, regnet_y_800mf and regnet_y_8gf against timm's configs.
    pub fn torchvision(self) -> Self {
        RegNetConfig {
            group_min_ratio: 0.9,
            ..self
        }
    }

    /// timm `generate_regnet` (float32, round half to even as torch.round) followed by
    /// `adjust_widths_groups_comp` (quantize_float with Python's round).
    pub fn stages(&self) -> Vec<StageArgs> {
        let w0 = self.w0 as f32;
        let ln_wm = (self.wm as f64).ln() as f32;
        let mut widths: Vec<usize> = Vec::new();
        for i in 0..self.depth {
            let cont = i as f32 * self.wa + w0;
            let exp = ((cont / w0).ln() / ln_wm).round_ties_even();
            let w = ((w0 * self.wm.powf(exp)) / 8.0).round_ties_even() * 8.0;
            widths.push(w as usize);
        }
        let mut stages: Vec<StageArgs> = Vec::new();
        for w in widths {
            match stages.last_mut() {
                Some(s) if s.width == w => s.depth += 1,
                _ => stages.push(StageArgs {
                    width: w,
                    depth: 1,
                    group_size: self.group_size,
                }),
            }
        }
        for s in &mut stages {
            let w_bot = (s.width as f64 * self.bottle_ratio) as usize;
            let g = s.group_size.min(w_bot);
            let w_bot = if self.group_min_ratio > 0.0 {
                make_divisible(w_bot as f64, g, None, self.group_min_ratio)
            } else {
                ((w_bot as f64 / g as f64).round_ties_even() * g as f64) as usize
            };
            s.group_size = g;
            s.width = (w_bot as f64 / self.bottle_ratio) as usize;
        }
        stages
    }

    pub fn init(&self, num_classes: usize, in_chans: usize, device: &Device) -> RegNet {
        let stem = ConvBn {
            conv: conv2d(in_chans, self.stem_width, 3, 2, 1, 1, false, device),
            bn: batch_norm(self.stem_width, device),
        };
        let stage_args = self.stages();
        assert_eq!(stage_args.len(), 4, "RegNet needs 4 stages: {stage_args:?}");
        // timm calculate_drop_path_rates(stagewise=True): one rate per stage, linspace(0, dpr, 4).
        let mut prev = self.stem_width;
        let mut stages = Vec::new();
        for (i, s) in stage_args.iter().enumerate() {
            let dpr = self.drop_path_rate * i as f64 / 3.0;
            let mut blocks = vec![None];
            for b in 0..s.depth {
                let stride = if b == 0 { 2 } else { 1 };
                blocks.push(Some(Block::new(self, prev, s, stride, dpr, device)));
                prev = s.width;
            }
            stages.push(blocks);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap();
        RegNet {
            stem,
            s1: next(),
            s2: next(),
            s3: next(),
            s4: next(),
            head: Head {
                fc: LinearConfig::new(prev, num_classes).init(device),
                drop: DropoutConfig::new(self.drop_rate).init(),
            },
        }
    }
}

fn conv_bn(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> ConvBn {
    ConvBn {
        conv: conv2d(cin, cout, k, stride, (k - 1) / 2, groups, false, device),
        bn: batch_norm(cout, device),
    }
}

impl ConvBn {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        crate::layers::bn(&self.bn, self.conv.run(x))
    }

    fn run_relu(&self, x: Tensor<4>) -> Tensor<4> {
        crate::layers::bn_relu(&self.bn, self.conv.run(x))
    }
}

/// timm regnet `Bottleneck`: 1×1, grouped 3×3 (stride), SE (Y), 1×1, residual, ReLU.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub se: Option<SqueezeExcite>,
    pub conv3: ConvBn,
    /// timm `downsample` (renamed on load/save, see weights.rs).
    pub shortcut: Option<ConvBn>,
    #[module(skip)]
    pub drop_path: f64,
}

impl Block {
    fn new(
        cfg: &RegNetConfig,
        in_chs: usize,
        s: &StageArgs,
        stride: usize,
        drop_path: f64,
        device: &Device,
    ) -> Self {
        let out = s.width;
        let mid = (out as f64 * cfg.bottle_ratio).round_ties_even() as usize;
        let groups = mid / s.group_size;
        let se = (cfg.se_ratio > 0.0).then(|| {
            let rd = (in_chs as f64 * cfg.se_ratio).round_ties_even() as usize;
            SqueezeExcite::new(mid, rd, device)
        });
        Block {
            conv1: conv_bn(in_chs, mid, 1, 1, 1, device),
            conv2: conv_bn(mid, mid, 3, stride, groups, device),
            se,
            conv3: conv_bn(mid, out, 1, 1, 1, device),
            shortcut: (in_chs != out || stride != 1)
                .then(|| conv_bn(in_chs, out, 1, stride, 1, device)),
            drop_path,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.shortcut {
            Some(ds) => ds.run(x.clone()),
            None => x.clone(),
        };
        let y = self.conv1.run_relu(x);
        let mut y = self.conv2.run_relu(y);
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.conv3.run(y);
        crate::kernels::residual_add(drop_path(y, self.drop_path), shortcut, true)
    }
}

/// timm `ClassifierHead`: global average pool, dropout, `fc`.
#[derive(Module, Debug)]
pub struct Head {
    pub fc: Linear,
    pub drop: Dropout,
}

#[derive(Module, Debug)]
pub struct RegNet {
    pub stem: ConvBn,
    pub s1: Vec<Option<Block>>,
    pub s2: Vec<Option<Block>>,
    pub s3: Vec<Option<Block>>,
    pub s4: Vec<Option<Block>>,
    pub head: Head,
}

impl RegNet {
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.run_relu(x);
        for block in self
            .s1
            .iter()
            .chain(&self.s2)
            .chain(&self.s3)
            .chain(&self.s4)
            .flatten()
        {
            x = block.forward(x);
        }
        x
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = global_avg_pool(self.forward_features(x));
        self.head.fc.run(self.head.drop.forward(x))
    }
}

impl crate::classifier::Classifier for RegNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        RegNet::forward(self, x)
    }
    fn classifier_prefixes(&self) -> &'static [&'static str] {
        &["head.fc."]
    }
}

impl RegNet {
    /// torchvision's `regnet_*` key layout -> timm's, for a checkpoint whose keys show it
    /// (`stem.0.weight`, `trunk_output.*`): `stem.{0,1}` is `stem.{conv,bn}`,
    /// `trunk_output.blockS.blockS-M` is `sS.b{M+1}` with `f.{a,b,c}.{0,1}` =
    /// `conv{1,2,3}.{conv,bn}`, `f.se` = `se`, `proj` = `downsample`, and `fc` is `head.fc`.
    /// torchvision rounds bottleneck widths to the group size with its `_make_divisible`
    /// (`group_min_ratio` 0.9 here); otherwise the blocks are timm's.
    pub(crate) fn torchvision_to_timm(
        &self,
        keys: &std::collections::BTreeSet<&str>,
    ) -> Option<crate::translation::Translation<'_>> {
        if !(keys.contains("stem.0.weight") && keys.iter().any(|k| k.starts_with("trunk_output.")))
        {
            return None;
        }
        Some(Box::new(|name: &str, _shape: &[usize]| {
            if let Some(rest) = name.strip_prefix("stem.") {
                let (i, leaf) = rest.split_once('.')?;
                let to = match i {
                    "0" => "conv",
                    "1" => "bn",
                    _ => return None,
                };
                return Some((format!("stem.{to}.{leaf}"), None));
            }
            if let Some(rest) = name.strip_prefix("fc.") {
                return Some((format!("head.fc.{rest}"), None));
            }
            let rest = name.strip_prefix("trunk_output.block")?;
            let (_, rest) = rest.split_once(".block")?;
            let (sb, rest) = rest.split_once('.')?;
            let (s, b) = sb.split_once('-')?;
            let b: usize = b.parse().ok()?;
            let prefix = format!("s{s}.b{}", b + 1);
            let sub = |i: &str| match i {
                "0" => Some("conv"),
                "1" => Some("bn"),
                _ => None,
            };
            let to = if let Some(rest) = rest.strip_prefix("proj.") {
                let (i, leaf) = rest.split_once('.')?;
                format!("downsample.{}.{leaf}", sub(i)?)
            } else if let Some(rest) = rest.strip_prefix("f.se.") {
                format!("se.{rest}")
            } else {
                let rest = rest.strip_prefix("f.")?;
                let (conv, rest) = rest.split_once('.')?;
                let (i, leaf) = rest.split_once('.')?;
                let n = match conv {
                    "a" => 1,
                    "b" => 2,
                    "c" => 3,
                    _ => return None,
                };
                format!("conv{n}.{}.{leaf}", sub(i)?)
            };
            Some((format!("{prefix}.{to}"), None))
        }))
    }
}

/// torchvision's IMAGENET1K_V2 RegNet eval transforms: resize 232, centre crop 224, bilinear.
fn torchvision_v2() -> DataConfig {
    imagenet_eval(224, 0.965, "bilinear")
}

// BEGIN generated by scripts/make_pretrained_tags.py
// timm 1.0.31; do not edit by hand.
/// timm's `regnetx_002` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_002_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_004` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_004_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_006` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_006_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_008` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_008_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_016` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_016_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_032` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_032_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_040` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_040_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_064` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_064_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_080` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_080_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_120` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_120_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnetx_160` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETX_160_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_002` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_002_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_004` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_004_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_006` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_006_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_008` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_008_TAGS: &[PretrainedTag] = &[
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_016` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_016_TAGS: &[PretrainedTag] = &[
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_032` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_032_TAGS: &[PretrainedTag] = &[
    tag!("ra_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_040` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_040_TAGS: &[PretrainedTag] = &[
    tag!("ra3_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_064` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_064_TAGS: &[PretrainedTag] = &[
    tag!("ra3_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_080` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_080_TAGS: &[PretrainedTag] = &[
    tag!("ra3_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_120` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_120_TAGS: &[PretrainedTag] = &[
    tag!("sw_in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
/// timm's `regnety_160` pretrained tags (ImageNet-1k heads only), default first.
#[rustfmt::skip]
const REGNETY_160_TAGS: &[PretrainedTag] = &[
    tag!("sw_in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("lion_in12k_ft_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("deit_in1k", 224, 0.95, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], Some(288), Some(1.0)),
    tag!("tv2_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("swag_ft_in1k", 384, 1.0, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("swag_lc_in1k", 224, 0.965, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
    tag!("pycls_in1k", 224, 0.875, "bicubic", "center", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, None),
];
// END generated

/// timm's RegNetX / RegNetY 200MF-16GF with their pretrained tags, then torchvision's.
pub static VARIANTS: &[Variant<RegNet>] = &[
    Variant::tagged("regnet", "regnetx_002", REGNETX_002_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_002")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_004", REGNETX_004_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_004")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_006", REGNETX_006_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_006")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_008", REGNETX_008_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_008")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_016", REGNETX_016_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_016")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_032", REGNETX_032_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_032")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_040", REGNETX_040_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_040")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_064", REGNETX_064_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_064")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_080", REGNETX_080_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_080")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_120", REGNETX_120_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_120")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnetx_160", REGNETX_160_TAGS, |o, d| {
        RegNetConfig::by_name("regnetx_160")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_002", REGNETY_002_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_002")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_004", REGNETY_004_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_004")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_006", REGNETY_006_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_006")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_008", REGNETY_008_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_008")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_016", REGNETY_016_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_016")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_032", REGNETY_032_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_032")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_040", REGNETY_040_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_040")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_064", REGNETY_064_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_064")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_080", REGNETY_080_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_080")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_120", REGNETY_120_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_120")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::tagged("regnet", "regnety_160", REGNETY_160_TAGS, |o, d| {
        RegNetConfig::by_name("regnety_160")
            .expect("timm RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    // torchvision's RegNets: timm's generator with torchvision's width rounding; data = the
    // IMAGENET1K_V2 weights' eval transforms (232 -> 224 bilinear).
    Variant::untagged("regnet", "regnet_x_400mf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_400mf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_x_800mf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_800mf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_x_1_6gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_1_6gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_x_3_2gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_3_2gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_x_8gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_8gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_x_16gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_x_16gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_400mf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_400mf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_800mf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_800mf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_1_6gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_1_6gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_3_2gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_3_2gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_8gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_8gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
    Variant::untagged("regnet", "regnet_y_16gf", torchvision_v2, |o, d| {
        RegNetConfig::by_name("regnet_y_16gf")
            .expect("torchvision RegNet config")
            .init(o.num_classes, o.in_chans, d)
    }),
];
