//! Checking a [`StateDict`] against the architecture of one of the two IP_LAP networks (spec §6,
//! appendices A and B), in the spirit of candle's `VarBuilder` (STYLE B3): every expected key,
//! with its shape, and one error that lists *everything* wrong, because a wrong or truncated
//! checkpoint usually has many problems and fixing them one run at a time is miserable.
//!
//! The expected keys come from the reference manifests (`manifests/*.json`, copied from
//! `shared/docs/manifests/`), embedded as data. They are in `state_dict` order with the names the
//! current official code uses.
//!
//! Key normalisation, one rule per line (the only place names are rewritten):
//! * `module.` — `load_model` in `inference_single.py` removes the first occurrence of
//!   `"module."` from every key whose first six characters are `"module"` (DataParallel
//!   prefix, spec §5.3). We apply exactly that rule.
//! * `lip_landmark_map.*` → `mouse_keypoint_map.*`, `jaw_landmark_map.*` → `jaw_keypoint_map.*`
//!   (landmark generator only): the heads' earlier names, accepted so that checkpoints saved by
//!   older revisions of the code load (spec §5.3 notes the released file uses the new names).
//!
//! Also refused, in the same error: float tensors holding NaN or ±inf (a diverged or damaged
//! training run; converted, they would render garbage without a word). When most keys belong to
//! the *other* network, the error says so instead of listing them all ([`ValidationError::looks_like`]),
//! because a swapped pair of checkpoints is the likeliest cause.
//!
//! Tolerated without complaint:
//! * `perceptual.*` (renderer only): the 32 VGG19 tensors of the training-time perceptual loss
//!   (spec app. B, "VGG19 loss only"). Present or absent, they are dropped.
//! * `*.num_batches_tracked`: BatchNorm step counters, unused in eval mode (spec §6, "BN
//!   counter"); present or absent, they are dropped. One for a BatchNorm that the network does
//!   not have is still reported as unexpected.

use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

use super::tensor::{CheckpointSource, DType, StateDict, Tensor};

/// The two networks of IP_LAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// `Landmark_generator(T=5, d_model=512, nlayers=4, nhead=4, dim_feedforward=1024)`, spec §5.1,
    /// app. A (435 entries).
    LandmarkGenerator,
    /// `Renderer()`, spec §5.2, app. B (284 entries, 32 of them perceptual).
    Renderer,
}

impl Network {
    /// Human name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Network::LandmarkGenerator => "landmark generator",
            Network::Renderer => "renderer",
        }
    }

    /// The other network of IP_LAP (the one whose checkpoint is easily passed by mistake).
    pub fn other(self) -> Network {
        match self {
            Network::LandmarkGenerator => Network::Renderer,
            Network::Renderer => Network::LandmarkGenerator,
        }
    }

    /// The embedded reference manifest for this network.
    pub fn manifest(self) -> &'static Manifest {
        match self {
            Network::LandmarkGenerator => &LANDMARK_GENERATOR,
            Network::Renderer => &RENDERER,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One state-dict entry as the reference manifest describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ManifestEntry {
    /// Key without the `module.` prefix, as the current official code names it.
    pub name: String,
    /// Key in the reference checkpoints (with the DataParallel `module.` prefix).
    pub checkpoint_key: String,
    /// Expected shape (empty for a 0-d scalar).
    pub shape: Vec<usize>,
    /// `"float32"` or `"int64"`.
    pub dtype: String,
    /// `nn.Parameter` (true) or buffer (false).
    pub is_parameter: bool,
    /// Training-only VGG19 perceptual-loss tensor (renderer).
    pub perceptual: bool,
    /// PyTorch module class owning the entry (`Conv2d`, `BatchNorm2d`, …).
    pub module_type: String,
    /// Checksum of the reference (formula) weights.
    pub check: ManifestCheck,
}

/// Checksums the reference weights satisfy (`docs/reference-weights.md`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ManifestCheck {
    /// SHA-256 of the tensor's little-endian bytes in its manifest dtype.
    pub sha256: String,
}

/// A reference manifest (`shared/docs/manifests/<model>.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    /// `landmark_generator` or `renderer`.
    pub model: String,
    /// Python constructor call the manifest was made with.
    pub constructor: String,
    /// Entries in `state_dict` order.
    pub entries: Vec<ManifestEntry>,
}

