//! Output calibration against real animation (`talking-head calibrate`).
//!
//! A decoder fitted by mean-squared error regresses to the mean: on the
//! FACEGOOD recordings the model's jaw moves with about two thirds of the
//! animator's standard deviation and rarely closes between syllables
//! (issue 10, "dynamic range", "in-speech closures"). This module fits, per
//! mouth channel, the monotone map that sends the model's quantiles on the
//! **training** recordings onto the animator's (quantile mapping, the bias
//! correction used for climate-model output; Gudmundsson et al. 2012,
//! HESS 16). The calibrated output has the animator's distribution (share
//! of closed frames, range, peaks); its order in time, and so its rank
//! correlation with the truth, is unchanged.
//!
//! [`CalibrationMethod::Linear`] is the two-knot version that keeps the
//! Pearson correlation almost whole (a full quantile map bends the curve
//! and costs ~0.03 map-jaw r, model card): a dead zone `c` and a gain `a`,
//! `w ↦ clamp(a · (w − c), 0, 1)`, where `c` is the model's quantile at the
//! animator's share of closed frames (truth below [`CLOSED_LEVEL`]) and `a`
//! matches the animator's standard deviation above it: the two-moment
//! "linear scaling" bias correction (Teutschbein & Seibert 2012, J.
//! Hydrology 456) with its zero point set by the share of closed frames.
//! The result is stored in the checkpoint ([`OutputCalibration`], applied
//! to the frames a session emits, never to the motion history the decoder
//! reads).

use talking_head_core::model::{ChannelMap, OutputCalibration, Sampler, TalkingHeadModel};
use talking_head_core::rig::arkit::{ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, MOUTH_CHANNELS};

use crate::facegood::FacegoodClip;
use crate::truth::{TRUTH_FPS, resample_at_frame_times};
use crate::truth_report::run_model;
use talking_head_core::stats::{mean, quantile, std_dev};

/// A truth value below this counts as closed (at rest) for
/// [`CalibrationMethod::Linear`]: issue 10's closure level, as in
/// [`crate::trainer::CLOSURE_LABEL`].
pub const CLOSED_LEVEL: f32 = crate::trainer::CLOSURE_LABEL;

/// How a channel's map is fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationMethod {
    /// Quantile mapping with [`CalibrationConfig::knots`] knots: the
    /// animator's whole distribution, at a cost in Pearson r.
    Quantile,
    /// Dead zone at the animator's share of closed frames, then the gain
    /// that matches the animator's standard deviation (two knots).
    Linear,
    /// As [`CalibrationMethod::Linear`], but the line passes through the
    /// model's quantile at the animator's closed share mapped onto the
    /// animator's own quantile there (just under [`CLOSED_LEVEL`]) instead
    /// of 0: the two-knot version of the quantile map's lower end. Its dead
    /// zone is smaller, so it shuts fewer frames than `Linear` and keeps
    /// more of the Pearson r (model card, session 16).
    LinearAnchored,
}

/// Settings of the fit.
#[derive(Clone, Debug)]
pub struct CalibrationConfig {
    /// How each channel's map is fitted.
    pub method: CalibrationMethod,
    /// ARKit names of the channels to calibrate; empty: every mouth channel
    /// ([`MOUTH_CHANNELS`]). An unknown name is an error of
    /// [`fit_calibration`].
    pub channels: Vec<String>,
    /// Channels whose truth standard deviation is below this are left as
    /// they are (the animation does not use them).
    pub min_truth_std: f32,
    /// Channels whose predicted standard deviation is below this are left as
    /// they are (the model does not move them without emotion).
    pub min_pred_std: f32,
    /// Quantile levels `k / (knots − 1)`, `k = 0..knots` (2 to
    /// [`talking_head_core::model::MAX_CALIBRATION_KNOTS`]).
    pub knots: usize,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            method: CalibrationMethod::Quantile,
            channels: Vec::new(),
            min_truth_std: 0.01,
            min_pred_std: 0.01,
            knots: 33,
        }
    }
}

/// The fit of one channel.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChannelFit {
    /// ARKit name.
    pub channel: String,
    /// Mean of the model's output.
    pub pred_mean: f32,
    /// Standard deviation of the model's output.
    pub pred_std: f32,
    /// Mean of the truth.
    pub truth_mean: f32,
    /// Standard deviation of the truth.
    pub truth_std: f32,
    /// Whether the channel got a map.
    pub calibrated: bool,
    /// The model's 10 %, 50 % and 90 % quantiles.
    pub pred_quantiles: [f32; 3],
    /// The truth's 10 %, 50 % and 90 % quantiles.
    pub truth_quantiles: [f32; 3],
}

