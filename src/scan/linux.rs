//! Linux: read `/proc` (any root, so tests can use fixture trees), plus the
//! kernel's unix sock_diag for which socket owns a path.
//!
//! Every process gets its `cmdline` read; candidates and their parents get
//! `stat`; candidates also get `status`, `exe`, `cgroup`, `fd/*` and, for open
//! files, `fdinfo/*`. (`stat` is the costly one: the kernel computes every
//! field, CPU times of all threads included, on each read.)

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use procfs::FromRead;

use super::{
    parse_cgroup, Detail, Fd, FdTarget, FileId, FileLock, Interest, Process, Snapshot, Stat,
    UnixSocket, Unreadable,
};

/// Snapshot the live `/proc`, with socket path ownership from sock_diag.
pub fn read(interest: &Interest) -> io::Result<Snapshot> {
    let mut snapshot = read_with_root(Path::new("/proc"), interest)?;
    // Best effort: without sock_diag (module missing) `vfs` stays unknown and
    // the classifier does not guess.
    if let Ok(vfs) = unix_vfs() {
        for socket in &mut snapshot.unix_sockets {
            socket.vfs = vfs.get(&socket.inode).copied();
        }
    }
    Ok(snapshot)
}

/// See [`super::listened_on`]: lstat the path, then look for its identity
/// among the listening sockets sock_diag reports.
pub fn listened_on(path: &Path) -> io::Result<Option<bool>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Ok(Some(false));
    }
    let file = FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok(Some(
        unix_vfs()?.values().any(|&bound| file.is_bound_as(bound)),
    ))
}

