//! A living upper face: blink, gaze and brow statistics measured from real
//! iPhone ARKit captures, and a seeded streaming generator that reproduces
//! them.
//!
//! The speech-driven model animates the lower face; the eyes and brows of a
//! talking head come from here. Two halves:
//!
//! * [`UpperFaceStats`] — measured from Live Link Face takes
//!   (`MeasureUpperFace::measure` and `measure_dir` in `talking_head_train::upper_face`).
//!   [`UpperFaceStats::default`] is the set shipped in
//!   `assets/upper_face_stats.json`, measured from the 7 MIT-licensed
//!   captures in `shared/data/capture/livelinkface` (about 9 minutes, 30 and
//!   60 fps; see `assets/NOTICE-capture.md`).
//! * [`UpperFaceGenerator`] — a seeded, frame-rate independent generator that
//!   writes only the 19 upper-face channels it owns
//!   ([`GENERATED_CHANNELS`]): stochastic blinks, saccades and fixations,
//!   brow raises that become more frequent with speech activity, and small
//!   baseline noise. Used by the training corpus and by the Bevy plugin's
//!   procedural blink/saccade layer.
//!
//! # Units
//!
//! * Blendshape values are ARKit weights (0 = neutral, 1 = fully active).
//! * Gaze is measured in **gaze units** derived from the `eyeLook*` channels
//!   (see [`gaze_from_weights`]): horizontal `h > 0` is a look to the
//!   subject's left (`eyeLookOutLeft` + `eyeLookInRight`), vertical `v > 0`
//!   is a look up (`eyeLookUp*`). In the reference captures the eye-rotation
//!   columns are an exact linear function of these (about 0.6 rad per gaze
//!   unit, reported in [`GazeStats::yaw_rad_per_unit`]).
//! * Times in seconds, rates per minute (blinks, brow raises) or per second
//!   (saccades), as named in each field.
//!
//! # How measuring works
//!
//! Every take is split into segments at tracking gaps (untracked rows or
//! timecode jumps longer than [`DetectorSettings::max_gap_s`]) and each
//! segment is resampled by linear interpolation to a uniform
//! [`DetectorSettings::analysis_rate_hz`] grid (30 Hz), so 30 fps and
//! 60 fps takes are analysed identically and the detectors do not depend on
//! the capture rate. Then:
//!
//! * **Blink detector** — on `b = (eyeBlinkLeft + eyeBlinkRight) / 2` minus a
//!   running median baseline
//!   ([`DetectorSettings::blink_baseline_quantile`] over
//!   ±[`DetectorSettings::blink_baseline_s`] = ±5 s), so takes with a
//!   drooping lid baseline still work. Hysteresis: an event
//!   starts when the excess reaches [`DetectorSettings::blink_on`] and lasts
//!   while it stays at or above [`DetectorSettings::blink_off`]. Events
//!   longer than [`DetectorSettings::blink_max_s`] are deliberate closures
//!   (counted in [`BlinkStats::long_closures`], not as blinks). The shape is
//!   timed on the event's own amplitude `A` with linearly interpolated
//!   crossings: closing = 10 %→90 % of `A`, closed hold = time at or above
//!   90 %, opening = 90 %→10 %. Intervals are onset-to-onset (10 % crossing)
//!   between consecutive blinks of one segment.
//! * **Saccade detector** — velocity threshold (I-VT) on the gaze point
//!   `(h, v)`: runs of consecutive analysis frames whose speed exceeds
//!   [`DetectorSettings::saccade_velocity`] form one saccade if the run is
//!   at most [`DetectorSettings::saccade_max_s`] long and the net
//!   displacement is at least [`DetectorSettings::saccade_min_amplitude`].
//!   Frames within blinks (plus [`DetectorSettings::blink_mask_pad_s`]) are
//!   masked, because ARKit pulls `eyeLookDown*` up while the lids close.
//!   Fixations are the times between consecutive saccades.
//! * **Brow raises** — on `r = (browInnerUp + (browOuterUpLeft +
//!   browOuterUpRight) / 2) / 2` after removing the measured blink coupling
//!   (ARKit raises the brow channels while the lids close) and a running
//!   median baseline (±[`DetectorSettings::brow_baseline_s`]); hysteresis
//!   [`DetectorSettings::brow_on`] / [`DetectorSettings::brow_off`].
//!
//! # Speech activity (a proxy)
//!
//! **The captures have no audio.** Brow-vs-speech statistics use a *proxy*
//! for speech activity: the motion energy of the lower face (the `jaw*` and
//! `mouth*` channels), `e = |d(weights)/dt|` (Euclidean norm over those 27
//! channels, per second), smoothed over [`DetectorSettings::speech_smooth_s`]
//! and divided by its pooled 95th percentile (clamped to `[0, 1]`). Frames
//! with proxy ≥ [`DetectorSettings::speech_active`] count as "active". The
//! correlation of the brow-raise signal with this proxy is reported in
//! [`BrowSpeechStats`]. Mouth motion is not the same as speech (the range of
//! motion takes exercise the mouth silently), so treat these numbers as weak
//! evidence; see [`BrowSpeechStats`] for how the generator uses them.

