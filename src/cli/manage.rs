//! `install`, `uninstall`, `start`, `stop`, `restart`, `status`, `logs`: the
//! service lifecycle on the native manager (systemd over D-Bus, launchd via
//! launchctl). See docs/manage.md.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use initkit::backend::registry::{self, Installed};
use initkit::backend::{self, linger, Native, ServiceManager, ServiceStatus};
use initkit::manifest::{Manifest, Scope};

use super::Outcome;

/// `--scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// The user's service manager (systemd --user, a LaunchAgent)
    User,
    /// The system's service manager (PID 1 systemd, a LaunchDaemon)
    System,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::User => Scope::User,
            ScopeArg::System => Scope::System,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The service manifest (TOML)
    pub manifest: PathBuf,
    /// Install for this scope instead of the manifest's `scope`
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Write, reload and enable, but do not start
    #[arg(long)]
    pub no_start: bool,
    /// Print the files and the actions; touch nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite unit files that initkit did not generate
    #[arg(long)]
    pub force: bool,
    /// Enable linger through logind first, so the user's services outlive their sessions
    #[arg(long)]
    pub linger: bool,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// An initkit-installed service's name, or its manifest file
    #[arg(value_name = "NAME|MANIFEST")]
    pub service: String,
    /// Where to look for NAME (default: the scope it was installed in)
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// An initkit-installed service's name, or its manifest file (default: every installed service)
    #[arg(value_name = "NAME|MANIFEST")]
    pub service: Option<String>,
    /// Print stable JSON (see docs/manage.md)
    #[arg(long)]
    pub json: bool,
    /// Only this scope (default: both)
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// An initkit-installed service's name, or its manifest file
    #[arg(value_name = "NAME|MANIFEST")]
    pub service: String,
    /// Keep printing new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Show the last N lines
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<u32>,
    /// Where to look for NAME (default: the scope it was installed in)
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
}

// ---------------------------------------------------------------------------
// Plans: everything validated before anything is touched.

/// A validated `install`.
struct InstallPlan {
    manifest: Manifest,
    source: String,
    manifest_path: PathBuf,
    backend: Native,
    /// (destination, contents)
    files: Vec<(PathBuf, String)>,
    warnings: Vec<String>,
    start: bool,
    dry_run: bool,
    linger: bool,
}

fn read_manifest(path: &Path) -> anyhow::Result<(Manifest, String, PathBuf)> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let manifest = Manifest::from_toml(&source).with_context(|| format!("{}", path.display()))?;
    let abs = std::fs::canonicalize(path).with_context(|| format!("resolve {}", path.display()))?;
    Ok((manifest, source, abs))
}

fn apply_scope(manifest: &mut Manifest, scope: Option<ScopeArg>) -> anyhow::Result<Scope> {
    let scope = scope.map_or(manifest.scope, Scope::from);
    if scope == Scope::User && (manifest.user.is_some() || manifest.group.is_some()) {
        bail!(
            "{}: the manifest sets user or group, which only a system service can use; install with --scope system",
            manifest.name
        );
    }
    manifest.scope = scope;
    Ok(scope)
}

fn plan_install(args: &InstallArgs) -> anyhow::Result<InstallPlan> {
    let (mut manifest, source, manifest_path) = read_manifest(&args.manifest)?;
    let scope = apply_scope(&mut manifest, args.scope)?;
    if args.linger && scope != Scope::User {
        bail!("--linger only applies to user services");
    }
    let backend = backend::native(scope)?;
    let source_name = manifest_path
        .file_name()
        .map_or_else(|| "manifest".into(), |n| n.to_string_lossy().into_owned());
    let rendered = backend
        .render(&manifest, &source_name)
        .with_context(|| format!("render {}", args.manifest.display()))?;
    let mut files = Vec::new();
    for file in rendered.files {
        let name = file
            .path
            .file_name()
            .with_context(|| format!("rendered file {} has no name", file.path.display()))?;
        let dest = backend.unit_dir().join(name);
        if !args.force {
            match std::fs::read_to_string(&dest) {
                Ok(existing) if !backend::is_generated(&existing) => bail!(
                    "{} exists and was not generated by initkit; refusing to overwrite it (move it away, or use --force to replace it)",
                    dest.display()
                ),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("read {}", dest.display())),
            }
        }
        files.push((dest, file.contents));
    }
    Ok(InstallPlan {
        manifest,
        source,
        manifest_path,
        backend,
        files,
        warnings: rendered.warnings.iter().map(ToString::to_string).collect(),
        start: !args.no_start,
        dry_run: args.dry_run,
        linger: args.linger,
    })
}

