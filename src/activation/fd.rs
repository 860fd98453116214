//! Passed descriptors → validated, owned, typed sockets, each handed out once
//! by name.
//!
//! Before a descriptor is owned it is checked: `fstat` says it is a socket,
//! `SO_TYPE` and `getsockname` give its type and family, and `SO_ACCEPTCONN`
//! whether it listens. Then it gets `FD_CLOEXEC` so children never inherit it.

use std::fmt;
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicBool, Ordering};

use super::env::{Activation, Passed};

/// Address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Unix,
    Inet,
    Inet6,
    Other(i32),
}

/// `SO_TYPE` of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    Stream,
    Datagram,
    SeqPacket,
    Other(i32),
}

/// What a descriptor turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketInfo {
    pub family: Family,
    pub sock_type: SockType,
    /// `SO_ACCEPTCONN`: a stream socket that `listen()` was called on.
    pub listening: bool,
}

impl fmt::Display for SocketInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = match self.family {
            Family::Unix => "unix".to_owned(),
            Family::Inet => "inet".to_owned(),
            Family::Inet6 => "inet6".to_owned(),
            Family::Other(n) => format!("family {n}"),
        };
        let ty = match self.sock_type {
            SockType::Stream => "stream".to_owned(),
            SockType::Datagram => "datagram".to_owned(),
            SockType::SeqPacket => "seqpacket".to_owned(),
            SockType::Other(n) => format!("type {n}"),
        };
        let listening = if self.listening { " (listening)" } else { "" };
        write!(f, "{family} {ty}{listening}")
    }
}

/// A passed socket, typed by what it is.
#[derive(Debug)]
pub enum Listener {
    Unix(UnixListener),
    UnixDatagram(UnixDatagram),
    Tcp(TcpListener),
    Udp(UdpSocket),
    /// Anything else (seqpacket, netlink, a connected stream...).
    Other(OwnedFd),
}

/// A descriptor could not be validated or handed out.
#[derive(Debug)]
pub enum FdError {
    /// `fstat` failed; usually the fd is not open (a wrapper closed it).
    NotOpen {
        fd: RawFd,
        name: String,
        source: io::Error,
    },
    /// The fd is open but is not a socket.
    NotSocket { fd: RawFd, name: String },
    /// A socket call on the fd failed.
    Os {
        fd: RawFd,
        name: String,
        call: &'static str,
        source: io::Error,
    },
    /// No remaining socket has this name.
    NotFound {
        name: String,
        available: Vec<String>,
    },
    /// The socket is not of the kind asked for.
    WrongKind {
        name: String,
        expected: &'static str,
        found: SocketInfo,
    },
    /// The passed fds were already taken by an earlier call in this process.
    AlreadyTaken,
    /// The environment was a PID mismatch or malformed.
    Env(super::env::EnvError),
    /// See [`Activation::PidMismatch`].
    PidMismatch { listen_pid: u32, self_pid: u32 },
}

impl fmt::Display for FdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdError::NotOpen { fd, name, source } => {
                write!(f, "passed fd {fd} ({name:?}) is not usable: {source}")
            }
            FdError::NotSocket { fd, name } => {
                write!(f, "passed fd {fd} ({name:?}) is not a socket")
            }
            FdError::Os {
                fd,
                name,
                call,
                source,
            } => write!(f, "{call} on passed fd {fd} ({name:?}): {source}"),
            FdError::NotFound { name, available } => write!(
                f,
                "no passed socket named {name:?} (passed and not yet taken: {})",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
            FdError::WrongKind {
                name,
                expected,
                found,
            } => write!(f, "passed socket {name:?} is {found}, expected {expected}"),
            FdError::AlreadyTaken => {
                f.write_str("the passed sockets were already taken in this process")
            }
            FdError::Env(e) => e.fmt(f),
            FdError::PidMismatch {
                listen_pid,
                self_pid,
            } => Activation::PidMismatch {
                listen_pid: *listen_pid,
                self_pid: *self_pid,
            }
            .fmt(f),
        }
    }
}

impl std::error::Error for FdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FdError::NotOpen { source, .. } | FdError::Os { source, .. } => Some(source),
            FdError::Env(e) => Some(e),
            _ => None,
        }
    }
}

