#!/usr/bin/env python3
"""Builds a folder of real JPEG photographs in ImageFolder layout (OUTDIR/<class>/*.jpg) for
`kestrel data-bench` and its torchvision peer (scripts/bench_data_peers.py).

The photographs are the sample images that scikit-learn and scikit-image ship inside their
packages (nothing is downloaded): sklearn's china.jpg and flower.jpg, and skimage.data's bundled
colour photographs (astronaut, coffee, chelsea, rocket, motorcycle_left, hubble_deep_field,
retina; `pip install scikit-image` if it is missing). Each output file is a seeded random crop
(40-100% of each side) of one of them, optionally mirrored, rescaled so that its long side is
between --min-side and --max-side px (256-640 by default), and saved as a baseline JPEG at
quality 85-95 with 4:2:0 chroma subsampling (what most cameras and ImageNet use). The sources
are spread over --classes class folders.

Usage: python3 scripts/make_bench_photos.py /tmp/bench_photos [--count 2000] [--classes 4]
       [--seed 0] [--min-side 256] [--max-side 640]

The output is deterministic for a given seed and Pillow version.
"""
import argparse, json, os, random, shutil, sys

import numpy as np
from PIL import Image

# skimage.data names whose files ship inside the package (no pooch download) and are colour
# photographs.
SKIMAGE_BUNDLED = [
    "astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field", "retina",
]


def to_rgb(a):
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return Image.fromarray(a[..., :3]).convert("RGB")


def load_sources():
    out = []
    from sklearn.datasets import load_sample_images
    s = load_sample_images()
    for name, img in zip(s.filenames, s.images):
        out.append((os.path.splitext(os.path.basename(name))[0], to_rgb(img)))
    try:
        import skimage.data as skd
    except ImportError:
        sys.exit("scikit-image is missing: pip install -q scikit-image")
    for name in SKIMAGE_BUNDLED:
        try:
            if name == "motorcycle_left":  # the left view of stereo_motorcycle()
                img = skd.stereo_motorcycle()[0]
            else:
                img = getattr(skd, name)()
            out.append((name, to_rgb(img)))
        except Exception as e:  # not bundled in this version (would need a download): skip it
            print(f"skipping skimage.data.{name}: {e}", file=sys.stderr)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-side", type=int, default=256)
    p.add_argument("--max-side", type=int, default=640)
    a = p.parse_args()

    sources = load_sources()
    if len(sources) < a.classes:
        sys.exit(f"only {len(sources)} source photos for {a.classes} classes")
    # Source i belongs to class i % classes; every class gets at least one source.
    class_names = [f"class{c}" for c in range(a.classes)]
    by_class = [[s for i, s in enumerate(sources) if i % a.classes == c] for c in range(a.classes)]

    if os.path.isdir(a.outdir):
        for c in os.listdir(a.outdir):
            if c.startswith("class") and os.path.isdir(os.path.join(a.outdir, c)):
                shutil.rmtree(os.path.join(a.outdir, c))
    for c in class_names:
        os.makedirs(os.path.join(a.outdir, c), exist_ok=True)

    rng = random.Random(a.seed)
    total_bytes, sides = 0, []
    for i in range(a.count):
        c = i % a.classes
        name, img = rng.choice(by_class[c])
        w, h = img.size
        cw = max(16, int(w * rng.uniform(0.4, 1.0)))
        ch = max(16, int(h * rng.uniform(0.4, 1.0)))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        long_side = rng.randint(a.min_side, a.max_side)
        s = long_side / max(cw, ch)
        size = (max(1, round(cw * s)), max(1, round(ch * s)))
        crop = crop.resize(size, Image.Resampling.LANCZOS)
        q = rng.randint(85, 95)
        path = os.path.join(a.outdir, class_names[c], f"{name}_{i:05d}.jpg")
        crop.save(path, "JPEG", quality=q, subsampling="4:2:0", optimize=False)
        total_bytes += os.path.getsize(path)
        sides.append(max(size))

    info = {
        "outdir": a.outdir,
        "images": a.count,
        "classes": {class_names[c]: [n for n, _ in by_class[c]] for c in range(a.classes)},
        "long_side_px": [min(sides), max(sides), round(sum(sides) / len(sides), 1)],
        "mean_kib": round(total_bytes / a.count / 1024, 1),
        "seed": a.seed,
    }
    print(json.dumps(info))


if __name__ == "__main__":
    main()