/// A service named on the command line, resolved to its manifest.
struct Target {
    manifest: Manifest,
    scope: Scope,
    installed: Option<Installed>,
}

fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || Path::extension(Path::new(arg)).is_some_and(|e| e == "toml")
}

fn scopes(scope: Option<ScopeArg>) -> Vec<Scope> {
    scope.map_or_else(|| vec![Scope::User, Scope::System], |s| vec![s.into()])
}

fn resolve(service: &str, scope: Option<ScopeArg>) -> anyhow::Result<Target> {
    if looks_like_path(service) {
        let (mut manifest, _, _) = read_manifest(Path::new(service))?;
        let scope = apply_scope(&mut manifest, scope)?;
        let installed = registry::get(scope, &manifest.name)?;
        return Ok(Target {
            manifest,
            scope,
            installed,
        });
    }
    let mut found = Vec::new();
    let mut looked = Vec::new();
    for s in scopes(scope) {
        match registry::dir(s) {
            Ok(dir) => {
                if let Some(i) = registry::get_in(&dir, service)? {
                    found.push(i);
                }
                looked.push(dir.display().to_string());
            }
            // Without HOME/XDG_RUNTIME_DIR the user registry is unknown; only
            // an explicit --scope user makes that an error.
            Err(e) if scope.is_some() => return Err(e.into()),
            Err(_) => {}
        }
    }
    match found.len() {
        0 => bail!(
            "no initkit-installed service named {service:?} (looked in {}); install it first, or pass its manifest file",
            looked.join(" and ")
        ),
        1 => {
            let installed = found.remove(0);
            Ok(Target {
                manifest: installed.manifest.clone(),
                scope: installed.scope,
                installed: Some(installed),
            })
        }
        _ => bail!("{service:?} is installed for both the user and the system; pass --scope"),
    }
}

