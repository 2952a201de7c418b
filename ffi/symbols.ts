/**
 * The library's C ABI, once, for both runtimes. Each entry carries the C prototype it binds;
 * `ffi/deno.ts` and `ffi/bun.ts` translate the neutral type names to their runtime's.
 * Kept in step with `zig/src/root.zig`.
 *
 * @module
 */

/** Neutral FFI types: "buffer" is a pointer to a TypedArray the caller keeps alive. */
export type FfiType = "void" | "i32" | "u32" | "usize" | "buffer";

/** One symbol: its parameter types and its result type. */
export interface SymbolSpec {
  readonly parameters: readonly FfiType[];
  readonly result: FfiType;
}

/** Every function the library exports. */
export const symbols = {
  /** uint32_t ph_abi_version(void) */
  ph_abi_version: { parameters: [], result: "u32" },
  /** int32_t ph_init(uint32_t backend, const uint8_t *helper_path, size_t len) */
  ph_init: { parameters: ["u32", "buffer", "usize"], result: "i32" },
  /** void ph_info(struct ph_info *out) */
  ph_info: { parameters: ["buffer"], result: "void" },
  /** int32_t ph_listener_open(uint32_t nonblocking_read) */
  ph_listener_open: { parameters: ["u32"], result: "i32" },
  /** int32_t ph_listener_fd(uint32_t listener) */
  ph_listener_fd: { parameters: ["u32"], result: "i32" },
  /** int32_t ph_listener_close(uint32_t listener) */
  ph_listener_close: { parameters: ["u32"], result: "i32" },
  /** int32_t ph_spawn(struct ph_request *request, size_t len) */
  ph_spawn: { parameters: ["buffer", "usize"], result: "i32" },
  /** int32_t ph_drain(uint32_t listener, struct ph_exit *out, uint32_t max) */
  ph_drain: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  /** int32_t ph_peek(uint32_t slot, uint32_t generation, struct ph_exit *out) */
  ph_peek: { parameters: ["u32", "u32", "buffer"], result: "i32" },
  /** int32_t ph_wait_sync(uint32_t slot, uint32_t generation, struct ph_exit *out, int32_t timeout_ms) */
  ph_wait_sync: { parameters: ["u32", "u32", "buffer", "i32"], result: "i32" },
  /** int32_t ph_signal(uint32_t slot, uint32_t generation, int32_t sig, uint32_t flags) */
  ph_signal: { parameters: ["u32", "u32", "i32", "u32"], result: "i32" },
  /** int32_t ph_signal_group(int32_t pidfd, int32_t pgid, int32_t sig) */
  ph_signal_group: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** void ph_ignored_signals(uint64_t *out) */
  ph_ignored_signals: { parameters: ["buffer"], result: "void" },
  /** void ph_clock_monotonic(uint64_t *out_ns) */
  ph_clock_monotonic: { parameters: ["buffer"], result: "void" },
  /** int32_t ph_poll(struct pollfd *fds, uint32_t count, int32_t timeout_ms) */
  ph_poll: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  /** int32_t ph_read(int32_t fd, uint8_t *buf, size_t len) */
  ph_read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** int32_t ph_write(int32_t fd, const uint8_t *buf, size_t len) */
  ph_write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** int32_t ph_check_reaper(void) */
  ph_check_reaper: { parameters: [], result: "i32" },
  /** int32_t ph_pidfd_export(uint32_t slot, uint32_t generation) */
  ph_pidfd_export: { parameters: ["u32", "u32"], result: "i32" },
  /** int32_t ph_close(int32_t fd) */
  ph_close: { parameters: ["i32"], result: "i32" },
  /** int32_t ph_pipe_grow(int32_t fd) */
  ph_pipe_grow: { parameters: ["i32"], result: "i32" },
} as const satisfies Record<string, SymbolSpec>;

/** The symbol table's type. */
export type Symbols = typeof symbols;
