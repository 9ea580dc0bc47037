//! `--device wgpu` end to end: `kestrel devices`, training whose loss falls, and `eval`, `predict`
//! and `forward` on the GPU agreeing with the CPU backend (itself checked against timm). CI runs
//! them on Mesa's software Vulkan device (lavapipe; `.ci/run` installs `mesa-vulkan-drivers`).
//! Without a GPU adapter they are skipped, except under `CI=true`, where that is a failure.

use std::path::Path;

use crate::common::{
    self, jsonl_column, kestrel, kestrel_with_env, read_json, read_tensor, s, solid_color_folder,
    solid_image, tempdir, write_tensor, Lcg, Run,
};

/// `kestrel devices --json`, parsed.
fn devices() -> Vec<serde_json::Value> {
    let run = kestrel(["devices", "--json"]).ok();
    serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout)
        .unwrap_or_else(|e| panic!("devices --json: {e}\n{}", run.stdout))
}

/// Whether a wgpu adapter is visible; outside CI, a missing one skips the test.
fn have_gpu() -> bool {
    if devices()
        .iter()
        .any(|d| d["spec"].as_str().unwrap().starts_with("wgpu:"))
    {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !in_ci,
        "CI=true but `kestrel devices` lists no wgpu adapter: .ci/run installs mesa-vulkan-drivers"
    );
    eprintln!("skipped: no wgpu adapter (CI would fail)");
    false
}

#[test]
fn devices_lists_the_cpu_with_its_memory_and_every_adapter() {
    let list = devices();
    let cpu = &list[0];
    assert_eq!(cpu["spec"], "cpu", "{cpu}");
    assert_eq!(cpu["backend"], "flex", "{cpu}");
    // The memory column is /proc/meminfo's MemTotal.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    assert_eq!(cpu["memory_bytes"].as_u64(), Some(kb * 1024), "{cpu}");
    // GPU rows are numbered in order, each with a backend and a name.
    for (i, d) in list[1..].iter().enumerate() {
        assert_eq!(d["spec"], format!("wgpu:{i}"), "{d}");
        assert!(
            ["vulkan", "metal", "dx12", "gl"].contains(&d["backend"].as_str().unwrap()),
            "{d}"
        );
        assert!(!d["name"].as_str().unwrap().is_empty(), "{d}");
    }
    // The table has the same rows.
    let table = kestrel(["devices"]).ok().stdout;
    for d in &list {
        assert!(table.contains(d["spec"].as_str().unwrap()), "{table}");
    }
}

/// `kestrel forward --model lenet5` (random weights) of a 1×1×32×32 input with `extra` flags,
/// and whether it wrote its output file.
fn forward_lenet(extra: &[&str]) -> (Run, bool) {
    let tmp = tempdir();
    let (x, y) = (
        tmp.path().join("x.safetensors"),
        tmp.path().join("y.safetensors"),
    );
    write_tensor(&x, "input", &[1, 1, 32, 32]);
    let mut args = vec![
        "forward",
        "--model",
        "lenet5",
        "--input",
        s(&x),
        "--output",
        s(&y),
    ];
    args.extend(extra);
    let run = kestrel(&args);
    (run, y.exists())
}

#[test]
fn a_device_that_is_not_there_is_an_error_listing_those_that_are() {
    let (run, wrote) = forward_lenet(&["--device", "wgpu:99"]);
    assert!(!wrote, "a failed run wrote its output");
    if devices().len() == 1 {
        run.fails_cleanly_naming(&["--device wgpu:99", "no GPU adapter", "available: cpu"]);
    } else {
        run.fails_cleanly_naming(&[
            "--device wgpu:99",
            "no adapter 99",
            "available: cpu, wgpu:0",
        ]);
    }
}

/// The `kestrel train` arguments of the GPU runs: LeNet-5 on solid colours in `data` for 3
/// epochs on `--device wgpu`, into `out`, then `extra`.
fn gpu_train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--model",
        "lenet5",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--seed",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--device",
        "wgpu",
        "--out",
        s(out),
    ];
    args.extend(extra);
    args
}

