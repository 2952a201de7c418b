//! The portable helper (macOS, FreeBSD, and Linux built with `-Dlibc-posix=true`): the helper
//! executable's side over libc, and its launch from the host. The host's side of requests is
//! host.zig's, the messages protocol.zig's, over a SOCK_STREAM socket with fixed-size messages.
//! The helper is single-threaded: it forks its children (the child may call anything before
//! exec), watches them through a SIGCHLD self-pipe and poll, reaps them with wait4 under the
//! region's signal lock, and gives the host a pipe per child whose write end it closes at the
//! child's exit (`child.fd`). Decision 0013.

const std = @import("std");
const abi = @import("../../abi.zig");
const sys = @import("../../sys/os.zig").sys;

const assert = std.debug.assert;

const protocol_zig = @import("protocol.zig");
const HelperMessage = protocol_zig.HelperMessage;
const send_message = protocol_zig.send_message;
const serve_zig = @import("serve.zig");
const helper_plan = serve_zig.helper_plan;
const helper_serve = serve_zig.helper_serve;
const child_zig = @import("portable_child.zig");
const fork_child = child_zig.fork_child;
const exits_zig = @import("../../common/exits.zig");
const signal_lock = exits_zig.signal_lock;
const publish_wait_status = exits_zig.publish_wait_status;
const region_zig = @import("../../common/region.zig");
const SlotState = region_zig.SlotState;
const region_request_area = region_zig.region_request_area;
const region_request_len = region_zig.region_request_len;
const request_zig = @import("../../common/request.zig");
const prepare_plan = request_zig.prepare_plan;
const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const in_helper = state_zig.in_helper;
const lock = state_zig.lock;
const unlock = state_zig.unlock;
const owner_zig = @import("../../common/owner.zig");
const leads_group = owner_zig.leads_group;

// ---------------------------------------------------------------------------------------------
// The host's side: the launch.

/// Starts the helper at `path` with `sock` as its descriptor 3, through a short-lived middle
/// process (the same executable, argv "--middle"), so that the helper is never the host's
/// child: the middle posix_spawns the helper and exits, and the helper is re-parented away.
/// The host gets one SIGCHLD, for the middle, and reaps it here by pid (ECHILD if a host's
/// own waitpid(-1) took it first: the helper's hello still tells whether it runs).
pub fn launch(path: [*:0]const u8, sock: i32) i32 {
    var fd = sock;
    if (fd == 3) {
        const moved = sys.fcntl(sock, sys.F.DUPFD_CLOEXEC, 4);
        if (sys.errno(moved) != 0) return -sys.errno(moved);
        fd = sys.int(moved);
    }
    defer if (fd != sock) {
        _ = sys.close(fd);
    };
    const argv = [_]?[*:0]const u8{ "ph-helper", "--middle", path, null };
    const spawned = sys.spawn_with_fd3(path, &argv, fd);
    if (sys.errno(spawned) != 0) return -sys.errno(spawned);
    const pid = sys.int(spawned);
    var status: i32 = 0;
    while (true) {
        const rc = sys.wait_pid(pid, &status, 0, null);
        if (sys.errno(rc) == sys.E.INTR) continue;
        // ECHILD: reaped by the host's own wait; the hello decides.
        if (sys.errno(rc) != 0) return 0;
        break;
    }
    // The middle exits with the errno of its posix_spawn of the helper, or 0.
    const code = (status >> 8) & 0xff;
    if (status & 0x7f == 0 and code != 0) return -code;
    return 0;
}

/// The middle process: posix_spawns the helper with our descriptor 3, and exits with 0 or the
/// errno of that spawn.
fn middle(path: [*:0]const u8) u8 {
    const moved = sys.fcntl(3, sys.F.DUPFD_CLOEXEC, 4);
    if (sys.errno(moved) != 0) return @intCast(sys.errno(moved));
    const argv = [_]?[*:0]const u8{ "ph-helper", null };
    const rc = sys.spawn_with_fd3(path, &argv, sys.int(moved));
    return @intCast(sys.errno(rc));
}

// ---------------------------------------------------------------------------------------------
// The helper's side.

