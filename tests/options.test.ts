import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { libc } from "../ffi/libc.ts";
import { SpawnError, spawnHandle } from "../mod.ts";
import {
  EXPECT_PIDFD,
  fixture,
  nativeTest,
  openFds,
  PORTABLE,
  procStat,
  readAll,
  runFixture,
  runtimeArgv,
  sleep,
  test,
} from "./harness.ts";

const c = await libc();
const dir = mkdtempSync("/tmp/ph-options-");
const text = async (stream: ReadableStream<Uint8Array> | null) => new TextDecoder().decode(await readAll(stream!));

/** The child's /proc/<pid>/status fields (the child must still run). */
function childStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const [key, value] = line.split(":\t");
    if (value !== undefined) out[key] = value.trim();
  }
  return out;
}

nativeTest(
  "stdout to a host descriptor number, inherited as is",
  "a host descriptor number as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const path = `${dir}/fd-out`;
    const fd = openSync(path, "w");
    const status = await spawnHandle("echo", ["to fd"], { stdout: fd }).wait();
    closeSync(fd);
    assert.equal(status.code, 0);
    assert.equal(readFileSync(path, "utf8"), "to fd\n");
  },
);

nativeTest(
  "files: stdout truncates or appends, stdin reads, mode applies",
  "a file as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const path = `${dir}/file-out`;
    writeFileSync(path, "old content that is long\n");
    await spawnHandle("echo", ["one"], { stdout: { path } }).wait();
    assert.equal(readFileSync(path, "utf8"), "one\n");
    await spawnHandle("echo", ["two"], { stdout: { path, append: true } }).wait();
    assert.equal(readFileSync(path, "utf8"), "one\ntwo\n");
    const child = spawnHandle("cat", [], { stdin: { path }, stdout: "piped" });
    assert.equal(await text(child.stdout), "one\ntwo\n");
    await child.wait();
    await spawnHandle("true", [], { stdout: { path: `${dir}/mode-600`, mode: 0o600 }, umask: 0 }).wait();
    const { statSync } = await import("node:fs");
    assert.equal(statSync(`${dir}/mode-600`).mode & 0o777, 0o600);
  },
);

nativeTest(
  "a file that cannot be opened fails at open, naming the path",
  "a file as stdio is refused on this backend (see tests/runtime_backend.test.ts)",
  () => {
    assert.throws(() => spawnHandle("cat", [], { stdin: { path: `${dir}/missing` } }), (e: unknown) => {
      assert.ok(e instanceof SpawnError);
      assert.deepEqual([e.code, e.syscall, e.path], ["ENOENT", "open", `${dir}/missing`]);
      return true;
    });
    assert.throws(() => spawnHandle("true", [], { stdout: { path: `${dir}/no/such/dir/f` } }), (e: unknown) => {
      assert.ok(e instanceof SpawnError);
      assert.deepEqual([e.code, e.syscall, e.path], ["ENOENT", "open", `${dir}/no/such/dir/f`]);
      return true;
    });
  },
);

nativeTest(
  'stderr: "stdout" sends both to one pipe, in order',
  'stderr: "stdout" is refused on this backend (see tests/runtime_backend.test.ts)',
  async () => {
    const child = spawnHandle("sh", ["-c", "echo a; echo b >&2; echo c"], { stdout: "piped", stderr: "stdout" });
    assert.equal(child.stderr, null);
    assert.equal(await text(child.stdout), "a\nb\nc\n");
    await child.wait();
  },
);

nativeTest(
  "fds: extra descriptors from files, pipes out of and into the child",
  "fds is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sh", ["-c", "echo to-three >&3; cat <&4 >&5; echo done"], {
      stdout: "piped",
      fds: { 3: "piped", 4: "piped-input", 5: { path: `${dir}/fd5` } },
    });
    const writer = child.fdInputs[4].getWriter();
    await writer.write(new TextEncoder().encode("via four"));
    await writer.close();
    assert.equal(await text(child.fdOutputs[3]), "to-three\n");
    assert.equal(await text(child.stdout), "done\n");
    assert.equal((await child.wait()).code, 0);
    assert.equal(readFileSync(`${dir}/fd5`, "utf8"), "via four");
  },
);

nativeTest(
  "fds: a swap of two descriptors is resolved (a cycle)",
  "fds is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const a = openSync(`${dir}/swap-a`, "w");
    const b = openSync(`${dir}/swap-b`, "w");
    const fds: Record<number, number> = { [a]: b, [b]: a };
    // bash, because dash only takes single-digit descriptors in redirections.
    await spawnHandle("bash", ["-c", `echo first >&${a}; echo second >&${b}`], { fds }).wait();
    closeSync(a);
    closeSync(b);
    assert.equal(readFileSync(`${dir}/swap-b`, "utf8"), "first\n");
    assert.equal(readFileSync(`${dir}/swap-a`, "utf8"), "second\n");
  },
);

