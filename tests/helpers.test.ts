import assert from "node:assert/strict";
import { MaxBufferError, outputSync, popen3, ProcessError, run, runSync, spawnHandle } from "../mod.ts";
import { isBun, nativeTest, readAll, test } from "./harness.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("output(): status and both streams as bytes", async () => {
  const child = spawnHandle("sh", ["-c", "echo out; echo err >&2; exit 3"], { stdout: "piped", stderr: "piped" });
  const { status, stdout, stderr } = await child.output();
  assert.equal(status.code, 3);
  assert.equal(decode(stdout), "out\n");
  assert.equal(decode(stderr), "err\n");
});

test("text() and lines(), including a last line without a newline", async () => {
  assert.equal(await spawnHandle("printf", ["héllo"], { stdout: "piped" }).text(), "héllo");
  const lines: string[] = [];
  const iterator = spawnHandle("printf", ["a\\nbb\\n\\nlast"], { stdout: "piped" }).lines();
  for await (const line of iterator) lines.push(line);
  assert.deepEqual(lines, ["a", "bb", "", "last"]);
});

test("maxBuffer: exceeding it kills the child and rejects with MaxBufferError", async () => {
  const child = spawnHandle("yes", [], { stdout: "piped" });
  await assert.rejects(child.output({ maxBuffer: 1000 }), (e: unknown) => {
    assert.ok(e instanceof MaxBufferError);
    assert.deepEqual([e.code, e.stream, e.maxBuffer], ["ERR_MAX_BUFFER", "stdout", 1000]);
    return true;
  });
  assert.equal((await child.wait()).signal, "SIGKILL");
});

test("run(): resolves with decoded output; input reaches stdin", async () => {
  const result = await run("sh", ["-c", "echo hello; echo warn >&2"]);
  assert.deepEqual([result.code, result.signal, result.stdout, result.stderr], [0, null, "hello\n", "warn\n"]);
  assert.equal(result.status.success, true);
  assert.equal((await run("cat", [], { input: "from input" })).stdout, "from input");
  assert.equal((await run("wc", ["-c"], { input: new Uint8Array(12345) })).stdout.trim(), "12345");
});

test("run(): a failure rejects with ProcessError shaped like the result", async () => {
  const long = "x".repeat(10_000);
  await assert.rejects(run("sh", ["-c", `echo partial; printf '${long}' >&2; exit 4`]), (e: unknown) => {
    assert.ok(e instanceof ProcessError);
    assert.equal(e.command, "sh");
    assert.deepEqual([e.code, e.signal, e.timedOut, e.aborted], [4, null, false, false]);
    assert.equal(e.status.code, 4);
    assert.equal(e.stdout, "partial\n");
    assert.equal(e.stderr, long);
    assert.match(e.message, /^Command failed with exit code 4: sh -c/);
    assert.ok(e.message.length < 5000, `message of ${e.message.length} characters`);
    return true;
  });
  await assert.rejects(run("sleep", ["5"], { timeout: 50 }), (e: unknown) => {
    assert.ok(e instanceof ProcessError);
    assert.deepEqual([e.timedOut, e.signal, e.code], [true, "SIGTERM", null]);
    assert.match(e.message, /timed out/);
    return true;
  });
  const controller = new AbortController();
  const pending = run("sleep", ["5"], { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof ProcessError && e.aborted && /aborted/.test(e.message));
  await assert.rejects(
    run("yes", [], { maxBuffer: 100 }),
    (e: unknown) => e instanceof ProcessError && e.cause instanceof MaxBufferError,
  );
});

test("popen3(): the Open3 shape", async () => {
  const { stdin, stdout, stderr, handle } = popen3("sh", ["-c", "cat; echo e >&2"]);
  const writer = stdin.getWriter();
  await writer.write(new TextEncoder().encode("ping"));
  await writer.close();
  const [out, err] = await Promise.all([readAll(stdout), readAll(stderr)]);
  assert.deepEqual([decode(out), decode(err)], ["ping", "e\n"]);
  assert.equal((await handle.wait()).code, 0);
});

nativeTest(
  "runSync and outputSync block the thread and never run the event loop",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  () => {
    let timerRan = false;
    const timer = setTimeout(() => (timerRan = true), 0);
    const result = runSync("sh", ["-c", "sleep 0.1; echo sync; echo e >&2"]);
    assert.deepEqual([result.stdout, result.stderr, result.code], ["sync\n", "e\n", 0]);
    const out = outputSync("cat", [], { input: "x".repeat(300_000) });
    assert.equal(out.stdout.length, 300_000);
    assert.equal(out.status.success, true);
    assert.throws(
      () => runSync("sh", ["-c", "echo bad >&2; exit 2"]),
      (e: unknown) => e instanceof ProcessError && e.code === 2 && e.stderr === "bad\n",
    );
    assert.throws(
      () => runSync("yes", [], { maxBuffer: 1000 }),
      (e: unknown) => e instanceof ProcessError && e.cause instanceof MaxBufferError,
    );
    const timed = outputSync("sleep", ["5"], { timeout: 100 });
    assert.deepEqual([timed.timedOut, timed.status.signal], [true, "SIGTERM"]);
    assert.equal(timerRan, false);
    clearTimeout(timer);
  },
);

test("interop: our stdout pipes into our stdin", async () => {
  const producer = spawnHandle("seq", ["1", "1000"], { stdout: "piped" });
  const consumer = spawnHandle("wc", ["-l"], { stdin: "piped", stdout: "piped" });
  await producer.stdout!.pipeTo(consumer.stdin!);
  assert.equal(decode(await readAll(consumer.stdout!)).trim(), "1000");
  await Promise.all([producer.wait(), consumer.wait()]);
});

test("interop: the runtime's own child's stdout feeds our stdin", async () => {
  const consumer = spawnHandle("wc", ["-c"], { stdin: "piped", stdout: "piped" });
  if (isBun) {
    const bun = (globalThis as unknown as {
      Bun: { spawn(cmd: string[], o: object): { stdout: ReadableStream<Uint8Array>; exited: Promise<number> } };
    }).Bun;
    const theirs = bun.spawn(["head", "-c", "50000", "/dev/zero"], { stdout: "pipe" });
    await theirs.stdout.pipeTo(consumer.stdin!);
    await theirs.exited;
  } else {
    const theirs = new Deno.Command("head", { args: ["-c", "50000", "/dev/zero"], stdout: "piped" }).spawn();
    await theirs.stdout.pipeTo(consumer.stdin!);
    await theirs.status;
  }
  assert.equal(decode(await readAll(consumer.stdout!)).trim(), "50000");
  assert.equal((await consumer.wait()).code, 0);
});
