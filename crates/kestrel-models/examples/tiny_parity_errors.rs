//! The measured parity errors of the committed tiny fixtures (kestrel's logits against
//! timm's/torchvision's, max |diff| / max |logit|), for docs/parity.md. The tests assert the
//! 1e-4 bar; this prints the numbers.
//!
//!   scripts/tiny_parity_errors.sh

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/tv_tiny/mod.rs"]
mod tv_tiny;

use common::{fixture, input_tensor, load_fixture_weights, logit_errors};
use kestrel_models::burn::prelude::*;
use kestrel_models::efficientnet::EfficientNetConfig;
use kestrel_models::layers::channel_attention::AttnKind;
use kestrel_models::regnet::RegNetConfig;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;
use tv_tiny::{
    convnext_tiny, efficientnet_tiny, mobilenet_v2_tiny, mobilenet_v3_tiny, regnet_tiny,
};

/// Loads each fixture's weights into its model and prints the error of its logits.
fn print_errors(cases: Vec<(&str, Model)>) {
    for (name, model) in cases {
        let dir = fixture(name);
        let model = load_fixture_weights(model, &dir, "weights.safetensors");
        let (err, scale) = logit_errors(model.forward(input_tensor(&dir, &Device::flex())), &dir);
        println!(
            "{name:32} max abs err {err:.3e}  max|logit| {scale:.3}  ratio {:.2e}",
            err / scale
        );
    }
}

/// SE/ECA/CBAM ResNets, EfficientNet and RegNet against timm.
fn timm_families() {
    let d = Device::flex();
    let r = |base: ResNetConfig, attn| ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        attn: Some(attn),
        ..base
    };
    let rg = |se| RegNetConfig {
        stem_width: 16,
        ..RegNetConfig::new(8, 8.0, 2.0, 8, 6, se)
    };
    let models: Vec<(&str, Model)> = vec![
        (
            "seresnet18_tiny",
            Model::ResNet(r(ResNetConfig::resnet18(), AttnKind::Se).init(10, 3, &d)),
        ),
        (
            "seresnet50_tiny",
            Model::ResNet(r(ResNetConfig::resnet50(), AttnKind::Se).init(10, 3, &d)),
        ),
        (
            "seresnext50_32x4d_tiny",
            Model::ResNet(
                ResNetConfig {
                    groups: 4,
                    base_width: 16,
                    ..r(ResNetConfig::resnext50_32x4d(), AttnKind::Se)
                }
                .init(10, 3, &d),
            ),
        ),
        (
            "resnet50_eca_tiny",
            Model::ResNet(r(ResNetConfig::resnet50(), AttnKind::Eca).init(10, 3, &d)),
        ),
        (
            "resnet50_cbam_tiny",
            Model::ResNet(r(ResNetConfig::resnet50(), AttnKind::Cbam).init(10, 3, &d)),
        ),
        (
            "efficientnet_tiny",
            Model::EfficientNet(EfficientNetConfig::new(0.2, 0.3, false, false).init(10, 3, &d)),
        ),
        (
            "tf_efficientnet_tiny",
            Model::EfficientNet(EfficientNetConfig::new(0.2, 0.3, false, true).init(10, 3, &d)),
        ),
        (
            "tf_efficientnet_lite_tiny",
            Model::EfficientNet(EfficientNetConfig::new(0.2, 0.3, true, true).init(10, 3, &d)),
        ),
        ("regnetx_002_tiny", Model::RegNet(rg(false).init(10, 3, &d))),
        ("regnety_002_tiny", Model::RegNet(rg(true).init(10, 3, &d))),
    ];
    print_errors(models);
}

/// torchvision's MobileNet, EfficientNet, RegNet and ConvNeXt layouts against torchvision.
fn torchvision_families() {
    let d = Device::flex();
    let cases: Vec<(&str, Model)> = vec![
        (
            "tv_mobilenet_v2_custom_tiny",
            Model::MobileNet(mobilenet_v2_tiny().init(10, 3, &d)),
        ),
        (
            "tv_mobilenet_v3_custom_tiny",
            Model::MobileNet(mobilenet_v3_tiny().init(10, 3, &d)),
        ),
        (
            "tv_efficientnet_custom_tiny",
            Model::EfficientNet(efficientnet_tiny(1e-5).init(10, 3, &d)),
        ),
        (
            "tv_efficientnet_custom_eps_tiny",
            Model::EfficientNet(efficientnet_tiny(1e-3).init(10, 3, &d)),
        ),
        (
            "tv_regnet_custom_x_tiny",
            Model::RegNet(regnet_tiny(8, false).init(10, 3, &d)),
        ),
        (
            "tv_regnet_custom_y_tiny",
            Model::RegNet(regnet_tiny(24, true).init(10, 3, &d)),
        ),
        (
            "tv_convnext_custom_tiny",
            Model::ConvNeXt(convnext_tiny().init(10, 3, &d)),
        ),
    ];
    print_errors(cases);
}

/// ViT, DeiT (distilled) and Swin against timm.
fn transformer_families() {
    let d = Device::flex();
    let vit = common::vit_fixture_config;
    print_errors(vec![
        (
            "vit_tiny_patch16_224_tiny",
            Model::Vit(vit().init(10, 3, &d)),
        ),
        (
            "vit_tiny_patch16_224_ls_tiny",
            Model::Vit(
                kestrel_models::vit::VitConfig {
                    init_values: Some(0.1),
                    ..vit()
                }
                .init(10, 3, &d),
            ),
        ),
        (
            "deit_tiny_distilled_patch16_224_tiny",
            Model::Vit(vit().distilled().init(10, 3, &d)),
        ),
        (
            "swin_tiny_patch4_window7_224_tiny",
            Model::Swin(common::swin_fixture_config().init(10, 3, &d)),
        ),
    ]);
}

/// ResNet-D (deep and tiered stems, average-pool shortcuts) and Wide ResNet against timm.
fn resnet_d_families() {
    let d = Device::flex();
    let cases = common::resnet_d_fixtures()
        .into_iter()
        .map(|(name, cfg)| (name, Model::ResNet(cfg.init(10, 3, &d))))
        .collect();
    print_errors(cases);
}

/// T2T-ViT against vit-pytorch (one soft split) and the official code (transformer and
/// Performer token layers);
/// the configurations of tests/t2t_parity.rs.
fn t2t_families() {
    let d = Device::flex();
    let (vit_pytorch, official) = (
        common::t2t_vit_pytorch_config(),
        common::t2t_official_config(),
    );
    print_errors(vec![
        (
            "t2t_vit_vitpytorch_tiny",
            Model::T2tVit(vit_pytorch.init(10, 3, &d)),
        ),
        (
            "t2t_vit_t_official_tiny",
            Model::T2tVit(official.clone().init(10, 3, &d)),
        ),
        (
            "t2t_vit_official_tiny",
            Model::T2tVit(official.performer().init(10, 3, &d)),
        ),
    ]);
}

fn main() {
    t2t_families();
    resnet_d_families();
    transformer_families();
    timm_families();
    torchvision_families();
}
