#!/usr/bin/env bash
# The benchmark: builds the tiny static child and the C baseline, runs the same scenarios
# under Deno and under Bun, and writes bench/results/{latest.json,latest.md,chart.svg}.
#   bash bench/run.sh [--quick]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p .tools/bench bench/results
zig build-exe -O ReleaseSmall -fstrip -femit-bin=.tools/bench/tiny bench/tiny.zig
zig cc -O2 -o .tools/bench/c_baseline bench/c_baseline.c
export BENCH_TINY="$ROOT/.tools/bench/tiny" BENCH_C="$ROOT/.tools/bench/c_baseline"
deno run -A --v8-flags=--expose-gc bench/bench.ts bench/results/deno.json "$@"
bun bench/bench.ts bench/results/bun.json "$@"
deno run -A bench/report.ts
