//! The command line: clap types of the top level; each command's own
//! arguments live with the command. Nothing but `main` uses this module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "regbake",
    version,
    about = "Bake ready-to-run Docker registry appliances (CentOS 7, Rocky Linux and AlmaLinux 9 and 10) from one config file",
    help_expected = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// What every command is given: which config, which out dir, how chatty,
/// and whether external commands only are printed.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Config file [default: ./regbake.toml, else the embedded defaults]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Output directory
    #[arg(short, long, global = true, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,

    /// Show every external command and more detail
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print external commands instead of running them
    #[arg(long, global = true)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented regbake.toml with the defaults
    Init(crate::commands::InitArgs),
    /// Render the overlay, kickstart and client files into the output directory
    Render,
    /// Render, then run every validator found on PATH over the outputs
    Check(crate::check::Args),
    /// Render the kickstart for a bare-metal install (out/kickstart/ks.cfg, or HOST.ks per inventory host)
    Kickstart(crate::fleet::Args),
    /// Print the fully resolved config
    Config,
    /// Bake the appliance with Vagrant, package it as a box, catalog and import it
    Vagrant(crate::bake::vagrant::Args),
    /// Bake the box from the CentOS ISO with Packer, add it to the catalog and import it
    Packer(crate::bake::packer::Args),
    /// Vagrant box files: pack a disk into a .box plus the catalog JSON
    #[command(subcommand)]
    Box(crate::boxes::BoxCommand),
    /// Smoke-test a running registry: GET /v2/, and with --push a verified push/pull/delete
    Probe(Box<crate::probe::Args>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(crate::commands::CompletionsArgs),
    /// Print the man page (roff)
    Man,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
