//! Parameter and MAC counts against independent references.

use kestrel_models::burn::prelude::*;
use kestrel_models::layers::count_macs;

fn build(name: &str) -> (kestrel_models::Model, [usize; 3]) {
    let spec = kestrel_models::find(name).unwrap();
    (
        spec.build(&spec.default_options(), &Device::flex()),
        spec.data_config().input_size,
    )
}

#[test]
fn lenet5_macs_and_params_match_the_hand_count() {
    let (model, [c, h, w]) = build("lenet5");
    // conv1 6·28·28·(1·5·5) + conv2 16·10·10·(6·25) + conv3 120·(16·25) + fc 120·84 + 84·10
    let expected_macs = 117_600 + 240_000 + 48_000 + 10_080 + 840;
    let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
    assert_eq!(macs, expected_macs);
    // weights + biases: 156 + 2,416 + 48,120 + 10,164 + 850
    assert_eq!(model.num_trainable_params(), 61_706);
}

#[test]
fn resnet18_macs_and_params_match_timm() {
    // Reference: timm resnet18, forward hooks summing conv and linear MACs at 1×3×224×224, and
    // sum(p.numel() for p in model.parameters()).
    let (model, [c, h, w]) = build("resnet18");
    let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
    assert_eq!(macs, 1_814_073_344);
    assert_eq!(model.num_trainable_params(), 11_689_512);
}

#[test]
fn resnet_d_and_wide_resnet_macs_and_params_match_timm() {
    // Reference: scripts/transformer_macs.py (timm forward hooks: conv and linear MACs at each
    // name's default input, 1×3×224×224) and sum(p.numel()), timm 1.0.31.
    for (name, macs_ref, params_ref) in [
        ("resnet18d", 2_053_713_920u64, 11_708_744),
        ("resnet50d", 4_328_824_832, 25_576_264),
        ("seresnext26t_32x4d", 2_680_129_536, 16_806_976),
    ] {
        let (model, [c, h, w]) = build(name);
        let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
        assert_eq!(macs, macs_ref, "{name} MACs");
        assert_eq!(model.num_trainable_params(), params_ref, "{name} params");
    }
    // Parameters only (counting builds nothing): sum(p.numel()) of timm 1.0.31.
    for (name, params_ref) in [
        ("resnet26d", 16_014_408),
        ("resnet34d", 21_816_904),
        ("resnet101d", 44_568_392),
        ("seresnext26d_32x4d", 16_809_512),
        ("wide_resnet50_2", 68_883_240),
        ("wide_resnet101_2", 126_886_696),
    ] {
        let (model, _) = build(name);
        assert_eq!(model.num_trainable_params(), params_ref, "{name}");
    }
}

#[test]
fn resnet_d_and_wide_resnet_eval_preprocessing_is_timms_pretrained_cfg() {
    // timm 1.0.31 pretrained_cfg: (name or NAME.TAG, input, crop, interpolation, test input,
    // test crop, mean = std = 0.5). The bare name is timm's default tag.
    for (name, size, crop, interp, test, test_crop, half) in [
        (
            "resnet18d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "resnet18d.ra4_e3600_r224_in1k",
            224,
            0.9,
            "bicubic",
            Some(288),
            Some(1.0),
            true,
        ),
        (
            "resnet26d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "resnet34d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "resnet50d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "resnet50d.ra4_e3600_r224_in1k",
            224,
            0.95,
            "bicubic",
            Some(288),
            Some(1.0),
            true,
        ),
        (
            "resnet50d.a1_in1k",
            224,
            0.95,
            "bicubic",
            Some(288),
            Some(1.0),
            false,
        ),
        (
            "resnet50d.a3_in1k",
            160,
            0.95,
            "bicubic",
            Some(224),
            Some(0.95),
            false,
        ),
        (
            "resnet50d.gluon_in1k",
            224,
            0.875,
            "bicubic",
            None,
            None,
            false,
        ),
        (
            "resnet101d",
            256,
            0.95,
            "bicubic",
            Some(320),
            Some(1.0),
            false,
        ),
        (
            "resnet101d.gluon_in1k",
            224,
            0.875,
            "bicubic",
            None,
            None,
            false,
        ),
        (
            "seresnext26d_32x4d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "seresnext26t_32x4d",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "wide_resnet50_2",
            224,
            0.875,
            "bicubic",
            Some(288),
            Some(0.95),
            false,
        ),
        (
            "wide_resnet50_2.tv_in1k",
            224,
            0.875,
            "bilinear",
            None,
            None,
            false,
        ),
        (
            "wide_resnet50_2.tv2_in1k",
            176,
            0.875,
            "bilinear",
            Some(224),
            Some(0.965),
            false,
        ),
        (
            "wide_resnet101_2",
            224,
            0.875,
            "bilinear",
            None,
            None,
            false,
        ),
        (
            "wide_resnet101_2.tv2_in1k",
            176,
            0.875,
            "bilinear",
            Some(224),
            Some(0.965),
            false,
        ),
    ] {
        let (_, dc) = kestrel_models::registry::find_pretrained(name).unwrap();
        assert_eq!(dc.input_size, [3, size, size], "{name}");
        assert_eq!(dc.crop_pct, crop, "{name}");
        assert_eq!(dc.interpolation, interp, "{name}");
        assert_eq!(dc.test_input_size, test.map(|t| [3, t, t]), "{name}");
        assert_eq!(dc.test_crop_pct, test_crop, "{name}");
        let (mean, std) = if half {
            (vec![0.5f32; 3], vec![0.5f32; 3])
        } else {
            (
                kestrel_models::registry::IMAGENET_MEAN.to_vec(),
                kestrel_models::registry::IMAGENET_STD.to_vec(),
            )
        };
        assert_eq!((dc.mean, dc.std), (mean, std), "{name}");
    }
}

