#!/usr/bin/env python3
"""Reference outputs of torchvision / PIL / timm transforms for kestrel-data's parity tests.

Writes crates/kestrel-data/tests/fixtures/tv/: input PNGs, one output per case (PNG for u8
images, raw little-endian f32 for float tensors) and manifest.json describing every case.
CI has no Python: the Rust tests only read what this script committed.

Needs: torch, torchvision, timm, Pillow, numpy, scikit-learn (for its sample photos).
Run from the repository root: python3 scripts/make_transform_fixtures.py
"""

import json
import math
import os
import shutil

import numpy as np
import PIL
import timm
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data.transforms_factory import transforms_imagenet_eval
from torchvision.transforms import InterpolationMode as IM
from torchvision.transforms.autoaugment import (
    AutoAugment,
    AutoAugmentPolicy,
    RandAugment,
    TrivialAugmentWide,
    _apply_op,
)

OUT = os.path.join("crates", "kestrel-data", "tests", "fixtures", "tv")
INTERP = {
    "nearest": IM.NEAREST,
    "box": IM.BOX,
    "bilinear": IM.BILINEAR,
    "hamming": IM.HAMMING,
    "bicubic": IM.BICUBIC,
    "lanczos": IM.LANCZOS,
}

cases = []
inputs = {}


def save_png(img, name):
    img.save(os.path.join(OUT, name), optimize=True)
    return name


def add_input(name, img):
    inputs[name] = {"file": save_png(img, f"in_{name}.png"), "mode": img.mode}
    return img


def add_case(op, input_name, params, out):
    idx = len(cases)
    if isinstance(out, Image.Image):
        file = save_png(out, f"out_{idx:03d}_{op}.png")
        kind = "png"
    else:
        arr = np.ascontiguousarray(out.detach().numpy().astype("<f4"))
        file = f"out_{idx:03d}_{op}.f32"
        arr.tofile(os.path.join(OUT, file))
        kind = "f32"
        params = dict(params, shape=list(arr.shape))
    cases.append({"op": op, "input": input_name, "params": params, "output": file, "kind": kind})


def make_inputs():
    china = Image.fromarray(load_sample_image("china.jpg"))
    flower = Image.fromarray(load_sample_image("flower.jpg"))
    imgs = {
        "china": china.resize((96, 72), Image.LANCZOS),
        "flower": flower.resize((80, 64), Image.LANCZOS),
        "china_large": china.resize((320, 240), Image.LANCZOS),
    }
    # A synthetic image with gradients, flat grey patches (H undefined in HSV) and noise.
    rng = np.random.default_rng(0)
    h, w = 40, 56
    y, x = np.mgrid[0:h, 0:w]
    grad = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 3 % 256], -1)
    grad = grad.astype(np.int32) + rng.integers(-12, 13, size=(h, w, 3))
    grad[5:12, 5:15] = 128
    grad[20:26, 30:40] = [250, 250, 250]
    grad[30:36, 2:9] = [0, 0, 255]
    imgs["gradient"] = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8), "RGB")
    imgs["gray"] = imgs["china"].convert("L").resize((44, 36), Image.BILINEAR)
    imgs["square"] = F.center_crop(imgs["china"], [64, 64])
    return {k: add_input(k, v) for k, v in imgs.items()}


def resize_cases(imgs):
    for name in ["china", "flower", "gradient", "gray"]:
        img = imgs[name]
        for interp in INTERP:
            mode = INTERP[interp]
            add_case("resize_shorter", name, {"size": 32, "interpolation": interp},
                     T.Resize(32, interpolation=mode)(img))
            add_case("resize", name, {"height": 45, "width": 37, "interpolation": interp},
                     T.Resize((45, 37), interpolation=mode)(img))
            if name in ("gradient", "gray"):
                add_case("resize", name, {"height": 83, "width": 121, "interpolation": interp},
                         T.Resize((83, 121), interpolation=mode)(img))
            if name == "china":
                add_case("resize", name, {"height": 90, "width": 30, "interpolation": interp},
                         T.Resize((90, 30), interpolation=mode)(img))
    for interp in ["bilinear", "bicubic", "nearest", "lanczos"]:
        add_case("resize_shorter", "china_large", {"size": 56, "interpolation": interp},
                 T.Resize(56, interpolation=INTERP[interp])(imgs["china_large"]))


def crop_cases(imgs):
    china = imgs["china"]
    for h, w in [(50, 60), (64, 64), (71, 95), (69, 93), (80, 100), (73, 90), (72, 96)]:
        add_case("center_crop", "china", {"height": h, "width": w}, T.CenterCrop((h, w))(china))
    add_case("center_crop", "gray", {"height": 31, "width": 50}, T.CenterCrop((31, 50))(imgs["gray"]))
    for top, left, h, w in [(-5, 10, 30, 100), (10, 20, 30, 40), (60, -3, 20, 10)]:
        add_case("crop", "china", {"top": top, "left": left, "height": h, "width": w},
                 F.crop(china, top, left, h, w))
    for name in ["china", "gray"]:
        add_case("hflip", name, {}, F.hflip(imgs[name]))
        add_case("vflip", name, {}, F.vflip(imgs[name]))


