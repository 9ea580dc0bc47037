//! Agreement with scikit-learn on the committed fixtures in `tests/fixtures/*.json`, produced by
//! `scripts/make_metric_fixtures.py` (CI needs no Python: these tests only read the JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kestrel_eval::{
    accuracy, argmax_predictions, confusion_matrix, precision_recall_f1, top_k_accuracy,
    write_predictions_csv, AveragedMetric, EvalReport,
};
use serde::Deserialize;
use serde_json::Value;

const TOL: f64 = 1e-9;

#[derive(Debug, Deserialize)]
struct Fixture {
    name: String,
    num_classes: usize,
    num_samples: usize,
    labels: Vec<usize>,
    /// Row-major N×K float32 scores.
    scores: Vec<f32>,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
struct Expected {
    argmax_predictions: Vec<usize>,
    accuracy: f64,
    /// `None` where sklearn cannot compute it (2-class case).
    top1_accuracy: Option<f64>,
    top5_accuracy: Option<f64>,
    confusion_matrix: Vec<Vec<u64>>,
    /// `precision_recall_fscore_support` keyed by average: "none", "macro", "micro", "weighted".
    prfs: BTreeMap<String, Prfs>,
    classification_report: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Prfs {
    precision: Value,
    recall: Value,
    f1: Value,
    support: Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Fixture {
    let path = fixtures_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fx: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(fx.name, name);
    assert_eq!(fx.labels.len(), fx.num_samples);
    assert_eq!(fx.scores.len(), fx.num_samples * fx.num_classes);
    fx
}

#[track_caller]
fn close(what: &str, actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= TOL,
        "{what}: kestrel {actual} vs sklearn {expected}"
    );
}

#[track_caller]
fn close_vec(what: &str, actual: &[f64], expected: &Value) {
    let expected: Vec<f64> = serde_json::from_value(expected.clone()).unwrap();
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        close(&format!("{what}[{i}]"), *a, *e);
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

fn class_names(k: usize) -> Vec<String> {
    (0..k).map(|i| i.to_string()).collect()
}

/// Checks the averaged metric against `precision_recall_fscore_support` and returns nothing.
#[track_caller]
fn check_metric(fx: &Fixture, what: &str, m: &AveragedMetric) {
    let key = |p: &Prfs| -> Value {
        match what {
            "precision" => p.precision.clone(),
            "recall" => p.recall.clone(),
            "f1" => p.f1.clone(),
            _ => unreachable!(),
        }
    };
    let e = &fx.expected.prfs;
    close_vec(
        &format!("{} {what} per class", fx.name),
        &m.per_class,
        &key(&e["none"]),
    );
    close(
        &format!("{} {what} macro", fx.name),
        m.macro_avg,
        num(&key(&e["macro"])),
    );
    close(
        &format!("{} {what} micro", fx.name),
        m.micro,
        num(&key(&e["micro"])),
    );
    close(
        &format!("{} {what} weighted", fx.name),
        m.weighted,
        num(&key(&e["weighted"])),
    );
}

fn check_fixture(name: &str) {
    let fx = load(name);
    let k = fx.num_classes;
    let ex = &fx.expected;

    // Predictions, accuracy, confusion matrix.
    let preds = argmax_predictions(&fx.scores, k).unwrap();
    assert_eq!(preds, ex.argmax_predictions, "{name}: argmax predictions");
    close(
        &format!("{name} accuracy"),
        accuracy(&fx.labels, &preds).unwrap(),
        ex.accuracy,
    );
    let cm = confusion_matrix(&fx.labels, &preds, k).unwrap();
    assert_eq!(cm, ex.confusion_matrix, "{name}: confusion matrix");

    // Top-k.
    let top1 = top_k_accuracy(&fx.labels, &fx.scores, k, 1).unwrap();
    let top5 = top_k_accuracy(&fx.labels, &fx.scores, k, 5).unwrap();
    if let Some(e) = ex.top1_accuracy {
        close(&format!("{name} top-1"), top1, e);
    }
    if let Some(e) = ex.top5_accuracy {
        close(&format!("{name} top-5"), top5, e);
    }

    // Precision / recall / F1 / support.
    let prf = precision_recall_f1(&fx.labels, &preds, k).unwrap();
    check_metric(&fx, "precision", &prf.precision);
    check_metric(&fx, "recall", &prf.recall);
    check_metric(&fx, "f1", &prf.f1);
    let support: Vec<u64> = serde_json::from_value(ex.prfs["none"].support.clone()).unwrap();
    assert_eq!(prf.support, support, "{name}: support");

    // The report bundles the same numbers.
    let names = class_names(k);
    let report = EvalReport::compute(&fx.labels, &fx.scores, &names).unwrap();
    assert_eq!(report.num_samples, fx.num_samples);
    assert_eq!(report.num_classes, k);
    assert_eq!(report.confusion_matrix, ex.confusion_matrix);
    assert_eq!(report.support, support);
    assert_eq!(report.precision, prf.precision);
    assert_eq!(report.recall, prf.recall);
    assert_eq!(report.f1, prf.f1);
    assert_eq!(
        report.accuracy.to_bits(),
        accuracy(&fx.labels, &preds).unwrap().to_bits()
    );
    assert_eq!(report.top1_accuracy.to_bits(), top1.to_bits());
    assert_eq!(report.top5_accuracy.to_bits(), top5.to_bits());

    // ... and agrees with classification_report(output_dict=True).
    let cr = &ex.classification_report;
    for (i, cname) in names.iter().enumerate() {
        let row = &cr[cname];
        close(
            &format!("{name} report {cname} precision"),
            report.precision.per_class[i],
            num(&row["precision"]),
        );
        close(
            &format!("{name} report {cname} recall"),
            report.recall.per_class[i],
            num(&row["recall"]),
        );
        close(
            &format!("{name} report {cname} f1"),
            report.f1.per_class[i],
            num(&row["f1-score"]),
        );
        close(
            &format!("{name} report {cname} support"),
            report.support[i] as f64,
            num(&row["support"]),
        );
    }
    for (key, m) in [("macro avg", 0), ("weighted avg", 1), ("micro avg", 2)] {
        let Some(row) = cr.get(key) else {
            continue;
        };
        let pick = |a: &AveragedMetric| [a.macro_avg, a.weighted, a.micro][m];
        close(
            &format!("{name} report {key} precision"),
            pick(&report.precision),
            num(&row["precision"]),
        );
        close(
            &format!("{name} report {key} recall"),
            pick(&report.recall),
            num(&row["recall"]),
        );
        close(
            &format!("{name} report {key} f1"),
            pick(&report.f1),
            num(&row["f1-score"]),
        );
        close(
            &format!("{name} report {key} support"),
            fx.num_samples as f64,
            num(&row["support"]),
        );
    }
    // sklearn prints either "accuracy" or (when labels hide some classes) "micro avg".
    if let Some(acc) = cr.get("accuracy") {
        close(
            &format!("{name} report accuracy"),
            report.accuracy,
            num(acc),
        );
    } else {
        assert!(
            cr.contains_key("micro avg"),
            "{name}: neither accuracy nor micro avg"
        );
    }

    // The table renders without panicking and mentions every class (names are short here).
    let table = report.to_table();
    assert!(table.contains("weighted avg"), "{name}: {table}");
    if k > kestrel_eval::MAX_TABLE_CONFUSION_CLASSES {
        assert!(table.contains("too large to print"), "{name}: {table}");
    } else {
        assert!(table.contains("true\\pred"), "{name}: {table}");
    }
}

#[test]
fn multiclass_10() {
    check_fixture("multiclass_10");
}

#[test]
fn three_class_top5_is_perfect() {
    check_fixture("three_class");
    let fx = load("three_class");
    assert_eq!(fx.expected.top5_accuracy, Some(1.0));
}

#[test]
fn imbalanced_zero_division() {
    check_fixture("imbalanced_zero_division");
    let fx = load("imbalanced_zero_division");
    // The fixture really exercises 0/0: class 3 never predicted, class 4 never true.
    let cm = &fx.expected.confusion_matrix;
    assert_eq!(cm.iter().map(|r| r[3]).sum::<u64>(), 0);
    assert_eq!(cm[4].iter().sum::<u64>(), 0);
}

#[test]
fn absent_class() {
    check_fixture("absent_class");
    let fx = load("absent_class");
    let cm = &fx.expected.confusion_matrix;
    assert_eq!(
        cm[2].iter().sum::<u64>() + cm.iter().map(|r| r[2]).sum::<u64>(),
        0
    );
}

#[test]
fn multiclass_100() {
    check_fixture("multiclass_100");
}

#[test]
fn tied_scores() {
    check_fixture("tied_scores");
    // The point of this fixture: with ties, sklearn's top-1 (ties -> highest index) differs
    // from argmax accuracy (ties -> lowest index), and we reproduce both.
    let fx = load("tied_scores");
    assert_ne!(fx.expected.top1_accuracy, Some(fx.expected.accuracy));
}

#[test]
fn binary() {
    check_fixture("binary");
}

/// Every fixture on disk is covered by a test above.
#[test]
fn all_fixtures_are_tested() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    let mut known = vec![
        "absent_class",
        "binary",
        "imbalanced_zero_division",
        "multiclass_10",
        "multiclass_100",
        "three_class",
        "tied_scores",
    ];
    known.sort();
    assert_eq!(found, known);
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kestrel-eval-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn metrics_json_round_trip() {
    let fx = load("multiclass_10");
    let names: Vec<String> = (0..fx.num_classes).map(|i| format!("class{i}")).collect();
    let report = EvalReport::compute(&fx.labels, &fx.scores, &names)
        .unwrap()
        .with_skipped_images(Some(3));
    let dir = temp_dir("json");
    let path = dir.join("nested/metrics.json");
    report.write_json(&path).unwrap();
    let back = EvalReport::read_json(&path).unwrap();
    assert_eq!(back, report);

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for key in [
        "accuracy",
        "top5_accuracy",
        "precision",
        "recall",
        "f1",
        "confusion_matrix",
        "class_names",
        "num_samples",
        "top1_accuracy",
        "support",
        "skipped_images",
    ] {
        assert!(v.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(v["skipped_images"], 3);
    assert_eq!(v["num_samples"], 500);
    assert_eq!(v["class_names"][9], "class9");
    assert_eq!(v["f1"]["per_class"].as_array().unwrap().len(), 10);
    assert!(v["confusion_matrix"][0][0].is_u64());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn io_errors_name_the_path() {
    let fx = load("three_class");
    let report = EvalReport::compute(&fx.labels, &fx.scores, &class_names(3)).unwrap();
    let dir = temp_dir("ioerr");
    std::fs::create_dir_all(&dir).unwrap();
    // A directory where a file is expected.
    let err = report.write_json(&dir).unwrap_err();
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    let err =
        write_predictions_csv(&dir, None, &fx.labels, &fx.scores, 3, &class_names(3)).unwrap_err();
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    let missing = dir.join("missing.json");
    let err = EvalReport::read_json(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predictions_csv() {
    let fx = load("three_class");
    let names = vec![
        "cat".to_string(),
        "big, dog".to_string(),
        "say \"hi\"".to_string(),
    ];
    let dir = temp_dir("csv");
    let path = dir.join("predictions.csv");
    write_predictions_csv(&path, None, &fx.labels, &fx.scores, 3, &names).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "true_label,predicted_label,top3,prob_cat,\"prob_big, dog\",\"prob_say \"\"hi\"\"\""
    );
    assert_eq!(lines.len(), fx.num_samples + 1);
    let quoted = ["cat", "\"big, dog\"", "\"say \"\"hi\"\"\""];
    for (i, line) in lines[1..].iter().enumerate() {
        let t = fx.labels[i];
        let p = fx.expected.argmax_predictions[i];
        // The top-3 field: every class, by descending score (ties to the lower index).
        let row = &fx.scores[i * 3..i * 3 + 3];
        let mut order = [0usize, 1, 2];
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let top: Vec<&str> = order.iter().map(|&c| names[c].as_str()).collect();
        let top = kestrel_eval::csv_field(&top.join(";"));
        let prefix = format!("{},{},{top},", quoted[t], quoted[p]);
        assert!(line.starts_with(&prefix), "row {i}: {line}");
        let probs: Vec<f32> = line[prefix.len()..]
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(probs, fx.scores[i * 3..i * 3 + 3], "row {i}");
    }
    // Bad input is rejected before the file is touched.
    let other = dir.join("bad.csv");
    assert!(write_predictions_csv(&other, None, &fx.labels, &fx.scores, 3, &names[..2]).is_err());
    assert!(write_predictions_csv(&other, None, &fx.labels, &fx.scores[1..], 3, &names).is_err());
    let one_path = vec!["a.png".to_string()];
    assert!(
        write_predictions_csv(&other, Some(&one_path), &fx.labels, &fx.scores, 3, &names).is_err()
    );
    assert!(!other.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