use std::path::PathBuf;
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rig::{ArkitWeights, BLENDSHAPE_COUNT, Blendshape, LiveLinkFaceError};

mod generator;
pub use generator::{
    MAX_STEP_S, MIN_SPEECH_BROW_GAIN, SpeechActivity, UpperFaceGenerator, overlay_upper_face,
    pulse, speech_activity_from_db,
};

use crate::stats::{mean, quantile, std_dev};

// ------------------------------------------------------------------ errors ---

/// Errors from measuring or loading upper-face statistics.
#[derive(Debug, Error)]
pub enum UpperFaceError {
    /// No takes were given (or a directory held no `.csv` takes).
    #[error("no takes to measure")]
    NoTakes,
    /// A take cannot be analysed (empty, no usable timing, ...).
    #[error("take `{name}` is unusable: {reason}")]
    BadTake {
        /// The take's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The takes together hold too little analysable data.
    #[error("not enough usable data: {0}")]
    NotEnoughData(String),
    /// A Live Link Face CSV could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: LiveLinkFaceError,
    },
    /// A directory could not be listed.
    #[error("cannot list `{}`: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Statistics JSON could not be parsed or written.
    #[error("upper-face stats JSON: {0}")]
    Json(#[from] serde_json::Error),
}

// ---------------------------------------------------------------- channels ---

/// The 19 upper-face channels [`UpperFaceGenerator::step`] writes, in
/// canonical order: `eyeBlink*`, the 8 `eyeLook*`, `eyeSquint*`,
/// `eyeWide*`, `browDown*`, `browInnerUp`, `browOuterUp*`. The nose
/// (`noseSneer*`) and every lower-face channel are left untouched.
pub const GENERATED_CHANNELS: [Blendshape; 19] = [
    Blendshape::EyeBlinkLeft,
    Blendshape::EyeLookDownLeft,
    Blendshape::EyeLookInLeft,
    Blendshape::EyeLookOutLeft,
    Blendshape::EyeLookUpLeft,
    Blendshape::EyeSquintLeft,
    Blendshape::EyeWideLeft,
    Blendshape::EyeBlinkRight,
    Blendshape::EyeLookDownRight,
    Blendshape::EyeLookInRight,
    Blendshape::EyeLookOutRight,
    Blendshape::EyeLookUpRight,
    Blendshape::EyeSquintRight,
    Blendshape::EyeWideRight,
    Blendshape::BrowDownLeft,
    Blendshape::BrowDownRight,
    Blendshape::BrowInnerUp,
    Blendshape::BrowOuterUpLeft,
    Blendshape::BrowOuterUpRight,
];

const fn ix(b: Blendshape) -> usize {
    b as usize
}

/// Gaze of one weight frame in gaze units: `[h, v, vergence]`.
///
/// * `h = ((eyeLookOutLeft − eyeLookInLeft) + (eyeLookInRight − eyeLookOutRight)) / 2`,
///   positive when looking to the subject's left;
/// * `v = ((eyeLookUpLeft − eyeLookDownLeft) + (eyeLookUpRight − eyeLookDownRight)) / 2`,
///   positive when looking up;
/// * `vergence = ((eyeLookInLeft − eyeLookOutLeft) + (eyeLookInRight − eyeLookOutRight)) / 2`,
///   positive when the eyes converge.
///
/// [`gaze_to_weights`] is the inverse for gaze within `[-1, 1]`.
pub fn gaze_from_weights(w: &ArkitWeights) -> [f32; 3] {
    use Blendshape as B;
    let hl = w[ix(B::EyeLookOutLeft)] - w[ix(B::EyeLookInLeft)];
    let hr = w[ix(B::EyeLookInRight)] - w[ix(B::EyeLookOutRight)];
    let vl = w[ix(B::EyeLookUpLeft)] - w[ix(B::EyeLookDownLeft)];
    let vr = w[ix(B::EyeLookUpRight)] - w[ix(B::EyeLookDownRight)];
    [(hl + hr) * 0.5, (vl + vr) * 0.5, (hr - hl) * 0.5]
}

/// Writes gaze `(h, v, vergence)` (see [`gaze_from_weights`]) into the 8
/// `eyeLook*` channels of `out`, consistently for both eyes: looking left
/// (`h > 0`) sets `eyeLookOutLeft` and `eyeLookInRight`, looking right sets
/// `eyeLookInLeft` and `eyeLookOutRight`; up/down set `eyeLookUp*` /
/// `eyeLookDown*`. Values are clamped to `[0, 1]`; NaN counts as 0.
pub fn gaze_to_weights(h: f32, v: f32, vergence: f32, out: &mut ArkitWeights) {
    use Blendshape as B;
    let f = |x: f32| if x.is_finite() { x } else { 0.0 };
    let (h, v, c) = (f(h), f(v), f(vergence));
    let hl = h - c; // left eye, + = leftward (out)
    let hr = h + c; // right eye, + = leftward (in)
    let pos = |x: f32| x.clamp(0.0, 1.0);
    out[ix(B::EyeLookOutLeft)] = pos(hl);
    out[ix(B::EyeLookInLeft)] = pos(-hl);
    out[ix(B::EyeLookInRight)] = pos(hr);
    out[ix(B::EyeLookOutRight)] = pos(-hr);
    out[ix(B::EyeLookUpLeft)] = pos(v);
    out[ix(B::EyeLookUpRight)] = pos(v);
    out[ix(B::EyeLookDownLeft)] = pos(-v);
    out[ix(B::EyeLookDownRight)] = pos(-v);
}

// --------------------------------------------------------------- settings ---

/// Detector thresholds used by `talking_head_train`\'s `MeasureUpperFace::measure_with`. Stored in
/// the stats so a JSON file says how it was measured. Values are ARKit
/// weights unless a unit is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSettings {
    /// Uniform analysis rate every segment is resampled to (Hz).
    pub analysis_rate_hz: f64,
    /// Longest tracking gap (seconds) bridged by interpolation; longer gaps
    /// (untracked rows, timecode jumps) split a take into segments.
    pub max_gap_s: f64,
    /// Segments shorter than this (seconds) are ignored.
    pub min_segment_s: f64,
    /// Half-width (seconds) of the running eyeBlink baseline window.
    pub blink_baseline_s: f64,
    /// Quantile of the running eyeBlink baseline (0.5: running median).
    /// Closures shorter than about `(1 − quantile)` of the window do not
    /// pull the baseline up; with ±5 s and the median, deliberate closures
    /// up to ~5 s are recognised as such instead of being split into
    /// blink-like fragments.
    pub blink_baseline_quantile: f64,
    /// Blink onset threshold on the eyeBlink excess over baseline.
    pub blink_on: f64,
    /// Blink hysteresis release threshold (event lasts while excess ≥ this).
    pub blink_off: f64,
    /// Events held above `blink_off` longer than this (seconds) are
    /// deliberate closures, not blinks.
    pub blink_max_s: f64,
    /// Frames this long (seconds) before and after each blink are excluded
    /// from saccade detection.
    pub blink_mask_pad_s: f64,
    /// Saccade speed threshold (gaze units per second).
    pub saccade_velocity: f64,
    /// Minimum net saccade displacement (gaze units).
    pub saccade_min_amplitude: f64,
    /// Longest fast run (seconds) still counted as a saccade.
    pub saccade_max_s: f64,
    /// Half-width (seconds) of the running-median brow baseline.
    pub brow_baseline_s: f64,
    /// Brow-raise onset threshold on the brow-raise signal excess.
    pub brow_on: f64,
    /// Brow-raise hysteresis release threshold.
    pub brow_off: f64,
    /// Shortest brow raise (seconds above `brow_off`).
    pub brow_min_s: f64,
    /// Window (seconds) of the centred moving average smoothing the
    /// lower-face motion energy (the speech-activity proxy).
    pub speech_smooth_s: f64,
    /// Proxy level at or above which a frame counts as speech-active.
    pub speech_active: f64,
    /// Least total analysable duration (seconds) `talking_head_train`\'s `MeasureUpperFace::measure` accepts.
    pub min_total_s: f64,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            analysis_rate_hz: 30.0,
            max_gap_s: 0.25,
            min_segment_s: 1.0,
            blink_baseline_s: 5.0,
            blink_baseline_quantile: 0.5,
            blink_on: 0.25,
            blink_off: 0.10,
            blink_max_s: 1.0,
            blink_mask_pad_s: 0.07,
            saccade_velocity: 1.5,
            saccade_min_amplitude: 0.05,
            saccade_max_s: 0.2,
            brow_baseline_s: 5.0,
            brow_on: 0.08,
            brow_off: 0.04,
            brow_min_s: 0.1,
            speech_smooth_s: 0.5,
            speech_active: 0.5,
            min_total_s: 10.0,
        }
    }
}

