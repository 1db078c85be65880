//! Voice sources: where a talking head's audio comes from.
//!
//! Every source follows one contract, written here once. Each frame, in
//! [`VoiceSourceSystems`] (inside
//! [`TalkingHeadSystems::IngestAudio`](super::TalkingHeadSystems)), a source
//! takes a [`VoiceFeed`] for each head it drives and
//!
//! 1. hands it new audio with [`VoiceFeed::push`]: interleaved PCM in the
//!    source's own format plus the chunk's start on the source clock in
//!    16 kHz samples; the feed returns the position after the chunk
//!    ([`AudioFormat::to_16k`](crate::audio::AudioFormat::to_16k), the one
//!    clock conversion), opens or reopens the head's worker session as
//!    needed and forwards the audio;
//! 2. reports what the listener hears now with [`VoiceFeed::set_playhead`]
//!    (16 kHz samples on the same clock; `None` while nothing plays).
//!
//! A head that no source reported this frame rests (its voice component
//! was removed, or it never had one), so a new source needs no change
//! anywhere else. Each source is its own small plugin behind its feature,
//! added by [`TalkingHeadPlugin`](super::TalkingHeadPlugin):
//!
//! | source | component | feature |
//! |---|---|---|
//! | pushed PCM (network voice, TTS) | [`VoiceStream`] | always |
//! | a clip played with Bevy's audio (`AudioPlayer`) | `BevyAudioVoice` | `bevy_audio` |
//! | a clip played with kira | `KiraVoice` | `kira` |
//! | a microphone through cpal | `MicrophoneVoice` → `MicrophoneCapture` | `mic` |

#[cfg(feature = "bevy_audio")]
pub(crate) mod bevy_audio;
#[cfg(any(feature = "kira", feature = "bevy_audio"))]
pub(crate) mod clip;
#[cfg(feature = "kira")]
pub(crate) mod kira;
#[cfg(feature = "mic")]
pub(crate) mod mic;
pub(crate) mod stream;

use bevy::prelude::*;

use super::components::{TalkingHead, TalkingHeadState};
use super::runtime::TalkingHeadRuntime;
use crate::audio::AudioFormat;

pub use stream::{STALL_SECS, VOICE_STREAM_CAPACITY, VoiceStream, VoiceStreamError};

/// The systems of every voice source: after the runtime's upkeep, before
/// heads that no source reported are rested (all inside
/// [`TalkingHeadSystems::IngestAudio`](super::TalkingHeadSystems)).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoiceSourceSystems;

/// One source's handle on one head for this frame (see the module docs).
pub(crate) struct VoiceFeed<'a> {
    runtime: &'a mut TalkingHeadRuntime,
    entity: Entity,
    seed: u64,
    state: &'a mut TalkingHeadState,
}

impl<'a> VoiceFeed<'a> {
    pub(crate) fn new(
        runtime: &'a mut TalkingHeadRuntime,
        entity: Entity,
        head: &TalkingHead,
        state: &'a mut TalkingHeadState,
    ) -> Self {
        Self {
            runtime,
            entity,
            seed: head.effective_seed(entity),
            state,
        }
    }

    /// Sends `samples` (interleaved, `format`) whose first frame is at
    /// `start_16k` on the source clock (16 kHz samples); returns the
    /// position just after them. Opens a session first when there is none
    /// (or the format changed, or the worker restarted); forwards nothing
    /// until the runtime is ready (the position still advances).
    pub(crate) fn push(&mut self, format: AudioFormat, samples: Vec<f32>, start_16k: f64) -> f64 {
        let frames = samples.len() / format.channels.max(1) as usize;
        self.runtime.feed(
            self.entity,
            self.state,
            format,
            samples,
            start_16k,
            self.seed,
        );
        start_16k + format.to_16k(frames as f64)
    }

    /// What the listener hears now, in 16 kHz samples on the source clock;
    /// `None` while nothing plays (the face eases to rest).
    pub(crate) fn set_playhead(&mut self, playhead_16k: Option<f64>) {
        self.state.playback.playhead_16k = playhead_16k;
        self.state.playback.source_reported = true;
    }

    /// The model's algorithmic latency in 16 kHz samples: its look-ahead
    /// plus the frame being assembled (`(lookahead_frames + 1) ×
    /// samples_per_frame`; 60 ms for the shipped model), 0 before it loads.
    #[cfg_attr(not(feature = "mic"), allow(dead_code))]
    pub(crate) fn model_latency_16k(&self) -> f64 {
        self.runtime.model().map_or(0.0, |m| {
            let c = m.config();
            ((c.lookahead_frames + 1) * c.samples_per_frame()) as f64
        })
    }

    /// Whether the model is loaded and the worker runs.
    #[cfg_attr(not(any(feature = "kira", feature = "bevy_audio")), allow(dead_code))]
    pub(crate) fn is_ready(&self) -> bool {
        self.runtime.is_ready()
    }

    /// Whether the head has a live worker session.
    #[cfg_attr(not(any(feature = "kira", feature = "bevy_audio")), allow(dead_code))]
    pub(crate) fn has_session(&self) -> bool {
        self.state.has_session()
    }

    /// Ends the session (a seek or loop starts a new one with the next
    /// [`push`](Self::push)).
    #[cfg_attr(not(any(feature = "kira", feature = "bevy_audio")), allow(dead_code))]
    pub(crate) fn close_session(&mut self) {
        self.runtime.close_session(self.state);
    }

    /// Tells the worker the stream ended (flushes the look-ahead).
    #[cfg_attr(not(any(feature = "kira", feature = "bevy_audio")), allow(dead_code))]
    pub(crate) fn finish(&mut self) {
        self.runtime.finish(self.state);
    }
}

/// Heads that no source reported this frame rest; clears the reports for
/// the next frame.
pub(crate) fn rest_unreported(mut heads: Query<&mut TalkingHeadState>) {
    for mut s in &mut heads {
        if !s.playback.source_reported && s.playback.playhead_16k.is_some() {
            s.playback.playhead_16k = None;
        }
        if s.playback.source_reported {
            s.playback.source_reported = false;
        }
    }
}

/// The [`VoiceStream`] source: voice pushed by game code (part of
/// [`TalkingHeadPlugins`](crate::plugin::TalkingHeadPlugins)).
pub struct VoiceStreamPlugin;

impl Plugin for VoiceStreamPlugin {
    fn is_unique(&self) -> bool {
        false
    }

    fn build(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "build") {
            return;
        }
        app.add_systems(
            PreUpdate,
            stream::ingest_voice_streams.in_set(VoiceSourceSystems),
        );
    }
}
