//! The `helper` backend, seen from the host: start the helper, send it requests and descriptors,
//! notice its death.

const std = @import("std");
const abi = @import("../../abi.zig");
const os_zig = @import("../../sys/os.zig");
const sys = os_zig.sys;
const portable = @import("portable.zig");

const protocol_zig = @import("protocol.zig");
const HelperMessage = protocol_zig.HelperMessage;
const HelperOp = protocol_zig.HelperOp;
const RequestFailure = protocol_zig.RequestFailure;
const send_message = protocol_zig.send_message;
const child_zig = @import("../../common/child.zig");
const inherited_fds = child_zig.inherited_fds;
const exits_zig = @import("../../common/exits.zig");
const slot_publish = exits_zig.slot_publish;
const fds_zig = @import("../../common/fds.zig");
const fd_errno = fds_zig.fd_errno;
const move_above_stdio = fds_zig.move_above_stdio;
const move_to_pidfd_floor = fds_zig.move_to_pidfd_floor;
const owner_zig = @import("../../common/owner.zig");
const group_pidfd = owner_zig.group_pidfd;
const leads_group = owner_zig.leads_group;
const region_zig = @import("../../common/region.zig");
const SlotState = region_zig.SlotState;
const listeners = region_zig.listeners;
const region_request_area = region_zig.region_request_area;
const region_request_len = region_zig.region_request_len;
const request_zig = @import("../../common/request.zig");
const snapshot_attributes = request_zig.snapshot_attributes;
const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const liveness_check_ms = state_zig.liveness_check_ms;
const library_zig = @import("../../library.zig");
const choice = &library_zig.choice;

/// Whether the helper's end of the socket is closed (it exited), without reading.
pub fn helper_hung_up() bool {
    const sock = @atomicLoad(i32, &g.helper_sock, .monotonic);
    if (sock < 0) return true;
    var fds = [1]sys.PollFd{.{ .fd = sock, .events = sys.POLLIN, .revents = 0 }};
    const rc = sys.poll(&fds, 1, 0);
    return sys.errno(rc) == 0 and rc == 1 and fds[0].revents & (sys.POLLHUP | sys.POLLERR) != 0;
}

pub fn helper_alive_locked() bool {
    if (g.helper_pid == 0) return false;
    if (!helper_hung_up()) return true;
    helper_died_locked();
    return false;
}

/// The helper died while the host lives: its running children are reported lost (with the
/// host's pidfd of each, which the caller owns then); the next spawn starts another helper.
fn helper_died_locked() void {
    g.helper_pid = 0;
    if (g.helper_sock >= 0) _ = sys.close(g.helper_sock);
    @atomicStore(i32, &g.helper_sock, -1, .monotonic);
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (@atomicRmw(u32, &slot.reap_pending, .Xchg, 0, .seq_cst) != 0) {
            _ = sys.futex_wake(&slot.reap_pending, std.math.maxInt(i32));
        }
        if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        slot.kind = .lost;
        slot.value = 0;
        slot_publish(index);
    }
}

