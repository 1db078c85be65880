//! Audio input: decoding audio files and conditioning PCM streams to the
//! model's input format, 16 kHz mono `f32` in `[-1, 1]`.
//!
//! Two entry points:
//!
//! * [`AudioConditioner`] — a streaming converter from any supported PCM
//!   format (8–96 kHz, 1–32 channels, interleaved `f32` or `i16`) to 16 kHz
//!   mono. It accepts chunks of any length, downmixes by averaging the
//!   channels, replaces non-finite samples by zero, clamps to `[-1, 1]` and
//!   resamples with a band-limited sinc resampler from [`rubato`] whose delay is
//!   compensated, so output sample `n` lies at input time `n / 16000` s.
//! * [`read_audio_file`] / [`load_mono_16k`] — decode a WAV, FLAC, AIFF, MP3
//!   or Ogg/Vorbis file with [`symphonia`] and (for `load_mono_16k`) condition
//!   it in one go.

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction, calculate_cutoff,
};
use serde::{Deserialize, Serialize};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Sample rate of the model input, in Hz (16 kHz, as in Whisper / wav2vec2).
pub const MODEL_SAMPLE_RATE: u32 = 16_000;

/// Lowest supported input sample rate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;

/// Highest supported input sample rate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 96_000;

/// Largest supported number of interleaved input channels.
pub const MAX_CHANNELS: u16 = 32;

/// Length of the resampler's internal input chunks, in milliseconds of input.
///
/// Audio is resampled in blocks of `sample_rate / 100` input frames, so at most
/// ~10 ms of input waits in the conditioner before it is resampled.
pub const CHUNK_MS: u32 = 10;

/// RMS level of `x` in dBFS: `10 · log10(mean(x²))` (full scale ±1 = 0 dBFS),
/// summed in `f64`; `-inf` for an empty slice or digital silence. The one
/// level definition of the crate: the session stamps it on every
/// [`crate::runtime::ExpressionFrame`], and the plugin, `bake` and the
/// evaluation read it from there or call this.
pub fn rms_dbfs(x: &[f32]) -> f32 {
    if x.is_empty() {
        return f32::NEG_INFINITY;
    }
    let ms = x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len() as f64;
    if ms <= 0.0 {
        f32::NEG_INFINITY
    } else {
        (10.0 * ms.log10()) as f32
    }
}

/// Errors raised while decoding or conditioning audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file could not be opened or read (missing, permissions, I/O failure).
    #[error("cannot read audio file `{}`: {source}", .path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was opened but is not decodable audio: unknown or corrupt
    /// container, unsupported codec, truncated data, no audio track.
    #[error("cannot decode audio file `{}`: {reason}", .path.display())]
    Decode {
        /// The file that was being decoded.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// The file decoded correctly but holds zero audio frames.
    #[error("audio file `{}` contains no audio samples", .path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The sample rate is outside the supported range.
    #[error(
        "unsupported sample rate {rate} Hz: supported rates are {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz; \
         resample the audio (e.g. to 16000 Hz) first"
    )]
    UnsupportedSampleRate {
        /// The rejected sample rate, in Hz.
        rate: u32,
    },
    /// The channel count is outside the supported range.
    #[error(
        "unsupported channel count {channels}: supported are 1..={MAX_CHANNELS} interleaved channels"
    )]
    UnsupportedChannels {
        /// The rejected number of channels.
        channels: u16,
    },
    /// The resampler could not be constructed or failed while running.
    #[error("resampler error: {0}")]
    Resampler(String),
}

/// Sample rate and channel count of an interleaved PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Frames per second, in Hz.
    pub sample_rate: u32,
    /// Number of interleaved channels per frame.
    pub channels: u16,
}

impl AudioFormat {
    /// The model's own format: 16 kHz mono.
    pub const MODEL: AudioFormat = AudioFormat {
        sample_rate: MODEL_SAMPLE_RATE,
        channels: 1,
    };

    /// Creates a format from a sample rate (Hz) and a channel count.
    pub const fn new(sample_rate: u32, channels: u16) -> Self {
        Self {
            sample_rate,
            channels,
        }
    }

