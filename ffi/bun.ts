/**
 * The Bun binding: `bun:ffi` over the shared symbol table; descriptors are read with
 * `Bun.file(fd).stream()` and written with `Bun.file(fd).writer()`, which Bun drives from its
 * own event loop (`node:net` sockets on foreign descriptors deliver nothing on Bun).
 *
 * @module
 */
import process from "node:process";
import { bindCalls, type Native, pipeGrower, type WakeSource } from "./native.ts";
import { type FfiType, symbols } from "./symbols.ts";

// Bun-only globals, typed here so the rest of the code base stays runtime-neutral.
interface BunFileSink {
  write(chunk: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
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
    readable: (fd) => readable(bun, fd, pipeGrower(calls, fd), (n) => s.ph_close(n)),
    writable: (fd) => writable(bun, fd, pipeGrower(calls, fd), (n) => s.ph_close(n)),
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

function readable(
  bun: BunGlobal,
  fd: number,
  sized: (bytes: number) => void,
  close: (fd: number) => number,
): ReadableStream<Uint8Array> {
  const source = bun.file(fd).stream();
  const reader = source.getReader();
  let open = true;
  const finish = () => {
    if (!open) return;
    open = false;
    close(fd);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          finish();
          controller.close();
        } else {
          sized(value.length);
          controller.enqueue(value);
        }
      } catch (error) {
        finish();
        controller.error(error);
      }
    },
    async cancel(reason) {
      await reader.cancel(reason).catch(() => {});
      finish();
    },
  }, { highWaterMark: 0 });
}

/** Bun's FileSink never closes a descriptor it was given, so closing it here is the EOF. */
function writable(
  bun: BunGlobal,
  fd: number,
  sized: (bytes: number) => void,
  close: (fd: number) => number,
): WritableStream<Uint8Array> {
  const sink = bun.file(fd).writer();
  let open = true;
  const finish = async () => {
    if (!open) return;
    open = false;
    try {
      await sink.end();
    } finally {
      close(fd);
    }
  };
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      sized(chunk.length);
      await sink.write(chunk);
      await sink.flush();
    },
    close: finish,
    abort: finish,
  });
}
