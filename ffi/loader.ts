/**
 * Where the library is loaded from, in order:
 *  1. `PRIVATE_SPAWN_LIB`, a path set by the user;
 *  2. a local build in this checkout (`zig/zig-out/lib/`), for development;
 *  3. the prebuilt library shipped in the package (`ffi/prebuilt/`), written once to a cache
 *     directory under a name keyed by its SHA-256, and verified by that hash before every
 *     load: a truncated or altered cached file is replaced, never loaded.
 * Linux, macOS (`.dylib`, the portable helper: docs/decisions/0013-posix-helper.md) and FreeBSD
 * (the `pdfork` backend: docs/decisions/0014-pdfork.md) are supported; elsewhere the first use
 * throws "ERR_PLATFORM_UNSUPPORTED" (importing the module still works).
 * Synchronous, and runs only when first called: importing this module reads neither the
 * environment nor the file system. The cache directory's ownership check needs no /proc: where
 * the runtime does not tell our uid, a probe file we create there does.
 * Runtime-neutral: uses only `node:` modules.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { LibraryError } from "./library_error.ts";
import { granted, isPermissionError } from "./permissions.ts";
// All, statically: loading stays synchronous, `deno compile` and bundlers include them, and
// only the host's one is decoded (on first use). Parsing them costs a few milliseconds.
import * as aarch64Freebsd from "./prebuilt/aarch64_freebsd.ts";
import * as aarch64Linux from "./prebuilt/aarch64_linux.ts";
import * as aarch64Macos from "./prebuilt/aarch64_macos.ts";
import * as x86_64Freebsd from "./prebuilt/x86_64_freebsd.ts";
import * as x86_64Linux from "./prebuilt/x86_64_linux.ts";
import * as x86_64Macos from "./prebuilt/x86_64_macos.ts";

export { LibraryError } from "./library_error.ts";
export type { LibraryErrorCode } from "./library_error.ts";

/** The environment variable that overrides the library path. */
export const LIBRARY_PATH_ENV = "PRIVATE_SPAWN_LIB";
/** The environment variable that overrides the cache directory of the prebuilt library. */
export const CACHE_DIR_ENV = "PRIVATE_SPAWN_CACHE";

/** The file name of the shared library (on Linux and FreeBSD; `libraryFile` for any OS). */
export const LIBRARY_FILE = "libprivate_spawn.so";

/** The shared library's file name on `platform` (a `process.platform` value). */
export function libraryFile(platform: string = process.platform): string {
  return platform === "darwin" ? "libprivate_spawn.dylib" : LIBRARY_FILE;
}

/** The environment variable that overrides the helper executable's path. */
export const HELPER_PATH_ENV = "PRIVATE_SPAWN_HELPER";
/** The environment variable that forces a backend: "reaper", "helper", "pdfork" or "runtime". */
export const BACKEND_ENV = "PRIVATE_SPAWN_BACKEND";
/** The file name of the helper executable (the `helper` backend). */
export const HELPER_FILE = "ph-helper";

interface Prebuilt {
  sha256: string;
  size: number;
  base64: string;
}

/** A prebuilt module: the library, and the helper executable beside it. */
interface PrebuiltModule extends Prebuilt {
  helperSha256: string;
  helperSize: number;
  helperBase64: string;
}

/** The local build in this checkout, if the module is loaded from one. */
function localBuild(platform: string): string | null {
  // A checkout's build is for the machine it was built on.
  if (platform !== process.platform) return null;
  const url = new URL(`../zig/zig-out/lib/${libraryFile(platform)}`, import.meta.url);
  if (url.protocol !== "file:") return null;
  const path = fileURLToPath(url);
  return existsSync(path) ? path : null;
}

/** The local build of the helper in this checkout (`zig/zig-out/bin/`), if any. */
function localHelper(): string | null {
  const url = new URL(`../zig/zig-out/bin/${HELPER_FILE}`, import.meta.url);
  if (url.protocol !== "file:") return null;
  const path = fileURLToPath(url);
  return existsSync(path) ? path : null;
}

/**
 * The embedded builds by `process.platform` and `os.arch()`: the ones whose backend spawns
 * (scripts/embed.ts writes one module per entry).
 */
