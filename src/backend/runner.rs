//! One runner for external commands (`launchctl`): it records program, args,
//! exit status and stderr, so every failure says exactly what ran.
//!
//! [`Runner`] is a trait so the launchd backend's command sequences (e.g. the
//! bootstrap retry) can be exercised with a recording fake on Linux; the real
//! implementation is [`System`].

use std::ffi::OsString;
use std::fmt;
use std::process::Command;

/// What a finished command reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A command that could not run or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub struct CommandError {
    pub program: String,
    pub args: Vec<OsString>,
    /// `None` when it could not be spawned or was killed by a signal.
    pub code: Option<i32>,
    pub stderr: String,
    /// Set when spawning failed (part of the message, not a chained source).
    pub spawn: Option<std::io::Error>,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program)?;
        for arg in &self.args {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        match (&self.spawn, self.code) {
            (Some(err), _) => write!(f, ": could not run: {err}"),
            (None, Some(code)) => write!(f, ": exit status {code}"),
            (None, None) => write!(f, ": killed by a signal"),
        }?;
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            write!(f, ": {stderr}")?;
        }
        Ok(())
    }
}

/// Runs external commands.
pub trait Runner {
    /// Run `program args` to completion; spawning failures are errors, a
    /// non-zero exit is not (the caller decides, see [`check`]).
    fn run(&self, program: &str, args: &[OsString]) -> Result<CommandOutput, CommandError>;
}

/// Turn a non-zero exit into a [`CommandError`].
pub fn check(
    program: &str,
    args: &[OsString],
    out: CommandOutput,
) -> Result<CommandOutput, CommandError> {
    if out.success() {
        Ok(out)
    } else {
        Err(CommandError {
            program: program.to_owned(),
            args: args.to_vec(),
            code: out.code,
            stderr: if out.stderr.trim().is_empty() {
                // launchctl prints some errors on stdout
                out.stdout
            } else {
                out.stderr
            },
            spawn: None,
        })
    }
}

/// The real runner: `std::process::Command`.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Runner for System {
    fn run(&self, program: &str, args: &[OsString]) -> Result<CommandOutput, CommandError> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|err| CommandError {
                program: program.to_owned(),
                args: args.to_vec(),
                code: None,
                stderr: String::new(),
                spawn: Some(err),
            })?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_runner_keeps_status_and_stderr() {
        let args: Vec<OsString> = vec!["-c".into(), "echo oops >&2; exit 3".into()];
        let out = System.run("sh", &args).unwrap();
        assert_eq!(out.code, Some(3));
        let err = check("sh", &args, out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sh -c echo oops >&2; exit 3: exit status 3: oops"
        );
    }

    #[test]
    fn missing_program_is_an_error_naming_it() {
        let err = System.run("/nonexistent/launchctl", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/launchctl: could not run:"),
            "{err}"
        );
    }
}
