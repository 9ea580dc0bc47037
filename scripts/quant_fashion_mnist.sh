#!/bin/bash
# The Fashion-MNIST int8 accuracy table of docs/deploy.md: resnet8_cifar and mobilenetv2_050
# trained with the fashion-fast recipe (4 epochs), quantized (minmax, 512 training images as
# calibration PNGs), and both evaluated on the 10,000 test images.
# Usage: scripts/quant_fashion_mnist.sh (from the repository root; OUT, KESTREL, FASHION_MNIST,
# EPOCHS override). Prints each model's fp32 and int8 test accuracy; the metrics.json files
# and quantize_report.json stay under $OUT.
set -euo pipefail
export FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
K=${KESTREL:-$(pwd)/target/release/kestrel}
OUT=${OUT:-/tmp/quant-fm}
EPOCHS=${EPOCHS:-4}
mkdir -p "$OUT"
cd "$OUT"
python3 - <<'PY'
import gzip, os, struct
from PIL import Image
src = os.environ["FASHION_MNIST"]
with gzip.open(f"{src}/train-images-idx3-ubyte.gz") as f:
    data = f.read()
n, h, w = struct.unpack(">III", data[4:16])
os.makedirs("calib", exist_ok=True)
# The first 512 training images (calibration never sees the test split).
for i in range(512):
    px = data[16 + i * h * w:16 + (i + 1) * h * w]
    Image.frombytes("L", (w, h), px).save(f"calib/{i:04d}.png")
PY
for M in resnet8_cifar mobilenetv2_050; do
  [ -f "fp32_$M/model.safetensors" ] || "$K" train --config fashion-fast --data "$FASHION_MNIST" \
      --model "$M" --epochs "$EPOCHS" --quiet --out "fp32_$M" > "train_$M.log" 2>&1
  "$K" quantize --checkpoint "fp32_$M" --calib calib --calib-images 512 --output "int8_$M" \
      > "quantize_$M.log" 2>&1
  "$K" eval --checkpoint "fp32_$M" --engine fast --out "eval_fp32_$M" > "eval_fp32_$M.log" 2>&1
  "$K" eval --checkpoint "int8_$M" --out "eval_int8_$M" > "eval_int8_$M.log" 2>&1
  python3 - "$M" <<'PY'
import json, sys
m = sys.argv[1]
a = json.load(open(f"eval_fp32_{m}/metrics.json"))["accuracy"]
b = json.load(open(f"eval_int8_{m}/metrics.json"))["accuracy"]
r = json.load(open(f"int8_{m}/quantize_report.json"))
print(f"{m}: fp32 {100*a:.2f}%  int8 {100*b:.2f}%  drop {100*(a-b):.2f} points  "
      f"file ratio {r.get('size_ratio', r)}")
PY
done
