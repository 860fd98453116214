//! Bad and hostile input: property tests over manifest parsing and rendering,
//! and an injection table. Each hostile value is rejected or escaped; nothing
//! lands outside the output directory.
//!
//! CI runs proptest's default 256 cases per property. For a long run:
//! `PROPTEST_CASES=200000 cargo test --test it hostile`.

use initkit::manifest::Manifest;
use initkit::render::{launchd, quote, systemd};
use proptest::prelude::*;

use crate::support::{initkit, run, toml_string, tree};

/// Arguments without NUL and without placeholder names (which are not literal
/// by design).
fn arg() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\\x00{]{0,16}").unwrap()
}

fn user() -> launchd::Target {
    launchd::Target::User {
        home: "/Users/p".into(),
    }
}

proptest! {
    /// Arbitrary text never panics the parser; it parses or errors.
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        let _ = Manifest::from_toml(&text);
    }

    /// Arbitrary key/value soup in an otherwise valid manifest never panics
    /// validation or rendering.
    #[test]
    fn render_never_panics(
        name in "[A-Za-z0-9_.-]{0,70}",
        key in "[a-z-]{1,20}",
        value in "\\PC{0,40}",
    ) {
        let text = format!("name = {}\ncommand = [\"/bin/x\"]\n{key} = {}\n", toml_string(&name), toml_string(&value));
        if let Ok(m) = Manifest::from_toml(&text) {
            let _ = systemd::render(&m, "p.toml");
            let _ = launchd::render(&m, &user(), "p.toml");
        }
    }

    /// Whatever argv a manifest carries, the ExecStart= line decodes back to
    /// it under systemd's rules, and the plist carries it unchanged.
    #[test]
    fn argv_survives_both_renderers(args in proptest::collection::vec(arg(), 0..6)) {
        let mut text = String::from("name = \"p\"\ncommand = [\"/bin/p\"");
        for a in &args {
            text.push_str(", ");
            text.push_str(&toml_string(a));
        }
        text.push_str("]\n");
        let m = Manifest::from_toml(&text).unwrap();
        let units = systemd::render(&m, "p.toml").unwrap();
        let service = &units.files[0].contents;
        let line = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        let mut want: Vec<Vec<u8>> = vec![b"/bin/p".to_vec()];
        want.extend(args.iter().map(|a| a.as_bytes().to_vec()));
        prop_assert_eq!(quote::decode_exec_line(line).unwrap(), want);
        // Exactly one line per key: nothing the argument held starts a new one.
        let sections: Vec<&str> = service.lines().filter(|l| l.starts_with('[')).collect();
        prop_assert_eq!(sections, vec!["[Unit]", "[Service]", "[Install]"]);

        let xml_safe = args.iter().all(|a| !a.chars().any(|c| c.is_control() && c != '\t' && c != '\n'));
        match launchd::render(&m, &user(), "p.toml") {
            Ok(r) => {
                prop_assert!(xml_safe);
                let v = plist::Value::from_reader_xml(r.files[0].contents.as_bytes()).unwrap();
                let got: Vec<String> = v.as_dictionary().unwrap()["ProgramArguments"].as_array().unwrap()
                    .iter().map(|s| s.as_string().unwrap().to_owned()).collect();
                let mut want = vec!["/bin/p".to_owned()];
                want.extend(args.iter().cloned());
                prop_assert_eq!(got, want);
            }
            Err(e) => prop_assert!(!xml_safe, "{e}"),
        }
    }
}