/// Starts the helper: queues the region's memfd on a new socket, launches the executable with
/// the other end as its descriptor 3, and waits for its hello (its pid).
pub fn start_helper_locked() i32 {
    if (g.region_fd < 0) return -sys.E.NOSYS;
    if (choice.helper_path_len == 0) return -sys.E.NOENT;
    sys.futex_shared = true;
    var fds: [2]i32 = undefined;
    var rc = if (os_zig.portable) sys.socketpair_stream(&fds) else sys.socketpair(sys.SOCK_SEQPACKET | sys.SOCK_CLOEXEC, &fds);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    const host_end = move_above_stdio(fds[0]) catch |e| {
        _ = sys.close(fds[1]);
        return -fd_errno(e);
    };
    g.host_pid = sys.getpid();
    snapshot_attributes(&g.attributes);
    var msg = std.mem.zeroes(HelperMessage);
    msg.op = .init;
    msg.index = abi.abi_version;
    msg.pid = g.host_pid;
    msg.build_id = protocol_zig.build_id();
    msg.rlimits = g.attributes.rlimits;
    rc = send_message(host_end, &msg, &.{g.region_fd});
    const launched = if (sys.errno(rc) != 0)
        -sys.errno(rc)
    else if (os_zig.portable)
        portable.launch(@ptrCast(&choice.helper_path), fds[1])
    else
        launch_helper(fds[1]);
    _ = sys.close(fds[1]);
    if (launched < 0) {
        _ = sys.close(host_end);
        return launched;
    }
    const hello = receive_hello(host_end, &msg);
    if (hello < 0) {
        _ = sys.close(host_end);
        return hello;
    }
    g.helper_pid = msg.pid;
    @atomicStore(i32, &g.helper_sock, host_end, .monotonic);
    g.reapers_started += 1;
    for (listeners(), 0..) |*l, i| {
        if (l.in_use) helper_listener_message(.listener_open, @intCast(i), l.write_fd);
    }
    return 0;
}

/// The helper's hello: 0, or -EPROTO when it refused our build (its id differs: a helper
/// built from other sources), exited without a word (a helper whose messages differ, or a
/// program that is not a helper), or answered something else; -ETIMEDOUT after
/// `hello_timeout_ms` of silence.
fn receive_hello(sock: i32, msg: *HelperMessage) i32 {
    const deadline_ns = sys.clock_monotonic_ns() + protocol_zig.hello_timeout_ms * std.time.ns_per_ms;
    g.helper_refused_build_id = 0;
    while (true) {
        var poll_fds = [1]sys.PollFd{.{ .fd = sock, .events = sys.POLLIN, .revents = 0 }};
        const now_ns = sys.clock_monotonic_ns();
        if (now_ns >= deadline_ns) return -sys.E.TIMEDOUT;
        const left_ms: i32 = @intCast(@divFloor(deadline_ns - now_ns, std.time.ns_per_ms) + 1);
        const ready = sys.poll(&poll_fds, 1, left_ms);
        if (sys.errno(ready) == sys.E.INTR or (sys.errno(ready) == 0 and ready == 0)) continue;
        if (sys.errno(ready) != 0) return -sys.errno(ready);
        const rc = receive_ready(sock, msg, null) orelse continue;
        // ECHILD (EOF), ECONNRESET (it exited with our message unread), EPROTO (a size of
        // message we do not know): it is not a helper of this build.
        if (rc == -sys.E.CHILD or rc == -sys.E.CONNRESET or rc == -sys.E.PROTO) return -sys.E.PROTO;
        if (rc < 0) return rc;
        if (msg.op != .hello or msg.pid <= 0) return -sys.E.PROTO;
        // A refusal names the helper's build (`ph_info` reports it).
        if (msg.err_errno != 0) g.helper_refused_build_id = msg.build_id;
        if (msg.err_errno != 0) return -msg.err_errno;
        return 0;
    }
}

/// Tells the helper about a listener's wake-up pipe; a dead helper learns them at its restart.
pub fn helper_listener_message(op: HelperOp, index: u32, write_fd: i32) void {
    if (g.helper_sock < 0) return;
    var msg = std.mem.zeroes(HelperMessage);
    msg.op = op;
    msg.index = index;
    const fds: []const i32 = if (op == .listener_open) &.{write_fd} else &.{};
    _ = send_message(g.helper_sock, &msg, fds);
}

