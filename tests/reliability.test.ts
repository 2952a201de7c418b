import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { HandleClosedError, monotonicNs, reaperInfo, SpawnError, spawnHandle } from "../mod.ts";
import { KNOWN_OPTIONS } from "../src/options.ts";
import {
  cgroupDir,
  EXPECT_FD_TABLE,
  EXPECT_PIDFD,
  fixture,
  isBun,
  nativeTest,
  openFds,
  procStat,
  readAll,
  runFixture,
  runtimeArgv,
  sleep,
  test,
  TINY,
  zombiesOf,
} from "./harness.ts";

const BURST = Number(process.env.PH_BURST ?? 10_000);
const STORM_SPAWNS = Number(process.env.PH_STORM ?? 5000);
/** What Deno prints when it cannot start a thread of its own (seen under a signal storm). */
const RUNTIME_THREAD_ABORT = "unable to create worker threads";

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") g();
  else if (isBun) (globalThis as unknown as { Bun: { gc(sync: boolean): void } }).Bun.gc(true);
}

async function settled(): Promise<Map<number, string>> {
  await spawnHandle("true").wait();
  await sleep(50);
  return openFds();
}

/**
 * No descriptor added since `before`. The owner keeps the emptied cgroups of children that
 * had one (killOnParentExit, cgroup: true) for reuse, with two descriptors each, and lets them
 * go after `POOL_IDLE_MS` without spawns: those must be gone by then too.
 */
async function sameFds(before: Map<number, string>, after: Map<number, string>): Promise<void> {
  const cgroups = cgroupDir()?.path;
  const isPooled = ([, path]: [number, string]) => cgroups !== undefined && path.startsWith(`${cgroups}/`);
  let added = [...after].filter(([fd]) => !before.has(fd));
  const until = performance.now() + POOL_IDLE_MS * 2.5;
  while (added.length > 0 && added.every(isPooled) && performance.now() < until) {
    await sleep(100);
    added = [...openFds()].filter(([fd]) => !before.has(fd));
  }
  assert.deepEqual(added, [], "descriptors leaked");
}
const POOL_IDLE_MS = 1000;

test("E2BIG: one argument over 128 KiB, or arguments over the total limit, fail synchronously", () => {
  for (const args of [["x".repeat(200 * 1024)], Array.from({ length: 40 }, () => "y".repeat(100 * 1024))]) {
    assert.throws(() => spawnHandle("true", args), (e: unknown) => {
      assert.ok(e instanceof SpawnError);
      assert.deepEqual([e.code, e.errno, e.syscall], ["E2BIG", 7, "execve"]);
      return true;
    });
  }
});

test("1,000 failing spawns leave no zombie and no descriptor", async () => {
  const before = await settled();
  for (let i = 0; i < 1000; i++) {
    assert.throws(() => spawnHandle("/nonexistent/program", [], { stdin: "piped", stdout: "piped" }), SpawnError);
  }
  await sleep(50);
  await sameFds(before, openFds());
  assert.deepEqual(zombiesOf(reaperInfo().reaperPid), []);
  assert.equal(reaperInfo().slotsInUse, 0);
});

test("pid reuse: a reaped child's handle never signals the process that got its pid", async () => {
  if (process.getuid?.() !== 0) return;
  const old = spawnHandle("true");
  const pid = old.pid;
  await old.wait();
  // As root, ask the kernel to hand out the same pid next (ns_last_pid is "the last pid used").
  const last = "/proc/sys/kernel/ns_last_pid";
  let reused: ReturnType<typeof spawnHandle> | null = null;
  for (let attempt = 0; attempt < 20 && reused === null; attempt++) {
    writeFileSync(last, String(pid - 1));
    const candidate = spawnHandle("sleep", ["5"]);
    if (candidate.pid === pid) reused = candidate;
    else {
      candidate.sendSignal("KILL");
      await candidate.wait();
    }
  }
  assert.ok(reused !== null, `pid ${pid} was not reused`);
  assert.equal(old.sendSignal("SIGKILL"), false);
  await sleep(50);
  assert.equal(reused.waitNonblock().exited, false, "the new process with the old pid was hit");
  assert.equal(procStat(pid)?.state !== "Z", true);
  reused.sendSignal("KILL");
  assert.equal((await reused.wait()).signal, "SIGKILL");
});

