//! The C ABI exported to TypeScript. Every export returns 0 or a count on success and
//! `-errno` on failure; details of a failed spawn are written into the request.
//! `zig build bindings` generates `ffi/symbols.ts` from the `ph_*` functions here.

const std = @import("std");
const builtin = @import("builtin");
const abi = @import("abi.zig");
const sys = @import("sys/os.zig").sys;

const backend_impl = switch (builtin.os.tag) {
    .linux, .macos, .freebsd => @import("library.zig"),
    else => @compileError("no backend for this OS yet"),
};

const pty = @import("common/pty.zig");
const portable = @import("sys/os.zig").portable;

/// uint32_t ph_abi_version(void)
pub export fn ph_abi_version() u32 {
    return abi.abi_version;
}

/// int32_t ph_init(uint32_t backend, const uint8_t *helper_path, size_t len): which backend
/// (`abi.Backend`) and the helper executable's path; before the first spawn. -EBUSY after it.
pub export fn ph_init(backend: u32, helper_path: [*]const u8, len: usize) i32 {
    return backend_impl.init(@enumFromInt(backend), helper_path[0..len]);
}

/// void ph_info(struct ph_info *out)
pub export fn ph_info(out: *abi.Info) void {
    backend_impl.get_info(out);
}

/// int32_t ph_listener_open(uint32_t nonblocking_read)
pub export fn ph_listener_open(nonblocking_read: u32) i32 {
    return backend_impl.listener_open(nonblocking_read != 0);
}

/// int32_t ph_listener_fd(uint32_t listener)
pub export fn ph_listener_fd(listener: u32) i32 {
    return backend_impl.listener_fd(listener);
}

/// int32_t ph_listener_close(uint32_t listener)
pub export fn ph_listener_close(listener: u32) i32 {
    return backend_impl.listener_close(listener);
}

/// int32_t ph_spawn(struct ph_request *request, size_t len)
pub export fn ph_spawn(request: *abi.Request, len: usize) i32 {
    return backend_impl.spawn(request, len);
}

/// int32_t ph_spawn_start(struct ph_request *request, size_t len): 1 when the spawn is queued
/// (the request must stay allocated: ph_spawn_finish writes the answer into it), else as ph_spawn.
pub export fn ph_spawn_start(request: *abi.Request, len: usize) i32 {
    return backend_impl.spawn_start(request, len);
}

/// int32_t ph_spawn_finish(struct ph_request *request): -EAGAIN until the queued spawn is
/// answered (its listener is woken then), then 0 or -errno as ph_spawn.
pub export fn ph_spawn_finish(request: *abi.Request) i32 {
    return backend_impl.spawn_finish(request);
}

/// int32_t ph_drain(uint32_t listener, struct ph_exit *out, uint32_t max)
pub export fn ph_drain(listener: u32, out: [*]abi.ExitRecord, max: u32) i32 {
    return backend_impl.drain(listener, out[0..max]);
}

/// int32_t ph_peek(uint32_t slot, uint32_t generation, struct ph_exit *out)
pub export fn ph_peek(slot: u32, generation: u32, out: *abi.ExitRecord) i32 {
    return backend_impl.peek(slot, generation, out);
}

/// int32_t ph_wait_sync(uint32_t slot, uint32_t generation, struct ph_exit *out, int32_t timeout_ms)
pub export fn ph_wait_sync(slot: u32, generation: u32, out: *abi.ExitRecord, timeout_ms: i32) i32 {
    return backend_impl.wait_sync(slot, generation, out, timeout_ms);
}

/// int32_t ph_signal(uint32_t slot, uint32_t generation, int32_t sig, uint32_t flags)
pub export fn ph_signal(slot: u32, generation: u32, sig: i32, flags: u32) i32 {
    return backend_impl.signal(slot, generation, sig, flags);
}

/// int32_t ph_signal_tree(uint32_t slot, uint32_t generation, int32_t sig): the child and its
/// descendants; the count signalled, or -errno.
pub export fn ph_signal_tree(slot: u32, generation: u32, sig: i32) i32 {
    return backend_impl.signal_tree(slot, generation, sig);
}

/// int32_t ph_signal_group(int32_t pidfd, int32_t pgid, int32_t sig)
pub export fn ph_signal_group(pidfd: i32, pgid: i32, sig: i32) i32 {
    return backend_impl.signal_group(pidfd, pgid, sig);
}

/// void ph_ignored_signals(uint64_t *out)
pub export fn ph_ignored_signals(out: *u64) void {
    out.* = backend_impl.ignored_signals();
}

/// void ph_clock_monotonic(uint64_t *out_ns): the clock children stamp with, for benchmarks.
pub export fn ph_clock_monotonic(out_ns: *u64) void {
    out_ns.* = sys.clock_monotonic_ns();
}

/// int32_t ph_poll(struct pollfd *fds, uint32_t count, int32_t timeout_ms)
pub export fn ph_poll(fds: [*]sys.PollFd, count: u32, timeout_ms: i32) i32 {
    return backend_impl.poll(fds, count, timeout_ms);
}

/// int32_t ph_read(int32_t fd, uint8_t *buf, size_t len)
pub export fn ph_read(fd: i32, buf: [*]u8, len: usize) i32 {
    return backend_impl.read(fd, buf, len);
}

/// int32_t ph_write(int32_t fd, const uint8_t *buf, size_t len)
pub export fn ph_write(fd: i32, buf: [*]const u8, len: usize) i32 {
    return backend_impl.write(fd, buf, len);
}

/// int32_t ph_check_reaper(void)
pub export fn ph_check_reaper() i32 {
    return backend_impl.check_reaper();
}

/// int32_t ph_pidfd_export(uint32_t slot, uint32_t generation)
pub export fn ph_pidfd_export(slot: u32, generation: u32) i32 {
    return backend_impl.pidfd_export(slot, generation);
}

/// int32_t ph_close(int32_t fd)
pub export fn ph_close(fd: i32) i32 {
    return backend_impl.close_fd(fd);
}

/// int32_t ph_pipe_grow(int32_t fd): the pipe's new size, or -errno (-EAGAIN: over budget).
pub export fn ph_pipe_grow(fd: i32) i32 {
    return backend_impl.pipe_grow(fd);
}

/// int32_t ph_pty_open(uint32_t cols, uint32_t rows, uint32_t nonblocking, struct ph_pty *out):
/// a pseudo-terminal of that size; 0 or -errno.
pub export fn ph_pty_open(cols: u32, rows: u32, nonblocking: u32, out: *abi.Pty) i32 {
    return pty.open(cols, rows, nonblocking != 0, out);
}

/// int32_t ph_pty_resize(int32_t fd, uint32_t cols, uint32_t rows): TIOCSWINSZ; 0 or -errno.
pub export fn ph_pty_resize(fd: i32, cols: u32, rows: u32) i32 {
    return pty.resize(fd, cols, rows);
}

test {
    _ = @import("common/pid_table.zig");
    _ = @import("common/cgroup.zig");
    _ = @import("common/spin.zig");
    _ = @import("common/owner.zig");
    _ = @import("spawn_test.zig");
    _ = @import("contract_test.zig");
}
