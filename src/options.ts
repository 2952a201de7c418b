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

/**
 * A file opened in the child's setup (errors name its path).
 *
 * @example
 * ```ts
 * import { type FileTarget, spawnHandle } from "@private-spawn/private-spawn";
 * const log: FileTarget = { path: "/tmp/private-spawn-example.log", append: true };
 * await spawnHandle("echo", ["done"], { stdout: log, stderr: "stdout" }).wait();
 * ```
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
 * Where a standard stream goes: "inherit" (default), "null", "piped" (a stream on the
 * handle), a host descriptor number (inherited as is), or a file.
 *
 * @example
 * ```ts
 * import { spawnHandle, type Stdio } from "@private-spawn/private-spawn";
 * const stdout: Stdio = "piped"; // or "inherit", "null", a descriptor number, a FileTarget
 * console.log(await spawnHandle("echo", ["hi"], { stdout }).text()); // "hi\n"
 * ```
 */
export type Stdio = "inherit" | "null" | "piped" | number | FileTarget;

/**
 * An extra descriptor of the child: a host descriptor number, a file, "null", "piped" (the
 * child writes, `handle.fdOutputs[n]` reads) or "piped-input" (`handle.fdInputs[n]` writes,
 * the child reads).
 *
 * @example
 * ```ts
 * import { type ExtraFd, spawnHandle } from "@private-spawn/private-spawn";
 * const fds: Record<number, ExtraFd> = { 3: "piped" };
 * const child = spawnHandle("sh", ["-c", "echo progress >&3"], { fds });
 * console.log(await new Response(child.fdOutputs[3]).text()); // "progress\n"
 * ```
 */
export type ExtraFd = number | FileTarget | "null" | "piped" | "piped-input";

/**
 * Resource limits by Ruby's names (`RLIMIT_NOFILE` is `nofile`).
 *
 * @example
 * ```ts
 * import { type RlimitName, type RlimitValue, spawnHandle } from "@private-spawn/private-spawn";
 * const rlimits: Partial<Record<RlimitName, RlimitValue>> = { nofile: [1024, 4096], core: 0 };
 * await spawnHandle("sh", ["-c", "ulimit -n"], { rlimits }).wait();
 * ```
 */
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

/**
 * A limit: one number for soft and hard alike, or `[soft, hard]`; `Infinity` is unlimited.
 *
 * @example
 * ```ts
 * import { type RlimitValue, spawnHandle } from "@private-spawn/private-spawn";
 * const nofile: RlimitValue = [1024, 4096]; // [soft, hard]; a number sets both; Infinity is unlimited
 * await spawnHandle("true", [], { rlimits: { nofile } }).wait();
 * ```
 */
export type RlimitValue = number | readonly [number, number];

/**
 * Options of `spawnHandle`.
 *
 * @example
 * ```ts
 * import { spawnHandle, type SpawnOptions } from "@private-spawn/private-spawn";
 * const options: SpawnOptions = { cwd: "/tmp", env: { LANG: "C" }, stdout: "piped", killOnParentExit: true };
 * console.log(await spawnHandle("pwd", [], options).text()); // "/tmp\n"
 * ```
 */
