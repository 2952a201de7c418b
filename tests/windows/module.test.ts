/**
 * Under Windows (run under Wine by scripts/test_windows.sh): the module imports, spawning goes
 * through the runtime backend, and the native library, if asked for, fails with a typed
 * LibraryError saying the platform is unsupported, never a dlopen of the Linux library and
 * never an error at import.
 */
import assert from "node:assert/strict";
import { windowsTest } from "./spawn.ts";

windowsTest("mod.ts imports under Windows and exports spawnHandle", async () => {
  const mod = await import("../../mod.ts");
  assert.equal(typeof mod.spawnHandle, "function");
  assert.equal(typeof mod.run, "function");
});

windowsTest("spawnHandle runs through the runtime backend under Windows, loading no library", async () => {
  const { backendInfo, spawnHandle } = await import("../../mod.ts");
  for (let attempt = 0; attempt < 2; attempt++) {
    const status = await spawnHandle("cmd.exe", ["/c", "exit", String(attempt + 3)]).wait();
    assert.equal(status.code, attempt + 3, `attempt ${attempt}`);
  }
  assert.equal(backendInfo().backend, "runtime");
  assert.equal(backendInfo().libraryPath, "");
});

windowsTest(
  "the native library is never loaded under Windows: loading it throws ERR_PLATFORM_UNSUPPORTED",
  async () => {
    const { LibraryError, loadNative } = await import("../../ffi/mod.ts");
    assert.throws(() => loadNative(), (error: unknown) => {
      assert.ok(error instanceof LibraryError, `not a LibraryError: ${String(error)}`);
      assert.equal(error.code, "ERR_PLATFORM_UNSUPPORTED", error.message);
      return true;
    });
  },
);
