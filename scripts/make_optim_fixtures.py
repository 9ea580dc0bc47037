#!/usr/bin/env python3
"""Reference fixtures for kestrel-train's optimizers, lr schedules and losses.

The numbers come from torch.optim, timm.optim, torch.optim.lr_scheduler, timm.scheduler and
torch.nn.functional, so the Rust tests check kestrel against an independent implementation.
CI has no torch: the JSON files are committed and the tests read them.

    python3 scripts/make_optim_fixtures.py   # writes crates/kestrel-train/tests/fixtures/*.json
"""

import json
import warnings
from pathlib import Path

import timm
import timm.loss
import timm.optim
import timm.scheduler
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "crates" / "kestrel-train" / "tests" / "fixtures"

# Floats go out at full precision: a float32 widened to float64 prints exactly.
def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def versions():
    return {"torch": torch.__version__, "timm": timm.__version__}


# ----------------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------------

class Params(torch.nn.Module):
    """Parameters of several ranks named as a real net names them, so timm's
    param_groups_weight_decay puts the 1-D ones (bias, norm) in the no-decay group."""

    def __init__(self, gen):
        super().__init__()
        self.conv = torch.nn.Module()
        self.conv.weight = torch.nn.Parameter(torch.randn(3, 2, 2, 2, generator=gen))
        self.conv.bias = torch.nn.Parameter(torch.randn(3, generator=gen))
        self.norm = torch.nn.Module()
        self.norm.weight = torch.nn.Parameter(1.0 + 0.1 * torch.randn(3, generator=gen))
        self.fc = torch.nn.Module()
        self.fc.weight = torch.nn.Parameter(torch.randn(4, 3, generator=gen))
        self.fc.bias = torch.nn.Parameter(torch.randn(4, generator=gen))


