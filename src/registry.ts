/**
 * One registry per JavaScript realm (main thread or Worker): its listener in the library,
 * the wake-up source on that listener's pipe, and the handles whose exits it awaits.
 *
 * The event loop is kept alive exactly while some running child is ref'd or awaited:
 * the wake source is ref'd then and unref'd otherwise.
 *
 * @module
 */
import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import { ExitRecord } from "../ffi/abi.ts";
import { loadNative, type Native, type WakeSource } from "../ffi/mod.ts";
import { errnoName, errnoText } from "./errors.ts";

/** Key of the method a handle receives its exit record by (not part of the public API). */
export const SETTLE: unique symbol = Symbol("private_spawn.settle");
/** Key of the slot generation a handle was spawned with. */
export const GENERATION: unique symbol = Symbol("private_spawn.generation");

/** What the registry needs from a handle. */
export interface Settleable {
  /** Called once with the exit record at `offset` of `view`. */
  [SETTLE](view: DataView, offset: number): void;
  /** The slot generation, matched against exit records. */
  readonly [GENERATION]: number;
}

/**
 * A spawn queued for the reaper (`ph_spawn_start`), waiting for its answer. The library spawns
 * from its own copy of the request and writes the answer into this one, which is held here.
 */
export interface PendingSpawn {
  /** The request, in memory of its own (an ArrayBuffer of its own: it never moves). */
  readonly request: Uint8Array;
  /** The slot generation of the child to be, matched against exit records. */
  readonly generation: number;
  /** Called once with `ph_spawn_finish`'s result: 0, or -errno. */
  complete(rc: number): void;
}

/** `ph_spawn_finish` while the reaper has not answered. */
const EAGAIN = 11;

/** Records drained per library call. */
const DRAIN_BATCH = 256;
// Measured and chosen in docs/decisions/0007-reaper-liveness.md.
/** While exits are awaited, how often the reaper's liveness is checked. */
const REAPER_CHECK_MS = 500;

/** The binding, loading the library on first use (throws `LibraryError` if it cannot). */
export function getNative(): Native {
  return loadNative();
}

/** The realm's exit listener could not be opened (`spawnPlanned` reports it as a `SpawnError`). */
export class ListenerError extends Error {
  /** The errno's name, like "EMFILE". */
  readonly code: string;
  /** The errno's number. */
  readonly errno: number;
  /** An error for `errno` from `ph_listener_open`. */
  constructor(errno: number) {
    super(`private_spawn: cannot open an exit listener: ${errnoName(errno)}: ${errnoText(errno)}`);
    this.name = "ListenerError";
    this.code = errnoName(errno);
    this.errno = errno;
  }
}

/** The realm's registry. */
export class Registry {
  readonly native: Native;
  readonly listener: number;
  readonly #handles = new Map<number, Settleable>();
  readonly #pending = new Map<number, PendingSpawn>();
  readonly #out = new Uint8Array(ExitRecord.size * DRAIN_BATCH);
  readonly #view = new DataView(this.#out.buffer);
  readonly #wake: WakeSource;
  #holds = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  #teardown: ReturnType<typeof setTimeout> | null = null;

  constructor(native: Native) {
    this.native = native;
    // Non-blocking on both runtimes: Deno's sockets and Bun's Bun.file().stream() read it so.
    const listener = native.listenerOpen(1);
    if (listener < 0) throw new ListenerError(-listener);
    this.listener = listener;
    this.#wake = native.wakeSource(native.listenerFd(listener), () => this.drain());
  }

  /** Starts tracking `handle`, owner of `slot`. */
  add(slot: number, handle: Settleable): void {
    this.#handles.set(slot, handle);
  }

  /**
   * Waits for the answer to a queued spawn of the child to be in `slot`: `spawn.complete` is
   * called from a drain. The event loop is kept alive meanwhile.
   */
  addPending(slot: number, spawn: PendingSpawn): void {
    this.#pending.set(slot, spawn);
    this.hold();
  }

  /**
   * Delivers every published exit of this realm's children, then the answers to its queued
   * spawns (after the library has cleared the listener's wake-up, so a later answer wakes it
   * again).
   */
  drain(): void {
    this.#drainExits();
    if (this.#pending.size > 0) this.#finishSpawns();
  }

  #drainExits(): void {
    for (;;) {
      const count = this.native.drain(this.listener, this.#out, DRAIN_BATCH);
      if (count <= 0) return;
      for (let i = 0; i < count; i++) {
        const offset = i * ExitRecord.size;
        const slot = this.#view.getUint32(offset + ExitRecord.slot, true);
        const generation = this.#view.getUint32(offset + ExitRecord.generation, true);
        // A child that exited before its spawn's answer was collected: the answer came first.
        const pending = this.#pending.get(slot);
        if (pending !== undefined && pending.generation === generation) this.#finishSpawn(slot, pending);
        const handle = this.#handles.get(slot);
        if (handle === undefined || handle[GENERATION] !== generation) {
          // Nobody will own a lost child's pidfd: close it.
          const pidfd = this.#view.getInt32(offset + ExitRecord.pidfd, true);
          if (pidfd >= 0) this.native.close(pidfd);
          continue;
        }
        this.#handles.delete(slot);
        handle[SETTLE](this.#view, offset);
      }
      if (count < DRAIN_BATCH) return;
    }
  }

  #finishSpawns(): void {
    for (const [slot, pending] of this.#pending) this.#finishSpawn(slot, pending);
  }

  /** Collects the answer to a queued spawn, if the reaper has given it. */
  #finishSpawn(slot: number, pending: PendingSpawn): void {
    const rc = this.native.spawnFinish(pending.request);
    if (rc === -EAGAIN) return;
    this.#pending.delete(slot);
    try {
      pending.complete(rc);
    } finally {
      this.release();
    }
  }

  /** One more reason to keep the event loop alive. */
  hold(): void {
    if (this.#holds++ > 0) return;
    if (this.#teardown !== null) {
      // Released and held again within a tick (a spawn loop): keep the reader and timer.
      clearTimeout(this.#teardown);
      this.#teardown = null;
      return;
    }
    this.#wake.ref();
    // A wake-up byte may have been consumed by a reader that was since cancelled.
    this.drain();
    this.#timer = setInterval(() => this.#checkReaper(), REAPER_CHECK_MS);
    this.#timer.unref?.();
  }

  /** One reason fewer; the watcher is let go one tick later unless something holds again. */
  release(): void {
    if (--this.#holds > 0) return;
    const teardown = setTimeout(() => {
      this.#teardown = null;
      if (this.#holds > 0) return;
      this.#wake.unref();
      if (this.#timer !== null) clearInterval(this.#timer);
      this.#timer = null;
    }, 0);
    teardown.unref?.();
    this.#teardown = teardown;
  }

  #checkReaper(): void {
    if (this.native.checkReaper() === 1) this.drain();
  }
}

let registry: Registry | null = null;

/** The realm's registry, created on first use. */
export function getRegistry(): Registry {
  registry ??= new Registry(getNative());
  return registry;
}
