//! Phone timings from CMU PocketSphinx (the `pocketsphinx_continuous`
//! program of the Debian packages `pocketsphinx` + `pocketsphinx-en-us`).
//!
//! Two modes, both returning a list of [`Phone`]s (ARPAbet without stress,
//! `"SIL"` for silence and noise) with start/end times in seconds:
//!
//! * [`allphone`] — phone recognition on any speech, with no transcript
//!   (`-allphone en-us-phone.lm.bin`, a phone bigram LM). English phones
//!   only; on other languages it still finds a plausible sequence of
//!   consonant/vowel/silence segments, which is what the phonetic labeler
//!   needs. Flags: `-beam 1e-10 -pbeam 1e-10 -lw 2.0` (the default beams are
//!   ~20× slower, `1e-5` beams give garbage).
//! * [`align`] — forced alignment to a known transcript. Each transcript
//!   word is looked up in the CMU dictionary and the words become a JSGF
//!   grammar over *phones*: every ARPAbet phone is its own one-phone "word"
//!   in a small generated dictionary, each transcript word is an alternation
//!   of its pronunciations, and the decoder inserts optional silences
//!   between phones itself. The word-level time stamps that
//!   `pocketsphinx_continuous -time yes` prints are then phone time stamps.
//!   When a word is not in the dictionary, or the grammar does not match the
//!   audio, it falls back to [`allphone`] with a warning on stderr.
//!
//! Input audio is 16 kHz mono `f32` (as [`talking_head_core::audio::load_mono_16k`]
//! returns); it is written to temporary 16-bit WAV files (std temp dir,
//! unique names, removed afterwards) because the program reads files.
//! Voice-activity detection is off (`-remove_silence no`) so each file is
//! one utterance and the times cover the whole input.
//!
//! # Long audio and search failures
//! With the narrow beams, PocketSphinx 5prealpha's allphone search
//! sometimes loses its way: the backtrace then ends in one phone that lasts
//! until the end of the utterance (measured: an `EH` from 41.2 s to the end
//! of a 110 s FACEGOOD clip; a `W` from 2.4 s to the end of a 5 s piece of
//! LJ001-0001). It depends on where the search started, not only on the
//! length: the same audio decodes correctly when the utterance starts at
//! the failure point. So [`allphone`] decodes at most
//! [`SphinxConfig::max_chunk_secs`] (8 s) at a time, cutting at the quietest
//! 10 ms frame of the last [`SphinxConfig::cut_search_secs`] (3 s) of each
//! chunk, and when the last non-silence phone of a piece is longer than
//! [`SphinxConfig::max_phone_secs`] (the symptom) it keeps the phones before
//! it and restarts the search at that phone's start (then, if that fails
//! at once, 100 ms later, and at last with the wider
//! [`SphinxConfig::retry_beam`]). On the six FACEGOOD clips no phone longer
//! than 1 s remains. The forced alignment (finite-state grammar search,
//! default beams) does not show the problem (29 s aligned correctly) and
//! runs on the whole input.
//!
//! # Speed
//! Measured on this project's build machine (2 shared cores, load ≈ 3.5
//! from other builds during the measurements, so these are upper bounds):
//! * allphone: LJ001-0001 (9.65 s) in 5.3 s (real-time factor 0.55; ~0.45 s
//!   per chunk is start-up, building the phone network); the six FACEGOOD
//!   clips (608 s) in 233 s (RT 0.38). A standalone 9.6 s run took 3.7 s
//!   on an idle machine. The default beams (`1e-48`) took 75 s for 9.6 s.
//! * forced alignment: LJ001-0001 in 0.23 s (RT 0.024).
//!
//! `tests/phonetic.rs` (`allphone_on_ljspeech`, `align_on_ljspeech`) prints
//! the current numbers.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use talking_head_core::audio::MODEL_SAMPLE_RATE;

/// Default PocketSphinx model directory of the Debian package
/// `pocketsphinx-en-us`.
pub const DEFAULT_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

/// Default program name (looked up in `PATH`).
pub const DEFAULT_BINARY: &str = "pocketsphinx_continuous";

