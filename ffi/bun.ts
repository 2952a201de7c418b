/**
 * The Bun binding: `bun:ffi` over the shared symbol table; descriptors are read with
 * `Bun.file(fd).stream()` and written with `Bun.file(fd).writer()`, which Bun drives from its
 * own event loop (`node:net` sockets on foreign descriptors deliver nothing on Bun).
 *
 * @module
 */
import process from "node:process";
import {
  bindCalls,
  lazyPipeReader,
  type Native,
  pipeGrower,
  type PipeWriter,
  type RuntimePipeReader,
  type WakeSource,
} from "./native.ts";
import { type FfiType, symbols } from "./symbols.ts";

// Bun-only globals, typed here so the rest of the code base stays runtime-neutral.
interface BunFileSink {
  write(chunk: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
  unref(): void;
}
interface BunGlobal {
  file(fd: number): { stream(): ReadableStream<Uint8Array>; writer(): BunFileSink };
}
// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;
interface BunFfi {
  dlopen(path: string, symbols: Record<string, { args: string[]; returns: string }>): {
    symbols: Record<string, Fn>;
  };
}

const TYPES: Record<FfiType, string> = {
  void: "void",
  i32: "i32",
  u32: "u32",
  usize: "u64",
  buffer: "ptr",
};

/** Opens the library at `path` and returns the binding. */
export function openBun(path: string): Native {
  // Bun's synchronous require, not an import: Deno never resolves (or warns about) the
  // Bun-only module, and the call runs only on Bun.
  const ffi = (import.meta as unknown as { require(id: string): unknown }).require("bun:ffi") as BunFfi;
  const table: Record<string, { args: string[]; returns: string }> = {};
  for (const [name, spec] of Object.entries(symbols)) {
    table[name] = { args: spec.parameters.map((t) => TYPES[t]), returns: TYPES[spec.result] };
  }
  const s = ffi.dlopen(path, table).symbols as Record<keyof typeof symbols, Fn>;
  const bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  const calls = bindCalls(s, (n) => n);
  return {
    runtime: "bun",
    libraryPath: path,
    ...calls,
    environment: () => process.env,
    getEnv: (name) => process.env[name],
    // Bun's process.env writes are not mirrored into libc's environ: always copy.
    hostEnviron: 0n,
    wakeSource: (fd, onWake) => wakeSource(bun, fd, onWake),
    pipeReader: (fd) =>
      lazyPipeReader(fd, () => pipeReader(bun, fd, pipeGrower(calls, fd), (n) => s.ph_close(n)), (n) => s.ph_close(n)),
    pipeWriter: (fd) => pipeWriter(bun, fd, pipeGrower(calls, fd), (n) => s.ph_close(n)),
    // Bun's tty.ReadStream reads on a thread, and fails with EAGAIN on a non-blocking master.
    ptyNonblocking: false,
  };
}

/**
 * Bun has no unref for a stream reader, so "unref" cancels the reader (the descriptor stays
 * open) and "ref" starts a new one; a pending read is what keeps Bun's event loop alive.
 */
function wakeSource(bun: BunGlobal, fd: number, onWake: () => void): WakeSource {
  let reader: { cancel(): Promise<void> } | null = null;
  let closed = false;
  const start = () => {
    const current = bun.file(fd).stream().getReader();
    reader = current;
    (async () => {
      while (reader === current) {
        const { done } = await current.read();
        if (done) break;
        onWake();
      }
    })().catch(() => {});
  };
  return {
    ref() {
      if (!closed && reader === null) start();
    },
    unref() {
      const current = reader;
      reader = null;
      current?.cancel().catch(() => {});
    },
    close() {
      closed = true;
      this.unref();
    },
  };
}

/** Reads with a `Bun.file(fd).stream()` reader, which reads only when asked to. */
function pipeReader(
  bun: BunGlobal,
  fd: number,
  sized: (bytes: number) => void,
  close: (fd: number) => number,
): RuntimePipeReader {
  const reader = bun.file(fd).stream().getReader();
  let open = true;
  let closing = false;
  const finish = () => {
    if (!open) return;
    open = false;
    close(fd);
  };
  return {
    async read() {
      if (!open || closing) return null;
      try {
        const { done, value } = await reader.read();
        if (done) {
          finish();
          return null;
        }
        sized(value.length);
        return value;
      } catch (error) {
        finish();
        throw error;
      }
    },
    close() {
      if (!open || closing) return;
      closing = true;
      // Bun lets go of the descriptor first (a pending read resolves done), then it is closed.
      reader.cancel().catch(() => {}).finally(finish);
    },
  };
}

/** Bun's FileSink never closes a descriptor it was given, so closing it here is the EOF. */
function pipeWriter(
  bun: BunGlobal,
  fd: number,
  sized: (bytes: number) => void,
  close: (fd: number) => number,
): PipeWriter {
  const sink = bun.file(fd).writer();
  let open = true;
  let ending: Promise<void> | null = null;
  const finish = () => {
    if (!open) return;
    open = false;
    close(fd);
  };
  const end = () =>
    ending ??= (async () => {
      try {
        await sink.end();
      } finally {
        finish();
      }
    })();
  return {
    async write(chunk) {
      if (ending !== null) throw Object.assign(new Error("The pipe was closed"), { code: "ERR_STREAM_DESTROYED" });
      sized(chunk.length);
      await sink.write(chunk);
      await sink.flush();
    },
    end,
    close() {
      // Whatever is still buffered no longer keeps Bun alive; the descriptor is closed once
      // Bun is done with it (a reader that never reads holds it until it exits).
      sink.unref();
      end().catch(() => {});
    },
  };
}
