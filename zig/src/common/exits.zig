//! Exits, OS-neutral and backend-neutral: slots, listeners and their rings, publish, drain, peek,
//! wait_sync, signals. One implementation for every backend: TypeScript cannot tell them apart.

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;
const portable = @import("../sys/os.zig").portable;

const assert = std.debug.assert;
const library = @import("../library.zig");
const spin = @import("spin.zig");
const tree = @import("tree.zig");

const fds_zig = @import("fds.zig");
const fd_errno = fds_zig.fd_errno;
const move_above_stdio = fds_zig.move_above_stdio;
const memory_zig = @import("memory.zig");
const ensure_process = memory_zig.ensure_process;
const setup_memory = memory_zig.setup_memory;
const region_zig = @import("region.zig");
const Slot = region_zig.Slot;
const SlotState = region_zig.SlotState;
const listeners = region_zig.listeners;
const ring = region_zig.ring;
const state_zig = @import("state.zig");
const g = &state_zig.g;
const helper_wake_fds = &state_zig.helper_wake_fds;
const in_helper = state_zig.in_helper;
const liveness_check_ms = state_zig.liveness_check_ms;
const lock = state_zig.lock;
const unlock = state_zig.unlock;
const library_zig = @import("../library.zig");
const check_reaper = library_zig.check_reaper;

pub fn slot_alloc() ?u32 {
    if (g.free_top > 0) {
        g.free_top -= 1;
        return g.free_stack[g.free_top];
    }
    if (g.next_unused < abi.slots_max) {
        const index = g.next_unused;
        g.next_unused += 1;
        g.slots[index] = std.mem.zeroes(Slot);
        return index;
    }
    return null;
}

pub fn slot_free(index: u32) void {
    assert(index < g.next_unused);
    const slot = &g.slots[index];
    slot.generation +%= 1;
    @atomicStore(u32, &slot.state, SlotState.free, .release);
    g.free_stack[g.free_top] = index;
    g.free_top += 1;
    assert(g.free_top <= abi.slots_max);
}

fn slot_record(index: u32, out: *abi.ExitRecord) void {
    const slot = &g.slots[index];
    out.* = .{
        .slot = index,
        .generation = slot.generation,
        .pid = slot.pid,
        .kind = slot.kind,
        .value = slot.value,
        .pidfd = if (slot.kind == .lost) slot.pidfd else -1,
        .user_cpu_us = slot.user_cpu_us,
        .system_cpu_us = slot.system_cpu_us,
        .max_rss_kib = slot.max_rss_kib,
    };
}

/// Publishes an exit: status first, then the state (release), then the owner's ring.
/// Called by the reaper, or by a host thread holding `g.lock` once the reaper is dead.
pub fn slot_publish(index: u32) void {
    const slot = &g.slots[index];
    // Exited before the record is queued: a drain may free the slot as soon as it is.
    @atomicStore(u32, &slot.state, SlotState.exited, .release);
    const l = &listeners()[slot.listener];
    if (l.in_use) {
        const head = @atomicLoad(u32, &l.head, .monotonic);
        assert(head -% @atomicLoad(u32, &l.tail, .acquire) < abi.slots_max);
        ring(slot.listener)[head % abi.slots_max] = index;
        @atomicStore(u32, &l.head, head +% 1, .release);
    }
    // Waiters in wait_sync wake after the record is queued, so their drain finds it and frees
    // the slot and pidfd now, not at some later drain. (If the slot was freed and reused in
    // between, its new waiter wakes early and waits again.)
    _ = sys.futex_wake(&slot.state, std.math.maxInt(i32));
    if (l.in_use) wake_reader(slot.listener);
}

/// Publishes a child's wait(2) status and resource usage (libc builds: the portable helper and
/// the `pdfork` backend), the signal number in the ABI's numbering.
pub fn publish_wait_status(index: u32, status: i32, usage: *const sys.Rusage) void {
    const slot = &g.slots[index];
    const signal_number = status & 0x7f;
    if (signal_number == 0) {
        slot.kind = .exited;
        slot.value = (status >> 8) & 0xff;
    } else {
        slot.kind = if (status & 0x80 != 0) .dumped else .killed;
        slot.value = @intCast(sys.abi_numbers.signal_to_abi(@intCast(signal_number)));
    }
    slot.user_cpu_us = micros(usage.utime);
    slot.system_cpu_us = micros(usage.stime);
    slot.max_rss_kib = sys.maxrss_kib(usage);
    slot_publish(index);
}

