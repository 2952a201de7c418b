#!/usr/bin/env bash
# The Windows builds of Bun and Deno, at the pinned versions, running tests/windows/ under Wine:
# Bun under Debian 12's Wine 8 (with a ProcessPrng stub DLL in its prefix), Deno under Debian 13's
# Wine 10 in a `debootstrap --variant=minbase` chroot (Wine 8 aborts Deno at V8 start).
# Installs whatever is missing (apt packages on the host as root, the chroot, the Wine prefixes
# and the npm packages under .tools/wine/), and says nothing about steps it finds done.
# Ends with one line "N passed, N failed"; a runtime that cannot start counts as a failure.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOGS=$(mktemp -d)
# bootstrap.sh brings the pinned Zig (and builds the library); its log is shown only on failure.
# shellcheck source=bootstrap.sh
. "$ROOT/scripts/bootstrap.sh" 2>"$LOGS/bootstrap.log" || {
  cat "$LOGS/bootstrap.log" >&2
  echo "0 passed, 1 failed"
  exit 1
}
cd "$ROOT"
WT="$(readlink -f "$TOOLS")/wine"                        # everything this script installs, but the apt packages
CHROOT="$WT/trixie"                       # Debian 13 with its Wine 10, for deno.exe
WINE8=/usr/lib/wine/wine64                # Debian 12's Wine, for bun.exe
WINE10=/usr/lib/wine/wine64               # the same path inside the chroot
BUN_EXE="$WT/npm/node_modules/@oven/bun-windows-x64/bin/bun.exe"
DENO_EXE="$WT/npm/node_modules/@deno/win32-x64/deno.exe"
# The Windows programs' environment: only missing-DLL errors from Wine, no Mono/Gecko installers, no desktop menus.
WINE_ENV=(WINEDEBUG=-all,err+module "WINEDLLOVERRIDES=mscoree,mshtml=;winemenubuilder.exe=d" NO_COLOR=1 DENO_NO_UPDATE_CHECK=1)
passed=0
failed=0
status=0
MOUNTS=()

log() { printf '[wine] %s\n' "$*" >&2; }
. "$ROOT/scripts/runner_lib.sh"

finish() {
  cleanup
  rm -rf "$LOGS"
  echo "$passed passed, $failed failed"
  exit $status
}

# The host's Debian mirror, from its apt sources (the chroot uses the same one).
debian_mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '$2 !~ /security/ {print $2; exit}')
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_host_packages() {
  local missing=()
  [ -x "$WINE8" ] || missing+=(wine64)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v wget >/dev/null || missing+=(wget)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "need root to apt-get install ${missing[*]}" >"$LOGS/apt.log"; return 1; }
  log "apt-get install ${missing[*]}"
  quiet "$LOGS/apt.log" apt-get update -q || return 1
  DEBIAN_FRONTEND=noninteractive quiet "$LOGS/apt.log" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

mount_bind() { # source, target, extra mount options...
  local source=$1 target=$2
  shift 2
  mkdir -p "$target"
  # One left by a run that was killed is reused, and unmounted at the end of this one.
  mountpoint -q "$target" || mount "$@" "$source" "$target" || return 1
  MOUNTS+=("$target")
}

