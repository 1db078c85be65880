//! The truth-first report of `talking-head eval`: section 1 (real animator
//! truth on held-out FACEGOOD recordings), section 2 (articulation on
//! held-out synthetic voices with exact phones) and the emotion section
//! (FACS signatures on held-out voices, guidance sweep, rest face). The
//! metric definitions live in [`crate::truth`]; section 3 (labeler
//! imitation, a training diagnostic) is [`crate::eval`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::truth::{
    Articulation, ArticulationCounts, LoudnessBaseline, Prediction, Ridge, TRUTH_FPS, TruthClip,
    TruthMetrics, resample_at_frame_times, truth_metrics,
};
use crate::tts::{FLITE_HELDOUT, TtsEngine, TtsVoice};
use talking_head_core::audio::AudioFormat;
use talking_head_core::model::{EMOTION_COUNT, EMOTIONS, Sampler, TalkingHeadModel};
use talking_head_core::rig::{BLENDSHAPE_COUNT, Blendshape};
use talking_head_core::runtime::{Pcm, Session, run_to_end};

/// What the truth-first evaluation runs on.
#[derive(Clone, Debug)]
pub struct TruthEvalConfig {
    /// The shared data directory (`../shared/data`).
    pub data_dir: PathBuf,
    /// FACEGOOD recordings graded in section 1 (never trained on while the
    /// recipe is chosen).
    pub val_recordings: Vec<String>,
    /// Ridge strength.
    pub ridge_alpha: f64,
    /// Sentences spoken by each held-out voice.
    pub sentences: usize,
    /// A file of sentences, one per line; `None`: the built-in Harvard
    /// sentences (`assets/eval/sentences_en.txt`, compiled in, so `eval`
    /// runs from any directory).
    pub sentences_file: Option<PathBuf>,
    /// Held-out flite voices of section 2 and the emotion section.
    pub voices: Vec<String>,
    /// Clips of held-out speech used for the emotion section.
    pub emotion_clips: usize,
    /// Real recordings of held-out human voices for the emotion section's
    /// second table, one per speaker (LibriSpeech and multilingual speakers
    /// the corpus split of [`TruthEvalConfig::corpus_seed`] holds out,
    /// [`crate::corpus::held_out_real_speech`]); 0 leaves the table out.
    pub real_voice_clips: usize,
    /// Seed of the corpus split that decides which real speakers are held
    /// out (`corpus build --seed`, default 0; its validation share is 0.1).
    pub corpus_seed: u64,
    /// Teacher guidance scales of the emotion sweep.
    pub guidance_sweep: Vec<f32>,
    /// Parent of the scratch directories for synthesis (each evaluation
    /// makes its own inside it and removes it at the end).
    pub work_dir: PathBuf,
    /// Seed of the upper-face layer in the rest-face check.
    pub seed: u64,
    /// The phonetic labeler's settings for its baseline rows.
    pub labeler: crate::phonetic::PhoneticLabelerConfig,
    /// Where [`TruthEvalConfig::labeler`] came from (printed under the
    /// tables, e.g. "the teacher's training labels"); empty: not stated.
    pub labeler_source: String,
    /// Skip the model (baselines and labeler only: a labeler experiment).
    pub baselines_only: bool,
}

/// The built-in sentences of section 2 (Harvard sentences, public domain).
const SENTENCES_EN: &str = include_str!("../../../assets/eval/sentences_en.txt");

/// Section-1 row of the loudness fit without clipping: its Pearson r is the
/// frame log-RMS's own, the "loudness" issue 10's targets are set against.
pub const LOG_RMS_ROW: &str = "log-RMS (loudness fit, unclipped)";

impl TruthEvalConfig {
    /// Defaults over `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            val_recordings: vec!["1114_2_05".into(), "1114_3_15".into()],
            ridge_alpha: 10.0,
            sentences: 40,
            sentences_file: None,
            voices: FLITE_HELDOUT.iter().map(|v| v.to_string()).collect(),
            emotion_clips: 8,
            real_voice_clips: 8,
            corpus_seed: 0,
            guidance_sweep: vec![1.0, 1.5, 2.0, 3.0],
            work_dir: std::env::temp_dir().join("talking-head-eval"),
            seed: 0,
            labeler: Default::default(),
            labeler_source: String::new(),
            baselines_only: false,
        }
    }
}

/// One section-1 row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TruthRow {
    /// Method.
    pub method: String,
    /// Recording id, or `pooled`.
    pub clip: String,
    /// Figures.
    pub metrics: TruthMetrics,
}

/// One section-2 row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArticulationRow {
    /// Method.
    pub method: String,
    /// Figures, pooled over the held-out clips.
    pub metrics: Articulation,
}

/// One emotion's figures at intensity 1 against the neutral take.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmotionRow {
    /// Emotion name.
    pub emotion: String,
    /// Mean change of its signature channels.
    pub signature_change: f32,
    /// The largest |mean change| of a channel outside the signature
    /// (eyeLook* excluded), and that channel.
    pub off_signature: f32,
    /// The channel of `off_signature`.
    pub off_channel: String,
    /// r(jawOpen, neutral take's jawOpen).
    pub jaw_r: f32,
    /// Signature change at intensity 0.5 as a share of that at 1.
    pub half_ratio: f32,
}