/// Waits for one message (and its descriptor, if `fd` is given), re-checking every
/// `liveness_check_ms` that the helper lives. -ECHILD if it hung up first.
fn receive_reply(sock: i32, msg: *HelperMessage, fd: ?*i32) i32 {
    while (true) {
        var poll_fds = [1]sys.PollFd{.{ .fd = sock, .events = sys.POLLIN, .revents = 0 }};
        const ready = sys.poll(&poll_fds, 1, liveness_check_ms);
        if (sys.errno(ready) == sys.E.INTR or (sys.errno(ready) == 0 and ready == 0)) continue;
        if (sys.errno(ready) != 0) return -sys.errno(ready);
        if (receive_ready(sock, msg, fd)) |rc| return rc;
    }
}

/// Reads the message `poll` found: 0, -errno, -ECHILD at EOF, -EPROTO for a message of
/// another size; null when a signal interrupted the read (poll again).
fn receive_ready(sock: i32, msg: *HelperMessage, fd: ?*i32) ?i32 {
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    const rc = sys.recv_with_fds(sock, std.mem.asBytes(msg), &fds, &count);
    if (sys.errno(rc) == sys.E.INTR) return null;
    // Descriptors we did not ask for are closed: only the pidfd crosses back.
    const wanted: usize = if (fd != null) 1 else 0;
    for (fds[0..count], 0..) |received, i| {
        if (i < wanted) fd.?.* = received else _ = sys.close(received);
    }
    if (fd) |out| {
        if (count == 0) out.* = -1;
    }
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    if (rc == 0) return -sys.E.CHILD;
    if (rc != @sizeOf(HelperMessage)) return -sys.E.PROTO;
    return 0;
}

const Launch = struct {
    sock: i32,
    path: [*:0]const u8,
    exec_errno: i32 = 0,
};

/// A vfork-style launch from the libc-free library (never fork() in a multithreaded host):
/// a middle process (CLONE_VM | CLONE_VFORK, exit signal 0, so the host gets no SIGCHLD for
/// it and only __WALL sees it) clones the helper the same way and exits once it has exec'd.
/// The helper is then re-parented away from the host: an exec'd child of ours would have its
/// exit signal reset to SIGCHLD, and be seen by the host's waitpid(-1) (DESIGN.md).
fn launch_helper(sock: i32) i32 {
    var launch = Launch{ .sock = sock, .path = @ptrCast(&choice.helper_path) };
    const all: u64 = ~@as(u64, 0);
    var old: u64 = 0;
    _ = sys.rt_sigprocmask(sys.SIG.SETMASK, &all, &old);
    var parent_tid: i32 = 0;
    var rc = sys.clone(launch_middle, g.reaper_stack, sys.CLONE.VM | sys.CLONE.VFORK, @intFromPtr(&launch), &parent_tid);
    if (sys.errno(rc) == sys.E.INVAL) {
        // CLONE_VM refused, or an exit signal other than SIGCHLD (qemu-user makes threads or
        // plain forks only): fork the middle process. The host gets one SIGCHLD for it, and a
        // failed exec shows as the helper's missing hello (nothing is shared to write it in).
        rc = sys.clone(launch_middle, g.reaper_stack, sys.SIG.CHLD, @intFromPtr(&launch), &parent_tid);
    }
    _ = sys.rt_sigprocmask(sys.SIG.SETMASK, &old, null);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    var info = std.mem.zeroes(sys.SigInfo);
    // It has exited (CLONE_VFORK); reap it. ECHILD: a host's waitpid(-1, __WALL) took it.
    _ = sys.waitid(sys.P.PID, sys.int(rc), &info, sys.W.EXITED | sys.W.ALL, null);
    if (launch.exec_errno != 0) return -launch.exec_errno;
    return 0;
}

fn launch_middle(arg: usize) callconv(.c) u8 {
    const launch: *Launch = @ptrFromInt(arg);
    var parent_tid: i32 = 0;
    const rc = sys.clone(launch_exec, g.child_stack, sys.CLONE.VM | sys.CLONE.VFORK | sys.SIG.CHLD, arg, &parent_tid);
    if (sys.errno(rc) != 0) launch.exec_errno = sys.errno(rc);
    return 0;
}

