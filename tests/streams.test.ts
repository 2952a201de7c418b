import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import process from "node:process";
import { MaxBufferError, outputSync, runSync, spawnHandle } from "../mod.ts";
import { collectGarbage, nativeTest, openFds, readAll, runFixture, sleep, test, within } from "./harness.ts";

const MiB = 1024 * 1024;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

function pattern(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 16)) & 0xff;
  return bytes;
}

/** Reads a stream to its end, counting bytes; rejects with the stream's error, if any. */
async function countBytes(stream: ReadableStream<Uint8Array>): Promise<number> {
  let total = 0;
  for await (const chunk of stream) total += chunk.length;
  return total;
}

/** This process's descriptors that are pipes and were not open in `before`. */
function newPipes(before: Map<number, string>): string[] {
  return [...openFds()].filter(([fd, link]) => link.startsWith("pipe:") && before.get(fd) !== link).map(([fd, link]) =>
    `${fd} -> ${link}`
  );
}

// ---- breaking out of lines() (issue 15, item 2)

test("breaking out of lines() leaves the child alone: no SIGPIPE, stdout goes on at the next unread byte", async () => {
  // "ready", then half of a two-byte character that arrives in the same chunk, the rest later,
  // then 20,000 lines: more than a pipe holds, so a cancelled stdout would end in SIGPIPE.
  const script = "printf 'ready\\nh\\303'; sleep 0.3; printf '\\251llo\\n'; seq 1 20000; exit 7";
  const child = spawnHandle("sh", ["-c", script], { stdout: "piped" });
  for await (const line of child.lines()) if (line === "ready") break;
  assert.equal(child.stdout.locked, false);
  const rest = decode(await readAll(child.stdout));
  const seq = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("");
  assert.equal(rest, `héllo\n${seq}`);
  const status = await child.wait();
  assert.deepEqual([status.code, status.signal], [7, null]);
});

test("after return() on lines(), the next lines() or text() starts at the next line", async () => {
  const child = spawnHandle("sh", ["-c", "printf 'a\\nb\\nc\\n'; sleep 0.2; printf 'd\\ne'"], { stdout: "piped" });
  const iterator = child.lines();
  assert.deepEqual(await iterator.next(), { done: false, value: "a" });
  await iterator.return(undefined as never);
  const again: string[] = [];
  for await (const line of child.lines()) {
    again.push(line);
    if (line === "c") break;
  }
  assert.deepEqual(again, ["b", "c"]);
  assert.equal(await child.stdout.text(), "d\ne");
  assert.equal((await child.wait()).code, 0);
});

// ---- the stream's own methods (item 21)

nativeTest(
  "child.stdout is a ReadableStream with text(), bytes(), arrayBuffer() and json()",
  "fds is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const json = spawnHandle("echo", ['{"a":[1,2]}'], { stdout: "piped" });
    assert.ok(json.stdout instanceof ReadableStream);
    assert.deepEqual(await json.stdout.json(), { a: [1, 2] });
    const both = spawnHandle("sh", ["-c", "printf héllo; printf err >&2; printf three >&3"], {
      stdout: "piped",
      stderr: "piped",
      fds: { 3: "piped" },
    });
    const [text, bytes, buffer] = await Promise.all([
      both.stdout.text(),
      both.stderr.bytes(),
      both.fdOutputs[3].arrayBuffer(),
    ]);
    assert.deepEqual([text, decode(bytes), decode(new Uint8Array(buffer))], ["héllo", "err", "three"]);
    assert.ok(bytes instanceof Uint8Array);
    const response = spawnHandle("printf", ["through Response"], { stdout: "piped" });
    assert.equal(await new Response(response.stdout).text(), "through Response");
    await Promise.all([json.wait(), both.wait(), response.wait()]);
  },
);

test("the stream's text() is bounded by maxBuffer: the child is killed, the error keeps the first bytes", async () => {
  const child = spawnHandle("sh", ["-c", "exec yes abc"], { stdout: "piped", maxBuffer: 1000 });
  await assert.rejects(child.stdout.text(), (e: unknown) => {
    assert.ok(e instanceof MaxBufferError);
    assert.deepEqual([e.stream, e.maxBuffer], ["stdout", 1000]);
    assert.equal(decode(e.stdout), "abc\n".repeat(250));
    return true;
  });
  assert.equal((await child.wait()).signal, "SIGKILL");
});

