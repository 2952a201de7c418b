const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        // No libc: the reaper and vfork children run raw syscalls only, and a libc-free
        // library loads the same into glibc and musl hosts.
        .link_libc = false,
        .pic = true,
        .strip = optimize != .Debug,
    });
    const lib = b.addLibrary(.{ .name = "private_spawn", .root_module = module, .linkage = .dynamic });
    b.installArtifact(lib);

    const test_module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = .Debug,
    });
    const tests = b.addTest(.{ .root_module = test_module });
    const run_tests = b.addRunArtifact(tests);
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&run_tests.step);
}
