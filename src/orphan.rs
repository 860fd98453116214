//! Instances the service manager does not track: (snapshot, rules, manager
//! view) → findings. [`classify`] is pure; [`find`] is the thin function that
//! reads the OS for it, and [`kill`] removes findings safely.
//!
//! A *candidate* is a process whose argv starts with the service's `[orphans]
//! match` prefix, or that holds the service's lock file (even an old, unlinked
//! inode of it), or that listens on one of its unix socket paths. A candidate
//! the manager tracks (in the unit's cgroup, the unit's MainPID or listed
//! processes, launchd's pid or a descendant, or off-init the holder of the
//! live lock) is fine; every other candidate is a [`Finding`] with reasons.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::dirs::Dirs;
use crate::manifest::{Listen, Manifest, Scope, Template};
use crate::scan::{FdTarget, FileId, Interest, Process, Snapshot};

pub mod kill;

pub use kill::{kill, kill_with_hook, KillError, KillReport, Skipped};

/// A file path and what is at it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathState {
    pub path: PathBuf,
    /// The identity of the file at `path` when the snapshot was taken;
    /// `None` when nothing is there.
    pub current: Option<FileId>,
}

impl PathState {
    /// Observe `path` now.
    pub fn observe(path: PathBuf) -> PathState {
        let current = FileId::of_path(&path);
        PathState { path, current }
    }
}

/// A service's match rules with every placeholder resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub service: String,
    /// argv prefix; empty matches nothing.
    pub match_argv: Vec<OsString>,
    /// The off-init guard's lock file.
    pub lock: Option<PathState>,
    /// Unix socket paths the service listens on.
    pub sockets: Vec<PathState>,
    /// The uid the service runs as; other uids are `foreign-uid`.
    pub owner_uid: u32,
    /// The process doing the classifying, never reported.
    pub self_pid: u32,
}

/// What the service manager tracks for the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracked {
    /// systemd: the unit's ControlGroup (e.g. `/user.slice/.../x.service`).
    pub control_group: Option<String>,
    /// systemd: the unit's MainPID.
    pub main_pid: Option<u32>,
    /// systemd: GetUnitProcesses; any other pids known to be the instance.
    pub pids: Vec<u32>,
    /// launchd: the job's pid; it and its descendants are tracked.
    pub launchd_pid: Option<u32>,
    /// The service manager's own processes. They hold activation sockets
    /// and adopt orphans; they are never candidates.
    pub manager_pids: Vec<u32>,
    /// Off-init: no manager runs the service, so the holder of the lock
    /// file's live inode is the instance.
    pub guard: bool,
}

/// Why a process is reported. Ordered from the most telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Listens on the socket path, but the path now leads to another socket
    /// (or nowhere): nobody can reach it.
    StaleListener,
    /// Holds a lock on an old inode of the lock file.
    StaleLock,
    /// Parent is init or a subreaper, and untracked.
    Reparented,
    /// Outside what the manager tracks.
    Untracked,
    /// Stopped (state `T`).
    Stopped,
    /// Runs as another user: listed, never touched.
    ForeignUid,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::StaleListener => "stale-listener",
            Reason::StaleLock => "stale-lock",
            Reason::Reparented => "reparented",
            Reason::Untracked => "untracked",
            Reason::Stopped => "stopped",
            Reason::ForeignUid => "foreign-uid",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One process the manager does not track.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub service: String,
    pub pid: u32,
    pub ppid: u32,
    /// `None` when its status could not be read.
    pub uid: Option<u32>,
    /// Start time in clock ticks since boot: with the pid, the process's
    /// identity (checked again before any signal).
    pub start_ticks: u64,
    pub age_secs: u64,
    pub state: char,
    pub argv: Vec<String>,
    /// Sorted, most telling first; never empty.
    pub reasons: Vec<Reason>,
    /// One line per fact behind the reasons.
    pub evidence: Vec<String>,
}

impl Finding {
    /// The most telling reason.
    pub fn headline(&self) -> Reason {
        self.reasons[0]
    }

    pub fn has(&self, reason: Reason) -> bool {
        self.reasons.contains(&reason)
    }
}

