//! The `reaper` backend (Linux): the invisible reaper of DESIGN.md, seen from the host, and the
//! reaper's side of a spawn request.

const std = @import("std");
const abi = @import("../../abi.zig");
const sys = @import("../../sys/linux.zig");

const exits_zig = @import("../../common/exits.zig");
const slot_publish = exits_zig.slot_publish;
const fds_zig = @import("../../common/fds.zig");
const fd_errno = fds_zig.fd_errno;
const move_above_stdio = fds_zig.move_above_stdio;
const owner_zig = @import("../../common/owner.zig");
const spin = @import("../../common/spin.zig");
const clean_up_published = owner_zig.clean_up_published;
const close_published_pidfds = owner_zig.close_published_pidfds;
const group_pidfd = owner_zig.group_pidfd;
const leads_group = owner_zig.leads_group;
const owner_main = owner_zig.owner_main;
const spawn_child = owner_zig.spawn_child;
const watch_child = owner_zig.watch_child;
const region_zig = @import("../../common/region.zig");
const SlotState = region_zig.SlotState;
const request_zig = @import("../../common/request.zig");
const host_attribute_changes = request_zig.host_attribute_changes;
const prepare_plan = request_zig.prepare_plan;
const snapshot_attributes = request_zig.snapshot_attributes;
const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const Queued = state_zig.Queued;
const QueuedState = state_zig.QueuedState;
const g = &state_zig.g;
const liveness_check_ms = state_zig.liveness_check_ms;

pub fn reaper_alive_locked() bool {
    if (g.reaper_pid == 0) return false;
    if (!reaper_gone(g.reaper_pid, 0)) return true;
    // Reaped now (or already, by someone's waitpid(-1, __WALL)): the reaper is gone.
    reaper_died_locked();
    return false;
}

/// Whether the reaper `pid` has exited: reaps it, unless `flags` has W.NOWAIT. Also true
/// when someone else reaped it already (ECHILD).
pub fn reaper_gone(pid: i32, flags: u32) bool {
    var info = std.mem.zeroes(sys.SigInfo);
    const rc = sys.waitid(sys.P.PID, pid, &info, sys.W.EXITED | sys.W.NOHANG | sys.W.ALL | flags, null);
    return sys.errno(rc) != 0 or info.pid != 0;
}

/// The kernel re-parented the dead reaper's children (to a subreaper or init). Those held by a
/// pidfd become orphans: the next reaper watches their pidfds and reads each exit status with
/// PIDFD_GET_INFO once the new parent has reaped it (Linux 6.15+). The others are reported
/// `lost` now. `check_reaper` starts the next reaper at once when there are orphans.
fn reaper_died_locked() void {
    g.reaper_pid = 0;
    answer_queue_locked();
    // The pidfds of exits it published but had not closed yet: nobody else refers to them.
    close_published_pidfds();
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (@atomicRmw(u32, &slot.reap_pending, .Xchg, 0, .seq_cst) != 0) {
            // It died between publishing a lone exit and reaping it: deliver the record now
            // (the caller drains); the zombie goes to init or a subreaper, like any orphan.
            _ = sys.futex_wake(&slot.reap_pending, std.math.maxInt(i32));
        }
        if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        if (slot.pidfd >= 0 and slot.orphan == 0) {
            slot.orphan = 1;
            _ = @atomicRmw(u32, &g.orphans, .Add, 1, .acq_rel);
            continue;
        }
        if (slot.orphan != 0) continue;
        slot.kind = .lost;
        slot.value = 0;
        slot_publish(index);
    }
    inline for (.{ &g.request_efd, &g.host_pidfd, &g.signal_fd, &g.epoll_fd }) |fd| {
        if (fd.* >= 0) _ = sys.close(fd.*);
        fd.* = -1;
    }
}

/// No reaper could be started for the orphans: report them lost.
pub fn orphans_lost() void {
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (slot.orphan == 0 or @atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        orphan_done(index, .lost, 0);
    }
}