// ------------------------------------------------------------------ stats ---

/// Summary of a sample of positive-ish quantities. All fields are 0 when
/// `count` is 0. `log_mu`/`log_sigma` are the mean and standard deviation
/// of `ln(x)` over the strictly positive values (a log-normal fit by
/// maximum likelihood); the other fields use the same unit as the values.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Mean of `ln(x)` over positive values (log-normal `mu`).
    pub log_mu: f64,
    /// Standard deviation of `ln(x)` over positive values (log-normal `sigma`).
    pub log_sigma: f64,
}

impl Summary {
    /// Summarises `values` (non-finite values are ignored).
    pub fn of(values: &[f64]) -> Self {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self::default();
        }
        let logs: Vec<f64> = v.iter().filter(|&&x| x > 0.0).map(|x| x.ln()).collect();
        Self {
            count: v.len(),
            mean: mean(&v),
            std: std_dev(&v),
            median: quantile(&v, 0.5),
            p10: quantile(&v, 0.1),
            p90: quantile(&v, 0.9),
            log_mu: mean(&logs),
            log_sigma: std_dev(&logs),
        }
    }

    /// Mean of the fitted log-normal, `exp(log_mu + log_sigma² / 2)`.
    pub fn lognormal_mean(&self) -> f64 {
        (self.log_mu + 0.5 * self.log_sigma * self.log_sigma).exp()
    }
}

