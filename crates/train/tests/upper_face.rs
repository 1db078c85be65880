//! Integration tests for `talking_head_core::upper_face`: measuring the real
//! Live Link Face captures, the shipped statistics, and the generator
//! re-measured with the same code.
//!
//! Tests that need the shared captures print a note and pass when
//! `../shared/data/capture/livelinkface` is absent.

use std::path::Path;

use talking_head_core::rig::{ARKIT_BLENDSHAPES, LiveLinkFaceTake};
use talking_head_core::upper_face::{
    GENERATED_CHANNELS, UpperFaceError, UpperFaceGenerator, UpperFaceStats,
};
use talking_head_train::upper_face::{MeasureUpperFace, UpperFaceTrack};

const CAPTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/capture/livelinkface"
);
const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/upper_face_stats.json"
);

fn captures() -> Option<&'static Path> {
    let p = Path::new(CAPTURE_DIR);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("note: skipping real-data test, {CAPTURE_DIR} not found");
        None
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-9)
}

fn print_summary(label: &str, s: &UpperFaceStats) {
    println!("== {label}: {} takes, {:.1} s", s.takes, s.total_s);
    let b = &s.blink;
    println!(
        "  blinks: {} ({:.2}/min), long closures {}, interval mean {:.2} s median {:.2} s \
         (log-normal mu {:.3} sigma {:.3})",
        b.count,
        b.rate_per_min,
        b.long_closures,
        b.interval_s.mean,
        b.interval_s.median,
        b.interval_s.log_mu,
        b.interval_s.log_sigma
    );
    println!(
        "  blink shape: closing {:.3} s, hold {:.3} s, opening {:.3} s, duration mean {:.3} \
         median {:.3} s, peak {:.2}",
        b.closing_s.median,
        b.hold_s.median,
        b.opening_s.median,
        b.duration_s.mean,
        b.duration_s.median,
        b.peak.mean
    );
    println!(
        "  L/R: corr {:.3}, both eyes {:.2}, lag {:.4}±{:.4} s, peak diff {:.3}±{:.3}",
        b.synchrony.lr_correlation,
        b.synchrony.both_eyes_fraction,
        b.synchrony.onset_lag_mean_s,
        b.synchrony.onset_lag_std_s,
        b.synchrony.peak_diff_mean,
        b.synchrony.peak_diff_std
    );
    let g = &s.gaze;
    println!(
        "  saccades: {} ({:.3}/s), amplitude mean {:.3} median {:.3} units{}, fixation mean \
         {:.2} s median {:.2} s, gaze std h {:.3} v {:.3}, jitter {:.4}",
        g.saccade_count,
        g.saccade_rate_per_s,
        g.amplitude.mean,
        g.amplitude.median,
        g.amplitude_deg
            .map(|d| format!(" ({:.1}° mean)", d.mean))
            .unwrap_or_default(),
        g.fixation_s.mean,
        g.fixation_s.median,
        g.h_std,
        g.v_std,
        g.jitter
    );
    let br = &s.brows;
    println!(
        "  brows: innerUp median {:.3}, outerUp L/R median {:.3}/{:.3}, down L/R median \
         {:.3}/{:.3}; raises {} ({:.2}/min), amplitude {:.3}, fwhm {:.2} s",
        br.brow_inner_up.median,
        br.brow_outer_up_left.median,
        br.brow_outer_up_right.median,
        br.brow_down_left.median,
        br.brow_down_right.median,
        br.raise_count,
        br.raise_rate_per_min,
        br.raise_amplitude.mean,
        br.raise_fwhm_s.median
    );
    println!(
        "  speech proxy: active {:.2} of time, brow corr {:?}, raises quiet {:.2}/min active \
         {:.2}/min, amplitude quiet {:.3} active {:.3}",
        br.speech.active_fraction,
        br.speech.correlation,
        br.speech.rate_quiet_per_min,
        br.speech.rate_active_per_min,
        br.speech.amplitude_quiet,
        br.speech.amplitude_active
    );
    println!(
        "  lids: squint median {:.3}/{:.3}, wide median {:.3}/{:.3}",
        s.lids.eye_squint_left.median,
        s.lids.eye_squint_right.median,
        s.lids.eye_wide_left.median,
        s.lids.eye_wide_right.median
    );
    for t in &s.per_take {
        println!(
            "  {:<34} {:6.1} s {:5.1} fps | blinks {:3} {:5.1}/min | saccades {:3} {:.2}/s | \
             brow raises {:2} {:5.1}/min | speech active {:.2}",
            t.name,
            t.duration_s,
            t.capture_fps,
            t.blink_count,
            t.blink_rate_per_min,
            t.saccade_count,
            t.saccade_rate_per_s,
            t.brow_raise_count,
            t.brow_raise_rate_per_min,
            t.speech_active_fraction
        );
    }
}

