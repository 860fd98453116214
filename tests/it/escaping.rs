//! Escaping against a real systemd: render a unit whose argv and environment
//! are hostile, start it under the real user manager, and compare what the
//! program received byte for byte.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;

use crate::support::{initkit, run, toml_string, unique_name, user_manager, wait_until};

const HOSTILE_ARGS: &[&str] = &[
    "two words",
    "double\"quote",
    "single'quote",
    "back\\slash",
    "trailing\\",
    "100%",
    "%t",
    "%%",
    "$",
    "$HOME",
    "${X}",
    "$$",
    ";",
    "a;b",
    "#comment",
    "-leading-dash",
    "@leading-at",
    "tab\there",
    "new\nline",
    "ünïcödé ✓",
    "",
    "\"\"",
    "{notaplaceholder}",
    "  padded  ",
];

const HOSTILE_ENV: &[(&str, &str)] = &[
    ("IKT_SPACES", "a b  c"),
    ("IKT_QUOTES", "\"'\""),
    ("IKT_BACKSLASH", "C:\\dir\\"),
    ("IKT_PERCENT", "%t %% 100%"),
    ("IKT_DOLLAR", "$HOME ${X} $$"),
    ("IKT_HASH", "#;"),
    ("IKT_TAB_NL", "a\tb\nc"),
    ("IKT_UNICODE", "ünï ✓"),
    ("IKT_EMPTY", ""),
];

fn split_nul(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if bytes.last() == Some(&0) {
        parts.pop();
    }
    parts
}

#[test]
fn hostile_argv_and_environment_arrive_byte_for_byte() {
    let Some(manager) = user_manager() else {
        return;
    };
    let name = unique_name("esc");
    let work = tempfile::tempdir().unwrap();
    // The program records its own argv and environment from /proc.
    let program = work.path().join("record");
    std::fs::write(
        &program,
        "#!/bin/sh\ncat /proc/$$/cmdline > \"$IKT_OUT/argv.tmp\"\ncat /proc/$$/environ > \"$IKT_OUT/env.tmp\"\nmv \"$IKT_OUT/env.tmp\" \"$IKT_OUT/env\"\nmv \"$IKT_OUT/argv.tmp\" \"$IKT_OUT/argv\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut manifest = format!(
        "name = \"{name}\"\nreadiness = \"exec\"\nrun-at-load = false\ncommand = [{}",
        toml_string(program.to_str().unwrap())
    );
    for arg in HOSTILE_ARGS {
        manifest.push_str(", ");
        manifest.push_str(&toml_string(arg));
    }
    manifest.push_str("]\n[environment]\n");
    let _ = writeln!(
        manifest,
        "IKT_OUT = {}",
        toml_string(work.path().to_str().unwrap())
    );
    for (k, v) in HOSTILE_ENV {
        let _ = writeln!(manifest, "{k} = {}", toml_string(v));
    }
    let manifest_path = work.path().join("m.toml");
    std::fs::write(&manifest_path, manifest).unwrap();

    // Render with the real binary into the manager's runtime unit directory.
    let unit_dir = manager.runtime_dir.join("systemd/user");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let out = run(initkit()
        .arg("generate")
        .arg(&manifest_path)
        .args(["--platform", "systemd", "--out"])
        .arg(work.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = format!("{name}.service");
    let unit_path = unit_dir.join(&unit);
    std::fs::copy(work.path().join("units").join(&unit), &unit_path).unwrap();

    let cleanup = || {
        let _ = run(manager.systemctl().args(["stop", &unit]));
        let _ = std::fs::remove_file(&unit_path);
        let _ = run(manager.systemctl().arg("daemon-reload"));
    };
    assert!(run(manager.systemctl().arg("daemon-reload"))
        .status
        .success());
    let start = run(manager.systemctl().args(["start", &unit]));
    let recorded = wait_until(10.0, || work.path().join("argv").exists());
    let status = String::from_utf8_lossy(
        &run(manager.systemctl().args(["status", "--no-pager", &unit])).stdout,
    )
    .into_owned();
    cleanup();
    assert!(
        start.status.success(),
        "start failed: {}\n{status}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert!(recorded, "the unit never ran its program:\n{status}");

    // /proc/PID/cmdline of a script is: interpreter, script path, argv[1..].
    let argv = split_nul(&std::fs::read(work.path().join("argv")).unwrap());
    assert_eq!(argv[0], b"/bin/sh");
    assert_eq!(argv[1], program.to_str().unwrap().as_bytes());
    let got: Vec<String> = argv[2..]
        .iter()
        .map(|a| String::from_utf8(a.clone()).unwrap())
        .collect();
    assert_eq!(got, HOSTILE_ARGS, "argv differs");

    let env = split_nul(&std::fs::read(work.path().join("env")).unwrap());
    for (k, v) in HOSTILE_ENV {
        let want = format!("{k}={v}").into_bytes();
        assert!(
            env.contains(&want),
            "{k}: expected {v:?} in the environment, got {:?}",
            env.iter()
                .map(|e| String::from_utf8_lossy(e))
                .filter(|e| e.starts_with(k))
                .collect::<Vec<_>>()
        );
    }
}