fn micros(t: anytype) u64 {
    const us: i64 = @as(i64, @intCast(t.sec)) * 1_000_000 + @as(i64, @intCast(t.usec));
    return @intCast(@max(us, 0));
}

/// Writes a wake-up byte to the listener's pipe unless one is unread already.
pub fn wake_reader(index: u32) void {
    const l = &listeners()[index];
    if (@atomicRmw(u32, &l.wake_pending, .Xchg, 1, .seq_cst) == 0) {
        const byte: u8 = 1;
        // The write end is non-blocking; EAGAIN means unread bytes already wake the reader.
        // EBADF: the helper has no copy yet (a listener opened while it was restarting).
        const fd = if (in_helper) helper_wake_fds[index] else l.write_fd;
        _ = sys.write(fd, @ptrCast(&byte), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Listeners: one per JavaScript realm (the main thread, each Worker).

pub fn listener_open(nonblocking_read: bool) i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    const memory_rc = setup_memory();
    if (memory_rc < 0) return memory_rc;
    const thread = sys.thread_id();
    if (listener_of_ended_realm()) |ended| {
        take_over(ended, thread, nonblocking_read);
        return @intCast(ended);
    }
    const index = for (listeners(), 0..) |*l, i| {
        if (!l.in_use) break i;
    } else return -sys.E.MFILE;
    const l = &listeners()[index];
    var fds: [2]i32 = undefined;
    const rc = sys.pipe2(&fds, sys.O.CLOEXEC);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    const read_fd = move_above_stdio(fds[0]) catch |e| {
        _ = sys.close(fds[1]);
        return -fd_errno(e);
    };
    const write_fd = move_above_stdio(fds[1]) catch |e| {
        _ = sys.close(read_fd);
        return -fd_errno(e);
    };
    _ = sys.fcntl(write_fd, sys.F.SETFL, sys.O.NONBLOCK);
    if (nonblocking_read) _ = sys.fcntl(read_fd, sys.F.SETFL, sys.O.NONBLOCK);
    l.read_fd = read_fd;
    l.write_fd = write_fd;
    l.head = 0;
    l.tail = 0;
    l.wake_pending = 0;
    l.epoch +%= 1;
    l.owner_thread = thread;
    l.in_use = true;
    library.listener_opened(@intCast(index), write_fd);
    return @intCast(index);
}

/// A listener whose realm has ended: the thread that opened it is gone (a Worker terminated or
/// closed), so no JavaScript reads it any more. Nothing else tells a realm's end: a runtime
/// runs no code of a terminated Worker, and closes no descriptor it did not open.
fn listener_of_ended_realm() ?u32 {
    for (listeners(), 0..) |*l, i| {
        if (!l.in_use or l.owner_thread == 0) continue;
        if (l.owner_thread == released_thread or sys.thread_gone(l.owner_thread)) return @intCast(i);
    }
    return null;
}

/// Hands an ended realm's listener (its index, pipe and ring) to the calling realm, so that
/// realms coming and going use neither more listeners nor more descriptors. The exits of the
/// ended realm's children, in the ring or published later, reach the new realm, which has no
/// handle for them: its drain frees their slots (and closes what the records carry). The ended
/// realm's queued spawns are released (`library.release_ended_spawns`).
fn take_over(index: u32, thread: u64, nonblocking_read: bool) void {
    const l = &listeners()[index];
    assert(l.in_use);
    l.epoch +%= 1;
    l.owner_thread = thread;
    // The read end's only status flag is O_NONBLOCK (a pipe's read end is O_RDONLY, 0).
    _ = sys.fcntl(l.read_fd, sys.F.SETFL, if (nonblocking_read) sys.O.NONBLOCK else 0);
    // The ended realm may have read a wake-up byte and not drained: one byte for the new one.
    @atomicStore(u32, &l.wake_pending, 0, .seq_cst);
    wake_reader(index);
    library.release_ended_spawns(abi.none);
}

/// Whether `index` names a listener a realm holds (opened, and not released since).
fn listener_held(index: u32) bool {
    if (index >= abi.listeners_max or !g.memory_ready) return false;
    const l = &listeners()[index];
    return l.in_use and l.owner_thread != released_thread;
}

pub fn listener_fd(index: u32) i32 {
    if (!listener_held(index)) return -sys.E.BADF;
    return listeners()[index].read_fd;
}

/// Releases the caller's listener: the next realm takes it over, pipe and all, as it does an
/// ended realm's. Its pipe is never closed: the reaper, which shares the descriptor table, may be
/// writing a wake-up byte to it at this moment, and would write to whatever reused the number.
pub fn listener_close(index: u32) i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    if (!listener_held(index)) return -sys.E.BADF;
    listeners()[index].owner_thread = released_thread;
    return 0;
}
/// `Listener.owner_thread` of a released listener.
const released_thread: u64 = std.math.maxInt(u64);

/// Copies up to `out.len` exits of this listener's children and frees their slots.
pub fn drain(index: u32, out: []abi.ExitRecord) i32 {
    if (!listener_held(index)) return -sys.E.BADF;
    const l = &listeners()[index];
    // Cleared before reading the ring: an exit published after this point writes a new byte.
    @atomicStore(u32, &l.wake_pending, 0, .seq_cst);
    const head = @atomicLoad(u32, &l.head, .acquire);
    var tail = l.tail;
    if (tail == head) return 0;
    lock(&g.lock);
    defer unlock(&g.lock);
    var count: usize = 0;
    var held_back = false;
    while (tail != head and count < out.len) : (count += 1) {
        const slot_index = ring(index)[tail % abi.slots_max];
        // A lone exit not reaped yet: the reaper is at it, a few microseconds. Past a short
        // wait, stop here: the reaper writes a wake-up byte once it has reaped it
        // (`wake_pending` was cleared above), so the reader comes back.
        if (!reaped_soon(&g.slots[slot_index])) {
            held_back = true;
            break;
        }
        slot_record(slot_index, &out[count]);
        release_pidfd(slot_index);
        slot_free(slot_index);
        g.slots_in_use -= 1;
        state_zig.slots_in_use_changed();
        tail +%= 1;
    }
    @atomicStore(u32, &l.tail, tail, .release);
    // More than `out` could hold: make sure the reader comes back (a byte written since
    // `wake_pending` was cleared above does that as well).
    if (tail != head and !held_back) wake_reader(index);
    return @intCast(count);
}

// A lone exit's record goes out before the reaper reaps the child (see `child_exited`); it
// is delivered only after, which takes the reaper a few microseconds. `drain` stops at such a
// record and is woken again (`reaped_soon`); `wait_sync`, which blocks anyway, waits
// (`await_reaped`). A reaper that died in between leaves the zombie to init or a subreaper,
// like any orphan: the record is delivered then.

/// Waits a little for a lone exit's reap. If it is not done, asks the reaper for a wake-up
/// byte once it is (`reap_wake_reader`) and returns false; true once the record may go out.
fn reaped_soon(slot: *Slot) bool {
    if (reaped_while_yielding(slot)) return true;
    var pending = @atomicLoad(u32, &slot.reap_pending, .seq_cst);
    while (pending != 0) {
        pending = @cmpxchgWeak(u32, &slot.reap_pending, pending, pending | reap_wake_reader, .seq_cst, .seq_cst) orelse
            return false;
    }
    return true;
}

/// Blocks until a lone exit's reap is done, or the reaper is found dead.
fn await_reaped(slot: *Slot) void {
    if (reaped_while_yielding(slot)) return;
    while (true) {
        const pending = @atomicLoad(u32, &slot.reap_pending, .acquire);
        if (pending == 0) return;
        // Marked: someone sleeps on the word, so the reaper wakes it when it clears it.
        const marked = pending | reap_waiter;
        if (pending != marked and @cmpxchgStrong(u32, &slot.reap_pending, pending, marked, .acq_rel, .acquire) != null) {
            continue;
        }
        const rc = sys.futex_wait(&slot.reap_pending, marked, liveness_check_ms);
        if (sys.errno(rc) == sys.E.TIMEDOUT and library.owner_exited()) {
            @atomicStore(u32, &slot.reap_pending, 0, .release);
        }
    }
}
/// The reap takes the reaper a few microseconds: yield to it a bounded number of times, when
/// spinning can pay (`spin.worthwhile`).
fn reaped_while_yielding(slot: *const Slot) bool {
    if (!spin.worthwhile(g.slots_in_use)) return @atomicLoad(u32, &slot.reap_pending, .seq_cst) == 0;
    var spins: u32 = 0;
    while (spins < reap_spins_max) : (spins += 1) {
        if (@atomicLoad(u32, &slot.reap_pending, .seq_cst) == 0) {
            spin.won();
            return true;
        }
        if (spin.yield_gave_cpu_away(Reaped{ .slot = slot })) break;
    }
    return @atomicLoad(u32, &slot.reap_pending, .seq_cst) == 0;
}
/// What `reaped_while_yielding` waits for: the reaper's reap of `slot`.
const Reaped = struct {
    slot: *const Slot,
    pub fn arrived(self: Reaped) bool {
        return @atomicLoad(u32, &self.slot.reap_pending, .seq_cst) == 0;
    }
};
/// Measured and chosen in docs/decisions/0004-publish-before-reap.md.
const reap_spins_max = 64;
/// `Slot.reap_pending` bits: set by the reaper at publish; a host thread sleeps on the word;
/// a drain stopped at the record and its reader wants a wake-up byte.
pub const reap_set: u32 = 1;
pub const reap_waiter: u32 = 2;
pub const reap_wake_reader: u32 = 4;

/// Tests only: the state a reaper leaves when it dies right after publishing a lone exit,
/// before reaping it (`child_exited`).
pub fn publish_unreaped_for_test(index: u32) void {
    comptime assert(builtin.is_test);
    const slot = &g.slots[index];
    lock(signal_lock());
    defer unlock(signal_lock());
    slot.kind = .exited;
    slot.value = 0;
    if (slot.pidfd >= 0) _ = sys.close(slot.pidfd);
    slot.pidfd = -1;
    @atomicStore(u32, &slot.reap_pending, reap_set, .release);
    slot_publish(index);
}

/// A drained slot's pidfd, if the reaper did not take it (exits published by a host thread
/// after the reaper died, orphans), is closed here, so delivering an exit costs no FFI call
/// per child. After a lost exit it goes to JavaScript with the record: the orphan may still
/// run and its pidfd is the only safe way to it.
fn release_pidfd(index: u32) void {
    const slot = &g.slots[index];
    if (slot.pidfd >= 0 and slot.kind != .lost) _ = sys.close(slot.pidfd);
    slot.pidfd = -1;
}

/// A duplicate of a child's pidfd for JavaScript, which owns and closes it. The library keeps
/// its own: the reaper's epoll set watches that one, so nothing the caller does with the copy
/// (closing it early included) can hide the exit. -ESTALE once drained.
pub fn pidfd_export(index: u32, generation: u32) i32 {
    if (index >= abi.slots_max) return -sys.E.INVAL;
    lock(&g.lock);
    defer unlock(&g.lock);
    const slot = &g.slots[index];
    if (slot.generation != generation or @atomicLoad(u32, &slot.state, .acquire) == SlotState.free) {
        return -sys.E.STALE;
    }
    // Under `signal_lock`: the reaper takes an exited child's pidfd out of the slot under it,
    // and closes it only after.
    lock_signal_from_host();
    defer unlock(signal_lock());
    if (slot.pidfd < 0) return -sys.E.BADF;
    const rc = sys.fcntl(slot.pidfd, sys.F.DUPFD_CLOEXEC, 3);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return sys.int(rc);
}

/// 1 and the record when the slot's child has exited, 0 while it runs, -ESTALE for a slot
/// that was drained (its record was delivered through `drain`).
pub fn peek(index: u32, generation: u32, out: *abi.ExitRecord) i32 {
    if (index >= abi.slots_max) return -sys.E.INVAL;
    const slot = &g.slots[index];
    const state = @atomicLoad(u32, &slot.state, .acquire);
    if (slot.generation != generation or state == SlotState.free) return -sys.E.STALE;
    if (state != SlotState.exited) return 0;
    // Exited, but not reaped yet (a lone exit): reported once it is.
    if (@atomicLoad(u32, &slot.reap_pending, .acquire) != 0) return 0;
    slot_record(index, out);
    return 1;
}

/// Blocks the calling thread until the child exits or `timeout_ms` passes (negative: forever).
pub fn wait_sync(index: u32, generation: u32, out: *abi.ExitRecord, timeout_ms: i32) i32 {
    const start_ns = sys.clock_monotonic_ns();
    while (true) {
        const rc = peek(index, generation, out);
        if (rc != 0) return rc;
        var wait_ms: i32 = liveness_check_ms;
        if (timeout_ms >= 0) {
            const elapsed_ms: i64 = @intCast((sys.clock_monotonic_ns() - start_ns) / 1_000_000);
            if (elapsed_ms >= timeout_ms) return 0;
            wait_ms = @intCast(@min(@as(i64, wait_ms), timeout_ms - elapsed_ms));
        }
        const slot = &g.slots[index];
        if (@atomicLoad(u32, &slot.state, .acquire) == SlotState.exited) {
            // Published, about to be reaped: a few microseconds.
            await_reaped(slot);
            continue;
        }
        _ = sys.futex_wait(&slot.state, SlotState.running, wait_ms);
        if (@atomicLoad(u32, &slot.state, .acquire) == SlotState.running) {
            _ = check_reaper();
        }
    }
}

/// Sends `sig` to a running child: through its pidfd, or (no pidfds) by pid, which is safe
/// because only the reaper reaps and a pid it has not reaped cannot be reused.
pub fn signal(index: u32, generation: u32, sig: i32, flags: u32) i32 {
    if (index >= abi.slots_max) return -sys.E.INVAL;
    const slot = &g.slots[index];
    if (slot.generation != generation) return -sys.E.STALE;
    const group = flags & abi.signal_group != 0;
    if (group and slot.pgid == 0) return -sys.E.INVAL;
    // The reaper publishes an exit, and takes the pidfd out of the slot to close it, only
    // under this lock: a child seen running here keeps its pidfd (and its pid) until unlock.
    lock_signal_from_host();
    defer unlock(signal_lock());
    if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) return -sys.E.SRCH;
    // The `pdfork` backend's is a process descriptor: pdkill(2) (pidfd_send_signal on Linux).
    if (comptime portable and sys.has_proc_fork) {
        if (library.choice.active == .pdfork and !group) return -sys.errno(sys.proc_signal(slot.pidfd, sig));
    }
    // The portable helper's `pidfd` is the child's exit pipe, not a pidfd: by pid there.
    if (!portable and slot.pidfd >= 0) {
        if (!group) return -sys.errno(sys.pidfd_send_signal(slot.pidfd, sig, 0));
        if (@atomicLoad(u32, &group_flag_missing, .monotonic) == 0 and slot.pgid == slot.pid) {
            // Linux 6.9+: the kernel signals the pidfd's process group, race-free.
            const rc = sys.pidfd_send_signal(slot.pidfd, sig, sys.PIDFD_SIGNAL_PROCESS_GROUP);
            if (sys.errno(rc) != sys.E.INVAL) return -sys.errno(rc);
            @atomicStore(u32, &group_flag_missing, 1, .monotonic);
        }
    }
    // By pid: the reaper peeks with WNOWAIT and takes this lock before it reaps (see
    // reap_all), so a child seen running under the lock is unreaped: its pid, and the process
    // group it leads, cannot have been reused.
    return -sys.errno(sys.kill(if (group) -slot.pgid else slot.pid, sig));
}
var group_flag_missing: u32 = 0;

