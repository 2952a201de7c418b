/**
 * Benchmarks, run under Deno or Bun: spawnHandle against the runtime's own spawner and
 * node:child_process in the same process, medians and ratios. Writes a JSON result.
 *
 *   deno run -A --v8-flags=--expose-gc bench/bench.ts OUT.json [--quick] [--only=N[,N]]
 *   bun bench/bench.ts OUT.json [--quick] [--only=N[,N]]
 *
 * BENCH_TINY and BENCH_C name the tiny static child and the C baseline (bench/run.sh builds them).
 */
import { spawn as nodeSpawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import process from "node:process";
import { isBun } from "../ffi/mod.ts";
import { backendInfo, monotonicNs, spawnHandle, spawnHandleAsync } from "../mod.ts";

const OUT = process.argv[2] ?? "bench/results/bench.json";
const QUICK = process.argv.includes("--quick");
// `--only=3` (or `--only=1,6`) runs only those scenarios, for profiling one at a time; the
// report needs a full run.
const ONLY = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");
const TINY = process.env.BENCH_TINY ?? ".tools/bench/tiny";
const C_BASELINE = process.env.BENCH_C ?? ".tools/bench/c_baseline";
const runtime = isBun ? "bun" : "deno";
// deno-lint-ignore no-explicit-any
const Bun = (globalThis as any).Bun;

interface Spawner {
  name: string;
  /** Spawn with inherited stdio and resolve at exit. */
  run(cmd: string, args: string[]): Promise<void>;
  /** Spawn with stdout piped; resolve with [exit time (monotonic ns), stdout text]. */
  stamped(cmd: string, args: string[]): Promise<[bigint, string]>;
  /** 1 GiB (or `bytes`) through cat; resolves with the byte count read. */
  cat(bytes: number): Promise<number>;
  /** A pool job: `sh -c 'echo …'` with stdout captured; resolves with the text. */
  job(script: string): Promise<string>;
}

const CHUNK = new Uint8Array(1024 * 1024).fill(97);

const ours: Spawner = {
  name: "spawnHandle",
  run: async (cmd, args) => void (await spawnHandle(cmd, args).wait()),
  job: (script) => spawnHandle("sh", ["-c", script], { stdout: "piped" }).text(),
  async stamped(cmd, args) {
    const child = spawnHandle(cmd, args, { stdout: "piped" });
    await child.wait();
    const at = monotonicNs();
    return [at, await new Response(child.stdout).text()];
  },
  async cat(bytes) {
    const child = spawnHandle("cat", [], { stdin: "piped", stdout: "piped" });
    const writing = (async () => {
      const writer = child.stdin!.getWriter();
      for (let n = 0; n < bytes; n += CHUNK.length) await writer.write(CHUNK);
      await writer.close();
    })();
    let read = 0;
    for await (const chunk of child.stdout!) read += chunk.length;
    await writing;
    await child.wait();
    return read;
  },
};

/** The pools' other form of ours: the JavaScript thread queues each spawn and goes on. */
const oursAsync: Pick<Spawner, "name" | "job"> = {
  name: "spawnHandleAsync",
  job: async (script) => (await spawnHandleAsync("sh", ["-c", script], { stdout: "piped" })).text(),
};

const node: Spawner = {
  name: "node:child_process",
  job: (script) =>
    new Promise((resolve) => {
      const child = nodeSpawn("sh", ["-c", script], { stdio: ["inherit", "pipe", "inherit"] });
      let text = "";
      child.stdout!.on("data", (d) => (text += d));
      child.on("close", () => resolve(text));
    }),
  run: (cmd, args) => new Promise((resolve) => nodeSpawn(cmd, args, { stdio: "inherit" }).on("exit", () => resolve())),
  stamped: (cmd, args) =>
    new Promise((resolve) => {
      const child = nodeSpawn(cmd, args, { stdio: ["inherit", "pipe", "inherit"] });
      let text = "";
      let at = 0n;
      let pending = 2;
      const done = () => --pending === 0 && resolve([at, text]);
      child.stdout!.on("data", (d) => (text += d)).on("end", done);
      child.on("exit", () => {
        at = monotonicNs();
        done();
      });
    }),
  cat: (bytes) =>
    new Promise((resolve) => {
      const child = nodeSpawn("cat", [], { stdio: ["pipe", "pipe", "inherit"] });
      let read = 0;
      child.stdout!.on("data", (d: Uint8Array) => (read += d.length));
      child.on("close", () => resolve(read));
      let written = 0;
      const pump = () => {
        while (written < bytes) {
          written += CHUNK.length;
          if (!child.stdin!.write(CHUNK)) return void child.stdin!.once("drain", pump);
        }
        child.stdin!.end();
      };
      pump();
    }),
};

const native: Spawner = isBun
  ? {
    name: "Bun.spawn",
    async job(script) {
      const child = Bun.spawn(["sh", "-c", script], { stdio: ["inherit", "pipe", "inherit"] });
      const text = await new Response(child.stdout).text();
      await child.exited;
      return text;
    },
    run: async (cmd, args) =>
      void (await Bun.spawn([cmd, ...args], { stdio: ["inherit", "inherit", "inherit"] }).exited),
    async stamped(cmd, args) {
      const child = Bun.spawn([cmd, ...args], { stdio: ["inherit", "pipe", "inherit"] });
      await child.exited;
      const at = monotonicNs();
      return [at, await new Response(child.stdout).text()];
    },
    async cat(bytes) {
      const child = Bun.spawn(["cat"], { stdin: "pipe", stdout: "pipe" });
      const writing = (async () => {
        for (let n = 0; n < bytes; n += CHUNK.length) {
          child.stdin.write(CHUNK);
          await child.stdin.flush();
        }
        await child.stdin.end();
      })();
      let read = 0;
      for await (const chunk of child.stdout) read += chunk.length;
      await writing;
      await child.exited;
      return read;
    },
  }
  : {
    name: "Deno.Command",
    async job(script) {
      const { stdout } = await new Deno.Command("sh", { args: ["-c", script], stdin: "inherit", stderr: "inherit" })
        .output();
      return new TextDecoder().decode(stdout);
    },
    run: async (cmd, args) =>
      void (await new Deno.Command(cmd, { args, stdin: "inherit", stdout: "inherit", stderr: "inherit" }).spawn()
        .status),
    async stamped(cmd, args) {
      const child = new Deno.Command(cmd, { args, stdin: "inherit", stdout: "piped", stderr: "inherit" }).spawn();
      await child.status;
      const at = monotonicNs();
      return [at, await new Response(child.stdout).text()];
    },
    async cat(bytes) {
      const child = new Deno.Command("cat", { stdin: "piped", stdout: "piped" }).spawn();
      const writing = (async () => {
        const writer = child.stdin.getWriter();
        for (let n = 0; n < bytes; n += CHUNK.length) await writer.write(CHUNK);
        await writer.close();
      })();
      let read = 0;
      for await (const chunk of child.stdout) read += chunk.length;
      await writing;
      await child.status;
      return read;
    },
  };

const spawners = [ours, native, node];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

function gc(): void {
  // deno-lint-ignore no-explicit-any
  const g = (globalThis as any).gc;
  if (typeof g === "function") g();
  else if (Bun) Bun.gc(true);
}

function threads(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
}

function rssKiB(): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
}

