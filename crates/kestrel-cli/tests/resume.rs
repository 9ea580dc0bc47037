//! Crash-safe checkpoints: a run killed with SIGKILL at many points and resumed each time ends
//! with the same bits as a run that was never interrupted; bad resume input fails naming the
//! file.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{kestrel, s, solid_color_folder, tempdir, Lcg};

/// A tiny run that still uses every kind of state: Adam moments, a warm-up + cosine schedule,
/// EMA with warm-up, gradient accumulation (3 updates an epoch), norm clipping, random crops and
/// flips, a checkpoint every update.
fn train_args(data: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--data",
        s(data),
        "--model",
        "lenet5",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "0.01",
        "--ema",
        "--ema-decay",
        "0.9",
        "--ema-warmup",
        "--clip-grad",
        "1.0",
        "--crop-padding",
        "2",
        "--hflip",
        "--checkpoint-every",
        "1",
        "--seed",
        "5",
        "--workers",
        "1",
        "--quiet",
        "--out",
        s(out),
    ]
    .map(String::from)
    .to_vec()
}

fn resume_args(out: &Path) -> Vec<String> {
    vec![
        "train".into(),
        "--resume".into(),
        s(out).into(),
        "--quiet".into(),
    ]
}

fn spawn(args: &[String]) -> std::process::Child {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kestrel-cli-home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kestrel")
}

/// Every tensor of a safetensors file as raw bytes (the files' own bytes may differ: burn writes
/// its metadata map in hash order).
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

fn log_values(run: &Path) -> Vec<(f64, f64, f64, f64)> {
    std::fs::read_to_string(run.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {l}"));
            (f("train_loss"), f("val_loss"), f("lr"), f("ema_val_loss"))
        })
        .collect()
}

fn wait(child: &mut std::process::Child, label: &str) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{label} failed: {status}\n{err}");
}

#[test]
fn killed_runs_resume_to_the_same_bits() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 8, 11);

    let reference = tmp.path().join("reference");
    let started = Instant::now();
    wait(
        &mut spawn(&train_args(&data, &reference)),
        "uninterrupted run",
    );
    let whole_run = started.elapsed();

    // 20 kills at pseudo-random points: a target step (0 = before the first checkpoint), then a
    // random fraction of one step's time after the run got there, so that kills also land
    // inside checkpoint writes. After each, resume (or start again when no checkpoint exists).
    const UPDATES: u32 = 9; // 3 epochs of 3 updates (5 batches, 2 per update)
    let step_time = whole_run / UPDATES;
    let run = tmp.path().join("killed");
    let mut rng = Lcg::new(2026);
    let mut targets: Vec<u64> = (0..20)
        .map(|_| (rng.next_u32() % (UPDATES + 1)) as u64)
        .collect();
    targets.sort();
    let steps_done = |run: &Path| -> Option<u64> {
        let text = std::fs::read_to_string(run.join("last.state.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["progress"]["step"].as_u64()
    };
    let mut steps_resumed_from = std::collections::BTreeSet::new();
    let mut interrupted = 0;
    for target in targets {
        let args = if run.join("last.state.json").exists()
            || run.join("last.state.json.staged").exists()
        {
            resume_args(&run)
        } else {
            let _ = std::fs::remove_dir_all(&run);
            train_args(&data, &run)
        };
        if let Some(step) = steps_done(&run) {
            steps_resumed_from.insert(step);
        }
        let mut child = spawn(&args);
        let deadline = Instant::now() + whole_run * 3;
        while steps_done(&run).unwrap_or(0) < target
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(step_time.mul_f64((rng.next_u32() % 1000) as f64 / 1000.0));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    eprintln!("{interrupted} of 20 kills hit a running process; resumed from steps {steps_resumed_from:?}");
    let mut last = spawn(&resume_args(&run));
    wait(&mut last, "final resume");

    assert!(
        interrupted >= 10,
        "only {interrupted} of 20 kills hit a running process"
    );
    assert!(
        steps_resumed_from.len() >= 3,
        "resumed from too few distinct points: {steps_resumed_from:?}"
    );
    for file in [
        "model.safetensors",
        "last.safetensors",
        "last.ema.safetensors",
        "model.ema.safetensors",
        "last.optim.safetensors",
    ] {
        assert_eq!(
            tensors(&run.join(file)),
            tensors(&reference.join(file)),
            "{file} differs after kills and resumes (resumed from steps {steps_resumed_from:?})"
        );
    }
    assert_eq!(log_values(&run), log_values(&reference));
    // One line per update, each once, as in the uninterrupted run.
    let steps = |run: &Path| std::fs::read_to_string(run.join("train_steps.jsonl")).unwrap();
    assert_eq!(steps(&run), steps(&reference));
    assert_eq!(steps(&reference).lines().count(), UPDATES as usize);
    assert_eq!(
        common::read_json(&run.join("metrics.json"))["accuracy"],
        common::read_json(&reference.join("metrics.json"))["accuracy"]
    );
}

#[test]
fn bad_resume_input_names_the_file() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 3);
    let run = tmp.path().join("run");
    let mut args = train_args(&data, &run);
    args[6] = "1".into(); // --epochs 1
    wait(&mut spawn(&args), "training run");
    let state = run.join("last.state.json");

    // Another model.
    kestrel(["train", "--resume", s(&run), "--model", "resnet20_cifar"])
        .fails_cleanly_naming(&[s(&state), "a run of lenet5"]);
    // A changed dataset.
    let other = tmp.path().join("other");
    solid_color_folder(&other, 5, 3);
    kestrel(["train", "--resume", s(&run), "--data", s(&other)])
        .fails_cleanly_naming(&[s(&state), "dataset changed"]);
    // A changed configuration.
    kestrel(["train", "--resume", s(&run), "--lr", "0.5"])
        .fails_cleanly_naming(&["--lr", s(&state)]);
    // No checkpoint at all.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    kestrel(["train", "--resume", s(&empty)])
        .fails_cleanly_naming(&[s(&empty.join("last.state.json"))]);

    // A corrupt optimizer state (one byte flipped) and truncated weights.
    let optim = run.join("last.optim.safetensors");
    let mut bytes = std::fs::read(&optim).unwrap();
    let k = bytes.len() - 3;
    bytes[k] ^= 0x40;
    std::fs::write(&optim, &bytes).unwrap();
    kestrel(["train", "--resume", s(&run)]).fails_cleanly_naming(&[s(&optim), "corrupt"]);
    bytes[k] ^= 0x40;
    std::fs::write(&optim, &bytes).unwrap();
    let weights = run.join("last.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    kestrel(["train", "--resume", s(&run)]).fails_cleanly_naming(&[s(&weights), "truncated"]);
    // A manifest that is not one.
    std::fs::write(&state, b"{\"format\": ").unwrap();
    kestrel(["train", "--resume", s(&run)]).fails_cleanly_naming(&[s(&state)]);
}
