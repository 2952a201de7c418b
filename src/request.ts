/**
 * Encodes a `SpawnPlan` into the single buffer `ph_spawn` reads (layout in zig/src/abi.zig):
 * [Request][FdAction * n][pointer area][strings]. One buffer per realm, grown as needed.
 *
 * @module
 */
import { FdAction, FdKind, NONE, Request } from "../ffi/abi.ts";
import type { SpawnPlan, Stdio } from "./options.ts";

/** One descriptor action for the child. */
export interface FdPlan {
  target: number;
  kind: number;
  fd?: number;
  path?: string;
  openFlags?: number;
  mode?: number;
}

const STDIO_KIND: Record<Stdio, [number, number]> = {
  // [kind for stdin, kind for stdout/stderr]
  inherit: [FdKind.inherit, FdKind.inherit],
  null: [FdKind.devnull, FdKind.devnull],
  piped: [FdKind.pipeToChild, FdKind.pipeFromChild],
};

/** The fd actions for the three standard streams. */
export function stdioActions(stdio: readonly [Stdio, Stdio, Stdio]): FdPlan[] {
  return stdio.map((mode, target) => ({ target, kind: STDIO_KIND[mode][target === 0 ? 0 : 1] }));
}

const encoder = new TextEncoder();
let buffer = new Uint8Array(16 * 1024);

/** The encoded request: `bytes` is valid until the next `encodeRequest` call. */
export interface EncodedRequest {
  bytes: Uint8Array;
  view: DataView;
  length: number;
  actionsOffset: number;
}

/** Encodes `plan` with `actions` for `listener`. */
export function encodeRequest(plan: SpawnPlan, actions: readonly FdPlan[], listener: number): EncodedRequest {
  const extras: string[] = [plan.command];
  if (plan.searchPath !== null) extras.push(plan.searchPath);
  if (plan.cwd !== null) extras.push(plan.cwd);
  for (const action of actions) if (action.path !== undefined) extras.push(action.path);

  let stringBound = 0;
  for (const s of plan.argv) stringBound += s.length * 3 + 1;
  for (const s of plan.env) stringBound += s.length * 3 + 1;
  for (const s of extras) stringBound += s.length * 3 + 1;
  const actionsOffset = Request.size;
  const pointersOffset = actionsOffset + actions.length * FdAction.size;
  const pointersSize = (plan.argv.length + plan.env.length + 2) * 8;
  const stringsOffset = pointersOffset + pointersSize;
  const bound = stringsOffset + stringBound;
  if (buffer.length < bound) buffer = new Uint8Array(Math.max(bound, buffer.length * 2));
  const bytes = buffer;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.fill(0, 0, stringsOffset);

  let at = stringsOffset;
  const put = (s: string): number => {
    const start = at;
    at += encoder.encodeInto(s, bytes.subarray(at)).written!;
    bytes[at++] = 0;
    return start;
  };
  for (const s of plan.argv) put(s);
  for (const s of plan.env) put(s);
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

  const length = at;
  const u32 = (field: number, value: number) => view.setUint32(field, value, true);
  u32(Request.buffer_len, length);
  u32(Request.argc, plan.argv.length);
  u32(Request.envc, plan.env.length);
  u32(Request.fd_count, actions.length);
  u32(Request.flags, 0);
  u32(Request.listener, listener);
  u32(Request.strings_off, stringsOffset);
  u32(Request.strings_len, stringsLength);
  u32(Request.file_off, fileOffset);
  u32(Request.search_path_off, searchOffset);
  u32(Request.cwd_off, cwdOffset);
  u32(Request.pointers_off, pointersOffset);
  view.setInt32(Request.kill_on_exit_signal, plan.killOnExitSignal, true);
  return { bytes, view, length, actionsOffset };
}
