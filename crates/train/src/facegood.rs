//! The FACEGOOD-Audio2Face corpus: paired speech and facial animation,
//! retargeted to the 52 ARKit blendshapes.
//!
//! The data (`../shared/data/facegood/`, MIT, see its `LICENSE`) is 6 clips
//! of one Mandarin-speaking female speaker:
//!
//! * `wav/<id>.wav` — 16 kHz mono speech;
//! * `labels/<id>.csv` — the animation at [`FACEGOOD_FPS`] (30 fps): a header
//!   `frame,<channel>,...` naming the 116 channels of FACEGOOD's own rig,
//!   then one row per frame (`frame` index, then one value in `[0, 1]` per
//!   channel). Frame `i` is the face at time `i / 30` s.
//!
//! [`load_clip`] reads one clip and retargets every frame to ARKit with a
//! [`RetargetMap`]; [`default_retarget_map`] is the map shipped in
//! `assets/retarget/facegood_to_arkit.json` (FACEGOOD's own table plus a
//! measured placement of the `mouth_oh_c` / `mouth_oo_c` channels, which the
//! table lacks; the measurements are in the map's `notes`). The map covers
//! only the jaw and mouth; every other ARKit channel (eyes, brows, cheeks,
//! nose, tongue) is 0 in [`FacegoodClip::arkit`] because the animator never
//! keyed it, which means "not labelled", not "neutral face".
//!
//! [`frame_log_rms`] and [`pearson`] are general tools (loudness per
//! animation frame and a NaN-safe correlation) shared with the labeler
//! validation and the evaluation tools.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use talking_head_core::audio::{AudioError, MODEL_SAMPLE_RATE, load_mono_16k};
use talking_head_core::rig::arkit::{ARKIT_BLENDSHAPES, ArkitWeights, BLENDSHAPE_COUNT};
use talking_head_core::rig::retarget::{RetargetError, RetargetMap};

/// Frame rate of the FACEGOOD label CSVs, in frames per second.
pub const FACEGOOD_FPS: f64 = 30.0;

/// Largest accepted difference, in animation frames, between the number of
/// label rows and the audio duration × [`FACEGOOD_FPS`]; a larger gap is
/// [`FacegoodError::FrameMismatch`]. (The shipped clips differ by < 1 frame.)
pub const MAX_FRAME_MISMATCH: f64 = 2.0;

/// Lower bound applied to the RMS (linear amplitude, full scale = 1) before
/// the logarithm in [`frame_log_rms`]: −80 dBFS, about 3 LSB of 16-bit
/// audio, so digital silence maps to `ln(1e-4) ≈ −9.21` instead of −∞.
pub const LOG_RMS_FLOOR: f32 = 1e-4;

/// The JSON of the default FACEGOOD → ARKit map (see [`default_retarget_map`]).
const DEFAULT_MAP_JSON: &str = include_str!("../../../assets/retarget/facegood_to_arkit.json");

/// Errors from listing or loading FACEGOOD clips.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FacegoodError {
    /// A file or directory could not be read (missing, permissions, I/O).
    #[error("cannot read `{}`: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The clip's audio could not be decoded (the error names the file).
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A label CSV is malformed (bad header, wrong field count, a value that
    /// is not a finite number, frames out of sequence, no frames).
    #[error("{}:{line}: {message}", .path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number in the file (1 = the header).
        line: usize,
        /// What is wrong, in words.
        message: String,
    },
    /// The retarget map does not fit the channels of a label CSV (a source
    /// channel missing from the header, a non-ARKit target, a duplicate
    /// target or an invalid weight).
    #[error("{}: retarget map does not fit this file's channels: {source}", .path.display())]
    Retarget {
        /// The CSV whose header the map was compiled against.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: RetargetError,
    },
    /// The label CSV and the audio disagree on the clip length by more than
    /// [`MAX_FRAME_MISMATCH`] frames.
    #[error(
        "clip `{id}`: {} has {label_frames} frames but {} lasts {audio_frames:.2} frames \
         ({audio_samples} samples at 16 kHz, {fps} fps); more than {MAX_FRAME_MISMATCH} frames apart",
        .labels.display(), .wav.display()
    )]
    FrameMismatch {
        /// The clip id.
        id: String,
        /// The label CSV.
        labels: PathBuf,
        /// The audio file.
        wav: PathBuf,
        /// Number of frames (data rows) in the CSV.
        label_frames: usize,
        /// Audio length in animation frames (`samples · fps / 16000`).
        audio_frames: f64,
        /// Audio length in 16 kHz samples.
        audio_samples: usize,
        /// The animation frame rate used, in frames per second.
        fps: f64,
    },
}

