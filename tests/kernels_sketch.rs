//! The host build of the sketch kernels (`kernels/sketch.cuh`) against `SketchRasteriser`: canvases
//! byte for byte and the 3 x 128 x 128 sketches bit for bit (`f32::to_bits`), for both scalings,
//! over the sketch goldens and random landmark sets and crop sizes, batched (S = 1, 5, 6).

use iplap::face::indices::FULL_LEN;
use iplap::image::{ImageError, SKETCH_COLOUR, SketchRasteriser, SketchScaling};
use iplap::kernels::host::sketch::{
    CONNECTION_TABLE, CONNECTIONS, SKETCH_VALUES, SketchLayout, draw_canvases, header_constants,
    render_sketches, resize_canvases, scaling_code,
};
use iplap::sizes::FACE_SIZE;
use ndarray::{Array2, Array3};
use ndarray_npy::read_npy;
use rand::{RngExt, SeedableRng, rngs::StdRng};

type Set = [[f32; FULL_LEN]; 2];
/// A batch: landmark sets and their `(crop_w, crop_h)`.
type Batch = (Vec<Set>, Vec<(usize, usize)>);
const SCALINGS: [SketchScaling; 2] = [SketchScaling::Reference, SketchScaling::Target];

/// Index of the first value whose bits differ, if any.
fn first_bit_mismatch(a: &[f32], b: &[f32]) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

/// Runs one batch through the host kernels (draw, then resize for both scalings) and holds every
/// canvas and sketch to `SketchRasteriser`. Returns the number of lit canvas pixels, so callers
/// can check that the cases actually drew something.
fn check_batch(sets: &[Set], crops: &[(usize, usize)], what: &str) -> usize {
    let layout = SketchLayout::new(crops).unwrap();
    assert_eq!(layout.len(), sets.len());
    let mut canvases = vec![0xA5u8; layout.canvas_bytes()];
    // The wrapper zeroes the buffer (the device launcher memsets), so the 0xA5 must not survive.
    draw_canvases(sets, &layout, &mut canvases).unwrap();
    let mut r = SketchRasteriser::new();
    let mut lit = 0;
    let stride = layout.canvas_stride();
    for (s, (set, &(cw, ch))) in sets.iter().zip(crops).enumerate() {
        let (want, w, h) = r.draw_canvas(set, cw, ch).unwrap();
        let wh = layout.canvas_wh();
        assert_eq!([wh[2 * s], wh[2 * s + 1]], [w as i32, h as i32], "{what}");
        let slot = &canvases[s * stride..(s + 1) * stride];
        let (got, pad) = slot.split_at(w * h);
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!(
                "{what}: sketch {s} ({cw}x{ch} crop, {w}x{h} canvas) differs at pixel ({}, {}): {} vs {}",
                i % w,
                i / w,
                got[i],
                want[i]
            );
        }
        // Lines stay inside their own canvas: the stride's padding is untouched.
        assert!(pad.iter().all(|&v| v == 0), "{what}: sketch {s} padding");
        lit += got.iter().filter(|&&v| v != 0).count();
    }
    for scaling in SCALINGS {
        let mut out = vec![f32::NAN; layout.output_len()];
        resize_canvases(&canvases, &layout, scaling, &mut out).unwrap();
        let mut want = vec![0f32; SKETCH_VALUES];
        for (s, (set, &(cw, ch))) in sets.iter().zip(crops).enumerate() {
            r.render(set, cw, ch, scaling, &mut want).unwrap();
            let got = &out[s * SKETCH_VALUES..(s + 1) * SKETCH_VALUES];
            if let Some(i) = first_bit_mismatch(got, &want) {
                panic!(
                    "{what}: sketch {s} ({cw}x{ch}) {scaling:?} differs at {i}: {:e} vs {:e}",
                    got[i], want[i]
                );
            }
        }
    }
    lit
}

#[test]
fn header_constants_match_rust() {
    assert_eq!(
        header_constants(),
        [
            FULL_LEN as i32,
            FACE_SIZE as i32,
            SKETCH_COLOUR as i32,
            scaling_code(SketchScaling::Reference),
            scaling_code(SketchScaling::Target),
        ]
    );
    assert_ne!(
        scaling_code(SketchScaling::Reference),
        scaling_code(SketchScaling::Target)
    );
    assert_eq!(CONNECTION_TABLE.len(), 2 * CONNECTIONS);
    assert!(
        CONNECTION_TABLE
            .iter()
            .all(|&c| (0..FULL_LEN as i32).contains(&c))
    );
}

fn load_golden(prefix: &str) -> Option<Batch> {
    let dir = iplap::testdata::shared_path("golden/public/sketch")?;
    let lm: Array3<f32> = read_npy(dir.join(format!("{prefix}landmarks_full_f32.npy"))).unwrap();
    let crop_hw: Array2<i32> = read_npy(dir.join(format!("{prefix}crop_hw_i32.npy"))).unwrap();
    let n = lm.shape()[0];
    let sets = (0..n)
        .map(|k| std::array::from_fn(|r| std::array::from_fn(|j| lm[[k, r, j]])))
        .collect();
    let crops = (0..n)
        .map(|k| (crop_hw[[k, 1]] as usize, crop_hw[[k, 0]] as usize))
        .collect();
    Some((sets, crops))
}

