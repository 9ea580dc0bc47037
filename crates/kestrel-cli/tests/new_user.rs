//! What a new user hits (issue 14): no silent overwrite, evaluation on the data the model was
//! trained on, no silent random weights, no ignored sizes or flags, and output that can be used.
//! Tiny folders of solid colours and LeNet-5 / ResNet-8 keep every run well under a second.

use crate::common;

use std::path::{Path, PathBuf};

use common::{kestrel, read_json, s, solid_color_folder, tempdir, write_truncated_png, Run};

const CLASSES: [&str; 3] = ["blue", "green", "red"];

/// One epoch of `model`, batch 4, one loader thread; `extra` flags appended.
fn train(data: &Path, out: &Path, model: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--epochs",
        "1",
        "--model",
        model,
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    kestrel(args)
}

/// A trained LeNet-5 run on a plain folder of 10 images per colour, and that folder.
fn lenet_run(tmp: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    solid_color_folder(&data, 10, 1);
    let out = tmp.join("run");
    train(&data, &out, "lenet5", extra).ok();
    (data, out)
}

fn eval(ckpt: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["eval", "--checkpoint", s(ckpt), "--out"];
    let out = ckpt.join("eval-under-test");
    args.push(s(&out));
    args.extend_from_slice(extra);
    let run = kestrel(&args);
    run
}

fn eval_samples(ckpt: &Path) -> u64 {
    read_json(&ckpt.join("eval-under-test").join("metrics.json"))["num_samples"]
        .as_u64()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. --out

#[test]
fn an_earlier_run_is_never_overwritten_without_overwrite() {
    let tmp = tempdir();
    let (data, out) = lenet_run(tmp.path(), &[]);
    std::fs::create_dir(out.join("eval-test")).unwrap();
    let before = std::fs::read(out.join("model.safetensors")).unwrap();

    train(&data, &out, "lenet5", &[]).fails_cleanly_naming(&[s(&out), "not empty", "--overwrite"]);
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        before,
        "the refused run left the earlier weights alone"
    );

    train(&data, &out, "lenet5", &["--overwrite"]).ok();
    assert!(out.join("checkpoint.json").is_file());
    assert!(
        !out.join("eval-test").exists(),
        "--overwrite replaces the whole earlier run, not only the files it rewrites"
    );

    // A folder that is not a run is never removed, even with --overwrite.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    train(&data, &mine, "lenet5", &["--overwrite"]).fails_cleanly_naming(&[s(&mine), "left alone"]);
    assert!(mine.join("notes.txt").is_file());
}

