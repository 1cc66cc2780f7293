//! The bottom layer: what every other layer may use.

pub mod fsx;
pub mod interrupt;
pub mod io;
pub mod lock;
pub mod log;
pub mod text;

/// How a command prints its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}
