//! The backend contract: the same spawn, exit, signal, pipe and failure cases against each
//! backend that runs here. The reaper runs in the test process itself; the helper in a forked
//! copy of it (a fork chooses its backend again), which reports through its exit code.

const std = @import("std");
const abi = @import("abi.zig");
const linux = @import("library.zig");
const sys = @import("sys/linux.zig");
const testing = std.testing;
const spawn_test = @import("spawn_test.zig");

const build = spawn_test.build_request;

fn pipe_action(target: i32) abi.FdAction {
    return spawn_test.action(target, .pipe_from_child);
}

/// Waits for the child's exit and delivers its record through the listener.
fn wait_and_drain(listener: u32, request: *const abi.Request) !abi.ExitRecord {
    var record: abi.ExitRecord = undefined;
    try testing.expectEqual(@as(i32, 1), linux.wait_sync(request.slot, request.generation, &record, 10_000));
    var drained: [16]abi.ExitRecord = undefined;
    var tries: u32 = 0;
    while (tries < 2000) : (tries += 1) {
        const count = linux.drain(listener, &drained);
        try testing.expect(count >= 0);
        if (count > 0) {
            try testing.expectEqual(request.slot, drained[0].slot);
            break;
        }
        std.Thread.sleep(std.time.ns_per_ms);
    }
    try testing.expect(tries < 2000);
    return record;
}

/// Every case, against whichever backend this process runs.
fn contract(backend: abi.Backend) !void {
    const opened = linux.listener_open(false);
    try testing.expect(opened >= 0);
    const listener: u32 = @intCast(opened);
    var buffer: [4096]u8 align(8) = undefined;

    // An exit code, through wait_sync and the listener's ring.
    var request = build(&buffer, &.{ "sh", "-c", "exit 3" }, &.{}, listener);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    var record = try wait_and_drain(listener, request);
    try testing.expectEqual(abi.ExitKind.exited, record.kind);
    try testing.expectEqual(@as(i32, 3), record.value);
    var info: abi.Info = undefined;
    linux.get_info(&info);
    try testing.expectEqual(backend, info.backend);

    // A running child: invisible to the host's waitid(P_ALL), signalled, then stale.
    request = build(&buffer, &.{ "sleep", "5" }, &.{}, listener);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    var siginfo = std.mem.zeroes(sys.SigInfo);
    const waited = sys.waitid(sys.P.ALL, 0, &siginfo, sys.W.EXITED | sys.W.NOHANG, null);
    try testing.expectEqual(@as(i32, sys.E.CHILD), sys.errno(waited));
    try testing.expectEqual(@as(i32, 0), linux.peek(request.slot, request.generation, &record));
    try testing.expectEqual(@as(i32, 0), linux.signal(request.slot, request.generation, sys.SIG.TERM, 0));
    record = try wait_and_drain(listener, request);
    try testing.expectEqual(abi.ExitKind.killed, record.kind);
    try testing.expectEqual(@as(i32, sys.SIG.TERM), record.value);
    try testing.expectEqual(@as(i32, -sys.E.STALE), linux.signal(request.slot, request.generation, sys.SIG.KILL, 0));

    // A pipe: the child's stdout reaches the host's end.
    request = build(&buffer, &.{ "sh", "-c", "echo contract" }, &.{pipe_action(1)}, listener);
    try testing.expectEqual(@as(i32, 0), linux.spawn(request, request.buffer_len));
    const actions: [*]abi.FdAction = @ptrCast(@alignCast(&buffer[@sizeOf(abi.Request)]));
    const host_end = actions[0].out_fd;
    try testing.expect(host_end > 2);
    record = try wait_and_drain(listener, request);
    try testing.expectEqual(@as(i32, 0), record.value);
    var text: [64]u8 = undefined;
    var fds = [1]sys.PollFd{.{ .fd = host_end, .events = sys.POLLIN, .revents = 0 }};
    try testing.expectEqual(@as(usize, 1), sys.poll(&fds, 1, 5000));
    const n = sys.read(host_end, &text, text.len);
    try testing.expectEqualStrings("contract\n", text[0..n]);
    _ = sys.close(host_end);

    // A failure: the step and errno, synchronously, and no slot kept.
    request = build(&buffer, &.{"/nonexistent/program"}, &.{}, listener);
    try testing.expectEqual(@as(i32, -sys.E.NOENT), linux.spawn(request, request.buffer_len));
    try testing.expectEqual(abi.Step.execve, request.err_step);
    linux.get_info(&info);
    try testing.expectEqual(@as(u32, 0), info.slots_in_use);
    try testing.expectEqual(@as(i32, 0), linux.listener_close(listener));
}

test "contract: the reaper" {
    try contract(.reaper);
}

test "contract: the helper (forced), in a forked copy of this process" {
    // The path of the helper built beside this test (zig build test sets it).
    const path = std.posix.getenv("PH_HELPER") orelse return error.SkipZigTest;
    const pid = std.os.linux.fork();
    if (pid == 0) {
        const code: u8 = if (linux.init(.helper, path) != 0) 2 else if (contract(.helper)) |_| 0 else |_| 1;
        sys.exit_group(code);
    }
    var status: u32 = 0;
    _ = std.os.linux.waitpid(@intCast(pid), &status, 0);
    try testing.expectEqual(@as(u32, 0), status);
}
