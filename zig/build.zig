const std = @import("std");

/// Every source file of the library: inputs of the build-lib command, so edits rebuild it.
const sources = [_][]const u8{
    "src/root.zig",                "src/abi.zig",                     "src/library.zig",
    "src/sys/linux.zig",           "src/common/state.zig",            "src/common/region.zig",
    "src/common/memory.zig",       "src/common/exits.zig",            "src/common/fds.zig",
    "src/common/owner.zig",        "src/common/child.zig",            "src/common/request.zig",
    "src/common/pipes.zig",        "src/common/io.zig",               "src/common/pid_table.zig",
    "src/common/spin.zig",         "src/common/tree.zig",             "src/backend/reaper/reaper.zig",
    "src/backend/helper/host.zig", "src/backend/helper/protocol.zig", "src/backend/helper/serve.zig",
    "src/helper/main.zig",
};

/// The targets shipped inside the package (`zig build prebuilt`).
const prebuilt_targets = [_][]const u8{ "x86_64-linux-none", "aarch64-linux-none" };

/// The library is built by `zig build-lib` directly because the build API cannot pass
/// `-z nodelete`, which we need: the reaper runs the library's code, and a runtime that
/// dlclose()s it at exit would unmap that code under the reaper's feet.
fn buildLibrary(b: *std.Build, triple: []const u8, optimize: std.builtin.OptimizeMode) std.Build.LazyPath {
    const lib = b.addSystemCommand(&.{
        b.graph.zig_exe, "build-lib",
        "-dynamic",      "-fPIC",
        "-z",            "nodelete",
        "-target",       triple,
        "-O",            @tagName(optimize),
        "--name",        "private_spawn",
    });
    // No libc: the reaper and vfork children run raw syscalls only, and a libc-free
    // library loads the same into glibc and musl hosts.
    if (optimize != .Debug) lib.addArg("-fstrip");
    lib.addFileArg(b.path("src/root.zig"));
    for (sources) |source| lib.addFileInput(b.path(source));
    return lib.addPrefixedOutputFileArg("-femit-bin=", "libprivate_spawn.so");
}

/// The helper executable of the `helper` backend: static, libc-free, with src/library.zig as
/// module "private_spawn" (a root in src/helper/ cannot import files above it).
fn buildHelper(b: *std.Build, triple: []const u8, optimize: std.builtin.OptimizeMode) std.Build.LazyPath {
    const exe = b.addSystemCommand(&.{
        b.graph.zig_exe, "build-exe",
        "-target",       triple,
        "-O",            @tagName(optimize),
        "--name",        "ph-helper",
    });
    if (optimize != .Debug) exe.addArg("-fstrip");
    exe.addArgs(&.{ "--dep", "private_spawn" });
    exe.addPrefixedFileArg("-Mroot=", b.path("src/helper/main.zig"));
    exe.addPrefixedFileArg("-Mprivate_spawn=", b.path("src/library.zig"));
    for (sources) |source| exe.addFileInput(b.path(source));
    return exe.addPrefixedOutputFileArg("-femit-bin=", "ph-helper");
}

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const triple = target.query.zigTriple(b.allocator) catch @panic("OOM");
    const install = b.addInstallLibFile(buildLibrary(b, triple, optimize), "libprivate_spawn.so");
    b.getInstallStep().dependOn(&install.step);
    const helper = b.addInstallBinFile(buildHelper(b, triple, optimize), "ph-helper");
    b.getInstallStep().dependOn(&helper.step);

    // Small, stripped, one per architecture, installed as prebuilt/<triple>/libprivate_spawn.so.
    const prebuilt = b.step("prebuilt", "Cross-compile the libraries shipped in the package");
    for (prebuilt_targets) |prebuilt_triple| {
        const file = buildLibrary(b, prebuilt_triple, .ReleaseSmall);
        const dest = b.fmt("prebuilt/{s}/libprivate_spawn.so", .{prebuilt_triple});
        prebuilt.dependOn(&b.addInstallFile(file, dest).step);
        const helper_file = buildHelper(b, prebuilt_triple, .ReleaseSmall);
        const helper_dest = b.fmt("prebuilt/{s}/ph-helper", .{prebuilt_triple});
        prebuilt.dependOn(&b.addInstallFile(helper_file, helper_dest).step);
    }

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
    const test_helper = b.addInstallFileWithDir(buildHelper(b, triple, .Debug), .{ .custom = "test" }, "ph-helper");
    run_tests.step.dependOn(&test_helper.step);
    run_tests.setEnvironmentVariable("PH_HELPER", b.getInstallPath(.{ .custom = "test" }, "ph-helper"));
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&run_tests.step);
}
