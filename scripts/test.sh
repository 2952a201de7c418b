#!/usr/bin/env bash
# The whole test suite: Zig unit tests, then the same TypeScript tests under Deno and Bun.
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
}

echo "[test] zig build test"
(cd zig && zig build test --summary all) >"$LOGS/zig.log" 2>&1 || status=1
cat "$LOGS/zig.log"
zig_line=$(grep -Eo '[0-9]+/[0-9]+ tests passed' "$LOGS/zig.log" | tail -1)
if [ -n "$zig_line" ]; then
  zp=${zig_line%%/*}
  zt=${zig_line#*/}
  zt=${zt%% *}
  count zig "$zp" $((zt - zp))
else
  count zig 0 1
fi

echo "[test] static checks"
check() { # name, command...
  local name=$1
  shift
  if "$@" >"$LOGS/check.log" 2>&1; then
    count "$name" 1 0
  else
    cat "$LOGS/check.log"
    count "$name" 0 1
  fi
}
no_warnings() { # runs a command and fails on any "warning" in its output
  "$@" >"$LOGS/nw.log" 2>&1 || { cat "$LOGS/nw.log"; return 1; }
  ! grep -qi "warning" "$LOGS/nw.log" || { cat "$LOGS/nw.log"; return 1; }
}
check "deno fmt --check" deno fmt --check
check "deno lint" deno lint
check "deno check" deno check mod.ts tests/ bench/ demo/ scripts/
check "deno doc --lint" deno doc --lint mod.ts
check "deno publish --dry-run" no_warnings deno publish --dry-run --allow-dirty
check "zig build prebuilt" bash -c "cd zig && zig build prebuilt"
check "embedded libraries match the build" deno run -A scripts/embed.ts --check

echo "[test] deno test"
NO_COLOR=1 deno test -A --quiet tests/ 2>&1 | tee "$LOGS/deno.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
deno_line=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$LOGS/deno.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')
if [ -n "$deno_line" ]; then
  dp=$(echo "$deno_line" | grep -Eo '[0-9]+ passed' | head -1 | cut -d' ' -f1)
  df=$(echo "$deno_line" | grep -Eo '[0-9]+ failed' | head -1 | cut -d' ' -f1)
  count deno "$dp" "$df"
else
  count deno 0 1
fi

echo "[test] bun test"
bun test --timeout 120000 tests/ 2>&1 | tee "$LOGS/bun.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
bp=$(grep -E '^ *[0-9]+ pass$' "$LOGS/bun.log" | tail -1 | grep -Eo '[0-9]+')
bf=$(grep -E '^ *[0-9]+ fail$' "$LOGS/bun.log" | tail -1 | grep -Eo '[0-9]+')
if [ -n "$bp" ]; then count bun "$bp" "${bf:-0}"; else count bun 0 1; fi

[ "$failed" -eq 0 ] || status=1
rm -rf "$LOGS"
echo "$passed passed, $failed failed"
exit $status