/// Inspect `fd` without taking ownership.
pub fn inspect(fd: RawFd, name: &str) -> Result<SocketInfo, FdError> {
    let os = |call: &'static str| FdError::Os {
        fd,
        name: name.to_owned(),
        call,
        source: io::Error::last_os_error(),
    };
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `st`; a closed fd yields EBADF.
    if unsafe { libc::fstat(fd, std::ptr::addr_of_mut!(st)) } != 0 {
        return Err(FdError::NotOpen {
            fd,
            name: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(FdError::NotSocket {
            fd,
            name: name.to_owned(),
        });
    }
    let int_opt = |opt: libc::c_int, call: &'static str| -> Result<libc::c_int, FdError> {
        let mut value: libc::c_int = 0;
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
            .expect("c_int fits socklen_t");
        // SAFETY: value/len describe a c_int-sized buffer owned by this frame.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                std::ptr::addr_of_mut!(value).cast(),
                std::ptr::addr_of_mut!(len),
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(os(call))
        }
    };
    let sock_type = match int_opt(libc::SO_TYPE, "getsockopt(SO_TYPE)")? {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM => SockType::Datagram,
        libc::SOCK_SEQPACKET => SockType::SeqPacket,
        other => SockType::Other(other),
    };
    let listening = match sock_type {
        SockType::Stream | SockType::SeqPacket => {
            int_opt(libc::SO_ACCEPTCONN, "getsockopt(SO_ACCEPTCONN)")? != 0
        }
        _ => false,
    };
    // SAFETY: an all-zero sockaddr_storage is valid for getsockname to fill.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>())
        .expect("sockaddr_storage fits socklen_t");
    // SAFETY: addr/len describe a sockaddr_storage owned by this frame.
    if unsafe {
        libc::getsockname(
            fd,
            std::ptr::addr_of_mut!(addr).cast(),
            std::ptr::addr_of_mut!(len),
        )
    } != 0
    {
        return Err(os("getsockname"));
    }
    let family = match i32::from(addr.ss_family) {
        libc::AF_UNIX => Family::Unix,
        libc::AF_INET => Family::Inet,
        libc::AF_INET6 => Family::Inet6,
        other => Family::Other(other),
    };
    Ok(SocketInfo {
        family,
        sock_type,
        listening,
    })
}

