//! Low-level metric functions on plain slices, with scikit-learn semantics.
//!
//! Conventions shared by every function here:
//! * labels are class indices in `0..num_classes`;
//! * scores are a flat row-major `num_samples × num_classes` buffer (probabilities or any other
//!   real-valued scores; only their order matters);
//! * all classes `0..num_classes` take part, as with sklearn's `labels=range(K)`, even classes that
//!   appear in neither the true nor the predicted labels;
//! * undefined ratios (0/0) are 0, as with sklearn's `zero_division=0`;
//! * arithmetic is done in `f64` on integer counts.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Checks that `labels` and `scores` describe `labels.len()` samples over `num_classes` classes:
/// at least one sample and one class, `scores.len() == labels.len() * num_classes`, every label
/// in range and every score finite.
pub fn validate_scores(labels: &[usize], scores: &[f32], num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    if labels.is_empty() {
        return Err(EvalError::Empty);
    }
    let expected = labels.len().checked_mul(num_classes);
    if expected != Some(scores.len()) {
        return Err(EvalError::ScoresShape {
            len: scores.len(),
            samples: labels.len(),
            classes: num_classes,
            expected: expected.unwrap_or(usize::MAX),
        });
    }
    check_labels("true label", labels, num_classes)?;
    if let Some(pos) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore {
            sample: pos / num_classes,
            class: pos % num_classes,
            value: scores[pos],
        });
    }
    Ok(())
}

fn check_labels(what: &'static str, labels: &[usize], num_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l >= num_classes) {
        Some(index) => Err(EvalError::LabelOutOfRange {
            what,
            index,
            label: labels[index],
            num_classes,
        }),
        None => Ok(()),
    }
}

/// Checks a pair of true / predicted label slices: same non-zero length, all in range.
fn validate_pair(y_true: &[usize], y_pred: &[usize], num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    if y_true.is_empty() {
        return Err(EvalError::Empty);
    }
    if y_true.len() != y_pred.len() {
        return Err(EvalError::LengthMismatch {
            what: "number of predicted labels vs true labels",
            expected: y_true.len(),
            actual: y_pred.len(),
        });
    }
    check_labels("true label", y_true, num_classes)?;
    check_labels("predicted label", y_pred, num_classes)
}

/// Index of the largest score in one row; ties go to the lowest index (as `numpy.argmax`).
///
/// The row must be non-empty and NaN-free (see [`validate_scores`]).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &s) in row.iter().enumerate().skip(1) {
        if s > row[best] {
            best = j;
        }
    }
    best
}

/// Predicted class of every sample: the argmax of its row of scores, ties to the lowest index
/// (as `numpy.argmax(scores, axis=1)`).
///
/// Errors if `num_classes == 0`, `scores` is empty or not a multiple of `num_classes`, or a score
/// is not finite.
pub fn argmax_predictions(scores: &[f32], num_classes: usize) -> Result<Vec<usize>> {
    if num_classes == 0 {
        return Err(EvalError::NoClasses);
    }
    if scores.is_empty() {
        return Err(EvalError::Empty);
    }
    if !scores.len().is_multiple_of(num_classes) {
        let samples = scores.len() / num_classes;
        return Err(EvalError::ScoresShape {
            len: scores.len(),
            samples,
            classes: num_classes,
            expected: samples * num_classes,
        });
    }
    if let Some(pos) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore {
            sample: pos / num_classes,
            class: pos % num_classes,
            value: scores[pos],
        });
    }
    Ok(scores.chunks_exact(num_classes).map(argmax).collect())
}

