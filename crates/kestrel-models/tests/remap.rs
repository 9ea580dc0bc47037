//! `--remap`: checkpoints from other codebases load after regex renames.

use crate::common;

use std::collections::HashMap;

use common::{assert_logits_match, fixture, input_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::weights::{load_weights, parse_remap_file, LoadOptions};
use kestrel_models::Model;
use safetensors::tensor::TensorView;

fn tiny_resnet18(device: &Device) -> Model {
    let cfg = ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        stem_width: 64,
        ..ResNetConfig::resnet18()
    };
    Model::ResNet(cfg.init(10, 3, device))
}

#[test]
fn data_parallel_prefixes_and_renamed_heads_load_with_remap_rules() {
    let dir = fixture("resnet18_tiny");
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // What a DataParallel checkpoint from another codebase looks like: "module." everywhere and
    // the classifier called "head".
    let renamed: HashMap<String, TensorView> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let name = name.replacen("fc.", "head.", 1);
            (format!("module.{name}"), view)
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("other.safetensors");
    safetensors::serialize_to_file(renamed, None, &weights).unwrap();
    let device = Device::flex();

    let mut model = tiny_resnet18(&device);
    let strict = load_weights(&mut model, &weights, &LoadOptions::default());
    assert!(
        strict.unwrap_err().to_string().contains("module."),
        "unmapped keys must be named"
    );

    let rules = tmp.path().join("remap.txt");
    std::fs::write(
        &rules,
        "# strip DataParallel\n^module\\. => \n^head\\. => fc.\n",
    )
    .unwrap();
    let remap = parse_remap_file(&rules).unwrap();
    assert_eq!(remap.len(), 2);
    let mut model = tiny_resnet18(&device);
    load_weights(
        &mut model,
        &weights,
        &LoadOptions {
            remap,
            ..Default::default()
        },
    )
    .unwrap();
    assert_logits_match(model.forward(input_tensor(&dir, &device)), &dir);
}

#[test]
fn a_bad_remap_file_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("bad.txt");
    std::fs::write(&rules, "^ok\\. => x.\n([unclosed => y\n").unwrap();
    let err = parse_remap_file(&rules).unwrap_err().to_string();
    assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
}
