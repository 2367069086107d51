//! Warp-and-accumulate over the reference bank (spec §5.2, DenseFlowNetwork, last rows; §8.2.1-2).
//!
//! For every reference `r` the flow head predicts a flow `flow_r` (2 × 128 × 128, pixels; channel 0 = x,
//! channel 1 = y) and a sigmoid weight map `w_r` (1 × 128 × 128). This module turns them into the three
//! weighted averages the translation network consumes:
//!
//! * `h1_avg`  (32 × 128 × 128) = Σ_r warp(h1_r, def_r) · w_r / D
//! * `h2_avg`  (256 × 64 × 64)  = Σ_r warp(h2_r, ↓bilinear(def_r)) · ↓nearest(w_r) / ↓nearest(D)
//! * `ref_avg` (3 × 128 × 128)  = Σ_r warp(ref_r, def_r) · w_r / D
//!
//! with `D = Σ_r w_r + 1e-5` (one epsilon, added after the sum). The official implementation is
//! `IP_LAP/models/video_renderer.py` (`convert_flow_to_deformation`, `warping`, `DenseFlowNetwork.forward`);
//! this is an independent implementation of the behaviour written down in the spec:
//!
//! * `convert_flow_to_deformation`: corner-aligned base grid `g[j] = 2 (j / (W - 1)) - 1`, deformation
//!   `g + 2 (flow / (W - 1))`.
//! * `F.grid_sample` with the torch defaults: bilinear, zero padding, **align_corners = False**, i.e.
//!   `ix = ((gx + 1) W - 1) / 2`. Combined with the corner-aligned grid this magnifies by 128/127 and
//!   gives the border half weight; the trained flow compensates, so it is preserved (§8.2.1).
//! * For `h2` (64 × 64) the deformation is first reduced with `F.interpolate(mode='bilinear',
//!   align_corners=False)`, which for an exact 2× reduction is the mean of each 2 × 2 block, and the
//!   weights / denominator are reduced by nearest sampling (`x[2i, 2j]`) (§8.2.2).
//!
//! Speed: the sampling position, the in-bounds-corrected base index and the four bilinear weights
//! (already multiplied by `w_r`) are computed once per reference and output pixel and reused for every
//! channel; the channels are split over a few scoped threads. The accumulator also lets the caller feed
//! the references in chunks (to bound the memory of the flow head), with results identical to one call.

use crate::sizes::{FACE_SIZE, HALF_SIZE};
use ndarray::{Array4, ArrayView4, Axis};

/// Channels of `h1` (flow_module.conv1).
pub const H1_CHANNELS: usize = 32;
/// Channels of `h2` (flow_module.conv2).
pub const H2_CHANNELS: usize = 256;
/// Channels of a reference image (BGR).
pub const IMG_CHANNELS: usize = 3;
/// Epsilon added once to the summed weights (the official `softmax_denominator + 0.00001`).
pub const DENOMINATOR_EPS: f32 = 1e-5;

/// Errors of the warp stage: only malformed inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WarpError {
    /// A tensor does not have the expected shape.
    #[error("warp input `{name}`: expected shape {expected:?}, got {got:?}")]
    Shape {
        name: &'static str,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// [`WarpAccumulator::finish`] was called before any reference was added.
    #[error("warp accumulator is empty: no reference was added")]
    Empty,
}

/// One chunk of references (any number `n ≥ 1`), NCHW float32 views.
#[derive(Debug, Clone, Copy)]
pub struct WarpChunk<'a> {
    /// `(n, 2, 128, 128)`: flow in pixels, channel 0 = x, channel 1 = y (flow_module.conv_4).
    pub flow: ArrayView4<'a, f32>,
    /// `(n, 1, 128, 128)`: sigmoid weights (flow_module.conv_5).
    pub weight: ArrayView4<'a, f32>,
    /// `(n, 32, 128, 128)`: reference features h1.
    pub h1: ArrayView4<'a, f32>,
    /// `(n, 256, 64, 64)`: reference features h2.
    pub h2: ArrayView4<'a, f32>,
    /// `(n, 3, 128, 128)`: reference images, BGR in [0, 1].
    pub ref_img: ArrayView4<'a, f32>,
}

