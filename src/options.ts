/**
 * Spawn options and their validation. Everything is checked before anything is created;
 * a bad value throws a `TypeError` or `RangeError` naming the option and the value given.
 *
 * @module
 */
import { resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { FdKind } from "../ffi/abi.ts";
import { formatValue, type Signal, signalNumber } from "./signals.ts";
import { isStdinSource, type OutputPipe, outputPipeOf, sourceBytes, type StdinSource } from "./streams.ts";

export type { StdinSource } from "./streams.ts";

/**
 * A file opened in the child's setup (errors name its path). The open never waits: a FIFO
 * without a writer opens for reading at once and the child reads EOF unless a writer has
 * opened it by then; a FIFO without a reader fails for writing (`SpawnError` ENXIO, syscall
 * "open").
 */
export interface FileTarget {
  /** The file; relative paths resolve against the host's current directory. */
  path: string | URL;
  /** Append instead of truncating (outputs only). */
  append?: boolean;
  /** Truncate an existing file (outputs only; default true unless `append`). */
  truncate?: boolean;
  /** Permissions of a file that is created (default 0o666, less the umask). */
  mode?: number;
  /** Open for reading (the default for stdin, and for extra descriptors with `read: true`). */
  read?: boolean;
}

/**
 * Where a standard stream goes: "inherit" (default), "null", "piped" or "pipe" (a stream on
 * the handle), a host descriptor number (inherited as is), or a file.
 */
export type Stdio = "inherit" | "null" | "piped" | "pipe" | number | FileTarget;

/**
 * An extra descriptor of the child: a host descriptor number, a file, "null", "piped" or
 * "pipe" (the child writes, `handle.fdOutputs[n]` reads) or "piped-input" (`handle.fdInputs[n]` writes,
 * the child reads).
 */
export type ExtraFd = number | FileTarget | "null" | "piped" | "pipe" | "piped-input";

/**
 * What `stdin` accepts: a mode or a file (`Stdio`), or bytes, a Blob, a Response or a stream
 * the library writes to a pipe (`StdinSource`).
 */
export type StdinOption = Stdio | StdinSource;

/** What `stderr` accepts: `Stdio`, or "stdout" to share stdout's. */
export type StderrOption = Stdio | "stdout";

/**
 * The default `maxBuffer`: 100 MiB per stream.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_BUFFER } from "@private-spawn/private-spawn";
 * console.log(DEFAULT_MAX_BUFFER); // 104857600
 * ```
 */
export const DEFAULT_MAX_BUFFER = 100 * 1024 * 1024;

/**
 * The size of a pseudo-terminal (`pty`), in character cells: 1 to 65535 each.
 *
 * @example
 * ```ts
 * import { type PtySize, spawnHandle } from "@private-spawn/private-spawn";
 * const size: PtySize = { cols: 120, rows: 40 };
 * const child = spawnHandle("stty", ["size"], { pty: size });
 * console.log((await child.stdout.text()).trim()); // "40 120"
 * ```
 */
export interface PtySize {
  /** Columns (default 80). */
  cols?: number;
  /** Rows (default 24). */
  rows?: number;
}

/** Resource limits by Ruby's names (`RLIMIT_NOFILE` is `nofile`). */
export type RlimitName =
  | "as"
  | "core"
  | "cpu"
  | "data"
  | "fsize"
  | "locks"
  | "memlock"
  | "msgqueue"
  | "nice"
  | "nofile"
  | "nproc"
  | "rss"
  | "rtprio"
  | "rttime"
  | "sigpending"
  | "stack";

/** A limit: one number for soft and hard alike, or `[soft, hard]`; `Infinity` is unlimited. */
export type RlimitValue = number | readonly [number, number];

/**
 * Options of `spawnHandle`. The type parameters are the types of `stdin`, `stdout` and
 * `stderr`, which `spawnHandle` infers to type the handle's streams.
 */
export interface SpawnOptions<
  In extends StdinOption = StdinOption,
  Out extends Stdio = Stdio,
  Err extends StderrOption = StderrOption,
  Pty extends boolean | PtySize = boolean | PtySize,
> {
  /** The child's working directory; default: the host's current directory. */
  cwd?: string | URL;
  /** Variables merged over the host's environment (or over nothing with `clearEnv`); `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Start from an empty environment instead of the host's. */
  clearEnv?: boolean;
  /**
   * The child's stdin (default "inherit"); "piped" gives `handle.stdin`. Bytes (a
   * `Uint8Array`, any view or `ArrayBuffer`), a `Blob`, a `Response` or `Request` (its body)
   * or a `ReadableStream` of bytes or strings is written to a pipe by the library, which then
   * closes it, as `Bun.spawn` does; `handle.stdin` is null then. A string names a mode: give
   * text as `input`. Writing stops when the child exits (a grandchild that inherited stdin
   * gets no more) or stops reading (EPIPE, quietly); a stream that errors, or yields
   * something other than bytes or strings, gets the child killed (SIGKILL), so a cut input
   * is never taken for a whole one.
   */
  stdin?: In;
  /** The child's stdout (default "inherit"); "piped" gives `handle.stdout`. */
  stdout?: Out;
  /** The child's stderr (default "inherit"); "piped" gives `handle.stderr`; "stdout" shares stdout's. */
  stderr?: Err;
  /**
   * Text (as UTF-8) or bytes written to the child's stdin, which is then closed. Cannot be
   * combined with `stdin` (TypeError).
   */
  input?: string | Uint8Array;
  /**
   * Most bytes the library keeps for you per output: what `output()`, `text()` and the
   * streams' `text()`/`bytes()` collect, and what is drained from a stream nobody reads once
   * the exit is awaited. Past it the child is killed (SIGKILL) and `MaxBufferError` reports
   * the first `maxBuffer` bytes. Default 100 MiB; `Infinity`: no limit.
   */
  maxBuffer?: number;
  /** Extra descriptors by number in the child (Ruby's `fd => io`); swaps like `{1: 2, 2: 1}` work. */
  fds?: Record<number, ExtraFd>;
  /** Host descriptors (3 and up) that stay open in the child at the same number; all others are closed. */
  inheritFds?: readonly number[];
  /** The child's `argv[0]`; default: the command as given. */
  argv0?: string;
  /**
   * `true`: the child leads a new process group, which `sendSignal(sig, { group: true })` can
   * signal even after the child's exit (the handle keeps a pidfd of it until disposed or
   * collected); a number: it joins that group, which the handle cannot signal.
   */
  pgroup?: true | number;
  /** The child starts a new session (and process group). */
  setsid?: boolean;
  /** The child's umask. */
  umask?: number;
  /** Resource limits of the child. */
  rlimits?: Partial<Record<RlimitName, RlimitValue>>;
  /**
   * The child's user id. Credentials change all or nothing, in the order setgroups, setgid,
   * setuid, after every other step; a failure is a `SpawnError` naming the step and nothing
   * runs. With `uid` or `gid` and no `groups`, the child gets no supplementary groups (as
   * libuv, Rust, Deno and Bun do); if dropping them is refused (EPERM: no CAP_SETGID), the
   * spawn fails, unless the `uid` and `gid` asked for are the child's own already, in which
   * case it keeps the host's groups (nothing changes hands).
   */
  uid?: number;
  /** The child's group id (set after `groups`, before `uid`); without `groups` it drops the supplementary groups, see `uid`. */
  gid?: number;
  /** The child's supplementary groups, set first (setgroups); see `uid`. */
  groups?: readonly number[];
  /** Keep the signals the host ignores ignored in the child (default: every signal default). */
  keepIgnoredSignals?: boolean;
  /**
   * Aborting sends `killSignal`. An already aborted signal throws its reason and spawns nothing.
   * The sync helpers refuse it (they block the thread, so nothing could abort them).
   */
  signal?: AbortSignal;
  /** After this many milliseconds the child gets `killSignal`; 0, `undefined` or `Infinity`: never. */
  timeout?: number;
  /** The signal of `signal` and `timeout` (default "SIGTERM"; 0 is refused: it would not kill). */
  killSignal?: Signal | number;
  /**
   * Escalate to SIGKILL if the child still runs this many milliseconds after `killSignal`
   * (default: never). Also the grace `[Symbol.asyncDispose]` gives after SIGTERM (default 5000).
   */
  forceKillAfter?: number;
  /**
   * Signal the child when the host process exits (`true` means "SIGTERM"); default: keep
   * running. Its whole tree gets the signal: every descendant, `setsid` ones included, and
   * with `cgroup` (on by default here) double-forked ones too.
   */
  killOnParentExit?: boolean | Signal | number;
  /**
   * Start the child in a cgroup of its own (Linux, cgroup v2, clone3 `CLONE_INTO_CGROUP`),
   * so `sendSignal(sig, { tree: true })` and `killOnParentExit` reach every process it
   * starts, even one that double-forked away from it. Default: on with `killOnParentExit`,
   * else off (it costs about 0.1 ms of the reaper's time per child). Where cgroups are not
   * available the child runs without one: `backendInfo().tree` says which mode runs and
   * `treeFallbackReason` why. The `runtime` backend refuses `true`.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sh", ["-c", "(sleep 30 &) ; sleep 30"], { cgroup: true });
   * child.sendSignal("SIGKILL", { tree: true }); // the re-parented sleep too, in cgroup mode
   * await child.wait();
   * ```
   */
  cgroup?: boolean;
  /**
   * Run the child on a new pseudo-terminal (`true`: 80 x 24): its stdin, stdout and stderr
   * are the terminal, and it leads a new session with the terminal as its controlling
   * terminal. `child.stdout` reads what it writes there (the end comes once no process has
   * the terminal open); `child.stdin` types into it, so "\x03" is ^C for its foreground
   * process group and "\x04" at the start of a line is end of input (closing `child.stdin`
   * is not); `child.stderr` is null. `resize()` changes the size. Cannot be combined with
   * `stdin`, `stdout`, `stderr` other than "inherit", `input`, `fds` 0 to 2, `pgroup` or
   * `setsid: false` (TypeError). For `spawnHandle` only (`run()` and the sync helpers
   * refuse it), and not on the `runtime` backend.
   *
   * @example
   * ```ts
   * import { spawnHandle } from "@private-spawn/private-spawn";
   * const child = spawnHandle("sh", ["-c", "test -t 0 && stty size"], { pty: { cols: 120, rows: 40 } });
   * console.log((await child.stdout.text()).trim()); // "40 120"
   * ```
   */
  pty?: Pty;
}

/** Option names that were renamed: using the old one throws a TypeError naming the new one. */
export const RENAMED_OPTIONS: Readonly<Record<string, string>> = {
  timeoutMs: "timeout",
  forceKillAfterMs: "forceKillAfter",
};

/** One descriptor action for the child, as the request encoder takes it. */
export interface FdPlan {
  target: number;
  kind: number;
  fd?: number;
  path?: string;
  openFlags?: number;
  mode?: number;
  /** How the host end of a pipe is exposed: "stdin", "stdout", "stderr", "output", "input". */
  pipe?: "stdin" | "stdout" | "stderr" | "output" | "input";
  /** Another child's output pipe given as `stdin`, whose end `fd` is: handed over once spawned. */
  handOver?: OutputPipe;
  /** The pseudo-terminal's slave (`pty`): `fd` is set when the terminal is opened, at spawn. */
  ptySlave?: true;
}

/** A validated spawn: everything the request encoder needs. */
export interface SpawnPlan {
  command: string;
  /** What the library writes to a piped stdin (`input`, or a `stdin` source), or null. */
  stdinSource: Uint8Array | Exclude<StdinSource, ArrayBufferView | ArrayBuffer> | null;
  /** Bytes kept per output (`maxBuffer`). */
  maxBuffer: number;
  args: readonly string[];
  argv: string[];
  env: readonly string[];
  /** libc's `environ` address when the child inherits the host's environment as is, else 0. */
  hostEnviron: bigint;
  searchPath: string | null;
  cwd: string | null;
  actions: FdPlan[];
  inheritFds: number[];
  pgroup: number | null;
  setsid: boolean;
  umask: number | null;
  rlimits: [number, bigint, bigint][];
  uid: number | null;
  gid: number | null;
  groups: number[] | null;
  keepIgnoredSignals: boolean;
  killOnExitSignal: number;
  /** Whether the child gets a cgroup of its own where available (`cgroup`). */
  cgroup: boolean;
  signal: AbortSignal | null;
  /** Milliseconds until `killSignal`, or null for none. */
  timeout: number | null;
  killSignal: number;
  /** Milliseconds from `killSignal` to SIGKILL, or null for never. */
  forceKillAfter: number | null;
  /** The pseudo-terminal's size (`pty`), or null without one. */
  pty: { cols: number; rows: number } | null;
}

/** Thrown for an option of the wrong type. */
export function typeError(option: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`Invalid option "${option}": expected ${expected}, got ${formatValue(value)}`);
  (error as TypeError & { code: string }).code = "ERR_INVALID_ARG_TYPE";
  return error;
}

