//! `iplaprender` on 4:2:0 YUV (I420, NV12) in a harness: the caps, pass-through, the bytes it may
//! write (only the paste window, in every plane; padding never), and agreement with the packed-RGB
//! path behind GStreamer's own colour conversion (`videoconvert ! RGB ! iplaprender !
//! videoconvert`) on the same frame and meta.
//!
//! Model: the reference formula weights as a model package. Frames and landmarks:
//! `golden/public/facemesh/129` (256 x 256 RGB), placed at an odd offset in a larger frame of odd
//! height, converted to YUV with `gst_video::VideoConverter`. 2 references keep renders short.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gst::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorimetry, VideoFormat, VideoInfo};
use gstiplap::meta::LandmarkMeta;
use iplap::engine::landmarks::{FaceInfo, FrameStatus, SyncedFace};
use iplap::face::crop_box::{CropBox, paste_polygon};
use iplap::image::{GAUSS_RADIUS, Rect};

/// Golden frame size.
const GW: usize = 256;
const GH: usize = 256;
/// Test frame size (odd height: a half chroma row) and where the golden frame sits (odd offsets:
/// the crop box and paste window start between chroma samples).
const W: usize = GW + 6;
const H: usize = GH + 3;
const AT: (usize, usize) = (3, 1);
const THREADS: u32 = 2;
const REFERENCES: u32 = 2;

use common::{Golden, golden, init};

fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::formula_package("render-yuv-element-package", &["renderer"]))
}

/// The synced face of golden frame `f` placed at [`AT`] in a [`W`] x [`H`] frame, the mouth of
/// the "predicted" content opened a little (as in tests/render.rs).
fn synced(g: &Golden, f: usize) -> SyncedFace {
    let (dx, dy) = AT;
    let b = g.boxes[f];
    let points_px: Vec<[f32; 2]> = g.mesh[f]
        .iter()
        .map(|&[x, y]| [x * GW as f32 + dx as f32, y * GH as f32 + dy as f32])
        .collect();
    let points_norm = points_px
        .iter()
        .map(|&[x, y]| [x / W as f32, y / H as f32])
        .collect();
    let mut window_pose = [[[0f32; 74]; 2]; 5];
    let mut window_content = [[[0f32; 57]; 2]; 5];
    let mut window_crop_hw = [(0, 0); 5];
    for j in 0..5 {
        let fj = f + j - 2;
        window_pose[j] = g.sets[fj].pose_f32();
        let content = g.sets[fj].content_f32();
        let mid = content[1].iter().sum::<f32>() / content[1].len() as f32;
        window_content[j][0] = content[0];
        for (o, &y) in window_content[j][1].iter_mut().zip(&content[1]) {
            *o = mid + 1.15 * (y - mid);
        }
        window_crop_hw[j] = (g.boxes[fj].height(), g.boxes[fj].width());
    }
    SyncedFace {
        face: FaceInfo {
            crop_box: CropBox {
                x1: b.x1 + dx,
                x2: b.x2 + dx,
                y1: b.y1 + dy,
                y2: b.y2 + dy,
            },
            points_px,
            points_norm,
            frame_size: (W, H),
        },
        pose: window_pose[2],
        content: window_content[2],
        mel_chunk: (0..80 * 16)
            .map(|i| ((i * 37 % 101) as f32 / 12.5) - 4.0)
            .collect(),
        window_pose,
        window_content,
        window_crop_hw,
        bank: g.bank.clone(),
    }
}

fn video_info(format: VideoFormat, colorimetry: Option<&str>) -> VideoInfo {
    let c = colorimetry.map(|c| c.parse::<VideoColorimetry>().unwrap());
    VideoInfo::builder(format, W as u32, H as u32)
        .fps(gst::Fraction::new(25, 1))
        .colorimetry_if_some(c.as_ref())
        .build()
        .unwrap()
}

fn stamp(buf: &mut gst::Buffer, i: u64) {
    let b = buf.make_mut();
    b.set_pts(i * 40 * gst::ClockTime::MSECOND);
    b.set_duration(40 * gst::ClockTime::MSECOND);
}

