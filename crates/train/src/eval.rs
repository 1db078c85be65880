//! Evaluation (`talking-head eval`): the student (1 step), the teacher (N
//! steps) and baselines against the reference labels of the validation
//! split, with metrics in the field's terms:
//!
//! - **mouth MAE**: mean absolute error over the mouth channels;
//! - **lip error** (the LVE analogue of FaceFormer / CodeTalker, in
//!   blendshape space): per frame the maximum absolute error over the mouth
//!   channels, averaged over frames;
//! - **jawOpen r**: Pearson correlation of predicted and reference jawOpen;
//! - **bilabial closure recall**: of the frames at the centre of a p/b/m
//!   phone (or, without phones, where the reference closes the lips), the
//!   fraction where the prediction has the lips closed (jawOpen < 0.12);
//! - **silence closure rate**: of frames in pauses (audio 40 dB below the
//!   clip's loud level for ≥ 5 frames), the fraction with jawOpen < 0.1;
//! - **FDD** (upper-face dynamics deviation, after CodeTalker's FDD): mean
//!   over upper-face channels of |std of the predicted motion − std of the
//!   reference motion|;
//! - **lip-sync lag**: the shift (ms) maximising the cross-correlation of
//!   predicted and reference jawOpen within ±200 ms (positive = late).

use serde::{Deserialize, Serialize};

use crate::facegood::pearson;
use talking_head_core::rig::{BLENDSHAPE_COUNT, Blendshape, MOUTH_CHANNELS, UPPER_FACE_CHANNELS};

/// Metrics of one method over a set of clips (frame-weighted means).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mouth-channel mean absolute error.
    pub mouth_mae: f32,
    /// Mean over frames of the max mouth-channel error (LVE analogue).
    pub lip_error: f32,
    /// jawOpen Pearson r (frame-weighted mean over clips).
    pub jaw_r: f32,
    /// Bilabial closure recall in [0, 1].
    pub bilabial_recall: f32,
    /// Silence closure rate in [0, 1].
    pub silence_closure: f32,
    /// Upper-face dynamics deviation.
    pub fdd: f32,
    /// Lip-sync lag in ms (frame-weighted mean of per-clip lags).
    pub lag_ms: f32,
    /// Frames evaluated.
    pub frames: usize,
    /// Bilabial frames evaluated.
    pub bilabial_frames: usize,
    /// Silent frames evaluated.
    pub silent_frames: usize,
}

/// Per-frame RMS level in dB of the 16 kHz audio for `n` frames at `fps`.
pub fn frame_db(audio: &[f32], fps: f64, n: usize) -> Vec<f32> {
    let spf = (16_000.0 / fps).round() as usize;
    (0..n)
        .map(|f| {
            let s = (f * spf).min(audio.len());
            let e = ((f + 1) * spf).min(audio.len());
            // -120 dB floor (also for an empty span).
            talking_head_core::audio::rms_dbfs(&audio[s..e]).max(-120.0)
        })
        .collect()
}

