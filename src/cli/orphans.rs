//! `initkit orphans`: find, report and safely stop instances the service
//! manager does not track.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use initkit::dirs::Dirs;
use initkit::manifest::{Manifest, Scope};
use initkit::orphan::{self, Finding, KillReport, Rules, Tracked};

use super::Outcome;

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
    /// Stop the orphans: SIGTERM (SIGCONT if stopped), SIGKILL after the grace period, then rescan. Never signals the managed instance, another user's process, pid 1 or itself, and never a recycled pid
    #[arg(long)]
    pub kill: bool,
    /// Seconds between SIGTERM and SIGKILL
    #[arg(long, value_name = "SECS", requires = "kill", default_value_t = 5)]
    pub grace: u64,
}

/// Everything validated: the manifests to check and what to do.
struct Plan {
    manifests: Vec<Manifest>,
    json: bool,
    kill: Option<Duration>,
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    if args.targets.is_empty() {
        bail!("listing every installed service needs the service registry, which is not available in this build; name manifests explicitly");
    }
    let mut manifests = Vec::new();
    for target in &args.targets {
        if !is_path(target) {
            bail!("{target}: looking up installed services by name is not available in this build; pass the manifest path");
        }
        manifests.push(super::load_manifest(Path::new(target))?.manifest);
    }
    Ok(Plan {
        manifests,
        json: args.json,
        kill: args.kill.then(|| Duration::from_secs(args.grace)),
    })
}

fn is_path(target: &str) -> bool {
    target.contains('/')
        || Path::new(target)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let plan = plan(args)?;
    let services = observe(&plan.manifests)?;
    let findings = orphan::find_all(&services).context("scan processes")?;
    let mut kill_report = None;
    let mut remaining = None;
    if let Some(grace) = plan.kill {
        let report = orphan::kill(&findings, grace).context("stop orphans")?;
        kill_report = Some(report);
        // Rescan from scratch: the manager's view may have moved too.
        let services = observe(&plan.manifests)?;
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
        print_text(
            &plan.manifests,
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

/// Rules and the manager's view for each manifest.
fn observe(manifests: &[Manifest]) -> anyhow::Result<Vec<(Rules, Tracked)>> {
    manifests
        .iter()
        .map(|m| {
            let dirs = Dirs::current(m.scope).with_context(|| format!("service {}", m.name))?;
            let rules = Rules::observe(m, &dirs)?;
            let tracked = manager_view(m)
                .with_context(|| format!("service {}: ask the service manager", m.name))?;
            Ok((rules, tracked))
        })
        .collect()
}

fn print_text(
    manifests: &[Manifest],
    findings: &[Finding],
    kill: Option<&KillReport>,
    remaining: Option<&[Finding]>,
) {
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
        orphan::Skipped::Recycled { .. } => {
            "the pid now names another process (start time or uid changed)".to_owned()
        }
    }
}

/// What systemd tracks for the manifest's service, over D-Bus. When no
/// manager answers or the unit is not loaded, the service runs off-init and
/// the guard's lock holder is the instance.
fn manager_view(manifest: &Manifest) -> anyhow::Result<Tracked> {
    let bus = match manifest.scope {
        Scope::User => zbus::blocking::Connection::session(),
        Scope::System => zbus::blocking::Connection::system(),
    };
    let Ok(bus) = bus else {
        return Ok(Tracked {
            guard: true,
            ..Tracked::default()
        });
    };
    let manager_pid: Option<u32> = bus
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "GetConnectionUnixProcessID",
            &("org.freedesktop.systemd1"),
        )
        .ok()
        .and_then(|reply| reply.body().deserialize::<u32>().ok());
    let Some(manager_pid) = manager_pid else {
        return Ok(Tracked {
            guard: true,
            ..Tracked::default()
        });
    };
    let unit = manifest.service_unit();
    let reply = bus.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        "GetUnit",
        &(unit.as_str()),
    );
    let path: zbus::zvariant::OwnedObjectPath = match reply {
        Ok(reply) => reply.body().deserialize()?,
        // Not loaded: off-init.
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
        {
            return Ok(Tracked {
                guard: true,
                manager_pids: vec![manager_pid],
                ..Tracked::default()
            })
        }
        Err(e) => return Err(e).with_context(|| format!("GetUnit {unit}")),
    };
    let get = |iface: &str, prop: &str| -> anyhow::Result<zbus::zvariant::OwnedValue> {
        let reply = bus
            .call_method(
                Some("org.freedesktop.systemd1"),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, prop),
            )
            .with_context(|| format!("{unit} {prop}"))?;
        Ok(reply.body().deserialize()?)
    };
    let control_group: String = get("org.freedesktop.systemd1.Service", "ControlGroup")?
        .try_into()
        .context("ControlGroup is not a string")?;
    let main_pid: u32 = get("org.freedesktop.systemd1.Service", "MainPID")?
        .try_into()
        .context("MainPID is not a u32")?;
    let pids: Vec<u32> = bus
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "GetUnitProcesses",
            &(unit.as_str()),
        )
        .ok()
        .and_then(|r| r.body().deserialize::<Vec<(String, u32, String)>>().ok())
        .map(|v| v.into_iter().map(|(_, pid, _)| pid).collect())
        .unwrap_or_default();
    Ok(Tracked {
        control_group: (!control_group.is_empty()).then_some(control_group),
        main_pid: (main_pid != 0).then_some(main_pid),
        pids,
        launchd_pid: None,
        manager_pids: vec![manager_pid],
        guard: false,
    })
}
