//! The off-init single-instance guard: for when no init system handed over
//! the sockets.
//!
//! 1. **Lock.** Open the lock file (`O_NOFOLLOW | O_CLOEXEC`, mode 0600,
//!    missing parent directories created 0700) and `flock` it without
//!    blocking. A
//!    held lock means another instance runs: [`Acquired::AlreadyRunning`]
//!    with the pid written in the file. A caller that loses must exit **0**
//!    ("already running (pid N)"), or a restart policy respawns it forever.
//! 2. **Bind.** Holding the lock, bind each unix socket path (missing parents
//!    0700, or 0755 when the socket's mode lets others connect). The
//!    kernel's atomic bind is the enforcer. When the path exists:
//!    - not a socket (regular file, directory, symlink...): refused, never
//!      removed;
//!    - a socket with mode 000: refused (it was disabled on purpose; root
//!      would otherwise bypass the permission check);
//!    - `connect()` succeeds: someone listens; a SIGSTOPped daemon still
//!      accepts into its backlog, so this proves "bound", not "healthy". The
//!      optional ping tells alive from hung. Either way the path is never
//!      removed. While this process holds the lock the listener is an
//!      instance that lost its lock file; it stops within its watch interval,
//!      so the guard waits up to [`GuardSpec::takeover_wait`] for it;
//!    - `connect()` fails with `ECONNREFUSED`: stale (nobody listens on that
//!      inode). Only then, and only while holding the lock, is it unlinked;
//!    - `EAGAIN` (backlog full), `EACCES`/`EPERM` or anything else: refused
//!      with a clear error, never removed.
//! 3. **Watch.** [`WatchSet`] compares the lock path's and socket paths'
//!    inodes with the ones this process holds. When one vanishes or changes
//!    (`rm -rf ~/.local/state`), the instance must stop: a new starter will
//!    take a new lock and there must never be two reachable "singletons".
//! 4. **Cleanup.** Dropping a [`Guard`] unlinks a socket path only if its
//!    inode is still the one this process bound. The lock file stays.

use std::fmt;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fd::{FdError, Listeners};

/// Default interval between inode checks.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// A protocol ping: given a connected stream (read/write timeouts set),
/// return `Ok(())` when the peer answered like a healthy instance.
pub type Ping = Box<dyn Fn(&mut UnixStream) -> io::Result<()> + Send + Sync>;

/// Device and inode: what a path must still name for this process to own it.
///
/// Sound while this process holds the object: an open lock fd and a bound
/// socket both pin their inode, so its number cannot be reused by a file
/// created after an `rm`. (After the holder is gone a filesystem may recycle
/// the number; cleanup at exit runs while the socket is still open.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone)]
struct UnixSpec {
    name: String,
    path: PathBuf,
    mode: Option<u32>,
    backlog: Option<u32>,
}

/// What to lock and bind. Build it, then [`GuardSpec::acquire`].
pub struct GuardSpec {
    lock: PathBuf,
    sockets: Vec<UnixSpec>,
    ping: Option<Ping>,
    probe_timeout: Duration,
    takeover_wait: Duration,
}

impl fmt::Debug for GuardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardSpec")
            .field("lock", &self.lock)
            .field("sockets", &self.sockets)
            .field("ping", &self.ping.is_some())
            .field("probe_timeout", &self.probe_timeout)
            .field("takeover_wait", &self.takeover_wait)
            .finish()
    }
}

/// Who holds the instance when this process lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The holder's pid when known (from the lock file or `SO_PEERCRED`).
    pub pid: Option<u32>,
    /// How it was found: the lock path, or the socket path that answered.
    pub evidence: PathBuf,
}

impl fmt::Display for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "already running (pid {pid})"),
            None => write!(
                f,
                "already running (pid unknown; {} is held)",
                self.evidence.display()
            ),
        }
    }
}

/// The outcome of [`GuardSpec::acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// This process is the instance.
    Won(Guard),
    /// Another instance holds the lock or answers on a socket path. Exit 0.
    AlreadyRunning(Running),
}