impl WarpChunk<'_> {
    /// Checks the five shapes against the reference count `n` (the length of `flow`'s first axis)
    /// and returns `n`. The one statement of a chunk's shape contract, so the CPU accumulator and
    /// the host build of the GPU kernels refuse the same chunks with the same error.
    pub fn check_shapes(&self) -> Result<usize, WarpError> {
        let n = self.flow.len_of(Axis(0));
        check("flow", &self.flow, [n, 2, FACE_SIZE, FACE_SIZE])?;
        check("weight", &self.weight, [n, 1, FACE_SIZE, FACE_SIZE])?;
        check("h1", &self.h1, [n, H1_CHANNELS, FACE_SIZE, FACE_SIZE])?;
        check("h2", &self.h2, [n, H2_CHANNELS, HALF_SIZE, HALF_SIZE])?;
        check(
            "ref_img",
            &self.ref_img,
            [n, IMG_CHANNELS, FACE_SIZE, FACE_SIZE],
        )?;
        Ok(n)
    }
}

/// The three averages, each with batch 1 like the official tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct WarpOutput {
    /// `(1, 32, 128, 128)`.
    pub h1_avg: Array4<f32>,
    /// `(1, 256, 64, 64)`.
    pub h2_avg: Array4<f32>,
    /// `(1, 3, 128, 128)`: the official `wrapped_ref` / `ref_avg`.
    pub ref_avg: Array4<f32>,
}

/// Precomputed bilinear taps of one output pixel: the top-left source index (chosen so that the 2 × 2
/// neighbourhood is inside the image) and the four weights (zero for taps in the padding), each already
/// multiplied by the reference weight.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    base: u32,
    w: [f32; 4],
}

/// The running sums of warp-and-accumulate over the references added so far. One definition for
/// [`WarpAccumulator`] and the host build of the GPU kernels
/// (`kernels::host::warp::HostWarpAccumulator`), which add into the same four buffers: their
/// sizes are fixed here, and the host wrapper hands them to C loops that rely on exactly these
/// sizes, which is why the fields are private to the crate.
#[derive(Debug, Clone)]
pub(crate) struct WarpSums {
    pub(crate) count: usize,
    /// Σ w_r, 128 × 128.
    pub(crate) denom: Vec<f32>,
    /// Σ warp(h1_r) w_r, 32 × 128 × 128.
    pub(crate) acc_h1: Vec<f32>,
    /// Σ warp(h2_r) ↓w_r, 256 × 64 × 64.
    pub(crate) acc_h2: Vec<f32>,
    /// Σ warp(ref_r) w_r, 3 × 128 × 128.
    pub(crate) acc_ref: Vec<f32>,
}

impl WarpSums {
    /// Zeroed sums at their fixed sizes.
    pub(crate) fn new() -> Self {
        let plane = FACE_SIZE * FACE_SIZE;
        Self {
            count: 0,
            denom: vec![0.0; plane],
            acc_h1: vec![0.0; H1_CHANNELS * plane],
            acc_h2: vec![0.0; H2_CHANNELS * HALF_SIZE * HALF_SIZE],
            acc_ref: vec![0.0; IMG_CHANNELS * plane],
        }
    }

    /// Number of references added so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Zeroes the sums in place (keeps the allocations, and so the sizes).
    pub(crate) fn reset(&mut self) {
        self.count = 0;
        for buf in [
            &mut self.denom,
            &mut self.acc_h1,
            &mut self.acc_h2,
            &mut self.acc_ref,
        ] {
            buf.fill(0.0);
        }
    }
}

/// Sums warped references; feed chunks with [`add`](Self::add), then [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct WarpAccumulator {
    threads: usize,
    sums: WarpSums,
}

/// Which source a channel job reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    H1,
    H2,
    Ref,
}

