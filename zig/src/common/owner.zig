//! The owner of the children: the loop the reaper runs in the host's address space and the
//! helper in its own. Spawns vfork children, watches pidfds and SIGCHLD, publishes exits, reaps.

const std = @import("std");
const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;

const assert = std.debug.assert;
const spin = @import("spin.zig");
const tree = @import("tree.zig");
const cgroup = @import("cgroup.zig");

const serve_zig = @import("../backend/helper/serve.zig");
const helper_serve = serve_zig.helper_serve;
const reaper_zig = @import("../backend/reaper/reaper.zig");
const orphan_done = reaper_zig.orphan_done;
const serve_request = reaper_zig.serve_request;
const child_zig = @import("child.zig");
const child_main = child_zig.child_main;
const exits_zig = @import("exits.zig");
const reap_set = exits_zig.reap_set;
const reap_waiter = exits_zig.reap_waiter;
const reap_wake_reader = exits_zig.reap_wake_reader;
const signal_lock = exits_zig.signal_lock;
const slot_publish = exits_zig.slot_publish;
const wake_reader = exits_zig.wake_reader;
const fds_zig = @import("fds.zig");
const move_to_pidfd_floor = fds_zig.move_to_pidfd_floor;
const pidfd_floor = fds_zig.pidfd_floor;
const region_zig = @import("region.zig");
const SlotState = region_zig.SlotState;
const listeners = region_zig.listeners;
const state_zig = @import("state.zig");
const ChildPlan = state_zig.ChildPlan;
const child_stack_len = state_zig.child_stack_len;
const g = &state_zig.g;
const in_helper = state_zig.in_helper;
const lock = state_zig.lock;
const owner_pidfd = state_zig.owner_pidfd;
const unlock = state_zig.unlock;

const event_request: u64 = 0;
const event_signal: u64 = 1;
const event_host: u64 = 2;
/// Event data of an orphan's pidfd: this plus its slot index.
const event_orphan: u64 = 16;
/// Event data of a running child's pidfd: this plus its slot index.
const event_child: u64 = event_orphan + abi.slots_max;
/// Event data of a lingering cgroup's `cgroup.events`: this plus its index (cgroup.zig).
const event_cgroup: u64 = event_child + abi.slots_max;
/// An orphan that exited but whose new parent has not reaped it after this long is reported
/// lost (some inits never reap, e.g. this project's CI machine's PID 1).
/// Measured and chosen in docs/decisions/0007-reaper-liveness.md.
const orphan_grace_ns = 2_000_000_000;
/// While orphans wait to be reaped, the reaper retries them this often.
/// Measured and chosen in docs/decisions/0007-reaper-liveness.md.
const orphan_retry_ms = 20;
/// Without a host pidfd the reaper notices the host's exit by its parent changing.
const parent_poll_ms = 50;
/// How long the reaper keeps polling after it handled an event.
/// Measured and chosen in docs/decisions/0001-reaper-poll-window.md.
pub const reaper_poll_ns = 200_000;
/// ... and while recent children lived shorter than that, this long: a child that execs a
/// dynamic binary (`/bin/true`: about 400 us here) then exits while the reaper still polls,
/// which saves a cross-CPU wake-up (30 us and more on this VM) on every exit. It costs up to
/// this much CPU per event, and only while children are that short-lived.
/// Measured and chosen in docs/decisions/0001-reaper-poll-window.md.
const short_child_poll_ns = 1_000_000;

/// The lifetimes of recently reaped children, averaged (reaper only; 1/4 weight to the last),
/// or null before the first.
var recent_lifetime_ns: ?u64 = null;

fn poll_window_ns() u64 {
    const lifetime_ns = recent_lifetime_ns orelse return reaper_poll_ns;
    return if (lifetime_ns < short_child_poll_ns) short_child_poll_ns else reaper_poll_ns;
}

/// A poll window ended early, or was not worth starting: the owner sleeps at the next turn of
/// its loop, once the events at hand are handled, and that counts as the window running out
/// (`window_expired`), so a busy or crowded host also stops paying for long windows.
const window_over: u64 = 1;

/// Whether a child was spawned since the last exit (owner only).
var awaiting_exit = false;
/// The owner's own children that have not exited yet (owner only).
var children_running: u32 = 0;

/// The jobs in flight, for `spin.worthwhile`: the owner's children still running, or the
/// host's slots in use (spawned and not yet delivered) when more. In a pool whose host is the
/// slower side, the children end before the host spawns the next: few run, but the host is busy
/// and the next request comes without the owner polling for it.
fn jobs_in_flight() u32 {
    return @max(children_running, @atomicLoad(u32, &g.region.slots_in_use, .monotonic));
}

/// Called by the owner once a child runs.
pub fn note_spawned() void {
    awaiting_exit = true;
    children_running += 1;
}

fn note_lifetime(spawned_ns: u64) void {
    awaiting_exit = false;
    note_lifetime_sample(sys.clock_monotonic_ns() -| spawned_ns);
}

