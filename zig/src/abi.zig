//! The C ABI shared with TypeScript: `zig build bindings` generates `ffi/abi.ts` from it.
//! Every struct is `extern` and its size is checked at comptime, so a field added on
//! one side without the other fails the build instead of corrupting memory.

const std = @import("std");

/// Bumped whenever any layout below changes; `ph_abi_version` returns it and the
/// TypeScript loader refuses a library whose version differs.
pub const abi_version: u32 = 18;

pub const slots_max: u32 = 1 << 16;
pub const listeners_max: u32 = 64;
pub const fd_actions_max: u32 = 64;
pub const none: u32 = 0xffff_ffff;

/// One child-side descriptor action: what `target` is in the child.
pub const FdKind = enum(u32) {
    /// The child keeps the host's descriptor `target` as it is (stdin/out/err only).
    inherit = 0,
    /// `/dev/null`, opened read-write in the child.
    devnull = 1,
    /// A new pipe; the child reads (`pipe_to_child`) or writes (`pipe_from_child`) its end
    /// and the host end is returned in `out_fd`.
    pipe_to_child = 2,
    pipe_from_child = 3,
    /// The host's descriptor `fd`, duplicated onto `target`.
    dup = 4,
    /// The file at `path_off`, opened in the child with `open_flags` and `mode`.
    file = 5,
    /// `target` is closed in the child.
    close = 6,
    /// `target` becomes a copy of the child's descriptor `fd` as set up by the other actions
    /// (`stderr: "stdout"`); applied after all of them.
    copy = 7,
    /// The host's end `fd` of another child's pipe, handed over (`stdin: child.stdout`): as
    /// `dup`, then made blocking in the child (the host's end was non-blocking, and the host
    /// closes its copy once the spawn succeeded, so the file is the child's alone).
    handover = 8,
};

pub const FdAction = extern struct {
    target: i32,
    kind: FdKind,
    fd: i32,
    open_flags: u32,
    mode: u32,
    path_off: u32,
    /// Output: the host's end of a pipe, or -1.
    out_fd: i32,
    reserved: u32,
};

pub const flag_setsid: u32 = 1 << 0;
pub const flag_setpgid: u32 = 1 << 1;
pub const flag_umask: u32 = 1 << 2;
pub const flag_uid: u32 = 1 << 3;
pub const flag_gid: u32 = 1 << 4;
pub const flag_groups: u32 = 1 << 5;
/// `inherit_fds_off` lists descriptors (u32 each) that stay open across exec.
pub const flag_inherit_fds: u32 = 1 << 6;
/// The child gets the host's environment as it is at spawn time: `*environ_addr`, libc's
/// `environ`, read when the request is served (envc must be 0).
pub const flag_host_environ: u32 = 1 << 7;
/// The child's stdin (a pty's slave) becomes its controlling terminal (TIOCSCTTY), once its
/// descriptors are in place; needs `flag_setsid`.
pub const flag_controlling_tty: u32 = 1 << 8;
/// The child starts in a cgroup of its own (cgroup v2, clone3 `CLONE_INTO_CGROUP`), so its
/// whole tree, double-forked processes included, can be signalled and killed; ignored where
/// cgroups are unavailable (`Info.cgroup_step` says why).
pub const flag_cgroup: u32 = 1 << 9;

/// Where a spawn failed; `STEP_NAMES` in the generated `ffi/abi.ts`.
pub const Step = enum(u32) {
    none = 0,
    request = 1,
    pipe = 2,
    clone = 3,
    fd_dup = 4,
    fd_open = 5,
    chdir = 6,
    setsid = 7,
    setpgid = 8,
    umask = 9,
    rlimit = 10,
    setgroups = 11,
    setgid = 12,
    setuid = 13,
    signals = 14,
    close_range = 15,
    execve = 16,
    reaper = 17,
    slots = 18,
    pdeathsig = 19,
    priority = 20,
    affinity = 21,
    /// The child's own descriptor table (`close_range` with `CLOSE_RANGE_UNSHARE`, or `unshare`).
    unshare = 22,
    /// TIOCSCTTY on the child's stdin (`flag_controlling_tty`).
    controlling_tty = 23,
    /// Starting the helper executable (the `helper` backend): its exec, or its hand-shake
    /// (EPROTO: a helper from another build than the library, or a program that is not a
    /// helper; ETIMEDOUT: no answer).
    helper = 24,
};

