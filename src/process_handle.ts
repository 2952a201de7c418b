/**
 * `spawnHandle` and `ProcessHandle`: a private child held by a durable handle.
 *
 * @module
 */
import { ExitKind, ExitRecord, FdAction, Request, STEP_NAMES } from "../ffi/abi.ts";
import type { Native } from "../ffi/mod.ts";
import { ReaperDiedError, SpawnError } from "./errors.ts";
import { planSpawn, type SpawnOptions, type SpawnPlan } from "./options.ts";
import { getRegistry, type Registry, type Settleable } from "./registry.ts";
import { encodeRequest, type EncodedRequest, type FdPlan, stdioActions } from "./request.ts";
import { type Signal, signalNumber } from "./signals.ts";
import { decodeStatus, type ProcessStatus, recordKind, runningStatus } from "./status.ts";

const ESRCH = 3;
const ESTALE = 116;

/** Closes pidfds of handles collected without their exit ever being observed. */
const pidfdFinalizer = new FinalizationRegistry<{ fd: number; native: Native }>((held) => {
  if (held.fd >= 0) held.native.close(held.fd);
});

/** Thrown when a handle is used after `[Symbol.asyncDispose]` released it. */
export class HandleClosedError extends Error {
  /** Always "ERR_HANDLE_CLOSED". */
  readonly code = "ERR_HANDLE_CLOSED";
  constructor(pid: number, action: string) {
    super(`Cannot ${action}: the handle of pid ${pid} was disposed`);
    this.name = "HandleClosedError";
  }
}

/**
 * A spawned child, held by its pidfd. The child is private: the host gets no `SIGCHLD` for
 * it and `waitpid(-1)` in the host never sees it.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "./mod.ts";
 * const child = spawnHandle("sh", ["-c", "exit 3"]);
 * const status = await child.wait();
 * console.log(status.code); // 3
 * ```
 */
export class ProcessHandle implements AsyncDisposable {
  /** The child's pid. */
  readonly pid: number;
  /** A stream to the child's stdin when `stdin: "piped"`, else null. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** The child's stdout when `stdout: "piped"`, else null. */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The child's stderr when `stderr: "piped"`, else null. */
  readonly stderr: ReadableStream<Uint8Array> | null;

  readonly #registry: Registry;
  readonly #native: Native;
  readonly #slot: number;
  readonly #generation: number;
  readonly #command: string;
  readonly #pidfd: { fd: number; native: Native };
  /** Set once `fd` was read: the user may poll it, so it stays open until they observe the exit. */
  #fdExported = false;
  #status: ProcessStatus | null = null;
  #lost: ReaperDiedError | null = null;
  #waiters = 0;
  #refed = true;
  #holding = false;
  #disposed = false;
  #promise: Promise<ProcessStatus> | null = null;
  #resolve: ((status: ProcessStatus) => void) | null = null;
  #reject: ((error: Error) => void) | null = null;