fn note_lifetime_sample(lifetime_ns: u64) void {
    const before_ns = recent_lifetime_ns orelse lifetime_ns;
    recent_lifetime_ns = (before_ns / 4) * 3 + lifetime_ns / 4;
    @atomicStore(u32, &g.poll_window_us, @intCast(poll_window_ns() / 1000), .monotonic);
}

/// A poll window ran out with a child spawned since the last exit: it outlived the window,
/// so count it as a long life, heavily enough that this ends the long windows at once. A host
/// that turns from short children to long-lived ones stops paying for polls that catch
/// nothing; the next short-lived child brings them back.
fn window_expired() void {
    if (!awaiting_exit or poll_window_ns() == reaper_poll_ns) return;
    awaiting_exit = false;
    note_lifetime_sample(4 * short_child_poll_ns);
}

/// The owner's process: set up, tell the host (`reaper_ready`), then serve until the host
/// exits. Runs on the reaper's stack in the reaper, and as the helper's main loop.
pub fn owner_main(_: usize) callconv(.c) u8 {
    g.reaper_setup_errno = owner_setup();
    @atomicStore(u32, &g.reaper_ready, 1, .release);
    _ = sys.futex_wake(&g.reaper_ready, 1);
    if (g.reaper_setup_errno != 0) sys.exit(1);
    owner_loop();
}

/// A fresh owner's state, default signal dispositions, and its epoll set; returns an errno.
fn owner_setup() i32 {
    // A name to recognise it by in ps and /proc/<pid>/comm.
    _ = sys.prctl(sys.PR_SET_NAME, @intFromPtr(if (in_helper) "ph-helper" else "ph-reaper"));
    // A new reaper has no children of its own yet (its predecessor's are orphans now).
    unwatched = 0;
    unreaped_count = 0;
    unclosed_count = 0;
    recent_lifetime_ns = null;
    awaiting_exit = false;
    children_running = 0;
    @atomicStore(u32, &g.poll_window_us, reaper_poll_ns / 1000, .monotonic);
    var act = sys.KSigaction{ .handler = sys.SIG.DFL, .flags = 0, .restorer = 0, .mask = 0 };
    var sig: u32 = 1;
    while (sig <= sys.SIG.max) : (sig += 1) {
        if (sig == sys.SIG.KILL or sig == sys.SIG.STOP) continue;
        _ = sys.rt_sigaction(sig, &act, null);
    }
    // signalfd readiness in epoll belongs to the process that registers it: do it here.
    const sigchld: u64 = 1 << (sys.SIG.CHLD - 1);
    var rc = sys.signalfd(&sigchld);
    if (sys.errno(rc) == 0) {
        g.signal_fd = sys.int(rc);
        rc = sys.epoll_create();
    }
    if (sys.errno(rc) == 0) {
        g.epoll_fd = sys.int(rc);
        rc = sys.epoll_add(g.epoll_fd, g.signal_fd, sys.EPOLLIN, event_signal);
    }
    if (sys.errno(rc) == 0) rc = sys.epoll_add(g.epoll_fd, g.request_efd, sys.EPOLLIN, event_request);
    if (sys.errno(rc) == 0 and g.host_pidfd >= 0) rc = sys.epoll_add(g.epoll_fd, g.host_pidfd, sys.EPOLLIN, event_host);
    if (sys.errno(rc) == 0) watch_orphans();
    // Cgroups for the children that ask for one; without them, children go without.
    released_count = 0;
    cgroup.setup(g.host_pid);
    return sys.errno(rc);
}

