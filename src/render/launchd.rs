//! Manifest → launchd property list (`<label>.plist`). Pure.
//!
//! launchd expands nothing: no `~`, no variables, no specifiers. Placeholders
//! therefore resolve to concrete paths for a [`Target`] at render time:
//!
//! | placeholder | agent (user scope, home `H`) | daemon (system scope) |
//! |---|---|---|
//! | `{home}` | `H` | `/var/root` |
//! | `{runtime}` | `H/Library/Caches/run` | `/var/run` |
//! | `{state}` | `H/Library/Application Support` | `/Library/Application Support` |
//! | `{cache}` | `H/Library/Caches` | `/Library/Caches` |
//! | `{logs}` | `H/Library/Logs` | `/Library/Logs` |
//! | `{config}` | `H/Library/Preferences` | `/Library/Preferences` |
//!
//! Without a target user (packaging), a per-user placeholder is an error that
//! names the key.

use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};

use super::{check_unix_paths, header_source, warn, RenderError, Rendered, RenderedFile, Warning};
use crate::dirs::Dirs;
use crate::manifest::{Listen, Manifest, Output, Readiness, RestartPolicy, Scope, Template};

/// Whose paths the placeholders resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user agent for the user whose home is `home`.
    User { home: PathBuf },
    /// No per-user information: only system daemons and placeholder-free
    /// agents render.
    System,
    /// Packaging: like `System`, and nothing from the build host leaks in.
    Packaging,
}

/// The directories placeholders resolve to, or `None` when a user agent has no
/// target user.
pub fn dirs(scope: Scope, target: &Target) -> Option<Dirs> {
    let lib = |base: &Path| Dirs {
        home: base.to_path_buf(),
        runtime: base.join("Library/Caches/run"),
        state: base.join("Library/Application Support"),
        cache: base.join("Library/Caches"),
        logs: base.join("Library/Logs"),
        config: base.join("Library/Preferences"),
    };
    match (scope, target) {
        (Scope::System, _) => Some(Dirs {
            home: "/var/root".into(),
            runtime: "/var/run".into(),
            ..lib(Path::new("/"))
        }),
        (Scope::User, Target::User { home }) => Some(lib(home)),
        (Scope::User, Target::System | Target::Packaging) => None,
    }
}

/// Keys initkit writes itself; `[launchd]` extras may not override them.
const OWN_KEYS: &[&str] = &[
    "AbandonProcessGroup",
    "EnvironmentVariables",
    "ExitTimeOut",
    "GroupName",
    "KeepAlive",
    "Label",
    "Nice",
    "ProcessType",
    "Program",
    "ProgramArguments",
    "RootDirectory",
    "RunAtLoad",
    "Sockets",
    "StandardErrorPath",
    "StandardInPath",
    "StandardOutPath",
    "StartCalendarInterval",
    "StartInterval",
    "ThrottleInterval",
    "UserName",
    "WorkingDirectory",
];

struct Resolver {
    dirs: Option<Dirs>,
}

impl Resolver {
    fn string(&self, field: &str, t: &Template) -> Result<String, RenderError> {
        let text = match &self.dirs {
            Some(dirs) => dirs.resolve(t).to_string_lossy().into_owned(),
            None if t.has_placeholders() => {
                return Err(RenderError {
                    field: field.to_owned(),
                    message: format!(
                        "{t} is a per-user path, and launchd cannot express one without a target user (plists hold concrete paths; render at install time, or use an absolute path)"
                    ),
                })
            }
            None => t.resolve(|_| unreachable!("no placeholders")),
        };
        xml_safe(field, &text)?;
        Ok(text)
    }
}

