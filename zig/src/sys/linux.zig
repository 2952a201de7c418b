//! Raw Linux syscalls: one thin function per call, returning the kernel's raw `usize`
//! (decode with `errno`). Nothing here allocates, uses TLS or touches libc, because the
//! reaper and the vfork child run this code on stacks and in processes libc knows nothing of.

const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;

pub const SYS = linux.SYS;
const sc0 = linux.syscall0;
const sc1 = linux.syscall1;
const sc2 = linux.syscall2;
const sc3 = linux.syscall3;
const sc4 = linux.syscall4;
const sc5 = linux.syscall5;

/// The positive errno of a raw return value, or 0 on success.
pub fn errno(rc: usize) i32 {
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @intCast(-signed);
    return 0;
}

pub fn int(rc: usize) i32 {
    return @truncate(@as(isize, @bitCast(rc)));
}

fn u(v: i32) usize {
    return @bitCast(@as(isize, v));
}

pub const E = struct {
    pub const PERM = 1;
    pub const NOENT = 2;
    pub const SRCH = 3;
    pub const INTR = 4;
    pub const IO = 5;
    pub const NOEXEC = 8;
    pub const BADF = 9;
    pub const CHILD = 10;
    pub const AGAIN = 11;
    pub const NOMEM = 12;
    pub const ACCES = 13;
    pub const FAULT = 14;
    pub const NOTDIR = 20;
    pub const INVAL = 22;
    pub const MFILE = 24;
    pub const NAMETOOLONG = 36;
    pub const NOSYS = 38;
    pub const LOOP = 40;
    pub const NODEV = 19;
    pub const TOOBIG = 7;
    pub const BUSY = 16;
    pub const PROTO = 71;
    pub const CONNRESET = 104;
    pub const PIPE = 32;
    pub const STALE = 116;
    pub const TIMEDOUT = 110;
    pub const EXIST = 17;
    pub const NOTEMPTY = 39;
    pub const OPNOTSUPP = 95;
    pub const ROFS = 30;
    pub const NOSPC = 28;
};

pub const O = struct {
    pub const RDONLY = 0;
    pub const WRONLY = 1;
    pub const RDWR = 2;
    pub const NONBLOCK = 0o4000;
    pub const CLOEXEC = 0o2000000;
};

pub const F = struct {
    pub const DUPFD_CLOEXEC = 1030;
    pub const GETFD = 1;
    pub const SETFD = 2;
    pub const GETFL = 3;
    pub const SETFL = 4;
    pub const SETPIPE_SZ = 1031;
    pub const GETPIPE_SZ = 1032;
};

pub const CLONE = struct {
    pub const VM = 0x100;
    pub const FS = 0x200;
    pub const FILES = 0x400;
    pub const PIDFD = 0x1000;
    pub const VFORK = 0x4000;
    pub const SYSVSEM = 0x40000;
    /// clone3 only (Linux 5.7+): the child starts in the cgroup `CloneArgs.cgroup` names.
    pub const INTO_CGROUP = 0x200000000;
};

pub const SIG = struct {
    pub const HUP = 1;
    pub const INT = 2;
    pub const KILL = 9;
    pub const TERM = 15;
    pub const CHLD = 17;
    pub const CONT = 18;
    pub const STOP = 19;
    pub const DFL: usize = 0;
    pub const IGN: usize = 1;
    pub const BLOCK = 0;
    pub const UNBLOCK = 1;
    pub const SETMASK = 2;
    /// Highest signal number (`_NSIG - 1`).
    pub const max = 64;
};

pub const P = struct {
    pub const ALL = 0;
    pub const PID = 1;
    pub const PIDFD = 3;
};

pub const W = struct {
    pub const NOHANG = 1;
    pub const EXITED = 4;
    pub const NOWAIT = 0x1000000;
    pub const ALL = 0x40000000;
};

pub const CLD = struct {
    pub const EXITED = 1;
    pub const KILLED = 2;
    pub const DUMPED = 3;
};

/// `siginfo_t` as `waitid` fills it for SIGCHLD (the layout of every 64-bit target).
pub const SigInfo = extern struct {
    signo: i32,
    err: i32,
    code: i32,
    pad0: i32,
    pid: i32,
    uid: u32,
    status: i32,
    rest: [100]u8,
};

pub const Timeval = extern struct { sec: i64, usec: i64 };

