//! Placeholder until this command lands.
use super::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<Outcome> {
    anyhow::bail!("this command is not available yet")
}
