/**
 * The `runtime` backend's own contract (run by scripts/test.sh with
 * `PRIVATE_SPAWN_BACKEND=runtime`; skipped otherwise): what backendInfo() says, exit codes,
 * signals, streams, timeouts and kills, run(), and a TypeError naming the option and the
 * backend for every option the runtime's own spawn cannot honour.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import {
  backendInfo,
  BackendUnsupportedError,
  MaxBufferError,
  outputSync,
  ProcessError,
  run,
  runSync,
  SpawnError,
  spawnHandle,
} from "../mod.ts";
import { isBun, readAll, RUNTIME, runtime, test } from "./harness.ts";

const dir = mkdtempSync("/tmp/ph-runtime-");
const decoder = new TextDecoder();
/** A test of the runtime backend: skipped unless it runs. */
const runtimeTest = (name: string, fn: () => void | Promise<void>) =>
  test(`runtime backend: ${name}`, fn, { ignore: !RUNTIME, timeoutMs: 30_000 });

runtimeTest("backendInfo() names it, says it is not private on POSIX, and loads no library", () => {
  assert.deepEqual(backendInfo(), {
    backend: "runtime",
    private: false,
    pollableFd: false,
    tree: null,
    pid: 0,
    started: 0,
    libraryPath: "",
    buildId: "",
    spawnsQueued: 0,
    runtime,
  });
});

runtimeTest("exit codes 0, 1, 42 and 255 of children running at once", async () => {
  const codes = [0, 1, 42, 255];
  const statuses = await Promise.all(codes.map((code) => spawnHandle("sh", ["-c", `exit ${code}`]).wait()));
  assert.deepEqual(
    statuses.map((s) => [s.exited, s.code, s.signal, s.success]),
    codes.map((c) => [true, c, null, c === 0]),
  );
  assert.equal(statuses[0].rusage, null);
});

runtimeTest("kill() and sendSignal(): the status names the signal; after the exit they return false", async () => {
  for (const signal of ["SIGTERM", "SIGKILL", "SIGINT"] as const) {
    const child = spawnHandle("sleep", ["30"]);
    assert.equal(child.fd, -1);
    assert.equal(child.waitNonblock().exited, false);
    assert.equal(child.sendSignal(signal), true);
    const status = await child.wait();
    assert.deepEqual([status.code, status.signal, status.success], [null, signal, false]);
    assert.equal(child.kill(), false);
    assert.equal(child.waitNonblock(), status);
  }
});

runtimeTest("group signals are refused: no child leads a group on this backend", () => {
  const child = spawnHandle("true");
  assert.throws(() => child.sendSignal("SIGTERM", { group: true }), TypeError);
  return child.wait().then(() => {});
});

runtimeTest("piped bytes both ways: 1 MiB through stdin and back, stderr apart", async () => {
  const bytes = new Uint8Array(1 << 20);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 251;
  const child = spawnHandle("sh", ["-c", "cat; echo done >&2"], { stdin: "piped", stdout: "piped", stderr: "piped" });
  const writer = child.stdin.getWriter();
  const reading = readAll(child.stdout);
  await writer.write(bytes);
  await writer.close();
  assert.deepEqual(await reading, bytes);
  assert.equal(await child.stderr.text(), "done\n");
  assert.equal((await child.wait()).code, 0);
});

runtimeTest("input, stdin sources, text(), lines() and output()", async () => {
  assert.equal(await spawnHandle("cat", [], { input: "from input", stdout: "piped" }).text(), "from input");
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue("a\n");
      controller.enqueue(new TextEncoder().encode("b\n"));
      controller.close();
    },
  });
  const lines: string[] = [];
  const child = spawnHandle("cat", [], { stdin: stream, stdout: "piped" });
  for await (const line of child.lines()) lines.push(line);
  assert.deepEqual(lines, ["a", "b"]);
  const { status, stdout, stderr } = await spawnHandle("sh", ["-c", "echo out; echo err >&2; exit 4"], {
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  assert.deepEqual([status.code, decoder.decode(stdout), decoder.decode(stderr)], [4, "out\n", "err\n"]);
});

runtimeTest("an output past maxBuffer kills the child and keeps the first bytes", async () => {
  const child = spawnHandle("sh", ["-c", "while :; do echo xxxxxxxxxxxxxxxx; done"], { stdout: "piped" });
  await assert.rejects(child.output({ maxBuffer: 1000 }), (error: unknown) => {
    assert.ok(error instanceof MaxBufferError);
    assert.equal(error.stdout.length, 1000);
    assert.equal(error.status?.signal, "SIGKILL");
    return true;
  });
});