fn set_cloexec(fd: RawFd, name: &str) -> Result<(), FdError> {
    // SAFETY: F_GETFD/F_SETFD only read and set descriptor flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(FdError::Os {
            fd,
            name: name.to_owned(),
            call: "fcntl(F_SETFD, FD_CLOEXEC)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

struct Entry {
    name: String,
    info: SocketInfo,
    fd: Option<OwnedFd>,
}

/// Validated, owned sockets by name. Each is handed out once; whatever is not
/// taken is closed when this is dropped.
pub struct Listeners {
    entries: Vec<Entry>,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| {
                (
                    &e.name,
                    e.info.to_string(),
                    e.fd.as_ref().map(AsRawFd::as_raw_fd),
                )
            }))
            .finish()
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Listeners {
    /// Validate and own the sockets passed to this process.
    ///
    /// `Ok(None)` when not socket-activated (bind yourself, or use
    /// [`super::guard`]). A [`Activation::PidMismatch`] is an error: the
    /// sockets belong to another process. Succeeds at most once per process,
    /// so no fd is owned twice.
    pub fn take_from_env() -> Result<Option<Listeners>, FdError> {
        match super::env::from_env().map_err(FdError::Env)? {
            Activation::NotActivated => Ok(None),
            Activation::PidMismatch {
                listen_pid,
                self_pid,
            } => Err(FdError::PidMismatch {
                listen_pid,
                self_pid,
            }),
            Activation::Activated(passed) => {
                if TAKEN.swap(true, Ordering::SeqCst) {
                    return Err(FdError::AlreadyTaken);
                }
                // SAFETY: the descriptors were passed to this process (the
                // pid matched) and TAKEN guarantees nobody else in this
                // process claimed them through this API.
                let taken = unsafe { Listeners::from_passed(&passed) };
                if taken.is_err() {
                    // Nothing was owned (validation precedes ownership): a
                    // retry reports the same error, not "already taken".
                    TAKEN.store(false, Ordering::SeqCst);
                }
                taken.map(Some)
            }
        }
    }

    /// Validate and own `passed` descriptors. Every fd is validated before
    /// any is owned, so on error nothing is closed.
    ///
    /// # Safety
    ///
    /// Each fd must be open and owned by nobody else in this process: after
    /// this returns they are closed when the returned value (or the socket
    /// taken from it) is dropped.
    pub unsafe fn from_passed(passed: &[Passed]) -> Result<Listeners, FdError> {
        let mut infos = Vec::with_capacity(passed.len());
        for p in passed {
            infos.push(inspect(p.fd, &p.name)?);
        }
        for p in passed {
            set_cloexec(p.fd, &p.name)?;
        }
        let entries = passed
            .iter()
            .zip(infos)
            .map(|(p, info)| Entry {
                name: p.name.clone(),
                info,
                // SAFETY: the caller guarantees each fd is open and unowned.
                fd: Some(unsafe { OwnedFd::from_raw_fd(p.fd) }),
            })
            .collect();
        Ok(Listeners { entries })
    }

    /// Own already-open sockets, e.g. ones the guard bound.
    pub fn from_owned(sockets: Vec<(String, OwnedFd)>) -> Result<Listeners, FdError> {
        let mut entries = Vec::with_capacity(sockets.len());
        for (name, fd) in sockets {
            let info = inspect(fd.as_raw_fd(), &name)?;
            set_cloexec(fd.as_raw_fd(), &name)?;
            entries.push(Entry {
                name,
                info,
                fd: Some(fd),
            });
        }
        Ok(Listeners { entries })
    }

    /// Names of the sockets not yet taken, in fd order (repeats possible).
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.fd.is_some())
            .map(|e| e.name.clone())
            .collect()
    }

    /// What the next untaken socket named `name` is.
    pub fn info(&self, name: &str) -> Option<SocketInfo> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.fd.is_some())
            .map(|e| e.info)
    }

    fn take_checked(
        &mut self,
        name: &str,
        expected: &'static str,
        ok: impl Fn(&SocketInfo) -> bool,
    ) -> Result<OwnedFd, FdError> {
        let available = self.names();
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.name == name && e.fd.is_some())
            .ok_or_else(|| FdError::NotFound {
                name: name.to_owned(),
                available,
            })?;
        if !ok(&entry.info) {
            return Err(FdError::WrongKind {
                name: name.to_owned(),
                expected,
                found: entry.info,
            });
        }
        Ok(entry.fd.take().expect("checked above"))
    }

    /// The socket named `name`, whatever it is.
    pub fn take_fd(&mut self, name: &str) -> Result<OwnedFd, FdError> {
        self.take_checked(name, "any socket", |_| true)
    }

    /// A listening unix stream socket.
    pub fn take_unix_listener(&mut self, name: &str) -> Result<UnixListener, FdError> {
        self.take_checked(name, "a listening unix stream socket", |i| {
            i.family == Family::Unix && i.sock_type == SockType::Stream && i.listening
        })
        .map(UnixListener::from)
    }

    /// A listening TCP socket (IPv4 or IPv6).
    pub fn take_tcp_listener(&mut self, name: &str) -> Result<TcpListener, FdError> {
        self.take_checked(name, "a listening tcp socket", |i| {
            matches!(i.family, Family::Inet | Family::Inet6)
                && i.sock_type == SockType::Stream
                && i.listening
        })
        .map(TcpListener::from)
    }

    /// A UDP socket (IPv4 or IPv6).
    pub fn take_udp_socket(&mut self, name: &str) -> Result<UdpSocket, FdError> {
        self.take_checked(name, "a udp socket", |i| {
            matches!(i.family, Family::Inet | Family::Inet6) && i.sock_type == SockType::Datagram
        })
        .map(UdpSocket::from)
    }

    /// The socket named `name`, typed by what it is.
    pub fn take(&mut self, name: &str) -> Result<Listener, FdError> {
        let info = self.info(name);
        let fd = self.take_fd(name)?;
        Ok(match info {
            Some(SocketInfo {
                family: Family::Unix,
                sock_type: SockType::Stream,
                listening: true,
            }) => Listener::Unix(fd.into()),
            Some(SocketInfo {
                family: Family::Unix,
                sock_type: SockType::Datagram,
                ..
            }) => Listener::UnixDatagram(fd.into()),
            Some(SocketInfo {
                family: Family::Inet | Family::Inet6,
                sock_type: SockType::Stream,
                listening: true,
            }) => Listener::Tcp(fd.into()),
            Some(SocketInfo {
                family: Family::Inet | Family::Inet6,
                sock_type: SockType::Datagram,
                ..
            }) => Listener::Udp(fd.into()),
            _ => Listener::Other(fd),
        })
    }

    /// Every socket not yet taken, typed, with its name.
    pub fn take_all(&mut self) -> Vec<(String, Listener)> {
        self.names()
            .into_iter()
            .map(|name| {
                let l = self.take(&name).expect("name listed as untaken");
                (name, l)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn inspects_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(dir.path().join("s")).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();

        let i = inspect(unix.as_raw_fd(), "u").unwrap();
        assert_eq!(
            (i.family, i.sock_type, i.listening),
            (Family::Unix, SockType::Stream, true)
        );
        let i = inspect(tcp.as_raw_fd(), "t").unwrap();
        assert_eq!(
            (i.family, i.sock_type, i.listening),
            (Family::Inet, SockType::Stream, true)
        );
        let i = inspect(udp.as_raw_fd(), "d").unwrap();
        assert_eq!(
            (i.family, i.sock_type, i.listening),
            (Family::Inet, SockType::Datagram, false)
        );
        let i = inspect(a.as_raw_fd(), "p").unwrap();
        assert!(!i.listening, "a connected stream is not a listener");
        assert!(matches!(
            inspect(file.as_raw_fd(), "f"),
            Err(FdError::NotSocket { .. })
        ));
    }

    #[test]
    fn hands_out_once_by_name_and_checks_kind() {
        let dir = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(dir.path().join("s")).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        let mut l = Listeners::from_owned(vec![
            ("control".into(), unix.into()),
            ("http".into(), tcp.into()),
        ])
        .unwrap();
        assert_eq!(l.names(), ["control", "http"]);
        let err = l.take_udp_socket("http").unwrap_err();
        assert!(err.to_string().contains("expected a udp socket"), "{err}");
        let t = l.take_tcp_listener("http").unwrap();
        assert_eq!(t.local_addr().unwrap(), tcp_addr);
        let err = l.take_tcp_listener("http").unwrap_err().to_string();
        assert_eq!(
            err,
            "no passed socket named \"http\" (passed and not yet taken: control)"
        );
        let all = l.take_all();
        assert!(matches!(all.as_slice(), [(n, Listener::Unix(_))] if n == "control"));
        assert!(l.names().is_empty());
    }

    #[test]
    fn from_passed_sets_cloexec_and_rejects_non_sockets_without_closing() {
        let dir = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(dir.path().join("s")).unwrap();
        let raw = unix.into_raw_fd();
        // SAFETY: F_SETFD on our own fd.
        unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
        let file = std::fs::File::open("/dev/null").unwrap();
        let passed = [
            Passed {
                fd: raw,
                name: "a".into(),
            },
            Passed {
                fd: file.as_raw_fd(),
                name: "b".into(),
            },
        ];
        // SAFETY: `raw` is ours and unowned; the call fails before owning any.
        let err = unsafe { Listeners::from_passed(&passed) }.unwrap_err();
        assert!(matches!(err, FdError::NotSocket { fd, .. } if fd == file.as_raw_fd()));
        // SAFETY: F_GETFD on an fd that must still be open.
        assert_eq!(
            unsafe { libc::fcntl(raw, libc::F_GETFD) },
            0,
            "still open, untouched"
        );
        // SAFETY: `raw` is ours and unowned.
        let mut l = unsafe { Listeners::from_passed(&passed[..1]) }.unwrap();
        // SAFETY: F_GETFD on an fd the Listeners now owns.
        assert_eq!(unsafe { libc::fcntl(raw, libc::F_GETFD) }, libc::FD_CLOEXEC);
        drop(l.take_unix_listener("a").unwrap());
    }
}