fn parse_manifest(json: &str) -> Manifest {
    // The manifests are compile-time constants checked by the unit test below; a parse failure
    // here is a build defect, not an input error.
    serde_json::from_str(json).expect("embedded checkpoint manifest is valid JSON")
}

static LANDMARK_GENERATOR: LazyLock<Manifest> =
    LazyLock::new(|| parse_manifest(include_str!("manifests/landmark_generator.json")));
static RENDERER: LazyLock<Manifest> =
    LazyLock::new(|| parse_manifest(include_str!("manifests/renderer.json")));

/// Old head names of the landmark generator and their current names (see the module doc).
const RENAMED_HEADS: &[(&str, &str)] = &[
    ("lip_landmark_map.", "mouse_keypoint_map."),
    ("jaw_landmark_map.", "jaw_keypoint_map."),
];

const COUNTER_SUFFIX: &str = ".num_batches_tracked";
const PERCEPTUAL_PREFIX: &str = "perceptual.";

/// The key after the official `module.` removal (spec §5.3).
fn strip_module(key: &str) -> String {
    if key.starts_with("module") {
        key.replacen("module.", "", 1)
    } else {
        key.to_string()
    }
}

fn canonical(key: &str, network: Network) -> (String, bool) {
    let stripped = strip_module(key);
    if network == Network::LandmarkGenerator {
        for (old, new) in RENAMED_HEADS {
            if let Some(rest) = stripped.strip_prefix(old) {
                return (format!("{new}{rest}"), true);
            }
        }
    }
    (stripped, false)
}

/// A state dict that matches a network: every needed tensor present with the right shape, named
/// as in the current official code, in `state_dict` order. Perceptual tensors and BatchNorm
/// counters are not included.
#[derive(Debug, Clone)]
pub struct ValidatedStateDict {
    network: Network,
    tensors: Vec<(String, Tensor)>,
    index: std::collections::HashMap<String, usize>,
    source: Option<CheckpointSource>,
    report: ValidationReport,
}

/// What [`validate`] changed or dropped on the way, for logs and the package manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Keys of the input that carried the `module.` prefix.
    pub module_prefixed: usize,
    /// `(stored key, canonical key)` for every renamed head.
    pub renamed: Vec<(String, String)>,
    /// Stored keys dropped as perceptual-loss weights or BatchNorm counters.
    pub ignored: Vec<String>,
}

impl ValidatedStateDict {
    /// Which network this matches.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The tensor named `name` (canonical name, no `module.`).
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i].1)
    }

    /// `(canonical name, tensor)` in `state_dict` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Number of tensors kept.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when nothing was kept (never for a real network).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The checkpoint file this came from, with its SHA-256.
    pub fn source(&self) -> Option<&CheckpointSource> {
        self.source.as_ref()
    }

    /// Renames and drops applied.
    pub fn report(&self) -> &ValidationReport {
        &self.report
    }
}

/// A state dict that does not match the network. Lists every problem at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The network it was checked against.
    pub network: Network,
    /// The checkpoint file, when known.
    pub path: Option<std::path::PathBuf>,
    /// Expected canonical keys that are absent.
    pub missing: Vec<String>,
    /// Stored keys the network does not have.
    pub unexpected: Vec<String>,
    /// `(canonical key, expected shape, found shape)`.
    pub misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// `(canonical key, expected dtype, found dtype)`.
    pub wrong_dtype: Vec<(String, String, DType)>,
    /// Stored keys that collide with another after normalisation (`module.x` and `x`, or an old
    /// and a new head name).
    pub duplicates: Vec<String>,
    /// Float tensors with NaN or infinite values, in `state_dict` order.
    pub non_finite: Vec<NonFinite>,
    /// Set when most stored keys are the other network's: the checkpoint is that network's.
    pub looks_like: Option<Network>,
}

/// A float tensor holding NaN or infinite values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFinite {
    /// The key as stored in the checkpoint.
    pub key: String,
    /// NaN values.
    pub nan: usize,
    /// `+inf` values.
    pub pos_inf: usize,
    /// `-inf` values.
    pub neg_inf: usize,
    /// Values in the tensor.
    pub total: usize,
    /// Row-major index of the first non-finite value.
    pub first_index: usize,
}