cleanup() {
  local i
  [ ${#MOUNTS[@]} -gt 0 ] && [ -x "$CHROOT$WINE10" ] && wineserver10 -k >/dev/null 2>&1
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || log "cannot unmount ${MOUNTS[$i]}"
  done
  MOUNTS=()
}
# Unmounts everything mounted at or below a directory; fails if anything stays mounted.
unmount_under() { # directory
  local target
  for target in $(awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -R "$target" 2>/dev/null || umount -l "$target" 2>/dev/null
  done
  ! awk -v d="$1" '$5 == d || index($5, d "/") == 1 {found = 1} END {exit !found}' /proc/self/mountinfo ||
    { echo "still mounted under $1" >>"$LOGS/chroot.log"; return 1; }
}

trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

mount_chroot() {
  mount_bind /proc "$CHROOT/proc" --bind || return 1
  mount_bind /dev "$CHROOT/dev" --rbind || return 1
  mount --make-rslave "$CHROOT/dev"
  mount_bind "$ROOT" "$CHROOT$ROOT" --bind || return 1
  # .tools may be a symlink out of the checkout (git worktrees share one).
  local tools
  tools=$(readlink -f "$TOOLS")
  case "$tools/" in "$ROOT"/*) ;; *) mount_bind "$tools" "$CHROOT$tools" --bind || return 1 ;; esac
}

in_chroot() { # command... (run as root in the chroot with a clean environment)
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

ensure_chroot() {
  [ -f "$CHROOT/.private-spawn-ready" ] && [ -x "$CHROOT$WINE10" ] && return 0
  local partial="$CHROOT.partial" mirror
  mirror=$(debian_mirror)
  log "debootstrap --variant=minbase trixie from $mirror, then wine from trixie (about 1.2 GB)"
  # Never delete through a bind mount (the checkout, /dev) that a killed run left inside.
  unmount_under "$CHROOT" && unmount_under "$partial" || return 1
  rm -rf --one-file-system "$partial" "$CHROOT"
  quiet "$LOGS/chroot.log" debootstrap --variant=minbase trixie "$partial" "$mirror" || return 1
  mv "$partial" "$CHROOT" || return 1
  mount_chroot || return 1
  quiet "$LOGS/chroot.log" in_chroot DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get install -y -q --no-install-recommends wine wine64 && apt-get clean' || return 1
  cleanup
  in_chroot dpkg-query -W -f '${Version}\n' wine64 >"$CHROOT/.private-spawn-ready"
}

npm_version() { # package directory
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1/package.json" 2>/dev/null | head -1
}

ensure_windows_runtimes() {
  [ "$(npm_version "$WT/npm/node_modules/@oven/bun-windows-x64")" = "$BUN_VERSION" ] &&
    [ "$(npm_version "$WT/npm/node_modules/@deno/win32-x64")" = "$DENO_VERSION" ] &&
    [ -f "$BUN_EXE" ] && [ -f "$DENO_EXE" ] && return 0
  log "npm install @oven/bun-windows-x64@$BUN_VERSION @deno/win32-x64@$DENO_VERSION"
  mkdir -p "$WT/npm"
  [ -f "$WT/npm/package.json" ] || echo '{"private":true}' >"$WT/npm/package.json"
  # --force: the packages declare os "win32", and npm refuses them on Linux otherwise.
  (cd "$WT/npm" && quiet "$LOGS/npm.log" npm install --no-audit --no-fund --loglevel=error --save-exact --force \
    "@oven/bun-windows-x64@$BUN_VERSION" "@deno/win32-x64@$DENO_VERSION")
}

# The ProcessPrng stub and the tests' child program, rebuilt when their source changes.
build_windows_binaries() {
  mkdir -p "$WT/bin"
  local zig_flags=(-O ReleaseSmall -fstrip -target x86_64-windows-gnu)
  if [ ! -f "$WT/bin/bcryptprimitives.dll" ] || [ scripts/wine/bcryptprimitives.zig -nt "$WT/bin/bcryptprimitives.dll" ]; then
    quiet "$LOGS/zig.log" zig build-lib -dynamic "${zig_flags[@]}" scripts/wine/bcryptprimitives.zig -ladvapi32 \
      -femit-bin="$WT/bin/bcryptprimitives.dll" -fno-emit-implib || return 1
  fi
  if [ ! -f "$WT/bin/child.exe" ] || [ scripts/wine/child.zig -nt "$WT/bin/child.exe" ]; then
    quiet "$LOGS/zig.log" zig build-exe "${zig_flags[@]}" scripts/wine/child.zig -femit-bin="$WT/bin/child.exe" || return 1
  fi
}

wine8() { env WINEPREFIX="$WT/prefix-8" "${WINE_ENV[@]}" "$WINE8" "$@"; }
wine10() { in_chroot WINEPREFIX="$WT/prefix-10" DENO_DIR="Z:$WT/deno_dir" "${WINE_ENV[@]}" "$WINE10" "$@"; }
wineserver8() { env WINEPREFIX="$WT/prefix-8" /usr/lib/wine/wineserver "$@"; }
wineserver10() { in_chroot WINEPREFIX="$WT/prefix-10" /usr/lib/wine/wineserver "$@"; }

# A prefix is ready once wineboot has run and its wineserver has written the registry out.
ensure_prefix() { # prefix directory, wine8 or wine10, wineserver8 or wineserver10
  [ -f "$1/.private-spawn-ready" ] && return 0
  log "wineboot --init in $1"
  rm -rf "$1"
  mkdir -p "$1"
  "$2" wineboot --init >"$LOGS/wineboot.log" 2>&1 || return 1
  "$3" -w || return 1
  [ -f "$1/system.reg" ] && touch "$1/.private-spawn-ready"
}

# Wine 8 has no bcryptprimitives.dll; Bun and Deno import ProcessPrng from it.
install_stub() {
  local target="$WT/prefix-8/drive_c/windows/system32/bcryptprimitives.dll"
  cmp -s "$WT/bin/bcryptprimitives.dll" "$target" || cp "$WT/bin/bcryptprimitives.dll" "$target"
}

run_bun() {
  local label="bun.exe $BUN_VERSION test under Wine $($WINE8 --version | sed 's/^wine-//')"
  echo "[test] $label"
  timeout 900 env WINEPREFIX="$WT/prefix-8" "${WINE_ENV[@]}" "$WINE8" "$BUN_EXE" test --timeout 120000 ./tests/windows/ \
    2>&1 | grep -v XDG_RUNTIME_DIR | tee "$LOGS/bun.log"
  summarize "$label" "$LOGS/bun.log" "${PIPESTATUS[0]}"
  wineserver8 -k >/dev/null 2>&1
}

run_deno() {
  local label
  label="deno.exe $DENO_VERSION test under Wine $(in_chroot "$WINE10" --version | sed 's/^wine-//')"
  echo "[test] $label"
  in_chroot WINEPREFIX="$WT/prefix-10" DENO_DIR="Z:$WT/deno_dir" "${WINE_ENV[@]}" \
    sh -c 'cd "$1" && exec timeout 900 "$2" "$3" test -A tests/windows/' sh "$ROOT" "$WINE10" "$DENO_EXE" 2>&1 |
    grep -v XDG_RUNTIME_DIR | tee "$LOGS/deno.log"
  summarize "$label" "$LOGS/deno.log" "${PIPESTATUS[0]}"
}

# One run at a time per .tools: the chroot's mounts and the prefixes' wineservers are shared.
mkdir -p "$WT"
exec 9>"$WT/.lock"
flock 9
ensure_host_packages || setup_failed "apt-get install" "$LOGS/apt.log"
ensure_windows_runtimes || setup_failed "npm install" "$LOGS/npm.log"
build_windows_binaries || setup_failed "zig build of scripts/wine/" "$LOGS/zig.log"
ensure_chroot || setup_failed "the trixie chroot" "$LOGS/chroot.log"
ensure_prefix "$WT/prefix-8" wine8 wineserver8 || setup_failed "the Wine 8 prefix" "$LOGS/wineboot.log"
install_stub || setup_failed "installing the ProcessPrng stub" /dev/null
run_bun
mount_chroot || setup_failed "mounting into the chroot" /dev/null
ensure_prefix "$WT/prefix-10" wine10 wineserver10 || setup_failed "the Wine 10 prefix" "$LOGS/wineboot.log"
run_deno
finish
