//! [`EvalReport`]: every metric of one evaluation run, its JSON form and a readable table.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::{
    accuracy, argmax_predictions, confusion_matrix, top_k_accuracy, validate_scores,
    AveragedMetric, PrecisionRecallF1,
};

/// Above this many classes, [`EvalReport::to_table`] does not print the confusion matrix.
pub const MAX_TABLE_CONFUSION_CLASSES: usize = 20;

/// Class names in the printed confusion matrix are cut to this many characters (20 columns
/// of 16 still fit a wide terminal; "coffee" and "dog" stay whole).
const CONFUSION_NAME_CHARS: usize = 16;

/// Decimal places in the printed classification report.
const TABLE_DIGITS: usize = 4;

/// All metrics of one evaluation, as written to `metrics.json`.
///
/// JSON keys (a contract with downstream tools): `accuracy`, `top1_accuracy`, `top5_accuracy`,
/// `precision`, `recall`, `f1` (each `{"macro", "micro", "weighted", "per_class"}`, `per_class`
/// aligned with `class_names`), `support`, `confusion_matrix` (rows = true, cols = predicted),
/// `class_names`, `num_samples`, `num_classes`, `skipped_images` (null when unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of evaluated samples.
    pub num_samples: usize,
    /// Number of classes (= `class_names.len()`).
    pub num_classes: usize,
    /// Class names; index = class.
    pub class_names: Vec<String>,
    /// Fraction of samples whose argmax prediction (ties -> lowest index) is the true label.
    pub accuracy: f64,
    /// sklearn `top_k_accuracy_score(k=1)`: ranks ties towards the *highest* index, so it can
    /// differ from `accuracy` when scores tie (see [`top_k_accuracy`]).
    pub top1_accuracy: f64,
    /// sklearn `top_k_accuracy_score(k=5)`; 1.0 when there are at most 5 classes.
    pub top5_accuracy: f64,
    pub precision: AveragedMetric,
    pub recall: AveragedMetric,
    pub f1: AveragedMetric,
    /// Number of true samples per class.
    pub support: Vec<u64>,
    /// Rows = true class, columns = predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Images skipped before evaluation (e.g. by `--skip-bad-images`); `None` (JSON null) when
    /// unknown. [`EvalReport::compute`] leaves it `None`; set it directly or with
    /// [`EvalReport::with_skipped_images`].
    pub skipped_images: Option<usize>,
}

impl EvalReport {
    /// Computes every metric from true labels and row-major `N × K` scores, where
    /// `K = class_names.len()`. Predictions are the argmax of each row (ties -> lowest index).
    ///
    /// Errors (never panics) when `N = 0`, `K = 0`, `scores.len() != N × K`, a label is `>= K`
    /// or a score is NaN/infinite.
    pub fn compute(labels: &[usize], scores: &[f32], class_names: &[String]) -> Result<Self> {
        let k = class_names.len();
        validate_scores(labels, scores, k)?;
        let preds = argmax_predictions(scores, k)?;
        let cm = confusion_matrix(labels, &preds, k)?;
        let prf = PrecisionRecallF1::from_confusion(&cm)?;
        Ok(EvalReport {
            num_samples: labels.len(),
            num_classes: k,
            class_names: class_names.to_vec(),
            accuracy: accuracy(labels, &preds)?,
            top1_accuracy: top_k_accuracy(labels, scores, k, 1)?,
            top5_accuracy: top_k_accuracy(labels, scores, k, 5)?,
            precision: prf.precision,
            recall: prf.recall,
            f1: prf.f1,
            support: prf.support,
            confusion_matrix: cm,
            skipped_images: None,
        })
    }

    /// Sets [`EvalReport::skipped_images`].
    pub fn with_skipped_images(mut self, skipped: Option<usize>) -> Self {
        self.skipped_images = skipped;
        self
    }

