//! The warp family's GPU check: one frame's warp-and-accumulate (N = 25 references in the
//! renderer's chunks) on the device against the host build, timed whole and per kernel.

use cudarc::driver::CudaSlice;

use super::{
    DeviceWarpAccumulator, DeviceWarpChunk, FINISH_TOTAL, OUT_H1_LEN, OUT_H2_LEN, OUT_REF_LEN,
    PER_FLOW, PER_H1, PER_H2, PER_REF, PER_WEIGHT, PLANE, input, zero,
};
use crate::kernels::GpuKernels;
use crate::kernels::check::{self, CheckRng, REFERENCES, StepCheck};
use crate::kernels::device::GpuError;
use crate::kernels::host::warp::HostWarpAccumulator;
use crate::runtime::renderer::DEFAULT_CHUNK;

/// The check's inputs for `n` references, flat contiguous NCHW.
struct Case {
    flow: Vec<f32>,
    weight: Vec<f32>,
    h1: Vec<f32>,
    h2: Vec<f32>,
    ref_img: Vec<f32>,
}

/// Flows of a few pixels' motion (a per-reference shift plus per-pixel jitter), with exact zeros
/// (at the borders they hit the sampler's `lo == -1` / `lo == last` edge cases), some pixels far
/// outside the image (all-padding taps), a few huge or non-finite values (the zero-tap path), and
/// reference 7 entirely outside (it adds only to Σ w).
fn case(n: usize, seed: u64) -> Case {
    let mut rng = CheckRng::new(seed);
    let mut flow = Vec::with_capacity(n * PER_FLOW);
    for r in 0..n {
        let shift = [rng.range(-4.0, 4.0), rng.range(-4.0, 4.0)];
        // One (x, y) pair per pixel; the x plane then the y plane go out as NCHW channels 0, 1.
        let (mut xs, mut ys) = (Vec::with_capacity(PLANE), Vec::with_capacity(PLANE));
        for _ in 0..PLANE {
            let u = rng.unit();
            let v = if r == 7 || u < 0.04 {
                let side = |rng: &mut CheckRng| if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                [
                    side(&mut rng) * rng.range(140.0, 400.0),
                    side(&mut rng) * rng.range(140.0, 400.0),
                ]
            } else if u < 0.12 {
                [0.0, 0.0]
            } else if u < 0.1215 {
                [1e30, -1e30]
            } else if u < 0.1225 {
                [f32::INFINITY, 0.5]
            } else if u < 0.123 {
                [f32::NAN, 1.0]
            } else {
                [
                    shift[0] + rng.range(-1.5, 1.5),
                    shift[1] + rng.range(-1.5, 1.5),
                ]
            };
            xs.push(v[0]);
            ys.push(v[1]);
        }
        flow.extend_from_slice(&xs);
        flow.extend_from_slice(&ys);
    }
    let mut fill =
        |len: usize, lo: f32, hi: f32| (0..len).map(|_| rng.range(lo, hi)).collect::<Vec<f32>>();
    Case {
        flow,
        weight: fill(n * PER_WEIGHT, 0.0, 1.0),
        h1: fill(n * PER_H1, -1.0, 1.0),
        h2: fill(n * PER_H2, -1.0, 1.0),
        ref_img: fill(n * PER_REF, 0.0, 1.0),
    }
}

/// `[a, b)` reference ranges of at most `chunk` covering `0..n`, as the renderer feeds them.
fn chunk_ranges(n: usize, chunk: usize) -> Vec<(usize, usize)> {
    let chunk = chunk.max(1);
    (0..n)
        .step_by(chunk)
        .map(|a| (a, (a + chunk).min(n)))
        .collect()
}

/// Combines per-output comparisons (largest difference, differing count).
fn merge(parts: &[(f64, usize)]) -> (f64, usize) {
    parts
        .iter()
        .fold((0.0, 0), |(m, d), &(pm, pd)| (m.max(pm), d + pd))
}

/// Downloads the three outputs and compares each with the host's: h1, ref, h2.
fn compare_outputs(
    kernels: &GpuKernels,
    out: [&CudaSlice<f32>; 3],
    host: [&[f32]; 3],
) -> Result<[(f64, usize); 3], GpuError> {
    let mut res = [(0.0, 0); 3];
    for (i, (d, h)) in out.into_iter().zip(host).enumerate() {
        let got = kernels
            .stream()
            .clone_dtoh(d)
            .map_err(GpuError::cuda("downloading the warp output"))?;
        res[i] = check::compare_f32(&got, h);
    }
    Ok(res)
}