/// Debian packages that provide the program and the model.
pub const DEBIAN_PACKAGES: &str = "pocketsphinx pocketsphinx-en-us";

/// PocketSphinx frame period in seconds (`-frate 100`).
pub const FRAME_SECS: f64 = 0.01;

/// The 39 ARPAbet phones of the CMU dictionary (no stress digits).
pub const ARPABET: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH",
];

/// One phone with its time span.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phone {
    /// ARPAbet phone without stress digit (`"AA"`, `"P"`, ... see
    /// [`ARPABET`]), or `"SIL"` for silence, breath and noise (PocketSphinx's
    /// `SIL`, `<sil>`, `<s>`, `</s>`, `+NSN+`, `+SPN+`, ...).
    pub phone: String,
    /// Start time in seconds from the start of the audio.
    pub start: f64,
    /// End time in seconds (exclusive; `end > start`).
    pub end: f64,
}

impl Phone {
    /// A phone from its label and span (seconds).
    pub fn new(phone: impl Into<String>, start: f64, end: f64) -> Self {
        Self {
            phone: phone.into(),
            start,
            end,
        }
    }

    /// Whether this is silence/noise (`"SIL"`).
    pub fn is_silence(&self) -> bool {
        self.phone == "SIL"
    }

    /// Duration in seconds.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Errors of the PocketSphinx wrapper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SphinxError {
    /// The program or a model file is missing.
    #[error(
        "PocketSphinx is not installed: {what} (install the Debian packages `{}`)",
        DEBIAN_PACKAGES
    )]
    NotInstalled {
        /// What is missing (program name or model path) and why.
        what: String,
    },
    /// A temporary file could not be written or read.
    #[error("PocketSphinx temporary file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The program ran and failed (non-zero exit status).
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        /// Program run.
        program: String,
        /// Exit status as text.
        status: String,
        /// The last error lines of its standard error.
        stderr: String,
    },
    /// The input audio is empty.
    #[error("no audio to decode (0 samples)")]
    EmptyAudio,
}

/// Where PocketSphinx is and how to run it. [`Default`] is the Debian
/// install with the flags measured to work (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct SphinxConfig {
    /// The `pocketsphinx_continuous` program (a name looked up in `PATH`,
    /// or a path).
    pub binary: PathBuf,
    /// Model directory holding `en-us/` (acoustic model),
    /// `en-us-phone.lm.bin` (phone LM) and `cmudict-en-us.dict`.
    pub model_dir: PathBuf,
    /// Longest piece of audio decoded at once by [`allphone`], in seconds.
    pub max_chunk_secs: f64,
    /// Chunk cuts are placed at the quietest 10 ms frame within the last
    /// this-many seconds of a chunk.
    pub cut_search_secs: f64,
    /// A non-silence phone longer than this (seconds) marks a failed
    /// allphone backtrace; the chunk is decoded again in two halves.
    pub max_phone_secs: f64,
    /// Allphone state beam (`-beam`) and phone beam (`-pbeam`).
    pub beam: f64,
    /// Wider beam for the last attempt on a piece whose backtrace stays
    /// broken (2–4× slower).
    pub retry_beam: f64,
    /// Allphone language weight (`-lw`).
    pub lw: f64,
}

impl Default for SphinxConfig {
    fn default() -> Self {
        Self {
            binary: PathBuf::from(DEFAULT_BINARY),
            model_dir: PathBuf::from(DEFAULT_MODEL_DIR),
            max_chunk_secs: 8.0,
            cut_search_secs: 3.0,
            max_phone_secs: 1.0,
            beam: 1e-10,
            retry_beam: 1e-20,
            lw: 2.0,
        }
    }
}

impl SphinxConfig {
    fn hmm(&self) -> PathBuf {
        self.model_dir.join("en-us")
    }
    fn phone_lm(&self) -> PathBuf {
        self.model_dir.join("en-us-phone.lm.bin")
    }
    fn dict(&self) -> PathBuf {
        self.model_dir.join("cmudict-en-us.dict")
    }

