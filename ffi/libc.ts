/**
 * A few libc functions for the demo and the tests, bound for the current runtime: what a
 * hostile host calls (`waitpid(-1)`) and what the tests observe with (`poll`, `fcntl`).
 * Not part of the public API.
 *
 * @module
 */
import { isBun } from "./mod.ts";

/** libc calls that report errno along with their result. */
export interface Libc {
  /** waitpid(pid, &status, options): [rc, status, errno]. */
  waitpid(pid: number, options: number): [number, number, number];
  /** poll on one fd: [rc, revents, errno]. */
  poll(fd: number, events: number, timeoutMs: number): [number, number, number];
  /** fcntl(fd, cmd, arg): [rc, errno]. */
  fcntl(fd: number, cmd: number, arg: number): [number, number];
  /** kill(pid, sig): [rc, errno]. */
  kill(pid: number, sig: number): [number, number];
  /** close(fd): [rc, errno]. */
  close(fd: number): [number, number];
  /** dup(fd): [rc, errno]. */
  dup(fd: number): [number, number];
  getpid(): number;
  /** prctl(option, arg2, 0, 0, 0): [rc, errno]. */
  prctl(option: number, arg2: number): [number, number];
  /** prlimit(0, resource, &{cur, max}, NULL) on the calling process: [rc, errno]. */
  setrlimit(resource: number, cur: bigint, max: bigint): [number, number];
  /** getrlimit(resource): [rc, cur, max, errno]. */
  getrlimit(resource: number): [number, bigint, bigint, number];
  /** setpriority(PRIO_PROCESS, 0, nice) for the calling thread: [rc, errno]. */
  setNice(nice: number): [number, number];
  /** sched_setaffinity(0, ...) for the calling thread to exactly `cpus`: [rc, errno]. */
  setAffinity(cpus: number[]): [number, number];
  /** sched_getaffinity(0, ...) of the calling thread: [rc, cpus, errno]. */
  getAffinity(): [number, number[], number];
  /** setgroups, then setresgid and setresuid to `gid` and `uid` (glibc applies each to every thread): [rc, errno]. */
  setIds(uid: number, gid: number, groups: number[]): [number, number];
}

/** RLIMIT_NOFILE. */
export const RLIMIT_NOFILE = 7;

/** WNOHANG for waitpid. */
export const WNOHANG = 1;
/** ECHILD. */
export const ECHILD = 10;
/** POLLIN. */
export const POLLIN = 1;

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

const SYMBOLS = {
  waitpid: [["i32", "buffer", "i32"], "i32"],
  poll: [["buffer", "u64", "i32"], "i32"],
  fcntl: [["i32", "i32", "i32"], "i32"],
  kill: [["i32", "i32"], "i32"],
  close: [["i32"], "i32"],
  dup: [["i32"], "i32"],
  getpid: [[], "i32"],
  prctl: [["i32", "i64", "i64", "i64", "i64"], "i32"],
  prlimit64: [["i32", "i32", "buffer", "buffer"], "i32"],
  setpriority: [["i32", "i32", "i32"], "i32"],
  sched_setaffinity: [["i32", "u64", "buffer"], "i32"],
  sched_getaffinity: [["i32", "u64", "buffer"], "i32"],
  setgroups: [["u64", "buffer"], "i32"],
  setresgid: [["u32", "u32", "u32"], "i32"],
  setresuid: [["u32", "u32", "u32"], "i32"],
  __errno_location: [[], "pointer"],
} as const;