/// Waits for events (polling for a while after each), serves them, and never returns: the
/// owner exits in `host_exited`.
fn owner_loop() noreturn {
    var events: [64]sys.EpollEvent = undefined;
    var busy_until_ns: u64 = 0;
    var rc: usize = 0;
    while (true) {
        var timeout_ms: i32 = if (in_helper or g.host_pidfd >= 0) -1 else parent_poll_ms;
        if (orphans_exited > 0) timeout_ms = orphan_retry_ms;
        const trim_ms = cgroup.trim_timeout_ms();
        if (trim_ms >= 0 and (timeout_ms < 0 or trim_ms < timeout_ms)) timeout_ms = trim_ms;
        // Right after work, poll instead of sleeping: a spawned child often exits, or the
        // next request comes, within microseconds, and a sleep costs a cross-CPU wake-up.
        const now_ns = sys.clock_monotonic_ns();
        if (now_ns < busy_until_ns or published_unclean()) {
            rc = sys.epoll_wait(g.epoll_fd, &events, 0);
            if (sys.errno(rc) == 0 and rc == 0) {
                // Nothing else is pending: now reap the children whose exits went out.
                if (published_unclean()) {
                    clean_up_published();
                    remove_released_cgroups();
                } else if (!spin.worthwhile(jobs_in_flight()) or spin.yield_gave_cpu_away(EventReady{})) {
                    busy_until_ns = window_over;
                }
                continue;
            }
            if (sys.errno(rc) == 0 and now_ns < busy_until_ns) spin.won();
        } else {
            if (busy_until_ns != 0) window_expired();
            busy_until_ns = 0;
            rc = sys.epoll_wait(g.epoll_fd, &events, timeout_ms);
        }
        if (sys.errno(rc) != 0) continue;
        if (rc > 0) {
            const worthwhile = spin.worthwhile(jobs_in_flight());
            busy_until_ns = if (worthwhile) sys.clock_monotonic_ns() + poll_window_ns() else window_over;
        }
        // A burst: more than one exit at once. Then every status goes out before any reap.
        var exits: u32 = 0;
        for (events[0..@intCast(rc)]) |event| exits += @intFromBool(event.data >= event_child and event.data < event_cgroup);
        const burst = exits > 1 or unreaped_count > 0;
        for (events[0..@intCast(rc)]) |event| {
            switch (event.data) {
                event_request => if (in_helper) helper_serve() else serve_request(),
                event_signal => {
                    var buf: [128 * 4]u8 = undefined;
                    _ = sys.read(g.signal_fd, &buf, buf.len);
                    reap_all();
                },
                event_host => host_exited(),
                else => if (event.data >= event_cgroup) {
                    cgroup_changed(@intCast(event.data - event_cgroup));
                } else if (event.data >= event_child) {
                    child_exited(@intCast(event.data - event_child), burst);
                } else {
                    assert(event.data >= event_orphan);
                    orphan_exited(@intCast(event.data - event_orphan));
                },
            }
        }
        if (orphans_exited > 0) retry_orphans();
        if (rc == 0) cgroup.trim_pool();
        if (!in_helper and g.host_pidfd < 0 and sys.getppid() != g.host_pid) host_exited();
    }
}

/// What the owner's poll window waits for: any event in its epoll set.
const EventReady = struct {
    pub fn arrived(_: EventReady) bool {
        return events_ready(g.epoll_fd);
    }
};

/// Whether an `epoll_wait` on `epoll_fd` would return at once. `poll` on the epoll fd only
/// looks: children are watched with EPOLLONESHOT, which an `epoll_wait` would disarm.
fn events_ready(epoll_fd: i32) bool {
    var pollfd = [1]sys.PollFd{.{ .fd = epoll_fd, .events = sys.POLLIN, .revents = 0 }};
    const rc = sys.poll(&pollfd, 1, 0);
    return sys.errno(rc) == 0 and rc > 0;
}

test "looking for events leaves a one-shot event armed" {
    const testing = std.testing;
    const epoll_fd = sys.int(sys.epoll_create());
    defer _ = sys.close(epoll_fd);
    const event_fd = sys.int(sys.eventfd());
    defer _ = sys.close(event_fd);
    try testing.expectEqual(@as(usize, 0), sys.epoll_add(epoll_fd, event_fd, sys.EPOLLIN | sys.EPOLLONESHOT, 7));
    try testing.expect(!events_ready(epoll_fd));
    const one: u64 = 1;
    try testing.expectEqual(@as(usize, 8), sys.write(event_fd, @ptrCast(&one), 8));
    try testing.expect(events_ready(epoll_fd));
    try testing.expect(events_ready(epoll_fd));
    var events: [4]sys.EpollEvent = undefined;
    try testing.expectEqual(@as(usize, 1), sys.epoll_wait(epoll_fd, &events, 0));
    try testing.expectEqual(@as(u64, 7), events[0].data);
    // Now disarmed, as the owner's loop expects.
    try testing.expect(!events_ready(epoll_fd));
}

/// Orphans whose pidfd reported their exit and whose status is not known yet (reaper only).
var orphans_exited: u32 = 0;
var orphan_deadline_ns: [abi.slots_max]u64 = undefined;

fn watch_orphans() void {
    orphans_exited = 0;
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (slot.orphan != 1 or @atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        if (sys.errno(sys.epoll_add(g.epoll_fd, slot.pidfd, sys.EPOLLIN, event_orphan + index)) != 0) {
            orphan_done(index, .lost, 0);
        }
    }
}

/// The orphan's pidfd is readable: it has exited. Stop watching (the pidfd stays readable) and
/// try to read its status; until its new parent reaps it, retry on a short timeout.
fn orphan_exited(index: u32) void {
    const slot = &g.slots[index];
    _ = sys.epoll_del(g.epoll_fd, slot.pidfd);
    if (slot.orphan != 1) return;
    slot.orphan = 2;
    orphans_exited += 1;
    orphan_deadline_ns[index] = sys.clock_monotonic_ns() + orphan_grace_ns;
    _ = collect_orphan(index);
}

fn retry_orphans() void {
    var index: u32 = 0;
    while (index < g.next_unused and orphans_exited > 0) : (index += 1) {
        if (g.slots[index].orphan == 2) _ = collect_orphan(index);
    }
}