export interface SpawnOptions {
  /** The child's working directory; default: the host's current directory. */
  cwd?: string | URL;
  /** Variables merged over the host's environment (or over nothing with `clearEnv`); `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Start from an empty environment instead of the host's. */
  clearEnv?: boolean;
  /** The child's stdin (default "inherit"); "piped" gives `handle.stdin`. */
  stdin?: Stdio;
  /** The child's stdout (default "inherit"); "piped" gives `handle.stdout`. */
  stdout?: Stdio;
  /** The child's stderr (default "inherit"); "piped" gives `handle.stderr`; "stdout" shares stdout's. */
  stderr?: Stdio | "stdout";
  /** Extra descriptors by number in the child (Ruby's `fd => io`); swaps like `{1: 2, 2: 1}` work. */
  fds?: Record<number, ExtraFd>;
  /** Host descriptors (3 and up) that stay open in the child at the same number; all others are closed. */
  inheritFds?: readonly number[];
  /** The child's `argv[0]`; default: the command as given. */
  argv0?: string;
  /** `true`: the child leads a new process group; a number: it joins that group. */
  pgroup?: true | number;
  /** The child starts a new session (and process group). */
  setsid?: boolean;
  /** The child's umask. */
  umask?: number;
  /** Resource limits of the child. */
  rlimits?: Partial<Record<RlimitName, RlimitValue>>;
  /** The child's user id (set after groups and gid). */
  uid?: number;
  /** The child's group id. */
  gid?: number;
  /** The child's supplementary groups. */
  groups?: readonly number[];
  /** Keep the signals the host ignores ignored in the child (default: every signal default). */
  keepIgnoredSignals?: boolean;
  /** Aborting sends `killSignal`. An already aborted signal throws its reason and spawns nothing. */
  signal?: AbortSignal;
  /** After this many milliseconds the child gets `killSignal`. */
  timeoutMs?: number;
  /** The signal of `signal` and `timeoutMs` (default "SIGTERM"). */
  killSignal?: Signal | number;
  /** Escalate to SIGKILL if the child still runs this long after `killSignal`. */
  forceKillAfterMs?: number;
  /** Signal the child when the host process exits (`true` means "SIGTERM"); default: keep running. */
  killOnParentExit?: boolean | Signal | number;
}

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
}

/** A validated spawn: everything the request encoder needs. */
export interface SpawnPlan {
  command: string;
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
  signal: AbortSignal | null;
  timeoutMs: number | null;
  killSignal: number;
  forceKillAfterMs: number | null;
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
  "timeoutMs",
  "killSignal",
  "forceKillAfterMs",
  "killOnParentExit",
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
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(key)) throw valueError("options", `unknown option "${key}"`, key);
  }

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

  const actions = planDescriptors(o);
  const inheritFds = o.inheritFds === undefined ? [] : checkIntegerList("inheritFds", o.inheritFds, 3, FD_MAX);
  for (const fd of inheritFds) {
    if (actions.some((a) => a.target === fd)) throw valueError("inheritFds", `descriptor ${fd} is also in "fds"`, fd);
  }

  let pgroup: number | null = null;
  if (o.pgroup !== undefined) pgroup = o.pgroup === true ? 0 : checkInteger("pgroup", o.pgroup, 1, FD_MAX);
  const setsid = checkBoolean("setsid", o.setsid) ?? false;
  if (setsid && pgroup !== null) throw valueError("setsid", 'cannot be combined with "pgroup"', o.pgroup);

  let killOnExitSignal = 0;
  if (o.killOnParentExit !== undefined && o.killOnParentExit !== false) {
    killOnExitSignal = o.killOnParentExit === true ? 15 : parseSignal("killOnParentExit", o.killOnParentExit);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw typeError("signal", "an AbortSignal", o.signal);
  }

  return {
    command: cmd,
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
    signal: o.signal ?? null,
    timeoutMs: o.timeoutMs === undefined ? null : checkInteger("timeoutMs", o.timeoutMs, 0, 2 ** 31 - 1),
    killSignal: o.killSignal === undefined ? 15 : parseSignal("killSignal", o.killSignal),
    forceKillAfterMs: o.forceKillAfterMs === undefined
      ? null
      : checkInteger("forceKillAfterMs", o.forceKillAfterMs, 0, 2 ** 31 - 1),
  };
}

function parseSignal(option: string, value: unknown): number {
  try {
    return signalNumber(value as string | number);
  } catch {
    throw valueError(option, 'must be a signal name like "SIGTERM" or a number from 1 to 64', value);
  }
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
    const value = o[name];
    if (value !== undefined && extraTargets.includes(target)) {
      throw valueError("fds", `descriptor ${target} is already set by "${name}"`, target);
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
  if (value === "null") return { target, kind: FdKind.devnull };
  if (value === "piped") {
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
    ? '"null", "piped", "piped-input", a descriptor number or { path }'
    : `"inherit", "null", "piped", ${stream === "stderr" ? '"stdout", ' : ""}a descriptor number or { path }`;
  throw valueError(option, `must be ${allowed}`, value);
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
