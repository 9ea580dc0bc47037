"""Prints a family's pretrained-tag tables for its Rust file (kestrel-models' `tag!` rows), from
timm's default_cfgs, default tag first, ImageNet-1k heads only:

    python scripts/make_pretrained_tags.py convnext_atto convnext_tiny ...

Needs timm (no download: the configs ship with timm's code)."""
import sys

import timm
from timm.models import _registry


def num(x):
    return repr(float(x))


for name in sys.argv[1:]:
    print(f"/// timm's `{name}` pretrained tags (ImageNet-1k heads only), default first.")
    print("#[rustfmt::skip]")
    print(f"const {name.upper()}_TAGS: &[PretrainedTag] = &[")
    for tag in _registry._model_default_cfgs[name].tags:
        cfg = timm.models.get_pretrained_cfg(f"{name}.{tag}").to_dict()
        if cfg.get("num_classes", 1000) != 1000:
            continue
        mean = ", ".join(num(m) for m in cfg["mean"])
        std = ", ".join(num(s) for s in cfg["std"])
        tis, tcp = cfg.get("test_input_size"), cfg.get("test_crop_pct")
        test_size = f"Some({tis[1]})" if tis else "None"
        test_crop = f"Some({num(tcp)})" if tcp is not None else "None"
        print(
            f'    tag!("{tag}", {cfg["input_size"][1]}, {num(cfg["crop_pct"])}, '
            f'"{cfg["interpolation"]}", "{cfg.get("crop_mode", "center")}", [{mean}], [{std}], '
            f"{test_size}, {test_crop}),"
        )
    print("];\n")
print(f"// timm {timm.__version__}", file=sys.stderr)
