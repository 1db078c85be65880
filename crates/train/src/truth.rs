//! Truth-first evaluation: the model graded against real animation and
//! against articulation facts, never against its own pseudo-labels.
//!
//! **Section 1, real truth** (FACEGOOD animator curves, 30 fps). From the
//! rig channels of a recording:
//! - *map-jaw* = clip(`mouth_stretch_c` + 0.3·`mouth_oh_c` + 0.2·`mouth_oo_c`)
//!   (the repo's retarget of jawOpen);
//! - *full opening* = clip(`mouth_stretch_c` + `mouth_oh_c` + `mouth_oo_c`);
//! - *rounding* = mean of the four `mouth_funnel_*` channels + `mouth_oo_c`.
//!
//! Metrics of a prediction: Pearson r of its jawOpen with map-jaw and with
//! full opening; **in-speech closure recall** (frames inside speech — within
//! 40 dB of the recording's loudest 30 fps frame, gaps up to 300 ms filled —
//! where map-jaw < 0.05; recall = share where predicted jawOpen < 0.1);
//! **rounding r** (r of mouthFunnel + mouthPucker with rounding); **dynamic
//! range** = std(predicted jawOpen) / std(map-jaw).
//!
//! Baselines: **loudness** (per-frame log-RMS, linearly fitted to map-jaw on
//! the training recordings and clipped to [0, 1]; unclipped, its r is the
//! log-RMS's own, issue 10's "loudness"), the **phonetic labeler**
//! (pocketsphinx allphone → [`crate::phonetic`]), and **ridge** regression ([`Ridge`]) from a
//! causal 300 ms window of 40-bin log-mel frames to map-jaw, fitted on the
//! training recordings only (closed-form solve with nalgebra's Cholesky).
//!
//! **Section 2, articulation with exact phones**: English speech synthesised
//! by flite voices held out of training ([`crate::tts::FLITE_HELDOUT`])
//! with flite's own phone timings. Bilabial closure recall, closed-vowel
//! rate, rounding AUC and opening AUC; see [`articulation_metrics`].

use serde::{Deserialize, Serialize};

use crate::facegood::{FacegoodClip, frame_log_rms, pearson};
use talking_head_core::features::{MelConfig, log_mel};
use talking_head_core::rig::{BLENDSHAPE_COUNT, Blendshape};

/// FACEGOOD's animation frame rate.
pub const TRUTH_FPS: f64 = 30.0;

/// A recording with its animator-derived truth curves at 30 fps.
#[derive(Clone, Debug)]
pub struct TruthClip {
    /// Recording id (`1114_2_05`).
    pub id: String,
    /// 16 kHz mono speech.
    pub audio: Vec<f32>,
    /// map-jaw per frame, in [0, 1].
    pub map_jaw: Vec<f32>,
    /// Full opening per frame, in [0, 1].
    pub full_opening: Vec<f32>,
    /// Rounding per frame (mean funnel + oo), in [0, 2].
    pub rounding: Vec<f32>,
    /// Frames inside speech.
    pub speech: Vec<bool>,
}

impl TruthClip {
    /// Truth curves of a loaded FACEGOOD clip. Missing rig channels count as 0.
    pub fn from_facegood(c: &FacegoodClip) -> Self {
        let ch = |name: &str| -> Vec<f32> {
            match c.channel_index(name) {
                Some(i) => c.raw.iter().map(|r| r[i]).collect(),
                None => vec![0.0; c.raw.len()],
            }
        };
        let (st, oh, oo) = (ch("mouth_stretch_c"), ch("mouth_oh_c"), ch("mouth_oo_c"));
        let funnels: Vec<Vec<f32>> = [
            "mouth_funnel_dl",
            "mouth_funnel_dr",
            "mouth_funnel_ul",
            "mouth_funnel_ur",
        ]
        .iter()
        .map(|n| ch(n))
        .collect();
        let n = c.raw.len();
        let map_jaw = (0..n)
            .map(|i| (st[i] + 0.3 * oh[i] + 0.2 * oo[i]).clamp(0.0, 1.0))
            .collect();
        let full_opening = (0..n)
            .map(|i| (st[i] + oh[i] + oo[i]).clamp(0.0, 1.0))
            .collect();
        let rounding = (0..n)
            .map(|i| funnels.iter().map(|f| f[i]).sum::<f32>() / 4.0 + oo[i])
            .collect();
        let speech = speech_mask(&c.audio_16k, TRUTH_FPS, n);
        Self {
            id: c.id.clone(),
            audio: c.audio_16k.clone(),
            map_jaw,
            full_opening,
            rounding,
            speech,
        }
    }

