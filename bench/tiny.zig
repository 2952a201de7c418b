//! The benchmark's child: a static, libc-free program so that exec and dynamic loading do
//! not drown the spawner's own cost.
//!   tiny            exit 0 at once
//!   tiny stamp      write CLOCK_MONOTONIC nanoseconds to stdout, then exit
//!   tiny until NS           sleep until CLOCK_MONOTONIC reaches NS, then exit
//!   tiny await FILE I NS    wait until the word at offset 0 of FILE is nonzero (a futex; at
//!                           most until CLOCK_MONOTONIC reaches NS), then store the time in
//!                           slot I + 1 and exit: every child wakes when the benchmark says
//!   tiny go FILE            set that word and wake every child waiting on it
const std = @import("std");
const linux = std.os.linux;

pub fn main() void {
    const argv = std.os.argv;
    if (argv.len < 2) return;
    const mode = std.mem.span(argv[1]);
    if (std.mem.eql(u8, mode, "stamp")) {
        var buf: [32]u8 = undefined;
        const text = std.fmt.bufPrint(&buf, "{d}\n", .{monotonic_ns()}) catch return;
        _ = linux.write(1, text.ptr, text.len);
    } else if (std.mem.eql(u8, mode, "until") and argv.len > 2) {
        const target = std.fmt.parseInt(u64, std.mem.span(argv[2]), 10) catch return;
        const ts = timespec_of(target);
        while (true) {
            const rc = linux.clock_nanosleep(.MONOTONIC, .{ .ABSTIME = true }, &ts, null);
            if (rc == 0) break;
        }
    } else if (std.mem.eql(u8, mode, "await") and argv.len > 4) {
        const index = std.fmt.parseInt(usize, std.mem.span(argv[3]), 10) catch return;
        const deadline = std.fmt.parseInt(u64, std.mem.span(argv[4]), 10) catch return;
        const words = map_words(argv[2], 8 * (index + 2)) orelse return;
        const go: *u32 = @ptrCast(words);
        const ts = timespec_of(deadline);
        while (@atomicLoad(u32, go, .acquire) == 0) {
            // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time; shared (not private),
            // because the word is in a file every child maps.
            const rc = linux.syscall6(.futex, @intFromPtr(go), futex_wait_bitset, 0, @intFromPtr(&ts), 0, bitset_any);
            if (linux.E.init(rc) == .TIMEDOUT) return;
        }
        words[index + 1] = monotonic_ns();
    } else if (std.mem.eql(u8, mode, "go") and argv.len > 2) {
        const words = map_words(argv[2], 8) orelse return;
        const go: *u32 = @ptrCast(words);
        @atomicStore(u32, go, 1, .release);
        _ = linux.syscall6(.futex, @intFromPtr(go), futex_wake, std.math.maxInt(i32), 0, 0, 0);
    }
}

const futex_wake = 1;
const futex_wait_bitset = 9;
const bitset_any = 0xffff_ffff;

/// Maps the first `len` bytes of `path` (MAP_SHARED), as u64 words.
fn map_words(path: [*:0]const u8, len: usize) ?[*]u64 {
    const fd_rc = linux.open(path, .{ .ACCMODE = .RDWR }, 0);
    if (linux.E.init(fd_rc) != .SUCCESS) return null;
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    const rc = linux.mmap(null, len, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
    if (linux.E.init(rc) != .SUCCESS) return null;
    return @ptrFromInt(rc);
}

fn timespec_of(ns: u64) linux.timespec {
    return .{ .sec = @intCast(ns / 1_000_000_000), .nsec = @intCast(ns % 1_000_000_000) };
}

fn monotonic_ns() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}
