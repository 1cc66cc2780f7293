//! regbake: one config file in, a Docker registry appliance out.
//!
//! The pipeline: [`config`] (parse + validate) → [`appliance::Appliance`]
//! (resolved, with secrets from [`secrets`]) → [`render`] (an in-memory tree)
//! → atomic write into `out/` → [`check`] (real validators).

pub mod bake;
pub mod boxes;
pub mod check;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod model;
pub mod out;
pub mod probe;
pub mod render;
pub mod tree;
pub mod util;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::model::Appliance;
use crate::cli::{Cli, Command};
use crate::render::Scope;
use crate::tree::Tree;

/// Options shared by every command.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    pub verbose: bool,
    pub dry_run: bool,
}

/// Exit code for an error: 2 for a bad config, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<config::ConfigError>().is_some() {
        2
    } else {
        1
    }
}

pub fn run(cli: Cli) -> Result<()> {
    util::log::set_verbose(cli.verbose);
    let opts = Options {
        config: cli.config,
        out: cli.out,
        verbose: cli.verbose,
        dry_run: cli.dry_run,
    };
    match cli.command {
        Command::Init { force } => init(&opts, force),
        Command::Render => {
            let started = Instant::now();
            let (_, tree) = render_to(&opts, Scope::All)?;
            println!(
                "rendered {} files into {} in {} ms",
                tree.files.len(),
                opts.out.display(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Command::Kickstart {
            inventory,
            serve,
            oemdrv,
        } => fleet::run(
            &opts,
            &fleet::KickstartOptions {
                inventory,
                serve,
                oemdrv,
            },
        ),
        Command::Check {
            strict,
            require_all,
            format,
        } => {
            render_to(&opts, Scope::All)?;
            check::run(
                &opts.out,
                &check::CheckOptions {
                    strict,
                    require_all,
                    json: format == cli::Format::Json,
                },
            )
        }
        Command::Packer {
            only,
            render_only,
            no_import,
        } => bake::packer::run(
            &opts,
            &bake::packer::PackerOptions {
                only,
                render_only,
                no_import,
            },
        ),
        Command::Box(cli::BoxCommand::Pack {
            provider,
            disk,
            ovf,
            name,
            version,
        }) => {
            let source = match (provider, disk, ovf) {
                (cli::BoxProvider::Libvirt, Some(disk), _) => boxes::PackSource::Libvirt { disk },
                (cli::BoxProvider::Virtualbox, _, Some(ovf)) => {
                    boxes::PackSource::Virtualbox { ovf }
                }
                // clap requires the matching flag for each provider.
                _ => bail!("--provider libvirt needs --disk, --provider virtualbox needs --ovf"),
            };
            boxes::run_pack(
                &opts,
                &boxes::PackArgs {
                    source,
                    name,
                    version,
                },
            )
        }
        Command::Vagrant {
            render_only,
            no_import,
            keep_vm,
        } => bake::vagrant::run(
            &opts,
            &bake::vagrant::VagrantOptions {
                render_only,
                no_import,
                keep_vm,
            },
        ),
        Command::Probe(args) => probe::run(&probe::ProbeOptions {
            url: args.url,
            ca: args.ca,
            insecure: args.insecure,
            username: args.username,
            password_env: args.password_env,
            repo: args.repo,
            tag: args.tag,
            push: args.push,
            keep: args.keep,
            layer_size: args.layer_size,
            save_oci: args.save_oci,
            json: args.format == cli::Format::Json,
        }),
        Command::Config => {
            let (config, source) = config::load(opts.config.as_deref())?;
            println!("# resolved config from {source}");
            print!(
                "{}",
                toml::to_string(&config).context("printing the config")?
            );
            Ok(())
        }
    }
}

fn init(opts: &Options, force: bool) -> Result<()> {
    let path = opts
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("regbake.toml"));
    if path.exists() && !force {
        bail!("{} exists; use --force to overwrite it", path.display());
    }
    std::fs::write(&path, config::DEFAULT_TOML)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Load and validate the config and resolve the appliance, reusing the
/// secrets a previous render left in `out`.
pub fn prepare(config_path: Option<&Path>, out: &Path) -> Result<Appliance> {
    let (config, _) = config::load(config_path)?;
    let stored = model::secrets::Stored::load(out).context("reading stored secrets")?;
    let mut app = Appliance::resolve(&config, stored)?;
    // The box Packer builds names a generated user key by its absolute path.
    app.packer.out_dir = Some(std::path::absolute(out).context("resolving the out dir")?);
    Ok(app)
}

/// Render and write into `opts.out`. Nothing is written unless the whole
/// render succeeded.
pub fn render_to(opts: &Options, scope: Scope) -> Result<(Appliance, Tree)> {
    let app = prepare(opts.config.as_deref(), &opts.out)?;
    let tree = render::render(&app, scope)?;
    out::write(&tree, &opts.out).context("writing the output")?;
    Ok((app, tree))
}