/// XML 1.0 cannot carry most control characters, and parsers turn `\r` into
/// `\n`; refuse them rather than write a plist that does not round-trip.
fn xml_safe(field: &str, text: &str) -> Result<(), RenderError> {
    match text.chars().find(|&c| {
        (c.is_control() && !matches!(c, '\t' | '\n')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    }) {
        Some(c) => Err(RenderError {
            field: field.to_owned(),
            message: format!("launchd plists are XML and cannot carry the control character {c:?}"),
        }),
        None => Ok(()),
    }
}

/// True when the command already runs under `initkit exec`, whose failure
/// budget enforces `restart.burst`/`restart.window` on launchd.
fn wrapped_in_exec(m: &Manifest) -> bool {
    let program = m.command[0].to_string();
    Path::new(&program)
        .file_name()
        .is_some_and(|n| n == "initkit")
        && m.command.get(1).is_some_and(|a| a.to_string() == "exec")
}

/// Render the plist for `manifest`; `source` names the manifest in the header.
pub fn render(manifest: &Manifest, target: &Target, source: &str) -> Result<Rendered, RenderError> {
    let mut warnings = Vec::new();
    let value = plist_value(manifest, target, &mut warnings)?;
    let mut xml = Vec::new();
    plist::to_writer_xml(&mut xml, &value).map_err(|e| RenderError {
        field: "launchd".into(),
        message: format!("cannot write the plist: {e}"),
    })?;
    let xml = String::from_utf8(xml).expect("plist writes UTF-8");
    let contents = with_header(&xml, source);
    Ok(Rendered {
        files: vec![RenderedFile {
            path: PathBuf::from("plists").join(format!("{}.plist", manifest.label)),
            contents,
        }],
        warnings,
    })
}

/// Insert the generated-by comment after the DOCTYPE line.
fn with_header(xml: &str, source: &str) -> String {
    let comment = format!(
        "<!-- {} from {}; edit the manifest, not this file. -->\n",
        super::GENERATED_MARKER,
        header_source(source)
    );
    let mut out = String::with_capacity(xml.len() + comment.len() + 1);
    let mut inserted = false;
    for line in xml.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.starts_with("<!DOCTYPE") {
            out.push_str(&comment);
            inserted = true;
        }
    }
    if !inserted {
        out.insert_str(0, &comment);
    }
    out
}

fn int(n: impl Into<i64>) -> Value {
    Value::Integer(n.into().into())
}