/** Thrown for an option of the right type whose value is not allowed. */
export function valueError(option: string, problem: string, value: unknown): TypeError {
  const error = new TypeError(`Invalid option "${option}": ${problem}, got ${formatValue(value)}`);
  (error as TypeError & { code: string }).code = "ERR_INVALID_ARG_VALUE";
  return error;
}

/** Thrown for a number out of its range. */
export function rangeError(option: string, problem: string, value: unknown): RangeError {
  const error = new RangeError(`Invalid option "${option}": ${problem}, got ${formatValue(value)}`);
  (error as RangeError & { code: string }).code = "ERR_OUT_OF_RANGE";
  return error;
}

function checkString(option: string, value: unknown, allowEmpty = true): string {
  if (typeof value !== "string") throw typeError(option, "a string", value);
  if (!allowEmpty && value.length === 0) throw valueError(option, "must not be empty", value);
  if (value.includes("\0")) throw valueError(option, "must not contain NUL bytes", value);
  return value;
}

function checkInteger(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number") throw typeError(option, "an integer", value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(option, `must be an integer from ${min} to ${max}`, value);
  }
  return value;
}

function checkBoolean(option: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw typeError(option, "a boolean", value);
  return value as boolean | undefined;
}

function checkPath(option: string, value: unknown): string {
  const path = value instanceof URL ? fileURLToPath(value) : checkString(option, value, false);
  if (path.includes("\0")) throw valueError(option, "must not contain NUL bytes", path);
  return path;
}

