/**
 * The Open3 family with `handle: true`, in today's idioms: `run`, `popen3`, and the
 * synchronous `runSync` / `outputSync` for scripts.
 *
 * @module
 */
import { type CommandResult, MaxBufferError, ProcessError } from "./errors.ts";
import { planSpawn, rangeError, type SpawnOptions, typeError } from "./options.ts";
import {
  DEFAULT_MAX_BUFFER,
  type ProcessHandle,
  type ProcessOutput,
  spawnHandle,
  spawnPlanned,
} from "./process_handle.ts";
import { pipeGrower } from "../ffi/mod.ts";
import { getNative } from "./registry.ts";
import type { ProcessStatus } from "./status.ts";

/**
 * Options of `run`, `runSync` and `outputSync`.
 *
 * @example
 * ```ts
 * import { run, type RunOptions } from "@private-spawn/private-spawn";
 * const options: RunOptions = { input: "b\na\n", maxBuffer: 1 << 20 };
 * console.log((await run("sort", [], options)).stdout); // "a\nb\n"
 * ```
 */
export interface RunOptions extends SpawnOptions {
  /** Bytes or text written to the child's stdin, which is then closed. */
  input?: string | Uint8Array;
  /** Most bytes kept per stream (default 100 MiB); more kills the child. */
  maxBuffer?: number;
}

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
  stdout: ReadableStream<Uint8Array>;
  /** The child's stderr. */
  stderr: ReadableStream<Uint8Array>;
  /** The child. */
  handle: ProcessHandle;
}

function splitRunOptions(options: RunOptions | undefined): [SpawnOptions, Uint8Array | null, number] {
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") throw typeError("options", "an object", options);
  const { input, maxBuffer, ...spawn } = options;
  let bytes: Uint8Array | null = null;
  if (typeof input === "string") bytes = new TextEncoder().encode(input);
  else if (input instanceof Uint8Array) bytes = input;
  else if (input !== undefined) throw typeError("input", "a string or a Uint8Array", input);
  if (maxBuffer !== undefined && (typeof maxBuffer !== "number" || !Number.isSafeInteger(maxBuffer) || maxBuffer < 0)) {
    throw rangeError("maxBuffer", "must be a non-negative integer", maxBuffer);
  }
  const defaults: SpawnOptions = { stdin: bytes === null ? "null" : "piped", stdout: "piped", stderr: "piped" };
  return [{ ...defaults, ...spawn }, bytes, maxBuffer ?? DEFAULT_MAX_BUFFER];
}