async function open(): Promise<{ s: Record<string, Fn>; errno: () => number }> {
  if (isBun) {
    const ffi = await import(["bun", "ffi"].join(":"));
    const table: Record<string, { args: string[]; returns: string }> = {};
    for (const [name, [args, result]] of Object.entries(SYMBOLS)) {
      table[name] = {
        args: args.map((t) => t === "buffer" ? "ptr" : t),
        returns: result === "pointer" ? "ptr" : result,
      };
    }
    const s = ffi.dlopen("libc.so.6", table).symbols as Record<string, Fn>;
    return { s, errno: () => ffi.read.i32(s.__errno_location(), 0) };
  }
  const table: Record<string, Deno.ForeignFunction> = {};
  for (const [name, [args, result]] of Object.entries(SYMBOLS)) {
    table[name] = { parameters: [...args] as Deno.NativeType[], result: result as Deno.NativeResultType };
  }
  const s = Deno.dlopen("libc.so.6", table).symbols as unknown as Record<string, Fn>;
  return { s, errno: () => new Deno.UnsafePointerView(s.__errno_location()).getInt32() };
}

let cached: Libc | null = null;

/** The libc binding. */
export async function libc(): Promise<Libc> {
  if (cached) return cached;
  const { s, errno } = await open();
  const pollfd = new Uint8Array(8);
  const pollView = new DataView(pollfd.buffer);
  const status = new Int32Array(1);
  // cpu_set_t: 1024 CPUs.
  const cpuMask = new BigUint64Array(16);
  const err = (rc: number) => (rc < 0 ? errno() : 0);
  // A size_t argument: Deno's FFI takes a bigint for u64, Bun's a number.
  const size = (n: number) => (isBun ? n : BigInt(n));
  cached = {
    waitpid(pid, options) {
      status[0] = 0;
      const rc = s.waitpid(pid, status, options);
      return [rc, status[0], err(rc)];
    },
    poll(fd, events, timeoutMs) {
      pollView.setInt32(0, fd, true);
      pollView.setInt16(4, events, true);
      pollView.setInt16(6, 0, true);
      const rc = s.poll(pollfd, size(1), timeoutMs);
      return [rc, pollView.getInt16(6, true), err(rc)];
    },
    fcntl(fd, cmd, arg) {
      const rc = s.fcntl(fd, cmd, arg);
      return [rc, err(rc)];
    },
    kill(pid, sig) {
      const rc = s.kill(pid, sig);
      return [rc, err(rc)];
    },
    close(fd) {
      const rc = s.close(fd);
      return [rc, err(rc)];
    },
    dup(fd) {
      const rc = s.dup(fd);
      return [rc, err(rc)];
    },
    getpid: () => s.getpid(),
    prctl(option, arg2) {
      const rc = s.prctl(option, arg2, 0, 0, 0);
      return [rc, err(rc)];
    },
    setrlimit(resource, cur, max) {
      const limit = new BigUint64Array([cur, max]);
      const rc = s.prlimit64(0, resource, limit, null);
      return [rc, err(rc)];
    },
    getrlimit(resource) {
      const limit = new BigUint64Array(2);
      const rc = s.prlimit64(0, resource, null, limit);
      return [rc, limit[0], limit[1], err(rc)];
    },
    setNice(nice) {
      const rc = s.setpriority(0, 0, nice);
      return [rc, err(rc)];
    },
    setAffinity(cpus) {
      cpuMask.fill(0n);
      for (const cpu of cpus) cpuMask[cpu >> 6] |= 1n << BigInt(cpu & 63);
      const rc = s.sched_setaffinity(0, size(cpuMask.byteLength), cpuMask);
      return [rc, err(rc)];
    },
    setIds(uid, gid, groups) {
      const list = new Uint32Array(groups);
      let rc = s.setgroups(size(list.length), list);
      if (rc === 0) rc = s.setresgid(gid, gid, gid);
      if (rc === 0) rc = s.setresuid(uid, uid, uid);
      return [rc, err(rc)];
    },
    getAffinity() {
      cpuMask.fill(0n);
      const rc = s.sched_getaffinity(0, size(cpuMask.byteLength), cpuMask);
      const cpus: number[] = [];
      for (let cpu = 0; cpu < cpuMask.length * 64; cpu++) {
        if (cpuMask[cpu >> 6] & (1n << BigInt(cpu & 63))) cpus.push(cpu);
      }
      return [rc, cpus, err(rc)];
    },
  };
  return cached;
}
