/**
 * The error of finding, preparing or loading the native library.
 *
 * @module
 */

/** The codes a `LibraryError` can carry. */
export type LibraryErrorCode =
  | "ERR_PLATFORM_UNSUPPORTED"
  | "ERR_PERMISSION"
  | "ERR_LIBRARY_NOT_FOUND"
  | "ERR_LIBRARY_CACHE"
  | "ERR_DLOPEN"
  | "ERR_ABI_MISMATCH"
  | "ERR_BACKEND";

/**
 * Thrown by the first call that needs the native library (the first spawn, `reaperInfo()`,
 * `monotonicNs()`) when no usable library can be found, prepared or loaded. Importing the
 * module never throws it; a later call tries again.
 *
 * `code` is one of:
 * - `"ERR_PLATFORM_UNSUPPORTED"`: not Linux, or a Linux architecture without a prebuilt library;
 * - `"ERR_PERMISSION"`: Deno did not grant a permission the library needs (the message names the flags);
 * - `"ERR_LIBRARY_NOT_FOUND"`: `PRIVATE_SPAWN_LIB` names a file that does not exist;
 * - `"ERR_LIBRARY_CACHE"`: the prebuilt library cannot be written to or verified in its cache directory;
 * - `"ERR_DLOPEN"`: the runtime could not load the library;
 * - `"ERR_ABI_MISMATCH"`: the library was built for another version of this module;
 * - `"ERR_BACKEND"`: `PRIVATE_SPAWN_BACKEND` names no backend, or the library refused the choice.
 *
 * @example
 * ```ts
 * import { LibraryError, spawnHandle } from "./mod.ts";
 * try {
 *   await spawnHandle("true").wait();
 * } catch (error) {
 *   if (error instanceof LibraryError) console.error(error.code, error.message);
 *   else throw error;
 * }
 * ```
 */
export class LibraryError extends Error {
  /** What went wrong, as a stable string (see the class documentation). */
  readonly code: LibraryErrorCode;
  /** The error `code`, with a `message` that says what was tried and how to fix it. */
  constructor(code: LibraryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LibraryError";
    this.code = code;
  }
}