/// Level statistics of one channel over all analysed frames (ARKit weight).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Mean over all frames of all takes.
    pub mean: f64,
    /// Standard deviation over all frames of all takes (includes the
    /// differences between takes).
    pub std: f64,
    /// Median over all frames of all takes (the generator's resting level).
    pub median: f64,
    /// Robust within-take spread: `1.4826 × MAD` of the deviations from each
    /// take's own median, pooled (includes slow expression changes).
    pub within_take_std: f64,
    /// Robust frame-to-frame noise at the analysis rate:
    /// `1.4826 × MAD(Δx) / √2` over consecutive frames (the generator's
    /// baseline-noise level).
    pub jitter: f64,
}

/// Blink statistics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlinkStats {
    /// Number of blinks detected.
    pub count: usize,
    /// Blinks per minute of analysed time.
    pub rate_per_min: f64,
    /// Deliberate closures (longer than `blink_max_s`), not counted as blinks.
    pub long_closures: usize,
    /// Onset-to-onset inter-blink interval (seconds), with its log-normal
    /// fit (`log_mu`, `log_sigma` of ln seconds).
    pub interval_s: Summary,
    /// Closing time, 10 %→90 % of the blink amplitude (seconds).
    pub closing_s: Summary,
    /// Closed hold, time at or above 90 % of the amplitude (seconds).
    pub hold_s: Summary,
    /// Opening time, 90 %→10 % (seconds).
    pub opening_s: Summary,
    /// Whole blink, 10 %→10 % (seconds).
    pub duration_s: Summary,
    /// Peak `(eyeBlinkLeft + eyeBlinkRight) / 2` (absolute weight, sampled
    /// at the analysis rate, so short blinks read a little low).
    pub peak: Summary,
    /// Peak excess over the running baseline (weight).
    pub amplitude: Summary,
    /// Left/right synchrony.
    pub synchrony: BlinkSynchrony,
    /// How ARKit moves other channels while the lids close.
    pub coupling: BlinkCoupling,
}

/// Left/right blink synchrony.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BlinkSynchrony {
    /// Pearson correlation of the left and right eyeBlink excess over all frames.
    pub lr_correlation: f64,
    /// Fraction of blinks in which both eyes pass `blink_on`.
    pub both_eyes_fraction: f64,
    /// Mean of right-minus-left onset time (50 % crossing, seconds).
    pub onset_lag_mean_s: f64,
    /// Standard deviation of right-minus-left onset time (seconds).
    pub onset_lag_std_s: f64,
    /// Mean of right-minus-left peak excess (weight).
    pub peak_diff_mean: f64,
    /// Standard deviation of right-minus-left peak excess (weight).
    pub peak_diff_std: f64,
}

/// Change of other channels per unit of blink closure (regression slope of
/// each channel's change from blink start to blink peak on the eyeBlink
/// excess change; ARKit weights per weight).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BlinkCoupling {
    /// `browInnerUp`.
    pub brow_inner_up: f64,
    /// Mean of `browOuterUp*`.
    pub brow_outer_up: f64,
    /// Mean of `browDown*`.
    pub brow_down: f64,
    /// Mean of `eyeSquint*`.
    pub eye_squint: f64,
    /// Mean of `eyeWide*`.
    pub eye_wide: f64,
    /// Vertical gaze `v` (negative: the tracker looks down while blinking).
    pub gaze_vertical: f64,
    /// The brow-raise signal (see module docs) — used to remove the blink
    /// coupling before brow raises are detected.
    pub brow_signal: f64,
}

/// Gaze statistics (gaze units, see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GazeStats {
    /// Number of saccades.
    pub saccade_count: usize,
    /// Saccades per second of analysed time.
    pub saccade_rate_per_s: f64,
    /// Net saccade displacement (gaze units), with log-normal fit.
    pub amplitude: Summary,
    /// Saccade amplitude in degrees (via the rotation columns), when the
    /// takes have eye rotations.
    pub amplitude_deg: Option<Summary>,
    /// Root mean square of the horizontal saccade component (gaze units).
    pub horizontal_rms: f64,
    /// Root mean square of the vertical saccade component (gaze units).
    pub vertical_rms: f64,
    /// Duration of the fast run (seconds; quantised by the analysis rate,
    /// so only an upper bound for real saccade durations).
    pub saccade_duration_s: Summary,
    /// Fixation duration between consecutive saccades (seconds), with its
    /// log-normal fit.
    pub fixation_s: Summary,
    /// Pooled mean horizontal gaze (reflects where the phone was held).
    pub mean_h: f64,
    /// Pooled mean vertical gaze (reflects where the phone was held).
    pub mean_v: f64,
    /// Mean vergence (gaze units).
    pub mean_vergence: f64,
    /// Standard deviation of horizontal gaze around each take's mean.
    pub h_std: f64,
    /// Standard deviation of vertical gaze around each take's mean.
    pub v_std: f64,
    /// Frame-to-frame gaze jitter outside saccades: RMS of the per-frame
    /// difference at the analysis rate divided by √2 (gaze units).
    pub jitter: f64,
    /// Radians of mean eye yaw per gaze unit `h` (regression over the
    /// rotation columns; negative: ARKit yaw is positive to the right).
    pub yaw_rad_per_unit: Option<f64>,
    /// Radians of mean eye pitch per gaze unit `v` (regression).
    pub pitch_rad_per_unit: Option<f64>,
}