fn launch_exec(arg: usize) callconv(.c) u8 {
    const launch: *Launch = @ptrFromInt(arg);
    // Descriptor 3 is the socket; the helper closes every other one above stdio at start.
    const rc = if (launch.sock == 3) sys.fcntl(3, sys.F.SETFD, 0) else sys.dup3(launch.sock, 3, 0);
    if (sys.errno(rc) != 0) {
        launch.exec_errno = sys.errno(rc);
        sys.exit(127);
    }
    const argv = [_]?[*:0]const u8{ "ph-helper", null };
    const envp = [_]?[*:0]const u8{null};
    const exec_rc = sys.execve(launch.path, &argv, &envp);
    launch.exec_errno = sys.errno(exec_rc);
    sys.exit(127);
}

/// The spawn of a helper backend's child, after the slot and pipes are ready (under g.lock):
/// the request goes through the region, its descriptors and the host's cwd through the
/// socket. A helper found dead before it got the request is restarted once.
pub fn helper_submit(plan: *ChildPlan) void {
    const request = plan.request;
    var msg = std.mem.zeroes(HelperMessage);
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    // Our descriptor of the working directory, the only one opened for the request.
    var cwd_fd: i32 = -1;
    defer if (cwd_fd >= 0) {
        _ = sys.close(cwd_fd);
    };
    const failed = helper_request(plan, &msg, &fds, &count);
    if (msg.has_cwd != 0) cwd_fd = fds[0];
    if (failed) |failure| {
        request.err_errno = failure.errno;
        request.err_step = failure.step;
        request.err_index = failure.index;
        return;
    }
    var attempts: u32 = 0;
    while (attempts < 2) : (attempts += 1) {
        const rc = send_with_retry(&msg, fds[0..count]);
        const e = sys.errno(rc);
        if (e == 0) break;
        if (e != sys.E.PIPE and e != sys.E.CONNRESET) {
            // ENOBUFS, ENOMEM, ETOOMANYREFS: this request failed; the helper is fine.
            request.err_errno = e;
            request.err_step = .reaper;
            return;
        }
        // EPIPE, ECONNRESET: it died before our request; nothing was spawned.
        helper_died_locked();
        const restarted = attempts == 0 and start_helper_locked() == 0;
        if (!restarted) {
            request.err_errno = sys.E.CHILD;
            request.err_step = .reaper;
            return;
        }
    }
    var pidfd: i32 = -1;
    const rc = receive_reply(g.helper_sock, &msg, &pidfd);
    if (rc < 0 or msg.op != .spawned) {
        if (pidfd >= 0) _ = sys.close(pidfd);
        // The helper may have made the slot running before it died (either helper: serve.zig
        // and portable.zig mark it before they answer): the spawn fails and releases the slot,
        // so it must not be reported lost as well (released twice).
        @atomicStore(u32, &g.slots[request.slot].state, SlotState.reserved, .release);
        _ = helper_alive_locked();
        request.err_errno = sys.E.CHILD;
        request.err_step = .reaper;
        return;
    }
    helper_spawned(plan, &msg, pidfd);
}

/// Sends a request, again after a signal interrupted it (EINTR: nothing was sent).
fn send_with_retry(msg: *const HelperMessage, fds: []const i32) usize {
    var tries: u32 = 0;
    while (true) : (tries += 1) {
        const rc = send_message(g.helper_sock, msg, fds);
        if (sys.errno(rc) != sys.E.INTR or tries == 1000) return rc;
    }
}

