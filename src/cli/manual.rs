//! Shell completions and the man page, printed or staged for packaging.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;
use initkit::render::RenderedFile;

use super::{Cli, Outcome};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "initkit", &mut buf);
    buf
}

fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    Ok(buf)
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    std::io::stdout().write_all(&completion(args.shell))?;
    Ok(Outcome::Ok)
}

pub fn man() -> anyhow::Result<Outcome> {
    std::io::stdout().write_all(&man_page()?)?;
    Ok(Outcome::Ok)
}

/// initkit's completions and man page at the paths a distribution package
/// installs them to, relative to DESTDIR.
pub fn staged_files(prefix: &Path) -> anyhow::Result<Vec<RenderedFile>> {
    let prefix = prefix.strip_prefix("/").unwrap_or(prefix);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("clap writes UTF-8");
    let at = |rel: &str| -> PathBuf { prefix.join(rel) };
    Ok(vec![
        RenderedFile {
            path: at("share/bash-completion/completions/initkit"),
            contents: text(completion(Shell::Bash)),
        },
        RenderedFile {
            path: at("share/zsh/site-functions/_initkit"),
            contents: text(completion(Shell::Zsh)),
        },
        RenderedFile {
            path: at("share/fish/vendor_completions.d/initkit.fish"),
            contents: text(completion(Shell::Fish)),
        },
        RenderedFile {
            path: at("share/man/man1/initkit.1"),
            contents: text(man_page()?),
        },
    ])
}
