//! The helper executable of the `helper` backend: one per host process, started by the
//! library, sharing the slot table and listener rings with it through a memfd. It owns the
//! host's children (the host's only process is the helper, re-parented away from it), reaps
//! them, publishes their exits exactly as the reaper does, and exits when the host's end of
//! its socket closes, after applying each child's `killOnParentExit`.
//! The code is the reaper's own (`owner` is zig/src/linux.zig built for this role).

const owner = @import("owner");

/// Tells zig/src/linux.zig that it runs in the helper.
pub const private_spawn_helper = true;

pub fn main() u8 {
    return owner.helper_main();
}
