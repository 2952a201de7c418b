/**
 * `spawnHandle` and `ProcessHandle`: a private child held by a durable handle.
 *
 * @module
 */
import { clearTimeout, setTimeout } from "node:timers";
import { ExitKind, ExitRecord, FdAction, Request, SIGNAL_GROUP, STEP_NAMES } from "../ffi/abi.ts";
import { helperPath, type Native, type OpenedPty, openPty } from "../ffi/mod.ts";
import {
  type BackendChild,
  BackendUnsupportedError,
  hostEnvironment,
  spawnRuntime,
  usesRuntimeBackend,
} from "./backend.ts";
import { MaxBufferError, ReaperDiedError, SpawnError } from "./errors.ts";
import {
  checkKeys,
  checkMaxBuffer,
  DEFAULT_MAX_BUFFER,
  planSpawn,
  type PtySize,
  rangeError,
  type SpawnOptions,
  type SpawnPlan,
  type StderrOption,
  type StdinOption,
  type Stdio,
  typeError,
  valueError,
} from "./options.ts";
import { refusedHelperBuild } from "./info.ts";
import { GENERATION, getRegistry, ListenerError, type Registry, SETTLE } from "./registry.ts";
import { type EncodedRequest, encodeRequest } from "./request.ts";
import { type Signal, signalNumber } from "./signals.ts";
import { decodeStatus, type ProcessStatus, recordKind, runningStatus } from "./status.ts";
import {
  concatBytes,
  inputStream,
  type OutputOwner,
  OutputPipe,
  OutputReading,
  type ProcessReadableStream,
  pumpStdin,
  type StdinState,
  stdinStream,
} from "./streams.ts";

export { DEFAULT_MAX_BUFFER };

const ESRCH = 3;
const ESTALE = 116;
const SIGKILL = 9;
const SIGTERM = 15;
/** The grace `[Symbol.asyncDispose]` gives between SIGTERM and SIGKILL without `forceKillAfter`. */
export const DEFAULT_FORCE_KILL_AFTER = 5000;
const SEND_SIGNAL_OPTIONS: ReadonlySet<string> = new Set(["group", "tree"]);

/** @internal Key of `ProcessHandle`'s exit hook (not part of the public API). */
export const AT_EXIT: unique symbol = Symbol("private_spawn.atExit");

/** @internal `waitSync` bounded by a timeout: true once the child has exited (or was lost). */
export const WAIT_SYNC_FOR: unique symbol = Symbol("waitSyncFor");

/** A pidfd JavaScript owns: a duplicate exported through `fd`, or one handed over after a lost exit. */
interface OwnedPidfd {
  fd: number;
  readonly native: Native;
}

/** Closes the owned pidfds of handles collected before they closed them. */
const pidfdFinalizer = new FinalizationRegistry<OwnedPidfd>((held) => {
  if (held.fd >= 0) held.native.close(held.fd);
});

/**
 * Thrown when a handle is used after `[Symbol.asyncDispose]` released it.
 *
 * @example
 * ```ts
 * import { HandleClosedError, spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("true");
 * await child[Symbol.asyncDispose]();
 * try {
 *   child.sendSignal("SIGTERM");
 * } catch (error) {
 *   console.log(error instanceof HandleClosedError); // true
 * }
 * ```
 */
export class HandleClosedError extends Error {
  /** Always "ERR_HANDLE_CLOSED". */
  readonly code = "ERR_HANDLE_CLOSED";
  /** An error for `action` attempted on the disposed handle of `pid`. */
  constructor(pid: number, action: string) {
    super(`Cannot ${action}: the handle of pid ${pid} was disposed`);
    this.name = "HandleClosedError";
  }
}

/**
 * Options of `sendSignal`.
 *
 * @example
 * ```ts
 * import { type SendSignalOptions, spawnHandle } from "@private-spawn/private-spawn";
 * const group = spawnHandle("sh", ["-c", "sleep 30 & wait"], { pgroup: true });
 * const options: SendSignalOptions = { group: true }; // the child and its own children
 * group.sendSignal("SIGTERM", options);
 * console.log((await group.wait()).signal); // "SIGTERM"
 * ```
 */
export interface SendSignalOptions {
  /**
   * Signal the process group the child leads (it must have been spawned with `pgroup: true` or
   * `setsid: true`), also after the child itself has exited: `true` while some member got the
   * signal, `false` once the group is empty (a member that exited and was not yet reaped by
   * its parent still counts). On Linux 6.9 and later this goes through a pidfd the handle keeps
   * of the child until it is disposed or collected, so it reaches that group and no other.
   * Without pidfds, or before 6.9, it goes by the group's number (`kill(-pgid)`), which is as
   * safe while the child has not been reaped (its number cannot be reused then) and while the
   * group has members; once the group is empty, a new group given the same number could get
   * the signal. A child that joined another group (`pgroup: <number>`) cannot signal it
   * (TypeError): that group is not the handle's, and nothing keeps its number from reuse.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sh", ["-c", "sleep 30 & exit 1"], { pgroup: true });
   * await child.wait();
   * child.sendSignal("SIGTERM", { group: true }); // true: the sleep got it
   * ```
   */
  group?: boolean;
  /**
   * Signal the child and every descendant of it: each process whose chain of parents leads to
   * the child, including those that left its process group or session (`setsid`), found in
   * /proc and each held by a pidfd, so a recycled pid is never signalled. The tree is stopped
   * (SIGSTOP) while it is collected, so nothing forks past the walk, then gets the signal,
   * then SIGCONT. A descendant whose parent exited (a double fork) is no longer in the tree.
   * `false` once the child itself has exited; needs pidfds (`backendInfo().tree`), else a
   * `SpawnError` (ENOSYS). Not together with `group`.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const shell = spawnHandle("sh", ["-c", "setsid sleep 30 & sleep 30"]);
   * shell.sendSignal("SIGKILL", { tree: true }); // the shell and both sleeps
   * console.log((await shell.wait()).signal); // "SIGKILL"
   * ```
   */
  tree?: boolean;
}

/**
 * Options of `output()`, `text()` and `lines()`.
 *
 * @example
 * ```ts
 * import { type OutputOptions, spawnHandle } from "@private-spawn/private-spawn";
 * const options: OutputOptions = { maxBuffer: 1 << 20 };
 * const { stdout } = await spawnHandle("ls", ["/"], { stdout: "piped" }).output(options);
 * console.log(stdout.length > 0); // true
 * ```
 */
