//! The helper's side of the `helper` backend: its start and each message from the host. Runs in
//! zig/src/helper/main.zig, the helper executable.

const std = @import("std");
const abi = @import("../../abi.zig");
const os_zig = @import("../../sys/os.zig");
const sys = os_zig.sys;
const portable = @import("portable.zig");

const assert = std.debug.assert;

const host_zig = @import("host.zig");
const helper_env_max = host_zig.helper_env_max;
const protocol_zig = @import("protocol.zig");
const HelperMessage = protocol_zig.HelperMessage;
const send_message = protocol_zig.send_message;
const child_zig = @import("../../common/child.zig");
const inherited_fds = child_zig.inherited_fds;
const memory_zig = @import("../../common/memory.zig");
const setup_memory = memory_zig.setup_memory;
const use_region = memory_zig.use_region;
const owner_zig = @import("../../common/owner.zig");
const clean_up_published = owner_zig.clean_up_published;
const host_exited = owner_zig.host_exited;
const leads_group = owner_zig.leads_group;
const owner_main = owner_zig.owner_main;
const spawn_child = owner_zig.spawn_child;
const watch_child = owner_zig.watch_child;
const region_zig = @import("../../common/region.zig");
const SlotState = region_zig.SlotState;
const region_len = region_zig.region_len;
const region_request_area = region_zig.region_request_area;
const region_request_len = region_zig.region_request_len;
const request_zig = @import("../../common/request.zig");
const prepare_plan = request_zig.prepare_plan;
const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const groups_max = state_zig.groups_max;
const helper_pidfds = &state_zig.helper_pidfds;
const helper_wake_fds = &state_zig.helper_wake_fds;
const in_helper = state_zig.in_helper;
const owner_pidfd = state_zig.owner_pidfd;

/// The helper executable's main: takes the region from the host's first message, says hello,
/// and runs the owner's loop until the host hangs up. Returns only if it could not start.
pub fn helper_main() u8 {
    comptime assert(in_helper);
    // Only the socket (3) is kept: the host's stdio and any descriptor it leaked without
    // close-on-exec stay out of the helper and so out of every child.
    const null_fd = sys.openat("/dev/null", sys.O.RDWR, 0);
    if (sys.errno(null_fd) != 0) return 1;
    for ([_]i32{ 0, 1, 2 }) |fd| {
        if (sys.int(null_fd) != fd) _ = sys.dup3(sys.int(null_fd), fd, 0);
    }
    if (sys.int(null_fd) > 2) _ = sys.close(sys.int(null_fd));
    _ = sys.close_range(4, std.math.maxInt(u32), 0);
    const attached = helper_attach();
    if (attached != 0) return attached;
    if (helper_hello() != 0) return 5;
    _ = owner_main(0);
    return 6;
}

/// Both helpers' start: the host's first message on the socket (3) gives the region, mapped
/// and set up here, the host's pid and the limits it had when it started us, which its
/// children's are compared with (Zig's start code raised our RLIMIT_STACK, and with it the
/// children's ARG_MAX). 0, or the helper's exit code for the step that failed (2 to 4).
pub fn helper_attach() u8 {
    // The region's words are shared with the host: shared waits and wakes on them.
    sys.futex_shared = true;
    var msg: HelperMessage = undefined;
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    const rc = sys.recv_with_fds(3, std.mem.asBytes(&msg), &fds, &count);
    // A message of another size, or another build's: its region and messages may differ
    // from ours, so refuse, saying why where the message could be read (the host reports
    // EPROTO either way).
    if (rc != @sizeOf(HelperMessage) or msg.op != .init or count != 1) return 2;
    if (msg.index != abi.abi_version or msg.build_id != protocol_zig.build_id()) {
        var refusal = std.mem.zeroes(HelperMessage);
        refusal.op = .hello;
        refusal.pid = sys.getpid();
        refusal.err_errno = sys.E.PROTO;
        refusal.build_id = protocol_zig.build_id();
        // Nothing to do if it fails: exiting says the same.
        _ = send_message(3, &refusal, &.{});
        return 2;
    }
    const addr = sys.mmap_shared(fds[0], region_len);
    if (sys.errno(addr) != 0) return 3;
    g.init_pid = sys.getpid();
    use_region(addr, fds[0]);
    g.memory_ready = true;
    if (setup_memory() < 0) return 4;
    g.host_pid = msg.pid;
    g.request_efd = 3;
    var resource: u32 = 0;
    while (resource < sys.rlimit_count) : (resource += 1) {
        // EPERM, EINVAL: a limit we cannot take back (or this OS lacks); a child whose host
        // differs gets it set.
        _ = sys.prlimit(0, resource, &msg.rlimits[resource], null);
    }
    return 0;
}