    /// Checks that the program runs and the model files exist.
    ///
    /// # Errors
    /// [`SphinxError::NotInstalled`] naming what is missing.
    pub fn check(&self) -> Result<(), SphinxError> {
        for p in [self.hmm(), self.phone_lm(), self.dict()] {
            if !p.exists() {
                return Err(SphinxError::NotInstalled {
                    what: format!("model file {} not found", p.display()),
                });
            }
        }
        // The program prints its usage and exits non-zero without
        // arguments; only a spawn failure matters here.
        Command::new(&self.binary)
            .arg("-logfn")
            .arg("/dev/null")
            .output()
            .map_err(|e| SphinxError::NotInstalled {
                what: format!("cannot run `{}`: {e}", self.binary.display()),
            })?;
        Ok(())
    }
}

/// Whether PocketSphinx (program and model) is installed at the default
/// locations ([`SphinxConfig::default`]).
pub fn is_available() -> bool {
    SphinxConfig::default().check().is_ok()
}

/// Phone recognition (no transcript) with the default configuration; see
/// [`allphone_with`].
///
/// # Errors
/// See [`allphone_with`].
pub fn allphone(audio_16k: &[f32]) -> Result<Vec<Phone>, SphinxError> {
    allphone_with(&SphinxConfig::default(), audio_16k)
}

/// Phone recognition on any speech: 16 kHz mono `audio_16k` (samples in
/// `[-1, 1]`; louder values are clipped) → contiguous phones covering
/// `[0, len / 16000]` s, sorted, adjacent silences merged.
///
/// The audio is decoded in chunks of at most `cfg.max_chunk_secs` (see the
/// [module docs](self) for why and for the speed).
///
/// # Errors
/// * [`SphinxError::EmptyAudio`] — no samples;
/// * [`SphinxError::NotInstalled`] — program or model missing;
/// * [`SphinxError::Io`] — the temporary WAV cannot be written;
/// * [`SphinxError::Failed`] — the program exited with an error.
pub fn allphone_with(cfg: &SphinxConfig, audio_16k: &[f32]) -> Result<Vec<Phone>, SphinxError> {
    if audio_16k.is_empty() {
        return Err(SphinxError::EmptyAudio);
    }
    cfg.check()?;
    let mut out = Vec::new();
    for (lo, hi) in chunk_bounds(audio_16k, cfg) {
        decode_allphone_chunk(cfg, audio_16k, lo, hi, &mut out)?;
    }
    Ok(normalise(
        out,
        audio_16k.len() as f64 / f64::from(MODEL_SAMPLE_RATE),
    ))
}

/// Runs allphone on `audio[lo..hi]` with state/phone beam `beam`. Returns
/// the phones (absolute seconds) and, if the backtrace is broken, the start
/// time of the broken phone: the last non-silence phone of the piece, when
/// it is longer than `cfg.max_phone_secs` (only silence may follow it).
fn run_allphone(
    cfg: &SphinxConfig,
    audio: &[f32],
    lo: usize,
    hi: usize,
    beam: f64,
) -> Result<(Vec<Phone>, Option<f64>), SphinxError> {
    let sr = f64::from(MODEL_SAMPLE_RATE);
    let wav = TempWav::write(&audio[lo..hi])?;
    let mut cmd = Command::new(&cfg.binary);
    cmd.arg("-infile")
        .arg(wav.path())
        .arg("-hmm")
        .arg(cfg.hmm())
        .arg("-allphone")
        .arg(cfg.phone_lm())
        .arg("-dict")
        .arg(cfg.dict())
        .args(["-beam", &format!("{beam:e}")])
        .args(["-pbeam", &format!("{beam:e}")])
        .args(["-lw", &cfg.lw.to_string()])
        .args(["-time", "yes", "-remove_silence", "no"]);
    let stdout = run(cfg, &mut cmd)?;
    let offset = lo as f64 / sr;
    let piece_end = (hi - lo) as f64 / sr;
    let phones: Vec<Phone> = parse_time_lines(&stdout)
        .into_iter()
        .filter_map(|p| {
            let start = p.start.min(piece_end);
            let end = p.end.min(piece_end);
            (end > start).then(|| Phone::new(p.phone, start + offset, end + offset))
        })
        .collect();
    let broken = phones
        .iter()
        .rev()
        .find(|p| !p.is_silence())
        .filter(|p| p.duration() > cfg.max_phone_secs)
        .map(|p| p.start);
    Ok((phones, broken))
}