/// The guard could not decide safely; nothing was removed.
#[derive(Debug)]
pub enum GuardError {
    CreateDir {
        path: PathBuf,
        source: io::Error,
    },
    OpenLock {
        path: PathBuf,
        source: io::Error,
    },
    LockNotRegular {
        path: PathBuf,
    },
    Lock {
        path: PathBuf,
        source: io::Error,
    },
    /// The socket path exists and is not a socket.
    NotASocket {
        path: PathBuf,
        kind: &'static str,
    },
    /// A socket with mode 000 sits at the path.
    Disabled {
        path: PathBuf,
    },
    /// connect() was refused for permission; the path may belong to someone else.
    PermissionDenied {
        path: PathBuf,
        source: io::Error,
    },
    /// The listener's backlog is full (EAGAIN): it exists but is busy or hung.
    Busy {
        path: PathBuf,
    },
    /// A listener answered connect() but failed the ping.
    Hung {
        path: PathBuf,
        pid: Option<u32>,
        source: io::Error,
    },
    /// connect() failed in a way that does not prove the path stale.
    Probe {
        path: PathBuf,
        source: io::Error,
    },
    /// socket(), bind(), listen() or chmod failed.
    Bind {
        name: String,
        path: PathBuf,
        call: &'static str,
        source: io::Error,
    },
    Unlink {
        path: PathBuf,
        source: io::Error,
    },
    /// The path kept changing under us.
    Unstable {
        path: PathBuf,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::CreateDir { path, source } => {
                write!(f, "create directory {}: {source}", path.display())
            }
            GuardError::OpenLock { path, source } => {
                if source.raw_os_error() == Some(libc::ELOOP) {
                    write!(f, "open lock file {}: it is a symlink; refusing to follow it", path.display())
                } else {
                    write!(f, "open lock file {}: {source}", path.display())
                }
            }
            GuardError::LockNotRegular { path } => {
                write!(f, "lock path {} is not a regular file", path.display())
            }
            GuardError::Lock { path, source } => write!(f, "flock {}: {source}", path.display()),
            GuardError::NotASocket { path, kind } => write!(
                f,
                "refusing to replace {}: it is a {kind}, not a socket (remove it yourself if it is stale)",
                path.display()
            ),
            GuardError::Disabled { path } => write!(
                f,
                "refusing to replace {}: a socket with mode 000 (disabled on purpose?) sits there",
                path.display()
            ),
            GuardError::PermissionDenied { path, source } | GuardError::Probe { path, source } => {
                write!(
                    f,
                    "cannot tell whether {} is stale: connect: {source}; refusing to replace it",
                    path.display()
                )
            }
            GuardError::Busy { path } => write!(
                f,
                "a listener at {} has a full backlog (busy or hung); refusing to replace it",
                path.display()
            ),
            GuardError::Hung { path, pid, source } => {
                write!(f, "a listener at {}", path.display())?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, " accepts connections but failed the ping ({source}); hung? refusing to replace it")
            }
            GuardError::Bind {
                name,
                path,
                call,
                source,
            } => write!(f, "{call} for socket {name:?} at {}: {source}", path.display()),
            GuardError::Unlink { path, source } => {
                write!(f, "remove stale socket {}: {source}", path.display())
            }
            GuardError::Unstable { path } => write!(
                f,
                "{} keeps changing while the lock is held (something ignores the lock)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for GuardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GuardError::CreateDir { source, .. }
            | GuardError::OpenLock { source, .. }
            | GuardError::Lock { source, .. }
            | GuardError::PermissionDenied { source, .. }
            | GuardError::Hung { source, .. }
            | GuardError::Probe { source, .. }
            | GuardError::Bind { source, .. }
            | GuardError::Unlink { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a running instance lost its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub path: PathBuf,
    /// `true` when the path no longer exists, `false` when it names another inode.
    pub vanished: bool,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.vanished {
            "vanished"
        } else {
            "was replaced"
        };
        write!(
            f,
            "{} {what}; another instance may start, so this one stops",
            self.path.display()
        )
    }
}

/// The paths this instance owns and the inodes they must keep naming.
/// Cheap to clone into a watcher thread or process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSet {
    pub lock: (PathBuf, FileId),
    pub sockets: Vec<(PathBuf, FileId)>,
}