  /** @internal Use `spawnHandle`. */
  constructor(init: HandleInit) {
    this.pid = init.pid;
    this.stdin = init.stdin;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.#registry = init.registry;
    this.#native = init.registry.native;
    this.#slot = init.slot;
    this.#generation = init.generation;
    this.#command = init.command;
    this.#pidfd = { fd: init.pidfd, native: this.#native };
    pidfdFinalizer.register(this, this.#pidfd, this.#pidfd);
    const settleable: Settleable = {
      generation: init.generation,
      settle: (view, offset) => this.#settle(view, offset),
    };
    this.#registry.add(init.slot, settleable);
    this.#updateHold();
  }

  /**
   * The pidfd: it polls readable once the child has exited. Once read, it stays open until
   * the exit is observed (`wait` resolved, `waitNonblock`/`waitSync` reported it) or the
   * handle is disposed; then it is closed and this reads -1. A handle whose `fd` was never
   * read closes it as soon as the exit is delivered. -1 on kernels without pidfds.
   */
  get fd(): number {
    this.#fdExported = true;
    return this.#pidfd.fd;
  }

  /**
   * Sends a signal ("SIGTERM", "TERM" or 15; default "SIGTERM") through the pidfd, so it can
   * never reach a recycled pid. Returns false if the child has already exited.
   */
  sendSignal(signal: Signal | number = "SIGTERM"): boolean {
    const number = signalNumber(signal);
    if (this.#disposed) throw new HandleClosedError(this.pid, "send a signal");
    if (this.#status !== null || this.#lost !== null) return false;
    const rc = this.#native.signal(this.#slot, this.#generation, number);
    if (rc === 0) return true;
    if (rc === -ESRCH || rc === -ESTALE) return false;
    throw new SpawnError({ errno: -rc, syscall: "pidfd_send_signal", command: this.#command, args: [] });
  }

  /** Resolves with the exit status; every call returns the same promise. */
  wait(): Promise<ProcessStatus> {
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
    this.#registry.drain();
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
    if (this.#status === null && this.#lost === null) this.#poll(-1);
    if (this.#lost !== null) throw this.#lost;
    this.#observe();
    return this.#status!;
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

  /** SIGKILL if still running, then wait; closes the pidfd. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    if (this.#status === null && this.#lost === null) this.sendSignal("SIGKILL");
    await this.wait().catch(() => {});
    this.#disposed = true;
    this.#closePidfd();
  }

  #poll(timeoutMs: number): void {
    const out = new Uint8Array(ExitRecord.size);
    const rc = timeoutMs === 0
      ? this.#native.peek(this.#slot, this.#generation, out)
      : this.#native.waitSync(this.#slot, this.#generation, out, timeoutMs);
    if (rc === 1) {
      this.#settle(new DataView(out.buffer), 0);
      // The slot is freed when its record is drained; do that now rather than later.
      this.#registry.drain();
    } else if (rc === -ESTALE) {
      // Already drained: the registry has settled this handle.
      this.#registry.drain();
    }
  }

  #settle(view: DataView, offset: number): void {
    if (this.#status !== null || this.#lost !== null) return;
    if (recordKind(view, offset) === ExitKind.lost) {
      // The pidfd stays open: the orphan may still run and it is the only safe way to it.
      this.#lost = new ReaperDiedError(this.pid, this.#command);
      this.#updateHold();
      this.#reject?.(this.#lost);
      this.#promise?.catch(() => {});
      return;
    }
    this.#status = decodeStatus(view, offset);
    if (!this.#fdExported) this.#closePidfd();
    this.#updateHold();
    if (this.#resolve !== null) {
      this.#observe();
      this.#resolve(this.#status);
    }
  }

  #observe(): void {
    this.#closePidfd();
  }

  #closePidfd(): void {
    if (this.#pidfd.fd >= 0) {
      this.#native.close(this.#pidfd.fd);
      this.#pidfd.fd = -1;
      pidfdFinalizer.unregister(this.#pidfd);
    }
  }

  #updateHold(): void {
    const running = this.#status === null && this.#lost === null;
    const hold = running && (this.#refed || this.#waiters > 0);
    if (hold === this.#holding) return;
    this.#holding = hold;
    if (hold) this.#registry.hold();
    else this.#registry.release();
  }
}

interface HandleInit {
  registry: Registry;
  pid: number;
  pidfd: number;
  slot: number;
  generation: number;
  command: string;
  stdin: WritableStream<Uint8Array> | null;
  stdout: ReadableStream<Uint8Array> | null;
  stderr: ReadableStream<Uint8Array> | null;
}

/**
 * Spawns `command` with `args` as a private child and returns its handle. The command is
 * looked up in `PATH` like `execvp` when it has no slash. Failures throw `SpawnError`
 * synchronously and leave nothing behind.
 *
 * @example
 * ```ts
 * import { spawnHandle } from "./mod.ts";
 * const child = spawnHandle("echo", ["hi"], { stdout: "piped" });
 * const text = await new Response(child.stdout).text();
 * const status = await child.wait();
 * console.log(text.trim(), status.success); // "hi" true
 * ```
 */
export function spawnHandle(command: string, args?: readonly string[], options?: SpawnOptions): ProcessHandle {
  const plan = planSpawn(command, args, options);
  const registry = getRegistry();
  registry.drain();
  const actions = stdioActions(plan.stdio);
  const request = encodeRequest(plan, actions, registry.listener);
  const rc = registry.native.spawn(request.bytes, request.length);
  if (rc < 0) throw spawnError(plan, actions, request, -rc);
  const view = request.view;
  const hostEnd = (target: number) =>
    view.getInt32(request.actionsOffset + target * FdAction.size + FdAction.out_fd, true);
  const native = registry.native;
  return new ProcessHandle({
    registry,
    pid: view.getInt32(Request.pid, true),
    pidfd: view.getInt32(Request.pidfd, true),
    slot: view.getUint32(Request.slot, true),
    generation: view.getUint32(Request.generation, true),
    command: plan.command,
    stdin: plan.stdio[0] === "piped" ? native.writable(hostEnd(0)) : null,
    stdout: plan.stdio[1] === "piped" ? native.readable(hostEnd(1)) : null,
    stderr: plan.stdio[2] === "piped" ? native.readable(hostEnd(2)) : null,
  });
}

function spawnError(plan: SpawnPlan, actions: readonly FdPlan[], request: EncodedRequest, errno: number): SpawnError {
  const view = request.view;
  const step = view.getUint32(Request.err_step, true);
  const index = view.getUint32(Request.err_index, true);
  const syscall = STEP_NAMES[step] ?? `step ${step}`;
  let path: string | undefined;
  if (syscall === "execve") path = plan.command;
  else if (syscall === "chdir") path = plan.cwd ?? undefined;
  else if (syscall === "open" && index < actions.length) path = actions[index].path ?? "/dev/null";
  return new SpawnError({ errno, syscall, command: plan.command, args: plan.args, path });
}