/** An empty sample list per name (by default, per spawner). */
const samplesFor = (names: readonly string[] = spawners.map((s) => s.name)) =>
  new Map<string, number[]>(names.map((name) => [name, []]));

/** Each name's median in microseconds, with the sample count. */
const mediansUs = (samples: Map<string, number[]>) =>
  Object.fromEntries([...samples].map(([name, xs]) => [name, { medianUs: median(xs), n: xs.length }]));

/** Spawners in alternating order, round by round, so drift on a noisy machine hits all alike. */
const inOrder = (round: number) => (round % 2 === 0 ? spawners : [...spawners].reverse());

/** The C floor's two modes, run as batches inside scenario 1's rounds. */
const FLOORS = [["C posix_spawn", "posix_spawn"], ["C vfork", "vfork"]] as const;

/**
 * Scenario 1: sequential spawn+wait, interleaved in rounds so drift hits everyone alike. The
 * C floor runs a batch of the same size in every round too (its process start is not timed):
 * on this kind of machine the floor itself moves by half between minutes.
 */
async function sequential(program: string, args: string[], perRound: number, rounds: number) {
  const names = [...spawners.map((s) => s.name), ...FLOORS.map(([name]) => name)];
  const samples = samplesFor(names);
  for (const s of spawners) for (let i = 0; i < 20; i++) await s.run(program, args);
  for (let round = 0; round < rounds; round++) {
    for (const s of inOrder(round)) {
      for (let i = 0; i < perRound; i++) {
        const start = now();
        await s.run(program, args);
        samples.get(s.name)!.push((now() - start) * 1000);
      }
    }
    for (const [name, mode] of FLOORS) samples.get(name)!.push(...await cBaselineUs(mode, perRound, program));
  }
  return mediansUs(samples);
}