/// Trains LeNet-5 on the GPU and checks, against the CPU backend on the same checkpoint, that
/// `eval`, `predict` and `forward` on the GPU give the same answers. Run without
/// XDG_RUNTIME_DIR, as on a server: the GPU runs must not print libwayland's complaint.
#[test]
fn train_eval_predict_forward_on_wgpu_agree_with_the_cpu() {
    if !have_gpu() {
        return;
    }
    let quiet = |args: &[&str]| {
        let run = kestrel_with_env(args, &[], &["XDG_RUNTIME_DIR"]).ok();
        assert!(
            !run.stderr.contains("XDG_RUNTIME_DIR"),
            "a GPU run printed the display probe's complaint:\n{}",
            run.transcript()
        );
        run
    };
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 20, 7);
    let out = tmp.path().join("run");
    quiet(&gpu_train_args(&data, &out, &[]));
    let loss = jsonl_column(&out.join("train_log.jsonl"), "train_loss");
    assert_eq!(loss.len(), 3, "{loss:?}");
    assert!(
        loss[2] < 0.5 * loss[0],
        "the training loss should fall: {loss:?}"
    );
    let acc = read_json(&out.join("metrics.json"))["accuracy"]
        .as_f64()
        .unwrap();
    assert!(acc >= 0.9, "accuracy {acc} on separable colours");

    // eval: the same predictions and probabilities on both backends.
    let eval = |device: &str| {
        let csv = tmp.path().join(format!("{device}.csv"));
        let dir = tmp.path().join(format!("eval-{device}"));
        quiet(&[
            "eval",
            "--checkpoint",
            s(&out),
            "--data",
            s(&data),
            "--device",
            device,
            "--save-predictions",
            s(&csv),
            "--out",
            s(&dir),
        ]);
        (
            read_json(&dir.join("metrics.json")),
            std::fs::read_to_string(csv).unwrap(),
        )
    };
    let (gpu_metrics, gpu_csv) = eval("wgpu");
    let (cpu_metrics, cpu_csv) = eval("cpu");
    assert_eq!(gpu_metrics["accuracy"], cpu_metrics["accuracy"]);
    assert_eq!(
        gpu_metrics["confusion_matrix"],
        cpu_metrics["confusion_matrix"]
    );
    assert_eq!(gpu_csv.lines().count(), cpu_csv.lines().count());
    for (g, c) in gpu_csv.lines().zip(cpu_csv.lines()).skip(1) {
        let (g, c): (Vec<&str>, Vec<&str>) = (g.split(',').collect(), c.split(',').collect());
        assert_eq!(g[..4], c[..4], "image, label, prediction, top-3");
        for (pg, pc) in g[4..].iter().zip(&c[4..]) {
            let (pg, pc): (f64, f64) = (pg.parse().unwrap(), pc.parse().unwrap());
            assert!((pg - pc).abs() < 1e-4, "probabilities {g:?} vs {c:?}");
        }
    }

    // predict: the same top classes.
    let img = tmp.path().join("red.png");
    solid_image(common::COLORS[2].1, 16, 12, &mut Lcg::new(3))
        .save(&img)
        .unwrap();
    let top = |device: &str| {
        let run = quiet(&[
            "predict",
            "--checkpoint",
            s(&out),
            s(&img),
            "--json",
            "--device",
            device,
        ]);
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()[0]["top"].clone()
    };
    let (gpu_top, cpu_top) = (top("wgpu"), top("cpu"));
    assert_eq!(
        gpu_top[0]["class"], cpu_top[0]["class"],
        "{gpu_top} vs {cpu_top}"
    );
    assert_eq!(gpu_top[0]["class"], common::COLORS[2].0);

    // forward: the logits of a batch of 2 at the checkpoint's input size, within the parity bar.
    let ckpt = read_json(&out.join("checkpoint.json"));
    let chw: Vec<usize> = ckpt["data_config"]["input_size"]
        .as_array()
        .unwrap_or_else(|| panic!("checkpoint.json: no data_config.input_size: {ckpt}"))
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let input = tmp.path().join("x.safetensors");
    write_tensor(&input, "input", &[2, chw[0], chw[1], chw[2]]);
    let logits = |device: &str, precision: &str| {
        let file = tmp
            .path()
            .join(format!("logits-{device}-{precision}.safetensors"));
        quiet(&[
            "forward",
            "--checkpoint",
            s(&out),
            "--input",
            s(&input),
            "--output",
            s(&file),
            "--device",
            device,
            "--precision",
            precision,
        ]);
        read_tensor(&file, "logits")
    };
    let ((gs, g), (cs, c)) = (logits("wgpu", "f32"), logits("cpu", "f32"));
    assert_eq!(gs, cs);
    let scale = c.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_err = |g: &[f32]| {
        g.iter()
            .zip(&c)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
    };
    let err = max_err(&g);
    assert!(
        err <= 1e-4 * scale,
        "max |wgpu - cpu| = {err}, max|logit| = {scale}"
    );
    // Half precision: f16 carries 11 significant bits, so about 1e-3 relative, not 1e-4, and
    // far from the f32 rounding a broken cast would leave (exactly equal logits).
    let (hs, h) = logits("wgpu", "f16");
    assert_eq!(hs, cs);
    let err16 = max_err(&h);
    assert!(
        err16 <= 1e-2 * scale,
        "f16: max |wgpu - cpu| = {err16}, max|logit| = {scale}"
    );
    assert!(
        err16 > err,
        "f16 logits as exact as f32 ({err16} vs {err}): not computed in f16?"
    );
}

