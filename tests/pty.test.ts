import assert from "node:assert/strict";
import { readFileSync, readlinkSync } from "node:fs";
import { outputSync, type ProcessReadableStream, run, runSync, SpawnError, spawnHandle } from "../mod.ts";
import { LAUNCH_SIGCHLD, nativeTest, NOT_PRIVATE, openFds, runFixture, RUNTIME, test, within } from "./harness.ts";

const NOT_RUNTIME = "the runtime backend refuses pty";
const encoder = new TextEncoder();

/** Reads `stream` until the text read so far contains `marker`; returns that text. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, marker: string, seen = ""): Promise<string> {
  const decoder = new TextDecoder();
  let text = seen;
  while (!text.includes(marker)) {
    const { done, value } = await within(`waiting for ${JSON.stringify(marker)}`, reader.read());
    if (done) throw new Error(`the stream ended before ${JSON.stringify(marker)}; read ${JSON.stringify(text)}`);
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

/** Descriptors of this process that are a terminal: the slaves under /dev/pts and the masters. */
function terminalFds(): string[] {
  return [...openFds().values()].filter((target) => target.startsWith("/dev/pts/") || target === "/dev/ptmx");
}

nativeTest("a pty child sees a terminal of the given size on stdin, stdout and stderr", NOT_RUNTIME, async () => {
  const child = spawnHandle("sh", ["-c", "test -t 0 && test -t 1 && test -t 2 && stty size"], {
    pty: { cols: 120, rows: 40 },
  });
  // Typed: stdout and stdin are the terminal's streams, stderr is none.
  const stdout: ProcessReadableStream = child.stdout;
  const stderr: null = child.stderr;
  assert.equal(stderr, null);
  assert.equal(await stdout.text(), "40 120\r\n");
  assert.equal((await child.wait()).code, 0);

  const plain = spawnHandle("stty", ["size"], { pty: true });
  assert.equal(await plain.stdout.text(), "24 80\r\n");
  assert.equal((await plain.wait()).code, 0);
});

nativeTest(
  "stdin, stdout and stderr of a pty child are one /dev/pts/N, which the host does not hold after spawn",
  NOT_RUNTIME,
  async () => {
    const before = terminalFds();
    const child = spawnHandle("sh", ["-c", "echo ready; read line; echo got $line"], { pty: true });
    const reader = child.stdout.getReader();
    const seen = await readUntil(reader, "ready");
    const links = [0, 1, 2].map((fd) => readlinkSync(`/proc/${child.pid}/fd/${fd}`));
    assert.match(links[0], /^\/dev\/pts\/\d+$/);
    assert.deepEqual(links, [links[0], links[0], links[0]]);
    assert.equal([...openFds().values()].includes(links[0]), false, `the host holds ${links[0]}`);
    // The session is the child's, and the terminal is its controlling one.
    const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
    assert.equal(Number(stat[3]), child.pid, "session id");
    assert.equal(Number(stat[5]), child.pid, "foreground process group of its terminal");

    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("pong\n"));
    assert.match(await readUntil(reader, "got pong", seen), /got pong\r\n$/);
    assert.equal((await child.wait()).code, 0);
    assert.equal((await reader.read()).done, true);
    // Every descriptor of the terminal is gone once the exit and the end were seen.
    assert.equal(child.resize(90, 20), false);
    assert.deepEqual(terminalFds(), before);
  },
);

nativeTest("resize() reaches a WINCH trap in the child with the new size", NOT_RUNTIME, async () => {
  const child = spawnHandle("sh", [
    "-c",
    "trap 'echo size $(stty size)' WINCH; echo ready; while :; do sleep 0.05; done",
  ], {
    pty: { cols: 80, rows: 24 },
  });
  const reader = child.stdout.getReader();
  let seen = await readUntil(reader, "ready");
  assert.equal(child.resize(100, 30), true);
  seen = await readUntil(reader, "size 30 100", seen);
  assert.equal(child.resize(132, 43), true);
  await readUntil(reader, "size 43 132", seen);
  child.sendSignal("SIGKILL");
  assert.equal((await child.wait()).signal, "SIGKILL");
  assert.equal(child.resize(100, 30), false);
  reader.releaseLock();
});

