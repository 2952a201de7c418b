/**
 * Spawn options and their validation. Everything is checked before anything is created;
 * a bad value throws a `TypeError` or `RangeError` naming the option and the value given.
 *
 * @module
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { formatValue, type Signal, signalNumber } from "./signals.ts";

/** Where a standard stream of the child goes. */
export type Stdio = "inherit" | "null" | "piped";

/** Options of `spawnHandle`. */
export interface SpawnOptions {
  /** The child's working directory; default: the host's current directory. */
  cwd?: string | URL;
  /** Variables merged over the host's environment (or over nothing with `clearEnv`); `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Start from an empty environment instead of the host's. */
  clearEnv?: boolean;
  /** The child's stdin: "inherit" (default), "null" or "piped" (gives `handle.stdin`). */
  stdin?: Stdio;
  /** The child's stdout: "inherit" (default), "null" or "piped" (gives `handle.stdout`). */
  stdout?: Stdio;
  /** The child's stderr: "inherit" (default), "null" or "piped" (gives `handle.stderr`). */
  stderr?: Stdio;
  /** The child's `argv[0]`; default: the command as given. */
  argv0?: string;
  /** Signal the child when the host process exits (`true` means "SIGTERM"); default: keep running. */
  killOnParentExit?: boolean | Signal | number;
}

/** A validated spawn: everything the request encoder needs. */
export interface SpawnPlan {
  command: string;
  args: readonly string[];
  argv: string[];
  env: string[];
  searchPath: string | null;
  cwd: string | null;
  stdio: [Stdio, Stdio, Stdio];
  killOnExitSignal: number;
}

/** Thrown for an option of the wrong type. */
function typeError(option: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`Invalid option "${option}": expected ${expected}, got ${formatValue(value)}`);
  (error as TypeError & { code: string }).code = "ERR_INVALID_ARG_TYPE";
  return error;
}

function valueError(option: string, problem: string, value: unknown): TypeError {
  const error = new TypeError(`Invalid option "${option}": ${problem}, got ${formatValue(value)}`);
  (error as TypeError & { code: string }).code = "ERR_INVALID_ARG_VALUE";
  return error;
}

function checkString(option: string, value: unknown, allowEmpty = true): string {
  if (typeof value !== "string") throw typeError(option, "a string", value);
  if (!allowEmpty && value.length === 0) throw valueError(option, "must not be empty", value);
  if (value.includes("\0")) throw valueError(option, "must not contain NUL bytes", value);
  return value;
}

const STDIO_VALUES: readonly string[] = ["inherit", "null", "piped"];
const KNOWN_OPTIONS = new Set(["cwd", "env", "clearEnv", "stdin", "stdout", "stderr", "argv0", "killOnParentExit"]);

/** The default PATH searched when the child's environment has none (glibc's `_CS_PATH`). */
export const DEFAULT_SEARCH_PATH = "/bin:/usr/bin";

/** Validates the arguments of `spawnHandle` and resolves them into a plan. */
export function planSpawn(command: unknown, args: unknown, options: unknown): SpawnPlan {
  checkString("command", command, false);
  const cmd = command as string;
  if (args === undefined) args = [];
  if (!Array.isArray(args)) throw typeError("args", "an array of strings", args);
  const argList = (args as unknown[]).map((arg, i) => checkString(`args[${i}]`, arg));
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") throw typeError("options", "an object", options);
  const o = options as SpawnOptions;
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(key)) throw valueError("options", `unknown option "${key}"`, key);
  }

  let cwd: string | null = null;
  if (o.cwd !== undefined) {
    cwd = o.cwd instanceof URL ? fileURLToPath(o.cwd) : checkString("cwd", o.cwd, false);
    if (cwd.includes("\0")) throw valueError("cwd", "must not contain NUL bytes", cwd);
  }

  if (o.clearEnv !== undefined && typeof o.clearEnv !== "boolean") throw typeError("clearEnv", "a boolean", o.clearEnv);
  const merged: Record<string, string> = o.clearEnv ? {} : hostEnvironment();
  if (o.env !== undefined) {
    if (o.env === null || typeof o.env !== "object" || Array.isArray(o.env)) throw typeError("env", "an object of strings", o.env);
    for (const [key, value] of Object.entries(o.env)) {
      if (key.length === 0 || key.includes("=") || key.includes("\0")) {
        throw valueError("env", "keys must be non-empty and contain neither '=' nor NUL", key);
      }
      if (value === undefined) {
        delete merged[key];
        continue;
      }
      merged[key] = checkString(`env.${key}`, value);
    }
  }
  const env = Object.entries(merged).map(([key, value]) => `${key}=${value}`);

  const stdio = (["stdin", "stdout", "stderr"] as const).map((name) => {
    const value = o[name] ?? "inherit";
    if (typeof value !== "string" || !STDIO_VALUES.includes(value)) {
      throw valueError(name, `must be one of ${STDIO_VALUES.map((v) => `"${v}"`).join(", ")}`, value);
    }
    return value as Stdio;
  }) as [Stdio, Stdio, Stdio];

  const argv0 = o.argv0 === undefined ? cmd : checkString("argv0", o.argv0);

  let killOnExitSignal = 0;
  if (o.killOnParentExit !== undefined && o.killOnParentExit !== false) {
    killOnExitSignal = o.killOnParentExit === true ? 15 : signalNumber(o.killOnParentExit as string | number);
  }

  return {
    command: cmd,
    args: argList,
    argv: [argv0, ...argList],
    env,
    searchPath: cmd.includes("/") ? null : (merged.PATH ?? DEFAULT_SEARCH_PATH),
    cwd,
    stdio,
    killOnExitSignal,
  };
}

function hostEnvironment(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}
