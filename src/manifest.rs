//! TOML manifest → validated [`Manifest`]. Pure: no file system, no env.
//!
//! Parsing is two steps. serde reads the TOML into a raw shape with unknown
//! keys rejected (toml reports line:col), then [`validate`] turns it into a
//! [`Manifest`] whose every field is known good, or a [`ManifestError`] that
//! names the offending field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Longest unit base name or socket name.
pub const MAX_NAME_LEN: usize = 64;

/// A manifest that failed to parse or validate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// TOML syntax, a wrong type or an unknown key; `message` carries toml's
    /// line:col report.
    #[error("{message}")]
    Parse { message: String },
    /// A value that parsed but is not acceptable.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The placeholders a path or argument may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    /// `{home}`: the service user's home directory.
    Home,
    /// `{runtime}`: per-boot runtime directory (`$XDG_RUNTIME_DIR`, `/run`).
    Runtime,
    /// `{state}`: persistent state (`$XDG_STATE_HOME`, `/var/lib`).
    State,
    /// `{cache}`: cache (`$XDG_CACHE_HOME`, `/var/cache`).
    Cache,
    /// `{logs}`: log files (`$XDG_STATE_HOME/log`, `/var/log`).
    Logs,
    /// `{config}`: configuration (`$XDG_CONFIG_HOME`, `/etc`).
    Config,
}

impl Placeholder {
    pub const ALL: [Placeholder; 6] = [
        Placeholder::Home,
        Placeholder::Runtime,
        Placeholder::State,
        Placeholder::Cache,
        Placeholder::Logs,
        Placeholder::Config,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Home => "home",
            Placeholder::Runtime => "runtime",
            Placeholder::State => "state",
            Placeholder::Cache => "cache",
            Placeholder::Logs => "logs",
            Placeholder::Config => "config",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// A string that may contain placeholders such as `{state}`.
///
/// Only the six known names are placeholders; any other brace is literal, so
/// `${X}` stays `${X}`. `{{` is a literal `{`, for the rare argument that must
/// contain a literal `{state}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parse a template. Never fails: unknown braces are literal.
    pub fn parse(text: &str) -> Template {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            if let Some(stripped) = after.strip_prefix('{') {
                literal.push('{');
                rest = stripped;
                continue;
            }
            let placeholder = after
                .find('}')
                .and_then(|close| Placeholder::from_name(&after[..close]).map(|p| (p, close)));
            if let Some((p, close)) = placeholder {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Placeholder(p));
                rest = &after[close + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Template { segments }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when the template contains at least one placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Placeholder(_)))
    }

    /// Substitute every placeholder with `resolve(p)` and escape literals with
    /// `escape`.
    pub fn render(
        &self,
        mut resolve: impl FnMut(Placeholder) -> String,
        escape: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(&escape(text)),
                Segment::Placeholder(p) => out.push_str(&resolve(*p)),
            }
        }
        out
    }

    /// Substitute placeholders; literals are copied as they are.
    pub fn resolve(&self, resolve: impl FnMut(Placeholder) -> String) -> String {
        self.render(resolve, str::to_owned)
    }

    /// A path is absolute when it starts with `/` or with a placeholder (every
    /// placeholder stands for an absolute directory).
    pub fn is_absolute_path(&self) -> bool {
        match self.segments.first() {
            Some(Segment::Placeholder(_)) => true,
            Some(Segment::Literal(text)) => text.starts_with('/'),
            None => false,
        }
    }

    fn literal_text(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Literal(t) => Some(t.as_str()),
            Segment::Placeholder(_) => None,
        })
    }
}

impl fmt::Display for Template {
    /// The manifest spelling: placeholders in braces, literal `{` doubled where
    /// it would otherwise be read back as a placeholder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => f.write_str(&text.replace('{', "{{"))?,
                Segment::Placeholder(p) => write!(f, "{{{}}}", p.name())?,
            }
        }
        Ok(())
    }
}

/// Per-user or system-wide service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    #[default]
    User,
    System,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::System => "system",
        }
    }
}

/// How the service manager learns the daemon is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// `Type=notify`: the daemon sends READY=1.
    Notify,
    /// `Type=exec`: ready once the binary was executed.
    Exec,
    /// `Type=simple`: ready as soon as forked.
    #[default]
    Simple,
}

/// launchd's `ProcessType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessType {
    Background,
    Standard,
    Adaptive,
    Interactive,
}

impl ProcessType {
    pub fn launchd_name(self) -> &'static str {
        match self {
            ProcessType::Background => "Background",
            ProcessType::Standard => "Standard",
            ProcessType::Adaptive => "Adaptive",
            ProcessType::Interactive => "Interactive",
        }
    }
}

