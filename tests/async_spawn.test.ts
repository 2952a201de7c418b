import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { backendInfo, type ProcessError, reaperInfo, run, SpawnError, spawnHandleAsync } from "../mod.ts";
import {
  BACKEND,
  nativeTest,
  openFds,
  QUEUES,
  reaperTest,
  runFixture,
  sleep,
  test,
  within,
  zombiesOf,
} from "./harness.ts";

/**
 * Fails on a descriptor open now that was not open `before` (or was another file then).
 * Earlier tests' children may still end meanwhile, closing what they held: that is no leak.
 */
function assertNoNewFds(before: Map<number, string>): void {
  const added = [...openFds()].filter(([fd, target]) => before.get(fd) !== target);
  assert.deepEqual(added, [], "descriptors left open");
}

/** The host's descriptors once earlier children's pipes and pidfds are gone. */
async function settledFds(): Promise<Map<number, string>> {
  await (await spawnHandleAsync("true")).wait();
  await sleep(50);
  return openFds();
}

test("spawnHandleAsync: 100 children at once, past the reaper's queue, each output and exit code delivered; no descriptor left", async () => {
  const before = await settledFds();
  const queuedBefore = backendInfo().spawnsQueued;
  const spawns = Array.from(
    { length: 100 },
    (_, i) => spawnHandleAsync("sh", ["-c", `echo out-${i}; exit ${i % 7}`], { stdout: "piped", stderr: "null" }),
  );
  const handles = await within("100 spawns", Promise.all(spawns));
  const results = await within(
    "100 exits",
    Promise.all(handles.map(async (child) => ({ text: await child.stdout.text(), status: await child.wait() }))),
  );
  results.forEach(({ text, status }, i) => {
    assert.equal(text, `out-${i}\n`);
    assert.equal(status.code, i % 7);
  });
  assert.equal(new Set(handles.map((child) => child.pid)).size, 100);
  const queued = backendInfo().spawnsQueued - queuedBefore;
  if (QUEUES) assert.ok(queued > 0 && queued <= 100, `${queued} spawns answered through the queue`);
  else assert.equal(queued, 0);
  await sleep(50);
  assertNoNewFds(before);
  if (BACKEND !== "runtime") assert.equal(reaperInfo().slotsInUse, 0);
  assert.deepEqual(zombiesOf(process.pid), []);
});

test("spawnHandleAsync: a failed spawn rejects with the SpawnError spawnHandle throws, and frees its slot and pipes", async () => {
  const before = await settledFds();
  const failures = await Promise.allSettled(
    Array.from({ length: 20 }, () => spawnHandleAsync("no-such-command-async", ["x"], { stdout: "piped" })),
  );
  for (const failure of failures) {
    assert.equal(failure.status, "rejected");
    const error = (failure as PromiseRejectedResult).reason;
    assert.ok(error instanceof SpawnError, String(error));
    assert.equal(error.code, "ENOENT");
    assert.equal(error.syscall, "execve");
    assert.equal(error.command, "no-such-command-async");
    assert.deepEqual(error.args, ["x"]);
  }
  if (BACKEND !== "runtime") assert.equal(reaperInfo().slotsInUse, 0);
  // The wake-up reader is let go a tick after the last spawn is answered.
  await sleep(50);
  assertNoNewFds(before);
  // A bad cwd is the child's chdir, reported as such.
  await assert.rejects(
    spawnHandleAsync("true", [], { cwd: "/no/such/dir" }),
    (error: SpawnError) => error.code === "ENOENT" && error.syscall === "chdir",
  );
});

test("spawnHandleAsync: children that exit before their spawn is collected are delivered, each once", async () => {
  const spawns = Array.from({ length: 40 }, (_, i) => spawnHandleAsync("sh", ["-c", `exit ${i}`]));
  // The JavaScript thread stays busy while the reaper answers and the children exit: their
  // exits are published before anything collects the answers.
  const end = performance.now() + 300;
  while (performance.now() < end) { /* busy */ }
  const handles = await within("40 spawns", Promise.all(spawns));
  const statuses = await within("40 exits", Promise.all(handles.map((child) => child.wait())));
  assert.deepEqual(statuses.map((status) => status.code), Array.from({ length: 40 }, (_, i) => i));
});

test("spawnHandleAsync: an AbortSignal aborted while the spawn is in flight kills the child once it runs", async () => {
  const controller = new AbortController();
  const spawning = spawnHandleAsync("sleep", ["30"], { signal: controller.signal });
  controller.abort(new Error("stop"));
  const child = await within("the spawn", spawning);
  const status = await within("the exit", child.wait());
  assert.equal(status.signal, "SIGTERM");
  assert.equal(child.aborted, true);
  // Aborted before the call: nothing is spawned, the reason is the rejection.
  await assert.rejects(
    spawnHandleAsync("true", [], { signal: AbortSignal.abort("early") }),
    (reason) => reason === "early",
  );
});