/// One FACEGOOD clip: audio, the raw rig animation and its ARKit retarget.
#[derive(Debug, Clone, PartialEq)]
pub struct FacegoodClip {
    /// Clip id: the file stem shared by `wav/<id>.wav` and `labels/<id>.csv`
    /// (e.g. `1114_2_01`).
    pub id: String,
    /// The speech, 16 kHz mono, samples in `[-1, 1]`.
    pub audio_16k: Vec<f32>,
    /// The rig channel names in CSV column order (116 for the shipped data;
    /// the `frame` column excluded).
    pub channels: Vec<String>,
    /// Raw rig values, `[frames][channels.len()]`, one row per 30 fps frame,
    /// as read from the CSV (nominally in `[0, 1]`; finite).
    pub raw: Vec<Vec<f32>>,
    /// The retargeted animation, one [`ArkitWeights`] (canonical ARKit order,
    /// each weight in `[0, 1]`) per 30 fps frame; `arkit.len() == raw.len()`.
    /// Channels the map does not cover are 0.
    pub arkit: Vec<ArkitWeights>,
}

impl FacegoodClip {
    /// Number of animation frames (30 fps).
    pub fn frames(&self) -> usize {
        self.arkit.len()
    }

    /// Index of the rig channel called `name` (exact match), if present.
    pub fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c == name)
    }
}

/// The default FACEGOOD → ARKit retarget map, parsed from
/// `assets/retarget/facegood_to_arkit.json` (embedded at compile time).
///
/// It keeps the jaw and mouth rows of FACEGOOD's own table (`max(a,b)`
/// entries as [`Combine::Max`](talking_head_core::rig::retarget::Combine::Max) rules) and
/// adds `mouth_oh_c` / `mouth_oo_c` to `jawOpen` (sum, weights 0.3 / 0.2),
/// `mouthFunnel` (max, 0.6 / 0.5) and `mouthPucker` (max, oo 1.0); the
/// measurements behind these weights are in the rules' `notes`.
///
/// # Errors
/// [`RetargetError::Json`] if the embedded JSON does not parse. That would
/// be a bug in the shipped asset (a unit test guards against it).
pub fn default_retarget_map() -> Result<RetargetMap, RetargetError> {
    RetargetMap::from_json_str(DEFAULT_MAP_JSON)
}

/// Ids of the clips in a FACEGOOD directory: the file stems present both as
/// `dir/wav/<id>.wav` and as `dir/labels/<id>.csv` (extensions matched
/// ASCII case-insensitively), sorted ascending. Files with non-UTF-8 names
/// are ignored.
///
/// # Errors
/// [`FacegoodError::Io`] if `dir/wav` or `dir/labels` cannot be listed.
pub fn list_clips(dir: &Path) -> Result<Vec<String>, FacegoodError> {
    let wavs = stems_with_extension(&dir.join("wav"), "wav")?;
    let labels: HashSet<String> = stems_with_extension(&dir.join("labels"), "csv")?
        .into_iter()
        .collect();
    let mut ids: Vec<String> = wavs.into_iter().filter(|s| labels.contains(s)).collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn stems_with_extension(dir: &Path, ext: &str) -> Result<Vec<String>, FacegoodError> {
    let io_err = |source| FacegoodError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let matches = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case(ext));
        if !matches || !path.is_file() {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            out.push(stem.to_owned());
        }
    }
    Ok(out)
}

