//! `FrameCompositor` (src/engine/render.rs, spec §1.7 steps 3-9) against the building blocks it is
//! made of: `RendererModel::render` on independently built tensors, and the golden-tested paste of
//! the image module. Model: the reference formula weights, written once per test binary as a model
//! package. Frames, landmarks and boxes: `golden/public/facemesh/129` (60 frames, 256 x 256).
//!
//! Renders are the expensive part on a 2-core machine (an N = 25 frame takes seconds), so only one
//! test uses all 25 references; the others use 3-5.

#[path = "compose/fixture.rs"]
mod fixture;

use fixture::*;
use iplap::engine::bank::ReferenceBank;
use iplap::engine::compose::{
    ComposeError, FrameCompositor, FrameInput, MeshPoints, reference_subset,
};
use iplap::face::crop_box::CropBox;
use iplap::image::{ChannelOrder, ImageMut};

/// (1) and (2) at the official N = 25: generated face = direct engine run, pasted frame = the
/// golden-tested paste of that face, and outside the box only the blurred mask's reach may change.
#[test]
fn n25_matches_engine_and_golden_paste() {
    let Some(g) = golden() else { return };
    let f = 30;
    let bank = spec_bank(g);
    let w = window(g, f);
    let mut fr = renderer(25, true);
    let mut frame = g.frames[f].clone();
    let mut view = ImageMut::packed(&mut frame, W, H, ChannelOrder::Rgb).unwrap();
    let stats = fr.render_frame(&mut view, &input(g, f, &w, &bank)).unwrap();
    eprintln!("N=25 frame: {stats:?}");
    assert!(stats.encoded_references);

    let (want_face, want_sketches) = direct_render(g, f, &w, &bank, 25);
    assert_eq!(fr.target_sketches(), want_sketches.view());
    let d = max_abs(fr.generated_face(), want_face.view());
    eprintln!("N=25 generated face vs RendererModel::render: max abs diff {d:.3e}");
    assert!(d <= TOL);

    let (want, pb) = reference_paste(g, f, fr.generated_face(), true);
    let bad = count_bad(&frame, &want);
    let b = g.boxes[f];
    let win = pb.window();
    let (mut changed_in_box, mut changed_outside) = (0, 0);
    for y in 0..H {
        for x in 0..W {
            let i = (y * W + x) * 3;
            if frame[i..i + 3] == g.frames[f][i..i + 3] {
                continue;
            }
            if in_box(&b, x, y) {
                changed_in_box += 1;
                continue;
            }
            changed_outside += 1;
            // Outside the box the official blend is trunc(o a + o (1 - a)): o or o - 1, and only
            // where the blurred mask reaches.
            assert!(
                (win.x..win.x + win.width).contains(&x) && (win.y..win.y + win.height).contains(&y)
            );
            for c in 0..3 {
                assert!(g.frames[f][i + c] - frame[i + c] <= 1, "({x}, {y})");
            }
        }
    }
    eprintln!(
        "N=25 paste: {bad} mismatches vs golden paste; changed pixels {changed_in_box} in box {b:?}, \
         {changed_outside} outside (mask window {win:?})"
    );
    assert_eq!(bad, 0);
    assert!(changed_in_box > 1000);
}

