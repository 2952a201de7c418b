/**
 * Typed errors. A failed spawn throws `SpawnError` carrying errno, its name, the step that
 * failed and the command; a child whose reaper died rejects with `ReaperDiedError`.
 *
 * @module
 */

const ERRNO_NAMES: Readonly<Record<number, [string, string]>> = {
  1: ["EPERM", "Operation not permitted"],
  2: ["ENOENT", "No such file or directory"],
  3: ["ESRCH", "No such process"],
  4: ["EINTR", "Interrupted system call"],
  5: ["EIO", "Input/output error"],
  6: ["ENXIO", "No such device or address"],
  7: ["E2BIG", "Argument list too long"],
  8: ["ENOEXEC", "Exec format error"],
  9: ["EBADF", "Bad file descriptor"],
  10: ["ECHILD", "No child processes"],
  11: ["EAGAIN", "Resource temporarily unavailable"],
  12: ["ENOMEM", "Cannot allocate memory"],
  13: ["EACCES", "Permission denied"],
  14: ["EFAULT", "Bad address"],
  16: ["EBUSY", "Device or resource busy"],
  17: ["EEXIST", "File exists"],
  20: ["ENOTDIR", "Not a directory"],
  21: ["EISDIR", "Is a directory"],
  22: ["EINVAL", "Invalid argument"],
  23: ["ENFILE", "Too many open files in system"],
  24: ["EMFILE", "Too many open files"],
  26: ["ETXTBSY", "Text file busy"],
  27: ["EFBIG", "File too large"],
  28: ["ENOSPC", "No space left on device"],
  30: ["EROFS", "Read-only file system"],
  32: ["EPIPE", "Broken pipe"],
  36: ["ENAMETOOLONG", "File name too long"],
  38: ["ENOSYS", "Function not implemented"],
  40: ["ELOOP", "Too many levels of symbolic links"],
  71: ["EPROTO", "Protocol error"],
  104: ["ECONNRESET", "Connection reset by peer"],
  110: ["ETIMEDOUT", "Connection timed out"],
  116: ["ESTALE", "Stale file handle"],
};

/** The symbolic name of an errno ("ENOENT"), or "E<number>". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno]?.[0] ?? `E${errno}`;
}

/** The number of an errno name ("ENOENT" is 2), or undefined for one not known. */
export function errnoNumber(name: string): number | undefined {
  for (const key in ERRNO_NAMES) if (ERRNO_NAMES[key][0] === name) return Number(key);
  return undefined;
}

/** The C library's text for an errno. */
export function errnoText(errno: number): string {
  return ERRNO_NAMES[errno]?.[1] ?? `errno ${errno}`;
}

/**
 * What a `SpawnError` reports.
 *
 * @example
 * ```ts
 * import { SpawnError, type SpawnErrorDetails } from "@private-spawn/private-spawn";
 * const details: SpawnErrorDetails = { errno: 2, syscall: "execve", command: "nope", args: [] };
 * console.log(new SpawnError(details).code); // "ENOENT"
 * ```
 */
export interface SpawnErrorDetails {
  /** The errno the failing step returned. */
  errno: number;
  /**
   * The setup step or syscall that failed: "execve", "chdir", "dup2", "open", "clone", …;
   * "helper" when the helper executable would not start or answer (EPROTO: one from another
   * build than the library, or not a helper; ETIMEDOUT: silent for 10 s).
   */
  syscall: string;
  /** The command as given. */
  command: string;
  /** The arguments as given. */
  args: readonly string[];
  /** The path involved, when the step had one (the program, the cwd, a redirected file, the helper). */
  path?: string;
  /** The `PATH` searched for a command without a slash (the child's, or the default). */
  searchPath?: string;
  /** When a helper of another build refused the library (EPROTO, "helper"): both build ids. */
  buildIds?: { library: string; helper: string };
}

/**
 * A child could not be started. Thrown synchronously by `spawnHandle`; nothing is left behind.
 *
 * @example
 * ```ts
 * import { SpawnError, spawnHandle } from "@private-spawn/private-spawn";
 * try {
 *   spawnHandle("no-such-command");
 * } catch (error) {
 *   if (error instanceof SpawnError) console.log(error.code, error.errno, error.syscall); // "ENOENT" 2 "execve"
 * }
 * ```
 */
export class SpawnError extends Error {
  /** The errno's name, like "ENOENT". */
  readonly code: string;
  /** The errno's number. */
  readonly errno: number;
  /** The step or syscall that failed. */
  readonly syscall: string;
  /** The command as given. */
  readonly command: string;
  /** The arguments as given. */
  readonly args: readonly string[];
  /** The path the failing step used, if any. */
  readonly path: string | undefined;
  /**
   * The directories searched for a command without a slash, in order (the child's `PATH`
   * split at ":"; an empty entry is the current directory); undefined for a path.
   */
  readonly searchPath: readonly string[] | undefined;
  /**
   * When a helper of another build refused the library (`EPROTO`, syscall "helper"): the
   * helper's and the library's build ids (8 hex digits each); undefined otherwise.
   */
  readonly buildIds: Readonly<{ library: string; helper: string }> | undefined;