/// Decodes `audio[lo..hi]`, appending phones (absolute times) to `out`.
///
/// When the backtrace breaks (see [`run_allphone`]), the phones before the
/// broken one are kept and decoding restarts at its start — a fresh search
/// from there normally succeeds. If it breaks again right at the restart
/// point, the start moves on by 100 ms (up to 3 times; the skipped audio
/// becomes silence), and as a last resort the rest is decoded with
/// `cfg.retry_beam` and kept whatever it is.
fn decode_allphone_chunk(
    cfg: &SphinxConfig,
    audio: &[f32],
    lo: usize,
    hi: usize,
    out: &mut Vec<Phone>,
) -> Result<(), SphinxError> {
    let sr = f64::from(MODEL_SAMPLE_RATE);
    let min_progress = (0.2 * sr) as usize;
    let nudge = (0.1 * sr) as usize;
    let mut start = lo;
    let mut stuck = 0;
    while start < hi {
        let (phones, broken) = run_allphone(cfg, audio, start, hi, cfg.beam)?;
        let Some(b) = broken else {
            out.extend(phones);
            return Ok(());
        };
        let b_sample = ((b * sr).round() as usize).clamp(start, hi);
        if b_sample >= start + min_progress {
            out.extend(phones.into_iter().filter(|p| p.end <= b + 1e-9));
            start = b_sample;
            stuck = 0;
        } else if stuck < 3 && start + nudge < hi {
            start += nudge;
            stuck += 1;
        } else {
            let (phones, _) = run_allphone(cfg, audio, start, hi, cfg.retry_beam)?;
            out.extend(phones);
            return Ok(());
        }
    }
    Ok(())
}

/// Forced alignment with the default configuration; see [`align_with`].
///
/// # Errors
/// See [`align_with`].
pub fn align(audio_16k: &[f32], transcript: &str) -> Result<Vec<Phone>, SphinxError> {
    align_with(&SphinxConfig::default(), audio_16k, transcript)
}

/// Forced alignment of `transcript` (any English text; case, punctuation
/// and digits-free words as in LJSpeech's normalised column) to 16 kHz mono
/// `audio_16k`: phones of the transcript's dictionary pronunciations (the
/// decoder picks among alternatives) and the silences it inserts, covering
/// `[0, len / 16000]` s.
///
/// Falls back to [`allphone_with`], printing a warning on stderr, when a
/// word is not in the CMU dictionary (named in the warning), the transcript
/// has no words, or the grammar does not match the audio (the decoder
/// returns no path).
///
/// # Errors
/// As [`allphone_with`]; additionally [`SphinxError::Io`] if the dictionary
/// cannot be read.
pub fn align_with(
    cfg: &SphinxConfig,
    audio_16k: &[f32],
    transcript: &str,
) -> Result<Vec<Phone>, SphinxError> {
    if audio_16k.is_empty() {
        return Err(SphinxError::EmptyAudio);
    }
    cfg.check()?;
    let dict_path = cfg.dict();
    let dict_text = std::fs::read_to_string(&dict_path).map_err(|source| SphinxError::Io {
        path: dict_path.clone(),
        source,
    })?;
    let words = transcript_words(transcript);
    let prons = match lookup_words(&dict_text, &words) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            eprintln!("warning: sphinx::align: empty transcript; using allphone instead");
            return allphone_with(cfg, audio_16k);
        }
        Err(oov) => {
            eprintln!(
                "warning: sphinx::align: not in the CMU dictionary: {}; using allphone instead",
                oov.join(", ")
            );
            return allphone_with(cfg, audio_16k);
        }
    };
    let (grammar, phone_dict) = build_grammar(&prons);
    let gram = TempFile::write("jsgf", grammar.as_bytes())?;
    let pdict = TempFile::write("dict", phone_dict.as_bytes())?;
    let wav = TempWav::write(audio_16k)?;
    let mut cmd = Command::new(&cfg.binary);
    cmd.arg("-infile")
        .arg(wav.path())
        .arg("-hmm")
        .arg(cfg.hmm())
        .arg("-jsgf")
        .arg(gram.path())
        .arg("-dict")
        .arg(pdict.path())
        .args(["-time", "yes", "-remove_silence", "no"]);
    let stdout = run(cfg, &mut cmd)?;
    let phones = parse_time_lines(&stdout);
    if phones.iter().all(Phone::is_silence) {
        eprintln!(
            "warning: sphinx::align: the transcript could not be aligned to the audio; using allphone instead"
        );
        return allphone_with(cfg, audio_16k);
    }
    let secs = audio_16k.len() as f64 / f64::from(MODEL_SAMPLE_RATE);
    Ok(normalise(phones, secs))
}

