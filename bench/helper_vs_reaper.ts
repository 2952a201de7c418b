/**
 * The helper backend against the reaper: sequential spawn + wait of `/bin/true` and of the
 * tiny static child, in two child processes of this one (the backend is chosen per process),
 * measured in alternating rounds so both see the same machine; prints medians and ratios.
 *
 *   deno run -A bench/helper_vs_reaper.ts [ROUNDS] [SPAWNS_PER_ROUND]
 *   bun bench/helper_vs_reaper.ts [ROUNDS] [SPAWNS_PER_ROUND]
 *
 * BENCH_TINY names the tiny child (scripts/test.sh and bench/run.sh build it).
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { isBun } from "../ffi/mod.ts";
import { backendInfo, spawnHandle } from "../mod.ts";

const TINY = process.env.BENCH_TINY ?? new URL("../.tools/bench/tiny", import.meta.url).pathname;
const CHILDREN: [string, string][] = [["/bin/true", "/bin/true"], ["tiny", TINY]];

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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

if (process.argv[2] === "--measure") {
  const samples = await measure(Number(process.argv[3]));
  console.log(JSON.stringify({ backend: backendInfo().backend, samples }));
} else {
  const rounds = Number(process.argv[2] ?? 5);
  const perRound = Number(process.argv[3] ?? 300);
  const script = new URL(import.meta.url).pathname;
  const runtimeArgs = isBun ? [script] : ["run", "-A", script];
  const all: Record<string, Record<string, number[]>> = { reaper: {}, helper: {} };
  for (let round = 0; round < rounds; round++) {
    for (const backend of round % 2 === 0 ? ["reaper", "helper"] : ["helper", "reaper"]) {
      const result = spawnSync(process.execPath, [...runtimeArgs, "--measure", String(perRound)], {
        env: { ...process.env, PRIVATE_SPAWN_BACKEND: backend },
        encoding: "utf8",
      });
      if (result.status !== 0) throw new Error(`${backend}: ${result.stderr}`);
      const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
      if (report.backend !== backend) throw new Error(`asked for ${backend}, ran ${report.backend}`);
      for (const [name, samples] of Object.entries(report.samples as Record<string, number[]>)) {
        (all[backend][name] ??= []).push(...samples);
      }
    }
  }
  console.log(`${isBun ? "bun" : "deno"}: ${rounds} rounds x ${perRound} sequential spawn + wait per backend`);
  for (const [name] of CHILDREN) {
    const reaper = median(all.reaper[name]);
    const helper = median(all.helper[name]);
    console.log(
      `${name.padEnd(10)} reaper ${reaper.toFixed(0)} µs   helper ${helper.toFixed(0)} µs   helper/reaper ${
        (helper / reaper).toFixed(2)
      }x   (+${(helper - reaper).toFixed(0)} µs)`,
    );
  }
}
