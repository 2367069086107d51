//! Reference selection by lip openness (spec §1.5 steps 1-4).
//!
//! The official script sorts the template frames by lip openness (stable, ascending) and picks the
//! ranks `trunc(torch.linspace(0, V - 1, steps))` for `steps` = 15 landmark references and 25 image
//! references. `torch.linspace` runs in float32, and its rounding decides the rank in a few cases
//! (e.g. V = 115, steps = 15, k = 7 gives 56.999996, rank 56 not 57), so it is reproduced here in
//! float32, not computed with exact rationals.

use super::bank::{IMAGE_REFERENCES, LANDMARK_REFERENCES};

/// How the second half of `torch.linspace` rounds `end - step * (steps - 1 - k)` (spec §1.5 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinspaceRounding {
    /// One rounding (fused multiply-add): what the current torch 2.x CPU build does. Default.
    #[default]
    Fused,
    /// The product rounded to f32, then the difference rounded again. A torch 1.10 build whose CPU
    /// kernel was compiled without FMA contraction behaves like this; the two differ only when
    /// `V - 1` is a power of two (V = 3, 5, 9, 17, ...), so it is kept to document the alternative.
    Separate,
}

/// `torch.linspace(0, end, steps)` in float32 on CPU (spec §1.5 step 4):
/// `step = f32(end / (steps - 1))`; for `k < steps / 2` the value is `f32(step * k)`, otherwise
/// `end - step * (steps - 1 - k)` rounded as `rounding` says. `steps == 1` gives `[0]` and
/// `steps == 0` gives `[]`, as torch does.
pub fn linspace_f32(end: f32, steps: usize, rounding: LinspaceRounding) -> Vec<f32> {
    match steps {
        0 => return Vec::new(),
        1 => return vec![0.0],
        _ => {}
    }
    // Division of two f32 values is correctly rounded, so this is f32 of the exact quotient for
    // every `end` below 2^24 (V - 1 is an integer, exact in f32).
    let step = end / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|k| {
            if k < half {
                step * k as f32
            } else {
                let n = (steps - 1 - k) as f32;
                match rounding {
                    LinspaceRounding::Fused => (-step).mul_add(n, end),
                    LinspaceRounding::Separate => end - step * n,
                }
            }
        })
        .collect()
}

/// Frame indices sorted by lip openness ascending with a stable sort (ties keep temporal order,
/// spec §1.5 step 1). NaN (which a valid face never gives) sorts last, so the order is total.
pub fn order_by_lip_openness(lip_dists: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lip_dists.len()).collect();
    // `sort_by` is stable; `total_cmp` orders -0 before +0 and puts NaN last, never panics.
    order.sort_by(|&a, &b| lip_dists[a].total_cmp(&lip_dists[b]));
    order
}

/// Ranks `trunc(linspace_f32(0, V - 1, steps)[k])` into an `order` of `V` frames (spec §1.5 steps
/// 2-3): the selected frame indices, in selection order. Empty when `order` is empty.
pub fn pick(order: &[usize], steps: usize, rounding: LinspaceRounding) -> Vec<usize> {
    let Some(last) = order.len().checked_sub(1) else {
        return Vec::new();
    };
    linspace_f32(last as f32, steps, rounding)
        .into_iter()
        // `as usize` truncates toward zero (values are >= 0); the `min` only guards the rank
        // against a float above V - 1, which the formula cannot produce.
        .map(|v| order[(v as usize).min(last)])
        .collect()
}

/// The frames chosen as references: `landmark` (15, the `r_k`) and `image` (25, the `q_k`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub landmark: Vec<usize>,
    pub image: Vec<usize>,
}

/// The official selection over `lip_dists` (one per frame, frame order): 15 landmark and 25 image
/// references with torch's current (fused) rounding. Both lists are empty when there are no frames;
/// frames repeat when there are fewer frames than references, as in the official script.
pub fn select_references(lip_dists: &[f64]) -> Selection {
    select_references_with(lip_dists, LinspaceRounding::Fused)
}

/// [`select_references`] with an explicit linspace rounding.
pub fn select_references_with(lip_dists: &[f64], rounding: LinspaceRounding) -> Selection {
    let order = order_by_lip_openness(lip_dists);
    Selection {
        landmark: pick(&order, LANDMARK_REFERENCES, rounding),
        image: pick(&order, IMAGE_REFERENCES, rounding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(v: usize, steps: usize, r: LinspaceRounding) -> Vec<usize> {
        let order: Vec<usize> = (0..v).collect();
        pick(&order, steps, r)
    }

    #[test]
    fn spec_example_v115_k7_is_rank_56() {
        let vals = linspace_f32(114.0, 15, LinspaceRounding::Fused);
        assert_eq!(vals[7], 56.999996);
        assert_eq!(ranks(115, 15, LinspaceRounding::Fused)[7], 56);
        assert_eq!(ranks(115, 15, LinspaceRounding::Separate)[7], 56);
        // The exact rational would be 57.
        assert_eq!(114 * 7 / 14, 57);
    }

    #[test]
    fn fused_and_separate_differ_only_for_powers_of_two() {
        let mut differ = Vec::new();
        let mut fused_below = 0;
        let mut separate_below = 0;
        for v in 2..=3000usize {
            for steps in [15, 25] {
                let f = ranks(v, steps, LinspaceRounding::Fused);
                let s = ranks(v, steps, LinspaceRounding::Separate);
                if f != s {
                    differ.push(v);
                }
                for (k, (&a, &b)) in f.iter().zip(&s).enumerate() {
                    let exact = (v - 1) * k / (steps - 1);
                    // Rounding only ever lands one below the rational floor, never above.
                    assert!(a == exact || a + 1 == exact, "v {v} steps {steps} k {k}");
                    assert!(b == exact || b + 1 == exact, "v {v} steps {steps} k {k}");
                    if steps == 25 {
                        assert_eq!(a, exact, "25 steps never drop below (spec §1.5)");
                    }
                    fused_below += usize::from(a != exact);
                    separate_below += usize::from(b != exact);
                }
            }
        }
        assert!(
            differ.iter().all(|&v| (v - 1).is_power_of_two()),
            "{differ:?}"
        );
        // Spec §1.5 step 4: 45 values of V with FMA, 34 with separate roundings (all at k = 7).
        assert_eq!((fused_below, separate_below), (45, 34));
        // The first FMA cases named by the spec.
        for v in [3, 5, 9, 17, 33, 65, 115, 129, 229, 243, 257] {
            assert_eq!(
                ranks(v, 15, LinspaceRounding::Fused)[7],
                (v - 1) / 2 - 1,
                "v {v}"
            );
        }
    }

    #[test]
    fn small_and_degenerate_inputs() {
        assert!(select_references(&[]).landmark.is_empty());
        let one = select_references(&[0.3]);
        assert_eq!(one.landmark, vec![0; 15]);
        assert_eq!(one.image, vec![0; 25]);
        assert_eq!(linspace_f32(4.0, 1, LinspaceRounding::Fused), vec![0.0]);
        // Stable: equal distances keep temporal order; NaN sorts last.
        assert_eq!(
            order_by_lip_openness(&[0.2, 0.1, f64::NAN, 0.1]),
            vec![1, 3, 0, 2]
        );
    }
}
