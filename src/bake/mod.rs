//! Baking boxes: the one runner for external programs, long steps with
//! progress and logs, and the Vagrant and Packer drivers.

pub mod packer;
pub mod steps;
pub mod tools;
pub mod vagrant;
