//! The launchd backend: `launchctl` with modern verbs only (`enable`,
//! `bootstrap`, `bootout`, `kickstart`, `print`), never `load`/`unload`.
//!
//! Everything here compiles and is tested on Linux: argv building
//! ([`Step::argv`]) and `launchctl print` parsing ([`parse_print`]) are pure,
//! and every call goes through one [`Runner`], so command sequences such as
//! the "Bootstrap failed: 5" retry run against a recording fake in tests.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::runner::{check, CommandError, CommandOutput, Runner, System};
use super::{BackendError, ManagerView, Rewrite, ServiceManager, ServiceStatus, UnitState};
use crate::dirs::Dirs;
use crate::manifest::{Listen, Manifest, Output, Scope};
use crate::render::{RenderError, Rendered};

pub const LAUNCHCTL: &str = "launchctl";

/// `launchctl print` exits with this when the service is not loaded.
const NOT_FOUND_STATUS: i32 = 113;

/// A launchd domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// `gui/<uid>`: the user's Aqua login session.
    Gui(u32),
    /// `user/<uid>`: the user's background domain (no GUI session, e.g. ssh).
    User(u32),
    /// `system`: LaunchDaemons.
    System,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Gui(uid) => write!(f, "gui/{uid}"),
            Domain::User(uid) => write!(f, "user/{uid}"),
            Domain::System => write!(f, "system"),
        }
    }
}

/// `<domain>/<label>`, the service target most verbs take.
pub fn service_target(domain: &Domain, label: &str) -> String {
    format!("{domain}/{label}")
}

/// One `launchctl` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `launchctl enable TARGET`: clear a previous `disable`.
    Enable { target: String },
    /// `launchctl bootstrap DOMAIN PLIST`; when the label is already loaded
    /// ("Bootstrap failed: 5"), boot it out, wait, and retry once, so the new
    /// plist takes effect.
    Bootstrap {
        domain: String,
        plist: PathBuf,
        target: String,
    },
    /// Like `Bootstrap`, but a job that is already loaded is left alone.
    Load {
        domain: String,
        plist: PathBuf,
        target: String,
    },
    /// `launchctl bootout TARGET`; a service that is not loaded is fine.
    Bootout { target: String },
    /// `launchctl kickstart [-k] TARGET`: start now (`-k`: kill and restart).
    Kickstart { target: String, kill: bool },
}

impl Step {
    /// The `launchctl` arguments of the step's main call; pure.
    pub fn argv(&self) -> Vec<OsString> {
        match self {
            Step::Enable { target } => vec!["enable".into(), target.into()],
            Step::Bootstrap { domain, plist, .. } | Step::Load { domain, plist, .. } => {
                vec!["bootstrap".into(), domain.into(), plist.into()]
            }
            Step::Bootout { target } => vec!["bootout".into(), target.into()],
            Step::Kickstart { target, kill } => {
                let mut argv: Vec<OsString> = vec!["kickstart".into()];
                if *kill {
                    argv.push("-k".into());
                }
                argv.push(target.into());
                argv
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LAUNCHCTL}")?;
        for arg in self.argv() {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        if let Step::Load { .. } = self {
            write!(f, " (unless loaded)")?;
        }
        Ok(())
    }
}

/// `launchctl print ARGS`; pure.
pub fn print_argv(target: &str) -> Vec<OsString> {
    vec!["print".into(), target.into()]
}

/// How a job's last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExit {
    /// `last exit code = (never exited)`.
    Never,
    /// `last exit code = 78: EX_CONFIG` → 78.
    Code(i32),
    /// `last terminating signal = Terminated: 15` → 15.
    Signal(i32),
}

/// What initkit reads from `launchctl print`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintInfo {
    /// `running`, `not running`, `spawn scheduled`, ...
    pub state: Option<String>,
    pub pid: Option<u32>,
    pub last_exit: Option<LastExit>,
    pub runs: Option<u32>,
}

