//! Host build of `kernels/paste.cuh`: the paste-back of [`crate::image::PasteBack`] (and the
//! unblended [`crate::image::paste_face`]) as the GPU kernels of `kernels/paste.cu` compute it,
//! stage by stage, so the tests can hold each stage and the whole chain to the Rust code.
//!
//! [`plan`] and [`resize_args`] are the single places that check a frame layout, crop rect and
//! polygon and turn them into the kernels' scalar parameters; they take buffer lengths rather than
//! slices so the GPU launcher runs the same checks on device buffers. The kernels trust them.

use crate::image::{ChannelOrder, ImageError, Rect};
use crate::sizes::FACE_SIZE;

/// Length of the generated face tensor (3 x 128 x 128 `f32`) and of its `u8` BGR image.
pub const FACE_LEN: usize = 3 * FACE_SIZE * FACE_SIZE;

/// Vertex coordinates beyond this are rejected, as `PasteBack::blend_u8` does: the kernels' 16.16
/// walker arithmetic and line-membership products (in `i64`) stay exact far past it.
pub const MAX_COORD: i64 = 1 << 24;

unsafe extern "C" {
    fn iplap_host_paste_face_to_u8(chw: *const f32, out: *mut u8);
    fn iplap_host_paste_resize(
        src: *const u8,
        sw: i32,
        sh: i32,
        sstride: i64,
        sbpp: i32,
        sb: i32,
        sg: i32,
        sr: i32,
        dst: *mut u8,
        dstride: i64,
        dbpp: i32,
        db: i32,
        dg: i32,
        dr: i32,
        dx0: i32,
        dy0: i32,
        dw: i32,
        dh: i32,
    );
    fn iplap_host_paste_window(pts: *const i64, n: i32, fw: i32, fh: i32, out: *mut i32) -> i32;
    fn iplap_host_paste_spans(
        pts: *const i64,
        n: i32,
        wx: i32,
        wy: i32,
        ww: i32,
        wh: i32,
        spans: *mut i32,
    );
    fn iplap_host_paste_mask(
        pts: *const i64,
        n: i32,
        spans: *const i32,
        wx: i32,
        wy: i32,
        ww: i32,
        wh: i32,
        mask: *mut u8,
    );
    fn iplap_host_paste_blur_h(mask: *const u8, wx: i32, ww: i32, wh: i32, fw: i32, hsum: *mut u16);
    fn iplap_host_paste_blur_v(hsum: *const u16, wy: i32, ww: i32, wh: i32, fh: i32, out: *mut u8);
    fn iplap_host_paste_blend(
        frame: *mut u8,
        stride: i64,
        bpp: i32,
        ob: i32,
        og: i32,
        orr: i32,
        ox: i32,
        oy: i32,
        blurred: *const u8,
        wx: i32,
        wy: i32,
        ww: i32,
        wh: i32,
        resized: *const u8,
        rx: i32,
        ry: i32,
        rw: i32,
        rh: i32,
    );
}

/// Layout of a packed 8-bit image in a buffer: `stride` bytes per row, `order` per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub order: ChannelOrder,
}

impl Packed {
    /// Rows with no padding.
    pub fn tight(width: usize, height: usize, order: ChannelOrder) -> Self {
        Packed {
            width,
            height,
            stride: width * order.bytes_per_pixel(),
            order,
        }
    }
}

/// The buffer a paste writes into: `layout` holds frame pixels `origin.0 ..` x `origin.1 ..` of a
/// `frame.0` x `frame.1` frame. The whole frame has origin (0, 0) and `frame` = layout size; a
/// YUV frame's RGB window is a smaller buffer placed by its origin. The frame size matters on its
/// own: the blur reflects at the frame's borders, not the buffer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTarget {
    pub layout: Packed,
    pub origin: (usize, usize),
    pub frame: (usize, usize),
}

impl FrameTarget {
    /// A buffer holding the whole frame.
    pub fn whole(layout: Packed) -> Self {
        FrameTarget {
            layout,
            origin: (0, 0),
            frame: (layout.width, layout.height),
        }
    }
}

