//! Where a frame's region lives on the device (module `device`): which rows of which plane go up
//! and come back, the packed buffer the crop reads and the paste writes, and the crop box inside
//! it. Pure arithmetic, so CI replays the device path with the kernels' host build on it
//! (`tests` below) and holds that to the CPU compositor's steps, bit for bit.
//!
//! The region is a sub-frame: the crop reads only inside the crop box (its taps clamp to the
//! box), the paste knows the frame's size and the buffer's place in it ([`FrameTarget`]: the mask
//! is clipped and its blur reflected at the frame's borders, not the buffer's), and a YUV region
//! is widened to whole chroma blocks, so its chroma samples are the frame's.

use crate::image::yuv::{chroma_aligned, chroma_size};
use crate::image::{ChannelOrder, Rect};
use crate::kernels::host::paste::{FrameTarget, Packed};
use crate::kernels::transfer::RowBlock;

/// A host frame's geometry: sizes, strides and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameShape {
    Packed {
        width: usize,
        height: usize,
        stride: usize,
        order: ChannelOrder,
    },
    /// Y, U, V strides.
    I420 {
        width: usize,
        height: usize,
        strides: [usize; 3],
    },
    /// Y, UV strides.
    Nv12 {
        width: usize,
        height: usize,
        strides: [usize; 2],
    },
}

impl FrameShape {
    pub(crate) fn size(&self) -> (usize, usize) {
        match *self {
            FrameShape::Packed { width, height, .. }
            | FrameShape::I420 { width, height, .. }
            | FrameShape::Nv12 { width, height, .. } => (width, height),
        }
    }
}

/// The device layout of one frame's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionPlan {
    /// The region in frame pixels (chroma-aligned for YUV).
    pub region: Rect,
    /// The rows of each plane that go up and come back: packed `[pixels, -, -]`, I420
    /// `[Y, U, V]`, NV12 `[Y, UV, -]`; each plane tight on the device.
    pub blocks: [Option<RowBlock>; 3],
    /// The packed buffer the crop reads and the paste writes (the region's own pixels, or for
    /// YUV its RGB conversion), placed in the frame.
    pub target: FrameTarget,
    /// The crop box inside that buffer.
    pub local: Rect,
}

impl RegionPlan {
    /// The plan for `region` (containing the crop box `rect`) of a `shape` frame.
    pub(crate) fn new(shape: &FrameShape, rect: Rect, region: Rect) -> Self {
        let (width, height) = shape.size();
        let region = match shape {
            FrameShape::Packed { .. } => region,
            _ => chroma_aligned(region, width, height),
        };
        let (rw, rh) = (region.width, region.height);
        let rows = |host_offset, host_stride, row_bytes, rows| RowBlock {
            host_offset,
            host_stride,
            pitch: row_bytes,
            row_bytes,
            rows,
        };
        let (cw, ch) = chroma_size(rw, rh);
        // The region's chroma starts at sample (x / 2, y / 2): x and y are even.
        let (cx, cy) = (region.x / 2, region.y / 2);
        let y_block = |stride: usize| rows(region.y * stride + region.x, stride, rw, rh);
        let (blocks, layout) = match *shape {
            FrameShape::Packed { stride, order, .. } => {
                let bpp = order.bytes_per_pixel();
                let block = rows(region.y * stride + region.x * bpp, stride, rw * bpp, rh);
                (
                    [Some(block), None, None],
                    Packed {
                        width: rw,
                        height: rh,
                        stride: rw * bpp,
                        order,
                    },
                )
            }
            FrameShape::I420 { strides, .. } => (
                [
                    Some(y_block(strides[0])),
                    Some(rows(cy * strides[1] + cx, strides[1], cw, ch)),
                    Some(rows(cy * strides[2] + cx, strides[2], cw, ch)),
                ],
                Packed::tight(rw, rh, ChannelOrder::Rgb),
            ),
            FrameShape::Nv12 { strides, .. } => (
                [
                    Some(y_block(strides[0])),
                    Some(rows(cy * strides[1] + 2 * cx, strides[1], 2 * cw, ch)),
                    None,
                ],
                Packed::tight(rw, rh, ChannelOrder::Rgb),
            ),
        };
        RegionPlan {
            region,
            blocks,
            target: FrameTarget {
                layout,
                origin: (region.x, region.y),
                frame: (width, height),
            },
            local: Rect::new(
                rect.x.saturating_sub(region.x),
                rect.y.saturating_sub(region.y),
                rect.width,
                rect.height,
            ),
        }
    }

