//! The landmark meta that `iplaplandmarks` attaches to each video buffer and `iplaprender` reads
//! (ARCHITECTURE "Data contracts"), plus its `GstVideoRegionOfInterestMeta` mirror for C and
//! Python applications.
//!
//! The payload is the engine's [`FrameStatus`]: no face, a face while the reference bank is being
//! enrolled, or a lip-synced face (crop box, 478 mesh points, the T = 5 window's POSE and
//! predicted CONTENT, the renderer's mel chunk and a handle to the reference bank).
//!
//! Registered with the tags `video`, `orientation` and `size`, like the ROI meta: the payload
//! holds frame-pixel coordinates, so elements that scale or flip the picture drop it instead of
//! passing on wrong coordinates. Only plain copies (`gst-copy` transforms) keep it.
//!
//! Every `unsafe` of the plugin lives in this file (pattern: gst-plugins-rs
//! `net/ndi/src/ndisinkmeta.rs`).

use std::fmt;

use gst::glib;
use gst::prelude::*;
use iplap::engine::landmarks::FrameStatus;

/// Name of the parameter structure on the ROI mirror.
pub const ROI_PARAM_NAME: &str = "landmarks";
/// ROI type of the mirror.
pub const ROI_TYPE: &str = "face";

/// The landmark meta (see the module documentation).
#[repr(transparent)]
pub struct LandmarkMeta(imp::LandmarkMeta);

// SAFETY: the payload (`FrameStatus`) is `Send + Sync`: plain data plus an `Arc` of immutable data.
unsafe impl Send for LandmarkMeta {}
unsafe impl Sync for LandmarkMeta {}

impl LandmarkMeta {
    /// Attaches `status` to `buffer` (which must be writable).
    pub fn add(
        buffer: &mut gst::BufferRef,
        status: FrameStatus,
    ) -> gst::MetaRefMut<'_, Self, gst::meta::Standalone> {
        let mut params = std::mem::ManuallyDrop::new(imp::LandmarkMetaParams { status });
        // SAFETY: `init` moves the payload out of `params` (ptr::read), so ManuallyDrop prevents a
        // double drop; the returned pointer is a meta of our registered type on `buffer`.
        unsafe {
            let meta = gst::ffi::gst_buffer_add_meta(
                buffer.as_mut_ptr(),
                imp::landmark_meta_get_info(),
                &mut *params as *mut imp::LandmarkMetaParams as glib::ffi::gpointer,
            ) as *mut imp::LandmarkMeta;
            Self::from_mut_ptr(buffer, meta)
        }
    }

    /// What the landmark side says about this frame.
    pub fn status(&self) -> &FrameStatus {
        &self.0.status
    }
}

// SAFETY: `GstType` is the `#[repr(C)]` struct registered under `meta_api()`.
unsafe impl MetaAPI for LandmarkMeta {
    type GstType = imp::LandmarkMeta;

    fn meta_api() -> glib::Type {
        imp::landmark_meta_api_get_type()
    }
}

impl fmt::Debug for LandmarkMeta {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let status = match self.status() {
            FrameStatus::NoFace => "no-face",
            FrameStatus::Enrolling(_) => "enrolling",
            FrameStatus::Synced(_) => "synced",
        };
        f.debug_struct("LandmarkMeta")
            .field("status", &status)
            .finish()
    }
}

/// The status name used in the ROI mirror's `status` field.
pub fn status_name(status: &FrameStatus) -> &'static str {
    match status {
        FrameStatus::NoFace => "no-face",
        FrameStatus::Enrolling(_) => "enrolling",
        FrameStatus::Synced(_) => "synced",
    }
}

fn float_array(values: impl IntoIterator<Item = f32>) -> gst::Array {
    gst::Array::new(values.into_iter().map(|v| v.to_send_value()))
}