runtimeTest("env, clearEnv and cwd", async () => {
  const result = await run("sh", ["-c", 'echo "$FOO|$HOME|$(pwd)"'], {
    env: { FOO: "bar", HOME: undefined },
    cwd: dir,
  });
  assert.equal(result.stdout, `bar||${dir}\n`);
  const cleared = await run("/usr/bin/env", [], { clearEnv: true, env: { ONLY: "1" } });
  assert.equal(cleared.stdout, "ONLY=1\n");
});

runtimeTest("timeout, killSignal and forceKillAfter; an AbortSignal; asyncDispose", async () => {
  const timed = spawnHandle("sleep", ["30"], { timeout: 100, killSignal: "SIGINT" });
  assert.equal((await timed.wait()).signal, "SIGINT");
  assert.equal(timed.timedOut, true);
  const stubborn = spawnHandle("sh", ["-c", "trap '' TERM; echo ready; sleep 30"], {
    timeout: 100,
    forceKillAfter: 200,
    stdout: "piped",
  });
  assert.equal((await stubborn.wait()).signal, "SIGKILL");
  const controller = new AbortController();
  const aborted = spawnHandle("sleep", ["30"]);
  const other = spawnHandle("sleep", ["30"], { signal: controller.signal });
  controller.abort();
  assert.equal((await other.wait()).signal, "SIGTERM");
  assert.equal(other.aborted, true);
  await aborted[Symbol.asyncDispose]();
  assert.equal(aborted.waitNonblock().signal, "SIGTERM");
});

runtimeTest("run(): the decoded result, ProcessError on a failure", async () => {
  const ok = await run("echo", ["hi"]);
  assert.deepEqual([ok.code, ok.stdout], [0, "hi\n"]);
  await assert.rejects(run("sh", ["-c", "echo no >&2; exit 3"]), (error: unknown) => {
    assert.ok(error instanceof ProcessError);
    assert.deepEqual([error.code, error.stderr], [3, "no\n"]);
    return true;
  });
});

runtimeTest("a command that does not exist: SpawnError ENOENT, nothing left behind", () => {
  assert.throws(() => spawnHandle("ph-no-such-command"), (error: unknown) => {
    assert.ok(error instanceof SpawnError);
    assert.equal(error.code, "ENOENT");
    return true;
  });
});

runtimeTest("waitSync() throws BackendUnsupportedError naming the backend", async () => {
  const child = spawnHandle("sleep", ["30"]);
  assert.throws(() => child.waitSync(), (error: unknown) => {
    assert.ok(error instanceof BackendUnsupportedError);
    assert.equal(error.code, "ERR_BACKEND_UNSUPPORTED");
    assert.equal(error.backend, "runtime");
    assert.match(error.message, /waitSync\(\).*"runtime" backend/);
    return true;
  });
  child.kill("SIGKILL");
  await child.wait();
});

runtimeTest("runSync() and outputSync(): output, exit codes, signals, env, cwd and a missing program", () => {
  const out = outputSync("sh", ["-c", 'printf "$V:"; pwd; echo err >&2; exit 3'], { env: { V: "v1" }, cwd: dir });
  assert.equal(decoder.decode(out.stdout), `v1:${dir}\n`);
  assert.equal(decoder.decode(out.stderr), "err\n");
  assert.equal(out.status.code, 3);
  assert.equal(out.status.signal, null);
  assert.equal(out.timedOut, false);
  assert.equal(out.status.pid === 0, !isBun, "Bun reports the pid, Deno's outputSync does not");
  const killed = outputSync("sh", ["-c", "kill -9 $$"]);
  assert.deepEqual([killed.status.code, killed.status.signal, killed.status.success], [null, "SIGKILL", false]);
  assert.equal(runSync("echo", ["hi"]).stdout, "hi\n");
  assert.throws(
    () => runSync("sh", ["-c", "exit 4"]),
    (e: unknown) => e instanceof ProcessError && e.status.code === 4,
  );
  assert.throws(() => runSync("ph-no-such-command"), (e: unknown) => e instanceof SpawnError && e.code === "ENOENT");
});

