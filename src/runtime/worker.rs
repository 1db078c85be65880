//! The inference worker: one thread owns the model and every session, takes
//! audio and control messages over a bounded crossbeam channel and sends
//! stamped expression frames back. Sessions that are due are stepped as one
//! batch. A panic inside a step is caught: the sessions of that batch are
//! reset and told, and the worker keeps running.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use super::session::{ExpressionFrame, Pcm, Session, step_batch};
use crate::audio::AudioFormat;
use crate::model::{EMOTION_COUNT, Sampler, TalkingHeadModel};

/// Identifies one session (one speaker) of a worker. Chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// Messages to the worker.
#[derive(Debug)]
pub enum WorkerCommand {
    /// Starts a session for audio in `format`.
    AddSession {
        /// The new session's id (replaces an existing one with that id).
        id: SessionId,
        /// Format of the audio that will be pushed.
        format: AudioFormat,
        /// Emotion weights in [0, 1].
        emotion: [f32; EMOTION_COUNT],
        /// Style id.
        style: usize,
        /// Noise seed.
        seed: u64,
    },
    /// Ends a session and frees its state.
    RemoveSession(SessionId),
    /// Audio for a session, in the format it was added with (interleaved).
    Audio(SessionId, Vec<f32>),
    /// Audio for a session as 16-bit integers.
    AudioI16(SessionId, Vec<i16>),
    /// New emotion weights (latest value wins).
    SetEmotion(SessionId, [f32; EMOTION_COUNT]),
    /// New style id.
    SetStyle(SessionId, usize),
    /// Back to the start of a stream (the audio clock restarts at 0).
    Reset(SessionId),
    /// End of a stream: flush the look-ahead so the last frames come out.
    Finish(SessionId),
    /// Test hook: the next step that includes this session panics.
    #[doc(hidden)]
    InjectPanic(SessionId),
    /// Stops the worker thread.
    Shutdown,
}

/// Messages from the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    /// A new expression frame.
    Frame {
        /// Session.
        session: SessionId,
        /// The frame, stamped with its audio time.
        frame: ExpressionFrame,
    },
    /// A session was reset after an error or panic in its step (its audio
    /// clock continues: see [`Session::recover`]).
    SessionReset {
        /// Session.
        session: SessionId,
        /// What happened.
        reason: String,
    },
    /// A command could not be carried out (unknown session, bad format, ...).
    Error {
        /// Session concerned, if any.
        session: Option<SessionId>,
        /// What went wrong.
        message: String,
    },
    /// Non-finite samples were replaced by 0 in a session's input.
    NonFiniteSamples {
        /// Session.
        session: SessionId,
        /// Total replaced so far.
        total: u64,
    },
}

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Sampler used for every step.
    pub sampler: Option<Sampler>,
    /// Capacity of the command channel (messages).
    pub command_capacity: usize,
    /// Capacity of the event channel (messages). When full, frames are
    /// dropped (counted in [`WorkerStats::dropped_events`]) rather than
    /// stalling the worker.
    pub event_capacity: usize,
    /// Threads candle's matrix kernels may use inside the worker (1 is
    /// fastest for batch-1 steps).
    pub compute_threads: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            sampler: None,
            command_capacity: 1024,
            event_capacity: 8192,
            compute_threads: 1,
        }
    }
}

/// Counters published by the worker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    /// Batched steps run.
    pub steps: u64,
    /// Frames produced.
    pub frames: u64,
    /// Events dropped because the event channel was full.
    pub dropped_events: u64,
    /// Time spent in the last step, seconds.
    pub last_step_secs: f64,
    /// Sessions in the last step.
    pub last_batch: usize,
    /// Panics caught.
    pub panics: u64,
}

/// Handle to a running worker thread. Dropping it shuts the worker down.
pub struct Worker {
    commands: Sender<WorkerCommand>,
    events: Receiver<WorkerEvent>,
    stats: Arc<std::sync::Mutex<WorkerStats>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

/// Error when the worker thread is gone or its queue is full.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker thread stopped.
    #[error("the inference worker has stopped")]
    Disconnected,
    /// The command queue is full (the worker is behind).
    #[error("the inference worker's command queue is full")]
    Full,
    /// The thread could not be spawned.
    #[error("could not start the inference worker thread: {0}")]
    Spawn(std::io::Error),
}

