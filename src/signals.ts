/**
 * Linux signal names and numbers, parsed the way Ruby's `Process.kill` accepts them:
 * "SIGTERM", "TERM" or 15.
 *
 * @module
 */

/** Standard signal numbers on Linux (x86_64 and aarch64 share them). */
const STANDARD: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};
const ALIASES: Readonly<Record<string, number>> = { SIGIOT: 6, SIGPOLL: 29, SIGCLD: 17 };
/** The two real-time signals glibc keeps for itself, by the names `signalName` gives them. */
const RESERVED: Readonly<Record<string, number>> = { SIG32: 32, SIG33: 33 };

/** The lowest real-time signal user code may use (glibc reserves 32 and 33). */
export const SIGRTMIN = 34;
/** The highest signal number. */
export const SIGRTMAX = 64;

/** The standard signal names of Linux, with the aliases SIGIOT, SIGPOLL and SIGCLD. */
export type StandardSignalName =
  | "SIGHUP"
  | "SIGINT"
  | "SIGQUIT"
  | "SIGILL"
  | "SIGTRAP"
  | "SIGABRT"
  | "SIGBUS"
  | "SIGFPE"
  | "SIGKILL"
  | "SIGUSR1"
  | "SIGSEGV"
  | "SIGUSR2"
  | "SIGPIPE"
  | "SIGALRM"
  | "SIGTERM"
  | "SIGSTKFLT"
  | "SIGCHLD"
  | "SIGCONT"
  | "SIGSTOP"
  | "SIGTSTP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGURG"
  | "SIGXCPU"
  | "SIGXFSZ"
  | "SIGVTALRM"
  | "SIGPROF"
  | "SIGWINCH"
  | "SIGIO"
  | "SIGPWR"
  | "SIGSYS"
  | "SIGIOT"
  | "SIGPOLL"
  | "SIGCLD";

/**
 * A signal's full name: a standard one, a real-time one ("SIGRTMIN", "SIGRTMIN+3",
 * "SIGRTMAX-1", "SIGRTMAX"), or "SIG32"/"SIG33" (glibc's reserved two). Statuses report these.
 */
export type SignalName =
  | StandardSignalName
  | "SIGRTMIN"
  | "SIGRTMAX"
  | `SIGRTMIN+${number}`
  | `SIGRTMAX-${number}`
  | "SIG32"
  | "SIG33";

/** A signal's name without "SIG": "TERM", "RTMIN+3". */
export type SignalShortName = SignalName extends `SIG${infer Short}` ? Short : never;

/**
 * A signal by name: the full name ("SIGTERM", "SIGRTMIN+3") or the short one ("TERM",
 * "RTMIN+3"), in upper or lower case ("term"). Numbers are a separate `number` wherever a
 * signal is taken.
 *
 * @example
 * ```ts
 * import { type Signal, signalNumber } from "@private-spawn/private-spawn";
 * const stop: Signal = "TERM";
 * console.log(signalNumber(stop)); // 15
 * ```
 */
export type Signal = SignalName | SignalShortName | Lowercase<SignalName | SignalShortName>;

const NAMES: string[] = [];
for (const [name, number] of Object.entries(STANDARD)) NAMES[number] = name;

/** The name of signal `number` ("SIG32" and "SIG33" for glibc's reserved two). */
export function signalName(number: number): SignalName {
  if (NAMES[number]) return NAMES[number] as SignalName;
  if (number === SIGRTMAX) return "SIGRTMAX";
  if (number >= SIGRTMIN && number < SIGRTMAX) return `SIGRTMIN+${number - SIGRTMIN}`;
  return `SIG${number}` as SignalName;
}

/** Thrown for a signal name or number that Linux does not have. */
export class UnknownSignalError extends TypeError {
  /** Always "ERR_UNKNOWN_SIGNAL". */
  readonly code = "ERR_UNKNOWN_SIGNAL";
  /** The value that was given. */
  readonly signal: unknown;
  /** The error for the unknown `signal`. */
  constructor(signal: unknown) {
    super(
      `Unknown signal: ${
        formatValue(signal)
      } (expected a name like "SIGTERM" or "TERM", or a number from 0 to ${SIGRTMAX})`,
    );
    this.name = "UnknownSignalError";
    this.signal = signal;
  }
}

/** Parses "SIGTERM", "TERM", "SIGRTMIN+2", or a number 0..64 (0 only probes). */
export function signalNumber(signal: string | number): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal >= 0 && signal <= SIGRTMAX) return signal;
    throw new UnknownSignalError(signal);
  }
  if (typeof signal !== "string") throw new UnknownSignalError(signal);
  const upper = signal.toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const known = STANDARD[name] ?? ALIASES[name] ?? RESERVED[name];
  if (known !== undefined) return known;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === "MIN" ? SIGRTMIN : SIGRTMAX;
    const offset = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === "-" ? -1 : 1);
    const number = base + offset;
    if (number >= SIGRTMIN && number <= SIGRTMAX) return number;
  }
  throw new UnknownSignalError(signal);
}

/** A short, safe rendering of any value for error messages. */
export function formatValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? value.slice(0, 80) + "…" : value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  return Object.prototype.toString.call(value);
}
