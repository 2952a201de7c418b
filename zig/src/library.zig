//! The library over its backends: the choice of backend (`ph_init`), spawn, liveness and info.
//! Each backend keeps the same contract (`Contract`, checked at comptime).

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("abi.zig");
const sys = @import("sys/os.zig").sys;
const portable = @import("sys/os.zig").portable;

const reaper_zig = @import("backend/reaper/reaper.zig");
const orphans_lost = reaper_zig.orphans_lost;
const exits_zig = @import("common/exits.zig");
const slot_alloc = exits_zig.slot_alloc;
const memory_zig = @import("common/memory.zig");
const ensure_process = memory_zig.ensure_process;
const setup_memory = memory_zig.setup_memory;
const region_zig = @import("common/region.zig");
const SlotState = region_zig.SlotState;
const listeners = region_zig.listeners;
const request_zig = @import("common/request.zig");
const close_pipes = request_zig.close_pipes;
const fail = request_zig.fail;
const host_attribute_changes = request_zig.host_attribute_changes;
const open_pipes = request_zig.open_pipes;
const prepare_plan = request_zig.prepare_plan;
const request_credentials = request_zig.request_credentials;
const release_slot = request_zig.release_slot;
const state_zig = @import("common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const lock = state_zig.lock;
const unlock = state_zig.unlock;

/// What every backend provides, with these types: `start_locked`, `alive_locked` (reaps a
/// dead owner and reports its children), `submit_locked` and the listener hooks under
/// `g.lock`; `exited` and `current_pid` from any thread.
const Contract = struct {
    backend: abi.Backend,
    start_locked: fn () i32,
    alive_locked: fn () bool,
    exited: fn () bool,
    current_pid: fn () i32,
    submit_locked: fn (*ChildPlan) void,
    listener_opened: fn (u32, i32) void,
};

fn check_contract(comptime Backend: type, comptime expected: abi.Backend) void {
    for (std.meta.fields(Contract)) |field| {
        if (!@hasDecl(Backend, field.name)) @compileError(@typeName(Backend) ++ " lacks " ++ field.name);
        const actual = @TypeOf(@field(Backend, field.name));
        if (field.type != abi.Backend and actual != field.type) {
            @compileError(@typeName(Backend) ++ "." ++ field.name ++ " is " ++ @typeName(actual) ++ ", not " ++ @typeName(field.type));
        }
    }
    if (Backend.backend != expected) @compileError(@typeName(Backend) ++ " says it is another backend");
}

const reaper = @import("backend/reaper/reaper.zig");
const helper = @import("backend/helper/host.zig");
const pdfork = @import("backend/pdfork/pdfork.zig");
/// FreeBSD's own backend, and its stand-ins in Linux's glibc build.
const has_pdfork = portable and sys.has_proc_fork;
comptime {
    if (!portable) check_contract(reaper, .reaper);
    check_contract(helper, .helper);
    if (has_pdfork) check_contract(pdfork, .pdfork);
}

/// The active backend's `name` (one of the contract's functions), called with `args`.
fn call(comptime name: []const u8, args: anytype) @typeInfo(@FieldType(Contract, name)).@"fn".return_type.? {
    if (comptime has_pdfork) {
        if (choice.active == .pdfork) return @call(.auto, @field(pdfork, name), args);
    }
    if (comptime portable) return @call(.auto, @field(helper, name), args);
    return switch (choice.active) {
        .helper => @call(.auto, @field(helper, name), args),
        else => @call(.auto, @field(reaper, name), args),
    };
}

/// Whether the owner of the children (the reaper or the helper) has exited, without reaping it.
pub fn owner_exited() bool {
    return call("exited", .{});
}

pub fn owner_alive_locked() bool {
    return call("alive_locked", .{});
}

pub fn listener_opened(index: u32, write_fd: i32) void {
    call("listener_opened", .{ index, write_fd });
}

/// Releases the queued spawns of realms that have ended (`reaper.release_ended_locked`), but
/// none of `live_listener`'s (the caller's own, or `abi.none`). Under `g.lock`.
pub fn release_ended_spawns(live_listener: u32) void {
    if (comptime !portable) reaper.release_ended_locked(live_listener);
}

/// 1 if the owner had died (its children were reported lost or handed to a new reaper), else 0.
pub fn check_reaper() i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    const orphans = @atomicLoad(u32, &g.orphans, .acquire);
    const owner = owner_pid();
    if (owner == 0 and orphans == 0) return 0;
    if (owner != 0 and owner_alive_locked()) return 0;
    // Orphans need a reaper to watch them, spawn or no spawn.
    if (!portable and @atomicLoad(u32, &g.orphans, .acquire) > 0 and ensure_owner_locked() < 0) orphans_lost();
    return 1;
}