impl WarpAccumulator {
    /// An empty accumulator that splits the channel loops over `threads` threads (at least 1).
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            sums: WarpSums::new(),
        }
    }

    /// Number of references added so far.
    pub fn count(&self) -> usize {
        self.sums.count()
    }

    /// Clears the sums (keeps the allocations) for the next frame.
    pub fn reset(&mut self) {
        self.sums.reset();
    }

    /// Adds a chunk of references (in order; the sums run over references like the original loop).
    pub fn add(&mut self, chunk: &WarpChunk<'_>) -> Result<(), WarpError> {
        let n = chunk.check_shapes()?;
        if n == 0 {
            return Ok(());
        }
        // Contiguous copies only when a caller hands in a strided view.
        let flow = chunk.flow.as_standard_layout();
        let weight = chunk.weight.as_standard_layout();
        let h1 = chunk.h1.as_standard_layout();
        let h2 = chunk.h2.as_standard_layout();
        let ref_img = chunk.ref_img.as_standard_layout();
        let (flow, weight) = (slice(&flow), slice(&weight));
        let (h1, h2, ref_img) = (slice(&h1), slice(&h2), slice(&ref_img));

        let plane = FACE_SIZE * FACE_SIZE;
        for r in 0..n {
            for (d, w) in self
                .sums
                .denom
                .iter_mut()
                .zip(&weight[r * plane..(r + 1) * plane])
            {
                *d += *w;
            }
        }

        // One job per output channel; contiguous runs of jobs go to each thread, balanced by cost.
        let plane2 = HALF_SIZE * HALF_SIZE;
        let mut jobs: Vec<(Source, usize, &mut [f32])> = Vec::new();
        jobs.extend(
            self.sums
                .acc_h1
                .chunks_mut(plane)
                .enumerate()
                .map(|(c, o)| (Source::H1, c, o)),
        );
        jobs.extend(
            self.sums
                .acc_ref
                .chunks_mut(plane)
                .enumerate()
                .map(|(c, o)| (Source::Ref, c, o)),
        );
        jobs.extend(
            self.sums
                .acc_h2
                .chunks_mut(plane2)
                .enumerate()
                .map(|(c, o)| (Source::H2, c, o)),
        );
        let total: usize = jobs.iter().map(|j| j.2.len()).sum();
        let per_thread = total.div_ceil(self.threads);

        let mut groups: Vec<Vec<(Source, usize, &mut [f32])>> = vec![Vec::new()];
        let mut filled = 0;
        for job in jobs {
            if filled >= per_thread {
                groups.push(Vec::new());
                filled = 0;
            }
            filled += job.2.len();
            if let Some(g) = groups.last_mut() {
                g.push(job);
            }
        }

        let run = |group: Vec<(Source, usize, &mut [f32])>| {
            let mut taps_full = vec![Tap::default(); plane];
            let mut taps_h2 = vec![Tap::default(); plane2];
            let needs_full = group.iter().any(|j| j.0 != Source::H2);
            let needs_h2 = group.iter().any(|j| j.0 == Source::H2);
            let mut group = group;
            for r in 0..n {
                let fl = &flow[r * 2 * plane..(r + 1) * 2 * plane];
                let wt = &weight[r * plane..(r + 1) * plane];
                if needs_full {
                    taps_full_res(fl, wt, &mut taps_full);
                }
                if needs_h2 {
                    taps_half_res(fl, wt, &mut taps_h2);
                }
                for (src, c, out) in group.iter_mut() {
                    let (taps, data, side, channels) = match src {
                        Source::H1 => (&taps_full, h1, FACE_SIZE, H1_CHANNELS),
                        Source::Ref => (&taps_full, ref_img, FACE_SIZE, IMG_CHANNELS),
                        Source::H2 => (&taps_h2, h2, HALF_SIZE, H2_CHANNELS),
                    };
                    let len = side * side;
                    let start = (r * channels + *c) * len;
                    accumulate(&data[start..start + len], side, taps, out);
                }
            }
        };

        if groups.len() == 1 {
            if let Some(g) = groups.pop() {
                run(g);
            }
        } else {
            std::thread::scope(|s| {
                let mut rest = groups.into_iter();
                let first = rest.next();
                for g in rest {
                    s.spawn(|| run(g));
                }
                if let Some(g) = first {
                    run(g);
                }
            });
        }
        self.sums.count += n;
        Ok(())
    }

    /// Divides the sums by the denominator (spec §5.2: `D + 1e-5`, nearest-reduced for h2).
    pub fn finish(&self) -> Result<WarpOutput, WarpError> {
        if self.sums.count == 0 {
            return Err(WarpError::Empty);
        }
        let denom: Vec<f32> = self
            .sums
            .denom
            .iter()
            .map(|d| d + DENOMINATOR_EPS)
            .collect();
        let denom_h2: Vec<f32> = (0..HALF_SIZE * HALF_SIZE)
            .map(|p| denom[(p / HALF_SIZE) * 2 * FACE_SIZE + (p % HALF_SIZE) * 2])
            .collect();
        // Each channel plane is divided element-wise by the (broadcast) denominator plane.
        let divide = |acc: &[f32], d: &[f32], channels: usize, side: usize| {
            let mut out = Array4::<f32>::zeros((1, channels, side, side));
            for ((o, a), b) in out.iter_mut().zip(acc).zip(d.iter().cycle()) {
                *o = a / b;
            }
            out
        };
        Ok(WarpOutput {
            h1_avg: divide(&self.sums.acc_h1, &denom, H1_CHANNELS, FACE_SIZE),
            h2_avg: divide(&self.sums.acc_h2, &denom_h2, H2_CHANNELS, HALF_SIZE),
            ref_avg: divide(&self.sums.acc_ref, &denom, IMG_CHANNELS, FACE_SIZE),
        })
    }
}

