//! A lint for launchd property lists against the key types launchd.plist(5)
//! documents. Pure: it takes a parsed plist and returns findings.
//!
//! launchd ignores keys it does not know and silently drops values of the
//! wrong type (a `"30"` string where an integer belongs), so these mistakes
//! only show on a Mac at run time. The lint catches them anywhere.

use plist::Value;

/// What a key's value must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    String,
    Integer,
    Bool,
    StringArray,
    StringDict,
    /// `KeepAlive`: a bool, or a dict of conditions.
    BoolOrDict,
    /// `StartCalendarInterval`: a dict of integers, or an array of them.
    Calendar,
    Sockets,
    Dict,
    /// Any value: checked no further.
    Any,
}

/// Top-level keys of launchd.plist(5) and their types.
const KEYS: &[(&str, Kind)] = &[
    ("AbandonProcessGroup", Kind::Bool),
    ("AssociatedBundleIdentifiers", Kind::Any),
    ("Debug", Kind::Bool),
    ("Disabled", Kind::Bool),
    ("EnableGlobbing", Kind::Bool),
    ("EnablePressuredExit", Kind::Bool),
    ("EnableTransactions", Kind::Bool),
    ("EnvironmentVariables", Kind::StringDict),
    ("ExitTimeOut", Kind::Integer),
    ("GroupName", Kind::String),
    ("HardResourceLimits", Kind::Dict),
    ("InitGroups", Kind::Bool),
    ("KeepAlive", Kind::BoolOrDict),
    ("Label", Kind::String),
    ("LaunchEvents", Kind::Dict),
    ("LaunchOnlyOnce", Kind::Bool),
    ("LimitLoadFromHosts", Kind::StringArray),
    ("LimitLoadToHosts", Kind::StringArray),
    ("LimitLoadToSessionType", Kind::Any),
    ("LowPriorityBackgroundIO", Kind::Bool),
    ("LowPriorityIO", Kind::Bool),
    ("MachServices", Kind::Dict),
    ("MaterializeDatalessFiles", Kind::Bool),
    ("Nice", Kind::Integer),
    ("ProcessType", Kind::String),
    ("Program", Kind::String),
    ("ProgramArguments", Kind::StringArray),
    ("QueueDirectories", Kind::StringArray),
    ("RootDirectory", Kind::String),
    ("RunAtLoad", Kind::Bool),
    ("SessionCreate", Kind::Bool),
    ("Sockets", Kind::Sockets),
    ("SoftResourceLimits", Kind::Dict),
    ("StandardErrorPath", Kind::String),
    ("StandardInPath", Kind::String),
    ("StandardOutPath", Kind::String),
    ("StartCalendarInterval", Kind::Calendar),
    ("StartInterval", Kind::Integer),
    ("StartOnMount", Kind::Bool),
    ("ThrottleInterval", Kind::Integer),
    ("TimeOut", Kind::Integer),
    ("Umask", Kind::Integer),
    ("UserName", Kind::String),
    ("WaitForDebugger", Kind::Bool),
    ("WatchPaths", Kind::StringArray),
    ("WorkingDirectory", Kind::String),
    ("inetdCompatibility", Kind::Dict),
];

const SOCKET_KEYS: &[(&str, Kind)] = &[
    ("Bonjour", Kind::Any),
    ("MulticastGroup", Kind::String),
    ("SecureSocketWithKey", Kind::String),
    ("SockFamily", Kind::String),
    ("SockNodeName", Kind::String),
    ("SockPassive", Kind::Bool),
    ("SockPathMode", Kind::Integer),
    ("SockPathName", Kind::String),
    ("SockProtocol", Kind::String),
    ("SockServiceName", Kind::Any),
    ("SockType", Kind::String),
];

const CALENDAR_KEYS: &[&str] = &["Minute", "Hour", "Day", "Weekday", "Month"];

