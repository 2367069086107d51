//! `iplaprender` in a harness: pass-through without a synced face, the rendered region, caps,
//! timestamps, renegotiation, bank changes, start-up errors, and parity with
//! `FrameCompositor::render_frame` on the same inputs.
//!
//! Model: the reference formula weights, written once per test binary as a model package. Frames
//! and landmarks: `golden/public/facemesh/129` (60 frames, 256 x 256 RGB). Renders are expensive
//! on a 2-core machine, so the tests use 2-3 references.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;
use gstiplap::meta::LandmarkMeta;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::compose::{CompositorSettings, FrameCompositor};
use iplap::engine::landmarks::{FaceInfo, FrameStatus, SyncedFace};
use iplap::face::crop_box::CropBox;
use iplap::face::indices::PASTE_CONTOUR;
use iplap::image::{ChannelOrder, ImageMut};

const W: usize = 256;
const H: usize = 256;
const THREADS: usize = 2;

use common::{Golden, golden, init};

/// The formula-weight renderer package, written once per test binary run.
fn package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::formula_package("render-element-package", &["renderer"]))
}

/// A second bank: the same references rotated by five, so every subset picks other images.
fn other_bank(g: &Golden) -> Arc<ReferenceBank> {
    let mut images = g.bank.images.clone();
    images.rotate_left(5);
    Arc::new(ReferenceBank::new(g.bank.landmarks.clone(), images))
}

/// The synced face of golden frame `f` (window f-2..f+2), placed at `(dx, dy)` in a
/// `size` frame. The "predicted" content is the window frames' own CONTENT with the mouth
/// opened a little (as in tests/compose/fixture.rs).
fn synced(
    g: &Golden,
    f: usize,
    bank: &Arc<ReferenceBank>,
    (dx, dy): (usize, usize),
    size: (usize, usize),
) -> SyncedFace {
    let b = g.boxes[f];
    let points_px: Vec<[f32; 2]> = g.mesh[f]
        .iter()
        .map(|&[x, y]| [x * W as f32 + dx as f32, y * H as f32 + dy as f32])
        .collect();
    let points_norm = if (dx, dy, size) == (0, 0, (W, H)) {
        g.mesh[f].clone()
    } else {
        let (w, h) = (size.0 as f32, size.1 as f32);
        points_px.iter().map(|&[x, y]| [x / w, y / h]).collect()
    };
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
            frame_size: size,
        },
        pose: window_pose[2],
        content: window_content[2],
        mel_chunk: (0..80 * 16)
            .map(|i| ((i * 37 % 101) as f32 / 12.5) - 4.0)
            .collect(),
        window_pose,
        window_content,
        window_crop_hw,
        bank: bank.clone(),
    }
}

fn channel_order(format: gst_video::VideoFormat) -> ChannelOrder {
    match format {
        gst_video::VideoFormat::Rgb => ChannelOrder::Rgb,
        gst_video::VideoFormat::Bgr => ChannelOrder::Bgr,
        gst_video::VideoFormat::Bgrx => ChannelOrder::Bgrx,
        gst_video::VideoFormat::Rgba => ChannelOrder::Rgba,
        other => panic!("no test order for {other:?}"),
    }
}

fn video_info(format: gst_video::VideoFormat, w: usize, h: usize) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format, w as u32, h as u32)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
}