fn owner_pid() i32 {
    return call("current_pid", .{});
}

/// Starts the reaper, or the helper: when asked for, or when the reaper cannot be created
/// here and no backend was forced (the errno is kept for `ph_info`).
fn ensure_owner_locked() i32 {
    if (owner_alive_locked()) return 0;
    const rc = setup_memory();
    if (rc < 0) return rc;
    if (has_pdfork and choice.active == .pdfork) return pdfork.start_locked();
    if (portable or choice.active == .helper) return helper.start_locked();
    const started = reaper.start_locked();
    if (started >= 0 or choice.requested != .auto or g.reapers_started > 0) return started;
    if (!reaper_refused(-started) or choice.helper_path_len == 0 or g.region_fd < 0) return started;
    choice.active = .helper;
    choice.fallback_errno = -started;
    return helper.start_locked();
}

/// `ph_spawn`: spawns and returns once the child runs (0) or failed (-errno).
pub fn spawn(request: *abi.Request, len: usize) i32 {
    return spawn_with(request, len, false);
}

/// `ph_spawn_start`: like `spawn`, but with the reaper the spawn is queued (a copy of the
/// request) and 1 returned at once; the caller's request must stay allocated, `spawn_finish`
/// writes the answer into it. 0 (done) or -errno as `spawn` with every other backend, when the
/// queue is full, or for a spawn made in the call (`reaper.enqueue_locked`).
pub fn spawn_start(request: *abi.Request, len: usize) i32 {
    return spawn_with(request, len, true);
}

/// `ph_spawn_finish`: the answer to a spawn `spawn_start` queued: -EAGAIN while the reaper has
/// not answered (its listener's pipe is woken when it has), else 0 or -errno as `spawn`.
/// -EINVAL for a request that is not queued.
pub fn spawn_finish(request: *abi.Request) i32 {
    if (comptime portable) return -sys.E.INVAL;
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    if (!g.private_ready) return -sys.E.INVAL;
    const entry = reaper.queued_locked(request) orelse return -sys.E.INVAL;
    if (@atomicLoad(u32, &entry.state, .acquire) != state_zig.QueuedState.answered) return -sys.E.AGAIN;
    const copy = entry.plan.request;
    if (entry.untaken) {
        // The reaper died before it took the spawn: no child exists, spawn it now.
        entry.untaken = false;
        const reaper_rc = ensure_owner_locked();
        if (reaper_rc < 0) {
            _ = fail(copy, if (choice.active == .helper) .helper else .reaper, -reaper_rc);
        } else call("submit_locked", .{&entry.plan});
    }
    close_pipes(entry.plan.actions, copy.err_errno != 0);
    if (copy.err_errno != 0) release_slot(copy.slot);
    reaper.copy_answer(entry);
    @atomicStore(u32, &entry.state, state_zig.QueuedState.free, .release);
    return -copy.err_errno;
}

fn spawn_with(request: *abi.Request, len: usize, queue_allowed: bool) i32 {
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
    const reaper_rc = ensure_owner_locked();
    if (reaper_rc < 0) return fail(request, if (choice.active == .helper) .helper else .reaper, -reaper_rc);
    const slot_index = slot_alloc() orelse return fail(request, .slots, sys.E.AGAIN);
    g.slots_in_use += 1;
    state_zig.slots_in_use_changed();
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
    if (!portable and queue_allowed and choice.active == .reaper and reaper.enqueue_locked(&plan, request, len)) return 1;
    if (has_pdfork and choice.active == .pdfork) {
        // The child is forked from this thread: it has the host's attributes as they are
        // (`prepare_plan` left no change to apply), only those the request asks for.
        request_credentials(&plan);
        plan.attributes_ready = 1;
    } else if (g.host_pidfd < 0) {
        // Without a host pidfd the child could not tell a dead host from a stopped one while
        // it waits, so nothing overlaps: read the attributes first.
        host_attribute_changes(&plan);
        plan.attributes_ready = 1;
    }
    call("submit_locked", .{&plan});
    close_pipes(plan.actions, request.err_errno != 0);
    if (request.err_errno != 0) {
        release_slot(slot_index);
        return -request.err_errno;
    }
    return 0;
}

/// Which backend runs, and why: set by `init`, kept across a fork (the copy chooses again).
const Choice = struct {
    requested: abi.Backend = .auto,
    active: abi.Backend = .reaper,
    fallback_errno: i32 = 0,
    helper_path: [4096]u8 = undefined,
    helper_path_len: usize = 0,
};
pub var choice: Choice = .{};