/** Every option `spawnHandle` accepts. */
export const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  "cwd",
  "env",
  "clearEnv",
  "stdin",
  "stdout",
  "stderr",
  "fds",
  "inheritFds",
  "argv0",
  "pgroup",
  "setsid",
  "umask",
  "rlimits",
  "uid",
  "gid",
  "groups",
  "keepIgnoredSignals",
  "signal",
  "timeout",
  "killSignal",
  "forceKillAfter",
  "killOnParentExit",
  "cgroup",
  "input",
  "maxBuffer",
  "pty",
]);

/** Linux resource numbers by Ruby's names. */
export const RLIMITS: Readonly<Record<RlimitName, number>> = {
  cpu: 0,
  fsize: 1,
  data: 2,
  stack: 3,
  core: 4,
  rss: 5,
  nproc: 6,
  nofile: 7,
  memlock: 8,
  as: 9,
  locks: 10,
  sigpending: 11,
  msgqueue: 12,
  nice: 13,
  rtprio: 14,
  rttime: 15,
};

const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const FD_MAX = 0x7fff_ffff;
const ID_MAX = 0xffff_fffe;

/** The default PATH searched when the child's environment has none (glibc's `_CS_PATH`). */
export const DEFAULT_SEARCH_PATH = "/bin:/usr/bin";