    /// Checks that the format is supported: `sample_rate` in
    /// [`MIN_SAMPLE_RATE`]`..=`[`MAX_SAMPLE_RATE`] Hz and `channels` in
    /// `1..=`[`MAX_CHANNELS`].
    ///
    /// # Errors
    /// [`AudioError::UnsupportedSampleRate`] or [`AudioError::UnsupportedChannels`].
    pub fn validate(&self) -> Result<(), AudioError> {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(AudioError::UnsupportedSampleRate {
                rate: self.sample_rate,
            });
        }
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return Err(AudioError::UnsupportedChannels {
                channels: self.channels,
            });
        }
        Ok(())
    }

    /// Length on the 16 kHz model clock, in (fractional) 16 kHz samples, of
    /// `frames` frames at this rate: `frames · 16000 / sample_rate`. The one
    /// conversion from a source's clock to the model's: the plugin's voice
    /// sources position their audio and playheads with it.
    pub fn to_16k(&self, frames: f64) -> f64 {
        frames * MODEL_SAMPLE_RATE as f64 / self.sample_rate as f64
    }

    /// Number of 16 kHz output samples that `input_frames` frames at this rate
    /// convert to: `round(input_frames * 16000 / sample_rate)` (0 for a zero rate).
    pub fn output_len_16k(&self, input_frames: u64) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        let rate = u128::from(self.sample_rate);
        let n = u128::from(input_frames) * u128::from(MODEL_SAMPLE_RATE);
        u64::try_from((n + rate / 2) / rate).unwrap_or(u64::MAX)
    }
}

/// Sinc length, in samples of the lower of the two rates, used when
/// downsampling (256 taps at the 16 kHz output put the anti-alias cutoff at
/// ~7.6 kHz with a Blackman–Harris² window).
const DOWNSAMPLE_SINC_LEN_OUT: f64 = 256.0;

/// Sinc length, in input samples, used when upsampling (8–16 kHz input has
/// nothing above its own Nyquist frequency, so a shorter filter suffices).
const UPSAMPLE_SINC_LEN: usize = 128;

/// How many sinc lengths (in steps of 8 taps) are tried to make the
/// resampler's group delay land on a whole number of output samples.
const SINC_LEN_SEARCH_STEPS: usize = 16;

/// The resampling half of an [`AudioConditioner`] (absent at 16 kHz).
#[derive(Debug)]
struct StreamResampler {
    /// rubato's asynchronous sinc resampler, mono, fixed input chunk.
    inner: Async<f32>,
    /// Input chunk being filled (length = chunk size in frames).
    chunk: Vec<f32>,
    /// How many frames of `chunk` hold data.
    fill: usize,
    /// Output scratch (length = `output_frames_max`).
    scratch: Vec<f32>,
    /// Output samples to drop at stream start (the resampler's delay).
    delay: usize,
    /// Delay samples still to drop in the current stream.
    skip: usize,
}

