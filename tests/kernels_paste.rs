//! The paste kernels' host build (`kernels/paste.cuh` through `iplap::kernels::host::paste`)
//! against the Rust paste-back it replaces (`face_to_u8`, `paste_face`, `PasteBack::blend_u8`,
//! `fill_convex_poly`, `gaussian_blur_region`, `resize_bgr_u8`): every byte must be identical, over
//! the paste goldens and over random polygons, frames, layouts and crops.

use iplap::face::crop_box::paste_polygon;
use iplap::image::{
    BlurScratch, ChannelOrder, ImageError, ImageMut, ImageRef, PasteBack, Rect, Resizer,
    face_to_u8, fill_convex_poly, gaussian_blur_region, paste_face, resize_bgr_u8,
};
use iplap::kernels::host::paste::{self as kp, FrameTarget, HostPaste, Packed};
use iplap::testdata::{PasteGolden, relayout, swap_red_blue};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const ORDERS: [ChannelOrder; 10] = {
    use ChannelOrder::*;
    [Rgb, Bgr, Rgbx, Bgrx, Xrgb, Xbgr, Rgba, Bgra, Argb, Abgr]
};

fn count_bad(a: &[u8], b: &[u8]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Random bytes in `layout` with its padding set to 0xAA (so writes there would show).
fn random_image(rng: &mut StdRng, layout: &Packed) -> Vec<u8> {
    let mut data = vec![0xAAu8; layout.stride * layout.height];
    let row = layout.width * layout.order.bytes_per_pixel();
    for y in 0..layout.height {
        rng.fill(&mut data[y * layout.stride..y * layout.stride + row]);
    }
    data
}

/// `buf` laid out as `l` as packed BGR.
fn to_bgr(buf: &[u8], l: &Packed) -> Vec<u8> {
    let (off, bpp) = (l.order.bgr_offsets().unwrap(), l.order.bytes_per_pixel());
    (0..l.width * l.height)
        .flat_map(|i| off.map(|c| buf[(i / l.width) * l.stride + (i % l.width) * bpp + c]))
        .collect()
}

fn random_layout(rng: &mut StdRng, w: usize, h: usize) -> Packed {
    let order = ORDERS[rng.random_range(0..ORDERS.len())];
    let pad = [0, 0, 1, 3, 8][rng.random_range(0..5)];
    let tight = Packed::tight(w, h, order);
    Packed {
        stride: tight.stride + pad,
        ..tight
    }
}

fn image_ref<'a>(data: &'a [u8], l: &Packed) -> ImageRef<'a> {
    ImageRef::new(data, l.width, l.height, l.stride, l.order).unwrap()
}

fn image_mut<'a>(data: &'a mut [u8], l: &Packed) -> ImageMut<'a> {
    ImageMut::new(data, l.width, l.height, l.stride, l.order).unwrap()
}

/// A polygon: points on a rotated-free ellipse at sorted random angles (convex up to rounding),
/// or, one time in four, vertices in random order (OpenCV fills whatever it is given).
fn random_polygon(rng: &mut StdRng, w: usize, h: usize, far: bool) -> Vec<(i64, i64)> {
    let n = rng.random_range(1..40);
    let (w, h) = (w as f64, h as f64);
    let reach = if far { 2_000.0 } else { 0.7 };
    if rng.random_bool(0.25) {
        return (0..n)
            .map(|_| {
                let x = rng.random_range(-reach * w - 20.0..(1.0 + reach) * w + 20.0);
                let y = rng.random_range(-reach * h - 20.0..(1.0 + reach) * h + 20.0);
                (x as i64, y as i64)
            })
            .collect();
    }
    let (cx, cy) = (
        rng.random_range(-0.3 * w..1.3 * w),
        rng.random_range(-0.3 * h..1.3 * h),
    );
    let (rx, ry) = (
        rng.random_range(0.0..reach * w + 3.0),
        rng.random_range(0.0..reach * h + 3.0),
    );
    let mut angles: Vec<f64> = (0..n)
        .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
        .collect();
    angles.sort_by(f64::total_cmp);
    if rng.random_bool(0.5) {
        angles.reverse(); // both windings
    }
    angles
        .iter()
        .map(|a| ((cx + rx * a.cos()) as i64, (cy + ry * a.sin()) as i64))
        .collect()
}