/// Frames in pauses: level 40 dB below the clip's 95th percentile for at
/// least 5 consecutive frames.
pub fn silent_frames(db: &[f32]) -> Vec<bool> {
    if db.is_empty() {
        return Vec::new();
    }
    let mut sorted = db.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let loud = sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)];
    let quiet: Vec<bool> = db.iter().map(|d| *d < loud - 40.0).collect();
    let mut out = vec![false; db.len()];
    let mut i = 0;
    while i < quiet.len() {
        if quiet[i] {
            let mut j = i;
            while j < quiet.len() && quiet[j] {
                j += 1;
            }
            if j - i >= 5 {
                out[i..j].iter_mut().for_each(|o| *o = true);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Lag (frames) in `-max..=max` maximising the correlation of `pred`
/// shifted against `reference` (positive: prediction late).
pub fn best_lag(pred: &[f32], reference: &[f32], max: usize) -> i32 {
    let n = pred.len().min(reference.len());
    let mut best = (f32::NEG_INFINITY, 0i32);
    for lag in -(max as i32)..=(max as i32) {
        let (a, b): (Vec<f32>, Vec<f32>) = (0..n)
            .filter_map(|i| {
                let j = i as i32 + lag;
                (j >= 0 && (j as usize) < n).then(|| (pred[j as usize], reference[i]))
            })
            .unzip();
        if a.len() < 10 {
            continue;
        }
        let r = pearson(&a, &b);
        if r > best.0 {
            best = (r, lag);
        }
    }
    best.1
}

/// Metrics of one clip. `bilabial[f]` marks frames at the centre of a p/b/m
/// phone (`None`: derive from the reference's closed lips).
pub fn clip_metrics(
    pred: &[[f32; BLENDSHAPE_COUNT]],
    reference: &[[f32; BLENDSHAPE_COUNT]],
    audio: &[f32],
    fps: f64,
    bilabial: Option<&[bool]>,
) -> Metrics {
    let n = pred.len().min(reference.len());
    if n == 0 {
        return Metrics::default();
    }
    let jaw = Blendshape::JawOpen.index();
    let close = Blendshape::MouthClose.index();
    let mut mae = 0f64;
    let mut lip = 0f64;
    for f in 0..n {
        let mut m = 0f32;
        for &c in MOUTH_CHANNELS.iter() {
            let e = (pred[f][c] - reference[f][c]).abs();
            mae += e as f64;
            m = m.max(e);
        }
        lip += m as f64;
    }
    let pj: Vec<f32> = pred[..n].iter().map(|f| f[jaw]).collect();
    let rj: Vec<f32> = reference[..n].iter().map(|f| f[jaw]).collect();
    let derived: Vec<bool>;
    let bil = match bilabial {
        Some(b) => b,
        None => {
            derived = reference[..n]
                .iter()
                .map(|f| f[close] > 0.3 && f[jaw] < 0.1)
                .collect();
            &derived
        }
    };
    let bil_frames: Vec<usize> = (0..n)
        .filter(|&f| bil.get(f).copied().unwrap_or(false))
        .collect();
    let bil_hit = bil_frames.iter().filter(|&&f| pred[f][jaw] < 0.12).count();
    let silent = silent_frames(&frame_db(audio, fps, n));
    let sil_frames: Vec<usize> = (0..n).filter(|&f| silent[f]).collect();
    let sil_hit = sil_frames.iter().filter(|&&f| pred[f][jaw] < 0.1).count();
    let std = |x: &[[f32; BLENDSHAPE_COUNT]], c: usize| {
        let v: Vec<f32> = x[..n].windows(2).map(|w| w[1][c] - w[0][c]).collect();
        let m = v.iter().sum::<f32>() / v.len().max(1) as f32;
        (v.iter().map(|d| (d - m).powi(2)).sum::<f32>() / v.len().max(1) as f32).sqrt()
    };
    let fdd = UPPER_FACE_CHANNELS
        .iter()
        .map(|&c| (std(pred, c) - std(reference, c)).abs())
        .sum::<f32>()
        / UPPER_FACE_CHANNELS.len() as f32;
    let max_lag = (0.2 * fps).round() as usize;
    Metrics {
        mouth_mae: (mae / (n * MOUTH_CHANNELS.len()) as f64) as f32,
        lip_error: (lip / n as f64) as f32,
        jaw_r: pearson(&pj, &rj),
        bilabial_recall: if bil_frames.is_empty() {
            f32::NAN
        } else {
            bil_hit as f32 / bil_frames.len() as f32
        },
        silence_closure: if sil_frames.is_empty() {
            f32::NAN
        } else {
            sil_hit as f32 / sil_frames.len() as f32
        },
        fdd,
        lag_ms: best_lag(&pj, &rj, max_lag) as f32 * 1000.0 / fps as f32,
        frames: n,
        bilabial_frames: bil_frames.len(),
        silent_frames: sil_frames.len(),
    }
}

/// Frame-weighted aggregation (bilabial and silence rates weighted by their
/// own frame counts; NaN parts skipped).
pub fn aggregate(items: &[Metrics]) -> Metrics {
    let mut out = Metrics::default();
    let total: usize = items.iter().map(|m| m.frames).sum();
    if total == 0 {
        return out;
    }
    let w = |m: &Metrics| m.frames as f32 / total as f32;
    for m in items {
        out.mouth_mae += m.mouth_mae * w(m);
        out.lip_error += m.lip_error * w(m);
        out.jaw_r += m.jaw_r * w(m);
        out.fdd += m.fdd * w(m);
        out.lag_ms += m.lag_ms * w(m);
        out.frames += m.frames;
        out.bilabial_frames += m.bilabial_frames;
        out.silent_frames += m.silent_frames;
    }
    let rate = |get: fn(&Metrics) -> (f32, usize)| {
        let (s, n) = items
            .iter()
            .map(get)
            .filter(|(v, _)| v.is_finite())
            .fold((0f32, 0usize), |(s, n), (v, k)| (s + v * k as f32, n + k));
        if n == 0 { f32::NAN } else { s / n as f32 }
    };
    out.bilabial_recall = rate(|m| (m.bilabial_recall, m.bilabial_frames));
    out.silence_closure = rate(|m| (m.silence_closure, m.silent_frames));
    out
}

/// Bilabial centre frames from phone timings (`(phone, start, end)` in s).
pub fn bilabial_centres(phones: &[(String, f64, f64)], n: usize, fps: f64) -> Vec<bool> {
    let mut out = vec![false; n];
    for (p, a, b) in phones {
        let p = p
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_ascii_uppercase();
        if matches!(p.as_str(), "P" | "B" | "M") {
            let f = (((a + b) / 2.0) * fps).floor() as usize;
            if f < n {
                out[f] = true;
            }
        }
    }
    out
}

/// Least-squares fit `jawOpen ≈ a · logRMS + b` (the loudness baseline).
pub fn fit_loudness(log_rms: &[f32], jaw: &[f32]) -> (f32, f32) {
    let n = log_rms.len().min(jaw.len()) as f64;
    if n < 2.0 {
        return (0.0, 0.0);
    }
    let mx = log_rms.iter().map(|v| *v as f64).sum::<f64>() / n;
    let my = jaw.iter().map(|v| *v as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0f64, 0f64);
    for (x, y) in log_rms.iter().zip(jaw) {
        sxy += (*x as f64 - mx) * (*y as f64 - my);
        sxx += (*x as f64 - mx).powi(2);
    }
    let a = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (a as f32, (my - a * mx) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_prediction_scores_perfectly() {
        let n = 200;
        let frames: Vec<[f32; 52]> = (0..n)
            .map(|f| {
                let mut x = [0f32; 52];
                x[Blendshape::JawOpen.index()] = ((f as f32 * 0.2).sin() * 0.5 + 0.5) * 0.6;
                x
            })
            .collect();
        let audio = vec![0.1f32; n * 320];
        let m = clip_metrics(&frames, &frames, &audio, 50.0, None);
        assert_eq!(m.mouth_mae, 0.0);
        assert_eq!(m.lip_error, 0.0);
        assert!((m.jaw_r - 1.0).abs() < 1e-5);
        assert_eq!(m.lag_ms, 0.0);
    }

    #[test]
    fn lag_is_detected() {
        let n = 300;
        let r: Vec<f32> = (0..n)
            .map(|f| (f as f32 * 0.31).sin() + (f as f32 * 0.07).cos())
            .collect();
        let late: Vec<f32> = (0..n)
            .map(|f| if f >= 3 { r[f - 3] } else { r[0] })
            .collect();
        assert_eq!(best_lag(&late, &r, 10), 3);
    }

    #[test]
    fn silence_needs_a_pause() {
        let mut db = vec![-20.0f32; 100];
        for d in db.iter_mut().take(60).skip(40) {
            *d = -90.0;
        }
        db[10] = -90.0; // a single quiet frame is not a pause
        let s = silent_frames(&db);
        assert!(s[45] && !s[10] && !s[70]);
        let (a, b) = fit_loudness(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]);
        assert!((a - 2.0).abs() < 1e-5 && (b - 1.0).abs() < 1e-5);
    }
}

/// One row of the evaluation table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRow {
    /// Method: `student`, `teacher`, `loudness`, `phonetic labeler`.
    pub method: String,
    /// Clip group: `all`, or a style name.
    pub group: String,
    /// Clips in the group.
    pub clips: usize,
    /// The metrics.
    pub metrics: Metrics,
}

/// The evaluation report (`eval.json` / `eval.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalReport {
    /// Student checkpoint evaluated.
    pub model: String,
    /// Teacher sampler used (`steps`, `guidance`), if a teacher was evaluated.
    pub teacher: Option<(usize, f32)>,
    /// Rows.
    pub rows: Vec<EvalRow>,
    /// jawOpen curves of the first validation clips, for plots:
    /// `(clip, method, values)`, the reference under method `reference`.
    #[serde(skip)]
    pub curves: Vec<(String, String, Vec<f32>)>,
}

impl EvalReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Evaluation of `{}` on the validation split\n\n",
            self.model
        );
        if let Some((n, g)) = self.teacher {
            s.push_str(&format!("Teacher: {n} DDIM steps, guidance {g}.\n\n"));
        }
        s.push_str("| method | clips | group | mouth MAE | lip error (LVE) | jawOpen r | bilabial closure | silence closure | FDD | lag ms |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let m = &r.metrics;
            let pct = |v: f32| {
                if v.is_finite() {
                    format!("{:.1} %", 100.0 * v)
                } else {
                    "–".into()
                }
            };
            s.push_str(&format!(
                "| {} | {} | {} | {:.4} | {:.4} | {:.3} | {} | {} | {:.4} | {:.0} |\n",
                r.method,
                r.clips,
                r.group,
                m.mouth_mae,
                m.lip_error,
                m.jaw_r,
                pct(m.bilabial_recall),
                pct(m.silence_closure),
                m.fdd,
                m.lag_ms
            ));
        }
        s
    }
}

