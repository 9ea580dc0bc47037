#!/usr/bin/env python3
"""Full-size parity (developer-only, not CI): writes timm fixtures for full-size default variants
into the git-ignored folder .parity/<name>/ with ../shared/tools/make_parity.py, then runs the
ignored Rust tests that compare kestrel's logits against them:

  python3 scripts/check_parity_full.py [NAME ...]      # default: every name in FULL
  (then) cargo test --release -p kestrel-models -- --ignored full_parity --nocapture

Each entry: timm name -> input size (timm's pretrained_cfg default).
"""
import argparse, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, ".parity")

FULL = {
    # channel attention ResNets
    "seresnet50": "3,224,224",
    "seresnext50_32x4d": "3,224,224",
    # EfficientNet
    "efficientnet_b0": "3,224,224",
    "tf_efficientnet_b0": "3,224,224",
    "efficientnet_lite0": "3,224,224",
    "tf_efficientnet_lite0": "3,224,224",
    # RegNet
    "regnetx_002": "3,224,224",
    "regnety_032": "3,224,224",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--parity-tool", default=os.path.join(ROOT, "..", "shared", "tools", "make_parity.py"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in args.names or FULL:
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT,
                               "--input-size", FULL.get(name, "3,224,224")])
    subprocess.call(["cargo", "test", "--release", "-p", "kestrel-models", "--", "--ignored", "full_parity",
                     "--nocapture"], cwd=ROOT)


if __name__ == "__main__":
    main()
