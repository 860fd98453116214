//! The socket-activation environment (sd_listen_fds(3)): `LISTEN_PID`,
//! `LISTEN_FDS`, `LISTEN_FDNAMES`, and the watchdog's `WATCHDOG_USEC` /
//! `WATCHDOG_PID`.
//!
//! [`parse`] is pure and table-tested; [`from_env`] is the one thin function
//! that reads the process environment. Nothing here removes variables behind
//! the caller's back: [`remove_activation_vars`] is an explicit `unsafe fn`,
//! and [`scrub_command`] drops them from a child's environment instead.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::RawFd;
use std::time::Duration;

/// The first passed file descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Every variable the activation and notify protocols read. Children must not
/// inherit them: [`scrub_command`] removes exactly these.
pub const ACTIVATION_VARS: [&str; 6] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The name sd_listen_fds_with_names(3) reports when `LISTEN_FDNAMES` is unset.
pub const UNKNOWN_NAME: &str = "unknown";

/// One passed descriptor and its name, not yet validated or owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub fd: RawFd,
    pub name: String,
}

/// What the environment says about passed sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// `LISTEN_FDS` is not set: nobody passed sockets; bind them yourself (or
    /// use the guard).
    NotActivated,
    /// `LISTEN_FDS` is set but names another process: a wrapper between the
    /// init system and this process forked, so the sockets are not ours to
    /// take. Report it loudly (see the [`fmt::Display`] text); do not bind a
    /// second listener.
    PidMismatch { listen_pid: u32, self_pid: u32 },
    /// Sockets were passed to this process, in order from fd 3.
    Activated(Vec<Passed>),
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::NotActivated => f.write_str("not socket-activated"),
            Activation::PidMismatch {
                listen_pid,
                self_pid,
            } => write!(
                f,
                "socket-activated but LISTEN_PID mismatch (a wrapper forked?): LISTEN_PID={listen_pid}, this process is {self_pid}"
            ),
            Activation::Activated(fds) => {
                write!(f, "socket-activated with {} fd(s):", fds.len())?;
                for p in fds {
                    write!(f, " {}={}", p.name, p.fd)?;
                }
                Ok(())
            }
        }
    }
}

/// The activation variables are set but malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// A variable is not valid UTF-8 or not a number of the expected range.
    Invalid {
        variable: &'static str,
        value: String,
        reason: &'static str,
    },
    /// `LISTEN_FDS` is set without `LISTEN_PID`; sd_listen_fds(3) requires both.
    MissingPid,
    /// `LISTEN_FDS=0` addressed to this process: the manager passed nothing.
    NoFds,
    /// `LISTEN_FDNAMES` names a different number of fds than `LISTEN_FDS` says.
    NameCount { fds: usize, names: usize },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::Invalid {
                variable,
                value,
                reason,
            } => write!(f, "{variable}={value:?} is invalid: {reason}"),
            EnvError::MissingPid => {
                f.write_str("LISTEN_FDS is set but LISTEN_PID is not; refusing to guess the owner")
            }
            EnvError::NoFds => {
                f.write_str("socket-activated with LISTEN_FDS=0: no sockets were passed")
            }
            EnvError::NameCount { fds, names } => {
                write!(f, "LISTEN_FDNAMES has {names} name(s) but LISTEN_FDS={fds}")
            }
        }
    }
}

impl std::error::Error for EnvError {}

fn utf8<'a>(variable: &'static str, value: &'a OsStr) -> Result<&'a str, EnvError> {
    value.to_str().ok_or_else(|| EnvError::Invalid {
        variable,
        value: value.to_string_lossy().into_owned(),
        reason: "not valid UTF-8",
    })
}

fn number(variable: &'static str, value: &OsStr) -> Result<u32, EnvError> {
    let text = utf8(variable, value)?;
    // Digits only: u32::from_str would accept a leading '+'.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EnvError::Invalid {
            variable,
            value: text.to_owned(),
            reason: "not a decimal number",
        });
    }
    text.parse().map_err(|_| EnvError::Invalid {
        variable,
        value: text.to_owned(),
        reason: "out of range",
    })
}

