//! End-to-end tests of the `talking-head` binary: `bake` on WAV files of
//! every kind (rates, channel counts, sample formats, NaN/Inf, empty, one
//! sample, silence, garbage), several files into a directory, argument and
//! checkpoint errors (untrained, missing default model, corrupt file), the
//! teacher sampler, `info --json`, `bench`'s JSON summary and `calibrate` on
//! the shared FACEGOOD recordings.
//!
//! No trained model exists in the repository yet, so every test writes a
//! small random checkpoint and passes `--model PATH --allow-untrained`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hound::{SampleFormat, WavSpec, WavWriter};
use talking_head_core::features::FeatureNorm;
use talking_head_core::model::{
    ModelConfig, MotionNorm, Provenance, Sampler, TalkingHeadModel, save_checkpoint,
};
use talking_head_core::rig::{LIVE_LINK_FACE_NAMES, LiveLinkFaceTake, MOUTH_CHANNELS};

const EXE: &str = env!("CARGO_BIN_EXE_talking-head");

fn small_config() -> ModelConfig {
    ModelConfig::tiny()
}

/// Writes a small random (untrained) checkpoint with student and teacher.
fn write_model(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("random-{seed}.safetensors"));
    TalkingHeadModel::random(small_config(), seed)
        .expect("random model")
        .save(&path)
        .expect("save checkpoint");
    path
}

/// A speech-like signal: voiced harmonics under a 3 Hz syllable envelope,
/// `channels` interleaved (slightly different per channel).
fn speechy(rate: u32, secs: f64, channels: u16) -> Vec<f32> {
    let n = (f64::from(rate) * secs).round() as usize;
    let mut out = Vec::with_capacity(n * usize::from(channels));
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let env = (t * 2.0 * std::f64::consts::PI * 3.0).sin().max(0.0);
        let f0 = 120.0 + 20.0 * (t * 1.3).sin();
        let v: f64 = (1..8)
            .map(|h| (t * 2.0 * std::f64::consts::PI * f0 * f64::from(h)).sin() / f64::from(h))
            .sum();
        for c in 0..channels {
            out.push((0.3 * env * v * (1.0 - 0.2 * f64::from(c))) as f32);
        }
    }
    out
}

fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut w = WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: SampleFormat::Float,
    };
    let mut w = WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        w.write_sample(s).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

fn run(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env_remove("TALKING_HEAD_MODEL")
        .output()
        .expect("spawn talking-head")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `talking-head bake --model MODEL --allow-untrained --jobs 1 EXTRA... INPUTS... -o OUT`.
fn bake(model: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "bake",
        "--model",
        p(model),
        "--allow-untrained",
        "--jobs",
        "1",
    ];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(|i| p(i)));
    args.extend(["--output", p(out)]);
    run(&args)
}

fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "talking-head failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

