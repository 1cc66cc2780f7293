//! Ctrl-C (SIGINT) and SIGTERM as a flag: long in-process work (box
//! packing, lock waits, steps, fleet renders, checks) polls it to stop and
//! clean up instead of dying mid-write and leaving temp files behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Whether Ctrl-C was pressed (or SIGTERM came) since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Forget an interrupt once it has been acted on, before the cleanup it
/// calls for: the cleanup's own commands then run to completion, and only a
/// further Ctrl-C stops them.
pub fn acknowledge() {
    if let Some(f) = INTERRUPTED.get() {
        f.store(false, Ordering::SeqCst);
    }
}

/// An error once [`interrupted`]: for `?` at the points where long work
/// may stop.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted (Ctrl-C or SIGTERM)");
    }
    Ok(())
}

/// Catch Ctrl-C (SIGINT) and SIGTERM from now on: they only set
/// [`interrupted`], so long in-process work can stop and clean up instead
/// of dying mid-write.
pub fn catch_interrupts() {
    INTERRUPTED.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // If a handler cannot be installed, the signal simply ends regbake.
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    });
}