/// Snapshot the `/proc` tree at `root`. Fails only when `root` itself cannot
/// be listed; every per-process problem is recorded in the snapshot.
pub fn read_with_root(root: &Path, interest: &Interest) -> io::Result<Snapshot> {
    let mut pids: Vec<u32> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();

    let mut snapshot = Snapshot {
        ticks_per_sec: ticks_per_sec(),
        ..Snapshot::default()
    };
    let mut path = PathBuf::from(root);
    let mut buf = Vec::with_capacity(4096);
    for pid in pids {
        path.push(pid.to_string());
        path.push("cmdline");
        let read = read_into(&path, &mut buf);
        path.pop();
        path.pop();
        match read {
            Ok(()) => snapshot.processes.push(Process {
                pid,
                argv: split_argv(&buf),
                stat: None,
                detail: None,
            }),
            Err(e) => snapshot.unreadable.push((pid, unreadable(&e))),
        }
    }
    snapshot.locks = std::fs::read_to_string(root.join("locks"))
        .map(|t| parse_locks(&t))
        .unwrap_or_default();
    snapshot.unix_sockets = std::fs::read_to_string(root.join("net/unix"))
        .map(|t| parse_net_unix(&t))
        .unwrap_or_default();
    snapshot.uptime_secs = std::fs::read_to_string(root.join("uptime"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);

    let candidates = candidates(root, &snapshot, interest);
    // `stat` for the candidates; one that cannot be read has exited (or is
    // unreadable): it leaves the snapshot.
    let mut gone = Vec::new();
    let mut parents = HashSet::new();
    for process in &mut snapshot.processes {
        if !candidates.contains(&process.pid) {
            continue;
        }
        match read_stat(root, process.pid, &mut buf) {
            Ok(stat) => {
                parents.insert(stat.ppid);
                process.stat = Some(stat);
                process.detail = Some(read_detail(root, process.pid));
            }
            Err(e) => gone.push((process.pid, unreadable(&e))),
        }
    }
    // ...and for their parents (is the parent init or a service manager?).
    for process in &mut snapshot.processes {
        if process.stat.is_none() && parents.contains(&process.pid) {
            process.stat = read_stat(root, process.pid, &mut buf).ok();
        }
    }
    if !gone.is_empty() {
        snapshot
            .processes
            .retain(|p| !gone.iter().any(|(pid, _)| *pid == p.pid));
        snapshot.unreadable.extend(gone);
        snapshot.unreadable.sort_by_key(|(pid, _)| *pid);
    }
    Ok(snapshot)
}

/// Read a whole (small, `/proc`) file into `buf`: open, read until EOF,
/// close. `std::fs::read` would also `statx` and `lseek` each file, which
/// over a whole process table costs as much as the reads.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    buf.clear();
    let mut file = std::fs::File::open(path)?;
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

fn unreadable(err: &io::Error) -> Unreadable {
    match err.kind() {
        io::ErrorKind::NotFound => Unreadable::Vanished,
        io::ErrorKind::PermissionDenied => Unreadable::PermissionDenied,
        _ if err.raw_os_error() == Some(libc::ESRCH) => Unreadable::Vanished,
        _ => Unreadable::Other(err.to_string()),
    }
}

/// `/proc/PID/stat`: parent, state, start time and `comm`.
fn read_stat(root: &Path, pid: u32, buf: &mut Vec<u8>) -> io::Result<Stat> {
    read_into(&root.join(pid.to_string()).join("stat"), buf)?;
    let stat = procfs::process::Stat::from_read(&buf[..])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(Stat {
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        state: stat.state,
        start_ticks: stat.starttime,
        comm: stat.comm,
    })
}

/// NUL-separated arguments, byte for byte. A trailing NUL ends the last one;
/// empty arguments in the middle are kept.
fn split_argv(bytes: &[u8]) -> Vec<OsString> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// Which pids get the deep read: argv matches, interest pids, the pids
/// `/proc/locks` names for the lock files, and the holders of listening
/// sockets bound to the socket paths.
fn candidates(root: &Path, snapshot: &Snapshot, interest: &Interest) -> HashSet<u32> {
    let mut out: HashSet<u32> = snapshot
        .processes
        .iter()
        .filter(|p| interest.matches_argv(&p.argv))
        .map(|p| p.pid)
        .collect();
    out.extend(interest.pids.iter().copied());

    let lock_ids: Vec<FileId> = interest
        .lock_paths
        .iter()
        .filter_map(|p| FileId::of_path(p))
        .collect();
    out.extend(
        snapshot
            .locks
            .iter()
            .filter(|l| lock_ids.contains(&l.file))
            .filter_map(|l| l.pid),
    );

    let mut wanted: HashSet<u64> = snapshot
        .unix_sockets
        .iter()
        .filter(|s| {
            s.listening
                && s.path
                    .as_ref()
                    .is_some_and(|p| interest.socket_paths.contains(p))
        })
        .map(|s| s.inode)
        .collect();
    if wanted.is_empty() {
        return out;
    }
    // Find the holders: the candidates first, then service managers (which
    // hold activation sockets), then everyone, stopping once all are found.
    let order = snapshot
        .processes
        .iter()
        .filter(|p| out.contains(&p.pid))
        .chain(snapshot.processes.iter().filter(|p| looks_like_systemd(p)))
        .chain(snapshot.processes.iter());
    let mut seen = HashSet::new();
    let mut holders = Vec::new();
    for process in order {
        if wanted.is_empty() {
            break;
        }
        if !seen.insert(process.pid) {
            continue;
        }
        let mut found = false;
        for inode in socket_inodes(root, process.pid) {
            if wanted.contains(&inode) {
                found = true;
                // Other processes may share the socket (systemd and the
                // service it passed it to); keep looking for this process's
                // other sockets but mark this one found.
                wanted.remove(&inode);
            }
        }
        if found {
            holders.push(process.pid);
        }
    }
    out.extend(holders);
    out
}

/// A service manager by its program name: `systemd` (`systemd --user`,
/// `/lib/systemd/systemd`), or pid 1 started as `init` (a symlink to systemd
/// on most distributions). Only an ordering hint for the socket holder
/// search: a pid 1 that is something else (a container's init) may hold
/// hundreds of fds and is searched with everyone else.
fn looks_like_systemd(p: &Process) -> bool {
    let name = p.argv.first().and_then(|a| Path::new(a).file_name());
    name.is_some_and(|n| n == "systemd" || (p.pid == 1 && n == "init"))
}

fn socket_inodes(root: &Path, pid: u32) -> Vec<u64> {
    let dir = root.join(pid.to_string()).join("fd");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            parse_socket_link(link.as_os_str().as_bytes())
        })
        .collect()
}