fn too_big() -> ImageError {
    ImageError::Layout("size beyond the kernels' 32-bit pixel range")
}

fn to_i32(v: usize) -> Result<i32, ImageError> {
    i32::try_from(v).map_err(|_| too_big())
}

fn rect_i32(r: Rect) -> Result<[i32; 4], ImageError> {
    Ok([
        to_i32(r.x)?,
        to_i32(r.y)?,
        to_i32(r.width)?,
        to_i32(r.height)?,
    ])
}

/// Bytes per pixel, B/G/R offsets and stride of a layout checked against a buffer of `len` bytes
/// (the same rules as [`crate::image::ImageRef::new`]: the last row need not be padded).
fn layout_args(
    p: &Packed,
    len: usize,
    what: &'static str,
) -> Result<(i32, [i32; 3], i64), ImageError> {
    let off = p.order.bgr_offsets().ok_or(ImageError::NeedsColour {
        what,
        order: p.order,
    })?;
    let row = p
        .width
        .checked_mul(p.order.bytes_per_pixel())
        .ok_or_else(too_big)?;
    if p.stride < row {
        return Err(ImageError::Layout("stride is smaller than a row"));
    }
    if p.height > 0 {
        let need = (p.height - 1)
            .checked_mul(p.stride)
            .and_then(|v| v.checked_add(row))
            .ok_or_else(too_big)?;
        if len < need {
            return Err(ImageError::Layout(
                "buffer is too small for width, height and stride",
            ));
        }
    }
    to_i32(p.width)?;
    to_i32(p.height)?;
    let stride = i64::try_from(p.stride).map_err(|_| too_big())?;
    Ok((
        p.order.bytes_per_pixel() as i32,
        off.map(|o| o as i32),
        stride,
    ))
}

/// Scalar parameters of `iplap_paste_resize` (see `kernels/paste.cu`), checked by [`resize_args`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeArgs {
    /// sw, sh.
    pub src_size: [i32; 2],
    pub src_stride: i64,
    pub src_bpp: i32,
    pub src_offsets: [i32; 3],
    pub dst_stride: i64,
    pub dst_bpp: i32,
    pub dst_offsets: [i32; 3],
    /// dx0, dy0, dw, dh: the destination rect in the destination buffer's pixels.
    pub dst_rect: [i32; 4],
}

/// Checks the whole `src` image (in `src_len` bytes) resized onto `dst_rect` of `dst` (in
/// `dst_len` bytes): non-empty, colour, inside their buffers — `resize_bgr_u8`'s conditions.
pub fn resize_args(
    src: &Packed,
    src_len: usize,
    dst: &Packed,
    dst_len: usize,
    dst_rect: Rect,
) -> Result<ResizeArgs, ImageError> {
    let (src_bpp, src_offsets, src_stride) = layout_args(src, src_len, "resize source")?;
    let (dst_bpp, dst_offsets, dst_stride) = layout_args(dst, dst_len, "resize destination")?;
    if src.width == 0 || src.height == 0 {
        let rect = Rect::new(0, 0, src.width, src.height);
        return Err(ImageError::BadRegion {
            rect,
            width: src.width,
            height: src.height,
        });
    }
    if dst_rect.is_empty() || !dst_rect.fits_in(dst.width, dst.height) {
        return Err(ImageError::BadRegion {
            rect: dst_rect,
            width: dst.width,
            height: dst.height,
        });
    }
    Ok(ResizeArgs {
        src_size: [src.width as i32, src.height as i32],
        src_stride,
        src_bpp,
        src_offsets,
        dst_stride,
        dst_bpp,
        dst_offsets,
        dst_rect: rect_i32(dst_rect)?,
    })
}

/// Everything the blend kernels need for one frame, checked by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastePlan {
    /// Frame width and height (the blur's reflection borders).
    pub frame: [i32; 2],
    /// The target buffer: stride, bytes per pixel, B/G/R offsets, frame pixel of its (0, 0).
    pub stride: i64,
    pub bpp: i32,
    pub offsets: [i32; 3],
    pub origin: [i32; 2],
    /// The crop rect x, y, width, height in frame pixels.
    pub rect: [i32; 4],
    /// The mask window x, y, width, height in frame pixels; `None`: the polygon misses the frame
    /// and the blend changes nothing.
    pub window: Option<[i32; 4]>,
    /// The polygon, flattened (x0, y0, x1, y1, ...), for the kernels' `pts` buffer.
    pub vertices: Vec<i64>,
}

