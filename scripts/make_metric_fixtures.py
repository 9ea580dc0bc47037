#!/usr/bin/env python3
"""Generate scikit-learn reference fixtures for the kestrel-eval metric tests.

Writes crates/kestrel-eval/tests/fixtures/<case>.json. The Rust tests
(crates/kestrel-eval/tests/sklearn_fixtures.rs) only read these committed files, so CI needs no
Python. Re-run after changing a case:

    pip install scikit-learn numpy
    python3 scripts/make_metric_fixtures.py

Every case is seeded, so the output is reproducible for a given numpy / sklearn version.

Fixture layout (all scores are float32 values; the Rust side parses them as f32 exactly):
    name, description, sklearn_version, numpy_version, num_classes, num_samples,
    labels          [N] ints
    scores          [N*K] floats, row-major (class scores / probabilities)
    expected:
      argmax_predictions   numpy argmax(scores, axis=1)
      accuracy             accuracy_score(y_true, y_pred)
      top1_accuracy        top_k_accuracy_score(y_true, scores, k=1, labels=range(K))
      top5_accuracy        top_k_accuracy_score(y_true, scores, k=5, labels=range(K))
      confusion_matrix     confusion_matrix(y_true, y_pred, labels=range(K))
      prfs                 precision_recall_fscore_support(..., labels=range(K), zero_division=0)
                           for average in None / "macro" / "micro" / "weighted"
      classification_report  classification_report(..., labels=range(K), zero_division=0,
                                                    output_dict=True)
"""

import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "crates", "kestrel-eval", "tests", "fixtures")


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def quantize(p, decimals=4):
    """Round to a few decimals and cast to float32: small fixtures, and the exact values both
    sides see. Rounding also creates a few natural ties."""
    return np.round(p, decimals).astype(np.float32)


def correlated_scores(rng, labels, k, signal, decimals=4):
    logits = rng.normal(size=(len(labels), k))
    logits[np.arange(len(labels)), labels] += signal
    return quantize(softmax(logits), decimals)


def case_10class(rng):
    k, n = 10, 500
    labels = rng.integers(0, k, size=n)
    return dict(
        name="multiclass_10",
        description="10 classes, 500 samples, softmaxed random scores correlated with labels",
        labels=labels,
        scores=correlated_scores(rng, labels, k, signal=2.0),
    )


def case_3class(rng):
    k, n = 3, 60
    labels = rng.integers(0, k, size=n)
    return dict(
        name="three_class",
        description="3 classes: top-5 with k >= K must be 1.0",
        labels=labels,
        scores=correlated_scores(rng, labels, k, signal=1.0),
    )


def case_imbalanced(rng):
    # Class 4 never appears in y_true; class 3 is never predicted (its score is capped below
    # every other class); class 0 dominates.
    k, n = 5, 200
    labels = rng.choice([0, 1, 2, 3], size=n, p=[0.7, 0.15, 0.1, 0.05])
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.5
    logits[:, 3] = logits.min(axis=1) - 1.0
    scores = quantize(softmax(logits), 5)
    pred = scores.argmax(axis=1)
    assert not (pred == 3).any() and not (labels == 4).any()
    return dict(
        name="imbalanced_zero_division",
        description=(
            "5 classes, imbalanced; class 3 is never predicted (precision 0/0) and class 4 "
            "never appears in y_true (recall 0/0)"
        ),
        labels=labels,
        scores=scores,
    )


def case_absent_class(rng):
    # Class 2 appears in neither y_true nor y_pred: sklearn still counts it (as 0) in macro
    # averages when labels=range(K), and classification_report shows "micro avg" instead of
    # "accuracy".
    k, n = 4, 40
    labels = rng.choice([0, 1, 3], size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.0
    logits[:, 2] = logits.min(axis=1) - 2.0
    scores = quantize(softmax(logits))
    assert not (scores.argmax(axis=1) == 2).any()
    return dict(
        name="absent_class",
        description="4 classes; class 2 in neither y_true nor y_pred",
        labels=labels,
        scores=scores,
    )


def case_100class(rng):
    k, n = 100, 150
    labels = rng.integers(0, k, size=n)
    return dict(
        name="multiclass_100",
        description="100 classes, 150 samples (many classes without support)",
        labels=labels,
        scores=correlated_scores(rng, labels, k, signal=3.0, decimals=4),
    )


def case_ties(rng):
    # Scores drawn from a handful of levels, so rows hold many exact ties, plus some rows that
    # are entirely uniform. sklearn's top-k ranks ties towards the higher class index while
    # argmax (accuracy) picks the lowest index, so top-1 != accuracy here.
    k, n = 6, 120
    labels = rng.integers(0, k, size=n)
    levels = np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32)
    scores = levels[rng.integers(0, len(levels), size=(n, k))]
    scores[np.arange(n), labels] = np.maximum(
        scores[np.arange(n), labels], levels[rng.integers(1, len(levels), size=n)]
    )
    scores[::7] = np.float32(1.0 / k)
    return dict(
        name="tied_scores",
        description="6 classes, scores from 4 levels with many ties; every 7th row uniform",
        labels=labels,
        scores=scores.astype(np.float32),
    )


