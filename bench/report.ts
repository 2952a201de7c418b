/**
 * Merges bench/results/{deno,bun}.json into latest.json and writes latest.md (tables with
 * ratios) and chart.svg (generated here from the JSON, no dependencies).
 *
 *   deno run -A bench/report.ts
 */
import { readFileSync, writeFileSync } from "node:fs";

// deno-lint-ignore no-explicit-any
type Result = any;
const dir = new URL("./results/", import.meta.url);
const runs: Result[] = ["deno", "bun"].map((r) => JSON.parse(readFileSync(new URL(`${r}.json`, dir), "utf8")));
const date = new Date().toISOString().slice(0, 10);
writeFileSync(new URL("latest.json", dir), JSON.stringify({ date, runs }, null, 2) + "\n");

const fmt = (n: number, digits = 0) => n.toFixed(digits);
const lines: string[] = [];
const m = runs[0].machine;
lines.push(
  `Measured ${date} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}; ${
    runs.map((r) => r.version).join(", ")
  }.`,
);
lines.push(
  "Medians; the ratio column divides spawnHandle's figure by each peer's (below 1 means spawnHandle is faster).",
  "",
);

for (const run of runs) {
  const native = run.runtime === "bun" ? "Bun.spawn" : "Deno.Command";
  const peers = ["spawnHandle", native, "node:child_process"];
  const ratio = (ours: number, theirs: number) => fmt(ours / theirs, 2);
  lines.push(`### ${run.version}`, "");
  lines.push(`| scenario | ${peers.join(" | ")} | ours / ${native} | ours / node |`);
  lines.push(`|---|${peers.map(() => "---:").join("|")}|---:|---:|`);
  const row = (label: string, values: number[], unit: string, digits = 0) =>
    lines.push(
      `| ${label} | ${values.map((v) => `${fmt(v, digits)} ${unit}`).join(" | ")} | ${ratio(values[0], values[1])} | ${
        ratio(values[0], values[2])
      } |`,
    );
  row("1. spawn+wait, tiny static child", peers.map((p) => run.sequentialTiny[p].medianUs), "µs");
  row("1. spawn+wait, /bin/true", peers.map((p) => run.sequentialTrue[p].medianUs), "µs");
  row("2. 1000 at once, children/s", peers.map((p) => run.burst[p].childrenPerSecond), "/s");
  row("4. exit → promise latency", peers.map((p) => run.latency[p].medianUs), "µs");
  for (const size of Object.keys(run.heap.spawnHandle)) {
    row(`5. spawn+wait with ${size} touched`, peers.map((p) => run.heap[p][size]), "µs");
  }
  row("6. through cat", peers.map((p) => run.throughput[p].mbPerSecond), "MB/s");
  const c = run.cBaseline;
  lines.push("");
  lines.push(
    `C floor, measured in the same rounds (tiny child): posix_spawn+waitpid ${
      fmt(c.posixSpawnTinyUs)
    } µs, vfork+execve+waitpid ${fmt(c.vforkTinyUs)} µs; /bin/true ${
      fmt(c.posixSpawnTrueUs)
    } µs. spawnHandle / posix_spawn floor: ${
      fmt(run.sequentialTiny.spawnHandle.medianUs / c.posixSpawnTinyUs, 2)
    }; / vfork floor: ${fmt(run.sequentialTiny.spawnHandle.medianUs / c.vforkTinyUs, 2)}.`,
  );
  lines.push(
    "",
    `3. ${run.sleepers.spawnHandle.count} sleeping children awaited at once, all woken together a fixed time after the last spawn:`,
    "",
  );
  lines.push(
    "| spawner | woken after | starting them all | threads before → during | host RSS per child | exits spread over | first exit → first settle | settled by the last exit | last exit → last settle |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const scenario of [run.sleepers, run.sleepersLongIdle]) {
    for (const [name, s] of Object.entries(scenario) as [string, Result][]) {
      const cells = [
        `${fmt(s.idleMs / 1000, 0)} s`,
        `${fmt(s.spawnMs / 1000, 2)} s`,
        `${s.threadsBefore} → ${s.threadsDuring}`,
        s.rssPerChildKiB === null ? "not measured" : `${fmt(s.rssPerChildKiB, 2)} KiB`,
        `${fmt(s.exitSpreadMs, 1)} ms`,
        `${fmt(s.firstSettleAfterFirstExitMs, 1)} ms`,
        `${fmt(s.settledByLastExitPercent, 0)} %`,
        `${fmt(s.lastSettleAfterLastExitMs, 1)} ms`,
      ];
      lines.push(`| ${name} | ${cells.join(" | ")} |`);
    }
  }
  lines.push("");
}
writeFileSync(new URL("latest.md", dir), lines.join("\n"));

// The chart: per runtime, spawn+wait of the tiny child and the exit latency, as bars.
const bars: { group: string; label: string; value: number }[] = [];
for (const run of runs) {
  const native = run.runtime === "bun" ? "Bun.spawn" : "Deno.Command";
  for (const p of ["spawnHandle", native, "node:child_process"]) {
    bars.push({ group: `${run.version}: spawn+wait (µs)`, label: p, value: run.sequentialTiny[p].medianUs });
  }
  bars.push({
    group: `${run.version}: spawn+wait (µs)`,
    label: "C posix_spawn",
    value: run.cBaseline.posixSpawnTinyUs,
  });
  for (const p of ["spawnHandle", native, "node:child_process"]) {
    bars.push({ group: `${run.version}: exit latency (µs)`, label: p, value: run.latency[p].medianUs });
  }
}
const colors: Record<string, string> = {
  spawnHandle: "#2b6cb0",
  "Deno.Command": "#718096",
  "Bun.spawn": "#718096",
  "node:child_process": "#a0aec0",
  "C posix_spawn": "#38a169",
};
const width = 760;
const rowHeight = 18;
const groups = [...new Set(bars.map((b) => b.group))];
const max = Math.max(...bars.map((b) => b.value));
const svg: string[] = [];
let y = 30;
svg.push(
  `<text x="10" y="18" font-size="14" font-weight="bold">spawnHandle vs peers (${date}, medians; shorter is better)</text>`,
);
for (const group of groups) {
  svg.push(`<text x="10" y="${y + 12}" font-size="12" font-weight="bold">${group}</text>`);
  y += 18;
  for (const bar of bars.filter((b) => b.group === group)) {
    const w = Math.max(1, (bar.value / max) * (width - 320));
    svg.push(`<text x="20" y="${y + 12}" font-size="11">${bar.label}</text>`);
    svg.push(
      `<rect x="160" y="${y + 2}" width="${w.toFixed(1)}" height="${rowHeight - 6}" fill="${
        colors[bar.label] ?? "#888"
      }"/>`,
    );
    svg.push(`<text x="${(165 + w).toFixed(1)}" y="${y + 12}" font-size="11">${bar.value.toFixed(0)}</text>`);
    y += rowHeight;
  }
  y += 8;
}
writeFileSync(
  new URL("chart.svg", dir),
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${
    y + 10
  }" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${svg.join("\n")}\n</svg>\n`,
);
console.log(lines.join("\n"));