/** How the planner reads the host's environment (the runtime binding provides it). */
export interface HostEnvironment {
  /** The whole environment, copied. */
  environment(): Record<string, string | undefined>;
  /** One variable. */
  getEnv(name: string): string | undefined;
  /** libc's `environ` address when it is current, else 0 (see `Native.hostEnviron`). */
  readonly hostEnviron: bigint;
}

/**
 * Validates the arguments of `spawnHandle` and resolves them into a plan. The host's
 * environment is read only when the child inherits it, and not copied at all when the
 * runtime keeps libc's `environ` current and the options leave it untouched.
 */
export function planSpawn(command: unknown, args: unknown, options: unknown, host: HostEnvironment): SpawnPlan {
  const cmd = checkString("command", command, false);
  if (args === undefined) args = [];
  if (!Array.isArray(args)) throw typeError("args", "an array of strings", args);
  const argList = (args as unknown[]).map((arg, i) => checkString(`args[${i}]`, arg));
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") throw typeError("options", "an object", options);
  const o = options as SpawnOptions;
  checkKeys("options", o, KNOWN_OPTIONS);

  const cwd = o.cwd === undefined ? null : checkPath("cwd", o.cwd);
  checkBoolean("clearEnv", o.clearEnv);
  const inherit = o.env === undefined && !o.clearEnv && host.hostEnviron !== 0n;
  const copyAsIs = o.env === undefined && !o.clearEnv && !inherit;
  // The host's variables are merged only under an explicit `env`; otherwise they are inherited
  // or copied as they are, and `merged` stays empty.
  const merged: Record<string, string> = o.env === undefined || o.clearEnv ? {} : definedOnly(host.environment());
  if (o.env !== undefined) {
    if (o.env === null || typeof o.env !== "object" || Array.isArray(o.env)) {
      throw typeError("env", "an object of strings", o.env);
    }
    for (const [key, value] of Object.entries(o.env)) {
      if (key.length === 0 || key.includes("=") || key.includes("\0")) {
        throw valueError("env", "keys must be non-empty and contain neither '=' nor NUL", key);
      }
      if (value === undefined) delete merged[key];
      else merged[key] = checkString(`env.${key}`, value);
    }
  }
  const env = inherit ? [] : copyAsIs ? hostEnvironmentList(host) : environmentStrings(merged);
  const path = inherit || copyAsIs ? host.getEnv("PATH") : merged.PATH;
  const argv0 = o.argv0 === undefined ? cmd : checkString("argv0", o.argv0);

  const pty = planPty(o);
  let actions = planDescriptors(o);
  if (pty !== null) actions = [...PTY_ACTIONS.map((action) => ({ ...action })), ...actions.filter((a) => a.target > 2)];
  const stdinSource = planStdinSource(o);
  const maxBuffer = checkMaxBuffer(o.maxBuffer);
  const inheritFds = o.inheritFds === undefined ? [] : checkIntegerList("inheritFds", o.inheritFds, 3, FD_MAX);
  for (const fd of inheritFds) {
    if (actions.some((a) => a.target === fd)) throw valueError("inheritFds", `descriptor ${fd} is also in "fds"`, fd);
  }

  let pgroup: number | null = null;
  if (o.pgroup !== undefined) pgroup = o.pgroup === true ? 0 : checkInteger("pgroup", o.pgroup, 1, FD_MAX);
  const setsid = (checkBoolean("setsid", o.setsid) ?? false) || pty !== null;
  if (setsid && pgroup !== null) throw valueError("setsid", 'cannot be combined with "pgroup"', o.pgroup);

  let killOnExitSignal = 0;
  if (o.killOnParentExit !== undefined && o.killOnParentExit !== false) {
    killOnExitSignal = o.killOnParentExit === true ? 15 : parseKillSignal("killOnParentExit", o.killOnParentExit);
  }
  const cgroup = checkBoolean("cgroup", o.cgroup) ?? killOnExitSignal !== 0;
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw typeError("signal", "an AbortSignal", o.signal);
  }

  return {
    command: cmd,
    stdinSource,
    maxBuffer,
    args: argList,
    argv: [argv0, ...argList],
    env,
    searchPath: cmd.includes("/") ? null : (path ?? DEFAULT_SEARCH_PATH),
    hostEnviron: inherit ? host.hostEnviron : 0n,
    cwd,
    actions,
    inheritFds,
    pgroup,
    setsid,
    umask: o.umask === undefined ? null : checkInteger("umask", o.umask, 0, 0o777),
    rlimits: planRlimits(o.rlimits),
    uid: o.uid === undefined ? null : checkInteger("uid", o.uid, 0, ID_MAX),
    gid: o.gid === undefined ? null : checkInteger("gid", o.gid, 0, ID_MAX),
    groups: o.groups === undefined ? null : checkIntegerList("groups", o.groups, 0, ID_MAX),
    keepIgnoredSignals: checkBoolean("keepIgnoredSignals", o.keepIgnoredSignals) ?? false,
    killOnExitSignal,
    cgroup,
    signal: o.signal ?? null,
    timeout: checkTimeout("timeout", o.timeout),
    killSignal: o.killSignal === undefined ? 15 : parseKillSignal("killSignal", o.killSignal),
    forceKillAfter: o.forceKillAfter === undefined ? null : checkMilliseconds("forceKillAfter", o.forceKillAfter),
    pty,
  };
}

