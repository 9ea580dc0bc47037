#!/usr/bin/env python3
"""The fashion-fast recipe written in PyTorch, and kestrel vs PyTorch on it in one run (issue 11).

The recipe is read from kestrel's own file (crates/kestrel-train/configs/fashion-fast.toml, or
--config FILE), so both sides train the same thing:

* data: Fashion-MNIST's IDX files, the training file split 90/10 into train/validation
  (stratified; PyTorch's split is its own seeded draw, not kestrel's), the grayscale image
  repeated to the model's 3 channels and normalised by the model's mean/std (CIFAR's for the
  CIFAR ResNets), at `input_hw`;
* augmentation: zero padding by `crop_padding` and a random crop back, a horizontal flip with
  probability 0.5;
* the model: kestrel's CIFAR ResNets (`ResNetConfig::cifar(n)`: a 3x3 stem of 16, three stages
  of n basic blocks of 16/32/64, 1x1 conv + BN shortcuts where the shape changes);
* SGD with (Nesterov) momentum, weight decay on the >1-D parameters only (timm's
  param_groups_weight_decay), the lr of kestrel's schedule (a linear warm-up prefix from 1% of
  lr, then poly / cosine / onecycle per step, as crates/kestrel-train/src/schedule.rs defines
  them), label-smoothed cross-entropy;
* timm's ModelEmaV3 (with warm-up) when `ema`, the best epoch by the EMA's validation accuracy
  when `ema_eval`, and flip TTA on the test set when `tta_flip`.

Usage:
  python3 scripts/fashion_fast_torch.py train [--epochs N] [--threads 2]
      # the PyTorch run alone; prints per-epoch lines and the test accuracy, writes --json
  python3 scripts/fashion_fast_torch.py compare --kestrel target/release/kestrel [--epochs N]
      # kestrel's `train --config fashion-fast` and this script, one after the other in one run,
      # each timed as a whole command; prints a markdown table with the ratio
"""
import argparse, gzip, json, math, os, shutil, subprocess, sys, tempfile, time, tomllib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar_resnet_torch import BLOCKS, CifarResNet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "crates", "kestrel-train", "configs", "fashion-fast.toml")
DATA = "/usr/share/datasets/fashion-mnist"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def lr_at(cfg, t, total, warmup):
    """kestrel's Schedule::lr for the kinds the recipes use (schedule.rs)."""
    base, lo = cfg["lr"], cfg.get("min_lr", 1e-5)
    if t < warmup:
        start = 0.01 * base
        return start + t * (base - start) / warmup
    u, horizon = t - warmup, max(total - warmup, 1)
    kind = cfg.get("schedule", "cosine")
    if kind == "cosine":
        return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * min(u / horizon, 1.0)))
    if kind == "poly":
        return lo + (base - lo) * (1 - min(u / horizon, 1.0)) ** cfg.get("poly_power", 1.0)
    if kind == "onecycle":
        initial = base / cfg.get("onecycle_div", 25.0)
        rise_end = cfg.get("onecycle_pct", 0.3) * horizon - 1
        anneal = lambda a, b, p: b + (a - b) / 2 * (math.cos(math.pi * p) + 1)
        if u <= rise_end and rise_end > 0:
            return anneal(initial, base, u / rise_end)
        span = horizon - 1 - max(rise_end, 0)
        return anneal(base, lo, min((u - max(rise_end, 0)) / span, 1.0) if span > 0 else 1.0)
    raise SystemExit(f"schedule {kind}: not in this twin")


