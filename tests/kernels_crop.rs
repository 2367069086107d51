//! The crop kernel's host build (`kernels/crop.cuh` through `iplap::kernels::host::crop`) against
//! the CPU path it replaces: `crop_face` + `bgr_to_chw` on packed frames, and on YUV frames the
//! element's path (`RgbWindow` converts the region to RGB, the engine crops that). Everything must
//! be bit-identical: the u8 BGR crop byte for byte and the f32 tensor bit for bit.

use iplap::image::yuv::{Plane, RgbWindow, Yuv420Mut, YuvColour, YuvMatrix};
use iplap::image::{
    ChannelOrder, Image, ImageError, ImageRef, Rect, Resizer, bgr_to_chw, crop_face,
};
use iplap::kernels::host::crop::{self as kc, CropFormat, CropFrame, PlaneRef};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const ORDERS: [ChannelOrder; 10] = [
    ChannelOrder::Rgb,
    ChannelOrder::Bgr,
    ChannelOrder::Rgbx,
    ChannelOrder::Bgrx,
    ChannelOrder::Xrgb,
    ChannelOrder::Xbgr,
    ChannelOrder::Rgba,
    ChannelOrder::Bgra,
    ChannelOrder::Argb,
    ChannelOrder::Abgr,
];
const MATRICES: [YuvMatrix; 5] = [
    YuvMatrix::Bt601,
    YuvMatrix::Bt709,
    YuvMatrix::Bt2020,
    YuvMatrix::Smpte240m,
    YuvMatrix::Fcc,
];

/// A crop in both forms: the 128 x 128 packed BGR bytes and the 3 x 128 x 128 tensor.
#[derive(Debug, PartialEq)]
struct Crop {
    bgr: Vec<u8>,
    chw: Vec<f32>,
}

impl Crop {
    fn new() -> Self {
        Crop {
            bgr: vec![0; kc::BGR_LEN],
            chw: vec![0.0; kc::CHW_LEN],
        }
    }
    fn from_image(img: &Image) -> Self {
        let mut c = Crop::new();
        c.bgr.copy_from_slice(img.data());
        bgr_to_chw(&img.view(), &mut c.chw).unwrap();
        c
    }
    /// Byte and bit mismatches against `other`.
    fn mismatches(&self, other: &Crop) -> (usize, usize) {
        let bytes = self.bgr.iter().zip(&other.bgr).filter(|(a, b)| a != b);
        let bits = self.chw.iter().zip(&other.chw);
        let bits = bits.filter(|(a, b)| a.to_bits() != b.to_bits());
        (bytes.count(), bits.count())
    }
}

/// The CPU reference on a packed frame.
fn reference(img: &ImageRef, rect: Rect) -> Crop {
    let mut out = Image::default();
    crop_face(img, rect, &mut out, &mut Resizer::new()).unwrap();
    Crop::from_image(&out)
}

/// The kernel's host build; also checks that leaving out the u8 image changes nothing.
fn kernel(frame: &CropFrame, rect: Rect) -> Crop {
    let mut c = Crop::new();
    kc::crop_face(frame, rect, &mut c.chw, Some(&mut c.bgr)).unwrap();
    let mut chw = vec![f32::NAN; kc::CHW_LEN];
    kc::crop_face(frame, rect, &mut chw, None).unwrap();
    let same = chw
        .iter()
        .zip(&c.chw)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "tensor depends on whether the u8 image is written");
    c
}

fn assert_same(got: &Crop, want: &Crop, what: &str) {
    let (bytes, bits) = got.mismatches(want);
    assert_eq!((bytes, bits), (0, 0), "{what}: u8 / f32 mismatches");
}

/// A `w` x `h` frame in `order`, random pixels and `pad` random bytes of row padding.
fn packed_frame(rng: &mut StdRng, w: usize, h: usize, order: ChannelOrder, pad: usize) -> Vec<u8> {
    let stride = w * order.bytes_per_pixel() + pad;
    // The last row unpadded, as mapped frames may end right after the last pixel.
    let mut data = vec![0u8; stride * h - pad];
    rng.fill(&mut data[..]);
    data
}

