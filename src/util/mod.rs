//! The bottom layer: what every other layer may use.

pub mod interrupt;
pub mod log;