def train(cfg, threads, epochs, data_dir, seed):
    import torch
    import torch.nn.functional as F
    from timm.utils.model_ema import ModelEmaV3

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    x_all = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y_all = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x_test = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    y_test = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    val_idx = np.concatenate([rng.permutation(np.flatnonzero(y_all == c))[: int(round(0.1 * (y_all == c).sum()))]
                              for c in range(10)])
    train_idx = np.setdiff1d(np.arange(len(y_all)), val_idx)
    h, w = cfg.get("input_hw", [28, 28])
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def tensor(x):
        t = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
        if (h, w) != tuple(t.shape[2:]):
            t = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return t.expand(-1, 3, -1, -1)

    xtr, ytr = tensor(x_all[train_idx]), torch.from_numpy(y_all[train_idx])
    xval, yval = tensor(x_all[val_idx]), torch.from_numpy(y_all[val_idx])
    xte, yte = tensor(x_test), torch.from_numpy(y_test)
    norm = lambda x: (x - mean) / std

    model = CifarResNet(BLOCKS[cfg["model"]], 10)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([dict(params=decay, weight_decay=cfg.get("weight_decay", 0.0)),
                           dict(params=no_decay, weight_decay=0.0)], lr=cfg["lr"],
                          momentum=cfg.get("momentum", 0.9), nesterov=cfg.get("nesterov", False))
    ema = None
    if cfg.get("ema"):
        ema = ModelEmaV3(model, decay=cfg.get("ema_decay", 0.9998), use_warmup=cfg.get("ema_warmup", False))
    batch, pad = cfg.get("batch_size", 128), cfg.get("crop_padding", 0)
    steps_per_epoch = math.ceil(len(ytr) / batch)
    total = epochs * steps_per_epoch
    warmup = min(int(round(cfg.get("warmup_epochs", 1.0) * steps_per_epoch)), total // 2)

    def accuracy(m, x, y, tta=False):
        m.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(y), 512):
                xb = norm(x[i:i + 512])
                p = m(xb).softmax(1)
                if tta:
                    p = 0.5 * (p + m(xb.flip(3)).softmax(1))
                correct += (p.argmax(1) == y[i:i + 512]).sum().item()
        return correct / len(y)

    best, best_state, step, log = -1.0, None, 0, []
    for epoch in range(1, epochs + 1):
        model.train()
        te = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(ytr)))
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            xb = xtr[idx]
            if pad:
                xb = F.pad(xb, (pad, pad, pad, pad))
                # one offset per image, as kestrel draws per sample
                offs = rng.integers(0, 2 * pad + 1, (len(idx), 2))
                xb = torch.stack([xb[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offs)])
            if cfg.get("hflip"):
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step, total, warmup)
            loss = F.cross_entropy(model(norm(xb)), ytr[idx], label_smoothing=cfg.get("label_smoothing", 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if ema is not None:
                ema.update(model, step=step)
        val = accuracy(model, xval, yval)
        ema_val = accuracy(ema.module, xval, yval) if ema is not None else None
        chosen = ema_val if cfg.get("ema_eval") and ema is not None else val
        src = ema.module if cfg.get("ema_eval") and ema is not None else model
        if chosen > best:
            best, best_state = chosen, {k: v.clone() for k, v in src.state_dict().items()}
        line = dict(epoch=epoch, val_accuracy=val, ema_val_accuracy=ema_val, seconds=time.perf_counter() - te)
        log.append(line)
        print(json.dumps(line), flush=True)
    final = CifarResNet(BLOCKS[cfg["model"]], 10)
    final.load_state_dict(best_state)
    test = accuracy(final, xte, yte, tta=cfg.get("tta_flip", False))
    return dict(test_accuracy=test, best_val_accuracy=best, seconds=time.perf_counter() - t0,
                epochs=epochs, log=log, torch=torch.__version__)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "compare"])
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (both sides)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--kestrel", default=os.path.join(ROOT, "target", "release", "kestrel"))
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    with open(a.config, "rb") as f:
        cfg = tomllib.load(f)
    epochs = a.epochs or cfg["epochs"]
    if a.mode == "train":
        r = train(cfg, a.threads, epochs, a.data, cfg.get("seed", 0))
        print(json.dumps({k: v for k, v in r.items() if k != "log"}))
        if a.json:
            json.dump(r, open(a.json, "w"), indent=1)
        return
    out = tempfile.mkdtemp(prefix="fashion_fast_")
    cmd = [a.kestrel, "train", "--data", a.data, "--config", a.config, "--epochs", str(epochs),
           "--out", os.path.join(out, "kestrel"), "--quiet"]
    env = dict(os.environ, KESTREL_THREADS=str(a.threads))
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    k_secs = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    k_acc = json.load(open(os.path.join(out, "kestrel", "metrics.json")))["accuracy"]
    t = time.perf_counter()
    tres = subprocess.run([sys.executable, os.path.abspath(__file__), "train", "--config", a.config,
                           "--epochs", str(epochs), "--threads", str(a.threads), "--data", a.data,
                           "--json", os.path.join(out, "torch.json")], capture_output=True, text=True)
    t_secs = time.perf_counter() - t
    if tres.returncode != 0:
        raise SystemExit(f"the PyTorch twin failed:\n{tres.stderr[-3000:]}")
    t_acc = json.load(open(os.path.join(out, "torch.json")))["test_accuracy"]
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from bench_fast import cpu_model
    print(f"CPU: {cpu_model()}; {a.threads} threads; {epochs} epochs of {a.config}\n")
    print("| run | wall s | test accuracy |\n|---|---|---|")
    print(f"| kestrel `{' '.join(cmd[1:])}` | {k_secs:.0f} | {100 * k_acc:.2f}% |")
    print(f"| PyTorch twin (scripts/fashion_fast_torch.py) | {t_secs:.0f} | {100 * t_acc:.2f}% |")
    print(f"\nkestrel / PyTorch wall time: {k_secs / t_secs:.2f}×")
    if a.json:
        json.dump(dict(kestrel_seconds=k_secs, kestrel_accuracy=k_acc, torch_seconds=t_secs,
                       torch_accuracy=t_acc, epochs=epochs, cpu=cpu_model()), open(a.json, "w"), indent=1)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
