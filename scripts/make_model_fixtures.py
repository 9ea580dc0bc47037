#!/usr/bin/env python3
"""Regenerate the small parity fixtures committed under crates/kestrel-models/tests/fixtures/.

Needs torch, torchvision, timm and safetensors (developer machines only; CI reads the committed
files). Each fixture is a shrunk timm model (few channels, one block per stage, 10 classes, 32 px)
built by ../shared/tools/make_parity.py, which perturbs BN statistics and zero-initialised
branches so that a wrong block cannot match. For weight-import tests we also save one model's
state_dict as PyTorch .pth files (zip and legacy formats, bare and nested under 'state_dict').

Usage: python3 scripts/make_model_fixtures.py [--parity-tool ../shared/tools/make_parity.py]
"""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "crates", "kestrel-models", "tests", "fixtures")

# name -> timm kwargs. Widths shrink to 8..64 so each fixture stays a few hundred KB.
TINY = {
    "resnet18": dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8, num_classes=10),
    "resnet50": dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8, num_classes=10),
    "resnext50_32x4d": dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8,
                            cardinality=4, base_width=16, num_classes=10),
    # ConvNeXt: atto stands for the conv-MLP variants (atto..nano), tiny for the Linear-MLP ones.
    "convnext_atto": dict(depths=[1, 1, 2, 1], dims=[8, 16, 32, 64], num_classes=10),
    "convnext_tiny": dict(depths=[1, 1, 2, 1], dims=[8, 16, 32, 64], num_classes=10),
}
# Input size per fixture where it is not 3,32,32 (ConvNeXt's 4x stem leaves 1x1 at 32 px).
INPUT_SIZE = {"convnext_atto": "3,64,64", "convnext_tiny": "3,64,64"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity-tool", default=os.path.join(ROOT, "..", "shared", "tools", "make_parity.py"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name, kw in TINY.items():
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT, "--suffix", "_tiny",
                               "--kwargs", json.dumps(kw), "--input-size", INPUT_SIZE.get(name, "3,32,32")])
    # PyTorch checkpoint formats, from the resnet18 fixture's weights.
    import torch
    from safetensors.torch import load_file
    sd = load_file(os.path.join(OUT, "resnet18_tiny", "weights.safetensors"))
    pth = os.path.join(OUT, "resnet18_tiny")
    torch.save(sd, os.path.join(pth, "weights_zip.pth"))
    torch.save({"state_dict": sd, "epoch": 3}, os.path.join(pth, "weights_nested.pth"))
    torch.save({"model": sd}, os.path.join(pth, "weights_legacy.pth"), _use_new_zipfile_serialization=False)
    print("fixtures written to", OUT)


if __name__ == "__main__":
    main()
