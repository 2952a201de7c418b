//! A Windows console program for the tests under Wine (tests/windows/): each mode does one
//! observable thing, so a test can check what the runtime's spawn API passed to the child.
//!   exit N         exits with code N
//!   echo           copies stdin to stdout until end of file, then exits 0
//!   bytes N        writes N bytes (i % 251) to stdout and "err:" + N bytes (i % 13) to stderr
//!   env NAME       writes the value of NAME to stdout; exits 2 if it is not set
//!   cwd            writes the current directory to stdout
//!   sleep MS       sleeps MS milliseconds, then exits 0
//!   alive PID      exits 0 if process PID is running, 1 if it has exited or does not exist
//! Build: zig build-exe -O ReleaseSmall -target x86_64-windows-gnu child.zig

const std = @import("std");
const windows = std.os.windows;

const process_query_limited_information: windows.DWORD = 0x1000;
const still_active: windows.DWORD = 259;

extern "kernel32" fn OpenProcess(access: windows.DWORD, inherit: windows.BOOL, pid: windows.DWORD) callconv(.winapi) ?windows.HANDLE;
extern "kernel32" fn GetExitCodeProcess(process: windows.HANDLE, code: *windows.DWORD) callconv(.winapi) windows.BOOL;

pub fn main() !u8 {
    var arena_state = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const args = try std.process.argsAlloc(arena);
    if (args.len < 2) return usage();
    const mode = args[1];
    const operand: []const u8 = if (args.len > 2) args[2] else "";
    if (std.mem.eql(u8, mode, "exit")) return exitWith(operand);
    if (std.mem.eql(u8, mode, "echo")) return echo();
    if (std.mem.eql(u8, mode, "bytes")) return bytes(arena, try parse(usize, operand));
    if (std.mem.eql(u8, mode, "env")) return env(arena, operand);
    if (std.mem.eql(u8, mode, "cwd")) return cwd(arena);
    if (std.mem.eql(u8, mode, "sleep")) {
        std.Thread.sleep(try parse(u64, operand) * std.time.ns_per_ms);
        return 0;
    }
    if (std.mem.eql(u8, mode, "alive")) return alive(try parse(u32, operand));
    return usage();
}

fn usage() u8 {
    std.fs.File.stderr().writeAll("usage: child (exit N | echo | bytes N | env NAME | cwd | sleep MS | alive PID)\n") catch {};
    return 64;
}

fn parse(comptime T: type, text: []const u8) !T {
    return std.fmt.parseInt(T, text, 10);
}

/// Exits with any 32-bit code (main's u8 would truncate it).
fn exitWith(text: []const u8) noreturn {
    const code = parse(u32, text) catch std.process.exit(usage());
    windows.kernel32.ExitProcess(code);
}

fn echo() !u8 {
    const stdin = std.fs.File.stdin();
    const stdout = std.fs.File.stdout();
    var buffer: [65536]u8 = undefined;
    while (true) {
        const read_bytes = try stdin.read(&buffer);
        if (read_bytes == 0) return 0;
        try stdout.writeAll(buffer[0..read_bytes]);
    }
}

fn bytes(arena: std.mem.Allocator, count: usize) !u8 {
    const out = try arena.alloc(u8, count);
    for (out, 0..) |*byte, i| byte.* = @intCast(i % 251);
    const err = try arena.alloc(u8, count + 4);
    @memcpy(err[0..4], "err:");
    for (err[4..], 0..) |*byte, i| byte.* = @intCast(i % 13);
    try std.fs.File.stdout().writeAll(out);
    try std.fs.File.stderr().writeAll(err);
    return 0;
}

fn env(arena: std.mem.Allocator, name: []const u8) !u8 {
    const value = std.process.getEnvVarOwned(arena, name) catch |e| switch (e) {
        error.EnvironmentVariableNotFound => return 2,
        else => return e,
    };
    try std.fs.File.stdout().writeAll(value);
    return 0;
}

fn cwd(arena: std.mem.Allocator) !u8 {
    const path = try std.process.getCwdAlloc(arena);
    try std.fs.File.stdout().writeAll(path);
    return 0;
}

fn alive(pid: u32) u8 {
    const handle = OpenProcess(process_query_limited_information, windows.FALSE, pid) orelse return 1;
    defer windows.CloseHandle(handle);
    var code: windows.DWORD = 0;
    if (GetExitCodeProcess(handle, &code) == windows.FALSE) return 1;
    return if (code == still_active) 0 else 1;
}
