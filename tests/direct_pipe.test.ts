/**
 * `stdin: other.stdout`: one child's output straight into another's input, the same kernel
 * pipe with no copy through JavaScript; a stream that is not ours is still pumped.
 */
import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { spawnHandle } from "../mod.ts";
import { nativeTest, test } from "./harness.ts";

nativeTest(
  "stdin: seq.stdout gives wc the same pipe: 1,000,000 lines arrive, the stream is locked for JavaScript",
  "the runtime backend pumps one child's output into the other",
  async () => {
    const seq = spawnHandle("seq", ["1", "1000000"], { stdout: "piped" });
    const wc = spawnHandle("wc", ["-l"], { stdin: seq.stdout, stdout: "piped" });
    // The same kernel pipe on both sides (read while both still run, or at least wc does).
    const written = readlinkSync(`/proc/${seq.pid}/fd/1`, "utf8");
    const read = readlinkSync(`/proc/${wc.pid}/fd/0`, "utf8");
    assert.match(written, /^pipe:\[\d+\]$/);
    assert.equal(read, written);
    assert.equal(seq.stdout.locked, true);
    assert.equal((await wc.stdout.text()).trim(), "1000000");
    assert.equal((await seq.wait()).code, 0);
    assert.equal((await wc.wait()).code, 0);
  },
);

test("stdin: a stream already read from is pumped through JavaScript instead, from the next unread byte", async () => {
  const producer = spawnHandle("printf", ["first\\nsecond\\nthird\\n"], { stdout: "piped" });
  const lines = producer.lines();
  assert.equal((await lines.next()).value, "first");
  await lines.return(undefined as never);
  const cat = spawnHandle("cat", [], { stdin: producer.stdout, stdout: "piped" });
  assert.equal(await cat.stdout.text(), "second\nthird\n");
  assert.equal((await cat.wait()).code, 0);
});

test("stdin: a JavaScript ReadableStream is pumped by the library", async () => {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 1000; i++) controller.enqueue(new TextEncoder().encode(`${i}\n`));
      controller.close();
    },
  });
  const wc = spawnHandle("wc", ["-l"], { stdin: source, stdout: "piped" });
  assert.equal((await wc.stdout.text()).trim(), "1000");
});

test("a failed spawn leaves the handed stream readable: nothing was handed over", async () => {
  const seq = spawnHandle("seq", ["1", "3"], { stdout: "piped" });
  assert.throws(() => spawnHandle("/nonexistent/program", [], { stdin: seq.stdout }));
  assert.equal(seq.stdout.locked, false);
  assert.equal(await seq.stdout.text(), "1\n2\n3\n");
});