/// The helper's answer to the host's first message: its pid. 0, or -errno.
pub fn helper_hello() i32 {
    var msg = std.mem.zeroes(HelperMessage);
    msg.op = .hello;
    msg.pid = sys.getpid();
    return -sys.errno(send_message(3, &msg, &.{}));
}

/// One message from the host; at EOF (the host exited) the helper applies each child's
/// `killOnParentExit` and exits.
pub fn helper_serve() void {
    var msg: HelperMessage = undefined;
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    const rc = sys.recv_with_fds(g.request_efd, std.mem.asBytes(&msg), &fds, &count);
    const e = sys.errno(rc);
    // EOF or ECONNRESET (EPROTO on a stream: EOF inside a message): the host closed its end,
    // it exited. Any other error (EINTR, EAGAIN, ENOMEM, ENOBUFS) loses no message: the
    // socket stays readable and the loop comes back.
    if ((e == 0 and rc == 0) or e == sys.E.CONNRESET or (os_zig.portable and e == sys.E.PROTO)) {
        if (os_zig.portable) portable.host_exited() else host_exited();
    }
    if (e != 0) return;
    const received = fds[0..count];
    if (rc != @sizeOf(HelperMessage)) return close_all(received);
    switch (msg.op) {
        .listener_open => {
            if (msg.index >= abi.listeners_max or count != 1) return close_all(received);
            if (helper_wake_fds[msg.index] >= 0) _ = sys.close(helper_wake_fds[msg.index]);
            helper_wake_fds[msg.index] = received[0];
        },
        .spawn => if (os_zig.portable) portable.helper_spawn(&msg, received) else helper_spawn(&msg, received),
        else => close_all(received),
    }
}

fn close_all(fds: []const i32) void {
    for (fds) |fd| _ = sys.close(fd);
}

/// The actions of a helper's child: the request's, then a dup for each inherited descriptor.
var helper_actions: [if (in_helper) abi.fd_actions_max + sys.scm_max_fd else 0]abi.FdAction = undefined;
var helper_envp: [if (in_helper) helper_env_max + 1 else 0]?[*:0]const u8 = undefined;

fn helper_spawn(msg: *const HelperMessage, fds: []const i32) void {
    clean_up_published();
    var reply = std.mem.zeroes(HelperMessage);
    reply.op = .spawned;
    reply.pid = -1;
    const request: *abi.Request = @ptrCast(@alignCast(region_request_area()));
    var plan: ChildPlan = undefined;
    const e: ?i32 = if (msg.request_len > region_request_len or msg.index >= abi.slots_max)
        sys.E.INVAL
    else
        prepare_plan(request, msg.request_len, &plan);
    if (e == null and helper_plan(&plan, msg, fds)) {
        g.next_unused = @max(g.next_unused, msg.index + 1);
        spawn_child(&plan);
    } else {
        request.err_errno = e orelse sys.E.INVAL;
        request.err_step = .request;
    }
    // The child has its own copies (it has exec'd or failed: CLONE_VFORK). The helper keeps
    // none of the host's descriptors, and drops them before it answers, so that once the host
    // has the answer no copy of a child's pipe is left open in the helper.
    close_all(fds);
    reply.clone_mode = g.clone_mode;
    reply.pidfd_mode = g.pidfd_mode;
    reply.fd_table = g.fd_table_mode;
    reply.err_errno = request.err_errno;
    reply.err_step = request.err_step;
    reply.err_index = request.err_index;
    if (request.err_errno != 0) {
        _ = send_message(g.request_efd, &reply, &.{});
        return;
    }
    helper_child_started(request, msg.index);
    reply.pid = request.pid;
    const pidfd = owner_pidfd(msg.index).*;
    const sent: []const i32 = if (pidfd >= 0) &.{pidfd} else &.{};
    _ = send_message(g.request_efd, &reply, sent);
}

