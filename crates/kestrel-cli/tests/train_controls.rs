//! Training controls end to end: gradient accumulation equals the larger batch, early stopping
//! stops, a diverging run stops with a clear message and keeps its last good checkpoint,
//! `--ema-eval` keeps the best EMA, `--tta-flip` scores an image with its mirror.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{kestrel, read_json, s, solid_color_folder, tempdir};

fn run_args(train: &Path, val: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data",
        s(train),
        "--val-dir",
        s(val),
        "--model",
        "lenet5",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--warmup-epochs",
        "0",
        "--seed",
        "2",
        "--workers",
        "1",
        "--quiet",
        "--out",
        s(out),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, vals)
        })
        .collect()
}

fn data(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (train, val) = (tmp.join("train"), tmp.join("val"));
    // 24 training images: batches of 8 and pairs of batches of 4 cover the same samples.
    solid_color_folder(&train, 8, 1);
    solid_color_folder(&val, 2, 2);
    (train, val)
}

#[test]
fn accumulating_two_batches_of_4_equals_one_batch_of_8() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let (a, b) = (tmp.path().join("b8"), tmp.path().join("b4x2"));
    let common = ["--epochs", "2", "--lr", "0.05", "--schedule", "constant"];
    let mut one = common.to_vec();
    one.extend(["--batch-size", "8"]);
    let mut two = common.to_vec();
    two.extend(["--batch-size", "4", "--grad-accum", "2"]);
    kestrel(run_args(&train, &val, &a, &one)).ok();
    kestrel(run_args(&train, &val, &b, &two)).ok();
    let (ta, tb) = (
        tensors(&a.join("last.safetensors")),
        tensors(&b.join("last.safetensors")),
    );
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, va) in &ta {
        let vb = &tb[name];
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            // The same sums in another order: float rounding only.
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "{name}[{i}]: {x} (batch 8) vs {y} (4 × 2)"
            );
        }
    }
    // Both ran the same number of updates.
    let (sa, sb) = (
        read_json(&a.join("last.state.json")),
        read_json(&b.join("last.state.json")),
    );
    assert_eq!(sa["progress"]["step"], 6);
    assert_eq!(sb["progress"]["step"], 6);
}

#[test]
fn early_stopping_ends_the_run_after_patience_epochs() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let out = tmp.path().join("run");
    // A learning rate too small to change any prediction: epoch 1 stays the best.
    let run = kestrel(run_args(
        &train,
        &val,
        &out,
        &[
            "--epochs",
            "6",
            "--lr",
            "1e-12",
            "--min-lr",
            "0",
            "--schedule",
            "constant",
            "--patience",
            "2",
            "--batch-size",
            "8",
        ],
    ))
    .ok();
    assert!(
        run.stdout.contains("early stopping"),
        "{}",
        run.transcript()
    );
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        3,
        "epoch 1 best, 2 and 3 not better:\n{log}"
    );
    assert!(out.join("metrics.json").exists());
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let out = tmp.path().join("run");
    let run = kestrel(run_args(
        &train,
        &val,
        &out,
        &[
            "--epochs",
            "2",
            "--lr",
            "1e30",
            "--batch-size",
            "4",
            "--checkpoint-every",
            "1",
        ],
    ));
    let last = out.join("last.safetensors");
    run.fails_cleanly_naming(&[
        "training stopped",
        "NaN or inf",
        "last good checkpoint",
        s(&last),
    ]);
    // The checkpoint on disk is the one before the bad step, and it is whole.
    let state = read_json(&out.join("last.state.json"));
    let step = state["progress"]["step"].as_u64().unwrap();
    assert!(
        run.stderr.contains(&format!("step {}", step + 1)),
        "{}",
        run.transcript()
    );
    for v in tensors(&last).values() {
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn metrics_csv_and_tensorboard_events_hold_what_the_log_holds() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let out = tmp.path().join("run");
    kestrel(run_args(
        &train,
        &val,
        &out,
        &["--epochs", "2", "--lr", "0.05", "--batch-size", "8"],
    ))
    .ok();
    let log: Vec<serde_json::Value> = std::fs::read_to_string(out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    for (row, entry) in rows.iter().zip(&log) {
        for key in ["train_loss", "val_accuracy", "lr"] {
            let col = header.iter().position(|h| *h == key).unwrap();
            let (csv, json) = (
                row[col].parse::<f64>().unwrap(),
                entry[key].as_f64().unwrap(),
            );
            // serde_json's default float parser may be one ulp off; the CSV prints exactly.
            assert!(
                (csv - json).abs() <= 1e-15 * json.abs().max(1.0),
                "{key}: {csv} vs {json}"
            );
        }
    }

    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // read_events checks every record's framing and both masked CRC-32Cs.
    let events = kestrel_train::logs::read_events(&files[0]).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let scalars = |tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .filter_map(|e| e.summary.as_ref().map(|s| (e.step, &s.value[0])))
            .filter(|(_, v)| v.tag == tag)
            .map(|(step, v)| (step, v.simple_value.unwrap()))
            .collect()
    };
    // 3 updates an epoch, each with its loss, lr and throughput.
    assert_eq!(scalars("train/loss").len(), 6);
    assert_eq!(scalars("train/lr").len(), 6);
    assert_eq!(scalars("train/images_per_second").len(), 6);
    let val_acc = scalars("epoch/val_accuracy");
    assert_eq!(val_acc.len(), 2);
    for ((step, v), entry) in val_acc.iter().zip(&log) {
        assert_eq!(*step as u64, entry["epoch"].as_u64().unwrap());
        assert_eq!(*v, entry["val_accuracy"].as_f64().unwrap() as f32);
    }
    // A flipped byte is caught by the CRC.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let k = bytes.len() - 6;
    bytes[k] ^= 1;
    let broken = tmp.path().join("broken.tfevents");
    std::fs::write(&broken, bytes).unwrap();
    assert!(kestrel_train::logs::read_events(&broken).is_err());
}

