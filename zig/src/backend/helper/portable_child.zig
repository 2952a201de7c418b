//! Children forked by the portable helper, or by the host itself (the `pdfork` backend): fork,
//! then the set-up in the child, then exec. A failed step is written to a close-on-exec pipe
//! (step, errno, index) and the child exits 127; an exec closes the pipe empty, so the parent
//! knows the outcome before it answers, as with the reaper's vfork. The helper is
//! single-threaded with a clean descriptor table; a host is multithreaded (the child makes only
//! system calls, raw where libc's wrapper takes a lock) and every descriptor of the host is
//! made close-on-exec but those the request names.

const std = @import("std");
const abi = @import("../../abi.zig");
const sys = @import("../../sys/os.zig").sys;

const state_zig = @import("../../common/state.zig");
const ChildPlan = state_zig.ChildPlan;
const child_zig = @import("../../common/child.zig");
const pty = @import("../../common/pty.zig");
const cstr = child_zig.cstr;
const inherited_fds = child_zig.inherited_fds;
const child_handover = child_zig.child_handover;
const clear_nonblock = child_zig.clear_nonblock;

/// Who forks: the portable helper, or the host (`proc_fork`, a descriptor of the child).
pub const Forker = enum { helper, host };

/// What a child that failed writes to its report pipe.
const Report = extern struct { step: abi.Step, errno: i32, index: u32 };

/// Forks and execs `plan`'s child: `request.pid`, or the failed step in `request.err_*` (the
/// failed child reaped already).
pub fn fork_child(plan: *ChildPlan, comptime forker: Forker) void {
    const request = plan.request;
    var report: [2]i32 = undefined;
    const piped = sys.pipe2(&report, sys.O.CLOEXEC);
    if (sys.errno(piped) != 0) return fail_request(request, .pipe, sys.errno(piped));
    // Every signal blocked across fork: the child runs no handler of the helper's before it
    // has reset them all.
    var old: sys.SigSet = undefined;
    sys.mask_signals(false, &old);
    var procdesc: i32 = -1;
    const host_pid = sys.getpid();
    const forked = if (forker == .host) sys.proc_fork(&procdesc) else sys.fork_process();
    if (sys.errno(forked) == 0 and forked == 0) {
        _ = sys.close(report[0]);
        const child = Child{ .plan = plan, .report_fd = report[1], .forker = forker };
        if (forker == .host) child_dies_with_host(child, host_pid);
        child_main(child);
    }
    sys.restore_signals(&old);
    _ = sys.close(report[1]);
    defer _ = sys.close(report[0]);
    if (sys.errno(forked) != 0) return fail_request(request, .clone, sys.errno(forked));
    const pid = sys.int(forked);
    var outcome: Report = undefined;
    const n = read_report(report[0], &outcome);
    if (n == 0) {
        request.pid = pid;
        request.pidfd = procdesc;
        return;
    }
    // It failed (or the report is torn: then it exited before exec all the same): collect it.
    var status: i32 = 0;
    while (sys.errno(sys.wait_pid(pid, &status, 0, null)) == sys.E.INTR) {}
    if (procdesc >= 0) _ = sys.close(procdesc);
    if (n != @sizeOf(Report)) return fail_request(request, .execve, sys.E.IO);
    request.err_step = outcome.step;
    request.err_errno = outcome.errno;
    request.err_index = outcome.index;
}

fn fail_request(request: *abi.Request, step: abi.Step, e: i32) void {
    request.err_step = step;
    request.err_errno = e;
}

/// Reads the child's report: 0 bytes once it exec'd, `@sizeOf(Report)` if it failed.
fn read_report(fd: i32, out: *Report) usize {
    const bytes = std.mem.asBytes(out);
    var got: usize = 0;
    while (got < bytes.len) {
        const rc = sys.read(fd, bytes[got..].ptr, bytes.len - got);
        if (sys.errno(rc) == sys.E.INTR) continue;
        if (sys.errno(rc) != 0 or rc == 0) break;
        got += rc;
    }
    return got;
}