/// When the manager restarts the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    OnSuccess,
    #[default]
    Never,
}

/// What `initkit exec` does when it finds an untracked instance at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnStart {
    #[default]
    Report,
    Terminate,
    Refuse,
}

/// Where a standard stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The journal on systemd; `{logs}/<name>.log` on launchd.
    Journal,
    /// Appended to this file.
    File(Template),
}

/// A socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix stream socket at this path.
    Unix(Template),
    /// A TCP stream socket; `host` is an IP literal, or `None` for every address.
    Tcp { host: Option<String>, port: u16 },
    /// A UDP datagram socket.
    Udp { host: Option<String>, port: u16 },
}

impl Listen {
    /// The manifest spelling, e.g. `unix:{runtime}/echo.sock` or `tcp:127.0.0.1:80`.
    pub fn spelling(&self) -> String {
        let inet = |kind: &str, host: &Option<String>, port: u16| match host {
            Some(h) if h.contains(':') => format!("{kind}:[{h}]:{port}"),
            Some(h) => format!("{kind}:{h}:{port}"),
            None => format!("{kind}:{port}"),
        };
        match self {
            Listen::Unix(path) => format!("unix:{path}"),
            Listen::Tcp { host, port } => inet("tcp", host, *port),
            Listen::Udp { host, port } => inet("udp", host, *port),
        }
    }
}

/// One listening socket the init system owns on the daemon's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// `FileDescriptorName=` on systemd and the `Sockets` key on launchd.
    pub name: String,
    pub listen: Listen,
    /// Permission bits of a unix socket path.
    pub mode: Option<u32>,
    pub backlog: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// Seconds between a stop and the restart.
    pub delay: Option<u32>,
    /// At most `burst` starts within `window` seconds.
    pub burst: Option<u32>,
    pub window: Option<u32>,
    /// launchd `KeepAlive.PathState`: keep running while this path exists.
    pub keep_alive_path: Option<Template>,
}

/// A systemd calendar expression restricted to what both managers express:
/// `[DOW] YYYY-MM-DD HH:MM[:SS]` where each field is `*`, a number or a comma
/// list, or one of the shorthands `hourly`, `daily`, `weekly`, `monthly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The spelling given in the manifest, passed to `OnCalendar=` as is.
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Seconds between runs.
    pub interval: Option<u32>,
    pub calendar: Option<Calendar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Orphans {
    /// argv prefix that identifies an instance of this daemon.
    pub match_argv: Vec<String>,
    /// The off-init guard's lock file.
    pub lock: Option<Template>,
    pub on_start: OnStart,
}

/// Raw extra keys, per unit section, rendered verbatim after initkit's own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemdExtra {
    pub unit: BTreeMap<String, Vec<String>>,
    pub service: BTreeMap<String, Vec<String>>,
    pub socket: BTreeMap<String, Vec<String>>,
    pub timer: BTreeMap<String, Vec<String>>,
    pub install: BTreeMap<String, Vec<String>>,
}

/// A validated manifest: every field is known good.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub documentation: Vec<String>,
    pub command: Vec<Template>,
    pub scope: Scope,
    pub user: Option<String>,
    pub group: Option<String>,
    pub working_directory: Option<Template>,
    pub root_directory: Option<Template>,
    pub environment: BTreeMap<String, Template>,
    pub stdin: Option<Template>,
    pub stdout: Output,
    pub stderr: Output,
    pub readiness: Readiness,
    pub nice: Option<i8>,
    pub process_type: Option<ProcessType>,
    pub start_timeout: Option<u32>,
    pub stop_timeout: Option<u32>,
    /// Start at login (user) or boot (system) even without a connection.
    pub run_at_load: bool,
    pub after: Vec<String>,
    pub wants: Vec<String>,
    pub restart: Restart,
    pub schedule: Option<Schedule>,
    pub sockets: Vec<Socket>,
    pub orphans: Orphans,
    pub systemd: SystemdExtra,
    /// Raw extra plist keys, merged into the plist (initkit's keys win).
    pub launchd: BTreeMap<String, toml::Value>,
}

