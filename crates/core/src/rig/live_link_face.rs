//! Reader and writer for Epic's Live Link Face CSV export.
//!
//! # Format
//!
//! The iOS app "Live Link Face" (Epic Games) records ARKit face tracking and
//! exports one CSV per take. The header is
//!
//! ```text
//! Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut[,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll]
//! ```
//!
//! with the 52 blendshape names of [`LIVE_LINK_FACE_NAMES`] (PascalCase, in
//! canonical ARKit order) and, optionally, the 9 rotation columns of
//! [`LIVE_LINK_FACE_ROTATION_NAMES`]. Each row is
//!
//! * `Timecode`: `HH:MM:SS:FF.mmm` — hours, minutes, seconds, the frame
//!   number within the second at the *timecode* rate, then a fractional
//!   sub-frame part (fraction of one timecode frame, 3 digits). Note that the
//!   timecode rate need not equal the capture rate: in the reference captures
//!   the timecode always counts 0..=59 (60 fps timecode) while half of the
//!   takes hold one row every second timecode frame (30 fps capture).
//! * `BlendShapeCount`: the number of values that follow — 61 with the
//!   rotation columns, 52 without. The app writes `0` and no values at all
//!   for frames in which no face was tracked; the reader keeps those rows'
//!   timecodes in [`LiveLinkFaceTake::untracked`].
//! * the 52 blendshape weights (nominally `[0, 1]`; ARKit occasionally
//!   reports values slightly above 1 — up to 1.08 in the reference captures),
//!   then the rotations: head yaw/pitch/roll and left/right eye
//!   yaw/pitch/roll, as written by the app (magnitudes consistent with
//!   radians: eye yaw within about ±0.65 in the reference captures; the head
//!   columns are all zeros there, i.e. head rotation was not recorded).
//!
//! Unreal's Live Link Face importer (and the Live Link Face app itself)
//! expects the 61-column layout, so [`LiveLinkFaceTake::write`] writes
//! `BlendShapeCount` 61 with all 9 rotation columns, filling absent rotations
//! with zeros. [`LiveLinkFaceTake::write_with_layout`] can write the 52-column
//! layout instead.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

use super::arkit::{ArkitWeights, BLENDSHAPE_COUNT, LIVE_LINK_FACE_NAMES};

/// The 9 optional rotation columns of a Live Link Face CSV, in the order the
/// app writes them: head yaw, pitch, roll; left eye yaw, pitch, roll; right
/// eye yaw, pitch, roll.
pub const LIVE_LINK_FACE_ROTATION_NAMES: [&str; 9] = [
    "HeadYaw",
    "HeadPitch",
    "HeadRoll",
    "LeftEyeYaw",
    "LeftEyePitch",
    "LeftEyeRoll",
    "RightEyeYaw",
    "RightEyePitch",
    "RightEyeRoll",
];

/// Number of decimals the writer uses for every value (the same as the
/// Live Link Face app's own export).
pub const LIVE_LINK_FACE_DECIMALS: usize = 10;

/// Timecode rates (frames per second) that [`LiveLinkFaceTake::timecode_rate`]
/// snaps to.
const STANDARD_TIMECODE_RATES: [u32; 11] = [24, 25, 30, 48, 50, 60, 72, 96, 100, 120, 240];

/// Error from parsing a [`Timecode`] string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid timecode `{text}`: {reason} (expected HH:MM:SS:FF or HH:MM:SS:FF.fff)")]
pub struct TimecodeParseError {
    /// The text that failed to parse.
    pub text: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// A SMPTE-style timecode as written by Live Link Face: `HH:MM:SS:FF.fff`.
///
/// `frame` counts frames within the second at the timecode rate (which is
/// not stored; pass it to [`Timecode::to_seconds`]). `subframe` is the
/// fraction of one timecode frame in `[0, 1)`, written with 3 decimals.
/// Drop-frame timecode is not modelled (`;` is accepted as the frame
/// separator when parsing but the value is read as non-drop).
///
/// The derived ordering compares hours, minutes, seconds, frame, subframe in
/// that order (chronological within one day).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Timecode {
    /// Hours (normally 0..=23; not wrapped).
    pub hours: u32,
    /// Minutes, 0..=59.
    pub minutes: u32,
    /// Seconds, 0..=59.
    pub seconds: u32,
    /// Frame number within the second, `0..timecode_rate`.
    pub frame: u32,
    /// Fraction of a timecode frame, in `[0, 1)`.
    pub subframe: f32,
}