/// Parse `launchctl print <domain>/<label>` output; pure.
///
/// Only the service's own (top-level) keys count: nested blocks such as
/// `resource coalition = { state = active }` are skipped by brace depth.
pub fn parse_print(text: &str) -> PrintInfo {
    let mut info = PrintInfo::default();
    let mut depth = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let opens = line.ends_with('{') || line.ends_with('[');
        // `}` or `]` alone closes a block; so does a `]` after whitespace at
        // the end of a line (a captured `0 = \t\t\t\t]`), but not the `]` of
        // a value such as `domain = gui/501 [100020]`.
        let closes = line.starts_with('}')
            || line.starts_with(']')
            || line
                .strip_suffix(']')
                .is_some_and(|rest| rest.ends_with(char::is_whitespace));
        if depth == 1 && !opens {
            if let Some((key, value)) = line.split_once(" = ") {
                let value = value.trim();
                let number = |v: &str| {
                    v.split(|c: char| !c.is_ascii_digit() && c != '-')
                        .next()
                        .and_then(|n| n.parse::<i64>().ok())
                };
                match key.trim() {
                    "state" => info.state = Some(value.to_owned()),
                    "pid" => info.pid = number(value).and_then(|n| u32::try_from(n).ok()),
                    "runs" => info.runs = number(value).and_then(|n| u32::try_from(n).ok()),
                    "last exit code" => {
                        info.last_exit = if value.starts_with('(') {
                            Some(LastExit::Never)
                        } else {
                            number(value)
                                .and_then(|n| i32::try_from(n).ok())
                                .map(LastExit::Code)
                        };
                    }
                    "last terminating signal" => {
                        info.last_exit = value
                            .rsplit(": ")
                            .next()
                            .and_then(|n| n.trim().parse().ok())
                            .map(LastExit::Signal);
                    }
                    _ => {}
                }
            }
        }
        if opens {
            depth += 1;
        } else if closes {
            depth = depth.saturating_sub(1);
        }
    }
    info
}

/// Whether a failed `launchctl` call means "not loaded"; pure.
pub fn is_not_loaded(out: &CommandOutput) -> bool {
    out.code == Some(NOT_FOUND_STATUS)
        || out.stderr.contains("Could not find service")
        || out.stdout.contains("Could not find service")
        // bootout of a job that is not loaded: "Boot-out failed: 3: No such process"
        || out.stderr.contains("No such process")
}

/// "Bootstrap failed: 5: Input/output error": usually the label is loaded.
pub fn is_already_loaded(out: &CommandOutput) -> bool {
    out.code == Some(5) || out.stderr.contains("Bootstrap failed: 5")
}

/// The launchd manager of one scope.
pub struct Launchd<R: Runner = System> {
    scope: Scope,
    domain: Domain,
    unit_dir: PathBuf,
    home: PathBuf,
    runner: R,
    /// How long to wait for a booted-out job to disappear before the retry.
    settle: Duration,
}

impl<R: Runner> fmt::Debug for Launchd<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launchd")
            .field("scope", &self.scope)
            .field("domain", &self.domain)
            .field("unit_dir", &self.unit_dir)
            .finish_non_exhaustive()
    }
}

/// `~/Library/LaunchAgents` or `/Library/LaunchDaemons`; pure.
pub fn unit_dir(scope: Scope, home: &Path) -> PathBuf {
    match scope {
        Scope::User => home.join("Library/LaunchAgents"),
        Scope::System => PathBuf::from("/Library/LaunchDaemons"),
    }
}

impl Launchd<System> {
    /// The launchd domain of `scope` for this process: `gui/<uid>` when the
    /// user has a GUI session (`launchctl print gui/<uid>` answers), else
    /// `user/<uid>`; `system` for system scope.
    pub fn new(scope: Scope) -> Launchd<System> {
        let uid = nix::unistd::getuid().as_raw();
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let domain = match scope {
            Scope::System => Domain::System,
            Scope::User => {
                let gui = Domain::Gui(uid).to_string();
                let has_gui = System
                    .run(LAUNCHCTL, &print_argv(&gui))
                    .is_ok_and(|o| o.success());
                if has_gui {
                    Domain::Gui(uid)
                } else {
                    Domain::User(uid)
                }
            }
        };
        Launchd::with_runner(scope, domain, home, System)
    }
}

impl<R: Runner> Launchd<R> {
    /// A backend with an explicit domain, home and runner (tests use a fake).
    pub fn with_runner(scope: Scope, domain: Domain, home: PathBuf, runner: R) -> Launchd<R> {
        Launchd {
            scope,
            unit_dir: unit_dir(scope, &home),
            domain,
            home,
            runner,
            settle: Duration::from_secs(5),
        }
    }

