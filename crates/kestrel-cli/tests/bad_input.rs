//! Bad input gets a clear error that names the offending path (or value) and exit code 1 —
//! never a panic.

use crate::common;

use std::path::Path;

use common::{
    kestrel, read_json, s, solid_color_folder, tempdir, write_tensor, write_truncated_jpeg,
    write_truncated_png, Run,
};

/// The smallest training run: one epoch of LeNet-5, batch 4, one loader thread.
fn train_tiny(data: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--epochs",
        "1",
        "--model",
        "lenet5",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    kestrel(args)
}

#[test]
fn train_missing_data_dir() {
    let tmp = tempdir();
    let missing = tmp.path().join("no-such-dataset");
    let run = train_tiny(&missing, &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&missing), "not found"]);
    assert!(
        !tmp.path().join("out").exists(),
        "a failed run should not create its run folder"
    );
}

#[test]
fn train_data_is_a_file_not_a_dir() {
    let tmp = tempdir();
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, b"not a dataset").unwrap();
    train_tiny(&file, &tmp.path().join("out"), &[]).fails_cleanly_naming(&[s(&file)]);
}

#[test]
fn train_dir_with_no_dataset() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("readme.md"), b"nothing here").unwrap();
    train_tiny(&data, &tmp.path().join("out"), &[])
        .fails_cleanly_naming(&[s(&data), "no dataset found"]);
}

#[test]
fn train_empty_class_folder() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 3, 1);
    let empty = data.join("green");
    for f in std::fs::read_dir(&empty).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    train_tiny(&data, &tmp.path().join("out"), &[])
        .fails_cleanly_naming(&[s(&empty), "no image files"]);
    // Even with --skip-bad-images: dropping a class would silently renumber the labels.
    train_tiny(&data, &tmp.path().join("out"), &["--skip-bad-images"])
        .fails_cleanly_naming(&[s(&empty)]);
}

#[test]
fn train_non_image_file_in_class_folder() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 3, 1);
    let notes = data.join("red").join("notes.txt");
    std::fs::write(&notes, b"labelling notes").unwrap();
    let run = train_tiny(&data, &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&notes), "not an image file"]);
}

/// Three classes of six good 16×16 PNGs plus one bad file, `red/003_bad.<ext>`, between the
/// good red images.
fn folder_with_bad_image(root: &Path, ext: &str) -> std::path::PathBuf {
    solid_color_folder(root, 6, 3);
    let bad = root.join("red").join(format!("003_bad.{ext}"));
    match ext {
        "png" => write_truncated_png(&bad, [230, 20, 20]),
        "jpg" => write_truncated_jpeg(&bad, [230, 20, 20]),
        _ => unreachable!(),
    }
    bad
}

#[test]
fn train_truncated_png() {
    let tmp = tempdir();
    let bad = folder_with_bad_image(&tmp.path().join("data"), "png");
    let run = train_tiny(&tmp.path().join("data"), &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&bad), "cannot decode image"]);
}

#[test]
fn train_truncated_jpeg() {
    let tmp = tempdir();
    let bad = folder_with_bad_image(&tmp.path().join("data"), "jpg");
    let run = train_tiny(&tmp.path().join("data"), &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&bad), "cannot decode image"]);
}

#[test]
fn train_skip_bad_images_counts_the_skipped_file() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    folder_with_bad_image(&data, "png");
    let out = tmp.path().join("out");
    let run = train_tiny(&data, &out, &["--skip-bad-images"]).ok();
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    let metrics = read_json(&out.join("metrics.json"));
    let skipped = metrics["skipped_images"]
        .as_u64()
        .unwrap_or_else(|| panic!("skipped_images: {metrics}"));
    assert!(skipped >= 1, "the corrupt PNG was not counted: {metrics}");
    assert!(out.join("model.safetensors").is_file());
}

/// `--skip-bad-images` must also cope when the corrupt file is the very first training sample
/// (the trainer peeks at one sample to choose the preprocessing). A separate --val-dir keeps the
/// split from moving the file out of the training set.
#[test]
fn train_skip_bad_images_when_first_training_image_is_corrupt() {
    let tmp = tempdir();
    let data = tmp.path().join("train");
    let val = tmp.path().join("val");
    solid_color_folder(&data, 4, 5);
    solid_color_folder(&val, 2, 6);
    // Sorts before "000.png" ('!' < '0'), so it is sample 0 of class 0.
    let bad = data.join("blue").join("!bad.png");
    write_truncated_png(&bad, [20, 30, 230]);
    let out = tmp.path().join("out");
    train_tiny(&data, &out, &["--val-dir", s(&val)]).fails_cleanly_naming(&[s(&bad)]);
    let run = train_tiny(&data, &out, &["--val-dir", s(&val), "--skip-bad-images"]);
    assert!(
        run.success(),
        "--skip-bad-images failed on a corrupt first image:\n{}",
        run.transcript()
    );
    let metrics = read_json(&out.join("metrics.json"));
    assert!(
        metrics["skipped_images"].as_u64().unwrap_or(0) >= 1,
        "{metrics}"
    );
}

