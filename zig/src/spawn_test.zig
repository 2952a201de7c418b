//! End-to-end tests of the Linux backend from Zig: spawn through the reaper, wait, signal,
//! fail. They run in the test binary's own process, which is the host here.

const std = @import("std");
const abi = @import("abi.zig");
const linux = @import("library.zig");
const sys = @import("sys/linux.zig");
const pty = @import("common/pty.zig");
const testing = std.testing;

/// Builds a request buffer the way `src/request.ts` does, for `listener`.
pub fn build_request(buffer: []align(8) u8, argv: []const []const u8, actions: []const abi.FdAction, listener_index: u32) *abi.Request {
    @memset(buffer, 0);
    const request: *abi.Request = @ptrCast(buffer.ptr);
    var offset: usize = @sizeOf(abi.Request);
    const actions_out: [*]abi.FdAction = @ptrCast(@alignCast(buffer.ptr + offset));
    @memcpy(actions_out[0..actions.len], actions);
    offset += actions.len * @sizeOf(abi.FdAction);
    const pointers_off = offset;
    offset += (argv.len + 2) * 8;
    const strings_off = offset;
    for (argv) |arg| {
        @memcpy(buffer[offset..][0..arg.len], arg);
        buffer[offset + arg.len] = 0;
        offset += arg.len + 1;
    }
    const search_off = offset;
    const search = "/usr/local/bin:/usr/bin:/bin";
    @memcpy(buffer[offset..][0..search.len], search);
    buffer[offset + search.len] = 0;
    offset += search.len + 1;
    request.* = std.mem.zeroes(abi.Request);
    request.buffer_len = @intCast(offset);
    request.argc = @intCast(argv.len);
    request.envc = 0;
    request.fd_count = @intCast(actions.len);
    request.strings_off = @intCast(strings_off);
    request.strings_len = @intCast(search_off - strings_off);
    request.file_off = abi.none;
    request.search_path_off = @intCast(search_off);
    request.cwd_off = abi.none;
    request.pointers_off = @intCast(pointers_off);
    request.listener = listener_index;
    return request;
}

/// `build_request` for this file's listener.
fn build(buffer: []align(8) u8, argv: []const []const u8, actions: []const abi.FdAction) *abi.Request {
    return build_request(buffer, argv, actions, listener);
}

/// A descriptor action with no source fd or path (inherit, devnull, pipes).
pub fn action(target: i32, kind: abi.FdKind) abi.FdAction {
    return .{ .target = target, .kind = kind, .fd = -1, .open_flags = 0, .mode = 0, .path_off = 0, .out_fd = -1, .reserved = 0 };
}

var listener: u32 = 0;
var listener_ready = false;

fn open_listener() !void {
    if (listener_ready) return;
    const rc = linux.listener_open(false);
    try testing.expect(rc >= 0);
    listener = @intCast(rc);
    listener_ready = true;
}

fn spawn_wait(argv: []const []const u8) !abi.ExitRecord {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, argv, &.{});
    const rc = linux.spawn(request, request.buffer_len);
    try testing.expectEqual(@as(i32, 0), rc);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    _ = drain_listener();
    return record;
}

/// Delivers the exits waiting in the listener. The library owns each child's pidfd and closes
/// it (the reaper, after publishing): closing `request.pidfd` here as well would close whatever
/// reused its number.
/// The reaper marks a slot exited (which ends `wait_sync`) just before it queues the record,
/// so this waits up to 2 s for a first one.
fn drain_listener() i32 {
    var drained: [16]abi.ExitRecord = undefined;
    var tries: u32 = 0;
    while (tries < 2000) : (tries += 1) {
        const count = linux.drain(listener, &drained);
        if (count != 0) return count;
        std.Thread.sleep(std.time.ns_per_ms);
    }
    return 0;
}

test "exit codes come back through the reaper" {
    const record = try spawn_wait(&.{ "sh", "-c", "exit 3" });
    try testing.expectEqual(abi.ExitKind.exited, record.kind);
    try testing.expectEqual(@as(i32, 3), record.value);
}

test "a signal death is reported as killed with its number" {
    const record = try spawn_wait(&.{ "sh", "-c", "kill -TERM $$" });
    try testing.expectEqual(abi.ExitKind.killed, record.kind);
    try testing.expectEqual(@as(i32, sys.SIG.TERM), record.value);
}

test "the host cannot see the child: waitid(P_ALL) gives ECHILD while it runs" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sleep", "0.2" }, &.{});
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    var info = std.mem.zeroes(sys.SigInfo);
    const rc = sys.waitid(sys.P.ALL, 0, &info, sys.W.EXITED | sys.W.NOHANG, null);
    try testing.expectEqual(@as(i32, sys.E.CHILD), sys.errno(rc));
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 0), linux.peek(request.slot, request.generation, &record));
    try testing.expectEqual(@as(i32, 0), linux.signal(request.slot, request.generation, sys.SIG.KILL, 0));
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expectEqual(abi.ExitKind.killed, record.kind);
    try testing.expectEqual(@as(i32, sys.SIG.KILL), record.value);
    try testing.expectEqual(@as(i32, -sys.E.SRCH), linux.signal(request.slot, request.generation, sys.SIG.KILL, 0));
    try testing.expect(drain_listener() >= 1);
    try testing.expectEqual(@as(i32, -sys.E.STALE), linux.peek(request.slot, request.generation, &record));
}

