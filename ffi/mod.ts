/**
 * Loads the native library once per JavaScript realm, on first use, and returns the runtime's
 * binding. The only module that asks which runtime it is on. Synchronous, with no top-level
 * await in its graph: importing it loads nothing, reads no environment and needs no Deno
 * permission, so Bun can `require()` the package and a Worker that imports it gets its
 * messages from the start.
 *
 * @module
 */
import process from "node:process";
import { ABI_VERSION, Backend } from "./abi.ts";
import { openBun } from "./bun.ts";
import { openDeno } from "./deno.ts";
import {
  BACKEND_ENV,
  LIBRARY_PATH_ENV,
  LibraryError,
  requestedBackend,
  resolveHelperPath,
  resolveLibraryPath,
} from "./loader.ts";
import type { Native } from "./native.ts";
import { isPermissionError, permissionError } from "./permissions.ts";
import { runtimeBackendSelected } from "./runtime.ts";

export type { Native, PipeReader, PipeWriter, WakeSource } from "./native.ts";
export { pipeGrower } from "./native.ts";
export { type OpenedPty, openPty } from "./tty.ts";
export { LibraryError } from "./loader.ts";
export type { LibraryErrorCode } from "./loader.ts";

let loaded: Native | null = null;
let loadedHelperPath = "";

/** ENOSYS in the ABI's (Linux's) numbering: `ph_init` refuses a backend the build lacks (the reaper on macOS). */
const ENOSYS = 38;

/** Whether this is Bun (else Deno). */
export const isBun: boolean = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/**
 * The binding, loading the library on first use. A failure throws a `LibraryError` and is not
 * remembered: the next call tries again (after a permission was granted, say).
 */
export function loadNative(): Native {
  if (loaded) return loaded;
  try {
    // Under the runtime backend the library spawns nothing; it is loaded only for the calls
    // that need it (monotonicNs, reaperInfo), where it is built for this machine.
    const backend = runtimeBackendSelected() ? "auto" : requestedBackend();
    const native = open(resolveLibraryPath());
    // The helper is needed when forced, and for the fallback when the reaper cannot be made;
    // never by pdfork (FreeBSD's default), so it is not written to the cache there.
    const pdfork = backend === "pdfork" || (backend === "auto" && process.platform === "freebsd");
    const helper = backend === "reaper" || pdfork
      ? null
      : backend === "helper"
      ? resolveHelperPath()
      : fallbackHelper();
    if (backend === "helper" && helper === null) {
      throw new LibraryError(
        "ERR_BACKEND",
        `private_spawn: ${BACKEND_ENV}=helper, but no helper executable is shipped for this machine`,
      );
    }
    const path = new TextEncoder().encode(helper ?? "");
    const rc = native.init(Backend[backend], path, path.length);
    if (rc < 0) {
      throw new LibraryError(
        "ERR_BACKEND",
        `private_spawn: the library refused backend "${backend}" (errno ${-rc}): ${
          -rc === ENOSYS
            ? `this build has no ${backend} backend (the reaper is Linux's own build's, pdfork FreeBSD's)`
            : "another realm chose differently"
        }`,
      );
    }
    loaded = native;
    loadedHelperPath = helper ?? "";
  } catch (error) {
    if (isPermissionError(error)) throw permissionError(error);
    throw error;
  }
  return loaded;
}

/** The helper executable the loaded library starts when it needs one; "" if none. */
export function helperPath(): string {
  return loadedHelperPath;
}

/**
 * The helper for the fallback: where it cannot be had (a permission, a cache that cannot be
 * written), the reaper still runs, without a fallback.
 */
function fallbackHelper(): string | null {
  try {
    return resolveHelperPath();
  } catch {
    return null;
  }
}

function open(path: string): Native {
  let native: Native;
  try {
    native = isBun ? openBun(path) : openDeno(path);
  } catch (error) {
    if (isPermissionError(error)) throw error;
    const reason = (error as Error).message;
    throw new LibraryError(
      "ERR_DLOPEN",
      `private_spawn: cannot load ${path}: ${reason}; set ${LIBRARY_PATH_ENV} to a library built for this machine with "zig build", or unset it`,
      { cause: error },
    );
  }
  const version = native.abiVersion();
  if (version !== ABI_VERSION) {
    throw new LibraryError(
      "ERR_ABI_MISMATCH",
      `private_spawn: the library at ${path} has ABI version ${version}, this module needs ${ABI_VERSION}; rebuild it with "zig build" or unset ${LIBRARY_PATH_ENV}`,
    );
  }
  return native;
}