impl Timecode {
    /// Parses `HH:MM:SS:FF` with an optional `.fff` sub-frame fraction (any
    /// number of digits) — the Live Link Face `Timecode` column. Each field
    /// must be ASCII digits; minutes and seconds must be below 60. `;` is
    /// accepted instead of the last `:` (drop-frame notation).
    ///
    /// # Errors
    /// [`TimecodeParseError`] naming the offending text and the reason.
    pub fn parse(text: &str) -> Result<Self, TimecodeParseError> {
        let err = |reason| TimecodeParseError {
            text: text.to_owned(),
            reason,
        };
        let t = text.trim();
        let sep = t
            .rfind([':', ';'])
            .ok_or_else(|| err("no `:` separators"))?;
        let (hms, frame_part) = (&t[..sep], &t[sep + 1..]);
        let mut it = hms.split(':');
        let (Some(h), Some(m), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(err("expected four `:`-separated fields"));
        };
        let int = |s: &str, what| -> Result<u32, TimecodeParseError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(what));
            }
            s.parse::<u32>().map_err(|_| err(what))
        };
        let hours = int(h, "hours are not a number")?;
        let minutes = int(m, "minutes are not a number")?;
        let seconds = int(s, "seconds are not a number")?;
        if minutes >= 60 {
            return Err(err("minutes must be below 60"));
        }
        if seconds >= 60 {
            return Err(err("seconds must be below 60"));
        }
        let (f, frac) = match frame_part.split_once('.') {
            Some((f, frac)) => (f, Some(frac)),
            None => (frame_part, None),
        };
        let frame = int(f, "frame is not a number")?;
        let subframe = match frac {
            None => 0.0,
            Some(d) => {
                if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("sub-frame fraction is not a number"));
                }
                format!("0.{d}")
                    .parse::<f32>()
                    .map_err(|_| err("sub-frame fraction is not a number"))?
            }
        };
        Ok(Self {
            hours,
            minutes,
            seconds,
            frame,
            subframe,
        })
    }

    /// Whole seconds since midnight (`hours * 3600 + minutes * 60 + seconds`).
    pub fn whole_seconds(&self) -> u64 {
        u64::from(self.hours) * 3600 + u64::from(self.minutes) * 60 + u64::from(self.seconds)
    }

    /// Seconds since midnight, `whole_seconds + (frame + subframe) / fps`,
    /// where `fps` is the *timecode* rate (60 for all reference captures,
    /// see [`LiveLinkFaceTake::timecode_rate`]). If `fps` is not finite and
    /// positive the frame part is ignored.
    pub fn to_seconds(&self, fps: f64) -> f64 {
        let whole = self.whole_seconds() as f64;
        if fps.is_finite() && fps > 0.0 {
            whole + (f64::from(self.frame) + f64::from(self.subframe)) / fps
        } else {
            whole
        }
    }

    /// The timecode of `secs` seconds since midnight at timecode rate `fps`
    /// (frames per second). The frame number is `floor(fraction * fps)` and
    /// the remainder becomes `subframe`; values within 1e-6 of a frame
    /// boundary snap to it, so `from_seconds(k / fps, fps)` is exactly frame
    /// `k`. Hours are not wrapped at 24. Negative or non-finite `secs` give
    /// `00:00:00:00`; non-finite or non-positive `fps` gives frame 0.
    pub fn from_seconds(secs: f64, fps: f64) -> Timecode {
        let secs = if secs.is_finite() && secs > 0.0 {
            secs
        } else {
            0.0
        };
        let snap = |x: f64| {
            let r = x.round();
            if (x - r).abs() < 1e-6 { r } else { x }
        };
        let (whole, frame, subframe) = if !(fps.is_finite() && fps > 0.0) {
            (secs.floor(), 0.0, 0.0)
        } else if fps.fract() == 0.0 {
            // Integer rate: count frames so that rounding cannot produce frame == fps.
            let total = snap(secs * fps);
            let frames = total.floor();
            let whole = (frames / fps).floor();
            (whole, frames - whole * fps, total - frames)
        } else {
            let whole = secs.floor();
            let f = snap((secs - whole) * fps);
            (whole, f.floor(), f - f.floor())
        };
        let whole = whole.min(f64::from(u32::MAX) * 3600.0) as u64;
        Timecode {
            hours: (whole / 3600).min(u64::from(u32::MAX)) as u32,
            minutes: ((whole / 60) % 60) as u32,
            seconds: (whole % 60) as u32,
            frame: frame as u32,
            subframe: (subframe as f32).clamp(0.0, 0.999_999),
        }
    }

    /// Position in timecode frames since midnight at integer timecode rate
    /// `rate` (`whole_seconds * rate + frame`), ignoring the sub-frame part.
    pub fn frame_count(&self, rate: u32) -> u64 {
        self.whole_seconds() * u64::from(rate) + u64::from(self.frame)
    }
}