/// Every problem found in a launchd plist, each naming the key path.
pub fn lint(plist: &Value) -> Vec<String> {
    let mut findings = Vec::new();
    let Some(dict) = plist.as_dictionary() else {
        return vec!["the top level must be a dict".into()];
    };
    for required in ["Label"] {
        if !dict.contains_key(required) {
            findings.push(format!("{required}: required key is missing"));
        }
    }
    if !dict.contains_key("Program") && !dict.contains_key("ProgramArguments") {
        findings.push("ProgramArguments: Program or ProgramArguments is required".into());
    }
    if let Some(label) = dict.get("Label").and_then(Value::as_string) {
        if label.contains('/') {
            findings.push(format!("Label: {label:?} must not contain '/'"));
        }
    }
    for (key, value) in dict {
        match KEYS.iter().find(|(k, _)| k == key) {
            None => findings.push(format!(
                "{key}: not a launchd.plist(5) key (launchd ignores it)"
            )),
            Some((_, kind)) => check(key, *kind, value, &mut findings),
        }
    }
    if let Some(pt) = dict.get("ProcessType").and_then(Value::as_string) {
        if !matches!(pt, "Background" | "Standard" | "Adaptive" | "Interactive") {
            findings.push(format!(
                "ProcessType: {pt:?} is not Background, Standard, Adaptive or Interactive"
            ));
        }
    }
    findings
}

fn check(path: &str, kind: Kind, value: &Value, findings: &mut Vec<String>) {
    let mut wrong = |expected: &str| {
        findings.push(format!(
            "{path}: must be {expected}, found {}",
            type_name(value)
        ));
    };
    match kind {
        Kind::Any => {}
        Kind::String => {
            if value.as_string().is_none() {
                wrong("a string");
            }
        }
        Kind::Integer => {
            if value.as_signed_integer().is_none() {
                wrong("an integer");
            }
        }
        Kind::Bool => {
            if value.as_boolean().is_none() {
                wrong("a boolean");
            }
        }
        Kind::Dict => {
            if value.as_dictionary().is_none() {
                wrong("a dict");
            }
        }
        Kind::StringArray => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(&format!("{path}[{i}]"), Kind::String, item, findings);
                }
            }
            None => wrong("an array of strings"),
        },
        Kind::StringDict => match value.as_dictionary() {
            Some(d) => {
                for (k, v) in d {
                    check(&format!("{path}.{k}"), Kind::String, v, findings);
                }
            }
            None => wrong("a dict of strings"),
        },
        Kind::BoolOrDict => {
            if value.as_boolean().is_none() && value.as_dictionary().is_none() {
                wrong("a boolean or a dict");
            }
            if let Some(d) = value.as_dictionary() {
                for (k, v) in d {
                    let sub = format!("{path}.{k}");
                    match k.as_str() {
                        "SuccessfulExit" | "Crashed" => check(&sub, Kind::Bool, v, findings),
                        "PathState" | "OtherJobEnabled" => check(&sub, Kind::Dict, v, findings),
                        "NetworkState" | "AfterInitialDemand" => {}
                        _ => findings.push(format!("{sub}: not a KeepAlive condition")),
                    }
                }
            }
        }
        Kind::Calendar => {
            let dicts: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for (i, d) in dicts.into_iter().enumerate() {
                let sub = if value.as_array().is_some() {
                    format!("{path}[{i}]")
                } else {
                    path.to_owned()
                };
                match d.as_dictionary() {
                    None => findings.push(format!("{sub}: must be a dict of integers")),
                    Some(d) => {
                        for (k, v) in d {
                            if CALENDAR_KEYS.contains(&k.as_str()) {
                                check(&format!("{sub}.{k}"), Kind::Integer, v, findings);
                            } else {
                                findings.push(format!(
                                    "{sub}.{k}: not one of Minute, Hour, Day, Weekday, Month"
                                ));
                            }
                        }
                    }
                }
            }
        }
        Kind::Sockets => sockets(value, findings),
    }
}

