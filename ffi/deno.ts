/**
 * The Deno binding: `Deno.dlopen` over the shared symbol table; descriptors are watched and
 * streamed with `node:net` sockets, which Deno drives from its own event loop.
 *
 * @module
 */
import net from "node:net";
import { bindCalls, type Native, pipeGrower, type WakeSource } from "./native.ts";
import { isPermissionError, permissionError } from "./permissions.ts";
import { type FfiType, symbols } from "./symbols.ts";

// The few Deno APIs used here, typed locally and reached through globalThis, so the file also
// type-checks where Deno's types are absent (tsc with bun-types) and loads on Bun unused.
type NativeType = "void" | "i32" | "u32" | "usize" | "buffer" | "pointer";
interface ForeignFunction {
  parameters: NativeType[];
  result: NativeType;
}
interface DenoApi {
  dlopen(path: string, symbols: Record<string, ForeignFunction>): { symbols: Record<string, Fn> };
  env: { toObject(): Record<string, string>; get(name: string): string | undefined };
  UnsafePointer: { value(pointer: unknown): number | bigint };
}
const deno = (): DenoApi => (globalThis as unknown as { Deno: DenoApi }).Deno;

const TYPES: Record<FfiType, NativeType> = {
  void: "void",
  i32: "i32",
  u32: "u32",
  usize: "usize",
  buffer: "buffer",
};

function denoSymbols() {
  const out: Record<string, ForeignFunction> = {};
  for (const [name, spec] of Object.entries(symbols)) {
    out[name] = {
      parameters: spec.parameters.map((t) => TYPES[t]),
      result: TYPES[spec.result],
    };
  }
  return out;
}

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/** Opens the library at `path` and returns the binding. */
export function openDeno(path: string): Native {
  const lib = deno().dlopen(path, denoSymbols());
  const s = lib.symbols as unknown as Record<keyof typeof symbols, Fn>;
  const calls = bindCalls(s, BigInt);
  return {
    runtime: "deno",
    libraryPath: path,
    ...calls,
    // Three times cheaper than copying process.env, which asks Deno once per variable.
    environment: () => permitted(() => deno().env.toObject()),
    getEnv: (name) => permitted(() => deno().env.get(name)),
    hostEnviron: environAddress(),
    wakeSource,
    readable: (fd) => readable(fd, pipeGrower(calls, fd)),
    writable: (fd) => writable(fd, pipeGrower(calls, fd)),
  };
}

/** Runs `read`; Deno's refusal becomes a `LibraryError` naming the flag (--allow-env). */
function permitted<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (isPermissionError(error)) throw permissionError(error);
    throw error;
  }
}

/**
 * The address of libc's `environ`. Deno.env.set() and process.env writes go through setenv,
 * which keeps `environ` current, so the library can hand it to a child as it is at spawn time.
 * 0 when libc cannot be opened (the caller then copies the environment in JavaScript).
 */
function environAddress(): bigint {
  try {
    const libc = deno().dlopen("libc.so.6", { dlsym: { parameters: ["pointer", "buffer"], result: "pointer" } });
    const address: unknown = libc.symbols.dlsym(null, new TextEncoder().encode("environ\0"));
    // libc stays open for the life of the process: the address must stay valid.
    return address === null ? 0n : BigInt(deno().UnsafePointer.value(address));
  } catch {
    return 0n;
  }
}

function wakeSource(fd: number, onWake: () => void): WakeSource {
  const socket = new net.Socket({ fd, readable: true, writable: false });
  socket.on("data", onWake);
  socket.on("error", () => {});
  socket.unref();
  return {
    ref: () => socket.ref(),
    unref: () => socket.unref(),
    // The listener owns the descriptor; detach without closing it.
    close: () => {
      socket.removeAllListeners("data");
      socket.pause();
      socket.unref();
    },
  };
}

function readable(fd: number, sized: (bytes: number) => void): ReadableStream<Uint8Array> {
  const socket = new net.Socket({ fd, readable: true, writable: false });
  return socketReadable(socket, sized);
}

/** A byte stream over a `node:net` socket, pausing it while the consumer is full. */
export function socketReadable(socket: net.Socket, sized = (_bytes: number) => {}): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Uint8Array) => {
        sized(chunk.byteLength);
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) socket.pause();
      });
      socket.on("end", () => {
        try {
          controller.close();
        } catch { /* already cancelled */ }
        socket.destroy();
      });
      socket.on("error", (error) => {
        try {
          controller.error(error);
        } catch { /* already cancelled */ }
      });
    },
    pull() {
      socket.resume();
    },
    cancel() {
      socket.destroy();
    },
  }, { highWaterMark: 16 });
}

function writable(fd: number, sized: (bytes: number) => void): WritableStream<Uint8Array> {
  const socket = new net.Socket({ fd, readable: false, writable: true });
  return socketWritable(socket, sized);
}

/**
 * A byte sink over a `node:net` socket. A write settles as soon as the socket accepted the
 * chunk into its buffer, and waits for "drain" only when the buffer is full, so writes
 * pipeline instead of waiting one by one for the kernel.
 */
export function socketWritable(socket: net.Socket, sized = (_bytes: number) => {}): WritableStream<Uint8Array> {
  let failure: Error | null = null;
  socket.on("error", (error) => {
    failure = error;
  });
  const drained = () =>
    new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        socket.off("error", onError);
        resolve();
      };
      const onError = (error: Error) => {
        socket.off("drain", onDrain);
        reject(error);
      };
      socket.once("drain", onDrain);
      socket.once("error", onError);
    });
  return new WritableStream<Uint8Array>({
    write(chunk) {
      if (failure) return Promise.reject(failure);
      sized(chunk.byteLength);
      if (socket.write(chunk)) return;
      return drained();
    },
    close() {
      if (failure) return Promise.reject(failure);
      return new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.end(() => {
          socket.destroy();
          resolve();
        });
      });
    },
    abort() {
      socket.destroy();
    },
  });
}
