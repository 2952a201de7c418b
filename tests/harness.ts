/**
 * One test suite for both runtimes: `test()` registers with `Deno.test` under Deno and with
 * `bun:test` under Bun; the helpers observe processes through /proc.
 */
import { spawn as nodeSpawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isBun } from "../ffi/mod.ts";

export { isBun };
export const runtime = isBun ? "bun" : "deno";
/**
 * Whether this runtime runs under a user-mode emulator such as qemu-user (scripts/test_aarch64.sh):
 * the kernel's own machine, `/proc/sys/kernel/arch` (Linux 6.1+; qemu-user passes it through,
 * while it answers `uname` with the emulated machine), is not the one the runtime was built for.
 * False where that file is missing.
 */
export const QEMU: boolean = emulated();

function emulated(): boolean {
  const machines: Record<string, string> = { arm64: "aarch64", x64: "x86_64" };
  let kernel: string;
  try {
    kernel = readFileSync("/proc/sys/kernel/arch", "utf8").trim();
  } catch {
    return false;
  }
  const built = machines[process.arch];
  return built !== undefined && kernel !== "" && kernel !== built;
}

/**
 * What a runtime started with a cleared environment (`clearEnv`) needs to start at all: under
 * qemu-user, `QEMU_LD_PREFIX` (where the emulated runtime's libc is); elsewhere nothing.
 */
export const RUNTIME_ENV: Record<string, string> = QEMU && process.env.QEMU_LD_PREFIX
  ? { QEMU_LD_PREFIX: process.env.QEMU_LD_PREFIX }
  : {};

/** A fault forced by tests/fault/seccomp_launcher.c. */
export type Fault =
  | ""
  | "clone3-enosys"
  | "clone3-eperm"
  | "no-pidfd"
  | "no-close-range"
  | "no-unshare"
  | "no-reaper"
  | "qemu";
/** The fault forced for this run, if any. */
export const FAULT: Fault = (process.env.PH_FAULT ?? "") as Fault;
/**
 * The backend this run uses (`backendInfo().backend`): forced by `PRIVATE_SPAWN_BACKEND`, or
 * the helper where the reaper is refused (the no-reaper fault, and qemu-user, which refuses
 * `clone(CLONE_VM)` without `CLONE_THREAD` with EINVAL).
 */
export const BACKEND: "reaper" | "helper" | "pdfork" | "runtime" = process.env.PRIVATE_SPAWN_BACKEND === "runtime"
  ? "runtime"
  : process.env.PRIVATE_SPAWN_BACKEND === "pdfork"
  ? "pdfork"
  : process.env.PRIVATE_SPAWN_BACKEND === "helper" || FAULT === "no-reaper" || FAULT === "qemu" || QEMU
  ? "helper"
  : "reaper";
/** Whether the reaper was refused and the helper runs instead, so `backendInfo().fallbackReason` is set. */
export const EXPECT_FALLBACK: boolean = BACKEND === "helper" && !process.env.PRIVATE_SPAWN_BACKEND &&
  (FAULT === "no-reaper" || FAULT === "qemu" || QEMU);
/**
 * Whether the library is the portable build (`zig build posix`: libc, the portable helper that
 * macOS and FreeBSD run; `PH_PORTABLE=1` with `PRIVATE_SPAWN_LIB` and `PRIVATE_SPAWN_HELPER`).
 */
export const PORTABLE: boolean = process.env.PH_PORTABLE === "1";
/**
 * Whether clones with shared memory are refused (qemu-user, or the qemu fault): the helper is
 * launched through a forked middle process, which costs the host one SIGCHLD per helper start,
 * and its children are forked (`reaperInfo().cloneMode` "fork").
 */
export const FORKS: boolean = (FAULT === "qemu" || QEMU) && BACKEND === "helper";
/**
 * The SIGCHLDs a host sees from the library: one for the helper's launch where a middle
 * process is forked (`FORKS`) or posix_spawn'd (`PORTABLE`), else none.
 */
export const LAUNCH_SIGCHLD: number = FORKS || PORTABLE ? 1 : 0;
/**
 * Whether the `pdfork` backend runs: here, in the portable build, over its Linux stand-ins
 * (fork and pidfd_open, epoll), whose children are the host's own: not private (decision 0014).
 */
export const PDFORK: boolean = BACKEND === "pdfork";
/** Whether the `runtime` backend runs (`PRIVATE_SPAWN_BACKEND=runtime`): no library, no privacy on POSIX. */
export const RUNTIME: boolean = BACKEND === "runtime";
/** Whether spawns are queued (`spawnHandleAsync`): only the reaper queues; every other backend spawns in the call. */
export const QUEUES: boolean = BACKEND === "reaper" && !PDFORK;
/** Whether children are expected to be held by pidfds in this run. */
export const EXPECT_PIDFD = FAULT !== "no-pidfd" && !PORTABLE;
/** How children are expected to be created in this run (`reaperInfo().cloneMode`). */
export const EXPECT_CLONE = FORKS
  ? "fork"
  : FAULT === "clone3-enosys" || FAULT === "clone3-eperm" || FAULT === "no-pidfd"
  ? "clone"
  : "clone3";