impl NonFinite {
    /// `None` when every value is finite (the common case, one pass).
    fn scan(key: &str, values: &[f32]) -> Option<NonFinite> {
        let first_index = values.iter().position(|v| !v.is_finite())?;
        let mut found = NonFinite {
            key: key.to_string(),
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            total: values.len(),
            first_index,
        };
        for &v in &values[first_index..] {
            if v.is_nan() {
                found.nan += 1;
            } else if v == f32::INFINITY {
                found.pos_inf += 1;
            } else if v == f32::NEG_INFINITY {
                found.neg_inf += 1;
            }
        }
        Some(found)
    }
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = [
            (self.nan, "NaN"),
            (self.pos_inf, "+inf"),
            (self.neg_inf, "-inf"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        write!(
            f,
            "{}: {} of {} values, the first at index {}",
            self.key,
            counts.join(", "),
            self.total,
            self.first_index
        )
    }
}

/// Problem lines [`ValidationError`] prints; the fields keep them all. A swapped or truncated
/// checkpoint has hundreds, and a screenful of keys hides the one line that says what is wrong.
const MAX_LISTED: usize = 10;

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "checkpoint `{}`", p.display())?,
            None => write!(f, "state dict")?,
        }
        write!(f, " is not a usable {} checkpoint: ", self.network)?;
        if let Some(other) = self.looks_like {
            return write!(
                f,
                "it holds the {other}'s weights, not the {}'s",
                self.network
            );
        }
        let counts: Vec<String> = [
            (self.missing.len(), "missing key(s)"),
            (self.unexpected.len(), "unexpected key(s)"),
            (self.misshaped.len(), "mis-shaped tensor(s)"),
            (self.wrong_dtype.len(), "tensor(s) of the wrong dtype"),
            (self.duplicates.len(), "duplicate key(s)"),
            (
                self.non_finite.len(),
                "tensor(s) with NaN or infinite values",
            ),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        f.write_str(&counts.join(", "))?;
        let mut lines: Vec<String> = Vec::new();
        lines.extend(self.missing.iter().map(|k| format!("missing: {k}")));
        lines.extend(self.unexpected.iter().map(|k| format!("unexpected: {k}")));
        lines.extend(
            self.misshaped
                .iter()
                .map(|(k, want, got)| format!("mis-shaped: {k}: expected {want:?}, found {got:?}")),
        );
        lines.extend(
            self.wrong_dtype
                .iter()
                .map(|(k, want, got)| format!("wrong dtype: {k}: expected {want}, found {got}")),
        );
        lines.extend(self.duplicates.iter().map(|k| format!("duplicate: {k}")));
        lines.extend(self.non_finite.iter().map(|n| format!("non-finite: {n}")));
        for line in lines.iter().take(MAX_LISTED) {
            write!(f, "\n  {line}")?;
        }
        if lines.len() > MAX_LISTED {
            write!(f, "\n  ... and {} more", lines.len() - MAX_LISTED)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// Checks `sd` against `network`'s architecture (spec app. A/B) and returns the tensors the
/// network needs under their canonical names, or one error listing every missing, unexpected,
/// mis-shaped, mis-typed and duplicate key and every tensor with NaN or infinite values.
// The error is large because it carries every problem at once; it is built once per model load,
// so boxing it would only make the public fields harder to reach.
#[allow(clippy::result_large_err)]
pub fn validate(sd: &StateDict, network: Network) -> Result<ValidatedStateDict, ValidationError> {
    let manifest = network.manifest();
    let mut err = ValidationError {
        network,
        path: sd.source().map(|s| s.path.clone()),
        missing: Vec::new(),
        unexpected: Vec::new(),
        misshaped: Vec::new(),
        wrong_dtype: Vec::new(),
        duplicates: Vec::new(),
        non_finite: Vec::new(),
        looks_like: None,
    };
    let mut report = ValidationReport::default();

    // Canonical name → (stored key, tensor, consumed?).
    let mut by_name: std::collections::HashMap<String, (&str, &Tensor, bool)> =
        std::collections::HashMap::with_capacity(sd.len());
    for (key, tensor) in sd.iter() {
        let (name, renamed) = canonical(key, network);
        if strip_module(key) != key {
            report.module_prefixed += 1;
        }
        if renamed {
            report.renamed.push((key.to_string(), name.clone()));
        }
        if let Some((first, _, _)) = by_name.get(&name) {
            err.duplicates.push(format!(
                "{key} (same as {first} after normalisation: {name})"
            ));
            continue;
        }
        by_name.insert(name, (key, tensor, false));
    }

    let mut tensors = Vec::with_capacity(manifest.entries.len());
    for e in &manifest.entries {
        let skip = e.perceptual || e.name.ends_with(COUNTER_SUFFIX);
        let Some((key, tensor, used)) = by_name.get_mut(&e.name) else {
            if !skip {
                err.missing.push(e.name.clone());
            }
            continue;
        };
        *used = true;
        if skip {
            report.ignored.push(key.to_string());
            continue;
        }
        if tensor.shape() != e.shape.as_slice() {
            err.misshaped
                .push((e.name.clone(), e.shape.clone(), tensor.shape().to_vec()));
            continue;
        }
        let want_float = DType::from_name(&e.dtype).is_none_or(DType::is_float);
        if tensor.dtype().is_float() != want_float {
            err.wrong_dtype
                .push((e.name.clone(), e.dtype.clone(), tensor.dtype()));
            continue;
        }
        if let Some(found) = tensor.as_f32().and_then(|v| NonFinite::scan(key, v)) {
            err.non_finite.push(found);
            continue;
        }
        tensors.push((e.name.clone(), (*tensor).clone()));
    }
    for (key, _) in sd.iter() {
        let (name, _) = canonical(key, network);
        let Some((stored, _, used)) = by_name.get(&name) else {
            continue;
        };
        if *used || *stored != key {
            continue;
        }
        if network == Network::Renderer && name.starts_with(PERCEPTUAL_PREFIX) {
            // Perceptual keys beyond the manifest's 32 (another VGG depth) are still loss-only.
            report.ignored.push(key.to_string());
        } else {
            err.unexpected.push(key.to_string());
        }
    }

    if !(err.missing.is_empty()
        && err.unexpected.is_empty()
        && err.misshaped.is_empty()
        && err.wrong_dtype.is_empty()
        && err.duplicates.is_empty()
        && err.non_finite.is_empty())
    {
        let used = by_name.values().filter(|(_, _, used)| *used).count();
        err.looks_like = other_network(sd, network, used);
        return Err(err);
    }
    let index = tensors
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    Ok(ValidatedStateDict {
        network,
        tensors,
        index,
        source: sd.source().cloned(),
        report,
    })
}

/// `network`'s other network when most of `sd`'s keys are its (and more than the `used` keys
/// that matched `network`): the two checkpoints were swapped.
fn other_network(sd: &StateDict, network: Network, used: usize) -> Option<Network> {
    let other = network.other();
    let names: std::collections::HashSet<&str> = other
        .manifest()
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let hits = sd
        .keys()
        .filter(|k| names.contains(canonical(k, other).0.as_str()))
        .count();
    (hits * 2 > sd.len() && hits > used).then_some(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifests_match_the_spec_counts() {
        let lg = Network::LandmarkGenerator.manifest();
        assert_eq!(lg.model, "landmark_generator");
        assert_eq!(lg.entries.len(), 435); // spec §6 / app. A
        assert_eq!(lg.entries.iter().filter(|e| e.perceptual).count(), 0);
        let r = Network::Renderer.manifest();
        assert_eq!(r.model, "renderer");
        assert_eq!(r.entries.len(), 284); // spec §6 / app. B
        let perceptual: Vec<_> = r.entries.iter().filter(|e| e.perceptual).collect();
        assert_eq!(perceptual.len(), 32);
        assert!(
            perceptual
                .iter()
                .all(|e| e.name.starts_with(PERCEPTUAL_PREFIX))
        );
        for m in [lg, r] {
            for e in &m.entries {
                assert_eq!(e.checkpoint_key, format!("module.{}", e.name));
                assert!(DType::from_name(&e.dtype).is_some(), "{}", e.dtype);
            }
        }
    }

    #[test]
    fn module_prefix_rule_is_the_official_one() {
        assert_eq!(strip_module("module.a.b"), "a.b");
        assert_eq!(strip_module("a.module.b"), "a.module.b");
        // First occurrence anywhere, as `str.replace(…, 1)` does, once the key starts with it.
        assert_eq!(strip_module("modules.module.x"), "modules.x");
        assert_eq!(
            canonical("module.lip_landmark_map.weight", Network::LandmarkGenerator).0,
            "mouse_keypoint_map.weight"
        );
        assert_eq!(
            canonical("jaw_landmark_map.bias", Network::Renderer).0,
            "jaw_landmark_map.bias"
        );
    }
}
