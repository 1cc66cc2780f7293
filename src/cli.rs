//! Command-line types (clap derive). Converted to plain option structs at the
//! edge so the library does not depend on clap's types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Bake the box from the CentOS ISO with Packer, add it to the catalog and import it
    Packer {
        /// Build with this builder only
        #[arg(long, value_name = "BUILDER", value_parser = ["qemu", "virtualbox-iso"])]
        only: Option<String>,
        /// Render out/packer/ and stop
        #[arg(long)]
        render_only: bool,
        /// Do not `vagrant box add` the built box
        #[arg(long)]
        no_import: bool,
    },
    /// Vagrant box files: pack a disk into a .box plus the catalog JSON
    #[command(subcommand)]
    Box(BoxCommand),
    /// Smoke-test a running registry: GET /v2/, and with --push a verified push/pull/delete
    Probe(Box<ProbeArgs>),
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

/// `regbake probe` options (boxed in [`Command`]: the URL makes them large).
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Registry URL: http://HOST:PORT or https://HOST:PORT
    #[arg(value_parser = crate::probe::parse_url)]
    pub url: url::Url,
    /// Trust only this CA certificate (PEM) for https
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the TLS certificate (throwaway test registries only)
    #[arg(long)]
    pub insecure: bool,
    /// User name for Basic auth (the password comes from --password-env)
    #[arg(long, value_name = "USER", requires = "password_env")]
    pub username: Option<String>,
    /// Name of the environment variable holding the password
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,
    /// Repository for the probe image
    #[arg(long, value_name = "NAME", default_value = "regbake-probe", value_parser = crate::probe::parse_repo)]
    pub repo: String,
    /// Tag for the probe image
    #[arg(long, value_name = "TAG", default_value = "probe", value_parser = crate::probe::parse_tag)]
    pub tag: String,
    /// Push a tiny image, pull it back, verify every digest, delete it
    #[arg(long)]
    pub push: bool,
    /// Keep the pushed image (skip the delete step)
    #[arg(long, requires = "push")]
    pub keep: bool,
    /// Size of the probe layer's content in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4096, requires = "push",
          value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub layer_size: u64,
    /// Also write the probe image as an OCI layout into DIR (for the bench)
    #[arg(long, value_name = "DIR", hide = true, requires = "push")]
    pub save_oci: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
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