pub fn helper_active() bool {
    return choice.active == .helper;
}

/// `ph_init`: the backend asked for and the helper's path; effective until an owner starts,
/// then only the same choice is accepted again (each JavaScript realm calls it).
pub fn init(backend: abi.Backend, helper_path: []const u8) i32 {
    lock(&g.lock);
    defer unlock(&g.lock);
    ensure_process();
    if (backend != .auto and backend != .reaper and backend != .helper and backend != .pdfork) return -sys.E.INVAL;
    // A portable build has no reaper; pdfork is FreeBSD's (and Linux's glibc build's).
    if (portable and backend == .reaper) return -sys.E.NOSYS;
    if (!has_pdfork and backend == .pdfork) return -sys.E.NOSYS;
    if (helper_path.len >= choice.helper_path.len) return -sys.E.NAMETOOLONG;
    if (g.reapers_started > 0) return if (backend == choice.requested) 0 else -sys.E.BUSY;
    choice.requested = backend;
    choice.active = if (backend == .pdfork or (backend == .auto and builtin.os.tag == .freebsd))
        .pdfork
    else if (portable or backend == .helper) .helper else .reaper;
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

pub fn get_info(out: *abi.Info) void {
    out.* = .{
        .abi_version = abi.abi_version,
        .slots_max = abi.slots_max,
        .reaper_pid = if (g.init_pid == sys.getpid()) owner_pid() else 0,
        .clone_mode = @intFromEnum(g.clone_mode),
        // 2: the portable helper's `child.fd` is an exit pipe, pollable but no pidfd; 3: a
        // process descriptor (FreeBSD; a pidfd with Linux's stand-ins).
        .pidfd = if (choice.active == .pdfork) 3 else if (portable) 2 else @intFromBool(g.pidfd_mode == .available),
        .reapers_started = g.reapers_started,
        .slots_in_use = g.slots_in_use,
        .fd_table = @intFromEnum(g.fd_table_mode),
        .poll_window_us = @atomicLoad(u32, &g.poll_window_us, .monotonic),
        .backend = choice.active,
        .fallback_errno = choice.fallback_errno,
        .tree = .none,
        .cgroup_step = .none,
        .cgroup_errno = 0,
        .private = @intFromBool(choice.active != .pdfork or builtin.os.tag != .linux),
        .build_id = region_zig.build_id(),
        .helper_refused_build_id = g.helper_refused_build_id,
        .spawns_queued = g.spawns_queued,
    };
    if (g.pidfd_mode != .available or g.init_pid != sys.getpid()) return;
    out.tree = .descendants;
    if (comptime builtin.os.tag != .linux) return;
    const cgroup = @import("common/cgroup.zig");
    const shared = cgroup.shared();
    switch (@atomicLoad(u32, &shared.state, .acquire)) {
        cgroup.State.active => out.tree = .cgroup,
        cgroup.State.unavailable => {
            out.cgroup_step = shared.step;
            out.cgroup_errno = shared.errno;
        },
        else => {},
    }
}

// ---------------------------------------------------------------------------------------------
// The rest of the C ABI: backend-neutral, implemented in common/.

pub const listener_open = @import("common/exits.zig").listener_open;
pub const listener_fd = @import("common/exits.zig").listener_fd;
pub const listener_close = @import("common/exits.zig").listener_close;
pub const drain = @import("common/exits.zig").drain;
pub const peek = @import("common/exits.zig").peek;
pub const wait_sync = @import("common/exits.zig").wait_sync;
pub const signal = @import("common/exits.zig").signal;
pub const signal_group = @import("common/exits.zig").signal_group;
pub const signal_tree = @import("common/exits.zig").signal_tree;
pub const signal_lock = @import("common/exits.zig").signal_lock;
pub const pidfd_export = @import("common/exits.zig").pidfd_export;
pub const publish_unreaped_for_test = @import("common/exits.zig").publish_unreaped_for_test;
pub const pipe_grow = @import("common/pipes.zig").pipe_grow;
pub const close_fd = @import("common/io.zig").close_fd;
pub const ignored_signals = @import("common/io.zig").ignored_signals;
pub const poll = @import("common/io.zig").poll;
pub const read = @import("common/io.zig").read;
pub const write = @import("common/io.zig").write;
/// The helper executable's entry point (zig/src/helper/main.zig).
pub const helper_main = if (portable)
    @import("backend/helper/portable.zig").helper_main
else
    @import("backend/helper/serve.zig").helper_main;