#[test]
fn unknown_model_error_suggests_names() {
    let err = kestrel_models::find("resnet19").err().unwrap().to_string();
    assert!(
        err.contains("resnet19") && err.contains("resnet18"),
        "{err}"
    );
}

/// The registry is merged from several family files: no name or alias may be claimed twice,
/// and every entry must be found under its own name.
#[test]
fn registry_names_and_aliases_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for spec in kestrel_models::REGISTRY.iter() {
        for name in std::iter::once(&spec.name).chain(spec.aliases) {
            assert!(seen.insert(*name), "{name} registered twice");
            assert_eq!(
                *name,
                name.to_ascii_lowercase(),
                "find() lower-cases its input"
            );
        }
        assert_eq!(kestrel_models::find(spec.name).unwrap().name, spec.name);
    }
}

#[test]
fn transformer_macs_and_params_match_timm() {
    // Reference: scripts/transformer_macs.py (timm forward hooks: conv and linear MACs plus the
    // q·kᵀ and attn·v matmuls of every attention module, at 1×3×224×224).
    for (name, macs_ref, params_ref) in [
        ("vit_tiny_patch16_224", 1_253_683_200u64, 5_717_416),
        ("deit_tiny_distilled_patch16_224", 1_261_003_776, 5_910_800),
        ("swin_tiny_patch4_window7_224", 4_490_566_656, 28_288_354),
    ] {
        let (model, [c, h, w]) = build(name);
        let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
        assert_eq!(macs, macs_ref, "{name} MACs");
        assert_eq!(model.num_trainable_params(), params_ref, "{name} params");
    }
}

#[test]
fn transformer_params_match_timm() {
    // sum(p.numel() for p in timm.create_model(name).parameters()), timm 1.0.31.
    for (name, params_ref) in [
        ("vit_small_patch16_224", 22_050_664),
        ("vit_base_patch16_224", 86_567_656),
        ("vit_large_patch16_224", 304_326_632),
        ("vit_base_patch32_224", 88_224_232),
        ("vit_base_patch16_384", 86_859_496),
        ("deit_tiny_patch16_224", 5_717_416),
        ("deit_small_patch16_224", 22_050_664),
        ("deit_base_patch16_224", 86_567_656),
        ("deit_small_distilled_patch16_224", 22_436_432),
        ("deit_base_distilled_patch16_224", 87_338_192),
        ("swin_small_patch4_window7_224", 49_606_258),
        ("swin_base_patch4_window7_224", 87_768_224),
    ] {
        let (model, _) = build(name);
        assert_eq!(model.num_trainable_params(), params_ref, "{name}");
    }
}

#[test]
fn transformer_eval_preprocessing_is_timms_pretrained_cfg() {
    // timm 1.0.31 pretrained_cfg of each name's default tag.
    let vit = ([0.5f32; 3], [0.5f32; 3]);
    let inet = (
        kestrel_models::registry::IMAGENET_MEAN,
        kestrel_models::registry::IMAGENET_STD,
    );
    for (name, size, crop, (mean, std)) in [
        ("vit_small_patch16_224", 224, 0.9, vit),
        ("vit_base_patch16_384", 384, 1.0, vit),
        ("deit_base_distilled_patch16_224", 224, 0.9, inet),
        ("swin_tiny_patch4_window7_224", 224, 0.9, inet),
    ] {
        let dc = kestrel_models::find(name).unwrap().data_config();
        assert_eq!(dc.input_size, [3, size, size], "{name}");
        assert_eq!(dc.crop_pct, crop, "{name}");
        assert_eq!(dc.interpolation, "bicubic", "{name}");
        assert_eq!(
            (dc.mean.as_slice(), dc.std.as_slice()),
            (&mean[..], &std[..]),
            "{name}"
        );
    }
}