test "a missing program fails synchronously with ENOENT at execve" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{"no-such-program-here"}, &.{});
    try testing.expectEqual(@as(i32, -sys.E.NOENT), linux.spawn(request, request.buffer_len));
    try testing.expectEqual(abi.Step.execve, request.err_step);
}

test "a missing cwd fails at chdir" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{"true"}, &.{});
    const cwd = "/no/such/dir";
    const off = request.buffer_len;
    @memcpy(buffer[off..][0..cwd.len], cwd);
    buffer[off + cwd.len] = 0;
    request.cwd_off = off;
    request.buffer_len = @intCast(off + cwd.len + 1);
    try testing.expectEqual(@as(i32, -sys.E.NOENT), linux.spawn(request, request.buffer_len));
    try testing.expectEqual(abi.Step.chdir, request.err_step);
}

test "a malformed request is refused before anything is created" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{"true"}, &.{});
    request.strings_len += 4000;
    try testing.expectEqual(@as(i32, -sys.E.INVAL), linux.spawn(request, request.buffer_len));
    try testing.expectEqual(abi.Step.request, request.err_step);
}

/// `spawn_finish` until the reaper has answered (10 s at most).
fn finish_queued(request: *abi.Request) i32 {
    var tries: u32 = 0;
    while (tries < 10_000) : (tries += 1) {
        const rc = linux.spawn_finish(request);
        if (rc != -@as(i32, sys.E.AGAIN)) return rc;
        std.Thread.sleep(std.time.ns_per_ms);
    }
    return -@as(i32, sys.E.AGAIN);
}

test "a queued spawn runs from the library's copy of the request: the caller's strings may change meanwhile" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sh", "-c", "exit 5" }, &.{});
    try testing.expectEqual(@as(i32, -sys.E.INVAL), linux.spawn_finish(request));
    try testing.expectEqual(@as(i32, 1), linux.spawn_start(request, request.buffer_len));
    // What a terminated Worker's freed memory could hold by now.
    @memset(buffer[request.strings_off..request.buffer_len], 'x');
    try testing.expectEqual(@as(i32, 0), finish_queued(request));
    try testing.expect(request.pid > 0);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expectEqual(abi.ExitKind.exited, record.kind);
    try testing.expectEqual(@as(i32, 5), record.value);
    _ = drain_listener();
    // Collected: the request is not queued any more.
    try testing.expectEqual(@as(i32, -sys.E.INVAL), linux.spawn_finish(request));
}

test "two queued spawns from the same memory (a realm's freed, then reused): each answer goes to its own" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const first = build(&buffer, &.{ "sh", "-c", "exit 5" }, &.{});
    try testing.expectEqual(@as(i32, 1), linux.spawn_start(first, first.buffer_len));
    const first_slot = first.slot;
    const first_generation = first.generation;
    const second = build(&buffer, &.{ "sh", "-c", "exit 7" }, &.{});
    try testing.expectEqual(@as(i32, 1), linux.spawn_start(second, second.buffer_len));
    try testing.expectEqual(@as(i32, 0), finish_queued(second));
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(second.slot, second.generation, &record, 10_000));
    try testing.expectEqual(second.pid, record.pid);
    try testing.expectEqual(@as(i32, 7), record.value);
    // The first is still there, under its own slot.
    second.slot = first_slot;
    second.generation = first_generation;
    try testing.expectEqual(@as(i32, 0), finish_queued(second));
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(first_slot, first_generation, &record, 10_000));
    try testing.expectEqual(second.pid, record.pid);
    try testing.expectEqual(@as(i32, 5), record.value);
    _ = drain_listener();
}

test "a queued spawn that fails is answered with its step; one given a host descriptor is made in the call" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const missing = build(&buffer, &.{"no-such-program-here"}, &.{});
    try testing.expectEqual(@as(i32, 1), linux.spawn_start(missing, missing.buffer_len));
    try testing.expectEqual(@as(i32, -sys.E.NOENT), finish_queued(missing));
    try testing.expectEqual(abi.Step.execve, missing.err_step);
    var dup = action(1, .dup);
    dup.fd = 2;
    const named = build(&buffer, &.{"true"}, &.{dup});
    try testing.expectEqual(@as(i32, 0), linux.spawn_start(named, named.buffer_len));
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(named.slot, named.generation, &record, 10_000));
    _ = drain_listener();
}

