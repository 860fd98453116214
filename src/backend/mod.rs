//! Install, start, stop and inspect services on the real service managers.
//!
//! One trait, [`ServiceManager`], with two implementations:
//!
//! - [`systemd::Systemd`]: talks to `org.freedesktop.systemd1` over D-Bus
//!   (zbus, blocking API); never parses `systemctl` text.
//! - [`launchd::Launchd`]: runs `launchctl` with modern verbs only through one
//!   command runner; argv building and `launchctl print` parsing are pure.
//!
//! [`Native`] is the one cfg seam: launchd on macOS, systemd elsewhere. Both
//! backends compile everywhere; `--cfg initkit_check_macos` selects launchd
//! on Linux so the CLI's use of it type-checks there.
//! File writing, the safe-overwrite rule and the [`registry`] of what initkit
//! installed are shared, so both managers behave the same.
//!
//! Every operation is a list of steps (`ServiceManager::Step`, whose `Display`
//! is what the CLI prints) that is computed without touching the manager, so
//! `install --dry-run` shows exactly what a real run would do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::manifest::{Manifest, Scope};
use crate::render::{RenderError, Rendered};

pub mod claims;
pub mod dbus;
pub mod launchd;
pub mod linger;
pub mod registry;
pub mod runner;
pub mod systemd;

/// A file a reinstall writes with different contents.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    pub path: &'a Path,
    /// What is there now; empty when the file is new.
    pub old: &'a str,
    pub new: &'a str,
}

#[cfg(not(any(target_os = "macos", initkit_check_macos)))]
pub use systemd::Systemd as Native;

#[cfg(any(target_os = "macos", initkit_check_macos))]
pub use launchd::Launchd as Native;

/// The native service manager of `scope` (not connected yet).
#[cfg(not(any(target_os = "macos", initkit_check_macos)))]
pub fn native(scope: Scope) -> Result<Native, crate::dirs::DirsError> {
    systemd::Systemd::new(scope)
}

/// The native service manager of `scope`.
#[cfg(any(target_os = "macos", initkit_check_macos))]
pub fn native(scope: Scope) -> Result<Native, crate::dirs::DirsError> {
    Ok(launchd::Launchd::new(scope))
}

pub use crate::render::is_generated;

/// What the service manager tracks for a service's processes: the input the
/// orphan classifier compares the process table against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManagerView {
    /// The service's control group, e.g.
    /// `/user.slice/user-1000.slice/user@1000.service/app.slice/echo.service`;
    /// `None` when the service is not running (or on launchd, which has none).
    pub control_group: Option<String>,
    /// The main process, `None` when there is none.
    pub main_pid: Option<u32>,
    /// Every process the manager accounts to the service (its cgroup members
    /// on systemd, the job's pid on launchd), sorted.
    pub pids: Vec<u32>,
}

/// The state of one unit (or launchd job), as the manager reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    /// `echo.service`, `echo.socket`, or the launchd service target.
    pub unit: String,
    /// `loaded`, `not-found`, `not-loaded`...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`.
    pub active_state: String,
    /// Type-specific state: `running`, `listening`, `dead`, `auto-restart`...
    pub sub_state: String,
    /// Why the unit last stopped: `success`, `exit-code`, `start-limit-hit`,
    /// `service-start-limit-hit` (socket)...
    pub result: String,
}

