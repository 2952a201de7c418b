//! A cgroup per child (cgroup v2), for children spawned with `flag_cgroup`: the owner makes
//! `<host's cgroup>/private-spawn-<host pid>/<n>-<kill signal>` and clones the child straight
//! into it (clone3 `CLONE_INTO_CGROUP`, Linux 5.7+: atomic, unlike writing `cgroup.procs`
//! after the fact). Every process the child starts stays in it, double-forked or not, so a
//! tree signal reaches them all: `cgroup.kill` for SIGKILL (Linux 5.14+), else a walk of
//! `cgroup.procs` (tree.zig). The directory goes once it is empty: at the child's reap, or,
//! when a daemonized descendant keeps it populated, once `cgroup.events` says so. At the
//! host's exit the owner kills the cgroups of `killOnParentExit` children and removes what it
//! can. Anything missing (no cgroup2 mount, not writable, no clone3) leaves children without
//! a cgroup, and the reason in `CgroupShared` for `ph_info`.
//! Measured and chosen in docs/decisions/0012-cgroup-tree.md.

const std = @import("std");
const abi = @import("../abi.zig");
const sys = @import("../sys/linux.zig");

const assert = std.debug.assert;

const fds_zig = @import("fds.zig");
const tree = @import("tree.zig");
const region_zig = @import("region.zig");
const CgroupShared = region_zig.CgroupShared;
const cgroup_path_max = region_zig.cgroup_path_max;
const state_zig = @import("state.zig");
const g = &state_zig.g;

pub const State = struct {
    pub const unknown: u32 = 0;
    pub const active: u32 = 1;
    pub const unavailable: u32 = 2;
};


pub fn shared() *CgroupShared {
    return &g.region.cgroup;
}

/// Whether the owner puts children that ask for it into cgroups.
pub fn active() bool {
    return @atomicLoad(u32, &shared().state, .acquire) == State.active and g.cgroup_base_fd >= 0;
}

/// Children get no cgroup from now on, and `ph_info` says why.
pub fn disable(step: abi.CgroupStep, e: i32) void {
    const s = shared();
    if (s.state == State.unavailable) return;
    s.step = step;
    s.errno = e;
    @atomicStore(u32, &s.state, State.unavailable, .release);
}

/// The owner, at its start: finds the cgroup2 mount and the host's cgroup, makes the
/// library's directory under it and opens it. A new owner after one died reopens it.
pub fn setup(host_pid: i32) void {
    // A new owner (the last one died, or this is a forked copy) watches no cgroup yet; the
    // host's exit sweeps whatever is left under the directory.
    for (&lingering_used, 0..) |*used, index| {
        if (used.* and lingering[index].use.kept == not_kept) _ = sys.close(lingering[index].events_fd);
        used.* = false;
    }
    for (&kept) |*entry| {
        if (entry.state == .free) continue;
        _ = sys.close(entry.dir_fd);
        _ = sys.close(entry.events_fd);
        entry.* = .{};
    }
    pooled_count = 0;
    const s = shared();
    if (s.state == State.unavailable or g.cgroup_base_fd >= 0) return;
    if (s.state == State.unknown) {
        const found = find_paths(host_pid, s);
        if (found.step != .none) return disable(found.step, found.errno);
    }
    const path: [*:0]const u8 = @ptrCast(&s.path);
    const made = sys.mkdirat(sys.AT_FDCWD, path, 0o755);
    if (sys.errno(made) != 0 and sys.errno(made) != sys.E.EXIST) return disable(.mkdir, sys.errno(made));
    const opened = sys.openat(path, sys.O.RDONLY | sys.O.CLOEXEC | sys.O_DIRECTORY, 0);
    if (sys.errno(opened) != 0) return disable(.mkdir, sys.errno(opened));
    // Out of the range a child's descriptor table copies (decision 0003).
    g.cgroup_base_fd = fds_zig.move_to_pidfd_floor(sys.int(opened)) catch return disable(.mkdir, sys.E.MFILE);
    const kill = sys.openat_in(g.cgroup_base_fd, "cgroup.kill", sys.O.WRONLY | sys.O.CLOEXEC, 0);
    s.has_kill = @intFromBool(sys.errno(kill) == 0);
    if (sys.errno(kill) == 0) _ = sys.close(sys.int(kill));
    @atomicStore(u32, &s.state, State.active, .release);
}

