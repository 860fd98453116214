//! Remove findings, safe by construction.
//!
//! For each finding: take a pidfd, then re-read the pid's start time and uid
//! and compare them with the snapshot. The pidfd pins the process it was
//! opened on, so once the re-check passes every later signal reaches that
//! process or nothing (a recycled pid has a later start time and is refused).
//! SIGTERM (plus SIGCONT for a stopped process, so it can act on it), wait up
//! to the grace period, then SIGKILL what is left through the same pidfd.
//!
//! Never signalled: pid 1, this process, a `foreign-uid` finding, a finding
//! whose uid is unknown. Findings never include the managed instance (the
//! classifier only reports untracked processes).

use std::time::{Duration, Instant};

use super::{Finding, Reason};

/// Why a finding was not signalled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "why")]
pub enum Skipped {
    /// pid 1 or this process.
    Protected,
    /// Another user's process: listed, never touched.
    ForeignUid,
    /// The uid could not be read at scan time.
    UnknownUid,
    /// It had exited before the pidfd was taken.
    Gone,
    /// The kernel refused the signal (EPERM): initkit runs as another user.
    PermissionDenied,
    /// The pid now names another process (different start time or uid).
    Recycled {
        expected_start: u64,
        found_start: Option<u64>,
        expected_uid: u32,
        found_uid: Option<u32>,
    },
}

/// What happened to each finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KillReport {
    /// Exited after SIGTERM within the grace period.
    pub terminated: Vec<u32>,
    /// Needed SIGKILL.
    pub killed: Vec<u32>,
    /// Still alive after SIGKILL and a further wait.
    pub survived: Vec<u32>,
    pub skipped: Vec<(u32, Skipped)>,
}

/// A system call that failed for a reason other than the process being gone.
#[derive(Debug, thiserror::Error)]
#[error("{call} for pid {pid}: {source}")]
pub struct KillError {
    pub call: &'static str,
    pub pid: u32,
    #[source]
    pub source: std::io::Error,
}

/// Signal every finding that may be signalled; see the module docs.
pub fn kill(findings: &[Finding], grace: Duration) -> Result<KillReport, KillError> {
    kill_with_hook(findings, grace, &mut |_| {})
}

