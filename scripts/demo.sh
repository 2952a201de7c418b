#!/usr/bin/env bash
# The demo: a host with a Unicorn-style SIGCHLD + waitpid(-1) reaper spawns one child with
# the runtime's own API and one with spawnHandle, under Deno and then under Bun.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
echo "=== Deno $(deno --version | head -1 | cut -d' ' -f2) ==="
deno run -A demo/hostile_host.ts
echo
echo "=== Bun $(bun --version) ==="
bun demo/hostile_host.ts
