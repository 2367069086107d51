//! Which image references of a bank the renderer uses, and their packing into the renderer's
//! `ref_imgs` / `ref_img_sketches` tensors (spec §1.5 steps 7-8).
//!
//! The landmark side plans shared packing helpers on [`ReferenceBank`]; until they exist this file
//! packs privately, with the same image-module primitives (`bgr_to_chw`, `SketchRasteriser`) that
//! are tested against the crop and sketch goldens.

use crate::sizes::FACE_SIZE;
use ndarray::{Array4, s};

use super::ComposeError;
use crate::engine::bank::{IMAGE_REFERENCES, ReferenceBank};
use crate::image::{ChannelOrder, ImageRef, SketchRasteriser, SketchScaling, bgr_to_chw};

/// Indices into `bank.images` of the `n` references the renderer uses when the bank holds
/// `available` of them.
///
/// The bank's images are in selection order, i.e. by increasing lip openness (spec §1.5 step 3).
/// Taking simply the first `n` would give the renderer only closed mouths; instead the subset is
/// spread evenly over the bank, `i ↦ floor(i · (available − 1) / (n − 1))` for `i = 0..n` (`[0]`
/// for `n = 1`), which mirrors what the official `ref_img_N = n` does over the whole video (a
/// linspace over the openness ranking, from the most closed to the most open mouth). For
/// `n == available` (the official 25 of 25) it is the identity. The indices are strictly increasing
/// because `available ≥ n`.
pub fn reference_subset(available: usize, n: usize) -> Result<Vec<usize>, ComposeError> {
    if n == 0 || n > IMAGE_REFERENCES {
        return Err(ComposeError::BadReferenceCount(n));
    }
    if available < n {
        return Err(ComposeError::TooFewReferences {
            requested: n,
            available,
        });
    }
    if n == 1 {
        return Ok(vec![0]);
    }
    Ok((0..n).map(|i| i * (available - 1) / (n - 1)).collect())
}

/// `ref_imgs` and `ref_img_sketches`, both `(n, 3, 128, 128)`, of the bank images at `indices`:
/// the stored 128 × 128 BGR crop as CHW `f32(v / 255.0)` (step 7) and the full 131-point sketch on
/// the reference's own crop canvas with the reference scaling (step 8).
pub(super) fn pack_references(
    bank: &ReferenceBank,
    indices: &[usize],
    rasteriser: &mut SketchRasteriser,
) -> Result<(Array4<f32>, Array4<f32>), ComposeError> {
    let n = indices.len();
    let mut imgs = Array4::<f32>::zeros((n, 3, FACE_SIZE, FACE_SIZE));
    let mut sketches = Array4::<f32>::zeros((n, 3, FACE_SIZE, FACE_SIZE));
    for (k, &i) in indices.iter().enumerate() {
        let reference = bank.images.get(i).ok_or(ComposeError::TooFewReferences {
            requested: i + 1,
            available: bank.images.len(),
        })?;
        let bad = |source| ComposeError::BadReference { index: i, source };
        let crop = ImageRef::packed(&reference.crop_bgr, FACE_SIZE, FACE_SIZE, ChannelOrder::Bgr)
            .map_err(bad)?;
        let mut img = imgs.slice_mut(s![k, .., .., ..]);
        let out = img.as_slice_mut().expect("a fresh standard-layout array");
        bgr_to_chw(&crop, out).map_err(bad)?;
        let (h, w) = reference.crop_hw;
        let mut sketch = sketches.slice_mut(s![k, .., .., ..]);
        let out = sketch
            .as_slice_mut()
            .expect("a fresh standard-layout array");
        rasteriser
            .render(&reference.landmarks, w, h, SketchScaling::Reference, out)
            .map_err(bad)?;
    }
    Ok((imgs, sketches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_spread_over_the_bank() {
        assert_eq!(
            reference_subset(25, 25).unwrap(),
            (0..25).collect::<Vec<_>>()
        );
        assert_eq!(reference_subset(25, 5).unwrap(), vec![0, 6, 12, 18, 24]);
        assert_eq!(reference_subset(25, 3).unwrap(), vec![0, 12, 24]);
        assert_eq!(reference_subset(25, 1).unwrap(), vec![0]);
        assert_eq!(reference_subset(7, 7).unwrap(), (0..7).collect::<Vec<_>>());
        for avail in 1..=25 {
            for n in 1..=avail {
                let s = reference_subset(avail, n).unwrap();
                assert!(s.windows(2).all(|p| p[0] < p[1]) && *s.last().unwrap() < avail);
            }
        }
        assert!(matches!(
            reference_subset(4, 5),
            Err(ComposeError::TooFewReferences {
                requested: 5,
                available: 4
            })
        ));
        assert!(reference_subset(25, 0).is_err());
        assert!(reference_subset(30, 26).is_err());
    }
}