/// A fitted calibration and its per-channel report.
#[derive(Clone, Debug)]
pub struct CalibrationFit {
    /// The map to store in the checkpoint.
    pub calibration: OutputCalibration,
    /// Every mouth channel's statistics (fitted or left as is).
    pub channels: Vec<ChannelFit>,
    /// Frames (30 fps) the fit used.
    pub frames: usize,
}

/// Fits the output calibration of `style` for `model` (its student, or the
/// teacher at its default steps and guidance when it has none; neutral
/// emotion; any calibration the model already has for that style
/// ignored) against the retargeted animator curves of `recordings` at
/// 30 fps.
///
/// Errors: an unknown style or channel, no frames, or a failing model run,
/// as text.
pub fn fit_calibration(
    model: &TalkingHeadModel,
    recordings: &[FacegoodClip],
    style: &str,
    cfg: &CalibrationConfig,
) -> Result<CalibrationFit, String> {
    model.config().style_id(style).map_err(|e| e.to_string())?;
    let selected: Vec<usize> = if cfg.channels.is_empty() {
        MOUTH_CHANNELS.to_vec()
    } else {
        cfg.channels
            .iter()
            .map(|n| {
                talking_head_core::rig::Blendshape::from_name(n)
                    .map(|b| b.index())
                    .ok_or_else(|| format!("calibration of unknown ARKit blendshape `{n}`"))
            })
            .collect::<Result<_, _>>()?
    };
    // Fit on the raw output: drop an existing calibration of this style.
    let raw = model
        .with_calibration(OutputCalibration::identity(style))
        .map_err(|e| e.to_string())?;
    let fps = f64::from(model.config().fps);
    let sampler = if model.has_student() {
        Sampler::Student
    } else {
        Sampler::Teacher {
            steps: model.config().diffusion.teacher_steps,
            guidance: model.config().diffusion.guidance_scale,
        }
    };
    let mut neutral = [0f32; talking_head_core::model::EMOTION_COUNT];
    neutral[0] = 1.0;
    let mut pred: Vec<[f32; BLENDSHAPE_COUNT]> = Vec::new();
    let mut truth: Vec<[f32; BLENDSHAPE_COUNT]> = Vec::new();
    for r in recordings {
        let f = run_model(&raw, sampler, &r.audio_16k, neutral, style)?;
        let n = r.frames();
        pred.extend(resample_at_frame_times(&f, fps, n, TRUTH_FPS));
        truth.extend_from_slice(&r.arkit);
    }
    if pred.is_empty() {
        return Err("no frames to fit the calibration on".into());
    }
    let mut cal = OutputCalibration::identity(style);
    let mut channels = Vec::new();
    let levels: Vec<f64> = (0..cfg.knots.max(2))
        .map(|k| k as f64 / (cfg.knots.max(2) - 1) as f64)
        .collect();
    for &c in &selected {
        let p: Vec<f64> = pred.iter().map(|f| f64::from(f[c])).collect();
        let t: Vec<f64> = truth.iter().map(|f| f64::from(f[c])).collect();
        let (ps, ts) = (std_dev(&p) as f32, std_dev(&t) as f32);
        let q3 = |v: &[f64]| [0.1, 0.5, 0.9].map(|q| quantile(v, q) as f32);
        let calibrated = ts >= cfg.min_truth_std && ps >= cfg.min_pred_std;
        if calibrated && cfg.method != CalibrationMethod::Quantile {
            let knots = if cfg.method == CalibrationMethod::Linear {
                linear_map(&p, &t, ts)
            } else {
                anchored_map(&p, &t, ts)
            };
            if let Some((from, to)) = knots {
                cal.channels.push(ChannelMap {
                    channel: ARKIT_BLENDSHAPES[c].to_string(),
                    from: from.to_vec(),
                    to: to.to_vec(),
                });
            }
        } else if calibrated {
            // Knots at the model's quantiles. A run of equal quantiles (a
            // point mass, e.g. gated silence) becomes one knot mapped to
            // the truth's quantile at the middle of the run's levels:
            // `from` must increase strictly.
            let mut groups: Vec<(f32, Vec<f64>)> = Vec::new();
            for &q in &levels {
                let x = (quantile(&p, q) as f32).clamp(0.0, 1.0);
                match groups.last_mut() {
                    Some((l, qs)) if x <= *l + 1e-4 => qs.push(q),
                    _ => groups.push((x, vec![q])),
                }
            }
            let (mut from, mut to) = (Vec::new(), Vec::new());
            for (x, qs) in groups {
                let y = (quantile(&t, mean(&qs)) as f32).clamp(0.0, 1.0);
                from.push(x);
                to.push(y.max(to.last().copied().unwrap_or(0.0)));
            }
            if from.len() >= 2 {
                cal.channels.push(ChannelMap {
                    channel: ARKIT_BLENDSHAPES[c].to_string(),
                    from,
                    to,
                });
            }
        }
        channels.push(ChannelFit {
            channel: ARKIT_BLENDSHAPES[c].to_string(),
            pred_mean: mean(&p) as f32,
            pred_std: ps,
            truth_mean: mean(&t) as f32,
            truth_std: ts,
            calibrated: cal
                .channels
                .last()
                .is_some_and(|m| m.channel == ARKIT_BLENDSHAPES[c]),
            pred_quantiles: q3(&p),
            truth_quantiles: q3(&t),
        });
    }
    Ok(CalibrationFit {
        calibration: cal,
        channels,
        frames: pred.len(),
    })
}

