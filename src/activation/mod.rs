//! What a managed daemon links: sockets by name from systemd or launchd,
//! sd_notify, and the off-init single-instance guard. std + nix + libc only,
//! so it builds with `default-features = false`.
//!
//! | module | what it models |
//! |---|---|
//! | [`mod@env`] | `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` and the watchdog variables; pure [`env::parse`] |
//! | [`fd`] | passed fds → validated, CLOEXEC, typed sockets handed out once by name |
//! | [`notify`] | [`notify::NotifyState`] (its `Display` is the wire format) and [`notify::notify`] |
//! | [`guard`] | lock + bind + inode watch, for when no init system passed sockets |
//! | `launchd` | `launch_activate_socket(3)` (macOS only) |
//!
//! A daemon's start-up, the same on every OS:
//!
//! ```no_run
//! use initkit::activation::{self, guard::{Acquired, GuardSpec}, notify::{notify, NotifyState}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut sockets = match activation::listeners(&["control"])? {
//!     Some(passed) => passed,
//!     // Not started by an init system: guard the single instance ourselves.
//!     None => match GuardSpec::new("/run/user/1000/echo/echo.lock")
//!         .unix_socket("control", "/run/user/1000/echo/echo.sock", Some(0o600), None)
//!         .acquire()?
//!     {
//!         Acquired::Won(mut guard) => {
//!             let sockets = guard.listeners()?;
//!             // Keep the lock for the life of the process; stop when a path
//!             // is taken away (e.g. `rm -rf` of the directory).
//!             let watch = guard.hold_until_exit();
//!             let cleanup = watch.clone();
//!             watch.spawn(std::time::Duration::from_millis(500), move |lost| {
//!                 eprintln!("{lost}");
//!                 cleanup.cleanup_sockets();
//!                 std::process::exit(0);
//!             })?;
//!             sockets
//!         }
//!         Acquired::AlreadyRunning(running) => {
//!             eprintln!("{running}"); // "already running (pid N)"
//!             std::process::exit(0); // 0: a restart policy must not respawn a loser
//!         }
//!     },
//! };
//! let control = sockets.take_unix_listener("control")?;
//! notify(&[NotifyState::Ready, NotifyState::Status("serving".into())])?;
//! # drop(control); Ok(()) }
//! ```

pub mod env;
pub mod fd;
pub mod guard;
#[cfg(any(target_os = "macos", initkit_check_macos))]
pub mod launchd;
pub mod notify;

pub use env::Activation;
pub use fd::{FdError, Listener, Listeners};

/// The sockets an init system passed to this process, or `Ok(None)` when none
/// did (bind them yourself, or use [`guard`]).
///
/// systemd (and `initkit exec`) pass `LISTEN_FDS`; launchd passes nothing in
/// the environment, so on macOS each of `launchd_names` (the plist's
/// `Sockets` keys, the manifest's socket names) is activated by name. A
/// `LISTEN_PID` that names another process is an error whose text says
/// "socket-activated but LISTEN_PID mismatch (a wrapper forked?)".
pub fn listeners(launchd_names: &[&str]) -> Result<Option<Listeners>, Error> {
    if let Some(l) = Listeners::take_from_env()? {
        return Ok(Some(l));
    }
    imp::launchd_listeners(launchd_names)
}

#[cfg(any(target_os = "macos", initkit_check_macos))]
mod imp {
    use super::{launchd, Error, Listeners};

    pub fn launchd_listeners(names: &[&str]) -> Result<Option<Listeners>, Error> {
        if names.is_empty() {
            return Ok(None);
        }
        match launchd::activate_all(names).map_err(Error::Launchd)? {
            None => Ok(None),
            // SAFETY: launchd just created these fds for this process.
            Some(passed) => Ok(Some(unsafe { Listeners::from_passed(&passed) }?)),
        }
    }
}

#[cfg(not(any(target_os = "macos", initkit_check_macos)))]
mod imp {
    use super::{Error, Listeners};

    #[allow(clippy::unnecessary_wraps)] // same signature as the macOS version
    pub fn launchd_listeners(_names: &[&str]) -> Result<Option<Listeners>, Error> {
        Ok(None)
    }
}

/// Taking passed sockets failed.
#[derive(Debug)]
pub enum Error {
    Fd(FdError),
    #[cfg(any(target_os = "macos", initkit_check_macos))]
    Launchd(launchd::LaunchdError),
}

impl From<FdError> for Error {
    fn from(e: FdError) -> Error {
        Error::Fd(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Fd(e) => e.fmt(f),
            #[cfg(any(target_os = "macos", initkit_check_macos))]
            Error::Launchd(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Fd(e) => Some(e),
            #[cfg(any(target_os = "macos", initkit_check_macos))]
            Error::Launchd(e) => Some(e),
        }
    }
}