/// Converts with GStreamer's converter (what `videoconvert` does; no dithering).
fn convert(buf: &gst::Buffer, from: &VideoInfo, to: &VideoInfo) -> gst::Buffer {
    let mut config = gst_video::VideoConverterConfig::new();
    config.set_dither_method(gst_video::VideoDitherMethod::None);
    let conv = gst_video::VideoConverter::new(from, to, Some(config)).unwrap();
    let src = gst_video::VideoFrame::from_buffer_readable(buf.clone(), from).unwrap();
    let out = gst::Buffer::from_mut_slice(vec![0xabu8; to.size()]);
    let mut dst = gst_video::VideoFrame::from_buffer_writable(out, to).unwrap();
    conv.frame(&src, &mut dst);
    let mut out = dst.into_buffer();
    {
        let o = out.get_mut().unwrap();
        o.set_pts(buf.pts());
        o.set_duration(buf.duration());
    }
    out
}

/// Golden frame `f` at [`AT`] on a patterned background, as a YUV buffer of `info` (converted
/// from RGB by GStreamer; padding bytes 0xab), PTS `i` x 40 ms.
fn yuv_frame(g: &Golden, f: usize, info: &VideoInfo, i: u64) -> gst::Buffer {
    let rgb_info = video_info(VideoFormat::Rgb, None);
    let mut rgb = gst::Buffer::from_mut_slice(vec![0u8; rgb_info.size()]);
    {
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(rgb.get_mut().unwrap(), &rgb_info)
                .unwrap();
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data_mut(0).unwrap();
        let (dx, dy) = AT;
        for y in 0..H {
            for x in 0..W {
                let px = if (dx..dx + GW).contains(&x) && (dy..dy + GH).contains(&y) {
                    let i = ((y - dy) * GW + x - dx) * 3;
                    [g.frames[f][i], g.frames[f][i + 1], g.frames[f][i + 2]]
                } else {
                    [(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]
                };
                data[y * stride + x * 3..y * stride + x * 3 + 3].copy_from_slice(&px);
            }
        }
    }
    let mut out = convert(&rgb, &rgb_info, info);
    stamp(&mut out, i);
    out
}

fn with_face(mut buf: gst::Buffer, face: &SyncedFace) -> gst::Buffer {
    LandmarkMeta::add(buf.make_mut(), FrameStatus::Synced(Box::new(face.clone())));
    buf
}

fn bytes(buf: &gst::BufferRef) -> Vec<u8> {
    buf.map_readable().unwrap().as_slice().to_vec()
}

fn harness(info: &VideoInfo, blend: bool, show_sketch: bool) -> gst_check::Harness {
    let el = gst::ElementFactory::make("iplaprender")
        .property("models", package().to_str().unwrap())
        .property("references", REFERENCES)
        .property("threads", THREADS)
        .property("blend", blend)
        .property("show-sketch", show_sketch)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(info.to_caps().unwrap());
    h
}

/// Pushes `input` and pulls the output, checking size, timestamps, meta and the caps.
fn render(h: &mut gst_check::Harness, input: &gst::Buffer, info: &VideoInfo) -> gst::Buffer {
    h.push(input.clone()).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(out.pts(), input.pts());
    assert_eq!(out.duration(), input.duration());
    assert_eq!(out.size(), input.size());
    assert!(out.meta::<LandmarkMeta>().is_some());
    let caps = h.srcpad().unwrap().current_caps().unwrap();
    assert_eq!(VideoInfo::from_caps(&caps).unwrap(), *info);
    out
}

/// The pixels the element may write: the crop box and, with the blend, the blurred mask's window
/// (the contour polygon's vertex box within the frame, dilated by the blur radius), widened to
/// whole 2 x 2 chroma blocks.
fn paste_window(face: &SyncedFace, blend: bool) -> Rect {
    let b = face.face.crop_box;
    let (mut x0, mut y0, mut x1, mut y1) = (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64);
    if blend {
        let r = GAUSS_RADIUS as i64;
        for (x, y) in paste_polygon(&face.face.points_norm, W, H).unwrap() {
            let (x, y) = (x.clamp(0, W as i64 - 1), y.clamp(0, H as i64 - 1));
            (x0, x1) = (x0.min(x - r), x1.max(x + r + 1));
            (y0, y1) = (y0.min(y - r), y1.max(y + r + 1));
        }
    }
    let x0 = x0.max(0) as usize & !1;
    let y0 = y0.max(0) as usize & !1;
    let x1 = (x1 as usize).next_multiple_of(2).min(W);
    let y1 = (y1 as usize).next_multiple_of(2).min(H);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

/// Byte offsets of the samples of pixel `(x, y)`: Y, U, V.
fn sample_offsets(info: &VideoInfo, x: usize, y: usize) -> [usize; 3] {
    let (o, s) = (info.offset(), info.stride());
    let (cx, cy) = (x / 2, y / 2);
    let luma = o[0] + y * s[0] as usize + x;
    match info.format() {
        VideoFormat::I420 => [
            luma,
            o[1] + cy * s[1] as usize + cx,
            o[2] + cy * s[2] as usize + cx,
        ],
        VideoFormat::Nv12 => {
            let uv = o[1] + cy * s[1] as usize + 2 * cx;
            [luma, uv, uv + 1]
        }
        other => panic!("no YUV layout for {other:?}"),
    }
}

/// Asserts that no byte outside `window` (padding included) changed; returns how many luma and
/// chroma samples inside it did.
fn check_confined(info: &VideoInfo, before: &[u8], after: &[u8], window: Rect) -> (usize, usize) {
    let mut may = vec![false; before.len()];
    for y in window.y..window.y + window.height {
        for x in window.x..window.x + window.width {
            for o in sample_offsets(info, x, y) {
                may[o] = true;
            }
        }
    }
    for (i, ((a, b), m)) in after.iter().zip(before).zip(&may).enumerate() {
        assert!(
            *m || a == b,
            "byte {i} outside the paste window {window:?} changed"
        );
    }
    let (mut luma, mut chroma) = (0, 0);
    for y in 0..H {
        for x in 0..W {
            let [oy, ou, ov] = sample_offsets(info, x, y);
            luma += usize::from(after[oy] != before[oy]);
            if x % 2 == 0 && y % 2 == 0 {
                chroma += usize::from(after[ou] != before[ou] || after[ov] != before[ov]);
            }
        }
    }
    (luma, chroma)
}

/// |Y difference| of two frames of `info` over `window`: the mean over the samples where `a`
/// differs from `input` (what the element wrote), and over the window how many samples differ by
/// more than 24 (a sketch line is ~100 levels above the face) and the largest difference.
fn luma_difference(
    info: &VideoInfo,
    input: &[u8],
    a: &[u8],
    b: &[u8],
    window: Rect,
) -> (f64, usize, u8) {
    let (mut sum, mut n, mut large, mut max) = (0u64, 0u64, 0, 0u8);
    for y in window.y..window.y + window.height {
        for x in window.x..window.x + window.width {
            let o = sample_offsets(info, x, y)[0];
            let d = a[o].abs_diff(b[o]);
            if a[o] != input[o] {
                sum += u64::from(d);
                n += 1;
            }
            large += usize::from(d > 24);
            max = max.max(d);
        }
    }
    (sum as f64 / n.max(1) as f64, large, max)
}

/// Mean |U difference| and |V difference| of two frames of `info` over the chroma samples of
/// `window` where `a` differs from `input`.
fn chroma_difference(info: &VideoInfo, input: &[u8], a: &[u8], b: &[u8], window: Rect) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in (window.y..window.y + window.height).step_by(2) {
        for x in (window.x..window.x + window.width).step_by(2) {
            for o in &sample_offsets(info, x, y)[1..] {
                if a[*o] != input[*o] {
                    sum += u64::from(a[*o].abs_diff(b[*o]));
                    n += 1;
                }
            }
        }
    }
    sum as f64 / n.max(1) as f64
}

/// One YUV render, checked against its input and against the RGB path.
fn check_against_rgb_path(g: &Golden, info: &VideoInfo, blend: bool, show_sketch: bool) -> Vec<u8> {
    let f = 30;
    let face = synced(g, f);
    let input = with_face(yuv_frame(g, f, info, 7), &face);
    let before = bytes(&input);
    let out = render(&mut harness(info, blend, show_sketch), &input, info);
    let after = bytes(&out);

    let window = paste_window(&face, blend);
    let (luma, chroma) = check_confined(info, &before, &after, window);
    let b = face.face.crop_box;
    eprintln!(
        "{:?} {:?} blend={blend} show-sketch={show_sketch}: {luma} Y and {chroma} UV samples \
         changed in window {window:?} (box {b:?})",
        info.format(),
        info.colorimetry().matrix(),
    );
    assert!(luma > 5000 && chroma > 1000, "the face must change");

    // The same frame through videoconvert ! RGB ! iplaprender ! videoconvert.
    let rgb_info = video_info(VideoFormat::Rgb, None);
    let rgb_in = with_face(convert(&input, info, &rgb_info), &face);
    let rgb_out = render(
        &mut harness(&rgb_info, blend, show_sketch),
        &rgb_in,
        &rgb_info,
    );
    let reference = bytes(&convert(&rgb_out, &rgb_info, info));
    // The unwritten samples are the input's, bit for bit (checked above); videoconvert's own
    // YUV -> RGB -> YUV round trip moves them by ~3 levels on average, so only the written ones
    // measure the element.
    let (mean, large, max) = luma_difference(info, &before, &after, &reference, window);
    eprintln!("  Y vs the RGB path: mean {mean:.3} where written, {large} samples > 24, max {max}");
    assert!(mean <= 1.5, "mean |dY| {mean} against the RGB path");
    let chroma = chroma_difference(info, &before, &after, &reference, window);
    eprintln!("  U, V vs the RGB path: mean {chroma:.3} where written");
    assert!(
        chroma <= 1.5,
        "mean |dU|, |dV| {chroma} against the RGB path"
    );
    assert!(
        large * 1000 <= window.width * window.height,
        "{large} samples differ by more than 24 from the RGB path"
    );
    after
}

#[test]
fn templates_list_i420_and_nv12() {
    init();
    let el = gst::ElementFactory::make("iplaprender").build().unwrap();
    for pad in ["sink", "src"] {
        let caps = el.static_pad(pad).unwrap().pad_template_caps().to_string();
        for format in ["I420", "NV12", "RGB", "BGRx"] {
            assert!(caps.contains(format), "{pad}: {caps}");
        }
    }
}

/// A frame without meta passes through as the very same buffer, one with unusable geometry
/// unchanged; one with a face renders, only inside the paste window, like the RGB path.
#[test]
fn i420_bt709_renders_in_place_like_the_rgb_path() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(VideoFormat::I420, Some("bt709"));
    assert!(info.stride()[0] as usize > W && info.stride()[1] as usize > W.div_ceil(2));
    assert_eq!(info.colorimetry().matrix(), VideoColorMatrix::Bt709);

    let mut h = harness(&info, true, false);
    let plain = yuv_frame(g, 30, &info, 0);
    let (ptr, want) = (plain.as_ptr(), bytes(&plain));
    h.push(plain).unwrap();
    let out = h.pull().unwrap();
    assert_eq!((out.as_ptr(), bytes(&out)), (ptr, want));
    // A crop box the engine rejects: the frame passes through unchanged and the stream goes on.
    let mut outside = synced(g, 30);
    outside.face.crop_box.x2 = W + 10;
    let input = with_face(yuv_frame(g, 30, &info, 1), &outside);
    assert_eq!(bytes(&render(&mut h, &input, &info)), bytes(&input));

    check_against_rgb_path(g, &info, true, false);
}