/// A realm whose thread ends with the queue full of its spawns, never finished (a Worker
/// terminated): its requests lived on its stack. With `await_answers` it ends once the reaper
/// has answered them all.
const EndedRealm = struct {
    await_answers: bool,
    listener: i32 = -1,
    read_fd: i32 = -1,
    thread: u64 = 0,
    queued: u32 = 0,

    fn run(self: *EndedRealm) void {
        self.thread = sys.thread_id();
        self.listener = linux.listener_open(false);
        if (self.listener < 0) return;
        const index: u32 = @intCast(self.listener);
        self.read_fd = linux.listener_fd(index);
        var info: abi.Info = undefined;
        linux.get_info(&info);
        const answered_before = info.spawns_queued;
        var buffers: [queue_max][1024]u8 align(8) = undefined;
        for (&buffers) |*buffer| {
            const actions = [_]abi.FdAction{action(1, .pipe_from_child)};
            const request = build_request(buffer, &.{ "sh", "-c", "exit 3" }, &actions, index);
            if (linux.spawn_start(request, request.buffer_len) == 1) self.queued += 1;
        }
        var waited_ms: u32 = 0;
        while (self.await_answers and waited_ms < 10_000) : (waited_ms += 1) {
            linux.get_info(&info);
            if (info.spawns_queued -% answered_before >= self.queued) break;
            std.Thread.sleep(std.time.ns_per_ms);
        }
    }

    /// Runs the realm on a thread of its own until that thread is gone.
    fn end(self: *EndedRealm) !void {
        const thread = try std.Thread.spawn(.{}, EndedRealm.run, .{self});
        thread.join();
        try testing.expect(self.listener >= 0);
        try testing.expectEqual(@as(u32, queue_max), self.queued);
        var waited_ms: u32 = 0;
        while (!sys.thread_gone(self.thread) and waited_ms < 2000) : (waited_ms += 1) std.Thread.sleep(std.time.ns_per_ms);
    }
};
const queue_max = @import("common/state.zig").queue_max;

/// Queues a spawn from this file's realm: possible only once the ended realm's entries went.
fn spawn_queued_exit_4() !void {
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sh", "-c", "exit 4" }, &.{});
    try testing.expectEqual(@as(i32, 1), linux.spawn_start(request, request.buffer_len));
    try testing.expectEqual(@as(i32, 0), finish_queued(request));
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expectEqual(@as(i32, 4), record.value);
    _ = drain_listener();
}

/// Drains `index` until `expected` exits of the ended realm's children came, or `wait_ms` passed.
fn drain_ended(index: u32, expected: u32, wait_ms: u32) !u32 {
    var exits: u32 = 0;
    var waited_ms: u32 = 0;
    while (exits < expected and waited_ms < wait_ms) {
        var drained: [16]abi.ExitRecord = undefined;
        const count = linux.drain(index, &drained);
        try testing.expect(count >= 0);
        for (drained[0..@intCast(count)]) |exit| {
            try testing.expectEqual(@as(i32, 3), exit.value);
            exits += 1;
        }
        if (count == 0) {
            std.Thread.sleep(std.time.ns_per_ms);
            waited_ms += 1;
        }
    }
    return exits;
}

test "a realm whose thread ended with the queue full of answers: they are let go, the next realm takes its listener over" {
    try open_listener();
    var info: abi.Info = undefined;
    linux.get_info(&info);
    const slots_before = info.slots_in_use;
    var realm = EndedRealm{ .await_answers = true };
    try realm.end();
    try spawn_queued_exit_4();
    // A new realm gets the ended one's listener, pipe and all, and the exits of its children.
    const opened = linux.listener_open(false);
    try testing.expectEqual(realm.listener, opened);
    const index: u32 = @intCast(opened);
    try testing.expectEqual(realm.read_fd, linux.listener_fd(index));
    try testing.expectEqual(@as(u32, queue_max), try drain_ended(index, queue_max, 5000));
    linux.get_info(&info);
    try testing.expectEqual(slots_before, info.slots_in_use);
    // Released: not the caller's any more; the next realm takes it over (the next test's).
    try testing.expectEqual(@as(i32, 0), linux.listener_close(index));
    try testing.expectEqual(@as(i32, -sys.E.BADF), linux.listener_close(index));
    try testing.expectEqual(@as(i32, -sys.E.BADF), linux.listener_fd(index));
    var drained: [1]abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, -sys.E.BADF), linux.drain(index, &drained));
}

fn resume_after_1s(pid: i32) void {
    std.Thread.sleep(std.time.ns_per_s);
    _ = sys.kill(pid, std.posix.SIG.CONT);
}

test "a realm whose thread ended with its spawns still queued (the reaper stopped): none of them runs" {
    try open_listener();
    var info: abi.Info = undefined;
    linux.get_info(&info);
    const slots_before = info.slots_in_use;
    const reaper_pid = info.reaper_pid;
    try testing.expect(reaper_pid > 0);
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.kill(reaper_pid, std.posix.SIG.STOP)));
    // Resumed after a second whatever happens: a spawn made in the call would wait for it.
    const resumer = try std.Thread.spawn(.{}, resume_after_1s, .{reaper_pid});
    defer resumer.join();
    var realm = EndedRealm{ .await_answers = false };
    try realm.end();
    try spawn_queued_exit_4();
    const opened = linux.listener_open(false);
    // The realm took over the listener the test before released, and this one the realm's.
    try testing.expectEqual(realm.listener, opened);
    const index: u32 = @intCast(opened);
    try testing.expectEqual(@as(u32, 0), try drain_ended(index, 1, 300));
    linux.get_info(&info);
    try testing.expectEqual(slots_before, info.slots_in_use);
    try testing.expectEqual(@as(i32, 0), linux.listener_close(index));
}