/// The share of truth frames below [`CLOSED_LEVEL`] (0 for no frames).
fn closed_share(t: &[f64]) -> f64 {
    let closed = t.iter().filter(|&&v| v < f64::from(CLOSED_LEVEL)).count();
    closed as f64 / t.len().max(1) as f64
}

/// The two knots of [`CalibrationMethod::Linear`] for predictions `p` and
/// truth `t` (std `ts`): `c ↦ 0` and the line of slope `a` from there
/// (its second knot where it reaches 1, else at `1 ↦ a · (1 − c)`); `None`
/// when the model's output above the dead zone is (nearly) constant.
fn linear_map(p: &[f64], t: &[f64], ts: f32) -> Option<([f32; 2], [f32; 2])> {
    let c = (quantile(p, closed_share(t)) as f32).clamp(0.0, 0.99);
    let above: Vec<f64> = p.iter().map(|&v| (v - f64::from(c)).max(0.0)).collect();
    let sd = std_dev(&above) as f32;
    if sd.is_nan() || sd <= 1e-4 {
        return None;
    }
    let a = ts / sd;
    // The second knot where the line reaches 1 (or at 1 when it does not).
    let top = c + 1.0 / a;
    Some(if top < 1.0 {
        ([c, top], [0.0, 1.0])
    } else {
        ([c, 1.0], [0.0, a * (1.0 - c)])
    })
}