/// The write end of each running child's exit pipe, closed when the child is reaped.
var exit_pipes: [if (in_helper) abi.slots_max else 0]i32 = undefined;
/// The SIGCHLD self-pipe: the handler writes a byte, the loop polls the read end.
var sigchld_pipe = [2]i32{ -1, -1 };

fn on_sigchld(sig: i32) callconv(.c) void {
    _ = sig;
    const saved = std.c._errno().*;
    const byte: u8 = 1;
    // EAGAIN: a byte is already there, which wakes the loop all the same.
    _ = sys.write(sigchld_pipe[1], @ptrCast(&byte), 1);
    std.c._errno().* = saved;
}

/// The helper executable's main: as the middle process, or as the helper, which takes the
/// region from the host's first message, says hello and serves until the host hangs up.
pub fn helper_main() u8 {
    comptime assert(in_helper);
    const argv = std.os.argv;
    if (argv.len == 3 and std.mem.eql(u8, std.mem.span(argv[1]), "--middle")) return middle(argv[2]);
    if (!isolate()) return 1;
    const attached = serve_zig.helper_attach();
    if (attached != 0) return attached;
    if (sys.errno(sys.pipe2(&sigchld_pipe, sys.O.CLOEXEC | sys.O.NONBLOCK)) != 0) return 5;
    for (&exit_pipes) |*fd| fd.* = -1;
    sys.set_handler(sys.SIG.CHLD, on_sigchld);
    if (serve_zig.helper_hello() != 0) return 6;
    serve_forever();
}

/// Only the socket (3) is kept: the host's stdio become /dev/null, and every descriptor the
/// host leaked without close-on-exec is closed. From here on the helper opens everything
/// close-on-exec, so its only inheritable descriptors are 0, 1, 2 and the socket.
fn isolate() bool {
    const null_fd = sys.openat("/dev/null", sys.O.RDWR, 0);
    if (sys.errno(null_fd) != 0) return false;
    for ([_]i32{ 0, 1, 2 }) |fd| {
        if (sys.int(null_fd) != fd) _ = sys.dup(sys.int(null_fd), fd);
    }
    if (sys.int(null_fd) > 2) _ = sys.close(sys.int(null_fd));
    // One call where the system has it (macOS's posix_spawn closed them already:
    // POSIX_SPAWN_CLOEXEC_DEFAULT); else each number up to the limit, once per helper.
    if (sys.close_above(4)) return true;
    var limit = sys.Rlimit{ .cur = 0, .max = 0 };
    _ = sys.prlimit(0, sys.RLIMIT_NOFILE, null, &limit);
    const end: u64 = @min(limit.cur, close_scan_max);
    var fd: u64 = 4;
    while (fd < end) : (fd += 1) _ = sys.close(@intCast(fd));
    return true;
}
/// The most descriptor numbers the helper closes at its start.
const close_scan_max = 1 << 16;

fn serve_forever() noreturn {
    while (true) {
        var fds = [2]sys.PollFd{
            .{ .fd = 3, .events = sys.POLLIN, .revents = 0 },
            .{ .fd = sigchld_pipe[0], .events = sys.POLLIN, .revents = 0 },
        };
        const rc = sys.poll(&fds, 2, -1);
        // EINTR: SIGCHLD arrived, and wrote its byte; EAGAIN, ENOMEM: try again.
        if (sys.errno(rc) != 0) {
            reap_exited();
            continue;
        }
        if (fds[1].revents != 0) drain_sigchld_pipe();
        reap_exited();
        if (fds[0].revents != 0) helper_serve();
    }
}

fn drain_sigchld_pipe() void {
    var buffer: [64]u8 = undefined;
    while (true) {
        const n = sys.read(sigchld_pipe[0], &buffer, buffer.len);
        if (sys.errno(n) != 0 or n < buffer.len) return;
    }
}

/// Reaps every child that exited, each under the signal lock: a host thread that saw the
/// child running under the lock signalled a pid not reaped yet, so never a reused one.
fn reap_exited() void {
    var reaped: u32 = 0;
    while (reaped < abi.slots_max) : (reaped += 1) {
        var status: i32 = 0;
        var usage = std.mem.zeroes(sys.Rusage);
        lock(signal_lock());
        const rc = sys.wait_pid(-1, &status, sys.WNOHANG, &usage);
        // ECHILD: no children; 0: none exited.
        if (sys.errno(rc) != 0 or rc == 0) {
            unlock(signal_lock());
            return;
        }
        const index = record_exit(sys.int(rc), status, &usage);
        unlock(signal_lock());
        if (index) |i| close_exit_pipe(i);
    }
}