/// True once the orphan's status was published (found, unavailable, or given up on).
fn collect_orphan(index: u32) bool {
    const slot = &g.slots[index];
    var info = sys.PidfdInfo{ .mask = sys.PIDFD_INFO_EXIT };
    const rc = sys.ioctl(slot.pidfd, sys.PIDFD_GET_INFO, @intFromPtr(&info));
    if (sys.errno(rc) == 0 and info.mask & sys.PIDFD_INFO_EXIT != 0) {
        const status: u32 = @bitCast(info.exit_code);
        const signal_number: i32 = @intCast(status & 0x7f);
        orphans_exited -= 1;
        if (signal_number == 0) {
            orphan_done(index, .exited, @intCast((status >> 8) & 0xff));
        } else {
            orphan_done(index, if (status & 0x80 != 0) .dumped else .killed, signal_number);
        }
        return true;
    }
    // No PIDFD_GET_INFO (before 6.15) or no exit information yet: give up after the grace.
    // Through a slice: indexing the array value copies all 512 KiB of it onto the reaper's
    // stack in a Debug build (found when a Zig test first reached this path).
    const deadlines_ns: []const u64 = &orphan_deadline_ns;
    if (sys.errno(rc) != 0 or sys.clock_monotonic_ns() >= deadlines_ns[index]) {
        orphans_exited -= 1;
        orphan_done(index, .lost, 0);
        return true;
    }
    return false;
}

pub fn host_exited() noreturn {
    clean_up_published();
    // Each child with a pidfd gets its whole tree signalled, `setsid` descendants included
    // (tree.zig), many children per walk of /proc; without pidfds, the child alone, by pid.
    var roots: [tree.roots_per_walk]tree.Member = undefined;
    var count: usize = 0;
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        // A child in a cgroup of its own is killed with its cgroup, below.
        if (slot.kill_on_exit_signal == 0 or slot.cgroup != 0) continue;
        const pidfd = owner_pidfd(index).*;
        if (pidfd < 0) {
            _ = sys.kill(slot.pid, slot.kill_on_exit_signal);
            continue;
        }
        roots[count] = .{ .pid = slot.pid, .pidfd = pidfd, .sig = slot.kill_on_exit_signal };
        count += 1;
        if (count == roots.len) {
            tree.signal_after_host(roots[0..count]);
            count = 0;
        }
    }
    if (count > 0) tree.signal_after_host(roots[0..count]);
    cgroup.host_exited();
    sys.exit_group(0);
}

fn reap_all() void {
    if (unwatched == 0) return;
    // Without pidfds, or for children that lead a process group, host threads signal by
    // pid under `signal_lock`; peeking first lets the reaper take that lock before reaping.
    var reaped: u32 = 0;
    while (reaped < abi.slots_max) : (reaped += 1) {
        var info = std.mem.zeroes(sys.SigInfo);
        var usage = std.mem.zeroes(sys.Rusage);
        const rc = sys.waitid(sys.P.ALL, 0, &info, sys.W.EXITED | sys.W.NOHANG | sys.W.NOWAIT, null);
        if (sys.errno(rc) != 0 or info.pid == 0) return;
        lock(signal_lock());
        _ = sys.waitid(sys.P.PID, info.pid, &info, sys.W.EXITED, &usage);
        record_exit(&info, &usage, false);
        unlock(signal_lock());
    }
}

/// `close_later`: the pidfd goes on the `unclosed` list, closed with the reaps.
fn record_exit(info: *const sys.SigInfo, usage: *const sys.Rusage, close_later: bool) void {
    const index = g.table.remove(info.pid) orelse return;
    assert(children_running > 0);
    children_running -= 1;
    const slot = &g.slots[index];
    assert(slot.pid == info.pid);
    if (slot.watched == 0) unwatched -= 1;
    if (slot.cgroup != 0) {
        // Released once the child is reaped (`remove_released_cgroups`).
        if (released_count == released.len) remove_released_cgroups();
        released[released_count] = .{
            .use = .{ .number = slot.cgroup, .kill_signal = slot.kill_on_exit_signal, .kept = slot_kept[index] },
            .reuse = @atomicLoad(u32, &slot.tree_signal, .acquire) == 0,
        };
        released_count += 1;
        slot.cgroup = 0;
    }
    slot.kind = switch (info.code) {
        sys.CLD.EXITED => .exited,
        sys.CLD.KILLED => .killed,
        sys.CLD.DUMPED => .dumped,
        else => @enumFromInt(info.code),
    };
    slot.value = info.status;
    slot.user_cpu_us = micros(usage.utime);
    slot.system_cpu_us = micros(usage.stime);
    slot.max_rss_kib = @intCast(@max(usage.maxrss, 0));
    note_lifetime(slot.spawned_ns);
    // The reaper closes the pidfd itself: a close costs about 2 us (the pidfs file, dentry
    // and inode go), which after 10,000 exits was 20 ms of the JavaScript thread's drain.
    // With the reap (`clean_up_published`), after the status went out: for a lone exit at
    // once, in a burst once nothing is pending. Out of the slot under `signal_lock`: no host
    // thread signals or copies it then.
    const pidfd = owner_pidfd(index).*;
    owner_pidfd(index).* = -1;
    if (pidfd >= 0 and !close_later) {
        _ = sys.close(pidfd);
    } else if (pidfd >= 0) {
        if (unclosed_count == unclosed.len) clean_up_published();
        unclosed[unclosed_count] = pidfd;
        @atomicStore(usize, &unclosed_count, unclosed_count + 1, .release);
    }
    slot_publish(index);
}