#[test]
fn a_run_that_fails_in_its_first_epoch_leaves_no_folder() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 2);
    // Sorted last, so the up-front check of the first sample passes and the epoch hits it.
    let bad = data.join("red").join("zzz.png");
    write_truncated_png(&bad, [200, 0, 0]);
    let out = tmp.path().join("run");
    train(&data, &out, "lenet5", &[]).fails_cleanly_naming(&[s(&bad)]);
    assert!(
        !out.exists(),
        "a run that failed before its first checkpoint left {out:?} behind"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. eval's data

#[test]
fn eval_without_data_uses_the_recorded_dataset_and_split() {
    let tmp = tempdir();
    // 10 per class, --val-fraction 0.3: 3 per class (9) validate, and double as the test split.
    let (data, run) = lenet_run(tmp.path(), &["--val-fraction", "0.3"]);
    let trained = read_json(&run.join("metrics.json"));
    assert_eq!(trained["num_samples"], 9, "{trained}");

    // No --data: the recorded folder, not the embedded MNIST (1,000 test digits).
    let r = eval(&run, &[]).ok();
    assert_eq!(eval_samples(&run), 9, "{}", r.stdout);
    assert!(r.stdout.contains(s(&data)), "{}", r.stdout);
    let evaluated = read_json(&run.join("eval-under-test").join("metrics.json"));
    assert_eq!(evaluated["confusion_matrix"], trained["confusion_matrix"]);

    // --split val is the recorded validation split, not a re-split with eval's own fraction.
    eval(&run, &["--data", s(&data), "--split", "val"]).ok();
    assert_eq!(eval_samples(&run), 9);
    eval(&run, &["--split", "val", "--val-fraction", "0.1"])
        .fails_cleanly_naming(&["--val-fraction 0.1", "0.3"]);

    // From another working directory: the record is an absolute path.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let run2 = std::process::Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .current_dir(&elsewhere)
        .args(["eval", "--checkpoint", s(&run), "--out", s(&elsewhere)])
        .output()
        .unwrap();
    assert!(
        run2.status.success(),
        "{}",
        String::from_utf8_lossy(&run2.stderr)
    );

    // A checkpoint from before the record: --data is needed, and the error says so.
    let meta_path = run.join("checkpoint.json");
    let mut meta = read_json(&meta_path);
    meta.as_object_mut().unwrap().remove("data");
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    eval(&run, &[]).fails_cleanly_naming(&["does not record", "--data"]);
}

#[test]
fn eval_scores_another_folder_whole_and_reads_split_folders() {
    let tmp = tempdir();
    let (_, run) = lenet_run(tmp.path(), &[]);

    // A plain folder of class folders is the test set, all of it (not a 10% split).
    let other = tmp.path().join("other");
    solid_color_folder(&other, 5, 9);
    let r = eval(&run, &["--data", s(&other)]).ok();
    assert_eq!(eval_samples(&run), 15, "{}", r.stdout);
    eval(&run, &["--data", s(&other), "--split", "val"])
        .fails_cleanly_naming(&["--split val", "whole"]);

    // A root holding only test/: its classes are the colours, not one class named "test".
    let only_test = tmp.path().join("only-test");
    solid_color_folder(&only_test.join("test"), 2, 3);
    std::fs::remove_dir_all(only_test.join("test").join("green")).unwrap();
    let r = eval(&run, &["--data", s(&only_test)]).ok();
    assert_eq!(eval_samples(&run), 4, "{}", r.stdout);
    let m = read_json(&run.join("eval-under-test").join("metrics.json"));
    assert_eq!(m["class_names"], serde_json::json!(CLASSES), "{m}");
    assert!(
        r.stdout.contains(s(&only_test.join("test"))),
        "the header names the folder scored:\n{}",
        r.stdout
    );
}

#[test]
fn eval_rejects_class_folders_the_model_does_not_have() {
    let tmp = tempdir();
    let (_, run) = lenet_run(tmp.path(), &[]);
    let other = tmp.path().join("pets");
    solid_color_folder(&other, 1, 4);
    std::fs::rename(other.join("green"), other.join("dog")).unwrap();
    // Both sets of names, and the odd one out.
    eval(&run, &["--data", s(&other)]).fails_cleanly_naming(&[
        "[blue, dog, red]",
        "[blue, green, red]",
        "dog",
    ]);
}

#[test]
fn a_folder_with_only_test_cannot_be_trained_on() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data.join("test"), 2, 3);
    let out = tmp.path().join("run");
    train(&data, &out, "lenet5", &[]).fails_cleanly_naming(&["no train folder", "empty"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// 3. predict's weights and class names

#[test]
fn predict_needs_weights_or_an_explicit_random_weights() {
    let tmp = tempdir();
    let img = tmp.path().join("x.png");
    common::solid_image([10, 20, 30], 16, 0, &mut common::Lcg::new(1))
        .save(&img)
        .unwrap();
    kestrel(["predict", "--model", "lenet5", s(&img)])
        .fails_cleanly_naming(&["--weights", "--random-weights"]);
    let r = kestrel(["predict", "--model", "lenet5", "--random-weights", s(&img)]).ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("untrained"),
        "{}",
        r.stderr
    );
}

#[test]
fn predict_warns_that_a_new_head_is_untrained_and_checks_class_names() {
    let tmp = tempdir();
    let (data, run) = lenet_run(tmp.path(), &[]);
    let weights = run.join("model.safetensors");
    let img = data.join("red").join("000.png");
    let via_pretrained = |classes: &str| {
        kestrel([
            "predict",
            "--model",
            "lenet5",
            "--pretrained", // timm's name for --weights
            s(&weights),
            "--num-classes",
            classes,
            s(&img),
        ])
        .ok()
    };
    // The file's own 3 classes: the head loads, no warning.
    let r = via_pretrained("3");
    assert!(!r.stderr.contains("untrained"), "{}", r.stderr);
    let r = via_pretrained("4");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("untrained"),
        "a 4-class head on 3-class weights is new:\n{}",
        r.stderr
    );

    // --class-names with --checkpoint is used, and checked.
    let names = tmp.path().join("names.txt");
    std::fs::write(&names, "azure\nlime\nscarlet\n").unwrap();
    let r = kestrel([
        "predict",
        "--checkpoint",
        s(&run),
        "--class-names",
        s(&names),
        s(&img),
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // The checkpoint's classes (blue, green, red) go by the file's names, in order.
    let top = &v[0]["top"][0];
    let renamed = ["azure", "lime", "scarlet"][top["index"].as_u64().unwrap() as usize];
    assert_eq!(top["class"], renamed, "{v}");
    std::fs::write(&names, "azure\nlime\n").unwrap();
    kestrel([
        "predict",
        "--checkpoint",
        s(&run),
        "--class-names",
        s(&names),
        s(&img),
    ])
    .fails_cleanly_naming(&[s(&names), "2 class names for a 3-class model"]);
    let missing = tmp.path().join("no-names.txt");
    let r = kestrel([
        "predict",
        "--checkpoint",
        s(&run),
        "--class-names",
        s(&missing),
        s(&img),
    ]);
    r.fails_cleanly_naming(&[s(&missing)]);
    assert_eq!(
        r.stderr.matches("No such file").count(),
        1,
        "the OS error is said once:\n{}",
        r.stderr
    );
}

#[test]
fn predict_takes_a_folder_as_all_the_images_in_it() {
    let tmp = tempdir();
    let (data, run) = lenet_run(tmp.path(), &[]);
    let r = kestrel(["predict", "--checkpoint", s(&run), s(&data), "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 30, "three class folders of 10");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    kestrel(["predict", "--checkpoint", s(&run), s(&empty)])
        .fails_cleanly_naming(&[s(&empty), "no image files"]);
}

// ---------------------------------------------------------------------------------------------
// 4. --img-size, and 5. the default photo transforms

#[test]
fn a_fixed_size_transformer_trains_at_the_img_size_asked_for() {
    // ViT's position embeddings are built for --img-size (a 2×2 grid of 16 px patches at 32 px),
    // not for its default 224 px, which would reject 32 px batches.
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 5);
    let run = tmp.path().join("vit32");
    train(&data, &run, "vit_tiny_patch16_224", &["--img-size", "32"]).ok();
    let meta = read_json(&run.join("checkpoint.json"));
    assert_eq!(
        meta["data_config"]["input_size"],
        serde_json::json!([3, 32, 32])
    );
}

#[test]
fn an_explicit_input_size_is_honoured_or_rejected() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 5);
    let input_size =
        |run: &Path| read_json(&run.join("checkpoint.json"))["data_config"]["input_size"].clone();

    let r48 = tmp.path().join("r48");
    train(&data, &r48, "resnet8_cifar", &["--img-size", "48"]).ok();
    assert_eq!(input_size(&r48), serde_json::json!([3, 48, 48]));

    // A recipe file's own input_size is honoured (its preset's 32 is not what it says).
    let recipe = tmp.path().join("r.toml");
    std::fs::write(&recipe, "preset = \"cifar\"\ninput_size = [3, 40, 40]\n").unwrap();
    let r40 = tmp.path().join("r40");
    train(&data, &r40, "resnet8_cifar", &["--recipe-file", s(&recipe)]).ok();
    assert_eq!(input_size(&r40), serde_json::json!([3, 40, 40]));

    // LeNet-5's classifier fixes its input: a clear error, and no run folder.
    let lenet = tmp.path().join("lenet");
    train(&data, &lenet, "lenet5", &["--img-size", "64"])
        .fails_cleanly_naming(&["--img-size 64x64", "1×64×64"]);
    assert!(!lenet.exists());

    // eval and predict run at the size asked for, or say why not.
    let img = data.join("red").join("000.png");
    eval(&r48, &["--img-size", "56"]).ok();
    kestrel([
        "predict",
        "--checkpoint",
        s(&r48),
        "--img-size",
        "64",
        s(&img),
    ])
    .ok();
    kestrel([
        "predict",
        "--model",
        "lenet5",
        "--random-weights",
        "--img-size",
        "64",
        s(&img),
    ])
    .fails_cleanly_naming(&["--img-size 64x64"]);
    let x = tmp.path().join("x.safetensors");
    kestrel([
        "preprocess",
        "--checkpoint",
        s(&r48),
        "--img-size",
        "40",
        s(&img),
        "--output",
        s(&x),
    ])
    .ok();
    assert_eq!(common::read_tensor(&x, "input").0, [1, 3, 40, 40]);
    // forward runs the tensor as it is: a different --img-size is an error, not a resize.
    let y = tmp.path().join("y.safetensors");
    let fwd = |size: &str| {
        kestrel([
            "forward",
            "--checkpoint",
            s(&r48),
            "--input",
            s(&x),
            "--output",
            s(&y),
            "--img-size",
            size,
        ])
    };
    fwd("40").ok();
    fwd("48").fails_cleanly_naming(&["--img-size 48", "40x40"]);
    // bench: the panic of issue 14 (`axis 1 expected 120`) is an error naming the size.
    let b = kestrel([
        "bench",
        "--model",
        "lenet5",
        "--size",
        "160",
        "--runs",
        "1",
        "--train-batch",
        "0",
    ]);
    b.fails_cleanly_naming(&["--img-size 160x160", "LeNet5"]);
}

#[test]
fn photos_train_with_timm_default_transforms_not_the_digit_padding() {
    let tmp = tempdir();
    let (_, run) = lenet_run(tmp.path(), &[]);
    let meta = read_json(&run.join("checkpoint.json"));
    let dc = &meta["data_config"];
    assert_eq!(dc["crop_mode"], "center", "{dc}");
    let recipe = &meta["recipe"];
    assert!(
        recipe["random_resized_crop"].is_object() && recipe["hflip"] == 0.5,
        "RandomResizedCrop + flip: {recipe}"
    );
    // The model keeps its own input and normalisation (LeNet-5: 1×32×32).
    assert_eq!(dc["input_size"], serde_json::json!([1, 32, 32]), "{dc}");
    assert_eq!(recipe["input_size"], dc["input_size"]);
}

// ---------------------------------------------------------------------------------------------
// Unchecked values

#[test]
fn values_out_of_range_are_clear_errors() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 2, 6);
    let out = tmp.path().join("run");
    let one = tmp.path().join("one");
    solid_color_folder(&one, 2, 6);
    for c in ["green", "red"] {
        std::fs::remove_dir_all(one.join(c)).unwrap();
    }
    train(&one, &out, "lenet5", &[]).fails_cleanly_naming(&["a classifier needs at least two"]);
    train(&data, &out, "lenet5", &["--lr", "-0.1"]).fails_cleanly_naming(&["--lr -0.1"]);
    // clap's own check, with what is wanted instead of "unexpected argument '-1'".
    let r = kestrel([
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "-1",
    ]);
    assert_eq!(r.code, Some(2), "{}", r.transcript());
    assert!(
        r.stderr.contains("--epochs") && r.stderr.contains("≥ 1"),
        "{}",
        r.stderr
    );
    train(&data, &out, "lenet5", &["--weight-decay=-1"])
        .fails_cleanly_naming(&["--weight-decay -1"]);
    train(&data, &out, "lenet5", &["--drop-path", "0.1"]).fails_cleanly_naming(&["--drop-path"]);
    assert!(!out.exists(), "no run started");
    for (flag, value) in [("--batch", "0"), ("--runs", "0")] {
        let r = kestrel(["bench", "--model", "lenet5", flag, value]);
        assert_eq!(r.code, Some(2), "{}", r.transcript());
        assert!(
            r.stderr.contains(flag) && r.stderr.contains("≥ 1"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn one_epoch_leaves_the_warm_up() {
    let tmp = tempdir();
    // 10 per class, 10% held out: 27 training images, 6 steps of 4; the default one-epoch
    // warm-up is cut to half the run (3 steps), so the epoch ends above the warm-up's start.
    let data = tmp.path().join("data");
    solid_color_folder(&data, 10, 1);
    let out = tmp.path().join("run");
    let r = train(
        &data,
        &out,
        "lenet5",
        &["--schedule", "constant", "--lr", "0.002"],
    )
    .ok();
    assert!(r.stdout.contains("cut to half the run"), "{}", r.stdout);
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!((v["lr"].as_f64().unwrap() - 0.002).abs() < 1e-12, "{v}");
    assert!(v["lr_start"].as_f64().unwrap() < 0.002, "{v}");
}

// ---------------------------------------------------------------------------------------------
// Output

#[test]
fn headers_and_tables_say_what_they_show() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    for split in ["train", "val", "test"] {
        solid_color_folder(&data.join(split), 3, 7);
        std::fs::rename(
            data.join(split).join("green"),
            data.join(split).join("chartreuse"),
        )
        .unwrap();
    }
    let out = tmp.path().join("run");
    let r = train(&data, &out, "lenet5", &[]).ok();
    let header = r.stdout.lines().next().unwrap();
    assert_eq!(
        header.matches("classes").count(),
        1,
        "class count once: {header}"
    );
    let r = eval(&out, &[]).ok();
    let test_dir = data.join("test");
    let eval_header = r
        .stdout
        .lines()
        .find(|l| l.starts_with("evaluation on"))
        .unwrap();
    assert!(
        eval_header.starts_with(&format!("evaluation on the test split ({}", s(&test_dir))),
        "{eval_header}"
    );
    assert!(
        r.stdout.contains(" chartreuse "),
        "names kept whole:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("top-5"),
        "3 classes: no top-5:\n{}",
        r.stdout
    );
}

#[test]
fn bench_says_which_batch_it_measured() {
    let tmp = tempdir();
    let json = tmp.path().join("b.json");
    let r = kestrel([
        "bench",
        "--model",
        "lenet5",
        "--batch",
        "4",
        "--runs",
        "1",
        "--train-batch",
        "0",
        "--json",
        s(&json),
    ])
    .ok();
    assert!(r.stdout.contains("img/s (b4)"), "{}", r.stdout);
    let v = read_json(&json);
    assert_eq!(v[0]["throughput_batch"], 4, "{v}");
    assert!(v[0]["throughput"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v[0].get("throughput_b32").is_none(), "{v}");
}

#[test]
fn wrong_weights_are_described_in_the_files_names() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 2, 8);
    let run = tmp.path().join("r8");
    train(&data, &run, "resnet8_cifar", &[]).ok();
    let img = data.join("red").join("000.png");
    let r = kestrel([
        "predict",
        "--model",
        "resnet20_cifar",
        "--weights",
        s(&run.join("model.safetensors")),
        "--num-classes",
        "3",
        s(&img),
    ]);
    r.fails_cleanly_naming(&["missing keys", "layer1.1.bn1.weight"]);
    assert!(
        !r.stderr.contains("gamma") && !r.stderr.contains("beta"),
        "{}",
        r.stderr
    );
    let r = kestrel([
        "predict",
        "--model",
        "lenet5",
        "--weights",
        s(&run.join("model.safetensors")),
        s(&img),
    ]);
    r.fails_cleanly_naming(&["conv1.weight", "expected [6, 1, 5, 5], found [16, 3, 3, 3]"]);
    assert!(!r.stderr.contains("Shape {"), "{}", r.stderr);
}

#[test]
fn models_filter_is_a_case_blind_glob_and_params_read_as_millions() {
    let r = kestrel(["models", "--no-macs", "--json", "--filter", "RESNET1*"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"resnet18") && names.contains(&"resnet101"),
        "{names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("resnet1")), "{names:?}");
    kestrel(["models", "--no-macs", "--filter", "zzz*"])
        .fails_cleanly_naming(&["zzz*", "no model matches"]);
    let r = kestrel(["models", "--no-macs", "--filter", "resnet18"]).ok();
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("resnet18 "))
        .unwrap();
    // timm: resnet18 has 11,689,512 parameters; ImageNet mean/std.
    assert!(row.contains("11.7M"), "{row}");
    assert!(r.stdout.lines().next().unwrap().contains("mean / std"));
    assert!(
        row.contains("0.485,0.456,0.406 / 0.229,0.224,0.225"),
        "{row}"
    );
}

#[test]
fn unknown_names_suggest_the_nearest_and_tags_resolve() {
    let r = kestrel([
        "preprocess",
        "--model",
        "resnt50",
        "x.png",
        "--output",
        "x.safetensors",
    ]);
    r.fails_cleanly_naming(&["resnt50", "resnet50"]);
    assert!(
        !r.stderr.contains("lenet5") && !r.stderr.contains("vgg11"),
        "{}",
        r.stderr
    );
    let tmp = tempdir();
    let img = tmp.path().join("x.png");
    common::solid_image([10, 20, 30], 16, 0, &mut common::Lcg::new(1))
        .save(&img)
        .unwrap();
    let x = tmp.path().join("x.safetensors");
    kestrel([
        "preprocess",
        "--model",
        "resnet50.a1_in1k",
        s(&img),
        "--output",
        s(&x),
    ])
    .ok();
}

// ---------------------------------------------------------------------------------------------
// Help

/// Every flag and positional of `args --help` has a description line.
fn assert_every_option_described(args: &[&str]) {
    let mut full = args.to_vec();
    full.push("--help");
    let r = kestrel(&full).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_option = (t.starts_with("--") || t.starts_with("-") || t.starts_with('<'))
            && l.len() - t.len() <= 6;
        if !is_option || t.starts_with("-h,") || t.starts_with("-V,") {
            continue;
        }
        // Short help puts the description after the flag (two spaces or more); long help on
        // the next line.
        let same_line = t.split_once("  ").map(|(_, d)| d.trim()).unwrap_or("");
        let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
        let described =
            |d: &str| !d.is_empty() && !d.starts_with("[default") && !d.starts_with('-');
        assert!(
            described(same_line) || (same_line.is_empty() && described(next)),
            "`kestrel {}`: {t:?} has no description:\n{}",
            args.join(" "),
            r.stdout
        );
    }
}

