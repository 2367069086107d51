//! The host build of `kernels/yuv.cuh` against `RgbWindow::run` (src/image/yuv.rs): the RGB window
//! it converts, and the frame after the same blend is written back, must be bit-identical —
//! every plane byte, row padding included — for I420 and NV12, odd sizes, padded strides, windows
//! touching every border, every `YuvMatrix` and both ranges. No golden data: the CPU path is the
//! reference, and it has its own tests.

use iplap::image::yuv::{Plane, RgbWindow, Yuv420Mut, YuvColour, YuvMatrix, chroma_aligned};
use iplap::image::{ImageError, Rect};
use iplap::kernels::host::yuv::{YuvPlanes, to_rgb_window, writeback_chroma, writeback_luma};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const MATRICES: [YuvMatrix; 5] = [
    YuvMatrix::Bt601,
    YuvMatrix::Bt709,
    YuvMatrix::Bt2020,
    YuvMatrix::Smpte240m,
    YuvMatrix::Fcc,
];

/// Every encoding: 5 matrices × 2 ranges.
fn colours() -> Vec<YuvColour> {
    MATRICES
        .iter()
        .flat_map(|&m| [false, true].map(|full| YuvColour::new(m, full)))
        .collect()
}

/// A 4:2:0 frame's bytes. NV12 keeps its UV plane in `u` (`v` empty).
#[derive(Clone, Debug, PartialEq)]
struct Frame {
    w: usize,
    h: usize,
    nv12: bool,
    y: Vec<u8>,
    ys: usize,
    u: Vec<u8>,
    us: usize,
    v: Vec<u8>,
    vs: usize,
}

/// A plane of `rows` rows of `row` bytes at `stride`, random bytes (padding too); sometimes the
/// last row is unpadded, as GStreamer may map it, so a read past the window's rows would show up
/// as a length error on the Rust side instead of silently working.
fn plane(rng: &mut StdRng, row: usize, rows: usize, stride: usize) -> Vec<u8> {
    let len = match rows {
        0 => 0,
        _ if rng.random_bool(0.5) => rows * stride,
        _ => (rows - 1) * stride + row,
    };
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data
}

fn random_frame(rng: &mut StdRng, w: usize, h: usize, nv12: bool) -> Frame {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let ys = w + rng.random_range(0..=5);
    let y = plane(rng, w, h, ys);
    let (u, us, v, vs) = if nv12 {
        let us = 2 * cw + rng.random_range(0..=5);
        (plane(rng, 2 * cw, ch, us), us, Vec::new(), 0)
    } else {
        let us = cw + rng.random_range(0..=4);
        let vs = cw + rng.random_range(0..=4);
        (plane(rng, cw, ch, us), us, plane(rng, cw, ch, vs), vs)
    };
    Frame {
        w,
        h,
        nv12,
        y,
        ys,
        u,
        us,
        v,
        vs,
    }
}

fn rust_yuv(f: &mut Frame) -> Yuv420Mut<'_> {
    let y = Plane {
        data: &mut f.y,
        stride: f.ys,
    };
    let u = Plane {
        data: &mut f.u,
        stride: f.us,
    };
    if f.nv12 {
        Yuv420Mut::nv12(f.w, f.h, y, u).unwrap()
    } else {
        let v = Plane {
            data: &mut f.v,
            stride: f.vs,
        };
        Yuv420Mut::i420(f.w, f.h, y, u, v).unwrap()
    }
}

fn host_yuv(f: &mut Frame) -> YuvPlanes<'_> {
    let y = Plane {
        data: &mut f.y,
        stride: f.ys,
    };
    let u = Plane {
        data: &mut f.u,
        stride: f.us,
    };
    if f.nv12 {
        YuvPlanes::nv12(f.w, f.h, y, u).unwrap()
    } else {
        let v = Plane {
            data: &mut f.v,
            stride: f.vs,
        };
        YuvPlanes::i420(f.w, f.h, y, u, v).unwrap()
    }
}

