//! The kernels on a GPU against their host build (the GPU check's kernel step): each family runs
//! one frame-sized case on the device and through the host build on the same inputs, compares
//! (exact for the integer paths, 1e-6 for the float warp) and times the device launches with
//! CUDA events. Cases are the issue's: a 1920 × 1080 frame, a 577 × 455 face, N = 25 references.

use cudarc::driver::sys::CUevent_flags;

use super::GpuKernels;
use super::device::GpuError;

/// The frame of the timed case.
pub const FRAME: (usize, usize) = (1920, 1080);
/// The face crop of the timed case.
pub const FACE: (usize, usize) = (577, 455);
/// References of the timed case.
pub const REFERENCES: usize = 25;

/// One step's result.
#[derive(Clone, Debug, PartialEq)]
pub struct StepCheck {
    /// Kernel family.
    pub family: &'static str,
    /// What ran (e.g. `crop I420`), for the table.
    pub step: String,
    /// Largest |device − host| over the outputs (0 for bit-exact).
    pub max_abs_diff: f64,
    /// Outputs that differ at all.
    pub differing: usize,
    /// Outputs compared.
    pub compared: usize,
    /// What passes: 0 (exact) or the float tolerance.
    pub limit: f64,
    /// Median device time of the step's launches, milliseconds (CUDA events).
    pub gpu_ms: f64,
}

impl StepCheck {
    pub fn passed(&self) -> bool {
        self.max_abs_diff <= self.limit
    }
}

/// The checks' one pseudo-random generator (splitmix64, Steele et al.): the generated frames,
/// faces and flows must be the same on every run and machine, so a device/host mismatch can be
/// reproduced, and `rand` is only a dev-dependency. Not for anything but test data.
#[derive(Clone, Debug)]
pub struct CheckRng(u64);

impl CheckRng {
    /// Any seed works, zero included; nearby seeds give unrelated streams.
    pub fn new(seed: u64) -> Self {
        CheckRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1): 23 bits plus a half step, all exact in f32, so neither
    /// 0 nor 1 can come out (e.g. for weights that are sigmoids).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 41) as f32 + 0.5) / (1u32 << 23) as f32
    }

    /// Uniform in the open interval (`lo`, `hi`) (up to f32 rounding).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n` (`n > 0`; the bias of the multiply-shift is below 2^-32 for the small
    /// `n` of the checks).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Fills `out` with random bytes, eight per step.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Compares two byte outputs exactly.
pub fn compare_u8(device: &[u8], host: &[u8]) -> (f64, usize) {
    let differing =
        device.iter().zip(host).filter(|(a, b)| a != b).count() + device.len().abs_diff(host.len());
    let max = device
        .iter()
        .zip(host)
        .map(|(&a, &b)| (a as i32 - b as i32).unsigned_abs())
        .max()
        .unwrap_or(0);
    (max as f64, differing)
}

/// Compares two float outputs (NaN on either side counts as an infinite difference).
pub fn compare_f32(device: &[f32], host: &[f32]) -> (f64, usize) {
    let mut max = if device.len() == host.len() {
        0.0f64
    } else {
        f64::INFINITY
    };
    let mut differing = device.len().abs_diff(host.len());
    for (&a, &b) in device.iter().zip(host) {
        if a.to_bits() != b.to_bits() {
            differing += 1;
            let d = (a as f64 - b as f64).abs();
            max = max.max(if d.is_nan() { f64::INFINITY } else { d });
        }
    }
    (max, differing)
}

/// Runs `launch` (which only enqueues work on the kernels' stream) once to warm up, then
/// `iterations` times between CUDA events; the median in milliseconds.
pub fn median_gpu_ms(
    kernels: &GpuKernels,
    iterations: usize,
    mut launch: impl FnMut() -> Result<(), GpuError>,
) -> Result<f64, GpuError> {
    let stream = kernels.stream();
    launch()?;
    stream.synchronize().map_err(GpuError::cuda("warm-up"))?;
    let mut times = Vec::with_capacity(iterations.max(1));
    for _ in 0..iterations.max(1) {
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(GpuError::cuda("event"))?;
        launch()?;
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(GpuError::cuda("event"))?;
        times.push(
            start
                .elapsed_ms(&end)
                .map_err(GpuError::cuda("event timing"))? as f64,
        );
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_count_every_difference() {
        assert_eq!(compare_u8(&[1, 2, 3], &[1, 2, 3]), (0.0, 0));
        assert_eq!(compare_u8(&[1, 9, 3], &[1, 2, 3]), (7.0, 1));
        assert_eq!(compare_u8(&[1, 2], &[1, 2, 3]), (0.0, 1));
        assert_eq!(compare_f32(&[0.5, 1.0], &[0.5, 1.0]), (0.0, 0));
        let (max, n) = compare_f32(&[0.5, 1.0 + 1e-6], &[0.5, 1.0]);
        assert!(n == 1 && max > 9e-7 && max < 2e-6, "{max}");
        assert_eq!(compare_f32(&[f32::NAN], &[0.0]), (f64::INFINITY, 1));
        // -0.0 and 0.0 differ in bits: a kernel must not change signs of zero either.
        assert_eq!(compare_f32(&[-0.0], &[0.0]).1, 1);
    }

    #[test]
    fn check_rng_is_reproducible_and_in_range() {
        // The reference splitmix64 stream from seed 0.
        let mut r = CheckRng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let (mut a, mut b) = (vec![0u8; 21], vec![0u8; 21]);
        CheckRng::new(7).fill_bytes(&mut a);
        CheckRng::new(7).fill_bytes(&mut b);
        assert_eq!(a, b);
        CheckRng::new(8).fill_bytes(&mut b);
        assert_ne!(a, b);
        let mut r = CheckRng::new(1);
        assert!((0..100_000).map(|_| r.unit()).all(|u| u > 0.0 && u < 1.0));
        // The largest `unit` is the f32 just below 1.
        assert_eq!(
            ((((1u64 << 23) - 1) as f32 + 0.5) / (1u32 << 23) as f32).to_bits(),
            (1.0f32 - f32::EPSILON / 2.0).to_bits()
        );
        let mut seen = [false; 13];
        for _ in 0..10_000 {
            seen[r.below(13) as usize] = true;
            let x = r.range(-4.0, 4.0);
            assert!((-4.0..4.0).contains(&x));
        }
        assert!(seen.iter().all(|&s| s));
    }
}
