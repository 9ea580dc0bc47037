//! ConvNeXt logits against timm on shrunk models (fixtures from scripts/make_model_fixtures.py,
//! with layer scale and norms perturbed so that every branch contributes).

use crate::common;

use common::{assert_fast_engine_matches, assert_logits_match, fixture, input_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::convnext::ConvNeXtConfig;
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions};
use kestrel_models::Model;

/// Mirrors the fixtures' kwargs: depths [1,1,2,1], dims [8,16,32,64], 10 classes, 64 px.
pub(crate) fn tiny(base: ConvNeXtConfig) -> ConvNeXtConfig {
    ConvNeXtConfig {
        depths: vec![1, 1, 2, 1],
        dims: vec![8, 16, 32, 64],
        ..base
    }
}

fn load(name: &str, cfg: &ConvNeXtConfig, file: &std::path::Path) -> Model {
    let device = Device::flex();
    let mut model = Model::ConvNeXt(cfg.init(10, 3, &device));
    load_weights(&mut model, file, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    model
}

fn check(name: &str, cfg: ConvNeXtConfig) {
    let dir = fixture(name);
    let model = load(name, &cfg, &dir.join("weights.safetensors"));
    assert_logits_match(model.forward(input_tensor(&dir, &Device::flex())), &dir);
    assert_fast_engine_matches(&model, &dir);
}

#[test]
fn convnext_conv_mlp_matches_timm() {
    // atto..nano: 1×1-conv MLP on NCHW.
    check("convnext_atto_tiny", tiny(ConvNeXtConfig::atto()));
}

#[test]
fn convnext_linear_mlp_matches_timm() {
    // tiny..large: Linear MLP on channels-last.
    check("convnext_tiny_tiny", tiny(ConvNeXtConfig::tiny()));
}

#[test]
fn layer_scale_gamma_keeps_its_name_on_save_and_load() {
    for (name, cfg) in [
        ("convnext_atto_tiny", tiny(ConvNeXtConfig::atto())),
        ("convnext_tiny_tiny", tiny(ConvNeXtConfig::tiny())),
    ] {
        let dir = fixture(name);
        let model = load(name, &cfg, &dir.join("weights.safetensors"));
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("w.safetensors");
        save_safetensors(&model, &out).unwrap();
        let saved = common::weight_names(&out);
        assert!(saved.contains(&"stages.0.blocks.0.gamma".to_string()));
        assert!(saved.contains(&"stages.1.downsample.0.weight".to_string()));
        assert!(saved.contains(&"stages.1.downsample.1.weight".to_string()));
        assert_eq!(
            saved,
            common::weight_names(&dir.join("weights.safetensors"))
        );
        let reloaded = load(name, &cfg, &out);
        assert_logits_match(reloaded.forward(input_tensor(&dir, &Device::flex())), &dir);
    }
}
