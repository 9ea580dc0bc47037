//! Inputs that are legal on the command line but awkward for the model: images of another size
//! than the training images, tensors of another spatial size, a batch larger than the data,
//! out-of-range hyper-parameters, a closed stdout. kestrel must either do the right thing or
//! stop with a clear error — never panic.

use crate::common;

use std::path::Path;

use common::{kestrel, s, solid_color_folder, solid_image, tempdir, write_tensor, Lcg, Run};

fn assert_no_panic(run: &Run) {
    assert!(
        !run.stderr.contains("panicked"),
        "kestrel {:?} panicked:\n{}",
        run.args,
        run.transcript()
    );
    assert_ne!(
        run.code,
        Some(101),
        "kestrel {:?} exited like a panic:\n{}",
        run.args,
        run.transcript()
    );
}

/// LeNet-5 ends in fully connected layers, so it takes exactly 1×32×32.
#[test]
fn forward_input_with_wrong_spatial_size() {
    let tmp = tempdir();
    let y = tmp.path().join("y.safetensors");
    for shape in [[1, 1, 8, 8], [1, 1, 64, 48]] {
        let x = tmp.path().join("x.safetensors");
        write_tensor(&x, "input", &shape);
        let run = kestrel([
            "forward",
            "--model",
            "lenet5",
            "--input",
            s(&x),
            "--output",
            s(&y),
        ]);
        run.fails_cleanly_naming(&[s(&x), &format!("{shape:?}")]);
    }
}

fn train_small(data: &Path, out: &Path, extra: &[&str]) -> Run {
    train_epochs(data, out, "3", extra)
}

fn train_epochs(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--epochs",
        epochs,
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--quiet",
        "--seed",
        "1",
    ];
    args.extend_from_slice(extra);
    kestrel(args)
}

/// A checkpoint trained on 16×16 images (LeNet-5's data config: resized to 28×28, padded to
/// 32×32) must still classify an image of another size — resize it, or at worst refuse it with
/// an error that names the file. It must not panic. Ten epochs: the model must have learnt the
/// colours (3 epochs of 27 images leave it at chance) for its answer to mean anything.
#[test]
fn predict_image_of_another_size_than_the_training_images() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 10, 11);
    let out = tmp.path().join("run");
    train_epochs(&data, &out, "10", &[]).ok();
    let mut rng = Lcg::new(5);
    for (w, h) in [(20u32, 20u32), (300, 200)] {
        let img = tmp.path().join(format!("red_{w}x{h}.png"));
        image::RgbImage::from_fn(w, h, |_, _| {
            image::Rgb([225u8, 30, 20].map(|c| (c as i32 + rng.noise(12)) as u8))
        })
        .save(&img)
        .unwrap();
        let run = kestrel(["predict", "--checkpoint", s(&out), s(&img), "--json"]);
        assert_no_panic(&run);
        if run.success() {
            let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            assert_eq!(v[0]["top"][0]["class"], "red", "{w}x{h} red image: {v}");
        } else {
            run.fails_cleanly_naming(&[s(&img)]);
        }
    }
}

/// An ImageFolder whose images are not all the same size, trained one image per batch.
#[test]
fn train_on_images_of_mixed_sizes() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 6, 12);
    let odd = data.join("red").join("100.png");
    solid_image([225, 30, 20], 20, 12, &mut Lcg::new(3))
        .save(&odd)
        .unwrap();
    let run = kestrel([
        "train",
        "--data",
        s(&data),
        "--out",
        s(&tmp.path().join("run")),
        "--epochs",
        "1",
        "--batch-size",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]);
    assert_no_panic(&run);
    if !run.success() {
        run.fails_cleanly_naming(&[s(&odd)]);
    }
}

/// 54 training images and the default --batch-size 64: with drop_last the epoch has no batch
/// at all. Training must then either use the partial batch or say why it cannot — not report
/// success after zero optimizer steps (the log shows train_loss 0, 0 images/s).
#[test]
fn batch_larger_than_the_training_set() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 20, 13);
    let out = tmp.path().join("run");
    let run = kestrel([
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--workers",
        "1",
        "--quiet",
    ]);
    assert_no_panic(&run);
    if run.success() {
        let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert!(
            v["train_loss"].as_f64().unwrap() > 0.0,
            "no training step was taken: {v}"
        );
        assert!(
            v["images_per_second"].as_f64().unwrap() > 0.0,
            "no training image was seen: {v}"
        );
    } else {
        run.fails_cleanly_naming(&["batch"]);
    }
}

/// Label smoothing is a probability mass; PyTorch's CrossEntropyLoss rejects values outside
/// [0, 1]. 2.0 gives negative targets and trains towards nonsense.
#[test]
fn label_smoothing_out_of_range() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 14);
    let run = train_small(&data, &tmp.path().join("run"), &["--label-smoothing", "2"]);
    run.fails_cleanly_naming(&["label"]);
}

/// `kestrel models | head -1` closes the pipe early; a CLI should exit quietly, not panic
/// with "failed printing to stdout: Broken pipe".
#[test]
fn closed_stdout_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write to `writer` now fails with EPIPE
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kestrel-cli-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(["models", "--no-macs", "--filter", "lenet5"])
        .env("HOME", &home)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "status {:?}:\n{stderr}",
        out.status
    );
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
