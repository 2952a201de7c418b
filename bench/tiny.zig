//! The benchmark's child: a static, libc-free program so that exec and dynamic loading do
//! not drown the spawner's own cost.
//!   tiny            exit 0 at once
//!   tiny stamp      write CLOCK_MONOTONIC nanoseconds to stdout, then exit
//!   tiny until NS [FILE I]  sleep until CLOCK_MONOTONIC reaches NS; store the time it woke
//!                           as a u64 in slot I of FILE (mapped before sleeping), then exit
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
        // The stamp slot is mapped before sleeping, so that after waking the child only reads
        // the clock, stores, and exits: no file lock shared by thousands of waking children.
        const slot: ?*u64 = if (argv.len > 4) map_slot(argv[3], std.mem.span(argv[4])) else null;
        const ts = linux.timespec{ .sec = @intCast(target / 1_000_000_000), .nsec = @intCast(target % 1_000_000_000) };
        while (true) {
            const rc = linux.clock_nanosleep(.MONOTONIC, .{ .ABSTIME = true }, &ts, null);
            if (rc == 0) break;
        }
        if (slot) |s| s.* = monotonic_ns();
    }
}

fn monotonic_ns() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

/// Maps slot `index` (8 bytes) of the stamp file `path`, which the benchmark sized beforehand.
fn map_slot(path: [*:0]const u8, index_text: []const u8) ?*u64 {
    const index = std.fmt.parseInt(usize, index_text, 10) catch return null;
    const fd_rc = linux.open(path, .{ .ACCMODE = .RDWR }, 0);
    if (linux.E.init(fd_rc) != .SUCCESS) return null;
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    const page_size = std.heap.page_size_min;
    const offset = index * 8;
    const page_offset = offset - offset % page_size;
    const protection = linux.PROT.READ | linux.PROT.WRITE;
    const rc = linux.mmap(null, page_size, protection, .{ .TYPE = .SHARED }, fd, @intCast(page_offset));
    if (linux.E.init(rc) != .SUCCESS) return null;
    return @ptrFromInt(rc + offset % page_size);
}
