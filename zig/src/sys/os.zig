//! The system calls of the OS being built for: one file per OS, the same names and the same
//! convention (the raw result as `usize`, a failure as `-errno` in that OS's numbering, decoded
//! with `errno`). Everything in common/ imports `sys` from here, never an OS file directly.

const builtin = @import("builtin");

/// Whether the library goes through libc and the portable helper (posix.zig): on macOS and
/// FreeBSD, and on Linux when linked with libc (`zig build -Dlibc-posix=true`), which runs the
/// portable code here. Linux's own build is libc-free (linux.zig: the reaper, the Linux helper).
pub const portable = builtin.os.tag != .linux or builtin.link_libc;

pub const sys = if (portable) switch (builtin.os.tag) {
    .linux, .macos, .freebsd => @import("posix.zig"),
    else => @compileError("no system-call layer for " ++ @tagName(builtin.os.tag)),
} else @import("linux.zig");
