#!/usr/bin/env bash
# Load test of `kestrel serve` on loopback (docs/serving.md): p50/p99 latency and throughput at
# several concurrencies with and without dynamic batching, then an overload run (more clients
# than --queue) that must give 503s, no crash, and a bounded peak RSS.
# Bounded: each measurement stops after REQUESTS requests or SECONDS seconds.
#
# Usage: scripts/serve_loadtest.sh [MODEL] [REQUESTS] [SECONDS]   (default resnet18 200 30)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-resnet18}
REQUESTS=${2:-200}
SECONDS_MAX=${3:-30}
BIN=target/release/kestrel
nice -n 10 cargo build --release --workspace --example loadgen >/dev/null
LOADGEN=target/release/examples/loadgen
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$TMP/cat.png" <<'PY'
import sys, zlib, struct, random
# A 256x256 noise PNG (stdlib only).
random.seed(0)
w = h = 256
raw = b"".join(b"\x00" + bytes(random.randrange(256) for _ in range(3 * w)) for _ in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

run_server() { # extra flags...
  "$BIN" serve --model "$MODEL" --random-weights --addr 127.0.0.1:0 "$@" >"$TMP/serve.out" 2>"$TMP/serve.err" &
  SERVER=$!
  for _ in $(seq 100); do grep -q listening "$TMP/serve.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed -n 's|.*http://||p' "$TMP/serve.out")
}
stop_server() {
  kill -TERM "$SERVER"
  wait "$SERVER"; echo "server exit code: $?"
  grep VmHWM "/proc/$SERVER/status" 2>/dev/null || true
}
peak_rss() { grep VmHWM "/proc/$SERVER/status" | awk '{print $2 / 1024 " MiB"}'; }

for batching in "--max-batch 1" "--max-batch 16 --max-delay-ms 5"; do
  echo "== $MODEL, $batching"
  run_server $batching
  "$LOADGEN" "$ADDR" "$TMP/cat.png" 1 5 10 >/dev/null   # warm-up
  for c in 1 4 16 64; do
    "$LOADGEN" "$ADDR" "$TMP/cat.png" "$c" "$REQUESTS" "$SECONDS_MAX"
  done
  echo "peak RSS: $(peak_rss)"
  curl -s "http://$ADDR/metrics" | grep -E '^kestrel_batch_size_(sum|count)' || true
  stop_server
done

echo "== overload: --queue 32, 256 clients"
run_server --max-batch 16 --max-delay-ms 5 --queue 32
"$LOADGEN" "$ADDR" "$TMP/cat.png" 256 $((REQUESTS * 4)) "$SECONDS_MAX"
echo "peak RSS: $(peak_rss)"
"$LOADGEN" "$ADDR" "$TMP/cat.png" 1 5 10
curl -s "http://$ADDR/metrics" | grep -E '^kestrel_requests_total' || true
stop_server