const Child = struct {
    plan: *ChildPlan,
    report_fd: i32,
    forker: Forker,

    fn fail(child: Child, step: abi.Step, rc: usize, index: u32) noreturn {
        var e = sys.errno(rc);
        if (e == 0) e = sys.E.INVAL;
        const report = Report{ .step = step, .errno = e, .index = index };
        // The helper reads a torn or missing report as a failure too.
        _ = sys.write(child.report_fd, std.mem.asBytes(&report), @sizeOf(Report));
        sys.exit(127);
    }

    fn check(child: Child, step: abi.Step, rc: usize) void {
        if (sys.errno(rc) != 0) child.fail(step, rc, abi.none);
    }
};

/// A child of the host with a kill-on-exit signal gets it as its parent-death signal; if the
/// host is gone already, it exits before it runs anything.
fn child_dies_with_host(child: Child, host_pid: i32) void {
    const sig = child.plan.request.kill_on_exit_signal;
    if (sig == 0) return;
    child.check(.pdeathsig, sys.parent_death_signal(sig));
    if (sys.getppid() != host_pid) sys.exit(127);
}

fn child_main(child: Child) noreturn {
    const plan = child.plan;
    const request = plan.request;
    // First: relative paths below (files, the program, `cwd`) resolve as in the host.
    if (plan.cwd_fd >= 0) child.check(.chdir, sys.fchdir(plan.cwd_fd));
    child_signals(child);
    if (request.flags & abi.flag_setsid != 0) child.check(.setsid, sys.setsid());
    if (request.flags & abi.flag_setpgid != 0) child.check(.setpgid, sys.setpgid(0, request.pgid));
    var resource: u32 = 0;
    while (resource < sys.rlimit_count) : (resource += 1) {
        if (plan.rlimit_mask & (@as(u32, 1) << @intCast(resource)) == 0) continue;
        child.check(.rlimit, sys.prlimit(0, resource, &plan.rlimits[resource], null));
    }
    if (plan.set_priority) |priority| child.check(.priority, sys.setpriority(priority));
    const report_high = child_fds(child);
    const moved = Child{ .plan = plan, .report_fd = report_high, .forker = child.forker };
    child_copies(moved);
    // The session has no terminal yet (setsid above): stdin, a pty's slave, becomes it.
    if (request.flags & abi.flag_controlling_tty != 0) moved.check(.controlling_tty, sys.ioctl(0, pty.TIOCSCTTY, 0));
    if (request.flags & abi.flag_umask != 0) _ = sys.umask(request.umask);
    if (request.cwd_off != abi.none) moved.check(.chdir, sys.chdir(cstr(plan.base, request.cwd_off)));
    // Limits asked for last but credentials (see common/child.zig).
    const limits: [*]align(1) const abi.RlimitEntry = @ptrCast(plan.base + request.rlimits_off);
    for (limits[0..request.rlimits_count], 0..) |entry, i| {
        const value = sys.Rlimit{ .cur = entry.cur, .max = entry.max };
        const native = sys.abi_numbers.rlimit_to_native(entry.resource) orelse
            moved.fail(.rlimit, @bitCast(-@as(isize, sys.E.INVAL)), @intCast(i));
        const rc = sys.prlimit(0, native, &value, null);
        if (sys.errno(rc) != 0) moved.fail(.rlimit, rc, @intCast(i));
    }
    child_credentials(moved);
    sys.child_unmask();
    child_exec(moved);
}

/// Every signal to its default, or ignored where the request asks; the mask stays full until
/// just before exec.
fn child_signals(child: Child) void {
    const mask = child.plan.request.ignore_mask;
    var sig: u32 = 1;
    while (sig <= sys.SIG.native_max) : (sig += 1) {
        if (sig == sys.SIG.KILL or sig == sys.SIG.STOP) continue;
        // The mask is in the ABI's (Linux's) numbering; a signal Linux lacks (SIGEMT, SIGINFO)
        // has no bit and is never kept ignored.
        const abi_sig = sys.abi_numbers.signal_to_abi(sig);
        const mapped = abi_sig >= 1 and abi_sig <= 64 and sys.abi_numbers.signal_to_native(abi_sig) == sig;
        const ignore = mapped and mask & (@as(u64, 1) << @intCast(abi_sig - 1)) != 0;
        const rc = sys.set_disposition(sig, ignore);
        // EINVAL: a number this libc keeps for itself (glibc's 32 and 33); only a signal asked
        // to be ignored must succeed.
        if (sys.errno(rc) == sys.E.INVAL and !ignore) continue;
        child.check(.signals, rc);
    }
}

