import assert from "node:assert/strict";
import { spawnHandle } from "../mod.ts";
import { openFds, readAll, sleep, test } from "./harness.ts";

const MB = 1024 * 1024;

function pattern(offset: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = ((offset + i) * 31 + ((offset + i) >> 16)) & 0xff;
  return bytes;
}

test("100 MB through cat both ways, without deadlock, byte for byte", async () => {
  const total = 100 * MB;
  const chunk = 256 * 1024;
  const child = spawnHandle("cat", [], { stdin: "piped", stdout: "piped" });
  const writing = (async () => {
    const writer = child.stdin!.getWriter();
    for (let offset = 0; offset < total; offset += chunk) await writer.write(pattern(offset, chunk));
    await writer.close();
  })();
  let received = 0;
  let mismatch = -1;
  const reader = child.stdout!.getReader();
  const expected = pattern(0, chunk * 2);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (mismatch < 0) {
      // Spot-check every chunk against the pattern (a full compare of 100 MB is slow in JS).
      for (const i of [0, value.length >> 1, value.length - 1]) {
        const at = received + i;
        if (value[i] !== (((at * 31) + (at >> 16)) & 0xff)) mismatch = at;
      }
    }
    received += value.length;
  }
  await writing;
  assert.equal(expected.length, chunk * 2);
  assert.equal(mismatch, -1, `byte ${mismatch} differs`);
  assert.equal(received, total);
  assert.equal((await child.wait()).code, 0);
});

test("a child that writes 100 MB before anyone reads: all bytes arrive, EOF after", async () => {
  const child = spawnHandle("head", ["-c", String(100 * MB), "/dev/zero"], { stdout: "piped" });
  await sleep(50);
  let received = 0;
  for await (const chunk of child.stdout!) received += chunk.length;
  assert.equal(received, 100 * MB);
  assert.equal((await child.wait()).code, 0);
});

test("stdout and stderr are separate pipes; EOF arrives when the child closes them", async () => {
  const child = spawnHandle("sh", ["-c", "echo out; echo err >&2"], { stdout: "piped", stderr: "piped" });
  const [out, err] = await Promise.all([readAll(child.stdout!), readAll(child.stderr!)]);
  assert.equal(new TextDecoder().decode(out), "out\n");
  assert.equal(new TextDecoder().decode(err), "err\n");
  assert.equal((await child.wait()).code, 0);
});

test("a child that closes stdout but keeps running: EOF now, exit later", async () => {
  const child = spawnHandle("sh", ["-c", "echo early; exec >&-; sleep 0.3; exit 2"], { stdout: "piped" });
  const text = new TextDecoder().decode(await readAll(child.stdout!));
  assert.equal(text, "early\n");
  assert.equal(child.waitNonblock().exited, false);
  assert.equal((await child.wait()).code, 2);
});

test('stdin "null" reads EOF at once; stdio defaults to inherit', async () => {
  const child = spawnHandle("cat", [], { stdin: "null", stdout: "piped" });
  assert.equal((await readAll(child.stdout!)).length, 0);
  assert.equal((await child.wait()).code, 0);
  const plain = spawnHandle("true");
  assert.deepEqual([plain.stdin, plain.stdout, plain.stderr], [null, null, null]);
  await plain.wait();
});

test("no pipe end leaks into other children: a second child has only 0, 1, 2", async () => {
  const first = spawnHandle("cat", [], { stdin: "piped", stdout: "piped", stderr: "piped" });
  const second = spawnHandle("sleep", ["5"], { stdin: "null" });
  await sleep(100);
  const fds = [...openFds(second.pid).keys()].sort((a, b) => a - b);
  assert.deepEqual(fds, [0, 1, 2]);
  // Closing the first child's stdin gives it EOF at once although the second still runs.
  await first.stdin!.close();
  assert.equal((await readAll(first.stdout!)).length, 0);
  assert.equal((await first.wait()).code, 0);
  assert.equal(second.waitNonblock().exited, false);
  second.sendSignal("KILL");
  await second.wait();
});

test("the host's pipe ends are closed once the streams finish", async () => {
  spawnHandle("true").waitSync();
  // Let Bun's wake-up reader (which holds a dup of the wake pipe) finish closing.
  await sleep(50);
  const before = openFds();
  for (let i = 0; i < 20; i++) {
    const child = spawnHandle("sh", ["-c", "cat; echo done >&2"], { stdin: "piped", stdout: "piped", stderr: "piped" });
    const writer = child.stdin!.getWriter();
    await writer.write(new TextEncoder().encode("hello"));
    await writer.close();
    const [out] = await Promise.all([readAll(child.stdout!), readAll(child.stderr!)]);
    assert.equal(new TextDecoder().decode(out), "hello");
    await child.wait();
  }
  await sleep(50);
  // A leak is a descriptor that appeared; one from an earlier test may close meanwhile.
  assert.deepEqual([...openFds()].filter(([fd]) => !before.has(fd)), [], "pipe ends leaked");
});

test('piped stdio are pipes, so the child can reopen them as "/dev/stdin" and "/dev/stdout"', async () => {
  // Runtimes that use socketpairs (Bun.spawn, node:child_process) fail this with ENXIO.
  const child = spawnHandle("sh", ["-c", "stat -L -c %F /dev/stdin /dev/stdout; cat /dev/stdin > /dev/stdout"], {
    stdin: "piped",
    stdout: "piped",
  });
  const writer = child.stdin!.getWriter();
  await writer.write(new TextEncoder().encode("through /dev/stdin\n"));
  await writer.close();
  const text = new TextDecoder().decode(await readAll(child.stdout!));
  assert.equal(text, "fifo\nfifo\nthrough /dev/stdin\n");
  assert.equal((await child.wait()).code, 0);
});