/// The helper's answer: the child's pid and a pidfd of it (ours now), or the failed step.
fn helper_spawned(plan: *ChildPlan, msg: *const HelperMessage, pidfd: i32) void {
    const request = plan.request;
    g.clone_mode = msg.clone_mode;
    g.pidfd_mode = msg.pidfd_mode;
    if (msg.fd_table != .unknown) g.fd_table_mode = msg.fd_table;
    if (msg.err_errno != 0) {
        if (pidfd >= 0) _ = sys.close(pidfd);
        request.err_errno = msg.err_errno;
        request.err_step = msg.err_step;
        request.err_index = msg.err_index;
        return;
    }
    request.pid = msg.pid;
    request.pidfd = if (pidfd >= 0) (move_to_pidfd_floor(pidfd) catch -1) else -1;
    const slot = &g.slots[request.slot];
    // The helper filled in pid, pgid and the state; the pidfd in the slot is ours.
    slot.pidfd = request.pidfd;
    // The portable helper's `pidfd` is the child's exit pipe: groups are signalled by number.
    request.group_pidfd = if (os_zig.portable) -1 else group_pidfd(request, leads_group(request));
}

/// Fills `msg`, the region's copy of the request and the descriptors to send. Only the
/// descriptors the request names cross: each action's source, the host's stdio the child
/// inherits, `inheritFds`, and the working directory.
fn helper_request(plan: *ChildPlan, msg: *HelperMessage, fds: *[sys.scm_max_fd]i32, count: *usize) ?RequestFailure {
    const request = plan.request;
    const len = request.buffer_len;
    if (len > region_request_len) return .{ .errno = sys.E.TOOBIG };
    const area = region_request_area();
    @memcpy(area[0..len], plan.base[0..len]);
    const copy: *abi.Request = @ptrCast(@alignCast(area));
    msg.op = .spawn;
    msg.index = request.slot;
    msg.request_len = len;
    msg.environ_off = abi.none;
    if (request.flags & abi.flag_host_environ != 0) {
        copy.flags &= ~abi.flag_host_environ;
        if (!copy_environ(plan, msg, len)) return .{ .errno = sys.E.TOOBIG };
    }
    // The portable helper has no /proc to read the umask from: its children get the helper's,
    // which is the host's as it was when the helper started (decision 0013).
    if (!os_zig.portable and request.flags & abi.flag_umask == 0) {
        if (host_umask()) |mask| {
            copy.flags |= abi.flag_umask;
            copy.umask = mask;
        }
    }
    const cwd = sys.openat(".", cwd_flags | sys.O_DIRECTORY | sys.O.CLOEXEC, 0);
    if (os_zig.portable and sys.errno(cwd) != 0) return .{ .errno = sys.errno(cwd), .step = .chdir };
    if (sys.errno(cwd) == 0) {
        fds[0] = sys.int(cwd);
        count.* = 1;
        msg.has_cwd = 1;
    }
    const actions: [*]abi.FdAction = @ptrCast(@alignCast(area + @sizeOf(abi.Request)));
    for (actions[0..copy.fd_count], 0..) |*action, i| {
        const source: i32 = switch (action.kind) {
            .dup, .handover, .pipe_to_child, .pipe_from_child => action.fd,
            .inherit => if (action.target <= 2) action.target else continue,
            .devnull, .file, .close, .copy => continue,
        };
        const flags = sys.fcntl(source, sys.F.GETFD, 0);
        if (action.kind == .inherit and (sys.errno(flags) != 0 or flags & sys.FD_CLOEXEC != 0)) {
            // Closed or close-on-exec in the host: /dev/null, as the reaper's child does.
            action.kind = .devnull;
            continue;
        }
        if (sys.errno(flags) != 0) return .{ .errno = sys.errno(flags), .step = .fd_dup, .index = @intCast(i) };
        if (action.kind == .inherit) action.kind = .dup;
        if (count.* == fds.len) return .{ .errno = sys.E.INVAL };
        fds[count.*] = source;
        count.* += 1;
    }
    for (inherited_fds(plan), 0..) |fd, i| {
        const flags = sys.fcntl(@intCast(fd), sys.F.GETFD, 0);
        if (sys.errno(flags) != 0) return .{ .errno = sys.errno(flags), .step = .fd_dup, .index = @intCast(i) };
        if (count.* == fds.len) return .{ .errno = sys.E.INVAL };
        fds[count.*] = @intCast(fd);
        count.* += 1;
    }
    helper_attributes(plan, msg);
    return null;
}

