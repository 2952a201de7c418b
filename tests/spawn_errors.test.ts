import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { reaperInfo, SpawnError, spawnHandle } from "../mod.ts";
import { nativeTest, openFds, sleep, test, zombiesOf } from "./harness.ts";

const dir = mkdtempSync("/tmp/ph-errors-");
const notExecutable = `${dir}/not-executable`;
writeFileSync(notExecutable, "#!/bin/sh\nexit 0\n");
chmodSync(notExecutable, 0o644);
const noShebang = `${dir}/no-shebang`;
writeFileSync(noShebang, "echo this must never run through /bin/sh\n");
chmodSync(noShebang, 0o755);
const garbage = `${dir}/garbage`;
writeFileSync(garbage, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3, 4, 5, 6, 7, 8]));
chmodSync(garbage, 0o755);

/**
 * Warm up so the reaper and listener exist before counting descriptors, then let the
 * runtime finish closing what it closes asynchronously (Bun's reader of the wake-up pipe).
 */
async function settle(): Promise<void> {
  await spawnHandle("true").wait();
  await sleep(30);
}

/** Compares descriptor tables, naming what appeared or vanished. */
function assertSameFds(before: Map<number, string>, after: Map<number, string>): void {
  const added = [...after].filter(([fd]) => !before.has(fd));
  const removed = [...before].filter(([fd]) => !after.has(fd));
  assert.deepEqual({ added, removed }, { added: [], removed: [] }, "the descriptor table changed");
}

async function expectSpawnError(
  run: () => unknown,
  expected: { code: string; errno: number; syscall: string; command: string; path?: string },
): Promise<void> {
  await settle();
  const fdsBefore = openFds();
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof SpawnError, String(error));
    assert.equal(error.code, expected.code);
    assert.equal(error.errno, expected.errno);
    assert.equal(error.syscall, expected.syscall);
    assert.equal(error.command, expected.command);
    if (expected.path !== undefined) assert.equal(error.path, expected.path);
    assert.ok(error.message.includes(expected.code), error.message);
    assert.ok(error.message.includes(JSON.stringify(expected.command)), error.message);
    return true;
  });
  assertSameFds(fdsBefore, openFds());
  assert.deepEqual(zombiesOf(reaperInfo().reaperPid), [], "a failed spawn left a zombie");
}

nativeTest(
  "a missing program: ENOENT at execve, by PATH and by path",
  "the runtime's spawn names no failing step",
  async () => {
    await expectSpawnError(() => spawnHandle("no-such-program-ph"), {
      code: "ENOENT",
      errno: 2,
      syscall: "execve",
      command: "no-such-program-ph",
    });
    await expectSpawnError(() => spawnHandle(`${dir}/missing`), {
      code: "ENOENT",
      errno: 2,
      syscall: "execve",
      command: `${dir}/missing`,
    });
    await expectSpawnError(() => spawnHandle("ls", [], { env: { PATH: "/nonexistent" } }), {
      code: "ENOENT",
      errno: 2,
      syscall: "execve",
      command: "ls",
    });
  },
);

nativeTest("a file without execute permission: EACCES", "the runtime's spawn names no failing step", async () => {
  await expectSpawnError(() => spawnHandle(notExecutable), {
    code: "EACCES",
    errno: 13,
    syscall: "execve",
    command: notExecutable,
  });
  await expectSpawnError(() => spawnHandle(dir), { code: "EACCES", errno: 13, syscall: "execve", command: dir });
  // Found only in a PATH entry where it is not executable: EACCES, like execvp.
  await expectSpawnError(() => spawnHandle("not-executable", [], { env: { PATH: dir } }), {
    code: "EACCES",
    errno: 13,
    syscall: "execve",
    command: "not-executable",
  });
});

nativeTest(
  "a bad format: ENOEXEC, and a script without #! is never run through /bin/sh",
  "the runtime's spawn names no failing step",
  async () => {
    await expectSpawnError(() => spawnHandle(garbage), {
      code: "ENOEXEC",
      errno: 8,
      syscall: "execve",
      command: garbage,
    });
    await expectSpawnError(() => spawnHandle(noShebang), {
      code: "ENOEXEC",
      errno: 8,
      syscall: "execve",
      command: noShebang,
    });
  },
);

nativeTest(
  "a missing cwd: ENOENT at chdir, naming the directory",
  "the runtime's spawn names no failing step",
  async () => {
    await expectSpawnError(() => spawnHandle("true", [], { cwd: `${dir}/nope` }), {
      code: "ENOENT",
      errno: 2,
      syscall: "chdir",
      command: "true",
      path: `${dir}/nope`,
    });
    await expectSpawnError(() => spawnHandle("true", [], { cwd: notExecutable }), {
      code: "ENOTDIR",
      errno: 20,
      syscall: "chdir",
      command: "true",
      path: notExecutable,
    });
  },
);