    /// The report as indented JSON (the content of `metrics.json`); arrays of numbers or strings
    /// (each confusion-matrix row, `per_class`, `support`, `class_names`) stay on one line.
    pub fn to_json_string(&self) -> String {
        // Serialising plain structs of numbers, strings and vectors cannot fail; non-finite
        // floats (impossible here: all metrics are ratios of counts) would become `null`.
        crate::json::to_string_pretty_compact(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the report as indented JSON (see [`EvalReport::to_json_string`]) to `path` (typically `metrics.json`), creating missing
    /// parent directories. Errors name the path.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| EvalError::io(parent, e))?;
        }
        let mut text =
            crate::json::to_string_pretty_compact(self).map_err(|source| EvalError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        text.push('\n');
        let mut file = fs::File::create(path).map_err(|e| EvalError::io(path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| EvalError::io(path, e))
    }

    /// Reads a report written by [`EvalReport::write_json`]. Errors name the path.
    pub fn read_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A readable report in the style of sklearn's `classification_report` (4 decimals):
    /// per-class precision / recall / f1-score / support, then `accuracy`, `macro avg`,
    /// `weighted avg` and `micro avg` lines, then top-1 / top-5 accuracy, the skipped-image
    /// count when known, and the confusion matrix (for more than
    /// [`MAX_TABLE_CONFUSION_CLASSES`] classes only a pointer to `metrics.json`).
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        self.write_classification_report(&mut out);
        out.push('\n');
        let _ = writeln!(
            out,
            "top-1 accuracy: {:.*}",
            TABLE_DIGITS, self.top1_accuracy
        );
        // With five classes or fewer the top 5 hold every class: always 1, so not printed.
        if self.class_names.len() > 5 {
            let _ = writeln!(
                out,
                "top-5 accuracy: {:.*}",
                TABLE_DIGITS, self.top5_accuracy
            );
        }
        let _ = writeln!(out, "samples: {}", self.num_samples);
        if let Some(skipped) = self.skipped_images {
            let _ = writeln!(out, "skipped images: {skipped}");
        }
        out.push('\n');
        self.write_confusion(&mut out);
        out
    }

    fn write_classification_report(&self, out: &mut String) {
        const LONGEST_HEADING: &str = "weighted avg";
        let d = TABLE_DIGITS;
        let width = self
            .class_names
            .iter()
            .map(|n| n.chars().count())
            .chain([LONGEST_HEADING.len(), d])
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n",
            "", "precision", "recall", "f1-score", "support"
        );
        let row = |out: &mut String, name: &str, p: f64, r: f64, f: f64, s: u64| {
            let _ = writeln!(out, "{name:>width$}  {p:>9.d$} {r:>9.d$} {f:>9.d$} {s:>9}");
        };
        for (i, name) in self.class_names.iter().enumerate() {
            let support = self.support.get(i).copied().unwrap_or(0);
            let get = |m: &AveragedMetric| m.per_class.get(i).copied().unwrap_or(0.0);
            row(
                out,
                name,
                get(&self.precision),
                get(&self.recall),
                get(&self.f1),
                support,
            );
        }
        out.push('\n');
        let total = self.num_samples as u64;
        let _ = writeln!(
            out,
            "{:>width$}  {:>9} {:>9} {:>9.d$} {:>9}",
            "accuracy", "", "", self.accuracy, total
        );
        let (p, r, f) = (&self.precision, &self.recall, &self.f1);
        row(
            out,
            "macro avg",
            p.macro_avg,
            r.macro_avg,
            f.macro_avg,
            total,
        );
        row(
            out,
            "weighted avg",
            p.weighted,
            r.weighted,
            f.weighted,
            total,
        );
        row(out, "micro avg", p.micro, r.micro, f.micro, total);
    }