pub const Rusage = extern struct {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [13]i64,
};

pub const Rlimit = extern struct { cur: u64, max: u64 };
pub const rlimit_count = 16;

/// `struct epoll_event`: packed (12 bytes, data at 4) on x86_64 only; elsewhere, aarch64
/// included, `data` is naturally aligned (16 bytes, data at 8).
const epoll_packed = builtin.cpu.arch == .x86_64;
pub const EpollEvent = extern struct {
    events: u32,
    data: u64 align(if (epoll_packed) 4 else 8),
};

pub const EPOLLIN = 1;
pub const POLLIN: i16 = 1;
pub const EPOLLONESHOT = 1 << 30;

comptime {
    std.debug.assert(@sizeOf(SigInfo) == 128);
    std.debug.assert(@sizeOf(Rusage) == 144);
    std.debug.assert(@offsetOf(EpollEvent, "data") == if (epoll_packed) 4 else 8);
    std.debug.assert(@sizeOf(EpollEvent) == if (epoll_packed) 12 else 16);
}

/// `struct clone_args` of clone3(2), the first 64 bytes (CLONE_ARGS_SIZE_VER0).
pub const CloneArgs = extern struct {
    flags: u64 = 0,
    pidfd: u64 = 0,
    child_tid: u64 = 0,
    parent_tid: u64 = 0,
    exit_signal: u64 = 0,
    stack: u64 = 0,
    stack_size: u64 = 0,
    tls: u64 = 0,
    set_tid: u64 = 0,
    set_tid_size: u64 = 0,
    /// A descriptor of a cgroup v2 directory, with `CLONE.INTO_CGROUP`.
    cgroup: u64 = 0,
};

/// The size clone3 is given: the first version's (Linux 5.3) unless `cgroup` is used, so an
/// older kernel does not see fields it does not know.
pub const clone_args_size_v0 = 64;
pub const clone_args_size_v2 = 88;

comptime {
    std.debug.assert(@sizeOf(CloneArgs) == clone_args_size_v2);
}

pub fn read(fd: i32, buf: [*]u8, len: usize) usize {
    return sc3(.read, u(fd), @intFromPtr(buf), len);
}
pub fn write(fd: i32, buf: [*]const u8, len: usize) usize {
    return sc3(.write, u(fd), @intFromPtr(buf), len);
}
pub fn close(fd: i32) usize {
    return sc1(.close, u(fd));
}
/// `openat` relative to a directory descriptor.
pub fn openat_in(dir: i32, path: [*:0]const u8, flags: u32, mode: u32) usize {
    return sc4(.openat, u(dir), @intFromPtr(path), flags, mode);
}
pub fn mkdirat(dir: i32, path: [*:0]const u8, mode: u32) usize {
    return sc3(.mkdirat, u(dir), @intFromPtr(path), mode);
}
pub const AT_REMOVEDIR = 0x200;
pub const AT_FDCWD: i32 = -100;
pub fn unlinkat(dir: i32, path: [*:0]const u8, flags: u32) usize {
    return sc3(.unlinkat, u(dir), @intFromPtr(path), flags);
}
pub fn pread(fd: i32, buf: [*]u8, len: usize, offset: u64) usize {
    return sc4(.pread64, u(fd), @intFromPtr(buf), len, offset);
}
pub const EPOLLPRI = 2;
pub fn openat(path: [*:0]const u8, flags: u32, mode: u32) usize {
    const at_fdcwd: i32 = -100;
    return sc4(.openat, u(at_fdcwd), @intFromPtr(path), flags, mode);
}
pub fn pipe2(fds: *[2]i32, flags: u32) usize {
    return sc2(.pipe2, @intFromPtr(fds), flags);
}
pub fn fcntl(fd: i32, cmd: u32, arg: usize) usize {
    return sc3(.fcntl, u(fd), cmd, arg);
}
pub const Stat = linux.Stat;
pub fn fstat(fd: i32, out: *Stat) usize {
    return linux.fstat(fd, out);
}
pub fn is_fifo(mode: u32) bool {
    return mode & linux.S.IFMT == linux.S.IFIFO;
}
pub fn dup3(old: i32, new: i32, flags: u32) usize {
    return sc3(.dup3, u(old), u(new), flags);
}
/// dup2's effect (posix.zig's name): `new` becomes a copy of `old`, without close-on-exec.
pub fn dup(old: i32, new: i32) usize {
    return dup3(old, new, 0);
}
pub fn close_range(first: u32, last: u32, flags: u32) usize {
    return sc3(.close_range, first, last, flags);
}
pub const CLOSE_RANGE_UNSHARE = 1 << 1;
pub const CLOSE_RANGE_CLOEXEC = 1 << 2;
pub fn unshare(flags: u64) usize {
    return sc1(.unshare, flags);
}

