/**
 * sendSignal(sig, { tree: true }): the child and every descendant, through setsid too, each
 * held by a pidfd; what plain signals and group signals leave running. In cgroup mode (a
 * cgroup v2 per child), double-forked processes too; killOnParentExit the same way.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import process from "node:process";
import { backendInfo, SpawnError, spawnHandle } from "../mod.ts";
import {
  cgroupDir,
  cgroupOf,
  childCgroups,
  EXPECT_CGROUP,
  EXPECT_PIDFD,
  LAUNCH_SIGCHLD,
  nativeTest,
  NOT_PRIVATE,
  procStat,
  runFixture,
  RUNTIME,
  test,
} from "./harness.ts";

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
    assert.equal(backendInfo().tree, EXPECT_CGROUP ? "cgroup" : "descendants", backendInfo().treeFallbackReason);
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

/** The tree mode this run has, checked against what it expects; for the tests' messages. */
function treeMode(): string {
  const info = backendInfo();
  assert.equal(info.tree, EXPECT_CGROUP ? "cgroup" : "descendants", `fallback: ${info.treeFallbackReason}`);
  if (info.tree === "descendants") assert.ok(info.treeFallbackReason, "descendants mode without a reason");
  return `${info.tree} mode${info.treeFallbackReason ? ` (${info.treeFallbackReason})` : ""}`;
}

/**
 * A shell in its own cgroup (when there is one) with a `setsid` sleep and a sleep that
 * double-forked away (its parent exited: init adopted it), both started.
 */
async function spawnDoubleForked(options: { cgroup?: boolean; killOnParentExit?: boolean } = { cgroup: true }) {
  const script = `setsid sleep 300 & echo $!; (setsid sh -c 'sleep 300 & echo $!' &); wait`;
  const shell = spawnHandle("sh", ["-c", script], { stdout: "piped", ...options });
  const lines = shell.lines();
  const setsidPid = Number((await lines.next()).value);
  const doubleForked = Number((await lines.next()).value);
  assert.ok(setsidPid > 0 && doubleForked > 0);
  // Its parent exits right after the echo; then it is no descendant of the shell any more.
  for (let i = 0; i < 100 && descendantsOf(shell.pid).includes(doubleForked); i++) await sleep(10);
  assert.equal(descendantsOf(shell.pid).includes(doubleForked), false, "the sleep did not leave the tree");
  return { shell, setsidPid, doubleForked };
}

nativeTest(
  "tree: SIGKILL reaches a setsid and a double-forked descendant in cgroup mode (only the setsid one otherwise)",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (!EXPECT_PIDFD) return;
    const { shell, setsidPid, doubleForked } = await spawnDoubleForked();
    const mode = treeMode();
    if (EXPECT_CGROUP) {
      // The child and the double-forked sleep are in the child's own cgroup.
      const own = cgroupOf(shell.pid);
      assert.match(own ?? "", new RegExp(`^${cgroupDir()!.relative}/\\d+-0$`), mode);
      assert.equal(cgroupOf(doubleForked), own, mode);
      assert.equal(cgroupOf(setsidPid), own, mode);
    }
    assert.equal(shell.sendSignal("SIGKILL", { tree: true }), true);
    assert.equal((await shell.wait()).signal, "SIGKILL");
    assert.deepEqual(await allDead([setsidPid]), [], `${mode}: the setsid sleep survived`);
    const left = await allDead([doubleForked], EXPECT_CGROUP ? 2000 : 200);
    for (const pid of left) process.kill(pid, "SIGKILL");
    assert.deepEqual(left, EXPECT_CGROUP ? [] : [doubleForked], `${mode}: double-forked sleep left: ${left}`);
  },
);

nativeTest(
  "tree: SIGTERM in cgroup mode walks the cgroup: the double-forked sleep gets it too",
  "tree signals are refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (!EXPECT_CGROUP) return;
    const { shell, setsidPid, doubleForked } = await spawnDoubleForked();
    assert.equal(shell.sendSignal("SIGTERM", { tree: true }), true);
    assert.equal((await shell.wait()).signal, "SIGTERM");
    assert.deepEqual(await allDead([setsidPid, doubleForked]), [], treeMode());
  },
);

