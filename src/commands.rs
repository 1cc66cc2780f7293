//! The small commands: `init`, `render`, `config`, and the completions and
//! man page generated from the clap definitions (which `main` passes in, so
//! this module needs nothing of the cli module above it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::config;
use crate::render::Scope;

/// `regbake init`
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// Write the commented default config; never over a file without `--force`.
/// Written beside it and renamed into place: a full disk or a kill leaves
/// the old file as it was (and no fragment of the new one).
pub fn init(config: Option<&Path>, args: &InitArgs) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.map_or_else(|| PathBuf::from("regbake.toml"), Path::to_path_buf);
    let exists = || anyhow::anyhow!("{} exists; use --force to overwrite it", path.display());
    if path.exists() && !args.force {
        return Err(exists());
    }
    // Through a symlink, the file it points to is replaced, with its mode.
    let dest = if path.exists() {
        std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))?
    } else {
        path.clone()
    };
    let mode = std::fs::metadata(&dest).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut staged = crate::util::fsx::Staged::beside(&dest)?;
    staged
        .write_all(config::DEFAULT_TOML.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    match staged.commit_new(mode, args.force) {
        Err(e) if crate::util::fsx::is_io(&e, std::io::ErrorKind::AlreadyExists) => {
            return Err(exists())
        }
        r => r?,
    }
    println!("wrote {}", path.display());
    Ok(())
}

/// Render everything into the out dir.
pub fn render(config: Option<&Path>, out: &Path) -> Result<()> {
    let started = Instant::now();
    let lock = crate::output::lock(out)?;
    let (valid, _) = config::load(config)?;
    let facts = crate::bake::packer::facts(out, &valid.config)?;
    let (_, tree) =
        crate::output::render_to(&valid, &facts, Scope::All, out, &lock, |_, _| Ok(()))?;
    println!(
        "rendered {} files into {} in {} ms",
        tree.files.len(),
        out.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Print the fully resolved config.
pub fn show_config(config: Option<&Path>) -> Result<()> {
    let (valid, source) = config::load(config)?;
    println!("# resolved config from {source}");
    print!(
        "{}",
        toml::to_string(&valid.config).context("printing the config")?
    );
    Ok(())
}

/// `regbake completions`
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the completion script for `args.shell` of the command line `cmd`.
pub fn completions(mut cmd: clap::Command, args: &CompletionsArgs) -> Result<()> {
    let name = cmd.get_name().to_string();
    // Into a buffer first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    write_stdout(&script)
}

/// Print one roff man page for the command line `cmd`: the top level, then
/// every command with its own synopsis and options, then the exit status.
pub fn man(cmd: clap::Command) -> Result<()> {
    use clap_mangen::roff::{roman, Roff};
    let top = clap_mangen::Man::new(cmd.clone());
    // The title line by hand: the library leaves out an empty date, which
    // shifts the version into the date's place.
    let mut page = format!(
        ".TH {} 1 \"\" \"{} {}\" \"User Commands\"\n",
        cmd.get_name().to_uppercase(),
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    )
    .into_bytes();
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    page.extend_from_slice(b".SH COMMANDS\n");
    // The definitions as written, before clap adds `help` and propagates
    // the global options into every command.
    for sub in cmd.get_subcommands() {
        man_command(&mut page, sub, cmd.get_name())?;
    }
    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success."),
        (
            "1",
            "Any other failure: an external tool or a validator failed, or I/O.",
        ),
        (
            "2",
            "Invalid config or usage; the message names the field, its value and what is accepted.",
        ),
    ] {
        tail.control("TP", [])
            .text([roman(code)])
            .text([roman(meaning)]);
    }
    tail.control("SH", ["FILES"]);
    for (file, meaning) in [
        (
            "regbake.toml",
            "The config (regbake init writes one); without it the embedded defaults are used.",
        ),
        (
            "out/",
            "Everything regbake renders, bakes and logs (see --out).",
        ),
    ] {
        tail.control("TP", [])
            .text([roman(file)])
            .text([roman(meaning)]);
    }
    tail.to_writer(&mut page)?;
    top.render_version_section(&mut page)?;
    write_stdout(&tidy(&page))
}

/// One `.SS` per command (`regbake box pack` under `regbake box`): the
/// library's synopsis, description and options sections without their
/// `.SH` headings.
fn man_command(page: &mut Vec<u8>, cmd: &clap::Command, parent: &str) -> Result<()> {
    let name = format!("{parent} {}", cmd.get_name());
    let man = clap_mangen::Man::new(cmd.clone().bin_name(&name));
    let mut body = Vec::new();
    man.render_synopsis_section(&mut body)?;
    body.extend_from_slice(b".PP\n");
    man.render_description_section(&mut body)?;
    man.render_options_section(&mut body)?;
    page.extend_from_slice(format!(".SS \"{name}\"\n").as_bytes());
    for line in body.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b".SH ") {
            page.extend_from_slice(line);
        }
    }
    for sub in cmd.get_subcommands() {
        man_command(page, sub, &name)?;
    }
    Ok(())
}

/// The page without the quote-string definition the library puts before
/// each section: defined once, at the top.
fn tidy(page: &[u8]) -> Vec<u8> {
    const AQ: [&[u8]; 2] = [b".ie \\n(.g .ds Aq \\(aq\n", b".el .ds Aq '\n"];
    let mut out: Vec<u8> = AQ.concat();
    for line in page.split_inclusive(|&b| b == b'\n') {
        if !AQ.contains(&line) {
            out.extend_from_slice(line);
        }
    }
    out
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}
