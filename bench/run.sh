#!/usr/bin/env bash
# The benchmark: builds the tiny static child and the C baseline, runs the same scenarios
# under Deno and under Bun, and writes bench/results/{latest.json,chart.svg} and bench/RESULTS.md.
#   bash bench/run.sh [--quick] [--only=N[,N]]
# With --only, the partial results go to .tools/bench/only/{deno,bun}.json and the report
# (which needs every scenario) is not redrawn.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p .tools/bench/only bench/results
zig build-exe -O ReleaseSmall -fstrip -femit-bin=.tools/bench/tiny bench/tiny.zig
zig cc -O2 -o .tools/bench/c_baseline bench/c_baseline.c
export BENCH_TINY="$ROOT/.tools/bench/tiny" BENCH_C="$ROOT/.tools/bench/c_baseline"
out=bench/results
case " $* " in *" --only="*) out=.tools/bench/only ;; esac
deno run -A --v8-flags=--expose-gc bench/bench.ts "$out/deno.json" "$@"
bun bench/bench.ts "$out/bun.json" "$@"
if [ "$out" = bench/results ]; then deno run -A bench/report.ts >/dev/null && deno fmt -q bench/RESULTS.md; fi