/// Brow statistics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BrowStats {
    /// `browInnerUp` levels.
    pub brow_inner_up: ChannelStats,
    /// `browOuterUpLeft` levels.
    pub brow_outer_up_left: ChannelStats,
    /// `browOuterUpRight` levels.
    pub brow_outer_up_right: ChannelStats,
    /// `browDownLeft` levels.
    pub brow_down_left: ChannelStats,
    /// `browDownRight` levels.
    pub brow_down_right: ChannelStats,
    /// Number of brow raises.
    pub raise_count: usize,
    /// Brow raises per minute of analysed time.
    pub raise_rate_per_min: f64,
    /// Peak excess of the brow-raise signal (weight), with log-normal fit.
    pub raise_amplitude: Summary,
    /// Full width at half maximum (seconds).
    pub raise_fwhm_s: Summary,
    /// Rise time, 10 % → peak (seconds).
    pub raise_rise_s: Summary,
    /// Fall time, peak → 10 % (seconds).
    pub raise_fall_s: Summary,
    /// `browInnerUp` change per unit of brow-raise signal at the peak.
    pub inner_per_raise: f64,
    /// Mean `browOuterUp*` change per unit of brow-raise signal at the peak.
    pub outer_per_raise: f64,
    /// Mean `browDown*` change per unit of brow-raise signal at the peak.
    pub down_per_raise: f64,
    /// Relation to speech activity (a lower-face motion proxy, no audio).
    pub speech: BrowSpeechStats,
}

/// How brow raises relate to speech activity.
///
/// **The captures have no audio**: "speech activity" here is the
/// lower-face motion-energy proxy described in the [module docs](self), not
/// measured speech. [`UpperFaceGenerator`] interpolates the brow-raise rate
/// and amplitude between the quiet and active values with its
/// `speech_level`; where the captures show no increase it falls back on a
/// documented minimum gain (see [`UpperFaceGenerator`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BrowSpeechStats {
    /// Pooled normalisation of the lower-face motion energy (weights per
    /// second; its 95th percentile), so proxy = energy / this, clamped to 1.
    pub energy_ref: f64,
    /// Fraction of analysed time that is speech-active (proxy ≥ `speech_active`).
    pub active_fraction: f64,
    /// Pearson correlation of the brow-raise excess (positive part) with the
    /// proxy over all frames; `None` when either is constant.
    pub correlation: Option<f64>,
    /// Brow raises per minute of quiet time (onset with proxy < threshold).
    pub rate_quiet_per_min: f64,
    /// Brow raises per minute of active time.
    pub rate_active_per_min: f64,
    /// Mean raise amplitude with a quiet onset (weight; 0 if none).
    pub amplitude_quiet: f64,
    /// Mean raise amplitude with an active onset (weight; 0 if none).
    pub amplitude_active: f64,
}

/// Lid levels (`eyeSquint*`, `eyeWide*`, `eyeBlink*`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LidStats {
    /// `eyeSquintLeft`.
    pub eye_squint_left: ChannelStats,
    /// `eyeSquintRight`.
    pub eye_squint_right: ChannelStats,
    /// `eyeWideLeft`.
    pub eye_wide_left: ChannelStats,
    /// `eyeWideRight`.
    pub eye_wide_right: ChannelStats,
    /// `eyeBlinkLeft` (all frames, blinks included).
    pub eye_blink_left: ChannelStats,
    /// `eyeBlinkRight` (all frames, blinks included).
    pub eye_blink_right: ChannelStats,
}

/// Per-take values, so outliers are visible.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TakeStats {
    /// Take name (file stem for `talking_head_train`\'s `MeasureUpperFace::measure_dir`).
    pub name: String,
    /// Analysed time (seconds, sum of segments).
    pub duration_s: f64,
    /// Capture rate (frames per second, from the median frame step).
    pub capture_fps: f64,
    /// Untracked rows in the take.
    pub untracked_rows: usize,
    /// Number of analysed segments.
    pub segments: usize,
    /// Blinks detected.
    pub blink_count: usize,
    /// Blinks per minute.
    pub blink_rate_per_min: f64,
    /// Mean inter-blink interval (seconds; 0 if fewer than 2 blinks).
    pub blink_interval_mean_s: f64,
    /// Mean blink duration, 10 %→10 % (seconds).
    pub blink_duration_mean_s: f64,
    /// Deliberate closures.
    pub long_closures: usize,
    /// Saccades detected.
    pub saccade_count: usize,
    /// Saccades per second.
    pub saccade_rate_per_s: f64,
    /// Mean saccade amplitude (gaze units).
    pub saccade_amplitude_mean: f64,
    /// Mean fixation (seconds).
    pub fixation_mean_s: f64,
    /// Mean horizontal gaze.
    pub gaze_mean_h: f64,
    /// Mean vertical gaze.
    pub gaze_mean_v: f64,
    /// Brow raises detected.
    pub brow_raise_count: usize,
    /// Brow raises per minute.
    pub brow_raise_rate_per_min: f64,
    /// Correlation of brow-raise excess with the speech proxy.
    pub brow_speech_correlation: Option<f64>,
    /// Speech-active fraction of the take (proxy).
    pub speech_active_fraction: f64,
    /// Mean `browInnerUp`.
    pub brow_inner_up_mean: f64,
    /// Mean of `browOuterUp*`.
    pub brow_outer_up_mean: f64,
    /// Mean of `browDown*`.
    pub brow_down_mean: f64,
    /// Mean of `eyeSquint*`.
    pub eye_squint_mean: f64,
    /// Mean of `eyeWide*`.
    pub eye_wide_mean: f64,
    /// Median of the mean eyeBlink (lid baseline).
    pub eye_blink_median: f64,
}

