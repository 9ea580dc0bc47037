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
}

# (timm name, fixture suffix, kwargs, input size) for fixtures whose name is not NAME_tiny, or
# that need another input size. Channel attention (SE/ECA/CBAM) in timm ResNets:
_R = dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], num_classes=10)
EXTRA = [
    ("seresnet18", "_tiny", _R, "3,32,32"),
    ("seresnet50", "_tiny", _R, "3,32,32"),
    ("seresnext50_32x4d", "_tiny", dict(_R, cardinality=4, base_width=16), "3,32,32"),
    ("resnet50", "_eca_tiny", dict(_R, block_args=dict(attn_layer="eca")), "3,32,32"),
    ("resnet50", "_cbam_tiny", dict(_R, block_args=dict(attn_layer="cbam")), "3,32,32"),
    # RegNet: widths 8/16/32/64, depths 1/1/3/1 (RegNetCfg fields are create_model kwargs).
    ("regnetx_002", "_tiny", dict(w0=8, wa=8.0, wm=2.0, depth=6, group_size=8, stem_width=16,
                                  num_classes=10), "3,32,32"),
    ("regnety_002", "_tiny", dict(w0=8, wa=8.0, wm=2.0, depth=6, group_size=8, stem_width=16,
                                  num_classes=10), "3,32,32"),
]

# Shrunk models registered by scripts/timm_tiny.py (timm's generators with small multipliers),
# fixture folder = the name: (name, kwargs, input size).
TIMM_TINY = [
    ("efficientnet_tiny", dict(num_classes=10), "3,32,32"),
    ("tf_efficientnet_tiny", dict(num_classes=10), "3,32,32"),
    ("tf_efficientnet_lite_tiny", dict(num_classes=10), "3,32,32"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity-tool", default=os.path.join(ROOT, "..", "shared", "tools", "make_parity.py"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name, kw in TINY.items():
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT, "--suffix", "_tiny",
                               "--kwargs", json.dumps(kw), "--input-size", "3,32,32"])
    for name, suffix, kw, size in EXTRA:
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT, "--suffix", suffix,
                               "--kwargs", json.dumps(kw), "--input-size", size])
    for name, kw, size in TIMM_TINY:
        subprocess.check_call([sys.executable, os.path.join(HERE, "timm_tiny.py"), args.parity_tool, name,
                               "--out", OUT, "--kwargs", json.dumps(kw), "--input-size", size])
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