const Found = struct { step: abi.CgroupStep = .none, errno: i32 = 0 };

/// Fills `s.path` and `s.relative` from /proc/self/mountinfo and /proc/<host_pid>/cgroup.
fn find_paths(host_pid: i32, s: *CgroupShared) Found {
    var own: [cgroup_path_max]u8 = undefined;
    const cgroup_path = host_cgroup(host_pid, &own) orelse return .{ .step = .host_cgroup, .errno = sys.E.NOENT };
    var mount_point: [cgroup_path_max]u8 = undefined;
    const inside = find_mount(cgroup_path, &mount_point) orelse return .{ .step = .mount, .errno = sys.E.NOENT };
    // "/" is the root cgroup: no component to add.
    const trim = struct {
        fn f(p: []const u8) []const u8 {
            return if (std.mem.eql(u8, p, "/")) "" else p;
        }
    }.f;
    const path = std.fmt.bufPrintZ(&s.path, "{s}{s}/private-spawn-{d}", .{ trim(mount_point[0..inside.mount_len]), trim(cgroup_path[inside.root_len..]), host_pid }) catch
        return .{ .step = .mkdir, .errno = sys.E.NAMETOOLONG };
    _ = std.fmt.bufPrintZ(&s.relative, "{s}/private-spawn-{d}", .{ trim(cgroup_path), host_pid }) catch
        return .{ .step = .mkdir, .errno = sys.E.NAMETOOLONG };
    assert(path.len > 0 and path[0] == '/');
    return .{};
}

/// The host's cgroup v2 path (the "0::" line of /proc/<pid>/cgroup), or null.
fn host_cgroup(host_pid: i32, out: *[cgroup_path_max]u8) ?[]const u8 {
    var path_buffer: [40]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "/proc/{d}/cgroup", .{host_pid}) catch unreachable;
    var content: [4096]u8 = undefined;
    const text = read_small(path, &content) orelse return null;
    const line = cgroup_line(text) orelse return null;
    if (line.len == 0 or line[0] != '/' or line.len > out.len or std.mem.endsWith(u8, line, " (deleted)")) return null;
    @memcpy(out[0..line.len], line);
    return out[0..line.len];
}

/// The path after "0::" in a /proc/<pid>/cgroup text, or null.
pub fn cgroup_line(text: []const u8) ?[]const u8 {
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        if (std.mem.startsWith(u8, line, "0::")) return line[3..];
    }
    return null;
}

const Inside = struct { mount_len: usize, root_len: usize };