/// Fraction of samples whose prediction equals the true label (sklearn `accuracy_score`).
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    if y_true.is_empty() {
        return Err(EvalError::Empty);
    }
    if y_true.len() != y_pred.len() {
        return Err(EvalError::LengthMismatch {
            what: "number of predicted labels vs true labels",
            expected: y_true.len(),
            actual: y_pred.len(),
        });
    }
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Top-k accuracy with the semantics of sklearn's `top_k_accuracy_score(y_true, y_score, k=k,
/// labels=range(num_classes))` for multiclass scores.
///
/// A sample is a hit when its true class is among the `k` best-ranked classes of its row.
///
/// **Ranking and ties.** sklearn ranks with `np.argsort(y_score, kind="mergesort")[:, ::-1]`: a
/// stable ascending sort, then reversed. Among equal scores the class with the *higher* index
/// therefore ranks first. We reproduce that exactly: class `j` ranks ahead of the true class `t`
/// when `s[j] > s[t]`, or `s[j] == s[t]` and `j > t`; the sample is a hit when fewer than `k`
/// classes rank ahead of `t`. Consequently, with tied scores, top-1 accuracy can differ from
/// [`accuracy`] on [`argmax_predictions`] (which breaks ties towards the *lowest* index, as
/// `numpy.argmax` and sklearn's `accuracy_score` on argmax predictions do).
///
/// **k ≥ num_classes** gives 1.0 (every class is in the top k), as sklearn does (sklearn also
/// warns that the score is then meaningless).
///
/// **Two classes.** sklearn treats a 2-class problem as "binary" and thresholds a 1-D score
/// instead of ranking; here 2-class inputs are ranked like any other (only exact ties can differ).
///
/// Errors on bad shapes, out-of-range labels, non-finite scores (sklearn rejects them too) and
/// `k == 0`.
pub fn top_k_accuracy(
    labels: &[usize],
    scores: &[f32],
    num_classes: usize,
    k: usize,
) -> Result<f64> {
    validate_scores(labels, scores, num_classes)?;
    if k == 0 {
        return Err(EvalError::InvalidK(k));
    }
    if k >= num_classes {
        return Ok(1.0);
    }
    let hits = scores
        .chunks_exact(num_classes)
        .zip(labels)
        .filter(|&(row, &t)| {
            let st = row[t];
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(j, &s)| s > st || (s == st && j > t))
                .count();
            ahead < k
        })
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Confusion matrix with rows = true class and columns = predicted class, over all classes
/// `0..num_classes` (sklearn `confusion_matrix(y_true, y_pred, labels=range(num_classes))`).
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    num_classes: usize,
) -> Result<Vec<Vec<u64>>> {
    validate_pair(y_true, y_pred, num_classes)?;
    let mut cm = vec![vec![0u64; num_classes]; num_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        cm[t][p] += 1;
    }
    Ok(cm)
}

/// One metric (precision, recall or F1) per class plus its three averages.
///
/// Serialises as `{"macro": .., "micro": .., "weighted": .., "per_class": [..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AveragedMetric {
    /// Unweighted mean of `per_class` (classes absent from both true and predicted labels count,
    /// with value 0).
    #[serde(rename = "macro")]
    pub macro_avg: f64,
    /// The metric computed from counts summed over all classes. With every class included and
    /// single-label data, micro precision = micro recall = micro F1 = accuracy.
    pub micro: f64,
    /// Mean of `per_class` weighted by support (number of true samples of each class).
    pub weighted: f64,
    /// One value per class, index = class.
    pub per_class: Vec<f64>,
}

/// Precision, recall, F1 and support per class with macro / micro / weighted averages
/// (sklearn `precision_recall_fscore_support(..., labels=range(K), zero_division=0)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecallF1 {
    pub precision: AveragedMetric,
    pub recall: AveragedMetric,
    pub f1: AveragedMetric,
    /// Number of true samples of each class.
    pub support: Vec<u64>,
}

/// `num / den`, or 0 when `den == 0` (sklearn `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// F1 from counts as sklearn ≥ 1.3 computes it: `2·tp / (2·tp + fp + fn)`, 0 when the
/// denominator is 0. (Equal to the harmonic mean `2PR/(P+R)` whenever that is defined.)
fn f1_from_counts(tp: u64, pred: u64, truth: u64) -> f64 {
    ratio(2 * tp, pred + truth)
}

impl PrecisionRecallF1 {
    /// Computes everything from a square confusion matrix (rows = true, cols = predicted).
    ///
    /// Errors if the matrix is empty, not square, or holds no samples.
    pub fn from_confusion(cm: &[Vec<u64>]) -> Result<Self> {
        let k = cm.len();
        if k == 0 {
            return Err(EvalError::NoClasses);
        }
        if let Some(row) = cm.iter().find(|r| r.len() != k) {
            return Err(EvalError::LengthMismatch {
                what: "confusion matrix row length vs number of rows",
                expected: k,
                actual: row.len(),
            });
        }
        let tp: Vec<u64> = (0..k).map(|i| cm[i][i]).collect();
        let support: Vec<u64> = cm.iter().map(|r| r.iter().sum()).collect();
        let pred_sum: Vec<u64> = (0..k).map(|j| cm.iter().map(|r| r[j]).sum()).collect();
        let total: u64 = support.iter().sum();
        if total == 0 {
            return Err(EvalError::Empty);
        }

        let precision: Vec<f64> = (0..k).map(|i| ratio(tp[i], pred_sum[i])).collect();
        let recall: Vec<f64> = (0..k).map(|i| ratio(tp[i], support[i])).collect();
        let f1: Vec<f64> = (0..k)
            .map(|i| f1_from_counts(tp[i], pred_sum[i], support[i]))
            .collect();

        let tp_all: u64 = tp.iter().sum();
        let pred_all: u64 = pred_sum.iter().sum();
        let averaged = |per_class: Vec<f64>, micro: f64| {
            let macro_avg = per_class.iter().sum::<f64>() / k as f64;
            let weighted = per_class
                .iter()
                .zip(&support)
                .map(|(v, &w)| v * w as f64)
                .sum::<f64>()
                / total as f64;
            AveragedMetric {
                macro_avg,
                micro,
                weighted,
                per_class,
            }
        };
        Ok(PrecisionRecallF1 {
            precision: averaged(precision, ratio(tp_all, pred_all)),
            recall: averaged(recall, ratio(tp_all, total)),
            f1: averaged(f1, f1_from_counts(tp_all, pred_all, total)),
            support,
        })
    }
}