/// Golden frame `f` at `(dx, dy)` on a patterned background, in `info`'s layout (padding bytes
/// 0xab), with PTS `i` x 40 ms and a duration of 40 ms.
fn frame_buffer(
    g: &Golden,
    f: usize,
    info: &gst_video::VideoInfo,
    (dx, dy): (usize, usize),
    i: u64,
) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![0xabu8; info.size()]);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(i * 40 * gst::ClockTime::MSECOND);
        b.set_duration(40 * gst::ClockTime::MSECOND);
    }
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buf, info).unwrap();
    let order = channel_order(info.format());
    let (stride, bpp) = (frame.plane_stride()[0] as usize, order.bytes_per_pixel());
    let (w, h) = (info.width() as usize, info.height() as usize);
    let data = frame.plane_data_mut(0).unwrap();
    for y in 0..h {
        for x in 0..w {
            let rgb = if (dx..dx + W).contains(&x) && (dy..dy + H).contains(&y) {
                let i = ((y - dy) * W + x - dx) * 3;
                [g.frames[f][i], g.frames[f][i + 1], g.frames[f][i + 2]]
            } else {
                [(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]
            };
            let px = &mut data[y * stride + x * bpp..y * stride + (x + 1) * bpp];
            match order {
                ChannelOrder::Rgb => px.copy_from_slice(&rgb),
                ChannelOrder::Bgr => px.copy_from_slice(&[rgb[2], rgb[1], rgb[0]]),
                ChannelOrder::Bgrx => px.copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0x5a]),
                ChannelOrder::Rgba => px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 0x77]),
                _ => unreachable!(),
            }
        }
    }
    frame.into_buffer()
}

fn with_status(mut buf: gst::Buffer, status: FrameStatus) -> gst::Buffer {
    LandmarkMeta::add(buf.make_mut(), status);
    buf
}

fn renderer_settings(references: usize, blend: bool) -> CompositorSettings {
    CompositorSettings {
        references,
        blend,
        show_sketch: false,
        threads: THREADS,
        device: iplap::runtime::DeviceConfig::cpu(),
    }
}

fn renderer(references: usize, blend: bool) -> FrameCompositor {
    FrameCompositor::from_package(package(), renderer_settings(references, blend)).unwrap()
}

/// What `FrameCompositor::render_frame` makes of `input` (a copy; its meta gives the face).
fn expected(
    fr: &mut FrameCompositor,
    input: &gst::Buffer,
    info: &gst_video::VideoInfo,
    face: &SyncedFace,
) -> Vec<u8> {
    let mut frame =
        gst_video::VideoFrame::from_buffer_writable(input.copy_deep().unwrap(), info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let order = channel_order(info.format());
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut image = ImageMut::new(frame.plane_data_mut(0).unwrap(), w, h, stride, order).unwrap();
    let input = iplap::engine::compose::FrameInput {
        crop_box: face.face.crop_box,
        mesh: iplap::engine::compose::MeshPoints::Normalised(&face.face.points_norm),
        window_pose: face.window_pose.as_flattened().as_flattened(),
        window_crop_hw: face.window_crop_hw,
        window_content: face.window_content.as_flattened().as_flattened(),
        mel: &face.mel_chunk,
        bank: &face.bank,
    };
    fr.render_frame(&mut image, &input).unwrap();
    bytes(&frame.into_buffer())
}

fn bytes(buf: &gst::BufferRef) -> Vec<u8> {
    buf.map_readable().unwrap().as_slice().to_vec()
}

fn element(references: u32, blend: bool) -> gst::Element {
    gst::ElementFactory::make("iplaprender")
        .property("models", package().to_str().unwrap())
        .property("references", references)
        .property("threads", THREADS as u32)
        .property("blend", blend)
        .build()
        .unwrap()
}

fn harness(element: &gst::Element, info: &gst_video::VideoInfo) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(element, Some("sink"), Some("src"));
    h.set_src_caps(info.to_caps().unwrap());
    h
}

/// Pulls one buffer and checks that it kept the input's timestamps.
fn pull_checked(h: &mut gst_check::Harness, input: &gst::Buffer) -> gst::Buffer {
    let out = h.pull().unwrap();
    assert_eq!(out.pts(), input.pts());
    assert_eq!(out.duration(), input.duration());
    assert_eq!(out.size(), input.size());
    assert_eq!(
        out.meta::<LandmarkMeta>().is_some(),
        input.meta::<LandmarkMeta>().is_some()
    );
    out
}