/// Each hostile manifest is rejected with an error naming the field, or
/// rendered with the value escaped; nothing lands outside --out.
#[test]
fn injection_table() {
    enum Expect {
        Rejected(&'static str),
        /// Renders; the closure checks the escaped output.
        Escaped(fn(&str)),
    }
    let long = "x".repeat(120);
    let long_path = format!(
        "name = \"l\"\ncommand = [\"/bin/x\"]\n[[socket]]\nlisten = \"unix:/run/{long}\"\n"
    );
    let cases: Vec<(&str, String, Expect)> = vec![
        ("newline + section in name", "name = \"a\\n[Service]\"\ncommand = [\"/bin/x\"]\n".into(), Expect::Rejected("name: ")),
        ("newline + section in description", "name = \"a\"\ndescription = \"d\\n[Service]\\nExecStartPre=/bin/evil\"\ncommand = [\"/bin/x\"]\n".into(), Expect::Rejected("description: must be one line")),
        ("slash in name", "name = \"../etc/passwd\"\ncommand = [\"/bin/x\"]\n".into(), Expect::Rejected("name: ")),
        ("dotdot name", "name = \"..\"\ncommand = [\"/bin/x\"]\n".into(), Expect::Rejected("name: ")),
        ("slash in label", "name = \"a\"\nlabel = \"../../x\"\ncommand = [\"/bin/x\"]\n".into(), Expect::Rejected("label: ")),
        ("newline in extra key value", "name = \"a\"\ncommand = [\"/bin/x\"]\n[systemd.service]\nNice = \"1\\n[Install]\"\n".into(), Expect::Rejected("systemd.service.Nice: must be one line")),
        ("dotdot in socket path", "name = \"a\"\ncommand = [\"/bin/x\"]\n[[socket]]\nlisten = \"unix:/run/../etc/x\"\n".into(), Expect::Rejected("socket[0].listen: unix socket path must not contain")),
        ("over-long socket path", long_path, Expect::Rejected("systemd: socket[0].listen: unix socket path /run/xxx")),
        (
            "section header in an argument",
            "name = \"a\"\ncommand = [\"/bin/x\", \"\\n[Service]\\nExecStartPre=/bin/evil\"]\n".into(),
            Expect::Escaped(|unit| {
                assert!(!unit.contains("\nExecStartPre="), "{unit}");
                assert!(unit.contains("\\x0a[Service]\\x0aExecStartPre=/bin/evil"), "{unit}");
            }),
        ),
        (
            "section header in an environment value",
            "name = \"a\"\ncommand = [\"/bin/x\"]\nenvironment = { E = \"v\\n[Install]\\nWantedBy=evil\" }\n".into(),
            Expect::Escaped(|unit| {
                assert!(!unit.lines().any(|l| l == "WantedBy=evil"), "{unit}");
                assert!(unit.contains("Environment=\"E=v\\x0a[Install]\\x0aWantedBy=evil\""), "{unit}");
            }),
        ),
        (
            "plist markup in an argument",
            "name = \"a\"\ncommand = [\"/bin/x\", \"</string><key>KeepAlive</key><true/><string>\"]\n".into(),
            Expect::Escaped(|_| {}),
        ),
    ];
    for (what, manifest, expect) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, &manifest).unwrap();
        let out_dir = dir.path().join("out");
        let out = run(initkit()
            .arg("generate")
            .arg(&path)
            .args(["--home", "/Users/h", "--out"])
            .arg(&out_dir));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match expect {
            Expect::Rejected(prefix) => {
                assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
                let want = format!("initkit: error: {}: {prefix}", path.display());
                assert!(
                    stderr.contains(&want),
                    "{what}:\n want {want}\n  got {stderr}"
                );
                assert!(!out_dir.exists(), "{what}: nothing may be written");
            }
            Expect::Escaped(check) => {
                assert!(out.status.success(), "{what}: {stderr}");
                check(&std::fs::read_to_string(out_dir.join("units/a.service")).unwrap());
                let plist =
                    plist::Value::from_file(out_dir.join("plists/initkit.a.plist")).unwrap();
                let d = plist.as_dictionary().unwrap();
                assert!(!d.contains_key("KeepAlive"), "{what}: markup became a key");
            }
        }
        // Whatever happened, nothing landed outside out/.
        let all = tree(dir.path());
        assert!(
            all.iter()
                .all(|p| p == std::path::Path::new("m.toml") || p.starts_with("out")),
            "{what}: {all:?}"
        );
    }
}

/// Symlinks pre-planted where initkit writes: a write replaces the link
/// (temp file + rename), it never follows it, so the file the link points at
/// is untouched and nothing lands outside the target directory.
#[test]
fn planted_symlinks_are_replaced_not_followed() {
    for destdir in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.toml");
        std::fs::write(&manifest, "name = \"a\"\ncommand = [\"/bin/x\"]\n").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "not yours\n").unwrap();
        let out_dir = dir.path().join("out");
        let unit = if destdir {
            out_dir.join("usr/lib/systemd/user/a.service")
        } else {
            out_dir.join("units/a.service")
        };
        std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &unit).unwrap();

        let mut cmd = initkit();
        cmd.arg("generate")
            .arg(&manifest)
            .args(["--platform", "systemd"]);
        if destdir {
            cmd.arg("--destdir").arg(&out_dir);
        } else {
            cmd.args(["--home", "/Users/h", "--out"]).arg(&out_dir);
        }
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "destdir {destdir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "not yours\n",
            "destdir {destdir}: the link target was written through"
        );
        let meta = std::fs::symlink_metadata(&unit).unwrap();
        assert!(meta.file_type().is_file(), "destdir {destdir}: {meta:?}");
        assert!(std::fs::read_to_string(&unit)
            .unwrap()
            .contains("ExecStart=\"/bin/x\""));
    }
}

/// A symlink planted at the unit path `initkit install` writes: without
/// `--force` it is refused (its target has no initkit header) and left as
/// it is; with `--force` the link itself is replaced. The file it points at
/// is never written.
#[test]
fn install_never_writes_through_a_planted_symlink() {
    use crate::support::{ik, unit_dir, user_manager, Service};
    let Some(mgr) = user_manager() else { return };
    let svc = Service::new(&mgr, "plant", &["/bin/sleep".into(), "60".into()], "");
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim.service");
    std::fs::write(&victim, "[Service]\nExecStart=/bin/true\n").unwrap();
    std::fs::create_dir_all(unit_dir()).unwrap();
    let unit = unit_dir().join(svc.unit("service"));
    std::os::unix::fs::symlink(&victim, &unit).unwrap();

    let manifest = svc.manifest();
    let refused = ik(&mgr, &["install", "--no-start", manifest.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(std::fs::symlink_metadata(&unit)
        .unwrap()
        .file_type()
        .is_symlink());

    let forced = ik(
        &mgr,
        &[
            "install",
            "--no-start",
            "--force",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(forced.status.success(), "{forced:?}");
    assert!(std::fs::symlink_metadata(&unit)
        .unwrap()
        .file_type()
        .is_file());
    assert!(std::fs::read_to_string(&unit)
        .unwrap()
        .contains("Generated by initkit"));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "[Service]\nExecStart=/bin/true\n",
        "the link target was written through"
    );
}
