/**
 * The streams of a child's pipes. What the child writes is a `ProcessReadableStream`, read on
 * demand like any stream; once the child's exit is awaited, output nobody is reading is drained
 * into the stream in the background (bounded by `maxBuffer`), so the child never blocks on a
 * full pipe. A piped stdin is a `WritableStream`; bytes, a Blob, a Response or a stream given
 * as `stdin` are pumped into the pipe by `pumpStdin`.
 *
 * @module
 */
import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import type { PipeReader, PipeWriter } from "../ffi/mod.ts";
import { MaxBufferError } from "./errors.ts";
import type { ProcessStatus } from "./status.ts";

/**
 * What the child writes to a piped descriptor (`child.stdout`, `child.stderr`,
 * `child.fdOutputs[n]`): a `ReadableStream` of bytes (so `pipeTo`, `for await` and
 * `new Response(stream)` work) with Deno's methods to read it whole. Those methods keep at
 * most the spawn's `maxBuffer` bytes (default 100 MiB): past it the child is killed with
 * SIGKILL and they reject with `MaxBufferError`, which holds the first `maxBuffer` bytes.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("echo", ['{"ok":true}'], { stdout: "piped" });
 * console.log(await child.stdout.json()); // { ok: true }
 * ```
 */
export interface ProcessReadableStream extends ReadableStream<Uint8Array> {
  /** Reads to the end and decodes UTF-8. */
  text(): Promise<string>;
  /** Reads to the end. */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
  /** Reads to the end. */
  arrayBuffer(): Promise<ArrayBuffer>;
  /** Reads to the end and parses JSON. */
  // deno-lint-ignore no-explicit-any
  json(): Promise<any>;
}

/** What a piped output needs from its handle. */
export interface OutputOwner {
  /** Kills the child with SIGKILL (an output grew past `maxBuffer`); a child gone already is left alone. */
  killForOverflow(): void;
}

/**
 * How long, after a kill (`timeout`, the AbortSignal, `maxBuffer`), the helpers keep reading
 * once the child has exited: a grandchild that inherited the pipes may hold them open for
 * good, and the call returns with what was read by then.
 */
export const KILL_EOF_GRACE_MS = 200;

/** Decodes whole texts (without `stream: true` it keeps no state between calls). */
const UTF8 = new TextDecoder();

// Measured and chosen in docs/decisions/0010-drain-unread-output.md.
/** While the exit is awaited, how often a stream locked by someone else's reader is checked for release. */
const LOCK_CHECK_MS = 100;

const pipes = new WeakMap<ReadableStream<Uint8Array>, OutputPipe>();

/** Closes the pipes of streams collected before they were read to the end. */
const pipeFinalizer = new FinalizationRegistry<PipeReader>((reader) => reader.close());

/** The pipe behind a stream `spawnHandle` made, or null for anything else. */
export function outputPipeOf(stream: ReadableStream<Uint8Array> | null): OutputPipe | null {
  return stream === null ? null : pipes.get(stream) ?? null;
}

/**
 * One pipe the child writes. Chunks read from the descriptor wait in `#queue` until taken by
 * the stream's reader or by an internal one (`lock`, `next`), in order; nothing is read ahead
 * unless the exit is awaited and nobody is reading (`drain`).
 */
export class OutputPipe {
  /** "stdout", "stderr" or "fd <n>". */
  readonly name: string;
  /** Most bytes kept unread while draining, and by the stream's own methods. */
  readonly maxBuffer: number;
  readonly stream: ProcessReadableStream;
  readonly #reader: PipeReader;
  readonly #owner: OutputOwner;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #reading: Promise<void> | null = null;
  #ended = false;
  #cancelled = false;
  #failed = false;
  #failure: unknown = null;
  #draining = false;
  #looping = false;
  /** The child has exited: a stream held by someone else's reader is no longer watched. */
  #childExited = false;
  /** Internal readers holding the stream's lock: they drain it themselves and kick on release. */
  #leases = 0;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;

