//! sd_notify(3): tell the service manager about readiness and state.
//!
//! [`NotifyState`]'s `Display` is the wire format. [`notify`] sends to
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and is a
//! successful no-op when the variable is unset: off-init, and under launchd,
//! which has no readiness protocol (a launchd job is "ready" once it runs;
//! `Type=notify` semantics simply do not exist there).

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::net::UnixDatagram;

/// How often `WATCHDOG=1` must be sent, when the manager asked for it
/// (`WATCHDOG_USEC`, for this pid per `WATCHDOG_PID`). Send at half of it.
pub use super::env::watchdog_usec;

/// One `KEY=VALUE` line of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyState {
    /// `READY=1`: startup finished, the sockets are being served.
    Ready,
    /// `STATUS=...`: one line of free-form status shown by `systemctl status`.
    Status(String),
    /// `WATCHDOG=1`: keep-alive ping; see [`super::env::watchdog_usec`].
    Watchdog,
    /// `STOPPING=1`: shutdown began.
    Stopping,
    /// `RELOADING=1`: reloading configuration; send `READY=1` when done.
    Reloading,
    /// `MAINPID=N`: the daemon's main process is N.
    MainPid(u32),
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyState::Ready => f.write_str("READY=1"),
            NotifyState::Status(s) => write!(f, "STATUS={s}"),
            NotifyState::Watchdog => f.write_str("WATCHDOG=1"),
            NotifyState::Stopping => f.write_str("STOPPING=1"),
            NotifyState::Reloading => f.write_str("RELOADING=1"),
            NotifyState::MainPid(pid) => write!(f, "MAINPID={pid}"),
        }
    }
}

/// A notification could not be sent.
#[derive(Debug)]
pub enum NotifyError {
    /// A STATUS containing a newline would inject extra assignments.
    Newline(String),
    /// `NOTIFY_SOCKET` is set but not something this library can send to.
    BadAddress(String),
    /// Sending the datagram failed.
    Send { socket: String, source: io::Error },
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::Newline(s) => write!(f, "notify state {s:?} contains a newline"),
            NotifyError::BadAddress(a) => write!(
                f,
                "NOTIFY_SOCKET={a:?} is not an absolute path or @abstract name"
            ),
            NotifyError::Send { socket, source } => {
                write!(f, "send notification to {socket}: {source}")
            }
        }
    }
}

impl std::error::Error for NotifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NotifyError::Send { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The datagram for `states`: one `KEY=VALUE` per line. Pure.
pub fn message(states: &[NotifyState]) -> Result<String, NotifyError> {
    let mut out = String::new();
    for state in states {
        let line = state.to_string();
        if line.contains('\n') {
            return Err(NotifyError::Newline(line));
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Send `states` to the manager at `socket` (the value of `NOTIFY_SOCKET`),
/// or do nothing when it is `None`.
pub fn notify_to(socket: Option<&OsStr>, states: &[NotifyState]) -> Result<(), NotifyError> {
    let msg = message(states)?;
    let Some(socket) = socket else {
        return Ok(());
    };
    let display = socket.to_string_lossy().into_owned();
    let sender = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
        socket: display.clone(),
        source,
    })?;
    let bytes = socket.as_encoded_bytes();
    let sent = match bytes.first() {
        Some(b'/') => sender.send_to(msg.as_bytes(), socket),
        Some(b'@') => send_abstract(&sender, &bytes[1..], msg.as_bytes()),
        _ => return Err(NotifyError::BadAddress(display)),
    };
    match sent {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(n) => Err(NotifyError::Send {
            socket: display,
            source: io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short send: {n} of {} bytes", msg.len()),
            ),
        }),
        Err(source) => Err(NotifyError::Send {
            socket: display,
            source,
        }),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sender: &UnixDatagram, name: &[u8], msg: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sender.send_to_addr(msg, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_sender: &UnixDatagram, _name: &[u8], _msg: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// Send `states` to `$NOTIFY_SOCKET`; a successful no-op when it is unset.
pub fn notify(states: &[NotifyState]) -> Result<(), NotifyError> {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wire_format() {
        let all = [
            NotifyState::Ready,
            NotifyState::Status("serving 2 sockets".into()),
            NotifyState::Watchdog,
            NotifyState::Stopping,
            NotifyState::Reloading,
            NotifyState::MainPid(1234),
        ];
        assert_eq!(
            message(&all).unwrap(),
            "READY=1\nSTATUS=serving 2 sockets\nWATCHDOG=1\nSTOPPING=1\nRELOADING=1\nMAINPID=1234\n"
        );
        assert!(matches!(
            message(&[NotifyState::Status("a\nREADY=1".into())]),
            Err(NotifyError::Newline(_))
        ));
    }

    #[test]
    fn unset_is_a_no_op_and_bad_address_is_an_error() {
        notify_to(None, &[NotifyState::Ready]).unwrap();
        let err = notify_to(Some(OsStr::new("relative")), &[NotifyState::Ready]).unwrap_err();
        assert!(
            err.to_string().contains("NOTIFY_SOCKET=\"relative\""),
            "{err}"
        );
    }

    #[test]
    fn sends_to_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        notify_to(
            Some(path.as_os_str()),
            &[NotifyState::Ready, NotifyState::Status("x".into())],
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x\n");

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("initkit-test-notify-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let rx = UnixDatagram::bind_addr(&addr).unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            notify_to(
                Some(OsStr::new(&format!("@{name}"))),
                &[NotifyState::Stopping],
            )
            .unwrap();
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"STOPPING=1\n");
        }
    }

    #[test]
    fn missing_socket_is_an_error_naming_it() {
        let err = notify_to(
            Some(OsStr::new("/nonexistent/initkit-notify")),
            &[NotifyState::Ready],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("send notification to /nonexistent/initkit-notify"),
            "{err}"
        );
    }
}