fn lstat_id(path: &Path) -> io::Result<Option<FileId>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(FileId::of(&m))),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl WatchSet {
    /// `Err` for the first path that vanished or names another inode. A path
    /// that cannot be examined for another reason (EACCES) is not a loss.
    pub fn check(&self) -> Result<(), Lost> {
        for (path, id) in std::iter::once(&self.lock).chain(&self.sockets) {
            match lstat_id(path) {
                Ok(Some(now)) if now == *id => {}
                Ok(Some(_)) => {
                    return Err(Lost {
                        path: path.clone(),
                        vanished: false,
                    })
                }
                Ok(None) => {
                    return Err(Lost {
                        path: path.clone(),
                        vanished: true,
                    })
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Check every `interval` on a background thread; call `on_lost` once and
    /// end at the first loss. The daemon should then stop serving (and call
    /// [`WatchSet::cleanup_sockets`] or drop its [`Guard`]).
    pub fn spawn(
        self,
        interval: Duration,
        on_lost: impl FnOnce(Lost) + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("initkit-guard-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                if let Err(lost) = self.check() {
                    on_lost(lost);
                    return;
                }
            })
    }

    /// For a process other than the daemon (the `initkit exec` watcher),
    /// after the daemon exited: unlink each socket path that still names our
    /// inode and on which nobody listens any more (`ECONNREFUSED`). A daemon
    /// that forked away and still serves the path keeps it.
    ///
    /// Only while holding the lock (our lock file's inode, taken without
    /// waiting): a new instance takes the lock before it touches a socket
    /// path, and between its `bind` and `listen` its fresh socket (which may
    /// even reuse our old inode number) refuses connections just like a
    /// stale one. When the lock is held elsewhere (a new instance, or a
    /// forked-away daemon that kept it), or the lock file is gone or
    /// replaced, nothing is removed: whoever holds the lock owns the paths.
    /// Returns whether the cleanup ran.
    pub fn cleanup_stale_sockets(&self) -> bool {
        let Some(_lock) = self.try_lock() else {
            return false;
        };
        for (path, id) in &self.sockets {
            if matches!(lstat_id(path), Ok(Some(now)) if now == *id)
                && matches!(probe(path), Ok(Probe::Refused))
                && matches!(lstat_id(path), Ok(Some(now)) if now == *id)
            {
                let _ = fs::remove_file(path);
            }
        }
        true
    }

    /// Our lock file, flocked without waiting; `None` when it is held
    /// elsewhere, gone, or no longer our inode (checked again once locked,
    /// as [`GuardSpec::acquire`] does). Released when dropped.
    fn try_lock(&self) -> Option<OwnedFd> {
        let (path, id) = &self.lock;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .ok()?;
        if FileId::of(&file.metadata().ok()?) != *id {
            return None;
        }
        flock_nb(&file).ok()?;
        (lstat_id(path).ok().flatten() == Some(*id)).then(|| OwnedFd::from(file))
    }

    /// Unlink each socket path that still names the inode this process bound.
    pub fn cleanup_sockets(&self) {
        for (path, id) in &self.sockets {
            if matches!(lstat_id(path), Ok(Some(now)) if now == *id) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

struct Bound {
    name: String,
    path: PathBuf,
    id: FileId,
    fd: Option<OwnedFd>,
}

/// A won instance: the lock is held and every socket path is bound. Dropping
/// it unlinks the socket paths that are still ours and releases the lock.
pub struct Guard {
    lock: Option<OwnedFd>,
    lock_path: PathBuf,
    lock_id: FileId,
    bound: Vec<Bound>,
    cleanup_on_drop: bool,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("lock_path", &self.lock_path)
            .field(
                "sockets",
                &self
                    .bound
                    .iter()
                    .map(|b| (&b.name, &b.path))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What the `initkit exec` shim carries across `exec`: the lock (held by the
/// open file description, so it survives exec), the listening sockets and the
/// paths to watch. No cleanup happens when these are dropped.
#[derive(Debug)]
pub struct ExecParts {
    pub lock: OwnedFd,
    pub sockets: Vec<(String, OwnedFd)>,
    pub watch: WatchSet,
}

impl Guard {
    /// The paths and inodes to watch.
    pub fn watch_set(&self) -> WatchSet {
        WatchSet {
            lock: (self.lock_path.clone(), self.lock_id),
            sockets: self.bound.iter().map(|b| (b.path.clone(), b.id)).collect(),
        }
    }

    /// The bound sockets, validated and typed like passed ones. Call once;
    /// the guard keeps the paths for cleanup and the lock.
    pub fn listeners(&mut self) -> Result<Listeners, FdError> {
        let owned = self
            .bound
            .iter_mut()
            .filter_map(|b| b.fd.take().map(|fd| (b.name.clone(), fd)))
            .collect();
        Listeners::from_owned(owned)
    }

    /// Keep the lock held for the rest of the process (it is released when
    /// the process exits) and return the paths to watch. For daemons that
    /// leave through `std::process::exit`, which runs no destructors: call
    /// [`WatchSet::cleanup_sockets`] on the way out.
    pub fn hold_until_exit(mut self) -> WatchSet {
        self.cleanup_on_drop = false;
        if let Some(lock) = self.lock.take() {
            // Deliberately leaked: the open file description holds the flock.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(lock);
        }
        self.watch_set()
    }

    /// Hand everything over for `exec`; nothing is cleaned up by this process.
    pub fn into_exec_parts(mut self) -> ExecParts {
        self.cleanup_on_drop = false;
        let watch = self.watch_set();
        let sockets = self
            .bound
            .iter_mut()
            .filter_map(|b| b.fd.take().map(|fd| (b.name.clone(), fd)))
            .collect();
        ExecParts {
            lock: self.lock.take().expect("lock is held until drop"),
            sockets,
            watch,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.cleanup_on_drop {
            for b in &self.bound {
                if matches!(lstat_id(&b.path), Ok(Some(now)) if now == b.id) {
                    let _ = fs::remove_file(&b.path);
                }
            }
        }
    }
}

/// Create missing parent directories with `mode` (existing ones are left alone).
fn create_parent(path: &Path, mode: u32) -> Result<(), GuardError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(parent)
            .map_err(|source| GuardError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
    }
    Ok(())
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "regular file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else {
        "non-socket file"
    }
}

/// What a non-blocking probe connect() found at an existing socket path.
enum Probe {
    Answering(UnixStream),
    Refused,
    Vanished,
}

fn probe(path: &Path) -> Result<Probe, GuardError> {
    let stream = match nonblocking_connect(path) {
        Ok(s) => s,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => Ok(Probe::Refused),
                Some(libc::ENOENT) => Ok(Probe::Vanished),
                Some(libc::EAGAIN) => Err(GuardError::Busy {
                    path: path.to_owned(),
                }),
                Some(libc::EACCES | libc::EPERM) => Err(GuardError::PermissionDenied {
                    path: path.to_owned(),
                    source: e,
                }),
                _ => Err(GuardError::Probe {
                    path: path.to_owned(),
                    source: e,
                }),
            }
        }
    };
    Ok(Probe::Answering(stream))
}

fn nonblocking_connect(path: &Path) -> io::Result<UnixStream> {
    let addr = nix::sys::socket::UnixAddr::new(path).map_err(io::Error::from)?;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_flags(fd.as_raw_fd(), true)?;
    nix::sys::socket::connect(fd.as_raw_fd(), &addr).map_err(io::Error::from)?;
    set_flags(fd.as_raw_fd(), false)?;
    Ok(UnixStream::from(fd))
}

/// Set CLOEXEC, and O_NONBLOCK to `nonblocking`.
fn set_flags(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    // SAFETY: fcntl flag calls on an fd owned by the caller.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fl = libc::fcntl(fd, libc::F_GETFL);
        let fl = if nonblocking {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        if libc::fcntl(fd, libc::F_SETFL, fl) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The pid of the process that created the listening socket at the other end.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer_pid(stream: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .and_then(|c| u32::try_from(c.pid()).ok())
        .filter(|p| *p != 0)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn peer_pid(_stream: &UnixStream) -> Option<u32> {
    None
}

impl GuardSpec {
    /// A guard that locks `lock` (typically `{state}/<name>.lock`).
    pub fn new(lock: impl Into<PathBuf>) -> GuardSpec {
        GuardSpec {
            lock: lock.into(),
            sockets: Vec::new(),
            ping: None,
            probe_timeout: Duration::from_secs(2),
            takeover_wait: DEFAULT_WATCH_INTERVAL * 6,
        }
    }

    /// Bind a unix stream socket named `name` at `path`, with permission
    /// `mode` (default: what the umask gives) and `backlog` (default 128).
    #[must_use]
    pub fn unix_socket(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        mode: Option<u32>,
        backlog: Option<u32>,
    ) -> GuardSpec {
        self.sockets.push(UnixSpec {
            name: name.into(),
            path: path.into(),
            mode,
            backlog,
        });
        self
    }

    /// Ask a listener that accepted a probe connection whether it is healthy.
    #[must_use]
    pub fn ping(mut self, ping: Ping) -> GuardSpec {
        self.ping = Some(ping);
        self
    }

    /// Read/write timeout for the ping.
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> GuardSpec {
        self.probe_timeout = timeout;
        self
    }

    /// How long to wait, holding the lock, for a listener that does not hold
    /// the lock (an instance whose lock file was removed) to stop.
    #[must_use]
    pub fn takeover_wait(mut self, wait: Duration) -> GuardSpec {
        self.takeover_wait = wait;
        self
    }

    /// Take the lock, then bind every socket. See the module docs.
    pub fn acquire(self) -> Result<Acquired, GuardError> {
        let (lock, lock_id) = match self.lock_file()? {
            Ok(held) => held,
            Err(running) => return Ok(Acquired::AlreadyRunning(running)),
        };
        let mut guard = Guard {
            lock: Some(lock),
            lock_path: self.lock.clone(),
            lock_id,
            bound: Vec::new(),
            cleanup_on_drop: true,
        };
        for spec in &self.sockets {
            match self.bind_one(spec)? {
                Ok(bound) => guard.bound.push(bound),
                // Dropping `guard` unlinks what this call bound so far.
                Err(running) => return Ok(Acquired::AlreadyRunning(running)),
            }
        }
        Ok(Acquired::Won(guard))
    }

    /// `Ok(Ok(held))`, or `Ok(Err(running))` when another process holds it.
    #[allow(clippy::type_complexity)]
    fn lock_file(&self) -> Result<Result<(OwnedFd, FileId), Running>, GuardError> {
        create_parent(&self.lock, 0o700)?;
        let open_err = |source| GuardError::OpenLock {
            path: self.lock.clone(),
            source,
        };
        for _ in 0..10 {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&self.lock)
                .map_err(open_err)?;
            let meta = file.metadata().map_err(open_err)?;
            if !meta.file_type().is_file() {
                return Err(GuardError::LockNotRegular {
                    path: self.lock.clone(),
                });
            }
            if let Err(e) = flock_nb(&file) {
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Ok(Err(Running {
                        pid: read_pid(&mut file),
                        evidence: self.lock.clone(),
                    }));
                }
                return Err(GuardError::Lock {
                    path: self.lock.clone(),
                    source: e,
                });
            }
            // The file may have been unlinked or replaced between open and
            // flock; a lock on an orphaned inode guards nothing.
            let id = FileId::of(&meta);
            if lstat_id(&self.lock).ok().flatten() != Some(id) {
                continue;
            }
            // Overwrite in place, and truncate only when the old contents were
            // longer: freeing blocks is the slow part of a truncate (with
            // `discard`, a synchronous trim), and the same-length pid of a
            // previous run is the common case.
            let pid = format!("{}\n", std::process::id());
            let len = pid.len() as u64;
            std::os::unix::fs::FileExt::write_all_at(&file, pid.as_bytes(), 0)
                .and_then(|()| file.metadata())
                .and_then(|now| {
                    if now.len() > len {
                        file.set_len(len)
                    } else {
                        Ok(())
                    }
                })
                .map_err(|source| GuardError::Lock {
                    path: self.lock.clone(),
                    source,
                })?;
            return Ok(Ok((OwnedFd::from(file), id)));
        }
        Err(GuardError::Unstable {
            path: self.lock.clone(),
        })
    }

    fn bind_one(&self, spec: &UnixSpec) -> Result<Result<Bound, Running>, GuardError> {
        // A socket others may use needs a directory they can traverse.
        let shared = spec.mode.is_some_and(|m| m & 0o077 != 0);
        create_parent(&spec.path, if shared { 0o755 } else { 0o700 })?;
        let started = Instant::now();
        for _ in 0..1000 {
            match bind_listen(spec) {
                Ok(bound) => return Ok(Ok(bound)),
                Err(GuardError::Bind { source, .. })
                    if source.raw_os_error() == Some(libc::EADDRINUSE) => {}
                Err(e) => return Err(e),
            }
            let path = &spec.path;
            let meta = match fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(source) => {
                    return Err(GuardError::Probe {
                        path: path.clone(),
                        source,
                    })
                }
            };
            if !meta.file_type().is_socket() {
                return Err(GuardError::NotASocket {
                    path: path.clone(),
                    kind: file_kind(&meta),
                });
            }
            if meta.permissions().mode().trailing_zeros() >= 9 {
                // mode 000
                return Err(GuardError::Disabled { path: path.clone() });
            }
            match probe(path)? {
                Probe::Vanished => {}
                Probe::Refused => {
                    // Stale: nobody listens on this inode. Unlink it only if
                    // the path still names the inode we probed.
                    if lstat_id(path).ok().flatten() == Some(FileId::of(&meta)) {
                        match fs::remove_file(path) {
                            Ok(()) => {}
                            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                            Err(source) => {
                                return Err(GuardError::Unlink {
                                    path: path.clone(),
                                    source,
                                })
                            }
                        }
                    }
                }
                Probe::Answering(mut stream) => {
                    let pid = peer_pid(&stream);
                    if let Some(ping) = &self.ping {
                        let timeout = Some(self.probe_timeout);
                        let answered = stream
                            .set_read_timeout(timeout)
                            .and_then(|()| stream.set_write_timeout(timeout))
                            .and_then(|()| ping(&mut stream));
                        if let Err(source) = answered {
                            return Err(GuardError::Hung {
                                path: path.clone(),
                                pid,
                                source,
                            });
                        }
                    }
                    drop(stream);
                    if started.elapsed() >= self.takeover_wait {
                        return Ok(Err(Running {
                            pid,
                            evidence: path.clone(),
                        }));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(GuardError::Unstable {
            path: spec.path.clone(),
        })
    }
}

/// An exclusive flock without waiting (`EWOULDBLOCK` when held elsewhere).
fn flock_nb(file: &fs::File) -> io::Result<()> {
    // SAFETY: flock on an fd the caller's `File` owns for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn read_pid(file: &mut fs::File) -> Option<u32> {
    // The winner writes its pid right after locking; give it a moment.
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            if let Ok(pid) = text.trim().parse::<u32>() {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn bind_listen(spec: &UnixSpec) -> Result<Bound, GuardError> {
    let os = |call: &'static str, source: io::Error| GuardError::Bind {
        name: spec.name.clone(),
        path: spec.path.clone(),
        call,
        source,
    };
    let addr = nix::sys::socket::UnixAddr::new(spec.path.as_path())
        .map_err(|e| os("socket address", e.into()))?;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if raw < 0 {
        return Err(os("socket", io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_flags(fd.as_raw_fd(), false).map_err(|e| os("fcntl", e))?;
    nix::sys::socket::bind(fd.as_raw_fd(), &addr).map_err(|e| os("bind", e.into()))?;
    // From here the path is ours: if anything fails, remove it again (only
    // while it still names the inode this call bound).
    let id = fs::symlink_metadata(&spec.path)
        .map(|m| FileId::of(&m))
        .map_err(|e| os("stat", e))?;
    let undo = |e: GuardError| {
        if lstat_id(&spec.path).ok().flatten() == Some(id) {
            let _ = fs::remove_file(&spec.path);
        }
        e
    };
    // No connection is possible before listen(), so the mode is in place
    // before anyone can connect.
    if let Some(mode) = spec.mode {
        fs::set_permissions(&spec.path, fs::Permissions::from_mode(mode))
            .map_err(|e| undo(os("chmod", e)))?;
    }
    let backlog = nix::sys::socket::Backlog::new(
        i32::try_from(spec.backlog.unwrap_or(128)).unwrap_or(i32::MAX),
    )
    .unwrap_or(nix::sys::socket::Backlog::MAXCONN);
    nix::sys::socket::listen(&fd, backlog).map_err(|e| undo(os("listen", e.into())))?;
    Ok(Bound {
        name: spec.name.clone(),
        path: spec.path.clone(),
        id,
        fd: Some(fd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};

    fn won(a: Acquired) -> Guard {
        match a {
            Acquired::Won(g) => g,
            Acquired::AlreadyRunning(r) => panic!("expected to win, got {r}"),
        }
    }

    fn spec(dir: &Path) -> GuardSpec {
        GuardSpec::new(dir.join("state/x.lock"))
            .unix_socket("control", dir.join("run/x.sock"), Some(0o600), None)
            .takeover_wait(Duration::from_millis(200))
    }

    #[test]
    fn second_acquire_loses_with_the_winners_pid() {
        let dir = tempfile::tempdir().unwrap();
        let g = won(spec(dir.path()).acquire().unwrap());
        let meta = fs::metadata(dir.path().join("state")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let sock = fs::symlink_metadata(dir.path().join("run/x.sock")).unwrap();
        assert_eq!(sock.permissions().mode() & 0o777, 0o600);
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts just like another process would.
        match spec(dir.path()).acquire().unwrap() {
            Acquired::AlreadyRunning(r) => {
                assert_eq!(r.pid, Some(std::process::id()));
                assert_eq!(
                    r.to_string(),
                    format!("already running (pid {})", std::process::id())
                );
            }
            Acquired::Won(_) => panic!("two winners"),
        }
        drop(g);
        assert!(
            !dir.path().join("run/x.sock").exists(),
            "cleanup removed our socket"
        );
        assert!(
            dir.path().join("state/x.lock").exists(),
            "the lock file stays"
        );
        drop(won(spec(dir.path()).acquire().unwrap()));
    }

    #[test]
    fn stale_socket_is_replaced_and_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("run")).unwrap();
        let path = dir.path().join("run/x.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let g = won(spec(dir.path()).acquire().unwrap());
        drop(g);

        // A live listener that does not hold the lock: never unlinked.
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let before = lstat_id(&path).unwrap();
        match spec(dir.path()).acquire().unwrap() {
            Acquired::AlreadyRunning(r) => assert_eq!(r.pid, Some(std::process::id())),
            Acquired::Won(_) => panic!("replaced a live listener"),
        }
        assert_eq!(lstat_id(&path).unwrap(), before);

        // With a ping the same listener that never answers is "hung".
        let err = spec(dir.path())
            .probe_timeout(Duration::from_millis(100))
            .ping(Box::new(|s| {
                s.write_all(b"ping\n")?;
                let mut line = String::new();
                io::BufReader::new(s).read_line(&mut line)?;
                Ok(())
            }))
            .acquire()
            .unwrap_err();
        assert!(matches!(err, GuardError::Hung { .. }), "{err}");
        assert_eq!(lstat_id(&path).unwrap(), before);
        drop(live);
    }

    #[test]
    fn non_sockets_are_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/x.sock");
        fs::create_dir_all(dir.path().join("run")).unwrap();
        fs::write(&path, "precious").unwrap();
        let err = spec(dir.path()).acquire().unwrap_err().to_string();
        assert!(err.contains("it is a regular file, not a socket"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let err = spec(dir.path()).acquire().unwrap_err().to_string();
        assert!(err.contains("it is a directory"), "{err}");
        assert!(path.is_dir());
    }

    #[test]
    fn lock_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("state")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("state/x.lock")).unwrap();
        let err = spec(dir.path()).acquire().unwrap_err().to_string();
        assert!(err.contains("it is a symlink"), "{err}");
    }

    /// A won instance whose daemon has exited: its sockets and lock closed,
    /// the paths left behind. Returns what its watcher watches.
    fn exited(dir: &Path) -> WatchSet {
        let parts = won(spec(dir).acquire().unwrap()).into_exec_parts();
        drop(parts.sockets);
        drop(parts.lock);
        parts.watch
    }

    #[test]
    fn stale_cleanup_keeps_a_path_someone_still_listens_on() {
        let dir = tempfile::tempdir().unwrap();
        let parts = won(spec(dir.path()).acquire().unwrap()).into_exec_parts();
        let (_, listener) = parts.sockets.into_iter().next().unwrap();
        let w = parts.watch;
        drop(parts.lock); // the daemon is gone; a forked-away copy still listens
        let sock = dir.path().join("run/x.sock");
        assert!(w.cleanup_stale_sockets());
        assert!(sock.exists(), "still listened on: kept");
        drop(listener);
        assert!(w.cleanup_stale_sockets());
        assert!(!sock.exists(), "nobody listens: removed");
    }

    /// The race a restart loop hits: the old daemon's watcher cleans up just
    /// as a new instance has bound the path but not yet called listen (its
    /// socket refuses connections, and the filesystem may hand it the old
    /// inode number). The new instance holds the lock, so nothing is removed.
    #[test]
    fn stale_cleanup_leaves_paths_alone_while_a_new_instance_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let old = exited(dir.path());
        // The new instance: takes the lock, replaces the stale path, binds,
        // and has not listened yet.
        let lock = fs::File::open(dir.path().join("state/x.lock")).unwrap();
        // SAFETY: flock on an fd this test owns.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let sock = dir.path().join("run/x.sock");
        fs::remove_file(&sock).unwrap();
        let fresh = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let addr = nix::sys::socket::UnixAddr::new(&sock).unwrap();
        nix::sys::socket::bind(fresh.as_raw_fd(), &addr).unwrap();
        // As if the filesystem reused the inode number: the old watch set
        // names the fresh inode.
        let reused = WatchSet {
            lock: old.lock.clone(),
            sockets: vec![(sock.clone(), lstat_id(&sock).unwrap().unwrap())],
        };
        assert!(
            !reused.cleanup_stale_sockets(),
            "the lock is held elsewhere"
        );
        assert!(sock.exists(), "a starting instance's path is not removed");
        drop(lock);
        assert!(reused.cleanup_stale_sockets());
        assert!(
            !sock.exists(),
            "with the lock free, a refusing path is stale"
        );
        drop(fresh);
    }

    #[test]
    fn stale_cleanup_needs_our_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let w = exited(dir.path());
        let lock = dir.path().join("state/x.lock");
        // Created while ours still exists, so it cannot reuse our inode.
        fs::write(dir.path().join("state/new.lock"), "").unwrap();
        fs::rename(dir.path().join("state/new.lock"), &lock).unwrap();
        assert!(!w.cleanup_stale_sockets(), "another lock file: not ours");
        assert!(dir.path().join("run/x.sock").exists());
    }

    #[test]
    fn watch_set_reports_vanished_and_replaced_paths() {
        let dir = tempfile::tempdir().unwrap();
        let g = won(spec(dir.path()).acquire().unwrap());
        let w = g.watch_set();
        w.check().unwrap();
        let lock = dir.path().join("state/x.lock");
        fs::remove_file(&lock).unwrap();
        assert_eq!(
            w.check(),
            Err(Lost {
                path: lock.clone(),
                vanished: true
            })
        );
        fs::write(&lock, "").unwrap();
        assert_eq!(
            w.check(),
            Err(Lost {
                path: lock,
                vanished: false
            })
        );

        // A socket path replaced by someone else is not removed at cleanup.
        let sock = dir.path().join("run/x.sock");
        fs::remove_file(&sock).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        drop(g);
        assert!(
            sock.exists(),
            "cleanup must not remove a path that is no longer ours"
        );
        drop(other);
    }
}