nativeTest(
  "a signal storm at the host during thousands of spawns corrupts nothing",
  "killOnParentExit is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    // In a process of its own (tests/fixtures/signal_storm.ts): under the storm, Deno itself
    // sometimes aborts with "Deno could not start: unable to create worker threads" when it
    // starts a thread of its own, and inside the test runner that took the whole suite with it
    // (3 of 6 runs of the suite on 2026-12-07, with this library and with 926f11e's). That
    // abort alone, recognised by its message, is tried again, at most twice; anything else fails.
    let result = await runFixture("signal_storm.ts", [String(STORM_SPAWNS)]);
    for (let retry = 0; retry < 2 && result.stderr.includes(RUNTIME_THREAD_ABORT); retry++) {
      console.error(`signal storm: the runtime could not start a thread; once more`);
      result = await runFixture("signal_storm.ts", [String(STORM_SPAWNS)]);
    }
    assert.equal(result.code, 0, `the storm's host exited ${result.code} ${result.signal}: ${result.stderr}`);
    const { spawned, received } = JSON.parse(result.stdout);
    assert.equal(spawned, STORM_SPAWNS);
    assert.ok(received > 0, "the storm never reached the host");
  },
  {
    timeoutMs: 300_000,
    // V8 fails to start its worker threads under the storm with the glibc build (decision 0013).
    notPortable: isBun ? undefined : "under this storm Deno cannot start its worker threads with the glibc build",
  },
);

test("a grandchild that keeps stdout open: the exit resolves, EOF waits for the grandchild", async () => {
  const child = spawnHandle("sh", ["-c", "echo parent; (sleep 0.5; echo grandchild) & exit 0"], { stdout: "piped" });
  const reading = readAll(child.stdout!);
  const status = await child.wait();
  const exitedAt = performance.now();
  assert.equal(status.code, 0);
  assert.equal(new TextDecoder().decode(await reading), "parent\ngrandchild\n");
  assert.ok(performance.now() - exitedAt > 200, "EOF should have waited for the grandchild");
});

test("kill while reading: the stream ends and the wait settles", async () => {
  const child = spawnHandle("yes", [], { stdout: "piped" });
  const reader = child.stdout!.getReader();
  let bytes = 0;
  for (let i = 0; i < 10; i++) bytes += (await reader.read()).value?.length ?? 0;
  assert.ok(bytes > 0);
  child.sendSignal("SIGKILL");
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
  assert.equal((await child.wait()).signal, "SIGKILL");
});

test(`${BURST} exits in one burst, with forced GC: each delivered exactly once`, async () => {
  const deadline = monotonicNs() + BigInt(Math.round(BURST * 1.5 + 2000)) * 1_000_000n;
  const children: ReturnType<typeof spawnHandle>[] = [];
  for (let i = 0; i < BURST; i++) {
    children.push(spawnHandle(TINY, ["until", String(deadline)]));
    if (i % 2000 === 0) gc();
  }
  // Pids repeat only when spawning outlasted the deadline (about 8 s for 2,000 under
  // no-close-range), early children exited, and the pid counter wrapped (pid_max 32768) during
  // the burst; then a repeated pid proves nothing, and the check of each handle's own pid remains.
  const uniquePids = new Set(children.map((c) => c.pid)).size === BURST;
  let settledCount = 0;
  const seen = new Set<number>();
  const waits = children.map((c) =>
    c.wait().then((s) => {
      settledCount++;
      if (uniquePids) assert.equal(seen.has(s.pid), false, `pid ${s.pid} delivered twice`);
      seen.add(s.pid);
      return s;
    })
  );
  gc();
  const statuses = await Promise.all(waits);
  gc();
  assert.equal(settledCount, BURST);
  if (uniquePids) assert.equal(seen.size, BURST);
  statuses.forEach((s, i) => {
    assert.equal(s.pid, children[i].pid);
    assert.equal(s.code, 0);
  });
  assert.equal(reaperInfo().slotsInUse, 0);
}, { timeoutMs: 300_000 });