impl Worker {
    /// Starts the worker thread with a loaded model.
    pub fn spawn(model: Arc<TalkingHeadModel>, config: WorkerConfig) -> Result<Self, WorkerError> {
        let (ctx, crx) = crossbeam_channel::bounded(config.command_capacity.max(1));
        let (etx, erx) = crossbeam_channel::bounded(config.event_capacity.max(1));
        let stats = Arc::new(std::sync::Mutex::new(WorkerStats::default()));
        let stats2 = stats.clone();
        let thread = std::thread::Builder::new()
            .name("talking-head-worker".into())
            .spawn(move || {
                let threads = config.compute_threads.max(1);
                let run = move || WorkerLoop::new(model, config, etx, stats2).run(crx);
                // candle's CPU matmul parallelises on the current rayon pool:
                // a private pool bounds the worker to `compute_threads` cores.
                match rayon_core::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                {
                    Ok(pool) => pool.install(run),
                    Err(_) => run(),
                }
            })
            .map_err(WorkerError::Spawn)?;
        Ok(Self {
            commands: ctx,
            events: erx,
            stats,
            thread: Some(thread),
        })
    }

    /// Sends a command without blocking.
    pub fn send(&self, cmd: WorkerCommand) -> Result<(), WorkerError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => WorkerError::Full,
            TrySendError::Disconnected(_) => WorkerError::Disconnected,
        })
    }

    /// Sends a command, waiting while the queue is full (for offline use).
    pub fn send_blocking(&self, cmd: WorkerCommand) -> Result<(), WorkerError> {
        self.commands
            .send(cmd)
            .map_err(|_| WorkerError::Disconnected)
    }

    /// The event receiver (drain it every frame).
    pub fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }

    /// A copy of the worker's counters.
    pub fn stats(&self) -> WorkerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self
            .commands
            .send_timeout(WorkerCommand::Shutdown, Duration::from_millis(100));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Entry {
    session: Session,
    inject_panic: bool,
    reported_nonfinite: u64,
}

struct WorkerLoop {
    model: Arc<TalkingHeadModel>,
    sampler: Sampler,
    sessions: BTreeMap<SessionId, Entry>,
    events: Sender<WorkerEvent>,
    stats: Arc<std::sync::Mutex<WorkerStats>>,
    local: WorkerStats,
}

impl WorkerLoop {
    fn new(
        model: Arc<TalkingHeadModel>,
        config: WorkerConfig,
        events: Sender<WorkerEvent>,
        stats: Arc<std::sync::Mutex<WorkerStats>>,
    ) -> Self {
        let sampler = config.sampler.unwrap_or_else(|| model.default_sampler());
        Self {
            model,
            sampler,
            sessions: BTreeMap::new(),
            events,
            stats,
            local: WorkerStats::default(),
        }
    }

    fn emit(&mut self, ev: WorkerEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(ev) {
            self.local.dropped_events += 1;
        }
    }

    fn error(&mut self, session: Option<SessionId>, message: String) {
        self.emit(WorkerEvent::Error { session, message });
    }