pub fn chdir(path: [*:0]const u8) usize {
    return sc1(.chdir, @intFromPtr(path));
}
pub fn execve(path: [*:0]const u8, argv: [*]const ?[*:0]const u8, envp: [*]const ?[*:0]const u8) usize {
    return sc3(.execve, @intFromPtr(path), @intFromPtr(argv), @intFromPtr(envp));
}
pub fn exit(code: u8) noreturn {
    _ = sc1(.exit, code);
    unreachable;
}
pub fn exit_group(code: u8) noreturn {
    _ = sc1(.exit_group, code);
    unreachable;
}
pub fn sched_yield() usize {
    return sc0(.sched_yield);
}
pub fn getpid() i32 {
    return int(sc0(.getpid));
}
/// The calling thread's id (a realm's JavaScript thread, for `listener_open`).
pub fn thread_id() u64 {
    return @intCast(int(sc0(.gettid)));
}
/// True only when no thread `id` runs in this process any more (tgkill's ESRCH); a thread id
/// the kernel gave to a new thread since reads as alive.
pub fn thread_gone(id: u64) bool {
    return errno(sc3(.tgkill, u(getpid()), @intCast(id), 0)) == E.SRCH;
}
pub fn getppid() i32 {
    return int(sc0(.getppid));
}
pub fn setsid() usize {
    return sc0(.setsid);
}
pub fn setpgid(pid: i32, pgid: i32) usize {
    return sc2(.setpgid, u(pid), u(pgid));
}
pub fn umask(mask: u32) usize {
    return sc1(.umask, mask);
}
pub fn setresuid(r: u32, e: u32, s: u32) usize {
    return sc3(.setresuid, r, e, s);
}
pub fn setresgid(r: u32, e: u32, s: u32) usize {
    return sc3(.setresgid, r, e, s);
}
pub fn getresuid(ids: *[3]u32) usize {
    return sc3(.getresuid, @intFromPtr(&ids[0]), @intFromPtr(&ids[1]), @intFromPtr(&ids[2]));
}
pub fn getresgid(ids: *[3]u32) usize {
    return sc3(.getresgid, @intFromPtr(&ids[0]), @intFromPtr(&ids[1]), @intFromPtr(&ids[2]));
}
pub fn getgroups(list: []u32) usize {
    return sc2(.getgroups, list.len, @intFromPtr(list.ptr));
}
pub fn setgroups(list: []const u32) usize {
    return sc2(.setgroups, list.len, @intFromPtr(list.ptr));
}
pub fn getpriority() usize {
    return sc2(.getpriority, 0, 0);
}
pub fn setpriority(nice: i32) usize {
    return sc3(.setpriority, 0, 0, u(nice));
}
/// The calling thread's CPU mask: 1024 CPUs, like glibc's cpu_set_t. Returns the bytes the
/// kernel wrote (its own mask size); the rest of `mask` is left as it was.
pub const CpuMask = [16]u64;
pub fn sched_getaffinity(mask: *CpuMask) usize {
    return sc3(.sched_getaffinity, 0, @sizeOf(CpuMask), @intFromPtr(mask));
}
pub fn sched_setaffinity(mask: *const CpuMask) usize {
    return sc3(.sched_setaffinity, 0, @sizeOf(CpuMask), @intFromPtr(mask));
}
pub fn getdents64(fd: i32, buffer: [*]u8, len: usize) usize {
    return sc3(.getdents64, u(fd), @intFromPtr(buffer), len);
}
/// The fixed head of a `struct linux_dirent64`; the NUL-terminated name follows it.
pub const Dirent64 = extern struct {
    ino: u64,
    off: i64,
    reclen: u16,
    type: u8,
};
pub const RLIMIT_NOFILE = 7;
pub const FD_CLOEXEC = 1;
pub fn prlimit(pid: i32, resource: u32, new: ?*const Rlimit, old: ?*Rlimit) usize {
    return sc4(.prlimit64, u(pid), resource, @intFromPtr(new), @intFromPtr(old));
}
pub fn prctl(option: u32, arg2: usize) usize {
    return sc5(.prctl, option, arg2, 0, 0, 0);
}
pub const PR_SET_PDEATHSIG = 1;
pub const PR_SET_NAME = 15;