fn sockets(value: &Value, findings: &mut Vec<String>) {
    let Some(d) = value.as_dictionary() else {
        findings.push(format!(
            "Sockets: must be a dict, found {}",
            type_name(value)
        ));
        return;
    };
    for (name, socket) in d {
        let entries: Vec<&Value> = match socket {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for s in entries {
            let path = format!("Sockets.{name}");
            let Some(sd) = s.as_dictionary() else {
                findings.push(format!("{path}: must be a dict, found {}", type_name(s)));
                continue;
            };
            for (k, v) in sd {
                let sub = format!("{path}.{k}");
                match SOCKET_KEYS.iter().find(|(key, _)| key == k) {
                    None => findings.push(format!("{sub}: not a launchd socket key")),
                    Some((_, kind)) => check(&sub, *kind, v, findings),
                }
            }
            if let Some(t) = sd.get("SockType").and_then(Value::as_string) {
                if !matches!(t, "stream" | "dgram" | "seqpacket") {
                    findings.push(format!(
                        "{path}.SockType: {t:?} is not stream, dgram or seqpacket"
                    ));
                }
            }
            if let Some(f) = sd.get("SockFamily").and_then(Value::as_string) {
                if !matches!(f, "IPv4" | "IPv6" | "IPv4v6" | "Unix") {
                    findings.push(format!(
                        "{path}.SockFamily: {f:?} is not IPv4, IPv6, IPv4v6 or Unix"
                    ));
                }
            }
            if let Some(p) = sd.get("SockPathName").and_then(Value::as_string) {
                if !p.starts_with('/') {
                    findings.push(format!("{path}.SockPathName: {p:?} is not absolute"));
                }
                if p.len() > super::UNIX_PATH_MAX_MACOS {
                    findings.push(format!(
                        "{path}.SockPathName: longer than {} bytes",
                        super::UNIX_PATH_MAX_MACOS
                    ));
                }
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        Value::Dictionary(_) => "a dict",
        Value::Boolean(_) => "a boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real",
        Value::Integer(_) => "an integer",
        Value::String(_) => "a string",
        _ => "an unknown value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Value {
        Value::from_reader_xml(xml.as_bytes()).unwrap()
    }

    #[test]
    fn string_where_integer_belongs_is_a_finding() {
        let v = parse(
            r#"<plist version="1.0"><dict><key>Label</key><string>a</string>
            <key>ProgramArguments</key><array><string>/x</string></array>
            <key>ThrottleInterval</key><string>10</string>
            <key>Sockets</key><dict><key>c</key><dict><key>SockPathMode</key><string>0600</string></dict></dict>
            <key>KeepAlive</key><dict><key>SuccessfulExit</key><string>no</string></dict>
            <key>Bogus</key><true/></dict></plist>"#,
        );
        let f = lint(&v);
        assert!(
            f.contains(&"ThrottleInterval: must be an integer, found a string".to_owned()),
            "{f:?}"
        );
        assert!(
            f.contains(&"Sockets.c.SockPathMode: must be an integer, found a string".to_owned()),
            "{f:?}"
        );
        assert!(
            f.contains(&"KeepAlive.SuccessfulExit: must be a boolean, found a string".to_owned()),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.starts_with("Bogus: not a launchd.plist(5) key")),
            "{f:?}"
        );
    }

    #[test]
    fn a_good_plist_is_clean() {
        let v = parse(
            r#"<plist version="1.0"><dict><key>Label</key><string>a</string>
            <key>ProgramArguments</key><array><string>/x</string></array>
            <key>StartCalendarInterval</key><array><dict><key>Hour</key><integer>3</integer></dict></array>
            <key>Sockets</key><dict><key>c</key><dict><key>SockPathName</key><string>/tmp/c</string><key>SockType</key><string>stream</string></dict></dict>
            </dict></plist>"#,
        );
        assert_eq!(lint(&v), Vec::<String>::new());
    }
}
