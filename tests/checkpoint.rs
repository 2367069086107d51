//! Checkpoint reader and architecture validation (spec §5.3, §6, app. A/B) against the shared
//! golden checkpoints, plus robustness against truncated and corrupted input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use iplap::checkpoint::{
    CheckpointError, CheckpointFormat, DType, FormatError, MetaValue, Network, StateDict, Tensor,
    TensorData, load_checkpoint, load_checkpoint_bytes, validate,
};
use sha2::{Digest, Sha256};

const CKPT: &str = "golden/public/checkpoints";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a parsed tiny checkpoint against `tiny_official_layout.expected.json`: the same keys,
/// and for each its dtype, shape and every value (exact: the expected values are the f32/f16/i64
/// values printed as doubles).
fn assert_matches_expected(sd: &StateDict, dir: &Path) {
    let text = std::fs::read_to_string(dir.join("tiny_official_layout.expected.json")).unwrap();
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut want_keys = BTreeSet::new();
    for (key, e) in &expected {
        if key == "_meta" {
            assert_eq!(
                sd.metadata().get("global_step"),
                Some(&MetaValue::Int(e["global_step"].as_i64().unwrap()))
            );
            assert_eq!(
                sd.metadata().get("global_epoch"),
                Some(&MetaValue::Int(e["global_epoch"].as_i64().unwrap()))
            );
            continue;
        }
        want_keys.insert(key.as_str());
        let t = sd
            .get(key)
            .unwrap_or_else(|| panic!("missing tensor {key}"));
        assert_eq!(
            t.dtype().name(),
            e["dtype"].as_str().unwrap(),
            "{key} dtype"
        );
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape.as_slice(), "{key} shape");
        let values: Vec<f64> = e["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // Compared in the tensor's own precision: serde_json's default float parser may be one
        // f64 ulp off the printed double, which the f32 rounding absorbs.
        match t.data() {
            TensorData::Int(v) => {
                let want: Vec<i64> = values.iter().map(|&x| x as i64).collect();
                assert_eq!(v, &want, "{key} values");
            }
            TensorData::Float(v) => {
                let want: Vec<f32> = values.iter().map(|&x| x as f32).collect();
                assert_eq!(v, &want, "{key} values");
            }
        }
    }
    let got_keys: BTreeSet<&str> = sd.keys().collect();
    assert_eq!(got_keys, want_keys);
}

#[test]
fn tiny_zip_checkpoint_matches_expected_json() {
    let dir = iplap::require_shared!(CKPT);
    let path = dir.join("tiny_official_layout.pth");
    let sd = load_checkpoint(&path).unwrap();
    assert_matches_expected(&sd, &dir);
    let src = sd.source().unwrap();
    assert_eq!(src.format, CheckpointFormat::TorchZip);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(src.sha256_hex(), hex(&Sha256::digest(&bytes)));
    assert_eq!(src.len, bytes.len() as u64);
    // Registration order is kept (the JSON map is sorted, so check against the pickle's order).
    assert_eq!(
        sd.keys().next(),
        Some("module.mel_encoder.0.conv_block.0.weight")
    );
    assert_eq!(sd.keys().last(), Some("module.half_tensor"));
    // The in-memory entry point gives the same tensors.
    assert_eq!(
        load_checkpoint_bytes(&bytes, "mem").unwrap().iter().count(),
        sd.len()
    );
}

#[test]
fn tiny_legacy_checkpoint_matches_expected_json() {
    let dir = iplap::require_shared!(CKPT);
    let sd = load_checkpoint(dir.join("tiny_official_layout_legacy.pth")).unwrap();
    assert_eq!(sd.source().unwrap().format, CheckpointFormat::TorchLegacy);
    assert_matches_expected(&sd, &dir);
}

