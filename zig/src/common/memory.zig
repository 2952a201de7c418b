//! Mapping the region and the private memory (stacks, pid table), and forgetting them after fork().

const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;
const pid_table = @import("pid_table.zig");

const fds_zig = @import("fds.zig");
const fd_errno = fds_zig.fd_errno;
const move_above_stdio = fds_zig.move_above_stdio;
const region_zig = @import("region.zig");
const listeners = region_zig.listeners;
const region_len = region_zig.region_len;
const region_slots_off = region_zig.region_slots_off;
const state_zig = @import("state.zig");
const child_stack_len = state_zig.child_stack_len;
const g = &state_zig.g;
const guard_len = state_zig.guard_len;
const reaper_stack_len = state_zig.reaper_stack_len;

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

pub fn setup_memory() i32 {
    if (!g.private_ready) {
        const free_stack = map(@sizeOf(u32) * abi.slots_max) orelse return -sys.E.NOMEM;
        const table = map(pid_table.Table.bytes) orelse return -sys.E.NOMEM;
        const reaper_top = map_stack(reaper_stack_len) orelse return -sys.E.NOMEM;
        const child_top = map_stack(child_stack_len) orelse return -sys.E.NOMEM;
        const queue = map(state_zig.queue_bytes) orelse return -sys.E.NOMEM;
        g.free_stack = @ptrFromInt(free_stack);
        g.queue = @ptrFromInt(queue);
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
    inline for (.{ g.request_efd, g.host_pidfd, g.signal_fd, g.epoll_fd, g.region_fd, g.helper_sock, g.cgroup_base_fd }) |fd| {
        if (fd >= 0) _ = sys.close(fd);
    }
    const private_ready = g.private_ready;
    const free_stack = g.free_stack;
    const table = g.table;
    const reaper_stack = g.reaper_stack;
    const child_stack = g.child_stack;
    const queue = g.queue;
    // g.lock is zero again: the copy has one thread, nobody else can hold it.
    g.* = .{};
    if (private_ready) {
        g.free_stack = free_stack;
        g.table = table;
        g.table.clear();
        g.reaper_stack = reaper_stack;
        g.child_stack = child_stack;
        // The parent's queued spawns are not this copy's: every entry free.
        for (queue) |*entry| entry.state = state_zig.QueuedState.free;
        g.queue = queue;
        g.private_ready = true;
    }
}

pub fn ensure_process() void {
    const pid = sys.getpid();
    if (g.init_pid == pid) return;
    if (g.init_pid != 0) reset_after_fork();
    g.init_pid = pid;
}

// ---------------------------------------------------------------------------------------------
// Slots.
