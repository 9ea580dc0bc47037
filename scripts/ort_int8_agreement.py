#!/usr/bin/env python3
"""onnxruntime's own int8 (quantize_static, QDQ, per-channel) of a timm model, measured as
top-1 agreement with the fp32 model on a folder of images: the reference figure for kestrel's
int8 agreement (scripts/int8_agreement.py) on the same crops, so that a gap can be told apart
from the crops' own difficulty.

The model is timm's (with --weights, a timm-layout safetensors file, e.g. from
scripts/efficientnet_lite0_weights.py), preprocessed with its timm data config, exported with
torch.onnx (opset 17), and quantized by onnxruntime.quantization.quantize_static on the
calibration images (MinMax, QDQ, u8 activations, per-channel s8 weights).

Usage: python3 scripts/ort_int8_agreement.py --model tf_efficientnet_lite0 --weights lite0.safetensors \
           --calib CALIB_DIR --images EVAL_DIR [--limit 2000] [--calib-images 256] \
           [--reduce-range 0|1 ...] [--centre-scales 1.0,0.8,0.6]

--centre-scales also measures centre crops of each eval image (the central fraction of each
side, then the model's usual resize + centre crop), which look more like ImageNet's eval crops.
Prints one JSON object per configuration.
"""
import argparse, json, os, sys, tempfile

import numpy as np
import onnxruntime as ort
import timm
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from PIL import Image


def list_images(d, limit):
    fs = sorted(os.path.join(r, f) for r, _, names in os.walk(d) for f in names
                if f.lower().endswith((".jpg", ".jpeg", ".png")))[:limit]
    if not fs:
        sys.exit(f"no images under {d}")
    return fs


def centre(img, frac):
    if frac >= 1.0:
        return img
    w, h = img.size
    cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
    l, t = (w - cw) // 2, (h - ch) // 2
    return img.crop((l, t, l + cw, t + ch))


def batch(files, tf, frac=1.0):
    """The preprocessed images, cached (by file list and crop) under $INT8_CACHE when set: the
    decode is the slow part of these scripts on a loaded machine."""
    cache = os.environ.get("INT8_CACHE")
    if cache:
        import hashlib
        key = hashlib.sha1(repr((files, frac, repr(tf))).encode()).hexdigest()[:16]
        path = os.path.join(cache, f"{key}.npy")
        if os.path.exists(path):
            return np.load(path)
    x = torch.stack([tf(centre(Image.open(f).convert("RGB"), frac)) for f in files]).numpy()
    if cache:
        os.makedirs(cache, exist_ok=True)
        np.save(path, x)
    return x


class Reader(CalibrationDataReader):
    def __init__(self, x, name):
        self.items = iter([{name: x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.items, None)


def run(sess, x, bs=50):
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--weights")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--reduce-range", type=int, nargs="+", default=[1, 0])
    ap.add_argument("--centre-scales", default="")
    a = ap.parse_args()

    m = timm.create_model(a.model, pretrained=False)
    if a.weights:
        from safetensors.torch import load_file
        m.load_state_dict(load_file(a.weights), strict=False)
    m.eval()
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=m))
    calib = batch(list_images(a.calib, a.calib_images), tf)
    files = list_images(a.images, a.limit)
    sets = {"crops": batch(files, tf)}
    for s in filter(None, a.centre_scales.split(",")):
        sets[f"centre {s}"] = batch(files, tf, float(s))

    tmp = tempfile.mkdtemp()
    fp32_path = os.path.join(tmp, "fp32.onnx")
    torch.onnx.export(m, torch.from_numpy(calib[:1]), fp32_path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                      opset_version=17, dynamo=False)
    fp32 = ort.InferenceSession(fp32_path, providers=["CPUExecutionProvider"])
    ref = {k: run(fp32, x) for k, x in sets.items()}
    for rr in a.reduce_range:
        q_path = os.path.join(tmp, f"int8_rr{rr}.onnx")
        quantize_static(fp32_path, q_path, Reader(calib, "input"), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=bool(rr), activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        q = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
        for k, x in sets.items():
            got, want = run(q, x), ref[k]
            p = torch.from_numpy(want).softmax(1).max(1).values.numpy()
            same = int((got.argmax(1) == want.argmax(1)).sum())
            print(json.dumps({"model": a.model, "set": k, "reduce_range": bool(rr),
                              "images": len(x), "top1_agree": same, "agreement": same / len(x),
                              "fp32_median_top1_prob": float(np.median(p))}), flush=True)


if __name__ == "__main__":
    main()
