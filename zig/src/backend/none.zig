//! The backend contract where no backend is built yet (macOS and FreeBSD, issue 17): nothing
//! owns children, so a spawn fails with ENOSYS at the `reaper` step and `ph_info` reports
//! backend 0. Everything else in the C ABI (listeners, rings, drain, peek, wait_sync, I/O) is
//! common/'s real code, compiled for these systems.

const abi = @import("../abi.zig");
const sys = @import("../sys/os.zig").sys;
const ChildPlan = @import("../common/state.zig").ChildPlan;

pub const backend: abi.Backend = .auto;

pub fn start_locked() i32 {
    return -sys.E.NOSYS;
}

pub fn alive_locked() bool {
    return false;
}

pub fn exited() bool {
    return true;
}

pub fn current_pid() i32 {
    return 0;
}

pub fn submit_locked(plan: *ChildPlan) void {
    plan.request.err_errno = sys.E.NOSYS;
    plan.request.err_step = .reaper;
}

pub fn listener_opened(index: u32, write_fd: i32) void {
    _ = .{ index, write_fd };
}

pub fn listener_closed(index: u32) void {
    _ = index;
}