fn micros(t: sys.Timeval) u64 {
    return @intCast(@max(t.sec * 1_000_000 + t.usec, 0));
}

/// Each child is found by its own pidfd becoming readable, so an exit is reaped by pid:
/// waitid(P_ALL) walks the children list, which is O(children) per exit with 10,000 waiting.
/// Children without a watched pidfd are found by SIGCHLD and that walk.
pub fn watch_child(index: u32) void {
    const slot = &g.slots[index];
    // One report each: `child_exited` takes it out of the set once it has reaped the child.
    const events = sys.EPOLLIN | sys.EPOLLONESHOT;
    const pidfd = owner_pidfd(index).*;
    if (pidfd >= 0 and sys.errno(sys.epoll_add(g.epoll_fd, pidfd, events, event_child + index)) == 0) {
        slot.watched = 1;
    } else {
        unwatched += 1;
    }
}

/// Running children whose exit only SIGCHLD reports (no pidfd, or epoll refused it).
var unwatched: u32 = 0;

/// Every exit is published first: its status and rusage read with WNOWAIT, then the record
/// goes out and the host is woken, then the zombie is reaped and its pidfd closed. A lone
/// exit is reaped and closed at once, and its record is not delivered before that
/// (`reap_pending`): once `wait()` resolves the pid is gone, as with the runtimes' own
/// spawners, while the host's wake-up (a cross-CPU wake, 30 us and more on some VMs) overlaps
/// the reaping. In a burst (`defer_reap`) the reaps wait until nothing is pending: reaping
/// (release_task) is the larger part of an exit's cost, and after a storm of exits it would
/// hold back every status behind it.
fn child_exited(index: u32, defer_reap: bool) void {
    const slot = &g.slots[index];
    if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) return;
    const pidfd = owner_pidfd(index).*;
    const pid = slot.pid;
    var info = std.mem.zeroes(sys.SigInfo);
    var usage = std.mem.zeroes(sys.Rusage);
    lock(signal_lock());
    // WNOHANG: a stale event (the slot was reaped and reused since) must not block.
    const rc = sys.waitid(sys.P.PID, pid, &info, sys.W.EXITED | sys.W.NOHANG | sys.W.NOWAIT, &usage);
    const exited = sys.errno(rc) == 0 and info.pid == pid;
    if (exited) {
        if (!defer_reap) @atomicStore(u32, &slot.reap_pending, reap_set, .release);
        record_exit(&info, &usage, true);
    }
    unlock(signal_lock());
    if (!exited) return;
    // Out of the set before the pidfd is closed (with the reaps): afterwards EPOLL_CTL_DEL
    // by number fails (EBADF) while a copy the caller took (`child.fd`) keeps the file, and
    // with it the entry, alive. The zombie keeps its pid from reuse until it is reaped; its
    // slot says exited, so no host thread signals it any more.
    _ = sys.epoll_del(g.epoll_fd, pidfd);
    if (unreaped_count == unreaped.len) clean_up_published();
    unreaped[unreaped_count] = pid;
    unreaped_count += 1;
    if (defer_reap) return;
    clean_up_published();
    // Read before the clear: once it is clear the host may drain the slot and reuse it.
    const l = &listeners()[slot.listener];
    const pending = @atomicRmw(u32, &slot.reap_pending, .Xchg, 0, .seq_cst);
    if (pending & reap_waiter != 0) _ = sys.futex_wake(&slot.reap_pending, std.math.maxInt(i32));
    // A drain stopped at the record: wake its reader again.
    if (pending & reap_wake_reader != 0 and l.in_use) wake_reader(slot.listener);
    // After the host's wake-up: an rmdir costs tens of microseconds (decision 0012).
    remove_released_cgroups();
}

/// The cgroups of reaped children, to release once nothing is pending (owner only).
const Released = struct { use: cgroup.Use, reuse: bool };
var released: [4096]Released = undefined;
var released_count: usize = 0;
/// Which of `cgroup.zig`'s kept cgroups each running child is in (owner only).
var slot_kept: [abi.slots_max]u8 = undefined;

