//! EfficientNet / EfficientNet-Lite (timm and TF ports) logits against timm on shrunk models.
//! Fixtures: scripts/timm_tiny.py (timm's own generators at channel multiplier 0.2, depth
//! multiplier 0.3, 10 classes, 32 px input — stride-2 TF "same" padding is asymmetric there).

use crate::common;

use common::check_fixture;
use kestrel_models::burn::prelude::*;
use kestrel_models::efficientnet::EfficientNetConfig;
use kestrel_models::Model;

fn check(name: &str, lite: bool, tf: bool) {
    let cfg = EfficientNetConfig::new(0.2, 0.3, lite, tf);
    check_fixture(name, Model::EfficientNet(cfg.init(10, 3, &Device::flex())));
}

#[test]
fn efficientnet_matches_timm() {
    check("efficientnet_tiny", false, false);
}

#[test]
fn tf_efficientnet_same_padding_matches_timm() {
    check("tf_efficientnet_tiny", false, true);
}

#[test]
fn tf_efficientnet_lite_matches_timm() {
    check("tf_efficientnet_lite_tiny", true, true);
}

#[test]
fn registered_efficientnets_have_timm_param_counts() {
    // Reference: timm 1.0.31, sum(p.numel() for p in timm.create_model(name).parameters());
    // the tf_ ports have the same counts as their timm twins. Not built here (slow):
    // efficientnet_b5 30,389,784; b6 43,040,704; b7 66,347,960.
    for (name, params) in [
        ("efficientnet_b0", 5_288_548),
        ("efficientnet_b1", 7_794_184),
        ("efficientnet_b2", 9_109_994),
        ("efficientnet_b3", 12_233_232),
        ("tf_efficientnet_b4", 19_341_616),
        ("efficientnet_lite0", 4_652_008),
        ("efficientnet_lite1", 5_416_680),
        ("efficientnet_lite2", 6_092_072),
        ("tf_efficientnet_lite3", 8_197_096),
        ("tf_efficientnet_lite4", 13_006_568),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}
