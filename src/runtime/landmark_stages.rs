//! The Landmark_generator as its streaming split (graphs in [`crate::graph::landmark_stages`]):
//! the same [`LandmarkInput`] → [`LandmarkOutput`] contract as the one-graph
//! [`super::LandmarkGenerator`], but each mel chunk, pose frame and reference set goes through its
//! encoder only once.
//!
//! Consecutive windows share 4 of their 5 chunks and frames, and the 15 references stay fixed for
//! a whole bank. Embeddings are cached by the exact bits of their input, not by an index the
//! caller would have to keep right: a window is then computed from the same embeddings whatever
//! order windows come in, and the result equals the one-graph model's (same operations on the
//! same values; only ONNX Runtime's batch-dependent summation order can differ, ~1e-7).

use crate::sizes::WINDOW;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use super::landmark_generator::{
    LandmarkInput, LandmarkOutput, NL_CONTENT_LEN, NL_POSE_LEN, PREDICT_CONTENT_LEN, T_MELS_LEN,
    T_POSE_LEN,
};
use super::session::{ModelSession, SessionConfig, SessionError};
use crate::graph::landmark_generator::{D_MODEL, N_REF, PREDICT_CONTENT};
use crate::graph::landmark_stages::{self as st, BATCH_DIM, LandmarkStage};
use crate::graph::onnx::OnnxModel;

/// Values of one mel chunk (1 × 80 × 16).
const CHUNK_LEN: usize = T_MELS_LEN / WINDOW;
/// Values of one pose frame (2 × 74).
const FRAME_LEN: usize = T_POSE_LEN / WINDOW;
/// Embeddings kept per encoder: two windows' worth, so sliding by one (or a repeated window at a
/// loop turn) always finds the four shared entries.
const CACHE_ENTRIES: usize = 2 * WINDOW;

