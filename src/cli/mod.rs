//! Binary only: clap arguments → validated plan → run → exit code.
//!
//! Exit codes are part of the interface: 0 ok, 1 findings (drift, verification
//! failures, orphans), 2 error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod exec;
mod generate;
mod manage;
mod manual;
mod orphans;
mod verify;

/// What a command found, mapped onto the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found something (drift, lint errors, orphans).
    Findings,
}

/// Make the init system own your daemon's socket and its single instance.
#[derive(Debug, Parser)]
#[command(name = "initkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render systemd units and launchd plists from manifests
    Generate(generate::Args),
    /// Validate manifests, render them and check the output with systemd-analyze and a plist lint
    Verify(verify::Args),
    /// Run a daemon under the manifest's rules: pass sockets through, or guard a single instance off-init
    Exec(exec::Args),
    /// Render and install a manifest into the service manager, then enable and start it
    Install(manage::InstallArgs),
    /// Stop, disable and remove a service that initkit installed
    Uninstall(manage::NameArgs),
    /// Start a service (its socket unit when socket-activated)
    Start(manage::NameArgs),
    /// Stop a service and its socket unit
    Stop(manage::NameArgs),
    /// Restart a service
    Restart(manage::NameArgs),
    /// Show the state of one or every initkit-installed service
    Status(manage::StatusArgs),
    /// Show a service's logs
    Logs(manage::LogsArgs),
    /// Find, report and safely stop instances the service manager does not track
    Orphans(orphans::Args),
    /// Print shell completions for initkit
    Completions(manual::CompletionsArgs),
    /// Print initkit's man page (roff)
    Man,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Exec(args) => exec::run(args),
        Command::Install(args) => manage::install(&args),
        Command::Uninstall(args) => manage::uninstall(&args),
        Command::Start(args) => manage::start(&args),
        Command::Stop(args) => manage::stop(&args),
        Command::Restart(args) => manage::restart(&args),
        Command::Status(args) => manage::status(&args),
        Command::Logs(args) => manage::logs(&args),
        Command::Orphans(args) => orphans::run(&args),
        Command::Completions(args) => manual::completions(&args),
        Command::Man => manual::man(),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) => {
            eprintln!("initkit: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A manifest read from disk, with the name it is reported under.
#[derive(Debug)]
pub struct Loaded {
    pub path: std::path::PathBuf,
    pub text: String,
    pub manifest: initkit::manifest::Manifest,
}

/// Read and validate a manifest; errors name the file, then the field.
pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<Loaded> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let manifest = initkit::manifest::Manifest::from_toml(&text)
        .with_context(|| format!("{}", path.display()))?;
    Ok(Loaded {
        path: path.to_owned(),
        text,
        manifest,
    })
}

/// Scope as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    User,
    System,
}

impl From<ScopeArg> for initkit::manifest::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::User => initkit::manifest::Scope::User,
            ScopeArg::System => initkit::manifest::Scope::System,
        }
    }
}

/// Whose home launchd agents' per-user paths resolve to: `--home`, else
/// `$HOME`; without either, only placeholder-free agents render.
pub fn launchd_target(home: Option<&std::path::Path>) -> initkit::render::launchd::Target {
    let home = home
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("HOME").map(std::path::PathBuf::from))
        .filter(|h| h.is_absolute());
    home.map_or(initkit::render::launchd::Target::System, |home| {
        initkit::render::launchd::Target::User { home }
    })
}