  /** An error from what the library reported about the failed spawn. */
  constructor(details: SpawnErrorDetails) {
    const code = errnoName(details.errno);
    const where = details.path !== undefined && details.path !== details.command
      ? ` (${details.syscall} ${JSON.stringify(details.path)})`
      : ` (${details.syscall})`;
    const searched = details.searchPath !== undefined && details.syscall === "execve" && details.errno === 2;
    super(
      searched
        ? `Failed to spawn ${JSON.stringify(details.command)}: ${code}: Executable not found in $PATH ` +
          `(${details.syscall}; PATH=${JSON.stringify(details.searchPath)})`
        : `Failed to spawn ${JSON.stringify(details.command)}: ${code}: ${errnoText(details.errno)}${where}${
          helperHint(details)
        }`,
    );
    this.name = "SpawnError";
    this.code = code;
    this.errno = details.errno;
    this.syscall = details.syscall;
    this.command = details.command;
    this.args = details.args;
    this.path = details.path;
    this.searchPath = details.searchPath === undefined ? undefined : Object.freeze(details.searchPath.split(":"));
    this.buildIds = details.buildIds === undefined ? undefined : Object.freeze({ ...details.buildIds });
  }
}

/** What a failed start of the helper executable means. */
function helperHint(details: SpawnErrorDetails): string {
  if (details.syscall !== "helper") return "";
  const fix = "build both with zig build, or unset PRIVATE_SPAWN_HELPER";
  if (details.errno === 71 && details.buildIds !== undefined) {
    const { helper, library } = details.buildIds;
    return `: a helper of another build (the helper's build id is ${helper}, the library's ${library}; ${fix})`;
  }
  if (details.errno === 71) return `: not a helper of the library's build (${fix})`;
  return details.errno === 110 ? ": the helper did not answer" : "";
}

/**
 * The reaper that owned a child died before the child's exit status was collected.
 *
 * @example
 * ```ts
 * import { ReaperDiedError, spawnHandle } from "@private-spawn/private-spawn";
 * const child = spawnHandle("sleep", ["1"]);
 * try {
 *   await child.wait();
 * } catch (error) {
 *   if (error instanceof ReaperDiedError) console.log("status lost with the reaper of", error.pid);
 * }
 * ```
 */
export class ReaperDiedError extends Error {
  /** Always "ERR_REAPER_DIED". */
  readonly code = "ERR_REAPER_DIED";
  /** The child's pid. */
  readonly pid: number;
  /** The command as given. */
  readonly command: string;
  /** The error for the child `pid` started as `command`. */
  constructor(pid: number, command: string) {
    super(
      `The reaper process died before the exit status of ${
        JSON.stringify(command)
      } (pid ${pid}) was collected; the status is lost (the child itself may still run). The next spawn starts a new reaper.`,
    );
    this.name = "ReaperDiedError";
    this.pid = pid;
    this.command = command;
  }
}

/**
 * What a finished command produced; `ProcessError` carries the same fields.
 *
 * @example
 * ```ts
 * import { type CommandResult, run } from "@private-spawn/private-spawn";
 * const result: CommandResult = await run("echo", ["hi"]);
 * console.log(result.code, result.stdout); // 0 "hi\n"
 * ```
 */
export interface CommandResult {
  /** The command as given. */
  command: string;
  /** The arguments as given. */
  args: readonly string[];
  /** The exit status. */
  status: import("./status.ts").ProcessStatus;
  /** The exit code, or null after a signal. */
  code: number | null;
  /** The signal that ended the child, or null. */
  signal: string | null;
  /** Whether `timeout` ran out and the child was signalled. */
  timedOut: boolean;
  /** Whether `signal` (the AbortSignal) aborted and the child was signalled. */
  aborted: boolean;
  /** The child's stdout. */
  stdout: string;
  /** The child's stderr. */
  stderr: string;
}

const MESSAGE_OUTPUT_MAX = 2000;
const ARG_MAX = 200;

function clip(text: string): string {
  return text.length > MESSAGE_OUTPUT_MAX ? `${text.slice(0, MESSAGE_OUTPUT_MAX)}… (${text.length} characters)` : text;
}

/**
 * A command that ran but did not succeed (`run`): shaped like its result, with the output
 * whole in the fields and truncated in the message.
 *
 * @example
 * ```ts
 * import { ProcessError, run } from "@private-spawn/private-spawn";
 * try {
 *   await run("sh", ["-c", "echo oops >&2; exit 3"]);
 * } catch (error) {
 *   if (error instanceof ProcessError) console.log(error.code, error.stderr); // 3 "oops\n"
 * }
 * ```
 */
