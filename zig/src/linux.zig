//! Linux backend: the invisible reaper of DESIGN.md.
//!
//! One reaper process per host, created with clone(CLONE_VM|CLONE_FS|CLONE_FILES, exit_signal 0):
//! it shares our memory and fd table but is its own thread group, so its children are not the
//! host's children and it never execs, so it stays invisible itself. Every global below is
//! therefore shared between the host's threads and the reaper. Who writes what:
//!   - `g.lock` (futex mutex) serialises host threads (the JS thread, Workers); the reaper never
//!     takes it, so a host thread can never block the reaper.
//!   - the reaper alone writes slot results, listener ring heads and the pid table (a slot's
//!     `reap_pending` word is the exception: a host thread waiting on it marks it, and clears
//!     it if the reaper died);
//!   - the owner of a listener alone advances that ring's tail.

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("abi.zig");
const sys = @import("sys.zig");
const pid_table = @import("pid_table.zig");

const assert = std.debug.assert;

/// True in the helper executable (zig/src/helper/main.zig), which runs the owner's loop below
/// in a process of its own over the same region; false in the library.
const in_helper = @hasDecl(@import("root"), "private_spawn_helper");
/// The helper's own descriptors: its pidfd of each child (the host holds another copy, in the
/// slot) and its copy of each listener's wake-up pipe.
var helper_pidfds: [if (in_helper) abi.slots_max else 0]i32 = undefined;
var helper_wake_fds = [_]i32{-1} ** abi.listeners_max;

/// The owner's pidfd of a child: the slot's own with the reaper (one descriptor table), the
/// helper's copy in the helper.
fn owner_pidfd(index: u32) *i32 {
    if (in_helper) return &helper_pidfds[index];
    return &g.slots[index].pidfd;
}

const SlotState = struct {
    const free: u32 = 0;
    const reserved: u32 = 1;
    const running: u32 = 2;
    const exited: u32 = 3;
};

const Slot = extern struct {
    state: u32,
    generation: u32,
    pid: i32,
    pidfd: i32,
    listener: u32,
    kill_on_exit_signal: i32,
    /// The child's process group when it leads one (pgroup/setsid), else 0.
    pgid: i32,
    /// 1 once its reaper died: another process is its parent now; see `orphans`.
    orphan: u32,
    /// 1 while the reaper's epoll set watches its pidfd (reaper only).
    watched: u32,
    kind: abi.ExitKind,
    value: i32,
    user_cpu_us: u64,
    system_cpu_us: u64,
    max_rss_kib: u64,
    /// When the reaper answered the spawn (reaper only): for `recent_lifetime_ns`.
    spawned_ns: u64,
    /// Non-zero (`reap_set`, and the waiters' bits) from a lone exit's publish until the
    /// reaper has reaped the child and closed its pidfd; its record is not delivered before.
    reap_pending: u32,
};

const Listener = extern struct {
    in_use: bool = false,
    read_fd: i32 = -1,
    write_fd: i32 = -1,
    /// 1 while a wake-up byte may be unread; lets the reaper write one byte per batch.
    wake_pending: u32 = 0,
    /// Written by the producer (the reaper) only.
    head: u32 = 0,
    /// Written by the owner only.
    tail: u32 = 0,
};

/// The memory that the host and the owner of its children (the reaper, or the helper in its
/// own address space) both write: a memfd, so the helper can map it too. Its layout:
/// [Region][Slot * slots_max][ring (u32 * slots_max) * listeners_max][request area].
/// Pages are touched only as used.
const Region = extern struct {
    /// See `signal_lock()`.
    signal_lock: u32,
    reserved: u32,
    listeners: [abi.listeners_max]Listener,
};
const page_len = 4096;
const region_slots_off = std.mem.alignForward(usize, @sizeOf(Region), page_len);
const region_rings_off = region_slots_off + std.mem.alignForward(usize, @sizeOf(Slot) * abi.slots_max, page_len);
const ring_len = @sizeOf(u32) * abi.slots_max;
const region_request_off = region_rings_off + ring_len * abi.listeners_max;
/// The largest spawn request the helper can be sent (argv, environment and options): 8 MiB,
/// four times Linux's usual ARG_MAX.
const region_request_len = 8 << 20;
const region_len = region_request_off + region_request_len;

/// Each listener's ring of published slots: `slots_max` entries (a slot is pushed once per
/// life and freed only when drained, so a ring never holds more).
fn ring(index: u32) [*]u32 {
    assert(index < abi.listeners_max);
    return @ptrFromInt(@intFromPtr(g.region) + region_rings_off + ring_len * index);
}

fn listeners() *[abi.listeners_max]Listener {
    return &g.region.listeners;
}

/// The host's attributes as the reaper got them at its creation; a child gets the host's
/// attributes as they are at spawn time, so spawn compares against these and applies changes.
const Attributes = struct {
    rlimits: [sys.rlimit_count]sys.Rlimit = undefined,
    uids: [3]u32 = undefined,
    gids: [3]u32 = undefined,
    groups_count: u32 = 0,
    groups: [groups_max]u32 = undefined,
    priority: i32 = 0,
    /// The calling thread's CPU affinity; zeros where the kernel's mask ends. Not known when
    /// sched_getaffinity failed (a machine with more than 1024 CPUs): then never copied.
    affinity: ?sys.CpuMask = null,
};
const groups_max = 256;

/// Everything the vfork child needs, prepared by the host thread, read by the child.
const ChildPlan = struct {
    request: *abi.Request,
    base: [*]u8,
    argv: [*]const ?[*:0]const u8,
    envp: [*]const ?[*:0]const u8,
    file: [*:0]const u8,
    actions: []abi.FdAction,
    rlimit_mask: u32 = 0,
    rlimits: [sys.rlimit_count]sys.Rlimit = undefined,
    set_groups: ?[]const u32 = null,
    /// `set_groups` is the empty list because uid or gid was asked for without groups.
    groups_dropped: bool = false,
    set_gid: ?[3]u32 = null,
    set_uid: ?[3]u32 = null,
    set_priority: ?i32 = null,
    set_affinity: ?sys.CpuMask = null,
    reaper_pid: i32 = 0,
    /// Set by the reaper: the child was cloned with CLONE_FILES and must unshare first.
    shares_fd_table: bool = false,
    /// Set by the child: how it got its own table (a FdTable value).
    fd_table: u32 = 0,
    /// Set by the reaper when it starts serving the request.
    taken: u32 = 0,
    /// The host's working directory at spawn time, for a child of the helper (which has its
    /// own); -1 for the reaper's children, which start in the host's (CLONE_FS).
    cwd_fd: i32 = -1,
    /// 1 once the host filled in its attribute changes (rlimits..set_uid above). The host
    /// reads its attributes (about 20 syscalls) while the reaper wakes and clones; the child
    /// waits for this before it applies them (set before the hand-off when there is no host pidfd).
    attributes_ready: u32 = 0,
    // Output, written by the child before it exits on failure.
    err_errno: i32 = 0,
    err_step: abi.Step = .none,
    err_index: u32 = abi.none,
};

/// How children get their descriptor tables (`Info.fd_table`).
const FdTable = struct {
    /// Only the host's descriptors below the first one they do not need (close_range).
    const needed_only: u32 = 1;
    /// The whole table, copied by `unshare` in the child (no close_range).
    const whole_in_child: u32 = 2;
    /// The whole table, copied by clone (unsharing refused; remembered).
    const whole_at_clone: u32 = 3;
};

const State = struct {
    lock: u32 = 0,
    /// The pid that set this state up; a forked copy of the host must not use it.
    init_pid: i32 = 0,
    host_pid: i32 = 0,
    reaper_pid: i32 = 0,
    reapers_started: u32 = 0,
    reaper_ready: u32 = 0,
    reaper_setup_errno: i32 = 0,
    request_efd: i32 = -1,
    host_pidfd: i32 = -1,
    signal_fd: i32 = -1,
    epoll_fd: i32 = -1,
    /// 0 unknown, 1 clone3, 2 legacy clone (remembered after ENOSYS/EPERM).
    clone_mode: u32 = 0,
    /// 0 unknown, 1 pidfds work, 2 no pidfds (remembered after EINVAL).
    pidfd_mode: u32 = 0,
    /// How the last child got its descriptor table: 0 not yet known, or a FdTable value.
    /// `whole_at_clone` is remembered: the child could not unshare (ENOSYS, EPERM).
    fd_table_mode: u32 = 0,
    plan: ?*ChildPlan = null,
    /// Children whose reaper died while they ran, held by pidfd until their status is known.
    orphans: u32 = 0,
    request_done: u32 = 0,
    slots: [*]Slot = undefined,
    region: *Region = undefined,
    /// The memfd behind `region` (-1: anonymous shared memory, which only the reaper can use).
    region_fd: i32 = -1,
    /// The helper backend: the host's end of the socket, and the helper's pid.
    helper_sock: i32 = -1,
    helper_pid: i32 = 0,
    free_stack: [*]u32 = undefined,
    free_top: u32 = 0,
    next_unused: u32 = 0,
    slots_in_use: u32 = 0,
    table: pid_table.Table = undefined,
    reaper_stack: usize = 0,
    child_stack: usize = 0,
    attributes: Attributes = .{},
    memory_ready: bool = false,
    /// The host's private memory (free stack, pid table, stacks) is mapped once for good.
    private_ready: bool = false,
    /// The reaper's current `poll_window_ns`, in microseconds, for `ph_info`.
    poll_window_us: u32 = reaper_poll_ns / 1000,
    large_pipes: [large_pipes_max]LargePipe = [_]LargePipe{.{}} ** large_pipes_max,
};