    /// Bytes of the packed buffer (the region at its layout's stride).
    pub(crate) fn buffer_len(&self) -> usize {
        let l = &self.target.layout;
        l.stride * l.height
    }

    /// Bytes of plane `i` on the device (0 when the format has no such plane).
    pub(crate) fn plane_len(&self, i: usize) -> usize {
        self.blocks[i].map_or(0, |b| b.device_len().unwrap_or(0))
    }

    /// Device row pitch of plane `i`.
    pub(crate) fn plane_pitch(&self, i: usize) -> usize {
        self.blocks[i].map_or(0, |b| b.pitch)
    }
}

#[cfg(test)]
mod tests {
    //! The GPU path's data flow replayed on the CPU: the region's rows copied out as the 2-D
    //! uploads copy them, the kernels' host build run on the region as the device runs them
    //! (crop, paste, YUV to RGB and write-back), the rows copied back; the frame must be the CPU
    //! compositor's bit for bit — every frame size parity, box and polygon on every border.

    use super::*;
    use crate::engine::compose::paste_region;
    use crate::face::indices::PASTE_CONTOUR;
    use crate::image::yuv::{Plane, RgbWindow, Yuv420Mut, YuvColour, YuvMatrix};
    use crate::image::{
        ImageError, ImageMut, ImageRef, PasteBack, Resizer, bgr_to_chw, crop_face, face_to_u8,
        paste_face,
    };
    use crate::kernels::check::CheckRng;
    use crate::kernels::host::{crop as host_crop, paste as host_paste, yuv as host_yuv};

    const CHW: usize = 3 * 128 * 128;
    type Polygon = [(i64, i64); PASTE_CONTOUR.len()];

    /// The rows of `b` from the host to a tight device buffer (what `upload_rows` does).
    fn upload(host: &[u8], b: &RowBlock) -> Vec<u8> {
        let mut dev = vec![0xA5; b.device_len().unwrap()];
        b.check(host.len(), dev.len()).unwrap();
        for r in 0..b.rows {
            let src = &host[b.host_offset + r * b.host_stride..][..b.row_bytes];
            dev[r * b.pitch..][..b.row_bytes].copy_from_slice(src);
        }
        dev
    }

    /// ... and back (`download_rows`).
    fn download(dev: &[u8], b: &RowBlock, host: &mut [u8]) {
        for r in 0..b.rows {
            let src = &dev[r * b.pitch..][..b.row_bytes];
            host[b.host_offset + r * b.host_stride..][..b.row_bytes].copy_from_slice(src);
        }
    }

    struct Case {
        width: usize,
        height: usize,
        rect: Rect,
        polygon: Option<Polygon>,
        face: Vec<f32>,
    }

    fn case(rng: &mut CheckRng) -> Case {
        let width = 1 + rng.below(260) as usize;
        let height = 1 + rng.below(200) as usize;
        let x = rng.below(width as u64) as usize;
        let y = rng.below(height as u64) as usize;
        let rect = Rect::new(
            x,
            y,
            1 + rng.below((width - x) as u64) as usize,
            1 + rng.below((height - y) as u64) as usize,
        );
        // An ellipse near the box, often across a border.
        let (cx, cy) = (
            rect.x as f32 + rng.range(-0.3, 1.3) * rect.width as f32,
            rect.y as f32 + rng.range(-0.3, 1.3) * rect.height as f32,
        );
        let (rx, ry) = (rng.range(1.0, 90.0), rng.range(1.0, 90.0));
        let polygon = (rng.below(4) != 0).then(|| {
            std::array::from_fn(|k| {
                let a = std::f32::consts::TAU * k as f32 / PASTE_CONTOUR.len() as f32;
                ((cx + rx * a.cos()) as i64, (cy + ry * a.sin()) as i64)
            })
        });
        let face = (0..CHW).map(|_| rng.range(0.0, 1.0)).collect();
        Case {
            width,
            height,
            rect,
            polygon,
            face,
        }
    }

    fn region(c: &Case) -> Rect {
        paste_region(c.rect, c.polygon.as_ref(), c.width, c.height)
    }

