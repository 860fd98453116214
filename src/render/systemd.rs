//! Manifest → systemd `.service`, `.socket` and `.timer` units. Pure.
//!
//! Placeholders become specifiers (`{runtime}` → `%t`, ...), which systemd
//! resolves per scope; literals are escaped so every byte arrives as written
//! (see [`super::quote`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{
    check_unix_paths, header_source, quote, warn, RenderError, Rendered, RenderedFile, Warning,
};
use crate::dirs::Dirs;
use crate::manifest::{
    Listen, Manifest, Output, Placeholder, Readiness, RestartPolicy, Scope, Segment, Template,
};

/// The specifier systemd resolves for a placeholder, in either scope.
pub fn specifier(p: Placeholder) -> &'static str {
    match p {
        Placeholder::Home => "%h",
        Placeholder::Runtime => "%t",
        Placeholder::State => "%S",
        Placeholder::Cache => "%C",
        Placeholder::Logs => "%L",
        Placeholder::Config => "%E",
    }
}

/// A path value: specifiers for placeholders, `%` escaped in literals.
fn path_value(t: &Template) -> String {
    t.render(|p| specifier(p).to_owned(), quote::specifiers)
}

/// One quoted ExecStart= word.
fn exec_word(t: &Template) -> String {
    let mut out = String::from("\"");
    for segment in t.segments() {
        match segment {
            Segment::Literal(text) => out.push_str(&quote::exec_word_body(text.as_bytes())),
            Segment::Placeholder(p) => out.push_str(specifier(*p)),
        }
    }
    out.push('"');
    out
}

/// One quoted Environment= assignment.
fn environment(key: &str, value: &Template) -> String {
    let mut out = String::from("\"");
    out.push_str(&quote::environment_body(key.as_bytes()));
    out.push('=');
    for segment in value.segments() {
        match segment {
            Segment::Literal(text) => out.push_str(&quote::environment_body(text.as_bytes())),
            Segment::Placeholder(p) => out.push_str(specifier(*p)),
        }
    }
    out.push('"');
    out
}

/// The `ExecStart=` value for an argv.
pub fn exec_start(command: &[Template]) -> String {
    command.iter().map(exec_word).collect::<Vec<_>>().join(" ")
}

/// A unit file being assembled: sections in order, keys in insertion order.
struct Unit {
    text: String,
}

impl Unit {
    fn new(source: &str) -> Unit {
        Unit {
            text: format!(
                "# {} from {}; edit the manifest, not this file.\n",
                super::GENERATED_MARKER,
                header_source(source)
            ),
        }
    }

    fn section(&mut self, name: &str) {
        if self.text.lines().count() > 1 {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "[{name}]");
    }

    fn key(&mut self, key: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "{key}={}", value.as_ref());
    }

    fn extras(&mut self, extras: &std::collections::BTreeMap<String, Vec<String>>) {
        for (key, values) in extras {
            for value in values {
                self.key(key, value);
            }
        }
    }
}

fn default_target(scope: Scope) -> &'static str {
    match scope {
        Scope::User => "default.target",
        Scope::System => "multi-user.target",
    }
}

/// Directories no real user manager will exceed, for the path-length check:
/// `%t` is `/run/user/UID` (at most 10 digits) and `%h` at most `/home/` plus
/// a 32-byte user name. `install` repeats the check with the real directories.
fn worst_case_dirs(scope: Scope) -> Dirs {
    match scope {
        Scope::System => Dirs::system(),
        Scope::User => Dirs::user_from(|name| match name {
            "HOME" => Some(format!("/home/{}", "u".repeat(32)).into()),
            "XDG_RUNTIME_DIR" => Some("/run/user/4294967295".into()),
            _ => None,
        })
        .expect("both variables are given"),
    }
}

/// Render the units for `manifest`; `source` names the manifest in headers.
pub fn render(manifest: &Manifest, source: &str) -> Result<Rendered, RenderError> {
    check_unix_paths(
        manifest,
        &worst_case_dirs(manifest.scope),
        super::UNIX_PATH_MAX_LINUX,
        "Linux",
    )?;
    let mut warnings = Vec::new();
    let mut files = vec![RenderedFile {
        path: PathBuf::from("units").join(manifest.service_unit()),
        contents: service(manifest, source, &mut warnings),
    }];
    let socket_units = manifest.socket_units();
    for (socket, unit) in manifest.sockets.iter().zip(&socket_units) {
        files.push(RenderedFile {
            path: PathBuf::from("units").join(unit),
            contents: socket_unit(manifest, socket, source),
        });
    }
    if let Some(timer) = manifest.timer_unit() {
        files.push(RenderedFile {
            path: PathBuf::from("units").join(timer),
            contents: timer_unit(manifest, source),
        });
    }
    Ok(Rendered { files, warnings })
}

fn description(manifest: &Manifest) -> String {
    quote::specifiers(manifest.description.as_deref().unwrap_or(&manifest.name))
}

