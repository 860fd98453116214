//! Linger: whether a user's systemd manager (and so their user services) keeps
//! running after their last session ends.
//!
//! Detection reads logind's flag file `/var/lib/systemd/linger/<user>` (the
//! same file `loginctl enable-linger` creates), so it works even when logind
//! is not running. Enabling goes through logind (`SetUserLinger`) on the
//! system bus, which applies polkit's rules; initkit never writes the file.

use std::path::{Path, PathBuf};

use super::dbus::LoginProxy;
use super::BackendError;

/// logind's linger flag directory.
pub const LINGER_DIR: &str = "/var/lib/systemd/linger";

/// The flag file for `user` under `linger_dir`; pure.
pub fn linger_file(linger_dir: &Path, user: &str) -> PathBuf {
    linger_dir.join(user)
}

/// Whether `user` lingers, according to the flag files under `linger_dir`.
pub fn lingers_in(linger_dir: &Path, user: &str) -> bool {
    linger_file(linger_dir, user).exists()
}

/// This process's user name, if it has one.
pub fn current_user() -> Option<(u32, String)> {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten()?;
    Some((uid.as_raw(), user.name))
}

/// Whether the current user lingers; `None` when the user has no name.
pub fn current_user_lingers() -> Option<bool> {
    current_user().map(|(_, name)| lingers_in(Path::new(LINGER_DIR), &name))
}

/// Ask logind to enable linger for `uid` (non-interactive: polkit decides).
pub fn enable(uid: u32, user: &str) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::Linger {
        user: user.to_owned(),
        message,
    };
    let conn = zbus::blocking::Connection::system().map_err(|e| {
        fail(format!(
            "the system bus is not reachable ({e}); logind must be running to change linger (or run `loginctl enable-linger {user}` where it is)"
        ))
    })?;
    let login = LoginProxy::new(&conn).map_err(|e| fail(e.to_string()))?;
    login
        .set_user_linger(uid, true, false)
        .map_err(|e| match &e {
            zbus::Error::MethodError(name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                    || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
            {
                fail(format!(
                    "logind (org.freedesktop.login1) is not running: {e}"
                ))
            }
            _ => fail(format!("SetUserLinger: {e}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_file_decides() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!lingers_in(dir.path(), "alice"));
        std::fs::write(dir.path().join("alice"), "").unwrap();
        assert!(lingers_in(dir.path(), "alice"));
        assert!(!lingers_in(dir.path(), "bob"));
    }
}