/// `33m`, `2h05m`, `3d04h`, `45s`.
pub fn format_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Pure: the findings for one service in `snapshot`, sorted by pid.
pub fn classify(snapshot: &Snapshot, rules: &Rules, tracked: &Tracked) -> Vec<Finding> {
    snapshot
        .processes
        .iter()
        .filter(|p| p.pid != 1 && p.pid != rules.self_pid && !tracked.manager_pids.contains(&p.pid))
        .filter_map(|p| classify_one(snapshot, rules, tracked, p))
        .collect()
}

fn classify_one(
    snapshot: &Snapshot,
    rules: &Rules,
    tracked: &Tracked,
    p: &Process,
) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut reasons = Vec::new();

    let argv_match = crate::scan::argv_has_prefix(&p.argv, &rules.match_argv);
    if argv_match {
        evidence.push(format!(
            "argv starts with {}",
            quote_argv(&rules.match_argv)
        ));
    }
    let locks = lock_facts(snapshot, rules, p);
    let listens = listen_facts(snapshot, rules, p);
    if !argv_match && locks.is_empty() && listens.is_empty() {
        return None;
    }
    // Candidates have their `stat` read; one without has exited mid-scan.
    let stat = p.stat.as_ref()?;
    // systemd itself holds activation sockets (and adopts orphans): it is a
    // candidate only when it matches the argv rule, which it never does.
    if !argv_match && stat.comm == "systemd" {
        return None;
    }
    if is_tracked(snapshot, tracked, &locks, p) {
        return None;
    }
    // Same program, but the manager runs it as another service: tracked, just
    // not by this unit (two services built from one binary). Holding this
    // service's lock or socket path would still make it a finding.
    if locks.is_empty() && listens.is_empty() {
        let other = p.detail.as_ref().and_then(|d| {
            d.cgroup_v2
                .as_deref()
                .or(d.cgroup_systemd.as_deref())
                .and_then(service_unit_of)
        });
        if other.is_some() {
            return None;
        }
    }

    evidence.push(untracked_evidence(tracked, p));
    let parent_adopts = stat.ppid == 1
        || tracked.manager_pids.contains(&stat.ppid)
        || snapshot
            .process(stat.ppid)
            .and_then(|parent| parent.stat.as_ref())
            .is_some_and(|parent| parent.comm == "systemd");
    if parent_adopts {
        reasons.push(Reason::Reparented);
        evidence.push(format!(
            "parent {} is init or a subreaper (it was started outside the manager and outlived its parent, or by another unit)",
            stat.ppid
        ));
    } else {
        reasons.push(Reason::Untracked);
    }
    for fact in &locks {
        evidence.push(fact.describe());
        if fact.stale {
            reasons.push(Reason::StaleLock);
        }
    }
    for fact in &listens {
        evidence.push(fact.describe());
        if fact.stale {
            reasons.push(Reason::StaleListener);
        }
    }
    if stat.state == 'T' {
        reasons.push(Reason::Stopped);
        evidence.push("state T (stopped)".to_owned());
    }
    let uid = p.detail.as_ref().and_then(|d| d.uid);
    match uid {
        Some(uid) if uid != rules.owner_uid => {
            reasons.push(Reason::ForeignUid);
            evidence.push(format!(
                "uid {uid}, the service runs as uid {}",
                rules.owner_uid
            ));
        }
        Some(_) => {}
        None => evidence.push("uid unknown (status unreadable)".to_owned()),
    }
    reasons.sort();
    reasons.dedup();
    Some(Finding {
        service: rules.service.clone(),
        pid: p.pid,
        ppid: stat.ppid,
        uid,
        start_ticks: stat.start_ticks,
        age_secs: snapshot.age_secs(stat.start_ticks),
        state: stat.state,
        argv: p
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        reasons,
        evidence,
    })
}

fn quote_argv(argv: &[OsString]) -> String {
    let words: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", words.join(", "))
}

/// The systemd service whose cgroup `path` is in, if it is a service (not a
/// scope such as a login session or `systemd-run --scope`, and not a user
/// manager `user@UID.service` itself). Pure.
// systemd unit suffixes are exactly lowercase; `.SERVICE` is not a service.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
pub fn service_unit_of(path: &str) -> Option<&str> {
    let unit = path
        .split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))?;
    (unit.ends_with(".service") && !unit.starts_with("user@")).then_some(unit)
}