OPTIMIZER_CASES = [
    # name, timm opt name, kwargs for timm.optim.create_optimizer_v2, kestrel hyper-parameters
    ("sgd", "momentum", dict(momentum=0.0, weight_decay=0.01),
     dict(optimizer="sgd", momentum=0.0, weight_decay=0.01)),
    ("sgd_momentum_dampening", "momentum", dict(momentum=0.9, dampening=0.1, weight_decay=0.01),
     dict(optimizer="sgd", momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd_nesterov", "sgd", dict(momentum=0.9, nesterov=True, weight_decay=0.05),
     dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adam", "adam", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
     dict(optimizer="adam", betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01)),
    ("adamw", "adamw", dict(betas=(0.8, 0.99), eps=1e-8, weight_decay=0.05),
     dict(optimizer="adamw", betas=[0.8, 0.99], eps=1e-8, weight_decay=0.05)),
    ("rmsprop", "rmsprop", dict(alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=0.01),
     dict(optimizer="rmsprop", rmsprop_alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=0.01)),
    ("rmsprop_centered_no_momentum", "rmsprop",
     dict(alpha=0.99, eps=1e-8, momentum=0.0, centered=True, weight_decay=0.01),
     dict(optimizer="rmsprop", rmsprop_alpha=0.99, eps=1e-8, momentum=0.0, centered=True,
          weight_decay=0.01)),
    ("rmsproptf", "rmsproptf", dict(alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=0.01),
     dict(optimizer="rmsproptf", rmsprop_alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=0.01)),
    ("rmsproptf_centered_no_momentum", "rmsproptf",
     dict(alpha=0.9, eps=1e-3, momentum=0.0, centered=True, weight_decay=0.01),
     dict(optimizer="rmsproptf", rmsprop_alpha=0.9, eps=1e-3, momentum=0.0, centered=True,
          weight_decay=0.01)),
    ("lamb", "lamb", dict(betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, max_grad_norm=1.0),
     dict(optimizer="lamb", betas=[0.9, 0.999], eps=1e-6, weight_decay=0.01,
          lamb_max_grad_norm=1.0)),
    ("lamb_trust_clip_always_adapt_no_averaging", "lamb",
     dict(betas=(0.9, 0.99), eps=1e-6, weight_decay=0.02, max_grad_norm=None, trust_clip=True,
          always_adapt=True, grad_averaging=False),
     dict(optimizer="lamb", betas=[0.9, 0.99], eps=1e-6, weight_decay=0.02,
          lamb_max_grad_norm=None, lamb_trust_clip=True, lamb_always_adapt=True,
          lamb_grad_averaging=False)),
]

# A different lr each step, so a test also catches an lr that is read at the wrong time.
OPTIMIZER_LRS = [0.05, 0.1, 0.08, 0.02, 0.04, 0.03, 0.01]


def optimizer_case(name, timm_name, timm_kwargs, kestrel):
    gen = torch.Generator().manual_seed(sum(map(ord, name)))  # stable, unlike the salted hash()
    model = Params(gen)
    names = [n for n, _ in model.named_parameters()]
    init = {n: flat(p) for n, p in model.named_parameters()}
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    lr = OPTIMIZER_LRS[0]
    # filter_bias_and_bn=True: timm's param_groups_weight_decay (no decay on 1-D parameters).
    # On CPU tensors torch and timm take their single-tensor (for-loop) code paths.
    opt = timm.optim.create_optimizer_v2(
        model, opt=timm_name, lr=lr, filter_bias_and_bn=True, **timm_kwargs)
    groups = [
        {"weight_decay": g["weight_decay"],
         "params": [n for n, p in model.named_parameters() if any(p is q for q in g["params"])]}
        for g in opt.param_groups
    ]
    steps = []
    for lr in OPTIMIZER_LRS:
        for g in opt.param_groups:
            g["lr"] = lr
        # Gradients of a few scales; large enough that Lamb's global-norm clip engages.
        grads = {n: 3.0 * torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()
        opt.step()
        steps.append({
            "lr": lr,
            "grads": {n: flat(grads[n]) for n in names},
            "params": {n: flat(p) for n, p in model.named_parameters()},
        })
    return {
        "name": name,
        "reference": f"timm.optim.create_optimizer_v2(opt={timm_name!r}) -> {type(opt).__module__}.{type(opt).__name__}",
        "hparams": kestrel,
        "param_names": names,
        "shapes": shapes,
        "init": init,
        "groups": groups,
        "steps": steps,
    }


# ----------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------

def _opt(lr):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lr(opt):
    return opt.param_groups[0]["lr"]


def timm_sequence(make, base_lr, total):
    opt = _opt(base_lr)
    sched = make(opt)
    out = []
    for t in range(total):
        sched.step_update(num_updates=t)
        out.append(_lr(opt))
    return out


def torch_sequence(make_main, base_lr, warmup, warmup_lr, total):
    """Linear warm-up (torch LinearLR) for `warmup` units, then the main torch scheduler counted
    from the end of warm-up: what torch's SequentialLR means, stepped by hand."""
    out = []
    if warmup > 0:
        opt = _opt(base_lr)
        lin = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=warmup_lr / base_lr, end_factor=1.0, total_iters=warmup)
        for _ in range(warmup):
            out.append(_lr(opt))
            lin.step()
    opt = _opt(base_lr)
    main = make_main(opt)
    for t in range(total - warmup):
        out.append(_lr(opt))
        if t + 1 < total - warmup:
            main.step()
    return out


def schedule_case(name, schedule, epochs, steps_per_epoch, per, warmup_epochs, lr, warmup_lr,
                  min_lr=0.0, **extra):
    units_per_epoch = steps_per_epoch if per == "step" else 1
    total = epochs * units_per_epoch
    warmup = round(warmup_epochs * units_per_epoch)
    main_len = total - warmup
    upe = units_per_epoch
    warm = dict(warmup_t=warmup, warmup_lr_init=warmup_lr, warmup_prefix=True, t_in_epochs=False)
    if schedule == "constant":
        ref = "torch LinearLR warm-up, then LambdaLR(1.0)"
        seq = torch_sequence(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0),
                             lr, warmup, warmup_lr, total)
    elif schedule == "step":
        ref = "timm.scheduler.StepLRScheduler(warmup_prefix=True)"
        seq = timm_sequence(lambda o: timm.scheduler.StepLRScheduler(
            o, decay_t=extra["decay_epochs"] * upe, decay_rate=extra["decay_rate"], **warm),
            lr, total)
    elif schedule == "multistep":
        ref = "torch LinearLR warm-up, then torch.optim.lr_scheduler.MultiStepLR"
        seq = torch_sequence(lambda o: torch.optim.lr_scheduler.MultiStepLR(
            o, milestones=[round(m * upe) for m in extra["decay_milestones"]],
            gamma=extra["decay_rate"]), lr, warmup, warmup_lr, total)
    elif schedule == "exponential":
        ref = "torch LinearLR warm-up, then torch.optim.lr_scheduler.ExponentialLR"
        # --decay-rate is per epoch; updated per step it is the per-step root.
        gamma = extra["decay_rate"] ** (1.0 / upe)
        seq = torch_sequence(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=gamma),
                             lr, warmup, warmup_lr, total)
    elif schedule == "cosine":
        ref = "timm.scheduler.CosineLRScheduler(warmup_prefix=True)"
        seq = timm_sequence(lambda o: timm.scheduler.CosineLRScheduler(
            o, t_initial=main_len, lr_min=min_lr, cycle_limit=1, **warm), lr, total)
    elif schedule == "cosine-restarts":
        ref = "timm.scheduler.CosineLRScheduler(cycle_mul, cycle_decay, warmup_prefix=True) (SGDR)"
        seq = timm_sequence(lambda o: timm.scheduler.CosineLRScheduler(
            o, t_initial=round(extra["restart_epochs"] * upe), lr_min=min_lr,
            cycle_mul=extra["restart_mult"], cycle_decay=extra["restart_decay"],
            cycle_limit=10**6, **warm), lr, total)
    elif schedule == "poly":
        ref = "timm.scheduler.PolyLRScheduler(warmup_prefix=True)"
        seq = timm_sequence(lambda o: timm.scheduler.PolyLRScheduler(
            o, t_initial=main_len, power=extra["poly_power"], lr_min=min_lr, cycle_limit=1,
            **warm), lr, total)
    elif schedule == "onecycle":
        ref = "torch LinearLR warm-up, then torch.optim.lr_scheduler.OneCycleLR(cycle_momentum=False)"
        div = extra["onecycle_div"]
        seq = torch_sequence(lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=lr, total_steps=main_len, pct_start=extra["onecycle_pct"],
            anneal_strategy="cos", div_factor=div, final_div_factor=(lr / div) / min_lr,
            cycle_momentum=False), lr, warmup, warmup_lr, total)
    else:
        raise ValueError(schedule)
    assert len(seq) == total
    return {
        "name": name, "reference": ref, "schedule": schedule, "epochs": epochs,
        "steps_per_epoch": steps_per_epoch, "per": per, "warmup_epochs": warmup_epochs,
        "lr": lr, "warmup_lr": warmup_lr, "min_lr": min_lr, **extra, "lrs": seq,
    }