/// The two knots of [`CalibrationMethod::LinearAnchored`]: the line
/// `w ↦ y + a · (w − c)` through the model's quantile `c` at the truth's
/// closed share `s` and the truth's quantile `y` at `s`, clamped to
/// `[0, 1]`, with the slope `a` (found by bisection) that gives the clamped
/// output the truth's standard deviation `ts`; its knots are where it
/// leaves 0 and where it reaches 1 (or the ends of `[0, 1]`). `None` when
/// the output is (nearly) constant or no slope up to 50 reaches `ts`.
fn anchored_map(p: &[f64], t: &[f64], ts: f32) -> Option<([f32; 2], [f32; 2])> {
    let share = closed_share(t);
    let c = quantile(p, share).clamp(0.0, 1.0);
    let y = quantile(t, share).clamp(0.0, f64::from(CLOSED_LEVEL));
    let line = |a: f64, w: f64| (y + a * (w - c)).clamp(0.0, 1.0);
    let sd = |a: f64| std_dev(&p.iter().map(|&w| line(a, w)).collect::<Vec<_>>());
    let target = f64::from(ts);
    let (mut lo, mut hi) = (0.0f64, 50.0f64);
    if target.is_nan() || target <= 0.0 || sd(hi) < target {
        return None;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if sd(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let a = 0.5 * (lo + hi);
    if a <= 1e-6 {
        return None;
    }
    let x0 = (c - y / a).clamp(0.0, 1.0);
    let x1 = (c + (1.0 - y) / a).clamp(0.0, 1.0);
    if x1 - x0 < 1e-4 {
        return None;
    }
    Some((
        [x0 as f32, x1 as f32],
        [line(a, x0) as f32, line(a, x1) as f32],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use talking_head_core::model::ModelConfig;

    /// A FACEGOOD-like recording: noise bursts as audio and, as truth, a
    /// slow sine around 0.4 on every mouth channel (std ≈ 0.07).
    fn recording(id: &str, secs: f64, phase: f64) -> FacegoodClip {
        let n = (secs * 16_000.0) as usize;
        let audio: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let env = (0.5 + 0.5 * (t * 3.0 + phase).sin()) as f32;
                env * 0.3 * ((i as f32 * 0.37).sin() + (i as f32 * 0.011).cos())
            })
            .collect();
        let frames = (secs * TRUTH_FPS) as usize;
        let arkit = (0..frames)
            .map(|k| {
                let v = 0.4 + 0.1 * ((k as f64 / TRUTH_FPS) * 2.0 + phase).sin() as f32;
                let mut w = [0f32; BLENDSHAPE_COUNT];
                for &c in MOUTH_CHANNELS.iter() {
                    w[c] = v;
                }
                w
            })
            .collect();
        FacegoodClip {
            id: id.into(),
            audio_16k: audio,
            channels: vec![],
            raw: vec![vec![]; frames],
            arkit,
        }
    }

    #[test]
    fn calibrated_output_has_the_truths_mean_and_std() {
        let model = TalkingHeadModel::random(ModelConfig::tiny(), 3).unwrap();
        let style = model.config().styles.last().unwrap().clone();
        let recs = [recording("a", 6.0, 0.0), recording("b", 5.0, 1.3)];
        let cfg = CalibrationConfig {
            min_truth_std: 0.0,
            min_pred_std: 1e-4,
            knots: 65,
            ..CalibrationConfig::default()
        };
        let fit = fit_calibration(&model, &recs, &style, &cfg).unwrap();
        assert_eq!(fit.frames, 330);
        let calibrated = model.with_calibration(fit.calibration.clone()).unwrap();
        // Fitting again on the calibrated model ignores its calibration.
        let again = fit_calibration(&calibrated, &recs, &style, &cfg).unwrap();
        assert_eq!(again.calibration, fit.calibration);
        let mut neutral = [0f32; talking_head_core::model::EMOTION_COUNT];
        neutral[0] = 1.0;
        let fps = f64::from(model.config().fps);
        // Every mapped channel moves towards the truth's mean;
        // where the random model's output has no point mass at 0 (which no
        // monotone map can spread out) it takes the truth's distribution.
        let mut exact = 0;
        for ch in fit.channels.iter().filter(|c| c.calibrated) {
            let c = ARKIT_BLENDSHAPES
                .iter()
                .position(|n| *n == ch.channel)
                .unwrap();
            let mut out = Vec::new();
            for r in &recs {
                let f = run_model(&calibrated, Sampler::Student, &r.audio_16k, neutral, &style)
                    .unwrap();
                out.extend(
                    resample_at_frame_times(&f, fps, r.frames(), TRUTH_FPS)
                        .iter()
                        .map(|w| f64::from(w[c])),
                );
            }
            let (m, sd) = (mean(&out) as f32, std_dev(&out) as f32);
            assert!(
                (m - ch.truth_mean).abs() < (ch.pred_mean - ch.truth_mean).abs(),
                "{ch:?}: mean {m}"
            );
            if ch.pred_quantiles[0] > 0.02 {
                assert!((m - ch.truth_mean).abs() < 0.01, "{ch:?}");
                assert!((sd - ch.truth_std).abs() < 0.01, "{ch:?}");
                let q = [0.1, 0.5, 0.9].map(|l| quantile(&out, l) as f32);
                for (a, b) in q.iter().zip(ch.truth_quantiles) {
                    assert!((a - b).abs() < 0.02, "{ch:?}: {q:?}");
                }
                exact += 1;
            }
        }
        assert!(
            exact >= 1,
            "no channel without a point mass: {:?}",
            fit.channels
        );
    }

    #[test]
    fn unknown_style_is_an_error() {
        let model = TalkingHeadModel::random(ModelConfig::tiny(), 3).unwrap();
        let recs = [recording("a", 1.0, 0.0)];
        let e = fit_calibration(&model, &recs, "nope", &CalibrationConfig::default());
        assert!(e.unwrap_err().contains("nope"));
    }

    /// The anchored map sends the model's quantile at the truth's closed
    /// share to the truth's quantile there (not to 0), matches the truth's
    /// std, keeps the order, and shuts fewer frames than the linear map.
    #[test]
    fn anchored_map_passes_through_the_closed_level() {
        let t: Vec<f64> = (0..400)
            .map(|k| (0.6 * (k as f64 * 0.05).sin()).max(0.0) + 0.02)
            .collect();
        let p: Vec<f64> = t.iter().map(|v| 0.1 + 0.5 * v).collect();
        let ts = std_dev(&t) as f32;
        let (from, to) = anchored_map(&p, &t, ts).unwrap();
        let m = ChannelMap {
            channel: "jawOpen".into(),
            from: from.to_vec(),
            to: to.to_vec(),
        };
        let out: Vec<f64> = p.iter().map(|&v| f64::from(m.map(v as f32))).collect();
        assert!((std_dev(&out) as f32 - ts).abs() < 0.005, "{out:?}");
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert!(crate::facegood::pearson(&f32s(&out), &f32s(&t)) > 0.99);
        let share = t.iter().filter(|&&x| x < f64::from(CLOSED_LEVEL)).count() as f64 / 400.0;
        let c = quantile(&p, share);
        let y = quantile(&t, share);
        assert!(
            (f64::from(m.map(c as f32)) - y).abs() < 0.01,
            "{c} -> {}",
            m.map(c as f32)
        );
        let zero = |o: &[f64]| o.iter().filter(|&&x| x <= 0.0).count();
        let (lf, lt) = linear_map(&p, &t, ts).unwrap();
        let lin = ChannelMap {
            channel: "jawOpen".into(),
            from: lf.to_vec(),
            to: lt.to_vec(),
        };
        let lin_out: Vec<f64> = p.iter().map(|&v| f64::from(lin.map(v as f32))).collect();
        assert!(
            zero(&out) < zero(&lin_out),
            "{} vs {}",
            zero(&out),
            zero(&lin_out)
        );
        assert!(anchored_map(&[0.3; 50], &t[..50], ts).is_none());
    }

    /// The linear map zeroes the model's output below its quantile at the
    /// truth's closed share and matches the truth's std above it; it keeps
    /// the order of the frames and calibrates only the channels asked for.
    #[test]
    fn linear_map_sets_the_closed_share_and_the_std() {
        // Model: a squashed copy of the truth (regression to the mean).
        let t: Vec<f64> = (0..400)
            .map(|k| (0.6 * (k as f64 * 0.05).sin()).max(0.0))
            .collect();
        let p: Vec<f64> = t.iter().map(|v| 0.1 + 0.5 * v).collect();
        let ts = std_dev(&t) as f32;
        let (from, to) = linear_map(&p, &t, ts).unwrap();
        let m = ChannelMap {
            channel: "jawOpen".into(),
            from: from.to_vec(),
            to: to.to_vec(),
        };
        let out: Vec<f64> = p.iter().map(|&v| f64::from(m.map(v as f32))).collect();
        // The model's frames up to its quantile at the truth's closed share
        // are mapped to 0.
        let zero = out.iter().filter(|&&x| x <= 0.0).count();
        let closed = t.iter().filter(|&&x| x < f64::from(CLOSED_LEVEL)).count();
        assert!(zero.abs_diff(closed) <= 2, "{zero} vs {closed}");
        assert!((std_dev(&out) as f32 - ts).abs() < 0.01);
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert!(crate::facegood::pearson(&f32s(&out), &f32s(&t)) > 0.99);
        // A constant output cannot be scaled.
        assert!(linear_map(&[0.3; 50], &t[..50], ts).is_none());
        // Only the named channel is fitted; an unknown name is refused.
        let model = TalkingHeadModel::random(ModelConfig::tiny(), 3).unwrap();
        let style = model.config().styles.last().unwrap().clone();
        let recs = [recording("a", 4.0, 0.0)];
        let cfg = CalibrationConfig {
            method: CalibrationMethod::Linear,
            channels: vec!["jawOpen".into()],
            min_truth_std: 0.0,
            min_pred_std: 0.0,
            ..CalibrationConfig::default()
        };
        let fit = fit_calibration(&model, &recs, &style, &cfg).unwrap();
        assert_eq!(fit.channels.len(), 1);
        assert!(
            fit.calibration
                .channels
                .iter()
                .all(|c| c.channel == "jawOpen")
        );
        let bad = CalibrationConfig {
            channels: vec!["jawOpn".into()],
            ..cfg
        };
        let e = fit_calibration(&model, &recs, &style, &bad).unwrap_err();
        assert!(e.contains("jawOpn"), "{e}");
    }
}