/** Runs the C baseline for `n` spawns of `program`; every sample, in microseconds. */
async function cBaselineUs(mode: string, n: number, program: string): Promise<number[]> {
  const child = spawnHandle(C_BASELINE, [mode, String(n), program], { stdout: "piped" });
  const text = await child.text();
  return JSON.parse(text).samplesUs;
}

/** Scenario 2: N children started at once, wait for all; the spawners take turns. */
async function burst(count: number, rounds: number) {
  const times = samplesFor();
  for (let round = 0; round < rounds; round++) {
    for (const s of inOrder(round)) {
      const start = now();
      await Promise.all(Array.from({ length: count }, () => s.run(TINY, [])));
      times.get(s.name)!.push(now() - start);
    }
  }
  const out: Record<string, { childrenPerSecond: number; medianMs: number }> = {};
  for (const [name, xs] of times) {
    const ms = median(xs);
    out[name] = { childrenPerSecond: Math.round(count / (ms / 1000)), medianMs: ms };
  }
  return out;
}

/**
 * Scenario 3: many sleeping children awaited at once. They all wait on one futex word in a
 * shared file and wake together `idleMs` after the last spawn, the same for every spawner.
 * (With one absolute deadline instead, a faster spawner's host sat idle longer before the
 * storm, and after about 10 s idle both runtimes give memory back and their JavaScript runs
 * slower: the host took 1,200 page faults during the storm instead of 100.)
 */
async function sleepers(count: number, idleMs: number, measureMemory: boolean) {
  const out: Record<string, unknown> = {};
  for (const s of [ours, native]) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
    gc();
    const threadsBefore = threads();
    const rssBefore = rssKiB();
    const spawnStart = now();
    // Word 0 says "go"; child i stores the time it woke (its last act before exit) in word
    // i + 1. If the benchmark dies, the children give up at this deadline.
    const stamps = `${tmpdir()}/ph-bench-exits-${process.pid}-${s.name.replace(/\W/g, "_")}`;
    writeFileSync(stamps, new Uint8Array((count + 1) * 8));
    const giveUp = String(monotonicNs() + BigInt(Math.round(count * 2 + idleMs + 60_000)) * 1_000_000n);
    // When each child's promise settled, to see how far delivery lags the exits.
    const settles = new BigUint64Array(count);
    const waits: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      waits.push(s.run(TINY, ["await", stamps, String(i), giveUp]).then(() => void (settles[i] = monotonicNs())));
    }
    const spawnMs = now() - spawnStart;
    gc();
    const threadsDuring = threads();
    const rssDuring = rssKiB();
    await new Promise((r) => setTimeout(r, idleMs));
    // Another process wakes them all (one FUTEX_WAKE), so this thread is free when they exit.
    await new Promise((resolve) => nodeSpawn(TINY, ["go", stamps], { stdio: "ignore" }).on("exit", resolve));
    await Promise.all(waits);
    const settled = monotonicNs();
    // A copy, so the array starts on an 8-byte boundary whatever buffer readFileSync used.
    const words = new BigUint64Array(new Uint8Array(readFileSync(stamps)).buffer);
    const exits = [...words.subarray(1)].filter((ns) => ns > 0n);
    rmSync(stamps, { force: true });
    const lastExit = exits.reduce((a, b) => (a > b ? a : b));
    const firstExit = exits.reduce((a, b) => (a < b ? a : b));
    out[s.name] = {
      count,
      idleMs,
      spawnMs,
      threadsBefore,
      threadsDuring,
      // After scenarios 5 and 6 (which touch and free GiBs) the RSS moves by more than this.
      rssPerChildKiB: measureMemory ? (rssDuring - rssBefore) / count : null,
      exitsRecorded: exits.length,
      exitSpreadMs: Number(lastExit - firstExit) / 1e6,
      settledByLastExitPercent: (100 * settles.filter((ns) => ns <= lastExit).length) / count,
      firstSettleAfterFirstExitMs: Number(settles.reduce((a, b) => (a < b ? a : b)) - firstExit) / 1e6,
      lastSettleAfterLastExitMs: Number(settled - lastExit) / 1e6,
    };
  }
  return out;
}

