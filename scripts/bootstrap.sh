# Sourced by the other scripts: installs the pinned Deno, Bun, Zig, TypeScript and Bun's types
# into .tools/ when they are missing (from the npm registry and PyPI), puts them on PATH, and
# builds the library.
# Idempotent: a second run only checks versions and lets `zig build` find nothing to do.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
# shellcheck source=versions.env
. "$ROOT/scripts/versions.env"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# The version of an npm package installed in .tools/npm, or nothing.
npm_version() {
  grep -m1 -o '"version": *"[^"]*"' "$TOOLS/npm/node_modules/$1/package.json" 2>/dev/null | sed 's/.*"\([^"]*\)"$/\1/'
}

ensure_js_runtimes() {
  local bin="$TOOLS/npm/node_modules/.bin"
  if [ -x "$bin/deno" ] && [ -x "$bin/bun" ] && [ -x "$bin/tsc" ] &&
    "$bin/deno" --version 2>/dev/null | grep -q "^deno $DENO_VERSION " &&
    [ "$("$bin/bun" --version 2>/dev/null)" = "$BUN_VERSION" ] &&
    [ "$(npm_version typescript)" = "$TYPESCRIPT_VERSION" ] &&
    [ "$(npm_version bun-types)" = "$BUN_TYPES_VERSION" ]; then
    return 0
  fi
  command -v npm >/dev/null || { log "npm is needed to install deno, bun and typescript"; return 1; }
  log "installing deno@$DENO_VERSION, bun@$BUN_VERSION, typescript@$TYPESCRIPT_VERSION and bun-types@$BUN_TYPES_VERSION from the npm registry"
  mkdir -p "$TOOLS/npm"
  [ -f "$TOOLS/npm/package.json" ] || echo '{"private":true}' >"$TOOLS/npm/package.json"
  (cd "$TOOLS/npm" && npm install --no-audit --no-fund --loglevel=error --save-exact \
    "deno@$DENO_VERSION" "bun@$BUN_VERSION" "typescript@$TYPESCRIPT_VERSION" "bun-types@$BUN_TYPES_VERSION" >&2) ||
    return 1
}

ensure_zig() {
  local zig="$TOOLS/zig/ziglang/zig"
  if [ -x "$zig" ] && [ "$("$zig" version 2>/dev/null)" = "$ZIG_VERSION" ]; then return 0; fi
  local python
  python=$(command -v python3 || command -v python) || { log "python3 is needed to install zig"; return 1; }
  log "installing ziglang==$ZIG_VERSION from PyPI"
  rm -rf "$TOOLS/zig"
  "$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$TOOLS/zig" "ziglang==$ZIG_VERSION" >&2 || return 1
}

build_library() {
  log "building the library (zig build -Doptimize=ReleaseFast)"
  (cd "$ROOT/zig" && zig build -Doptimize=ReleaseFast) || return 1
}

ensure_js_runtimes || return 1 2>/dev/null || exit 1
ensure_zig || return 1 2>/dev/null || exit 1
export PATH="$TOOLS/npm/node_modules/.bin:$TOOLS/zig/ziglang:$PATH"
# Keep Deno's caches inside the checkout so a run never depends on the user's home.
export DENO_DIR="${DENO_DIR:-$TOOLS/deno_dir}"
export DENO_NO_UPDATE_CHECK=1
build_library || return 1 2>/dev/null || exit 1
