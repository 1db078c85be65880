//! Voice pushed by game code: network voice chat, TTS, decoded streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::VoiceFeed;
use crate::audio::{AudioFormat, MODEL_SAMPLE_RATE};
use crate::plugin::components::{TalkingHead, TalkingHeadState};
use crate::plugin::runtime::TalkingHeadRuntime;

/// Chunks a [`VoiceStream`] buffers between two frames before it drops
/// (about 5 s of 20 ms packets).
pub const VOICE_STREAM_CAPACITY: usize = 256;

/// Seconds without new audio (beyond the delay) after which a stream's face
/// rests.
pub const STALL_SECS: f64 = 0.5;

struct Chunk {
    format: AudioFormat,
    samples: Vec<f32>,
}

struct Shared {
    tx: Sender<Chunk>,
    rx: Receiver<Chunk>,
    dropped: AtomicU64,
    delay_us: AtomicU64,
}

/// Voice pushed by game code, typically a remote player's decoded network
/// voice. Cloneable handle: clone it into the network thread and
/// [`push`](Self::push) PCM as it arrives; put one clone on the
/// [`TalkingHead`](crate::plugin::TalkingHead) entity.
///
/// Sync: the face is sampled at the stream's *playback* position: the
/// audio received so far, played out in real time (a jitter buffer that
/// never runs ahead of the data), minus [`delay`](Self::delay) — set the
/// delay to your jitter buffer's latency so the face matches the audio the
/// listener hears.
///
/// One stream drives one head: clones share one queue, so two heads holding
/// clones of the same stream would split its chunks between them. Give each
/// head its own `VoiceStream` (push the same PCM into each to make two heads
/// say the same thing). The plugin keeps at most 2048 frames (about 41 s)
/// ahead of the playback position per head; audio pushed further ahead than
/// that is animated but its oldest frames are dropped, so push at about real
/// time (a network voice does).
#[derive(Component, Clone)]
pub struct VoiceStream {
    shared: Arc<Shared>,
    pub(crate) clock_16k: f64,
    pub(crate) received_16k: f64,
    pub(crate) started: bool,
    pub(crate) idle_secs: f64,
}

impl std::fmt::Debug for VoiceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceStream")
            .field("delay", &self.delay())
            .field("received_secs", &self.received_secs())
            .field("dropped_chunks", &self.dropped_chunks())
            .finish()
    }
}

impl Default for VoiceStream {
    fn default() -> Self {
        Self::new()
    }
}

/// Error from [`VoiceStream::push`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoiceStreamError {
    /// Sample rate or channel count outside what the audio front-end takes
    /// (8–96 kHz, 1–32 channels).
    #[error(
        "unsupported voice format: {sample_rate} Hz, {channels} channel(s) (8-96 kHz, 1-32 channels)"
    )]
    UnsupportedFormat {
        /// Rate given.
        sample_rate: u32,
        /// Channels given.
        channels: u16,
    },
    /// Interleaved data whose length is not a multiple of the channels.
    #[error("{len} interleaved samples are not a whole number of {channels}-channel frames")]
    RaggedFrames {
        /// Samples given.
        len: usize,
        /// Channels.
        channels: u16,
    },
    /// The stream's buffer is full (the app is not updating); the chunk
    /// was dropped.
    #[error("voice stream buffer full: chunk dropped")]
    Full,
}

impl VoiceStream {
    /// A stream with no delay.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(VOICE_STREAM_CAPACITY);
        Self {
            shared: Arc::new(Shared {
                tx,
                rx,
                dropped: AtomicU64::new(0),
                delay_us: AtomicU64::new(0),
            }),
            clock_16k: 0.0,
            received_16k: 0.0,
            started: false,
            idle_secs: 0.0,
        }
    }

    /// A stream whose face lags its received audio by `delay` (the
    /// listener's jitter-buffer latency).
    pub fn with_delay(delay: std::time::Duration) -> Self {
        let s = Self::new();
        s.set_delay(delay);
        s
    }

    /// Changes the delay (all clones share it).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.shared.delay_us.store(
            delay.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// The delay between received audio and what the listener hears.
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.shared.delay_us.load(Ordering::Relaxed))
    }

    /// Pushes mono samples (any rate 8–96 kHz; values nominally in
    /// `[-1, 1]`, NaN/Inf become 0 and are counted in
    /// [`TalkingHeadState::nonfinite_samples`]). Thread-safe, never blocks.
    ///
    /// # Errors
    /// [`VoiceStreamError::UnsupportedFormat`] for a bad rate;
    /// [`VoiceStreamError::Full`] when the app has not drained the stream
    /// for a long time (the chunk is dropped and counted).
    pub fn push(&self, samples: &[f32], sample_rate: u32) -> Result<(), VoiceStreamError> {
        self.push_interleaved(samples, sample_rate, 1)
    }

    /// Pushes interleaved samples with `channels` channels (downmixed).
    ///
    /// # Errors
    /// As [`push`](Self::push), plus [`VoiceStreamError::RaggedFrames`].
    pub fn push_interleaved(
        &self,
        samples: &[f32],
        sample_rate: u32,
        channels: u16,
    ) -> Result<(), VoiceStreamError> {
        let format = AudioFormat {
            sample_rate,
            channels,
        };
        if format.validate().is_err() {
            return Err(VoiceStreamError::UnsupportedFormat {
                sample_rate,
                channels,
            });
        }
        if !samples.len().is_multiple_of(channels as usize) {
            return Err(VoiceStreamError::RaggedFrames {
                len: samples.len(),
                channels,
            });
        }
        if samples.is_empty() {
            return Ok(());
        }
        match self.shared.tx.try_send(Chunk {
            format,
            samples: samples.to_vec(),
        }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Err(VoiceStreamError::Full)
            }
        }
    }

    /// Chunks dropped because the buffer was full.
    pub fn dropped_chunks(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Seconds of audio received by the app so far (this component's view).
    pub fn received_secs(&self) -> f64 {
        self.received_16k / MODEL_SAMPLE_RATE as f64
    }
}

/// Drains every [`VoiceStream`] into the worker and advances its playback
/// clock by real time.
pub(crate) fn ingest_voice_streams(
    time: Res<Time<Real>>,
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut heads: Query<(
        Entity,
        &TalkingHead,
        &mut VoiceStream,
        &mut TalkingHeadState,
    )>,
) {
    let dt = time.delta_secs_f64();
    for (entity, head, mut stream, mut state) in &mut heads {
        let stream = &mut *stream;
        let mut feed = VoiceFeed::new(&mut runtime, entity, head, &mut state);
        stream.idle_secs += dt;
        while let Ok(chunk) = stream.shared.rx.try_recv() {
            stream.idle_secs = 0.0;
            if !stream.started {
                stream.started = true;
                stream.clock_16k = 0.0;
            }
            stream.received_16k = feed.push(chunk.format, chunk.samples, stream.received_16k);
        }
        if stream.started {
            stream.clock_16k =
                (stream.clock_16k + dt * MODEL_SAMPLE_RATE as f64).min(stream.received_16k);
            let delay = stream.delay().as_secs_f64() * MODEL_SAMPLE_RATE as f64;
            let p = stream.clock_16k - delay;
            // A stream that stopped (the talker went quiet without sending
            // silence, or the connection dropped) lets the face rest.
            let stalled = stream.idle_secs > stream.delay().as_secs_f64() + STALL_SECS;
            feed.set_playhead((p >= 0.0 && !stalled).then_some(p));
        } else {
            feed.set_playhead(None);
        }
    }
}
