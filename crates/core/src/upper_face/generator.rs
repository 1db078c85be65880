//! The run-time half of the upper face: [`UpperFaceGenerator`], a seeded,
//! frame-rate independent generator of blinks, saccades, fixations and brow
//! raises from [`UpperFaceStats`].

use super::*;

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

/// The generator's blink shape, in [0, 1]: a trapezoid with raised-cosine
/// ramps (rise `r`, hold `h`, fall `f`, seconds) at time `tau` (seconds
/// from onset). Public so the measurement tests can synthesise blinks.
pub fn pulse(tau: f64, r: f64, h: f64, f: f64) -> f64 {
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
/// frame's audio level in dBFS against a fixed floor: −60 dBFS → 0,
/// 0 dBFS → 1 (linear between; NaN → 0). This is what
/// [`SpeechActivity`] gives when the background is quieter than
/// −60 dBFS − [`SpeechActivity::MARGIN_DB`]; prefer [`SpeechActivity`]
/// for live audio, where a microphone's noise floor would otherwise count
/// as speech (a −50 dBFS floor reads as 1/6 speech here).
pub fn speech_activity_from_db(db: f32) -> f32 {
    if db.is_nan() {
        return 0.0;
    }
    ((db + 60.0) / 60.0).clamp(0.0, 1.0)
}

/// Speech activity relative to the background noise floor, one frame
/// level (dBFS) at a time: the input of [`UpperFaceGenerator::step`] in the
/// plugin and `bake`.
///
/// The floor is the minimum frame level over the last
/// [`WINDOW_S`](Self::WINDOW_S) seconds (the minimum-statistics idea of
/// Martin, *Noise power spectral density estimation based on optimal
/// smoothing and minimum statistics*, IEEE TSAP 2001, on the broadband
/// level and without the bias correction, which the margin stands in for).
/// A frame's activity is `(level − max(floor + MARGIN_DB, −60)) / 60`,
/// clamped to `[0, 1]`: on clean speech (floor below −66 dBFS, digital
/// silence included) it equals [`speech_activity_from_db`]; steady noise
/// at any level gives 0, so the rest face stays neutral on a live
/// microphone. NaN levels count as silence (`-inf`).
///
/// Memory is bounded: at most `WINDOW_S × fps` levels are kept.
#[derive(Debug, Clone)]
pub struct SpeechActivity {
    window: usize,
    /// Frames seen since the last reset.
    n: u64,
    /// Sliding-window minimum: (frame number, level), levels increasing.
    pub(super) mins: std::collections::VecDeque<(u64, f32)>,
}

impl SpeechActivity {
    /// Length of the noise-floor window in seconds (longer than the pauses
    /// between words, so a floor is always inside it while someone talks).
    pub const WINDOW_S: f32 = 4.0;
    /// Level above the floor (dB) below which a frame counts as
    /// background: frame-to-frame noise fluctuation.
    pub const MARGIN_DB: f32 = 9.0;
    /// The lowest floor used (dBFS), that of [`speech_activity_from_db`].
    pub const MIN_FLOOR_DB: f32 = -60.0;

    /// A tracker for frame levels at `fps` frames per second (a
    /// non-finite or non-positive `fps` counts as 50, the model's rate).
    pub fn new(fps: f32) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            50.0
        };
        let window = ((Self::WINDOW_S * fps).round() as usize).clamp(1, 100_000);
        Self {
            window,
            n: 0,
            mins: std::collections::VecDeque::with_capacity(window.min(1024)),
        }
    }

    /// Forgets the floor (a new stream).
    pub fn reset(&mut self) {
        self.n = 0;
        self.mins.clear();
    }

    /// The current noise-floor estimate in dBFS (`-inf` before any frame
    /// or on digital silence).
    pub fn floor_db(&self) -> f32 {
        self.mins.front().map_or(f32::NEG_INFINITY, |m| m.1)
    }

    /// Feeds the next frame's level (dBFS) and returns its activity in
    /// `[0, 1]`.
    pub fn update(&mut self, level_db: f32) -> f32 {
        let db = if level_db.is_nan() {
            f32::NEG_INFINITY
        } else {
            level_db
        };
        while self.mins.back().is_some_and(|m| m.1 >= db) {
            self.mins.pop_back();
        }
        self.mins.push_back((self.n, db));
        while self
            .mins
            .front()
            .is_some_and(|m| m.0 + self.window as u64 <= self.n)
        {
            self.mins.pop_front();
        }
        self.n += 1;
        let gate = (self.floor_db() + Self::MARGIN_DB).max(Self::MIN_FLOOR_DB);
        if db.is_finite() {
            ((db - gate) / 60.0).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
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
/// use talking_head_core::upper_face::{UpperFaceGenerator, UpperFaceStats};
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
