//! ShuffleNetV2 logits against torchvision on a shrunk model (fixture from
//! scripts/make_model_fixtures.py: torchvision's `ShuffleNetV2` class with stage repeats
//! [2, 3, 2] and widths [8, 16, 32, 64, 128], 10 classes, 56 px; perturbed BN statistics).

use crate::common;

use common::check_fixture;
use kestrel_models::burn::prelude::*;
use kestrel_models::layers::count_macs;
use kestrel_models::shufflenet::ShuffleNetV2Config;
use kestrel_models::Model;

#[test]
fn shufflenet_v2_matches_torchvision() {
    let cfg = ShuffleNetV2Config {
        stages_repeats: vec![2, 3, 2],
        stages_out_channels: vec![8, 16, 32, 64, 128],
    };
    check_fixture(
        "tv_shufflenet_v2_custom_tiny",
        Model::ShuffleNetV2(cfg.init(10, 3, &Device::flex())),
    );
}

/// `sum(p.numel() for p in torchvision.models.get_model(name).parameters())` and conv + linear
/// MACs at 1×3×224×224 from forward hooks, torchvision 0.29.
#[test]
fn registered_variants_match_torchvision_counts() {
    let device = Device::flex();
    for (name, params, macs) in [
        ("shufflenet_v2_x0_5", 1_366_792, 40_476_448u64),
        ("shufflenet_v2_x1_0", 2_278_604, 144_907_992),
        ("shufflenet_v2_x1_5", 3_503_624, 295_759_392),
        ("shufflenet_v2_x2_0", 7_393_996, 583_253_464),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &device);
        assert_eq!(model.num_trainable_params(), params, "{name}");
        let (_, counted) = count_macs(|| model.forward(Tensor::zeros([1, 3, 224, 224], &device)));
        assert_eq!(counted, macs, "{name}");
    }
}
