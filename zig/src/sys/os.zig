//! The system calls of the OS being built for: one file per OS, the same names and the same
//! convention (the raw result as `usize`, a failure as `-errno` in that OS's numbering, decoded
//! with `errno`). Everything in common/ imports `sys` from here, never an OS file directly.

const builtin = @import("builtin");

pub const sys = switch (builtin.os.tag) {
    .linux => @import("linux.zig"),
    .macos, .freebsd => @import("posix.zig"),
    else => @compileError("no system-call layer for " ++ @tagName(builtin.os.tag)),
};