    /// Frames.
    pub fn frames(&self) -> usize {
        self.map_jaw.len()
    }

    /// The in-speech closure frames: inside speech and map-jaw < 0.05.
    pub fn closures(&self) -> Vec<bool> {
        self.map_jaw
            .iter()
            .zip(&self.speech)
            .map(|(&j, &s)| s && j < 0.05)
            .collect()
    }
}

/// Frames inside speech: log-RMS within 40 dB of the loudest frame, with
/// gaps of at most 300 ms between such frames filled (closures between
/// syllables are quiet but inside speech).
pub fn speech_mask(audio: &[f32], fps: f64, n: usize) -> Vec<bool> {
    let rms = frame_log_rms(audio, fps, n);
    let max = rms.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // ln units: 40 dB = 40 / 20 * ln 10.
    let thr = max - 2.0 * std::f32::consts::LN_10;
    let loud: Vec<bool> = rms.iter().map(|&x| x >= thr).collect();
    let mut out = loud.clone();
    let gap = (0.3 * fps).round() as usize;
    let mut last: Option<usize> = None;
    for (i, &is_loud) in loud.iter().enumerate() {
        if is_loud {
            if let Some(p) = last
                && i - p <= gap
            {
                for o in out.iter_mut().take(i).skip(p + 1) {
                    *o = true;
                }
            }
            last = Some(i);
        }
    }
    out
}

/// Section 1 metrics of one method on one clip or pooled clips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthMetrics {
    /// r(predicted jawOpen, map-jaw).
    pub map_jaw_r: f32,
    /// r(predicted jawOpen, full opening).
    pub full_opening_r: f32,
    /// In-speech closure recall in [0, 1] (`None` without closures).
    pub closure_recall: Option<f32>,
    /// r(mouthFunnel + mouthPucker, rounding) (`None` for jaw-only methods).
    pub rounding_r: Option<f32>,
    /// std(predicted jawOpen) / std(map-jaw).
    pub dynamic_range: f32,
    /// Frames.
    pub frames: usize,
    /// In-speech closure frames.
    pub closure_frames: usize,
}

use talking_head_core::stats::std_dev_f32 as std_dev;

/// A method's prediction at 30 fps: jawOpen and, where the method has it,
/// mouthFunnel + mouthPucker.
#[derive(Clone, Debug, Default)]
pub struct Prediction {
    /// jawOpen per frame.
    pub jaw: Vec<f32>,
    /// mouthFunnel + mouthPucker per frame.
    pub rounding: Option<Vec<f32>>,
}

impl Prediction {
    /// From full ARKit frames.
    pub fn from_frames(frames: &[[f32; BLENDSHAPE_COUNT]]) -> Self {
        Self {
            jaw: frames
                .iter()
                .map(|f| f[Blendshape::JawOpen.index()])
                .collect(),
            rounding: Some(
                frames
                    .iter()
                    .map(|f| {
                        f[Blendshape::MouthFunnel.index()] + f[Blendshape::MouthPucker.index()]
                    })
                    .collect(),
            ),
        }
    }
}