fn parse_socket_link(link: &[u8]) -> Option<u64> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// The deep tier, for candidates. Missing pieces are noted in `partial`.
fn read_detail(root: &Path, pid: u32) -> Detail {
    let dir = root.join(pid.to_string());
    let mut partial = Vec::new();
    let uid = match std::fs::read(dir.join("status"))
        .map_err(|e| e.to_string())
        .and_then(|b| procfs::process::Status::from_read(&b[..]).map_err(|e| e.to_string()))
    {
        Ok(status) => Some(status.ruid),
        Err(e) => {
            partial.push(format!("status: {e}"));
            None
        }
    };
    let exe = std::fs::read_link(dir.join("exe")).ok();
    let (cgroup_v2, cgroup_systemd) = match std::fs::read_to_string(dir.join("cgroup")) {
        Ok(text) => parse_cgroup(&text),
        Err(e) => {
            partial.push(format!("cgroup: {e}"));
            (None, None)
        }
    };
    let fds = match read_fds(&dir, root == Path::new("/proc")) {
        Ok(fds) => fds,
        Err(e) => {
            partial.push(format!("fd: {e}"));
            Vec::new()
        }
    };
    Detail {
        uid,
        exe,
        cgroup_v2,
        cgroup_systemd,
        fds,
        partial,
    }
}

/// On the live `/proc` (`live`), `stat` through an fd link reaches the open
/// file even when deleted. In a fixture tree the links are ordinary symlinks
/// that must not be followed into the host's file system.
fn read_fds(dir: &Path, live: bool) -> io::Result<Vec<Fd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(dir.join("fd"))? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let bytes = link.as_os_str().as_bytes();
        let target = if let Some(inode) = parse_socket_link(bytes) {
            FdTarget::Socket { inode }
        } else if bytes.starts_with(b"/") {
            let (path, deleted) = match bytes.strip_suffix(b" (deleted)") {
                Some(p) => (PathBuf::from(std::ffi::OsStr::from_bytes(p)), true),
                None => (link.clone(), false),
            };
            let fdinfo = std::fs::read_to_string(dir.join("fdinfo").join(fd.to_string()))
                .unwrap_or_default();
            FdTarget::File {
                path,
                deleted,
                id: if live {
                    FileId::of_path(&entry.path())
                } else {
                    None
                },
                locks: fdinfo
                    .lines()
                    .filter_map(|l| l.strip_prefix("lock:"))
                    .filter_map(parse_lock_line)
                    .collect(),
            }
        } else {
            FdTarget::Other { link }
        };
        fds.push(Fd { fd, target });
    }
    fds.sort_by_key(|f| f.fd);
    Ok(fds)
}

/// Parse `/proc/locks`. Waiters (`->` lines) are not holders and are
/// skipped; lines that do not parse are skipped.
pub fn parse_locks(text: &str) -> Vec<FileLock> {
    text.lines().filter_map(parse_lock_line).collect()
}

fn parse_lock_line(line: &str) -> Option<FileLock> {
    let mut words = line.split_whitespace();
    words.next()?; // "N:"
    let kind = words.next()?;
    if kind == "->" {
        return None;
    }
    let _mode = words.next()?; // ADVISORY / MANDATORY
    let access = words.next()?;
    let pid = words.next()?;
    let file = words.next()?;
    let mut parts = file.split(':');
    let major = u32::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
    let ino = parts.next()?.parse().ok()?;
    Some(FileLock {
        kind: kind.to_owned(),
        access: access.to_owned(),
        pid: pid.parse().ok().filter(|p| *p > 0),
        file: FileId::from_major_minor(major, minor, ino),
    })
}

/// Parse `/proc/net/unix`. A listening socket has `__SO_ACCEPTCON`
/// (0x10000) in its flags.
pub fn parse_net_unix(text: &str) -> Vec<UnixSocket> {
    const ACCEPTCON: u32 = 0x0001_0000;
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.next()?; // slot
            words.next()?; // refcount
            words.next()?; // protocol
            let flags = u32::from_str_radix(words.next()?, 16).ok()?;
            words.next()?; // type
            words.next()?; // state
            let inode = words.next()?.parse().ok()?;
            // The path is the rest of the line: it may contain spaces.
            let path = rest_after_fields(line, 7).map(PathBuf::from);
            Some(UnixSocket {
                inode,
                path,
                listening: flags & ACCEPTCON != 0,
                vfs: None,
            })
        })
        .collect()
}

/// The text after `n` whitespace-separated fields, or `None` when the line
/// has only `n` fields.
fn rest_after_fields(line: &str, n: usize) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace)?;
        rest = rest[end..].trim_start();
    }
    (!rest.is_empty()).then_some(rest)
}

