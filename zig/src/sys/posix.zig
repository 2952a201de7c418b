//! macOS and FreeBSD: the calls common/ and the portable helper need, over libc (these targets
//! link libSystem and FreeBSD's libc; the kernels' system-call numbers are not a stable
//! interface on macOS). Also Linux linked with glibc (`zig build -Dlibc-posix=true`), so that
//! the portable helper runs and is tested here. Same names and convention as linux.zig: the
//! result as `usize`, a failure as `-errno` in this OS's numbering. The per-OS waits on a word
//! and shared memory objects are in darwin.zig, freebsd.zig and linux_libc.zig.

const std = @import("std");
const builtin = @import("builtin");
const os_impl = switch (builtin.os.tag) {
    .macos => @import("darwin.zig"),
    .freebsd => @import("freebsd.zig"),
    .linux => @import("linux_libc.zig"),
    else => @compileError("posix.zig is for macOS, FreeBSD, and Linux with libc"),
};
const os_tag = builtin.os.tag;
/// The ABI's numbers are Linux's: errnos, signals, open flags and rlimit resources are
/// translated here (identity on Linux).
pub const abi_numbers = @import("abi_numbers.zig");

/// The positive errno of a raw return value, or 0 on success.
pub fn errno(rc: usize) i32 {
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @intCast(-signed);
    return 0;
}

pub fn int(rc: usize) i32 {
    return @truncate(@as(isize, @bitCast(rc)));
}

/// A libc result (-1 and `errno` on failure) in this file's convention, the errno Linux's.
fn ret(rc: isize) usize {
    if (rc == -1) return fail(std.c._errno().*);
    return @bitCast(rc);
}

/// -errno, Linux's, of the native `errno`.
fn fail(native: i32) usize {
    return @bitCast(-@as(isize, abi_numbers.errno_to_abi(native)));
}

/// A result of darwin.zig or freebsd.zig (-errno, native) with Linux's errno.
fn native_rc(rc: usize) usize {
    const native = errno(rc);
    return if (native == 0) rc else fail(native);
}

/// The ABI's (Linux's) errnos, on every system.
fn e(comptime tag: std.os.linux.E) i32 {
    return @intFromEnum(tag);
}

pub const E = struct {
    pub const PERM = e(.PERM);
    pub const NOENT = e(.NOENT);
    pub const SRCH = e(.SRCH);
    pub const INTR = e(.INTR);
    pub const IO = e(.IO);
    pub const NOEXEC = e(.NOEXEC);
    pub const BADF = e(.BADF);
    pub const CHILD = e(.CHILD);
    pub const AGAIN = e(.AGAIN);
    pub const NOMEM = e(.NOMEM);
    pub const ACCES = e(.ACCES);
    pub const FAULT = e(.FAULT);
    pub const NOTDIR = e(.NOTDIR);
    pub const INVAL = e(.INVAL);
    pub const MFILE = e(.MFILE);
    pub const NAMETOOLONG = e(.NAMETOOLONG);
    pub const NOSYS = e(.NOSYS);
    pub const LOOP = e(.LOOP);
    pub const NODEV = e(.NODEV);
    pub const TOOBIG = e(.@"2BIG");
    pub const BUSY = e(.BUSY);
    pub const PROTO = e(.PROTO);
    pub const CONNRESET = e(.CONNRESET);
    pub const PIPE = e(.PIPE);
    pub const STALE = e(.STALE);
    pub const TIMEDOUT = e(.TIMEDOUT);
};

pub const O = struct {
    pub const RDONLY = 0;
    pub const WRONLY = 1;
    pub const RDWR = 2;
    pub const NONBLOCK: u32 = if (os_tag == .linux) 0o4000 else 0x4;
    pub const CLOEXEC: u32 = switch (os_tag) {
        .macos => 0x1000000,
        .linux => 0o2000000,
        else => 0x100000,
    };
};
pub const O_DIRECTORY: u32 = switch (os_tag) {
    .macos => 0x100000,
    .linux => 0o200000,
    else => 0x20000,
};

pub const F = struct {
    pub const GETFD = 1;
    pub const SETFD = 2;
    pub const GETFL = 3;
    pub const SETFL = 4;
    pub const DUPFD_CLOEXEC = switch (os_tag) {
        .macos => 67,
        .linux => 1030,
        else => 17,
    };
};
pub const FD_CLOEXEC = 1;

/// Signal numbers: `max` counts in the ABI's (Linux's) numbering, as the ignored-signal masks
/// do; the others are native, for the helper and its children.
pub const SIG = struct {
    pub const KILL = 9;
    pub const STOP = if (os_tag == .linux) 19 else 17;
    pub const CHLD = if (os_tag == .linux) 17 else 20;
    pub const DFL: usize = 0;
    pub const IGN: usize = 1;
    /// The ABI's highest signal (Linux's 64: the masks hold 64 bits).
    pub const max = 64;
    /// This system's highest: 31 on macOS (`NSIG - 1`), 128 on FreeBSD (real-time ones).
    pub const native_max = switch (os_tag) {
        .macos => 31,
        .freebsd => 128,
        else => 64,
    };
};

