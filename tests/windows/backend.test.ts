/**
 * Under Windows (run under Wine by scripts/test_windows.sh): the module's own API through the
 * `runtime` backend, the default on Windows: exit codes, piped bytes both ways, the
 * environment and working directory, kill(), timeout, run(), backendInfo(), and an option
 * the backend refuses.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmdirSync } from "node:fs";
import os from "node:os";
import { isBun } from "../harness.ts";
import { CHILD, windowsTest } from "./spawn.ts";

windowsTest("backendInfo(): the runtime backend, private, no library loaded", async () => {
  const { backendInfo } = await import("../../mod.ts");
  assert.deepEqual(backendInfo(), {
    backend: "runtime",
    private: true,
    pollableFd: false,
    tree: null,
    pid: 0,
    started: 0,
    libraryPath: "",
    buildId: "",
    spawnsQueued: 0,
    runtime: isBun ? "bun" : "deno",
  });
});

windowsTest("spawnHandle: exit codes 0, 1, 42 and 255 of children running at once", async () => {
  const { spawnHandle } = await import("../../mod.ts");
  const codes = [0, 1, 42, 255];
  const statuses = await Promise.all(codes.map((code) => spawnHandle(CHILD, ["exit", String(code)]).wait()));
  assert.deepEqual(
    statuses.map((s) => [s.exited, s.code, s.signal, s.success]),
    codes.map((c) => [true, c, null, c === 0]),
  );
  assert.ok(statuses.every((s, i) => s.pid > 0 && s.pid !== statuses[(i + 1) % 4].pid));
});

windowsTest("spawnHandleAsync: settled in the call by the runtime's spawn; a missing program rejects", async () => {
  const { spawnHandleAsync, SpawnError } = await import("../../mod.ts");
  const children = await Promise.all([7, 9].map((code) => spawnHandleAsync(CHILD, ["exit", String(code)])));
  assert.deepEqual((await Promise.all(children.map((child) => child.wait()))).map((s) => s.code), [7, 9]);
  await assert.rejects(
    spawnHandleAsync("C:\\ph-no-such-program.exe"),
    (error) => error instanceof SpawnError && error.code === "ENOENT",
  );
});

windowsTest("piped bytes both ways: 256 KiB through stdin and back; output() of 1 MiB on each stream", async () => {
  const { spawnHandle } = await import("../../mod.ts");
  const bytes = new Uint8Array(256 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 253;
  const echo = spawnHandle(CHILD, ["echo"], { stdin: "piped", stdout: "piped", stderr: "null" });
  const writer = echo.stdin.getWriter();
  const reading = echo.stdout.bytes();
  await writer.write(bytes);
  await writer.close();
  assert.deepEqual(await reading, bytes);
  assert.equal((await echo.wait()).code, 0);
  const size = 1 << 20;
  const { status, stdout, stderr } = await spawnHandle(CHILD, ["bytes", String(size)], {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(status.code, 0);
  assert.equal(stdout.length, size);
  assert.ok(stdout.every((byte, i) => byte === i % 251));
  assert.equal(stderr.length, size + 4);
  const input = await spawnHandle(CHILD, ["echo"], { input: "from input", stdout: "piped" }).text();
  assert.equal(input, "from input");
});

windowsTest("run(): env merged over the host's, clearEnv, cwd; a failure is a ProcessError", async () => {
  const { ProcessError, run } = await import("../../mod.ts");
  const merged = await run(CHILD, ["env", "PH_WINE_GIVEN"], { env: { PH_WINE_GIVEN: "given" } });
  assert.equal(merged.stdout, "given");
  await assert.rejects(run(CHILD, ["env", "PH_WINE_GIVEN"], { clearEnv: true }), (error: unknown) => {
    assert.ok(error instanceof ProcessError);
    assert.equal(error.code, 2);
    return true;
  });
  const dir = mkdtempSync(`${os.tmpdir()}\\ph-wine-`);
  try {
    const { stdout } = await run(CHILD, ["cwd"], { cwd: dir });
    assert.equal(stdout.toLowerCase(), dir.toLowerCase());
  } finally {
    rmdirSync(dir);
  }
});

windowsTest(
  "kill() ends a running child; timeout sends killSignal and sets timedOut; sendSignal after exit is false",
  async () => {
    const { spawnHandle } = await import("../../mod.ts");
    const child = spawnHandle(CHILD, ["sleep", "60000"], { stdin: "null" });
    assert.equal(child.waitNonblock().exited, false);
    assert.equal(child.kill(), true);
    const status = await child.wait();
    // Windows has no signals: Deno reports TerminateProcess's exit code 1, Bun the signal asked for.
    assert.deepEqual([status.code, status.signal], isBun ? [null, "SIGTERM"] : [1, null]);
    assert.equal(child.kill(), false);
    const timed = spawnHandle(CHILD, ["sleep", "60000"], { stdin: "null", timeout: 200 });
    const start = performance.now();
    assert.equal((await timed.wait()).success, false);
    assert.ok(performance.now() - start < 10_000);
    assert.equal(timed.timedOut, true);
  },
);

windowsTest("an option the backend cannot honour is a TypeError naming it and the backend", async () => {
  const { spawnHandle } = await import("../../mod.ts");
  for (
    const [name, options] of [["umask", { umask: 0o22 }], ["killOnParentExit", { killOnParentExit: true }]] as const
  ) {
    assert.throws(() => spawnHandle(CHILD, ["exit", "0"], options), (error: unknown) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, new RegExp(`"${name}" is not supported by the "runtime" backend`));
      return true;
    });
  }
});

windowsTest("runSync() and outputSync(): the runtime's own sync spawn, its limits refused by name", async () => {
  const { outputSync, ProcessError, runSync } = await import("../../mod.ts");
  const out = outputSync(CHILD, ["bytes", "70000"]);
  assert.deepEqual([out.status.code, out.stdout.length, out.timedOut], [0, 70000, false]);
  assert.equal(runSync(CHILD, ["env", "PH_WINE_GIVEN"], { env: { PH_WINE_GIVEN: "sync" } }).stdout.trim(), "sync");
  assert.throws(() => runSync(CHILD, ["exit", "3"]), (e: unknown) => e instanceof ProcessError && e.status.code === 3);
  if (isBun) {
    assert.equal(runSync(CHILD, ["echo"], { input: "fed" }).stdout, "fed");
    const slow = outputSync(CHILD, ["sleep", "5000"], { timeout: 200 });
    assert.equal(slow.timedOut, true);
  } else {
    assert.throws(() => runSync(CHILD, ["echo"], { input: "fed" }), /"input" is not supported by the "runtime"/);
    assert.throws(() => runSync(CHILD, ["sleep", "10"], { timeout: 100 }), /"timeout" is not supported/);
  }
});

windowsTest("a missing program is a SpawnError ENOENT; waitSync() is a BackendUnsupportedError", async () => {
  const { BackendUnsupportedError, SpawnError, spawnHandle } = await import("../../mod.ts");
  assert.throws(() => spawnHandle("C:\\ph-no-such-program.exe"), (error: unknown) => {
    assert.ok(error instanceof SpawnError, String(error));
    assert.equal(error.code, "ENOENT");
    return true;
  });
  const child = spawnHandle(CHILD, ["exit", "0"]);
  assert.throws(() => child.waitSync(), BackendUnsupportedError);
  assert.equal((await child.wait()).code, 0);
});