impl Manifest {
    /// Parse and validate manifest text.
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|err| ManifestError::Parse {
            message: toml_message(text, &err),
        })?;
        validate(raw)
    }

    /// The systemd unit names this manifest renders, service first.
    pub fn service_unit(&self) -> String {
        format!("{}.service", self.name)
    }

    /// One socket unit per socket, because systemd gives every fd of a socket
    /// unit the same `FileDescriptorName=`: `<name>.socket` for a single
    /// socket, `<name>-<socket>.socket` each when there are several.
    pub fn socket_units(&self) -> Vec<String> {
        match self.sockets.as_slice() {
            [] => Vec::new(),
            [_] => vec![format!("{}.socket", self.name)],
            many => many
                .iter()
                .map(|s| format!("{}-{}.socket", self.name, s.name))
                .collect(),
        }
    }

    pub fn timer_unit(&self) -> Option<String> {
        self.schedule
            .as_ref()
            .map(|_| format!("{}.timer", self.name))
    }

    /// The units `install`, `start` and `stop` act on: the socket units when
    /// socket-activated, else the timer for a job, else the service.
    pub fn entry_units(&self) -> Vec<String> {
        let sockets = self.socket_units();
        if !sockets.is_empty() {
            return sockets;
        }
        vec![self.timer_unit().unwrap_or_else(|| self.service_unit())]
    }

    /// The same manifest in another scope (`--scope`), re-checked.
    pub fn with_scope(mut self, scope: Scope) -> Result<Manifest, ManifestError> {
        if scope == Scope::User {
            for (field, value) in [("user", &self.user), ("group", &self.group)] {
                if value.is_some() {
                    return Err(invalid(
                        field,
                        "only allowed with scope = \"system\" (a user service runs as its user)",
                    ));
                }
            }
        }
        self.scope = scope;
        Ok(self)
    }

    /// The argv prefix that identifies an instance: `[orphans] match`, or the
    /// command's program when unset.
    pub fn match_argv(&self) -> Vec<String> {
        if self.orphans.match_argv.is_empty() {
            vec![self.command[0].to_string()]
        } else {
            self.orphans.match_argv.clone()
        }
    }
}

/// toml's error text already carries "TOML parse error at line L, column C"
/// and a snippet; keep it, single-spaced.
fn toml_message(text: &str, err: &toml::de::Error) -> String {
    let mut message = err.message().to_owned();
    if let Some(span) = err.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        message = format!("line {line}, column {column}: {message}");
    }
    message
}

