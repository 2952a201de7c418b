//! FreeBSD: what posix.zig cannot write once for both BSD-derived systems: waits on a word, and
//! the region's anonymous shared memory object.

const std = @import("std");

/// `_umtx_op(2)`: the kernel's compare-and-wait on a 32-bit word, private to the process or
/// keyed by the memory object (the non-`_PRIVATE` operations).
extern "c" fn _umtx_op(obj: *const anyopaque, op: c_int, val: c_ulong, uaddr: ?*anyopaque, uaddr2: ?*anyopaque) c_int;
const UMTX_OP_WAKE: c_int = 3;
const UMTX_OP_WAIT_UINT: c_int = 11;
const UMTX_OP_WAIT_UINT_PRIVATE: c_int = 15;
const UMTX_OP_WAKE_PRIVATE: c_int = 16;

const Timespec = extern struct { sec: i64, nsec: i64 };

fn neg(errno: i32) usize {
    return @bitCast(-@as(isize, errno));
}

/// Waits while `*word == expected`; ETIMEDOUT after `timeout_ms` (negative: forever).
pub fn wait_on_word(word: *const u32, expected: u32, timeout_ms: i32, shared: bool) usize {
    const op: c_int = if (shared) UMTX_OP_WAIT_UINT else UMTX_OP_WAIT_UINT_PRIVATE;
    var ts = Timespec{ .sec = @divTrunc(timeout_ms, 1000), .nsec = @rem(timeout_ms, 1000) * 1_000_000 };
    // A relative timeout: `uaddr` holds the size of the timespec that `uaddr2` points to.
    const size: ?*anyopaque = if (timeout_ms < 0) null else @ptrFromInt(@sizeOf(Timespec));
    const timeout: ?*anyopaque = if (timeout_ms < 0) null else @ptrCast(&ts);
    if (_umtx_op(word, op, expected, size, timeout) == 0) return 0;
    return neg(std.c._errno().*);
}

pub fn wake_word(word: *const u32, count: u32, shared: bool) usize {
    const op: c_int = if (shared) UMTX_OP_WAKE else UMTX_OP_WAKE_PRIVATE;
    const n: c_ulong = if (count > std.math.maxInt(i32)) std.math.maxInt(i32) else count;
    if (_umtx_op(word, op, n, null, null) == 0) return 0;
    return neg(std.c._errno().*);
}

extern "c" fn shm_open(name: ?*const anyopaque, flags: c_int, mode: c_uint) c_int;
/// `SHM_ANON`: an object with no name at all (FreeBSD 8+).
const SHM_ANON: *const anyopaque = @ptrFromInt(1);
const O_RDWR = 2;

pub fn anonymous_shm() usize {
    const fd = shm_open(SHM_ANON, O_RDWR, 0o600);
    if (fd >= 0) return @intCast(fd);
    return neg(std.c._errno().*);
}