SCHEDULE_CASES = [
    dict(name="constant_step", schedule="constant", epochs=3, steps_per_epoch=7, per="step",
         warmup_epochs=1, lr=0.1, warmup_lr=1e-3),
    dict(name="step_step", schedule="step", epochs=10, steps_per_epoch=5, per="step",
         warmup_epochs=1, lr=0.1, warmup_lr=1e-4, decay_epochs=3, decay_rate=0.5),
    dict(name="step_epoch", schedule="step", epochs=30, steps_per_epoch=5, per="epoch",
         warmup_epochs=2, lr=0.1, warmup_lr=1e-4, decay_epochs=4, decay_rate=0.1),
    dict(name="multistep_step", schedule="multistep", epochs=12, steps_per_epoch=4, per="step",
         warmup_epochs=2, lr=0.2, warmup_lr=2e-3, decay_milestones=[3, 6.5, 9], decay_rate=0.1),
    dict(name="multistep_epoch", schedule="multistep", epochs=20, steps_per_epoch=4,
         per="epoch", warmup_epochs=0, lr=0.2, warmup_lr=2e-3, decay_milestones=[5, 10, 15],
         decay_rate=0.2),
    dict(name="exponential_step", schedule="exponential", epochs=6, steps_per_epoch=5,
         per="step", warmup_epochs=1, lr=0.05, warmup_lr=5e-4, decay_rate=0.8),
    dict(name="exponential_epoch", schedule="exponential", epochs=25, steps_per_epoch=5,
         per="epoch", warmup_epochs=3, lr=0.05, warmup_lr=5e-4, decay_rate=0.9),
    dict(name="cosine_step", schedule="cosine", epochs=8, steps_per_epoch=9, per="step",
         warmup_epochs=1, lr=0.1, warmup_lr=1e-3, min_lr=1e-5),
    dict(name="cosine_epoch", schedule="cosine", epochs=40, steps_per_epoch=9, per="epoch",
         warmup_epochs=5, lr=2e-3, warmup_lr=1e-6, min_lr=1e-5),
    dict(name="cosine_restarts_step", schedule="cosine-restarts", epochs=15, steps_per_epoch=4,
         per="step", warmup_epochs=1, lr=0.1, warmup_lr=1e-3, min_lr=1e-4, restart_epochs=2,
         restart_mult=2.0, restart_decay=0.5),
    dict(name="cosine_restarts_epoch_no_mult", schedule="cosine-restarts", epochs=50,
         steps_per_epoch=4, per="epoch", warmup_epochs=2, lr=0.1, warmup_lr=1e-3, min_lr=1e-4,
         restart_epochs=10, restart_mult=1.0, restart_decay=0.8),
    dict(name="poly_step", schedule="poly", epochs=6, steps_per_epoch=8, per="step",
         warmup_epochs=1, lr=0.1, warmup_lr=1e-3, min_lr=1e-4, poly_power=2.0),
    dict(name="poly_epoch", schedule="poly", epochs=30, steps_per_epoch=8, per="epoch",
         warmup_epochs=0, lr=0.1, warmup_lr=1e-3, min_lr=0.0, poly_power=0.5),
    dict(name="onecycle_step", schedule="onecycle", epochs=10, steps_per_epoch=10, per="step",
         warmup_epochs=0, lr=0.4, warmup_lr=1e-3, min_lr=1e-5, onecycle_pct=0.3,
         onecycle_div=25.0),
    dict(name="onecycle_step_warmup", schedule="onecycle", epochs=10, steps_per_epoch=6,
         per="step", warmup_epochs=1, lr=0.4, warmup_lr=1e-3, min_lr=1e-6, onecycle_pct=0.25,
         onecycle_div=10.0),
]


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

