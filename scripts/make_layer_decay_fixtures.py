#!/usr/bin/env python3
"""Reference fixture for `kestrel train --layer-decay`: timm's param_groups_layer_decay lr scale
of every parameter, for one model of each family kestrel groups (timm's group_matcher).

CI has no torch: the JSON file is committed and tests/finetune.rs reads it.

    python3 scripts/make_layer_decay_fixtures.py
    # writes crates/kestrel-train/tests/fixtures/layer_decay.json
"""

import json
from pathlib import Path

import timm
from timm.optim import param_groups_layer_decay

OUT = Path(__file__).resolve().parent.parent / "crates" / "kestrel-train" / "tests" / "fixtures"
DECAY = 0.75
MODELS = ["resnet18", "deit_tiny_distilled_patch16_224", "convnext_atto", "efficientnet_b0",
          "regnetx_002", "swin_tiny_patch4_window7_224"]

out = {"decay": DECAY, "num_classes": 10, "models": {}}
for name in MODELS:
    model = timm.create_model(name, pretrained=False, num_classes=10)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=DECAY)
    ids = {id(p): n for n, p in model.named_parameters()}
    scales = {}
    for g in groups:
        for p in g["params"]:
            scales[ids[id(p)]] = g["lr_scale"]
    out["models"][name] = scales
    print(name, len(scales), "params,", len(set(scales.values())), "distinct scales")
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "layer_decay.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
