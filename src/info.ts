/**
 * `backendInfo()` and `reaperInfo()`: what the library is doing, for diagnostics and tests.
 *
 * @module
 */
import { CgroupStep, Info, TreeMode } from "../ffi/abi.ts";
import { loadRuntime } from "../ffi/runtime.ts";
import type { Native } from "../ffi/mod.ts";
import { usesRuntimeBackend } from "./backend.ts";
import { getNative } from "./registry.ts";

/**
 * A snapshot of the library's state in this process.
 *
 * @example
 * ```ts
 * import { type ReaperInfo, reaperInfo } from "@private-spawn/private-spawn";
 * const info: ReaperInfo = reaperInfo();
 * console.log(info.cloneMode, info.pidfd, info.fdTable, info.pollWindowUs);
 * ```
 */
export interface ReaperInfo {
  /** The reaper's pid, or 0 before the first spawn. */
  reaperPid: number;
  /** How many reapers this process has started (more than 1 after one died). */
  reapersStarted: number;
  /**
   * How children are created: "clone3", "clone" (fallback), "fork" (the helper where clones with
   * shared memory are refused, as under qemu-user), or "unknown" before the first spawn.
   */
  cloneMode: "clone3" | "clone" | "fork" | "unknown";
  /** Whether children are held by pidfds (false on kernels without them). */
  pidfd: boolean;
  /**
   * How a child gets its descriptor table: "needed" copies only the host's descriptors below
   * the highest one it is given (not the pidfds of live children), "whole" copies all of them
   * (kernels before 5.9, or a seccomp filter that refuses `close_range`'s unshare), "unknown"
   * before the first spawn.
   */
  fdTable: "needed" | "whole" | "unknown";
  /**
   * How long the reaper keeps polling after an event before it sleeps, in microseconds: 200,
   * or 1000 while recently reaped children lived shorter than that (a poll that catches the
   * exit saves a cross-CPU wake-up; it costs the reaper up to that much CPU per event).
   */
  pollWindowUs: number;
  /** Children whose exit has not been delivered yet. */
  slotsInUse: number;
  /** The most children that can be tracked at once. */
  slotsMax: number;
  /** The shared library in use. */
  libraryPath: string;
  /** "deno" or "bun". */
  runtime: string;
}

/**
 * The library's state in this process.
 *
 * @deprecated Use {@linkcode backendInfo}, which also names the backend; `reaperPid` here is
 * the pid of the helper when the `helper` backend runs.
 *
 * @example
 * ```ts
 * import { reaperInfo, spawnHandle } from "@private-spawn/private-spawn";
 * await spawnHandle("true").wait();
 * console.log(reaperInfo().reaperPid > 0); // true
 * ```
 */
export function reaperInfo(): ReaperInfo {
  const native = getNative();
  const view = readInfo(native);
  const mode = view.getUint32(Info.clone_mode, true);
  return {
    reaperPid: view.getInt32(Info.reaper_pid, true),
    reapersStarted: view.getUint32(Info.reapers_started, true),
    cloneMode: mode === 1 ? "clone3" : mode === 2 ? "clone" : mode === 3 ? "fork" : "unknown",
    pidfd: view.getUint32(Info.pidfd, true) === 1,
    fdTable: fdTableName(view.getUint32(Info.fd_table, true)),
    pollWindowUs: view.getUint32(Info.poll_window_us, true),
    slotsInUse: view.getUint32(Info.slots_in_use, true),
    slotsMax: view.getUint32(Info.slots_max, true),
    libraryPath: native.libraryPath,
    runtime: native.runtime,
  };
}