pub fn orphan_done(index: u32, kind: abi.ExitKind, value: i32) void {
    const slot = &g.slots[index];
    slot.orphan = 0;
    _ = @atomicRmw(u32, &g.orphans, .Sub, 1, .acq_rel);
    slot.kind = kind;
    slot.value = value;
    slot.user_cpu_us = 0;
    slot.system_cpu_us = 0;
    slot.max_rss_kib = 0;
    slot_publish(index);
}

pub fn start_reaper_locked() i32 {
    g.table.clear();
    g.host_pid = sys.getpid();
    var rc = sys.eventfd();
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    g.request_efd = move_above_stdio(sys.int(rc)) catch |e| return -fd_errno(e);
    rc = sys.pidfd_open(g.host_pid);
    g.host_pidfd = if (sys.errno(rc) == 0) (move_above_stdio(sys.int(rc)) catch -1) else -1;
    snapshot_attributes(&g.attributes);
    @atomicStore(u32, &g.reaper_ready, 0, .release);
    g.reaper_setup_errno = 0;

    // The reaper starts with every signal blocked and resets all dispositions to default
    // itself, so a host handler never runs on the reaper's stack.
    const all: u64 = ~@as(u64, 0);
    var old: u64 = 0;
    _ = sys.rt_sigprocmask(sys.SIG.SETMASK, &all, &old);
    var parent_tid: i32 = 0;
    rc = sys.clone(owner_main, g.reaper_stack, sys.CLONE.VM | sys.CLONE.FS | sys.CLONE.FILES | sys.CLONE.SYSVSEM, 0, &parent_tid);
    _ = sys.rt_sigprocmask(sys.SIG.SETMASK, &old, null);
    if (sys.errno(rc) != 0) {
        const e = sys.errno(rc);
        reaper_died_locked();
        return -e;
    }
    g.reaper_pid = sys.int(rc);
    g.reapers_started += 1;
    while (@atomicLoad(u32, &g.reaper_ready, .acquire) == 0) {
        _ = sys.futex_wait(&g.reaper_ready, 0, liveness_check_ms);
        if (@atomicLoad(u32, &g.reaper_ready, .acquire) == 0 and !reaper_alive_locked()) {
            return -sys.E.CHILD;
        }
    }
    if (g.reaper_setup_errno != 0) {
        const e = g.reaper_setup_errno;
        _ = reaper_alive_locked();
        return -e;
    }
    return 0;
}

pub fn serve_request() void {
    // A zombie holds its pid and counts against RLIMIT_NPROC: never spawn past our own.
    clean_up_published();
    var counter: u64 = 0;
    _ = sys.read(g.request_efd, @ptrCast(&counter), 8);
    serve_queue();
    const plan = g.plan orelse return;
    @atomicStore(u32, &plan.taken, 1, .release);
    serve_plan(plan);
    g.plan = null;
    @atomicStore(u32, &g.request_done, 1, .release);
    _ = sys.futex_wake(&g.request_done, 1);
}

/// Serves every queued spawn in the order of the calls, then wakes the listeners their answers
/// go to.
fn serve_queue() void {
    var woken = std.StaticBitSet(abi.listeners_max).initEmpty();
    while (next_queued()) |entry| {
        // The host may have released it since (its realm ended: `release_ended_locked`).
        if (@cmpxchgStrong(u32, &entry.state, QueuedState.queued, QueuedState.taken, .acq_rel, .acquire) != null) continue;
        entry.plan.taken = 1;
        serve_plan(&entry.plan);
        woken.set(entry.plan.request.listener);
        g.spawns_queued +%= 1;
        @atomicStore(u32, &entry.state, QueuedState.answered, .release);
    }
    var listeners_woken = woken.iterator(.{});
    while (listeners_woken.next()) |listener| exits_zig.wake_reader(@intCast(listener));
}

/// The queued spawn called first, or null.
fn next_queued() ?*Queued {
    var first: ?*Queued = null;
    for (g.queue) |*entry| {
        if (@atomicLoad(u32, &entry.state, .acquire) != QueuedState.queued) continue;
        if (first == null or entry.sequence < first.?.sequence) first = entry;
    }
    return first;
}

