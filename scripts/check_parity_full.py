#!/usr/bin/env python3
"""Developer-only full-size parity (not CI): writes timm/torchvision fixtures for full-size
default variants into the git-ignored folder .parity/<name>/ with scripts/make_parity.py,
then runs the ignored Rust tests that compare kestrel's logits against them (every test whose
name contains `full_parity`: tests/full_parity.rs checks every registered model with a fixture,
tests/full_parity_mobilenet_shufflenet_vgg.rs the torchvision `tv_*` folders, and
tests/z2_full_parity.rs the attention ResNets, EfficientNet and RegNet, and
tests/torchvision_parity.rs the torchvision MobileNetV2/V3, EfficientNet, RegNet and ConvNeXt
checkpoints, `tv_*` folders, loaded through the torchvision key-layout translation).

  python3 scripts/check_parity_full.py [NAME ...] [--largest] [--parity-tool PATH] [--no-test]
  (or, once .parity/ exists) cargo test --release --workspace -- --ignored full_parity --nocapture

Inputs are 224 px, each model's pretrained_cfg default as make_parity.py reads it. T2T-ViT
(not in timm) gets its full-size fixture from `scripts/make_t2t_fixtures.py --t2t-repo PATH
--full` (.parity/t2t_vit_14/), which the same test then checks.
"""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, ".parity")

FULL = [
    # ResNet / ResNeXt
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    # ResNet-D (deep stem, average-pool shortcut), the tiered stem with SE, Wide ResNet
    "resnet50d",
    "seresnext26t_32x4d",
    "wide_resnet50_2",
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
    # ViT, DeiT (distilled), Swin
    "vit_small_patch16_224",
    "deit_small_distilled_patch16_224",
    "swin_tiny_patch4_window7_224",
    # CoAtNet, MaxViT (timm maxxvit.py): the default of each, and the rel-pos MLP variant
    "coatnet_0_rw_224",
    "maxvit_tiny_tf_224",
    "maxvit_rmlp_pico_rw_256",
    # torchvision layouts of timm-built families (folders tv_<name>; tests/torchvision_parity.rs)
    "tv:mobilenet_v2",
    "tv:mobilenet_v3_large",
    "tv:efficientnet_b0",
    "tv:regnet_y_400mf",
    "tv:convnext_tiny",
]

# The largest registered variant of each family (`--largest`): the same code paths as FULL at
# their widest and deepest, where accumulated float error is largest.
LARGEST = [
    "resnet152",
    "resnext101_32x8d",
    "seresnext101_32x8d",
    "resnet101d",
    "wide_resnet101_2",
    "mobilenetv2_140",
    "tv:shufflenet_v2_x2_0",
    "tv:vgg19_bn",
    "efficientnet_b7",
    "tf_efficientnet_b7",
    "tf_efficientnet_lite4",
    "regnetx_160",
    "regnety_160",
    "convnext_large",
    "vit_large_patch16_224",
    "swin_base_patch4_window7_224",
    "tv:efficientnet_b7",
    "tv:regnet_y_16gf",
    "tv:convnext_large",
]

# Full-size models that need scripts/tiny_models.py's builders: (name, suffix, kwargs).
# torchvision's convnext_tiny starts its layer scales at 1e-6, which make_parity.py leaves alone,
# so its blocks barely reach the logits; tv:convnext_custom at convnext_tiny's depths and widths
# draws them from U(0.1, 0.5) (folder tv_convnext_custom_full_ls).
WRAPPED = [
    ("tv:convnext_custom", "_full_ls", dict(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768])),
]


def folder_of(name):
    return name.replace("tv:", "tv_", 1) if name.startswith("tv:") else name


def write_fp64_reference(name):
    """Writes .parity/<folder>/reference_fp64.safetensors: `logits` of the same model and weights
    evaluated in float64 (stored as float32). PyTorch's own float32 logits drift from these by more
    than the 1e-4 bar in the deepest models (resnet152: 3.6e-4), so the full-size tests compare
    against this reference when it exists, and print the float32 drift beside it."""
    import torch, timm, torchvision
    from safetensors.torch import load_file, save_file
    d = os.path.join(OUT, folder_of(name))
    if not os.path.exists(os.path.join(d, "io.safetensors")):
        print(f"{name:34} no fixture in .parity/, skipped", flush=True)
        return
    if name.startswith("tv:"):
        model = torchvision.models.get_model(name[3:], weights=None)
    else:
        model = timm.create_model(name, pretrained=False)
    model.load_state_dict(load_file(os.path.join(d, "weights.safetensors")), strict=True)
    model.eval().double()
    io = load_file(os.path.join(d, "io.safetensors"))
    with torch.no_grad():
        y64 = model(io["input"].double())
    ref32 = io["logits"].double()
    drift = ((ref32 - y64).abs().max() / y64.abs().max()).item()
    save_file({"logits": y64.float().contiguous()}, os.path.join(d, "reference_fp64.safetensors"))
    print(f"{name:34} float32 reference drift from float64: {drift:.2e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="make_parity.py names, or NAME+SUFFIX of a WRAPPED entry "
                    "(default: everything in FULL and WRAPPED)")
    ap.add_argument("--parity-tool", default=os.path.join(HERE, "make_parity.py"))
    ap.add_argument("--no-test", action="store_true", help="only write the fixtures")
    ap.add_argument("--fp64-only", action="store_true",
                    help="only (re)write reference_fp64.safetensors for existing fixtures")
    ap.add_argument("--largest", action="store_true",
                    help="the largest variant of each family (LARGEST) instead of FULL")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    wrapped = {name + suffix for name, suffix, _ in WRAPPED}
    for name in args.names or (LARGEST if args.largest else FULL):
        if name in wrapped:
            continue
        if not args.fp64_only:
            subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT])
        write_fp64_reference(name)
    if args.fp64_only:
        return
    for name, suffix, kw in WRAPPED:
        if (args.names or args.largest) and name + suffix not in args.names:
            continue
        subprocess.check_call([sys.executable, os.path.join(HERE, "tiny_models.py"), name,
                               "--parity-tool", args.parity_tool, "--out", OUT, "--suffix", suffix,
                               "--kwargs", json.dumps(kw), "--input-size", "3,224,224"])
    if not args.no_test:
        # --workspace, not -p: -p unifies burn's features differently and rebuilds it.
        subprocess.check_call(["cargo", "test", "--release", "--workspace", "--", "--ignored",
                               "full_parity", "--nocapture"], cwd=ROOT)


if __name__ == "__main__":
    main()
