/**
 * What the TypeScript layer above `ffi/` may use: the library's functions and the few
 * runtime-specific I/O pieces (streams over raw descriptors, a wake-up source). Nothing above
 * this interface knows whether it runs on Deno or Bun.
 *
 * @module
 */

/** A descriptor whose readability the event loop watches, calling `onWake` each time. */
export interface WakeSource {
  /** Keep the event loop alive while watching. */
  ref(): void;
  /** Watch without keeping the event loop alive (on Bun: stop watching until `ref`). */
  unref(): void;
  /** Stop watching for good; the descriptor itself stays open. */
  close(): void;
}

/** The library's exports, as TypeScript calls them (the same on both runtimes). */
export interface LibraryCalls {
  abiVersion(): number;
  init(backend: number, helperPath: Uint8Array, length: number): number;
  info(out: Uint8Array): void;
  listenerOpen(nonblockingRead: number): number;
  listenerFd(listener: number): number;
  listenerClose(listener: number): number;
  spawn(request: Uint8Array, length: number): number;
  /** 1: queued (keep `request` allocated: `spawnFinish` writes the answer into it), else as `spawn`. */
  spawnStart(request: Uint8Array, length: number): number;
  /** -EAGAIN until a queued spawn is answered, then as `spawn`. */
  spawnFinish(request: Uint8Array): number;
  drain(listener: number, out: Uint8Array, max: number): number;
  peek(slot: number, generation: number, out: Uint8Array): number;
  waitSync(slot: number, generation: number, out: Uint8Array, timeoutMs: number): number;
  signal(slot: number, generation: number, signal: number, flags: number): number;
  signalGroup(pidfd: number, pgid: number, signal: number): number;
  signalTree(slot: number, generation: number, signal: number): number;
  ignoredSignals(out: Uint8Array): void;
  clockMonotonic(out: Uint8Array): void;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  read(fd: number, buffer: Uint8Array, length: number): number;
  write(fd: number, buffer: Uint8Array, length: number): number;
  checkReaper(): number;
  pidfdExport(slot: number, generation: number): number;
  close(fd: number): number;
  pipeGrow(fd: number): number;
  /** Opens a pseudo-terminal of that size into `out` (`abi.Pty`); 0 or -errno. */
  ptyOpen(cols: number, rows: number, nonblocking: number, out: Uint8Array): number;
  /** Sets the window size of the terminal `fd`; 0 or -errno. */
  ptyResize(fd: number, cols: number, rows: number): number;
}

/** The library's calls bound for the current runtime, plus runtime I/O. */
export interface Native extends LibraryCalls {
  readonly runtime: "deno" | "bun";
  readonly libraryPath: string;
  /** The host's environment now, as cheaply as the runtime allows. */
  environment(): Record<string, string | undefined>;
  /** One variable of the host's environment. */
  getEnv(name: string): string | undefined;
  /**
   * The address of libc's `environ` when the runtime keeps it current (Deno's env writes go
   * through setenv), so a child can inherit it without a copy in JavaScript; else 0.
   */
  readonly hostEnviron: bigint;
  /** Calls `onWake` whenever `fd` becomes readable (the bytes are consumed). */
  wakeSource(fd: number, onWake: () => void): WakeSource;
  /** Reads `fd` (a non-blocking pipe end) until EOF; owns and closes `fd`. */
  pipeReader(fd: number): PipeReader;
  /** Writes `fd` (a non-blocking pipe end); owns and closes `fd`. */
  pipeWriter(fd: number): PipeWriter;
  /**
   * Whether a pseudo-terminal's master is opened non-blocking: this runtime's `node:tty`
   * reader polls it (Deno), rather than reading it on a thread (Bun).
   */
  readonly ptyNonblocking: boolean;
}

/**
 * The host's read end of a pipe from a child. The streams above `ffi/` are built on it, so
 * they decide when to read (on demand, or draining in the background) and what to buffer.
 */
export interface PipeReader {
  /** The host's end of the pipe; -1 for a reader over a runtime's stream (the runtime backend). */
  readonly fd: number;
  /** Whether reading began: until then the runtime has not touched the descriptor. */
  readonly started: boolean;
  /**
   * The next chunk, or null at EOF or after `close` (the descriptor is closed then); rejects
   * with the read error. One call at a time.
   */
  read(): Promise<Uint8Array | null>;
  /** Stops reading and closes the descriptor; a pending `read` resolves null. Idempotent. */
  close(): void;
}

/** What a runtime's reader of a pipe provides; `lazyPipeReader` makes it a `PipeReader`. */
export type RuntimePipeReader = Pick<PipeReader, "read" | "close">;