export interface OutputOptions {
  /**
   * Most bytes kept per stream; more kills the child (SIGKILL) and rejects with a
   * `MaxBufferError` holding the first `maxBuffer` bytes. Default: the spawn's `maxBuffer`
   * (100 MiB unless set).
   */
  maxBuffer?: number;
}

/**
 * What `output()` resolves to.
 *
 * @example
 * ```ts
 * import { type ProcessOutput, spawnHandle } from "@private-spawn/private-spawn";
 * const output: ProcessOutput = await spawnHandle("sh", ["-c", "echo out; echo err >&2"], {
 *   stdout: "piped",
 *   stderr: "piped",
 * }).output();
 * console.log(output.status.code, output.stdout.length, output.stderr.length); // 0 4 4
 * ```
 */
export interface ProcessOutput {
  /** How the child ended. */
  status: ProcessStatus;
  /** Everything the child wrote to stdout (empty unless piped). */
  stdout: Uint8Array;
  /** Everything the child wrote to stderr (empty unless piped). */
  stderr: Uint8Array;
}

/**
 * The type of a stream on the handle for the option value `V`: `S` when `V` is "piped" or
 * "pipe", null when it is anything else, `S | null` when the type does not tell.
 *
 * @example
 * ```ts
 * import { type PipedStream, type ProcessReadableStream, spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("ls", ["/"], { stdout: "piped" });
 * const stdout: PipedStream<"piped", ProcessReadableStream> = child.stdout; // a stream, never null
 * console.log((await stdout.text()).length > 0); // true
 * ```
 */
export type PipedStream<V, S> = 0 extends (1 & V) ? S | null
  : [V] extends ["piped" | "pipe"] ? S
  : [Extract<V, "piped" | "pipe">] extends [never] ? null
  : S | null;

/**
 * A spawned child, held by its pidfd. The child is private: the host gets no `SIGCHLD` for
 * it and `waitpid(-1)` in the host never sees it. Its type parameters are the types of its
 * `stdin`, `stdout` and `stderr`, which `spawnHandle` infers from the options, so a piped
 * stream is typed as not null (see `PipedStream`).
 *
 * @example
 * ```ts
 * import { spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("sh", ["-c", "exit 3"]);
 * const status = await child.wait();
 * console.log(status.code); // 3
 * ```
 */
export class ProcessHandle<
  Stdin extends WritableStream<Uint8Array> | null = WritableStream<Uint8Array> | null,
  Stdout extends ProcessReadableStream | null = ProcessReadableStream | null,
  Stderr extends ProcessReadableStream | null = ProcessReadableStream | null,