/// Sends `sig` to a running child and every descendant of it (`tree.zig`), or every process
/// in its cgroup when it has one (`cgroup.zig`): the count of processes signalled, or -errno (-ESRCH once the child has exited; -ENOSYS without pidfds,
/// which the walk needs to hold each member safely).
pub fn signal_tree(index: u32, generation: u32, sig: i32) i32 {
    // The walk reads /proc and holds members by pidfds: Linux's own build only.
    if (portable) return -sys.E.NOSYS;
    if (index >= abi.slots_max) return -sys.E.INVAL;
    const slot = &g.slots[index];
    if (slot.generation != generation) return -sys.E.STALE;
    // Under the lock a running child is unreaped: its pid names it while the pidfd is opened.
    lock_signal_from_host();
    const running = @atomicLoad(u32, &slot.state, .acquire) == SlotState.running;
    const opened = if (running) sys.pidfd_open(slot.pid) else 0;
    const pid = slot.pid;
    // The owner releases the child's cgroup only after it is reaped, and never reuses it
    // once `tree_signal` is set: the walk below cannot reach another child's processes.
    const cgroup_number = slot.cgroup;
    const kill_signal = slot.kill_on_exit_signal;
    if (running and cgroup_number != 0) @atomicStore(u32, &slot.tree_signal, 1, .release);
    unlock(signal_lock());
    if (!running) return -sys.E.SRCH;
    if (sys.errno(opened) != 0) return -sys.errno(opened);
    const pidfd = sys.int(opened);
    defer _ = sys.close(pidfd);
    if (cgroup_number != 0) return tree.signal_cgroup(pid, pidfd, sig, cgroup_number, kill_signal);
    return tree.signal(pid, pidfd, sig);
}

