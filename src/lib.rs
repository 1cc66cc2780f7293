//! regbake: one config file in, a Docker registry appliance out.
//!
//! The pipeline, in layers (each uses only those below it; a test checks):
//! [`util`] and [`tree`] → [`config`] (regbake.toml, inventories) →
//! [`model`] (the resolved appliance, its secrets) → [`render`] (pure:
//! appliance → files) → [`out`] (writing `out/`) → the commands: [`boxes`],
//! [`probe`], [`fleet`], then [`bake`] (Vagrant, Packer), [`check`], then
//! [`commands`] and [`cli`].

pub mod bake;
pub mod boxes;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod fleet;
pub mod model;
pub mod output;
pub mod probe;
pub mod render;
pub mod tree;
pub mod util;