nativeTest(
  "every other descriptor is closed in the child; inheritFds opts one in",
  "inheritFds is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const file = openSync(`${dir}/inherit`, "w");
    const [leaky] = c.dup(file); // dup() gives a descriptor without close-on-exec
    assert.ok(leaky > 2);
    const plain = spawnHandle("sleep", ["5"]);
    const kept = spawnHandle("sleep", ["5"], { inheritFds: [leaky] });
    await sleep(50);
    assert.deepEqual([...openFds(plain.pid).keys()].sort((x, y) => x - y), [0, 1, 2]);
    assert.deepEqual([...openFds(kept.pid).keys()].sort((x, y) => x - y), [0, 1, 2, leaky]);
    plain.sendSignal("KILL");
    kept.sendSignal("KILL");
    await Promise.all([plain.wait(), kept.wait()]);
    c.close(leaky);
    closeSync(file);
  },
);

nativeTest(
  "pgroup: true makes the child a group leader; kill(-pgid) works as soon as spawn returns",
  "pgroup is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sleep", ["5"], { pgroup: true });
    const pgid = Number(readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ")[2]);
    assert.equal(pgid, child.pid);
    process.kill(-child.pid, "SIGTERM");
    assert.equal((await child.wait()).signal, "SIGTERM");
  },
);

nativeTest(
  "sendSignal with group: true reaches the grandchildren",
  "pgroup is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sh", ["-c", "sleep 30 & sleep 30 & wait"], { pgroup: true });
    await sleep(100);
    const grandchildren = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ").map(
      Number,
    );
    assert.equal(grandchildren.length, 2);
    assert.equal(child.sendSignal("SIGKILL", { group: true }), true);
    assert.equal((await child.wait()).signal, "SIGKILL");
    await sleep(100);
    for (const pid of grandchildren) {
      const stat = procStat(pid);
      assert.ok(stat === null || stat.state === "Z", `grandchild ${pid} survived`);
    }
    const lone = spawnHandle("true");
    assert.throws(() => lone.sendSignal("SIGTERM", { group: true }), TypeError);
    await lone.wait();
  },
);

/** The pidfds open in this process, by number. */
function pidfds(): Set<number> {
  return new Set([...openFds()].filter(([, target]) => target.includes("pidfd")).map(([fd]) => fd));
}

nativeTest(
  "a group signal reaches the group after its leader exited, and is false once the group is empty",
  "pgroup is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    await spawnHandle("true").wait(); // the reaper (and its pidfd of this process) exists before counting
    const older = pidfds();
    const child = spawnHandle("sh", ["-c", "sleep 30 >/dev/null & echo $!; exit 1"], { pgroup: true, stdout: "piped" });
    const sleeper = Number((await child.text()).trim());
    assert.equal((await child.wait()).code, 1);
    // The handle keeps one pidfd of the leader (the library's own closed at the reap).
    const kept = [...pidfds()].filter((fd) => !older.has(fd));
    assert.equal(kept.length, EXPECT_PIDFD ? 1 : 0);
    const stat = readFileSync(`/proc/${sleeper}/stat`, "utf8").split(") ")[1].split(" ");
    assert.deepEqual([stat[0] !== "Z", Number(stat[2])], [true, child.pid], "the sleep runs in the child's group");
    assert.equal(child.sendSignal("SIGTERM", { group: true }), true);
    const deadline = Date.now() + 5000;
    while (procStat(sleeper) !== null && procStat(sleeper)!.state !== "Z" && Date.now() < deadline) await sleep(10);
    const after = procStat(sleeper);
    assert.ok(after === null || after.state === "Z", `the sleep ${sleeper} survived the group signal`);
    // Its new parent (init or a subreaper) reaps it in its own time; then the group is empty.
    let delivered = true;
    while (delivered && Date.now() < deadline + 10_000) {
      delivered = child.sendSignal("SIGTERM", { group: true });
      if (delivered) await sleep(20);
    }
    assert.equal(delivered, false, "a group signal after the group emptied still reported a member");
    assert.equal(child.sendSignal("SIGTERM", { group: true }), false);
    // The group is empty for good: the kept pidfd is closed.
    assert.deepEqual(kept.filter((fd) => pidfds().has(fd)), []);
    // A leader whose group ends with it keeps nothing.
    const before = pidfds();
    const lone = spawnHandle("true", [], { pgroup: true });
    await lone.wait();
    assert.deepEqual([...pidfds()].filter((fd) => !before.has(fd)), []);
    assert.equal(lone.sendSignal("SIGTERM", { group: true }), false);
  },
  { timeoutMs: 30_000 },
);

