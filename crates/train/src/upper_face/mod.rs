//! Measuring upper-face statistics (blinks, gaze, brows, lids) from real
//! iPhone Live Link Face captures: the offline half of
//! [`talking_head_core::upper_face`], used by the tests and to regenerate
//! `assets/upper_face_stats.json`. The detectors and their settings are
//! described in the core module's docs ("How measuring works").

use std::path::{Path, PathBuf};

use talking_head_core::rig::{
    ArkitWeights, BLENDSHAPE_COUNT, Blendshape, FaceRegion, LiveLinkFaceTake,
};
use talking_head_core::upper_face::{
    DetectorSettings, UpperFaceError, UpperFaceStats, gaze_from_weights,
};

mod detect;
mod measure;

use measure::measure_impl;

const fn ix(b: Blendshape) -> usize {
    b as usize
}

/// Measuring [`UpperFaceStats`] from Live Link Face takes (the offline
/// half of the upper face; the run-time half is
/// [`talking_head_core::upper_face`]). With this trait in scope,
/// `UpperFaceStats::measure_dir(dir)` etc. read as before.
pub trait MeasureUpperFace: Sized {
    /// Measures every `*.csv` Live Link Face take in `dir` (sorted by file
    /// name; the take name is the file stem) with the default
    /// [`DetectorSettings`].
    ///
    /// # Errors
    /// [`UpperFaceError::Io`] if `dir` cannot be listed,
    /// [`UpperFaceError::Read`] if a file is not a valid take,
    /// [`UpperFaceError::NoTakes`] if there is no `.csv` file, and the
    /// errors of [`measure`](Self::measure).
    fn measure_dir(dir: impl AsRef<Path>) -> Result<Self, UpperFaceError>;
    /// Measures named takes with the default [`DetectorSettings`].
    ///
    /// # Errors
    /// As [`measure_with`](Self::measure_with).
    fn measure(takes: &[(String, LiveLinkFaceTake)]) -> Result<Self, UpperFaceError>;
    /// Measures named takes with the given settings. Frame times come from
    /// the timecodes ([`LiveLinkFaceTake::timecode_rate`], falling back on
    /// [`LiveLinkFaceTake::estimate_fps`]); untracked rows become gaps.
    ///
    /// # Errors
    /// [`UpperFaceError::NoTakes`] for an empty list,
    /// [`UpperFaceError::BadTake`] for a take without frames or timing, and
    /// the errors of [`measure_tracks`](Self::measure_tracks).
    fn measure_with(
        takes: &[(String, LiveLinkFaceTake)],
        settings: &DetectorSettings,
    ) -> Result<Self, UpperFaceError>;
    /// Measures prepared tracks; the core of [`measure`](Self::measure).
    ///
    /// # Errors
    /// [`UpperFaceError::NoTakes`] for an empty list,
    /// [`UpperFaceError::BadTake`] for invalid settings, and
    /// [`UpperFaceError::NotEnoughData`] if the analysable time is below
    /// [`DetectorSettings::min_total_s`].
    fn measure_tracks(
        tracks: &[UpperFaceTrack],
        settings: &DetectorSettings,
    ) -> Result<Self, UpperFaceError>;
}

impl MeasureUpperFace for UpperFaceStats {
    /// Measures every `*.csv` Live Link Face take in `dir` (sorted by file
    /// name; the take name is the file stem) with the default
    /// [`DetectorSettings`].
    ///
    /// # Errors
    /// [`UpperFaceError::Io`] if `dir` cannot be listed,
    /// [`UpperFaceError::Read`] if a file is not a valid take,
    /// [`UpperFaceError::NoTakes`] if there is no `.csv` file, and the
    /// errors of [`measure`](Self::measure).
    fn measure_dir(dir: impl AsRef<Path>) -> Result<Self, UpperFaceError> {
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
    fn measure(takes: &[(String, LiveLinkFaceTake)]) -> Result<Self, UpperFaceError> {
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
    fn measure_with(
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
    fn measure_tracks(
        tracks: &[UpperFaceTrack],
        settings: &DetectorSettings,
    ) -> Result<Self, UpperFaceError> {
        if tracks.is_empty() {
            return Err(UpperFaceError::NoTakes);
        }
        check_settings(settings)?;
        measure_impl(tracks, settings)
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
    /// Name reported in [`TakeStats::name`](talking_head_core::upper_face::TakeStats::name).
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

#[cfg(test)]
mod tests {
    use super::detect::*;
    use super::*;
    use talking_head_core::rig::BLENDSHAPE_COUNT;
    use talking_head_core::stats::pearson;
    use talking_head_core::upper_face::{Summary, gaze_to_weights, pulse};

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
}