/// Spawns the plan's child and, if it runs, starts watching it.
fn serve_plan(plan: *ChildPlan) void {
    const request = plan.request;
    spawn_child(plan);
    if (request.err_errno != 0) return;
    const slot = &g.slots[request.slot];
    slot.pid = request.pid;
    slot.pidfd = request.pidfd;
    slot.pgid = leads_group(request);
    request.group_pidfd = group_pidfd(request, slot.pgid);
    slot.watched = 0;
    slot.spawned_ns = sys.clock_monotonic_ns();
    owner_zig.note_spawned();
    g.table.insert(request.pid, request.slot);
    watch_child(request.slot);
    @atomicStore(u32, &slot.state, SlotState.running, .release);
}

/// Queues the spawn of `plan` (prepared from `request`, `len` bytes, its pipes open) for the
/// reaper: the request copied into the entry and its plan made again over the copy, the host's
/// attributes and environment read now. False when the queue is full or the spawn must be made
/// in the call (`queueable`); the caller spawns synchronously then.
pub fn enqueue_locked(plan: *ChildPlan, request: *abi.Request, len: usize) bool {
    const entry = free_entry() orelse full: {
        release_ended_locked(request.listener);
        break :full free_entry() orelse return false;
    };
    if (!queueable(plan) or len > entry.request.len) return false;
    @memcpy(entry.request[0..len], @as([*]const u8, @ptrCast(request))[0..len]);
    const copy: *abi.Request = @ptrCast(&entry.request);
    // The same validation, over the same bytes: it cannot fail now.
    if (prepare_plan(copy, len, &entry.plan)) |_| unreachable;
    const queued = &entry.plan;
    if (copy.flags & abi.flag_host_environ != 0) {
        var count: usize = 0;
        while (queued.envp[count] != null) : (count += 1) {
            if (count + 1 >= entry.environ.len) return false;
        }
        @memcpy(entry.environ[0 .. count + 1], queued.envp[0 .. count + 1]);
        queued.envp = &entry.environ;
    }
    host_attribute_changes(queued);
    queued.attributes_ready = 1;
    if (queued.set_groups) |groups| {
        @memcpy(entry.groups[0..groups.len], groups);
        queued.set_groups = entry.groups[0..groups.len];
    }
    entry.caller = request;
    entry.listener_epoch = region_zig.listeners()[copy.listener].epoch;
    entry.sequence = g.queue_sequence;
    g.queue_sequence += 1;
    entry.untaken = false;
    @atomicStore(u32, &entry.state, QueuedState.queued, .release);
    const one: u64 = 1;
    _ = sys.write(g.request_efd, @ptrCast(&one), 8);
    return true;
}

fn free_entry() ?*Queued {
    for (g.queue) |*entry| {
        if (@atomicLoad(u32, &entry.state, .acquire) == QueuedState.free) return entry;
    }
    return null;
}

/// Copies the reaper's answer (pid, pidfds, the failed step, the pipes' host ends) from the
/// entry's copy of the request to the caller's.
pub fn copy_answer(entry: *const Queued) void {
    const copy: *const abi.Request = @ptrCast(&entry.request);
    const caller = entry.caller;
    caller.pid = copy.pid;
    caller.pidfd = copy.pidfd;
    caller.group_pidfd = copy.group_pidfd;
    caller.err_errno = copy.err_errno;
    caller.err_step = copy.err_step;
    caller.err_index = copy.err_index;
    const caller_actions: [*]abi.FdAction = @ptrFromInt(@intFromPtr(caller) + @sizeOf(abi.Request));
    for (entry.plan.actions, caller_actions) |action, *out| out.out_fd = action.out_fd;
}

