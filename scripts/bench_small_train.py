#!/usr/bin/env python3
"""Small-image training throughput, kestrel vs PyTorch eager, in one run (issue 9's small-image row).

LeNet-5 (1×32×32, batch 64) and resnet20_cifar (3×32×32, batch 128): one training step is
forward, backward and an AdamW update, on random tensors held in memory, so per-op overhead is
what is measured. timm has neither model, so the PyTorch twins are defined here to match
kestrel's (`crates/kestrel-models/src/lenet.rs`, `ResNetConfig::cifar(3)`): LeNet-5 with the
scaled tanh and 2×2 average pooling; ResNet-20 with a 3×3 stem of 16, three stages of three basic
blocks (16/32/64, stride 2 at stages 2 and 3, 1×1 conv + BN shortcuts where the shape changes).

kestrel's figure is `kestrel bench --train-batch N`'s median step (3 timed after a warm-up);
PyTorch's is the median of --torch-steps timed steps after 3 warm-ups, in its own process (its
peak RSS is that process's). Rounds alternate. Prints a markdown table with images/s.

Usage: python3 scripts/bench_small_train.py --kestrel target/release/kestrel [--rounds 3] [--threads 2]
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_fast import cpu_model, cpu_flags  # noqa: E402

MODELS = {"lenet5": (64, 1, 10), "resnet20_cifar": (128, 3, 10)}


def torch_model(name, in_ch, classes):
    import torch.nn as nn

    class ScaledTanh(nn.Module):
        def forward(self, x):
            return 1.7159 * (x * (2.0 / 3.0)).tanh()

    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(in_ch, 6, 5), ScaledTanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), ScaledTanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), ScaledTanh(), nn.Flatten(),
            nn.Linear(120, 84), ScaledTanh(), nn.Linear(84, classes))

    from cifar_resnet_torch import CifarResNet
    return CifarResNet(3, classes, in_ch)


def torch_one(name, threads, steps):
    import torch
    torch.set_num_threads(threads)
    batch, in_ch, classes = MODELS[name]
    model = torch_model(name, in_ch, classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, in_ch, 32, 32)
    y = torch.randint(0, classes, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(3 + steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(train_step_ms=1e3 * statistics.median(times), peak_rss_bytes=peak)))


def kestrel_step(exe, name, threads):
    batch = MODELS[name][0]
    env = dict(os.environ, KESTREL_THREADS=str(threads))
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        cmd = [exe, "bench", "--model", name, "--batch", "1", "--runs", "1", "--train-batch",
               str(batch), "--threads", str(threads), "--json", t.name]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
        r = json.load(open(t.name))[0]
        return dict(train_step_ms=r["train_step_ms"], peak_rss_bytes=r.get("peak_rss_bytes"))


def torch_step(name, threads, steps):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-one", name, "--threads", str(threads),
           "--torch-steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-steps", type=int, default=20)
    ap.add_argument("--torch-one", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    if a.torch_one:
        return torch_one(a.torch_one, a.threads, a.torch_steps)
    raw = {m: {"kestrel": [], "torch": []} for m in MODELS}
    for r in range(a.rounds):
        for m in MODELS:
            raw[m]["kestrel"].append(kestrel_step(a.kestrel, m, a.threads))
            raw[m]["torch"].append(torch_step(m, a.threads, a.torch_steps))
            print(f"round {r + 1}: {m} " + ", ".join(
                f"{k} {v[-1]['train_step_ms']:.1f} ms" for k, v in raw[m].items()), file=sys.stderr)
    load = os.getloadavg()
    print(f"CPU: {cpu_model()} ({', '.join(cpu_flags())}); {a.threads} threads; {a.rounds} rounds; "
          f"load average after: {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n")
    print("| model (batch) | kestrel ms/step | PyTorch ms/step | kestrel img/s | PyTorch img/s "
          "| kestrel / PyTorch time | peak MiB kestrel / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for m, (batch, _, _) in MODELS.items():
        med = {k: statistics.median(x["train_step_ms"] for x in v) for k, v in raw[m].items()}
        rss = {k: max((x["peak_rss_bytes"] or 0) for x in v) / 2**20 for k, v in raw[m].items()}
        print(f"| {m} ({batch}) | {med['kestrel']:.1f} | {med['torch']:.1f} | "
              f"{1e3 * batch / med['kestrel']:,.0f} | {1e3 * batch / med['torch']:,.0f} | "
              f"{med['kestrel'] / med['torch']:.2f}× | {rss['kestrel']:,.0f} / {rss['torch']:,.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), flags=cpu_flags(), threads=a.threads, raw=raw), f, indent=1)


if __name__ == "__main__":
    main()
