//! Sketches, face crops and paste-back against `shared/golden/public/{sketch,crop}` (spec §1.5,
//! §1.7, §1.8, §4, appendix C). Everything uint8 must match exactly; float sketches to 1e-6.

use iplap::face::crop_box::{FaceGeometry, paste_polygon};
use iplap::face::indices::FULL_LEN;
use iplap::image::{
    ChannelOrder, Image, ImageMut, ImageRef, PasteBack, Rect, Resizer, SketchRasteriser,
    SketchScaling, bgr_to_chw, crop_face, mask_lower_half, paste_face,
};
use iplap::sizes::FACE_SIZE;
use iplap::testdata::{CropGolden, PasteGolden, relayout, swap_red_blue};
use ndarray::{Array2, Array3, Array4};
use ndarray_npy::read_npy;
use std::path::Path;

fn full_set(a: &Array3<f32>, k: usize) -> [[f32; FULL_LEN]; 2] {
    std::array::from_fn(|r| std::array::from_fn(|j| a[[k, r, j]]))
}

/// Compares one sketch set (`prefix` "" or "awkward_") and returns (canvas mismatches, max diffs).
fn check_sketches(dir: &Path, prefix: &str) -> (usize, f32, f32) {
    let lm: Array3<f32> = read_npy(dir.join(format!("{prefix}landmarks_full_f32.npy"))).unwrap();
    let crop_hw: Array2<i32> = read_npy(dir.join(format!("{prefix}crop_hw_i32.npy"))).unwrap();
    let canvas_hw: Array2<i32> = read_npy(dir.join(format!("{prefix}canvas_hw_i32.npy"))).unwrap();
    let sketches: Array4<f32> = read_npy(dir.join(format!("{prefix}sketch_f32.npy"))).unwrap();
    let mut r = SketchRasteriser::new();
    let (mut canvas_bad, mut ref_max, mut tgt_max) = (0, 0f32, 0f32);
    for k in 0..lm.shape()[0] {
        let (ch, cw) = (crop_hw[[k, 0]] as usize, crop_hw[[k, 1]] as usize);
        let set = full_set(&lm, k);
        let want: Array2<u8> = read_npy(dir.join(format!("{prefix}canvas_{k:02}_u8.npy"))).unwrap();
        let (canvas, w, h) = r.draw_canvas(&set, cw, ch).unwrap();
        assert_eq!(
            [h, w],
            [canvas_hw[[k, 0]] as usize, canvas_hw[[k, 1]] as usize]
        );
        assert_eq!(want.shape(), [h, w]);
        let bad = canvas
            .iter()
            .zip(want.iter())
            .filter(|(a, b)| a != b)
            .count();
        eprintln!("{prefix}canvas {k}: {h}x{w}, {bad} mismatching pixels");
        canvas_bad += bad;
        for (scaling, max) in [
            (SketchScaling::Reference, &mut ref_max),
            (SketchScaling::Target, &mut tgt_max),
        ] {
            let mut out = vec![0f32; 3 * 128 * 128];
            r.render(&set, cw, ch, scaling, &mut out).unwrap();
            let golden = sketches.index_axis(ndarray::Axis(0), k);
            for (a, b) in out.iter().zip(golden.iter()) {
                *max = max.max((a - b).abs());
            }
        }
    }
    (canvas_bad, ref_max, tgt_max)
}

#[test]
fn sketches_match_golden() {
    let dir = iplap::require_shared!("golden/public/sketch");
    for prefix in ["", "awkward_"] {
        let (bad, ref_max, tgt_max) = check_sketches(&dir, prefix);
        eprintln!(
            "{prefix}sketches: canvas mismatches {bad}, reference path max|d| {ref_max:e}, target path max|d| {tgt_max:e}"
        );
        assert_eq!(bad, 0);
        assert!(ref_max <= 1e-6 && tgt_max <= 1e-6);
    }
}

#[test]
fn crops_match_golden() {
    let Some(g) = CropGolden::load() else { return };
    let (w, h) = g.facemesh.frame_size();
    let mut rz = Resizer::new();
    let mut out = Image::default();
    let mut tensor = vec![0f32; 3 * FACE_SIZE * FACE_SIZE];
    for (k, f) in CropGolden::SAMPLE_FRAMES.into_iter().enumerate() {
        let frame = Image::from_vec(g.facemesh.frame_rgb(f), w, h, ChannelOrder::Rgb).unwrap();
        let marks = g.facemesh.marks(f);
        let b = FaceGeometry::from_landmarks(&marks, frame.width(), frame.height())
            .unwrap()
            .crop_box;
        assert_eq!([b.y1, b.y2, b.x1, b.x2].map(|v| v as i32), g.crop_box(k));
        let golden = g.crop_bgr(k);

        crop_face(&frame.view(), b.rect(), &mut out, &mut rz).unwrap();
        let bad = out
            .data()
            .iter()
            .zip(&golden)
            .filter(|(a, b)| a != b)
            .count();
        // The same frame as padded BGRx must give the same crop (channel order is data, not code).
        // Packed 3-byte input as BGRx with 7 bytes of row padding, x = 0xAA: a typical mapped
        // GStreamer frame.
        let stride = w * 4 + 7;
        let bgrx = relayout(&frame.view(), ChannelOrder::Bgrx, stride, 0xAA);
        let view = ImageRef::new(&bgrx, w, h, stride, ChannelOrder::Bgrx).unwrap();
        let mut out2 = Image::default();
        crop_face(&view, b.rect(), &mut out2, &mut rz).unwrap();
        let bad2 = out2
            .data()
            .iter()
            .zip(&golden)
            .filter(|(a, b)| a != b)
            .count();

        bgr_to_chw(&out.view(), &mut tensor).unwrap();
        let want = g.crop_chw(k);
        let bad_f = tensor
            .iter()
            .zip(want.iter())
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        eprintln!(
            "crop {k} (frame {f}, box {b:?}): u8 mismatches {bad} (from BGRx: {bad2}), chw f32 mismatches {bad_f}"
        );
        assert_eq!((bad, bad2, bad_f), (0, 0, 0));

        mask_lower_half(&mut tensor).unwrap();
        assert!(tensor[64 * 128..128 * 128].iter().all(|&v| v == 0.0));
        assert_eq!(tensor[..64 * 128], want[..64 * 128]);
    }
}

