//! A stand-in for Windows' bcryptprimitives.dll, which Wine 8 does not ship. It exports the one
//! function the Windows builds of Bun and Deno import from it, ProcessPrng, and fills the
//! buffer from advapi32's RtlGenRandom (exported as SystemFunction036), the system's CSPRNG.
//! Build: zig build-lib -dynamic -O ReleaseSmall -target x86_64-windows-gnu bcryptprimitives.zig

const std = @import("std");
const windows = std.os.windows;

extern "advapi32" fn SystemFunction036(buffer: [*]u8, length: u32) callconv(.winapi) windows.BOOLEAN;

/// BOOL ProcessPrng(PBYTE pbData, SIZE_T cbData): TRUE once every byte came from RtlGenRandom.
export fn ProcessPrng(data: [*]u8, size_bytes: usize) callconv(.winapi) windows.BOOL {
    const chunk_max_bytes: usize = std.math.maxInt(u32);
    var done_bytes: usize = 0;
    while (done_bytes < size_bytes) {
        const chunk_bytes: u32 = @intCast(@min(size_bytes - done_bytes, chunk_max_bytes));
        if (SystemFunction036(data + done_bytes, chunk_bytes) == 0) return windows.FALSE;
        done_bytes += chunk_bytes;
    }
    std.debug.assert(done_bytes == size_bytes);
    return windows.TRUE;
}