nativeTest(
  "uid or gid without groups drops the host's supplementary groups; without CAP_SETGID that fails the spawn (root only)",
  "uid is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (process.getuid?.() !== 0) return;
    const [cmd, args] = runtimeArgv(fixture("groups.ts"));
    const run = async (setpriv: string[]) => {
      const child = spawnHandle("setpriv", [...setpriv, "--groups", "27,100", cmd, ...args], {
        stdout: "piped",
        stderr: "piped",
      });
      const { status, stdout, stderr } = await child.output();
      assert.equal(status.code, 0, new TextDecoder().decode(stderr));
      return JSON.parse(new TextDecoder().decode(stdout));
    };
    assert.deepEqual(await run([]), { host: "27 100", uid: "", gid: "", explicit: "100", sameUid: "" });
    // Root without CAP_SETGID: another uid or gid with the host's groups is refused, in the
    // setgroups step; its own uid and gid keep its groups (nothing changes hands).
    const refused = { code: "EPERM", syscall: "setgroups" };
    assert.deepEqual(await run(["--bounding-set", "-setgid", "--inh-caps", "-setgid"]), {
      host: "27 100",
      uid: refused,
      gid: refused,
      explicit: refused,
      sameUid: "27 100",
    });
  },
  { timeoutMs: 60_000 },
);

nativeTest(
  "setsid: the child leads a new session",
  "setsid is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sleep", ["5"], { setsid: true });
    const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
    assert.deepEqual([Number(fields[2]), Number(fields[3])], [child.pid, child.pid]);
    child.sendSignal("KILL", { group: true });
    await child.wait();
  },
);

nativeTest(
  "umask and rlimits reach the child",
  "umask is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sh", ["-c", "umask; ulimit -n; ulimit -Hn; ulimit -c"], {
      stdout: "piped",
      umask: 0o027,
      rlimits: { nofile: [100, 200], core: 0 },
    });
    assert.equal(await text(child.stdout), "0027\n100\n200\n0\n");
    await child.wait();
    const unlimited = spawnHandle("sh", ["-c", "ulimit -c"], { stdout: "piped", rlimits: { core: Infinity } });
    assert.equal(await text(unlimited.stdout), "unlimited\n");
    await unlimited.wait();
  },
);

nativeTest(
  "a child told rlimits: { nofile: 0 } still starts (the limit applies after set-up)",
  "rlimits is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("/bin/sleep", ["0.1"], { rlimits: { nofile: 0 }, stderr: "null" });
    const status = await child.wait();
    // Whatever the program then does with no descriptors, the exec itself succeeded.
    assert.equal(status.exited, true);
  },
);

nativeTest(
  "uid, gid and groups: the child runs as another user (root only)",
  "uid is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    if (process.getuid?.() !== 0) return;
    const child = spawnHandle("id", [], { stdout: "piped", uid: 65534, gid: 65534, groups: [65534, 100] });
    assert.equal(
      await text(child.stdout),
      `uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup),100(users)\n`.replace(/\([a-z]+\)/g, (m) => m),
    );
    await child.wait();
  },
  { timeoutMs: 10_000 },
);

nativeTest(
  "signals: handled ones are default in the child, the mask is empty, SIGPIPE is default",
  "the runtime's spawn decides the child's signal mask and dispositions",
  async () => {
    const onUsr1 = () => {};
    process.on("SIGUSR1", onUsr1);
    try {
      const child = spawnHandle("sleep", ["5"]);
      await sleep(50);
      const status = childStatus(child.pid);
      assert.equal(status.SigCgt, "0000000000000000");
      assert.equal(status.SigBlk, "0000000000000000");
      assert.equal(status.SigIgn, "0000000000000000");
      child.sendSignal("KILL");
      await child.wait();
    } finally {
      process.off("SIGUSR1", onUsr1);
    }
    // yes | head -1 ends because yes dies of SIGPIPE.
    const pipeline = spawnHandle("sh", ["-c", "yes | head -1"], { stdout: "piped" });
    assert.equal(await text(pipeline.stdout), "y\n");
    assert.equal((await pipeline.wait()).code, 0);
  },
);

nativeTest(
  "keepIgnoredSignals: the child starts with the host's ignored signals ignored",
  "keepIgnoredSignals is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const hostIgnored = BigInt("0x" + childStatus(process.pid).SigIgn);
    const child = spawnHandle("sleep", ["5"], { keepIgnoredSignals: true });
    await sleep(50);
    const childIgnored = BigInt("0x" + childStatus(child.pid).SigIgn);
    assert.equal(childIgnored, hostIgnored & ~((1n << 8n) | (1n << 18n)));
    child.sendSignal("KILL");
    await child.wait();
  },
);