fn random_rect(rng: &mut StdRng, w: usize, h: usize) -> Rect {
    let (x, y) = (rng.random_range(0..w), rng.random_range(0..h));
    let (rw, rh) = (rng.random_range(1..=w - x), rng.random_range(1..=h - y));
    Rect::new(x, y, rw, rh)
}

/// The Rust blend and the host chain on copies of `frame`; returns both frames. `sub` runs the
/// host chain on a buffer holding only `region` of the frame (the YUV path's RGB window).
#[allow(clippy::too_many_arguments)]
fn both_blends(
    frame: &[u8],
    layout: &Packed,
    face: &[u8],
    face_layout: &Packed,
    rect: Rect,
    polygon: &[(i64, i64)],
    sub: Option<Rect>,
    host: &mut HostPaste,
) -> (Vec<u8>, Vec<u8>) {
    let mut want = frame.to_vec();
    let mut pb = PasteBack::new();
    pb.blend_u8(
        &mut image_mut(&mut want, layout),
        &image_ref(face, face_layout),
        rect,
        polygon,
    )
    .unwrap();
    let mut got = frame.to_vec();
    match sub {
        None => {
            let target = FrameTarget::whole(*layout);
            host.blend_u8(&mut got, &target, face, face_layout, rect, polygon)
                .unwrap();
        }
        Some(r) => {
            let bpp = layout.order.bytes_per_pixel();
            let sl = Packed::tight(r.width, r.height, layout.order);
            let mut buf = vec![0u8; sl.stride * r.height];
            let copy = |src: &[u8], dst: &mut [u8], back: bool| {
                for y in 0..r.height {
                    let f = (r.y + y) * layout.stride + r.x * bpp;
                    let s = y * sl.stride;
                    let n = r.width * bpp;
                    if back {
                        dst[f..f + n].copy_from_slice(&src[s..s + n]);
                    } else {
                        dst[s..s + n].copy_from_slice(&src[f..f + n]);
                    }
                }
            };
            copy(frame, &mut buf, false);
            let target = FrameTarget {
                layout: sl,
                origin: (r.x, r.y),
                frame: (layout.width, layout.height),
            };
            host.blend_u8(&mut buf, &target, face, face_layout, rect, polygon)
                .unwrap();
            copy(&buf, &mut got, true);
        }
    }
    assert_eq!(host.window(), pb.window());
    assert!(host.mask() == pb.mask(), "mask");
    assert!(host.blurred() == pb.blurred(), "blurred mask");
    (want, got)
}

