//! Device launchers for `kernels/paste.cu`: the paste-back of the generated face on the GPU.
//!
//! [`DevicePaste`] is the device twin of [`HostPaste`]: one blend is `face_to_u8`, `resize` (into
//! a crop-sized BGR scratch), `spans`, `mask`, `blur_h`, `blur_v` and `blend` (in place on the
//! frame), enqueued in that order on the kernels' stream. The window, every scalar parameter and
//! every layout come from the host build's own checks ([`plan`], [`resize_args`]), which also
//! bound the scratch sizes, so a bad call is a [`GpuError::Input`] before anything is launched;
//! a polygon entirely off the frame launches nothing, as the host build changes nothing. The
//! polygon's vertices are tiny and uploaded with each blend; the scratch only ever grows.
//! [`face_to_u8`], [`resize`] and [`paste_face`] are the single-kernel launches on their own.
//!
//! [`HostPaste`]: crate::kernels::host::paste::HostPaste

use std::sync::Arc;

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};

use crate::image::{ChannelOrder, ImageError, Rect};
use crate::kernels::GpuKernels;
use crate::kernels::device::GpuError;
use crate::kernels::host::paste::{FACE_LEN, FrameTarget, Packed, PastePlan, plan, resize_args};
use crate::sizes::FACE_SIZE;

mod gpu_check;

pub use gpu_check::check;

const FAMILY: &str = "paste";
/// The documented blocks: (32, 8, 1) for the 2-D kernels, 128 threads for `spans`.
const BLOCK_2D: (u32, u32, u32) = (32, 8, 1);
const BLOCK_1D: u32 = 128;

/// A grid of [`BLOCK_2D`] covering `w × h` outputs; the kernels idle the threads past the edge,
/// so rounding up is safe. Sizes are validated positive before any launch.
fn grid_2d(w: i32, h: i32) -> LaunchConfig {
    let blocks = |n: i32, b: u32| u32::try_from(n).unwrap_or(0).div_ceil(b);
    LaunchConfig {
        grid_dim: (blocks(w, BLOCK_2D.0), blocks(h, BLOCK_2D.1), 1),
        block_dim: BLOCK_2D,
        shared_mem_bytes: 0,
    }
}