nativeTest(
  "spawnHandleAsync: a host descriptor given to the child is the one open at the call, closed right after it",
  "the runtimes take no descriptor number for stdio",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "ph-async-"));
    try {
      const queuedBefore = backendInfo().spawnsQueued;
      const path = join(dir, "out");
      const fd = openSync(path, "w");
      const spawning = spawnHandleAsync("sh", ["-c", "echo to-the-fd"], { stdout: fd });
      // Closed (and its number free for reuse) before the spawn's promise is even awaited.
      closeSync(fd);
      const status = await (await spawning).wait();
      assert.equal(status.code, 0);
      assert.equal(readFileSync(path, "utf8"), "to-the-fd\n");
      // Such a spawn is made in the call, not queued.
      assert.equal(backendInfo().spawnsQueued, queuedBefore);
    } finally {
      rmSync(dir, { recursive: true });
    }
  },
);

test("spawnHandleAsync: the child gets the environment as it is at the call, whatever the host sets after it", async () => {
  process.env.PH_ASYNC_ENV = "at-the-call";
  try {
    const spawning = spawnHandleAsync("sh", ["-c", "echo $PH_ASYNC_ENV"], { stdout: "piped" });
    process.env.PH_ASYNC_ENV = "after-the-call";
    // Enough new variables that libc reallocates its array.
    for (let i = 0; i < 300; i++) process.env[`PH_ASYNC_FILL_${i}`] = "x";
    const child = await spawning;
    assert.equal(await child.stdout.text(), "at-the-call\n");
    assert.equal((await child.wait()).code, 0);
  } finally {
    delete process.env.PH_ASYNC_ENV;
    for (let i = 0; i < 300; i++) delete process.env[`PH_ASYNC_FILL_${i}`];
  }
});

test("run() in a pool of 8, 300 jobs: every output; with the reaper the spawns are queued", async () => {
  const before = await settledFds();
  const queuedBefore = backendInfo().spawnsQueued;
  let next = 0;
  const outputs: string[] = [];
  const worker = async () => {
    while (next < 300) {
      const job = next++;
      outputs[job] = (await run("sh", ["-c", `echo job-${job}`])).stdout;
    }
  };
  await within("the pool", Promise.all(Array.from({ length: 8 }, worker)), 60_000);
  assert.deepEqual(outputs, Array.from({ length: 300 }, (_, job) => `job-${job}\n`));
  const queued = backendInfo().spawnsQueued - queuedBefore;
  if (QUEUES) assert.ok(queued >= 300, `${queued} spawns answered through the queue`);
  else assert.equal(queued, 0);
  await assert.rejects(run("sh", ["-c", "exit 3"]), (error: ProcessError) => error.code === 3);
  await sleep(50);
  assertNoNewFds(before);
}, { timeoutMs: 120_000 });

test("a pending spawn keeps the event loop alive: a script that does not await it still runs its child", async () => {
  const result = await runFixture("async_spawn.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.trim().split("\n").sort(), ["child says hi", "spawned: true"]);
});

test("Workers terminated with spawns in flight: the main thread spawns on, with the same reaper", async () => {
  const result = await runFixture("worker_async_terminated.ts");
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.deepEqual(report.outputs, Array.from({ length: 60 }, (_, i) => `after-${i}\n`));
  if (BACKEND !== "runtime") {
    assert.equal(report.reaperAfter, report.reaperBefore);
    assert.equal(report.started, 1);
  }
  if (QUEUES) assert.ok(report.queued > 0, `${report.queued} spawns queued after the Workers ended`);
}, { timeoutMs: 60_000 });

reaperTest(
  "a terminated Worker's answered spawns are let go: the whole queue serves the main thread again",
  "the helper's spawns are not queued",
  async () => {
    const result = await runFixture("worker_queue_released.ts");
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual(report.codes, Array.from({ length: 13 }, (_, i) => i));
    // 32 entries: 20 kept for the ended realm would leave room for 12.
    assert.equal(report.queued, 13);
  },
  { timeoutMs: 60_000 },
);

reaperTest(
  "the reaper killed with spawns in its queue: they are spawned by the next reaper, none hangs",
  "the helper's spawns are not queued",
  async () => {
    const { reaperPid, reapersStarted } = reaperInfo();
    assert.ok(reaperPid > 0);
    // Stopped, the reaper takes nothing: all ten stay queued until it is killed.
    process.kill(reaperPid, "SIGSTOP");
    const spawns = Array.from(
      { length: 10 },
      (_, i) => spawnHandleAsync("sh", ["-c", `echo q-${i}`], { stdout: "piped" }),
    );
    process.kill(reaperPid, "SIGKILL");
    const handles = await within("the queued spawns", Promise.all(spawns));
    const texts = await within("their output", Promise.all(handles.map((child) => child.stdout.text())));
    assert.deepEqual(texts, Array.from({ length: 10 }, (_, i) => `q-${i}\n`));
    const statuses = await within("their exits", Promise.all(handles.map((child) => child.wait())));
    for (const status of statuses) assert.equal(status.code, 0);
    const after = reaperInfo();
    assert.notEqual(after.reaperPid, reaperPid);
    assert.equal(after.reapersStarted, reapersStarted + 1);
    assert.equal(after.slotsInUse, 0);
  },
);
