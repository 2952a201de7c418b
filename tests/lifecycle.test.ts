import assert from "node:assert/strict";
import process from "node:process";
import { monotonicNs, reaperInfo, spawnHandle } from "../mod.ts";
import { nativeTest, openFds, procStat, sleep, test, threadCount, TINY, zombiesOf } from "./harness.ts";

const CYCLES = Number(process.env.PH_CYCLES ?? 10_000);
const BATCH = 50;

async function cycles(count: number): Promise<void> {
  for (let done = 0; done < count; done += BATCH) {
    const batch = Array.from({ length: BATCH }, () => spawnHandle("true"));
    const statuses = await Promise.all(batch.map((c) => c.wait()));
    for (const s of statuses) assert.equal(s.code, 0);
  }
}

test(`${CYCLES} spawn/wait cycles leave fds, threads and zombies unchanged`, async () => {
  // Warm-up: both runtimes start a few threads of their own lazily (a GC helper, a JIT
  // worker) during the first thousand or so spawns, then stay flat.
  await cycles(2000);
  await sleep(50);
  const fds = openFds();
  const threads = threadCount();
  const reaper = reaperInfo().reaperPid;
  await cycles(CYCLES);
  await sleep(50);
  const after = openFds();
  const added = [...after].filter(([fd]) => !fds.has(fd));
  assert.deepEqual(added, [], "descriptors leaked");
  assert.ok(threadCount() <= threads + 1, `threads: ${threads} then ${threadCount()}`);
  assert.deepEqual(zombiesOf(reaper), []);
  assert.deepEqual(zombiesOf(process.pid), []);
  assert.equal(reaperInfo().slotsInUse, 0);
  assert.equal(reaperInfo().reaperPid, reaper, "one reaper for the whole run");
}, { timeoutMs: 300_000 });

nativeTest(
  "a burst of exits: statuses go out first, and the zombies are reaped right after, with nothing else to do",
  "the runtime, not the library, reaps here",
  async () => {
    const reaper = (await spawnHandle("true").wait(), reaperInfo().reaperPid);
    for (let round = 0; round < 5; round++) {
      // 200 children that wake at one instant, so the reaper sees their exits together.
      const deadline = String(monotonicNs() + 300_000_000n);
      const children = Array.from({ length: 200 }, () => spawnHandle(TINY, ["until", deadline]));
      const statuses = await Promise.all(children.map((child) => child.wait()));
      assert.ok(statuses.every((status) => status.code === 0));
      // Within microseconds in practice; a zombie left until some later event would stay.
      const end = performance.now() + 500;
      let left = children.filter((child) => procStat(child.pid)?.ppid === reaper);
      while (left.length > 0 && performance.now() < end) {
        await sleep(1);
        left = left.filter((child) => procStat(child.pid)?.ppid === reaper);
      }
      assert.deepEqual(left.map((child) => procStat(child.pid)), [], "zombies left");
    }
  },
);

nativeTest(
  "handles that are never awaited still release their slots and pidfds",
  "no library slots or pidfds",
  async () => {
    await spawnHandle("true").wait();
    await sleep(50);
    const fds = openFds();
    for (let i = 0; i < 200; i++) spawnHandle("true").unref();
    // Their exits are delivered by the next drain, which closes pidfds nobody looked at.
    await sleep(300);
    await spawnHandle("true").wait();
    await sleep(50);
    assert.equal(reaperInfo().slotsInUse, 0);
    assert.deepEqual(zombiesOf(reaperInfo().reaperPid), []);
    assert.deepEqual([...openFds()].filter(([fd]) => !fds.has(fd)), [], "descriptors leaked");
  },
);
