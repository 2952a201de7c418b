/**
 * The `runtime` backend on Bun: `Bun.spawn`.
 *
 * @module
 */
import process from "node:process";
import type { PipeWriter } from "./native.ts";
import { pipeError, type RuntimeChild, type RuntimeSpawner, RuntimeSpawnError, streamReader } from "./runtime.ts";

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
interface BunApi {
  spawn(options: Record<string, unknown>): Subprocess;
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
