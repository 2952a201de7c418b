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

/// The calling thread's id, and whether no thread `id` runs in this process any more
/// (tgkill's ESRCH), as in linux.zig.
pub fn thread_id() u64 {
    return @intCast(linux.gettid());
}
pub fn thread_gone(id: u64) bool {
    const rc = raw(linux.syscall3(.tgkill, @intCast(linux.getpid()), @intCast(id), 0));
    return rc == neg(@intFromEnum(linux.E.SRCH));
}

// ---------------------------------------------------------------------------------------------
// The `pdfork` backend's stand-ins, so that its code runs here: fork and a pidfd for pdfork and
// its descriptor, pidfd_send_signal for pdkill, epoll for kqueue's EVFILT_PROCDESC. The
// children are the host's own (SIGCHLD, seen by waitpid(-1)): not private (decision 0014).

extern "c" fn fork() c_int;

/// fork, then pidfd_open (Linux 5.3+) in the parent: the pid, or 0 in the child.
pub fn proc_fork(fd: *i32) usize {
    const pid = fork();
    if (pid == -1) return neg(@intCast(std.c._errno().*));
    if (pid == 0) return 0;
    const opened = raw(linux.syscall2(.pidfd_open, @intCast(pid), 0));
    if (@intFromEnum(linux.E.init(opened)) != 0) {
        // EMFILE, ENOMEM (a zombie keeps its pid, so never ESRCH): kill and reap the child
        // rather than leave one nobody can wait for.
        _ = linux.kill(pid, linux.SIG.KILL);
        var status: u32 = 0;
        while (linux.E.init(linux.waitpid(pid, &status, 0)) == .INTR) {}
        return opened;
    }
    fd.* = @intCast(opened);
    return @intCast(pid);
}

pub fn proc_signal(fd: i32, sig: i32) usize {
    return raw(linux.syscall4(.pidfd_send_signal, @intCast(fd), @intCast(sig), 0, 0));
}

/// In the child: `sig` when the thread that forked it exits (PR_SET_PDEATHSIG).
pub fn parent_death_signal(sig: i32) usize {
    return raw(linux.syscall2(.prctl, @intFromEnum(linux.PR.SET_PDEATHSIG), @intCast(sig)));
}

pub fn watch_open() usize {
    return raw(linux.syscall1(.epoll_create1, linux.EPOLL.CLOEXEC));
}

pub fn watch_add(queue: i32, fd: i32, index: u32) usize {
    var event = linux.epoll_event{ .events = linux.EPOLL.IN | linux.EPOLL.ONESHOT, .data = .{ .u32 = index } };
    return raw(linux.syscall4(.epoll_ctl, @intCast(queue), linux.EPOLL.CTL_ADD, @intCast(fd), @intFromPtr(&event)));
}

pub fn watch_wait(queue: i32, out: []u32) usize {
    var events: [64]linux.epoll_event = undefined;
    const max = @min(out.len, events.len);
    const rc = raw(linux.syscall4(.epoll_wait, @intCast(queue), @intFromPtr(&events), max, @bitCast(@as(isize, -1))));
    if (@intFromEnum(linux.E.init(rc)) != 0) return rc;
    for (events[0..rc], 0..) |event, i| out[i] = event.data.u32;
    return rc;
}

/// glibc's fork leaves the child's signal state as the kernel's: the raw calls are safe.
pub fn child_sigaction(sig: u32, ignore: bool) usize {
    const KernelSigaction = extern struct { handler: usize, flags: u64, restorer: usize, mask: u64 };
    const act = KernelSigaction{ .handler = if (ignore) 1 else 0, .flags = 0, .restorer = 0, .mask = 0 };
    return raw(linux.syscall4(.rt_sigaction, sig, @intFromPtr(&act), 0, 8));
}

pub fn child_unmask() void {
    const empty: u64 = 0;
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&empty), 0, 8);
}
