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

/** The library's exports, bound for the current runtime, plus runtime I/O. */
export interface Native {
  readonly runtime: "deno" | "bun";
  readonly libraryPath: string;
  abiVersion(): number;
  info(out: Uint8Array): void;
  listenerOpen(nonblockingRead: number): number;
  listenerFd(listener: number): number;
  listenerClose(listener: number): number;
  spawn(request: Uint8Array, length: number): number;
  drain(listener: number, out: Uint8Array, max: number): number;
  peek(slot: number, generation: number, out: Uint8Array): number;
  waitSync(slot: number, generation: number, out: Uint8Array, timeoutMs: number): number;
  signal(slot: number, generation: number, signal: number, flags: number): number;
  ignoredSignals(out: Uint8Array): void;
  clockMonotonic(out: Uint8Array): void;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  read(fd: number, buffer: Uint8Array, length: number): number;
  write(fd: number, buffer: Uint8Array, length: number): number;
  checkReaper(): number;
  close(fd: number): number;
  /** The host's environment now, as cheaply as the runtime allows. */
  environment(): Record<string, string | undefined>;
  /** One variable of the host's environment. */
  getEnv(name: string): string | undefined;
  /**
   * The address of libc's `environ` when the runtime keeps it current (Deno's env writes go
   * through setenv), so a child can inherit it without a copy in JavaScript; else 0.
   */
  readonly hostEnviron: bigint;
  /** Whether the wake-up pipe's read end should be non-blocking on this runtime. */
  readonly nonblockingWake: boolean;
  /** Calls `onWake` whenever `fd` becomes readable (the bytes are consumed). */
  wakeSource(fd: number, onWake: () => void): WakeSource;
  /** A stream reading `fd` (a non-blocking pipe end) until EOF; owns and closes `fd`. */
  readable(fd: number): ReadableStream<Uint8Array>;
  /** A stream writing `fd` (a non-blocking pipe end); owns and closes `fd`. */
  writable(fd: number): WritableStream<Uint8Array>;
}