/// The name errors report for each step: the system call that failed.
pub fn step_syscall(step: Step) []const u8 {
    return switch (step) {
        .fd_dup => "dup2",
        .fd_open => "open",
        .rlimit => "setrlimit",
        .signals => "sigaction",
        .pdeathsig => "prctl",
        .priority => "setpriority",
        .affinity => "sched_setaffinity",
        .controlling_tty => "ioctl",
        else => @tagName(step),
    };
}

/// The spawn request: one buffer that TypeScript fills and passes by a single pointer.
/// Layout of the buffer: [Request][FdAction * fd_count][pointer area][string blob].
/// Offsets are relative to the start of the buffer.
pub const Request = extern struct {
    // Input.
    buffer_len: u32,
    argc: u32,
    envc: u32,
    fd_count: u32,
    flags: u32,
    listener: u32,
    /// Strings: argv[0..argc] then env[0..envc], each NUL-terminated, starting here.
    strings_off: u32,
    strings_len: u32,
    /// The program to execute (`execvp` rules: no slash means look in `search_path_off`).
    file_off: u32,
    /// The PATH list to search, or `none`.
    search_path_off: u32,
    /// The working directory, or `none` for the host's.
    cwd_off: u32,
    /// Room for argc + 1 + envc + 1 pointers, filled by the library.
    pointers_off: u32,
    /// Signal sent to the child by the reaper when the host exits (0: none).
    kill_on_exit_signal: i32,
    /// Signal the kernel sends the child if the reaper dies (0: none).
    pdeath_signal: i32,
    pgid: i32,
    umask: u32,
    uid: u32,
    gid: u32,
    groups_off: u32,
    groups_count: u32,
    inherit_fds_off: u32,
    inherit_fds_count: u32,
    /// `RlimitEntry` array applied in the child after the descriptors are set up.
    rlimits_off: u32,
    rlimits_count: u32,
    /// Signals (bit n-1 for signal n) the child starts with ignored; all others default.
    ignore_mask: u64,
    /// The address of the host's `environ` variable, for `flag_host_environ`.
    environ_addr: u64,

    // Output.
    pid: i32,
    pidfd: i32,
    slot: u32,
    generation: u32,
    err_errno: i32,
    err_step: Step,
    /// Which fd action failed (index), or `none`.
    err_index: u32,
    /// For a child that leads its own process group (`flag_setsid`, or `flag_setpgid` with
    /// pgid 0): a second pidfd of it, which the caller owns and closes, for `ph_signal_group`
    /// after the child's exit. -1 without pidfds (or when no descriptor was free).
    group_pidfd: i32,
};

pub const RlimitEntry = extern struct {
    resource: u32,
    reserved: u32,
    cur: u64,
    max: u64,
};

pub const rlimits_max: u32 = 16;

/// What `ph_pty_open` makes: three descriptors of one master (each owner closes its own) and
/// the slave, which the caller closes once the child has it.
pub const Pty = extern struct {
    master_read: i32,
    master_write: i32,
    /// For `ph_pty_resize`.
    control: i32,
    slave: i32,
};

/// `ph_signal` flags.
pub const signal_group: u32 = 1;

/// What `ph_drain`, `ph_peek` and `ph_wait_sync` report about one child.
pub const ExitRecord = extern struct {
    slot: u32,
    generation: u32,
    pid: i32,
    kind: ExitKind,
    /// Exit code (`exited`) or signal number (`killed`, `dumped`).
    value: i32,
    /// After a `lost` exit, the child's pidfd, which the caller owns from now on; else -1.
    pidfd: i32,
    user_cpu_us: u64,
    system_cpu_us: u64,
    max_rss_kib: u64,
};

pub const ExitKind = enum(i32) {
    running = 0,
    exited = 1,
    killed = 2,
    dumped = 3,
    /// The reaper died before it could collect the status.
    lost = -1,
    _,
};