/// The plist as a value, keys sorted.
pub fn plist_value(
    m: &Manifest,
    target: &Target,
    warnings: &mut Vec<Warning>,
) -> Result<Value, RenderError> {
    let dirs = dirs(m.scope, target);
    if let Some(dirs) = &dirs {
        check_unix_paths(m, dirs, super::UNIX_PATH_MAX_MACOS, "macOS")?;
    }
    let r = Resolver { dirs };
    let mut d = Dictionary::new();
    d.insert("Label".into(), Value::String(m.label.clone()));
    let argv = m
        .command
        .iter()
        .enumerate()
        .map(|(i, t)| r.string(&format!("command[{i}]"), t).map(Value::String))
        .collect::<Result<Vec<_>, _>>()?;
    d.insert("ProgramArguments".into(), Value::Array(argv));
    if !m.environment.is_empty() {
        let mut env = Dictionary::new();
        for (key, value) in &m.environment {
            env.insert(
                key.clone(),
                Value::String(r.string(&format!("environment.{key}"), value)?),
            );
        }
        d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    }
    if let Some(dir) = &m.working_directory {
        d.insert(
            "WorkingDirectory".into(),
            Value::String(r.string("working-directory", dir)?),
        );
    }
    if let Some(dir) = &m.root_directory {
        d.insert(
            "RootDirectory".into(),
            Value::String(r.string("root-directory", dir)?),
        );
    }
    if let Some(user) = &m.user {
        d.insert("UserName".into(), Value::String(user.clone()));
    }
    if let Some(group) = &m.group {
        d.insert("GroupName".into(), Value::String(group.clone()));
    }
    if let Some(stdin) = &m.stdin {
        d.insert(
            "StandardInPath".into(),
            Value::String(r.string("stdin", stdin)?),
        );
    }
    for (field, key, output) in [
        ("stdout", "StandardOutPath", &m.stdout),
        ("stderr", "StandardErrorPath", &m.stderr),
    ] {
        let path = match output {
            Output::File(path) => r.string(field, path)?,
            // launchd has no journal: the log directory stands in.
            Output::Journal => {
                let Some(dirs) = &r.dirs else {
                    warn(
                        warnings,
                        field,
                        "journal has no launchd equivalent and there is no target user to place {logs}; output is discarded (set a path to keep it)",
                    );
                    continue;
                };
                dirs.logs
                    .join(format!("{}.log", m.name))
                    .to_string_lossy()
                    .into_owned()
            }
        };
        d.insert(key.into(), Value::String(path));
    }
    if let Some(nice) = m.nice {
        d.insert("Nice".into(), int(nice));
    }
    if let Some(pt) = m.process_type {
        d.insert(
            "ProcessType".into(),
            Value::String(pt.launchd_name().into()),
        );
    }
    if let Some(secs) = m.stop_timeout {
        d.insert("ExitTimeOut".into(), int(secs));
    }
    if m.start_timeout.is_some() {
        warn(
            warnings,
            "start-timeout",
            "launchd has no start timeout; ignored there",
        );
    }
    if m.readiness == Readiness::Notify {
        warn(
            warnings,
            "readiness",
            "launchd has no readiness protocol: the job counts as started once spawned, and sd_notify messages are a no-op there",
        );
    }
    for (field, units) in [("after", &m.after), ("wants", &m.wants)] {
        if !units.is_empty() {
            warn(
                warnings,
                field,
                "launchd has no ordering or dependencies between jobs; ignored there",
            );
        }
    }
    d.insert("RunAtLoad".into(), Value::Boolean(m.run_at_load));
    d.insert("AbandonProcessGroup".into(), Value::Boolean(false));

    keep_alive(m, &r, &mut d, warnings)?;
    if let Some(schedule) = &m.schedule {
        if let Some(interval) = schedule.interval {
            d.insert("StartInterval".into(), int(interval));
        }
        if let Some(calendar) = &schedule.calendar {
            d.insert(
                "StartCalendarInterval".into(),
                calendar_value(&calendar.expression)?,
            );
        }
    }
    if !m.sockets.is_empty() {
        let mut sockets = Dictionary::new();
        for (i, s) in m.sockets.iter().enumerate() {
            let mut sd = Dictionary::new();
            match &s.listen {
                Listen::Unix(path) => {
                    sd.insert(
                        "SockPathName".into(),
                        Value::String(r.string(&format!("socket[{i}].listen"), path)?),
                    );
                    if let Some(mode) = s.mode {
                        // launchd reads SockPathMode as a plain (decimal) integer.
                        sd.insert("SockPathMode".into(), int(mode));
                    }
                    sd.insert("SockType".into(), Value::String("stream".into()));
                }
                Listen::Tcp { host, port } | Listen::Udp { host, port } => {
                    let kind = if matches!(s.listen, Listen::Tcp { .. }) {
                        "stream"
                    } else {
                        "dgram"
                    };
                    sd.insert("SockType".into(), Value::String(kind.into()));
                    sd.insert("SockServiceName".into(), Value::String(port.to_string()));
                    if let Some(host) = host {
                        sd.insert("SockNodeName".into(), Value::String(host.clone()));
                        let family = if host.contains(':') { "IPv6" } else { "IPv4" };
                        sd.insert("SockFamily".into(), Value::String(family.into()));
                    }
                }
            }
            sd.insert("SockPassive".into(), Value::Boolean(true));
            if s.backlog.is_some() {
                warn(
                    warnings,
                    format!("socket[{i}].backlog"),
                    "launchd has no per-socket backlog; the system default applies there",
                );
            }
            sd.sort_keys();
            sockets.insert(s.name.clone(), Value::Dictionary(sd));
        }
        sockets.sort_keys();
        d.insert("Sockets".into(), Value::Dictionary(sockets));
    }
    for (key, value) in &m.launchd {
        let field = format!("launchd.{key}");
        if OWN_KEYS.contains(&key.as_str()) {
            return Err(RenderError {
                field,
                message:
                    "initkit writes this key from the manifest; set the manifest field instead"
                        .into(),
            });
        }
        d.insert(key.clone(), toml_to_plist(&field, value)?);
    }
    d.sort_keys();
    Ok(Value::Dictionary(d))
}

