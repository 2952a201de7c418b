//! The messages between the library and the helper executable: one SOCK_SEQPACKET socket on
//! Linux; a SOCK_STREAM socket with exact-length reads where the helper is the portable one
//! (macOS has no SOCK_SEQPACKET for AF_UNIX), which the fixed size of `HelperMessage` allows.

const std = @import("std");
const abi = @import("../../abi.zig");
const sys = @import("../../sys/os.zig").sys;

const CloneMode = @import("../../common/state.zig").CloneMode;
const PidfdMode = @import("../../common/state.zig").PidfdMode;
const FdTable = @import("../../common/state.zig").FdTable;

const exits_zig = @import("../../common/exits.zig");
const listener_open = exits_zig.listener_open;
const state_zig = @import("../../common/state.zig");
const groups_max = state_zig.groups_max;
const library_zig = @import("../../library.zig");
const init = library_zig.init;
const spawn = library_zig.spawn;

/// What a message asks or answers. (4 was `listener_close`: a listener is never closed, its
/// pipe passes to the next realm.)
pub const HelperOp = enum(u32) { init = 1, hello = 2, listener_open = 3, spawn = 5, spawned = 6, _ };
/// One message on the helper's socket, either way. Requests carry the host's attribute
/// changes here, and their buffer in the region's request area.
pub const HelperMessage = extern struct {
    op: HelperOp,
    /// The listener (listener_open) or slot (spawn).
    index: u32,
    /// init: the host's pid; hello: the helper's; spawned: the child's.
    pid: i32,
    request_len: u32,
    /// Where the host's environment was copied in the request area, or `abi.none`.
    environ_off: u32,
    environ_count: u32,
    /// 1 when the first descriptor is the host's working directory.
    has_cwd: u32,
    err_errno: i32,
    err_step: abi.Step,
    err_index: u32,
    clone_mode: CloneMode,
    pidfd_mode: PidfdMode,
    fd_table: FdTable,
    rlimit_mask: u32,
    /// `abi.none` when the groups stay.
    groups_count: u32,
    groups_dropped: u32,
    has_gid: u32,
    has_uid: u32,
    has_priority: u32,
    has_affinity: u32,
    priority: i32,
    gids: [3]u32,
    uids: [3]u32,
    rlimits: [sys.rlimit_count]sys.Rlimit,
    affinity: sys.CpuMask,
    groups: [groups_max]u32,
    /// init: the library's build id; a refusing hello: the helper's.
    build_id: u32,
};

/// How long the library waits for the helper's hello: it maps the region and answers at
/// once, so a longer silence is a program that is not a helper.
pub const hello_timeout_ms = 10_000;

pub const build_id = @import("../../common/region.zig").build_id;

pub fn send_message(sock: i32, msg: *const HelperMessage, fds: []const i32) usize {
    return sys.send_with_fds(sock, std.mem.asBytes(msg), fds);
}

pub const RequestFailure = struct { errno: i32, step: abi.Step = .request, index: u32 = abi.none };