impl StreamResampler {
    fn new(rate: u32) -> Result<Self, AudioError> {
        let ratio = f64::from(MODEL_SAMPLE_RATE) / f64::from(rate);
        let window = WindowFunction::BlackmanHarris2;
        let (base_len, cutoff_len) = if ratio < 1.0 {
            let len = (DOWNSAMPLE_SINC_LEN_OUT / ratio).ceil() as usize;
            (len, DOWNSAMPLE_SINC_LEN_OUT as usize)
        } else {
            (UPSAMPLE_SINC_LEN, UPSAMPLE_SINC_LEN)
        };
        // rubato rounds the sinc length up to a multiple of 8. Its first output
        // sample lies one output period after the start of the filter, so the
        // signal comes out delayed by `sinc_len * ratio / 2 - 1` output samples
        // (measured with impulses at every supported rate; rubato's own
        // `output_delay()` truncates this and is off by one). Pick, among a few
        // lengths, the one whose delay is closest to a whole number of output
        // samples, so that dropping that many samples compensates it exactly
        // (the residual is at most ~0.05 output samples at 11.025 kHz).
        let base_len = base_len.next_multiple_of(8);
        let sinc_len = (0..SINC_LEN_SEARCH_STEPS)
            .map(|k| base_len + 8 * k)
            .min_by(|&a, &b| {
                let fa = frac_dist(a as f64 * ratio / 2.0);
                let fb = frac_dist(b as f64 * ratio / 2.0);
                fa.total_cmp(&fb)
            })
            .unwrap_or(base_len);
        let delay = ((sinc_len as f64 * ratio / 2.0).round() as usize).saturating_sub(1);
        // The cutoff is chosen for the filter length measured at the lower
        // rate; rubato scales it by `ratio` when downsampling.
        let params = SincInterpolationParameters::new(sinc_len, window)
            .f_cutoff(calculate_cutoff::<f32>(cutoff_len, window))
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Cubic);
        let chunk_frames = (rate / (1000 / CHUNK_MS)).max(1) as usize;
        let inner = Async::<f32>::new_sinc(ratio, 1.0, &params, chunk_frames, 1, FixedAsync::Input)
            .map_err(|e| AudioError::Resampler(e.to_string()))?;
        let scratch = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            inner,
            chunk: vec![0.0; chunk_frames],
            fill: 0,
            scratch,
            delay,
            skip: delay,
        })
    }

    /// Resamples the current chunk (`partial_len` frames of it if given, the
    /// rest read as silence), drops pending delay samples and appends at most
    /// `limit - *emitted` samples to `out`. Returns how many samples the
    /// resampler produced (before dropping).
    fn run(
        &mut self,
        partial_len: Option<usize>,
        out: &mut Vec<f32>,
        emitted: &mut u64,
        limit: u64,
    ) -> usize {
        let in_frames = self.chunk.len();
        let out_frames = self.scratch.len();
        let produced = match (
            InterleavedSlice::new(&self.chunk[..], 1, in_frames),
            InterleavedSlice::new_mut(&mut self.scratch[..], 1, out_frames),
        ) {
            (Ok(input), Ok(mut output)) => {
                let indexing = partial_len.map(|n| Indexing::new().partial_len(n));
                self.inner
                    .process_into_buffer(&input, &mut output, indexing.as_ref())
                    .map(|(_, n)| n)
                    .ok()
            }
            _ => None,
        };
        // Buffers are sized from the resampler's own reports, so an error is
        // not expected; should one occur, emit silence of the expected length
        // so that timing is preserved, rather than panicking.
        let n = produced.unwrap_or_else(|| {
            let n = self.inner.output_frames_next().min(out_frames);
            self.scratch[..n].fill(0.0);
            n
        });
        self.fill = 0;
        let dropped = self.skip.min(n);
        self.skip -= dropped;
        let ready = &self.scratch[dropped..n];
        let room = usize::try_from(limit.saturating_sub(*emitted)).unwrap_or(usize::MAX);
        let take = ready.len().min(room);
        // The band-limited filter can overshoot on clipped input (Gibbs);
        // clamp again so the output stays within [-1, 1].
        out.extend(ready[..take].iter().map(|v| v.clamp(-1.0, 1.0)));
        *emitted += take as u64;
        n
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.chunk.fill(0.0);
        self.fill = 0;
        self.skip = self.delay;
    }
}

/// Distance of `x` to the nearest integer.
fn frac_dist(x: f64) -> f64 {
    (x - x.round()).abs()
}

