#!/usr/bin/env python3
"""One training step (forward, backward, AdamW update) in kestrel and in PyTorch eager, in one run.

For each round and each model, alternating so that load drifts hit every contender alike:
  kestrel bench --train-batch N                   (convolutions on kestrel's kernels, the default)
  KESTREL_CONV=burn kestrel bench --train-batch N (burn-flex's own convolution, for comparison)
  scripts/bench_peers.py --one --no-onnx          (timm's model, torch.optim.AdamW, same threads)
Random weights and inputs at the model's default input size, batch N; each figure is the median
of the contender's own timed steps (kestrel: 3 after 1 warm-up; PyTorch: --train-runs after 1).
Prints a markdown table of the medians over rounds, with the CPU model and the kestrel/PyTorch
ratio, and writes every raw figure to --json.

Usage: python3 scripts/bench_train.py --kestrel target/release/kestrel resnet18 mobilenetv2_100 \
           [--train-batch 32] [--threads 2] [--rounds 3] [--no-burn] [--json out.json]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_fast import cpu_model, cpu_flags  # noqa: E402


def kestrel_step(exe, model, conv, a):
    env = dict(os.environ, KESTREL_CONV=conv, KESTREL_THREADS=str(a.threads))
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        cmd = [exe, "bench", "--model", model, "--batch", "1", "--runs", "1",
               "--train-batch", str(a.train_batch), "--threads", str(a.threads), "--json", t.name]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
        r = json.load(open(t.name))[0]
        return dict(train_step_ms=r["train_step_ms"], peak_rss_bytes=r.get("peak_rss_bytes"))


def torch_step(model, a):
    cmd = [sys.executable, os.path.join(HERE, "bench_peers.py"), model, "--one", "--no-onnx",
           "--threads", str(a.threads), "--batch", "1", "--latency-runs", "1", "--throughput-runs", "1",
           "--train-batch", str(a.train_batch), "--train-runs", str(a.train_runs)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])["torch"]
    return dict(train_step_ms=r["train_step_ms"], peak_rss_bytes=r.get("peak_rss_bytes"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--train-runs", type=int, default=3)
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--no-burn", action="store_true",
                    help="skip the KESTREL_CONV=burn comparison (burn-flex's own ops; the slowest run)")
    a = ap.parse_args()
    raw = {m: {"kestrel": [], "kestrel_burn_conv": [], "torch": []} for m in a.models}
    if a.no_burn:
        for m in a.models:
            del raw[m]["kestrel_burn_conv"]
    for r in range(a.rounds):
        for m in a.models:
            raw[m]["kestrel"].append(kestrel_step(a.kestrel, m, "kestrel", a))
            raw[m]["torch"].append(torch_step(m, a))
            if not a.no_burn:
                raw[m]["kestrel_burn_conv"].append(kestrel_step(a.kestrel, m, "burn", a))
            print(f"round {r + 1}: {m} " + ", ".join(
                f"{k} {v[-1]['train_step_ms']:.0f} ms" for k, v in raw[m].items()), file=sys.stderr)
    load = os.getloadavg()
    print(f"CPU: {cpu_model()} ({', '.join(cpu_flags())}); {a.threads} threads; "
          f"training batch {a.train_batch}; {a.rounds} rounds; load average after: "
          f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n")
    print("| model | kestrel (ms) | kestrel, burn's conv (ms) | PyTorch eager (ms) | kestrel / PyTorch "
          "| peak MiB kestrel / PyTorch |")
    print("|---|---|---|---|---|---|")
    for m in a.models:
        med = {k: statistics.median(x["train_step_ms"] for x in v) for k, v in raw[m].items()}
        rss = {k: max((x["peak_rss_bytes"] or 0) for x in v) / 2**20 for k, v in raw[m].items()}
        burn = f"{med['kestrel_burn_conv']:,.0f}" if "kestrel_burn_conv" in med else "–"
        print(f"| {m} | {med['kestrel']:,.0f} | {burn} | {med['torch']:,.0f} "
              f"| {med['kestrel'] / med['torch']:.2f}× | {rss['kestrel']:,.0f} / {rss['torch']:,.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), flags=cpu_flags(), threads=a.threads,
                           train_batch=a.train_batch, raw=raw), f, indent=1)


if __name__ == "__main__":
    main()
