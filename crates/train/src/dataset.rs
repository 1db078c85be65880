//! Training data in memory: per clip the causal log-mel stacks (one row per
//! animation frame), the ARKit label frames, per-frame phone classes, style
//! and emotion, loaded from a corpus directory (see [`crate::corpus`]).

use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::manifest::{ClipMeta, CorpusError, CorpusManifest, Split, with_ext};
use talking_head_core::features::{FeatureNorm, log_mel};
use talking_head_core::model::ModelError;
use talking_head_core::model::{EMOTION_COUNT, ModelConfig};
use talking_head_core::rig::{BLENDSHAPE_COUNT, LiveLinkFaceTake};

/// Per-channel weights of the motion losses (x0, velocity, dynamic range),
/// `[52]` in ARKit order, normalised to sum 1: `1` for the upper face,
/// `mouth_weight` for the lower face ([`talking_head_core::rig::MOUTH_CHANNELS`]),
/// then each entry of `overrides` (ARKit name, any case → weight) replaces
/// its channel's weight. With 31 lower-face channels weighted alike, jawOpen
/// is about 1/40 of the loss; overrides let the articulation channels that
/// carry lip sync (jawOpen, mouthClose, mouthFunnel, mouthPucker, …) count
/// more (issue 10).
///
/// # Errors
/// [`ModelError::InvalidConfig`]
/// for an unknown channel name, a negative or non-finite weight, or weights
/// that sum to zero.
pub fn loss_channel_weights(
    mouth_weight: f32,
    overrides: &std::collections::BTreeMap<String, f32>,
) -> Result<Vec<f32>, talking_head_core::model::ModelError> {
    use talking_head_core::rig::MOUTH_CHANNELS;
    let bad = |w: f32| !w.is_finite() || w < 0.0;
    if bad(mouth_weight) {
        return Err(ModelError::InvalidConfig(format!(
            "mouth_weight must be finite and >= 0, got {mouth_weight}"
        )));
    }
    let mut cw = vec![1.0f32; BLENDSHAPE_COUNT];
    for &m in MOUTH_CHANNELS.iter() {
        cw[m] = mouth_weight;
    }
    set_named_channels(
        &mut cw,
        overrides,
        "channel_weights",
        "weight",
        "finite and >= 0",
        |w| !bad(w),
    )?;
    let sum: f32 = cw.iter().sum();
    if sum <= 0.0 {
        return Err(ModelError::InvalidConfig(
            "loss channel weights sum to zero".into(),
        ));
    }
    Ok(cw.iter().map(|w| w / sum).collect())
}

/// Writes the value of each ARKit channel named in `map` into `out`
/// (`[52]`, indexed by [`talking_head_core::rig::Blendshape::index`]): the
/// per-channel settings of the training and distillation configs.
///
/// # Errors
/// [`ModelError::InvalidConfig`], naming the config `field`, for an unknown
/// channel name or a value that `valid` refuses (`"{field}: {what} of `name`
/// must be {expected}"`).
pub fn set_named_channels(
    out: &mut [f32],
    map: &std::collections::BTreeMap<String, f32>,
    field: &str,
    what: &str,
    expected: &str,
    valid: impl Fn(f32) -> bool,
) -> Result<(), ModelError> {
    for (name, &v) in map {
        let b = talking_head_core::rig::Blendshape::from_name(name).ok_or_else(|| {
            ModelError::InvalidConfig(format!("{field}: unknown ARKit blendshape `{name}`"))
        })?;
        if !valid(v) {
            return Err(ModelError::InvalidConfig(format!(
                "{field}: {what} of `{name}` must be {expected}, got {v}"
            )));
        }
        out[b.index()] = v;
    }
    Ok(())
}

/// The 39 ARPAbet phones of CMUdict plus `SIL`: the classes of the
/// encoder's auxiliary phone-classification loss.
pub const PHONE_CLASSES: [&str; 40] = [
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
];

/// Class index of an ARPAbet phone (stress digits ignored; schwa `AX` is
/// `AH`, as CMUdict's `AH0`); unknown → `None`.
pub fn phone_class(p: &str) -> Option<u32> {
    let mut p = p
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_ascii_uppercase();
    if p == "AX" {
        p = "AH".into();
    }
    PHONE_CLASSES.iter().position(|c| *c == p).map(|i| i as u32)
}

/// One clip ready for training.
#[derive(Clone, Debug)]
pub struct ClipData {
    /// Metadata from the manifest.
    pub meta: ClipMeta,
    /// `[frames, input_dim]` row-major raw log-mel stacks.
    pub features: Vec<f32>,
    /// `[frames]` ARKit label frames in [0, 1].
    pub labels: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// `[frames]` phone class per frame; `u32::MAX` where unknown.
    pub phones: Vec<u32>,
    /// Style id in the model config.
    pub style: usize,
}

impl ClipData {
    /// Number of animation frames.
    pub fn frames(&self) -> usize {
        self.labels.len()
    }
}

/// Loads one clip's audio, labels and phones; features use the config's
/// mel settings and frame rate (frames = labels, truncated to the shorter).
pub fn load_clip(dir: &Path, meta: &ClipMeta, cfg: &ModelConfig) -> Result<ClipData, CorpusError> {
    load_clip_with(dir, meta, cfg, None)
}

