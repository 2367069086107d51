//! The offline reference bank of the `reference-location` property: the file is decoded and its
//! bank built exactly as `iplap sync` builds it ([`crate::decode::template_bank`]: the frames of
//! the file converted to 25 fps, tracked in static mode, the official selection over them), so
//! the same file gives the same bank in a pipeline and on the command line.

use std::path::Path;

use iplap::engine::bank_template::{TemplateBank, TemplateScan};

use crate::decode::{VideoDecoder, template_bank};

/// Decodes `path` and builds its bank with `scan`.
pub fn build_from_file(path: &Path, scan: TemplateScan) -> anyhow::Result<TemplateBank> {
    let mut decoder = VideoDecoder::open(path)?;
    template_bank(&mut decoder, scan, |_, _, _| Ok(()))
}
