//! macOS: pids, parents, uids, states and start times from libproc, argv
//! from `sysctl(KERN_PROCARGS2)`. Locks, sockets and cgroups have no
//! equivalent here; launchd's view (a pid and its descendants) is enough to
//! tell tracked from untracked.
//!
//! Compiled on Linux too under `--cfg initkit_check_macos` so it keeps
//! type-checking; nothing calls it there.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::ffi::OsString;
use std::io;
use std::os::raw::{c_int, c_uint, c_void};
use std::os::unix::ffi::OsStringExt;

use super::{Interest, Process, Snapshot, Unreadable};

const PROC_PIDTBSDINFO: c_int = 3;
const SSTOP: u32 = 4;
const CTL_KERN: c_int = 1;
const KERN_PROCARGS2: c_int = 49;

/// `struct proc_bsdinfo` from `<sys/proc_info.h>`.
#[repr(C)]
struct ProcBsdInfo {
    flags: u32,
    status: u32,
    xstatus: u32,
    pid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    ruid: u32,
    rgid: u32,
    svuid: u32,
    svgid: u32,
    rfu_1: u32,
    comm: [u8; 16],
    name: [u8; 32],
    nfiles: u32,
    pgid: u32,
    pjobc: u32,
    e_tdev: u32,
    e_tpgid: u32,
    nice: i32,
    start_tvsec: u64,
    start_tvusec: u64,
}

extern "C" {
    fn proc_listallpids(buffer: *mut c_void, buffersize: c_int) -> c_int;
    fn proc_pidinfo(pid: c_int, flavor: c_int, arg: u64, buffer: *mut c_void, size: c_int)
        -> c_int;
    fn sysctl(
        name: *mut c_int,
        namelen: c_uint,
        oldp: *mut c_void,
        oldlenp: *mut usize,
        newp: *mut c_void,
        newlen: usize,
    ) -> c_int;
}

pub fn read(_interest: &Interest) -> io::Result<Snapshot> {
    let mut pids = vec![0 as c_int; 8192];
    let bytes = c_int::try_from(pids.len() * std::mem::size_of::<c_int>()).unwrap_or(c_int::MAX);
    // SAFETY: pids is valid for writes of `bytes` bytes.
    let n = unsafe { proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    pids.truncate(n.min(pids.len()));
    pids.sort_unstable();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut snapshot = Snapshot {
        // Start times are microseconds since the epoch, "uptime" the epoch now.
        ticks_per_sec: 1_000_000,
        uptime_secs: now.as_secs_f64(),
        ..Snapshot::default()
    };
    for pid in pids.into_iter().filter(|p| *p > 0) {
        let upid = pid.unsigned_abs();
        // SAFETY: ProcBsdInfo is plain old data; all-zero is a valid value.
        let mut info: ProcBsdInfo = unsafe { std::mem::zeroed() };
        let size = c_int::try_from(std::mem::size_of::<ProcBsdInfo>()).unwrap_or(0);
        // SAFETY: info is valid for writes of `size` bytes.
        let got = unsafe {
            proc_pidinfo(
                pid,
                PROC_PIDTBSDINFO,
                0,
                std::ptr::addr_of_mut!(info).cast(),
                size,
            )
        };
        if got != size {
            let err = io::Error::last_os_error();
            let why = match err.raw_os_error() {
                Some(libc::ESRCH) => Unreadable::Vanished,
                Some(libc::EPERM) => Unreadable::PermissionDenied,
                _ => Unreadable::Other(err.to_string()),
            };
            snapshot.unreadable.push((upid, why));
            continue;
        }
        let comm_len = info.comm.iter().position(|b| *b == 0).unwrap_or(16);
        snapshot.processes.push(Process {
            pid: upid,
            stat: Some(super::Stat {
                ppid: info.ppid,
                state: if info.status == SSTOP { 'T' } else { 'S' },
                start_ticks: info.start_tvsec * 1_000_000 + info.start_tvusec,
                comm: String::from_utf8_lossy(&info.comm[..comm_len]).into_owned(),
            }),
            argv: procargs(pid).unwrap_or_default(),
            detail: Some(super::Detail {
                uid: Some(info.ruid),
                exe: None,
                cgroup_v2: None,
                cgroup_systemd: None,
                fds: Vec::new(),
                partial: Vec::new(),
            }),
        });
    }
    Ok(snapshot)
}

fn procargs(pid: c_int) -> Option<Vec<OsString>> {
    let mut mib = [CTL_KERN, KERN_PROCARGS2, pid];
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = buf.len();
    // SAFETY: mib has 3 entries; buf is valid for writes of `len` bytes.
    let rc = unsafe {
        sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0).then(|| parse_procargs2(&buf[..len.min(buf.len())]))
}

/// `KERN_PROCARGS2`: argc (native i32), the exec path, NUL padding, then argc
/// NUL-terminated arguments.
fn parse_procargs2(buf: &[u8]) -> Vec<OsString> {
    let Some(argc) = buf.get(..4) else {
        return Vec::new();
    };
    let argc = usize::try_from(i32::from_ne_bytes(argc.try_into().unwrap_or([0; 4]))).unwrap_or(0);
    let rest = &buf[4..];
    let after_path = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let start = rest[after_path..]
        .iter()
        .position(|b| *b != 0)
        .map_or(rest.len(), |i| after_path + i);
    rest[start..]
        .split(|b| *b == 0)
        .take(argc)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// Listening sockets cannot be matched to their files here (no sock_diag).
pub fn listened_on(_path: &std::path::Path) -> io::Result<Option<bool>> {
    Ok(None)
}