/// As [`load_clip`]; with `relabel`, clips of style `phonetic` that have
/// phone timings get fresh labels from that labeler (the stored phones and
/// audio, labelled at frame centres as the corpus does), so a labeler
/// change needs no corpus rebuild.
pub fn load_clip_with(
    dir: &Path,
    meta: &ClipMeta,
    cfg: &ModelConfig,
    relabel: Option<&crate::phonetic::PhoneticLabeler>,
) -> Result<ClipData, CorpusError> {
    let base = dir.join("clips").join(&meta.id);
    let wav = with_ext(&base, "wav");
    let (audio, _) = talking_head_core::audio::load_mono_16k(&wav)
        .map_err(|e| CorpusError::Format(wav.clone(), e.to_string()))?;
    let spf = cfg.samples_per_frame();
    let n_audio = audio.len().div_ceil(spf);
    let mut padded = audio;
    padded.resize(n_audio * spf, 0.0);
    let mel =
        log_mel(&cfg.mel, &padded).map_err(|e| CorpusError::Format(wav.clone(), e.to_string()))?;
    let dim = cfg.input_dim();
    let csv = with_ext(&base, "csv");
    let take = LiveLinkFaceTake::read_file(&csv)
        .map_err(|e| CorpusError::Format(csv.clone(), e.to_string()))?;
    let n = n_audio.min(take.frames.len()).min(mel.len() / dim);
    let mut labels: Vec<[f32; BLENDSHAPE_COUNT]> = take.frames[..n]
        .iter()
        .map(|f| std::array::from_fn(|c| f.blendshapes[c].clamp(0.0, 1.0)))
        .collect();
    if let Some(lab) = relabel
        && meta.has_phones
        && meta.style == "phonetic"
        && let Some(ph) = crate::manifest::read_phones_tsv(&with_ext(&base, "phones.tsv"))
    {
        let phones: Vec<crate::sphinx::Phone> = ph
            .into_iter()
            .map(|(p, a, b)| crate::sphinx::Phone::new(p, a, b))
            .collect();
        let fps = cfg.fps as f64;
        let fresh: Vec<_> = lab
            .label(&padded, &phones, 2 * n, 2.0 * fps)
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect();
        // The labeler writes the lower face only; keep the rest as stored.
        for (l, f) in labels.iter_mut().zip(fresh) {
            for &k in talking_head_core::rig::MOUTH_CHANNELS.iter() {
                l[k] = f[k];
            }
        }
    }
    let mut phones = vec![u32::MAX; n];
    let tsv = with_ext(&base, "phones.tsv");
    if meta.has_phones
        && let Ok(s) = std::fs::read_to_string(&tsv)
    {
        for line in s.lines().skip(1) {
            let mut it = line.split('\t');
            let (Some(p), Some(a), Some(b)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (Ok(a), Ok(b)) = (a.parse::<f64>(), b.parse::<f64>()) else {
                continue;
            };
            let Some(class) = phone_class(p) else {
                continue;
            };
            let fa = (a * cfg.fps as f64).floor().max(0.0) as usize;
            let fb = ((b * cfg.fps as f64).ceil() as usize).min(n);
            for slot in phones.iter_mut().take(fb).skip(fa) {
                *slot = class;
            }
        }
    }
    let style = cfg.style_id(&meta.style).unwrap_or(0);
    Ok(ClipData {
        meta: meta.clone(),
        features: mel[..n * dim].to_vec(),
        labels,
        phones,
        style,
    })
}

/// Loads every clip of a split (optionally at most `limit` clips).
pub fn load_split(
    dir: &Path,
    split: Split,
    cfg: &ModelConfig,
    limit: Option<usize>,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<ClipData>, CorpusError> {
    load_split_with(dir, split, cfg, limit, None, progress)
}

/// As [`load_split`], relabelling phonetic clips with `relabel` (see
/// [`load_clip_with`]).
pub fn load_split_with(
    dir: &Path,
    split: Split,
    cfg: &ModelConfig,
    limit: Option<usize>,
    relabel: Option<&crate::phonetic::PhoneticLabeler>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<ClipData>, CorpusError> {
    let manifest = CorpusManifest::load(dir)?;
    let metas: Vec<&ClipMeta> = manifest
        .clips
        .iter()
        .filter(|c| c.split == split)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let total = metas.len();
    let mut out = Vec::with_capacity(total);
    for (i, m) in metas.into_iter().enumerate() {
        let c = load_clip_with(dir, m, cfg, relabel)?;
        if c.frames() > 0 {
            out.push(c);
        }
        progress(i + 1, total);
    }
    Ok(out)
}

/// Keeps the clips whose label kind ([`ClipMeta::labels`]: `animator`,
/// `phonetic-exact`, `phonetic-aligned`, `phonetic-allphone`, …) is in
/// `kinds` ([`crate::trainer::TrainConfig::train_labels`]); an empty list
/// keeps every clip. Returns how many were kept.
///
/// # Errors
/// [`ModelError::InvalidConfig`] when `kinds` is not empty and no clip is
/// left (a typo in a config must not start an empty run).
pub fn retain_label_kinds(
    clips: &mut Vec<ClipData>,
    kinds: &[String],
) -> Result<usize, ModelError> {
    if kinds.is_empty() {
        return Ok(clips.len());
    }
    clips.retain(|c| kinds.contains(&c.meta.labels));
    none_of_kinds(clips.len(), kinds, "train_labels")
}

/// `Ok(n)`, or the error for a non-empty `kinds` list (config field
/// `field`) that matched no clip.
fn none_of_kinds(n: usize, kinds: &[String], field: &str) -> Result<usize, ModelError> {
    if n == 0 {
        return Err(ModelError::InvalidConfig(format!(
            "no training clip has labels of the kinds {kinds:?} ({field}); corpus label \
             kinds are animator, phonetic-exact, phonetic-aligned and phonetic-allphone"
        )));
    }
    Ok(n)
}

/// Counts the clips whose label kind is in `kinds`
/// ([`crate::trainer::TrainConfig::weak_labels`]); an empty list counts 0.
///
/// # Errors
/// [`ModelError::InvalidConfig`] when `kinds` is not empty and no clip has
/// any of them (a typo must not silently train without the mask).
pub fn count_label_kinds(clips: &[ClipData], kinds: &[String]) -> Result<usize, ModelError> {
    if kinds.is_empty() {
        return Ok(0);
    }
    let n = clips
        .iter()
        .filter(|c| kinds.contains(&c.meta.labels))
        .count();
    none_of_kinds(n, kinds, "weak_labels")
}

/// Per-window loss weights `[weak.len() * 52]` from the per-channel weights
/// `base` (`[52]`): a weak window ([`WindowBatch::weak`]) keeps `jawOpen`
/// and every channel outside the lower face
/// ([`talking_head_core::rig::arkit::MOUTH_CHANNELS`]) and zeroes the other
/// mouth channels; other windows keep `base`.
pub fn weak_window_weights(base: &[f32], weak: &[bool]) -> Vec<f32> {
    use talking_head_core::rig::arkit::{Blendshape, MOUTH_CHANNELS};
    let mut keep = vec![1.0f32; base.len()];
    for &k in &MOUTH_CHANNELS {
        if k != Blendshape::JawOpen.index() && k < keep.len() {
            keep[k] = 0.0;
        }
    }
    weak.iter()
        .flat_map(|&w| {
            base.iter()
                .zip(&keep)
                .map(move |(&v, &k)| if w { v * k } else { v })
        })
        .collect()
}

/// Feature normalisation from a sample of training clips (mel bins; the
/// stacked frames share the per-bin statistics).
pub fn feature_norm(clips: &[ClipData], n_mels: usize) -> FeatureNorm {
    let mut rows = Vec::new();
    for c in clips.iter().step_by((clips.len() / 400).max(1)) {
        rows.extend_from_slice(&c.features);
    }
    FeatureNorm::from_frames(&rows, n_mels)
}

/// Per-channel mean and std of the labels as training sees them: with
/// emotion augmentation, each sampled frame (every third) gets a drawn
/// emotion's offsets (seeded), so the emotion-only channels are scaled by
/// their real spread. Std floored at 0.05.
pub fn motion_stats_augmented(
    clips: &[ClipData],
    aug: Option<&EmotionAugment>,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    use rand::SeedableRng;
    let Some(aug) = aug else {
        return motion_stats(clips);
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5747);
    let mut frames = Vec::new();
    for c in clips {
        let e = if c.meta.emotion[1..].iter().any(|&w| w > 0.0) {
            c.meta.emotion
        } else {
            aug.draw(&mut rng)
        };
        for f in c.labels.iter().step_by(3) {
            let mut f = *f;
            apply_emotion_frame(&mut f, &e);
            frames.push(f);
        }
    }
    frame_stats(frames.iter())
}

/// Per-channel mean and std of the labels (std floored at 0.05).
pub fn motion_stats(clips: &[ClipData]) -> (Vec<f32>, Vec<f32>) {
    frame_stats(clips.iter().flat_map(|c| c.labels.iter()))
}

fn frame_stats<'a>(
    frames: impl Iterator<Item = &'a [f32; BLENDSHAPE_COUNT]>,
) -> (Vec<f32>, Vec<f32>) {
    let mut sum = [0f64; BLENDSHAPE_COUNT];
    let mut sq = [0f64; BLENDSHAPE_COUNT];
    let mut n = 0f64;
    for f in frames {
        for k in 0..BLENDSHAPE_COUNT {
            sum[k] += f[k] as f64;
            sq[k] += (f[k] as f64).powi(2);
        }
        n += 1.0;
    }
    let n = n.max(1.0);
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std: Vec<f32> = (0..BLENDSHAPE_COUNT)
        .map(|k| ((sq[k] / n - (sum[k] / n).powi(2)).max(0.0).sqrt() as f32).max(0.05))
        .collect();
    (mean, std)
}

/// A random training window: `(clip index, start frame)` with `len` frames
/// (clips shorter than `len` start at 0 and are padded by the caller).
pub fn sample_window(clips: &[ClipData], len: usize, rng: &mut impl Rng) -> (usize, usize) {
    let all: Vec<usize> = (0..clips.len()).collect();
    sample_window_from(clips, &all, len, rng)
}

/// Like [`sample_window`], drawing only among the clips `pool` (indices
/// into `clips`), proportionally to their length.
pub fn sample_window_from(
    clips: &[ClipData],
    pool: &[usize],
    len: usize,
    rng: &mut impl Rng,
) -> (usize, usize) {
    let total: usize = pool.iter().map(|&i| clips[i].frames()).sum();
    let mut r = rng.random_range(0..total.max(1));
    let mut idx = pool.first().copied().unwrap_or(0);
    for &i in pool {
        let c = &clips[i];
        if r < c.frames() {
            idx = i;
            break;
        }
        r -= c.frames();
    }
    let n = clips[idx].frames();
    let start = if n > len {
        rng.random_range(0..=n - len)
    } else {
        0
    };
    (idx, start)
}

/// Emotion of a clip.
pub fn clip_emotion(c: &ClipData) -> [f32; EMOTION_COUNT] {
    c.meta.emotion
}

/// Whether a clip carries real animator labels (FACEGOOD).
pub fn is_animator(c: &ClipData) -> bool {
    c.meta.labels == "animator"
}

/// Provenance tag before the list of FACEGOOD recordings a checkpoint was
/// trained on ([`facegood_recordings`], [`facegood_recordings_seen`]).
pub const FACEGOOD_RECORDINGS_TAG: &str = "FACEGOOD recordings in training: [";

/// The FACEGOOD recordings (`1114_2_01`, …) whose audio is among `clips`,
/// with animator labels or pseudo-labels, augmented copies included;
/// sorted, each once.
pub fn facegood_recordings(clips: &[ClipData]) -> Vec<String> {
    let mut ids: Vec<String> = clips
        .iter()
        .filter(|c| c.meta.source == "facegood")
        .map(|c| {
            let id = c.meta.augmented_from.as_deref().unwrap_or(&c.meta.id);
            id.strip_prefix("facegood_audio_")
                .or_else(|| id.strip_prefix("facegood_"))
                .unwrap_or(id)
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `FACEGOOD recordings in training: [a, b]` for a checkpoint's provenance.
pub fn facegood_recordings_note(clips: &[ClipData]) -> String {
    format!(
        "{FACEGOOD_RECORDINGS_TAG}{}]",
        facegood_recordings(clips).join(", ")
    )
}

/// Every FACEGOOD recording a provenance description lists as trained on
/// (a distilled student quotes its teacher's list as well as its own).
/// Checkpoints written before the list existed give an empty set.
pub fn facegood_recordings_seen(description: &str) -> std::collections::BTreeSet<String> {
    description
        .split(FACEGOOD_RECORDINGS_TAG)
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(list, _)| list))
        .flat_map(|list| list.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Emotion augmentation of training windows: every window, real speech
/// included, gets an emotion vector (single emotions, blends of two, and
/// smooth changes within the window), and its labels get that emotion's
/// ARKit offsets ([`crate::emotion::emotion_offsets`]) frame by
/// frame. Offsets on the lip corners ease where the labels close the lips
/// (/p b m/), and the jaw keeps following speech. Clips synthesised with an
/// emotional prosody keep their own emotion, so the prosody stays a cue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EmotionAugment {
    /// Probability that a neutral-prosody window stays neutral.
    pub neutral: f64,
    /// Probability that a non-neutral window blends two emotions.
    pub blend: f64,
    /// Probability that the emotion changes within the window.
    pub change: f64,
    /// Lowest intensity drawn.
    pub min_intensity: f32,
    /// Probability that a window's motion history (the teacher-forced past
    /// frames the denoiser sees) carries a different, independently drawn
    /// emotion than its targets. Without it the history alone reveals the
    /// emotion, the denoiser learns to copy it from there and ignores the
    /// emotion input, so at run time (history starting neutral) emotion
    /// barely shows.
    #[serde(default = "default_history_mismatch")]
    pub history_mismatch: f64,
}

fn default_history_mismatch() -> f64 {
    0.5
}

impl Default for EmotionAugment {
    fn default() -> Self {
        Self {
            neutral: 0.35,
            blend: 0.2,
            change: 0.25,
            min_intensity: 0.2,
            history_mismatch: default_history_mismatch(),
        }
    }
}

impl EmotionAugment {
    /// A random emotion vector: non-neutral weights in [0, 1]; the neutral
    /// weight is either `1 - sum` (as `emotion_vector` writes it) or 0 (as
    /// `--emotion happy=0.5` parses), so both spellings mean the same face.
    pub fn draw(&self, rng: &mut impl Rng) -> [f32; EMOTION_COUNT] {
        let mut e = [0f32; EMOTION_COUNT];
        if rng.random_bool(self.neutral.clamp(0.0, 1.0)) {
            e[0] = 1.0;
            return e;
        }
        let lo = self.min_intensity.clamp(0.0, 1.0);
        let a = rng.random_range(1..EMOTION_COUNT);
        if rng.random_bool(self.blend.clamp(0.0, 1.0)) {
            let mut b = rng.random_range(1..EMOTION_COUNT);
            if b == a {
                b = 1 + (b % (EMOTION_COUNT - 1));
            }
            e[a] = rng.random_range(lo..=1.0) * 0.7;
            e[b] = rng.random_range(lo..=1.0) * 0.7;
        } else {
            e[a] = rng.random_range(lo..=1.0);
        }
        let sum: f32 = e[1..].iter().sum();
        if rng.random_bool(0.5) {
            e[0] = (1.0 - sum).max(0.0);
        }
        e
    }

    /// Per-frame emotion of a window of `n` frames for a clip whose own
    /// emotion is `clip`: the clip's if non-neutral, else a draw, with a
    /// smooth (raised-cosine, 0.2–0.6 s at `fps`) change to a second draw
    /// with probability `change`.
    pub fn window(
        &self,
        clip: &[f32; EMOTION_COUNT],
        n: usize,
        fps: f64,
        rng: &mut impl Rng,
    ) -> Vec<[f32; EMOTION_COUNT]> {
        if clip[1..].iter().any(|&w| w > 0.0) {
            return vec![*clip; n];
        }
        let a = self.draw(rng);
        if n < 4 || !rng.random_bool(self.change.clamp(0.0, 1.0)) {
            return vec![a; n];
        }
        let b = self.draw(rng);
        let at = rng.random_range(0..n);
        let len = (rng.random_range(0.2..0.6) * fps).max(1.0) as usize;
        (0..n)
            .map(|f| {
                let x = if f < at {
                    0.0
                } else {
                    ((f - at) as f32 / len as f32).min(1.0)
                };
                let g = 0.5 - 0.5 * (std::f32::consts::PI * x).cos();
                std::array::from_fn(|k| a[k] * (1.0 - g) + b[k] * g)
            })
            .collect()
    }
}

/// Applies an emotion's ARKit offsets to one neutral label frame:
/// `w + (1 - w) * offset`. Offsets on the lip corners and lips (smile,
/// frown, stretch, upper-lip raise, dimple, press) ease by up to 80 % where
/// the label closes the lips, so /p b m/ closures survive a smile.
pub fn apply_emotion_frame(f: &mut [f32; BLENDSHAPE_COUNT], emotion: &[f32; EMOTION_COUNT]) {
    use talking_head_core::rig::Blendshape as B;
    let mut offset = talking_head_core::model::emotion_rest_face(emotion);
    let closure = (f[B::MouthClose.index()] * 2.0
        + f[B::MouthPressLeft.index()]
        + f[B::MouthPressRight.index()]
        + f[B::MouthRollLower.index()]
        + f[B::MouthRollUpper.index()])
    .clamp(0.0, 1.0);
    let ease = 1.0 - 0.8 * closure;
    for ch in [
        B::MouthSmileLeft,
        B::MouthSmileRight,
        B::MouthFrownLeft,
        B::MouthFrownRight,
        B::MouthStretchLeft,
        B::MouthStretchRight,
        B::MouthUpperUpLeft,
        B::MouthUpperUpRight,
        B::MouthDimpleLeft,
        B::MouthDimpleRight,
    ] {
        offset[ch.index()] *= ease;
    }
    for (w, o) in f.iter_mut().zip(offset) {
        *w = (*w + (1.0 - *w) * o).clamp(0.0, 1.0);
    }
}

/// Animator windows in a batch of `batch` at share `fraction`: the nearest
/// whole number, so `0.2` and `0.3` of 8 are both 2 windows
/// ([`animator_fraction_check`] says so up front).
pub fn animator_windows(batch: usize, fraction: f64) -> usize {
    if fraction > 0.0 {
        ((batch as f64 * fraction).round() as usize).min(batch)
    } else {
        0
    }
}

/// Checks a config's `animator_fraction` against its `batch`.
///
/// # Errors
/// [`ModelError::InvalidConfig`] unless the share is finite and in
/// `[0, 1]`. `Ok(Some(note))` when `batch × fraction` is not a whole number
/// of windows: the note says what it rounds to, for the tools to print.
pub fn animator_fraction_check(batch: usize, fraction: f64) -> Result<Option<String>, ModelError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(ModelError::InvalidConfig(format!(
            "animator_fraction must be in [0, 1], got {fraction}"
        )));
    }
    let exact = batch as f64 * fraction;
    let n = animator_windows(batch, fraction);
    Ok(((exact - n as f64).abs() > 1e-9).then(|| {
        format!(
            "animator_fraction {fraction} of batch {batch} is {exact:.2} windows; \
             every batch draws {n} (share {:.3})",
            n as f64 / batch.max(1) as f64
        )
    }))
}

/// How batches are drawn beyond their size.
#[derive(Clone, Debug, Default)]
pub struct BatchOptions {
    /// Share of each batch's windows drawn from clips with real animator
    /// labels (0: windows drawn from all clips by length).
    pub animator_fraction: f64,
    /// Emotion augmentation (none: each clip's own emotion, labels as stored).
    pub emotion: Option<EmotionAugment>,
    /// Vocal tract length perturbation: each window's log-mel frequency axis
    /// is warped by a factor drawn uniformly from `[1 − r, 1 + r]` (see
    /// [`vtlp_source_bins`]); `0` disables it and draws nothing, so batches
    /// are those of a run without the option.
    pub vtlp_range: f64,
    /// Label kinds whose windows are weak ([`WindowBatch::weak`]; see
    /// [`crate::trainer::TrainConfig::weak_labels`]): their phones are
    /// unknown and the trainer masks their mouth channels but `jawOpen`.
    pub weak_labels: Vec<String>,
    /// Share of each batch's windows drawn from weak clips (after the
    /// animator windows; the rest from the other clips); `None`: weak clips
    /// are drawn with the others, by length.
    pub weak_fraction: Option<f64>,
    /// Probability that a window is a noise floor instead of its clip's
    /// audio ([`crate::noise::noise_floor_audio`]: stationary noise, no
    /// speech) with the neutral face (plus the window's emotion) as its
    /// label and `SIL` as its phones; the window keeps its clip's style and
    /// emotion. `0` disables it and draws nothing, so batches are those of
    /// a run without the option.
    pub noise_windows: f64,
}

/// Upper boundary frequency of the VTLP warp's linear part, in Hz (Jaitly
/// & Hinton 2013 use 4.8 kHz at a 16 kHz sample rate).
const VTLP_BOUNDARY_HZ: f64 = 4800.0;

/// Vocal tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract
/// Length Perturbation (VTLP) improves speech recognition", eq. 1) on a
/// log-mel frame: the spectrum is warped as `f → α f` up to
/// `F_hi · min(α, 1) / α` (`F_hi` = 4.8 kHz) and piecewise-linearly above,
/// so `f_max` stays put; `α > 1` moves formants up (a shorter vocal tract).
///
/// Returns, for each of the `mel.n_mels` output bins, the fractional index
/// of the input bin whose centre frequency maps onto it (clamped to the
/// bins). Log-mel values are mean power densities (Slaney-normalised
/// filters), so interpolating them at these positions ([`warp_log_mel`])
/// is the warped spectrum's log-mel. `α = 1` gives the identity.
pub fn vtlp_source_bins(mel: &talking_head_core::features::MelConfig, alpha: f64) -> Vec<f32> {
    use talking_head_core::features::{hz_to_mel, mel_to_hz};
    let n = mel.n_mels;
    let (lo, hi) = (
        hz_to_mel(f64::from(mel.f_min)),
        hz_to_mel(f64::from(mel.f_max)),
    );
    let s = f64::from(mel.f_max);
    let b_out = VTLP_BOUNDARY_HZ.min(s) * alpha.min(1.0);
    let b_in = b_out / alpha;
    (0..n)
        .map(|m| {
            let out_hz = mel_to_hz(lo + (hi - lo) * (m + 1) as f64 / (n + 1) as f64);
            let src_hz = if out_hz <= b_out {
                out_hz / alpha
            } else {
                s - (s - out_hz) * (s - b_in) / (s - b_out)
            };
            let pos = (hz_to_mel(src_hz) - lo) / (hi - lo) * (n + 1) as f64 - 1.0;
            pos.clamp(0.0, (n - 1) as f64) as f32
        })
        .collect()
}

/// Warps every `src.len()`-bin log-mel frame of `stack` (consecutive hops)
/// by linear interpolation at the source positions `src` of
/// [`vtlp_source_bins`].
pub fn warp_log_mel(stack: &mut [f32], src: &[f32]) {
    let n = src.len();
    let mut tmp = vec![0.0f32; n];
    for frame in stack.chunks_exact_mut(n) {
        for (t, &p) in tmp.iter_mut().zip(src) {
            let i = (p.floor() as usize).min(n - 1);
            let j = (i + 1).min(n - 1);
            let w = p - i as f32;
            *t = frame[i] * (1.0 - w) + frame[j] * w;
        }
        frame.copy_from_slice(&tmp);
    }
}

/// A batch of `b` random windows of `t` frames, normalised, with the label
/// frames the model must produce under look-ahead `L` (`n_out = t - L` per
/// window) and the `H` label frames before each window (motion history seed).
#[derive(Clone, Debug)]
pub struct WindowBatch {
    /// Windows.
    pub b: usize,
    /// Frames per window (encoder input).
    pub t: usize,
    /// Output frames per window (`t - lookahead`).
    pub n_out: usize,
    /// `[b, t, input_dim]` normalised log-mel stacks (silence after a clip's end).
    pub features: Vec<f32>,
    /// `[b * n_out]` normalised label frames (neutral after a clip's end).
    pub labels: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// `[b * history]` normalised history frames just before each window.
    pub before: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// `[b * n_out]` normalised frames the motion history is built from: the
    /// labels, or (emotion augmentation, `history_mismatch`) the same speech
    /// under another emotion.
    pub history_labels: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// `[b * n_out]` 1 for real frames, 0 for padding.
    pub mask: Vec<f32>,
    /// `[b * n_out]` phone class of each output frame (`u32::MAX` unknown).
    pub phones: Vec<u32>,
    /// `[b]` emotion of each window at its first output frame.
    pub emotions: Vec<[f32; EMOTION_COUNT]>,
    /// `[b * n_out]` emotion of each output frame.
    pub frame_emotions: Vec<[f32; EMOTION_COUNT]>,
    /// `[b]` style id of each window's clip.
    pub styles: Vec<usize>,
    /// `[b]` whether the window comes from a clip with animator labels.
    pub animator: Vec<bool>,
    /// `[b]` whether the window's clip has a weak label kind
    /// ([`BatchOptions::weak_labels`]); its `phones` are then all unknown.
    pub weak: Vec<bool>,
    /// `[b]` the label kind of each window's clip
    /// ([`crate::manifest::ClipMeta::labels`]: `animator`, `phonetic-exact`, …).
    pub label_kinds: Vec<String>,
    /// `[b]` whether the window is a noise floor ([`BatchOptions::noise_windows`]).
    pub noise: Vec<bool>,
}

/// Draws a [`WindowBatch`] under `opts`: the first
/// `round(b * animator_fraction)` windows come from animator-labelled clips
/// (when there are any), the rest from the other clips (from all clips when
/// `animator_fraction` is 0).
#[allow(clippy::too_many_arguments)]
pub fn make_batch_with(
    clips: &[ClipData],
    cfg: &ModelConfig,
    b: usize,
    t: usize,
    feature_norm: &FeatureNorm,
    motion_norm: &talking_head_core::model::MotionNorm,
    opts: &BatchOptions,
    rng: &mut impl Rng,
) -> WindowBatch {
    let dim = cfg.input_dim();
    let (l, h) = (cfg.lookahead_frames, cfg.history_frames);
    let n_out = t.saturating_sub(l);
    let mut silence = vec![-10.0f32; dim];
    feature_norm.apply(&mut silence);
    let all: Vec<usize> = (0..clips.len()).collect();
    let animator: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| is_animator(&clips[i]))
        .collect();
    let others: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| !is_animator(&clips[i]))
        .collect();
    let n_anim = if animator.is_empty() {
        0
    } else {
        animator_windows(b, opts.animator_fraction)
    };
    let mut wb = WindowBatch {
        b,
        t,
        n_out,
        features: Vec::with_capacity(b * t * dim),
        labels: Vec::with_capacity(b * n_out),
        before: Vec::with_capacity(b * h),
        history_labels: Vec::with_capacity(b * n_out),
        mask: Vec::with_capacity(b * n_out),
        phones: Vec::with_capacity(b * n_out),
        emotions: Vec::with_capacity(b),
        frame_emotions: Vec::with_capacity(b * n_out),
        styles: Vec::with_capacity(b),
        animator: Vec::with_capacity(b),
        weak: Vec::with_capacity(b),
        label_kinds: Vec::with_capacity(b),
        noise: Vec::with_capacity(b),
    };
    // A fixed share of weak windows (`weak_fraction`) when both kinds exist.
    let is_weak = |i: usize| opts.weak_labels.contains(&clips[i].meta.labels);
    let (weak_pool, strong_pool): (Vec<usize>, Vec<usize>) =
        others.iter().copied().partition(|&i| is_weak(i));
    let n_weak = match opts.weak_fraction {
        Some(f) if !weak_pool.is_empty() && !strong_pool.is_empty() => {
            ((b as f64 * f.clamp(0.0, 1.0)).round() as usize).min(b - n_anim)
        }
        _ => 0,
    };
    for w in 0..b {
        let pool: &[usize] = if w < n_anim {
            &animator
        } else if n_weak > 0 && w < n_anim + n_weak {
            &weak_pool
        } else if n_weak > 0 {
            &strong_pool
        } else if n_anim > 0 && !others.is_empty() {
            &others
        } else {
            &all
        };
        let (ci, start) = sample_window_from(clips, pool, t, rng);
        let clip = &clips[ci];
        let nf = clip.frames();
        let weak = is_weak(ci);
        let warp = (opts.vtlp_range > 0.0).then(|| {
            let r = opts.vtlp_range.min(0.5);
            vtlp_source_bins(&cfg.mel, rng.random_range(1.0 - r..=1.0 + r))
        });
        // A noise floor replaces the window's audio: `t` frames of its
        // log-mel stacks (the hops a clip's own features have).
        let noise_floor = (opts.noise_windows > 0.0
            && rng.random_bool(opts.noise_windows.clamp(0.0, 1.0)))
        .then(|| {
            let spf = cfg.samples_per_frame();
            let (audio, _) = crate::noise::noise_floor_audio(t * spf, cfg.mel.sample_rate, rng);
            let mut mel = log_mel(&cfg.mel, &audio).unwrap_or_default();
            mel.resize(t * dim, -10.0);
            mel
        });
        if let Some(mel) = &noise_floor {
            for frame in mel.chunks_exact(dim) {
                let s = wb.features.len();
                wb.features.extend_from_slice(frame);
                feature_norm.apply(&mut wb.features[s..]);
            }
        } else {
            for f in start..start + t {
                if f < nf {
                    let s = wb.features.len();
                    wb.features
                        .extend_from_slice(&clip.features[f * dim..(f + 1) * dim]);
                    if let Some(src) = &warp {
                        warp_log_mel(&mut wb.features[s..], src);
                    }
                    feature_norm.apply(&mut wb.features[s..]);
                } else {
                    wb.features.extend_from_slice(&silence);
                }
            }
        }
        let emo: Vec<[f32; EMOTION_COUNT]> = match &opts.emotion {
            Some(aug) => aug.window(&clip.meta.emotion, n_out.max(1), cfg.fps as f64, rng),
            None => vec![clip.meta.emotion; n_out.max(1)],
        };
        let augment = opts.emotion.is_some();
        let hist_emo: Vec<[f32; EMOTION_COUNT]> = match &opts.emotion {
            Some(aug) if rng.random_bool(aug.history_mismatch.clamp(0.0, 1.0)) => {
                vec![aug.draw(rng); emo.len()]
            }
            _ => emo.clone(),
        };
        let noise = noise_floor.is_some();
        let label = |f: isize, e: &[f32; EMOTION_COUNT]| {
            let mut raw = if noise || f < 0 || f as usize >= nf {
                [0.0; BLENDSHAPE_COUNT]
            } else {
                clip.labels[f as usize]
            };
            if augment {
                apply_emotion_frame(&mut raw, e);
            }
            motion_norm.normalize(&raw)
        };
        for k in (1..=h).rev() {
            wb.before
                .push(label(start as isize - k as isize, &hist_emo[0]));
        }
        for (j, f) in (start..start + n_out).enumerate() {
            wb.labels.push(label(f as isize, &emo[j]));
            wb.history_labels.push(label(f as isize, &hist_emo[j]));
            wb.mask.push(if noise || f < nf { 1.0 } else { 0.0 });
            wb.phones.push(if noise && !weak {
                0 // SIL
            } else if f < nf && !weak {
                clip.phones[f]
            } else {
                u32::MAX
            });
            wb.frame_emotions.push(emo[j]);
        }
        wb.emotions.push(emo[0]);
        wb.styles.push(clip.style);
        wb.animator.push(is_animator(clip));
        wb.weak.push(weak);
        wb.label_kinds.push(clip.meta.labels.clone());
        wb.noise.push(noise);
    }
    wb
}

