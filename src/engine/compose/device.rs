//! The compositor's frame on the GPU: the frame's region (crop box and the blurred mask's reach)
//! goes up once, every step runs on the renderer's CUDA stream, and the region comes back once.
//!
//! In stream order, for one frame:
//! 1. upload: the region's rows of each plane (one 2-D copy per plane); for I420/NV12 the
//!    region, widened to whole chroma blocks, is converted to packed RGB (`kernels/yuv.cu`) with
//!    a copy kept to tell which pixels the paste changed;
//! 2. sketches: the five target sketches (`kernels/sketch.cu`) straight into channels 3..18 of
//!    the renderer's `translation_input`;
//! 3. crop: the face from the region (`kernels/crop.cu`) into channels 0..3, rows 64.. zeroed;
//! 4. networks: [`RendererModel::render_resident`] reads those in place (stage (b) the sketches,
//!    stage (e) the whole tensor) and writes the face into its own device buffer;
//! 5. paste: the face copied into our buffer (device to device), then `kernels/paste.cu` into
//!    the region (the packed frame's own bytes, or the RGB window whose luma and chroma the
//!    write-back kernels put back into the YUV planes, changed samples only);
//! 6. download: the region's rows of each plane back into the frame (one 2-D copy per plane).
//!
//! The kernels are the bit-exact twins of the CPU steps (held to them in CI through their host
//! build), so the frame differs from the CPU compositor's only by what the networks compute on
//! the GPU. Each step is timed with CUDA events ([`DeviceStepTimes`]).

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::region_plan::{FrameShape, RegionPlan};
use super::{ComposeError, PLANE};
use crate::face::indices::{FULL_LEN, PASTE_CONTOUR};
use crate::image::yuv::{Chroma, Yuv420Mut, YuvColour};
use crate::image::{ChannelOrder, ImageMut, Rect, SketchScaling};
use crate::kernels::host::crop::CropFormat;
use crate::kernels::host::paste::Packed;
use crate::kernels::launch::crop::{DeviceFrame, DevicePlane, crop_face};
use crate::kernels::launch::paste::{DevicePaste, face_to_u8, paste_face};
use crate::kernels::launch::sketch::DeviceSketcher;
use crate::kernels::launch::yuv::{self as yuv_launch, DeviceYuv};
use crate::kernels::transfer::{download_rows, upload_rows};
use crate::kernels::{GpuError, GpuKernels};
use crate::runtime::renderer::{MASK_ROW, RendererModel, RendererTimings, ResidentInput};
use crate::runtime::{BorrowedTensor, Placement};
use crate::sizes::{FACE_SIZE, WINDOW};

/// GPU time of each step of a frame on the device (CUDA events on the renderer's stream).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceStepTimes {
    /// The region's planes up, and for YUV frames their conversion to RGB.
    pub upload: Duration,
    /// The five target sketches.
    pub sketches: Duration,
    /// The face crop into `translation_input`.
    pub crop: Duration,
    /// The renderer's stages (b)-(e), the warp kernel included.
    pub networks: Duration,
    /// The paste-back (and for YUV frames the write-back of changed samples).
    pub paste: Duration,
    /// The region back to the host.
    pub download: Duration,
}

impl DeviceStepTimes {
    /// From upload start to download end.
    pub fn total(&self) -> Duration {
        self.upload + self.sketches + self.crop + self.networks + self.paste + self.download
    }
}

/// A frame in host memory as the device path reads and writes it.
pub(super) enum HostFrame<'a, 'b> {
    Packed(&'a mut ImageMut<'b>),
    Yuv(&'a mut Yuv420Mut<'b>, YuvColour),
}

impl HostFrame<'_, '_> {
    fn shape(&self) -> FrameShape {
        match self {
            HostFrame::Packed(f) => FrameShape::Packed {
                width: f.width(),
                height: f.height(),
                stride: f.stride(),
                order: f.order(),
            },
            HostFrame::Yuv(f, _) => match &f.chroma {
                Chroma::Planar(u, v) => FrameShape::I420 {
                    width: f.width,
                    height: f.height,
                    strides: [f.y.stride, u.stride, v.stride],
                },
                Chroma::Interleaved(uv) => FrameShape::Nv12 {
                    width: f.width,
                    height: f.height,
                    strides: [f.y.stride, uv.stride],
                },
            },
        }
    }

