//! A child's whole process tree (`sendSignal(sig, { tree: true })`): the child and every
//! process whose chain of parents reaches it, found in /proc, including those that left its
//! process group or session (`setsid`). A process whose parent chain was cut (it double-forked
//! and its parent exited, so init or a subreaper adopted it) is no longer a descendant: this
//! mode cannot find it. A child in a cgroup of its own (cgroup.zig) is walked by its cgroup
//! instead, which holds such processes too (below, `signal_cgroup`).
//!
//! Race-free against pid reuse: each member is held by a pidfd opened after it was found, and
//! kept only if, read again through /proc after that, its parent is still in the tree. Members
//! are stopped (SIGSTOP) as they are found, so none can fork past the scan; the tree is scanned
//! again until a scan finds no one new; then every member gets the signal, then SIGCONT.

const std = @import("std");
const sys = @import("../sys/linux.zig");
const cgroup = @import("cgroup.zig");
const cgroup_path_max = @import("region.zig").cgroup_path_max;

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
    return finish(roots, count, outcome);
}

/// Signals and continues `members[0..count]`, closes the pidfds past the roots; the count
/// delivered, or `outcome` when the collection failed.
fn finish(roots: usize, count: usize, outcome: i32) i32 {
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

// ---------------------------------------------------------------------------------------------
// Cgroup mode (cgroup.zig): the members are the processes in the child's cgroup, listed by
// `cgroup.procs`; each is held by a pidfd opened after it was listed and kept only if, read
// again through /proc/<pid>/cgroup after that, it is still in the cgroup.

/// `signal` for a child in a cgroup of its own (`number`, named with `kill_signal`): every
/// process in it. SIGKILL goes through `cgroup.kill` where the kernel has it (Linux 5.14+):
/// the kernel kills them all, forks in flight included. `root_pidfd` -1: no root to hold
/// (the owner at the host's exit). -ESRCH when nothing was signalled.
pub fn signal_cgroup(root_pid: i32, root_pidfd: i32, sig: i32, number: u32, kill_signal: i32) i32 {
    while (@cmpxchgWeak(u32, &tree_lock, 0, 1, .acquire, .monotonic) != null) _ = sys.sched_yield();
    defer @atomicStore(u32, &tree_lock, 0, .release);
    return signal_cgroup_locked(root_pid, root_pidfd, sig, number, kill_signal);
}

/// `signal_cgroup` for the owner once the host is gone: a walk the host died in is void.
pub fn signal_cgroup_after_host(sig: i32, number: u32, kill_signal: i32) void {
    @atomicStore(u32, &tree_lock, 1, .release);
    defer @atomicStore(u32, &tree_lock, 0, .release);
    _ = signal_cgroup_locked(0, -1, sig, number, kill_signal);
}

const CgroupPaths = struct {
    /// The cgroup's directory (absolute), NUL-terminated.
    dir: [cgroup_path_max + 32]u8 = undefined,
    dir_len: usize = 0,
    /// As /proc/<pid>/cgroup names it.
    relative: [cgroup_path_max + 32]u8 = undefined,
    relative_len: usize = 0,
};

fn cgroup_paths(number: u32, kill_signal: i32, out: *CgroupPaths) void {
    const shared = cgroup.shared();
    var name_buffer: [24]u8 = undefined;
    const child_name = cgroup.name(&name_buffer, number, kill_signal);
    const base: [*:0]const u8 = @ptrCast(&shared.path);
    const relative: [*:0]const u8 = @ptrCast(&shared.relative);
    // Both fit: the shared paths are shorter than `cgroup_path_max`, the name than 24.
    out.dir_len = (std.fmt.bufPrintZ(&out.dir, "{s}/{s}", .{ std.mem.span(base), child_name }) catch unreachable).len;
    out.relative_len = (std.fmt.bufPrint(&out.relative, "{s}/{s}", .{ std.mem.span(relative), child_name }) catch unreachable).len;
}

fn signal_cgroup_locked(root_pid: i32, root_pidfd: i32, sig: i32, number: u32, kill_signal: i32) i32 {
    assert(number > 0);
    var paths = CgroupPaths{};
    cgroup_paths(number, kill_signal, &paths);
    var roots: usize = 0;
    if (root_pidfd >= 0) {
        // The child itself, even if it moved itself to another cgroup.
        const stop = if (sig == sys.SIG.KILL) sig else sys.SIG.STOP;
        if (sys.errno(sys.pidfd_send_signal(root_pidfd, stop, 0)) == 0) {
            members[0] = .{ .pid = root_pid, .pidfd = root_pidfd, .sig = sig };
            roots = 1;
        }
    }
    if (sig == sys.SIG.KILL and cgroup.shared().has_kill == 1) {
        const killed = write_file(paths.dir[0..paths.dir_len], "/cgroup.kill", "1");
        if (killed == 0) return 1;
        if (roots == 1) return 1;
        return if (killed == -sys.E.NOENT) -sys.E.SRCH else killed;
    }
    var count = roots;
    const outcome = collect_cgroup(&paths, &count, sig);
    if (count == 0) return if (outcome < 0) outcome else -sys.E.SRCH;
    return finish(roots, count, outcome);
}

/// Writes `value` to `dir ++ file`: 0 or -errno.
fn write_file(dir: []const u8, file: []const u8, value: []const u8) i32 {
    var path_buffer: [cgroup_path_max + 64]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "{s}{s}", .{ dir, file }) catch return -sys.E.NAMETOOLONG;
    const opened = sys.openat(path.ptr, sys.O.WRONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return -sys.errno(opened);
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    const rc = sys.write(fd, value.ptr, value.len);
    return -sys.errno(rc);
}

/// Reads `cgroup.procs` until a pass adds no member; every member added is held and stopped.
fn collect_cgroup(paths: *const CgroupPaths, count: *usize, sig: i32) i32 {
    var scans: u32 = 0;
    while (scans < scans_max) : (scans += 1) {
        const found = list_procs(paths);
        if (found < 0) return @intCast(found);
        var added: i32 = 0;
        for (pairs[0..@intCast(found)]) |pair| {
            if (member_index(pair.pid, count.*) != null) continue;
            if (count.* == members_max) return -sys.E.TOOBIG;
            const held = hold_in_cgroup(pair.pid, paths, sig) orelse continue;
            members[count.*] = held;
            count.* += 1;
            added += 1;
        }
        if (added == 0) return 0;
    }
    return -sys.E.AGAIN;
}

/// The pids in the cgroup's `cgroup.procs`, into `pairs`: the count, or -errno (-ESRCH when
/// the cgroup is gone).
fn list_procs(paths: *const CgroupPaths) isize {
    var path_buffer: [cgroup_path_max + 64]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "{s}/cgroup.procs", .{paths.dir[0..paths.dir_len]}) catch unreachable;
    const opened = sys.openat(path.ptr, sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) == sys.E.NOENT) return -@as(isize, sys.E.SRCH);
    if (sys.errno(opened) != 0) return -@as(isize, sys.errno(opened));
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    var buffer: [4096]u8 = undefined;
    var found: usize = 0;
    var pid: i32 = 0;
    while (found < processes_max) {
        const n = sys.read(fd, &buffer, buffer.len);
        if (sys.errno(n) != 0) return -@as(isize, sys.errno(n));
        if (n == 0) break;
        // One pid a line; a number may span two reads.
        for (buffer[0..n]) |c| {
            if (c >= '0' and c <= '9') {
                pid = pid *% 10 +% (c - '0');
            } else if (c == '\n' and pid > 0 and found < processes_max) {
                pairs[found] = .{ .pid = pid, .ppid = 0 };
                found += 1;
                pid = 0;
            }
        }
    }
    return @intCast(found);
}

/// A pidfd of `pid`, stopped, if it is still in the cgroup once held; else null.
fn hold_in_cgroup(pid: i32, paths: *const CgroupPaths, sig: i32) ?Member {
    const opened = sys.pidfd_open(pid);
    if (sys.errno(opened) != 0) return null; // Gone meanwhile.
    const pidfd = sys.int(opened);
    // A pid reused before the pidfd was opened names a process outside the cgroup, unless
    // it truly is in it (then it is a member all the same).
    if (!in_cgroup(pid, paths) or sys.errno(sys.pidfd_send_signal(pidfd, sys.SIG.STOP, 0)) != 0) {
        _ = sys.close(pidfd);
        return null;
    }
    return .{ .pid = pid, .pidfd = pidfd, .sig = sig };
}

fn in_cgroup(pid: i32, paths: *const CgroupPaths) bool {
    var path_buffer: [32]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "/proc/{d}/cgroup", .{pid}) catch unreachable;
    var content: [4096]u8 = undefined;
    const text = cgroup.read_small(path.ptr, &content) orelse return false;
    const line = cgroup.cgroup_line(text) orelse return false;
    return std.mem.eql(u8, line, paths.relative[0..paths.relative_len]);
}