/// Exact-input → embedding cache, least recently used entry evicted first.
#[derive(Debug, Default)]
struct EmbeddingCache {
    entries: VecDeque<(Vec<f32>, Vec<f32>)>,
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl EmbeddingCache {
    fn get(&self, key: &[f32]) -> Option<&[f32]> {
        self.entries
            .iter()
            .find(|(k, _)| same_bits(k, key))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether `key` is cached; a hit becomes the most recently used entry.
    fn touch(&mut self, key: &[f32]) -> bool {
        let Some(i) = self.entries.iter().position(|(k, _)| same_bits(k, key)) else {
            return false;
        };
        if let Some(entry) = self.entries.remove(i) {
            self.entries.push_back(entry);
        }
        true
    }

    fn insert(&mut self, key: &[f32], value: Vec<f32>) {
        if self.entries.len() == CACHE_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back((key.to_vec(), value));
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Seconds each stage took in the last window (zero for an encoder whose inputs were all cached).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Mel encoder.
    pub mel_encoder: Duration,
    /// Pose encoder.
    pub pose_encoder: Duration,
    /// Reference encoder.
    pub ref_encoder: Duration,
    /// Fusion (transformer and heads).
    pub fusion: Duration,
}

/// Counts of encoder runs, for benchmarks and tests of the caching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageRuns {
    /// Mel chunks encoded.
    pub mel_chunks: usize,
    /// Pose frames encoded.
    pub pose_frames: usize,
    /// Reference sets encoded.
    pub reference_sets: usize,
    /// Windows fused.
    pub windows: usize,
}

/// The four streaming stages with their embedding caches.
#[derive(Debug)]
pub struct StagedLandmarkGenerator {
    mel: ModelSession,
    pose: ModelSession,
    refs: ModelSession,
    fusion: ModelSession,
    mel_cache: EmbeddingCache,
    pose_cache: EmbeddingCache,
    /// `Nl_pose` ++ `Nl_content` of the cached reference embeddings, and the embeddings.
    ref_cache: Option<(Vec<f32>, Vec<f32>)>,
    runs: StageRuns,
    times: StageTimes,
}

impl StagedLandmarkGenerator {
    /// Loads the stages from `.onnx` bytes, in [`LandmarkStage::ALL`] order.
    pub fn from_bytes(stages: [&[u8]; 4], config: &SessionConfig) -> Result<Self, SessionError> {
        let [mel, pose, refs, fusion] = LandmarkStage::ALL;
        let load = |stage: LandmarkStage, bytes: &[u8]| {
            let (i, o) = stage.contract();
            ModelSession::from_bytes(stage.name(), bytes, &i, &o, config)
        };
        Self::new([
            load(mel, stages[0])?,
            load(pose, stages[1])?,
            load(refs, stages[2])?,
            load(fusion, stages[3])?,
        ])
    }

    /// Loads the stages from files (a model package's `landmark_*.onnx`), in
    /// [`LandmarkStage::ALL`] order.
    pub fn from_files(paths: [&Path; 4], config: &SessionConfig) -> Result<Self, SessionError> {
        let mut sessions = Vec::with_capacity(4);
        for (stage, path) in LandmarkStage::ALL.into_iter().zip(paths) {
            let (i, o) = stage.contract();
            sessions.push(ModelSession::from_file(path, &i, &o, config)?);
        }
        let sessions: [ModelSession; 4] = sessions.try_into().map_err(|_| SessionError::Build {
            model: "landmark stages".into(),
            message: "expected four stages".into(),
        })?;
        Self::new(sessions)
    }

    /// Loads freshly built stage graphs, in [`LandmarkStage::ALL`] order.
    pub fn from_models(
        models: [&OnnxModel; 4],
        config: &SessionConfig,
    ) -> Result<Self, SessionError> {
        let bytes = models.map(|m| m.to_bytes());
        Self::from_bytes([&bytes[0], &bytes[1], &bytes[2], &bytes[3]], config)
    }

    fn new([mel, pose, refs, fusion]: [ModelSession; 4]) -> Result<Self, SessionError> {
        Ok(StagedLandmarkGenerator {
            mel,
            pose,
            refs,
            fusion,
            mel_cache: EmbeddingCache::default(),
            pose_cache: EmbeddingCache::default(),
            ref_cache: None,
            runs: StageRuns::default(),
            times: StageTimes::default(),
        })
    }

    /// Encoder and fusion runs so far.
    pub fn runs(&self) -> StageRuns {
        self.runs
    }

    /// Per-stage times of the last window.
    pub fn last_times(&self) -> StageTimes {
        self.times
    }

    /// Forgets every cached embedding (the next window encodes everything again).
    pub fn clear_cache(&mut self) {
        self.mel_cache.clear();
        self.pose_cache.clear();
        self.ref_cache = None;
    }

    /// Runs one window. Wrong input lengths give an error, not a panic.
    pub fn run(&mut self, x: &LandmarkInput<'_>) -> Result<LandmarkOutput, SessionError> {
        let lengths = [
            ("T_mels", x.t_mels.len(), T_MELS_LEN),
            ("T_pose", x.t_pose.len(), T_POSE_LEN),
            ("Nl_pose", x.nl_pose.len(), NL_POSE_LEN),
            ("Nl_content", x.nl_content.len(), NL_CONTENT_LEN),
        ];
        if let Some((name, got, want)) = lengths.into_iter().find(|(_, g, w)| g != w) {
            return Err(SessionError::Run {
                model: "landmark stages".into(),
                message: format!("{name} has {got} values, expected {want}"),
            });
        }
        let t = Instant::now();
        let ref_embedding = self.ref_embedding(x.nl_pose, x.nl_content)?.to_vec();
        self.times.ref_encoder = t.elapsed();
        let t = Instant::now();
        let mel_embedding = encode_window(
            &mut self.mel,
            &mut self.mel_cache,
            &mut self.runs.mel_chunks,
            x.t_mels,
            CHUNK_LEN,
            (st::MEL_CHUNKS, st::MEL_EMBEDDING),
        )?;
        self.times.mel_encoder = t.elapsed();
        let t = Instant::now();
        let pose_embedding = encode_window(
            &mut self.pose,
            &mut self.pose_cache,
            &mut self.runs.pose_frames,
            x.t_pose,
            FRAME_LEN,
            (st::POSE_FRAMES, st::POSE_EMBEDDING),
        )?;
        self.times.pose_encoder = t.elapsed();
        let t = Instant::now();
        let mut out = self.fusion.run_f32(
            &[
                (st::REF_EMBEDDING, &ref_embedding),
                (st::MEL_EMBEDDING, &mel_embedding),
                (st::POSE_EMBEDDING, &pose_embedding),
            ],
            &[PREDICT_CONTENT],
        )?;
        self.times.fusion = t.elapsed();
        self.runs.windows += 1;
        let predict_content = out.pop().unwrap_or_default();
        if predict_content.len() != PREDICT_CONTENT_LEN {
            return Err(SessionError::Run {
                model: self.fusion.model().to_owned(),
                message: format!(
                    "predict_content has {} values, expected {PREDICT_CONTENT_LEN}",
                    predict_content.len()
                ),
            });
        }
        Ok(LandmarkOutput { predict_content })
    }

    fn ref_embedding(&mut self, pose: &[f32], content: &[f32]) -> Result<&[f32], SessionError> {
        let cached = self.ref_cache.as_ref().is_some_and(|(key, _)| {
            same_bits(&key[..pose.len()], pose) && same_bits(&key[pose.len()..], content)
        });
        if !cached {
            let mut out = self.refs.run_f32_dims(
                &[(BATCH_DIM, N_REF)],
                &[(st::REF_POSE, pose), (st::REF_CONTENT, content)],
                &[st::REF_EMBEDDING],
            )?;
            let embedding = out.pop().unwrap_or_default();
            check_len(&self.refs, &embedding, N_REF * D_MODEL)?;
            self.runs.reference_sets += 1;
            self.ref_cache = Some(([pose, content].concat(), embedding));
        }
        Ok(self.ref_cache.as_ref().map_or(&[], |(_, e)| e.as_slice()))
    }
}

fn check_len(session: &ModelSession, v: &[f32], want: usize) -> Result<(), SessionError> {
    if v.len() == want {
        return Ok(());
    }
    Err(SessionError::Run {
        model: session.model().to_owned(),
        message: format!("output has {} values, expected {want}", v.len()),
    })
}

/// The T embeddings of a window's T items (`item_len` values each), encoding only the items not
/// in `cache`, all in one batch.
fn encode_window(
    session: &mut ModelSession,
    cache: &mut EmbeddingCache,
    runs: &mut usize,
    items: &[f32],
    item_len: usize,
    (input, output): (&str, &str),
) -> Result<Vec<f32>, SessionError> {
    let mut missing: Vec<&[f32]> = Vec::new();
    for item in items.chunks_exact(item_len) {
        // Touching the hits first keeps them among the newest T entries, so inserting the (at
        // most T) misses below cannot evict them.
        if !cache.touch(item) && !missing.iter().any(|m| same_bits(m, item)) {
            missing.push(item);
        }
    }
    if !missing.is_empty() {
        let batch = missing.concat();
        let mut out =
            session.run_f32_dims(&[(BATCH_DIM, missing.len())], &[(input, &batch)], &[output])?;
        let embeddings = out.pop().unwrap_or_default();
        check_len(session, &embeddings, missing.len() * D_MODEL)?;
        for (item, e) in missing.iter().zip(embeddings.chunks_exact(D_MODEL)) {
            cache.insert(item, e.to_vec());
        }
        *runs += missing.len();
    }
    let mut window = Vec::with_capacity(WINDOW * D_MODEL);
    for item in items.chunks_exact(item_len) {
        let e = cache.get(item).ok_or_else(|| SessionError::Run {
            model: session.model().to_owned(),
            message: "embedding evicted within one window".into(),
        })?;
        window.extend_from_slice(e);
    }
    Ok(window)
}
