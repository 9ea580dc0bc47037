//! The model registry: every model kestrel can build, by timm's name, with its default input and
//! eval preprocessing. `kestrel models` prints this table.

use std::sync::LazyLock;

use burn::prelude::*;

use crate::alexnet::AlexNetConfig;
use crate::efficientnet::EfficientNetConfig;
use crate::error::ModelError;
use crate::layers::channel_attention::AttnKind;
use crate::lenet::LeNet5;
use crate::mobilenet::MobileNetConfig;
use crate::model::Model;
use crate::regnet::RegNetConfig;
use crate::resnet::ResNetConfig;
use crate::shufflenet::ShuffleNetV2Config;
use crate::swin::SwinConfig;
use crate::t2t::T2tConfig;
use crate::vgg::VggConfig;
use crate::vit::VitConfig;

use crate::variant::{center, imagenet_224, imagenet_224_bicubic};
pub use crate::variant::{
    BuildOptions, DataConfig, PretrainedTag, Variant, IMAGENET_MEAN, IMAGENET_STD, MNIST_MEAN,
    MNIST_STD,
};

/// One registered model, as [`REGISTRY`] holds it: a family's [`Variant`] with its build fn
/// wrapped to return a [`Model`].
pub struct ModelSpec {
    pub name: &'static str,
    pub family: &'static str,
    /// torchvision (or other) names that resolve to this model.
    pub aliases: &'static [&'static str],
    pub default_num_classes: usize,
    /// The data config of a model without pretrained tags.
    pub data: fn() -> DataConfig,
    /// timm's pretrained tags, the default (timm's first-listed) first; empty when kestrel
    /// knows none.
    pub tags: &'static [PretrainedTag],
    build: Box<dyn Fn(&BuildOptions, &Device) -> Model + Send + Sync>,
}

impl ModelSpec {
    fn of<M: Into<Model> + 'static>(v: &'static Variant<M>) -> Self {
        let build = v.build;
        ModelSpec {
            name: v.name,
            family: v.family,
            aliases: v.aliases,
            default_num_classes: v.default_num_classes,
            data: v.data,
            tags: v.tags,
            build: Box::new(move |o, d| build(o, d).into()),
        }
    }
}

impl ModelSpec {
    /// The data config of the bare name: the default tag's, as timm's `create_model(NAME)`.
    pub fn data_config(&self) -> DataConfig {
        self.tags
            .first()
            .map_or_else(|| (self.data)(), |t| (t.data)())
    }