def loss_cases():
    gen = torch.Generator().manual_seed(11)
    n, k = 6, 5
    logits = 2.0 * torch.randn(n, k, generator=gen)
    labels = torch.randint(0, k, (n,), generator=gen)
    teacher = 3.0 * torch.randn(n, k, generator=gen)
    dist_logits = 2.0 * torch.randn(n, k, generator=gen)
    # Mixup-style soft targets: a convex mix of two smoothed one-hot rows per sample.
    perm = torch.randperm(n, generator=gen)
    lam = 0.7
    smooth = 0.1
    one_hot = torch.full((n, k), smooth / k).scatter_(1, labels.view(-1, 1), 1 - smooth + smooth / k)
    soft = lam * one_hot + (1 - lam) * one_hot[perm]

    cases = []

    def add(name, reference, value, **inputs):
        cases.append({"name": name, "reference": reference, "value": float(value), **inputs})

    common = dict(logits=flat(logits), n=n, k=k)
    for eps in (0.0, 0.1, 0.3):
        add(f"ce_smoothing_{eps}", f"F.cross_entropy(label_smoothing={eps})",
            F.cross_entropy(logits, labels, label_smoothing=eps), labels=labels.tolist(),
            smoothing=eps, **common)
    add("soft_target_ce", "timm.loss.SoftTargetCrossEntropy",
        timm.loss.SoftTargetCrossEntropy()(logits, soft), targets=flat(soft), **common)
    for eps, thresh, sum_classes in ((0.0, None, False), (0.1, None, False), (0.1, 0.2, False),
                                      (0.0, None, True)):
        bce = timm.loss.BinaryCrossEntropy(smoothing=eps, target_threshold=thresh,
                                           sum_classes=sum_classes)
        add(f"bce_smoothing_{eps}_thresh_{thresh}_sum_{sum_classes}",
            "timm.loss.BinaryCrossEntropy", bce(logits, labels), labels=labels.tolist(),
            smoothing=eps, target_threshold=thresh, sum_classes=sum_classes, **common)
    bce = timm.loss.BinaryCrossEntropy(smoothing=0.0, target_threshold=0.2)
    add("bce_soft_targets_thresh_0.2", "timm.loss.BinaryCrossEntropy(soft targets)",
        bce(logits, soft), targets=flat(soft), smoothing=0.0, target_threshold=0.2,
        sum_classes=False, **common)
    bce = timm.loss.BinaryCrossEntropy(smoothing=0.0)
    add("bce_soft_targets", "timm.loss.BinaryCrossEntropy(soft targets)", bce(logits, soft),
        targets=flat(soft), smoothing=0.0, target_threshold=None, sum_classes=False, **common)
    for t, alpha, eps in ((4.0, 0.7, 0.0), (1.0, 0.5, 0.1), (2.5, 1.0, 0.0)):
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher / t, dim=1),
                      reduction="batchmean", log_target=True) * t * t
        ce = F.cross_entropy(logits, labels, label_smoothing=eps)
        add(f"kd_T{t}_alpha{alpha}_smoothing{eps}",
            "F.kl_div(log_softmax(s/T), log_softmax(t/T), batchmean, log_target)*T^2*a"
            " + F.cross_entropy*(1-a)",
            alpha * kl + (1 - alpha) * ce, labels=labels.tolist(), teacher=flat(teacher),
            temperature=t, alpha=alpha, smoothing=eps, **common)
    # DeiT's DistillationLoss, distillation_type='hard': CE on the teacher's argmax for the
    # distillation head, averaged (alpha) with the base criterion on the class head.
    for alpha, eps in ((0.5, 0.0), (0.5, 0.1), (0.3, 0.0)):
        base = F.cross_entropy(logits, labels, label_smoothing=eps)
        hard = F.cross_entropy(dist_logits, teacher.argmax(dim=1))
        add(f"deit_hard_alpha{alpha}_smoothing{eps}", "DeiT DistillationLoss(hard)",
            base * (1 - alpha) + hard * alpha, labels=labels.tolist(), teacher=flat(teacher),
            dist_logits=flat(dist_logits), alpha=alpha, smoothing=eps, **common)
    return cases


def write(name, obj):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(obj) + "\n")
    print(f"wrote {path}")


def main():
    torch.set_default_dtype(torch.float32)
    # The schedulers are stepped without an optimizer step: only their lr values are wanted.
    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
    write("optimizers.json", {"generated_by": "scripts/make_optim_fixtures.py", **versions(),
                              "cases": [optimizer_case(*c) for c in OPTIMIZER_CASES]})
    write("schedules.json", {"generated_by": "scripts/make_optim_fixtures.py", **versions(),
                             "cases": [schedule_case(**c) for c in SCHEDULE_CASES]})
    write("losses.json", {"generated_by": "scripts/make_optim_fixtures.py", **versions(),
                          "cases": loss_cases()})


if __name__ == "__main__":
    main()
