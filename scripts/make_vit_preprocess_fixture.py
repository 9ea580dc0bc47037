#!/usr/bin/env python3
"""timm's eval transform for vit_small_patch16_224 (resolve_data_config + create_transform:
224 px, crop_pct 0.9, bicubic, mean = std = 0.5) on the committed photo
crates/kestrel-data/tests/fixtures/tv/in_china_large.png, saved before ToTensor/Normalize as
crates/kestrel-cli/tests/fixtures/vit_small_eval.png (exact uint8), for
crates/kestrel-cli/tests/one_preprocessing_path.rs.

  python3 scripts/make_vit_preprocess_fixture.py
"""
import os

import timm
from PIL import Image
from timm.data import create_transform, resolve_data_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model = timm.create_model("vit_small_patch16_224", pretrained=False)
cfg = resolve_data_config(model=model)
assert cfg["crop_pct"] == 0.9 and cfg["interpolation"] == "bicubic" and cfg["mean"] == (0.5, 0.5, 0.5), cfg
tf = create_transform(**cfg)
pil_part = tf.transforms[:-2]  # drop MaybeToTensor + Normalize
img = Image.open(os.path.join(ROOT, "crates/kestrel-data/tests/fixtures/tv/in_china_large.png")).convert("RGB")
for t in pil_part:
    img = t(img)
out = os.path.join(ROOT, "crates/kestrel-cli/tests/fixtures")
os.makedirs(out, exist_ok=True)
img.save(os.path.join(out, "vit_small_eval.png"))
print(cfg, img.size)
