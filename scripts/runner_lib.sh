# Shared by scripts/test_windows.sh and scripts/test_aarch64.sh (sourced): counting, setup
# failures, quiet steps and test-log summaries. The caller defines `log` (a tagged line on
# stderr) and `finish` (cleans up, prints "N passed, N failed", exits with $status), and
# sets passed=0 failed=0 status=0.

count() { # name, passed, failed
  printf '[test] %s: %s passed, %s failed\n' "$1" "$2" "$3"
  passed=$((passed + $2))
  failed=$((failed + $3))
  [ "$3" -eq 0 ] || status=1
}

# A setup step that failed: its log, a failure in the count, and the final summary.
setup_failed() { # step, log file
  log "$1 failed:"
  [ -f "$2" ] && tail -n 40 "$2" >&2
  count "setup: $1" 0 1
  finish
}

# Runs quietly, keeping the output for setup_failed.
quiet() { # log file, command...
  local file=$1
  shift
  "$@" >"$file" 2>&1
}

# Parses a test log: Bun's " N pass" / " N fail", or Deno's "ok | N passed | N failed".
summarize() { # label, log, exit status
  local label=$1 file=$2 rc=$3 p f
  if grep -qE '^(ok|FAILED) \| [0-9]+ passed' "$file"; then
    local line
    line=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$file" | tail -1)
    p=$(echo "$line" | grep -Eo '[0-9]+ passed' | cut -d' ' -f1)
    f=$(echo "$line" | grep -Eo '[0-9]+ failed' | cut -d' ' -f1)
  else
    p=$(grep -E '^ *[0-9]+ pass$' "$file" | tail -1 | grep -Eo '[0-9]+')
    f=$(grep -E '^ *[0-9]+ fail$' "$file" | tail -1 | grep -Eo '[0-9]+')
  fi
  if [ -z "$p" ] || [ $((p + ${f:-0})) -eq 0 ]; then
    log "$label did not report any test (exit status $rc); its output ends:"
    tail -n 40 "$file" >&2
    count "$label" 0 1
    return
  fi
  f=${f:-0}
  # A runtime that exits non-zero with every test passed (a crash at exit, a load error) fails too.
  [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || { log "$label exited with status $rc"; f=1; }
  count "$label" "$p" "$f"
}