/// Section 1 metrics of `pred` against the truth of `clips` (pooled over the
/// clips: frames concatenated). `pred[i]` belongs to `clips[i]`; lengths are
/// cut to the shorter.
pub fn truth_metrics(clips: &[&TruthClip], pred: &[&Prediction]) -> TruthMetrics {
    let (mut pj, mut tj, mut tf, mut pr, mut tr) = (vec![], vec![], vec![], vec![], vec![]);
    let mut has_round = true;
    let (mut closed, mut closures) = (0usize, 0usize);
    for (c, p) in clips.iter().zip(pred) {
        let n = c.frames().min(p.jaw.len());
        pj.extend_from_slice(&p.jaw[..n]);
        tj.extend_from_slice(&c.map_jaw[..n]);
        tf.extend_from_slice(&c.full_opening[..n]);
        match &p.rounding {
            Some(r) => {
                let m = n.min(r.len());
                pr.extend_from_slice(&r[..m]);
                tr.extend_from_slice(&c.rounding[..m]);
            }
            None => has_round = false,
        }
        for (i, &cl) in c.closures().iter().enumerate().take(n) {
            if cl {
                closures += 1;
                if p.jaw[i] < 0.1 {
                    closed += 1;
                }
            }
        }
    }
    let sd = std_dev(&tj);
    TruthMetrics {
        map_jaw_r: pearson(&pj, &tj),
        full_opening_r: pearson(&pj, &tf),
        closure_recall: (closures > 0).then(|| closed as f32 / closures as f32),
        rounding_r: has_round.then(|| pearson(&pr, &tr)),
        dynamic_range: if sd > 0.0 { std_dev(&pj) / sd } else { 0.0 },
        frames: pj.len(),
        closure_frames: closures,
    }
}

/// Samples 50 fps (or any `src_fps`) frames, frame `f` describing the time
/// `(f + 0.5) / src_fps`, at the times `k / dst_fps` for `n` frames (linear).
pub fn resample_at_frame_times(
    src: &[[f32; BLENDSHAPE_COUNT]],
    src_fps: f64,
    n: usize,
    dst_fps: f64,
) -> Vec<[f32; BLENDSHAPE_COUNT]> {
    if src.is_empty() {
        return vec![[0.0; BLENDSHAPE_COUNT]; n];
    }
    (0..n)
        .map(|k| {
            let u = (k as f64 / dst_fps * src_fps - 0.5).max(0.0);
            let i = u.floor() as usize;
            if i + 1 >= src.len() {
                return src[src.len() - 1];
            }
            let a = (u - i as f64) as f32;
            std::array::from_fn(|c| src[i][c] * (1.0 - a) + src[i + 1][c] * a)
        })
        .collect()
}

/// Loudness baseline: `a · log-RMS + b`, clipped to [0, 1], per frame.
#[derive(Clone, Copy, Debug)]
pub struct LoudnessBaseline {
    /// Slope.
    pub a: f32,
    /// Intercept.
    pub b: f32,
}

impl LoudnessBaseline {
    /// Least-squares fit to map-jaw on `clips`.
    pub fn fit(clips: &[&TruthClip]) -> Self {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for c in clips {
            xs.extend(frame_log_rms(&c.audio, TRUTH_FPS, c.frames()));
            ys.extend_from_slice(&c.map_jaw);
        }
        let (a, b) = crate::eval::fit_loudness(&xs, &ys);
        Self { a, b }
    }

    /// The fit without the clipping to [0, 1]: an affine map of the frame
    /// log-RMS, so its Pearson r is that of the log-RMS itself, issue 10's
    /// "loudness" (its targets are set against this r; the clipped fit of
    /// [`Self::predict`] is the stronger baseline).
    pub fn predict_unclipped(&self, audio: &[f32], fps: f64, n: usize) -> Prediction {
        Prediction {
            jaw: frame_log_rms(audio, fps, n)
                .into_iter()
                .map(|x| self.a * x + self.b)
                .collect(),
            rounding: None,
        }
    }

    /// Prediction for `n` frames at `fps` (frame `k` at `k / fps`), clipped
    /// to [0, 1].
    pub fn predict(&self, audio: &[f32], fps: f64, n: usize) -> Prediction {
        let mut p = self.predict_unclipped(audio, fps, n);
        p.jaw.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        p
    }
}

/// Ridge regression from a causal window of log-mel frames to one curve:
/// 40 mel bands at a 10 ms hop, the 15 frames at 20 ms spacing ending at the
/// target time (300 ms), features standardised on the training data, one
/// bias; weights from `(XᵀX + αI) w = Xᵀy` (Cholesky).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ridge {
    /// Feature means.
    pub mean: Vec<f32>,
    /// Feature stds.
    pub std: Vec<f32>,
    /// Weights (`mean.len()`) then the bias.
    pub w: Vec<f32>,
    /// Regularisation strength.
    pub alpha: f64,
}