impl WindowBatch {
    /// Teacher-forced motion history `[b * n_out, H * 52]`: for output frame
    /// `j` the `H` label frames before it, plus Gaussian noise of std
    /// `sigma[w]` per window `w`.
    #[allow(clippy::needless_range_loop)] // window/frame index arithmetic
    pub fn history(&self, h: usize, sigma: &[f32], rng: &mut impl Rng) -> Vec<f32> {
        use rand_distr::{Distribution, StandardNormal};
        let mut out = Vec::with_capacity(self.b * self.n_out * h * BLENDSHAPE_COUNT);
        for w in 0..self.b {
            for j in 0..self.n_out {
                for k in (1..=h).rev() {
                    let frame = if j >= k {
                        &self.history_labels[w * self.n_out + j - k]
                    } else {
                        &self.before[w * h + h - (k - j)]
                    };
                    for &v in frame {
                        let n: f32 = if sigma[w] > 0.0 {
                            StandardNormal.sample(rng)
                        } else {
                            0.0
                        };
                        out.push(v + sigma[w] * n);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use talking_head_core::rig::Blendshape as B;

    #[test]
    fn vtlp_moves_a_formant_by_the_warp_factor() {
        use talking_head_core::features::MelConfig;
        let mel = MelConfig::default();
        let id = vtlp_source_bins(&mel, 1.0);
        for (m, &p) in id.iter().enumerate() {
            assert!((p - m as f32).abs() < 1e-4, "identity at {m}: {p}");
        }
        // A peak at bin 30 (about 1.1 kHz) of a 2-hop stack moves to the
        // bin whose centre is 1.1 times higher under alpha = 1.1.
        let mut stack = vec![0.0f32; 160];
        stack[30] = 1.0;
        stack[80 + 30] = 1.0;
        let src = vtlp_source_bins(&mel, 1.1);
        warp_log_mel(&mut stack, &src);
        let peak = |x: &[f32]| {
            x.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap_or(0)
        };
        let (a, b) = (peak(&stack[..80]), peak(&stack[80..]));
        assert_eq!(a, b, "both hops warp alike");
        assert!((32..=34).contains(&a), "peak moved to {a}");
        // Monotone, inside the bins, and f_max fixed.
        for a in [0.9, 1.1] {
            let s = vtlp_source_bins(&mel, a);
            assert!(s.windows(2).all(|w| w[0] <= w[1]));
            assert!(s.iter().all(|&p| (0.0..=79.0).contains(&p)));
            assert!((s[79] - 79.0).abs() < 0.5, "top bin {a}: {}", s[79]);
        }
    }

    #[test]
    fn loss_channel_weights_default_overrides_and_bad_names() {
        use std::collections::BTreeMap;
        use talking_head_core::rig::MOUTH_CHANNELS;
        let plain = loss_channel_weights(2.0, &BTreeMap::new()).unwrap();
        assert_eq!(plain.len(), BLENDSHAPE_COUNT);
        let sum =
            (BLENDSHAPE_COUNT - MOUTH_CHANNELS.len()) as f32 + 2.0 * MOUTH_CHANNELS.len() as f32;
        assert!((plain[B::JawOpen.index()] - 2.0 / sum).abs() < 1e-7);
        assert!((plain[B::BrowInnerUp.index()] - 1.0 / sum).abs() < 1e-7);
        let over: BTreeMap<String, f32> = [
            ("jawOpen".to_string(), 8.0),
            ("MouthClose".to_string(), 0.0),
        ]
        .into();
        let w = loss_channel_weights(2.0, &over).unwrap();
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!((w[B::JawOpen.index()] / w[B::MouthFunnel.index()] - 4.0).abs() < 1e-5);
        assert_eq!(w[B::MouthClose.index()], 0.0);
        for bad in [("jawOpn", 1.0), ("jawOpen", -1.0), ("jawOpen", f32::NAN)] {
            let m: BTreeMap<String, f32> = [(bad.0.to_string(), bad.1)].into();
            assert!(loss_channel_weights(2.0, &m).is_err(), "{bad:?}");
        }
        assert!(loss_channel_weights(f32::INFINITY, &BTreeMap::new()).is_err());
        let zero: BTreeMap<String, f32> =
            B::ALL.iter().map(|b| (b.name().to_string(), 0.0)).collect();
        assert!(loss_channel_weights(2.0, &zero).is_err());
    }

    #[test]
    fn emotion_offsets_ease_on_closures_and_keep_the_jaw() {
        let happy = {
            let mut e = [0f32; EMOTION_COUNT];
            e[1] = 1.0;
            e
        };
        let mut open = [0f32; BLENDSHAPE_COUNT];
        open[B::JawOpen.index()] = 0.4;
        let mut closed = [0f32; BLENDSHAPE_COUNT];
        closed[B::MouthClose.index()] = 0.5;
        let (mut a, mut b) = (open, closed);
        apply_emotion_frame(&mut a, &happy);
        apply_emotion_frame(&mut b, &happy);
        let s = B::MouthSmileLeft.index();
        assert!(a[s] > 0.5, "{}", a[s]);
        assert!(
            b[s] < 0.5 * a[s],
            "smile must ease on a closure: {} vs {}",
            b[s],
            a[s]
        );
        assert_eq!(a[B::JawOpen.index()], 0.4);
        // Cheeks are not lip channels: no easing.
        assert_eq!(a[B::CheekSquintLeft.index()], b[B::CheekSquintLeft.index()]);
        let mut n = open;
        apply_emotion_frame(&mut n, &talking_head_core::model::NEUTRAL_EMOTION);
        assert_eq!(n, open);
    }

    #[test]
    fn emotion_windows_are_smooth_and_varied() {
        let aug = EmotionAugment::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let neutral = talking_head_core::model::NEUTRAL_EMOTION;
        let (mut neutral_windows, mut changes) = (0, 0);
        for _ in 0..400 {
            let w = aug.window(&neutral, 100, 50.0, &mut rng);
            assert_eq!(w.len(), 100);
            for f in &w {
                assert!(f.iter().all(|v| (0.0..=1.0).contains(v)));
            }
            for p in w.windows(2) {
                for (a, b) in p[0].iter().zip(&p[1]) {
                    assert!((b - a).abs() <= 0.2, "pop in emotion weight");
                }
            }
            if w[0][1..].iter().all(|&v| v == 0.0) && w[99][1..].iter().all(|&v| v == 0.0) {
                neutral_windows += 1;
            }
            if w[0] != w[99] {
                changes += 1;
            }
        }
        assert!((60..200).contains(&neutral_windows), "{neutral_windows}");
        assert!(changes > 40, "{changes}");
        // A clip with its own (prosodic) emotion keeps it.
        let mut sad = [0f32; EMOTION_COUNT];
        sad[2] = 0.8;
        sad[0] = 0.2;
        assert!(
            aug.window(&sad, 10, 50.0, &mut rng)
                .iter()
                .all(|f| *f == sad)
        );
    }
}
