//! Descriptor numbering: our descriptors never take 0, 1 or 2; pidfds live above a floor.

const sys = @import("../sys/os.zig").sys;

/// A child copies the host's descriptors up to the highest one it needs (its stdio sources,
/// `inheritFds`), which are low numbers: the pidfds of live children are kept above this
/// floor, so a spawn costs the same next to 10,000 children as next to none. A floor at or
/// above RLIMIT_NOFILE (EINVAL) or no room above it (EMFILE): the lowest free number instead.
/// Measured and chosen in docs/decisions/0003-pidfd-floor.md.
pub const pidfd_floor = 1024;

pub fn move_to_pidfd_floor(fd: i32) error{ EMFILE, EBADF }!i32 {
    if (fd >= pidfd_floor) return fd;
    const rc = sys.fcntl(fd, sys.F.DUPFD_CLOEXEC, pidfd_floor);
    if (sys.errno(rc) != 0) return move_above_stdio(fd);
    _ = sys.close(fd);
    return sys.int(rc);
}

/// Our descriptors never take 0, 1 or 2: a host with stdio closed would otherwise have its
/// next "stdout" be our pipe.
pub fn move_above_stdio(fd: i32) error{ EMFILE, EBADF }!i32 {
    if (fd > 2) return fd;
    const rc = sys.fcntl(fd, sys.F.DUPFD_CLOEXEC, 3);
    _ = sys.close(fd);
    if (sys.errno(rc) != 0) return error.EMFILE;
    return sys.int(rc);
}

/// The errno of a failed `move_above_stdio` or `move_to_pidfd_floor`, for the C ABI (which
/// carries errnos only, never Zig's own error numbers).
pub fn fd_errno(e: error{ EMFILE, EBADF }) i32 {
    return switch (e) {
        error.EMFILE => sys.E.MFILE,
        error.EBADF => sys.E.BADF,
    };
}