/// Mel bands of the ridge features.
pub const RIDGE_MELS: usize = 40;
/// Frames in the ridge window.
pub const RIDGE_TAPS: usize = 15;
/// Mel hops between taps (2 × 10 ms).
pub const RIDGE_STRIDE: usize = 2;

fn ridge_mel(audio: &[f32]) -> Vec<f32> {
    let cfg = MelConfig {
        n_mels: RIDGE_MELS,
        ..MelConfig::default()
    };
    log_mel(&cfg, audio).unwrap_or_default()
}

/// Ridge input rows for `n` target frames at `fps` (frame `k` at `k / fps`).
pub fn ridge_rows(audio: &[f32], fps: f64, n: usize) -> Vec<Vec<f32>> {
    let mel = ridge_mel(audio);
    let frames = mel.len() / RIDGE_MELS;
    let floor = -23.0f32; // ln(1e-10): the log-mel floor, for times before the audio
    (0..n)
        .map(|k| {
            let j = ((k as f64 / fps) * 100.0).floor() as isize;
            let mut row = Vec::with_capacity(RIDGE_MELS * RIDGE_TAPS);
            for tap in 0..RIDGE_TAPS {
                let f = j - (tap * RIDGE_STRIDE) as isize;
                if f >= 0 && (f as usize) < frames {
                    row.extend_from_slice(
                        &mel[f as usize * RIDGE_MELS..(f as usize + 1) * RIDGE_MELS],
                    );
                } else {
                    row.extend(std::iter::repeat_n(floor, RIDGE_MELS));
                }
            }
            row
        })
        .collect()
}

impl Ridge {
    /// Fits map-jaw of `clips` with strength `alpha`.
    ///
    /// # Errors
    /// A message when there are no frames or the system is not positive definite.
    pub fn fit(clips: &[&TruthClip], alpha: f64) -> Result<Self, String> {
        use nalgebra::{DMatrix, DVector};
        let mut rows = Vec::new();
        let mut ys = Vec::new();
        for c in clips {
            rows.extend(ridge_rows(&c.audio, TRUTH_FPS, c.frames()));
            ys.extend_from_slice(&c.map_jaw);
        }
        if rows.is_empty() {
            return Err("ridge: no training frames".into());
        }
        let d = rows[0].len();
        let n = rows.len() as f64;
        let mut mean = vec![0f64; d];
        for r in &rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64 / n;
            }
        }
        let mut sd = vec![0f64; d];
        for r in &rows {
            for k in 0..d {
                sd[k] += (r[k] as f64 - mean[k]).powi(2) / n;
            }
        }
        let sd: Vec<f64> = sd.into_iter().map(|v| v.sqrt().max(1e-3)).collect();
        let p = d + 1;
        let mut xtx = DMatrix::<f64>::zeros(p, p);
        let mut xty = DVector::<f64>::zeros(p);
        let mut z = vec![0f64; p];
        for (r, &y) in rows.iter().zip(&ys) {
            for k in 0..d {
                z[k] = (r[k] as f64 - mean[k]) / sd[k];
            }
            z[d] = 1.0;
            // Rank-one update of the upper triangle.
            for a in 0..p {
                let za = z[a];
                xty[a] += za * y as f64;
                for b in a..p {
                    xtx[(a, b)] += za * z[b];
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                xtx[(a, b)] = xtx[(b, a)];
            }
            if a < d {
                xtx[(a, a)] += alpha;
            }
        }
        let chol = xtx
            .cholesky()
            .ok_or_else(|| "ridge: normal equations not positive definite".to_string())?;
        let w = chol.solve(&xty);
        Ok(Self {
            mean: mean.iter().map(|&v| v as f32).collect(),
            std: sd.iter().map(|&v| v as f32).collect(),
            w: w.iter().map(|&v| v as f32).collect(),
            alpha,
        })
    }

    /// Prediction (clipped to [0, 1]) for `n` frames at `fps`.
    pub fn predict(&self, audio: &[f32], fps: f64, n: usize) -> Prediction {
        let d = self.mean.len();
        Prediction {
            jaw: ridge_rows(audio, fps, n)
                .iter()
                .map(|r| {
                    let terms = r.iter().zip(&self.w).zip(self.mean.iter().zip(&self.std));
                    let y: f32 =
                        self.w[d] + terms.map(|((x, w), (m, sd))| w * (x - m) / sd).sum::<f32>();
                    y.clamp(0.0, 1.0)
                })
                .collect(),
            rounding: None,
        }
    }
}

