// The prebuilt files of every target (zig build prebuilt), decoded here without system tools:
// nothing on this machine runs macOS or FreeBSD, so these checks are all those builds get.
// ELF: class, machine, OS (FreeBSD by its libc, libc.so.7: FreeBSD's rtld checks class, data,
// version, type and machine, not EI_OSABI, and Zig leaves it 0), the exported ph_* symbols.
// Mach-O: magic, CPU type, file type, the exported symbols, and on arm64 the ad-hoc code
// signature, page by page (an arm64 macOS kernel kills a process on an unsigned or wrongly
// signed page).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { libraryFile } from "../ffi/loader.ts";
import { symbols } from "../ffi/symbols.ts";
import { test } from "./harness.ts";

const prebuilt = fileURLToPath(new URL("../zig/zig-out/prebuilt/", import.meta.url));
const exported = Object.keys(symbols).sort();

interface Target {
  dir: string;
  file: string;
  format: "elf" | "macho";
  machine: number;
  os: "linux" | "freebsd" | "macos";
}
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const CPU_X86_64 = 0x01000007;
const CPU_ARM64 = 0x0100000c;
const targets: Target[] = [
  { dir: "x86_64-linux", file: "libprivate_spawn.so", format: "elf", machine: EM_X86_64, os: "linux" },
  { dir: "aarch64-linux", file: "libprivate_spawn.so", format: "elf", machine: EM_AARCH64, os: "linux" },
  { dir: "x86_64-freebsd", file: "libprivate_spawn.so", format: "elf", machine: EM_X86_64, os: "freebsd" },
  { dir: "aarch64-freebsd", file: "libprivate_spawn.so", format: "elf", machine: EM_AARCH64, os: "freebsd" },
  { dir: "x86_64-macos", file: "libprivate_spawn.dylib", format: "macho", machine: CPU_X86_64, os: "macos" },
  { dir: "aarch64-macos", file: "libprivate_spawn.dylib", format: "macho", machine: CPU_ARM64, os: "macos" },
];

function cString(bytes: Uint8Array, offset: number): string {
  let end = offset;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(offset, end));
}

interface Elf {
  osabi: number;
  machine: number;
  type: number;
  exports: string[];
  /** Undefined symbols: what it takes from libc. */
  imports: string[];
  needed: string[];
  flags1: bigint;
}

/** A 64-bit little-endian ELF shared object: header, .dynsym's defined globals, .dynamic. */
function parseElf(bytes: Uint8Array): Elf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], "ELF magic");
  assert.equal(bytes[4], 2, "ELFCLASS64");
  assert.equal(bytes[5], 1, "little-endian");
  const shoff = Number(view.getBigUint64(40, true));
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      type: view.getUint32(at + 4, true),
      offset: Number(view.getBigUint64(at + 24, true)),
      size: Number(view.getBigUint64(at + 32, true)),
      link: view.getUint32(at + 40, true),
    };
  };
  const SHT_DYNSYM = 11;
  const SHT_DYNAMIC = 6;
  const exports: string[] = [];
  const imports: string[] = [];
  const needed: string[] = [];
  let flags1 = 0n;
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const strtab = section(s.link).offset;
    if (s.type === SHT_DYNSYM) {
      for (let at = s.offset; at < s.offset + s.size; at += 24) {
        const bind = bytes[at + 4] >> 4;
        const shndx = view.getUint16(at + 6, true);
        const name = cString(bytes, strtab + view.getUint32(at, true));
        if (bind === 1 && shndx !== 0) exports.push(name);
        if (shndx === 0 && name !== "") imports.push(name);
      }
    } else if (s.type === SHT_DYNAMIC) {
      for (let at = s.offset; at < s.offset + s.size; at += 16) {
        const tag = view.getBigInt64(at, true);
        const value = view.getBigUint64(at + 8, true);
        if (tag === 1n) needed.push(cString(bytes, strtab + Number(value)));
        if (tag === 0x6ffffffbn) flags1 = value;
      }
    }
  }
  return {
    osabi: bytes[7],
    machine: view.getUint16(18, true),
    type: view.getUint16(16, true),
    exports,
    imports,
    needed,
    flags1,
  };
}

interface MachO {
  cputype: number;
  filetype: number;
  exports: string[];
  dylibs: string[];
  signature: { offset: number; size: number } | null;
}