def pad_cases(imgs):
    for name in ["gradient", "gray"]:
        img = imgs[name]
        fill = [10, 20, 30] if name == "gradient" else [7]
        for mode in ["constant", "edge", "reflect", "symmetric"]:
            for padding in [[3, 5, 3, 5], [2, 4, 6, 1]]:
                out = F.pad(img, padding, fill=tuple(fill) if len(fill) > 1 else fill[0],
                            padding_mode=mode)
                add_case("pad", name, {"padding": padding, "fill": fill, "mode": mode}, out)
    for mode in ["reflect", "symmetric"]:
        out = F.pad(imgs["gray"], [45, 0, 60, 50], padding_mode=mode)
        add_case("pad", "gray", {"padding": [45, 0, 60, 50], "fill": [0], "mode": mode}, out)


def color_cases(imgs):
    for name in ["china", "gradient", "gray"]:
        img = imgs[name]
        for ch in [1, 3]:
            add_case("grayscale", name, {"channels": ch}, T.Grayscale(ch)(img))
        for f in [0.0, 0.5, 1.3, 2.0]:
            add_case("brightness", name, {"factor": f}, F.adjust_brightness(img, f))
        for f in [0.0, 0.6, 1.5]:
            add_case("contrast", name, {"factor": f}, F.adjust_contrast(img, f))
        for f in [0.0, 0.4, 1.7]:
            add_case("saturation", name, {"factor": f}, F.adjust_saturation(img, f))
        for f in [-0.5, -0.3, -0.05, 0.1, 0.27, 0.5]:
            add_case("hue", name, {"factor": f}, F.adjust_hue(img, f))
        for f in [0.0, 0.1, 1.9]:
            add_case("sharpness", name, {"factor": f}, F.adjust_sharpness(img, f))
    # ColorJitter with fixed draws: the order and factors its get_params would return.
    order, b, c, s, h = [2, 0, 3, 1], 1.2, 0.7, 1.4, -0.12
    img = imgs["china"]
    fns = {0: lambda i: F.adjust_brightness(i, b), 1: lambda i: F.adjust_contrast(i, c),
           2: lambda i: F.adjust_saturation(i, s), 3: lambda i: F.adjust_hue(i, h)}
    for k in order:
        img = fns[k](img)
    add_case("color_jitter", "china",
             {"order": order, "brightness": b, "contrast": c, "saturation": s, "hue": h}, img)


AUG_MAGNITUDES = {
    "Identity": [0.0],
    "ShearX": [0.3, -0.17, 0.99],
    "ShearY": [0.3, -0.25],
    "TranslateX": [43.5, -10.9, 32.0],
    "TranslateY": [-14.2, 20.0],
    "Rotate": [30.0, -12.3, 90.0, 135.0, -135.0, 180.0, 270.0],
    "Brightness": [0.9, -0.9, 0.3],
    "Color": [0.9, -0.6],
    "Contrast": [0.9, -0.5],
    "Sharpness": [0.9, -0.9, 0.5],
    "Posterize": [4.0, 2.0, 7.0],
    "Solarize": [128.0, 77.3, 255.0, 0.0],
    "AutoContrast": [0.0],
    "Equalize": [0.0],
    "Invert": [0.0],
}


def aug_cases(imgs):
    geometric = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
    for name in ["china", "gray", "gradient", "square"]:
        img = imgs[name]
        for op, mags in AUG_MAGNITUDES.items():
            # Pixel ops are covered on china/gray; the others add geometry edge cases only.
            if name == "gradient" and op not in geometric:
                continue
            if name == "square" and op != "Rotate":  # the 90/270-degree fast path
                continue
            for mag in mags:
                out = _apply_op(img, op, mag, interpolation=IM.NEAREST, fill=None)
                add_case("aug_op", name, {"op": op, "magnitude": mag, "fill": [0]}, out)
    for op, mag in [("Rotate", 23.0), ("ShearX", -0.3), ("TranslateY", 17.0), ("ShearY", 0.2)]:
        out = _apply_op(imgs["china"], op, mag, interpolation=IM.NEAREST, fill=[128, 64, 32])
        add_case("aug_op", "china", {"op": op, "magnitude": mag, "fill": [128, 64, 32]}, out)
    for params in [
        {"angle": 17.0, "translate": [3, -4], "scale": 0.9, "shear": [5.0, -8.0]},
        {"angle": -33.0, "translate": [0, 0], "scale": 1.3, "shear": [0.0, 0.0]},
    ]:
        out = F.affine(imgs["china"], params["angle"], params["translate"], params["scale"],
                       params["shear"], interpolation=IM.NEAREST)
        add_case("affine", "china", params, out)


