import assert from "node:assert/strict";
import process from "node:process";
import { procStat, runFixture, sleep, test } from "./harness.ts";

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const end = performance.now() + withinMs;
  while (performance.now() < end) {
    const stat = procStat(pid);
    if (stat === null || stat.state === "Z") return true;
    await sleep(5);
  }
  return false;
}

test("when the host exits the reaper exits too: a reader of the host's stdout gets EOF", async () => {
  const result = await runFixture("host_exits.ts");
  assert.equal(result.code, 0, result.stderr);
  const { reaper, child } = JSON.parse(result.stdout);
  assert.ok(reaper > 0);
  // EOF came (runFixture resolved), and soon: the reaper held the stdout until it left.
  assert.ok(result.eofAfterExitMs < 1000, `EOF ${result.eofAfterExitMs.toFixed(1)} ms after the host exited`);
  assert.equal(await gone(reaper, 1000), true, "reaper still alive");
  // By default the child keeps running.
  const stat = procStat(child);
  assert.ok(stat !== null && stat.state !== "Z", "the child should keep running");
  process.kill(child, "SIGKILL");
});

test("killOnParentExit: the reaper signals the child when the host exits", async () => {
  const result = await runFixture("host_exits.ts", ["kill"]);
  assert.equal(result.code, 0, result.stderr);
  const { reaper, child } = JSON.parse(result.stdout);
  assert.equal(await gone(reaper, 1000), true, "reaper still alive");
  assert.equal(await gone(child, 2000), true, "child still alive");
});

test("the host exits in the middle of a burst of spawns: the reaper goes, and kills every child", async () => {
  const result = await runFixture("exit_mid_burst.ts");
  assert.equal(result.code, 0, result.stderr);
  const { reaper, pids } = JSON.parse(result.stdout);
  assert.ok(pids.length > 50, `only ${pids.length} children`);
  assert.equal(await gone(reaper, 1000), true, "reaper still alive");
  for (const pid of pids) assert.equal(await gone(pid, 2000), true, `child ${pid} survived`);
});