/** A 64-bit little-endian Mach-O: header, load commands, LC_SYMTAB's external defined symbols. */
function parseMachO(bytes: Uint8Array): MachO {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(view.getUint32(0, true), 0xfeedfacf, "MH_MAGIC_64");
  const ncmds = view.getUint32(16, true);
  const exports: string[] = [];
  const dylibs: string[] = [];
  let signature: MachO["signature"] = null;
  let at = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = view.getUint32(at, true);
    const size = view.getUint32(at + 4, true);
    if (cmd === 0x2) { // LC_SYMTAB
      const symoff = view.getUint32(at + 8, true);
      const nsyms = view.getUint32(at + 12, true);
      const stroff = view.getUint32(at + 16, true);
      for (let s = 0; s < nsyms; s++) {
        const entry = symoff + s * 16;
        const type = bytes[entry + 4];
        // N_EXT, and N_TYPE == N_SECT: defined here and visible.
        if ((type & 0x01) !== 0 && (type & 0x0e) === 0x0e) {
          exports.push(cString(bytes, stroff + view.getUint32(entry, true)));
        }
      }
    } else if (cmd === 0xc) { // LC_LOAD_DYLIB
      dylibs.push(cString(bytes, at + view.getUint32(at + 8, true)));
    } else if (cmd === 0x1d) { // LC_CODE_SIGNATURE
      signature = { offset: view.getUint32(at + 8, true), size: view.getUint32(at + 12, true) };
    }
    at += size;
  }
  return { cputype: view.getUint32(4, true), filetype: view.getUint32(12, true), exports, dylibs, signature };
}

/**
 * Checks the code signature: SuperBlob (0xfade0cc0) -> CodeDirectory (0xfade0c02, slot 0) ->
 * one SHA-256 per page of the file up to codeLimit, pages of 2^pageSize bytes. All big-endian.
 * Returns the number of pages checked.
 */