fn union(a: Rect, b: Rect) -> Rect {
    if b.is_empty() {
        return a;
    }
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let (x1, y1) = (
        (a.x + a.width).max(b.x + b.width),
        (a.y + a.height).max(b.y + b.height),
    );
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

#[test]
fn paste_back_matches_golden() {
    let Some(g) = PasteGolden::load() else { return };
    let face = g.face_bgr.clone();
    let face_l = Packed::tight(128, 128, ChannelOrder::Bgr);
    let face_rgb = swap_red_blue(&face);
    let face_rgb_l = Packed::tight(128, 128, ChannelOrder::Rgb);
    let mut host = HostPaste::new();
    for (s, f) in PasteGolden::SAMPLE_FRAMES.into_iter().enumerate() {
        let (w, h) = g.frame_size();
        let frame = g.frame_bgr(s);
        let rect = g.rect(s);
        let marks: Vec<[f32; 2]> = g.facemesh.marks(f).iter().map(|m| [m[0], m[1]]).collect();
        let polygon = paste_polygon(&marks, w, h).unwrap();
        let stored = g.polygon(s);
        assert_eq!(stored, polygon, "golden polygon {s}");
        let want = g.result(s);
        let layout = Packed::tight(w, h, ChannelOrder::Bgr);
        let target = FrameTarget::whole(layout);

        // Unblended paste, then the blend on the packed BGR frame.
        let mut p = frame.clone();
        kp::paste_face(&mut p, &target, &face, &face_l, rect).unwrap();
        let bad_pasted = count_bad(&p, g.pasted(s));
        let mut out = frame.clone();
        host.blend_u8(&mut out, &target, &face, &face_l, rect, &polygon)
            .unwrap();
        let win = host.window();
        let bad_mask = count_bad(&g.full_mask(host.mask(), win), g.mask(s));
        let bad_blur = count_bad(&g.full_mask(host.blurred(), win), g.blurred(s));
        let bad_result = count_bad(&out, want);

        // The same on a padded BGRx frame with an RGB face, and on an RGB window of the frame
        // holding only the touched region (the YUV path's buffer).
        let region = union(rect, win);
        let bgrx_l = Packed {
            stride: w * 4 + 7,
            ..Packed::tight(w, h, ChannelOrder::Bgrx)
        };
        let mut bad_layouts = 0;
        for (l, fc, fl, sub) in [
            (bgrx_l, &face_rgb, &face_rgb_l, None),
            (
                Packed::tight(w, h, ChannelOrder::Rgb),
                &face,
                &face_l,
                Some(region),
            ),
        ] {
            let bgr = ImageRef::packed(&frame, w, h, ChannelOrder::Bgr).unwrap();
            let img = relayout(&bgr, l.order, l.stride, 0xAA);
            let (rust, got) = both_blends(&img, &l, fc, fl, rect, &polygon, sub, &mut host);
            assert!(rust == got, "{l:?}: padding and colours as the Rust blend");
            bad_layouts += count_bad(&to_bgr(&got, &l), want);
        }
        // A polygon one pixel off must NOT match: the comparison above can fail.
        let moved: Vec<(i64, i64)> = polygon.iter().map(|&(x, y)| (x + 1, y)).collect();
        let mut off = frame.clone();
        host.blend_u8(&mut off, &target, &face, &face_l, rect, &moved)
            .unwrap();
        eprintln!(
            "paste {s}: {rect:?}, window {win:?}, region {region:?}: pasted {bad_pasted}, mask \
             {bad_mask}, blur {bad_blur}, result {bad_result}, BGRx and RGB window \
             {bad_layouts}; shifted polygon {} bad",
            count_bad(&off, want)
        );
        assert_eq!(
            (bad_pasted, bad_mask, bad_blur, bad_result, bad_layouts),
            (0, 0, 0, 0, 0)
        );
        assert!(count_bad(&off, want) > 0);

        // Face-contour polygons moved across every border of the frame, random layouts.
        let mut rng = StdRng::seed_from_u64(0xFACE + s as u64);
        let (x0, x1) = (
            polygon.iter().map(|p| p.0).min().unwrap(),
            polygon.iter().map(|p| p.0).max().unwrap(),
        );
        let (y0, y1) = (
            polygon.iter().map(|p| p.1).min().unwrap(),
            polygon.iter().map(|p| p.1).max().unwrap(),
        );
        let shifts = [
            (-x0 - (x1 - x0) / 2, 0),
            (w as i64 - x1 + (x1 - x0) / 3, 0),
            (0, -y0 - (y1 - y0) / 2),
            (0, h as i64 - y1 + (y1 - y0) / 4),
            (-x0 - 5, -y0 - 3),
            (w as i64 - 1 - x1 + 4, h as i64 - 1 - y1 + 2),
        ];
        for (dx, dy) in shifts {
            let moved: Vec<(i64, i64)> = polygon.iter().map(|&(x, y)| (x + dx, y + dy)).collect();
            let layout = random_layout(&mut rng, w, h);
            let img = random_image(&mut rng, &layout);
            let rect = random_rect(&mut rng, w, h);
            let (want, got) =
                both_blends(&img, &layout, &face, &face_l, rect, &moved, None, &mut host);
            assert!(want == got, "shift ({dx}, {dy}) {layout:?} {rect:?}");
            assert!(want != img, "the shifted contour must change the frame");
        }
    }
}

#[test]
fn face_to_u8_matches() {
    let mut rng = StdRng::seed_from_u64(7);
    let (nan, inf, k) = (f32::NAN, f32::INFINITY, 1.0 / 255.0);
    let specials = [
        nan, inf, -inf, -0.0, 0.0, 1.0, -1.0, 2.0, k, 0.5, 1.0000001, -0.0039, 1e-40,
    ];
    for round in 0..4 {
        let mut chw: Vec<f32> = (0..kp::FACE_LEN)
            .map(|_| rng.random_range(-0.2f32..1.2))
            .collect();
        if round == 1 {
            // Exact k / 255 and its neighbours, where truncation decides.
            for (i, v) in chw.iter_mut().enumerate() {
                let k = (i % 256) as f32 / 255.0;
                *v = match i % 3 {
                    0 => k,
                    1 => f32::from_bits(k.to_bits().wrapping_add(1)),
                    _ => f32::from_bits(k.to_bits().saturating_sub(1)),
                };
            }
        }
        for (i, &s) in specials.iter().enumerate() {
            chw[i * 997] = s;
        }
        let mut want = iplap::image::Image::new(1, 1, ChannelOrder::Bgr);
        face_to_u8(&chw, &mut want).unwrap();
        let mut got = vec![0u8; kp::FACE_LEN];
        kp::face_to_u8(&chw, &mut got).unwrap();
        assert_eq!(count_bad(want.data(), &got), 0, "round {round}");
        // And through the whole chain: `blend` from the f32 tensor.
        let (w, h) = (200, 150);
        let layout = random_layout(&mut rng, w, h);
        let img = random_image(&mut rng, &layout);
        let rect = random_rect(&mut rng, w, h);
        let poly = random_polygon(&mut rng, w, h, false);
        let mut want = img.clone();
        PasteBack::new()
            .blend(&mut image_mut(&mut want, &layout), &chw, rect, &poly)
            .unwrap();
        let mut got = img.clone();
        HostPaste::new()
            .blend(&mut got, &FrameTarget::whole(layout), &chw, rect, &poly)
            .unwrap();
        assert!(want == got, "blend from f32, round {round}");
    }
}

#[test]
fn resize_matches() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut rz = Resizer::new();
    for case in 0..400 {
        let (sw, sh) = if case % 3 == 0 {
            (128, 128)
        } else {
            (rng.random_range(1..90), rng.random_range(1..90))
        };
        let sl = random_layout(&mut rng, sw, sh);
        let src = random_image(&mut rng, &sl);
        let (dw, dh) = (rng.random_range(1..260), rng.random_range(1..260));
        let (fw, fh) = (dw + rng.random_range(0..20), dh + rng.random_range(0..20));
        let dl = random_layout(&mut rng, fw, fh);
        let dst = random_image(&mut rng, &dl);
        let rect = Rect::new(
            rng.random_range(0..=fw - dw),
            rng.random_range(0..=fh - dh),
            dw,
            dh,
        );
        let mut want = dst.clone();
        let full = Rect::new(0, 0, sw, sh);
        resize_bgr_u8(
            &image_ref(&src, &sl),
            full,
            &mut image_mut(&mut want, &dl),
            rect,
            &mut rz,
        )
        .unwrap();
        let mut got = dst.clone();
        kp::resize(&src, &sl, &mut got, &dl, rect).unwrap();
        assert!(want == got, "case {case}: {sl:?} -> {dl:?} {rect:?}");
        // paste_face is this resize at the crop rect.
        if case % 10 == 0 {
            let mut want = dst.clone();
            paste_face(
                &mut image_mut(&mut want, &dl),
                &image_ref(&src, &sl),
                rect,
                &mut rz,
            )
            .unwrap();
            let mut got = dst.clone();
            kp::paste_face(&mut got, &FrameTarget::whole(dl), &src, &sl, rect).unwrap();
            assert!(want == got, "paste_face case {case}");
        }
    }
}