    /// The CPU compositor's crop and paste on `image`; returns the crop's CHW tensor.
    fn cpu_steps(c: &Case, image: &mut ImageMut) -> Result<Vec<f32>, ImageError> {
        let (mut crop, mut resizer) = (crate::image::Image::default(), Resizer::new());
        crop_face(&image.as_ref(), c.rect, &mut crop, &mut resizer)?;
        let mut chw = vec![0f32; CHW];
        bgr_to_chw(&crop.view(), &mut chw)?;
        match &c.polygon {
            Some(p) => PasteBack::new().blend(image, &c.face, c.rect, p)?,
            None => {
                let mut face = crate::image::Image::default();
                face_to_u8(&c.face, &mut face)?;
                paste_face(image, &face.view(), c.rect, &mut resizer)?;
            }
        }
        Ok(chw)
    }

    /// The device's crop and paste on the region buffer `buf` (laid out as `plan.target`).
    fn region_steps(c: &Case, plan: &RegionPlan, buf: &mut [u8]) -> Vec<f32> {
        let l = plan.target.layout;
        let image = ImageRef::new(buf, l.width, l.height, l.stride, l.order).unwrap();
        let mut chw = vec![0f32; CHW];
        let frame = host_crop::CropFrame::packed(&image);
        host_crop::crop_face(&frame, plan.local, &mut chw, None).unwrap();
        match &c.polygon {
            Some(p) => host_paste::HostPaste::new()
                .blend(buf, &plan.target, &c.face, c.rect, p)
                .unwrap(),
            None => {
                let mut face = vec![0u8; CHW];
                host_paste::face_to_u8(&c.face, &mut face).unwrap();
                let face_layout = Packed::tight(128, 128, ChannelOrder::Bgr);
                host_paste::paste_face(buf, &plan.target, &face, &face_layout, c.rect).unwrap();
            }
        }
        chw
    }

    #[test]
    fn packed_regions_replay_the_cpu_compositor() {
        let mut rng = CheckRng::new(0x0DE7_1CE0_0001);
        let orders = [ChannelOrder::Bgrx, ChannelOrder::Rgb, ChannelOrder::Abgr];
        for i in 0..240 {
            let c = case(&mut rng);
            let order = orders[i % orders.len()];
            let bpp = order.bytes_per_pixel();
            let stride = c.width * bpp + rng.below(9) as usize;
            let mut frame = vec![0u8; stride * c.height];
            rng.fill_bytes(&mut frame);

            let mut want = frame.clone();
            let mut image = ImageMut::new(&mut want, c.width, c.height, stride, order).unwrap();
            let want_chw = cpu_steps(&c, &mut image).unwrap();

            let shape = FrameShape::Packed {
                width: c.width,
                height: c.height,
                stride,
                order,
            };
            let plan = RegionPlan::new(&shape, c.rect, region(&c));
            let block = plan.blocks[0].unwrap();
            let mut buf = upload(&frame, &block);
            assert_eq!(buf.len(), plan.buffer_len(), "case {i}");
            let chw = region_steps(&c, &plan, &mut buf);
            assert!(chw == want_chw, "case {i}: crop differs");
            let mut got = frame.clone();
            download(&buf, &block, &mut got);
            assert!(
                got == want,
                "case {i}: {:?} {order:?} {:?}",
                (c.width, c.height),
                c.rect
            );
        }
    }