/// What the "renderer" does to the RGB window, a pure function of the frame pixel: inside `area`
/// a pixel changes with probability `p_change` / 256 — to random RGB, or by one level of one
/// channel (small enough that Y often stays the same, which must still count as a change) — and
/// otherwise is left as it is.
#[derive(Clone, Copy, Debug)]
struct Blend {
    seed: u64,
    area: Rect,
    p_change: u64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Blend {
    /// Applies the blend to frame pixel (x, y); returns whether its RGB changed.
    fn apply(&self, x: usize, y: usize, px: &mut [u8]) -> bool {
        let a = self.area;
        if x < a.x || y < a.y || x >= a.x + a.width || y >= a.y + a.height {
            return false;
        }
        let h = splitmix(self.seed ^ ((x as u64) << 32) ^ y as u64);
        if h & 255 >= self.p_change {
            return false;
        }
        let old = [px[0], px[1], px[2]];
        if h & 256 != 0 {
            let c = ((h >> 9) % 3) as usize;
            px[c] = if px[c] == 255 { 254 } else { px[c] + 1 };
        } else {
            px.copy_from_slice(&(h >> 16).to_le_bytes()[..3]);
        }
        old != [px[0], px[1], px[2]]
    }
}

/// Where the host path keeps the RGB window: packed with row padding, or a frame-sized image at
/// frame coordinates (as the CPU path's scratch is).
#[derive(Clone, Copy, Debug)]
enum Layout {
    Packed { pad: usize },
    FrameSized,
}

/// One case through both paths; asserts bit-identity and returns (window pixels that the blend
/// left alone but whose Y a YUV → RGB → Y round trip would alter, same for chroma blocks).
fn check_case(
    frame: &Frame,
    colour: &YuvColour,
    region: Rect,
    blend: Blend,
    layout: Layout,
    what: &str,
) -> (usize, usize) {
    let (w, h) = (frame.w, frame.h);
    let r = chroma_aligned(region, w, h);

    // The CPU path, recording the RGB window it hands the renderer.
    let mut want = frame.clone();
    let mut seen = Vec::new();
    let mut changed = vec![false; r.width * r.height];
    let ((), want_written) = RgbWindow::default()
        .run::<_, ImageError>(&mut rust_yuv(&mut want), colour, region, |img| {
            for y in r.y..r.y + r.height {
                seen.extend_from_slice(&img.row(y)[3 * r.x..3 * (r.x + r.width)]);
                for x in r.x..r.x + r.width {
                    let px = &mut img.row_mut(y)[3 * x..3 * x + 3];
                    changed[(y - r.y) * r.width + x - r.x] = blend.apply(x, y, px);
                }
            }
            Ok(())
        })
        .unwrap();

    // The host kernels.
    let mut got = frame.clone();
    let (mut rgb, off, pitch) = match layout {
        Layout::Packed { pad } => {
            let pitch = 3 * r.width + pad;
            (vec![0xa5; r.height * pitch], 0, pitch)
        }
        Layout::FrameSized => (vec![0xa5; 3 * w * h], 3 * (r.y * w + r.x), 3 * w),
    };
    let bpitch = 3 * r.width + 1;
    let mut before = vec![0x5a; r.height * bpitch];
    let mut planes = host_yuv(&mut got);
    to_rgb_window(
        &planes,
        colour,
        r,
        (&mut rgb[off..], pitch),
        Some((&mut before, bpitch)),
    )
    .unwrap();
    let mut host_seen = Vec::new();
    let mut host_before = Vec::new();
    for j in 0..r.height {
        host_seen.extend_from_slice(&rgb[off + j * pitch..][..3 * r.width]);
        host_before.extend_from_slice(&before[j * bpitch..][..3 * r.width]);
    }
    assert!(host_seen == seen, "{what}: RGB window differs");
    assert!(host_before == seen, "{what}: before copy differs");
    for j in 0..r.height {
        for i in 0..r.width {
            let px = &mut rgb[off + j * pitch + 3 * i..][..3];
            blend.apply(r.x + i, r.y + j, px);
        }
    }
    let written = writeback_luma(
        &mut planes,
        colour,
        r,
        (&rgb[off..], pitch),
        (&before, bpitch),
    )
    .unwrap();
    writeback_chroma(
        &mut planes,
        colour,
        r,
        (&rgb[off..], pitch),
        (&before, bpitch),
    )
    .unwrap();

    assert_eq!(written, want_written, "{what}: luma samples written");
    // An oracle independent of both implementations: one write per changed pixel.
    assert_eq!(
        written,
        changed.iter().filter(|&&c| c).count(),
        "{what}: written count"
    );
    assert!(got.y == want.y, "{what}: Y plane differs");
    assert!(got.u == want.u, "{what}: U / UV plane differs");
    assert!(got.v == want.v, "{what}: V plane differs");

    // Untouched samples whose round trip is lossy: they prove the "only changed samples" rule
    // is exercised (rewriting everything would alter them).
    let (mut lossy_y, mut lossy_c) = (0, 0);
    for j in 0..r.height {
        for i in 0..r.width {
            let (x, y) = (r.x + i, r.y + j);
            let px: [u8; 3] = seen[3 * (j * r.width + i)..][..3].try_into().unwrap();
            if !changed[j * r.width + i] && colour.luma(px) != frame.y[y * frame.ys + x] {
                lossy_y += 1;
            }
        }
    }
    for bj in (0..r.height).step_by(2) {
        for bi in (0..r.width).step_by(2) {
            let (mut sum, mut n, mut any) = ([0u32; 3], 0, false);
            for j in bj..(bj + 2).min(r.height) {
                for i in bi..(bi + 2).min(r.width) {
                    any |= changed[j * r.width + i];
                    n += 1;
                    let k = 3 * (j * r.width + i);
                    for (s, &b) in sum.iter_mut().zip(&seen[k..k + 3]) {
                        *s += u32::from(b);
                    }
                }
            }
            let (cx, cy) = ((r.x + bi) / 2, (r.y + bj) / 2);
            let orig = if frame.nv12 {
                let k = cy * frame.us + 2 * cx;
                (frame.u[k], frame.u[k + 1])
            } else {
                (frame.u[cy * frame.us + cx], frame.v[cy * frame.vs + cx])
            };
            if !any && colour.chroma(sum, n) != orig {
                lossy_c += 1;
            }
        }
    }
    (lossy_y, lossy_c)
}

/// A region of the frame touching the border selected by `edge` (0 random, 1 left, 2 top,
/// 3 right, 4 bottom, 5 whole frame, 6 partly outside the frame, 7 empty).
fn region(rng: &mut StdRng, w: usize, h: usize, edge: usize) -> Rect {
    let x = rng.random_range(0..w);
    let y = rng.random_range(0..h);
    let rw = rng.random_range(1..=w - x);
    let rh = rng.random_range(1..=h - y);
    match edge {
        1 => Rect::new(0, y, rng.random_range(1..=w), rh),
        2 => Rect::new(x, 0, rw, rng.random_range(1..=h)),
        3 => Rect::new(x, y, w - x, rh),
        4 => Rect::new(x, y, rw, h - y),
        5 => Rect::new(0, 0, w, h),
        6 => Rect::new(x, y, w + 3, h + 5),
        7 => Rect::new(x, y, 0, rh),
        _ => Rect::new(x, y, rw, rh),
    }
}

#[test]
fn random_frames_windows_and_blends_match_rgb_window() {
    let colours = colours();
    let mut rng = StdRng::seed_from_u64(0x5955_5620);
    let (mut lossy_y, mut lossy_c, mut cases) = (0, 0, 0);
    for case in 0..1200 {
        let nv12 = case % 2 == 1;
        let colour = colours[(case / 2) % colours.len()];
        let (w, h) = (rng.random_range(1..=37), rng.random_range(1..=29));
        let frame = random_frame(&mut rng, w, h, nv12);
        let reg = region(&mut rng, w, h, (case / 20) % 8);
        let r = chroma_aligned(reg, w, h);
        // The blend covers the whole window, a part of it, or a sub-rect at an odd offset.
        let area = match case % 3 {
            0 => r,
            _ => {
                let x = r.x + rng.random_range(0..=r.width);
                let y = r.y + rng.random_range(0..=r.height);
                Rect::new(
                    x,
                    y,
                    rng.random_range(0..=r.x + r.width - x),
                    rng.random_range(0..=r.y + r.height - y),
                )
            }
        };
        let p_change = [0, 16, 96, 200, 256][case % 5];
        let blend = Blend {
            seed: rng.random(),
            area,
            p_change,
        };
        let layout = match case % 4 {
            0 => Layout::FrameSized,
            k => Layout::Packed { pad: 2 * k - 2 },
        };
        let what = format!(
            "case {case}: {w}x{h} nv12={nv12} {colour:?} region {reg:?} window {r:?} {blend:?} {layout:?}"
        );
        let (ly, lc) = check_case(&frame, &colour, reg, blend, layout, &what);
        lossy_y += ly;
        lossy_c += lc;
        cases += 1;
    }
    eprintln!(
        "{cases} cases; untouched lossy samples kept: {lossy_y} luma, {lossy_c} chroma blocks"
    );
    assert!(lossy_y > 1000 && lossy_c > 300);
}

/// Large windows: every encoding over a whole odd-sized frame, most pixels changed, so each
/// conversion sees many thousands of distinct values.
#[test]
fn whole_odd_frames_every_encoding() {
    let mut rng = StdRng::seed_from_u64(7);
    for (k, colour) in colours().iter().enumerate() {
        for nv12 in [false, true] {
            let frame = random_frame(&mut rng, 321, 181, nv12);
            let blend = Blend {
                seed: k as u64,
                area: Rect::new(0, 0, 321, 181),
                p_change: 200,
            };
            let what = format!("{colour:?} nv12={nv12}");
            let layout = Layout::Packed { pad: 3 };
            check_case(
                &frame,
                colour,
                Rect::new(0, 0, 321, 181),
                blend,
                layout,
                &what,
            );
        }
    }
}

/// A render that changes nothing writes nothing, although most of these samples would not
/// survive a round trip; and a one-pixel change at the odd corner rewrites exactly that pixel's
/// Y and its (1 × 1) chroma block.
#[test]
fn unchanged_pixels_keep_their_bytes() {
    let mut rng = StdRng::seed_from_u64(11);
    let colour = YuvColour::new(YuvMatrix::Bt709, false);
    for nv12 in [false, true] {
        let frame = random_frame(&mut rng, 9, 7, nv12);
        let whole = Rect::new(0, 0, 9, 7);
        let none = Blend {
            seed: 1,
            area: whole,
            p_change: 0,
        };
        let layout = Layout::Packed { pad: 0 };
        let (lossy_y, lossy_c) = check_case(&frame, &colour, whole, none, layout, "no change");
        assert!(lossy_y > 20 && lossy_c > 5, "{lossy_y} {lossy_c}");

        let corner = Blend {
            seed: 2,
            area: Rect::new(8, 6, 1, 1),
            p_change: 256,
        };
        let mut got = frame.clone();
        let mut planes = host_yuv(&mut got);
        let (mut rgb, mut before) = (vec![0; 3], vec![0; 3]);
        let r = Rect::new(8, 6, 1, 1);
        to_rgb_window(&planes, &colour, r, (&mut rgb, 3), Some((&mut before, 3))).unwrap();
        assert!(corner.apply(8, 6, &mut rgb));
        let n = writeback_luma(&mut planes, &colour, r, (&rgb, 3), (&before, 3)).unwrap();
        writeback_chroma(&mut planes, &colour, r, (&rgb, 3), (&before, 3)).unwrap();
        assert_eq!(n, 1);
        let px: [u8; 3] = rgb[..].try_into().unwrap();
        let mut want = frame.clone();
        want.y[6 * want.ys + 8] = colour.luma(px);
        let (u, v) = colour.chroma(px.map(u32::from), 1);
        if nv12 {
            want.u[3 * want.us + 8] = u;
            want.u[3 * want.us + 9] = v;
        } else {
            want.u[3 * want.us + 4] = u;
            want.v[3 * want.vs + 4] = v;
        }
        assert_eq!(got, want, "nv12={nv12}");
    }
}

/// The comparison must be able to fail: another encoding, or a write-back against the wrong
/// `before`, gives different bytes.
#[test]
fn wrong_inputs_are_detected() {
    let mut rng = StdRng::seed_from_u64(3);
    let frame = random_frame(&mut rng, 16, 10, false);
    let r = Rect::new(0, 0, 16, 10);
    let run = |colour: &YuvColour, stale_before: bool| {
        let mut got = frame.clone();
        let mut planes = host_yuv(&mut got);
        let (mut rgb, mut before) = (vec![0; 480], vec![0; 480]);
        to_rgb_window(&planes, colour, r, (&mut rgb, 48), Some((&mut before, 48))).unwrap();
        rgb[100] ^= 0x40;
        if stale_before {
            before.fill(0);
        }
        writeback_luma(&mut planes, colour, r, (&rgb, 48), (&before, 48)).unwrap();
        writeback_chroma(&mut planes, colour, r, (&rgb, 48), (&before, 48)).unwrap();
        got
    };
    let bt601 = YuvColour::new(YuvMatrix::Bt601, false);
    let good = run(&bt601, false);
    assert_ne!(good, frame, "a changed pixel is written");
    assert_ne!(run(&YuvColour::new(YuvMatrix::Bt709, false), false), good);
    assert_ne!(run(&YuvColour::new(YuvMatrix::Bt601, true), false), good);
    assert_ne!(run(&bt601, true), good);
}

/// Bad layouts are errors, never out-of-bounds accesses on the C side.
#[test]
fn bad_layouts_are_rejected() {
    let colour = YuvColour::new(YuvMatrix::Bt601, false);
    let mut rng = StdRng::seed_from_u64(5);
    let mut frame = random_frame(&mut rng, 7, 5, true);
    frame.y.resize(frame.ys * 5, 0);
    let (ys, us) = (frame.ys, frame.us);
    // Planes too small, strides too short or beyond i32.
    let mut short = vec![0u8; ys * 4];
    let mut uv = frame.u.clone();
    fn p(data: &mut [u8], stride: usize) -> Plane<'_> {
        Plane { data, stride }
    }
    assert!(YuvPlanes::nv12(7, 5, p(&mut short, ys), p(&mut uv, us)).is_err());
    assert!(YuvPlanes::nv12(7, 5, p(&mut frame.y, ys), p(&mut uv, 7)).is_err());
    let mut one_row = vec![0u8; 8];
    let mut c = vec![0u8; 8];
    let huge = 1usize << 31;
    assert!(YuvPlanes::nv12(7, 1, p(&mut one_row, huge), p(&mut c, 8)).is_err());
    assert!(YuvPlanes::nv12(7, 1, p(&mut one_row, 7), p(&mut c, 8)).is_ok());
    let (mut u, mut v) = (vec![0u8; 11], vec![0u8; 12]);
    assert!(YuvPlanes::i420(7, 5, p(&mut frame.y, ys), p(&mut u, 4), p(&mut v, 4)).is_err());