/// Rectangles touching every border and corner, tiny and thin ones, the full frame, and random
/// ones (up- and downscales of both axes).
fn rects(rng: &mut StdRng, w: usize, h: usize, random: usize) -> Vec<Rect> {
    let mut v = vec![
        Rect::new(0, 0, w, h),
        Rect::new(0, 0, 1, 1),
        Rect::new(w - 1, h - 1, 1, 1),
        Rect::new(w - 1, 0, 1, h),
        Rect::new(0, h - 1, w, 1),
        Rect::new(w / 2, h / 3, w - w / 2, h - h / 3),
    ];
    if w >= 2 && h >= 3 {
        v.extend([Rect::new(0, h - 3, 2, 3), Rect::new(w - 2, 0, 2, 3)]);
        v.push(Rect::new(
            rng.random_range(0..=w - 2),
            rng.random_range(0..=h - 3),
            2,
            3,
        ));
    }
    for _ in 0..random {
        let (rw, rh) = (rng.random_range(1..=w), rng.random_range(1..=h));
        let x = match rng.random_range(0..3) {
            0 => 0,
            1 => w - rw,
            _ => rng.random_range(0..=w - rw),
        };
        let y = match rng.random_range(0..3) {
            0 => 0,
            1 => h - rh,
            _ => rng.random_range(0..=h - rh),
        };
        v.push(Rect::new(x, y, rw, rh));
    }
    v
}

fn check_packed(data: &[u8], w: usize, h: usize, stride: usize, order: ChannelOrder, rect: Rect) {
    let img = ImageRef::new(data, w, h, stride, order).unwrap();
    let got = kernel(&CropFrame::packed(&img), rect);
    assert_same(
        &got,
        &reference(&img, rect),
        &format!("{order:?} {w}x{h} stride {stride} {rect:?}"),
    );
}

#[test]
fn crops_match_golden() {
    use iplap::face::crop_box::FaceGeometry;
    use iplap::testdata::{CropGolden, relayout};
    let Some(g) = CropGolden::load() else { return };
    let (w, h) = g.facemesh.frame_size();
    for (k, f) in CropGolden::SAMPLE_FRAMES.into_iter().enumerate() {
        let rgb = g.facemesh.frame_rgb(f);
        let marks = g.facemesh.marks(f);
        let b = FaceGeometry::from_landmarks(&marks, w, h).unwrap().crop_box;
        let want_box = g.crop_box(k);
        assert_eq!([b.y1, b.y2, b.x1, b.x2].map(|v| v as i32), want_box);
        let want = Crop {
            bgr: g.crop_bgr(k),
            chw: g.crop_chw(k),
        };
        // The golden frame as given (RGB), then re-laid out in every order with padded rows.
        let img = ImageRef::packed(&rgb, w, h, ChannelOrder::Rgb).unwrap();
        let got = kernel(&CropFrame::packed(&img), b.rect());
        let (bytes, bits) = got.mismatches(&want);
        eprintln!(
            "golden crop {k} (frame {f}, {:?}): u8 {bytes}, f32 {bits} mismatches",
            b.rect()
        );
        assert_eq!((bytes, bits), (0, 0));
        for order in ORDERS {
            let stride = w * order.bytes_per_pixel() + 5;
            let data = relayout(&img, order, stride, 0xA5);
            let img = ImageRef::new(&data, w, h, stride, order).unwrap();
            let got = kernel(&CropFrame::packed(&img), b.rect());
            assert_same(&got, &want, &format!("golden crop {k} as padded {order:?}"));
        }
    }
}

#[test]
fn every_packed_order_with_padding_and_odd_sizes() {
    let mut rng = StdRng::seed_from_u64(0xc409_0001);
    let sizes = [
        (1, 1),
        (2, 3),
        (3, 2),
        (7, 5),
        (127, 129),
        (128, 128),
        (131, 97),
        (300, 211),
    ];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        for order in ORDERS {
            let pad = [0, 1, 3, 7, 13][(i + order as usize) % 5];
            let data = packed_frame(&mut rng, w, h, order, pad);
            let stride = w * order.bytes_per_pixel() + pad;
            for rect in rects(&mut rng, w, h, 4) {
                check_packed(&data, w, h, stride, order, rect);
            }
        }
    }
}

