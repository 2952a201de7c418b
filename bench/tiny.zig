//! The benchmark's child: a static, libc-free program so that exec and dynamic loading do
//! not drown the spawner's own cost.
//!   tiny            exit 0 at once
//!   tiny stamp      write CLOCK_MONOTONIC nanoseconds to stdout, then exit
//!   tiny until NS [FILE]  sleep until CLOCK_MONOTONIC reaches NS; append the time it woke
//!                         (its exit, give or take a syscall) to FILE; exit
const std = @import("std");
const linux = std.os.linux;

pub fn main() void {
    const argv = std.os.argv;
    if (argv.len < 2) return;
    const mode = std.mem.span(argv[1]);
    if (std.mem.eql(u8, mode, "stamp")) {
        var ts: linux.timespec = undefined;
        _ = linux.clock_gettime(.MONOTONIC, &ts);
        const ns: u64 = @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
        var buf: [32]u8 = undefined;
        const text = std.fmt.bufPrint(&buf, "{d}\n", .{ns}) catch return;
        _ = linux.write(1, text.ptr, text.len);
    } else if (std.mem.eql(u8, mode, "until") and argv.len > 2) {
        const target = std.fmt.parseInt(u64, std.mem.span(argv[2]), 10) catch return;
        const ts = linux.timespec{ .sec = @intCast(target / 1_000_000_000), .nsec = @intCast(target % 1_000_000_000) };
        while (true) {
            const rc = linux.clock_nanosleep(.MONOTONIC, .{ .ABSTIME = true }, &ts, null);
            if (rc == 0) break;
        }
        if (argv.len > 3) {
            var now: linux.timespec = undefined;
            _ = linux.clock_gettime(.MONOTONIC, &now);
            const ns: u64 = @as(u64, @intCast(now.sec)) * 1_000_000_000 + @as(u64, @intCast(now.nsec));
            var buf: [32]u8 = undefined;
            const text = std.fmt.bufPrint(&buf, "{d}\n", .{ns}) catch return;
            const flags = linux.O{ .ACCMODE = .WRONLY, .APPEND = true, .CREAT = true };
            const fd: i32 = @intCast(linux.open(argv[3], flags, 0o644));
            if (fd >= 0) _ = linux.write(fd, text.ptr, text.len);
        }
    }
}
