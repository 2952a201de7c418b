/**
 * The demo: a host that behaves like Unicorn's master, counting SIGCHLD and reaping with
 * waitpid(-1, WNOHANG) in a loop (through libc FFI), spawns one child with the runtime's own
 * API and one with spawnHandle, and prints side by side what each spawner got back.
 *
 *   deno run -A demo/hostile_host.ts [--json] [--only-ours]
 *   bun demo/hostile_host.ts [--json] [--only-ours]
 */
import process from "node:process";
import { ECHILD, libc, WNOHANG } from "../ffi/libc.ts";
import { isBun } from "../ffi/mod.ts";
import { spawnHandle } from "../mod.ts";

const json = process.argv.includes("--json");
const onlyOurs = process.argv.includes("--only-ours");
const EXIT_CODE = 7;
const SCRIPT = `sleep 0.2; exit ${EXIT_CODE}`;
const RUNTIME_TIMEOUT_MS = 3000;

const c = await libc();
let sigchld = 0;
process.on("SIGCHLD", () => sigchld++);
const stolen: { pid: number; code: number }[] = [];
/** Unicorn's master loop: reap whatever exited, whoever's it was. */
function reapAll(): void {
  for (let i = 0; i < 64; i++) {
    const [pid, status] = c.waitpid(-1, WNOHANG);
    if (pid > 0) stolen.push({ pid, code: (status >> 8) & 0xff });
    else break;
  }
}
/** The master's busy period: it reaps in its own loop while the children run. */
function masterLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) reapAll();
}
// And between busy periods, on a timer (what a SIGCHLD handler would trigger).
const reaper = setInterval(reapAll, 1);

interface Outcome {
  spawner: string;
  pid: number;
  got: string;
  correct: boolean;
  sigchld: number;
  stolenByHost: boolean;
  /** What waitpid(-1, WNOHANG) answered right after the spawn, while the child ran. */
  hostWaitpidWhileRunning: string;
}

function runtimeSpawn(): Promise<{ pid: number; result: Promise<string> }> {
  if (isBun) {
    const bun =
      (globalThis as unknown as { Bun: { spawn(cmd: string[]): { pid: number; exited: Promise<number> } } }).Bun;
    const proc = bun.spawn(["sh", "-c", SCRIPT]);
    return Promise.resolve({ pid: proc.pid, result: proc.exited.then((code) => `exit code ${code}`) });
  }
  const child = new Deno.Command("sh", { args: ["-c", SCRIPT] }).spawn();
  return Promise.resolve({
    pid: child.pid,
    result: child.status.then((s) => (s.signal ? `signal ${s.signal}` : `exit code ${s.code}`)),
  });
}

async function phase(
  spawner: string,
  start: () => Promise<{ pid: number; result: Promise<string> }>,
): Promise<Outcome> {
  const sigchldBefore = sigchld;
  const { pid, result } = await start();
  const [rc, , errno] = c.waitpid(-1, WNOHANG);
  const whileRunning = rc === 0
    ? "0: a child is there"
    : rc > 0
    ? `reaped pid ${rc}`
    : errno === ECHILD
    ? "ECHILD: no children"
    : `errno ${errno}`;
  masterLoop(400);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`nothing after ${RUNTIME_TIMEOUT_MS} ms`), RUNTIME_TIMEOUT_MS);
  });
  const got = await Promise.race([result.catch((e) => `error: ${e?.message ?? e}`), timeout]);
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 50));
  return {
    spawner,
    pid,
    got,
    correct: got === `exit code ${EXIT_CODE}`,
    sigchld: sigchld - sigchldBefore,
    stolenByHost: stolen.some((s) => s.pid === pid),
    hostWaitpidWhileRunning: whileRunning,
  };
}

const outcomes: Outcome[] = [];
if (!onlyOurs) outcomes.push(await phase(isBun ? "Bun.spawn" : "Deno.Command", runtimeSpawn));
outcomes.push(
  await phase("spawnHandle", () => {
    const child = spawnHandle("sh", ["-c", SCRIPT]);
    return Promise.resolve({
      pid: child.pid,
      result: child.wait().then((s) => (s.signal ? `signal ${s.signal}` : `exit code ${s.code}`)),
    });
  }),
);
clearInterval(reaper);

if (json) {
  console.log(JSON.stringify({ runtime: isBun ? "bun" : "deno", outcomes, stolen }));
} else {
  console.log(`A host with a SIGCHLD handler and a waitpid(-1, WNOHANG) loop; each child runs "${SCRIPT}".\n`);
  const rows: [string, (o: Outcome) => string][] = [
    ["what the spawner got", (o) => o.got],
    ["host SIGCHLD during it", (o) => String(o.sigchld)],
    ["host waitpid(-1) reaped it", (o) => (o.stolenByHost ? `yes (status stolen)` : "no")],
    ["host waitpid(-1) while it ran", (o) => o.hostWaitpidWhileRunning],
    ["spawner got the right status", (o) => (o.correct ? "yes" : "NO")],
  ];
  const width = 32;
  const column = 44;
  const fit = (text: string) => (text.length > column - 2 ? text.slice(0, column - 3) + "…" : text).padEnd(column);
  console.log("".padEnd(width) + outcomes.map((o) => fit(`${o.spawner} (pid ${o.pid})`)).join(""));
  for (const [label, cell] of rows) console.log(label.padEnd(width) + outcomes.map((o) => fit(cell(o))).join(""));
}
process.exit(0);