/// Crops wider than 2048 pixels: positions past 2048 have float steps of 1/4096, the range where
/// the double-to-float rounding of the tap position could first matter.
#[test]
fn crops_wider_than_2048() {
    let mut rng = StdRng::seed_from_u64(0xc409_0007);
    let (w, h) = (3840, 2160);
    let data = packed_frame(&mut rng, w, h, ChannelOrder::Bgrx, 0);
    for rect in [
        Rect::new(0, 0, w, h),
        Rect::new(1, 3, 2049, 2157),
        Rect::new(w - 3001, 59, 3001, 2099),
        Rect::new(700, 0, 2731, 2160),
    ] {
        check_packed(&data, w, h, 4 * w, ChannelOrder::Bgrx, rect);
    }
}

#[test]
fn large_frames_upscale_and_downscale() {
    let mut rng = StdRng::seed_from_u64(0xc409_0002);
    let (w, h) = (1920, 1080);
    for order in [ChannelOrder::Bgrx, ChannelOrder::Rgb, ChannelOrder::Argb] {
        let data = packed_frame(&mut rng, w, h, order, 64);
        let stride = w * order.bytes_per_pixel() + 64;
        for rect in [
            Rect::new(661, 313, 577, 455),
            Rect::new(0, 0, 577, 455),
            Rect::new(w - 577, h - 455, 577, 455),
            Rect::new(1000, 500, 64, 90),
            Rect::new(17, 1001, 300, 79),
            Rect::new(w - 128, 0, 128, 128),
            Rect::new(0, 0, w, h),
        ] {
            check_packed(&data, w, h, stride, order, rect);
        }
    }
}

/// Every crop width and height from 1 to 1100 (each paired with a scattered other side): the
/// kernel computes its taps per pixel, so this holds every tap table the Rust `taps` makes for
/// those sizes, including exact ratios (64, 256, 512, 1024) and their neighbours.
#[test]
fn every_crop_size_up_to_1100() {
    let mut rng = StdRng::seed_from_u64(0xc409_0003);
    let n = 1100;
    let data = packed_frame(&mut rng, n, n, ChannelOrder::Bgr, 0);
    for s in 1..=n {
        let other = (s * 7919) % n + 1;
        for (rw, rh) in [(s, other), (other, s)] {
            let rect = Rect::new((s * 13) % (n - rw + 1), (s * 31) % (n - rh + 1), rw, rh);
            check_packed(&data, n, n, 3 * n, ChannelOrder::Bgr, rect);
        }
    }
}

/// A 4:2:0 frame: Y plane and either U, V planes (I420) or one UV plane (NV12), padded strides.
struct YuvFrame {
    nv12: bool,
    w: usize,
    h: usize,
    planes: [(Vec<u8>, usize); 3],
}

impl YuvFrame {
    fn random(rng: &mut StdRng, w: usize, h: usize, nv12: bool) -> Self {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut plane = |row: usize, rows: usize| {
            let stride = row + rng.random_range(0..9);
            // Unpadded last row, random padding bytes elsewhere.
            let mut d = vec![0u8; stride * rows - (stride - row)];
            rng.fill(&mut d[..]);
            (d, stride)
        };
        let planes = if nv12 {
            [plane(w, h), plane(2 * cw, ch), (Vec::new(), 0)]
        } else {
            [plane(w, h), plane(cw, ch), plane(cw, ch)]
        };
        YuvFrame { nv12, w, h, planes }
    }

    fn view(&self, colour: YuvColour) -> CropFrame<'_> {
        let p = |i: usize| PlaneRef {
            data: &self.planes[i].0,
            stride: self.planes[i].1,
        };
        CropFrame {
            format: match self.nv12 {
                true => CropFormat::Nv12(colour),
                false => CropFormat::I420(colour),
            },
            width: self.w,
            height: self.h,
            planes: [p(0), p(1), p(2)],
        }
    }

    /// The element's CPU path: `RgbWindow` converts the region to RGB and the engine crops it.
    fn reference(&self, colour: &YuvColour, rect: Rect) -> Crop {
        let [mut y, mut u, mut v] = self.planes.clone().map(|p| p.0);
        let s = self.planes.each_ref().map(|p| p.1);
        let pl = |data, stride| Plane { data, stride };
        let mut frame = if self.nv12 {
            Yuv420Mut::nv12(self.w, self.h, pl(&mut y, s[0]), pl(&mut u, s[1])).unwrap()
        } else {
            Yuv420Mut::i420(
                self.w,
                self.h,
                pl(&mut y, s[0]),
                pl(&mut u, s[1]),
                pl(&mut v, s[2]),
            )
            .unwrap()
        };
        let mut out = Image::default();
        let ((), written) = RgbWindow::default()
            .run::<_, ImageError>(&mut frame, colour, rect, |img| {
                crop_face(&img.as_ref(), rect, &mut out, &mut Resizer::new())
            })
            .unwrap();
        assert_eq!(written, 0);
        Crop::from_image(&out)
    }
}