pub fn kill(pid: i32, sig: i32) usize {
    return sc2(.kill, u(pid), u(sig));
}
pub fn pidfd_open(pid: i32) usize {
    return sc2(.pidfd_open, u(pid), 0);
}
pub fn pidfd_send_signal(pidfd: i32, sig: i32, flags: u32) usize {
    return sc4(.pidfd_send_signal, u(pidfd), u(sig), 0, flags);
}
pub const PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2;

/// `struct pidfd_info` up to `exit_code` (PIDFD_INFO_SIZE_VER0; exit_code since Linux 6.15).
pub const PidfdInfo = extern struct {
    mask: u64 = 0,
    cgroupid: u64 = 0,
    ids: [11]u32 = [_]u32{0} ** 11,
    exit_code: i32 = 0,
};
pub const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// _IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info) with the 64-byte struct.
pub const PIDFD_GET_INFO: u32 = 0xc040ff0b;

comptime {
    std.debug.assert(@sizeOf(PidfdInfo) == 64);
}

pub fn ioctl(fd: i32, request: u32, arg: usize) usize {
    return sc3(.ioctl, u(fd), request, arg);
}

pub fn epoll_del(epfd: i32, fd: i32) usize {
    return sc4(.epoll_ctl, u(epfd), 2, u(fd), 0);
}

pub const PollFd = extern struct { fd: i32, events: i16, revents: i16 };
pub fn poll(fds: [*]PollFd, count: u32, timeout_ms: i32) usize {
    if (@hasField(SYS, "poll")) return sc3(.poll, @intFromPtr(fds), count, u(timeout_ms));
    var ts = Timespec{ .sec = @divTrunc(timeout_ms, 1000), .nsec = @rem(timeout_ms, 1000) * 1_000_000 };
    const tsp: usize = if (timeout_ms < 0) 0 else @intFromPtr(&ts);
    return sc5(.ppoll, @intFromPtr(fds), count, tsp, 0, 8);
}
pub fn waitid(idtype: u32, id: i32, info: *SigInfo, options: u32, ru: ?*Rusage) usize {
    return sc5(.waitid, idtype, u(id), @intFromPtr(info), options, @intFromPtr(ru));
}

/// Kernel `struct sigaction` for rt_sigaction: only SIG_DFL and SIG_IGN are ever installed,
/// so no restorer is needed.
pub const KSigaction = extern struct {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
};

pub fn rt_sigaction(sig: u32, act: ?*const KSigaction, old: ?*KSigaction) usize {
    return sc4(.rt_sigaction, sig, @intFromPtr(act), @intFromPtr(old), 8);
}
pub fn rt_sigprocmask(how: u32, set: ?*const u64, old: ?*u64) usize {
    return sc4(.rt_sigprocmask, how, @intFromPtr(set), @intFromPtr(old), 8);
}
pub fn signalfd(mask: *const u64) usize {
    const sfd_cloexec = O.CLOEXEC;
    return sc4(.signalfd4, u(-1), @intFromPtr(mask), 8, sfd_cloexec);
}
pub fn eventfd() usize {
    return sc2(.eventfd2, 0, O.CLOEXEC);
}
pub fn epoll_create() usize {
    return sc1(.epoll_create1, O.CLOEXEC);
}
pub fn epoll_add(epfd: i32, fd: i32, events: u32, data: u64) usize {
    var ev = EpollEvent{ .events = events, .data = data };
    return sc4(.epoll_ctl, u(epfd), 1, u(fd), @intFromPtr(&ev));
}
pub fn epoll_wait(epfd: i32, events: []EpollEvent, timeout_ms: i32) usize {
    if (@hasField(SYS, "epoll_wait")) {
        return sc4(.epoll_wait, u(epfd), @intFromPtr(events.ptr), events.len, u(timeout_ms));
    }
    return sc5(.epoll_pwait, u(epfd), @intFromPtr(events.ptr), events.len, u(timeout_ms), 0);
}

pub const PROT_READ = 1;
pub const PROT_WRITE = 2;
pub const MAP_PRIVATE = 0x02;
pub const MAP_ANONYMOUS = 0x20;
pub const MAP_NORESERVE = 0x4000;

