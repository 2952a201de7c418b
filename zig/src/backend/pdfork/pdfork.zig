//! The `pdfork` backend (FreeBSD): the library forks each child itself with pdfork(2), so the
//! child is held by a process descriptor from its first instant: no SIGCHLD for it, never
//! reaped by the host's wait(-1) (kern_exit.c `proc_to_reap` skips process-descriptor children
//! for P_ALL), and pdkill(2) can never reach a recycled pid. There is no reaper and no helper:
//! one thread of the library (never one per child) waits in a kqueue for EVFILT_PROCDESC
//! NOTE_EXIT, reaps the child by pid (wait4, with its rusage) under the signal lock, and
//! publishes the status into the same slots and rings as the other backends. `child.fd` is the
//! process descriptor. The child's set-up is portable_child.zig's, forked from the host.
//!
//! On Linux the same code runs over stand-ins (fork and pidfd_open, pidfd_send_signal, epoll)
//! in the glibc build, forced with `PRIVATE_SPAWN_BACKEND=pdfork`, so that it is tested here;
//! those children are the host's own, not private. Decision 0014.

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("../../abi.zig");
const sys = @import("../../sys/os.zig").sys;

const assert = std.debug.assert;

const child_zig = @import("../helper/portable_child.zig");
const fork_child = child_zig.fork_child;
const exits_zig = @import("../../common/exits.zig");
const publish_wait_status = exits_zig.publish_wait_status;
const signal_lock = exits_zig.signal_lock;
const fds_zig = @import("../../common/fds.zig");
const move_to_pidfd_floor = fds_zig.move_to_pidfd_floor;
const owner_zig = @import("../../common/owner.zig");
const leads_group = owner_zig.leads_group;
const region_zig = @import("../../common/region.zig");
const SlotState = region_zig.SlotState;
const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const lock = state_zig.lock;
const unlock = state_zig.unlock;

/// The exit watcher: its queue, the process that started it (a forked copy of the host starts
/// its own), and whether its thread stopped (its queue failed: the next spawn starts another,
/// which watches every running child again).
const Watcher = struct {
    queue: i32 = -1,
    pid: i32 = 0,
    stopped: u32 = 0,
};
var watcher: Watcher = .{};

/// The watcher thread's stack: it holds 64 events and calls nothing deep, but glibc takes the
/// runtime's static TLS (large in Deno and Bun) out of it too; the reaper's size.
const watcher_stack_len = 256 * 1024;

pub fn start_locked() i32 {
    if (alive_locked()) return 0;
    // Linux's epoll descriptor is inherited by a fork of the host; FreeBSD's kqueue is not
    // (its number may be another file's by now).
    if (builtin.os.tag == .linux and watcher.queue >= 0 and watcher.pid != sys.getpid()) {
        _ = sys.close(watcher.queue);
    }
    watcher.queue = -1;
    const opened = sys.watch_open();
    if (sys.errno(opened) != 0) return -sys.errno(opened);
    const queue = sys.int(opened);
    if (watcher.pid == sys.getpid()) {
        // A watcher that stopped: its running children are watched by this one.
        var index: u32 = 0;
        while (index < g.next_unused) : (index += 1) {
            const slot = &g.slots[index];
            if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
            const added = sys.watch_add(queue, slot.pidfd, index);
            if (sys.errno(added) != 0) {
                _ = sys.close(queue);
                return -sys.errno(added);
            }
        }
    }
    // Created with every signal blocked, which it keeps: the host's handlers run on its own
    // threads, never on the watcher's.
    var old: sys.SigSet = undefined;
    sys.mask_signals(false, &old);
    const spawned = std.Thread.spawn(.{ .stack_size = watcher_stack_len }, watch_loop, .{queue});
    sys.restore_signals(&old);
    const thread = spawned catch {
        _ = sys.close(queue);
        return -sys.E.AGAIN;
    };
    thread.detach();
    watcher = .{ .queue = queue, .pid = sys.getpid(), .stopped = 0 };
    g.reapers_started += 1;
    return 0;
}

