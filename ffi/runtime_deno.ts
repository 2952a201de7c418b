/**
 * The `runtime` backend on Deno: `Deno.Command(...).spawn()`.
 *
 * @module
 */
import type { PipeWriter } from "./native.ts";
import {
  capOutputs,
  pipeError,
  type RuntimeChild,
  type RuntimeSpawner,
  RuntimeSpawnError,
  type RuntimeSpawnRequest,
  type RuntimeSyncOptions,
  type RuntimeSyncResult,
  streamReader,
} from "./runtime.ts";

interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal?: string): void;
  ref(): void;
  unref(): void;
}
interface DenoOutput {
  readonly code: number;
  readonly signal: string | null;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}
interface DenoApi {
  Command: new (command: string, options: Record<string, unknown>) => { spawn(): DenoChild; outputSync(): DenoOutput };
  env: { toObject(): Record<string, string>; get(name: string): string | undefined };
}
const deno = (): DenoApi => (globalThis as unknown as { Deno: DenoApi }).Deno;

/** Deno's error classes by the errno name they stand for. */
const ERROR_CODES: Record<string, string> = {
  NotFound: "ENOENT",
  PermissionDenied: "EACCES",
  NotADirectory: "ENOTDIR",
  InvalidData: "EINVAL",
};

/** POSIX errno names by number, for Deno's "(os error N)". */
const POSIX_ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  7: "E2BIG",
  8: "ENOEXEC",
  13: "EACCES",
  20: "ENOTDIR",
};
/** Windows error codes by the errno name they stand for. */
const WINDOWS_ERROR: Record<number, string> = { 2: "ENOENT", 3: "ENOENT", 5: "EACCES", 193: "ENOEXEC", 206: "E2BIG" };

function osErrorCode(error: unknown, windows: boolean): string | undefined {
  const match = /\(os error (\d+)\)/.exec(String((error as Error)?.message));
  if (match === null) return undefined;
  return (windows ? WINDOWS_ERROR : POSIX_ERRNO)[Number(match[1])];
}

export function openRuntimeDeno(isPrivate: boolean): RuntimeSpawner {
  return {
    runtime: "deno",
    argv0: false,
    private: isPrivate,
    hostEnviron: 0n,
    environment: () => deno().env.toObject(),
    getEnv: (name) => deno().env.get(name),
    spawn(request) {
      let child: DenoChild;
      try {
        child = new (deno().Command)(request.command, {
          args: [...request.args],
          cwd: request.cwd ?? undefined,
          env: request.env,
          clearEnv: true,
          stdin: request.stdin,
          stdout: request.stdout,
          stderr: request.stderr,
        }).spawn();
      } catch (error) {
        throw spawnError(error, isPrivate);
      }
      const wrapped: RuntimeChild = {
        pid: child.pid,
        stdin: request.stdin === "piped" ? streamWriter(child.stdin) : null,
        stdout: request.stdout === "piped" ? streamReader(child.stdout) : null,
        stderr: request.stderr === "piped" ? streamReader(child.stderr) : null,
        exited: child.status.then((status) => ({
          code: status.signal === null ? status.code : null,
          signal: status.signal,
        })),
        kill: (signal) => child.kill(signal),
        ref: () => child.ref(),
        unref: () => child.unref(),
      };
      return wrapped;
    },
    sync: { input: false, timeout: false },
    spawnSync: (request, options) => spawnSyncDeno(request, options, isPrivate),
  };
}

/** Deno's refusal of a spawn as a `RuntimeSpawnError` with the errno's name where known. */
function spawnError(error: unknown, windows: boolean): RuntimeSpawnError {
  const name = (error as Error)?.name ?? "";
  const code = (error as { code?: string }).code ?? osErrorCode(error, windows) ?? ERROR_CODES[name] ?? null;
  return new RuntimeSpawnError(code, error);
}

/**
 * `Deno.Command.outputSync()`: no stdin to feed and no way to stop the child, so the caller
 * refuses `input` and `timeout`, and `maxBuffer` can only cut what was read once it ended.
 */
function spawnSyncDeno(request: RuntimeSpawnRequest, options: RuntimeSyncOptions, windows: boolean): RuntimeSyncResult {
  let output: DenoOutput;
  try {
    output = new (deno().Command)(request.command, {
      args: [...request.args],
      cwd: request.cwd ?? undefined,
      env: request.env,
      clearEnv: true,
      // An empty piped stdin is end of input at once, as /dev/null is.
      stdin: request.stdin === "piped" ? "null" : request.stdin,
      stdout: request.stdout,
      stderr: request.stderr,
    }).outputSync();
  } catch (error) {
    throw spawnError(error, windows);
  }
  const capped = capOutputs(
    request.stdout === "piped" ? output.stdout : new Uint8Array(0),
    request.stderr === "piped" ? output.stderr : new Uint8Array(0),
    options.maxBuffer,
  );
  return {
    pid: 0,
    exit: { code: output.signal === null ? output.code : null, signal: output.signal },
    stdout: capped.stdout,
    stderr: capped.stderr,
    timedOut: false,
    overflowed: capped.overflowed,
    overflowKilled: false,
  };
}

/** Writes a WritableStream as a `PipeWriter`. */
function streamWriter(stream: WritableStream<Uint8Array>): PipeWriter {
  const writer = stream.getWriter();
  let closed = false;
  return {
    write: (chunk) => writer.write(chunk).catch((error) => Promise.reject(pipeError(error))),
    async end() {
      if (closed) return;
      closed = true;
      await writer.close().catch((error) => Promise.reject(pipeError(error)));
    },
    close() {
      if (closed) return;
      closed = true;
      writer.abort().catch(() => {});
    },
  };
}