/// Whether the plan can wait in the queue: not when it names host descriptors (`dup`, a handed
/// over pipe end, `inheritFds`), which the caller may close or reuse once the call returns.
/// Those spawns are made in the call, with the descriptors as they are then.
fn queueable(plan: *const ChildPlan) bool {
    if (plan.request.flags & abi.flag_inherit_fds != 0) return false;
    for (plan.actions) |action| {
        if (action.kind == .dup or action.kind == .handover) return false;
    }
    return true;
}

/// The queued spawn of the caller's `request`, or null if there is none. Matched by its slot
/// and generation too: the memory of a realm that ended with a spawn in flight (whose entry
/// stays) may hold another request since.
pub fn queued_locked(request: *const abi.Request) ?*Queued {
    for (g.queue) |*entry| {
        if (@atomicLoad(u32, &entry.state, .acquire) == QueuedState.free) continue;
        const copy = entry.plan.request;
        if (entry.caller != request or copy.slot != request.slot or copy.generation != request.generation) continue;
        return entry;
    }
    return null;
}

/// Releases the queued spawns of every realm that has ended (its listener taken over by another
/// realm, or the thread that opened it gone), none of `live_listener`'s: one still queued is
/// taken back from the reaper, one answered is let go (its pipes closed; its child, if it runs,
/// is watched on and its exit goes to its listener's next realm, which lets it go); one the
/// reaper is serving is released by a later call. Under `g.lock`, which every entry's filling
/// takes too.
pub fn release_ended_locked(live_listener: u32) void {
    if (!g.private_ready) return;
    var ended = std.StaticBitSet(abi.listeners_max).initEmpty();
    var checked = std.StaticBitSet(abi.listeners_max).initEmpty();
    for (g.queue) |*entry| {
        const state = @atomicLoad(u32, &entry.state, .acquire);
        if (state != QueuedState.queued and state != QueuedState.answered) continue;
        const copy = entry.plan.request;
        const index = copy.listener;
        if (index == live_listener) continue;
        const l = &region_zig.listeners()[index];
        if (l.in_use and l.epoch == entry.listener_epoch) {
            if (!checked.isSet(index)) {
                checked.set(index);
                if (l.owner_thread != 0 and sys.thread_gone(l.owner_thread)) ended.set(index);
            }
            if (!ended.isSet(index)) continue;
        }
        if (state == QueuedState.queued and
            @cmpxchgStrong(u32, &entry.state, QueuedState.queued, QueuedState.free, .acq_rel, .acquire) != null) continue;
        release_entry(entry, state == QueuedState.queued);
    }
}

/// Lets go of a queued spawn whose realm has ended: `never_served` if the reaper never took it.
fn release_entry(entry: *Queued, never_served: bool) void {
    const copy = entry.plan.request;
    request_zig.close_pipes(entry.plan.actions, true);
    if (never_served or entry.untaken or copy.err_errno != 0) {
        request_zig.release_slot(copy.slot);
    } else if (copy.group_pidfd >= 0) {
        // The child runs; its pidfd is its slot's. The group's pidfd was the realm's.
        _ = sys.close(copy.group_pidfd);
    }
    entry.untaken = false;
    @atomicStore(u32, &entry.state, QueuedState.free, .release);
}

/// The reaper died: every spawn it had not answered is answered now. One it never took is
/// marked `untaken` (no child exists: `ph_spawn_finish` spawns it again); one it was serving
/// failed unless its child runs already (then the dead reaper's children are handled as such).
fn answer_queue_locked() void {
    if (!g.private_ready) return;
    for (g.queue) |*entry| {
        const state = @atomicLoad(u32, &entry.state, .acquire);
        if (state != QueuedState.queued and state != QueuedState.taken) continue;
        const request = entry.plan.request;
        if (state == QueuedState.queued) {
            entry.untaken = true;
        } else if (request.err_errno == 0 and @atomicLoad(u32, &g.slots[request.slot].state, .acquire) != SlotState.running) {
            // A child may exist, now the kernel's to re-parent: nothing of it is kept.
            inline for (.{ &request.pidfd, &request.group_pidfd }) |fd| {
                if (fd.* >= 0) _ = sys.close(fd.*);
                fd.* = -1;
            }
            request.err_errno = sys.E.CHILD;
            request.err_step = .reaper;
        }
        @atomicStore(u32, &entry.state, QueuedState.answered, .release);
        exits_zig.wake_reader(request.listener);
    }
}

