#!/usr/bin/env python3
"""Developer check of the int8 QDQ export in onnxruntime and OpenVINO: for each model,
`kestrel quantize` (minmax) on the first --calib-images photos of a folder, `kestrel export
--checkpoint` of the int8 folder, and the file run in onnxruntime (default optimizations, and
none: the QDQ semantics exactly) and in OpenVINO's CPU plugin (f32 precision hint) on the next
--images photos, against `kestrel forward --checkpoint` (kestrel's int8 engine). Prints the
markdown table of docs/deploy.md ("OpenVINO on the QDQ files"); exits 1 when OpenVINO's top-1
agrees with kestrel's int8 on fewer images than onnxruntime's does, less --slack.

Weights: timm's architecture at random init (torch seed 0), with its BatchNorm statistics and
affine terms perturbed as in scripts/check_onnx_export.py ("perturbed BN": every folded conv
bias non-zero), and as initialised ("default BN": folded biases all zero, the case OpenVINO
2026.4.1 ran wrongly before kestrel's encoding of it; see scripts/openvino_qdq_repro.py). Photos: --photos DIR, or made with scripts/make_bench_photos.py
(needs scikit-image). Inputs: each model's timm eval transform. Needs torch, timm, onnx,
onnxruntime, openvino, safetensors, Pillow.

    cargo build --release --workspace
    python3 scripts/check_qdq_export.py [--photos DIR] [MODEL ...]   # default resnet50 mobilenetv2_100
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from safetensors.numpy import load_file, save_file
from safetensors.torch import save_file as save_torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_onnx_export import KESTREL, ROOT, build, perturbed_state_dict, sh  # noqa: E402


def photos(folder):
    exts = (".jpg", ".jpeg", ".png")
    return sorted(p for p in pathlib.Path(folder).rglob("*") if p.suffix.lower() in exts)


def top1(a, b):
    return int((a.argmax(1) == b.argmax(1)).sum())


def rel(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def check(name, bn, photo_dir, n_calib, n_eval, tmp):
    import openvino as ov
    import timm

    torch.manual_seed(0)
    model = build(name).eval()
    weights = tmp / f"{name}_{bn}.safetensors"
    if bn == "perturbed":
        state = perturbed_state_dict(model)
    else:
        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if v.dtype.is_floating_point}
    save_torch(state, str(weights))
    qdir, onnx_path = tmp / f"int8_{name}_{bn}", tmp / f"{name}_{bn}.int8.onnx"
    sh(KESTREL, "quantize", "--model", name, "--weights", weights, "--calib", photo_dir,
       "--calib-images", n_calib, "--method", "minmax", "--output", qdir)
    sh(KESTREL, "export", "--checkpoint", qdir, "--output", onnx_path)
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)

    # The eval photos: the first n_eval the calibration did not use.
    report = json.loads((qdir / "quantize_report.json").read_text())
    calib = {str(pathlib.Path(photo_dir) / f) for f in report["calib_files"]}
    files = [p for p in photos(photo_dir) if str(p) not in calib][:n_eval]
    if len(files) < n_eval:
        raise RuntimeError(f"{photo_dir}: {len(files)} photos besides the calibration's, want {n_eval}")
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files]).numpy()
    save_file({"input": x}, str(tmp / "x.safetensors"))
    sh(KESTREL, "forward", "--checkpoint", qdir, "--input", tmp / "x.safetensors",
       "--output", tmp / "y.safetensors")
    ref = load_file(str(tmp / "y.safetensors"))["logits"]

    def ort_run(optimize):
        so = ort.SessionOptions()
        if not optimize:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        return s.run(["logits"], {"input": x})[0]

    # f32 inference: OpenVINO's CPU plugin otherwise runs bf16 where the CPU has it.
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    outs = {"ort": ort_run(True), "ort_plain": ort_run(False), "ov": compiled([x])[0]}
    row = {"model": name, "bn": bn, "images": len(x), "calib": report["calib_images"],
           "int8_convs": f"{report['int8_convs']}/{report['convs']}",
           "onnx_bytes": onnx_path.stat().st_size}
    for k, y in outs.items():
        row[f"{k}_top1"], row[f"{k}_rel"] = top1(y, ref), rel(y, ref)
    row["ov_vs_ort_top1"] = top1(outs["ov"], outs["ort"])
    row["ov_vs_ort_plain_rel"] = rel(outs["ov"], outs["ort_plain"])
    return row


def main():
    import openvino as ov
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["resnet50", "mobilenetv2_100"])
    ap.add_argument("--bn", nargs="+", default=["perturbed", "default"],
                    choices=["perturbed", "default"])
    ap.add_argument("--photos", help="photo folder (default: 96 made by make_bench_photos.py)")
    ap.add_argument("--calib-images", type=int, default=32)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--slack", type=int, default=2,
                    help="top-1 agreements OpenVINO may fall short of onnxruntime's by")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        photo_dir = a.photos
        if not photo_dir:
            photo_dir = tmp / "photos"
            subprocess.run([sys.executable, str(ROOT / "scripts/make_bench_photos.py"),
                            str(photo_dir), "--count", str(a.calib_images + a.images)],
                           check=True, stdout=subprocess.DEVNULL)
        rows = []
        for m in a.models:
            for bn in a.bn:
                rows.append(check(m, bn, photo_dir, a.calib_images, a.images, tmp))
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"| model | BatchNorm | int8 convs | top-1 with kestrel int8: onnxruntime {ort.__version__} "
          f"/ no optimizations / OpenVINO {ov.__version__.split('-')[0]} | max\\|Δ\\|/max\\|logit\\| "
          "(same order) | OpenVINO vs onnxruntime top-1 |")
    print("|---|---|---|---|---|---|")
    bad = 0
    for r in rows:
        n = r["images"]
        print(f"| {r['model']} | {r['bn']} | {r['int8_convs']} | {r['ort_top1']}/{n} / {r['ort_plain_top1']}/{n} "
              f"/ {r['ov_top1']}/{n} | {r['ort_rel']:.1%} / {r['ort_plain_rel']:.1%} / "
              f"{r['ov_rel']:.1%} | {r['ov_vs_ort_top1']}/{n} |")
        bad += r["ov_top1"] + a.slack < r["ort_top1"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
