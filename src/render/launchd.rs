//! TEMPORARY STUB: minimal launchd rendering for the manage branch.
use std::path::PathBuf;

use super::{RenderError, Rendered, RenderedFile, GENERATED_MARKER};
use crate::manifest::Manifest;

pub enum Target {
    User { home: PathBuf },
    System,
    Packaging,
}

pub fn render(m: &Manifest, _target: &Target, source_name: &str) -> Result<Rendered, RenderError> {
    let contents = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- {GENERATED_MARKER} from {source_name} -->\n<plist version=\"1.0\"><dict><key>Label</key><string>{}</string></dict></plist>\n",
        m.label
    );
    Ok(Rendered {
        files: vec![RenderedFile {
            path: format!("plists/{}.plist", m.label).into(),
            contents,
        }],
        warnings: Vec::new(),
    })
}
