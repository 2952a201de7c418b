/**
 * The backends against the reaper: sequential spawn + wait of `/bin/true` and of the tiny
 * static child, in one child process of this one per backend (the backend is chosen per
 * process), measured in rotating rounds so all see the same machine; prints medians and
 * ratios to the reaper.
 *
 *   deno run -A bench/helper_vs_reaper.ts [ROUNDS] [SPAWNS_PER_ROUND] [BACKENDS]
 *   bun bench/helper_vs_reaper.ts [ROUNDS] [SPAWNS_PER_ROUND] [BACKENDS]
 *
 * BACKENDS: comma-separated, default "reaper,helper"; also "posix-helper" and "posix-pdfork",
 * the portable helper and the pdfork backend's Linux stand-ins in the glibc build
 * (`zig build posix`). BENCH_TINY names the tiny child (scripts/test.sh and bench/run.sh
 * build it).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { isBun } from "../ffi/mod.ts";
import { backendInfo, spawnHandle } from "../mod.ts";

const TINY = process.env.BENCH_TINY ?? new URL("../.tools/bench/tiny", import.meta.url).pathname;
const CHILDREN: [string, string][] = [["/bin/true", "/bin/true"], ["tiny", TINY]];
const POSIX = new URL("../zig/zig-out/posix/", import.meta.url).pathname;
/** Each backend's environment and the `backendInfo().backend` it must report. */
const CONFIGS: Record<string, { env: Record<string, string>; reports: string }> = {
  reaper: { env: { PRIVATE_SPAWN_BACKEND: "reaper" }, reports: "reaper" },
  helper: { env: { PRIVATE_SPAWN_BACKEND: "helper" }, reports: "helper" },
  "posix-helper": {
    env: {
      PRIVATE_SPAWN_BACKEND: "helper",
      PRIVATE_SPAWN_LIB: `${POSIX}lib/libprivate_spawn.so`,
      PRIVATE_SPAWN_HELPER: `${POSIX}bin/ph-helper`,
    },
    reports: "helper",
  },
  "posix-pdfork": {
    env: { PRIVATE_SPAWN_BACKEND: "pdfork", PRIVATE_SPAWN_LIB: `${POSIX}lib/libprivate_spawn.so` },
    reports: "pdfork",
  },
};

/** In a measuring child: `count` sequential spawn + wait of each child, µs per spawn. */
async function measure(count: number): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, path] of CHILDREN) {
    for (let i = 0; i < 20; i++) await spawnHandle(path).wait(); // warm-up
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await spawnHandle(path).wait();
      samples.push((performance.now() - start) * 1000);
    }
    out[name] = samples;
  }
  return out;
}

/** Jobs in flight in the pool, and jobs per pool run. */
const POOL_WIDTH = 8;
const POOL_JOBS = 240;

/** CPU time of a process (every thread), µs, from /proc/<pid>/stat (utime + stime in ticks of 10 ms). */
function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/**
 * In a measuring child: a pool of `POOL_WIDTH` jobs (`sh -c 'echo …'`, stdout captured), the
 * next starting when one ends. Wall time per job, and host-side CPU per job: this process and
 * the reaper or helper (the pdfork watcher is a thread of this process).
 */
async function measurePool(): Promise<{ wallUs: number; cpuUs: number }> {
  const job = async (i: number) => {
    const child = spawnHandle("sh", ["-c", `echo job ${i}`], { stdout: "piped" });
    const text = await child.stdout.text();
    await child.wait();
    if (text !== `job ${i}\n`) throw new Error(`job ${i}: ${JSON.stringify(text)}`);
  };
  await job(-1);
  const owner = backendInfo().pid;
  const ownerCpu = () => (owner > 0 ? processCpuUs(owner) : 0);
  const cpuBefore = processCpuUs(process.pid) + ownerCpu();
  const start = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < POOL_JOBS) await job(next++);
  };
  await Promise.all(Array.from({ length: POOL_WIDTH }, lane));
  const wallUs = (performance.now() - start) * 1000 / POOL_JOBS;
  const cpuUs = (processCpuUs(process.pid) + ownerCpu() - cpuBefore) / POOL_JOBS;
  return { wallUs, cpuUs };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

if (process.argv[2] === "--measure") {
  const samples = await measure(Number(process.argv[3]));
  const pool = await measurePool();
  samples.poolWall = [pool.wallUs];
  samples.poolCpu = [pool.cpuUs];
  console.log(JSON.stringify({ backend: backendInfo().backend, samples }));
} else {
  const rounds = Number(process.argv[2] ?? 5);
  const perRound = Number(process.argv[3] ?? 300);
  const backends = (process.argv[4] ?? "reaper,helper").split(",");
  if (backends[0] !== "reaper") backends.unshift("reaper");
  for (const name of backends) if (!CONFIGS[name]) throw new Error(`unknown backend ${name}`);
  const script = new URL(import.meta.url).pathname;
  const runtimeArgs = isBun ? [script] : ["run", "-A", script];
  const all: Record<string, Record<string, number[]>> = Object.fromEntries(backends.map((name) => [name, {}]));
  for (let round = 0; round < rounds; round++) {
    // Rotated each round: every backend goes first once in `backends.length` rounds.
    const order = backends.map((_, i) => backends[(i + round) % backends.length]);
    for (const backend of order) {
      const result = spawnSync(process.execPath, [...runtimeArgs, "--measure", String(perRound)], {
        env: { ...process.env, ...CONFIGS[backend].env },
        encoding: "utf8",
      });
      if (result.status !== 0) throw new Error(`${backend}: ${result.stderr}`);
      const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
      if (report.backend !== CONFIGS[backend].reports) throw new Error(`asked for ${backend}, ran ${report.backend}`);
      for (const [name, samples] of Object.entries(report.samples as Record<string, number[]>)) {
        (all[backend][name] ??= []).push(...samples);
      }
    }
  }
  console.log(`${isBun ? "bun" : "deno"}: ${rounds} rounds x ${perRound} sequential spawn + wait per backend`);
  console.log(`pool: ${POOL_WIDTH} wide, ${POOL_JOBS} jobs per round; µs per job, wall and host CPU`);
  for (const name of [...CHILDREN.map(([name]) => name), "poolWall", "poolCpu"]) {
    const reaper = median(all.reaper[name]);
    const parts = [`reaper ${reaper.toFixed(0)} µs`];
    for (const backend of backends.slice(1)) {
      const value = median(all[backend][name]);
      parts.push(
        `${backend} ${value.toFixed(0)} µs (${(value / reaper).toFixed(2)}x, +${(value - reaper).toFixed(0)})`,
      );
    }
    console.log(`${name.padEnd(10)} ${parts.join("   ")}`);
  }
}
