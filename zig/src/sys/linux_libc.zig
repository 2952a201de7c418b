//! Linux linked with libc (`zig build -Dlibc-posix=true`): what darwin.zig and freebsd.zig give
//! posix.zig, so that the portable helper and its host run here. Waits on a word are futexes and
//! the region is a memfd, through raw system calls (allowed beside libc).

const std = @import("std");
const linux = std.os.linux;

const FUTEX_WAIT = 0;
const FUTEX_WAKE = 1;
const FUTEX_PRIVATE_FLAG = 128;

fn neg(errno: usize) usize {
    return @bitCast(-@as(isize, @intCast(errno)));
}

fn raw(rc: usize) usize {
    const e = @intFromEnum(linux.E.init(rc));
    return if (e == 0) rc else neg(e);
}

/// Waits while `*word == expected`; ETIMEDOUT after `timeout_ms` (negative: forever).
pub fn wait_on_word(word: *const u32, expected: u32, timeout_ms: i32, shared: bool) usize {
    const op: usize = FUTEX_WAIT | @as(usize, if (shared) 0 else FUTEX_PRIVATE_FLAG);
    var ts = linux.timespec{ .sec = @divTrunc(timeout_ms, 1000), .nsec = @rem(timeout_ms, 1000) * 1_000_000 };
    const tsp: usize = if (timeout_ms < 0) 0 else @intFromPtr(&ts);
    return raw(linux.syscall4(.futex, @intFromPtr(word), op, expected, tsp));
}

pub fn wake_word(word: *const u32, count: u32, shared: bool) usize {
    const op: usize = FUTEX_WAKE | @as(usize, if (shared) 0 else FUTEX_PRIVATE_FLAG);
    const n: usize = @min(count, std.math.maxInt(i32));
    return raw(linux.syscall3(.futex, @intFromPtr(word), op, n));
}

/// The region's memory object: a memfd (Linux 3.17+).
pub fn anonymous_shm() usize {
    return raw(linux.syscall2(.memfd_create, @intFromPtr("private_spawn"), 0));
}