// ---- draining unread output (item 20)

nativeTest(
  "wait() resolves though piped outputs are never read; reads that start later get every byte",
  "fds is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const script = "head -c 4194304 /dev/zero; head -c 3145728 /dev/zero >&2; head -c 2097152 /dev/zero >&3; exit 5";
    const child = spawnHandle("sh", ["-c", script], { stdout: "piped", stderr: "piped", fds: { 3: "piped" } });
    try {
      assert.equal((await within("wait()", child.wait())).code, 5);
    } finally {
      child.kill("SIGKILL");
    }
    await sleep(100);
    const sizes = await Promise.all([child.stdout, child.stderr, child.fdOutputs[3]].map(countBytes));
    assert.deepEqual(sizes, [4 * MiB, 3 * MiB, 2 * MiB]);
  },
);

test("unread output past maxBuffer: the child is killed, the stream yields maxBuffer bytes, then MaxBufferError", async () => {
  const child = spawnHandle("yes", [], { stdout: "piped", maxBuffer: MiB });
  try {
    assert.equal((await within("wait()", child.wait())).signal, "SIGKILL");
  } finally {
    child.kill("SIGKILL");
  }
  let read = 0;
  await assert.rejects(async () => {
    for await (const chunk of child.stdout) read += chunk.length;
  }, (e: unknown) => e instanceof MaxBufferError && e.stream === "stdout" && e.maxBuffer === MiB);
  assert.equal(read, MiB);
});

test("a stream being read is not drained: a slow reader gets all 8 MiB though maxBuffer is 64 KiB", async () => {
  const child = spawnHandle("head", ["-c", String(8 * MiB), "/dev/zero"], { stdout: "piped", maxBuffer: 64 * 1024 });
  const reader = child.stdout.getReader();
  const waiting = child.wait();
  let read = 0;
  for (let n = 0;; n++) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
    if (n % 8 === 0) await sleep(1);
  }
  assert.equal(read, 8 * MiB);
  assert.equal((await waiting).code, 0);
});

test("a reader released after wait() was called: the rest is drained, and read later", async () => {
  const child = spawnHandle("head", ["-c", String(4 * MiB), "/dev/zero"], { stdout: "piped" });
  const reader = child.stdout.getReader();
  const first = (await reader.read()).value!.length;
  const waiting = child.wait();
  await sleep(50);
  reader.releaseLock();
  try {
    assert.equal((await within("wait()", waiting)).code, 0);
  } finally {
    child.kill("SIGKILL");
  }
  assert.equal(first + await countBytes(child.stdout), 4 * MiB);
});

// ---- descriptors of streams nobody reads (item 19)

test("50 piped stdouts never read leave no descriptor behind, waited or not", async () => {
  await spawnHandle("true").wait();
  await sleep(50);
  const before = openFds();
  for (let i = 0; i < 50; i++) {
    const child = spawnHandle("echo", [String(i)], { stdout: "piped", stderr: "piped" });
    await child.wait();
  }
  await collectGarbage();
  assert.deepEqual(newPipes(before), [], "after 50 waited children");
  // Never waited: the handles are dropped while the children run.
  const pids: number[] = [];
  for (let i = 0; i < 50; i++) pids.push(spawnHandle("echo", [String(i)], { stdout: "piped" }).pid);
  await within(
    "the exits",
    (async () => {
      while (pids.some((pid) => existsSync(`/proc/${pid}`))) await sleep(10);
    })(),
  );
  await sleep(100);
  await collectGarbage();
  assert.deepEqual(newPipes(before), [], "after 50 dropped handles");
});

// ---- stdin from bytes, Blob, Response or a stream (item 21)

