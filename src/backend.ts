/**
 * The seam under `ProcessHandle`: what a handle needs from its child, whichever backend made
 * it. The native backends (reaper, helper) reach their children through the library's slots
 * (`spawnPlanned` in process_handle.ts); the `runtime` backend through the runtime's own
 * spawn (`ffi/runtime.ts`), adapted here. Runtime- and OS-neutral.
 *
 * @module
 */
import { statSync } from "node:fs";
import { FdKind } from "../ffi/abi.ts";
import { loadNative } from "../ffi/mod.ts";
import {
  loadRuntime,
  runtimeBackendSelected,
  type RuntimeChild,
  type RuntimeExit,
  type RuntimeSpawner,
  RuntimeSpawnError,
  type RuntimeSpawnRequest,
  type RuntimeStdio,
  type RuntimeSyncResult,
} from "../ffi/runtime.ts";
import { errnoNumber, SpawnError } from "./errors.ts";
import type { HostEnvironment, SpawnPlan } from "./options.ts";
import { signalName } from "./signals.ts";
import type { ProcessStatus } from "./status.ts";

/** The backends `backendInfo()` can name. */
export type BackendName = "reaper" | "helper" | "pdfork" | "runtime";

/**
 * Thrown for an operation a backend cannot do at all (`waitSync` on the `runtime` backend):
 * it names the operation and the backend.
 */
export class BackendUnsupportedError extends Error {
  /** Always "ERR_BACKEND_UNSUPPORTED". */
  readonly code = "ERR_BACKEND_UNSUPPORTED";
  /** The backend that cannot do it. */
  readonly backend: BackendName;
  /** What was attempted, like "waitSync()". */
  readonly operation: string;
  /** An error for `operation` on `backend`, with why. */
  constructor(operation: string, backend: BackendName, why: string) {
    super(`${operation} is not supported by the "${backend}" backend: ${why}`);
    this.name = "BackendUnsupportedError";
    this.backend = backend;
    this.operation = operation;
  }
}

/**
 * A child as the handle sees it, on a backend without the library's slots. Its exit arrives
 * once through `onExit`; `rusage` is null there (neither runtime reports it on every OS).
 */
export interface BackendChild {
  readonly pid: number;
  /** Sends `signal`; false once the child has exited. */
  signal(signal: number): boolean;
  /** Called once with the status at the exit. */
  onExit(callback: (status: ProcessStatus) => void): void;
  /** Keep the event loop alive until the exit (the default). */
  ref(): void;
  unref(): void;
}

/** Whether the `runtime` backend runs here (Windows, or `PRIVATE_SPAWN_BACKEND=runtime`). */
export function usesRuntimeBackend(): boolean {
  return runtimeBackendSelected();
}

/** Where `planSpawn` reads the host's environment: the runtime, or the native binding. */
export function hostEnvironment(): HostEnvironment {
  return runtimeBackendSelected() ? loadRuntime() : loadNative();
}

/** A TypeError for an option the `runtime` backend cannot honour, naming both. */
export function unsupportedOption(option: string, why: string): TypeError {
  const error = new TypeError(`Option "${option}" is not supported by the "runtime" backend: ${why}`);
  (error as TypeError & { code: string }).code = "ERR_BACKEND_OPTION";
  return error;
}

const STREAM_NAMES = ["stdin", "stdout", "stderr"] as const;

/** The standard streams as the runtime takes them; anything else is refused. */
function runtimeStdio(plan: SpawnPlan): [RuntimeStdio, RuntimeStdio, RuntimeStdio] {
  const out: RuntimeStdio[] = ["inherit", "inherit", "inherit"];
  for (const action of plan.actions) {
    if (action.target > 2) {
      throw unsupportedOption(`fds.${action.target}`, "the runtimes give a child only stdin, stdout and stderr");
    }
    const name = STREAM_NAMES[action.target];
    if (action.kind === FdKind.inherit) out[action.target] = "inherit";
    else if (action.kind === FdKind.devnull) out[action.target] = "null";
    else if (action.kind === FdKind.pipeToChild || action.kind === FdKind.pipeFromChild) out[action.target] = "piped";
    else if (action.kind === FdKind.copy) {
      throw unsupportedOption(name, '"stdout" (one pipe for both) is not something Deno.Command can do');
    } else if (action.kind === FdKind.dup) {
      throw unsupportedOption(name, 'a host descriptor number (use "piped", "inherit" or "null")');
    } else {
      throw unsupportedOption(name, 'a file (use "piped" and write the file from the stream)');
    }
  }
  return out as [RuntimeStdio, RuntimeStdio, RuntimeStdio];
}