/// Runs `argv` with stdin from /dev/null and stdout piped; returns what it wrote (one read).
fn spawn_output(argv: []const []const u8, out: []u8) ![]u8 {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const actions = [_]abi.FdAction{
        action(0, .devnull),
        action(1, .pipe_from_child),
    };
    const request = build(&buffer, argv, &actions);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    const out_actions: [*]abi.FdAction = @ptrCast(@alignCast(&buffer[@sizeOf(abi.Request)]));
    const fd = out_actions[1].out_fd;
    try testing.expect(fd > 2);
    defer _ = sys.close(fd);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expect(drain_listener() >= 1);
    const n = sys.read(fd, out.ptr, out.len);
    try testing.expectEqual(@as(i32, 0), sys.errno(n));
    return out[0..n];
}

test "piped stdout carries the child's bytes" {
    var bytes: [64]u8 = undefined;
    try testing.expectEqualStrings("hello\n", try spawn_output(&.{ "echo", "hello" }, &bytes));
}

test "a child copies only the descriptors it needs, not one the host holds at 1000" {
    const high = sys.fcntl(0, sys.F.DUPFD_CLOEXEC, 1000);
    try testing.expectEqual(@as(i32, 0), sys.errno(high));
    defer _ = sys.close(sys.int(high));
    var bytes: [64]u8 = undefined;
    const text = std.mem.trim(u8, try spawn_output(&.{ "grep", "FDSize", "/proc/self/status" }, &bytes), " \t\n");
    try testing.expect(std.mem.startsWith(u8, text, "FDSize:"));
    const size = try std.fmt.parseInt(u32, std.mem.trim(u8, text["FDSize:".len..], " \t"), 10);
    var info: abi.Info = undefined;
    linux.get_info(&info);
    // 1: the table was copied below the highest descriptor the child needs (2 here); else whole.
    if (info.fd_table == 1) try testing.expect(size < 1000) else try testing.expect(size > 1000);
}

test "the clone mode, pidfds and descriptor tables match the fault this run forces (PH_FAULT)" {
    _ = try spawn_wait(&.{"true"});
    var info: abi.Info = undefined;
    linux.get_info(&info);
    const fault = std.posix.getenv("PH_FAULT") orelse "";
    const is = struct {
        fn is(a: []const u8, b: []const u8) bool {
            return std.mem.eql(u8, a, b);
        }
    }.is;
    const no_clone3 = is(fault, "clone3-enosys") or is(fault, "clone3-eperm") or is(fault, "no-pidfd");
    try testing.expectEqual(@as(u32, if (no_clone3) 2 else 1), info.clone_mode);
    try testing.expectEqual(@as(u32, if (is(fault, "no-pidfd")) 0 else 1), info.pidfd);
    // 1: only the needed descriptors; 2: the whole table, by unshare in the child (no
    // close_range); 3: the whole table at clone (unsharing refused, remembered).
    const fd_table: u32 = if (is(fault, "no-close-range")) 2 else if (is(fault, "no-unshare")) 3 else 1;
    try testing.expectEqual(fd_table, info.fd_table);
}

test "a host that forks without exec: the copy starts its own reaper, the parent keeps its own" {
    _ = try spawn_wait(&.{"true"});
    var info: abi.Info = undefined;
    linux.get_info(&info);
    const parent_reaper = info.reaper_pid;
    try testing.expect(parent_reaper > 0);

    const pid = std.os.linux.fork();
    if (pid == 0) {
        // The copy: its globals say "reaper = parent_reaper", which must not be used.
        const code: u8 = forked_copy(parent_reaper) catch 100;
        sys.exit_group(code);
    }
    try testing.expect(sys.errno(pid) == 0);
    var status: u32 = 0;
    _ = std.os.linux.waitpid(@intCast(pid), &status, 0);
    try testing.expectEqual(@as(u32, 0), status);

    _ = try spawn_wait(&.{"true"});
    linux.get_info(&info);
    try testing.expectEqual(parent_reaper, info.reaper_pid);
}

test "a fork while the parent's reaper holds its lock: the copy's reaper is not stuck on it" {
    _ = try spawn_wait(&.{"true"});
    var info: abi.Info = undefined;
    linux.get_info(&info);
    const parent_reaper = info.reaper_pid;
    // What the reaper does around each reap; a fork at that instant copies the held lock.
    @atomicStore(u32, linux.signal_lock(), 1, .release);
    const pid = std.os.linux.fork();
    if (pid == 0) {
        const code: u8 = forked_copy(parent_reaper) catch 100;
        sys.exit_group(code);
    }
    @atomicStore(u32, linux.signal_lock(), 0, .release);
    try testing.expect(sys.errno(pid) == 0);
    var status: u32 = 0;
    _ = std.os.linux.waitpid(@intCast(pid), &status, 0);
    try testing.expectEqual(@as(u32, 0), status);
}

/// Runs in the forked copy; the exit code says what went wrong (0: all well).
fn forked_copy(parent_reaper: i32) !u8 {
    const opened = linux.listener_open(false);
    if (opened < 0) return 10;
    listener = @intCast(opened);
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sh", "-c", "exit 9" }, &.{});
    if (linux.spawn(request, request.buffer_len) != 0) return 11;
    var record: abi.ExitRecord = undefined;
    if (linux.wait_sync(request.slot, request.generation, &record, 10_000) != 1) return 12;
    if (record.kind != .exited or record.value != 9) return 13;
    var info: abi.Info = undefined;
    linux.get_info(&info);
    if (info.reaper_pid == 0 or info.reaper_pid == parent_reaper) return 14;
    // The record reached the copy's own ring, from its one reaper. (A reaper that marked the
    // slot exited and then died before queueing it once passed the checks above.)
    if (drain_listener() != 1) return 15;
    if (linux.check_reaper() != 0) return 16;
    return 0;
}