/// Streaming converter from interleaved PCM at any supported format to
/// 16 kHz mono `f32` in `[-1, 1]`.
///
/// Per input frame: non-finite samples become 0 (and are counted), samples
/// are clamped to `[-1, 1]`, channels are averaged. The mono signal is then
/// resampled to 16 kHz with rubato's asynchronous sinc resampler
/// (Blackman–Harris² windowed sinc, cubic interpolation between 256×
/// oversampled filter phases; filter length 256 taps at 16 kHz when
/// downsampling, 128 input taps when upsampling), processed in fixed
/// [`CHUNK_MS`] ms input chunks. At exactly 16 kHz no resampler is used.
///
/// The resampled output is clamped to `[-1, 1]` once more, since the
/// band-limited filter may overshoot slightly on clipped input.
///
/// Timing: the resampler's group delay is removed by dropping its first
/// samples, so output sample `n` corresponds to input time `n / 16000` s.
/// Latency is therefore the chunk length (≤ 10 ms) plus the filter delay
/// (~8 ms). Output depends only on the input samples, not on how they were
/// split into `push_*` calls; a partial multichannel frame at the end of a
/// call is kept until the rest of the frame arrives.
///
/// After [`finish`](Self::finish) the total output of a stream is
/// `round(input_frames * 16000 / sample_rate)` samples.
#[derive(Debug)]
pub struct AudioConditioner {
    format: AudioFormat,
    channels: usize,
    inv_channels: f32,
    /// Sanitised samples of an incomplete frame.
    partial: Vec<f32>,
    nonfinite: u64,
    input_frames: u64,
    /// Frames of the current stream (since the last `finish`/`reset`).
    stream_frames: u64,
    /// Output samples of the current stream.
    stream_output: u64,
    resampler: Option<StreamResampler>,
}

impl AudioConditioner {
    /// Creates a conditioner for interleaved input in `format`.
    ///
    /// # Errors
    /// [`AudioError::UnsupportedSampleRate`] / [`AudioError::UnsupportedChannels`]
    /// if `format` fails [`AudioFormat::validate`]; [`AudioError::Resampler`] if
    /// rubato rejects the configuration.
    pub fn new(format: AudioFormat) -> Result<Self, AudioError> {
        format.validate()?;
        let resampler = if format.sample_rate == MODEL_SAMPLE_RATE {
            None
        } else {
            Some(StreamResampler::new(format.sample_rate)?)
        };
        let channels = usize::from(format.channels);
        Ok(Self {
            format,
            channels,
            inv_channels: 1.0 / f32::from(format.channels),
            partial: Vec::with_capacity(channels),
            nonfinite: 0,
            input_frames: 0,
            stream_frames: 0,
            stream_output: 0,
            resampler,
        })
    }

    /// The input format this conditioner was created for.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Number of non-finite input samples (NaN, ±∞) replaced by zero since
    /// creation or the last [`reset`](Self::reset).
    pub fn nonfinite_count(&self) -> u64 {
        self.nonfinite
    }

    /// Number of complete input frames received since creation or the last
    /// [`reset`](Self::reset) (a frame is one sample of every channel).
    pub fn input_frames(&self) -> u64 {
        self.input_frames
    }