fn assert_failure(o: &Output) {
    assert!(
        !o.status.success(),
        "talking-head should have failed:\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Reads a baked CSV and checks row count (`ceil(duration * fps)` ± 1) and
/// that every weight is finite and in [0, 1].
fn check_take(csv: &Path, duration_secs: f64, fps: f64) -> LiveLinkFaceTake {
    let take = LiveLinkFaceTake::read_file(csv).expect("baked CSV parses");
    let expected = (duration_secs * fps).ceil().max(1.0) as i64;
    let rows = take.frames.len() as i64;
    assert!(
        (rows - expected).abs() <= 1,
        "{}: {rows} rows, expected {expected} ± 1 ({duration_secs} s at {fps} fps)",
        csv.display()
    );
    assert!(take.untracked.is_empty());
    for (i, f) in take.frames.iter().enumerate() {
        for (c, &w) in f.blendshapes.iter().enumerate() {
            assert!(
                w.is_finite() && (0.0..=1.0).contains(&w),
                "{}: row {i}, channel {} = {w}",
                csv.display(),
                LIVE_LINK_FACE_NAMES[c]
            );
        }
    }
    take
}

fn header(csv: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).expect("read CSV");
    text.lines()
        .next()
        .expect("header line")
        .split(',')
        .map(str::to_string)
        .collect()
}

#[test]
fn bake_speech_at_30_and_60_fps() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 1);
    let wav = dir.path().join("speech.wav");
    let secs = 1.3;
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, secs, 1));

    // Default --fps is 30.
    let out30 = dir.path().join("speech30.csv");
    let o = bake(&model, &[&wav], &out30, &[]);
    assert_success(&o);
    assert!(stdout(&o).contains(p(&out30)), "stdout names the output");
    let take30 = check_take(&out30, secs, 30.0);

    let out60 = dir.path().join("speech60.csv");
    assert_success(&bake(&model, &[&wav], &out60, &["--fps", "60"]));
    let take60 = check_take(&out60, secs, 60.0);
    assert!(take60.frames.len() > take30.frames.len());

    for csv in [&out30, &out60] {
        let text = std::fs::read_to_string(csv).unwrap();
        assert!(
            text.starts_with("Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft"),
            "header: {}",
            text.lines().next().unwrap_or_default()
        );
        let h = header(csv);
        assert_eq!(&h[2..2 + 52], &LIVE_LINK_FACE_NAMES[..]);
    }
    // Speech with an untrained model still moves the face somewhere.
    let moving = take30
        .frames
        .iter()
        .any(|f| f.blendshapes.iter().any(|&w| w > 0.0));
    assert!(moving, "all-zero animation for speech");
}

#[test]
fn bake_nonfinite_samples_warns_with_count() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 2);
    let wav = dir.path().join("nan.wav");
    let mut pcm = speechy(16_000, 1.0, 1);
    let bad = [
        (100, f32::NAN),
        (2_000, f32::INFINITY),
        (2_001, f32::NEG_INFINITY),
        (8_000, f32::NAN),
        (8_001, f32::NAN),
        (12_345, f32::INFINITY),
        (15_999, f32::NEG_INFINITY),
    ];
    for (i, v) in bad {
        pcm[i] = v;
    }
    write_wav_f32(&wav, 16_000, 1, &pcm);
    let out = dir.path().join("nan.csv");
    let o = bake(&model, &[&wav], &out, &[]);
    assert_success(&o);
    let err = stderr(&o);
    assert!(err.contains("non-finite"), "no warning:\n{err}");
    assert!(
        err.contains(&format!("{} non-finite samples", bad.len())),
        "warning lacks the count {}:\n{err}",
        bad.len()
    );
    assert!(err.contains("nan.wav"), "warning names the file:\n{err}");
    check_take(&out, 1.0, 30.0);
}

#[test]
fn bake_empty_wav_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 3);
    let wav = dir.path().join("empty.wav");
    write_wav_i16(&wav, 16_000, 1, &[]);
    let out = dir.path().join("empty.csv");
    let o = bake(&model, &[&wav], &out, &[]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains(p(&wav)),
        "stderr does not name the file:\n{err}"
    );
    assert!(!out.exists(), "no CSV for an empty input");
}

#[test]
fn bake_one_sample_wav_gives_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 4);
    let wav = dir.path().join("one.wav");
    write_wav_i16(&wav, 16_000, 1, &[0.25]);
    let out = dir.path().join("one.csv");
    assert_success(&bake(&model, &[&wav], &out, &[]));
    let take = check_take(&out, 1.0 / 16_000.0, 30.0);
    assert_eq!(take.frames.len(), 1);
}

#[test]
fn bake_8khz_stereo_i16() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 5);
    let wav = dir.path().join("stereo8k.wav");
    let secs = 1.5;
    write_wav_i16(&wav, 8_000, 2, &speechy(8_000, secs, 2));
    let out = dir.path().join("stereo8k.csv");
    assert_success(&bake(&model, &[&wav], &out, &[]));
    check_take(&out, secs, 30.0);
}