// ---------------------------------------------------------------------------
// Raw shape, as serde reads it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    name: String,
    label: Option<String>,
    description: Option<String>,
    #[serde(default)]
    documentation: Vec<String>,
    command: Vec<String>,
    #[serde(default)]
    scope: Scope,
    user: Option<String>,
    group: Option<String>,
    working_directory: Option<String>,
    root_directory: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    #[serde(default)]
    readiness: Readiness,
    nice: Option<i64>,
    process_type: Option<ProcessType>,
    start_timeout: Option<u32>,
    stop_timeout: Option<u32>,
    run_at_load: Option<bool>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    wants: Vec<String>,
    #[serde(default)]
    restart: RawRestart,
    schedule: Option<RawSchedule>,
    #[serde(default)]
    socket: Vec<RawSocket>,
    #[serde(default)]
    orphans: RawOrphans,
    #[serde(default)]
    systemd: RawSystemd,
    #[serde(default)]
    launchd: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRestart {
    #[serde(default)]
    policy: RestartPolicy,
    delay: Option<u32>,
    burst: Option<u32>,
    window: Option<u32>,
    keep_alive_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSchedule {
    interval: Option<u32>,
    calendar: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSocket {
    name: Option<String>,
    listen: String,
    mode: Option<u32>,
    backlog: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOrphans {
    #[serde(rename = "match", default)]
    match_argv: Vec<String>,
    lock: Option<String>,
    #[serde(default)]
    on_start: OnStart,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSystemd {
    #[serde(default, rename = "unit")]
    unit: BTreeMap<String, RawValue>,
    #[serde(default)]
    service: BTreeMap<String, RawValue>,
    #[serde(default)]
    socket: BTreeMap<String, RawValue>,
    #[serde(default)]
    timer: BTreeMap<String, RawValue>,
    #[serde(default)]
    install: BTreeMap<String, RawValue>,
}

/// A raw unit value: a string, number or bool, or a list of them (one line each).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawValue {
    One(toml::Value),
    Many(Vec<toml::Value>),
}

// ---------------------------------------------------------------------------
// Validation.

fn validate(raw: RawManifest) -> Result<Manifest, ManifestError> {
    check_name("name", &raw.name)?;
    let label = match raw.label {
        Some(label) => {
            check_label(&label)?;
            label
        }
        None => format!("initkit.{}", raw.name),
    };
    if let Some(d) = &raw.description {
        check_line("description", d)?;
    }
    for (i, doc) in raw.documentation.iter().enumerate() {
        let field = format!("documentation[{i}]");
        check_line(&field, doc)?;
        if doc.is_empty() || doc.contains(char::is_whitespace) {
            return Err(invalid(
                field,
                "must be one URI without spaces (e.g. man:echo(8) or https://...)",
            ));
        }
    }

    if raw.command.is_empty() {
        return Err(invalid(
            "command",
            "must name at least the program (an argv list, not a shell string)",
        ));
    }
    let mut command = Vec::with_capacity(raw.command.len());
    for (i, arg) in raw.command.iter().enumerate() {
        check_no_nul(&format!("command[{i}]"), arg)?;
        command.push(Template::parse(arg));
    }
    if !command[0].is_absolute_path() {
        return Err(invalid(
            "command[0]",
            format!(
                "program must be an absolute path or start with a placeholder, got {:?}",
                raw.command[0]
            ),
        ));
    }
    if raw.scope == Scope::User {
        if raw.user.is_some() {
            return Err(invalid(
                "user",
                "only allowed with scope = \"system\" (a user service runs as its user)",
            ));
        }
        if raw.group.is_some() {
            return Err(invalid(
                "group",
                "only allowed with scope = \"system\" (a user service runs as its user)",
            ));
        }
    }
    for (field, value) in [("user", &raw.user), ("group", &raw.group)] {
        if let Some(v) = value {
            check_account(field, v)?;
        }
    }

    let working_directory = opt_abs_path("working-directory", raw.working_directory.as_deref())?;
    let root_directory = opt_abs_path("root-directory", raw.root_directory.as_deref())?;

    let mut environment = BTreeMap::new();
    for (key, value) in &raw.environment {
        let field = format!("environment.{key}");
        if key.is_empty()
            || key.starts_with(|c: char| c.is_ascii_digit())
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(
                field,
                "variable names are letters, digits and '_', not starting with a digit",
            ));
        }
        if let Some(c) = value
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n'))
        {
            return Err(invalid(field, format!("values may contain tab and newline but no other control character, found {c:?}")));
        }
        environment.insert(key.clone(), Template::parse(value));
    }

    let stdin = opt_abs_path("stdin", raw.stdin.as_deref())?;
    let stdout = output("stdout", raw.stdout.as_deref())?;
    let stderr = output("stderr", raw.stderr.as_deref())?;

    let nice = match raw.nice {
        None => None,
        Some(n) => Some(
            i8::try_from(n)
                .ok()
                .filter(|n| (-20..=19).contains(n))
                .ok_or_else(|| invalid("nice", format!("must be between -20 and 19, got {n}")))?,
        ),
    };
    for (field, value) in [
        ("start-timeout", raw.start_timeout),
        ("stop-timeout", raw.stop_timeout),
    ] {
        if value == Some(0) {
            return Err(invalid(field, "must be at least 1 second"));
        }
    }
    for (field, units) in [("after", &raw.after), ("wants", &raw.wants)] {
        for (i, unit) in units.iter().enumerate() {
            check_unit_reference(&format!("{field}[{i}]"), unit)?;
        }
    }

    let restart = validate_restart(&raw.restart)?;
    let schedule = raw.schedule.map(validate_schedule).transpose()?;
    let sockets = validate_sockets(&raw.name, raw.socket)?;
    if schedule.is_some() && !sockets.is_empty() {
        return Err(invalid(
            "schedule",
            "a scheduled job cannot also be socket-activated; use one or the other",
        ));
    }

    let mut match_argv = Vec::new();
    for (i, m) in raw.orphans.match_argv.iter().enumerate() {
        let field = format!("orphans.match[{i}]");
        check_no_nul(&field, m)?;
        if i == 0 && m.is_empty() {
            return Err(invalid(field, "must not be empty"));
        }
        match_argv.push(m.clone());
    }
    let lock = opt_abs_path("orphans.lock", raw.orphans.lock.as_deref())?;
    let orphans = Orphans {
        match_argv,
        lock,
        on_start: raw.orphans.on_start,
    };

    let systemd = SystemdExtra {
        unit: extra_section("systemd.unit", raw.systemd.unit)?,
        service: extra_section("systemd.service", raw.systemd.service)?,
        socket: extra_section("systemd.socket", raw.systemd.socket)?,
        timer: extra_section("systemd.timer", raw.systemd.timer)?,
        install: extra_section("systemd.install", raw.systemd.install)?,
    };
    for key in raw.launchd.keys() {
        check_line(&format!("launchd.{key}"), key)?;
    }

    let run_at_load = raw
        .run_at_load
        .unwrap_or(sockets.is_empty() && schedule.is_none());

    Ok(Manifest {
        name: raw.name,
        label,
        description: raw.description,
        documentation: raw.documentation,
        command,
        scope: raw.scope,
        user: raw.user,
        group: raw.group,
        working_directory,
        root_directory,
        environment,
        stdin,
        stdout,
        stderr,
        readiness: raw.readiness,
        nice,
        process_type: raw.process_type,
        start_timeout: raw.start_timeout,
        stop_timeout: raw.stop_timeout,
        run_at_load,
        after: raw.after,
        wants: raw.wants,
        restart,
        schedule,
        sockets,
        orphans,
        systemd,
        launchd: raw.launchd,
    })
}

/// Unit base names and socket names: `[A-Za-z0-9_.-]`, 1..=64, no leading
/// `-` or `.`; this also rules out `/`, `..` as a whole name, and newlines.
fn check_name(field: &str, name: &str) -> Result<(), ManifestError> {
    if name.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            field,
            format!(
                "must be at most {MAX_NAME_LEN} characters, got {}",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(
            field,
            format!(
                "{name:?} contains {bad:?}; allowed are ASCII letters, digits, '_', '.' and '-'"
            ),
        ));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err(invalid(
            field,
            format!("{name:?} must not start with '-' or '.'"),
        ));
    }
    if name.contains("..") {
        return Err(invalid(field, format!("{name:?} must not contain \"..\"")));
    }
    Ok(())
}