impl fmt::Display for Timecode {
    /// Writes `HH:MM:SS:FF.fff` (Live Link Face notation; the sub-frame is
    /// rounded to 3 decimals and capped at `.999`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let milli = (f64::from(self.subframe) * 1000.0)
            .round()
            .clamp(0.0, 999.0) as u32;
        write!(
            f,
            "{:02}:{:02}:{:02}:{:02}.{:03}",
            self.hours, self.minutes, self.seconds, self.frame, milli
        )
    }
}

impl FromStr for Timecode {
    type Err = TimecodeParseError;

    /// Same as [`Timecode::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One tracked frame of a Live Link Face take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveLinkFaceFrame {
    /// The row's timecode.
    pub timecode: Timecode,
    /// The 52 ARKit weights in canonical order, exactly as read (not clamped).
    pub blendshapes: ArkitWeights,
    /// Head `[yaw, pitch, roll]` as written by the app (radians), if the take
    /// has the `HeadYaw,HeadPitch,HeadRoll` columns; zeros when the app did
    /// not record head rotation.
    pub head: Option<[f32; 3]>,
    /// Left eye `[yaw, pitch, roll]` in radians, if the take has those columns.
    pub left_eye: Option<[f32; 3]>,
    /// Right eye `[yaw, pitch, roll]` in radians, if the take has those columns.
    pub right_eye: Option<[f32; 3]>,
}

impl LiveLinkFaceFrame {
    /// A frame with the given timecode and weights and no rotations.
    pub fn new(timecode: Timecode, blendshapes: ArkitWeights) -> Self {
        Self {
            timecode,
            blendshapes,
            head: None,
            left_eye: None,
            right_eye: None,
        }
    }
}

/// Which columns [`LiveLinkFaceTake::write_with_layout`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiveLinkFaceLayout {
    /// `BlendShapeCount` 61: the 52 blendshapes plus the 9 rotation columns;
    /// absent rotations are written as zeros. What the app exports and what
    /// Unreal's importer expects (the default).
    #[default]
    WithRotations,
    /// `BlendShapeCount` 52: only the blendshape columns.
    BlendshapesOnly,
}

/// Errors from reading or writing Live Link Face CSV files.
#[derive(Debug, Error)]
pub enum LiveLinkFaceError {
    /// A row or the header is malformed. `line` and `column` are 1-based
    /// (physical line in the file; field number within the line).
    #[error("{}line {line}, column {column} (`{column_name}`): {reason}", path_prefix(.path))]
    Parse {
        /// The file, when read through [`LiveLinkFaceTake::read_file`].
        path: Option<PathBuf>,
        /// 1-based line number.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
        /// Header name of the column (empty when unknown).
        column_name: String,
        /// What was wrong.
        reason: String,
    },
    /// A required column (`Timecode` or one of the 52 blendshapes) is not in
    /// the header.
    #[error("{}missing required column `{name}` in the header", path_prefix(.path))]
    MissingColumn {
        /// The file, when read through [`LiveLinkFaceTake::read_file`].
        path: Option<PathBuf>,
        /// Live Link Face name of the missing column.
        name: String,
    },
    /// Reading or writing failed at the OS level.
    #[error("{}I/O error: {source}", path_prefix(.path))]
    Io {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        source: io::Error,
    },
    /// A value to be written is NaN or infinite (the reader would reject it).
    #[error("cannot write frame {frame}: column `{column}` is {value}")]
    NonFinite {
        /// 0-based index into [`LiveLinkFaceTake::frames`].
        frame: usize,
        /// Live Link Face name of the column.
        column: &'static str,
        /// The offending value.
        value: f32,
    },
    /// [`LiveLinkFaceTake::from_weights`] got an unusable rate or start time.
    #[error(
        "invalid timing: fps = {fps}, start_secs = {start_secs} \
         (fps must be finite and > 0, start_secs finite and >= 0)"
    )]
    InvalidTiming {
        /// The frame rate passed in.
        fps: f64,
        /// The start time passed in.
        start_secs: f64,
    },
}

