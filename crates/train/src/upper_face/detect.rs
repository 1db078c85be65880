//! Event detectors on resampled tracks: blinks, saccades, brow raises.

use super::*;
pub(super) use talking_head_core::stats::{mean, pearson, quantile, std_dev};

/// Slope of `y ≈ k·x` through the origin; 0 if `x` is all zero.
pub(super) fn slope_through_origin(pairs: &[(f64, f64)]) -> f64 {
    let sxx: f64 = pairs.iter().map(|(x, _)| x * x).sum();
    let sxy: f64 = pairs.iter().map(|(x, y)| x * y).sum();
    if sxx > 1e-12 { sxy / sxx } else { 0.0 }
}

/// Least-squares slope of `y` on `x` (with intercept); `None` if `x` is constant.
pub(super) fn ls_slope(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x), mean(y));
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    (sxx > 1e-9).then(|| sxy / sxx)
}

/// Running median with half-width `half` samples (window clipped at the ends).
pub(super) fn rolling_median(x: &[f64], half: usize) -> Vec<f64> {
    rolling_quantile(x, half, 0.5)
}

/// Running quantile `q` (nearest rank) with half-width `half` samples
/// (window clipped at the ends).
pub(super) fn rolling_quantile(x: &[f64], half: usize, q: f64) -> Vec<f64> {
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
pub(super) fn moving_average(x: &[f64], half: usize) -> Vec<f64> {
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
pub(super) struct Segment {
    pub(super) frames: Vec<ArkitWeights>,
}

/// Splits at gaps and resamples to `rate` Hz by linear interpolation.
pub(super) fn resample(track: &UpperFaceTrack, s: &DetectorSettings) -> (Vec<Segment>, f64) {
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
pub(super) struct BlinkEvent {
    /// Deliberate closure (too long to be a blink).
    pub(super) long: bool,
    /// Onset time (10 % crossing, or first frame above `blink_off`), seconds.
    pub(super) onset: f64,
    /// Shape, when complete: (closing, hold, opening, duration).
    pub(super) shape: Option<[f64; 4]>,
    /// Frame before the 10 % crossing (for coupling), when complete.
    pub(super) pre: Option<usize>,
    pub(super) peak_idx: usize,
    pub(super) peak_abs: f64,
    pub(super) amplitude: f64,
    /// Mask range (inclusive) in frames, before padding.
    pub(super) extent: (usize, usize),
    /// Per eye: (right-minus-left 50 % onset time in seconds,
    /// right-minus-left peak excess), when both onsets are found.
    pub(super) eyes: Option<(f64, f64)>,
    /// Both eyes' excess reached `blink_on`.
    pub(super) both: bool,
}

/// Interpolated time (in frames) where `x` crosses `level` between `a` and `a + 1`.
pub(super) fn cross(x: &[f64], a: usize, level: f64) -> f64 {
    let (xa, xb) = (x[a], x[a + 1]);
    if (xb - xa).abs() < 1e-12 {
        a as f64 + 0.5
    } else {
        a as f64 + ((level - xa) / (xb - xa)).clamp(0.0, 1.0)
    }
}

/// Generic hysteresis event finder: returns `[a, b]` runs where `x ≥ off`
/// that contain at least one sample `≥ on`.
pub(super) fn hysteresis_runs(x: &[f64], on: f64, off: f64) -> Vec<(usize, usize)> {
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

pub(super) fn argmax(x: &[f64], a: usize, b: usize) -> usize {
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
pub(super) fn event_timing(x: &[f64], peak: usize, lo_bound: usize) -> Option<([f64; 4], usize)> {
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
pub(super) fn rise_cross(x: &[f64], peak: usize, lo_bound: usize, level: f64) -> Option<f64> {
    let mut j = peak;
    while j > lo_bound && x[j - 1] >= level {
        j -= 1;
    }
    (j > 0 && x[j - 1] < level).then(|| cross(x, j - 1, level))
}

/// Time (fractional frames) of the first crossing of `level` after `peak`.
pub(super) fn fall_cross(x: &[f64], peak: usize, level: f64) -> Option<f64> {
    let mut m = peak;
    while m + 1 < x.len() && x[m + 1] >= level {
        m += 1;
    }
    (m + 1 < x.len()).then(|| cross(x, m, level))
}

pub(super) fn detect_blinks(
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
pub(super) struct Signals {
    pub(super) x: Vec<f64>,
    pub(super) xl: Vec<f64>,
    pub(super) xr: Vec<f64>,
    pub(super) babs: Vec<f64>,
    pub(super) h: Vec<f64>,
    pub(super) v: Vec<f64>,
    pub(super) verg: Vec<f64>,
    pub(super) inner: Vec<f64>,
    pub(super) outer: Vec<f64>,
    pub(super) down: Vec<f64>,
    pub(super) squint: Vec<f64>,
    pub(super) wide: Vec<f64>,
    pub(super) brow: Vec<f64>,
    pub(super) energy: Vec<f64>,
}

pub(super) fn signals(seg: &Segment, s: &DetectorSettings) -> Signals {
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
pub(super) struct Saccade {
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) dh: f64,
    pub(super) dv: f64,
    pub(super) duration: f64,
}

pub(super) fn detect_saccades(
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
pub(super) struct BrowRaise {
    pub(super) onset_idx: usize,
    pub(super) amplitude: f64,
    pub(super) fwhm: Option<f64>,
    pub(super) rise: Option<f64>,
    pub(super) fall: Option<f64>,
    pub(super) d_inner: f64,
    pub(super) d_outer: f64,
    pub(super) d_down: f64,
}

pub(super) fn detect_brow_raises(
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
