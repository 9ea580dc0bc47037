//! SE / ECA / CBAM block attention in timm ResNets, logits against timm on shrunk models
//! (fixtures: scripts/make_model_fixtures.py, ATTENTION table).

use crate::common;

use common::check_fixture;
use kestrel_models::burn::prelude::*;
use kestrel_models::layers::channel_attention::AttnKind;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;

/// Mirrors the fixtures' kwargs: layers=[1,1,1,1], channels=[8,16,32,64], num_classes=10.
fn tiny(base: ResNetConfig, attn: AttnKind) -> ResNetConfig {
    ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        stem_width: 64,
        attn: Some(attn),
        ..base
    }
}

fn check(name: &str, cfg: ResNetConfig) {
    check_fixture(name, Model::ResNet(cfg.init(10, 3, &Device::flex())));
}

#[test]
fn seresnet18_matches_timm() {
    check(
        "seresnet18_tiny",
        tiny(ResNetConfig::resnet18(), AttnKind::Se),
    );
}

#[test]
fn seresnet50_matches_timm() {
    check(
        "seresnet50_tiny",
        tiny(ResNetConfig::resnet50(), AttnKind::Se),
    );
}

#[test]
fn seresnext50_matches_timm() {
    let cfg = ResNetConfig {
        groups: 4,
        base_width: 16,
        ..tiny(ResNetConfig::resnext50_32x4d(), AttnKind::Se)
    };
    check("seresnext50_32x4d_tiny", cfg);
}

#[test]
fn eca_resnet50_matches_timm() {
    check(
        "resnet50_eca_tiny",
        tiny(ResNetConfig::resnet50(), AttnKind::Eca),
    );
}

#[test]
fn cbam_resnet50_matches_timm() {
    check(
        "resnet50_cbam_tiny",
        tiny(ResNetConfig::resnet50(), AttnKind::Cbam),
    );
}

#[test]
fn registered_se_resnets_have_timm_param_counts() {
    // Reference: timm 1.0.31, sum(p.numel() for p in timm.create_model(name).parameters()).
    // Not built here (slow): seresnet101 49,326,872; seresnet152 66,821,848;
    // seresnext101_32x4d 48,955,416; seresnext101_32x8d 93,569,048.
    for (name, params) in [
        ("seresnet18", 11_779_624),
        ("seresnet34", 21_960_416),
        ("seresnet50", 28_088_024),
        ("seresnext50_32x4d", 27_559_896),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}
