//! Sketches, face crops and paste-back against `shared/golden/public/{sketch,crop}` (spec §1.5,
//! §1.7, §1.8, §4, appendix C). Everything uint8 must match exactly; float sketches to 1e-6.

use iplap::face::crop_box::{FaceGeometry, paste_polygon};
use iplap::face::indices::FULL_LEN;
use iplap::image::{
    ChannelOrder, Image, ImageMut, ImageRef, PasteBack, Rect, Resizer, SketchRasteriser,
    SketchScaling, bgr_to_chw, crop_face, mask_lower_half, paste_face,
};
use iplap::sizes::FACE_SIZE;
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

/// RGB frame `f` of the facemesh source as an owned image.
fn rgb_frame(frames: &Array4<u8>, f: usize) -> Image {
    let (h, w) = (frames.shape()[1], frames.shape()[2]);
    let data = frames
        .index_axis(ndarray::Axis(0), f)
        .iter()
        .copied()
        .collect();
    Image::from_vec(data, w, h, ChannelOrder::Rgb).unwrap()
}

/// The same pixels (packed 3-byte input) as BGRx with 7 bytes of row padding, x = 0xAA: a typical
/// mapped GStreamer frame.
fn to_bgrx_padded(img: &ImageRef) -> (Vec<u8>, usize) {
    let stride = img.width() * 4 + 7;
    let mut out = vec![0xAAu8; stride * img.height()];
    let off = img.order().bgr_offsets().unwrap();
    for y in 0..img.height() {
        for (x, px) in img.row(y).chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[y * stride + x * 4 + c] = px[off[c]];
            }
        }
    }
    (out, stride)
}

#[test]
fn crops_match_golden() {
    let fm = iplap::require_shared!("golden/public/facemesh/129");
    let dir = iplap::require_shared!("golden/public/crop");
    let frames: Array4<u8> = read_npy(fm.join("frames_rgb_u8.npy")).unwrap();
    let lm: Array3<f32> = read_npy(fm.join("landmarks_refined_f32.npy")).unwrap();
    let boxes: Array2<i32> = read_npy(dir.join("boxes_i32.npy")).unwrap();
    let crops: Array4<u8> = read_npy(dir.join("crop_bgr_u8.npy")).unwrap();
    let chw: Array4<f32> = read_npy(dir.join("crop_chw_f32.npy")).unwrap();
    let mut rz = Resizer::new();
    let mut out = Image::default();
    let mut tensor = vec![0f32; 3 * FACE_SIZE * FACE_SIZE];
    // Crop samples are the sketch samples: frames 0, 12, 24, 36, 48, 59 (README).
    for (k, f) in [0usize, 12, 24, 36, 48, 59].into_iter().enumerate() {
        let frame = rgb_frame(&frames, f);
        let marks: Vec<[f32; 3]> = (0..478)
            .map(|i| [lm[[f, i, 0]], lm[[f, i, 1]], lm[[f, i, 2]]])
            .collect();
        let b = FaceGeometry::from_landmarks(&marks, frame.width(), frame.height())
            .unwrap()
            .crop_box;
        assert_eq!(
            [b.y1, b.y2, b.x1, b.x2].map(|v| v as i32),
            [0, 1, 2, 3].map(|i| boxes[[k, i]])
        );
        let golden: Vec<u8> = crops
            .index_axis(ndarray::Axis(0), k)
            .iter()
            .copied()
            .collect();

        crop_face(&frame.view(), b.rect(), &mut out, &mut rz).unwrap();
        let bad = out
            .data()
            .iter()
            .zip(&golden)
            .filter(|(a, b)| a != b)
            .count();
        // The same frame as padded BGRx must give the same crop (channel order is data, not code).
        let (bgrx, stride) = to_bgrx_padded(&frame.view());
        let view = ImageRef::new(
            &bgrx,
            frame.width(),
            frame.height(),
            stride,
            ChannelOrder::Bgrx,
        )
        .unwrap();
        let mut out2 = Image::default();
        crop_face(&view, b.rect(), &mut out2, &mut rz).unwrap();
        let bad2 = out2
            .data()
            .iter()
            .zip(&golden)
            .filter(|(a, b)| a != b)
            .count();

        bgr_to_chw(&out.view(), &mut tensor).unwrap();
        let want = chw.index_axis(ndarray::Axis(0), k);
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
        assert_eq!(tensor[..64 * 128], want.as_slice().unwrap()[..64 * 128]);
    }
}

