//! macOS: what posix.zig cannot write once for both BSD-derived systems: waits on a word, and
//! the region's anonymous shared memory object.

const std = @import("std");

/// `__ulock_wait`/`__ulock_wake` (libSystem, macOS 10.12+): the kernel's compare-and-wait on
/// a 32-bit word, private to the process or keyed by the memory object (`_SHARED`). Not in
/// the SDK headers, but exported by libSystem and used by libc++ for `std::atomic::wait`
/// (decision 0011).
extern "c" fn __ulock_wait(operation: u32, addr: *const anyopaque, value: u64, timeout_us: u32) c_int;
extern "c" fn __ulock_wake(operation: u32, addr: *const anyopaque, wake_value: u64) c_int;
const UL_COMPARE_AND_WAIT: u32 = 1;
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
const ULF_WAKE_ALL: u32 = 0x100;
/// The result is `-errno` itself, errno untouched.
const ULF_NO_ERRNO: u32 = 0x01000000;

const ETIMEDOUT = @intFromEnum(std.c.E.TIMEDOUT);
const ENOENT = @intFromEnum(std.c.E.NOENT);

fn neg(errno: i32) usize {
    return @bitCast(-@as(isize, errno));
}

/// Waits while `*word == expected`; ETIMEDOUT after `timeout_ms` (negative: forever). A
/// timeout of 0 to `__ulock_wait` means forever, so a zero wait only compares.
pub fn wait_on_word(word: *const u32, expected: u32, timeout_ms: i32, shared: bool) usize {
    if (timeout_ms == 0) {
        return if (@atomicLoad(u32, word, .acquire) == expected) neg(ETIMEDOUT) else 0;
    }
    const op: u32 = (if (shared) UL_COMPARE_AND_WAIT_SHARED else UL_COMPARE_AND_WAIT) | ULF_NO_ERRNO;
    // At most u32 microseconds (71 minutes) per call; the callers loop on their own deadline.
    const timeout_us: u32 = if (timeout_ms < 0) 0 else @intCast(@min(@as(u64, @intCast(timeout_ms)) * 1000, std.math.maxInt(u32)));
    const rc = __ulock_wait(op, word, expected, timeout_us);
    if (rc >= 0) return 0;
    return neg(-rc);
}

/// Wakes one waiter (`count` 1) or all. ENOENT (nobody waited) is success, as a futex wake
/// of nobody is on Linux.
pub fn wake_word(word: *const u32, count: u32, shared: bool) usize {
    var op: u32 = (if (shared) UL_COMPARE_AND_WAIT_SHARED else UL_COMPARE_AND_WAIT) | ULF_NO_ERRNO;
    if (count > 1) op |= ULF_WAKE_ALL;
    const rc = __ulock_wake(op, word, 0);
    if (rc >= 0 or -rc == ENOENT) return 0;
    return neg(-rc);
}

extern "c" fn shm_open(name: [*:0]const u8, flags: c_int, ...) c_int;
extern "c" fn shm_unlink(name: [*:0]const u8) c_int;
const O_RDWR = 2;
const O_CREAT = 0x200;
const O_EXCL = 0x800;
var shm_counter: u32 = 0;

/// An anonymous shared memory object: `shm_open` under a fresh name (at most 31 bytes,
/// PSHMNAMLEN), unlinked at once so that only descriptors reach it.
pub fn anonymous_shm() usize {
    var attempt: u32 = 0;
    while (attempt < 16) : (attempt += 1) {
        var name: [32]u8 = undefined;
        const n = @atomicRmw(u32, &shm_counter, .Add, 1, .monotonic);
        const text = std.fmt.bufPrintZ(&name, "/ph-{d}-{d}", .{ std.c.getpid(), n }) catch unreachable;
        const fd = shm_open(text.ptr, O_RDWR | O_CREAT | O_EXCL, @as(c_uint, 0o600));
        if (fd >= 0) {
            // Cannot fail: the name was created by this call and nobody else knows it yet
            // (O_EXCL); if another process unlinked it, the object still lives through `fd`.
            _ = shm_unlink(text.ptr);
            return @intCast(fd);
        }
        const err: i32 = std.c._errno().*;
        if (err != @intFromEnum(std.c.E.EXIST)) return neg(err);
    }
    return neg(@intFromEnum(std.c.E.EXIST));
}

// ---------------------------------------------------------------------------------------------
// Threads: the 64-bit id of `pthread_threadid_np`, the same number libproc's
// PROC_PIDLISTTHREADIDS lists for every thread of a process (macOS 11+; older systems refuse
// the flavor, and then no thread counts as ended).

extern "c" fn pthread_threadid_np(thread: ?*anyopaque, id: *u64) c_int;
extern "c" fn proc_pidinfo(pid: c_int, flavor: c_int, arg: u64, buffer: ?*anyopaque, size: c_int) c_int;
extern "c" fn getpid() c_int;
const PROC_PIDLISTTHREADIDS: c_int = 28;
/// More threads than this and the list may be cut short: then no thread counts as ended.
const threads_listed_max = 1024;

pub fn thread_id() u64 {
    var id: u64 = 0;
    // Fails only for a thread that is not a pthread; the calling one always is.
    _ = pthread_threadid_np(null, &id);
    return id;
}
/// True only when the process's whole list of threads was read and `id` is not in it.
pub fn thread_gone(id: u64) bool {
    var ids: [threads_listed_max]u64 = undefined;
    const size: c_int = @sizeOf(@TypeOf(ids));
    const bytes = proc_pidinfo(getpid(), PROC_PIDLISTTHREADIDS, 0, &ids, size);
    if (bytes <= 0 or bytes >= size) return false;
    const count: usize = @intCast(@divFloor(bytes, @sizeOf(u64)));
    for (ids[0..count]) |listed| {
        if (listed == id) return false;
    }
    return true;
}
