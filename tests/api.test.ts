import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import {
  MaxBufferError,
  outputSync,
  ProcessError,
  run,
  runSync,
  type Signal,
  signalNumber,
  SpawnError,
  spawnHandle,
  UnknownSignalError,
} from "../mod.ts";
import { nativeTest, readAll, sleep, test, within } from "./harness.ts";
import { typedStreams } from "./types.ts";

const dir = mkdtempSync("/tmp/ph-api-");
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
let serial = 0;
const scratch = (name: string) => `${dir}/${name}-${serial++}`;

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs `fn`, returning what it returned and how long it took in milliseconds. */
function timed<T>(fn: () => T): [T, number] {
  const start = performance.now();
  const value = fn();
  return [value, performance.now() - start];
}

async function timedAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, performance.now() - start];
}

// ---- option names (issue 15, item 10)

nativeTest(
  "timeout sends killSignal, forceKillAfter escalates; 0 and Infinity mean no timeout",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sleep", ["5"], { timeout: 100 });
    assert.equal((await child.wait()).signal, "SIGTERM");
    assert.equal(child.timedOut, true);
    const stubborn = spawnHandle("sh", ["-c", 'trap "" TERM; exec sleep 5'], { timeout: 100, forceKillAfter: 100 });
    assert.equal((await stubborn.wait()).signal, "SIGKILL");
    for (const timeout of [0, Infinity]) {
      const quiet = spawnHandle("sleep", ["0.3"], { timeout });
      assert.equal((await quiet.wait()).code, 0, String(timeout));
      assert.equal(quiet.timedOut, false);
      assert.equal(runSync("sleep", ["0.1"], { timeout }).timedOut, false);
    }
  },
);

test("the old names timeoutMs and forceKillAfterMs throw a TypeError naming the new ones", async () => {
  const renamed: [object, RegExp][] = [
    [{ timeoutMs: 100 }, /"timeoutMs" was renamed "timeout"/],
    [{ forceKillAfterMs: 100 }, /"forceKillAfterMs" was renamed "forceKillAfter"/],
  ];
  for (const [options, message] of renamed) {
    const check = (e: unknown) => e instanceof TypeError && message.test(e.message);
    assert.throws(() => spawnHandle("true", [], options), check);
    assert.throws(() => runSync("true", [], options), check);
    assert.throws(() => outputSync("true", [], options), check);
    await assert.rejects(run("true", [], options), check);
  }
});

nativeTest(
  '"pipe" is accepted wherever "piped" is',
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sh", ["-c", "cat; echo err >&2; echo three >&3"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      fds: { 3: "pipe" },
    });
    const writer = child.stdin!.getWriter();
    await writer.write(new TextEncoder().encode("in"));
    await writer.close();
    const [out, err, three] = await Promise.all([
      readAll(child.stdout!),
      readAll(child.stderr!),
      readAll(child.fdOutputs[3]),
    ]);
    assert.deepEqual([decode(out), decode(err), decode(three)], ["in", "err\n", "three\n"]);
    assert.equal((await child.wait()).code, 0);
    assert.equal((await run("echo", ["hi"], { stdout: "pipe" })).stdout, "hi\n");
    assert.equal(runSync("echo", ["hi"], { stdout: "pipe" }).stdout, "hi\n");
  },
);

nativeTest(
  "kill() is sendSignal: SIGTERM by default, any signal, the same options",
  "pgroup is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sleep", ["5"]);
    assert.equal(child.kill(), true);
    assert.equal((await child.wait()).signal, "SIGTERM");
    assert.equal(child.kill(), false);
    const other = spawnHandle("sleep", ["5"]);
    assert.equal(other.kill("SIGINT"), true);
    assert.equal((await other.wait()).signal, "SIGINT");
    const group = spawnHandle("sh", ["-c", "sleep 5 & wait"], { pgroup: true });
    await sleep(50);
    assert.equal(group.kill(9, { group: true }), true);
    assert.equal((await group.wait()).signal, "SIGKILL");
  },
);