/// launchd labels are reverse-DNS: the same characters as names, no `/`
/// (the file is `<label>.plist`).
fn check_label(label: &str) -> Result<(), ManifestError> {
    if label.contains('/') {
        return Err(invalid(
            "label",
            format!("{label:?} must not contain '/' (the plist file is <label>.plist)"),
        ));
    }
    if label.len() > 128 {
        return Err(invalid("label", "must be at most 128 characters"));
    }
    if label.is_empty() {
        return Err(invalid("label", "must not be empty"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(
            "label",
            format!(
                "{label:?} contains {bad:?}; allowed are ASCII letters, digits, '_', '.' and '-'"
            ),
        ));
    }
    if label.starts_with('.') || label.starts_with('-') || label.contains("..") {
        return Err(invalid(
            "label",
            format!("{label:?} must not start with '.' or '-' or contain \"..\""),
        ));
    }
    Ok(())
}

/// A value rendered on one line of a unit file: no control characters.
fn check_line(field: &str, value: &str) -> Result<(), ManifestError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!("must be one line without control characters, found {c:?}"),
        ));
    }
    Ok(())
}

fn check_no_nul(field: &str, value: &str) -> Result<(), ManifestError> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain NUL"));
    }
    Ok(())
}

fn check_account(field: &str, value: &str) -> Result<(), ManifestError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a valid account name"),
        ))
    }
}

fn check_unit_reference(field: &str, unit: &str) -> Result<(), ManifestError> {
    let ok = !unit.is_empty()
        && unit.len() <= 255
        && unit.contains('.')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | ':' | '\\'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{unit:?} is not a unit name such as network-online.target"),
        ))
    }
}

fn opt_abs_path(field: &str, value: Option<&str>) -> Result<Option<Template>, ManifestError> {
    value.map(|v| abs_path(field, v)).transpose()
}

fn abs_path(field: &str, value: &str) -> Result<Template, ManifestError> {
    check_line(field, value)?;
    if value.ends_with(char::is_whitespace) {
        return Err(invalid(
            field,
            format!("must not end with whitespace (unit files strip it), got {value:?}"),
        ));
    }
    let template = Template::parse(value);
    if !template.is_absolute_path() {
        return Err(invalid(
            field,
            format!("must be an absolute path or start with a placeholder, got {value:?}"),
        ));
    }
    if template
        .literal_text()
        .any(|t| t.split('/').any(|c| c == ".."))
    {
        return Err(invalid(
            field,
            format!("must not contain \"..\" components, got {value:?}"),
        ));
    }
    Ok(template)
}

fn output(field: &str, value: Option<&str>) -> Result<Output, ManifestError> {
    match value {
        None | Some("journal") => Ok(Output::Journal),
        Some(path) => abs_path(field, path).map(Output::File),
    }
}

fn validate_restart(raw: &RawRestart) -> Result<Restart, ManifestError> {
    if raw.burst == Some(0) {
        return Err(invalid("restart.burst", "must be at least 1"));
    }
    if raw.window == Some(0) {
        return Err(invalid("restart.window", "must be at least 1 second"));
    }
    if raw.burst.is_some() != raw.window.is_some() {
        let missing = if raw.burst.is_some() {
            "restart.window"
        } else {
            "restart.burst"
        };
        return Err(invalid(missing, "restart.burst and restart.window go together: at most BURST starts within WINDOW seconds"));
    }
    Ok(Restart {
        policy: raw.policy,
        delay: raw.delay,
        burst: raw.burst,
        window: raw.window,
        keep_alive_path: opt_abs_path("restart.keep-alive-path", raw.keep_alive_path.as_deref())?,
    })
}

