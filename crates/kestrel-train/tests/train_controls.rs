//! Training controls against timm/torch (fixtures from scripts/make_train_control_fixtures.py):
//! ModelEmaV3's decay schedule and averages, clip_grad_norm_, clip_grad_value_ and timm's
//! adaptive_clip_grad. The EMA over a whole model is checked by hand.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use kestrel_train::ema::{lerp_towards, EmaConfig, ModelEma};
use kestrel_train::grad::{clip, ClipMode, ParamGrad};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/train_controls.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tensor(values: Vec<f32>) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), &Device::flex())
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Within `rel` of the larger of |want| and `floor` (the inputs' scale, where a difference of
/// differences loses relative precision).
fn assert_close(got: &[f32], want: &[f32], rel: f32, floor: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(floor);
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs torch {w}");
    }
}

fn ema_config(v: &Value) -> EmaConfig {
    let d = EmaConfig::default();
    EmaConfig {
        decay: v["decay"].as_f64().unwrap(),
        use_warmup: v["use_warmup"].as_bool().unwrap(),
        warmup_power: v
            .get("warmup_power")
            .map_or(d.warmup_power, |x| x.as_f64().unwrap()),
        min_decay: v
            .get("min_decay")
            .map_or(d.min_decay, |x| x.as_f64().unwrap()),
        update_after_step: v
            .get("update_after_step")
            .map_or(d.update_after_step, |x| x.as_u64().unwrap()),
        ..d
    }
}

#[test]
fn ema_decay_schedule_matches_model_ema_v3() {
    let fx = fixture();
    for case in fx["ema"].as_array().unwrap() {
        let cfg = ema_config(&case["config"]);
        for (k, want) in case["decays"].as_array().unwrap().iter().enumerate() {
            let (got, want) = (cfg.decay_at(k as u64 + 1), want.as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-12,
                "{:?} step {}: {got} vs timm {want}",
                case["config"],
                k + 1
            );
        }
    }
}

#[test]
fn ema_averages_match_model_ema_v3() {
    let fx = fixture();
    for case in fx["ema"].as_array().unwrap() {
        let cfg = ema_config(&case["config"]);
        let steps = case["values"].as_array().unwrap();
        let names: Vec<String> = steps[0].as_object().unwrap().keys().cloned().collect();
        for name in &names {
            // The start does not matter: the first update (decay 0) copies the model.
            let mut ema = tensor(vec![123.0; floats(&steps[0][name]).len()]);
            for (k, step) in steps.iter().enumerate() {
                ema = lerp_towards(ema, tensor(floats(&step[name])), cfg.decay_at(k as u64 + 1));
                let want = floats(&case["averaged"][k][name]);
                assert_close(
                    &values(ema.clone()),
                    &want,
                    1e-6,
                    // The model's values are N(0, 1): the EMA is a lerp between numbers of
                    // that size.
                    1.0,
                    &format!("{:?} {name} step {}", case["config"], k + 1),
                );
            }
        }
    }
}

/// Multiplies every float tensor (parameters and BatchNorm buffers) by `factor`, keeping ids.
struct Scale(f32);
impl ModuleMapper for Scale {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, t, mapper) = param.consume();
        Param::from_mapped_value(id, t.mul_scalar(self.0), mapper)
    }
}