test("signal: aborting sends killSignal; an aborted signal spawns nothing", async () => {
  const controller = new AbortController();
  const child = spawnHandle("sleep", ["5"], { signal: controller.signal });
  controller.abort();
  const status = await child.wait();
  assert.equal(status.signal, "SIGTERM");
  assert.equal(child.aborted, true);
  assert.equal(child.timedOut, false);
  const fdsBefore = openFds().size;
  assert.throws(
    () => spawnHandle("true", [], { signal: controller.signal }),
    (e: unknown) => (e as Error).name === "AbortError",
  );
  assert.equal(openFds().size, fdsBefore);
  const other = new AbortController();
  const custom = spawnHandle("sleep", ["5"], { signal: other.signal, killSignal: "SIGINT" });
  other.abort();
  assert.equal((await custom.wait()).signal, "SIGINT");
});

test("timeout sends killSignal; forceKillAfter escalates to SIGKILL", async () => {
  const child = spawnHandle("sleep", ["5"], { timeout: 100 });
  assert.equal((await child.wait()).signal, "SIGTERM");
  assert.equal(child.timedOut, true);
  const stubborn = spawnHandle("sh", ["-c", 'trap "" TERM; exec sleep 5'], { timeout: 100, forceKillAfter: 100 });
  assert.equal((await stubborn.wait()).signal, "SIGKILL");
  assert.equal(stubborn.timedOut, true);
  const quick = spawnHandle("true", [], { timeout: 5000 });
  assert.equal((await quick.wait()).code, 0);
  assert.equal(quick.timedOut, false);
});

test("validation: each bad option throws a typed error naming it, and nothing is created", () => {
  const cases: [object, ErrorConstructor, RegExp][] = [
    [{ stdout: -1 }, RangeError, /"stdout".*0 to/],
    [{ stdout: 1.5 }, RangeError, /"stdout"/],
    [{ stdin: "stdout" }, TypeError, /"stdin".*must be/],
    [{ stdout: { path: "a\0b" } }, TypeError, /"stdout.path".*NUL/],
    [{ stdout: { path: 3 } }, TypeError, /"stdout.path".*a string/],
    [{ fds: { x: 1 } }, RangeError, /"fds".*descriptor numbers/],
    [{ fds: { 3: "bogus" } }, TypeError, /"fds.3".*must be/],
    [{ fds: { 1: 2 }, stdout: "piped" }, TypeError, /"fds".*already set by "stdout"/],
    [{ inheritFds: [1] }, RangeError, /"inheritFds\[0\]".*3 to/],
    [{ pgroup: false }, TypeError, /"pgroup"/],
    [{ pgroup: true, setsid: true }, TypeError, /"setsid".*"pgroup"/],
    [{ umask: 0o1000 }, RangeError, /"umask"/],
    [{ rlimits: { files: 3 } }, RangeError, /"rlimits".*unknown resource "files"/],
    [{ rlimits: { nofile: [10, 5] } }, RangeError, /"rlimits.nofile".*soft/],
    [{ rlimits: { nofile: -1 } }, RangeError, /"rlimits.nofile"/],
    [{ uid: -1 }, RangeError, /"uid"/],
    [{ groups: ["wheel"] }, TypeError, /"groups\[0\]".*an integer/],
    [{ signal: {} }, TypeError, /"signal".*AbortSignal/],
    [{ timeout: -5 }, RangeError, /"timeout"/],
    [{ killSignal: "SIGNOPE" }, TypeError, /"killSignal".*signal name/],
    [{ keepIgnoredSignals: 1 }, TypeError, /"keepIgnoredSignals".*boolean/],
  ];
  const fdsBefore = openFds().size;
  for (const [options, type, message] of cases) {
    assert.throws(
      () => spawnHandle("true", [], options),
      (e: unknown) => e instanceof type && message.test((e as Error).message),
      JSON.stringify(options),
    );
  }
  assert.equal(openFds().size, fdsBefore);
});

test("the host's rlimits, nice value, CPU affinity and ids as they are at spawn time, changes after the reaper's start included", async () => {
  const result = await runFixture("host_attributes.ts");
  assert.equal(result.code, 0, `signal ${result.signal}: ${result.stderr}`);
  const { host, child } = JSON.parse(result.stdout);
  assert.equal(child.nofile, host.nofile);
  assert.equal(child.nice, host.nice);
  // With one CPU allowed there is nothing to narrow, and this part could not fail.
  // The portable helper applies no CPU affinity: macOS has none to set (decision 0013).
  if (host.cpusBefore.includes(",") && !PORTABLE) assert.equal(child.cpus, host.cpus);
  // Only root can change its ids.
  if (host.ids !== null) assert.equal(child.ids, host.ids);
});

test("cleanup", () => rmSync(dir, { recursive: true, force: true }));