/** Scenario 4: from the child's exit (its last act is a monotonic stamp) to our promise. */
async function latency(perRound: number, rounds: number) {
  const samples = samplesFor();
  for (let round = 0; round < rounds; round++) {
    for (const s of inOrder(round)) {
      for (let i = 0; i < perRound; i++) {
        const [at, text] = await s.stamped(TINY, ["stamp"]);
        samples.get(s.name)!.push(Number(at - BigInt(text.trim())) / 1000);
      }
    }
  }
  return mediansUs(samples);
}

/** Scenario 5: sequential spawn latency with 0, 1 and 4 GiB of touched host memory. */
async function heap(sizesGiB: number[], n: number) {
  const out: Record<string, Record<string, number>> = {};
  const keep: Uint8Array[] = [];
  let held = 0;
  for (const gib of sizesGiB) {
    while (held < gib * 4) {
      const block = new Uint8Array(256 * 1024 * 1024);
      for (let i = 0; i < block.length; i += 4096) block[i] = 1;
      keep.push(block);
      held++;
    }
    const samples = samplesFor();
    for (let round = 0; round < 5; round++) {
      for (const s of inOrder(round)) {
        for (let i = 0; i < n / 5; i++) {
          const start = now();
          await s.run(TINY, []);
          samples.get(s.name)!.push((now() - start) * 1000);
        }
      }
    }
    for (const [name, xs] of samples) (out[name] ??= {})[`${gib}GiB`] = median(xs);
  }
  keep.length = 0;
  // Collect the dropped gigabytes now, not inside whichever scenario runs next.
  gc();
  return out;
}

/** Scenario 6: bytes through cat, three rounds in alternating order, the median of each. */
async function throughput(bytes: number, rounds: number) {
  const samples = samplesFor();
  for (let round = 0; round < rounds; round++) {
    for (const s of inOrder(round)) {
      gc();
      const start = now();
      const read = await s.cat(bytes);
      if (read !== bytes) throw new Error(`${s.name}: read ${read} of ${bytes}`);
      samples.get(s.name)!.push(bytes / 1e6 / ((now() - start) / 1000));
    }
  }
  return Object.fromEntries([...samples].map(([name, xs]) => [name, { mbPerSecond: Math.round(median(xs)) }]));
}

/** Percentile `p` (0 to 1) of the samples. */
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/**
 * The host side's CPU time so far, in µs: every thread of this process, live or ended
 * (`getrusage(RUSAGE_SELF)`), plus the reaper's or the helper's (`backendInfo().pid`), its own process, for
 * spawnHandle. The children's own CPU time is not in it, for any spawner.
 */
function hostCpuUs(withReaper: boolean): number {
  const usage = process.cpuUsage();
  let us = usage.user + usage.system;
  const pid = withReaper ? backendInfo().pid : 0;
  if (pid > 0) {
    try {
      us += Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1000;
    } catch { /* the reaper exited between the two reads: it ran no job then */ }
  }
  return us;
}

/**
 * Scenario 7: a pool of `width` jobs in flight (`sh -c 'echo …'`, output captured), the next
 * starting when one ends, as build tools and test runners do. Per spawner: the wall time of
 * each round, each job's latency (spawn to captured output), and the host's CPU per job.
 */
async function pool(width: number, jobsPerRound: number, rounds: number) {
  const poolSpawners = [ours, oursAsync, native, node];
  const names = poolSpawners.map((s) => s.name);
  const walls = samplesFor(names);
  const jobs = samplesFor(names);
  const cpu = samplesFor(names);
  for (const s of poolSpawners) for (let i = 0; i < 10; i++) await s.job("echo warm");
  for (let round = 0; round < rounds; round++) {
    for (const s of round % 2 === 0 ? poolSpawners : [...poolSpawners].reverse()) {
      const withReaper = s === ours || s === oursAsync;
      const cpuBefore = hostCpuUs(withReaper);
      const start = now();
      let next = 0;
      const lane = async () => {
        while (next < jobsPerRound) {
          const i = next++;
          const t = now();
          const text = await s.job(`echo job-${i}`);
          if (text !== `job-${i}\n`) throw new Error(`${s.name}: job ${i} printed ${JSON.stringify(text)}`);
          jobs.get(s.name)!.push((now() - t) * 1000);
        }
      };
      await Promise.all(Array.from({ length: width }, lane));
      walls.get(s.name)!.push(now() - start);
      cpu.get(s.name)!.push((hostCpuUs(withReaper) - cpuBefore) / jobsPerRound);
    }
  }
  return Object.fromEntries(
    [...walls].map(([name, xs]) => [name, {
      wallMs: median(xs),
      jobP50Us: percentile(jobs.get(name)!, 0.5),
      jobP99Us: percentile(jobs.get(name)!, 0.99),
      hostCpuPerJobUs: median(cpu.get(name)!),
      jobs: jobs.get(name)!.length,
    }]),
  );
}

