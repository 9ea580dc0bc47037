//! A small end-to-end run on trivially separable data: train → checkpoint, logs and metrics →
//! eval with a predictions CSV → predict → preprocess + forward, which must agree with predict.
//! Then reproducibility: the same run with the same seed logs the same losses.

use crate::common;

use std::path::Path;

use common::{
    kestrel, read_json, read_tensor, s, solid_color_folder, solid_image, tempdir, Lcg, Run,
};

const CLASSES: [&str; 3] = ["blue", "green", "red"];

fn train(data: &Path, out: &Path) -> Run {
    kestrel([
        "train",
        "--data",
        s(data),
        "--epochs",
        "3",
        "--model",
        "lenet5",
        "--batch-size",
        "8",
        "--out",
        s(out),
        "--quiet",
        "--seed",
        "1",
        "--workers",
        "1",
    ])
    .ok()
}

fn losses(log: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            (
                v["train_loss"].as_f64().unwrap(),
                v["val_loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn check_averaged(metrics: &serde_json::Value, key: &str) {
    let m = &metrics[key];
    for avg in ["macro", "micro", "weighted"] {
        let v = m[avg]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}.{avg} missing: {metrics}"));
        assert!((0.0..=1.0).contains(&v), "{key}.{avg} = {v}");
    }
    let per_class = m["per_class"]
        .as_array()
        .unwrap_or_else(|| panic!("{key}.per_class: {metrics}"));
    assert_eq!(per_class.len(), 3, "{key}.per_class");
}

#[test]
fn train_eval_predict_forward_on_solid_colours() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 20, 42);
    let out = tmp.path().join("run");

    // --- train ---
    let run = train(&data, &out);
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    assert!(
        out.join("model.safetensors").is_file(),
        "no model.safetensors"
    );

    let ckpt = read_json(&out.join("checkpoint.json"));
    assert_eq!(ckpt["model"], "lenet5", "{ckpt}");
    assert_eq!(
        ckpt["class_names"],
        serde_json::json!(CLASSES),
        "class names must be the sorted folders: {ckpt}"
    );
    assert!(
        ckpt["data_config"].is_object(),
        "checkpoint.json has no data_config: {ckpt}"
    );
    assert_eq!(ckpt["num_classes"], 3, "{ckpt}");

    let log = out.join("train_log.jsonl");
    let log_text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log_text.lines().collect();
    assert_eq!(lines.len(), 3, "one log line per epoch:\n{log_text}");
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["epoch"], i + 1, "{l}");
        assert!(v["train_loss"].as_f64().unwrap().is_finite(), "{l}");
    }

    let metrics = read_json(&out.join("metrics.json"));
    for key in [
        "accuracy",
        "top5_accuracy",
        "confusion_matrix",
        "class_names",
        "num_samples",
    ] {
        assert!(
            !metrics[key].is_null(),
            "metrics.json lacks {key}: {metrics}"
        );
    }
    for key in ["precision", "recall", "f1"] {
        check_averaged(&metrics, key);
    }
    assert_eq!(metrics["class_names"], serde_json::json!(CLASSES));
    let n = metrics["num_samples"].as_u64().unwrap() as usize;
    assert!(n >= 3, "test split of {n} samples: {metrics}");
    let cm = metrics["confusion_matrix"].as_array().unwrap();
    assert_eq!(cm.len(), 3);
    let cm_total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        cm_total as usize, n,
        "confusion matrix counts vs num_samples"
    );
    let acc = metrics["accuracy"].as_f64().unwrap();
    assert!(
        acc >= 0.9,
        "accuracy {acc} on trivially separable colours:\n{}\n{metrics}",
        run.stdout
    );
    assert_eq!(
        metrics["top5_accuracy"].as_f64().unwrap(),
        1.0,
        "3 classes: top-5 is always right"
    );

    // --- eval, with a predictions CSV ---
    let csv = tmp.path().join("preds").join("P.csv");
    let eval_out = tmp.path().join("eval");
    kestrel([
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        s(&data),
        "--save-predictions",
        s(&csv),
        "--out",
        s(&eval_out),
    ])
    .ok();
    let eval_metrics = read_json(&eval_out.join("metrics.json"));
    assert_eq!(
        eval_metrics["num_samples"].as_u64().unwrap() as usize,
        n,
        "eval and train see the same test split"
    );
    assert_eq!(
        eval_metrics["accuracy"], metrics["accuracy"],
        "eval reproduces the accuracy train reported"
    );
    assert_eq!(
        eval_metrics["confusion_matrix"],
        metrics["confusion_matrix"]
    );

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "image",
            "true_label",
            "predicted_label",
            "top3",
            "prob_blue",
            "prob_green",
            "prob_red"
        ],
        "{text}"
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').skip(1).collect()).collect();
    let paths: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|r| r.split(',').next().unwrap())
        .collect();
    assert_eq!(rows.len(), n, "one CSV row per sample:\n{text}");
    let mut correct = 0;
    for (r, path) in rows.iter().zip(&paths) {
        // The image column finds the file, and the file is in its true class's folder.
        let path = Path::new(path);
        assert!(path.is_file(), "{path:?}");
        assert_eq!(
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap(),
            r[0],
            "{r:?}"
        );
        assert_eq!(r.len(), 6, "{r:?}");
        assert!(CLASSES.contains(&r[0]) && CLASSES.contains(&r[1]), "{r:?}");
        let top: Vec<&str> = r[2].split(';').collect();
        assert_eq!(top.len(), 3, "{r:?}");
        assert_eq!(top[0], r[1], "the top-1 is the prediction: {r:?}");
        let p: Vec<f64> = r[3..].iter().map(|v| v.parse().unwrap()).collect();
        let prob = |c: &str| p[CLASSES.iter().position(|k| *k == c).unwrap()];
        assert!(
            prob(top[0]) >= prob(top[1]) && prob(top[1]) >= prob(top[2]),
            "top-3 by descending probability: {r:?}"
        );
        assert!(p.iter().all(|&v| (0.0..=1.0).contains(&v)), "{r:?}");
        assert!(
            (p.iter().sum::<f64>() - 1.0).abs() < 1e-4,
            "probabilities sum to {}: {r:?}",
            p.iter().sum::<f64>()
        );
        let argmax = (0..3).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        assert_eq!(
            r[1], CLASSES[argmax],
            "predicted label is the argmax: {r:?}"
        );
        correct += (r[0] == r[1]) as usize;
    }
    let csv_acc = correct as f64 / n as f64;
    assert!(
        (csv_acc - acc).abs() < 1e-9,
        "CSV accuracy {csv_acc} vs metrics {acc}"
    );

    // --- predict on fresh images of each colour ---
    let mut rng = Lcg::new(1234);
    for (name, rgb) in common::COLORS {
        let img = tmp.path().join(format!("{name}.png"));
        solid_image(rgb, 16, 12, &mut rng).save(&img).unwrap();
        let run = kestrel(["predict", "--checkpoint", s(&out), s(&img), "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("predict --json: {e}\n{}", run.stdout));
        let top = &v[0]["top"];
        assert_eq!(top[0]["class"], name, "{name} image: {v}");
        assert_eq!(
            top.as_array().unwrap().len(),
            3,
            "top-5 of 3 classes lists 3: {v}"
        );
        let psum: f64 = top
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["probability"].as_f64().unwrap())
            .sum();
        assert!((psum - 1.0).abs() < 1e-4, "{v}");

        // --- preprocess + forward must agree with predict ---
        let x = tmp.path().join(format!("x_{name}.safetensors"));
        let y = tmp.path().join(format!("y_{name}.safetensors"));
        kestrel([
            "preprocess",
            "--checkpoint",
            s(&out),
            s(&img),
            "--output",
            s(&x),
        ])
        .ok();
        let (xshape, xv) = read_tensor(&x, "input");
        assert_eq!(
            xshape,
            [1, 1, 32, 32],
            "LeNet-5 input: gray, 16x16 padded to 32x32"
        );
        assert!(xv.iter().all(|v| v.is_finite()));
        kestrel([
            "forward",
            "--checkpoint",
            s(&out),
            "--input",
            s(&x),
            "--output",
            s(&y),
        ])
        .ok();
        let (yshape, logits) = read_tensor(&y, "logits");
        assert_eq!(yshape, [1, 3]);
        let argmax = (0..3).fold(0, |b, j| if logits[j] > logits[b] { j } else { b });
        assert_eq!(
            top[0]["index"], argmax,
            "forward's argmax vs predict's top class: {logits:?} {v}"
        );
        assert_eq!(CLASSES[argmax], name);
        // softmax(logits) must be predict's probabilities.
        let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
        for t in top.as_array().unwrap() {
            let i = t["index"].as_u64().unwrap() as usize;
            let p = (logits[i] - m).exp() / z;
            let q = t["probability"].as_f64().unwrap() as f32;
            assert!(
                (p - q).abs() < 1e-5,
                "class {i}: softmax(forward) {p} vs predict {q}"
            );
        }
    }

    // --- damaged checkpoints and mismatched data fail cleanly, naming the file ---
    let img = tmp.path().join("red.png");
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in ["checkpoint.json", "model.safetensors"] {
        std::fs::copy(out.join(f), broken.join(f)).unwrap();
    }
    let weights = broken.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    kestrel(["predict", "--checkpoint", s(&broken), s(&img)]).fails_cleanly_naming(&[s(&weights)]);
    kestrel(["eval", "--checkpoint", s(&broken), "--data", s(&data)])
        .fails_cleanly_naming(&[s(&weights)]);
    let meta = broken.join("checkpoint.json");
    std::fs::write(
        &meta,
        b"{\"format\": \"kestrel-checkpoint-v1\", \"model\": ",
    )
    .unwrap();
    kestrel(["predict", "--checkpoint", s(&broken), s(&img)]).fails_cleanly_naming(&[s(&meta)]);
    let two_classes = tmp.path().join("two");
    common::solid_color_folder(&two_classes, 2, 5);
    std::fs::remove_dir_all(two_classes.join("red")).unwrap();
    // Two of the three classes: scored under the checkpoint's labels (red has no samples).
    let eval_two = tmp.path().join("eval-two");
    kestrel([
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        s(&two_classes),
        "--out",
        s(&eval_two),
    ])
    .ok();
    let m = read_json(&eval_two.join("metrics.json"));
    assert_eq!(m["class_names"], serde_json::json!(CLASSES), "{m}");
    assert_eq!(m["num_samples"], 4, "{m}");
    assert_eq!(
        m["confusion_matrix"][2],
        serde_json::json!([0, 0, 0]),
        "{m}"
    );
    // A class the checkpoint does not have is an error naming it.
    std::fs::rename(two_classes.join("green"), two_classes.join("teal")).unwrap();
    kestrel(["eval", "--checkpoint", s(&out), "--data", s(&two_classes)])
        .fails_cleanly_naming(&[s(&two_classes), "teal"]);

    // --- reproducibility: the same command again gives the same losses ---
    let out2 = tmp.path().join("run2");
    train(&data, &out2);
    let (a, b) = (losses(&log), losses(&out2.join("train_log.jsonl")));
    assert_eq!(
        a, b,
        "same seed, machine and thread count should give identical losses"
    );
    // The files' bytes may differ (burn writes its `__metadata__` map in hash order); the
    // tensors may not.
    let (w1, w2) = (
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(out2.join("model.safetensors")).unwrap(),
    );
    let (t1, t2) = (
        safetensors::SafeTensors::deserialize(&w1).unwrap(),
        safetensors::SafeTensors::deserialize(&w2).unwrap(),
    );
    let mut names = t1.names();
    names.sort();
    let mut names2 = t2.names();
    names2.sort();
    assert_eq!(names, names2);
    assert!(
        names.len() >= 10,
        "LeNet-5 has 5 weight + 5 bias tensors: {names:?}"
    );
    for name in names {
        let (a, b) = (t1.tensor(name).unwrap(), t2.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert!(
            a.data() == b.data(),
            "same seed should give identical weights; {name} differs"
        );
    }
}

/// The checkpoint's weights file should be as readable as the files written next to it (the
/// process umask decides), so that another user or a serving process can load it.
#[cfg(unix)]
#[test]
fn checkpoint_weights_file_has_the_same_permissions_as_its_metadata() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 3);
    let out = tmp.path().join("run");
    kestrel([
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        s(&out),
        "--quiet",
        "--workers",
        "1",
    ])
    .ok();
    let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode("model.safetensors"),
        mode("checkpoint.json"),
        "model.safetensors {:o} vs checkpoint.json {:o}",
        mode("model.safetensors"),
        mode("checkpoint.json")
    );
}