/// Generated frames measured through the same path as real takes: written
/// into a Live Link Face take (timecodes at `fps`) and `measure`d.
fn remeasure(frames: &[[f32; 52]], fps: f64) -> UpperFaceStats {
    let take = LiveLinkFaceTake::from_weights(frames, fps, 0.0).unwrap();
    UpperFaceStats::measure(&[("generated".to_owned(), take)]).unwrap()
}

/// A speech envelope alternating between phrases and pauses.
fn speech_pattern(n: usize, fps: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / fps;
            if (t % 7.0) < 4.5 { 0.8 } else { 0.0 }
        })
        .collect()
}

#[test]
fn real_captures_measure_plausibly() {
    let Some(dir) = captures() else { return };
    let s = UpperFaceStats::measure_dir(dir).unwrap();
    print_summary("real captures", &s);
    assert_eq!(s.takes, 7);
    assert_eq!(s.per_take.len(), 7);
    assert!(s.total_s > 480.0 && s.total_s < 600.0, "{}", s.total_s);
    let b = &s.blink;
    assert!((5.0..=40.0).contains(&b.rate_per_min), "{}", b.rate_per_min);
    assert!(
        (0.1..=0.5).contains(&b.duration_s.mean),
        "{}",
        b.duration_s.mean
    );
    assert!((0.1..=0.5).contains(&b.duration_s.median));
    assert!(b.interval_s.count > 50);
    assert!((1.0..=10.0).contains(&b.interval_s.mean));
    assert!(b.interval_s.log_sigma > 0.1 && b.interval_s.log_sigma < 1.5);
    assert!(
        b.closing_s.median < b.opening_s.median,
        "lids close faster than they open"
    );
    assert!(b.synchrony.both_eyes_fraction > 0.9);
    assert!(b.synchrony.lr_correlation > 0.8);
    assert!(b.peak.mean > 0.4 && b.peak.mean <= 1.1);
    let g = &s.gaze;
    assert!(
        (0.1..=3.0).contains(&g.saccade_rate_per_s),
        "{}",
        g.saccade_rate_per_s
    );
    assert!(g.amplitude.median > 0.05 && g.amplitude.median < 0.6);
    assert!(g.fixation_s.median > 0.1 && g.fixation_s.median < 5.0);
    // Rotation columns: about 0.6 rad per gaze unit (ARKit eyeLook is linear in eye angle).
    let yaw = g.yaw_rad_per_unit.unwrap();
    assert!((0.4..=0.8).contains(&yaw.abs()), "{yaw}");
    let deg = g.amplitude_deg.unwrap();
    assert!(deg.median > 1.0 && deg.median < 20.0);
    assert!(s.brows.raise_count > 10);
    assert!(s.brows.speech.energy_ref > 0.0);
    for t in &s.per_take {
        assert!(t.duration_s > 4.0, "{}", t.name);
        assert!(t.capture_fps > 25.0 && t.capture_fps < 65.0, "{}", t.name);
    }
    // The JSON round-trips (to float precision).
    let back = UpperFaceStats::from_json_str(&s.to_json().unwrap()).unwrap();
    assert_eq!(back.blink.count, s.blink.count);
    assert_eq!(back.per_take.len(), s.per_take.len());
    assert!(rel(back.gaze.fixation_s.log_mu, s.gaze.fixation_s.log_mu) < 1e-12);
}

#[test]
fn shipped_stats_match_a_fresh_measurement() {
    assert!(
        UpperFaceStats::shipped_json_is_valid(),
        "assets/upper_face_stats.json does not parse; regenerate it with \
         `cargo test --test upper_face -- --ignored regenerate`"
    );
    let shipped = UpperFaceStats::default();
    assert_eq!(shipped.takes, 7);
    let Some(dir) = captures() else { return };
    let fresh = UpperFaceStats::measure_dir(dir).unwrap();
    assert_eq!(shipped.blink.count, fresh.blink.count);
    assert_eq!(shipped.gaze.saccade_count, fresh.gaze.saccade_count);
    assert_eq!(shipped.brows.raise_count, fresh.brows.raise_count);
    assert!(rel(shipped.blink.rate_per_min, fresh.blink.rate_per_min) < 1e-6);
    assert!(
        rel(
            shipped.gaze.saccade_rate_per_s,
            fresh.gaze.saccade_rate_per_s
        ) < 1e-6
    );
    assert_eq!(shipped.settings, fresh.settings);
}