/// Precision, recall and F1 per class with macro / micro / weighted averages, and support, from
/// true and predicted labels over classes `0..num_classes` (sklearn semantics, `zero_division=0`).
pub fn precision_recall_f1(
    y_true: &[usize],
    y_pred: &[usize],
    num_classes: usize,
) -> Result<PrecisionRecallF1> {
    let cm = confusion_matrix(y_true, y_pred, num_classes)?;
    PrecisionRecallF1::from_confusion(&cm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Worked 2-class example.
    ///
    /// y_true = [0, 0, 1, 1, 1], y_pred = [0, 1, 1, 1, 0]
    /// confusion (rows true, cols pred) = [[1, 1], [1, 2]]
    /// class 0: tp 1, predicted 2, true 2 -> P = 1/2, R = 1/2, F1 = 1/2
    /// class 1: tp 2, predicted 3, true 3 -> P = 2/3, R = 2/3, F1 = 2/3
    /// macro    = (1/2 + 2/3) / 2 = 7/12 for P, R and F1
    /// weighted = (2·1/2 + 3·2/3) / 5 = 3/5
    /// micro    = 3 correct / 5 = 3/5 = accuracy
    #[test]
    fn hand_computed_two_by_two() {
        let y_true = [0, 0, 1, 1, 1];
        let scores = [
            0.9, 0.1, // -> 0
            0.4, 0.6, // -> 1
            0.2, 0.8, // -> 1
            0.3, 0.7, // -> 1
            0.55, 0.45, // -> 0
        ];
        let y_pred = argmax_predictions(&scores, 2).unwrap();
        assert_eq!(y_pred, vec![0, 1, 1, 1, 0]);
        assert_eq!(
            confusion_matrix(&y_true, &y_pred, 2).unwrap(),
            vec![vec![1, 1], vec![1, 2]]
        );
        close(accuracy(&y_true, &y_pred).unwrap(), 0.6);
        let prf = precision_recall_f1(&y_true, &y_pred, 2).unwrap();
        assert_eq!(prf.support, vec![2, 3]);
        for m in [&prf.precision, &prf.recall, &prf.f1] {
            close(m.per_class[0], 0.5);
            close(m.per_class[1], 2.0 / 3.0);
            close(m.macro_avg, 7.0 / 12.0);
            close(m.weighted, 0.6);
            close(m.micro, 0.6);
        }
        close(top_k_accuracy(&y_true, &scores, 2, 1).unwrap(), 0.6);
        close(top_k_accuracy(&y_true, &scores, 2, 2).unwrap(), 1.0);
    }

    /// 3 classes; class 2 is never true and never predicted, class 1 is never predicted.
    ///
    /// y_true = [0, 0, 1], y_pred = [0, 0, 0]
    /// class 0: tp 2, pred 3, true 2 -> P 2/3, R 1, F1 = 4/5
    /// class 1: tp 0, pred 0, true 1 -> P 0 (0/0), R 0, F1 0
    /// class 2: nothing              -> 0, 0, 0 (still counted in macro)
    /// macro P = 2/9, macro R = 1/3, macro F1 = 4/15
    /// weighted P = (2·2/3)/3 = 4/9, R = 2/3, F1 = (2·4/5)/3 = 8/15; micro = 2/3
    #[test]
    fn zero_division_and_absent_class() {
        let prf = precision_recall_f1(&[0, 0, 1], &[0, 0, 0], 3).unwrap();
        close(prf.precision.per_class[0], 2.0 / 3.0);
        close(prf.f1.per_class[0], 0.8);
        assert_eq!(prf.precision.per_class[1..], [0.0, 0.0]);
        close(prf.precision.macro_avg, 2.0 / 9.0);
        close(prf.recall.macro_avg, 1.0 / 3.0);
        close(prf.f1.macro_avg, 4.0 / 15.0);
        close(prf.precision.weighted, 4.0 / 9.0);
        close(prf.recall.weighted, 2.0 / 3.0);
        close(prf.f1.weighted, 8.0 / 15.0);
        for m in [&prf.precision, &prf.recall, &prf.f1] {
            close(m.micro, 2.0 / 3.0);
        }
        assert_eq!(prf.support, vec![2, 1, 0]);
    }

    #[test]
    fn ties_rank_like_sklearn() {
        // All-equal row: argmax says class 0, sklearn's reversed stable argsort ranks class 2
        // first, then 1, then 0.
        let scores = [0.25f32, 0.25, 0.25, 0.25];
        assert_eq!(argmax_predictions(&scores, 4).unwrap(), vec![0]);
        close(top_k_accuracy(&[0], &scores, 4, 1).unwrap(), 0.0);
        close(top_k_accuracy(&[3], &scores, 4, 1).unwrap(), 1.0);
        close(top_k_accuracy(&[0], &scores, 4, 3).unwrap(), 0.0);
        close(top_k_accuracy(&[1], &scores, 4, 3).unwrap(), 1.0);
        // A strictly higher score still wins over index order.
        let scores = [0.4f32, 0.3, 0.3];
        close(top_k_accuracy(&[0], &scores, 3, 1).unwrap(), 1.0);
        close(top_k_accuracy(&[1], &scores, 3, 2).unwrap(), 0.0);
        close(top_k_accuracy(&[2], &scores, 3, 2).unwrap(), 1.0);
    }

    #[test]
    fn k_at_least_num_classes_is_perfect() {
        let scores = [0.1f32, 0.2, 0.7, 0.9, 0.05, 0.05];
        close(top_k_accuracy(&[0, 1], &scores, 3, 3).unwrap(), 1.0);
        close(top_k_accuracy(&[0, 1], &scores, 3, 5).unwrap(), 1.0);
        close(top_k_accuracy(&[0, 1], &scores, 3, 1).unwrap(), 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            validate_scores(&[], &[], 3),
            Err(EvalError::Empty)
        ));
        assert!(matches!(
            validate_scores(&[0], &[1.0], 0),
            Err(EvalError::NoClasses)
        ));
        assert!(matches!(
            validate_scores(&[0, 1], &[0.5, 0.5, 0.5], 2),
            Err(EvalError::ScoresShape {
                len: 3,
                expected: 4,
                ..
            })
        ));
        assert!(matches!(
            validate_scores(&[0, 2], &[0.5; 4], 2),
            Err(EvalError::LabelOutOfRange {
                index: 1,
                label: 2,
                ..
            })
        ));
        assert!(matches!(
            validate_scores(&[0, 1], &[0.5, 0.5, f32::NAN, 0.5], 2),
            Err(EvalError::NonFiniteScore {
                sample: 1,
                class: 0,
                ..
            })
        ));
        assert!(matches!(
            top_k_accuracy(&[0], &[0.5, 0.5], 2, 0),
            Err(EvalError::InvalidK(0))
        ));
        assert!(matches!(
            confusion_matrix(&[0, 1], &[0], 2),
            Err(EvalError::LengthMismatch { .. })
        ));
        assert!(matches!(
            confusion_matrix(&[0, 1], &[0, 5], 2),
            Err(EvalError::LabelOutOfRange {
                what: "predicted label",
                ..
            })
        ));
        assert!(matches!(
            argmax_predictions(&[0.1, 0.2, 0.3], 2),
            Err(EvalError::ScoresShape { .. })
        ));
        assert!(matches!(
            PrecisionRecallF1::from_confusion(&[vec![0, 0], vec![0, 0]]),
            Err(EvalError::Empty)
        ));
        assert!(matches!(
            PrecisionRecallF1::from_confusion(&[vec![1, 0], vec![0]]),
            Err(EvalError::LengthMismatch { .. })
        ));
        // Huge sizes must not overflow into a panic.
        assert!(matches!(
            validate_scores(&[0, 0], &[0.0], usize::MAX),
            Err(EvalError::ScoresShape { .. })
        ));
    }
}

/// The `k` highest-scoring classes of one row, best first; ties rank the lower index first
/// (a stable sort, as `predict` lists them). `k` larger than the row gives the whole row.
pub fn top_k_classes(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&i, &j| row[j].total_cmp(&row[i]).then(i.cmp(&j)));
    order.truncate(k);
    order
}

/// Mean negative log-likelihood of the true labels under row-major `N × K` probabilities
/// (sklearn's `log_loss` on one-hot targets), with probabilities clipped at 1e-12 so a
/// confident mistake costs ~27.6 instead of infinity.
pub fn log_loss(labels: &[usize], probs: &[f32], num_classes: usize) -> Result<f64> {
    validate_scores(labels, probs, num_classes)?;
    let nll: f64 = labels
        .iter()
        .zip(probs.chunks_exact(num_classes))
        .map(|(&y, row)| -(f64::from(row[y].max(1e-12))).ln())
        .sum();
    Ok(nll / labels.len() as f64)
}