    /// The planes' bytes, in [`RegionPlan::blocks`] order.
    fn planes(&self) -> [&[u8]; 3] {
        match self {
            HostFrame::Packed(f) => [f.as_ref().data(), &[], &[]],
            HostFrame::Yuv(f, _) => match &f.chroma {
                Chroma::Planar(u, v) => [&*f.y.data, &*u.data, &*v.data],
                Chroma::Interleaved(uv) => [&*f.y.data, &*uv.data, &[]],
            },
        }
    }

    /// The planes' bytes, writable, in [`RegionPlan::blocks`] order.
    fn planes_mut(&mut self) -> [&mut [u8]; 3] {
        match self {
            HostFrame::Packed(f) => [f.data_mut(), &mut [], &mut []],
            HostFrame::Yuv(f, _) => match &mut f.chroma {
                Chroma::Planar(u, v) => [&mut *f.y.data, &mut *u.data, &mut *v.data],
                Chroma::Interleaved(uv) => [&mut *f.y.data, &mut *uv.data, &mut []],
            },
        }
    }
}

/// One frame's device work, checked by the caller (`FrameCompositor::render_on_device`).
pub(super) struct DeviceJob<'a> {
    /// The five landmark sets (POSE then CONTENT, row 0 = x) and their crops as `(w, h)`.
    pub landmarks: [[[f32; FULL_LEN]; 2]; WINDOW],
    pub crops: [(usize, usize); WINDOW],
    /// The crop box, in frame pixels (inside the frame).
    pub rect: Rect,
    /// The paste polygon (blend), or `None` (the face replaces the box).
    pub polygon: Option<[(i64, i64); PASTE_CONTOUR.len()]>,
    /// The frame region the paste reads and writes (crop box ∪ the blurred mask's window).
    pub region: Rect,
    /// `(1, 1, 80, 16)` mel chunk.
    pub audio: &'a [f32],
}

/// Events around the six steps; reused from frame to frame.
struct StepEvents([CudaEvent; 7]);

impl StepEvents {
    fn new(stream: &CudaStream) -> Result<Self, GpuError> {
        let ctx = stream.context();
        let event = || {
            ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(GpuError::cuda("creating a timing event"))
        };
        Ok(StepEvents([
            event()?,
            event()?,
            event()?,
            event()?,
            event()?,
            event()?,
            event()?,
        ]))
    }

    fn record(&self, i: usize, stream: &CudaStream) -> Result<(), GpuError> {
        self.0[i]
            .record(stream)
            .map_err(GpuError::cuda("recording a timing event"))
    }

    /// The steps' times, once the last event has completed.
    fn times(&self) -> Result<DeviceStepTimes, GpuError> {
        let step = |i: usize| -> Result<Duration, GpuError> {
            let ms = self.0[i]
                .elapsed_ms(&self.0[i + 1])
                .map_err(GpuError::cuda("reading a timing event"))?;
            Ok(Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3))
        };
        Ok(DeviceStepTimes {
            upload: step(0)?,
            sketches: step(1)?,
            crop: step(2)?,
            networks: step(3)?,
            paste: step(4)?,
            download: step(5)?,
        })
    }
}

/// Device buffers of the GPU path; they grow with the region and are reused.
pub(super) struct DeviceCompositor {
    kernels: Arc<GpuKernels>,
    placement: Placement,
    sketcher: DeviceSketcher,
    paste: DevicePaste,
    /// The region's planes: packed `[pixels, -, -]`, I420 `[Y, U, V]`, NV12 `[Y, UV, -]`.
    planes: [CudaSlice<u8>; 3],
    /// YUV frames: the region as packed RGB, and its copy before the paste.
    rgb: CudaSlice<u8>,
    before: CudaSlice<u8>,
    /// `translation_input`, `(1, 18, 128, 128)`: face (rows 64.. zero) then the sketches.
    input: CudaSlice<f32>,
    /// The generated face, `(1, 3, 128, 128)`, and as 128 × 128 BGR bytes (no blend).
    face: CudaSlice<f32>,
    face_u8: CudaSlice<u8>,
    events: StepEvents,
}

fn alloc<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>, GpuError> {
    stream
        .alloc_zeros(len.max(1))
        .map_err(GpuError::cuda("allocating the compositor's device buffers"))
}

/// Grows `buf` to at least `len` elements (old contents dropped: every use writes first).
fn grow(stream: &Arc<CudaStream>, buf: &mut CudaSlice<u8>, len: usize) -> Result<(), GpuError> {
    if buf.len() < len {
        *buf = alloc(stream, len)?;
    }
    Ok(())
}