/// The emotion section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EmotionReport {
    /// Student rows.
    pub rows: Vec<EmotionRow>,
    /// Mean signature change over the six emotions.
    pub mean_signature: f32,
    /// happy 0.5 + surprised 0.5: (happy signature, surprised signature) change.
    pub blend: (f32, f32),
    /// `(sampler, mean signature change)` for the teacher at each guidance
    /// scale and for the student.
    pub guidance_sweep: Vec<(String, f32)>,
    /// Rest face on 2 s of silence: the largest value of any channel but
    /// eyeBlink*/eyeLook*, and its channel, for the model alone and with the
    /// upper-face layer as the plugin combines it.
    pub rest_model: (String, f32),
    /// Same with the upper-face layer.
    pub rest_with_layer: (String, f32),
    /// Rest face on 4 s of white noise at −50 dBFS RMS (a microphone's
    /// noise floor), model with the upper-face layer driven by the frames'
    /// [`speech_activity`](talking_head_core::runtime::ExpressionFrame::speech_activity),
    /// as the plugin shows it: the largest non-blink, non-gaze channel.
    #[serde(default)]
    pub rest_noise_with_layer: (String, f32),
    /// Rest face of the model alone on a panel of 4 s noise floors
    /// ([`REST_NOISE_PANEL`]: white, pink and brown noise from −65 to
    /// −40 dBFS, one with 50 Hz hum), one row per floor. Drawn by
    /// [`crate::noise::coloured_noise`], the generator of the training's
    /// noise windows (`noise_windows`), at fixed levels and seeds.
    #[serde(default)]
    pub rest_noise_panel: Vec<NoiseFloorRow>,
    /// Held-out clips used.
    pub clips: usize,
    /// `(emotion, signature change)` on the rest face's 2 s of silence at
    /// intensity 1 against neutral: the face each emotion makes while
    /// nothing is said.
    #[serde(default)]
    pub rest_signatures: Vec<(String, f32)>,
    /// The same rows (no intensity-0.5 runs: `half_ratio` 0) on real
    /// recordings of human voices held out of training
    /// ([`TruthEvalConfig::real_voice_clips`]); empty when none were found.
    #[serde(default)]
    pub real_rows: Vec<EmotionRow>,
    /// Mean signature change of `real_rows`.
    #[serde(default)]
    pub real_mean_signature: f32,
    /// Real recordings used (one per speaker), and the seconds of audio.
    #[serde(default)]
    pub real_clips: usize,
    /// Seconds of audio in the real recordings used.
    #[serde(default)]
    pub real_secs: f32,
}

/// The rest face on one noise floor of [`REST_NOISE_PANEL`], model alone:
/// the largest non-blink, non-gaze channel over the whole 4 s (the stream
/// opening on the noise included) and after its first second (the steady
/// face on the floor).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NoiseFloorRow {
    /// The floor's name, e.g. `pink −55 dBFS`.
    pub noise: String,
    /// Largest channel and value over all frames.
    pub whole: (String, f32),
    /// Largest channel and value after the first second.
    pub steady: (String, f32),
}

/// The whole truth-first report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TruthReport {
    /// Model file.
    pub model: String,
    /// Section 1.
    pub truth: Vec<TruthRow>,
    /// Section 2.
    pub articulation: Vec<ArticulationRow>,
    /// Held-out clips in section 2.
    pub articulation_clips: usize,
    /// The flite voices of section 2 (held out of training unless the
    /// caller chose others).
    #[serde(default)]
    pub articulation_voices: Vec<String>,
    /// Where the labeler rows' settings came from
    /// ([`TruthEvalConfig::labeler_source`]).
    #[serde(default)]
    pub labeler_source: String,
    /// Section 1's recordings that the model's or the teacher's provenance
    /// lists as trained on ([`crate::dataset::facegood_recordings_seen`]):
    /// empty for a held-out evaluation; otherwise section 1 is a fit to
    /// training data, not a quality figure, and the markdown says so.
    #[serde(default)]
    pub seen_in_training: Vec<String>,
    /// Emotion section.
    pub emotion: Option<EmotionReport>,
    /// Plot curves: (clip, method, map-jaw-comparable values at 30 fps).
    #[serde(skip)]
    pub curves: Vec<(String, String, Vec<f32>)>,
    /// Plot curves of rounding: (clip, method, mouthFunnel + mouthPucker, or
    /// the animator's rounding, at 30 fps).
    #[serde(skip)]
    pub rounding_curves: Vec<(String, String, Vec<f32>)>,
}

/// The FACS signature channels of each non-neutral emotion (ARKit names).
pub fn signature(emotion: usize) -> &'static [Blendshape] {
    use Blendshape::*;
    match emotion {
        1 => &[
            MouthSmileLeft,
            MouthSmileRight,
            CheekSquintLeft,
            CheekSquintRight,
        ],
        2 => &[BrowInnerUp, MouthFrownLeft, MouthFrownRight],
        3 => &[BrowDownLeft, BrowDownRight, NoseSneerLeft, NoseSneerRight],
        4 => &[
            BrowOuterUpLeft,
            BrowOuterUpRight,
            BrowInnerUp,
            EyeWideLeft,
            EyeWideRight,
        ],
        5 => &[
            BrowInnerUp,
            EyeWideLeft,
            EyeWideRight,
            MouthStretchLeft,
            MouthStretchRight,
        ],
        6 => &[
            NoseSneerLeft,
            NoseSneerRight,
            MouthUpperUpLeft,
            MouthUpperUpRight,
        ],
        _ => &[],
    }
}

/// Runs `model` over 16 kHz `audio` with `sampler`, `emotion` and style
/// `style`; frames at the model's rate.
pub fn run_model(
    model: &TalkingHeadModel,
    sampler: Sampler,
    audio: &[f32],
    emotion: [f32; EMOTION_COUNT],
    style: &str,
) -> Result<Vec<[f32; BLENDSHAPE_COUNT]>, String> {
    Ok(run_frames(model, sampler, audio, emotion, style)?
        .into_iter()
        .map(|f| f.weights)
        .collect())
}

/// [`run_model`] with the whole stamped frames (level, speech activity).
fn run_frames(
    model: &TalkingHeadModel,
    sampler: Sampler,
    audio: &[f32],
    emotion: [f32; EMOTION_COUNT],
    style: &str,
) -> Result<Vec<talking_head_core::runtime::ExpressionFrame>, String> {
    let mut s = Session::new(model, AudioFormat::MODEL, 0).map_err(|e| e.to_string())?;
    s.set_emotion(emotion);
    s.set_style(model.config().style_id(style).unwrap_or(0));
    run_to_end(model, &mut s, Pcm::F32(audio), sampler, |_| {}).map_err(|e| e.to_string())
}

fn one_hot(k: usize, w: f32) -> [f32; EMOTION_COUNT] {
    let mut e = [0f32; EMOTION_COUNT];
    e[k] = w;
    e
}

/// Held-out speech: `(voice, audio, phones)`.
pub type HeldOutClip = (String, Vec<f32>, Vec<(String, f64, f64)>);

