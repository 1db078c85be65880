//! The training corpus builder (`talking-head corpus build`): real paired
//! data (FACEGOOD, animator labels), pseudo-labelled real speech
//! (LibriSpeech, LJSpeech, multilingual clips, FACEGOOD's audio) and
//! synthesised speech (espeak-ng, flite) in many voices, languages and
//! emotions, with a living upper face from the real iPhone captures, audio
//! augmentation, a speaker-disjoint train/validation split and a report.
//! The pseudo-labelling follows EA's "Tiny is not small enough" (TOG 2025):
//! a teacher (here the phonetic labeler) labels a large unlabelled audio set.
//!
//! Layout of `<out>/`: `corpus.json` (manifest: every clip's [`ClipMeta`]),
//! `report.md` / `report.json`, and per clip `clips/<id>.wav` (16 kHz mono,
//! 16-bit), `clips/<id>.csv` (Live Link Face CSV at the model frame rate),
//! `clips/<id>.phones.tsv` (phone timings, when known).
//!
//! Deterministic: every random choice derives from `--seed` and the clip id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::emotion::{EMOTION_PROSODY, emotion_vector};
use crate::facegood;
pub use crate::manifest::{CORPUS_VERSION, ClipMeta, CorpusError, CorpusManifest, Split};
use crate::manifest::{read_phones_tsv, sanitize_id, with_ext};
use crate::phonetic::PhoneticLabeler;
use crate::sphinx::{self, Phone};
use crate::tts::{self, ESPEAK_HELDOUT, ESPEAK_VARIANTS, FLITE_TRAIN, TtsEngine, TtsVoice};
use talking_head_core::audio::load_mono_16k;
use talking_head_core::model::{EMOTION_COUNT, EMOTIONS};
use talking_head_core::rig::retarget::RetargetMap;
use talking_head_core::rig::{BLENDSHAPE_COUNT, Blendshape, LiveLinkFaceTake};

mod augment;
mod report;
use augment::*;
use report::*;

/// Builder settings.
#[derive(Clone, Debug)]
pub struct CorpusConfig {
    /// The shared data directory (`../shared/data`).
    pub data_dir: PathBuf,
    /// Prompt texts (`assets/corpus/texts`).
    pub texts_dir: PathBuf,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Label frame rate.
    pub fps: u32,
    /// Minutes of synthesised speech to generate.
    pub tts_minutes: f64,
    /// Fraction of synthesised clips with a non-neutral emotion.
    pub emotional_fraction: f64,
    /// Augmented copies per training clip (on average; fractional allowed).
    pub augment_per_clip: f64,
    /// At most this many clips per source (a quick subset), if set.
    pub limit_per_source: Option<usize>,
    /// Fraction of speakers held out for validation.
    pub val_fraction: f64,
    /// FACEGOOD clips held out for validation (one speaker only, so the
    /// split is by recording there; default `1114_2_05`, `1114_3_15`;
    /// empty: every recording trains). An id that is not a FACEGOOD
    /// recording is [`CorpusError::InvalidConfig`].
    pub facegood_val: Vec<String>,
    /// Cut every source recording to at most this many seconds (quick test
    /// builds), if set.
    pub max_clip_secs: Option<f64>,
    /// Every this many synthesised clips one is English flite speech with
    /// the synthesiser's exact phone timings (0: none).
    pub flite_every: usize,
    /// Minutes of female-range flite speech with exact phone timings, made
    /// by converting the male training voices ([`tts::VoiceConversion`]:
    /// F0 165-235 Hz, spectrum shifted +200 to +400 cents), added after the
    /// synthesised speech above, on a random stream of their own (0, the
    /// default: none, the corpus of the shipped model; see the model card's
    /// rows v34-v41 for what 15-30 minutes do).
    pub flite_female_minutes: f64,
    /// Range of the converted clips' mean F0 in Hz after the shift, each
    /// clip drawing one value (default 165-235 Hz; `[120, 120]` keeps a male
    /// F0 while the spectrum moves, for ablations).
    pub conversion_f0_hz: [f32; 2],
    /// Range of the converted clips' spectral shift in cents (default
    /// +200 to +400, the adult female/male formant ratio; `[0, 0]` raises
    /// F0 alone).
    pub conversion_shift_cents: [i32; 2],
    /// FACEGOOD → ARKit retarget map (JSON, the format of
    /// `assets/retarget/facegood_to_arkit.json`) for the animator clips'
    /// labels; `None` (the default): the shipped map
    /// ([`facegood::default_retarget_map`]). A file that cannot be read or
    /// parsed is [`CorpusError::InvalidConfig`].
    pub facegood_retarget: Option<PathBuf>,
}