impl PastePlan {
    /// The window as a [`Rect`] (empty when there is none).
    pub fn window_rect(&self) -> Rect {
        self.window.map_or(Rect::default(), |[x, y, w, h]| {
            Rect::new(x as usize, y as usize, w as usize, h as usize)
        })
    }
}

/// The mask window of `polygon` in a `frame.0` x `frame.1` frame, as `PasteBack::window`:
/// vertex box clipped to the frame and dilated by the blur radius, `None` when it misses the
/// frame. Errors for vertices beyond [`MAX_COORD`] or sizes beyond `i32`.
pub fn polygon_window(
    polygon: &[(i64, i64)],
    frame: (usize, usize),
) -> Result<Option<Rect>, ImageError> {
    let (fw, fh) = (to_i32(frame.0)?, to_i32(frame.1)?);
    let n = to_i32(polygon.len())?;
    let vertices = flatten(polygon)?;
    let mut out = [0i32; 4];
    // SAFETY: `vertices` holds 2 n values and `out` 4; the C side reads and writes no more.
    let found = unsafe { iplap_host_paste_window(vertices.as_ptr(), n, fw, fh, out.as_mut_ptr()) };
    Ok((found != 0).then(|| {
        Rect::new(
            out[0] as usize,
            out[1] as usize,
            out[2] as usize,
            out[3] as usize,
        )
    }))
}

fn flatten(polygon: &[(i64, i64)]) -> Result<Vec<i64>, ImageError> {
    let mut v = Vec::with_capacity(2 * polygon.len());
    for (index, &(x, y)) in polygon.iter().enumerate() {
        if x.abs() > MAX_COORD || y.abs() > MAX_COORD {
            return Err(ImageError::BadVertex { index, x, y });
        }
        v.extend([x, y]);
    }
    Ok(v)
}

/// Checks a blend of the crop `rect` inside `polygon` into `target` (a buffer of `len` bytes) and
/// returns the kernels' parameters. Errors as `PasteBack::blend_u8` (empty rect or one outside the
/// frame, grey buffer, vertex out of range), plus: a buffer too small for its layout, a buffer
/// region outside the frame, or a rect or window the buffer does not hold.
pub fn plan(
    target: &FrameTarget,
    len: usize,
    rect: Rect,
    polygon: &[(i64, i64)],
) -> Result<PastePlan, ImageError> {
    let (fw, fh) = target.frame;
    if rect.is_empty() || !rect.fits_in(fw, fh) {
        return Err(ImageError::BadRegion {
            rect,
            width: fw,
            height: fh,
        });
    }
    let (bpp, offsets, stride) = layout_args(&target.layout, len, "paste-back frame")?;
    let vertices = flatten(polygon)?;
    let held = Rect::new(
        target.origin.0,
        target.origin.1,
        target.layout.width,
        target.layout.height,
    );
    if !held.fits_in(fw, fh) {
        return Err(ImageError::BadRegion {
            rect: held,
            width: fw,
            height: fh,
        });
    }
    let holds = |r: Rect| {
        r.x >= held.x
            && r.y >= held.y
            && r.x + r.width <= held.x + held.width
            && r.y + r.height <= held.y + held.height
    };
    let outside = |r: Rect| ImageError::BadRegion {
        rect: r,
        width: fw,
        height: fh,
    };
    if !holds(rect) {
        return Err(outside(rect));
    }
    let window = polygon_window(polygon, target.frame)?;
    if let Some(w) = window.filter(|&w| !holds(w)) {
        return Err(outside(w));
    }
    Ok(PastePlan {
        frame: [to_i32(fw)?, to_i32(fh)?],
        stride,
        bpp,
        offsets,
        origin: [to_i32(held.x)?, to_i32(held.y)?],
        rect: rect_i32(rect)?,
        window: window.map(rect_i32).transpose()?,
        vertices,
    })
}