  constructor(name: string, reader: PipeReader, maxBuffer: number, owner: OutputOwner) {
    this.name = name;
    this.maxBuffer = maxBuffer;
    this.#reader = reader;
    this.#owner = owner;
    this.stream = new OutputStream(this, (controller) => this.#controller = controller);
    pipes.set(this.stream, this);
    pipeFinalizer.register(this.stream, reader);
  }

  /** Whether everything was read (or the pipe was cancelled or failed). */
  get finished(): boolean {
    return this.#queue.length === 0 && (this.#ended || this.#failed);
  }

  /** The next chunk, or null at the end; rejects with a read error or `MaxBufferError`. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#queue.length > 0) {
        const chunk = this.#queue.shift()!;
        this.#queued -= chunk.length;
        return chunk;
      }
      if (this.#failed) throw this.#failure;
      if (this.#ended) return null;
      await this.#fill();
    }
  }

  /** The stream's pull: one chunk, or the end, or the error. */
  async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      const chunk = await this.next();
      if (chunk === null) controller.close();
      else controller.enqueue(chunk);
    } catch (error) {
      try {
        controller.error(error);
      } catch { /* cancelled meanwhile */ }
    }
  }

  /** Stops reading for good and closes the descriptor (the child gets EPIPE if it writes on). */
  cancel(): void {
    this.#cancelled = true;
    this.#ended = true;
    this.#draining = false;
    this.#queue = [];
    this.#queued = 0;
    lockWatch.delete(this);
    this.#reader.close();
  }

  /**
   * Locks the stream for an internal reader, which then reads with `nextLocked`: chunks go
   * straight from the queue, without the stream's machinery. A TypeError if it is locked.
   */
  lock(): ReadableStreamDefaultReader<Uint8Array> {
    if (this.stream.locked) {
      throw new TypeError(`Cannot read the child's ${this.name}: the stream is locked by another reader`);
    }
    this.#leases++;
    return this.stream.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  }

  /** `next` for the holder of `lock`, after anything the stream itself had queued. */
  async nextLocked(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | null> {
    // A chunk the stream queued for a read that was released before it arrived comes first.
    if ((this.#controller?.desiredSize ?? 0) < 0) {
      const { done, value } = await reader.read();
      if (!done) return value;
    }
    return await this.next();
  }

  /**
   * Ends a `lock`: `unread` (bytes taken but not consumed) go back to the front, so the next
   * reader starts at the next unread byte; draining resumes if the exit is awaited.
   */
  unlock(reader: ReadableStreamDefaultReader<Uint8Array>, unread: readonly Uint8Array[] = []): void {
    const back = unread.filter((chunk) => chunk.length > 0);
    if (back.length > 0 && !this.#cancelled) {
      this.#queue.unshift(...back);
      this.#queued += back.reduce((n, chunk) => n + chunk.length, 0);
    }
    this.#leases--;
    reader.releaseLock();
    this.#pump();
  }

  /**
   * The host's end of the pipe, if the pipe can be given to another child whole
   * (`stdin: child.stdout`): nothing has read it, nothing is queued, nobody holds the stream.
   * Else null, and the other child is fed through JavaScript like any stream.
   */
  get handOverFd(): number | null {
    if (this.stream.locked || this.#reader.started || this.#queue.length > 0) return null;
    if (this.#ended || this.#cancelled || this.#failed || this.#reading !== null) return null;
    return this.#reader.fd;
  }

  /**
   * The pipe went to another child (`handOverFd`): the host's end closes, and the stream stays
   * locked for good, so no JavaScript reads what the other child reads.
   */
  handOver(): void {
    this.stream.getReader();
    this.#ended = true;
    this.#draining = false;
    lockWatch.delete(this);
    this.#reader.close();
  }

  /** The exit is awaited: read what nobody reads into the queue, up to `maxBuffer`. */
  drain(): void {
    this.#draining = true;
    this.#pump();
  }

  /** The child has exited: a stream someone holds is no longer watched for release. */
  childExited(): void {
    this.#childExited = true;
    lockWatch.delete(this);
  }

  /** Kills the child because this pipe's output grew past `maxBuffer`. */
  killForOverflow(): void {
    this.#owner.killForOverflow();
  }

  /** Resumes draining once the lock watch saw the stream released. */
  resume(): void {
    this.#pump();
  }

  #fill(): Promise<void> {
    if (this.#reading !== null) return this.#reading;
    this.#reading = this.#reader.read().then((chunk: Uint8Array | null) => {
      this.#reading = null;
      if (this.#cancelled || this.#failed) return;
      if (chunk === null) this.#ended = true;
      else {
        this.#queue.push(chunk);
        this.#queued += chunk.length;
      }
    }, (error: unknown) => {
      this.#reading = null;
      if (this.#cancelled) return;
      this.#ended = true;
      this.#fail(error);
    });
    return this.#reading;
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = error;
  }

  #pump(): void {
    if (!this.#draining || this.#looping || this.#ended || this.#failed) return;
    if (this.stream.locked) {
      // An internal reader kicks when it lets go; anyone else's reader is watched while the
      // child runs (after its exit, draining no longer decides whether it can end).
      if (this.#leases === 0 && !this.#childExited) watchLock(this);
      return;
    }
    this.#looping = true;
    (async () => {
      while (this.#draining && !this.stream.locked && !this.#ended && !this.#failed) {
        await this.#fill();
        if (this.#queued > this.maxBuffer) this.#overflow();
      }
    })().finally(() => {
      this.#looping = false;
      this.#pump();
    });
  }

  /** Unread output past `maxBuffer`: keep its first `maxBuffer` bytes, kill, then fail the stream. */
  #overflow(): void {
    let keep = this.maxBuffer;
    const kept: Uint8Array[] = [];
    for (const chunk of this.#queue) {
      if (keep <= 0) break;
      kept.push(chunk.length <= keep ? chunk : chunk.subarray(0, keep));
      keep -= Math.min(keep, chunk.length);
    }
    this.#queue = kept;
    this.#queued = this.maxBuffer;
    // Kill first: closing the pipe first would let the child die of SIGPIPE instead.
    this.#owner.killForOverflow();
    this.#ended = true;
    this.#fail(new MaxBufferError(this.name, this.maxBuffer));
    this.#reader.close();
  }
}

/** Streams locked by a reader of the user's while their exit is awaited, checked for release. */
const lockWatch = new Set<OutputPipe>();
let lockTimer: ReturnType<typeof setInterval> | null = null;

function watchLock(pipe: OutputPipe): void {
  lockWatch.add(pipe);
  if (lockTimer !== null) return;
  lockTimer = setInterval(() => {
    for (const watched of lockWatch) {
      if (watched.finished) lockWatch.delete(watched);
      else if (!watched.stream.locked) {
        lockWatch.delete(watched);
        watched.resume();
      }
    }
    if (lockWatch.size === 0 && lockTimer !== null) {
      clearInterval(lockTimer);
      lockTimer = null;
    }
  }, LOCK_CHECK_MS);
  lockTimer.unref?.();
}

/** The stream class behind `ProcessReadableStream`. */
class OutputStream extends ReadableStream<Uint8Array> implements ProcessReadableStream {
  readonly #pipe: OutputPipe;

  constructor(pipe: OutputPipe, started: (controller: ReadableStreamDefaultController<Uint8Array>) => void) {
    super({
      start: started,
      pull: (controller) => pipe.pull(controller),
      cancel: () => pipe.cancel(),
    }, { highWaterMark: 0 });
    this.#pipe = pipe;
  }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    const pipe = this.#pipe;
    const collector = new Collector(pipe, pipe.lock(), pipe.maxBuffer, () => pipe.killForOverflow());
    await collector.done;
    const bytes = collector.bytes();
    if (collector.overflowed) {
      const read = pipe.name === "stdout" ? { stdout: bytes } : pipe.name === "stderr" ? { stderr: bytes } : {};
      throw new MaxBufferError(pipe.name, pipe.maxBuffer, read);
    }
    return bytes;
  }

  async text(): Promise<string> {
    return UTF8.decode(await this.bytes());
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  }

  // deno-lint-ignore no-explicit-any
  async json(): Promise<any> {
    return JSON.parse(await this.text());
  }
}

/**
 * Reads one pipe to its end with a reader from its `lock`, keeping at most `maxBuffer` bytes:
 * past it, `onOverflow` kills the child and the reading stops (the pipe is closed after the
 * kill). The lock is released at the end.
 */
export class Collector {
  readonly chunks: Uint8Array[] = [];
  total = 0;
  overflowed = false;
  /** Settles at EOF, at an overflow or at `stop`; rejects with a read error. */
  readonly done: Promise<void>;
  readonly #pipe: OutputPipe;
  #stopped = false;

  constructor(
    pipe: OutputPipe,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    maxBuffer: number,
    onOverflow: () => void,
  ) {
    this.#pipe = pipe;
    this.done = (async () => {
      try {
        for (;;) {
          const chunk = await pipe.nextLocked(reader);
          if (chunk === null) break;
          if (this.total + chunk.length > maxBuffer) {
            this.chunks.push(chunk.subarray(0, maxBuffer - this.total));
            this.total = maxBuffer;
            this.overflowed = true;
            onOverflow();
            pipe.cancel();
            break;
          }
          this.chunks.push(chunk);
          this.total += chunk.length;
          if (this.#stopped) break;
        }
      } finally {
        pipe.unlock(reader);
      }
    })();
  }

  /** Stops now: the pipe is closed, and what was read is kept. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pipe.cancel();
  }

  /** What was kept, as one array. */
  bytes(): Uint8Array<ArrayBuffer> {
    return concatBytes(this.chunks);
  }
}

/**
 * stdout and stderr read together (either may be null: empty). When one overflows, the child
 * is killed; the other is read on until its EOF, or `KILL_EOF_GRACE_MS` after the exit.
 */
export class OutputReading {
  readonly #collectors: (Collector | null)[];
  /** The pipe that overflowed first, if any. */
  overflowed: OutputPipe | null = null;
  readonly done: Promise<void>;
  #grace: ReturnType<typeof setTimeout> | undefined;

  constructor(
    outputs: readonly (OutputPipe | null)[],
    maxBuffer: number,
    kill: () => void,
    exited: () => Promise<unknown>,
  ) {
    // Every stream is locked before any is read: if one is locked elsewhere (a TypeError),
    // the others are let go untouched.
    const readers: (ReadableStreamDefaultReader<Uint8Array> | null)[] = [];
    try {
      for (const pipe of outputs) readers.push(pipe === null ? null : pipe.lock());
    } catch (error) {
      readers.forEach((reader, i) => reader !== null && outputs[i]!.unlock(reader));
      throw error;
    }
    const collectors = outputs.map((pipe, i) =>
      pipe === null ? null : new Collector(pipe, readers[i]!, maxBuffer, () => {
        if (this.overflowed !== null) return;
        this.overflowed = pipe;
        kill();
        this.stopAfter(exited());
      })
    );
    this.#collectors = collectors;
    this.done = Promise.all(collectors.map((c) => c?.done)).then(
      () => clearTimeout(this.#grace),
      (error) => {
        clearTimeout(this.#grace);
        this.stop();
        throw error;
      },
    );
  }

  /** Stops reading `KILL_EOF_GRACE_MS` after `event` (the exit) if it has not ended by then. */
  stopAfter(event: Promise<unknown>): void {
    event.then(() => {
      this.#grace ??= setTimeout(() => this.stop(), KILL_EOF_GRACE_MS);
    }, () => this.stop());
  }

  /** Stops every reading now, keeping what was read. */
  stop(): void {
    for (const collector of this.#collectors) collector?.stop();
  }

  /** What was kept from output `index` (empty if it was not piped). */
  bytes(index: number): Uint8Array<ArrayBuffer> {
    return this.#collectors[index]?.bytes() ?? new Uint8Array(0);
  }

  /** The MaxBufferError for an overflow, with what was kept and the status. */
  overflowError(maxBuffer: number, status: ProcessStatus | null): MaxBufferError | null {
    if (this.overflowed === null) return null;
    return new MaxBufferError(this.overflowed.name, maxBuffer, {
      stdout: this.bytes(0),
      stderr: this.bytes(1),
      status,
    });
  }
}

/** The chunks as one array (the chunk itself when there is one). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  if (chunks.length === 1 && chunks[0].buffer instanceof ArrayBuffer) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Whether `write` to the child's stdin was closed by the library or refused as closed. */
export interface StdinState {
  /** `close()` or `abort()` was called on `child.stdin`. */
  closed: boolean;
}

/** `child.stdin` for `stdin: "piped"`, over the pipe's writer; `state` records its closing. */
export function stdinStream(writer: PipeWriter, state: StdinState): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => writer.write(chunk),
    close() {
      state.closed = true;
      return writer.end();
    },
    abort() {
      state.closed = true;
      writer.close();
    },
  });
}

/** A writable stream to an extra descriptor the child reads (`fds: { 3: "piped-input" }`). */
export function inputStream(writer: PipeWriter): WritableStream<Uint8Array> {
  return stdinStream(writer, { closed: false });
}

/**
 * What `stdin` accepts besides a mode: bytes, a Blob, a Response or Request (its body), or a
 * stream of bytes or text. The library writes it to a pipe, then closes the pipe.
 */
export type StdinSource =
  | ArrayBufferView
  | ArrayBuffer
  | Blob
  | Response
  | Request
  | ReadableStream<Uint8Array | string>;

/** Whether `value` is a `StdinSource` (a string never is: it names a mode). */
export function isStdinSource(value: unknown): value is StdinSource {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Blob ||
    value instanceof Response || value instanceof Request || value instanceof ReadableStream;
}

/** `value` as bytes if it is bytes (a view of the same memory), else null. */
export function sourceBytes(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return null;
}

/** Writes to the pipe in pieces of at most this many bytes, so a stop takes effect between them. */
const PUMP_CHUNK = 1024 * 1024;

/**
 * Writes `source` to the child's stdin, then closes it. A child that stops reading (EPIPE)
 * ends the pumping quietly; a source that fails, or yields something other than bytes or
 * text, closes stdin and calls `onSourceError`. Returns `stop`, which ends the pumping at
 * once (at the child's exit): the source is cancelled and the pipe closed.
 */
export function pumpStdin(
  source: StdinSource,
  writer: PipeWriter,
  onSourceError: (error: unknown) => void,
): () => void {
  let stopped = false;
  let reader: SourceReader | null = null;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    reader?.cancel().catch(() => {});
    writer.close();
  };
  const write = async (bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length && !stopped; at += PUMP_CHUNK) {
      await writer.write(bytes.subarray(at, at + PUMP_CHUNK));
    }
  };
  (async () => {
    const bytes = sourceBytes(source);
    if (bytes !== null) await write(bytes);
    else {
      const stream = source instanceof ReadableStream
        ? source
        : source instanceof Blob
        ? source.stream()
        : (source as Response | Request).body;
      if (stream !== null) {
        // Typed for both runtimes' lib types (bun-types' reader has more members).
        const current = stream.getReader() as SourceReader;
        reader = current;
        for (;;) {
          let next: { done: boolean; value?: unknown };
          try {
            next = await current.read();
          } catch (error) {
            throw new SourceError(error);
          }
          if (next.done || stopped) break;
          const chunk = typeof next.value === "string" ? new TextEncoder().encode(next.value) : sourceBytes(next.value);
          if (chunk === null) {
            throw new SourceError(
              new TypeError(`The stream given as "stdin" yielded ${describe(next.value)}, not bytes or a string`),
            );
          }
          await write(chunk);
        }
      }
    }
    if (!stopped) await writer.end();
    stopped = true;
  })().catch((error) => {
    if (stopped) return;
    stop();
    // The pipe's own errors (EPIPE: the child no longer reads) end the pumping quietly.
    if (error instanceof SourceError) onSourceError(error.cause);
  });
  return stop;
}

/** What the pump uses of a stdin source's reader. */
interface SourceReader {
  read(): Promise<{ done: boolean; value?: unknown }>;
  cancel(reason?: unknown): Promise<void>;
}

class SourceError extends Error {
  constructor(cause: unknown) {
    super("stdin source failed", { cause });
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `a ${typeof value}`;
}
