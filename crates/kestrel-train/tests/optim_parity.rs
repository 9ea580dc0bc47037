//! Each optimizer, stepped on the same parameters and gradients as torch.optim / timm.optim in
//! scripts/make_optim_fixtures.py, ends every step within 1e-6 relative of PyTorch's parameters.
//! The parameters have ranks 1, 2 and 4, so the no-weight-decay group of 1-D parameters
//! (timm's param_groups_weight_decay) is exercised too.

use crate::common;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use kestrel_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use serde_json::Value;

use common::{assert_close, f32s, fixture};

#[derive(Module, Debug)]
struct Params {
    conv_weight: Param<Tensor<4>>,
    conv_bias: Param<Tensor<1>>,
    norm_weight: Param<Tensor<1>>,
    fc_weight: Param<Tensor<2>>,
    fc_bias: Param<Tensor<1>>,
}

const NAMES: [&str; 5] = [
    "conv.weight",
    "conv.bias",
    "norm.weight",
    "fc.weight",
    "fc.bias",
];

fn tensor<const D: usize>(case: &Value, values: &Value, name: &str, device: &Device) -> Tensor<D> {
    let shape: Vec<usize> = case["shapes"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    Tensor::from_data(TensorData::new(f32s(&values[name]), shape), device)
}

impl Params {
    fn from_values(case: &Value, values: &Value, device: &Device) -> Self {
        Params {
            conv_weight: Param::from_tensor(tensor(case, values, "conv.weight", device)),
            conv_bias: Param::from_tensor(tensor(case, values, "conv.bias", device)),
            norm_weight: Param::from_tensor(tensor(case, values, "norm.weight", device)),
            fc_weight: Param::from_tensor(tensor(case, values, "fc.weight", device)),
            fc_bias: Param::from_tensor(tensor(case, values, "fc.bias", device)),
        }
    }

    /// Gradients for this module's parameters, keyed by their ids.
    fn grads(&self, case: &Value, values: &Value, device: &Device) -> GradientsParams {
        let mut grads = GradientsParams::new();
        grads.register(
            self.conv_weight.id,
            tensor::<4>(case, values, "conv.weight", device),
        );
        grads.register(
            self.conv_bias.id,
            tensor::<1>(case, values, "conv.bias", device),
        );
        grads.register(
            self.norm_weight.id,
            tensor::<1>(case, values, "norm.weight", device),
        );
        grads.register(
            self.fc_weight.id,
            tensor::<2>(case, values, "fc.weight", device),
        );
        grads.register(
            self.fc_bias.id,
            tensor::<1>(case, values, "fc.bias", device),
        );
        grads
    }

    fn values(&self, name: &str) -> Vec<f64> {
        let data = match name {
            "conv.weight" => self.conv_weight.val().into_data(),
            "conv.bias" => self.conv_bias.val().into_data(),
            "norm.weight" => self.norm_weight.val().into_data(),
            "fc.weight" => self.fc_weight.val().into_data(),
            "fc.bias" => self.fc_bias.val().into_data(),
            other => panic!("no parameter {other}"),
        };
        data.try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }
}

fn config(h: &Value) -> OptimizerConfig {
    let kind: OptimizerKind = h["optimizer"].as_str().unwrap().parse().unwrap();
    let f = |key: &str, default: f64| h.get(key).and_then(Value::as_f64).unwrap_or(default);
    let b = |key: &str, default: bool| h.get(key).and_then(Value::as_bool).unwrap_or(default);
    let defaults = OptimizerConfig::default();
    OptimizerConfig {
        kind,
        weight_decay: f("weight_decay", 0.0),
        momentum: f("momentum", 0.0),
        dampening: f("dampening", 0.0),
        nesterov: b("nesterov", false),
        betas: h
            .get("betas")
            .map(|v| [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()])
            .unwrap_or(defaults.betas),
        eps: h.get("eps").and_then(Value::as_f64),
        rmsprop_alpha: f("rmsprop_alpha", defaults.rmsprop_alpha),
        centered: b("centered", false),
        lamb_max_grad_norm: match h.get("lamb_max_grad_norm") {
            Some(Value::Null) => None,
            Some(v) => v.as_f64(),
            None => defaults.lamb_max_grad_norm,
        },
        lamb_trust_clip: b("lamb_trust_clip", false),
        lamb_always_adapt: b("lamb_always_adapt", false),
        lamb_grad_averaging: b("lamb_grad_averaging", true),
    }
}

fn check_case(case: &Value) {
    let name = case["name"].as_str().unwrap();
    // An autodiff device, as in training: the update must leave the parameters trainable.
    let device = Device::flex().autodiff();
    // The fixture's groups are timm's: the 1-D parameters in the no-decay group.
    for group in case["groups"].as_array().unwrap() {
        let decays = group["weight_decay"].as_f64().unwrap() != 0.0;
        for p in group["params"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            let rank = case["shapes"][p].as_array().unwrap().len();
            assert_eq!(
                decays,
                rank > 1,
                "{name}: timm's group for {p} (rank {rank})"
            );
        }
    }
    let mut optimizer = Optimizer::new(config(&case["hparams"])).unwrap();
    let mut params = Params::from_values(case, &case["init"], &device);
    let steps = case["steps"].as_array().unwrap();
    let mut worst_relative = 0.0f64;
    assert!(steps.len() >= 5, "{name}: at least five steps");
    for (i, step) in steps.iter().enumerate() {
        let grads = params.grads(case, &step["grads"], &device);
        params = optimizer.step(step["lr"].as_f64().unwrap(), params, grads);
        for p in NAMES {
            let want = common::f64s(&step["params"][p]);
            // 1e-6 relative to each value, or to the tensor's largest one for values that an
            // update has taken close to 0 (there the reference itself carries an error of
            // about an ulp of the value it started from).
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let what = format!("{name} step {} {p}", i + 1);
            let got = params.values(p);
            assert_close(&what, &got, &want, 1e-6, 1e-6 * scale);
            for (g, w) in got.iter().zip(&want) {
                worst_relative = worst_relative.max((g - w).abs() / w.abs().max(scale * 1e-3));
            }
        }
    }
    assert!(
        params.fc_weight.val().is_require_grad(),
        "{name}: still trainable"
    );
    println!(
        "{name}: {} steps, worst relative error {worst_relative:.1e}",
        steps.len()
    );
}

#[test]
fn every_optimizer_matches_torch_and_timm() {
    let fixture = fixture("optimizers.json");
    let cases = fixture["cases"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = cases
        .iter()
        .map(|c| c["hparams"]["optimizer"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 6, "a case for each optimizer: {kinds:?}");
    for case in cases {
        check_case(case);
    }
}

/// Values of every parameter, keyed by its name, as the fixture keys them.
fn snapshot(params: &Params) -> serde_json::Value {
    let mut values = serde_json::Map::new();
    for p in NAMES {
        values.insert(p.to_string(), serde_json::json!(params.values(p)));
    }
    Value::Object(values)
}

#[test]
fn an_exported_state_resumes_bit_identically_on_a_fresh_model() {
    let fixture = fixture("optimizers.json");
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let device = Device::flex();
        let steps = case["steps"].as_array().unwrap();
        let mut optimizer = Optimizer::new(config(&case["hparams"])).unwrap();
        let mut params = Params::from_values(case, &case["init"], &device);
        for step in &steps[..3] {
            let grads = params.grads(case, &step["grads"], &device);
            params = optimizer.step(step["lr"].as_f64().unwrap(), params, grads);
        }
        // A new process: same values, new parameter ids, the state read back by name.
        let mut resumed_params = Params::from_values(case, &snapshot(&params), &device);
        let mut resumed = Optimizer::new(config(&case["hparams"])).unwrap();
        resumed
            .import_state(&resumed_params, optimizer.export_state(&params))
            .unwrap();
        assert_eq!(resumed.steps(), 3, "{name}");
        for step in &steps[3..] {
            let lr = step["lr"].as_f64().unwrap();
            let grads = params.grads(case, &step["grads"], &device);
            params = optimizer.step(lr, params, grads);
            let grads = resumed_params.grads(case, &step["grads"], &device);
            resumed_params = resumed.step(lr, resumed_params, grads);
        }
        for p in NAMES {
            assert_eq!(
                resumed_params.values(p),
                params.values(p),
                "{name}: {p} after resume"
            );
        }
    }
}

#[test]
fn an_unknown_state_key_is_an_error_naming_it() {
    let fixture = fixture("optimizers.json");
    let case = &fixture["cases"][3]; // adam
    let device = Device::flex();
    let params = Params::from_values(case, &case["init"], &device);
    let mut optimizer = Optimizer::new(config(&case["hparams"])).unwrap();
    let grads = params.grads(case, &case["steps"][0]["grads"], &device);
    let params = optimizer.step(0.1, params, grads);
    let mut state = optimizer.export_state(&params);
    let stray = state.tensors["fc_bias.exp_avg"].clone();
    state.tensors.insert("head.bias.exp_avg".into(), stray);
    let err = Optimizer::new(config(&case["hparams"]))
        .unwrap()
        .import_state(&params, state)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head.bias.exp_avg"), "{err}");
}

#[test]
fn parameters_without_a_gradient_are_left_alone() {
    let fixture = fixture("optimizers.json");
    let case = &fixture["cases"][0];
    let device = Device::flex();
    let params = Params::from_values(case, &case["init"], &device);
    let before = params.values("fc.bias");
    let mut grads = params.grads(case, &case["steps"][0]["grads"], &device);
    let _ = grads.remove::<1>(params.fc_bias.id);
    let mut optimizer = Optimizer::new(config(&case["hparams"])).unwrap();
    let params = optimizer.step(0.1, params, grads);
    assert_eq!(params.values("fc.bias"), before);
    assert!(optimizer.state(&params.fc_bias.id).is_none());
    assert!(optimizer.state(&params.fc_weight.id).is_some());
}

#[test]
fn bad_hyper_parameters_are_errors_naming_the_flag() {
    let cases: Vec<(OptimizerConfig, &str)> = vec![
        (
            OptimizerConfig {
                weight_decay: -0.1,
                ..Default::default()
            },
            "--weight-decay",
        ),
        (
            OptimizerConfig {
                momentum: 1.5,
                ..Default::default()
            },
            "--momentum",
        ),
        (
            OptimizerConfig {
                betas: [0.9, 1.0],
                ..Default::default()
            },
            "--opt-betas",
        ),
        (
            OptimizerConfig {
                eps: Some(0.0),
                ..Default::default()
            },
            "--opt-eps",
        ),
        (
            OptimizerConfig {
                kind: OptimizerKind::Sgd,
                momentum: 0.0,
                nesterov: true,
                ..Default::default()
            },
            "--nesterov",
        ),
        (
            OptimizerConfig {
                lamb_max_grad_norm: Some(-1.0),
                ..Default::default()
            },
            "--lamb-max-grad-norm",
        ),
    ];
    for (config, flag) in cases {
        let err = Optimizer::new(config).err().expect("an error").to_string();
        assert!(err.contains(flag), "{err} should name {flag}");
    }
    let err = "adagrad".parse::<OptimizerKind>().unwrap_err();
    assert!(err.contains("adagrad") && err.contains("lamb"), "{err}");
}