#[test]
fn bake_96khz_mono() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 6);
    let wav = dir.path().join("mono96k.wav");
    let secs = 1.0;
    write_wav_f32(&wav, 96_000, 1, &speechy(96_000, secs, 1));
    let out = dir.path().join("mono96k.csv");
    assert_success(&bake(&model, &[&wav], &out, &[]));
    check_take(&out, secs, 30.0);
}

#[test]
fn bake_digital_silence_keeps_the_mouth_closed() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 7);
    let wav = dir.path().join("silence.wav");
    let secs = 2.0;
    write_wav_i16(&wav, 16_000, 1, &vec![0.0; 32_000]);
    let out = dir.path().join("silence.csv");
    assert_success(&bake(&model, &[&wav], &out, &[]));
    let take = check_take(&out, secs, 30.0);
    for (i, f) in take.frames.iter().enumerate() {
        for &c in MOUTH_CHANNELS.iter() {
            assert_eq!(
                f.blendshapes[c], 0.0,
                "row {i}: mouth channel {} is {} in silence",
                LIVE_LINK_FACE_NAMES[c], f.blendshapes[c]
            );
        }
    }
}

#[test]
fn bake_garbage_wav_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 8);
    let wav = dir.path().join("garbage.wav");
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&wav, junk).unwrap();
    let out = dir.path().join("garbage.csv");
    let o = bake(&model, &[&wav], &out, &[]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains(p(&wav)),
        "stderr does not name the file:\n{err}"
    );
    assert!(!out.exists());
}

#[test]
fn bake_several_files_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 9);
    let specs = [("alpha", 0.6), ("beta", 1.1), ("gamma", 0.3)];
    let inputs: Vec<PathBuf> = specs
        .iter()
        .map(|(stem, secs)| {
            let path = dir.path().join(format!("{stem}.wav"));
            write_wav_i16(&path, 16_000, 1, &speechy(16_000, *secs, 1));
            path
        })
        .collect();
    let out_dir = dir.path().join("takes");
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut args = vec!["bake", "--model", p(&model), "--allow-untrained"];
    args.extend(refs.iter().map(|i| p(i)));
    args.extend(["--output", p(&out_dir)]);
    let o = run(&args);
    assert_success(&o);
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["alpha.csv", "beta.csv", "gamma.csv"]);
    for (stem, secs) in specs {
        check_take(&out_dir.join(format!("{stem}.csv")), secs, 30.0);
    }
    assert_eq!(stdout(&o).lines().count(), specs.len());
}

#[test]
fn bake_same_stem_inputs_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 17);
    let a = dir.path().join("x").join("take.wav");
    let b = dir.path().join("y").join("take.wav");
    for (path, secs) in [(&a, 0.5), (&b, 1.0)] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_wav_i16(path, 16_000, 1, &speechy(16_000, secs, 1));
    }
    let out_dir = dir.path().join("takes");
    let o = bake(&model, &[&a, &b], &out_dir, &[]);
    // Either refuse the clash or write two distinct files; never lose a take
    // while reporting success.
    if o.status.success() {
        let n = std::fs::read_dir(&out_dir).unwrap().count();
        assert_eq!(
            n,
            2,
            "two inputs, exit 0, but {n} CSV written:\n{}",
            stdout(&o)
        );
    }
}

#[test]
fn bake_unsupported_sample_rate_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 18);
    let wav = dir.path().join("hires.wav");
    write_wav_i16(&wav, 192_000, 1, &speechy(192_000, 0.1, 1));
    let out = dir.path().join("hires.csv");
    let o = bake(&model, &[&wav], &out, &[]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains(p(&wav)),
        "stderr does not name the file:\n{err}"
    );
    assert!(
        err.contains("192000"),
        "stderr does not give the rate:\n{err}"
    );
}

