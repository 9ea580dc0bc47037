#!/usr/bin/env python3
"""Regenerate the small parity fixtures committed under crates/kestrel-models/tests/fixtures/.

Needs torch, torchvision, timm and safetensors (developer machines only; CI reads the committed
files). Each fixture is a shrunk timm model (few channels, one block per stage, 10 classes, 32 px)
built by scripts/make_parity.py, which perturbs BN statistics and zero-initialised
branches so that a wrong block cannot match. For weight-import tests we also save one model's
state_dict as PyTorch .pth files (zip and legacy formats, bare and nested under 'state_dict').

Usage: python3 scripts/make_model_fixtures.py [--parity-tool scripts/make_parity.py] [--only NAME ...]
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

# Shrunk variants that no timm or torchvision model name can express (free width multiplier,
# narrow head, narrow VGG/AlexNet classifiers): registered by scripts/tiny_models.py on top of
# timm's generators and torchvision's classes.
# folder -> (model name, make_parity --suffix, kwargs, input C,H,W).
# 56 px makes odd feature-map sizes (7 -> 4 -> 2) at stride 2; VGG's 64 px and AlexNet's 96 px
# leave 2×2 maps that the adaptive pool must spread to 7×7 / 6×6.
_MNV = dict(channel_multiplier=0.25, depth_multiplier=0.34, num_classes=10)
_VGG11 = [4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]  # cfg "A" / 16
TINY_WRAPPED = {
    "mobilenetv2_tiny": ("mobilenetv2_tiny", "", dict(_MNV, num_features=64), "3,56,56"),
    "mobilenetv3_small_tiny": ("mobilenetv3_small_tiny", "", dict(_MNV, num_features=64), "3,56,56"),
    "mobilenetv3_large_tiny": ("mobilenetv3_large_tiny", "", dict(_MNV, num_features=64), "3,56,56"),
    "mobilenetv1_tiny": ("mobilenetv1_tiny", "", dict(_MNV), "3,56,56"),
    "tv_shufflenet_v2_custom_tiny": (
        "tv:shufflenet_v2_custom", "_tiny",
        dict(stages_repeats=[2, 3, 2], stages_out_channels=[8, 16, 32, 64, 128], num_classes=10), "3,56,56"),
    "tv_vgg_custom_tiny": (
        "tv:vgg_custom", "_tiny", dict(cfg=_VGG11, batch_norm=False, hidden=32, num_classes=10), "3,64,64"),
    # vgg8_cifar's layout at 1/8 width, 28 px (maps 28 -> 14 -> 7 -> 3, as for Fashion-MNIST).
    "tv_vgg_cifar_custom_tiny": (
        "tv:vgg_cifar_custom", "_tiny", dict(cfg=[4, 8, "M", 8, 16, "M", 16, 32, "M", 32], num_classes=10),
        "3,28,28"),
    "tv_vgg_custom_bn_tiny": (
        "tv:vgg_custom", "_bn_tiny", dict(cfg=_VGG11, batch_norm=True, hidden=32, num_classes=10), "3,64,64"),
    "tv_alexnet_custom_tiny": (
        "tv:alexnet_custom", "_tiny", dict(widths=[8, 16, 24, 16, 16], hidden=32, num_classes=10), "3,96,96"),
    # torchvision layouts (features.N, trunk_output, layer_scale ...) of families that kestrel
    # builds the timm way; the loader translates the keys. MobileNetV2: timm's mobilenetv2 at
    # multiplier 0.2, depth 0.34 (repeats 1,1,2,2,2,2,1), 64-wide head.
    "tv_mobilenet_v2_custom_tiny": (
        "tv:mobilenet_v2_custom", "_tiny",
        dict(width_mult=0.2, head=64, num_classes=10,
             setting=[[1, 16, 1, 1], [6, 24, 1, 2], [6, 32, 2, 2], [6, 64, 2, 2], [6, 96, 2, 1],
                      [6, 160, 2, 2], [6, 320, 1, 1]]), "3,56,56"),
    # MobileNetV3: both block kinds with and without SE, residuals, RE and HS, k3 and k5.
    "tv_mobilenet_v3_custom_tiny": (
        "tv:mobilenet_v3_custom", "_tiny",
        dict(last_channel=64, num_classes=10,
             setting=[[16, 3, 16, 16, True, "RE", 2], [16, 3, 16, 16, False, "RE", 1],
                      [16, 3, 64, 24, False, "RE", 2], [24, 3, 72, 24, False, "RE", 1],
                      [24, 5, 96, 40, True, "HS", 2], [40, 5, 120, 40, True, "HS", 1]]), "3,56,56"),
    # EfficientNet-B0 settings at width 0.15, depth 0.34; BN eps 1e-5 (B0-B4) and 1e-3 (B5-B7).
    "tv_efficientnet_custom_tiny": (
        "tv:efficientnet_custom", "_tiny",
        dict(width_mult=0.15, depth_mult=0.34, bn_eps=1e-5, num_classes=10), "3,56,56"),
    "tv_efficientnet_custom_eps_tiny": (
        "tv:efficientnet_custom", "_eps_tiny",
        dict(width_mult=0.15, depth_mult=0.34, bn_eps=1e-3, num_classes=10), "3,56,56"),
    # RegNet widths 8/16/32/64, depths 1/1/3/1. Y with group width 24: torchvision rounds the
    # 32-wide stage to 48 where timm's default rounding gives 24 (group_min_ratio).
    "tv_regnet_custom_x_tiny": (
        "tv:regnet_custom", "_x_tiny",
        dict(depth=6, w_0=8, w_a=8.0, w_m=2.0, group_width=8, stem_width=16, num_classes=10), "3,32,32"),
    "tv_regnet_custom_y_tiny": (
        "tv:regnet_custom", "_y_tiny",
        dict(depth=6, w_0=8, w_a=8.0, w_m=2.0, group_width=24, se_ratio=0.25, stem_width=16,
             num_classes=10), "3,32,32"),
    "tv_convnext_custom_tiny": (
        "tv:convnext_custom", "_tiny", dict(depths=[1, 1, 2, 1], dims=[8, 16, 32, 64], num_classes=10),
        "3,64,64"),
}

# (timm name, fixture suffix, kwargs, input size) for fixtures whose name is not NAME_tiny, or
# that need another input size. Channel attention (SE/ECA/CBAM) in timm ResNets:
_R = dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], num_classes=10)
_RD = dict(_R, channels=[4, 8, 16, 32])
_MAXX = dict(img_size=64, embed_dim=[8, 16, 16, 32], depths=[1, 1, 1, 1], stem_width=[8, 8],
             transformer_dim_head=8, num_classes=10)
_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10)
EXTRA = [
    ("seresnet18", "_tiny", _R, "3,32,32"),
    ("seresnet50", "_tiny", _R, "3,32,32"),
    ("seresnext50_32x4d", "_tiny", dict(_R, cardinality=4, base_width=16), "3,32,32"),
    ("resnet50", "_eca_tiny", dict(_R, block_args=dict(attn_layer="eca")), "3,32,32"),
    ("resnet50", "_cbam_tiny", dict(_R, block_args=dict(attn_layer="cbam")), "3,32,32"),
    # ResNet-D (deep stem, average-pool shortcut), the tiered stem with SE and groups, and Wide
    # ResNet. 40 px leaves 5 px before the third stage, so the ceil-mode 2x2 pools overhang
    # (5 -> 3 -> 2); stem width 8 (deep: 8/8/16, tiered: 6/8/16), stages 4..32 wide.
    ("resnet18d", "_tiny", dict(_RD, stem_width=8), "3,40,40"),
    ("resnet50d", "_tiny", dict(_RD, stem_width=8), "3,40,40"),
    ("seresnext26t_32x4d", "_tiny", dict(_RD, stem_width=8, cardinality=4, base_width=16), "3,40,40"),
    ("wide_resnet50_2", "_tiny", _RD, "3,40,40"),
    # RegNet: widths 8/16/32/64, depths 1/1/3/1 (RegNetCfg fields are create_model kwargs).
    ("regnetx_002", "_tiny", dict(w0=8, wa=8.0, wm=2.0, depth=6, group_size=8, stem_width=16,
                                  num_classes=10), "3,32,32"),
    ("regnety_002", "_tiny", dict(w0=8, wa=8.0, wm=2.0, depth=6, group_size=8, stem_width=16,
                                  num_classes=10), "3,32,32"),
    # ViT / DeiT: 32 px, 8 px patches (a 4x4 grid), width 32, 4 heads, 2 blocks. The `_ls` one
    # has LayerScale (timm's init_values), the distilled DeiT its second token and head.
    ("vit_tiny_patch16_224", "_tiny", _VIT, "3,32,32"),
    ("vit_tiny_patch16_224", "_ls_tiny", dict(_VIT, init_values=0.1), "3,32,32"),
    ("deit_tiny_distilled_patch16_224", "_tiny", _VIT, "3,32,32"),
    # Swin: 32 px, 2 px patches (16x16 grid), 4x4 windows, stages at 16, 8 and 4 px: shifted
    # windows with masks in the first two, the window-covers-the-map case (no shift) in the last.
    ("swin_tiny_patch4_window7_224", "_tiny", dict(img_size=32, patch_size=2, window_size=4, embed_dim=8,
                                                   depths=(2, 2, 2), num_heads=(2, 2, 4), num_classes=10),
     "3,32,32"),
    # CoAtNet / MaxViT (timm maxxvit.py): 64 px (stem 32, stages 16/8/4/2 px), widths 8/16/16/32,
    # 8-wide heads. CoAtNet: a stride-2 and a stride-1 transformer block in stage 2, the pooled
    # (coatnet_0_rw: pre-norm act, early SE, ReLU SE) and depthwise-strided (pico) MBConv.
    # MaxViT: 64 / 32 = 2x2 block and grid partitions; rel-pos bias (nano), rel-pos MLP
    # (rmlp_pico, 16 hidden), the TF port (tiny_tf: SAME padding, tanh GELU, TF bias layout,
    # interleaved qkv heads, norm + MLP head).
    ("coatnet_0_rw_224", "_tiny", dict(_MAXX, depths=[1, 1, 2, 1]), "3,64,64"),
    ("coatnet_pico_rw_224", "_tiny", dict(_MAXX, depths=[1, 1, 2, 1]), "3,64,64"),
    # nano: pico's blocks with pooled strides.
    ("coatnet_nano_rw_224", "_tiny", dict(_MAXX, depths=[1, 1, 2, 1]), "3,64,64"),
    ("maxvit_nano_rw_256", "_tiny", _MAXX, "3,64,64"),
    # pico: nano's blocks, but its own config (timm's maxvit_pico_rw_256 entry) built here.
    ("maxvit_pico_rw_256", "_tiny", _MAXX, "3,64,64"),
    ("maxvit_rmlp_pico_rw_256", "_tiny", dict(_MAXX, transformer_rel_pos_dim=16), "3,64,64"),
    ("maxvit_tiny_tf_224", "_tiny", dict(_MAXX, stem_width=8, head_hidden_size=32), "3,64,64"),
]

EXTRA_KW = {name + suffix: kw for name, suffix, kw, _ in EXTRA}

# Shrunk models registered by scripts/timm_tiny.py (timm's generators with small multipliers),
# fixture folder = the name: (name, kwargs, input size).
TIMM_TINY = [
    ("efficientnet_tiny", dict(num_classes=10), "3,32,32"),
    ("tf_efficientnet_tiny", dict(num_classes=10), "3,32,32"),
    ("tf_efficientnet_lite_tiny", dict(num_classes=10), "3,32,32"),
]


def vit_resampled(d):
    """The 32 px ViT fixture's weights loaded by timm into the same model built for 48 px (a 6x6
    grid): timm's checkpoint_filter_fn resamples pos_embed (resample_abs_pos_embed, bicubic,
    antialias, class token kept). Writes io_48.safetensors: a 48 px input and timm's logits."""
    import timm, torch
    from safetensors.torch import load_file, save_file
    from timm.models.vision_transformer import checkpoint_filter_fn
    sd = load_file(os.path.join(d, "weights.safetensors"))
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, **dict(_VIT, img_size=48)).eval()
    m.load_state_dict(checkpoint_filter_fn(sd, m))
    x = torch.randn((2, 3, 48, 48), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = m(x)
    save_file({"input": x.contiguous(), "logits": y.contiguous()}, os.path.join(d, "io_48.safetensors"))


def swin_with_buffers(d):
    """The Swin fixture's weights plus the non-persistent buffers that older Swin checkpoints
    (Microsoft's originals) carry: relative_position_index and attn_mask."""
    import timm, torch
    from safetensors.torch import load_file, save_file
    sd = load_file(os.path.join(d, "weights.safetensors"))
    kw = dict(EXTRA_KW["swin_tiny_patch4_window7_224_tiny"])
    m = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kw)
    for name, buf in m.named_buffers():
        if name.endswith(("relative_position_index", "attn_mask")):
            sd[name] = buf.contiguous()
    save_file(sd, os.path.join(d, "weights_with_buffers.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity-tool", default=os.path.join(HERE, "make_parity.py"))
    ap.add_argument("--only", nargs="*", help="regenerate only these fixtures (folder names; TINY ones also by model name)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    wanted = lambda name: not args.only or name in args.only
    for name, kw in TINY.items():
        if not (wanted(name) or wanted(name + "_tiny")):
            continue
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT, "--suffix", "_tiny",
                               "--kwargs", json.dumps(kw), "--input-size", INPUT_SIZE.get(name, "3,32,32")])
    for folder, (model, suffix, kw, size) in TINY_WRAPPED.items():
        if not wanted(folder):
            continue
        assert model.replace(":", "_") + suffix == folder, folder
        subprocess.check_call([sys.executable, os.path.join(HERE, "tiny_models.py"), model,
                               "--parity-tool", args.parity_tool, "--out", OUT, "--suffix", suffix,
                               "--kwargs", json.dumps(kw), "--input-size", size])
    for name, suffix, kw, size in EXTRA:
        if not wanted(name + suffix):
            continue
        subprocess.check_call([sys.executable, args.parity_tool, name, "--out", OUT, "--suffix", suffix,
                               "--kwargs", json.dumps(kw), "--input-size", size])
    for name, kw, size in TIMM_TINY:
        if not wanted(name):
            continue
        subprocess.check_call([sys.executable, os.path.join(HERE, "timm_tiny.py"), args.parity_tool, name,
                               "--out", OUT, "--kwargs", json.dumps(kw), "--input-size", size])
    if wanted("vit_tiny_patch16_224_tiny"):
        vit_resampled(os.path.join(OUT, "vit_tiny_patch16_224_tiny"))
    if wanted("swin_tiny_patch4_window7_224_tiny"):
        swin_with_buffers(os.path.join(OUT, "swin_tiny_patch4_window7_224_tiny"))
    if wanted("tv_convnext_custom_tiny"):
        # A torchvision-layout checkpoint as torchvision saves it (.pth, zip format).
        import torch
        from safetensors.torch import load_file
        d = os.path.join(OUT, "tv_convnext_custom_tiny")
        torch.save(load_file(os.path.join(d, "weights.safetensors")), os.path.join(d, "weights.pth"))
    if not wanted("resnet18"):
        return
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