    /// The data config of pretrained tag `tag` (`None`: the default).
    pub fn tag_data_config(&self, tag: Option<&str>) -> Result<DataConfig, ModelError> {
        let Some(tag) = tag else {
            return Ok(self.data_config());
        };
        self.tags
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| (t.data)())
            .ok_or_else(|| ModelError::UnknownTag {
                model: self.name.to_string(),
                tag: tag.to_string(),
                tags: self.tags.iter().map(|t| t.tag.to_string()).collect(),
            })
    }
    pub fn build(&self, opts: &BuildOptions, device: &Device) -> Model {
        (self.build)(opts, device)
    }
    pub fn default_options(&self) -> BuildOptions {
        BuildOptions {
            num_classes: self.default_num_classes,
            in_chans: self.data_config().input_size[0],
            img_size: None,
        }
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

fn cifar_32() -> DataConfig {
    DataConfig {
        input_size: [3, 32, 32],
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
        crop_pct: 1.0,
        interpolation: "bilinear".into(),
        crop_mode: center(),
        test_input_size: None,
        test_crop_pct: None,
    }
}

/// timm's `mobilenetv1_100` (ra4 weights): 224 px, crop 0.875, bicubic, mean = std = 0.5.
fn inception_224_bicubic() -> DataConfig {
    DataConfig {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
        ..imagenet_224_bicubic()
    }
}

macro_rules! mobilenet_spec {
    ($name:literal, $data:expr, $cfg:expr) => {
        Variant {
            name: $name,
            family: "mobilenet",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| Model::MobileNet($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

/// A torchvision model: torchvision's ImageNet eval transforms (resize 256, center crop 224,
/// bilinear) are `imagenet_224`.
macro_rules! tv_spec {
    ($name:literal, $family:literal, $variant:ident, $cfg:expr) => {
        Variant {
            name: $name,
            family: $family,
            aliases: &[],
            default_num_classes: 1000,
            data: imagenet_224,
            tags: &[],
            build: |o, d| Model::$variant($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

macro_rules! resnet_spec {
    ($name:literal, $tags:expr, $cfg:expr) => {
        Variant {
            name: $name,
            family: "resnet",
            aliases: &[],
            default_num_classes: 1000,
            data: imagenet_224,
            tags: $tags,
            build: |o, d| Model::ResNet($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

/// timm resnet.py `_rcfg` (the ResNet Strikes Back a1/a2 weights): 224 px, crop 0.95,
/// bicubic, tested at 288 px crop 1.0.
fn timm_rsb() -> DataConfig {
    DataConfig {
        crop_pct: 0.95,
        test_input_size: Some([3, 288, 288]),
        test_crop_pct: Some(1.0),
        ..imagenet_224_bicubic()
    }
}

/// timm `_r3cfg` (RSB a3): trained and evaluated at 160 px, crop 0.95; tested at 224, 0.95.
fn timm_rsb_a3() -> DataConfig {
    DataConfig {
        input_size: [3, 160, 160],
        crop_pct: 0.95,
        test_input_size: Some([3, 224, 224]),
        test_crop_pct: Some(0.95),
        ..imagenet_224_bicubic()
    }
}

/// timm `_ttcfg`: 224 px, crop 0.875, bicubic, tested at 288 px crop 0.95.
fn timm_bicubic_288() -> DataConfig {
    DataConfig {
        test_input_size: Some([3, 288, 288]),
        test_crop_pct: Some(0.95),
        ..imagenet_224_bicubic()
    }
}

/// torchvision's IMAGENET1K_V2 weights as timm's `tv2_in1k`: trained at 176 px, tested at 224
/// (crop 0.965).
fn tv2_176() -> DataConfig {
    DataConfig {
        input_size: [3, 176, 176],
        test_input_size: Some([3, 224, 224]),
        test_crop_pct: Some(0.965),
        ..imagenet_224()
    }
}

const fn rsb(tag: &'static str) -> PretrainedTag {
    PretrainedTag {
        tag,
        data: timm_rsb,
    }
}

const fn rsb_a3(tag: &'static str) -> PretrainedTag {
    PretrainedTag {
        tag,
        data: timm_rsb_a3,
    }
}

/// torchvision weights (timm `_cfg`): 224 px, crop 0.875, bilinear.
const fn tv(tag: &'static str) -> PretrainedTag {
    PretrainedTag {
        tag,
        data: imagenet_224,
    }
}

const fn tv2(tag: &'static str) -> PretrainedTag {
    PretrainedTag { tag, data: tv2_176 }
}

const fn bicubic_288(tag: &'static str) -> PretrainedTag {
    PretrainedTag {
        tag,
        data: timm_bicubic_288,
    }
}

/// timm's `ra4_e3600_r224_in1k` weights: crop `crop_pct` (0.9 for resnet18d, 0.95 for
/// resnet50d), tested at 288 px crop 1.0, mean = std = 0.5.
fn timm_ra4(crop_pct: f64) -> DataConfig {
    DataConfig {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
        crop_pct,
        test_input_size: Some([3, 288, 288]),
        test_crop_pct: Some(1.0),
        ..imagenet_224_bicubic()
    }
}

fn timm_ra4_090() -> DataConfig {
    timm_ra4(0.9)
}

fn timm_ra4_095() -> DataConfig {
    timm_ra4(0.95)
}

/// timm's `resnet101d.ra2_in1k`: 256 px, crop 0.95, bicubic, tested at 320 px crop 1.0.
fn timm_ra2_256() -> DataConfig {
    DataConfig {
        input_size: [3, 256, 256],
        crop_pct: 0.95,
        test_input_size: Some([3, 320, 320]),
        test_crop_pct: Some(1.0),
        ..imagenet_224_bicubic()
    }
}

/// An ImageNet-normalised eval config (timm `pretrained_cfg` of the default tag).
macro_rules! imagenet_data {
    ($size:literal, $crop:literal, $interp:literal) => {
        || DataConfig {
            input_size: [3, $size, $size],
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
            crop_pct: $crop,
            interpolation: $interp.into(),
            crop_mode: center(),
            test_input_size: None,
            test_crop_pct: None,
        }
    };
    ($size:literal, $crop:literal, $interp:literal, $mean:expr, $std:expr) => {
        || DataConfig {
            input_size: [3, $size, $size],
            mean: $mean.to_vec(),
            std: $std.to_vec(),
            crop_pct: $crop,
            interpolation: $interp.into(),
            crop_mode: center(),
            test_input_size: None,
            test_crop_pct: None,
        }
    };
}

/// timm ResNet with an attention layer in every block (`block_args=dict(attn_layer=...)`).
fn with_attn(cfg: ResNetConfig, attn: AttnKind) -> ResNetConfig {
    ResNetConfig {
        attn: Some(attn),
        ..cfg
    }
}

fn resnext101_32x4d() -> ResNetConfig {
    ResNetConfig {
        groups: 32,
        base_width: 4,
        ..ResNetConfig::resnet101()
    }
}

/// timm's `seresnext26d_32x4d` / `26t` base: ResNeXt 32×4d with two bottlenecks per stage.
fn resnext26_32x4d() -> ResNetConfig {
    ResNetConfig {
        groups: 32,
        base_width: 4,
        ..ResNetConfig::resnet26()
    }
}

macro_rules! seresnet_spec {
    ($name:literal, $cfg:expr, $data:expr) => {
        Variant {
            name: $name,
            family: "resnet",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| {
                Model::ResNet(with_attn($cfg, AttnKind::Se).init(o.num_classes, o.in_chans, d))
            },
        }
    };
}

macro_rules! effnet_spec {
    ($name:literal, $cfg:expr, $data:expr) => {
        Variant {
            name: $name,
            family: "efficientnet",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| Model::EfficientNet($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

macro_rules! regnet_spec {
    ($name:literal, $data:expr) => {
        Variant {
            name: $name,
            family: "regnet",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| {
                let cfg = RegNetConfig::by_name($name).expect("registered RegNet config");
                Model::RegNet(cfg.init(o.num_classes, o.in_chans, d))
            },
        }
    };
}

/// A torchvision model that shares its builder with a timm one but has its own name, eval
/// preprocessing and (through the name) `tv:` alias.
macro_rules! tv_named_spec {
    ($name:literal, $alias:literal, $family:literal, $variant:ident, $data:expr, $cfg:expr) => {
        Variant {
            name: $name,
            family: $family,
            aliases: &[$alias],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| Model::$variant($cfg.init(o.num_classes, o.in_chans, d)),
        }
    };
}

macro_rules! vit_spec {
    ($name:literal, $data:expr, $cfg:expr) => {
        Variant {
            name: $name,
            family: "vit",
            aliases: &[],
            default_num_classes: 1000,
            data: $data,
            tags: &[],
            build: |o, d| {
                let cfg = $cfg;
                let size = o.img_size.unwrap_or(cfg.img_size);
                Model::Vit(cfg.with_img_size(size).init(o.num_classes, o.in_chans, d))
            },
        }
    };
}

macro_rules! swin_spec {
    ($name:literal, $cfg:expr) => {
        Variant {
            name: $name,
            family: "swin",
            aliases: &[],
            default_num_classes: 1000,
            data: imagenet_data!(224, 0.9, "bicubic"),
            tags: &[],
            build: |o, d| {
                let cfg = $cfg;
                let img_size = o.img_size.unwrap_or(cfg.img_size);
                Model::Swin(SwinConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d))
            },
        }
    };
}

/// T2T-ViT (official repository, transformer token layers; `t2t_vit_t_N` is the official name
/// of that variant), built as the official pretrained checkpoints were (`qk_scale =
/// embed_dim^-½`); data: the official `_cfg` (224 px, crop 0.9, bicubic, ImageNet statistics).
macro_rules! t2t_spec {
    ($name:literal, $alias:literal, $cfg:expr) => {
        Variant {
            name: $name,
            family: "t2t_vit",
            aliases: &[$alias],
            default_num_classes: 1000,
            data: imagenet_data!(224, 0.9, "bicubic"),
            tags: &[],
            build: |o, d| {
                let cfg = $cfg.pretrained_scale();
                let img_size = o.img_size.unwrap_or(cfg.img_size);
                Model::T2tVit(T2tConfig { img_size, ..cfg }.init(o.num_classes, o.in_chans, d))
            },
        }
    };
}

/// Every model kestrel can build, gathered from the family tables (each family file's
/// `VARIANTS`, timm's `default_cfgs` + `@register_model`) and, for the families not yet
/// ported to that pattern, the table below.
pub static REGISTRY: LazyLock<Vec<ModelSpec>> = LazyLock::new(|| {
    UNPORTED
        .iter()
        .map(ModelSpec::of)
        .chain(crate::convnext::VARIANTS.iter().map(ModelSpec::of))
        .collect()
});

/// The families still registered here rather than in their own file (see [`Variant`]).
static UNPORTED: &[Variant<Model>] = &[
    Variant {
        name: "lenet5",
        family: "lenet",
        aliases: &["lenet"],
        default_num_classes: 10,
        data: mnist_32,
        tags: &[],
        build: |o, d| Model::LeNet5(LeNet5::new(o.num_classes, o.in_chans, d)),
    },
    Variant {
        name: "resnet8_cifar",
        family: "resnet",
        aliases: &[],
        default_num_classes: 10,
        data: cifar_32,
        tags: &[],
        build: |o, d| Model::ResNet(ResNetConfig::cifar(1).init(o.num_classes, o.in_chans, d)),
    },
    Variant {
        name: "resnet20_cifar",
        family: "resnet",
        aliases: &[],
        default_num_classes: 10,
        data: cifar_32,
        tags: &[],
        build: |o, d| Model::ResNet(ResNetConfig::cifar(3).init(o.num_classes, o.in_chans, d)),
    },
    // Tags as timm's resnet.py default_cfgs lists them (first = default).
    resnet_spec!(
        "resnet18",
        &[
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            tv("tv_in1k")
        ],
        ResNetConfig::resnet18()
    ),
    resnet_spec!(
        "resnet34",
        &[
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            PretrainedTag {
                tag: "bt_in1k",
                data: timm_bicubic_288,
            },
            tv("tv_in1k"),
        ],
        ResNetConfig::resnet34()
    ),
    resnet_spec!(
        "resnet50",
        &[
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            tv("tv_in1k"),
            tv2("tv2_in1k"),
        ],
        ResNetConfig::resnet50()
    ),
    resnet_spec!(
        "resnet101",
        &[
            rsb("a1h_in1k"),
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            tv("tv_in1k"),
            tv2("tv2_in1k"),
        ],
        ResNetConfig::resnet101()
    ),
    resnet_spec!(
        "resnet152",
        &[
            rsb("a1h_in1k"),
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            tv("tv_in1k"),
            tv2("tv2_in1k"),
        ],
        ResNetConfig::resnet152()
    ),
    resnet_spec!(
        "resnext50_32x4d",
        &[
            rsb("a1h_in1k"),
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            tv("tv_in1k"),
            tv2("tv2_in1k"),
        ],
        ResNetConfig::resnext50_32x4d()
    ),
    resnet_spec!(
        "resnext101_32x8d",
        &[tv("tv_in1k"), tv2("tv2_in1k"), tv("fb_wsl_ig1b_ft_in1k"),],
        ResNetConfig::resnext101_32x8d()
    ),
    // ResNet-D (deep stem, average-pool shortcut; timm resnet.py), the tiered-stem 26t and the
    // Wide ResNets, tags in timm's default_cfgs order.
    resnet_spec!(
        "resnet18d",
        &[
            bicubic_288("ra2_in1k"),
            PretrainedTag {
                tag: "ra4_e3600_r224_in1k",
                data: timm_ra4_090,
            },
        ],
        ResNetConfig::resnet18().resnet_d()
    ),
    resnet_spec!(
        "resnet26d",
        &[bicubic_288("bt_in1k")],
        ResNetConfig::resnet26().resnet_d()
    ),
    resnet_spec!(
        "resnet34d",
        &[bicubic_288("ra2_in1k")],
        ResNetConfig::resnet34().resnet_d()
    ),
    resnet_spec!(
        "resnet50d",
        &[
            bicubic_288("ra2_in1k"),
            PretrainedTag {
                tag: "ra4_e3600_r224_in1k",
                data: timm_ra4_095,
            },
            rsb("a1_in1k"),
            rsb("a2_in1k"),
            rsb_a3("a3_in1k"),
            PretrainedTag {
                tag: "gluon_in1k",
                data: imagenet_224_bicubic,
            },
        ],
        ResNetConfig::resnet50().resnet_d()
    ),
    resnet_spec!(
        "resnet101d",
        &[
            PretrainedTag {
                tag: "ra2_in1k",
                data: timm_ra2_256,
            },
            PretrainedTag {
                tag: "gluon_in1k",
                data: imagenet_224_bicubic,
            },
        ],
        ResNetConfig::resnet101().resnet_d()
    ),
    resnet_spec!(
        "seresnext26d_32x4d",
        &[bicubic_288("bt_in1k")],
        with_attn(resnext26_32x4d().resnet_d(), AttnKind::Se)
    ),
    resnet_spec!(
        "seresnext26t_32x4d",
        &[bicubic_288("bt_in1k")],
        with_attn(resnext26_32x4d().resnet_t(), AttnKind::Se)
    ),
    resnet_spec!(
        "wide_resnet50_2",
        &[bicubic_288("racm_in1k"), tv("tv_in1k"), tv2("tv2_in1k")],
        ResNetConfig::wide_resnet50_2()
    ),
    resnet_spec!(
        "wide_resnet101_2",
        &[tv("tv_in1k"), tv2("tv2_in1k")],
        ResNetConfig::wide_resnet101_2()
    ),
    mobilenet_spec!(
        "mobilenetv2_050",
        imagenet_224_bicubic,
        MobileNetConfig::mobilenet_v2(0.5)
    ),
    mobilenet_spec!(
        "mobilenetv2_100",
        imagenet_224_bicubic,
        MobileNetConfig::mobilenet_v2(1.0)
    ),
    mobilenet_spec!(
        "mobilenetv2_140",
        imagenet_224_bicubic,
        MobileNetConfig::mobilenet_v2(1.4)
    ),
    mobilenet_spec!(
        "mobilenetv3_small_100",
        imagenet_224_bicubic,
        MobileNetConfig::mobilenet_v3_small(1.0)
    ),
    mobilenet_spec!(
        "mobilenetv3_large_100",
        imagenet_224_bicubic,
        MobileNetConfig::mobilenet_v3_large(1.0)
    ),
    mobilenet_spec!(
        "mobilenetv1_100",
        inception_224_bicubic,
        MobileNetConfig::mobilenet_v1(1.0)
    ),
    tv_spec!(
        "shufflenet_v2_x0_5",
        "shufflenet",
        ShuffleNetV2,
        ShuffleNetV2Config::x0_5()
    ),
    tv_spec!(
        "shufflenet_v2_x1_0",
        "shufflenet",
        ShuffleNetV2,
        ShuffleNetV2Config::x1_0()
    ),
    tv_spec!(
        "shufflenet_v2_x1_5",
        "shufflenet",
        ShuffleNetV2,
        ShuffleNetV2Config::x1_5()
    ),
    tv_spec!(
        "shufflenet_v2_x2_0",
        "shufflenet",
        ShuffleNetV2,
        ShuffleNetV2Config::x2_0()
    ),
    tv_spec!("alexnet", "alexnet", AlexNet, AlexNetConfig::alexnet()),
    // VGG: torchvision's layout and weights (`tv:vgg16` resolves here too). timm's `vgg16` etc.
    // share the names but not the head (timm's `pre_logits` ConvMlp), so timm checkpoints
    // do not load into these.
    tv_spec!("vgg11", "vgg", Vgg, VggConfig::vgg11(false)),
    tv_spec!("vgg11_bn", "vgg", Vgg, VggConfig::vgg11(true)),
    tv_spec!("vgg13", "vgg", Vgg, VggConfig::vgg13(false)),
    tv_spec!("vgg13_bn", "vgg", Vgg, VggConfig::vgg13(true)),
    tv_spec!("vgg16", "vgg", Vgg, VggConfig::vgg16(false)),
    tv_spec!("vgg16_bn", "vgg", Vgg, VggConfig::vgg16(true)),
    tv_spec!("vgg19", "vgg", Vgg, VggConfig::vgg19(false)),
    tv_spec!("vgg19_bn", "vgg", Vgg, VggConfig::vgg19(true)),
    // SE-ResNet / SE-ResNeXt (timm resnet.py, attn_layer='se'); data: timm pretrained_cfg.
    seresnet_spec!(
        "seresnet18",
        ResNetConfig::resnet18(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnet34",
        ResNetConfig::resnet34(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnet50",
        ResNetConfig::resnet50(),
        imagenet_data!(224, 0.95, "bicubic")
    ),
    seresnet_spec!(
        "seresnet101",
        ResNetConfig::resnet101(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnet152",
        ResNetConfig::resnet152(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnext50_32x4d",
        ResNetConfig::resnext50_32x4d(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnext101_32x4d",
        resnext101_32x4d(),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    seresnet_spec!(
        "seresnext101_32x8d",
        ResNetConfig::resnext101_32x8d(),
        imagenet_data!(224, 0.95, "bicubic")
    ),
    // EfficientNet / EfficientNet-Lite, timm and TF ports; data: timm pretrained_cfg.
    effnet_spec!(
        "efficientnet_b0",
        EfficientNetConfig::b(0, false),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b1",
        EfficientNetConfig::b(1, false),
        imagenet_data!(240, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3])
    ),
    effnet_spec!(
        "efficientnet_b2",
        EfficientNetConfig::b(2, false),
        imagenet_data!(256, 0.875, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b3",
        EfficientNetConfig::b(3, false),
        imagenet_data!(288, 0.875, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b4",
        EfficientNetConfig::b(4, false),
        imagenet_data!(320, 0.875, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b5",
        EfficientNetConfig::b(5, false),
        imagenet_data!(448, 1.0, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b6",
        EfficientNetConfig::b(6, false),
        imagenet_data!(528, 0.942, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_b7",
        EfficientNetConfig::b(7, false),
        imagenet_data!(600, 0.949, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b0",
        EfficientNetConfig::b(0, true),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b1",
        EfficientNetConfig::b(1, true),
        imagenet_data!(240, 0.882, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b2",
        EfficientNetConfig::b(2, true),
        imagenet_data!(260, 0.89, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b3",
        EfficientNetConfig::b(3, true),
        imagenet_data!(300, 0.904, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b4",
        EfficientNetConfig::b(4, true),
        imagenet_data!(380, 0.922, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b5",
        EfficientNetConfig::b(5, true),
        imagenet_data!(456, 0.934, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b6",
        EfficientNetConfig::b(6, true),
        imagenet_data!(528, 0.942, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_b7",
        EfficientNetConfig::b(7, true),
        imagenet_data!(600, 0.949, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_lite0",
        EfficientNetConfig::lite(0, false),
        imagenet_data!(224, 0.875, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_lite1",
        EfficientNetConfig::lite(1, false),
        imagenet_data!(240, 0.882, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_lite2",
        EfficientNetConfig::lite(2, false),
        imagenet_data!(260, 0.89, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_lite3",
        EfficientNetConfig::lite(3, false),
        imagenet_data!(300, 0.904, "bicubic")
    ),
    effnet_spec!(
        "efficientnet_lite4",
        EfficientNetConfig::lite(4, false),
        imagenet_data!(380, 0.922, "bicubic")
    ),
    effnet_spec!(
        "tf_efficientnet_lite0",
        EfficientNetConfig::lite(0, true),
        imagenet_data!(224, 0.875, "bicubic", [0.5f32; 3], [0.5f32; 3])
    ),
    effnet_spec!(
        "tf_efficientnet_lite1",
        EfficientNetConfig::lite(1, true),
        imagenet_data!(240, 0.882, "bicubic", [0.5f32; 3], [0.5f32; 3])
    ),
    effnet_spec!(
        "tf_efficientnet_lite2",
        EfficientNetConfig::lite(2, true),
        imagenet_data!(260, 0.89, "bicubic", [0.5f32; 3], [0.5f32; 3])
    ),
    effnet_spec!(
        "tf_efficientnet_lite3",
        EfficientNetConfig::lite(3, true),
        imagenet_data!(300, 0.904, "bilinear", [0.5f32; 3], [0.5f32; 3])
    ),
    effnet_spec!(
        "tf_efficientnet_lite4",
        EfficientNetConfig::lite(4, true),
        imagenet_data!(380, 0.92, "bilinear", [0.5f32; 3], [0.5f32; 3])
    ),
    // RegNetX / RegNetY 200MF-16GF (timm regnet.py); data: timm pretrained_cfg.
    regnet_spec!("regnetx_002", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_004", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_006", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_008", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnetx_016", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnetx_032", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnetx_040", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_064", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_080", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnetx_120", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnetx_160", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnety_002", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnety_004", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnety_006", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnety_008", imagenet_data!(224, 0.875, "bicubic")),
    regnet_spec!("regnety_016", imagenet_data!(224, 0.965, "bicubic")),
    regnet_spec!("regnety_032", imagenet_data!(224, 0.95, "bicubic")),
    regnet_spec!("regnety_040", imagenet_data!(224, 0.95, "bicubic")),
    regnet_spec!("regnety_064", imagenet_data!(224, 0.95, "bicubic")),
    regnet_spec!("regnety_080", imagenet_data!(224, 0.95, "bicubic")),
    regnet_spec!("regnety_120", imagenet_data!(224, 0.95, "bicubic")),
    regnet_spec!("regnety_160", imagenet_data!(224, 0.95, "bicubic")),
    // ViT (timm's default tags: augreg, mean = std = 0.5) and DeiT (fb_in1k, ImageNet
    // statistics); crop 0.9 bicubic, 1.0 at 384 px.
    vit_spec!(
        "vit_tiny_patch16_224",
        imagenet_data!(224, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::tiny(16)
    ),
    vit_spec!(
        "vit_small_patch16_224",
        imagenet_data!(224, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::small(16)
    ),
    vit_spec!(
        "vit_base_patch16_224",
        imagenet_data!(224, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::base(16)
    ),
    vit_spec!(
        "vit_large_patch16_224",
        imagenet_data!(224, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::large(16)
    ),
    vit_spec!(
        "vit_base_patch32_224",
        imagenet_data!(224, 0.9, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::base(32)
    ),
    vit_spec!(
        "vit_base_patch16_384",
        imagenet_data!(384, 1.0, "bicubic", [0.5f32; 3], [0.5f32; 3]),
        VitConfig::base(16).with_img_size(384)
    ),
    vit_spec!(
        "deit_tiny_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::tiny(16)
    ),
    vit_spec!(
        "deit_small_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::small(16)
    ),
    vit_spec!(
        "deit_base_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::base(16)
    ),
    vit_spec!(
        "deit_tiny_distilled_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::tiny(16).distilled()
    ),
    vit_spec!(
        "deit_small_distilled_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::small(16).distilled()
    ),
    vit_spec!(
        "deit_base_distilled_patch16_224",
        imagenet_data!(224, 0.9, "bicubic"),
        VitConfig::base(16).distilled()
    ),
    // Swin (timm `_cfg`: 224 px, crop 0.9, bicubic, ImageNet statistics; fixed input size).
    swin_spec!("swin_tiny_patch4_window7_224", SwinConfig::tiny()),
    swin_spec!("swin_small_patch4_window7_224", SwinConfig::small()),
    swin_spec!("swin_base_patch4_window7_224", SwinConfig::base()),
    t2t_spec!("t2t_vit_14", "t2t_vit_t_14", T2tConfig::t2t_vit_14()),
    t2t_spec!("t2t_vit_19", "t2t_vit_t_19", T2tConfig::t2t_vit_19()),
    t2t_spec!("t2t_vit_24", "t2t_vit_t_24", T2tConfig::t2t_vit_24()),
    // torchvision's MobileNetV2/V3, EfficientNet, RegNet and ConvNeXt: timm's builders (the
    // loader translates torchvision's key layout), data = the DEFAULT weights' eval transforms
    // (resize R, centre crop C; crop_pct chosen so that floor(C / crop_pct) = R). Names that
    // timm also uses get timm's `tv_` prefix; `tv:NAME` finds them.
    mobilenet_spec!(
        "mobilenet_v2",
        imagenet_data!(224, 0.965, "bilinear"), // 232 -> 224
        MobileNetConfig::mobilenet_v2(1.0)
    ),
    mobilenet_spec!(
        "mobilenet_v3_small",
        imagenet_data!(224, 0.875, "bilinear"), // 256 -> 224
        MobileNetConfig::mobilenet_v3_small(1.0).torchvision_v3()
    ),
    mobilenet_spec!(
        "mobilenet_v3_large",
        imagenet_data!(224, 0.965, "bilinear"), // 232 -> 224
        MobileNetConfig::mobilenet_v3_large(1.0).torchvision_v3()
    ),
    tv_named_spec!(
        "tv_efficientnet_b0",
        "tv:efficientnet_b0",
        "efficientnet",
        EfficientNet,
        imagenet_data!(224, 0.875, "bicubic"), // 256 -> 224
        EfficientNetConfig::torchvision_b(0)
    ),
    tv_named_spec!(
        "tv_efficientnet_b1",
        "tv:efficientnet_b1",
        "efficientnet",
        EfficientNet,
        imagenet_data!(240, 0.941, "bilinear"), // 255 -> 240 (IMAGENET1K_V2)
        EfficientNetConfig::torchvision_b(1)
    ),
    tv_named_spec!(
        "tv_efficientnet_b2",
        "tv:efficientnet_b2",
        "efficientnet",
        EfficientNet,
        imagenet_data!(288, 1.0, "bicubic"), // 288 -> 288
        EfficientNetConfig::torchvision_b(2)
    ),
    tv_named_spec!(
        "tv_efficientnet_b3",
        "tv:efficientnet_b3",
        "efficientnet",
        EfficientNet,
        imagenet_data!(300, 0.9375, "bicubic"), // 320 -> 300
        EfficientNetConfig::torchvision_b(3)
    ),
    tv_named_spec!(
        "tv_efficientnet_b4",
        "tv:efficientnet_b4",
        "efficientnet",
        EfficientNet,
        imagenet_data!(380, 0.9895, "bicubic"), // 384 -> 380
        EfficientNetConfig::torchvision_b(4)
    ),
    tv_named_spec!(
        "tv_efficientnet_b5",
        "tv:efficientnet_b5",
        "efficientnet",
        EfficientNet,
        imagenet_data!(456, 1.0, "bicubic"), // 456 -> 456
        EfficientNetConfig::torchvision_b(5)
    ),
    tv_named_spec!(
        "tv_efficientnet_b6",
        "tv:efficientnet_b6",
        "efficientnet",
        EfficientNet,
        imagenet_data!(528, 1.0, "bicubic"), // 528 -> 528
        EfficientNetConfig::torchvision_b(6)
    ),
    tv_named_spec!(
        "tv_efficientnet_b7",
        "tv:efficientnet_b7",
        "efficientnet",
        EfficientNet,
        imagenet_data!(600, 1.0, "bicubic"), // 600 -> 600
        EfficientNetConfig::torchvision_b(7)
    ),
    // RegNet IMAGENET1K_V2 weights: 232 -> 224 bilinear.
    regnet_spec!("regnet_x_400mf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_x_800mf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_x_1_6gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_x_3_2gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_x_8gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_x_16gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_400mf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_800mf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_1_6gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_3_2gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_8gf", imagenet_data!(224, 0.965, "bilinear")),
    regnet_spec!("regnet_y_16gf", imagenet_data!(224, 0.965, "bilinear")),
    // maxxvit.rs: CoAtNet and MaxViT (timm `maxxvit.py`; data: each name's default tag, fixed
    // input size). An `untrained` tag is timm's name for a config without released weights.
    Variant {
        name: "coatnet_0_rw_224",
        family: "coatnet",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_224_rw,
        tags: &[PretrainedTag {
            tag: "sw_in1k",
            data: crate::maxxvit::data_224_rw,
        }],
        build: crate::maxxvit::build_coatnet_0_rw,
    },
    Variant {
        name: "coatnet_nano_rw_224",
        family: "coatnet",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_224_rw_090,
        tags: &[PretrainedTag {
            tag: "sw_in1k",
            data: crate::maxxvit::data_224_rw_090,
        }],
        build: crate::maxxvit::build_coatnet_nano_rw,
    },
    Variant {
        name: "coatnet_pico_rw_224",
        family: "coatnet",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_224_rw,
        tags: &[PretrainedTag {
            tag: "untrained",
            data: crate::maxxvit::data_224_rw,
        }],
        build: crate::maxxvit::build_coatnet_pico_rw,
    },
    Variant {
        name: "maxvit_tiny_tf_224",
        family: "maxvit",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_224_tf,
        tags: &[PretrainedTag {
            tag: "in1k",
            data: crate::maxxvit::data_224_tf,
        }],
        build: crate::maxxvit::build_maxvit_tiny_tf,
    },
    Variant {
        name: "maxvit_nano_rw_256",
        family: "maxvit",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_256_rw,
        tags: &[PretrainedTag {
            tag: "sw_in1k",
            data: crate::maxxvit::data_256_rw,
        }],
        build: crate::maxxvit::build_maxvit_nano_rw,
    },
    Variant {
        name: "maxvit_pico_rw_256",
        family: "maxvit",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_256_rw,
        tags: &[PretrainedTag {
            tag: "untrained",
            data: crate::maxxvit::data_256_rw,
        }],
        build: crate::maxxvit::build_maxvit_pico_rw,
    },
    Variant {
        name: "maxvit_rmlp_pico_rw_256",
        family: "maxvit",
        aliases: &[],
        default_num_classes: 1000,
        data: crate::maxxvit::data_256_rw,
        tags: &[PretrainedTag {
            tag: "sw_in1k",
            data: crate::maxxvit::data_256_rw,
        }],
        build: crate::maxxvit::build_maxvit_rmlp_pico_rw,
    },
];

/// Finds a model by name or alias (case-insensitive). A `tv:` name is first looked up as an
/// alias (`tv:efficientnet_b0` is `tv_efficientnet_b0`, torchvision's, not timm's
/// `efficientnet_b0`), then without the prefix (`tv:resnet50`, `tv:mobilenet_v2`).
///
/// `NAME.TAG` (`resnet50.tv_in1k`) finds NAME and checks that it has pretrained tag TAG; see
/// [`find_pretrained`] for the tag's data config.
pub fn find(name: &str) -> Result<&'static ModelSpec, ModelError> {
    find_pretrained(name).map(|(spec, _)| spec)
}

/// The model and data config `name` selects: `NAME.TAG` that tag's, `tv:NAME` the `tv_in1k`
/// tag's when NAME has one (torchvision's weights), a bare name the default tag's.
pub fn find_pretrained(name: &str) -> Result<(&'static ModelSpec, DataConfig), ModelError> {
    let lower = name.trim().to_ascii_lowercase();
    let (arch, tag) = match lower.split_once('.') {
        Some((arch, tag)) => (arch, Some(tag)),
        None => (lower.as_str(), None),
    };
    let spec = find_arch(arch).map_err(|e| match e {
        ModelError::UnknownModel { suggestions, .. } => ModelError::UnknownModel {
            name: name.to_string(),
            suggestions,
        },
        e => e,
    })?;
    let tag = match tag {
        None if arch.starts_with("tv:") && spec.tags.iter().any(|t| t.tag == "tv_in1k") => {
            Some("tv_in1k")
        }
        tag => tag,
    };
    Ok((spec, spec.tag_data_config(tag)?))
}

fn find_arch(name: &str) -> Result<&'static ModelSpec, ModelError> {
    let exact = name.trim().to_ascii_lowercase();
    let lookup = |wanted: &str| {
        REGISTRY
            .iter()
            .find(|s| s.name == wanted || s.aliases.contains(&wanted))
    };
    let wanted = exact.strip_prefix("tv:").unwrap_or(&exact).to_string();
    lookup(&exact)
        .or_else(|| lookup(&wanted))
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            suggestions: suggest(&wanted),
        })
}

/// timm models whose torchvision counterpart kestrel registers under another name (same
/// family; the architecture may differ in BatchNorm eps or RegNet width rounding, and the eval
/// preprocessing differs). Used to point users who load a torchvision checkpoint under the timm
/// name to torchvision's model.
const TORCHVISION_COUNTERPARTS: &[(&str, &str)] = &[
    ("mobilenetv2_100", "mobilenet_v2"),
    ("mobilenetv3_small_100", "mobilenet_v3_small"),
    ("mobilenetv3_large_100", "mobilenet_v3_large"),
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

/// The torchvision model that corresponds to timm model `name`, when kestrel registers it under
/// a different name: `mobilenet_v2` for `mobilenetv2_100`, `tv_efficientnet_b5` for
/// `efficientnet_b5`, `tv_convnext_tiny` for `convnext_tiny`, ...
pub fn torchvision_counterpart(name: &str) -> Option<&'static ModelSpec> {
    let spec = find(name).ok()?;
    let tv_name = TORCHVISION_COUNTERPARTS
        .iter()
        .find(|(timm, _)| *timm == spec.name)
        .map(|(_, tv)| tv.to_string())
        .unwrap_or_else(|| format!("tv:{}", spec.name));
    let tv = find(&tv_name).ok()?;
    (tv.name != spec.name && tv.family == spec.family).then_some(tv)
}

fn suggest(wanted: &str) -> Vec<String> {
    let prefix: String = wanted.chars().take(3).collect();
    let mut out: Vec<String> = REGISTRY
        .iter()
        .filter(|s| s.name.starts_with(&prefix) || s.family.starts_with(&prefix))
        .map(|s| s.name.to_string())
        .collect();
    if out.is_empty() {
        out = REGISTRY.iter().map(|s| s.name.to_string()).collect();
    }
    out
}