    let mut planes = host_yuv(&mut frame);
    let mut rgb = vec![0u8; 3 * 7 * 5];
    let mut before = rgb.clone();
    // Windows that are not chroma-aligned, or leave the frame.
    for r in [
        Rect::new(1, 0, 2, 2),
        Rect::new(0, 1, 2, 2),
        Rect::new(0, 0, 3, 2),
        Rect::new(0, 0, 2, 3),
        Rect::new(0, 0, 8, 5),
        Rect::new(8, 0, 0, 0),
    ] {
        assert!(to_rgb_window(&planes, &colour, r, (&mut rgb, 21), None).is_err());
        assert!(writeback_luma(&mut planes, &colour, r, (&rgb, 21), (&before, 21)).is_err());
        assert!(writeback_chroma(&mut planes, &colour, r, (&rgb, 21), (&before, 21)).is_err());
    }
    let whole = Rect::new(0, 0, 7, 5);
    // The whole odd frame is aligned (cut by the frame edge).
    assert!(to_rgb_window(&planes, &colour, whole, (&mut rgb, 21), None).is_ok());
    // Pitches shorter than a row, buffers shorter than the window.
    assert!(to_rgb_window(&planes, &colour, whole, (&mut rgb, 20), None).is_err());
    assert!(to_rgb_window(&planes, &colour, whole, (&mut rgb[1..], 21), None).is_err());
    let opt = Some((&mut before[..104], 21));
    assert!(to_rgb_window(&planes, &colour, whole, (&mut rgb, 21), opt).is_err());
    let b = (&before[..104], 21);
    assert!(writeback_luma(&mut planes, &colour, whole, (&rgb, 21), b).is_err());
    assert!(writeback_chroma(&mut planes, &colour, whole, (&rgb[..104], 21), b).is_err());
    assert!(writeback_luma(&mut planes, &colour, whole, (&rgb, 22), (&before, 21)).is_err());
    assert!(writeback_luma(&mut planes, &colour, whole, (&rgb, huge), (&before, 21)).is_err());
}

/// `YuvColour::coefficients` is laid out as C's `IplapYuvCoeffs` (19 packed f32).
#[test]
fn coefficients_layout() {
    use iplap::image::yuv::YuvCoefficients;
    assert_eq!(std::mem::size_of::<YuvCoefficients>(), 76);
    assert_eq!(std::mem::align_of::<YuvCoefficients>(), 4);
    let c = YuvColour::new(YuvMatrix::Bt601, false).coefficients();
    assert_eq!(c.y_offset, 16.0);
    assert_eq!(c.inv[1], 0.0);
    assert_eq!(c.inv[8], 0.0);
}