/// The full landmark generator with the reference (formula) weights: 435 entries with the
/// `module.` prefix, each matching the manifest's checksum of its little-endian bytes.
#[test]
fn landmark_generator_reference_checkpoint_loads_and_validates() {
    let dir = iplap::require_shared!(CKPT);
    let started = std::time::Instant::now();
    let sd = load_checkpoint(dir.join("landmark_generator_ref.pth")).unwrap();
    let load_time = started.elapsed();
    assert_eq!(sd.len(), 435);
    assert!(sd.keys().all(|k| k.starts_with("module.")));

    let manifest = Network::LandmarkGenerator.manifest();
    for e in &manifest.entries {
        let t = sd.get(&e.checkpoint_key).unwrap();
        let mut h = Sha256::new();
        match t.data() {
            TensorData::Float(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
            TensorData::Int(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        }
        assert_eq!(hex(&h.finalize()), e.check.sha256, "{}", e.name);
    }

    let v = validate(&sd, Network::LandmarkGenerator).unwrap();
    // 435 entries less the 54 BatchNorm counters.
    assert_eq!(v.len(), 435 - 54);
    assert_eq!(v.report().module_prefixed, 435);
    assert_eq!(v.report().ignored.len(), 54);
    assert!(v.report().renamed.is_empty());
    assert_eq!(v.get("Norm.weight").unwrap().shape(), &[512]);
    let params: usize = v.iter().map(|(_, t)| t.numel()).sum();
    eprintln!(
        "landmark_generator_ref.pth: {} entries, {} validated tensors ({params} elements), \
         loaded in {load_time:?}, sha256 {}",
        sd.len(),
        v.len(),
        sd.source().unwrap().sha256_hex()
    );
    // It is not a renderer.
    let err = validate(&sd, Network::Renderer).unwrap_err();
    assert_eq!(err.unexpected.len(), 435);
}

/// A state dict with the right keys and shapes (zeros), as the official scripts save it.
fn synthetic(network: Network, with_perceptual: bool, with_counters: bool) -> StateDict {
    let mut sd = StateDict::new();
    for e in &network.manifest().entries {
        if (e.perceptual && !with_perceptual)
            || (e.name.ends_with("num_batches_tracked") && !with_counters)
        {
            continue;
        }
        let n: usize = e.shape.iter().product();
        let t = if e.dtype == "int64" {
            Tensor::from_i64(e.shape.clone(), vec![0; n]).unwrap()
        } else {
            Tensor::from_f32(e.shape.clone(), vec![0.0; n]).unwrap()
        };
        sd.insert(e.checkpoint_key.clone(), t);
    }
    sd
}

#[test]
fn validation_lists_missing_unexpected_and_misshaped_keys_at_once() {
    let mut sd = synthetic(Network::LandmarkGenerator, false, true);
    assert!(validate(&sd, Network::LandmarkGenerator).is_ok());

    sd.remove("module.fusion_transformer.modality.weight")
        .unwrap();
    sd.insert(
        "module.extra_head.weight",
        Tensor::from_f32(vec![2], vec![0.0; 2]).unwrap(),
    );
    sd.insert(
        "module.mel_encoder.0.conv_block.0.weight",
        Tensor::from_f32(vec![32, 3, 3], vec![0.0; 288]).unwrap(),
    );
    sd.insert(
        "module.Norm.bias",
        Tensor::from_i64(vec![512], vec![0; 512]).unwrap(),
    );
    let err = validate(&sd, Network::LandmarkGenerator).unwrap_err();
    assert_eq!(err.missing, ["fusion_transformer.modality.weight"]);
    assert_eq!(err.unexpected, ["module.extra_head.weight"]);
    assert_eq!(
        err.misshaped,
        [(
            "mel_encoder.0.conv_block.0.weight".to_string(),
            vec![32, 1, 3, 3],
            vec![32, 3, 3]
        )]
    );
    assert_eq!(err.wrong_dtype.len(), 1);
    let msg = err.to_string();
    for needle in [
        "landmark generator",
        "missing: fusion_transformer.modality.weight",
        "unexpected: module.extra_head.weight",
        "expected [32, 1, 3, 3], found [32, 3, 3]",
        "wrong dtype: Norm.bias",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }
}

#[test]
fn truncated_state_dict_lists_every_missing_key() {
    let full = synthetic(Network::Renderer, true, true);
    let mut sd = StateDict::new();
    for (k, t) in full.iter().take(100) {
        sd.insert(k, t.clone());
    }
    let err = validate(&sd, Network::Renderer).unwrap_err();
    // 284 - 32 perceptual - 17 counters = 235 needed; the first 100 stored keys hold 94 of them.
    let needed_in_first_100 = full
        .keys()
        .take(100)
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(err.missing.len(), 235 - needed_in_first_100);
    assert!(err.unexpected.is_empty() && err.misshaped.is_empty());
}

#[test]
fn renamed_heads_prefixless_keys_perceptual_and_counters_are_accepted() {
    // Old head names, with and without `module.`.
    let mut sd = synthetic(Network::LandmarkGenerator, false, false);
    for (old, new) in [
        ("lip_landmark_map", "mouse_keypoint_map"),
        ("jaw_landmark_map", "jaw_keypoint_map"),
    ] {
        for p in ["weight", "bias"] {
            let t = sd.remove(&format!("module.{new}.{p}")).unwrap();
            sd.insert(format!("{old}.{p}"), t);
        }
    }
    let v = validate(&sd, Network::LandmarkGenerator).unwrap();
    assert_eq!(v.report().renamed.len(), 4);
    assert_eq!(
        v.get("mouse_keypoint_map.weight").unwrap().shape(),
        &[80, 512]
    );
    assert_eq!(v.get("jaw_keypoint_map.bias").unwrap().shape(), &[34]);

    // Both the old and the new name: a duplicate, reported.
    let t = sd.get("lip_landmark_map.bias").unwrap().clone();
    sd.insert("mouse_keypoint_map.bias", t);
    let err = validate(&sd, Network::LandmarkGenerator).unwrap_err();
    assert_eq!(err.duplicates.len(), 1, "{err}");

    // Renderer: perceptual keys present or not, counters present or not.
    for (perc, counters) in [(true, true), (false, false), (true, false)] {
        let sd = synthetic(Network::Renderer, perc, counters);
        let v = validate(&sd, Network::Renderer).unwrap();
        assert_eq!(v.len(), 235);
        assert!(v.iter().all(|(k, _)| !k.starts_with("perceptual.")));
    }
    // The renamed-head rule is the landmark generator's only.
    let mut sd = synthetic(Network::Renderer, false, true);
    sd.insert(
        "lip_landmark_map.bias",
        Tensor::from_f32(vec![80], vec![0.0; 80]).unwrap(),
    );
    assert_eq!(
        validate(&sd, Network::Renderer).unwrap_err().unexpected,
        ["lip_landmark_map.bias"]
    );
}

/// Deterministic bit mixer for the corruption test (splitmix64).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn truncated_and_corrupted_files_give_errors_not_panics() {
    let dir = iplap::require_shared!(CKPT);
    for name in [
        "tiny_official_layout.pth",
        "tiny_official_layout_legacy.pth",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        // Every proper prefix is an error (the zip directory and the legacy storages both sit at
        // the end).
        for cut in 0..bytes.len() {
            let r = load_checkpoint_bytes(&bytes[..cut], name);
            assert!(r.is_err(), "{name} cut at {cut} parsed");
        }
        // Random corruption, fixed seed: 1–8 bytes overwritten per trial.
        let mut rng = Mix(0x1b1a_2023);
        let mut parsed = 0;
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..=(rng.next() % 8) {
                let i = (rng.next() % b.len() as u64) as usize;
                b[i] = rng.next() as u8;
            }
            parsed += usize::from(load_checkpoint_bytes(&b, name).is_ok());
        }
        eprintln!(
            "{name}: {parsed} of 3000 corrupted copies still parsed (bytes no check covers: \
             tensor data of legacy files, unread zip records)"
        );
    }
}

