//! Developer-only checks for the SE/ECA/CBAM ResNets, EfficientNet and RegNet families:
//! full-size logits against timm fixtures in `.parity/<name>/` (written by
//! scripts/check_parity_full.py; skipped when absent), larger param counts, and the measured
//! parity errors of the committed tiny fixtures.
//!
//!   cargo test --release -p kestrel-models --test z2_full_parity -- --ignored --nocapture

mod common;

use common::{fixture, input_tensor, load_fixture_weights, logit_errors};
use kestrel_models::attention::AttnKind;
use kestrel_models::burn::prelude::*;
use kestrel_models::efficientnet::EfficientNetConfig;
use kestrel_models::regnet::RegNetConfig;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;

/// (max |ours − timm|, max |timm|).
fn errors(model: &Model, dir: &std::path::Path) -> (f32, f32) {
    logit_errors(model.forward(input_tensor(dir, &Device::flex())), dir)
}

fn load(model: Model, dir: &std::path::Path) -> Model {
    load_fixture_weights(model, dir, "weights.safetensors")
}

#[test]
#[ignore]
fn full_parity_z2_families() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    for name in [
        "seresnet50",
        "seresnext50_32x4d",
        "efficientnet_b0",
        "tf_efficientnet_b0",
        "efficientnet_lite0",
        "tf_efficientnet_lite0",
        "regnetx_002",
        "regnety_032",
    ] {
        let dir = root.join(name);
        if !dir.join("io.safetensors").exists() {
            eprintln!("{name}: no fixture in .parity/, skipped");
            continue;
        }
        let spec = kestrel_models::find(name).unwrap();
        let model = load(spec.build(&spec.default_options(), &Device::flex()), &dir);
        let (err, scale) = errors(&model, &dir);
        eprintln!(
            "{name}: max abs err {err:.3e}, max|logit| {scale:.3}, ratio {:.2e}",
            err / scale
        );
        assert!(err <= 1e-4 * scale, "{name}");
    }
}

#[test]
#[ignore]
fn full_parity_z2_tiny_errors() {
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
    for (name, model) in models {
        let dir = fixture(name);
        let model = load(model, &dir);
        let (err, scale) = errors(&model, &dir);
        eprintln!(
            "{name}: max abs err {err:.3e}, max|logit| {scale:.3}, ratio {:.2e}",
            err / scale
        );
    }
}

#[test]
#[ignore]
fn full_parity_z2_param_counts() {
    // Reference: timm 1.0.31, sum(p.numel() for p in timm.create_model(name).parameters()).
    for (name, params) in [
        ("seresnet101", 49_326_872),
        ("seresnet152", 66_821_848),
        ("seresnext101_32x4d", 48_955_416),
        ("seresnext101_32x8d", 93_569_048),
        ("efficientnet_b4", 19_341_616),
        ("efficientnet_b5", 30_389_784),
        ("efficientnet_b6", 43_040_704),
        ("efficientnet_b7", 66_347_960),
        ("tf_efficientnet_b5", 30_389_784),
        ("tf_efficientnet_b6", 43_040_704),
        ("tf_efficientnet_b7", 66_347_960),
        ("efficientnet_lite3", 8_197_096),
        ("efficientnet_lite4", 13_006_568),
        ("tf_efficientnet_lite0", 4_652_008),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}