/// Upper-face statistics measured from real captures; see the
/// [module docs](self) for the detectors and units.
///
/// [`Default`] is the shipped set (`assets/upper_face_stats.json`,
/// measured from the 7 Live Link Face captures in shared data); if that
/// file ever fails to parse, [`UpperFaceStats::fallback`] (hard-coded
/// values close to the measured ones) is used instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpperFaceStats {
    /// Number of takes measured.
    pub takes: usize,
    /// Total analysed time (seconds).
    pub total_s: f64,
    /// The detector settings used.
    pub settings: DetectorSettings,
    /// Blinks.
    pub blink: BlinkStats,
    /// Gaze: saccades, fixations, positions.
    pub gaze: GazeStats,
    /// Brows: levels, raises, relation to speech activity.
    pub brows: BrowStats,
    /// Lids: squint, wide and blink levels.
    pub lids: LidStats,
    /// Per-take values.
    pub per_take: Vec<TakeStats>,
}

const SHIPPED_JSON: &str = include_str!("../../../../assets/upper_face_stats.json");

impl Default for UpperFaceStats {
    /// The shipped statistics ([`UpperFaceStats::shipped`]).
    fn default() -> Self {
        Self::shipped()
    }
}

impl UpperFaceStats {
    /// The statistics shipped in `assets/upper_face_stats.json` (measured from
    /// the 7 reference captures). Falls back to [`fallback`](Self::fallback)
    /// if the embedded JSON does not parse. Parsed once and cached.
    pub fn shipped() -> Self {
        static CACHE: OnceLock<UpperFaceStats> = OnceLock::new();
        CACHE
            .get_or_init(|| Self::from_json_str(SHIPPED_JSON).unwrap_or_else(|_| Self::fallback()))
            .clone()
    }

    /// Whether the embedded `assets/upper_face_stats.json` parses (i.e.
    /// [`shipped`](Self::shipped) is not the fallback).
    pub fn shipped_json_is_valid() -> bool {
        Self::from_json_str(SHIPPED_JSON).is_ok()
    }

    /// Parses statistics from JSON (as written by [`to_json`](Self::to_json)).
    ///
    /// # Errors
    /// [`UpperFaceError::Json`] if the text is not valid stats JSON.
    pub fn from_json_str(json: &str) -> Result<Self, UpperFaceError> {
        Ok(serde_json::from_str(json)?)
    }