/// Synthesises the held-out articulation set: the first `cfg.sentences`
/// lines of `cfg.sentences_file` (Harvard sentences) spoken by each held-out
/// flite voice, with flite's phone timings.
pub fn heldout_speech(cfg: &TruthEvalConfig) -> Result<Vec<HeldOutClip>, String> {
    let text = match &cfg.sentences_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => SENTENCES_EN.to_owned(),
    };
    let sentences: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .take(cfg.sentences)
        .collect();
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| e.to_string())?;
    // A scratch directory of this run's own (removed when it ends), so two
    // evaluations at once never read each other's half-written files.
    let scratch = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&cfg.work_dir)
        .map_err(|e| format!("scratch directory in {}: {e}", cfg.work_dir.display()))?;
    let mut out = Vec::new();
    for v in &cfg.voices {
        let voice = TtsVoice::new(TtsEngine::Flite, v.clone(), "en");
        for (i, s) in sentences.iter().enumerate() {
            let (audio, phones) = crate::tts::synthesize_with_phones(
                &voice,
                s,
                &crate::emotion::EMOTION_PROSODY[0],
                &scratch.path().join(format!("{v}_{i}")),
            )
            .map_err(|e| e.to_string())?;
            if let Some(p) = phones {
                out.push((v.clone(), audio, p));
            }
        }
    }
    Ok(out)
}

/// Evaluates `model` (student, and its teacher or `teacher`'s).
pub fn evaluate_truth(
    model: &TalkingHeadModel,
    model_name: &str,
    teacher: Option<&TalkingHeadModel>,
    cfg: &TruthEvalConfig,
    mut progress: impl FnMut(&str),
) -> Result<TruthReport, String> {
    let fps = model.config().fps as f64;
    let teacher_model = teacher.or(model.has_teacher().then_some(model));
    let teacher_sampler = teacher_model.map(|t| Sampler::Teacher {
        steps: t.config().diffusion.teacher_steps,
        guidance: t.config().diffusion.guidance_scale,
    });
    // ---- Section 1 ----
    progress("section 1: FACEGOOD recordings");
    let fg_dir = cfg.data_dir.join("facegood");
    let map = crate::facegood::default_retarget_map().map_err(|e| e.to_string())?;
    let ids = crate::facegood::list_clips(&fg_dir).map_err(|e| e.to_string())?;
    if let Some(bad) = cfg.val_recordings.iter().find(|v| !ids.contains(*v)) {
        return Err(format!(
            "validation recording {bad:?} is not in {} (recordings: {})",
            fg_dir.display(),
            ids.join(", ")
        ));
    }
    if ids.iter().all(|id| cfg.val_recordings.contains(id)) {
        return Err(format!(
            "every FACEGOOD recording is a validation recording ({}): the loudness and \
             ridge baselines need at least one recording to be fitted on",
            ids.join(", ")
        ));
    }
    let mut train_clips = Vec::new();
    let mut val_clips = Vec::new();
    for id in &ids {
        let c = crate::facegood::load_clip(&fg_dir, id, &map).map_err(|e| e.to_string())?;
        let t = TruthClip::from_facegood(&c);
        if cfg.val_recordings.contains(id) {
            val_clips.push(t);
        } else {
            train_clips.push(t);
        }
    }
    if val_clips.is_empty() {
        return Err(format!(
            "none of the validation recordings {:?} is in {}",
            cfg.val_recordings,
            fg_dir.display()
        ));
    }
    let mut seen = crate::dataset::facegood_recordings_seen(&model.provenance().description);
    if let Some(t) = teacher {
        seen.extend(crate::dataset::facegood_recordings_seen(
            &t.provenance().description,
        ));
    }
    let seen_in_training: Vec<String> = cfg
        .val_recordings
        .iter()
        .filter(|id| seen.contains(*id))
        .cloned()
        .collect();
    let train_refs: Vec<&TruthClip> = train_clips.iter().collect();
    let loud = LoudnessBaseline::fit(&train_refs);
    let ridge = Ridge::fit(&train_refs, cfg.ridge_alpha)?;
    let labeler = crate::phonetic::PhoneticLabeler::new(cfg.labeler.clone());
    let model_rows = !cfg.baselines_only;
    let mut methods: Vec<(String, Vec<Prediction>)> = Vec::new();
    let add =
        |name: &str, p: Prediction, methods: &mut Vec<(String, Vec<Prediction>)>| match methods
            .iter_mut()
            .find(|(n, _)| n == name)
        {
            Some((_, v)) => v.push(p),
            None => methods.push((name.to_string(), vec![p])),
        };
    for c in &val_clips {
        let n = c.frames();
        progress(&format!("section 1: {}", c.id));
        let neutral = one_hot(0, 1.0);
        if model_rows && model.has_student() {
            for style in ["facegood", "phonetic"] {
                let f = run_model(model, Sampler::Student, &c.audio, neutral, style)?;
                let p = Prediction::from_frames(&resample_at_frame_times(&f, fps, n, TRUTH_FPS));
                let label = if style == "facegood" {
                    "student, style facegood"
                } else {
                    "student, default style"
                };
                add(label, p, &mut methods);
            }
        }
        if let (true, Some(t), Some(s)) = (model_rows, teacher_model, teacher_sampler) {
            for style in ["facegood", "phonetic"] {
                let f = run_model(t, s, &c.audio, neutral, style)?;
                let p = Prediction::from_frames(&resample_at_frame_times(&f, fps, n, TRUTH_FPS));
                let label = if style == "facegood" {
                    "teacher, style facegood"
                } else {
                    "teacher, default style"
                };
                add(label, p, &mut methods);
            }
        }
        add(
            "loudness (linear fit)",
            loud.predict(&c.audio, TRUTH_FPS, n),
            &mut methods,
        );
        add(
            LOG_RMS_ROW,
            loud.predict_unclipped(&c.audio, TRUTH_FPS, n),
            &mut methods,
        );
        add(
            "ridge (log-mel, 300 ms)",
            ridge.predict(&c.audio, TRUTH_FPS, n),
            &mut methods,
        );
        if let Ok(ph) = crate::sphinx::allphone(&c.audio) {
            let lab = labeler.label(&c.audio, &ph, n, TRUTH_FPS);
            add(
                "phonetic labeler",
                Prediction::from_frames(&lab),
                &mut methods,
            );
        }
    }
    let mut report = TruthReport {
        model: model_name.to_string(),
        labeler_source: cfg.labeler_source.clone(),
        seen_in_training,
        ..Default::default()
    };
    for (name, preds) in &methods {
        for (c, p) in val_clips.iter().zip(preds) {
            report.truth.push(TruthRow {
                method: name.clone(),
                clip: c.id.clone(),
                metrics: truth_metrics(&[c], &[p]),
            });
            report
                .curves
                .push((c.id.clone(), name.clone(), p.jaw.clone()));
            if let Some(r) = &p.rounding {
                report
                    .rounding_curves
                    .push((c.id.clone(), name.clone(), r.clone()));
            }
        }
        let cs: Vec<&TruthClip> = val_clips.iter().collect();
        let ps: Vec<&Prediction> = preds.iter().collect();
        report.truth.push(TruthRow {
            method: name.clone(),
            clip: "pooled".into(),
            metrics: truth_metrics(&cs, &ps),
        });
    }
    for c in &val_clips {
        report
            .curves
            .push((c.id.clone(), "animator map-jaw".into(), c.map_jaw.clone()));
        report
            .rounding_curves
            .push((c.id.clone(), "animator rounding".into(), c.rounding.clone()));
    }
    // ---- Section 2 ----
    progress("section 2: synthesising held-out voices");
    let held = heldout_speech(cfg)?;
    report.articulation_clips = held.len();
    report.articulation_voices = cfg.voices.clone();
    let mut counts: Vec<(String, ArticulationCounts)> = Vec::new();
    let mut tally =
        |name: &str, pred: &[[f32; BLENDSHAPE_COUNT]], f: f64, ph: &[(String, f64, f64)]| {
            let i = match counts.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    counts.push((name.to_string(), ArticulationCounts::default()));
                    counts.len() - 1
                }
            };
            counts[i].1.add(pred, f, ph);
        };
    for (i, (_, audio, phones)) in held.iter().enumerate() {
        progress(&format!("section 2: clip {}/{}", i + 1, held.len()));
        let neutral = one_hot(0, 1.0);
        if model_rows && model.has_student() {
            let f = run_model(model, Sampler::Student, audio, neutral, "phonetic")?;
            tally("student, default style", &f, fps, phones);
        }
        if let (true, Some(t), Some(s)) = (model_rows, teacher_model, teacher_sampler) {
            let f = run_model(t, s, audio, neutral, "phonetic")?;
            tally("teacher, default style", &f, fps, phones);
        }
        let n = audio.len().div_ceil(16_000 / model.config().fps as usize);
        let jaw = loud.predict(audio, fps, n);
        let frames: Vec<[f32; BLENDSHAPE_COUNT]> = jaw
            .jaw
            .iter()
            .map(|&j| {
                let mut f = [0f32; BLENDSHAPE_COUNT];
                f[Blendshape::JawOpen.index()] = j;
                f
            })
            .collect();
        tally("loudness (linear fit)", &frames, fps, phones);
        let sph: Vec<crate::sphinx::Phone> = phones
            .iter()
            .map(|(p, a, b)| crate::sphinx::Phone::new(p.clone(), *a, *b))
            .collect();
        // The labeler on the exact phones: what the labels teach at best.
        let lab: Vec<_> = labeler
            .label(audio, &sph, 2 * n, 2.0 * fps)
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect();
        tally("labeler on exact phones (label ceiling)", &lab, fps, phones);
    }
    report.articulation = counts
        .into_iter()
        .map(|(method, c)| ArticulationRow {
            method,
            metrics: c.finish(),
        })
        .collect();
    // ---- Emotion ----
    if model_rows && model.has_student() {
        progress("emotion section");
        let clips: Vec<&Vec<f32>> = held
            .iter()
            .step_by((held.len() / cfg.emotion_clips.max(1)).max(1))
            .take(cfg.emotion_clips)
            .map(|(_, a, _)| a)
            .collect();
        let real_audio = held_out_real_voices(cfg);
        let real: Vec<&Vec<f32>> = real_audio.iter().collect();
        report.emotion = Some(emotion_section(model, teacher_model, &clips, &real, cfg)?);
    }
    Ok(report)
}