fn validate_schedule(raw: RawSchedule) -> Result<Schedule, ManifestError> {
    if raw.interval.is_none() && raw.calendar.is_none() {
        return Err(invalid("schedule", "needs interval or calendar"));
    }
    if raw.interval == Some(0) {
        return Err(invalid("schedule.interval", "must be at least 1 second"));
    }
    let calendar = match raw.calendar {
        None => None,
        Some(expr) => {
            check_line("schedule.calendar", &expr)?;
            parse_calendar(&expr).map_err(|msg| invalid("schedule.calendar", msg))?;
            Some(Calendar { expression: expr })
        }
    };
    Ok(Schedule {
        interval: raw.interval,
        calendar,
    })
}

/// One field of a calendar expression: `None` is `*`.
pub type CalendarField = Option<Vec<u32>>;

/// The parsed calendar: weekdays (0 = Sunday, as launchd counts), month, day,
/// hour, minute. Seconds must be 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarSpec {
    pub weekday: CalendarField,
    pub month: CalendarField,
    pub day: CalendarField,
    pub hour: CalendarField,
    pub minute: CalendarField,
}

/// Parse the calendar subset both managers express. The error says what is
/// outside it, so the user can simplify.
pub fn parse_calendar(expr: &str) -> Result<CalendarSpec, String> {
    let expr = expr.trim();
    let zero = Some(vec![0]);
    match expr {
        "hourly" => {
            return Ok(CalendarSpec {
                minute: zero,
                ..CalendarSpec::default()
            })
        }
        "daily" => {
            return Ok(CalendarSpec {
                hour: zero.clone(),
                minute: zero,
                ..CalendarSpec::default()
            })
        }
        "weekly" => {
            return Ok(CalendarSpec {
                weekday: Some(vec![1]),
                hour: zero.clone(),
                minute: zero,
                ..CalendarSpec::default()
            })
        }
        "monthly" => {
            return Ok(CalendarSpec {
                day: Some(vec![1]),
                hour: zero.clone(),
                minute: zero,
                ..CalendarSpec::default()
            })
        }
        _ => {}
    }
    let words: Vec<&str> = expr.split_whitespace().collect();
    let (weekday_word, date_word, time_word) = match words.as_slice() {
        [d, t] if d.contains('-') => (None, Some(*d), *t),
        [w, t] => (Some(*w), None, *t),
        [w, d, t] => (Some(*w), Some(*d), *t),
        [t] => (None, None, *t),
        _ => {
            return Err(format!(
                "{expr:?} is not of the form [WEEKDAY] [YYYY-MM-DD] HH:MM[:SS]"
            ))
        }
    };
    let weekday = weekday_word.map(parse_weekdays).transpose()?.flatten();
    let (month, day) = match date_word {
        None => (None, None),
        Some(d) => {
            let parts: Vec<&str> = d.split('-').collect();
            let [year, month, day] = parts.as_slice() else {
                return Err(format!("date {d:?} is not YYYY-MM-DD (use * for any)"));
            };
            if *year != "*" {
                return Err(format!(
                    "a fixed year ({year}) cannot be expressed on launchd; use *"
                ));
            }
            (field(month, 1, 12, "month")?, field(day, 1, 31, "day")?)
        }
    };
    let parts: Vec<&str> = time_word.split(':').collect();
    let (hour, minute, second) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(format!("time {time_word:?} is not HH:MM[:SS]")),
    };
    if !matches!(second, "0" | "00") {
        return Err(format!("seconds {second:?} cannot be expressed on launchd, which runs jobs on whole minutes; use :00"));
    }
    Ok(CalendarSpec {
        weekday,
        month,
        day,
        hour: field(hour, 0, 23, "hour")?,
        minute: field(minute, 0, 59, "minute")?,
    })
}

fn field(text: &str, min: u32, max: u32, what: &str) -> Result<CalendarField, String> {
    if text == "*" {
        return Ok(None);
    }
    let mut values = Vec::new();
    for part in text.split(',') {
        if part.contains("..") || part.contains('/') || part.contains('~') {
            return Err(format!("{what} {part:?}: ranges and steps cannot be expressed on launchd; list the values with ','"));
        }
        let value: u32 = part
            .parse()
            .map_err(|_| format!("{what} {part:?} is not a number or *"))?;
        if !(min..=max).contains(&value) {
            return Err(format!("{what} {value} is outside {min}..={max}"));
        }
        values.push(value);
    }
    Ok(Some(values))
}