pub fn alive_locked() bool {
    return watcher.queue >= 0 and watcher.pid == sys.getpid() and @atomicLoad(u32, &watcher.stopped, .acquire) == 0;
}

/// The watcher never stops holding the signal lock: it stops only when its queue fails.
pub fn exited() bool {
    return @atomicLoad(u32, &watcher.stopped, .acquire) != 0;
}

/// No process owns the children but the host itself.
pub fn current_pid() i32 {
    return 0;
}

/// Forks the child (the slot reserved by the caller); once it runs, the slot holds its pid and
/// process descriptor (also `request.pidfd`) and the watcher waits for its exit.
pub fn submit_locked(plan: *ChildPlan) void {
    const request = plan.request;
    assert(alive_locked());
    fork_child(plan, .host);
    if (request.err_errno != 0) return;
    assert(request.pid > 0 and request.pidfd >= 0);
    const fd = move_to_pidfd_floor(request.pidfd) catch request.pidfd;
    request.pidfd = fd;
    // Groups are signalled by number (`signal` in exits.zig): no group descriptor.
    request.group_pidfd = -1;
    const index = request.slot;
    const slot = &g.slots[index];
    slot.pid = request.pid;
    slot.pidfd = fd;
    slot.pgid = leads_group(request);
    slot.watched = 0;
    slot.spawned_ns = sys.clock_monotonic_ns();
    // Running before it is watched: the watcher may report it at once.
    @atomicStore(u32, &slot.state, SlotState.running, .release);
    const added = sys.watch_add(watcher.queue, fd, index);
    if (sys.errno(added) == 0) return;
    // ENOMEM: nobody would see this child exit. It dies now, and the spawn fails.
    @atomicStore(u32, &slot.state, SlotState.reserved, .release);
    _ = sys.proc_signal(fd, sys.SIG.KILL);
    var status: i32 = 0;
    while (sys.errno(sys.wait_pid(request.pid, &status, 0, null)) == sys.E.INTR) {}
    _ = sys.close(fd);
    slot.pidfd = -1;
    request.pid = -1;
    request.pidfd = -1;
    request.err_step = .reaper;
    request.err_errno = sys.errno(added);
}

/// The watcher thread: exits as the queue reports them, until the queue fails.
fn watch_loop(queue: i32) void {
    var indices: [64]u32 = undefined;
    while (true) {
        const rc = sys.watch_wait(queue, &indices);
        if (sys.errno(rc) == sys.E.INTR) continue;
        if (sys.errno(rc) != 0) {
            // EBADF: the host closed our queue. The next spawn starts another watcher.
            @atomicStore(u32, &watcher.stopped, 1, .release);
            return;
        }
        for (indices[0..rc]) |index| reap(index);
    }
}

/// Reaps the child of slot `index` and publishes its status, under the signal lock: a host
/// thread that saw it running under the lock signalled a process not reaped yet.
fn reap(index: u32) void {
    assert(index < abi.slots_max);
    const slot = &g.slots[index];
    var status: i32 = 0;
    var usage = std.mem.zeroes(sys.Rusage);
    lock(signal_lock());
    defer unlock(signal_lock());
    if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) return;
    // The descriptor reported the exit: the child is a zombie, wait4 does not wait.
    var rc = sys.wait_pid(slot.pid, &status, 0, &usage);
    while (sys.errno(rc) == sys.E.INTR) rc = sys.wait_pid(slot.pid, &status, 0, &usage);
    if (sys.errno(rc) != 0) {
        // ECHILD: only with Linux's stand-ins, whose children a host's waitpid(-1) can take.
        slot.kind = .lost;
        slot.value = sys.errno(rc);
        exits_zig.slot_publish(index);
        return;
    }
    publish_wait_status(index, status, &usage);
}

/// Listeners' wake-up pipes are the host's own: nothing to hand to anyone.
pub fn listener_opened(index: u32, write_fd: i32) void {
    _ = .{ index, write_fd };
}

// ---------------------------------------------------------------------------------------------
// The backend contract (checked in library.zig).

pub const backend: abi.Backend = .pdfork;