nativeTest("an interactive bash has job control on its terminal", NOT_RUNTIME, async () => {
  const bash = spawnHandle("bash", ["--norc", "--noprofile", "-i"], {
    pty: { cols: 100, rows: 30 },
    env: { PS1: "$ " },
  });
  const reader = bash.stdout.getReader();
  let seen = await readUntil(reader, "$ ");
  await bash.stdin.getWriter().write(encoder.encode("stty size; echo job-$((6*7)); exit 7\n"));
  seen = await readUntil(reader, "job-42", seen);
  assert.match(seen, /30 100\r\n/);
  // Without a controlling terminal bash says "no job control in this shell".
  assert.doesNotMatch(seen, /job control|terminal process group/);
  assert.equal((await bash.wait()).code, 7);
  reader.releaseLock();
  await bash.stdout.cancel();
});

nativeTest('writing "\\x03" to stdin ends `sleep 30` with SIGINT', NOT_RUNTIME, async () => {
  const child = spawnHandle("sleep", ["30"], { pty: true });
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode("\x03"));
  const status = await within("sleep after ^C", child.wait());
  assert.equal(status.signal, "SIGINT");
  assert.equal(status.code, null);
  // The line discipline echoes ^C; then the stream ends without an error.
  assert.equal(await child.stdout.text(), "^C");
});

nativeTest("output ends cleanly at the exit: the master's EIO is the end of the stream", NOT_RUNTIME, async () => {
  const child = spawnHandle("sh", ["-c", "printf 'one\\ntwo\\n'; exit 3"], { pty: true });
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) chunks.push(decoder.decode(chunk, { stream: true }));
  assert.equal(chunks.join(""), "one\r\ntwo\r\n");
  assert.equal((await child.wait()).code, 3);

  // Read only after the exit: the same bytes, drained, and the same clean end.
  const late = spawnHandle("echo", ["late"], { pty: true });
  await late.wait();
  assert.equal(await late.stdout.text(), "late\r\n");

  // output() collects it like any stdout.
  const collected = await spawnHandle("echo", ["both"], { pty: true }).output();
  assert.equal(new TextDecoder().decode(collected.stdout), "both\r\n");
  assert.equal(collected.status.success, true);
});

nativeTest(
  "a write to a full terminal waits without blocking the thread and fails at the exit",
  NOT_RUNTIME,
  async () => {
    // Raw mode: the kernel keeps what the child does not read, up to its buffers, then waits.
    const child = spawnHandle("sh", ["-c", "stty raw -echo; echo ready; sleep 30"], { pty: true });
    const reader = child.stdout.getReader();
    await readUntil(reader, "ready");
    const writer = child.stdin.getWriter();
    let settled = false;
    const write = writer.write(new Uint8Array(1 << 20).fill(97)).finally(() => settled = true);
    write.catch(() => {});
    // Timers still run: the thread is not blocked in write(2).
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(settled, false, "1 MiB cannot fit in the terminal of a child that reads nothing");
    child.sendSignal("SIGKILL");
    await child.wait();
    await assert.rejects(write, (error: Error & { code?: string }) => error.code === "ERR_STREAM_DESTROYED");
    reader.releaseLock();
    await child.stdout.cancel();
  },
);

nativeTest(
  "a pty child is as private as any: no SIGCHLD in the host, waitpid(-1) there sees nothing",
  NOT_RUNTIME,
  async () => {
    const result = await runFixture("pty_host.ts");
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.ok(report.sigchld <= LAUNCH_SIGCHLD, `${report.sigchld} SIGCHLD`);
    assert.deepEqual(report.stolen, []);
    assert.ok(report.echild > 0, "the host's waitpid(-1) must have seen no children");
    assert.equal(report.code, 5);
    assert.match(report.text, /20 90\r\n/);
    assert.match(report.text, /got ping\r\n/);
  },
  { notPdfork: NOT_PRIVATE },
);