    /// The resampler's delay that is compensated, in 16 kHz output samples
    /// (0 at 16 kHz input).
    pub fn compensated_delay(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.delay)
    }

    /// Pushes interleaved `f32` samples (nominal range `[-1, 1]`) of any
    /// length and appends the 16 kHz mono output that became available to
    /// `out`. Non-finite samples are replaced by 0 and counted; values are
    /// clamped to `[-1, 1]`.
    pub fn push_f32(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        self.push_with(interleaved, |s| s, out);
    }

    /// Pushes interleaved signed 16-bit samples (scaled by `1 / 32768`) of
    /// any length and appends the 16 kHz mono output to `out`.
    pub fn push_i16(&mut self, interleaved: &[i16], out: &mut Vec<f32>) {
        self.push_with(interleaved, |s| f32::from(s) / 32768.0, out);
    }

    /// Ends the stream: resamples what is buffered, flushes the resampler's
    /// tail and appends it to `out`, so that the stream's total output is
    /// `round(frames * 16000 / sample_rate)` samples. An incomplete trailing
    /// frame is discarded. Afterwards the conditioner is ready for a new
    /// stream; [`input_frames`](Self::input_frames) and
    /// [`nonfinite_count`](Self::nonfinite_count) keep counting until
    /// [`reset`](Self::reset).
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let target = self.format.output_len_16k(self.stream_frames);
        if let Some(r) = self.resampler.as_mut() {
            if self.stream_frames > 0 {
                let mut partial = Some(r.fill);
                let mut idle_calls = 0;
                while self.stream_output < target && idle_calls < 4 {
                    let produced = r.run(
                        partial.take().or(Some(0)),
                        out,
                        &mut self.stream_output,
                        target,
                    );
                    idle_calls = if produced == 0 { idle_calls + 1 } else { 0 };
                }
            }
            r.reset();
        }
        self.partial.clear();
        self.stream_frames = 0;
        self.stream_output = 0;
    }

    /// Discards all buffered audio and resampler state and zeroes the
    /// counters, as if newly created.
    pub fn reset(&mut self) {
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        self.partial.clear();
        self.nonfinite = 0;
        self.input_frames = 0;
        self.stream_frames = 0;
        self.stream_output = 0;
    }

    fn push_with<T: Copy>(
        &mut self,
        interleaved: &[T],
        to_f32: impl Fn(T) -> f32,
        out: &mut Vec<f32>,
    ) {
        let mut rest = interleaved;
        let mut nonfinite = 0u64;
        if !self.partial.is_empty() {
            let take = (self.channels - self.partial.len()).min(rest.len());
            for &s in &rest[..take] {
                self.partial.push(sanitize(to_f32(s), &mut nonfinite));
            }
            rest = &rest[take..];
            if self.partial.len() == self.channels {
                let mut acc = 0.0f32;
                for &v in &self.partial {
                    acc += v;
                }
                self.partial.clear();
                self.emit(acc * self.inv_channels, out);
            }
        }
        let mut frames = rest.chunks_exact(self.channels);
        for frame in &mut frames {
            let mut acc = 0.0f32;
            for &s in frame {
                acc += sanitize(to_f32(s), &mut nonfinite);
            }
            self.emit(acc * self.inv_channels, out);
        }
        for &s in frames.remainder() {
            self.partial.push(sanitize(to_f32(s), &mut nonfinite));
        }
        self.nonfinite += nonfinite;
    }

    /// Feeds one mono frame.
    #[inline]
    fn emit(&mut self, mono: f32, out: &mut Vec<f32>) {
        self.input_frames += 1;
        self.stream_frames += 1;
        match self.resampler.as_mut() {
            None => {
                out.push(mono);
                self.stream_output += 1;
            }
            Some(r) => {
                r.chunk[r.fill] = mono;
                r.fill += 1;
                if r.fill == r.chunk.len() {
                    r.run(None, out, &mut self.stream_output, u64::MAX);
                }
            }
        }
    }
}

/// Replaces a non-finite value by 0 (counting it) and clamps to `[-1, 1]`.
#[inline]
fn sanitize(x: f32, nonfinite: &mut u64) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        *nonfinite += 1;
        0.0
    }
}

/// A decoded audio file: interleaved `f32` samples and their format.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Interleaved samples, `frames * channels` values, nominally in `[-1, 1]`
    /// (integer formats are scaled by symphonia's sample conversion).
    pub samples: Vec<f32>,
    /// Sample rate (Hz) and channel count of `samples`.
    pub format: AudioFormat,
}

impl DecodedAudio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples
            .len()
            .checked_div(usize::from(self.format.channels))
            .unwrap_or(0)
    }

    /// Duration in seconds (`frames / sample_rate`; 0 for a zero rate).
    pub fn duration_secs(&self) -> f64 {
        if self.format.sample_rate == 0 {
            0.0
        } else {
            self.frames() as f64 / f64::from(self.format.sample_rate)
        }
    }
}

/// What [`load_mono_16k`] did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConditionReport {
    /// Non-finite samples (NaN, ±∞) that were replaced by zero.
    pub nonfinite_samples: u64,
    /// Format of the file before conditioning.
    pub source_format: AudioFormat,
    /// Duration of the file in seconds (`frames / source sample rate`).
    pub duration_secs: f64,
}