fn service(m: &Manifest, source: &str, warnings: &mut Vec<Warning>) -> String {
    let mut u = Unit::new(source);
    u.section("Unit");
    u.key("Description", description(m));
    if !m.documentation.is_empty() {
        u.key(
            "Documentation",
            quote::specifiers(&m.documentation.join(" ")),
        );
    }
    let sockets = m.socket_units();
    if !sockets.is_empty() {
        // Starting the service sets its sockets up first; stopping a socket
        // stops the service with it.
        u.key("Requires", sockets.join(" "));
        u.key("After", sockets.join(" "));
    }
    if !m.after.is_empty() {
        u.key("After", m.after.join(" "));
    }
    if !m.wants.is_empty() {
        u.key("Wants", m.wants.join(" "));
    }
    if let (Some(burst), Some(window)) = (m.restart.burst, m.restart.window) {
        u.key("StartLimitIntervalSec", window.to_string());
        u.key("StartLimitBurst", burst.to_string());
    }
    if let Some(path) = &m.restart.keep_alive_path {
        u.key("ConditionPathExists", path_value(path));
        warn(
            warnings,
            "restart.keep-alive-path",
            "systemd checks the path only when the service starts (ConditionPathExists=); it does not start or stop the service when the path appears or vanishes",
        );
    }
    u.extras(&m.systemd.unit);

    u.section("Service");
    u.key(
        "Type",
        match m.readiness {
            Readiness::Notify => "notify",
            Readiness::Exec => "exec",
            Readiness::Simple => "simple",
        },
    );
    u.key("ExecStart", exec_start(&m.command));
    for (key, value) in &m.environment {
        u.key("Environment", environment(key, value));
    }
    if let Some(dir) = &m.working_directory {
        u.key("WorkingDirectory", path_value(dir));
    }
    if let Some(dir) = &m.root_directory {
        u.key("RootDirectory", path_value(dir));
    }
    if let Some(user) = &m.user {
        u.key("User", user);
    }
    if let Some(group) = &m.group {
        u.key("Group", group);
    }
    if let Some(stdin) = &m.stdin {
        u.key("StandardInput", format!("file:{}", path_value(stdin)));
    }
    for (key, output) in [("StandardOutput", &m.stdout), ("StandardError", &m.stderr)] {
        match output {
            Output::Journal => u.key(key, "journal"),
            Output::File(path) => u.key(key, format!("append:{}", path_value(path))),
        }
    }
    if let Some(nice) = m.nice {
        u.key("Nice", nice.to_string());
    }
    if let Some(secs) = m.start_timeout {
        u.key("TimeoutStartSec", secs.to_string());
    }
    if let Some(secs) = m.stop_timeout {
        u.key("TimeoutStopSec", secs.to_string());
    }
    u.key(
        "Restart",
        match m.restart.policy {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::OnSuccess => "on-success",
            RestartPolicy::Never => "no",
        },
    );
    if let Some(delay) = m.restart.delay {
        u.key("RestartSec", delay.to_string());
    }
    if m.process_type.is_some() {
        warn(
            warnings,
            "process-type",
            "launchd's ProcessType has no systemd equivalent and is ignored there; use nice (or [systemd.service] CPUWeight/IOWeight)",
        );
    }
    u.extras(&m.systemd.service);

    if m.run_at_load || !m.systemd.install.is_empty() {
        u.section("Install");
        if m.run_at_load {
            u.key("WantedBy", default_target(m.scope));
        }
        u.extras(&m.systemd.install);
    }
    u.text
}

fn socket_unit(m: &Manifest, socket: &crate::manifest::Socket, source: &str) -> String {
    let mut u = Unit::new(source);
    u.section("Unit");
    u.key(
        "Description",
        format!("{} socket {}", description(m), socket.name),
    );
    if !m.documentation.is_empty() {
        u.key(
            "Documentation",
            quote::specifiers(&m.documentation.join(" ")),
        );
    }
    u.extras(&m.systemd.unit);

    u.section("Socket");
    match &socket.listen {
        Listen::Unix(path) => u.key("ListenStream", path_value(path)),
        Listen::Tcp { host, port } => u.key("ListenStream", inet(host.as_deref(), *port)),
        Listen::Udp { host, port } => u.key("ListenDatagram", inet(host.as_deref(), *port)),
    }
    u.key("FileDescriptorName", &socket.name);
    if let Some(mode) = socket.mode {
        u.key("SocketMode", format!("{mode:04o}"));
    }
    if let Some(backlog) = socket.backlog {
        u.key("Backlog", backlog.to_string());
    }
    u.key("Accept", "no");
    if matches!(socket.listen, Listen::Unix(_)) {
        // Stopping the socket removes its path, so uninstall leaves nothing.
        u.key("RemoveOnStop", "yes");
    }
    u.key("Service", m.service_unit());
    u.extras(&m.systemd.socket);

    u.section("Install");
    u.key("WantedBy", "sockets.target");
    u.text
}

fn inet(host: Option<&str>, port: u16) -> String {
    match host {
        Some(h) if h.contains(':') => format!("[{h}]:{port}"),
        Some(h) => format!("{h}:{port}"),
        None => port.to_string(),
    }
}