#[test]
fn bake_rejects_bad_emotion_and_style() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 10);
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let out = dir.path().join("speech.csv");

    let o = bake(&model, &[&wav], &out, &["--emotion", "happy=2"]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains("happy=2") && err.contains("[0, 1]"),
        "unclear emotion error:\n{err}"
    );

    let o = bake(&model, &[&wav], &out, &["--emotion", "elated=0.5"]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(err.contains("unknown emotion `elated`"), "{err}");

    let o = bake(&model, &[&wav], &out, &["--style", "nosuch"]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains("unknown style `nosuch`") && err.contains("phonetic"),
        "unclear style error:\n{err}"
    );
    assert!(!out.exists());

    // The valid forms of both options work.
    let o = bake(
        &model,
        &[&wav],
        &out,
        &[
            "--emotion",
            "happy=0.8,surprised=0.2",
            "--style",
            "FaceGood",
        ],
    );
    assert_success(&o);
    check_take(&out, 0.5, 30.0);
}

/// Sampler and frame-rate settings that would give silent garbage or a
/// stall, and an output that is one of the inputs, are refused before any
/// work; an empty `$TALKING_HEAD_MODEL` counts as unset.
#[test]
fn bake_refuses_bad_settings_and_never_overwrites_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 10);
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let original = std::fs::read(&wav).unwrap();
    let out = dir.path().join("speech.csv");
    for (extra, says) in [
        (&["--steps", "0"][..], "--steps"),
        (&["--steps", "100000"][..], "--steps"),
        (&["--steps", "4", "--guidance", "NaN"][..], "--guidance"),
        (&["--steps", "4", "--guidance", "inf"][..], "--guidance"),
        (&["--fps", "0.5"][..], "--fps"),
        (&["--fps", "1000"][..], "--fps"),
        (&["--emotion", "happy=0.2,happy=0.3"][..], "twice"),
    ] {
        let o = bake(&model, &[&wav], &out, extra);
        assert_failure(&o);
        let err = stderr(&o);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} wrote an output");
    }
    let o = bake(&model, &[&wav], &wav, &[]);
    assert_failure(&o);
    assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    // A glTF written under a .csv name, and a file where a directory of
    // CSVs is needed.
    let head = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/avatars/mh_arkit_head.glb");
    let o = bake(&model, &[&wav], &out, &["--avatar", p(&head)]);
    assert_failure(&o);
    assert!(stderr(&o).contains(".glb or .vrm"), "{}", stderr(&o));
    let wav2 = dir.path().join("other.wav");
    std::fs::copy(&wav, &wav2).unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, b"keep").unwrap();
    let o = bake(&model, &[&wav, &wav2], &file, &[]);
    assert_failure(&o);
    assert!(stderr(&o).contains("is a file"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    assert_eq!(
        std::fs::read(&wav).unwrap(),
        original,
        "the input was overwritten"
    );
    // `TALKING_HEAD_MODEL=` (empty) falls back to the shipped model.
    let o = Command::new(EXE)
        .args(["bake", p(&wav), "--jobs", "1", "--output", p(&out)])
        .env("TALKING_HEAD_MODEL", "")
        .output()
        .unwrap();
    assert_success(&o);
    check_take(&out, 0.5, 30.0);
}

/// Corpus sizes that are not finite non-negative numbers are refused
/// before any work (they used to become 0 silently).
#[test]
fn corpus_build_refuses_nan_and_negative_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    for (flag, v) in [
        ("--tts-minutes", "NaN"),
        ("--flite-female-minutes", "-1"),
        ("--augment", "inf"),
    ] {
        let o = run(&[
            "corpus",
            "build",
            "--out",
            p(&out),
            "--data",
            p(dir.path()),
            &format!("{flag}={v}"),
        ]);
        assert_failure(&o);
        assert!(stderr(&o).contains(flag), "{flag}: {}", stderr(&o));
        assert!(!out.exists());
    }
}

#[test]
fn bake_refuses_untrained_checkpoint_without_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 11);
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let out = dir.path().join("speech.csv");
    let o = run(&["bake", "--model", p(&model), p(&wav), "--output", p(&out)]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(err.contains("untrained"), "{err}");
    assert!(
        err.contains(p(&model)),
        "error names the checkpoint:\n{err}"
    );
    assert!(!out.exists());
}