/// Releases the cgroups of reaped children: back to the pool, or removed; one that a
/// descendant keeps populated is watched through its `cgroup.events` until it empties
/// (`cgroup_changed`). Zombies are in no cgroup, so the reaped child's exit is enough.
fn remove_released_cgroups() void {
    // Through a slice: no copy of the array on the owner's stack in a Debug build.
    const list: []const Released = &released;
    for (list[0..released_count]) |entry| {
        const index = cgroup.release(entry.use, entry.reuse) orelse continue;
        const fd = cgroup.lingering_fd(index);
        if (sys.errno(sys.epoll_add(g.epoll_fd, fd, sys.EPOLLPRI, event_cgroup + index)) != 0) {
            // Not watched: the host's exit removes it if it can.
            cgroup.forget(index);
            continue;
        }
        // It may have emptied before it was watched.
        cgroup_changed(index);
    }
    released_count = 0;
}

/// A lingering cgroup's `cgroup.events` changed: remove it once it is empty.
fn cgroup_changed(index: u32) void {
    if (!cgroup.lingering_changed(index)) return;
    _ = sys.epoll_del(g.epoll_fd, cgroup.lingering_fd(index));
    cgroup.forget(index);
}

/// Children whose exit was published but who are still zombies, and the pidfds of published
/// children that are still open (reaper only). Both are cleaned up as soon as no event is
/// pending, and before every spawn, so neither holds more than the children alive at the
/// last spawn: `slots_max` at most.
var unreaped: [abi.slots_max]i32 = undefined;
var unreaped_count: usize = 0;
var unclosed: [abi.slots_max]i32 = undefined;
var unclosed_count: usize = 0;

fn published_unclean() bool {
    return unreaped_count > 0 or unclosed_count > 0 or released_count > 0;
}

/// Reaps the zombies whose exits went out already (ECHILD for one that `reap_all` took) and
/// closes their pidfds. A pid in the list can never belong to a newer child: every spawn
/// empties the list first.
pub fn clean_up_published() void {
    for (unreaped[0..unreaped_count]) |pid| {
        var info = std.mem.zeroes(sys.SigInfo);
        _ = sys.waitid(sys.P.PID, pid, &info, sys.W.EXITED | sys.W.NOHANG, null);
    }
    unreaped_count = 0;
    close_published_pidfds();
}

/// Closes the pidfds on the `unclosed` list: by the reaper, or by the host once the reaper
/// died (`reaper_died_locked`). Each one leaves the list before it is closed, so a reaper that
/// dies in here leaves only numbers not closed yet, and none is closed twice.
pub fn close_published_pidfds() void {
    // Through a slice: indexing the array value can copy all 256 KiB of it onto the
    // reaper's stack in a Debug build (a SIGSEGV in its guard page, seen in the Zig tests).
    const list: []const i32 = &unclosed;
    while (@atomicLoad(usize, &unclosed_count, .acquire) > 0) {
        const fd = list[unclosed_count - 1];
        @atomicStore(usize, &unclosed_count, unclosed_count - 1, .release);
        _ = sys.close(fd);
    }
}

/// A second pidfd for a child that leads its own group, made before the child is watched
/// (so before its exit can be reaped and its pidfd closed). After the child is reaped it still
/// names the group's id, which the kernel keeps from reuse while the group has members
/// (`signal_group`). -1 without pidfds, for a joined group, or when no descriptor is free
/// (EMFILE): then `signal_group` goes by the group's number.
pub fn group_pidfd(request: *const abi.Request, pgid: i32) i32 {
    if (request.pidfd < 0 or pgid != request.pid) return -1;
    const rc = sys.fcntl(request.pidfd, sys.F.DUPFD_CLOEXEC, pidfd_floor);
    if (sys.errno(rc) == 0) return sys.int(rc);
    // EINVAL: the floor is at or above RLIMIT_NOFILE; take the lowest number above stdio.
    const low = sys.fcntl(request.pidfd, sys.F.DUPFD_CLOEXEC, 3);
    return if (sys.errno(low) == 0) sys.int(low) else -1;
}

pub fn leads_group(request: *const abi.Request) i32 {
    if (request.flags & abi.flag_setsid != 0) return request.pid;
    if (request.flags & abi.flag_setpgid != 0) return if (request.pgid == 0) request.pid else request.pgid;
    return 0;
}

