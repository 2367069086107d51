//! Where graph weights come from: the [`WeightSource`] trait and the [`Weights`] key-prefix view
//! (the role candle's `VarBuilder` plays, STYLE B3).
//!
//! Keys are PyTorch `state_dict` keys **without** the DataParallel `module.` prefix (spec §5.3),
//! e.g. `mel_encoder.0.conv_block.0.weight`. Every lookup names the shape the graph expects; a
//! source fails with an error naming the key and both shapes when they differ.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;

use super::GraphError;

/// A provider of float32 tensors by `state_dict` key.
///
/// Implemented by the formula weights ([`crate::weights::FormulaWeights`]) and by the checkpoint
/// reader. Implementations must check `shape` and return
/// [`GraphError::WeightShape`] / [`GraphError::MissingWeight`] rather than guess.
pub trait WeightSource {
    /// The tensor called `name` (no `module.` prefix), row-major, which must have exactly `shape`
    /// (`[]` for a scalar).
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError>;

    /// Every key the source holds, when it knows them (used to report unused keys); `None` for
    /// sources that can produce any key (formulas).
    fn keys(&self) -> Option<Vec<String>> {
        None
    }
}

/// A view of a [`WeightSource`] under a key prefix.
///
/// `Weights::new(&src).pp("mel_encoder").pp("0")` reads `mel_encoder.0.<name>`.
#[derive(Clone)]
pub struct Weights<'a> {
    src: &'a dyn WeightSource,
    prefix: String,
}

impl<'a> Weights<'a> {
    /// A view at the root of `src`.
    pub fn new(src: &'a dyn WeightSource) -> Self {
        Weights {
            src,
            prefix: String::new(),
        }
    }

    /// The same source one level deeper: keys become `<prefix>.<part>.<name>`.
    pub fn pp(&self, part: impl AsRef<str>) -> Weights<'a> {
        Weights {
            src: self.src,
            prefix: self.key(part.as_ref()),
        }
    }

    /// The full key of `name` under this prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Reads `<prefix>.<name>` with the expected shape, as an owned vector.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, GraphError> {
        let key = self.key(name);
        let t = self.src.tensor(&key, shape)?;
        let numel: usize = shape.iter().product();
        if t.len() != numel {
            return Err(GraphError::WeightShape {
                key,
                expected: shape.to_vec(),
                found: vec![t.len()],
            });
        }
        Ok(t.into_owned())
    }

    /// The underlying source.
    pub fn source(&self) -> &'a dyn WeightSource {
        self.src
    }
}

/// Keys of `src` that are not in `used` (see [`RecordingSource`]); empty when
/// the source does not list its keys. Keys ending in `num_batches_tracked` are ignored (unused
/// in eval mode by design).
pub fn unused_keys(src: &dyn WeightSource, used: &BTreeSet<String>) -> Vec<String> {
    src.keys()
        .unwrap_or_default()
        .into_iter()
        .filter(|k| !used.contains(k) && !k.ends_with("num_batches_tracked"))
        .collect()
}

/// A [`WeightSource`] wrapper that records every key read, so that keys nobody used can be
/// reported after all graphs of a network are built ([`RecordingSource::unused`]).
pub struct RecordingSource<'a> {
    inner: &'a dyn WeightSource,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> RecordingSource<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn WeightSource) -> Self {
        RecordingSource {
            inner,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Keys read so far.
    pub fn used(&self) -> BTreeSet<String> {
        self.used.borrow().clone()
    }

    /// Keys of the inner source never read (see [`unused_keys`]).
    pub fn unused(&self) -> Vec<String> {
        unused_keys(self.inner, &self.used.borrow())
    }
}

impl WeightSource for RecordingSource<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError> {
        let t = self.inner.tensor(name, shape)?;
        self.used.borrow_mut().insert(name.to_owned());
        Ok(t)
    }

    fn keys(&self) -> Option<Vec<String>> {
        self.inner.keys()
    }
}

/// A [`WeightSource`] whose every tensor is rounded to IEEE half precision (and widened back):
/// the weights an fp16 GPU graph or TensorRT's fp16 mode computes with. Used to measure what
/// half-precision weights cost on the CPU, without a GPU.
pub struct HalfRounded<'a>(pub &'a dyn WeightSource);

impl WeightSource for HalfRounded<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError> {
        let t = self.0.tensor(name, shape)?;
        Ok(Cow::Owned(
            t.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        ))
    }

    fn keys(&self) -> Option<Vec<String>> {
        self.0.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-tensor source that checks shapes the way a checkpoint does.
    struct MapSource(Vec<(&'static str, Vec<usize>, Vec<f32>)>);

    impl WeightSource for MapSource {
        fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError> {
            let (_, s, v) = self.0.iter().find(|(k, _, _)| *k == name).ok_or_else(|| {
                GraphError::MissingWeight {
                    key: name.to_owned(),
                    context: " in the test map".into(),
                }
            })?;
            if s != shape {
                return Err(GraphError::WeightShape {
                    key: name.to_owned(),
                    expected: shape.to_vec(),
                    found: s.clone(),
                });
            }
            Ok(Cow::Borrowed(v))
        }

        fn keys(&self) -> Option<Vec<String>> {
            Some(self.0.iter().map(|(k, _, _)| (*k).to_owned()).collect())
        }
    }

    #[test]
    fn prefixes_shapes_and_unused_keys() {
        let src = MapSource(vec![
            ("a.conv.weight", vec![2, 1], vec![1.0, 2.0]),
            ("a.conv.bias", vec![2], vec![0.5, 0.25]),
            ("a.bn.num_batches_tracked", vec![], vec![0.0]),
        ]);
        let rec = RecordingSource::new(&src);
        let w = Weights::new(&rec).pp("a").pp("conv");
        assert_eq!(w.key("weight"), "a.conv.weight");
        assert_eq!(w.get("weight", &[2, 1]).unwrap(), vec![1.0, 2.0]);
        let e = w.get("bias", &[3]).unwrap_err().to_string();
        assert!(
            e.contains("a.conv.bias") && e.contains("[3]") && e.contains("[2]"),
            "{e}"
        );
        let e = w.get("gamma", &[2]).unwrap_err().to_string();
        assert!(e.contains("a.conv.gamma"), "{e}");
        assert_eq!(rec.unused(), vec!["a.conv.bias".to_owned()]);
    }
}