#[test]
fn train_idx_wrong_magic() {
    let tmp = tempdir();
    let data = tmp.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    let (n, h, w) = (4u32, 28u32, 28u32);
    // Images: a label-file magic (0x0801) where the image magic (0x0803) belongs.
    let images = data.join("train-images-idx3-ubyte");
    let mut bytes = Vec::new();
    for v in [0x0000_0801u32, n, h, w] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.resize(16 + (n * h * w) as usize, 0);
    std::fs::write(&images, bytes).unwrap();
    let mut labels = Vec::new();
    for v in [0x0000_0801u32, n] {
        labels.extend_from_slice(&v.to_be_bytes());
    }
    labels.extend_from_slice(&[0, 1, 2, 3]);
    std::fs::write(data.join("train-labels-idx1-ubyte"), labels).unwrap();
    let run = train_tiny(&data, &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&images), "magic"]);
}

#[test]
fn train_truncated_cifar10_batch() {
    let tmp = tempdir();
    let data = tmp.path().join("cifar");
    std::fs::create_dir(&data).unwrap();
    let batch = data.join("data_batch_1.bin");
    let mut bytes = vec![0u8; 3073 * 5 + 7];
    for r in 0..5 {
        bytes[r * 3073] = r as u8; // valid labels
    }
    std::fs::write(&batch, bytes).unwrap();
    let run = train_tiny(&data, &tmp.path().join("out"), &[]);
    run.fails_cleanly_naming(&[s(&batch), "truncated"]);
}

#[test]
fn eval_missing_checkpoint() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 2, 1);
    let ckpt = tmp.path().join("no-such-run");
    let run = kestrel(["eval", "--checkpoint", s(&ckpt), "--data", s(&data)]);
    run.fails_cleanly_naming(&[s(&ckpt)]);
}

#[test]
fn predict_missing_and_corrupt_images() {
    let tmp = tempdir();
    let missing = tmp.path().join("missing.png");
    kestrel([
        "predict",
        "--model",
        "lenet5",
        "--random-weights",
        s(&missing),
    ])
    .fails_cleanly_naming(&[s(&missing)]);
    let bad = tmp.path().join("bad.png");
    write_truncated_png(&bad, [1, 2, 3]);
    kestrel(["predict", "--model", "lenet5", "--random-weights", s(&bad)])
        .fails_cleanly_naming(&[s(&bad), "cannot decode image"]);
}

#[test]
fn forward_input_of_rank_3() {
    let tmp = tempdir();
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "input", &[1, 32, 32]);
    let y = tmp.path().join("y.safetensors");
    let run = kestrel([
        "forward",
        "--model",
        "lenet5",
        "--input",
        s(&x),
        "--output",
        s(&y),
    ]);
    run.fails_cleanly_naming(&[s(&x), "[1, 32, 32]", "rank 3"]);
    assert!(!y.exists(), "no output should be written on error");
}

/// ViT and Swin are built for one size: another one is an error naming the expected size and
/// `--img-size`, not a shape panic inside attention; with `--img-size` the model is built for it.
#[test]
fn fixed_size_transformer_given_another_size() {
    let tmp = tempdir();
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "input", &[1, 3, 64, 64]);
    let y = tmp.path().join("y.safetensors");
    for model in ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"] {
        let forward = |extra: &[&str]| {
            let mut args = vec![
                "forward",
                "--model",
                model,
                "--input",
                s(&x),
                "--output",
                s(&y),
            ];
            args.extend_from_slice(extra);
            kestrel(args)
        };
        forward(&[]).fails_cleanly_naming(&[s(&x), "224×224", "--img-size 64"]);
        assert!(!y.exists());
        forward(&["--img-size", "64"]).ok();
        assert!(y.exists());
        std::fs::remove_file(&y).unwrap();
    }
}

#[test]
fn forward_input_with_wrong_channel_count() {
    let tmp = tempdir();
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "input", &[2, 3, 32, 32]);
    let y = tmp.path().join("y.safetensors");
    // LeNet-5 takes one channel.
    let run = kestrel([
        "forward",
        "--model",
        "lenet5",
        "--input",
        s(&x),
        "--output",
        s(&y),
    ]);
    run.fails_cleanly_naming(&[s(&x), "[2, 3, 32, 32]", "lenet5"]);
    // resnet8_cifar takes three.
    write_tensor(&x, "input", &[1, 1, 32, 32]);
    let run = kestrel([
        "forward",
        "--model",
        "resnet8_cifar",
        "--input",
        s(&x),
        "--output",
        s(&y),
    ]);
    run.fails_cleanly_naming(&[s(&x), "[1, 1, 32, 32]", "resnet8_cifar"]);
    assert!(!y.exists());
}

