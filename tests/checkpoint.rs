//! Checkpoint round trip and every corrupt-file error.

use std::collections::BTreeMap;
use std::path::Path;

use bevy_talking_head::features::FeatureNorm;
use bevy_talking_head::model::{
    FrameInput, ModelConfig, ModelError, MotionNorm, Provenance, Sampler, TalkingHeadModel,
    save_checkpoint,
};
use candle_core::Tensor;

fn small() -> ModelConfig {
    ModelConfig::tiny()
}

fn run(model: &TalkingHeadModel) -> Vec<[f32; 52]> {
    let mut st = model.new_state(3).unwrap();
    let feats: Vec<f32> = (0..model.config().input_dim())
        .map(|i| (i % 13) as f32 * 0.2 - 3.0)
        .collect();
    let mut out = Vec::new();
    for _ in 0..12 {
        let r = model
            .step(
                &mut [&mut st],
                &[FrameInput {
                    log_mel: &feats,
                    rms_dbfs: -10.0,
                }],
                Sampler::Student,
            )
            .unwrap();
        out.extend(r.into_iter().flatten().map(|f| f.weights));
    }
    out
}

fn write_with(path: &Path, tensors: &BTreeMap<String, Tensor>, cfg: &ModelConfig) {
    save_checkpoint(
        path,
        tensors,
        cfg,
        &FeatureNorm::identity(80),
        &MotionNorm::default(),
        &Provenance::default(),
    )
    .unwrap();
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    model.save(&path).unwrap();
    let loaded = TalkingHeadModel::load(&path).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.provenance(), model.provenance());
    assert_eq!(run(&model), run(&loaded));
    let info = TalkingHeadModel::info(&path).unwrap();
    assert!(info.student_parameters.unwrap() > 0);
    assert!(info.file_bytes > 0);
}