/** The host's write end of a pipe to a child. */
export interface PipeWriter {
  /**
   * Resolves once the runtime took the chunk (it may still be buffered: writes pipeline);
   * rejects with the write error (`code` "EPIPE" once the reader is gone).
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Flushes what was written, then closes the descriptor (the child reads EOF). */
  end(): Promise<void>;
  /** Closes the descriptor now, dropping anything not yet written. Idempotent. */
  close(): void;
}

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/**
 * A `PipeReader` whose runtime reader is made at the first `read`: until then nothing reads
 * the descriptor (Deno's sockets read ahead as soon as they exist), so a pipe never read can
 * be handed to another child whole (`stdin: child.stdout`).
 */
export function lazyPipeReader(fd: number, open: () => RuntimePipeReader, closeFd: (fd: number) => void): PipeReader {
  let reader: RuntimePipeReader | null = null;
  let closed = false;
  return {
    fd,
    get started() {
      return reader !== null;
    },
    read() {
      if (closed) return Promise.resolve(null);
      reader ??= open();
      return reader.read();
    },
    close() {
      if (closed) return;
      closed = true;
      if (reader !== null) reader.close();
      else closeFd(fd);
    },
  };
}

/**
 * The calls over a runtime's bound symbols. Only `size_t` differs between the runtimes
 * (Deno wants a bigint, Bun a number), so each binding passes its conversion.
 */
export function bindCalls(s: Record<string, Fn>, usize: (n: number) => number | bigint): LibraryCalls {
  return {
    abiVersion: () => s.ph_abi_version(),
    init: (backend, path, length) => s.ph_init(backend, path, usize(length)),
    info: (out) => s.ph_info(out),
    listenerOpen: (nb) => s.ph_listener_open(nb),
    listenerFd: (l) => s.ph_listener_fd(l),
    listenerClose: (l) => s.ph_listener_close(l),
    spawn: (request, length) => s.ph_spawn(request, usize(length)),
    spawnStart: (request, length) => s.ph_spawn_start(request, usize(length)),
    spawnFinish: (request) => s.ph_spawn_finish(request),
    drain: (l, out, max) => s.ph_drain(l, out, max),
    peek: (slot, gen, out) => s.ph_peek(slot, gen, out),
    waitSync: (slot, gen, out, ms) => s.ph_wait_sync(slot, gen, out, ms),
    signal: (slot, gen, sig, flags) => s.ph_signal(slot, gen, sig, flags),
    signalGroup: (pidfd, pgid, sig) => s.ph_signal_group(pidfd, pgid, sig),
    signalTree: (slot, gen, sig) => s.ph_signal_tree(slot, gen, sig),
    ignoredSignals: (out) => s.ph_ignored_signals(out),
    clockMonotonic: (out) => s.ph_clock_monotonic(out),
    poll: (fds, count, ms) => s.ph_poll(fds, count, ms),
    read: (fd, buffer, length) => s.ph_read(fd, buffer, usize(length)),
    write: (fd, buffer, length) => s.ph_write(fd, buffer, usize(length)),
    checkReaper: () => s.ph_check_reaper(),
    pidfdExport: (slot, gen) => s.ph_pidfd_export(slot, gen),
    close: (fd) => s.ph_close(fd),
    pipeGrow: (fd) => s.ph_pipe_grow(fd),
    ptyOpen: (cols, rows, nonblocking, out) => s.ph_pty_open(cols, rows, nonblocking, out),
    ptyResize: (fd, cols, rows) => s.ph_pty_resize(fd, cols, rows),
  };
}

// Measured and chosen in docs/decisions/0002-pipe-growth.md.
/** From this many bytes in one read or one write, a pipe counts as carrying bulk data. */
export const BULK_CHUNK_BYTES = 32 * 1024;
/** After the budget of large pipes was full, ask again once this many more bulk chunks went by. */
const BULK_CHUNKS_BEFORE_RETRY = 64;
const EAGAIN = 11;

/**
 * Returns a function to call with the size of each chunk read from or written to the pipe
 * `fd`: the first bulk chunk asks the library to grow the pipe (`ph_pipe_grow`: 1 MiB, at most
 * 16 pipes at once). Pipes that carry little never grow, so they never count against the
 * user's pipe-buffer limit beyond the kernel's default.
 */
export function pipeGrower(calls: LibraryCalls, fd: number): (bytes: number) => void {
  let bulkChunks = 0;
  let retryAt = 1;
  return (bytes) => {
    if (bytes < BULK_CHUNK_BYTES || retryAt === 0) return;
    bulkChunks += 1;
    if (bulkChunks < retryAt) return;
    // Done for good unless the budget was full (EAGAIN), which frees up as pipes close.
    retryAt = calls.pipeGrow(fd) === -EAGAIN ? bulkChunks + BULK_CHUNKS_BEFORE_RETRY : 0;
  };
}
