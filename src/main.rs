use clap::Parser;

fn main() {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`regbake probe … | head`) instead of panicking on a failed print.
    // Sockets are unaffected: std sends with MSG_NOSIGNAL.
    // SAFETY: called before any other thread exists; only resets a signal
    // disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = regbake::cli::Cli::parse();
    if let Err(err) = regbake::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(regbake::exit_code(&err));
    }
}