fn count_bad(a: &[u8], b: impl Iterator<Item = u8>) -> usize {
    a.iter().zip(b).filter(|&(&x, y)| x != y).count()
}

#[test]
fn paste_back_matches_golden() {
    let fm = iplap::require_shared!("golden/public/facemesh/129");
    let dir = iplap::require_shared!("golden/public/crop");
    let lm: Array3<f32> = read_npy(fm.join("landmarks_refined_f32.npy")).unwrap();
    let rgb: Array4<u8> = read_npy(fm.join("frames_rgb_u8.npy")).unwrap();
    let frames: Array4<u8> = read_npy(dir.join("paste_frame_bgr_u8.npy")).unwrap();
    let boxes: Array2<i32> = read_npy(dir.join("paste_boxes_i32.npy")).unwrap();
    let gen_face: Array3<u8> = read_npy(dir.join("paste_gen_face_bgr_u8.npy")).unwrap();
    let pasted: Array4<u8> = read_npy(dir.join("paste_pasted_bgr_u8.npy")).unwrap();
    let masks: Array3<u8> = read_npy(dir.join("paste_mask_u8.npy")).unwrap();
    let blurs: Array3<u8> = read_npy(dir.join("paste_mask_blur_u8.npy")).unwrap();
    let results: Array4<u8> = read_npy(dir.join("paste_result_bgr_u8.npy")).unwrap();
    let face_data: Vec<u8> = gen_face.iter().copied().collect();
    let face = ImageRef::packed(&face_data, 128, 128, ChannelOrder::Bgr).unwrap();
    let mut pb = PasteBack::new();
    let mut rz = Resizer::new();

    for (s, f) in [0usize, 24, 48].into_iter().enumerate() {
        let (h, w) = (frames.shape()[1], frames.shape()[2]);
        let frame: Vec<u8> = frames
            .index_axis(ndarray::Axis(0), s)
            .iter()
            .copied()
            .collect();
        // The paste frame is the facemesh RGB frame with its channels reversed (README).
        let rgb_rev = rgb
            .index_axis(ndarray::Axis(0), f)
            .lanes(ndarray::Axis(2))
            .into_iter()
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect::<Vec<_>>();
        assert_eq!(frame, rgb_rev);
        let rect = Rect::new(
            boxes[[s, 2]] as usize,
            boxes[[s, 0]] as usize,
            (boxes[[s, 3]] - boxes[[s, 2]]) as usize,
            (boxes[[s, 1]] - boxes[[s, 0]]) as usize,
        );
        let marks: Vec<[f32; 2]> = (0..478).map(|i| [lm[[f, i, 0]], lm[[f, i, 1]]]).collect();
        let polygon = paste_polygon(&marks, w, h).unwrap();

        let mut p = frame.clone();
        paste_face(
            &mut ImageMut::packed(&mut p, w, h, ChannelOrder::Bgr).unwrap(),
            &face,
            rect,
            &mut rz,
        )
        .unwrap();
        let bad_pasted = count_bad(&p, pasted.index_axis(ndarray::Axis(0), s).iter().copied());

        let mut out = frame.clone();
        pb.blend_u8(
            &mut ImageMut::packed(&mut out, w, h, ChannelOrder::Bgr).unwrap(),
            &face,
            rect,
            &polygon,
        )
        .unwrap();
        let win = pb.window();
        let embed = |part: &[u8]| -> Vec<u8> {
            let mut full = vec![0u8; w * h];
            for y in 0..win.height {
                let o = (win.y + y) * w + win.x;
                full[o..o + win.width].copy_from_slice(&part[y * win.width..(y + 1) * win.width]);
            }
            full
        };
        let bad_mask = count_bad(
            &embed(pb.mask()),
            masks.index_axis(ndarray::Axis(0), s).iter().copied(),
        );
        let bad_blur = count_bad(
            &embed(pb.blurred()),
            blurs.index_axis(ndarray::Axis(0), s).iter().copied(),
        );
        let want: Vec<u8> = results
            .index_axis(ndarray::Axis(0), s)
            .iter()
            .copied()
            .collect();
        let bad_result = count_bad(&out, want.iter().copied());

        // The same blend in place on a padded BGRx frame, fed an RGB generated face.
        let (mut bgrx, stride) =
            to_bgrx_padded(&ImageRef::packed(&frame, w, h, ChannelOrder::Bgr).unwrap());
        let face_rgb: Vec<u8> = face_data
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
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