/** The largest terminal size (the kernel keeps 16 bits). */
const PTY_SIZE_MAX = 0xffff;

/** stdin, stdout and stderr on the pseudo-terminal's slave. */
const PTY_ACTIONS: readonly FdPlan[] = [0, 1, 2].map((target) => ({
  target,
  kind: FdKind.dup,
  fd: -1,
  ptySlave: true,
}));

/** `pty`: its size, or null; every option it cannot be combined with is refused. */
function planPty(o: SpawnOptions): SpawnPlan["pty"] {
  if (o.pty === undefined || o.pty === false) return null;
  let cols = 80;
  let rows = 24;
  if (o.pty !== true) {
    if (o.pty === null || typeof o.pty !== "object" || Array.isArray(o.pty)) {
      throw typeError("pty", "true or an object like { cols: 80, rows: 24 }", o.pty);
    }
    checkKeys("pty", o.pty, PTY_KEYS);
    if (o.pty.cols !== undefined) cols = checkInteger("pty.cols", o.pty.cols, 1, PTY_SIZE_MAX);
    if (o.pty.rows !== undefined) rows = checkInteger("pty.rows", o.pty.rows, 1, PTY_SIZE_MAX);
  }
  const terminal = '"pty" (the terminal is the child\'s stdin, stdout and stderr)';
  for (const name of STREAMS) {
    if (o[name] !== undefined && o[name] !== "inherit") {
      throw valueError(name, `cannot be combined with ${terminal}`, o[name]);
    }
  }
  if (o.input !== undefined) {
    throw valueError("input", `cannot be combined with "pty" (write it to child.stdin)`, o.input);
  }
  for (const target of ["0", "1", "2"]) {
    if (o.fds !== undefined && o.fds !== null && Object.hasOwn(o.fds, target)) {
      throw valueError(
        `fds.${target}`,
        `cannot be combined with ${terminal}`,
        (o.fds as Record<string, unknown>)[target],
      );
    }
  }
  if (o.setsid === false) {
    throw valueError("setsid", 'cannot be false with "pty" (the child leads the session of its terminal)', o.setsid);
  }
  if (o.pgroup !== undefined) {
    throw valueError("pgroup", 'cannot be combined with "pty" (the child leads the session of its terminal)', o.pgroup);
  }
  return { cols, rows };
}

