/**
 * The Open3 family with `handle: true`, in today's idioms: `run`, `popen3`, and the
 * synchronous `runSync` / `outputSync` for scripts.
 *
 * @module
 */
import { type CommandResult, MaxBufferError, ProcessError } from "./errors.ts";
import {
  checkMaxBuffer,
  checkTimeout,
  planSpawn,
  type SpawnOptions,
  type SpawnPlan,
  typeError,
  valueError,
} from "./options.ts";
import {
  type ProcessHandle,
  type ProcessOutput,
  spawnHandle,
  spawnHandleAsync,
  spawnPlanned,
  WAIT_SYNC_FOR,
} from "./process_handle.ts";
import { type Native, pipeGrower } from "../ffi/mod.ts";
import { hostEnvironment, outputSyncRuntime, usesRuntimeBackend } from "./backend.ts";
import { getNative } from "./registry.ts";
import type { ProcessStatus } from "./status.ts";
import { concatBytes, KILL_EOF_GRACE_MS, outputPipeOf, OutputReading, type ProcessReadableStream } from "./streams.ts";

export { KILL_EOF_GRACE_MS };

/**
 * Options of `run`, `runSync` and `outputSync`: those of `spawnHandle`, with stdout and
 * stderr piped and stdin "null" unless `input` or `stdin` says otherwise. `maxBuffer` (default
 * 100 MiB; `Infinity`: no limit) bounds each output; more kills the child.
 *
 * @example
 * ```ts
 * import { run, type RunOptions } from "@private-spawn/private-spawn";
 * const options: RunOptions = { input: "b\na\n", maxBuffer: 1 << 20 };
 * console.log((await run("sort", [], options)).stdout); // "a\nb\n"
 * ```
 */
export type RunOptions = SpawnOptions;

/**
 * What `popen3` returns: the three pipes and the handle.
 *
 * @example
 * ```ts
 * import { type Popen3, popen3 } from "@private-spawn/private-spawn";
 * const { stdin, stdout, handle }: Popen3 = popen3("cat");
 * await stdin.close();
 * console.log(await new Response(stdout).text(), (await handle.wait()).code); // "" 0
 * ```
 */
export interface Popen3 {
  /** The child's stdin. */
  stdin: WritableStream<Uint8Array>;
  /** The child's stdout. */
  stdout: ProcessReadableStream;
  /** The child's stderr. */
  stderr: ProcessReadableStream;
  /** The child. */
  handle: ProcessHandle<WritableStream<Uint8Array>, ProcessReadableStream, ProcessReadableStream>;
}

/** The options of a helper: stdout and stderr piped, stdin "null" unless `input` or `stdin` is given. */
function helperOptions(options: RunOptions | undefined): SpawnOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") throw typeError("options", "an object", options);
  if (options.pty !== undefined && options.pty !== false) {
    throw valueError("pty", "is not supported by run(), runSync() and outputSync(): use spawnHandle()", options.pty);
  }
  const defaults: SpawnOptions = { stdout: "piped", stderr: "piped" };
  if (options.input === undefined && options.stdin === undefined) defaults.stdin = "null";
  return { ...defaults, ...options };
}

