//! The warp kernels' host build (`kernels/warp.cuh` through `iplap::kernels::host::warp`) against
//! the Rust warp-and-accumulate (`iplap::warp`). The kernels keep Rust's per-element operation order,
//! so the outputs must be bit-identical (NaN-ness compared for NaN results), which is stricter than
//! the 1e-6 contract: any difference means an order or formula changed.
//!
//! Cases: the renderer goldens' flows and weights (with random h1 / h2), random flows built to hit
//! every sampling branch (inside, exactly on the -1 / last borders, half in the padding, far outside,
//! non-finite), random and subnormal weights, N = 1, 2, 5, 13, 25, chunked feeding, bad inputs, and a
//! check that a perturbed input is caught.

use iplap::kernels::host::warp::{HostWarpAccumulator, warp_accumulate as host_warp};
use iplap::warp::{WarpAccumulator, WarpChunk, WarpError, WarpOutput, warp_accumulate};
use ndarray::{Array4, Array5, Axis, s};
use ndarray_npy::read_npy;
use rand::{RngExt, SeedableRng, rngs::StdRng};

const FACE: usize = 128;
const HALF: usize = 64;

/// The five inputs of `n` references, owned.
struct Refs {
    flow: Array4<f32>,
    weight: Array4<f32>,
    h1: Array4<f32>,
    h2: Array4<f32>,
    img: Array4<f32>,
}

impl Refs {
    fn n(&self) -> usize {
        self.flow.len_of(Axis(0))
    }

    /// References a..b as a chunk.
    fn chunk(&self, a: usize, b: usize) -> WarpChunk<'_> {
        WarpChunk {
            flow: self.flow.slice(s![a..b, .., .., ..]),
            weight: self.weight.slice(s![a..b, .., .., ..]),
            h1: self.h1.slice(s![a..b, .., .., ..]),
            h2: self.h2.slice(s![a..b, .., .., ..]),
            ref_img: self.img.slice(s![a..b, .., .., ..]),
        }
    }
}

/// Panics unless the two tensors are identical bit for bit (NaN matching NaN); reports the worst
/// absolute difference so a failure shows whether it is a rounding or a formula difference.
fn assert_same(what: &str, got: &Array4<f32>, want: &Array4<f32>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut mismatches = 0usize;
    let mut worst = 0.0f32;
    for (g, w) in got.iter().zip(want.iter()) {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        if !same {
            mismatches += 1;
            worst = worst.max((g - w).abs());
        }
    }
    assert!(
        mismatches == 0,
        "{what}: {mismatches} elements differ, max abs diff {worst:e}"
    );
}

fn assert_outputs_same(what: &str, got: &WarpOutput, want: &WarpOutput) {
    assert_same(&format!("{what} h1_avg"), &got.h1_avg, &want.h1_avg);
    assert_same(&format!("{what} h2_avg"), &got.h2_avg, &want.h2_avg);
    assert_same(&format!("{what} ref_avg"), &got.ref_avg, &want.ref_avg);
}