/// Sends `sig` to the process group `pgid` led by a child that may have exited and been reaped
/// already: through `pidfd` (the child's `group_pidfd`) with PIDFD_SIGNAL_PROCESS_GROUP on
/// Linux 6.9+, which names the group the child led and nothing else: while the group has
/// members its id cannot be reused, and once it is empty the call fails with ESRCH. Without
/// a pidfd (-1) or before 6.9: kill(-pgid), right while the group has members; once it is
/// empty, a new group given the same number could get the signal. -ESRCH: no member left.
pub fn signal_group(pidfd: i32, pgid: i32, sig: i32) i32 {
    if (pgid <= 0) return -sys.E.INVAL;
    if (pidfd >= 0 and @atomicLoad(u32, &group_flag_missing, .monotonic) == 0) {
        const rc = sys.pidfd_send_signal(pidfd, sig, sys.PIDFD_SIGNAL_PROCESS_GROUP);
        if (sys.errno(rc) != sys.E.INVAL) return -sys.errno(rc);
        // Before 6.9 the flag is EINVAL (signal numbers were checked by the caller).
        @atomicStore(u32, &group_flag_missing, 1, .monotonic);
    }
    return -sys.errno(sys.kill(-pgid, sig));
}
/// Orders host threads' signals (by pid, or through a pidfd the owner may close) against the
/// owner's reaping: in the region, so the helper takes the same lock.
pub fn signal_lock() *u32 {
    return &g.region.signal_lock;
}

/// `signal_lock` for host threads. The reaper may die holding it (killed, or a crash inside
/// it), and waiting forever would hang the JavaScript thread; so every `liveness_check_ms`
/// without it, a hold by a reaper that has exited is broken. Between host threads the lock
/// guards nothing: it orders them against the reaper's reaping and pidfd closing.
fn lock_signal_from_host() void {
    if (@cmpxchgStrong(u32, signal_lock(), 0, 1, .acquire, .monotonic) == null) return;
    while (@atomicRmw(u32, signal_lock(), .Xchg, 2, .acquire) != 0) {
        const rc = sys.futex_wait(signal_lock(), 2, liveness_check_ms);
        if (sys.errno(rc) == sys.E.TIMEDOUT and library.owner_exited()) {
            @atomicStore(u32, signal_lock(), 0, .release);
        }
    }
}