function verifyCodeSignature(bytes: Uint8Array, signature: { offset: number; size: number }): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blob = signature.offset;
  assert.equal(view.getUint32(blob), 0xfade0cc0, "CSMAGIC_EMBEDDED_SIGNATURE");
  const count = view.getUint32(blob + 8);
  let cd = -1;
  for (let i = 0; i < count; i++) {
    const type = view.getUint32(blob + 12 + i * 8);
    if (type === 0) cd = blob + view.getUint32(blob + 16 + i * 8);
  }
  assert.ok(cd >= 0, "no CodeDirectory");
  assert.equal(view.getUint32(cd), 0xfade0c02, "CSMAGIC_CODEDIRECTORY");
  const hashOffset = view.getUint32(cd + 16);
  const nCodeSlots = view.getUint32(cd + 28);
  const codeLimit = view.getUint32(cd + 32);
  const hashSize = bytes[cd + 36];
  const hashType = bytes[cd + 37];
  const pageSize = 2 ** bytes[cd + 39];
  assert.equal(hashType, 2, "CS_HASHTYPE_SHA256");
  assert.equal(hashSize, 32);
  // The signature covers the whole file before itself.
  assert.equal(codeLimit, signature.offset, "codeLimit is where the signature starts");
  assert.equal(nCodeSlots, Math.ceil(codeLimit / pageSize));
  for (let page = 0; page < nCodeSlots; page++) {
    const data = bytes.subarray(page * pageSize, Math.min((page + 1) * pageSize, codeLimit));
    const actual = createHash("sha256").update(data).digest("hex");
    const slot: number = cd + hashOffset + page * hashSize;
    const expected = [...bytes.subarray(slot, slot + hashSize)].map((b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(actual, expected, `page ${page} of ${nCodeSlots}`);
  }
  return nCodeSlots;
}

for (const target of targets) {
  test(`prebuilt ${target.dir}/${target.file}: format, machine, OS and the ph_* exports`, () => {
    const path = `${prebuilt}${target.dir}/${target.file}`;
    assert.ok(existsSync(path), `${path} is missing: run "zig build prebuilt" in zig/`);
    const bytes = new Uint8Array(readFileSync(path));
    // arm64 Mach-O starts each of its four segments on a 16 KiB page (__TEXT is 17 KiB: 64 KiB + the symbols).
    const limit = target.format === "macho" ? 128 * 1024 : 64 * 1024;
    assert.ok(bytes.length < limit, `${target.dir} is ${bytes.length} bytes`);
    let names: string[];
    if (target.format === "elf") {
      const elf = parseElf(bytes);
      assert.equal(elf.machine, target.machine);
      assert.equal(elf.type, 3, "ET_DYN");
      assert.equal(elf.osabi, 0, "EI_OSABI (FreeBSD's rtld does not read it)");
      assert.notEqual(elf.flags1 & 0x8n, 0n, "DF_1_NODELETE");
      // FreeBSD: libthr for the pdfork backend's exit watcher, a thread.
      assert.deepEqual(elf.needed, target.os === "freebsd" ? ["libthr.so.3", "libc.so.7"] : []);
      if (target.os === "freebsd") {
        // The pdfork backend (decision 0014): process descriptors, one kqueue, the raw
        // sigaction in the child; FreeBSD 13's close_range.
        // And the terminals: posix_openpt and ptsname_r (FreeBSD 13).
        const names = ["pdfork", "pdkill", "kqueue", "kevent", "procctl", "syscall", "close_range", "wait4"];
        for (const name of [...names, "posix_openpt", "ptsname_r"]) {
          assert.ok(elf.imports.includes(name), `${target.dir} does not import ${name}`);
        }
      }
      names = elf.exports;
    } else {
      const macho = parseMachO(bytes);
      assert.equal(macho.cputype, target.machine);
      assert.equal(macho.filetype, 6, "MH_DYLIB");
      assert.deepEqual(macho.dylibs, ["/usr/lib/libSystem.B.dylib"]);
      names = macho.exports.map((name) => name.replace(/^_/, ""));
      if (target.machine === CPU_ARM64) {
        assert.ok(macho.signature, "arm64 Mach-O must carry a code signature");
        assert.ok(verifyCodeSignature(bytes, macho.signature) > 0);
      } else if (macho.signature) {
        verifyCodeSignature(bytes, macho.signature);
      }
    }
    assert.deepEqual(names.filter((name) => name.startsWith("ph_")).sort(), exported);
  });
}

for (const target of targets) {
  test(`prebuilt ${target.dir}/ph-helper: an executable for the same machine (the helper backend)`, () => {
    const path = `${prebuilt}${target.dir}/ph-helper`;
    assert.ok(existsSync(path), `${path} is missing: run "zig build prebuilt" in zig/`);
    const bytes = new Uint8Array(readFileSync(path));
    assert.ok(bytes.length < 128 * 1024, `${target.dir} helper is ${bytes.length} bytes`);
    if (target.format === "elf") {
      const elf = parseElf(bytes);
      assert.equal(elf.machine, target.machine);
      assert.equal(elf.type, 2, "ET_EXEC");
      // Linux's helper is static and libc-free; FreeBSD's (the portable helper) links its libc.
      assert.deepEqual(elf.needed, target.os === "freebsd" ? ["libc.so.7"] : []);
      return;
    }
    const macho = parseMachO(bytes);
    assert.equal(macho.cputype, target.machine);
    assert.equal(macho.filetype, 2, "MH_EXECUTE");
    assert.deepEqual(macho.dylibs, ["/usr/lib/libSystem.B.dylib"]);
    // An arm64 macOS kernel kills an executable whose pages do not match their signature.
    if (target.machine === CPU_ARM64) {
      assert.ok(macho.signature, "arm64 Mach-O must carry a code signature");
      assert.ok(verifyCodeSignature(bytes, macho.signature) > 0);
    }
  });
}

test(
  "the local builds are DF_1_NODELETE too: a thread running the library's code outlives the runtime's dlclose at exit",
  () => {
    // The reaper and the pdfork backend's watcher run the library's code while the host exits;
    // Zig's own linker (its Debug default) once dropped the flag from the glibc build.
    const local = fileURLToPath(new URL("../zig/zig-out/", import.meta.url));
    let checked = 0;
    for (const path of [`${local}lib/libprivate_spawn.so`, `${local}posix/lib/libprivate_spawn.so`]) {
      if (!existsSync(path)) continue;
      assert.notEqual(parseElf(new Uint8Array(readFileSync(path))).flags1 & 0x8n, 0n, `${path}: DF_1_NODELETE`);
      checked++;
    }
    assert.ok(checked > 0, 'no local build: run "zig build" in zig/');
  },
  { notUnderQemu: "scripts/test_aarch64.sh runs a tree without local builds: the embedded aarch64 library" },
);

test("the loader's file name for each OS is the one zig build prebuilt writes", () => {
  const platform = { linux: "linux", freebsd: "freebsd", macos: "darwin" } as const;
  for (const target of targets) assert.equal(libraryFile(platform[target.os]), target.file, target.dir);
});

test("a flipped byte in a signed page fails the arm64 code-signature check", () => {
  const bytes = new Uint8Array(readFileSync(`${prebuilt}aarch64-macos/libprivate_spawn.dylib`));
  const macho = parseMachO(bytes);
  assert.ok(macho.signature);
  bytes[macho.signature.offset - 1] ^= 0xff;
  assert.throws(() => verifyCodeSignature(bytes, macho.signature!), /page/);
});