test("stdin from a Uint8Array, ArrayBuffer, Blob, Response or ReadableStream is pumped in; child.stdin is null", async () => {
  const data = pattern(3 * MiB + 7);
  const expected = sha256(data);
  const sources: [string, () => unknown][] = [
    ["Uint8Array", () => data],
    ["ArrayBuffer", () => data.slice().buffer],
    ["Blob", () => new Blob([data])],
    ["Response", () => new Response(data)],
    ["ReadableStream", () => new Blob([data]).stream()],
  ];
  for (const [name, source] of sources) {
    const child = spawnHandle("cat", [], { stdin: source() as Blob, stdout: "piped" });
    assert.equal(child.stdin, null, name);
    assert.equal(sha256(await child.stdout.bytes()), expected, name);
    assert.equal((await child.wait()).code, 0, name);
  }
  const strings = new ReadableStream<string>({
    start(controller) {
      controller.enqueue("text ");
      controller.enqueue("chunks");
      controller.close();
    },
  });
  const child = spawnHandle("cat", [], { stdin: strings, stdout: "piped" });
  assert.equal(await child.stdout.text(), "text chunks");
});

test("input on spawnHandle; input with stdin is a TypeError and nothing starts", async () => {
  const child = spawnHandle("cat", [], { input: "x", stdout: "piped" });
  assert.equal(child.stdin, null);
  assert.equal(await child.stdout.text(), "x");
  const marker = `/tmp/ph-input-${process.pid}-${Date.now()}`;
  for (const stdin of ["piped", "null", new Uint8Array(1)] as const) {
    assert.throws(
      () => spawnHandle("touch", [marker], { input: "x", stdin }),
      (e: unknown) => e instanceof TypeError && /"input"/.test(e.message) && /"stdin"/.test(e.message),
    );
  }
  // A string is a mode name, never text.
  assert.throws(() => spawnHandle("touch", [marker], { stdin: "text" as "piped" }), TypeError);
  assert.equal(existsSync(marker), false);
});

nativeTest(
  "a bad stdin source, input or maxBuffer is a typed error naming the option, and nothing starts",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const marker = `/tmp/ph-bad-stdin-${process.pid}-${Date.now()}`;
    const locked = new ReadableStream<Uint8Array>();
    locked.getReader();
    const used = new Response("x");
    await used.text();
    const cases: [object, RegExp, typeof TypeError | typeof RangeError][] = [
      [{ stdin: locked }, /"stdin".*locked/, TypeError],
      [{ stdin: used }, /"stdin".*used/, TypeError],
      [{ input: 42 }, /"input"/, TypeError],
      [{ maxBuffer: -1 }, /"maxBuffer"/, RangeError],
      [{ maxBuffer: 1.5 }, /"maxBuffer"/, RangeError],
    ];
    for (const [options, message, type] of cases) {
      assert.throws(
        () => spawnHandle("touch", [marker], options),
        (e: unknown) => e instanceof type && message.test(e.message),
        JSON.stringify(Object.keys(options)),
      );
    }
    // The sync helpers block the thread: bytes they can write, a Blob or a stream they cannot read.
    for (const stdin of [new Blob(["x"]), new Blob(["x"]).stream()]) {
      assert.throws(
        () => runSync("touch", [marker], { stdin }),
        (e: unknown) => e instanceof TypeError && /"stdin"/.test(e.message),
      );
    }
    assert.equal(existsSync(marker), false);
    assert.equal(decode(outputSync("cat", [], { stdin: new TextEncoder().encode("sync") }).stdout), "sync");
  },
);

test("a child that exits without reading stdin: pumping stops, no unhandled rejection, the source is cancelled", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(64 * 1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const head = spawnHandle("head", ["-c", "10"], { stdin: endless, stdout: "piped" });
    assert.equal((await head.stdout.bytes()).length, 10);
    assert.equal((await head.wait()).code, 0);
    for (const stdin of [new Uint8Array(8 * MiB), new Blob([new Uint8Array(8 * MiB)])]) {
      assert.equal((await spawnHandle("true", [], { stdin }).wait()).code, 0);
    }
    await sleep(200);
    assert.equal(cancelled, true, "the endless source was not cancelled");
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a stdin pump does not keep the script alive once the child has exited", async () => {
  const start = performance.now();
  const result = await runFixture("event_loop.ts", ["stdin-pump"]);
  const ms = performance.now() - start;
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { codes: [0, 0] });
  // The background sleep holds the pipe for 3 s; the script must not wait for it.
  assert.ok(ms < 2500, `the script took ${ms.toFixed(0)} ms`);
});