/// Runs the command, mapping spawn and exit failures.
fn run(cfg: &SphinxConfig, cmd: &mut Command) -> Result<String, SphinxError> {
    let out = cmd.output().map_err(|e| SphinxError::NotInstalled {
        what: format!("cannot run `{}`: {e}", cfg.binary.display()),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("FATAL"))
            .collect();
        let tail = if errors.is_empty() {
            stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        } else {
            errors.join(" | ")
        };
        return Err(SphinxError::Failed {
            program: cfg.binary.display().to_string(),
            status: out.status.to_string(),
            stderr: tail,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Canonical phone label: filler words → `"SIL"`, the alignment dictionary's
/// words and ARPAbet with stress digits → the bare ARPAbet phone; `None` for
/// a token that is neither.
fn canonical_phone(token: &str) -> Option<String> {
    let t = token.trim();
    let is_filler = matches!(t, "SIL" | "<sil>" | "<s>" | "</s>")
        || (t.starts_with('+') && t.ends_with('+') && t.len() > 2)
        || (t.starts_with('[') && t.ends_with(']') && t.len() > 2);
    if is_filler {
        return Some("SIL".to_owned());
    }
    // Drop an alternative-pronunciation suffix `(2)` and stress digits.
    let base = t.split('(').next().unwrap_or(t);
    let bare: String = base
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect::<String>()
        .to_ascii_uppercase();
    ARPABET.contains(&bare.as_str()).then_some(bare)
}

/// Parses the `WORD start end confidence` lines of
/// `pocketsphinx_continuous -time yes` (other lines, e.g. the hypothesis
/// string, are skipped). Inclusive end frames become exclusive ends
/// (`end + 10 ms`).
fn parse_time_lines(stdout: &str) -> Vec<Phone> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() != 4 {
            continue;
        }
        let nums: Option<Vec<f64>> = toks[1..].iter().map(|t| t.parse::<f64>().ok()).collect();
        let Some(nums) = nums else { continue };
        if !nums.iter().all(|x| x.is_finite()) {
            continue;
        }
        let Some(phone) = canonical_phone(toks[0]) else {
            continue;
        };
        let (start, end) = (nums[0], nums[1] + FRAME_SECS);
        if start >= 0.0 && end > start {
            out.push(Phone::new(phone, start, end));
        }
    }
    out
}

/// Sorts, clips to `[0, secs]`, makes the list contiguous (gaps filled with
/// silence, overlaps resolved in favour of the earlier phone) and merges
/// adjacent silences.
fn normalise(mut phones: Vec<Phone>, secs: f64) -> Vec<Phone> {
    phones.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut out: Vec<Phone> = Vec::with_capacity(phones.len());
    let push = |out: &mut Vec<Phone>, p: Phone| {
        if p.end <= p.start {
            return;
        }
        if let Some(last) = out.last_mut()
            && last.is_silence()
            && p.is_silence()
        {
            last.end = p.end;
            return;
        }
        out.push(p);
    };
    let mut t = 0.0f64;
    for p in phones {
        let start = p.start.max(t).min(secs);
        let end = p.end.min(secs);
        if end <= start {
            continue;
        }
        if start > t + 1e-9 {
            push(&mut out, Phone::new("SIL", t, start));
        }
        push(&mut out, Phone::new(p.phone, start, end));
        t = end;
    }
    if secs > t + 1e-9 {
        push(&mut out, Phone::new("SIL", t, secs));
    }
    out
}

/// Chunk boundaries `[lo, hi)` in samples, each at most
/// `cfg.max_chunk_secs` long, cut at the quietest 10 ms frame.
fn chunk_bounds(audio: &[f32], cfg: &SphinxConfig) -> Vec<(usize, usize)> {
    let sr = f64::from(MODEL_SAMPLE_RATE);
    let max = ((cfg.max_chunk_secs.max(1.0)) * sr) as usize;
    let search = ((cfg
        .cut_search_secs
        .clamp(0.1, cfg.max_chunk_secs.max(1.0) / 2.0))
        * sr) as usize;
    let mut out = Vec::new();
    let mut lo = 0;
    while audio.len() - lo > max {
        let cut = quietest_cut(audio, lo + max - search, lo + max);
        out.push((lo, cut));
        lo = cut;
    }
    out.push((lo, audio.len()));
    out
}

/// Start sample of the quietest 10 ms frame in `[from, to)` (frame
/// energies; the frame start is returned, so the cut is in the quiet part).
fn quietest_cut(audio: &[f32], from: usize, to: usize) -> usize {
    let hop = (f64::from(MODEL_SAMPLE_RATE) * FRAME_SECS) as usize;
    let to = to.min(audio.len());
    let mut best = (f64::INFINITY, (from + to) / 2);
    let mut s = from;
    while s + hop <= to {
        let e: f64 = audio[s..s + hop]
            .iter()
            .map(|&x| f64::from(if x.is_finite() { x } else { 0.0 }).powi(2))
            .sum();
        if e < best.0 {
            best = (e, s + hop / 2);
        }
        s += hop;
    }
    best.1.clamp(from.min(to), to)
}

/// Splits a transcript into lower-case dictionary tokens: letters, digits
/// and apostrophes; everything else (punctuation, hyphens, spaces)
/// separates words.
fn transcript_words(transcript: &str) -> Vec<String> {
    transcript
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Looks every word up in the CMU dictionary text; the pronunciations of
/// each word (deduplicated, stress-free ARPAbet), or the out-of-dictionary
/// words.
fn lookup_words(dict_text: &str, words: &[String]) -> Result<Vec<Vec<Vec<String>>>, Vec<String>> {
    use std::collections::HashMap;
    let wanted: std::collections::HashSet<&str> = words.iter().map(String::as_str).collect();
    let mut found: HashMap<&str, Vec<Vec<String>>> = HashMap::new();
    for line in dict_text.lines() {
        let mut toks = line.split_whitespace();
        let Some(head) = toks.next() else { continue };
        let word = head.split('(').next().unwrap_or(head);
        let Some(&key) = wanted.get(word) else {
            continue;
        };
        let pron: Option<Vec<String>> = toks.map(canonical_phone).collect();
        let Some(pron) = pron else { continue };
        if pron.is_empty() || pron.iter().any(|p| p == "SIL") {
            continue;
        }
        let e = found.entry(key).or_default();
        if !e.contains(&pron) {
            e.push(pron);
        }
    }
    let mut oov: Vec<String> = words
        .iter()
        .filter(|w| !found.contains_key(w.as_str()))
        .cloned()
        .collect();
    if !oov.is_empty() {
        oov.dedup();
        return Err(oov);
    }
    Ok(words.iter().map(|w| found[w.as_str()].clone()).collect())
}

/// JSGF grammar (phones as words, each transcript word an alternation of
/// its pronunciations) and the matching one-phone-per-word dictionary.
fn build_grammar(prons: &[Vec<Vec<String>>]) -> (String, String) {
    let mut g = String::from("#JSGF V1.0;\ngrammar align;\npublic <utt> =");
    let mut used = std::collections::BTreeSet::new();
    for alts in prons {
        g.push_str(" (");
        for (i, pron) in alts.iter().enumerate() {
            if i > 0 {
                g.push_str(" |");
            }
            for p in pron {
                g.push(' ');
                g.push_str(p);
                used.insert(p.clone());
            }
        }
        g.push_str(" )");
    }
    g.push_str(" ;\n");
    let mut d = String::new();
    for p in used {
        let _ = writeln!(d, "{p} {p}");
    }
    (g, d)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(ext: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "talking-head-sphinx-{}-{n}-{nanos}.{ext}",
        std::process::id()
    ))
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn write(ext: &str, bytes: &[u8]) -> Result<Self, SphinxError> {
        let path = temp_path(ext);
        std::fs::write(&path, bytes).map_err(|source| SphinxError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self(path))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temporary 16 kHz mono 16-bit WAV, removed on drop.
struct TempWav(TempFile);

impl TempWav {
    fn write(samples: &[f32]) -> Result<Self, SphinxError> {
        let path = temp_path("wav");
        let io_err = |path: &Path, e: hound::Error| SphinxError::Io {
            path: path.to_owned(),
            source: match e {
                hound::Error::IoError(e) => e,
                other => io::Error::other(other.to_string()),
            },
        };
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: MODEL_SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // Remove the file on every error path from here on.
        let file = TempFile(path.clone());
        let mut w = hound::WavWriter::create(&path, spec).map_err(|e| io_err(&path, e))?;
        for &x in samples {
            let x = if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            w.write_sample((x * 32767.0).round() as i16)
                .map_err(|e| io_err(&path, e))?;
        }
        w.finalize().map_err(|e| io_err(&path, e))?;
        Ok(Self(file))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interleaved_output() {
        let out = "SIL R IH L\nINFO: noise\nSIL 0.000 0.020 1.000000\nR 0.030 0.070 1.000000\n\
                   garbage 1 2\n+NSN+ 0.080 0.100 0.9\nih 0.110 0.150 1.0\nAH1 0.16 0.2 1\n";
        let p = parse_time_lines(out);
        let labels: Vec<&str> = p.iter().map(|p| p.phone.as_str()).collect();
        assert_eq!(labels, ["SIL", "R", "SIL", "IH", "AH"]);
        assert!((p[1].end - 0.08).abs() < 1e-9);
        let n = normalise(p, 0.3);
        let labels: Vec<&str> = n.iter().map(|p| p.phone.as_str()).collect();
        assert_eq!(labels, ["SIL", "R", "SIL", "IH", "AH", "SIL"]);
        for w in n.windows(2) {
            assert!((w[0].end - w[1].start).abs() < 1e-9);
        }
        assert!((n.last().unwrap().end - 0.3).abs() < 1e-9);
    }

    #[test]
    fn grammar_and_words() {
        assert_eq!(
            transcript_words("Printing, in the only-sense 'tis."),
            ["printing", "in", "the", "only", "sense", "tis"]
        );
        let dict = "the DH AH0\nthe(2) DH IY0\nin IH0 N\n";
        let words = vec!["in".to_owned(), "the".to_owned()];
        let prons = lookup_words(dict, &words).unwrap();
        let (g, d) = build_grammar(&prons);
        assert!(g.contains("( IH N ) ( DH AH | DH IY )"), "{g}");
        assert_eq!(d, "AH AH\nDH DH\nIH IH\nIY IY\nN N\n");
        assert_eq!(
            lookup_words(dict, &["zzq".to_owned()]).unwrap_err(),
            ["zzq"]
        );
    }

    #[test]
    fn chunks_cover_audio() {
        let cfg = SphinxConfig::default();
        let audio: Vec<f32> = (0..16_000 * 20)
            .map(|i| ((i as f32) * 0.01).sin())
            .collect();
        let b = chunk_bounds(&audio, &cfg);
        assert_eq!(b.first().unwrap().0, 0);
        assert_eq!(b.last().unwrap().1, audio.len());
        for w in b.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        for (lo, hi) in b {
            assert!(hi > lo && hi - lo <= 8 * 16_000);
        }
    }
}