test("a disposed handle refuses to signal with a typed error", async () => {
  const child = spawnHandle("sleep", ["5"]);
  await child[Symbol.asyncDispose]();
  assert.throws(
    () => child.sendSignal("SIGTERM"),
    (e: unknown) => e instanceof HandleClosedError && e.code === "ERR_HANDLE_CLOSED",
  );
  assert.equal(child.waitNonblock().signal, "SIGTERM");
  assert.equal(child.fd, -1);
});

test("a huge environment reaches the child intact", async () => {
  const env: Record<string, string> = {};
  for (let i = 0; i < 5000; i++) env[`PH_VAR_${i}`] = `value-${i}-${"z".repeat(50)}`;
  const child = spawnHandle("sh", ["-c", 'echo "$PH_VAR_4999"; env | grep -c ^PH_VAR_'], { env, stdout: "piped" });
  assert.equal(new TextDecoder().decode(await readAll(child.stdout!)), `value-4999-${"z".repeat(50)}\n5000\n`);
  await child.wait();
});

/** A small seeded generator, so a failure names a reproducible case. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

test("fuzzed options: thousands of generated inputs give a handle or a typed error, never a crash", async () => {
  const random = prng(19322);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  const values: unknown[] = [
    undefined,
    null,
    0,
    -1,
    1.5,
    3,
    2 ** 40,
    NaN,
    Infinity,
    "",
    "x",
    "a\0b",
    "inherit",
    "null",
    "piped",
    "stdout",
    "piped-input",
    true,
    false,
    [],
    [1, 2],
    ["a"],
    {},
    { path: "/dev/null" },
    { path: 5 },
    { nofile: [10, 20] },
    { bogus: 1 },
    new URL("file:///tmp"),
    Symbol("s"),
    () => {},
    10n,
  ];
  const keys = [...KNOWN_OPTIONS, "bogusOption"];
  const before = await settled();
  let spawned = 0;
  for (let i = 0; i < 3000; i++) {
    const options: Record<string, unknown> = {};
    const count = Math.floor(random() * 3);
    for (let k = 0; k < count; k++) options[pick(keys)] = pick(values);
    const args = random() < 0.9 ? [] : pick(values);
    try {
      const child = spawnHandle(random() < 0.95 ? "true" : pick(values) as string, args as string[], options);
      spawned++;
      child.sendSignal("SIGKILL");
      await child.wait();
      // Streams are the caller's: close what this case was given, as a user would.
      for (const input of [child.stdin, ...Object.values(child.fdInputs)]) await input?.abort();
      for (const output of [child.stdout, child.stderr, ...Object.values(child.fdOutputs)]) await output?.cancel();
    } catch (e) {
      const typed = e instanceof TypeError || e instanceof RangeError || e instanceof SpawnError;
      assert.ok(
        typed,
        `case ${i}: ${JSON.stringify(options, (_, v) => typeof v === "bigint" ? `${v}n` : v)} threw ${e}`,
      );
    }
  }
  await sleep(100);
  assert.ok(spawned > 100, `only ${spawned} valid cases`);
  await sameFds(before, openFds());
  assert.equal(reaperInfo().slotsInUse, 0);
  assert.deepEqual(zombiesOf(reaperInfo().reaperPid), []);
}, { timeoutMs: 180_000 });

nativeTest(
  "EMFILE: with the descriptor table full, spawn fails cleanly and works once descriptors are freed",
  "rlimits is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const [cmd, args] = runtimeArgv(fixture("emfile.ts"));
    // The fixture runs with 200 descriptors at most, set by our own rlimits option.
    const child = spawnHandle(cmd, args, { stdout: "piped", stderr: "piped", rlimits: { nofile: 200 } });
    const { status, stdout, stderr } = await child.output();
    assert.equal(status.code, 0, new TextDecoder().decode(stderr));
    const report = JSON.parse(new TextDecoder().decode(stdout));
    assert.deepEqual(report.full, { code: "EMFILE", syscall: "pipe" });
    assert.equal(report.leaked, 0);
    assert.deepEqual(report.recovered, { ok: true });
  },
);

nativeTest(
  "a first spawn that cannot open its exit listener (EMFILE) is a SpawnError with errno 24; spawns work once descriptors are freed",
  "rlimits is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const [cmd, args] = runtimeArgv(fixture("listener_emfile.ts"));
    const child = spawnHandle(cmd, args, { stdout: "piped", stderr: "piped", rlimits: { nofile: 200 } });
    const { status, stdout, stderr } = await child.output();
    assert.equal(status.code, 0, new TextDecoder().decode(stderr));
    const report = JSON.parse(new TextDecoder().decode(stdout));
    assert.deepEqual(report, {
      rc: -24,
      seen: { code: "EMFILE", errno: 24, syscall: "listener" },
      recovered: { ok: true },
    });
  },
);

// Deno and Bun reopen a closed 0, 1 or 2 on /dev/null at startup; the truly closed case is a
// Zig test (spawn_test.zig). Here: children get valid stdio and spawning leaves 0 and 2 alone.
nativeTest(
  "a host started with stdin and stderr closed: children get valid 0, 1, 2; spawning leaves the host's alone",
  "the runtime's own stdio: Bun's pipes are sockets",
  async () => {
    const [cmd, args] = runtimeArgv(fixture("closed_stdio.ts"));
    const child = spawnHandle("sh", ["-c", 'exec 0<&- 2>&-; exec "$@"', "sh", cmd, ...args], { stdout: "piped" });
    const { status, stdout } = await child.output();
    assert.equal(status.code, 0);
    const report = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(report.child[0], "/dev/null");
    assert.match(report.child[1], /^pipe:/);
    assert.equal(report.child[2], "/dev/null");
    // Whatever the runtime put at 0 and 2 itself, spawning changed neither.
    assert.deepEqual(report.during, report.before);
  },
);

/** The size of a process's descriptor table (`FDSize` in /proc/<pid>/status). */
function fdTableSize(pid: number | "self"): number {
  return Number(/FDSize:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

nativeTest(
  "next to 600 live children, a new child copies none of their pidfds: its descriptor table stays small",
  "the runtime's spawn decides which descriptors a child gets",
  async () => {
    const deadline = String(monotonicNs() + 60_000_000_000n);
    const live = Array.from({ length: 600 }, () => spawnHandle(TINY, ["until", deadline]));
    try {
      const probe = spawnHandle(TINY, ["until", deadline]);
      live.push(probe);
      // The host holds a pidfd per child, so its table has room for at least 600 more.
      if (EXPECT_PIDFD) assert.ok(fdTableSize("self") >= 1024, `host FDSize ${fdTableSize("self")}`);
      const size = fdTableSize(probe.pid);
      assert.equal(reaperInfo().fdTable, EXPECT_FD_TABLE);
      if (EXPECT_FD_TABLE === "needed") {
        // Only the host's descriptors below the highest one the child was given: stdio here.
        assert.ok(size <= 256, `child FDSize ${size}`);
      } else {
        // The whole table, as clone copies it (kernels before 5.9, or unsharing refused).
        assert.ok(size >= 1024, `child FDSize ${size}`);
      }
      assert.deepEqual([...openFds(probe.pid).keys()].sort(), [0, 1, 2]);
    } finally {
      for (const child of live) child.sendSignal("SIGKILL");
      await Promise.all(live.map((child) => child.wait()));
    }
  },
  {
    timeoutMs: 60_000,
    notPortable: "a forked child starts with a copy of the helper's table (its exit pipes), closed at exec",
  },
);