/// The exit of `pid` into its slot, published; the slot's index, or null for no child of ours.
fn record_exit(pid: i32, status: i32, usage: *const sys.Rusage) ?u32 {
    const index = g.table.remove(pid) orelse return null;
    assert(g.slots[index].pid == pid);
    publish_wait_status(index, status, usage);
    return index;
}

/// After the publish: `child.fd` polls readable once the status is there to read. A byte, then
/// the close: a pipe at EOF alone polls POLLHUP without POLLIN on Linux.
fn close_exit_pipe(index: u32) void {
    const fd = exit_pipes[index];
    exit_pipes[index] = -1;
    if (fd < 0) return;
    const byte: u8 = 1;
    // Cannot block: nothing else is ever written to the pipe, which holds at least 512 bytes.
    _ = sys.write(fd, @ptrCast(&byte), 1);
    _ = sys.close(fd);
}

/// The host closed its end (it exited): each running child gets its `killOnParentExit`
/// signal by pid (not reaped yet, so still ours: a zombie keeps its pid), then the helper
/// exits. Nothing more is published: nobody drains the rings any more.
pub fn host_exited() noreturn {
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        if (slot.kill_on_exit_signal == 0) continue;
        _ = sys.kill(slot.pid, slot.kill_on_exit_signal);
    }
    sys.exit(0);
}

/// A spawn request: the child forked and exec'd (or its failed step), and the answer with the
/// read end of the child's exit pipe.
pub fn helper_spawn(msg: *const HelperMessage, fds: []const i32) void {
    var reply = std.mem.zeroes(HelperMessage);
    reply.op = .spawned;
    reply.pid = -1;
    reply.pidfd_mode = .missing;
    const request: *abi.Request = @ptrCast(@alignCast(region_request_area()));
    var plan: ChildPlan = undefined;
    const e: ?i32 = if (msg.request_len > region_request_len or msg.index >= abi.slots_max)
        sys.E.INVAL
    else
        prepare_plan(request, msg.request_len, &plan);
    var exit_read: i32 = -1;
    if (e == null and helper_plan(&plan, msg, fds)) {
        g.next_unused = @max(g.next_unused, msg.index + 1);
        exit_read = spawn_watched(&plan, msg.index);
    } else {
        request.err_errno = e orelse sys.E.INVAL;
        request.err_step = .request;
    }
    // The child has its own copies (it has exec'd or failed); the helper keeps none.
    for (fds) |fd| _ = sys.close(fd);
    reply.err_errno = request.err_errno;
    reply.err_step = request.err_step;
    reply.err_index = request.err_index;
    reply.pid = if (request.err_errno == 0) request.pid else -1;
    const sent: []const i32 = if (exit_read >= 0) &.{exit_read} else &.{};
    _ = send_message(g.request_efd, &reply, sent);
    if (exit_read >= 0) _ = sys.close(exit_read);
}

/// Forks the child with an exit pipe of its own; the pipe's read end (-1 on failure).
fn spawn_watched(plan: *ChildPlan, index: u32) i32 {
    const request = plan.request;
    var pipe: [2]i32 = undefined;
    const piped = sys.pipe2(&pipe, sys.O.CLOEXEC);
    if (sys.errno(piped) != 0) {
        request.err_errno = sys.errno(piped);
        request.err_step = .pipe;
        return -1;
    }
    fork_child(plan, .helper);
    if (request.err_errno != 0) {
        _ = sys.close(pipe[0]);
        _ = sys.close(pipe[1]);
        return -1;
    }
    exit_pipes[index] = pipe[1];
    const slot = &g.slots[index];
    slot.pid = request.pid;
    slot.pgid = leads_group(request);
    slot.watched = 0;
    slot.spawned_ns = sys.clock_monotonic_ns();
    g.table.insert(request.pid, index);
    @atomicStore(u32, &slot.state, SlotState.running, .release);
    return pipe[0];
}