#[test]
fn ema_eval_picks_the_best_ema_epoch_and_saves_its_ema_weights() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let (with, without) = (tmp.path().join("ema_eval"), tmp.path().join("ema"));
    let common = [
        "--epochs",
        "3",
        "--lr",
        "0.02",
        "--batch-size",
        "8",
        "--ema",
        "--ema-decay",
        "0.5",
    ];
    let mut one = common.to_vec();
    one.push("--ema-eval");
    kestrel(run_args(&train, &val, &with, &one)).ok();
    kestrel(run_args(&train, &val, &without, &common)).ok();

    // The best epoch is the first with the highest EMA validation accuracy, and the checkpoint
    // records that accuracy.
    let log = std::fs::read_to_string(with.join("train_log.jsonl")).unwrap();
    let ema_acc: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ema_val_accuracy"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let best = ema_acc
        .iter()
        .enumerate()
        .fold(0, |b, (i, a)| if *a > ema_acc[b] { i } else { b });
    let meta = read_json(&with.join("checkpoint.json"));
    assert_eq!(meta["epoch"].as_u64().unwrap() as usize, best + 1, "{log}");
    assert_eq!(meta["val_accuracy"].as_f64().unwrap(), ema_acc[best]);
    // model.safetensors is that epoch's EMA; without --ema-eval it is the raw weights.
    assert_eq!(
        tensors(&with.join("model.safetensors")),
        tensors(&with.join("model.ema.safetensors"))
    );
    assert_ne!(
        tensors(&without.join("model.safetensors")),
        tensors(&without.join("model.ema.safetensors"))
    );

    kestrel(run_args(
        &train,
        &val,
        &tmp.path().join("bad"),
        &["--ema-eval"],
    ))
    .fails_cleanly_naming(&["--ema-eval", "add --ema"]);
    kestrel(run_args(
        &train,
        &val,
        &tmp.path().join("bf16"),
        &["--precision", "bf16"],
    ))
    .fails_cleanly_naming(&["--precision bf16", "CPU backend computes in f32"]);
}

/// Each image of the ImageFolder `from`, mirrored left to right, under the same path in `to`.
fn mirrored_copy(from: &Path, to: &Path) {
    for class in std::fs::read_dir(from).unwrap() {
        let class = class.unwrap().path();
        let dir = to.join(class.file_name().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        for f in std::fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let img = image::open(&f).unwrap().to_rgb8();
            image::imageops::flip_horizontal(&img)
                .save(dir.join(f.file_name().unwrap()))
                .unwrap();
        }
    }
}

/// The probability columns of a predictions CSV, by image file name.
fn probs_by_file(csv: &Path) -> BTreeMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(csv).unwrap();
    text.lines()
        .skip(1)
        .map(|row| {
            let fields: Vec<&str> = row.split(',').collect();
            let name = Path::new(fields[0])
                .strip_prefix(Path::new(fields[0]).parent().unwrap().parent().unwrap())
                .unwrap()
                .display()
                .to_string();
            let probs = fields[fields.len() - 3..]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect();
            (name, probs)
        })
        .collect()
}

#[test]
fn tta_flip_scores_the_mean_of_an_image_and_its_mirror() {
    let tmp = tempdir();
    let (train, val) = data(tmp.path());
    let out = tmp.path().join("run");
    kestrel(run_args(
        &train,
        &val,
        &out,
        &["--epochs", "1", "--batch-size", "8"],
    ))
    .ok();
    // Noisy images, so that an image and its mirror differ.
    let test = tmp.path().join("test");
    solid_color_folder(&test, 3, 7);
    let mirror = tmp.path().join("mirror");
    mirrored_copy(&test, &mirror);
    let eval = |data: &Path, tta: bool, name: &str| {
        let csv = tmp.path().join(format!("{name}.csv"));
        let mut args = vec![
            "eval".to_string(),
            "--checkpoint".into(),
            s(&out).into(),
            "--data".into(),
            s(data).into(),
            "--save-predictions".into(),
            s(&csv).into(),
            "--out".into(),
            s(&tmp.path().join(format!("{name}_out"))).into(),
        ];
        if tta {
            args.push("--tta-flip".into());
        }
        kestrel(args).ok();
        probs_by_file(&csv)
    };
    let (plain, mirrored, tta) = (
        eval(&test, false, "plain"),
        eval(&mirror, false, "mirrored"),
        eval(&test, true, "tta"),
    );
    assert_eq!(tta.len(), 9);
    let mut differs = false;
    for (file, p) in &tta {
        let (a, b) = (&plain[file], &mirrored[file]);
        differs |= a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4);
        for k in 0..3 {
            let mean = 0.5 * (a[k] + b[k]);
            assert!(
                (p[k] - mean).abs() < 1e-5,
                "{file}: {p:?} vs the mean of {a:?} and {b:?}"
            );
        }
    }
    assert!(
        differs,
        "the mirrored images should score differently, or the test shows nothing"
    );
}