/// [`kill`] with `before_signal` called for each finding after the snapshot
/// and before its pidfd is taken: the window in which a pid can be recycled.
/// Tests use it to make that window deterministic.
pub fn kill_with_hook(
    findings: &[Finding],
    grace: Duration,
    before_signal: &mut dyn FnMut(&Finding),
) -> Result<KillReport, KillError> {
    let mut report = KillReport::default();
    let me = std::process::id();
    let mut pending = Vec::new();
    for finding in findings {
        if finding.pid <= 1 || finding.pid == me {
            report.skipped.push((finding.pid, Skipped::Protected));
            continue;
        }
        if finding.has(Reason::ForeignUid) {
            report.skipped.push((finding.pid, Skipped::ForeignUid));
            continue;
        }
        let Some(uid) = finding.uid else {
            report.skipped.push((finding.pid, Skipped::UnknownUid));
            continue;
        };
        before_signal(finding);
        let Some(pidfd) = imp::PidFd::open(finding.pid)? else {
            report.skipped.push((finding.pid, Skipped::Gone));
            continue;
        };
        // Re-check after the pidfd pins the process.
        let now = imp::identity(finding.pid);
        if now != Some((finding.start_ticks, uid)) {
            if now.is_none() && !pidfd.alive() {
                report.skipped.push((finding.pid, Skipped::Gone));
            } else {
                report.skipped.push((
                    finding.pid,
                    Skipped::Recycled {
                        expected_start: finding.start_ticks,
                        found_start: now.map(|n| n.0),
                        expected_uid: uid,
                        found_uid: now.map(|n| n.1),
                    },
                ));
            }
            continue;
        }
        match pidfd.signal(libc::SIGTERM) {
            Ok(true) => {}
            Ok(false) => {
                report.terminated.push(finding.pid);
                continue;
            }
            Err(e) if e.source.raw_os_error() == Some(libc::EPERM) => {
                report
                    .skipped
                    .push((finding.pid, Skipped::PermissionDenied));
                continue;
            }
            Err(e) => return Err(e),
        }
        // A stopped process cannot act on SIGTERM until continued.
        pidfd.signal(libc::SIGCONT)?;
        pending.push((finding.pid, pidfd));
    }

    let deadline = Instant::now() + grace;
    wait_all(&mut pending, deadline, |pid| report.terminated.push(pid));
    let mut killed = Vec::new();
    for (pid, pidfd) in &pending {
        pidfd.signal(libc::SIGKILL)?;
        killed.push(*pid);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    wait_all(&mut pending, deadline, |_| {});
    report.survived = pending.iter().map(|(pid, _)| *pid).collect();
    report.killed = killed
        .into_iter()
        .filter(|pid| !report.survived.contains(pid))
        .collect();
    Ok(report)
}

/// Wait until every pidfd reports exit or the deadline passes; `exited` is
/// called for each that exits, and those are removed from `pending`.
fn wait_all(pending: &mut Vec<(u32, imp::PidFd)>, deadline: Instant, mut exited: impl FnMut(u32)) {
    loop {
        pending.retain(|(pid, fd)| {
            let alive = fd.alive();
            if !alive {
                exited(*pid);
            }
            alive
        });
        if pending.is_empty() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::KillError;

    pub struct PidFd {
        pid: u32,
        fd: OwnedFd,
    }

    impl PidFd {
        /// `None` when no such process exists.
        pub fn open(pid: u32) -> Result<Option<PidFd>, KillError> {
            let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
                return Ok(None);
            };
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::ESRCH) {
                    return Ok(None);
                }
                return Err(KillError {
                    call: "pidfd_open",
                    pid,
                    source: err,
                });
            }
            let raw = i32::try_from(rc).expect("file descriptors fit in i32");
            // SAFETY: raw is a new descriptor owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            Ok(Some(PidFd { pid, fd }))
        }

        /// Send `signal`; `Ok(false)` when the process has already exited.
        pub fn signal(&self, signal: i32) -> Result<bool, KillError> {
            // SAFETY: the fd is a valid pidfd; null info and 0 flags are
            // documented as "like kill(2)".
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if rc == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(false);
            }
            Err(KillError {
                call: "pidfd_send_signal",
                pid: self.pid,
                source: err,
            })
        }

        /// A pidfd polls readable once its process has exited.
        pub fn alive(&self) -> bool {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd; timeout 0 does not block.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, 0) };
            !(rc > 0 && pfd.revents & libc::POLLIN != 0)
        }
    }

    /// (start time in ticks, real uid) of the process now at `pid`.
    pub fn identity(pid: u32) -> Option<(u64, u32)> {
        use procfs::FromRead;
        let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        let stat =
            procfs::process::Stat::from_read(&std::fs::read(dir.join("stat")).ok()?[..]).ok()?;
        let status =
            procfs::process::Status::from_read(&std::fs::read(dir.join("status")).ok()?[..])
                .ok()?;
        Some((stat.starttime, status.ruid))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::KillError;

    /// Without pidfds there is no way to pin a process between the re-check
    /// and the signal, so nothing is signalled.
    pub struct PidFd;

    impl PidFd {
        pub fn open(pid: u32) -> Result<Option<PidFd>, KillError> {
            Err(KillError {
                call: "pidfd_open",
                pid,
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "--kill needs pidfds (Linux 5.3 or later)",
                ),
            })
        }
        pub fn signal(&self, _signal: i32) -> Result<bool, KillError> {
            Ok(false)
        }
        pub fn alive(&self) -> bool {
            false
        }
    }

    pub fn identity(_pid: u32) -> Option<(u64, u32)> {
        None
    }
}
