import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { ReaperDiedError, reaperInfo, spawnHandle } from "../mod.ts";
import { EXPECT_PIDFD, FAULT, procStat, runFixture, sleep, test } from "./harness.ts";

test("the reaper is created lazily, once per process, and is not the host's visible child", async () => {
  const result = await runFixture("lazy_reaper.ts");
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.before, 0);
  assert.ok(report.first > 0);
  assert.equal(report.after, report.first);
  assert.equal(report.started, 1);
});

test("the reaper is a process of its own named ph-reaper, parented by the host", async () => {
  await spawnHandle("true").wait();
  const pid = reaperInfo().reaperPid;
  assert.equal(readFileSync(`/proc/${pid}/comm`, "utf8").trim(), "ph-reaper");
  const stat = procStat(pid)!;
  assert.equal(stat.ppid, process.pid);
  // A separate thread group: its own tgid.
  assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), new RegExp(`Tgid:\\s+${pid}\\b`));
  assert.equal(reaperInfo().cloneMode, FAULT === "" ? "clone3" : "clone");
  assert.equal(reaperInfo().pidfd, EXPECT_PIDFD);
});

test("the library works from a Worker and the main thread at once, with one reaper", async () => {
  const result = await runFixture("worker_spawn.ts");
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.deepEqual(report.main, [6, 7]);
  assert.deepEqual(report.worker, [3, 4, 5]);
  assert.equal(report.mainReaper, report.workerReaper);
  assert.equal(report.reapersStarted, 1);
});

test("a killed reaper: pending waits reject with ReaperDiedError, the next spawn starts a new one", async () => {
  const child = spawnHandle("sleep", ["30"]);
  const pending = child.wait();
  const reaper = reaperInfo().reaperPid;
  const started = reaperInfo().reapersStarted;
  process.kill(reaper, "SIGKILL");
  await assert.rejects(pending, (e: unknown) => {
    assert.ok(e instanceof ReaperDiedError);
    assert.equal(e.code, "ERR_REAPER_DIED");
    assert.equal(e.pid, child.pid);
    assert.match(e.message, /reaper process died/);
    return true;
  });
  assert.throws(() => child.waitNonblock(), ReaperDiedError);
  // The orphan still runs; its pidfd (where there are pidfds) still reaches it.
  if (EXPECT_PIDFD) assert.ok(child.fd >= 0);
  const next = spawnHandle("sh", ["-c", "exit 12"]);
  assert.equal((await next.wait()).code, 12);
  const info = reaperInfo();
  assert.notEqual(info.reaperPid, reaper);
  assert.equal(info.reapersStarted, started + 1);
  assert.equal(procStat(reaper), null, "the dead reaper was reaped by the host");
  process.kill(child.pid, "SIGKILL");
  await sleep(10);
});