fn parse_weekdays(text: &str) -> Result<CalendarField, String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let mut values = Vec::new();
    for part in text.split(',') {
        if part.contains("..") {
            return Err(format!(
                "weekday range {part:?} cannot be expressed on launchd; list the days with ','"
            ));
        }
        let index = DAYS
            .iter()
            .position(|d| {
                part.len() >= 3 && part[..3].eq_ignore_ascii_case(d) && d.len() <= part.len()
            })
            .ok_or_else(|| {
                format!("weekday {part:?} is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")
            })?;
        values.push(u32::try_from(index).expect("seven days"));
    }
    Ok(Some(values))
}

fn validate_sockets(service: &str, raw: Vec<RawSocket>) -> Result<Vec<Socket>, ManifestError> {
    let many = raw.len() > 1;
    let mut sockets: Vec<Socket> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let name = match s.name {
            Some(name) => {
                check_name(&format!("socket[{i}].name"), &name)?;
                name
            }
            None if many => {
                return Err(invalid(
                    format!("socket[{i}].name"),
                    "is required when there is more than one socket",
                ))
            }
            None => service.to_owned(),
        };
        if sockets.iter().any(|other| other.name == name) {
            return Err(invalid(
                format!("socket[{i}].name"),
                format!("duplicate socket name {name:?}"),
            ));
        }
        let field = format!("socket[{i}].listen");
        let listen = parse_listen(&field, &s.listen)?;
        if let Some(mode) = s.mode {
            if !matches!(listen, Listen::Unix(_)) {
                return Err(invalid(
                    format!("socket[{i}].mode"),
                    "only applies to unix sockets",
                ));
            }
            if mode > 0o777 {
                return Err(invalid(
                    format!("socket[{i}].mode"),
                    format!("{mode:#o} is not a permission mode (0o000..=0o777)"),
                ));
            }
        }
        if s.backlog == Some(0) {
            return Err(invalid(
                format!("socket[{i}].backlog"),
                "must be at least 1",
            ));
        }
        if sockets.iter().any(|other| other.listen == listen) {
            return Err(invalid(field, format!("duplicate address {:?}", s.listen)));
        }
        sockets.push(Socket {
            name,
            listen,
            mode: s.mode,
            backlog: s.backlog,
        });
    }
    Ok(sockets)
}

fn parse_listen(field: &str, text: &str) -> Result<Listen, ManifestError> {
    check_line(field, text)?;
    let (kind, rest) = text.split_once(':').ok_or_else(|| {
        invalid(
            field,
            format!("{text:?} is not unix:PATH, tcp:[HOST:]PORT or udp:[HOST:]PORT"),
        )
    })?;
    match kind {
        "unix" => {
            let path = Template::parse(rest);
            if rest.starts_with('@') {
                return Err(invalid(field, "abstract sockets (@name) are not supported: launchd cannot express them and they have no path to guard"));
            }
            if !path.is_absolute_path() {
                return Err(invalid(field, format!("unix socket path must be absolute or start with a placeholder, got {rest:?}")));
            }
            if path.literal_text().any(|t| t.split('/').any(|c| c == "..")) {
                return Err(invalid(
                    field,
                    format!("unix socket path must not contain \"..\", got {rest:?}"),
                ));
            }
            Ok(Listen::Unix(path))
        }
        "tcp" | "udp" => {
            let (host, port) = parse_inet(field, rest)?;
            Ok(if kind == "tcp" {
                Listen::Tcp { host, port }
            } else {
                Listen::Udp { host, port }
            })
        }
        other => Err(invalid(
            field,
            format!("unknown socket kind {other:?}; use unix, tcp or udp"),
        )),
    }
}

fn parse_inet(field: &str, text: &str) -> Result<(Option<String>, u16), ManifestError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(|| {
            invalid(
                field,
                format!("{text:?}: an IPv6 host is written [ADDR]:PORT"),
            )
        })?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| invalid(field, format!("{host:?} is not an IPv6 address")))?;
        (Some(host.to_owned()), port)
    } else if let Some((host, port)) = text.rsplit_once(':') {
        host.parse::<std::net::Ipv4Addr>().map_err(|_| {
            invalid(
                field,
                format!("{host:?} is not an IP address (host names are not resolved)"),
            )
        })?;
        (Some(host.to_owned()), port)
    } else {
        (None, text)
    };
    let port: u32 = port
        .parse()
        .map_err(|_| invalid(field, format!("port {port:?} is not a number")))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(field, format!("port {port} is out of range 1..=65535")))?;
    Ok((host, port))
}