runtimeTest(
  `sync input and timeout: ${isBun ? "Bun.spawnSync honours both" : "Deno's outputSync refuses both"}`,
  () => {
    const marker = `${dir}/sync-spawned`;
    if (!isBun) {
      for (const [name, options] of [["input", { input: "x" }], ["timeout", { timeout: 100 }]] as const) {
        assert.throws(() => runSync("touch", [marker], options), (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.equal((error as TypeError & { code: string }).code, "ERR_BACKEND_OPTION");
          assert.ok(error.message.includes(`"${name}"`) && error.message.includes("outputSync()"), error.message);
          return true;
        });
      }
      assert.equal(existsSync(marker), false);
      // An empty input is no input: nothing to feed.
      assert.equal(runSync("cat", [], { input: "" }).stdout, "");
      return;
    }
    assert.equal(runSync("cat", [], { input: "fed\n" }).stdout, "fed\n");
    const start = performance.now();
    const slow = outputSync("sleep", ["5"], { timeout: 200, killSignal: "SIGINT" });
    assert.ok(performance.now() - start < 3000);
    assert.deepEqual([slow.timedOut, slow.status.signal], [true, "SIGINT"]);
    // A child that exited at once while a grandchild held the pipe did not time out.
    const quick = outputSync("sh", ["-c", "sleep 2 & echo hi"], { timeout: 300 });
    assert.deepEqual([quick.timedOut, quick.status.code, decoder.decode(quick.stdout)], [false, 0, "hi\n"]);
    assert.throws(() => runSync("sleep", ["1"], { timeout: 100, forceKillAfter: 100 }), TypeError);
  },
);

runtimeTest("sync maxBuffer: MaxBufferError with the first bytes and the status", () => {
  // Deno's outputSync runs the child to its end; Bun.spawnSync sends killSignal at the overflow
  // (in most runs: when it does not, the child ran to its end, and the error says which).
  assert.throws(() => outputSync("sh", ["-c", "head -c 200000 /dev/zero; sleep 1"], { maxBuffer: 1000 }), (error) => {
    assert.ok(error instanceof MaxBufferError);
    assert.equal(error.stream, "stdout");
    assert.equal(error.stdout.length, 1000);
    // Bun closes its end at the overflow: `head`, still writing, may report that on stderr
    // ("head: error writing 'standard output': Connection reset by peer", or its first bytes).
    const stderr = decoder.decode(error.stderr);
    assert.ok(stderr === "" || stderr.startsWith("head: "), JSON.stringify(stderr));
    const killed = error.status?.signal === "SIGTERM";
    if (!isBun) assert.equal(killed, false);
    if (!killed) assert.equal(error.status?.code, 0);
    assert.match(error.message, killed ? /was killed/ : /ran the child to its end/);
    return true;
  });
  assert.equal(outputSync("head", ["-c", "200000", "/dev/zero"], { maxBuffer: Infinity }).stdout.length, 200_000);
});

const REFUSED: [string, Record<string, unknown>][] = [
  ["umask", { umask: 0o22 }],
  ["rlimits", { rlimits: { nofile: 64 } }],
  ["uid", { uid: 0 }],
  ["gid", { gid: 0 }],
  ["groups", { groups: [] }],
  ["pgroup", { pgroup: true }],
  ["setsid", { setsid: true }],
  ["keepIgnoredSignals", { keepIgnoredSignals: true }],
  ["killOnParentExit", { killOnParentExit: true }],
  ["inheritFds", { inheritFds: [0x7ff0] }],
  ["fds.3", { fds: { 3: "piped" } }],
  ["stdout", { stdout: 2 }],
  ["stdout", { stdout: { path: `${dir}/out` } }],
  ["stdin", { stdin: { path: "/dev/null" } }],
  ["stderr", { stderr: "stdout" }],
];

for (const [name, options] of REFUSED) {
  runtimeTest(
    `${JSON.stringify(options)} throws a TypeError naming "${name}" and the backend, spawning nothing`,
    () => {
      const marker = `${dir}/spawned-${name}-${Object.keys(options).join("")}`;
      assert.throws(() => spawnHandle("touch", [marker], options), (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.equal((error as TypeError & { code: string }).code, "ERR_BACKEND_OPTION");
        assert.ok(error.message.includes(`"${name}"`), error.message);
        assert.ok(error.message.includes(`"runtime" backend`), error.message);
        return true;
      });
      assert.equal(existsSync(marker), false);
    },
  );
}

runtimeTest(`argv0: ${isBun ? "Bun.spawn sets it" : "Deno.Command cannot: a TypeError"}`, async () => {
  const options = { argv0: "renamed", stdout: "piped" as const };
  if (!isBun) {
    assert.throws(() => spawnHandle("sh", ["-c", "true"], options), /"argv0" is not supported by the "runtime"/);
    return;
  }
  const cmdline = await spawnHandle("sh", ["-c", "cat /proc/$$/cmdline"], options).text();
  assert.equal(cmdline.split("\0")[0], "renamed");
});

runtimeTest("values the runtime can honour pass: argv0 equal to the command, explicit defaults", async () => {
  const status = await spawnHandle("true", [], {
    argv0: "true",
    killOnParentExit: false,
    setsid: false,
    keepIgnoredSignals: false,
    inheritFds: [],
    stdin: "null",
    stdout: "inherit",
    stderr: "null",
  }).wait();
  assert.equal(status.code, 0);
});