/// Adds the `GstVideoRegionOfInterestMeta` mirror (roi type `face`, the crop box) with a
/// `landmarks` parameter structure, so that code without our Rust types can read the result:
/// `status` (string), `points` (478 × (x, y) frame pixels, flattened), and for synced frames
/// `pose` (2 × 74, crop-normalised, row 0 = x) and `content` (2 × 57, the predicted points).
/// Frames without a face get no mirror. Returns whether one was added.
pub fn add_roi_mirror(buffer: &mut gst::BufferRef, status: &FrameStatus) -> bool {
    let (face, synced) = match status {
        FrameStatus::NoFace => return false,
        FrameStatus::Enrolling(face) => (face, None),
        FrameStatus::Synced(s) => (&s.face, Some(s)),
    };
    let b = face.crop_box;
    let rect = (
        b.x1 as u32,
        b.y1 as u32,
        b.width() as u32,
        b.height() as u32,
    );
    let mut meta = gst_video::VideoRegionOfInterestMeta::add(buffer, ROI_TYPE, rect);
    let mut s = gst::Structure::builder(ROI_PARAM_NAME)
        .field("status", status_name(status))
        .field(
            "points",
            float_array(face.points_px.iter().flatten().copied()),
        )
        .field(
            "crop-box",
            gst::Array::new([b.y1 as i32, b.y2 as i32, b.x1 as i32, b.x2 as i32]),
        )
        .build();
    if let Some(sf) = synced {
        s.set("pose", float_array(sf.pose.iter().flatten().copied()));
        s.set("content", float_array(sf.content.iter().flatten().copied()));
    }
    meta.add_param(s);
    true
}

mod imp {
    use std::mem;
    use std::ptr;
    use std::sync::LazyLock;

    use gst::glib;
    use gst::glib::translate::{IntoGlib, from_glib};
    use iplap::engine::landmarks::FrameStatus;

    pub(super) struct LandmarkMetaParams {
        pub status: FrameStatus,
    }

    #[repr(C)]
    pub struct LandmarkMeta {
        parent: gst::ffi::GstMeta,
        pub(super) status: FrameStatus,
    }

    pub(super) fn landmark_meta_api_get_type() -> glib::Type {
        static TYPE: LazyLock<glib::Type> = LazyLock::new(|| {
            let tags = [
                c"video".as_ptr(),
                c"orientation".as_ptr(),
                c"size".as_ptr(),
                ptr::null(),
            ];
            // SAFETY: NUL-terminated static strings and a NULL-terminated tag list.
            unsafe {
                from_glib(gst::ffi::gst_meta_api_type_register(
                    c"GstIplapLandmarkMetaAPI".as_ptr(),
                    tags.as_ptr() as *mut *const _,
                ))
            }
        });
        *TYPE
    }

    unsafe extern "C" fn landmark_meta_init(
        meta: *mut gst::ffi::GstMeta,
        params: glib::ffi::gpointer,
        _buffer: *mut gst::ffi::GstBuffer,
    ) -> glib::ffi::gboolean {
        if params.is_null() {
            // Only `LandmarkMeta::add` creates this meta, and it always passes parameters.
            return glib::ffi::GFALSE;
        }
        // SAFETY: `meta` has the size registered for `LandmarkMeta`; `params` points to a
        // `LandmarkMetaParams` the caller will not drop (ManuallyDrop), so moving out is sound.
        unsafe {
            let meta = &mut *(meta as *mut LandmarkMeta);
            let params = ptr::read(params as *const LandmarkMetaParams);
            ptr::write(&mut meta.status, params.status);
        }
        glib::ffi::GTRUE
    }

    unsafe extern "C" fn landmark_meta_free(
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
    ) {
        // SAFETY: `init` succeeded for every meta GStreamer frees, so `status` is initialised.
        unsafe {
            let meta = &mut *(meta as *mut LandmarkMeta);
            ptr::drop_in_place(&mut meta.status);
        }
    }

