//! Streaming runtime: [`Session`] (one speaker's stream: front-end + model
//! state + audio clock), [`step_sessions`] (one batched step over every due
//! session, allocation-free with reused [`StepBuffers`]; [`step_batch`] is
//! the allocating convenience form), [`run_to_end`] (a whole buffer, for
//! offline baking) and the [`Worker`] thread that owns the model and all
//! sessions for real-time use, with lock-free counters ([`WorkerStats`],
//! including its busy-time fraction) and per-session latest-wins control
//! slots ([`SessionControls`]).
//!
//! Time: a frame with index `f` covers 16 kHz samples
//! `[f * spf, (f + 1) * spf)` where `spf = 16000 / fps` (320 at 50 fps);
//! [`ExpressionFrame::sample`] carries that stamp. With look-ahead `L` a frame
//! is available once audio up to the end of frame `f + L` was pushed, so the
//! algorithmic latency is `(L + 1) / fps` seconds.

mod session;
mod timeline;
mod worker;

pub use session::{
    EMOTION_SLEW_PER_FRAME, ExpressionFrame, Pcm, Session, SessionError, StepBuffers, run_to_end,
    step_batch, step_sessions,
};
pub use timeline::{FramePosition, locate};
pub use worker::{
    SessionControls, SessionId, Worker, WorkerCommand, WorkerConfig, WorkerError, WorkerEvent,
    WorkerFailure, WorkerStats,
};
