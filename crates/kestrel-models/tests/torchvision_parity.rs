//! torchvision checkpoints of the families kestrel builds the timm way (MobileNetV2/V3,
//! EfficientNet, RegNet, ConvNeXt): the loader recognises torchvision's key layout and translates
//! it, and the logits match torchvision's.
//!
//! Fixtures: scripts/make_model_fixtures.py via scripts/tiny_models.py (`tv:*_custom`:
//! torchvision's own classes on small block settings, perturbed BN statistics and affine
//! parameters, ConvNeXt layer scales drawn from U(0.1, 0.5)). Full-size checks against
//! torchvision's default models: `full_parity_torchvision` below (ignored, needs `.parity/`).

use crate::common;
#[path = "tv_tiny/mod.rs"]
mod tv_tiny;

use common::{
    assert_logits_match, check_fixture, fixture, input_tensor, load_fixture_weights, logit_errors,
};
use kestrel_models::burn::prelude::*;
use kestrel_models::regnet::RegNetConfig;
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions, WeightsLayout};
use kestrel_models::Model;
use tv_tiny::{
    convnext_tiny, efficientnet_tiny, mobilenet_v2_tiny, mobilenet_v3_tiny, regnet_tiny,
};

fn d() -> Device {
    Device::flex()
}

#[test]
fn torchvision_mobilenet_v2_matches() {
    check_fixture(
        "tv_mobilenet_v2_custom_tiny",
        Model::MobileNet(mobilenet_v2_tiny().init(10, 3, &d())),
    );
}

#[test]
fn torchvision_mobilenet_v3_matches() {
    check_fixture(
        "tv_mobilenet_v3_custom_tiny",
        Model::MobileNet(mobilenet_v3_tiny().init(10, 3, &d())),
    );
}

#[test]
fn torchvision_efficientnet_matches_with_either_bn_eps() {
    check_fixture(
        "tv_efficientnet_custom_tiny",
        Model::EfficientNet(efficientnet_tiny(1e-5).init(10, 3, &d())),
    );
    check_fixture(
        "tv_efficientnet_custom_eps_tiny",
        Model::EfficientNet(efficientnet_tiny(1e-3).init(10, 3, &d())),
    );
}

#[test]
fn bn_eps_is_not_a_rounding_detail() {
    // The eps 1e-3 fixture does not match a model with eps 1e-5: the option is needed.
    let dir = fixture("tv_efficientnet_custom_eps_tiny");
    let model = load_fixture_weights(
        Model::EfficientNet(efficientnet_tiny(1e-5).init(10, 3, &d())),
        &dir,
        "weights.safetensors",
    );
    let (err, scale) = logit_errors(model.forward(input_tensor(&dir, &d())), &dir);
    assert!(err > 1e-4 * scale, "eps 1e-5 should miss: {err} vs {scale}");
}

#[test]
fn torchvision_regnet_matches() {
    check_fixture(
        "tv_regnet_custom_x_tiny",
        Model::RegNet(regnet_tiny(8, false).init(10, 3, &d())),
    );
    check_fixture(
        "tv_regnet_custom_y_tiny",
        Model::RegNet(regnet_tiny(24, true).init(10, 3, &d())),
    );
}

#[test]
fn torchvision_convnext_matches() {
    check_fixture(
        "tv_convnext_custom_tiny",
        Model::ConvNeXt(convnext_tiny().init(10, 3, &d())),
    );
}

#[test]
fn torchvision_pth_file_loads() {
    // torch.save(state_dict) of the torchvision ConvNeXt fixture (zip format).
    let dir = fixture("tv_convnext_custom_tiny");
    let model = load_fixture_weights(
        Model::ConvNeXt(convnext_tiny().init(10, 3, &d())),
        &dir,
        "weights.pth",
    );
    assert_logits_match(model.forward(input_tensor(&dir, &d())), &dir);
}