    fn run(mut self, commands: Receiver<WorkerCommand>) {
        loop {
            let due = self
                .sessions
                .values()
                .any(|e| e.session.pending_frames() > 0);
            // Wait for work only when nothing is due.
            let first = if due {
                match commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match commands.recv_timeout(Duration::from_millis(50)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            if let Some(c) = first {
                if !self.handle(c) {
                    return;
                }
                // Drain what else is queued (latest control value wins).
                loop {
                    match commands.try_recv() {
                        Ok(c) => {
                            if !self.handle(c) {
                                return;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            }
            self.step_due();
            if let Ok(mut s) = self.stats.lock() {
                *s = self.local.clone();
            }
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: WorkerCommand) -> bool {
        match cmd {
            WorkerCommand::Shutdown => return false,
            WorkerCommand::AddSession {
                id,
                format,
                emotion,
                style,
                seed,
            } => match Session::new(&self.model, format, seed) {
                Ok(mut s) => {
                    s.set_emotion(emotion);
                    s.set_style(style);
                    self.sessions.insert(
                        id,
                        Entry {
                            session: s,
                            inject_panic: false,
                            reported_nonfinite: 0,
                        },
                    );
                }
                Err(e) => self.error(Some(id), e.to_string()),
            },
            WorkerCommand::RemoveSession(id) => {
                self.sessions.remove(&id);
            }
            WorkerCommand::Audio(id, pcm) => self.push(id, Pcm::F32(&pcm)),
            WorkerCommand::AudioI16(id, pcm) => self.push(id, Pcm::I16(&pcm)),
            WorkerCommand::SetEmotion(id, e) => self.with(id, |en| en.session.set_emotion(e)),
            WorkerCommand::SetStyle(id, s) => self.with(id, |en| en.session.set_style(s)),
            WorkerCommand::Finish(id) => self.with(id, |en| en.session.finish()),
            WorkerCommand::InjectPanic(id) => self.with(id, |en| en.inject_panic = true),
            WorkerCommand::Reset(id) => {
                let model = self.model.clone();
                let mut err = None;
                self.with(id, |en| {
                    if let Err(e) = en.session.reset(&model) {
                        err = Some(e.to_string());
                    }
                });
                if let Some(e) = err {
                    self.error(Some(id), e);
                }
            }
        }
        true
    }

    fn with(&mut self, id: SessionId, f: impl FnOnce(&mut Entry)) {
        match self.sessions.get_mut(&id) {
            Some(e) => f(e),
            None => self.error(Some(id), format!("unknown session {id:?}")),
        }
    }

    fn push(&mut self, id: SessionId, pcm: Pcm<'_>) {
        let Some(e) = self.sessions.get_mut(&id) else {
            self.error(Some(id), format!("audio for unknown session {id:?}"));
            return;
        };
        if let Err(err) = e.session.push(pcm) {
            let msg = err.to_string();
            self.error(Some(id), msg);
            return;
        }
        let total = e.session.nonfinite_samples();
        if total > e.reported_nonfinite {
            e.reported_nonfinite = total;
            self.emit(WorkerEvent::NonFiniteSamples { session: id, total });
        }
    }

    fn step_due(&mut self) {
        let ids: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.pending_frames() > 0)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let start = Instant::now();
        let model = self.model.clone();
        let sampler = self.sampler;
        let result = {
            let mut entries: Vec<&mut Entry> = self
                .sessions
                .iter_mut()
                .filter(|(id, _)| ids.contains(id))
                .map(|(_, e)| e)
                .collect();
            catch_unwind(AssertUnwindSafe(|| {
                if let Some(e) = entries.iter_mut().find(|e| e.inject_panic) {
                    e.inject_panic = false;
                    panic!("injected panic (test hook)");
                }
                let mut sessions: Vec<&mut Session> =
                    entries.iter_mut().map(|e| &mut e.session).collect();
                step_batch(&model, &mut sessions, sampler)
            }))
        };
        self.local.steps += 1;
        self.local.last_batch = ids.len();
        self.local.last_step_secs = start.elapsed().as_secs_f64();
        match result {
            Ok(Ok(frames)) => {
                self.local.frames += frames.len() as u64;
                for (i, frame) in frames {
                    self.emit(WorkerEvent::Frame {
                        session: ids[i],
                        frame,
                    });
                }
            }
            Ok(Err(e)) => self.reset_all(&ids, format!("model error: {e}")),
            Err(panic) => {
                self.local.panics += 1;
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.reset_all(&ids, format!("panic in a batched step: {msg}"));
            }
        }
    }

    fn reset_all(&mut self, ids: &[SessionId], reason: String) {
        for id in ids {
            if let Some(e) = self.sessions.get_mut(id) {
                let _ = e.session.recover(&self.model);
            }
            self.emit(WorkerEvent::SessionReset {
                session: *id,
                reason: reason.clone(),
            });
        }
    }
}