/// Section 2 figures of one method, pooled over clips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Articulation {
    /// Bilabial closure recall in [0, 1].
    pub bilabial_recall: f32,
    /// /p b m/ segments counted.
    pub bilabials: usize,
    /// Closed-vowel rate in [0, 1] (false alarms of the closure rule).
    pub closed_vowel_rate: f32,
    /// Vowels counted.
    pub vowels: usize,
    /// Rounding AUC (rounded vs spread vowels, by mouthFunnel + mouthPucker).
    pub rounding_auc: f32,
    /// Opening AUC (open vs close vowels, by jawOpen; schwa `AX` is in
    /// neither set).
    pub opening_auc: f32,
    /// Opening AUC with schwa (`AX`) counted as open, as the evaluation did
    /// before it kept flite's `ax` apart from `ah` (session 13): for
    /// comparison with older reports only, not a target (schwa is a reduced
    /// mid vowel, not an open one).
    #[serde(default)]
    pub opening_auc_with_schwa: f32,
}

/// The closure rule of section 2: jawOpen < 0.08; or mouthClose ≥ 0.7 ×
/// jawOpen with jawOpen < 0.35; or mouthPressLeft + Right ≥ 0.5; or
/// mouthRollLower + Upper ≥ 0.5.
pub fn lips_closed(f: &[f32; BLENDSHAPE_COUNT]) -> bool {
    use Blendshape as B;
    let jaw = f[B::JawOpen.index()];
    jaw < 0.08
        || (f[B::MouthClose.index()] >= 0.7 * jaw && jaw < 0.35)
        || f[B::MouthPressLeft.index()] + f[B::MouthPressRight.index()] >= 0.5
        || f[B::MouthRollLower.index()] + f[B::MouthRollUpper.index()] >= 0.5
}

/// Mann–Whitney AUC: probability that a value of `pos` exceeds one of `neg`
/// (ties count half); 0.5 when either is empty.
pub fn auc(pos: &[f32], neg: &[f32]) -> f32 {
    if pos.is_empty() || neg.is_empty() {
        return 0.5;
    }
    let mut s = 0f64;
    for &p in pos {
        for &q in neg {
            s += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
        }
    }
    (s / (pos.len() * neg.len()) as f64) as f32
}

const FULL_VOWELS: [&str; 13] = [
    "AA", "AE", "AO", "AW", "AY", "EH", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
];
const ROUNDED: [&str; 4] = ["UW", "UH", "OW", "W"];
const SPREAD: [&str; 5] = ["IY", "IH", "EY", "EH", "AE"];
const OPEN: [&str; 6] = ["AA", "AE", "AO", "AW", "AY", "AH"];
const CLOSE: [&str; 4] = ["IY", "UW", "IH", "UH"];

/// Per-clip raw counts and segment scores for pooling.
#[derive(Clone, Debug, Default)]
pub struct ArticulationCounts {
    bil_closed: usize,
    bil: usize,
    vow_closed: usize,
    vow: usize,
    rounded: Vec<f32>,
    spread: Vec<f32>,
    open: Vec<f32>,
    close: Vec<f32>,
    schwa: Vec<f32>,
}

