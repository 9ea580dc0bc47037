//! MobileNet V1/V2/V3 logits against timm on shrunk models (fixtures from
//! scripts/make_model_fixtures.py via scripts/tiny_models.py: timm's own generators with width
//! multiplier 0.25, depth multiplier 0.34, a 64-wide head, 10 classes, 56 px input; perturbed BN
//! statistics and non-zero SE biases).

use crate::common;

use common::{check_fixture, fixture};
use kestrel_models::burn::prelude::*;
use kestrel_models::mobilenet::MobileNetConfig;
use kestrel_models::weights::save_safetensors;
use kestrel_models::Model;

/// The fixtures' kwargs: channel_multiplier 0.25, depth_multiplier 0.34, num_features 64.
pub(crate) fn tiny(base: fn(f64) -> MobileNetConfig, head: Option<usize>) -> MobileNetConfig {
    let mut cfg = base(0.25);
    cfg.depth_multiplier = 0.34;
    if let Some(nf) = head {
        cfg.num_features = nf;
    }
    cfg
}

fn check(name: &str, cfg: MobileNetConfig) -> Model {
    check_fixture(name, Model::MobileNet(cfg.init(10, 3, &Device::flex())))
}

#[test]
fn mobilenetv2_matches_timm() {
    check(
        "mobilenetv2_tiny",
        tiny(MobileNetConfig::mobilenet_v2, Some(64)),
    );
}

#[test]
fn mobilenetv3_small_matches_timm() {
    check(
        "mobilenetv3_small_tiny",
        tiny(MobileNetConfig::mobilenet_v3_small, Some(64)),
    );
}

#[test]
fn mobilenetv3_large_matches_timm() {
    check(
        "mobilenetv3_large_tiny",
        tiny(MobileNetConfig::mobilenet_v3_large, Some(64)),
    );
}

#[test]
fn mobilenetv1_matches_timm() {
    check(
        "mobilenetv1_tiny",
        tiny(MobileNetConfig::mobilenet_v1, None),
    );
}

/// `sum(p.numel() for p in timm.create_model(name).parameters())`, timm 1.0.31.
#[test]
fn registered_variants_have_timm_param_counts() {
    for (name, params) in [
        ("mobilenetv2_050", 1_968_680),
        ("mobilenetv2_100", 3_504_872),
        ("mobilenetv2_140", 6_108_776),
        ("mobilenetv3_small_100", 2_542_856),
        ("mobilenetv3_large_100", 5_483_032),
        ("mobilenetv1_100", 4_231_976),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}

/// Conv + linear MACs at 1×3×224×224, from forward hooks on the timm 1.0.31 model.
#[test]
fn macs_match_timm() {
    use kestrel_models::layers::count_macs;
    for (name, expected) in [
        ("mobilenetv2_100", 300_774_272u64),
        ("mobilenetv3_large_100", 216_589_760),
        ("mobilenetv3_small_100", 56_510_400),
        ("mobilenetv1_100", 568_740_352),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let device = Device::flex();
        let model = spec.build(&spec.default_options(), &device);
        let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, 3, 224, 224], &device)));
        assert_eq!(macs, expected, "{name}");
    }
}

#[test]
fn mobilenetv2_saves_timm_names() {
    let model = check(
        "mobilenetv2_tiny",
        tiny(MobileNetConfig::mobilenet_v2, Some(64)),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    let dir = fixture("mobilenetv2_tiny");
    assert_eq!(
        common::weight_names(&out),
        common::weight_names(&dir.join("weights.safetensors"))
    );
}
