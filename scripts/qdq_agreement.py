#!/usr/bin/env python3
"""Top-1 agreement of a `kestrel quantize` folder's QDQ ONNX export with kestrel's own int8
engine, on a folder of real images: the issue's ">= 99%" check of the QDQ export at scale.

`kestrel export --checkpoint INT8_DIR` writes the QDQ file; every image (timm's eval transform
of the model the folder names) goes as the same tensor to `kestrel forward --checkpoint
INT8_DIR` (the int8 engine) and to onnxruntime, with its default graph optimizations (it fuses
DequantizeLinear -> Conv -> QuantizeLinear into its own integer kernels) and with none (the
QDQ graph exactly as written), and, when the `openvino` package is present, to OpenVINO's CPU
plugin (f32 precision hint). Prints one JSON object: per runtime, the images whose top-1
equals kestrel int8's (all of them, and those where kestrel's top-1 probability is >= 0.3),
and the largest |logit difference| / max|kestrel logit| over a batch.

A QDQ network amplifies float-rounding differences: a value that lands on the other side of a
rounding boundary of a QuantizeLinear moves by one quantum, and so on through every layer.
`ort_opt_vs_plain` (onnxruntime against itself, optimized and not, on the same file) is the
floor of what two correct implementations reach on the same images.

Usage: cargo build --release --workspace
       python3 scripts/qdq_agreement.py --int8 DIR --images DIR [--limit 2000] [--batch 100]
Needs torch, timm, onnx, onnxruntime, safetensors, Pillow (openvino optional).
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort
import timm
import torch
from PIL import Image
from safetensors.numpy import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--int8", required=True, help="a `kestrel quantize` output folder")
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    report = json.load(open(os.path.join(a.int8, "quantize_report.json")))
    images = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.images) for f in fs
                    if f.lower().endswith((".jpg", ".jpeg", ".png")))[: a.limit]
    if not images:
        sys.exit(f"no images under {a.images}")
    model = timm.create_model(report["model"], pretrained=False)
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    tmp = tempfile.mkdtemp()
    onnx_path = os.path.join(tmp, "int8.onnx")
    subprocess.run([a.kestrel, "export", "--checkpoint", a.int8, "--output", onnx_path],
                   check=True, capture_output=True)

    sessions = {}
    for name, level in (("ort", ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                        ("ort_plain", ort.GraphOptimizationLevel.ORT_DISABLE_ALL)):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        sessions[name] = lambda x, s=s: s.run(["logits"], {"input": x})[0]
    try:
        import openvino as ov
        compiled = ov.Core().compile_model(onnx_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        sessions["openvino"] = lambda x: compiled([x])[0]
    except ImportError:
        pass

    keys = list(sessions) + ["ort_opt_vs_plain"]
    agree = {k: 0 for k in keys}
    sure_agree = {k: 0 for k in keys}
    worst = {k: 0.0 for k in keys}
    sure_total = 0
    for start in range(0, len(images), a.batch):
        files = images[start:start + a.batch]
        x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files]).numpy()
        xin, yout = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "y.safetensors")
        save_file({"input": x}, xin)
        subprocess.run([a.kestrel, "forward", "--checkpoint", a.int8, "--input", xin,
                        "--output", yout], check=True, capture_output=True)
        ref = load_file(yout)["logits"]
        p = np.exp(ref - ref.max(1, keepdims=True))
        sure = (p.max(1) / p.sum(1)) >= 0.3
        sure_total += int(sure.sum())
        outs = {k: run(x) for k, run in sessions.items()}
        pairs = [(k, y, ref) for k, y in outs.items()]
        pairs.append(("ort_opt_vs_plain", outs["ort"], outs["ort_plain"]))
        for k, y, r in pairs:
            same = y.argmax(1) == r.argmax(1)
            agree[k] += int(same.sum())
            sure_agree[k] += int((same & sure).sum())
            worst[k] = max(worst[k], float(np.abs(y - r).max() / np.abs(r).max()))
        print(f"{start + len(files)}/{len(images)}", file=sys.stderr)
    out = {"int8": a.int8, "model": report["model"], "images": len(images),
           "act_bits": report.get("act_bits"), "int8_prob_ge_0.3": sure_total}
    for k in keys:
        out[k] = {"top1_agree": agree[k], "agreement": agree[k] / len(images),
                  "agreement_prob_ge_0.3": sure_agree[k] / max(sure_total, 1),
                  "max_rel_logit_err": worst[k]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