/// Default mean F0 range (Hz, after the shift) of the converted flite clips
/// ([`CorpusConfig::conversion_f0_hz`]).
pub const DEFAULT_CONVERSION_F0_HZ: [f32; 2] = [165.0, 235.0];
/// Default spectral shift range (cents) of the converted flite clips
/// ([`CorpusConfig::conversion_shift_cents`]).
pub const DEFAULT_CONVERSION_SHIFT_CENTS: [i32; 2] = [200, 400];

/// Default share of speakers held out for validation
/// ([`CorpusConfig::val_fraction`], [`speaker_split`]).
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

impl CorpusConfig {
    /// Defaults for a full build into `out_dir`.
    pub fn new(data_dir: PathBuf, texts_dir: PathBuf, out_dir: PathBuf) -> Self {
        Self {
            data_dir,
            texts_dir,
            out_dir,
            seed: 0,
            fps: 50,
            tts_minutes: 110.0,
            emotional_fraction: 0.45,
            augment_per_clip: 1.0,
            limit_per_source: None,
            val_fraction: DEFAULT_VAL_FRACTION,
            facegood_val: vec!["1114_2_05".into(), "1114_3_15".into()],
            max_clip_secs: None,
            flite_every: 3,
            flite_female_minutes: 0.0,
            conversion_f0_hz: DEFAULT_CONVERSION_F0_HZ,
            conversion_shift_cents: DEFAULT_CONVERSION_SHIFT_CENTS,
            facegood_retarget: None,
        }
    }
}

/// What one job produces.
#[derive(Clone, Debug)]
enum Job {
    /// A FACEGOOD clip with the animator's labels.
    Facegood { id: String },
    /// Real speech through the phonetic labeler.
    Real {
        id: String,
        path: PathBuf,
        source: &'static str,
        speaker: String,
        language: String,
        license: &'static str,
        transcript: Option<String>,
        split_hint: Option<Split>,
    },
    /// Synthesised speech.
    Tts {
        id: String,
        voice: TtsVoice,
        text: String,
        emotion: usize,
        intensity: f32,
    },
}

impl Job {
    fn id(&self) -> &str {
        match self {
            Job::Facegood { id } | Job::Real { id, .. } | Job::Tts { id, .. } => id,
        }
    }
}

