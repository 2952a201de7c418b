//! The state of the library in one process: `g`, the host-side plan of a child, the attribute
//! snapshot, the futex mutex. Shared by the host's threads and, through CLONE_VM, the reaper.

const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;
const pid_table = @import("pid_table.zig");

const owner_zig = @import("owner.zig");
const reaper_poll_ns = owner_zig.reaper_poll_ns;
const pipes_zig = @import("pipes.zig");
const LargePipe = pipes_zig.LargePipe;
const large_pipes_max = pipes_zig.large_pipes_max;
const region_zig = @import("region.zig");
const spin = @import("spin.zig");
const Region = region_zig.Region;
const Slot = region_zig.Slot;

/// True in the helper executable (zig/src/helper/main.zig), which runs the owner's loop below
/// in a process of its own over the same region; false in the library.
pub const in_helper = @hasDecl(@import("root"), "private_spawn_helper");
/// The helper's own descriptors: its pidfd of each child (the host holds another copy, in the
/// slot) and its copy of each listener's wake-up pipe.
pub var helper_pidfds: [if (in_helper) abi.slots_max else 0]i32 = undefined;
pub var helper_wake_fds = [_]i32{-1} ** abi.listeners_max;

/// The owner's pidfd of a child: the slot's own with the reaper (one descriptor table), the
/// helper's copy in the helper.
pub fn owner_pidfd(index: u32) *i32 {
    if (in_helper) return &helper_pidfds[index];
    return &g.slots[index].pidfd;
}

