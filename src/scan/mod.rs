//! A snapshot of the process table, the file locks and the unix sockets.
//!
//! The types here are plain data; [`read`] is the one function that reads the
//! OS (`/proc` on Linux, behind a root path so tests can point it at fixture
//! trees). Reading is tiered so that a scan over tens of thousands of
//! processes stays cheap: every process gets only its `cmdline` read; the
//! processes an [`Interest`] marks as candidates, and their parents, get
//! their `stat` ([`Stat`]); and only candidates get their deep files
//! (`status`, `cgroup`, `exe`, fds and fdinfo) read.
//!
//! Vanished processes are data, not errors: a process that exits mid-scan or
//! cannot be read is recorded in [`Snapshot::unreadable`] and the scan goes on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(all(
    not(target_os = "linux"),
    any(target_os = "macos", initkit_check_macos)
))]
use macos as imp;
#[cfg(any(target_os = "macos", initkit_check_macos))]
mod macos;

#[cfg(target_os = "linux")]
pub use linux::{parse_locks, parse_net_unix, read_with_root};

/// A file's identity: device and inode. `dev` uses the userspace encoding
/// (`makedev(major, minor)`, as `stat(2)` reports `st_dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn from_major_minor(major: u32, minor: u32, ino: u64) -> FileId {
        FileId {
            dev: libc::makedev(major, minor),
            ino,
        }
    }

    /// Whether this is the file a socket's path was bound as, given the
    /// identity sock_diag reports (`vfs`), which carries only the low 32
    /// bits of the inode number.
    pub fn is_bound_as(self, vfs: FileId) -> bool {
        self.dev == vfs.dev && (self.ino & 0xffff_ffff) == (vfs.ino & 0xffff_ffff)
    }

    /// The identity of the file at `path` now, following symlinks; `None` when
    /// nothing is there.
    pub fn of_path(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// What `/proc/locks` says of one lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileLock {
    /// `FLOCK`, `POSIX`, `OFDLCK`, or another kernel spelling.
    pub kind: String,
    /// `WRITE` or `READ`.
    pub access: String,
    /// The pid the kernel reports. For `FLOCK` it is the process that took
    /// the lock, which may have exited while a child holds the descriptor; for
    /// `OFDLCK` it is `None`. Confirm holders through their fds.
    pub pid: Option<u32>,
    pub file: FileId,
}

/// A unix socket from `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnixSocket {
    /// The socket's own inode, as `socket:[N]` fd links name it.
    pub inode: u64,
    /// The path it was bound to, if any (abstract names start with `@`).
    pub path: Option<PathBuf>,
    pub listening: bool,
    /// The file system inode its path was created as, when known (from the
    /// kernel's sock_diag interface; not available from fixture trees).
    /// Compared with the path's current identity it tells whether the
    /// socket still owns its path.
    pub vfs: Option<FileId>,
}

/// One open file descriptor of a candidate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fd {
    pub fd: u32,
    pub target: FdTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FdTarget {
    /// `socket:[inode]`.
    Socket { inode: u64 },
    /// A file system path. `deleted` when the kernel marks it `(deleted)`
    /// (the suffix is stripped from `path`).
    File {
        path: PathBuf,
        deleted: bool,
        /// The open file's identity, when it could be read.
        id: Option<FileId>,
        /// The locks held through this descriptor (fdinfo `lock:` lines).
        locks: Vec<FileLock>,
    },
    /// Pipes, anon inodes and the like.
    Other { link: PathBuf },
}

/// The files read only for candidates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detail {
    /// Real uid; `None` when `status` could not be read.
    pub uid: Option<u32>,
    pub exe: Option<PathBuf>,
    /// cgroup v2 path (the `0::` line).
    pub cgroup_v2: Option<String>,
    /// cgroup v1 `name=systemd` hierarchy path (hybrid systems).
    pub cgroup_systemd: Option<String>,
    pub fds: Vec<Fd>,
    /// Deep files that could not be read (e.g. fds of another user's process
    /// without privileges): what and why.
    pub partial: Vec<String>,
}

