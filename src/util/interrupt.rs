//! Ctrl-C as a flag: long in-process work (box packing, lock waits, steps)
//! polls it to stop and clean up instead of dying mid-write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Whether Ctrl-C was pressed since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Catch Ctrl-C (SIGINT) from now on: it only sets [`interrupted`], so long
/// in-process work can stop and clean up instead of dying mid-write.
pub fn catch_interrupts() {
    INTERRUPTED.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // If the handler cannot be installed, Ctrl-C simply ends regbake.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag));
        flag
    });
}