    /// Pretty-printed JSON.
    ///
    /// # Errors
    /// [`UpperFaceError::Json`] (cannot happen for finite values).
    pub fn to_json(&self) -> Result<String, UpperFaceError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Hard-coded statistics close to the shipped measurement (rounded),
    /// used only if the embedded JSON fails to parse: about 14 blinks/min
    /// with log-normal intervals (median 2.9 s), ~0.25 s blinks, ~0.5
    /// saccades/s, brow raises 4/min when quiet and 15/min when speaking.
    /// Per-take values are empty and `takes` is 0.
    pub fn fallback() -> Self {
        // A log-normal summary from its median `exp(mu)` and `sigma`.
        let ln = |median: f64, sigma: f64| {
            let mean = median * (0.5 * sigma * sigma).exp();
            Summary {
                count: 1,
                mean,
                std: mean * ((sigma * sigma).exp() - 1.0).sqrt(),
                median,
                p10: median * (-1.2816 * sigma).exp(),
                p90: median * (1.2816 * sigma).exp(),
                log_mu: median.ln(),
                log_sigma: sigma,
            }
        };
        let c = |median: f64, jitter: f64| ChannelStats {
            mean: median,
            std: 0.2,
            median,
            within_take_std: 0.05,
            jitter,
        };
        Self {
            takes: 0,
            total_s: 0.0,
            settings: DetectorSettings::default(),
            blink: BlinkStats {
                count: 1,
                rate_per_min: 14.4,
                long_closures: 0,
                interval_s: ln(2.9, 0.64),
                closing_s: ln(0.084, 0.75),
                hold_s: ln(0.046, 0.68),
                opening_s: ln(0.117, 0.63),
                duration_s: ln(0.275, 0.63),
                peak: ln(0.66, 0.37),
                amplitude: ln(0.58, 0.35),
                synchrony: BlinkSynchrony {
                    lr_correlation: 0.94,
                    both_eyes_fraction: 0.99,
                    onset_lag_mean_s: 0.0,
                    onset_lag_std_s: 0.01,
                    peak_diff_mean: -0.01,
                    peak_diff_std: 0.064,
                },
                coupling: BlinkCoupling {
                    brow_inner_up: 0.069,
                    brow_outer_up: 0.06,
                    brow_down: 0.0,
                    eye_squint: -0.03,
                    eye_wide: -0.25,
                    gaze_vertical: -0.34,
                    brow_signal: 0.064,
                },
            },
            gaze: GazeStats {
                saccade_count: 1,
                saccade_rate_per_s: 0.48,
                amplitude: ln(0.165, 0.83),
                amplitude_deg: None,
                horizontal_rms: 0.23,
                vertical_rms: 0.21,
                saccade_duration_s: ln(0.057, 0.51),
                fixation_s: ln(0.57, 1.58),
                mean_h: 0.0,
                mean_v: 0.0,
                mean_vergence: 0.05,
                h_std: 0.24,
                v_std: 0.18,
                jitter: 0.0093,
                yaw_rad_per_unit: Some(-0.6),
                pitch_rad_per_unit: Some(-0.53),
            },
            brows: BrowStats {
                brow_inner_up: c(0.14, 0.0007),
                brow_outer_up_left: c(0.018, 0.0003),
                brow_outer_up_right: c(0.02, 0.0003),
                brow_down_left: c(0.0, 0.0),
                brow_down_right: c(0.0, 0.0),
                raise_count: 1,
                raise_rate_per_min: 6.4,
                raise_amplitude: ln(0.3, 0.8),
                raise_fwhm_s: ln(0.71, 0.85),
                raise_rise_s: ln(0.47, 0.86),
                raise_fall_s: ln(0.56, 1.0),
                inner_per_raise: 0.98,
                outer_per_raise: 1.0,
                down_per_raise: -0.027,
                speech: BrowSpeechStats {
                    energy_ref: 3.7,
                    active_fraction: 0.22,
                    correlation: None,
                    rate_quiet_per_min: 3.9,
                    rate_active_per_min: 15.0,
                    amplitude_quiet: 0.36,
                    amplitude_active: 0.42,
                },
            },
            lids: LidStats {
                eye_squint_left: c(0.117, 0.0009),
                eye_squint_right: c(0.117, 0.0009),
                eye_wide_left: c(0.15, 0.0006),
                eye_wide_right: c(0.15, 0.0006),
                eye_blink_left: c(0.0, 0.0),
                eye_blink_right: c(0.0, 0.0),
            },
            per_take: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::pearson;

    /// Frame levels (dBFS, 20 ms frames at 16 kHz) of seeded white noise
    /// at `rms_db` dBFS.
    fn noise_levels(rms_db: f32, frames: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let amp = 10f32.powf(rms_db / 20.0);
        (0..frames)
            .map(|_| {
                let x: Vec<f32> = (0..320)
                    .map(|_| amp * rng.sample::<f32, _>(StandardNormal))
                    .collect();
                crate::audio::rms_dbfs(&x)
            })
            .collect()
    }

    #[test]
    fn speech_activity_matches_the_fixed_floor_on_clean_audio() {
        let mut a = SpeechActivity::new(50.0);
        // Digital silence, then levels from −70 to 0 dBFS and back.
        let mut levels = vec![f32::NEG_INFINITY; 10];
        levels.extend((0..=70).map(|i| -70.0 + i as f32));
        levels.extend((0..=70).rev().map(|i| -70.0 + i as f32));
        for &db in &levels {
            let got = a.update(db);
            assert!(
                (got - speech_activity_from_db(db)).abs() < 1e-6,
                "{db}: {got}"
            );
        }
        assert_eq!(a.update(f32::NAN), 0.0);
        assert_eq!(a.update(f32::INFINITY), 0.0);
        assert!(a.floor_db() == f32::NEG_INFINITY);
    }

    #[test]
    fn speech_activity_ignores_a_noise_floor_and_keeps_speech_above_it() {
        for floor in [-65.0f32, -50.0, -35.0] {
            let mut a = SpeechActivity::new(50.0);
            let noise = noise_levels(floor, 500, 7);
            let on_noise: Vec<f32> = noise.iter().map(|&db| a.update(db)).collect();
            let worst = on_noise.iter().copied().fold(0.0, f32::max);
            assert!(
                worst < 0.02,
                "noise at {floor} dBFS: activity up to {worst}"
            );
            // The fixed floor counts a −50 dBFS noise floor as 1/6 speech.
            if floor == -50.0 {
                let old = noise.iter().map(|&db| speech_activity_from_db(db));
                assert!(old.sum::<f32>() / 500.0 > 0.15);
            }
            // Speech 30 dB above the noise still reads as active.
            let speech = a.update(floor + 30.0);
            assert!(speech > 0.25, "speech over {floor} dBFS noise: {speech}");
            assert!(a.mins.len() <= 200);
        }
    }

    #[test]
    fn speech_activity_forgets_noise_that_stopped() {
        let mut a = SpeechActivity::new(50.0);
        for db in noise_levels(-40.0, 300, 3) {
            a.update(db);
        }
        assert!(a.floor_db() > -45.0);
        // 4 s of a quiet room later, the old floor is gone.
        for _ in 0..200 {
            a.update(-80.0);
        }
        assert_eq!(a.floor_db(), -80.0);
        assert!((a.update(-30.0) - speech_activity_from_db(-30.0)).abs() < 1e-6);
        a.reset();
        assert_eq!(a.floor_db(), f32::NEG_INFINITY);
    }

    #[test]
    fn the_rest_face_stays_neutral_on_a_microphone_noise_floor() {
        // 60 s of −50 dBFS noise through the plugin's path: levels →
        // activity → the neutral-rest generator. No brow raise, no widening.
        let levels = noise_levels(-50.0, 3000, 11);
        let mut a = SpeechActivity::new(50.0);
        let speech: Vec<f32> = levels.iter().map(|&db| a.update(db)).collect();
        let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), 5).with_neutral_rest(true);
        let frames = g.generate(levels.len(), 50.0, &speech);
        let brows = [
            Blendshape::BrowInnerUp,
            Blendshape::BrowOuterUpLeft,
            Blendshape::BrowOuterUpRight,
            Blendshape::EyeWideLeft,
            Blendshape::EyeWideRight,
        ];
        for b in brows {
            let m = frames.iter().map(|f| f[ix(b)]).fold(0.0, f32::max);
            assert!(m < 0.1, "{} reaches {m} on a noise floor", b.name());
        }
    }