#[test]
fn yuv_frames_match_the_rgb_window_path() {
    let mut rng = StdRng::seed_from_u64(0xc409_0004);
    let sizes = [
        (1, 1),
        (2, 3),
        (3, 3),
        (7, 5),
        (130, 97),
        (129, 128),
        (321, 241),
    ];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        for nv12 in [false, true] {
            let f = YuvFrame::random(&mut rng, w, h, nv12);
            for (j, matrix) in MATRICES.into_iter().enumerate() {
                let colour = YuvColour::new(matrix, (i + j) % 2 == 0);
                for rect in rects(&mut rng, w, h, 2) {
                    let what = format!("nv12={nv12} {w}x{h} {matrix:?} {colour:?} {rect:?}");
                    assert_same(
                        &kernel(&f.view(colour), rect),
                        &f.reference(&colour, rect),
                        &what,
                    );
                }
            }
        }
    }
}

#[test]
fn large_yuv_frames() {
    let mut rng = StdRng::seed_from_u64(0xc409_0005);
    for (nv12, (w, h)) in [(false, (1920, 1080)), (true, (1921, 1081))] {
        let f = YuvFrame::random(&mut rng, w, h, nv12);
        for full in [false, true] {
            let colour = YuvColour::new(YuvMatrix::Bt709, full);
            for rect in [
                Rect::new(661, 313, 577, 455),
                Rect::new(w - 577, h - 455, 577, 455),
                Rect::new(1001, 501, 63, 91),
            ] {
                let what = format!("nv12={nv12} {w}x{h} full={full} {rect:?}");
                assert_same(
                    &kernel(&f.view(colour), rect),
                    &f.reference(&colour, rect),
                    &what,
                );
            }
        }
    }
}

/// The comparisons above can fail: a wrong channel order, matrix, chroma plane order or an
/// off-by-one rectangle each change the crop.
#[test]
fn wrong_inputs_are_detected() {
    let mut rng = StdRng::seed_from_u64(0xc409_0006);
    let (w, h) = (97, 83);
    let rect = Rect::new(11, 7, 61, 70);
    let data = packed_frame(&mut rng, w, h, ChannelOrder::Rgb, 0);
    let img = ImageRef::packed(&data, w, h, ChannelOrder::Rgb).unwrap();
    let want = reference(&img, rect);
    let as_bgr = ImageRef::packed(&data, w, h, ChannelOrder::Bgr).unwrap();
    assert_ne!(
        kernel(&CropFrame::packed(&as_bgr), rect).mismatches(&want),
        (0, 0)
    );
    let shifted = Rect::new(12, 7, 61, 70);
    assert_ne!(
        kernel(&CropFrame::packed(&img), shifted).mismatches(&want),
        (0, 0)
    );
    // One source pixel that a tap reads changes the output.
    let mut poked = data.clone();
    poked[(7 * w + 11) * 3] ^= 0x80;
    let img2 = ImageRef::packed(&poked, w, h, ChannelOrder::Rgb).unwrap();
    assert_ne!(
        kernel(&CropFrame::packed(&img2), rect).mismatches(&want),
        (0, 0)
    );

    let f = YuvFrame::random(&mut rng, w, h, true);
    let c601 = YuvColour::new(YuvMatrix::Bt601, false);
    let want = f.reference(&c601, rect);
    let c709 = YuvColour::new(YuvMatrix::Bt709, false);
    assert_ne!(kernel(&f.view(c709), rect).mismatches(&want), (0, 0));
    assert_ne!(
        kernel(&f.view(YuvColour::new(YuvMatrix::Bt601, true)), rect).mismatches(&want),
        (0, 0)
    );
    // The same bytes read as I420 with U and V halves of the UV plane: wrong chroma.
    let mut i420 = YuvFrame::random(&mut rng, w, h, false);
    i420.planes[0] = f.planes[0].clone();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for r in 0..ch {
        for x in 0..cw {
            let uv = &f.planes[1];
            let i = r * uv.1 + 2 * x;
            let (u, v) = (uv.0[i], uv.0[i + 1]);
            let (pu, pv) = (r * i420.planes[1].1 + x, r * i420.planes[2].1 + x);
            i420.planes[1].0[pu] = u;
            i420.planes[2].0[pv] = v;
        }
    }
    // Same chroma: identical to the NV12 crop; swapped U and V: different.
    assert_same(
        &kernel(&i420.view(c601), rect),
        &want,
        "I420 copy of an NV12 frame",
    );
    i420.planes.swap(1, 2);
    assert_ne!(kernel(&i420.view(c601), rect).mismatches(&want), (0, 0));
}

