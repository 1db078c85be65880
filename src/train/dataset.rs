//! Training data in memory: per clip the causal log-mel stacks (one row per
//! animation frame), the ARKit label frames, per-frame phone classes, style
//! and emotion, loaded from a corpus directory (see [`crate::train::corpus`]).

use std::path::Path;

use rand::Rng;

use crate::features::{FeatureNorm, log_mel};
use crate::model::{EMOTION_COUNT, ModelConfig};
use crate::rig::{BLENDSHAPE_COUNT, LiveLinkFaceTake};
use crate::train::manifest::{ClipMeta, CorpusError, CorpusManifest, Split, with_ext};

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
    let wav = with_ext(&base, "wav");
    let (audio, _) = crate::audio::load_mono_16k(&wav)
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
    let labels: Vec<[f32; BLENDSHAPE_COUNT]> = take.frames[..n]
        .iter()
        .map(|f| std::array::from_fn(|c| f.blendshapes[c].clamp(0.0, 1.0)))
        .collect();
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
    /// `[b * history]` normalised label frames just before each window.
    pub before: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// `[b * n_out]` 1 for real frames, 0 for padding.
    pub mask: Vec<f32>,
    /// `[b * n_out]` phone class of each output frame (`u32::MAX` unknown).
    pub phones: Vec<u32>,
    /// `[b]` emotion of each window's clip.
    pub emotions: Vec<[f32; EMOTION_COUNT]>,
    /// `[b]` style id of each window's clip.
    pub styles: Vec<usize>,
}

/// Draws a [`WindowBatch`].
pub fn make_batch(
    clips: &[ClipData],
    cfg: &ModelConfig,
    b: usize,
    t: usize,
    feature_norm: &FeatureNorm,
    motion_norm: &crate::model::MotionNorm,
    rng: &mut impl Rng,
) -> WindowBatch {
    let dim = cfg.input_dim();
    let (l, h) = (cfg.lookahead_frames, cfg.history_frames);
    let n_out = t.saturating_sub(l);
    let mut silence = vec![-10.0f32; dim];
    feature_norm.apply(&mut silence);
    let neutral = motion_norm.normalize(&[0.0; BLENDSHAPE_COUNT]);
    let mut wb = WindowBatch {
        b,
        t,
        n_out,
        features: Vec::with_capacity(b * t * dim),
        labels: Vec::with_capacity(b * n_out),
        before: Vec::with_capacity(b * h),
        mask: Vec::with_capacity(b * n_out),
        phones: Vec::with_capacity(b * n_out),
        emotions: Vec::with_capacity(b),
        styles: Vec::with_capacity(b),
    };
    for _ in 0..b {
        let (ci, start) = sample_window(clips, t, rng);
        let clip = &clips[ci];
        let nf = clip.frames();
        for f in start..start + t {
            if f < nf {
                let s = wb.features.len();
                wb.features
                    .extend_from_slice(&clip.features[f * dim..(f + 1) * dim]);
                feature_norm.apply(&mut wb.features[s..]);
            } else {
                wb.features.extend_from_slice(&silence);
            }
        }
        let label = |f: isize| {
            if f < 0 || f as usize >= nf {
                neutral
            } else {
                motion_norm.normalize(&clip.labels[f as usize])
            }
        };
        for k in (1..=h).rev() {
            wb.before.push(label(start as isize - k as isize));
        }
        for f in start..start + n_out {
            wb.labels.push(label(f as isize));
            wb.mask.push(if f < nf { 1.0 } else { 0.0 });
            wb.phones
                .push(if f < nf { clip.phones[f] } else { u32::MAX });
        }
        wb.emotions.push(clip.meta.emotion);
        wb.styles.push(clip.style);
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
                        &self.labels[w * self.n_out + j - k]
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
