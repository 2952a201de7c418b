/**
 * Loads the native library once per JavaScript realm and returns the runtime's binding.
 * The only module that asks which runtime it is on.
 *
 * @module
 */
import { ABI_VERSION } from "./abi.ts";
import { resolveLibraryPath } from "./loader.ts";
import type { Native } from "./native.ts";

export type { Native, WakeSource } from "./native.ts";

let loaded: Native | null = null;

/** Whether this is Bun (else Deno). */
export const isBun: boolean = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The binding, loading the library on first use. */
export async function loadNative(): Promise<Native> {
  if (loaded) return loaded;
  const path = resolveLibraryPath();
  const native = isBun
    ? await (await import("./bun.ts")).openBun(path)
    : (await import("./deno.ts")).openDeno(path);
  const version = native.abiVersion();
  if (version !== ABI_VERSION) {
    throw new Error(
      `private_spawn: the library at ${path} has ABI version ${version}, this module needs ${ABI_VERSION}; rebuild it with "zig build".`,
    );
  }
  loaded = native;
  return native;
}
