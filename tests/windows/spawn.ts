/**
 * For the tests under Wine (scripts/test_windows.sh): the spawn APIs a Windows backend would sit
 * on, `Deno.Command` under Deno and `Bun.spawn` under Bun, behind one thin interface that passes
 * each runtime's own values through unchanged, and the Windows test program they start.
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isBun, test } from "../harness.ts";

/** Whether this is a Windows runtime (under Wine, for scripts/test_windows.sh). */
export const WINDOWS: boolean = process.platform === "win32";

/** scripts/wine/child.zig, built by scripts/test_windows.sh. */
export const CHILD: string = process.env.PH_WINE_CHILD ??
  fileURLToPath(new URL("../../.tools/wine/bin/child.exe", import.meta.url));

/** Registers a test that runs only under Windows (it is reported as skipped elsewhere). */
export function windowsTest(name: string, fn: () => Promise<void>): void {
  test(name, fn, { ignore: !WINDOWS, timeoutMs: 120_000 });
}

/** How a child ended, as the runtime reports it (Bun's exitCode/signalCode, Deno's code/signal). */
export interface ChildStatus {
  code: number | null;
  signal: string | null;
}

export interface ChildOptions {
  /** Replaces the whole environment (Deno: `clearEnv: true`; Bun: `env`). */
  env?: Record<string, string>;
  cwd?: string;
}

export interface Child {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<ChildStatus>;
  /** Writes to the piped stdin and waits until the runtime has handed the bytes on. */
  write(bytes: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  kill(signal?: "SIGTERM" | "SIGKILL"): void;
}

interface BunFileSink {
  write(bytes: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}

interface BunSubprocess {
  readonly pid: number;
  readonly stdin: BunFileSink;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  kill(signal?: string): void;
}

interface BunSpawn {
  spawn(options: {
    cmd: string[];
    cwd?: string;
    env?: Record<string, string>;
    stdin: "pipe";
    stdout: "pipe";
    stderr: "pipe";
  }): BunSubprocess;
}

/** Starts `command` with all three standard streams piped. */
export function spawnChild(command: string, args: string[], options: ChildOptions = {}): Child {
  return isBun ? spawnBun(command, args, options) : spawnDeno(command, args, options);
}

function spawnBun(command: string, args: string[], options: ChildOptions): Child {
  const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
  const child = bun.spawn({
    cmd: [command, ...args],
    cwd: options.cwd,
    env: options.env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    status: child.exited.then(() => ({ code: child.exitCode, signal: child.signalCode })),
    async write(bytes) {
      await child.stdin.write(bytes);
      await child.stdin.flush();
    },
    async closeStdin() {
      await child.stdin.end();
    },
    kill: (signal) => child.kill(signal),
  };
}

function spawnDeno(command: string, args: string[], options: ChildOptions): Child {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.env !== undefined,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    status: child.status.then((status) => ({ code: status.code, signal: status.signal })),
    write: (bytes) => writer.write(bytes),
    closeStdin: () => writer.close(),
    kill: (signal) => child.kill(signal),
  };
}

/** Runs `command` with stdin closed at once, and collects everything. */
export async function runChild(
  command: string,
  args: string[],
  options: ChildOptions = {},
): Promise<ChildStatus & { stdout: Uint8Array; stderr: Uint8Array }> {
  const child = spawnChild(command, args, options);
  await child.closeStdin();
  const [stdout, stderr, status] = await Promise.all([bytesOf(child.stdout), bytesOf(child.stderr), child.status]);
  return { ...status, stdout, stderr };
}

/** Reads a whole stream. */
export async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Whether process `pid` is still running, asked of Windows by the test program. */
export async function isRunning(pid: number): Promise<boolean> {
  const { code } = await runChild(CHILD, ["alive", String(pid)]);
  if (code !== 0 && code !== 1) throw new Error(`child.exe alive ${pid} exited with ${code}`);
  return code === 0;
}
