import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { helperPath } from "../ffi/mod.ts";
import { backendInfo, ReaperDiedError, reaperInfo, spawnHandle } from "../mod.ts";
import {
  BACKEND,
  EXPECT_FALLBACK,
  EXPECT_PIDFD,
  FAULT,
  nativeTest,
  NO_OWNER,
  PORTABLE,
  procStat,
  QEMU,
  runFixture,
  runtimeArgv,
  sleep,
  test,
} from "./harness.ts";

/** The backend this run expects. */
const EXPECTED = BACKEND;
const HELPER = EXPECTED === "helper";
/** The seccomp launcher that scripts/test.sh builds into this checkout. */
const LAUNCHER = process.env.PH_SECCOMP_LAUNCHER ??
  new URL("../zig/zig-out/test-tools/seccomp_launcher", import.meta.url).pathname;

/** Waits until `pid` is gone (or a zombie), at most `ms`. */
async function gone(pid: number, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const stat = procStat(pid);
    if (stat === null || stat.state === "Z") return true;
    await sleep(10);
  }
  return false;
}

nativeTest(
  "backendInfo(): the backend in use, private, its process named after it; reaperInfo() agrees",
  "no reaper or helper process (its backendInfo() is in tests/runtime_backend.test.ts)",
  async () => {
    await spawnHandle("true").wait();
    const info = backendInfo();
    assert.equal(info.backend, EXPECTED);
    assert.equal(info.private, true);
    assert.ok(info.pid > 0);
    assert.equal(info.pid, reaperInfo().reaperPid);
    assert.equal(readFileSync(`/proc/${info.pid}/comm`, "utf8").trim(), HELPER ? "ph-helper" : "ph-reaper");
    assert.equal(info.fallbackReason !== undefined, EXPECT_FALLBACK);
  },
  { notPdfork: `${NO_OWNER}; tests/pidfd.test.ts checks its backendInfo()` },
);

test("under qemu-user the reaper's clone is refused (EINVAL): the helper runs instead and says why", async () => {
  const status = await spawnHandle("sh", ["-c", "exit 7"]).wait();
  assert.equal(status.code, 7);
  const info = backendInfo();
  assert.equal(info.backend, "helper");
  assert.match(info.fallbackReason ?? "", /EINVAL/);
  // The library loaded is the embedded aarch64 build, not a local (x86_64) one.
  assert.match(info.libraryPath, /libprivate_spawn-[0-9a-f]{16}\.so$/);
  // Forced, the reaper is not replaced: the spawn fails and says where.
  const forced = await runFixture("backend_info.ts", [], { PRIVATE_SPAWN_BACKEND: "reaper" });
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(JSON.parse(forced.stdout).error, { code: "EINVAL", syscall: "reaper" });
}, { ignore: !QEMU || process.env.PRIVATE_SPAWN_BACKEND !== undefined });

test("the reaper refused (clone EINVAL, as under qemu-user): the helper runs instead and says why", () => {
  const result = underNoReaper("");
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.code, 5);
  assert.equal(report.info.backend, "helper");
  assert.match(report.info.fallbackReason, /EINVAL/);
  // Forced, the reaper is not replaced: the spawn fails and says where.
  const forced = underNoReaper("reaper");
  assert.equal(forced.status, 0, forced.stderr);
  assert.deepEqual(JSON.parse(forced.stdout).error, { code: "EINVAL", syscall: "reaper" });
}, {
  // The portable build has no reaper to refuse.
  ignore: !existsSync(LAUNCHER) || FAULT !== "" || PORTABLE,
  notUnderQemu:
    "qemu-user refuses that clone itself (the test above); the launcher's filter would apply to qemu's own calls",
});

/** Runs the backend_info fixture with the reaper's clone refused, and `backend` forced (or not: ""). */
function underNoReaper(backend: string): { status: number | null; stdout: string; stderr: string } {
  const script = new URL("./fixtures/backend_info.ts", import.meta.url).pathname;
  const [cmd, args] = runtimeArgv(script);
  const env = { ...process.env, PRIVATE_SPAWN_BACKEND: backend, PH_FAULT: "no-reaper" };
  return spawnSync(LAUNCHER, ["no-reaper", cmd, ...args], { env, encoding: "utf8" });
}