const PTY_KEYS: ReadonlySet<string> = new Set(["cols", "rows"]);

/**
 * Throws for a key of `object` not in `known`: a TypeError naming the key (and the new name
 * of a renamed option).
 */
export function checkKeys(option: string, object: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(object)) {
    if (known.has(key)) continue;
    const renamed = RENAMED_OPTIONS[key];
    if (renamed !== undefined && known.has(renamed)) {
      throw valueError(option, `"${key}" was renamed "${renamed}" (milliseconds)`, key);
    }
    throw valueError(option, `unknown option "${key}"`, key);
  }
}

/** `maxBuffer`: a non-negative integer or `Infinity`; undefined means `DEFAULT_MAX_BUFFER`. */
export function checkMaxBuffer(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_BUFFER;
  if (value === Infinity) return value;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw rangeError("maxBuffer", "must be a non-negative integer or Infinity", value);
  }
  return value;
}

/** What the library writes to stdin: `input`, or a `stdin` that is bytes, a Blob, a Response or a stream. */
function planStdinSource(o: SpawnOptions): SpawnPlan["stdinSource"] {
  if (o.input !== undefined) {
    if (o.stdin !== undefined) {
      throw valueError("input", 'cannot be combined with "stdin" (the input is written to a piped stdin)', o.input);
    }
    if (typeof o.input === "string") return new TextEncoder().encode(o.input);
    if (o.input instanceof Uint8Array) return o.input;
    throw typeError("input", "a string or a Uint8Array", o.input);
  }
  const stdin: unknown = o.stdin;
  if (!isStdinSource(stdin) || handedOverPipe(stdin) !== null) return null;
  const bytes = sourceBytes(stdin);
  if (bytes !== null) return bytes;
  if (stdin instanceof ReadableStream && stdin.locked) {
    throw valueError("stdin", "the stream is locked by a reader", stdin);
  }
  if ((stdin instanceof Response || stdin instanceof Request) && stdin.bodyUsed) {
    throw valueError("stdin", "the body was used already", stdin);
  }
  return stdin as Exclude<StdinSource, ArrayBufferView | ArrayBuffer>;
}