#[test]
fn goldens_match_rasteriser() {
    for prefix in ["", "awkward_"] {
        let Some((sets, crops)) = load_golden(prefix) else {
            return;
        };
        // The whole set as one batch (mixed canvas sizes, so strides with padding), then S = 1.
        let lit = check_batch(&sets, &crops, &format!("{prefix}golden batch"));
        assert!(lit > 1000, "{prefix}golden canvases drew only {lit} pixels");
        for (k, (set, crop)) in sets.iter().zip(&crops).enumerate() {
            check_batch(
                std::slice::from_ref(set),
                std::slice::from_ref(crop),
                &format!("{prefix}golden {k}"),
            );
        }
        eprintln!("{prefix}goldens: {} sketches bit-identical", sets.len());
    }
}

/// The canvases also equal the golden canvases themselves (not only the Rust code).
#[test]
fn golden_canvases_match_npy() {
    let Some((sets, crops)) = load_golden("") else {
        return;
    };
    let dir = iplap::testdata::shared_path("golden/public/sketch").unwrap();
    let layout = SketchLayout::new(&crops).unwrap();
    let mut canvases = vec![0u8; layout.canvas_bytes()];
    draw_canvases(&sets, &layout, &mut canvases).unwrap();
    for k in 0..sets.len() {
        let want: Array2<u8> = read_npy(dir.join(format!("canvas_{k:02}_u8.npy"))).unwrap();
        let (h, w) = (want.shape()[0], want.shape()[1]);
        let got = &canvases[k * layout.canvas_stride()..][..w * h];
        assert!(got.iter().eq(want.iter()), "golden canvas {k}");
    }
}

/// A landmark value: mostly inside [0, 1), sometimes a boundary or an invalid value, so that
/// edges are dropped (one bad endpoint) and the to_pixel edge cases are all visited.
fn value(rng: &mut StdRng, odd: f64) -> f32 {
    if rng.random::<f64>() >= odd {
        return rng.random::<f32>();
    }
    match rng.random_range(0..12) {
        0 => 0.0,
        1 => -0.0,
        2 => 1.0,
        3 => 0.999_999_94,
        4 => 1.000_000_1,
        5 => -1e-7,
        6 => f32::NAN,
        7 => f32::INFINITY,
        8 => f32::NEG_INFINITY,
        9 => rng.random_range(-2.0..3.0),
        10 => f32::MIN_POSITIVE,
        _ => 1.0 - rng.random::<f32>() * 1e-3,
    }
}

fn random_set(rng: &mut StdRng, odd: f64) -> Set {
    std::array::from_fn(|_| std::array::from_fn(|_| value(rng, odd)))
}

fn random_crop(rng: &mut StdRng) -> (usize, usize) {
    match rng.random_range(0..4) {
        0 => (rng.random_range(1..8), rng.random_range(1..8)),
        1 => (rng.random_range(1..40), rng.random_range(100..1200)),
        _ => (rng.random_range(60..700), rng.random_range(60..700)),
    }
}

#[test]
fn random_batches_match_rasteriser() {
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(0x5e7c_0000 + seed);
        let s = [1, 5, 5, 3][seed as usize % 4];
        let odd = [0.0, 0.05, 0.3, 1.0][(seed as usize / 4) % 4];
        let sets: Vec<Set> = (0..s).map(|_| random_set(&mut rng, odd)).collect();
        let crops: Vec<_> = (0..s).map(|_| random_crop(&mut rng)).collect();
        let lit = check_batch(&sets, &crops, &format!("seed {seed} (S = {s}, odd {odd})"));
        if odd == 0.0 {
            assert!(lit > 0, "seed {seed} drew nothing");
        }
    }
}

#[test]
fn extreme_crops_match_rasteriser() {
    let mut rng = StdRng::seed_from_u64(0x5e7c_e000);
    let crops = [
        (1, 1),
        (577, 455),
        (37, 1001),
        (1001, 37),
        (128, 128),
        (127, 129),
        (2, 3),
        (3, 2),
        // Exactly the 2^26-pixel canvas limit, both ways (lines up to 524288 pixels long).
        (1, 4096),
        (4096, 1),
    ];
    for (i, &crop) in crops.iter().enumerate() {
        let set = random_set(&mut rng, 0.1);
        check_batch(&[set], &[crop], &format!("crop {crop:?}"));
        // And inside a batch of five, at every position, beside ordinary crops.
        if i < 8 {
            let sets: Vec<Set> = (0..5).map(|_| random_set(&mut rng, 0.1)).collect();
            let mut batch = [(245, 199), (97, 131), (300, 300), (64, 200), (5, 5)];
            batch[i % 5] = crop;
            check_batch(&sets, &batch, &format!("crop {crop:?} in a batch"));
        }
    }
}