var g: State = .{};

const reaper_stack_len = 256 * 1024;
const child_stack_len = 128 * 1024;
const guard_len = 4096;
/// A host thread waiting for the reaper re-checks that it is alive this often.
/// Measured and chosen in docs/decisions/0007-reaper-liveness.md.
const liveness_check_ms = 100;

// ---------------------------------------------------------------------------------------------
// The futex mutex (three states: 0 free, 1 locked, 2 locked with waiters).

fn lock(word: *u32) void {
    if (@cmpxchgStrong(u32, word, 0, 1, .acquire, .monotonic) == null) return;
    while (@atomicRmw(u32, word, .Xchg, 2, .acquire) != 0) {
        _ = sys.futex_wait(word, 2, -1);
    }
}

fn unlock(word: *u32) void {
    if (@atomicRmw(u32, word, .Xchg, 0, .release) == 2) {
        _ = sys.futex_wake(word, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: mmap'd once, sized by the limits in abi.zig; pages are touched only as used.

fn map(len: usize) ?usize {
    const rc = sys.mmap(len, sys.PROT_READ | sys.PROT_WRITE);
    if (sys.errno(rc) != 0) return null;
    return rc;
}

fn map_stack(len: usize) ?usize {
    const base = map(len + guard_len) orelse return null;
    _ = sys.mprotect(base, guard_len, 0);
    return base + guard_len + len;
}

fn setup_memory() i32 {
    if (!g.private_ready) {
        const free_stack = map(@sizeOf(u32) * abi.slots_max) orelse return -sys.E.NOMEM;
        const table = map(pid_table.Table.bytes) orelse return -sys.E.NOMEM;
        const reaper_top = map_stack(reaper_stack_len) orelse return -sys.E.NOMEM;
        const child_top = map_stack(child_stack_len) orelse return -sys.E.NOMEM;
        g.free_stack = @ptrFromInt(free_stack);
        g.table = pid_table.Table.init(@ptrFromInt(table));
        g.reaper_stack = reaper_top;
        g.child_stack = child_top;
        g.private_ready = true;
    }
    if (g.memory_ready) return 0;
    const rc = map_region();
    if (rc < 0) return rc;
    g.memory_ready = true;
    return 0;
}

/// Maps `Region` from a new memfd (sparse: pages are allocated as they are touched). Where
/// memfd_create is refused (Linux < 3.17, a seccomp filter), anonymous shared memory: enough
/// for the reaper, which shares our address space; the helper backend then cannot start.
fn map_region() i32 {
    var fd: i32 = -1;
    const created = sys.memfd_create("private_spawn", sys.MFD_CLOEXEC);
    if (sys.errno(created) == 0) {
        fd = move_above_stdio(sys.int(created)) catch |e| return -fd_errno(e);
        const sized = sys.ftruncate(fd, region_len);
        if (sys.errno(sized) != 0) {
            _ = sys.close(fd);
            return -sys.errno(sized);
        }
    }
    const rc = if (fd >= 0) sys.mmap_shared(fd, region_len) else sys.mmap_anon_shared(region_len);
    if (sys.errno(rc) != 0) {
        if (fd >= 0) _ = sys.close(fd);
        return -sys.errno(rc);
    }
    use_region(rc, fd);
    return 0;
}

/// Points the globals at a mapped `Region` (the host's, or the helper's view of the same memfd).
pub fn use_region(addr: usize, fd: i32) void {
    g.region = @ptrFromInt(addr);
    g.region_fd = fd;
    g.slots = @ptrFromInt(addr + region_slots_off);
}

/// After fork() without exec the copy sees our globals but the reaper is its parent's: forget
/// it all (fds are the parent's too, closed on purpose: the copy must never talk to that reaper).
fn reset_after_fork() void {
    if (g.memory_ready) {
        for (listeners()) |*l| {
            if (!l.in_use) continue;
            _ = sys.close(l.read_fd);
            _ = sys.close(l.write_fd);
        }
        // The region is shared with the parent (and its reaper or helper): let go of it; the
        // next use maps a new one.
        _ = sys.munmap(@intFromPtr(g.region), region_len);
    }
    inline for (.{ g.request_efd, g.host_pidfd, g.signal_fd, g.epoll_fd, g.region_fd, g.helper_sock }) |fd| {
        if (fd >= 0) _ = sys.close(fd);
    }
    const private_ready = g.private_ready;
    const free_stack = g.free_stack;
    const table = g.table;
    const reaper_stack = g.reaper_stack;
    const child_stack = g.child_stack;
    // g.lock is zero again: the copy has one thread, nobody else can hold it.
    g = .{};
    if (private_ready) {
        g.free_stack = free_stack;
        g.table = table;
        g.table.clear();
        g.reaper_stack = reaper_stack;
        g.child_stack = child_stack;
        g.private_ready = true;
    }
}

fn ensure_process() void {
    const pid = sys.getpid();
    if (g.init_pid == pid) return;
    if (g.init_pid != 0) reset_after_fork();
    g.init_pid = pid;
}

// ---------------------------------------------------------------------------------------------
// Slots.

fn slot_alloc() ?u32 {
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

fn slot_free(index: u32) void {
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
fn slot_publish(index: u32) void {
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

/// Writes a wake-up byte to the listener's pipe unless one is unread already.
fn wake_reader(index: u32) void {
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
    l.in_use = true;
    if (helper_active()) helper_listener_message(.listener_open, @intCast(index), write_fd);
    return @intCast(index);
}

/// A child copies the host's descriptors up to the highest one it needs (its stdio sources,
/// `inheritFds`), which are low numbers: the pidfds of live children are kept above this
/// floor, so a spawn costs the same next to 10,000 children as next to none. A floor at or
/// above RLIMIT_NOFILE (EINVAL) or no room above it (EMFILE): the lowest free number instead.
/// Measured and chosen in docs/decisions/0003-pidfd-floor.md.
const pidfd_floor = 1024;

fn move_to_pidfd_floor(fd: i32) error{ EMFILE, EBADF }!i32 {
    if (fd >= pidfd_floor) return fd;
    const rc = sys.fcntl(fd, sys.F.DUPFD_CLOEXEC, pidfd_floor);
    if (sys.errno(rc) != 0) return move_above_stdio(fd);
    _ = sys.close(fd);
    return sys.int(rc);
}

/// Our descriptors never take 0, 1 or 2: a host with stdio closed would otherwise have its
/// next "stdout" be our pipe.
fn move_above_stdio(fd: i32) error{ EMFILE, EBADF }!i32 {
    if (fd > 2) return fd;
    const rc = sys.fcntl(fd, sys.F.DUPFD_CLOEXEC, 3);
    _ = sys.close(fd);
    if (sys.errno(rc) != 0) return error.EMFILE;
    return sys.int(rc);
}

/// The errno of a failed `move_above_stdio` or `move_to_pidfd_floor`, for the C ABI (which
/// carries errnos only, never Zig's own error numbers).
fn fd_errno(e: error{ EMFILE, EBADF }) i32 {
    return switch (e) {
        error.EMFILE => sys.E.MFILE,
        error.EBADF => sys.E.BADF,
    };
}

pub fn listener_fd(index: u32) i32 {
    if (index >= abi.listeners_max or !g.memory_ready or !listeners()[index].in_use) return -sys.E.BADF;
    return listeners()[index].read_fd;
}

pub fn listener_close(index: u32) i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    if (index >= abi.listeners_max or !g.memory_ready or !listeners()[index].in_use) return -sys.E.BADF;
    const l = &listeners()[index];
    l.in_use = false;
    if (helper_active()) helper_listener_message(.listener_close, index, -1);
    _ = sys.close(l.read_fd);
    _ = sys.close(l.write_fd);
    l.read_fd = -1;
    l.write_fd = -1;
    return 0;
}

/// Copies up to `out.len` exits of this listener's children and frees their slots.
pub fn drain(index: u32, out: []abi.ExitRecord) i32 {
    if (index >= abi.listeners_max or !g.memory_ready or !listeners()[index].in_use) return -sys.E.BADF;
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
        if (sys.errno(rc) == sys.E.TIMEDOUT and reaper_exited()) {
            @atomicStore(u32, &slot.reap_pending, 0, .release);
        }
    }
}
/// The reap takes the reaper a few microseconds: yield to it a bounded number of times.
fn reaped_while_yielding(slot: *const Slot) bool {
    var spins: u32 = 0;
    while (spins < reap_spins_max) : (spins += 1) {
        if (@atomicLoad(u32, &slot.reap_pending, .seq_cst) == 0) return true;
        _ = sys.sched_yield();
    }
    return false;
}
/// Measured and chosen in docs/decisions/0004-publish-before-reap.md.
const reap_spins_max = 64;
/// `Slot.reap_pending` bits: set by the reaper at publish; a host thread sleeps on the word;
/// a drain stopped at the record and its reader wants a wake-up byte.
const reap_set: u32 = 1;
const reap_waiter: u32 = 2;
const reap_wake_reader: u32 = 4;

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
    if (slot.pidfd >= 0) {
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
        if (sys.errno(rc) == sys.E.TIMEDOUT and reaper_exited()) {
            @atomicStore(u32, signal_lock(), 0, .release);
        }
    }
}

/// Whether the reaper has exited (or there is none), without reaping it: that stays with
/// `reaper_alive_locked`, under `g.lock`.
fn reaper_exited() bool {
    if (helper_active()) return helper_hung_up();
    const pid = @atomicLoad(i32, &g.reaper_pid, .monotonic);
    return pid == 0 or reaper_gone(pid, sys.W.NOWAIT);
}

// ---------------------------------------------------------------------------------------------
// The reaper's lifetime, seen from the host.

fn reaper_alive_locked() bool {
    if (helper_active()) return helper_alive_locked();
    if (g.reaper_pid == 0) return false;
    if (!reaper_gone(g.reaper_pid, 0)) return true;
    // Reaped now (or already, by someone's waitpid(-1, __WALL)): the reaper is gone.
    reaper_died_locked();
    return false;
}

/// Whether the reaper `pid` has exited: reaps it, unless `flags` has W.NOWAIT. Also true
/// when someone else reaped it already (ECHILD).
fn reaper_gone(pid: i32, flags: u32) bool {
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

/// 1 if the reaper had died (its children were reported lost or handed to a new reaper), else 0.
pub fn check_reaper() i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    const orphans = @atomicLoad(u32, &g.orphans, .acquire);
    const owner = owner_pid();
    if (owner == 0 and orphans == 0) return 0;
    if (owner != 0 and reaper_alive_locked()) return 0;
    // Orphans need a reaper to watch them, spawn or no spawn.
    if (@atomicLoad(u32, &g.orphans, .acquire) > 0 and ensure_reaper_locked() < 0) orphans_lost();
    return 1;
}

/// No reaper could be started for the orphans: report them lost.
fn orphans_lost() void {
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (slot.orphan == 0 or @atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        orphan_done(index, .lost, 0);
    }
}

fn orphan_done(index: u32, kind: abi.ExitKind, value: i32) void {
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

fn owner_pid() i32 {
    return if (helper_active()) g.helper_pid else g.reaper_pid;
}

/// Starts the reaper, or the helper: when asked for, or when the reaper cannot be created
/// here and no backend was forced (the errno is kept for `ph_info`).
fn ensure_reaper_locked() i32 {
    if (reaper_alive_locked()) return 0;
    const rc = setup_memory();
    if (rc < 0) return rc;
    if (helper_active()) return start_helper_locked();
    const started = start_reaper_locked();
    if (started >= 0 or choice.requested != .auto or g.reapers_started > 0) return started;
    if (!reaper_refused(-started) or choice.helper_path_len == 0 or g.region_fd < 0) return started;
    choice.active = .helper;
    choice.fallback_errno = -started;
    return start_helper_locked();
}

fn start_reaper_locked() i32 {
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
    rc = sys.clone(reaper_main, g.reaper_stack, sys.CLONE.VM | sys.CLONE.FS | sys.CLONE.FILES | sys.CLONE.SYSVSEM, 0, &parent_tid);
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

fn snapshot_attributes(a: *Attributes) void {
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

const event_request: u64 = 0;
const event_signal: u64 = 1;
const event_host: u64 = 2;
/// Event data of an orphan's pidfd: this plus its slot index.
const event_orphan: u64 = 16;
/// Event data of a running child's pidfd: this plus its slot index.
const event_child: u64 = event_orphan + abi.slots_max;
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
const reaper_poll_ns = 200_000;
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

/// Whether a child was spawned since the last exit (reaper only).
var awaiting_exit = false;

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

fn reaper_main(_: usize) callconv(.c) u8 {
    // A name to recognise it by in ps and /proc/<pid>/comm.
    _ = sys.prctl(sys.PR_SET_NAME, @intFromPtr(if (in_helper) "ph-helper" else "ph-reaper"));
    // A new reaper has no children of its own yet (its predecessor's are orphans now).
    unwatched = 0;
    unreaped_count = 0;
    unclosed_count = 0;
    recent_lifetime_ns = null;
    awaiting_exit = false;
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
    g.reaper_setup_errno = sys.errno(rc);
    @atomicStore(u32, &g.reaper_ready, 1, .release);
    _ = sys.futex_wake(&g.reaper_ready, 1);
    if (g.reaper_setup_errno != 0) sys.exit(1);

    var events: [64]sys.EpollEvent = undefined;
    var busy_until_ns: u64 = 0;
    while (true) {
        var timeout_ms: i32 = if (in_helper or g.host_pidfd >= 0) -1 else parent_poll_ms;
        if (orphans_exited > 0) timeout_ms = orphan_retry_ms;
        // Right after work, poll instead of sleeping: a spawned child often exits, or the
        // next request comes, within microseconds, and a sleep costs a cross-CPU wake-up.
        const now_ns = sys.clock_monotonic_ns();
        if (now_ns < busy_until_ns or published_unclean()) {
            rc = sys.epoll_wait(g.epoll_fd, &events, 0);
            if (sys.errno(rc) == 0 and rc == 0) {
                // Nothing else is pending: now reap the children whose exits went out.
                if (published_unclean()) {
                    clean_up_published();
                } else {
                    _ = sys.sched_yield();
                }
                continue;
            }
        } else {
            if (busy_until_ns != 0) window_expired();
            busy_until_ns = 0;
            rc = sys.epoll_wait(g.epoll_fd, &events, timeout_ms);
        }
        if (sys.errno(rc) != 0) continue;
        if (rc > 0) busy_until_ns = sys.clock_monotonic_ns() + poll_window_ns();
        // A burst: more than one exit at once. Then every status goes out before any reap.
        var exits: u32 = 0;
        for (events[0..@intCast(rc)]) |event| exits += @intFromBool(event.data >= event_child);
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
                else => if (event.data >= event_child) {
                    child_exited(@intCast(event.data - event_child), burst);
                } else {
                    assert(event.data >= event_orphan);
                    orphan_exited(@intCast(event.data - event_orphan));
                },
            }
        }
        if (orphans_exited > 0) retry_orphans();
        if (!in_helper and g.host_pidfd < 0 and sys.getppid() != g.host_pid) host_exited();
    }
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

fn host_exited() noreturn {
    clean_up_published();
    var index: u32 = 0;
    while (index < g.next_unused) : (index += 1) {
        const slot = &g.slots[index];
        if (@atomicLoad(u32, &slot.state, .acquire) != SlotState.running) continue;
        if (slot.kill_on_exit_signal == 0) continue;
        const pidfd = owner_pidfd(index).*;
        if (pidfd >= 0) {
            _ = sys.pidfd_send_signal(pidfd, slot.kill_on_exit_signal, 0);
        } else {
            _ = sys.kill(slot.pid, slot.kill_on_exit_signal);
        }
    }
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
    const slot = &g.slots[index];
    assert(slot.pid == info.pid);
    if (slot.watched == 0) unwatched -= 1;
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

fn serve_request() void {
    // A zombie holds its pid and counts against RLIMIT_NPROC: never spawn past our own.
    clean_up_published();
    var counter: u64 = 0;
    _ = sys.read(g.request_efd, @ptrCast(&counter), 8);
    const plan = g.plan orelse return;
    @atomicStore(u32, &plan.taken, 1, .release);
    const request = plan.request;
    spawn_child(plan);
    if (request.err_errno == 0) {
        const slot = &g.slots[request.slot];
        slot.pid = request.pid;
        slot.pidfd = request.pidfd;
        slot.pgid = leads_group(request);
        request.group_pidfd = group_pidfd(request, slot.pgid);
        slot.watched = 0;
        slot.spawned_ns = sys.clock_monotonic_ns();
        awaiting_exit = true;
        g.table.insert(request.pid, request.slot);
        watch_child(request.slot);
        @atomicStore(u32, &slot.state, SlotState.running, .release);
    }
    g.plan = null;
    @atomicStore(u32, &g.request_done, 1, .release);
    _ = sys.futex_wake(&g.request_done, 1);
}

/// Each child is found by its own pidfd becoming readable, so an exit is reaped by pid:
/// waitid(P_ALL) walks the children list, which is O(children) per exit with 10,000 waiting.
/// Children without a watched pidfd are found by SIGCHLD and that walk.
fn watch_child(index: u32) void {
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
    return unreaped_count > 0 or unclosed_count > 0;
}

/// Reaps the zombies whose exits went out already (ECHILD for one that `reap_all` took) and
/// closes their pidfds. A pid in the list can never belong to a newer child: every spawn
/// empties the list first.
fn clean_up_published() void {
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
fn close_published_pidfds() void {
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
fn group_pidfd(request: *const abi.Request, pgid: i32) i32 {
    if (request.pidfd < 0 or pgid != request.pid) return -1;
    const rc = sys.fcntl(request.pidfd, sys.F.DUPFD_CLOEXEC, pidfd_floor);
    if (sys.errno(rc) == 0) return sys.int(rc);
    // EINVAL: the floor is at or above RLIMIT_NOFILE; take the lowest number above stdio.
    const low = sys.fcntl(request.pidfd, sys.F.DUPFD_CLOEXEC, 3);
    return if (sys.errno(low) == 0) sys.int(low) else -1;
}

fn leads_group(request: *const abi.Request) i32 {
    if (request.flags & abi.flag_setsid != 0) return request.pid;
    if (request.flags & abi.flag_setpgid != 0) return if (request.pgid == 0) request.pid else request.pgid;
    return 0;
}

fn spawn_child(plan: *ChildPlan) void {
    const request = plan.request;
    plan.reaper_pid = sys.getpid();
    var pidfd: i32 = -1;
    var rc: usize = 0;
    // Each retry remembers a fallback (clone3, CLONE_PIDFD, CLONE_FILES), so at most three.
    var attempts: u32 = 0;
    while (attempts < 4) : (attempts += 1) {
        rc = clone_child(plan, &pidfd);
        if (!fell_back(plan, rc, pidfd)) break;
    }
    assert(attempts < 4);
    if (sys.errno(rc) != 0) {
        request.err_errno = sys.errno(rc);
        request.err_step = .clone;
        return;
    }
    const pid = sys.int(rc);
    if (plan.err_errno != 0) {
        collect_failed_child(pid, pidfd);
        request.err_errno = plan.err_errno;
        request.err_step = plan.err_step;
        request.err_index = plan.err_index;
        return;
    }
    if (plan.shares_fd_table) g.fd_table_mode = plan.fd_table;
    request.pid = pid;
    // CLONE_PIDFD takes the lowest free descriptor: lift it to the pidfd floor (or at least
    // above the host's 0, 1 and 2).
    // A pidfd that cannot be moved (EMFILE with 0, 1 or 2 free) is closed by the move: the
    // child is then held by pid, which is safe because only the reaper reaps it.
    request.pidfd = if (g.pidfd_mode == 1) (move_to_pidfd_floor(pidfd) catch -1) else -1;
}

/// One clone of the vfork child, with what this kernel is known to allow; returns its pid
/// once it has exec'd or failed (`plan.err_*`), or -errno.
fn clone_child(plan: *ChildPlan, pidfd: *i32) usize {
    const want_pidfd = g.pidfd_mode != 2;
    // CLONE_FILES: the child starts on the shared table and copies only the descriptors it
    // needs (`child_own_fd_table`), never the reaper's pidfds of live children.
    plan.shares_fd_table = g.fd_table_mode != FdTable.whole_at_clone;
    const flags: u64 = sys.CLONE.VM | sys.CLONE.VFORK |
        @as(u64, if (want_pidfd) sys.CLONE.PIDFD else 0) |
        @as(u64, if (plan.shares_fd_table) sys.CLONE.FILES else 0);
    pidfd.* = -1;
    if (g.clone_mode == 2) {
        return sys.clone(child_main, g.child_stack, @intCast(flags | sys.SIG.CHLD), @intFromPtr(plan), pidfd);
    }
    const args = sys.CloneArgs{
        .flags = flags,
        .pidfd = @intFromPtr(pidfd),
        .exit_signal = sys.SIG.CHLD,
        .stack = g.child_stack - child_stack_len,
        .stack_size = child_stack_len,
    };
    return sys.clone3(&args, @sizeOf(sys.CloneArgs), child_main, @intFromPtr(plan));
}

/// After a clone: true if it failed for want of something this kernel (or a seccomp filter)
/// refuses, which is now remembered, so clone again without it.
fn fell_back(plan: *ChildPlan, rc: usize, pidfd: i32) bool {
    const e = sys.errno(rc);
    if (g.clone_mode != 2 and (e == sys.E.NOSYS or e == sys.E.PERM)) {
        // Old kernel, or a seccomp profile that refuses clone3: use clone.
        g.clone_mode = 2;
        return true;
    }
    if (g.clone_mode != 2 and e == 0) g.clone_mode = 1;
    const wanted_pidfd = g.pidfd_mode != 2;
    if (e == sys.E.INVAL and wanted_pidfd) {
        // Kernel without CLONE_PIDFD: the reaper still hides children and signals by pid.
        g.pidfd_mode = 2;
        return true;
    }
    if (e != 0) return false;
    if (wanted_pidfd) g.pidfd_mode = 1;
    const unshare_refused = plan.err_step == .unshare and
        (plan.err_errno == sys.E.NOSYS or plan.err_errno == sys.E.PERM);
    if (plan.shares_fd_table and unshare_refused) {
        // The child could not take a table of its own and exited before touching anything:
        // from now on, clone copies the whole table.
        collect_failed_child(sys.int(rc), pidfd);
        g.fd_table_mode = FdTable.whole_at_clone;
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

fn child_fail(plan: *ChildPlan, step: abi.Step, rc: usize, index: u32) noreturn {
    plan.err_errno = sys.errno(rc);
    if (plan.err_errno == 0) plan.err_errno = sys.E.INVAL;
    plan.err_step = step;
    plan.err_index = index;
    sys.exit(127);
}

fn check(plan: *ChildPlan, step: abi.Step, rc: usize) void {
    if (sys.errno(rc) != 0) child_fail(plan, step, rc, abi.none);
}

fn child_main(arg: usize) callconv(.c) u8 {
    const plan: *ChildPlan = @ptrFromInt(arg);
    const request = plan.request;
    // First: relative paths below (files, the program, `cwd`) resolve as in the host.
    if (plan.cwd_fd >= 0) check(plan, .chdir, sys.fchdir(plan.cwd_fd));

    // Dispositions are default (the reaper reset its table); ignore what was asked.
    if (request.ignore_mask != 0) {
        const ignore = sys.KSigaction{ .handler = sys.SIG.IGN, .flags = 0, .restorer = 0, .mask = 0 };
        var sig: u32 = 1;
        while (sig <= sys.SIG.max) : (sig += 1) {
            if (request.ignore_mask & (@as(u64, 1) << @intCast(sig - 1)) == 0) continue;
            if (sig == sys.SIG.KILL or sig == sys.SIG.STOP) continue;
            check(plan, .signals, sys.rt_sigaction(sig, &ignore, null));
        }
    }
    if (request.pdeath_signal != 0) {
        check(plan, .pdeathsig, sys.prctl(sys.PR_SET_PDEATHSIG, @intCast(request.pdeath_signal)));
        // The reaper may have died before the prctl took effect.
        if (sys.getppid() != plan.reaper_pid) child_fail(plan, .pdeathsig, @bitCast(@as(isize, -sys.E.SRCH)), abi.none);
    }
    if (request.flags & abi.flag_setsid != 0) check(plan, .setsid, sys.setsid());
    if (request.flags & abi.flag_setpgid != 0) check(plan, .setpgid, sys.setpgid(0, request.pgid));

    child_wait_attributes(plan);
    var resource: u32 = 0;
    while (resource < sys.rlimit_count) : (resource += 1) {
        if (plan.rlimit_mask & (@as(u32, 1) << @intCast(resource)) == 0) continue;
        check(plan, .rlimit, sys.prlimit(0, resource, &plan.rlimits[resource], null));
    }
    if (plan.set_priority) |priority| check(plan, .priority, sys.setpriority(priority));
    if (plan.set_affinity) |*mask| check(plan, .affinity, sys.sched_setaffinity(mask));

    // Nothing above changes a descriptor, so it could run on the host's table.
    if (plan.shares_fd_table) child_own_fd_table(plan);
    child_fds(plan);
    child_copies(plan);

    if (request.flags & abi.flag_umask != 0) _ = sys.umask(request.umask);
    if (request.cwd_off != abi.none) check(plan, .chdir, sys.chdir(cstr(plan.base, request.cwd_off)));

    // Limits asked for last but credentials: a low RLIMIT_NOFILE must not stop the set-up
    // above, and raising a hard limit may need privileges setuid is about to drop.
    const limits: [*]align(1) const abi.RlimitEntry = @ptrCast(plan.base + request.rlimits_off);
    for (limits[0..request.rlimits_count], 0..) |entry, i| {
        const value = sys.Rlimit{ .cur = entry.cur, .max = entry.max };
        const rc = sys.prlimit(0, entry.resource, &value, null);
        if (sys.errno(rc) != 0) child_fail(plan, .rlimit, rc, @intCast(i));
    }

    // Credentials last: opening files and chdir above happen with the host's rights.
    if (plan.set_groups) |groups| child_setgroups(plan, groups);
    if (plan.set_gid) |ids| check(plan, .setgid, sys.setresgid(ids[0], ids[1], ids[2]));
    if (plan.set_uid) |ids| check(plan, .setuid, sys.setresuid(ids[0], ids[1], ids[2]));

    const empty: u64 = 0;
    check(plan, .signals, sys.rt_sigprocmask(sys.SIG.SETMASK, &empty, null));
    child_exec(plan);
}

/// setgroups, before setgid and setuid. When uid or gid was given without groups the list is
/// empty, and EPERM (no CAP_SETGID) is accepted only if the uid and gid asked for are the
/// child's own already: then nothing changes hands and it keeps the groups it has, as its
/// user. Any real change of user or group without dropping the groups fails the spawn.
fn child_setgroups(plan: *ChildPlan, groups: []const u32) void {
    const rc = sys.setgroups(groups);
    if (sys.errno(rc) == sys.E.PERM and plan.groups_dropped and child_ids_kept(plan)) return;
    check(plan, .setgroups, rc);
}

/// Whether setgid and setuid would leave the child's ids as they are.
fn child_ids_kept(plan: *const ChildPlan) bool {
    var uids: [3]u32 = undefined;
    var gids: [3]u32 = undefined;
    if (sys.errno(sys.getresuid(&uids)) != 0 or sys.errno(sys.getresgid(&gids)) != 0) return false;
    if (plan.set_uid) |ids| {
        if (!std.mem.eql(u32, &ids, &uids)) return false;
    }
    if (plan.set_gid) |ids| {
        if (!std.mem.eql(u32, &ids, &gids)) return false;
    }
    return true;
}

/// The host descriptors the child keeps under their own numbers (`inheritFds`).
fn inherited_fds(plan: *const ChildPlan) []align(1) const u32 {
    const request = plan.request;
    if (request.flags & abi.flag_inherit_fds == 0) return &.{};
    const list: [*]align(1) const u32 = @ptrCast(plan.base + request.inherit_fds_off);
    return list[0..request.inherit_fds_count];
}

/// The child was cloned on the host's descriptor table (CLONE_FILES). Before it changes any
/// descriptor, it takes a table of its own holding only the host's descriptors below the
/// first one it does not need: `close_range` with CLOSE_RANGE_UNSHARE copies just those
/// (Linux 5.9+). Else `unshare` copies the whole table, as clone would have.
fn child_own_fd_table(plan: *ChildPlan) void {
    var highest: i32 = 2;
    for (plan.actions) |action| switch (action.kind) {
        .dup, .pipe_to_child, .pipe_from_child => highest = @max(highest, action.fd),
        .inherit => highest = @max(highest, action.target),
        .devnull, .file, .close, .copy => {},
    };
    for (inherited_fds(plan)) |fd| highest = @max(highest, @as(i32, @intCast(fd)));
    assert(highest >= 2);
    const first_unneeded: u32 = @intCast(highest + 1);
    const rc = sys.close_range(first_unneeded, std.math.maxInt(u32), sys.CLOSE_RANGE_UNSHARE);
    if (sys.errno(rc) == 0) {
        plan.fd_table = FdTable.needed_only;
        return;
    }
    plan.fd_table = FdTable.whole_in_child;
    // ENOSYS before 5.9, or refused by a filter: the whole table. If that is refused too
    // (ENOSYS, EPERM), the reaper remembers and clones with a full copy from then on.
    check(plan, .unshare, sys.unshare(sys.CLONE.FILES));
}

/// Waits for the host's attribute changes (see `ChildPlan.attributes_ready`). The host sets
/// them right after handing over the request, so this is microseconds; a host that died in
/// between is noticed through its pidfd and fails the child instead of holding the reaper.
fn child_wait_attributes(plan: *ChildPlan) void {
    var spins: u32 = 0;
    while (@atomicLoad(u32, &plan.attributes_ready, .acquire) == 0) : (spins += 1) {
        if (spins < attributes_spin_max) {
            std.atomic.spinLoopHint();
            continue;
        }
        _ = sys.futex_wait(&plan.attributes_ready, 0, liveness_check_ms);
        if (@atomicLoad(u32, &plan.attributes_ready, .acquire) != 0) return;
        if (g.host_pidfd >= 0) {
            var fds = [1]sys.PollFd{.{ .fd = g.host_pidfd, .events = sys.POLLIN, .revents = 0 }};
            if (sys.poll(&fds, 1, 0) == 1) child_fail(plan, .reaper, @bitCast(@as(isize, -sys.E.SRCH)), abi.none);
        }
    }
}
const attributes_spin_max = 20_000;

fn cstr(base: [*]u8, offset: u32) [*:0]const u8 {
    return @ptrCast(base + offset);
}

/// Applies the fd plan so that no source is clobbered by an earlier target: every source is
/// first copied above all targets (close-on-exec), then everything >= 3 is marked
/// close-on-exec, then each copy is dup'd onto its target (which clears close-on-exec).
fn child_fds(plan: *ChildPlan) void {
    var max_target: i32 = 2;
    for (plan.actions) |action| max_target = @max(max_target, action.target);
    const floor: usize = @intCast(max_target + 1);

    var temps: [abi.fd_actions_max]i32 = undefined;
    for (plan.actions, 0..) |action, i| {
        const index: u32 = @intCast(i);
        temps[i] = -1;
        const rc: usize = switch (action.kind) {
            .inherit, .close, .copy => continue,
            .devnull => sys.openat("/dev/null", sys.O.RDWR | sys.O.CLOEXEC, 0),
            .file => child_open(plan, action, index),
            .dup, .pipe_to_child, .pipe_from_child => sys.fcntl(action.fd, sys.F.DUPFD_CLOEXEC, floor),
        };
        if (sys.errno(rc) != 0) {
            const step: abi.Step = if (action.kind == .file or action.kind == .devnull) .fd_open else .fd_dup;
            child_fail(plan, step, rc, index);
        }
        temps[i] = sys.int(rc);
        if (temps[i] < floor) {
            // open() returned a low number: lift it above the targets.
            const lifted = sys.fcntl(temps[i], sys.F.DUPFD_CLOEXEC, floor);
            if (sys.errno(lifted) != 0) child_fail(plan, .fd_dup, lifted, index);
            temps[i] = sys.int(lifted);
        }
    }

    child_cloexec_above_stdio(plan);
    for (inherited_fds(plan), 0..) |fd, i| {
        const cleared = sys.fcntl(@intCast(fd), sys.F.SETFD, 0);
        if (sys.errno(cleared) != 0) child_fail(plan, .fd_dup, cleared, @intCast(i));
    }

    for (plan.actions, 0..) |action, i| {
        const index: u32 = @intCast(i);
        switch (action.kind) {
            .inherit => {
                // A closed (or close-on-exec, so not really shared) stdio descriptor becomes
                // /dev/null, so the child always starts with valid 0, 1 and 2.
                if (action.target > 2) continue;
                const flags = sys.fcntl(action.target, sys.F.GETFD, 0);
                if (sys.errno(flags) == 0 and flags & 1 == 0) continue;
                const null_fd = sys.openat("/dev/null", sys.O.RDWR | sys.O.CLOEXEC, 0);
                if (sys.errno(null_fd) != 0) child_fail(plan, .fd_open, null_fd, index);
                // With the target closed, open() hands out the target itself (dup3 onto itself
                // would be EINVAL): just keep it across exec.
                if (sys.int(null_fd) == action.target) {
                    const kept = sys.fcntl(action.target, sys.F.SETFD, 0);
                    if (sys.errno(kept) != 0) child_fail(plan, .fd_dup, kept, index);
                    continue;
                }
                const duped = sys.dup3(sys.int(null_fd), action.target, 0);
                if (sys.errno(duped) != 0) child_fail(plan, .fd_dup, duped, index);
                _ = sys.close(sys.int(null_fd));
            },
            .close => _ = sys.close(action.target),
            .copy => {},
            else => {
                const duped = sys.dup3(temps[i], action.target, 0);
                if (sys.errno(duped) != 0) child_fail(plan, .fd_dup, duped, index);
            },
        }
    }
}

/// Opens a file action's path without ever waiting: the reaper waits for this child (vfork),
/// and every spawn and every exit of the host waits for the reaper. So O_NONBLOCK for the
/// open, cleared right after: a FIFO without a writer opens for reading at once (the child
/// then reads EOF unless a writer has come by its first read), one without a reader fails
/// for writing with ENXIO, and a device that would wait for a carrier opens at once too.
fn child_open(plan: *ChildPlan, action: abi.FdAction, index: u32) usize {
    const rc = sys.openat(cstr(plan.base, action.path_off), action.open_flags | sys.O.CLOEXEC | sys.O.NONBLOCK, action.mode);
    if (sys.errno(rc) != 0) return rc;
    const fd = sys.int(rc);
    const flags = sys.fcntl(fd, sys.F.GETFL, 0);
    if (sys.errno(flags) != 0) child_fail(plan, .fd_open, flags, index);
    const cleared = sys.fcntl(fd, sys.F.SETFL, flags & ~@as(usize, sys.O.NONBLOCK));
    if (sys.errno(cleared) != 0) child_fail(plan, .fd_open, cleared, index);
    return rc;
}

/// Marks every descriptor above stdio close-on-exec, so that the child keeps only what it
/// was given. close_range does it in one call (Linux 5.11); before that, or when a filter
/// refuses it, each descriptor listed in /proc/self/fd, and without /proc each number below
/// RLIMIT_NOFILE, as CPython's subprocess does.
fn child_cloexec_above_stdio(plan: *ChildPlan) void {
    const rc = sys.close_range(3, std.math.maxInt(u32), sys.CLOSE_RANGE_CLOEXEC);
    const e = sys.errno(rc);
    if (e == 0) return;
    if (e != sys.E.NOSYS and e != sys.E.INVAL and e != sys.E.PERM) child_fail(plan, .close_range, rc, abi.none);
    if (cloexec_listed()) return;
    var limit = sys.Rlimit{ .cur = 0, .max = 0 };
    _ = sys.prlimit(0, sys.RLIMIT_NOFILE, null, &limit);
    const end: u64 = @min(limit.cur, nr_open);
    var fd: u64 = 3;
    while (fd < end) : (fd += 1) _ = sys.fcntl(@intCast(fd), sys.F.SETFD, sys.FD_CLOEXEC);
}
/// The kernel's NR_OPEN: no descriptor is numbered this high.
const nr_open = 1 << 20;

/// Marks the descriptors /proc/self/fd lists; false if it cannot be read (no /proc).
fn cloexec_listed() bool {
    const opened = sys.openat("/proc/self/fd", sys.O.RDONLY | sys.O.CLOEXEC, 0);
    if (sys.errno(opened) != 0) return false;
    const dir = sys.int(opened);
    defer _ = sys.close(dir);
    var buffer: [4096]u8 align(8) = undefined;
    // Bounded: every read but the last lists at least one of at most `nr_open` descriptors.
    var reads: u32 = 0;
    while (reads <= nr_open) : (reads += 1) {
        const n = sys.getdents64(dir, &buffer, buffer.len);
        if (sys.errno(n) != 0) return false;
        if (n == 0) return true;
        var offset: usize = 0;
        while (offset < n) {
            const entry: *const sys.Dirent64 = @ptrCast(@alignCast(&buffer[offset]));
            assert(entry.reclen >= @sizeOf(sys.Dirent64) and offset + entry.reclen <= n);
            const name: [*:0]const u8 = @ptrCast(&buffer[offset + @offsetOf(sys.Dirent64, "type") + 1]);
            // "." and ".." are not numbers.
            const fd: i32 = std.fmt.parseInt(u31, std.mem.span(name), 10) catch -1;
            if (fd > 2 and fd != dir) _ = sys.fcntl(fd, sys.F.SETFD, sys.FD_CLOEXEC);
            offset += entry.reclen;
        }
    }
    return true;
}

/// `stderr: "stdout"` and the like: copies of targets, once every other target is in place.
fn child_copies(plan: *ChildPlan) void {
    for (plan.actions, 0..) |action, i| {
        if (action.kind != .copy) continue;
        const duped = if (action.fd == action.target) sys.fcntl(action.target, sys.F.SETFD, 0) else sys.dup3(action.fd, action.target, 0);
        if (sys.errno(duped) != 0) child_fail(plan, .fd_dup, duped, @intCast(i));
    }
}

/// execve, or with no slash in the name, every PATH entry like execvp (but ENOEXEC is
/// reported, never retried through /bin/sh).
fn child_exec(plan: *ChildPlan) noreturn {
    const request = plan.request;
    const file = std.mem.span(plan.file);
    if (std.mem.indexOfScalar(u8, file, '/') != null or request.search_path_off == abi.none) {
        const rc = sys.execve(plan.file, plan.argv, plan.envp);
        child_fail(plan, .execve, rc, abi.none);
    }
    const search = std.mem.span(cstr(plan.base, request.search_path_off));
    var buffer: [4096 + 256]u8 = undefined;
    var saw_eacces = false;
    var last_errno: i32 = sys.E.NOENT;
    var rest = search;
    var entries: u32 = 0;
    while (entries < 4096) : (entries += 1) {
        const end = std.mem.indexOfScalar(u8, rest, ':') orelse rest.len;
        var dir = rest[0..end];
        if (dir.len == 0) dir = ".";
        if (dir.len + 1 + file.len + 1 <= buffer.len) {
            @memcpy(buffer[0..dir.len], dir);
            buffer[dir.len] = '/';
            @memcpy(buffer[dir.len + 1 ..][0..file.len], file);
            buffer[dir.len + 1 + file.len] = 0;
            const rc = sys.execve(@ptrCast(&buffer), plan.argv, plan.envp);
            const e = sys.errno(rc);
            switch (e) {
                sys.E.ACCES => saw_eacces = true,
                sys.E.NOENT, sys.E.NOTDIR, sys.E.LOOP, sys.E.STALE, sys.E.NODEV, sys.E.TIMEDOUT, sys.E.NAMETOOLONG => {},
                else => {
                    last_errno = e;
                    break;
                },
            }
        }
        if (end == rest.len) break;
        rest = rest[end + 1 ..];
    }
    if (last_errno == sys.E.NOENT and saw_eacces) last_errno = sys.E.ACCES;
    child_fail(plan, .execve, @bitCast(@as(isize, -last_errno)), abi.none);
}

// ---------------------------------------------------------------------------------------------
// Spawn, seen from the host thread.

pub fn spawn(request: *abi.Request, len: usize) i32 {
    request.pid = -1;
    request.pidfd = -1;
    request.group_pidfd = -1;
    request.slot = abi.none;
    request.generation = 0;
    request.err_errno = 0;
    request.err_step = .none;
    request.err_index = abi.none;
    var plan: ChildPlan = undefined;
    if (prepare_plan(request, len, &plan)) |e| return fail(request, .request, e);

    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    if (request.listener >= abi.listeners_max or !g.memory_ready or !listeners()[request.listener].in_use) {
        return fail(request, .request, sys.E.BADF);
    }
    const reaper_rc = ensure_reaper_locked();
    if (reaper_rc < 0) return fail(request, .reaper, -reaper_rc);
    const slot_index = slot_alloc() orelse return fail(request, .slots, sys.E.AGAIN);
    g.slots_in_use += 1;
    const slot = &g.slots[slot_index];
    slot.state = SlotState.reserved;
    slot.listener = request.listener;
    slot.kill_on_exit_signal = request.kill_on_exit_signal;
    slot.kind = .running;
    request.slot = slot_index;
    request.generation = slot.generation;

    const pipes_rc = open_pipes(plan.actions);
    if (pipes_rc.errno != 0) {
        release_slot(slot_index);
        request.err_index = pipes_rc.index;
        return fail(request, .pipe, pipes_rc.errno);
    }
    if (g.host_pidfd < 0) {
        // Without a host pidfd the child could not tell a dead host from a stopped one while
        // it waits, so nothing overlaps: read the attributes first.
        host_attribute_changes(&plan);
        plan.attributes_ready = 1;
    }
    var attempts: u32 = 0;
    if (helper_active()) {
        helper_submit(&plan);
        attempts = 2;
    }
    while (attempts < 2) : (attempts += 1) {
        if (submit(&plan)) break;
        // The reaper died. If it never took the request, no child can exist: resend it once
        // to a new reaper. If it had taken it, a child may have been created: fail.
        g.plan = null;
        const retry = @atomicLoad(u32, &plan.taken, .acquire) == 0 and attempts == 0 and ensure_reaper_locked() == 0;
        if (retry) continue;
        request.err_errno = sys.E.CHILD;
        request.err_step = .reaper;
        break;
    }
    close_pipes(plan.actions, request.err_errno != 0);
    if (request.err_errno != 0) {
        release_slot(slot_index);
        return -request.err_errno;
    }
    return 0;
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
    const start_ns = sys.clock_monotonic_ns();
    var spins: u32 = 0;
    while (spins < spin_max) : (spins += 1) {
        if (@atomicLoad(u32, &g.request_done, .acquire) != 0) return;
        _ = sys.sched_yield();
        if (spins % 16 == 15 and sys.clock_monotonic_ns() - start_ns > spin_budget_ns) return;
    }
}
/// Measured and chosen in docs/decisions/0005-bounded-spin-waits.md.
const spin_max = 100_000;
/// Measured and chosen in docs/decisions/0005-bounded-spin-waits.md.
const spin_budget_ns = 300_000;

fn fail(request: *abi.Request, step: abi.Step, e: i32) i32 {
    request.err_errno = e;
    request.err_step = step;
    return -e;
}

fn release_slot(index: u32) void {
    slot_free(index);
    g.slots_in_use -= 1;
}

const PipeResult = struct { errno: i32 = 0, index: u32 = abi.none };

fn open_pipes(actions: []abi.FdAction) PipeResult {
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

fn close_pipes(actions: []abi.FdAction, failed: bool) void {
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
fn host_attribute_changes(plan: *ChildPlan) void {
    const request = plan.request;
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
fn prepare_plan(request: *abi.Request, len: usize, plan: *ChildPlan) ?i32 {
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
        if (@intFromEnum(action.kind) > @intFromEnum(abi.FdKind.copy)) return sys.E.INVAL;
        if (action.kind == .copy and action.fd < 0) return sys.E.INVAL;
    }
    if (request.flags & abi.flag_groups != 0 and !in_bounds(len, request.groups_off, @as(usize, request.groups_count) * 4)) return sys.E.INVAL;
    if (request.rlimits_count > 0 and !in_bounds(len, request.rlimits_off, @as(usize, request.rlimits_count) * @sizeOf(abi.RlimitEntry))) return sys.E.INVAL;
    if (request.flags & abi.flag_inherit_fds != 0 and !in_bounds(len, request.inherit_fds_off, @as(usize, request.inherit_fds_count) * 4)) return sys.E.INVAL;

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

/// Which backend runs, and why: set by `init`, kept across a fork (the copy chooses again).
const Choice = struct {
    requested: abi.Backend = .auto,
    active: abi.Backend = .reaper,
    fallback_errno: i32 = 0,
    helper_path: [4096]u8 = undefined,
    helper_path_len: usize = 0,
};
var choice: Choice = .{};

fn helper_active() bool {
    return choice.active == .helper;
}

/// `ph_init`: the backend asked for and the helper's path; effective until an owner starts,
/// then only the same choice is accepted again (each JavaScript realm calls it).
pub fn init(backend: abi.Backend, helper_path: []const u8) i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    if (backend != .auto and backend != .reaper and backend != .helper) return -sys.E.INVAL;
    if (helper_path.len >= choice.helper_path.len) return -sys.E.NAMETOOLONG;
    if (g.reapers_started > 0) return if (backend == choice.requested) 0 else -sys.E.BUSY;
    choice.requested = backend;
    choice.active = if (backend == .helper) .helper else .reaper;
    @memcpy(choice.helper_path[0..helper_path.len], helper_path);
    choice.helper_path[helper_path.len] = 0;
    choice.helper_path_len = helper_path.len;
    sys.futex_shared = choice.active == .helper;
    return 0;
}

/// The errnos with which the reaper's clone(CLONE_VM) fails where the helper still works:
/// EINVAL under qemu-user, EPERM or ENOSYS under a seccomp filter.
fn reaper_refused(e: i32) bool {
    return e == sys.E.INVAL or e == sys.E.PERM or e == sys.E.NOSYS;
}

/// One message on the helper's socket, either way. Requests carry the host's attribute
/// changes here, and their buffer in the region's request area.
pub const HelperOp = enum(u32) { init = 1, hello = 2, listener_open = 3, listener_close = 4, spawn = 5, spawned = 6, _ };
pub const HelperMessage = extern struct {
    op: HelperOp,
    /// The listener (listener_open, listener_close) or slot (spawn).
    index: u32,
    /// init: the host's pid; hello: the helper's; spawned: the child's.
    pid: i32,
    request_len: u32,
    /// Where the host's environment was copied in the request area, or `abi.none`.
    environ_off: u32,
    environ_count: u32,
    /// 1 when the first descriptor is the host's working directory.
    has_cwd: u32,
    err_errno: i32,
    err_step: abi.Step,
    err_index: u32,
    clone_mode: u32,
    pidfd_mode: u32,
    fd_table: u32,
    rlimit_mask: u32,
    /// `abi.none` when the groups stay.
    groups_count: u32,
    groups_dropped: u32,
    has_gid: u32,
    has_uid: u32,
    has_priority: u32,
    has_affinity: u32,
    priority: i32,
    gids: [3]u32,
    uids: [3]u32,
    rlimits: [sys.rlimit_count]sys.Rlimit,
    affinity: sys.CpuMask,
    groups: [groups_max]u32,
};

fn region_request_area() [*]u8 {
    return @ptrFromInt(@intFromPtr(g.region) + region_request_off);
}

fn send_message(sock: i32, msg: *const HelperMessage, fds: []const i32) usize {
    return sys.send_with_fds(sock, std.mem.asBytes(msg), fds);
}

/// Whether the helper's end of the socket is closed (it exited), without reading.
fn helper_hung_up() bool {
    const sock = @atomicLoad(i32, &g.helper_sock, .monotonic);
    if (sock < 0) return true;
    var fds = [1]sys.PollFd{.{ .fd = sock, .events = sys.POLLIN, .revents = 0 }};
    const rc = sys.poll(&fds, 1, 0);
    return sys.errno(rc) == 0 and rc == 1 and fds[0].revents & (sys.POLLHUP | sys.POLLERR) != 0;
}

fn helper_alive_locked() bool {
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
fn start_helper_locked() i32 {
    if (g.region_fd < 0) return -sys.E.NOSYS;
    if (choice.helper_path_len == 0) return -sys.E.NOENT;
    sys.futex_shared = true;
    var fds: [2]i32 = undefined;
    var rc = sys.socketpair(sys.SOCK_SEQPACKET | sys.SOCK_CLOEXEC, &fds);
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
    msg.rlimits = g.attributes.rlimits;
    rc = send_message(host_end, &msg, &.{g.region_fd});
    const launched = if (sys.errno(rc) != 0) -sys.errno(rc) else launch_helper(fds[1]);
    _ = sys.close(fds[1]);
    if (launched < 0) {
        _ = sys.close(host_end);
        return launched;
    }
    const hello = receive_reply(host_end, &msg, null);
    if (hello < 0 or msg.op != .hello or msg.pid <= 0) {
        _ = sys.close(host_end);
        return if (hello < 0) hello else -sys.E.PROTO;
    }
    g.helper_pid = msg.pid;
    @atomicStore(i32, &g.helper_sock, host_end, .monotonic);
    g.reapers_started += 1;
    for (listeners(), 0..) |*l, i| {
        if (l.in_use) helper_listener_message(.listener_open, @intCast(i), l.write_fd);
    }
    return 0;
}

/// Tells the helper about a listener's wake-up pipe; a dead helper learns them at its restart.
fn helper_listener_message(op: HelperOp, index: u32, write_fd: i32) void {
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
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    while (true) {
        var poll_fds = [1]sys.PollFd{.{ .fd = sock, .events = sys.POLLIN, .revents = 0 }};
        const ready = sys.poll(&poll_fds, 1, liveness_check_ms);
        if (sys.errno(ready) == sys.E.INTR or (sys.errno(ready) == 0 and ready == 0)) continue;
        if (sys.errno(ready) != 0) return -sys.errno(ready);
        const rc = sys.recv_with_fds(sock, std.mem.asBytes(msg), &fds, &count);
        if (sys.errno(rc) == sys.E.INTR) continue;
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
    const rc = sys.clone(launch_middle, g.reaper_stack, sys.CLONE.VM | sys.CLONE.VFORK, @intFromPtr(&launch), &parent_tid);
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
fn helper_submit(plan: *ChildPlan) void {
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
        const rc = send_message(g.helper_sock, &msg, fds[0..count]);
        if (sys.errno(rc) == 0) break;
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
        _ = helper_alive_locked();
        request.err_errno = sys.E.CHILD;
        request.err_step = .reaper;
        return;
    }
    helper_spawned(plan, &msg, pidfd);
}

/// The helper's answer: the child's pid and a pidfd of it (ours now), or the failed step.
fn helper_spawned(plan: *ChildPlan, msg: *const HelperMessage, pidfd: i32) void {
    const request = plan.request;
    g.clone_mode = msg.clone_mode;
    g.pidfd_mode = msg.pidfd_mode;
    if (msg.fd_table != 0) g.fd_table_mode = msg.fd_table;
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
    request.group_pidfd = group_pidfd(request, leads_group(request));
}

const RequestFailure = struct { errno: i32, step: abi.Step = .request, index: u32 = abi.none };

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
    if (request.flags & abi.flag_umask == 0) {
        if (host_umask()) |mask| {
            copy.flags |= abi.flag_umask;
            copy.umask = mask;
        }
    }
    const cwd = sys.openat(".", sys.O_PATH | sys.O_DIRECTORY | sys.O.CLOEXEC, 0);
    if (sys.errno(cwd) == 0) {
        fds[0] = sys.int(cwd);
        count.* = 1;
        msg.has_cwd = 1;
    }
    const actions: [*]abi.FdAction = @ptrCast(@alignCast(area + @sizeOf(abi.Request)));
    for (actions[0..copy.fd_count], 0..) |*action, i| {
        const source: i32 = switch (action.kind) {
            .dup, .pipe_to_child, .pipe_from_child => action.fd,
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
const helper_env_max = 1 << 16;

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
    sys.futex_shared = true;
    var msg: HelperMessage = undefined;
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    const rc = sys.recv_with_fds(3, std.mem.asBytes(&msg), &fds, &count);
    // A helper from another build than the library: the messages may differ, so refuse.
    if (rc != @sizeOf(HelperMessage) or msg.op != .init or count != 1 or msg.index != abi.abi_version) return 2;
    const addr = sys.mmap_shared(fds[0], region_len);
    if (sys.errno(addr) != 0) return 3;
    g.init_pid = sys.getpid();
    use_region(addr, fds[0]);
    g.memory_ready = true;
    if (setup_memory() < 0) return 4;
    g.host_pid = msg.pid;
    g.request_efd = 3;
    // The limits the host had when it started us, which its children's are compared with:
    // Zig's start code raised our RLIMIT_STACK (and with it the children's ARG_MAX).
    var resource: u32 = 0;
    while (resource < sys.rlimit_count) : (resource += 1) {
        // EPERM, EINVAL: a limit we cannot take back; a child whose host differs gets it set.
        _ = sys.prlimit(0, resource, &msg.rlimits[resource], null);
    }
    msg = std.mem.zeroes(HelperMessage);
    msg.op = .hello;
    msg.pid = sys.getpid();
    if (sys.errno(send_message(3, &msg, &.{})) != 0) return 5;
    _ = reaper_main(0);
    return 6;
}

/// One message from the host; at EOF (the host exited) the helper applies each child's
/// `killOnParentExit` and exits.
fn helper_serve() void {
    var msg: HelperMessage = undefined;
    var fds: [sys.scm_max_fd]i32 = undefined;
    var count: usize = 0;
    const rc = sys.recv_with_fds(g.request_efd, std.mem.asBytes(&msg), &fds, &count);
    const e = sys.errno(rc);
    if (e == sys.E.INTR or e == sys.E.AGAIN) return;
    if (e != 0 or rc == 0) host_exited();
    const received = fds[0..count];
    if (rc != @sizeOf(HelperMessage)) return close_all(received);
    switch (msg.op) {
        .listener_open => {
            if (msg.index >= abi.listeners_max or count != 1) return close_all(received);
            if (helper_wake_fds[msg.index] >= 0) _ = sys.close(helper_wake_fds[msg.index]);
            helper_wake_fds[msg.index] = received[0];
        },
        .listener_close => {
            close_all(received);
            if (msg.index >= abi.listeners_max) return;
            if (helper_wake_fds[msg.index] >= 0) _ = sys.close(helper_wake_fds[msg.index]);
            helper_wake_fds[msg.index] = -1;
        },
        .spawn => helper_spawn(&msg, received),
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
    // The child has its own copies; the helper keeps none of the host's descriptors.
    defer close_all(fds);
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
    awaiting_exit = true;
    g.table.insert(request.pid, index);
    watch_child(index);
    @atomicStore(u32, &slot.state, SlotState.running, .release);
}

/// Gives the plan the received descriptors (in the order `helper_request` sent them), the
/// host's attributes and environment. False if the message does not fit the request.
fn helper_plan(plan: *ChildPlan, msg: *const HelperMessage, fds: []const i32) bool {
    var next: usize = 0;
    if (msg.has_cwd != 0) {
        if (fds.len == 0) return false;
        plan.cwd_fd = fds[0];
        next = 1;
    }
    for (plan.actions) |*action| switch (action.kind) {
        .dup, .pipe_to_child, .pipe_from_child => {
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

/// A pipe grown by `pipe_grow`: the host's descriptor and the file it named then.
const LargePipe = struct { fd: i32 = -1, dev: u64 = 0, inode: u64 = 0 };

/// 1 MiB instead of 64 KiB: a sixteenth of the wake-ups (and of the reads) for bulk data.
/// Measured and chosen in docs/decisions/0002-pipe-growth.md.
const large_pipe_size = 1 << 20;
/// The kernel charges a pipe's whole size to its user when the size is set, used or not, and
/// once a user's pipes pass `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default) every new
/// pipe of that user, in any process, gets 8 KiB. So pipes only grow once they carry bulk
/// data, and at most this many at once: 16 MiB, a quarter of the default soft limit.
/// Measured and chosen in docs/decisions/0002-pipe-growth.md.
const large_pipes_max = 16;

/// Gives the pipe `fd` a large buffer. Returns its size in bytes, or -EAGAIN when
/// `large_pipes_max` pipes still hold one, or the kernel's -errno (-EPERM: a lower
/// pipe-max-size, or the user is over the soft limit). Asking again for a grown pipe is cheap.
pub fn pipe_grow(fd: i32) i32 {
    var st: sys.Stat = undefined;
    var rc = sys.fstat(fd, &st);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    if (!sys.is_fifo(st.mode)) return -sys.E.INVAL;
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    for (&g.large_pipes) |*entry| {
        if (entry.fd == fd and entry.dev == st.dev and entry.inode == st.ino) return large_pipe_size;
    }
    const entry = large_pipe_free() orelse return -sys.E.AGAIN;
    rc = sys.fcntl(fd, sys.F.SETPIPE_SZ, large_pipe_size);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    entry.* = .{ .fd = fd, .dev = st.dev, .inode = st.ino };
    return sys.int(rc);
}

/// An entry to use: an empty one, else one whose descriptor was closed since or now names
/// another file (the pipe it grew is gone, or lives on only in a child or a copy).
fn large_pipe_free() ?*LargePipe {
    for (&g.large_pipes) |*entry| {
        if (entry.fd < 0) return entry;
    }
    for (&g.large_pipes) |*entry| {
        var st: sys.Stat = undefined;
        const rc = sys.fstat(entry.fd, &st);
        if (sys.errno(rc) != 0 or st.dev != entry.dev or st.ino != entry.inode) return entry;
    }
    return null;
}

pub fn get_info(out: *abi.Info) void {
    out.* = .{
        .abi_version = abi.abi_version,
        .slots_max = abi.slots_max,
        .reaper_pid = if (g.init_pid == sys.getpid()) owner_pid() else 0,
        .clone_mode = g.clone_mode,
        .pidfd = if (g.pidfd_mode == 1) 1 else 0,
        .reapers_started = g.reapers_started,
        .slots_in_use = g.slots_in_use,
        .fd_table = g.fd_table_mode,
        .poll_window_us = @atomicLoad(u32, &g.poll_window_us, .monotonic),
        .backend = choice.active,
        .fallback_errno = choice.fallback_errno,
    };
}

pub fn close_fd(fd: i32) i32 {
    return -sys.errno(sys.close(fd));
}

/// The host's ignored signals now (bit n-1 for signal n), for `keepIgnoredSignals`.
pub fn ignored_signals() u64 {
    var mask: u64 = 0;
    var sig: u32 = 1;
    while (sig <= sys.SIG.max) : (sig += 1) {
        var old: sys.KSigaction = undefined;
        if (sys.errno(sys.rt_sigaction(sig, null, &old)) != 0) continue;
        if (old.handler == sys.SIG.IGN) mask |= @as(u64, 1) << @intCast(sig - 1);
    }
    return mask;
}

/// poll(2) for the synchronous helpers; they block the calling thread on purpose.
pub fn poll(fds: [*]sys.PollFd, count: u32, timeout_ms: i32) i32 {
    const rc = sys.poll(fds, count, timeout_ms);
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return sys.int(rc);
}

/// One read of at most 1 GiB (so the count fits the i32 result).
pub fn read(fd: i32, buf: [*]u8, len: usize) i32 {
    const rc = sys.read(fd, buf, @min(len, io_max));
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return @intCast(rc);
}

/// One write of at most 1 GiB.
pub fn write(fd: i32, buf: [*]const u8, len: usize) i32 {
    const rc = sys.write(fd, buf, @min(len, io_max));
    if (sys.errno(rc) != 0) return -sys.errno(rc);
    return @intCast(rc);
}
const io_max = 1 << 30;