#[test]
fn forbidden_globals_and_unknown_files_are_named() {
    let dir = iplap::require_shared!(CKPT);
    // The legacy header (magic, protocol, sys info) followed by a pickle calling os.system.
    let legacy = std::fs::read(dir.join("tiny_official_layout_legacy.pth")).unwrap();
    let mut evil = legacy[..137].to_vec();
    evil.extend_from_slice(b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R.");
    let err = load_checkpoint_bytes(&evil, "evil.pth").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err.format_problem(),
            Some(FormatError::ForbiddenGlobal { module, name }) if module == "os" && name == "system"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("evil.pth") && msg.contains("os.system"),
        "{msg}"
    );

    let err = load_checkpoint_bytes(b"hello world, not a checkpoint", "notes.txt").unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(matches!(
        err.format_problem(),
        Some(FormatError::UnknownMagic { .. })
    ));

    let missing = PathBuf::from("/nonexistent/iplap/ckpt.pth");
    match load_checkpoint(&missing) {
        Err(CheckpointError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_pickles_are_bounded() {
    // A storage claiming 2^60 floats, viewed through a stride-0 expansion.
    let p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10tQK\x00\x8a\x05\x00\x00\x00\x00\x01\x85K\x00\x85\x89}tRu.";
    assert!(iplap::checkpoint::fuzz_parse(p).is_err());
    // A small storage expanded to 2^32 elements with stride 0.
    let p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00\x8a\x05\x00\x00\x00\x00\x01\x85K\x00\x85\x89}tRu.";
    let err = iplap::checkpoint::fuzz_parse(p).unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    // The same with a size of 3: fine.
    let p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x03\x85K\x00\x85\x89}tRu.";
    assert_eq!(iplap::checkpoint::fuzz_parse(p), Ok(1));
}

