//! A validated checkpoint as the graph emitter's weight source: the glue between reading
//! (`checkpoint`) and emitting (`graph`), so neither module knows the other's types.

use std::borrow::Cow;

use super::ValidatedStateDict;
use crate::graph::GraphError;
use crate::graph::weights::WeightSource;

impl WeightSource for ValidatedStateDict {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Cow<'_, [f32]>, GraphError> {
        // The error text appends this directly after "not found".
        let context = || {
            self.source()
                .map(|s| format!(" in {}", s.path.display()))
                .unwrap_or_default()
        };
        let t = self.get(name).ok_or_else(|| GraphError::MissingWeight {
            key: name.to_owned(),
            context: context(),
        })?;
        if t.shape() != shape {
            return Err(GraphError::WeightShape {
                key: name.to_owned(),
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        let data = t.as_f32().ok_or_else(|| GraphError::WeightDtype {
            key: name.to_owned(),
            found: t.dtype().name().to_owned(),
        })?;
        Ok(Cow::Borrowed(data))
    }

    fn keys(&self) -> Option<Vec<String>> {
        Some(self.iter().map(|(k, _)| k.to_owned()).collect())
    }
}