fn hash64(s: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Speaker-level split: a stable hash of the speaker id.
pub fn speaker_split(speaker: &str, seed: u64, val_fraction: f64) -> Split {
    let u = (hash64(speaker, seed ^ 0x5eed) % 1_000_000) as f64 / 1_000_000.0;
    if u < val_fraction {
        Split::Val
    } else {
        Split::Train
    }
}

/// The corpus speaker id of a LibriSpeech file stem (`READER-CHAPTER-UTT`).
fn librispeech_speaker(stem: &str) -> String {
    format!("librispeech:{}", stem.split('-').next().unwrap_or("x"))
}

/// The corpus speaker id of a multilingual clip (each its own speaker).
fn multilingual_speaker(stem: &str) -> String {
    format!("multilingual:{stem}")
}

/// The files in `dir` whose extension (any case) is one of `ext`, sorted.
fn list_files(dir: &Path, ext: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ext.contains(&x.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Real human recordings in `data_dir` whose speakers a corpus built with
/// `seed` and `val_fraction` ([`CorpusConfig::new`]'s defaults: 0 and 0.1)
/// puts in its validation split, so a model trained on it never heard those
/// voices: LibriSpeech (`speech/librispeech/*.flac`, speaker = the file
/// name's first field) and the multilingual clips (`speech/multilingual`,
/// each its own speaker), the speaker ids and hash of [`speaker_split`].
/// LJ Speech (one speaker) and FACEGOOD are left out. Returns
/// `(speaker, path)`, sorted by path; a missing folder gives no entries.
pub fn held_out_real_speech(
    data_dir: &Path,
    seed: u64,
    val_fraction: f64,
) -> Vec<(String, PathBuf)> {
    let list = |dir: PathBuf, ext: &[&str]| list_files(&dir, ext).unwrap_or_default();
    let stem = |p: &Path| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = Vec::new();
    for p in list(data_dir.join("speech/librispeech"), &["flac"]) {
        out.push((librispeech_speaker(&stem(&p)), p));
    }
    for p in list(
        data_dir.join("speech/multilingual"),
        &["wav", "flac", "aiff", "aif"],
    ) {
        out.push((multilingual_speaker(&stem(&p)), p));
    }
    out.retain(|(spk, _)| speaker_split(spk, seed, val_fraction) == Split::Val);
    out
}

/// Language of a shared multilingual clip, from its file name.
fn multilingual_language(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    let table: [(&str, &str); 12] = [
        ("deyu", "de"),
        ("eluosi", "ru"),
        ("fayu", "fr"),
        ("french", "fr"),
        ("japanese", "ja"),
        ("itosinger", "ja"),
        ("chinese", "cmn"),
        ("aishell", "cmn"),
        ("laotzu", "cmn"),
        ("funasr", "cmn"),
        ("wenetdemo", "cmn"),
        ("_id00", "cmn"),
    ];
    for (k, v) in table {
        if n.contains(k) {
            return v;
        }
    }
    "en"
}

/// Enumerates every job of a build (deterministic).
fn plan(cfg: &CorpusConfig) -> Result<Vec<Job>, CorpusError> {
    let mut jobs = Vec::new();
    let limit = cfg.limit_per_source.unwrap_or(usize::MAX);
    let d = &cfg.data_dir;
    let fg_dir = d.join("facegood");
    let fg = facegood::list_clips(&fg_dir)
        .map_err(|e| CorpusError::Missing(format!("FACEGOOD data: {e}")))?;
    if let Some(bad) = cfg.facegood_val.iter().find(|v| !fg.contains(v)) {
        return Err(CorpusError::InvalidConfig(format!(
            "facegood_val names `{bad}`, which is not a FACEGOOD recording (have: {})",
            fg.join(", ")
        )));
    }
    for id in fg.iter().take(limit) {
        jobs.push(Job::Facegood { id: id.clone() });
        jobs.push(Job::Real {
            id: format!("facegood_audio_{id}"),
            path: fg_dir.join("wav").join(format!("{id}.wav")),
            source: "facegood",
            speaker: "facegood:1114".into(),
            language: "cmn".into(),
            license: "MIT (FACEGOOD-Audio2Face)",
            transcript: None,
            split_hint: Some(if cfg.facegood_val.contains(id) {
                Split::Val
            } else {
                Split::Train
            }),
        });
    }
    let list = |dir: PathBuf, ext: &[&str]| -> Result<Vec<PathBuf>, CorpusError> {
        list_files(&dir, ext).map_err(|e| CorpusError::Io(dir.clone(), e))
    };
    for p in list(d.join("speech/librispeech"), &["flac"])?
        .into_iter()
        .take(limit)
    {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        jobs.push(Job::Real {
            id: sanitize_id(&format!("libri_{stem}")),
            path: p,
            source: "librispeech",
            speaker: librispeech_speaker(&stem),
            language: "en".into(),
            license: "CC BY 4.0 (LibriSpeech)",
            transcript: None,
            split_hint: None,
        });
    }
    let meta_path = d.join("speech/ljspeech/metadata.csv");
    let transcripts: BTreeMap<String, String> = std::fs::read_to_string(&meta_path)
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let mut it = l.split('|');
                    let id = it.next()?.to_string();
                    let _raw = it.next()?;
                    let norm = it.next()?.to_string();
                    Some((id, norm))
                })
                .collect()
        })
        .unwrap_or_default();
    for p in list(d.join("speech/ljspeech"), &["wav"])?
        .into_iter()
        .take(limit)
    {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        jobs.push(Job::Real {
            id: sanitize_id(&format!("lj_{stem}")),
            transcript: transcripts.get(&stem).cloned(),
            path: p,
            source: "ljspeech",
            speaker: "ljspeech:LJ".into(),
            language: "en".into(),
            license: "Public domain (LJ Speech)",
            split_hint: None,
        });
    }
    for p in list(
        d.join("speech/multilingual"),
        &["wav", "flac", "aiff", "aif"],
    )?
    .into_iter()
    .take(limit)
    {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        jobs.push(Job::Real {
            id: sanitize_id(&format!("multi_{stem}")),
            language: multilingual_language(&stem).into(),
            speaker: multilingual_speaker(&stem),
            path: p,
            source: "multilingual",
            license: "Apache-2.0 / MIT / BSD / public domain (see shared/data/README.md)",
            transcript: None,
            split_hint: None,
        });
    }
    // Synthesised speech: voices × languages, sentences drawn with the seed.
    let texts =
        tts::prompt_texts(&cfg.texts_dir).map_err(|e| CorpusError::Io(cfg.texts_dir.clone(), e))?;
    if texts.is_empty() {
        return Err(CorpusError::Missing(format!(
            "no prompt texts in {}",
            cfg.texts_dir.display()
        )));
    }
    // Held-out voices (tts::FLITE_HELDOUT, tts::ESPEAK_HELDOUT) never enter
    // the corpus: the articulation evaluation speaks with them.
    let mut voices = Vec::new();
    for (lang, _) in &texts {
        for v in ESPEAK_VARIANTS
            .iter()
            .filter(|v| !ESPEAK_HELDOUT.contains(v))
        {
            voices.push(TtsVoice::new(
                TtsEngine::Espeak,
                format!("{lang}+{v}"),
                lang.clone(),
            ));
        }
    }
    // flite reports its own phone timings (exact labels), so every
    // `flite_every`-th clip is English flite speech.
    let flite: Vec<TtsVoice> = FLITE_TRAIN
        .iter()
        .map(|v| TtsVoice::new(TtsEngine::Flite, *v, "en"))
        .collect();
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x7475);
    // ~8 s per clip (two to three sentences).
    let n_tts = ((cfg.tts_minutes * 60.0 / 8.0).round() as usize).min(limit.saturating_mul(4));
    for i in 0..n_tts {
        // Every voice gets a turn before any gets a second one.
        let voice = if cfg.flite_every > 0 && i % cfg.flite_every == 0 {
            flite[(i / cfg.flite_every) % flite.len()].clone()
        } else {
            voices[(i * 7919 + cfg.seed as usize) % voices.len()].clone()
        };
        let sentences = &texts
            .iter()
            .find(|(l, _)| *l == voice.language)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        jobs.push(tts_job(
            &mut rng,
            format!("tts_{i:05}"),
            voice,
            sentences,
            cfg.emotional_fraction,
        ));
    }
    // Female-range speech with exact phones: the flite training voices
    // converted (tts::VoiceConversion), on a random stream of their own so
    // the clips above stay what they were in builds without them.
    let english = texts
        .iter()
        .find(|(l, _)| l == "en")
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x6665_6d61);
    let n_female = ((cfg.flite_female_minutes.max(0.0) * 60.0 / 8.0).round() as usize)
        .min(limit.saturating_mul(4));
    let ([f_lo, f_hi], [c_lo, c_hi]) = (cfg.conversion_f0_hz, cfg.conversion_shift_cents);
    if n_female > 0
        && !(f_lo.is_finite() && (50.0..=400.0).contains(&f_lo) && f_lo <= f_hi && f_hi <= 400.0)
    {
        return Err(CorpusError::InvalidConfig(format!(
            "conversion_f0_hz must be an ordered range within 50-400 Hz, got {f_lo}-{f_hi}"
        )));
    }
    if n_female > 0 && !(-1200 <= c_lo && c_lo <= c_hi && c_hi <= 1200) {
        return Err(CorpusError::InvalidConfig(format!(
            "conversion_shift_cents must be an ordered range within -1200..1200, got {c_lo}..{c_hi}"
        )));
    }
    if english.is_empty() && n_female > 0 {
        return Err(CorpusError::Missing(format!(
            "flite_female_minutes needs English prompts ({}/en.txt)",
            cfg.texts_dir.display()
        )));
    }
    for i in 0..n_female {
        let mut voice = flite[i % flite.len()].clone();
        voice.conversion = Some(tts::VoiceConversion {
            f0_hz: rng.random_range(f_lo..=f_hi),
            shift_cents: rng.random_range(c_lo..=c_hi),
        });
        jobs.push(tts_job(
            &mut rng,
            format!("tts_female_{i:05}"),
            voice,
            &english,
            cfg.emotional_fraction,
        ));
    }
    Ok(jobs)
}

