/**
 * `ProcessStatus`: what a child's exit looks like, decoded from the library's exit records.
 *
 * @module
 */
import { ExitKind, ExitRecord } from "../ffi/abi.ts";
import { type Signal, signalName } from "./signals.ts";

/**
 * CPU time and peak memory of an exited child, from the kernel's `struct rusage`.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "@private-spawn/private-spawn";
 * const { rusage } = await spawnHandle("true").wait();
 * console.log(rusage?.userCpuMs, rusage?.systemCpuMs, rusage?.maxRssKiB);
 * ```
 */
export interface ResourceUsage {
  /** Time spent in user mode, milliseconds. */
  userCpuMs: number;
  /** Time spent in the kernel, milliseconds. */
  systemCpuMs: number;
  /** Peak resident set size, KiB. */
  maxRssKiB: number;
}

/**
 * The state of a child: running (`exited: false`) or how it ended.
 *
 * @example
 * ```ts
 * import { type ProcessStatus, spawnHandle } from "@private-spawn/private-spawn";
 * const status: ProcessStatus = await spawnHandle("sh", ["-c", "exit 3"]).wait();
 * console.log(status.exited, status.code, status.signal, status.success); // true 3 null false
 * ```
 */
export interface ProcessStatus {
  /** The child's pid. */
  readonly pid: number;
  /** False while the child runs. */
  readonly exited: boolean;
  /** The exit code (0..255) when the child exited by itself, else null. */
  readonly code: number | null;
  /** The signal that ended the child ("SIGTERM"), else null. */
  readonly signal: Signal | null;
  /** Whether the child dumped core when the signal ended it. */
  readonly coreDumped: boolean;
  /** True for exit code 0. */
  readonly success: boolean;
  /** Resource usage once exited, else null. */
  readonly rusage: ResourceUsage | null;
}

/** The status of a child that is still running. */
export function runningStatus(pid: number): ProcessStatus {
  return Object.freeze({
    pid,
    exited: false,
    code: null,
    signal: null,
    coreDumped: false,
    success: false,
    rusage: null,
  });
}

/** The record's kind: `ExitKind.lost` means the reaper died first. */
export function recordKind(view: DataView, offset: number): number {
  return view.getInt32(offset + ExitRecord.kind, true);
}

/** Decodes one `struct ph_exit` at `offset`. */
export function decodeStatus(view: DataView, offset: number): ProcessStatus {
  const pid = view.getInt32(offset + ExitRecord.pid, true);
  const kind = view.getInt32(offset + ExitRecord.kind, true);
  const value = view.getInt32(offset + ExitRecord.value, true);
  const rusage = Object.freeze({
    userCpuMs: Number(view.getBigUint64(offset + ExitRecord.user_cpu_us, true)) / 1000,
    systemCpuMs: Number(view.getBigUint64(offset + ExitRecord.system_cpu_us, true)) / 1000,
    maxRssKiB: Number(view.getBigUint64(offset + ExitRecord.max_rss_kib, true)),
  });
  const exited = kind === ExitKind.exited;
  const signaled = kind === ExitKind.killed || kind === ExitKind.dumped;
  return Object.freeze({
    pid,
    exited: true,
    code: exited ? value : null,
    signal: signaled ? signalName(value) : null,
    coreDumped: kind === ExitKind.dumped,
    success: exited && value === 0,
    rusage,
  });
}
