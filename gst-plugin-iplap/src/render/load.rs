//! Loading `iplaprender`'s model package (at `start`), with progress messages and errors that
//! name the folder and how to make a package.

use gst::prelude::*;
use gst::subclass::prelude::*;
use iplap::engine::compose::{ComposeError, FrameCompositor};
use iplap::graph::GraphError;
use iplap::runtime::DeviceConfig;
use iplap::runtime::renderer::RendererError;

use super::imp::{CAT, IplapRender, Settings};

impl IplapRender {
    pub(super) fn post_progress(&self, type_: gst::ProgressType, text: &str) {
        let msg = gst::message::Progress::builder(type_, "load-models", text)
            .src(&*self.obj())
            .build();
        // No bus (a bare element): nobody to tell.
        let _ = self.obj().post_message(msg);
    }

    /// Loads the renderer for `settings`; errors name the folder and how to make a package.
    pub(super) fn load(&self, settings: &Settings) -> Result<FrameCompositor, gst::ErrorMessage> {
        let models = crate::data::resolve(
            settings.models.as_deref(),
            iplap::data_files::DataFile::ModelPackage,
            "models",
            self.obj().upcast_ref(),
            *CAT,
        )?;
        crate::data::init_runtime(self.obj().upcast_ref(), *CAT)?;
        if !models.is_dir() {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                (
                    "model package folder {} does not exist; create it with `iplap convert \
                     --renderer-checkpoint renderer_checkpoint.pth --out {}`",
                    models.display(),
                    models.display()
                )
            ));
        }
        settings
            .device
            .load(self.obj().upcast_ref(), *CAT, |device| {
                self.load_on(settings, &models, device)
            })
    }

    /// [`Self::load`] on a resolved device.
    pub(super) fn load_on(
        &self,
        settings: &Settings,
        models: &std::path::Path,
        device: DeviceConfig,
    ) -> Result<FrameCompositor, gst::ErrorMessage> {
        let text = format!("Loading the renderer from {}", models.display());
        self.post_progress(gst::ProgressType::Start, &text);
        match FrameCompositor::from_package(models, settings.compositor_settings(device.clone())) {
            Ok(compositor) => {
                self.post_progress(gst::ProgressType::Complete, &text);
                gst::info!(
                    CAT,
                    imp = self,
                    "Loaded the renderer from {} ({} references, {} threads, device {device})",
                    models.display(),
                    settings.references,
                    settings.threads
                );
                Ok(compositor)
            }
            Err(err) => {
                self.post_progress(gst::ProgressType::Error, &text);
                // A package error names the file and the cause, then says to re-run `iplap
                // convert`; anything else (a session, a setting) needs the folder for context.
                let message = match &err {
                    ComposeError::Render(RendererError::Graph(e @ GraphError::Package { .. })) => {
                        format!("cannot load the renderer: {e}")
                    }
                    _ => format!(
                        "cannot load the renderer from model package {}: {err}",
                        models.display()
                    ),
                };
                Err(gst::error_msg!(gst::LibraryError::Settings, ("{message}")))
            }
        }
    }
}
