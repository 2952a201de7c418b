/**
 * The `runtime` backend's view of the runtime: a child spawned by the runtime's own API
 * (`Deno.Command` or `Bun.spawn`) behind one runtime-neutral interface. The default on
 * Windows, where the runtime's own spawn is private already (no SIGCHLD, no `waitpid(-1)`);
 * forced anywhere with `PRIVATE_SPAWN_BACKEND=runtime`. No native library is loaded for it.
 *
 * @module
 */
import process from "node:process";
import { BACKEND_ENV } from "./loader.ts";
import type { PipeReader, PipeWriter } from "./native.ts";
import { openRuntimeBun } from "./runtime_bun.ts";
import { openRuntimeDeno } from "./runtime_deno.ts";

/** Where a standard stream of a runtime child goes. */
export type RuntimeStdio = "inherit" | "null" | "piped";

/** A validated spawn, in what both runtimes can honour. */
export interface RuntimeSpawnRequest {
  command: string;
  args: readonly string[];
  /** The child's `argv[0]`, only where the runtime has one (`RuntimeSpawner.argv0`). */
  argv0: string | null;
  cwd: string | null;
  /** The child's whole environment (the runtime is told to clear its own first). */
  env: Record<string, string>;
  stdin: RuntimeStdio;
  stdout: RuntimeStdio;
  stderr: RuntimeStdio;
}

/** How a runtime child ended: an exit code, or the name of the signal that ended it. */
export interface RuntimeExit {
  code: number | null;
  signal: string | null;
}

/** How the sync helpers run a child to its end on the runtime (`RuntimeSpawner.spawnSync`). */
export interface RuntimeSyncOptions {
  /** The bytes for a piped stdin, or null for none (an empty stdin). */
  input: Uint8Array | null;
  /** Milliseconds until `killSignal`, or null for none. */
  timeoutMs: number | null;
  /** The signal a timeout or an overflow sends, by name ("SIGTERM"). */
  killSignal: string;
  /** Bytes kept per piped output; past it the child gets `killSignal` where the runtime can send one. */
  maxBuffer: number;
}

/** A child run to its end by `RuntimeSpawner.spawnSync`. */
export interface RuntimeSyncResult {
  /** The child's pid, or 0 where the runtime does not say (Deno's `outputSync`). */
  pid: number;
  exit: RuntimeExit;
  /** What was read (at most `maxBuffer` bytes each); empty unless piped. */
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** The timeout's signal reached the running child. */
  timedOut: boolean;
  /** The piped output that grew past `maxBuffer` first, or null. */
  overflowed: "stdout" | "stderr" | null;
  /** Whether the overflow stopped the child (false: the runtime ran it to its end first). */
  overflowKilled: boolean;
}

/** A child the runtime spawned. */
export interface RuntimeChild {
  readonly pid: number;
  readonly stdin: PipeWriter | null;
  readonly stdout: PipeReader | null;
  readonly stderr: PipeReader | null;
  /** Resolves once, at the exit. */
  readonly exited: Promise<RuntimeExit>;
  /** Sends `signal` (a name like "SIGTERM"); throws what the runtime throws for one it cannot send. */
  kill(signal: string): void;
  ref(): void;
  unref(): void;
}

/** The runtime's spawner. */
export interface RuntimeSpawner {
  readonly runtime: "deno" | "bun";
  /** Whether the runtime can set `argv[0]` (Bun can, Deno cannot). */
  readonly argv0: boolean;
  /**
   * Whether children stay private: true on Windows (no SIGCHLD, no `waitpid(-1)`), false on
   * POSIX, where the runtime's children are the host's own and a host's SIGCHLD handler or
   * `waitpid(-1)` sees them.
   */
  readonly private: boolean;
  environment(): Record<string, string | undefined>;
  getEnv(name: string): string | undefined;
  /** libc's `environ`: never used by this backend (0). */
  readonly hostEnviron: bigint;
  /** Spawns; a refusal throws a `RuntimeSpawnError`. */
  spawn(request: RuntimeSpawnRequest): RuntimeChild;
  /**
   * What `spawnSync` can honour: Bun's `spawnSync` feeds stdin and stops a child at a timeout;
   * Deno's `outputSync` does neither.
   */
  readonly sync: { readonly input: boolean; readonly timeout: boolean };
  /** Runs a child to its end, blocking the thread; a refusal throws a `RuntimeSpawnError`. */
  spawnSync(request: RuntimeSpawnRequest, options: RuntimeSyncOptions): RuntimeSyncResult;
}

/** Thrown by `RuntimeSpawner.spawn` when the runtime refused the spawn. */
export class RuntimeSpawnError extends Error {
  /** The errno's name when the runtime gave one ("ENOENT", "EACCES"), else null. */
  readonly code: string | null;
  constructor(code: string | null, cause: unknown) {
    super(String((cause as Error)?.message ?? cause), { cause });
    this.code = code;
  }
}

let selected: boolean | null = null;

/**
 * Whether the `runtime` backend runs: on Windows by default, elsewhere when forced. Decided once
 * per realm, at the first use (as the native library is loaded once, with one backend).
 */
export function runtimeBackendSelected(): boolean {
  selected ??= selectRuntimeBackend();
  return selected;
}

function selectRuntimeBackend(): boolean {
  let value: string | undefined;
  try {
    value = process.env[BACKEND_ENV];
  } catch {
    // Deno without env access: the default for this OS. Loading the library then reads the
    // variable again and reports the missing permission as a LibraryError.
    value = undefined;
  }
  if (process.platform === "win32") return value === undefined || value === "" || value === "runtime";
  return value === "runtime";
}

let spawner: RuntimeSpawner | null = null;

/** The runtime's spawner, made on first use. */
export function loadRuntime(): RuntimeSpawner {
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  spawner ??= isBun ? openRuntimeBun(process.platform === "win32") : openRuntimeDeno(process.platform === "win32");
  return spawner;
}

/** Which piped output went past `maxBuffer` first (stdout when both did), and both cut to it. */
export function capOutputs(
  stdout: Uint8Array,
  stderr: Uint8Array,
  maxBuffer: number,
): { stdout: Uint8Array; stderr: Uint8Array; overflowed: "stdout" | "stderr" | null } {
  const overflowed = stdout.length > maxBuffer ? "stdout" : stderr.length > maxBuffer ? "stderr" : null;
  const cap = (bytes: Uint8Array) => bytes.length > maxBuffer ? bytes.subarray(0, maxBuffer) : bytes;
  return { stdout: cap(stdout), stderr: cap(stderr), overflowed };
}

/** Reads a ReadableStream as a `PipeReader`. */
export function streamReader(stream: ReadableStream<Uint8Array>): PipeReader {
  const reader = stream.getReader();
  let closed = false;
  return {
    // No descriptor of ours: never handed to another child whole (`OutputPipe.handOverFd`).
    fd: -1,
    started: true,
    async read() {
      if (closed) return null;
      const { done, value } = await reader.read();
      if (done || closed) return null;
      return value;
    },
    close() {
      if (closed) return;
      closed = true;
      reader.cancel().catch(() => {});
    },
  };
}

/** A write error with `code` "EPIPE" when the child stopped reading. */
export function pipeError(error: unknown): Error {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: string }).code;
  if (e.name === "BrokenPipe" || code === "EPIPE" || code === "ECONNRESET" || /broken pipe|EPIPE/i.test(e.message)) {
    Object.defineProperty(e, "code", { value: "EPIPE", configurable: true });
  }
  return e;
}