pub fn mmap(len: usize, prot: u32) usize {
    return linux.syscall6(.mmap, 0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, u(-1), 0);
}
pub const MAP_SHARED = 0x01;
pub fn mmap_anon_shared(len: usize) usize {
    return linux.syscall6(.mmap, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, u(-1), 0);
}
/// A shared mapping of the file `fd` (the helper backend's memfd).
pub fn mmap_shared(fd: i32, len: usize) usize {
    return linux.syscall6(.mmap, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, u(fd), 0);
}
pub fn munmap(addr: usize, len: usize) usize {
    return sc2(.munmap, addr, len);
}
pub fn memfd_create(name: [*:0]const u8, flags: u32) usize {
    return sc2(.memfd_create, @intFromPtr(name), flags);
}
pub const MFD_CLOEXEC = 1;
pub fn ftruncate(fd: i32, len: u64) usize {
    return sc2(.ftruncate, u(fd), len);
}
pub fn fchdir(fd: i32) usize {
    return sc1(.fchdir, u(fd));
}
pub const O_PATH = 0o10000000;
pub const O_DIRECTORY = 0o200000;

pub const AF_UNIX = 1;
pub const SOCK_SEQPACKET = 5;
pub const SOCK_CLOEXEC = O.CLOEXEC;
pub const MSG_CMSG_CLOEXEC = 0x40000000;
pub const MSG_NOSIGNAL = 0x4000;
pub const SCM_RIGHTS = 1;
pub const SOL_SOCKET = 1;
pub fn socketpair(kind: u32, fds: *[2]i32) usize {
    return sc4(.socketpair, AF_UNIX, kind, 0, @intFromPtr(fds));
}
pub const Iovec = extern struct { base: usize, len: usize };
pub const Msghdr = extern struct {
    name: usize = 0,
    namelen: u32 = 0,
    iov: *const Iovec,
    iovlen: usize = 1,
    control: usize = 0,
    controllen: usize = 0,
    flags: i32 = 0,
};
/// The most descriptors one message carries (the kernel's SCM_MAX_FD).
pub const scm_max_fd = 253;
/// A control buffer for up to `scm_max_fd` descriptors: `struct cmsghdr` (16 bytes) and the ints.
pub const FdControl = extern struct {
    len: usize,
    level: i32,
    kind: i32,
    fds: [scm_max_fd + 1]i32,
};
/// One message of `data` carrying `fds` (SCM_RIGHTS), on a SOCK_SEQPACKET socket.
pub fn send_with_fds(sock: i32, data: []const u8, fds: []const i32) usize {
    std.debug.assert(fds.len <= scm_max_fd);
    const iov = Iovec{ .base = @intFromPtr(data.ptr), .len = data.len };
    var control: FdControl = undefined;
    var msg = Msghdr{ .iov = &iov };
    if (fds.len > 0) {
        control.len = 16 + 4 * fds.len;
        control.level = SOL_SOCKET;
        control.kind = SCM_RIGHTS;
        @memcpy(control.fds[0..fds.len], fds);
        msg.control = @intFromPtr(&control);
        msg.controllen = (control.len + 7) & ~@as(usize, 7);
    }
    return sc3(.sendmsg, u(sock), @intFromPtr(&msg), MSG_NOSIGNAL);
}
/// One message into `data`; its descriptors (close-on-exec) into `fds`, their count into
/// `fd_count`. Returns the raw result (bytes, 0 at EOF).
pub fn recv_with_fds(sock: i32, data: []u8, fds: *[scm_max_fd]i32, fd_count: *usize) usize {
    const iov = Iovec{ .base = @intFromPtr(data.ptr), .len = data.len };
    var control: FdControl = undefined;
    var msg = Msghdr{ .iov = &iov, .control = @intFromPtr(&control), .controllen = @sizeOf(FdControl) };
    fd_count.* = 0;
    const rc = sc3(.recvmsg, u(sock), @intFromPtr(&msg), MSG_CMSG_CLOEXEC);
    if (errno(rc) != 0) return rc;
    if (msg.controllen >= 16 and control.level == SOL_SOCKET and control.kind == SCM_RIGHTS) {
        fd_count.* = @min((control.len - 16) / 4, scm_max_fd);
        @memcpy(fds[0..fd_count.*], control.fds[0..fd_count.*]);
    }
    return rc;
}
pub const POLLHUP: i16 = 0x10;
pub const POLLERR: i16 = 0x8;