/// (2), (3), (5): five references against a direct engine run; blend off writes only the box;
/// a padded BGRx frame gives the BGR result and keeps its padding and x bytes; the sketch overlay
/// only lightens the box; the reference encoding is reused across frames.
#[test]
fn five_references_layouts_and_box() {
    let Some(g) = golden() else { return };
    let f = 12;
    let bank = spec_bank(g);
    let w = window(g, f);
    let inp = input(g, f, &w, &bank);
    let mut fr = renderer(5, false);
    let b = g.boxes[f];

    // Packed RGB, blend off.
    let mut frame = g.frames[f].clone();
    let mut view = ImageMut::packed(&mut frame, W, H, ChannelOrder::Rgb).unwrap();
    let s1 = fr.render_frame(&mut view, &inp).unwrap();
    eprintln!("N=5 frame: {s1:?}");
    assert!(s1.encoded_references);
    let (want_face, _) = direct_render(g, f, &w, &bank, 5);
    let d = max_abs(fr.generated_face(), want_face.view());
    eprintln!("N=5 generated face vs RendererModel::render: max abs diff {d:.3e}");
    assert!(d <= TOL);
    let (want, _) = reference_paste(g, f, fr.generated_face(), false);
    assert_eq!(count_bad(&frame, &want), 0);
    for y in 0..H {
        for x in 0..W {
            let i = (y * W + x) * 3;
            if !in_box(&b, x, y) {
                assert_eq!(frame[i..i + 3], g.frames[f][i..i + 3], "({x}, {y})");
            }
        }
    }

    // Packed BGR and padded BGRx (stride + 40 bytes, x = 0x5a, padding = 0xab), blend on.
    fr.set_blend(true);
    let mut bgr: Vec<u8> = g.frames[f]
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let stride = W * 4 + 40;
    let mut bgrx = vec![0xabu8; stride * H];
    for y in 0..H {
        for x in 0..W {
            let p = &g.frames[f][(y * W + x) * 3..];
            bgrx[y * stride + x * 4..y * stride + x * 4 + 4]
                .copy_from_slice(&[p[2], p[1], p[0], 0x5a]);
        }
    }
    let s2 = fr
        .render_frame(
            &mut ImageMut::packed(&mut bgr, W, H, ChannelOrder::Bgr).unwrap(),
            &inp,
        )
        .unwrap();
    let face_bgr = fr.generated_face().to_owned();
    let view = &mut ImageMut::new(&mut bgrx, W, H, stride, ChannelOrder::Bgrx).unwrap();
    let s3 = fr.render_frame(view, &inp).unwrap();
    assert!(!s2.encoded_references && !s3.encoded_references);
    assert_eq!(fr.generated_face(), face_bgr.view());
    let (want_rgb, _) = reference_paste(g, f, fr.generated_face(), true);
    let want_bgr: Vec<u8> = want_rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    assert_eq!(count_bad(&bgr, &want_bgr), 0);
    let mut bad_x = 0;
    for y in 0..H {
        let row = &bgrx[y * stride..(y + 1) * stride];
        bad_x += row[W * 4..].iter().filter(|&&v| v != 0xab).count();
        for x in 0..W {
            bad_x += (row[x * 4 + 3] != 0x5a) as usize;
            assert_eq!(
                row[x * 4..x * 4 + 3],
                bgr[(y * W + x) * 3..(y * W + x) * 3 + 3]
            );
        }
    }
    assert_eq!(bad_x, 0);

    // Sketch overlay (blend off): the box only gets lighter, somewhere; nothing else changes.
    fr.set_blend(false);
    fr.set_show_sketch(true);
    let mut sk = g.frames[f].clone();
    let s4 = fr
        .render_frame(
            &mut ImageMut::packed(&mut sk, W, H, ChannelOrder::Rgb).unwrap(),
            &inp,
        )
        .unwrap();
    eprintln!("N=5 frame with overlay: {s4:?}");
    let lighter = sk.iter().zip(&frame).filter(|(a, b)| a > b).count();
    assert!(sk.iter().zip(&frame).all(|(a, b)| a >= b));
    assert!(lighter > 100, "{lighter}");
    for y in (0..H).filter(|&y| !(b.y1..b.y2).contains(&y)) {
        assert_eq!(
            sk[y * W * 3..(y + 1) * W * 3],
            frame[y * W * 3..(y + 1) * W * 3]
        );
    }
}

/// (4): a different bank is re-encoded (outputs differ and equal a fresh renderer's), a clone of
/// the cached bank is not, and changing `references` re-encodes.
#[test]
fn bank_change_invalidates_cached_references() {
    let Some(g) = golden() else { return };
    let f = 40;
    let w = window(g, f);
    let bank_a = spec_bank(g);
    let bank_b = bank_of(g, &(5..30).rev().collect::<Vec<_>>());
    let mut fr = renderer(3, true);
    let run = |fr: &mut FrameCompositor, bank: &ReferenceBank| {
        let mut frame = g.frames[f].clone();
        let mut view = ImageMut::packed(&mut frame, W, H, ChannelOrder::Rgb).unwrap();
        let s = fr.render_frame(&mut view, &input(g, f, &w, bank)).unwrap();
        (s.encoded_references, fr.generated_face().to_owned(), frame)
    };
    let (enc_a, face_a, frame_a) = run(&mut fr, &bank_a);
    // A clone shares the id (same references): the cached encoding is kept.
    let (enc_clone, _, frame_clone) = run(&mut fr, &bank_a.clone());
    let (enc_b, face_b, frame_b) = run(&mut fr, &bank_b);
    let (enc_a2, face_a2, frame_a2) = run(&mut fr, &bank_a);
    assert!(enc_a && !enc_clone && enc_b && enc_a2);
    assert_eq!(frame_a, frame_clone);
    let (enc_b2, face_b2, _) = run(&mut fr, &bank_b);
    assert!(enc_b2);

    let ab = max_abs(face_a.view(), face_b.view());
    let aa = max_abs(face_a.view(), face_a2.view());
    let bb = max_abs(face_b.view(), face_b2.view());
    let mut fresh = renderer(3, true);
    let (_, face_b_fresh, frame_b_fresh) = run(&mut fresh, &bank_b);
    let fresh_d = max_abs(face_b.view(), face_b_fresh.view());
    eprintln!(
        "bank A vs B: face max diff {ab:.3e}, frame pixels differing {}; A again {aa:.3e}; \
         B again {bb:.3e}; B vs fresh renderer {fresh_d:.3e} ({} frame mismatches)",
        count_bad(&frame_a, &frame_b),
        count_bad(&frame_b, &frame_b_fresh)
    );
    assert!(ab > 1e-3);
    assert!(count_bad(&frame_a, &frame_b) > 0);
    assert!(aa <= TOL && bb <= TOL && fresh_d <= TOL);
    assert_eq!(frame_a, frame_a2);

    fr.set_references(4).unwrap();
    let (enc4, _, _) = run(&mut fr, &bank_b);
    assert!(enc4);
    assert_eq!(
        reference_subset(25, 4).unwrap(),
        vec![0, 8, 16, 24],
        "the documented subset"
    );
}