/// 1-D grid of [`BLOCK_1D`] threads covering `n` outputs (`spans`: one thread per window row).
fn grid_1d(n: i32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (u32::try_from(n).unwrap_or(0).div_ceil(BLOCK_1D), 1, 1),
        block_dim: (BLOCK_1D, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn input(e: ImageError) -> GpuError {
    GpuError::Input(e.to_string())
}

/// `face_to_u8` reads and writes exactly [`FACE_LEN`] elements, as the host build insists.
fn check_face_lens(chw: usize, out: usize) -> Result<(), GpuError> {
    for len in [chw, out] {
        if len != FACE_LEN {
            return Err(input(ImageError::BadLength {
                expected: FACE_LEN,
                got: len,
            }));
        }
    }
    Ok(())
}

fn launch_face_to_u8(
    stream: &CudaStream,
    f: &CudaFunction,
    chw: &CudaView<'_, f32>,
    out: &mut CudaViewMut<'_, u8>,
) -> Result<(), GpuError> {
    check_face_lens(chw.len(), out.len())?;
    let mut b = stream.launch_builder(f);
    b.arg(chw).arg(out);
    // SAFETY: (const float* chw, u8* out), both FACE_LEN long (checked above); grid (4, 16, 1)
    // covers the 128 × 128 pixels exactly. `out` is a `&mut` view, so it cannot alias `chw`.
    let side = FACE_SIZE as i32;
    unsafe { b.launch(grid_2d(side, side)) }
        .map_err(GpuError::cuda("launching iplap_paste_face_to_u8"))?;
    Ok(())
}

fn launch_resize(
    stream: &CudaStream,
    f: &CudaFunction,
    src: &CudaView<'_, u8>,
    src_layout: &Packed,
    dst: &mut CudaViewMut<'_, u8>,
    dst_layout: &Packed,
    dst_rect: Rect,
) -> Result<(), GpuError> {
    let a = resize_args(src_layout, src.len(), dst_layout, dst.len(), dst_rect).map_err(input)?;
    let [sw, sh] = a.src_size;
    let [sb, sg, sr] = a.src_offsets;
    let [db, dg, dr] = a.dst_offsets;
    let [dx0, dy0, dw, dh] = a.dst_rect;
    let mut b = stream.launch_builder(f);
    b.arg(src)
        .arg(&sw)
        .arg(&sh)
        .arg(&a.src_stride)
        .arg(&a.src_bpp);
    b.arg(&sb).arg(&sg).arg(&sr);
    b.arg(dst)
        .arg(&a.dst_stride)
        .arg(&a.dst_bpp)
        .arg(&db)
        .arg(&dg)
        .arg(&dr);
    b.arg(&dx0).arg(&dy0).arg(&dw).arg(&dh);
    // SAFETY: the 18 parameters in the C order and types (i64 strides, i32 the rest);
    // `resize_args` checked both layouts against the views' lengths and the rect against the
    // destination, so every pixel read or written is inside its view; src and dst are distinct
    // borrows, so they do not overlap. The grid covers dw × dh.
    unsafe { b.launch(grid_2d(dw, dh)) }.map_err(GpuError::cuda("launching iplap_paste_resize"))?;
    Ok(())
}

/// `iplap_paste_face_to_u8`: the 3 × 128 × 128 CHW face (`[0, 1]` floats) into 128 × 128 packed
/// BGR bytes. Both views must hold exactly [`FACE_LEN`] elements.
pub fn face_to_u8(
    kernels: &GpuKernels,
    chw: &CudaView<'_, f32>,
    out: &mut CudaViewMut<'_, u8>,
) -> Result<(), GpuError> {
    let f = kernels.function(FAMILY, "iplap_paste_face_to_u8")?;
    launch_face_to_u8(kernels.stream(), &f, chw, out)
}

/// `iplap_paste_resize`: the whole `src` image resized onto `dst_rect` of `dst` (checked as
/// [`host::resize`] checks them; other bytes of `dst` are untouched).
///
/// [`host::resize`]: crate::kernels::host::paste::resize
pub fn resize(
    kernels: &GpuKernels,
    src: &CudaView<'_, u8>,
    src_layout: &Packed,
    dst: &mut CudaViewMut<'_, u8>,
    dst_layout: &Packed,
    dst_rect: Rect,
) -> Result<(), GpuError> {
    let f = kernels.function(FAMILY, "iplap_paste_resize")?;
    launch_resize(
        kernels.stream(),
        &f,
        src,
        src_layout,
        dst,
        dst_layout,
        dst_rect,
    )
}

/// The unblended paste ([`host::paste_face`]): `face` resized straight into the crop `rect` of
/// the frame buffer `frame` laid out as `target`.
///
/// [`host::paste_face`]: crate::kernels::host::paste::paste_face
pub fn paste_face(
    kernels: &GpuKernels,
    frame: &mut CudaViewMut<'_, u8>,
    target: &FrameTarget,
    face: &CudaView<'_, u8>,
    face_layout: &Packed,
    rect: Rect,
) -> Result<(), GpuError> {
    // The same checks as the host build: the rect inside the frame and the buffer.
    let p = plan(target, frame.len(), rect, &[]).map_err(input)?;
    let in_buffer = Rect::new(
        (p.rect[0] - p.origin[0]) as usize,
        (p.rect[1] - p.origin[1]) as usize,
        rect.width,
        rect.height,
    );
    resize(kernels, face, face_layout, frame, &target.layout, in_buffer)
}

/// The family's entry points, looked up once per [`DevicePaste`] rather than per frame.
#[derive(Debug)]
struct Functions {
    face_to_u8: CudaFunction,
    resize: CudaFunction,
    spans: CudaFunction,
    mask: CudaFunction,
    blur_h: CudaFunction,
    blur_v: CudaFunction,
    blend: CudaFunction,
}

impl Functions {
    fn load(kernels: &GpuKernels) -> Result<Self, GpuError> {
        let f = |name: &str| kernels.function(FAMILY, name);
        Ok(Functions {
            face_to_u8: f("iplap_paste_face_to_u8")?,
            resize: f("iplap_paste_resize")?,
            spans: f("iplap_paste_spans")?,
            mask: f("iplap_paste_mask")?,
            blur_h: f("iplap_paste_blur_h")?,
            blur_v: f("iplap_paste_blur_v")?,
            blend: f("iplap_paste_blend")?,
        })
    }
}

/// One blend's checked parameters, from [`Scratch::prepare`]; valid for that scratch (which only
/// grows) and for a frame buffer of exactly `frame_len` bytes.
#[derive(Debug)]
struct Prepared {
    plan: PastePlan,
    /// wx, wy, ww, wh: the mask window (non-empty, inside the frame and the buffer).
    window: [i32; 4],
    /// Vertices uploaded (n >= 1: a window needs a vertex).
    n: i32,
    frame_len: usize,
}

/// Element counts the scratch must hold for a plan: vertices, spans, window pixels, resized bytes.
fn scratch_lens(p: &PastePlan, window: [i32; 4]) -> [usize; 4] {
    let [_, _, ww, wh] = window.map(|v| v as usize);
    let [_, _, rw, rh] = p.rect.map(|v| v as usize);
    // No overflow: the window and the rect lie in a buffer whose length was checked to hold them.
    [p.vertices.len(), 2 * wh, ww * wh, rw * rh * 3]
}

fn alloc<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>, GpuError> {
    stream
        .alloc_zeros(len)
        .map_err(GpuError::cuda("allocating the paste scratch"))
}

/// Replaces `buf` by a zeroed buffer of `len` when it is shorter: scratch only grows, so a frame
/// like the last one allocates nothing.
fn grow<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    buf: &mut CudaSlice<T>,
    len: usize,
) -> Result<(), GpuError> {
    if buf.len() < len {
        *buf = alloc(stream, len)?;
    }
    Ok(())
}

/// The blend's device scratch after `face_to_u8`: packed buffers at least as large as the last
/// prepared blend needs (row stride = window or rect width, whatever the allocation).
#[derive(Debug)]
struct Scratch {
    resized: CudaSlice<u8>,
    vertices: CudaSlice<i64>,
    spans: CudaSlice<i32>,
    mask: CudaSlice<u8>,
    hsum: CudaSlice<u16>,
    blurred: CudaSlice<u8>,
    /// The last prepared window (`None`: none, or the polygon missed the frame).
    window: Option<Rect>,
}

impl Scratch {
    fn new(stream: &Arc<CudaStream>) -> Result<Self, GpuError> {
        // One element each (no zero-length allocations); the first blend grows them.
        Ok(Scratch {
            resized: alloc(stream, 1)?,
            vertices: alloc(stream, 1)?,
            spans: alloc(stream, 1)?,
            mask: alloc(stream, 1)?,
            hsum: alloc(stream, 1)?,
            blurred: alloc(stream, 1)?,
            window: None,
        })
    }

    /// Checks a blend ([`plan`]), grows the scratch and uploads the vertices; `None` when the
    /// polygon misses the frame (nothing to launch).
    fn prepare(
        &mut self,
        stream: &Arc<CudaStream>,
        target: &FrameTarget,
        frame_len: usize,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<Option<Prepared>, GpuError> {
        self.window = None;
        let plan = plan(target, frame_len, rect, polygon).map_err(input)?;
        let Some(window) = plan.window else {
            return Ok(None);
        };
        let [n_vert, n_spans, n_px, n_resized] = scratch_lens(&plan, window);
        grow(stream, &mut self.vertices, n_vert)?;
        grow(stream, &mut self.spans, n_spans)?;
        grow(stream, &mut self.mask, n_px)?;
        grow(stream, &mut self.hsum, n_px)?;
        grow(stream, &mut self.blurred, n_px)?;
        grow(stream, &mut self.resized, n_resized)?;
        // Pageable memory: the driver stages it before returning, so the Vec may go at once.
        stream
            .memcpy_htod(plan.vertices.as_slice(), &mut self.vertices)
            .map_err(GpuError::cuda("uploading the paste polygon"))?;
        self.window = Some(plan.window_rect());
        Ok(Some(Prepared {
            n: polygon.len() as i32, // fits: `plan` checked it as the kernels' int
            window,
            plan,
            frame_len,
        }))
    }

    /// `iplap_paste_resize` of the 128 × 128 BGR face (or any colour image) onto the rw × rh
    /// `resized` scratch.
    fn resize_face(
        &mut self,
        f: &Functions,
        stream: &CudaStream,
        p: &Prepared,
        face: &CudaView<'_, u8>,
        face_layout: &Packed,
    ) -> Result<(), GpuError> {
        let [_, _, rw, rh] = p.plan.rect.map(|v| v as usize);
        let layout = Packed::tight(rw, rh, ChannelOrder::Bgr);
        let whole = Rect::new(0, 0, rw, rh);
        let mut dst = self.resized.as_view_mut();
        launch_resize(
            stream,
            &f.resize,
            face,
            face_layout,
            &mut dst,
            &layout,
            whole,
        )
    }

    /// `iplap_paste_spans` then `iplap_paste_mask`: the 0 / 255 polygon mask over the window.
    fn mask(&mut self, f: &Functions, stream: &CudaStream, p: &Prepared) -> Result<(), GpuError> {
        let [wx, wy, ww, wh] = p.window;
        let mut b = stream.launch_builder(&f.spans);
        b.arg(&self.vertices).arg(&p.n);
        b.arg(&wx).arg(&wy).arg(&ww).arg(&wh).arg(&mut self.spans);
        // SAFETY: (const i64* pts, i32 n, i32 wx, wy, ww, wh, i32* spans): `vertices` holds the
        // 2 n values just uploaded, `spans` at least 2 wh (`prepare`); one thread per row.
        unsafe { b.launch(grid_1d(wh)) }.map_err(GpuError::cuda("launching iplap_paste_spans"))?;
        let mut b = stream.launch_builder(&f.mask);
        b.arg(&self.vertices).arg(&p.n).arg(&self.spans);
        b.arg(&wx).arg(&wy).arg(&ww).arg(&wh).arg(&mut self.mask);
        // SAFETY: (const i64* pts, i32 n, const i32* spans, i32 wx, wy, ww, wh, u8* mask): row r
        // reads spans[2 r ..= 2 r + 1] and writes mask[r ww + c], all within the sizes grown by
        // `prepare`; stream order puts it after `spans`.
        unsafe { b.launch(grid_2d(ww, wh)) }
            .map_err(GpuError::cuda("launching iplap_paste_mask"))?;
        Ok(())
    }

    /// `iplap_paste_blur_h` then `iplap_paste_blur_v`: the mask blurred with the frame's borders.
    fn blur(&mut self, f: &Functions, stream: &CudaStream, p: &Prepared) -> Result<(), GpuError> {
        let [wx, wy, ww, wh] = p.window;
        let [fw, fh] = p.plan.frame;
        let mut b = stream.launch_builder(&f.blur_h);
        b.arg(&self.mask)
            .arg(&wx)
            .arg(&ww)
            .arg(&wh)
            .arg(&fw)
            .arg(&mut self.hsum);
        // SAFETY: (const u8* mask, i32 wx, ww, wh, fw, u16* hsum): both ww × wh (`prepare`); the
        // window lies in the frame (`plan`), so the taps kept after reflection are window pixels.
        unsafe { b.launch(grid_2d(ww, wh)) }
            .map_err(GpuError::cuda("launching iplap_paste_blur_h"))?;
        let mut b = stream.launch_builder(&f.blur_v);
        b.arg(&self.hsum)
            .arg(&wy)
            .arg(&ww)
            .arg(&wh)
            .arg(&fh)
            .arg(&mut self.blurred);
        // SAFETY: (const u16* hsum, i32 wy, ww, wh, fh, u8* blurred): as for blur_h, by columns.
        unsafe { b.launch(grid_2d(ww, wh)) }
            .map_err(GpuError::cuda("launching iplap_paste_blur_v"))?;
        Ok(())
    }

    /// `iplap_paste_blend`: the resized face over `frame` through the blurred mask, in place.
    fn blend_into(
        &self,
        f: &Functions,
        stream: &CudaStream,
        p: &Prepared,
        frame: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), GpuError> {
        if frame.len() != p.frame_len {
            return Err(GpuError::Input(format!(
                "paste-back frame of {} bytes, planned for {}",
                frame.len(),
                p.frame_len
            )));
        }
        let [wx, wy, ww, wh] = p.window;
        let [rx, ry, rw, rh] = p.plan.rect;
        let [ob, og, or] = p.plan.offsets;
        let [ox, oy] = p.plan.origin;
        let mut b = stream.launch_builder(&f.blend);
        b.arg(frame).arg(&p.plan.stride).arg(&p.plan.bpp);
        b.arg(&ob).arg(&og).arg(&or).arg(&ox).arg(&oy);
        b.arg(&self.blurred).arg(&wx).arg(&wy).arg(&ww).arg(&wh);
        b.arg(&self.resized).arg(&rx).arg(&ry).arg(&rw).arg(&rh);
        // SAFETY: the 18 parameters in the C order (i64 stride, i32 the rest); `plan` checked the
        // layout against this buffer's length and that the buffer holds the window and the rect;
        // `blurred` is ww × wh and `resized` rw × rh × 3 (`prepare`), distinct from the frame.
        unsafe { b.launch(grid_2d(ww, wh)) }
            .map_err(GpuError::cuda("launching iplap_paste_blend"))?;
        Ok(())
    }

    /// Everything after `face_to_u8`, in the documented order.
    #[allow(clippy::too_many_arguments)] // mirrors HostPaste::blend_u8 plus the launch context
    fn run(
        &mut self,
        f: &Functions,
        stream: &Arc<CudaStream>,
        face: &CudaView<'_, u8>,
        face_layout: &Packed,
        frame: &mut CudaViewMut<'_, u8>,
        target: &FrameTarget,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), GpuError> {
        let Some(p) = self.prepare(stream, target, frame.len(), rect, polygon)? else {
            return Ok(());
        };
        self.resize_face(f, stream, &p, face, face_layout)?;
        self.mask(f, stream, &p)?;
        self.blur(f, stream, &p)?;
        self.blend_into(f, stream, &p, frame)
    }
}

/// The paste-back on the GPU ([`HostPaste`]'s device twin): its entry points and device scratch,
/// reused from frame to frame, on the stream of the [`GpuKernels`] it was made with.
///
/// [`HostPaste`]: crate::kernels::host::paste::HostPaste
#[derive(Debug)]
pub struct DevicePaste {
    functions: Functions,
    /// 128 × 128 packed BGR, `face_to_u8`'s output.
    face: CudaSlice<u8>,
    scratch: Scratch,
}

impl DevicePaste {
    pub fn new(kernels: &GpuKernels) -> Result<Self, GpuError> {
        let stream = kernels.stream();
        Ok(DevicePaste {
            functions: Functions::load(kernels)?,
            face: alloc(stream, FACE_LEN)?,
            scratch: Scratch::new(stream)?,
        })
    }

    /// The entry points and scratch belong to one context and stream: refuse another's.
    fn same_kernels(&self, kernels: &GpuKernels) -> Result<(), GpuError> {
        if Arc::ptr_eq(self.face.stream(), kernels.stream()) {
            Ok(())
        } else {
            Err(GpuError::Input(
                "DevicePaste used with other GpuKernels than it was made with".into(),
            ))
        }
    }

    /// `PasteBack::blend`: the generated CHW face (3 × 128 × 128 `f32`) through `face_to_u8`,
    /// then [`DevicePaste::blend_u8`] — seven launches, enqueued only (no synchronisation).
    pub fn blend(
        &mut self,
        kernels: &GpuKernels,
        face_chw: &CudaView<'_, f32>,
        frame: &mut CudaViewMut<'_, u8>,
        target: &FrameTarget,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), GpuError> {
        self.same_kernels(kernels)?;
        let stream = kernels.stream();
        let f = &self.functions;
        // Check the frame before touching the face scratch, so a bad call leaves no work behind.
        plan(target, frame.len(), rect, polygon).map_err(input)?;
        launch_face_to_u8(
            stream,
            &f.face_to_u8,
            face_chw,
            &mut self.face.as_view_mut(),
        )?;
        let layout = Packed::tight(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);
        let face = self.face.as_view();
        self.scratch
            .run(f, stream, &face, &layout, frame, target, rect, polygon)
    }

    /// `PasteBack::blend_u8`: `face` (any colour layout and size) resized into `rect` and blended
    /// into `frame` (laid out as `target`) inside `polygon`, whose window must be held by it.
    #[allow(clippy::too_many_arguments)] // HostPaste::blend_u8's arguments plus the kernels
    pub fn blend_u8(
        &mut self,
        kernels: &GpuKernels,
        face: &CudaView<'_, u8>,
        face_layout: &Packed,
        frame: &mut CudaViewMut<'_, u8>,
        target: &FrameTarget,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), GpuError> {
        self.same_kernels(kernels)?;
        let stream = kernels.stream();
        self.scratch.run(
            &self.functions,
            stream,
            face,
            face_layout,
            frame,
            target,
            rect,
            polygon,
        )
    }

    /// The last blend's mask window (empty when it had none).
    pub fn window(&self) -> Rect {
        self.scratch.window.unwrap_or_default()
    }

    /// The last blend's polygon mask (0 / 255, ww × wh, row stride ww); `None` without a window.
    /// Valid once the stream has run the blend.
    pub fn mask(&self) -> Option<CudaView<'_, u8>> {
        let w = self.scratch.window?;
        self.scratch.mask.try_slice(..w.width * w.height)
    }

    /// The last blend's blurred mask (ww × wh), as [`DevicePaste::mask`].
    pub fn blurred(&self) -> Option<CudaView<'_, u8>> {
        let w = self.scratch.window?;
        self.scratch.blurred.try_slice(..w.width * w.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_odd_sizes() {
        let g = grid_2d(577, 455);
        assert_eq!((g.grid_dim, g.block_dim), ((19, 57, 1), (32, 8, 1)));
        assert_eq!(grid_2d(128, 128).grid_dim, (4, 16, 1));
        assert_eq!(grid_2d(1, 1).grid_dim, (1, 1, 1));
        assert_eq!(grid_2d(32, 9).grid_dim, (1, 2, 1));
        let g = grid_1d(455);
        assert_eq!((g.grid_dim, g.block_dim), ((4, 1, 1), (128, 1, 1)));
        assert_eq!(grid_1d(128).grid_dim, (1, 1, 1));
        assert_eq!(grid_1d(129).grid_dim, (2, 1, 1));
    }

    #[test]
    fn face_lengths_are_exact() {
        assert!(check_face_lens(FACE_LEN, FACE_LEN).is_ok());
        for (a, b) in [(FACE_LEN - 1, FACE_LEN), (FACE_LEN, FACE_LEN + 1), (0, 0)] {
            assert!(matches!(check_face_lens(a, b), Err(GpuError::Input(_))));
        }
    }
}