pub const POLLIN: i16 = 1;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const PollFd = extern struct { fd: i32, events: i16, revents: i16 };

/// `struct rlimit` (64-bit values on every target here). `rlimit_count` bounds the resources
/// compared and sent to the helper; numbers this OS does not have fail with EINVAL and read
/// as zeros, so they never differ.
pub const Rlimit = extern struct { cur: u64, max: u64 };
pub const rlimit_count = 16;
pub const RLIMIT_NOFILE = if (os_tag == .macos) 8 else 7;
/// Linux's CPU mask, kept as a type so that common/'s state compiles; no affinity is read or
/// applied through this file.
pub const CpuMask = [16]u64;

const c = struct {
    extern "c" fn read(fd: c_int, buf: [*]u8, len: usize) isize;
    extern "c" fn write(fd: c_int, buf: [*]const u8, len: usize) isize;
    extern "c" fn close(fd: c_int) c_int;
    extern "c" fn pipe(fds: *[2]c_int) c_int;
    extern "c" fn fcntl(fd: c_int, cmd: c_int, ...) c_int;
    extern "c" fn poll(fds: [*]PollFd, count: c_uint, timeout_ms: c_int) c_int;
    extern "c" fn kill(pid: c_int, sig: c_int) c_int;
    extern "c" fn getpid() c_int;
    extern "c" fn sched_yield() c_int;
    extern "c" fn mmap(addr: ?*anyopaque, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) isize;
    extern "c" fn munmap(addr: usize, len: usize) c_int;
    extern "c" fn mprotect(addr: usize, len: usize, prot: c_int) c_int;
    extern "c" fn ftruncate(fd: c_int, len: i64) c_int;
    extern "c" fn sigaction(sig: c_int, act: ?*const Sigaction, old: ?*Sigaction) c_int;
};

pub fn read(fd: i32, buf: [*]u8, len: usize) usize {
    return ret(c.read(fd, buf, len));
}
pub fn write(fd: i32, buf: [*]const u8, len: usize) usize {
    return ret(c.write(fd, buf, len));
}

pub fn close(fd: i32) usize {
    return ret(c.close(fd));
}

pub fn fcntl(fd: i32, cmd: i32, arg: usize) usize {
    return ret(c.fcntl(fd, cmd, arg));
}

/// pipe2: macOS has none (FreeBSD has, but one path serves both). Not atomic with respect to
/// a fork in another thread, which is why the library never forks with these descriptors
/// open in a child that execs without its own close-on-exec pass.
pub fn pipe2(fds: *[2]i32, flags: u32) usize {
    const rc = ret(c.pipe(fds));
    if (errno(rc) != 0) return rc;
    for (fds) |fd| {
        if (flags & O.CLOEXEC != 0) _ = c.fcntl(fd, F.SETFD, @as(c_int, FD_CLOEXEC));
        if (flags & O.NONBLOCK != 0) _ = c.fcntl(fd, F.SETFL, @as(c_int, @intCast(O.NONBLOCK)));
    }
    return 0;
}

pub const Stat = std.c.Stat;
pub fn fstat(fd: i32, out: *Stat) usize {
    // std.c picks the 64-bit-inode symbol (fstat$INODE64) on x86_64 macOS.
    return ret(std.c.fstat(fd, out));
}
pub fn is_fifo(mode: anytype) bool {
    return (@as(u32, @intCast(mode)) & 0o170000) == 0o010000;
}

pub fn poll(fds: [*]PollFd, count: u32, timeout_ms: i32) usize {
    return interrupted(ret(c.poll(fds, count, timeout_ms)));
}

/// A blocking call that failed with EAGAIN reports EINTR: a host's signal handler that does
/// not restore `errno` (seen under a storm of signals at Deno) can leave EAGAIN where the call
/// was interrupted, and EAGAIN from poll or a blocking socket means "try again" anyway.
fn interrupted(rc: usize) usize {
    return if (errno(rc) == E.AGAIN) @bitCast(-@as(isize, E.INTR)) else rc;
}

/// Sends the ABI's (Linux's) signal `sig`; EINVAL for one this system lacks.
pub fn kill(pid: i32, sig: i32) usize {
    const native = abi_numbers.signal_to_native(@intCast(sig));
    if (sig != 0 and native == 0) return @bitCast(-@as(isize, E.INVAL));
    return ret(c.kill(pid, @intCast(native)));
}

/// Process descriptors and pidfds are not how the library signals here (yet): ENOSYS, so that
/// common/'s `signal` falls back to the pid path it already has.
pub fn pidfd_send_signal(pidfd: i32, sig: i32, flags: u32) usize {
    _ = .{ pidfd, sig, flags };
    return @bitCast(-@as(isize, E.NOSYS));
}
pub const PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2;

