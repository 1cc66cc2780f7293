//! Diagnostics to stderr; `-v` turns on the debug lines.
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(v: bool) {
    VERBOSE.store(v, Ordering::Relaxed);
}

pub fn debug(msg: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("regbake: {msg}");
    }
}

pub fn note(msg: &str) {
    eprintln!("regbake: {msg}");
}