/// Interpret the three activation variables for the process `self_pid`.
///
/// Rules (sd_listen_fds(3), applied strictly):
/// - `LISTEN_FDS` unset: [`Activation::NotActivated`] (whatever else is set).
/// - `LISTEN_PID` is checked first; another pid is [`Activation::PidMismatch`].
/// - `LISTEN_FDS=0` for this pid is [`EnvError::NoFds`].
/// - names are colon-separated; unset names are all `"unknown"`; a count that
///   differs from `LISTEN_FDS` is [`EnvError::NameCount`].
pub fn parse(
    listen_pid: Option<&OsStr>,
    listen_fds: Option<&OsStr>,
    listen_fdnames: Option<&OsStr>,
    self_pid: u32,
) -> Result<Activation, EnvError> {
    let Some(listen_fds) = listen_fds else {
        return Ok(Activation::NotActivated);
    };
    let listen_pid = number("LISTEN_PID", listen_pid.ok_or(EnvError::MissingPid)?)?;
    if listen_pid != self_pid {
        return Ok(Activation::PidMismatch {
            listen_pid,
            self_pid,
        });
    }
    let count = number("LISTEN_FDS", listen_fds)?;
    if count == 0 {
        return Err(EnvError::NoFds);
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|n| i64::try_from(*n).is_ok_and(|n| n <= i64::from(RawFd::MAX - LISTEN_FDS_START)))
        .ok_or_else(|| EnvError::Invalid {
            variable: "LISTEN_FDS",
            value: count.to_string(),
            reason: "more descriptors than fit above fd 3",
        })?;
    let names: Vec<String> = match listen_fdnames {
        None => vec![UNKNOWN_NAME.to_owned(); count],
        Some(raw) => utf8("LISTEN_FDNAMES", raw)?
            .split(':')
            .map(str::to_owned)
            .collect(),
    };
    if names.len() != count {
        return Err(EnvError::NameCount {
            fds: count,
            names: names.len(),
        });
    }
    Ok(Activation::Activated(
        names
            .into_iter()
            .zip(LISTEN_FDS_START..)
            .map(|(name, fd)| Passed { fd, name })
            .collect(),
    ))
}

/// [`parse`] applied to this process's environment.
pub fn from_env() -> Result<Activation, EnvError> {
    let var = std::env::var_os;
    parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )
}

/// Interpret `WATCHDOG_USEC` / `WATCHDOG_PID` (sd_watchdog_enabled(3)) for
/// `self_pid`: `Ok(Some(interval))` when this process must send `WATCHDOG=1`
/// at least that often (send at half the interval), `Ok(None)` when no
/// watchdog applies (unset, or `WATCHDOG_PID` names another process).
pub fn parse_watchdog(
    watchdog_usec: Option<&OsStr>,
    watchdog_pid: Option<&OsStr>,
    self_pid: u32,
) -> Result<Option<Duration>, EnvError> {
    let Some(usec) = watchdog_usec else {
        return Ok(None);
    };
    if let Some(pid) = watchdog_pid {
        if number("WATCHDOG_PID", pid)? != self_pid {
            return Ok(None);
        }
    }
    let text = utf8("WATCHDOG_USEC", usec)?;
    let usec: u64 = text
        .parse()
        .ok()
        .filter(|n| *n > 0 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| EnvError::Invalid {
            variable: "WATCHDOG_USEC",
            value: text.to_owned(),
            reason: "not a positive number of microseconds",
        })?;
    Ok(Some(Duration::from_micros(usec)))
}

