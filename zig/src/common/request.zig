//! Spawn requests: validation, the child plan, pipes, and the host's attributes at spawn time.

const std = @import("std");
const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;

const child_zig = @import("child.zig");
const cstr = child_zig.cstr;
const exits_zig = @import("exits.zig");
const slot_free = exits_zig.slot_free;
const fds_zig = @import("fds.zig");
const fd_errno = fds_zig.fd_errno;
const move_above_stdio = fds_zig.move_above_stdio;
const state_zig = @import("state.zig");
const Attributes = state_zig.Attributes;
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const groups_max = state_zig.groups_max;

pub fn snapshot_attributes(a: *Attributes) void {
    var resource: u32 = 0;
    while (resource < sys.rlimit_count) : (resource += 1) {
        _ = sys.prlimit(0, resource, null, &a.rlimits[resource]);
    }
    _ = sys.getresuid(&a.uids);
    _ = sys.getresgid(&a.gids);
    const rc = sys.getgroups(&a.groups);
    a.groups_count = if (sys.errno(rc) == 0) @intCast(rc) else 0;
    a.priority = sys.int(sys.getpriority());
    var mask = std.mem.zeroes(sys.CpuMask);
    a.affinity = if (sys.errno(sys.sched_getaffinity(&mask)) == 0) mask else null;
}

// ---------------------------------------------------------------------------------------------
// The reaper itself. Runs on its own stack in its own process; shares `g` with the host.

pub fn fail(request: *abi.Request, step: abi.Step, e: i32) i32 {
    request.err_errno = e;
    request.err_step = step;
    return -e;
}

pub fn release_slot(index: u32) void {
    slot_free(index);
    g.slots_in_use -= 1;
    state_zig.slots_in_use_changed();
}

const PipeResult = struct { errno: i32 = 0, index: u32 = abi.none };

pub fn open_pipes(actions: []abi.FdAction) PipeResult {
    for (actions, 0..) |*action, i| {
        action.out_fd = -1;
        const to_child = action.kind == .pipe_to_child;
        if (!to_child and action.kind != .pipe_from_child) continue;
        var fds: [2]i32 = undefined;
        const rc = sys.pipe2(&fds, sys.O.CLOEXEC);
        if (sys.errno(rc) != 0) {
            close_pipes(actions[0..i], true);
            return .{ .errno = sys.errno(rc), .index = @intCast(i) };
        }
        // A host with 0, 1 or 2 closed would otherwise get our pipe there.
        for (&fds, 0..) |*fd, end| {
            fd.* = move_above_stdio(fd.*) catch |e| {
                if (end == 0) _ = sys.close(fds[1]) else _ = sys.close(fds[0]);
                close_pipes(actions[0..i], true);
                return .{ .errno = fd_errno(e), .index = @intCast(i) };
            };
        }
        // The host's end is non-blocking (read by the event loop); the child's stays blocking.
        const host_end = if (to_child) fds[1] else fds[0];
        const child_end = if (to_child) fds[0] else fds[1];
        _ = sys.fcntl(host_end, sys.F.SETFL, sys.O.NONBLOCK);
        action.fd = child_end;
        action.out_fd = host_end;
    }
    return .{};
}

pub fn close_pipes(actions: []abi.FdAction, failed: bool) void {
    for (actions) |*action| {
        if (action.kind != .pipe_to_child and action.kind != .pipe_from_child) continue;
        if (action.out_fd < 0) continue;
        _ = sys.close(action.fd);
        action.fd = -1;
        if (failed) {
            _ = sys.close(action.out_fd);
            action.out_fd = -1;
        }
    }
}

/// Compares the host's attributes now with the reaper's copy; the child applies the changes.
pub fn host_attribute_changes(plan: *ChildPlan) void {
    const reaper = &g.attributes;
    var now: Attributes = undefined;
    snapshot_attributes(&now);
    plan.rlimit_mask = 0;
    for (now.rlimits, reaper.rlimits, 0..) |host, old, i| {
        if (host.cur == old.cur and host.max == old.max) continue;
        plan.rlimit_mask |= @as(u32, 1) << @intCast(i);
        plan.rlimits[i] = host;
    }
    plan.set_priority = if (now.priority != reaper.priority) 20 - now.priority else null;
    plan.set_affinity = null;
    if (now.affinity != null and reaper.affinity != null and !std.mem.eql(u64, &now.affinity.?, &reaper.affinity.?)) {
        plan.set_affinity = now.affinity;
    }
    plan.set_groups = null;
    plan.set_gid = null;
    plan.set_uid = null;
    const groups_changed = now.groups_count != reaper.groups_count or
        !std.mem.eql(u32, now.groups[0..now.groups_count], reaper.groups[0..reaper.groups_count]);
    if (groups_changed) {
        host_groups = now.groups;
        plan.set_groups = host_groups[0..now.groups_count];
    }
    if (!std.mem.eql(u32, &now.gids, &reaper.gids)) plan.set_gid = now.gids;
    if (!std.mem.eql(u32, &now.uids, &reaper.uids)) plan.set_uid = now.uids;
    request_credentials(plan);
}