/// Decodes the first audio track of a file to interleaved `f32`.
///
/// Uses symphonia (WAV, FLAC, AIFF, MP3, Ogg/Vorbis and the other formats of
/// its `all-formats`/`all-codecs` features); the container is detected from
/// the file content, with the extension as a hint. The sample rate and
/// channel count are returned as found; they are not checked against the
/// supported ranges (see [`AudioFormat::validate`]).
///
/// # Errors
/// * [`AudioError::Io`] — the file cannot be opened (missing, permissions).
/// * [`AudioError::Decode`] — unknown/corrupt container, no audio track,
///   unsupported codec, a read error or truncation mid-stream, or the format
///   changing mid-stream. The message names the file and the cause.
/// * [`AudioError::Empty`] — the file decodes to zero frames.
pub fn read_audio_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    // symphonia can panic on crafted input (`tests/fuzz.rs` found a WAV that
    // does, in symphonia-format-riff 0.6.1): a malformed file must be an
    // error, never a crash of the game.
    match std::panic::catch_unwind(|| read_audio_file_inner(path)) {
        Ok(r) => r,
        Err(_) => Err(AudioError::Decode {
            path: path.to_path_buf(),
            reason: "the decoder failed on malformed data (it panicked)".into(),
        }),
    }
}

/// Decodes an audio file held in memory (the bytes of a WAV, FLAC, MP3,
/// Ogg/Vorbis, … file, e.g. a Bevy `AudioSource`) to interleaved `f32`, as
/// [`read_audio_file`] does for a file on disk. `name` only labels errors
/// (and its extension, if any, is a format hint).
///
/// # Errors
/// As [`read_audio_file`], with `name` in place of the path (never
/// [`AudioError::Io`]).
pub fn decode_audio_bytes(
    bytes: impl AsRef<[u8]> + Send + Sync + 'static,
    name: &str,
) -> Result<DecodedAudio, AudioError> {
    let path = Path::new(name);
    let bytes: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> = std::sync::Arc::new(bytes);
    let source = Box::new(std::io::Cursor::new(SharedBytes(bytes.clone())));
    let decode = || {
        or_many_channel_wav(decode_media(source, path), path, || {
            hound::WavReader::new(std::io::Cursor::new((*bytes).as_ref()))
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(r) => r,
        Err(_) => Err(AudioError::Decode {
            path: path.to_path_buf(),
            reason: "the decoder failed on malformed data (it panicked)".into(),
        }),
    }
}

/// Bytes shared between symphonia's reader and the WAV fallback.
struct SharedBytes(std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// symphonia's WAV reader maps channels onto WAVE's 18 speaker positions
/// and refuses more (a 24- or 32-channel microphone array): when `decoded`
/// failed and `path` names a WAV (`.wav` / `.wave`), the file `open` gives
/// is read with hound, which takes PCM and float WAV of any channel count.
/// symphonia's error stands otherwise.
fn or_many_channel_wav<R: std::io::Read>(
    decoded: Result<DecodedAudio, AudioError>,
    path: &Path,
    open: impl FnOnce() -> hound::Result<hound::WavReader<R>>,
) -> Result<DecodedAudio, AudioError> {
    decoded.or_else(|e| {
        let wav = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("wav") || x.eq_ignore_ascii_case("wave"));
        if !wav {
            return Err(e);
        }
        open().ok().and_then(decode_wav_with_hound).ok_or(e)
    })
}

fn read_audio_file_inner(path: &Path) -> Result<DecodedAudio, AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    or_many_channel_wav(decode_media(Box::new(file), path), path, || {
        hound::WavReader::open(path)
    })
}

/// A whole WAV file of more than 18 channels through hound (integer PCM
/// scaled to [-1, 1), or f32); `None` for fewer channels (symphonia's error
/// stands), no samples, or any error.
fn decode_wav_with_hound<R: std::io::Read>(
    mut reader: hound::WavReader<R>,
) -> Option<DecodedAudio> {
    let spec = reader.spec();
    if spec.channels <= 18 || reader.len() == 0 {
        return None;
    }
    let format = AudioFormat::new(spec.sample_rate, spec.channels);
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>().ok()?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|v| v.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .ok()?
        }
    };
    Some(DecodedAudio { samples, format })
}

