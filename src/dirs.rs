//! Where placeholders point at run time, mirroring systemd's specifiers.
//!
//! | placeholder | user scope (systemd specifier) | system scope |
//! |---|---|---|
//! | `{home}` | `%h` = `$HOME` | `/root` |
//! | `{runtime}` | `%t` = `$XDG_RUNTIME_DIR` | `/run` |
//! | `{state}` | `%S` = `$XDG_STATE_HOME` or `~/.local/state` | `/var/lib` |
//! | `{cache}` | `%C` = `$XDG_CACHE_HOME` or `~/.cache` | `/var/cache` |
//! | `{logs}` | `%L` = `%S/log` | `/var/log` |
//! | `{config}` | `%E` = `$XDG_CONFIG_HOME` or `~/.config` | `/etc` |
//!
//! [`Dirs::user_from`] is pure (it takes the variable lookup); [`Dirs::current`]
//! is the one thin function that reads the process environment.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::manifest::{Placeholder, Scope, Template};

/// Concrete directories for every placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub home: PathBuf,
    pub runtime: PathBuf,
    pub state: PathBuf,
    pub cache: PathBuf,
    pub logs: PathBuf,
    pub config: PathBuf,
}

/// A directory a placeholder needs could not be determined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable} is not set or not absolute; it is needed to resolve {{{placeholder}}} for a user service (under sudo or ssh, log in as the user or set it)")]
pub struct DirsError {
    pub variable: &'static str,
    pub placeholder: &'static str,
}

impl Dirs {
    /// The system manager's directories.
    pub fn system() -> Dirs {
        Dirs {
            home: "/root".into(),
            runtime: "/run".into(),
            state: "/var/lib".into(),
            cache: "/var/cache".into(),
            logs: "/var/log".into(),
            config: "/etc".into(),
        }
    }

    /// A user manager's directories, from its environment as `lookup` reports
    /// it (the same rules systemd applies for `%h %t %S %C %L %E`).
    pub fn user_from(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Dirs, DirsError> {
        let abs = |name: &str| lookup(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let home = abs("HOME").ok_or(DirsError {
            variable: "HOME",
            placeholder: "home",
        })?;
        let runtime = abs("XDG_RUNTIME_DIR").ok_or(DirsError {
            variable: "XDG_RUNTIME_DIR",
            placeholder: "runtime",
        })?;
        let state = abs("XDG_STATE_HOME").unwrap_or_else(|| home.join(".local/state"));
        Ok(Dirs {
            runtime,
            cache: abs("XDG_CACHE_HOME").unwrap_or_else(|| home.join(".cache")),
            logs: state.join("log"),
            config: abs("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config")),
            state,
            home,
        })
    }

    /// The directories for `scope` as seen from this process.
    pub fn current(scope: Scope) -> Result<Dirs, DirsError> {
        match scope {
            Scope::System => Ok(Dirs::system()),
            Scope::User => Dirs::user_from(|name| std::env::var_os(name)),
        }
    }

    pub fn get(&self, placeholder: Placeholder) -> &PathBuf {
        match placeholder {
            Placeholder::Home => &self.home,
            Placeholder::Runtime => &self.runtime,
            Placeholder::State => &self.state,
            Placeholder::Cache => &self.cache,
            Placeholder::Logs => &self.logs,
            Placeholder::Config => &self.config,
        }
    }

    /// The concrete path a template names.
    pub fn resolve(&self, template: &Template) -> PathBuf {
        use std::os::unix::ffi::OsStringExt;
        let mut bytes = Vec::new();
        for segment in template.segments() {
            match segment {
                crate::manifest::Segment::Literal(text) => bytes.extend_from_slice(text.as_bytes()),
                crate::manifest::Segment::Placeholder(p) => {
                    bytes.extend_from_slice(self.get(*p).as_os_str().as_encoded_bytes());
                }
            }
        }
        PathBuf::from(OsString::from_vec(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_defaults_follow_xdg() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".into()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            "XDG_CACHE_HOME" => Some("relative/ignored".into()),
            _ => None,
        };
        let d = Dirs::user_from(env).unwrap();
        assert_eq!(d.state, PathBuf::from("/home/u/.local/state"));
        assert_eq!(d.logs, PathBuf::from("/home/u/.local/state/log"));
        assert_eq!(
            d.cache,
            PathBuf::from("/home/u/.cache"),
            "a relative XDG path is ignored, as the spec says"
        );
        assert_eq!(
            d.resolve(&Template::parse("{runtime}/echo/{state}")),
            PathBuf::from("/run/user/1000/echo//home/u/.local/state")
        );
    }

    #[test]
    fn missing_runtime_dir_is_actionable() {
        let err = Dirs::user_from(|k| (k == "HOME").then(|| "/h".into())).unwrap_err();
        assert!(
            err.to_string().starts_with("XDG_RUNTIME_DIR is not set"),
            "{err}"
        );
    }
}
