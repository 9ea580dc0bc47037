//! The whole training loop against PyTorch: resnet8_cifar from the same initial weights, on the
//! same images in the same order without augmentation, trained by `train_run` (the loop
//! `kestrel train` runs), gives the per-step losses and lrs of the PyTorch loop of
//! scripts/make_loop_fixture.py (SGD with Nesterov momentum and timm's weight-decay groups,
//! label smoothing, timm's warm-up + cosine per update, BatchNorm in training mode).

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use kestrel_data::{open_idx_dir, DataSource, Dataset, DatasetKind, Splits};
use kestrel_train::logs::{StepRecord, STEP_LOG_FILE};
use kestrel_train::optim::OptimizerKind;
use kestrel_train::schedule::ScheduleKind;
use kestrel_train::{train_run, RunOptions, TrainConfig};

/// |kestrel − torch| per step, absolute (the losses are 0.5–2.4): the bound.
const LOSS_TOLERANCE: f64 = 1e-4;
/// The lr of each update, relative.
const LR_TOLERANCE: f64 = 1e-9;
/// The weights after the last step, absolute (the tensors checked are of order 0.1–1).
const WEIGHT_TOLERANCE: f64 = 1e-5;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loop")
}

fn reference() -> serde_json::Value {
    let path = fixture_dir().join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the fixture is committed, regenerate it with `python3 scripts/make_loop_fixture.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture's IDX files through kestrel's reader, the whole train file as the training split
/// (the PyTorch loop trains on all of it; `--val-fraction`'s split would hold some out) and the
/// t10k file as validation and test.
fn splits() -> Splits {
    let dir = fixture_dir();
    let idx = open_idx_dir(&dir).expect("the fixture's IDX files");
    let held_out: Arc<dyn Dataset> = Arc::new(idx.test.expect("t10k files in the fixture"));
    Splits {
        class_names: idx.train.class_names.clone(),
        train: Arc::new(idx.train),
        val: held_out.clone(),
        test: held_out,
        description: format!("the loop fixture {}", dir.display()),
        skipped_at_scan: 0,
        kind: DatasetKind::Idx,
        source: DataSource {
            path: Some(dir.clone()),
            val_dir: None,
            val_fraction: 0.1,
            split_seed: 0,
        },
        val_origin: "t10k".into(),
        test_origin: "t10k".into(),
    }
}

fn config(reference: &serde_json::Value) -> TrainConfig {
    let c = &reference["config"];
    let f = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("config.{k}"));
    let u = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("config.{k}")) as usize;
    assert_eq!(c["optimizer"], "sgd");
    assert_eq!(c["schedule"], "cosine");
    assert_eq!(c["nesterov"], true);
    let size = u("img_size");
    TrainConfig {
        model: c["model"].as_str().unwrap().into(),
        epochs: u("epochs"),
        batch_size: u("batch_size"),
        optimizer: OptimizerKind::Sgd,
        lr: f("lr"),
        momentum: f("momentum"),
        nesterov: true,
        weight_decay: f("weight_decay"),
        schedule: ScheduleKind::Cosine,
        warmup_epochs: f("warmup_epochs"),
        warmup_lr: Some(f("warmup_lr")),
        min_lr: f("min_lr"),
        label_smoothing: f("label_smoothing") as f32,
        crop_padding: 0,
        hflip: false,
        shuffle: false,
        workers: 1,
        input_hw: Some([size, size]),
        weights: Some(fixture_dir().join("weights.safetensors")),
        ..TrainConfig::default()
    }
}

#[test]
fn the_training_loop_gives_pytorchs_per_step_losses_and_lrs() {
    let reference = reference();
    let want = reference["steps"].as_array().expect("steps");
    assert!(want.len() >= 50, "the reference covers at least 50 steps");
    let cfg = config(&reference);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    train_run(
        &cfg,
        &splits(),
        &run,
        &Device::flex(),
        &RunOptions::default(),
    )
    .expect("training runs");

    let log = std::fs::read_to_string(run.join(STEP_LOG_FILE)).expect("the step log");
    let got: Vec<StepRecord> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(got.len(), want.len(), "optimizer steps");
    let mut report = String::new();
    let mut worst = (0.0f64, 0);
    for (g, w) in got.iter().zip(want) {
        let (loss, lr) = (w["loss"].as_f64().unwrap(), w["lr"].as_f64().unwrap());
        assert_eq!(g.step as u64, w["step"].as_u64().unwrap());
        assert_eq!(
            g.epoch as u64,
            w["epoch"].as_u64().unwrap(),
            "step {}",
            g.step
        );
        assert!(
            (g.lr - lr).abs() <= LR_TOLERANCE * lr,
            "step {}: kestrel lr {} vs timm {lr}",
            g.step,
            g.lr
        );
        let diff = (g.loss - loss).abs();
        if diff > worst.0 {
            worst = (diff, g.step);
        }
        report.push_str(&format!(
            "step {:>2}: kestrel {:.7} torch {loss:.7} diff {diff:.1e} (torch f32 vs f64 {:.1e})\n",
            g.step,
            g.loss,
            (loss - w["loss_f64"].as_f64().unwrap()).abs()
        ));
    }
    eprintln!(
        "{report}largest difference {:.2e} at step {}",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= LOSS_TOLERANCE,
        "step {}: loss differs from PyTorch's by {:.2e} > {LOSS_TOLERANCE:e}\n{report}",
        worst.1,
        worst.0
    );

    // The weights after the last update (last.safetensors, timm's names and layout).
    let bytes = std::fs::read(run.join("last.safetensors")).expect("last.safetensors");
    let weights = safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let finals = reference["final"].as_object().expect("final");
    assert!(!finals.is_empty());
    for (name, want) in finals {
        let view = weights
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<f64> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        eprintln!("{name} after the last step: largest difference {diff:.1e}");
        assert!(
            diff <= WEIGHT_TOLERANCE,
            "{name} after the last step: kestrel {got:?}\ntorch {want:?}"
        );
    }
}