/** Whether children are expected to copy only the descriptors they need (`reaperInfo().fdTable`). */
export const EXPECT_FD_TABLE = FAULT === "no-close-range" || FAULT === "no-unshare" || FORKS ? "whole" : "needed";

type TestFn = () => void | Promise<void>;
// deno-lint-ignore no-explicit-any
const bunTest: any = isBun ? (await import(["bun", "test"].join(":"))).test : null;

/** How a test is registered (every `*Test()` of this file passes them on to `test()`). */
export interface TestOptions {
  /** Bounds the test under Bun (Deno has no per-test timeout). */
  timeoutMs?: number;
  /** Reported as skipped (Bun) or ignored (Deno) without running. */
  ignore?: boolean;
  /** Why it cannot hold under qemu-user (`QEMU`): there it is skipped, with the reason in its name. */
  notUnderQemu?: string;
  /** Why it cannot hold in the portable build (`PORTABLE`; `nativeTest` only). */
  notPortable?: string;
  /** Why it cannot hold under the `pdfork` backend's Linux stand-ins (`PDFORK`), e.g. `NOT_PRIVATE`. */
  notPdfork?: string;
}

/** Why a test of the reaper's or helper's process cannot hold under `PDFORK`. */
export const NO_OWNER = "no reaper or helper process: the library forks each child";
/** Why a test of privacy cannot hold under `PDFORK` here. */
export const NOT_PRIVATE = "its Linux stand-ins fork children the host sees (SIGCHLD, waitpid(-1))";

/** Registers a test (see `TestOptions`). */
export function test(name: string, fn: TestFn, options: TestOptions = {}): void {
  if (QEMU && options.notUnderQemu !== undefined) {
    name = `${name} [skipped under qemu-user: ${options.notUnderQemu}]`;
    options = { ...options, ignore: true };
  }
  if (PDFORK && options.notPdfork !== undefined) {
    name = `${name} [skipped under pdfork: ${options.notPdfork}]`;
    options = { ...options, ignore: true };
  }
  if (isBun) {
    (options.ignore ? bunTest.skip : bunTest)(name, fn, options.timeoutMs ?? 60_000);
  } else {
    Deno.test({ name, fn, ignore: options.ignore, sanitizeOps: false, sanitizeResources: false, sanitizeExit: false });
  }
}

/**
 * Registers a test of the reaper itself (its process, its descriptors in our table, its
 * orphans). Under the helper it is skipped, and its name says why.
 */
export function reaperTest(
  name: string,
  whyNotHelper: string,
  fn: TestFn,
  options: TestOptions = {},
): void {
  if (BACKEND === "runtime") {
    test(`${name} [skipped under the runtime backend: a test of the reaper]`, fn, { ...options, ignore: true });
  } else if (BACKEND === "helper") {
    test(`${name} [skipped under the helper: ${whyNotHelper}]`, fn, { ...options, ignore: true });
  } else if (PDFORK) {
    test(`${name} [skipped under pdfork: no reaper, the library forks each child]`, fn, { ...options, ignore: true });
  } else {
    test(name, fn, options);
  }
}

/**
 * A test of what the portable helper does not do (it is Linux's own: pidfds, /proc, pipe
 * sizes, the parent-death signal): skipped in the portable build, with `whyNotPortable` in its name.
 */
export function linuxTest(
  name: string,
  whyNotPortable: string,
  fn: TestFn,
  options: TestOptions = {},
): void {
  if (PORTABLE) test(`${name} [skipped in the portable build: ${whyNotPortable}]`, fn, { ...options, ignore: true });
  else test(name, fn, options);
}

/**
 * A test of what only the native backends (reaper, helper) do: skipped under the runtime
 * backend, with `whyNotRuntime` in its name, and in the portable build when `notPortable`
 * says why.
 */
export function nativeTest(
  name: string,
  whyNotRuntime: string,
  fn: TestFn,
  options: TestOptions = {},
): void {
  if (RUNTIME) test(`${name} [skipped under the runtime backend: ${whyNotRuntime}]`, fn, { ...options, ignore: true });
  else if (PORTABLE && options.notPortable) linuxTest(name, options.notPortable, fn, options);
  else test(name, fn, options);
}

