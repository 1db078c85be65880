//! Pooling detected events and levels into [`UpperFaceStats`].

use super::detect::*;
use super::*;
use talking_head_core::upper_face::{
    BlinkCoupling, BlinkStats, BlinkSynchrony, BrowSpeechStats, BrowStats, ChannelStats, GazeStats,
    LidStats, Summary, TakeStats, gaze_from_weights,
};

#[derive(Default)]
pub(super) struct ChannelAcc {
    pub(super) all: Vec<f64>,
    pub(super) dev: Vec<f64>,
    pub(super) diffs: Vec<f64>,
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

pub(super) struct TakeWork {
    pub(super) name: String,
    pub(super) fps: f64,
    pub(super) untracked: usize,
    pub(super) segs: Vec<Segment>,
    pub(super) sigs: Vec<Signals>,
    pub(super) blinks: Vec<Vec<BlinkEvent>>,
    pub(super) masks: Vec<Vec<bool>>,
}

pub(super) fn measure_impl(
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