fn timer_unit(m: &Manifest, source: &str) -> String {
    let schedule = m.schedule.as_ref().expect("only called with a schedule");
    let mut u = Unit::new(source);
    u.section("Unit");
    u.key("Description", format!("{} timer", description(m)));
    if !m.documentation.is_empty() {
        u.key(
            "Documentation",
            quote::specifiers(&m.documentation.join(" ")),
        );
    }
    u.extras(&m.systemd.unit);

    u.section("Timer");
    if let Some(interval) = schedule.interval {
        // First run one interval after the timer starts, then one interval
        // after each run started (launchd's StartInterval).
        u.key("OnActiveSec", interval.to_string());
        u.key("OnUnitActiveSec", interval.to_string());
    }
    if let Some(calendar) = &schedule.calendar {
        u.key("OnCalendar", quote::specifiers(&calendar.expression));
        // Run a missed calendar job at the next chance, as launchd does after sleep.
        u.key("Persistent", "true");
    }
    u.key("Unit", m.service_unit());
    u.extras(&m.systemd.timer);

    u.section("Install");
    u.key("WantedBy", "timers.target");
    u.text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::from_toml(&format!("name = \"t\"\ncommand = [\"/bin/t\"]\n{extra}")).unwrap()
    }

    fn file<'a>(r: &'a Rendered, name: &str) -> &'a str {
        &r.files
            .iter()
            .find(|f| f.path.ends_with(name))
            .unwrap_or_else(|| panic!("no {name}"))
            .contents
    }

    #[test]
    fn placeholders_become_specifiers_and_literals_are_escaped() {
        let m = manifest(
            "working-directory = \"{state}/a%b\"\nenvironment = { P = \"{runtime}/$x%\" }\n",
        );
        let r = render(&m, "t.toml").unwrap();
        let s = file(&r, "t.service");
        assert!(s.contains("WorkingDirectory=%S/a%%b\n"), "{s}");
        assert!(s.contains("Environment=\"P=%t/$x%%\"\n"), "{s}");
    }

    #[test]
    fn socket_activated_service_has_no_install_unless_run_at_load() {
        let sock = "[[socket]]\nlisten = \"unix:{runtime}/t.sock\"\nmode = 0o600\n";
        let r = render(&manifest(sock), "t.toml").unwrap();
        assert!(!file(&r, "t.service").contains("[Install]"));
        let socket = file(&r, "t.socket");
        assert!(
            socket.contains("ListenStream=%t/t.sock\nFileDescriptorName=t\nSocketMode=0600\n"),
            "{socket}"
        );
        assert!(socket.contains("WantedBy=sockets.target"));
        let r = render(&manifest(&format!("run-at-load = true\n{sock}")), "t.toml").unwrap();
        assert!(file(&r, "t.service").contains("[Install]\nWantedBy=default.target\n"));
    }

    #[test]
    fn several_sockets_get_one_unit_each() {
        let r = render(
            &manifest("[[socket]]\nname = \"a\"\nlisten = \"tcp:1\"\n[[socket]]\nname = \"b\"\nlisten = \"udp:[::1]:2\"\n"),
            "t.toml",
        )
        .unwrap();
        assert!(file(&r, "t-a.socket").contains("ListenStream=1\nFileDescriptorName=a\n"));
        assert!(file(&r, "t-b.socket").contains("ListenDatagram=[::1]:2\nFileDescriptorName=b\n"));
        assert!(file(&r, "t.service").contains("Requires=t-a.socket t-b.socket\n"));
    }

    #[test]
    fn system_services_want_multi_user() {
        let r = render(
            &manifest("scope = \"system\"\nuser = \"daemon\"\n"),
            "t.toml",
        )
        .unwrap();
        let s = file(&r, "t.service");
        assert!(s.contains("User=daemon\n"));
        assert!(s.contains("WantedBy=multi-user.target\n"));
    }

    #[test]
    fn restart_limits_go_in_unit_section() {
        let r = render(
            &manifest("[restart]\npolicy = \"on-failure\"\ndelay = 2\nburst = 5\nwindow = 60\n"),
            "t.toml",
        )
        .unwrap();
        let s = file(&r, "t.service");
        let unit = &s[..s.find("[Service]").unwrap()];
        assert!(
            unit.contains("StartLimitIntervalSec=60\nStartLimitBurst=5\n"),
            "{s}"
        );
        assert!(s.contains("Restart=on-failure\nRestartSec=2\n"));
    }

    #[test]
    fn long_unix_path_is_rejected() {
        let long = "x".repeat(100);
        let m = manifest(&format!(
            "[[socket]]\nlisten = \"unix:{{runtime}}/{long}\"\n"
        ));
        let err = render(&m, "t.toml").unwrap_err();
        assert_eq!(err.field, "socket[0].listen");
        assert!(err.message.contains("Linux allows at most 107"), "{err}");
    }

    #[test]
    fn header_names_only_the_file() {
        let r = render(&manifest(""), "/some/where/t.toml").unwrap();
        assert!(file(&r, "t.service").starts_with(
            "# Generated by initkit from t.toml; edit the manifest, not this file.\n[Unit]\n"
        ));
    }
}
