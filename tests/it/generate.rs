//! `initkit generate` and `initkit verify`: golden files, bad manifests,
//! plist types, and the real systemd-analyze.

use std::path::{Path, PathBuf};

use crate::support::{initkit, repo_root, run, tree};

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 3,
        "examples/ holds the echo, timer and system examples"
    );
    v
}

/// units/ and plists/ are the generated output of examples/*.toml (launchd
/// agents rendered for home /Users/example). UPDATE_GOLDEN=1 rewrites them.
#[test]
fn golden_files_match_examples() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut cmd = initkit();
    cmd.current_dir(repo_root())
        .arg("generate")
        .args(examples())
        .args(["--home", "/Users/example", "--out", "."]);
    if !update {
        cmd.arg("--check");
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "golden files drifted from examples/ (run UPDATE_GOLDEN=1 scripts/test.sh golden):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_drift_with_a_diff_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let echo = repo_root().join("examples/echo.toml");
    let gen = |extra: &[&str]| {
        run(initkit()
            .arg("generate")
            .arg(&echo)
            .args(["--home", "/Users/x", "--out"])
            .arg(dir.path())
            .args(extra))
    };
    assert!(gen(&[]).status.success());
    assert_eq!(gen(&["--check"]).status.code(), Some(0));
    let unit = dir.path().join("units/echo.service");
    let edited = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("RestartSec=1", "RestartSec=9");
    std::fs::write(&unit, edited).unwrap();
    let out = gen(&["--check"]);
    assert_eq!(out.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("-RestartSec=9\n+RestartSec=1\n"), "{diff}");
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("RestartSec=9"),
        "--check writes nothing"
    );
}

#[test]
fn same_manifest_same_bytes_from_anywhere() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let echo = repo_root().join("examples/echo.toml");
    std::fs::copy(&echo, a.path().join("echo.toml")).unwrap();
    let gen = |cwd: &Path, home: &str| {
        run(initkit().current_dir(cwd).env("HOME", home).args([
            "generate",
            "echo.toml",
            "--home",
            "/Users/example",
        ]))
        .stdout
    };
    std::fs::copy(&echo, b.path().join("echo.toml")).unwrap();
    assert_eq!(gen(a.path(), "/root"), gen(b.path(), "/home/other"));
}

/// Bad manifests: each fails with exit 2 and exactly this message, and
/// nothing is written.
#[test]
fn bad_manifests_name_the_field_and_write_nothing() {
    const OK: &str = "command = [\"/bin/d\"]\n";
    let cases: &[(&str, &str)] = &[
        ("name = \"a\\nb\"\n", "name: \"a\\nb\" contains '\\n'; allowed are ASCII letters, digits, '_', '.' and '-'"),
        ("name = \"a/b\"\n", "name: \"a/b\" contains '/'; allowed are ASCII letters, digits, '_', '.' and '-'"),
        ("name = \"..\"\n", "name: \"..\" must not start with '-' or '.'"),
        ("name = \"a..b\"\n", "name: \"a..b\" must not contain \"..\""),
        ("name = \"\"\n", "name: must not be empty"),
        ("name = \"-x\"\n", "name: \"-x\" must not start with '-' or '.'"),
        ("name = \"x\"\nlabel = \"org/x\"\n", "label: \"org/x\" must not contain '/' (the plist file is <label>.plist)"),
        (
            "name = \"x\"\n[[socket]]\nlisten = \"unix:run/x.sock\"\n",
            "socket[0].listen: unix socket path must be absolute or start with a placeholder, got \"run/x.sock\"",
        ),
        (
            "name = \"x\"\n[[socket]]\nlisten = \"tcp:70000\"\n",
            "socket[0].listen: port 70000 is out of range 1..=65535",
        ),
        (
            "name = \"x\"\n[[socket]]\nname = \"c\"\nlisten = \"tcp:1\"\n[[socket]]\nname = \"c\"\nlisten = \"tcp:2\"\n",
            "socket[1].name: duplicate socket name \"c\"",
        ),
        (
            "name = \"x\"\n[[socket]]\nlisten = \"tcp:1\"\n[[socket]]\nlisten = \"tcp:2\"\n",
            "socket[0].name: is required when there is more than one socket",
        ),
        ("name = \"x\"\nuser = \"root\"\n", "user: only allowed with scope = \"system\" (a user service runs as its user)"),
        ("name = \"x\"\nscope = \"galaxy\"\n", "line 3, column 9: unknown variant `galaxy`, expected `user` or `system`"),
        ("name = \"x\"\nnicee = 3\n", "line 3, column 1: unknown field `nicee`"),
        ("name = \"x\"\nnice = 40\n", "nice: must be between -20 and 19, got 40"),
        ("name = \"x\"\n[orphans]\nmatch = [\"a\\u0000\"]\n", "orphans.match[0]: must not contain NUL"),
        ("name = \"x\"\nenvironment = { A = \"\\u0001\" }\n", "environment.A: values may contain tab and newline but no other control character, found '\\u{1}'"),
        ("name = \"x\"\n[restart]\nburst = 3\n", "restart.window: restart.burst and restart.window go together: at most BURST starts within WINDOW seconds"),
        ("name = \"x\"\n[schedule]\ncalendar = \"*-*-* 03:00:30\"\n", "schedule.calendar: seconds \"30\" cannot be expressed on launchd, which runs jobs on whole minutes; use :00"),
    ];
    for (body, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("bad.toml");
        std::fs::write(&manifest, format!("{OK}{body}")).unwrap();
        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let out = run(initkit()
            .arg("generate")
            .arg(&manifest)
            .arg("--out")
            .arg(&out_dir));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        let want = format!("initkit: error: {}: {expected}", manifest.display());
        assert!(
            first.starts_with(&want),
            "{body:?}\n want: {want}\n  got: {first}"
        );
        assert!(tree(&out_dir).is_empty(), "{body}: nothing may be written");
    }
}

