/**
 * Where the library is loaded from: `PRIVATE_SPAWN_LIB` if set, then a local build in this
 * checkout (`zig/zig-out/lib/`). Runtime-neutral: uses only `node:` modules.
 *
 * @module
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The environment variable that overrides the library path. */
export const LIBRARY_PATH_ENV = "PRIVATE_SPAWN_LIB";

/** The file name of the shared library for this system. */
export function libraryFileName(): string {
  return "libprivate_spawn.so";
}

/** Candidate paths, in the order they are tried. */
export function libraryCandidates(): string[] {
  const candidates: string[] = [];
  const override = process.env[LIBRARY_PATH_ENV];
  if (override) candidates.push(override);
  const local = new URL(`../zig/zig-out/lib/${libraryFileName()}`, import.meta.url);
  if (local.protocol === "file:") candidates.push(fileURLToPath(local));
  return candidates;
}

/** The first candidate that exists, or an error that names every path tried and the fix. */
export function resolveLibraryPath(): string {
  const candidates = libraryCandidates();
  for (const path of candidates) {
    if (existsSync(path)) return path;
  }
  const error = new Error(
    `private_spawn: the native library was not found; tried ${
      candidates.map((p) => JSON.stringify(p)).join(", ")
    }. Build it with "zig build" in zig/ or set ${LIBRARY_PATH_ENV} to its path.`,
  );
  (error as Error & { code: string }).code = "ERR_LIBRARY_NOT_FOUND";
  throw error;
}