/// The cgroup2 mount whose root contains `cgroup_path`: its mount point into `out`, and how
/// much of `cgroup_path` its root covers. Null when there is none.
fn find_mount(cgroup_path: []const u8, out: *[cgroup_path_max]u8) ?Inside {
    const opened = sys.openat("/proc/self/mountinfo", sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return null;
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    var buffer: [8192]u8 = undefined;
    var carried: usize = 0;
    while (true) {
        const n = sys.read(fd, buffer[carried..].ptr, buffer.len - carried);
        if (sys.errno(n) != 0) return null;
        const end = carried + n;
        var start: usize = 0;
        while (std.mem.indexOfScalarPos(u8, buffer[0..end], start, '\n')) |newline| {
            if (mount_line(buffer[start..newline], cgroup_path, out)) |inside| return inside;
            start = newline + 1;
        }
        if (n == 0) return null;
        // A line longer than the buffer is no cgroup2 line of interest: drop it.
        carried = if (start == 0) 0 else end - start;
        std.mem.copyForwards(u8, buffer[0..carried], buffer[start..end]);
    }
}

/// "36 35 0:30 <root> <mount point> <options> [optional fields] - <fstype> <source> <options>"
fn mount_line(line: []const u8, cgroup_path: []const u8, out: *[cgroup_path_max]u8) ?Inside {
    const dash = std.mem.indexOf(u8, line, " - ") orelse return null;
    var tail = std.mem.tokenizeScalar(u8, line[dash + 3 ..], ' ');
    if (!std.mem.eql(u8, tail.next() orelse return null, "cgroup2")) return null;
    var fields = std.mem.tokenizeScalar(u8, line[0..dash], ' ');
    _ = fields.next() orelse return null; // mount id
    _ = fields.next() orelse return null; // parent id
    _ = fields.next() orelse return null; // major:minor
    const root = fields.next() orelse return null;
    const mount_point = fields.next() orelse return null;
    // Octal escapes (a space is "\040"): such paths are not worth the parsing.
    if (std.mem.indexOfScalar(u8, root, '\\') != null or std.mem.indexOfScalar(u8, mount_point, '\\') != null) return null;
    const root_len: usize = if (std.mem.eql(u8, root, "/")) 0 else root.len;
    if (root_len > 0) {
        if (!std.mem.startsWith(u8, cgroup_path, root)) return null;
        if (cgroup_path.len > root.len and cgroup_path[root.len] != '/') return null;
    }
    if (mount_point.len > out.len) return null;
    @memcpy(out[0..mount_point.len], mount_point);
    return .{ .mount_len = mount_point.len, .root_len = root_len };
}

/// Reads a small file whole into `buffer`, or null.
pub fn read_small(path: [*:0]const u8, buffer: []u8) ?[]const u8 {
    const opened = sys.openat(path, sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return null;
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    var len: usize = 0;
    while (len < buffer.len) {
        const n = sys.read(fd, buffer[len..].ptr, buffer.len - len);
        if (sys.errno(n) != 0) return null;
        if (n == 0) break;
        len += n;
    }
    return buffer[0..len];
}

/// A child cgroup's name: "<n>-<kill signal>", so the owner knows at the host's exit which
/// to kill even after the child itself is gone.
pub fn name(buffer: *[24]u8, number: u32, kill_signal: i32) [:0]const u8 {
    assert(number > 0);
    return std.fmt.bufPrintZ(buffer, "{d}-{d}", .{ number, kill_signal }) catch unreachable;
}

// ---------------------------------------------------------------------------------------------
// Child cgroups, kept for reuse: a mkdir, the opens and an rmdir cost about 100 us of the
// owner's time per child, and cloning into a cgroup that exists costs next to nothing, so an
// emptied cgroup goes back to a pool instead of being removed (decision 0012). Up to
// `kept_max` cgroups are kept with a descriptor of the directory (for CLONE_INTO_CGROUP) and
// of its `cgroup.events` (whether it is empty); beyond that a cgroup is made and removed per
// child. A cgroup is reused only for a child with the same kill signal (its name says it).

pub const kept_max = 64;
pub const not_kept: u8 = 0xff;

const KeptState = enum(u8) { free, pooled, busy };
const Kept = struct {
    state: KeptState = .free,
    number: u32 = 0,
    kill_signal: i32 = 0,
    dir_fd: i32 = -1,
    events_fd: i32 = -1,
    /// When it went back to the pool (monotonic).
    pooled_ns: u64 = 0,
};
var kept = [_]Kept{.{}} ** kept_max;
var pooled_count: u32 = 0;
/// A pooled cgroup unused for this long is removed, so an idle host leaves no empty
/// directories behind (`trim_pool`).
pub const pool_idle_ms = 1000;

/// A child's cgroup: its number and kill signal (its name), a descriptor of its directory,
/// and its index in `kept`, or `not_kept`. Number 0: no cgroup.
pub const Use = struct { number: u32 = 0, kill_signal: i32 = 0, dir_fd: i32 = -1, kept: u8 = not_kept };

/// The owner, before a clone: a cgroup for the next child, pooled or new; `.number` 0 when
/// this child goes without one (the directory could not be made: ENOSPC or EAGAIN past
/// `cgroup.max.descendants`, EMFILE, ...).
pub fn acquire(kill_signal: i32) Use {
    if (!active()) return .{};
    for (&kept, 0..) |*entry, index| {
        if (entry.state != .pooled or entry.kill_signal != kill_signal) continue;
        entry.state = .busy;
        pooled_count -= 1;
        return .{ .number = entry.number, .kill_signal = kill_signal, .dir_fd = entry.dir_fd, .kept = @intCast(index) };
    }
    const s = shared();
    s.next +%= 1;
    if (s.next == 0) s.next = 1;
    var buffer: [24]u8 = undefined;
    const child_name = name(&buffer, s.next, kill_signal);
    const made = sys.mkdirat(g.cgroup_base_fd, child_name.ptr, 0o755);
    if (sys.errno(made) != 0) return .{};
    const opened = sys.openat_in(g.cgroup_base_fd, child_name.ptr, sys.O_PATH | sys.O_DIRECTORY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) {
        _ = sys.unlinkat(g.cgroup_base_fd, child_name.ptr, sys.AT_REMOVEDIR);
        return .{};
    }
    var use = Use{ .number = s.next, .kill_signal = kill_signal, .dir_fd = sys.int(opened) };
    keep(&use);
    return use;
}

/// Makes a new cgroup one of the `kept` ones if there is room (a pooled one of another
/// kill signal gives its place up).
fn keep(use: *Use) void {
    const index = free_kept() orelse return;
    const events = sys.openat_in(use.dir_fd, "cgroup.events", sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(events) != 0) return;
    // Out of the range a child's descriptor table copies, as the directory's.
    const events_fd = fds_zig.move_to_pidfd_floor(sys.int(events)) catch return;
    const dir_fd = fds_zig.move_to_pidfd_floor(use.dir_fd) catch {
        use.dir_fd = -1;
        _ = sys.close(events_fd);
        return;
    };
    use.dir_fd = dir_fd;
    use.kept = @intCast(index);
    kept[index] = .{ .state = .busy, .number = use.number, .kill_signal = use.kill_signal, .dir_fd = dir_fd, .events_fd = events_fd };
}

fn free_kept() ?usize {
    for (kept, 0..) |entry, index| if (entry.state == .free) return index;
    for (&kept, 0..) |*entry, index| {
        if (entry.state != .pooled) continue;
        drop_kept(entry);
        return index;
    }
    return null;
}

/// Closes a kept cgroup's descriptors and removes it (it is empty: pooled).
fn drop_kept(entry: *Kept) void {
    if (entry.state == .pooled) pooled_count -= 1;
    _ = sys.close(entry.dir_fd);
    _ = sys.close(entry.events_fd);
    _ = remove(entry.number, entry.kill_signal);
    entry.* = .{};
}

/// After the clone: the descriptor of a cgroup that is not kept is closed.
pub fn after_clone(use: *Use) void {
    if (use.kept == not_kept and use.dir_fd >= 0) _ = sys.close(use.dir_fd);
    use.dir_fd = -1;
}

/// Removes a child cgroup that no process is in any more; true if it is gone. EBUSY: still
/// populated (a descendant lives on); ENOENT: gone already.
pub fn remove(number: u32, kill_signal: i32) bool {
    if (g.cgroup_base_fd < 0) return false;
    var buffer: [24]u8 = undefined;
    const rc = sys.unlinkat(g.cgroup_base_fd, name(&buffer, number, kill_signal).ptr, sys.AT_REMOVEDIR);
    return sys.errno(rc) == 0 or sys.errno(rc) == sys.E.NOENT;
}

/// Whether `cgroup.events` (read through `fd`) says "populated 0"; reading clears its poll
/// event (kernfs). A read that fails counts as populated: the cgroup is not reused then.
fn empty(events_fd: i32) bool {
    var content: [256]u8 = undefined;
    const n = sys.pread(events_fd, &content, content.len, 0);
    if (sys.errno(n) != 0) return false;
    return std.mem.indexOf(u8, content[0..n], "populated 0") != null;
}

/// How long the owner may sleep before `trim_pool` has work: -1 while nothing is pooled.
pub fn trim_timeout_ms() i32 {
    return if (pooled_count > 0) pool_idle_ms else -1;
}

/// Removes the cgroups pooled for longer than `pool_idle_ms`.
pub fn trim_pool() void {
    if (pooled_count == 0) return;
    const now_ns = sys.clock_monotonic_ns();
    for (&kept) |*entry| {
        if (entry.state == .pooled and now_ns -| entry.pooled_ns >= pool_idle_ms * 1_000_000) drop_kept(entry);
    }
}

// ---------------------------------------------------------------------------------------------
// Cgroups that outlive their child (a daemonized descendant keeps them populated): watched
// through `cgroup.events`, which polls with EPOLLPRI when "populated" changes.

pub const lingering_max = 256;
const Lingering = struct { use: Use, events_fd: i32 };
var lingering: [lingering_max]Lingering = undefined;
var lingering_used = [_]bool{false} ** lingering_max;

/// The cgroup of a reaped child (or of a failed spawn): back to the pool, or removed, once
/// it is empty; `reuse` false when a host thread may still be signalling it (it is removed
/// then, never handed to another child). Returns the index to add to the owner's epoll set
/// (`lingering_fd`) while a descendant keeps it populated, or null when there is nothing to
/// watch (or more lingering cgroups than `lingering_max`: the host's exit sweeps those).
pub fn release(use: Use, reuse: bool) ?u32 {
    if (use.number == 0) return null;
    if (use.kept != not_kept) {
        const entry = &kept[use.kept];
        assert(entry.state == .busy and entry.number == use.number);
        if (empty(entry.events_fd)) {
            if (!reuse) {
                drop_kept(entry);
                return null;
            }
            entry.state = .pooled;
            entry.pooled_ns = sys.clock_monotonic_ns();
            pooled_count += 1;
            return null;
        }
        return linger(use, entry.events_fd);
    }
    if (remove(use.number, use.kill_signal)) return null;
    var buffer: [64]u8 = undefined;
    var child_buffer: [24]u8 = undefined;
    const child_name = name(&child_buffer, use.number, use.kill_signal);
    const path = std.fmt.bufPrintZ(&buffer, "{s}/cgroup.events", .{child_name}) catch unreachable;
    const opened = sys.openat_in(g.cgroup_base_fd, path.ptr, sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return null;
    return linger(use, sys.int(opened)) orelse {
        _ = sys.close(sys.int(opened));
        return null;
    };
}

fn linger(use: Use, events_fd: i32) ?u32 {
    const index = std.mem.indexOfScalar(bool, &lingering_used, false) orelse return null;
    lingering[index] = .{ .use = use, .events_fd = events_fd };
    lingering_used[index] = true;
    return @intCast(index);
}

pub fn lingering_fd(index: u32) i32 {
    assert(lingering_used[index]);
    return lingering[index].events_fd;
}

/// `cgroup.events` of a lingering cgroup changed: true once it is empty and back in the pool
/// or removed (the caller takes its descriptor out of the epoll set, then calls `forget`).
pub fn lingering_changed(index: u32) bool {
    if (!lingering_used[index]) return false;
    const entry = lingering[index];
    if (!empty(entry.events_fd)) return false;
    if (entry.use.kept != not_kept) {
        // Rare enough not to pool: removed, its place free for a new one.
        drop_kept(&kept[entry.use.kept]);
        return true;
    }
    return remove(entry.use.number, entry.use.kill_signal);
}

/// Stops watching a lingering cgroup (out of the epoll set first).
pub fn forget(index: u32) void {
    assert(lingering_used[index]);
    if (lingering[index].use.kept == not_kept) _ = sys.close(lingering[index].events_fd);
    lingering_used[index] = false;
}

// ---------------------------------------------------------------------------------------------
// The host's exit.

/// How long the owner waits at the host's exit for killed cgroups to empty before it removes
/// them; it holds the host's stdout open meanwhile (see owner.zig `host_exited`).
const exit_wait_ms = 250;
const exit_retry_ms = 5;

/// The owner, once the host is gone: every child cgroup named with a kill signal gets it
/// (all its processes, whether their child is alive or not), then the empty child cgroups
/// and the library's directory are removed. Cgroups of children without `killOnParentExit`
/// that still hold processes stay, and so does the directory above them.
pub fn host_exited() void {
    if (g.cgroup_base_fd < 0) return;
    _ = sweep(true);
    var waited_ms: u32 = 0;
    while (sweep(false) > 0 and waited_ms < exit_wait_ms) : (waited_ms += exit_retry_ms) {
        var none: [1]sys.PollFd = undefined;
        _ = sys.poll(&none, 0, exit_retry_ms);
    }
    const path: [*:0]const u8 = @ptrCast(&shared().path);
    // ENOTEMPTY, EBUSY: a cgroup above is still populated.
    _ = sys.unlinkat(sys.AT_FDCWD, path, sys.AT_REMOVEDIR);
}

/// One pass over the library's directory: with `kill`, signals each cgroup named with a kill
/// signal; else removes each child cgroup it can. Returns how many killed ones remain.
fn sweep(kill: bool) u32 {
    const opened = sys.openat_in(g.cgroup_base_fd, ".", sys.O.RDONLY | sys.O.CLOEXEC | sys.O_DIRECTORY, 0);
    if (sys.errno(opened) != 0) return 0;
    const dir = sys.int(opened);
    defer _ = sys.close(dir);
    var buffer: [4096]u8 align(8) = undefined;
    var remaining: u32 = 0;
    while (true) {
        const n = sys.getdents64(dir, &buffer, buffer.len);
        if (sys.errno(n) != 0 or n == 0) break;
        var offset: usize = 0;
        while (offset < n) {
            const entry: *const sys.Dirent64 = @ptrCast(@alignCast(&buffer[offset]));
            assert(entry.reclen >= @sizeOf(sys.Dirent64) and offset + entry.reclen <= n);
            const entry_name: [*:0]const u8 = @ptrCast(&buffer[offset + @offsetOf(sys.Dirent64, "type") + 1]);
            offset += entry.reclen;
            const parsed = parse_name(std.mem.span(entry_name)) orelse continue;
            if (kill) {
                if (parsed.kill_signal > 0) tree.signal_cgroup_after_host(parsed.kill_signal, parsed.number, parsed.kill_signal);
            } else if (!remove(parsed.number, parsed.kill_signal) and parsed.kill_signal > 0) {
                remaining += 1;
            }
        }
    }
    return remaining;
}

const Parsed = struct { number: u32, kill_signal: i32 };

/// "<n>-<signal>" (`name`), or null for anything else (the cgroup's own files).
fn parse_name(text: []const u8) ?Parsed {
    const dash = std.mem.indexOfScalar(u8, text, '-') orelse return null;
    const number = std.fmt.parseInt(u32, text[0..dash], 10) catch return null;
    const kill_signal = std.fmt.parseInt(i32, text[dash + 1 ..], 10) catch return null;
    if (number == 0 or kill_signal < 0 or kill_signal > 64) return null;
    return .{ .number = number, .kill_signal = kill_signal };
}

test "child cgroup names" {
    var buffer: [24]u8 = undefined;
    const text = name(&buffer, 42, 9);
    try std.testing.expectEqualStrings("42-9", text);
    const parsed = parse_name(text).?;
    try std.testing.expectEqual(@as(u32, 42), parsed.number);
    try std.testing.expectEqual(@as(i32, 9), parsed.kill_signal);
    try std.testing.expect(parse_name("cgroup.procs") == null);
    try std.testing.expect(parse_name("0-9") == null);
}

test "the cgroup v2 line and mount lines" {
    try std.testing.expectEqualStrings("/a/b", cgroup_line("4:memory:/x\n0::/a/b\n").?);
    try std.testing.expect(cgroup_line("4:memory:/x\n") == null);
    var out: [cgroup_path_max]u8 = undefined;
    const line = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
    const inside = mount_line(line, "/user.slice/x.scope", &out).?;
    try std.testing.expectEqualStrings("/sys/fs/cgroup/unified", out[0..inside.mount_len]);
    try std.testing.expectEqual(@as(usize, 0), inside.root_len);
    const nested = "41 31 0:38 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw";
    try std.testing.expectEqual(@as(usize, 11), mount_line(nested, "/user.slice/x.scope", &out).?.root_len);
    try std.testing.expect(mount_line(nested, "/user.slicer", &out) == null);
    try std.testing.expect(mount_line("36 35 98:0 / /mnt rw - ext4 /dev/root rw", "/", &out) == null);
}