fn is_tracked(snapshot: &Snapshot, tracked: &Tracked, locks: &[LockFact], p: &Process) -> bool {
    if tracked.main_pid == Some(p.pid) || tracked.pids.contains(&p.pid) {
        return true;
    }
    if let (Some(cg), Some(detail)) = (&tracked.control_group, &p.detail) {
        let inside = |path: &Option<String>| {
            path.as_deref().is_some_and(|path| {
                path == cg
                    || path
                        .strip_prefix(cg.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        if inside(&detail.cgroup_v2) || inside(&detail.cgroup_systemd) {
            return true;
        }
    }
    if let Some(root) = tracked.launchd_pid {
        let mut pid = p.pid;
        for _ in 0..128 {
            if pid == root {
                return true;
            }
            match snapshot.process(pid) {
                Some(crate::scan::Process {
                    stat: Some(stat), ..
                }) if stat.ppid != 0 && stat.ppid != pid => pid = stat.ppid,
                _ => break,
            }
        }
    }
    tracked.guard && locks.iter().any(|l| !l.stale)
}

fn untracked_evidence(tracked: &Tracked, p: &Process) -> String {
    let cgroup = p
        .detail
        .as_ref()
        .and_then(|d| d.cgroup_v2.clone().or_else(|| d.cgroup_systemd.clone()));
    match (&tracked.control_group, tracked.launchd_pid, tracked.guard) {
        (Some(cg), _, _) => format!(
            "cgroup {} is outside the unit's {cg}",
            cgroup.as_deref().unwrap_or("unknown")
        ),
        (None, Some(pid), _) => format!("not launchd's pid {pid} nor its descendant"),
        (None, None, true) => {
            "no manager runs the service and it does not hold the live lock".to_owned()
        }
        (None, None, false) => "the manager runs no instance of the service".to_owned(),
    }
}

/// A lock the process holds on (an inode of) the lock file.
struct LockFact {
    fd: u32,
    kind: String,
    path: PathBuf,
    deleted: bool,
    held: FileId,
    current: Option<FileId>,
    stale: bool,
}

impl LockFact {
    fn describe(&self) -> String {
        let now = match self.current {
            None => "the path is gone".to_owned(),
            Some(id) if self.stale => format!("the path is now inode {}", id.ino),
            Some(_) => "the live lock file".to_owned(),
        };
        format!(
            "fd {} holds {} on {}{} (inode {}); {now}",
            self.fd,
            self.kind,
            self.path.display(),
            if self.deleted { " (deleted)" } else { "" },
            self.held.ino
        )
    }
}

fn lock_facts(snapshot: &Snapshot, rules: &Rules, p: &Process) -> Vec<LockFact> {
    let (Some(lock), Some(detail)) = (&rules.lock, &p.detail) else {
        return Vec::new();
    };
    let mut facts = Vec::new();
    for fd in &detail.fds {
        let FdTarget::File {
            path,
            deleted,
            id,
            locks,
        } = &fd.target
        else {
            continue;
        };
        // Held through this fd: fdinfo's lock lines, else /proc/locks lines
        // that name this process and the fd's file.
        let mut held: Vec<(String, FileId)> =
            locks.iter().map(|l| (l.kind.clone(), l.file)).collect();
        if held.is_empty() {
            if let Some(id) = id {
                held.extend(
                    snapshot
                        .locks
                        .iter()
                        .filter(|l| l.file == *id && l.pid == Some(p.pid))
                        .map(|l| (l.kind.clone(), l.file)),
                );
            }
        }
        let same_path = *path == lock.path;
        for (kind, file) in held {
            let live = lock.current == Some(file);
            if !same_path && !live {
                continue;
            }
            facts.push(LockFact {
                fd: fd.fd,
                kind,
                path: path.clone(),
                deleted: *deleted,
                held: file,
                current: lock.current,
                stale: !live,
            });
        }
    }
    facts
}

/// A listening socket bound to one of the service's paths.
struct ListenFact {
    fd: u32,
    inode: u64,
    path: PathBuf,
    current: Option<FileId>,
    /// The kernel reported which file the socket created.
    known: bool,
    stale: bool,
}

impl ListenFact {
    fn describe(&self) -> String {
        let now = match self.current {
            None => "the path is gone",
            Some(_) if self.stale => "the path now leads to another socket",
            Some(_) if self.known => "the path leads to it",
            Some(_) => "cannot tell whether the path still leads to it (no sock_diag)",
        };
        format!(
            "fd {} listens on {} (socket {}); {now}",
            self.fd,
            self.path.display(),
            self.inode
        )
    }
}

fn listen_facts(snapshot: &Snapshot, rules: &Rules, p: &Process) -> Vec<ListenFact> {
    let Some(detail) = &p.detail else {
        return Vec::new();
    };
    let mut facts = Vec::new();
    for fd in &detail.fds {
        let FdTarget::Socket { inode } = fd.target else {
            continue;
        };
        let Some(socket) = snapshot.unix_socket(inode).filter(|s| s.listening) else {
            continue;
        };
        let Some(rule) = rules
            .sockets
            .iter()
            .find(|r| socket.path.as_deref() == Some(r.path.as_path()))
        else {
            continue;
        };
        // Stale when the path is gone, or when the kernel says the socket was
        // bound as another file than the one at the path now. Without the
        // kernel's word (no sock_diag) there is no guess.
        let stale = match (rule.current, socket.vfs) {
            (None, _) => true,
            (Some(now), Some(bound)) => !now.is_bound_as(bound),
            (Some(_), None) => false,
        };
        facts.push(ListenFact {
            fd: fd.fd,
            inode,
            path: rule.path.clone(),
            current: rule.current,
            known: socket.vfs.is_some(),
            stale,
        });
    }
    facts
}

/// What went wrong preparing or taking a scan.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("service {service}: user {user:?} does not exist")]
    NoSuchUser { service: String, user: String },
    #[error("read the process table at {root}: {source}")]
    Scan {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Rules {
    /// Resolve a manifest's rules and observe its lock and socket paths now
    /// (this reads the file system: the paths' current identities).
    pub fn observe(manifest: &Manifest, dirs: &Dirs) -> Result<Rules, FindError> {
        let owner_uid = owner_uid(manifest)?;
        let match_argv = manifest
            .match_argv()
            .iter()
            .map(|word| dirs.resolve(&Template::parse(word)).into_os_string())
            .collect();
        let lock = Some(PathState::observe(lock_path(manifest, dirs)));
        let sockets = manifest
            .sockets
            .iter()
            .filter_map(|s| match &s.listen {
                Listen::Unix(t) => Some(PathState::observe(dirs.resolve(t))),
                Listen::Tcp { .. } | Listen::Udp { .. } => None,
            })
            .collect();
        Ok(Rules {
            service: manifest.name.clone(),
            match_argv,
            lock,
            sockets,
            owner_uid,
            self_pid: std::process::id(),
        })
    }
}

/// Where the off-init guard's lock lives: `[orphans] lock`, else
/// `{runtime}/initkit/<name>.lock`.
pub fn lock_path(manifest: &Manifest, dirs: &Dirs) -> PathBuf {
    match &manifest.orphans.lock {
        Some(t) => dirs.resolve(t),
        None => dirs
            .runtime
            .join("initkit")
            .join(format!("{}.lock", manifest.name)),
    }
}

/// The uid a manifest's service runs as: `user` for a system service that
/// names one, root for other system services, this user for user services.
pub fn owner_uid(manifest: &Manifest) -> Result<u32, FindError> {
    match (manifest.scope, &manifest.user) {
        (Scope::System, Some(user)) => nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .ok_or_else(|| FindError::NoSuchUser {
                service: manifest.name.clone(),
                user: user.clone(),
            }),
        (Scope::System, None) => Ok(0),
        (Scope::User, _) => Ok(nix::unistd::getuid().as_raw()),
    }
}

/// The processes a scan must read in depth to classify these services.
pub fn interest(services: &[(Rules, Tracked)]) -> Interest {
    let mut interest = rules_interest(services.iter().map(|(rules, _)| rules));
    for (_, tracked) in services {
        interest.pids.extend(tracked.main_pid);
        interest.pids.extend(tracked.pids.iter().copied());
    }
    interest
}

/// What the rules alone make candidates: argv matches, lock holders and
/// socket holders. (The tracked pids [`interest`] adds only speed up the
/// search for socket holders: a tracked process that is not a candidate is
/// never a finding.)
fn rules_interest<'a>(rules: impl Iterator<Item = &'a Rules>) -> Interest {
    let mut interest = Interest::default();
    for rules in rules {
        if !rules.match_argv.is_empty() {
            interest.argv_prefixes.push(rules.match_argv.clone());
        }
        interest
            .lock_paths
            .extend(rules.lock.iter().map(|l| l.path.clone()));
        interest
            .socket_paths
            .extend(rules.sockets.iter().map(|s| s.path.clone()));
    }
    interest
}

fn read_snapshot(interest: &Interest) -> Result<Snapshot, FindError> {
    crate::scan::read(interest).map_err(|source| FindError::Scan {
        root: PathBuf::from("/proc"),
        source,
    })
}

/// Scan this machine once and classify every service in it.
pub fn find_all(services: &[(Rules, Tracked)]) -> Result<Vec<Finding>, FindError> {
    let snapshot = read_snapshot(&interest(services))?;
    Ok(classify_all(&snapshot, services))
}

/// The scan for these rules, before the manager's view is known (callers
/// that ask the manager meanwhile, like `status`); classify it with
/// [`classify_all`].
pub fn scan_for(rules: &[Rules]) -> Result<Snapshot, FindError> {
    read_snapshot(&rules_interest(rules.iter()))
}

/// Classify every service in one snapshot.
pub fn classify_all(snapshot: &Snapshot, services: &[(Rules, Tracked)]) -> Vec<Finding> {
    services
        .iter()
        .flat_map(|(rules, tracked)| classify(snapshot, rules, tracked))
        .collect()
}

/// Scan this machine and classify one service.
pub fn find(
    manifest: &Manifest,
    dirs: &Dirs,
    tracked: &Tracked,
) -> Result<Vec<Finding>, FindError> {
    let rules = Rules::observe(manifest, dirs)?;
    find_all(&[(rules, tracked.clone())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Detail, Fd, Stat, UnixSocket};

    fn process(pid: u32, ppid: u32, argv: &[&str], comm: &str) -> Process {
        Process {
            pid,
            stat: Some(Stat {
                ppid,
                state: 'S',
                start_ticks: 1000 + u64::from(pid),
                comm: comm.into(),
            }),
            argv: argv.iter().map(OsString::from).collect(),
            detail: Some(Detail {
                uid: Some(1000),
                exe: None,
                cgroup_v2: Some("/".into()),
                cgroup_systemd: None,
                fds: Vec::new(),
                partial: Vec::new(),
            }),
        }
    }

    fn rules() -> Rules {
        Rules {
            service: "echo".into(),
            match_argv: vec!["/bin/echod".into()],
            lock: None,
            sockets: vec![PathState {
                path: "/run/echo.sock".into(),
                current: Some(FileId { dev: 5, ino: 77 }),
            }],
            owner_uid: 1000,
            self_pid: 4242,
        }
    }

    fn snapshot(mut processes: Vec<Process>) -> Snapshot {
        processes.sort_by_key(|p| p.pid);
        Snapshot {
            processes,
            uptime_secs: 100.0,
            ticks_per_sec: 100,
            ..Snapshot::default()
        }
    }

    fn pids(findings: &[Finding]) -> Vec<u32> {
        findings.iter().map(|f| f.pid).collect()
    }

    #[test]
    fn cgroup_members_and_sub_cgroups_are_tracked_prefix_siblings_are_not() {
        let cg = "/user.slice/app.slice/echo.service";
        let mut inside = process(10, 9, &["/bin/echod"], "echod");
        inside.detail.as_mut().unwrap().cgroup_v2 = Some(format!("{cg}/worker"));
        let mut sibling = process(11, 9, &["/bin/echod", "-x"], "echod");
        sibling.detail.as_mut().unwrap().cgroup_v2 = Some(format!("{cg}2"));
        let mut v1_only = process(12, 9, &["/bin/echod"], "echod");
        v1_only.detail.as_mut().unwrap().cgroup_systemd = Some(cg.to_owned());
        let other = process(13, 1, &["/bin/other"], "other");
        let snap = snapshot(vec![inside, sibling, v1_only, other]);
        let tracked = Tracked {
            control_group: Some(cg.to_owned()),
            ..Tracked::default()
        };
        let found = classify(&snap, &rules(), &tracked);
        assert_eq!(pids(&found), vec![11]);
        assert_eq!(found[0].reasons, vec![Reason::Untracked]);
    }

    #[test]
    fn another_service_running_the_same_program_is_not_an_orphan_unless_it_holds_our_paths() {
        let cg = "/user.slice/user-0.slice/user@0.service/app.slice/echo.service";
        let mut other_unit = process(20, 9, &["/bin/echod"], "echod");
        other_unit.detail.as_mut().unwrap().cgroup_v2 =
            Some("/user.slice/user-0.slice/user@0.service/app.slice/echo-b.service".into());
        let mut in_a_shell = process(21, 9, &["/bin/echod"], "echod");
        in_a_shell.detail.as_mut().unwrap().cgroup_v2 =
            Some("/user.slice/user-0.slice/session-2.scope".into());
        let mut in_the_manager = process(22, 9, &["/bin/echod"], "echod");
        in_the_manager.detail.as_mut().unwrap().cgroup_v2 =
            Some("/user.slice/user-0.slice/user@0.service/init.scope".into());
        let snap = snapshot(vec![other_unit, in_a_shell, in_the_manager]);
        let tracked = Tracked {
            control_group: Some(cg.to_owned()),
            ..Tracked::default()
        };
        assert_eq!(pids(&classify(&snap, &rules(), &tracked)), vec![21, 22]);
        assert_eq!(
            service_unit_of("/a.slice/b.service/worker"),
            Some("b.service")
        );
        assert_eq!(
            service_unit_of("/user.slice/user-0.slice/user@0.service"),
            None
        );
        assert_eq!(
            service_unit_of("/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }

    #[test]
    fn launchd_job_and_descendants_are_tracked() {
        let snap = snapshot(vec![
            process(50, 1, &["/bin/echod"], "echod"),
            process(51, 50, &["/bin/echod", "--child"], "echod"),
            process(60, 1, &["/bin/echod"], "echod"),
        ]);
        let tracked = Tracked {
            launchd_pid: Some(50),
            ..Tracked::default()
        };
        let found = classify(&snap, &rules(), &tracked);
        assert_eq!(pids(&found), vec![60]);
        assert_eq!(found[0].headline(), Reason::Reparented);
    }

    #[test]
    fn listeners_systemd_self_and_pid_one_are_judged_right() {
        let listening = |inode: u64, bound_ino: u64| UnixSocket {
            inode,
            path: Some("/run/echo.sock".into()),
            listening: true,
            vfs: Some(FileId {
                dev: 5,
                ino: bound_ino,
            }),
        };
        let with_socket = |mut p: Process, inode: u64| {
            p.detail.as_mut().unwrap().fds.push(Fd {
                fd: 3,
                target: FdTarget::Socket { inode },
            });
            p
        };
        let mut snap = snapshot(vec![
            // systemd holds the live activation socket: never a candidate.
            with_socket(
                process(2, 1, &["/lib/systemd/systemd", "--user"], "systemd"),
                900,
            ),
            // A different program listening on the path it lost.
            with_socket(process(30, 1, &["/usr/bin/socat"], "socat"), 901),
            // This process matches but is the classifier itself.
            process(4242, 1, &["/bin/echod"], "echod"),
        ]);
        snap.unix_sockets = vec![listening(900, 77), listening(901, 76)];
        let found = classify(&snap, &rules(), &Tracked::default());
        assert_eq!(pids(&found), vec![30]);
        assert_eq!(
            found[0].reasons,
            vec![Reason::StaleListener, Reason::Reparented]
        );
        // Without the kernel's word on path ownership there is no guess: an
        // untracked listener, not a stale one.
        snap.unix_sockets[1].vfs = None;
        let found = classify(&snap, &rules(), &Tracked::default());
        assert_eq!(found[0].reasons, vec![Reason::Reparented]);
        assert!(
            found[0].evidence.iter().any(|e| e.contains("cannot tell")),
            "{found:?}"
        );
    }

    #[test]
    fn foreign_uid_stopped_and_age() {
        let mut p = process(70, 69, &["/bin/echod"], "echod");
        p.stat.as_mut().unwrap().state = 'T';
        p.detail.as_mut().unwrap().uid = Some(0);
        p.stat.as_mut().unwrap().start_ticks = 100 * 40; // started 40 s after boot, 60 s ago
        let snap = snapshot(vec![process(69, 1, &["/bin/sh"], "sh"), p]);
        let found = classify(&snap, &rules(), &Tracked::default());
        assert_eq!(
            found[0].reasons,
            vec![Reason::Untracked, Reason::Stopped, Reason::ForeignUid]
        );
        assert_eq!(found[0].age_secs, 60);
    }

    #[test]
    fn ages_read_like_status() {
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(33 * 60 + 5), "33m");
        assert_eq!(format_age(2 * 3600 + 5 * 60), "2h05m");
        assert_eq!(format_age(3 * 86_400 + 4 * 3600), "3d04h");
    }
}
