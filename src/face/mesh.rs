//! MediaPipe's attention face mesh: ROI warp to 192×192, inference, landmark refinement and
//! projection back to the frame.
//!
//! Pipeline of `mediapipe/modules/face_landmark/face_landmark_cpu.pbtxt` (ImageToTensor 192×192,
//! range [0, 1], default `BORDER_REPLICATE`; face flag through a sigmoid and a 0.5 threshold),
//! `tensors_to_face_landmarks_with_attention.pbtxt` (coordinates / 192, `LandmarksRefinementCalculator`
//! index maps below) and `mediapipe/calculators/util/landmark_projection_calculator.cc`
//! (`NORM_RECT` path: rotate about the ROI centre in normalised units, scale by the ROI size, z
//! scaled like x).

use std::path::Path;

use super::image_to_tensor::{Border, warp_to_tensor};
use super::roi::NormRect;
use crate::graph::onnx::TensorSpec;
use crate::image::ImageRef;
use crate::runtime::{ModelSession, SessionConfig, SessionError};

/// Mesh input side.
pub const INPUT_SIZE: usize = 192;
/// Landmarks of the plain mesh.
pub const NUM_MESH: usize = 468;
/// Landmarks after refinement (mesh + 2 × 5 iris points).
pub const NUM_LANDMARKS: usize = 478;
/// `min_tracking_confidence` / the face-presence threshold of `face_landmark_cpu.pbtxt`.
pub const PRESENCE_THRESHOLD: f32 = 0.5;

/// ONNX input (NCHW `[1, 3, 192, 192]`, RGB in [0, 1]).
pub const INPUT: &str = "input_1";
/// 468 × (x, y, z) in input pixels.
pub const OUT_MESH: &str = "output_mesh_identity";
/// 80 × (x, y) lips.
pub const OUT_LIPS: &str = "output_lips";
/// 71 × (x, y), first eye (mesh indices from 33).
pub const OUT_LEFT_EYE: &str = "output_left_eye";
/// 71 × (x, y), second eye (mesh indices from 263).
pub const OUT_RIGHT_EYE: &str = "output_right_eye";
/// 5 × (x, y) iris → landmarks 468..473.
pub const OUT_LEFT_IRIS: &str = "output_left_iris";
/// 5 × (x, y) iris → landmarks 473..478.
pub const OUT_RIGHT_IRIS: &str = "output_right_iris";
/// Face-presence logit.
pub const OUT_FACE_FLAG: &str = "conv_faceflag";

/// Refinement map of the lips tensor.
pub const LIPS: [usize; 80] = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409, 78,
    95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415, 76, 77,
    90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408, 62, 96, 89,
    179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
];
/// Refinement map of the first eye tensor.
pub const LEFT_EYE: [usize; 71] = [
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173, 130, 25, 110, 24,
    23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190, 226, 31, 228, 229, 230, 231, 232, 233, 244,
    113, 225, 224, 223, 222, 221, 189, 35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121,
    128, 245, 156, 70, 63, 105, 66, 107, 55, 193,
];
/// Refinement map of the second eye tensor.
pub const RIGHT_EYE: [usize; 71] = [
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398, 359, 255, 339,
    254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414, 446, 261, 448, 449, 450, 451,
    452, 453, 464, 342, 445, 444, 443, 442, 441, 413, 265, 353, 276, 283, 282, 295, 372, 340, 346,
    347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417,
];

/// The attention mesh's output for one ROI.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshOutput {
    /// 478 landmarks, normalised to the frame (x / width, y / height), z scaled like x.
    pub landmarks: Vec<[f32; 3]>,
    /// Face-presence probability (sigmoid of the flag logit).
    pub presence: f32,
}

/// Assembles the 478 refined landmarks in ROI-normalised units from the raw outputs
/// (`LandmarksRefinementCalculator`: mesh, then lips, eyes (x, y only), then irises with z set to
/// the mean z of the 16 eye-contour points).
pub fn refine(
    mesh: &[f32],
    lips: &[f32],
    left_eye: &[f32],
    right_eye: &[f32],
    left_iris: &[f32],
    right_iris: &[f32],
) -> Option<Vec<[f32; 3]>> {
    let s = 1.0 / INPUT_SIZE as f32;
    if mesh.len() < NUM_MESH * 3
        || lips.len() < 160
        || left_eye.len() < 142
        || right_eye.len() < 142
        || left_iris.len() < 10
        || right_iris.len() < 10
    {
        return None;
    }
    let mut lm: Vec<[f32; 3]> = (0..NUM_MESH)
        .map(|i| [mesh[3 * i] * s, mesh[3 * i + 1] * s, mesh[3 * i + 2] * s])
        .collect();
    for (map, t) in [
        (&LIPS[..], lips),
        (&LEFT_EYE[..], left_eye),
        (&RIGHT_EYE[..], right_eye),
    ] {
        for (k, &idx) in map.iter().enumerate() {
            lm[idx][0] = t[2 * k] * s;
            lm[idx][1] = t[2 * k + 1] * s;
        }
    }
    for (iris, contour) in [(left_iris, &LEFT_EYE[..16]), (right_iris, &RIGHT_EYE[..16])] {
        let z = contour.iter().map(|&i| lm[i][2]).sum::<f32>() / contour.len() as f32;
        for k in 0..5 {
            lm.push([iris[2 * k] * s, iris[2 * k + 1] * s, z]);
        }
    }
    Some(lm)
}