#[test]
fn every_flag_has_a_description() {
    for cmd in [
        &["train"][..],
        &["eval"],
        &["predict"],
        &["forward"],
        &["preprocess"],
        &["augment-preview"],
        &["bench"],
        &["models"],
        &["distill"],
        &["plot"],
    ] {
        assert_every_option_described(cmd);
    }
    let r = kestrel(["preprocess", "--help"]).ok();
    for ignored in ["--weights", "--remap", "--num-classes", "--class-names"] {
        assert!(
            !r.stdout.contains(ignored),
            "preprocess lists {ignored}:\n{}",
            r.stdout
        );
    }
}

#[test]
fn timm_flag_names_are_accepted() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 3, 9);
    let out = tmp.path().join("run");
    train(
        &data,
        &out,
        "lenet5",
        &[
            "--opt",
            "sgd",
            "--sched",
            "constant",
            "--warmup-epochs",
            "0",
            "--smoothing",
            "0.1",
            "--drop-path",
            "0",
        ],
    )
    .ok();
    let cfg = &read_json(&out.join("checkpoint.json"))["train_config"];
    assert_eq!(cfg["optimizer"], "sgd", "{cfg}");
    assert_eq!(cfg["schedule"], "constant", "{cfg}");
    assert!(
        (cfg["label_smoothing"].as_f64().unwrap() - 0.1).abs() < 1e-6,
        "{cfg}"
    );
    assert_eq!(cfg["warmup_epochs"], 0.0, "{cfg}");
}