/// Long canvases with an odd length (73161, 116494, ... pixels): there the tap positions
/// `(d + 0.5) * scale - 0.5` need more than f32's 24 bits, so computing them in f64 (or any other
/// order than Rust's) moves the weights. Long random lines end many runs between the two taps of
/// an output pixel, which makes those weights visible in the result.
#[test]
fn long_odd_canvases_match_rasteriser() {
    let mut rng = StdRng::seed_from_u64(0x5e7c_10ad);
    let crops = [(7, 4001), (4001, 7), (9, 8191), (8191, 9), (3, 2999)];
    for round in 0..4 {
        let sets: Vec<Set> = (0..5).map(|_| random_set(&mut rng, 0.0)).collect();
        let mut batch = crops;
        batch.rotate_left(round);
        check_batch(&sets, &batch, &format!("long canvases, round {round}"));
    }
}

/// Hand-made sets on the boundaries: every point at (0, 0), at (1, 1), at +inf (which MediaPipe's
/// test lets through and Rust pins to the last pixel), and a set with one invalid point.
#[test]
fn boundary_sets_match_rasteriser() {
    let fill = |x: f32, y: f32| -> Set { [[x; FULL_LEN], [y; FULL_LEN]] };
    let mut ramp: Set = std::array::from_fn(|r| {
        std::array::from_fn(|j| (j as f32 + 0.5 * r as f32) / FULL_LEN as f32)
    });
    let cases = [
        fill(0.0, 0.0),
        fill(1.0, 1.0),
        fill(f32::INFINITY, 0.5),
        fill(0.5, f32::INFINITY),
        fill(f32::NAN, 0.5),
        ramp,
    ];
    for (i, set) in cases.iter().enumerate() {
        for crop in [(1, 1), (245, 199), (37, 1001)] {
            check_batch(
                &[*set],
                &[crop],
                &format!("boundary case {i}, crop {crop:?}"),
            );
        }
    }
    ramp[1][CONNECTION_TABLE[0] as usize] = 1.5;
    check_batch(&[ramp], &[(200, 150)], "ramp with a dropped edge");
}

/// The comparison can fail: a moved landmark gives different bits.
#[test]
fn comparison_detects_wrong_input() {
    let mut rng = StdRng::seed_from_u64(7);
    let set = random_set(&mut rng, 0.0);
    let crop = (245, 199);
    let mut want = vec![0f32; SKETCH_VALUES];
    SketchRasteriser::new()
        .render(&set, crop.0, crop.1, SketchScaling::Target, &mut want)
        .unwrap();
    let mut moved = set;
    moved[0][CONNECTION_TABLE[0] as usize] = (moved[0][CONNECTION_TABLE[0] as usize] + 0.3) % 1.0;
    let mut got = vec![0f32; SKETCH_VALUES];
    render_sketches(&[moved], &[crop], SketchScaling::Target, &mut got).unwrap();
    assert!(first_bit_mismatch(&got, &want).is_some());
    // The other scaling cannot serve as a wrong input: the short side of every canvas is 128, so
    // one axis is the identity and the other's weights are coarse dyadic fractions; the resized
    // value is then exact in f32 and `f32(v / 255.0)` equals `f32(v) / 255` (checked exhaustively
    // for byte pairs and canvas widths 128..400 while writing this test). Report, don't assert.
    render_sketches(&[set], &[crop], SketchScaling::Reference, &mut got).unwrap();
    let differ = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    eprintln!("Reference vs Target scaling: {differ} values differ");
    render_sketches(&[set], &[crop], SketchScaling::Target, &mut got).unwrap();
    assert_eq!(first_bit_mismatch(&got, &want), None);
}

#[test]
fn bad_input_is_an_error() {
    let set: Set = [[0.5; FULL_LEN]; 2];
    assert!(SketchLayout::new(&[]).is_err());
    assert!(matches!(
        SketchLayout::new(&[(0, 10)]),
        Err(ImageError::BadCropSize { .. })
    ));
    assert!(SketchLayout::new(&[(10, 10), (1, 1 << 20)]).is_err());
    assert!(SketchLayout::new(&vec![(10, 10); 65_536]).is_err());
    let layout = SketchLayout::new(&[(10, 10), (20, 10)]).unwrap();
    assert_eq!(layout.canvas_stride(), 256 * 128);
    let mut canvases = vec![0u8; layout.canvas_bytes()];
    let mut out = vec![0f32; layout.output_len()];
    // Wrong landmark count, canvas size, output size.
    assert!(draw_canvases(&[set], &layout, &mut canvases).is_err());
    assert!(draw_canvases(&[set, set], &layout, &mut canvases[1..]).is_err());
    assert!(draw_canvases(&[set, set], &layout, &mut canvases).is_ok());
    let s = SketchScaling::Target;
    assert!(resize_canvases(&canvases[1..], &layout, s, &mut out).is_err());
    assert!(resize_canvases(&canvases, &layout, s, &mut out[1..]).is_err());
    assert!(resize_canvases(&canvases, &layout, s, &mut out).is_ok());
    let crops = [(10, 10), (20, 10)];
    assert!(render_sketches(&[set], &crops, s, &mut out).is_err());
    assert!(render_sketches(&[set, set], &crops, s, &mut out[..SKETCH_VALUES]).is_err());
}