impl ArticulationCounts {
    /// Adds one clip: `pred` frames at `fps` (frame `f` describes
    /// `(f + 0.5) / fps`), `phones` as `(ARPAbet, start s, end s)`.
    ///
    /// - a /p b m/ segment at least 100 ms from any pause (`SIL`) counts as
    ///   closed if some frame in it, ±1 frame, passes [`lips_closed`];
    /// - full vowels of at least 60 ms whose midpoint frame passes it are
    ///   closed vowels;
    /// - segment means of mouthFunnel + mouthPucker (rounded `UW UH OW W` vs
    ///   spread `IY IH EY EH AE`) and of jawOpen (open `AA AE AO AW AY AH`,
    ///   i.e. /ʌ/, not schwa `AX`
    ///   vs close `IY UW IH UH`) feed the AUCs.
    pub fn add(
        &mut self,
        pred: &[[f32; BLENDSHAPE_COUNT]],
        fps: f64,
        phones: &[(String, f64, f64)],
    ) {
        use Blendshape as B;
        let n = pred.len();
        if n == 0 {
            return;
        }
        let frame_of = |t: f64| ((t * fps - 0.5).round().max(0.0) as usize).min(n - 1);
        let frames_in = |a: f64, b: f64| -> (usize, usize) {
            let lo = ((a * fps - 0.5).ceil().max(0.0) as usize).min(n - 1);
            let hi = ((b * fps - 0.5).floor().max(0.0) as usize).min(n - 1);
            (lo, hi.max(lo))
        };
        let pauses: Vec<(f64, f64)> = phones
            .iter()
            .filter(|p| p.0 == "SIL")
            .map(|p| (p.1, p.2))
            .collect();
        for (ph, a, b) in phones {
            let (a, b) = (*a, *b);
            let ph = ph.as_str();
            if ["P", "B", "M"].contains(&ph) {
                let near_pause = pauses.iter().any(|&(s, e)| s < b + 0.1 && e > a - 0.1);
                if near_pause {
                    continue;
                }
                let (lo, hi) = frames_in(a, b);
                let closed =
                    (lo.saturating_sub(1)..=(hi + 1).min(n - 1)).any(|f| lips_closed(&pred[f]));
                self.bil += 1;
                if closed {
                    self.bil_closed += 1;
                }
            }
            if FULL_VOWELS.contains(&ph) && b - a >= 0.06 {
                self.vow += 1;
                if lips_closed(&pred[frame_of(0.5 * (a + b))]) {
                    self.vow_closed += 1;
                }
            }
            let (lo, hi) = frames_in(a, b);
            let mean = |k: &dyn Fn(&[f32; BLENDSHAPE_COUNT]) -> f32| {
                (lo..=hi).map(|f| k(&pred[f])).sum::<f32>() / (hi - lo + 1) as f32
            };
            let round = || mean(&|f| f[B::MouthFunnel.index()] + f[B::MouthPucker.index()]);
            let jaw = || mean(&|f| f[B::JawOpen.index()]);
            if ROUNDED.contains(&ph) {
                self.rounded.push(round());
            }
            if SPREAD.contains(&ph) {
                self.spread.push(round());
            }
            if OPEN.contains(&ph) {
                self.open.push(jaw());
            }
            if CLOSE.contains(&ph) {
                self.close.push(jaw());
            }
            if ph == "AX" {
                self.schwa.push(jaw());
            }
        }
    }

    /// The pooled figures.
    pub fn finish(&self) -> Articulation {
        Articulation {
            bilabial_recall: self.bil_closed as f32 / self.bil.max(1) as f32,
            bilabials: self.bil,
            closed_vowel_rate: self.vow_closed as f32 / self.vow.max(1) as f32,
            vowels: self.vow,
            rounding_auc: auc(&self.rounded, &self.spread),
            opening_auc: auc(&self.open, &self.close),
            opening_auc_with_schwa: auc(
                &[self.open.as_slice(), self.schwa.as_slice()].concat(),
                &self.close,
            ),
        }
    }
}

