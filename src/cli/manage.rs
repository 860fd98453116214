//! Placeholder until these commands land.
use super::Outcome;

#[derive(Debug, clap::Args)]
pub struct InstallArgs {}
#[derive(Debug, clap::Args)]
pub struct NameArgs {}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
#[derive(Debug, clap::Args)]
pub struct LogsArgs {}

fn not_yet() -> anyhow::Result<Outcome> {
    anyhow::bail!("this command is not available yet")
}
pub fn install(_: &InstallArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn uninstall(_: &NameArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn start(_: &NameArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn stop(_: &NameArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn restart(_: &NameArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn status(_: &StatusArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
pub fn logs(_: &LogsArgs) -> anyhow::Result<Outcome> {
    not_yet()
}
