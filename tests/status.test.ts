import assert from "node:assert/strict";
import { signalName, signalNumber, spawnHandle, UnknownSignalError } from "../mod.ts";
import { nativeTest, test } from "./harness.ts";

test("exit codes 0 to 255 decode as code, with signal null", async () => {
  for (let base = 0; base < 256; base += 32) {
    const children = Array.from({ length: 32 }, (_, i) => spawnHandle("sh", ["-c", `exit ${base + i}`]));
    const statuses = await Promise.all(children.map((c) => c.wait()));
    statuses.forEach((status, i) => {
      assert.equal(status.exited, true);
      assert.equal(status.code, base + i);
      assert.equal(status.signal, null);
      assert.equal(status.coreDumped, false);
      assert.equal(status.success, base + i === 0);
      assert.equal(status.pid, children[i].pid);
    });
  }
});

test("deaths by signal decode as the signal's name with code null", async () => {
  for (const [name, expected] of [["TERM", "SIGTERM"], ["KILL", "SIGKILL"], ["HUP", "SIGHUP"], ["USR1", "SIGUSR1"]]) {
    const status = await spawnHandle("sh", ["-c", `kill -${name} $$`]).wait();
    assert.equal(status.code, null, name);
    assert.equal(status.signal, expected);
    assert.equal(status.success, false);
  }
});

test("exit code 137 is told apart from SIGKILL", async () => {
  const exited = await spawnHandle("sh", ["-c", "exit 137"]).wait();
  const killed = await spawnHandle("sh", ["-c", "kill -KILL $$"]).wait();
  assert.deepEqual([exited.code, exited.signal], [137, null]);
  assert.deepEqual([killed.code, killed.signal], [null, "SIGKILL"]);
});

nativeTest(
  "a core dump sets coreDumped and leaves the core file",
  "the runtimes do not report a core dump",
  async () => {
    const { mkdtempSync, readdirSync, readFileSync, rmSync } = await import("node:fs");
    const pattern = readFileSync("/proc/sys/kernel/core_pattern", "utf8").trim();
    const dir = mkdtempSync("/tmp/ph-core-");
    try {
      const status = await spawnHandle("sh", ["-c", "ulimit -c unlimited && kill -QUIT $$"], { cwd: dir }).wait();
      assert.equal(status.signal, "SIGQUIT");
      if (pattern.startsWith("core")) {
        // The kernel writes the dump into the child's cwd here, so this can be checked.
        assert.equal(status.coreDumped, true);
        assert.ok(readdirSync(dir).some((f) => f.startsWith("core")), `no core file in ${dir}`);
      }
      const plain = await spawnHandle("sh", ["-c", "ulimit -c 0 && kill -QUIT $$"], { cwd: dir }).wait();
      assert.deepEqual([plain.signal, plain.coreDumped], ["SIGQUIT", false]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

nativeTest(
  "rusage reports CPU time of a busy child",
  "rusage is null: the runtimes do not report it on every OS",
  async () => {
    const status = await spawnHandle("sh", ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]).wait();
    assert.ok(status.rusage !== null);
    assert.ok(status.rusage.userCpuMs + status.rusage.systemCpuMs > 10, JSON.stringify(status.rusage));
    assert.ok(status.rusage.maxRssKiB > 0);
  },
);

test("signal names and numbers parse like Process.kill and reject unknown ones", () => {
  assert.equal(signalNumber("SIGTERM"), 15);
  assert.equal(signalNumber("TERM"), 15);
  assert.equal(signalNumber("term"), 15);
  assert.equal(signalNumber(9), 9);
  assert.equal(signalNumber("SIGRTMIN+2"), 36);
  assert.equal(signalNumber("RTMAX"), 64);
  assert.equal(signalName(36), "SIGRTMIN+2");
  for (const bad of ["SIGNOPE", "", "RTMIN+40", 65, -1, 1.5, NaN]) {
    assert.throws(
      () => signalNumber(bad as string),
      (e: unknown) =>
        e instanceof UnknownSignalError && e instanceof TypeError &&
        (e as UnknownSignalError).code === "ERR_UNKNOWN_SIGNAL",
      String(bad),
    );
  }
  const child = spawnHandle("sleep", ["5"]);
  // @ts-expect-error: "SIGBOGUS" is not a signal name, and the type says so too.
  assert.throws(() => child.sendSignal("SIGBOGUS"), UnknownSignalError);
  assert.throws(() => child.sendSignal(99), UnknownSignalError);
  assert.equal(child.sendSignal("KILL"), true);
  return child.wait().then((s) => assert.equal(s.signal, "SIGKILL"));
});

nativeTest("real-time signal deaths decode by name", "the runtimes do not send real-time signals", async () => {
  const child = spawnHandle("sleep", ["5"]);
  assert.equal(child.sendSignal("SIGRTMIN+3"), true);
  const status = await child.wait();
  assert.equal(status.signal, "SIGRTMIN+3");
});
