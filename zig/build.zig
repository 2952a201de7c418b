const std = @import("std");

/// Every source file of the library: inputs of the build-lib command, so edits rebuild it.
const sources = [_][]const u8{
    "src/root.zig",
    "src/abi.zig",
    "src/library.zig",
    "src/sys/os.zig",
    "src/sys/posix.zig",
    "src/sys/darwin.zig",
    "src/sys/freebsd.zig",
    "src/sys/linux_libc.zig",
    "src/sys/abi_numbers.zig",
    "src/sys/linux.zig",
    "src/common/state.zig",
    "src/common/region.zig",
    "src/common/memory.zig",
    "src/common/exits.zig",
    "src/common/fds.zig",
    "src/common/owner.zig",
    "src/common/child.zig",
    "src/common/request.zig",
    "src/common/pipes.zig",
    "src/common/io.zig",
    "src/common/pid_table.zig",
    "src/common/spin.zig",
    "src/common/tree.zig",
    "src/backend/reaper/reaper.zig",
    "src/backend/helper/host.zig",
    "src/backend/helper/protocol.zig",
    "src/backend/helper/serve.zig",
    "src/backend/helper/portable.zig",
    "src/backend/helper/portable_child.zig",
    "src/backend/pdfork/pdfork.zig",
    "src/helper/main.zig",
};

/// The targets of `zig build prebuilt`, each installed under prebuilt/<arch>-<os>/. Linux is
/// libc-free; macOS links libSystem and FreeBSD its libc (Zig ships their stubs, so these
/// cross-compile here; they are built and checked, never run: tests/binary_format.test.ts).
const Prebuilt = struct { triple: []const u8, dir: []const u8, os: std.Target.Os.Tag };
const prebuilt_targets = [_]Prebuilt{
    .{ .triple = "x86_64-linux-none", .dir = "x86_64-linux", .os = .linux },
    .{ .triple = "aarch64-linux-none", .dir = "aarch64-linux", .os = .linux },
    .{ .triple = "x86_64-macos", .dir = "x86_64-macos", .os = .macos },
    .{ .triple = "aarch64-macos", .dir = "aarch64-macos", .os = .macos },
    .{ .triple = "x86_64-freebsd", .dir = "x86_64-freebsd", .os = .freebsd },
    .{ .triple = "aarch64-freebsd", .dir = "aarch64-freebsd", .os = .freebsd },
};

/// The library's file name on `os`.
fn libraryFile(os: std.Target.Os.Tag) []const u8 {
    return if (os == .macos) "libprivate_spawn.dylib" else "libprivate_spawn.so";
}

/// Whether the build links libc: macOS and FreeBSD always (their system calls are only a
/// stable interface through it), Linux only for the portable build (`-Dlibc-posix=true`, `zig
/// build posix`). Linux's own build is libc-free: the reaper and vfork children run raw
/// syscalls only, and a libc-free library loads the same into glibc and musl hosts.
fn linksLibc(os: std.Target.Os.Tag, libc_posix: bool) bool {
    return os != .linux or libc_posix;
}

/// The library is built by `zig build-lib` directly because the build API cannot pass
/// `-z nodelete`, which we need: the reaper runs the library's code, and a runtime that
/// dlclose()s it at exit would unmap that code under the reaper's feet.
fn buildLibrary(b: *std.Build, triple: []const u8, os: std.Target.Os.Tag, libc: bool, optimize: std.builtin.OptimizeMode) std.Build.LazyPath {
    const lib = b.addSystemCommand(&.{
        b.graph.zig_exe, "build-lib",
        "-dynamic",      "-fPIC",
        "-target",       triple,
        "-O",            @tagName(optimize),
        "--name",        "private_spawn",
    });
    // ELF only: Mach-O's linker has no such flag, and no backend runs the library's code
    // outside the host's own calls on macOS yet.
    // LLVM and LLD always: Zig's own backend and linker (its Debug default here) drop
    // `-z nodelete` without a word.
    if (os != .macos) lib.addArgs(&.{ "-z", "nodelete", "-fllvm", "-flld" });
    // Mach-O records the dylib's install name, by default the output path in the cache:
    // a fixed one keeps the build reproducible (the loader opens it by full path anyway).
    if (os == .macos) lib.addArgs(&.{ "-install_name", "@rpath/libprivate_spawn.dylib" });
    if (libc) lib.addArg("-lc");
    if (optimize != .Debug) lib.addArg("-fstrip");
    lib.addFileArg(b.path("src/root.zig"));
    for (sources) |source| lib.addFileInput(b.path(source));
    return lib.addPrefixedOutputFileArg("-femit-bin=", libraryFile(os));
}

