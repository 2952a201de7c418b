import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { run } from "../mod.ts";
import { isBun, RUNTIME_ENV, runtimeArgv, test } from "./harness.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const embedded = async (name: string) => (await import(`../ffi/prebuilt/${name}.ts`)).sha256 as string;
const embeddedHelper = async (name: string) => (await import(`../ffi/prebuilt/${name}.ts`)).helperSha256 as string;

test("prebuilt libraries and helpers are reproducible: a fresh build matches the embedded bytes", async () => {
  const scratch = mkdtempSync("/tmp/ph-prebuilt-");
  try {
    await run("zig", ["build", "prebuilt", "--cache-dir", `${scratch}/cache`, "--prefix", `${scratch}/out`], {
      cwd: `${root}zig`,
      timeout: 300_000,
    });
    const shipped = [
      ["x86_64-linux", "x86_64_linux", "libprivate_spawn.so"],
      ["aarch64-linux", "aarch64_linux", "libprivate_spawn.so"],
      ["x86_64-macos", "x86_64_macos", "libprivate_spawn.dylib"],
      ["aarch64-macos", "aarch64_macos", "libprivate_spawn.dylib"],
    ];
    for (const [triple, name, file] of shipped) {
      assert.equal(sha256(`${scratch}/out/prebuilt/${triple}/${file}`), await embedded(name), triple);
      assert.equal(
        sha256(`${scratch}/out/prebuilt/${triple}/ph-helper`),
        await embeddedHelper(name),
        `${triple} helper`,
      );
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}, { timeoutMs: 300_000 });

test("the shipped libraries need no libc and can never be unloaded", async () => {
  for (const [triple, machine] of [["x86_64-linux", "X86-64"], ["aarch64-linux", "AArch64"]]) {
    const path = `${root}zig/zig-out/prebuilt/${triple}/libprivate_spawn.so`;
    const dynamic = (await run("readelf", ["-d", path])).stdout;
    assert.doesNotMatch(dynamic, /NEEDED/, `${triple} depends on a shared library`);
    assert.match(dynamic, /NODELETE/);
    assert.match((await run("readelf", ["-h", path])).stdout, new RegExp(`Machine:.*${machine}`));
    assert.ok(statSync(path).size < 64 * 1024, `${triple} is ${statSync(path).size} bytes`);
    // The helper: a static executable, no interpreter, no libc.
    const helper = `${root}zig/zig-out/prebuilt/${triple}/ph-helper`;
    const headers = (await run("readelf", ["-lh", helper])).stdout;
    assert.match(headers, /Type:\s+EXEC/);
    assert.doesNotMatch(headers, /INTERP/, `${triple} helper needs a dynamic loader`);
    assert.match(headers, new RegExp(`Machine:.*${machine}`));
    assert.ok(statSync(helper).size < 64 * 1024, `${triple} helper is ${statSync(helper).size} bytes`);
  }
});

/** Copies what `deno publish` would (deno.json's publish include/exclude) into `dir`. */
function copyPublished(dir: string): void {
  const config = JSON.parse(readFileSync(`${root}deno.json`, "utf8"));
  for (const entry of config.publish.include as string[]) {
    cpSync(`${root}${entry}`, `${dir}/${entry}`, { recursive: true });
  }
  for (const entry of config.publish.exclude as string[]) rmSync(`${dir}/${entry}`, { force: true });
}

const CONSUMER = `
import { reaperInfo, spawnHandle } from "./pkg/mod.ts";
const status = await spawnHandle("sh", ["-c", "exit 42"]).wait();
console.log(JSON.stringify({ code: status.code, library: reaperInfo().libraryPath }));
`;

function consumerRun(dir: string, extraDenoFlags: string[] = []) {
  const script = `${dir}/consumer.ts`;
  const [cmd, args] = isBun ? runtimeArgv(script) : [process.execPath, [
    "run",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    ...extraDenoFlags,
    script,
  ]];
  // No zig on PATH, no library override, a fresh home for the cache.
  const env = {
    PATH: "/usr/bin:/bin",
    HOME: `${dir}/home`,
    DENO_DIR: `${dir}/deno_dir`,
    DENO_NO_UPDATE_CHECK: "1",
    ...RUNTIME_ENV,
  };
  return run(cmd, args, { clearEnv: true, env, cwd: dir, timeout: 120_000 }).catch((e) => e);
}

test("a consumer without zig or a local build runs on the embedded library; a corrupt cache is replaced", async () => {
  const dir = mkdtempSync("/tmp/ph-consumer-");
  try {
    copyPublished(`${dir}/pkg`);
    mkdirSync(`${dir}/home`);
    writeFileSync(`${dir}/consumer.ts`, CONSUMER);
    assert.throws(() => statSync(`${dir}/pkg/zig`), "the package must not contain a build");
    const first = await consumerRun(dir);
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout);
    assert.equal(report.code, 42);
    const expected = await embedded(process.arch === "arm64" ? "aarch64_linux" : "x86_64_linux");
    assert.equal(report.library, `${dir}/home/.cache/private_spawn/libprivate_spawn-${expected.slice(0, 16)}.so`);
    assert.equal(sha256(report.library), expected);
    assert.equal(statSync(`${dir}/home/.cache/private_spawn`).mode & 0o777, 0o700);

    truncateSync(report.library, 1000);
    const second = await consumerRun(dir);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).code, 42);
    assert.equal(sha256(report.library), expected, "the truncated library was not replaced");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 240_000 });

// Deno only: Bun has no permission system.
if (!isBun) {
  test("without --allow-ffi Deno reports the library path and the flag to add", async () => {
    const dir = mkdtempSync("/tmp/ph-consumer-");
    try {
      copyPublished(`${dir}/pkg`);
      mkdirSync(`${dir}/home`);
      writeFileSync(`${dir}/consumer.ts`, CONSUMER);
      const script = `${dir}/consumer.ts`;
      const env = { PATH: "/usr/bin:/bin", HOME: `${dir}/home`, DENO_DIR: `${dir}/deno_dir`, ...RUNTIME_ENV };
      const result = await run(process.execPath, ["run", "--allow-read", "--allow-write", "--allow-env", script], {
        clearEnv: true,
        env,
        timeout: 120_000,
      }).catch((e) => e);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /--allow-ffi/);
      assert.match(result.stderr, /libprivate_spawn-[0-9a-f]{16}\.so/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, { timeoutMs: 120_000 });
}
