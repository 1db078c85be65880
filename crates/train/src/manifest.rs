//! The corpus manifest (`corpus.json`) and clip metadata, shared by the
//! corpus builder, the dataset loader, the trainer and the evaluator.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use talking_head_core::model::EMOTION_COUNT;

/// The label kinds of a corpus clip ([`ClipMeta::labels`]): animator
/// curves (FACEGOOD), or the phonetic labeler on flite's exact phones, on
/// forced-aligned phones, or on pocketsphinx allphone phones.
pub const LABEL_KINDS: [&str; 4] = [
    "animator",
    "phonetic-exact",
    "phonetic-aligned",
    "phonetic-allphone",
];

/// Corpus format version (in `corpus.json`).
pub const CORPUS_VERSION: u32 = 1;

/// Train or validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training split.
    Train,
    /// Validation split (speakers never in train; FACEGOOD: held-out clips).
    Val,
}

/// Metadata of one corpus clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    /// Unique id; the files are `clips/<id>.*`.
    pub id: String,
    /// Source data set: `facegood`, `librispeech`, `ljspeech`, `multilingual`, `espeak`, `flite`.
    pub source: String,
    /// Speaker id (unique across sources).
    pub speaker: String,
    /// Language code.
    pub language: String,
    /// Style name (`facegood` for animator labels, `phonetic` for the labeler's).
    pub style: String,
    /// Emotion weights in [0, 1], [`EMOTIONS`](talking_head_core::model::EMOTIONS) order.
    pub emotion: [f32; EMOTION_COUNT],
    /// License of the audio (and labels).
    pub license: String,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Split.
    pub split: Split,
    /// How the lower-face labels were made: one of [`LABEL_KINDS`].
    pub labels: String,
    /// Audio augmentation applied (`None` for original audio).
    pub augmentation: Option<String>,
    /// Id of the clip this one was augmented from.
    pub augmented_from: Option<String>,
    /// Whether `clips/<id>.phones.tsv` exists.
    pub has_phones: bool,
    /// Frames in the label CSV.
    pub frames: usize,
}

/// The manifest `corpus.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorpusManifest {
    /// [`CORPUS_VERSION`].
    pub version: u32,
    /// Label frame rate (the model's).
    pub fps: u32,
    /// Seed used.
    pub seed: u64,
    /// Every clip.
    pub clips: Vec<ClipMeta>,
}

impl CorpusManifest {
    /// Reads `<dir>/corpus.json`.
    pub fn load(dir: &Path) -> Result<Self, CorpusError> {
        let p = dir.join("corpus.json");
        let s = std::fs::read_to_string(&p).map_err(|e| CorpusError::Io(p.clone(), e))?;
        serde_json::from_str(&s).map_err(|e| CorpusError::Format(p, e.to_string()))
    }
}

/// Errors of the corpus builder.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// File system error.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A malformed file.
    #[error("{0}: {1}")]
    Format(PathBuf, String),
    /// Missing input data.
    #[error("missing input: {0}")]
    Missing(String),
    /// A corpus setting out of its range.
    #[error("invalid corpus setting: {0}")]
    InvalidConfig(String),
    /// One clip failed.
    #[error("clip {id}: {reason}")]
    Clip {
        /// Clip id.
        id: String,
        /// What failed.
        reason: String,
    },
}

/// `base` + `.` + `ext`, keeping any dots already in `base` (clip ids may
/// contain them, so `Path::with_extension` would cut the id).
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// A clip id made safe for file names: anything but ASCII letters, digits,
/// `-` and `_` becomes `_`.
pub fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads a `phones.tsv` written by the corpus builder (header line, then
/// `phone<TAB>start<TAB>end` in seconds) as `(phone, start, end)`; `None`
/// when the file cannot be read. Malformed lines are skipped.
pub fn read_phones_tsv(path: &Path) -> Option<Vec<(String, f64, f64)>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let mut it = l.split('\t');
                Some((
                    it.next()?.to_string(),
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                ))
            })
            .collect(),
    )
}