/**
 * Sequential spawn+wait of the tiny child: p50 and p99 per spawner, in alternating blocks, and
 * the host's CPU per job (a spinner beside a busy loop takes its CPU from that loop).
 */
async function percentiles(perBlock: number, blocks: number) {
  const samples = samplesFor();
  const cpu = samplesFor();
  for (let block = 0; block < blocks; block++) {
    for (const s of inOrder(block)) {
      const cpuBefore = hostCpuUs(s === ours);
      for (let i = 0; i < perBlock; i++) {
        const start = now();
        await s.run(TINY, []);
        samples.get(s.name)!.push((now() - start) * 1000);
      }
      cpu.get(s.name)!.push((hostCpuUs(s === ours) - cpuBefore) / perBlock);
    }
  }
  return Object.fromEntries(
    [...samples].map(([name, xs]) => [name, {
      p50Us: percentile(xs, 0.5),
      p99Us: percentile(xs, 0.99),
      hostCpuPerJobUs: median(cpu.get(name)!),
      n: xs.length,
    }]),
  );
}

/**
 * Scenario 8: a busy machine. One CPU-bound process at nice 0 (a shell loop) runs beside the
 * sequential tiny spawns and the pool of 8, as a compiler or a test would beside a tool.
 */
async function busy(quick: boolean) {
  const loop = nodeSpawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 200));
    return {
      sequentialTiny: await percentiles(50, quick ? 4 : 20),
      pool8: await pool(8, quick ? 60 : 240, quick ? 2 : 5),
    };
  } finally {
    loop.kill("SIGKILL");
  }
}

const version = isBun ? `Bun ${Bun.version}` : `Deno ${Deno.version.deno}`;
console.error(`[bench] ${version}${QUICK ? " (quick)" : ""}`);
const step = async <T>(name: string, fn: () => Promise<T>): Promise<T | null> => {
  if (ONLY && !ONLY.includes(name.split(".")[0])) return null;
  console.error(`[bench] ${name}`);
  return await fn();
};
const result = {
  runtime,
  version,
  quick: QUICK,
  machine: {
    kernel: os.release(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  },
  sequentialTiny: await step(
    "1. sequential, tiny static child",
    () => sequential(TINY, [], QUICK ? 20 : 50, QUICK ? 3 : 10),
  ),
  sequentialTrue: await step(
    "1. sequential, /bin/true",
    () => sequential("/bin/true", [], QUICK ? 20 : 50, QUICK ? 2 : 6),
  ),
  burst: await step("2. 1000 at once", () => burst(QUICK ? 200 : 1000, QUICK ? 1 : 5)),
  // Woken 2 s after the last spawn here, and 15 s after it (last, so that the runtimes' state
  // after a long idle does not slow the scenarios after it).
  sleepers: await step("3. sleeping children", () => sleepers(QUICK ? 500 : 10_000, 2000, true)),
  latency: await step("4. exit-notification latency", () => latency(QUICK ? 10 : 40, QUICK ? 3 : 6)),
  heap: await step("5. spawn latency vs touched heap", () => heap(QUICK ? [0, 1] : [0, 1, 4], QUICK ? 30 : 100)),
  throughput: await step("6. piped throughput through cat", () => throughput(QUICK ? 64 * 2 ** 20 : 2 ** 30, 3)),
  pool8: await step("7. pool of 8 jobs", () => pool(8, QUICK ? 60 : 240, QUICK ? 2 : 6)),
  pool2: await step("7. pool of 2 jobs", () => pool(2, QUICK ? 40 : 120, QUICK ? 2 : 6)),
  busy: await step("8. beside a busy loop", () => busy(QUICK)),
  sleepersLongIdle: await step("3. sleeping children, long idle", () => sleepers(QUICK ? 500 : 10_000, 15_000, false)),
};
const cBaseline = {
  posixSpawnTinyUs: result.sequentialTiny?.["C posix_spawn"].medianUs,
  vforkTinyUs: result.sequentialTiny?.["C vfork"].medianUs,
  posixSpawnTrueUs: result.sequentialTrue?.["C posix_spawn"].medianUs,
};
writeFileSync(OUT, JSON.stringify({ ...result, cBaseline }, null, 2) + "\n");
console.error(`[bench] wrote ${OUT}`);
process.exit(0);
