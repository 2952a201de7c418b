import assert from "node:assert/strict";
import { spawn as nodeSpawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { outputSync, SpawnError, spawnHandle } from "../mod.ts";
import { libc } from "../ffi/libc.ts";
import { nativeTest, openFds, readAll, sleep, test } from "./harness.ts";

/** Why the pipe-size tests skip in the portable build: only Linux sizes a pipe (F_SETPIPE_SZ). */
const PIPE_SIZES_LINUX = "pipes keep the system's size there (macOS and FreeBSD cannot grow one)";

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

nativeTest(
  "no pipe end leaks into other children: a second child has only 0, 1, 2",
  "the runtime's spawn decides which descriptors a child gets",
  async () => {
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
  },
);

test("the host's pipe ends are closed once the streams finish", async () => {
  await spawnHandle("true").wait();
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

nativeTest(
  'piped stdio are pipes, so the child can reopen them as "/dev/stdin" and "/dev/stdout"',
  "the runtime's own stdio: Bun's pipes are sockets",
  async () => {
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
  },
);

const F_GETPIPE_SZ = 1032;
const LARGE_PIPE = 1 << 20;

/** The buffer size of each of the host's ends of the child's pipes at `childFds`. */
async function pipeSizes(pid: number, childFds: number[]): Promise<number[]> {
  const c = await libc();
  const host = openFds();
  const child = openFds(pid);
  return childFds.map((fd) => {
    // Bun's FileSink works on a copy of the descriptor: any host end will do, one pipe.
    const ends = [...host].filter(([, link]) => link === child.get(fd)).map(([n]) => n);
    assert.ok(ends.length >= 1, `no host end for the child's fd ${fd} (${child.get(fd)})`);
    const [size, errno] = c.fcntl(ends[0], F_GETPIPE_SZ, 0);
    assert.equal(errno, 0);
    return size;
  });
}

/** Spawns cat with both ends piped, writes `bytes` and keeps the first read; cat stays alive. */
async function feedCat(bytes: number) {
  const child = spawnHandle("cat", [], { stdin: "piped", stdout: "piped" });
  const writer = child.stdin!.getWriter();
  await writer.write(new Uint8Array(bytes).fill(7));
  const reader = child.stdout!.getReader();
  let read = 0;
  while (read < bytes) read += (await reader.read()).value!.length;
  return {
    child,
    async finish() {
      await writer.close();
      while (!(await reader.read()).done);
      await child.wait();
    },
  };
}

nativeTest(
  "pipes that carry little keep the kernel's size; bulk ones grow to 1 MiB",
  "pipe sizes are the runtime's",
  async () => {
    const small = await feedCat(100);
    const bulk = await feedCat(256 * 1024);
    try {
      const [smallIn, smallOut] = await pipeSizes(small.child.pid, [0, 1]);
      assert.ok(smallIn < LARGE_PIPE && smallOut < LARGE_PIPE, `small: ${smallIn}, ${smallOut}`);
      assert.deepEqual(await pipeSizes(bulk.child.pid, [0, 1]), [LARGE_PIPE, LARGE_PIPE]);
    } finally {
      await small.finish();
      await bulk.finish();
    }
  },
  { notPortable: PIPE_SIZES_LINUX },
);

nativeTest(
  "at most 16 pipes hold 1 MiB at once, and closed ones give their place back",
  "pipe sizes are the runtime's",
  async () => {
    // 12 bulk cats: 24 pipes that all carried bulk data, but only 16 may grow (16 MiB, a
    // quarter of the kernel's default pipe-user-pages-soft).
    const cats = await Promise.all(Array.from({ length: 12 }, () => feedCat(128 * 1024)));
    let sizes: number[] = [];
    try {
      for (const cat of cats) sizes.push(...await pipeSizes(cat.child.pid, [0, 1]));
    } finally {
      for (const cat of cats) await cat.finish();
    }
    assert.equal(sizes.filter((s) => s === LARGE_PIPE).length, 16, `sizes: ${sizes}`);
    // All closed now: a new bulk pipe gets its place.
    const next = await feedCat(128 * 1024);
    try {
      sizes = await pipeSizes(next.child.pid, [0, 1]);
    } finally {
      await next.finish();
    }
    assert.deepEqual(sizes, [LARGE_PIPE, LARGE_PIPE]);
  },
  { notPortable: PIPE_SIZES_LINUX },
);

nativeTest(
  "outputSync grows a bulk pipe too: the child sees 1 MiB after writing 300 kB",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  () => {
    // The child's write blocks until the host reads; the first full read grows the pipe.
    const script = "import fcntl,sys; sys.stdout.buffer.write(bytes(300000)); sys.stdout.flush(); " +
      "print(fcntl.fcntl(1, 1032))";
    const out = outputSync("python3", ["-c", script], { stdout: "piped" });
    assert.equal(out.status.code, 0);
    assert.equal(out.stdout.length, 300000 + String(LARGE_PIPE).length + 1);
    assert.equal(new TextDecoder().decode(out.stdout.subarray(300000)), `${LARGE_PIPE}\n`);
    const small = outputSync("python3", ["-c", "import fcntl; print(fcntl.fcntl(1, 1032))"], { stdout: "piped" });
    assert.ok(Number(new TextDecoder().decode(small.stdout)) < LARGE_PIPE);
  },
  { notPortable: PIPE_SIZES_LINUX },
);

/** A new FIFO, and a process that opens it (`<` or `>`) after 3 s, so a spawner blocked in the open ends. */
async function fifoWithValve(direction: "<" | ">"): Promise<{ path: string; valve: ReturnType<typeof nodeSpawn> }> {
  const path = `${mkdtempSync("/tmp/ph-fifo-")}/fifo`;
  assert.equal((await spawnHandle("mkfifo", [path]).wait()).code, 0);
  const valve = nodeSpawn("sh", ["-c", `sleep 3; exec 3${direction}"$0"`, path], { stdio: "ignore" });
  return { path, valve };
}

nativeTest(
  "stdin from a FIFO without a writer blocks nobody: the child reads EOF, an earlier child's exit arrives meanwhile",
  "a file as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const { path, valve } = await fifoWithValve(">");
    try {
      const start = performance.now();
      const early = spawnHandle("sleep", ["0.2"]);
      const child = spawnHandle("sh", ["-c", "grep ^flags: /proc/self/fdinfo/0; cat"], {
        stdin: { path },
        stdout: "piped",
      });
      const spawnMs = performance.now() - start;
      assert.equal((await early.wait()).code, 0);
      const earlyMs = performance.now() - start;
      const output = await child.text();
      assert.equal((await child.wait()).code, 0);
      assert.ok(spawnMs < 1000, `the spawn took ${spawnMs.toFixed(0)} ms`);
      assert.ok(earlyMs < 1500, `the earlier child's exit arrived after ${earlyMs.toFixed(0)} ms`);
      // Blocking again once open (O_NONBLOCK was for the open only), and at EOF: cat printed nothing.
      const flags = parseInt(/^flags:\s+(\d+)\n$/.exec(output)![1], 8);
      assert.equal(flags & 0o4000, 0, `O_NONBLOCK left set: ${output}`);
    } finally {
      valve.kill("SIGKILL");
    }
  },
);

nativeTest(
  "stdout to a FIFO without a reader fails at once: SpawnError ENXIO, syscall open, the path",
  "a file as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const { path, valve } = await fifoWithValve("<");
    try {
      const start = performance.now();
      assert.throws(
        () => spawnHandle("echo", ["x"], { stdout: { path } }),
        (e: unknown) => e instanceof SpawnError && e.code === "ENXIO" && e.syscall === "open" && e.path === path,
      );
      const ms = performance.now() - start;
      assert.ok(ms < 1000, `the failure took ${ms.toFixed(0)} ms`);
    } finally {
      valve.kill("SIGKILL");
    }
  },
);
