//! macOS and FreeBSD: the calls common/ needs, over libc (these targets link libSystem and
//! FreeBSD's libc; the kernels' system-call numbers are not a stable interface on macOS).
//! Same names and convention as linux.zig: the result as `usize`, a failure as `-errno` in this
//! OS's numbering. Only what the library uses on these targets is here; the per-OS waits are in
//! darwin.zig and freebsd.zig.

const std = @import("std");
const builtin = @import("builtin");
const os_impl = switch (builtin.os.tag) {
    .macos => @import("darwin.zig"),
    .freebsd => @import("freebsd.zig"),
    else => @compileError("posix.zig is for macOS and FreeBSD"),
};

/// The positive errno of a raw return value, or 0 on success.
pub fn errno(rc: usize) i32 {
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @intCast(-signed);
    return 0;
}

pub fn int(rc: usize) i32 {
    return @truncate(@as(isize, @bitCast(rc)));
}

/// A libc result (-1 and `errno` on failure) in this file's convention.
fn ret(rc: isize) usize {
    if (rc == -1) return @bitCast(-@as(isize, std.c._errno().*));
    return @bitCast(rc);
}

fn e(comptime tag: std.c.E) i32 {
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
    pub const NONBLOCK: u32 = 0x4;
    pub const CLOEXEC: u32 = if (builtin.os.tag == .macos) 0x1000000 else 0x100000;
};

pub const F = struct {
    pub const GETFD = 1;
    pub const SETFD = 2;
    pub const GETFL = 3;
    pub const SETFL = 4;
    pub const DUPFD_CLOEXEC = if (builtin.os.tag == .macos) 67 else 17;
};
pub const FD_CLOEXEC = 1;

pub const SIG = struct {
    pub const KILL = 9;
    pub const TERM = 15;
    pub const DFL: usize = 0;
    pub const IGN: usize = 1;
    /// Highest signal number: 31 on macOS (`NSIG - 1`); FreeBSD's real-time signals go to 128,
    /// but the ABI's mask holds 64.
    pub const max = if (builtin.os.tag == .macos) 31 else 64;
};

pub const POLLIN: i16 = 1;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const PollFd = extern struct { fd: i32, events: i16, revents: i16 };

/// Linux's resource limits and CPU mask, kept as types so that common/'s state compiles; the
/// backends that would apply them are not built on these targets.
pub const Rlimit = extern struct { cur: u64, max: u64 };
pub const rlimit_count = 16;
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
    return ret(c.poll(fds, count, timeout_ms));
}

pub fn kill(pid: i32, sig: i32) usize {
    return ret(c.kill(pid, sig));
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

pub fn sched_yield() usize {
    return ret(c.sched_yield());
}

pub const PROT_READ = 1;
pub const PROT_WRITE = 2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANON = 0x1000;

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
    const rc = os_impl.anonymous_shm();
    if (errno(rc) == 0 and flags & MFD_CLOEXEC != 0) _ = c.fcntl(int(rc), F.SETFD, @as(c_int, FD_CLOEXEC));
    return rc;
}

/// `struct sigaction` as the handler query in io.zig reads it: the handler comes first on both
/// systems; the rest differs and is only read back, never built.
pub const KSigaction = extern struct {
    handler: usize,
    rest: [24]u8,
};
const Sigaction = KSigaction;
pub fn rt_sigaction(sig: u32, act: ?*const KSigaction, old: ?*KSigaction) usize {
    return ret(c.sigaction(@intCast(sig), act, old));
}

/// Whether the region's words are waited on across processes (the helper) or in this one.
pub var futex_shared: bool = false;

/// Waits while `*word == expected`, at most `timeout_ms` (negative: forever). ETIMEDOUT on
/// timeout, as on Linux, so common/ reads the result the same way.
pub fn futex_wait(word: *const u32, expected: u32, timeout_ms: i32) usize {
    return os_impl.wait_on_word(word, expected, timeout_ms, futex_shared);
}
pub fn futex_wake(word: *const u32, count: u32) usize {
    return os_impl.wake_word(word, count, futex_shared);
}

pub const Timespec = extern struct { sec: i64, nsec: i64 };
extern "c" fn clock_gettime(clock: c_int, ts: *Timespec) c_int;
const CLOCK_MONOTONIC = if (builtin.os.tag == .macos) 6 else 4;

pub fn clock_monotonic_ns() u64 {
    var ts: Timespec = undefined;
    // Cannot fail: a valid clock id and a valid pointer.
    _ = clock_gettime(CLOCK_MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}
