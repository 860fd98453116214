//! Unix socket paths that are already taken.
//!
//! A socket unit (or a launchd `Sockets` entry) binds its path by unlinking
//! whatever is there first. Installing a service whose socket path another
//! installed service declares, or on which a live process listens, would
//! therefore strand that listener: it runs on, unreachable, while the new
//! unit owns the path. `install` refuses both before it writes anything.
//!
//! Pure: the caller reads the registry and asks the OS which paths are
//! listened on.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dirs::Dirs;
use crate::manifest::{Listen, Manifest, Scope};

/// A unix socket path a manifest listens on, with the field that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    /// `socket[N].listen`
    pub field: String,
    pub path: PathBuf,
}

/// The unix socket paths of `m`, resolved with `dirs` (its scope's).
pub fn socket_paths(m: &Manifest, dirs: &Dirs) -> Vec<SocketPath> {
    m.sockets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.listen {
            Listen::Unix(t) => Some(SocketPath {
                field: format!("socket[{i}].listen"),
                path: dirs.resolve(t),
            }),
            _ => None,
        })
        .collect()
}

/// Another installed service and the unix socket paths it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub name: String,
    pub scope: Scope,
    pub paths: Vec<PathBuf>,
}

/// Who holds a path already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Declared by another installed service.
    Service { name: String, scope: Scope },
    /// A process listens on the socket file there now.
    Listener,
}

/// A socket path of the manifest being installed that is already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: String,
    pub path: PathBuf,
    pub holder: Holder,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, path) = (&self.field, self.path.display());
        match &self.holder {
            Holder::Service { name, scope } => write!(
                f,
                "{field}: unix:{path} is the socket of the installed service {name} ({} scope); two services cannot share one socket path",
                scope.as_str()
            ),
            Holder::Listener => write!(
                f,
                "{field}: a process is listening on unix:{path} (see `ss -xlp src {path}`); installing would unlink it and strand that process: stop it first, or choose another path"
            ),
        }
    }
}

/// The paths in `wanted` that are taken: declared by one of `others`, or
/// listened on (`listening`) while not among `own`, the paths the previous
/// install of this same service declares (its socket units hold those).
pub fn conflicts(
    wanted: &[SocketPath],
    own: &[PathBuf],
    others: &[Claimant],
    mut listening: impl FnMut(&Path) -> bool,
) -> Vec<Conflict> {
    wanted
        .iter()
        .filter_map(|w| {
            let holder = if let Some(other) = others.iter().find(|o| o.paths.contains(&w.path)) {
                Holder::Service {
                    name: other.name.clone(),
                    scope: other.scope,
                }
            } else if !own.contains(&w.path) && listening(&w.path) {
                Holder::Listener
            } else {
                return None;
            };
            Some(Conflict {
                field: w.field.clone(),
                path: w.path.clone(),
                holder,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_toml(
            "name = \"web\"\ncommand = [\"/bin/web\"]\n\
             [[socket]]\nname = \"http\"\nlisten = \"tcp:8080\"\n\
             [[socket]]\nname = \"admin\"\nlisten = \"unix:{runtime}/web/admin.sock\"\n",
        )
        .unwrap()
    }

    fn wanted(path: &str) -> Vec<SocketPath> {
        vec![SocketPath {
            field: "socket[1].listen".into(),
            path: path.into(),
        }]
    }

    #[test]
    fn socket_paths_are_the_unix_ones_resolved_with_their_field() {
        let dirs = Dirs::system();
        assert_eq!(
            socket_paths(&manifest(), &dirs),
            wanted("/run/web/admin.sock")
        );
    }

    #[test]
    fn another_services_path_is_taken_even_when_nothing_listens() {
        let others = [Claimant {
            name: "api".into(),
            scope: Scope::User,
            paths: vec!["/run/web/admin.sock".into()],
        }];
        let found = conflicts(&wanted("/run/web/admin.sock"), &[], &others, |_| false);
        assert_eq!(
            found[0].holder,
            Holder::Service {
                name: "api".into(),
                scope: Scope::User
            }
        );
        let text = found[0].to_string();
        assert!(text.starts_with("socket[1].listen: "), "{text}");
        assert!(
            text.contains("installed service api (user scope)"),
            "{text}"
        );
    }

    #[test]
    fn a_live_listener_is_taken_unless_it_is_this_services_own_socket() {
        let path = "/run/web/admin.sock";
        let live = |p: &Path| p == Path::new(path);
        let found = conflicts(&wanted(path), &[], &[], live);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].holder, Holder::Listener);
        assert!(found[0]
            .to_string()
            .contains("ss -xlp src /run/web/admin.sock"));
        // a reinstall: the previous install's socket unit listens there
        assert_eq!(conflicts(&wanted(path), &[path.into()], &[], live), []);
        // nothing there, or a stale file nobody listens on: free
        assert_eq!(conflicts(&wanted(path), &[], &[], |_| false), []);
    }
}
