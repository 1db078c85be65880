//! Feeding a whole, known clip to a head: the audio is queued on the worker
//! a little ahead of the playback position and the face is sampled at that
//! position. Shared by the sources that play clips (kira, `bevy_audio`).

use std::sync::Arc;

use super::VoiceFeed;
use crate::audio::{AudioFormat, MODEL_SAMPLE_RATE};

/// Seconds of clip audio kept queued on the worker ahead of the playhead.
pub const FEED_AHEAD_SECS: f64 = 0.5;
/// A position jump larger than this (seconds) counts as a seek.
pub const SEEK_THRESHOLD_SECS: f64 = 0.25;

/// Where a clip's audio has been sent to the worker, for one head.
#[derive(Debug, Clone)]
pub(crate) struct ClipCursor {
    mono: Arc<[f32]>,
    sample_rate: u32,
    /// Clip frame the session's sample 0 is at.
    origin: usize,
    /// Next clip frame to send.
    fed: usize,
    last_pos: f64,
    finished: bool,
    /// Whether [`drive`](Self::drive) ran: the first drive starts a new
    /// session, so a clip that replaces another on the same head (a new
    /// `KiraVoice`) never lands in the old clip's session.
    driven: bool,
}

impl ClipCursor {
    /// A cursor over `mono` (one channel at `sample_rate` Hz), at its start.
    pub(crate) fn new(mono: Arc<[f32]>, sample_rate: u32) -> Self {
        Self {
            mono,
            sample_rate: sample_rate.max(1),
            origin: 0,
            fed: 0,
            last_pos: 0.0,
            finished: false,
            driven: false,
        }
    }

    /// Length of the clip, seconds.
    pub(crate) fn duration_secs(&self) -> f64 {
        self.mono.len() as f64 / self.sample_rate as f64
    }

    /// The last position given to [`drive`](Self::drive), seconds.
    pub(crate) fn last_pos(&self) -> f64 {
        self.last_pos
    }

    /// One frame: the listener hears clip second `pos` (`playing` false
    /// while paused or stopped). A backwards jump, a jump past what was
    /// sent, a missing session or the cursor's first drive starts a new
    /// session at `pos`; audio up to
    /// `pos + FEED_AHEAD_SECS` is sent; the head's playhead is set.
    pub(crate) fn drive(&mut self, feed: &mut VoiceFeed<'_>, pos: f64, playing: bool) {
        let rate = self.sample_rate as f64;
        let pos = pos.max(0.0);
        let pos_frame = (pos * rate) as usize;
        let expected_max = self.fed as f64 / rate + SEEK_THRESHOLD_SECS;
        let jumped =
            pos + 1e-6 < self.last_pos - 0.01 || pos > expected_max || pos_frame < self.origin;
        let first = !std::mem::replace(&mut self.driven, true);
        if first || jumped || (!feed.has_session() && !self.finished) {
            // Seek, loop or restart: a new session from the current position.
            feed.close_session();
            self.origin = pos_frame.min(self.mono.len());
            self.fed = self.origin;
            self.finished = false;
        }
        self.last_pos = pos;
        if feed.is_ready() && !self.finished {
            let want = ((pos + FEED_AHEAD_SECS) * rate) as usize;
            let end = want.min(self.mono.len());
            if end > self.fed {
                let chunk = self.mono[self.fed..end].to_vec();
                let format = AudioFormat {
                    sample_rate: self.sample_rate,
                    channels: 1,
                };
                feed.push(format, chunk, format.to_16k(self.fed as f64));
                self.fed = end;
            }
            if self.fed >= self.mono.len() && feed.has_session() {
                feed.finish();
                self.finished = true;
            }
        }
        feed.set_playhead(playing.then_some(pos * MODEL_SAMPLE_RATE as f64));
    }
}
