//! A living upper face: blink, gaze and brow statistics measured from real
//! iPhone ARKit captures, and a seeded streaming generator that reproduces
//! them.
//!
//! The speech-driven model animates the lower face; the eyes and brows of a
//! talking head come from here. Two halves:
//!
//! * [`UpperFaceStats`] — measured from Live Link Face takes
//!   ([`UpperFaceStats::measure`], [`UpperFaceStats::measure_dir`]).
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

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rig::{
    ArkitWeights, BLENDSHAPE_COUNT, Blendshape, FaceRegion, LiveLinkFaceError, LiveLinkFaceTake,
};

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

/// Detector thresholds used by [`UpperFaceStats::measure_with`]. Stored in
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
    /// Least total analysable duration (seconds) [`UpperFaceStats::measure`] accepts.
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
    /// Take name (file stem for [`UpperFaceStats::measure_dir`]).
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

const SHIPPED_JSON: &str = include_str!("../assets/upper_face_stats.json");

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

    /// Measures every `*.csv` Live Link Face take in `dir` (sorted by file
    /// name; the take name is the file stem) with the default
    /// [`DetectorSettings`].
    ///
    /// # Errors
    /// [`UpperFaceError::Io`] if `dir` cannot be listed,
    /// [`UpperFaceError::Read`] if a file is not a valid take,
    /// [`UpperFaceError::NoTakes`] if there is no `.csv` file, and the
    /// errors of [`measure`](Self::measure).
    pub fn measure_dir(dir: impl AsRef<Path>) -> Result<Self, UpperFaceError> {
        let dir = dir.as_ref();
        let io = |source| UpperFaceError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let is_csv = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if is_csv && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        let mut takes = Vec::with_capacity(files.len());
        for p in files {
            let take = LiveLinkFaceTake::read_file(&p).map_err(|source| UpperFaceError::Read {
                path: p.clone(),
                source,
            })?;
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            takes.push((name, take));
        }
        Self::measure(&takes)
    }

    /// Measures named takes with the default [`DetectorSettings`]; see
    /// [`measure_with`](Self::measure_with).
    ///
    /// # Errors
    /// As [`measure_with`](Self::measure_with).
    pub fn measure(takes: &[(String, LiveLinkFaceTake)]) -> Result<Self, UpperFaceError> {
        Self::measure_with(takes, &DetectorSettings::default())
    }

    /// Measures named takes with the given settings. Frame times come from
    /// the timecodes ([`LiveLinkFaceTake::timecode_rate`], falling back on
    /// [`LiveLinkFaceTake::estimate_fps`]); untracked rows become gaps.
    ///
    /// # Errors
    /// [`UpperFaceError::NoTakes`] for an empty list,
    /// [`UpperFaceError::BadTake`] for a take without frames or timing, and
    /// the errors of [`measure_tracks`](Self::measure_tracks).
    pub fn measure_with(
        takes: &[(String, LiveLinkFaceTake)],
        settings: &DetectorSettings,
    ) -> Result<Self, UpperFaceError> {
        if takes.is_empty() {
            return Err(UpperFaceError::NoTakes);
        }
        let tracks = takes
            .iter()
            .map(|(name, take)| UpperFaceTrack::from_take(name, take))
            .collect::<Result<Vec<_>, _>>()?;
        Self::measure_tracks(&tracks, settings)
    }

    /// Measures prepared tracks; the core of [`measure`](Self::measure).
    ///
    /// # Errors
    /// [`UpperFaceError::NoTakes`] for an empty list,
    /// [`UpperFaceError::BadTake`] for invalid settings, and
    /// [`UpperFaceError::NotEnoughData`] if the analysable time is below
    /// [`DetectorSettings::min_total_s`].
    pub fn measure_tracks(
        tracks: &[UpperFaceTrack],
        settings: &DetectorSettings,
    ) -> Result<Self, UpperFaceError> {
        if tracks.is_empty() {
            return Err(UpperFaceError::NoTakes);
        }
        check_settings(settings)?;
        measure_impl(tracks, settings)
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

fn check_settings(s: &DetectorSettings) -> Result<(), UpperFaceError> {
    let vals = [
        s.analysis_rate_hz,
        s.max_gap_s,
        s.min_segment_s,
        s.blink_baseline_s,
        s.blink_baseline_quantile,
        s.blink_on,
        s.blink_off,
        s.blink_max_s,
        s.blink_mask_pad_s,
        s.saccade_velocity,
        s.saccade_min_amplitude,
        s.saccade_max_s,
        s.brow_baseline_s,
        s.brow_on,
        s.brow_off,
        s.brow_min_s,
        s.speech_smooth_s,
        s.speech_active,
        s.min_total_s,
    ];
    let ok = vals.iter().all(|v| v.is_finite() && *v >= 0.0)
        && (1.0..=1000.0).contains(&s.analysis_rate_hz)
        && s.blink_on > 0.0
        && s.brow_on > 0.0
        && s.blink_baseline_quantile <= 1.0;
    if ok {
        Ok(())
    } else {
        Err(UpperFaceError::BadTake {
            name: "<settings>".to_owned(),
            reason: "detector settings must be finite and non-negative, \
                     analysis_rate_hz in 1..=1000, blink_on and brow_on > 0"
                .to_owned(),
        })
    }
}

// ----------------------------------------------------------------- tracks ---

/// A take reduced to what measuring needs: frame times and weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpperFaceTrack {
    /// Name reported in [`TakeStats::name`].
    pub name: String,
    /// Time of each frame in seconds (increasing; frames whose time does
    /// not increase are skipped).
    pub times: Vec<f64>,
    /// ARKit weights of each frame (non-finite values read as 0).
    pub frames: Vec<ArkitWeights>,
    /// Eye rotations per frame, `[left yaw, left pitch, right yaw, right
    /// pitch]` (radians), when every frame has them.
    pub eye_rotations: Option<Vec<[f32; 4]>>,
    /// Untracked rows (reported only).
    pub untracked: usize,
}

impl UpperFaceTrack {
    /// Frame times from the take's timecodes (at its
    /// [`timecode_rate`](LiveLinkFaceTake::timecode_rate), else its
    /// [`estimate_fps`](LiveLinkFaceTake::estimate_fps)).
    ///
    /// # Errors
    /// [`UpperFaceError::BadTake`] if the take has no tracked frames or its
    /// timing cannot be determined.
    pub fn from_take(name: &str, take: &LiveLinkFaceTake) -> Result<Self, UpperFaceError> {
        let bad = |reason: &str| UpperFaceError::BadTake {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if take.frames.is_empty() {
            return Err(bad("no tracked frames"));
        }
        let rate = take
            .timecode_rate()
            .map(f64::from)
            .or_else(|| take.estimate_fps())
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| bad("cannot determine the timecode rate (take shorter than 1 s?)"))?;
        let times = take.frame_times(rate);
        let eye_rotations = take
            .frames
            .iter()
            .map(|f| match (f.left_eye, f.right_eye) {
                (Some(l), Some(r)) => Some([l[0], l[1], r[0], r[1]]),
                _ => None,
            })
            .collect::<Option<Vec<_>>>();
        Ok(Self {
            name: name.to_owned(),
            times,
            frames: take.weights(),
            eye_rotations,
            untracked: take.untracked.len(),
        })
    }

    /// A track of frames at a uniform rate `fps` (e.g. generated animation).
    ///
    /// # Errors
    /// [`UpperFaceError::BadTake`] if `fps` is not finite and positive.
    pub fn uniform(name: &str, frames: &[ArkitWeights], fps: f64) -> Result<Self, UpperFaceError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(UpperFaceError::BadTake {
                name: name.to_owned(),
                reason: format!("fps must be finite and positive, got {fps}"),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            times: (0..frames.len()).map(|i| i as f64 / fps).collect(),
            frames: frames.to_vec(),
            eye_rotations: None,
            untracked: 0,
        })
    }
}

// ------------------------------------------------------------ small maths ---

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Linear-interpolated quantile, `q` in `[0, 1]`; 0 for an empty slice.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (ma, mb) = (mean(&a[..n]), mean(&b[..n]));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    let d = (saa * sbb).sqrt();
    (d > 1e-12).then(|| (sab / d).clamp(-1.0, 1.0))
}

/// Slope of `y ≈ k·x` through the origin; 0 if `x` is all zero.
fn slope_through_origin(pairs: &[(f64, f64)]) -> f64 {
    let sxx: f64 = pairs.iter().map(|(x, _)| x * x).sum();
    let sxy: f64 = pairs.iter().map(|(x, y)| x * y).sum();
    if sxx > 1e-12 { sxy / sxx } else { 0.0 }
}

/// Least-squares slope of `y` on `x` (with intercept); `None` if `x` is constant.
fn ls_slope(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x), mean(y));
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    (sxx > 1e-9).then(|| sxy / sxx)
}

/// Running median with half-width `half` samples (window clipped at the ends).
fn rolling_median(x: &[f64], half: usize) -> Vec<f64> {
    rolling_quantile(x, half, 0.5)
}

/// Running quantile `q` (nearest rank) with half-width `half` samples
/// (window clipped at the ends).
fn rolling_quantile(x: &[f64], half: usize, q: f64) -> Vec<f64> {
    let n = x.len();
    let mut buf = Vec::with_capacity(2 * half + 1);
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(n);
            buf.clear();
            buf.extend_from_slice(&x[lo..hi]);
            let k = ((buf.len() as f64 * q) as usize).min(buf.len() - 1);
            *buf.select_nth_unstable_by(k, f64::total_cmp).1
        })
        .collect()
}

