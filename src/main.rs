//! The `initkit` command: see `initkit --help` and README.md.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
