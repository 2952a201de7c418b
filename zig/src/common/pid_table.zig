//! pid -> slot map used by the reaper alone: open addressing with linear probing and
//! backward-shift deletion (no tombstones, so lookups stay short however long it runs).
//! Fixed capacity, twice the slot count, so the load factor never exceeds one half.

const std = @import("std");
const abi = @import("../abi.zig");
const assert = std.debug.assert;

pub const Table = struct {
    entries: [*]Entry,

    pub const capacity: u32 = abi.slots_max * 2;
    pub const bytes: usize = @sizeOf(Entry) * capacity;
    const Entry = extern struct { pid: i32, slot: u32 };
    const empty: i32 = 0;

    comptime {
        assert(std.math.isPowerOfTwo(capacity));
    }

    pub fn init(memory: [*]Entry) Table {
        const table = Table{ .entries = memory };
        table.clear();
        return table;
    }

    pub fn clear(self: Table) void {
        @memset(self.entries[0..capacity], .{ .pid = empty, .slot = 0 });
    }

    fn home(pid: i32) u32 {
        // Fibonacci hashing spreads sequential pids over the table.
        const h = @as(u32, @bitCast(pid)) *% 0x9E3779B9;
        return h & (capacity - 1);
    }

    pub fn insert(self: Table, pid: i32, slot: u32) void {
        assert(pid > 0);
        var i = home(pid);
        var probes: u32 = 0;
        while (probes < capacity) : (probes += 1) {
            const e = &self.entries[i];
            if (e.pid == empty or e.pid == pid) {
                e.* = .{ .pid = pid, .slot = slot };
                return;
            }
            i = (i + 1) & (capacity - 1);
        }
        unreachable; // At most slots_max live entries in twice that many places.
    }

    pub fn get(self: Table, pid: i32) ?u32 {
        var i = home(pid);
        var probes: u32 = 0;
        while (probes < capacity) : (probes += 1) {
            const e = self.entries[i];
            if (e.pid == empty) return null;
            if (e.pid == pid) return e.slot;
            i = (i + 1) & (capacity - 1);
        }
        return null;
    }

    pub fn remove(self: Table, pid: i32) ?u32 {
        var i = home(pid);
        var probes: u32 = 0;
        while (probes < capacity) : (probes += 1) {
            const e = self.entries[i];
            if (e.pid == empty) return null;
            if (e.pid == pid) break;
            i = (i + 1) & (capacity - 1);
        } else return null;
        const slot = self.entries[i].slot;
        // Backward shift: pull later entries of the run into the hole when that keeps them
        // reachable from their home position.
        var hole = i;
        var j = (i + 1) & (capacity - 1);
        probes = 0;
        while (probes < capacity) : (probes += 1) {
            const e = self.entries[j];
            if (e.pid == empty) break;
            const h = home(e.pid);
            const distance_entry = (j -% h) & (capacity - 1);
            const distance_hole = (j -% hole) & (capacity - 1);
            if (distance_entry >= distance_hole) {
                self.entries[hole] = e;
                hole = j;
            }
            j = (j + 1) & (capacity - 1);
        }
        self.entries[hole] = .{ .pid = empty, .slot = 0 };
        return slot;
    }
};

const testing = std.testing;

test "insert, get, remove keep every key reachable" {
    const memory = try testing.allocator.alloc(Table.Entry, Table.capacity);
    defer testing.allocator.free(memory);
    const t = Table.init(memory.ptr);
    var prng = std.Random.DefaultPrng.init(42);
    const random = prng.random();
    var live = std.AutoHashMap(i32, u32).init(testing.allocator);
    defer live.deinit();
    var step: u32 = 0;
    while (step < 200_000) : (step += 1) {
        // Clustered pids (like a busy system's) stress the probing.
        const pid: i32 = @intCast(1 + random.uintLessThan(u32, 50_000));
        if (live.contains(pid) and random.boolean()) {
            try testing.expectEqual(live.get(pid).?, t.remove(pid).?);
            _ = live.remove(pid);
        } else if (!live.contains(pid) and live.count() < abi.slots_max) {
            t.insert(pid, step);
            try live.put(pid, step);
        }
    }
    var it = live.iterator();
    while (it.next()) |entry| try testing.expectEqual(entry.value_ptr.*, t.get(entry.key_ptr.*).?);
    try testing.expectEqual(@as(?u32, null), t.get(50_001));
}

test "remove of a missing pid changes nothing" {
    const memory = try testing.allocator.alloc(Table.Entry, Table.capacity);
    defer testing.allocator.free(memory);
    const t = Table.init(memory.ptr);
    t.insert(7, 1);
    try testing.expectEqual(@as(?u32, null), t.remove(8));
    try testing.expectEqual(@as(?u32, 1), t.get(7));
}