/// Articulation figures of one clip (see [`ArticulationCounts::add`]).
pub fn articulation_metrics(
    pred: &[[f32; BLENDSHAPE_COUNT]],
    fps: f64,
    phones: &[(String, f64, f64)],
) -> Articulation {
    let mut c = ArticulationCounts::default();
    c.add(pred, fps, phones);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_orders_and_ties() {
        assert_eq!(auc(&[2.0, 3.0], &[0.0, 1.0]), 1.0);
        assert_eq!(auc(&[0.0], &[1.0]), 0.0);
        assert_eq!(auc(&[1.0], &[1.0]), 0.5);
    }

    #[test]
    fn closure_rule_and_bilabial_recall() {
        let mut open = [0f32; BLENDSHAPE_COUNT];
        open[Blendshape::JawOpen.index()] = 0.5;
        let closed = [0f32; BLENDSHAPE_COUNT];
        assert!(lips_closed(&closed));
        assert!(!lips_closed(&open));
        // 1 s at 50 fps: "AA M AA", M at 0.4–0.5 s, closed only there.
        let fps = 50.0;
        let pred: Vec<_> = (0..50)
            .map(|f| if (20..25).contains(&f) { closed } else { open })
            .collect();
        let phones = vec![
            ("AA".to_string(), 0.0, 0.4),
            ("M".to_string(), 0.4, 0.5),
            ("AA".to_string(), 0.5, 1.0),
        ];
        let a = articulation_metrics(&pred, fps, &phones);
        assert_eq!(a.bilabials, 1);
        assert_eq!(a.bilabial_recall, 1.0);
        assert_eq!(a.vowels, 2);
        assert_eq!(a.closed_vowel_rate, 0.0);
        // An always-open face misses it.
        let a = articulation_metrics(&vec![open; 50], fps, &phones);
        assert_eq!(a.bilabial_recall, 0.0);
    }

    /// Opening AUC ranks /a/ (`AA`, /ʌ/ `AH`) above /i/; schwa (`AX`) is in
    /// neither set, and only the old figure counts it as open.
    #[test]
    fn opening_auc_leaves_schwa_out() {
        let fps = 50.0;
        // 0.2 s each: AA (jaw 0.5), AX (jaw 0.1), IY (jaw 0.2), AH (jaw 0.4).
        let jaws = [0.5f32, 0.1, 0.2, 0.4];
        let pred: Vec<_> = (0..40)
            .map(|f| {
                let mut x = [0f32; BLENDSHAPE_COUNT];
                x[Blendshape::JawOpen.index()] = jaws[f / 10];
                x
            })
            .collect();
        let phones: Vec<_> = ["AA", "AX", "IY", "AH"]
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), i as f64 * 0.2, (i + 1) as f64 * 0.2))
            .collect();
        let a = articulation_metrics(&pred, fps, &phones);
        assert_eq!(a.opening_auc, 1.0);
        // Schwa below IY: one of three open segments loses to the close one.
        assert!((a.opening_auc_with_schwa - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn speech_mask_fills_short_gaps() {
        let mut audio = vec![0f32; 16_000];
        for (i, s) in audio.iter_mut().enumerate() {
            let t = i as f32 / 16_000.0;
            if !(0.4..0.5).contains(&t) {
                *s = 0.3 * (t * 2000.0).sin();
            }
        }
        let m = speech_mask(&audio, 30.0, 30);
        assert!(m.iter().all(|&x| x), "{m:?}");
    }

    #[test]
    fn ridge_recovers_a_loudness_driven_curve() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mk = |rng: &mut rand::rngs::StdRng| {
            // A syllable-rate envelope (2–4 Hz): predictable from the
            // causal 300 ms window.
            let n = 300;
            let (f1, f2): (f32, f32) = (rng.random_range(2.0..3.0), rng.random_range(3.0..4.0));
            let ph: f32 = rng.random_range(0.0..6.0);
            let at = |t: f32| {
                (0.5 + 0.25 * (std::f32::consts::TAU * f1 * t + ph).sin()
                    + 0.25 * (std::f32::consts::TAU * f2 * t).sin())
                .clamp(0.0, 1.0)
            };
            let env: Vec<f32> = (0..n).map(|k| at(k as f32 / 30.0)).collect();
            let audio: Vec<f32> = (0..n * 16_000 / 30)
                .map(|i| at(i as f32 / 16_000.0) * (i as f32 * 0.3).sin())
                .collect();
            TruthClip {
                id: "x".into(),
                map_jaw: env.clone(),
                full_opening: env.clone(),
                rounding: vec![0.0; n],
                speech: vec![true; n],
                audio,
            }
        };
        let train = mk(&mut rng);
        let test = mk(&mut rng);
        let r = Ridge::fit(&[&train], 10.0).expect("fit");
        let p = r.predict(&test.audio, TRUTH_FPS, test.frames());
        let m = truth_metrics(&[&test], &[&p]);
        assert!(m.map_jaw_r > 0.5, "{m:?}");
    }
}
