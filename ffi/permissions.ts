/**
 * Deno's permissions, as the library meets them: a `NotCapable` error from Deno becomes a
 * `LibraryError` ("ERR_PERMISSION") that names every flag the library still lacks and why.
 * Reaches Deno through `globalThis`, so the module type-checks and loads on Bun too (where
 * nothing is ever denied).
 *
 * @module
 */
import { LibraryError } from "./library_error.ts";

interface PermissionDescriptor {
  name: "env" | "read" | "write" | "ffi" | "sys";
  kind?: string;
}
interface DenoPermissions {
  querySync(descriptor: PermissionDescriptor): { state: string };
}

function permissions(): DenoPermissions | null {
  const deno = (globalThis as { Deno?: { permissions?: DenoPermissions } }).Deno;
  return deno?.permissions ?? null;
}

/** Whether the runtime grants `descriptor` without asking (always, outside Deno). */
export function granted(descriptor: PermissionDescriptor): boolean {
  const deno = permissions();
  if (deno === null) return true;
  try {
    return deno.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

/** Whether `error` is Deno refusing a permission. */
export function isPermissionError(error: unknown): error is Error {
  return error instanceof Error && error.name === "NotCapable";
}

/** The flags the library needs, in the order they are met, and why. */
const NEEDED: readonly { name: PermissionDescriptor["name"]; why: string }[] = [
  {
    name: "env",
    why:
      "to read PRIVATE_SPAWN_LIB, PRIVATE_SPAWN_CACHE, XDG_CACHE_HOME and HOME, and to give children the environment and PATH",
  },
  { name: "read", why: "to find the library, check its SHA-256 and who owns its cache directory" },
  { name: "ffi", why: "to load the library with Deno.dlopen" },
];
const WRITE_WHY = "to write the prebuilt library into its cache directory and check that we own it";

/** The `LibraryError` for Deno's `NotCapable` `error`, naming every flag still missing. */
export function permissionError(error: Error): LibraryError {
  const named = /--allow-([a-z]+)/.exec(error.message)?.[1];
  const missing = NEEDED.filter((p) => p.name === named || !granted({ name: p.name }));
  if (named === "write") missing.push({ name: "write", why: WRITE_WHY });
  if (missing.length === 0 && named !== undefined) missing.push({ name: named as "env", why: "" });
  const flags = missing.map((p) => `--allow-${p.name}${p.why ? ` (${p.why})` : ""}`).join(", ");
  const write = named !== "write" && !granted({ name: "write" })
    ? `; and --allow-write (${WRITE_WHY}) unless PRIVATE_SPAWN_LIB or a local build is used`
    : "";
  return new LibraryError(
    "ERR_PERMISSION",
    `private_spawn: Deno did not grant a permission the library needs (${error.message}). Run again with ${flags}${write}.`,
    { cause: error },
  );
}
