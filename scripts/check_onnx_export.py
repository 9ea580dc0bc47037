#!/usr/bin/env python3
"""Developer check of `kestrel export`: for registry models, exports ONNX, runs it in
onnxruntime (and OpenVINO when installed) and compares with `kestrel forward` (burn) on the
same input. Prints the markdown table of docs/deploy.md.

Weights: timm's (or torchvision's) architecture at random init with BatchNorm statistics and
affine terms perturbed, so folding is exercised; saved as safetensors for both commands.
Needs torch, timm, torchvision, onnx, onnxruntime, safetensors. timm has no T2T-ViT: the
`t2t_vit_*` models are the official repository's (`T2T_REPO=PATH`, a checkout of
yitu-opensource/T2T-ViT, as for scripts/make_t2t_fixtures.py).

    cargo build --release --workspace
    [T2T_REPO=PATH] python3 scripts/check_onnx_export.py [MODEL[:IMG_SIZE] ...]

The int8 QDQ export (kestrel quantize, then export --checkpoint) has its own check, in
onnxruntime and OpenVINO: scripts/check_qdq_export.py.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.numpy import load_file, save_file
from safetensors.torch import save_file as save_torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
KESTREL = ROOT / "target/release/kestrel"
DEFAULT = [
    "resnet18", "resnet50", "seresnet50", "resnext50_32x4d", "mobilenetv2_100",
    "mobilenetv3_large_100", "efficientnet_b0", "tf_efficientnet_b0", "tf_efficientnet_b0:225",
    "efficientnet_lite0", "regnetx_002", "regnety_002", "convnext_atto", "vgg11_bn", "alexnet",
    "vit_small_patch16_224", "deit_tiny_distilled_patch16_224", "swin_tiny_patch4_window7_224",
    "mobilenet_v3_large", "tv_convnext_tiny",
]


def build(name):
    if name.startswith("t2t_vit"):
        repo = os.environ.get("T2T_REPO")
        if not repo:
            raise RuntimeError(f"{name}: set T2T_REPO to a checkout of yitu-opensource/T2T-ViT")
        sys.path.insert(0, repo)
        import models.t2t_vit as t2t
        return getattr(t2t, name)()
    # kestrel's VGG/AlexNet are torchvision's layout, as are its tv_* and torchvision-named models.
    if name.startswith(("tv_", "mobilenet_v", "regnet_", "vgg", "alexnet")):
        import torchvision
        return torchvision.models.get_model(name[3:] if name.startswith("tv_") else name)
    import timm
    return timm.create_model(name, pretrained=False)


def perturbed_state_dict(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return {k: v.contiguous() for k, v in model.state_dict().items() if v.dtype.is_floating_point}


def sh(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}: {r.stderr.strip()}")
    return r.stdout


def check(spec, tmp):
    name, _, size = spec.partition(":")
    weights = tmp / f"{name}.safetensors"
    if not weights.exists():
        save_torch(perturbed_state_dict(build(name).eval()), str(weights))
    onnx_path = tmp / f"{name}.onnx"
    args = [KESTREL, "export", "--model", name, "--weights", weights, "--output", onnx_path]
    if size:
        args += ["--img-size", size]
    sh(*args)
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m, full_check=True)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(1).standard_normal([2, *dims]).astype(np.float32)
    save_file({"input": x}, str(tmp / "x.safetensors"))
    sh(KESTREL, "forward", "--model", name, "--weights", weights,
       "--input", tmp / "x.safetensors", "--output", tmp / "y.safetensors")
    ref = load_file(str(tmp / "y.safetensors"))["logits"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["logits"], {"input": x})
    scale = float(np.abs(ref).max())
    row = {"model": name, "size": f"{dims[1]}×{dims[2]}", "ort": float(np.abs(y - ref).max()) / scale}
    try:
        import openvino as ov
        # f32 inference: OpenVINO's CPU plugin otherwise runs bf16 where the CPU has it
        # (AVX-512 BF16, AMX), ~1e-2 off.
        compiled = ov.Core().compile_model(str(onnx_path), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
        yv = compiled([x])[0]
        row["ov"] = float(np.abs(yv - ref).max()) / scale
    except ImportError:
        pass
    return row


def main():
    specs = sys.argv[1:] or DEFAULT
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        for s in specs:
            try:
                rows.append(check(s, tmp))
                print(f"{s}: ok {rows[-1]}", file=sys.stderr)
            except Exception as e:  # report and go on: the table lists failures too
                rows.append({"model": s, "error": str(e).splitlines()[-1][:120]})
                print(f"{s}: FAILED {e}", file=sys.stderr)
            for f in tmp.glob("*.onnx"):
                f.unlink()
    ov = any("ov" in r for r in rows)
    print(f"| model | input | onnxruntime {ort.__version__}: max abs diff / max\\|logit\\| |"
          + (" OpenVINO |" if ov else ""))
    print("|---|---|---|" + ("---|" if ov else ""))
    bad = 0
    for r in rows:
        if "error" in r:
            bad += 1
            print(f"| {r['model']} | | **failed**: {r['error']} |" + (" |" if ov else ""))
            continue
        bad += r["ort"] > 1e-4
        print(f"| {r['model']} | {r['size']} | {r['ort']:.1e} |" + (f" {r.get('ov', float('nan')):.1e} |" if ov else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