#[test]
fn bake_accepts_trained_checkpoint_without_flag() {
    let dir = tempfile::tempdir().unwrap();
    let m = TalkingHeadModel::random(small_config(), 12).unwrap();
    let model = dir.path().join("trained.safetensors");
    save_checkpoint(
        &model,
        m.tensors(),
        m.config(),
        &FeatureNorm::identity(m.config().mel.n_mels),
        &MotionNorm::default(),
        &Provenance {
            trained: true,
            description: "test fixture marked trained".into(),
        },
    )
    .unwrap();
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let out = dir.path().join("speech.csv");
    let o = run(&["bake", "--model", p(&model), p(&wav), "--output", p(&out)]);
    assert_success(&o);
    check_take(&out, 0.5, 30.0);
}

#[test]
fn bake_without_model_names_the_path_and_how_to_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let missing = dir.path().join("does-not-exist.safetensors");
    let out = dir.path().join("speech.csv");
    let o = Command::new(EXE)
        .args(["bake", p(&wav), "--output", p(&out), "--allow-untrained"])
        .env("TALKING_HEAD_MODEL", &missing)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_failure(&o);
    let err = stderr(&o);
    assert!(err.contains("no model at"), "{err}");
    assert!(err.contains(p(&missing)), "error names the path:\n{err}");
    assert!(err.contains("--model"), "error says how to proceed:\n{err}");
}

#[test]
fn bake_with_missing_explicit_model_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let missing = dir.path().join("nope.safetensors");
    let out = dir.path().join("speech.csv");
    let o = bake(&missing, &[&wav], &out, &[]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains(p(&missing)) && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn bake_with_truncated_checkpoint_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_model(dir.path(), 13);
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("truncated.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let out = dir.path().join("speech.csv");
    let o = bake(&bad, &[&wav], &out, &[]);
    assert_failure(&o);
    let err = stderr(&o);
    assert!(
        err.contains(p(&bad)),
        "error does not name the file:\n{err}"
    );
    assert!(err.contains("corrupt or truncated"), "{err}");
    assert!(!out.exists());
}

#[test]
fn bake_with_teacher_steps() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 14);
    let wav = dir.path().join("speech.wav");
    let secs = 0.8;
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, secs, 1));
    let student = dir.path().join("student.csv");
    assert_success(&bake(&model, &[&wav], &student, &[]));
    let teacher = dir.path().join("teacher.csv");
    assert_success(&bake(&model, &[&wav], &teacher, &["--steps", "4"]));
    let t = check_take(&teacher, secs, 30.0);
    let s = check_take(&student, secs, 30.0);
    assert_eq!(t.frames.len(), s.frames.len());
    assert_ne!(
        t.weights(),
        s.weights(),
        "teacher and student gave one output"
    );
    let guided = dir.path().join("teacher-guided.csv");
    assert_success(&bake(
        &model,
        &[&wav],
        &guided,
        &["--steps", "4", "--guidance", "2.0", "--emotion", "sad=1"],
    ));
    check_take(&guided, secs, 30.0);
}

#[test]
fn info_json_reports_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 15);
    let m = TalkingHeadModel::load(&model).unwrap();
    let o = run(&["info", "--json", p(&model)]);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("info --json is JSON");
    assert_eq!(
        v["student_parameters"].as_u64(),
        Some(m.parameter_count(Some(Sampler::Student)) as u64)
    );
    assert_eq!(
        v["teacher_parameters"].as_u64(),
        Some(m.parameter_count(Some(Sampler::Teacher {
            steps: 1,
            guidance: 1.0
        })) as u64)
    );
    assert!(v["student_parameters"].as_u64().unwrap() > 0);
    assert_eq!(
        v["file_bytes"].as_u64(),
        Some(std::fs::metadata(&model).unwrap().len())
    );
    assert_eq!(v["config"]["d_model"].as_u64(), Some(32));
    assert_eq!(v["config"]["n_layers"].as_u64(), Some(1));
    assert_eq!(v["provenance"]["trained"].as_bool(), Some(false));
    assert!(v["algorithmic_latency_ms"].as_f64().unwrap() > 0.0);

    // The text form shows the same counts.
    let o = run(&["info", p(&model)]);
    assert_success(&o);
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "student params:   {}",
            m.parameter_count(Some(Sampler::Student))
        )),
        "{text}"
    );
}

