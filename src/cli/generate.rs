//! `initkit generate`: manifests → unit files and plists, printed, written or
//! checked against a directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use initkit::render::{self, launchd, RenderedFile};

use initkit::manifest::Scope;

use super::{load_manifest, Outcome, ScopeArg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    Systemd,
    Launchd,
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files (TOML)
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Which service managers to render for
    #[arg(long, value_enum, default_value_t = Platform::All)]
    pub platform: Platform,
    /// Override the manifests' scope
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Write DIR/units/* and DIR/plists/* (atomically) instead of printing
    #[arg(long, value_name = "DIR", conflicts_with = "destdir")]
    pub out: Option<PathBuf>,
    /// Packaging mode: stage files under DIR in the vendor locations
    /// (PREFIX/lib/systemd/{user,system}, Library/LaunchAgents, Library/LaunchDaemons);
    /// nothing depends on the build host
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<PathBuf>,
    /// Installation prefix inside --destdir
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "/usr",
        requires = "destdir"
    )]
    pub prefix: PathBuf,
    /// With --destdir: also stage initkit's own shell completions and man page
    #[arg(long, requires = "destdir")]
    pub cli_files: bool,
    /// Write nothing; exit 1 with a unified diff when files under --out DIR
    /// (default .) or --destdir DIR differ
    #[arg(long)]
    pub check: bool,
    /// Home of the target user, for launchd agents' per-user paths (default: $HOME;
    /// ignored with --destdir, where per-user launchd paths are an error)
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

/// Where rendered files go, relative to the output directory.
#[derive(Debug, Clone)]
pub enum Layout {
    /// `units/*` and `plists/*`.
    Tree,
    /// The vendor locations a distribution package installs to.
    Packaging { prefix: PathBuf },
}

impl Layout {
    fn place(&self, scope: Scope, file: RenderedFile) -> RenderedFile {
        let Layout::Packaging { prefix } = self else {
            return file;
        };
        let prefix = prefix.strip_prefix("/").unwrap_or(prefix);
        let name = file.file_name().to_owned();
        let dir = match (file.path.starts_with("units"), scope) {
            (true, Scope::User) => prefix.join("lib/systemd/user"),
            (true, Scope::System) => prefix.join("lib/systemd/system"),
            (false, Scope::User) => PathBuf::from("Library/LaunchAgents"),
            (false, Scope::System) => PathBuf::from("Library/LaunchDaemons"),
        };
        RenderedFile {
            path: dir.join(name),
            contents: file.contents,
        }
    }
}

/// Everything to write, rendered before anything is written.
pub struct Plan {
    pub files: Vec<RenderedFile>,
}

/// Parse, validate and render every manifest; nothing is written here.
pub fn plan(
    manifests: &[PathBuf],
    platform: Platform,
    scope: Option<ScopeArg>,
    target: &launchd::Target,
    layout: &Layout,
) -> anyhow::Result<Plan> {
    let mut files: Vec<RenderedFile> = Vec::new();
    for path in manifests {
        let loaded = load_manifest(path)?;
        let mut manifest = loaded.manifest;
        if let Some(scope) = scope {
            manifest = manifest
                .with_scope(scope.into())
                .with_context(|| path.display().to_string())?;
        }
        let source = path.to_string_lossy();
        let mut rendered = Vec::new();
        if matches!(platform, Platform::Systemd | Platform::All) {
            let r = render::systemd::render(&manifest, &source)
                .with_context(|| format!("{}: systemd", path.display()))?;
            for w in &r.warnings {
                eprintln!("initkit: warning: {}: systemd: {w}", path.display());
            }
            rendered.extend(r.files);
        }
        if matches!(platform, Platform::Launchd | Platform::All) {
            let r = launchd::render(&manifest, target, &source)
                .with_context(|| format!("{}: launchd", path.display()))?;
            for w in &r.warnings {
                eprintln!("initkit: warning: {}: launchd: {w}", path.display());
            }
            rendered.extend(r.files);
        }
        for file in rendered {
            let file = layout.place(manifest.scope, file);
            if files.iter().any(|f| f.path == file.path) {
                anyhow::bail!(
                    "{}: {} is also rendered from another manifest (duplicate name or label)",
                    path.display(),
                    file.path.display()
                );
            }
            files.push(file);
        }
    }
    Ok(Plan { files })
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let (layout, target, dir) = if let Some(destdir) = &args.destdir {
        anyhow::ensure!(
            args.prefix.is_absolute(),
            "--prefix must be absolute, got {}",
            args.prefix.display()
        );
        let layout = Layout::Packaging {
            prefix: args.prefix.clone(),
        };
        (layout, launchd::Target::Packaging, Some(destdir.clone()))
    } else {
        let target = super::launchd_target(args.home.as_deref());
        let dir = args
            .out
            .clone()
            .or_else(|| args.check.then(|| PathBuf::from(".")));
        (Layout::Tree, target, dir)
    };
    let mut plan = plan(&args.manifests, args.platform, args.scope, &target, &layout)?;
    if args.cli_files {
        plan.files
            .extend(super::manual::staged_files(&args.prefix)?);
    }
    if args.check {
        return check(&plan, dir.as_deref().unwrap_or(Path::new(".")));
    }
    let Some(dir) = dir else {
        let mut first = true;
        for file in &plan.files {
            if !first {
                println!();
            }
            first = false;
            println!("# ==> {} <==", file.path.display());
            print!("{}", file.contents);
        }
        return Ok(Outcome::Ok);
    };
    for file in &plan.files {
        let path = dir.join(&file.path);
        let parent = path.parent().expect("rendered paths have a directory");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        initkit::fsutil::write_atomic(&path, file.contents.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(Outcome::Ok)
}

/// Compare the plan with files under `dir`; print a unified diff per drift.
pub fn check(plan: &Plan, dir: &Path) -> anyhow::Result<Outcome> {
    let mut drift = 0;
    for file in &plan.files {
        let path = dir.join(&file.path);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if current != file.contents {
            drift += 1;
            let diff = similar::TextDiff::from_lines(&current, &file.contents);
            print!(
                "{}",
                diff.unified_diff().context_radius(3).header(
                    &format!("a/{}", file.path.display()),
                    &format!("b/{}", file.path.display())
                )
            );
        }
    }
    if drift == 0 {
        eprintln!(
            "{} file(s) up to date in {}",
            plan.files.len(),
            dir.display()
        );
        Ok(Outcome::Ok)
    } else {
        eprintln!(
            "{drift} file(s) differ from their manifests in {}",
            dir.display()
        );
        Ok(Outcome::Findings)
    }
}
