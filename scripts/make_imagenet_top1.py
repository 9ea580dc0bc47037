#!/usr/bin/env python3
"""Writes crates/kestrel-serve/data/imagenet_top1.csv: the ImageNet-1k validation top-1 that timm
publishes for the default pretrained tag of each kestrel registry model, for `kestrel recommend`.

Source: `results/results-imagenet.csv` of huggingface/pytorch-image-models (timm's own evaluation
of every pretrained tag, at the tag's test resolution). The default tag of a name is timm's
(`timm.list_pretrained(name)`'s first entry, the installed timm's choice). A model that timm does
not have, or whose default tag has no row, is left out: `recommend` then says it has no figure.

Usage: python3 scripts/make_imagenet_top1.py PATH/TO/results-imagenet.csv COMMIT
       (the CSV from a clone of pytorch-image-models at COMMIT; the names come from
       `kestrel models --json`.)
"""
import csv
import json
import subprocess
import sys

import timm

results_path, commit = sys.argv[1], sys.argv[2]
with open(results_path) as f:
    results = {r["model"]: r for r in csv.DictReader(f)}

names = [
    m["name"]
    for m in json.loads(
        subprocess.check_output(
            ["target/release/kestrel", "models", "--json", "--no-macs"], text=True
        )
    )
]
url = (
    "https://github.com/huggingface/pytorch-image-models/blob/"
    f"{commit}/results/results-imagenet.csv"
)
rows = []
for name in names:
    tags = timm.list_pretrained(name, exclude_filters=["*in22k", "*in21k", "*in12k"])
    tags = [t for t in tags if t.split(".")[0] == name]
    if not tags:
        continue
    # timm's default tag is the first one its registry lists for the bare name.
    default = timm.models.get_pretrained_cfg(name)
    tag = f"{name}.{default.tag}" if default is not None and default.tag else tags[0]
    r = results.get(tag)
    if r is None:
        continue
    rows.append([name, tag, r["img_size"], r["top1"], f"timm {timm.__version__} default tag; {url}"])

out = "crates/kestrel-serve/data/imagenet_top1.csv"
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["model", "timm_tag", "img_size", "top1", "source"])
    w.writerows(rows)
print(f"{out}: {len(rows)} of {len(names)} models have a published top-1")