/// A reader that closes the pipe early (`talking-head info m | head -1`)
/// ends the process quietly: no "failed printing to stdout" panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 17);
    let mut child = Command::new(EXE)
        .args(["info", p(&model)])
        .env_remove("TALKING_HEAD_MODEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the model is loaded and anything printed.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bench_prints_json_summary_last() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 16);
    let wav = dir.path().join("short.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 0.5, 1));
    let o = run(&[
        "bench",
        "--model",
        p(&model),
        "--iters",
        "5",
        "--file",
        p(&wav),
    ]);
    assert_success(&o);
    let out = stdout(&o);
    let last = out.lines().last().expect("bench printed nothing");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    let obj = v.as_object().expect("JSON object");
    for key in [
        "step_ms_median",
        "teacher_student_ratio",
        "model_bytes",
        "realtime_factor",
    ] {
        assert!(obj.contains_key(key), "missing `{key}` in {last}");
    }
    for b in ["1", "8", "32"] {
        let ms = v["step_ms_median"][b].as_f64();
        assert!(
            ms.is_some_and(|ms| ms.is_finite() && ms >= 0.0),
            "step_ms_median[{b}] = {:?}",
            v["step_ms_median"][b]
        );
    }
    assert!(v["teacher_student_ratio"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(
        v["model_bytes"].as_u64(),
        Some(std::fs::metadata(&model).unwrap().len())
    );
    assert!(v["realtime_factor"].as_f64().is_some_and(|r| r > 0.0));
    let state = v["state_bytes_per_session"].as_u64().expect("state bytes");
    let live = v["live_session_bytes"]
        .as_u64()
        .expect("live session bytes");
    assert!(state > 0 && live >= state, "state {state}, live {live}");
}

/// `convert --f16` halves the file; the model loads and animates the same
/// speech within f16 rounding; `convert` without it writes f32 again.
#[test]
fn convert_to_f16_halves_the_file_and_animates_alike() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 21);
    let half = dir.path().join("half.safetensors");
    let back = dir.path().join("back.safetensors");
    let o = run(&["convert", p(&model), p(&half), "--f16"]);
    assert_success(&o);
    assert!(stdout(&o).contains("f16"), "{}", stdout(&o));
    let size = |f: &Path| std::fs::metadata(f).unwrap().len() as f64;
    assert!(
        size(&half) < 0.6 * size(&model),
        "{} vs {}",
        size(&half),
        size(&model)
    );
    assert_success(&run(&["convert", p(&half), p(&back)]));
    assert!((size(&back) - size(&model)).abs() < 0.01 * size(&model));
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 1.0, 1));
    let (a, b) = (dir.path().join("f32.csv"), dir.path().join("f16.csv"));
    assert_success(&bake(&model, &[&wav], &a, &["--no-upper-face"]));
    assert_success(&bake(&half, &[&wav], &b, &["--no-upper-face"]));
    let (ta, tb) = (check_take(&a, 1.0, 30.0), check_take(&b, 1.0, 30.0));
    assert_eq!(ta.frames.len(), tb.frames.len());
    let worst = ta
        .frames
        .iter()
        .zip(&tb.frames)
        .flat_map(|(x, y)| {
            x.blendshapes
                .iter()
                .zip(&y.blendshapes)
                .map(|(u, v)| (u - v).abs())
        })
        .fold(0f32, f32::max);
    assert!(worst < 0.05, "f16 weights moved a channel by {worst}");
    let o = run(&[
        "convert",
        p(&dir.path().join("missing.safetensors")),
        p(&back),
    ]);
    assert!(!o.status.success(), "a missing input is an error");
}