const PREBUILT: Record<string, PrebuiltModule> = {
  "linux-x64": x86_64Linux,
  "linux-arm64": aarch64Linux,
  "darwin-x64": x86_64Macos,
  "darwin-arm64": aarch64Macos,
  "freebsd-x64": x86_64Freebsd,
  "freebsd-arm64": aarch64Freebsd,
};

function prebuiltFor(arch: string, platform: string = process.platform): PrebuiltModule | null {
  return PREBUILT[`${platform}-${arch}`] ?? null;
}

/**
 * Our effective uid, if the runtime tells it without more permissions: Bun (and Deno given
 * --allow-sys=uid) say it directly; else the owner of /proc/self. Deno refuses /proc/self
 * to anything short of --allow-all, and wants --allow-sys for process.geteuid(), so under
 * Deno's usual flags this is undefined and `probeUid` answers instead.
 */
function ownUid(): number | undefined {
  if (granted({ name: "sys", kind: "uid" }) && typeof process.geteuid === "function") return process.geteuid();
  try {
    return statSync("/proc/self").uid;
  } catch {
    return undefined;
  }
}

/**
 * Our effective uid as the owner of a file we create in `dir` (--allow-write covers it). A
 * directory we cannot write to throws, so the ownership check is never skipped.
 */
function probeUid(dir: string): number {
  const probe = `${dir}/.uid-probe-${process.pid}-${Date.now()}`;
  writeFileSync(probe, "", { mode: 0o600, flag: "wx" });
  try {
    return statSync(probe).uid;
  } finally {
    unlinkSync(probe);
  }
}

/** The directory the prebuilt library is written to. */
export function cacheDirectory(): string {
  const override = process.env[CACHE_DIR_ENV];
  if (override) return override;
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg) return `${xdg}/private_spawn`;
  const home = process.env.HOME;
  if (home) return `${home}/.cache/private_spawn`;
  return `${os.tmpdir()}/private_spawn-${ownUid() ?? "user"}`;
}

function sha256Of(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * A private directory: created with mode 0700, and refused if another user owns it (a file
 * planted there could be swapped between our hash check and dlopen).
 */
function ensurePrivateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const uid = ownUid() ?? probeUid(dir);
  const stat = statSync(dir);
  if (stat.uid !== uid) {
    throw new LibraryError(
      "ERR_LIBRARY_CACHE",
      `private_spawn: the cache directory ${dir} belongs to uid ${stat.uid}, not to us (uid ${uid}); set ${CACHE_DIR_ENV} to a directory of your own`,
    );
  }
  if ((stat.mode & 0o022) !== 0) chmodSync(dir, 0o700);
}

/** Writes the prebuilt library into the cache (once) and returns its verified path. */
export function materialize(prebuilt: Prebuilt, dir: string, file: string = LIBRARY_FILE): string {
  const dot = file.lastIndexOf(".");
  const tag = `-${prebuilt.sha256.slice(0, 16)}`;
  const name = dot > 0 ? `${file.slice(0, dot)}${tag}${file.slice(dot)}` : `${file}${tag}`;
  const path = `${dir}/${name}`;
  try {
    ensurePrivateDirectory(dir);
    if (existsSync(path) && sha256Of(path) === prebuilt.sha256) return path;
    const bytes = Uint8Array.from(atob(prebuilt.base64), (c) => c.charCodeAt(0));
    if (bytes.length !== prebuilt.size || createHash("sha256").update(bytes).digest("hex") !== prebuilt.sha256) {
      throw new LibraryError(
        "ERR_LIBRARY_CACHE",
        "private_spawn: the embedded library does not match its own hash; the package is corrupt",
      );
    }
    // Write beside it and rename: a concurrent loader sees the old file or the whole new one.
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temporary, bytes, { mode: 0o700 });
    if (sha256Of(temporary) !== prebuilt.sha256) {
      unlinkSync(temporary);
      throw new LibraryError("ERR_LIBRARY_CACHE", `private_spawn: writing ${temporary} did not keep its bytes`);
    }
    renameSync(temporary, path);
    return path;
  } catch (error) {
    if (error instanceof LibraryError || isPermissionError(error)) throw error;
    throw new LibraryError(
      "ERR_LIBRARY_CACHE",
      `private_spawn: cannot write the prebuilt library to ${path}: ${
        (error as Error).message
      }. Allow reading and writing there (Deno: --allow-read --allow-write), set ${CACHE_DIR_ENV} to a writable directory, or set ${LIBRARY_PATH_ENV} to a library you built.`,
      { cause: error },
    );
  }
}

