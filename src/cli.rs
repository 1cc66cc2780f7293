//! Command-line types (clap derive). Converted to plain option structs at the
//! edge so the library does not depend on clap's types.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "regbake",
    version,
    about = "Bake ready-to-run Docker registry appliances (CentOS 7) from one config file",
    help_expected = true
)]
pub struct Cli {
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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented regbake.toml with the defaults
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Render the overlay, kickstart and client files into the output directory
    Render,
    /// Render, then run every validator found on PATH over the outputs
    Check {
        /// Also fail on warnings (shellcheck style hints, sshd warnings)
        #[arg(long)]
        strict: bool,
        /// Fail when a validator is not installed instead of skipping it
        #[arg(long)]
        require_all: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Render the kickstart for a bare-metal install (out/kickstart/ks.cfg, or HOST.ks per inventory host)
    Kickstart {
        /// Ansible INI inventory: one kickstart per host, with per-host overrides from host vars
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Serve the kickstarts over HTTP for inst.ks= on ADDR (e.g. 0.0.0.0:8080) until Ctrl-C
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
        /// Also write FAT images labelled OEMDRV holding ks.cfg (oemdrv.img, or HOST-oemdrv.img)
        #[arg(long)]
        oemdrv: bool,
    },
    /// Print the fully resolved config
    Config,
    /// Bake the appliance with Vagrant, package it as a box, catalog and import it
    Vagrant {
        /// Only render out/vagrant/Vagrantfile (and the overlay it installs)
        #[arg(long)]
        render_only: bool,
        /// Do not `vagrant box add` the baked box
        #[arg(long)]
        no_import: bool,
        /// Keep the build VM (also after a failure)
        #[arg(long)]
        keep_vm: bool,
    },
    /// Vagrant box files: pack a disk into a .box plus the catalog JSON
    #[command(subcommand)]
    Box(BoxCommand),
}

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    /// Pack a VM disk into out/box/NAME-VERSION-PROVIDER.box and add it to out/box/NAME.json
    Pack {
        /// Box provider
        #[arg(long, value_enum)]
        provider: BoxProvider,
        /// qcow2 disk image (libvirt)
        #[arg(
            long,
            value_name = "IMAGE",
            required_if_eq("provider", "libvirt"),
            conflicts_with = "ovf"
        )]
        disk: Option<PathBuf>,
        /// OVF descriptor; the disks it references are packed too (virtualbox)
        #[arg(long, value_name = "OVF", required_if_eq("provider", "virtualbox"))]
        ovf: Option<PathBuf>,
        /// Box name [default: vagrant.box_name]
        #[arg(long)]
        name: Option<String>,
        /// Box version [default: vagrant.box_version]
        #[arg(long)]
        version: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoxProvider {
    Libvirt,
    Virtualbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
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