/// The file identity each listening unix socket's path was created with,
/// keyed by socket inode (sock_diag with `UDIAG_SHOW_VFS`). The kernel
/// reports only the low 32 bits of the inode number.
pub fn unix_vfs() -> io::Result<HashMap<u64, FileId>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_VFS: u32 = 0x2;
    const UNIX_DIAG_VFS: u16 = 1;
    const TCP_LISTEN: u32 = 10;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;

    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a freshly created descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };

    // nlmsghdr (16 bytes) + unix_diag_req (24 bytes), native endian.
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    req.push(libc::AF_UNIX as u8);
    req.push(0); // protocol
    req.extend_from_slice(&0u16.to_ne_bytes()); // pad
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // ino
    req.extend_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // cookie: none
                                       // SAFETY: req is a valid buffer of req.len() bytes for the whole call.
    let sent = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Ok(out);
        }
        let mut at = 0;
        while at + 16 <= n {
            let len = u32_at(&buf, at) as usize;
            let kind = u16_at(&buf, at + 4);
            if len < 16 || at + len > n {
                break;
            }
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap());
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ => {}
            }
            // unix_diag_msg: family, type, state, pad, ino u32, cookie [u32; 2]
            let msg = &buf[at + 16..at + len];
            if msg.len() >= 16 {
                let inode = u64::from(u32_at(msg, 4));
                let mut attr = 16;
                while attr + 4 <= msg.len() {
                    let alen = usize::from(u16_at(msg, attr));
                    let atype = u16_at(msg, attr + 2);
                    if alen < 4 || attr + alen > msg.len() {
                        break;
                    }
                    if atype == UNIX_DIAG_VFS && alen >= 12 {
                        let ino = u64::from(u32_at(msg, attr + 4));
                        let kdev = u32_at(msg, attr + 8);
                        out.insert(
                            inode,
                            FileId::from_major_minor(kdev >> 20, kdev & 0xf_ffff, ino),
                        );
                    }
                    attr += (alen + 3) & !3;
                }
            }
            at += (len + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_keeps_empty_and_non_utf8_arguments() {
        assert_eq!(
            split_argv(b"/bin/x\0\0a\xffb\0"),
            vec![
                OsString::from("/bin/x"),
                OsString::new(),
                OsString::from_vec(b"a\xffb".to_vec())
            ]
        );
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn locks_skip_waiters_and_decode_devices() {
        let locks = parse_locks(
            "1: FLOCK  ADVISORY  WRITE 652 00:2a:16763 0 EOF\n\
             1: -> FLOCK  ADVISORY  WRITE 700 00:2a:16763 0 EOF\n\
             2: OFDLCK ADVISORY  READ  -1 fd:01:1028 0 EOF\n",
        );
        assert_eq!(locks.len(), 2);
        assert_eq!(locks[0].pid, Some(652));
        assert_eq!(locks[0].file, FileId::from_major_minor(0, 0x2a, 16763));
        assert_eq!(locks[1].pid, None);
        assert_eq!(locks[1].kind, "OFDLCK");
        assert_eq!(locks[1].file, FileId::from_major_minor(0xfd, 1, 1028));
    }

    #[test]
    fn net_unix_listening_flag_and_paths_with_spaces() {
        let sockets = parse_net_unix(
            "Num       RefCount Protocol Flags    Type St Inode Path\n\
             0000000000000000: 00000002 00000000 00010000 0001 01 4755 /run/a b.sock\n\
             0000000000000000: 00000003 00000000 00000000 0001 03 4756\n",
        );
        assert_eq!(sockets.len(), 2);
        assert!(sockets[0].listening);
        assert_eq!(sockets[0].path, Some(PathBuf::from("/run/a b.sock")));
        assert!(!sockets[1].listening);
        assert_eq!(sockets[1].path, None);
    }

    #[test]
    fn cgroup_hybrid_lines() {
        let (v2, v1) = parse_cgroup(
            "12:cpu,cpuacct:/x\n1:name=systemd:/user.slice/a.service\n0::/user.slice/a.service\n",
        );
        assert_eq!(v2.as_deref(), Some("/user.slice/a.service"));
        assert_eq!(v1.as_deref(), Some("/user.slice/a.service"));
    }

    #[test]
    fn vanished_and_garbled_processes_are_recorded_not_errors() {
        let root = tempfile::tempdir().unwrap();
        let dir = |pid: &str| {
            let d = root.path().join(pid);
            std::fs::create_dir(&d).unwrap();
            d
        };
        dir("10"); // listed, then gone: no cmdline
        let garbled = dir("11");
        std::fs::write(garbled.join("cmdline"), b"/bin/g\0").unwrap();
        std::fs::write(garbled.join("stat"), "garbage").unwrap();
        let ok = dir("12");
        std::fs::write(
            ok.join("stat"),
            "12 (a b) S 1 12 12 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(ok.join("cmdline"), b"/bin/a b\0x\0").unwrap();
        let quiet = dir("13"); // not a candidate: its stat is never read
        std::fs::write(quiet.join("cmdline"), b"/bin/q\0").unwrap();
        std::fs::write(quiet.join("stat"), "garbage").unwrap();
        let interest = Interest {
            pids: vec![11, 12],
            ..Interest::default()
        };
        let snap = read_with_root(root.path(), &interest).unwrap();
        assert_eq!(snap.processes.len(), 2, "{:?}", snap.processes);
        let stat = snap.processes[0].stat.as_ref().unwrap();
        assert_eq!(stat.comm, "a b");
        assert_eq!(stat.start_ticks, 500);
        assert_eq!(
            snap.processes[0].argv,
            vec![OsString::from("/bin/a b"), OsString::from("x")]
        );
        assert_eq!(snap.processes[1].pid, 13);
        assert_eq!(snap.processes[1].stat, None);
        assert_eq!(snap.processes[1].argv, vec![OsString::from("/bin/q")]);
        assert_eq!(snap.unreadable[0], (10, Unreadable::Vanished));
        assert!(matches!(snap.unreadable[1], (11, Unreadable::Other(_))));
    }

    /// The parent of a candidate gets its `stat` (is it init, a manager?);
    /// nobody else does.
    #[test]
    fn stat_is_read_for_candidates_and_their_parents_only() {
        let root = tempfile::tempdir().unwrap();
        let proc_dir = |pid: u32, ppid: u32, argv: &[u8]| {
            let d = root.path().join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("cmdline"), argv).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} (p{pid}) S {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {pid}00 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"),
            )
            .unwrap();
        };
        proc_dir(1, 0, b"/sbin/init\0");
        proc_dir(20, 1, b"/usr/lib/systemd/systemd\0--user\0");
        proc_dir(30, 20, b"/bin/daemon\0");
        proc_dir(40, 1, b"/bin/other\0");
        let interest = Interest {
            argv_prefixes: vec![vec![OsString::from("/bin/daemon")]],
            ..Interest::default()
        };
        let snap = read_with_root(root.path(), &interest).unwrap();
        let stat_of = |pid: u32| snap.process(pid).unwrap().stat.as_ref();
        assert_eq!(stat_of(30).unwrap().ppid, 20);
        assert_eq!(stat_of(20).unwrap().comm, "p20", "the candidate's parent");
        assert_eq!(stat_of(1), None);
        assert_eq!(stat_of(40), None);
        assert!(snap.process(30).unwrap().detail.is_some());
        assert!(snap.process(20).unwrap().detail.is_none());
    }

    #[test]
    fn sock_diag_sees_a_listener_bound_here() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let unix = parse_net_unix(&std::fs::read_to_string("/proc/net/unix").unwrap());
        let inode = unix
            .iter()
            .find(|s| s.path.as_deref() == Some(path.as_path()))
            .expect("listener in /proc/net/unix")
            .inode;
        let vfs = unix_vfs().unwrap();
        let now = FileId::of_path(&path).unwrap();
        let seen = vfs.get(&inode).expect("sock_diag reports the listener");
        assert_eq!(seen.dev, now.dev);
        assert_eq!(seen.ino, now.ino & 0xffff_ffff);
        assert!(now.is_bound_as(*seen));
        drop(listener);
    }

    #[test]
    fn listened_on_only_a_live_listeners_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        assert_eq!(listened_on(&path).unwrap(), Some(false), "nothing there");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(listened_on(&path).unwrap(), Some(true));
        // the path re-pointed at a new, unlistened socket file
        let moved = dir.path().join("moved.sock");
        std::fs::rename(&path, &moved).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(other); // its file stays; nobody listens on it
        assert_eq!(listened_on(&path).unwrap(), Some(false), "stale file");
        assert_eq!(
            listened_on(&moved).unwrap(),
            Some(true),
            "renamed, still its file"
        );
        drop(listener);
        assert_eq!(listened_on(&moved).unwrap(), Some(false), "listener gone");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(listened_on(&plain).unwrap(), Some(false), "not a socket");
    }
}