// ---- Signal type and sendSignal options (items 11, 13)

test("Signal is a union of real names: unknown ones fail to type-check and throw", async () => {
  const names: Signal[] = ["SIGTERM", "TERM", "term", "SIGRTMIN+3", "RTMIN+3", "SIGRTMAX-1", "SIGRTMAX", "SIGCLD"];
  assert.deepEqual(names.map((name) => signalNumber(name)), [15, 15, 15, 37, 37, 63, 64, 17]);
  const child = spawnHandle("sleep", ["5"]);
  assert.equal(child.sendSignal("SIGCONT"), true);
  // @ts-expect-error: "SIGFOO" is not a signal, so this must not type-check.
  assert.throws(() => child.sendSignal("SIGFOO"), UnknownSignalError);
  // @ts-expect-error: a real-time offset is a number.
  assert.throws(() => child.kill("SIGRTMIN+x"), UnknownSignalError);
  assert.equal(child.sendSignal("SIGKILL"), true);
  assert.equal((await child.wait()).signal, "SIGKILL");
});

nativeTest(
  "sendSignal's unknown option keys throw a TypeError naming the key, and nothing is sent",
  "pgroup is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sleep", ["5"], { pgroup: true });
    assert.throws(
      // @ts-expect-error: `subtree` is no option of sendSignal.
      () => child.sendSignal("SIGTERM", { subtree: true }),
      (e: unknown) => e instanceof TypeError && /unknown option "subtree"/.test(e.message),
    );
    assert.throws(
      // @ts-expect-error: nor of kill.
      () => child.kill("SIGTERM", { grop: true }),
      (e: unknown) => e instanceof TypeError && /"grop"/.test(e.message),
    );
    await sleep(100);
    assert.equal(child.waitNonblock().exited, false, "the child was signalled");
    child.kill("SIGKILL");
    await child.wait();
  },
);

// ---- killSignal 0 (item 18)

test("killSignal: 0 and killOnParentExit: 0 are refused: the null signal cannot kill", () => {
  for (const options of [{ killSignal: 0 }, { killOnParentExit: 0 }]) {
    const name = Object.keys(options)[0];
    assert.throws(
      () => spawnHandle("true", [], options),
      (e: unknown) => e instanceof TypeError && e.message.includes(`"${name}"`),
      name,
    );
    assert.throws(() => runSync("true", [], options), TypeError);
  }
  const child = spawnHandle("sleep", ["5"]);
  assert.equal(child.sendSignal(0), true, "0 still probes");
  child.kill("SIGKILL");
});

// ---- disposal (item 12)

test("await using: SIGTERM first, and the child's trap runs", async () => {
  const ready = scratch("ready");
  const trapped = scratch("trapped");
  let kept: ReturnType<typeof spawnHandle>;
  {
    await using child = spawnHandle("sh", [
      "-c",
      `trap 'echo term > ${trapped}; exit 7' TERM; touch ${ready}; while :; do sleep 0.05; done`,
    ]);
    kept = child;
    await until("the trap", () => existsSync(ready));
  }
  assert.equal(readFileSync(trapped, "utf8"), "term\n");
  assert.equal((await kept.wait()).code, 7);
});

test("await using: SIGKILL after forceKillAfter for a child that ignores SIGTERM (default 5 s)", async () => {
  for (const [forceKillAfter, atLeast, below] of [[300, 250, 3000], [undefined, 4500, 9000]] as const) {
    const ready = scratch("ready");
    let kept: ReturnType<typeof spawnHandle>;
    const [, ms] = await timedAsync(async () => {
      await using child = spawnHandle("sh", ["-c", `trap '' TERM; touch ${ready}; while :; do sleep 0.05; done`], {
        forceKillAfter,
      });
      kept = child;
      await until("the trap", () => existsSync(ready));
    });
    assert.equal((await kept!.wait()).signal, "SIGKILL");
    assert.ok(ms >= atLeast && ms < below, `disposal took ${ms} ms with forceKillAfter ${forceKillAfter}`);
  }
  // A child that is gone already is not waited for.
  const [, ms] = await timedAsync(async () => {
    await using child = spawnHandle("true");
    await child.wait();
  });
  assert.ok(ms < 1000, `${ms} ms`);
});

