/**
 * Where a pool's time and CPU go. Each spawner (`spawnHandle` and `spawnHandleAsync` with the
 * backend chosen by `PRIVATE_SPAWN_BACKEND`, and the runtime's own spawner) runs a pool of jobs
 * (`sh -c 'echo job-N'`, stdout captured, WIDTH in flight, the next starting when one ends)
 * in a fresh child process of this one, in rotating rounds. Each child measures JOBS jobs
 * twice: as it starts (the JIT compiles the spawner's JavaScript meanwhile) and again after
 * WARM more. Per job it reports the wall time, the spawn call's p50 and p90 (the JavaScript
 * thread is blocked in it), the CPU of every thread of the process by name (from
 * `/proc/self/task/<tid>/schedstat`), the reaper's or helper's CPU, and the voluntary context
 * switches of the JavaScript thread and of the reaper or helper. Prints the medians over the
 * rounds as a markdown table.
 *
 *   deno run -A bench/pool_breakdown.ts [ROUNDS] [JOBS] [WARM] [WIDTH]
 *   bun bench/pool_breakdown.ts [ROUNDS] [JOBS] [WARM] [WIDTH]
 *
 * Defaults: 3 rounds, 1,200 jobs, 3,000 warm-up jobs, 8 wide.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { isBun } from "../ffi/mod.ts";
import { backendInfo, spawnHandle, spawnHandleAsync } from "../mod.ts";

/** One measured pool: µs per job for times and CPU, switches per job. */
type Sample = Record<string, number>;

const runtimeName = isBun ? "Bun.spawn" : "Deno.Command";
// deno-lint-ignore no-explicit-any
const Bun = (globalThis as any).Bun;

/** Spawns one job: the spawn call's duration (ms) and the text it will print. */
function jobOurs(script: string): [number, Promise<string>] {
  const start = performance.now();
  const child = spawnHandle("sh", ["-c", script], { stdout: "piped" });
  return [performance.now() - start, child.text()];
}

/** The queued spawn: the "spawn call" is the time to queue it, not to its answer. */
function jobOursAsync(script: string): [number, Promise<string>] {
  const start = performance.now();
  const child = spawnHandleAsync("sh", ["-c", script], { stdout: "piped" });
  return [performance.now() - start, child.then((handle) => handle.text())];
}

/** The job function of each spawner. */
const JOBS: Record<string, (script: string) => [number, Promise<string>]> = {
  spawnHandle: jobOurs,
  spawnHandleAsync: jobOursAsync,
};
const ours = (which: string) => which === "spawnHandle" || which === "spawnHandleAsync";

function jobRuntime(script: string): [number, Promise<string>] {
  const start = performance.now();
  if (isBun) {
    const child = Bun.spawn(["sh", "-c", script], { stdio: ["inherit", "pipe", "inherit"] });
    const spawnMs = performance.now() - start;
    return [spawnMs, Promise.all([new Response(child.stdout).text(), child.exited]).then(([text]) => text)];
  }
  const child = new Deno.Command("sh", { args: ["-c", script], stdin: "inherit", stdout: "piped", stderr: "inherit" })
    .spawn();
  const spawnMs = performance.now() - start;
  return [spawnMs, child.output().then(({ stdout }) => new TextDecoder().decode(stdout))];
}

/** A thread's name without the numbers that tell a pool's threads apart. */
function threadKind(tid: string): string {
  if (Number(tid) === process.pid) return "js thread";
  return readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim().replace(/[\s\d#-]+$/, "");
}

/** Nanoseconds on a CPU per thread kind, the owner's included, and voluntary switches. */
function counters(owner: number): Map<string, number> {
  const out = new Map<string, number>();
  const add = (key: string, value: number) => out.set(key, (out.get(key) ?? 0) + value);
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      add(threadKind(tid), Number(readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[0]));
    } catch { /* the thread ended between the listing and the read */ }
  }
  const switches = (path: string) => Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(path, "utf8"))![1]);
  add("switches: js thread", switches(`/proc/self/task/${process.pid}/status`));
  if (owner > 0) {
    add("owner", Number(readFileSync(`/proc/${owner}/schedstat`, "utf8").split(" ")[0]));
    add("switches: owner", switches(`/proc/${owner}/status`));
  }
  return out;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function median(values: number[]): number {
  return percentile(values, 0.5);
}

