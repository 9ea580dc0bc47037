#!/usr/bin/env python3
"""Reference MAC and parameter counts of timm models (ViT/DeiT/Swin, CoAtNet/MaxViT, and CNNs such as the
ResNet-D family, which have no attention modules), for crates/kestrel-models/tests/registry.rs:
forward hooks at 1x3xHxW sum conv and linear MACs (out elements x in-features per group x
kernel), plus the two attention matmuls of every attention module (q·kᵀ and attn·v:
2·B'·heads·N²·head_dim, from the module's input shape), and sum(p.numel()).

  python3 scripts/transformer_macs.py vit_tiny_patch16_224 swin_tiny_patch4_window7_224 resnet50d
"""
import sys

import timm
import torch
import torch.nn as nn
from timm.layers import Attention
from timm.models.swin_transformer import WindowAttention
from timm.models.maxxvit import Attention2d, AttentionCl


def count(name):
    m = timm.create_model(name, pretrained=False).eval()
    total = [0]

    def conv(mod, inp, out):
        total[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    def linear(mod, inp, out):
        total[0] += out.numel() // mod.out_features * mod.in_features * mod.out_features

    def attn(mod, inp, out):
        b, n, c = inp[0].shape
        total[0] += 2 * b * mod.num_heads * n * n * (c // mod.num_heads)

    def attn_maxx(mod, inp, out):
        # Attention2d takes NCHW maps, AttentionCl [B', ..., C] partitions: N tokens either way.
        x = inp[0]
        b = x.shape[0]
        n = x.shape[2] * x.shape[3] if isinstance(mod, Attention2d) else x[0, ..., 0].numel()
        total[0] += 2 * b * mod.num_heads * n * n * mod.dim_head

    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_hook(conv)
        elif isinstance(mod, nn.Linear):
            mod.register_forward_hook(linear)
        elif isinstance(mod, (Attention, WindowAttention)):
            mod.register_forward_hook(attn)
        elif isinstance(mod, (Attention2d, AttentionCl)):
            mod.register_forward_hook(attn_maxx)
    size = m.pretrained_cfg['input_size']
    with torch.no_grad():
        m(torch.zeros(1, *size))
    return total[0], sum(p.numel() for p in m.parameters())


if __name__ == '__main__':
    for name in sys.argv[1:]:
        macs, params = count(name)
        print(f'{name}: macs {macs} params {params}')