/// One synthesised utterance: two or three of `sentences` in `voice`, and
/// an emotion (index into [`EMOTIONS`], 0 neutral) with intensity 0.5-1 for
/// `emotional_fraction` of them.
fn tts_job(
    rng: &mut StdRng,
    id: String,
    voice: TtsVoice,
    sentences: &[String],
    emotional_fraction: f64,
) -> Job {
    let k = rng.random_range(2..=3);
    let text = (0..k)
        .filter_map(|_| sentences.choose(rng).cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let (emotion, intensity) = if rng.random_bool(emotional_fraction.clamp(0.0, 1.0)) {
        let emotion = rng.random_range(1..EMOTION_COUNT);
        (emotion, rng.random_range(0.5..=1.0))
    } else {
        (0, 0.0)
    };
    Job::Tts {
        id,
        voice,
        text,
        emotion,
        intensity,
    }
}

/// A finished clip in memory.
struct Clip {
    meta: ClipMeta,
    audio: Vec<f32>,
    frames: Vec<[f32; BLENDSHAPE_COUNT]>,
    phones: Option<Vec<Phone>>,
}

/// Linear resampling of label curves from `src_fps` (frame `k` at `k / src_fps`)
/// to `n` frames at `dst_fps` sampled at frame centres `(f + 0.5) / dst_fps`,
/// with time scaled by `time_scale` (source time = `t * time_scale`).
pub fn resample_curves(
    src: &[[f32; BLENDSHAPE_COUNT]],
    src_fps: f64,
    n: usize,
    dst_fps: f64,
    time_scale: f64,
) -> Vec<[f32; BLENDSHAPE_COUNT]> {
    if src.is_empty() {
        return vec![[0.0; BLENDSHAPE_COUNT]; n];
    }
    (0..n)
        .map(|f| {
            let t = (f as f64 + 0.5) / dst_fps * time_scale * src_fps;
            let i = t.floor().max(0.0) as usize;
            if i + 1 >= src.len() {
                return src[src.len() - 1];
            }
            let a = (t - i as f64).clamp(0.0, 1.0) as f32;
            talking_head_core::rig::lerp_weights(&src[i], &src[i + 1], a)
        })
        .collect()
}

/// Phone timings of `audio` (forced alignment with `transcript`, else
/// allphone), cached under `<out>/phone_cache/` by a hash of the audio and
/// the transcript, so rebuilding a corpus (e.g. after changing the labeler)
/// does not run pocketsphinx again.
fn cached_phones(
    cfg: &CorpusConfig,
    audio: &[f32],
    transcript: Option<&str>,
) -> Result<Vec<Phone>, String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in audio {
        for b in v.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let key = format!(
        "{h:016x}-{:016x}-{}",
        hash64(transcript.unwrap_or(""), 0),
        audio.len()
    );
    let dir = cfg.out_dir.join("phone_cache");
    let path = dir.join(format!("{key}.tsv"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let phones: Vec<Phone> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split('\t');
                Some(Phone::new(
                    it.next()?,
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                ))
            })
            .collect();
        return Ok(phones);
    }
    let phones = match transcript {
        Some(t) => sphinx::align(audio, t).map_err(|e| e.to_string())?,
        None => sphinx::allphone(audio).map_err(|e| e.to_string())?,
    };
    let _ = std::fs::create_dir_all(&dir);
    let text: String = phones
        .iter()
        .map(|p| format!("{}\t{}\t{}\n", p.phone, p.start, p.end))
        .collect();
    let _ = std::fs::write(&path, text);
    Ok(phones)
}

