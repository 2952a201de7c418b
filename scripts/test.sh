#!/usr/bin/env bash
# The whole test suite: Zig unit tests, static checks, the same TypeScript tests under Deno
# and Bun, then the core suites again under seccomp faults that force each fallback.
# Ends with one line "N passed, N failed" counting every test that ran.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" || exit 1
cd "$ROOT"
LOGS=$(mktemp -d)
passed=0
failed=0
status=0

count() { # name, passed, failed
  printf '[test] %s: %s passed, %s failed\n' "$1" "$2" "$3"
  passed=$((passed + $2))
  failed=$((failed + $3))
  [ "$3" -eq 0 ] || status=1
}

# Every failure is repeated at the end as "[failed] suite: what", so the last lines of a CI log
# name it. recap suite log pattern: the log's lines matching pattern, or the log's tail when the
# suite printed no summary at all (it crashed or hung).
RECAP="$LOGS/recap"
: >"$RECAP"
recap() { # suite, log, extended regex of failure lines ("" = the suite printed no summary)
  if [ -n "$3" ]; then
    grep -E "$3" "$2" | head -n 20 | sed "s/\x1b\[[0-9;]*m//g; s|^|[failed] $1: |" >>"$RECAP"
  else
    tail -n 15 "$2" | sed "s/\x1b\[[0-9;]*m//g; s|^|[failed] $1 (no summary; its last lines): |" >>"$RECAP"
  fi
}

zig_suite() { # label, command prefix...
  local label=$1
  shift
  echo "[test] $label"
  (cd zig && limited "$@" zig build test --summary all) >"$LOGS/zig.log" 2>&1 || status=1
  cat "$LOGS/zig.log"
  local line
  line=$(grep -Eo '[0-9]+/[0-9]+ tests passed' "$LOGS/zig.log" | tail -1)
  if [ -n "$line" ]; then
    local zp=${line%%/*} zt=${line#*/} zs
    zt=${zt%% *}
    # A test that skips itself (SkipZigTest: a fault takes away what it needs) is not a failure.
    zs=$(grep -Eo 'tests passed; [0-9]+ skipped' "$LOGS/zig.log" | tail -1 | grep -Eo '[0-9]+ skipped' | cut -d' ' -f1)
    count "$label" "$zp" $((zt - zp - ${zs:-0}))
    [ $((zt - zp - ${zs:-0})) -eq 0 ] || recap "$label" "$LOGS/zig.log" 'FAIL|error:'
  else
    count "$label" 0 1
    recap "$label" "$LOGS/zig.log" ""
  fi
}

# A suite whose runner exits non-zero though none of its tests failed (an error outside any
# test, a leak check, a crash after the summary) counts as one failure.
exited_badly() { # suite, exit status, log
  count "$1, exit status $2 with no failed test" 0 1
  tail -n 15 "$3" | sed "s|^|[failed] $1 (exit status $2; its last lines): |" >>"$RECAP"
}

# Each runner has a time limit: a test that blocks its runtime's thread in a system call would
# otherwise hold the whole run until CI's own limit. A suite takes 1-3 minutes here; the limit
# leaves room for a loaded machine. `timeout` signals the runner's whole process group (the
# runtime, its reaper or helper, its children), SIGKILL 30 s after SIGTERM.
SUITE_LIMIT_S=${PH_SUITE_LIMIT_S:-600}
limited() { # command...
  timeout --kill-after=30 "$SUITE_LIMIT_S" "$@"
}
timed_out() { # exit status
  [ "$1" -eq 124 ] || [ "$1" -eq 137 ]
}