#[test]
fn frames_without_a_synced_face_pass_through_untouched() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgb, W, H);
    let mut h = harness(&element(2, true), &info);
    let f = 20;
    let face = synced(g, f, &g.bank, (0, 0), (W, H));
    let inputs = [
        frame_buffer(g, f, &info, (0, 0), 0),
        with_status(frame_buffer(g, f, &info, (0, 0), 1), FrameStatus::NoFace),
        with_status(
            frame_buffer(g, f, &info, (0, 0), 2),
            FrameStatus::Enrolling(face.face.clone()),
        ),
    ];
    for input in inputs {
        let want = bytes(&input);
        let ptr = input.as_ptr();
        h.push(input.clone()).unwrap();
        drop(input);
        let out = h.pull().unwrap();
        assert_eq!(bytes(&out), want);
        // Pass-through: the very same buffer, not a copy.
        assert_eq!(out.as_ptr(), ptr);
    }
}

#[test]
fn unusable_geometry_passes_through_and_the_stream_goes_on() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgb, W, H);
    let mut h = harness(&element(2, true), &info);
    let f = 20;
    // A meta computed for another frame size, and a crop box outside the frame.
    let wrong_size = synced(g, f, &g.bank, (0, 0), (W * 2, H));
    let mut outside = synced(g, f, &g.bank, (0, 0), (W, H));
    outside.face.crop_box.x2 = W + 10;
    for (i, face) in [wrong_size, outside].into_iter().enumerate() {
        let input = with_status(
            frame_buffer(g, f, &info, (0, 0), i as u64),
            FrameStatus::Synced(Box::new(face)),
        );
        let want = bytes(&input);
        h.push(input.clone()).unwrap();
        assert_eq!(bytes(&pull_checked(&mut h, &input)), want);
    }
}

/// Parity with `FrameCompositor::render_frame`, the changed pixels confined to the face box (plus,
/// with the feathered blend, the blurred mask's reach at most one level darker), and `blend` and
/// `show-sketch` changed while playing.
#[test]
fn renders_like_the_frame_compositor_inside_the_face_box() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgb, W, H);
    let el = element(3, true);
    // A harness element has no bus of its own; give it one to see `post-stats` messages.
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    el.set_property("post-stats", true);
    let mut h = harness(&el, &info);
    let mut fr = renderer(3, true);
    let f = 30;
    let face = synced(g, f, &g.bank, (0, 0), (W, H));
    let b = face.face.crop_box;
    // The blurred mask reaches 10 px around the contour's bounding box.
    let (mut x0, mut y0, mut x1, mut y1) = (W, H, 0, 0);
    for &i in PASTE_CONTOUR.iter() {
        let [x, y] = face.face.points_px[i];
        x0 = x0.min(x as usize);
        y0 = y0.min(y as usize);
        x1 = x1.max(x as usize);
        y1 = y1.max(y as usize);
    }
    let reach = |x: usize, y: usize| {
        (x0.saturating_sub(11)..=x1 + 11).contains(&x)
            && (y0.saturating_sub(11)..=y1 + 11).contains(&y)
    };
    let in_box = |x: usize, y: usize| (b.x1..b.x2).contains(&x) && (b.y1..b.y2).contains(&y);

    let mut outs = Vec::new();
    for (i, (blend, show)) in [(true, false), (false, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        el.set_property("blend", blend);
        el.set_property("show-sketch", show);
        fr.set_blend(blend);
        fr.set_show_sketch(show);
        let input = with_status(
            frame_buffer(g, f, &info, (0, 0), i as u64),
            FrameStatus::Synced(Box::new(face.clone())),
        );
        let before = bytes(&input);
        let want = expected(&mut fr, &input, &info, &face);
        h.push(input.clone()).unwrap();
        let out = bytes(&pull_checked(&mut h, &input));
        assert_eq!(
            out, want,
            "blend={blend}: element != FrameCompositor::render_frame"
        );
        let (mut inside, mut outside) = (0, 0);
        for y in 0..H {
            for x in 0..W {
                let p = (y * W + x) * 3;
                if out[p..p + 3] == before[p..p + 3] {
                    continue;
                }
                if in_box(x, y) {
                    inside += 1;
                    continue;
                }
                outside += 1;
                assert!(blend && reach(x, y), "blend={blend}: ({x}, {y}) changed");
                for c in 0..3 {
                    let d = i16::from(before[p + c]) - i16::from(out[p + c]);
                    assert!((0..=1).contains(&d), "({x}, {y}): {d}");
                }
            }
        }
        eprintln!(
            "blend={blend} show-sketch={show}: {inside} pixels changed in box {b:?}, \
             {outside} outside"
        );
        assert!(inside > 1000);
        outs.push(out);
    }
    assert_ne!(outs[2], outs[0], "show-sketch must draw the sketch");
    let stats: Vec<gst::Structure> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.name() == gstiplap::render::stats::STATS_MESSAGE)
        .collect();
    assert_eq!(stats.len(), 3, "one stats message per rendered frame");
    for s in &stats {
        let ns = |name: &str| s.get::<u64>(name).unwrap();
        assert!(ns("flow-head") > 0 && ns("translation") > 0, "{s}");
        assert!(ns("total") >= ns("flow-head") + ns("translation"), "{s}");
        assert!(s.get::<Option<gst::ClockTime>>("pts").unwrap().is_some());
    }
}

