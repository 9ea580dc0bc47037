//! Developer-only checks for the SE/ECA/CBAM ResNets, EfficientNet and RegNet families:
//! full-size logits against timm fixtures in `.parity/<name>/` (written by
//! scripts/check_parity_full.py; missing ones fail the run) and larger param counts. The
//! measured errors of the committed tiny fixtures are printed by
//! `scripts/tiny_parity_errors.sh` (examples/tiny_parity_errors.rs).
//!
//!   cargo test --release -p kestrel-models --test z2_full_parity -- --ignored --nocapture

use crate::common;

use common::{input_tensor, load_fixture_weights, logit_errors};
use kestrel_models::burn::prelude::*;
use kestrel_models::Model;

/// (max |ours − timm|, max |timm|).
fn errors(model: &Model, dir: &std::path::Path) -> (f32, f32) {
    logit_errors(model.forward(input_tensor(dir, &Device::flex())), dir)
}

fn load(model: Model, dir: &std::path::Path) -> Model {
    load_fixture_weights(model, dir, "weights.safetensors")
}

#[test]
#[ignore = "needs the full-size fixtures in .parity/ written by scripts/check_parity_full.py (downloads pretrained weights; fails when they are missing)"]
fn full_parity_z2_families() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    let mut missing = vec![];
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
            missing.push(name);
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
    assert!(
        missing.is_empty(),
        "no fixture in {} for {missing:?}: run python3 scripts/check_parity_full.py",
        root.display()
    );
}

#[test]
#[ignore = "builds 14 models of 5-94 M parameters (minutes on 2 cores)"]
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
