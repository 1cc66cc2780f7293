use clap::{CommandFactory, Parser};
use regbake::cli::{Cli, Command};
use regbake::{bake, boxes, check, commands, config, fleet, probe, util};

// glibc's malloc raises its mmap threshold after big buffers are freed, then
// serves them from fragmented arenas: a 100,000-host fleet render peaked at
// 0.3 or 1 GB depending on kickstart sizes. mimalloc keeps it flat.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`regbake probe … | head`) instead of panicking on a failed print.
    // Sockets are unaffected: std sends with MSG_NOSIGNAL.
    // SAFETY: called before any other thread exists; only resets a signal
    // disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A file size limit (RLIMIT_FSIZE) reached is an error of the write, as
    // a full disk is, not a kill: the temp file is removed and the file it
    // was to replace stays as it was.
    // SAFETY: as above; ignoring a signal is inherited by no thread yet.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    util::log::set_verbose(cli.global.verbose);
    let (config, out, dry_run) = (
        cli.global.config.as_deref(),
        &cli.global.out,
        cli.global.dry_run,
    );
    let result = match &cli.command {
        Command::Init(a) => commands::init(config, a),
        Command::Render => commands::render(config, out),
        Command::Check(a) => check::command(config, out, a),
        Command::Kickstart(a) => fleet::run(config, out, a),
        Command::Config => commands::show_config(config),
        Command::Vagrant(a) => bake::vagrant::run(config, out, dry_run, a),
        Command::Packer(a) => bake::packer::run(config, out, dry_run, a),
        Command::Box(c) => boxes::run(config, out, dry_run, c),
        Command::Probe(a) => probe::run(a),
        Command::Completions(a) => commands::completions(Cli::command(), a),
        Command::Man => commands::man(Cli::command()),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(config::exit_code(&err));
    }
}
