import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { LibraryError, run } from "../mod.ts";
import { LIBRARY_PATH_ENV, libraryFile, resolveLibraryPath } from "../ffi/loader.ts";
import { fixture, isBun, nativeTest, runFixture, RUNTIME_ENV, test } from "./harness.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Runs `args` with this runtime's executable; never rejects. */
function exec(args: string[], env: Record<string, string | undefined> = process.env) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, args, { env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const lines = (stdout: string) => stdout.trim().split("\n").map((line) => JSON.parse(line));

nativeTest(
  "LibraryError is exported: a user's import catches it with instanceof and a code",
  "no library spawns: this tests the library",
  async () => {
    const result = await runFixture("first_use.ts", [], { PRIVATE_SPAWN_LIB: "/nonexistent/libprivate_spawn.so" });
    assert.equal(result.code, 0, result.stderr);
    const [imported, outcome] = lines(result.stdout);
    assert.deepEqual(imported, { imported: true });
    assert.equal(outcome.libraryError, true, result.stdout);
    assert.equal(outcome.name, "LibraryError");
    assert.equal(outcome.code, "ERR_LIBRARY_NOT_FOUND");
    assert.match(outcome.message, /PRIVATE_SPAWN_LIB/);
  },
);

nativeTest(
  "importing mod.ts loads no library; the first spawn does",
  "no library spawns: this tests the library",
  async () => {
    const script = `
    import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
    const mapped = () => readFileSync("/proc/self/maps", "utf8").includes("libprivate_spawn");
    const { spawnHandle } = await import(${JSON.stringify(`${root}mod.ts`)});
    const before = mapped();
    const status = await spawnHandle("sh", ["-c", "exit 4"]).wait();
    console.log(JSON.stringify({ before, after: mapped(), code: status.code }));
  `;
    const file = `${root}tests/fixtures/.maps_probe_${process.pid}.ts`;
    (await import("node:fs")).writeFileSync(file, script);
    try {
      const result = await runFixture(file);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { before: false, after: true, code: 4 });
    } finally {
      (await import("node:fs")).rmSync(file, { force: true });
    }
  },
);

test("a Worker that imports mod.ts statically receives a message posted right after new Worker()", async () => {
  const result = await runFixture("worker_early.ts");
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { code: 5 });
});

test("off Linux, macOS and FreeBSD the first use throws ERR_PLATFORM_UNSUPPORTED naming the OS and arch, without zig build", () => {
  for (const [platform, arch, name] of [["win32", "x64", "Windows"], ["openbsd", "x64", "OpenBSD"]]) {
    assert.throws(() => resolveLibraryPath(platform, arch), (error: unknown) => {
      assert.ok(error instanceof LibraryError, String(error));
      assert.equal(error.code, "ERR_PLATFORM_UNSUPPORTED");
      assert.match(error.message, new RegExp(`${name} \\(${platform}\\) on ${arch}`));
      assert.match(error.message, /Linux/);
      assert.doesNotMatch(error.message, /zig build/);
      return true;
    });
  }
});

test("FreeBSD and macOS get their embedded library (x86_64 and aarch64), never this checkout's Linux build", () => {
  const saved = process.env[LIBRARY_PATH_ENV];
  delete process.env[LIBRARY_PATH_ENV];
  try {
    // ELF e_machine (62 x86_64, 183 aarch64) and DT_NEEDED libc.so.7; Mach-O's CPU type.
    const cases = [
      ["freebsd", "x64", 62],
      ["freebsd", "arm64", 183],
      ["darwin", "x64", 0x01000007],
      ["darwin", "arm64", 0x0100000c],
    ] as const;
    for (const [platform, arch, machine] of cases) {
      const path = resolveLibraryPath(platform, arch);
      // The cache names it after its hash, with the OS's extension.
      assert.ok(path.endsWith(libraryFile(platform).slice(libraryFile(platform).lastIndexOf("."))), path);
      assert.ok(!path.includes("zig-out"), path);
      const bytes = readFileSync(path);
      if (platform === "freebsd") {
        assert.deepEqual([...bytes.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], path);
        assert.equal(bytes.readUInt16LE(18), machine, path);
        assert.ok(bytes.includes(Buffer.from("libc.so.7\0")), `${path} does not need FreeBSD's libc`);
        assert.ok(bytes.includes(Buffer.from("pdfork\0")), `${path} has no pdfork backend`);
      } else {
        assert.equal(bytes.readUInt32LE(0), 0xfeedfacf, path);
        assert.equal(bytes.readUInt32LE(4), machine, path);
      }
    }
  } finally {
    if (saved !== undefined) process.env[LIBRARY_PATH_ENV] = saved;
  }
});