/** Which backend keeps the children private, and what it guarantees. */
export interface BackendInfo {
  /**
   * "reaper": the invisible reaper (Linux); "helper": a helper process that owns the children
   * (forced with `PRIVATE_SPAWN_BACKEND=helper`, or where the reaper cannot be created, as
   * under qemu-user); "runtime": the runtime's own spawn (`Deno.Command`, `Bun.spawn`), the
   * default on Windows and forced elsewhere with `PRIVATE_SPAWN_BACKEND=runtime`; "pdfork":
   * FreeBSD's process descriptors, the library forks each child itself (on Linux, forced in a
   * glibc build, the same code over stand-ins that are not private).
   */
  backend: "reaper" | "helper" | "pdfork" | "runtime";
  /**
   * Whether children stay private: no SIGCHLD for them, never seen by the host's waitpid(-1).
   * False for the `runtime` backend on POSIX (the runtime's children are the host's own).
   */
  private: boolean;
  /**
   * Whether `child.fd` gives a descriptor that polls at the child's exit: a pidfd (readable),
   * the helper's exit pipe (readable), FreeBSD's process descriptor (POLLHUP).
   */
  pollableFd: boolean;
  /** The reaper's or the helper's pid; 0 before the first spawn, and always 0 for `runtime`. */
  pid: number;
  /**
   * What `sendSignal(sig, { tree: true })` and `killOnParentExit` reach. "cgroup": a child
   * spawned with `cgroup` (the default with `killOnParentExit`) runs in a cgroup v2 of its
   * own, and every process in it is reached, double-forked ones included (SIGKILL through
   * `cgroup.kill`); other children as "descendants". "descendants": the child and every
   * process whose chain of parents leads to it (through `setsid` too, not past a parent that
   * exited). null without pidfds (or before the first spawn), where a tree signal throws, and
   * on the runtime backend.
   */
  tree: "cgroup" | "descendants" | null;
  /**
   * Why `tree` is not "cgroup" although pidfds work, e.g. "no cgroup2 mount", "mkdir: EACCES"
   * (the host's cgroup is not writable), "clone3: ENOSYS" (no `CLONE_INTO_CGROUP` without it).
   */
  treeFallbackReason?: string;
  /** Why the reaper is not used although it was not forced off (e.g. "clone: EINVAL"). */
  fallbackReason?: string;
  /** How many reapers or helpers this process has started (more than 1 after one died). */
  started: number;
  /** The shared library in use; "" for `runtime` (no library is loaded). */
  libraryPath: string;
  /**
   * The library's build id, 8 hex digits: a hash of its sources. A helper must have the same
   * one (it is checked when the helper starts). "" for `runtime`.
   */
  buildId: string;
  /**
   * How many spawns the reaper answered asynchronously (`spawnHandleAsync`, `run`, `output`):
   * queued by the JavaScript thread, which went on meanwhile. 0 on the other backends, whose
   * spawns all complete in the call.
   */
  spawnsQueued: number;
  /** "deno" or "bun". */
  runtime: string;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  7: "E2BIG",
  13: "EACCES",
  16: "EBUSY",
  22: "EINVAL",
  24: "EMFILE",
  30: "EROFS",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  95: "EOPNOTSUPP",
};

const CGROUP_STEPS: Record<number, string> = {
  [CgroupStep.mount]: "no cgroup2 mount",
  [CgroupStep.hostCgroup]: "the host's cgroup v2 path is unknown",
  [CgroupStep.mkdir]: "mkdir",
  [CgroupStep.clone3]: "clone3",
  [CgroupStep.intoCgroup]: "clone3 CLONE_INTO_CGROUP",
  [CgroupStep.pidfd]: "no pidfds",
};

const errnoName = (errno: number) => ERRNO_NAMES[errno] ?? `errno ${errno}`;

/**
 * Which backend keeps this process's children private, and what it guarantees.
 *
 * @example
 * ```ts
 * import { backendInfo, spawnHandle } from "@private-spawn/private-spawn";
 * await spawnHandle("true").wait();
 * const info = backendInfo();
 * console.log(info.backend, info.private, info.pid > 0); // "reaper" true true (on Linux)
 * if (info.fallbackReason) console.log(`not the reaper: ${info.fallbackReason}`);
 * ```
 */