/// The warp GPU check: N = 25 references fed in the renderer's chunks of 5 against
/// [`HostWarpAccumulator`] on the same inputs (limit 1e-6; the maths is written to be bit-exact).
/// Rows: the whole frame (timed: reset + 5 × (accumulate 128 + 64) + finish, outputs compared
/// after the last timed run), then each path alone (timed: zeroing its own sums + its 5 launches;
/// `finish`: the one launch), whose outputs are compared after all the path timings, which leave
/// every sum complete again. Uploads and downloads are outside every timed region.
pub fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    let n = REFERENCES;
    let data = case(n, 0x5EED_3A12_0000_0025);
    let ranges = chunk_ranges(n, DEFAULT_CHUNK);

    let mut host = HostWarpAccumulator::new();
    for &(a, b) in &ranges {
        host.add_slices(
            b - a,
            &data.flow[a * PER_FLOW..b * PER_FLOW],
            &data.weight[a * PER_WEIGHT..b * PER_WEIGHT],
            &data.h1[a * PER_H1..b * PER_H1],
            &data.h2[a * PER_H2..b * PER_H2],
            &data.ref_img[a * PER_REF..b * PER_REF],
        )
        .map_err(input)?;
    }
    let want = host.finish().map_err(input)?;
    let (Some(want_h1), Some(want_ref), Some(want_h2)) = (
        want.h1_avg.as_slice(),
        want.ref_avg.as_slice(),
        want.h2_avg.as_slice(),
    ) else {
        return Err(GpuError::Input("host warp output is not contiguous".into()));
    };
    let want = [want_h1, want_ref, want_h2];

    let stream = kernels.stream();
    let up = |v: &[f32]| {
        stream
            .clone_htod(v)
            .map_err(GpuError::cuda("uploading the warp case"))
    };
    let (flow, weight, h1, h2, ref_img) = (
        up(&data.flow)?,
        up(&data.weight)?,
        up(&data.h1)?,
        up(&data.h2)?,
        up(&data.ref_img)?,
    );
    let chunks: Vec<(usize, DeviceWarpChunk<'_>)> = ranges
        .iter()
        .map(|&(a, b)| {
            let chunk = DeviceWarpChunk {
                flow: flow.slice(a * PER_FLOW..b * PER_FLOW),
                weight: weight.slice(a * PER_WEIGHT..b * PER_WEIGHT),
                h1: h1.slice(a * PER_H1..b * PER_H1),
                h2: h2.slice(a * PER_H2..b * PER_H2),
                ref_img: ref_img.slice(a * PER_REF..b * PER_REF),
            };
            (b - a, chunk)
        })
        .collect();
    let alloc = |len: usize| {
        stream
            .alloc_zeros::<f32>(len)
            .map_err(GpuError::cuda("allocating the warp outputs"))
    };
    let (mut out_h1, mut out_ref, mut out_h2) =
        (alloc(OUT_H1_LEN)?, alloc(OUT_REF_LEN)?, alloc(OUT_H2_LEN)?);
    let mut acc = DeviceWarpAccumulator::new(kernels)?;

    let frame_ms = check::median_gpu_ms(kernels, iterations, || {
        acc.reset(kernels)?;
        for (n, chunk) in &chunks {
            acc.add(kernels, *n, chunk)?;
        }
        acc.finish(
            kernels,
            &mut out_h1.as_view_mut(),
            &mut out_ref.as_view_mut(),
            &mut out_h2.as_view_mut(),
        )
    })?;
    let frame = compare_outputs(kernels, [&out_h1, &out_ref, &out_h2], want)?;
    stream
        .memset_zeros(&mut out_h1)
        .map_err(GpuError::cuda("clearing the warp outputs"))?;
    stream
        .memset_zeros(&mut out_ref)
        .map_err(GpuError::cuda("clearing the warp outputs"))?;
    stream
        .memset_zeros(&mut out_h2)
        .map_err(GpuError::cuda("clearing the warp outputs"))?;

    // The paths alone, on the same private entry points `add_raw` uses.
    let each_chunk = |acc: &mut DeviceWarpAccumulator, path_128: bool| -> Result<(), GpuError> {
        for (n, chunk) in &chunks {
            let (raw, _reads) = chunk.raw(stream);
            let n_c = raw.validate(*n)?;
            // SAFETY: live views of uploaded buffers, lengths validated for n_c just above.
            unsafe {
                if path_128 {
                    acc.enqueue_128(kernels, n_c, &raw)?;
                } else {
                    acc.enqueue_64(kernels, n_c, &raw)?;
                }
            }
        }
        Ok(())
    };
    let ms_128 = check::median_gpu_ms(kernels, iterations, || {
        zero(kernels, &mut acc.acc_h1)?;
        zero(kernels, &mut acc.acc_ref)?;
        zero(kernels, &mut acc.denom)?;
        each_chunk(&mut acc, true)
    })?;
    let ms_64 = check::median_gpu_ms(kernels, iterations, || {
        zero(kernels, &mut acc.acc_h2)?;
        each_chunk(&mut acc, false)
    })?;
    let finish_ms = check::median_gpu_ms(kernels, iterations, || {
        acc.finish(
            kernels,
            &mut out_h1.as_view_mut(),
            &mut out_ref.as_view_mut(),
            &mut out_h2.as_view_mut(),
        )
    })?;
    let paths = compare_outputs(kernels, [&out_h1, &out_ref, &out_h2], want)?;

    let chunk_count = ranges.len();
    let row = |step: String, parts: &[(f64, usize)], compared: usize, gpu_ms: f64| {
        let (max_abs_diff, differing) = merge(parts);
        StepCheck {
            family: "warp",
            step,
            max_abs_diff,
            differing,
            compared,
            limit: 1e-6,
            gpu_ms,
        }
    };
    Ok(vec![
        row(
            format!("frame: reset + {chunk_count} chunks × (128 + 64) + finish, N = {n}"),
            &frame,
            FINISH_TOTAL,
            frame_ms,
        ),
        row(
            format!("accumulate 128 (h1, ref, Σw) × {chunk_count}"),
            &paths[..2],
            OUT_H1_LEN + OUT_REF_LEN,
            ms_128,
        ),
        row(
            format!("accumulate 64 (h2) × {chunk_count}"),
            &paths[2..],
            OUT_H2_LEN,
            ms_64,
        ),
        row("finish".into(), &paths, FINISH_TOTAL, finish_ms),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_deterministic_and_realistic() {
        let a = case(8, 7);
        let b = case(8, 7);
        assert_eq!(a.flow.len(), 8 * PER_FLOW);
        assert_eq!(
            (a.weight.len(), a.h1.len(), a.h2.len(), a.ref_img.len()),
            (8 * PER_WEIGHT, 8 * PER_H1, 8 * PER_H2, 8 * PER_REF)
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.flow), bits(&b.flow));
        assert_eq!(bits(&a.h2), bits(&b.h2));
        assert!(a.weight.iter().all(|&w| w > 0.0 && w < 1.0));
        // Reference 0: mostly small motions, some far outside, some exact zeros and non-finite.
        let r0 = &a.flow[..PER_FLOW];
        let small = r0.iter().filter(|v| v.abs() <= 6.0).count();
        assert!(small > PER_FLOW * 8 / 10, "{small}");
        assert!(r0.iter().any(|v| v.abs() >= 140.0 && v.is_finite()));
        assert!(r0.iter().any(|v| !v.is_finite()));
        // Reference 7 moves everything out of the image.
        assert!(
            a.flow[7 * PER_FLOW..8 * PER_FLOW]
                .iter()
                .all(|v| v.abs() >= 140.0)
        );
    }

    #[test]
    fn unit_stays_open() {
        let mut r = CheckRng::new(0);
        assert!((0..100_000).map(|_| r.unit()).all(|u| u > 0.0 && u < 1.0));
        assert_eq!(
            ((((1u64 << 23) - 1) as f32 + 0.5) / (1u32 << 23) as f32).to_bits(),
            (1.0f32 - f32::EPSILON / 2.0).to_bits()
        );
        assert_eq!(chunk_ranges(REFERENCES, DEFAULT_CHUNK).len(), 5);
        assert_eq!(chunk_ranges(7, 3), vec![(0, 3), (3, 6), (6, 7)]);
    }
}
