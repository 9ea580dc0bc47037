//! Fine-tuning and run configuration end to end: `train --weights` starts from a checkpoint
//! with a new head, `--freeze` keeps frozen tensors bit-identical, `--config` sets the run and
//! typed flags override it, and the effective configuration is saved and reads back.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{kestrel, read_json, s, solid_color_folder, tempdir};

fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let bits = v
                .data()
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (v.shape().to_vec(), bits))
        })
        .collect()
}

/// A 3-class (blue, green, red) and a 2-class (blue, green) train/val pair.
fn data(tmp: &Path) -> [(PathBuf, PathBuf); 2] {
    let (t3, v3) = (tmp.join("t3"), tmp.join("v3"));
    solid_color_folder(&t3, 8, 1);
    solid_color_folder(&v3, 2, 2);
    let (t2, v2) = (tmp.join("t2"), tmp.join("v2"));
    solid_color_folder(&t2, 8, 3);
    solid_color_folder(&v2, 2, 4);
    std::fs::remove_dir_all(t2.join("red")).unwrap();
    std::fs::remove_dir_all(v2.join("red")).unwrap();
    [(t3, v3), (t2, v2)]
}

fn train(split: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> common::Run {
    kestrel(train_args(split, out, extra))
}

fn train_args(split: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data",
        s(&split.0),
        "--val-dir",
        s(&split.1),
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--warmup-epochs",
        "0",
        "--lr",
        "0.01",
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

#[test]
fn fine_tuning_loads_the_weights_replaces_the_head_and_freeze_keeps_tensors() {
    let tmp = tempdir();
    let [three, two] = data(tmp.path());
    let pre = tmp.path().join("pre");
    train(&three, &pre, &[]).ok();
    let pretrained = pre.join("model.safetensors");
    let before = tensors(&pretrained);
    assert_eq!(before["fc2.weight"].0[0], 3);

    // --freeze backbone: every tensor but the head is the file's, bit for bit.
    let ft = tmp.path().join("ft_backbone");
    train(
        &two,
        &ft,
        &["--pretrained", s(&pretrained), "--freeze", "backbone"],
    )
    .ok();
    let after = tensors(&ft.join("last.safetensors"));
    assert_eq!(
        after["fc2.weight"].0[0], 2,
        "the head has the dataset's 2 classes"
    );
    assert_eq!(after["fc2.bias"].0, vec![2]);
    for (name, t) in &before {
        if !name.starts_with("fc2.") {
            assert_eq!(
                &after[name], t,
                "{name}: frozen, so unchanged from the file"
            );
        }
    }

    // --freeze conv1,fc1: those stay the file's; the rest started from the file and moved.
    let ft = tmp.path().join("ft_conv1");
    train(
        &two,
        &ft,
        &["--weights", s(&pretrained), "--freeze", "conv1,fc1"],
    )
    .ok();
    let after = tensors(&ft.join("last.safetensors"));
    let mut changed = 0;
    for (name, t) in &before {
        if name.starts_with("conv1.") || name.starts_with("fc1.") {
            assert_eq!(&after[name], t, "{name}: frozen");
        } else if !name.starts_with("fc2.") {
            assert_eq!(after[name].0, t.0, "{name}: shape");
            assert_ne!(after[name].1, t.1, "{name}: trained, so changed");
            changed += 1;
        }
    }
    assert!(changed >= 2, "some tensors trained");
    let cfg = read_json(&ft.join("checkpoint.json"));
    assert_eq!(
        cfg["train_config"]["freeze"],
        serde_json::json!(["conv1", "fc1"])
    );
}

#[test]
fn fine_tuning_flags_reject_bad_input_by_name() {
    let tmp = tempdir();
    let [three, _] = data(tmp.path());
    train(&three, &tmp.path().join("a"), &["--pretrained"]).fails_cleanly_naming(&[
        "--pretrained needs a weights file",
        "bundles no pretrained weights",
    ]);
    train(&three, &tmp.path().join("b"), &["--freeze", "layer7"])
        .fails_cleanly_naming(&["--freeze layer7", "matches no parameter"]);
    train(&three, &tmp.path().join("c"), &["--layer-decay", "0.7"])
        .fails_cleanly_naming(&["LeNet5", "no layer grouping"]);
    let missing = tmp.path().join("missing.safetensors");
    train(&three, &tmp.path().join("d"), &["--weights", s(&missing)])
        .fails_cleanly_naming(&["missing.safetensors"]);
}

#[test]
fn config_file_sets_the_run_typed_flags_override_it_and_it_is_saved() {
    let tmp = tempdir();
    let [three, _] = data(tmp.path());
    let file = tmp.path().join("run.toml");
    std::fs::write(
        &file,
        "optimizer = \"sgd\"\nmomentum = 0.8\nlr = 0.05\nlabel_smoothing = 0.25\n\
         schedule = \"constant\"\nseed = 7\n",
    )
    .unwrap();
    let out = tmp.path().join("cfg");
    // train() passes --lr 0.01 and --epochs 1: those win over the file.
    train(&three, &out, &["--config", s(&file)]).ok();
    let got = &read_json(&out.join("checkpoint.json"))["train_config"];
    assert_eq!(got["optimizer"], "sgd");
    assert_eq!(got["momentum"], 0.8);
    assert_eq!(got["schedule"], "constant");
    assert_eq!(got["seed"], 7);
    assert_eq!(got["label_smoothing"].as_f64().unwrap() as f32, 0.25);
    assert_eq!(got["lr"], 0.01, "the typed --lr overrides the file");
    assert_eq!(got["epochs"], 1);

    // The saved config.toml is the effective configuration: a run from it has the same one.
    let saved = out.join("config.toml");
    let again = tmp.path().join("again");
    kestrel([
        "train",
        "--data",
        s(&three.0),
        "--val-dir",
        s(&three.1),
        "--workers",
        "1",
        "--quiet",
        "--config",
        s(&saved),
        "--out",
        s(&again),
    ])
    .ok();
    assert_eq!(
        &read_json(&again.join("checkpoint.json"))["train_config"],
        got,
        "config.toml reads back to the same configuration"
    );
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let tmp = tempdir();
    let [three, _] = data(tmp.path());
    let file = tmp.path().join("typo.toml");
    std::fs::write(&file, "lr = 0.1\nlearning_rate = 0.1\n").unwrap();
    train(&three, &tmp.path().join("a"), &["--config", s(&file)])
        .fails_cleanly_naming(&["typo.toml", "unknown key `learning_rate`"]);
    std::fs::write(&file, "optimizer = \"adamx\"\n").unwrap();
    train(&three, &tmp.path().join("b"), &["--config", s(&file)])
        .fails_cleanly_naming(&["typo.toml", "`optimizer`"]);
    train(
        &three,
        &tmp.path().join("c"),
        &["--config", "fashion-fastest"],
    )
    .fails_cleanly_naming(&["fashion-fastest", "fashion-fast, fashion-best"]);
}

fn distill(split: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> common::Run {
    let mut args = train_args(split, out, &[]);
    args[0] = "distill".into();
    // train()'s `--model lenet5` is the student's --student here.
    let i = args.iter().position(|a| a == "--model").unwrap();
    args[i] = "--student".into();
    args.extend(extra.iter().map(|a| a.to_string()));
    kestrel(args)
}

#[test]
fn distillation_uses_the_teachers_logits_and_alpha_zero_is_plain_training() {
    let tmp = tempdir();
    let [three, two] = data(tmp.path());
    let teacher = tmp.path().join("teacher");
    train(&three, &teacher, &["--seed", "5"]).ok();
    let plain = tmp.path().join("plain");
    train(&three, &plain, &[]).ok();

    let soft = tmp.path().join("soft");
    distill(&three, &soft, &["--teacher", s(&teacher)]).ok();
    let cfg = &read_json(&soft.join("checkpoint.json"))["train_config"]["distill"];
    assert_eq!(cfg["temperature"], 4.0);
    assert_eq!(cfg["alpha"], 0.7);
    assert_eq!(cfg["hard"], false);
    assert!(soft.join("metrics.json").exists());
    assert_ne!(
        tensors(&soft.join("last.safetensors")),
        tensors(&plain.join("last.safetensors")),
        "the teacher's term changes the updates"
    );
    // With α = 0 the KL term has weight 0: the same run as plain training, bit for bit.
    let zero = tmp.path().join("zero");
    distill(&three, &zero, &["--teacher", s(&teacher), "--alpha", "0"]).ok();
    assert_eq!(
        tensors(&zero.join("last.safetensors")),
        tensors(&plain.join("last.safetensors"))
    );

    let hard = tmp.path().join("hard");
    distill(&three, &hard, &["--teacher", s(&teacher), "--hard"]).ok();
    let cfg = &read_json(&hard.join("checkpoint.json"))["train_config"]["distill"];
    assert_eq!(
        (cfg["hard"].as_bool(), cfg["alpha"].as_f64()),
        (Some(true), Some(0.5))
    );

    distill(&two, &tmp.path().join("bad"), &["--teacher", s(&teacher)]).fails_cleanly_naming(&[
        "--teacher",
        "blue, green, red",
        "blue, green",
    ]);
    distill(&three, &tmp.path().join("none"), &[]).fails_cleanly_naming(&["needs a teacher"]);
}

/// `--hard` through a distilled DeiT's two heads, against the loss computed here by hand (f64)
/// from the heads' logits, as timm's `DistillationLoss(distillation_type='hard')` defines it:
/// (1 − α)·CE(class head, label) + α·CE(distillation head, argmax of the teacher).
#[test]
fn hard_distillation_trains_a_distilled_deit_through_both_heads() {
    use burn::prelude::*;
    let tmp = tempdir();
    // Solid 32×32 colours: every crop, resize and flip of the training transform leaves them
    // the same image, so the batch is known exactly.
    let colours: [(&str, [u8; 3]); 3] = [
        ("blue", [20, 40, 230]),
        ("green", [30, 200, 50]),
        ("red", [220, 30, 40]),
    ];
    let per_class = 3;
    for split in ["train", "val"] {
        for (name, rgb) in colours {
            let dir = tmp.path().join(split).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                image::RgbImage::from_pixel(32, 32, image::Rgb(rgb))
                    .save(dir.join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    let (train_dir, val_dir) = (tmp.path().join("train"), tmp.path().join("val"));
    let common_args = |model_flag: &str, model: &str, out: &Path, lr: &str| -> Vec<String> {
        [
            "--data",
            s(&train_dir),
            "--val-dir",
            s(&val_dir),
            model_flag,
            model,
            "--img-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "9",
            "--warmup-epochs",
            "0",
            "--label-smoothing",
            "0",
            "--lr",
            lr,
            "--workers",
            "1",
            "--quiet",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    // A teacher on the student's input (ImageNet normalisation, 32 px): it sees its batches.
    let teacher = tmp.path().join("teacher");
    let mut args = vec!["train".to_string()];
    args.extend(common_args(
        "--model",
        "mobilenetv3_small_100",
        &teacher,
        "0.05",
    ));
    kestrel(args).ok();
    // lr 1e-30: the one update leaves the weights as they were when the loss was computed.
    let student = tmp.path().join("student");
    let mut args = vec!["distill".to_string()];
    args.extend(common_args(
        "--student",
        "deit_tiny_distilled_patch16_224",
        &student,
        "1e-30",
    ));
    args.extend(["--min-lr", "0", "--teacher", s(&teacher), "--hard"].map(String::from));
    kestrel(args).ok();
    let cfg = &read_json(&student.join("checkpoint.json"))["train_config"]["distill"];
    assert_eq!(
        (cfg["hard"].as_bool(), cfg["alpha"].as_f64()),
        (Some(true), Some(0.5))
    );
    let log = std::fs::read_to_string(student.join("train_log.jsonl")).unwrap();
    let logged: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let logged = logged["train_loss"].as_f64().unwrap();

    // The batch as the model sees it: (v/255 − mean)/std per channel; labels in class order.
    let device = Device::flex();
    let ckpt = kestrel_train::checkpoint::Checkpoint::open(&student).unwrap();
    let (mean, std) = (
        ckpt.meta.data_config.mean.clone(),
        ckpt.meta.data_config.std.clone(),
    );
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for (label, (_, rgb)) in colours.iter().enumerate() {
        for _ in 0..per_class {
            for c in 0..3 {
                let v = (rgb[c] as f32 / 255.0 - mean[c]) / std[c];
                x.extend(std::iter::repeat_n(v, 32 * 32));
            }
            labels.push(label);
        }
    }
    let n = labels.len();
    let batch = || Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, 32, 32]), &device);
    let rows = |t: Tensor<2>| -> Vec<Vec<f64>> {
        let k = t.dims()[1];
        let v = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        v.chunks(k)
            .map(|r| r.iter().map(|&a| a as f64).collect())
            .collect()
    };
    let (class, dist) = ckpt.load_model(&device).unwrap().forward_heads(batch());
    let (class, dist) = (
        rows(class),
        rows(dist.expect("a distilled DeiT has two heads")),
    );
    let teacher_logits = rows(
        kestrel_train::checkpoint::Checkpoint::open(&teacher)
            .unwrap()
            .load_model(&device)
            .unwrap()
            .forward(batch()),
    );
    let argmax = |r: &[f64]| (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
    let ce = |r: &[f64], y: usize| {
        let m = r.iter().copied().fold(f64::MIN, f64::max);
        let lse = m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        lse - r[y]
    };
    let base: f64 = (0..n).map(|i| ce(&class[i], labels[i])).sum::<f64>() / n as f64;
    let kd: f64 = (0..n)
        .map(|i| ce(&dist[i], argmax(&teacher_logits[i])))
        .sum::<f64>()
        / n as f64;
    let want = 0.5 * base + 0.5 * kd;
    assert!(
        (logged - want).abs() < 1e-4 * want.abs().max(1.0),
        "logged {logged}, by hand {want} (class CE {base}, distillation CE {kd})"
    );
    // The two heads differ, so a loss through the class head alone would not match.
    let via_class: f64 = (0..n)
        .map(|i| ce(&class[i], argmax(&teacher_logits[i])))
        .sum::<f64>()
        / n as f64;
    assert!(
        (0.5 * base + 0.5 * via_class - want).abs() > 1e-3,
        "the heads agree; the test would not tell them apart"
    );
}