/// Labels `n` frames whose weights describe the centre of each frame
/// (`(f + 0.5) / fps`), as the model's frames do: the labeler samples frame
/// starts, so label at twice the rate and keep the odd frames.
fn label_centres(
    labeler: &PhoneticLabeler,
    audio: &[f32],
    phones: &[Phone],
    n: usize,
    fps: f64,
) -> Vec<[f32; BLENDSHAPE_COUNT]> {
    labeler
        .label(audio, phones, 2 * n, 2.0 * fps)
        .into_iter()
        .skip(1)
        .step_by(2)
        .collect()
}

fn process(
    job: &Job,
    cfg: &CorpusConfig,
    labeler: &PhoneticLabeler,
    fg_map: &talking_head_core::rig::RetargetMap,
    work: &Path,
) -> Result<Clip, String> {
    let fps = cfg.fps as f64;
    let spf = 16_000 / cfg.fps as usize;
    let id = job.id().to_string();
    let seed = hash64(&id, cfg.seed);
    let n_frames = |len: usize| len.div_ceil(spf);
    let (meta, audio, frames, phones) = match job {
        Job::Facegood { id } => {
            let mut clip = facegood::load_clip(&cfg.data_dir.join("facegood"), id, fg_map)
                .map_err(|e| e.to_string())?;
            if let Some(max) = cfg.max_clip_secs {
                clip.audio_16k.truncate((max * 16_000.0) as usize);
                clip.arkit
                    .truncate((max * facegood::FACEGOOD_FPS).ceil() as usize + 1);
            }
            let n = n_frames(clip.audio_16k.len());
            let frames = resample_curves(&clip.arkit, facegood::FACEGOOD_FPS, n, fps, 1.0);
            let split = if cfg.facegood_val.contains(id) {
                Split::Val
            } else {
                Split::Train
            };
            let meta = ClipMeta {
                id: format!("facegood_{id}"),
                source: "facegood".into(),
                speaker: "facegood:1114".into(),
                language: "cmn".into(),
                style: "facegood".into(),
                emotion: emotion_vector(0, 0.0),
                license: "MIT (FACEGOOD-Audio2Face)".into(),
                duration_secs: clip.audio_16k.len() as f64 / 16_000.0,
                split,
                labels: "animator".into(),
                augmentation: None,
                augmented_from: None,
                has_phones: false,
                frames: n,
            };
            (meta, clip.audio_16k, frames, None)
        }
        Job::Real {
            id,
            path,
            source,
            speaker,
            language,
            license,
            transcript,
            split_hint,
        } => {
            let (mut audio, _) = load_mono_16k(path).map_err(|e| e.to_string())?;
            if let Some(max) = cfg.max_clip_secs {
                audio.truncate((max * 16_000.0) as usize);
            }
            let n = n_frames(audio.len());
            // A transcript only fits the whole recording.
            let transcript = if cfg.max_clip_secs.is_some() {
                &None
            } else {
                transcript
            };
            let (phones, how) = match transcript {
                Some(t) => match cached_phones(cfg, &audio, Some(t)) {
                    Ok(p) => (p, "phonetic-aligned"),
                    Err(_) => (cached_phones(cfg, &audio, None)?, "phonetic-allphone"),
                },
                None => (cached_phones(cfg, &audio, None)?, "phonetic-allphone"),
            };
            let frames = label_centres(labeler, &audio, &phones, n, fps);
            let meta = ClipMeta {
                id: id.clone(),
                source: source.to_string(),
                speaker: speaker.clone(),
                language: language.clone(),
                style: "phonetic".into(),
                emotion: emotion_vector(0, 0.0),
                license: license.to_string(),
                duration_secs: audio.len() as f64 / 16_000.0,
                split: split_hint
                    .unwrap_or_else(|| speaker_split(speaker, cfg.seed, cfg.val_fraction)),
                labels: how.into(),
                augmentation: None,
                augmented_from: None,
                has_phones: true,
                frames: n,
            };
            (meta, audio, frames, Some(phones))
        }
        Job::Tts {
            id,
            voice,
            text,
            emotion,
            intensity,
        } => {
            let (audio, exact) = tts::synthesize_with_phones(
                voice,
                text,
                &EMOTION_PROSODY[*emotion],
                &work.join(id),
            )
            .map_err(|e| e.to_string())?;
            let n = n_frames(audio.len());
            // flite's own timings are exact; English espeak-ng speech is
            // force-aligned to its text; other languages use allphone.
            let (phones, how) = match exact {
                Some(p) => (
                    p.into_iter()
                        .map(|(ph, a, b)| Phone::new(ph, a, b))
                        .collect::<Vec<_>>(),
                    "phonetic-exact",
                ),
                None if voice.language == "en" => match cached_phones(cfg, &audio, Some(text)) {
                    Ok(p) => (p, "phonetic-aligned"),
                    Err(_) => (cached_phones(cfg, &audio, None)?, "phonetic-allphone"),
                },
                None => (cached_phones(cfg, &audio, None)?, "phonetic-allphone"),
            };
            // Labels stay neutral: emotion offsets are applied when batches
            // are drawn (`dataset::EmotionAugment`), for every clip alike.
            let frames = label_centres(labeler, &audio, &phones, n, fps);
            let emo = emotion_vector(*emotion, *intensity);
            let speaker = voice.speaker_id();
            let meta = ClipMeta {
                id: id.clone(),
                source: match voice.engine {
                    TtsEngine::Espeak => "espeak".into(),
                    TtsEngine::Flite => "flite".into(),
                },
                split: speaker_split(&speaker, cfg.seed, cfg.val_fraction),
                speaker,
                language: voice.language.clone(),
                style: "phonetic".into(),
                emotion: emo,
                license: "generated (espeak-ng GPL-3.0 / flite BSD-like); text CC0".into(),
                duration_secs: audio.len() as f64 / 16_000.0,
                labels: how.into(),
                augmentation: None,
                augmented_from: None,
                has_phones: true,
                frames: n,
            };
            (meta, audio, frames, Some(phones))
        }
    };
    if audio.is_empty() {
        return Err("no audio".into());
    }
    // No upper-face layer in the labels: blinks, gaze and brow motion come
    // from `upper_face::UpperFaceGenerator` at run time (plugin and `bake`),
    // so the model's own upper face is the emotion signature alone and rests
    // at neutral.
    let _ = seed;
    Ok(Clip {
        meta,
        audio,
        frames,
        phones,
    })
}