test("pty cannot be combined with other stdio, input, fds 0 to 2, setsid: false or pgroup", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ stdin: "piped" }, "stdin"],
    [{ stdout: "null" }, "stdout"],
    [{ stderr: "stdout" }, "stderr"],
    [{ stdout: 1 }, "stdout"],
    [{ input: "x" }, "input"],
    [{ fds: { 1: "null" } }, "fds.1"],
    [{ setsid: false }, "setsid"],
    [{ pgroup: true }, "pgroup"],
  ];
  const before = terminalFds();
  for (const [options, name] of cases) {
    assert.throws(
      () => spawnHandle("true", [], { pty: true, ...options }),
      (error: Error) =>
        error instanceof TypeError && error.message.includes(`"${name}"`) && error.message.includes("pty"),
      name,
    );
  }
  assert.throws(() => spawnHandle("true", [], { pty: { cols: 0 } }), RangeError);
  assert.throws(() => spawnHandle("true", [], { pty: { rows: 65536 } }), RangeError);
  assert.throws(() => spawnHandle("true", [], { pty: "yes" as unknown as true }), TypeError);
  assert.throws(
    () => spawnHandle("true", [], { pty: { cols: 80, width: 1 } as unknown as true }),
    /unknown option "width"/,
  );
  // Nothing was opened for any of them.
  assert.deepEqual(terminalFds(), before);
});

nativeTest(
  'stdio other than the terminal\'s and explicit "inherit" or setsid: true are accepted',
  NOT_RUNTIME,
  async () => {
    const child = spawnHandle("sh", ["-c", "echo extra >&3; stty size"], {
      pty: { cols: 50, rows: 10 },
      stdin: "inherit",
      setsid: true,
      fds: { 3: "piped" },
    });
    assert.equal(await child.fdOutputs[3].text(), "extra\n");
    assert.equal(await child.stdout.text(), "10 50\r\n");
    assert.equal((await child.wait()).code, 0);
  },
);

test("resize() on a handle spawned without pty is a TypeError", async () => {
  const plain = spawnHandle("true");
  assert.throws(() => plain.resize(80, 24), (error: Error & { code?: string }) => {
    return error instanceof TypeError && error.code === "ERR_NOT_A_TERMINAL" && error.message.includes("pty");
  });
  await plain.wait();
});

nativeTest("resize() with a size out of range is a RangeError", NOT_RUNTIME, async () => {
  const child = spawnHandle("sleep", ["30"], { pty: true });
  assert.throws(() => child.resize(0, 24), RangeError);
  assert.throws(() => child.resize(80, 1.5), RangeError);
  child.sendSignal("SIGKILL");
  await child.wait();
  await child.stdout.text();
});

test("run(), runSync() and outputSync() refuse pty with a TypeError naming it", async () => {
  const before = terminalFds();
  const named = (error: Error) => error instanceof TypeError && error.message.startsWith('Invalid option "pty"');
  assert.throws(() => runSync("true", [], { pty: true }), named);
  assert.throws(() => outputSync("true", [], { pty: { cols: 10 } }), named);
  await assert.rejects(run("true", [], { pty: true }), named);
  assert.deepEqual(terminalFds(), before);
});

nativeTest("a pty spawn that fails leaves no descriptor of its terminal behind", NOT_RUNTIME, () => {
  const before = terminalFds();
  assert.throws(() => spawnHandle("no-such-command-here", [], { pty: true }), (error: Error) => {
    return error instanceof SpawnError && error.code === "ENOENT";
  });
  assert.deepEqual(terminalFds(), before);
});

test("the runtime backend refuses pty with a TypeError naming it", () => {
  assert.throws(() => spawnHandle("true", [], { pty: true }), (error: Error & { code?: string }) => {
    return error instanceof TypeError && error.code === "ERR_BACKEND_OPTION" && error.message.includes('"pty"');
  });
}, { ignore: !RUNTIME });
