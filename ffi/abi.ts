/**
 * Offsets and constants of the C structs in `zig/src/abi.zig`. The Zig side checks the sizes
 * at comptime; `ph_abi_version` guards against a library built from other sources.
 *
 * @module
 */

/** Must equal `abi_version` in zig/src/abi.zig. */
export const ABI_VERSION = 11;
/** `abi.none`: an absent offset or index. */
export const NONE = 0xffff_ffff;
/** Most descriptors one spawn may set up. */
export const FD_ACTIONS_MAX = 64;

/** `struct ph_request`: 144 bytes. */
export const Request = {
  size: 144,
  buffer_len: 0,
  argc: 4,
  envc: 8,
  fd_count: 12,
  flags: 16,
  listener: 20,
  strings_off: 24,
  strings_len: 28,
  file_off: 32,
  search_path_off: 36,
  cwd_off: 40,
  pointers_off: 44,
  kill_on_exit_signal: 48,
  pdeath_signal: 52,
  pgid: 56,
  umask: 60,
  uid: 64,
  gid: 68,
  groups_off: 72,
  groups_count: 76,
  inherit_fds_off: 80,
  inherit_fds_count: 84,
  rlimits_off: 88,
  rlimits_count: 92,
  ignore_mask: 96,
  environ_addr: 104,
  pid: 112,
  pidfd: 116,
  slot: 120,
  generation: 124,
  err_errno: 128,
  err_step: 132,
  err_index: 136,
  /** A second pidfd of a child that leads its own process group, owned by the caller; or -1. */
  group_pidfd: 140,
} as const;

/** `struct ph_rlimit`: 24 bytes. */
export const RlimitEntry = {
  size: 24,
  resource: 0,
  cur: 8,
  max: 16,
} as const;

/** `ph_signal` flags. */
export const SIGNAL_GROUP = 1;

/** Request flags. */
export const RequestFlag = {
  setsid: 1 << 0,
  setpgid: 1 << 1,
  umask: 1 << 2,
  uid: 1 << 3,
  gid: 1 << 4,
  groups: 1 << 5,
  inheritFds: 1 << 6,
  hostEnviron: 1 << 7,
} as const;

/** `struct ph_fd_action`: 32 bytes. */
export const FdAction = {
  size: 32,
  target: 0,
  kind: 4,
  fd: 8,
  open_flags: 12,
  mode: 16,
  path_off: 20,
  out_fd: 24,
} as const;

/** `enum FdKind`. */
export const FdKind = {
  inherit: 0,
  devnull: 1,
  pipeToChild: 2,
  pipeFromChild: 3,
  dup: 4,
  file: 5,
  close: 6,
  copy: 7,
} as const;

/** `struct ph_exit`: 48 bytes. */
export const ExitRecord = {
  size: 48,
  slot: 0,
  generation: 4,
  pid: 8,
  kind: 12,
  value: 16,
  /** After a lost exit, the pidfd the caller now owns; else -1. */
  pidfd: 20,
  user_cpu_us: 24,
  system_cpu_us: 32,
  max_rss_kib: 40,
} as const;

/** `enum ExitKind`. */
export const ExitKind = {
  running: 0,
  exited: 1,
  killed: 2,
  dumped: 3,
  lost: -1,
} as const;

/** `struct ph_info`: 36 bytes. */
export const Info = {
  size: 44,
  abi_version: 0,
  slots_max: 4,
  reaper_pid: 8,
  clone_mode: 12,
  pidfd: 16,
  reapers_started: 20,
  slots_in_use: 24,
  fd_table: 28,
  poll_window_us: 32,
  /** `enum Backend`: 1 reaper, 2 helper. */
  backend: 36,
  /** The errno that made the reaper fail to start, so the helper runs instead; 0 if none. */
  fallback_errno: 40,
} as const;

/** `enum Backend` (`ph_init`, `Info.backend`). */
export const Backend = { auto: 0, reaper: 1, helper: 2 } as const;

/** `enum Step`: where a spawn failed, by the name errors report. */
export const STEP_NAMES: readonly string[] = [
  "none",
  "request",
  "pipe",
  "clone",
  "dup2",
  "open",
  "chdir",
  "setsid",
  "setpgid",
  "umask",
  "setrlimit",
  "setgroups",
  "setgid",
  "setuid",
  "sigaction",
  "close_range",
  "execve",
  "reaper",
  "slots",
  "prctl",
  "setpriority",
  "sched_setaffinity",
  "unshare",
];