test "a host with fd 0 closed: the child's stdin is /dev/null and our pipes never take fd 0" {
    try open_listener();
    const saved = sys.int(sys.fcntl(0, sys.F.DUPFD_CLOEXEC, 3));
    try testing.expect(saved > 2);
    _ = sys.close(0);
    defer {
        _ = sys.dup3(saved, 0, 0);
        _ = sys.close(saved);
    }
    var buffer: [4096]u8 align(8) = undefined;
    const actions = [_]abi.FdAction{
        action(0, .inherit),
        action(1, .pipe_from_child),
    };
    const request = build(&buffer, &.{ "sh", "-c", "readlink /proc/self/fd/0" }, &actions);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    const out_actions: [*]abi.FdAction = @ptrCast(@alignCast(&buffer[@sizeOf(abi.Request)]));
    const fd = out_actions[1].out_fd;
    try testing.expect(fd > 2);
    // fd 0 is still closed in the host: nothing of ours landed there.
    try testing.expectEqual(@as(i32, sys.E.BADF), sys.errno(sys.fcntl(0, sys.F.GETFD, 0)));
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    var bytes: [64]u8 = undefined;
    const n = sys.read(fd, &bytes, bytes.len);
    try testing.expectEqualStrings("/dev/null\n", bytes[0..n]);
    _ = sys.close(fd);
    try testing.expect(drain_listener() >= 1);
}

fn pipe_size_of(fd: i32) i32 {
    return sys.int(sys.fcntl(fd, sys.F.GETPIPE_SZ, 0));
}

test "pipes grow to 1 MiB on request, at most 16 at once, and closed ones give their place back" {
    const large: i32 = 1 << 20;
    var pipes: [17][2]i32 = undefined;
    for (&pipes) |*p| try testing.expectEqual(@as(i32, 0), sys.errno(sys.pipe2(p, sys.O.CLOEXEC)));
    defer for (pipes) |p| {
        _ = sys.close(p[0]);
        _ = sys.close(p[1]);
    };
    for (pipes[0..16]) |p| {
        try testing.expect(pipe_size_of(p[0]) < large);
        try testing.expectEqual(large, linux.pipe_grow(p[0]));
        try testing.expectEqual(large, pipe_size_of(p[1]));
    }
    // Over budget: the seventeenth keeps its size. Asking again for a grown one is no error.
    try testing.expectEqual(-@as(i32, sys.E.AGAIN), linux.pipe_grow(pipes[16][0]));
    try testing.expect(pipe_size_of(pipes[16][0]) < large);
    try testing.expectEqual(large, linux.pipe_grow(pipes[3][0]));
    // A grown pipe closed, and its number taken by another pipe: the place is free again,
    // and the new pipe at the old number is not mistaken for the grown one.
    const number = pipes[5][0];
    _ = sys.close(pipes[5][0]);
    _ = sys.close(pipes[5][1]);
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.pipe2(&pipes[5], sys.O.CLOEXEC)));
    try testing.expectEqual(number, pipes[5][0]);
    try testing.expect(pipe_size_of(pipes[5][0]) < large);
    try testing.expectEqual(large, linux.pipe_grow(pipes[16][0]));
    try testing.expectEqual(large, pipe_size_of(pipes[16][1]));
    try testing.expectEqual(-@as(i32, sys.E.AGAIN), linux.pipe_grow(pipes[5][0]));
    // Not a pipe, not a descriptor.
    const null_fd = sys.int(sys.openat("/dev/null", sys.O.RDONLY | sys.O.CLOEXEC, 0));
    defer _ = sys.close(null_fd);
    try testing.expectEqual(-@as(i32, sys.E.INVAL), linux.pipe_grow(null_fd));
    try testing.expectEqual(-@as(i32, sys.E.BADF), linux.pipe_grow(999_999));
}

/// Kills the reaper and waits until it has exited (not reaped: that is the host's to do).
fn kill_reaper() !void {
    var info: abi.Info = undefined;
    linux.get_info(&info);
    try testing.expect(info.reaper_pid > 0);
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.kill(info.reaper_pid, sys.SIG.KILL)));
    var dead = std.mem.zeroes(sys.SigInfo);
    const flags = sys.W.EXITED | sys.W.NOWAIT | sys.W.ALL;
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.waitid(sys.P.PID, info.reaper_pid, &dead, flags, null)));
}

const not_returned = std.math.minInt(i32);

/// Waits up to 5 s for a call on another thread to store its result (else `not_returned`).
fn await_result(returned: *std.atomic.Value(i32)) i32 {
    var waited_ms: u32 = 0;
    while (returned.load(.acquire) == not_returned and waited_ms < 5_000) : (waited_ms += 10) {
        std.Thread.sleep(10 * std.time.ns_per_ms);
    }
    return returned.load(.acquire);
}