/// The slot of a child the helper spawned, as `serve_request` fills one for the reaper.
fn helper_child_started(request: *const abi.Request, index: u32) void {
    const slot = &g.slots[index];
    slot.pid = request.pid;
    helper_pidfds[index] = request.pidfd;
    slot.pgid = leads_group(request);
    slot.watched = 0;
    slot.spawned_ns = sys.clock_monotonic_ns();
    owner_zig.note_spawned();
    g.table.insert(request.pid, index);
    watch_child(index);
    @atomicStore(u32, &slot.state, SlotState.running, .release);
}

/// Gives the plan the received descriptors (in the order `helper_request` sent them), the
/// host's attributes and environment. False if the message does not fit the request.
pub fn helper_plan(plan: *ChildPlan, msg: *const HelperMessage, fds: []const i32) bool {
    var next: usize = 0;
    if (msg.has_cwd != 0) {
        if (fds.len == 0) return false;
        plan.cwd_fd = fds[0];
        next = 1;
    }
    for (plan.actions) |*action| switch (action.kind) {
        .dup, .handover, .pipe_to_child, .pipe_from_child => {
            if (next == fds.len) return false;
            action.fd = fds[next];
            next += 1;
        },
        .inherit => if (action.target <= 2) return false,
        .devnull, .file, .close, .copy => {},
    };
    const inherited = inherited_fds(plan);
    if (inherited.len > 0) {
        if (fds.len - next != inherited.len) return false;
        @memcpy(helper_actions[0..plan.actions.len], plan.actions);
        for (inherited, 0..) |fd, i| {
            helper_actions[plan.actions.len + i] = .{ .target = @intCast(fd), .kind = .dup, .fd = fds[next + i], .open_flags = 0, .mode = 0, .path_off = 0, .out_fd = -1, .reserved = 0 };
        }
        plan.actions = helper_actions[0 .. plan.actions.len + inherited.len];
        plan.request.flags &= ~abi.flag_inherit_fds;
        next += inherited.len;
    }
    if (next != fds.len) return false;
    if (msg.environ_off != abi.none and !helper_environ(plan, msg)) return false;
    plan.rlimit_mask = msg.rlimit_mask;
    plan.rlimits = msg.rlimits;
    plan.set_groups = if (msg.groups_count != abi.none) msg.groups[0..@min(msg.groups_count, groups_max)] else null;
    plan.groups_dropped = msg.groups_dropped != 0;
    plan.set_gid = if (msg.has_gid != 0) msg.gids else null;
    plan.set_uid = if (msg.has_uid != 0) msg.uids else null;
    plan.set_priority = if (msg.has_priority != 0) msg.priority else null;
    plan.set_affinity = if (msg.has_affinity != 0) msg.affinity else null;
    plan.attributes_ready = 1;
    return true;
}

fn helper_environ(plan: *ChildPlan, msg: *const HelperMessage) bool {
    if (msg.environ_count > helper_env_max or msg.environ_off > region_request_len) return false;
    const area = region_request_area();
    var offset: usize = msg.environ_off;
    for (0..msg.environ_count) |i| {
        const end = std.mem.indexOfScalarPos(u8, area[0..region_request_len], offset, 0) orelse return false;
        helper_envp[i] = @ptrCast(area + offset);
        offset = end + 1;
    }
    helper_envp[msg.environ_count] = null;
    plan.envp = &helper_envp;
    return true;
}

// ---------------------------------------------------------------------------------------------
// Large pipe buffers, for the pipes that carry bulk data.