function result(command: string, args: readonly string[], handle: ProcessHandle, output: ProcessOutput): CommandResult {
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
 * stdin is `/dev/null` (or `input`) unless the options say otherwise.
 *
 * @example
 * ```ts
 * import { run } from "@private-spawn/private-spawn";
 * const { stdout } = await run("echo", ["hello"]);
 * console.log(stdout); // "hello\n"
 * ```
 */
export async function run(command: string, args: readonly string[] = [], options?: RunOptions): Promise<CommandResult> {
  const [spawnOptions, input, maxBuffer] = splitRunOptions(options);
  const handle = spawnHandle(command, args, spawnOptions);
  const writing = input !== null && handle.stdin !== null ? writeAll(handle.stdin, input) : Promise.resolve();
  let output: ProcessOutput;
  try {
    [output] = await Promise.all([handle.output({ maxBuffer }), writing.catch(() => {})]);
  } catch (error) {
    const status = await handle.wait();
    const partial = { status, stdout: new Uint8Array(0), stderr: new Uint8Array(0) };
    throw new ProcessError(result(command, args, handle, partial), error);
  }
  const done = result(command, args, handle, output);
  if (!output.status.success) throw new ProcessError(done);
  return done;
}

async function writeAll(stream: WritableStream<Uint8Array>, bytes: Uint8Array): Promise<void> {
  const writer = stream.getWriter();
  try {
    if (bytes.length > 0) await writer.write(bytes);
  } finally {
    await writer.close().catch(() => {});
  }
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
  const handle = spawnHandle(command, args, { ...options, stdin: "piped", stdout: "piped", stderr: "piped" });
  return { stdin: handle.stdin!, stdout: handle.stdout!, stderr: handle.stderr!, handle };
}

const POLLIN = 1;
const POLLOUT = 4;
const EAGAIN = 11;
const EINTR = 4;
const CHUNK = 64 * 1024;

/**
 * Runs a command to its end without touching the event loop: the calling thread blocks in
 * `poll` while it feeds `input` and collects stdout and stderr.
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
  const [spawnOptions, input, maxBuffer] = splitRunOptions(options);
  const plan = planSpawn(command, args, spawnOptions, getNative());
  const { handle, pipes } = spawnPlanned(plan, { streams: false, ref: false });
  const native = getNative();
  const outputs = new Map<number, { chunks: Uint8Array[]; total: number }>();
  for (const action of plan.actions) {
    if (action.pipe === "stdout" || action.pipe === "stderr") {
      outputs.set(pipes.get(action.target)!, { chunks: [], total: 0 });
    }
  }
  const stdinFd = plan.actions.find((a) => a.pipe === "stdin") ? pipes.get(0)! : -1;
  const open = new Set<number>([...outputs.keys()]);
  let inputFd = stdinFd;
  let written = 0;
  if (inputFd >= 0 && (input === null || input.length === 0)) {
    native.close(inputFd);
    inputFd = -1;
  }
  const growers = new Map([...open, inputFd].filter((fd) => fd >= 0).map((fd) => [fd, pipeGrower(native, fd)]));
  const pollfds = new Uint8Array(8 * 3);
  const view = new DataView(pollfds.buffer);
  const buffer = new Uint8Array(CHUNK);
  const deadline = plan.timeoutMs === null ? Infinity : performance.now() + plan.timeoutMs;
  let killDeadline = Infinity;
  let timedOut = false;
  let overflow: MaxBufferError | null = null;
  try {
    while (open.size > 0 || inputFd >= 0) {
      const fds = [...open].map((fd) => [fd, POLLIN]);
      if (inputFd >= 0) fds.push([inputFd, POLLOUT]);
      fds.forEach(([fd, events], i) => {
        view.setInt32(i * 8, fd, true);
        view.setInt16(i * 8 + 4, events, true);
        view.setInt16(i * 8 + 6, 0, true);
      });
      const now = performance.now();
      if (now >= deadline && !timedOut) {
        timedOut = true;
        handle.sendSignal(plan.killSignal);
        if (plan.forceKillAfterMs !== null) killDeadline = now + plan.forceKillAfterMs;
      }
      if (now >= killDeadline) {
        handle.sendSignal("SIGKILL");
        killDeadline = Infinity;
      }
      const next = Math.min(timedOut ? Infinity : deadline, killDeadline);
      const waitMs = next === Infinity ? -1 : Math.max(0, Math.ceil(next - now));
      const ready = native.poll(pollfds, fds.length, waitMs);
      if (ready === -EINTR) continue;
      if (ready < 0) throw new Error(`poll failed with errno ${-ready}`);
      fds.forEach(([fd], i) => {
        const revents = view.getInt16(i * 8 + 6, true);
        if (revents === 0) return;
        if (fd === inputFd) {
          const n = native.write(fd, input!.subarray(written), input!.length - written);
          if (n > 0) written += n;
          growers.get(fd)!(n);
          if ((n < 0 && n !== -EAGAIN) || written >= input!.length) {
            native.close(fd);
            inputFd = -1;
          }
          return;
        }
        const n = native.read(fd, buffer, buffer.length);
        if (n === -EAGAIN || n === -EINTR) return;
        if (n <= 0) {
          native.close(fd);
          open.delete(fd);
          return;
        }
        growers.get(fd)!(n);
        const sink = outputs.get(fd)!;
        sink.total += n;
        if (sink.total > maxBuffer && overflow === null) {
          overflow = new MaxBufferError(fd === pipes.get(1) ? "stdout" : "stderr", maxBuffer);
          handle.sendSignal("SIGKILL");
        }
        if (overflow === null) sink.chunks.push(buffer.slice(0, n));
      });
    }
  } finally {
    for (const fd of open) native.close(fd);
    if (inputFd >= 0) native.close(inputFd);
  }
  const status = handle.waitSync();
  if (overflow !== null) throw overflow;
  const joined = (fd: number | undefined) => {
    const sink = fd === undefined ? undefined : outputs.get(fd);
    if (sink === undefined) return new Uint8Array(0);
    const out = new Uint8Array(sink.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of sink.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  };
  const stdoutFd = plan.actions.find((a) => a.pipe === "stdout") ? pipes.get(1) : undefined;
  const stderrFd = plan.actions.find((a) => a.pipe === "stderr") ? pipes.get(2) : undefined;
  return { status, stdout: joined(stdoutFd), stderr: joined(stderrFd), timedOut };
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
  try {
    output = outputSync(command, args, options);
  } catch (error) {
    if (!(error instanceof MaxBufferError)) throw error;
    const status: ProcessStatus = {
      pid: 0,
      exited: true,
      code: null,
      signal: "SIGKILL",
      coreDumped: false,
      success: false,
      rusage: null,
    };
    throw new ProcessError({
      command,
      args,
      status,
      code: null,
      signal: "SIGKILL",
      timedOut: false,
      aborted: false,
      stdout: "",
      stderr: "",
    }, error);
  }
  const done: CommandResult = {
    command,
    args,
    status: output.status,
    code: output.status.code,
    signal: output.status.signal,
    timedOut: output.timedOut,
    aborted: false,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
  if (!output.status.success) throw new ProcessError(done);
  return done;
}