#[test]
fn mask_matches_fill_convex_poly() {
    let mut rng = StdRng::seed_from_u64(23);
    let mut filled = 0;
    for case in 0..3000 {
        let (w, h) = (rng.random_range(1..160), rng.random_range(1..160));
        let mut poly = random_polygon(&mut rng, w, h, case % 50 == 0);
        match case % 7 {
            // Repeated vertices, horizontal edges, collinear points.
            0 if poly.len() > 2 => poly[1] = poly[0],
            1 if poly.len() > 2 => poly[2].1 = poly[1].1,
            2 => poly = (0..5).map(|i| (3 * i as i64, 2 * i as i64 + 1)).collect(),
            _ => {}
        }
        // Any window, including ones cutting the polygon and ones far from it.
        let window = random_rect(&mut rng, w, h);
        let mut want = vec![0u8; window.width * window.height];
        fill_convex_poly(&mut want, window, &poly, 255);
        let got = kp::polygon_mask(&poly, window).unwrap();
        assert!(want == got, "case {case}: {poly:?} in {window:?}");
        filled += want.iter().filter(|&&v| v != 0).count();
    }
    assert!(filled > 100_000, "the cases must draw something ({filled})");
    assert_eq!(
        kp::polygon_mask(&[], Rect::new(0, 0, 4, 4)).unwrap(),
        vec![0; 16]
    );
}