// ---- errors (item 14)

test("an abort rejects run() with the AbortSignal's reason as the cause", async () => {
  const controller = new AbortController();
  const reason = new Error("stop now");
  const pending = run("sleep", ["5"], { signal: controller.signal });
  controller.abort(reason);
  await assert.rejects(pending, (e: unknown) => {
    assert.ok(e instanceof ProcessError);
    assert.equal(e.aborted, true);
    assert.equal(e.cause, reason);
    return true;
  });
  const plain = new AbortController();
  const second = run("sleep", ["5"], { signal: plain.signal });
  plain.abort();
  await assert.rejects(second, (e: unknown) => e instanceof ProcessError && e.cause === plain.signal.reason);
});

nativeTest(
  "a program not found in PATH says so, shows the PATH and lists it in searchPath",
  "the runtime's spawn reports no PATH it searched",
  () => {
    const PATH = `${dir}/none:/nonexistent-ph`;
    assert.throws(() => spawnHandle("no-such-program-ph", [], { env: { PATH } }), (e: unknown) => {
      assert.ok(e instanceof SpawnError);
      assert.deepEqual([e.code, e.errno, e.syscall], ["ENOENT", 2, "execve"]);
      assert.match(e.message, /not found in \$PATH/);
      assert.ok(e.message.includes(PATH), e.message);
      assert.deepEqual(e.searchPath, [`${dir}/none`, "/nonexistent-ph"]);
      return true;
    });
    assert.throws(() => spawnHandle(`${dir}/missing`), (e: unknown) => {
      assert.ok(e instanceof SpawnError);
      assert.equal(e.code, "ENOENT");
      assert.equal(e.searchPath, undefined);
      assert.doesNotMatch(e.message, /PATH/);
      return true;
    });
  },
);

// ---- timeouts of the helpers (items 4, 16, 17)

nativeTest(
  "runSync: no timedOut for a child that exited at once while a grandchild holds the pipe",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const [result, ms] = timed(() => runSync("sh", ["-c", "sleep 3 & echo hi"], { timeout: 500 }));
    assert.deepEqual([result.timedOut, result.code, result.stdout], [false, 0, "hi\n"]);
    assert.ok(ms < 1500, `${ms} ms`);
    const [ran, runMs] = await timedAsync(() => run("sh", ["-c", "sleep 3 & echo hi"], { timeout: 500 }));
    assert.deepEqual([ran.timedOut, ran.code, ran.stdout], [false, 0, "hi\n"]);
    assert.ok(runMs < 1500, `${runMs} ms`);
  },
);

nativeTest(
  "sync helpers honour timeout and forceKillAfter when nothing is piped",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  () => {
    const quiet = { stdout: "null", stderr: "null" } as const;
    const [result, ms] = timed(() => outputSync("sleep", ["3"], { ...quiet, timeout: 100 }));
    assert.deepEqual([result.timedOut, result.status.signal], [true, "SIGTERM"]);
    assert.ok(ms < 1500, `${ms} ms`);
    const [stubborn, ms2] = timed(() =>
      outputSync("sh", ["-c", "trap '' TERM; sleep 3; sleep 3"], { ...quiet, timeout: 100, forceKillAfter: 200 })
    );
    assert.deepEqual([stubborn.timedOut, stubborn.status.signal], [true, "SIGKILL"]);
    assert.ok(ms2 >= 250 && ms2 < 2000, `${ms2} ms`);
    assert.throws(
      () => runSync("sleep", ["3"], { ...quiet, timeout: 100 }),
      (e: unknown) => e instanceof ProcessError && e.timedOut && e.signal === "SIGTERM",
    );
  },
);