if (!PORTABLE) {
  test("PRIVATE_SPAWN_BACKEND=pdfork with a build that has none (Linux's own) is refused, naming it", async () => {
    const result = await runFixture("backend_info.ts", [], { PRIVATE_SPAWN_BACKEND: "pdfork" });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /this build has no pdfork backend/);
  });
}

test("an unknown PRIVATE_SPAWN_BACKEND is refused with LibraryError ERR_BACKEND", async () => {
  const result = await runFixture("backend_info.ts", [], { PRIVATE_SPAWN_BACKEND: "kqueue" });
  assert.notEqual(result.code, 0);
  // Bun prints the error's code; Deno its class.
  assert.match(result.stderr, /ERR_BACKEND|LibraryError/);
  assert.match(result.stderr, /must be "reaper", "helper", "pdfork" or "runtime"/);
});

test(
  "helper: not the host's child (re-parented), holding no descriptor of the host's but its socket and region",
  async () => {
    await spawnHandle("true").wait();
    const pid = backendInfo().pid;
    assert.notEqual(procStat(pid)!.ppid, process.pid);
    // Its own: /dev/null on 0-2, the socket, the memfd, epoll, signalfd, the listeners' pipes.
    const links = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSyncSafe(`/proc/${pid}/fd/${fd}`));
    for (const link of links) {
      assert.match(
        link,
        /^(\/dev\/null|socket:|\/memfd:private_spawn|anon_inode:\[(eventpoll|signalfd|pidfd)\]|pipe:|)/,
        link,
      );
    }
    const sleeper = spawnHandle("sleep", ["5"], { stdout: "pipe" });
    const during = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSyncSafe(`/proc/${pid}/fd/${fd}`));
    // The child's stdout pipe crossed to the child only: the helper kept no copy of it.
    const stdoutPipe = readlinkSyncSafe(`/proc/${sleeper.pid}/fd/1`);
    assert.match(stdoutPipe, /^pipe:/);
    assert.equal(during.includes(stdoutPipe), false, `the helper holds the child's stdout ${stdoutPipe}`);
    // It watches the child through a pidfd of its own, in its epoll set (without pidfds, by
    // SIGCHLD through its signalfd).
    if (EXPECT_PIDFD) {
      const info = (fd: string) => readFileSafe(`/proc/${pid}/fdinfo/${fd}`);
      const fds = readdirSync(`/proc/${pid}/fd`);
      const own = fds.find((fd) => new RegExp(`Pid:\\s+${sleeper.pid}\\n`).test(info(fd)));
      assert.ok(own !== undefined, "the helper holds a pidfd of the child");
      const watched = fds.flatMap((fd) => [...info(fd).matchAll(/tfd:\s+(\d+)/g)].map((m) => m[1]));
      assert.ok(watched.includes(own), `pidfd ${own} is in the helper's epoll set: ${watched}`);
    }
    sleeper.sendSignal("SIGKILL");
    await sleeper.wait();
  },
  { ignore: !HELPER },
);

/** A file's text, or "" if it is gone. */
function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** What a descriptor points at, or "" if it closed meanwhile. */
function readlinkSyncSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}

test("helper: a killed helper's waiters get ReaperDiedError; the next spawn starts a new helper", async () => {
  const child = spawnHandle("sleep", ["30"]);
  const pending = child.wait();
  const helper = backendInfo().pid;
  const started = backendInfo().started;
  process.kill(helper, "SIGKILL");
  const error = await pending.then(() => null, (e) => e);
  assert.ok(error instanceof ReaperDiedError, String(error));
  assert.equal(error.pid, child.pid);
  const next = spawnHandle("sh", ["-c", "exit 12"]);
  assert.equal((await next.wait()).code, 12);
  assert.notEqual(backendInfo().pid, helper);
  assert.equal(backendInfo().started, started + 1);
  // The lost child is not ours to reap; it still runs, reachable by its pid only now.
  process.kill(child.pid, "SIGKILL");
}, { ignore: !HELPER, timeoutMs: 20_000 });

