//! The small commands: `init`, `render` and `config`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::config;
use crate::out::Global;
use crate::render::Scope;

/// `regbake init`
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// Write the commented default config; never over a file without `--force`.
pub fn init(g: &Global, args: &InitArgs) -> Result<()> {
    let path = g
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("regbake.toml"));
    if path.exists() && !args.force {
        bail!("{} exists; use --force to overwrite it", path.display());
    }
    std::fs::write(&path, config::DEFAULT_TOML)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Render everything into the out dir.
pub fn render(g: &Global) -> Result<()> {
    let started = Instant::now();
    let lock = crate::out::lock(&g.out)?;
    let (_, tree) = crate::out::render_to(
        g,
        Scope::All,
        crate::bake::packer::installed_version(),
        &lock,
    )?;
    println!(
        "rendered {} files into {} in {} ms",
        tree.files.len(),
        g.out.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Print the fully resolved config.
pub fn show_config(g: &Global) -> Result<()> {
    let (config, source) = config::load(g.config.as_deref())?;
    println!("# resolved config from {source}");
    print!(
        "{}",
        toml::to_string(&config).context("printing the config")?
    );
    Ok(())
}