    #[test]
    fn yuv_regions_replay_the_cpu_compositor() {
        let mut rng = CheckRng::new(0x0DE7_1CE0_0002);
        let matrices = [YuvMatrix::Bt601, YuvMatrix::Bt709, YuvMatrix::Bt2020];
        for i in 0..240 {
            let c = case(&mut rng);
            let colour = YuvColour::new(matrices[i % 3], i % 2 == 0);
            let nv12 = i % 4 >= 2;
            let (cw, ch) = (c.width.div_ceil(2), c.height.div_ceil(2));
            let pad = rng.below(5) as usize;
            let strides = if nv12 {
                vec![c.width + pad, 2 * cw + pad]
            } else {
                vec![c.width + pad, cw + pad, cw + pad]
            };
            let rows = [c.height, ch, ch];
            let mut planes: Vec<Vec<u8>> = strides
                .iter()
                .zip(rows)
                .map(|(s, r)| {
                    let mut p = vec![0u8; s * r];
                    rng.fill_bytes(&mut p);
                    p
                })
                .collect();

            // The CPU compositor: RgbWindow around the crop and paste.
            let mut want = planes.clone();
            let mut yuv = to_yuv(&mut want, &strides, c.width, c.height);
            let (result, _) = RgbWindow::default()
                .run(&mut yuv, &colour, region(&c), |image| cpu_steps(&c, image))
                .unwrap();
            let want_chw = result;

            // The device path on the host build.
            let shape = if nv12 {
                FrameShape::Nv12 {
                    width: c.width,
                    height: c.height,
                    strides: [strides[0], strides[1]],
                }
            } else {
                FrameShape::I420 {
                    width: c.width,
                    height: c.height,
                    strides: [strides[0], strides[1], strides[2]],
                }
            };
            let plan = RegionPlan::new(&shape, c.rect, region(&c));
            let mut dev: Vec<Vec<u8>> = planes
                .iter()
                .zip(&plan.blocks)
                .map(|(p, b)| b.map_or(Vec::new(), |b| upload(p, &b)))
                .collect();
            dev.resize(3, Vec::new()); // NV12 has no third plane

            let (rw, rh) = (plan.region.width, plan.region.height);
            let window = Rect::new(0, 0, rw, rh);
            let pitch = plan.target.layout.stride;
            let (mut rgb, mut before) =
                (vec![0u8; plan.buffer_len()], vec![0u8; plan.buffer_len()]);
            let pitches: Vec<usize> = (0..3).map(|k| plan.plane_pitch(k)).collect();
            {
                let sub = to_host_planes(&mut dev, &pitches, rw, rh, nv12);
                host_yuv::to_rgb_window(
                    &sub,
                    &colour,
                    window,
                    (&mut rgb, pitch),
                    Some((&mut before, pitch)),
                )
                .unwrap();
            }
            let chw = region_steps(&c, &plan, &mut rgb);
            assert!(chw == want_chw, "case {i}: crop differs");
            {
                let mut sub = to_host_planes(&mut dev, &pitches, rw, rh, nv12);
                host_yuv::writeback_luma(
                    &mut sub,
                    &colour,
                    window,
                    (&rgb, pitch),
                    (&before, pitch),
                )
                .unwrap();
                host_yuv::writeback_chroma(
                    &mut sub,
                    &colour,
                    window,
                    (&rgb, pitch),
                    (&before, pitch),
                )
                .unwrap();
            }
            for ((p, d), b) in planes.iter_mut().zip(&dev).zip(&plan.blocks) {
                if let Some(b) = b {
                    download(d, b, p);
                }
            }
            assert!(
                planes == want,
                "case {i}: nv12 {nv12} {:?} {:?} region {:?}",
                (c.width, c.height),
                c.rect,
                plan.region
            );
        }
    }

    fn to_yuv<'a>(
        planes: &'a mut [Vec<u8>],
        strides: &[usize],
        width: usize,
        height: usize,
    ) -> Yuv420Mut<'a> {
        let mut it = planes.iter_mut().zip(strides).map(|(p, &stride)| Plane {
            data: p.as_mut_slice(),
            stride,
        });
        let y = it.next().unwrap();
        if strides.len() == 2 {
            Yuv420Mut::nv12(width, height, y, it.next().unwrap()).unwrap()
        } else {
            let u = it.next().unwrap();
            Yuv420Mut::i420(width, height, y, u, it.next().unwrap()).unwrap()
        }
    }

    fn to_host_planes<'a>(
        dev: &'a mut [Vec<u8>],
        pitches: &[usize],
        width: usize,
        height: usize,
        nv12: bool,
    ) -> host_yuv::YuvPlanes<'a> {
        let [y, u, v] = dev else {
            panic!("three planes")
        };
        let plane = |data: &'a mut Vec<u8>, stride| Plane {
            data: data.as_mut_slice(),
            stride,
        };
        if nv12 {
            host_yuv::YuvPlanes::nv12(width, height, plane(y, pitches[0]), plane(u, pitches[1]))
                .unwrap()
        } else {
            host_yuv::YuvPlanes::i420(
                width,
                height,
                plane(y, pitches[0]),
                plane(u, pitches[1]),
                plane(v, pitches[2]),
            )
            .unwrap()
        }
    }
}