/// Loads clip `id` from a FACEGOOD directory (`dir/wav/<id>.wav`,
/// `dir/labels/<id>.csv`) and retargets it to ARKit with `map`.
///
/// The audio is decoded and conditioned to 16 kHz mono with
/// [`load_mono_16k`]. The map is compiled against the CSV header (sources)
/// and [`ARKIT_BLENDSHAPES`] (targets); channels it does not cover are 0.
///
/// # Errors
/// * [`FacegoodError::Io`] — the CSV cannot be read;
/// * [`FacegoodError::Csv`] — the CSV is malformed (file and line named);
/// * [`FacegoodError::Retarget`] — `map` names a channel the CSV lacks, a
///   non-ARKit target, a target twice, or a non-finite weight;
/// * [`FacegoodError::Audio`] — the WAV cannot be read or decoded;
/// * [`FacegoodError::FrameMismatch`] — the label frame count and the audio
///   length (in frames) differ by more than [`MAX_FRAME_MISMATCH`].
pub fn load_clip(dir: &Path, id: &str, map: &RetargetMap) -> Result<FacegoodClip, FacegoodError> {
    let csv_path = dir.join("labels").join(format!("{id}.csv"));
    let wav_path = dir.join("wav").join(format!("{id}.wav"));

    let text = fs::read_to_string(&csv_path).map_err(|source| FacegoodError::Io {
        path: csv_path.clone(),
        source,
    })?;
    let (channels, raw) = parse_labels(&text, &csv_path)?;
    let arkit =
        retarget_frames(map, &channels, &raw).map_err(|source| FacegoodError::Retarget {
            path: csv_path.clone(),
            source,
        })?;

    let (audio_16k, _report) = load_mono_16k(&wav_path)?;
    let audio_frames = audio_16k.len() as f64 * FACEGOOD_FPS / f64::from(MODEL_SAMPLE_RATE);
    if (raw.len() as f64 - audio_frames).abs() > MAX_FRAME_MISMATCH {
        return Err(FacegoodError::FrameMismatch {
            id: id.to_owned(),
            labels: csv_path,
            wav: wav_path,
            label_frames: raw.len(),
            audio_frames,
            audio_samples: audio_16k.len(),
            fps: FACEGOOD_FPS,
        });
    }

    Ok(FacegoodClip {
        id: id.to_owned(),
        audio_16k,
        channels,
        raw,
        arkit,
    })
}

/// Retargets rig frames to ARKit: compiles `map` against `channels`
/// (sources) and [`ARKIT_BLENDSHAPES`] (targets), then maps every row of
/// `raw` (`[frames][channels.len()]`) to one [`ArkitWeights`]. Channels the
/// map does not cover are 0; covered ones are clamped to `[0, 1]` (NaN → 0).
/// A row shorter than `channels` reads its missing values as 0.
///
/// # Errors
/// Those of [`RetargetMap::compile`]: unknown source or target names, a
/// duplicate target, a non-finite weight.
pub fn retarget_frames<S: AsRef<str>>(
    map: &RetargetMap,
    channels: &[S],
    raw: &[Vec<f32>],
) -> Result<Vec<ArkitWeights>, RetargetError> {
    let compiled = map.compile(channels, &ARKIT_BLENDSHAPES)?;
    Ok(raw
        .iter()
        .map(|row| {
            let mut out = [0.0f32; BLENDSHAPE_COUNT];
            compiled.apply(row, &mut out);
            out
        })
        .collect())
}

