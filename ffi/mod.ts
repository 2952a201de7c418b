/**
 * Loads the native library once per JavaScript realm and returns the runtime's binding.
 * The only module that asks which runtime it is on.
 *
 * @module
 */
import { ABI_VERSION } from "./abi.ts";
import { LIBRARY_PATH_ENV, LibraryError, resolveLibraryPath } from "./loader.ts";
import type { Native } from "./native.ts";

export type { Native, WakeSource } from "./native.ts";
export { pipeGrower } from "./native.ts";
export { LibraryError } from "./loader.ts";

let loaded: Native | null = null;

/** Whether this is Bun (else Deno). */
export const isBun: boolean = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The binding, loading the library on first use. */
export async function loadNative(): Promise<Native> {
  if (loaded) return loaded;
  const path = await resolveLibraryPath();
  let native: Native;
  try {
    native = isBun ? (await import("./bun.ts")).openBun(path) : (await import("./deno.ts")).openDeno(path);
  } catch (error) {
    const fix = isBun
      ? `set ${LIBRARY_PATH_ENV} to a library built for this machine with "zig build"`
      : `run Deno with --allow-ffi (and --allow-read, --allow-write, --allow-env for the library cache), or set ${LIBRARY_PATH_ENV}`;
    throw new LibraryError("ERR_DLOPEN", `private_spawn: cannot load ${path}: ${(error as Error).message}; ${fix}`, {
      cause: error,
    });
  }
  const version = native.abiVersion();
  if (version !== ABI_VERSION) {
    throw new LibraryError(
      "ERR_ABI_MISMATCH",
      `private_spawn: the library at ${path} has ABI version ${version}, this module needs ${ABI_VERSION}; rebuild it with "zig build" or unset ${LIBRARY_PATH_ENV}`,
    );
  }
  loaded = native;
  return native;
}