impl DeviceCompositor {
    /// The buffers and kernels of the GPU path on the renderer's stream.
    pub(super) fn new(kernels: Arc<GpuKernels>, ordinal: i32) -> Result<Self, GpuError> {
        let stream = kernels.stream().clone();
        Ok(DeviceCompositor {
            sketcher: DeviceSketcher::new(&kernels)?,
            paste: DevicePaste::new(&kernels)?,
            placement: Placement::Cuda { ordinal },
            planes: [alloc(&stream, 1)?, alloc(&stream, 1)?, alloc(&stream, 1)?],
            rgb: alloc(&stream, 1)?,
            before: alloc(&stream, 1)?,
            input: alloc(&stream, 18 * PLANE)?,
            face: alloc(&stream, 3 * PLANE)?,
            face_u8: alloc(&stream, 3 * PLANE)?,
            events: StepEvents::new(&stream)?,
            kernels,
        })
    }

    /// Renders one frame on the device (module documentation) and writes the region back into
    /// `frame`. On an error before the download, `frame` is untouched.
    pub(super) fn render(
        &mut self,
        engine: &mut RendererModel,
        mut frame: HostFrame,
        job: &DeviceJob,
    ) -> Result<(RendererTimings, DeviceStepTimes), ComposeError> {
        let stream = self.kernels.stream().clone();
        let plan = RegionPlan::new(&frame.shape(), job.rect, job.region);
        let (rw, rh) = (plan.region.width, plan.region.height);
        let layout = plan.target.layout;
        let len = plan.buffer_len();

        // 1. Upload (and RGB for YUV).
        self.events.record(0, &stream)?;
        for ((block, host), plane) in plan.blocks.iter().zip(frame.planes()).zip(&mut self.planes) {
            if let Some(block) = block {
                grow(&stream, plane, block.device_len().unwrap_or(0))?;
                upload_rows(&stream, host, *block, plane)?;
            }
        }
        if let HostFrame::Yuv(_, colour) = &frame {
            grow(&stream, &mut self.rgb, len)?;
            grow(&stream, &mut self.before, len)?;
            let [y, u, v] = &self.planes;
            let views = [
                y.slice(..plan.plane_len(0)),
                u.slice(..plan.plane_len(1)),
                v.slice(..plan.plane_len(2)),
            ];
            let device = region_yuv(&plan, views)?;
            yuv_launch::to_rgb_window(
                &self.kernels,
                &device,
                colour,
                Rect::new(0, 0, rw, rh),
                (&mut self.rgb.as_view_mut(), layout.stride),
                Some((&mut self.before.as_view_mut(), layout.stride)),
            )?;
        }
        self.events.record(1, &stream)?;

        // 2. Sketches into translation_input[3..18].
        self.sketcher.render(
            &self.kernels,
            &job.landmarks,
            &job.crops,
            SketchScaling::Target,
            &mut self.input.slice_mut(3 * PLANE..18 * PLANE),
        )?;
        self.events.record(2, &stream)?;

        // 3. Crop into translation_input[0..3], then the lower half zeroed (spec §5.2 step 3).
        {
            let source = match &frame {
                HostFrame::Packed(_) => &self.planes[0],
                HostFrame::Yuv(..) => &self.rgb,
            };
            let plane = DevicePlane {
                data: source.slice(..len),
                stride: layout.stride,
            };
            crop_face(
                &self.kernels,
                &DeviceFrame::packed(plane),
                CropFormat::Packed(layout.order),
                rw,
                rh,
                plan.local,
                &mut self.input.slice_mut(..3 * PLANE),
                None,
            )?;
            for c in 0..3 {
                let rows = c * PLANE + MASK_ROW * FACE_SIZE..(c + 1) * PLANE;
                stream
                    .memset_zeros(&mut self.input.slice_mut(rows))
                    .map_err(GpuError::cuda("masking the face"))?;
            }
        }
        self.events.record(3, &stream)?;

        // 4. The networks, reading translation_input in place.
        let f32s = std::mem::size_of::<f32>() as u64;
        let (base, input_guard) = self.input.device_ptr(&stream);
        // SAFETY: `input` holds 18 planes on this GPU, written above on the sessions' stream; it
        // lives in `self` and nothing writes it until the next frame, after this run returned.
        let (ti, driving) = unsafe {
            (
                BorrowedTensor::new(base, &[1, 18, FACE_SIZE, FACE_SIZE], self.placement),
                BorrowedTensor::new(
                    base + 3 * PLANE as u64 * f32s,
                    &[1, 3 * WINDOW, FACE_SIZE, FACE_SIZE],
                    self.placement,
                ),
            )
        };
        let out = engine.render_resident(&ResidentInput {
            translation_input: &ti,
            driving: &driving,
            audio: job.audio,
        })?;
        drop(input_guard);
        if out.generated.placement() != self.placement || out.generated.len() != 3 * PLANE {
            return Err(GpuError::Input(format!(
                "the renderer's face is in {:?}, not on this GPU",
                out.generated.placement()
            ))
            .into());
        }
        self.events.record(4, &stream)?;

        // 5. Paste (and write-back for YUV).
        {
            crate::kernels::transfer::bind(&stream)?;
            let (dst, _g) = self.face.device_ptr_mut(&stream);
            // SAFETY: both are 3 × 128 × 128 f32 on this GPU (checked above); the renderer's
            // buffer was written on this stream and is kept until its next frame.
            unsafe {
                cudarc::driver::result::memcpy_dtod_async(
                    dst,
                    out.generated.data_address(),
                    3 * PLANE * f32s as usize,
                    stream.cu_stream(),
                )
            }
            .map_err(GpuError::cuda("copying the generated face"))?;
        }
        let buffer = match &frame {
            HostFrame::Packed(_) => &mut self.planes[0],
            HostFrame::Yuv(..) => &mut self.rgb,
        };
        let mut buffer = buffer.slice_mut(..len);
        match &job.polygon {
            Some(polygon) => self.paste.blend(
                &self.kernels,
                &self.face.as_view(),
                &mut buffer,
                &plan.target,
                job.rect,
                polygon,
            )?,
            None => {
                face_to_u8(
                    &self.kernels,
                    &self.face.as_view(),
                    &mut self.face_u8.as_view_mut(),
                )?;
                let face_layout = Packed::tight(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);
                paste_face(
                    &self.kernels,
                    &mut buffer,
                    &plan.target,
                    &self.face_u8.as_view(),
                    &face_layout,
                    job.rect,
                )?;
            }
        }
        if let HostFrame::Yuv(_, colour) = &frame {
            let window = Rect::new(0, 0, rw, rh);
            let (rgb, before) = (self.rgb.slice(..len), self.before.slice(..len));
            let (rgb, before) = ((&rgb, layout.stride), (&before, layout.stride));
            let [y, u, v] = &mut self.planes;
            let views = [
                y.slice_mut(..plan.plane_len(0)),
                u.slice_mut(..plan.plane_len(1)),
                v.slice_mut(..plan.plane_len(2)),
            ];
            let mut device = region_yuv(&plan, views)?;
            let k = &self.kernels;
            yuv_launch::writeback_luma(k, &mut device, colour, window, rgb, before, None)?;
            yuv_launch::writeback_chroma(k, &mut device, colour, window, rgb, before)?;
        }
        self.events.record(5, &stream)?;

        // 6. Download.
        for ((block, host), plane) in plan.blocks.iter().zip(frame.planes_mut()).zip(&self.planes) {
            if let Some(block) = block {
                download_rows(&stream, plane, *block, host)?;
            }
        }
        self.events.record(6, &stream)?;
        stream
            .synchronize()
            .map_err(GpuError::cuda("waiting for the frame"))?;
        Ok((out.timings, self.events.times()?))
    }
}

/// The region's planes (views of the first bytes of each buffer) as a 4:2:0 frame the size of the
/// region for the YUV kernels.
fn region_yuv<P: cudarc::driver::DeviceSlice<u8>>(
    plan: &RegionPlan,
    planes: [P; 3],
) -> Result<DeviceYuv<P>, GpuError> {
    let [y, u, v] = planes;
    let plane = |data, i: usize| yuv_launch::DevicePlane {
        data,
        stride: plan.plane_pitch(i),
    };
    let (w, h) = (plan.region.width, plan.region.height);
    if plan.blocks[2].is_some() {
        DeviceYuv::i420(w, h, plane(y, 0), plane(u, 1), plane(v, 2))
    } else {
        DeviceYuv::nv12(w, h, plane(y, 0), plane(u, 1))
    }
}
