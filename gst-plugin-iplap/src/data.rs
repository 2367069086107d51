//! The element side of [`iplap::data_files`]: a property that names a file wins; an unset one
//! means "search", and the element logs where the file was found (or every place it tried).

use std::path::{Path, PathBuf};

use iplap::data_files::{DataFile, locate};

/// The path for `file`: `explicit` (the property `property`) when set, else the search result.
/// The error names the property and every place tried.
pub fn resolve(
    explicit: Option<&Path>,
    file: DataFile,
    property: &str,
    obj: &gst::Object,
    cat: gst::DebugCategory,
) -> Result<PathBuf, gst::ErrorMessage> {
    if let Some(p) = explicit {
        gst::debug!(
            cat,
            obj = obj,
            "{}: {} (property {property})",
            file.describe(),
            p.display()
        );
        return Ok(p.to_path_buf());
    }
    match locate(file) {
        Ok(found) => {
            gst::info!(
                cat,
                obj = obj,
                "Using {} from {} ({}; property {property} unset)",
                file.describe(),
                found.path.display(),
                found.origin
            );
            Ok(found.path)
        }
        Err(e) => Err(gst::error_msg!(
            gst::ResourceError::NotFound,
            ("`{property}` is not set and {e}")
        )),
    }
}

/// Loads ONNX Runtime (once per process) and logs which library, found how; the error says
/// every place tried.
pub fn init_runtime(obj: &gst::Object, cat: gst::DebugCategory) -> Result<(), gst::ErrorMessage> {
    match iplap::runtime::init() {
        Ok(lib) => {
            gst::info!(
                cat,
                obj = obj,
                "ONNX Runtime: {} ({:?})",
                lib.path.display(),
                lib.source
            );
            Ok(())
        }
        Err(e) => Err(gst::error_msg!(gst::LibraryError::Init, ("{e}"))),
    }
}
