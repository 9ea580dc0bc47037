#!/usr/bin/env python3
"""Shrunk timm models that timm's create_model kwargs cannot express, for parity fixtures.

EfficientNet's model functions fix channel/depth multipliers, stem and head sizes (passing them
as kwargs is a duplicate-argument error), so this registers extra timm models built by timm's own
generators with small multipliers, then runs make_parity.py in the same process:

  python3 scripts/timm_tiny.py scripts/make_parity.py efficientnet_tiny --out DIR ...
"""
import runpy, sys

import timm
from timm.models import efficientnet as ef
from timm.models._registry import register_model

# Channel multiplier 0.2 (widths 8..64, stem 8, head 256), depth multiplier 0.3 (stage repeats
# 1,1,1,1,1,2,1): every block kind, a DS block with a skip, IR blocks with and without skips.
CM, DM = 0.2, 0.3


def _tf(kw):
    kw.setdefault('bn_eps', 1e-3)
    kw.setdefault('pad_type', 'same')
    return kw


@register_model
def efficientnet_tiny(pretrained=False, **kw):
    return ef._gen_efficientnet('efficientnet_b0', CM, DM, pretrained=False, **kw)


@register_model
def tf_efficientnet_tiny(pretrained=False, **kw):
    return ef._gen_efficientnet('tf_efficientnet_b0', CM, DM, pretrained=False, **_tf(kw))


@register_model
def efficientnet_lite_tiny(pretrained=False, **kw):
    return ef._gen_efficientnet_lite('efficientnet_lite0', CM, DM, pretrained=False, **kw)


@register_model
def tf_efficientnet_lite_tiny(pretrained=False, **kw):
    return ef._gen_efficientnet_lite('tf_efficientnet_lite0', CM, DM, pretrained=False, **_tf(kw))


if __name__ == '__main__':
    tool = sys.argv[1]
    sys.argv = [tool] + sys.argv[2:]
    runpy.run_path(tool, run_name='__main__')