# A runner that dies without printing its summary (the runtime crashed, or could not start a
# thread under pid pressure) runs once more; the first run's last lines go to the recap as
# "[rerun]", so a crash is never hidden, and the rerun's own results are what count. A runner
# that ran out of time is not run again (it would most likely hang again): the suite fails.
rerun_if_silent() { # label, log, summary regex, command...
  local label=$1 log=$2 summary=$3 rc=$4
  shift 4
  grep -qE "$summary" "$log" && return "$rc"
  if timed_out "$rc"; then
    echo "[test] $label: killed after its time limit of $SUITE_LIMIT_S s (PH_SUITE_LIMIT_S)" | tee -a "$log"
    return "$rc"
  fi
  tail -n 15 "$log" | sed "s|^|[rerun] $label (exit status $rc, no summary; its last lines): |" >>"$RECAP"
  echo "[test] $label: the runner ended without a summary (exit status $rc); running it once more"
  limited "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

deno_suite() { # label, command prefix...
  local label=$1
  shift
  echo "[test] $label"
  NO_COLOR=1 limited "$@" deno test -A --quiet --v8-flags=--expose-gc tests/ 2>&1 | tee "$LOGS/deno.log"
  local rc=${PIPESTATUS[0]} line summary='^(ok|FAILED) \| [0-9]+ passed'
  rerun_if_silent "$label" "$LOGS/deno.log" "$summary" "$rc" \
    env NO_COLOR=1 "$@" deno test -A --quiet --v8-flags=--expose-gc tests/
  rc=$?
  line=$(grep -E "$summary" "$LOGS/deno.log" | tail -1)
  if [ -n "$line" ]; then
    count "$label" "$(echo "$line" | grep -Eo '[0-9]+ passed' | cut -d' ' -f1)" \
      "$(echo "$line" | grep -Eo '[0-9]+ failed' | cut -d' ' -f1)"
    [[ "$line" != FAILED* ]] || recap "$label" "$LOGS/deno.log" '\.\.\. FAILED|=> '
    [ "$rc" -eq 0 ] || [[ "$line" == FAILED* ]] || exited_badly "$label" "$rc" "$LOGS/deno.log"
  else
    count "$label" 0 1
    recap "$label" "$LOGS/deno.log" ""
  fi
}

bun_suite() { # label, command prefix...
  local label=$1
  shift
  echo "[test] $label"
  limited "$@" bun test --timeout 300000 tests/ 2>&1 | tee "$LOGS/bun.log"
  local rc=${PIPESTATUS[0]} bp bf
  rerun_if_silent "$label" "$LOGS/bun.log" '^ *[0-9]+ pass$' "$rc" "$@" bun test --timeout 300000 tests/
  rc=$?
  bp=$(grep -E '^ *[0-9]+ pass$' "$LOGS/bun.log" | tail -1 | grep -Eo '[0-9]+')
  bf=$(grep -E '^ *[0-9]+ fail$' "$LOGS/bun.log" | tail -1 | grep -Eo '[0-9]+')
  if [ -n "$bp" ]; then
    count "$label" "$bp" "${bf:-0}"
    [ "${bf:-0}" -eq 0 ] || recap "$label" "$LOGS/bun.log" '^\(fail\)'
    [ "$rc" -eq 0 ] || [ "${bf:-0}" -ne 0 ] || exited_badly "$label" "$rc" "$LOGS/bun.log"
  else
    count "$label" 0 1
    recap "$label" "$LOGS/bun.log" ""
  fi
}

check() { # name, command...
  local name=$1
  shift
  if "$@" >"$LOGS/check.log" 2>&1; then
    count "$name" 1 0
  else
    cat "$LOGS/check.log"
    count "$name" 0 1
    recap "$name" "$LOGS/check.log" ""
  fi
}

no_warnings() { # runs a command and fails on any "warning" in its output
  "$@" >"$LOGS/nw.log" 2>&1 || { cat "$LOGS/nw.log"; return 1; }
  ! grep -qi "warning" "$LOGS/nw.log" || { cat "$LOGS/nw.log"; return 1; }
}

# Helpers the tests use: the tiny static child and the seccomp launcher.
mkdir -p .tools/bench
zig build-exe -O ReleaseSmall -fstrip -femit-bin=.tools/bench/tiny bench/tiny.zig || exit 1
# The launcher is built into this checkout (.tools may be shared with other checkouts, whose
# launcher may lack a mode this one has).
mkdir -p zig/zig-out/test-tools
zig cc -O2 -o zig/zig-out/test-tools/seccomp_launcher tests/fault/seccomp_launcher.c || exit 1
export PH_SECCOMP_LAUNCHER="$ROOT/zig/zig-out/test-tools/seccomp_launcher"
export BENCH_TINY="$ROOT/.tools/bench/tiny"

zig_suite "zig build test"

echo "[test] static checks"
check "deno fmt --check" deno fmt --check
check "deno lint" deno lint
check "deno check" deno check mod.ts tests/ bench/ demo/ scripts/
check "deno doc --lint" deno doc --lint mod.ts
# The published files as a Bun user type-checks them: tsc --strict with bun-types, no Deno types.
check "tsc --strict with bun-types" tsc -p tests/tsconfig.bun.json
# The code blocks of the README and docs/, and every JSDoc example, type-check.
check "deno check --doc-only (markdown)" deno check --doc-only README.md docs/*.md docs/decisions/*.md bench/NOTES.md \
  tests/README.md
check "deno check --doc-only (JSDoc examples)" deno check --doc-only mod.ts src/
check "deno publish --dry-run" no_warnings deno publish --dry-run --allow-dirty
check "zig build prebuilt" bash -c "cd zig && zig build prebuilt"
# ffi/abi.ts and ffi/symbols.ts are generated from the Zig ABI: regenerate them aside and compare.
bindings_current() {
  local out="$LOGS/bindings"
  (cd zig && zig build bindings -Dbindings="$out") && deno fmt -q "$out/abi.ts" "$out/symbols.ts" &&
    diff -u ffi/abi.ts "$out/abi.ts" && diff -u ffi/symbols.ts "$out/symbols.ts"
}
check "ffi bindings generated from the Zig ABI are current" bindings_current
# The install step for each system only built, never run here (tests/binary_format.test.ts
# decodes what zig build prebuilt wrote for them).
for target in x86_64-macos aarch64-macos x86_64-freebsd aarch64-freebsd; do
  check "zig build -Dtarget=$target" bash -c "cd zig && zig build -Dtarget=$target --prefix '$LOGS/$target'"
done
check "embedded libraries match the build" deno run -A scripts/embed.ts --check

deno_suite "deno test"
bun_suite "bun test"

# The helper backend: both suites again with the helper forced (tests of the reaper itself are
# skipped there and name why; tests/backend.test.ts has the helper's own and forces the
# reaper's clone to fail as under qemu-user), then without pidfds.
deno_suite "deno test, helper" env PRIVATE_SPAWN_BACKEND=helper
bun_suite "bun test, helper" env PRIVATE_SPAWN_BACKEND=helper

# The portable helper (macOS's and FreeBSD's), built for this machine against glibc: both suites
# again with it (PH_PORTABLE: what is Linux's own skips, naming why; decision 0013).
check "zig build posix" bash -c "cd zig && zig build posix"
POSIX_BUILD=(env PH_PORTABLE=1 PRIVATE_SPAWN_BACKEND=helper
  PRIVATE_SPAWN_LIB="$ROOT/zig/zig-out/posix/lib/libprivate_spawn.so"
  PRIVATE_SPAWN_HELPER="$ROOT/zig/zig-out/posix/bin/ph-helper")
deno_suite "deno test, helper (posix build)" "${POSIX_BUILD[@]}"
bun_suite "bun test, helper (posix build)" "${POSIX_BUILD[@]}"

# FreeBSD's pdfork backend, its code over Linux's stand-ins (fork and pidfd_open, epoll) in the
# same build: the library forks each child itself. Those children are the host's own here, so
# the privacy tests skip and say why (decision 0014).
PDFORK_BUILD=(env PH_PORTABLE=1 PRIVATE_SPAWN_BACKEND=pdfork
  PRIVATE_SPAWN_LIB="$ROOT/zig/zig-out/posix/lib/libprivate_spawn.so"
  PRIVATE_SPAWN_HELPER="$ROOT/zig/zig-out/posix/bin/ph-helper")
deno_suite "deno test, pdfork stand-ins (posix build)" "${PDFORK_BUILD[@]}"
bun_suite "bun test, pdfork stand-ins (posix build)" "${PDFORK_BUILD[@]}"

# The runtime backend (the runtime's own spawn, Windows' default): both suites again with it
# forced. What only the native backends do is skipped and names why (tests/README.md);
# tests/runtime_backend.test.ts has the backend's own contract.
deno_suite "deno test, runtime" env PRIVATE_SPAWN_BACKEND=runtime
bun_suite "bun test, runtime" env PRIVATE_SPAWN_BACKEND=runtime

# Fault injection: the same suites with clone3 refused, with no pidfds at all, without
# close_range (kernels before 5.9), and with unsharing the descriptor table refused (smaller
# stress counts; the full counts ran above). clone3-eperm breaks glibc's own thread creation,
# so it runs against the libc-free Zig tests only.
LAUNCH="$PH_SECCOMP_LAUNCHER"
export PH_CYCLES=1000 PH_BURST=2000 PH_STORM=500
for fault in clone3-enosys no-pidfd no-close-range no-unshare; do
  deno_suite "deno test, $fault" env PH_FAULT=$fault "$LAUNCH" $fault
  bun_suite "bun test, $fault" env PH_FAULT=$fault "$LAUNCH" $fault
done
deno_suite "deno test, helper, no-pidfd" env PRIVATE_SPAWN_BACKEND=helper PH_FAULT=no-pidfd "$LAUNCH" no-pidfd
bun_suite "bun test, helper, no-pidfd" env PRIVATE_SPAWN_BACKEND=helper PH_FAULT=no-pidfd "$LAUNCH" no-pidfd
# What qemu-user refuses (clone3, and clones that share memory but are not threads): the helper
# takes over, launched through a forked middle process, and forks its children.
deno_suite "deno test, qemu fault" env PH_FAULT=qemu "$LAUNCH" qemu
bun_suite "bun test, qemu fault" env PH_FAULT=qemu "$LAUNCH" qemu
for fault in clone3-enosys clone3-eperm no-pidfd no-close-range no-unshare; do
  zig_suite "zig build test, $fault" env PH_FAULT=$fault "$LAUNCH" $fault
done

cat "$RECAP"
rm -rf "$LOGS"
echo "$passed passed, $failed failed"
exit $status