nativeTest(
  "a timeout bounds the helpers though a grandchild holds the pipe; what was read is kept",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    for (
      const [script, timedOut] of [["printf A; sleep 3 & exit 0", false], [
        "printf A; sleep 3 & sleep 3",
        true,
      ]] as const
    ) {
      const [out, ms] = timed(() => outputSync("sh", ["-c", script], { timeout: 500 }));
      assert.deepEqual([decode(out.stdout), out.timedOut], ["A", timedOut], script);
      assert.ok(ms < 1500, `outputSync took ${ms} ms for ${script}`);
      const [settled, runMs] = await timedAsync(() => run("sh", ["-c", script], { timeout: 500 }).catch((e) => e));
      assert.deepEqual([settled.stdout, settled.timedOut], ["A", timedOut], script);
      if (timedOut) assert.ok(settled instanceof ProcessError);
      assert.ok(runMs < 1500, `run took ${runMs} ms for ${script}`);
    }
  },
);

nativeTest(
  "without a timeout or a kill the helpers read to EOF, as Node's execFile does",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const script = "printf A; (sleep 1; printf B) & exit 0";
    const [out, ms] = timed(() => outputSync("sh", ["-c", script]));
    assert.deepEqual([decode(out.stdout), out.status.code], ["AB", 0]);
    assert.ok(ms >= 900, `${ms} ms`);
    const [ran, runMs] = await timedAsync(() => run("sh", ["-c", script]));
    assert.equal(ran.stdout, "AB");
    assert.ok(runMs >= 900, `${runMs} ms`);
  },
);

nativeTest(
  "maxBuffer: a grandchild holding the pipe does not keep the helpers waiting",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const script = "sleep 3 & head -c 5000 /dev/zero; sleep 3";
    const [, ms] = timed(() =>
      assert.throws(
        () => outputSync("sh", ["-c", script], { maxBuffer: 100 }),
        (e: unknown) => e instanceof MaxBufferError,
      )
    );
    assert.ok(ms < 1500, `${ms} ms`);
    const [, runMs] = await timedAsync(() =>
      assert.rejects(run("sh", ["-c", script], { maxBuffer: 100 }), (e: unknown) => e instanceof ProcessError)
    );
    assert.ok(runMs < 1500, `${runMs} ms`);
  },
);

// ---- Infinity and AbortSignals in sync helpers (item 21)

nativeTest(
  "maxBuffer: Infinity means no limit",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const args = ["-c", "200000", "/dev/zero"];
    assert.equal((await run("head", args, { maxBuffer: Infinity })).stdout.length, 200_000);
    assert.equal(outputSync("head", args, { maxBuffer: Infinity }).stdout.length, 200_000);
    const child = spawnHandle("head", args, { stdout: "piped" });
    assert.equal((await child.output({ maxBuffer: Infinity })).stdout.length, 200_000);
    assert.throws(() => runSync("true", [], { maxBuffer: -1 }), RangeError);
  },
);

test("the sync helpers refuse an AbortSignal (nothing could abort them) and spawn nothing", () => {
  for (const signal of [new AbortController().signal, AbortSignal.abort()]) {
    const marker = scratch("spawned");
    for (const helper of [runSync, outputSync]) {
      assert.throws(
        () => helper("touch", [marker], { signal }),
        (e: unknown) => e instanceof TypeError && /"signal"/.test(e.message) && /run\(\)/.test(e.message),
      );
    }
    assert.equal(existsSync(marker), false);
  }
});

// ---- types that follow the options (item 11)

nativeTest(
  "piped streams are typed from the options: no null check needed (tests/types.ts, type-checked)",
  "a host descriptor number as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    assert.deepEqual(await typedStreams(), { text: "typed\n", code: 0 });
  },
);