/// Two resolutions and formats (the second with padded rows), a pass-through frame in between:
/// each output keeps size, format and timestamps and equals the frame compositor's.
#[test]
fn renegotiates_caps_and_keeps_layout_and_timestamps() {
    init();
    let Some(g) = golden() else { return };
    let el = element(2, true);
    let rgb = video_info(gst_video::VideoFormat::Rgb, W, H);
    // 262 x 3 = 786 bytes per row, stride 788.
    let bgr = video_info(gst_video::VideoFormat::Bgr, W + 6, H + 2);
    assert!(bgr.stride()[0] as usize > (W + 6) * 3);
    let mut h = harness(&el, &rgb);
    let mut fr = renderer(2, true);
    let f = 40;

    let face = synced(g, f, &g.bank, (0, 0), (W, H));
    let input = with_status(
        frame_buffer(g, f, &rgb, (0, 0), 0),
        FrameStatus::Synced(Box::new(face.clone())),
    );
    let want = expected(&mut fr, &input, &rgb, &face);
    h.push(input.clone()).unwrap();
    assert_eq!(bytes(&pull_checked(&mut h, &input)), want);

    h.set_src_caps(bgr.to_caps().unwrap());
    let plain = frame_buffer(g, f, &bgr, (4, 1), 1);
    h.push(plain.clone()).unwrap();
    assert_eq!(bytes(&pull_checked(&mut h, &plain)), bytes(&plain));

    let face = synced(g, f, &g.bank, (4, 1), (W + 6, H + 2));
    let input = with_status(
        frame_buffer(g, f, &bgr, (4, 1), 2),
        FrameStatus::Synced(Box::new(face.clone())),
    );
    let want = expected(&mut fr, &input, &bgr, &face);
    assert_ne!(want, bytes(&input));
    h.push(input.clone()).unwrap();
    assert_eq!(bytes(&pull_checked(&mut h, &input)), want);

    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(gst_video::VideoInfo::from_caps(&caps).unwrap(), bgr);
}

/// The cached reference features belong to one bank: a frame with another bank renders as a fresh
/// renderer with that bank does, and going back to the first bank too.
#[test]
fn bank_change_invalidates_the_cached_references() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgba, W, H);
    let mut h = harness(&element(2, true), &info);
    let f = 25;
    let banks = [g.bank.clone(), other_bank(g)];
    let mut outs = Vec::new();
    for (i, bank) in banks.iter().chain([&banks[0]]).enumerate() {
        let face = synced(g, f, bank, (0, 0), (W, H));
        let input = with_status(
            frame_buffer(g, f, &info, (0, 0), i as u64),
            FrameStatus::Synced(Box::new(face)),
        );
        h.push(input.clone()).unwrap();
        outs.push(bytes(&pull_checked(&mut h, &input)));
    }
    assert_ne!(outs[0], outs[1], "a different bank must change the face");
    assert_eq!(outs[0], outs[2]);
    for (out, bank) in outs.iter().zip(&banks) {
        let face = synced(g, f, bank, (0, 0), (W, H));
        let input = with_status(
            frame_buffer(g, f, &info, (0, 0), 0),
            FrameStatus::Synced(Box::new(face.clone())),
        );
        assert_eq!(*out, expected(&mut renderer(2, true), &input, &info, &face));
    }
}