/// How `ph_signal_tree` finds a child's tree (`Info.tree`).
pub const TreeMode = enum(u32) {
    /// No tree signals: no pidfds, or nothing spawned yet.
    none = 0,
    /// The child and every process whose chain of parents leads to it, from /proc.
    descendants = 1,
    /// For a child spawned with `flag_cgroup`: every process in its cgroup; others as
    /// `descendants`.
    cgroup = 2,
    _,
};

/// Why children get no cgroup of their own (`Info.cgroup_step`, with `Info.cgroup_errno`).
pub const CgroupStep = enum(u32) {
    /// Cgroups are used (or not tried yet).
    none = 0,
    /// No cgroup2 file system in /proc/self/mountinfo.
    mount = 1,
    /// The host's cgroup (the "0::" line of /proc/<pid>/cgroup) is missing or outside the mount.
    host_cgroup = 2,
    /// The library's directory could not be made or opened.
    mkdir = 3,
    /// clone3 is refused (ENOSYS, EPERM), so `CLONE_INTO_CGROUP` is not available.
    clone3 = 4,
    /// clone3 refused `CLONE_INTO_CGROUP` (before Linux 5.7, or the cgroup cannot take processes).
    into_cgroup = 5,
    /// No pidfds: a tree signal could not hold the cgroup's members.
    pidfd = 6,
    _,
};

/// Which backend owns the children (`ph_init`, `Info.backend`).
pub const Backend = enum(u32) {
    /// `ph_init`: the reaper, or the helper when the reaper cannot be created.
    auto = 0,
    reaper = 1,
    helper = 2,
    /// FreeBSD's process descriptors, forked by the library itself (on Linux: stand-ins).
    pdfork = 3,
    _,
};

/// Library-wide facts TypeScript reads once (`ph_info`).
pub const Info = extern struct {
    abi_version: u32,
    slots_max: u32,
    reaper_pid: i32,
    /// 1 when children are created with clone3, 2 legacy clone, 0 not yet known.
    clone_mode: u32,
    /// 1 when pidfds are available.
    pidfd: u32,
    reapers_started: u32,
    slots_in_use: u32,
    /// 1 when children copy only the descriptors they need, 2 when they copy the whole table
    /// (a kernel or filter that refuses both ways of unsharing it), 0 not yet known.
    fd_table: u32,
    /// How long the reaper polls after an event before it sleeps, in microseconds: longer
    /// while recent children were short-lived.
    poll_window_us: u32,
    /// The backend in use (`Backend`).
    backend: Backend,
    /// The errno that made the reaper fail to start, so the helper runs instead; 0 if none.
    fallback_errno: i32,
    /// What a tree signal reaches (`TreeMode`).
    tree: TreeMode,
    /// Why children get no cgroup (`CgroupStep`, `none` when they do), with its errno.
    cgroup_step: CgroupStep,
    cgroup_errno: i32,
    /// 1 when the children are private: no SIGCHLD for them, never reaped by the host's
    /// waitpid(-1). 0 only for the `pdfork` backend's Linux stand-ins.
    private: u32,
    /// The library's build id: a hash of its sources, the same in the helper it accepts.
    build_id: u32,
    /// The build id of the last helper that refused the library (another build's), 0 if none.
    helper_refused_build_id: u32,
    /// Spawns answered through the reaper's queue (`ph_spawn_start`) since the library loaded.
    spawns_queued: u32,
};

comptime {
    std.debug.assert(@sizeOf(FdAction) == 32);
    std.debug.assert(@sizeOf(Request) == 144);
    std.debug.assert(@sizeOf(RlimitEntry) == 24);
    std.debug.assert(@sizeOf(ExitRecord) == 48);
    std.debug.assert(@sizeOf(Info) == 72);
    std.debug.assert(@sizeOf(Pty) == 16);
    std.debug.assert(@offsetOf(Request, "ignore_mask") == 96);
    std.debug.assert(@offsetOf(Request, "environ_addr") == 104);
    std.debug.assert(@offsetOf(Request, "pid") == 112);
    std.debug.assert(@offsetOf(Request, "group_pidfd") == 140);
    std.debug.assert(@offsetOf(ExitRecord, "user_cpu_us") == 24);
}