#[test]
fn forward_input_missing_tensor_or_file() {
    let tmp = tempdir();
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "pixels", &[1, 1, 32, 32]);
    let y = tmp.path().join("y.safetensors");
    let run = kestrel([
        "forward",
        "--model",
        "lenet5",
        "--input",
        s(&x),
        "--output",
        s(&y),
    ]);
    run.fails_cleanly_naming(&[s(&x), "input", "pixels"]);
    let missing = tmp.path().join("missing.safetensors");
    kestrel([
        "forward",
        "--model",
        "lenet5",
        "--input",
        s(&missing),
        "--output",
        s(&y),
    ])
    .fails_cleanly_naming(&[s(&missing)]);
}

/// A LeNet-5-shaped safetensors file cut short: the header promises more bytes than there are.
#[test]
fn weights_truncated_safetensors() {
    let tmp = tempdir();
    let full = tmp.path().join("full.safetensors");
    // One tensor of the right name and shape for LeNet-5's first convolution.
    write_tensor(&full, "conv1.weight", &[6, 1, 5, 5]);
    let bytes = std::fs::read(&full).unwrap();
    let weights = tmp.path().join("truncated.safetensors");
    std::fs::write(&weights, &bytes[..bytes.len() - 40]).unwrap();
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "input", &[1, 1, 32, 32]);
    let y = tmp.path().join("y.safetensors");
    let run = kestrel([
        "forward",
        "--model",
        "lenet5",
        "--weights",
        s(&weights),
        "--input",
        s(&x),
        "--output",
        s(&y),
    ]);
    run.fails_cleanly_naming(&[s(&weights)]);
    // Cut inside the JSON header.
    let cut = tmp.path().join("cut-header.safetensors");
    std::fs::write(&cut, &bytes[..30]).unwrap();
    kestrel([
        "forward",
        "--model",
        "lenet5",
        "--weights",
        s(&cut),
        "--input",
        s(&x),
        "--output",
        s(&y),
    ])
    .fails_cleanly_naming(&[s(&cut)]);
    // Also a file that is not safetensors at all, and one that is missing.
    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    kestrel([
        "forward",
        "--model",
        "lenet5",
        "--weights",
        s(&garbage),
        "--input",
        s(&x),
        "--output",
        s(&y),
    ])
    .fails_cleanly_naming(&[s(&garbage)]);
    let missing = tmp.path().join("missing.safetensors");
    kestrel([
        "forward",
        "--model",
        "lenet5",
        "--weights",
        s(&missing),
        "--input",
        s(&x),
        "--output",
        s(&y),
    ])
    .fails_cleanly_naming(&[s(&missing)]);
    assert!(!y.exists());
}

#[test]
fn unknown_model_lists_suggestions() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 2, 1);
    let run = kestrel([
        "train",
        "--data",
        s(&data),
        "--model",
        "lenet6",
        "--out",
        s(&tmp.path().join("out")),
    ]);
    run.fails_cleanly_naming(&["unknown model 'lenet6'", "lenet5"]);
    let run = kestrel([
        "train",
        "--data",
        s(&data),
        "--model",
        "resnet_18",
        "--out",
        s(&tmp.path().join("out")),
    ]);
    run.fails_cleanly_naming(&["resnet_18", "resnet18"]);
    let x = tmp.path().join("x.safetensors");
    write_tensor(&x, "input", &[1, 3, 32, 32]);
    let run = kestrel([
        "forward",
        "--model",
        "nosuchnet",
        "--input",
        s(&x),
        "--output",
        s(&tmp.path().join("y")),
    ]);
    run.fails_cleanly_naming(&["nosuchnet", "lenet5", "resnet8_cifar"]);
}

#[test]
fn augment_preview_unknown_recipe_lists_presets() {
    let tmp = tempdir();
    let img = tmp.path().join("img.png");
    common::solid_image([200, 10, 10], 16, 5, &mut common::Lcg::new(1))
        .save(&img)
        .unwrap();
    let grid = tmp.path().join("grid.png");
    let run = kestrel([
        "augment-preview",
        "--recipe",
        "nosuchaug",
        s(&img),
        "--output",
        s(&grid),
    ]);
    run.fails_cleanly_naming(&[
        "nosuchaug",
        "basic",
        "randaugment",
        "autoaugment",
        "trivialaugment",
        "mnist",
    ]);
    assert!(!grid.exists());
    // And a bad override key names the key.
    let run = kestrel([
        "augment-preview",
        "--recipe",
        "basic,nosuchkey=1",
        s(&img),
        "--output",
        s(&grid),
    ]);
    run.fails_cleanly_naming(&["nosuchkey"]);
}
