/**
 * Under Windows (run under Wine by scripts/test_windows.sh): the module imports, and spawning
 * fails with a typed LibraryError saying the platform is unsupported, never a dlopen of the
 * Linux library and never an error at import.
 */
import assert from "node:assert/strict";
import { windowsTest } from "./spawn.ts";

windowsTest("mod.ts imports under Windows and exports spawnHandle", async () => {
  const mod = await import("../../mod.ts");
  assert.equal(typeof mod.spawnHandle, "function");
  assert.equal(typeof mod.run, "function");
});

windowsTest("spawnHandle throws LibraryError ERR_PLATFORM_UNSUPPORTED under Windows, every time", async () => {
  const { spawnHandle } = await import("../../mod.ts");
  const { LibraryError } = await import("../../ffi/mod.ts");
  for (let attempt = 0; attempt < 2; attempt++) {
    assert.throws(() => spawnHandle("cmd.exe", ["/c", "exit", "0"]), (error: unknown) => {
      assert.ok(error instanceof LibraryError, `attempt ${attempt}: not a LibraryError: ${String(error)}`);
      assert.equal(error.code, "ERR_PLATFORM_UNSUPPORTED", `attempt ${attempt}: ${error.message}`);
      return true;
    });
  }
});