fn keep_alive(
    m: &Manifest,
    r: &Resolver,
    d: &mut Dictionary,
    warnings: &mut Vec<Warning>,
) -> Result<(), RenderError> {
    let restart = &m.restart;
    if let Some(delay) = restart.delay {
        d.insert("ThrottleInterval".into(), int(delay));
    }
    if restart.burst.is_some() && !wrapped_in_exec(m) {
        warn(
            warnings,
            "restart.burst",
            "launchd has no start limit and respawns a failing job forever; run the command under `initkit exec`, whose failure budget stops after burst starts within window",
        );
    }
    let mut conditions = Dictionary::new();
    match restart.policy {
        RestartPolicy::Always => {
            if restart.keep_alive_path.is_some() {
                warn(
                    warnings,
                    "restart.keep-alive-path",
                    "ignored on launchd with policy \"always\", which keeps the job alive unconditionally",
                );
            }
            d.insert("KeepAlive".into(), Value::Boolean(true));
            return Ok(());
        }
        RestartPolicy::OnFailure => {
            conditions.insert("SuccessfulExit".into(), Value::Boolean(false));
        }
        RestartPolicy::OnSuccess => {
            conditions.insert("SuccessfulExit".into(), Value::Boolean(true));
        }
        RestartPolicy::Never => {}
    }
    if let Some(path) = &restart.keep_alive_path {
        let mut state = Dictionary::new();
        state.insert(
            r.string("restart.keep-alive-path", path)?,
            Value::Boolean(true),
        );
        conditions.insert("PathState".into(), Value::Dictionary(state));
    }
    if !conditions.is_empty() {
        conditions.sort_keys();
        d.insert("KeepAlive".into(), Value::Dictionary(conditions));
    }
    Ok(())
}

/// `StartCalendarInterval`: one dict, or an array of dicts for lists.
fn calendar_value(expression: &str) -> Result<Value, RenderError> {
    let spec = crate::manifest::parse_calendar(expression).map_err(|message| RenderError {
        field: "schedule.calendar".into(),
        message,
    })?;
    let fields: [(&str, &Option<Vec<u32>>); 5] = [
        ("Weekday", &spec.weekday),
        ("Month", &spec.month),
        ("Day", &spec.day),
        ("Hour", &spec.hour),
        ("Minute", &spec.minute),
    ];
    let mut dicts = vec![Dictionary::new()];
    for (key, values) in fields {
        let Some(values) = values else { continue };
        let mut next = Vec::with_capacity(dicts.len() * values.len());
        for dict in &dicts {
            for v in values {
                let mut d = dict.clone();
                d.insert(key.into(), int(*v));
                next.push(d);
            }
        }
        dicts = next;
    }
    let mut values: Vec<Value> = dicts
        .into_iter()
        .map(|mut d| {
            d.sort_keys();
            Value::Dictionary(d)
        })
        .collect();
    Ok(if values.len() == 1 {
        values.remove(0)
    } else {
        Value::Array(values)
    })
}

