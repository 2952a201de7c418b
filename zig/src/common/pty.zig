//! Pseudo-terminals: the master opened with `posix_openpt` semantics (Linux's own build by
//! raw calls; libc's `posix_openpt`, `grantpt`, `unlockpt`, `ptsname_r` in the portable builds:
//! macOS, FreeBSD, Linux with glibc), its slave, and the window size. The child makes the
//! slave its controlling terminal (`child.zig`, `portable_child.zig`).

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("../abi.zig");
const os_zig = @import("../sys/os.zig");
const sys = os_zig.sys;
const fds_zig = @import("fds.zig");

/// Linux: asm-generic/ioctls.h and asm-generic/fcntl.h, the same on x86_64 and aarch64. macOS
/// and FreeBSD: sys/ttycom.h, `_IO('t', 97)` and `_IOW('t', 103, struct winsize)`.
const linux_numbers = builtin.os.tag == .linux;
pub const TIOCSCTTY: u32 = if (linux_numbers) 0x540e else 0x2000_7461;
const TIOCSWINSZ: u32 = if (linux_numbers) 0x5414 else 0x8008_7467;
const TIOCGPTN: u32 = 0x8004_5430;
const TIOCSPTLCK: u32 = 0x4004_5431;
const TIOCGPTPEER: u32 = 0x5441;
const O_NOCTTY: u32 = 0o400;
const ENOTTY: i32 = 25;

/// struct winsize.
const Winsize = extern struct { rows: u16, cols: u16, xpixel: u16 = 0, ypixel: u16 = 0 };

/// The largest size a terminal may be given (the kernel keeps u16 fields).
pub const size_max: u32 = std.math.maxInt(u16);

/// Opens a master (non-blocking when asked), two more descriptors of it (one to write, one to
/// resize: each owner closes its own), and its slave, all close-on-exec and above stdio. The
/// window size is set before anything can open the slave. Returns 0 or -errno; on failure
/// nothing stays open.
pub fn open(cols: u32, rows: u32, nonblocking: bool, out: *abi.Pty) i32 {
    if (cols == 0 or rows == 0 or cols > size_max or rows > size_max) return -sys.E.INVAL;
    out.* = .{ .master_read = -1, .master_write = -1, .control = -1, .slave = -1 };
    var opened: [4]i32 = .{ -1, -1, -1, -1 };
    const e = open_all(cols, rows, nonblocking, &opened);
    if (e != 0) {
        for (opened) |fd| {
            if (fd >= 0) _ = sys.close(fd);
        }
        return -e;
    }
    out.* = .{ .master_read = opened[0], .master_write = opened[1], .control = opened[2], .slave = opened[3] };
    return 0;
}

/// `open` without the clean-up: every descriptor made is in `opened` (master, write, control,
/// slave); returns 0 or the errno of the step that failed.
fn open_all(cols: u32, rows: u32, nonblocking: bool, opened: *[4]i32) i32 {
    const master_rc = open_master(nonblocking);
    if (sys.errno(master_rc) != 0) return sys.errno(master_rc);
    opened[0] = fds_zig.move_above_stdio(sys.int(master_rc)) catch |err| return fds_zig.fd_errno(err);
    const master = opened[0];

    const size = Winsize{ .rows = @intCast(rows), .cols = @intCast(cols) };
    const sized = sys.ioctl(master, TIOCSWINSZ, @intFromPtr(&size));
    if (sys.errno(sized) != 0) return sys.errno(sized);

    const slave_rc = if (comptime os_zig.portable) sys.pty_slave(master) else open_slave(master);
    if (sys.errno(slave_rc) != 0) return sys.errno(slave_rc);
    opened[3] = fds_zig.move_above_stdio(sys.int(slave_rc)) catch |err| return fds_zig.fd_errno(err);
    for (opened[1..3]) |*copy| {
        const rc = sys.fcntl(master, sys.F.DUPFD_CLOEXEC, 3);
        if (sys.errno(rc) != 0) return sys.errno(rc);
        copy.* = sys.int(rc);
    }
    return 0;
}

/// The master, unlocked, as a raw result: `/dev/ptmx` and TIOCSPTLCK in Linux's own build;
/// libc's `posix_openpt`, `grantpt`, `unlockpt` in the portable ones. Nothing stays open on
/// failure.
fn open_master(nonblocking: bool) usize {
    if (comptime os_zig.portable) return sys.pty_master(nonblocking);
    const flags = sys.O.RDWR | O_NOCTTY | sys.O.CLOEXEC | (if (nonblocking) @as(u32, sys.O.NONBLOCK) else 0);
    const rc = sys.openat("/dev/ptmx", flags, 0);
    if (sys.errno(rc) != 0) return rc;
    var unlock: i32 = 0;
    const unlocked = sys.ioctl(sys.int(rc), TIOCSPTLCK, @intFromPtr(&unlock));
    if (sys.errno(unlocked) == 0) return rc;
    _ = sys.close(sys.int(rc));
    return unlocked;
}

/// The slave, as a raw result: TIOCGPTPEER (Linux 4.13) opens it through the master, so it is
/// the right one even in another devpts mount; before that, its number (TIOCGPTN) under
/// /dev/pts.
fn open_slave(master: i32) usize {
    const flags = sys.O.RDWR | O_NOCTTY | sys.O.CLOEXEC;
    const peer = sys.ioctl(master, TIOCGPTPEER, flags);
    const e = sys.errno(peer);
    // EINVAL or ENOTTY: a kernel without TIOCGPTPEER.
    if (e != sys.E.INVAL and e != ENOTTY) return peer;
    var number: u32 = 0;
    const got = sys.ioctl(master, TIOCGPTN, @intFromPtr(&number));
    if (sys.errno(got) != 0) return got;
    var path_buffer: [32]u8 = undefined;
    // "/dev/pts/" and at most 10 digits fit.
    const path = std.fmt.bufPrintZ(&path_buffer, "/dev/pts/{d}", .{number}) catch unreachable;
    return sys.openat(path.ptr, flags, 0);
}

/// Sets the window size of the terminal `fd` (master or slave): the kernel sends SIGWINCH to
/// its foreground process group when the size changed. 0 or -errno (-EBADF: closed).
pub fn resize(fd: i32, cols: u32, rows: u32) i32 {
    if (cols == 0 or rows == 0 or cols > size_max or rows > size_max) return -sys.E.INVAL;
    const size = Winsize{ .rows = @intCast(rows), .cols = @intCast(cols) };
    const rc = sys.ioctl(fd, TIOCSWINSZ, @intFromPtr(&size));
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return 0;
}
