//! `RendererModel::render_resident` (the compositor's GPU entry: `translation_input` and the
//! driving sketches read in place, SPADE maps and the face written into buffers made once) held
//! to `RendererModel::render` on the CPU, where the borrowed tensors are host memory: the same
//! graphs and inputs, so the same bits. Reference formula weights, golden renderer inputs, 3
//! references (chunks of 2 and 1).

use iplap::runtime::renderer::{
    RendererConfig, RendererError, RendererInput, RendererModel, ResidentInput, translation_input,
};
use iplap::runtime::{BorrowedTensor, Placement, SessionConfig};
use iplap::weights::FormulaWeights;
use ndarray::{Array4, Array5, ArrayD, Axis, Ix4, s};
use ndarray_npy::read_npy;

fn load4(dir: &std::path::Path, rel: &str) -> Array4<f32> {
    let mut a: ArrayD<f32> = read_npy(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    while a.ndim() > 4 {
        let axis = a.shape().iter().position(|&d| d == 1).unwrap();
        a = a.index_axis_move(Axis(axis), 0);
    }
    a.into_dimensionality::<Ix4>().unwrap()
}

/// A host tensor as the borrowed input of a host-placed session.
fn borrow(data: &[f32], shape: &[usize]) -> BorrowedTensor {
    assert_eq!(data.len(), shape.iter().product::<usize>());
    // SAFETY: `data` is host memory of `shape`'s size that outlives every run below.
    unsafe { BorrowedTensor::new(data.as_ptr() as u64, shape, Placement::Host) }
}

#[test]
fn resident_frames_equal_render_bit_for_bit() {
    let dir = iplap::require_shared!("golden/public/models/renderer");
    iplap::runtime::init().expect("ONNX Runtime (run scripts/setup.sh)");
    let face: Array5<f32> = read_npy(dir.join("inputs/face_frame_img.npy")).unwrap();
    let face = face.index_axis_move(Axis(0), 0);
    let target = load4(&dir, "inputs/target_sketches.npy");
    let refs = load4(&dir, "inputs/ref_N_frame_img.npy");
    let ref_sketches = load4(&dir, "inputs/ref_N_frame_sketch.npy");
    let audio = load4(&dir, "inputs/audio_mels.npy");
    let config = RendererConfig {
        session: SessionConfig {
            intra_threads: 2,
            ..SessionConfig::default()
        },
        chunk: 2,
        ..RendererConfig::default()
    };
    let mut e = RendererModel::from_weights(&FormulaWeights::new(), config).unwrap();

    let ti = translation_input(face.view(), target.view()).unwrap();
    let ti_data = ti.as_slice().unwrap();
    let plane = 128 * 128;
    let input = borrow(ti_data, &[1, 18, 128, 128]);
    let driving = borrow(&ti_data[3 * plane..], &[1, 15, 128, 128]);
    let audio_data = audio.as_slice().unwrap();
    let x = ResidentInput {
        translation_input: &input,
        driving: &driving,
        audio: audio_data,
    };
    assert!(matches!(
        e.render_resident(&x),
        Err(RendererError::NoReferenceBank)
    ));
    e.set_reference_bank(
        refs.slice(s![0..3, .., .., ..]),
        ref_sketches.slice(s![0..3, .., .., ..]),
    )
    .unwrap();
    let want = e
        .render(&RendererInput {
            face: face.view(),
            target_sketches: target.view(),
            audio: audio.view(),
        })
        .unwrap();
    // Twice: the second frame reuses the output buffers the first one made.
    for frame in 0..2 {
        let out = e.render_resident(&x).unwrap();
        assert_eq!(out.generated.shape(), &[1, 3, 128, 128]);
        assert_eq!(out.generated.placement(), Placement::Host);
        let got = Array4::from_shape_vec((1, 3, 128, 128), out.generated.download().unwrap());
        assert_eq!(got.unwrap(), want.generated_face, "frame {frame}");
    }

    // Wrong shapes and a short mel chunk are errors, not panics.
    let short = &audio_data[..100];
    let bad = [
        ResidentInput {
            translation_input: &driving,
            ..x
        },
        ResidentInput {
            driving: &input,
            ..x
        },
        ResidentInput { audio: short, ..x },
    ];
    for b in bad {
        assert!(matches!(
            e.render_resident(&b),
            Err(RendererError::Shape { .. })
        ));
    }
}