fn path_prefix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

/// A whole Live Link Face take (one CSV file).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveLinkFaceTake {
    /// The tracked frames in file order.
    pub frames: Vec<LiveLinkFaceFrame>,
    /// Whether the header has all 9 rotation columns (then every frame has
    /// `head`, `left_eye` and `right_eye` set).
    pub has_rotations: bool,
    /// Timecodes of rows with `BlendShapeCount` 0 (no face tracked; the app
    /// writes no values for them), in file order. They are not in `frames`
    /// but are written back by the writer and counted by
    /// [`estimate_fps`](Self::estimate_fps).
    pub untracked: Vec<Timecode>,
}

/// Column indices resolved from a header.
struct Columns {
    timecode: usize,
    count: Option<usize>,
    blendshapes: [usize; BLENDSHAPE_COUNT],
    rotations: [Option<usize>; 9],
    names: Vec<String>,
}

impl LiveLinkFaceTake {
    /// Reads a take from any reader (CSV text as described in the
    /// [module docs](self)). Columns are found by header name, ASCII
    /// case-insensitively, in any order; unknown extra columns are ignored.
    /// Accepts `\n` and `\r\n` line endings, a UTF-8 byte-order mark and
    /// blank lines (e.g. a trailing one). Values are reported raw (not
    /// clamped).
    ///
    /// # Errors
    /// * [`LiveLinkFaceError::MissingColumn`] if `Timecode` or any of the 52
    ///   blendshape columns is absent;
    /// * [`LiveLinkFaceError::Parse`] (with line and column) for an empty
    ///   input, a duplicate header name, a bad timecode or count, a
    ///   non-numeric, NaN or infinite value, a short row or non-UTF-8 text;
    /// * [`LiveLinkFaceError::Io`] if the reader fails.
    pub fn read<R: Read>(reader: R) -> Result<Self, LiveLinkFaceError> {
        Self::read_impl(BufReader::new(reader), None)
    }