#[test]
fn bad_layouts_and_lengths_are_errors() {
    let data = vec![0u8; 10 * 6 * 4];
    let bgrx = CropFormat::Packed(ChannelOrder::Bgrx);
    let ok = |r| kc::crop_args(bgrx, 10, 6, [40, 0, 0], [240, 0, 0], r);
    assert!(ok(Rect::new(0, 0, 10, 6)).is_ok());
    for r in [
        Rect::new(0, 0, 0, 6),
        Rect::new(1, 0, 10, 6),
        Rect::new(0, 6, 1, 1),
    ] {
        assert!(matches!(ok(r), Err(ImageError::BadRegion { .. })), "{r:?}");
    }
    let full = Rect::new(0, 0, 10, 6);
    let gray = kc::crop_args(
        CropFormat::Packed(ChannelOrder::Gray),
        10,
        6,
        [40; 3],
        [240; 3],
        full,
    );
    assert!(matches!(gray, Err(ImageError::NeedsColour { .. })));
    // Stride under a row; buffer one byte short.
    assert!(kc::crop_args(bgrx, 10, 6, [39, 0, 0], [240, 0, 0], full).is_err());
    assert!(kc::crop_args(bgrx, 10, 6, [40, 0, 0], [239, 0, 0], full).is_err());
    // An i32-overflowing frame (plausible lengths) is refused rather than truncated.
    let one = Rect::new(0, 0, 1, 1);
    let huge = kc::crop_args(bgrx, 1 << 31, 1, [1 << 33, 0, 0], [usize::MAX, 0, 0], one);
    assert!(matches!(huge, Err(ImageError::Layout(_))));

    let c = YuvColour::new(YuvMatrix::Bt601, false);
    // 7 x 5: chroma 4 x 3. NV12 needs UV rows of 8 bytes; I420 needs U and V of 4 x 3.
    let nv = |s1, l1| {
        kc::crop_args(
            CropFormat::Nv12(c),
            7,
            5,
            [7, s1, 0],
            [35, l1, 0],
            full_7x5(),
        )
    };
    assert!(nv(8, 24).is_ok());
    assert!(nv(7, 24).is_err());
    assert!(nv(8, 23).is_err());
    let i4 = |l2| {
        kc::crop_args(
            CropFormat::I420(c),
            7,
            5,
            [7, 4, 4],
            [35, 12, l2],
            full_7x5(),
        )
    };
    assert!(i4(12).is_ok());
    assert!(i4(11).is_err());

    let img = ImageRef::packed(&data, 10, 6, ChannelOrder::Bgrx).unwrap();
    let frame = CropFrame::packed(&img);
    let mut chw = vec![0f32; kc::CHW_LEN - 1];
    let short = kc::crop_face(&frame, full, &mut chw, None);
    assert!(matches!(short, Err(ImageError::BadLength { .. })));
    let mut chw = vec![0f32; kc::CHW_LEN];
    let mut bgr = vec![0u8; kc::BGR_LEN + 1];
    let long = kc::crop_face(&frame, full, &mut chw, Some(&mut bgr));
    assert!(matches!(long, Err(ImageError::BadLength { .. })));
}

fn full_7x5() -> Rect {
    Rect::new(0, 0, 7, 5)
}