/// `bake` adds the plugin's upper-face layer (seeded): blinks and gaze move
/// in the CSV; `--no-upper-face` leaves the model's output alone.
#[test]
fn bake_includes_the_upper_face_layer_unless_asked_not_to() {
    use talking_head_core::rig::Blendshape;
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 4);
    let wav = dir.path().join("speech.wav");
    write_wav_i16(&wav, 16_000, 1, &speechy(16_000, 20.0, 1));
    let with = dir.path().join("with.csv");
    let without = dir.path().join("without.csv");
    assert_success(&bake(&model, &[&wav], &with, &[]));
    assert_success(&bake(&model, &[&wav], &without, &["--no-upper-face"]));
    let a = check_take(&with, 20.0, 30.0);
    let b = check_take(&without, 20.0, 30.0);
    let blink = Blendshape::EyeBlinkLeft.index();
    let max_blink = a
        .frames
        .iter()
        .map(|f| f.blendshapes[blink])
        .fold(0f32, f32::max);
    assert!(
        max_blink > 0.5,
        "no blink in 20 s: max eyeBlinkLeft {max_blink}"
    );
    let gaze = Blendshape::EyeLookOutLeft.index();
    let differs = a
        .frames
        .iter()
        .zip(&b.frames)
        .any(|(x, y)| (x.blendshapes[gaze] - y.blendshapes[gaze]).abs() > 1e-3);
    assert!(differs, "the layer's gaze is missing");
    // The mouth is the model's in both.
    let jaw = Blendshape::JawOpen.index();
    for (x, y) in a.frames.iter().zip(&b.frames) {
        assert_eq!(x.blendshapes[jaw], y.blendshapes[jaw]);
    }
}

/// `bake --avatar`: two lines into the demo head give a .glb with two
/// animations, each a LINEAR `weights` channel on the head node whose
/// output holds frames × targets values; the file stays a valid GLB with
/// its mesh data. A file that is not a glTF is refused with a clear error.
#[test]
fn bake_into_an_avatar_glb() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 3);
    let a = dir.path().join("line_a.wav");
    let b = dir.path().join("line_b.wav");
    write_wav_i16(&a, 16_000, 1, &speechy(16_000, 1.0, 1));
    write_wav_i16(&b, 22_050, 2, &speechy(22_050, 0.5, 2));
    let head = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/avatars/mh_arkit_head.glb");
    let out = dir.path().join("head_lines.glb");
    let o = bake(
        &model,
        &[&a, &b],
        &out,
        &["--avatar", p(&head), "--fps", "25"],
    );
    assert_success(&o);
    assert!(
        stderr(&o).contains("52 of 67 morph targets animated"),
        "{}",
        stderr(&o)
    );
    let bytes = std::fs::read(&out).unwrap();
    let glb = gltf::Glb::from_slice(&bytes).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&glb.json).unwrap();
    let anims = doc["animations"].as_array().unwrap();
    let names: Vec<&str> = anims.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["line_a", "line_b"]);
    for (anim, secs) in anims.iter().zip([1.0, 0.5]) {
        let ch = &anim["channels"][0];
        assert_eq!(ch["target"]["path"], "weights");
        assert_eq!(ch["target"]["node"], 0);
        let s = &anim["samplers"][ch["sampler"].as_u64().unwrap() as usize];
        assert_eq!(s["interpolation"], "LINEAR");
        let input = &doc["accessors"][s["input"].as_u64().unwrap() as usize];
        let output = &doc["accessors"][s["output"].as_u64().unwrap() as usize];
        let frames = input["count"].as_u64().unwrap();
        assert_eq!(frames, (secs * 25.0f64).ceil() as u64);
        assert_eq!(output["count"].as_u64().unwrap(), frames * 67);
    }
    let bin = glb.bin.unwrap();
    assert_eq!(
        doc["buffers"][0]["byteLength"].as_u64().unwrap(),
        bin.len() as u64
    );

    let not_gltf = dir.path().join("not.glb");
    std::fs::write(&not_gltf, b"definitely not a glTF").unwrap();
    let o = bake(
        &model,
        &[&a],
        &dir.path().join("x.glb"),
        &["--avatar", p(&not_gltf)],
    );
    assert_failure(&o);
    assert!(
        stderr(&o).contains("not a valid glTF binary"),
        "{}",
        stderr(&o)
    );
}

