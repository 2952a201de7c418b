import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { ReaperDiedError, reaperInfo, spawnHandle } from "../mod.ts";
import {
  EXPECT_CLONE,
  EXPECT_FD_TABLE,
  EXPECT_PIDFD,
  nativeTest,
  NO_OWNER,
  PDFORK,
  procStat,
  reaperTest,
  runFixture,
  RUNTIME,
  sleep,
  test,
  TINY,
} from "./harness.ts";

/** Why a test does not apply to the helper, and where its equivalent is. */
const HELPER_HAS_OWN = "the helper is not the host's child; tests/backend.test.ts has its equivalent";
const NO_ORPHANS = "a dead helper's children are reported lost at once; tests/backend.test.ts checks it";

nativeTest(
  "the reaper is created lazily, once per process, and is not the host's visible child",
  "no reaper: the runtime's own spawn makes the children",
  async () => {
    const result = await runFixture("lazy_reaper.ts");
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.before, 0);
    assert.ok(report.first > 0);
    assert.equal(report.after, report.first);
    assert.equal(report.started, 1);
  },
  { notPdfork: NO_OWNER },
);

reaperTest("the reaper is a process of its own named ph-reaper, parented by the host", HELPER_HAS_OWN, async () => {
  await spawnHandle("true").wait();
  const pid = reaperInfo().reaperPid;
  assert.equal(readFileSync(`/proc/${pid}/comm`, "utf8").trim(), "ph-reaper");
  const stat = procStat(pid)!;
  assert.equal(stat.ppid, process.pid);
  // A separate thread group: its own tgid.
  assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), new RegExp(`Tgid:\\s+${pid}\\b`));
  assert.equal(reaperInfo().cloneMode, EXPECT_CLONE);
  assert.equal(reaperInfo().pidfd, EXPECT_PIDFD);
  assert.equal(reaperInfo().fdTable, EXPECT_FD_TABLE);
});

nativeTest(
  "the library works from a Worker and the main thread at once, with one reaper",
  "no reaper: the runtime's own spawn makes the children",
  async () => {
    const result = await runFixture("worker_spawn.ts");
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual(report.main, [6, 7]);
    assert.deepEqual(report.worker, [3, 4, 5]);
    assert.equal(report.mainReaper, report.workerReaper);
    assert.equal(report.reapersStarted, 1);
  },
);

test(
  "70 Workers one after another, more than the 64 listeners: each ended realm's listener is taken over",
  async () => {
    const result = await runFixture("workers_many.ts", ["70"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual(report.outputs, Array.from({ length: 70 }, () => "hi\n"));
    assert.equal(report.main, "main\n");
    // A listener is a pipe: 70 of them would be 140 descriptors more.
    const pipes: number[] = report.pipesAfter;
    assert.ok(Math.max(...pipes) <= pipes[0] + 6, `the host's pipes after each Worker: ${pipes.join(" ")}`);
    if (!RUNTIME && !PDFORK) assert.equal(report.started, 1);
  },
  { timeoutMs: 120_000 },
);

reaperTest(
  "a killed reaper: the next spawn starts a new one; the orphan stays reachable and its wait settles",
  HELPER_HAS_OWN,
  async () => {
    const child = spawnHandle("sleep", ["30"]);
    const pending = child.wait();
    const reaper = reaperInfo().reaperPid;
    const started = reaperInfo().reapersStarted;
    process.kill(reaper, "SIGKILL");
    const next = spawnHandle("sh", ["-c", "exit 12"]);
    assert.equal((await next.wait()).code, 12);
    const info = reaperInfo();
    assert.notEqual(info.reaperPid, reaper);
    assert.equal(info.reapersStarted, started + 1);
    assert.equal(procStat(reaper), null, "the dead reaper was reaped by the host");
    if (EXPECT_PIDFD) {
      // The orphan is still held by its pidfd: it can be signalled, race-free.
      assert.equal(child.sendSignal("SIGKILL"), true);
    } else {
      process.kill(child.pid, "SIGKILL");
    }
    // Whether the status can be recovered depends on the orphan's new parent reaping it (this
    // machine's PID 1 does not): the wait resolves with SIGKILL, or rejects with ReaperDiedError.
    const outcome = await pending.then((s) => s.signal, (e) => e);
    if (outcome instanceof Error) {
      assert.ok(outcome instanceof ReaperDiedError);
      assert.equal(outcome.code, "ERR_REAPER_DIED");
      assert.equal(outcome.pid, child.pid);
      assert.match(outcome.message, /reaper process died/);
      assert.throws(() => child.waitNonblock(), ReaperDiedError);
    } else {
      assert.equal(outcome, "SIGKILL");
    }
    await sleep(10);
  },
  { timeoutMs: 20_000 },
);

// Orphan recovery needs pidfds and PIDFD_GET_INFO (Linux 6.15+; this machine runs 6.18).
if (EXPECT_PIDFD) {
  reaperTest(
    "after the reaper dies, an orphan's exit status is recovered once its new parent reaps it",
    NO_ORPHANS,
    async () => {
      const result = await runFixture("orphan.ts", ["reap"]);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout);
      assert.deepEqual([report.code, report.signal, report.error], [7, null, undefined]);
      assert.notEqual(report.newReaper, report.reaper);
      assert.equal(report.reapersStarted, 2);
    },
    { timeoutMs: 20_000 },
  );

  reaperTest("an orphan that nobody reaps is reported lost after a grace period", NO_ORPHANS, async () => {
    const result = await runFixture("orphan.ts", ["no-reap"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.error, "ERR_REAPER_DIED");
    assert.ok(report.ms >= 2000, `gave up after ${report.ms} ms`);
  }, { timeoutMs: 20_000 });
}

if (!EXPECT_PIDFD) {
  reaperTest(
    "without pidfds, a killed reaper's running children are reported lost at once",
    HELPER_HAS_OWN,
    async () => {
      const result = await runFixture("orphan.ts", ["reap"]);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout);
      assert.equal(report.error, "ERR_REAPER_DIED");
      assert.ok(report.ms < 2000, `took ${report.ms} ms`);
    },
    { timeoutMs: 20_000 },
  );
}

reaperTest(
  "the reaper polls 1 ms after events while children are short-lived, 200 µs once they live long",
  "the helper's poll window is its own, not reported to the host",
  async () => {
    // Earlier tests' long-lived children weigh on the average: spawn short ones until it drops.
    let spawned = 0;
    while (reaperInfo().pollWindowUs !== 1000 && spawned < 500) {
      await spawnHandle(TINY, []).wait();
      spawned++;
    }
    assert.equal(
      reaperInfo().pollWindowUs,
      1000,
      `still ${reaperInfo().pollWindowUs} µs after ${spawned} short children`,
    );
    // A child that outlives the window: the reaper stops polling long at the window's end.
    const sleeper = spawnHandle("sleep", ["30"]);
    await sleep(20);
    assert.equal(reaperInfo().pollWindowUs, 200);
    sleeper.sendSignal("SIGKILL");
    await sleeper.wait();
    assert.equal(reaperInfo().pollWindowUs, 200);
    // One short-lived child is not enough after a life of 20 ms; a few bring the long polls back.
    await spawnHandle(TINY, []).wait();
    assert.equal(reaperInfo().pollWindowUs, 200);
    for (let i = 0; i < 40 && reaperInfo().pollWindowUs !== 1000; i++) await spawnHandle(TINY, []).wait();
    assert.equal(reaperInfo().pollWindowUs, 1000);
  },
);
