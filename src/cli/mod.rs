//! Binary only: clap arguments → validated plan → run → exit code.
//!
//! Exit codes are part of the interface: 0 ok, 1 findings (drift, verification
//! failures, orphans), 2 error.

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
    // `exec_command` repeats this about text; a test compares the two.
    /// Run a daemon under the manifest's rules: pass sockets through, or guard a single instance off-init
    Exec(exec::Args),
    /// Render and install a manifest into the service manager, then enable and start it
    ///
    /// A unix socket path that another installed service declares, or that a
    /// process listens on, is refused before anything is written: the socket
    /// unit would unlink it and strand that listener.
    ///
    /// Installing again over an initkit install updates the files; units it
    /// no longer renders (a dropped or renamed socket, a changed launchd
    /// label) are stopped, disabled and removed; a socket whose address or
    /// options changed is stopped and started again so it listens anew, and
    /// when sockets changed or were added the service is stopped, so the next
    /// client starts it with every socket.
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

/// Run the command line; returns the exit code (0 ok, 1 findings, 2 error).
pub fn main() -> u8 {
    let cli = parse();
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
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Findings) => 1,
        Err(err) => {
            eprintln!("initkit: error: {}", chain(&err));
            2
        }
    }
}

/// `err` and its causes, `: `-separated, like `{err:#}`, except that a cause
/// whose text the message already includes is not repeated (the library's
/// errors show their OS error and also return it as their source).
pub fn chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// The command line. `initkit exec` is on every daemon start: its common
/// forms are parsed without clap ([`exec::Args::fast`]), the rest by its own
/// parser alone (the full one builds every subcommand's, a quarter of a
/// millisecond); [`exec_command`] gives it the same name, help, version and
/// errors as the full parser's `exec`.
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    if std::env::args_os().nth(1).is_some_and(|a| a == "exec") {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        if let Some(args) = exec::Args::fast(&argv) {
            return Cli {
                command: Command::Exec(args),
            };
        }
        let matches = exec_command().get_matches_from(std::env::args_os().skip(1));
        match exec::Args::from_arg_matches(&matches) {
            Ok(args) => {
                return Cli {
                    command: Command::Exec(args),
                }
            }
            Err(e) => e.format(&mut Cli::command()).exit(),
        }
    }
    Cli::parse()
}

/// The `exec` subcommand alone, as the full parser shows it.
fn exec_command() -> clap::Command {
    <exec::Args as clap::Args>::augment_args(
        clap::Command::new("exec")
            .bin_name("initkit exec")
            .display_name("initkit-exec")
            .version(env!("CARGO_PKG_VERSION"))
            .about("Run a daemon under the manifest's rules: pass sockets through, or guard a single instance off-init"),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn error_chain_does_not_repeat_a_cause_the_message_shows() {
        use initkit::activation::guard::GuardError;
        let bind = GuardError::Bind {
            name: "control".into(),
            path: "/run/x.sock".into(),
            call: "stat",
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(std::error::Error::source(&bind).is_some());
        let err = anyhow::Error::new(bind).context("single-instance guard");
        assert_eq!(
            chain(&err),
            "single-instance guard: stat for socket \"control\" at /run/x.sock: No such file or directory (os error 2)"
        );
        // A cause the message does not show is kept.
        let err = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES))
            .context("cannot read manifest m.toml");
        assert_eq!(
            chain(&err),
            "cannot read manifest m.toml: Permission denied (os error 13)"
        );
    }

    fn clap_exec(argv: &[std::ffi::OsString]) -> Option<String> {
        use clap::FromArgMatches;
        let matches = exec_command()
            .try_get_matches_from(std::iter::once("exec".into()).chain(argv.iter().cloned()))
            .ok()?;
        Some(format!(
            "{:?}",
            exec::Args::from_arg_matches(&matches).ok()?
        ))
    }

    fn os(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(std::ffi::OsString::from).collect()
    }

    /// How daemons are started (units, plists, docs, tests): parsed without clap.
    #[test]
    fn common_exec_lines_take_the_fast_path_and_parse_as_clap_does() {
        for argv in [
            &["--manifest", "/etc/initkit/echo.toml"][..],
            &["--manifest=m.toml", "--", "/bin/true"],
            &["echo"],
            &["echo", "--failure-budget"],
            &[
                "--watch-interval",
                "0",
                "--manifest",
                "m.toml",
                "--",
                "/bin/x",
                "-v",
                "--",
            ],
            &["--watch-interval=2.5", "--failure-budget", "echo", "--"],
        ] {
            let argv = os(argv);
            let fast = exec::Args::fast(&argv).map(|a| format!("{a:?}"));
            assert!(fast.is_some(), "{argv:?} should take the fast path");
            assert_eq!(fast, clap_exec(&argv), "{argv:?}");
        }
        // Not fast: left to clap, for its help, version and errors.
        for argv in [
            &["--help"][..],
            &["-V"],
            &[],
            &["--manifest", "m.toml", "echo"],
            &["--manifest", "--", "/bin/true"],
            &["--manifest=", "x"],
            &["--watch-interval", "soon", "echo"],
            &["--failure-budget=yes", "echo"],
            &["echo", "--manifest", "a", "--manifest", "b"],
            &["echo", "other"],
            &["--bogus", "echo"],
        ] {
            assert!(exec::Args::fast(&os(argv)).is_none(), "{argv:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the fast path accepts, clap accepts and parses the same.
        #[test]
        fn fast_exec_parse_never_disagrees_with_clap(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "--manifest", "--manifest=m.toml", "m.toml", "--failure-budget",
                "--failure-budget=1", "--watch-interval", "--watch-interval=1e-3", "0.5",
                "-1", "nan", "", "-", "--", "-h", "--help", "-V", "echo", "a=b", "--bogus",
                "/bin/x", "-v",
            ]), 0..8)
        ) {
            let argv = os(&words);
            if let Some(fast) = exec::Args::fast(&argv) {
                proptest::prop_assert_eq!(Some(format!("{fast:?}")), clap_exec(&argv), "{:?}", words);
            }
        }
    }

    /// The fast `exec` parser renders the same help and version as the full
    /// parser's `exec`, and parses the same way.
    #[test]
    fn exec_parser_matches_the_full_one() {
        let mut full = Cli::command();
        full.build();
        let mut full_exec = full.find_subcommand("exec").unwrap().clone();
        let mut fast = exec_command();
        assert_eq!(
            fast.render_long_help().to_string(),
            full_exec.render_long_help().to_string()
        );
        assert_eq!(fast.render_version(), full_exec.render_version());
        assert_eq!(
            fast.render_usage().to_string(),
            full_exec.render_usage().to_string()
        );
        let argv = [
            "exec",
            "--manifest",
            "m.toml",
            "--watch-interval",
            "0",
            "--",
            "/bin/x",
            "-v",
        ];
        let fast_args = format!("{:?}", {
            use clap::FromArgMatches;
            exec::Args::from_arg_matches(&exec_command().get_matches_from(argv)).unwrap()
        });
        let Command::Exec(full_args) =
            Cli::parse_from(std::iter::once("initkit").chain(argv)).command
        else {
            panic!("not exec");
        };
        assert_eq!(fast_args, format!("{full_args:?}"));
    }
}
