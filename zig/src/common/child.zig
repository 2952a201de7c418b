//! The vfork child: raw syscalls only, on `g.child_stack`, sharing memory with its owner (or, in
//! `CloneMode.fork`, a copy of it, reporting through a pipe). One implementation for the
//! reaper's and the helper's children.

const std = @import("std");
const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;

const assert = std.debug.assert;

const pty = @import("pty.zig");
const state_zig = @import("state.zig");
const ChildPlan = state_zig.ChildPlan;
const g = &state_zig.g;
const liveness_check_ms = state_zig.liveness_check_ms;

fn child_fail(plan: *ChildPlan, step: abi.Step, rc: usize, index: u32) noreturn {
    plan.err_errno = sys.errno(rc);
    if (plan.err_errno == 0) plan.err_errno = sys.E.INVAL;
    plan.err_step = step;
    plan.err_index = index;
    // A forked child shares no memory with its owner: the failure goes through the pipe.
    if (plan.report_fd >= 0) {
        const report = Report{ .errno = plan.err_errno, .step = plan.err_step, .index = index };
        _ = sys.write(plan.report_fd, std.mem.asBytes(&report), @sizeOf(Report));
    }
    sys.exit(127);
}

/// What a forked child writes to `plan.report_fd` when a step fails (`CloneMode.fork`).
pub const Report = extern struct { errno: i32, step: abi.Step, index: u32 };

fn check(plan: *ChildPlan, step: abi.Step, rc: usize) void {
    if (sys.errno(rc) != 0) child_fail(plan, step, rc, abi.none);
}

pub fn child_main(arg: usize) callconv(.c) u8 {
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
    // The session has no terminal yet (setsid above): stdin, a pty's slave, becomes it, and
    // the child's group its foreground group.
    if (request.flags & abi.flag_controlling_tty != 0) check(plan, .controlling_tty, sys.ioctl(0, pty.TIOCSCTTY, 0));

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
pub fn inherited_fds(plan: *const ChildPlan) []align(1) const u32 {
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
        .dup, .handover, .pipe_to_child, .pipe_from_child => highest = @max(highest, action.fd),
        .inherit => highest = @max(highest, action.target),
        .devnull, .file, .close, .copy => {},
    };
    for (inherited_fds(plan)) |fd| highest = @max(highest, @as(i32, @intCast(fd)));
    assert(highest >= 2);
    const first_unneeded: u32 = @intCast(highest + 1);
    const rc = sys.close_range(first_unneeded, std.math.maxInt(u32), sys.CLOSE_RANGE_UNSHARE);
    if (sys.errno(rc) == 0) {
        plan.fd_table = .needed_only;
        return;
    }
    plan.fd_table = .whole_in_child;
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

pub fn cstr(base: [*]u8, offset: u32) [*:0]const u8 {
    return @ptrCast(base + offset);
}

/// Applies the fd plan so that no source is clobbered by an earlier target: every source is
/// first copied above all targets (close-on-exec), then everything >= 3 is marked
/// close-on-exec, then each copy is dup'd onto its target (which clears close-on-exec).
/// The highest descriptor the plan's actions set in the child, at least `at_least`: every
/// copy the child makes for itself goes above it, so no `dup2` onto a target replaces one.
pub fn highest_target(plan: *const ChildPlan, at_least: i32) i32 {
    var max_target = at_least;
    for (plan.actions) |action| max_target = @max(max_target, action.target);
    return max_target;
}

fn child_fds(plan: *ChildPlan) void {
    const floor: usize = @intCast(highest_target(plan, 2) + 1);

    var temps: [abi.fd_actions_max]i32 = undefined;
    for (plan.actions, 0..) |action, i| {
        const index: u32 = @intCast(i);
        temps[i] = -1;
        const rc: usize = switch (action.kind) {
            .inherit, .close, .copy => continue,
            .devnull => sys.openat("/dev/null", sys.O.RDWR | sys.O.CLOEXEC, 0),
            .file => child_open(plan, action, index),
            .dup, .pipe_to_child, .pipe_from_child => sys.fcntl(action.fd, sys.F.DUPFD_CLOEXEC, floor),
            .handover => child_handover(action.fd, floor),
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
            .inherit => if (keep_stdio(action.target)) |failed| child_fail(plan, failed.step, failed.rc, index),
            .close => _ = sys.close(action.target),
            .copy => {},
            else => {
                const duped = sys.dup3(temps[i], action.target, 0);
                if (sys.errno(duped) != 0) child_fail(plan, .fd_dup, duped, index);
            },
        }
    }
}

/// A step of the child's set-up that failed: which, and its raw result.
pub const Failed = struct { step: abi.Step, rc: usize };

/// An inherited descriptor `target`, made valid if it is stdio: a closed (or close-on-exec,
/// so not really shared) one becomes /dev/null, so the child always starts with valid 0, 1
/// and 2. Null, or the step that failed.
pub fn keep_stdio(target: i32) ?Failed {
    if (target > 2) return null;
    const flags = sys.fcntl(target, sys.F.GETFD, 0);
    if (sys.errno(flags) == 0 and flags & sys.FD_CLOEXEC == 0) return null;
    const null_fd = sys.openat("/dev/null", sys.O.RDWR | sys.O.CLOEXEC, 0);
    if (sys.errno(null_fd) != 0) return .{ .step = .fd_open, .rc = null_fd };
    // With the target closed, open() hands out the target itself (dup2 onto itself would keep
    // close-on-exec): just keep it across exec.
    if (sys.int(null_fd) == target) {
        const kept = sys.fcntl(target, sys.F.SETFD, 0);
        return if (sys.errno(kept) != 0) .{ .step = .fd_dup, .rc = kept } else null;
    }
    const duped = sys.dup(sys.int(null_fd), target);
    if (sys.errno(duped) != 0) return .{ .step = .fd_dup, .rc = duped };
    _ = sys.close(sys.int(null_fd));
    return null;
}

/// A handed-over pipe end (`FdKind.handover`): a copy above the targets, made blocking.
pub fn child_handover(fd: i32, floor: usize) usize {
    return clear_nonblock(sys.fcntl(fd, sys.F.DUPFD_CLOEXEC, floor));
}

/// The descriptor `rc` names (or its error, passed on), O_NONBLOCK cleared.
pub fn clear_nonblock(rc: usize) usize {
    if (sys.errno(rc) != 0) return rc;
    const flags = sys.fcntl(sys.int(rc), sys.F.GETFL, 0);
    if (sys.errno(flags) != 0) return flags;
    const cleared = sys.fcntl(sys.int(rc), sys.F.SETFL, flags & ~@as(usize, sys.O.NONBLOCK));
    if (sys.errno(cleared) != 0) return cleared;
    return rc;
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
