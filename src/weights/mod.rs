//! Weight sources other than checkpoints: the reference formula weights of spec `iplap-ref-v1`
//! and the matching golden inputs (`shared/docs/reference-weights.md`).

pub mod formula;

pub use formula::FormulaWeights;
