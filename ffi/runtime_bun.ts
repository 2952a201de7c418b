/**
 * The `runtime` backend on Bun: `Bun.spawn`.
 *
 * @module
 */
import process from "node:process";
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

interface FileSink {
  write(bytes: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}
interface Subprocess {
  readonly pid: number;
  readonly stdin: FileSink;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  kill(signal?: string | number): void;
  ref(): void;
  unref(): void;
}
interface SyncSubprocess {
  readonly exitCode: number | null;
  /** Undefined (not null) when no signal ended the child. */
  readonly signalCode?: string | null;
  readonly stdout: Uint8Array | null;
  readonly stderr: Uint8Array | null;
  readonly exitedDueToTimeout?: boolean;
  readonly pid?: number;
}
interface BunApi {
  spawn(options: Record<string, unknown>): Subprocess;
  spawnSync(options: Record<string, unknown>): SyncSubprocess;
}
const bun = (): BunApi => (globalThis as unknown as { Bun: BunApi }).Bun;

const STDIO = { inherit: "inherit", null: "ignore", piped: "pipe" } as const;

export function openRuntimeBun(isPrivate: boolean): RuntimeSpawner {
  return {
    runtime: "bun",
    argv0: true,
    private: isPrivate,
    hostEnviron: 0n,
    environment: () => process.env,
    getEnv: (name) => process.env[name],
    spawn(request) {
      let child: Subprocess;
      try {
        child = bun().spawn({
          cmd: [request.command, ...request.args],
          argv0: request.argv0 ?? undefined,
          cwd: request.cwd ?? undefined,
          env: request.env,
          stdio: [STDIO[request.stdin], STDIO[request.stdout], STDIO[request.stderr]],
        });
      } catch (error) {
        const code = (error as { code?: string }).code;
        throw new RuntimeSpawnError(typeof code === "string" ? code : null, error);
      }
      const wrapped: RuntimeChild = {
        pid: child.pid,
        stdin: request.stdin === "piped" ? sinkWriter(child.stdin) : null,
        stdout: request.stdout === "piped" ? streamReader(child.stdout) : null,
        stderr: request.stderr === "piped" ? streamReader(child.stderr) : null,
        exited: child.exited.then(() => ({
          code: child.signalCode === null ? child.exitCode : null,
          signal: child.signalCode,
        })),
        kill: (signal) => child.kill(signal),
        ref: () => child.ref(),
        unref: () => child.unref(),
      };
      return wrapped;
    },
    sync: { input: true, timeout: true },
    spawnSync: spawnSyncBun,
  };
}

/**
 * `Bun.spawnSync`: it feeds stdin, and at a timeout or past `maxBuffer` sends `killSignal`.
 * Its `exitedDueToTimeout` is also true for a child that had exited while a grandchild held its
 * pipes, so only a child ended by that signal timed out. Past `maxBuffer` it stops the child
 * in most runs but not all (seen in Bun 1.4.5 inside `bun test`): then the child ran to its end
 * and the output is cut here.
 */
function spawnSyncBun(request: RuntimeSpawnRequest, options: RuntimeSyncOptions): RuntimeSyncResult {
  let result: SyncSubprocess;
  const stdin = request.stdin === "piped" && options.input !== null ? options.input : STDIO[request.stdin];
  try {
    result = bun().spawnSync({
      cmd: [request.command, ...request.args],
      argv0: request.argv0 ?? undefined,
      cwd: request.cwd ?? undefined,
      env: request.env,
      stdin: stdin === "pipe" ? "ignore" : stdin,
      stdout: STDIO[request.stdout],
      stderr: STDIO[request.stderr],
      timeout: options.timeoutMs ?? undefined,
      killSignal: options.killSignal,
      maxBuffer: Number.isFinite(options.maxBuffer) ? options.maxBuffer : undefined,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new RuntimeSpawnError(typeof code === "string" ? code : null, error);
  }
  const capped = capOutputs(result.stdout ?? new Uint8Array(0), result.stderr ?? new Uint8Array(0), options.maxBuffer);
  const signal = result.signalCode ?? null;
  // exitedDueToTimeout is set for a timeout, and for an overflow only sometimes.
  const signalled = signal === options.killSignal;
  return {
    pid: result.pid ?? 0,
    exit: { code: signal === null ? result.exitCode : null, signal },
    stdout: new Uint8Array(capped.stdout),
    stderr: new Uint8Array(capped.stderr),
    timedOut: signalled && result.exitedDueToTimeout === true && capped.overflowed === null,
    overflowed: capped.overflowed,
    overflowKilled: signalled && capped.overflowed !== null,
  };
}

/** Writes Bun's FileSink as a `PipeWriter`. */
function sinkWriter(sink: FileSink): PipeWriter {
  let closed = false;
  return {
    async write(chunk) {
      if (closed) throw Object.assign(new Error("The pipe was closed"), { code: "ERR_STREAM_DESTROYED" });
      try {
        await sink.write(chunk);
        await sink.flush();
      } catch (error) {
        throw pipeError(error);
      }
    },
    async end() {
      if (closed) return;
      closed = true;
      try {
        await sink.end();
      } catch (error) {
        throw pipeError(error);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        const ended = sink.end();
        if (ended instanceof Promise) ended.catch(() => {});
      } catch { /* the child is gone */ }
    },
  };
}