if (isBun) {
  test("Bun: require() of mod.ts works and can spawn", async () => {
    const result = await exec([fixture("require_consumer.cjs")]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { code: 9, libraryError: "function" });
  });
} else {
  // The library's own run(): Deno's node:child_process grants a spawned `deno run` every permission.
  const env = {
    PATH: process.env.PATH!,
    HOME: process.env.HOME!,
    DENO_DIR: process.env.DENO_DIR ?? "",
    ...RUNTIME_ENV,
  };
  const denoRun = (flags: string[]) =>
    run(process.execPath, ["run", "--no-prompt", ...flags, fixture("first_use.ts")], { clearEnv: true, env }).catch((
      e,
    ) => e);

  nativeTest(
    "Deno: importing mod.ts needs no permission; the first spawn names the missing flags",
    "no library spawns: this tests the library",
    async () => {
      const cases: [string[], string[]][] = [
        [[], ["env", "read", "ffi"]],
        [["--allow-ffi"], ["env", "read"]],
        [["--allow-ffi", "--allow-env"], ["read"]],
        [["--allow-ffi", "--allow-read"], ["env"]],
        [["--allow-env", "--allow-read"], ["ffi"]],
      ];
      for (const [flags, missing] of cases) {
        const result = await denoRun(flags);
        assert.equal(result.code, 0, `${flags}: ${result.stderr}`);
        const [imported, outcome] = lines(result.stdout);
        assert.deepEqual(imported, { imported: true }, flags.join(" "));
        assert.equal(outcome.libraryError, true, `${flags}: ${result.stdout}`);
        assert.equal(outcome.code, "ERR_PERMISSION", `${flags}: ${result.stdout}`);
        const named = [...outcome.message.split(";")[0].matchAll(/--allow-([a-z]+) \(/g)].map((m: string[]) => m[1]);
        assert.deepEqual(named, missing, `${flags}: ${outcome.message}`);
        assert.match(outcome.message, /; and --allow-write \(/, "the flag the prebuilt cache needs is named too");
      }
      const full = await denoRun(["--allow-ffi", "--allow-env", "--allow-read"]);
      assert.deepEqual(lines(full.stdout)[1], { code: 7 }, full.stderr);
    },
    { timeoutMs: 240_000 },
  );
}

test("the published files type-check under tsc --strict with bun-types", async () => {
  const tsc = `${root}.tools/npm/node_modules/.bin/tsc`;
  const result = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(tsc, ["-p", `${root}tests/tsconfig.bun.json`], (error, stdout, stderr) => {
      resolve({ code: error ? 1 : 0, out: stdout + stderr });
    });
  });
  assert.equal(result.code, 0, result.out);
  assert.match(readFileSync(`${root}tests/tsconfig.bun.json`, "utf8"), /"bun-types"/);
});

test("a cache directory owned by another user is refused under the runtime's usual flags", async () => {
  const { chownSync, cpSync, mkdirSync, mkdtempSync, rmSync } = await import("node:fs");
  const dir = mkdtempSync("/tmp/ph-owner-");
  try {
    for (const entry of ["mod.ts", "src", "ffi"]) cpSync(`${root}${entry}`, `${dir}/pkg/${entry}`, { recursive: true });
    mkdirSync(`${dir}/pkg/tests/fixtures`, { recursive: true });
    cpSync(fixture("first_use.ts"), `${dir}/pkg/tests/fixtures/first_use.ts`);
    mkdirSync(`${dir}/cache`, { mode: 0o777 });
    if (process.getuid?.() !== 0) return; // needs root to give the directory away
    chownSync(`${dir}/cache`, 65534, 65534);
    const script = `${dir}/pkg/tests/fixtures/first_use.ts`;
    const flags = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];
    const env = { PATH: process.env.PATH!, HOME: `${dir}/home`, PRIVATE_SPAWN_CACHE: `${dir}/cache`, ...RUNTIME_ENV };
    const argv = isBun ? [script] : ["run", "--no-prompt", ...flags, script];
    const result = await run(process.execPath, argv, {
      clearEnv: true,
      env: { ...env, DENO_DIR: process.env.DENO_DIR ?? "" },
    })
      .catch((e) => e);
    const outcome = lines(result.stdout)[1];
    assert.equal(outcome.code, "ERR_LIBRARY_CACHE", result.stdout + result.stderr);
    assert.match(outcome.message, /belongs to uid 65534/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