pub fn spawn_child(plan: *ChildPlan) void {
    const request = plan.request;
    assert(request.slot < abi.slots_max);
    plan.reaper_pid = sys.getpid();
    const slot = &g.slots[request.slot];
    slot.cgroup = 0;
    slot.tree_signal = 0;
    // A cgroup of its own only through clone3 (CLONE_INTO_CGROUP).
    const wants_cgroup = request.flags & abi.flag_cgroup != 0 and g.clone_mode != .legacy;
    var use: cgroup.Use = if (wants_cgroup) cgroup.acquire(request.kill_on_exit_signal) else .{};
    plan.cgroup_fd = use.dir_fd;
    var pidfd: i32 = -1;
    var rc: usize = 0;
    // Each retry remembers a fallback (CLONE_INTO_CGROUP, clone3, CLONE_PIDFD, CLONE_FILES),
    // so at most four.
    var attempts: u32 = 0;
    while (attempts < 5) : (attempts += 1) {
        rc = clone_child(plan, &pidfd);
        if (!fell_back(plan, rc, pidfd)) break;
    }
    assert(attempts < 5);
    const in_cgroup = plan.cgroup_fd >= 0;
    plan.cgroup_fd = -1;
    cgroup.after_clone(&use);
    const failed = sys.errno(rc) != 0 or plan.err_errno != 0;
    if (failed or !in_cgroup) {
        // Unused, or the child failed: it has exited (CLONE_VFORK) or is about to (a
        // zombie is in no cgroup), so the cgroup is empty, or will be once it is reaped.
        if (failed and in_cgroup and sys.errno(rc) == 0) collect_failed_child(sys.int(rc), pidfd);
        // Pooled, unless cgroups were given up on in this spawn (the clone refused them).
        _ = cgroup.release(use, cgroup.active());
        use = .{};
    }
    if (sys.errno(rc) != 0) {
        request.err_errno = sys.errno(rc);
        request.err_step = .clone;
        return;
    }
    const pid = sys.int(rc);
    if (plan.err_errno != 0) {
        if (!in_cgroup) collect_failed_child(pid, pidfd);
        request.err_errno = plan.err_errno;
        request.err_step = plan.err_step;
        request.err_index = plan.err_index;
        return;
    }
    slot.cgroup = use.number;
    slot_kept[request.slot] = use.kept;
    if (plan.shares_fd_table) g.fd_table_mode = plan.fd_table;
    request.pid = pid;
    // CLONE_PIDFD takes the lowest free descriptor: lift it to the pidfd floor (or at least
    // above the host's 0, 1 and 2).
    // A pidfd that cannot be moved (EMFILE with 0, 1 or 2 free) is closed by the move: the
    // child is then held by pid, which is safe because only the reaper reaps it.
    request.pidfd = if (g.pidfd_mode == .available) (move_to_pidfd_floor(pidfd) catch -1) else -1;
}

/// One clone of the vfork child, with what this kernel is known to allow; returns its pid
/// once it has exec'd or failed (`plan.err_*`), or -errno.
fn clone_child(plan: *ChildPlan, pidfd: *i32) usize {
    if (g.clone_mode == .fork) return fork_child(plan, pidfd);
    const want_pidfd = g.pidfd_mode != .missing;
    // CLONE_FILES: the child starts on the shared table and copies only the descriptors it
    // needs (`child_own_fd_table`), never the reaper's pidfds of live children.
    plan.shares_fd_table = g.fd_table_mode != .whole_at_clone;
    const flags: u64 = sys.CLONE.VM | sys.CLONE.VFORK |
        @as(u64, if (want_pidfd) sys.CLONE.PIDFD else 0) |
        @as(u64, if (plan.shares_fd_table) sys.CLONE.FILES else 0);
    pidfd.* = -1;
    if (g.clone_mode == .legacy) {
        return sys.clone(child_main, g.child_stack, @intCast(flags | sys.SIG.CHLD), @intFromPtr(plan), pidfd);
    }
    var args = sys.CloneArgs{
        .flags = flags,
        .pidfd = @intFromPtr(pidfd),
        .exit_signal = sys.SIG.CHLD,
        .stack = g.child_stack - child_stack_len,
        .stack_size = child_stack_len,
    };
    var size: usize = sys.clone_args_size_v0;
    if (plan.cgroup_fd >= 0) {
        args.flags |= sys.CLONE.INTO_CGROUP;
        args.cgroup = @intCast(plan.cgroup_fd);
        size = sys.clone_args_size_v2;
    }
    return sys.clone3(&args, size, child_main, @intFromPtr(plan));
}