/// The shared data directory (FACEGOOD recordings), if this machine has it.
fn shared_data() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    d.join("facegood").is_dir().then_some(d)
}

#[test]
fn calibrate_writes_a_calibrated_checkpoint_and_refuses_bad_requests() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data/facegood is not on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 21);
    let out = dir.path().join("calibrated.safetensors");
    let calibrate = |extra: &[&str]| {
        let mut args = vec![
            "calibrate",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--out",
            p(&out),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = calibrate(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("jawOpen"), "{}", stdout(&o));
    let m = TalkingHeadModel::load(&out).unwrap();
    let cal = &m.config().calibration;
    assert_eq!(cal.len(), 1);
    assert_eq!(cal[0].style, "facegood");
    assert!(
        cal[0].channels.iter().any(|c| c.channel == "jawOpen"),
        "{cal:?}"
    );
    // The validation recordings stay out of the fit by default.
    assert!(stderr(&o).contains("1114_2_01") && !stderr(&o).contains("1114_2_05"));
    // Unknown style, and nothing left to fit on.
    let o = calibrate(&["--style", "nope"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    let all = "1114_2_01,1114_2_02,1114_2_03,1114_2_04,1114_2_05,1114_3_15";
    let o = calibrate(&["--exclude", all]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no FACEGOOD training recordings"),
        "{}",
        stderr(&o)
    );
    // Channels the animator does not use leave nothing to calibrate: an
    // error, and no file that would drop an existing calibration.
    let before = std::fs::read(&out).unwrap();
    let o = calibrate(&["--channels", "eyeBlinkLeft"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no channel to calibrate"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the output was rewritten"
    );
    // A typo in --exclude is named, not silently fitted on.
    let o = calibrate(&["--exclude", "1114_2_5"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`1114_2_5`"), "{}", stderr(&o));
    // The anchored line on every recording and another retarget map; `info`
    // shows the two knots.
    let retarget = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/retarget-v51.json");
    let o = calibrate(&[
        "--method",
        "linear-anchored",
        "--channels",
        "jawOpen",
        "--exclude",
        "none",
        "--facegood-retarget",
        p(&retarget),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1114_2_05"), "{}", stderr(&o));
    let m = TalkingHeadModel::load(&out).unwrap();
    let cal = &m.config().calibration[0];
    assert_eq!(cal.channels.len(), 1);
    assert_eq!(cal.channels[0].from.len(), 2);
    let o = run(&["info", p(&out)]);
    assert!(
        stdout(&o).contains("calibration:      style facegood: jawOpen ["),
        "{}",
        stdout(&o)
    );
    let o = calibrate(&["--facegood-retarget", "missing.json"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.json"), "{}", stderr(&o));
    // The input's storage is kept: f32 stays f32, an f16 checkpoint stays
    // f16 with exactly its weights (no second `convert` needed).
    assert!(!TalkingHeadModel::load(&out).unwrap().matrices_in_f16());
    let half = dir.path().join("half.safetensors");
    let o = run(&["convert", p(&model), p(&half), "--f16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let half_cal = dir.path().join("half_cal.safetensors");
    let o = run(&[
        "calibrate",
        "--model",
        p(&half),
        "--data",
        p(&data),
        "--out",
        p(&half_cal),
        "--method",
        "linear-anchored",
        "--channels",
        "jawOpen",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("f16, as the input"), "{}", stdout(&o));
    let (a, b) = (
        TalkingHeadModel::load(&half).unwrap(),
        TalkingHeadModel::load(&half_cal).unwrap(),
    );
    assert!(b.matrices_in_f16() && b.config().calibration.len() == 1);
    for (k, t) in a.tensors() {
        let u = &b.tensors()[k];
        let d = (t - u).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{k}");
    }
    assert!(
        std::fs::metadata(&half_cal).unwrap().len()
            < std::fs::metadata(&out).unwrap().len() * 3 / 4
    );
}