/// setgroups, then setgid, then setuid: all or nothing. EPERM from setgroups is accepted only
/// when the groups are dropped because of a uid or gid that is the child's own already.
fn child_credentials(child: Child) void {
    const plan = child.plan;
    if (plan.set_groups) |groups| {
        const rc = sys.setgroups(groups);
        const tolerated = sys.errno(rc) == sys.E.PERM and plan.groups_dropped and ids_kept(plan);
        if (!tolerated) child.check(.setgroups, rc);
    }
    if (plan.set_gid) |ids| child.check(.setgid, sys.set_gids(ids));
    if (plan.set_uid) |ids| child.check(.setuid, sys.set_uids(ids));
}

fn ids_kept(plan: *const ChildPlan) bool {
    var uids: [3]u32 = undefined;
    var gids: [3]u32 = undefined;
    _ = sys.getresuid(&uids);
    _ = sys.getresgid(&gids);
    if (plan.set_uid) |ids| {
        if (ids[0] != uids[0] or ids[1] != uids[1]) return false;
    }
    if (plan.set_gid) |ids| {
        if (ids[0] != gids[0] or ids[1] != gids[1]) return false;
    }
    return true;
}

/// The descriptor plan: every source copied above all targets first (close-on-exec), then
/// each copy dup2'd onto its target. Every other descriptor of the helper is close-on-exec
/// already but the socket (3), which is marked here. Returns the report pipe, moved above the
/// targets so that no target replaces it.
fn child_fds(child: Child) i32 {
    const plan = child.plan;
    // 3 at least: the helper's socket, which no copy may take.
    const floor: usize = @intCast(child_zig.highest_target(plan, 3) + 1);
    const report = sys.fcntl(child.report_fd, sys.F.DUPFD_CLOEXEC, floor);
    child.check(.fd_dup, report);
    const moved = Child{ .plan = plan, .report_fd = sys.int(report), .forker = child.forker };
    var temps: [abi.fd_actions_max + sys.scm_max_fd]i32 = undefined;
    for (plan.actions, 0..) |action, i| {
        temps[i] = child_source(moved, action, @intCast(i), floor);
    }
    switch (child.forker) {
        .helper => _ = sys.fcntl(3, sys.F.SETFD, sys.FD_CLOEXEC),
        .host => host_fds_cloexec(moved),
    }
    for (plan.actions, 0..) |action, i| {
        switch (action.kind) {
            .copy => {},
            // The helper got the host's stdio as copies; a host's own may be closed.
            .inherit => if (child.forker == .host) {
                if (child_zig.keep_stdio(action.target)) |failed| moved.fail(failed.step, failed.rc, @intCast(i));
            },
            .close => _ = sys.close(action.target),
            else => {
                const rc = sys.dup(temps[i], action.target);
                if (sys.errno(rc) != 0) moved.fail(.fd_dup, rc, @intCast(i));
            },
        }
    }
    return moved.report_fd;
}

/// The copy of one action's source above `floor` (close-on-exec), or -1 for none.
fn child_source(child: Child, action: abi.FdAction, index: u32, floor: usize) i32 {
    const rc: usize = switch (action.kind) {
        .inherit, .close, .copy => return -1,
        .devnull => sys.openat("/dev/null", sys.O.RDWR | sys.O.CLOEXEC, 0),
        .file => child_open(child, action, index),
        .dup, .pipe_to_child, .pipe_from_child => sys.fcntl(action.fd, sys.F.DUPFD_CLOEXEC, floor),
        .handover => child_handover(action.fd, floor),
    };
    if (sys.errno(rc) != 0) {
        const step: abi.Step = if (action.kind == .file or action.kind == .devnull) .fd_open else .fd_dup;
        child.fail(step, rc, index);
    }
    if (sys.int(rc) >= floor) return sys.int(rc);
    // open() returned a low number: lift it above the targets.
    const lifted = sys.fcntl(sys.int(rc), sys.F.DUPFD_CLOEXEC, floor);
    if (sys.errno(lifted) != 0) child.fail(.fd_dup, lifted, index);
    return sys.int(lifted);
}