#[test]
fn one_bad_manifest_among_good_ones_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x/\"\ncommand = [\"/bin/x\"]\n").unwrap();
    let out = run(initkit()
        .arg("generate")
        .arg(repo_root().join("examples/echo.toml"))
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("out")));
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn plists_reparse_with_real_types() {
    for plist_path in tree(&repo_root().join("plists")) {
        let path = repo_root().join("plists").join(&plist_path);
        let value =
            plist::Value::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            initkit::render::lint::lint(&value),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        let d = value.as_dictionary().unwrap();
        let label = d["Label"].as_string().unwrap();
        assert_eq!(plist_path, PathBuf::from(format!("{label}.plist")));
        assert!(d["RunAtLoad"].as_boolean().is_some());
        assert_eq!(d["AbandonProcessGroup"].as_boolean(), Some(false));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .starts_with("<!-- Generated by initkit from "),
            "{text}"
        );
    }
    let echo = plist::Value::from_file(repo_root().join("plists/org.example.echo.plist")).unwrap();
    let control = &echo.as_dictionary().unwrap()["Sockets"]
        .as_dictionary()
        .unwrap()["control"];
    assert_eq!(
        control.as_dictionary().unwrap()["SockPathMode"],
        plist::Value::Integer(384.into())
    );
}

#[test]
fn verify_passes_on_every_example() {
    let out = run(initkit()
        .arg("verify")
        .arg("--allow-missing-programs")
        .args(examples()));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn verify_reports_what_systemd_analyze_only_logs() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(&m, "name = \"v\"\ncommand = [\"/bin/true\"]\n[systemd.service]\nRestartt = \"always\"\nTimeoutStopSec = \"soon\"\n").unwrap();
    let out = run(initkit().arg("verify").arg(&m));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Unknown key 'Restartt' in section [Service]"),
        "{stdout}"
    );
    assert!(stdout.contains("soon"), "{stdout}");
}

#[test]
fn verify_finds_a_missing_program_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(&m, "name = \"v\"\ncommand = [\"/nonexistent/daemon\"]\n").unwrap();
    let out = run(initkit().arg("verify").arg(&m));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Command /nonexistent/daemon is not executable"));
    assert!(run(initkit()
        .arg("verify")
        .arg("--allow-missing-programs")
        .arg(&m))
    .status
    .success());
}

#[test]
fn verify_without_systemd_analyze_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(initkit()
        .env("PATH", dir.path())
        .arg("verify")
        .arg(repo_root().join("examples/echo.toml")));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("systemd-analyze is not installed"));
}
