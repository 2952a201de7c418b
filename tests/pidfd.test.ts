import assert from "node:assert/strict";
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { libc, POLLIN } from "../ffi/libc.ts";
import { backendInfo, reaperInfo, spawnHandle } from "../mod.ts";
import { EXPECT_PIDFD, nativeTest, openFds, PDFORK, PORTABLE, procStat, reaperTest, sleep, test } from "./harness.ts";

const c = await libc();
const O_CLOEXEC = 0o2000000;

if (EXPECT_PIDFD) {
  nativeTest("child.fd is a close-on-exec pidfd for the child's pid", "child.fd is -1: no pidfd", async () => {
    const child = spawnHandle("sleep", ["5"]);
    assert.equal(reaperInfo().pidfd, true);
    assert.ok(child.fd > 2);
    assert.equal(readlinkSync(`/proc/self/fd/${child.fd}`), "anon_inode:[pidfd]");
    const fdinfo = readFileSync(`/proc/self/fdinfo/${child.fd}`, "utf8");
    assert.equal(Number(/Pid:\s+(-?\d+)/.exec(fdinfo)![1]), child.pid);
    assert.ok((parseInt(/flags:\s+(\d+)/.exec(fdinfo)![1], 8) & O_CLOEXEC) !== 0, fdinfo);
    child.sendSignal("SIGKILL");
    await child.wait();
  });
}

// The portable helper's child.fd is an exit pipe, which polls the same way.
if (EXPECT_PIDFD || PORTABLE) {
  nativeTest(
    "poll on child.fd is not readable while the child runs, readable once it exits",
    "child.fd is -1: no pidfd",
    async () => {
      const child = spawnHandle("sleep", ["5"]);
      const [rc, revents] = c.poll(child.fd, POLLIN, 0);
      assert.deepEqual([rc, revents & POLLIN], [0, 0]);
      assert.equal(child.waitNonblock().exited, false);
      await sleep(100);
      assert.deepEqual(c.poll(child.fd, POLLIN, 0).slice(0, 2), [0, 0]);
      child.sendSignal("SIGTERM");
      const [rc2, revents2] = c.poll(child.fd, POLLIN, 5000);
      assert.equal(rc2, 1);
      assert.equal(revents2 & POLLIN, POLLIN);
      const status = await child.wait();
      assert.equal(status.signal, "SIGTERM");
      // Observed: the descriptor is closed and reported as -1.
      assert.equal(child.fd, -1);
    },
  );
}

const PIDFD = "anon_inode:[pidfd]";
/** Why the tests of the reaper's epoll set in our table do not apply to the helper. */
const OWN_TABLE = "its epoll set and pidfds are in its own descriptor table, checked by tests/backend.test.ts";
const pidOf = (fdinfo: string) => Number(/Pid:\s+(-?\d+)/.exec(fdinfo)![1]);

/** This process's descriptors that link to `link`, each with its fdinfo text. */
function fdinfosOf(link: string): { fd: number; fdinfo: string }[] {
  const out: { fd: number; fdinfo: string }[] = [];
  for (const [fd, target] of openFds()) {
    if (target !== link) continue;
    try {
      out.push({ fd, fdinfo: readFileSync(`/proc/self/fdinfo/${fd}`, "utf8") });
    } catch {
      // Closed while we looked.
    }
  }
  return out;
}

/** Every pidfd in this process's table that refers to `pid`. */
function pidfdsOf(pid: number): number[] {
  return fdinfosOf(PIDFD).filter((e) => pidOf(e.fdinfo) === pid).map((e) => e.fd);
}

/** The pidfds in this process's table, by the pid each refers to. */
function pidfdsByPid(): Map<number, number> {
  return new Map(fdinfosOf(PIDFD).map((e) => [pidOf(e.fdinfo), e.fd]));
}

/** Descriptors watched by some epoll set in this process's table (the reaper's among them). */
function epollTargets(): Set<number> {
  const targets = fdinfosOf("anon_inode:[eventpoll]").flatMap((e) => [...e.fdinfo.matchAll(/tfd:\s+(\d+)/g)]);
  return new Set(targets.map((m) => Number(m[1])));
}