/** Runs tests/fixtures/helper_handshake.ts with `helper` as the helper executable. */
async function handshake(helper: string, spawns = 2): Promise<Record<string, unknown>[]> {
  const env = {
    PRIVATE_SPAWN_BACKEND: "helper",
    PRIVATE_SPAWN_HELPER: helper,
    PRIVATE_SPAWN_LIB: reaperInfo().libraryPath,
  };
  const result = await runFixture("helper_handshake.ts", [String(spawns)], env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

/** The pids of the processes running `path`. */
function runningFrom(path: string): number[] {
  return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/exe`) === path;
    } catch {
      return false;
    }
  });
}

test(
  "helper: one from another build is refused at the hand-shake (EPROTO, step helper), twice, nothing hangs",
  async () => {
    await spawnHandle("true").wait();
    const id = Number.parseInt(backendInfo().buildId, 16);
    assert.match(backendInfo().buildId, /^[0-9a-f]{8}$/);
    const dir = mkdtempSync(`${tmpdir()}/ph-helper-`);
    try {
      const bytes = readFileSync(helperPath());
      const same = `${dir}/same-build`;
      writeFileSync(same, bytes, { mode: 0o755 });
      // The same helper with its build id changed: a helper built from other sources.
      const word = new Uint8Array(new Uint32Array([id]).buffer);
      let patched = 0;
      for (let at = bytes.indexOf(word); at >= 0; at = bytes.indexOf(word, at + 4)) {
        bytes[at] ^= 0xff;
        patched++;
      }
      assert.ok(patched >= 1, "the build id is a word in the helper");
      const other = `${dir}/other-build`;
      writeFileSync(other, bytes, { mode: 0o755 });

      assert.deepEqual((await handshake(same)).map((o) => o.exitCode), [0, 0]);
      const refused = await handshake(other);
      for (const outcome of refused) {
        assert.equal(outcome.code, "EPROTO", String(outcome.message));
        assert.equal(outcome.errno, 71);
        assert.equal(outcome.syscall, "helper");
        assert.equal(outcome.path, other);
        const helperId = ((id ^ 0xff) >>> 0).toString(16).padStart(8, "0");
        assert.ok(
          String(outcome.message).includes(
            `the helper's build id is ${helperId}, the library's ${backendInfo().buildId}`,
          ),
          String(outcome.message),
        );
        assert.deepEqual(outcome.buildIds, { helper: helperId, library: backendInfo().buildId });
      }
      assert.deepEqual(runningFrom(other), [], "a refusing helper exits");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { ignore: !HELPER, timeoutMs: 30_000 },
);

test("helper: a program that is not a helper: EPROTO when it exits, ETIMEDOUT after 10 s of silence", async () => {
  const dir = mkdtempSync(`${tmpdir()}/ph-helper-`);
  try {
    const exits = `${dir}/exits`;
    writeFileSync(exits, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const [exited] = await handshake(exits, 1);
    assert.equal(exited.code, "EPROTO", String(exited.message));
    assert.match(String(exited.message), /not a helper of the library's build/);
    assert.equal(exited.syscall, "helper");
    const silent = `${dir}/silent`;
    writeFileSync(silent, `#!/bin/sh\necho $$ >> ${dir}/pid\nexec sleep 60 </dev/null >/dev/null 2>&1\n`, {
      mode: 0o755,
    });
    const [timedOut] = await handshake(silent, 1);
    for (const pid of readFileSync(`${dir}/pid`, "utf8").trim().split("\n")) process.kill(Number(pid), "SIGKILL");
    assert.equal(timedOut.code, "ETIMEDOUT", String(timedOut.message));
    assert.equal(timedOut.syscall, "helper");
    assert.ok(Number(timedOut.ms) >= 9_900, `waited only ${timedOut.ms} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { ignore: !HELPER || PORTABLE || QEMU || FAULT !== "", timeoutMs: 60_000 });

test("helper: exits when the host exits, after signalling the killOnParentExit children", async () => {
  const result = await runFixture("helper_host.ts");
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.ok(await gone(report.helper, 5000), "the helper outlived the host");
  assert.ok(await gone(report.killed, 5000), "the killOnParentExit child still runs");
  assert.equal(await gone(report.kept, 200), false, "the other child was killed too");
  process.kill(report.kept, "SIGKILL");
}, { ignore: !HELPER, timeoutMs: 20_000 });