fn all_floats<M: Module>(m: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v: Vec<f32> = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap();
            self.0.extend(v);
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

#[test]
fn ema_of_a_model_averages_weights_and_batchnorm_buffers() {
    let device = Device::flex();
    let spec = kestrel_models::find("resnet20_cifar").unwrap();
    let model = spec.build(
        &kestrel_models::BuildOptions {
            num_classes: 3,
            in_chans: 3,
            img_size: None,
        },
        &device,
    );
    let cfg = EmaConfig {
        decay: 0.75,
        ..EmaConfig::default()
    };
    let mut ema = ModelEma::new(cfg, &model);
    // By hand: update 1 has decay 0 (a copy of 2·m); update 2 has decay 0.75:
    // 0.75·(2·m) + 0.25·(6·m) = 3·m.
    // valid() copies: a plain clone shares BatchNorm's running-state buffers with the original.
    let base = all_floats(&model);
    ema.update(&model.valid().map(&mut Scale(2.0)));
    ema.update(&model.valid().map(&mut Scale(6.0)));
    let want: Vec<f32> = base.iter().map(|v| 3.0 * v).collect();
    // BatchNorm's running_var starts at 1 and must be averaged too.
    assert!(base.iter().any(|v| *v == 1.0));
    assert_close(
        &all_floats(&ema.model),
        &want,
        1e-6,
        1e-6,
        "EMA of resnet20_cifar",
    );
    assert_eq!(ema.updates, 2);
}

#[test]
fn gradient_clipping_matches_torch_and_timm() {
    let fx = fixture();
    let c = &fx["clip"];
    let shapes: Vec<Vec<usize>> = c["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    let cases = c["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5, "norm ×2, value, agc ×2");
    for case in cases {
        let mode: ClipMode = case["mode"].as_str().unwrap().parse().unwrap();
        let threshold = case["threshold"].as_f64().unwrap();
        let items = shapes
            .iter()
            .enumerate()
            .map(|(i, dims)| ParamGrad {
                dims: dims.clone(),
                param: tensor(floats(&c["params"][i])),
                grad: tensor(floats(&c["grads"][i])),
            })
            .collect();
        let clipped = clip(mode, threshold, items);
        let mut changed = false;
        for (i, got) in clipped.into_iter().enumerate() {
            let want = floats(&case["clipped"][i]);
            changed |= want != floats(&c["grads"][i]);
            assert_close(
                &values(got),
                &want,
                1e-6,
                1e-3,
                &format!("{mode} {threshold} grad {i}"),
            );
        }
        // Each case but the loose norm bound clips something, or it would test nothing.
        assert_eq!(
            changed,
            !(mode == ClipMode::Norm && threshold > 1.0),
            "{mode} {threshold}"
        );
    }
}

/// torch's GradScaler arithmetic on a hand-computed case: the gradient of sum(w·x) is x, so the
/// scaled loss's gradient S·x unscales to x; an overflowed gradient skips the update and halves
/// the scale; `GROWTH_INTERVAL` good updates double it.
#[test]
fn loss_scaler_unscales_skips_overflow_and_grows() {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use kestrel_train::grad::LossScaler;
    let device = Device::flex().autodiff();
    let layer: Linear = LinearConfig::new(3, 1).with_bias(false).init(&device);
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -2.0, 3.0], [1, 3]), &device);
    let grads_of = |scale: f64| {
        let loss = layer.forward(x.clone()).sum().mul_scalar(scale);
        GradientsParams::from_grads(loss.backward(), &layer)
    };
    let weight_grad = |grads: &GradientsParams| {
        let g: Tensor<2> = grads.get(layer.weight.id).expect("weight gradient");
        values(g.reshape([3]))
    };

    let mut scaler = LossScaler::default();
    assert_eq!(scaler.scale, 65536.0, "torch's init_scale");
    let mut grads = grads_of(scaler.scale);
    assert_close(
        &weight_grad(&grads),
        &[32768.0, -131072.0, 196608.0],
        1e-6,
        0.0,
        "scaled",
    );
    assert!(scaler.unscale(&layer, &mut grads));
    assert_close(
        &weight_grad(&grads),
        &[0.5, -2.0, 3.0],
        1e-6,
        0.0,
        "unscaled",
    );
    assert_eq!((scaler.good_steps, scaler.skipped), (1, 0));

    let mut overflowed = grads_of(f64::INFINITY);
    assert!(
        !scaler.unscale(&layer, &mut overflowed),
        "an inf gradient is skipped"
    );
    assert_eq!(
        (scaler.scale, scaler.good_steps, scaler.skipped),
        (32768.0, 0, 1)
    );

    for _ in 0..LossScaler::GROWTH_INTERVAL {
        let mut g = grads_of(scaler.scale);
        assert!(scaler.unscale(&layer, &mut g));
    }
    assert_eq!(
        (scaler.scale, scaler.good_steps),
        (65536.0, 0),
        "doubled after 2000 good steps"
    );
}