    #[test]
    fn gaze_round_trip_and_consistency() {
        for &(h, v, c) in &[
            (0.3f32, -0.2f32, 0.05f32),
            (-0.4, 0.1, 0.0),
            (0.0, 0.0, 0.1),
        ] {
            let mut w = [0.0f32; BLENDSHAPE_COUNT];
            gaze_to_weights(h, v, c, &mut w);
            let g = gaze_from_weights(&w);
            assert!((g[0] - h).abs() < 1e-6 && (g[1] - v).abs() < 1e-6 && (g[2] - c).abs() < 1e-6);
        }
        // Looking left: the left eye looks out, the right eye looks in.
        let mut w = [0.0f32; BLENDSHAPE_COUNT];
        gaze_to_weights(0.5, 0.0, 0.0, &mut w);
        assert_eq!(w[ix(Blendshape::EyeLookOutLeft)], 0.5);
        assert_eq!(w[ix(Blendshape::EyeLookInRight)], 0.5);
        assert_eq!(w[ix(Blendshape::EyeLookInLeft)], 0.0);
        assert_eq!(w[ix(Blendshape::EyeLookOutRight)], 0.0);
        gaze_to_weights(f32::NAN, 9.0, 0.0, &mut w);
        assert!(w.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    }

    #[test]
    fn shipped_stats_parse_and_fallback_is_sane() {
        assert!(UpperFaceStats::shipped_json_is_valid());
        let d = UpperFaceStats::default();
        assert_eq!(d.takes, 7);
        assert!(d.blink.rate_per_min > 5.0 && d.blink.rate_per_min < 40.0);
        let f = UpperFaceStats::fallback();
        let back = UpperFaceStats::from_json_str(&f.to_json().unwrap()).unwrap();
        assert_eq!(back.takes, 0);
        let mut g = UpperFaceGenerator::new(f, 0);
        for w in g.generate(300, 30.0, &[]) {
            assert!(w.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn step_handles_odd_dt_and_speech() {
        let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), 5);
        let mut w = [0.5f32; BLENDSHAPE_COUNT];
        for dt in [f32::NAN, -1.0, 0.0, f32::INFINITY, 1e-7, 10.0, 1.0 / 30.0] {
            for s in [f32::NAN, -1.0, 0.0, 0.5, 2.0, f32::INFINITY] {
                g.step(dt, s, &mut w);
                assert!(w.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
            }
        }
        // NaN / negative dt does not advance time; huge dt is capped.
        let t = g.time_secs();
        g.step(f32::NAN, 0.0, &mut w);
        assert_eq!(g.time_secs(), t);
        g.step(100.0, 0.0, &mut w);
        assert!((g.time_secs() - t - f64::from(MAX_STEP_S)).abs() < 1e-9);
        // Non-generated channels keep their values.
        assert_eq!(w[ix(Blendshape::JawOpen)], 0.5);
        assert_eq!(w[ix(Blendshape::NoseSneerLeft)], 0.5);
    }

    #[test]
    fn blinks_cover_both_eyes_with_slight_asymmetry() {
        let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), 8);
        let frames = g.generate(30 * 120, 30.0, &[]);
        let (l, r): (Vec<f64>, Vec<f64>) = frames
            .iter()
            .map(|w| (f64::from(w[0]), f64::from(w[7])))
            .unzip();
        let corr = pearson(&l, &r).unwrap();
        assert!(corr > 0.9 && corr < 1.0, "{corr}");
        assert!(l.iter().any(|&v| v > 0.5));
    }
}