#[test]
fn blur_matches_gaussian_blur_region() {
    let mut rng = StdRng::seed_from_u64(31);
    let (mut spans, mut scratch) = (Vec::new(), BlurScratch::default());
    for case in 0..1500 {
        // Tiny frames (narrower than the 21 taps) make the reflection fold more than once.
        let big = case % 4 != 0;
        let (fw, fh) = if big {
            (rng.random_range(1..200), rng.random_range(1..200))
        } else {
            (rng.random_range(1..12), rng.random_range(1..12))
        };
        let window = random_rect(&mut rng, fw, fh);
        let n = window.width * window.height;
        let mask: Vec<u8> = match case % 5 {
            0 => (0..n).map(|_| rng.random()).collect(),
            1 => vec![255; n],
            2 => vec![0; n],
            _ => {
                let poly = random_polygon(&mut rng, fw, fh, false);
                kp::polygon_mask(&poly, window).unwrap()
            }
        };
        let mut want = vec![0u8; n];
        gaussian_blur_region(&mask, window, fw, fh, &mut want, &mut spans, &mut scratch);
        let got = kp::blur_mask(&mask, window, (fw, fh)).unwrap();
        assert!(want == got, "case {case}: {window:?} in {fw}x{fh}");
    }
}

#[test]
fn blend_matches_paste_back() {
    let mut rng = StdRng::seed_from_u64(47);
    let mut host = HostPaste::new();
    let (mut changed, mut sub_cases) = (0, 0);
    for case in 0..600 {
        let (w, h) = if case % 5 == 0 {
            (rng.random_range(1..16), rng.random_range(1..16))
        } else {
            (rng.random_range(16..180), rng.random_range(16..140))
        };
        let layout = random_layout(&mut rng, w, h);
        let frame = random_image(&mut rng, &layout);
        let (fw, fh) = if case % 2 == 0 {
            (128, 128)
        } else {
            (rng.random_range(1..70), rng.random_range(1..70))
        };
        let face_l = random_layout(&mut rng, fw, fh);
        let face = random_image(&mut rng, &face_l);
        let rect = random_rect(&mut rng, w, h);
        let poly = random_polygon(&mut rng, w, h, case % 100 == 0);
        // Half the cases on a buffer holding only the touched region (plus a random margin).
        let sub = if case % 2 == 1 {
            let win = kp::polygon_window(&poly, (w, h))
                .unwrap()
                .unwrap_or_default();
            let u = union(rect, win);
            let (x0, y0) = (
                u.x - rng.random_range(0..=u.x.min(3)),
                u.y - rng.random_range(0..=u.y.min(3)),
            );
            let (x1, y1) = (
                (u.x + u.width + rng.random_range(0..4)).min(w),
                (u.y + u.height + rng.random_range(0..4)).min(h),
            );
            sub_cases += 1;
            Some(Rect::new(x0, y0, x1 - x0, y1 - y0))
        } else {
            None
        };
        let (want, got) = both_blends(&frame, &layout, &face, &face_l, rect, &poly, sub, &mut host);
        assert!(
            want == got,
            "case {case}: {layout:?} {rect:?} {poly:?} sub {sub:?}"
        );
        changed += (want != frame) as usize;
    }
    assert!(changed > 300 && sub_cases > 250, "{changed} frames changed");
}

