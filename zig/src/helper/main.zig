//! The helper executable of the `helper` backend: one per host process, started by the
//! library, sharing the slot table and listener rings with it through a memfd. It owns the
//! host's children (the host's only process is the helper, re-parented away from it), reaps
//! them, publishes their exits exactly as the reaper does, and exits when the host's end of
//! its socket closes, after applying each child's `killOnParentExit`.
//! The code is the reaper's own: the module `private_spawn` is zig/src/library.zig, whose
//! common/owner.zig loop runs here in the helper's role (backend/helper/serve.zig).

const private_spawn = @import("private_spawn");

/// Tells the library (`in_helper` in zig/src/common/state.zig) that it runs in the helper.
pub const private_spawn_helper = true;

pub fn main() u8 {
    return private_spawn.helper_main();
}
