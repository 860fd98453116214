//! TEMPORARY STUB: minimal systemd rendering for the manage branch.
use std::fmt::Write;

use super::{RenderError, Rendered, RenderedFile, GENERATED_MARKER};
use crate::manifest::{Listen, Manifest, Placeholder, Readiness, RestartPolicy, Scope};

fn spec(p: Placeholder) -> String {
    match p {
        Placeholder::Home => "%h",
        Placeholder::Runtime => "%t",
        Placeholder::State => "%S",
        Placeholder::Cache => "%C",
        Placeholder::Logs => "%L",
        Placeholder::Config => "%E",
    }
    .to_owned()
}

pub fn render(m: &Manifest, source_name: &str) -> Result<Rendered, RenderError> {
    let head = format!("# {GENERATED_MARKER} from {source_name}; do not edit\n");
    let mut service = head.clone();
    let _ = writeln!(service, "[Unit]");
    if let Some(d) = &m.description {
        let _ = writeln!(service, "Description={d}");
    }
    for (k, vs) in &m.systemd.unit {
        for v in vs {
            let _ = writeln!(service, "{k}={v}");
        }
    }
    let _ = writeln!(service, "\n[Service]");
    let ty = match m.readiness {
        Readiness::Notify => "notify",
        Readiness::Exec => "exec",
        Readiness::Simple => "simple",
    };
    let _ = writeln!(service, "Type={ty}");
    let argv: Vec<String> = m
        .command
        .iter()
        .map(|t| t.render(spec, |s| s.replace('%', "%%")))
        .collect();
    let _ = writeln!(service, "ExecStart={}", argv.join(" "));
    let restart = match m.restart.policy {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::OnSuccess => "on-success",
        RestartPolicy::Never => "no",
    };
    let _ = writeln!(service, "Restart={restart}");
    if let Some(d) = m.restart.delay {
        let _ = writeln!(service, "RestartSec={d}");
    }
    for (k, vs) in &m.systemd.service {
        for v in vs {
            let _ = writeln!(service, "{k}={v}");
        }
    }
    let target = match m.scope {
        Scope::User => "default.target",
        Scope::System => "multi-user.target",
    };
    if m.run_at_load {
        let _ = writeln!(service, "\n[Install]\nWantedBy={target}");
    }
    let mut files = vec![RenderedFile {
        path: format!("units/{}.service", m.name).into(),
        contents: service,
    }];
    if !m.sockets.is_empty() {
        let mut socket = head;
        let _ = writeln!(socket, "[Socket]");
        for s in &m.sockets {
            match &s.listen {
                Listen::Unix(p) => {
                    let _ = writeln!(
                        socket,
                        "ListenStream={}",
                        p.render(spec, |s| s.replace('%', "%%"))
                    );
                }
                Listen::Tcp { host, port } => {
                    let _ = writeln!(
                        socket,
                        "ListenStream={}{port}",
                        host.as_ref().map(|h| format!("{h}:")).unwrap_or_default()
                    );
                }
                Listen::Udp { host, port } => {
                    let _ = writeln!(
                        socket,
                        "ListenDatagram={}{port}",
                        host.as_ref().map(|h| format!("{h}:")).unwrap_or_default()
                    );
                }
            }
            let _ = writeln!(socket, "FileDescriptorName={}", s.name);
        }
        let _ = writeln!(socket, "\n[Install]\nWantedBy=sockets.target");
        files.push(RenderedFile {
            path: format!("units/{}.socket", m.name).into(),
            contents: socket,
        });
    }
    Ok(Rendered {
        files,
        warnings: Vec::new(),
    })
}