fn extra_section(
    section: &str,
    raw: BTreeMap<String, RawValue>,
) -> Result<BTreeMap<String, Vec<String>>, ManifestError> {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let field = format!("{section}.{key}");
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                field,
                "unit keys are ASCII letters and digits, e.g. LimitNOFILE",
            ));
        }
        let values = match value {
            RawValue::One(v) => vec![scalar(&field, &v)?],
            RawValue::Many(vs) => vs
                .iter()
                .map(|v| scalar(&field, v))
                .collect::<Result<_, _>>()?,
        };
        for v in &values {
            check_line(&field, v)?;
        }
        out.insert(key, values);
    }
    Ok(out)
}

fn scalar(field: &str, value: &toml::Value) -> Result<String, ManifestError> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(if *b { "yes" } else { "no" }.to_owned()),
        toml::Value::Float(f) => Ok(f.to_string()),
        _ => Err(invalid(
            field,
            "must be a string, number, boolean or a list of them",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"echo\"\ncommand = [\"/usr/bin/echo-daemon\"]\n";

    fn err(text: &str) -> String {
        Manifest::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_defaults() {
        let m = Manifest::from_toml(MINIMAL).unwrap();
        assert_eq!(m.label, "initkit.echo");
        assert_eq!(m.scope, Scope::User);
        assert!(m.run_at_load, "a plain service starts at login by default");
        assert_eq!(m.entry_units(), vec!["echo.service"]);
        assert_eq!(m.match_argv(), vec!["/usr/bin/echo-daemon".to_owned()]);
    }

    #[test]
    fn template_placeholders_and_literals() {
        let t = Template::parse("{state}/a{b}${X}{{home}");
        assert_eq!(
            t.segments(),
            &[
                Segment::Placeholder(Placeholder::State),
                Segment::Literal("/a{b}${X}{home}".into())
            ]
        );
        assert_eq!(t.to_string(), "{state}/a{{b}${{X}{{home}");
        assert_eq!(Template::parse(&t.to_string()), t);
        assert_eq!(
            Template::parse("{").segments(),
            &[Segment::Literal("{".into())]
        );
        assert_eq!(Template::parse("").segments(), &[]);
    }

    #[test]
    fn single_socket_defaults_to_service_name() {
        let m =
            Manifest::from_toml(&format!("{MINIMAL}[[socket]]\nlisten = \"tcp:8080\"\n")).unwrap();
        assert_eq!(m.sockets[0].name, "echo");
        assert!(!m.run_at_load);
        assert_eq!(m.entry_units(), vec!["echo.socket"]);
    }

    #[test]
    fn listen_spelling_round_trips() {
        for text in [
            "unix:{runtime}/x.sock",
            "tcp:8080",
            "tcp:127.0.0.1:80",
            "udp:[::1]:53",
        ] {
            let l = parse_listen("f", text).unwrap();
            assert_eq!(l.spelling(), text);
        }
    }

    #[test]
    fn calendar_subset() {
        let spec = parse_calendar("*-*-* 03:00:00").unwrap();
        assert_eq!(spec.hour, Some(vec![3]));
        assert_eq!(spec.minute, Some(vec![0]));
        assert_eq!(spec.day, None);
        let spec = parse_calendar("Mon,Fri *-*-1 12:30").unwrap();
        assert_eq!(spec.weekday, Some(vec![1, 5]));
        assert_eq!(spec.day, Some(vec![1]));
        assert!(parse_calendar("*-*-* 03:00:30")
            .unwrap_err()
            .contains("whole minutes"));
        assert!(parse_calendar("*-*-* 01..04:00")
            .unwrap_err()
            .contains("ranges"));
        assert!(parse_calendar("2027-*-* 01:00")
            .unwrap_err()
            .contains("year"));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = err("name = \"echo\"\ncommand = [\"/bin/x\"]\ncomand = 1\n");
        assert!(
            e.starts_with("line 3, column 1: unknown field `comand`"),
            "{e}"
        );
    }

    #[test]
    fn error_names_field() {
        assert_eq!(
            err("name = \"a/b\"\ncommand = [\"/x\"]"),
            "name: \"a/b\" contains '/'; allowed are ASCII letters, digits, '_', '.' and '-'"
        );
        assert_eq!(
            err("name = \"x\"\ncommand = [\"x\"]"),
            "command[0]: program must be an absolute path or start with a placeholder, got \"x\""
        );
    }
}
