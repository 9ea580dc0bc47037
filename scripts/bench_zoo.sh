#!/usr/bin/env bash
# kestrel vs PyTorch eager vs onnxruntime on this CPU, 2 threads each, default input sizes.
# Writes JSON lines to stdout (kestrel first, then the peers). Few repetitions: the machine is
# shared. Usage: scripts/bench_zoo.sh [NAME ...]   (default: resnet50 resnet18 convnext_tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(resnet50 resnet18 convnext_tiny)
export RAYON_NUM_THREADS=2
cargo build --release -p kestrel-models --example bench_zoo >&2
./target/release/examples/bench_zoo "${names[@]}" --quick
python3 scripts/bench_peers.py "${names[@]}" --threads 2 --quick --train-batch 8