/** The longest timer Node, Deno and Bun keep exact (2^31 - 1 ms, about 24.8 days). */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** Milliseconds for a delay: an integer from 0 to 2^31 - 1. */
function checkMilliseconds(option: string, value: unknown): number {
  return checkInteger(option, value, 0, TIMER_MAX_MS);
}

/** `timeout`: 0, `undefined` or `Infinity` mean none (as in Node), else milliseconds. */
export function checkTimeout(option: string, value: unknown): number | null {
  if (value === undefined || value === Infinity || value === 0) return null;
  return checkMilliseconds(option, value);
}

/** A signal that must kill: a name or a number from 1 to 64 (the null signal 0 only probes). */
function parseKillSignal(option: string, value: unknown): number {
  let number = 0;
  try {
    number = signalNumber(value as string | number);
  } catch {
    // Reported below with the option's name.
  }
  if (number === 0) throw valueError(option, 'must be a signal name like "SIGTERM" or a number from 1 to 64', value);
  return number;
}

function checkIntegerList(option: string, value: unknown, min: number, max: number): number[] {
  if (!Array.isArray(value)) throw typeError(option, "an array of integers", value);
  return value.map((v, i) => checkInteger(`${option}[${i}]`, v, min, max));
}

function planRlimits(value: unknown): [number, bigint, bigint][] {
  if (value === undefined) return [];
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError("rlimits", "an object like { nofile: [1024, 4096] }", value);
  }
  const out: [number, bigint, bigint][] = [];
  for (const [name, limit] of Object.entries(value)) {
    const resource = RLIMITS[name as RlimitName];
    if (resource === undefined) {
      throw rangeError("rlimits", `unknown resource "${name}" (known: ${Object.keys(RLIMITS).join(", ")})`, name);
    }
    const pair = Array.isArray(limit) ? limit : [limit, limit];
    if (pair.length !== 2) throw typeError(`rlimits.${name}`, "a number or [soft, hard]", limit);
    const [soft, hard] = pair.map((n) => limitValue(`rlimits.${name}`, n));
    if (soft > hard) throw rangeError(`rlimits.${name}`, "the soft limit must not exceed the hard limit", limit);
    out.push([resource, soft, hard]);
  }
  return out;
}

function limitValue(option: string, value: unknown): bigint {
  if (value === Infinity) return RLIM_INFINITY;
  if (typeof value !== "number") throw typeError(option, "a number or Infinity", value);
  if (!Number.isSafeInteger(value) || value < 0) throw rangeError(option, "must be a non-negative integer", value);
  return BigInt(value);
}

const STREAMS = ["stdin", "stdout", "stderr"] as const;

/** The descriptor actions: stdin, stdout, stderr, then `fds`. */
function planDescriptors(o: SpawnOptions): FdPlan[] {
  const actions: FdPlan[] = [];
  const extras = o.fds === undefined ? {} : o.fds;
  if (extras === null || typeof extras !== "object" || Array.isArray(extras)) {
    throw typeError("fds", "an object of descriptor numbers", extras);
  }
  const extraTargets = Object.keys(extras).map((key) => {
    if (!/^\d+$/.test(key) || Number(key) > FD_MAX) throw rangeError("fds", "keys must be descriptor numbers", key);
    return Number(key);
  });
  STREAMS.forEach((name, target) => {
    // `input` goes through a piped stdin (given with `stdin` too, it is refused later).
    const byInput = name === "stdin" && o.input !== undefined && o.stdin === undefined;
    const value = byInput ? "piped" : o[name];
    if (value !== undefined && extraTargets.includes(target)) {
      throw valueError("fds", `descriptor ${target} is already set by "${byInput ? "input" : name}"`, target);
    }
    if (extraTargets.includes(target)) return;
    if (name === "stderr" && value === "stdout") {
      actions.push({ target: 2, kind: FdKind.copy, fd: 1 });
      return;
    }
    actions.push(planOne(name, target, value ?? "inherit", target === 0 ? "read" : "write", name));
  });
  for (const target of extraTargets) {
    const value = (extras as Record<number, ExtraFd>)[target];
    if (value === "inherit" as unknown) {
      throw valueError(`fds.${target}`, 'use "inheritFds" to keep a host descriptor', value);
    }
    actions.push(planOne(`fds.${target}`, target, value, "write", null));
  }
  return actions;
}