/// Writes `assets/upper_face_stats.json` from the shared captures. Run with
/// `cargo test --test upper_face -- --ignored regenerate`.
#[test]
#[ignore = "writes assets/upper_face_stats.json"]
fn regenerate_shipped_stats() {
    let Some(dir) = captures() else { return };
    let s = UpperFaceStats::measure_dir(dir).unwrap();
    std::fs::write(SHIPPED, s.to_json().unwrap() + "\n").unwrap();
    print_summary("written", &s);
}

#[test]
fn generated_ten_minutes_remeasure_like_the_source() {
    let src = UpperFaceStats::default();
    let fps = 30.0f32;
    let n = (600.0 * fps) as usize;
    let speech = speech_pattern(n, fps);
    print_summary("source", &src);
    for seed in [11, 12, 13] {
        let mut g = UpperFaceGenerator::new(src.clone(), seed);
        let frames = g.generate(n, fps, &speech);
        let m = remeasure(&frames, f64::from(fps));
        if seed == 11 {
            print_summary("generated 10 min @ 30 fps, re-measured", &m);
        }
        let (sb, mb) = (&src.blink, &m.blink);
        println!(
            "seed {seed}: blink rate {:.2} vs {:.2}/min; mean interval {:.2} vs {:.2} s; \
             duration median {:.3} vs {:.3} s; saccades {:.3} vs {:.3}/s; brow raises {:.2} vs \
             {:.2}/min",
            mb.rate_per_min,
            sb.rate_per_min,
            mb.interval_s.mean,
            sb.interval_s.mean,
            mb.duration_s.median,
            sb.duration_s.median,
            m.gaze.saccade_rate_per_s,
            src.gaze.saccade_rate_per_s,
            m.brows.raise_rate_per_min,
            src.brows.raise_rate_per_min
        );
        assert!(rel(mb.rate_per_min, sb.rate_per_min) < 0.25);
        assert!(rel(mb.interval_s.mean, sb.interval_s.mean) < 0.25);
        assert!(rel(m.gaze.saccade_rate_per_s, src.gaze.saccade_rate_per_s) < 0.35);
        assert!(rel(mb.duration_s.median, sb.duration_s.median) < 0.3);
        assert!(rel(m.gaze.amplitude.median, src.gaze.amplitude.median) < 0.35);
        assert!(mb.synchrony.both_eyes_fraction > 0.9);
        assert_eq!(mb.long_closures, 0);
        assert!(m.brows.raise_count > 10);
    }
}

#[test]
fn frame_rate_independent() {
    let src = UpperFaceStats::default();
    let secs = 600.0f32;
    // Mean over three seeds per frame rate (one 10-minute run has ~6 %
    // sampling noise in its blink count).
    let measure_at = |fps: f32| {
        let mut acc = [0.0f64; 4];
        for seed in [5, 6, 7] {
            let n = (secs * fps) as usize;
            let mut g = UpperFaceGenerator::new(src.clone(), seed);
            let frames = g.generate(n, fps, &speech_pattern(n, fps));
            let m = remeasure(&frames, f64::from(fps));
            acc[0] += m.blink.rate_per_min / 3.0;
            acc[1] += m.gaze.saccade_rate_per_s / 3.0;
            acc[2] += m.brows.raise_rate_per_min / 3.0;
            acc[3] += m.blink.interval_s.mean / 3.0;
        }
        acc
    };
    let a = measure_at(30.0);
    let b = measure_at(60.0);
    println!(
        "30 fps: blinks {:.2}/min saccades {:.3}/s brows {:.2}/min interval {:.2} s | 60 fps: \
         blinks {:.2}/min saccades {:.3}/s brows {:.2}/min interval {:.2} s",
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]
    );
    assert!(rel(b[0], a[0]) < 0.15);
    assert!(rel(b[1], a[1]) < 0.2);
    assert!(rel(b[2], a[2]) < 0.3);
    assert!(rel(b[3], a[3]) < 0.15);

    // Irregular and high frame rates: count blink onsets directly.
    let count_blinks = |dts: &mut dyn Iterator<Item = f32>| {
        let mut g = UpperFaceGenerator::new(src.clone(), 9);
        let mut w = [0.0f32; 52];
        let (mut t, mut closed, mut n) = (0.0f32, false, 0);
        for dt in dts {
            g.step(dt, 0.3, &mut w);
            t += dt;
            let b = w[0].max(w[7]);
            if !closed && b > 0.3 {
                n += 1;
                closed = true;
            } else if closed && b < 0.15 {
                closed = false;
            }
            assert!(w.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        }
        f64::from(n) / f64::from(t) * 60.0
    };
    let r144 = count_blinks(&mut std::iter::repeat_n(1.0 / 144.0, 144 * 600));
    let mut k = 0u32;
    let mut irregular = std::iter::from_fn(|| {
        k += 1;
        (k < 40_000).then(|| [1.0 / 50.0, 1.0 / 90.0, 1.0 / 24.0, 1.0 / 144.0][k as usize % 4])
    });
    let r_irr = count_blinks(&mut irregular);
    println!("blink onsets: 144 fps {r144:.2}/min, irregular dt {r_irr:.2}/min");
    assert!(rel(r144, src.blink.rate_per_min) < 0.3, "{r144}");
    assert!(rel(r_irr, src.blink.rate_per_min) < 0.3, "{r_irr}");
}