/// Warp-and-accumulate over all references in one call (see the module doc).
pub fn warp_accumulate(chunk: &WarpChunk<'_>, threads: usize) -> Result<WarpOutput, WarpError> {
    let mut acc = WarpAccumulator::new(threads);
    acc.add(chunk)?;
    acc.finish()
}

fn check(
    name: &'static str,
    a: &ArrayView4<'_, f32>,
    expected: [usize; 4],
) -> Result<(), WarpError> {
    if a.shape() == expected {
        Ok(())
    } else {
        Err(WarpError::Shape {
            name,
            expected: expected.to_vec(),
            got: a.shape().to_vec(),
        })
    }
}

fn slice<'b>(a: &'b ndarray::CowArray<'_, f32, ndarray::Ix4>) -> &'b [f32] {
    // `as_standard_layout` guarantees a contiguous row-major array.
    a.as_slice().unwrap_or(&[])
}

/// Corner-aligned base grid coordinate of index `i` on a side of `n` (spec §5.2), in float32 like torch.
#[inline]
fn base_grid(i: usize, n: usize) -> f32 {
    2.0 * (i as f32 / (n - 1) as f32) - 1.0
}

/// Deformation (normalised x, y) at full-resolution pixel (i, j) of one reference's flow.
#[inline]
fn deformation(flow: &[f32], i: usize, j: usize) -> (f32, f32) {
    let p = i * FACE_SIZE + j;
    let scale = (FACE_SIZE - 1) as f32;
    let gx = base_grid(j, FACE_SIZE) + 2.0 * (flow[p] / scale);
    let gy = base_grid(i, FACE_SIZE) + 2.0 * (flow[FACE_SIZE * FACE_SIZE + p] / scale);
    (gx, gy)
}

/// Taps for sampling a 128 × 128 source at the deformation of every output pixel, scaled by `w`.
fn taps_full_res(flow: &[f32], weight: &[f32], taps: &mut [Tap]) {
    for i in 0..FACE_SIZE {
        for j in 0..FACE_SIZE {
            let (gx, gy) = deformation(flow, i, j);
            let p = i * FACE_SIZE + j;
            taps[p] = tap(gx, gy, FACE_SIZE, weight[p]);
        }
    }
}

/// Taps for the 64 × 64 `h2` sources: deformation reduced bilinearly (align_corners = False, exact 2×:
/// the 2 × 2 mean, evaluated with torch's two-level lambda weighting), weight reduced by nearest.
fn taps_half_res(flow: &[f32], weight: &[f32], taps: &mut [Tap]) {
    for i in 0..HALF_SIZE {
        for j in 0..HALF_SIZE {
            let (y0, x0) = (2 * i, 2 * j);
            let a = deformation(flow, y0, x0);
            let b = deformation(flow, y0, x0 + 1);
            let c = deformation(flow, y0 + 1, x0);
            let d = deformation(flow, y0 + 1, x0 + 1);
            let mix = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (0.5 * a + 0.5 * b) + 0.5 * (0.5 * c + 0.5 * d)
            };
            let gx = mix(a.0, b.0, c.0, d.0);
            let gy = mix(a.1, b.1, c.1, d.1);
            taps[i * HALF_SIZE + j] = tap(gx, gy, HALF_SIZE, weight[y0 * FACE_SIZE + x0]);
        }
    }
}