> implements AsyncDisposable {
  /** The child's pid. */
  readonly pid: number;
  /**
   * A stream to the child's stdin when `stdin: "piped"` (with `pty`: to its terminal), else
   * null (also when the library writes `input` or a `stdin` source itself). `output()` and
   * `text()` refuse to run while it is open and not being written (the child could wait for
   * it forever).
   */
  readonly stdin: Stdin;
  /**
   * The child's stdout when `stdout: "piped"` (with `pty`: its terminal's output), else null.
   * Read it, or pipe it elsewhere: a child whose pipe is full waits. Once `wait()` (or
   * `output()`, `text()`, `lines()`) awaits the exit, what nobody reads is drained into the
   * stream in the background, up to `maxBuffer` bytes; past that the child is killed
   * (SIGKILL) and the stream, after yielding those bytes, errors with `MaxBufferError`. A
   * stream being read is not drained: its reader sets the pace.
   */
  readonly stdout: Stdout;
  /** The child's stderr when `stderr: "piped"`, else null (with `pty` too); drained as `stdout` is. */
  readonly stderr: Stderr;
  /** Streams of extra descriptors the child writes (`fds: { 3: "piped" }`); drained as `stdout` is. */
  readonly fdOutputs: Readonly<Record<number, ProcessReadableStream>>;
  /** Streams to extra descriptors the child reads (`fds: { 3: "piped-input" }`). */
  readonly fdInputs: Readonly<Record<number, WritableStream<Uint8Array>>>;

  /** The realm's registry on the native backends; null on the runtime backend. */
  readonly #registry: Registry | null;
  /** The library's binding on the native backends; null on the runtime backend (never used there). */
  readonly #native: Native;
  /** The child on a backend without the library's slots (the runtime backend), else null. */
  readonly #child: BackendChild | null;
  /** The pipes the child writes (stdout, stderr, extra descriptors), drained once the exit is awaited. */
  readonly #outputs: readonly OutputPipe[];
  readonly #stdoutPipe: OutputPipe | null;
  readonly #stderrPipe: OutputPipe | null;
  /** Whether a piped stdin (one the user writes) was closed; null without one. */
  readonly #stdinState: StdinState | null;
  readonly #maxBuffer: number;
  /** Called once at the exit (or the loss) of the child: stops pumping stdin. */
  #exitHooks: (() => void)[] | null = null;
  readonly #slot: number;
  readonly #generation: number;
  readonly #command: string;
  readonly #args: readonly string[];
  readonly #leadsGroup: boolean;
  /** The library's pidfd for the child (-1 without pidfds); the library closes it. */
  readonly #pidfd: number;
  /** A pidfd this handle owns and closes (or its finalizer does). */
  #owned: OwnedPidfd | null = null;
  /** A group leader's own pidfd, kept past its exit for group signals; closed at disposal. */
  readonly #groupPidfd: OwnedPidfd | null = null;
  /** A `pty` child's terminal: a master descriptor for `resize`, -1 once closed at the exit; else null. */
  readonly #terminal: { control: number } | null;
  /** Its group was found empty after its exit: it stays empty, and its number may be reused. */
  #groupEmpty = false;
  #status: ProcessStatus | null = null;
  #lost: ReaperDiedError | null = null;
  #waiters = 0;
  #refed: boolean;
  #holding = false;
  #disposed = false;
  #timedOut = false;
  #aborted = false;
  /** Milliseconds from `killSignal` to SIGKILL (`forceKillAfter`), or null. */
  readonly #forceKillAfter: number | null;
  /** Allocated only for handles with timeouts or an AbortSignal (most have neither). */
  #timers: ReturnType<typeof setTimeout>[] | null = null;
  #cleanup: (() => void)[] | null = null;
  #promise: Promise<ProcessStatus> | null = null;
  #resolve: ((status: ProcessStatus) => void) | null = null;
  #reject: ((error: Error) => void) | null = null;

  /** @internal Use `spawnHandle`. */
  constructor(init: HandleInit) {
    this.pid = init.pid;
    this.stdin = init.stdin as Stdin;
    this.stdout = (init.stdout?.stream ?? null) as Stdout;
    this.stderr = (init.stderr?.stream ?? null) as Stderr;
    this.fdOutputs = frozenOrNone(init.fdOutputs);
    this.fdInputs = frozenOrNone(init.fdInputs);
    this.#outputs = init.outputs;
    this.#stdoutPipe = init.stdout;
    this.#stderrPipe = init.stderr;
    this.#stdinState = init.stdinState;
    this.#maxBuffer = init.plan.maxBuffer;
    this.#registry = init.registry;
    this.#native = (init.registry?.native ?? null) as Native;
    this.#child = init.child;
    this.#slot = init.slot;
    this.#generation = init.generation;
    this.#command = init.plan.command;
    this.#args = init.plan.args;
    this.#leadsGroup = init.plan.pgroup === 0 || init.plan.setsid;
    this.#refed = init.ref;
    this.#pidfd = init.pidfd;
    if (init.groupPidfd >= 0) {
      this.#groupPidfd = { fd: init.groupPidfd, native: this.#native };
      pidfdFinalizer.register(this, this.#groupPidfd);
    }
    this.#forceKillAfter = init.plan.forceKillAfter;
    this.#terminal = init.terminal ?? null;
    this.#registry?.add(init.slot, this);
    this.#armLifetime(init.plan);
    this.#updateHold();
    init.child?.onExit((status) => this.#finish(status));
  }

  /**
   * A pidfd for the child: it polls readable once the child has exited. The first read makes
   * it (a duplicate of the library's own, so closing it early hides nothing from the reaper);
   * it stays open until the exit is observed (`wait` resolved, `waitNonblock`/`waitSync`
   * reported it) or the handle is disposed, then it is closed and this reads -1. Read first
   * after the child exited, or on kernels without pidfds, it is -1.
   */
  get fd(): number {
    if (this.#owned === null && this.#pidfd >= 0 && this.#status === null && this.#lost === null) {
      // A duplicate: closing it, even early, cannot hide the exit from the reaper.
      const fd = this.#native.pidfdExport(this.#slot, this.#generation);
      if (fd < 0) return -1;
      this.#own(fd);
    }
    return this.#owned?.fd ?? -1;
  }

  /** @internal The slot generation the registry matches exit records against. */
  get [GENERATION](): number {
    return this.#generation;
  }

  /** @internal Called by the registry with this child's exit record. */
  [SETTLE](view: DataView, offset: number): void {
    this.#settle(view, offset);
  }

  /**
   * Sets the size of a `pty` child's terminal (TIOCSWINSZ): its foreground process group gets
   * SIGWINCH when the size changed. Returns false once the child's exit was observed (the
   * terminal is let go of then); throws a TypeError on a handle spawned without `pty`, and a
   * RangeError for a size outside 1 to 65535.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sleep", ["1"], { pty: true });
   * console.log(child.resize(100, 30)); // true
   * child.sendSignal("SIGKILL");
   * await child.wait();
   * console.log(child.resize(100, 30)); // false
   * ```
   */
  resize(cols: number, rows: number): boolean {
    const terminal = this.#terminal;
    if (terminal === null) {
      const error = new TypeError(
        `Cannot resize pid ${this.pid}: it was spawned without a terminal (the "pty" option)`,
      );
      (error as TypeError & { code: string }).code = "ERR_NOT_A_TERMINAL";
      throw error;
    }
    for (const [name, value] of [["cols", cols], ["rows", rows]] as const) {
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 0xffff) {
        throw rangeError(name, "must be an integer from 1 to 65535", value);
      }
    }
    if (terminal.control < 0) return false;
    return this.#native.ptyResize(terminal.control, cols, rows) === 0;
  }

  /** Lets go of the terminal's control descriptor (at the exit, or at disposal). */
  #closeTerminal(): void {
    const terminal = this.#terminal;
    if (terminal === null || terminal.control < 0) return;
    this.#native.close(terminal.control);
    terminal.control = -1;
  }

  /** Whether `timeout` ran out and `killSignal` was sent. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** Whether the `signal` option aborted and `killSignal` was sent. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /**
   * Sends a signal ("SIGTERM", "TERM" or 15; default "SIGTERM") through the pidfd, so it can
   * never reach a recycled pid; with `{ group: true }` to the process group the child leads,
   * even after the child exited (see `SendSignalOptions.group`). Returns false if the child
   * (or, with `group`, every member of its group) has already exited. An unknown option throws a TypeError.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sleep", ["10"]);
   * child.sendSignal("SIGINT");
   * console.log((await child.wait()).signal); // "SIGINT"
   * ```
   */
  sendSignal(signal: Signal | number = "SIGTERM", options: SendSignalOptions = {}): boolean {
    const number = signalNumber(signal);
    if (this.#disposed) throw new HandleClosedError(this.pid, "send a signal");
    if (options === null || typeof options !== "object") throw typeError("options", "an object", options);
    checkKeys("options", options, SEND_SIGNAL_OPTIONS);
    const group = options.group ?? false;
    if (typeof group !== "boolean") throw typeError("group", "a boolean", group);
    if (group && !this.#leadsGroup) {
      throw new TypeError(
        `Cannot signal the process group of pid ${this.pid}: it was not spawned with pgroup: true or setsid: true`,
      );
    }
    const tree = options.tree ?? false;
    if (typeof tree !== "boolean") throw typeError("tree", "a boolean", tree);
    if (group && tree) throw new TypeError('Invalid options: "group" and "tree" cannot be combined');
    if (group) return this.#signalGroup(number);
    if (this.#status !== null || this.#lost !== null) return false;
    if (tree && this.#child !== null) {
      throw new BackendUnsupportedError(
        "sendSignal(signal, { tree: true })",
        "runtime",
        "the runtime's spawn cannot find or hold the child's descendants",
      );
    }
    if (tree) return this.#signalTree(number);
    if (this.#child !== null) return this.#child.signal(number);
    const rc = this.#native.signal(this.#slot, this.#generation, number, 0);
    if (rc === 0) return true;
    if (rc === -ESRCH || rc === -ESTALE) return false;
    throw new SpawnError({ errno: -rc, syscall: "pidfd_send_signal", command: this.#command, args: this.#args });
  }

  /** The child and its descendants, held by pidfds in the library. */
  #signalTree(number: number): boolean {
    const rc = this.#native.signalTree(this.#slot, this.#generation, number);
    if (rc >= 0) return rc > 0;
    if (rc === -ESRCH || rc === -ESTALE) return false;
    throw new SpawnError({ errno: -rc, syscall: "signal_tree", command: this.#command, args: this.#args });
  }

  /** The group the child leads: through its kept pidfd, else through the slot while it runs, else by number. */
  #signalGroup(number: number): boolean {
    if (this.#groupEmpty) return false;
    const kept = this.#groupPidfd?.fd ?? -1;
    if (kept < 0 && this.#status === null && this.#lost === null) {
      const rc = this.#native.signal(this.#slot, this.#generation, number, SIGNAL_GROUP);
      if (rc === 0) return true;
      if (rc !== -ESRCH && rc !== -ESTALE) {
        throw new SpawnError({ errno: -rc, syscall: "kill", command: this.#command, args: this.#args });
      }
      // The leader exited meanwhile: its group may live on.
    }
    const rc = this.#native.signalGroup(kept, this.pid, number);
    if (rc === 0) return true;
    if (rc === -ESRCH) {
      this.#markGroupEmpty();
      return false;
    }
    const syscall = kept >= 0 ? "pidfd_send_signal" : "kill";
    throw new SpawnError({ errno: -rc, syscall, command: this.#command, args: this.#args });
  }

  /**
   * `sendSignal` by the name every JavaScript spawner uses (Node, Bun, Deno, execa).
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sleep", ["10"]);
   * child.kill();
   * console.log((await child.wait()).signal); // "SIGTERM"
   * ```
   */
  kill(signal: Signal | number = "SIGTERM", options: SendSignalOptions = {}): boolean {
    return this.sendSignal(signal, options);
  }

  /**
   * Resolves with the exit status; every call returns the same promise. Each call also starts
   * draining the piped outputs nobody is reading (see `stdout`), so a child that fills a pipe
   * cannot keep it from resolving.
   */
  wait(): Promise<ProcessStatus> {
    this.#drainOutputs(null);
    if (this.#promise !== null) return this.#promise;
    if (this.#status !== null) {
      this.#observe();
      this.#promise = Promise.resolve(this.#status);
      return this.#promise;
    }
    if (this.#lost !== null) {
      this.#promise = Promise.reject(this.#lost);
      return this.#promise;
    }
    this.#promise = new Promise<ProcessStatus>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#waiters++;
    this.#updateHold();
    // The exit may be published already with no wake-up pending in this realm.
    this.#registry?.drain();
    return this.#promise;
  }

  /** The status now: `exited: false` while the child runs. Never blocks. */
  waitNonblock(): ProcessStatus {
    if (this.#status === null && this.#lost === null) this.#poll(0);
    if (this.#lost !== null) throw this.#lost;
    if (this.#status === null) return runningStatus(this.pid);
    this.#observe();
    return this.#status;
  }

  /** Blocks the calling thread until the child exits (for scripts; it stops the event loop). */
  waitSync(): ProcessStatus {
    if (this.#child !== null && this.#status === null) {
      throw new BackendUnsupportedError(
        "waitSync()",
        "runtime",
        "neither runtime can block the thread until a child it spawned exits; await wait() instead",
      );
    }
    if (this.#status === null && this.#lost === null) this.#poll(-1);
    if (this.#lost !== null) throw this.#lost;
    this.#observe();
    return this.#status!;
  }

  /** @internal Blocks up to `ms` milliseconds (0: not at all) for the exit; true once it is known. */
  [WAIT_SYNC_FOR](ms: number): boolean {
    if (this.#status === null && this.#lost === null) this.#poll(ms <= 0 ? 0 : Math.ceil(ms));
    return this.#status !== null || this.#lost !== null;
  }

  /** Let a running child keep the event loop alive (the default). */
  ref(): void {
    this.#refed = true;
    this.#updateHold();
  }

  /** Let the event loop end while the child still runs (a pending `wait()` still holds it). */
  unref(): void {
    this.#refed = false;
    this.#updateHold();
  }

  /**
   * Reads stdout and stderr to their ends (empty for one that is not piped) and waits. A
   * TypeError if neither is piped, if one is locked by another reader, or while a piped stdin
   * is open and nobody is writing it (close it first, or write it while this runs). Past
   * `maxBuffer` bytes on either stream the child is killed (SIGKILL) and it rejects with a
   * `MaxBufferError` holding the first `maxBuffer` bytes of each stream and the status.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const { status, stdout } = await spawnHandle("echo", ["hi"], { stdout: "piped" }).output();
   * console.log(status.code, new TextDecoder().decode(stdout)); // 0 "hi\n"
   * ```
   */
  async output(options: OutputOptions = {}): Promise<ProcessOutput> {
    const maxBuffer = options.maxBuffer === undefined ? this.#maxBuffer : checkMaxBuffer(options.maxBuffer);
    if (this.#stdoutPipe === null && this.#stderrPipe === null) {
      throw new TypeError(
        `Cannot collect the output of pid ${this.pid}: stdout and stderr are not piped (spawn with stdout: "piped" or stderr: "piped")`,
      );
    }
    this.#refuseIdleStdin("output()");
    const reading = new OutputReading(
      [this.#stdoutPipe, this.#stderrPipe],
      maxBuffer,
      () => this.#killForOverflow(),
      () => this.wait(),
    );
    this.#drainOutputs(null);
    await reading.done;
    const status = await this.wait();
    const overflow = reading.overflowError(maxBuffer, status);
    if (overflow !== null) throw overflow;
    return { status, stdout: reading.bytes(0), stderr: reading.bytes(1) };
  }

  /**
   * Resolves with stdout decoded as UTF-8, once the child has exited: `output()` for text
   * (stderr, if piped, is read and dropped). A TypeError if stdout is not piped.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * console.log(await spawnHandle("echo", ["hi"], { stdout: "piped" }).text()); // "hi\n"
   * ```
   */
  async text(options: OutputOptions = {}): Promise<string> {
    if (this.#stdoutPipe === null) throw this.#notPiped("text()");
    return new TextDecoder().decode((await this.output(options)).stdout);
  }

  /**
   * Yields stdout line by line (without the "\n") as it arrives, then waits for the exit and
   * returns the status. A TypeError if stdout is not piped. Outputs it does not read (stderr,
   * extra descriptors) are drained meanwhile, as `wait()` drains them.
   *
   * Leaving early (`break`, `return()`) does not touch the child: stdout stays open and the
   * next read of it (`child.stdout`, another `lines()`, `text()`) starts at the next unread
   * byte. Keep reading what the child writes after that, or pipe it elsewhere, or the child
   * waits once its pipe is full (until `wait()` drains it).
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * for await (const line of spawnHandle("printf", ["a\\nb\\n"], { stdout: "piped" }).lines()) {
   *   console.log(line); // "a", then "b"
   * }
   * ```
   */
  async *lines(options: OutputOptions = {}): AsyncGenerator<string, ProcessStatus> {
    const maxBuffer = options.maxBuffer === undefined ? this.#maxBuffer : checkMaxBuffer(options.maxBuffer);
    const pipe = this.#stdoutPipe;
    if (pipe === null) throw this.#notPiped("lines()");
    const reader = pipe.lock();
    this.#drainOutputs(pipe);
    // Split on bytes, so what was read but not yielded goes back as it came.
    let parts: Uint8Array[] = [];
    let partsLength = 0;
    let current: Uint8Array = EMPTY;
    let offset = 0;
    let done = false;
    let decoder = new TextDecoder();
    const decode = (bytes: Uint8Array) => {
      const text = decoder.decode(bytes);
      // A byte order mark is dropped at the start only.
      decoder = LATER_LINES;
      return text;
    };
    try {
      for (;;) {
        const chunk = await pipe.nextLocked(reader);
        if (chunk === null) break;
        current = chunk;
        offset = 0;
        let newline: number;
        while ((newline = current.indexOf(10, offset)) >= 0) {
          const tail = current.subarray(offset, newline);
          const line = decode(partsLength === 0 ? tail : concatBytes([...parts, tail]));
          parts = [];
          partsLength = 0;
          offset = newline + 1;
          yield line;
        }
        if (offset < current.length) {
          parts.push(current.subarray(offset));
          partsLength += current.length - offset;
        }
        current = EMPTY;
        if (partsLength > maxBuffer) {
          this.#killForOverflow();
          const kept = concatBytes(parts).subarray(0, maxBuffer);
          parts = [];
          throw new MaxBufferError("stdout", maxBuffer, { stdout: kept });
        }
      }
      done = true;
      if (parts.length > 0) {
        const last = concatBytes(parts);
        parts = [];
        yield decode(last);
      }
    } finally {
      pipe.unlock(reader, done ? [] : [...parts, current.subarray(offset)]);
    }
    return await this.wait();
  }

  /**
   * For `await using`: if the child still runs, SIGTERM, then SIGKILL if it still runs
   * `forceKillAfter` milliseconds later (default 5000); waits for the exit and closes the pidfd.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * {
   *   await using child = spawnHandle("sleep", ["10"], { forceKillAfter: 1000 });
   * } // SIGTERM here; SIGKILL 1 s later had it trapped SIGTERM
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    if (this.#status === null && this.#lost === null && this.sendSignal(SIGTERM)) {
      const grace = this.#forceKillAfter ?? DEFAULT_FORCE_KILL_AFTER;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((resolve) => timer = setTimeout(resolve, grace));
      const exited = await Promise.race([this.wait().then(() => true, () => true), expired.then(() => false)]);
      clearTimeout(timer);
      if (!exited) this.sendSignal(SIGKILL);
    }
    await this.wait().catch(() => {});
    this.#disposed = true;
    this.#closePidfd();
    if (this.#groupPidfd !== null && this.#groupPidfd.fd >= 0) {
      this.#native.close(this.#groupPidfd.fd);
      this.#groupPidfd.fd = -1;
    }
  }

  /** @internal Runs `hook` once the child has exited (or was lost), now if it has. */
  [AT_EXIT](hook: () => void): void {
    if (this.#status !== null || this.#lost !== null) hook();
    else (this.#exitHooks ??= []).push(hook);
  }

  /** Starts draining the piped outputs, but `except` (one this handle reads itself). */
  #drainOutputs(except: OutputPipe | null): void {
    for (const pipe of this.#outputs) if (pipe !== except) pipe.drain();
  }

  #notPiped(method: string): TypeError {
    return new TypeError(
      `Cannot call ${method} on pid ${this.pid}: its stdout is not piped (spawn with stdout: "piped")`,
    );
  }

  /** Output collected while a piped stdin is open and idle would wait for the child's exit forever. */
  #refuseIdleStdin(method: string): void {
    const state = this.#stdinState;
    if (state === null || state.closed || this.stdin?.locked) return;
    throw new TypeError(
      `Cannot call ${method} on pid ${this.pid} while its piped stdin is open and nobody writes it: the child ` +
        `could wait for input forever. Close child.stdin first, or write it from a writer while ${method} ` +
        `runs, or give the bytes as "input" or "stdin" instead of "piped"`,
    );
  }

  /** SIGKILL for an output past `maxBuffer`; nothing if the child is gone or the handle disposed. */
  #killForOverflow(): void {
    if (this.#disposed || this.#status !== null || this.#lost !== null) return;
    try {
      this.sendSignal(SIGKILL);
    } catch { /* exited meanwhile */ }
  }

  #armLifetime(plan: SpawnPlan): void {
    // True when `killSignal` reached a running child (an exited one is neither timed out nor aborted).
    const kill = (): boolean => {
      if (this.#disposed || !this.sendSignal(plan.killSignal)) return false;
      if (plan.forceKillAfter !== null) {
        this.#timer(() => this.sendSignal(SIGKILL), plan.forceKillAfter);
      }
      return true;
    };
    if (plan.signal !== null) {
      const signal = plan.signal;
      const onAbort = () => {
        if (kill()) this.#aborted = true;
      };
      // Aborted while an asynchronous spawn was in flight: the child is killed at once.
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        (this.#cleanup ??= []).push(() => signal.removeEventListener("abort", onAbort));
      }
    }
    if (plan.timeout !== null) {
      this.#timer(() => {
        if (kill()) this.#timedOut = true;
      }, plan.timeout);
    }
  }

  /** A timer that never keeps the event loop alive by itself and ends with the child. */
  #timer(fn: () => void, ms: number): void {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    (this.#timers ??= []).push(timer);
  }

  #poll(timeoutMs: number): void {
    // The runtime backend's exit arrives by itself, through `onExit`.
    if (this.#child !== null || this.#registry === null) return;
    const out = new Uint8Array(ExitRecord.size);
    const rc = timeoutMs === 0
      ? this.#native.peek(this.#slot, this.#generation, out)
      : this.#native.waitSync(this.#slot, this.#generation, out, timeoutMs);
    if (rc === 1) this.#settle(new DataView(out.buffer), 0);
    // Exited: the slot is freed when its record is drained, so drain now rather than later.
    // ESTALE: the record was drained already, and draining settles this handle.
    if (rc === 1 || rc === -ESTALE) this.#registry.drain();
  }

  #settle(view: DataView, offset: number): void {
    if (this.#status !== null || this.#lost !== null) return;
    this.#exiting();
    if (recordKind(view, offset) === ExitKind.lost) {
      // The library hands its pidfd over: the orphan may still run and it is the only safe way
      // to it. One exported before is enough.
      const handed = view.getInt32(offset + ExitRecord.pidfd, true);
      if (handed >= 0 && this.#owned === null) this.#own(handed);
      else if (handed >= 0) this.#native.close(handed);
      this.#lost = new ReaperDiedError(this.pid, this.#command);
      this.#updateHold();
      this.#reject?.(this.#lost);
      this.#promise?.catch(() => {});
      return;
    }
    this.#finish(decodeStatus(view, offset));
  }

  /** What every exit does first: release the group, end the pipes, run the hooks, stop the timers. */
  #exiting(): void {
    this.#releaseEmptyGroup();
    this.#closeTerminal();
    for (const pipe of this.#outputs) pipe.childExited();
    const hooks = this.#exitHooks;
    this.#exitHooks = null;
    for (const hook of hooks ?? []) {
      try {
        hook();
      } catch { /* a hook only releases resources; the status must still be delivered */ }
    }
    for (const timer of this.#timers ?? []) clearTimeout(timer);
    for (const cleanup of this.#cleanup ?? []) cleanup();
    this.#timers = null;
    this.#cleanup = null;
  }

  /** Delivers the exit status (from an exit record, or from the runtime backend's child). */
  #finish(status: ProcessStatus): void {
    if (this.#status !== null || this.#lost !== null) return;
    if (this.#child !== null) this.#exiting();
    this.#status = status;
    this.#updateHold();
    if (this.#resolve !== null) {
      this.#observe();
      this.#resolve(this.#status);
    }
  }

  /**
   * At the leader's exit, its kept pidfd is closed if its group is empty already (the common
   * case: nothing was left behind), so only groups that outlive their leader hold one.
   */
  #releaseEmptyGroup(): void {
    const kept = this.#groupPidfd;
    if (kept === null || kept.fd < 0) return;
    if (this.#native.signalGroup(kept.fd, this.pid, 0) === -ESRCH) this.#markGroupEmpty();
  }

  /** Only called once the leader has exited: an empty group then never gets members again. */
  #markGroupEmpty(): void {
    this.#groupEmpty = true;
    const kept = this.#groupPidfd;
    if (kept === null || kept.fd < 0) return;
    this.#native.close(kept.fd);
    kept.fd = -1;
  }

  #observe(): void {
    this.#closePidfd();
  }

  #own(fd: number): void {
    this.#owned = { fd, native: this.#native };
    pidfdFinalizer.register(this, this.#owned);
  }

  #closePidfd(): void {
    const owned = this.#owned;
    if (owned === null || owned.fd < 0) return;
    this.#native.close(owned.fd);
    // The finalizer sees -1 and does nothing; unregistering would only cost time per exit.
    owned.fd = -1;
  }

  #updateHold(): void {
    const running = this.#status === null && this.#lost === null;
    const hold = running && (this.#refed || this.#waiters > 0);
    if (hold === this.#holding) return;
    this.#holding = hold;
    if (this.#child !== null) {
      // Not at the exit: on Deno an unref'd child's pipes stop holding the loop too, and a
      // grandchild may still write them.
      if (hold) this.#child.ref();
      else if (running) this.#child.unref();
    } else if (hold) this.#registry!.hold();
    else this.#registry!.release();
  }
}

const EMPTY = new Uint8Array(0);
/** Decodes the lines after the first: a byte order mark there is text, not a marker. */
const LATER_LINES = new TextDecoder("utf-8", { ignoreBOM: true });

/** Shared by every handle without extra descriptors (most): two objects fewer per handle. */
const NO_STREAMS: Readonly<Record<number, never>> = Object.freeze({});

function frozenOrNone<T>(streams: Record<number, T>): Readonly<Record<number, T>> {
  for (const _ in streams) return Object.freeze(streams);
  return NO_STREAMS;
}

interface HandleInit {
  /** The realm's registry (native backends), or null with `child`. */
  registry: Registry | null;
  /** The child on the runtime backend, or null. */
  child: BackendChild | null;
  plan: SpawnPlan;
  pid: number;
  pidfd: number;
  /** A second pidfd of a group leader, which the handle owns; or -1. */
  groupPidfd: number;
  slot: number;
  generation: number;
  ref: boolean;
  stdin: WritableStream<Uint8Array> | null;
  stdinState: StdinState | null;
  stdout: OutputPipe | null;
  stderr: OutputPipe | null;
  outputs: OutputPipe[];
  fdOutputs: Record<number, ProcessReadableStream>;
  fdInputs: Record<number, WritableStream<Uint8Array>>;
  /** The pseudo-terminal's control descriptor (`pty`), which the handle owns; else null. */
  terminal?: { control: number } | null;
}

/**
 * Spawns `command` with `args` as a private child and returns its handle. The command is
 * looked up in `PATH` like `execvp` when it has no slash. Failures throw `SpawnError`
 * synchronously and leave nothing behind.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("echo", ["hi"], { stdout: "piped" });
 * const text = await new Response(child.stdout).text();
 * const status = await child.wait();
 * console.log(text.trim(), status.success); // "hi" true
 * ```
 */
export function spawnHandle<
  const In extends StdinOption = "inherit",
  const Out extends Stdio = "inherit",
  const Err extends StderrOption = "inherit",
  const Pty extends boolean | PtySize = false,
>(
  command: string,
  args?: readonly string[],
  options?: SpawnOptions<In, Out, Err, Pty>,
): SpawnedHandle<In, Out, Err, Pty> {
  const plan = planSpawn(command, args, options, hostEnvironment());
  return spawnPlanned(plan, { streams: true, ref: true }).handle as SpawnedHandle<In, Out, Err, Pty>;
}

/**
 * `spawnHandle` without blocking the thread while the child is created: resolves with the
 * handle once the child runs, rejects with the `SpawnError` where `spawnHandle` would throw.
 * With the reaper (Linux) the JavaScript thread queues the spawn and goes on; the reaper
 * serves every queued spawn at its next wake-up and answers with the exits. A pool of jobs
 * spends its time on other jobs' output meanwhile. The other backends (and a `pty`) spawn in
 * the call, as `spawnHandle` does. `run()` spawns this way.
 *
 * @example
 * ```ts
 * import { spawnHandleAsync } from "@private-spawn/private-spawn";
 * const children = await Promise.all(
 *   ["a", "b", "c"].map((name) => spawnHandleAsync("echo", [name], { stdout: "piped" })),
 * );
 * for (const child of children) console.log((await child.stdout.text()).trim()); // "a", "b", "c"
 * ```
 */
export async function spawnHandleAsync<
  const In extends StdinOption = "inherit",
  const Out extends Stdio = "inherit",
  const Err extends StderrOption = "inherit",
  const Pty extends boolean | PtySize = false,
>(
  command: string,
  args?: readonly string[],
  options?: SpawnOptions<In, Out, Err, Pty>,
): Promise<SpawnedHandle<In, Out, Err, Pty>> {
  const plan = planSpawn(command, args, options, hostEnvironment());
  const { handle } = await spawnPlannedAsync(plan, { streams: true, ref: true });
  return handle as SpawnedHandle<In, Out, Err, Pty>;
}

/**
 * The handle `spawnHandle` returns for options whose `stdin`, `stdout` and `stderr` have the
 * types `In`, `Out` and `Err`: each piped one typed as a stream, each other one as null. With
 * `pty` (`Pty` true or a size) stdin and stdout are the terminal's streams and stderr is null.
 *
 * @example
 * ```ts
 * import { type SpawnedHandle, spawnHandle } from "@private-spawn/private-spawn";
 * const child: SpawnedHandle<"inherit", "piped", "null"> = spawnHandle("ls", [], { stdout: "piped", stderr: "null" });
 * console.log((await child.stdout.text()).length > 0); // true
 * ```
 */
export type SpawnedHandle<
  In extends StdinOption,
  Out extends Stdio,
  Err extends StderrOption,
  Pty extends boolean | PtySize = false,
> = 0 extends (1 & Pty) ? ProcessHandle
  : [Pty] extends [false] ? ProcessHandle<
      PipedStream<In, WritableStream<Uint8Array>>,
      PipedStream<Out, ProcessReadableStream>,
      PipedStream<Err, ProcessReadableStream>
    >
  : [Pty] extends [true | PtySize] ? ProcessHandle<WritableStream<Uint8Array>, ProcessReadableStream, null>
  : ProcessHandle;

/** Host ends of the pipes of a spawn, by the child's descriptor number. */
export type RawPipes = Map<number, number>;

/** @internal Spawns a validated plan; with `streams: false` the pipe ends are returned raw. */
export function spawnPlanned(
  plan: SpawnPlan,
  how: { streams: boolean; ref: boolean },
): { handle: ProcessHandle; pipes: RawPipes } {
  if (plan.signal?.aborted) throw plan.signal.reason;
  if (usesRuntimeBackend()) return spawnPlannedRuntime(plan, how);
  const registry = registryFor(plan);
  registry.drain();
  const native = registry.native;
  const terminal = plan.pty === null ? null : openTerminal(plan, native, how.streams);
  const planned = terminal === null ? plan : {
    ...plan,
    actions: plan.actions.map((action) => action.ptySlave ? { ...action, fd: terminal.slave } : action),
  };
  const request = encodeRequest(planned, registry.listener, ignoreMaskFor(plan, native));
  const rc = native.spawn(request.bytes, request.length);
  // The child has its own copies of the slave by now (or failed): the host keeps none.
  if (terminal !== null) native.close(terminal.slave);
  if (rc < 0) {
    if (terminal !== null) closeTerminal(terminal, native);
    throw spawnError(plan, request, -rc);
  }
  return spawned(plan, how, registry, request, terminal);
}

/**
 * @internal `spawnPlanned` without blocking the thread while the child is created: with the
 * reaper the spawn is queued and the promise settles when the reaper has answered; with every
 * other backend (and for a `pty`) it is `spawnPlanned`, settled at once.
 */
export function spawnPlannedAsync(
  plan: SpawnPlan,
  how: { streams: boolean; ref: boolean },
): Promise<{ handle: ProcessHandle; pipes: RawPipes }> {
  try {
    if (plan.signal?.aborted) throw plan.signal.reason;
    if (usesRuntimeBackend() || plan.pty !== null) return Promise.resolve(spawnPlanned(plan, how));
    const registry = registryFor(plan);
    registry.drain();
    const native = registry.native;
    const encoded = encodeRequest(plan, registry.listener, ignoreMaskFor(plan, native));
    // Memory of its own, kept until the answer: an ArrayBuffer's contents never move.
    const bytes = new Uint8Array(new ArrayBuffer(encoded.length));
    bytes.set(encoded.bytes.subarray(0, encoded.length));
    const request: EncodedRequest = { ...encoded, bytes, view: new DataView(bytes.buffer) };
    const rc = native.spawnStart(bytes, request.length);
    if (rc < 0) throw spawnError(plan, request, -rc);
    if (rc === 0) return Promise.resolve(spawned(plan, how, registry, request, null));
    return new Promise((resolve, reject) => {
      registry.addPending(request.view.getUint32(Request.slot, true), {
        request: bytes,
        generation: request.view.getUint32(Request.generation, true),
        complete(finished) {
          try {
            if (finished < 0) throw spawnError(plan, request, -finished);
            resolve(spawned(plan, how, registry, request, null));
          } catch (error) {
            reject(error);
          }
        },
      });
    });
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The signals the child starts with ignored: the host's, if the plan keeps them. */
function ignoreMaskFor(plan: SpawnPlan, native: Native): bigint {
  if (!plan.keepIgnoredSignals) return 0n;
  const out = new Uint8Array(8);
  native.ignoredSignals(out);
  return new DataView(out.buffer).getBigUint64(0, true);
}

/** The handle of a child the library has spawned from `request`, with its streams. */
function spawned(
  plan: SpawnPlan,
  how: { streams: boolean; ref: boolean },
  registry: Registry,
  request: EncodedRequest,
  terminal: OpenedPty | null,
): { handle: ProcessHandle; pipes: RawPipes } {
  const native = registry.native;
  for (const action of plan.actions) action.handOver?.handOver();
  const view = request.view;
  const pipes: RawPipes = new Map();
  plan.actions.forEach((action, i) => {
    if (action.pipe === undefined) return;
    pipes.set(action.target, view.getInt32(request.actionsOffset + i * FdAction.size + FdAction.out_fd, true));
  });
  // The handle exists only once the streams do; a kill for an overflow comes later, from a read.
  let handle: ProcessHandle | null = null;
  const owner: OutputOwner = { killForOverflow: () => killQuietly(handle) };
  const streams = {
    stdin: null as WritableStream<Uint8Array> | null,
    stdinState: null as StdinState | null,
    stdout: null as OutputPipe | null,
    stderr: null as OutputPipe | null,
    outputs: [] as OutputPipe[],
    fdOutputs: {} as Record<number, ProcessReadableStream>,
    fdInputs: {} as Record<number, WritableStream<Uint8Array>>,
  };
  let stopPump: (() => void) | null = null;
  if (terminal !== null) {
    streams.stdout = new OutputPipe("stdout", terminal.reader, plan.maxBuffer, owner);
    streams.outputs.push(streams.stdout);
    // No stdinState: closing a terminal's writer is no end of input, so nothing waits on it.
    streams.stdin = stdinStream(terminal.writer, { closed: false });
  }
  if (how.streams) {
    const output = (name: string, fd: number) => {
      const pipe = new OutputPipe(name, native.pipeReader(fd), plan.maxBuffer, owner);
      streams.outputs.push(pipe);
      return pipe;
    };
    for (const action of plan.actions) {
      const fd = pipes.get(action.target);
      if (fd === undefined) continue;
      if (action.pipe === "stdin" && plan.stdinSource !== null) {
        stopPump = pumpStdin(plan.stdinSource, native.pipeWriter(fd), () => killQuietly(handle));
      } else if (action.pipe === "stdin") {
        streams.stdinState = { closed: false };
        streams.stdin = stdinStream(native.pipeWriter(fd), streams.stdinState);
      } else if (action.pipe === "stdout") streams.stdout = output("stdout", fd);
      else if (action.pipe === "stderr") streams.stderr = output("stderr", fd);
      else if (action.pipe === "output") streams.fdOutputs[action.target] = output(`fd ${action.target}`, fd).stream;
      else if (action.pipe === "input") streams.fdInputs[action.target] = inputStream(native.pipeWriter(fd));
    }
  }
  const created = new ProcessHandle({
    registry,
    child: null,
    plan,
    pid: view.getInt32(Request.pid, true),
    pidfd: view.getInt32(Request.pidfd, true),
    groupPidfd: view.getInt32(Request.group_pidfd, true),
    slot: view.getUint32(Request.slot, true),
    generation: view.getUint32(Request.generation, true),
    ref: how.ref,
    terminal: terminal === null ? null : { control: terminal.control },
    ...streams,
  });
  handle = created;
  // The terminal's writer and control descriptor go at the exit; the reader at the end of its stream.
  if (terminal !== null) created[AT_EXIT](() => terminal.writer.close());
  // Pumping stops at the exit: it must not keep the event loop alive for a grandchild.
  if (stopPump !== null) created[AT_EXIT](stopPump);
  return { handle: created, pipes };
}

/** `spawnPlanned` on the runtime backend: the runtime's own spawn, its streams under the same pipes. */
function spawnPlannedRuntime(
  plan: SpawnPlan,
  how: { streams: boolean; ref: boolean },
): { handle: ProcessHandle; pipes: RawPipes } {
  if (!how.streams) {
    throw new BackendUnsupportedError(
      "outputSync() and runSync()",
      "runtime",
      "neither runtime can block the thread while it reads a child it spawned; use run() or output()",
    );
  }
  const { child, raw } = spawnRuntime(plan);
  let handle: ProcessHandle | null = null;
  const owner: OutputOwner = { killForOverflow: () => killQuietly(handle) };
  const outputs: OutputPipe[] = [];
  let stdin: WritableStream<Uint8Array> | null = null;
  let stdinState: StdinState | null = null;
  let stdout: OutputPipe | null = null;
  let stderr: OutputPipe | null = null;
  let stopPump: (() => void) | null = null;
  if (raw.stdin !== null && plan.stdinSource !== null) {
    stopPump = pumpStdin(plan.stdinSource, raw.stdin, () => killQuietly(handle));
  } else if (raw.stdin !== null) {
    stdinState = { closed: false };
    stdin = stdinStream(raw.stdin, stdinState);
  }
  if (raw.stdout !== null) outputs.push(stdout = new OutputPipe("stdout", raw.stdout, plan.maxBuffer, owner));
  if (raw.stderr !== null) outputs.push(stderr = new OutputPipe("stderr", raw.stderr, plan.maxBuffer, owner));
  const created = new ProcessHandle({
    registry: null,
    child,
    plan,
    pid: raw.pid,
    pidfd: -1,
    groupPidfd: -1,
    slot: 0,
    generation: 0,
    ref: how.ref,
    stdin,
    stdinState,
    stdout,
    stderr,
    outputs,
    fdOutputs: {},
    fdInputs: {},
  });
  handle = created;
  if (stopPump !== null) created[AT_EXIT](stopPump);
  return { handle: created, pipes: new Map() };
}

/** The pseudo-terminal of a `pty` spawn; a failure to open it is the spawn's `SpawnError`. */
function openTerminal(plan: SpawnPlan, native: Native, streams: boolean): OpenedPty {
  if (!streams) {
    throw valueError("pty", "is not supported by runSync() and outputSync() (use spawnHandle())", plan.pty);
  }
  const opened = openPty(native, plan.pty!.cols, plan.pty!.rows);
  if (typeof opened === "number") {
    throw new SpawnError({ errno: -opened, syscall: "posix_openpt", command: plan.command, args: plan.args });
  }
  return opened;
}

/** Closes every host descriptor of a terminal no child got. */
function closeTerminal(terminal: OpenedPty, native: Native): void {
  terminal.reader.close();
  terminal.writer.close();
  native.close(terminal.control);
}

/** SIGKILL to a child that may be gone, or whose handle may be disposed. */
function killQuietly(handle: ProcessHandle | null): void {
  try {
    handle?.sendSignal(SIGKILL);
  } catch { /* gone, or disposed */ }
}

/** The realm's registry; a listener that cannot be opened (EMFILE, ENFILE, ENOMEM) fails the spawn. */
function registryFor(plan: SpawnPlan): Registry {
  try {
    return getRegistry();
  } catch (error) {
    if (!(error instanceof ListenerError)) throw error;
    throw new SpawnError({ errno: error.errno, syscall: "listener", command: plan.command, args: plan.args });
  }
}

function spawnError(plan: SpawnPlan, request: EncodedRequest, errno: number): SpawnError {
  const view = request.view;
  const step = view.getUint32(Request.err_step, true);
  const index = view.getUint32(Request.err_index, true);
  const syscall = STEP_NAMES[step] ?? `step ${step}`;
  let path: string | undefined;
  if (syscall === "execve") path = plan.command;
  else if (syscall === "chdir") path = plan.cwd ?? undefined;
  else if (syscall === "helper") path = helperPath();
  else if (syscall === "open" && index < plan.actions.length) path = plan.actions[index].path ?? "/dev/null";
  const searchPath = syscall === "execve" && plan.searchPath !== null ? plan.searchPath : undefined;
  const buildIds = syscall === "helper" ? refusedHelperBuild() : undefined;
  return new SpawnError({ errno, syscall, command: plan.command, args: plan.args, path, searchPath, buildIds });
}