fn max_abs(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The sampling position `ix` on an `n` side for normalised grid value `g` (the kernels' f32 maths).
fn sample_pos(g: f32, n: usize) -> f32 {
    ((g + 1.0) * n as f32 - 1.0) / 2.0
}

/// Normalised deformation of index `j` with flow `f` (corner-aligned grid, f32 like the kernels).
fn deform(j: usize, f: f32) -> f32 {
    2.0 * (j as f32 / 127.0) - 1.0 + 2.0 * (f / 127.0)
}

/// A flow value (pixels) that puts full-resolution index `j` at `ix == target` exactly, searching
/// the f32 neighbours of the real-valued solution; the estimate itself if none lands exactly.
fn exact_flow(j: usize, target: f32) -> f32 {
    let est = 127.0 * ((2.0 * target as f64 + 1.0) / 128.0 - 2.0 * j as f64 / 127.0) / 2.0;
    let est = est as f32;
    let mut f = est;
    for _ in 0..64 {
        if sample_pos(deform(j, f), FACE) == target {
            return f;
        }
        f = f32::from_bits(f.to_bits().wrapping_add(1));
    }
    let mut f = est;
    for _ in 0..64 {
        if sample_pos(deform(j, f), FACE) == target {
            return f;
        }
        f = f32::from_bits(f.to_bits().wrapping_sub(1));
    }
    est
}

/// One flow component for index `j` (column for x, row for y): a random mix of in-image motion,
/// exact integer / half-integer positions, exact border positions, far-outside and raw large flows.
fn flow_value(rng: &mut StdRng, j: usize) -> f32 {
    let jf = j as f32;
    match rng.random_range(0..100) {
        0..40 => exact_flow(j, jf) + rng.random_range(-3.0f32..3.0),
        40..55 => exact_flow(j, jf + rng.random_range(-3i32..=3) as f32),
        55..65 => exact_flow(j, jf + rng.random_range(-3i32..=3) as f32 + 0.5),
        65..75 => {
            let magnitude = rng.random_range(130.0f32..400.0);
            if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            }
        }
        75..85 => {
            const BORDERS: [f32; 8] = [-2.0, -1.5, -1.0, -0.5, 126.5, 127.0, 127.5, 128.0];
            exact_flow(j, BORDERS[rng.random_range(0..BORDERS.len())])
        }
        _ => rng.random_range(-140.0f32..140.0),
    }
}

/// torch's 2× bilinear reduction of four deformations (the kernels' `iplap_warp_mix`).
fn mix(a: f32, b: f32, c: f32, d: f32) -> f32 {
    0.5 * (0.5 * a + 0.5 * b) + 0.5 * (0.5 * c + 0.5 * d)
}

/// One flow value shared by a 2 × 2 block that puts the block's reduced (64 × 64) sample at
/// `ix == target` exactly; `k` is the block's half-resolution index along the axis, `along_x`
/// says whether the two indices of the pair are columns (x) or rows (y).
fn exact_block_flow(k: usize, target: f32, along_x: bool) -> f32 {
    let reduced = |f: f32| {
        let (lo, hi) = (deform(2 * k, f), deform(2 * k + 1, f));
        let m = if along_x {
            mix(lo, hi, lo, hi)
        } else {
            mix(lo, lo, hi, hi)
        };
        sample_pos(m, HALF)
    };
    let m = (2.0 * target as f64 + 1.0) / 64.0 - 1.0;
    let est = (127.0 / 2.0 * (m + 1.0 - (4.0 * k as f64 + 1.0) / 127.0)) as f32;
    for step in [1i32, -1] {
        let mut f = est;
        for _ in 0..64 {
            if reduced(f) == target {
                return f;
            }
            f = f32::from_bits(f.to_bits().wrapping_add_signed(step));
        }
    }
    est
}

/// A weight: mostly sigmoid-like in (0, 1), some exact 0 and 1, some subnormal (no flush to zero).
fn weight_value(rng: &mut StdRng) -> f32 {
    match rng.random_range(0..100) {
        0..5 => 0.0,
        5..10 => 1.0,
        10..13 => f32::from_bits(rng.random_range(1u32..0x0080_0000)),
        _ => rng.random_range(0.0f32..1.0),
    }
}

/// `n` random references (fixed seed).
fn random_refs(seed: u64, n: usize) -> Refs {
    let mut rng = StdRng::seed_from_u64(seed);
    let flow = Array4::from_shape_fn((n, 2, FACE, FACE), |(_, c, i, j)| {
        flow_value(&mut rng, if c == 0 { j } else { i })
    });
    // A tenth of the 2 × 2 blocks move together onto exact positions of the 64 × 64 grid (borders
    // and integers), which per-pixel random flows almost never reach for the reduced deformation.
    let mut flow = flow;
    for r in 0..n {
        for c in 0..2 {
            for bi in 0..HALF {
                for bj in 0..HALF {
                    if rng.random_range(0..10) != 0 {
                        continue;
                    }
                    const BORDERS: [f32; 6] = [-1.5, -1.0, -0.5, 62.5, 63.0, 63.5];
                    let k = if c == 0 { bj } else { bi };
                    let target = if rng.random_bool(0.5) {
                        BORDERS[rng.random_range(0..BORDERS.len())]
                    } else {
                        k as f32 + rng.random_range(-2i32..=2) as f32
                    };
                    let f = exact_block_flow(k, target, c == 0);
                    flow.slice_mut(s![r, c, 2 * bi..2 * bi + 2, 2 * bj..2 * bj + 2])
                        .fill(f);
                }
            }
        }
    }
    let weight = Array4::from_shape_fn((n, 1, FACE, FACE), |_| weight_value(&mut rng));
    let h1 = Array4::from_shape_fn((n, 32, FACE, FACE), |_| rng.random_range(-2.0f32..2.0));
    let h2 = Array4::from_shape_fn((n, 256, HALF, HALF), |_| rng.random_range(-2.0f32..2.0));
    let img = Array4::from_shape_fn((n, 3, FACE, FACE), |_| rng.random_range(0.0f32..1.0));
    Refs {
        flow,
        weight,
        h1,
        h2,
        img,
    }
}

/// How often the sampling of `refs` takes each branch of the kernels' per-axis tap selection, at
/// full and half resolution: [inside, lo == -1, lo == last, outside, ix exactly -1, ix exactly last].
fn branch_counts(refs: &Refs) -> [[usize; 6]; 2] {
    let mut counts = [[0usize; 6]; 2];
    let mut count = |level: usize, ix: f32, n: usize| {
        let lo = ix.floor();
        let last = (n - 1) as f32;
        let k = if lo >= 0.0 && lo < last {
            0
        } else if lo == -1.0 {
            1
        } else if lo == last {
            2
        } else {
            3
        };
        counts[level][k] += 1;
        counts[level][4] += usize::from(ix == -1.0);
        counts[level][5] += usize::from(ix == last);
    };
    for r in 0..refs.n() {
        for c in 0..2 {
            let plane = refs.flow.slice(s![r, c, .., ..]);
            let g = |i: usize, j: usize| deform(if c == 0 { j } else { i }, plane[[i, j]]);
            for i in 0..FACE {
                for j in 0..FACE {
                    count(0, sample_pos(g(i, j), FACE), FACE);
                }
            }
            for i in 0..HALF {
                for j in 0..HALF {
                    let (a, b) = (g(2 * i, 2 * j), g(2 * i, 2 * j + 1));
                    let (cc, d) = (g(2 * i + 1, 2 * j), g(2 * i + 1, 2 * j + 1));
                    count(1, sample_pos(mix(a, b, cc, d), HALF), HALF);
                }
            }
        }
    }
    counts
}

#[test]
fn golden_flows_match_rust_bit_for_bit() {
    let dir = iplap::require_shared!("golden/public/models/renderer");
    let flow: Array5<f32> = read_npy(dir.join("intermediates/flow_per_ref.npy")).unwrap();
    let weight: Array5<f32> = read_npy(dir.join("intermediates/weight_per_ref.npy")).unwrap();
    let img: Array5<f32> = read_npy(dir.join("inputs/ref_N_frame_img.npy")).unwrap();
    let wrapped_ref: Array4<f32> = read_npy(dir.join("outputs/wrapped_ref.npy")).unwrap();
    let flow = flow.index_axis_move(Axis(1), 0);
    let n = flow.len_of(Axis(0));
    // The goldens hold no per-reference h1 / h2; random features exercise those paths instead.
    let features = random_refs(7, n);
    let refs = Refs {
        flow,
        weight: weight.index_axis_move(Axis(1), 0),
        h1: features.h1,
        h2: features.h2,
        img: img.index_axis_move(Axis(0), 0),
    };

    let want = warp_accumulate(&refs.chunk(0, n), 2).unwrap();
    let t = std::time::Instant::now();
    let got = host_warp(&refs.chunk(0, n)).unwrap();
    eprintln!("host warp kernels, golden N={n}: {:?}", t.elapsed());
    assert_outputs_same("golden", &got, &want);
    // And the official result, to the golden tolerance of tests/warp.rs.
    let diff = max_abs(&got.ref_avg, &wrapped_ref);
    assert!(diff <= 2e-4, "ref_avg vs golden wrapped_ref: {diff:e}");

    let mut acc = HostWarpAccumulator::new();
    for (a, b) in [(0, 7), (7, 8), (8, n)] {
        acc.add(&refs.chunk(a, b)).unwrap();
    }
    assert_eq!(acc.count(), n);
    assert_outputs_same("golden chunked", &acc.finish().unwrap(), &want);
}

#[test]
fn random_flows_match_rust_for_every_reference_count() {
    let all = random_refs(2024, 25);
    let counts = branch_counts(&all);
    eprintln!("tap branches [inside, lo=-1, lo=last, outside, ix=-1, ix=last]: {counts:?}");
    // The random flows must reach every branch at both resolutions, exact borders included,
    // or the comparison below would not cover them.
    for (level, c) in counts.iter().enumerate() {
        for (k, v) in c.iter().enumerate() {
            assert!(*v > 0, "level {level}: branch {k} never taken");
        }
    }
    for (k, n) in [1usize, 2, 5, 13, 25].into_iter().enumerate() {
        // Different windows of the bank for different n, so the cases do not share their start.
        let start = (k * 3).min(25 - n);
        let refs = Refs {
            flow: all.flow.slice(s![start..start + n, .., .., ..]).to_owned(),
            weight: all
                .weight
                .slice(s![start..start + n, .., .., ..])
                .to_owned(),
            h1: all.h1.slice(s![start..start + n, .., .., ..]).to_owned(),
            h2: all.h2.slice(s![start..start + n, .., .., ..]).to_owned(),
            img: all.img.slice(s![start..start + n, .., .., ..]).to_owned(),
        };
        let want = warp_accumulate(&refs.chunk(0, n), 1 + k % 3).unwrap();
        let t = std::time::Instant::now();
        let got = host_warp(&refs.chunk(0, n)).unwrap();
        eprintln!("host warp kernels, N={n}: {:?}", t.elapsed());
        assert_outputs_same(&format!("N={n}"), &got, &want);
        assert!(got.h1_avg.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn chunked_feeding_matches_one_shot() {
    let refs = random_refs(99, 25);
    let want = warp_accumulate(&refs.chunk(0, 25), 2).unwrap();
    let one_shot = host_warp(&refs.chunk(0, 25)).unwrap();
    assert_outputs_same("one shot", &one_shot, &want);

    // Rust's accumulator fed the same way, to show both sides agree chunk by chunk too.
    let mut rust = WarpAccumulator::new(3);
    let mut acc = HostWarpAccumulator::new();
    for splits in [&[0, 5, 10, 15, 20, 25][..], &[0, 7, 25], &[0, 1, 24, 25]] {
        acc.reset();
        rust.reset();
        for w in splits.windows(2) {
            acc.add(&refs.chunk(w[0], w[1])).unwrap();
            rust.add(&refs.chunk(w[0], w[1])).unwrap();
            assert_outputs_same(
                &format!("after chunk {w:?}"),
                &acc.finish().unwrap(),
                &rust.finish().unwrap(),
            );
        }
        assert_eq!(acc.count(), 25);
        assert_outputs_same(
            &format!("chunks {splits:?}"),
            &acc.finish().unwrap(),
            &one_shot,
        );
    }
}

#[test]
fn non_finite_flows_and_features_match_rust() {
    // Non-finite sampling positions give the all-zero tap at base 0, which both sides still
    // multiply with the source there: an infinite feature at pixel 0 turns into NaN on both.
    let mut refs = random_refs(5, 3);
    let mut rng = StdRng::seed_from_u64(6);
    for v in refs.flow.iter_mut() {
        match rng.random_range(0..50) {
            0 => *v = f32::NAN,
            1 => *v = f32::INFINITY,
            2 => *v = f32::NEG_INFINITY,
            3 => *v = f32::MAX,
            _ => {}
        }
    }
    refs.h1[[1, 4, 0, 0]] = f32::INFINITY;
    refs.h2[[2, 9, 0, 0]] = f32::NEG_INFINITY;
    refs.img[[0, 1, 0, 0]] = f32::NAN;
    let want = warp_accumulate(&refs.chunk(0, 3), 2).unwrap();
    let got = host_warp(&refs.chunk(0, 3)).unwrap();
    assert_outputs_same("non-finite", &got, &want);
    assert!(want.h1_avg.iter().any(|v| v.is_nan()), "case lost its NaNs");
}

#[test]
fn strided_views_are_accepted() {
    // Every other reference of a bank: strided views, copied to standard layout by both sides.
    let refs = random_refs(11, 6);
    let view = |a: &Array4<f32>| a.slice(s![..;2, .., .., ..]).to_owned();
    let chunk = WarpChunk {
        flow: refs.flow.slice(s![..;2, .., .., ..]),
        weight: refs.weight.slice(s![..;2, .., .., ..]),
        h1: refs.h1.slice(s![..;2, .., .., ..]),
        h2: refs.h2.slice(s![..;2, .., .., ..]),
        ref_img: refs.img.slice(s![..;2, .., .., ..]),
    };
    let contiguous = Refs {
        flow: view(&refs.flow),
        weight: view(&refs.weight),
        h1: view(&refs.h1),
        h2: view(&refs.h2),
        img: view(&refs.img),
    };
    let got = host_warp(&chunk).unwrap();
    assert_outputs_same(
        "strided",
        &got,
        &warp_accumulate(&contiguous.chunk(0, 3), 1).unwrap(),
    );
}

#[test]
fn a_perturbed_input_is_caught() {
    // The comparison must be able to fail: a quarter-pixel change of one reference's flow, or a
    // changed weight, moves every output past the 1e-6 contract.
    let refs = random_refs(3, 2);
    let want = warp_accumulate(&refs.chunk(0, 2), 1).unwrap();
    let mut moved = Refs {
        flow: refs.flow.clone(),
        weight: refs.weight.clone(),
        h1: refs.h1.clone(),
        h2: refs.h2.clone(),
        img: refs.img.clone(),
    };
    moved
        .flow
        .slice_mut(s![1, .., .., ..])
        .mapv_inplace(|v| v + 0.25);
    let got = host_warp(&moved.chunk(0, 2)).unwrap();
    assert!(max_abs(&got.h1_avg, &want.h1_avg) > 1e-6);
    assert!(max_abs(&got.h2_avg, &want.h2_avg) > 1e-6);
    assert!(max_abs(&got.ref_avg, &want.ref_avg) > 1e-6);

    let mut reweighted = moved;
    reweighted.flow = refs.flow.clone();
    reweighted.weight[[0, 0, 64, 64]] += 0.1;
    let got = host_warp(&reweighted.chunk(0, 2)).unwrap();
    assert!(max_abs(&got.h1_avg, &want.h1_avg) > 1e-6);
    assert!(max_abs(&got.h2_avg, &want.h2_avg) > 1e-6);
}

#[test]
fn bad_inputs_are_errors() {
    let refs = random_refs(1, 2);
    assert_eq!(HostWarpAccumulator::new().finish(), Err(WarpError::Empty));

    // A chunk whose shapes disagree, by view.
    let mut chunk = refs.chunk(0, 2);
    chunk.h2 = refs.h2.slice(s![0..1, .., .., ..]);
    assert!(matches!(
        host_warp(&chunk),
        Err(WarpError::Shape { name: "h2", .. })
    ));
    let small = Array4::<f32>::zeros((2, 2, 128, 127));
    let mut chunk = refs.chunk(0, 2);
    chunk.flow = small.view();
    assert!(matches!(
        host_warp(&chunk),
        Err(WarpError::Shape { name: "flow", .. })
    ));

    // Flat buffers one value short, or one too long, for n = 2.
    let flat = |a: &Array4<f32>| a.as_slice().unwrap().to_vec();
    let (f, w, h1, h2, im) = (
        flat(&refs.flow),
        flat(&refs.weight),
        flat(&refs.h1),
        flat(&refs.h2),
        flat(&refs.img),
    );
    let mut acc = HostWarpAccumulator::new();
    let e = acc.add_slices(2, &f[1..], &w, &h1, &h2, &im);
    assert!(matches!(e, Err(WarpError::Shape { name: "flow", .. })));
    let e = acc.add_slices(2, &f, &w, &h1, &h2[1..], &im);
    assert!(matches!(e, Err(WarpError::Shape { name: "h2", .. })));
    let e = acc.add_slices(3, &f, &w, &h1, &h2, &im);
    assert!(matches!(e, Err(WarpError::Shape { name: "flow", .. })));
    let mut long = im.clone();
    long.push(0.0);
    let e = acc.add_slices(2, &f, &w, &h1, &h2, &long);
    assert!(matches!(
        e,
        Err(WarpError::Shape {
            name: "ref_img",
            ..
        })
    ));
    // A reference count whose buffer sizes overflow cannot match any slice.
    let e = acc.add_slices(usize::MAX / 4, &f, &w, &h1, &h2, &im);
    assert!(matches!(e, Err(WarpError::Shape { .. })));
    assert_eq!(acc.count(), 0, "a rejected chunk must not count");
    assert_eq!(acc.finish(), Err(WarpError::Empty));

    // Zero references: accepted, no change.
    acc.add_slices(0, &[], &[], &[], &[], &[]).unwrap();
    assert_eq!(acc.count(), 0);
    acc.add_slices(2, &f, &w, &h1, &h2, &im).unwrap();
    assert_outputs_same(
        "flat",
        &acc.finish().unwrap(),
        &warp_accumulate(&refs.chunk(0, 2), 1).unwrap(),
    );
}
