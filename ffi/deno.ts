/**
 * The Deno binding: `Deno.dlopen` over the shared symbol table; descriptors are watched and
 * streamed with `node:net` sockets, which Deno drives from its own event loop.
 *
 * @module
 */
import net from "node:net";
import {
  bindCalls,
  lazyPipeReader,
  type Native,
  pipeGrower,
  type PipeWriter,
  type RuntimePipeReader,
  type WakeSource,
} from "./native.ts";
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
    pipeReader: (fd) => lazyPipeReader(fd, () => pipeReader(fd, pipeGrower(calls, fd)), (n) => calls.close(n)),
    pipeWriter: (fd) => pipeWriter(fd, pipeGrower(calls, fd)),
    ptyNonblocking: true,
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

// Kept from the stream's highWaterMark; see docs/decisions/0010-drain-unread-output.md.
/** Chunks a pipe reader holds before it pauses its socket (the kernel's pipe then fills up). */
const READ_AHEAD_CHUNKS = 16;

function pipeReader(fd: number, sized: (bytes: number) => void): RuntimePipeReader {
  return socketReader(new net.Socket({ fd, readable: true, writable: false }), sized);
}

/**
 * Reads a `node:net` socket chunk by chunk. The socket reads ahead up to `READ_AHEAD_CHUNKS`
 * chunks and pauses until they are taken; it is destroyed (its descriptor closed) at EOF, on an
 * error or by `close`. An error for which `isEnd` is true is the end instead (a terminal's EIO).
 */
export function socketReader(
  socket: net.Socket,
  sized = (_bytes: number) => {},
  isEnd = (_error: Error) => false,
): RuntimePipeReader {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let failure: Error | null = null;
  let waiter: { resolve(chunk: Uint8Array | null): void; reject(error: Error): void } | null = null;
  const settle = () => {
    const current = waiter;
    if (current === null) return;
    if (chunks.length > 0) current.resolve(chunks.shift()!);
    else if (failure !== null) current.reject(failure);
    else if (ended) current.resolve(null);
    else return;
    waiter = null;
  };
  socket.on("data", (chunk: Uint8Array) => {
    sized(chunk.byteLength);
    chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (chunks.length >= READ_AHEAD_CHUNKS) socket.pause();
    settle();
  });
  socket.on("end", () => {
    ended = true;
    socket.destroy();
    settle();
  });
  socket.on("error", (error) => {
    if (!isEnd(error)) failure ??= error;
    ended = true;
    socket.destroy();
    settle();
  });
  return {
    read() {
      if (chunks.length > 0) {
        const chunk = chunks.shift()!;
        if (!ended) socket.resume();
        return Promise.resolve(chunk);
      }
      if (failure !== null) return Promise.reject(failure);
      if (ended) return Promise.resolve(null);
      socket.resume();
      return new Promise((resolve, reject) => waiter = { resolve, reject });
    },
    close() {
      ended = true;
      chunks.length = 0;
      failure = null;
      socket.destroy();
      settle();
    },
  };
}

function pipeWriter(fd: number, sized: (bytes: number) => void): PipeWriter {
  return socketWriter(new net.Socket({ fd, readable: false, writable: true }), sized);
}

/**
 * Writes a `node:net` socket. A write settles as soon as the socket accepted the chunk into its
 * buffer, and waits for "drain" only when the buffer is full, so writes pipeline instead of
 * waiting one by one for the kernel.
 */
export function socketWriter(socket: net.Socket, sized = (_bytes: number) => {}): PipeWriter {
  let failure: Error | null = null;
  socket.on("error", (error) => {
    failure ??= error;
  });
  /** Settles at "drain", at an error, or when the socket is closed meanwhile. */
  const drained = () =>
    new Promise<void>((resolve, reject) => {
      const done = (error: Error | null) => {
        socket.off("drain", onDrain);
        socket.off("error", onError);
        socket.off("close", onClose);
        if (error === null) resolve();
        else reject(error);
      };
      const onDrain = () => done(null);
      const onError = (error: Error) => done(error);
      const onClose = () => done(failure ?? closedError());
      socket.once("drain", onDrain);
      socket.once("error", onError);
      socket.once("close", onClose);
    });
  return {
    write(chunk) {
      if (failure !== null) return Promise.reject(failure);
      if (socket.destroyed) return Promise.reject(closedError());
      sized(chunk.byteLength);
      if (socket.write(chunk)) return Promise.resolve();
      return drained();
    },
    end() {
      if (failure !== null) return Promise.reject(failure);
      if (socket.destroyed) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.end(() => {
          socket.destroy();
          resolve();
        });
      });
    },
    close() {
      socket.destroy();
    },
  };
}

function closedError(): Error {
  return Object.assign(new Error("The pipe was closed"), { code: "ERR_STREAM_DESTROYED" });
}