/// `CloneMode.fork`: a plain fork (the helper is single-threaded, and the child runs raw
/// syscalls only), its failed step read from a close-on-exec pipe (end of file: it exec'd),
/// and its pidfd from pidfd_open (the pid is ours until we reap it). Returns like clone.
fn fork_child(plan: *ChildPlan, pidfd: *i32) usize {
    // The helper gets the host's attributes with the request; a forked child could not see
    // them arrive later in the owner's memory.
    assert(in_helper and @atomicLoad(u32, &plan.attributes_ready, .acquire) != 0);
    plan.shares_fd_table = false;
    pidfd.* = -1;
    var ends: [2]i32 = undefined;
    const piped = sys.pipe2(&ends, sys.O.CLOEXEC);
    if (sys.errno(piped) != 0) return piped;
    defer _ = sys.close(ends[0]);
    // Above every descriptor the child's plan makes, so no dup3 lands on it.
    const lifted = sys.fcntl(ends[1], sys.F.DUPFD_CLOEXEC, @intCast(child_zig.highest_target(plan, 2) + 1));
    _ = sys.close(ends[1]);
    if (sys.errno(lifted) != 0) return lifted;
    plan.report_fd = sys.int(lifted);
    var parent_tid: i32 = 0;
    const rc = sys.clone(child_main, g.child_stack, sys.SIG.CHLD, @intFromPtr(plan), &parent_tid);
    _ = sys.close(plan.report_fd);
    plan.report_fd = -1;
    if (sys.errno(rc) != 0) return rc;
    // A fork copies the whole table; the child marks all but its plan close-on-exec.
    g.fd_table_mode = .whole_at_clone;
    read_report(plan, ends[0]);
    if (g.pidfd_mode != .missing) {
        const opened = sys.pidfd_open(sys.int(rc));
        if (sys.errno(opened) == 0) {
            pidfd.* = sys.int(opened);
            g.pidfd_mode = .available;
        } else if (plan.err_errno == 0) {
            g.pidfd_mode = .missing;
        }
    }
    return rc;
}

/// The forked child's report: nothing (it exec'd; the pipe closed with it) or its failure.
fn read_report(plan: *ChildPlan, fd: i32) void {
    var report: child_zig.Report = undefined;
    var got: usize = 0;
    while (got < @sizeOf(child_zig.Report)) {
        const n = sys.read(fd, std.mem.asBytes(&report)[got..].ptr, @sizeOf(child_zig.Report) - got);
        if (sys.errno(n) == sys.E.INTR) continue;
        if (sys.errno(n) != 0 or n == 0) break;
        got += n;
    }
    if (got != @sizeOf(child_zig.Report)) return;
    plan.err_errno = report.errno;
    plan.err_step = report.step;
    plan.err_index = report.index;
}

/// After a clone: true if it failed for want of something this kernel (or a seccomp filter)
/// refuses, which is now remembered, so clone again without it.
fn fell_back(plan: *ChildPlan, rc: usize, pidfd: i32) bool {
    const e = sys.errno(rc);
    const clone3_refused = e == sys.E.NOSYS or e == sys.E.PERM;
    if (plan.cgroup_fd >= 0 and e != 0 and !clone3_refused) {
        // CLONE_INTO_CGROUP refused: EINVAL or E2BIG before Linux 5.7, EBUSY where the
        // cgroup cannot take processes (controllers enabled in it), EACCES without write
        // access to the cgroup.procs above it. Children go without cgroups from now on.
        cgroup.disable(.into_cgroup, e);
        plan.cgroup_fd = -1;
        return true;
    }
    if (g.clone_mode != .legacy and clone3_refused) {
        // Old kernel, or a seccomp profile that refuses clone3: use clone, without cgroups.
        g.clone_mode = .legacy;
        cgroup.disable(.clone3, e);
        plan.cgroup_fd = -1;
        return true;
    }
    if ((g.clone_mode == .unknown or g.clone_mode == .clone3) and e == 0) g.clone_mode = .clone3;
    const wanted_pidfd = g.pidfd_mode != .missing;
    if (e == sys.E.INVAL and wanted_pidfd and g.clone_mode != .fork) {
        // Kernel without CLONE_PIDFD: the reaper still hides children and signals by pid.
        g.pidfd_mode = .missing;
        cgroup.disable(.pidfd, e);
        return true;
    }
    if (e == sys.E.INVAL and in_helper and g.clone_mode == .legacy) {
        // CLONE_VM refused too (qemu-user makes threads only): fork, and try pidfd_open.
        g.clone_mode = .fork;
        g.pidfd_mode = .unknown;
        return true;
    }
    if (e != 0) return false;
    if (wanted_pidfd) g.pidfd_mode = .available;
    const unshare_refused = plan.err_step == .unshare and
        (plan.err_errno == sys.E.NOSYS or plan.err_errno == sys.E.PERM);
    if (plan.shares_fd_table and unshare_refused) {
        // The child could not take a table of its own and exited before touching anything:
        // from now on, clone copies the whole table.
        collect_failed_child(sys.int(rc), pidfd);
        g.fd_table_mode = .whole_at_clone;
        plan.err_errno = 0;
        plan.err_step = .none;
        plan.err_index = abi.none;
        return true;
    }
    return false;
}

/// CLONE_VFORK: a child that failed its set-up has exited already; collect it so no zombie
/// is left, and close its pidfd.
fn collect_failed_child(pid: i32, pidfd: i32) void {
    var info = std.mem.zeroes(sys.SigInfo);
    _ = sys.waitid(sys.P.PID, pid, &info, sys.W.EXITED, null);
    if (pidfd >= 0) _ = sys.close(pidfd);
}

// ---------------------------------------------------------------------------------------------
// The vfork child: raw syscalls only, on `g.child_stack`, sharing memory with the reaper.