/// Evaluates `model` (its student, and its teacher or `teacher`'s) and the
/// baselines on the validation clips of the corpus in `dir`.
pub fn evaluate(
    model: &talking_head_core::model::TalkingHeadModel,
    model_name: &str,
    teacher: Option<&talking_head_core::model::TalkingHeadModel>,
    dir: &std::path::Path,
    limit: Option<usize>,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport, crate::manifest::CorpusError> {
    use talking_head_core::model::Sampler;
    use talking_head_core::rig::LiveLinkFaceTake;

    use crate::manifest::{CorpusError, CorpusManifest, Split, with_ext};
    use std::collections::BTreeMap;

    let manifest = CorpusManifest::load(dir)?;
    let fps = manifest.fps as f64;
    let err = |id: &str, e: String| CorpusError::Clip {
        id: id.to_string(),
        reason: e,
    };
    // Loudness baseline fitted on (a sample of) the training clips.
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for c in manifest
        .clips
        .iter()
        .filter(|c| c.split == Split::Train && c.augmentation.is_none())
        .step_by(7)
        .take(150)
    {
        let base = dir.join("clips").join(&c.id);
        let Ok((audio, _)) = talking_head_core::audio::load_mono_16k(&with_ext(&base, "wav"))
        else {
            continue;
        };
        let Ok(take) = LiveLinkFaceTake::read_file(with_ext(&base, "csv")) else {
            continue;
        };
        let n = take.frames.len();
        xs.extend(crate::facegood::frame_log_rms(&audio, fps, n));
        ys.extend(
            take.frames
                .iter()
                .map(|f| f.blendshapes[Blendshape::JawOpen.index()]),
        );
    }
    let (a, b) = fit_loudness(&xs, &ys);
    let mean: Vec<f32> = model.motion_norm().mean.clone();
    let val: Vec<_> = manifest
        .clips
        .iter()
        .filter(|c| c.split == Split::Val && c.augmentation.is_none())
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let teacher_model = teacher.or(model.has_teacher().then_some(model));
    let teacher_sampler = teacher_model.map(|t| Sampler::Teacher {
        steps: t.config().diffusion.teacher_steps,
        guidance: t.config().diffusion.guidance_scale,
    });
    let labeler = crate::phonetic::PhoneticLabeler::default();
    let mut per: BTreeMap<(String, String), Vec<Metrics>> = BTreeMap::new();
    let mut curves = Vec::new();
    let run =
        |m: &talking_head_core::model::TalkingHeadModel,
         sampler: Sampler,
         audio: &[f32],
         emotion,
         style: &str| { crate::truth_report::run_model(m, sampler, audio, emotion, style) };
    for (i, c) in val.iter().enumerate() {
        let base = dir.join("clips").join(&c.id);
        let (audio, _) = talking_head_core::audio::load_mono_16k(&with_ext(&base, "wav"))
            .map_err(|e| err(&c.id, e.to_string()))?;
        let take = LiveLinkFaceTake::read_file(with_ext(&base, "csv"))
            .map_err(|e| err(&c.id, e.to_string()))?;
        let reference: Vec<[f32; BLENDSHAPE_COUNT]> =
            take.frames.iter().map(|f| f.blendshapes).collect();
        let n = reference.len();
        let phones = crate::manifest::read_phones_tsv(&with_ext(&base, "phones.tsv"));
        let bil = phones.as_ref().map(|p| bilabial_centres(p, n, fps));
        let plot = i < 4;
        if plot {
            curves.push((
                c.id.clone(),
                "reference".into(),
                reference
                    .iter()
                    .map(|f| f[Blendshape::JawOpen.index()])
                    .collect(),
            ));
        }
        let mut add = |method: &str, pred: &[[f32; BLENDSHAPE_COUNT]]| {
            if plot {
                curves.push((
                    c.id.clone(),
                    method.to_string(),
                    pred.iter()
                        .map(|f| f[Blendshape::JawOpen.index()])
                        .collect(),
                ));
            }
            let m = clip_metrics(pred, &reference, &audio, fps, bil.as_deref());
            per.entry((method.to_string(), "all".into()))
                .or_default()
                .push(m);
            per.entry((method.to_string(), c.style.clone()))
                .or_default()
                .push(m);
        };
        if model.has_student() {
            add(
                "student (1 step)",
                &run(model, Sampler::Student, &audio, c.emotion, &c.style)
                    .map_err(|e| err(&c.id, e))?,
            );
        }
        if let (Some(t), Some(s)) = (teacher_model, teacher_sampler) {
            add(
                "teacher (DDIM)",
                &run(t, s, &audio, c.emotion, &c.style).map_err(|e| err(&c.id, e))?,
            );
        }
        let rms = crate::facegood::frame_log_rms(&audio, fps, n);
        let loud: Vec<[f32; BLENDSHAPE_COUNT]> = rms
            .iter()
            .map(|x| {
                let mut f: [f32; BLENDSHAPE_COUNT] =
                    std::array::from_fn(|k| mean.get(k).copied().unwrap_or(0.0));
                f[Blendshape::JawOpen.index()] = (a * x + b).clamp(0.0, 1.0);
                f
            })
            .collect();
        add("loudness baseline", &loud);
        if c.labels == "animator"
            && let Ok(ph) = crate::sphinx::allphone(&audio)
        {
            // Label at frame centres: odd frames at twice the rate.
            let lab = labeler.label(&audio, &ph, 2 * n, 2.0 * fps);
            let lab: Vec<_> = lab.into_iter().skip(1).step_by(2).collect();
            add("phonetic labeler", &lab);
        }
        progress(i + 1, val.len());
    }
    let rows = per
        .into_iter()
        .map(|((method, group), ms)| EvalRow {
            clips: ms.len(),
            metrics: aggregate(&ms),
            method,
            group,
        })
        .collect();
    Ok(EvalReport {
        model: model_name.to_string(),
        teacher: teacher_sampler.and_then(|s| match s {
            Sampler::Teacher { steps, guidance } => Some((steps, guidance)),
            Sampler::Student => None,
        }),
        rows,
        curves,
    })
}

impl EvalReport {
    /// Writes one PNG per plotted clip (`<dir>/eval_<clip>.png`): reference
    /// and predicted jawOpen over the first 12 s. Returns the files written.
    pub fn write_plots(
        &self,
        dir: &std::path::Path,
        fps: f64,
    ) -> Result<Vec<std::path::PathBuf>, String> {
        let palette = &PLOT_PALETTE[..5];
        let mut clips: Vec<&str> = self.curves.iter().map(|c| c.0.as_str()).collect();
        clips.dedup();
        let mut out = Vec::new();
        for clip in clips {
            let n = (12.0 * fps) as usize;
            let series: Vec<Curve<'_>> = self
                .curves
                .iter()
                .filter(|c| c.0 == clip)
                .enumerate()
                .map(|(k, c)| {
                    (
                        c.1.as_str(),
                        &c.2[..c.2.len().min(n)],
                        palette[k % palette.len()],
                    )
                })
                .collect();
            let path = dir.join(format!("eval_{clip}.png"));
            plot_curves(&path, &format!("jawOpen, {clip}"), &series, fps)?;
            out.push(path);
        }
        Ok(out)
    }
}

/// Registers a system TrueType font for plot text (DejaVu Sans from Debian's
/// `fonts-dejavu-core`); returns whether one was found. Plots without a
/// font are drawn without text.
fn register_plot_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
                {
                    return true;
                }
            }
        }
        false
    })
}