#[test]
fn student_only_checkpoint_loads_and_teacher_is_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("student.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let t: BTreeMap<_, _> = model
        .tensors()
        .iter()
        .filter(|(k, _)| !k.starts_with("teacher."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    write_with(&path, &t, model.config());
    let loaded = TalkingHeadModel::load(&path).unwrap();
    assert!(loaded.has_student() && !loaded.has_teacher());
    let mut st = loaded.new_state(0).unwrap();
    let f = vec![0.0; loaded.config().input_dim()];
    let mut err = None;
    for _ in 0..4 {
        if let Err(e) = loaded.step(
            &mut [&mut st],
            &[FrameInput {
                log_mel: &f,
                rms_dbfs: 0.0,
            }],
            Sampler::Teacher {
                steps: 2,
                guidance: 1.0,
            },
        ) {
            err = Some(e);
            break;
        }
    }
    assert!(
        matches!(err, Some(ModelError::MissingDenoiser("teacher"))),
        "{err:?}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let mut t = model.tensors().clone();
    t.remove("encoder.layers.0.attn.qkv.weight");
    write_with(&path, &t, model.config());
    match TalkingHeadModel::load(&path) {
        Err(ModelError::MissingTensor { name, .. }) => {
            assert_eq!(name, "encoder.layers.0.attn.qkv.weight")
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn wrong_shape_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let mut t = model.tensors().clone();
    t.insert(
        "student.out.weight".into(),
        Tensor::zeros((7, 3), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    write_with(&path, &t, model.config());
    match TalkingHeadModel::load(&path) {
        Err(ModelError::WrongShape {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, "student.out.weight");
            assert_eq!(found, vec![7, 3]);
            assert_eq!(expected, vec![52, 32]);
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
}

#[test]
fn nan_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let mut t = model.tensors().clone();
    // `save_checkpoint` refuses NaN itself, so write a marker value and
    // turn it into NaN in the file, as a corrupt or hostile file would be.
    let marker = 1234.5f32;
    t.insert(
        "encoder.ln_f.bias".into(),
        Tensor::new(&[marker; 32], &candle_core::Device::Cpu).unwrap(),
    );
    write_with(&path, &t, model.config());
    let mut bytes = std::fs::read(&path).unwrap();
    let (from, to) = (marker.to_le_bytes(), f32::NAN.to_le_bytes());
    let mut patched = 0;
    for i in 0..bytes.len() - 3 {
        if bytes[i..i + 4] == from {
            bytes[i..i + 4].copy_from_slice(&to);
            patched += 1;
        }
    }
    assert_eq!(patched, 32);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        TalkingHeadModel::load(&path),
        Err(ModelError::BadTensor { .. })
    ));
}

#[test]
fn truncated_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    TalkingHeadModel::random(small(), 5)
        .unwrap()
        .save(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0usize, 4, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = TalkingHeadModel::load(&path).unwrap_err();
        assert!(
            matches!(err, ModelError::Corrupt { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(err.to_string().contains("m.safetensors"));
    }
}

#[test]
fn garbage_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.safetensors");
    std::fs::write(&path, b"this is not a checkpoint at all, just text").unwrap();
    assert!(matches!(
        TalkingHeadModel::load(&path),
        Err(ModelError::Corrupt { .. })
    ));
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        TalkingHeadModel::load(&missing),
        Err(ModelError::Io { .. })
    ));
}

fn rewrite_metadata(
    path: &Path,
    edit: impl FnOnce(&mut std::collections::HashMap<String, String>),
) {
    // Re-serialise the same tensors with edited metadata.
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    edit(&mut meta);
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    let out = safetensors::serialize(tensors, Some(meta)).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn wrong_version_foreign_format_and_bad_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();

    model.save(&path).unwrap();
    rewrite_metadata(&path, |m| {
        m.insert("format_version".into(), "999".into());
    });
    assert!(matches!(
        TalkingHeadModel::load(&path),
        Err(ModelError::UnsupportedVersion { .. })
    ));

    model.save(&path).unwrap();
    rewrite_metadata(&path, |m| {
        m.remove("format");
    });
    assert!(matches!(
        TalkingHeadModel::load(&path),
        Err(ModelError::NotACheckpoint { .. })
    ));

    model.save(&path).unwrap();
    rewrite_metadata(&path, |m| {
        m.insert("config".into(), "{not json".into());
    });
    match TalkingHeadModel::load(&path) {
        Err(ModelError::BadMetadata { key, .. }) => assert_eq!(key, "config"),
        other => panic!("{other:?}"),
    }

    model.save(&path).unwrap();
    rewrite_metadata(&path, |m| {
        m.insert("channels".into(), "[\"jawOpen\"]".into());
    });
    match TalkingHeadModel::load(&path) {
        Err(ModelError::BadMetadata { key, .. }) => assert_eq!(key, "channels"),
        other => panic!("{other:?}"),
    }

    model.save(&path).unwrap();
    rewrite_metadata(&path, |m| {
        m.remove("motion_norm");
    });
    match TalkingHeadModel::load(&path) {
        Err(ModelError::BadMetadata { key, reason, .. }) => {
            assert_eq!(key, "motion_norm");
            assert!(reason.contains("missing"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn output_calibration_round_trips_and_maps_only_the_emitted_frames() {
    use bevy_talking_head::model::{ChannelMap, OutputCalibration};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cal.safetensors");
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let style = model.config().styles[0].clone();
    let mut cal = OutputCalibration::identity(&style);
    // jawOpen (index 17 in the canonical order): 0..0.2 -> 0..0.1, then 0.2..0.6 -> 0.1..0.9.
    cal.channels.push(ChannelMap {
        channel: "jawOpen".into(),
        from: vec![0.0, 0.2, 0.6],
        to: vec![0.0, 0.1, 0.9],
    });
    let jaw = bevy_talking_head::rig::arkit::Blendshape::JawOpen.index();
    let calibrated = model.with_calibration(cal.clone()).unwrap();
    calibrated.save(&path).unwrap();
    let loaded = TalkingHeadModel::load(&path).unwrap();
    assert_eq!(loaded.config().calibration, vec![cal.clone()]);
    let (raw, mapped) = (run(&model), run(&loaded));
    let expect = |v: f32| -> f32 {
        let m = cal.channels[0].map(v);
        let by_hand = if v <= 0.2 {
            v * 0.5
        } else if v <= 0.6 {
            0.1 + (v - 0.2) * 2.0
        } else {
            0.9 + (v - 0.6)
        };
        assert!(
            (m - by_hand.clamp(0.0, 1.0)).abs() < 1e-6,
            "{v}: {m} vs {by_hand}"
        );
        m
    };
    for (r, m) in raw.iter().zip(&mapped) {
        // The history the decoder sees is the raw output, so every frame is
        // exactly the map of the uncalibrated frame.
        assert_eq!(m[jaw], expect(r[jaw]));
        for c in (0..52).filter(|&c| c != jaw) {
            assert_eq!(m[c], r[c]);
        }
    }
    // Replacing the calibration of a style keeps one per style.
    let again = loaded
        .with_calibration(OutputCalibration::identity(&style))
        .unwrap();
    assert_eq!(again.config().calibration.len(), 1);
    assert_eq!(run(&again), raw);
}

#[test]
fn bad_output_calibrations_are_refused() {
    use bevy_talking_head::model::{ChannelMap, OutputCalibration};
    let model = TalkingHeadModel::random(small(), 5).unwrap();
    let unknown = OutputCalibration::identity("no-such-style");
    assert!(matches!(
        model.with_calibration(unknown),
        Err(ModelError::InvalidConfig(m)) if m.contains("no-such-style")
    ));
    let style = model.config().styles[0].clone();
    let with = |channel: &str, from: Vec<f32>, to: Vec<f32>| {
        let mut c = OutputCalibration::identity(&style);
        c.channels.push(ChannelMap {
            channel: channel.into(),
            from,
            to,
        });
        model.with_calibration(c)
    };
    assert!(with("jawOpen", vec![0.0, 1.0], vec![0.0, 1.0]).is_ok());
    assert!(with("jawOpen", vec![0.0, f32::NAN], vec![0.0, 1.0]).is_err());
    assert!(with("jawOpen", vec![0.5, 0.5], vec![0.0, 1.0]).is_err());
    assert!(with("jawOpen", vec![0.0, 1.0], vec![1.0, 0.0]).is_err());
    assert!(with("jawOpen", vec![0.0, 1.0], vec![0.0]).is_err());
    assert!(with("jawOpen", vec![0.0, 2.0], vec![0.0, 1.0]).is_err());
    assert!(matches!(
        with("notABlendshape", vec![0.0, 1.0], vec![0.0, 1.0]),
        Err(ModelError::InvalidConfig(m)) if m.contains("notABlendshape")
    ));
    let mut twice = OutputCalibration::identity(&style);
    for _ in 0..2 {
        twice.channels.push(ChannelMap {
            channel: "jawOpen".into(),
            from: vec![0.0, 1.0],
            to: vec![0.0, 1.0],
        });
    }
    assert!(model.with_calibration(twice).is_err());
}