/// (6): bad settings and inputs are errors, and the frame is left untouched.
#[test]
fn bad_inputs_are_errors() {
    let Some(g) = golden() else { return };
    for n in [0, 26] {
        let e = FrameCompositor::from_package(package(), settings(n, true)).err();
        assert!(
            matches!(e, Some(ComposeError::BadReferenceCount(m)) if m == n),
            "{e:?}"
        );
    }
    let mut fr = renderer(3, true);
    assert!(fr.set_references(0).is_err());
    assert_eq!(fr.settings().references, 3);
    let f = 20;
    let bank = spec_bank(g);
    let small = bank_of(g, &[1, 2]);
    let mut bad_crop = bank_of(g, &[1, 2, 3]);
    bad_crop.images[2].crop_bgr.truncate(100);
    let w = window(g, f);
    let good = input(g, f, &w, &bank);
    let short = &w.mel[..100];
    let mut nan_mesh = g.mesh[f].clone();
    nan_mesh[10] = [f32::NAN, 0.5];
    let mut zero_hw = w.hw;
    zero_hw[4] = (0, 50);
    let b = good.crop_box;
    let cases: Vec<(&str, FrameInput)> = vec![
        (
            "bank too small",
            FrameInput {
                bank: &small,
                ..good
            },
        ),
        (
            "bad bank crop",
            FrameInput {
                bank: &bad_crop,
                ..good
            },
        ),
        (
            "box past the edge",
            FrameInput {
                crop_box: CropBox { x2: W + 1, ..b },
                ..good
            },
        ),
        (
            "empty box",
            FrameInput {
                crop_box: CropBox { y2: b.y1, ..b },
                ..good
            },
        ),
        ("short mel", FrameInput { mel: short, ..good }),
        (
            "short pose",
            FrameInput {
                window_pose: &w.pose[1..],
                ..good
            },
        ),
        (
            "long content",
            FrameInput {
                window_content: &w.pose,
                ..good
            },
        ),
        (
            "few mesh points",
            FrameInput {
                mesh: MeshPoints::Normalised(&g.mesh[f][..400]),
                ..good
            },
        ),
        (
            "NaN contour point",
            FrameInput {
                mesh: MeshPoints::Normalised(&nan_mesh),
                ..good
            },
        ),
        (
            "NaN pixel point",
            FrameInput {
                mesh: MeshPoints::Pixels(&nan_mesh),
                ..good
            },
        ),
        (
            "zero crop size",
            FrameInput {
                window_crop_hw: zero_hw,
                ..good
            },
        ),
    ];
    for (name, case) in cases {
        let mut frame = g.frames[f].clone();
        let mut view = ImageMut::packed(&mut frame, W, H, ChannelOrder::Rgb).unwrap();
        let e = fr.render_frame(&mut view, &case).unwrap_err();
        eprintln!("{name}: {e}");
        assert!(frame == g.frames[f], "{name}: frame modified");
        if name == "bank too small" {
            assert!(matches!(
                e,
                ComposeError::TooFewReferences {
                    requested: 3,
                    available: 2
                }
            ));
        }
    }
    let mut grey = vec![0u8; W * H];
    let mut view = ImageMut::packed(&mut grey, W, H, ChannelOrder::Gray).unwrap();
    assert!(fr.render_frame(&mut view, &good).is_err());
}
