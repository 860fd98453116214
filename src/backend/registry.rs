//! What initkit installed, so `uninstall` removes exactly those files and
//! `status`, `orphans` and `exec` can find every initkit-installed service and
//! its manifest without being told where it is.
//!
//! One JSON record per service at `{state}/initkit/installed/<name>.json`
//! (`{state}` is `$XDG_STATE_HOME` or `~/.local/state` for user scope,
//! `/var/lib` for system scope):
//!
//! ```json
//! {
//!   "version": 1,
//!   "name": "echo",
//!   "scope": "user",
//!   "manifest_path": "/home/me/echo.toml",
//!   "manifest": "name = \"echo\"\n...",
//!   "files": ["/home/me/.config/systemd/user/echo.service", "..."]
//! }
//! ```
//!
//! `manifest` is a copy of the manifest text as installed, so the record
//! stays meaningful when the original file moves or changes. Records are
//! written atomically; [`list_in`] and [`get_in`] are pure functions of a
//! directory, [`dir`] is the one function that reads the environment.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dirs::{Dirs, DirsError};
use crate::manifest::{Manifest, ManifestError, Scope};

const VERSION: u32 = 1;

/// A registry problem; each names the record file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Dirs(#[from] DirsError),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: not an initkit install record: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: the recorded manifest no longer validates: {error}", path.display())]
    Manifest { path: PathBuf, error: ManifestError },
}

/// One installed service.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub name: String,
    pub scope: Scope,
    /// The validated manifest, with `scope` applied.
    pub manifest: Manifest,
    /// The manifest text as installed.
    pub manifest_source: String,
    /// Where the manifest was installed from (absolute).
    pub manifest_path: PathBuf,
    /// Every file install wrote (absolute).
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: u32,
    name: String,
    scope: Scope,
    manifest_path: PathBuf,
    manifest: String,
    files: Vec<PathBuf>,
}

/// `{state}/initkit/installed`; pure.
pub fn dir_in(state: &Path) -> PathBuf {
    state.join("initkit/installed")
}

/// The registry directory of `scope` for this process: needs `HOME` (or
/// `XDG_STATE_HOME`) for user scope, nothing else.
pub fn dir(scope: Scope) -> Result<PathBuf, RegistryError> {
    let state = match scope {
        Scope::System => Dirs::system().state,
        Scope::User => {
            let abs = |k: &str| {
                std::env::var_os(k)
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
            };
            match abs("XDG_STATE_HOME") {
                Some(state) => state,
                None => abs("HOME")
                    .ok_or(DirsError {
                        variable: "HOME",
                        placeholder: "state",
                    })?
                    .join(".local/state"),
            }
        }
    };
    Ok(dir_in(&state))
}

fn record_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn read(path: &Path) -> Result<Installed, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_owned(),
        error: source,
    })?;
    let record: Record = serde_json::from_str(&text).map_err(|e| RegistryError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if record.version != VERSION {
        return Err(RegistryError::Corrupt {
            path: path.to_owned(),
            message: format!("record version {} is not {VERSION}", record.version),
        });
    }
    let mut manifest =
        Manifest::from_toml(&record.manifest).map_err(|error| RegistryError::Manifest {
            path: path.to_owned(),
            error,
        })?;
    manifest.scope = record.scope;
    Ok(Installed {
        name: record.name,
        scope: record.scope,
        manifest,
        manifest_source: record.manifest,
        manifest_path: record.manifest_path,
        files: record.files,
    })
}

/// Every record in `dir`, sorted by name. A missing directory is an empty
/// registry.
pub fn list_in(dir: &Path) -> Result<Vec<Installed>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegistryError::Io {
                path: dir.to_owned(),
                error: source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RegistryError::Io {
            path: dir.to_owned(),
            error: source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // skip temp files of an atomic write in progress
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        out.push(read(&path)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The record of `name` in `dir`, if any.
pub fn get_in(dir: &Path, name: &str) -> Result<Option<Installed>, RegistryError> {
    let path = record_path(dir, name);
    if !path.exists() {
        return Ok(None);
    }
    read(&path).map(Some)
}

/// Write (or replace) the record of `installed` in `dir`, atomically.
pub fn save_in(dir: &Path, installed: &Installed) -> Result<(), RegistryError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |error| RegistryError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let record = Record {
        version: VERSION,
        name: installed.name.clone(),
        scope: installed.scope,
        manifest_path: installed.manifest_path.clone(),
        manifest: installed.manifest_source.clone(),
        files: installed.files.clone(),
    };
    let mut text = serde_json::to_string_pretty(&record).expect("a record serializes");
    text.push('\n');
    let path = record_path(dir, &installed.name);
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644).map_err(io_err(&path))
}

/// Remove the record of `name` from `dir`; a missing record is fine.
pub fn remove_in(dir: &Path, name: &str) -> Result<(), RegistryError> {
    let path = record_path(dir, name);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(RegistryError::Io { path, error })
        }
        _ => Ok(()),
    }
}

/// Every service installed in `scope`.
pub fn list(scope: Scope) -> Result<Vec<Installed>, RegistryError> {
    list_in(&dir(scope)?)
}

/// The service `name` installed in `scope`, if any.
pub fn get(scope: Scope, name: &str) -> Result<Option<Installed>, RegistryError> {
    get_in(&dir(scope)?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "name = \"echo\"\ncommand = [\"/bin/echo\"]\n";

    fn installed(name: &str) -> Installed {
        let source = SOURCE.replace("echo\"\n", &format!("{name}\"\n"));
        Installed {
            name: name.into(),
            scope: Scope::System,
            manifest: {
                let mut m = Manifest::from_toml(&source).unwrap();
                m.scope = Scope::System;
                m
            },
            manifest_source: source,
            manifest_path: "/src/echo.toml".into(),
            files: vec!["/etc/systemd/system/x.service".into()],
        }
    }

    #[test]
    fn round_trip_list_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_in(tmp.path());
        assert!(list_in(&dir).unwrap().is_empty(), "no directory: empty");
        save_in(&dir, &installed("b")).unwrap();
        save_in(&dir, &installed("a")).unwrap();
        let all = list_in(&dir).unwrap();
        assert_eq!(
            all.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            all[0],
            installed("a"),
            "scope override survives the round trip"
        );
        assert_eq!(get_in(&dir, "b").unwrap(), Some(installed("b")));
        remove_in(&dir, "b").unwrap();
        remove_in(&dir, "b").unwrap();
        assert_eq!(get_in(&dir, "b").unwrap(), None);
    }

    #[test]
    fn corrupt_record_names_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.json"), "{").unwrap();
        let err = list_in(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("x.json: not an initkit install record"),
            "{err}"
        );
    }
}
