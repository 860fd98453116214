//! Every D-Bus interface initkit talks to, declared once.
//!
//! Hand-written subsets of systemd's `org.freedesktop.systemd1` and logind's
//! `org.freedesktop.login1` (see `man org.freedesktop.systemd1` and
//! `man org.freedesktop.login1`). The CLI calls them through the generated
//! `*ProxyBlocking` types.

use std::collections::HashMap;

use zbus::proxy;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// One change `EnableUnitFiles`/`DisableUnitFiles` made: (type, file, target).
pub type UnitFileChange = (String, String, String);

/// One process of a unit: (cgroup path, pid, command line).
pub type UnitProcess = (String, u32, String);

/// One queued job: (id, unit, type, state, job path, unit path).
pub type JobInfo = (
    u32,
    String,
    String,
    String,
    OwnedObjectPath,
    OwnedObjectPath,
);

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false
)]
pub trait Manager {
    /// `daemon-reload`.
    fn reload(&self) -> zbus::Result<()>;

    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    /// The object of a loaded unit; `NoSuchUnit` when it is not loaded.
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// The object of a unit, loading it from disk if needed.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<UnitFileChange>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<UnitFileChange>>;

    fn get_unit_processes(&self, name: &str) -> zbus::Result<Vec<UnitProcess>>;
    fn list_jobs(&self) -> zbus::Result<Vec<JobInfo>>;
}

/// Every property of a unit object in one call: `GetAll("")` returns the
/// properties of all its interfaces (`org.freedesktop.systemd1.Unit` and the
/// type's: `.Service`, `.Socket`, `.Timer`), as `systemctl show` reads them.
/// Build it with the unit's object path (`systemd::unit_object_path`).
///
/// The properties initkit reads: `LoadState`, `ActiveState`, `SubState`,
/// `Result`; services: `MainPID`, `NRestarts`, `ExecMainStatus`,
/// `StatusText`, `ControlGroup`; sockets: `Listen` (`a(ss)`: type, address),
/// `Triggers` (the service a socket or timer starts).
#[proxy(
    interface = "org.freedesktop.DBus.Properties",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
pub trait UnitProperties {
    /// `interface` "" means every interface of the object.
    fn get_all(&self, interface: &str) -> zbus::Result<SelectedProperties>;
}

/// The properties initkit reads, out of the ~300 a `GetAll("")` returns:
/// the others are skipped while the reply is parsed, never built as values.
pub const READ_PROPERTIES: &[&str] = &[
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "MainPID",
    "NRestarts",
    "ExecMainStatus",
    "StatusText",
    "ControlGroup",
    "Listen",
    "Triggers",
];

/// An `a{sv}` reply holding only the [`READ_PROPERTIES`].
#[derive(Debug, Default)]
pub struct SelectedProperties(pub HashMap<String, OwnedValue>);

impl zbus::zvariant::Type for SelectedProperties {
    const SIGNATURE: &'static zbus::zvariant::Signature =
        <HashMap<String, OwnedValue> as zbus::zvariant::Type>::SIGNATURE;
}

impl<'de> serde::Deserialize<'de> for SelectedProperties {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SelectedProperties;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a dictionary of properties (a{sv})")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = HashMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if READ_PROPERTIES.contains(&key.as_str()) {
                        out.insert(key, map.next_value::<OwnedValue>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(SelectedProperties(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_async = false
)]
pub trait Login {
    fn set_user_linger(&self, uid: u32, enable: bool, interactive: bool) -> zbus::Result<()>;
}
