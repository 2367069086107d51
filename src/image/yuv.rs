//! 8-bit 4:2:0 YUV frames (I420, NV12) for the in-place paste-back.
//!
//! The engine renders into interleaved RGB ([`ImageMut`]), and converting whole frames would cost
//! more than the paste-back itself on large frames. So only the region the renderer reads and
//! writes (crop box plus the feathered mask's reach, widened to even coordinates) is converted to
//! RGB, into a frame-sized scratch image at the same coordinates; the renderer runs on that image
//! unchanged, and only the pixels whose RGB it changed go back to the YUV planes:
//!
//! * Y is rewritten for each changed pixel; a pixel the renderer left alone (mask 0) keeps its
//!   original bytes, with no YUV → RGB → YUV rounding.
//! * U and V are rewritten for a 2 × 2 block when any of its pixels changed, from the mean RGB of
//!   the block's (blended) pixels: a box filter, centred on the block like MPEG-1/JPEG siting and
//!   off by a quarter pixel horizontally from MPEG-2's left siting, which a box filter cannot see
//!   at this scale.
//!
//! YUV → RGB reads the chroma sample of the pixel's 2 × 2 block (nearest neighbour, the same
//! values `videoconvert`'s I420/NV12 → RGB fast paths produce), so odd crop coordinates need no
//! special case. The matrix and range come from the caps' colorimetry ([`YuvColour`]).

mod colour;

pub use colour::{YuvCoefficients, YuvColour, YuvMatrix};

use super::{ChannelOrder, Image, ImageError, ImageMut, Rect};

/// One plane's bytes and row stride.
#[derive(Debug)]
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// The chroma planes of a 4:2:0 frame.
#[derive(Debug)]
pub(crate) enum Chroma<'a> {
    /// I420: U plane then V plane.
    Planar(Plane<'a>, Plane<'a>),
    /// NV12: one plane of U, V byte pairs.
    Interleaved(Plane<'a>),
}

/// A writable 8-bit 4:2:0 frame (I420 or NV12) with any strides; the chroma planes have
/// `ceil(width / 2)` × `ceil(height / 2)` samples.
///
/// The fields are visible in the crate so that the host build of the YUV kernels
/// (`kernels::host::yuv::YuvPlanes`) can wrap a frame checked here instead of checking a copy of
/// its own; outside the crate only the checking constructors can make one.
#[derive(Debug)]
pub struct Yuv420Mut<'a> {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) y: Plane<'a>,
    pub(crate) chroma: Chroma<'a>,
}

