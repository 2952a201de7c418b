//! The region: the memory the host and the owner of its children (the reaper, or the helper in
//! its own address space) both write. Slots, listener rings, the signal lock, the request area.

const std = @import("std");
const abi = @import("../abi.zig");

const assert = std.debug.assert;

/// This build's id (build.zig hashes the sources into the module "build_id"): the library and
/// the helper share this region's layout and their messages' only if their ids agree, which
/// the helper checks at the hand-shake. A variable read through a volatile pointer, so that it
/// is one word in the binary's data on every architecture (a constant is folded into the code
/// that compares it, split into instruction fields on aarch64), and a test can change it.
var build_id_word: u32 = @import("build_id").value;

pub fn build_id() u32 {
    const word: *const volatile u32 = &build_id_word;
    return word.*;
}

const exits_zig = @import("exits.zig");
const signal_lock = exits_zig.signal_lock;
const state_zig = @import("state.zig");
const g = &state_zig.g;

/// A slot's state: plain u32 values, not an enum, because the word is a futex that host
/// threads wait on (`wait_sync`) and atomics and futexes take it as a u32.
pub const SlotState = struct {
    pub const free: u32 = 0;
    pub const reserved: u32 = 1;
    pub const running: u32 = 2;
    pub const exited: u32 = 3;
};

pub const Slot = extern struct {
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
    /// The child's own cgroup (`cgroup.zig`): its number under the library's directory, or
    /// 0 for none. Written by the owner before the slot runs.
    cgroup: u32,
    /// Set by a host thread that signals the child's cgroup (under `signal_lock`, while the
    /// child runs); the owner then never hands that cgroup to another child.
    tree_signal: u32,
};

/// The cgroup state both sides read (`cgroup.zig`): the owner sets it up, the host reads it
/// for tree signals and `ph_info`.
pub const CgroupShared = extern struct {
    /// 0 not set up yet, 1 in use, 2 unavailable (`step`, `errno` say why).
    state: u32,
    step: abi.CgroupStep,
    errno: i32,
    /// 1 when the kernel has `cgroup.kill` (Linux 5.14+).
    has_kill: u32,
    /// The last child cgroup's number (owner only).
    next: u32,
    reserved: u32,
    /// The library's directory, NUL-terminated: an absolute path in the cgroup2 mount.
    path: [cgroup_path_max]u8,
    /// The same directory as /proc/<pid>/cgroup names it ("0::" + this), NUL-terminated.
    relative: [cgroup_path_max]u8,
};
pub const cgroup_path_max = 1024;

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
    /// Counts the realms that opened this listener: a queued spawn records it, so an answer
    /// for a realm that has ended is told from one for the realm that took the listener over.
    epoch: u32 = 0,
    /// The thread of the realm that opened it (`sys.thread_id`): once that thread has ended,
    /// nothing reads the listener any more and the next realm takes it over.
    owner_thread: u64 = 0,
};

/// The memory that the host and the owner of its children (the reaper, or the helper in its
/// own address space) both write: a memfd, so the helper can map it too. Its layout:
/// [Region][Slot * slots_max][ring (u32 * slots_max) * listeners_max][request area].
/// Pages are touched only as used.
pub const Region = extern struct {
    /// See `signal_lock()`.
    signal_lock: u32,
    /// The host's `slots_in_use`: its jobs in flight, for the owner's spin decisions.
    slots_in_use: u32,
    /// Until this monotonic time the host counts as running a pool (`spin.zig`).
    crowded_until_ns: u64,
    /// Spinning's credit, and until when nobody spins once it is spent (`spin.zig`).
    spin_credit: u32,
    reserved: u32,
    spin_paused_until_ns: u64,
    listeners: [abi.listeners_max]Listener,
    cgroup: CgroupShared,
};
const page_len = 4096;
pub const region_slots_off = std.mem.alignForward(usize, @sizeOf(Region), page_len);
const region_rings_off = region_slots_off + std.mem.alignForward(usize, @sizeOf(Slot) * abi.slots_max, page_len);
const ring_len = @sizeOf(u32) * abi.slots_max;
const region_request_off = region_rings_off + ring_len * abi.listeners_max;
/// The largest spawn request the helper can be sent (argv, environment and options): 8 MiB,
/// four times Linux's usual ARG_MAX.
pub const region_request_len = 8 << 20;
pub const region_len = region_request_off + region_request_len;

/// Each listener's ring of published slots: `slots_max` entries (a slot is pushed once per
/// life and freed only when drained, so a ring never holds more).
pub fn ring(index: u32) [*]u32 {
    assert(index < abi.listeners_max);
    return @ptrFromInt(@intFromPtr(g.region) + region_rings_off + ring_len * index);
}

pub fn listeners() *[abi.listeners_max]Listener {
    return &g.region.listeners;
}

pub fn region_request_area() [*]u8 {
    return @ptrFromInt(@intFromPtr(g.region) + region_request_off);
}
