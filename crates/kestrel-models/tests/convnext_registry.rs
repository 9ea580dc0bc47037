//! Registered ConvNeXt variants: trainable-parameter counts equal timm's.

use kestrel_models::burn::prelude::*;

/// Reference: timm 1.0.31, `sum(p.numel() for p in timm.create_model(name).parameters())`.
/// convnext_small (50,223,688), convnext_base (88,591,464) and convnext_large (197,767,336) are
/// left out here because their construction is slow; scripts/convnext_params.py prints all eight.
const TIMM_PARAMS: &[(&str, usize)] = &[
    ("convnext_atto", 3_695_520),
    ("convnext_femto", 5_217_784),
    ("convnext_pico", 9_045_672),
    ("convnext_nano", 15_593_560),
    ("convnext_tiny", 28_589_128),
];

#[test]
fn convnext_param_counts_match_timm() {
    for &(name, expected) in TIMM_PARAMS {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), expected, "{name}");
    }
}

#[test]
fn convnext_data_configs_follow_timm_default_tags() {
    for (name, crop) in [
        ("convnext_atto", 0.875),
        ("convnext_nano", 0.95),
        ("convnext_tiny", 0.95),
        ("convnext_base", 0.875),
    ] {
        let d = kestrel_models::find(name).unwrap().data_config();
        assert_eq!(d.input_size, [3, 224, 224]);
        assert_eq!(d.interpolation, "bicubic");
        assert_eq!(d.crop_pct, crop, "{name}");
    }
}

#[test]
fn convnext_macs_match_timm() {
    use kestrel_models::layers::count_macs;
    // Reference: timm 1.0.31, forward hooks summing Conv2d and Linear MACs at 1×3×224×224
    // (convnext_tiny: 4,455,531,264, which bench_zoo reports too).
    let spec = kestrel_models::find("convnext_atto").unwrap();
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device);
    let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, 3, 224, 224], &device)));
    assert_eq!(macs, 547_332_480);
}