/// One service's state: the `status` command's JSON, one element of its
/// `services` array. Stable: fields are only ever added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `user` or `system`.
    pub scope: Scope,
    /// `systemd` or `launchd`.
    pub manager: &'static str,
    /// The manifest it was installed from, when known from the registry.
    pub manifest: Option<PathBuf>,
    pub service: UnitState,
    /// The socket units when the service is socket-activated (one per
    /// `[[socket]]`), empty otherwise.
    pub sockets: Vec<UnitState>,
    /// The timer unit when the service is a scheduled job.
    pub timer: Option<UnitState>,
    pub main_pid: Option<u32>,
    /// How often the manager restarted the service (systemd `NRestarts`;
    /// launchd: runs minus one).
    pub n_restarts: Option<u32>,
    /// Exit status of the main process's last run (systemd
    /// `ExecMainStatus`, launchd "last exit code").
    pub exec_main_status: Option<i32>,
    /// Listening addresses, e.g. `/run/user/1000/echo.sock`, `127.0.0.1:8080`.
    pub listen: Vec<String>,
    /// What the daemon last sent with `STATUS=`.
    pub status_text: Option<String>,
    /// The service hit its start limit: systemd refused to start it again
    /// (`Result=start-limit-hit` on the service, or
    /// `Result=service-start-limit-hit` on a socket that tried to activate it,
    /// which is where systemd records it for socket-activated services).
    pub start_limit_hit: bool,
    /// The service is crash-looping: it hit its start limit, or its socket
    /// failed (clients then get ECONNREFUSED).
    pub thrash: bool,
    /// Why `thrash` is set.
    pub thrash_reason: Option<String>,
    /// User scope only: whether the user manager outlives the login session.
    pub linger: Option<bool>,
    /// Filled by the orphan scanner when it runs as part of `status`;
    /// `null` means "not checked" (never "none found").
    pub orphans: Option<serde_json::Value>,
}

impl ServiceStatus {
    /// Failed or thrashing: the `status` command exits 1.
    pub fn is_unhealthy(&self) -> bool {
        self.thrash
            || self.service.active_state == "failed"
            || self.sockets.iter().any(|s| s.active_state == "failed")
            || self
                .timer
                .as_ref()
                .is_some_and(|s| s.active_state == "failed")
    }
}

/// Whether the service hit its start limit, from unit results; pure.
pub fn start_limit_hit(service: &UnitState, sockets: &[UnitState]) -> bool {
    service.result == "start-limit-hit"
        || sockets
            .iter()
            .any(|s| s.result == "service-start-limit-hit")
}

/// Crash-loop detection from unit states; pure.
///
/// systemd marks a service that restarted too often with
/// `Result=start-limit-hit`, and a socket whose service did so (or that
/// failed itself) goes to `failed`, closing the listening socket.
pub fn thrash_reason(service: &UnitState, sockets: &[UnitState]) -> Option<String> {
    if service.result == "start-limit-hit" {
        return Some(format!(
            "{} hit its start limit (start-limit-hit)",
            service.unit
        ));
    }
    let socket = sockets.iter().find(|s| s.active_state == "failed")?;
    Some({
        format!(
            "{} failed ({}); its listening socket is closed and clients get ECONNREFUSED",
            socket.unit, socket.result
        )
    })
}

/// A failure talking to a service manager. Every variant names what failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Neither `$DBUS_SESSION_BUS_ADDRESS` nor `$XDG_RUNTIME_DIR` is set.
    #[error("cannot find the user bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set (under sudo or su, log in as the user, e.g. `machinectl shell USER@`, or export XDG_RUNTIME_DIR=/run/user/$(id -u)); for a system service use --scope system")]
    NoUserBus,
    /// The bus cannot be reached. (The D-Bus error is part of the message,
    /// not a chained source, so `{err:#}` does not repeat it.)
    #[error("cannot connect to the {bus} bus at {address}: {error} ({hint})")]
    Connect {
        bus: &'static str,
        address: String,
        hint: &'static str,
        error: Box<zbus::Error>,
    },
    /// A D-Bus call failed; `target` names the unit (or user) it was about.
    #[error("{call} {target}: {error}")]
    Call {
        call: &'static str,
        target: String,
        error: Box<zbus::Error>,
    },
    /// A job finished but left the unit in the wrong state.
    #[error("{verb} {} failed: the unit is {}/{} (result: {}){hint}", state.unit, state.active_state, state.sub_state, state.result)]
    JobFailed {
        verb: &'static str,
        state: Box<UnitState>,
        hint: String,
    },
    /// A job did not finish in time.
    #[error("{verb} {unit}: the job did not finish within {secs} s")]
    Timeout {
        verb: &'static str,
        unit: String,
        secs: u64,
    },
    /// An external command (launchctl) failed.
    #[error(transparent)]
    Command(#[from] runner::CommandError),
    /// A launchd answer initkit could not understand.
    #[error("{0}")]
    Launchd(String),
    /// logind could not enable linger.
    #[error("cannot enable linger for {user}: {message}")]
    Linger { user: String, message: String },
}