nativeTest(
  "cgroup: no directory of ours is left once the children exited, nor once a daemonized descendant did",
  "the runtime backend refuses cgroup: true (below)",
  async () => {
    if (!EXPECT_CGROUP) return;
    const mode = treeMode();
    // Pooled for reuse after a child exits, removed after a second idle.
    await Promise.all(Array.from({ length: 4 }, () => spawnHandle("true", [], { cgroup: true }).wait()));
    // A descendant that outlives its child keeps the cgroup until it exits.
    const daemonizing = spawnHandle("sh", ["-c", "(sleep 0.5 &)"], { cgroup: true });
    await daemonizing.wait();
    assert.ok(childCgroups().length >= 1, `${mode}: no cgroup at all`);
    const until = performance.now() + 4000;
    while (childCgroups().length > 0 && performance.now() < until) await sleep(50);
    assert.deepEqual(childCgroups(), [], `${mode}: cgroups left in ${cgroupDir()!.path}`);
  },
  { timeoutMs: 10_000 },
);

nativeTest(
  "killOnParentExit: a host killed with SIGKILL takes the child, its setsid and (cgroup mode) double-forked descendants within 2 s, and leaves no cgroup",
  "killOnParentExit is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (!EXPECT_PIDFD) return;
    const result = await runFixture("tree_host.ts");
    assert.equal(result.signal, "SIGKILL", result.stderr);
    const report = JSON.parse(result.stdout);
    const mode = `${report.tree} mode${report.treeFallbackReason ? ` (${report.treeFallbackReason})` : ""}`;
    assert.equal(report.tree, EXPECT_CGROUP ? "cgroup" : "descendants", mode);
    const hostPid = Number(/private-spawn-(\d+)\//.exec(report.cgroup ?? "")?.[1] ?? 0);
    if (EXPECT_CGROUP) assert.ok(hostPid > 0, `${mode}: the child is in no cgroup of ours: ${report.cgroup}`);
    const left = await allDead([report.child, report.descendant, report.doubleForked]);
    for (const pid of left) process.kill(pid, "SIGKILL");
    const expected = EXPECT_CGROUP ? [] : [report.doubleForked];
    assert.deepEqual(left, expected, `${mode}: left alive`);
    if (EXPECT_CGROUP) {
      const dir = cgroupDir(process.pid)!.path.replace(`private-spawn-${process.pid}`, `private-spawn-${hostPid}`);
      const until = performance.now() + 2000;
      while (readdirExists(dir) && performance.now() < until) await sleep(20);
      assert.equal(readdirExists(dir), false, `${mode}: ${dir} left behind`);
    }
  },
);

function readdirExists(path: string): boolean {
  try {
    readdirSync(path);
    return true;
  } catch {
    return false;
  }
}

nativeTest(
  "cgroup: a child in a cgroup of its own is still private (no SIGCHLD, never seen by waitpid(-1))",
  "its children are the host's own on POSIX, not private",
  async () => {
    const result = await runFixture("hostile_many.ts", ["--only-ours", "--cgroup"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    if (EXPECT_PIDFD) assert.equal(report.tree, EXPECT_CGROUP ? "cgroup" : "descendants");
    assert.ok(report.sigchld <= LAUNCH_SIGCHLD, `${report.sigchld} SIGCHLD`);
    assert.deepEqual(report.stolen, []);
    assert.ok(report.echild > 0, "the host's waitpid(-1) must have seen no children");
    for (const o of report.ours) assert.equal(o.code, o.expected, `pid ${o.pid}`);
  },
  { notPdfork: NOT_PRIVATE },
);

test("cgroup: checked as a boolean; the runtime backend refuses true with ERR_BACKEND_OPTION", async () => {
  assert.throws(() => spawnHandle("true", [], { cgroup: "yes" as unknown as boolean }), TypeError);
  if (!RUNTIME) {
    await spawnHandle("true", [], { cgroup: false }).wait();
    return;
  }
  assert.throws(
    () => spawnHandle("true", [], { cgroup: true }),
    (e: unknown) => e instanceof TypeError && (e as TypeError & { code: string }).code === "ERR_BACKEND_OPTION",
  );
  await spawnHandle("true", [], { cgroup: false }).wait();
});
