#!/usr/bin/env python3
"""Developer-only full-size parity: writes timm fixtures for the default variants into the
git-ignored .parity/ folder with ../shared/tools/make_parity.py, then runs the ignored Rust test
crates/kestrel-models/tests/full_parity.rs, which compares every model that has a fixture.

Usage: python3 scripts/check_parity_full.py [NAME ...] [--parity-tool PATH] [--no-test]
"""
import argparse, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Full-size default variants per family (224 px, batch 2 input from make_parity.py).
MODELS = [
    "resnet18", "resnet50", "resnext50_32x4d",
    "convnext_atto", "convnext_tiny",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=MODELS)
    ap.add_argument("--parity-tool", default=os.path.join(ROOT, "..", "shared", "tools", "make_parity.py"))
    ap.add_argument("--no-test", action="store_true")
    args = ap.parse_args()
    out = os.path.join(ROOT, ".parity")
    os.makedirs(out, exist_ok=True)
    for name in args.names:
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", out])
    if not args.no_test:
        subprocess.check_call(["cargo", "test", "--release", "-p", "kestrel-models", "--test", "full_parity",
                               "--", "--ignored", "full_parity", "--nocapture"], cwd=ROOT)


if __name__ == "__main__":
    main()