/// The credentials the request asks for, into `plan` (over the host's changes, if any). With
/// another uid or gid and no groups, the supplementary groups are dropped: all or nothing.
pub fn request_credentials(plan: *ChildPlan) void {
    const request = plan.request;
    if (request.flags & abi.flag_groups != 0) {
        const list: [*]align(1) const u32 = @ptrCast(plan.base + request.groups_off);
        for (0..@min(request.groups_count, groups_max)) |i| host_groups[i] = list[i];
        plan.set_groups = host_groups[0..@min(request.groups_count, groups_max)];
    }
    if (request.flags & abi.flag_groups == 0 and request.flags & (abi.flag_uid | abi.flag_gid) != 0) {
        // Another uid or gid must not keep the host's supplementary groups (root's, say).
        plan.set_groups = host_groups[0..0];
        plan.groups_dropped = true;
    }
    if (request.flags & abi.flag_gid != 0) plan.set_gid = .{ request.gid, request.gid, request.gid };
    if (request.flags & abi.flag_uid != 0) plan.set_uid = .{ request.uid, request.uid, request.uid };
}
/// Only used under `g.lock` while a spawn is in flight.
var host_groups: [groups_max]u32 = undefined;

/// Validates the request buffer and builds argv/envp in its pointer area. Returns an errno.
pub fn prepare_plan(request: *abi.Request, len: usize, plan: *ChildPlan) ?i32 {
    if (len < @sizeOf(abi.Request) or request.buffer_len != len) return sys.E.INVAL;
    if (request.argc == 0 or request.fd_count > abi.fd_actions_max) return sys.E.INVAL;
    if (request.groups_count > groups_max) return sys.E.INVAL;
    if (request.rlimits_count > abi.rlimits_max) return sys.E.INVAL;
    const base: [*]u8 = @ptrCast(request);
    const pointers_needed = (@as(usize, request.argc) + 1 + request.envc + 1) * @sizeOf(usize);
    if (!in_bounds(len, request.pointers_off, pointers_needed)) return sys.E.INVAL;
    if (request.pointers_off % @alignOf(usize) != 0) return sys.E.INVAL;
    if (!in_bounds(len, request.strings_off, request.strings_len)) return sys.E.INVAL;
    const actions_off = @sizeOf(abi.Request);
    if (!in_bounds(len, actions_off, @as(usize, request.fd_count) * @sizeOf(abi.FdAction))) return sys.E.INVAL;
    for ([_]u32{ request.file_off, request.search_path_off, request.cwd_off }) |off| {
        if (off != abi.none and !string_in_bounds(base, len, off)) return sys.E.INVAL;
    }
    const actions: [*]abi.FdAction = @ptrCast(@alignCast(base + actions_off));
    for (actions[0..request.fd_count]) |action| {
        if (action.target < 0) return sys.E.INVAL;
        if (action.kind == .file and !string_in_bounds(base, len, action.path_off)) return sys.E.INVAL;
        if (@intFromEnum(action.kind) > @intFromEnum(abi.FdKind.handover)) return sys.E.INVAL;
        if (action.kind == .copy and action.fd < 0) return sys.E.INVAL;
    }
    if (request.flags & abi.flag_groups != 0 and !in_bounds(len, request.groups_off, @as(usize, request.groups_count) * 4)) return sys.E.INVAL;
    if (request.rlimits_count > 0 and !in_bounds(len, request.rlimits_off, @as(usize, request.rlimits_count) * @sizeOf(abi.RlimitEntry))) return sys.E.INVAL;
    if (request.flags & abi.flag_inherit_fds != 0 and !in_bounds(len, request.inherit_fds_off, @as(usize, request.inherit_fds_count) * 4)) return sys.E.INVAL;
    // A controlling terminal is taken by a session leader only.
    if (request.flags & abi.flag_controlling_tty != 0 and request.flags & abi.flag_setsid == 0) return sys.E.INVAL;

    const pointers: [*]?[*:0]const u8 = @ptrCast(@alignCast(base + request.pointers_off));
    const strings = base[request.strings_off..][0..request.strings_len];
    var offset: usize = 0;
    const total = @as(usize, request.argc) + request.envc;
    for (0..total) |i| {
        const end = std.mem.indexOfScalarPos(u8, strings, offset, 0) orelse return sys.E.INVAL;
        const slot = if (i < request.argc) i else i + 1;
        pointers[slot] = @ptrCast(strings.ptr + offset);
        offset = end + 1;
    }
    pointers[request.argc] = null;
    pointers[total + 1] = null;
    var envp: [*]const ?[*:0]const u8 = pointers + request.argc + 1;
    if (request.flags & abi.flag_host_environ != 0) {
        if (request.envc != 0 or request.environ_addr == 0) return sys.E.INVAL;
        const environ: *const ?[*]const ?[*:0]const u8 = @ptrFromInt(request.environ_addr);
        // A host with no environment at all has environ == NULL: use the empty list.
        if (environ.*) |host| envp = host;
    }
    plan.* = .{
        .request = request,
        .base = base,
        .argv = pointers,
        .envp = envp,
        .file = if (request.file_off != abi.none) cstr(base, request.file_off) else pointers[0].?,
        .actions = actions[0..request.fd_count],
    };
    return null;
}

fn in_bounds(len: usize, offset: u32, size: usize) bool {
    return offset <= len and size <= len - offset;
}

fn string_in_bounds(base: [*]u8, len: usize, offset: u32) bool {
    if (offset >= len) return false;
    return std.mem.indexOfScalar(u8, base[offset..len], 0) != null;
}

// ---------------------------------------------------------------------------------------------
// The helper backend. The same region (a memfd both map) and the same owner loop as the
// reaper, run by zig/src/helper/main.zig in a process of its own: it cannot read our memory
// nor use our descriptors, so each request is copied into the region and every descriptor a
// child gets crosses the socket with SCM_RIGHTS. Its children are never ours: it is started
// through a short-lived middle process and re-parented to init (or the host's subreaper).
