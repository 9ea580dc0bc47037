#!/usr/bin/env python3
"""kestrel's fast inference engine side by side with onnxruntime and PyTorch eager, in one run.

For each round and each model, alternating so that load drifts hit every engine alike:
  kestrel bench --engine fast   (and --engine burn with --with-burn)
  scripts/bench_peers.py --one  (PyTorch eager and onnxruntime, same thread count)
Random weights at the model's default input size; batch-1 latency (median of --runs) and
batch-N throughput. Prints a markdown table of the medians over rounds, with the CPU model and
the kestrel/ORT ratios, and writes every raw figure to --json.

Usage: python3 scripts/bench_fast.py --kestrel target/release/kestrel resnet50 mobilenetv2_100 \
           efficientnet_b0 convnext_tiny [--threads 2] [--rounds 3] [--batch 32] [--json out.json]
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags]
    except OSError:
        pass
    return []


def kestrel_bench(exe, model, engine, a):
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        cmd = [exe, "bench", "--model", model, "--engine", engine, "--batch", str(a.batch),
               "--train-batch", "0", "--runs", str(a.runs), "--threads", str(a.threads), "--json", t.name]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
        r = json.load(open(t.name))[0]
        return dict(engine=r.get("engine", engine), latency_ms_b1=r["latency_ms_b1"],
                    throughput=r["throughput"], peak_rss_bytes=r.get("peak_rss_bytes"))


def peers_bench(model, a):
    cmd = [sys.executable, os.path.join(HERE, "bench_peers.py"), model, "--one", "--threads", str(a.threads),
           "--batch", str(a.batch), "--train-runs", "0", "--latency-runs", str(a.runs), "--throughput-runs", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    res = {}
    for k in ("torch", "onnxruntime"):
        if k in r:
            res[k] = dict(latency_ms_b1=r[k]["latency_ms_b1"], throughput=r[k]["throughput"],
                          peak_rss_bytes=r[k].get("peak_rss_bytes"))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--with-burn", action="store_true", help="also time --engine burn")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    raw = {m: {} for m in a.models}
    for rnd in range(a.rounds):
        for m in a.models:
            runs = [("kestrel-fast", lambda: kestrel_bench(a.kestrel, m, "fast", a))]
            if a.with_burn:
                runs.append(("kestrel-burn", lambda: kestrel_bench(a.kestrel, m, "burn", a)))
            runs.append(("peers", lambda: peers_bench(m, a)))
            # Alternate the order between rounds.
            if rnd % 2:
                runs.reverse()
            for name, f in runs:
                r = f()
                if name == "peers":
                    for k, v in r.items():
                        raw[m].setdefault(k, []).append(v)
                else:
                    raw[m].setdefault(name, []).append(r)
            print(f"round {rnd + 1}/{a.rounds} {m}: " + ", ".join(
                f"{k} {v[-1]['latency_ms_b1']:.1f} ms" for k, v in raw[m].items()), file=sys.stderr)

    med = lambda rs, key: statistics.median(r[key] for r in rs)
    print(f"CPU: {cpu_model()} ({', '.join(cpu_flags())}), {a.threads} threads, {a.rounds} rounds, "
          f"load average at the end {os.getloadavg()[0]:.2f}\n")
    cols = ["kestrel-fast"] + (["kestrel-burn"] if a.with_burn else []) + ["onnxruntime", "torch"]
    head = "| model | " + " | ".join(f"{c} b1 ms" for c in cols) + " | " + \
        " | ".join(f"{c} b{a.batch} img/s" for c in cols) + " | fast/ORT b1 | fast/ORT b" + str(a.batch) + " |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(cols) + 1))
    for m in a.models:
        r = raw[m]
        lat = [med(r[c], "latency_ms_b1") if c in r else float("nan") for c in cols]
        thr = [med(r[c], "throughput") if c in r else float("nan") for c in cols]
        ort_lat = med(r["onnxruntime"], "latency_ms_b1") if "onnxruntime" in r else float("nan")
        ort_thr = med(r["onnxruntime"], "throughput") if "onnxruntime" in r else float("nan")
        print(f"| {m} | " + " | ".join(f"{v:.2f}" for v in lat) + " | " + " | ".join(f"{v:.1f}" for v in thr) +
              f" | {lat[0] / ort_lat:.2f}× | {ort_thr / thr[0]:.2f}× |")
    # Peak memory: each engine in its own process (kestrel's bench process also builds the burn
    # model and counts MACs; PyTorch's holds the timm model; onnxruntime's only its session).
    mib = lambda rs: statistics.median(r["peak_rss_bytes"] for r in rs) / 2**20 \
        if rs and all(r.get("peak_rss_bytes") for r in rs) else float("nan")
    print("\n| model | peak MiB kestrel fast | peak MiB onnxruntime | peak MiB PyTorch |")
    print("|---|---|---|---|")
    for m in a.models:
        r = raw[m]
        print(f"| {m} | {mib(r.get('kestrel-fast')):.0f} | {mib(r.get('onnxruntime')):.0f} | "
              f"{mib(r.get('torch')):.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), flags=cpu_flags(), threads=a.threads, rounds=a.rounds,
                           batch=a.batch, raw=raw), f, indent=1)


if __name__ == "__main__":
    main()