/// Writes 16 kHz mono 16-bit PCM (samples clamped to [-1, 1]); the corpus's
/// audio format.
pub fn write_wav(path: &Path, audio: &[f32]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w =
        hound::WavWriter::create(path, spec).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in audio {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.finalize().map_err(|e| format!("{}: {e}", path.display()))
}

fn write_clip(clip: &Clip, dir: &Path, fps: u32) -> Result<(), String> {
    let base = dir.join(&clip.meta.id);
    write_wav(&with_ext(&base, "wav"), &clip.audio)?;
    let take =
        LiveLinkFaceTake::from_weights(&clip.frames, fps as f64, 0.0).map_err(|e| e.to_string())?;
    take.write_file(with_ext(&base, "csv"))
        .map_err(|e| e.to_string())?;
    if let Some(phones) = &clip.phones {
        let mut s = String::from("phone\tstart\tend\n");
        for p in phones {
            s.push_str(&format!("{}\t{:.3}\t{:.3}\n", p.phone, p.start, p.end));
        }
        std::fs::write(with_ext(&base, "phones.tsv"), s).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Summary figures of a built corpus (also written as `report.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CorpusReport {
    /// Total hours (original + augmented).
    pub hours_total: f64,
    /// Hours of original (non-augmented) audio, each recording counted once
    /// (FACEGOOD's audio carries two label styles).
    pub hours_original: f64,
    /// Hours by source (originals only).
    pub hours_by_source: BTreeMap<String, f64>,
    /// Hours by language (originals only).
    pub hours_by_language: BTreeMap<String, f64>,
    /// Hours by style (all clips).
    pub hours_by_style: BTreeMap<String, f64>,
    /// Hours by dominant emotion (all clips).
    pub hours_by_emotion: BTreeMap<String, f64>,
    /// Hours by split (all clips).
    pub hours_by_split: BTreeMap<String, f64>,
    /// Distinct voices (speakers).
    pub voices: usize,
    /// Distinct languages.
    pub languages: usize,
    /// Speakers in both splits (must be 0, FACEGOOD's single speaker excepted).
    pub speakers_in_both_splits: Vec<String>,
    /// Mean label value per ARKit channel (all frames).
    pub channel_mean: BTreeMap<String, f32>,
    /// Fraction of frames with closed lips (mouthClose > 0.3 and jawOpen < 0.1).
    pub closure_fraction: f32,
    /// Clips that failed (id, reason).
    pub failures: Vec<(String, String)>,
    /// The phonetic labeler against the FACEGOOD animator, per clip:
    /// (clip, held out from labeler tuning, jawOpen r labeler, jawOpen r loudness baseline).
    pub labeler_facegood: Vec<(String, bool, f32, f32)>,
}

/// The FACEGOOD → ARKit retarget map a build uses: the file named by
/// [`CorpusConfig::facegood_retarget`], else the shipped map.
///
/// # Errors
/// [`CorpusError::InvalidConfig`] when the file cannot be read or is not a
/// retarget map.
pub fn facegood_retarget_map(cfg: &CorpusConfig) -> Result<RetargetMap, CorpusError> {
    match &cfg.facegood_retarget {
        None => facegood::default_retarget_map().map_err(|e| CorpusError::Missing(e.to_string())),
        Some(path) => RetargetMap::load_json(path).map_err(|e| {
            CorpusError::InvalidConfig(format!("facegood_retarget {}: {e}", path.display()))
        }),
    }
}

/// Builds the corpus; `progress(done, total)` is called as clips finish.
pub fn build(
    cfg: &CorpusConfig,
    jobs_parallel: usize,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<CorpusReport, CorpusError> {
    use rayon::prelude::*;
    let fg_map = facegood_retarget_map(cfg)?;
    let clips_dir = cfg.out_dir.join("clips");
    std::fs::create_dir_all(&clips_dir).map_err(|e| CorpusError::Io(clips_dir.clone(), e))?;
    let work = cfg.out_dir.join("work");
    std::fs::create_dir_all(&work).map_err(|e| CorpusError::Io(work.clone(), e))?;
    let jobs = plan(cfg)?;
    let labeler = PhoneticLabeler::default();
    let total = jobs.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs_parallel.max(1))
        .build()
        .map_err(|e| CorpusError::Missing(e.to_string()))?;
    let aug_n = |id: &str| -> usize {
        let whole = cfg.augment_per_clip.floor() as usize;
        let frac = cfg.augment_per_clip - whole as f64;
        let u = (hash64(id, cfg.seed ^ 0xa06) % 1000) as f64 / 1000.0;
        whole + usize::from(u < frac)
    };
    let results: Vec<Result<Vec<ClipMeta>, (String, String)>> = pool.install(|| {
        jobs.par_iter()
            .map(|job| {
                let r = (|| -> Result<Vec<ClipMeta>, String> {
                    let clip = process(job, cfg, &labeler, &fg_map, &work)?;
                    write_clip(&clip, &clips_dir, cfg.fps)?;
                    let mut metas = vec![clip.meta.clone()];
                    if clip.meta.split == Split::Train {
                        for k in 0..aug_n(&clip.meta.id) {
                            let a = augment(&clip, k, cfg, &work)?;
                            write_clip(&a, &clips_dir, cfg.fps)?;
                            metas.push(a.meta);
                        }
                    }
                    Ok(metas)
                })();
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(d, total);
                r.map_err(|e| (job.id().to_string(), e))
            })
            .collect()
    });
    let _ = std::fs::remove_dir_all(&work);
    let mut clips = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(m) => clips.extend(m),
            Err(f) => failures.push(f),
        }
    }
    clips.sort_by(|a, b| a.id.cmp(&b.id));
    let manifest = CorpusManifest {
        version: CORPUS_VERSION,
        fps: cfg.fps,
        seed: cfg.seed,
        clips,
    };
    let mpath = cfg.out_dir.join("corpus.json");
    std::fs::write(
        &mpath,
        serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    )
    .map_err(|e| CorpusError::Io(mpath.clone(), e))?;
    let mut report = summarize(&manifest, &cfg.out_dir)?;
    report.failures = failures;
    report.labeler_facegood = labeler_vs_animator(cfg, &labeler, &fg_map);
    let rpath = cfg.out_dir.join("report.json");
    std::fs::write(
        &rpath,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| CorpusError::Io(rpath.clone(), e))?;
    let mdpath = cfg.out_dir.join("report.md");
    std::fs::write(&mdpath, report_markdown(&report, &manifest))
        .map_err(|e| CorpusError::Io(mdpath.clone(), e))?;
    Ok(report)
}
