#!/usr/bin/env python3
"""Writes crates/kestrel-deploy/tests/fixtures/onnx/NAME.json: onnxruntime's logits for kestrel's
ONNX export of kestrel-models' tiny timm fixtures, on each fixture's own input; and NAME.qdq.json:
onnxruntime's logits for the QDQ export of the same model quantized to int8 (the test's
calibration), on the test's own input (written beside the file as NAME.qdq_input.f32).

The ONNX files come from the Rust test itself (KESTREL_ONNX_WRITE_DIR makes it write them), so
the fixture is exactly what `cargo test --release --workspace --test deploy_tests -- onnx_export` exports. Needs onnxruntime, onnx,
numpy and safetensors (pip).

    python3 scripts/make_onnx_fixtures.py
"""
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = [
    "resnet18_tiny", "tf_efficientnet_tiny", "convnext_atto_tiny",
    "vit_tiny_patch16_224_tiny", "deit_tiny_distilled_patch16_224_tiny",
    "swin_tiny_patch4_window7_224_tiny", "maxvit_tiny_tf_224_tiny", "coatnet_0_rw_224_tiny",
    "t2t_vit_t_official_tiny", "t2t_vit_official_tiny", "resnet50_cbam_tiny",
]
QDQ_MODELS = [
    "resnet18_tiny", "tf_efficientnet_tiny", "mobilenetv2_tiny", "mobilenetv2_tiny_zero_bias",
]
OUT = ROOT / "crates/kestrel-deploy/tests/fixtures/onnx"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KESTREL_ONNX_WRITE_DIR=tmp)
        # The test skips the logit comparison for fixtures that do not exist yet.
        for m in MODELS:
            (OUT / f"{m}.json").unlink(missing_ok=True)
        for m in QDQ_MODELS:
            (OUT / f"{m}.qdq.json").unlink(missing_ok=True)
        subprocess.run(
            ["cargo", "test", "--release", "--workspace", "--test", "deploy_tests", "--", "onnx_export::"],
            cwd=ROOT, env=env, check=True,
        )
        for m in MODELS:
            path = pathlib.Path(tmp) / f"{m}.onnx"
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            io = load_file(str(ROOT / f"crates/kestrel-models/tests/fixtures/{m}/io.safetensors"))
            x = io["input"]
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (y,) = sess.run(["logits"], {"input": x.astype(np.float32)})
            # The export must compute the model: onnxruntime against the fixture's PyTorch
            # logits (timm / the official code), at the tests' bar.
            ref = io["logits"]
            err = float(np.abs(y - ref).max())
            bar = 1e-4 * float(np.abs(ref).max())
            assert err <= bar, f"{m}: onnxruntime vs PyTorch max abs diff {err} > {bar}"
            fixture = {
                "model": m,
                "onnxruntime": ort.__version__,
                "onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "input": f"crates/kestrel-models/tests/fixtures/{m}/io.safetensors",
                "shape": list(y.shape),
                "logits": [float(v) for v in y.reshape(-1)],
            }
            (OUT / f"{m}.json").write_text(json.dumps(fixture, indent=1) + "\n")
            print(f"{m}: logits {y.shape}, max|logit| {np.abs(y).max():.4g}, vs PyTorch {err:.3g}")
        for m in QDQ_MODELS:
            path = pathlib.Path(tmp) / f"{m}.qdq.onnx"
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            x = np.fromfile(pathlib.Path(tmp) / f"{m}.qdq_input.f32", "<f4").reshape(8, 3, 32, 32)
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (y,) = sess.run(["logits"], {"input": x})
            # The graph's own semantics, without onnxruntime's QDQ rewrites (its default
            # optimizations quantize the conv biases to int32, which moves a few activations by
            # one quantum).
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            plain = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            (y0,) = plain.run(["logits"], {"input": x})
            fixture = {
                "model": m,
                "onnxruntime": ort.__version__,
                "onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "input": "lcg_images(8, 3, 32, 32, seed 7) in tests/onnx_export.rs",
                "shape": list(y.shape),
                "logits": [float(v) for v in y.reshape(-1)],
                "logits_unoptimized": [float(v) for v in y0.reshape(-1)],
            }
            (OUT / f"{m}.qdq.json").write_text(json.dumps(fixture, indent=1) + "\n")
            print(f"{m} (QDQ): logits {y.shape}, max|logit| {np.abs(y).max():.4g}")


if __name__ == "__main__":
    main()
