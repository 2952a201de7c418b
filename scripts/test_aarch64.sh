#!/usr/bin/env bash
# The Linux aarch64 builds of Bun and Deno, at the pinned versions, running the test suite under
# qemu-user (Debian's qemu-user-static, with libc6-arm64-cross as the guest's /lib): the embedded
# aarch64 library and helper, not aarch64 hardware. qemu-user refuses the reaper's clone
# (CLONE_VM without CLONE_THREAD: EINVAL), where the library is to fall back to the helper
# backend; tests/harness.ts detects the emulation (QEMU) and expects that. What holds there and
# what does not: tests/README.md, "qemu-user".
# Installs whatever is missing (apt packages on the host as root, the npm packages under
# .tools/aarch64/, the binfmt_misc entry for aarch64 programs), and says nothing about steps it
# finds done. Ends with one line "N passed, N failed"; a runtime that cannot start counts as a
# failure.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOGS=$(mktemp -d)
# bootstrap.sh brings the pinned Zig (for the tests' helpers); its log is shown only on failure.
# shellcheck source=bootstrap.sh
. "$ROOT/scripts/bootstrap.sh" 2>"$LOGS/bootstrap.log" || {
  cat "$LOGS/bootstrap.log" >&2
  echo "0 passed, 1 failed"
  exit 1
}
cd "$ROOT"
AT="$(readlink -f "$TOOLS")/aarch64"      # everything this script installs, but the apt packages
QEMU=/usr/bin/qemu-aarch64-static
SYSROOT=/usr/aarch64-linux-gnu            # the guest's libc (libc6-arm64-cross), for -L / QEMU_LD_PREFIX
BINFMT=/proc/sys/fs/binfmt_misc
BUN_ARM="$AT/npm/node_modules/@oven/bun-linux-aarch64/bin/bun"
DENO_ARM="$AT/npm/node_modules/@deno/linux-arm64-glibc/deno"
# The Bun suite: every file of tests/ but these, which cannot hold under qemu-user (the reasons
# are also in tests/README.md). Single tests that cannot hold are skipped by the harness instead
# (`notUnderQemu`), with the reason in their name.
BUN_EXCLUDED=()
# The Deno suite under qemu is slow (V8 emulated, about 4 minutes for one file with type
# checking): the files that cover loading the aarch64 library and the fallback, with --no-check
# (scripts/test.sh type-checks everything natively).
DENO_FILES=(tests/backend.test.ts)
# The guest's environment: its libc, and the tests' helpers (built below for the host: the
# children are host programs, run natively by the kernel).
# The stress counts are scripts/test.sh's for its fault runs: emulated code is several times slower.
RUN_ENV=(QEMU_LD_PREFIX="$SYSROOT" NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 PH_CYCLES=1000 PH_BURST=2000 PH_STORM=500)
passed=0
failed=0
status=0

log() { printf '[aarch64] %s\n' "$*" >&2; }
. "$ROOT/scripts/runner_lib.sh"

finish() {
  rm -rf "$LOGS"
  echo "$passed passed, $failed failed"
  exit $status
}

