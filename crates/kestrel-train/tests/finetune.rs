//! Fine-tuning controls against timm: `--layer-decay` gives every parameter the lr scale timm's
//! param_groups_layer_decay gives it (fixture from scripts/make_layer_decay_fixtures.py), and
//! the optimizer applies a parameter's scale to its update.

mod common;

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use kestrel_models::BuildOptions;
use kestrel_train::finetune::{frozen_names, layer_decay_scales};
use kestrel_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};

use common::fixture;

#[test]
fn layer_decay_scales_match_timm_param_groups_layer_decay() {
    let fx = fixture("layer_decay.json");
    let decay = fx["decay"].as_f64().unwrap();
    let num_classes = fx["num_classes"].as_u64().unwrap() as usize;
    let device = Device::flex();
    let models = fx["models"].as_object().unwrap();
    assert!(models.len() >= 5, "the fixture covers every grouped family");
    for (name, want) in models {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(
            &BuildOptions {
                num_classes,
                in_chans: 3,
                img_size: None,
            },
            &device,
        );
        let got = layer_decay_scales(&model, decay).unwrap();
        let want: HashMap<&str, f64> = want
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_f64().unwrap()))
            .collect();
        let mut got_names: Vec<&str> = got.keys().map(String::as_str).collect();
        let mut want_names: Vec<&str> = want.keys().copied().collect();
        got_names.sort();
        want_names.sort();
        assert_eq!(got_names, want_names, "{name}: parameter names");
        for (param, scale) in &got {
            let w = want[param.as_str()];
            assert!(
                (scale - w).abs() <= 1e-12 * w,
                "{name}: {param}: kestrel lr scale {scale}, timm {w}"
            );
        }
        let distinct: std::collections::BTreeSet<u64> = got.values().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 5, "{name}: several layers");
    }
}

#[test]
fn freeze_patterns_select_by_prefix_backbone_and_layers() {
    let device = Device::flex();
    let model = kestrel_models::find("resnet18").unwrap().build(
        &BuildOptions {
            num_classes: 4,
            in_chans: 3,
            img_size: None,
        },
        &device,
    );
    let layer1 = frozen_names(&model, &["layer1".into()]).unwrap();
    assert!(layer1.contains("layer1.0.conv1.weight"));
    assert!(layer1.contains("layer1.1.bn2.bias"));
    assert!(layer1.iter().all(|n| n.starts_with("layer1.")));
    // Two BasicBlocks of 2 convs + 2 BNs (weight, bias each): 12 tensors.
    assert_eq!(layer1.len(), 12);
    let backbone = frozen_names(&model, &["backbone".into()]).unwrap();
    assert!(!backbone.contains("fc.weight") && !backbone.contains("fc.bias"));
    assert_eq!(backbone.len(), 62 - 2, "resnet18 has 62 parameters (timm)");
    // layers:1 is timm's stem group: conv1 and bn1.
    let stem = frozen_names(&model, &["layers:1".into()]).unwrap();
    let mut stem: Vec<_> = stem.into_iter().collect();
    stem.sort();
    assert_eq!(stem, ["bn1.bias", "bn1.weight", "conv1.weight"]);
    let err = frozen_names(&model, &["layer9".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--freeze layer9") && err.contains("matches no parameter"),
        "{err}"
    );
    let err = frozen_names(&model, &["layers:999".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("freezes every parameter"), "{err}");
}

#[derive(Module, Debug)]
struct Two {
    a: Param<Tensor<2>>,
    b: Param<Tensor<2>>,
}

#[test]
fn optimizer_applies_each_parameters_lr_scale() {
    let device = Device::flex();
    let start = || {
        Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -2.0, 3.0, 0.5], [2, 2]),
            &device,
        ))
    };
    let model = Two {
        a: start(),
        b: start(),
    };
    let mut grads = GradientsParams::new();
    let g = || {
        Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 1.0, -1.0, 2.0], [2, 2]),
            &device,
        )
    };
    grads.register(model.a.id, g());
    grads.register(model.b.id, g());
    let mut optim = Optimizer::new(OptimizerConfig {
        kind: OptimizerKind::Sgd,
        momentum: 0.0,
        ..OptimizerConfig::default()
    })
    .unwrap();
    optim.set_lr_scales([(model.b.id, 0.25)].into_iter().collect());
    let model = optim.step(0.1, model, grads);
    let vals = |p: &Param<Tensor<2>>| -> Vec<f32> { p.val().into_data().try_to_vec().unwrap() };
    // Plain SGD: p − lr·scale·g.
    let want_a = [1.0 - 0.05, -2.0 - 0.1, 3.0 + 0.1, 0.5 - 0.2];
    let want_b = [1.0 - 0.0125, -2.0 - 0.025, 3.0 + 0.025, 0.5 - 0.05];
    for (got, want) in [(vals(&model.a), want_a), (vals(&model.b), want_b)] {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}

#[test]
fn built_in_configs_parse_and_config_toml_reads_back_to_the_same_config() {
    use kestrel_train::config_file::{
        config_toml, merge_config, parse_config, read_config, BUILTIN_CONFIGS,
    };
    use kestrel_train::TrainConfig;
    let default = TrainConfig::default();
    for (name, _) in BUILTIN_CONFIGS {
        let file = read_config(name).unwrap();
        let cfg = merge_config(&default, &file, &[]).unwrap();
        assert!(cfg.model.contains("cifar"), "{name}: {}", cfg.model);
        assert!(cfg.ema && cfg.hflip && cfg.label_smoothing > 0.0, "{name}");
        kestrel_models::find(&cfg.model).unwrap();
    }
    let cfg = TrainConfig {
        lamb_max_grad_norm: None,
        clip_grad: Some(1.5),
        patience: Some(3),
        input_hw: Some([20, 24]),
        freeze: vec!["layer1".into(), "fc".into()],
        layer_decay: Some(0.65),
        opt_betas: [0.8, 0.95],
        ..TrainConfig::default()
    };
    let text = config_toml(&cfg);
    let back = merge_config(&default, &parse_config(&text, "saved").unwrap(), &[]).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&cfg).unwrap(),
        "{text}"
    );
}
