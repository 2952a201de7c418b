/**
 * Under Windows (run under Wine by scripts/test_windows.sh): what a Windows backend over
 * `Deno.Command` / `Bun.spawn` relies on, checked on each runtime's own API: exit codes,
 * piped bytes both ways, the environment and working directory, kill(), and exits that
 * arrive without any SIGCHLD.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmdirSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { isBun } from "../harness.ts";
import { bytesOf, CHILD, isRunning, runChild, spawnChild, windowsTest } from "./spawn.ts";

const decoder = new TextDecoder();

function pattern(count: number, modulus: number, prefix = ""): Uint8Array {
  const head = new TextEncoder().encode(prefix);
  const bytes = new Uint8Array(head.length + count);
  bytes.set(head);
  for (let i = 0; i < count; i++) bytes[head.length + i] = i % modulus;
  return bytes;
}

function randomBytes(count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  for (let offset = 0; offset < count; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(count, offset + 65536)));
  }
  return bytes;
}

windowsTest("cmd.exe /c exit 3 gives code 3 and no signal", async () => {
  const result = await runChild("cmd.exe", ["/c", "exit 3"]);
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 3, signal: null });
});

windowsTest("exit codes 0, 1, 42 and 255 reach the parent, for children running at once", async () => {
  const codes = [0, 1, 42, 255];
  const results = await Promise.all(codes.map((code) => runChild(CHILD, ["exit", String(code)])));
  assert.deepEqual(results.map((r) => [r.code, r.signal]), codes.map((code) => [code, null]));
});

windowsTest("an exit code above 255: Deno reports all 32 bits, Bun only the low byte", async () => {
  const over = await runChild(CHILD, ["exit", "300"]);
  const all = await runChild(CHILD, ["exit", "4294967295"]);
  if (isBun) {
    assert.deepEqual([over.code, all.code], [300 & 0xff, 0xff]);
  } else {
    assert.deepEqual([over.code, all.code], [300, -1]);
  }
});

windowsTest("stdout and stderr: 1 MiB each, read at once, arrive byte for byte", async () => {
  const size = 1 << 20;
  const result = await runChild(CHILD, ["bytes", String(size)]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.length, size);
  assert.deepEqual(result.stdout, pattern(size, 251));
  assert.equal(result.stderr.length, size + 4);
  assert.deepEqual(result.stderr, pattern(size, 13, "err:"));
});

windowsTest("stdin: 256 KiB of random bytes come back through the child, and closing stdin ends it", async () => {
  const input = randomBytes(256 * 1024);
  const child = spawnChild(CHILD, ["echo"]);
  const output = bytesOf(child.stdout);
  for (let offset = 0; offset < input.length; offset += 16384) {
    await child.write(input.subarray(offset, offset + 16384));
  }
  assert.equal(await isRunning(child.pid), true, "the child ended before its stdin was closed");
  await child.closeStdin();
  const [bytes, status] = await Promise.all([output, child.status]);
  assert.deepEqual(status, { code: 0, signal: null });
  assert.equal(bytes.length, input.length);
  assert.deepEqual(bytes, input);
});

windowsTest("env: an environment given replaces the parent's, and process.env passed on arrives whole", async () => {
  process.env.PH_WINE_PARENT = "from the parent";
  try {
    const inherited = await runChild(CHILD, ["env", "PH_WINE_PARENT"], {
      env: { ...process.env } as Record<string, string>,
    });
    assert.deepEqual([inherited.code, decoder.decode(inherited.stdout)], [0, "from the parent"]);
    const given = { PH_WINE_ONLY: "value ü € 𝄞", SystemRoot: "C:\\windows" };
    const only = await runChild(CHILD, ["env", "PH_WINE_ONLY"], { env: given });
    assert.deepEqual([only.code, decoder.decode(only.stdout)], [0, "value ü € 𝄞"]);
    const absent = await runChild(CHILD, ["env", "PH_WINE_PARENT"], { env: given });
    assert.deepEqual([absent.code, decoder.decode(absent.stdout)], [2, ""], "a variable not given reached the child");
  } finally {
    delete process.env.PH_WINE_PARENT;
  }
});

windowsTest(
  "env: with none given, Deno passes process.env as it is now, Bun the environment it started with",
  async () => {
    process.env.PH_WINE_LATE = "set after start";
    try {
      const result = await runChild(CHILD, ["env", "PH_WINE_LATE"]);
      if (isBun) {
        assert.deepEqual([result.code, decoder.decode(result.stdout)], [2, ""]);
      } else {
        assert.deepEqual([result.code, decoder.decode(result.stdout)], [0, "set after start"]);
      }
    } finally {
      delete process.env.PH_WINE_LATE;
    }
  },
);

windowsTest("cwd: the child starts in the directory given, and a missing one fails the spawn", async () => {
  const dir = mkdtempSync(`${os.tmpdir()}\\ph-wine-`);
  try {
    const result = await runChild(CHILD, ["cwd"], { cwd: dir });
    assert.equal(result.code, 0);
    assert.equal(decoder.decode(result.stdout).toLowerCase(), dir.toLowerCase());
    const missing = `${dir}\\missing`;
    await assert.rejects(async () => await runChild(CHILD, ["cwd"], { cwd: missing }));
  } finally {
    // Empty by now; Bun's recursive rmSync fails with EFAULT under Wine 8.
    rmdirSync(dir);
  }
});

windowsTest("a missing program fails the spawn with ENOENT", () => {
  assert.throws(() => spawnChild(`${CHILD}.missing`, []), (error: unknown) => {
    assert.equal((error as { code?: string }).code, "ENOENT", String(error));
    return true;
  });
  return Promise.resolve();
});

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  windowsTest(`kill("${signal}") ends a running child: Deno reports code 1, Bun the signal`, async () => {
    const child = spawnChild(CHILD, ["sleep", "60000"]);
    await child.closeStdin();
    assert.equal(await isRunning(child.pid), true, "the child is not running before kill()");
    const start = performance.now();
    child.kill(signal);
    const status = await child.status;
    const elapsedMs = performance.now() - start;
    assert.ok(elapsedMs < 10_000, `the exit took ${elapsedMs} ms to arrive`);
    assert.deepEqual(status, isBun ? { code: null, signal } : { code: 1, signal: null });
    assert.equal(await isRunning(child.pid), false, "the child still runs after its exit was reported");
    await Promise.all([bytesOf(child.stdout), bytesOf(child.stderr)]);
  });
}

windowsTest("exits arrive without any SIGCHLD: none can be listened to (Deno) or none is sent (Bun)", async () => {
  let sigchld = 0;
  const listener = () => sigchld++;
  if (isBun) {
    process.on("SIGCHLD", listener);
  } else {
    assert.throws(() => Deno.addSignalListener("SIGCHLD", listener), TypeError);
  }
  try {
    const codes = Array.from({ length: 16 }, (_, i) => i * 7);
    const children = codes.map((code) => runChild(CHILD, ["exit", String(code)]));
    // Children exit while the event loop is blocked: their exits are still reported after.
    const blockUntil = performance.now() + 300;
    while (performance.now() < blockUntil) { /* busy */ }
    const results = await Promise.all(children);
    assert.deepEqual(results.map((r) => r.code), codes);
    assert.equal(sigchld, 0, "a SIGCHLD listener ran under Windows");
  } finally {
    if (isBun) process.off("SIGCHLD", listener);
  }
});

windowsTest("crypto.getRandomValues returns varied bytes (Wine 8 gets ProcessPrng from the stub DLL)", () => {
  const first = crypto.getRandomValues(new Uint8Array(4096));
  const second = crypto.getRandomValues(new Uint8Array(4096));
  assert.ok(new Set(first).size > 200, `only ${new Set(first).size} distinct byte values in 4096 random bytes`);
  assert.notDeepEqual(first, second);
  return Promise.resolve();
});
