//! `initkit verify`: validate, render, then check the units with
//! `systemd-analyze verify` and the plists with the launchd.plist(5) lint.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use initkit::manifest::Scope;
use initkit::render::{self, launchd, lint};

use super::{load_manifest, Outcome, ScopeArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files (TOML)
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Override the manifests' scope
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Home of the target user, for launchd agents' per-user paths (default: $HOME)
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Report a program that does not exist on this machine as a note, not a
    /// finding (for build hosts, where the daemon is not installed yet)
    #[arg(long)]
    pub allow_missing_programs: bool,
}

/// systemd-analyze's words for an ExecStart= program that is not there.
fn is_missing_program(line: &str) -> bool {
    line.contains(": Command ") && line.ends_with("is not executable: No such file or directory")
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let target = super::launchd_target(args.home.as_deref());
    let mut findings = 0usize;
    for path in &args.manifests {
        let mut manifest = load_manifest(path)?.manifest;
        if let Some(scope) = args.scope {
            manifest = manifest
                .with_scope(scope.into())
                .with_context(|| path.display().to_string())?;
        }
        let source = path.to_string_lossy();
        let units = render::systemd::render(&manifest, &source)
            .with_context(|| format!("{}: systemd", path.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("initkit-verify.")
            .tempdir()
            .context("cannot create a temp dir")?;
        let mut files = Vec::new();
        for file in &units.files {
            let p = dir.path().join(file.file_name());
            std::fs::write(&p, &file.contents)
                .with_context(|| format!("cannot write {}", p.display()))?;
            files.push(p);
        }
        for line in systemd_analyze(manifest.scope, &files, dir.path())? {
            if args.allow_missing_programs && is_missing_program(&line) {
                println!("{}: note: {line}", path.display());
            } else {
                println!("{}: systemd: {line}", path.display());
                findings += 1;
            }
        }

        let plist = launchd::render(&manifest, &target, &source)
            .with_context(|| format!("{}: launchd", path.display()))?;
        for file in &plist.files {
            let value =
                plist::Value::from_reader_xml(file.contents.as_bytes()).with_context(|| {
                    format!(
                        "{}: {} does not parse back",
                        path.display(),
                        file.path.display()
                    )
                })?;
            for finding in lint::lint(&value) {
                println!(
                    "{}: launchd: {}: {finding}",
                    path.display(),
                    file.file_name()
                );
                findings += 1;
            }
        }
        for w in units
            .warnings
            .iter()
            .map(|w| ("systemd", w))
            .chain(plist.warnings.iter().map(|w| ("launchd", w)))
        {
            eprintln!("initkit: warning: {}: {}: {}", path.display(), w.0, w.1);
        }
        if findings == 0 {
            eprintln!(
                "{}: ok ({} unit(s), {} plist(s))",
                path.display(),
                units.files.len(),
                plist.files.len()
            );
        }
    }
    Ok(if findings == 0 {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

/// Run `systemd-analyze verify` on the files; every line it prints is a
/// finding (it exits 0 on unknown keys and unparsable values, which it only
/// logs). Paths of the temp dir are shortened to file names.
fn systemd_analyze(
    scope: Scope,
    files: &[PathBuf],
    dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg("--man=no").arg("--generators=no");
    if scope == Scope::User {
        cmd.arg("--user");
        // Offline verification of user units needs XDG_RUNTIME_DIR set; any
        // directory will do.
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            cmd.env("XDG_RUNTIME_DIR", dir);
        }
    }
    cmd.args(files);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("systemd-analyze is not installed, so the units cannot be verified (install systemd, e.g. apt-get install systemd)")
        }
        Err(e) => return Err(e).context("cannot run systemd-analyze"),
    };
    let prefix = format!("{}/", dir.display());
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.replace(&prefix, ""))
        .collect();
    if !out.status.success() && lines.is_empty() {
        lines.push(format!(
            "systemd-analyze verify failed ({}) without saying why",
            out.status
        ));
    }
    Ok(lines)
}
