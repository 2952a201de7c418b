//! A child's whole process tree (`sendSignal(sig, { tree: true })`): the child and every
//! process whose chain of parents reaches it, found in /proc, including those that left its
//! process group or session (`setsid`). A process whose parent chain was cut (it double-forked
//! and its parent exited, so init or a subreaper adopted it) is no longer a descendant: this
//! mode cannot find it (`backendInfo().tree` is "descendants").
//!
//! Race-free against pid reuse: each member is held by a pidfd opened after it was found, and
//! kept only if, read again through /proc after that, its parent is still in the tree. Members
//! are stopped (SIGSTOP) as they are found, so none can fork past the scan; the tree is scanned
//! again until a scan finds no one new; then every member gets the signal, then SIGCONT.

const std = @import("std");
const sys = @import("../sys/linux.zig");

const assert = std.debug.assert;

/// Most members one call holds (the child included); more is -E2BIG, after signalling them.
pub const members_max = 4096;
/// Most processes one scan of /proc reads.
const processes_max = 1 << 16;
/// Scans until one finds no new member; a tree still growing after this many is -EAGAIN.
const scans_max = 32;

/// A member of the walk: held by `pidfd`, to get `sig` (a descendant gets its parent's).
pub const Member = struct { pid: i32, pidfd: i32, sig: i32 };
const Pair = struct { pid: i32, ppid: i32 };

/// Scratch of the scan, in the library's memory (one walk at a time, under `tree_lock`).
var pairs: [processes_max]Pair = undefined;
var members: [members_max]Member = undefined;
var tree_lock: u32 = 0;

/// Sends `sig` to the tree rooted at `root_pid`, held by `root_pidfd` (a pidfd the caller
/// keeps open for the call). Returns how many processes got it (the root included), or -errno:
/// -ESRCH when the root is gone, -ENOENT without /proc, -E2BIG or -EAGAIN (see above; the
/// members held so far still got the signal).
pub fn signal(root_pid: i32, root_pidfd: i32, sig: i32) i32 {
    assert(root_pid > 0 and root_pidfd >= 0);
    while (@cmpxchgWeak(u32, &tree_lock, 0, 1, .acquire, .monotonic) != null) _ = sys.sched_yield();
    defer @atomicStore(u32, &tree_lock, 0, .release);
    if (sys.errno(sys.pidfd_send_signal(root_pidfd, sys.SIG.STOP, 0)) != 0) return -sys.E.SRCH;
    members[0] = .{ .pid = root_pid, .pidfd = root_pidfd, .sig = sig };
    return walk(1);
}

/// Most roots one walk of `signal_after_host` takes, so their descendants have room too.
pub const roots_per_walk = members_max / 4;

/// `signal` for the owner of the children once the host is gone (`killOnParentExit`), for
/// many roots in one walk (one scan of /proc for all, not one each): no host thread walks any
/// more, and a walk the host died in cannot be resumed, so its lock is void. Roots that are
/// gone are skipped.
pub fn signal_after_host(roots: []const Member) void {
    assert(roots.len <= roots_per_walk);
    @atomicStore(u32, &tree_lock, 1, .release);
    defer @atomicStore(u32, &tree_lock, 0, .release);
    var count: usize = 0;
    for (roots) |root| {
        if (sys.errno(sys.pidfd_send_signal(root.pidfd, sys.SIG.STOP, 0)) != 0) continue;
        members[count] = root;
        count += 1;
    }
    _ = walk(count);
}

/// Collects the descendants of `members[0..roots]`, then signals and continues them all, and
/// closes the descendants' pidfds (the roots' are the caller's).
fn walk(roots: usize) i32 {
    var count = roots;
    const outcome = collect(&count);
    var delivered: i32 = 0;
    for (members[0..count]) |member| {
        if (sys.errno(sys.pidfd_send_signal(member.pidfd, member.sig, 0)) == 0) delivered += 1;
    }
    for (members[0..count], 0..) |member, i| {
        _ = sys.pidfd_send_signal(member.pidfd, sys.SIG.CONT, 0);
        if (i >= roots) _ = sys.close(member.pidfd);
    }
    if (outcome != 0) return outcome;
    return delivered;
}