/// The host's attributes as the reaper got them at its creation; a child gets the host's
/// attributes as they are at spawn time, so spawn compares against these and applies changes.
pub const Attributes = struct {
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
pub const groups_max = 256;

/// Everything the vfork child needs, prepared by the host thread, read by the child.
pub const ChildPlan = struct {
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
    fd_table: FdTable = .unknown,
    /// Set by the owner: a descriptor of the child's own cgroup to clone it into, or -1.
    cgroup_fd: i32 = -1,
    /// Set by the reaper when it starts serving the request.
    taken: u32 = 0,
    /// The host's working directory at spawn time, for a child of the helper (which has its
    /// own); -1 for the reaper's children, which start in the host's (CLONE_FS).
    cwd_fd: i32 = -1,
    /// 1 once the host filled in its attribute changes (rlimits..set_uid above). The host
    /// reads its attributes (about 20 syscalls) while the reaper wakes and clones; the child
    /// waits for this before it applies them (set before the hand-off when there is no host pidfd).
    attributes_ready: u32 = 0,
    /// `CloneMode.fork` only: the write end of the close-on-exec pipe the child reports a
    /// failed step through (above every descriptor the plan makes), else -1.
    report_fd: i32 = -1,
    // Output, written by the child before it exits on failure.
    err_errno: i32 = 0,
    err_step: abi.Step = .none,
    err_index: u32 = abi.none,
};

/// A spawn queued for the reaper (`ph_spawn_start`): the host copies its request here and
/// returns; the reaper serves every queued spawn at each wake-up, in order, and answers in the
/// copy and with a wake-up of its listener; the host copies the answer back to the caller's
/// request (`ph_spawn_finish`). The reaper never reads the caller's memory, which a JavaScript
/// realm that ends (a Worker terminated) would free.
pub const Queued = struct {
    /// The caller's request, to match `ph_spawn_finish` with; never read by the reaper.
    caller: *abi.Request,
    /// The order of the spawn's call among the queued ones.
    sequence: u64,
    plan: ChildPlan,
    /// A `QueuedState`: free and answered are the host's to change, queued and taken the reaper's.
    state: u32,
    /// Set with `answered` when the reaper died before it took the spawn: no child exists, the
    /// host spawns it again at `ph_spawn_finish`.
    untaken: bool,
    /// The `epoch` of the caller's listener at the call: another once a realm took it over.
    listener_epoch: u32,
    /// The plan's supplementary groups: `host_groups` is one buffer for the spawn in flight.
    groups: [groups_max]u32,
    /// The host's `environ` array at the call (`flag_host_environ`), null-terminated: libc may
    /// reallocate it at a setenv before the reaper serves the spawn.
    environ: [environ_copy_max]?[*:0]const u8,
    /// The copy of the caller's request buffer the plan points into.
    request: [request_copy_max]u8 align(8),
};
pub const QueuedState = struct {
    pub const free: u32 = 0;
    pub const queued: u32 = 1;
    pub const taken: u32 = 2;
    pub const answered: u32 = 3;
};
/// How many spawns may wait for the reaper; one more is spawned in the call (after the reaper
/// has served the queue). A pool of 8 to 32 jobs starts at most that many at once; the reaper
/// scans the whole table for the next one, a few nanoseconds per entry.
pub const queue_max = 32;
/// A host with more environment variables is spawned in the call.
pub const environ_copy_max = 1024;
/// A larger request (long arguments or environment) is spawned in the call.
pub const request_copy_max = 32 * 1024;
pub const queue_bytes = queue_max * @sizeOf(Queued);

/// How children get their descriptor tables (`Info.fd_table`).
pub const FdTable = enum(u32) {
    unknown = 0,
    /// Only the host's descriptors below the first one they do not need (close_range).
    needed_only = 1,
    /// The whole table, copied by `unshare` in the child (no close_range).
    whole_in_child = 2,
    /// The whole table, copied by clone (unsharing refused; remembered).
    whole_at_clone = 3,
    _,
};

/// How children are cloned (`Info.clone_mode`).
pub const CloneMode = enum(u32) {
    unknown = 0,
    clone3 = 1,
    /// Legacy clone, remembered after clone3 failed with ENOSYS or EPERM.
    legacy = 2,
    /// A plain fork (exit signal SIGCHLD, no shared memory), remembered after a clone with
    /// CLONE_VM failed with EINVAL (qemu-user: CLONE_VM makes threads only). The child reports
    /// a failed step through a close-on-exec pipe, and its pidfd comes from pidfd_open.
    fork = 3,
    _,
};

/// Whether children get pidfds (`Info.pidfd` is 1 for `available`).
pub const PidfdMode = enum(u32) {
    unknown = 0,
    available = 1,
    /// Remembered after CLONE_PIDFD failed with EINVAL.
    missing = 2,
    _,
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
    clone_mode: CloneMode = .unknown,
    pidfd_mode: PidfdMode = .unknown,
    /// How the last child got its descriptor table. `whole_at_clone` is remembered: the
    /// child could not unshare (ENOSYS, EPERM).
    fd_table_mode: FdTable = .unknown,
    plan: ?*ChildPlan = null,
    /// Spawns queued for the reaper, in private memory (zeros: every entry free): the host
    /// fills any free entry and numbers it (`Queued.sequence`), the reaper serves them in that
    /// order. (A realm that ends with spawns in flight cannot free their entries: a ring
    /// would stop at the first of them; in a table they are freed by the host when it finds
    /// the table full or a realm starts, `reaper.release_ended_locked`.)
    queue: *[queue_max]Queued = undefined,
    /// The next `Queued.sequence`.
    queue_sequence: u64 = 0,
    /// Spawns answered through the queue since the library was loaded (`Info.spawns_queued`).
    spawns_queued: u32 = 0,
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
    /// The build id of the last helper that refused this library (0: none, or it was welcomed).
    helper_refused_build_id: u32 = 0,
    /// The owner's descriptor of the library's cgroup directory (`cgroup.zig`), or -1.
    cgroup_base_fd: i32 = -1,
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

pub var g: State = .{};

/// Tells the owner (the reaper, or the helper in its own process) how many jobs the host has
/// in flight: its spinners ask `spin.worthwhile` with it. Called under `g.lock`.
pub fn slots_in_use_changed() void {
    @atomicStore(u32, &g.region.slots_in_use, g.slots_in_use, .monotonic);
    if (g.slots_in_use > 1) spin.note_crowded(sys.clock_monotonic_ns());
}

pub const reaper_stack_len = 256 * 1024;
pub const child_stack_len = 128 * 1024;
pub const guard_len = 4096;
/// A host thread waiting for the reaper re-checks that it is alive this often.
/// Measured and chosen in docs/decisions/0007-reaper-liveness.md.
pub const liveness_check_ms = 100;

// ---------------------------------------------------------------------------------------------
// The futex mutex (three states: 0 free, 1 locked, 2 locked with waiters).

pub fn lock(word: *u32) void {
    if (@cmpxchgStrong(u32, word, 0, 1, .acquire, .monotonic) == null) return;
    while (@atomicRmw(u32, word, .Xchg, 2, .acquire) != 0) {
        _ = sys.futex_wait(word, 2, -1);
    }
}

pub fn unlock(word: *u32) void {
    if (@atomicRmw(u32, word, .Xchg, 0, .release) == 2) {
        _ = sys.futex_wake(word, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: mmap'd once, sized by the limits in abi.zig; pages are touched only as used.
