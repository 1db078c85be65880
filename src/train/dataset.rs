//! Training data in memory: per clip the causal log-mel stacks (one row per
//! animation frame), the ARKit label frames, per-frame phone classes, style
//! and emotion, loaded from a corpus directory (see [`crate::train::corpus`]).

use std::path::Path;

use rand::Rng;

use crate::features::{FeatureNorm, log_mel};
use crate::model::{EMOTION_COUNT, ModelConfig};
use crate::rig::{BLENDSHAPE_COUNT, LiveLinkFaceTake};
use crate::train::manifest::{ClipMeta, CorpusError, CorpusManifest, Split};

/// The 39 ARPAbet phones of CMUdict plus `SIL`: the classes of the
/// encoder's auxiliary phone-classification loss.
pub const PHONE_CLASSES: [&str; 40] = [
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
];

/// Class index of an ARPAbet phone (stress digits ignored); unknown → `None`.
pub fn phone_class(p: &str) -> Option<u32> {
    let p = p
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_ascii_uppercase();
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
    let base = dir.join("clips").join(&meta.id);
    let wav = base.with_extension("wav");
    let (audio, _) = crate::audio::load_mono_16k(&wav)
        .map_err(|e| CorpusError::Format(wav.clone(), e.to_string()))?;
    let spf = cfg.samples_per_frame();
    let n_audio = audio.len().div_ceil(spf);
    let mut padded = audio;
    padded.resize(n_audio * spf, 0.0);
    let mel =
        log_mel(&cfg.mel, &padded).map_err(|e| CorpusError::Format(wav.clone(), e.to_string()))?;
    let dim = cfg.input_dim();
    let csv = base.with_extension("csv");
    let take = LiveLinkFaceTake::read_file(&csv)
        .map_err(|e| CorpusError::Format(csv.clone(), e.to_string()))?;
    let n = n_audio.min(take.frames.len()).min(mel.len() / dim);
    let labels: Vec<[f32; BLENDSHAPE_COUNT]> = take.frames[..n]
        .iter()
        .map(|f| std::array::from_fn(|c| f.blendshapes[c].clamp(0.0, 1.0)))
        .collect();
    let mut phones = vec![u32::MAX; n];
    let tsv = base.with_extension("phones.tsv");
    if meta.has_phones {
        if let Ok(s) = std::fs::read_to_string(&tsv) {
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
        let c = load_clip(dir, m, cfg)?;
        if c.frames() > 0 {
            out.push(c);
        }
        progress(i + 1, total);
    }
    Ok(out)
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

/// Per-channel mean and std of the labels (std floored at 0.05).
pub fn motion_stats(clips: &[ClipData]) -> (Vec<f32>, Vec<f32>) {
    let mut sum = [0f64; BLENDSHAPE_COUNT];
    let mut sq = [0f64; BLENDSHAPE_COUNT];
    let mut n = 0f64;
    for c in clips {
        for f in &c.labels {
            for k in 0..BLENDSHAPE_COUNT {
                sum[k] += f[k] as f64;
                sq[k] += (f[k] as f64).powi(2);
            }
            n += 1.0;
        }
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
    // Sample clips proportionally to their length.
    let total: usize = clips.iter().map(|c| c.frames()).sum();
    let mut r = rng.random_range(0..total.max(1));
    let mut idx = 0;
    for (i, c) in clips.iter().enumerate() {
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

/// Emotion weights of a clip.
pub fn clip_emotion(c: &ClipData) -> [f32; EMOTION_COUNT] {
    c.meta.emotion
}