/// Line colours of the evaluation plots (reference first, in black).
pub const PLOT_PALETTE: [(u8, u8, u8); 9] = [
    (0, 0, 0),
    (220, 50, 47),
    (38, 139, 210),
    (133, 153, 0),
    (211, 54, 130),
    (181, 137, 0),
    (42, 161, 152),
    (108, 113, 196),
    (120, 120, 120),
];

/// One curve of a plot: legend label, values per frame, RGB colour.
pub type Curve<'a> = (&'a str, &'a [f32], (u8, u8, u8));

/// Draws curves (values per frame at `fps`) into a 1200×360 PNG at `path`.
pub fn plot_curves(
    path: &std::path::Path,
    title: &str,
    curves: &[Curve<'_>],
    fps: f64,
) -> Result<(), String> {
    use plotters::prelude::*;
    let text = register_plot_font();
    let root = BitMapBackend::new(path, (1200, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = curves.iter().map(|c| c.1.len()).max().unwrap_or(0).max(2);
    let secs = n as f64 / fps;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(12)
        .x_label_area_size(if text { 30 } else { 5 })
        .y_label_area_size(if text { 40 } else { 5 });
    if text {
        builder.caption(title, ("sans-serif", 18));
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..secs, 0f64..1f64)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc("seconds").y_desc("weight");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (label, values, (r, g, b)) in curves {
        let colour = RGBColor(*r, *g, *b);
        let s = chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64 / fps, *v as f64)),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        if text {
            s.label(*label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