/// Projects ROI-normalised landmarks to frame-normalised ones (`LandmarkProjectionCalculator`).
pub fn project(points: &mut [[f32; 3]], roi: &NormRect) {
    let (c, s) = (roi.rotation.cos(), roi.rotation.sin());
    for p in points {
        let (x, y) = (p[0] - 0.5, p[1] - 0.5);
        let nx = c * x - s * y;
        let ny = s * x + c * y;
        p[0] = nx * roi.width + roi.x_center;
        p[1] = ny * roi.height + roi.y_center;
        p[2] *= roi.width;
    }
}

/// The face mesh model with a scratch input buffer.
#[derive(Debug)]
pub struct FaceMesh {
    session: ModelSession,
    input: Vec<f32>,
}

const OUTPUTS: [(&str, usize); 7] = [
    (OUT_MESH, 1404),
    (OUT_LIPS, 160),
    (OUT_LEFT_EYE, 142),
    (OUT_RIGHT_EYE, 142),
    (OUT_LEFT_IRIS, 10),
    (OUT_RIGHT_IRIS, 10),
    (OUT_FACE_FLAG, 1),
];

impl FaceMesh {
    /// Loads `face_landmark_with_attention.onnx` (from [`crate::face::prepare`]).
    pub fn load(path: &Path, config: &SessionConfig) -> Result<Self, SessionError> {
        let inputs = [TensorSpec::f32(INPUT, &[1, 3, INPUT_SIZE, INPUT_SIZE])];
        let outputs: Vec<TensorSpec> = OUTPUTS
            .iter()
            .map(|(n, k)| TensorSpec::f32(n, &[1, 1, 1, *k]))
            .collect();
        Ok(FaceMesh {
            session: ModelSession::from_file(path, &inputs, &outputs, config)?,
            input: Vec::new(),
        })
    }

    /// Runs the mesh on `roi` of `image`. Landmarks are returned whatever the presence score; the
    /// caller applies [`PRESENCE_THRESHOLD`].
    pub fn run(
        &mut self,
        image: &ImageRef<'_>,
        roi: &NormRect,
    ) -> Result<Option<MeshOutput>, SessionError> {
        if image.width() == 0 || image.height() == 0 || !(roi.width > 0.0 && roi.height > 0.0) {
            return Ok(None);
        }
        let px = roi.to_pixels(image.width(), image.height());
        warp_to_tensor(
            image,
            &px,
            INPUT_SIZE,
            INPUT_SIZE,
            Border::Replicate,
            (0.0, 1.0),
            &mut self.input,
        );
        let names: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
        let out = self.session.run_f32(&[(INPUT, &self.input)], &names)?;
        if out.len() != OUTPUTS.len() {
            return Ok(None);
        }
        let Some(mut landmarks) = refine(&out[0], &out[1], &out[2], &out[3], &out[4], &out[5])
        else {
            return Ok(None);
        };
        project(&mut landmarks, roi);
        let logit = out[6].first().copied().unwrap_or(f32::NEG_INFINITY);
        let presence = 1.0 / (1.0 + (-logit).exp());
        Ok(Some(MeshOutput {
            landmarks,
            presence,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_of_centre_and_corner() {
        let roi = NormRect {
            x_center: 0.5,
            y_center: 0.4,
            width: 0.2,
            height: 0.2,
            rotation: std::f32::consts::FRAC_PI_2,
        };
        let mut p = [[0.5, 0.5, 0.1], [1.0, 0.5, 0.0]];
        project(&mut p, &roi);
        assert!((p[0][0] - 0.5).abs() < 1e-6 && (p[0][1] - 0.4).abs() < 1e-6);
        assert!((p[0][2] - 0.02).abs() < 1e-7);
        // The ROI's +x axis points down the frame after a quarter turn.
        assert!((p[1][0] - 0.5).abs() < 1e-6 && (p[1][1] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn short_outputs_are_rejected() {
        assert!(refine(&[0.0; 10], &[], &[], &[], &[], &[]).is_none());
    }
}
