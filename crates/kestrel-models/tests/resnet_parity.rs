//! ResNet/ResNeXt logits against timm on shrunk models (fixtures from
//! scripts/make_model_fixtures.py: perturbed BN statistics, non-zero residual branches).

use crate::common;

use common::{
    assert_fast_engine_matches, assert_logits_match, fixture, input_tensor, load_fixture_weights,
};
use kestrel_models::burn::prelude::*;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions};
use kestrel_models::Model;

pub(crate) fn tiny(base: ResNetConfig) -> ResNetConfig {
    // timm keeps the 64-channel 7×7 stem whatever `channels` says (stem_width only shapes deep stems).
    ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        stem_width: 64,
        ..base
    }
}

fn check(name: &str, cfg: ResNetConfig, weights_file: &str) {
    let device = Device::flex();
    let dir = fixture(name);
    let model = load_fixture_weights(Model::ResNet(cfg.init(10, 3, &device)), &dir, weights_file);
    assert_logits_match(model.forward(input_tensor(&dir, &device)), &dir);
    assert_fast_engine_matches(&model, &dir);
}

#[test]
fn resnet18_matches_timm() {
    check(
        "resnet18_tiny",
        tiny(ResNetConfig::resnet18()),
        "weights.safetensors",
    );
}

#[test]
fn resnet50_bottleneck_matches_timm() {
    check(
        "resnet50_tiny",
        tiny(ResNetConfig::resnet50()),
        "weights.safetensors",
    );
}

#[test]
fn resnext_grouped_conv_matches_timm() {
    let cfg = ResNetConfig {
        groups: 4,
        base_width: 16,
        ..tiny(ResNetConfig::resnext50_32x4d())
    };
    check("resnext50_32x4d_tiny", cfg, "weights.safetensors");
}

/// The fixture of `name` in [`common::resnet_d_fixtures`].
fn resnet_d(name: &str) -> ResNetConfig {
    common::resnet_d_fixtures()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, cfg)| cfg)
        .unwrap()
}

#[test]
fn resnet18d_deep_stem_and_avg_pool_shortcut_match_timm() {
    check(
        "resnet18d_tiny",
        resnet_d("resnet18d_tiny"),
        "weights.safetensors",
    );
}

#[test]
fn resnet50d_bottleneck_with_identity_pool_shortcut_matches_timm() {
    // layer1's shortcut has stride 1: timm's `downsample.0` is an Identity, conv and BN at 1, 2.
    check(
        "resnet50d_tiny",
        resnet_d("resnet50d_tiny"),
        "weights.safetensors",
    );
}

#[test]
fn seresnext26t_tiered_stem_matches_timm() {
    let name = "seresnext26t_32x4d_tiny";
    check(name, resnet_d(name), "weights.safetensors");
}

#[test]
fn wide_resnet50_2_matches_timm() {
    let name = "wide_resnet50_2_tiny";
    check(name, resnet_d(name), "weights.safetensors");
}

#[test]
fn resnet_d_saves_with_timm_names_and_refuses_plain_resnet_weights() {
    let device = Device::flex();
    let dir = fixture("resnet50d_tiny");
    let build = || Model::ResNet(resnet_d("resnet50d_tiny").init(10, 3, &device));
    let model = load_fixture_weights(build(), &dir, "weights.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    assert_eq!(
        common::weight_names(&out),
        common::weight_names(&dir.join("weights.safetensors"))
    );
    // A plain ResNet-50's file has a 7×7 stem and conv/BN shortcuts at 0/1: named, not loaded.
    let mut model = build();
    let err = load_weights(
        &mut model,
        &fixture("resnet50_tiny").join("weights.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conv1.0.weight") || err.contains("conv1.weight"),
        "{err}"
    );
}

#[test]
fn pytorch_pth_files_load_in_every_layout() {
    // zip format, bare state_dict; zip nested under "state_dict"; legacy format under "model".
    for file in [
        "weights_zip.pth",
        "weights_nested.pth",
        "weights_legacy.pth",
    ] {
        check("resnet18_tiny", tiny(ResNetConfig::resnet18()), file);
    }
}

#[test]
fn saved_weights_round_trip_with_timm_names() {
    let device = Device::flex();
    let dir = fixture("resnet18_tiny");
    let model = Model::ResNet(tiny(ResNetConfig::resnet18()).init(10, 3, &device));
    let model = load_fixture_weights(model, &dir, "weights.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    // Same key set as the timm file (which also has num_batches_tracked buffers).
    assert_eq!(
        common::weight_names(&out),
        common::weight_names(&dir.join("weights.safetensors"))
    );
    let mut reloaded = Model::ResNet(tiny(ResNetConfig::resnet18()).init(10, 3, &device));
    load_weights(&mut reloaded, &out, &LoadOptions::default()).unwrap();
    assert_logits_match(reloaded.forward(input_tensor(&dir, &device)), &dir);
}

#[test]
fn another_architecture_names_the_mismatched_keys() {
    let device = Device::flex();
    let dir = fixture("resnet50_tiny");
    let mut model = Model::ResNet(tiny(ResNetConfig::resnet18()).init(10, 3, &device));
    let err = load_weights(
        &mut model,
        &dir.join("weights.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("weights.safetensors"), "{err}");
    assert!(
        err.contains("layer1.0.conv1.weight") || err.contains("conv3"),
        "{err}"
    );
}

#[test]
fn other_class_count_reinitialises_only_the_classifier() {
    let device = Device::flex();
    let dir = fixture("resnet18_tiny");
    let mut model = Model::ResNet(tiny(ResNetConfig::resnet18()).init(7, 3, &device));
    let strict = load_weights(
        &mut model,
        &dir.join("weights.safetensors"),
        &LoadOptions::default(),
    );
    assert!(
        strict.unwrap_err().to_string().contains("fc."),
        "strict load must name fc"
    );
    let opts = LoadOptions {
        reinit_classifier: true,
        ..Default::default()
    };
    let mut model = Model::ResNet(tiny(ResNetConfig::resnet18()).init(7, 3, &device));
    load_weights(&mut model, &dir.join("weights.safetensors"), &opts).unwrap();
    // The backbone is timm's: its features equal timm's up to the classifier, which we check by
    // comparing against a model that loaded everything.
    let mut full = Model::ResNet(tiny(ResNetConfig::resnet18()).init(10, 3, &device));
    load_weights(
        &mut full,
        &dir.join("weights.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap();
    let (Model::ResNet(a), Model::ResNet(b)) = (&model, &full) else {
        unreachable!()
    };
    let x = input_tensor(&dir, &device);
    let fa: Vec<f32> = a
        .forward_features(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let fb: Vec<f32> = b
        .forward_features(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(fa, fb);
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(fixture("resnet18_tiny").join("weights.safetensors")).unwrap();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &src[..src.len() / 2]).unwrap();
    let garbage = tmp.path().join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
    let pth = std::fs::read(fixture("resnet18_tiny").join("weights_zip.pth")).unwrap();
    let truncated_pth = tmp.path().join("truncated.pth");
    std::fs::write(&truncated_pth, &pth[..pth.len() / 3]).unwrap();
    for path in [&truncated, &garbage, &truncated_pth] {
        let mut model = Model::ResNet(tiny(ResNetConfig::resnet18()).init(10, 3, &device));
        let err = load_weights(&mut model, path, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(path.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
}
