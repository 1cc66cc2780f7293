use clap::Parser;

fn main() {
    let cli = regbake::cli::Cli::parse();
    if let Err(err) = regbake::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(regbake::exit_code(&err));
    }
}