/// The helper executable of the `helper` backend, with src/library.zig as module
/// "private_spawn" (a root in src/helper/ cannot import files above it): static and libc-free
/// on Linux, linked with libc where the helper is the portable one.
fn buildHelper(b: *std.Build, triple: []const u8, libc: bool, optimize: std.builtin.OptimizeMode) std.Build.LazyPath {
    const exe = b.addSystemCommand(&.{
        b.graph.zig_exe, "build-exe",
        "-target",       triple,
        "-O",            @tagName(optimize),
        "--name",        "ph-helper",
    });
    if (optimize != .Debug) exe.addArg("-fstrip");
    if (libc) exe.addArg("-lc");
    exe.addArgs(&.{ "--dep", "private_spawn" });
    exe.addPrefixedFileArg("-Mroot=", b.path("src/helper/main.zig"));
    exe.addPrefixedFileArg("-Mprivate_spawn=", b.path("src/library.zig"));
    for (sources) |source| exe.addFileInput(b.path(source));
    return exe.addPrefixedOutputFileArg("-femit-bin=", "ph-helper");
}

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const libc_posix = b.option(bool, "libc-posix", "Linux: link libc and use the portable helper (as on macOS)") orelse false;

    const triple = target.query.zigTriple(b.allocator) catch @panic("OOM");
    const os = target.result.os.tag;
    const libc = linksLibc(os, libc_posix);
    const install = b.addInstallLibFile(buildLibrary(b, triple, os, libc, optimize), libraryFile(os));
    b.getInstallStep().dependOn(&install.step);
    const helper = b.addInstallBinFile(buildHelper(b, triple, libc, optimize), "ph-helper");
    b.getInstallStep().dependOn(&helper.step);

    // Small, stripped, one per architecture, installed as prebuilt/<triple>/libprivate_spawn.so.
    const prebuilt = b.step("prebuilt", "Cross-compile the libraries shipped in the package");
    for (prebuilt_targets) |t| {
        const file = buildLibrary(b, t.triple, t.os, linksLibc(t.os, false), .ReleaseSmall);
        const dest = b.fmt("prebuilt/{s}/{s}", .{ t.dir, libraryFile(t.os) });
        prebuilt.dependOn(&b.addInstallFile(file, dest).step);
        const helper_file = buildHelper(b, t.triple, linksLibc(t.os, false), .ReleaseSmall);
        const helper_dest = b.fmt("prebuilt/{s}/ph-helper", .{t.dir});
        prebuilt.dependOn(&b.addInstallFile(helper_file, helper_dest).step);
    }

    // The portable helper built for this Linux machine against glibc, so that the TypeScript
    // suites run it here: zig-out/posix/lib/libprivate_spawn.so and zig-out/posix/bin/ph-helper.
    const posix = b.step("posix", "Build the Linux library and helper over libc with the portable helper");
    const posix_triple = b.fmt("{s}-linux-gnu", .{@tagName(b.graph.host.result.cpu.arch)});
    const posix_lib = buildLibrary(b, posix_triple, .linux, true, optimize);
    posix.dependOn(&b.addInstallFile(posix_lib, "posix/lib/libprivate_spawn.so").step);
    const posix_helper = buildHelper(b, posix_triple, true, optimize);
    posix.dependOn(&b.addInstallFile(posix_helper, "posix/bin/ph-helper").step);

    // The TypeScript side of the C ABI (ffi/abi.ts, ffi/symbols.ts), generated from abi.zig and
    // root.zig by a program run on the build machine.
    const bindings_dir = b.option([]const u8, "bindings", "Where `zig build bindings` writes (default ../ffi)") orelse
        b.pathFromRoot("../ffi");
    const generator = b.addExecutable(.{
        .name = "bindings",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/bindings.zig"),
            .target = b.graph.host,
            .optimize = .Debug,
        }),
    });
    const generate = b.addRunArtifact(generator);
    generate.addArg(bindings_dir);
    generate.has_side_effects = true;
    b.step("bindings", "Generate ffi/abi.ts and ffi/symbols.ts from the Zig ABI").dependOn(&generate.step);

    const test_module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = .Debug,
    });
    const tests = b.addTest(.{ .root_module = test_module });
    const run_tests = b.addRunArtifact(tests);
    // The contract tests run the helper backend with a helper built for them (in zig-out/test/,
    // so that the one the TypeScript tests load keeps its optimization mode).
    const test_helper = b.addInstallFileWithDir(buildHelper(b, triple, libc, .Debug), .{ .custom = "test" }, "ph-helper");
    run_tests.step.dependOn(&test_helper.step);
    run_tests.setEnvironmentVariable("PH_HELPER", b.getInstallPath(.{ .custom = "test" }, "ph-helper"));
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&run_tests.step);
}