fn signal_into(slot: u32, generation: u32, out: *std.atomic.Value(i32)) void {
    out.store(linux.signal(slot, generation, sys.SIG.KILL, 0), .release);
}

test "a reaper that dies holding signal_lock does not hang the host's signal()" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sleep", "30" }, &.{});
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    // The reaper dies, and the lock is left as if it had died inside it (held, with waiters).
    try kill_reaper();
    @atomicStore(u32, linux.signal_lock(), 2, .release);
    // On a thread, so that a signal() stuck on the lock fails this test instead of hanging it.
    var returned = std.atomic.Value(i32).init(not_returned);
    const thread = try std.Thread.spawn(.{}, signal_into, .{ request.slot, request.generation, &returned });
    const rc = await_result(&returned);
    if (rc == not_returned) {
        // Let the stuck call go, so the tests after this one can signal.
        @atomicStore(u32, linux.signal_lock(), 0, .release);
        _ = sys.futex_wake(linux.signal_lock(), 1);
    }
    thread.join();
    try testing.expectEqual(@as(i32, 0), rc);
    // Clean up: the host notices the death, the orphan's exit is recovered or reported lost.
    try testing.expectEqual(@as(i32, 1), linux.check_reaper());
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expect(record.kind == .killed or record.kind == .lost);
    _ = drain_listener();
}

fn wait_into(slot: u32, generation: u32, out: *std.atomic.Value(i32)) void {
    var record: abi.ExitRecord = undefined;
    out.store(linux.wait_sync(slot, generation, &record, 10_000), .release);
}

test "a reaper that dies between publishing an exit and reaping it: the records still come out" {
    try open_listener();
    var buffers: [2][4096]u8 align(8) = undefined;
    var requests: [2]*abi.Request = undefined;
    for (&buffers, &requests) |*buffer, *request| {
        request.* = build(buffer, &.{ "sleep", "30" }, &.{});
        try testing.expectEqual(@as(i32, 0), linux.spawn(request.*, request.*.buffer_len));
    }
    try kill_reaper();
    // What the reaper left: both exits published, neither child reaped, the records held back.
    for (requests) |request| linux.publish_unreaped_for_test(request.slot);
    var out: [4]abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 0), linux.drain(listener, &out));
    // wait_sync notices the dead reaper. On a thread, so that a wait stuck on the record fails
    // this test instead of hanging it.
    var returned = std.atomic.Value(i32).init(not_returned);
    const first = requests[0];
    const thread = try std.Thread.spawn(.{}, wait_into, .{ first.slot, first.generation, &returned });
    const rc = await_result(&returned);
    if (rc == not_returned) thread.detach() else thread.join();
    try testing.expectEqual(@as(i32, 1), rc);
    try testing.expectEqual(@as(i32, 1), linux.drain(listener, &out));
    try testing.expectEqual(first.pid, out[0].pid);
    // The second is still held back until the host notices the death (the registry checks
    // every 500 ms while exits are awaited).
    try testing.expectEqual(@as(i32, 0), linux.drain(listener, &out));
    try testing.expectEqual(@as(i32, 1), linux.check_reaper());
    try testing.expectEqual(@as(i32, 1), linux.drain(listener, &out));
    try testing.expectEqual(requests[1].pid, out[0].pid);
    // The `sleep`s are orphans now, with init or a subreaper above this process.
    for (requests) |request| _ = sys.kill(request.pid, sys.SIG.KILL);
}

/// Appends the NUL-terminated `text` to the request's buffer; returns its offset.
fn append_string(buffer: []align(8) u8, request: *abi.Request, text: []const u8) u32 {
    const off = request.buffer_len;
    @memcpy(buffer[off..][0..text.len], text);
    buffer[off + text.len] = 0;
    request.buffer_len = @intCast(off + text.len + 1);
    return off;
}

test "uid without groups: the child keeps none of the host's supplementary groups (root only)" {
    if (std.os.linux.getuid() != 0) return;
    try open_listener();
    // Groups of this thread (the host) now, which children copy unless told otherwise.
    const host_groups = [_]u32{ 27, 100 };
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.setgroups(&host_groups)));
    defer _ = sys.setgroups(&.{});
    var buffer: [4096]u8 align(8) = undefined;
    const actions = [_]abi.FdAction{ action(0, .devnull), action(1, .pipe_from_child) };
    const request = build(&buffer, &.{ "grep", "^Groups:", "/proc/self/status" }, &actions);
    request.flags |= abi.flag_uid;
    request.uid = 65534;
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    const out_actions: [*]abi.FdAction = @ptrCast(@alignCast(&buffer[@sizeOf(abi.Request)]));
    const fd = out_actions[1].out_fd;
    defer _ = sys.close(fd);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expect(drain_listener() >= 1);
    var bytes: [256]u8 = undefined;
    const n = sys.read(fd, &bytes, bytes.len);
    try testing.expectEqual(@as(i32, 0), sys.errno(n));
    // The host's "27 100" would follow the colon.
    try testing.expectEqualStrings("Groups:", std.mem.trim(u8, bytes[0..n], " \t\n"));
}