/// Centred moving average with half-width `half` samples.
fn moving_average(x: &[f64], half: usize) -> Vec<f64> {
    let n = x.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for v in x {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(n);
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

// --------------------------------------------------------------- measuring ---

/// One resampled, gap-free piece of a take.
struct Segment {
    frames: Vec<ArkitWeights>,
}

/// Splits at gaps and resamples to `rate` Hz by linear interpolation.
fn resample(track: &UpperFaceTrack, s: &DetectorSettings) -> (Vec<Segment>, f64) {
    let rate = s.analysis_rate_hz;
    let n = track.times.len().min(track.frames.len());
    let clean = |w: &ArkitWeights| {
        let mut o = *w;
        for v in &mut o {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        o
    };
    // Group into runs without big gaps.
    let mut runs: Vec<Vec<(f64, ArkitWeights)>> = Vec::new();
    let mut cur: Vec<(f64, ArkitWeights)> = Vec::new();
    let mut steps = Vec::new();
    for i in 0..n {
        let t = track.times[i];
        if !t.is_finite() {
            continue;
        }
        if let Some(&(last, _)) = cur.last() {
            let dt = t - last;
            if dt <= 0.0 {
                continue;
            }
            steps.push(dt);
            if dt > s.max_gap_s {
                runs.push(std::mem::take(&mut cur));
            }
        }
        cur.push((t, clean(&track.frames[i])));
    }
    runs.push(cur);
    let median_step = quantile(&steps, 0.5);
    let fps = if median_step > 0.0 {
        1.0 / median_step
    } else {
        0.0
    };

    let mut segs = Vec::new();
    for run in runs {
        let (Some(&(t0, _)), Some(&(t1, _))) = (run.first(), run.last()) else {
            continue;
        };
        if t1 - t0 < s.min_segment_s {
            continue;
        }
        let count = ((t1 - t0) * rate + 1e-9).floor() as usize + 1;
        let mut frames = Vec::with_capacity(count);
        let mut j = 0;
        for k in 0..count {
            let t = t0 + k as f64 / rate;
            while j + 1 < run.len() - 1 && run[j + 1].0 <= t {
                j += 1;
            }
            let (ta, wa) = run[j];
            let (tb, wb) = run[(j + 1).min(run.len() - 1)];
            let u = if tb > ta {
                ((t - ta) / (tb - ta)).clamp(0.0, 1.0) as f32
            } else {
                0.0
            };
            let mut w = [0.0f32; BLENDSHAPE_COUNT];
            for c in 0..BLENDSHAPE_COUNT {
                w[c] = wa[c] + (wb[c] - wa[c]) * u;
            }
            frames.push(w);
        }
        segs.push(Segment { frames });
    }
    (segs, fps)
}

/// A detected blink (or long closure), indices at the analysis rate.
#[derive(Debug, Clone)]
struct BlinkEvent {
    /// Deliberate closure (too long to be a blink).
    long: bool,
    /// Onset time (10 % crossing, or first frame above `blink_off`), seconds.
    onset: f64,
    /// Shape, when complete: (closing, hold, opening, duration).
    shape: Option<[f64; 4]>,
    /// Frame before the 10 % crossing (for coupling), when complete.
    pre: Option<usize>,
    peak_idx: usize,
    peak_abs: f64,
    amplitude: f64,
    /// Mask range (inclusive) in frames, before padding.
    extent: (usize, usize),
    /// Per eye: (right-minus-left 50 % onset time in seconds,
    /// right-minus-left peak excess), when both onsets are found.
    eyes: Option<(f64, f64)>,
    /// Both eyes' excess reached `blink_on`.
    both: bool,
}

/// Interpolated time (in frames) where `x` crosses `level` between `a` and `a + 1`.
fn cross(x: &[f64], a: usize, level: f64) -> f64 {
    let (xa, xb) = (x[a], x[a + 1]);
    if (xb - xa).abs() < 1e-12 {
        a as f64 + 0.5
    } else {
        a as f64 + ((level - xa) / (xb - xa)).clamp(0.0, 1.0)
    }
}

/// Generic hysteresis event finder: returns `[a, b]` runs where `x ≥ off`
/// that contain at least one sample `≥ on`.
fn hysteresis_runs(x: &[f64], on: f64, off: f64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let n = x.len();
    let mut i = 0;
    while i < n {
        if x[i] < off {
            i += 1;
            continue;
        }
        let a = i;
        let mut b = i;
        while b + 1 < n && x[b + 1] >= off {
            b += 1;
        }
        if x[a..=b].iter().any(|&v| v >= on) {
            out.push((a, b));
        }
        i = b + 1;
    }
    out
}

fn argmax(x: &[f64], a: usize, b: usize) -> usize {
    let mut best = a;
    for i in a..=b {
        if x[i] > x[best] {
            best = i;
        }
    }
    best
}

/// Peak-relative timing of an event in `x` around `peak`, bounded below by
/// `lo_bound`: (start10, start90, end90, end10) in fractional frames, plus
/// the frame before the 10 % crossing. `None` if a crossing is missing.
fn event_timing(x: &[f64], peak: usize, lo_bound: usize) -> Option<([f64; 4], usize)> {
    let n = x.len();
    let a = x[peak];
    if a <= 0.0 {
        return None;
    }
    let (lo, hi) = (0.1 * a, 0.9 * a);
    // start10: last j < peak with x[j] < lo.
    let mut j = peak;
    while j > lo_bound && x[j - 1] >= lo {
        j -= 1;
    }
    if j == 0 || x[j - 1] >= lo {
        return None;
    }
    let pre = j - 1;
    let s10 = cross(x, pre, lo);
    let mut k = peak;
    while k > 0 && x[k - 1] >= hi {
        k -= 1;
    }
    let s90 = if k == 0 { 0.0 } else { cross(x, k - 1, hi) };
    let mut m = peak;
    while m + 1 < n && x[m + 1] >= hi {
        m += 1;
    }
    if m + 1 >= n {
        return None;
    }
    let e90 = cross(x, m, hi);
    let mut e = m + 1;
    while e < n && x[e] >= lo {
        e += 1;
    }
    if e >= n {
        return None;
    }
    let e10 = cross(x, e - 1, lo);
    Some(([s10, s90, e90, e10], pre))
}

/// Time (fractional frames) of the last crossing of `level` before `peak`.
fn rise_cross(x: &[f64], peak: usize, lo_bound: usize, level: f64) -> Option<f64> {
    let mut j = peak;
    while j > lo_bound && x[j - 1] >= level {
        j -= 1;
    }
    (j > 0 && x[j - 1] < level).then(|| cross(x, j - 1, level))
}

/// Time (fractional frames) of the first crossing of `level` after `peak`.
fn fall_cross(x: &[f64], peak: usize, level: f64) -> Option<f64> {
    let mut m = peak;
    while m + 1 < x.len() && x[m + 1] >= level {
        m += 1;
    }
    (m + 1 < x.len()).then(|| cross(x, m, level))
}

fn detect_blinks(
    x: &[f64],
    xl: &[f64],
    xr: &[f64],
    babs: &[f64],
    s: &DetectorSettings,
) -> Vec<BlinkEvent> {
    let rate = s.analysis_rate_hz;
    let n = x.len();
    let mut out = Vec::new();
    let mut lo_bound = 0usize;
    for (a, b) in hysteresis_runs(x, s.blink_on, s.blink_off) {
        let peak = argmax(x, a, b);
        let long = (b - a + 1) as f64 / rate > s.blink_max_s;
        let timing = event_timing(x, peak, lo_bound).filter(|_| a > 0 && b + 1 < n);
        let (onset, shape, pre, extent) = match timing {
            Some(([s10, s90, e90, e10], pre)) => (
                s10 / rate,
                Some([
                    (s90 - s10) / rate,
                    (e90 - s90) / rate,
                    (e10 - e90) / rate,
                    (e10 - s10) / rate,
                ]),
                Some(pre),
                (pre, (e10.ceil() as usize).min(n - 1)),
            ),
            None => (a as f64 / rate, None, None, (a, b)),
        };
        // Per eye: own peak and 50 % onset.
        let pl = argmax(xl, a, b);
        let pr = argmax(xr, a, b);
        let both = xl[pl] >= s.blink_on && xr[pr] >= s.blink_on;
        let eyes = match (
            rise_cross(xl, pl, lo_bound, 0.5 * xl[pl]),
            rise_cross(xr, pr, lo_bound, 0.5 * xr[pr]),
        ) {
            (Some(tl), Some(tr)) if xl[pl] > 0.0 && xr[pr] > 0.0 => {
                Some(((tr - tl) / rate, xr[pr] - xl[pl]))
            }
            _ => None,
        };
        out.push(BlinkEvent {
            long,
            onset,
            shape,
            pre,
            peak_idx: peak,
            peak_abs: babs[peak],
            amplitude: x[peak],
            extent,
            eyes,
            both,
        });
        lo_bound = b + 1;
    }
    out
}

/// Per-segment signals.
struct Signals {
    x: Vec<f64>,
    xl: Vec<f64>,
    xr: Vec<f64>,
    babs: Vec<f64>,
    h: Vec<f64>,
    v: Vec<f64>,
    verg: Vec<f64>,
    inner: Vec<f64>,
    outer: Vec<f64>,
    down: Vec<f64>,
    squint: Vec<f64>,
    wide: Vec<f64>,
    brow: Vec<f64>,
    energy: Vec<f64>,
}

fn signals(seg: &Segment, s: &DetectorSettings) -> Signals {
    use Blendshape as B;
    let rate = s.analysis_rate_hz;
    let f = &seg.frames;
    let col = |c: Blendshape| f.iter().map(|w| f64::from(w[ix(c)])).collect::<Vec<f64>>();
    let avg = |a: Blendshape, b: Blendshape| {
        f.iter()
            .map(|w| 0.5 * (f64::from(w[ix(a)]) + f64::from(w[ix(b)])))
            .collect::<Vec<f64>>()
    };
    let bl = col(B::EyeBlinkLeft);
    let br = col(B::EyeBlinkRight);
    let babs = avg(B::EyeBlinkLeft, B::EyeBlinkRight);
    let half = (s.blink_baseline_s * rate).round() as usize;
    let sub = |v: &[f64]| {
        let base = rolling_quantile(v, half, s.blink_baseline_quantile);
        v.iter()
            .zip(&base)
            .map(|(a, b)| a - b)
            .collect::<Vec<f64>>()
    };
    let x = sub(&babs);
    let xl = sub(&bl);
    let xr = sub(&br);
    let gaze: Vec<[f32; 3]> = f.iter().map(gaze_from_weights).collect();
    let inner = col(B::BrowInnerUp);
    let outer = avg(B::BrowOuterUpLeft, B::BrowOuterUpRight);
    let brow = inner
        .iter()
        .zip(&outer)
        .map(|(i, o)| 0.5 * (i + o))
        .collect();
    let lower: Vec<usize> = Blendshape::ALL
        .iter()
        .filter(|b| matches!(b.region(), FaceRegion::Jaw | FaceRegion::Mouth))
        .map(|b| b.index())
        .collect();
    let mut energy: Vec<f64> = (0..f.len())
        .map(|i| {
            if i == 0 {
                return 0.0;
            }
            lower
                .iter()
                .map(|&c| {
                    let d = f64::from(f[i][c] - f[i - 1][c]) * rate;
                    d * d
                })
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    if energy.len() > 1 {
        energy[0] = energy[1];
    }
    let energy = moving_average(&energy, (s.speech_smooth_s * rate * 0.5).round() as usize);
    Signals {
        x,
        xl,
        xr,
        babs,
        h: gaze.iter().map(|g| f64::from(g[0])).collect(),
        v: gaze.iter().map(|g| f64::from(g[1])).collect(),
        verg: gaze.iter().map(|g| f64::from(g[2])).collect(),
        inner,
        outer,
        down: avg(B::BrowDownLeft, B::BrowDownRight),
        squint: avg(B::EyeSquintLeft, B::EyeSquintRight),
        wide: avg(B::EyeWideLeft, B::EyeWideRight),
        brow,
        energy,
    }
}

/// A detected saccade.
struct Saccade {
    start: f64,
    end: f64,
    dh: f64,
    dv: f64,
    duration: f64,
}

fn detect_saccades(
    h: &[f64],
    v: &[f64],
    mask: &[bool],
    s: &DetectorSettings,
) -> (Vec<Saccade>, Vec<f64>) {
    let rate = s.analysis_rate_hz;
    let n = h.len();
    let mut out = Vec::new();
    let mut jitter_d2 = Vec::new();
    let fast = |i: usize| {
        i >= 1
            && i < n
            && !mask[i]
            && !mask[i - 1]
            && (h[i] - h[i - 1]).hypot(v[i] - v[i - 1]) * rate > s.saccade_velocity
    };
    let mut i = 1;
    while i < n {
        if !fast(i) {
            if !mask[i] && !mask[i - 1] {
                let d2 = (h[i] - h[i - 1]).powi(2) + (v[i] - v[i - 1]).powi(2);
                jitter_d2.push(d2);
            }
            i += 1;
            continue;
        }
        let a = i;
        let mut b = i;
        while fast(b + 1) {
            b += 1;
        }
        let dh = h[b] - h[a - 1];
        let dv = v[b] - v[a - 1];
        let duration = (b - a + 1) as f64 / rate;
        if duration <= s.saccade_max_s + 1e-9 && dh.hypot(dv) >= s.saccade_min_amplitude {
            out.push(Saccade {
                start: (a - 1) as f64 / rate,
                end: b as f64 / rate,
                dh,
                dv,
                duration,
            });
        }
        i = b + 1;
    }
    (out, jitter_d2)
}

/// A detected brow raise.
struct BrowRaise {
    onset_idx: usize,
    amplitude: f64,
    fwhm: Option<f64>,
    rise: Option<f64>,
    fall: Option<f64>,
    d_inner: f64,
    d_outer: f64,
    d_down: f64,
}

fn detect_brow_raises(
    sig: &Signals,
    r: &[f64],
    mask: &[bool],
    s: &DetectorSettings,
) -> Vec<BrowRaise> {
    let rate = s.analysis_rate_hz;
    let mut out = Vec::new();
    let mut lo_bound = 0;
    for (a, b) in hysteresis_runs(r, s.brow_on, s.brow_off) {
        let len = b - a + 1;
        let bound = lo_bound;
        lo_bound = b + 1;
        if (len as f64) < s.brow_min_s * rate {
            continue;
        }
        let masked = mask[a..=b].iter().filter(|&&m| m).count();
        if masked * 2 >= len {
            continue;
        }
        let peak = argmax(r, a, b);
        let amp = r[peak];
        let half_up = rise_cross(r, peak, bound, 0.5 * amp);
        let half_dn = fall_cross(r, peak, 0.5 * amp);
        let s10 = rise_cross(r, peak, bound, 0.1 * amp);
        let e10 = fall_cross(r, peak, 0.1 * amp);
        let pre = a.saturating_sub(1);
        out.push(BrowRaise {
            onset_idx: a,
            amplitude: amp,
            fwhm: half_up.zip(half_dn).map(|(u, d)| (d - u) / rate),
            rise: s10.map(|t| (peak as f64 - t) / rate),
            fall: e10.map(|t| (t - peak as f64) / rate),
            d_inner: sig.inner[peak] - sig.inner[pre],
            d_outer: sig.outer[peak] - sig.outer[pre],
            d_down: sig.down[peak] - sig.down[pre],
        });
    }
    out
}

#[derive(Default)]
struct ChannelAcc {
    all: Vec<f64>,
    dev: Vec<f64>,
    diffs: Vec<f64>,
}

impl ChannelAcc {
    fn add_take(&mut self, vals: &[f64], diffs: &[f64]) {
        let med = quantile(vals, 0.5);
        self.all.extend_from_slice(vals);
        self.dev.extend(vals.iter().map(|v| v - med));
        self.diffs.extend_from_slice(diffs);
    }
    fn stats(&self) -> ChannelStats {
        let abs: Vec<f64> = self.dev.iter().map(|d| d.abs()).collect();
        let dabs: Vec<f64> = self.diffs.iter().map(|d| d.abs()).collect();
        ChannelStats {
            mean: mean(&self.all),
            std: std_dev(&self.all),
            median: quantile(&self.all, 0.5),
            within_take_std: 1.4826 * quantile(&abs, 0.5),
            jitter: 1.4826 * quantile(&dabs, 0.5) / std::f64::consts::SQRT_2,
        }
    }
}

struct TakeWork {
    name: String,
    fps: f64,
    untracked: usize,
    segs: Vec<Segment>,
    sigs: Vec<Signals>,
    blinks: Vec<Vec<BlinkEvent>>,
    masks: Vec<Vec<bool>>,
}

fn measure_impl(
    tracks: &[UpperFaceTrack],
    s: &DetectorSettings,
) -> Result<UpperFaceStats, UpperFaceError> {
    use Blendshape as B;
    let rate = s.analysis_rate_hz;
    let pad = (s.blink_mask_pad_s * rate).round() as usize;

    // Pass 1: resample, signals, blinks, masks.
    let mut work = Vec::with_capacity(tracks.len());
    for t in tracks {
        if t.frames.is_empty() {
            return Err(UpperFaceError::BadTake {
                name: t.name.clone(),
                reason: "no frames".to_owned(),
            });
        }
        let (segs, fps) = resample(t, s);
        let sigs: Vec<Signals> = segs.iter().map(|g| signals(g, s)).collect();
        let blinks: Vec<Vec<BlinkEvent>> = sigs
            .iter()
            .map(|g| detect_blinks(&g.x, &g.xl, &g.xr, &g.babs, s))
            .collect();
        let masks = sigs
            .iter()
            .zip(&blinks)
            .map(|(g, ev)| {
                let n = g.x.len();
                let mut m = vec![false; n];
                for e in ev {
                    let lo = e.extent.0.saturating_sub(pad);
                    let hi = (e.extent.1 + pad).min(n.saturating_sub(1));
                    for v in m.iter_mut().take(hi + 1).skip(lo) {
                        *v = true;
                    }
                }
                m
            })
            .collect();
        work.push(TakeWork {
            name: t.name.clone(),
            fps,
            untracked: t.untracked,
            segs,
            sigs,
            blinks,
            masks,
        });
    }
    let seg_secs = |seg: &Segment| seg.frames.len() as f64 / rate;
    let total_s: f64 = work.iter().flat_map(|w| w.segs.iter()).map(seg_secs).sum();
    if total_s < s.min_total_s {
        return Err(UpperFaceError::NotEnoughData(format!(
            "{total_s:.1} s of gap-free frames (segments of at least {} s); need {} s",
            s.min_total_s.max(s.min_segment_s),
            s.min_total_s
        )));
    }

    // Blink coupling from complete blinks.
    let mut cp: [Vec<(f64, f64)>; 7] = Default::default();
    for w in &work {
        for (g, ev) in w.sigs.iter().zip(&w.blinks) {
            for e in ev.iter().filter(|e| !e.long) {
                let Some(pre) = e.pre else { continue };
                let p = e.peak_idx;
                let dx = g.x[p] - g.x[pre];
                let chans: [&Vec<f64>; 7] = [
                    &g.inner, &g.outer, &g.down, &g.squint, &g.wide, &g.v, &g.brow,
                ];
                for (acc, ch) in cp.iter_mut().zip(chans) {
                    acc.push((dx, ch[p] - ch[pre]));
                }
            }
        }
    }
    let coupling = BlinkCoupling {
        brow_inner_up: slope_through_origin(&cp[0]),
        brow_outer_up: slope_through_origin(&cp[1]),
        brow_down: slope_through_origin(&cp[2]),
        eye_squint: slope_through_origin(&cp[3]),
        eye_wide: slope_through_origin(&cp[4]),
        gaze_vertical: slope_through_origin(&cp[5]),
        brow_signal: slope_through_origin(&cp[6]),
    };

    // Speech-proxy normalisation.
    let all_energy: Vec<f64> = work
        .iter()
        .flat_map(|w| w.sigs.iter())
        .flat_map(|g| g.energy.iter().copied())
        .collect();
    let energy_ref = quantile(&all_energy, 0.95);
    let proxy = |e: f64| {
        if energy_ref > 1e-9 {
            (e / energy_ref).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };

    // Pass 2 + aggregation.
    let mut per_take = Vec::with_capacity(work.len());
    let mut intervals = Vec::new();
    let (mut closing, mut hold, mut opening, mut duration) = (vec![], vec![], vec![], vec![]);
    let (mut peaks, mut amps) = (vec![], vec![]);
    let (mut lags, mut pdiffs) = (vec![], vec![]);
    let (mut n_blinks, mut n_long, mut n_both) = (0usize, 0usize, 0usize);
    let (mut xl_all, mut xr_all) = (vec![], vec![]);
    let (mut sac_amp, mut sac_dh, mut sac_dv, mut sac_dur, mut fix) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut jitter_d2 = Vec::new();
    let (mut h_dev, mut v_dev, mut h_all, mut v_all, mut verg_all) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut raises: Vec<(BrowRaise, bool)> = Vec::new();
    let (mut r_pos_all, mut p_all) = (vec![], vec![]);
    let (mut active_frames, mut quiet_frames) = (0usize, 0usize);
    let mut chans: [ChannelAcc; 11] = Default::default();
    let chan_ids = [
        B::BrowInnerUp,
        B::BrowOuterUpLeft,
        B::BrowOuterUpRight,
        B::BrowDownLeft,
        B::BrowDownRight,
        B::EyeSquintLeft,
        B::EyeSquintRight,
        B::EyeWideLeft,
        B::EyeWideRight,
        B::EyeBlinkLeft,
        B::EyeBlinkRight,
    ];

    for w in &work {
        let take_s: f64 = w.segs.iter().map(seg_secs).sum();
        let mut tk = TakeStats {
            name: w.name.clone(),
            duration_s: take_s,
            capture_fps: w.fps,
            untracked_rows: w.untracked,
            segments: w.segs.len(),
            ..TakeStats::default()
        };
        let (mut t_int, mut t_dur, mut t_amp, mut t_fix) = (vec![], vec![], vec![], vec![]);
        let (mut t_h, mut t_v) = (vec![], vec![]);
        let (mut t_r, mut t_p) = (vec![], vec![]);
        let mut t_active = 0usize;
        let mut t_nframes = 0usize;
        let mut t_chan: Vec<Vec<f64>> = vec![Vec::new(); chan_ids.len()];
        let mut t_diff: Vec<Vec<f64>> = vec![Vec::new(); chan_ids.len()];
        let mut t_babs = Vec::new();

        for (((seg, g), ev), mask) in w.segs.iter().zip(&w.sigs).zip(&w.blinks).zip(&w.masks) {
            let n = g.x.len();
            t_nframes += n;
            // Blinks.
            let mut prev_onset: Option<f64> = None;
            for e in ev {
                if e.long {
                    n_long += 1;
                    tk.long_closures += 1;
                    prev_onset = None;
                    continue;
                }
                n_blinks += 1;
                tk.blink_count += 1;
                if let Some(p) = prev_onset {
                    intervals.push(e.onset - p);
                    t_int.push(e.onset - p);
                }
                prev_onset = Some(e.onset);
                if let Some([c, hd, o, d]) = e.shape {
                    closing.push(c);
                    hold.push(hd);
                    opening.push(o);
                    duration.push(d);
                    t_dur.push(d);
                    peaks.push(e.peak_abs);
                    amps.push(e.amplitude);
                }
                if let Some((lag, pd)) = e.eyes {
                    lags.push(lag);
                    pdiffs.push(pd);
                }
                if e.both {
                    n_both += 1;
                }
            }
            xl_all.extend_from_slice(&g.xl);
            xr_all.extend_from_slice(&g.xr);
            // Saccades.
            let (sacs, jd) = detect_saccades(&g.h, &g.v, mask, s);
            jitter_d2.extend(jd);
            for (k, sc) in sacs.iter().enumerate() {
                let a = sc.dh.hypot(sc.dv);
                sac_amp.push(a);
                t_amp.push(a);
                sac_dh.push(sc.dh);
                sac_dv.push(sc.dv);
                sac_dur.push(sc.duration);
                if k > 0 {
                    let f = sc.start - sacs[k - 1].end;
                    fix.push(f);
                    t_fix.push(f);
                }
            }
            tk.saccade_count += sacs.len();
            for i in (0..n).filter(|&i| !mask[i]) {
                t_h.push(g.h[i]);
                t_v.push(g.v[i]);
                verg_all.push(g.verg[i]);
            }
            // Brows: remove blink coupling, then a running-median baseline.
            let corrected: Vec<f64> = g
                .brow
                .iter()
                .zip(&g.x)
                .map(|(b, x)| b - coupling.brow_signal * x.max(0.0))
                .collect();
            let base = rolling_median(&corrected, (s.brow_baseline_s * rate).round() as usize);
            let r: Vec<f64> = corrected.iter().zip(&base).map(|(c, b)| c - b).collect();
            let p: Vec<f64> = g.energy.iter().map(|&e| proxy(e)).collect();
            let active: Vec<bool> = p.iter().map(|&v| v >= s.speech_active).collect();
            t_active += active.iter().filter(|&&a| a).count();
            for br in detect_brow_raises(g, &r, mask, s) {
                let act = active[br.onset_idx];
                raises.push((br, act));
                tk.brow_raise_count += 1;
            }
            t_r.extend(r.iter().map(|v| v.max(0.0)));
            t_p.extend_from_slice(&p);
            // Channel levels.
            for ((acc, dacc), &c) in t_chan.iter_mut().zip(&mut t_diff).zip(&chan_ids) {
                acc.extend(seg.frames.iter().map(|fr| f64::from(fr[ix(c)])));
                dacc.extend(
                    seg.frames
                        .windows(2)
                        .map(|p| f64::from(p[1][ix(c)] - p[0][ix(c)])),
                );
            }
            t_babs.extend_from_slice(&g.babs);
        }

        // Per-take gaze position.
        let (mh, mv) = (mean(&t_h), mean(&t_v));
        h_dev.extend(t_h.iter().map(|x| x - mh));
        v_dev.extend(t_v.iter().map(|x| x - mv));
        h_all.extend_from_slice(&t_h);
        v_all.extend_from_slice(&t_v);
        for ((acc, vals), diffs) in chans.iter_mut().zip(&t_chan).zip(&t_diff) {
            acc.add_take(vals, diffs);
        }
        let mins = take_s / 60.0;
        let per_min = |c: usize| if mins > 0.0 { c as f64 / mins } else { 0.0 };
        tk.blink_rate_per_min = per_min(tk.blink_count);
        tk.blink_interval_mean_s = mean(&t_int);
        tk.blink_duration_mean_s = mean(&t_dur);
        tk.saccade_rate_per_s = if take_s > 0.0 {
            tk.saccade_count as f64 / take_s
        } else {
            0.0
        };
        tk.saccade_amplitude_mean = mean(&t_amp);
        tk.fixation_mean_s = mean(&t_fix);
        tk.gaze_mean_h = mh;
        tk.gaze_mean_v = mv;
        tk.brow_raise_rate_per_min = per_min(tk.brow_raise_count);
        tk.brow_speech_correlation = pearson(&t_r, &t_p);
        tk.speech_active_fraction = if t_nframes > 0 {
            t_active as f64 / t_nframes as f64
        } else {
            0.0
        };
        tk.brow_inner_up_mean = mean(&t_chan[0]);
        tk.brow_outer_up_mean = 0.5 * (mean(&t_chan[1]) + mean(&t_chan[2]));
        tk.brow_down_mean = 0.5 * (mean(&t_chan[3]) + mean(&t_chan[4]));
        tk.eye_squint_mean = 0.5 * (mean(&t_chan[5]) + mean(&t_chan[6]));
        tk.eye_wide_mean = 0.5 * (mean(&t_chan[7]) + mean(&t_chan[8]));
        tk.eye_blink_median = quantile(&t_babs, 0.5);
        active_frames += t_active;
        quiet_frames += t_nframes - t_active;
        r_pos_all.extend(t_r);
        p_all.extend(t_p);
        per_take.push(tk);
    }

    let total_min = total_s / 60.0;
    let synchrony = BlinkSynchrony {
        lr_correlation: pearson(&xl_all, &xr_all).unwrap_or(0.0),
        both_eyes_fraction: if n_blinks > 0 {
            n_both as f64 / n_blinks as f64
        } else {
            0.0
        },
        onset_lag_mean_s: mean(&lags),
        onset_lag_std_s: std_dev(&lags),
        peak_diff_mean: mean(&pdiffs),
        peak_diff_std: std_dev(&pdiffs),
    };
    let blink = BlinkStats {
        count: n_blinks,
        rate_per_min: n_blinks as f64 / total_min,
        long_closures: n_long,
        interval_s: Summary::of(&intervals),
        closing_s: Summary::of(&closing),
        hold_s: Summary::of(&hold),
        opening_s: Summary::of(&opening),
        duration_s: Summary::of(&duration),
        peak: Summary::of(&peaks),
        amplitude: Summary::of(&amps),
        synchrony,
        coupling,
    };

    // Eye-rotation scale (raw frames of tracks that have rotations).
    let (mut hs, mut vs, mut yaws, mut pitches) = (vec![], vec![], vec![], vec![]);
    for t in tracks {
        if let Some(rot) = &t.eye_rotations {
            for (w, r) in t.frames.iter().zip(rot) {
                let g = gaze_from_weights(w);
                let vals = [g[0], g[1], r[0], r[1], r[2], r[3]];
                if vals.iter().all(|v| v.is_finite()) {
                    hs.push(f64::from(g[0]));
                    vs.push(f64::from(g[1]));
                    yaws.push(0.5 * f64::from(r[0] + r[2]));
                    pitches.push(0.5 * f64::from(r[1] + r[3]));
                }
            }
        }
    }
    let yaw_k = ls_slope(&hs, &yaws).filter(|k| k.abs() > 1e-3);
    let pitch_k = ls_slope(&vs, &pitches).filter(|k| k.abs() > 1e-3);
    let amplitude_deg = match (yaw_k, pitch_k) {
        (Some(ky), Some(kp)) if !sac_dh.is_empty() => {
            let deg: Vec<f64> = sac_dh
                .iter()
                .zip(&sac_dv)
                .map(|(dh, dv)| (dh * ky).hypot(dv * kp).to_degrees())
                .collect();
            Some(Summary::of(&deg))
        }
        _ => None,
    };
    let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64).sqrt();
    let gaze = GazeStats {
        saccade_count: sac_amp.len(),
        saccade_rate_per_s: sac_amp.len() as f64 / total_s,
        amplitude: Summary::of(&sac_amp),
        amplitude_deg,
        horizontal_rms: rms(&sac_dh),
        vertical_rms: rms(&sac_dv),
        saccade_duration_s: Summary::of(&sac_dur),
        fixation_s: Summary::of(&fix),
        mean_h: mean(&h_all),
        mean_v: mean(&v_all),
        mean_vergence: mean(&verg_all),
        h_std: std_dev(&h_dev),
        v_std: std_dev(&v_dev),
        jitter: (mean(&jitter_d2) / 2.0).sqrt(),
        yaw_rad_per_unit: yaw_k,
        pitch_rad_per_unit: pitch_k,
    };

    let ramps: Vec<f64> = raises.iter().map(|(r, _)| r.amplitude).collect();
    let pick = |f: fn(&BrowRaise) -> Option<f64>| -> Vec<f64> {
        raises.iter().filter_map(|(r, _)| f(r)).collect()
    };
    let per_raise = |f: fn(&BrowRaise) -> f64| {
        let pairs: Vec<(f64, f64)> = raises.iter().map(|(r, _)| (r.amplitude, f(r))).collect();
        slope_through_origin(&pairs)
    };
    let amp_where = |act: bool| {
        let v: Vec<f64> = raises
            .iter()
            .filter(|(_, a)| *a == act)
            .map(|(r, _)| r.amplitude)
            .collect();
        (mean(&v), v.len())
    };
    let (amp_q, n_q) = amp_where(false);
    let (amp_a, n_a) = amp_where(true);
    let mins_of = |frames: usize| frames as f64 / rate / 60.0;
    let rate_of = |c: usize, frames: usize| {
        let m = mins_of(frames);
        if m > 0.0 { c as f64 / m } else { 0.0 }
    };
    let brows = BrowStats {
        brow_inner_up: chans[0].stats(),
        brow_outer_up_left: chans[1].stats(),
        brow_outer_up_right: chans[2].stats(),
        brow_down_left: chans[3].stats(),
        brow_down_right: chans[4].stats(),
        raise_count: raises.len(),
        raise_rate_per_min: raises.len() as f64 / total_min,
        raise_amplitude: Summary::of(&ramps),
        raise_fwhm_s: Summary::of(&pick(|r| r.fwhm)),
        raise_rise_s: Summary::of(&pick(|r| r.rise)),
        raise_fall_s: Summary::of(&pick(|r| r.fall)),
        inner_per_raise: per_raise(|r| r.d_inner),
        outer_per_raise: per_raise(|r| r.d_outer),
        down_per_raise: per_raise(|r| r.d_down),
        speech: BrowSpeechStats {
            energy_ref,
            active_fraction: active_frames as f64 / (active_frames + quiet_frames).max(1) as f64,
            correlation: pearson(&r_pos_all, &p_all),
            rate_quiet_per_min: rate_of(n_q, quiet_frames),
            rate_active_per_min: rate_of(n_a, active_frames),
            amplitude_quiet: amp_q,
            amplitude_active: amp_a,
        },
    };
    let lids = LidStats {
        eye_squint_left: chans[5].stats(),
        eye_squint_right: chans[6].stats(),
        eye_wide_left: chans[7].stats(),
        eye_wide_right: chans[8].stats(),
        eye_blink_left: chans[9].stats(),
        eye_blink_right: chans[10].stats(),
    };
    Ok(UpperFaceStats {
        takes: tracks.len(),
        total_s,
        settings: s.clone(),
        blink,
        gaze,
        brows,
        lids,
        per_take,
    })
}

// --------------------------------------------------------------- generator ---

/// Longest time step [`UpperFaceGenerator::step`] advances in one call
/// (seconds); longer steps (a hitch, a paused game) are shortened to this.
pub const MAX_STEP_S: f32 = 0.5;

/// Time constant (seconds) of the baseline-noise processes.
const NOISE_TAU_S: f64 = 0.5;
/// Time constant (seconds) of the fixational gaze jitter.
const JITTER_TAU_S: f64 = 0.1;
/// Share of a left/right pair's baseline-noise variance that both sides share.
const NOISE_SHARED: f64 = 0.7;
/// Fraction of a raised-cosine ramp spent between 10 % and 90 % of its height.
const RAMP_10_90: f64 = 0.590;
/// Fraction of a raised-cosine ramp spent between 10 % and 100 %.
const RAMP_10_100: f64 = 0.795;
/// Candidate directions per saccade (see [`UpperFaceGenerator`]).
const SACCADE_CANDIDATES: usize = 8;
/// Blink closing/opening ramps are shortened by this factor: the 30 Hz
/// captures stretch fast ramps (a 2-frame closure reads as ~0.07 s
/// whatever its true length), so this calibrates generated blinks to
/// re-measure like the captures.
const BLINK_TIME_SCALE: f64 = 0.75;
/// Fixation durations are shortened by this factor. The measured
/// fixations span the blink-masked frames, in which the detector cannot see
/// saccades (about 12 % of the time at the measured blink rate), so they
/// are too long by about that much; without the correction re-measured
/// generated output shows a saccade rate 10–15 % below the captures.
const FIXATION_SCALE: f64 = 0.88;
/// The gaze-position density that steers saccade directions uses the
/// measured spread times this factor: choosing among candidate targets at a
/// fixed amplitude widens the resulting distribution, and this calibrates
/// it back to the measured [`GazeStats::h_std`] / [`GazeStats::v_std`].
const GAZE_SPREAD_SCALE: f64 = 0.8;
/// Minimum brow-raise rate gain from silence to full speech activity, used
/// only when the measured active rate is not higher than the quiet one.
pub const MIN_SPEECH_BROW_GAIN: f64 = 1.5;

/// Index of each baseline-noise channel (own process).
#[derive(Clone, Copy)]
enum Noise {
    BlinkL,
    BlinkR,
    SquintL,
    SquintR,
    WideL,
    WideR,
    DownL,
    DownR,
    Inner,
    OuterL,
    OuterR,
}
const N_NOISE: usize = 11;
/// Shared processes: blink, squint, wide, down, outer.
const N_SHARED: usize = 5;

fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() { x } else { fallback }
}

/// Log-normal parameters `(mu, sigma)` from a summary, falling back when
/// the summary is empty or non-finite; sigma clamped to `[0, max_sigma]`.
fn lognormal_of(
    s: &Summary,
    fallback_median: f64,
    fallback_sigma: f64,
    max_sigma: f64,
) -> (f64, f64) {
    if s.count == 0 || !s.log_mu.is_finite() || !s.log_sigma.is_finite() {
        (fallback_median.ln(), fallback_sigma)
    } else {
        (s.log_mu, s.log_sigma.clamp(0.0, max_sigma))
    }
}

/// Everything the generator derives from [`UpperFaceStats`], sanitised.
#[derive(Debug, Clone)]
struct GenParams {
    blink_interval: (f64, f64),
    blink_min_interval: f64,
    blink_close: (f64, f64),
    blink_hold: (f64, f64),
    blink_open: (f64, f64),
    blink_peak: (f64, f64),
    blink_lag_std: f64,
    blink_peak_diff: (f64, f64),
    coupling: BlinkCoupling,
    fixation: (f64, f64),
    saccade_amp: (f64, f64),
    saccade_amp_range: (f64, f64),
    saccade_dir: (f64, f64),
    gaze_std: (f64, f64),
    vergence: f64,
    jitter_sigma: f64,
    deg_per_unit: f64,
    brow_rate_per_s: (f64, f64),
    brow_amp_mean: (f64, f64),
    brow_amp_sigma: f64,
    /// Rise, hold, fall of a raise with the median FWHM (seconds).
    brow_shape: [f64; 3],
    brow_fwhm: (f64, f64),
    brow_k: (f64, f64, f64),
    rest: [f64; N_NOISE],
    noise: [f64; N_NOISE],
}

impl GenParams {
    fn from_stats(st: &UpperFaceStats) -> Self {
        let fb = UpperFaceStats::fallback();
        let b = &st.blink;
        let g = &st.gaze;
        let br = &st.brows;
        let rate = finite_or(st.settings.analysis_rate_hz, 30.0).clamp(1.0, 1000.0);
        let dt30 = 1.0 / rate;
        // Stationary std of an OU process whose frame difference at the
        // analysis rate has RMS `jitter·√2`.
        let ou_sigma = |jitter: f64, tau: f64| {
            let j = finite_or(jitter, 0.0).clamp(0.0, 0.05);
            j / (1.0 - (-dt30 / tau).exp()).sqrt()
        };
        let level = |c: &ChannelStats| finite_or(c.median, 0.0).clamp(0.0, 1.0);
        let noise = |c: &ChannelStats| ou_sigma(c.jitter, NOISE_TAU_S).min(0.05);
        let chans = [
            &st.lids.eye_blink_left,
            &st.lids.eye_blink_right,
            &st.lids.eye_squint_left,
            &st.lids.eye_squint_right,
            &st.lids.eye_wide_left,
            &st.lids.eye_wide_right,
            &br.brow_down_left,
            &br.brow_down_right,
            &br.brow_inner_up,
            &br.brow_outer_up_left,
            &br.brow_outer_up_right,
        ];
        let rest = chans.map(level);
        let noise = chans.map(noise);
        let coupling = {
            let c = &b.coupling;
            let k = |x: f64| finite_or(x, 0.0).clamp(-1.0, 1.0);
            BlinkCoupling {
                brow_inner_up: k(c.brow_inner_up),
                brow_outer_up: k(c.brow_outer_up),
                brow_down: k(c.brow_down),
                eye_squint: k(c.eye_squint),
                eye_wide: k(c.eye_wide),
                gaze_vertical: k(c.gaze_vertical),
                brow_signal: k(c.brow_signal),
            }
        };
        let interval = if b.interval_s.count >= 2 {
            let (mu, sigma) = lognormal_of(&b.interval_s, 3.0, 0.7, 1.5);
            // Mean interval: geometric midpoint of the fitted mean and
            // 60 / rate (see `UpperFaceGenerator`'s docs).
            let fit_mean = (mu + 0.5 * sigma * sigma).exp();
            let rate = finite_or(b.rate_per_min, 0.0);
            if rate > 0.5 && rate < 120.0 {
                let target = (fit_mean * 60.0 / rate).sqrt();
                (target.ln() - 0.5 * sigma * sigma, sigma)
            } else {
                (mu, sigma)
            }
        } else {
            lognormal_of(&fb.blink.interval_s, 3.0, 0.7, 1.5)
        };
        let per_min = |x: f64| finite_or(x, 0.0).clamp(0.0, 120.0) / 60.0;
        let sp = &br.speech;
        let (q, mut a) = if br.raise_count > 0 {
            (
                per_min(sp.rate_quiet_per_min),
                per_min(sp.rate_active_per_min),
            )
        } else {
            (
                per_min(fb.brows.speech.rate_quiet_per_min),
                per_min(fb.brows.speech.rate_active_per_min),
            )
        };
        if a < q * MIN_SPEECH_BROW_GAIN {
            a = q * MIN_SPEECH_BROW_GAIN;
        }
        let amp_all = finite_or(br.raise_amplitude.mean, 0.2).clamp(0.0, 1.0);
        let amp_or = |x: f64| {
            let x = finite_or(x, 0.0);
            if x > 0.0 { x.min(1.0) } else { amp_all }
        };
        let (amp_q, amp_a) = (amp_or(sp.amplitude_quiet), amp_or(sp.amplitude_active));
        let yaw = g.yaw_rad_per_unit.unwrap_or(-0.6);
        Self {
            blink_interval: interval,
            blink_min_interval: 0.3,
            blink_close: lognormal_of(&b.closing_s, 0.07, 0.5, 0.8),
            blink_hold: lognormal_of(&b.hold_s, 0.04, 0.5, 0.8),
            blink_open: lognormal_of(&b.opening_s, 0.11, 0.5, 0.8),
            blink_peak: lognormal_of(&b.peak, 0.75, 0.3, 0.5),
            blink_lag_std: finite_or(b.synchrony.onset_lag_std_s, 0.0).clamp(0.0, 0.03),
            blink_peak_diff: (
                finite_or(b.synchrony.peak_diff_mean, 0.0).clamp(-0.05, 0.05),
                finite_or(b.synchrony.peak_diff_std, 0.0).clamp(0.0, 0.08),
            ),
            coupling,
            fixation: if g.fixation_s.count >= 2 {
                lognormal_of(&g.fixation_s, 0.6, 1.2, 2.0)
            } else {
                lognormal_of(&fb.gaze.fixation_s, 0.6, 1.2, 2.0)
            },
            saccade_amp: lognormal_of(&g.amplitude, 0.15, 0.8, 1.2),
            saccade_amp_range: (
                finite_or(st.settings.saccade_min_amplitude, 0.05).clamp(0.01, 0.2),
                0.9,
            ),
            saccade_dir: (
                finite_or(g.horizontal_rms, 0.2).clamp(0.01, 1.0),
                finite_or(g.vertical_rms, 0.1).clamp(0.01, 1.0),
            ),
            gaze_std: (
                GAZE_SPREAD_SCALE * finite_or(g.h_std, 0.2).clamp(0.02, 0.5),
                GAZE_SPREAD_SCALE * finite_or(g.v_std, 0.15).clamp(0.02, 0.5),
            ),
            vergence: finite_or(g.mean_vergence, 0.0).clamp(-0.2, 0.2),
            // `jitter` is the per-axis RMS frame difference: var(Δ) = 2σ²(1 − a).
            jitter_sigma: (ou_sigma(g.jitter, JITTER_TAU_S) / std::f64::consts::SQRT_2).min(0.05),
            deg_per_unit: finite_or(yaw.abs(), 0.6).clamp(0.1, 2.0).to_degrees(),
            brow_rate_per_s: (q, a),
            brow_amp_mean: (amp_q, amp_a),
            brow_amp_sigma: finite_or(br.raise_amplitude.log_sigma, 0.6).clamp(0.0, 0.9),
            brow_shape: {
                let med = |x: &Summary, fb: f64| {
                    if x.count > 0 && x.median.is_finite() && x.median > 0.0 {
                        x.median.min(5.0)
                    } else {
                        fb
                    }
                };
                let fwhm = med(&br.raise_fwhm_s, 0.7);
                let r = med(&br.raise_rise_s, 0.4) / RAMP_10_100;
                let f = med(&br.raise_fall_s, 0.5) / RAMP_10_100;
                // FWHM of the pulse is hold + (rise + fall) / 2.
                let half = 0.5 * (r + f);
                if half <= fwhm {
                    [r, fwhm - half, f]
                } else {
                    [r * fwhm / half, 0.0, f * fwhm / half]
                }
            },
            brow_fwhm: lognormal_of(&br.raise_fwhm_s, 0.7, 0.6, 0.8),
            brow_k: (
                finite_or(br.inner_per_raise, 1.0).clamp(0.0, 2.0),
                finite_or(br.outer_per_raise, 1.0).clamp(0.0, 2.0),
                finite_or(br.down_per_raise, 0.0).clamp(-1.0, 1.0),
            ),
            rest,
            noise,
        }
    }
}

/// Raised-cosine ease, `u` clamped to `[0, 1]`.
fn ease(u: f64) -> f64 {
    0.5 - 0.5 * (std::f64::consts::PI * u.clamp(0.0, 1.0)).cos()
}

/// Minimum-jerk position profile, `u` clamped to `[0, 1]`.
fn min_jerk(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    u * u * u * (10.0 + u * (-15.0 + 6.0 * u))
}

/// Trapezoid with raised-cosine ramps: rise `r`, hold `h`, fall `f`, at time `tau`.
fn pulse(tau: f64, r: f64, h: f64, f: f64) -> f64 {
    if tau <= 0.0 {
        0.0
    } else if tau < r {
        ease(tau / r)
    } else if tau < r + h {
        1.0
    } else if tau < r + h + f {
        1.0 - ease((tau - r - h) / f)
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
struct GenBlink {
    t0: f64,
    close: f64,
    hold: f64,
    open: f64,
    peak_l: f64,
    peak_r: f64,
    lag_r: f64,
}

impl GenBlink {
    fn end(&self) -> f64 {
        self.t0 + self.lag_r.max(0.0) + self.close + self.hold + self.open
    }
    fn values(&self, t: f64) -> (f64, f64) {
        let tau = t - self.t0;
        (
            self.peak_l * pulse(tau, self.close, self.hold, self.open),
            self.peak_r * pulse(tau - self.lag_r, self.close, self.hold, self.open),
        )
    }
}

#[derive(Debug, Clone)]
struct GenSaccade {
    t0: f64,
    dur: f64,
    from: [f64; 2],
    to: [f64; 2],
}

#[derive(Debug, Clone)]
struct GenRaise {
    t0: f64,
    rise: f64,
    hold: f64,
    fall: f64,
    amp: f64,
    /// Left/right outer-brow factors.
    lr: [f64; 2],
}

impl GenRaise {
    fn end(&self) -> f64 {
        self.t0 + self.rise + self.hold + self.fall
    }
}

/// Speech activity in `[0, 1]` for [`UpperFaceGenerator::step`] from a
/// frame's audio level in dBFS: −60 dBFS → 0, 0 dBFS → 1 (linear between;
/// NaN → 0). One definition for the plugin and `bake`.
pub fn speech_activity_from_db(db: f32) -> f32 {
    if db.is_nan() {
        return 0.0;
    }
    ((db + 60.0) / 60.0).clamp(0.0, 1.0)
}

/// Lays the generated upper face over a model frame as the plugin shows
/// it: gaze (`eyeLook*`) comes from the layer alone (it cannot be predicted
/// from audio); blinks, squint, widening and brows take the larger of the
/// model (which carries the emotion) and the layer.
pub fn overlay_upper_face(out: &mut ArkitWeights, layer: &ArkitWeights) {
    for ch in GENERATED_CHANNELS {
        let k = ch.index();
        let v = if ch.name().starts_with("eyeLook") {
            layer[k]
        } else {
            out[k].max(layer[k])
        };
        out[k] = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }
}

/// Seeded, streaming generator of a living upper face: blinks, saccades
/// and fixations, brow raises and baseline noise, with the statistics of an
/// [`UpperFaceStats`].
///
/// * **Blinks**: onset-to-onset intervals drawn from a log-normal with the
///   measured `sigma` (at least 0.3 s apart, never overlapping). Its mean is
///   the geometric midpoint of the fitted mean interval and
///   `60 / rate_per_min`: in the captures these disagree (deliberate eye
///   closures in the range-of-motion takes break interval chains, which
///   biases the measured intervals short, while their time still counts,
///   which biases the rate low), so the generator re-measures within about
///   ±10 % of both. Closing, hold,
///   opening and peak drawn per blink from their measured log-normals
///   (10–90 % times converted to raised-cosine ramps); both eyes, with the
///   measured left/right peak difference and a small onset lag. While the
///   lids close, brows, squint, wide and vertical gaze move by the measured
///   [`BlinkCoupling`] (as ARKit tracking does).
/// * **Gaze**: fixations with measured log-normal durations (shortened by
///   12 % to undo the saccades the detector cannot see during blinks), then a saccade
///   with measured log-normal amplitude, a direction drawn with the
///   measured horizontal/vertical spread and accepted by a Metropolis step
///   so gaze stays distributed like the captures (centred on the neutral
///   gaze, spread [`GazeStats::h_std`] / [`GazeStats::v_std`]), a
///   minimum-jerk profile and main-sequence duration
///   (`21 ms + 2.2 ms/°`, Baloh et al. 1975 / Carpenter 1988) since 30 fps
///   captures cannot resolve saccade duration. Fixational jitter is an
///   Ornstein–Uhlenbeck process matched to [`GazeStats::jitter`]. The
///   `eyeLook*` channels are written consistently
///   ([`gaze_to_weights`]), with the measured mean vergence.
/// * **Brows**: raises arrive as a Poisson process whose rate interpolates
///   linearly between [`BrowSpeechStats::rate_quiet_per_min`] (at
///   `speech_level` 0) and [`BrowSpeechStats::rate_active_per_min`] (at 1);
///   if the measured active rate is not higher, it is raised to
///   [`MIN_SPEECH_BROW_GAIN`] × the quiet rate (speech raises brows; the
///   capture proxy is weak evidence, see [`BrowSpeechStats`]). Amplitudes
///   are log-normal with a mean interpolated the same way between the
///   quiet and active means; rise, hold and fall follow the measured
///   timing. `browInnerUp`, `browOuterUp*` and `browDown*` move by the
///   measured per-raise ratios.
/// * **Baseline**: every owned channel rests at its measured median plus an
///   Ornstein–Uhlenbeck noise (time constant 0.5 s) whose frame-to-frame
///   size matches the measured [`ChannelStats::jitter`]; left and right
///   share 70 % of the noise variance.
///
/// All processes run in continuous time (exact Ornstein–Uhlenbeck steps,
/// scheduled event times), so the statistics do not depend on the frame
/// rate or on irregular `dt`. Output is always finite and within `[0, 1]`.
/// The same seed, stats and sequence of `(dt, speech_level)` give the same
/// output.
///
/// ```
/// use bevy_talking_head::upper_face::{UpperFaceGenerator, UpperFaceStats};
///
/// let mut face = UpperFaceGenerator::new(UpperFaceStats::default(), 7);
/// let mut frame = [0.0f32; 52];
/// for _ in 0..60 {
///     face.step(1.0 / 60.0, 0.5, &mut frame);
/// }
/// assert!(frame.iter().all(|v| (0.0..=1.0).contains(v)));
/// ```
#[derive(Debug, Clone)]
pub struct UpperFaceGenerator {
    stats: UpperFaceStats,
    p: GenParams,
    rng: StdRng,
    time: f64,
    next_blink: f64,
    blinks: Vec<GenBlink>,
    next_saccade: f64,
    gaze: [f64; 2],
    saccade: Option<GenSaccade>,
    jitter: [f64; 2],
    brow_hazard: f64,
    raises: Vec<GenRaise>,
    noise: [f64; N_NOISE],
    shared: [f64; N_SHARED],
    neutral_rest: bool,
}

impl UpperFaceGenerator {
    /// A neutral face at rest (what the Bevy plugin and `bake` use): the
    /// capture actors' resting offsets on the brows, squint and widening are
    /// removed (their noise stays), and brow raises happen only while
    /// speaking (rate proportional to speech activity), so on silence only
    /// blinks, gaze and small noise move. Off (the default of
    /// [`UpperFaceGenerator::new`]) the generator reproduces the capture
    /// statistics, resting offsets and silent raises included.
    pub fn with_neutral_rest(mut self, on: bool) -> Self {
        self.neutral_rest = on;
        self
    }

    /// A generator with the given statistics (e.g.
    /// [`UpperFaceStats::default`]) and seed. Unusable values in `stats`
    /// (non-finite, empty samples) are replaced by the
    /// [fallback](UpperFaceStats::fallback) values and all parameters are
    /// clamped to plausible ranges.
    pub fn new(stats: UpperFaceStats, seed: u64) -> Self {
        let p = GenParams::from_stats(&stats);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut noise = [0.0; N_NOISE];
        for v in &mut noise {
            *v = rng.sample::<f64, _>(StandardNormal);
        }
        let mut shared = [0.0; N_SHARED];
        for v in &mut shared {
            *v = rng.sample::<f64, _>(StandardNormal);
        }
        let mut g = Self {
            stats,
            p,
            rng,
            time: 0.0,
            next_blink: 0.0,
            blinks: Vec::new(),
            next_saccade: 0.0,
            gaze: [0.0; 2],
            saccade: None,
            jitter: [0.0; 2],
            brow_hazard: 0.0,
            raises: Vec::new(),
            noise,
            shared,
            neutral_rest: false,
        };
        // Start in a stationary-looking state: the first events come after
        // a uniform fraction of a typical interval.
        let u: f64 = g.rng.random();
        g.next_blink = u * g.blink_interval();
        let u: f64 = g.rng.random();
        g.next_saccade = u * g.fixation();
        g.brow_hazard = g.rng.sample(Exp1);
        let j = g.p.jitter_sigma;
        g.jitter = [
            j * g.rng.sample::<f64, _>(StandardNormal),
            j * g.rng.sample::<f64, _>(StandardNormal),
        ];
        let (sh, sv) = g.p.gaze_std;
        g.gaze = [
            0.5 * sh * g.rng.sample::<f64, _>(StandardNormal),
            0.5 * sv * g.rng.sample::<f64, _>(StandardNormal),
        ];
        g
    }

    /// The statistics this generator was built from.
    pub fn stats(&self) -> &UpperFaceStats {
        &self.stats
    }

    /// Generated time so far (seconds).
    pub fn time_secs(&self) -> f64 {
        self.time
    }

    /// Advances by `dt_secs` and writes the 19 [`GENERATED_CHANNELS`] of
    /// `out` (every other channel is left as it was).
    ///
    /// `speech_level` is the current speech activity in `[0, 1]` (0 =
    /// silent, 1 = fully active speech; clamped, NaN counts as 0). It
    /// raises the brow-raise rate and amplitude. `dt_secs` may be any frame
    /// time (1/30, 1/144, irregular); NaN, infinite or negative `dt_secs`
    /// counts as 0 (the frame is re-rendered without advancing) and steps
    /// above [`MAX_STEP_S`] are shortened to it.
    pub fn step(&mut self, dt_secs: f32, speech_level: f32, out: &mut ArkitWeights) {
        let dt = if dt_secs.is_finite() && dt_secs > 0.0 {
            f64::from(dt_secs.min(MAX_STEP_S))
        } else {
            0.0
        };
        let s = if speech_level.is_finite() {
            f64::from(speech_level).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.advance(dt, s);
        self.render(out);
    }

    /// Convenience: `n_frames` frames at `fps` (each one [`step`](Self::step)
    /// of `1 / fps`), with `speech[i]` as the speech level of frame `i`
    /// (frames past the end of `speech` are silent). Non-generated channels
    /// are 0. A non-finite or non-positive `fps` is treated as 30.
    pub fn generate(&mut self, n_frames: usize, fps: f32, speech: &[f32]) -> Vec<ArkitWeights> {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            30.0
        };
        let dt = 1.0 / fps;
        (0..n_frames)
            .map(|i| {
                let mut w = [0.0f32; BLENDSHAPE_COUNT];
                self.step(dt, speech.get(i).copied().unwrap_or(0.0), &mut w);
                w
            })
            .collect()
    }

    fn normal(&mut self) -> f64 {
        self.rng.sample(StandardNormal)
    }

    fn lognormal(&mut self, (mu, sigma): (f64, f64)) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    fn blink_interval(&mut self) -> f64 {
        let v = self.lognormal(self.p.blink_interval);
        v.clamp(self.p.blink_min_interval, 60.0)
    }

    fn fixation(&mut self) -> f64 {
        (FIXATION_SCALE * self.lognormal(self.p.fixation)).clamp(0.1, 20.0)
    }

    fn advance(&mut self, dt: f64, speech: f64) {
        let t = self.time + dt;
        self.time = t;
        if dt > 0.0 {
            // Baseline noise: exact Ornstein–Uhlenbeck steps (unit variance).
            let a = (-dt / NOISE_TAU_S).exp();
            let b = (1.0 - a * a).sqrt();
            for i in 0..N_NOISE {
                let n = self.normal();
                self.noise[i] = a * self.noise[i] + b * n;
            }
            for i in 0..N_SHARED {
                let n = self.normal();
                self.shared[i] = a * self.shared[i] + b * n;
            }
            let a = (-dt / JITTER_TAU_S).exp();
            let b = (1.0 - a * a).sqrt() * self.p.jitter_sigma;
            for k in 0..2 {
                let n = self.normal();
                self.jitter[k] = a * self.jitter[k] + b * n;
            }
        }

        // Blinks.
        self.blinks.retain(|bl| bl.end() > t);
        let mut guard = 0;
        while self.next_blink <= t && guard < 8 {
            guard += 1;
            let busy_until = self
                .blinks
                .iter()
                .map(GenBlink::end)
                .fold(f64::MIN, f64::max);
            let t0 = self.next_blink.max(busy_until + 0.05);
            if t0 > t {
                self.next_blink = t0;
                break;
            }
            let bl = self.new_blink(t0);
            self.blinks.push(bl);
            let iv = self.blink_interval();
            self.next_blink = t0 + iv;
        }
        if self.next_blink <= t {
            self.next_blink = t + self.blink_interval();
        }

        // Saccades.
        if let Some(sc) = &self.saccade
            && sc.t0 + sc.dur <= t
        {
            self.gaze = sc.to;
            self.saccade = None;
        }
        let mut guard = 0;
        while self.next_saccade <= t && guard < 8 {
            guard += 1;
            if let Some(sc) = self.saccade.take() {
                self.gaze = sc.to;
            }
            let t0 = self.next_saccade;
            let sc = self.new_saccade(t0);
            let end = t0 + sc.dur;
            if end <= t {
                self.gaze = sc.to;
            } else {
                self.saccade = Some(sc);
            }
            let fix = self.fixation();
            self.next_saccade = end + fix;
        }
        if self.next_saccade <= t {
            self.next_saccade = t + self.fixation();
        }

        // Brow raises: Poisson with speech-dependent rate.
        self.raises.retain(|r| r.end() > t);
        let (q, a) = self.p.brow_rate_per_s;
        let rate = if self.neutral_rest {
            a * speech
        } else {
            q + (a - q) * speech
        };
        if rate > 0.0 && dt > 0.0 {
            self.brow_hazard -= rate * dt;
            let mut guard = 0;
            while self.brow_hazard <= 0.0 && guard < 8 {
                guard += 1;
                let t0 = t + self.brow_hazard / rate;
                let r = self.new_raise(t0, speech);
                if self.raises.len() >= 6 {
                    self.raises.remove(0);
                }
                self.raises.push(r);
                let e: f64 = self.rng.sample(Exp1);
                self.brow_hazard += e;
            }
            if self.brow_hazard <= 0.0 {
                self.brow_hazard = self.rng.sample(Exp1);
            }
        }
    }

    fn new_blink(&mut self, t0: f64) -> GenBlink {
        let p = self.p.clone();
        let close =
            (BLINK_TIME_SCALE * self.lognormal(p.blink_close) / RAMP_10_90).clamp(0.03, 0.6);
        let open = (BLINK_TIME_SCALE * self.lognormal(p.blink_open) / RAMP_10_90).clamp(0.04, 0.8);
        let hold_m = BLINK_TIME_SCALE * self.lognormal(p.blink_hold);
        let hold = (hold_m - (1.0 - RAMP_10_100) * (close + open)).clamp(0.0, 0.4);
        let peak = self.lognormal(p.blink_peak).clamp(0.4, 1.0);
        let diff = p.blink_peak_diff.0 + p.blink_peak_diff.1 * self.normal();
        let lag = (p.blink_lag_std * self.normal()).clamp(-0.05, 0.05);
        GenBlink {
            t0,
            close,
            hold,
            open,
            peak_l: (peak - 0.5 * diff).clamp(0.0, 1.0),
            peak_r: (peak + 0.5 * diff).clamp(0.0, 1.0),
            lag_r: lag,
        }
    }

    fn new_saccade(&mut self, t0: f64) -> GenSaccade {
        let p = self.p.clone();
        let from = self.gaze;
        let amp = self
            .lognormal(p.saccade_amp)
            .clamp(p.saccade_amp_range.0, p.saccade_amp_range.1);
        let logp =
            |g: [f64; 2]| -0.5 * ((g[0] / p.gaze_std.0).powi(2) + (g[1] / p.gaze_std.1).powi(2));
        // Direction: draw candidates with the measured horizontal/vertical
        // spread, pick one with probability ∝ the gaze-position density at
        // its target (keeps gaze distributed like the captures).
        let mut cands = [[0.0f64; 2]; SACCADE_CANDIDATES];
        let mut weights = [0.0f64; SACCADE_CANDIDATES];
        for (c, w) in cands.iter_mut().zip(&mut weights) {
            let dx = p.saccade_dir.0 * self.normal();
            let dy = p.saccade_dir.1 * self.normal();
            let norm = dx.hypot(dy).max(1e-9);
            *c = [from[0] + amp * dx / norm, from[1] + amp * dy / norm];
            *w = logp(*c);
        }
        let top = weights.iter().copied().fold(f64::MIN, f64::max);
        let mut total = 0.0;
        for w in &mut weights {
            *w = (*w - top).exp();
            total += *w;
        }
        let mut u: f64 = self.rng.random::<f64>() * total;
        let mut to = cands[SACCADE_CANDIDATES - 1];
        for (c, w) in cands.iter().zip(&weights) {
            if u < *w {
                to = *c;
                break;
            }
            u -= w;
        }
        let to = [to[0].clamp(-0.95, 0.95), to[1].clamp(-0.95, 0.95)];
        let deg = (to[0] - from[0]).hypot(to[1] - from[1]) * p.deg_per_unit;
        GenSaccade {
            t0,
            dur: (0.021 + 0.0022 * deg).clamp(0.02, 0.15),
            from,
            to,
        }
    }

    fn new_raise(&mut self, t0: f64, speech: f64) -> GenRaise {
        let p = self.p.clone();
        let m = p.brow_amp_mean.0 + (p.brow_amp_mean.1 - p.brow_amp_mean.0) * speech;
        let sg = p.brow_amp_sigma;
        let amp = (m * (sg * self.normal() - 0.5 * sg * sg).exp()).clamp(0.02, 0.9);
        // Median shape scaled to a FWHM drawn from the measured log-normal.
        let k = (self.lognormal(p.brow_fwhm) / p.brow_fwhm.0.exp()).clamp(0.2, 5.0);
        let [r, h, f] = p.brow_shape;
        let (rise, hold, fall) = ((r * k).max(0.05), h * k, (f * k).max(0.05));
        let lr = [
            (1.0 + 0.1 * self.normal()).clamp(0.7, 1.3),
            (1.0 + 0.1 * self.normal()).clamp(0.7, 1.3),
        ];
        GenRaise {
            t0,
            rise,
            hold,
            fall,
            amp,
            lr,
        }
    }

    fn render(&self, out: &mut ArkitWeights) {
        use Blendshape as B;
        let t = self.time;
        let p = &self.p;
        let c = &p.coupling;
        let (mut bl, mut br) = (0.0f64, 0.0f64);
        for b in &self.blinks {
            let (l, r) = b.values(t);
            bl = bl.max(l);
            br = br.max(r);
        }
        let blink = 0.5 * (bl + br);
        let (mut raise, mut raise_l, mut raise_r) = (0.0, 0.0, 0.0);
        for r in &self.raises {
            // Overlapping raises do not stack (the muscle saturates).
            let v = r.amp * pulse(t - r.t0, r.rise, r.hold, r.fall);
            raise = f64::max(raise, v);
            raise_l = f64::max(raise_l, v * r.lr[0]);
            raise_r = f64::max(raise_r, v * r.lr[1]);
        }
        let sh = NOISE_SHARED.sqrt();
        let own = (1.0 - NOISE_SHARED).sqrt();
        let nz = |ch: Noise, shared: Option<usize>| {
            let i = ch as usize;
            let n = match shared {
                Some(s) => sh * self.shared[s] + own * self.noise[i],
                None => self.noise[i],
            };
            let blink_lid = matches!(ch, Noise::BlinkL | Noise::BlinkR);
            let rest = if self.neutral_rest && !blink_lid {
                0.0
            } else {
                p.rest[i]
            };
            rest + p.noise[i] * n
        };
        let put = |out: &mut ArkitWeights, b: Blendshape, v: f64| {
            out[ix(b)] = if v.is_finite() {
                v.clamp(0.0, 1.0) as f32
            } else {
                0.0
            };
        };
        put(out, B::EyeBlinkLeft, nz(Noise::BlinkL, Some(0)) + bl);
        put(out, B::EyeBlinkRight, nz(Noise::BlinkR, Some(0)) + br);
        put(
            out,
            B::EyeSquintLeft,
            nz(Noise::SquintL, Some(1)) + c.eye_squint * bl,
        );
        put(
            out,
            B::EyeSquintRight,
            nz(Noise::SquintR, Some(1)) + c.eye_squint * br,
        );
        put(
            out,
            B::EyeWideLeft,
            nz(Noise::WideL, Some(2)) + c.eye_wide * bl,
        );
        put(
            out,
            B::EyeWideRight,
            nz(Noise::WideR, Some(2)) + c.eye_wide * br,
        );
        let (ki, ko, kd) = p.brow_k;
        put(
            out,
            B::BrowDownLeft,
            nz(Noise::DownL, Some(3)) + kd * raise_l + c.brow_down * blink,
        );
        put(
            out,
            B::BrowDownRight,
            nz(Noise::DownR, Some(3)) + kd * raise_r + c.brow_down * blink,
        );
        put(
            out,
            B::BrowInnerUp,
            nz(Noise::Inner, None) + ki * raise + c.brow_inner_up * blink,
        );
        put(
            out,
            B::BrowOuterUpLeft,
            nz(Noise::OuterL, Some(4)) + ko * raise_l + c.brow_outer_up * blink,
        );
        put(
            out,
            B::BrowOuterUpRight,
            nz(Noise::OuterR, Some(4)) + ko * raise_r + c.brow_outer_up * blink,
        );
        // Gaze.
        let base = match &self.saccade {
            Some(sc) if t < sc.t0 + sc.dur => {
                let u = min_jerk((t - sc.t0) / sc.dur);
                [
                    sc.from[0] + (sc.to[0] - sc.from[0]) * u,
                    sc.from[1] + (sc.to[1] - sc.from[1]) * u,
                ]
            }
            Some(sc) => sc.to,
            None => self.gaze,
        };
        let h = base[0] + self.jitter[0];
        let v = base[1] + self.jitter[1] + c.gaze_vertical * blink;
        gaze_to_weights(h as f32, v as f32, p.vergence as f32, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn summary_and_helpers() {
        let s = Summary::of(&[1.0, 2.0, 4.0, f64::NAN]);
        assert_eq!(s.count, 3);
        assert!((s.median - 2.0).abs() < 1e-12);
        assert!((s.log_mu - (8.0f64).ln() / 3.0).abs() < 1e-12);
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(rolling_median(&[0.0, 0.0, 9.0, 0.0, 0.0], 1), vec![0.0; 5]);
        assert_eq!(moving_average(&[0.0, 3.0, 0.0], 1), vec![1.5, 1.0, 1.5]);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(
            hysteresis_runs(&[0.0, 0.2, 0.5, 0.2, 0.0, 0.2, 0.0], 0.4, 0.1),
            vec![(1, 3)]
        );
    }

    /// A synthetic blink train at 30 fps: the detector finds every blink,
    /// times its shape and ignores a long closure.
    #[test]
    fn blink_detector_on_synthetic_frames() {
        let fps = 30.0;
        let n = 30 * 40;
        let mut frames = vec![[0.0f32; BLENDSHAPE_COUNT]; n];
        let blink = |t: f64, t0: f64| 0.9 * pulse(t - t0, 0.1, 0.05, 0.2);
        let onsets: Vec<f64> = (0..10).map(|k| 1.0 + 3.5 * f64::from(k)).collect();
        for (i, w) in frames.iter_mut().enumerate() {
            let t = i as f64 / fps;
            let mut b: f64 = onsets.iter().map(|&t0| blink(t, t0)).fold(0.0, f64::max);
            // A 2-second deliberate closure at 37 s.
            b = b.max(0.95 * pulse(t - 37.0, 0.2, 2.0, 0.2));
            w[ix(Blendshape::EyeBlinkLeft)] = b as f32;
            w[ix(Blendshape::EyeBlinkRight)] = b as f32;
        }
        let track = UpperFaceTrack::uniform("synthetic", &frames, fps).unwrap();
        let s = UpperFaceStats::measure_tracks(&[track], &DetectorSettings::default()).unwrap();
        assert_eq!(s.blink.count, 10);
        assert_eq!(s.blink.long_closures, 1);
        assert!(
            (s.blink.interval_s.mean - 3.5).abs() < 0.02,
            "{}",
            s.blink.interval_s.mean
        );
        assert!(s.blink.interval_s.log_sigma < 0.01);
        // 10–90 % of a 0.1 s raised-cosine ramp is 0.059 s; sampling blurs a little.
        assert!(
            (s.blink.closing_s.median - 0.059).abs() < 0.02,
            "{:?}",
            s.blink.closing_s
        );
        assert!(
            (s.blink.opening_s.median - 0.118).abs() < 0.03,
            "{:?}",
            s.blink.opening_s
        );
        assert!(s.blink.peak.mean > 0.8);
        assert!(s.blink.synchrony.both_eyes_fraction > 0.99);
        assert_eq!(s.gaze.saccade_count, 0);
    }

    /// Gaze steps every second: the saccade detector finds each step.
    #[test]
    fn saccade_detector_on_synthetic_frames() {
        let fps = 60.0;
        let n = 60 * 20;
        let frames: Vec<ArkitWeights> = (0..n)
            .map(|i| {
                let t = i as f64 / fps;
                let k = t.floor() as i64;
                let h = if k % 2 == 0 { 0.2 } else { -0.1 };
                let mut w = [0.0f32; BLENDSHAPE_COUNT];
                gaze_to_weights(h, 0.0, 0.0, &mut w);
                w
            })
            .collect();
        let track = UpperFaceTrack::uniform("steps", &frames, fps).unwrap();
        let s = UpperFaceStats::measure_tracks(&[track], &DetectorSettings::default()).unwrap();
        assert_eq!(s.gaze.saccade_count, 19);
        assert!((s.gaze.amplitude.median - 0.3).abs() < 1e-3);
        assert!((s.gaze.fixation_s.median - 1.0).abs() < 0.05);
        assert!((s.gaze.saccade_rate_per_s - 19.0 / 20.0).abs() < 0.05);
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
