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

// ---------------------------------------------------------------------------------------------
/// thr_self(2) and thr_kill(2): a thread's id, and with signal 0 only the check that the
/// thread exists in this process (ESRCH when it does not).
extern "c" fn thr_self(id: *c_long) c_int;
extern "c" fn thr_kill(id: c_long, sig: c_int) c_int;

pub fn thread_id() u64 {
    var id: c_long = 0;
    // thr_self fails only for an id pointer outside the address space.
    _ = thr_self(&id);
    return @intCast(id);
}
/// True only when no thread `id` runs in this process any more.
pub fn thread_gone(id: u64) bool {
    return thr_kill(@intCast(id), 0) == -1 and std.c._errno().* == @intFromEnum(std.c.E.SRCH);
}

// Process descriptors (the `pdfork` backend). Zig's std declares kqueue but not the pd* calls.

extern "c" fn pdfork(fd: *c_int, flags: c_int) c_int;
extern "c" fn pdkill(fd: c_int, sig: c_int) c_int;
extern "c" fn procctl(idtype: c_int, id: i64, cmd: c_int, data: ?*anyopaque) c_int;
/// libc's `syscall(2)`: the raw call, past libthr's wrappers (see `child_sigaction`).
extern "c" fn syscall(number: c_int, ...) c_int;
/// The process descriptor is close-on-exec; closing it never kills the child (`PD_DAEMON`):
/// the kill-on-exit signal is the parent-death signal, set in the child (`parent_death_signal`).
const PD_DAEMON: c_int = 0x01;
const PD_CLOEXEC: c_int = 0x02;
const P_PID: c_int = 0;
const PROC_PDEATHSIG_CTL: c_int = 11;
const SYS_sigprocmask: c_int = 340;
const SYS_sigaction: c_int = 416;
const SIG_SETMASK: c_int = 3;

fn ret(rc: c_int) usize {
    if (rc == -1) return neg(std.c._errno().*);
    return @intCast(rc);
}

/// pdfork(2): the child's pid in the parent (its descriptor in `fd`), 0 in the child.
pub fn proc_fork(fd: *i32) usize {
    var out: c_int = -1;
    const rc = ret(pdfork(&out, PD_DAEMON | PD_CLOEXEC));
    if (rc != 0 and rc < std.math.maxInt(i32)) fd.* = out;
    return rc;
}

/// pdkill(2): race-free, the descriptor names the process until it is closed.
pub fn proc_signal(fd: i32, sig: i32) usize {
    return ret(pdkill(fd, sig));
}

/// In the child: `sig` when the host exits (procctl PROC_PDEATHSIG_CTL, FreeBSD 11.2+).
pub fn parent_death_signal(sig: i32) usize {
    var value: c_int = sig;
    return ret(procctl(P_PID, 0, PROC_PDEATHSIG_CTL, &value));
}

/// A kqueue for process descriptors (not inherited by fork; close-on-exec set here).
pub fn watch_open() usize {
    const rc = ret(std.c.kqueue());
    if (rc < std.math.maxInt(i32)) _ = std.c.fcntl(@intCast(rc), std.c.F.SETFD, @as(c_int, std.c.FD_CLOEXEC));
    return rc;
}

/// Watches the descriptor's exit once (EVFILT_PROCDESC, NOTE_EXIT), reported as `index`.
pub fn watch_add(queue: i32, fd: i32, index: u32) usize {
    const change = std.c.Kevent{
        .ident = @intCast(fd),
        .filter = std.c.EVFILT.PROCDESC,
        .flags = std.c.EV.ADD | std.c.EV.ONESHOT,
        .fflags = std.c.NOTE.EXIT,
        .data = 0,
        .udata = index,
    };
    var none: [0]std.c.Kevent = undefined;
    return ret(std.c.kevent(queue, @ptrCast(&change), 1, &none, 0, null));
}

/// Blocks until some watched descriptor's process exits; their indices into `out`.
pub fn watch_wait(queue: i32, out: []u32) usize {
    var events: [64]std.c.Kevent = undefined;
    const max: c_int = @intCast(@min(out.len, events.len));
    const rc = ret(std.c.kevent(queue, &events, 0, &events, max, null));
    if (rc >= std.math.maxInt(i32)) return rc;
    for (events[0..rc], 0..) |event, i| out[i] = @intCast(event.udata);
    return rc;
}

/// In a child forked from a multithreaded host: the raw sigaction, since libthr's wrapper
/// takes a per-signal lock another thread may have held at the fork (libthr's own fork takes
/// them all first; pdfork does not).
pub fn child_sigaction(sig: u32, ignore: bool) usize {
    var act = std.mem.zeroes(std.c.Sigaction);
    act.handler = .{ .handler = if (ignore) std.c.SIG.IGN else std.c.SIG.DFL };
    return ret(syscall(SYS_sigaction, @as(c_int, @intCast(sig)), &act, @as(?*std.c.Sigaction, null)));
}

/// In such a child: the raw sigprocmask, emptied.
pub fn child_unmask() void {
    const empty = std.mem.zeroes(std.c.sigset_t);
    _ = syscall(SYS_sigprocmask, SIG_SETMASK, &empty, @as(?*std.c.sigset_t, null));
}
