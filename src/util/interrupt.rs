//! Ctrl-C as a flag: long in-process work (box packing, lock waits, steps)
//! polls it to stop and clean up instead of dying mid-write.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: std::sync::Once = std::sync::Once::new();

/// Whether Ctrl-C was pressed since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Catch Ctrl-C from now on: it only sets [`interrupted`], so long in-process
/// work (box packing) can stop and clean up instead of dying mid-write.
pub fn catch_interrupts() {
    HANDLER.call_once(|| {
        // If a handler cannot be installed, Ctrl-C simply ends regbake.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}
