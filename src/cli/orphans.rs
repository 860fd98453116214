//! `initkit orphans`: find, report and safely stop instances the service
//! manager does not track.

use std::time::Duration;

use anyhow::Context;
use initkit::backend::{self, BackendError, ManagerView, ServiceManager};
use initkit::dirs::Dirs;
use initkit::manifest::{Manifest, Scope};
use initkit::orphan::{self, Finding, KillReport, Rules, Tracked};

use super::manage::{installed_targets, resolve, Target};
use super::{Outcome, ScopeArg};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reasons: untracked (outside the unit's cgroup / launchd's job), reparented (untracked, parent is \
init or a subreaper), stale-lock (holds a lock on an unlinked or replaced lock file), \
stale-listener (listens on a socket path that now leads elsewhere), stopped (state T), \
foreign-uid (another user's process: listed, never touched).

Exit status: 0 no orphans, 1 orphans found (or left after --kill), 2 error.")]
pub struct Args {
    /// Installed service names or manifest paths (a path contains '/' or ends in .toml); none means every initkit-installed service
    #[arg(value_name = "NAME|MANIFEST")]
    pub targets: Vec<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Stop the orphans: SIGTERM then SIGCONT (so a stopped one can act on it), SIGKILL after the grace period, then rescan. Never signals the managed instance, another user's process, pid 1 or itself, and never a recycled pid
    #[arg(long)]
    pub kill: bool,
    /// Seconds between SIGTERM and SIGKILL
    #[arg(long, value_name = "SECS", requires = "kill", default_value_t = 5)]
    pub grace: u64,
    /// Where to look for NAMEs, and which installed services to cover without arguments (default: both)
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
}

/// Everything validated: the services to check and what to do.
struct Plan {
    targets: Vec<Target>,
    json: bool,
    kill: Option<Duration>,
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let targets = if args.targets.is_empty() {
        installed_targets(args.scope)?
    } else {
        args.targets
            .iter()
            .map(|t| resolve(t, args.scope))
            .collect::<anyhow::Result<_>>()?
    };
    Ok(Plan {
        targets,
        json: args.json,
        kill: args.kill.then(|| Duration::from_secs(args.grace)),
    })
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let plan = plan(args)?;
    let services = observe(&plan.targets)?;
    let findings = orphan::find_all(&services).context("scan processes")?;
    let mut kill_report = None;
    let mut remaining = None;
    if let Some(grace) = plan.kill {
        let report = orphan::kill(&findings, grace).context("stop orphans")?;
        kill_report = Some(report);
        // Rescan from scratch: the manager's view may have moved too.
        let services = observe(&plan.targets)?;
        remaining = Some(orphan::find_all(&services).context("rescan processes")?);
    }
    if plan.json {
        let out = serde_json::json!({
            "findings": findings,
            "kill": kill_report,
            "remaining": remaining,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let manifests: Vec<&Manifest> = plan.targets.iter().map(|t| &t.manifest).collect();
        print_text(
            &manifests,
            &findings,
            kill_report.as_ref(),
            remaining.as_deref(),
        );
    }
    let left = remaining.as_ref().unwrap_or(&findings);
    Ok(if left.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

/// Rules and the manager's view for each service.
fn observe(targets: &[Target]) -> anyhow::Result<Vec<(Rules, Tracked)>> {
    targets
        .iter()
        .map(|t| {
            let m = &t.manifest;
            let tracked = manager_view(m, t.scope)
                .with_context(|| format!("service {}: ask the service manager", m.name))?;
            Ok((rules_of(t)?, tracked))
        })
        .collect()
}

fn rules_of(t: &Target) -> anyhow::Result<Rules> {
    let m = &t.manifest;
    let dirs = match t.scope {
        Scope::User => Dirs::current(Scope::User),
        Scope::System => Ok(Dirs::system()),
    }
    .with_context(|| format!("service {}", m.name))?;
    Ok(Rules::observe(m, &dirs)?)
}

/// The orphans of each target, in order: one scan for all. Used by `status`,
/// which has asked the manager already: `views` are its answers, one per
/// target (a backend's kind and view).
pub(super) fn for_targets(
    targets: &[Target],
    views: Vec<(&'static str, ManagerView)>,
) -> anyhow::Result<Vec<Vec<Finding>>> {
    let services = targets
        .iter()
        .zip(views)
        .map(|(t, (kind, view))| Ok((rules_of(t)?, tracked_from(kind, view))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let findings = orphan::find_all(&services).context("scan processes")?;
    Ok(targets
        .iter()
        .map(|t| {
            findings
                .iter()
                .filter(|f| f.service == t.manifest.name)
                .cloned()
                .collect()
        })
        .collect())
}

/// `orphans: 1 (pid 62068, reparented, 33m)` from `status --json`'s list;
/// `None` when there are none.
pub(super) fn status_line(orphans: &serde_json::Value) -> Option<String> {
    let list = orphans.as_array().filter(|l| !l.is_empty())?;
    let items: Vec<String> = list
        .iter()
        .map(|f| {
            format!(
                "pid {}, {}, {}",
                f["pid"],
                f["reasons"][0].as_str().unwrap_or("untracked"),
                orphan::format_age(f["age_secs"].as_u64().unwrap_or(0))
            )
        })
        .collect();
    Some(format!("orphans: {} ({})", list.len(), items.join("; ")))
}

fn print_text(
    manifests: &[&Manifest],
    findings: &[Finding],
    kill: Option<&KillReport>,
    remaining: Option<&[Finding]>,
) {
    if manifests.is_empty() {
        println!("no initkit-installed services");
    }
    for m in manifests {
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.service == m.name).collect();
        match mine.len() {
            0 => println!("{}: no orphans", m.name),
            n => println!("{}: {n} orphan{}", m.name, if n == 1 { "" } else { "s" }),
        }
        for f in mine {
            let reasons: Vec<&str> = f.reasons.iter().map(|r| r.as_str()).collect();
            println!(
                "  pid {}  {}  {}  uid {}  {}",
                f.pid,
                reasons.join(","),
                orphan::format_age(f.age_secs),
                f.uid.map_or_else(|| "?".to_owned(), |u| u.to_string()),
                f.argv.join(" ")
            );
            for line in &f.evidence {
                println!("      {line}");
            }
        }
    }
    if let Some(report) = kill {
        for pid in &report.terminated {
            println!("stopped pid {pid} (SIGTERM)");
        }
        for pid in &report.killed {
            println!("killed pid {pid} (SIGKILL after the grace period)");
        }
        for pid in &report.survived {
            println!("pid {pid} survived SIGKILL");
        }
        for (pid, why) in &report.skipped {
            println!("left pid {pid} alone: {}", skipped_text(why));
        }
    }
    if let Some(left) = remaining {
        if left.is_empty() {
            println!("rescan: no orphans left");
        } else {
            let pids: Vec<String> = left.iter().map(|f| f.pid.to_string()).collect();
            println!("rescan: {} left (pid {})", left.len(), pids.join(", "));
        }
    }
}

fn skipped_text(why: &orphan::Skipped) -> String {
    match why {
        orphan::Skipped::Protected => "pid 1 or initkit itself".to_owned(),
        orphan::Skipped::ForeignUid => "another user's process".to_owned(),
        orphan::Skipped::UnknownUid => "its uid could not be read".to_owned(),
        orphan::Skipped::Gone => "it had already exited".to_owned(),
        orphan::Skipped::PermissionDenied => {
            "not permitted to signal it (run as its user or root)".to_owned()
        }
        orphan::Skipped::Recycled { .. } => {
            "the pid now names another process (start time or uid changed)".to_owned()
        }
    }
}

/// What the service manager tracks for the service. A manager that runs no
/// instance (unit not loaded or inactive) means off-init: the guard's lock
/// holder is the instance. So does a machine without that manager at all:
/// no bus socket (or none listening), or a bus without systemd on it. Any
/// other failure to ask is an error: nothing is killed on a guess.
fn manager_view(manifest: &Manifest, scope: Scope) -> anyhow::Result<Tracked> {
    let off_init = Tracked {
        guard: true,
        ..Tracked::default()
    };
    let backend = backend::native(scope)?;
    match backend.manager_view(manifest) {
        Ok(view) => Ok(tracked_from(backend.kind(), view)),
        Err(e) if no_manager(&e) => Ok(off_init),
        Err(e) => Err(e.into()),
    }
}

/// The error says there is no such manager here, not that asking failed.
fn no_manager(err: &BackendError) -> bool {
    match err {
        BackendError::NoUserBus => true,
        BackendError::Connect { address, .. } => address
            .strip_prefix("unix:path=")
            .map(|path| path.split(',').next().unwrap_or(path))
            .is_some_and(|path| {
                let path = std::path::Path::new(path);
                !path.exists() || std::os::unix::net::UnixStream::connect(path).is_err()
            }),
        BackendError::Call { error, .. } => matches!(
            error.as_ref(),
            zbus::Error::MethodError(name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                    || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner"
        ),
        _ => false,
    }
}

/// Map the backend's view onto the classifier's input.
pub(super) fn tracked_from(kind: &str, view: ManagerView) -> Tracked {
    let running = view.main_pid.is_some() || view.control_group.is_some() || !view.pids.is_empty();
    if kind == "launchd" {
        Tracked {
            launchd_pid: view.main_pid,
            pids: view.pids,
            guard: !running,
            ..Tracked::default()
        }
    } else {
        Tracked {
            control_group: view.control_group,
            main_pid: view.main_pid,
            pids: view.pids,
            guard: !running,
            ..Tracked::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_shows_each_orphan_with_its_headline_and_age() {
        let list = serde_json::json!([
            {"pid": 62068, "reasons": ["reparented", "stopped"], "age_secs": 1980},
            {"pid": 7, "reasons": ["stale-lock", "untracked"], "age_secs": 5},
        ]);
        assert_eq!(
            status_line(&list).unwrap(),
            "orphans: 2 (pid 62068, reparented, 33m; pid 7, stale-lock, 5s)"
        );
        assert_eq!(status_line(&serde_json::json!([])), None);
    }

    /// Pure mapping of the backend's view; launchd's is tested here because
    /// launchd cannot run on this machine.
    #[test]
    fn manager_views_map_onto_tracked() {
        let running = ManagerView {
            control_group: None,
            main_pid: Some(40),
            pids: vec![40],
        };
        let t = tracked_from("launchd", running);
        assert_eq!(t.launchd_pid, Some(40));
        assert!(!t.guard && t.control_group.is_none() && t.main_pid.is_none());
        let t = tracked_from("systemd", ManagerView::default());
        assert!(t.guard, "no instance under the manager: off-init rules");
        let t = tracked_from(
            "systemd",
            ManagerView {
                control_group: Some("/a.service".into()),
                main_pid: Some(9),
                pids: vec![9, 10],
            },
        );
        assert_eq!(t.control_group.as_deref(), Some("/a.service"));
        assert_eq!((t.main_pid, t.pids.len(), t.guard), (Some(9), 2, false));
    }
}
