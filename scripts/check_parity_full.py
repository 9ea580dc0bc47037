#!/usr/bin/env python3
"""Developer-only full-size parity (not CI): writes timm/torchvision fixtures for full-size
default variants into the git-ignored folder .parity/<name>/ with ../shared/tools/make_parity.py,
then runs the ignored Rust tests that compare kestrel's logits against them (every test whose
name contains `full_parity`: tests/full_parity.rs checks every registered model with a fixture,
tests/full_parity_mobilenet_shufflenet_vgg.rs the torchvision `tv_*` folders, and
tests/z2_full_parity.rs the attention ResNets, EfficientNet and RegNet).

  python3 scripts/check_parity_full.py [NAME ...] [--parity-tool PATH] [--no-test]
  (or, once .parity/ exists) cargo test --release -p kestrel-models -- --ignored full_parity --nocapture

Inputs are 224 px, each model's pretrained_cfg default as make_parity.py reads it.
"""
import argparse, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, ".parity")

FULL = [
    # ResNet / ResNeXt
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    # channel attention ResNets
    "seresnet50",
    "seresnext50_32x4d",
    # MobileNet (timm)
    "mobilenetv2_100",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "mobilenetv1_100",
    # torchvision ShuffleNetV2, AlexNet, VGG (folders tv_<name>)
    "tv:shufflenet_v2_x1_0",
    "tv:alexnet",
    "tv:vgg11_bn",
    # EfficientNet
    "efficientnet_b0",
    "tf_efficientnet_b0",
    "efficientnet_lite0",
    "tf_efficientnet_lite0",
    # RegNet
    "regnetx_002",
    "regnety_032",
    # ConvNeXt
    "convnext_atto",
    "convnext_tiny",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="make_parity.py names (default: every name in FULL)")
    ap.add_argument("--parity-tool", default=os.path.join(ROOT, "..", "shared", "tools", "make_parity.py"))
    ap.add_argument("--no-test", action="store_true", help="only write the fixtures")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in args.names or FULL:
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT])
    if not args.no_test:
        subprocess.check_call(["cargo", "test", "--release", "-p", "kestrel-models", "--", "--ignored",
                               "full_parity", "--nocapture"], cwd=ROOT)


if __name__ == "__main__":
    main()
