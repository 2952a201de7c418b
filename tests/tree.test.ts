/**
 * sendSignal(sig, { tree: true }): the child and every descendant, through setsid too, each
 * held by a pidfd; what plain signals and group signals leave running.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { backendInfo, SpawnError, spawnHandle } from "../mod.ts";
import { EXPECT_PIDFD, nativeTest, procStat } from "./harness.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const alive = (pid: number) => {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== "Z" && state !== "X";
};

/** Every process whose chain of parents reaches `root`, from /proc. */
function descendantsOf(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    const stat = /^\d+$/.test(name) ? procStat(Number(name)) : null;
    if (stat !== null) parent.set(Number(name), stat.ppid);
  }
  const found = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (found.has(ppid) && !found.has(pid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  found.delete(root);
  return [...found];
}

/** Waits up to `ms` for every pid to be dead (gone or a zombie nobody reaped). */
async function allDead(pids: number[], ms = 2000): Promise<number[]> {
  const until = performance.now() + ms;
  let living = pids.filter(alive);
  while (living.length > 0 && performance.now() < until) {
    await sleep(20);
    living = living.filter(alive);
  }
  return living;
}

/** A shell with a nested shell, a background sleep and a `setsid` sleep, all started. */
async function spawnTree() {
  const script = "setsid sleep 30 & sh -c 'sleep 30 & wait' & echo ready; wait";
  const shell = spawnHandle("sh", ["-c", script], { stdout: "piped" });
  const reader = shell.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.equal(new TextDecoder().decode(value).trim(), "ready");
  // The children are forked before "ready"; give the nested shell its sleep.
  let descendants: number[] = [];
  for (let i = 0; i < 100 && descendants.length < 3; i++) {
    await sleep(10);
    descendants = descendantsOf(shell.pid);
  }
  // The setsid sleep, the nested shell and its sleep.
  assert.equal(descendants.length, 3, `descendants: ${descendants}`);
  return { shell, descendants };
}

nativeTest(
  "tree: true kills the child and every descendant, a setsid one included; a plain signal leaves them",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (!EXPECT_PIDFD) return;
    // Without tree, the shell dies and its descendants live on.
    const plain = await spawnTree();
    assert.equal(backendInfo().tree, "descendants");
    assert.equal(plain.shell.sendSignal("SIGKILL"), true);
    assert.equal((await plain.shell.wait()).signal, "SIGKILL");
    await sleep(100);
    assert.ok(plain.descendants.some(alive), "a plain SIGKILL left no descendant: the test could not fail");
    for (const pid of plain.descendants.filter(alive)) process.kill(pid, "SIGKILL");

    const { shell, descendants } = await spawnTree();
    assert.equal(shell.sendSignal("SIGKILL", { tree: true }), true);
    assert.equal((await shell.wait()).signal, "SIGKILL");
    assert.deepEqual(await allDead(descendants), [], "descendants still alive after the tree kill");
  },
);

nativeTest(
  "tree: true with SIGTERM: stopped for the walk, continued after, so the signal is handled",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (!EXPECT_PIDFD) return;
    const shell = spawnHandle("sh", ["-c", "trap 'echo got TERM; exit 7' TERM; setsid sleep 30 & echo ready; wait"], {
      stdout: "piped",
    });
    const lines = shell.lines();
    assert.equal((await lines.next()).value, "ready");
    let descendants: number[] = [];
    for (let i = 0; i < 100 && descendants.length < 1; i++) {
      await sleep(10);
      descendants = descendantsOf(shell.pid);
    }
    assert.equal(shell.sendSignal("SIGTERM", { tree: true }), true);
    assert.equal((await lines.next()).value, "got TERM");
    assert.equal((await shell.wait()).code, 7);
    assert.deepEqual(await allDead(descendants), []);
  },
);

nativeTest(
  "tree: false after the exit, and its options are checked",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("true");
    await child.wait();
    if (EXPECT_PIDFD) assert.equal(child.sendSignal("SIGTERM", { tree: true }), false);
    const running = spawnHandle("sleep", ["5"], { pgroup: true });
    assert.throws(() => running.sendSignal("SIGTERM", { tree: "yes" as unknown as boolean }), TypeError);
    assert.throws(() => running.sendSignal("SIGTERM", { tree: true, group: true }), TypeError);
    running.sendSignal("SIGKILL");
    await running.wait();
  },
);

nativeTest(
  "tree: without pidfds a tree signal is refused with ENOSYS, and the child is left alone",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (EXPECT_PIDFD) return;
    const child = spawnHandle("sleep", ["5"]);
    assert.equal(backendInfo().tree, null);
    assert.throws(
      () => child.sendSignal("SIGTERM", { tree: true }),
      (e: unknown) => e instanceof SpawnError && e.code === "ENOSYS" && e.syscall === "signal_tree",
    );
    assert.equal(child.waitNonblock().exited, false);
    child.sendSignal("SIGKILL");
    await child.wait();
  },
);
