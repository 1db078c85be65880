//! Streaming log-mel front-end: the Whisper / librosa log-mel spectrogram,
//! made causal.
//!
//! Pipeline per frame `j` (defaults in parentheses):
//!
//! 1. take the last `win_length` (400) samples of 16 kHz audio ending at
//!    sample `(j + 1) * hop_length` (hop 160, i.e. 10 ms per frame);
//! 2. multiply by a periodic Hann window and zero-pad to `n_fft` (400);
//! 3. real FFT (realfft) and power spectrum `|X|²` (`n_fft / 2 + 1` bins);
//! 4. Slaney mel filterbank (80 bands, 0–8000 Hz, area normalised —
//!    identical to `librosa.filters.mel(htk=False, norm="slaney")`);
//! 5. `log10(max(mel, 1e-10))`.
//!
//! There is no per-utterance normalisation; a fixed, data-set-wide
//! [`FeatureNorm`] may be applied afterwards.
//!
//! Causal framing: the signal is left-padded with `win_length - hop_length`
//! (240) zeros and framed like librosa's `center=False`, so frame `j` covers
//! input samples `[j*hop - (win - hop), j*hop + hop)` and is emitted as soon
//! as sample `(j + 1) * hop - 1` has arrived. A signal of `len` samples gives
//! `floor(len / hop)` frames.
//!
//! Reference: librosa 0.11 `librosa.stft(center=False)`,
//! `librosa.filters.mel`, and the log-mel of OpenAI Whisper
//! (`whisper/audio.py`), minus Whisper's centring, dynamic-range clamp and
//! rescaling.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// Floor applied to mel energies before `log10`, so silence maps to `-10`.
pub const LOG_FLOOR: f32 = 1e-10;

/// Smallest standard deviation [`FeatureNorm::from_frames`] will produce.
pub const NORM_STD_FLOOR: f32 = 1e-3;

/// Largest accepted `n_fft` / `win_length`, in samples.
pub const MAX_FFT_LEN: usize = 1 << 16;

/// Largest accepted number of mel bands.
pub const MAX_MELS: usize = 1024;

/// Samples fed to the framer per internal step, bounding the pending buffer.
const FEED_BLOCK: usize = 4096;

/// Errors raised by the feature front-end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// A [`MelConfig`] field is out of range.
    #[error("invalid mel configuration: `{field}` {reason}")]
    InvalidConfig {
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong with it, and the accepted range.
        reason: String,
    },
    /// A [`FeatureNorm`] does not have one mean and one std per mel band.
    #[error(
        "feature normalisation has {mean_len} means and {std_len} stds, expected {n_mels} of each"
    )]
    NormShape {
        /// Expected length (number of mel bands).
        n_mels: usize,
        /// Length of `mean`.
        mean_len: usize,
        /// Length of `std`.
        std_len: usize,
    },
    /// A [`FeatureNorm`] value is unusable (non-finite mean, std not > 0).
    #[error("feature normalisation is invalid at mel band {band}: {reason}")]
    InvalidNorm {
        /// Index of the offending mel band.
        band: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Parameters of the log-mel front-end. Defaults are Whisper's: 16 kHz,
/// 25 ms window (400 samples), 10 ms hop (160), 400-point FFT, 80 mel bands
/// from 0 to 8000 Hz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MelConfig {
    /// Sample rate of the input audio, in Hz.
    pub sample_rate: u32,
    /// FFT length, in samples (`>= win_length`); `n_fft / 2 + 1` frequency bins.
    pub n_fft: usize,
    /// Analysis window length, in samples (periodic Hann).
    pub win_length: usize,
    /// Hop between frames, in samples (`1..=win_length`); one output frame per hop.
    pub hop_length: usize,
    /// Number of mel bands per frame.
    pub n_mels: usize,
    /// Lowest filterbank edge, in Hz.
    pub f_min: f32,
    /// Highest filterbank edge, in Hz (`<= sample_rate / 2`).
    pub f_max: f32,
}

impl Default for MelConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 400,
            win_length: 400,
            hop_length: 160,
            n_mels: 80,
            f_min: 0.0,
            f_max: 8000.0,
        }
    }
}