/// [`parse_watchdog`] applied to this process's environment.
pub fn watchdog_usec() -> Result<Option<Duration>, EnvError> {
    let var = std::env::var_os;
    parse_watchdog(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// Remove [`ACTIVATION_VARS`] from a child's environment, so a process this
/// daemon spawns does not believe the sockets or the notify socket are its own.
pub fn scrub_command(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in ACTIVATION_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Remove [`ACTIVATION_VARS`] from this process's environment, as
/// `sd_listen_fds(1)` does.
///
/// # Safety
///
/// Modifying the environment is unsound while any other thread may read or
/// write it (getenv in libc, `std::env::var`, DNS resolution, ...). Call this
/// only while the process is single-threaded, e.g. first thing in `main`
/// after [`from_env`]. Prefer [`scrub_command`] when the goal is only that
/// children do not inherit the variables.
pub unsafe fn remove_activation_vars() {
    for var in ACTIVATION_VARS {
        // Under edition 2024 remove_var is itself unsafe with this contract;
        // the caller upholds it (see # Safety).
        std::env::remove_var(var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_wraps)]
    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    fn passed(list: &[(RawFd, &str)]) -> Activation {
        Activation::Activated(
            list.iter()
                .map(|(fd, name)| Passed {
                    fd: *fd,
                    name: (*name).to_owned(),
                })
                .collect(),
        )
    }

    #[test]
    fn table() {
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Result<Activation, EnvError>,
        );
        let cases: Vec<Case> = vec![
            (None, None, None, Ok(Activation::NotActivated)),
            (Some("42"), None, Some("a"), Ok(Activation::NotActivated)),
            (Some("42"), Some("1"), None, Ok(passed(&[(3, "unknown")]))),
            (
                Some("42"),
                Some("2"),
                Some("control:data"),
                Ok(passed(&[(3, "control"), (4, "data")])),
            ),
            (Some("42"), Some("1"), Some(""), Ok(passed(&[(3, "")]))),
            (
                Some("43"),
                Some("1"),
                Some("control"),
                Ok(Activation::PidMismatch {
                    listen_pid: 43,
                    self_pid: 42,
                }),
            ),
            // The pid is checked before anything else about the fds.
            (
                Some("7"),
                Some("garbage"),
                None,
                Ok(Activation::PidMismatch {
                    listen_pid: 7,
                    self_pid: 42,
                }),
            ),
            (Some("42"), Some("0"), None, Err(EnvError::NoFds)),
            (None, Some("1"), None, Err(EnvError::MissingPid)),
            (
                Some("42"),
                Some("2"),
                Some("control"),
                Err(EnvError::NameCount { fds: 2, names: 1 }),
            ),
            (
                Some("42"),
                Some("1"),
                Some("a:b"),
                Err(EnvError::NameCount { fds: 1, names: 2 }),
            ),
            (
                Some("42"),
                Some("+1"),
                None,
                Err(EnvError::Invalid {
                    variable: "LISTEN_FDS",
                    value: "+1".into(),
                    reason: "not a decimal number",
                }),
            ),
            (
                Some("x"),
                Some("1"),
                None,
                Err(EnvError::Invalid {
                    variable: "LISTEN_PID",
                    value: "x".into(),
                    reason: "not a decimal number",
                }),
            ),
            (
                Some("42"),
                Some("4294967295"),
                None,
                Err(EnvError::Invalid {
                    variable: "LISTEN_FDS",
                    value: "4294967295".into(),
                    reason: "more descriptors than fit above fd 3",
                }),
            ),
        ];
        for (pid, fds, names, want) in cases {
            let got = parse(
                pid.map(OsStr::new),
                fds.map(OsStr::new),
                names.map(OsStr::new),
                42,
            );
            assert_eq!(
                got, want,
                "LISTEN_PID={pid:?} LISTEN_FDS={fds:?} LISTEN_FDNAMES={names:?}"
            );
        }
    }

    #[test]
    fn mismatch_message_is_loud_and_specific() {
        let msg = parse(os("7"), os("1"), None, 42).unwrap().to_string();
        assert!(
            msg.starts_with("socket-activated but LISTEN_PID mismatch (a wrapper forked?)"),
            "{msg}"
        );
        assert!(msg.contains("LISTEN_PID=7") && msg.contains("42"), "{msg}");
    }

    #[test]
    fn watchdog() {
        assert_eq!(parse_watchdog(None, None, 42), Ok(None));
        assert_eq!(
            parse_watchdog(os("3000000"), None, 42),
            Ok(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            parse_watchdog(os("3000000"), os("42"), 42),
            Ok(Some(Duration::from_secs(3)))
        );
        assert_eq!(parse_watchdog(os("3000000"), os("41"), 42), Ok(None));
        assert!(parse_watchdog(os("0"), None, 42).is_err());
        assert!(parse_watchdog(os("-5"), None, 42).is_err());
        assert!(parse_watchdog(os("5"), os("x"), 42).is_err());
    }

    #[test]
    fn scrub_command_removes_every_variable() {
        let mut cmd = std::process::Command::new("true");
        for var in ACTIVATION_VARS {
            cmd.env(var, "1");
        }
        scrub_command(&mut cmd);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(envs.len(), ACTIVATION_VARS.len());
        assert!(envs.iter().all(|(_, v)| v.is_none()), "{envs:?}");
    }
}