test "signal_group reaches a group whose leader was reaped, through the leader's kept pidfd; ESRCH once it is empty" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sh", "-c", "sleep 30 & exit 0" }, &.{});
    request.flags |= abi.flag_setpgid;
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    const pgid = request.pid;
    const kept = request.group_pidfd;
    var info: abi.Info = undefined;
    linux.get_info(&info);
    try testing.expectEqual(info.pidfd == 1, kept >= 0);
    defer if (kept >= 0) {
        _ = sys.close(kept);
    };
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expect(drain_listener() >= 1);
    // The leader is reaped and its slot drained: only the group is left.
    try testing.expectEqual(@as(i32, -sys.E.STALE), linux.peek(request.slot, request.generation, &record));
    try testing.expectEqual(@as(i32, 0), linux.signal_group(kept, pgid, 0));
    try testing.expectEqual(@as(i32, 0), linux.signal_group(kept, pgid, sys.SIG.KILL));
    // The sleep's new parent reaps it in its own time; then the group is empty.
    var tries: u32 = 0;
    while (tries < 1000 and linux.signal_group(kept, pgid, 0) == 0) : (tries += 1) {
        std.Thread.sleep(10 * std.time.ns_per_ms);
    }
    try testing.expectEqual(@as(i32, -sys.E.SRCH), linux.signal_group(kept, pgid, 0));
    try testing.expectEqual(@as(i32, -sys.E.INVAL), linux.signal_group(kept, 0, 0));
}

test "a FIFO without a reader fails at once with ENXIO in the open step; without a writer it opens for reading" {
    try open_listener();
    var path_buffer: [64]u8 = undefined;
    const path = try std.fmt.bufPrintZ(&path_buffer, "/tmp/ph-zig-fifo-{d}", .{sys.getpid()});
    _ = std.os.linux.unlink(path);
    try testing.expectEqual(@as(usize, 0), std.os.linux.mknodat(std.os.linux.AT.FDCWD, path, std.os.linux.S.IFIFO | 0o600, 0));
    defer _ = std.os.linux.unlink(path);
    var buffer: [4096]u8 align(8) = undefined;
    var actions = [_]abi.FdAction{action(1, .file)};
    actions[0].open_flags = sys.O.WRONLY;
    var request = build(&buffer, &.{"true"}, &actions);
    const out_actions: [*]abi.FdAction = @ptrCast(@alignCast(&buffer[@sizeOf(abi.Request)]));
    out_actions[0].path_off = append_string(&buffer, request, path);
    try testing.expectEqual(@as(i32, -6), linux.spawn(request, request.buffer_len)); // ENXIO
    try testing.expectEqual(abi.Step.fd_open, request.err_step);
    try testing.expectEqual(@as(u32, 0), request.err_index);

    actions[0] = action(0, .file);
    actions[0].open_flags = sys.O.RDONLY;
    request = build(&buffer, &.{ "sh", "-c", "cat; exit 7" }, &actions);
    out_actions[0].path_off = append_string(&buffer, request, path);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    var record: abi.ExitRecord = undefined;
    // cat reads EOF at once: no writer ever came.
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expectEqual(@as(i32, 7), record.value);
    try testing.expect(drain_listener() >= 1);
}

test "a pty child: a session leader whose stdin, stdout and stderr are its terminal, of the size asked" {
    try open_listener();
    var terminal: abi.Pty = undefined;
    try testing.expectEqual(@as(i32, 0), pty.open(120, 40, false, &terminal));
    defer for ([_]i32{ terminal.master_read, terminal.master_write, terminal.control }) |fd| {
        _ = sys.close(fd);
    };
    var actions: [3]abi.FdAction = undefined;
    for (&actions, 0..) |*a, target| {
        a.* = action(@intCast(target), .dup);
        a.fd = terminal.slave;
    }
    var buffer: [4096]u8 align(8) = undefined;
    const script = "test -t 0 && test -t 1 && test -t 2 && stty size && ps -o sid= -o tpgid= -p $$";
    const request = build(&buffer, &.{ "sh", "-c", script }, &actions);
    request.flags = abi.flag_setsid | abi.flag_controlling_tty;
    const rc = linux.spawn(request, request.buffer_len);
    _ = sys.close(terminal.slave);
    try testing.expectEqual(@as(i32, 0), rc);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expect(drain_listener() >= 1);
    try testing.expectEqual(abi.ExitKind.exited, record.kind);
    try testing.expectEqual(@as(i32, 0), record.value);

    // Everything the child wrote is there; then EIO, as every slave is closed.
    var out: [256]u8 = undefined;
    var length: usize = 0;
    while (length < out.len) {
        const n = sys.read(terminal.master_read, out[length..].ptr, out.len - length);
        if (sys.errno(n) == sys.E.IO) break;
        try testing.expectEqual(@as(i32, 0), sys.errno(n));
        if (n == 0) break;
        length += n;
    }
    var lines = std.mem.tokenizeAny(u8, out[0..length], "\r\n");
    try testing.expectEqualStrings("40 120", lines.next().?);
    // The session's id and the terminal's foreground group are both the child's pid.
    var ids = std.mem.tokenizeScalar(u8, lines.next().?, ' ');
    try testing.expectEqual(record.pid, try std.fmt.parseInt(i32, ids.next().?, 10));
    try testing.expectEqual(record.pid, try std.fmt.parseInt(i32, ids.next().?, 10));
}