/// Parses a FACEGOOD label CSV: header `frame,<name>,...`, then rows of
/// `<frame index>,<value>,...` with consecutive frame indices. Blank lines
/// are skipped. Returns the channel names and the `[frames][channels]` values.
fn parse_labels(text: &str, path: &Path) -> Result<(Vec<String>, Vec<Vec<f32>>), FacegoodError> {
    let err = |line: usize, message: String| FacegoodError::Csv {
        path: path.to_owned(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (header_line, header) = lines.find(|(_, l)| !l.trim().is_empty()).ok_or_else(|| {
        err(
            1,
            "empty file (expected a `frame,<channel>,...` header)".into(),
        )
    })?;
    let header = header.trim_start_matches('\u{feff}');
    let mut names = header.split(',').map(str::trim);
    let first = names.next().unwrap_or_default();
    if !first.eq_ignore_ascii_case("frame") {
        return Err(err(
            header_line,
            format!("first header column is `{first}`, expected `frame`"),
        ));
    }
    let channels: Vec<String> = names.map(str::to_owned).collect();
    if channels.is_empty() {
        return Err(err(
            header_line,
            "header names no channels after `frame`".into(),
        ));
    }
    let mut seen = HashSet::with_capacity(channels.len());
    for (i, c) in channels.iter().enumerate() {
        if c.is_empty() {
            return Err(err(
                header_line,
                format!("header column {} is empty", i + 2),
            ));
        }
        if !seen.insert(c.as_str()) {
            return Err(err(
                header_line,
                format!("channel `{c}` appears twice in the header"),
            ));
        }
    }

    let mut raw: Vec<Vec<f32>> = Vec::new();
    let mut first_frame: Option<i64> = None;
    for (line_no, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split(',');
        let frame_field = fields.next().unwrap_or_default().trim();
        let frame: i64 = frame_field
            .parse::<i64>()
            .ok()
            .or_else(|| {
                // Tolerate "12.0" style indices.
                frame_field
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| {
                err(
                    line_no,
                    format!("frame index `{frame_field}` is not an integer"),
                )
            })?;
        let expected = first_frame.map_or(frame, |f0| f0 + raw.len() as i64);
        if frame != expected {
            return Err(err(
                line_no,
                format!("frame {frame} out of sequence (expected {expected})"),
            ));
        }
        first_frame.get_or_insert(frame);

        let mut row = Vec::with_capacity(channels.len());
        for name in &channels {
            // Channels drive the loop so that an extra field is not consumed.
            let Some(field) = fields.next() else { break };
            let field = field.trim();
            let v: f32 = field.parse().map_err(|_| {
                err(
                    line_no,
                    format!("channel `{name}`: `{field}` is not a number"),
                )
            })?;
            if !v.is_finite() {
                return Err(err(
                    line_no,
                    format!("channel `{name}`: value {v} is not finite"),
                ));
            }
            row.push(v);
        }
        let extra = fields.count();
        if row.len() != channels.len() || extra != 0 {
            return Err(err(
                line_no,
                format!(
                    "expected {} fields (frame + {} channels), found {}",
                    channels.len() + 1,
                    channels.len(),
                    row.len() + 1 + extra
                ),
            ));
        }
        raw.push(row);
    }
    if raw.is_empty() {
        let last = text.lines().count().max(1);
        return Err(err(last, "no frames after the header".into()));
    }
    Ok((channels, raw))
}

/// Loudness per animation frame: the natural log of the RMS of the 16 kHz
/// audio in a window of `1/fps` seconds centred on each frame time.
///
/// Frame `i` is at time `i / fps` s, i.e. sample `c = round(i · 16000 / fps)`;
/// its window is the `w = max(1, round(16000 / fps))` samples
/// `[c − ⌊w/2⌋, c − ⌊w/2⌋ + w)` (533 samples at 30 fps). Samples outside the
/// audio count as 0 (the mean still divides by `w`), non-finite samples as 0.
/// The result is `ln(max(rms, LOG_RMS_FLOOR))`, so values lie in
/// `[ln 1e-4 ≈ −9.21, 0]` for audio in `[-1, 1]` (natural-log units: 1 unit
/// ≈ 8.7 dB).
///
/// Returns exactly `n_frames` values (frames past the end of the audio get
/// the floor). If `fps` is not finite and positive every frame gets the floor.
pub fn frame_log_rms(audio_16k: &[f32], fps: f64, n_frames: usize) -> Vec<f32> {
    let floor = LOG_RMS_FLOOR.ln();
    if !(fps.is_finite() && fps > 0.0) {
        return vec![floor; n_frames];
    }
    let sr = f64::from(MODEL_SAMPLE_RATE);
    let win = (sr / fps).round().max(1.0);
    let w = win as i64;
    let len = audio_16k.len() as i64;
    (0..n_frames)
        .map(|i| {
            let centre = (i as f64 * sr / fps).round() as i64;
            let start = centre - w / 2;
            let lo = start.clamp(0, len) as usize;
            let hi = (start + w).clamp(0, len) as usize;
            let energy: f64 = audio_16k[lo..hi]
                .iter()
                .filter(|x| x.is_finite())
                .map(|&x| f64::from(x) * f64::from(x))
                .sum();
            let rms = (energy / win).sqrt() as f32;
            rms.max(LOG_RMS_FLOOR).ln()
        })
        .collect()
}

pub use talking_head_core::stats::pearson_f32 as pearson;

#[cfg(test)]
mod tests {
    use super::*;
    use talking_head_core::rig::arkit::{Blendshape, FaceRegion};
    use talking_head_core::rig::retarget::Combine;

    /// Every source channel the default map names, in first-use order.
    fn map_sources(map: &RetargetMap) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &map.rules {
            for s in &r.sources {
                if !out.contains(&s.source) {
                    out.push(s.source.clone());
                }
            }
        }
        out
    }

    fn frame_with(channels: &[String], values: &[(&str, f32)]) -> Vec<f32> {
        let mut row = vec![0.0; channels.len()];
        for &(name, v) in values {
            let i = channels.iter().position(|c| c == name).expect(name);
            row[i] = v;
        }
        row
    }

    fn w(out: &ArkitWeights, b: Blendshape) -> f32 {
        out[b.index()]
    }

    #[test]
    fn default_map_parses_and_covers_only_jaw_and_mouth() {
        let map = default_retarget_map().expect("shipped map parses");
        let sources = map_sources(&map);
        let compiled = map.compile(&sources, &ARKIT_BLENDSHAPES).expect("compiles");
        let covered = compiled.covered_targets();
        assert_eq!(covered.len(), 27, "the 27 rows FACEGOOD marks valid");
        for &t in covered {
            let region = Blendshape::ALL[t].region();
            assert!(
                matches!(region, FaceRegion::Jaw | FaceRegion::Mouth),
                "{} is covered",
                ARKIT_BLENDSHAPES[t]
            );
        }
        let jaw = map.rules.iter().find(|r| r.target == "jawOpen").unwrap();
        assert_eq!(jaw.combine, Combine::Sum);
        for t in [
            "mouthFunnel",
            "mouthPucker",
            "mouthRollLower",
            "mouthFrownLeft",
        ] {
            let r = map.rules.iter().find(|r| r.target == t).unwrap();
            assert_eq!(r.combine, Combine::Max, "{t}");
        }
        assert!(map.notes.as_deref().unwrap_or("").contains("Invalid"));
    }

    #[test]
    fn synthetic_frames_follow_map_semantics() {
        let map = default_retarget_map().unwrap();
        let mut channels = map_sources(&map);
        channels.push("eye_blink2_l".into()); // present in the rig, unmapped
        let raw = vec![
            // 0: neutral.
            frame_with(&channels, &[]),
            // 1: vendor-only channels.
            frame_with(
                &channels,
                &[
                    ("mouth_stretch_c", 0.4),
                    ("mouth_funnel_dl", 0.2),
                    ("mouth_funnel_ur", 0.5),
                    ("mouth_pucker_l", 0.3),
                    ("mouth_pucker_r", 0.1),
                    ("mouth_press_l", 0.6),
                    ("eye_blink2_l", 1.0),
                ],
            ),
            // 2: "oh" on top of a little stretch, no funnel keyed.
            frame_with(&channels, &[("mouth_stretch_c", 0.2), ("mouth_oh_c", 0.8)]),
            // 3: "oo" with pucker keyed above its own contribution.
            frame_with(
                &channels,
                &[
                    ("mouth_stretch_c", 0.1),
                    ("mouth_oo_c", 0.5),
                    ("mouth_pucker_l", 0.7),
                    ("mouth_pucker_r", 0.7),
                ],
            ),
            // 4: saturation: the jawOpen sum is clamped to 1.
            frame_with(
                &channels,
                &[
                    ("mouth_stretch_c", 0.9),
                    ("mouth_oh_c", 1.0),
                    ("mouth_oo_c", 1.0),
                ],
            ),
        ];
        let out = retarget_frames(&map, &channels, &raw).unwrap();
        assert_eq!(out.len(), raw.len());
        let eps = 1e-6;

        assert!(out[0].iter().all(|&v| v == 0.0));

        let f = &out[1];
        assert!((w(f, Blendshape::JawOpen) - 0.4).abs() < eps);
        assert!(
            (w(f, Blendshape::MouthFunnel) - 0.5).abs() < eps,
            "max of quadrants"
        );
        assert!(
            (w(f, Blendshape::MouthPucker) - 0.3).abs() < eps,
            "max of l/r"
        );
        assert!((w(f, Blendshape::MouthPressLeft) - 0.6).abs() < eps);
        assert_eq!(w(f, Blendshape::MouthPressRight), 0.0);
        assert_eq!(
            w(f, Blendshape::EyeBlinkLeft),
            0.0,
            "Invalid rows are not mapped"
        );

        let f = &out[2];
        assert!((w(f, Blendshape::JawOpen) - (0.2 + 0.3 * 0.8)).abs() < eps);
        assert!((w(f, Blendshape::MouthFunnel) - 0.6 * 0.8).abs() < eps);
        assert_eq!(w(f, Blendshape::MouthPucker), 0.0);

        let f = &out[3];
        assert!((w(f, Blendshape::JawOpen) - (0.1 + 0.2 * 0.5)).abs() < eps);
        assert!((w(f, Blendshape::MouthFunnel) - 0.5 * 0.5).abs() < eps);
        assert!(
            (w(f, Blendshape::MouthPucker) - 0.7).abs() < eps,
            "keyed pucker wins the max"
        );

        let f = &out[4];
        assert_eq!(w(f, Blendshape::JawOpen), 1.0);
        assert_eq!(w(f, Blendshape::MouthPucker), 1.0);
        assert!((w(f, Blendshape::MouthFunnel) - 0.6).abs() < eps);
        for frame in &out {
            assert!(frame.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn map_missing_a_source_channel_is_an_error() {
        let map = default_retarget_map().unwrap();
        let channels = vec!["mouth_stretch_c".to_owned()];
        let err = retarget_frames(&map, &channels, &[vec![0.5]]).unwrap_err();
        assert!(matches!(err, RetargetError::UnknownSources { .. }), "{err}");
    }

    #[test]
    fn labels_parse_and_errors_name_the_line() {
        let p = Path::new("x.csv");
        let (ch, raw) =
            parse_labels("frame,a,b\r\n0,0.5,-0.000000\r\n1,1,0.25\r\n\r\n", p).unwrap();
        assert_eq!(ch, ["a", "b"]);
        assert_eq!(raw, vec![vec![0.5, 0.0], vec![1.0, 0.25]]);

        let line_of = |text: &str| match parse_labels(text, p) {
            Err(FacegoodError::Csv { line, message, .. }) => (line, message),
            other => panic!("expected a CSV error, got {other:?}"),
        };
        assert_eq!(line_of("time,a\n0,1\n").0, 1);
        assert_eq!(line_of("frame,a,a\n0,1,1\n").0, 1);
        assert_eq!(line_of("frame\n0\n").0, 1);
        assert_eq!(line_of("").0, 1);
        assert_eq!(line_of("frame,a\n").0, 1);
        let (line, msg) = line_of("frame,a,b\n0,1,2\n1,1\n");
        assert_eq!(line, 3);
        assert!(msg.contains("expected 3 fields"), "{msg}");
        assert_eq!(line_of("frame,a,b\n0,1,2\n1,1,2,3\n").0, 3);
        let (line, msg) = line_of("frame,a,b\n0,1,x\n");
        assert_eq!(line, 2);
        assert!(msg.contains("`b`"), "{msg}");
        assert_eq!(line_of("frame,a\n0,NaN\n").0, 2);
        let (line, msg) = line_of("frame,a\n0,1\n2,1\n");
        assert_eq!(line, 3);
        assert!(msg.contains("out of sequence"), "{msg}");
    }

    #[test]
    fn log_rms_levels_and_centring() {
        let sr = MODEL_SAMPLE_RATE as usize;
        // 1 s of a full-scale-0.5 sine at 440 Hz: RMS 0.5/√2.
        let sine: Vec<f32> = (0..sr)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / sr as f32).sin())
            .collect();
        let l = frame_log_rms(&sine, 30.0, 30);
        assert_eq!(l.len(), 30);
        let expect = (0.5f32 / 2f32.sqrt()).ln();
        for &v in &l[1..29] {
            assert!((v - expect).abs() < 0.01, "{v} vs {expect}");
        }
        // Frame 0's window is half outside the audio: half the energy.
        assert!((l[0] - (expect - 0.5 * 2f32.ln())).abs() < 0.02, "{}", l[0]);

        // Silence and frames past the end hit the floor.
        let silent = frame_log_rms(&vec![0.0; sr], 30.0, 40);
        assert_eq!(silent.len(), 40);
        assert!(silent.iter().all(|&v| v == LOG_RMS_FLOOR.ln()));

        // A burst centred at frame 10 (t = 1/3 s) is loudest at frame 10.
        let mut burst = vec![0.0f32; sr];
        let c = sr / 3;
        for s in &mut burst[c - 100..c + 100] {
            *s = 0.8;
        }
        let l = frame_log_rms(&burst, 30.0, 30);
        let argmax = (0..30).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
        assert_eq!(argmax, 10);
        assert_eq!(l[8], LOG_RMS_FLOOR.ln());

        // Degenerate inputs do not panic.
        assert_eq!(frame_log_rms(&[], 30.0, 3).len(), 3);
        assert_eq!(frame_log_rms(&sine, 0.0, 2), vec![LOG_RMS_FLOOR.ln(); 2]);
        assert_eq!(frame_log_rms(&sine, f64::NAN, 1).len(), 1);
        assert!(frame_log_rms(&[f32::NAN; 600], 30.0, 1)[0].is_finite());
    }

    #[test]
    fn pearson_is_nan_safe() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-6);
        assert!((pearson(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(pearson(&a, &[5.0; 4]), 0.0);
        assert_eq!(pearson(&[], &[]), 0.0);
        assert_eq!(pearson(&[1.0], &[2.0]), 0.0);
        // Non-finite pairs are skipped; lengths may differ.
        let r = pearson(&[1.0, f32::NAN, 2.0, 3.0, 9.0], &[1.0, 5.0, 2.0, 3.0]);
        assert!((r - 1.0).abs() < 1e-6, "{r}");
        assert_eq!(pearson(&[f32::INFINITY, 1.0], &[1.0, 2.0]), 0.0);
        // Large offsets do not destroy precision.
        let big: Vec<f32> = (0..1000).map(|i| 1e4 + (i % 7) as f32).collect();
        let small: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        assert!((pearson(&big, &small) - 1.0).abs() < 1e-5);
    }

    fn write_wav(path: &Path, samples: usize) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: MODEL_SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wr = hound::WavWriter::create(path, spec).unwrap();
        for n in 0..samples {
            let v = (0.3 * (n as f32 * 0.05).sin() * 32767.0) as i16;
            wr.write_sample(v).unwrap();
        }
        wr.finalize().unwrap();
    }

    fn write_labels(path: &Path, channels: &[String], frames: usize) {
        let mut text = format!("frame,{}\n", channels.join(","));
        for f in 0..frames {
            text.push_str(&f.to_string());
            for (i, _) in channels.iter().enumerate() {
                let v = if i == 0 { (f % 10) as f32 / 10.0 } else { 0.0 };
                text.push_str(&format!(",{v:.6}"));
            }
            text.push('\n');
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn list_and_load_synthetic_clips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("wav")).unwrap();
        fs::create_dir_all(root.join("labels")).unwrap();
        let map = default_retarget_map().unwrap();
        let mut channels = map_sources(&map);
        // Put jawOpen's vendor source first so the test frames move it.
        channels.retain(|c| c != "mouth_stretch_c");
        channels.insert(0, "mouth_stretch_c".into());

        // 1 s of audio = 30 frames.
        write_wav(&root.join("wav/b_ok.wav"), 16_000);
        write_labels(&root.join("labels/b_ok.csv"), &channels, 30);
        write_wav(&root.join("wav/a_short.wav"), 16_000);
        write_labels(&root.join("labels/a_short.csv"), &channels, 34);
        write_wav(&root.join("wav/c_nolabels.wav"), 16_000);
        write_labels(&root.join("labels/d_noaudio.csv"), &channels, 30);
        fs::write(root.join("labels/readme.txt"), "x").unwrap();

        assert_eq!(list_clips(root).unwrap(), ["a_short", "b_ok"]);

        let clip = load_clip(root, "b_ok", &map).unwrap();
        assert_eq!(clip.id, "b_ok");
        assert_eq!(clip.frames(), 30);
        assert_eq!(clip.raw.len(), 30);
        assert_eq!(clip.channels, channels);
        assert_eq!(clip.audio_16k.len(), 16_000);
        assert_eq!(clip.channel_index("mouth_stretch_c"), Some(0));
        for (f, a) in clip.arkit.iter().enumerate() {
            let expect = (f % 10) as f32 / 10.0;
            assert!((a[Blendshape::JawOpen.index()] - expect).abs() < 1e-6);
        }

        // 34 label frames vs 30 frames of audio.
        match load_clip(root, "a_short", &map) {
            Err(e @ FacegoodError::FrameMismatch { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("a_short.csv") && msg.contains("34 frames"),
                    "{msg}"
                );
            }
            other => panic!("expected FrameMismatch, got {other:?}"),
        }
        // Missing files are named.
        match load_clip(root, "d_noaudio", &map) {
            Err(e @ FacegoodError::Audio(_)) => assert!(e.to_string().contains("d_noaudio.wav")),
            other => panic!("expected an audio error, got {other:?}"),
        }
        match load_clip(root, "c_nolabels", &map) {
            Err(e @ FacegoodError::Io { .. }) => assert!(e.to_string().contains("c_nolabels.csv")),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        // A map naming a channel the CSV lacks.
        let mut bad = map.clone();
        bad.rules[0].sources[0].source = "no_such_channel".into();
        match load_clip(root, "b_ok", &bad) {
            Err(e @ FacegoodError::Retarget { .. }) => {
                assert!(e.to_string().contains("no_such_channel"), "{e}");
            }
            other => panic!("expected a retarget error, got {other:?}"),
        }
        assert!(matches!(
            list_clips(&root.join("nope")),
            Err(FacegoodError::Io { .. })
        ));
    }
}
