#!/usr/bin/env bash
# Runs one fuzz target's built libFuzzer binary (as `cargo fuzz run -s none` builds it) on its
# corpus (fuzz/corpus/T, gitignored) seeded from fuzz/seeds/T, niced, one process, and logs
# libFuzzer's output to fuzz/logs/T.out and fuzz-0.log.  Usage: [BIN_DIR=target-dir] fuzz/run_target.sh TARGET MAX_LEN [RUNS]
set -euo pipefail
cd "$(dirname "$0")"
t=$1; max_len=$2; runs=${3:-10000000}
mkdir -p corpus/$t artifacts/$t logs
start=$(date +%s)
set +e
/usr/bin/time -v nice -n 19 ${BIN_DIR:-target}/x86_64-unknown-linux-gnu/release/$t corpus/$t seeds/$t \
  -runs=$runs -max_len=$max_len -rss_limit_mb=2048 -timeout=${TIMEOUT:-10} -workers=1 -jobs=1 \
  -print_final_stats=1 -artifact_prefix=artifacts/$t/ > logs/$t.out 2>&1
rc=$?
set -e
end=$(date +%s)
echo "target=$t rc=$rc seconds=$((end-start)) corpus_files=$(ls corpus/$t | wc -l) corpus_bytes=$(du -sb corpus/$t | cut -f1)" | tee -a logs/summary.txt