/// NV12 with the default colorimetry of a small frame (BT.601, limited range) gives the same
/// bytes as I420 with that colorimetry.
#[test]
fn nv12_bt601_renders_in_place_like_the_rgb_path_and_like_i420() {
    init();
    let Some(g) = golden() else { return };
    let nv12 = video_info(VideoFormat::Nv12, None);
    assert_eq!(nv12.colorimetry().matrix(), VideoColorMatrix::Bt601);
    let out = check_against_rgb_path(g, &nv12, true, false);

    let i420 = video_info(VideoFormat::I420, None);
    let face = synced(g, 30);
    let input = with_face(yuv_frame(g, 30, &i420, 7), &face);
    let planar = bytes(&render(&mut harness(&i420, true, false), &input, &i420));
    for y in 0..H {
        for x in 0..W {
            let (a, b) = (sample_offsets(&nv12, x, y), sample_offsets(&i420, x, y));
            for c in 0..3 {
                assert_eq!(out[a[c]], planar[b[c]], "({x}, {y}) component {c}");
            }
        }
    }
}

/// `blend=false` replaces the crop box only, and `show-sketch` draws the sketch lines in YUV too
/// (the RGB path draws them: a missing sketch would leave hundreds of samples ~100 levels off).
#[test]
fn i420_without_blend_and_with_the_sketch() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(VideoFormat::I420, Some("bt601"));
    check_against_rgb_path(g, &info, false, true);
}
