#!/usr/bin/env python3
"""Developer check: timm's trainable-parameter counts for every registered ConvNeXt variant
(tests/convnext_registry.rs hard-codes the cheap ones)."""
import timm

for name in ["convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano",
             "convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]:
    m = timm.create_model(name)
    print(f"{name:16s} {sum(p.numel() for p in m.parameters()):>12,d}")