if (EXPECT_PIDFD) {
  reaperTest(
    "the reaper watches each child's pidfd; one nobody read is closed once the exit is out",
    OWN_TABLE,
    async () => {
      const children = [0, 1, 2].map(() => spawnHandle("sleep", ["5"]));
      const pidfds = pidfdsByPid();
      const watched = epollTargets();
      const fds = children.map((child) => pidfds.get(child.pid));
      for (const fd of fds) {
        assert.ok(fd !== undefined && fd > 2, `a pidfd for each child: ${[...pidfds]}`);
        assert.ok(watched.has(fd), `pidfd ${fd} is in an epoll set: ${[...watched]}`);
      }
      for (const child of children) child.sendSignal("SIGKILL");
      for (const child of children) assert.equal((await child.wait()).signal, "SIGKILL");
      // The reaper closes them itself as it reaps: a lone exit's before its record is delivered,
      // a burst's once nothing else is pending (usually before the host even wakes); allow it a
      // moment. By number: a reaped child's pidfd shows Pid -1, so it cannot be found by pid.
      const stillPidfds = () => fds.filter((fd) => openFds().get(fd!) === PIDFD);
      for (let i = 0; i < 100 && stillPidfds().length > 0; i++) await sleep(10);
      assert.deepEqual(stillPidfds(), [], "closed after the exit");
    },
  );

  reaperTest(
    "a pidfd read through child.fd stays open past the exit until the exit is observed",
    OWN_TABLE,
    async () => {
      const child = spawnHandle("sleep", ["5"]);
      const fd = child.fd;
      // The library's own pidfd for the child, which its reaper watches.
      const own = pidfdsOf(child.pid).find((n) => n !== fd);
      assert.ok(own !== undefined && epollTargets().has(own), `library pidfd ${own}`);
      child.sendSignal("SIGKILL");
      // Delivered (the registry drains it) but not observed: nobody asked for the status yet.
      assert.equal(c.poll(fd, POLLIN, 5000)[0], 1);
      await sleep(100);
      // Still ours, and the kernel says the process is gone (a reaped pidfd shows Pid -1).
      assert.equal(readlinkSync(`/proc/self/fd/${fd}`), "anon_inode:[pidfd]");
      assert.match(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"), /Pid:\s+-1\n/);
      // The reaper took its own out of its epoll set when it reaped the child. (Closing it would
      // not: the entry lives as long as the open file, which our copy shares.)
      assert.equal(epollTargets().has(own), false);
      assert.equal(child.fd, fd);
      assert.equal((await child.wait()).signal, "SIGKILL");
      assert.equal(child.fd, -1);
      // Closed (the number may already serve something else, never this pidfd).
      assert.notEqual(openFds().get(fd), PIDFD);
    },
  );

  reaperTest(
    "child.fd is the caller's own copy: closing it early hides nothing from the reaper",
    OWN_TABLE,
    async () => {
      const child = spawnHandle("sleep", ["5"]);
      const fd = child.fd;
      assert.ok(fd > 2);
      assert.notEqual(pidfdsByPid().size, 0);
      assert.equal(c.close(fd)[0], 0);
      // The library's own pidfd is still there and still watched.
      const own = pidfdsByPid().get(child.pid);
      assert.ok(own !== undefined && own !== fd && epollTargets().has(own), `library pidfd ${own}`);
      child.sendSignal("SIGKILL");
      const status = await Promise.race([child.wait(), sleep(5000).then(() => null)]);
      assert.equal(status?.signal, "SIGKILL");
    },
  );
}

if (PDFORK) {
  test("pdfork: the host forks, child.fd is the process descriptor (a pidfd under Linux's stand-ins), signals go through it", async () => {
    const child = spawnHandle("sleep", ["5"]);
    const info = backendInfo();
    // Linux's stand-ins are not private: their children are the host's own (decision 0014).
    assert.deepEqual([info.backend, info.private, info.pollableFd, info.tree, info.pid], [
      "pdfork",
      false,
      true,
      null,
      0,
    ]);
    assert.equal(procStat(child.pid)?.ppid, process.pid);
    assert.ok(child.fd > 2);
    assert.equal(readlinkSync(`/proc/self/fd/${child.fd}`), "anon_inode:[pidfd]");
    assert.equal(child.waitNonblock().exited, false);
    assert.equal(child.sendSignal("SIGTERM"), true);
    assert.equal((await child.wait()).signal, "SIGTERM");
    assert.equal(child.sendSignal("SIGTERM"), false);
    assert.equal(child.fd, -1);
  });
}

if (PDFORK) {
  test("pdfork: with its queue closed by the host the watcher stops; the next spawn starts another that takes over the running children", async () => {
    const first = spawnHandle("sleep", ["0.3"]);
    const late = spawnHandle("sleep", ["1.5"]);
    // The watcher's epoll set (its kqueue on FreeBSD): the one that watches the library's pidfd of `first`.
    const own = pidfdsOf(first.pid);
    const queues = fdinfosOf("anon_inode:[eventpoll]").filter((e) =>
      [...e.fdinfo.matchAll(/tfd:\s+(\d+)/g)].some((m) => own.includes(Number(m[1])))
    );
    assert.equal(queues.length, 1, `epoll sets watching ${own}: ${queues.map((e) => e.fd)}`);
    const started = backendInfo().started;
    assert.equal(c.close(queues[0].fd)[0], 0);
    // Its wait in progress still sees this exit; the next one fails (EBADF) and it stops.
    assert.equal((await first.wait()).code, 0);
    await sleep(50);
    assert.equal((await spawnHandle("sh", ["-c", "exit 4"]).wait()).code, 4);
    assert.equal(backendInfo().started, started + 1);
    const status = await Promise.race([late.wait(), sleep(5000).then(() => null)]);
    assert.equal(status?.code, 0, "a child spawned before the stop is watched by the new watcher");
  });
}

if (PORTABLE && !PDFORK) {
  test("the portable helper: child.fd is an exit pipe, signals go by pid, guarded by the helper", async () => {
    const child = spawnHandle("sleep", ["5"]);
    const info = backendInfo();
    assert.deepEqual([info.backend, info.pollableFd, info.tree, reaperInfo().pidfd], ["helper", true, null, false]);
    assert.ok(child.fd > 2);
    assert.match(readlinkSync(`/proc/self/fd/${child.fd}`), /^pipe:/);
    assert.equal(child.waitNonblock().exited, false);
    assert.equal(child.sendSignal("SIGTERM"), true);
    assert.equal((await child.wait()).signal, "SIGTERM");
    assert.equal(child.sendSignal("SIGTERM"), false);
    assert.equal(child.fd, -1);
  });
}

if (!EXPECT_PIDFD && !PORTABLE) {
  test("without pidfds: fd is -1 and signals go by pid, guarded by the reaper", async () => {
    assert.equal(reaperInfo().pidfd, false);
    const child = spawnHandle("sleep", ["5"]);
    assert.equal(child.fd, -1);
    assert.equal(child.waitNonblock().exited, false);
    assert.equal(child.sendSignal("SIGTERM"), true);
    assert.equal((await child.wait()).signal, "SIGTERM");
    assert.equal(child.sendSignal("SIGTERM"), false);
  });
}

test("a handle whose child was reaped never signals anyone again", async () => {
  const child = spawnHandle("true");
  const status = await child.wait();
  assert.equal(status.code, 0);
  assert.equal(child.sendSignal("SIGKILL"), false);
  assert.equal(child.waitNonblock(), status);
  assert.equal(await child.wait(), status);
});

test("wait() from many callers resolves the same status object", async () => {
  const child = spawnHandle("sh", ["-c", "exit 9"]);
  const [a, b, c2] = await Promise.all([child.wait(), child.wait(), child.wait()]);
  assert.equal(a, b);
  assert.equal(b, c2);
  assert.equal(a.code, 9);
  assert.equal(child.wait(), child.wait());
});

nativeTest(
  "waitSync blocks until exit; waitNonblock reports running then exited",
  "on the runtime backend the sync helpers are the runtime's own (tests/runtime_backend.test.ts)",
  async () => {
    const child = spawnHandle("sh", ["-c", "sleep 0.2; exit 4"]);
    const running = child.waitNonblock();
    assert.deepEqual([running.exited, running.code, running.pid], [false, null, child.pid]);
    const status = child.waitSync();
    assert.deepEqual([status.exited, status.code], [true, 4]);
    assert.equal(child.waitNonblock(), status);
    assert.equal(await child.wait(), status);
  },
);

test("await using kills a running child and collects it", async () => {
  let pid = 0;
  {
    await using child = spawnHandle("sleep", ["30"]);
    pid = child.pid;
  }
  // The reaper has reaped it: no such process any more.
  assert.deepEqual(c.kill(pid, 0), [-1, 3]);
});

test("the Process namespace carries the proposal's names", async () => {
  const { Process, ProcessHandle } = await import("../mod.ts");
  assert.equal(Process.spawnHandle, spawnHandle);
  assert.equal(Process.Handle, ProcessHandle);
  const handle = Process.spawnHandle("true");
  assert.ok(handle instanceof Process.Handle);
  assert.equal((await handle.wait()).success, true);
});