/// Hands `plan` to the reaper and waits for its answer; false if the reaper died first.
fn submit(plan: *ChildPlan) bool {
    @atomicStore(u32, &plan.taken, 0, .release);
    g.plan = plan;
    @atomicStore(u32, &g.request_done, 0, .release);
    const one: u64 = 1;
    _ = sys.write(g.request_efd, @ptrCast(&one), 8);
    if (@atomicLoad(u32, &plan.attributes_ready, .acquire) == 0) {
        host_attribute_changes(plan);
        @atomicStore(u32, &plan.attributes_ready, 1, .release);
        _ = sys.futex_wake(&plan.attributes_ready, 1);
    }
    spin_until_done();
    while (@atomicLoad(u32, &g.request_done, .acquire) == 0) {
        _ = sys.futex_wait(&g.request_done, 0, liveness_check_ms);
        if (@atomicLoad(u32, &g.request_done, .acquire) == 0 and !reaper_alive_locked()) return false;
    }
    return true;
}

/// A spawn takes tens of microseconds; sleeping on the futex adds a cross-CPU wake-up as long
/// again (measured 20 to 50 us here). So first yield-spin, bounded, then sleep.
fn spin_until_done() void {
    if (!spin.worthwhile(g.slots_in_use)) return;
    const start_ns = sys.clock_monotonic_ns();
    var spins: u32 = 0;
    while (spins < spin_max) : (spins += 1) {
        if (@atomicLoad(u32, &g.request_done, .acquire) != 0) return spin.won();
        if (spin.yield_gave_cpu_away(RequestDone{})) return;
        if (spins % 16 == 15 and sys.clock_monotonic_ns() - start_ns > spin_budget_ns) return;
    }
}
/// What `spin_until_done` waits for: the reaper's answer.
const RequestDone = struct {
    pub fn arrived(_: RequestDone) bool {
        return @atomicLoad(u32, &g.request_done, .acquire) != 0;
    }
};
/// Measured and chosen in docs/decisions/0005-bounded-spin-waits.md.
const spin_max = 100_000;
/// Measured and chosen in docs/decisions/0005-bounded-spin-waits.md.
const spin_budget_ns = 300_000;

// ---------------------------------------------------------------------------------------------
// The backend contract (checked in library.zig).

pub const backend: abi.Backend = .reaper;
pub const start_locked = start_reaper_locked;
pub const alive_locked = reaper_alive_locked;

/// Whether the reaper has exited (or there is none), without reaping it: that stays with
/// `reaper_alive_locked`, under `g.lock`.
pub fn exited() bool {
    const pid = @atomicLoad(i32, &g.reaper_pid, .monotonic);
    return pid == 0 or reaper_gone(pid, sys.W.NOWAIT);
}

pub fn current_pid() i32 {
    return g.reaper_pid;
}

/// Hands the plan to the reaper and waits for its answer (`request.err_*` on failure).
pub fn submit_locked(plan: *ChildPlan) void {
    const request = plan.request;
    var attempts: u32 = 0;
    while (attempts < 2) : (attempts += 1) {
        if (submit(plan)) return;
        // The reaper died. If it never took the request, no child can exist: resend it once
        // to a new reaper. If it had taken it, a child may have been created: fail.
        g.plan = null;
        const retry = @atomicLoad(u32, &plan.taken, .acquire) == 0 and attempts == 0 and start_reaper_locked() == 0;
        if (retry) continue;
        request.err_errno = sys.E.CHILD;
        request.err_step = .reaper;
        return;
    }
}

/// The reaper shares our descriptor table: it writes to the listener's own pipe.
pub fn listener_opened(index: u32, write_fd: i32) void {
    _ = index;
    _ = write_fd;
}