/// `trunc(255 x)` of the 3 x 128 x 128 CHW face into 128 x 128 packed BGR (`face_to_u8`).
pub fn face_to_u8(chw: &[f32], out: &mut [u8]) -> Result<(), ImageError> {
    for len in [chw.len(), out.len()] {
        if len != FACE_LEN {
            return Err(ImageError::BadLength {
                expected: FACE_LEN,
                got: len,
            });
        }
    }
    // SAFETY: both buffers hold exactly FACE_LEN elements, all the C loop touches.
    unsafe { iplap_host_paste_face_to_u8(chw.as_ptr(), out.as_mut_ptr()) };
    Ok(())
}

/// The whole `src` image resized onto `dst_rect` of `dst` (`resize_bgr_u8` with the full source).
pub fn resize(
    src: &[u8],
    src_layout: &Packed,
    dst: &mut [u8],
    dst_layout: &Packed,
    dst_rect: Rect,
) -> Result<(), ImageError> {
    let a = resize_args(src_layout, src.len(), dst_layout, dst.len(), dst_rect)?;
    let [dx, dy, dw, dh] = a.dst_rect;
    let [sb, sg, sr] = a.src_offsets;
    let [db, dg, dr] = a.dst_offsets;
    // SAFETY: resize_args checked both layouts against the slices' lengths and the rect against
    // the destination, so every pixel read or written lies in its slice.
    unsafe {
        iplap_host_paste_resize(
            src.as_ptr(),
            a.src_size[0],
            a.src_size[1],
            a.src_stride,
            a.src_bpp,
            sb,
            sg,
            sr,
            dst.as_mut_ptr(),
            a.dst_stride,
            a.dst_bpp,
            db,
            dg,
            dr,
            dx,
            dy,
            dw,
            dh,
        )
    };
    Ok(())
}

/// The polygon mask (0 / 255) of `fill_convex_poly(.., window, polygon, 255)` on a zeroed buffer:
/// the spans and mask kernels. Any window works (the fill is defined per window pixel).
pub fn polygon_mask(polygon: &[(i64, i64)], window: Rect) -> Result<Vec<u8>, ImageError> {
    let vertices = flatten(polygon)?;
    let [wx, wy, ww, wh] = rect_i32(window)?;
    let len = window
        .width
        .checked_mul(window.height)
        .ok_or_else(too_big)?;
    let mut spans = vec![0i32; 2 * window.height];
    let mut mask = vec![0u8; len];
    let n = to_i32(polygon.len())?;
    // SAFETY: `vertices` holds 2 n values, `spans` 2 per window row, `mask` ww x wh bytes.
    unsafe {
        iplap_host_paste_spans(vertices.as_ptr(), n, wx, wy, ww, wh, spans.as_mut_ptr());
        iplap_host_paste_mask(
            vertices.as_ptr(),
            n,
            spans.as_ptr(),
            wx,
            wy,
            ww,
            wh,
            mask.as_mut_ptr(),
        );
    }
    Ok(mask)
}

/// The blurred mask over `window` of a frame (`frame` = width, height) that is zero outside the
/// window and `mask` (ww x wh) inside it: the two blur kernels (`gaussian_blur_region`).
pub fn blur_mask(mask: &[u8], window: Rect, frame: (usize, usize)) -> Result<Vec<u8>, ImageError> {
    if window.is_empty() || !window.fits_in(frame.0, frame.1) {
        return Err(ImageError::BadRegion {
            rect: window,
            width: frame.0,
            height: frame.1,
        });
    }
    let [wx, wy, ww, wh] = rect_i32(window)?;
    let (fw, fh) = (to_i32(frame.0)?, to_i32(frame.1)?);
    let len = window.width * window.height; // <= frame size, which fits in memory
    if mask.len() != len {
        return Err(ImageError::BadLength {
            expected: len,
            got: mask.len(),
        });
    }
    let mut hsum = vec![0u16; len];
    let mut out = vec![0u8; len];
    // SAFETY: all three buffers hold ww x wh elements; the window lies in the frame, so the
    // reflected taps the kernels keep are window pixels.
    unsafe {
        iplap_host_paste_blur_h(mask.as_ptr(), wx, ww, wh, fw, hsum.as_mut_ptr());
        iplap_host_paste_blur_v(hsum.as_ptr(), wy, ww, wh, fh, out.as_mut_ptr());
    }
    Ok(out)
}

