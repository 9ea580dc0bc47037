#!/usr/bin/env bash
# One command for a machine with a real GPU (issue 15), meant to finish in under 5 minutes on a
# 16-core host:
#   1. builds kestrel (wgpu is in every build) and, with CUDA=1, the cuda backend too (cubecl-cuda
#      downloads an LLVM bundle at build time, so that needs internet access);
#   2. lists the devices (`kestrel devices`);
#   3. parity on the GPU: the timm fixtures of four layer kinds through `--device wgpu`
#      (kestrel-models' gpu_parity tests) and the CLI's GPU-vs-CPU tests (kestrel-cli's gpu tests);
#   4. benchmarks inference (batch 1 and batch B) and one training step on the GPU and on this
#      host's CPU, in the same run;
#   5. writes the table for docs/benchmarks.md to $OUT/gpu_table.md (and the raw JSON beside it).
#
# Usage: bash scripts/gpu_check.sh [OUT_DIR]    (env: DEVICE=wgpu:0, BATCH=32, MODELS="...", CUDA=1)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_check}}
DEVICE=${DEVICE:-wgpu}
BATCH=${BATCH:-32}
MODELS=${MODELS:-"resnet50 mobilenetv2_100 convnext_tiny vit_small_patch16_224"}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/gpu_check.log"; }
start=$(date +%s)

# One build for the binary and the test binaries: `--workspace` everywhere, since `-p CRATE`
# can unify burn's dependencies' features differently and rebuild burn.
log "build (cargo build --release --workspace --bins --tests)"
cargo build --release --workspace --bins --tests 2>&1 | tail -n 3 | tee -a "$OUT/gpu_check.log"
KESTREL=target/release/kestrel
if [ "${CUDA:-0}" = 1 ]; then
  log "build with --features cuda"
  if cargo build --release -p kestrel-cli --features cuda --target-dir target/cuda 2>&1 \
      | tail -n 5 | tee -a "$OUT/gpu_check.log"; then
    echo "cuda build: ok (target/cuda/release/kestrel)" | tee -a "$OUT/gpu_check.log"
  else
    echo "cuda build: failed (see above)" | tee -a "$OUT/gpu_check.log"
  fi
fi

log "devices"
"$KESTREL" devices | tee "$OUT/devices.txt"
"$KESTREL" devices --json > "$OUT/devices.json"

log "parity on $DEVICE (timm fixtures; GPU vs CPU through the CLI)"
parity=ok
CI=true cargo test --release --workspace --test models_tests gpu_parity 2>&1 \
  | grep -E "^test |test result" | tee "$OUT/parity.txt" || parity=failed
CI=true cargo test --release --workspace --test cli_tests gpu:: 2>&1 \
  | grep -E "^test |test result" | tee -a "$OUT/parity.txt" || parity=failed
grep -q "FAILED\|failed;" "$OUT/parity.txt" && parity=failed
echo "parity: $parity" | tee -a "$OUT/gpu_check.log"

log "benchmarks: $MODELS (batch 1, batch $BATCH, one training step at batch $BATCH)"
for m in $MODELS; do
  "$KESTREL" bench --model "$m" --device "$DEVICE" --batch "$BATCH" --train-batch "$BATCH" \
    --runs 20 --json "$OUT/bench_${m}_gpu.json" | tee -a "$OUT/gpu_check.log"
  "$KESTREL" bench --model "$m" --device cpu --batch "$BATCH" --train-batch "$BATCH" \
    --train-runs 2 --runs 10 --json "$OUT/bench_${m}_cpu.json" | tee -a "$OUT/gpu_check.log"
done

python3 - "$OUT" "$parity" $MODELS <<'EOF' | tee "$OUT/gpu_table.md"
import json, sys
out, parity, models = sys.argv[1], sys.argv[2], sys.argv[3:]
devices = json.load(open(f"{out}/devices.json"))
def entry(path):
    data = json.load(open(path))
    return data[0] if isinstance(data, list) else data
gpus = [d for d in devices if d["spec"] != "cpu"]
cpu = devices[0]
print(f"GPU: {', '.join(d['name'] + ' (' + d['backend'] + ', ' + d['driver'] + ')' for d in gpus) or 'none'}; "
      f"CPU: {cpu['name']} ({cpu.get('threads')} threads); parity: {parity}.\n")
print("| model | GPU b1 ms | CPU b1 ms | GPU img/s | CPU img/s | GPU train step ms | CPU train step ms |")
print("|---|---|---|---|---|---|---|")
for m in models:
    g, c = entry(f"{out}/bench_{m}_gpu.json"), entry(f"{out}/bench_{m}_cpu.json")
    f = lambda v: "-" if v is None else f"{v:.1f}"
    print(f"| {m} | {f(g['latency_ms_b1'])} | {f(c['latency_ms_b1'])} | {f(g['throughput'])} | "
          f"{f(c['throughput'])} | {f(g['train_step_ms'])} | {f(c['train_step_ms'])} |")
EOF
log "done in $(( $(date +%s) - start )) s; table: $OUT/gpu_table.md"