/// What the kernel's `stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stat {
    pub ppid: u32,
    /// The kernel's state letter: `R`, `S`, `D`, `T` (stopped), `t`, `Z`...
    pub state: char,
    /// Start time in clock ticks since boot: with the pid it names one
    /// process for good (a recycled pid has a later start time).
    pub start_ticks: u64,
    /// `comm`, as `stat` reports it.
    pub comm: String,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    pub pid: u32,
    /// The argument vector, byte for byte (empty for kernel threads).
    #[serde(serialize_with = "ser_argv")]
    pub argv: Vec<OsString>,
    /// Read for candidates and their parents (on Linux `stat` is the costly
    /// file of a scan, so the other processes get only their `cmdline`
    /// read); `None` for everyone else.
    pub stat: Option<Stat>,
    /// Deep files, read only for candidates.
    pub detail: Option<Detail>,
}

fn ser_argv<S: serde::Serializer>(argv: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(argv.iter().map(|a| a.to_string_lossy()))
}

/// Why a process is missing from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unreadable {
    /// It exited between the directory listing and the read.
    Vanished,
    PermissionDenied,
    Other(String),
}

/// A process table at one moment.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Snapshot {
    /// Sorted by pid.
    pub processes: Vec<Process>,
    /// Pids that could not be read, and why.
    pub unreadable: Vec<(u32, Unreadable)>,
    pub locks: Vec<FileLock>,
    pub unix_sockets: Vec<UnixSocket>,
    /// Seconds since boot when the snapshot was taken.
    pub uptime_secs: f64,
    /// Clock ticks per second (`_SC_CLK_TCK`), for start times.
    pub ticks_per_sec: u64,
}

impl Snapshot {
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.processes[i])
    }

    /// How long a process started at `start_ticks` (its [`Stat`]) has run,
    /// in whole seconds.
    pub fn age_secs(&self, start_ticks: u64) -> u64 {
        let ticks = self.ticks_per_sec.max(1);
        #[allow(clippy::cast_precision_loss)]
        let started = start_ticks as f64 / ticks as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let age = (self.uptime_secs - started).max(0.0) as u64;
        age
    }

    pub fn unix_socket(&self, inode: u64) -> Option<&UnixSocket> {
        self.unix_sockets.iter().find(|s| s.inode == inode)
    }
}

/// Which processes get their deep files read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    /// A process whose argv starts with one of these is a candidate.
    pub argv_prefixes: Vec<Vec<OsString>>,
    /// A process holding a lock on one of these files, or with one of these
    /// paths open (even deleted), is a candidate.
    pub lock_paths: Vec<PathBuf>,
    /// A process holding a listening unix socket bound to one of these paths
    /// is a candidate.
    pub socket_paths: Vec<PathBuf>,
    /// These pids are always read in depth (e.g. the tracked instance).
    pub pids: Vec<u32>,
}

impl Interest {
    pub fn matches_argv(&self, argv: &[OsString]) -> bool {
        self.argv_prefixes
            .iter()
            .any(|prefix| argv_has_prefix(argv, prefix))
    }
}

/// True when `argv` starts with every element of a non-empty `prefix`.
pub fn argv_has_prefix(argv: &[OsString], prefix: &[OsString]) -> bool {
    !prefix.is_empty() && argv.len() >= prefix.len() && argv[..prefix.len()] == *prefix
}

/// The cgroup v2 (`0::`) path and the v1 `name=systemd` path.
pub fn parse_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers == "name=systemd" {
            v1 = Some(path.to_owned());
        }
    }
    (v2, v1)
}

/// Snapshot this machine's process table.
pub fn read(interest: &Interest) -> std::io::Result<Snapshot> {
    imp::read(interest)
}

/// Whether a process listens on the unix socket file at `path` now: the
/// file is a socket and a listening socket was bound as that very file
/// (not a stale file left behind, not a path since reused). Never connects,
/// so it starts no socket-activated service. `Ok(None)` where this OS
/// cannot tell (macOS).
pub fn listened_on(path: &Path) -> std::io::Result<Option<bool>> {
    imp::listened_on(path)
}
