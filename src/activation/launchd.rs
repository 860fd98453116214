//! launchd socket activation: `launch_activate_socket(3)`.
//!
//! launchd does not export `LISTEN_FDS`; a job asks for each socket by the
//! name used under `Sockets` in its plist. One name can yield several fds
//! (e.g. IPv4 and IPv6). This module is compiled on macOS, and on Linux only
//! to type-check it (`--cfg initkit_check_macos`); it is never called there.

use std::ffi::CString;
use std::fmt;
use std::os::fd::RawFd;

use super::env::Passed;

mod ffi {
    use std::os::raw::{c_char, c_int};
    extern "C" {
        /// Returns 0, or an errno value: ENOENT (no such name in the plist),
        /// ESRCH (not managed by launchd), EALREADY (already activated).
        pub fn launch_activate_socket(
            name: *const c_char,
            fds: *mut *mut c_int,
            cnt: *mut usize,
        ) -> c_int;
    }
}

/// `launch_activate_socket` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdError {
    pub name: String,
    pub errno: i32,
}

impl fmt::Display for LaunchdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.errno {
            libc::ENOENT => "no socket of that name in the job's plist".to_owned(),
            libc::ESRCH => "this process is not managed by launchd".to_owned(),
            libc::EALREADY => "the socket was already activated in this process".to_owned(),
            n => std::io::Error::from_raw_os_error(n).to_string(),
        };
        write!(f, "launch_activate_socket({:?}): {why}", self.name)
    }
}

impl std::error::Error for LaunchdError {}

/// The fds launchd holds for `name`. `Ok(None)` when this process is not a
/// launchd job (ESRCH). The fds are not validated or owned yet: pass them to
/// [`super::fd::Listeners::from_passed`].
pub fn activate_socket(name: &str) -> Result<Option<Vec<Passed>>, LaunchdError> {
    let err = |errno| LaunchdError {
        name: name.to_owned(),
        errno,
    };
    let c_name = CString::new(name).map_err(|_| err(libc::EINVAL))?;
    let mut fds: *mut libc::c_int = std::ptr::null_mut();
    let mut count: usize = 0;
    // SAFETY: c_name is NUL-terminated; fds/count are valid out-pointers.
    let rc = unsafe { ffi::launch_activate_socket(c_name.as_ptr(), &mut fds, &mut count) };
    if rc == libc::ESRCH {
        return Ok(None);
    }
    if rc != 0 {
        return Err(err(rc));
    }
    let mut out = Vec::with_capacity(count);
    if !fds.is_null() {
        // SAFETY: on success launchd returns a malloc'd array of `count` ints.
        let slice = unsafe { std::slice::from_raw_parts(fds, count) };
        out.extend(slice.iter().map(|&fd: &RawFd| Passed {
            fd,
            name: name.to_owned(),
        }));
        // SAFETY: the array was allocated by launchd with malloc; we own it.
        unsafe { libc::free(fds.cast()) };
    }
    Ok(Some(out))
}

/// Activate every name in order. `Ok(None)` when not a launchd job.
pub fn activate_all(names: &[&str]) -> Result<Option<Vec<Passed>>, LaunchdError> {
    let mut all = Vec::new();
    for name in names {
        match activate_socket(name)? {
            Some(passed) => all.extend(passed),
            None => return Ok(None),
        }
    }
    Ok(Some(all))
}