/// A safetensors view over raw little-endian bytes, for writing test files with the crate.
struct Raw(safetensors::Dtype, Vec<usize>, Vec<u8>);
impl safetensors::View for &Raw {
    fn dtype(&self) -> safetensors::Dtype {
        self.0
    }
    fn shape(&self) -> &[usize] {
        &self.1
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.2)
    }
    fn data_len(&self) -> usize {
        self.2.len()
    }
}

#[test]
fn safetensors_round_trip() {
    let f32s: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    let tensors = [
        (
            "module.a.weight",
            Raw(
                safetensors::Dtype::F32,
                vec![2, 3, 4],
                f32s.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ),
        (
            "module.b.num_batches_tracked",
            Raw(
                safetensors::Dtype::I64,
                vec![],
                77i64.to_le_bytes().to_vec(),
            ),
        ),
        (
            "module.c.half",
            Raw(
                safetensors::Dtype::F16,
                vec![3],
                [0x3800u16, 0xc000, 0x7bff]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
        ),
        (
            "module.d.bf16",
            Raw(
                safetensors::Dtype::BF16,
                vec![2],
                [0x3f80u16, 0xc040]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
        ),
    ];
    let dir = std::env::temp_dir().join(format!("iplap-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("round_trip.safetensors");
    safetensors::serialize_to_file(tensors.iter().map(|(k, r)| (*k, r)), None, &path).unwrap();

    let sd = load_checkpoint(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(sd.source().unwrap().format, CheckpointFormat::Safetensors);
    assert_eq!(sd.len(), 4);
    let a = sd.get("module.a.weight").unwrap();
    assert_eq!((a.dtype(), a.shape()), (DType::F32, &[2, 3, 4][..]));
    assert_eq!(a.as_f32().unwrap(), f32s.as_slice());
    let b = sd.get("module.b.num_batches_tracked").unwrap();
    assert_eq!((b.shape(), b.as_i64().unwrap()), (&[][..], &[77][..]));
    let c = sd.get("module.c.half").unwrap();
    assert_eq!(
        (c.dtype(), c.as_f32().unwrap()),
        (DType::F16, &[0.5, -2.0, 65504.0][..])
    );
    let d = sd.get("module.d.bf16").unwrap();
    assert_eq!(d.as_f32().unwrap(), &[1.0, -3.0]);
}

/// Issue 13: a checkpoint with NaN or infinite weights is refused, naming the first bad tensor
/// (in `state_dict` order) and what was found, instead of converting into a package that renders
/// garbage without a word.
#[test]
fn non_finite_weights_are_refused_naming_the_first_tensor() {
    let mut sd = synthetic(Network::LandmarkGenerator, false, true);
    // One +inf and one -inf deep inside a later tensor, and an all-NaN tensor before it.
    let later = "module.Norm.weight";
    let mut v = vec![0.5f32; 512];
    v[7] = f32::INFINITY;
    v[9] = f32::NEG_INFINITY;
    sd.insert(later, Tensor::from_f32(vec![512], v).unwrap());
    let first = "module.mel_encoder.0.conv_block.0.bias";
    sd.insert(
        first,
        Tensor::from_f32(vec![32], vec![f32::NAN; 32]).unwrap(),
    );
    let Err(err) = validate(&sd, Network::LandmarkGenerator) else {
        panic!("a checkpoint with NaN and infinite weights validated");
    };
    let msg = err.to_string();
    let first_line = msg.lines().nth(1).unwrap_or_default();
    assert!(
        first_line.contains(first) && first_line.contains("32 NaN"),
        "first listed problem should be {first}:\n{msg}"
    );
    assert!(
        msg.contains(later) && msg.contains("1 +inf") && msg.contains("1 -inf"),
        "{msg}"
    );
    assert!(msg.contains("index 7"), "first bad value's index: {msg}");
    assert_eq!(err.non_finite.len(), 2, "{msg}");
    assert_eq!(err.non_finite[0].key, first);
    assert_eq!(err.non_finite[0].nan, 32);
    assert_eq!(
        (err.non_finite[1].pos_inf, err.non_finite[1].neg_inf),
        (1, 1)
    );
    // Every other category is empty: the keys and shapes are right.
    assert!(err.missing.is_empty() && err.unexpected.is_empty() && err.misshaped.is_empty());
    // Finite weights still validate.
    assert!(validate(&synthetic(Network::Renderer, true, true), Network::Renderer).is_ok());
}

/// Issue 13: the landmark generator's checkpoint given as the renderer's (and the reverse) is
/// recognised and said in a few lines, not as a 671-line key list.
#[test]
fn the_other_networks_checkpoint_is_recognised() {
    for (given, checked) in [
        (Network::LandmarkGenerator, Network::Renderer),
        (Network::Renderer, Network::LandmarkGenerator),
    ] {
        let sd = synthetic(given, true, true);
        let Err(err) = validate(&sd, checked) else {
            panic!("the {given} validated as the {checked}");
        };
        let msg = err.to_string();
        assert!(
            msg.lines().count() <= 3,
            "{given} as {checked}: {} lines:\n{msg}",
            msg.lines().count()
        );
        assert!(
            msg.contains(&format!("holds the {given}'s weights")),
            "{given} as {checked}:\n{msg}"
        );
        assert_eq!(err.looks_like, Some(given));
        // The lists are still complete for callers that want them.
        assert_eq!(err.unexpected.len(), sd.len());
    }
    // A truncated checkpoint of the right network is not "the other one".
    let full = synthetic(Network::Renderer, false, true);
    let mut sd = StateDict::new();
    for (k, t) in full.iter().take(20) {
        sd.insert(k, t.clone());
    }
    let err = validate(&sd, Network::Renderer).unwrap_err();
    assert_eq!(err.looks_like, None);
}

/// Issue 13: a long list of problems is capped (first ten, then how many more), so the cause
/// stays on screen; the error's fields keep every key.
#[test]
fn long_problem_lists_are_capped() {
    let full = synthetic(Network::Renderer, true, true);
    let mut sd = StateDict::new();
    for (k, t) in full.iter().take(40) {
        sd.insert(k, t.clone());
    }
    let err = validate(&sd, Network::Renderer).unwrap_err();
    assert!(err.missing.len() > 100);
    let msg = err.to_string();
    let lines: Vec<&str> = msg.lines().collect();
    assert!(lines.len() <= 12, "{} lines:\n{msg}", lines.len());
    assert_eq!(lines.iter().filter(|l| l.contains("missing:")).count(), 10);
    let more = err.missing.len() - 10;
    assert!(
        lines.last().unwrap().contains(&format!("and {more} more")),
        "{msg}"
    );
}
