/**
 * What a cgroup per child costs (docs/decisions/0012-cgroup-tree.md): spawn + wait of
 * `/bin/true` with `cgroup: false` and `cgroup: true` in alternating blocks, sequential and
 * in a pool of 8; prints the median wall time, and the CPU per child of the owner of the
 * children (reaper or helper, from /proc/<pid>/stat) and of this process.
 *
 *   deno run -A bench/cgroup_cost.ts [CHILDREN]
 *   bun bench/cgroup_cost.ts [CHILDREN]
 *   PRIVATE_SPAWN_BACKEND=helper deno run -A bench/cgroup_cost.ts
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { backendInfo, spawnHandle } from "../mod.ts";

const CHILDREN = Number(process.argv[2] ?? 3000);
const BLOCKS = 10;
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ). */
const TICK_US = 10_000;

/** utime + stime of `pid`, in clock ticks. */
function ticks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

interface Tally {
  wall: number[];
  ownerTicks: number;
  hostUs: number;
}

async function one(cgroup: boolean): Promise<void> {
  await spawnHandle("/bin/true", [], { cgroup, stdin: "null", stdout: "null", stderr: "null" }).wait();
}

/** `count` children, `parallel` at a time; the wall time per child (sequential) or per block. */
async function block(cgroup: boolean, count: number, parallel: number, tally: Tally, owner: number): Promise<void> {
  const ownerBefore = ticks(owner);
  const hostBefore = process.cpuUsage();
  const start = performance.now();
  if (parallel === 1) {
    for (let i = 0; i < count; i++) {
      const began = performance.now();
      await one(cgroup);
      tally.wall.push((performance.now() - began) * 1000);
    }
  } else {
    let left = count;
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (left-- > 0) await one(cgroup);
    }));
    tally.wall.push((performance.now() - start) * 1000 / count);
  }
  tally.ownerTicks += ticks(owner) - ownerBefore;
  const host = process.cpuUsage(hostBefore);
  tally.hostUs += host.user + host.system;
}

async function run(parallel: number): Promise<void> {
  const owner = backendInfo().pid;
  const tallies = [false, true].map(() => ({ wall: [], ownerTicks: 0, hostUs: 0 } as Tally));
  for (let b = 0; b < BLOCKS; b++) {
    for (const cgroup of [false, true]) {
      await block(cgroup, CHILDREN / BLOCKS, parallel, tallies[Number(cgroup)], owner);
    }
  }
  for (const cgroup of [false, true]) {
    const t = tallies[Number(cgroup)];
    console.log(
      `${parallel === 1 ? "sequential" : `pool of ${parallel}`}, cgroup: ${cgroup}: ` +
        `wall ${median(t.wall).toFixed(0)} µs, owner CPU ${(t.ownerTicks * TICK_US / CHILDREN).toFixed(1)} µs, ` +
        `host CPU ${(t.hostUs / CHILDREN).toFixed(1)} µs per child`,
    );
  }
}

await one(true);
const info = backendInfo();
console.log(
  `${info.runtime}, ${info.backend}, tree: ${info.tree}${
    info.treeFallbackReason ? ` (${info.treeFallbackReason})` : ""
  }`,
);
await run(1);
await run(8);