/// Bilinear taps of `grid_sample(align_corners = False, padding_mode = 'zeros')` at normalised (gx, gy)
/// on an `n × n` source, each multiplied by `scale`. Out-of-image neighbours get weight 0, and the base
/// index is shifted so that all four taps address valid memory.
#[inline]
fn tap(gx: f32, gy: f32, n: usize, scale: f32) -> Tap {
    let size = n as f32;
    let ix = ((gx + 1.0) * size - 1.0) / 2.0;
    let iy = ((gy + 1.0) * size - 1.0) / 2.0;
    if !(ix.is_finite() && iy.is_finite()) {
        return Tap::default();
    }
    let (x0, y0) = (ix.floor(), iy.floor());
    // torch: nw = (x1 - ix)(y1 - iy), ne = (ix - x0)(y1 - iy), sw = (x1 - ix)(iy - y0), se = (ix - x0)(iy - y0)
    let (wx1, wy1) = (ix - x0, iy - y0);
    let (wx0, wy0) = ((x0 + 1.0) - ix, (y0 + 1.0) - iy);
    let (Some((bx, ax)), Some((by, ay))) = (axis_taps(x0, wx0, wx1, n), axis_taps(y0, wy0, wy1, n))
    else {
        return Tap::default();
    };
    Tap {
        base: (by * n + bx) as u32,
        w: [
            ay[0] * ax[0] * scale,
            ay[0] * ax[1] * scale,
            ay[1] * ax[0] * scale,
            ay[1] * ax[1] * scale,
        ],
    }
}

/// Along one axis: the first of two adjacent in-range indices and their weights, for neighbours
/// `lo = floor(pos)` (weight `w_lo`) and `lo + 1` (weight `w_hi`); `None` when both are outside.
#[inline]
fn axis_taps(lo: f32, w_lo: f32, w_hi: f32, n: usize) -> Option<(usize, [f32; 2])> {
    let last = (n - 1) as f32;
    if lo >= 0.0 && lo < last {
        Some((lo as usize, [w_lo, w_hi]))
    } else if lo == -1.0 {
        Some((0, [w_hi, 0.0]))
    } else if lo == last {
        Some((n - 2, [0.0, w_lo]))
    } else {
        None
    }
}

/// `out[p] += Σ_k taps[p].w[k] · src[taps[p].base + offset_k]` for one channel plane of side `side`.
#[inline]
fn accumulate(src: &[f32], side: usize, taps: &[Tap], out: &mut [f32]) {
    let max_base = (side * side).saturating_sub(side + 2);
    for (o, t) in out.iter_mut().zip(taps) {
        let b = (t.base as usize).min(max_base);
        // A window of exactly `side + 2` values holds all four taps, so the indexing below cannot fail
        // and the compiler drops the bounds checks.
        let Some(win) = src.get(b..b + side + 2) else {
            continue;
        };
        let top = t.w[0] * win[0] + t.w[1] * win[1];
        let bottom = t.w[2] * win[side] + t.w[3] * win[side + 1];
        *o += top + bottom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_flow_magnifies_about_the_centre() {
        // Corner-aligned grid + align_corners=False: pixel j samples at j·128/127 − 0.5 (spec §5.2).
        let t = tap(
            base_grid(0, FACE_SIZE),
            base_grid(0, FACE_SIZE),
            FACE_SIZE,
            1.0,
        );
        assert_eq!(t.base, 0);
        // ix = -0.5: half weight on pixel 0, half on the zero padding, in both axes.
        assert!((t.w[0] - 0.25).abs() < 1e-6, "{:?}", t.w);
        assert_eq!(&t.w[1..], &[0.0, 0.0, 0.0]);
        let t = tap(
            base_grid(127, FACE_SIZE),
            base_grid(127, FACE_SIZE),
            FACE_SIZE,
            1.0,
        );
        assert!((t.w[3] - 0.25).abs() < 1e-6, "{:?}", t.w);
    }

    #[test]
    fn far_outside_samples_zero() {
        let t = tap(3.0, 0.0, FACE_SIZE, 1.0);
        assert_eq!(t.w, [0.0; 4]);
        let t = tap(f32::NAN, 0.0, FACE_SIZE, 1.0);
        assert_eq!(t.w, [0.0; 4]);
    }

    #[test]
    fn rejects_bad_shapes_and_empty() {
        let a = Array4::<f32>::zeros((1, 2, 128, 127));
        let z = Array4::<f32>::zeros((1, 1, 1, 1));
        let chunk = WarpChunk {
            flow: a.view(),
            weight: z.view(),
            h1: z.view(),
            h2: z.view(),
            ref_img: z.view(),
        };
        assert!(matches!(
            warp_accumulate(&chunk, 1),
            Err(WarpError::Shape { name: "flow", .. })
        ));
        assert_eq!(WarpAccumulator::new(2).finish(), Err(WarpError::Empty));
    }
}