/// O_PATH opens a directory we may not read; macOS has none, so the portable helper opens the
/// working directory for reading (a cwd the host cannot read fails the spawn at `chdir`).
const cwd_flags = if (os_zig.portable) sys.O.RDONLY else sys.O_PATH;

/// The host's environment, copied after the request: NUL-terminated strings, counted.
fn copy_environ(plan: *const ChildPlan, msg: *HelperMessage, len: u32) bool {
    const area = region_request_area();
    var offset: usize = len;
    var count: u32 = 0;
    const environ: *const ?[*]const ?[*:0]const u8 = @ptrFromInt(plan.request.environ_addr);
    if (environ.*) |host| {
        while (host[count]) |entry| : (count += 1) {
            const text = std.mem.span(entry);
            if (count >= helper_env_max or offset + text.len + 1 > region_request_len) return false;
            @memcpy(area[offset..][0..text.len], text);
            area[offset + text.len] = 0;
            offset += text.len + 1;
        }
    }
    msg.environ_off = len;
    msg.environ_count = count;
    return true;
}
pub const helper_env_max = 1 << 16;

/// The host's umask, from /proc/self/status (reading it with umask(2) would change it for a
/// moment under the host's other threads); null without /proc: the helper's, which is the
/// host's as it was when the helper started.
fn host_umask() ?u32 {
    const opened = sys.openat("/proc/self/status", sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return null;
    const fd = sys.int(opened);
    defer _ = sys.close(fd);
    var buffer: [512]u8 = undefined;
    const n = sys.read(fd, &buffer, buffer.len);
    if (sys.errno(n) != 0) return null;
    const text = buffer[0..n];
    const at = std.mem.indexOf(u8, text, "Umask:\t") orelse return null;
    const start = at + "Umask:\t".len;
    const end = std.mem.indexOfScalarPos(u8, text, start, '\n') orelse return null;
    return std.fmt.parseInt(u32, text[start..end], 8) catch null;
}

/// The host's attribute changes (`host_attribute_changes`), as values for the helper.
fn helper_attributes(plan: *const ChildPlan, msg: *HelperMessage) void {
    msg.rlimit_mask = plan.rlimit_mask;
    msg.rlimits = plan.rlimits;
    msg.groups_count = abi.none;
    if (plan.set_groups) |groups| {
        msg.groups_count = @intCast(groups.len);
        @memcpy(msg.groups[0..groups.len], groups);
    }
    msg.groups_dropped = @intFromBool(plan.groups_dropped);
    if (plan.set_gid) |ids| {
        msg.has_gid = 1;
        msg.gids = ids;
    }
    if (plan.set_uid) |ids| {
        msg.has_uid = 1;
        msg.uids = ids;
    }
    if (plan.set_priority) |priority| {
        msg.has_priority = 1;
        msg.priority = priority;
    }
    if (plan.set_affinity) |mask| {
        msg.has_affinity = 1;
        msg.affinity = mask;
    }
}

// ---------------------------------------------------------------------------------------------
// The helper's side (zig/src/helper/main.zig): its start, and each message from the host.

// ---------------------------------------------------------------------------------------------
// The backend contract (checked in library.zig).

pub const backend: abi.Backend = .helper;
pub const start_locked = start_helper_locked;
pub const alive_locked = helper_alive_locked;
pub const exited = helper_hung_up;
pub const submit_locked = helper_submit;

pub fn current_pid() i32 {
    return g.helper_pid;
}

/// The helper gets its own copy of the listener's wake-up pipe.
pub fn listener_opened(index: u32, write_fd: i32) void {
    helper_listener_message(.listener_open, index, write_fd);
}