const OS_NAMES: Record<string, string> = {
  darwin: "macOS",
  win32: "Windows",
  freebsd: "FreeBSD",
  openbsd: "OpenBSD",
  netbsd: "NetBSD",
  sunos: "illumos/Solaris",
  aix: "AIX",
  android: "Android",
};

/** The error of a platform without a library: names it and what is supported. */
export function unsupportedPlatform(platform: string, arch: string): LibraryError {
  const os = OS_NAMES[platform] ? `${OS_NAMES[platform]} (${platform})` : platform;
  return new LibraryError(
    "ERR_PLATFORM_UNSUPPORTED",
    `private_spawn: ${os} on ${arch} is not supported yet: this version runs on Linux, macOS and FreeBSD only (x86_64 and aarch64, prebuilt). Use the runtime's own spawn API on ${os}.`,
  );
}

/**
 * The library to load, by the order above; errors name what was tried and the fix.
 * `platform` and `arch` default to this process's (`process.platform`, `os.arch()`).
 */
export function resolveLibraryPath(platform: string = process.platform, arch: string = os.arch()): string {
  if (platform !== "linux" && platform !== "darwin" && platform !== "freebsd") {
    throw unsupportedPlatform(platform, arch);
  }
  const override = process.env[LIBRARY_PATH_ENV];
  if (override) {
    if (existsSync(override)) return override;
    throw new LibraryError(
      "ERR_LIBRARY_NOT_FOUND",
      `private_spawn: ${LIBRARY_PATH_ENV} is set to ${JSON.stringify(override)}, but no file is there`,
    );
  }
  const local = localBuild(platform);
  if (local !== null) return local;
  const prebuilt = prebuiltFor(arch, platform);
  if (prebuilt === null) {
    throw new LibraryError(
      "ERR_PLATFORM_UNSUPPORTED",
      `private_spawn: no prebuilt library for ${
        OS_NAMES[platform] ?? "Linux"
      } on ${arch} (only x86_64 and aarch64 are shipped); build one for it with "zig build" (in zig/ of the source repository) and set ${LIBRARY_PATH_ENV} to its path`,
    );
  }
  return materialize(prebuilt, cacheDirectory(), libraryFile(platform));
}

/** The backend `PRIVATE_SPAWN_BACKEND` asks for; "auto" when unset. */
export function requestedBackend(): "auto" | "reaper" | "helper" | "pdfork" {
  const value = process.env[BACKEND_ENV];
  if (value === undefined || value === "") return "auto";
  if (value === "reaper" || value === "helper" || value === "pdfork") return value;
  throw new LibraryError(
    "ERR_BACKEND",
    `private_spawn: ${BACKEND_ENV} is ${
      JSON.stringify(value)
    }; it must be "reaper", "helper", "pdfork" or "runtime" (or unset)`,
  );
}

/**
 * The helper executable, in the library's order: `PRIVATE_SPAWN_HELPER`, the local build, the
 * prebuilt one (written to the cache like the library, hash-checked, mode 0700). Null where
 * none is shipped: then only the reaper can run.
 */
export function resolveHelperPath(arch: string = os.arch()): string | null {
  const override = process.env[HELPER_PATH_ENV];
  if (override) {
    if (existsSync(override)) return override;
    throw new LibraryError(
      "ERR_LIBRARY_NOT_FOUND",
      `private_spawn: ${HELPER_PATH_ENV} is set to ${JSON.stringify(override)}, but no file is there`,
    );
  }
  const local = localHelper();
  if (local !== null) return local;
  const prebuilt = prebuiltFor(arch);
  if (prebuilt === null) return null;
  const helper = { sha256: prebuilt.helperSha256, size: prebuilt.helperSize, base64: prebuilt.helperBase64 };
  return materialize(helper, cacheDirectory(), HELPER_FILE);
}