ensure_host_packages() {
  local missing=()
  [ -x "$QEMU" ] || missing+=(qemu-user-static)
  [ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || missing+=(libc6-arm64-cross)
  [ -e "$SYSROOT/lib/libgcc_s.so.1" ] || missing+=(libgcc-s1-arm64-cross) # Deno links it
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "need root to apt-get install ${missing[*]}" >"$LOGS/apt.log"; return 1; }
  log "apt-get install ${missing[*]}"
  quiet "$LOGS/apt.log" apt-get update -q || return 1
  DEBIAN_FRONTEND=noninteractive quiet "$LOGS/apt.log" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

npm_version() { # package directory
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1/package.json" 2>/dev/null | head -1
}

ensure_runtimes() {
  [ "$(npm_version "$AT/npm/node_modules/@oven/bun-linux-aarch64")" = "$BUN_VERSION" ] &&
    [ "$(npm_version "$AT/npm/node_modules/@deno/linux-arm64-glibc")" = "$DENO_VERSION" ] &&
    [ -f "$BUN_ARM" ] && [ -f "$DENO_ARM" ] && return 0
  log "npm install @oven/bun-linux-aarch64@$BUN_VERSION @deno/linux-arm64-glibc@$DENO_VERSION"
  mkdir -p "$AT/npm"
  [ -f "$AT/npm/package.json" ] || echo '{"private":true}' >"$AT/npm/package.json"
  # --force: the packages declare cpu "arm64", and npm refuses them on x86_64 otherwise.
  (cd "$AT/npm" && quiet "$LOGS/npm.log" npm install --no-audit --no-fund --loglevel=error --save-exact --force \
    "@oven/bun-linux-aarch64@$BUN_VERSION" "@deno/linux-arm64-glibc@$DENO_VERSION") || return 1
  chmod +x "$BUN_ARM" "$DENO_ARM"
}

# The emulated runtime execs aarch64 programs itself (the helper, and itself for the tests'
# fixtures): the kernel runs them through qemu only with a binfmt_misc entry. Debian's
# /usr/lib/binfmt.d/qemu-aarch64.conf is registered when none is (flag F: the interpreter is
# opened now, so it works in any mount namespace). The entry is kernel-wide and stays after
# the run, as systemd-binfmt would leave it.
ensure_binfmt() {
  local entry="$BINFMT/qemu-aarch64"
  [ -f "$entry" ] && head -1 "$entry" | grep -qx enabled && return 0
  if [ ! -f "$BINFMT/register" ]; then
    log "mount -t binfmt_misc binfmt_misc $BINFMT"
    mount -t binfmt_misc binfmt_misc "$BINFMT" >"$LOGS/binfmt.log" 2>&1 || return 1
  fi
  if [ -f "$entry" ]; then
    echo 1 >"$entry" 2>>"$LOGS/binfmt.log" || return 1
  else
    log "registering /usr/lib/binfmt.d/qemu-aarch64.conf in $BINFMT"
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT/register" 2>>"$LOGS/binfmt.log" || return 1
  fi
  [ -f "$entry" ] && head -1 "$entry" | grep -qx enabled
}

# The tests' host-side helpers, as scripts/test.sh builds them: the tiny static child and the
# seccomp launcher; and the cross builds tests/binary_format.test.ts decodes.
build_test_tools() {
  mkdir -p "$TOOLS/bench" zig/zig-out/test-tools
  [ -f "$TOOLS/bench/tiny" ] ||
    quiet "$LOGS/zig.log" zig build-exe -O ReleaseSmall -fstrip -femit-bin="$TOOLS/bench/tiny" bench/tiny.zig || return 1
  quiet "$LOGS/zig.log" zig cc -O2 -o zig/zig-out/test-tools/seccomp_launcher tests/fault/seccomp_launcher.c || return 1
  (cd zig && quiet "$LOGS/zig.log" zig build prebuilt)
}

# The published files, as a user gets them: a copy of the checkout's files without
# zig/zig-out/lib and zig/zig-out/bin, so the loader takes the embedded aarch64 library and
# helper (a local build is x86_64); zig/zig-out/prebuilt is copied for binary_format.test.ts.
copy_tree() {
  TREE="$LOGS/tree"
  mkdir -p "$TREE"
  git ls-files -z --cached --others --exclude-standard | grep -zv '^\.tools$' |
    tar --null -T - --ignore-failed-read -cf - 2>"$LOGS/copy.log" | tar -xf - -C "$TREE" 2>>"$LOGS/copy.log" || return 1
  ln -s "$(readlink -f "$TOOLS")" "$TREE/.tools"
  mkdir -p "$TREE/zig/zig-out" && cp -R zig/zig-out/prebuilt "$TREE/zig/zig-out/" 2>>"$LOGS/copy.log" || return 1
  [ ! -e "$TREE/zig/zig-out/lib" ] && [ ! -e "$TREE/zig/zig-out/bin" ] && [ -f "$TREE/ffi/prebuilt/aarch64_linux.ts" ]
}

qemu_version() { "$QEMU" --version | sed -n 's/^qemu-aarch64 version \([^ ]*\).*/\1/p'; }

run_bun() {
  local label="bun $BUN_VERSION (linux-aarch64) test under qemu-user $(qemu_version)" files=() file skip
  for file in tests/*.test.ts; do
    skip=
    for excluded in "${BUN_EXCLUDED[@]}"; do [ "$file" = "$excluded" ] && skip=1; done
    [ -n "$skip" ] || files+=("./$file")
  done
  echo "[test] $label"
  local started=$SECONDS
  (cd "$TREE" && timeout 600 env "${RUN_ENV[@]}" "$QEMU" -L "$SYSROOT" "$BUN_ARM" test --timeout 120000 "${files[@]}") \
    2>&1 | tee "$LOGS/bun.log"
  local rc=${PIPESTATUS[0]}
  log "bun ran for $((SECONDS - started)) s"
  summarize "$label" "$LOGS/bun.log" "$rc"
}

run_deno() {
  local label="deno $DENO_VERSION (linux-aarch64) test under qemu-user $(qemu_version)"
  echo "[test] $label"
  local started=$SECONDS
  (cd "$TREE" && timeout 300 env "${RUN_ENV[@]}" DENO_DIR="$AT/deno_dir" "$QEMU" -L "$SYSROOT" "$DENO_ARM" \
    test -A --no-check --quiet --v8-flags=--expose-gc "${DENO_FILES[@]}") 2>&1 | tee "$LOGS/deno.log"
  local rc=${PIPESTATUS[0]}
  log "deno ran for $((SECONDS - started)) s"
  summarize "$label" "$LOGS/deno.log" "$rc"
}

# One run at a time per .tools: the npm packages and the binfmt entry are shared.
mkdir -p "$AT"
exec 9>"$AT/.lock"
flock 9
ensure_host_packages || setup_failed "apt-get install" "$LOGS/apt.log"
ensure_runtimes || setup_failed "npm install" "$LOGS/npm.log"
ensure_binfmt || setup_failed "registering qemu-aarch64 in binfmt_misc" "$LOGS/binfmt.log"
build_test_tools || setup_failed "zig build of the tests' helpers" "$LOGS/zig.log"
copy_tree || setup_failed "copying the checkout without its local build" "$LOGS/copy.log"
export BENCH_TINY="$TOOLS/bench/tiny" PH_SECCOMP_LAUNCHER="$ROOT/zig/zig-out/test-tools/seccomp_launcher"
run_bun
run_deno
finish