    fn write_confusion(&self, out: &mut String) {
        let k = self.confusion_matrix.len();
        if k > MAX_TABLE_CONFUSION_CLASSES {
            let _ = writeln!(
                out,
                "confusion matrix: {k}x{k}, too large to print; saved as \"confusion_matrix\" \
                 (rows = true, columns = predicted) in metrics.json"
            );
            return;
        }
        let names: Vec<String> = (0..k)
            .map(|i| {
                let name = self.class_names.get(i).map(String::as_str).unwrap_or("?");
                name.chars().take(CONFUSION_NAME_CHARS).collect()
            })
            .collect();
        let max_count = self
            .confusion_matrix
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0);
        let col = names
            .iter()
            .map(|n| n.chars().count())
            .chain([max_count.to_string().len()])
            .max()
            .unwrap_or(1);
        let row_head = names
            .iter()
            .map(|n| n.chars().count())
            .chain(["true\\pred".len()])
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "confusion matrix (rows = true, columns = predicted):");
        let _ = write!(out, "{:<row_head$}", "true\\pred");
        for n in &names {
            let _ = write!(out, " {n:>col$}");
        }
        out.push('\n');
        for (name, counts) in names.iter().zip(&self.confusion_matrix) {
            let _ = write!(out, "{name:>row_head$}");
            for c in counts {
                let _ = write!(out, " {c:>col$}");
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compute_matches_hand_values() {
        // Same 2-class example as in metrics.rs: accuracy 3/5.
        let labels = [0, 0, 1, 1, 1];
        let scores = [0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7, 0.55, 0.45];
        let r = EvalReport::compute(&labels, &scores, &names(&["cat", "dog"])).unwrap();
        assert_eq!(r.num_samples, 5);
        assert_eq!(r.confusion_matrix, vec![vec![1, 1], vec![1, 2]]);
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert!((r.top1_accuracy - 0.6).abs() < 1e-12);
        assert_eq!(r.top5_accuracy, 1.0);
        assert!((r.f1.macro_avg - 7.0 / 12.0).abs() < 1e-12);
        assert_eq!(r.skipped_images, None);
    }

    #[test]
    fn json_has_contract_keys() {
        let r = EvalReport::compute(
            &[0, 1, 2],
            &[1., 0., 0., 0., 1., 0., 0., 1., 0.],
            &names(&["a", "b", "c"]),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.to_json_string()).unwrap();
        for key in [
            "accuracy",
            "top1_accuracy",
            "top5_accuracy",
            "precision",
            "recall",
            "f1",
            "support",
            "confusion_matrix",
            "class_names",
            "num_samples",
            "skipped_images",
        ] {
            assert!(v.get(key).is_some(), "missing key {key}");
        }
        for m in ["precision", "recall", "f1"] {
            for key in ["macro", "micro", "weighted", "per_class"] {
                assert!(v[m].get(key).is_some(), "missing {m}.{key}");
            }
            assert_eq!(v[m]["per_class"].as_array().unwrap().len(), 3);
        }
        assert!(v["skipped_images"].is_null());
        assert_eq!(v["confusion_matrix"][2][1], 1);
        // Matrix rows stay on one line each.
        assert!(r.to_json_string().contains(
            "\"confusion_matrix\": [\n    [1, 0, 0],\n    [0, 1, 0],\n    [0, 1, 0]\n  ]"
        ));
        let v: serde_json::Value =
            serde_json::from_str(&r.with_skipped_images(Some(7)).to_json_string()).unwrap();
        assert_eq!(v["skipped_images"], 7);
    }

    #[test]
    fn table_layout() {
        let r = EvalReport::compute(
            &[0, 0, 1, 1, 1],
            &[0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7, 0.55, 0.45],
            &names(&["cat", "a-very-long-name"]),
        )
        .unwrap()
        .with_skipped_images(Some(2));
        let t = r.to_table();
        assert!(t.contains("precision"), "{t}");
        assert!(
            t.contains("             cat     0.5000    0.5000    0.5000         2"),
            "{t}"
        );
        assert!(
            t.contains("        accuracy                         0.6000         5"),
            "{t}"
        );
        assert!(t.contains("       macro avg     0.5833"), "{t}");
        assert!(t.contains("    weighted avg     0.6000"), "{t}");
        assert!(t.contains("       micro avg     0.6000"), "{t}");
        assert!(t.contains("top-1 accuracy: 0.6000"), "{t}");
        assert!(!t.contains("top-5"), "two classes: top-5 is always 1:\n{t}");
        assert!(t.contains("skipped images: 2"), "{t}");
        // Names up to 16 characters are printed whole.
        let header = format!(
            "true\\pred{} {:>16} a-very-long-name\n",
            " ".repeat(7),
            "cat"
        );
        assert!(t.contains(&header), "{t}");
        assert!(
            t.contains(&format!("\na-very-long-name {:>16} {:>16}\n", 1, 2)),
            "{t}"
        );
    }

    #[test]
    fn table_skips_big_confusion() {
        let k = 25;
        let names: Vec<String> = (0..k).map(|i| format!("c{i}")).collect();
        let labels: Vec<usize> = (0..k).collect();
        let mut scores = vec![0.0f32; k * k];
        for i in 0..k {
            scores[i * k + i] = 1.0;
        }
        let t = EvalReport::compute(&labels, &scores, &names)
            .unwrap()
            .to_table();
        assert!(
            t.contains("confusion matrix: 25x25, too large to print"),
            "{t}"
        );
        assert!(!t.contains("true\\pred"));
    }

    #[test]
    fn compute_rejects_bad_input() {
        let n = names(&["a", "b"]);
        assert!(matches!(
            EvalReport::compute(&[], &[], &n),
            Err(EvalError::Empty)
        ));
        assert!(matches!(
            EvalReport::compute(&[0], &[0.5, 0.5], &[]),
            Err(EvalError::NoClasses)
        ));
        assert!(matches!(
            EvalReport::compute(&[0], &[0.5, 0.5, 0.1], &n),
            Err(EvalError::ScoresShape { .. })
        ));
        assert!(matches!(
            EvalReport::compute(&[2], &[0.5, 0.5], &n),
            Err(EvalError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            EvalReport::compute(&[0], &[f32::NAN, 0.5], &n),
            Err(EvalError::NonFiniteScore { .. })
        ));
    }
}