impl MelConfig {
    /// Checks every field's range: `sample_rate > 0`;
    /// `1 <= hop_length <= win_length <= n_fft <= 65536`;
    /// `1 <= n_mels <= 1024`; `0 <= f_min < f_max <= sample_rate / 2`, finite.
    ///
    /// # Errors
    /// [`FeatureError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |field: &'static str, reason: String| {
            Err(FeatureError::InvalidConfig { field, reason })
        };
        if self.sample_rate == 0 {
            return bad("sample_rate", "must be > 0 Hz".into());
        }
        if self.n_fft == 0 || self.n_fft > MAX_FFT_LEN {
            return bad(
                "n_fft",
                format!("is {}, must be in 1..={MAX_FFT_LEN}", self.n_fft),
            );
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad(
                "win_length",
                format!(
                    "is {}, must be in 1..=n_fft ({})",
                    self.win_length, self.n_fft
                ),
            );
        }
        if self.hop_length == 0 || self.hop_length > self.win_length {
            return bad(
                "hop_length",
                format!(
                    "is {}, must be in 1..=win_length ({})",
                    self.hop_length, self.win_length
                ),
            );
        }
        if self.n_mels == 0 || self.n_mels > MAX_MELS {
            return bad(
                "n_mels",
                format!("is {}, must be in 1..={MAX_MELS}", self.n_mels),
            );
        }
        let nyquist = self.sample_rate as f32 / 2.0;
        if !self.f_min.is_finite() || self.f_min < 0.0 {
            return bad(
                "f_min",
                format!("is {} Hz, must be finite and >= 0", self.f_min),
            );
        }
        if !self.f_max.is_finite() || self.f_max <= self.f_min || self.f_max > nyquist {
            return bad(
                "f_max",
                format!(
                    "is {} Hz, must be in (f_min = {}, sample_rate / 2 = {nyquist}] Hz",
                    self.f_max, self.f_min
                ),
            );
        }
        Ok(())
    }

    /// Number of FFT frequency bins, `n_fft / 2 + 1`.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Zeros prepended to the signal for causal framing, `win_length - hop_length`.
    pub fn left_pad(&self) -> usize {
        self.win_length.saturating_sub(self.hop_length)
    }

    /// Number of frames the whole-buffer front-end produces for `len`
    /// samples: `floor(len / hop_length)` (0 for a zero hop).
    pub fn frames_for(&self, len: usize) -> usize {
        len.checked_div(self.hop_length).unwrap_or(0)
    }
}

/// Slaney mel scale (Auditory Toolbox): linear below 1 kHz
/// (`mel = 3 f / 200`), logarithmic above (`27 / ln 6.4` mels per e-fold).
/// Same as `librosa.hz_to_mel(htk=False)`.
pub fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

/// Inverse of [`hz_to_mel`] (`librosa.mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// The mel filterbank as a dense row-major `[n_mels, n_fft / 2 + 1]` matrix
/// of `f32` weights applied to the power spectrum.
///
/// Triangular filters with edges equally spaced on the Slaney mel scale
/// between `f_min` and `f_max`, each scaled by `2 / (f_hi - f_lo)` (Slaney
/// area normalisation). Computed in `f64`, rounded to `f32`; equal to
/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False,
/// norm="slaney")` (librosa 0.11, `filters.py`).
///
/// # Errors
/// [`FeatureError::InvalidConfig`] if `cfg` is invalid.
pub fn mel_filterbank(cfg: &MelConfig) -> Result<Vec<f32>, FeatureError> {
    cfg.validate()?;
    let n_freqs = cfg.n_freqs();
    let sr = f64::from(cfg.sample_rate);
    // librosa.fft_frequencies: linspace(0, sr / 2, n_freqs).
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|k| k as f64 * sr / cfg.n_fft as f64)
        .collect();
    // librosa.mel_frequencies(n_mels + 2, fmin, fmax): edges equally spaced in mel.
    let mel_lo = hz_to_mel(f64::from(cfg.f_min));
    let mel_hi = hz_to_mel(f64::from(cfg.f_max));
    let n_edges = cfg.n_mels + 2;
    let edges: Vec<f64> = (0..n_edges)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_edges - 1) as f64))
        .collect();
    let mut weights = vec![0.0f32; cfg.n_mels * n_freqs];
    for (m, row) in weights.chunks_exact_mut(n_freqs).enumerate() {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (w, &f) in row.iter_mut().zip(&fft_freqs) {
            let lower = (f - lo) / (mid - lo);
            let upper = (hi - f) / (hi - mid);
            let tri = lower.min(upper).max(0.0);
            *w = (tri * enorm) as f32;
        }
    }
    Ok(weights)
}

/// Periodic Hann window of `len` samples, `0.5 - 0.5 cos(2π n / len)`
/// (`scipy.signal.get_window("hann", len, fftbins=True)`).
fn periodic_hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            let x = 2.0 * std::f64::consts::PI * n as f64 / len as f64;
            (0.5 - 0.5 * x.cos()) as f32
        })
        .collect()
}

