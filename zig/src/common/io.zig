//! Small calls for the synchronous helpers: close, poll, read, write, the ignored signals.

const sys = @import("../sys/os.zig").sys;

pub fn close_fd(fd: i32) i32 {
    return -sys.errno(sys.close(fd));
}

/// The host's ignored signals now (bit n-1 for signal n), for `keepIgnoredSignals`.
pub fn ignored_signals() u64 {
    var mask: u64 = 0;
    var sig: u32 = 1;
    while (sig <= sys.SIG.max) : (sig += 1) {
        var old: sys.KSigaction = undefined;
        if (sys.errno(sys.rt_sigaction(sig, null, &old)) != 0) continue;
        if (old.handler == sys.SIG.IGN) mask |= @as(u64, 1) << @intCast(sig - 1);
    }
    return mask;
}

/// poll(2) for the synchronous helpers; they block the calling thread on purpose.
pub fn poll(fds: [*]sys.PollFd, count: u32, timeout_ms: i32) i32 {
    const rc = sys.poll(fds, count, timeout_ms);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return sys.int(rc);
}

/// One read of at most 1 GiB (so the count fits the i32 result).
pub fn read(fd: i32, buf: [*]u8, len: usize) i32 {
    const rc = sys.read(fd, buf, @min(len, io_max));
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return @intCast(rc);
}

/// One write of at most 1 GiB.
pub fn write(fd: i32, buf: [*]const u8, len: usize) i32 {
    const rc = sys.write(fd, buf, @min(len, io_max));
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return @intCast(rc);
}
const io_max = 1 << 30;