/// Every descriptor of the host above stdio close-on-exec, but those the request keeps
/// (`inheritFds`): one close_range call where the system has CLOSE_RANGE_CLOEXEC (Linux 5.11,
/// FreeBSD 13.1), else each number below RLIMIT_NOFILE (at most `cloexec_scan_max`).
fn host_fds_cloexec(child: Child) void {
    if (!sys.cloexec_above(3)) {
        var limit = sys.Rlimit{ .cur = 0, .max = 0 };
        _ = sys.prlimit(0, sys.RLIMIT_NOFILE, null, &limit);
        const end: u64 = @min(limit.cur, cloexec_scan_max);
        var fd: u64 = 3;
        while (fd < end) : (fd += 1) _ = sys.fcntl(@intCast(fd), sys.F.SETFD, sys.FD_CLOEXEC);
    }
    for (inherited_fds(child.plan), 0..) |fd, i| {
        const cleared = sys.fcntl(@intCast(fd), sys.F.SETFD, 0);
        if (sys.errno(cleared) != 0) child.fail(.fd_dup, cleared, @intCast(i));
    }
}
const cloexec_scan_max = 1 << 20;

/// Opens a file action's path without waiting (see common/child.zig's `child_open`).
fn child_open(child: Child, action: abi.FdAction, index: u32) usize {
    const flags = sys.abi_numbers.open_flags_to_native(action.open_flags);
    const rc = sys.openat(cstr(child.plan.base, action.path_off), flags | sys.O.CLOEXEC | sys.O.NONBLOCK, action.mode);
    if (sys.errno(rc) != 0) return rc;
    const cleared = clear_nonblock(rc);
    if (sys.errno(cleared) != 0) child.fail(.fd_open, cleared, index);
    return rc;
}

/// `stderr: "stdout"` and the like: copies of targets, once every other target is in place.
fn child_copies(child: Child) void {
    for (child.plan.actions, 0..) |action, i| {
        if (action.kind != .copy) continue;
        const rc = if (action.fd == action.target) sys.fcntl(action.target, sys.F.SETFD, 0) else sys.dup(action.fd, action.target);
        if (sys.errno(rc) != 0) child.fail(.fd_dup, rc, @intCast(i));
    }
}

/// execve, or with no slash in the name, every PATH entry like execvp (ENOEXEC is reported,
/// never retried through /bin/sh), as common/child.zig's `child_exec`.
fn child_exec(child: Child) noreturn {
    const plan = child.plan;
    const request = plan.request;
    const file = std.mem.span(plan.file);
    if (std.mem.indexOfScalar(u8, file, '/') != null or request.search_path_off == abi.none) {
        child.fail(.execve, sys.execve_path(plan.file, plan.argv, plan.envp), abi.none);
    }
    var buffer: [4096 + 256]u8 = undefined;
    var saw_eacces = false;
    var last_errno: i32 = sys.E.NOENT;
    var entries = std.mem.splitScalar(u8, std.mem.span(cstr(plan.base, request.search_path_off)), ':');
    while (entries.next()) |entry| {
        const dir = if (entry.len == 0) "." else entry;
        if (dir.len + 1 + file.len + 1 > buffer.len) continue;
        const path = std.fmt.bufPrintZ(&buffer, "{s}/{s}", .{ dir, file }) catch unreachable;
        const e = sys.errno(sys.execve_path(path.ptr, plan.argv, plan.envp));
        switch (e) {
            sys.E.ACCES => saw_eacces = true,
            sys.E.NOENT, sys.E.NOTDIR, sys.E.LOOP, sys.E.STALE, sys.E.NODEV, sys.E.TIMEDOUT, sys.E.NAMETOOLONG => {},
            else => {
                last_errno = e;
                break;
            },
        }
    }
    if (last_errno == sys.E.NOENT and saw_eacces) last_errno = sys.E.ACCES;
    child.fail(.execve, @bitCast(@as(isize, -last_errno)), abi.none);
}
