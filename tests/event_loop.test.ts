import assert from "node:assert/strict";
import process from "node:process";
import { spawnHandle } from "../mod.ts";
import { procStat, runFixture, test, threadCount } from "./harness.ts";

test("a script whose children have all exited ends by itself", async () => {
  const result = await runFixture("event_loop.ts", ["all-exited"]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { done: true });
});

test("an unref()'d running child does not keep the script alive", async () => {
  const result = await runFixture("event_loop.ts", ["unref"]);
  assert.equal(result.code, 0, result.stderr);
  const { pid } = JSON.parse(result.stdout);
  // The script ended while its child still runs (sleep 30).
  const stat = procStat(pid);
  assert.ok(stat !== null && stat.state !== "Z", `child ${pid} should still run: ${JSON.stringify(stat)}`);
  process.kill(pid, "SIGKILL");
});

test("awaiting wait() keeps the script alive, even for an unref()'d child", async () => {
  const result = await runFixture("event_loop.ts", ["await-unrefd"]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { code: 6 });
});

test("a ref'd running child keeps the script alive until it exits", async () => {
  const result = await runFixture("event_loop.ts", ["ref-no-wait"]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.childAliveAtExit, false);
});

test("no thread per child: 200 children awaited at once add no threads", async () => {
  await spawnHandle("true").wait();
  const before = threadCount();
  const children = Array.from({ length: 200 }, () => spawnHandle("sleep", ["0.3"]));
  const during = threadCount();
  const statuses = await Promise.all(children.map((c) => c.wait()));
  assert.ok(statuses.every((s) => s.code === 0));
  // The runtime may start a helper thread of its own once; never one per child.
  assert.ok(during - before <= 2, `threads: ${before} before, ${during} with 200 children`);
});
