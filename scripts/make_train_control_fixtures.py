#!/usr/bin/env python3
"""Reference fixtures for kestrel-train's training controls: timm's ModelEmaV3 (decay schedule
and the EMA of a model's parameters and BatchNorm buffers), torch's clip_grad_norm_ and
clip_grad_value_, and timm's adaptive_clip_grad.

CI has no torch: the JSON file is committed and tests/train_controls.rs reads it.

    python3 scripts/make_train_control_fixtures.py
    # writes crates/kestrel-train/tests/fixtures/train_controls.json
"""

import copy
import json
from pathlib import Path

import timm
import torch
from timm.utils.agc import adaptive_clip_grad
from timm.utils.model_ema import ModelEmaV3

OUT = Path(__file__).resolve().parent.parent / "crates" / "kestrel-train" / "tests" / "fixtures"


def flat(t):
    # A float32 widened to float64 prints exactly.
    return [float(v) for v in t.detach().reshape(-1).tolist()]


EMA_CONFIGS = [
    dict(decay=0.9, use_warmup=False),
    dict(decay=0.9999, use_warmup=True),
    dict(decay=0.99, use_warmup=True, warmup_power=0.75, min_decay=0.3, update_after_step=2),
]


def ema_fixture():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    out = []
    for cfg in EMA_CONFIGS:
        net = copy.deepcopy(model)
        ema = ModelEmaV3(net, **cfg)
        decays = [ema.get_decay(step) for step in range(1, 41)]
        # Six "optimizer steps": new parameter and buffer values, then ema.update(step=k).
        values, averaged = [], []
        for step in range(1, 7):
            with torch.no_grad():
                for t in list(net.parameters()) + [net[1].running_mean, net[1].running_var]:
                    t.copy_(torch.randn_like(t) + (1.0 if t is net[1].running_var else 0.0))
            state = {k: flat(v) for k, v in net.state_dict().items() if v.is_floating_point()}
            ema.update(net, step=step)
            values.append(state)
            averaged.append(
                {k: flat(v) for k, v in ema.module.state_dict().items() if v.is_floating_point()}
            )
        out.append(dict(config=cfg, decays=decays, values=values, averaged=averaged))
    return out


def clip_fixture():
    torch.manual_seed(1)
    shapes = [[4, 3], [4], [2, 3, 2, 2]]
    params = [torch.randn(s) for s in shapes]
    grads = [torch.randn(s) * 0.7 for s in shapes]
    # One gradient row much larger than its weights, so AGC clips some units and not others.
    grads[0][1] *= 20.0
    cases = []

    def run(mode, threshold, fn):
        ps = [torch.nn.Parameter(p.clone()) for p in params]
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        fn(ps)
        cases.append(dict(mode=mode, threshold=threshold, clipped=[flat(p.grad) for p in ps]))

    for max_norm in [0.5, 1e3]:
        run("norm", max_norm, lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm))
    run("value", 0.3, lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.3))
    for factor in [0.01, 0.5]:
        run("agc", factor, lambda ps: adaptive_clip_grad(ps, clip_factor=factor))
    return dict(
        shapes=shapes,
        params=[flat(p) for p in params],
        grads=[flat(g) for g in grads],
        cases=cases,
    )


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixture = dict(
        versions={"torch": torch.__version__, "timm": timm.__version__},
        ema=ema_fixture(),
        clip=clip_fixture(),
    )
    path = OUT / "train_controls.json"
    path.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