/** Refuses every option the runtime cannot honour; nothing is silently ignored. */
function refuseUnsupported(plan: SpawnPlan, argv0: boolean): void {
  if (plan.inheritFds.length > 0) {
    throw unsupportedOption("inheritFds", "the runtimes pass a child no descriptor beyond stdin, stdout and stderr");
  }
  if (plan.pgroup !== null) throw unsupportedOption("pgroup", "the runtimes cannot place a child in a process group");
  if (plan.setsid) throw unsupportedOption("setsid", "the runtimes cannot start a child in a new session");
  if (plan.umask !== null) throw unsupportedOption("umask", "the runtimes cannot set a child's umask");
  if (plan.rlimits.length > 0) throw unsupportedOption("rlimits", "the runtimes cannot set a child's resource limits");
  if (plan.uid !== null) throw unsupportedOption("uid", "not offered by both runtimes (and meaningless on Windows)");
  if (plan.gid !== null) throw unsupportedOption("gid", "not offered by both runtimes (and meaningless on Windows)");
  if (plan.groups !== null) throw unsupportedOption("groups", "the runtimes cannot set supplementary groups");
  if (plan.keepIgnoredSignals) {
    throw unsupportedOption("keepIgnoredSignals", "the runtimes decide the child's signal dispositions");
  }
  if (plan.killOnExitSignal !== 0) {
    throw unsupportedOption(
      "killOnParentExit",
      "the runtimes have no way to signal a child when the host dies (no PR_SET_PDEATHSIG, no job object)",
    );
  }
  if (plan.cgroup) throw unsupportedOption("cgroup", "the runtimes cannot start a child in a cgroup of its own");
  if (!argv0 && plan.argv[0] !== plan.command) {
    throw unsupportedOption("argv0", "Deno.Command cannot set argv[0] (Bun.spawn can)");
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A child spawned by the runtime, with its pipe ends. */
export interface RuntimeSpawned {
  child: BackendChild;
  raw: RuntimeChild;
}

const ERRNO_NUMBERS_FALLBACK = 5; // EIO: the runtime gave no errno name.

/** The plan as the runtime takes it; every option it cannot honour throws a TypeError. */
function runtimeRequest(plan: SpawnPlan, runtime: RuntimeSpawner): RuntimeSpawnRequest {
  if (plan.pty !== null) {
    throw unsupportedOption(
      "pty",
      "Deno.Command has no pseudo-terminal, and Bun.spawn's terminal is not wired to this backend",
    );
  }
  refuseUnsupported(plan, runtime.argv0);
  const [stdin, stdout, stderr] = runtimeStdio(plan);
  const env: Record<string, string> = {};
  for (const entry of plan.env) {
    const at = entry.indexOf("=");
    env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return {
    command: plan.command,
    args: plan.args,
    argv0: plan.argv[0] === plan.command ? null : plan.argv[0],
    cwd: plan.cwd,
    env,
    stdin,
    stdout,
    stderr,
  };
}

/** The runtime's refusal of a spawn as a SpawnError; anything else is rethrown as it is. */
function runtimeSpawnError(plan: SpawnPlan, error: unknown): unknown {
  if (!(error instanceof RuntimeSpawnError)) return error;
  const errno = error.code === null ? ERRNO_NUMBERS_FALLBACK : errnoNumber(error.code) ?? ERRNO_NUMBERS_FALLBACK;
  // The runtimes do not say which step failed: a working directory that cannot be entered
  // is the chdir, anything else the program's exec.
  const chdir = plan.cwd !== null && !isDirectory(plan.cwd);
  const spawnError = new SpawnError({
    errno: chdir ? errnoNumber("ENOENT")! : errno,
    syscall: chdir ? "chdir" : "execve",
    command: plan.command,
    args: plan.args,
    path: chdir ? plan.cwd! : plan.command,
    searchPath: chdir ? undefined : plan.searchPath ?? undefined,
  });
  (spawnError as { cause?: unknown }).cause = error.cause;
  return spawnError;
}

/** What `outputSync` gets from a child the runtime ran to its end. */
export interface RuntimeSyncOutput {
  /** Its pid is 0 where the runtime does not report one (Deno's `outputSync`). */
  status: ProcessStatus;
  stdout: Uint8Array;
  stderr: Uint8Array;
  timedOut: boolean;
  overflowed: "stdout" | "stderr" | null;
  overflowKilled: boolean;
}

/**
 * Runs a validated plan to its end with the runtime's own sync spawn (`Bun.spawnSync`,
 * `Deno.Command.outputSync`), blocking the thread. What that runtime cannot do there
 * (`input` and `timeout` on Deno, `forceKillAfter` on both) is a TypeError naming it.
 */
export function outputSyncRuntime(plan: SpawnPlan, input: Uint8Array | null): RuntimeSyncOutput {
  const runtime = loadRuntime();
  const request = runtimeRequest(plan, runtime);
  const name = runtime.runtime === "deno" ? "Deno.Command's outputSync()" : "Bun.spawnSync";
  if (input !== null && input.length > 0 && !runtime.sync.input) {
    throw unsupportedOption("input", `${name} cannot feed a child's stdin (use run() or output())`);
  }
  if (plan.timeout !== null && !runtime.sync.timeout) {
    throw unsupportedOption("timeout", `${name} cannot stop a child (use run() or output())`);
  }
  if (plan.timeout !== null && plan.forceKillAfter !== null) {
    throw unsupportedOption("forceKillAfter", `${name} sends one signal only (use run(), or killSignal: "SIGKILL")`);
  }
  let result: RuntimeSyncResult;
  try {
    result = runtime.spawnSync(request, {
      input,
      timeoutMs: plan.timeout,
      killSignal: signalName(plan.killSignal),
      maxBuffer: plan.maxBuffer,
    });
  } catch (error) {
    throw runtimeSpawnError(plan, error);
  }
  return { ...result, status: runtimeStatus(result.pid, result.exit) };
}

/** A runtime child's exit as a frozen status (no rusage: neither runtime reports it everywhere). */
function runtimeStatus(pid: number, exit: RuntimeExit): ProcessStatus {
  return Object.freeze({
    pid,
    exited: true,
    code: exit.code,
    signal: exit.signal as ProcessStatus["signal"],
    coreDumped: false,
    success: exit.code === 0,
    rusage: null,
  });
}

/** Spawns a validated plan with the runtime's own spawn; a refused option throws a TypeError. */
export function spawnRuntime(plan: SpawnPlan): RuntimeSpawned {
  const runtime = loadRuntime();
  const request = runtimeRequest(plan, runtime);
  let raw: RuntimeChild;
  try {
    raw = runtime.spawn(request);
  } catch (error) {
    throw runtimeSpawnError(plan, error);
  }
  let status: ProcessStatus | null = null;
  const callbacks: ((status: ProcessStatus) => void)[] = [];
  raw.exited.then((exit) => {
    status = runtimeStatus(raw.pid, exit);
    for (const callback of callbacks.splice(0)) callback(status);
  });
  const child: BackendChild = {
    pid: raw.pid,
    signal(number) {
      if (status !== null) return false;
      // The null signal only probes: the child runs until its exit is reported.
      if (number === 0) return true;
      try {
        raw.kill(signalName(number));
      } catch (error) {
        if (status !== null) return false;
        const refused = new TypeError(
          `Cannot send ${signalName(number)} to pid ${raw.pid} on the "runtime" backend: ${(error as Error).message}`,
        );
        (refused as TypeError & { code: string }).code = "ERR_BACKEND_SIGNAL";
        throw refused;
      }
      return true;
    },
    onExit(callback) {
      if (status !== null) callback(status);
      else callbacks.push(callback);
    },
    ref: () => raw.ref(),
    unref: () => raw.unref(),
  };
  return { child, raw };
}