/** In a measuring child: `jobs` jobs, `width` at a time. */
async function pool(which: string, jobs: number, width: number): Promise<Sample> {
  const job = JOBS[which] ?? jobRuntime;
  const spawnUs: number[] = [];
  let next = 0;
  const lane = async () => {
    while (next < jobs) {
      const i = next++;
      const [spawnMs, text] = job(`echo job-${i}`);
      spawnUs.push(spawnMs * 1000);
      if ((await text) !== `job-${i}\n`) throw new Error(`${which}: job ${i} printed ${JSON.stringify(await text)}`);
    }
  };
  const owner = ours(which) ? backendInfo().pid : 0;
  const before = counters(owner);
  const start = performance.now();
  await Promise.all(Array.from({ length: width }, lane));
  const wallUs = (performance.now() - start) * 1000 / jobs;
  const after = counters(owner);
  const sample: Sample = {
    "wall": wallUs,
    "spawn call p50": median(spawnUs),
    "spawn call p90": percentile(spawnUs, 0.9),
  };
  let cpu = 0;
  for (const [key, value] of after) {
    const perJob = (value - (before.get(key) ?? 0)) / jobs;
    if (key.startsWith("switches")) {
      sample[key] = perJob;
    } else {
      sample[`cpu: ${key}`] = perJob / 1000;
      cpu += perJob / 1000;
    }
  }
  sample["cpu: host side"] = cpu;
  return sample;
}

async function measure(which: string, jobs: number, warm: number, width: number) {
  for (let i = 0; i < 10; i++) await (JOBS[which] ?? jobRuntime)("echo warm")[1];
  const fresh = await pool(which, jobs, width);
  await pool(which, warm, width);
  const warmed = await pool(which, jobs, width);
  const backend = ours(which) ? backendInfo().backend : "runtime";
  console.log(JSON.stringify({ backend, fresh, warmed }));
}

/** The rows in print order: fixed ones first, then each thread kind seen. */
function rowOrder(keys: Set<string>): string[] {
  const first = ["wall", "spawn call p50", "spawn call p90", "cpu: host side", "cpu: js thread", "cpu: owner"];
  const rest = [...keys].filter((key) => !first.includes(key)).sort((a, b) => a.localeCompare(b));
  return [...first.filter((key) => keys.has(key)), ...rest];
}

if (process.argv[2] === "--measure") {
  const [which, jobs, warm, width] = process.argv.slice(3);
  await measure(which, Number(jobs), Number(warm), Number(width));
} else {
  const rounds = Number(process.argv[2] ?? 3);
  const jobs = Number(process.argv[3] ?? 1200);
  const warm = Number(process.argv[4] ?? 3000);
  const width = Number(process.argv[5] ?? 8);
  const spawners = ["spawnHandle", "spawnHandleAsync", runtimeName];
  const script = new URL(import.meta.url).pathname;
  const runtimeArgs = isBun ? [script] : ["run", "-A", script];
  const samples: Record<string, Record<"fresh" | "warmed", Sample[]>> = {};
  let backend = "";
  for (let round = 0; round < rounds; round++) {
    for (const which of round % 2 === 0 ? spawners : [...spawners].reverse()) {
      const args = [...runtimeArgs, "--measure", which, String(jobs), String(warm), String(width)];
      const result = spawnSync(process.execPath, args, { encoding: "utf8" });
      if (result.status !== 0) throw new Error(`${which}: ${result.stderr}`);
      const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
      if (ours(which)) backend = report.backend;
      samples[which] ??= { fresh: [], warmed: [] };
      samples[which].fresh.push(report.fresh);
      samples[which].warmed.push(report.warmed);
    }
  }
  const runtime = isBun ? `Bun ${Bun.version}` : `Deno ${Deno.version.deno}`;
  console.log(`${runtime}, backend ${backend}: ${rounds} rounds, ${width} wide, ${jobs} jobs measured fresh and`);
  console.log(`after ${warm} more; medians per job, µs (switches: voluntary context switches per job)\n`);
  const columns = spawners.flatMap((which) => [`${which} fresh`, `${which} warmed`]);
  console.log(`| per job | ${columns.join(" | ")} |`);
  console.log(`| --- | ${columns.map(() => "---:").join(" | ")} |`);
  const keys = new Set(Object.values(samples).flatMap((s) => [...s.fresh, ...s.warmed].flatMap(Object.keys)));
  for (const key of rowOrder(keys)) {
    const cells = spawners.flatMap((which) =>
      (["fresh", "warmed"] as const).map((phase) => {
        const values = samples[which][phase].map((sample) => sample[key] ?? 0);
        const value = median(values);
        return key.startsWith("switches") ? value.toFixed(2) : value.toFixed(0);
      })
    );
    if (key.startsWith("cpu: ") && cells.every((cell) => Number(cell) < 2)) continue;
    console.log(`| ${key} | ${cells.join(" | ")} |`);
  }
}
