#!/usr/bin/env python3
"""Peer figures for kestrel's benchmark: PyTorch eager and onnxruntime on the CPU, for a list of
timm model names at their default input size. Prints one JSON object per model (the same fields
as kestrel_models::bench::BenchResult where they apply).

Each model runs in its own subprocess so that peak RSS (ru_maxrss) belongs to that model.
Threads: torch.set_num_threads(N) and onnxruntime intra_op_num_threads=N (default 2).

OMP_WAIT_POLICY defaults to PASSIVE here: on a shared, oversubscribed machine PyTorch's spinning
OpenMP threads otherwise slow it down by an order of magnitude (resnet18 b1: 1.9 s vs 0.12 s
measured under load ~7 on 2 cores), which would misrepresent it. Export it to override.

Usage: python3 scripts/bench_peers.py resnet50 convnext_tiny [--threads 2] [--quick]
       [--train-batch 32] [--no-onnx]
"""
import argparse, json, os, subprocess, sys, tempfile, time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pct(xs, q):
    xs = sorted(xs)
    import math
    return xs[max(1, min(len(xs), math.ceil(q * len(xs)))) - 1]


def timed(f, runs, warmup):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def bench_one(name, a):
    import resource
    import torch, timm
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = timm.create_model(name, pretrained=False).eval()
    c, h, w = m.pretrained_cfg["input_size"]
    params = sum(p.numel() for p in m.parameters())
    x1 = torch.randn(1, c, h, w)
    xb = torch.randn(a.batch, c, h, w)
    res = dict(model=name, input=[c, h, w], params=params, threads=a.threads, load_avg=os.getloadavg(),
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
               torch_version=torch.__version__, timm=timm.__version__)
    with torch.inference_mode():
        lat = timed(lambda: m(x1), a.latency_runs, a.warmup)
        thr = timed(lambda: m(xb), a.throughput_runs, 1)
    res["torch"] = dict(latency_ms_b1=pct(lat, 0.5), latency_ms_b1_p90=pct(lat, 0.9),
                        throughput=a.batch / (pct(thr, 0.5) / 1000.0), throughput_batch=a.batch)
    if a.train_runs > 0:
        mt = timm.create_model(name, pretrained=False).train()
        opt = torch.optim.AdamW(mt.parameters(), lr=1e-4)
        xt = torch.randn(a.train_batch, c, h, w)
        yt = torch.arange(a.train_batch) % mt.num_classes
        lossf = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = lossf(mt(xt), yt)
            loss.backward()
            opt.step()
        tr = timed(step, a.train_runs, 1)
        res["torch"]["train_step_ms"] = pct(tr, 0.5)
        res["torch"]["train_batch"] = a.train_batch
        del mt, opt
    res["torch"]["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if not a.no_onnx:
        import onnxruntime as ort
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            torch.onnx.export(m, (x1,), path, opset_version=17, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              do_constant_folding=True, dynamo=False)
            # onnxruntime runs in a process of its own, without torch, so that its peak RSS is
            # onnxruntime's alone.
            cmd = [sys.executable, __file__, "--ort-only", path, "--threads", str(a.threads),
                   "--batch", str(a.batch), "--latency-runs", str(a.latency_runs),
                   "--throughput-runs", str(a.throughput_runs), "--warmup", str(a.warmup),
                   "--input", ",".join(str(v) for v in (c, h, w))]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"onnxruntime run failed:\n{out.stderr[-2000:]}")
            res["onnxruntime"] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def ort_only(path, a):
    """onnxruntime alone on an exported model: latency, throughput and this process's peak RSS."""
    import resource
    import numpy as np
    import onnxruntime as ort
    c, h, w = (int(v) for v in a.input.split(","))
    rng = np.random.default_rng(0)
    n1 = rng.standard_normal((1, c, h, w), dtype=np.float32)
    nb = rng.standard_normal((a.batch, c, h, w), dtype=np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    lat = timed(lambda: sess.run(None, {"input": n1}), a.latency_runs, a.warmup)
    thr = timed(lambda: sess.run(None, {"input": nb}), a.throughput_runs, 1)
    return dict(version=ort.__version__, latency_ms_b1=pct(lat, 0.5), latency_ms_b1_p90=pct(lat, 0.9),
                throughput=a.batch / (pct(thr, 0.5) / 1000.0), throughput_batch=a.batch,
                peak_rss_bytes=own_peak_rss())


def own_peak_rss():
    """This process's peak RSS since its exec (VmHWM). getrusage's ru_maxrss is not that: Linux
    carries the parent's resident set at fork into the child's maximum across exec, so a child of
    the torch process would report torch's memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--latency-runs", type=int)
    ap.add_argument("--throughput-runs", type=int)
    ap.add_argument("--train-runs", type=int)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--quick", action="store_true", help="warmup 1, 5 latency runs, 2 throughput/train runs (as kestrel's bench_zoo --quick; pass --train-batch 8 to match its training batch)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ort-only", metavar="MODEL.onnx", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    a = ap.parse_args()
    # Explicit values win; otherwise --quick's or the defaults.
    for key, full, quick in [("warmup", 2, 1), ("latency_runs", 10, 5), ("throughput_runs", 3, 2),
                             ("train_runs", 3, 2)]:
        if getattr(a, key) is None:
            setattr(a, key, quick if a.quick else full)
    if a.ort_only:
        print(json.dumps(ort_only(a.ort_only, a)))
        return
    if not a.names:
        ap.error("name at least one timm model")
    if a.one:
        print(json.dumps(bench_one(a.names[0], a)))
        return
    passthrough = [arg for arg in sys.argv[1:] if arg not in a.names]
    for name in a.names:
        out = subprocess.run([sys.executable, __file__, name, "--one"] + passthrough,
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(json.dumps(dict(model=name, error=out.stderr.strip()[-800:])))
        else:
            print(out.stdout.strip().splitlines()[-1])
        sys.stdout.flush()


if __name__ == "__main__":
    main()
