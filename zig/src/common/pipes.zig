//! Large pipe buffers, for the pipes that carry bulk data.

const sys = @import("../sys/os.zig").sys;

const memory_zig = @import("memory.zig");
const ensure_process = memory_zig.ensure_process;
const state_zig = @import("state.zig");
const g = &state_zig.g;
const lock = state_zig.lock;
const unlock = state_zig.unlock;

/// A pipe grown by `pipe_grow`: the host's descriptor and the file it named then.
pub const LargePipe = struct { fd: i32 = -1, dev: u64 = 0, inode: u64 = 0 };

/// 1 MiB instead of 64 KiB: a sixteenth of the wake-ups (and of the reads) for bulk data.
/// Measured and chosen in docs/decisions/0002-pipe-growth.md.
const large_pipe_size = 1 << 20;
/// The kernel charges a pipe's whole size to its user when the size is set, used or not, and
/// once a user's pipes pass `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default) every new
/// pipe of that user, in any process, gets 8 KiB. So pipes only grow once they carry bulk
/// data, and at most this many at once: 16 MiB, a quarter of the default soft limit.
/// Measured and chosen in docs/decisions/0002-pipe-growth.md.
pub const large_pipes_max = 16;

/// Gives the pipe `fd` a large buffer. Returns its size in bytes, or -EAGAIN when
/// `large_pipes_max` pipes still hold one, or the kernel's -errno (-EPERM: a lower
/// pipe-max-size, or the user is over the soft limit). Asking again for a grown pipe is cheap.
/// macOS and FreeBSD size pipes themselves (up to 64 KiB) and have no call to ask for more:
/// -ENOSYS there, which the caller treats as "stays at the default size".
pub fn pipe_grow(fd: i32) i32 {
    if (comptime @import("../sys/os.zig").portable) return -sys.E.NOSYS;
    var st: sys.Stat = undefined;
    var rc = sys.fstat(fd, &st);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    if (!sys.is_fifo(st.mode)) return -sys.E.INVAL;
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    for (&g.large_pipes) |*entry| {
        if (entry.fd == fd and entry.dev == st.dev and entry.inode == st.ino) return large_pipe_size;
    }
    const entry = large_pipe_free() orelse return -sys.E.AGAIN;
    rc = sys.fcntl(fd, sys.F.SETPIPE_SZ, large_pipe_size);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    entry.* = .{ .fd = fd, .dev = st.dev, .inode = st.ino };
    return sys.int(rc);
}

/// An entry to use: an empty one, else one whose descriptor was closed since or now names
/// another file (the pipe it grew is gone, or lives on only in a child or a copy).
fn large_pipe_free() ?*LargePipe {
    for (&g.large_pipes) |*entry| {
        if (entry.fd < 0) return entry;
    }
    for (&g.large_pipes) |*entry| {
        var st: sys.Stat = undefined;
        const rc = sys.fstat(entry.fd, &st);
        if (sys.errno(rc) != 0 or st.dev != entry.dev or st.ino != entry.inode) return entry;
    }
    return null;
}
