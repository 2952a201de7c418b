//! When spinning may pay for itself. Spinning instead of sleeping saves a cross-CPU wake-up
//! only while a CPU is idle and only one job is in flight; in a pool of jobs the next event
//! comes without our help, and beside a CPU-bound task a spinner waits behind it where a
//! sleeper would be woken at once. Measured and chosen in
//! docs/decisions/0009-spin-only-when-alone.md and docs/decisions/0015-spin-credit.md.

const sys = @import("../sys/os.zig").sys;
const state_zig = @import("state.zig");
const g = &state_zig.g;

/// Once the host had two jobs in flight, it counts as running a pool for this long: in a pool
/// the count drops to one between a job's end and the next spawn, and no spinner should start
/// in that gap. Measured and chosen in docs/decisions/0015-spin-credit.md.
const crowded_hold_ns = 10_000_000;
/// A yield that took this long ran another task first.
/// Measured and chosen in docs/decisions/0009-spin-only-when-alone.md.
const yield_contended_ns = 20_000;
/// Spinning's credit (`Region.spin_credit`) at most: a spin that won adds one, a yield that
/// ran a stranger halves it, so one stranger among many wins changes little and a CPU shared
/// with a busy task takes it to zero within a few waits.
/// Measured and chosen in docs/decisions/0015-spin-credit.md.
const credit_max = 8;
/// With no credit left, nobody spins for this long; then one wait may try again.
/// Measured and chosen in docs/decisions/0009-spin-only-when-alone.md.
const contended_pause_ns = 50_000_000;

/// Whether polling or yield-spinning can pay for itself now: at most one job is in flight,
/// none of the last `crowded_hold_ns` saw more, and spinning has credit (or its pause is over).
pub fn worthwhile(in_flight: u32) bool {
    if (in_flight > 1) return false;
    const now_ns = sys.clock_monotonic_ns();
    if (!alone(in_flight, now_ns, @atomicLoad(u64, &g.region.crowded_until_ns, .monotonic))) return false;
    if (@atomicLoad(u32, &g.region.spin_credit, .monotonic) > 0) return true;
    if (now_ns < @atomicLoad(u64, &g.region.spin_paused_until_ns, .monotonic)) return false;
    @atomicStore(u32, &g.region.spin_credit, 1, .monotonic);
    return true;
}

fn alone(in_flight: u32, now_ns: u64, crowded_until_ns: u64) bool {
    return in_flight <= 1 and now_ns >= crowded_until_ns;
}

/// The host has more than one job in flight at `now_ns` (called by the host, under `g.lock`).
pub fn note_crowded(now_ns: u64) void {
    @atomicStore(u64, &g.region.crowded_until_ns, now_ns + crowded_hold_ns, .monotonic);
}

/// A spinner saw what it waited for come while it spun.
pub fn won() void {
    const credit = @atomicLoad(u32, &g.region.spin_credit, .monotonic);
    if (credit < credit_max) @atomicStore(u32, &g.region.spin_credit, credit + 1, .monotonic);
}

/// Yields the CPU; true when that let a stranger run: the call took longer than a yield with
/// nothing else runnable, and what the caller waits for has still not come (`waited.arrived()`
/// is false; a long yield after which it has come ran the other side of the hand-off). Then
/// this wait stops spinning, and spinning's credit halves; at zero every spinner, in every
/// process that shares the region, stops for `contended_pause_ns`.
pub fn yield_gave_cpu_away(waited: anytype) bool {
    const start_ns = sys.clock_monotonic_ns();
    _ = sys.sched_yield();
    const end_ns = sys.clock_monotonic_ns();
    if (end_ns -| start_ns < yield_contended_ns) return false;
    if (waited.arrived()) return false;
    const credit = halved(@atomicLoad(u32, &g.region.spin_credit, .monotonic));
    @atomicStore(u32, &g.region.spin_credit, credit, .monotonic);
    if (credit == 0) @atomicStore(u64, &g.region.spin_paused_until_ns, end_ns + contended_pause_ns, .monotonic);
    return true;
}

fn halved(credit: u32) u32 {
    return credit / 2;
}

test "spinning pays only with one job in flight, and not right after a pool" {
    const testing = @import("std").testing;
    const now_ns: u64 = 5_000_000_000;
    try testing.expect(alone(0, now_ns, 0));
    try testing.expect(alone(1, now_ns, 0));
    try testing.expect(!alone(2, now_ns, 0));
    try testing.expect(!alone(1, now_ns, now_ns + crowded_hold_ns));
    try testing.expect(alone(1, now_ns + crowded_hold_ns, now_ns + crowded_hold_ns));
}

test "full credit outlasts three strangers in a row, not four" {
    const testing = @import("std").testing;
    var credit: u32 = credit_max;
    var strangers: u32 = 0;
    while (credit > 0) : (strangers += 1) credit = halved(credit);
    try testing.expectEqual(@as(u32, 4), strangers);
}