/// Decodes the first audio track of `source`; `path` labels errors and its
/// extension is a format hint.
fn decode_media(
    source: Box<dyn symphonia::core::io::MediaSource>,
    path: &Path,
) -> Result<DecodedAudio, AudioError> {
    let decode_err = |reason: String| AudioError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                decode_err(
                    "not a recognised audio file (unknown format or truncated header)".into(),
                )
            }
            e => decode_err(format!("not a recognised audio file: {e}")),
        })?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| decode_err("the file has no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| decode_err("the audio track has no codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| decode_err(format!("unsupported audio codec: {e}")))?;

    let mut format: Option<AudioFormat> = params.sample_rate.and_then(|rate| {
        let channels = params.channels.as_ref()?.count();
        Some(AudioFormat::new(rate, u16::try_from(channels).ok()?))
    });
    let mut samples: Vec<f32> = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    let mut decoded_packets = 0usize;
    let mut skipped_packets = 0usize;
    let mut first_skip_reason: Option<String> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(decode_err(format!(
                    "file is truncated: unexpected end of data after {} decoded frames",
                    frames_of(&samples, format)
                )));
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(decode_err(format!("error while reading packets: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = buf.spec();
                let channels = u16::try_from(spec.channels().count()).map_err(|_| {
                    decode_err(format!("too many channels ({})", spec.channels().count()))
                })?;
                let this = AudioFormat::new(spec.rate(), channels);
                match format {
                    Some(f) if decoded_packets > 0 && f != this => {
                        return Err(decode_err(format!(
                            "the audio format changes mid-stream ({} Hz x {} ch -> {} Hz x {} ch)",
                            f.sample_rate, f.channels, this.sample_rate, this.channels
                        )));
                    }
                    _ => format = Some(this),
                }
                buf.copy_to_vec_interleaved(&mut scratch);
                samples.extend_from_slice(&scratch);
                decoded_packets += 1;
            }
            Err(SymphoniaError::DecodeError(msg)) => {
                // A corrupt packet inside an otherwise valid stream (common in
                // MP3); skip it, as players do.
                skipped_packets += 1;
                first_skip_reason.get_or_insert_with(|| msg.to_string());
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(decode_err(format!(
                    "file is truncated: packet ends early after {} decoded frames",
                    frames_of(&samples, format)
                )));
            }
            Err(e) => return Err(decode_err(format!("decoder error: {e}"))),
        }
    }
    if decoded_packets == 0 && skipped_packets > 0 {
        return Err(decode_err(format!(
            "no packet could be decoded ({skipped_packets} corrupt packets; first: {})",
            first_skip_reason.unwrap_or_default()
        )));
    }
    let Some(format) = format else {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    };
    if format.sample_rate == 0 || format.channels == 0 {
        return Err(decode_err(format!(
            "invalid stream parameters ({} Hz, {} channels)",
            format.sample_rate, format.channels
        )));
    }
    // Drop a dangling partial frame (cannot happen with well-formed decoders).
    let whole = samples.len() - samples.len() % usize::from(format.channels);
    samples.truncate(whole);
    if samples.is_empty() {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(DecodedAudio { samples, format })
}

fn frames_of(samples: &[f32], format: Option<AudioFormat>) -> usize {
    let ch = format.map_or(1, |f| usize::from(f.channels.max(1)));
    samples.len() / ch
}

/// Decodes a file and converts it to 16 kHz mono `f32` with an
/// [`AudioConditioner`] (downmix, sanitise, resample, flush).
///
/// Returns the samples (`round(frames * 16000 / rate)` of them) and a
/// [`ConditionReport`].
///
/// # Errors
/// Everything [`read_audio_file`] returns, plus
/// [`AudioError::UnsupportedSampleRate`] / [`AudioError::UnsupportedChannels`]
/// for a file outside 8–96 kHz or 1–32 channels.
pub fn load_mono_16k(path: &Path) -> Result<(Vec<f32>, ConditionReport), AudioError> {
    let decoded = read_audio_file(path)?;
    let mut conditioner = AudioConditioner::new(decoded.format)?;
    let mut out =
        Vec::with_capacity(decoded.format.output_len_16k(decoded.frames() as u64) as usize + 1);
    conditioner.push_f32(&decoded.samples, &mut out);
    let nonfinite_samples = conditioner.nonfinite_count();
    conditioner.finish(&mut out);
    Ok((
        out,
        ConditionReport {
            nonfinite_samples,
            source_format: decoded.format,
            duration_secs: decoded.duration_secs(),
        },
    ))
}
