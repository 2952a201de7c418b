import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
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

test("helper: exits when the host exits, after signalling the killOnParentExit children", async () => {
  const result = await runFixture("helper_host.ts");
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.ok(await gone(report.helper, 5000), "the helper outlived the host");
  assert.ok(await gone(report.killed, 5000), "the killOnParentExit child still runs");
  assert.equal(await gone(report.kept, 200), false, "the other child was killed too");
  process.kill(report.kept, "SIGKILL");
}, { ignore: !HELPER, timeoutMs: 20_000 });