nativeTest(
  "a failed spawn with piped stdio leaks no pipe end",
  "the runtime's spawn names no failing step",
  async () => {
    await expectSpawnError(
      () => spawnHandle("no-such-program-ph", [], { stdin: "piped", stdout: "piped", stderr: "piped" }),
      { code: "ENOENT", errno: 2, syscall: "execve", command: "no-such-program-ph" },
    );
  },
);

test("bad arguments throw a TypeError naming the option and the value, before anything is created", async () => {
  const cases: [() => unknown, RegExp][] = [
    [() => spawnHandle(""), /"command".*must not be empty/],
    [() => spawnHandle(42 as unknown as string), /"command".*a string.*42/],
    [() => spawnHandle("tr\0ue"), /"command".*NUL/],
    [() => spawnHandle("echo", ["a\0b"]), /"args\[0\]".*NUL/],
    [() => spawnHandle("echo", "a" as unknown as string[]), /"args".*array/],
    [() => spawnHandle("echo", [1 as unknown as string]), /"args\[0\]".*a string/],
    [() => spawnHandle("true", [], { cwd: "/tmp\0x" }), /"cwd".*NUL/],
    [() => spawnHandle("true", [], { env: { A: "x\0y" } }), /"env.A".*NUL/],
    [() => spawnHandle("true", [], { env: { "A=B": "x" } }), /"env".*'='/],
    [
      () => spawnHandle("true", [], { stdout: "pipes" as "piped" }),
      /"stdout".*"inherit", "null", "piped" \(or "pipe"\).*"pipes"/,
    ],
    [() => spawnHandle("true", [], { clearEnv: "yes" as unknown as boolean }), /"clearEnv".*boolean/],
    [() => spawnHandle("true", [], { nope: 1 } as never), /unknown option "nope"/],
    [() => spawnHandle("true", [], null as never), /"options".*an object/],
  ];
  await settle();
  const before = reaperInfo().slotsInUse;
  const fdsBefore = openFds();
  for (const [run, message] of cases) {
    assert.throws(run, (e: unknown) => e instanceof TypeError && message.test((e as Error).message), String(message));
  }
  assert.equal(reaperInfo().slotsInUse, before);
  assertSameFds(fdsBefore, openFds());
});

test("environment: merged over the host's, undefined removes, clearEnv starts empty", async () => {
  const { readAll } = await import("./harness.ts");
  const run = async (options: object) => {
    const child = spawnHandle("/usr/bin/env", [], { stdout: "piped", ...options });
    const text = new TextDecoder().decode(await readAll(child.stdout!));
    await child.wait();
    return text.trim().split("\n").filter((l) => l);
  };
  const merged = await run({ env: { PH_TEST: "1" } });
  assert.ok(merged.includes("PH_TEST=1"));
  assert.ok(merged.some((l) => l.startsWith("PATH=")));
  const removed = await run({ env: { PATH: undefined } });
  assert.equal(removed.some((l) => l.startsWith("PATH=")), false);
  assert.deepEqual(await run({ clearEnv: true, env: { ONLY: "this" } }), ["ONLY=this"]);
});

nativeTest(
  "argv0 and cwd reach the child",
  "argv0 (on Deno) is refused on this backend (see tests/runtime_backend.test.ts)",
  async () => {
    const { readAll } = await import("./harness.ts");
    const child = spawnHandle("sh", ["-c", 'echo "$0 $(pwd)"'], { argv0: "custom-name", cwd: dir, stdout: "piped" });
    assert.equal(new TextDecoder().decode(await readAll(child.stdout!)), `custom-name ${dir}\n`);
    assert.equal((await child.wait()).code, 0);
  },
);

test("cleanup", () => rmSync(dir, { recursive: true, force: true }));

test("the child gets the host's environment as it is at spawn time, changes included", async () => {
  const { readAll } = await import("./harness.ts");
  const { default: process } = await import("node:process");
  const seen = async (options: object = {}) => {
    const child = spawnHandle("/usr/bin/env", [], { stdout: "piped", ...options });
    const lines = new TextDecoder().decode(await readAll(child.stdout!)).split("\n");
    await child.wait();
    return lines;
  };
  process.env.PH_LIVE_TEST = "first";
  assert.ok((await seen()).includes("PH_LIVE_TEST=first"));
  process.env.PH_LIVE_TEST = "second";
  assert.ok((await seen()).includes("PH_LIVE_TEST=second"));
  // An explicit environment in between leaves nothing behind for the next plain spawn.
  assert.ok((await seen({ env: { PH_ONCE: "1" } })).includes("PH_ONCE=1"));
  const again = await seen();
  assert.ok(again.includes("PH_LIVE_TEST=second"));
  assert.equal(again.some((l) => l.startsWith("PH_ONCE=")), false);
  delete process.env.PH_LIVE_TEST;
  assert.equal((await seen()).some((l) => l.startsWith("PH_LIVE_TEST=")), false);
});