    /// Wait at most `settle` after a bootout before retrying a bootstrap.
    #[must_use]
    pub fn with_settle(mut self, settle: Duration) -> Launchd<R> {
        self.settle = settle;
        self
    }

    fn target(&self, m: &Manifest) -> String {
        service_target(&self.domain, &m.label)
    }

    fn plist(&self, m: &Manifest) -> PathBuf {
        self.unit_dir.join(format!("{}.plist", m.label))
    }

    fn run(&self, args: &[OsString]) -> Result<CommandOutput, CommandError> {
        self.runner.run(LAUNCHCTL, args)
    }

    /// `launchctl print TARGET`, or `None` when the service is not loaded.
    pub fn print(&self, target: &str) -> Result<Option<PrintInfo>, BackendError> {
        let args = print_argv(target);
        let out = self.run(&args)?;
        if out.success() {
            return Ok(Some(parse_print(&out.stdout)));
        }
        if is_not_loaded(&out) {
            return Ok(None);
        }
        Err(check(LAUNCHCTL, &args, out).unwrap_err().into())
    }

    fn bootout(&self, target: &str) -> Result<(), BackendError> {
        let args = Step::Bootout {
            target: target.to_owned(),
        }
        .argv();
        let out = self.run(&args)?;
        if out.success() || is_not_loaded(&out) {
            return Ok(());
        }
        Err(check(LAUNCHCTL, &args, out).unwrap_err().into())
    }

