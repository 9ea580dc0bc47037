#!/usr/bin/env python3
"""int8 against fp32, kestrel and onnxruntime, in one run: batch-1 latency of
  kestrel's fast engine, fp32 (`kestrel bench --model NAME`) and int8 (`kestrel quantize` of the
  same architecture, then `kestrel bench --checkpoint DIR`), and
  onnxruntime on `kestrel export` of the model, fp32 and int8 (onnxruntime.quantization.
  quantize_static: QDQ, per-channel s8 weights, u8 activations, reduce_range as onnxruntime
  advises for CPUs without VNNI (off where the CPU has VNNI; --reduce-range on|off overrides),
  calibrated on the same images).
Random weights (speed does not depend on them); rounds alternate the engines so that load drift
hits all alike. Prints a markdown table of the medians, and writes every figure to --json.

Usage: python3 scripts/bench_int8.py --kestrel target/release/kestrel --calib PHOTOS_DIR \
           resnet50 mobilenetv2_100 [--threads 2] [--rounds 3] [--runs 20] [--json out.json]
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time

import numpy as np


def kestrel_b1(kestrel, args, runs, threads, tmp):
    out = os.path.join(tmp, "bench.json")
    subprocess.run([kestrel, "bench", *args, "--batch", "1", "--train-batch", "0", "--runs",
                    str(runs), "--threads", str(threads), "--json", out],
                   check=True, capture_output=True, text=True)
    return [e["latency_ms_b1"] for e in json.load(open(out))]


def ort_b1(sess, x, runs):
    for _ in range(3):
        sess.run(None, {"input": x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def calib_inputs(calib, size, count):
    from PIL import Image
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(calib) for f in fs
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))[:count]
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    for f in files:
        im = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
        x = np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0
        yield ((x - mean) / std)[None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="+")
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--calib-images", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--reduce-range", choices=["auto", "on", "off"], default="auto")
    a = ap.parse_args()
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo")
                  if l.startswith("flags")), [])
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    reduce_range = {"on": True, "off": False, "auto": not vnni}[a.reduce_range]
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.names:
            qdir = os.path.join(tmp, name + "-int8")
            subprocess.run([a.kestrel, "quantize", "--model", name, "--calib", a.calib,
                            "--calib-images", str(a.calib_images), "--output", qdir],
                           check=True, capture_output=True, text=True)
            fp32_onnx = os.path.join(tmp, name + ".onnx")
            subprocess.run([a.kestrel, "export", "--model", name, "--output", fp32_onnx],
                           check=True, capture_output=True, text=True)
            import onnx
            m = onnx.load(fp32_onnx)
            dims = m.graph.input[0].type.tensor_type.shape.dim
            size = dims[2].dim_value
            pre = os.path.join(tmp, name + ".pre.onnx")
            quant_pre_process(fp32_onnx, pre)
            int8_onnx = os.path.join(tmp, name + ".int8.onnx")

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter(calib_inputs(a.calib, size, a.calib_images))

                def get_next(self):
                    x = next(self.it, None)
                    return None if x is None else {"input": x}

            quantize_static(pre, int8_onnx, Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.inter_op_num_threads = 1
            sessions = {k: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                        for k, p in [("ort_fp32", fp32_onnx), ("ort_int8", int8_onnx)]}
            x = np.random.default_rng(0).standard_normal((1, 3, size, size), np.float32)
            rows = {k: [] for k in ["kestrel_fp32", "kestrel_int8", "ort_fp32", "ort_int8"]}
            for _ in range(a.rounds):
                f, q = kestrel_b1(a.kestrel, ["--model", name, "--checkpoint", qdir], a.runs,
                                  a.threads, tmp)
                rows["kestrel_fp32"].append(f)
                rows["kestrel_int8"].append(q)
                for k, s in sessions.items():
                    rows[k].append(ort_b1(s, x, a.runs))
            med = {k: statistics.median(v) for k, v in rows.items()}
            sizes = {"kestrel_int8_file": os.path.getsize(os.path.join(qdir, "model.int8.safetensors")),
                     "onnx_fp32_file": os.path.getsize(fp32_onnx),
                     "onnx_int8_file": os.path.getsize(int8_onnx)}
            results.append(dict(model=name, size=size, median_ms=med, rounds=rows, **sizes,
                                load_avg=os.getloadavg()))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"CPU: {cpu}, {a.threads} threads, VNNI {vnni}, onnxruntime {ort.__version__} "
          f"(reduce_range {reduce_range}), median of {a.rounds} rounds x {a.runs} runs, batch 1\n")
    print("| model | kestrel fp32 ms | kestrel int8 ms | speed-up | ORT fp32 ms | ORT int8 ms | ORT speed-up | kestrel int8 / ORT int8 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["median_ms"]
        print(f"| {r['model']} | {m['kestrel_fp32']:.1f} | {m['kestrel_int8']:.1f} | "
              f"{m['kestrel_fp32'] / m['kestrel_int8']:.2f}x | {m['ort_fp32']:.1f} | {m['ort_int8']:.1f} | "
              f"{m['ort_fp32'] / m['ort_int8']:.2f}x | {m['kestrel_int8'] / m['ort_int8']:.2f} |")
    if a.json:
        json.dump(dict(cpu=cpu, threads=a.threads, vnni=vnni, reduce_range=reduce_range,
                       results=results), open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