fn perform_all<B: ServiceManager>(
    backend: &B,
    name: &str,
    steps: &[B::Step],
) -> anyhow::Result<()> {
    for step in steps {
        println!("{step}");
        let _ = std::io::stdout().flush();
        backend
            .perform(step)
            .with_context(|| format!("{name}: {step}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Commands.

pub fn install(args: &InstallArgs) -> anyhow::Result<Outcome> {
    let plan = plan_install(args)?;
    let m = &plan.manifest;
    let scope = plan.backend.scope();
    for w in &plan.warnings {
        eprintln!("initkit: warning: {w}");
    }
    let paths: Vec<PathBuf> = plan.files.iter().map(|(p, _)| p.clone()).collect();
    let steps = plan.backend.install_steps(m, &paths, plan.start);
    if plan.dry_run {
        for (path, contents) in &plan.files {
            println!("would write {} (mode 0644):", path.display());
            for line in contents.lines() {
                println!("    {line}");
            }
        }
        if let Ok(dir) = registry::dir(scope) {
            println!(
                "would record the install in {}",
                dir.join(format!("{}.json", m.name)).display()
            );
        }
        for step in &steps {
            println!("would {step}");
        }
        return Ok(Outcome::Ok);
    }

    if scope == Scope::User && plan.backend.kind() == "systemd" {
        if plan.linger {
            let (uid, user) = linger::current_user().context("this user has no name")?;
            linger::enable(uid, &user)?;
            println!("enabled linger for {user}");
        } else if (m.run_at_load || !m.sockets.is_empty() || m.schedule.is_some())
            && linger::current_user_lingers() == Some(false)
        {
            eprintln!(
                "initkit: warning: linger is off for this user: {} stops when your last session ends and starts at your next login; to keep it running, use --linger or `loginctl enable-linger`",
                m.name
            );
        }
    }

    let dir = plan.backend.unit_dir();
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let previous = registry::get(scope, &m.name)?;
    for (path, contents) in &plan.files {
        initkit::fsutil::write_atomic(path, contents.as_bytes(), 0o644)
            .with_context(|| format!("write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(prev) = previous {
        for stale in prev.files.iter().filter(|f| !paths.contains(f)) {
            eprintln!(
                "initkit: warning: {} was installed before but is no longer rendered; `initkit uninstall {}` before reinstalling removes it",
                stale.display(),
                m.name
            );
        }
    }
    registry::save_in(
        &registry::dir(scope)?,
        &Installed {
            name: m.name.clone(),
            scope,
            manifest: m.clone(),
            manifest_source: plan.source.clone(),
            manifest_path: plan.manifest_path.clone(),
            files: paths,
        },
    )?;
    perform_all(&plan.backend, &m.name, &steps)?;
    println!("installed {} ({} scope)", m.name, scope.as_str());
    Ok(Outcome::Ok)
}

pub fn uninstall(args: &NameArgs) -> anyhow::Result<Outcome> {
    let target = resolve(&args.service, args.scope)?;
    let Some(installed) = target.installed else {
        bail!(
            "{} was not installed by initkit ({} scope); refusing to remove it",
            target.manifest.name,
            target.scope.as_str()
        );
    };
    let backend = backend::native(installed.scope)?;
    let (before, after) = backend.uninstall_steps(&installed.manifest, &installed.files);
    perform_all(&backend, &installed.name, &before)?;
    for file in &installed.files {
        match std::fs::remove_file(file) {
            Ok(()) => println!("removed {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", file.display())),
        }
    }
    perform_all(&backend, &installed.name, &after)?;
    registry::remove_in(&registry::dir(installed.scope)?, &installed.name)?;
    println!("uninstalled {}", installed.name);
    Ok(Outcome::Ok)
}

fn lifecycle(
    args: &NameArgs,
    steps: impl Fn(&Native, &Manifest) -> Vec<<Native as ServiceManager>::Step>,
) -> anyhow::Result<Outcome> {
    let target = resolve(&args.service, args.scope)?;
    let backend = backend::native(target.scope)?;
    perform_all(
        &backend,
        &target.manifest.name,
        &steps(&backend, &target.manifest),
    )?;
    Ok(Outcome::Ok)
}

pub fn start(args: &NameArgs) -> anyhow::Result<Outcome> {
    lifecycle(args, ServiceManager::start_steps)
}

pub fn stop(args: &NameArgs) -> anyhow::Result<Outcome> {
    lifecycle(args, ServiceManager::stop_steps)
}

pub fn restart(args: &NameArgs) -> anyhow::Result<Outcome> {
    lifecycle(args, ServiceManager::restart_steps)
}

/// `status --json`: `{"version": 1, "services": [...]}`.
#[derive(serde::Serialize)]
struct StatusReport<'a> {
    version: u32,
    services: &'a [ServiceStatus],
}

fn status_of(target: &Target) -> anyhow::Result<ServiceStatus> {
    let backend = backend::native(target.scope)?;
    let mut status = backend
        .status(&target.manifest)
        .with_context(|| format!("status of {}", target.manifest.name))?;
    status.manifest = target.installed.as_ref().map(|i| i.manifest_path.clone());
    Ok(status)
}

pub fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let mut statuses = Vec::new();
    if let Some(service) = &args.service {
        statuses.push(status_of(&resolve(service, args.scope)?)?);
    } else {
        for scope in scopes(args.scope) {
            let dir = match registry::dir(scope) {
                Ok(dir) => dir,
                Err(e) if args.scope.is_some() => return Err(e.into()),
                Err(_) => continue,
            };
            for installed in registry::list_in(&dir)? {
                statuses.push(status_of(&Target {
                    manifest: installed.manifest.clone(),
                    scope: installed.scope,
                    installed: Some(installed),
                })?);
            }
        }
    }
    if args.json {
        let report = StatusReport {
            version: 1,
            services: &statuses,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", status_table(&statuses));
    }
    Ok(if statuses.iter().any(ServiceStatus::is_unhealthy) {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

/// The human status table: one line per service, then notes.
fn status_table(statuses: &[ServiceStatus]) -> String {
    use std::fmt::Write as _;
    if statuses.is_empty() {
        return "no initkit-installed services\n".to_owned();
    }
    let state = |u: &backend::UnitState| format!("{}/{}", u.active_state, u.sub_state);
    let rows: Vec<[String; 7]> = statuses
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.scope.as_str().to_owned(),
                state(&s.service),
                s.socket
                    .as_ref()
                    .or(s.timer.as_ref())
                    .map_or_else(|| "-".to_owned(), state),
                s.main_pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                s.n_restarts
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                s.status_text.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "SCOPE",
        "SERVICE",
        "SOCKET/TIMER",
        "PID",
        "RESTARTS",
        "STATUS",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    for s in statuses {
        if let Some(reason) = &s.thrash_reason {
            let _ = writeln!(out, "{}: THRASHING: {reason}", s.name);
        }
        if !s.listen.is_empty() {
            let _ = writeln!(out, "{}: listening on {}", s.name, s.listen.join(", "));
        }
        if s.linger == Some(false) {
            let _ = writeln!(
                out,
                "{}: linger is off: the user's services stop when their last session ends",
                s.name
            );
        }
    }
    out
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<Outcome> {
    let target = resolve(&args.service, args.scope)?;
    let backend = backend::native(target.scope)?;
    let mut cmd = backend.logs_command(&target.manifest, args.follow, args.lines);
    let status = cmd
        .status()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} exited with {status}", cmd.get_program());
    }
    Ok(Outcome::Ok)
}