// ---- misuse is an error (item 13)

test("output(), text() and lines() on streams that are not piped throw a TypeError saying so", async () => {
  const plain = spawnHandle("true");
  await assert.rejects(plain.output(), (e: unknown) => e instanceof TypeError && /not piped/.test(e.message));
  const errOnly = spawnHandle("sh", ["-c", "echo e >&2"], { stderr: "piped" });
  for (const call of [() => errOnly.text(), async () => await errOnly.lines().next()]) {
    await assert.rejects(call(), (e: unknown) => e instanceof TypeError && /stdout/.test(e.message));
  }
  // One piped output is enough for output().
  assert.equal(decode((await errOnly.output()).stderr), "e\n");
  await plain.wait();
});

test("output() and text() refuse at once while piped stdin is open and nobody writes it", async () => {
  const cat = spawnHandle("cat", [], { stdin: "piped", stdout: "piped" });
  for (const call of [() => cat.output(), () => cat.text()]) {
    await within(
      "the refusal",
      assert.rejects(call(), (e: unknown) => e instanceof TypeError && /stdin/.test(e.message)),
      2000,
    );
  }
  await cat.stdin.close();
  assert.equal((await cat.output()).status.code, 0);
  // Writing it meanwhile (the stream is locked by a writer) is the way to feed and collect at once.
  const fed = spawnHandle("cat", [], { stdin: "piped", stdout: "piped" });
  const writer = fed.stdin.getWriter();
  const text = fed.text();
  await writer.write(new TextEncoder().encode("fed"));
  await writer.close();
  assert.equal(await text, "fed");
});

// ---- input and stdin (item 21)

test("input together with stdin is a TypeError, for run() too, and nothing starts", async () => {
  const marker = scratch("spawned");
  const check = (e: unknown) => e instanceof TypeError && /"input"/.test(e.message) && /"stdin"/.test(e.message);
  assert.throws(() => spawnHandle("touch", [marker], { input: "x", stdin: "piped" }), check);
  assert.throws(() => runSync("touch", [marker], { input: "x", stdin: "inherit" }), check);
  await assert.rejects(run("touch", [marker], { input: "x", stdin: "null" }), check);
  assert.equal(existsSync(marker), false);
});

// ---- errors keep what users need (item 14)

nativeTest(
  "MaxBufferError from output() and outputSync() keeps the first maxBuffer bytes and the status",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const script = "printf err >&2; exec yes abc";
    const check = (e: unknown) => {
      assert.ok(e instanceof MaxBufferError);
      assert.equal(decode(e.stdout), "abc\n".repeat(250));
      assert.equal(decode(e.stderr), "err");
      assert.equal(e.status?.signal, "SIGKILL");
      return true;
    };
    const child = spawnHandle("sh", ["-c", script], { stdout: "piped", stderr: "piped" });
    await assert.rejects(child.output({ maxBuffer: 1000 }), check);
    assert.throws(() => outputSync("sh", ["-c", script], { maxBuffer: 1000 }), check);
  },
);

nativeTest(
  "run() and runSync() reject with a ProcessError holding the output read before maxBuffer",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const script = "printf err >&2; exec yes abc";
    const check = (e: unknown) => {
      assert.ok(e instanceof ProcessError);
      assert.deepEqual([e.stdout, e.stderr, e.signal], ["abc\n".repeat(250), "err", "SIGKILL"]);
      assert.ok(e.status.pid > 0, `pid ${e.status.pid}`);
      assert.ok(e.cause instanceof MaxBufferError);
      assert.equal(e.cause.stdout.length, 1000);
      return true;
    };
    await assert.rejects(run("sh", ["-c", script], { maxBuffer: 1000 }), check);
    assert.throws(() => runSync("sh", ["-c", script], { maxBuffer: 1000 }), check);
  },
);

test("cleanup", () => rmSync(dir, { recursive: true, force: true }));