/// One mel band stored sparsely: its first non-zero bin and weights.
#[derive(Debug, Clone)]
struct MelBand {
    start: usize,
    weights: Vec<f32>,
}

/// Streaming causal log-mel extractor (see the [module docs](self)).
///
/// Push 16 kHz mono samples in chunks of any size; complete frames are
/// appended row-major (`[frames, n_mels]`) to the output. The output does
/// not depend on how the input is chunked, and equals [`log_mel`] on the
/// concatenated input. FFT plan, window and scratch buffers are allocated
/// once in [`new`](Self::new); pushing allocates nothing except growth of
/// `out`. Non-finite input samples are treated as 0.
pub struct LogMelStreamer {
    cfg: MelConfig,
    window: Vec<f32>,
    bands: Vec<MelBand>,
    fft: Arc<dyn RealToComplex<f32>>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    /// Pending samples: the frame history plus not yet framed input.
    pending: Vec<f32>,
    frames: u64,
}

impl std::fmt::Debug for LogMelStreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelStreamer")
            .field("cfg", &self.cfg)
            .field("pending", &self.pending.len())
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl LogMelStreamer {
    /// Builds the window, mel filterbank and FFT plan for `cfg`.
    ///
    /// # Errors
    /// [`FeatureError::InvalidConfig`] if `cfg` fails [`MelConfig::validate`].
    pub fn new(cfg: MelConfig) -> Result<Self, FeatureError> {
        let dense = mel_filterbank(&cfg)?;
        let n_freqs = cfg.n_freqs();
        let bands = dense
            .chunks_exact(n_freqs)
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |i| i + 1);
                MelBand {
                    start,
                    weights: row[start..end].to_vec(),
                }
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        let fft_in = fft.make_input_vec();
        let fft_out = fft.make_output_vec();
        let fft_scratch = fft.make_scratch_vec();
        let mut pending = Vec::with_capacity(cfg.win_length + FEED_BLOCK);
        pending.resize(cfg.left_pad(), 0.0);
        Ok(Self {
            window: periodic_hann(cfg.win_length),
            bands,
            fft,
            fft_in,
            fft_out,
            fft_scratch,
            power: vec![0.0; n_freqs],
            pending,
            frames: 0,
            cfg,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// Number of mel bands per frame.
    pub fn n_mels(&self) -> usize {
        self.cfg.n_mels
    }

    /// Frames emitted since creation or the last [`reset`](Self::reset).
    pub fn frames_emitted(&self) -> u64 {
        self.frames
    }

    /// Forgets all buffered audio (restoring the zero left-padding) and the
    /// frame counter.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.pending.resize(self.cfg.left_pad(), 0.0);
        self.frames = 0;
    }

    /// Appends `samples` (16 kHz mono, any length) and writes every frame
    /// completed by them to `out`, row-major `[frames, n_mels]` log10 mel
    /// energies. Returns the number of frames appended.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> usize {
        let mut appended = 0;
        for block in samples.chunks(FEED_BLOCK) {
            self.pending
                .extend(block.iter().map(|&s| if s.is_finite() { s } else { 0.0 }));
            let win = self.cfg.win_length;
            let hop = self.cfg.hop_length;
            let mut start = 0;
            while start + win <= self.pending.len() {
                self.frame_at(start, out);
                start += hop;
                appended += 1;
            }
            self.pending.drain(..start);
        }
        self.frames += appended as u64;
        appended
    }

    /// Computes the frame whose window starts at `pending[start]`.
    fn frame_at(&mut self, start: usize, out: &mut Vec<f32>) {
        let win = self.cfg.win_length;
        let seg = &self.pending[start..start + win];
        for ((dst, &x), &w) in self.fft_in.iter_mut().zip(seg).zip(&self.window) {
            *dst = x * w;
        }
        self.fft_in[win..].fill(0.0);
        // Lengths come from the plan itself, so this cannot fail; if it did,
        // the zeroed spectrum below yields a silent (-10) frame, not a panic.
        if self
            .fft
            .process_with_scratch(&mut self.fft_in, &mut self.fft_out, &mut self.fft_scratch)
            .is_err()
        {
            self.fft_out.fill(Complex::new(0.0, 0.0));
        }
        for (p, c) in self.power.iter_mut().zip(&self.fft_out) {
            *p = c.norm_sqr();
        }
        out.reserve(self.bands.len());
        for band in &self.bands {
            let spec = &self.power[band.start..band.start + band.weights.len()];
            let mut acc = 0.0f32;
            for (&w, &p) in band.weights.iter().zip(spec) {
                acc += w * p;
            }
            out.push(acc.max(LOG_FLOOR).log10());
        }
    }
}