/// Up to [`TruthEvalConfig::real_voice_clips`] real recordings of held-out
/// human voices, one per speaker, spread evenly over the list, each at most 20 s
/// (16 kHz mono). Files that fail to decode are skipped.
fn held_out_real_voices(cfg: &TruthEvalConfig) -> Vec<Vec<f32>> {
    if cfg.real_voice_clips == 0 {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<PathBuf> = crate::corpus::held_out_real_speech(
        &cfg.data_dir,
        cfg.corpus_seed,
        crate::corpus::DEFAULT_VAL_FRACTION,
    )
    .into_iter()
    .filter(|(spk, _)| seen.insert(spk.clone()))
    .map(|(_, p)| p)
    .collect();
    // Centred spread over the sorted list (LibriSpeech readers, then the
    // multilingual speakers), so both kinds are drawn.
    let n = cfg.real_voice_clips.min(firsts.len());
    (0..n)
        .map(|i| &firsts[(2 * i + 1) * firsts.len() / (2 * n)])
        .filter_map(|p| talking_head_core::audio::load_mono_16k(p).ok())
        .map(|(mut a, _)| {
            a.truncate(20 * 16_000);
            a
        })
        .filter(|a| a.len() >= 16_000)
        .collect()
}

fn mean_change(
    a: &[[f32; BLENDSHAPE_COUNT]],
    b: &[[f32; BLENDSHAPE_COUNT]],
) -> [f32; BLENDSHAPE_COUNT] {
    let n = a.len().min(b.len()).max(1);
    std::array::from_fn(|k| {
        (0..a.len().min(b.len()))
            .map(|i| a[i][k] - b[i][k])
            .sum::<f32>()
            / n as f32
    })
}

fn signature_change(d: &[f32; BLENDSHAPE_COUNT], e: usize) -> f32 {
    let s = signature(e);
    s.iter().map(|c| d[c.index()]).sum::<f32>() / s.len().max(1) as f32
}

/// The rest-face noise floors of `eval`'s emotion section: name, spectral
/// exponent of the power spectrum (0 white, 1 pink, 2 brown), RMS level in
/// dBFS, and whether 50 Hz mains hum (and three harmonics) at the noise's
/// level is added.
pub const REST_NOISE_PANEL: [(&str, f32, f32, bool); 5] = [
    ("white −65 dBFS", 0.0, -65.0, false),
    ("white −40 dBFS", 0.0, -40.0, false),
    ("pink −55 dBFS", 1.0, -55.0, false),
    ("brown −45 dBFS", 2.0, -45.0, false),
    ("pink −50 dBFS + 50 Hz hum", 1.0, -50.0, true),
];

/// 4 s at 16 kHz of a [`REST_NOISE_PANEL`] floor, seeded.
fn panel_noise(exponent: f32, dbfs: f32, hum: bool, seed: u64) -> Vec<f32> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rms = 10f32.powf(dbfs / 20.0);
    let mut x = crate::noise::coloured_noise(64_000, exponent, &mut rng);
    x.iter_mut().for_each(|v| *v *= rms);
    if hum {
        crate::noise::add_mains_hum(&mut x, 16_000, 50.0, rms, &[0.0; 4]);
    }
    x
}