/** The descriptors open in this process, with what they point at. */
export function openFds(pid: number | "self" = "self"): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch { /* the descriptor readdir itself used */ }
  }
  return fds;
}

/** The number of threads in this process. */
export function threadCount(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
}

/** The benchmark's tiny static child (`bench/tiny.zig`), which scripts/test.sh builds. */
export const TINY: string = process.env.BENCH_TINY ?? new URL("../.tools/bench/tiny", import.meta.url).pathname;

/** The state letter of `pid` ("R", "S", "Z", …) and its parent, or null if it is gone. */
export function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0], ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/**
 * The library's cgroup directory for the host `pid` (`<host's cgroup v2>/private-spawn-<pid>`,
 * in the cgroup2 mount found in /proc/self/mountinfo), with the same directory as
 * /proc/<pid>/cgroup names it; null without a cgroup2 mount.
 */
export function cgroupDir(pid: number = process.pid): { path: string; relative: string } | null {
  let own: string | undefined;
  try {
    own = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"))?.slice(3);
  } catch {
    return null;
  }
  if (own === undefined) return null;
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [before, after] = line.split(" - ");
    if (after?.split(" ")[0] !== "cgroup2") continue;
    const [, , , root, mountPoint] = before.split(" ");
    if (root !== "/" && own !== root && !own.startsWith(`${root}/`)) continue;
    const inside = root === "/" ? own : own.slice(root.length);
    const trim = (p: string) => (p === "/" ? "" : p);
    return {
      path: `${trim(mountPoint)}${trim(inside)}/private-spawn-${pid}`,
      relative: `${trim(own)}/private-spawn-${pid}`,
    };
  }
  return null;
}

/** The child cgroups ("<n>-<signal>") in the library's directory of host `pid`. */
export function childCgroups(pid: number = process.pid): string[] {
  const dir = cgroupDir(pid);
  if (dir === null) return [];
  try {
    return readdirSync(dir.path).filter((name) => /^\d+-\d+$/.test(name));
  } catch {
    return [];
  }
}

/** The cgroup v2 path of `pid` (the "0::" line of /proc/<pid>/cgroup), or null. */
export function cgroupOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"))?.slice(3) ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether this run expects cgroup mode (`backendInfo().tree === "cgroup"`): a cgroup2 mount,
 * clone3 and pidfds (the seccomp faults take them away), and a native backend.
 */
export const EXPECT_CGROUP: boolean = process.platform === "linux" && BACKEND !== "runtime" &&
  EXPECT_PIDFD && FAULT !== "clone3-enosys" && FAULT !== "clone3-eperm" && !FORKS && hostCgroupWritable();

/** Whether a directory can be made under the host's cgroup (access(2) says no to root here). */
function hostCgroupWritable(): boolean {
  const dir = cgroupDir();
  if (dir === null) return false;
  const probe = `${dir.path}-probe`;
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/** Zombies whose parent is `ppid`. */
export function zombiesOf(ppid: number): number[] {
  const zombies: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (stat && stat.ppid === ppid && stat.state === "Z") zombies.push(Number(name));
  }
  return zombies;
}

/** The fixture's path. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** The command that runs a TypeScript file on this runtime. */
export function runtimeArgv(script: string, args: string[] = []): [string, string[]] {
  return isBun ? [process.execPath, [script, ...args]] : [process.execPath, ["run", "-A", script, ...args]];
}

export interface FixtureResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the exit of the fixture process to the EOF of its stdout. */
  eofAfterExitMs: number;
}

/** Runs a fixture script (a name in tests/fixtures, or a path) under this runtime with node:child_process. */
export function runFixture(
  name: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<FixtureResult> {
  const [cmd, argv] = runtimeArgv(name.includes("/") ? name : fixture(name), args);
  return new Promise((resolve, reject) => {
    const child = nodeSpawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let exitAt = 0;
    let exit: [number | null, string | null] = [null, null];
    let pending = 3;
    const done = () => {
      if (--pending > 0) return;
      resolve({ code: exit[0], signal: exit[1], stdout, stderr, eofAfterExitMs: eofAt - exitAt });
    };
    let eofAt = 0;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d)).on("end", () => {
      eofAt = performance.now();
      done();
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d)).on("end", done);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      exitAt = performance.now();
      exit = [code, signal];
      done();
    });
  });
}

/** Reads a whole stream into bytes. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` if it has not settled within `ms` milliseconds. */
export async function within<T>(what: string, promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects garbage (Deno needs --v8-flags=--expose-gc) and lets finalizers run. */
export async function collectGarbage(): Promise<void> {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 5; i++) {
    if (typeof g === "function") g();
    else if (isBun) (globalThis as unknown as { Bun: { gc(sync: boolean): void } }).Bun.gc(true);
    await sleep(20);
  }
}
