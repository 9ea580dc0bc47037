#!/usr/bin/env python3
"""Run make_parity.py with a few extra, shrinkable timm and torchvision model names registered.

timm's named MobileNets fix the channel multiplier (`mobilenetv2_100` calls its generator with
1.0) and the head width (1280 or 1024 features), so even the narrowest named variant makes a
parity fixture of several MB. The names registered here call timm's own generators
(`_gen_mobilenet_v2`, `_gen_mobilenet_v3`, `_gen_mobilenet_v1`) with the channel multiplier taken
from the kwargs, and, when `num_features` is given, override the head width that the generator
passes to the model class. Everything else (block strings, rounding, SE, activations, init) is
timm's.

torchvision's ShuffleNetV2, VGG and AlexNet builders fix their widths (VGG's and AlexNet's
4096-wide classifiers alone are over 100 MB). `tv:shufflenet_v2_custom` is torchvision's
`ShuffleNetV2` class with the stage repeats and widths from the kwargs; `tv:vgg_custom` is
torchvision's `VGG` class on `make_layers(cfg, batch_norm)` and `tv:alexnet_custom` torchvision's
`AlexNet`, both with the convolutions and the classifier's Linear layers narrowed (same kernels,
strides, paddings, pooling, dropout placement and forward).

    python3 scripts/tiny_models.py mobilenetv2_tiny --out crates/kestrel-models/tests/fixtures \
        --suffix '' --kwargs '{"channel_multiplier": 0.25, ...}' --input-size 3,56,56

Arguments after the script name are make_parity.py's (see /work/shared/tools/make_parity.py or
--parity-tool).
"""
import importlib.util
import os
import sys

import torch.nn as nn
import torchvision.models as tvm
import torchvision.models.vgg as tv_vgg
from torchvision.models._api import register_model as tv_register
import timm.models.efficientnet as effnet
import timm.models.mobilenetv3 as mnv3
from timm.models import register_model

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TOOL = os.path.join(HERE, "..", "..", "shared", "tools", "make_parity.py")


def _shrinkable(gen, module, create_name, variant):
    """A builder calling timm's generator `gen` for `variant` with a free channel multiplier and
    an optional head width (`num_features`)."""

    def build(pretrained=False, channel_multiplier=1.0, num_features=None, **kwargs):
        create = getattr(module, create_name)
        if num_features is not None:
            def patched(v, p=False, **kw):
                kw["num_features"] = num_features
                return create(v, p, **kw)
            setattr(module, create_name, patched)
        try:
            return gen(variant, channel_multiplier, pretrained=pretrained, **kwargs)
        finally:
            setattr(module, create_name, create)

    return build


def _register(name, gen, module, create_name, variant):
    fn = _shrinkable(gen, module, create_name, variant)
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__module__ = module.__name__
    register_model(fn)


_register("mobilenetv2_tiny", effnet._gen_mobilenet_v2, effnet, "_create_effnet", "mobilenetv2_100")
_register("mobilenetv1_tiny", effnet._gen_mobilenet_v1, effnet, "_create_effnet", "mobilenetv1_100")
_register("mobilenetv3_small_tiny", mnv3._gen_mobilenet_v3, mnv3, "_create_mnv3", "mobilenetv3_small_100")
_register("mobilenetv3_large_tiny", mnv3._gen_mobilenet_v3, mnv3, "_create_mnv3", "mobilenetv3_large_100")


@tv_register("shufflenet_v2_custom")
def shufflenet_v2_custom(weights=None, **kwargs):
    return tvm.ShuffleNetV2(**kwargs)


@tv_register("vgg_custom")
def vgg_custom(weights=None, cfg=(), batch_norm=False, hidden=4096, num_classes=1000, dropout=0.5):
    m = tv_vgg.VGG(tv_vgg.make_layers(list(cfg), batch_norm=batch_norm), num_classes=num_classes,
                   dropout=dropout)
    last = [c for c in cfg if c != "M"][-1]
    m.classifier[0] = nn.Linear(last * 7 * 7, hidden)
    m.classifier[3] = nn.Linear(hidden, hidden)
    m.classifier[6] = nn.Linear(hidden, num_classes)
    return m


@tv_register("alexnet_custom")
def alexnet_custom(weights=None, widths=(64, 192, 384, 256, 256), hidden=4096, num_classes=1000,
                   dropout=0.5):
    m = tvm.AlexNet(num_classes=num_classes, dropout=dropout)
    chans = [3, *widths]
    for i, idx in enumerate([0, 3, 6, 8, 10]):
        old = m.features[idx]
        m.features[idx] = nn.Conv2d(chans[i], chans[i + 1], old.kernel_size, old.stride, old.padding)
    m.classifier[1] = nn.Linear(widths[-1] * 6 * 6, hidden)
    m.classifier[4] = nn.Linear(hidden, hidden)
    m.classifier[6] = nn.Linear(hidden, num_classes)
    return m


def main():
    argv = sys.argv[1:]
    tool = DEFAULT_TOOL
    if "--parity-tool" in argv:
        i = argv.index("--parity-tool")
        tool = argv[i + 1]
        del argv[i:i + 2]
    spec = importlib.util.spec_from_file_location("make_parity", tool)
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    sys.argv = [tool] + argv
    mp.main()


if __name__ == "__main__":
    main()