    /// Reads a take from a CSV file; see [`read`](Self::read). Every error
    /// names `path`.
    ///
    /// # Errors
    /// As [`read`](Self::read), plus [`LiveLinkFaceError::Io`] if the file
    /// cannot be opened.
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self, LiveLinkFaceError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| LiveLinkFaceError::Io {
            path: Some(path.to_owned()),
            source,
        })?;
        Self::read_impl(BufReader::new(file), Some(path))
    }

    fn read_impl<R: BufRead>(
        mut reader: R,
        path: Option<&Path>,
    ) -> Result<Self, LiveLinkFaceError> {
        let owned_path = || path.map(Path::to_path_buf);
        let parse_err = |line: usize, column: usize, column_name: &str, reason: String| {
            LiveLinkFaceError::Parse {
                path: owned_path(),
                line,
                column,
                column_name: column_name.to_owned(),
                reason,
            }
        };

        let mut buf = Vec::new();
        let mut line_no = 0usize;
        let mut columns: Option<Columns> = None;
        let mut take = LiveLinkFaceTake::default();

        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| LiveLinkFaceError::Io {
                    path: owned_path(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let mut bytes: &[u8] = &buf;
            if line_no == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            let text = std::str::from_utf8(bytes).map_err(|e| {
                let commas = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b',');
                parse_err(
                    line_no,
                    commas.count() + 1,
                    "",
                    format!("not valid UTF-8 (byte offset {})", e.valid_up_to()),
                )
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();

            let Some(cols) = &columns else {
                columns = Some(Self::parse_header(&fields, line_no, path)?);
                if let Some(c) = &columns {
                    take.has_rotations = c.rotations.iter().all(Option::is_some);
                }
                continue;
            };

            let field = |idx: usize| -> Result<&str, LiveLinkFaceError> {
                fields.get(idx).copied().ok_or_else(|| {
                    parse_err(
                        line_no,
                        idx + 1,
                        &cols.names[idx],
                        format!(
                            "row has {} fields but the header has {}",
                            fields.len(),
                            cols.names.len()
                        ),
                    )
                })
            };
            // Extra trailing fields are tolerated only when empty (e.g. a trailing comma).
            if let Some((i, _)) = fields
                .iter()
                .enumerate()
                .skip(cols.names.len())
                .find(|(_, f)| !f.is_empty())
            {
                return Err(parse_err(
                    line_no,
                    i + 1,
                    "",
                    format!(
                        "row has {} fields but the header has only {}",
                        fields.len(),
                        cols.names.len()
                    ),
                ));
            }

            let tc_text = field(cols.timecode)?;
            let timecode = Timecode::parse(tc_text).map_err(|e| {
                parse_err(
                    line_no,
                    cols.timecode + 1,
                    &cols.names[cols.timecode],
                    e.to_string(),
                )
            })?;

            if let Some(ci) = cols.count {
                let t = field(ci)?;
                let count: u32 = t.parse().map_err(|_| {
                    parse_err(
                        line_no,
                        ci + 1,
                        &cols.names[ci],
                        format!("`{t}` is not a non-negative integer"),
                    )
                })?;
                if count == 0 {
                    take.untracked.push(timecode);
                    continue;
                }
            }

            let value = |idx: usize| -> Result<f32, LiveLinkFaceError> {
                let t = field(idx)?;
                let bad = |what: &str| {
                    parse_err(line_no, idx + 1, &cols.names[idx], format!("`{t}` {what}"))
                };
                let v: f32 = t.parse().map_err(|_| bad("is not a number"))?;
                if v.is_nan() {
                    return Err(bad("is NaN"));
                }
                if v.is_infinite() {
                    return Err(bad("is infinite"));
                }
                Ok(v)
            };

            let mut blendshapes = [0.0f32; BLENDSHAPE_COUNT];
            for (w, &idx) in blendshapes.iter_mut().zip(cols.blendshapes.iter()) {
                *w = value(idx)?;
            }
            let mut rot = [None::<[f32; 3]>; 3];
            for (g, slot) in rot.iter_mut().enumerate() {
                let idx = &cols.rotations[g * 3..g * 3 + 3];
                if let [Some(a), Some(b), Some(c)] = *idx {
                    *slot = Some([value(a)?, value(b)?, value(c)?]);
                }
            }
            take.frames.push(LiveLinkFaceFrame {
                timecode,
                blendshapes,
                head: rot[0],
                left_eye: rot[1],
                right_eye: rot[2],
            });
        }

        if columns.is_none() {
            return Err(parse_err(
                line_no.max(1),
                1,
                "",
                "empty input: no header line".to_owned(),
            ));
        }
        Ok(take)
    }

    fn parse_header(
        fields: &[&str],
        line: usize,
        path: Option<&Path>,
    ) -> Result<Columns, LiveLinkFaceError> {
        let names: Vec<String> = fields
            .iter()
            .map(|f| f.trim_matches('"').trim().to_owned())
            .collect();
        let mut lower: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                continue;
            }
            if let Some(prev) = lower.insert(n.to_ascii_lowercase(), i) {
                return Err(LiveLinkFaceError::Parse {
                    path: path.map(Path::to_path_buf),
                    line,
                    column: i + 1,
                    column_name: n.clone(),
                    reason: format!("duplicate column name (also column {})", prev + 1),
                });
            }
        }
        let find = |name: &str| lower.get(&name.to_ascii_lowercase()).copied();
        let missing = |name: &str| LiveLinkFaceError::MissingColumn {
            path: path.map(Path::to_path_buf),
            name: name.to_owned(),
        };
        let timecode = find("Timecode").ok_or_else(|| missing("Timecode"))?;
        let count = find("BlendShapeCount");
        let mut blendshapes = [0usize; BLENDSHAPE_COUNT];
        for (slot, name) in blendshapes.iter_mut().zip(LIVE_LINK_FACE_NAMES) {
            *slot = find(name).ok_or_else(|| missing(name))?;
        }
        let rotations = LIVE_LINK_FACE_ROTATION_NAMES.map(find);
        Ok(Columns {
            timecode,
            count,
            blendshapes,
            rotations,
            names,
        })
    }

    /// Writes the take in the default 61-column layout
    /// ([`LiveLinkFaceLayout::WithRotations`]); see
    /// [`write_with_layout`](Self::write_with_layout).
    ///
    /// # Errors
    /// As [`write_with_layout`](Self::write_with_layout).
    pub fn write<W: Write>(&self, writer: W) -> Result<(), LiveLinkFaceError> {
        self.write_with_layout(writer, LiveLinkFaceLayout::WithRotations)
    }

    /// Writes the take as Live Link Face CSV: header, then one row per frame
    /// (`\n` line endings, values with [`LIVE_LINK_FACE_DECIMALS`] decimals,
    /// timecodes as `HH:MM:SS:FF.fff`). Rows for [`untracked`](Self::untracked)
    /// timecodes are written as `<timecode>,0`, merged into the frames in
    /// timecode order. With [`LiveLinkFaceLayout::WithRotations`] rotations that
    /// a frame lacks are written as `0`.
    ///
    /// All values are checked before anything is written.
    ///
    /// # Errors
    /// [`LiveLinkFaceError::NonFinite`] if any value that would be written is
    /// NaN or infinite; [`LiveLinkFaceError::Io`] if writing fails.
    pub fn write_with_layout<W: Write>(
        &self,
        writer: W,
        layout: LiveLinkFaceLayout,
    ) -> Result<(), LiveLinkFaceError> {
        self.check_finite(layout)?;
        self.write_impl(writer, layout)
            .map_err(|source| LiveLinkFaceError::Io { path: None, source })
    }

    /// Writes the take to a file in the default 61-column layout; see
    /// [`write_with_layout`](Self::write_with_layout).
    ///
    /// # Errors
    /// As [`write_with_layout`](Self::write_with_layout); I/O errors name `path`.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), LiveLinkFaceError> {
        self.write_file_with_layout(path, LiveLinkFaceLayout::WithRotations)
    }

    /// Writes the take to a file in the given layout; see
    /// [`write_with_layout`](Self::write_with_layout).
    ///
    /// # Errors
    /// As [`write_with_layout`](Self::write_with_layout); I/O errors name `path`.
    pub fn write_file_with_layout(
        &self,
        path: impl AsRef<Path>,
        layout: LiveLinkFaceLayout,
    ) -> Result<(), LiveLinkFaceError> {
        let path = path.as_ref();
        self.check_finite(layout)?;
        let file = File::create(path).map_err(|source| LiveLinkFaceError::Io {
            path: Some(path.to_owned()),
            source,
        })?;
        self.write_impl(file, layout)
            .map_err(|source| LiveLinkFaceError::Io {
                path: Some(path.to_owned()),
                source,
            })
    }

    fn check_finite(&self, layout: LiveLinkFaceLayout) -> Result<(), LiveLinkFaceError> {
        for (fi, frame) in self.frames.iter().enumerate() {
            let bad = frame
                .blendshapes
                .iter()
                .zip(LIVE_LINK_FACE_NAMES)
                .find(|(v, _)| !v.is_finite());
            if let Some((&value, column)) = bad {
                return Err(LiveLinkFaceError::NonFinite {
                    frame: fi,
                    column,
                    value,
                });
            }
            if layout == LiveLinkFaceLayout::WithRotations {
                let rots = [frame.head, frame.left_eye, frame.right_eye];
                for (g, r) in rots.iter().enumerate() {
                    for (k, &value) in r.iter().flatten().enumerate() {
                        if !value.is_finite() {
                            return Err(LiveLinkFaceError::NonFinite {
                                frame: fi,
                                column: LIVE_LINK_FACE_ROTATION_NAMES[g * 3 + k],
                                value,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes without checking values (callers run `check_finite` first).
    fn write_impl<W: Write>(&self, writer: W, layout: LiveLinkFaceLayout) -> io::Result<()> {
        use std::fmt::Write as _;
        let mut out = BufWriter::new(writer);
        let with_rot = layout == LiveLinkFaceLayout::WithRotations;
        let mut line = String::with_capacity(1024);
        line.push_str("Timecode,BlendShapeCount");
        for n in LIVE_LINK_FACE_NAMES {
            line.push(',');
            line.push_str(n);
        }
        if with_rot {
            for n in LIVE_LINK_FACE_ROTATION_NAMES {
                line.push(',');
                line.push_str(n);
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        let count = if with_rot { 61 } else { 52 };

        let mut untracked = self.untracked.iter().peekable();
        for frame in &self.frames {
            while let Some(tc) = untracked.next_if(|tc| **tc < frame.timecode) {
                line.clear();
                let _ = writeln!(line, "{tc},0");
                out.write_all(line.as_bytes())?;
            }
            line.clear();
            let _ = write!(line, "{},{count}", frame.timecode);
            for v in frame.blendshapes {
                let _ = write!(line, ",{v:.prec$}", prec = LIVE_LINK_FACE_DECIMALS);
            }
            if with_rot {
                for r in [frame.head, frame.left_eye, frame.right_eye] {
                    for v in r.unwrap_or([0.0; 3]) {
                        let _ = write!(line, ",{v:.prec$}", prec = LIVE_LINK_FACE_DECIMALS);
                    }
                }
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        for tc in untracked {
            line.clear();
            let _ = writeln!(line, "{tc},0");
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
        Ok(())
    }

    /// Builds a take from generated animation: frame `i` gets the timecode of
    /// `start_secs + i / fps` seconds at timecode rate `fps`
    /// ([`Timecode::from_seconds`]), so one row per timecode frame. No
    /// rotations (`has_rotations` is false; the default writer then writes
    /// zeros in the 9 rotation columns). Weights are copied as given (use
    /// [`sanitize_weights`](super::sanitize_weights) first if needed; the
    /// writer rejects NaN).
    ///
    /// # Errors
    /// [`LiveLinkFaceError::InvalidTiming`] unless `fps` is finite and
    /// positive and `start_secs` is finite and non-negative.
    pub fn from_weights(
        frames: &[ArkitWeights],
        fps: f64,
        start_secs: f64,
    ) -> Result<Self, LiveLinkFaceError> {
        if !(fps.is_finite() && fps > 0.0 && start_secs.is_finite() && start_secs >= 0.0) {
            return Err(LiveLinkFaceError::InvalidTiming { fps, start_secs });
        }
        let start_frames = start_secs * fps;
        let frames = frames
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let t = (start_frames + i as f64) / fps;
                LiveLinkFaceFrame::new(Timecode::from_seconds(t, fps), *w)
            })
            .collect();
        Ok(Self {
            frames,
            has_rotations: false,
            untracked: Vec::new(),
        })
    }

    /// The blendshape weights of every tracked frame, in order.
    pub fn weights(&self) -> Vec<ArkitWeights> {
        self.frames.iter().map(|f| f.blendshapes).collect()
    }

    fn all_timecodes(&self) -> impl Iterator<Item = &Timecode> {
        self.frames
            .iter()
            .map(|f| &f.timecode)
            .chain(self.untracked.iter())
    }

    /// Guesses the *timecode* rate (frames per second of the `FF` field) from
    /// the largest frame number seen, tracked or untracked: the smallest
    /// standard rate (24, 25, 30, 48, 50, 60, 72, 96, 100, 120, 240) above it,
    /// else `max + 1`. `None` unless the rows span at least two distinct
    /// whole seconds (at least one wrap of the frame number), since a take
    /// that never wraps cannot show the rate. All reference captures give 60.
    pub fn timecode_rate(&self) -> Option<u32> {
        let first = self.all_timecodes().next()?.whole_seconds();
        if self.all_timecodes().all(|t| t.whole_seconds() == first) {
            return None;
        }
        let max = self.all_timecodes().map(|t| t.frame).max()?;
        Some(
            STANDARD_TIMECODE_RATES
                .iter()
                .copied()
                .find(|&r| r > max)
                .unwrap_or(max.saturating_add(1)),
        )
    }

    /// Estimates the *capture* rate in rows per second (which can be lower
    /// than the [timecode rate](Self::timecode_rate): the 30 fps reference
    /// captures step their 60 fps timecode by 2).
    ///
    /// Method: rows (tracked and untracked) are grouped by whole timecode
    /// second, i.e. between two wraps of the frame number; the first and
    /// last seconds are partial and dropped; the result is the median row
    /// count of the remaining seconds. Takes covering only two distinct
    /// seconds fall back to `timecode_rate / median frame step`. `None` for a
    /// take within a single timecode second (no wrap: the rate is unknown).
    pub fn estimate_fps(&self) -> Option<f64> {
        let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
        for tc in self.all_timecodes() {
            *per_second.entry(tc.whole_seconds()).or_default() += 1;
        }
        if per_second.len() >= 3 {
            let mut counts: Vec<usize> = per_second.values().copied().collect();
            counts.remove(0);
            counts.pop();
            counts.sort_unstable();
            return Some(counts[(counts.len() - 1) / 2] as f64);
        }
        let rate = self.timecode_rate()?;
        let mut tcs: Vec<u64> = self.all_timecodes().map(|t| t.frame_count(rate)).collect();
        tcs.sort_unstable();
        let mut steps: Vec<u64> = tcs
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d > 0)
            .collect();
        if steps.is_empty() {
            return None;
        }
        steps.sort_unstable();
        Some(f64::from(rate) / steps[(steps.len() - 1) / 2] as f64)
    }

    /// Time of every tracked frame in seconds relative to the first tracked
    /// frame, computed from the timecodes at timecode rate `timecode_rate`
    /// (see [`timecode_rate`](Self::timecode_rate); e.g. 60 for the reference
    /// captures). Includes the sub-frame part. Empty for an empty take.
    pub fn frame_times(&self, timecode_rate: f64) -> Vec<f64> {
        let Some(first) = self.frames.first() else {
            return Vec::new();
        };
        let t0 = first.timecode.to_seconds(timecode_rate);
        self.frames
            .iter()
            .map(|f| f.timecode.to_seconds(timecode_rate) - t0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timecode_parse_display() {
        let t = Timecode::parse("12:27:47:47.169").unwrap();
        assert_eq!((t.hours, t.minutes, t.seconds, t.frame), (12, 27, 47, 47));
        assert!((t.subframe - 0.169).abs() < 1e-6);
        assert_eq!(t.to_string(), "12:27:47:47.169");
        assert_eq!(Timecode::parse("00:00:01:05").unwrap().frame, 5);
        assert_eq!(Timecode::parse("01:02:03;04.5").unwrap().subframe, 0.5);
        for bad in [
            "",
            "1:2:3",
            "aa:00:00:00",
            "00:60:00:00",
            "00:00:00:0x",
            "00:00:00:01.",
            "0:0:0:0:0",
        ] {
            assert!(Timecode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timecode_seconds() {
        let t = Timecode::from_seconds(3661.5, 30.0);
        assert_eq!(t.to_string(), "01:01:01:15.000");
        assert!((t.to_seconds(30.0) - 3661.5).abs() < 1e-9);
        for k in 0..300u32 {
            let t = Timecode::from_seconds(f64::from(k) / 30.0, 30.0);
            assert_eq!(t.frame_count(30), u64::from(k));
            assert_eq!(t.subframe, 0.0);
        }
        let t = Timecode::from_seconds(1.0 / 29.97 * 10.0, 29.97);
        assert_eq!((t.seconds, t.frame), (0, 10));
        assert_eq!(Timecode::from_seconds(-1.0, 30.0), Timecode::default());
        assert_eq!(Timecode::from_seconds(2.5, 0.0).seconds, 2);
    }
}