test "a controlling terminal without setsid is refused as a malformed request" {
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{"true"}, &.{});
    request.flags = abi.flag_controlling_tty;
    try testing.expectEqual(@as(i32, -sys.E.INVAL), linux.spawn(request, request.buffer_len));
    try testing.expectEqual(abi.Step.request, request.err_step);
}

test "pty sizes outside 1..65535 are refused; resize reaches the terminal" {
    var terminal: abi.Pty = undefined;
    try testing.expectEqual(@as(i32, -sys.E.INVAL), pty.open(0, 24, false, &terminal));
    try testing.expectEqual(@as(i32, -sys.E.INVAL), pty.open(80, 65536, false, &terminal));
    try testing.expectEqual(@as(i32, 0), pty.open(80, 24, true, &terminal));
    defer for ([_]i32{ terminal.master_read, terminal.master_write, terminal.control, terminal.slave }) |fd| {
        _ = sys.close(fd);
    };
    try testing.expectEqual(@as(i32, 0), pty.resize(terminal.control, 100, 30));
    var size: [4]u16 = undefined;
    const TIOCGWINSZ: u32 = 0x5413;
    try testing.expectEqual(@as(i32, 0), sys.errno(sys.ioctl(terminal.slave, TIOCGWINSZ, @intFromPtr(&size))));
    try testing.expectEqual([2]u16{ 30, 100 }, size[0..2].*);
    try testing.expectEqual(@as(i32, -sys.E.BADF), pty.resize(-1, 100, 30));
}

/// The pids listed in `<dir>/cgroup.procs` (0 when the cgroup is gone).
fn cgroup_members(dir: []const u8) !usize {
    const cgroup = @import("common/cgroup.zig");
    var path_buffer: [1200]u8 = undefined;
    const path = try std.fmt.bufPrintZ(&path_buffer, "{s}/cgroup.procs", .{dir});
    var content: [4096]u8 = undefined;
    const text = cgroup.read_small(path.ptr, &content) orelse return 0;
    return std.mem.count(u8, text, "\n");
}

test "flag_cgroup: the child runs in a cgroup of its own; a tree SIGKILL takes a double-forked descendant too" {
    const cgroup = @import("common/cgroup.zig");
    try open_listener();
    var buffer: [4096]u8 align(8) = undefined;
    const request = build(&buffer, &.{ "sh", "-c", "(sleep 30 &); exec sleep 30" }, &.{});
    request.flags |= abi.flag_cgroup;
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    var info: abi.Info = undefined;
    linux.get_info(&info);
    if (info.tree != .cgroup) {
        // No cgroup v2, no clone3 or no pidfds here (PH_FAULT): the descendants walk's tests cover it.
        _ = linux.signal(request.slot, request.generation, sys.SIG.KILL, 0);
        var gone: abi.ExitRecord = undefined;
        _ = linux.wait_sync(request.slot, request.generation, &gone, 10_000);
        _ = drain_listener();
        return error.SkipZigTest;
    }
    var proc_buffer: [64]u8 = undefined;
    const proc_path = try std.fmt.bufPrintZ(&proc_buffer, "/proc/{d}/cgroup", .{request.pid});
    var content: [4096]u8 = undefined;
    const line = cgroup.cgroup_line(cgroup.read_small(proc_path.ptr, &content).?).?;
    var name_buffer: [24]u8 = undefined;
    const number = @import("common/state.zig").g.slots[request.slot].cgroup;
    const name = cgroup.name(&name_buffer, number, 0);
    const relative: [*:0]const u8 = @ptrCast(&cgroup.shared().relative);
    try testing.expect(std.mem.startsWith(u8, line, std.mem.span(relative)));
    try testing.expect(std.mem.endsWith(u8, line, name));
    var dir_buffer: [1100]u8 = undefined;
    const base: [*:0]const u8 = @ptrCast(&cgroup.shared().path);
    const dir = try std.fmt.bufPrint(&dir_buffer, "{s}/{s}", .{ std.mem.span(base), name });
    // The child and the sleep its subshell left behind (its parent exited: not a descendant).
    // Once the child has exec'd its own sleep, the subshell (which sh waited for) is gone;
    // before that the cgroup also holds the subshell, so count only then.
    var comm_buffer: [64]u8 = undefined;
    const comm_path = try std.fmt.bufPrintZ(&comm_buffer, "/proc/{d}/comm", .{request.pid});
    var tries: u32 = 0;
    while (tries < 200) : (tries += 1) {
        var comm: [64]u8 = undefined;
        const exec_done = if (cgroup.read_small(comm_path.ptr, &comm)) |text| std.mem.startsWith(u8, text, "sleep") else false;
        if (exec_done and try cgroup_members(dir) == 2) break;
        std.Thread.sleep(10 * std.time.ns_per_ms);
    }
    try testing.expectEqual(@as(usize, 2), try cgroup_members(dir));
    try testing.expect(linux.signal_tree(request.slot, request.generation, sys.SIG.KILL) > 0);
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    try testing.expectEqual(abi.ExitKind.killed, record.kind);
    _ = drain_listener();
    tries = 0;
    while (tries < 200 and try cgroup_members(dir) > 0) : (tries += 1) std.Thread.sleep(10 * std.time.ns_per_ms);
    try testing.expectEqual(@as(usize, 0), try cgroup_members(dir));
}