pub fn mprotect(addr: usize, len: usize, prot: u32) usize {
    return sc3(.mprotect, addr, len, prot);
}

const FUTEX_WAIT_PRIVATE = 128;
const FUTEX_WAKE_PRIVATE = 129;
const FUTEX_WAIT_SHARED = 0;
const FUTEX_WAKE_SHARED = 1;

/// Whether futexes are keyed by the file behind the word (shared) or by the address space
/// (private). The reaper shares our memory (CLONE_VM), so private futexes reach it; the
/// helper is another address space mapping the same memfd, so the helper backend sets this
/// in both processes before either waits.
pub var futex_shared: bool = false;

/// Waits while `*word == expected`, at most `timeout_ms` (negative: forever).
pub fn futex_wait(word: *const u32, expected: u32, timeout_ms: i32) usize {
    var ts = Timespec{ .sec = @divTrunc(timeout_ms, 1000), .nsec = @rem(timeout_ms, 1000) * 1_000_000 };
    const tsp: usize = if (timeout_ms < 0) 0 else @intFromPtr(&ts);
    const op: usize = if (futex_shared) FUTEX_WAIT_SHARED else FUTEX_WAIT_PRIVATE;
    return sc4(if (@hasField(SYS, "futex")) .futex else .futex_time64, @intFromPtr(word), op, expected, tsp);
}
pub fn futex_wake(word: *const u32, count: u32) usize {
    const op: usize = if (futex_shared) FUTEX_WAKE_SHARED else FUTEX_WAKE_PRIVATE;
    return sc3(if (@hasField(SYS, "futex")) .futex else .futex_time64, @intFromPtr(word), op, count);
}
pub const Timespec = extern struct { sec: i64, nsec: i64 };

pub fn clock_monotonic_ns() u64 {
    var ts: Timespec = undefined;
    _ = sc2(.clock_gettime, 1, @intFromPtr(&ts));
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

/// clone3 with a new stack: the child calls `func(arg)` and exits with its result.
/// `args.stack`/`args.stack_size` must be set. Returns the raw syscall result in the parent.
pub fn clone3(args: *const CloneArgs, size: usize, func: *const fn (usize) callconv(.c) u8, arg: usize) usize {
    const trampoline: *const fn (usize, usize, usize, usize) callconv(.c) usize = @ptrCast(&clone3_naked);
    return trampoline(@intFromPtr(args), size, @intFromPtr(func), arg);
}

fn clone3_naked() callconv(.naked) usize {
    switch (builtin.cpu.arch) {
        // SysV: rdi=args rsi=size rdx=func rcx=arg. syscall clobbers rcx/r11 only, and the
        // child starts with the parent's registers on the new stack, so func/arg ride in r8/r9.
        .x86_64 => asm volatile (
            \\   movq %%rdx, %%r9
            \\   movq %%rcx, %%r8
            \\   movl $435, %%eax
            \\   syscall
            \\   testq %%rax, %%rax
            \\   jz 1f
            \\   retq
            \\ 1:
            \\   xorl %%ebp, %%ebp
            \\   movq %%r8, %%rdi
            \\   callq *%%r9
            \\   movl %%eax, %%edi
            \\   movl $60, %%eax
            \\   syscall
            \\   hlt
        ),
        // AAPCS64: x0=args x1=size x2=func x3=arg; svc preserves everything but x0.
        .aarch64 => asm volatile (
            \\   mov x9, x2
            \\   mov x10, x3
            \\   mov x8, #435
            \\   svc #0
            \\   cbz x0, 1f
            \\   ret
            \\ 1:
            \\   mov x29, #0
            \\   mov x30, #0
            \\   mov x0, x10
            \\   blr x9
            \\   mov x8, #93
            \\   svc #0
            \\   brk #0
        ),
        else => @compileError("clone3 trampoline: unsupported architecture"),
    }
}

/// Legacy clone(2) through the std trampoline (for kernels or seccomp profiles without clone3).
pub fn clone(func: *const fn (usize) callconv(.c) u8, stack_top: usize, flags: u32, arg: usize, parent_tid: *i32) usize {
    var child_tid: i32 = 0;
    return linux.clone(func, stack_top, flags, arg, parent_tid, 0, &child_tid);
}