#[test]
fn bad_input_is_an_error() {
    let l = Packed::tight(32, 24, ChannelOrder::Bgr);
    let t = FrameTarget::whole(l);
    let buf = vec![0u8; l.stride * 24];
    let poly = [(2i64, 2i64), (20, 3), (10, 20)];
    let ok = Rect::new(4, 4, 10, 10);
    assert!(kp::plan(&t, buf.len(), ok, &poly).is_ok());
    let bad_region =
        |r: Result<kp::PastePlan, ImageError>| matches!(r, Err(ImageError::BadRegion { .. }));
    assert!(bad_region(kp::plan(
        &t,
        buf.len(),
        Rect::new(4, 4, 0, 3),
        &poly
    )));
    assert!(bad_region(kp::plan(
        &t,
        buf.len(),
        Rect::new(30, 4, 3, 3),
        &poly
    )));
    assert!(matches!(
        kp::plan(&t, buf.len() - 1, ok, &poly),
        Err(ImageError::Layout(_))
    ));
    let narrow = FrameTarget::whole(Packed { stride: 95, ..l });
    assert!(matches!(
        kp::plan(&narrow, 4096, ok, &poly),
        Err(ImageError::Layout(_))
    ));
    let grey = FrameTarget::whole(Packed::tight(32, 24, ChannelOrder::Gray));
    assert!(matches!(
        kp::plan(&grey, 4096, ok, &poly),
        Err(ImageError::NeedsColour { .. })
    ));
    let far = [(0i64, 0i64), (kp::MAX_COORD + 1, 3)];
    assert!(matches!(
        kp::plan(&t, buf.len(), ok, &far),
        Err(ImageError::BadVertex { index: 1, .. })
    ));
    // A sub-buffer must hold the rect and the window, and lie in the frame.
    let part = Packed::tight(16, 16, ChannelOrder::Bgr);
    let sub = FrameTarget {
        layout: part,
        origin: (0, 0),
        frame: (32, 24),
    };
    assert!(bad_region(kp::plan(&sub, 16 * 48, ok, &poly)));
    let small = [(5i64, 5i64), (6, 5), (5, 6)];
    assert!(bad_region(kp::plan(
        &sub,
        16 * 48,
        Rect::new(2, 2, 4, 4),
        &small
    )));
    assert!(
        kp::plan(
            &FrameTarget {
                origin: (0, 0),
                ..sub
            },
            16 * 48,
            Rect::new(2, 2, 4, 4),
            &[(2, 2)]
        )
        .is_ok()
    );
    assert!(bad_region(kp::plan(
        &FrameTarget {
            origin: (20, 0),
            ..sub
        },
        16 * 48,
        ok,
        &[]
    )));
    // An off-frame polygon is a no-op, not an error.
    let p = kp::plan(&t, buf.len(), ok, &[(-50, -50), (-40, -45), (-45, -30)]).unwrap();
    assert_eq!(p.window, None);
    // The stage wrappers check their buffers too.
    assert!(kp::face_to_u8(&[0.0; 10], &mut [0; kp::FACE_LEN]).is_err());
    assert!(kp::face_to_u8(&vec![0.0; kp::FACE_LEN], &mut [0; 3]).is_err());
    let mut dst = buf.clone();
    assert!(kp::resize(&buf, &l, &mut dst, &l, Rect::new(0, 0, 33, 2)).is_err());
    assert!(kp::resize(&buf[..10], &l, &mut dst, &l, ok).is_err());
    assert!(
        kp::resize(
            &buf,
            &Packed::tight(0, 0, ChannelOrder::Bgr),
            &mut dst,
            &l,
            ok
        )
        .is_err()
    );
    assert!(kp::blur_mask(&[0; 12], Rect::new(30, 0, 4, 3), (32, 24)).is_err());
    assert!(kp::blur_mask(&[0; 11], Rect::new(0, 0, 4, 3), (32, 24)).is_err());
    assert!(kp::polygon_mask(&far, ok).is_err());
    let mut host = HostPaste::new();
    let mut frame = buf.clone();
    let face = vec![0u8; 128 * 128 * 3];
    let face_l = Packed::tight(128, 128, ChannelOrder::Bgr);
    assert!(
        host.blend_u8(&mut frame, &t, &face[..100], &face_l, ok, &poly)
            .is_err()
    );
    assert!(host.blend(&mut frame, &t, &[0.0; 5], ok, &poly).is_err());
    assert!(frame == buf, "a rejected blend leaves the frame alone");
}