#[test]
fn half_precision_on_the_cpu_is_an_error_naming_the_flag() {
    let (run, wrote) = forward_lenet(&["--precision", "f16"]);
    assert!(!wrote, "a failed run wrote its output");
    run.fails_cleanly_naming(&["--precision f16", "CPU backend computes in f32"]);
    // clap rejects an unknown type (usage error, exit 2), naming the valid ones.
    let (run, wrote) = forward_lenet(&["--precision", "f64"]);
    assert!(!wrote);
    assert_eq!(run.code, Some(2), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("unknown precision 'f64'; valid: f32, f16, bf16"),
        "{}",
        run.transcript()
    );
}

/// `train --precision f16` on the GPU: mixed precision with dynamic loss scaling. It starts at
/// torch's 2^16, which overflows f16 at first, so some updates are skipped, each halving the
/// scale (too few updates here to grow it); the scaler's state is in the resumable record, and
/// the model still learns.
#[test]
fn f16_training_scales_the_loss_and_learns() {
    if !have_gpu() {
        return;
    }
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 20, 7);
    let out = tmp.path().join("run");
    kestrel(gpu_train_args(&data, &out, &["--precision", "f16"])).ok();
    let state = read_json(&out.join("last.state.json"));
    let progress = &state["progress"];
    let scaler = &progress["loss_scaler"];
    assert!(
        scaler.is_object(),
        "last.state.json has no progress.loss_scaler: {state}"
    );
    let skipped = scaler["skipped"].as_u64().unwrap();
    assert!(skipped >= 1, "2^16 should overflow f16 at first: {scaler}");
    assert_eq!(
        scaler["scale"].as_f64().unwrap(),
        65536.0 / 2f64.powi(skipped as i32),
        "{scaler}"
    );
    let loss = jsonl_column(&out.join("train_steps.jsonl"), "loss");
    // Skipped updates are neither counted nor logged.
    assert_eq!(
        progress["step"].as_u64(),
        Some(loss.len() as u64),
        "{loss:?}"
    );
    assert!(loss.iter().all(|l| l.is_finite()), "{loss:?}");
    let (first, last) = (
        loss[..3].iter().sum::<f64>(),
        loss[loss.len() - 3..].iter().sum::<f64>(),
    );
    assert!(last < 0.85 * first, "the f16 loss should fall: {loss:?}");
}