/// One service manager. Planning methods (`*_steps`, `unit_dir`, `render`)
/// never touch the manager; `perform`, `status` and `manager_view` do.
pub trait ServiceManager {
    /// One action on the manager; `Display` is the line the CLI prints.
    type Step: fmt::Display;

    /// `systemd` or `launchd`.
    fn kind(&self) -> &'static str;

    /// Adopt the manifest's start/stop timeouts for waiting on jobs.
    #[must_use]
    fn with_timeouts_of(self, _manifest: &Manifest) -> Self
    where
        Self: Sized,
    {
        self
    }

    fn scope(&self) -> Scope;

    /// Where unit files or plists go for this scope.
    fn unit_dir(&self) -> &Path;

    /// Render the manifest for this manager.
    fn render(&self, manifest: &Manifest, source_name: &str) -> Result<Rendered, RenderError>;

    /// After the files are written: make the manager load, enable and (when
    /// `start`) start the service.
    fn install_steps(&self, manifest: &Manifest, files: &[PathBuf], start: bool)
        -> Vec<Self::Step>;

    /// Before the files are removed (stop, disable) and after (reload).
    fn uninstall_steps(
        &self,
        manifest: &Manifest,
        files: &[PathBuf],
    ) -> (Vec<Self::Step>, Vec<Self::Step>);

    /// Reinstall, after the new files are written and before the manager
    /// loads them (so what it stops is stopped by its old definition):
    /// retire what the previous install (of `previous`) wrote and this one
    /// no longer renders (`stale`: a dropped socket, a renamed label), and
    /// stop what `rewrites` change in a way loading does not apply.
    fn prepare_steps(
        &self,
        previous: Option<&Manifest>,
        stale: &[PathBuf],
        rewrites: &[Rewrite<'_>],
    ) -> Vec<Self::Step>;

    fn start_steps(&self, manifest: &Manifest) -> Vec<Self::Step>;
    fn stop_steps(&self, manifest: &Manifest) -> Vec<Self::Step>;
    fn restart_steps(&self, manifest: &Manifest) -> Vec<Self::Step>;

    /// Make sure the manager can be reached before anything is written.
    fn connect(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Do one step and wait until the manager finished it.
    fn perform(&self, step: &Self::Step) -> Result<(), BackendError>;

    fn status(&self, manifest: &Manifest) -> Result<ServiceStatus, BackendError>;

    fn manager_view(&self, manifest: &Manifest) -> Result<ManagerView, BackendError>;

    /// Both at once, for `status` with its orphan check; a backend may
    /// answer both from one read of the manager.
    fn status_and_view(
        &self,
        manifest: &Manifest,
    ) -> Result<(ServiceStatus, ManagerView), BackendError> {
        Ok((self.status(manifest)?, self.manager_view(manifest)?))
    }

    /// The command that shows (or with `follow`, follows) the service's logs.
    fn logs_command(&self, manifest: &Manifest, follow: bool, lines: Option<u32>) -> Command;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(unit: &str, active: &str, result: &str) -> UnitState {
        UnitState {
            unit: unit.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: String::new(),
            result: result.into(),
        }
    }

    #[test]
    fn thrash_from_start_limit_or_failed_socket() {
        let ok = state("e.service", "active", "success");
        let listening = state("e.socket", "active", "success");
        assert_eq!(thrash_reason(&ok, std::slice::from_ref(&listening)), None);
        assert_eq!(thrash_reason(&ok, &[]), None);
        let hit = state("e.service", "failed", "start-limit-hit");
        assert!(thrash_reason(&hit, &[])
            .unwrap()
            .contains("start-limit-hit"));
        let failed = state("e.socket", "failed", "service-start-limit-hit");
        let reason = thrash_reason(
            &state("e.service", "inactive", "success"),
            &[listening.clone(), failed],
        )
        .unwrap();
        assert!(reason.contains("ECONNREFUSED"), "{reason}");
        assert!(reason.contains("service-start-limit-hit"), "{reason}");
        let exited = state("e.service", "failed", "exit-code");
        assert_eq!(
            thrash_reason(&exited, &[listening]),
            None,
            "one failed run is a failure, not a crash loop"
        );
    }
}