/// Scans /proc until a scan adds no member; every member added is held and stopped.
fn collect(count: *usize) i32 {
    var scans: u32 = 0;
    while (scans < scans_max) : (scans += 1) {
        const found = scan();
        if (found < 0) return @intCast(found);
        const added = add_descendants(pairs[0..@intCast(found)], count);
        if (added < 0) return added;
        if (added == 0) return 0;
    }
    return -sys.E.AGAIN;
}

/// Adds every listed process whose parent is a member and that is not one yet; returns how
/// many were added, or -E2BIG (`E.TOOBIG`) when the table is full.
fn add_descendants(listed: []const Pair, count: *usize) i32 {
    var added: i32 = 0;
    var grew = true;
    while (grew) {
        grew = false;
        for (listed) |pair| {
            const parent = member_index(pair.ppid, count.*) orelse continue;
            if (member_index(pair.pid, count.*) != null) continue;
            if (count.* == members_max) return -sys.E.TOOBIG;
            const held = hold(pair.pid, members[parent].sig, count.*) orelse continue;
            members[count.*] = held;
            count.* += 1;
            added += 1;
            grew = true;
        }
    }
    return added;
}

fn member_index(pid: i32, count: usize) ?usize {
    for (members[0..count], 0..) |member, i| if (member.pid == pid) return i;
    return null;
}

/// A pidfd of `pid`, stopped, if it is still a member's child once held; else null.
fn hold(pid: i32, sig: i32, count: usize) ?Member {
    const opened = sys.pidfd_open(pid);
    if (sys.errno(opened) != 0) return null; // Gone meanwhile.
    const pidfd = sys.int(opened);
    // The pidfd names one process; if the pid was reused before it was opened, that process
    // is not a member's child, unless it truly is one.
    const ppid = parent_of(pid) orelse {
        _ = sys.close(pidfd);
        return null;
    };
    if (member_index(ppid, count) == null or sys.errno(sys.pidfd_send_signal(pidfd, sys.SIG.STOP, 0)) != 0) {
        _ = sys.close(pidfd);
        return null;
    }
    return .{ .pid = pid, .pidfd = pidfd, .sig = sig };
}

/// Lists every process with its parent into `pairs`; the count, or -errno.
fn scan() isize {
    const opened = sys.openat("/proc", sys.O.RDONLY | sys.O.CLOEXEC | sys.O_DIRECTORY, 0);
    if (sys.errno(opened) != 0) return -@as(isize, sys.E.NOENT);
    const dir = sys.int(opened);
    defer _ = sys.close(dir);
    var buffer: [8192]u8 align(8) = undefined;
    var found: usize = 0;
    while (found < processes_max) {
        const n = sys.getdents64(dir, &buffer, buffer.len);
        if (sys.errno(n) != 0) return -@as(isize, sys.errno(n));
        if (n == 0) break;
        var offset: usize = 0;
        while (offset < n and found < processes_max) {
            const entry: *const sys.Dirent64 = @ptrCast(@alignCast(&buffer[offset]));
            assert(entry.reclen >= @sizeOf(sys.Dirent64) and offset + entry.reclen <= n);
            const name: [*:0]const u8 = @ptrCast(&buffer[offset + @offsetOf(sys.Dirent64, "type") + 1]);
            offset += entry.reclen;
            const pid = std.fmt.parseInt(i32, std.mem.span(name), 10) catch continue;
            const ppid = parent_of(pid) orelse continue;
            pairs[found] = .{ .pid = pid, .ppid = ppid };
            found += 1;
        }
    }
    return @intCast(found);
}

/// The parent of `pid` from /proc/<pid>/stat ("pid (comm) state ppid ..."), or null if gone.
fn parent_of(pid: i32) ?i32 {
    var path_buffer: [32]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "/proc/{d}/stat", .{pid}) catch unreachable;
    const opened = sys.openat(path.ptr, sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return null;
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    var stat: [512]u8 = undefined;
    const n = sys.read(fd, &stat, stat.len);
    if (sys.errno(n) != 0 or n == 0) return null;
    // The name may hold spaces and parentheses: the fields start after the last ')'.
    const close_paren = std.mem.lastIndexOfScalar(u8, stat[0..n], ')') orelse return null;
    var fields = std.mem.tokenizeScalar(u8, stat[close_paren + 1 .. n], ' ');
    _ = fields.next() orelse return null; // state
    return std.fmt.parseInt(i32, fields.next() orelse return null, 10) catch null;
}
