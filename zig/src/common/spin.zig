//! When spinning may pay for itself. Spinning instead of sleeping saves a cross-CPU wake-up
//! only while a CPU is idle and only one job is in flight; in a pool of jobs, or beside other
//! work, every spin takes CPU the children and the JavaScript thread need.
//! Measured and chosen in docs/decisions/0009-spin-only-when-alone.md.

const sys = @import("../sys/os.zig").sys;
const state_zig = @import("state.zig");
const g = &state_zig.g;

/// A yield that took this long ran another task first.
/// Measured and chosen in docs/decisions/0009-spin-only-when-alone.md.
const yield_contended_ns = 20_000;
/// After contention was seen, nobody spins for this long.
/// Measured and chosen in docs/decisions/0009-spin-only-when-alone.md.
const contended_pause_ns = 50_000_000;

/// Whether polling or yield-spinning can pay for itself now: at most one child is in flight
/// (with more, the next event comes without our help and the CPU is the children's) and no
/// recent yield, by the host or the owner, found another task waiting for the CPU.
pub fn worthwhile(in_flight: u32) bool {
    if (in_flight > 1) return false;
    return sys.clock_monotonic_ns() >= @atomicLoad(u64, &g.region.contended_until_ns, .monotonic);
}

/// Yields the CPU; true when that let another task run (the call took longer than a yield
/// with nothing else runnable), which also stops every spinner, in every process that shares
/// the region, for `contended_pause_ns`.
pub fn yield_gave_cpu_away() bool {
    const start_ns = sys.clock_monotonic_ns();
    _ = sys.sched_yield();
    const end_ns = sys.clock_monotonic_ns();
    if (end_ns -| start_ns < yield_contended_ns) return false;
    @atomicStore(u64, &g.region.contended_until_ns, end_ns + contended_pause_ns, .monotonic);
    return true;
}
