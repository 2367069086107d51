//! Typed wrapper of the Landmark_generator ONNX model (spec §5.1, app. D; graph in
//! [`crate::graph::landmark_generator`]).

use std::path::Path;

use super::landmark_stages::StagedLandmarkGenerator;
use super::session::{ModelSession, SessionConfig, SessionError};
use crate::graph::GraphError;
use crate::graph::landmark_generator::{self as graph, LandmarkGraphOptions};
use crate::graph::landmark_stages::LandmarkStage;
use crate::graph::onnx::OnnxModel;
use crate::graph::package::{LANDMARK_GENERATOR_STAGE, ModelPackage};

pub use crate::graph::landmark_generator::{NL_CONTENT, NL_POSE, PREDICT_CONTENT, T_MELS, T_POSE};

/// Values in `T_mels` (1 × 5 × 1 × 80 × 16).
pub const T_MELS_LEN: usize = 5 * 80 * 16;
/// Values in `T_pose` (1 × 5 × 2 × 74).
pub const T_POSE_LEN: usize = 5 * 2 * 74;
/// Values in `Nl_pose` (1 × 15 × 2 × 74).
pub const NL_POSE_LEN: usize = 15 * 2 * 74;
/// Values in `Nl_content` (1 × 15 × 2 × 57).
pub const NL_CONTENT_LEN: usize = 15 * 2 * 57;
/// Values in `predict_content` (5 × 2 × 57).
pub const PREDICT_CONTENT_LEN: usize = 5 * 2 * 57;

/// One T = 5 window. All tensors float32, row-major, B = 1 (spec app. D).
#[derive(Clone, Copy, Debug)]
pub struct LandmarkInput<'a> {
    /// `T_mels` (1, 5, 1, 80, 16): normalised log-mel chunks `max(0, s+j−2)`, j = 0..4, in [-4, 4].
    pub t_mels: &'a [f32],
    /// `T_pose` (1, 5, 2, 74): POSE landmarks of the window frames, crop-normalised [0, 1],
    /// row 0 x, row 1 y.
    pub t_pose: &'a [f32],
    /// `Nl_pose` (1, 15, 2, 74): POSE landmarks of the 15 reference frames, same frame.
    pub nl_pose: &'a [f32],
    /// `Nl_content` (1, 15, 2, 57): CONTENT landmarks (17 jaw + 40 lip) of the references.
    pub nl_content: &'a [f32],
}

/// Result for one window.
#[derive(Clone, Debug, PartialEq)]
pub struct LandmarkOutput {
    /// `predict_content` (5, 2, 57): per window frame, row 0 x and row 1 y of the 57 CONTENT
    /// points (0–16 jaw, 17–56 lips), crop-normalised (nominally [0, 1]).
    pub predict_content: Vec<f32>,
}

/// The Landmark_generator session: in `T_mels`, `T_pose`, `Nl_pose`, `Nl_content`; out
/// `predict_content`. The contract is checked when the model is loaded.
#[derive(Debug)]
pub struct LandmarkGenerator {
    session: ModelSession,
}

impl LandmarkGenerator {
    /// Loads the model from `.onnx` bytes (`label` names it in errors).
    pub fn from_bytes(
        label: &str,
        bytes: &[u8],
        config: &SessionConfig,
    ) -> Result<Self, SessionError> {
        let (inputs, outputs) = graph::contract(LandmarkGraphOptions::default());
        Ok(LandmarkGenerator {
            session: ModelSession::from_bytes(label, bytes, &inputs, &outputs, config)?,
        })
    }

    /// Loads the model from a file (e.g. the model package's `landmark_generator.onnx`).
    pub fn from_file(path: &Path, config: &SessionConfig) -> Result<Self, SessionError> {
        let (inputs, outputs) = graph::contract(LandmarkGraphOptions::default());
        Ok(LandmarkGenerator {
            session: ModelSession::from_file(path, &inputs, &outputs, config)?,
        })
    }

    /// Loads a freshly built model.
    pub fn from_model(model: &OnnxModel, config: &SessionConfig) -> Result<Self, SessionError> {
        Self::from_bytes("landmark_generator (in memory)", &model.to_bytes(), config)
    }

    /// Runs one window. Wrong input lengths give an error, not a panic.
    pub fn run(&mut self, x: &LandmarkInput<'_>) -> Result<LandmarkOutput, SessionError> {
        let mut out = self.session.run_f32(
            &[
                (T_MELS, x.t_mels),
                (T_POSE, x.t_pose),
                (NL_POSE, x.nl_pose),
                (NL_CONTENT, x.nl_content),
            ],
            &[PREDICT_CONTENT],
        )?;
        let predict_content = out.pop().unwrap_or_default();
        if predict_content.len() != PREDICT_CONTENT_LEN {
            return Err(SessionError::Run {
                model: self.session.model().to_owned(),
                message: format!(
                    "predict_content has {} values, expected {PREDICT_CONTENT_LEN}",
                    predict_content.len()
                ),
            });
        }
        Ok(LandmarkOutput { predict_content })
    }
}

/// The landmark generator as the engine runs it: the streaming split when the model package has
/// it (every package `iplap convert` writes), else the one-graph model of older packages.
#[derive(Debug)]
pub enum LandmarkModel {
    /// One graph per window ([`LandmarkGenerator`]).
    OneGraph(LandmarkGenerator),
    /// Encoders once per chunk / frame / bank, fusion per window ([`StagedLandmarkGenerator`]).
    Staged(Box<StagedLandmarkGenerator>),
}

/// Why a package's landmark generator could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LandmarkModelError {
    /// The package lacks the stage files.
    #[error(transparent)]
    Package(#[from] GraphError),
    /// ONNX Runtime refused a stage.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl LandmarkModel {
    /// Loads the fastest form `package` holds.
    pub fn from_package(
        package: &ModelPackage,
        config: &SessionConfig,
    ) -> Result<Self, LandmarkModelError> {
        let staged: Result<Vec<_>, _> = LandmarkStage::ALL
            .iter()
            .map(|s| package.stage_path(s.name()))
            .collect();
        match staged {
            Ok(paths) => {
                let paths = [&*paths[0], &*paths[1], &*paths[2], &*paths[3]];
                Ok(LandmarkModel::Staged(Box::new(
                    StagedLandmarkGenerator::from_files(paths, config)?,
                )))
            }
            Err(_) => {
                let path = package.stage_path(LANDMARK_GENERATOR_STAGE.name)?;
                Ok(LandmarkModel::OneGraph(LandmarkGenerator::from_file(
                    &path, config,
                )?))
            }
        }
    }

    /// Runs one window.
    pub fn run(&mut self, x: &LandmarkInput<'_>) -> Result<LandmarkOutput, SessionError> {
        match self {
            LandmarkModel::OneGraph(g) => g.run(x),
            LandmarkModel::Staged(g) => g.run(x),
        }
    }
}

impl From<LandmarkGenerator> for LandmarkModel {
    fn from(g: LandmarkGenerator) -> Self {
        LandmarkModel::OneGraph(g)
    }
}

impl From<StagedLandmarkGenerator> for LandmarkModel {
    fn from(g: StagedLandmarkGenerator) -> Self {
        LandmarkModel::Staged(Box::new(g))
    }
}
