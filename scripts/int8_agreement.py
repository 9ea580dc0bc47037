#!/usr/bin/env python3
"""Top-1 agreement of an int8 model (a `kestrel quantize` folder) with the fp32 model it came from,
on a folder of images, both run by `kestrel predict` (fast engine, batch 1).

Usage: python3 scripts/int8_agreement.py --kestrel target/release/kestrel --int8 DIR [DIR ...] \
           --fp32 "--model tf_efficientnet_lite0 --weights lite0.safetensors" --images DIR [--limit 2000]

Real photo crops for --images: scripts/make_bench_photos.py (use another seed than the
calibration folder's).
"""
import argparse, json, os, shlex, subprocess, sys


def top1(kestrel, source_args, images):
    out = subprocess.run([kestrel, "predict", *source_args, "--json", "--top-k", "1", *images],
                         check=True, capture_output=True, text=True).stdout
    return {r["image"]: (r["top"][0]["index"], r["top"][0]["probability"]) for r in json.loads(out)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kestrel", default="target/release/kestrel")
    ap.add_argument("--int8", required=True, nargs="+", help="one or more quantize folders")
    ap.add_argument("--fp32", required=True, help="the fp32 model's source flags, quoted")
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=2000)
    a = ap.parse_args()
    images = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.images) for f in fs
                    if f.lower().endswith((".jpg", ".jpeg", ".png")))[: a.limit]
    if not images:
        sys.exit(f"no images under {a.images}")
    want = top1(a.kestrel, shlex.split(a.fp32), images)
    probs = sorted(want[i][1] for i in images)
    for folder in a.int8:
        got = top1(a.kestrel, ["--checkpoint", folder], images)
        same = sum(want[i][0] == got[i][0] for i in images)
        report = {"int8": folder, "images": len(images), "top1_agree": same,
                  "agreement": same / len(images), "fp32_median_top1_prob": probs[len(probs) // 2]}
        # The crops' difficulty: agreement where fp32 itself is sure of its top-1.
        for p in (0.3, 0.5):
            sure = [i for i in images if want[i][1] >= p]
            agree = sum(want[i][0] == got[i][0] for i in sure)
            report[f"fp32_prob_ge_{p}"] = {"images": len(sure), "top1_agree": agree,
                                           "agreement": agree / max(len(sure), 1)}
        print(json.dumps(report, indent=1), flush=True)


if __name__ == "__main__":
    main()
