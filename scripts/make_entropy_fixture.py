#!/usr/bin/env python3
"""Reference thresholds for kestrel's entropy (KL) calibration.

The reference is NVIDIA pytorch-quantization's `_compute_amax_entropy`
(pytorch_quantization/calib/histogram.py, the TensorRT algorithm), copied here with its
semantics (bin 0 replaced by bin 1, levels by np.digitize over linspace(0, i, nbins + 1),
empty bins excluded from Q, outliers folded into P's last bin, scipy's KL, the last argmin,
the threshold at the bin edge). It runs on synthetic histograms of a ReLU-like tensor (a spike
of zeros, a half-normal bulk, a far tail) and a signed-like |x| one, and writes the histograms
and the chosen bin to crates/kestrel-deploy/tests/fixtures/entropy/thresholds.json.
"""
import json
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import entropy

OUT = Path(__file__).resolve().parents[1] / "crates/kestrel-deploy/tests/fixtures/entropy"


def _normalize(d):
    s = np.sum(d)
    if s != 0:
        d /= s


def compute_amax_bin(calib_hist, nbins, start_bin):
    bins = np.array(calib_hist, dtype=np.float64)
    bins[0] = bins[1]
    divergences, arguments = [], []
    new_density_counts = np.zeros(nbins, dtype=np.float64)
    for i in range(start_bin, len(bins) + 1):
        new_density_counts.fill(0)
        space = np.linspace(0, i, num=nbins + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        for idx, d in enumerate(digitized):
            if d != -1:
                new_density_counts[d] += bins[idx]
        counter = Counter(digitized)
        for key, val in counter.items():
            if key != -1:
                new_density_counts[key] = new_density_counts[key] / val
        new_density = np.zeros(i, dtype=np.float64)
        for idx, d in enumerate(digitized):
            if d != -1:
                new_density[idx] = new_density_counts[d]
        _normalize(new_density)
        reference = np.array(bins[:i])
        reference[-1] += np.sum(bins[i:])
        _normalize(reference)
        divergences.append(entropy(reference, new_density))
        arguments.append(i)
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    return int(arguments[last_argmin])


def main():
    rng = np.random.default_rng(0)
    cases = []
    # ReLU output: 60% exact zeros, a half-normal bulk, a few far outliers.
    x = np.concatenate([
        np.zeros(60_000),
        np.abs(rng.normal(0, 1.0, 40_000)),
        rng.uniform(10, 100, 20),
    ])
    # |x| of a signed tensor: Laplace bulk with outliers.
    y = np.concatenate([np.abs(rng.laplace(0, 0.5, 50_000)), rng.uniform(20, 60, 10)])
    for name, v, levels in [("relu", x, 128), ("signed_abs", y, 128), ("relu_64", x, 64)]:
        hist, _ = np.histogram(np.abs(v), bins=2048, range=(0, np.abs(v).max()))
        start = 128
        cases.append({
            "name": name,
            "hist": [int(h) for h in hist],
            "levels": levels,
            "start_bin": start,
            "bin": compute_amax_bin(hist, levels, start),
        })
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "thresholds.json").write_text(json.dumps(cases))
    for c in cases:
        print(c["name"], c["levels"], c["bin"])


if __name__ == "__main__":
    main()