/// The whole paste-back chain on the host, kernel by kernel, with its scratch and the last frame's
/// window, mask and blurred mask for inspection (as [`crate::image::PasteBack`] keeps them).
#[derive(Debug, Default)]
pub struct HostPaste {
    face: Vec<u8>,
    resized: Vec<u8>,
    window: Rect,
    mask: Vec<u8>,
    blurred: Vec<u8>,
}

impl HostPaste {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn window(&self) -> Rect {
        self.window
    }
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }
    pub fn blurred(&self) -> &[u8] {
        &self.blurred
    }

    /// `PasteBack::blend`: the CHW `f32` face through `face_to_u8`, then [`HostPaste::blend_u8`].
    pub fn blend(
        &mut self,
        frame: &mut [u8],
        target: &FrameTarget,
        face_chw: &[f32],
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), ImageError> {
        let mut face = std::mem::take(&mut self.face);
        face.resize(FACE_LEN, 0);
        let layout = Packed::tight(FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr);
        let result = face_to_u8(face_chw, &mut face)
            .and_then(|()| self.blend_u8(frame, target, &face, &layout, rect, polygon));
        self.face = face;
        result
    }

    /// `PasteBack::blend_u8` into `frame` (laid out as `target`) with the `face` image (any colour
    /// order and size): spans + mask, blur, resize, blend, one host loop per kernel.
    pub fn blend_u8(
        &mut self,
        frame: &mut [u8],
        target: &FrameTarget,
        face: &[u8],
        face_layout: &Packed,
        rect: Rect,
        polygon: &[(i64, i64)],
    ) -> Result<(), ImageError> {
        let p = plan(target, frame.len(), rect, polygon)?;
        self.window = p.window_rect();
        self.mask.clear();
        self.blurred.clear();
        if p.window.is_none() {
            return Ok(());
        }
        let window = self.window;
        self.mask = polygon_mask(polygon, window)?;
        self.blurred = blur_mask(&self.mask, window, target.frame)?;
        let resized = Packed::tight(rect.width, rect.height, ChannelOrder::Bgr);
        self.resized.clear();
        self.resized.resize(rect.width * rect.height * 3, 0);
        let whole = Rect::new(0, 0, rect.width, rect.height);
        resize(face, face_layout, &mut self.resized, &resized, whole)?;
        let [wx, wy, ww, wh] = rect_i32(window)?;
        let [rx, ry, rw, rh] = p.rect;
        let [ob, og, or] = p.offsets;
        // SAFETY: `plan` checked the frame layout against `frame.len()` and that the buffer holds
        // the window and the rect; `blurred` is ww x wh and `resized` rw x rh x 3 bytes.
        unsafe {
            iplap_host_paste_blend(
                frame.as_mut_ptr(),
                p.stride,
                p.bpp,
                ob,
                og,
                or,
                p.origin[0],
                p.origin[1],
                self.blurred.as_ptr(),
                wx,
                wy,
                ww,
                wh,
                self.resized.as_ptr(),
                rx,
                ry,
                rw,
                rh,
            )
        };
        Ok(())
    }
}

/// `paste_face` without the blend: `face` resized into the crop `rect` of the frame held by
/// `target` (the resize kernel writing straight into the frame buffer).
pub fn paste_face(
    frame: &mut [u8],
    target: &FrameTarget,
    face: &[u8],
    face_layout: &Packed,
    rect: Rect,
) -> Result<(), ImageError> {
    let p = plan(target, frame.len(), rect, &[])?;
    let in_buffer = Rect::new(
        (p.rect[0] - p.origin[0]) as usize,
        (p.rect[1] - p.origin[1]) as usize,
        rect.width,
        rect.height,
    );
    resize(face, face_layout, frame, &target.layout, in_buffer)
}