function result(
  command: string,
  args: readonly string[],
  handle: { readonly timedOut: boolean; readonly aborted: boolean },
  output: ProcessOutput,
): CommandResult {
  const decoder = new TextDecoder();
  return {
    command,
    args,
    status: output.status,
    code: output.status.code,
    signal: output.status.signal,
    timedOut: handle.timedOut,
    aborted: handle.aborted,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Runs a command to its end and resolves with its decoded output; rejects with a
 * `ProcessError` (shaped like the result) unless it exits 0. stdout and stderr are piped and
 * stdin is `/dev/null` (or `input`) unless the options say otherwise. Without a kill it reads
 * to EOF, as Node's `execFile` does (a grandchild holding the pipes delays it); after a kill it
 * stops `KILL_EOF_GRACE_MS` after the child's exit. An abort rejects with the AbortSignal's
 * reason as the `cause`.
 *
 * @example
 * ```ts
 * import { run } from "@private-spawn/private-spawn";
 * const { stdout } = await run("echo", ["hello"]);
 * console.log(stdout); // "hello\n"
 * ```
 */
export async function run(command: string, args: readonly string[] = [], options?: RunOptions): Promise<CommandResult> {
  const spawnOptions = helperOptions(options);
  const handle = await spawnHandleAsync(command, args, spawnOptions);
  const maxBuffer = checkMaxBuffer(spawnOptions.maxBuffer);
  let killed = false;
  const reading = new OutputReading(
    [outputPipeOf(handle.stdout), outputPipeOf(handle.stderr)],
    maxBuffer,
    () => {
      killed = true;
      handle.sendSignal("SIGKILL");
    },
    () => handle.wait(),
  );
  // After a kill, or once `timeout` has run out, the reading ends a grace after the exit.
  let grace: ReturnType<typeof setTimeout> | undefined;
  let exited = false;
  let timeoutPassed = false;
  const startGrace = () => {
    grace ??= setTimeout(() => reading.stop(), KILL_EOF_GRACE_MS);
  };
  const timeout = checkTimeout("timeout", spawnOptions.timeout);
  const timer = timeout === null ? undefined : setTimeout(() => {
    timeoutPassed = true;
    if (exited) startGrace();
  }, timeout);
  const stopAfterKill = handle.wait().then(() => {
    exited = true;
    if (killed || handle.timedOut || handle.aborted || timeoutPassed) startGrace();
  }, () => {});
  let output: ProcessOutput;
  try {
    await reading.done;
    output = { status: await handle.wait(), stdout: reading.bytes(0), stderr: reading.bytes(1) };
  } catch (error) {
    const status = await handle.wait();
    const partial = { status, stdout: reading.bytes(0), stderr: reading.bytes(1) };
    throw new ProcessError(result(command, args, handle, partial), error);
  } finally {
    await stopAfterKill;
    clearTimeout(timer);
    clearTimeout(grace);
  }
  const done = result(command, args, handle, output);
  const overflow = reading.overflowError(maxBuffer, output.status);
  if (overflow !== null) throw new ProcessError(done, overflow);
  if (handle.aborted) throw new ProcessError(done, spawnOptions.signal?.reason);
  if (!output.status.success) throw new ProcessError(done);
  return done;
}

/**
 * Spawns with stdin, stdout and stderr piped: Ruby's `Open3.popen3` with `handle: true`.
 *
 * @example
 * ```ts
 * import { popen3 } from "@private-spawn/private-spawn";
 * const { stdin, stdout, handle } = popen3("cat");
 * const writer = stdin.getWriter();
 * await writer.write(new TextEncoder().encode("ping"));
 * await writer.close();
 * console.log(await new Response(stdout).text(), (await handle.wait()).code); // "ping" 0
 * ```
 */
export function popen3(command: string, args: readonly string[] = [], options: SpawnOptions = {}): Popen3 {
  // With `pty` in `options` the spawn throws (the terminal is stdin, stdout and stderr).
  const piped = { ...options, stdin: "piped", stdout: "piped", stderr: "piped" } as const;
  const handle = spawnHandle(command, args, piped as SpawnOptions<"piped", "piped", "piped", false>);
  return { stdin: handle.stdin, stdout: handle.stdout, stderr: handle.stderr, handle };
}

const POLLIN = 1;
const POLLOUT = 4;
const EAGAIN = 11;
const EINTR = 4;
const CHUNK = 64 * 1024;
/** How often a killed child that ignores its signal is checked for its exit while pumping. */
const STOP_RECHECK_MS = 50;

/**
 * Runs a command to its end without touching the event loop: the calling thread blocks in
 * `poll` while it feeds `input` and collects stdout and stderr. Like `run`, it reads to EOF
 * unless `timeout` runs out or `maxBuffer` kills: then it returns `KILL_EOF_GRACE_MS` after
 * the child's exit with what was read, even if a grandchild holds the pipes. `timedOut` is
 * true only if `killSignal` reached a running child. An AbortSignal (`signal`) is refused
 * with a TypeError: the thread is blocked, so nothing could abort. On the `runtime` backend it
 * is the runtime's own sync spawn: `Bun.spawnSync` (its timeout and `maxBuffer` send
 * `killSignal` once) or `Deno.Command`'s `outputSync()`, which can neither feed `input` nor
 * stop the child (both are a TypeError there; `maxBuffer` cuts what was read once it ended).
 *
 * @example
 * ```ts
 * import { outputSync } from "@private-spawn/private-spawn";
 * const { status, stdout } = outputSync("echo", ["hi"]);
 * console.log(status.code, new TextDecoder().decode(stdout)); // 0 "hi\n"
 * ```
 */
export function outputSync(
  command: string,
  args: readonly string[] = [],
  options?: RunOptions,
): ProcessOutput & { timedOut: boolean } {
  const spawnOptions = helperOptions(options);
  if (spawnOptions.signal !== undefined) {
    throw valueError(
      "signal",
      "the sync helpers block the thread, so no AbortSignal could abort them (use run() or timeout)",
      spawnOptions.signal,
    );
  }
  const plan = planSpawn(command, args, spawnOptions, hostEnvironment());
  const input = plan.stdinSource;
  if (input !== null && !(input instanceof Uint8Array)) {
    throw valueError(
      "stdin",
      "the sync helpers block the thread, so they cannot read a Blob, a Response or a stream (give bytes, or use run())",
      input,
    );
  }
  if (usesRuntimeBackend()) return outputSyncOnRuntime(plan, input);
  const maxBuffer = plan.maxBuffer;
  const { handle, pipes } = spawnPlanned(plan, { streams: false, ref: false });
  const native = getNative();
  const outputs = new Map<number, Uint8Array[]>();
  for (const action of plan.actions) {
    if (action.pipe === "stdout" || action.pipe === "stderr") outputs.set(pipes.get(action.target)!, []);
  }
  const stdinFd = plan.actions.find((a) => a.pipe === "stdin") ? pipes.get(0)! : -1;
  const state: SyncState = {
    handle,
    plan,
    native,
    open: new Set(outputs.keys()),
    inputFd: stdinFd,
    deadline: plan.timeout === null ? Infinity : performance.now() + plan.timeout,
    killAt: Infinity,
    stopAt: Infinity,
    exited: false,
    timedOut: false,
  };
  if (state.inputFd >= 0 && (input === null || input.length === 0)) {
    native.close(state.inputFd);
    state.inputFd = -1;
  }
  // The output that overflowed first; each output keeps its first `maxBuffer` bytes.
  let overflow: string | null = null;
  const sizes = new Map<number, number>();
  const keep = (fd: number, bytes: Uint8Array) => {
    const total = sizes.get(fd) ?? 0;
    const room = maxBuffer - total;
    if (bytes.length <= room) {
      sizes.set(fd, total + bytes.length);
      outputs.get(fd)!.push(bytes);
      return;
    }
    if (room > 0) outputs.get(fd)!.push(bytes.subarray(0, room));
    sizes.set(fd, maxBuffer);
    if (overflow !== null) return;
    overflow = fd === pipes.get(1) ? "stdout" : "stderr";
    handle.sendSignal("SIGKILL");
    state.stopAt = performance.now() + KILL_EOF_GRACE_MS;
  };
  try {
    pumpSync(state, input, keep);
    if (!state.exited) waitSyncBounded(state);
  } finally {
    for (const fd of state.open) native.close(fd);
    if (state.inputFd >= 0) native.close(state.inputFd);
  }
  const status = handle.waitSync();
  const joined = (fd: number | undefined) => fd === undefined ? new Uint8Array(0) : concatBytes(outputs.get(fd) ?? []);
  const stdoutFd = plan.actions.find((a) => a.pipe === "stdout") ? pipes.get(1) : undefined;
  const stderrFd = plan.actions.find((a) => a.pipe === "stderr") ? pipes.get(2) : undefined;
  const [stdout, stderr] = [joined(stdoutFd), joined(stderrFd)];
  if (overflow !== null) throw new MaxBufferError(overflow, maxBuffer, { stdout, stderr, status });
  return { status, stdout, stderr, timedOut: state.timedOut };
}

/** `outputSync` on the runtime backend: the runtime's own sync spawn, the same result and errors. */
function outputSyncOnRuntime(plan: SpawnPlan, input: Uint8Array | null): ProcessOutput & { timedOut: boolean } {
  const result = outputSyncRuntime(plan, input);
  const { status, stdout, stderr } = result;
  if (result.overflowed !== null) {
    throw new MaxBufferError(result.overflowed, plan.maxBuffer, {
      stdout,
      stderr,
      status,
      killed: result.overflowKilled,
    });
  }
  return { status, stdout, stderr, timedOut: result.timedOut };
}

/** What the sync helpers track while they pump and wait. */
interface SyncState {
  readonly handle: ProcessHandle;
  readonly plan: SpawnPlan;
  readonly native: Native;
  /** Host ends of stdout and stderr not yet at EOF. */
  readonly open: Set<number>;
  /** The host end of stdin while `input` is being written, else -1. */
  inputFd: number;
  /** When `timeout` runs out (performance.now() ms), Infinity once handled or without one. */
  deadline: number;
  /** When `forceKillAfter` sends SIGKILL. */
  killAt: number;
  /** After a kill: stop reading at this time if the child has exited by then. */
  stopAt: number;
  exited: boolean;
  timedOut: boolean;
}

/** Acts on the deadlines that have passed: `killSignal` at the timeout, SIGKILL after `forceKillAfter`. */
function checkDeadlines(state: SyncState, now: number): void {
  if (now >= state.deadline) {
    state.deadline = Infinity;
    state.exited ||= state.handle[WAIT_SYNC_FOR](0);
    // A child that has exited already did not time out (a grandchild may hold its pipes).
    if (!state.exited && state.handle.sendSignal(state.plan.killSignal)) {
      state.timedOut = true;
      if (state.plan.forceKillAfter !== null) state.killAt = now + state.plan.forceKillAfter;
    }
    state.stopAt = Math.min(state.stopAt, now + KILL_EOF_GRACE_MS);
  }
  if (now >= state.killAt) {
    state.killAt = Infinity;
    state.handle.sendSignal("SIGKILL");
  }
}

/** Feeds `input` and reads the outputs until EOF, or until a kill's grace has passed after the exit. */
function pumpSync(state: SyncState, input: Uint8Array | null, keep: (fd: number, bytes: Uint8Array) => void): void {
  const { native, open } = state;
  const growers = new Map([...open, state.inputFd].filter((fd) => fd >= 0).map((fd) => [fd, pipeGrower(native, fd)]));
  const pollfds = new Uint8Array(8 * 3);
  const view = new DataView(pollfds.buffer);
  const buffer = new Uint8Array(CHUNK);
  let written = 0;
  const readOnce = (fd: number): boolean => {
    const n = native.read(fd, buffer, buffer.length);
    if (n === -EAGAIN || n === -EINTR) return false;
    if (n <= 0) {
      native.close(fd);
      open.delete(fd);
      return false;
    }
    growers.get(fd)!(n);
    keep(fd, buffer.slice(0, n));
    return n === buffer.length;
  };
  while (open.size > 0 || state.inputFd >= 0) {
    const now = performance.now();
    checkDeadlines(state, now);
    if (now >= state.stopAt) {
      state.exited ||= state.handle[WAIT_SYNC_FOR](0);
      if (state.exited) {
        // What is in the pipes already is kept; a grandchild writing on is not waited for.
        for (const fd of [...open]) for (let i = 0; i < 16 && readOnce(fd); i++);
        return;
      }
      state.stopAt = now + STOP_RECHECK_MS;
    }
    const fds = [...open].map((fd) => [fd, POLLIN]);
    if (state.inputFd >= 0) fds.push([state.inputFd, POLLOUT]);
    fds.forEach(([fd, events], i) => {
      view.setInt32(i * 8, fd, true);
      view.setInt16(i * 8 + 4, events, true);
      view.setInt16(i * 8 + 6, 0, true);
    });
    const next = Math.min(state.deadline, state.killAt, state.stopAt);
    const waitMs = next === Infinity ? -1 : Math.max(0, Math.ceil(next - now));
    const ready = native.poll(pollfds, fds.length, waitMs);
    if (ready === -EINTR) continue;
    if (ready < 0) throw new Error(`poll failed with errno ${-ready}`);
    fds.forEach(([fd], i) => {
      if (view.getInt16(i * 8 + 6, true) === 0) return;
      if (fd !== state.inputFd) {
        readOnce(fd);
        return;
      }
      const n = native.write(fd, input!.subarray(written), input!.length - written);
      if (n > 0) written += n;
      growers.get(fd)!(n);
      if ((n < 0 && n !== -EAGAIN) || written >= input!.length) {
        native.close(fd);
        state.inputFd = -1;
      }
    });
  }
}

/** Waits for the exit with nothing left to pump, still honouring `timeout` and `forceKillAfter`. */
function waitSyncBounded(state: SyncState): void {
  for (;;) {
    const now = performance.now();
    checkDeadlines(state, now);
    if (state.exited) return;
    const next = Math.min(state.deadline, state.killAt);
    if (next === Infinity) return; // `waitSync` blocks for the rest.
    state.exited = state.handle[WAIT_SYNC_FOR](Math.max(1, next - now));
  }
}

/**
 * `run` for scripts: blocks the thread, returns the decoded result, throws `ProcessError`
 * unless the command exits 0.
 *
 * @example
 * ```ts
 * import { runSync } from "@private-spawn/private-spawn";
 * console.log(runSync("uname").stdout); // "Linux\n"
 * ```
 */
export function runSync(command: string, args: readonly string[] = [], options?: RunOptions): CommandResult {
  let output: ProcessOutput & { timedOut: boolean };
  const decoder = new TextDecoder();
  const decoded = (status: ProcessStatus, stdout: Uint8Array, stderr: Uint8Array, timedOut: boolean) => ({
    command,
    args,
    status,
    code: status.code,
    signal: status.signal,
    timedOut,
    aborted: false,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  });
  try {
    output = outputSync(command, args, options);
  } catch (error) {
    if (!(error instanceof MaxBufferError) || error.status === null) throw error;
    throw new ProcessError(decoded(error.status, error.stdout, error.stderr, false), error);
  }
  const done: CommandResult = decoded(output.status, output.stdout, output.stderr, output.timedOut);
  if (!output.status.success) throw new ProcessError(done);
  return done;
}
