/**
 * Encodes a `SpawnPlan` into the single buffer `ph_spawn` reads (layout in zig/src/abi.zig):
 * [Request][FdAction * n][pointer area][u32 lists][rlimits][strings]. One buffer per realm,
 * grown as needed.
 *
 * @module
 */
import { FdAction, NONE, Request, RequestFlag, RlimitEntry } from "../ffi/abi.ts";
import { lastHostEnvironmentList, type SpawnPlan } from "./options.ts";

const encoder = new TextEncoder();
let buffer = new Uint8Array(16 * 1024);
let bufferView = new DataView(buffer.buffer);

/** The encoded request: `bytes` is valid until the next `encodeRequest` call. */
export interface EncodedRequest {
  bytes: Uint8Array;
  view: DataView;
  length: number;
  actionsOffset: number;
}

const align8 = (n: number) => (n + 7) & ~7;

/** The last environment list encoded, and its bytes ("KEY=value\0" each). */
let lastEnv: { list: readonly string[]; bytes: Uint8Array } = { list: [], bytes: new Uint8Array(0) };

/** Encodes `plan` for `listener`; `ignoreMask` lists signals the child starts with ignored. */
export function encodeRequest(plan: SpawnPlan, listener: number, ignoreMask: bigint): EncodedRequest {
  const actions = plan.actions;
  // UTF-16 code units to UTF-8 bytes: at most three each, and a NUL.
  const bound = (s: string | null) => s === null ? 0 : s.length * 3 + 1;
  const reuseEnv = plan.env.length > 0 && plan.env === lastEnv.list;
  let stringBound = bound(plan.command) + bound(plan.searchPath) + bound(plan.cwd);
  for (const s of plan.argv) stringBound += bound(s);
  if (reuseEnv) stringBound += lastEnv.bytes.length;
  else for (const s of plan.env) stringBound += bound(s);
  for (const action of actions) if (action.path !== undefined) stringBound += bound(action.path);

  const actionsOffset = Request.size;
  const pointersOffset = align8(actionsOffset + actions.length * FdAction.size);
  const pointersSize = (plan.argv.length + plan.env.length + 2) * 8;
  const groups = plan.groups ?? [];
  const groupsOffset = pointersOffset + pointersSize;
  const inheritOffset = groupsOffset + groups.length * 4;
  const rlimitsOffset = align8(inheritOffset + plan.inheritFds.length * 4);
  const stringsOffset = rlimitsOffset + plan.rlimits.length * RlimitEntry.size;
  const needed = stringsOffset + stringBound;
  if (buffer.length < needed) {
    buffer = new Uint8Array(Math.max(needed, buffer.length * 2));
    bufferView = new DataView(buffer.buffer);
  }
  const bytes = buffer;
  const view = bufferView;
  bytes.fill(0, 0, stringsOffset);

  let at = stringsOffset;
  const put = (s: string): number => {
    const start = at;
    at += encoder.encodeInto(s, bytes.subarray(at)).written!;
    bytes[at++] = 0;
    return start;
  };
  for (const s of plan.argv) put(s);
  if (reuseEnv) {
    // The host's unchanged environment (see hostEnvironmentList): its bytes as last time.
    bytes.set(lastEnv.bytes, at);
    at += lastEnv.bytes.length;
  } else {
    const envStart = at;
    for (const s of plan.env) put(s);
    // Only the host's own list is worth keeping: it comes back while nothing changes.
    if (plan.env === lastHostEnvironmentList()) lastEnv = { list: plan.env, bytes: bytes.slice(envStart, at) };
  }
  const stringsLength = at - stringsOffset;
  const fileOffset = put(plan.command);
  const searchOffset = plan.searchPath !== null ? put(plan.searchPath) : NONE;
  const cwdOffset = plan.cwd !== null ? put(plan.cwd) : NONE;

  actions.forEach((action, i) => {
    const base = actionsOffset + i * FdAction.size;
    view.setInt32(base + FdAction.target, action.target, true);
    view.setUint32(base + FdAction.kind, action.kind, true);
    view.setInt32(base + FdAction.fd, action.fd ?? -1, true);
    view.setUint32(base + FdAction.open_flags, action.openFlags ?? 0, true);
    view.setUint32(base + FdAction.mode, action.mode ?? 0, true);
    view.setUint32(base + FdAction.path_off, action.path !== undefined ? put(action.path) : NONE, true);
    view.setInt32(base + FdAction.out_fd, -1, true);
  });
  groups.forEach((gid, i) => view.setUint32(groupsOffset + i * 4, gid, true));
  plan.inheritFds.forEach((fd, i) => view.setUint32(inheritOffset + i * 4, fd, true));
  plan.rlimits.forEach(([resource, soft, hard], i) => {
    const base = rlimitsOffset + i * RlimitEntry.size;
    view.setUint32(base + RlimitEntry.resource, resource, true);
    view.setBigUint64(base + RlimitEntry.cur, soft, true);
    view.setBigUint64(base + RlimitEntry.max, hard, true);
  });

  let flags = 0;
  if (plan.setsid) flags |= RequestFlag.setsid;
  if (plan.pgroup !== null) flags |= RequestFlag.setpgid;
  if (plan.umask !== null) flags |= RequestFlag.umask;
  if (plan.uid !== null) flags |= RequestFlag.uid;
  if (plan.gid !== null) flags |= RequestFlag.gid;
  if (plan.groups !== null) flags |= RequestFlag.groups;
  if (plan.inheritFds.length > 0) flags |= RequestFlag.inheritFds;
  if (plan.hostEnviron !== 0n) flags |= RequestFlag.hostEnviron;
  if (plan.pty !== null) flags |= RequestFlag.controllingTty;
  if (plan.cgroup) flags |= RequestFlag.cgroup;

  const length = at;
  const u32 = (field: number, value: number) => view.setUint32(field, value, true);
  u32(Request.buffer_len, length);
  u32(Request.argc, plan.argv.length);
  u32(Request.envc, plan.env.length);
  u32(Request.fd_count, actions.length);
  u32(Request.flags, flags);
  u32(Request.listener, listener);
  u32(Request.strings_off, stringsOffset);
  u32(Request.strings_len, stringsLength);
  u32(Request.file_off, fileOffset);
  u32(Request.search_path_off, searchOffset);
  u32(Request.cwd_off, cwdOffset);
  u32(Request.pointers_off, pointersOffset);
  view.setInt32(Request.kill_on_exit_signal, plan.killOnExitSignal, true);
  // The kernel's backstop for the same policy: the child's parent is the reaper.
  view.setInt32(Request.pdeath_signal, plan.killOnExitSignal, true);
  view.setInt32(Request.pgid, plan.pgroup ?? 0, true);
  u32(Request.umask, plan.umask ?? 0);
  u32(Request.uid, plan.uid ?? 0);
  u32(Request.gid, plan.gid ?? 0);
  u32(Request.groups_off, groupsOffset);
  u32(Request.groups_count, groups.length);
  u32(Request.inherit_fds_off, inheritOffset);
  u32(Request.inherit_fds_count, plan.inheritFds.length);
  u32(Request.rlimits_off, rlimitsOffset);
  u32(Request.rlimits_count, plan.rlimits.length);
  view.setBigUint64(Request.ignore_mask, ignoreMask, true);
  view.setBigUint64(Request.environ_addr, plan.hostEnviron, true);
  return { bytes, view, length, actionsOffset };
}