    /// Poll `print` until the target is gone, at most `settle`.
    fn wait_gone(&self, target: &str) -> Result<(), BackendError> {
        let deadline = std::time::Instant::now() + self.settle;
        while self.print(target)?.is_some() {
            if std::time::Instant::now() >= deadline {
                return Err(BackendError::Launchd(format!(
                    "{target} is still loaded {} s after bootout",
                    self.settle.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn bootstrap(&self, step: &Step, target: &str, replace: bool) -> Result<(), BackendError> {
        let args = step.argv();
        let out = self.run(&args)?;
        if out.success() {
            return Ok(());
        }
        if !is_already_loaded(&out) {
            return Err(check(LAUNCHCTL, &args, out).unwrap_err().into());
        }
        if !replace && self.print(target)?.is_some() {
            return Ok(());
        }
        self.bootout(target)?;
        self.wait_gone(target)?;
        let out = self.run(&args)?;
        check(LAUNCHCTL, &args, out).map(drop).map_err(Into::into)
    }

    /// The files launchd writes the job's stdout and stderr to.
    pub fn log_files(&self, m: &Manifest) -> Vec<PathBuf> {
        let dirs = self.dirs();
        let mut files = Vec::new();
        for output in [&m.stdout, &m.stderr] {
            let path = match output {
                Output::Journal => dirs.logs.join(format!("{}.log", m.name)),
                Output::File(t) => dirs.resolve(t),
            };
            if !files.contains(&path) {
                files.push(path);
            }
        }
        files
    }

    fn dirs(&self) -> Dirs {
        match self.scope {
            Scope::System => Dirs::system(),
            Scope::User => {
                let home = self.home.clone();
                Dirs::user_from(|k| match k {
                    "HOME" => Some(home.clone().into()),
                    // macOS has no XDG_RUNTIME_DIR; launchd agents use TMPDIR
                    "XDG_RUNTIME_DIR" => std::env::var_os(k)
                        .or_else(|| std::env::var_os("TMPDIR"))
                        .or_else(|| Some("/tmp".into())),
                    _ => std::env::var_os(k),
                })
                .unwrap_or_else(|_| Dirs::system())
            }
        }
    }
}

impl<R: Runner> ServiceManager for Launchd<R> {
    type Step = Step;

    fn kind(&self) -> &'static str {
        "launchd"
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn unit_dir(&self) -> &Path {
        &self.unit_dir
    }

    fn render(&self, manifest: &Manifest, source_name: &str) -> Result<Rendered, RenderError> {
        let target = match self.scope {
            Scope::User => crate::render::launchd::Target::User {
                home: self.home.clone(),
            },
            Scope::System => crate::render::launchd::Target::System,
        };
        crate::render::launchd::render(manifest, &target, source_name)
    }

    fn install_steps(&self, m: &Manifest, _files: &[PathBuf], start: bool) -> Vec<Step> {
        let target = self.target(m);
        let mut steps = vec![Step::Enable {
            target: target.clone(),
        }];
        if start {
            steps.push(Step::Bootstrap {
                domain: self.domain.to_string(),
                plist: self.plist(m),
                target,
            });
        }
        steps
    }

    fn uninstall_steps(&self, m: &Manifest, _files: &[PathBuf]) -> (Vec<Step>, Vec<Step>) {
        (
            vec![Step::Bootout {
                target: self.target(m),
            }],
            Vec::new(),
        )
    }

    /// The only file is `<label>.plist`, so a stale one means the label
    /// changed: boot the job out under its old label. A rewritten plist needs
    /// nothing here: bootstrapping over the loaded job replaces it (see
    /// [`Step::Bootstrap`]).
    fn prepare_steps(
        &self,
        previous: Option<&Manifest>,
        stale: &[PathBuf],
        _rewrites: &[Rewrite<'_>],
    ) -> Vec<Step> {
        match previous {
            Some(previous) if !stale.is_empty() => vec![Step::Bootout {
                target: self.target(previous),
            }],
            _ => Vec::new(),
        }
    }

    fn start_steps(&self, m: &Manifest) -> Vec<Step> {
        let target = self.target(m);
        let mut steps = vec![
            Step::Enable {
                target: target.clone(),
            },
            Step::Load {
                domain: self.domain.to_string(),
                plist: self.plist(m),
                target: target.clone(),
            },
        ];
        // A socket-activated or scheduled job is started by launchd itself.
        if m.sockets.is_empty() && m.schedule.is_none() {
            steps.push(Step::Kickstart {
                target,
                kill: false,
            });
        }
        steps
    }

    /// launchd has no "stopped but loaded" state for a KeepAlive job: stop
    /// boots the job out (it is loaded again at next login, or by `start`).
    fn stop_steps(&self, m: &Manifest) -> Vec<Step> {
        vec![Step::Bootout {
            target: self.target(m),
        }]
    }

    fn restart_steps(&self, m: &Manifest) -> Vec<Step> {
        let target = self.target(m);
        vec![
            Step::Load {
                domain: self.domain.to_string(),
                plist: self.plist(m),
                target: target.clone(),
            },
            Step::Kickstart { target, kill: true },
        ]
    }

    fn perform(&self, step: &Step) -> Result<(), BackendError> {
        match step {
            Step::Bootstrap { target, .. } => self.bootstrap(step, target, true),
            Step::Load { target, .. } => {
                if self.print(target)?.is_some() {
                    return Ok(());
                }
                self.bootstrap(step, target, false)
            }
            Step::Bootout { target } => self.bootout(target),
            Step::Enable { .. } | Step::Kickstart { .. } => {
                let args = step.argv();
                let out = self.run(&args)?;
                check(LAUNCHCTL, &args, out).map(drop).map_err(Into::into)
            }
        }
    }

    fn status(&self, m: &Manifest) -> Result<ServiceStatus, BackendError> {
        let target = self.target(m);
        let info = self.print(&target)?;
        let loaded = info.is_some();
        let info = info.unwrap_or_default();
        let running = info.pid.is_some() || info.state.as_deref() == Some("running");
        let exit = match info.last_exit {
            Some(LastExit::Code(c)) => Some(c),
            Some(LastExit::Signal(s)) => Some(128 + s),
            _ => None,
        };
        let result = match info.last_exit {
            None | Some(LastExit::Never | LastExit::Code(0)) => "success",
            Some(LastExit::Code(_)) => "exit-code",
            Some(LastExit::Signal(_)) => "signal",
        };
        let dirs = self.dirs();
        let listen = m
            .sockets
            .iter()
            .map(|s| match &s.listen {
                Listen::Unix(path) => dirs.resolve(path).display().to_string(),
                other => other.spelling(),
            })
            .collect();
        Ok(ServiceStatus {
            name: m.name.clone(),
            scope: self.scope,
            manager: "launchd",
            manifest: None,
            service: UnitState {
                unit: target,
                load_state: if loaded { "loaded" } else { "not-loaded" }.to_owned(),
                active_state: if running { "active" } else { "inactive" }.to_owned(),
                sub_state: info.state.unwrap_or_else(|| "not loaded".to_owned()),
                result: result.to_owned(),
            },
            sockets: Vec::new(),
            timer: None,
            main_pid: info.pid,
            n_restarts: info.runs.map(|r| r.saturating_sub(1)),
            exec_main_status: exit,
            listen,
            status_text: None,
            start_limit_hit: false,
            thrash: false,
            thrash_reason: None,
            linger: None,
            orphans: None,
        })
    }

    fn manager_view(&self, m: &Manifest) -> Result<ManagerView, BackendError> {
        let pid = self.print(&self.target(m))?.and_then(|i| i.pid);
        Ok(ManagerView {
            control_group: None,
            main_pid: pid,
            pids: pid.into_iter().collect(),
        })
    }

    fn logs_command(&self, m: &Manifest, follow: bool, lines: Option<u32>) -> Command {
        let mut cmd = Command::new("tail");
        cmd.arg("-n").arg(lines.unwrap_or(10).to_string());
        if follow {
            cmd.arg("-F");
        }
        cmd.args(self.log_files(m));
        cmd
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/launchctl")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn parse_captured_running_agent() {
        let info = parse_print(&fixture("running.txt"));
        assert_eq!(
            info,
            PrintInfo {
                state: Some("running".into()),
                pid: Some(1076),
                last_exit: Some(LastExit::Never),
                runs: Some(1),
            }
        );
    }

    #[test]
    fn parse_captured_failed_agent_ignores_nested_state() {
        let info = parse_print(&fixture("exited-1.txt"));
        assert_eq!(
            info.state.as_deref(),
            Some("not running"),
            "nested `state = active` must not win"
        );
        assert_eq!(info.pid, None);
        assert_eq!(info.last_exit, Some(LastExit::Code(1)));
        assert_eq!(info.runs, Some(4));
    }

    #[test]
    fn parse_captured_never_run_agent() {
        let info = parse_print(&fixture("never-run.txt"));
        assert_eq!(info.state.as_deref(), Some("not running"));
        assert_eq!(info.runs, Some(0));
        assert_eq!(info.last_exit, Some(LastExit::Never));
    }

    #[test]
    fn parse_exit_code_with_name_and_signal() {
        let info = parse_print(
            "gui/501/x = {\n\tstate = not running\n\tlast exit code = 78: EX_CONFIG\n}\n",
        );
        assert_eq!(info.last_exit, Some(LastExit::Code(78)));
        let info = parse_print("gui/501/x = {\n\tlast terminating signal = Terminated: 15\n}\n");
        assert_eq!(info.last_exit, Some(LastExit::Signal(15)));
    }

    #[test]
    fn not_found_output_means_not_loaded() {
        let out = CommandOutput {
            code: Some(113),
            stdout: String::new(),
            stderr: fixture("not-found.stderr"),
        };
        assert!(is_not_loaded(&out));
        let other = CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "Bad request.".into(),
        };
        assert!(!is_not_loaded(&other));
    }

    #[test]
    fn argv_uses_modern_verbs() {
        let d = Domain::Gui(501);
        let target = service_target(&d, "org.example.echo");
        assert_eq!(target, "gui/501/org.example.echo");
        let shown = |s: Step| s.to_string();
        assert_eq!(
            shown(Step::Enable {
                target: target.clone()
            }),
            "launchctl enable gui/501/org.example.echo"
        );
        assert_eq!(
            shown(Step::Bootstrap {
                domain: d.to_string(),
                plist: "/Users/u/Library/LaunchAgents/org.example.echo.plist".into(),
                target: target.clone()
            }),
            "launchctl bootstrap gui/501 /Users/u/Library/LaunchAgents/org.example.echo.plist"
        );
        assert_eq!(
            shown(Step::Kickstart {
                target: target.clone(),
                kill: true
            }),
            "launchctl kickstart -k gui/501/org.example.echo"
        );
        assert_eq!(
            shown(Step::Bootout { target }),
            "launchctl bootout gui/501/org.example.echo"
        );
        assert_eq!(Domain::User(501).to_string(), "user/501");
        assert_eq!(
            unit_dir(Scope::System, Path::new("/Users/u")),
            PathBuf::from("/Library/LaunchDaemons")
        );
    }

    /// Records every call and answers from a script.
    struct Fake {
        calls: RefCell<Vec<String>>,
        answers: RefCell<VecDeque<CommandOutput>>,
    }

    impl Fake {
        fn new(answers: Vec<(i32, &str)>) -> Fake {
            Fake {
                calls: RefCell::new(Vec::new()),
                answers: RefCell::new(
                    answers
                        .into_iter()
                        .map(|(code, stderr)| CommandOutput {
                            code: Some(code),
                            stdout: String::new(),
                            stderr: stderr.into(),
                        })
                        .collect(),
                ),
            }
        }
    }

    impl Runner for &Fake {
        fn run(&self, program: &str, args: &[OsString]) -> Result<CommandOutput, CommandError> {
            let mut line = program.to_owned();
            for a in args {
                line.push(' ');
                line.push_str(&a.to_string_lossy());
            }
            self.calls.borrow_mut().push(line);
            Ok(self
                .answers
                .borrow_mut()
                .pop_front()
                .expect("an answer for every call"))
        }
    }

    fn manifest() -> Manifest {
        Manifest::from_toml(
            "name = \"echo\"\nlabel = \"org.example.echo\"\ncommand = [\"/bin/echo\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn bootstrap_failed_5_boots_out_waits_and_retries_once() {
        let fake = Fake::new(vec![
            (5, "Bootstrap failed: 5: Input/output error"),
            (0, ""),                         // bootout
            (113, "Could not find service"), // print: gone
            (0, ""),                         // bootstrap again
        ]);
        let l = Launchd::with_runner(Scope::User, Domain::Gui(501), "/Users/u".into(), &fake)
            .with_settle(Duration::from_secs(1));
        let steps = l.install_steps(&manifest(), &[], true);
        l.perform(&steps[1]).unwrap();
        assert_eq!(
            *fake.calls.borrow(),
            [
                "launchctl bootstrap gui/501 /Users/u/Library/LaunchAgents/org.example.echo.plist",
                "launchctl bootout gui/501/org.example.echo",
                "launchctl print gui/501/org.example.echo",
                "launchctl bootstrap gui/501 /Users/u/Library/LaunchAgents/org.example.echo.plist",
            ]
        );
    }

    #[test]
    fn bootstrap_failing_twice_reports_stderr() {
        let fake = Fake::new(vec![
            (5, "Bootstrap failed: 5: Input/output error"),
            (0, ""),
            (113, ""),
            (5, "Bootstrap failed: 5: Input/output error"),
        ]);
        let l = Launchd::with_runner(Scope::User, Domain::Gui(501), "/Users/u".into(), &fake);
        let err = l
            .perform(&l.install_steps(&manifest(), &[], true)[1])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "launchctl bootstrap gui/501 /Users/u/Library/LaunchAgents/org.example.echo.plist: exit status 5: Bootstrap failed: 5: Input/output error"
        );
        assert_eq!(fake.calls.borrow().len(), 4, "exactly one retry");
    }

    #[test]
    fn reinstall_under_a_new_label_boots_out_the_old_one() {
        let fake = Fake::new(Vec::new());
        let l = Launchd::with_runner(Scope::User, Domain::Gui(501), "/Users/u".into(), &fake);
        let old = PathBuf::from("/Users/u/Library/LaunchAgents/org.example.echo.plist");
        assert_eq!(l.prepare_steps(Some(&manifest()), &[], &[]), []);
        assert_eq!(l.prepare_steps(None, std::slice::from_ref(&old), &[]), []);
        let shown: Vec<String> = l
            .prepare_steps(Some(&manifest()), &[old], &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["launchctl bootout gui/501/org.example.echo"]);
    }

    #[test]
    fn other_bootstrap_errors_are_not_retried() {
        let fake = Fake::new(vec![(1, "Bootstrap failed: 1: Operation not permitted")]);
        let l = Launchd::with_runner(Scope::System, Domain::System, "/var/root".into(), &fake);
        let err = l
            .perform(&l.install_steps(&manifest(), &[], true)[1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Operation not permitted"), "{err}");
        assert_eq!(fake.calls.borrow().len(), 1);
    }

    #[test]
    fn stopping_a_job_that_is_not_loaded_is_done() {
        let fake = Fake::new(vec![(3, "Boot-out failed: 3: No such process")]);
        let l = Launchd::with_runner(Scope::User, Domain::User(501), "/Users/u".into(), &fake);
        l.perform(&l.stop_steps(&manifest())[0]).unwrap();
        assert_eq!(
            *fake.calls.borrow(),
            ["launchctl bootout user/501/org.example.echo"]
        );
    }
}
