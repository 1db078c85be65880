//! Streaming runtime: [`Session`] (one speaker's stream: front-end + model
//! state + audio clock), [`step_batch`] (one batched step over every due
//! session), [`run_to_end`] (a whole buffer, for offline baking) and the
//! [`Worker`] thread that owns the model and all sessions for real-time use.
//!
//! Time: a frame with index `f` covers 16 kHz samples
//! `[f * spf, (f + 1) * spf)` where `spf = 16000 / fps` (320 at 50 fps);
//! [`ExpressionFrame::sample`] carries that stamp. With look-ahead `L` a frame
//! is available once audio up to the end of frame `f + L` was pushed, so the
//! algorithmic latency is `(L + 1) / fps` seconds.

mod session;
mod worker;

pub use session::{ExpressionFrame, Pcm, Session, SessionError, run_to_end, step_batch};
pub use worker::{
    SessionId, Worker, WorkerCommand, WorkerConfig, WorkerError, WorkerEvent, WorkerStats,
};