fn toml_to_plist(field: &str, value: &toml::Value) -> Result<Value, RenderError> {
    Ok(match value {
        toml::Value::String(s) => {
            xml_safe(field, s)?;
            Value::String(s.clone())
        }
        toml::Value::Integer(i) => int(*i),
        toml::Value::Float(f) => Value::Real(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| toml_to_plist(field, v))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut d = Dictionary::new();
            for (k, v) in table {
                xml_safe(field, k)?;
                d.insert(k.clone(), toml_to_plist(&format!("{field}.{k}"), v)?);
            }
            d.sort_keys();
            Value::Dictionary(d)
        }
        toml::Value::Datetime(_) => {
            return Err(RenderError {
                field: field.to_owned(),
                message: "dates are not supported in launchd extras".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::from_toml(&format!("name = \"t\"\nlabel = \"org.example.t\"\ncommand = [\"/bin/t\", \"{{state}}/x\"]\n{extra}")).unwrap()
    }

    fn user() -> Target {
        Target::User {
            home: "/Users/ann".into(),
        }
    }

    fn dict(m: &Manifest, target: &Target) -> Dictionary {
        plist_value(m, target, &mut Vec::new())
            .unwrap()
            .into_dictionary()
            .unwrap()
    }

    #[test]
    fn real_types_and_decimal_mode() {
        let m = manifest("[[socket]]\nname = \"control\"\nlisten = \"unix:{runtime}/t.sock\"\nmode = 0o600\n[restart]\npolicy = \"on-failure\"\ndelay = 3\n");
        let d = dict(&m, &user());
        let sock = d["Sockets"].as_dictionary().unwrap()["control"]
            .as_dictionary()
            .unwrap();
        assert_eq!(sock["SockPathMode"].as_signed_integer(), Some(384));
        assert_eq!(
            sock["SockPathName"].as_string(),
            Some("/Users/ann/Library/Caches/run/t.sock")
        );
        assert_eq!(d["ThrottleInterval"].as_signed_integer(), Some(3));
        assert_eq!(d["AbandonProcessGroup"].as_boolean(), Some(false));
        let keep = d["KeepAlive"].as_dictionary().unwrap();
        assert_eq!(keep["SuccessfulExit"].as_boolean(), Some(false));
        let keys: Vec<&String> = d.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn packaging_refuses_per_user_paths_naming_the_key() {
        let err = plist_value(&manifest(""), &Target::Packaging, &mut Vec::new()).unwrap_err();
        assert_eq!(err.field, "command[1]");
        assert!(err.message.contains("per-user path"), "{err}");
    }

    #[test]
    fn xml_metacharacters_are_escaped_and_controls_refused() {
        let m = Manifest::from_toml(
            "name = \"t\"\ncommand = [\"/bin/t\", \"</string><key>Evil</key>\"]\n",
        )
        .unwrap();
        let r = render(&m, &user(), "t.toml").unwrap();
        assert!(
            r.files[0]
                .contents
                .contains("&lt;/string&gt;&lt;key&gt;Evil&lt;/key&gt;"),
            "{}",
            r.files[0].contents
        );
        let m =
            Manifest::from_toml("name = \"t\"\ncommand = [\"/bin/t\", \"a\\u0001\"]\n").unwrap();
        assert_eq!(
            plist_value(&m, &user(), &mut Vec::new()).unwrap_err().field,
            "command[1]"
        );
    }

    #[test]
    fn calendar_lists_expand() {
        let v = calendar_value("Mon,Fri *-*-* 03:00").unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        let v = calendar_value("*-*-* 03:15:00").unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(d["Hour"].as_signed_integer(), Some(3));
        assert_eq!(d["Minute"].as_signed_integer(), Some(15));
    }

    #[test]
    fn extras_cannot_override_own_keys() {
        let m = manifest("[launchd]\nLowPriorityIO = true\n");
        assert_eq!(dict(&m, &user())["LowPriorityIO"].as_boolean(), Some(true));
        let m = manifest("[launchd]\nKeepAlive = true\n");
        assert_eq!(
            plist_value(&m, &user(), &mut Vec::new()).unwrap_err().field,
            "launchd.KeepAlive"
        );
    }

    #[test]
    fn burst_warning_names_the_exec_failure_budget() {
        let mut w = Vec::new();
        plist_value(
            &manifest("[restart]\npolicy = \"always\"\nburst = 3\nwindow = 10\n"),
            &user(),
            &mut w,
        )
        .unwrap();
        assert!(
            w.iter()
                .any(|w| w.field == "restart.burst" && w.message.contains("initkit exec")),
            "{w:?}"
        );
    }
}
