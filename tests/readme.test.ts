/**
 * The README's examples run as written: every ```ts run block is written to a file (its
 * package import pointed at this checkout's mod.ts) and run under this runtime in a child
 * process, which must exit 0. When a ```text output block follows, stdout must equal it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EXPECT_PIDFD, PORTABLE, RUNTIME, runtimeArgv, test } from "./harness.ts";

const PACKAGE = "@private-spawn/private-spawn";
const modUrl = new URL("../mod.ts", import.meta.url).href;

interface Example {
  line: number;
  code: string;
  output: string | null;
}

/** The ```ts run blocks of a markdown text, each with the ```text output block right after it. */
export function runnableBlocks(markdown: string): Example[] {
  const fence = /^```([^\n]*)\n([\s\S]*?)^```$/gm;
  const blocks: { info: string; body: string; start: number; end: number }[] = [];
  for (const m of markdown.matchAll(fence)) {
    blocks.push({ info: m[1].trim(), body: m[2], start: m.index, end: m.index + m[0].length });
  }
  const examples: Example[] = [];
  blocks.forEach((block, i) => {
    if (block.info !== "ts run") return;
    const next = blocks[i + 1];
    const adjacent = next !== undefined && next.info === "text output" &&
      markdown.slice(block.end, next.start).trim() === "";
    examples.push({
      line: markdown.slice(0, block.start).split("\n").length,
      code: block.body,
      output: adjacent ? next.body : null,
    });
  });
  return examples;
}

function runScript(path: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, args] = runtimeArgv(path);
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const examples = runnableBlocks(readme);

test("the README has runnable examples, each followed by its output", () => {
  assert.ok(examples.length >= 3, `only ${examples.length} runnable blocks`);
  for (const example of examples) {
    assert.ok(example.code.includes(`from "${PACKAGE}"`), `README.md:${example.line} does not import ${PACKAGE}`);
    assert.notEqual(example.output, null, `README.md:${example.line} has no output block`);
  }
});

/** Why the runtime backend cannot run an example as written, or null. */
function notOnRuntime(code: string): string | null {
  if (!RUNTIME) return null;
  if (/waitSync\(/.test(code)) return "no waitSync() on this backend";
  for (
    const option of ["killOnParentExit", "pgroup", "setsid", "rlimits", "umask", "uid", "inheritFds", "fds", "pty"]
  ) {
    if (new RegExp(`\\b${option}:`).test(code)) return `${option} is refused on this backend`;
  }
  if (/\btree: true\b/.test(code)) return "tree signals are refused on this backend";
  return null;
}

/** Why an example cannot run under this run's seccomp fault, or null. */
function notUnderFault(code: string): string | null {
  if (!EXPECT_PIDFD && /\btree: true\b/.test(code)) return "tree signals need pidfds";
  return null;
}

/** Why the portable build (`PORTABLE`) cannot run an example as written, or null. */
function notPortable(code: string): string | null {
  return PORTABLE && /\bpty:/.test(code) ? "the portable helper has no terminals yet" : null;
}

for (const example of examples) {
  const faulted = notUnderFault(example.code);
  const why = notOnRuntime(example.code);
  const portable = notPortable(example.code);
  const name = `README.md:${example.line} runs as written${
    why === null ? "" : ` [skipped under the runtime backend: ${why}]`
  }${faulted === null ? "" : ` [skipped without pidfds: ${faulted}]`}${
    portable === null ? "" : ` [skipped in the portable build: ${portable}]`
  }`;
  test(name, async () => {
    const dir = mkdtempSync("/tmp/ph-readme-");
    try {
      const path = `${dir}/example.ts`;
      writeFileSync(path, example.code.replaceAll(`from "${PACKAGE}"`, `from "${modUrl}"`));
      const result = await runScript(path);
      assert.equal(result.code, 0, `README.md:${example.line} exited ${result.code}:\n${result.stderr}`);
      if (example.output !== null) assert.equal(result.stdout, example.output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, { timeoutMs: 120_000, ignore: why !== null || faulted !== null || portable !== null });
}
