//! Integration tests: the real `regbake` binary in a temp dir, with real
//! validators, and stub programs on PATH where a VM would be needed.

mod common;
mod fleet;
mod render;