pub fn getpid() i32 {
    return c.getpid();
}

/// The calling thread's id, and whether thread `id` has ended for certain (false when the
/// system cannot say): per OS.
pub const thread_id = os_impl.thread_id;
pub const thread_gone = os_impl.thread_gone;

pub fn sched_yield() usize {
    return ret(c.sched_yield());
}

pub const PROT_READ = 1;
pub const PROT_WRITE = 2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANON = if (os_tag == .linux) 0x20 else 0x1000;

fn map(len: usize, prot: u32, flags: c_int, fd: i32) usize {
    const rc = c.mmap(null, len, @intCast(prot), flags, fd, 0);
    if (rc == -1) return @bitCast(-@as(isize, std.c._errno().*));
    return @bitCast(rc);
}
pub fn mmap(len: usize, prot: u32) usize {
    return map(len, prot, MAP_PRIVATE | MAP_ANON, -1);
}
pub fn mmap_anon_shared(len: usize) usize {
    return map(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANON, -1);
}
pub fn mmap_shared(fd: i32, len: usize) usize {
    return map(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
}
pub fn munmap(addr: usize, len: usize) usize {
    return ret(c.munmap(addr, len));
}
pub fn mprotect(addr: usize, len: usize, prot: u32) usize {
    return ret(c.mprotect(addr, len, @intCast(prot)));
}
pub fn ftruncate(fd: i32, len: u64) usize {
    return ret(c.ftruncate(fd, @intCast(len)));
}

/// The region's memory object: macOS and FreeBSD have no memfd with one call on every
/// supported release, so the OS file makes an anonymous shared object (see darwin.zig and
/// freebsd.zig). The name is ignored; `flags` takes MFD_CLOEXEC.
pub const MFD_CLOEXEC = 1;
pub fn memfd_create(name: [*:0]const u8, flags: u32) usize {
    _ = name;
    const rc = native_rc(os_impl.anonymous_shm());
    if (errno(rc) == 0 and flags & MFD_CLOEXEC != 0) _ = c.fcntl(int(rc), F.SETFD, @as(c_int, FD_CLOEXEC));
    return rc;
}

/// `struct sigaction` as the handler query in io.zig reads it: the handler comes first on every
/// system here; the rest differs (16 bytes on macOS, 32 on FreeBSD, 152 with glibc) and is only
/// read back, never built.
pub const KSigaction = extern struct {
    handler: usize,
    rest: [160]u8,
};
const Sigaction = KSigaction;
/// The disposition of the ABI's (Linux's) signal `sig`; EINVAL for one this system lacks.
pub fn rt_sigaction(sig: u32, act: ?*const KSigaction, old: ?*KSigaction) usize {
    const native = abi_numbers.signal_to_native(sig);
    if (native == 0) return @bitCast(-@as(isize, E.INVAL));
    return ret(c.sigaction(@intCast(native), act, old));
}

/// Whether the region's words are waited on across processes (the helper) or in this one.
pub var futex_shared: bool = false;

/// Waits while `*word == expected`, at most `timeout_ms` (negative: forever). ETIMEDOUT on
/// timeout, as on Linux, so common/ reads the result the same way.
pub fn futex_wait(word: *const u32, expected: u32, timeout_ms: i32) usize {
    return native_rc(os_impl.wait_on_word(word, expected, timeout_ms, futex_shared));
}
pub fn futex_wake(word: *const u32, count: u32) usize {
    return native_rc(os_impl.wake_word(word, count, futex_shared));
}

pub const Timespec = extern struct { sec: i64, nsec: i64 };
extern "c" fn clock_gettime(clock: c_int, ts: *Timespec) c_int;
const CLOCK_MONOTONIC = switch (os_tag) {
    .macos => 6,
    .linux => 1,
    else => 4,
};

pub fn clock_monotonic_ns() u64 {
    var ts: Timespec = undefined;
    // Cannot fail: a valid clock id and a valid pointer.
    _ = clock_gettime(CLOCK_MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

// ---------------------------------------------------------------------------------------------
// The portable helper: its launch, its socket, and the set-up of its fork()ed children. The
// helper is single-threaded, so its children may call anything between fork and exec.

const lc = struct {
    extern "c" fn open(path: [*:0]const u8, flags: c_int, ...) c_int;
    extern "c" fn dup2(old: c_int, new: c_int) c_int;
    extern "c" fn chdir(path: [*:0]const u8) c_int;
    extern "c" fn fchdir(fd: c_int) c_int;
    extern "c" fn umask(mask: c_uint) c_uint;
    extern "c" fn setsid() c_int;
    extern "c" fn setpgid(pid: c_int, pgid: c_int) c_int;
    extern "c" fn getppid() c_int;
    extern "c" fn getuid() u32;
    extern "c" fn geteuid() u32;
    extern "c" fn getgid() u32;
    extern "c" fn getegid() u32;
    extern "c" fn setuid(uid: u32) c_int;
    extern "c" fn setgid(gid: u32) c_int;
    extern "c" fn setreuid(r: u32, e: u32) c_int;
    extern "c" fn setregid(r: u32, e: u32) c_int;
    extern "c" fn getgroups(count: c_int, list: [*]u32) c_int;
    extern "c" fn setgroups(count: if (os_tag == .linux) usize else c_int, list: [*]const u32) c_int;
    extern "c" fn getpriority(which: c_int, who: c_uint) c_int;
    extern "c" fn setpriority(which: c_int, who: c_uint, prio: c_int) c_int;
    extern "c" fn getrlimit(resource: c_int, out: *Rlimit) c_int;
    extern "c" fn setrlimit(resource: c_int, value: *const Rlimit) c_int;
    extern "c" fn socketpair(domain: c_int, kind: c_int, protocol: c_int, fds: *[2]c_int) c_int;
    extern "c" fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const anyopaque, len: u32) c_int;
    extern "c" fn sendmsg(fd: c_int, msg: *const std.c.msghdr_const, flags: c_int) isize;
    extern "c" fn recvmsg(fd: c_int, msg: *std.c.msghdr, flags: c_int) isize;
    extern "c" fn fork() c_int;
    extern "c" fn execve(path: [*:0]const u8, argv: [*]const ?[*:0]const u8, envp: [*]const ?[*:0]const u8) c_int;
    extern "c" fn _exit(code: c_int) noreturn;
    extern "c" fn wait4(pid: c_int, status: *c_int, options: c_int, usage: ?*Rusage) c_int;
};

pub fn openat(path: [*:0]const u8, flags: u32, mode: u32) usize {
    return ret(lc.open(path, @bitCast(flags), mode));
}
pub fn dup(old: i32, new: i32) usize {
    return ret(lc.dup2(old, new));
}
pub fn chdir(path: [*:0]const u8) usize {
    return ret(lc.chdir(path));
}
pub fn fchdir(fd: i32) usize {
    return ret(lc.fchdir(fd));
}
pub fn umask(mask: u32) usize {
    return lc.umask(mask);
}
pub fn setsid() usize {
    return ret(lc.setsid());
}
pub fn setpgid(pid: i32, pgid: i32) usize {
    return ret(lc.setpgid(pid, pgid));
}
pub fn getppid() i32 {
    return lc.getppid();
}

/// The real, effective and saved ids. macOS has no getresuid: the saved id reads as the
/// effective one, which is what a setuid to it leaves.
pub fn getresuid(ids: *[3]u32) usize {
    ids.* = .{ lc.getuid(), lc.geteuid(), lc.geteuid() };
    return 0;
}
pub fn getresgid(ids: *[3]u32) usize {
    ids.* = .{ lc.getgid(), lc.getegid(), lc.getegid() };
    return 0;
}
/// Sets the ids as `setresuid` would, with the calls macOS has: `setuid` when the real and
/// effective ids are one (all three, if privileged), else `setreuid`.
pub fn set_uids(ids: [3]u32) usize {
    if (ids[0] == ids[1]) return ret(lc.setuid(ids[1]));
    return ret(lc.setreuid(ids[0], ids[1]));
}
pub fn set_gids(ids: [3]u32) usize {
    if (ids[0] == ids[1]) return ret(lc.setgid(ids[1]));
    return ret(lc.setregid(ids[0], ids[1]));
}
pub fn getgroups(list: []u32) usize {
    return ret(lc.getgroups(@intCast(list.len), list.ptr));
}
pub fn setgroups(list: []const u32) usize {
    return ret(lc.setgroups(@intCast(list.len), list.ptr));
}

/// Linux's raw convention (20 - nice), as linux.zig's `getpriority` returns it.
pub fn getpriority() usize {
    std.c._errno().* = 0;
    const nice = lc.getpriority(0, 0);
    if (nice == -1 and std.c._errno().* != 0) return ret(-1);
    return @intCast(20 - nice);
}
pub fn setpriority(nice: i32) usize {
    return ret(lc.setpriority(0, 0, nice));
}
pub fn sched_getaffinity(mask: *CpuMask) usize {
    _ = mask;
    return @bitCast(-@as(isize, E.NOSYS));
}

/// `prlimit` on ourselves (`pid` 0): getrlimit and setrlimit. A resource this OS lacks reads
/// as zeros (and EINVAL), so two snapshots never differ there.
pub fn prlimit(pid: i32, resource: u32, new: ?*const Rlimit, old: ?*Rlimit) usize {
    std.debug.assert(pid == 0);
    if (old) |out| {
        if (lc.getrlimit(@intCast(resource), out) != 0) {
            out.* = .{ .cur = 0, .max = 0 };
            return ret(-1);
        }
    }
    if (new) |value| return ret(lc.setrlimit(@intCast(resource), value));
    return 0;
}

/// `struct timeval` and `struct rusage`: the same 144 bytes on every 64-bit target here (macOS's
/// `tv_usec` is an int, padded).
pub const Timeval = extern struct { sec: i64, usec: if (os_tag == .macos) i32 else i64 };
pub const Rusage = extern struct {
    utime: Timeval,
    stime: Timeval,
    maxrss: c_long,
    rest: [13]c_long,
};
comptime {
    std.debug.assert(@sizeOf(Rusage) == 144);
}
/// `ru_maxrss` in KiB: macOS counts bytes, Linux and FreeBSD KiB.
pub fn maxrss_kib(usage: *const Rusage) u64 {
    const value: u64 = @intCast(@max(usage.maxrss, 0));
    return if (os_tag == .macos) value / 1024 else value;
}
pub const WNOHANG = 1;

/// wait4: the pid reaped (0 with WNOHANG and nothing to reap), or -errno.
pub fn wait_pid(pid: i32, status: *i32, options: u32, usage: ?*Rusage) usize {
    return interrupted(ret(lc.wait4(pid, status, @intCast(options), usage)));
}
pub fn fork_process() usize {
    return ret(lc.fork());
}
pub fn execve_path(path: [*:0]const u8, argv: [*]const ?[*:0]const u8, envp: [*]const ?[*:0]const u8) usize {
    return ret(lc.execve(path, argv, envp));
}
pub fn exit(code: u8) noreturn {
    lc._exit(code);
}
/// One process: the helper is single-threaded.
pub const exit_group = exit;

/// Installs `handler` for `sig` (SA_RESTART not set: poll returns EINTR), or the default.
pub fn set_handler(sig: u8, handler: ?*const fn (i32) callconv(.c) void) void {
    var act = std.mem.zeroes(std.posix.Sigaction);
    act.handler = .{ .handler = if (handler) |h| h else std.posix.SIG.DFL };
    act.mask = std.posix.sigemptyset();
    std.posix.sigaction(sig, &act, null);
}
/// The signal mask emptied (`empty` true) or filled; `old` gets the previous one if given.
pub fn mask_signals(empty: bool, old: ?*std.posix.sigset_t) void {
    const set = if (empty) std.posix.sigemptyset() else std.posix.sigfillset();
    std.posix.sigprocmask(std.posix.SIG.SETMASK, &set, old);
}
pub fn restore_signals(old: *const std.posix.sigset_t) void {
    std.posix.sigprocmask(std.posix.SIG.SETMASK, old, null);
}
pub const SigSet = std.posix.sigset_t;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOL_SOCKET = if (os_tag == .linux) 1 else 0xffff;
const SCM_RIGHTS = 1;
const SO_NOSIGPIPE = 0x1022;
/// Linux and FreeBSD refuse SIGPIPE per call; macOS per socket (SO_NOSIGPIPE).
const MSG_NOSIGNAL: c_int = switch (os_tag) {
    .linux => 0x4000,
    .freebsd => 0x20000,
    else => 0,
};

/// A connected pair of stream sockets, close-on-exec; writing to one whose peer is gone is
/// EPIPE, never SIGPIPE.
pub fn socketpair_stream(fds: *[2]i32) usize {
    const rc = ret(lc.socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
    if (errno(rc) != 0) return rc;
    for (fds) |fd| {
        _ = c.fcntl(fd, F.SETFD, @as(c_int, FD_CLOEXEC));
        if (os_tag == .macos) {
            const on: c_int = 1;
            // Cannot fail on a valid AF_UNIX socket.
            _ = lc.setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, @sizeOf(c_int));
        }
    }
    return 0;
}

/// The most descriptors one message carries (Linux's SCM_MAX_FD; the BSDs allow more).
pub const scm_max_fd = 253;
/// `struct cmsghdr` before its data: 16 bytes on Linux and FreeBSD (aligned to 8), 12 on macOS.
const cmsg_header = if (os_tag == .macos) 12 else 16;
/// CMSG_SPACE's alignment: 4 bytes on macOS, 8 on Linux and FreeBSD.
const cmsg_align = if (os_tag == .macos) 4 else 8;
const FdControl = extern struct {
    bytes: [cmsg_header + 4 * (scm_max_fd + 1)]u8 align(8),
};

/// `data` whole, with `fds` (SCM_RIGHTS) on its first byte, over a stream socket: a short
/// send is finished without descriptors. Returns `data.len`, or -errno of the first failure
/// (EPIPE once the peer is gone).
pub fn send_with_fds(sock: i32, data: []const u8, fds: []const i32) usize {
    std.debug.assert(fds.len <= scm_max_fd);
    var control: FdControl = undefined;
    var sent: usize = 0;
    while (sent < data.len) {
        var iov = [1]std.posix.iovec_const{.{ .base = data.ptr + sent, .len = data.len - sent }};
        var msg = std.mem.zeroes(std.c.msghdr_const);
        msg.iov = &iov;
        msg.iovlen = 1;
        if (sent == 0 and fds.len > 0) {
            const len = cmsg_header + 4 * fds.len;
            @memset(control.bytes[0..cmsg_header], 0);
            // cmsg_len is a size_t on Linux, a socklen_t on the BSDs: little-endian either way.
            std.mem.writeInt(u32, control.bytes[0..4], @intCast(len), .little);
            std.mem.writeInt(i32, control.bytes[if (os_tag == .linux) 8 else 4..][0..4], SOL_SOCKET, .little);
            std.mem.writeInt(i32, control.bytes[if (os_tag == .linux) 12 else 8..][0..4], SCM_RIGHTS, .little);
            @memcpy(std.mem.bytesAsSlice(i32, control.bytes[cmsg_header..][0 .. 4 * fds.len]), fds);
            msg.control = &control;
            msg.controllen = @intCast(std.mem.alignForward(usize, len, cmsg_align));
        }
        const rc = lc.sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (rc < 0) {
            const e_now = errno(interrupted(ret(-1)));
            // Interrupted: nothing went, try again.
            if (e_now == E.INTR) continue;
            return @bitCast(-@as(isize, e_now));
        }
        sent += @intCast(rc);
    }
    return data.len;
}

/// Exactly `data.len` bytes (the messages are fixed-size), the descriptors that came with them
/// into `fds` (close-on-exec), their count into `fd_count`. Returns `data.len`, 0 at EOF before
/// the first byte, -EPROTO at EOF inside a message, or -errno of the first read (-EINTR
/// only before the first byte: once a message has begun it is read to its end).
pub fn recv_with_fds(sock: i32, data: []u8, fds: *[scm_max_fd]i32, fd_count: *usize) usize {
    var control: FdControl = undefined;
    var received: usize = 0;
    fd_count.* = 0;
    while (received < data.len) {
        var iov = [1]std.posix.iovec{.{ .base = data.ptr + received, .len = data.len - received }};
        var msg = std.mem.zeroes(std.c.msghdr);
        msg.iov = &iov;
        msg.iovlen = 1;
        msg.control = &control;
        msg.controllen = @sizeOf(FdControl);
        const rc = lc.recvmsg(sock, &msg, msg_cmsg_cloexec);
        if (rc < 0) {
            const e_now = errno(interrupted(ret(-1)));
            if (received > 0 and e_now == E.INTR) continue;
            return @bitCast(-@as(isize, e_now));
        }
        if (rc == 0) return if (received == 0) 0 else @bitCast(-@as(isize, E.PROTO));
        take_fds(&control, msg.controllen, fds, fd_count);
        received += @intCast(rc);
    }
    return data.len;
}
const msg_cmsg_cloexec: c_int = switch (os_tag) {
    .linux => 0x40000000,
    .freebsd => 0x40000,
    else => 0,
};

fn take_fds(control: *const FdControl, controllen: usize, fds: *[scm_max_fd]i32, fd_count: *usize) void {
    if (controllen < cmsg_header) return;
    const level = std.mem.readInt(i32, control.bytes[if (os_tag == .linux) 8 else 4..][0..4], .little);
    const kind = std.mem.readInt(i32, control.bytes[if (os_tag == .linux) 12 else 8..][0..4], .little);
    const len = std.mem.readInt(u32, control.bytes[0..4], .little);
    if (level != SOL_SOCKET or kind != SCM_RIGHTS or len < cmsg_header) return;
    const count = @min((len - cmsg_header) / 4, scm_max_fd - fd_count.*);
    for (0..count) |i| {
        const fd = std.mem.readInt(i32, control.bytes[cmsg_header + 4 * i ..][0..4], .little);
        // macOS has no MSG_CMSG_CLOEXEC: set it now (the helper is single-threaded, and a host
        // spawns only through the helper, so no exec can come between).
        if (os_tag == .macos) _ = c.fcntl(fd, F.SETFD, @as(c_int, FD_CLOEXEC));
        fds[fd_count.* + i] = fd;
    }
    fd_count.* += count;
}

const SpawnBuffer = extern struct { bytes: [512]u8 align(16) };
extern "c" fn posix_spawn(pid: *c_int, path: [*:0]const u8, actions: *const SpawnBuffer, attr: *const SpawnBuffer, argv: [*]const ?[*:0]const u8, envp: [*]const ?[*:0]const u8) c_int;
extern "c" fn posix_spawn_file_actions_init(actions: *SpawnBuffer) c_int;
extern "c" fn posix_spawn_file_actions_destroy(actions: *SpawnBuffer) c_int;
extern "c" fn posix_spawn_file_actions_adddup2(actions: *SpawnBuffer, fd: c_int, target: c_int) c_int;
extern "c" fn posix_spawnattr_init(attr: *SpawnBuffer) c_int;
extern "c" fn posix_spawnattr_destroy(attr: *SpawnBuffer) c_int;
extern "c" fn posix_spawnattr_setflags(attr: *SpawnBuffer, flags: c_short) c_int;
extern "c" fn posix_spawnattr_setsigmask(attr: *SpawnBuffer, set: *const SigSet) c_int;
extern "c" fn posix_spawnattr_setsigdefault(attr: *SpawnBuffer, set: *const SigSet) c_int;
const POSIX_SPAWN_SETSIGDEF: c_short = if (os_tag == .freebsd) 0x10 else 0x04;
const POSIX_SPAWN_SETSIGMASK: c_short = if (os_tag == .freebsd) 0x20 else 0x08;
/// macOS: the child inherits only the descriptors the file actions name.
const POSIX_SPAWN_CLOEXEC_DEFAULT: c_short = 0x4000;

/// posix_spawn of `path` with `fd` as its descriptor 3 (and nothing else above stdio on
/// macOS), every signal at its default, an empty mask and an empty environment. The pid, or
/// -errno. Never fork(): the host is multithreaded.
pub fn spawn_with_fd3(path: [*:0]const u8, argv: [*]const ?[*:0]const u8, fd: i32) usize {
    // dup2 onto itself would keep close-on-exec: the caller passes a descriptor other than 3.
    std.debug.assert(fd != 3);
    var actions: SpawnBuffer = undefined;
    var attr: SpawnBuffer = undefined;
    var rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return fail(rc);
    defer _ = posix_spawn_file_actions_destroy(&actions);
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) return fail(rc);
    defer _ = posix_spawnattr_destroy(&attr);
    rc = posix_spawn_file_actions_adddup2(&actions, fd, 3);
    if (rc != 0) return fail(rc);
    var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (os_tag == .macos) flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
    // Cannot fail: valid flags and sets.
    _ = posix_spawnattr_setflags(&attr, flags);
    const all = std.posix.sigfillset();
    const none = std.posix.sigemptyset();
    _ = posix_spawnattr_setsigdefault(&attr, &all);
    _ = posix_spawnattr_setsigmask(&attr, &none);
    const envp = [_]?[*:0]const u8{null};
    var pid: c_int = 0;
    rc = posix_spawn(&pid, path, &actions, &attr, argv, &envp);
    if (rc != 0) return fail(rc);
    return @intCast(pid);
}

/// Sets `sig`'s disposition to the default, or to ignore; -errno for a signal that has none
/// to set (SIGKILL, SIGSTOP, numbers libc keeps for itself).
pub fn set_disposition(sig: u32, ignore: bool) usize {
    // glibc refuses its own two (32, 33) though a host may have them ignored, and an ignored
    // signal stays ignored across exec: the raw call resets them too.
    if (os_tag == .linux) return raw_rt_sigaction(sig, if (ignore) SIG.IGN else SIG.DFL);
    // FreeBSD: past libthr's wrapper, which a child forked by `proc_fork` must not call.
    if (os_tag == .freebsd) return native_rc(os_impl.child_sigaction(sig, ignore));
    var act = std.mem.zeroes(std.posix.Sigaction);
    act.handler = .{ .handler = if (ignore) std.posix.SIG.IGN else std.posix.SIG.DFL };
    act.mask = std.posix.sigemptyset();
    return ret(std.posix.system.sigaction(@intCast(sig), &act, null));
}

/// Linux's rt_sigaction with SIG_DFL or SIG_IGN (no restorer needed for those).
fn raw_rt_sigaction(sig: u32, handler: usize) usize {
    const KernelSigaction = extern struct { handler: usize, flags: u64, restorer: usize, mask: u64 };
    const act = KernelSigaction{ .handler = handler, .flags = 0, .restorer = 0, .mask = 0 };
    const rc = std.os.linux.syscall4(.rt_sigaction, sig, @intFromPtr(&act), 0, 8);
    const code = @intFromEnum(std.os.linux.E.init(rc));
    return if (code == 0) 0 else @bitCast(-@as(isize, code));
}

const tty = struct {
    extern "c" fn ioctl(fd: c_int, request: c_ulong, ...) c_int;
    extern "c" fn posix_openpt(flags: c_int) c_int;
    extern "c" fn grantpt(fd: c_int) c_int;
    extern "c" fn unlockpt(fd: c_int) c_int;
    extern "c" fn ptsname_r(fd: c_int, buf: [*]u8, len: usize) c_int;
};
/// O_NOCTTY: Linux's, macOS's, FreeBSD's.
const O_NOCTTY: u32 = switch (os_tag) {
    .linux => 0o400,
    .macos => 0x20000,
    else => 0x8000,
};

/// ioctl with one pointer-sized argument (a request number of this OS).
pub fn ioctl(fd: i32, request: u32, arg: usize) usize {
    return ret(tty.ioctl(fd, request, arg));
}

/// A pseudo-terminal master (posix_openpt, grantpt, unlockpt), close-on-exec, non-blocking
/// when asked; its descriptor or -errno, nothing left open on failure.
pub fn pty_master(nonblocking: bool) usize {
    const opened = ret(tty.posix_openpt(@intCast(O.RDWR | O_NOCTTY)));
    if (errno(opened) != 0) return opened;
    const fd = int(opened);
    var rc = fcntl(fd, F.SETFD, FD_CLOEXEC);
    if (errno(rc) == 0 and nonblocking) rc = fcntl(fd, F.SETFL, O.RDWR | O.NONBLOCK);
    if (errno(rc) == 0) rc = ret(tty.grantpt(fd));
    if (errno(rc) == 0) rc = ret(tty.unlockpt(fd));
    if (errno(rc) == 0) return opened;
    _ = close(fd);
    return rc;
}

/// The master's slave, opened by its name (ptsname_r: glibc, macOS 10.13.4, FreeBSD 13),
/// close-on-exec and never our controlling terminal.
pub fn pty_slave(master: i32) usize {
    var name: [128]u8 = undefined;
    const rc = tty.ptsname_r(master, &name, name.len);
    // ptsname_r returns the errno itself (glibc, FreeBSD) or -1 with errno (macOS).
    if (rc != 0) return fail(if (rc == -1) std.c._errno().* else rc);
    const path: [*:0]const u8 = @ptrCast(&name);
    return openat(path, O.RDWR | O_NOCTTY | O.CLOEXEC, 0);
}

extern "c" fn closefrom(first: c_int) void;
extern "c" fn close_range(first: c_uint, last: c_uint, flags: c_int) c_int;
/// CLOSE_RANGE_CLOEXEC: the same bit on Linux (5.11+) and FreeBSD (13.1+).
const CLOSE_RANGE_CLOEXEC = 1 << 2;

/// Marks every descriptor from `first` up close-on-exec in one call; false where the system
/// cannot (then the caller marks them one by one).
pub fn cloexec_above(first: u32) bool {
    switch (os_tag) {
        .linux => {
            const rc = std.os.linux.syscall3(.close_range, first, std.math.maxInt(u32), CLOSE_RANGE_CLOEXEC);
            return std.os.linux.E.init(rc) == .SUCCESS;
        },
        .freebsd => return close_range(first, std.math.maxInt(c_uint), CLOSE_RANGE_CLOEXEC) == 0,
        else => return false,
    }
}

/// Closes every descriptor from `first` up in one call: close_range (Linux 5.9+), closefrom
/// (FreeBSD); on macOS nothing is left to close after a posix_spawn with
/// POSIX_SPAWN_CLOEXEC_DEFAULT. False where it could not: the caller closes them one by one.
pub fn close_above(first: u32) bool {
    switch (os_tag) {
        .linux => {
            const rc = std.os.linux.syscall3(.close_range, first, std.math.maxInt(u32), 0);
            return std.os.linux.E.init(rc) == .SUCCESS;
        },
        .freebsd => {
            closefrom(@intCast(first));
            return true;
        },
        else => return true,
    }
}

// ---------------------------------------------------------------------------------------------
// Process descriptors: the `pdfork` backend (FreeBSD; on Linux its stand-ins, decision 0014).

/// Whether this build has the `pdfork` backend.
pub const has_proc_fork = os_tag == .freebsd or os_tag == .linux;

/// Forks with a descriptor of the child (pdfork(2); fork and pidfd_open on Linux): the pid and
/// `fd.*` in the parent, 0 in the child, or -errno.
pub fn proc_fork(fd: *i32) usize {
    return native_rc(os_impl.proc_fork(fd));
}
/// Signals the process a descriptor of `proc_fork` names (pdkill(2), pidfd_send_signal).
pub fn proc_signal(fd: i32, sig: i32) usize {
    const native = abi_numbers.signal_to_native(@intCast(sig));
    if (sig != 0 and native == 0) return @bitCast(-@as(isize, E.INVAL));
    return native_rc(os_impl.proc_signal(fd, @intCast(native)));
}
/// In the child: `sig` once the host exits.
pub fn parent_death_signal(sig: i32) usize {
    const native = abi_numbers.signal_to_native(@intCast(sig));
    if (native == 0) return @bitCast(-@as(isize, E.INVAL));
    return native_rc(os_impl.parent_death_signal(@intCast(native)));
}
/// A queue that reports the exits of `proc_fork` descriptors (kqueue; epoll on Linux).
pub fn watch_open() usize {
    return native_rc(os_impl.watch_open());
}
/// Reports the exit of `fd`'s process once, as `index`.
pub fn watch_add(queue: i32, fd: i32, index: u32) usize {
    return native_rc(os_impl.watch_add(queue, fd, index));
}
/// Blocks for exits; their indices into `out`, the count, or -errno (-EINTR).
pub fn watch_wait(queue: i32, out: []u32) usize {
    return native_rc(os_impl.watch_wait(queue, out));
}
/// In a child forked from a multithreaded host, just before exec: no signal blocked, by the
/// raw call where libc's wrapper is not safe there.
pub fn child_unmask() void {
    if (comptime has_proc_fork) return os_impl.child_unmask();
    mask_signals(true, null);
}