export function backendInfo(): BackendInfo {
  if (usesRuntimeBackend()) {
    const runtime = loadRuntime();
    return {
      backend: "runtime",
      private: runtime.private,
      pollableFd: false,
      tree: null,
      pid: 0,
      started: 0,
      libraryPath: "",
      buildId: "",
      spawnsQueued: 0,
      runtime: runtime.runtime,
    };
  }
  const native = getNative();
  const view = readInfo(native);
  const fallback = view.getInt32(Info.fallback_errno, true);
  const info: BackendInfo = {
    backend: BACKEND_NAMES[view.getUint32(Info.backend, true)] ?? "reaper",
    private: view.getUint32(Info.private, true) === 1,
    // 1: pidfds; 2: the portable helper's exit pipes (pollable, not pidfds); 3: process descriptors.
    pollableFd: view.getUint32(Info.pidfd, true) !== 0,
    tree: treeName(view.getUint32(Info.tree, true)),
    pid: view.getInt32(Info.reaper_pid, true),
    started: view.getUint32(Info.reapers_started, true),
    libraryPath: native.libraryPath,
    buildId: hexId(view.getUint32(Info.build_id, true)),
    spawnsQueued: view.getUint32(Info.spawns_queued, true),
    runtime: native.runtime,
  };
  if (fallback !== 0) info.fallbackReason = `the reaper's clone failed: ${errnoName(fallback)}`;
  const step = view.getUint32(Info.cgroup_step, true);
  if (info.tree === "descendants" && step !== CgroupStep.none) {
    const errno = view.getInt32(Info.cgroup_errno, true);
    const what = CGROUP_STEPS[step] ?? `step ${step}`;
    info.treeFallbackReason = step === CgroupStep.mount || step === CgroupStep.hostCgroup
      ? what
      : `${what}: ${errnoName(errno)}`;
  }
  return info;
}

/** `abi.Backend` by number. */
const BACKEND_NAMES: Record<number, BackendInfo["backend"]> = { 1: "reaper", 2: "helper", 3: "pdfork" };

function treeName(mode: number): BackendInfo["tree"] {
  if (mode === TreeMode.cgroup) return "cgroup";
  return mode === TreeMode.descendants ? "descendants" : null;
}

/** `Info.fd_table`: 1 only the needed descriptors; 2 and 3 the whole table (in the child, at clone). */
function fdTableName(mode: number): ReaperInfo["fdTable"] {
  if (mode === 1) return "needed";
  return mode === 2 || mode === 3 ? "whole" : "unknown";
}

const clockBuffer = new Uint8Array(8);
const clockView = new DataView(clockBuffer.buffer);

/**
 * The build ids of this library and of the last helper that refused it at the hand-shake
 * (a helper built from other sources), 8 hex digits each; undefined when none refused it.
 */
export function refusedHelperBuild(): { library: string; helper: string } | undefined {
  if (usesRuntimeBackend()) return undefined;
  const view = readInfo(getNative());
  const helper = view.getUint32(Info.helper_refused_build_id, true);
  if (helper === 0) return undefined;
  return { library: hexId(view.getUint32(Info.build_id, true)), helper: hexId(helper) };
}

const hexId = (id: number) => id.toString(16).padStart(8, "0");

/** The library's `ph_info`, fresh, as a view at `Info`'s offsets. */
function readInfo(native: Native): DataView {
  const out = new Uint8Array(Info.size);
  native.info(out);
  return new DataView(out.buffer);
}

/**
 * `CLOCK_MONOTONIC` in nanoseconds: the clock a child can stamp with (neither runtime's
 * `process.hrtime` uses it). For benchmarks and latency measurements.
 *
 * @example
 * ```ts
 * import { monotonicNs } from "@private-spawn/private-spawn";
 * const start = monotonicNs();
 * console.log(monotonicNs() >= start); // true
 * ```
 */
export function monotonicNs(): bigint {
  getNative().clockMonotonic(clockBuffer);
  return clockView.getBigUint64(0, true);
}