def tensor_cases(imgs):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = T.Normalize(mean, std)(T.ToTensor()(imgs["gradient"]))
    add_case("to_tensor_normalize", "gradient", {"mean": mean, "std": std}, out)
    out = T.Normalize([0.1307], [0.3081])(T.ToTensor()(imgs["gray"]))
    add_case("to_tensor_normalize", "gray", {"mean": [0.1307], "std": [0.3081]}, out)


EVAL_CONFIGS = [
    # resnet50 (timm a1_in1k-style eval): 224, crop_pct 0.95, bicubic
    {"input_size": [3, 224, 224], "crop_pct": 0.95, "interpolation": "bicubic", "crop_mode": "center"},
    # the classic torchvision eval: 256 -> 224, bilinear
    {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bilinear", "crop_mode": "center"},
    {"input_size": [3, 160, 192], "crop_pct": 0.9, "interpolation": "bicubic", "crop_mode": "center"},
    {"input_size": [3, 96, 96], "crop_pct": 0.9, "interpolation": "bilinear", "crop_mode": "squash"},
    {"input_size": [3, 96, 128], "crop_pct": 1.0, "interpolation": "bicubic", "crop_mode": "border"},
]


def eval_cases(imgs):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    for cfg in EVAL_CONFIGS:
        tf = transforms_imagenet_eval(img_size=tuple(cfg["input_size"][1:]), crop_pct=cfg["crop_pct"],
                                      crop_mode=cfg["crop_mode"], interpolation=cfg["interpolation"],
                                      mean=mean, std=std)
        pil_part = T.Compose(tf.transforms[:-2])  # drop MaybeToTensor + Normalize
        add_case("eval_image", "china_large", dict(cfg, mean=mean, std=std), pil_part(imgs["china_large"]))
    cfg = {"input_size": [3, 48, 48], "crop_pct": 0.875, "interpolation": "bicubic", "crop_mode": "center"}
    tf = transforms_imagenet_eval(img_size=(48, 48), crop_pct=0.875, interpolation="bicubic",
                                  mean=mean, std=std)
    add_case("eval_tensor", "china", dict(cfg, mean=mean, std=std), tf(imgs["china"]))


def magnitude_tables(imgs):
    h, w = imgs["china"].size[1], imgs["china"].size[0]

    def dump(meta):
        return {k: [float(v) for v in (m.reshape(-1).tolist())] if m.ndim > 0 else None
                for k, (m, _) in meta.items()}

    return {
        "image_size": [h, w],
        "autoaugment": dump(AutoAugment()._augmentation_space(10, (h, w))),
        "randaugment": dump(RandAugment()._augmentation_space(31, (h, w))),
        "trivialaugment": dump(TrivialAugmentWide()._augmentation_space(31)),
    }


def summary(values):
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "var": float(v.var()), "n": int(v.size)}


def rrc_stats():
    """torchvision's RandomResizedCrop.get_params, sampled: the reference distribution."""
    torch.manual_seed(0)
    out = {}
    for h, w in [(72, 96), (30, 200), (224, 224)]:
        img = Image.new("RGB", (w, h))
        draws = [T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(20000)]
        area = [bh * bw / (h * w) for _, _, bh, bw in draws]
        log_ar = [math.log(bw / bh) for _, _, bh, bw in draws]
        top = [i / max(1, h - bh) if h > bh else 0.5 for i, _, bh, _ in draws]
        full = [1.0 if (bh, bw) == (h, w) else 0.0 for _, _, bh, bw in draws]
        out[f"{h}x{w}"] = {"area_frac": summary(area), "log_aspect": summary(log_ar),
                           "top_frac": summary(top), "full_image": summary(full)}
    return out


def erasing_stats():
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32)
    hit, area, log_ar = [], [], []
    tf = T.RandomErasing(p=1.0)
    for _ in range(20000):
        i, j, h, w, _ = tf.get_params(img, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=[0.0])
        erased = not (h == 32 and w == 32)
        hit.append(1.0 if erased else 0.0)
        if erased:
            area.append(h * w / 1024)
            log_ar.append(math.log(h / w))
    return {"erased": summary(hit), "area_frac": summary(area), "log_aspect": summary(log_ar)}


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    imgs = make_inputs()
    resize_cases(imgs)
    crop_cases(imgs)
    pad_cases(imgs)
    color_cases(imgs)
    aug_cases(imgs)
    tensor_cases(imgs)
    eval_cases(imgs)
    manifest = {
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "timm": timm.__version__, "pillow": PIL.__version__, "numpy": np.__version__},
        "inputs": inputs,
        "cases": cases,
        "magnitudes": magnitude_tables(imgs),
        "rrc_stats": rrc_stats(),
        "erasing_stats": erasing_stats(),
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"{len(cases)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