def case_binary(rng):
    k, n = 2, 80
    labels = rng.integers(0, k, size=n)
    return dict(
        name="binary",
        description=(
            "2 classes. sklearn's top_k_accuracy_score rejects 2-column scores for binary "
            "y_true, so top-k is not part of this fixture"
        ),
        labels=labels,
        scores=correlated_scores(rng, labels, k, signal=1.0),
        skip_top_k=True,
    )


def to_py(x):
    """numpy scalars/arrays -> plain JSON-able Python values."""
    if isinstance(x, dict):
        return {str(key): to_py(v) for key, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_py(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_py(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def f32_json(v):
    # Shortest repr that round-trips as float32 (the Rust side parses the scores as f32).
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def build(case):
    labels = np.asarray(case["labels"], dtype=np.int64)
    scores = np.asarray(case["scores"], dtype=np.float32)
    n, k = scores.shape
    assert labels.shape == (n,)
    assert np.isfinite(scores).all()
    labels_range = list(range(k))
    y_pred = scores.argmax(axis=1)

    expected = {
        "argmax_predictions": y_pred,
        "accuracy": accuracy_score(labels, y_pred),
        "confusion_matrix": confusion_matrix(labels, y_pred, labels=labels_range),
    }
    if not case.get("skip_top_k"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            expected["top1_accuracy"] = top_k_accuracy_score(
                labels, scores, k=1, labels=labels_range
            )
            expected["top5_accuracy"] = top_k_accuracy_score(
                labels, scores, k=5, labels=labels_range
            )
    else:
        expected["top1_accuracy"] = None
        expected["top5_accuracy"] = None

    prfs = {}
    for average in [None, "macro", "micro", "weighted"]:
        p, r, f, s = precision_recall_fscore_support(
            labels, y_pred, labels=labels_range, average=average, zero_division=0
        )
        prfs[str(average).lower()] = {"precision": p, "recall": r, "f1": f, "support": s}
    expected["prfs"] = prfs
    expected["classification_report"] = classification_report(
        labels, y_pred, labels=labels_range, zero_division=0, output_dict=True
    )
    expected = to_py(expected)

    header = {
        "name": case["name"],
        "description": case["description"],
        "generator": "scripts/make_metric_fixtures.py",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "num_classes": k,
        "num_samples": n,
    }
    # Hand-assembled JSON keeps the big arrays on one line each (small, diff-friendly files).
    parts = [f"  {json.dumps(key)}: {json.dumps(val)}" for key, val in header.items()]
    parts.append(f'  "labels": {json.dumps(labels.tolist(), separators=(",", ":"))}')
    parts.append('  "scores": [' + ",".join(f32_json(v) for v in scores.ravel()) + "]")
    parts.append(f'  "expected": {json.dumps(expected, separators=(",", ":"))}')
    text = "{\n" + ",\n".join(parts) + "\n}\n"

    # Self-check: the file parses back to exactly the values sklearn saw.
    back = json.loads(text)
    assert np.array_equal(np.asarray(back["scores"], dtype=np.float32), scores.ravel())
    return text


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = [case_10class, case_3class, case_imbalanced, case_absent_class, case_100class,
             case_ties, case_binary]
    for seed, make in enumerate(cases):
        case = make(np.random.default_rng(1000 + seed))
        text = build(case)
        path = os.path.join(OUT_DIR, case["name"] + ".json")
        with open(path, "w") as f:
            f.write(text)
        print(f"{path}: {len(text) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
