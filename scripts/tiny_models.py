#!/usr/bin/env python3
"""Run make_parity.py with a few extra, shrinkable timm and torchvision model names registered.

timm's named MobileNets fix the channel multiplier (`mobilenetv2_100` calls its generator with
1.0) and the head width (1280 or 1024 features), so even the narrowest named variant makes a
parity fixture of several MB. The names registered here call timm's own generators
(`_gen_mobilenet_v2`, `_gen_mobilenet_v3`, `_gen_mobilenet_v1`) with the channel multiplier taken
from the kwargs, and, when `num_features` is given, override the head width that the generator
passes to the model class. Everything else (block strings, rounding, SE, activations, init) is
timm's.

torchvision's `tv:*_custom` names below (MobileNetV2/V3, EfficientNet, RegNet, ConvNeXt) build
torchvision's classes from small block settings, for the torchvision-layout import fixtures.

torchvision's ShuffleNetV2, VGG and AlexNet builders fix their widths (VGG's and AlexNet's
4096-wide classifiers alone are over 100 MB). `tv:shufflenet_v2_custom` is torchvision's
`ShuffleNetV2` class with the stage repeats and widths from the kwargs; `tv:vgg_custom` is
torchvision's `VGG` class on `make_layers(cfg, batch_norm)` and `tv:alexnet_custom` torchvision's
`AlexNet`, both with the convolutions and the classifier's Linear layers narrowed (same kernels,
strides, paddings, pooling, dropout placement and forward).

    python3 scripts/tiny_models.py mobilenetv2_tiny --out crates/kestrel-models/tests/fixtures \
        --suffix '' --kwargs '{"channel_multiplier": 0.25, ...}' --input-size 3,56,56

Arguments after the script name are make_parity.py's (see scripts/make_parity.py or
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
DEFAULT_TOOL = os.path.join(HERE, "make_parity.py")


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


@tv_register("vgg_cifar_custom")
def vgg_cifar_custom(weights=None, cfg=(), num_classes=10):
    """kestrel's vgg8_cifar layout (`VggConfig::vgg8_cifar`) on torchvision's VGG: its
    `make_layers` with BN, adaptive average pooling to 1x1 and one Linear as `classifier.0`."""
    m = tv_vgg.VGG(tv_vgg.make_layers(list(cfg), batch_norm=True), num_classes=num_classes)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    last = [c for c in cfg if c != "M"][-1]
    m.classifier = nn.Sequential(nn.Linear(last, num_classes))
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


# torchvision MobileNetV2/V3, EfficientNet, RegNet and ConvNeXt at fixture size: torchvision's own
# classes (their key layout is what these fixtures test), built from small block settings.
import functools

import torch
import torchvision.models.convnext as tv_convnext
import torchvision.models.efficientnet as tv_effnet
import torchvision.models.mobilenetv3 as tv_mnv3
import torchvision.models.regnet as tv_regnet
from torchvision.ops.misc import Conv2dNormActivation


@tv_register("mobilenet_v2_custom")
def mobilenet_v2_custom(weights=None, width_mult=1.0, setting=None, head=1280, num_classes=1000):
    """torchvision's MobileNetV2 with a block setting [t, c, n, s] per stage and the head conv
    (1280 wide, fixed in torchvision) narrowed to `head`."""
    m = tvm.MobileNetV2(num_classes=num_classes, width_mult=width_mult, inverted_residual_setting=setting)
    last_in = m.features[-1][0].in_channels
    m.features[-1] = Conv2dNormActivation(last_in, head, kernel_size=1, norm_layer=nn.BatchNorm2d,
                                          activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(head, num_classes)
    return m


@tv_register("mobilenet_v3_custom")
def mobilenet_v3_custom(weights=None, setting=(), last_channel=1280, num_classes=1000):
    """torchvision's MobileNetV3 class (BN eps 1e-3, Hardsigmoid SE, Linear+Hardswish head) on
    a block setting of InvertedResidualConfig tuples (in, k, expanded, out, se, act, stride)."""
    cfg = [tv_mnv3.InvertedResidualConfig(i, k, e, o, se, act, s, 1, 1.0) for i, k, e, o, se, act, s in setting]
    return tv_mnv3.MobileNetV3(cfg, last_channel, num_classes=num_classes)


@tv_register("efficientnet_custom")
def efficientnet_custom(weights=None, width_mult=1.0, depth_mult=1.0, bn_eps=1e-5, num_classes=1000):
    """torchvision's EfficientNet on B0's block settings scaled by torchvision's own
    width/depth rules, with BatchNorm eps `bn_eps` (torchvision: 1e-5 for B0-B4, 1e-3 for B5-B7)."""
    setting, last = tv_effnet._efficientnet_conf("efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult)
    norm = functools.partial(nn.BatchNorm2d, eps=bn_eps)
    return tv_effnet.EfficientNet(setting, dropout=0.2, num_classes=num_classes, norm_layer=norm,
                                  last_channel=last)


@tv_register("regnet_custom")
def regnet_custom(weights=None, depth=6, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=None,
                  stem_width=32, num_classes=1000):
    """torchvision's RegNet on BlockParams.from_init_params (its own width generator and
    group rounding)."""
    params = tv_regnet.BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m,
                                                    group_width=group_width, se_ratio=se_ratio)
    return tv_regnet.RegNet(params, num_classes=num_classes, stem_width=stem_width)


@tv_register("convnext_custom")
def convnext_custom(weights=None, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_classes=1000):
    """torchvision's ConvNeXt with the given depths and widths. Its layer scale starts at 1e-6
    (a wrong block would hardly show) and make_parity.py only perturbs timm's 1-D `gamma`, so
    each block's `layer_scale` [C, 1, 1] is drawn from U(0.1, 0.5) here."""
    setting = [tv_convnext.CNBlockConfig(d, dims[i + 1] if i + 1 < len(dims) else None, n)
               for i, (d, n) in enumerate(zip(dims, depths))]
    m = tv_convnext.ConvNeXt(setting, num_classes=num_classes)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, tv_convnext.CNBlock):
                mod.layer_scale.uniform_(0.1, 0.5)
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