#[test]
fn deterministic_per_seed() {
    let st = UpperFaceStats::default();
    let speech = speech_pattern(900, 30.0);
    let a = UpperFaceGenerator::new(st.clone(), 42).generate(900, 30.0, &speech);
    let b = UpperFaceGenerator::new(st.clone(), 42).generate(900, 30.0, &speech);
    let c = UpperFaceGenerator::new(st, 43).generate(900, 30.0, &speech);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn writes_only_upper_face_channels() {
    let owned: Vec<usize> = GENERATED_CHANNELS.iter().map(|b| b.index()).collect();
    assert_eq!(owned.len(), 19);
    let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), 3);
    let sentinel = 0.123_f32;
    let mut seen = [false; 52];
    for i in 0..3000 {
        let mut w = [sentinel; 52];
        g.step(1.0 / 30.0, (i % 100) as f32 / 100.0, &mut w);
        for (c, v) in w.iter().enumerate() {
            if owned.contains(&c) {
                assert!((0.0..=1.0).contains(v) && v.is_finite());
                seen[c] |= *v != sentinel;
            } else {
                assert_eq!(*v, sentinel, "{} written", ARKIT_BLENDSHAPES[c]);
            }
        }
    }
    for &c in &owned {
        assert!(seen[c] || c == 0, "{} never written", ARKIT_BLENDSHAPES[c]);
    }
}

#[test]
fn speech_raises_brow_activity() {
    let st = UpperFaceStats::default();
    let fps = 30.0f32;
    let n = (600.0 * fps) as usize;
    let run = |level: f32| {
        let mut g = UpperFaceGenerator::new(st.clone(), 21);
        let frames = g.generate(n, fps, &vec![level; n]);
        let m = remeasure(&frames, f64::from(fps));
        let energy: f64 = frames
            .iter()
            .map(|w| f64::from(w[43]) + 0.5 * f64::from(w[44] + w[45]))
            .sum::<f64>()
            / n as f64;
        (
            m.brows.raise_rate_per_min,
            m.brows.raise_amplitude.mean,
            energy,
        )
    };
    let (r0, a0, e0) = run(0.0);
    let (r1, a1, e1) = run(1.0);
    println!(
        "silent: {r0:.2} raises/min amp {a0:.3} mean brow {e0:.3}; \
         speaking: {r1:.2}/min amp {a1:.3} mean brow {e1:.3}"
    );
    assert!(r1 > r0 * 1.3, "{r1} vs {r0}");
    assert!(e1 > e0);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        UpperFaceStats::measure(&[]),
        Err(UpperFaceError::NoTakes)
    ));
    let empty = LiveLinkFaceTake::default();
    assert!(matches!(
        UpperFaceStats::measure(&[("empty".to_owned(), empty)]),
        Err(UpperFaceError::BadTake { .. })
    ));
    // Two seconds of frames: valid but too little to measure.
    let short = LiveLinkFaceTake::from_weights(&[[0.0; 52]; 60], 30.0, 0.0).unwrap();
    assert!(matches!(
        UpperFaceStats::measure(&[("short".to_owned(), short)]),
        Err(UpperFaceError::NotEnoughData(_))
    ));
    // Constant frames (no events at all) measure without NaN.
    let flat = UpperFaceTrack::uniform("flat", &vec![[0.2; 52]; 900], 30.0).unwrap();
    let s = UpperFaceStats::measure_tracks(&[flat], &Default::default()).unwrap();
    assert_eq!(s.blink.count, 0);
    assert!(s.to_json().is_ok());
    assert!(UpperFaceTrack::uniform("x", &[], f64::NAN).is_err());
    assert!(UpperFaceStats::measure_dir("/nonexistent/dir").is_err());
    assert!(UpperFaceStats::from_json_str("{").is_err());
    // Generator from degenerate stats stays in range.
    let mut g = UpperFaceGenerator::new(s, 1);
    for w in g.generate(600, 30.0, &[f32::NAN, -3.0, 7.0]) {
        assert!(w.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    }
}