fn emotion_section(
    model: &TalkingHeadModel,
    teacher: Option<&TalkingHeadModel>,
    clips: &[&Vec<f32>],
    real: &[&Vec<f32>],
    cfg: &TruthEvalConfig,
) -> Result<EmotionReport, String> {
    let style = "phonetic";
    let (rows, neutral) = emotion_rows(model, clips, style, true)?;
    let mean_signature = mean_of_signatures(&rows);
    let real_rows = if real.is_empty() {
        Vec::new()
    } else {
        emotion_rows(model, real, style, false)?.0
    };
    let mut blend_e = [0f32; EMOTION_COUNT];
    blend_e[1] = 0.5;
    blend_e[4] = 0.5;
    let blend = mean_change(
        &run_clips(model, Sampler::Student, clips, blend_e, style)?,
        &neutral,
    );
    let mut sweep = vec![("student (1 step)".to_string(), mean_signature)];
    if let Some(t) = teacher {
        let two: Vec<&Vec<f32>> = clips.iter().take(2).copied().collect();
        for &g in &cfg.guidance_sweep {
            let s = Sampler::Teacher {
                steps: t.config().diffusion.teacher_steps,
                guidance: g,
            };
            let run2 = |e| run_clips(t, s, &two, e, style);
            let n = run2(one_hot(0, 1.0))?;
            let mut total = 0f32;
            for e in 1..EMOTION_COUNT {
                total += signature_change(&mean_change(&run2(one_hot(e, 1.0))?, &n), e);
            }
            sweep.push((
                format!("teacher, guidance {g}"),
                total / (EMOTION_COUNT - 1) as f32,
            ));
        }
    }
    // Rest face: 2 s of digital silence.
    let silence = vec![0f32; 32_000];
    let rest = run_model(model, Sampler::Student, &silence, one_hot(0, 1.0), style)?;
    // Each emotion on the same silence: the face it makes while listening.
    let mut rest_signatures = Vec::new();
    for (e, name) in EMOTIONS.iter().enumerate().skip(1) {
        let f = run_model(model, Sampler::Student, &silence, one_hot(e, 1.0), style)?;
        rest_signatures.push((
            name.to_string(),
            signature_change(&mean_change(&f, &rest), e),
        ));
    }
    let fps = model.config().fps as f32;
    let mut layer_gen = talking_head_core::upper_face::UpperFaceGenerator::new(
        talking_head_core::upper_face::UpperFaceStats::default(),
        cfg.seed,
    )
    .with_neutral_rest(true);
    let layer = layer_gen.generate(rest.len(), fps, &vec![0.0; rest.len()]);
    let skip = |b: Blendshape| b.name().starts_with("eyeBlink") || b.name().starts_with("eyeLook");
    let max_of = |frames: &[[f32; BLENDSHAPE_COUNT]]| -> (String, f32) {
        let mut best = (String::new(), 0f32);
        for b in Blendshape::ALL {
            if skip(b) {
                continue;
            }
            for f in frames {
                if f[b.index()] > best.1 {
                    best = (b.name().to_string(), f[b.index()]);
                }
            }
        }
        best
    };
    let overlay = |model: &[[f32; BLENDSHAPE_COUNT]], layer: &[[f32; BLENDSHAPE_COUNT]]| {
        model
            .iter()
            .zip(layer)
            .map(|(m, u)| {
                let mut o = *m;
                talking_head_core::upper_face::overlay_upper_face(&mut o, u);
                o
            })
            .collect::<Vec<_>>()
    };
    let combined = overlay(&rest, &layer);
    // Rest face on a −50 dBFS noise floor, through the plugin's path.
    let noise = {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let amp = 10f32.powf(-50.0 / 20.0);
        (0..64_000)
            .map(|_| amp * rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect::<Vec<f32>>()
    };
    let noise_frames = run_frames(model, Sampler::Student, &noise, one_hot(0, 1.0), style)?;
    let noise_model: Vec<[f32; BLENDSHAPE_COUNT]> =
        noise_frames.iter().map(|f| f.weights).collect();
    let noise_speech: Vec<f32> = noise_frames.iter().map(|f| f.speech_activity).collect();
    let mut noise_gen = talking_head_core::upper_face::UpperFaceGenerator::new(
        talking_head_core::upper_face::UpperFaceStats::default(),
        cfg.seed,
    )
    .with_neutral_rest(true);
    let noise_layer = noise_gen.generate(noise_model.len(), fps, &noise_speech);
    let mut panel = Vec::new();
    for (k, &(name, a, db, hum)) in REST_NOISE_PANEL.iter().enumerate() {
        let x = panel_noise(a, db, hum, cfg.seed.wrapping_add(101 + k as u64));
        let frames = run_model(model, Sampler::Student, &x, one_hot(0, 1.0), style)?;
        let after = (fps as usize).min(frames.len());
        panel.push(NoiseFloorRow {
            noise: name.to_string(),
            whole: max_of(&frames),
            steady: max_of(&frames[after..]),
        });
    }
    Ok(EmotionReport {
        rows,
        mean_signature,
        blend: (signature_change(&blend, 1), signature_change(&blend, 4)),
        guidance_sweep: sweep,
        rest_model: max_of(&rest),
        rest_with_layer: max_of(&combined),
        rest_noise_with_layer: max_of(&overlay(&noise_model, &noise_layer)),
        rest_noise_panel: panel,
        clips: clips.len(),
        rest_signatures,
        real_mean_signature: mean_of_signatures(&real_rows),
        real_rows,
        real_clips: real.len(),
        real_secs: real.iter().map(|a| a.len()).sum::<usize>() as f32 / 16_000.0,
    })
}

fn mean_of_signatures(rows: &[EmotionRow]) -> f32 {
    if rows.is_empty() {
        return 0.0;
    }
    rows.iter().map(|r| r.signature_change).sum::<f32>() / rows.len() as f32
}

/// Frames of [`run_model`] over each clip in turn, concatenated.
fn run_clips(
    model: &TalkingHeadModel,
    sampler: Sampler,
    clips: &[&Vec<f32>],
    emotion: [f32; EMOTION_COUNT],
    style: &str,
) -> Result<Vec<[f32; BLENDSHAPE_COUNT]>, String> {
    let mut all = Vec::new();
    for a in clips {
        all.extend(run_model(model, sampler, a, emotion, style)?);
    }
    Ok(all)
}

/// One [`EmotionRow`] per emotion but neutral on `clips` (student, style
/// `style`), each at intensity 1 against the neutral take, with the
/// intensity-0.5 runs when `half` (else `half_ratio` is 0). Returns the rows
/// and the neutral take's frames.
#[allow(clippy::type_complexity)]
fn emotion_rows(
    model: &TalkingHeadModel,
    clips: &[&Vec<f32>],
    style: &str,
    half: bool,
) -> Result<(Vec<EmotionRow>, Vec<[f32; BLENDSHAPE_COUNT]>), String> {
    let run_all = |e| run_clips(model, Sampler::Student, clips, e, style);
    let neutral = run_all(one_hot(0, 1.0))?;
    let jaw = Blendshape::JawOpen.index();
    let jaw_n: Vec<f32> = neutral.iter().map(|f| f[jaw]).collect();
    let mut rows = Vec::new();
    for (e, name) in EMOTIONS.iter().enumerate().skip(1) {
        let full = run_all(one_hot(e, 1.0))?;
        let d = mean_change(&full, &neutral);
        let sig = signature_change(&d, e);
        let half_ratio = if half && sig.abs() > 1e-6 {
            signature_change(&mean_change(&run_all(one_hot(e, 0.5))?, &neutral), e) / sig
        } else {
            0.0
        };
        let (mut off, mut off_ch) = (0f32, String::new());
        for b in Blendshape::ALL {
            if signature(e).contains(&b) || b.name().starts_with("eyeLook") {
                continue;
            }
            if d[b.index()].abs() > off {
                off = d[b.index()].abs();
                off_ch = b.name().to_string();
            }
        }
        let jaw_e: Vec<f32> = full.iter().map(|f| f[jaw]).collect();
        rows.push(EmotionRow {
            emotion: name.to_string(),
            signature_change: sig,
            off_signature: off,
            off_channel: off_ch,
            jaw_r: crate::facegood::pearson(&jaw_e, &jaw_n),
            half_ratio,
        });
    }
    Ok((rows, neutral))
}

fn opt(x: Option<f32>, pct: bool) -> String {
    match x {
        Some(v) if pct => format!("{:.0} %", v * 100.0),
        Some(v) => format!("{v:.3}"),
        None => "–".into(),
    }
}

impl TruthReport {
    /// Markdown tables of every section.
    pub fn markdown(&self) -> String {
        let mut s = format!("# Truth-first evaluation of `{}`\n\n", self.model);
        if self.seen_in_training.is_empty() {
            s.push_str(
                "## Section 1: real animator truth (FACEGOOD recordings never trained on, 30 fps)\n\n",
            );
        } else {
            s.push_str(&format!(
                "## Section 1: real animator truth (FACEGOOD recordings, 30 fps)\n\n\
                 **Not a held-out figure:** this model (or its teacher) was trained on {}. \
                 Its section-1 rows measure the fit to training data; the recipe's held-out \
                 figures come from the same recipe trained without them.\n\n",
                self.seen_in_training.join(", ")
            ));
        }
        s.push_str("| method | clip | map-jaw r | full-opening r | in-speech closures | rounding r | dynamic range | frames |\n|---|---|---|---|---|---|---|---|\n");
        let mut rows = self.truth.clone();
        rows.sort_by_key(|r| (r.clip != "pooled", r.clip.clone()));
        for r in &rows {
            let m = &r.metrics;
            s.push_str(&format!(
                "| {} | {} | {:.3} | {:.3} | {} | {} | {:.2} | {} |\n",
                r.method,
                r.clip,
                m.map_jaw_r,
                m.full_opening_r,
                opt(m.closure_recall, true),
                opt(m.rounding_r, false),
                m.dynamic_range,
                m.frames
            ));
        }
        if self.truth.iter().any(|r| r.method == LOG_RMS_ROW) {
            s.push_str(&format!(
                "\n`{LOG_RMS_ROW}`: the loudness fit without the clipping to [0, 1]; its r is that of the frame log-RMS itself, the loudness issue 10's targets are measured against. The clipped fit above is the stronger baseline.\n"
            ));
        }
        // Reports written before `articulation_voices` existed used the
        // held-out voices.
        let voices: Vec<&str> = if self.articulation_voices.is_empty() {
            FLITE_HELDOUT.to_vec()
        } else {
            self.articulation_voices
                .iter()
                .map(String::as_str)
                .collect()
        };
        let held_out = voices.iter().all(|v| FLITE_HELDOUT.contains(v));
        s.push_str(&format!(
            "\n## Section 2: articulation on {} with exact phones ({} clips of flite {} speech)\n\n",
            if held_out {
                "held-out voices"
            } else {
                "voices NOT all held out of training (a diagnostic, not quality)"
            },
            self.articulation_clips,
            voices.join("/")
        ));
        s.push_str("| method | bilabial recall | closed-vowel rate | rounding AUC | opening AUC | opening AUC, schwa as open (old) | /p b m/ | vowels |\n|---|---|---|---|---|---|---|---|\n");
        for r in &self.articulation {
            let m = &r.metrics;
            s.push_str(&format!(
                "| {} | {:.0} % | {:.0} % | {:.3} | {:.3} | {:.3} | {} | {} |\n",
                r.method,
                m.bilabial_recall * 100.0,
                m.closed_vowel_rate * 100.0,
                m.rounding_auc,
                m.opening_auc,
                m.opening_auc_with_schwa,
                m.bilabials,
                m.vowels
            ));
        }
        if !self.labeler_source.is_empty() {
            s.push_str(&format!(
                "\nLabeler rows (sections 1 and 2) use {}.\n",
                self.labeler_source
            ));
        }
        if let Some(e) = &self.emotion {
            s.push_str(&format!(
                "\n## Emotion (student, intensity 1 vs neutral, {} held-out clips)\n\n",
                e.clips
            ));
            s.push_str("| emotion | signature change | largest off-signature | jawOpen r vs neutral | intensity 0.5 / 1 |\n|---|---|---|---|---|\n");
            for r in &e.rows {
                s.push_str(&format!(
                    "| {} | {:+.3} | {:.3} ({}) | {:.3} | {:.0} % |\n",
                    r.emotion,
                    r.signature_change,
                    r.off_signature,
                    r.off_channel,
                    r.jaw_r,
                    r.half_ratio * 100.0
                ));
            }
            s.push_str(&format!(
                "\nMean signature change {:.3}. happy 0.5 + surprised 0.5: happy signature {:+.3}, surprised signature {:+.3}.\n\n",
                e.mean_signature, e.blend.0, e.blend.1
            ));
            s.push_str("| sampler | mean signature change |\n|---|---|\n");
            for (k, v) in &e.guidance_sweep {
                s.push_str(&format!("| {k} | {v:+.3} |\n"));
            }
            if !e.real_rows.is_empty() {
                s.push_str(&format!(
                    "\nOn real recordings of human voices never trained on ({} LibriSpeech / multilingual speakers the corpus split holds out, one recording each, {:.0} s):\n\n",
                    e.real_clips, e.real_secs
                ));
                s.push_str("| emotion | signature change | largest off-signature | jawOpen r vs neutral |\n|---|---|---|---|\n");
                for r in &e.real_rows {
                    s.push_str(&format!(
                        "| {} | {:+.3} | {:.3} ({}) | {:.3} |\n",
                        r.emotion, r.signature_change, r.off_signature, r.off_channel, r.jaw_r
                    ));
                }
                s.push_str(&format!(
                    "\nMean signature change on real voices {:.3}.\n",
                    e.real_mean_signature
                ));
            }
            s.push_str(&format!(
                "\nRest face on 2 s of silence (every channel but eyeBlink*/eyeLook*): model alone max {:.3} ({}); with the upper-face layer max {:.3} ({}). On 4 s of white noise at −50 dBFS (a microphone's noise floor), with the layer: max {:.3} ({}).\n",
                e.rest_model.1,
                e.rest_model.0,
                e.rest_with_layer.1,
                e.rest_with_layer.0,
                e.rest_noise_with_layer.1,
                e.rest_noise_with_layer.0
            ));
            if !e.rest_signatures.is_empty() {
                let list: Vec<String> = e
                    .rest_signatures
                    .iter()
                    .map(|(n, v)| format!("{n} {v:+.3}"))
                    .collect();
                s.push_str(&format!(
                    "\nOn the same silence each emotion keeps its face (signature change at intensity 1 vs neutral): {}.\n",
                    list.join(", ")
                ));
            }
            if !e.rest_noise_panel.is_empty() {
                s.push_str("\n| noise floor (4 s, model alone) | largest channel, whole 4 s | after the first second |\n|---|---|---|\n");
                for r in &e.rest_noise_panel {
                    s.push_str(&format!(
                        "| {} | {:.3} ({}) | {:.3} ({}) |\n",
                        r.noise, r.whole.1, r.whole.0, r.steady.1, r.steady.0
                    ));
                }
            }
        }
        s
    }

    /// Two PNGs per section-1 clip over the first 12 s: animator map-jaw
    /// and each method's jawOpen (`truth_<clip>.png`), and the animator's
    /// rounding and the students' mouthFunnel + mouthPucker
    /// (`truth_rounding_<clip>.png`). Returns the files written.
    pub fn write_plots(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        let jaw = |m: &str| {
            ["animator", "student", "ridge", "loudness"]
                .iter()
                .any(|p| m.starts_with(p))
        };
        let mut out = plot_clips(
            &self.curves,
            jaw,
            dir,
            "truth",
            "animator map-jaw vs predicted jawOpen",
        )?;
        let rounding = |m: &str| m.starts_with("animator") || m.starts_with("student");
        out.extend(plot_clips(
            &self.rounding_curves,
            rounding,
            dir,
            "truth_rounding",
            "animator rounding (mean funnel + oo) vs predicted mouthFunnel + mouthPucker",
        )?);
        Ok(out)
    }
}

/// One PNG per clip of `curves` (the methods `keep` accepts, animator
/// first), `<prefix>_<clip>.png` in `dir`, over the first 12 s.
fn plot_clips(
    curves: &[(String, String, Vec<f32>)],
    keep: impl Fn(&str) -> bool,
    dir: &Path,
    prefix: &str,
    title: &str,
) -> Result<Vec<PathBuf>, String> {
    let palette = crate::eval::PLOT_PALETTE;
    let mut clips: Vec<&String> = curves.iter().map(|c| &c.0).collect();
    clips.sort();
    clips.dedup();
    let mut out = Vec::new();
    let max = (12.0 * TRUTH_FPS) as usize;
    for clip in clips {
        let mut cs: Vec<(&str, Vec<f32>)> = curves
            .iter()
            .filter(|c| &c.0 == clip && keep(&c.1))
            .map(|c| (c.1.as_str(), c.2.iter().take(max).copied().collect()))
            .collect();
        cs.sort_by_key(|c| !c.0.starts_with("animator"));
        let plotted: Vec<crate::eval::Curve<'_>> = cs
            .iter()
            .enumerate()
            .map(|(i, (l, v))| (*l, v.as_slice(), palette[i % palette.len()]))
            .collect();
        let path = dir.join(format!("{prefix}_{clip}.png"));
        crate::eval::plot_curves(&path, &format!("{clip}: {title}"), &plotted, TRUTH_FPS)?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 1's recordings must exist and leave one to fit the baselines on.
    #[test]
    fn validation_recordings_are_checked_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let fg = dir.path().join("facegood");
        for sub in ["wav", "labels"] {
            std::fs::create_dir_all(fg.join(sub)).unwrap();
        }
        for id in ["rec_a", "rec_b"] {
            std::fs::write(fg.join("wav").join(format!("{id}.wav")), b"").unwrap();
            std::fs::write(fg.join("labels").join(format!("{id}.csv")), b"").unwrap();
        }
        let model =
            TalkingHeadModel::random(talking_head_core::model::ModelConfig::tiny(), 3).unwrap();
        let mut cfg = TruthEvalConfig::new(dir.path().to_path_buf());
        cfg.val_recordings = vec!["rec_a".into(), "rec_c".into()];
        let err = evaluate_truth(&model, "m", None, &cfg, |_| {}).unwrap_err();
        assert!(
            err.contains("\"rec_c\" is not in") && err.contains("rec_a, rec_b"),
            "{err}"
        );
        cfg.val_recordings = vec!["rec_a".into(), "rec_b".into()];
        let err = evaluate_truth(&model, "m", None, &cfg, |_| {}).unwrap_err();
        assert!(err.contains("at least one recording"), "{err}");
    }

    /// The rest-face noise floors have their stated levels (hum adds its
    /// own power, equal to the noise's), and the report lists each.
    #[test]
    fn rest_noise_panel_floors_have_their_levels_and_are_reported() {
        let db = |x: &[f32]| 10.0 * (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).log10();
        for (k, &(name, a, level, hum)) in REST_NOISE_PANEL.iter().enumerate() {
            let x = panel_noise(a, level, hum, k as u64);
            assert_eq!(x.len(), 64_000);
            let want = level + if hum { 3.01 } else { 0.0 };
            assert!((db(&x) - want).abs() < 0.1, "{name}: {:.2} dBFS", db(&x));
        }
        let r = TruthReport {
            emotion: Some(EmotionReport {
                rest_noise_panel: vec![NoiseFloorRow {
                    noise: "pink −55 dBFS".into(),
                    whole: ("mouthClose".into(), 0.31),
                    steady: ("mouthPucker".into(), 0.042),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let md = r.markdown();
        assert!(
            md.contains("| pink −55 dBFS | 0.310 (mouthClose) | 0.042 (mouthPucker) |"),
            "{md}"
        );
    }

    /// The real-voice emotion table is printed when it has rows, and left
    /// out (with its sentence) when no held-out real recordings were found.
    #[test]
    fn real_voice_emotion_rows_are_reported_when_present() {
        let row = EmotionRow {
            emotion: "happy".into(),
            signature_change: 0.438,
            off_signature: 0.162,
            off_channel: "eyeSquintLeft".into(),
            jaw_r: 0.898,
            half_ratio: 0.0,
        };
        let with = TruthReport {
            emotion: Some(EmotionReport {
                real_rows: vec![row],
                real_mean_signature: 0.438,
                real_clips: 8,
                real_secs: 121.0,
                ..Default::default()
            }),
            ..Default::default()
        }
        .markdown();
        assert!(
            with.contains("(8 LibriSpeech / multilingual speakers"),
            "{with}"
        );
        assert!(
            with.contains("| happy | +0.438 | 0.162 (eyeSquintLeft) | 0.898 |"),
            "{with}"
        );
        assert!(
            with.contains("Mean signature change on real voices 0.438."),
            "{with}"
        );
        let rest = TruthReport {
            emotion: Some(EmotionReport {
                rest_signatures: vec![("happy".into(), 0.5), ("sad".into(), 0.45)],
                ..Default::default()
            }),
            ..Default::default()
        }
        .markdown();
        assert!(
            rest.contains(
                "keeps its face (signature change at intensity 1 vs neutral): happy +0.500, sad +0.450."
            ),
            "{rest}"
        );
        let without = TruthReport {
            emotion: Some(EmotionReport::default()),
            ..Default::default()
        }
        .markdown();
        assert!(!without.contains("real voices") && !without.contains("human voices"));
        // No shared data: no real clips, no error.
        let cfg = TruthEvalConfig::new(PathBuf::from("/nonexistent/shared/data"));
        assert!(held_out_real_voices(&cfg).is_empty());
    }

    /// Section 1 says when the model was trained on its recordings.
    #[test]
    fn markdown_flags_recordings_seen_in_training() {
        let held_out = TruthReport::default().markdown();
        assert!(held_out.contains("never trained on") && !held_out.contains("Not a held-out"));
        let seen = TruthReport {
            seen_in_training: vec!["1114_2_05".into(), "1114_3_15".into()],
            ..Default::default()
        }
        .markdown();
        assert!(seen.contains("**Not a held-out figure:**"), "{seen}");
        assert!(seen.contains("trained on 1114_2_05, 1114_3_15"));
        assert!(!seen.contains("never trained on"));
    }

    /// Each clip gets a jaw plot and a rounding plot; methods without
    /// rounding (the baselines) are left out of the second.
    #[test]
    fn plots_jaw_and_rounding_per_clip() {
        let wave: Vec<f32> = (0..90).map(|k| (k as f32 * 0.2).sin().abs()).collect();
        let mut r = TruthReport::default();
        for clip in ["a", "b"] {
            for m in [
                "animator map-jaw",
                "student, style facegood",
                "ridge (log-mel, 300 ms)",
            ] {
                r.curves.push((clip.into(), m.into(), wave.clone()));
            }
            for m in ["animator rounding", "student, style facegood"] {
                r.rounding_curves
                    .push((clip.into(), m.into(), wave.clone()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let files = r.write_plots(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "truth_a.png",
                "truth_b.png",
                "truth_rounding_a.png",
                "truth_rounding_b.png"
            ]
        );
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 1000, "{f:?}");
        }
    }
}
