/**
 * Private child processes for Deno and Bun. A child spawned here is invisible to the host's
 * `SIGCHLD` handlers and `waitpid(-1)` loops, is held by a pidfd (signals can never hit a
 * recycled pid), and its exit reaches JavaScript without a thread per child.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("sh", ["-c", "exit 3"]);
 * const status = await child.wait();
 * console.log(status.code); // 3
 * ```
 *
 * @module
 */
import { ProcessHandle, spawnHandle } from "./src/process_handle.ts";
import type { ProcessStatus } from "./src/status.ts";

export {
  DEFAULT_MAX_BUFFER,
  HandleClosedError,
  ProcessHandle,
  spawnHandle,
  spawnHandleAsync,
} from "./src/process_handle.ts";
export type {
  OutputOptions,
  PipedStream,
  ProcessOutput,
  SendSignalOptions,
  SpawnedHandle,
} from "./src/process_handle.ts";
export type { ProcessReadableStream, StdinSource } from "./src/streams.ts";
export type { ProcessStatus, ResourceUsage } from "./src/status.ts";
export type {
  ExtraFd,
  FileTarget,
  PtySize,
  RlimitName,
  RlimitValue,
  SpawnOptions,
  StderrOption,
  StdinOption,
  Stdio,
} from "./src/options.ts";
export { MaxBufferError, ProcessError, ReaperDiedError, SpawnError } from "./src/errors.ts";
export { BackendUnsupportedError } from "./src/backend.ts";
export type { BackendName } from "./src/backend.ts";
export type { CommandResult, MaxBufferRead, SpawnErrorDetails } from "./src/errors.ts";
export { LibraryError } from "./ffi/mod.ts";
export type { LibraryErrorCode } from "./ffi/mod.ts";
export { outputSync, popen3, run, runSync } from "./src/run.ts";
export type { Popen3, RunOptions } from "./src/run.ts";
export { backendInfo, monotonicNs, reaperInfo } from "./src/info.ts";
export type { BackendInfo, ReaperInfo } from "./src/info.ts";
export { signalName, signalNumber, UnknownSignalError } from "./src/signals.ts";
export type { Signal, SignalName, SignalShortName, StandardSignalName } from "./src/signals.ts";

/**
 * The original proposal's names (Ruby Feature #19322): `Process.spawnHandle`,
 * `Process.Handle`; `Process.Status` is a type (`Process.Status`).
 *
 * @example
 * ```ts
 * import { Process } from "@private-spawn/private-spawn";
 * const handle: Process.Handle = Process.spawnHandle("true");
 * const status: Process.Status = await handle.wait();
 * ```
 */
export const Process: { readonly spawnHandle: typeof spawnHandle; readonly Handle: typeof ProcessHandle } = Object
  .freeze({ spawnHandle, Handle: ProcessHandle });

/**
 * Types of the `Process` namespace object.
 *
 * @example
 * ```ts
 * import { Process } from "@private-spawn/private-spawn";
 * const handle: Process.Handle = Process.spawnHandle("true");
 * const status: Process.Status = await handle.wait();
 * console.log(status.success); // true
 * ```
 */
export declare namespace Process {
  /** `ProcessHandle`. */
  export type Handle = ProcessHandle;
  /** `ProcessStatus`. */
  export type Status = ProcessStatus;
}
