import assert from "node:assert/strict";
import process from "node:process";
import { spawn as nodeSpawn } from "node:child_process";
import { EXPECT_PIDFD, fixture, nativeTest, NO_OWNER, procStat, runFixture, runtimeArgv, sleep } from "./harness.ts";

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const end = performance.now() + withinMs;
  while (performance.now() < end) {
    const stat = procStat(pid);
    if (stat === null || stat.state === "Z") return true;
    await sleep(5);
  }
  return false;
}

nativeTest(
  "when the host exits the reaper exits too: a reader of the host's stdout gets EOF",
  "no reaper: the runtime's own spawn makes the children",
  async () => {
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
  },
  { notPdfork: NO_OWNER },
);

nativeTest(
  "killOnParentExit: the reaper signals the child when the host exits",
  "killOnParentExit is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const result = await runFixture("host_exits.ts", ["kill"]);
    assert.equal(result.code, 0, result.stderr);
    const { reaper, child } = JSON.parse(result.stdout);
    assert.equal(await gone(reaper, 1000), true, "reaper still alive");
    assert.equal(await gone(child, 2000), true, "child still alive");
  },
);

nativeTest(
  "killOnParentExit covers the tree: a host killed with SIGKILL takes the child and its setsid descendant along",
  "killOnParentExit is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const result = await runFixture("tree_host.ts");
    assert.equal(result.signal, "SIGKILL", result.stderr);
    const { child, descendant } = JSON.parse(result.stdout);
    assert.ok(descendant > 0 && descendant !== child);
    assert.equal(await gone(child, 2000), true, "child still alive");
    const left = !(await gone(descendant, 2000));
    if (left) process.kill(descendant, "SIGKILL");
    // Without pidfds the owner signals the child by pid only: its descendants are not found.
    assert.equal(left, !EXPECT_PIDFD, left ? "the setsid descendant survived" : "");
  },
);

nativeTest(
  "the host exits in the middle of a burst of spawns: the reaper goes, and kills every child",
  "no reaper: the runtime's own spawn makes the children",
  async () => {
    const result = await runFixture("exit_mid_burst.ts");
    assert.equal(result.code, 0, result.stderr);
    const { reaper, pids } = JSON.parse(result.stdout);
    assert.ok(pids.length >= 60, `only ${pids.length} children`);
    assert.equal(await gone(reaper, 1000), true, "reaper still alive");
    for (const pid of pids) assert.equal(await gone(pid, 2000), true, `child ${pid} survived`);
  },
);

nativeTest(
  "a host killed with SIGKILL in the middle of spawning leaves no reaper behind (8 kills)",
  "no reaper: the runtime's own spawn makes the children",
  async () => {
    // Each kill lands somewhere in a spawn; some land while the child waits for the host's
    // attributes, which it must notice through the host's pidfd instead of holding the reaper.
    for (let round = 0; round < 8; round++) {
      const [cmd, argv] = runtimeArgv(fixture("spawn_loop.ts"));
      const host = nodeSpawn(cmd, argv, { stdio: ["ignore", "pipe", "inherit"] });
      const line = await new Promise<string>((resolve, reject) => {
        host.stdout!.setEncoding("utf8").once("data", (d: string) => resolve(d));
        host.on("error", reject);
      });
      const { reaper } = JSON.parse(line);
      assert.ok(reaper > 0);
      await sleep(20 + round * 7);
      host.kill("SIGKILL");
      assert.equal(await gone(reaper, 3000), true, `round ${round}: reaper ${reaper} still alive`);
    }
  },
  { notPdfork: NO_OWNER },
);