export class ProcessError extends Error implements CommandResult {
  /** The command as given. */
  readonly command: string;
  /** The arguments as given. */
  readonly args: readonly string[];
  /** The exit status. */
  readonly status: import("./status.ts").ProcessStatus;
  /** The exit code, or null after a signal. */
  readonly code: number | null;
  /** The signal that ended the child, or null. */
  readonly signal: string | null;
  /** Whether `timeout` ran out. */
  readonly timedOut: boolean;
  /** Whether the AbortSignal aborted. */
  readonly aborted: boolean;
  /** The child's whole stdout. */
  readonly stdout: string;
  /** The child's whole stderr. */
  readonly stderr: string;

  /** The error for `result`; `cause` when something other than the exit status failed. */
  constructor(result: CommandResult, cause?: unknown) {
    const quote = (a: string) => (/^[\w./=:-]+$/.test(a) ? a : JSON.stringify(a));
    const line = clip(
      [result.command, ...result.args].map((a) => quote(a.length > ARG_MAX ? `${a.slice(0, ARG_MAX)}…` : a)).join(" "),
    );
    const why = result.timedOut
      ? `timed out and was killed with ${result.signal ?? "a signal"}`
      : result.aborted
      ? `was aborted and killed with ${result.signal ?? "a signal"}`
      : cause !== undefined
      ? `failed: ${(cause as Error)?.message ?? String(cause)}`
      : result.signal !== null
      ? `was killed by ${result.signal}`
      : `failed with exit code ${result.code}`;
    const parts = [`Command ${why}: ${line}`];
    if (result.stderr) parts.push(clip(result.stderr.trimEnd()));
    if (result.stdout) parts.push(clip(result.stdout.trimEnd()));
    super(parts.join("\n"), cause === undefined ? undefined : { cause });
    this.name = "ProcessError";
    this.command = result.command;
    this.args = result.args;
    this.status = result.status;
    this.code = result.code;
    this.signal = result.signal;
    this.timedOut = result.timedOut;
    this.aborted = result.aborted;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
  }
}

/**
 * A child's output grew past `maxBuffer`; the child was killed (SIGKILL). Shaped like the
 * result of `output()` and `outputSync()`: `stdout` and `stderr` hold what was read, at most
 * the first `maxBuffer` bytes of each, and `status` how the child ended. (`run()` and
 * `runSync()` reject with a `ProcessError` whose `cause` is this error.) From a stream
 * (`child.stdout` drained while nobody read it), the bytes were yielded by the stream itself
 * and the fields are empty.
 *
 * @example
 * ```ts
 * import { MaxBufferError, spawnHandle } from "@private-spawn/private-spawn";
 * try {
 *   await spawnHandle("yes", [], { stdout: "piped" }).output({ maxBuffer: 1024 });
 * } catch (error) {
 *   if (error instanceof MaxBufferError) console.log(error.stream, error.maxBuffer, error.stdout.length); // "stdout" 1024 1024
 * }
 * ```
 */
export class MaxBufferError extends RangeError {
  /** Always "ERR_MAX_BUFFER". */
  readonly code = "ERR_MAX_BUFFER";
  /** The output that grew past the limit: "stdout", "stderr" or "fd <n>". */
  readonly stream: string;
  /** The limit in bytes. */
  readonly maxBuffer: number;
  /** What was read from stdout, at most `maxBuffer` bytes. */
  readonly stdout: Uint8Array;
  /** What was read from stderr, at most `maxBuffer` bytes. */
  readonly stderr: Uint8Array;
  /** How the child ended, or null if the error came before its exit was known. */
  readonly status: import("./status.ts").ProcessStatus | null;
  /** The error for `stream` growing past `maxBuffer` bytes, with what was read and the status. */
  constructor(stream: string, maxBuffer: number, read: MaxBufferRead = {}) {
    const fate = read.killed === false ? "the runtime ran the child to its end first" : "the child was killed";
    super(`The child's ${stream} exceeded maxBuffer (${maxBuffer} bytes); ${fate}`);
    this.name = "MaxBufferError";
    this.stream = stream;
    this.maxBuffer = maxBuffer;
    this.stdout = read.stdout ?? new Uint8Array(0);
    this.stderr = read.stderr ?? new Uint8Array(0);
    this.status = read.status ?? null;
  }
}

/**
 * What a `MaxBufferError` carries besides the stream and the limit.
 *
 * @example
 * ```ts
 * import { MaxBufferError, type MaxBufferRead } from "@private-spawn/private-spawn";
 * const read: MaxBufferRead = { stdout: new Uint8Array(4) };
 * console.log(new MaxBufferError("stdout", 4, read).stdout.length); // 4
 * ```
 */
export interface MaxBufferRead {
  /** What was read from stdout (default: empty). */
  stdout?: Uint8Array;
  /** What was read from stderr (default: empty). */
  stderr?: Uint8Array;
  /** How the child ended (default: null). */
  status?: import("./status.ts").ProcessStatus | null;
  /**
   * Whether the overflow stopped the child (default: true). False where the runtime ran it to
   * its end before the output could be measured (Deno's `outputSync` on the runtime backend).
   */
  killed?: boolean;
}