/// A bank with fewer image references than `references` asks for is a stream error, not a crash.
#[test]
fn too_small_a_bank_is_an_error() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgb, W, H);
    let mut h = harness(&element(3, true), &info);
    let small = Arc::new(ReferenceBank::new(
        g.bank.landmarks.clone(),
        g.bank.images[..2].to_vec(),
    ));
    let input = with_status(
        frame_buffer(g, 20, &info, (0, 0), 0),
        FrameStatus::Synced(Box::new(synced(g, 20, &small, (0, 0), (W, H)))),
    );
    assert_eq!(h.push(input), Err(gst::FlowError::Error));
}

/// Start-up errors: posted on the bus and failing READY -> PAUSED, with the folder and the
/// command that makes a package in the message.
#[test]
fn bad_models_or_device_fail_at_state_change() {
    init();
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-package");
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-empty-package");
    std::fs::create_dir_all(&empty).unwrap();
    let cases: [(Option<&Path>, &str, &[&str]); 5] = [
        (None, "cpu", &["models", "iplap convert"]),
        (
            Some(&missing),
            "cpu",
            &[missing.to_str().unwrap(), "iplap convert"],
        ),
        (
            Some(&empty),
            "cpu",
            &[empty.to_str().unwrap(), "iplap convert"],
        ),
        (Some(package()), "cuda", &["device=cuda cannot run here"]),
        (
            Some(package()),
            "tensorrt-rtx",
            &["device=tensorrt-rtx cannot run here"],
        ),
    ];
    for (models, device, needles) in cases {
        let mut b = gst::ElementFactory::make("iplaprender").property_from_str("device", device);
        if let Some(m) = models {
            b = b.property("models", m.to_str().unwrap());
        }
        let el = b.build().unwrap();
        let pipeline = gst::Pipeline::new();
        pipeline.add(&el).unwrap();
        assert!(pipeline.set_state(gst::State::Paused).is_err());
        let bus = pipeline.bus().unwrap();
        let msg = std::iter::from_fn(|| bus.pop())
            .find(|m| m.type_() == gst::MessageType::Error)
            .expect("an error message");
        let gst::MessageView::Error(err) = msg.view() else {
            unreachable!()
        };
        let text = err.error().to_string();
        for needle in needles {
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
        // The cause, then one hint (issue 13: a package error said "iplap convert" twice).
        assert!(text.matches("iplap convert").count() <= 1, "{text:?}");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn properties_have_documented_ranges_and_defaults() {
    init();
    let el = gst::ElementFactory::make("iplaprender").build().unwrap();
    let refs = el.find_property("references").unwrap();
    let refs = refs.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!(
        (refs.minimum(), refs.maximum(), refs.default_value()),
        (1, 25, 25)
    );
    assert!(refs.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
    for name in [
        "models",
        "threads",
        "device",
        "device-id",
        "precision",
        "engine-cache",
    ] {
        let p = el.find_property(name).unwrap();
        assert!(p.flags().contains(gst::PARAM_FLAG_MUTABLE_READY), "{name}");
        assert!(!p.blurb().unwrap_or_default().is_empty(), "{name}");
    }
    let id = el.find_property("device-id").unwrap();
    let id = id.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!((id.minimum(), id.maximum(), id.default_value()), (0, 63, 0));
    let nick = |name: &str| {
        let v = el.property_value(name);
        glib::EnumValue::from_value(&v).unwrap().1.nick().to_owned()
    };
    assert_eq!(nick("device"), "auto");
    assert_eq!(nick("precision"), "fp32");
    assert_eq!(el.property::<Option<String>>("engine-cache"), None);
    assert!(el.property::<bool>("blend"));
    assert!(!el.property::<bool>("show-sketch"));
    assert_eq!(el.property::<Option<String>>("models"), None);
    let sink = el.static_pad("sink").unwrap();
    let caps = sink.pad_template_caps();
    for format in ["RGB", "BGRx", "RGBA", "I420", "NV12"] {
        assert!(caps.to_string().contains(format), "{caps}");
    }
}

/// `device=auto` (the default) on a machine without a usable GPU starts on the CPU; it warns
/// once, and only where a GPU was plausibly expected (the GPU runtime or a driver is present).
#[test]
fn auto_device_starts_on_the_cpu_with_at_most_one_warning() {
    init();
    if iplap::runtime::nvidia::driver().is_ok() {
        eprintln!("SKIP: this machine has an NVIDIA driver");
        return;
    }
    let el = gst::ElementFactory::make("iplaprender")
        .property("models", package().to_str().unwrap())
        .build()
        .unwrap();
    let pipeline = gst::Pipeline::new();
    pipeline.add(&el).unwrap();
    pipeline.set_state(gst::State::Ready).unwrap();
    pipeline.set_state(gst::State::Paused).ok();
    let bus = pipeline.bus().unwrap();
    let warnings: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => None,
        })
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    let gpu_runtime = iplap::runtime::providers::gpu_runtime_installed();
    assert_eq!(warnings.len(), usize::from(gpu_runtime), "{warnings:?}");
    if gpu_runtime {
        assert!(
            warnings[0].contains("device=auto fell back to the CPU")
                && warnings[0].contains("no NVIDIA driver"),
            "{warnings:?}"
        );
    }
}

/// Live latency: upstream's plus the element's processing time — pinned by
/// `processing-latency`, or measured (zero before any frame; after a frame that did not encode the
/// reference bank, at least that frame's render), with a `latency` message when it grows.
#[test]
fn latency_query_adds_the_processing_time() {
    init();
    let Some(g) = golden() else { return };
    let info = video_info(gst_video::VideoFormat::Rgb, W, H);
    let el = element(2, true);
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    el.set_property("post-stats", true);
    let mut h = harness(&el, &info);
    let upstream = gst::ClockTime::from_mseconds(40);
    h.set_upstream_latency(upstream);
    assert_eq!(el.property::<i32>("processing-latency"), -1);
    assert_eq!(h.query_latency(), Some(upstream), "measured: nothing yet");

    el.set_property("processing-latency", 250i32);
    assert_eq!(
        h.query_latency(),
        Some(upstream + gst::ClockTime::from_mseconds(250))
    );
    // Changing it asks the pipeline to query again.
    let msgs: Vec<_> = bus.iter().map(|m| format!("{:?}", m.type_())).collect();
    assert!(
        msgs.iter().any(|m| m == "Latency"),
        "no latency message after pinning: {msgs:?}"
    );
    el.set_property("processing-latency", -1i32);
    while bus.pop().is_some() {}

    let f = 30;
    let face = synced(g, f, &g.bank, (0, 0), (W, H));
    let mut totals = Vec::new();
    for i in 0..2u64 {
        let input = with_status(
            frame_buffer(g, f, &info, (0, 0), i),
            FrameStatus::Synced(Box::new(face.clone())),
        );
        h.push(input.clone()).unwrap();
        pull_checked(&mut h, &input);
        let stats = bus
            .iter_filtered(&[gst::MessageType::Element])
            .find_map(|m| m.structure().map(|s| s.to_owned()))
            .expect("a stats message");
        totals.push((
            stats.get::<bool>("encoded-references").unwrap(),
            gst::ClockTime::from_nseconds(stats.get::<u64>("total").unwrap()),
        ));
    }
    // The first frame encoded the bank and does not count; the second does.
    assert_eq!((totals[0].0, totals[1].0), (true, false));
    let ours = h.query_latency().unwrap() - upstream;
    assert!(
        ours >= totals[1].1,
        "{ours} < the second frame's {}",
        totals[1].1
    );
    assert!(ours < totals[1].1 * 2 + gst::ClockTime::from_mseconds(10));
    let msgs: Vec<_> = bus.iter_filtered(&[gst::MessageType::Latency]).collect();
    assert_eq!(
        msgs.len(),
        1,
        "one latency message when the measurement grew"
    );
}
