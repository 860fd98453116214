//! Packaging mode: `generate --destdir`, completions and the man page.

use std::path::Path;

use crate::support::{initkit, repo_root, run, tree};

fn stage(cwd: &Path, home: &Path, destdir: &Path, extra: &[&str]) -> std::process::Output {
    // Copy the examples so the manifest paths differ between runs too.
    let examples = cwd.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    let mut manifests = Vec::new();
    for name in ["echo.toml", "backup.toml", "webd.toml"] {
        std::fs::copy(repo_root().join("examples").join(name), examples.join(name)).unwrap();
        manifests.push(format!("examples/{name}"));
    }
    run(initkit()
        .current_dir(cwd)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .arg("generate")
        .args(&manifests)
        .args(["--platform", "systemd", "--cli-files", "--destdir"])
        .arg(destdir)
        .args(extra))
}

#[test]
fn two_runs_anywhere_stage_byte_identical_trees() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, home) in [(&a, "/home/alice"), (&b, "/var/tmp/bob-home")] {
        let out = stage(dir.path(), Path::new(home), &dir.path().join("stage"), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ta, tb) = (tree(&a.path().join("stage")), tree(&b.path().join("stage")));
    assert_eq!(ta, tb);
    for rel in &ta {
        let (fa, fb) = (
            std::fs::read(a.path().join("stage").join(rel)).unwrap(),
            std::fs::read(b.path().join("stage").join(rel)).unwrap(),
        );
        assert_eq!(fa, fb, "{} differs between runs", rel.display());
        let text = String::from_utf8_lossy(&fa);
        for leak in [
            "/home/alice",
            "bob-home",
            a.path().to_str().unwrap(),
            b.path().to_str().unwrap(),
        ] {
            assert!(
                !text.contains(leak),
                "{} leaks the build host path {leak}",
                rel.display()
            );
        }
    }
    let names: Vec<String> = ta.iter().map(|p| p.display().to_string()).collect();
    for want in [
        "usr/lib/systemd/user/echo.service",
        "usr/lib/systemd/user/echo-control.socket",
        "usr/lib/systemd/user/backup.timer",
        "usr/lib/systemd/system/webd.service",
        "usr/share/bash-completion/completions/initkit",
        "usr/share/zsh/site-functions/_initkit",
        "usr/share/fish/vendor_completions.d/initkit.fish",
        "usr/share/man/man1/initkit.1",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
}

#[test]
fn check_destdir_reports_drift() {
    let a = tempfile::tempdir().unwrap();
    let stage_dir = a.path().join("stage");
    assert!(stage(a.path(), Path::new("/h"), &stage_dir, &[])
        .status
        .success());
    assert_eq!(
        stage(a.path(), Path::new("/h"), &stage_dir, &["--check"])
            .status
            .code(),
        Some(0)
    );
    let unit = stage_dir.join("usr/lib/systemd/system/webd.service");
    std::fs::write(&unit, "hand edited\n").unwrap();
    let out = stage(a.path(), Path::new("/h"), &stage_dir, &["--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-hand edited"));
}

#[test]
fn launchd_agent_with_per_user_paths_is_an_error_in_packaging_mode() {
    let a = tempfile::tempdir().unwrap();
    let out = run(initkit()
        .arg("generate")
        .arg(repo_root().join("examples/backup.toml"))
        .args(["--platform", "launchd", "--destdir"])
        .arg(a.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("launchd: command[3]: {home}/Documents/ is a per-user path"),
        "{err}"
    );
    assert!(tree(a.path()).is_empty());
    // A system daemon stages fine.
    let out = run(initkit()
        .arg("generate")
        .arg(repo_root().join("examples/webd.toml"))
        .args(["--platform", "launchd", "--destdir"])
        .arg(a.path()));
    assert!(out.status.success());
    assert!(a
        .path()
        .join("Library/LaunchDaemons/org.example.webd.plist")
        .exists());
}

#[test]
fn completions_and_man_page_print() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(initkit().args(["completions", shell]));
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("generate"),
            "{shell} completion lists subcommands"
        );
    }
    let out = run(initkit().arg("man"));
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH initkit"),
        "{page}"
    );
}
