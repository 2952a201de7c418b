//! The C ABI speaks Linux's numbers (errnos, signals, open flags, rlimit resources): TypeScript
//! encodes them once for every system. posix.zig translates them at the boundary on macOS and
//! FreeBSD, whose numbers differ (both follow 4.4BSD here); on Linux every function is the
//! identity. Decision 0013.

const builtin = @import("builtin");

const bsd = builtin.os.tag == .macos or builtin.os.tag == .freebsd;
const macos = builtin.os.tag == .macos;

/// Linux's errno for a native one. 1 to 34 are the same everywhere; the others the library
/// can meet are listed; any other keeps its number (and reads as Linux's errno of that number).
pub fn errno_to_abi(native: i32) i32 {
    if (!bsd or native <= 34) return native;
    const table = [_][2]i32{
        .{ 35, 11 }, // EAGAIN
        .{ 36, 115 }, // EINPROGRESS
        .{ 37, 114 }, // EALREADY
        .{ 38, 88 }, // ENOTSOCK
        .{ 40, 90 }, // EMSGSIZE
        .{ 45, 95 }, // EOPNOTSUPP (macOS: ENOTSUP)
        .{ 54, 104 }, // ECONNRESET
        .{ 55, 105 }, // ENOBUFS
        .{ 57, 107 }, // ENOTCONN
        .{ 60, 110 }, // ETIMEDOUT
        .{ 62, 40 }, // ELOOP
        .{ 63, 36 }, // ENAMETOOLONG
        .{ 66, 39 }, // ENOTEMPTY
        .{ 67, 87 }, // EUSERS
        .{ 69, 122 }, // EDQUOT
        .{ 70, 116 }, // ESTALE
        .{ 78, 38 }, // ENOSYS
        .{ 84, 75 }, // EOVERFLOW
        .{ if (macos) 85 else 0, 8 }, // macOS EBADEXEC: ENOEXEC
        .{ if (macos) 86 else 0, 8 }, // macOS EBADARCH: ENOEXEC
        .{ if (macos) 88 else 0, 8 }, // macOS EBADMACHO: ENOEXEC
        .{ if (macos) 92 else 86, 84 }, // EILSEQ
        .{ if (macos) 100 else 92, 71 }, // EPROTO
        .{ if (macos) 102 else 0, 95 }, // macOS EOPNOTSUPP
        .{ if (macos) 89 else 85, 125 }, // ECANCELED
    };
    for (table) |pair| {
        if (pair[0] == native) return pair[1];
    }
    return native;
}

/// Linux's signal numbers 1 to 31 on 4.4BSD's numbering (0: none there).
const bsd_of_linux = [32]u8{
    0, 1,  2,  3,  4,  5,  6,  10, 8,  9,  30, 11, 31, 13, 14, 15,
    0, 20, 19, 17, 18, 21, 22, 16, 24, 25, 26, 27, 28, 23, 0,  12,
};

/// The native number of Linux's signal `sig`; 0 for one this system lacks (SIGSTKFLT, SIGPWR,
/// the real-time signals on macOS and FreeBSD).
pub fn signal_to_native(sig: u32) u32 {
    if (!bsd or sig == 0) return sig;
    return if (sig < bsd_of_linux.len) bsd_of_linux[sig] else 0;
}

/// Linux's number of the native signal `sig`; one Linux lacks (SIGEMT, SIGINFO) keeps its own.
pub fn signal_to_abi(sig: u32) u32 {
    if (!bsd or sig == 0) return sig;
    for (bsd_of_linux, 0..) |native, linux| {
        if (native == sig) return @intCast(linux);
    }
    return sig;
}

/// Linux's open flags (file actions) in the native encoding: the access mode, O_CREAT, O_EXCL,
/// O_NOCTTY, O_TRUNC, O_APPEND, O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC.
pub fn open_flags_to_native(flags: u32) u32 {
    if (!bsd) return flags;
    const pairs = [_][2]u32{
        .{ 0o100, 0x200 }, // O_CREAT
        .{ 0o200, 0x800 }, // O_EXCL
        .{ 0o400, if (macos) 0x20000 else 0x8000 }, // O_NOCTTY
        .{ 0o1000, 0x400 }, // O_TRUNC
        .{ 0o2000, 0x8 }, // O_APPEND
        .{ 0o4000, 0x4 }, // O_NONBLOCK
        .{ 0o200000, if (macos) 0x100000 else 0x20000 }, // O_DIRECTORY
        .{ 0o400000, 0x100 }, // O_NOFOLLOW
        .{ 0o2000000, if (macos) 0x1000000 else 0x100000 }, // O_CLOEXEC
    };
    var native: u32 = flags & 3;
    for (pairs) |pair| {
        if (flags & pair[0] != 0) native |= pair[1];
    }
    return native;
}

/// The native number of Linux's rlimit resource; null for one this system lacks.
pub fn rlimit_to_native(resource: u32) ?u32 {
    if (!bsd) return resource;
    return switch (resource) {
        0...4 => resource, // CPU, FSIZE, DATA, STACK, CORE
        5 => 5, // RSS (macOS: the same number as AS)
        6 => 7, // NPROC
        7 => 8, // NOFILE
        8 => 6, // MEMLOCK
        9 => if (macos) 5 else 10, // AS (FreeBSD: VMEM)
        else => null,
    };
}