/// Whole-buffer log-mel: the frames [`LogMelStreamer`] produces for
/// `samples` pushed at once — `floor(len / hop_length)` frames, row-major
/// `[frames, n_mels]`.
///
/// # Errors
/// [`FeatureError::InvalidConfig`] if `cfg` is invalid.
pub fn log_mel(cfg: &MelConfig, samples: &[f32]) -> Result<Vec<f32>, FeatureError> {
    let mut streamer = LogMelStreamer::new(cfg.clone())?;
    let mut out = Vec::with_capacity(cfg.frames_for(samples.len()) * cfg.n_mels);
    streamer.push(samples, &mut out);
    Ok(out)
}

/// Fixed per-band feature normalisation, `(x - mean[b]) / std[b]`, with
/// statistics taken once over a training set (never per utterance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureNorm {
    /// Per-band mean, one value per mel band (log10 units).
    pub mean: Vec<f32>,
    /// Per-band standard deviation, one positive value per mel band.
    pub std: Vec<f32>,
}

impl FeatureNorm {
    /// The no-op normalisation for `n_mels` bands (mean 0, std 1).
    pub fn identity(n_mels: usize) -> Self {
        Self {
            mean: vec![0.0; n_mels],
            std: vec![1.0; n_mels],
        }
    }

    /// Global per-band mean and (population) standard deviation of
    /// row-major `[frames, n_mels]` features, accumulated in `f64`.
    /// Standard deviations are floored at [`NORM_STD_FLOOR`]; non-finite
    /// values are skipped; a trailing partial frame is ignored. With no
    /// frames (or `n_mels == 0`) the result is [`identity`](Self::identity).
    pub fn from_frames(frames: &[f32], n_mels: usize) -> Self {
        if n_mels == 0 {
            return Self::identity(0);
        }
        let mut sum = vec![0.0f64; n_mels];
        let mut sum_sq = vec![0.0f64; n_mels];
        let mut count = vec![0u64; n_mels];
        for frame in frames.chunks_exact(n_mels) {
            for (b, &x) in frame.iter().enumerate() {
                if x.is_finite() {
                    let x = f64::from(x);
                    sum[b] += x;
                    sum_sq[b] += x * x;
                    count[b] += 1;
                }
            }
        }
        let mut norm = Self::identity(n_mels);
        for b in 0..n_mels {
            if count[b] == 0 {
                continue;
            }
            let n = count[b] as f64;
            let mean = sum[b] / n;
            let var = (sum_sq[b] / n - mean * mean).max(0.0);
            norm.mean[b] = mean as f32;
            norm.std[b] = (var.sqrt() as f32).max(NORM_STD_FLOOR);
        }
        norm
    }

    /// Checks that there are `n_mels` means and stds, means are finite and
    /// stds finite and at least [`NORM_STD_FLOOR`] (what
    /// [`FeatureNorm::from_frames`] floors them at).
    ///
    /// # Errors
    /// [`FeatureError::NormShape`] or [`FeatureError::InvalidNorm`].
    pub fn validate(&self, n_mels: usize) -> Result<(), FeatureError> {
        if self.mean.len() != n_mels || self.std.len() != n_mels {
            return Err(FeatureError::NormShape {
                n_mels,
                mean_len: self.mean.len(),
                std_len: self.std.len(),
            });
        }
        for (band, (&m, &s)) in self.mean.iter().zip(&self.std).enumerate() {
            if !m.is_finite() {
                return Err(FeatureError::InvalidNorm {
                    band,
                    reason: format!("mean is {m}"),
                });
            }
            if !s.is_finite() || s < NORM_STD_FLOOR {
                return Err(FeatureError::InvalidNorm {
                    band,
                    reason: format!("std is {s}, must be finite and >= {NORM_STD_FLOOR}"),
                });
            }
        }
        Ok(())
    }

    /// Normalises row-major `[frames, n_mels]` features in place, with
    /// `n_mels = mean.len()`. A trailing partial frame is left unchanged; an
    /// empty or mismatched norm (`mean.len() != std.len()`) does nothing —
    /// call [`validate`](Self::validate) first to catch that.
    pub fn apply(&self, frames: &mut [f32]) {
        let n = self.mean.len();
        if n == 0 || self.std.len() != n {
            return;
        }
        for frame in frames.chunks_exact_mut(n) {
            for ((x, &m), &s) in frame.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}