/// Chroma samples per row and rows of chroma samples of a `width` × `height` 4:2:0 frame.
pub(crate) fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Checks that `len` bytes hold `rows` rows of `row` bytes `stride` apart (the last row need not
/// be padded). It takes a length rather than a [`Plane`] so that the GPU launchers can check
/// device buffers with it too.
pub(crate) fn check_rows(
    len: usize,
    stride: usize,
    row: usize,
    rows: usize,
    what: &'static str,
) -> Result<(), ImageError> {
    if stride < row {
        return Err(ImageError::Layout(what));
    }
    let need = match rows {
        0 => 0,
        _ => (rows - 1)
            .checked_mul(stride)
            .and_then(|n| n.checked_add(row))
            .ok_or(ImageError::Layout(what))?,
    };
    if len < need {
        return Err(ImageError::Layout(what));
    }
    Ok(())
}

/// [`check_rows`] on a plane.
fn check_plane(
    plane: &Plane,
    row: usize,
    rows: usize,
    what: &'static str,
) -> Result<(), ImageError> {
    check_rows(plane.data.len(), plane.stride, row, rows, what)
}

impl<'a> Yuv420Mut<'a> {
    /// An I420 frame from its Y, U and V planes.
    pub fn i420(
        width: usize,
        height: usize,
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    ) -> Result<Self, ImageError> {
        let (cw, ch) = chroma_size(width, height);
        check_plane(
            &y,
            width,
            height,
            "Y plane too small for the frame size and stride",
        )?;
        check_plane(
            &u,
            cw,
            ch,
            "U plane too small for the frame size and stride",
        )?;
        check_plane(
            &v,
            cw,
            ch,
            "V plane too small for the frame size and stride",
        )?;
        Ok(Yuv420Mut {
            width,
            height,
            y,
            chroma: Chroma::Planar(u, v),
        })
    }

    /// An NV12 frame from its Y and interleaved UV planes.
    pub fn nv12(
        width: usize,
        height: usize,
        y: Plane<'a>,
        uv: Plane<'a>,
    ) -> Result<Self, ImageError> {
        let (cw, ch) = chroma_size(width, height);
        check_plane(
            &y,
            width,
            height,
            "Y plane too small for the frame size and stride",
        )?;
        check_plane(
            &uv,
            2 * cw,
            ch,
            "UV plane too small for the frame size and stride",
        )?;
        Ok(Yuv420Mut {
            width,
            height,
            y,
            chroma: Chroma::Interleaved(uv),
        })
    }

    /// U, V of chroma sample `(cx, cy)`.
    #[inline]
    fn uv(&self, cx: usize, cy: usize) -> (u8, u8) {
        match &self.chroma {
            Chroma::Planar(u, v) => (u.data[cy * u.stride + cx], v.data[cy * v.stride + cx]),
            Chroma::Interleaved(uv) => {
                let i = cy * uv.stride + 2 * cx;
                (uv.data[i], uv.data[i + 1])
            }
        }
    }

    #[inline]
    fn set_uv(&mut self, cx: usize, cy: usize, (u, v): (u8, u8)) {
        match &mut self.chroma {
            Chroma::Planar(pu, pv) => {
                pu.data[cy * pu.stride + cx] = u;
                pv.data[cy * pv.stride + cx] = v;
            }
            Chroma::Interleaved(uv) => {
                let i = cy * uv.stride + 2 * cx;
                uv.data[i] = u;
                uv.data[i + 1] = v;
            }
        }
    }
}

/// `rect` clipped to a `width` × `height` frame and widened to whole 2 × 2 chroma blocks.
pub fn chroma_aligned(rect: Rect, width: usize, height: usize) -> Rect {
    let x0 = rect.x.min(width) & !1;
    let y0 = rect.y.min(height) & !1;
    let x1 = rect.x.saturating_add(rect.width).min(width);
    let y1 = rect.y.saturating_add(rect.height).min(height);
    let x1 = x1.next_multiple_of(2).min(width).max(x0);
    let y1 = y1.next_multiple_of(2).min(height).max(y0);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

/// Scratch of [`RgbWindow::run`]: the frame-sized RGB image and the region's original RGB.
#[derive(Debug, Default)]
pub struct RgbWindow {
    rgb: Image,
    before: Vec<u8>,
}

impl RgbWindow {
    /// Converts `region` of `frame` to RGB, runs `render` on a frame-sized RGB image (packed,
    /// [`ChannelOrder::Rgb`]) that holds the frame's pixels inside the region, then writes back
    /// what `render` changed (module documentation). `render` must read and write only inside
    /// `region`: outside it the image holds stale scratch. When `render` fails, the frame is left
    /// untouched. Returns `render`'s value and the number of luma samples written.
    pub fn run<T, E: From<ImageError>>(
        &mut self,
        frame: &mut Yuv420Mut,
        colour: &YuvColour,
        region: Rect,
        render: impl FnOnce(&mut ImageMut) -> Result<T, E>,
    ) -> Result<(T, usize), E> {
        let (w, h) = (frame.width, frame.height);
        let r = chroma_aligned(region, w, h);
        // Reallocated on a size change only (caps change): the frame-sized image keeps the
        // renderer's frame coordinates without a whole-frame conversion.
        if (self.rgb.width(), self.rgb.height()) != (w, h) {
            self.rgb = Image::new(w, h, ChannelOrder::Rgb);
        }
        self.before.clear();
        let data = self.rgb.data_mut();
        for y in r.y..r.y + r.height {
            let yrow = &frame.y.data[y * frame.y.stride..];
            let row = &mut data[(y * w + r.x) * 3..(y * w + r.x + r.width) * 3];
            for (i, px) in row.chunks_exact_mut(3).enumerate() {
                let x = r.x + i;
                let (u, v) = frame.uv(x / 2, y / 2);
                px.copy_from_slice(&colour.rgb(yrow[x], u, v));
            }
            self.before.extend_from_slice(row);
        }

        let value = render(&mut self.rgb.view_mut())?;

        let data = self.rgb.data();
        let mut written = 0;
        for by in (r.y..r.y + r.height).step_by(2) {
            for bx in (r.x..r.x + r.width).step_by(2) {
                let (mut sum, mut n, mut changed) = ([0u32; 3], 0u32, false);
                for y in by..(by + 2).min(h) {
                    for x in bx..(bx + 2).min(w) {
                        let i = (y * w + x) * 3;
                        let px = [data[i], data[i + 1], data[i + 2]];
                        let j = ((y - r.y) * r.width + x - r.x) * 3;
                        for c in 0..3 {
                            sum[c] += u32::from(px[c]);
                        }
                        n += 1;
                        if px != self.before[j..j + 3] {
                            frame.y.data[y * frame.y.stride + x] = colour.luma(px);
                            changed = true;
                            written += 1;
                        }
                    }
                }
                if changed {
                    frame.set_uv(bx / 2, by / 2, colour.chroma(sum, n));
                }
            }
        }
        Ok((value, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT601: YuvMatrix = YuvMatrix::Bt601;

    /// A 7 × 5 frame (odd sizes, padded strides) in I420 and NV12, filled with a pattern.
    struct Frames {
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        uv: Vec<u8>,
    }
    const FW: usize = 7;
    const FH: usize = 5;
    const YS: usize = 9;
    const CS: usize = 6;

    fn frames() -> Frames {
        let (cw, ch) = (FW.div_ceil(2), FH.div_ceil(2));
        let mut f = Frames {
            y: vec![0xee; YS * FH],
            u: vec![0xee; CS * ch],
            v: vec![0xee; CS * ch],
            uv: vec![0xee; 2 * CS * ch],
        };
        for y in 0..FH {
            for x in 0..FW {
                f.y[y * YS + x] = (40 + 23 * x + 17 * y) as u8;
            }
        }
        for y in 0..ch {
            for x in 0..cw {
                let (u, v) = ((90 + 20 * x + 7 * y) as u8, (170 - 15 * x - 9 * y) as u8);
                f.u[y * CS + x] = u;
                f.v[y * CS + x] = v;
                f.uv[y * 2 * CS + 2 * x] = u;
                f.uv[y * 2 * CS + 2 * x + 1] = v;
            }
        }
        f
    }

    fn i420(f: &mut Frames) -> Yuv420Mut<'_> {
        let (y, u, v) = (&mut f.y, &mut f.u, &mut f.v);
        Yuv420Mut::i420(
            FW,
            FH,
            Plane {
                data: y,
                stride: YS,
            },
            Plane {
                data: u,
                stride: CS,
            },
            Plane {
                data: v,
                stride: CS,
            },
        )
        .unwrap()
    }

    fn nv12(f: &mut Frames) -> Yuv420Mut<'_> {
        let (y, uv) = (&mut f.y, &mut f.uv);
        Yuv420Mut::nv12(
            FW,
            FH,
            Plane {
                data: y,
                stride: YS,
            },
            Plane {
                data: uv,
                stride: 2 * CS,
            },
        )
        .unwrap()
    }

    #[test]
    fn layouts_are_checked() {
        let mut y = vec![0; YS * FH];
        let mut uv = vec![0; 2 * CS * 3];
        // A UV stride shorter than 2 × ceil(7 / 2) bytes.
        let short = Yuv420Mut::nv12(
            FW,
            FH,
            Plane {
                data: &mut y,
                stride: YS,
            },
            Plane {
                data: &mut uv,
                stride: 7,
            },
        );
        assert!(short.is_err());
        let mut small = vec![0; YS * (FH - 1)];
        let (mut u, mut v) = (vec![0; CS * 3], vec![0; CS * 3]);
        let small = Yuv420Mut::i420(
            FW,
            FH,
            Plane {
                data: &mut small,
                stride: YS,
            },
            Plane {
                data: &mut u,
                stride: CS,
            },
            Plane {
                data: &mut v,
                stride: CS,
            },
        );
        assert!(small.is_err());
    }

    #[test]
    fn reads_nearest_chroma_and_writes_back_only_changes() {
        let c = YuvColour::new(BT601, false);
        for nv in [false, true] {
            let mut f = frames();
            let orig = frames();
            let mut window = RgbWindow::default();
            let mut frame = if nv { nv12(&mut f) } else { i420(&mut f) };
            // An odd region: widened to columns 2..7 (the frame edge) and rows 0..4.
            let region = Rect::new(3, 1, 4, 2);
            assert_eq!(chroma_aligned(region, FW, FH), Rect::new(2, 0, 5, 4));
            let ((), written) = window
                .run::<_, ImageError>(&mut frame, &c, region, |img| {
                    // The converted pixels, nearest chroma sample.
                    let row = img.row(3);
                    let (yv, u, v) = (orig.y[3 * YS + 5], orig.u[CS + 2], orig.v[CS + 2]);
                    assert_eq!(row[15..18], c.rgb(yv, u, v));
                    // Change pixel (5, 3) only, and rewrite (4, 3) with its own value.
                    img.row_mut(3)[15..18].copy_from_slice(&[250, 10, 10]);
                    let same = img.row(3)[12..15].to_vec();
                    img.row_mut(3)[12..15].copy_from_slice(&same);
                    Ok(())
                })
                .unwrap();
            assert_eq!(written, 1);
            for y in 0..FH {
                for x in 0..YS {
                    let (a, b) = (f.y[y * YS + x], orig.y[y * YS + x]);
                    if (x, y) == (5, 3) {
                        assert_eq!(a, c.luma([250, 10, 10]));
                    } else {
                        assert_eq!(a, b, "Y ({x}, {y})");
                    }
                }
            }
            // Only chroma block (2, 1) changed: the mean of its 2 × 2 pixels.
            let mut sum = [0u32; 3];
            for (x, y) in [(4, 2), (5, 2), (4, 3), (5, 3)] {
                let rgb = if (x, y) == (5, 3) {
                    [250, 10, 10]
                } else {
                    c.rgb(orig.y[y * YS + x], orig.u[CS + 2], orig.v[CS + 2])
                };
                for k in 0..3 {
                    sum[k] += u32::from(rgb[k]);
                }
            }
            let (u, v) = c.chroma(sum, 4);
            let got: Vec<(usize, u8, u8)> = (0..3 * CS)
                .map(|i| {
                    if nv {
                        let (r, k) = (i / CS, i % CS);
                        (i, f.uv[r * 2 * CS + 2 * k], f.uv[r * 2 * CS + 2 * k + 1])
                    } else {
                        (i, f.u[i], f.v[i])
                    }
                })
                .collect();
            for (i, gu, gv) in got {
                let (r, k) = (i / CS, i % CS);
                let want = if (k, r) == (2, 1) {
                    (u, v)
                } else if nv {
                    (orig.uv[r * 2 * CS + 2 * k], orig.uv[r * 2 * CS + 2 * k + 1])
                } else {
                    (orig.u[i], orig.v[i])
                };
                assert_eq!((gu, gv), want, "nv12={nv}: chroma ({k}, {r})");
            }
            assert_ne!((u, v), (orig.u[CS + 2], orig.v[CS + 2]));
        }
    }

    #[test]
    fn a_failed_render_leaves_the_frame_untouched() {
        let c = YuvColour::new(YuvMatrix::Bt709, true);
        let mut f = frames();
        let orig = frames();
        let mut frame = i420(&mut f);
        let out = RgbWindow::default().run(&mut frame, &c, Rect::new(0, 0, FW, FH), |img| {
            img.row_mut(0).fill(0);
            Err::<(), _>(ImageError::Layout("test"))
        });
        assert!(out.is_err());
        assert_eq!((f.y, f.u, f.v), (orig.y, orig.u, orig.v));
    }

    #[test]
    fn odd_edge_blocks_average_the_pixels_inside() {
        // The last column of a 7-wide frame is a 1 × 2 block.
        let c = YuvColour::new(BT601, false);
        let mut f = frames();
        let mut frame = i420(&mut f);
        RgbWindow::default()
            .run::<_, ImageError>(&mut frame, &c, Rect::new(6, 0, 1, 2), |img| {
                img.row_mut(0)[18..21].copy_from_slice(&[0, 0, 200]);
                img.row_mut(1)[18..21].copy_from_slice(&[0, 0, 100]);
                Ok(())
            })
            .unwrap();
        assert_eq!((f.u[3], f.v[3]), c.chroma([0, 0, 300], 2));
        assert_eq!(f.y[6], c.luma([0, 0, 200]));
        assert_eq!(f.y[YS + 6], c.luma([0, 0, 100]));
    }
}