    unsafe extern "C" fn landmark_meta_transform(
        dest: *mut gst::ffi::GstBuffer,
        meta: *mut gst::ffi::GstMeta,
        _buffer: *mut gst::ffi::GstBuffer,
        type_: glib::ffi::GQuark,
        _data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        static COPY: LazyLock<glib::ffi::GQuark> =
            LazyLock::new(|| glib::Quark::from_str("gst-copy").into_glib());
        // Scaling, cropping or flipping would invalidate the pixel coordinates: drop the meta.
        if type_ != *COPY {
            return glib::ffi::GFALSE;
        }
        // SAFETY: `meta` is an initialised `LandmarkMeta`; `dest` is the writable copy target.
        unsafe {
            let meta = &*(meta as *const LandmarkMeta);
            super::LandmarkMeta::add(gst::BufferRef::from_mut_ptr(dest), meta.status.clone());
        }
        glib::ffi::GTRUE
    }

    struct MetaInfo(ptr::NonNull<gst::ffi::GstMetaInfo>);
    // SAFETY: the registered info is immutable and lives for the whole process.
    unsafe impl Send for MetaInfo {}
    unsafe impl Sync for MetaInfo {}

    pub(super) fn landmark_meta_get_info() -> *const gst::ffi::GstMetaInfo {
        static INFO: LazyLock<MetaInfo> = LazyLock::new(|| {
            // SAFETY: registering a meta implementation with valid callbacks and size.
            let info = unsafe {
                gst::ffi::gst_meta_register(
                    landmark_meta_api_get_type().into_glib(),
                    c"GstIplapLandmarkMeta".as_ptr(),
                    mem::size_of::<LandmarkMeta>(),
                    Some(landmark_meta_init),
                    Some(landmark_meta_free),
                    Some(landmark_meta_transform),
                )
            };
            MetaInfo(
                ptr::NonNull::new(info as *mut gst::ffi::GstMetaInfo)
                    .expect("gst_meta_register failed for GstIplapLandmarkMeta"),
            )
        });
        INFO.0.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iplap::engine::landmarks::FaceInfo;
    use iplap::face::crop_box::CropBox;

    fn enrolling() -> FrameStatus {
        FrameStatus::Enrolling(FaceInfo {
            crop_box: CropBox {
                y1: 10,
                y2: 110,
                x1: 20,
                x2: 140,
            },
            points_px: vec![[30.5, 40.25]; 478],
            points_norm: vec![[0.1, 0.2]; 478],
            frame_size: (320, 240),
        })
    }

    #[test]
    fn payload_survives_buffer_copy_and_drop() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        {
            let b = buffer.get_mut().unwrap();
            LandmarkMeta::add(b, enrolling());
            assert!(add_roi_mirror(b, &enrolling()));
        }
        let copy = buffer.copy();
        drop(buffer);
        let meta = copy.meta::<LandmarkMeta>().expect("meta copied");
        match meta.status() {
            FrameStatus::Enrolling(f) => {
                assert_eq!(f.crop_box.x2, 140);
                assert_eq!(f.points_px[477], [30.5, 40.25]);
            }
            other => panic!("unexpected status {other:?}"),
        }
        let roi = copy
            .meta::<gst_video::VideoRegionOfInterestMeta>()
            .expect("ROI mirror copied");
        assert_eq!(roi.rect(), (20, 10, 120, 100));
        assert_eq!(roi.roi_type(), ROI_TYPE);
        let s = roi.param(ROI_PARAM_NAME).expect("landmarks parameter");
        assert_eq!(s.get::<&str>("status").unwrap(), "enrolling");
        assert_eq!(s.get::<gst::Array>("points").unwrap().len(), 2 * 478);
    }

    #[test]
    fn no_face_has_no_mirror() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        let b = buffer.get_mut().unwrap();
        LandmarkMeta::add(b, FrameStatus::NoFace);
        assert!(!add_roi_mirror(b, &FrameStatus::NoFace));
        assert!(matches!(
            buffer.meta::<LandmarkMeta>().unwrap().status(),
            FrameStatus::NoFace
        ));
        assert!(
            buffer
                .meta::<gst_video::VideoRegionOfInterestMeta>()
                .is_none()
        );
    }
}