function planOne(
  option: string,
  target: number,
  value: unknown,
  direction: "read" | "write",
  stream: "stdin" | "stdout" | "stderr" | null,
): FdPlan {
  if (value === "inherit" && stream !== null) return { target, kind: FdKind.inherit };
  const handOver = stream === "stdin" ? handedOverPipe(value) : null;
  if (handOver !== null) return { target, kind: FdKind.handover, fd: handOver.handOverFd!, handOver };
  if (stream === "stdin" && isStdinSource(value)) return { target, kind: FdKind.pipeToChild, pipe: "stdin" };
  if (value === "null") return { target, kind: FdKind.devnull };
  if (value === "piped" || value === "pipe") {
    const toChild = stream === "stdin";
    return { target, kind: toChild ? FdKind.pipeToChild : FdKind.pipeFromChild, pipe: stream ?? "output" };
  }
  if (value === "piped-input" && stream === null) return { target, kind: FdKind.pipeToChild, pipe: "input" };
  if (typeof value === "number") return { target, kind: FdKind.dup, fd: checkInteger(option, value, 0, FD_MAX) };
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const file = value as FileTarget;
    const path = resolvePath(checkPath(`${option}.path`, file.path));
    checkBoolean(`${option}.append`, file.append);
    checkBoolean(`${option}.truncate`, file.truncate);
    checkBoolean(`${option}.read`, file.read);
    const mode = file.mode === undefined ? 0o666 : checkInteger(`${option}.mode`, file.mode, 0, 0o7777);
    const read = file.read ?? direction === "read";
    let flags = read ? O_RDONLY : O_WRONLY | O_CREAT;
    if (!read && file.append) flags |= O_APPEND;
    else if (!read && (file.truncate ?? true)) flags |= O_TRUNC;
    return { target, kind: FdKind.file, path, openFlags: flags, mode };
  }
  const allowed = stream === null
    ? '"null", "piped" (or "pipe"), "piped-input", a descriptor number or { path }'
    : `"inherit", "null", "piped" (or "pipe"), ${
      stream === "stderr" ? '"stdout", ' : ""
    }a descriptor number or { path }`;
  throw valueError(option, `must be ${allowed}`, value);
}

/**
 * Another child's output (`stdin: seq.stdout`) whose pipe nothing has read yet: the new child
 * gets the same kernel pipe, with no copy through JavaScript. Else null.
 */
function handedOverPipe(value: unknown): OutputPipe | null {
  if (!(value instanceof ReadableStream)) return null;
  const pipe = outputPipeOf(value);
  return pipe !== null && pipe.handOverFd !== null ? pipe : null;
}

/** The last host environment copied as "KEY=value" strings, with what it was made from. */
let lastHostEnvironment: { keys: string[]; defined: Record<string, string>; list: readonly string[] } | null = null;

/**
 * The host's environment as "KEY=value" strings. When it has not changed since the last
 * spawn (same keys, same order, same values), the same array comes back, so `encodeRequest`
 * can reuse its encoded bytes too (Bun keeps no libc copy, so every spawn reads the
 * environment; comparing is the cheap part).
 */
export function hostEnvironmentList(host: HostEnvironment): readonly string[] {
  const environment = host.environment();
  const last = lastHostEnvironment;
  if (last !== null) {
    let i = 0;
    let same = true;
    for (const key in environment) {
      const value = environment[key];
      if (value === undefined) continue;
      if (i >= last.keys.length || last.keys[i] !== key || last.defined[key] !== value) {
        same = false;
        break;
      }
      i++;
    }
    if (same && i === last.keys.length) return last.list;
  }
  const defined = definedOnly(environment);
  const list = Object.freeze(environmentStrings(defined));
  lastHostEnvironment = { keys: Object.keys(defined), defined, list };
  return list;
}

/** "KEY=value" for each entry, in order. */
function environmentStrings(environment: Record<string, string>): string[] {
  return Object.entries(environment).map(([key, value]) => `${key}=${value}`);
}

/** The list `hostEnvironmentList` returned last, if any. */
export function lastHostEnvironmentList(): readonly string[] | null {
  return lastHostEnvironment?.list ?? null;
}

function definedOnly(environment: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in environment) {
    const value = environment[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