#[test]
fn mis_shaped_torchvision_checkpoint_names_the_file_key() {
    // timm's width rounding (group_min_ratio 0) makes the third stage 24 wide where torchvision's
    // is 48: the error must name the tensor as the torchvision file does.
    let dir = fixture("tv_regnet_custom_y_tiny");
    let cfg = RegNetConfig {
        group_min_ratio: 0.0,
        ..regnet_tiny(24, true)
    };
    let mut model = Model::RegNet(cfg.init(10, 3, &d()));
    let err = load_weights(
        &mut model,
        &dir.join("weights.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("weights.safetensors"), "{err}");
    assert!(err.contains("shape mismatches"), "{err}");
    assert!(
        err.contains("'trunk_output.block3.block3-0.f.a.0.weight'"),
        "{err}"
    );
}

#[test]
fn remap_rules_apply_before_the_torchvision_translation() {
    // A DataParallel-wrapped torchvision checkpoint: `module.` everywhere.
    let dir = fixture("tv_convnext_custom_tiny");
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: std::collections::HashMap<String, _> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (format!("module.{name}"), view))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("dp.safetensors");
    safetensors::serialize_to_file(renamed, None, &weights).unwrap();

    let mut model = Model::ConvNeXt(convnext_tiny().init(10, 3, &d()));
    let err = load_weights(&mut model, &weights, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("module.features."), "{err}");

    let opts = LoadOptions {
        remap: vec![(r"^module\.".into(), String::new())],
        ..Default::default()
    };
    let mut model = Model::ConvNeXt(convnext_tiny().init(10, 3, &d()));
    load_weights(&mut model, &weights, &opts).unwrap();
    assert_logits_match(model.forward(input_tensor(&dir, &d())), &dir);
}

#[test]
fn torchvision_weights_save_with_timm_names_and_reload() {
    let dir = fixture("tv_mobilenet_v3_custom_tiny");
    let model = check_fixture(
        "tv_mobilenet_v3_custom_tiny",
        Model::MobileNet(mobilenet_v3_tiny().init(10, 3, &d())),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    let names = common::weight_names(&out);
    assert!(names.contains(&"conv_head.weight".to_string()), "{names:?}");
    assert!(names.contains(&"blocks.3.0.conv.weight".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("features.")));
    let reloaded = load_fixture_weights(
        Model::MobileNet(mobilenet_v3_tiny().init(10, 3, &d())),
        tmp.path(),
        "w.safetensors",
    );
    assert_logits_match(reloaded.forward(input_tensor(&dir, &d())), &dir);
}

/// `sum(p.numel() for p in torchvision.models.get_model(name).parameters())`, torchvision
/// 0.29.2 (also the DEFAULT weights' `num_params`).
#[test]
fn registered_torchvision_models_have_torchvision_param_counts() {
    for (name, params) in [
        ("mobilenet_v2", 3_504_872),
        ("mobilenet_v3_small", 2_542_856),
        ("mobilenet_v3_large", 5_483_032),
        ("tv:efficientnet_b0", 5_288_548),
        ("tv:efficientnet_b1", 7_794_184),
        ("tv:efficientnet_b2", 9_109_994),
        ("tv:efficientnet_b3", 12_233_232),
        ("tv:efficientnet_b4", 19_341_616),
        ("tv:efficientnet_b5", 30_389_784),
        ("tv:efficientnet_b6", 43_040_704),
        ("tv:efficientnet_b7", 66_347_960),
        ("regnet_x_400mf", 5_495_976),
        ("regnet_x_800mf", 7_259_656),
        ("regnet_x_1_6gf", 9_190_136),
        ("regnet_x_3_2gf", 15_296_552),
        ("regnet_x_8gf", 39_572_648),
        ("regnet_x_16gf", 54_278_536),
        ("regnet_y_400mf", 4_344_144),
        ("regnet_y_800mf", 6_432_512),
        ("regnet_y_1_6gf", 11_202_430),
        ("regnet_y_3_2gf", 19_436_338),
        ("regnet_y_8gf", 39_381_472),
        ("regnet_y_16gf", 83_590_140),
        ("tv:convnext_tiny", 28_589_128),
        ("tv:convnext_small", 50_223_688),
        ("tv:convnext_base", 88_591_464),
        ("tv:convnext_large", 197_767_336),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &d());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}

/// torchvision's DEFAULT weights' eval transforms (`weights.transforms()`): resize R, centre
/// crop C, interpolation; kestrel resizes to floor(C / crop_pct).
#[test]
fn registered_torchvision_models_use_torchvision_eval_transforms() {
    for (name, crop, resize, interp) in [
        ("mobilenet_v2", 224, 232, "bilinear"),
        ("mobilenet_v3_small", 224, 256, "bilinear"),
        ("mobilenet_v3_large", 224, 232, "bilinear"),
        ("tv:efficientnet_b0", 224, 256, "bicubic"),
        ("tv:efficientnet_b1", 240, 255, "bilinear"),
        ("tv:efficientnet_b2", 288, 288, "bicubic"),
        ("tv:efficientnet_b3", 300, 320, "bicubic"),
        ("tv:efficientnet_b4", 380, 384, "bicubic"),
        ("tv:efficientnet_b5", 456, 456, "bicubic"),
        ("tv:efficientnet_b6", 528, 528, "bicubic"),
        ("tv:efficientnet_b7", 600, 600, "bicubic"),
        ("regnet_x_400mf", 224, 232, "bilinear"),
        ("regnet_y_16gf", 224, 232, "bilinear"),
        ("tv:convnext_tiny", 224, 236, "bilinear"),
        ("tv:convnext_small", 224, 230, "bilinear"),
        ("tv:convnext_base", 224, 232, "bilinear"),
        ("tv:convnext_large", 224, 232, "bilinear"),
    ] {
        let dc = kestrel_models::find(name).unwrap().data_config();
        assert_eq!(dc.input_size, [3, crop, crop], "{name}");
        assert_eq!(
            (crop as f64 / dc.crop_pct as f64).floor() as usize,
            resize,
            "{name}"
        );
        assert_eq!(dc.interpolation, interp, "{name}");
        assert_eq!(dc.mean, vec![0.485, 0.456, 0.406]);
    }
}

#[test]
fn tv_prefix_picks_torchvision_variants_where_names_clash() {
    let name = |n: &str| kestrel_models::find(n).unwrap().name;
    assert_eq!(name("tv:efficientnet_b0"), "tv_efficientnet_b0");
    assert_eq!(name("efficientnet_b0"), "efficientnet_b0");
    assert_eq!(name("TV:ConvNeXt_Tiny"), "tv_convnext_tiny");
    assert_eq!(name("convnext_tiny"), "convnext_tiny");
    assert_eq!(name("tv:mobilenet_v2"), "mobilenet_v2");
    assert_eq!(name("tv:regnet_y_400mf"), "regnet_y_400mf");
    assert_eq!(name("tv:resnet50"), "resnet50");
    assert_eq!(
        kestrel_models::find("tv:efficientnet_b0").unwrap().family,
        "efficientnet"
    );
}

/// Full-size torchvision models (developer check): `.parity/tv_<name>/` from
/// scripts/check_parity_full.py, loaded into the registered torchvision variant.
#[test]
#[ignore = "needs the full-size fixtures in .parity/ written by scripts/check_parity_full.py (downloads pretrained weights; fails when they are missing)"]
fn full_parity_torchvision() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    let mut missing = vec![];
    // (registered name, fixture folder). tv_convnext_custom_full_ls is torchvision's ConvNeXt
    // at convnext_tiny's size with layer scales from U(0.1, 0.5) instead of 1e-6.
    for (name, folder) in [
        ("tv:mobilenet_v2", "tv_mobilenet_v2"),
        ("tv:mobilenet_v3_large", "tv_mobilenet_v3_large"),
        ("tv:efficientnet_b0", "tv_efficientnet_b0"),
        ("tv:regnet_y_400mf", "tv_regnet_y_400mf"),
        ("tv:convnext_tiny", "tv_convnext_tiny"),
        ("tv:convnext_tiny", "tv_convnext_custom_full_ls"),
    ] {
        let dir = root.join(folder);
        if !dir.join("io.safetensors").exists() {
            missing.push(folder);
            continue;
        }
        let spec = kestrel_models::find(name).unwrap();
        let model = load_fixture_weights(
            spec.build(&spec.default_options(), &d()),
            &dir,
            "weights.safetensors",
        );
        let (err, scale) = logit_errors(model.forward(input_tensor(&dir, &d())), &dir);
        eprintln!(
            "{folder:28} ({}) max|err| {err:.3e}  max|logit| {scale:.3e}  ratio {:.3e}",
            spec.name,
            err / scale
        );
        assert!(err <= 1e-4 * scale, "{folder}");
    }
    assert!(
        missing.is_empty(),
        "no fixture in {} for {missing:?}: run python3 scripts/check_parity_full.py",
        root.display()
    );
}

#[test]
fn the_loader_reports_which_layout_it_read() {
    let layout = |model: Model, fixture_name: &str| {
        let mut model = model;
        load_weights(
            &mut model,
            &fixture(fixture_name).join("weights.safetensors"),
            &LoadOptions::default(),
        )
        .unwrap()
    };
    assert_eq!(
        layout(
            Model::ConvNeXt(convnext_tiny().init(10, 3, &d())),
            "tv_convnext_custom_tiny"
        ),
        WeightsLayout::Torchvision
    );
    assert_eq!(
        layout(
            Model::MobileNet(mobilenet_v2_tiny().init(10, 3, &d())),
            "tv_mobilenet_v2_custom_tiny"
        ),
        WeightsLayout::Torchvision
    );
    // The same weights saved by kestrel carry timm's names.
    let model = load_fixture_weights(
        Model::MobileNet(mobilenet_v2_tiny().init(10, 3, &d())),
        &fixture("tv_mobilenet_v2_custom_tiny"),
        "weights.safetensors",
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    let mut reloaded = Model::MobileNet(mobilenet_v2_tiny().init(10, 3, &d()));
    let again = load_weights(&mut reloaded, &out, &LoadOptions::default()).unwrap();
    assert_eq!(again, WeightsLayout::Timm);
}

#[test]
fn timm_names_point_to_their_torchvision_counterparts() {
    use kestrel_models::torchvision_counterpart;
    let tv = |name: &str| torchvision_counterpart(name).map(|s| s.name);
    assert_eq!(tv("efficientnet_b5"), Some("tv_efficientnet_b5"));
    assert_eq!(tv("convnext_tiny"), Some("tv_convnext_tiny"));
    assert_eq!(tv("mobilenetv2_100"), Some("mobilenet_v2"));
    assert_eq!(tv("mobilenetv3_large_100"), Some("mobilenet_v3_large"));
    assert_eq!(tv("regnety_004"), Some("regnet_y_400mf"));
    assert_eq!(tv("regnetx_160"), Some("regnet_x_16gf"));
    // Already torchvision's, or the same model under both names: nothing to point to.
    assert_eq!(tv("tv_efficientnet_b5"), None);
    assert_eq!(tv("mobilenet_v2"), None);
    assert_eq!(tv("resnet50"), None);
    assert_eq!(tv("efficientnet_lite0"), None);
    // Every timm EfficientNet/ConvNeXt with a torchvision twin has one, in the same family.
    for n in 0..8 {
        let name = format!("efficientnet_b{n}");
        let twin = torchvision_counterpart(&name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(twin.family, kestrel_models::find(&name).unwrap().family);
    }
}