fn count_bad(a: &[u8], b: impl Iterator<Item = u8>) -> usize {
    a.iter().zip(b).filter(|&(&x, y)| x != y).count()
}

#[test]
fn paste_back_matches_golden() {
    let Some(g) = PasteGolden::load() else { return };
    let face = ImageRef::packed(&g.face_bgr, 128, 128, ChannelOrder::Bgr).unwrap();
    let mut pb = PasteBack::new();
    let mut rz = Resizer::new();

    for (s, f) in PasteGolden::SAMPLE_FRAMES.into_iter().enumerate() {
        let (w, h) = g.frame_size();
        let frame = g.frame_bgr(s);
        // The paste frame is the facemesh RGB frame with its channels reversed (README).
        let rgb_rev = swap_red_blue(&g.facemesh.frame_rgb(f));
        assert_eq!(frame, rgb_rev);
        let rect = g.rect(s);
        let marks: Vec<[f32; 2]> = g.facemesh.marks(f).iter().map(|m| [m[0], m[1]]).collect();
        let polygon = paste_polygon(&marks, w, h).unwrap();

        let mut p = frame.clone();
        paste_face(
            &mut ImageMut::packed(&mut p, w, h, ChannelOrder::Bgr).unwrap(),
            &face,
            rect,
            &mut rz,
        )
        .unwrap();
        let bad_pasted = count_bad(&p, g.pasted(s).iter().copied());

        let mut out = frame.clone();
        pb.blend_u8(
            &mut ImageMut::packed(&mut out, w, h, ChannelOrder::Bgr).unwrap(),
            &face,
            rect,
            &polygon,
        )
        .unwrap();
        let win = pb.window();
        let bad_mask = count_bad(&g.full_mask(pb.mask(), win), g.mask(s).iter().copied());
        let bad_blur = count_bad(
            &g.full_mask(pb.blurred(), win),
            g.blurred(s).iter().copied(),
        );
        let want = g.result(s);
        let bad_result = count_bad(&out, want.iter().copied());

        // The same blend in place on a padded BGRx frame, fed an RGB generated face.
        let stride = w * 4 + 7;
        let mut bgrx = relayout(
            &ImageRef::packed(&frame, w, h, ChannelOrder::Bgr).unwrap(),
            ChannelOrder::Bgrx,
            stride,
            0xAA,
        );
        let face_rgb = swap_red_blue(&g.face_bgr);
        let face_rgb = ImageRef::packed(&face_rgb, 128, 128, ChannelOrder::Rgb).unwrap();
        pb.blend_u8(
            &mut ImageMut::new(&mut bgrx, w, h, stride, ChannelOrder::Bgrx).unwrap(),
            &face_rgb,
            rect,
            &polygon,
        )
        .unwrap();
        let mut bad_bgrx = 0;
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    bad_bgrx +=
                        (bgrx[y * stride + x * 4 + c] != want[(y * w + x) * 3 + c]) as usize;
                }
                bad_bgrx += (bgrx[y * stride + x * 4 + 3] != 0xAA) as usize;
            }
        }
        eprintln!(
            "paste {s} (frame {f}, {rect:?}, window {win:?}): pasted {bad_pasted}, mask {bad_mask}, \
             blur {bad_blur}, result {bad_result}, result on BGRx {bad_bgrx} mismatching values"
        );
        assert_eq!(
            (bad_pasted, bad_mask, bad_blur, bad_result, bad_bgrx),
            (0, 0, 0, 0, 0)
        );
    }
}

#[test]
fn paste_back_rejects_bad_input() {
    let mut frame = vec![0u8; 32 * 32 * 3];
    let mut img = ImageMut::packed(&mut frame, 32, 32, ChannelOrder::Bgr).unwrap();
    let face = vec![0f32; 3 * 128 * 128];
    let mut pb = PasteBack::new();
    let tri = [(1, 1), (20, 2), (10, 25)];
    assert!(
        pb.blend(&mut img, &face, Rect::new(0, 0, 0, 10), &tri)
            .is_err()
    );
    assert!(
        pb.blend(&mut img, &face, Rect::new(30, 0, 5, 5), &tri)
            .is_err()
    );
    assert!(
        pb.blend(&mut img, &face[1..], Rect::new(0, 0, 5, 5), &tri)
            .is_err()
    );
    assert!(
        pb.blend(
            &mut img,
            &face,
            Rect::new(0, 0, 5, 5),
            &[(0, 0), (i64::MAX, 0), (0, 9)]
        )
        .is_err()
    );
    // A polygon entirely off the frame is a no-op; NaN faces saturate to 0.
    let nan = vec![f32::NAN; 3 * 128 * 128];
    pb.blend(
        &mut img,
        &nan,
        Rect::new(0, 0, 5, 5),
        &[(-50, -50), (-40, -50), (-45, -40)],
    )
    .unwrap();
    pb.blend(&mut img, &nan, Rect::new(0, 0, 5, 5), &tri)
        .unwrap();
}
