//! The inference worker: one thread owns the model and every session, takes
//! audio and control messages over a bounded crossbeam channel and sends
//! stamped expression frames back. Sessions that are due are stepped as one
//! batch. A panic inside a step is caught: the sessions of that batch are
//! reset and told, and the worker keeps running.
//!
//! [`Worker::inline`] runs the same loop on the caller's thread instead:
//! nothing happens until [`Worker::pump`], which handles every queued
//! command and steps until no session has a pending frame. Results are then
//! deterministic in the caller's own time (tests assert exact values
//! without sleeping); a game should use the thread.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use super::session::{ExpressionFrame, Pcm, Session, SessionError, StepBuffers, step_sessions};
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
    /// Attaches latest-wins control slots to a session: from then on the
    /// worker reads emotion and style from `controls` before each step,
    /// so the game sets them without a message per change
    /// ([`Worker::attach_controls`]).
    AttachControls(SessionId, Arc<SessionControls>),
    /// Replaces the model (hot reload). The new model must have the same
    /// [`ModelConfig`](crate::model::ModelConfig) as the old one (else the
    /// command is refused with [`WorkerFailure::ModelConfigMismatch`] and
    /// the old model stays): every session is kept, its model state
    /// restarts on the new weights and its audio clock continues
    /// ([`Session::recover`]).
    SwapModel(Arc<TalkingHeadModel>),
    /// Test hook (feature `test-hooks`): the next step that includes this
    /// session panics, so tests can prove the worker recovers.
    #[cfg(feature = "test-hooks")]
    InjectPanic(SessionId),
    /// Stops the worker thread.
    Shutdown,
}

/// Latest-wins control values of one session (emotion and style), shared
/// between the game thread and the worker outside the command queue: a
/// write is a few relaxed atomic stores and a version bump, and the worker
/// applies the newest values before the session's next step. A lobby of
/// 128 heads changing emotion every frame queues no messages.
#[derive(Debug, Default)]
pub struct SessionControls {
    version: AtomicU64,
    emotion: [AtomicU32; EMOTION_COUNT],
    style: AtomicU32,
}

impl SessionControls {
    /// Sets the emotion weights (each in [0, 1]; canonicalised by the
    /// session, see [`Session::set_emotion`]).
    pub fn set_emotion(&self, emotion: [f32; EMOTION_COUNT]) {
        for (a, v) in self.emotion.iter().zip(emotion) {
            a.store(v.to_bits(), Ordering::Relaxed);
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Sets the style id.
    pub fn set_style(&self, style: usize) {
        self.style
            .store(style.min(u32::MAX as usize) as u32, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current version (bumped by every write).
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn emotion(&self) -> [f32; EMOTION_COUNT] {
        std::array::from_fn(|i| f32::from_bits(self.emotion[i].load(Ordering::Relaxed)))
    }

    fn style(&self) -> usize {
        self.style.load(Ordering::Relaxed) as usize
    }
}

/// What went wrong in the worker: the payload of [`WorkerEvent::Error`]
/// and [`WorkerEvent::SessionReset`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum WorkerFailure {
    /// A command named a session the worker does not have.
    #[error("unknown session {0:?}")]
    UnknownSession(SessionId),
    /// Audio arrived for a session the worker does not have.
    #[error("audio for unknown session {0:?}")]
    AudioForUnknownSession(SessionId),
    /// A session could not be created, fed or reset (bad format, ...).
    #[error("{0}")]
    Session(Arc<SessionError>),
    /// A batched step returned an error (the batch's sessions were reset).
    #[error("model error: {0}")]
    Model(Arc<crate::model::ModelError>),
    /// A batched step panicked (the batch's sessions were reset).
    #[error("panic in a batched step: {0}")]
    Panic(String),
    /// [`WorkerCommand::SwapModel`] with a model of another configuration.
    #[error("the new model has another configuration; restart the worker to use it")]
    ModelConfigMismatch,
}

impl PartialEq for WorkerFailure {
    /// Same variant and same message.
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
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
        reason: WorkerFailure,
    },
    /// A command could not be carried out (unknown session, bad format, ...).
    Error {
        /// Session concerned, if any.
        session: Option<SessionId>,
        /// What went wrong.
        error: WorkerFailure,
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
    /// Run the worker on the caller's thread ([`Worker::inline`]) where the
    /// caller chooses between the two (the Bevy plugin): results become
    /// exact and immediate, at the cost of stepping on the caller's thread.
    /// For tests; default `false`.
    pub inline: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            sampler: None,
            command_capacity: 1024,
            event_capacity: 8192,
            compute_threads: 1,
            inline: false,
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
    /// Fraction of wall time the worker thread spent working (handling
    /// commands and stepping) rather than waiting, over the last
    /// measurement window of about half a second, in [0, 1]. This is the
    /// share of one core the worker uses.
    pub busy_fraction: f64,
    /// Sessions alive.
    pub sessions: usize,
}

/// The worker's counters as atomics: published without a lock and read by
/// [`Worker::stats`].
#[derive(Debug, Default)]
struct SharedStats {
    steps: AtomicU64,
    frames: AtomicU64,
    dropped_events: AtomicU64,
    last_step_nanos: AtomicU64,
    last_batch: AtomicU64,
    panics: AtomicU64,
    busy_ppm: AtomicU64,
    sessions: AtomicU64,
}

impl SharedStats {
    fn publish(&self, s: &WorkerStats) {
        let r = Ordering::Relaxed;
        self.steps.store(s.steps, r);
        self.frames.store(s.frames, r);
        self.dropped_events.store(s.dropped_events, r);
        self.last_step_nanos
            .store((s.last_step_secs * 1e9) as u64, r);
        self.last_batch.store(s.last_batch as u64, r);
        self.panics.store(s.panics, r);
        self.busy_ppm.store((s.busy_fraction * 1e6) as u64, r);
        self.sessions.store(s.sessions as u64, r);
    }

    fn read(&self) -> WorkerStats {
        let r = Ordering::Relaxed;
        WorkerStats {
            steps: self.steps.load(r),
            frames: self.frames.load(r),
            dropped_events: self.dropped_events.load(r),
            last_step_secs: self.last_step_nanos.load(r) as f64 * 1e-9,
            last_batch: self.last_batch.load(r) as usize,
            panics: self.panics.load(r),
            busy_fraction: self.busy_ppm.load(r) as f64 * 1e-6,
            sessions: self.sessions.load(r) as usize,
        }
    }
}

/// Handle to a running worker thread (or an inline worker, see
/// [`Worker::inline`]). Dropping it shuts the worker down.
pub struct Worker {
    commands: Sender<WorkerCommand>,
    events: Receiver<WorkerEvent>,
    stats: Arc<SharedStats>,
    thread: Option<JoinHandle<()>>,
    inline: Option<Mutex<Inline>>,
    /// An inline worker handled `Shutdown`.
    stopped: AtomicBool,
}

/// The loop of an inline worker and its command queue.
struct Inline {
    worker: WorkerLoop,
    commands: Receiver<WorkerCommand>,
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
        let stats = Arc::new(SharedStats::default());
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
            inline: None,
            stopped: AtomicBool::new(false),
        })
    }

    /// A worker without a thread: commands queue until [`Worker::pump`]
    /// runs them on the caller's thread (same loop, same channels, same
    /// events as [`Worker::spawn`]). For deterministic tests and offline
    /// tools.
    pub fn inline(model: Arc<TalkingHeadModel>, config: WorkerConfig) -> Self {
        let (ctx, crx) = crossbeam_channel::bounded(config.command_capacity.max(1));
        let (etx, erx) = crossbeam_channel::bounded(config.event_capacity.max(1));
        let stats = Arc::new(SharedStats::default());
        let worker = WorkerLoop::new(model, config, etx, stats.clone());
        Self {
            commands: ctx,
            events: erx,
            stats,
            thread: None,
            inline: Some(Mutex::new(Inline {
                worker,
                commands: crx,
            })),
            stopped: AtomicBool::new(false),
        }
    }

    /// Whether this worker runs inline ([`Worker::inline`]).
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Inline worker: handles every queued command, then steps until no
    /// session has a pending frame; events are in [`Worker::events`] when
    /// it returns. A threaded worker: does nothing.
    pub fn pump(&self) {
        let Some(inline) = &self.inline else { return };
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut guard = inline.lock().unwrap_or_else(|p| p.into_inner());
        let Inline { worker, commands } = &mut *guard;
        if !worker.run_until_idle(commands) {
            self.stopped.store(true, Ordering::Release);
        }
    }

    /// Sends a command without blocking.
    pub fn send(&self, cmd: WorkerCommand) -> Result<(), WorkerError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => WorkerError::Full,
            TrySendError::Disconnected(_) => WorkerError::Disconnected,
        })
    }

    /// Sends a command, waiting while the queue is full (for offline use).
    /// An inline worker has nobody else to drain its queue, so a full queue
    /// is pumped ([`Worker::pump`]) on this thread to make room.
    pub fn send_blocking(&self, cmd: WorkerCommand) -> Result<(), WorkerError> {
        if self.inline.is_none() {
            return self
                .commands
                .send(cmd)
                .map_err(|_| WorkerError::Disconnected);
        }
        let mut cmd = cmd;
        loop {
            match self.commands.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(c)) if !self.stopped.load(Ordering::Acquire) => {
                    cmd = c;
                    self.pump();
                }
                Err(_) => return Err(WorkerError::Disconnected),
            }
        }
    }

    /// Creates latest-wins control slots for session `id` (emotion and
    /// style, initialised to `emotion` / `style`) and attaches them; then
    /// writes to the returned slots reach the session without queueing a
    /// command. Errors as [`Worker::send`].
    pub fn attach_controls(
        &self,
        id: SessionId,
        emotion: [f32; EMOTION_COUNT],
        style: usize,
    ) -> Result<Arc<SessionControls>, WorkerError> {
        let c = Arc::new(SessionControls::default());
        c.set_emotion(emotion);
        c.set_style(style);
        self.send(WorkerCommand::AttachControls(id, c.clone()))?;
        Ok(c)
    }

    /// The event receiver (drain it every frame).
    pub fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }

    /// A copy of the worker's counters (lock-free).
    pub fn stats(&self) -> WorkerStats {
        self.stats.read()
    }

    /// Whether the thread is still running (an inline worker: until it
    /// handled a `Shutdown`).
    pub fn is_running(&self) -> bool {
        if self.inline.is_some() {
            return !self.stopped.load(Ordering::Acquire);
        }
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

/// Per-session bookkeeping of the worker, parallel to its session list.
struct Meta {
    id: SessionId,
    #[cfg(feature = "test-hooks")]
    inject_panic: bool,
    reported_nonfinite: u64,
    /// Latest-wins controls and the version last applied.
    controls: Option<(Arc<SessionControls>, u64)>,
}

/// How often the busy fraction is measured.
const BUSY_WINDOW: Duration = Duration::from_millis(500);

struct WorkerLoop {
    model: Arc<TalkingHeadModel>,
    sampler: Sampler,
    /// The configured sampler (`None`: the model's default).
    sampler_choice: Option<Sampler>,
    /// Sessions in slots `0..n`; `meta[i]` belongs to `sessions[i]`.
    /// Removal swaps the last slot in, so no other session moves its state.
    sessions: Vec<Session>,
    meta: Vec<Meta>,
    slot_of: HashMap<SessionId, usize>,
    buffers: StepBuffers,
    frames: Vec<(usize, ExpressionFrame)>,
    events: Sender<WorkerEvent>,
    stats: Arc<SharedStats>,
    local: WorkerStats,
    window_start: Instant,
    busy: Duration,
}

impl WorkerLoop {
    fn new(
        model: Arc<TalkingHeadModel>,
        config: WorkerConfig,
        events: Sender<WorkerEvent>,
        stats: Arc<SharedStats>,
    ) -> Self {
        let sampler_choice = config.sampler;
        let sampler = sampler_choice.unwrap_or_else(|| model.default_sampler());
        Self {
            model,
            sampler,
            sampler_choice,
            sessions: Vec::new(),
            meta: Vec::new(),
            slot_of: HashMap::new(),
            buffers: StepBuffers::default(),
            frames: Vec::new(),
            events,
            stats,
            local: WorkerStats::default(),
            window_start: Instant::now(),
            busy: Duration::ZERO,
        }
    }

    fn emit(&mut self, ev: WorkerEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(ev) {
            self.local.dropped_events += 1;
        }
    }

    fn error(&mut self, session: Option<SessionId>, error: WorkerFailure) {
        self.emit(WorkerEvent::Error { session, error });
    }

    /// The inline loop: every queued command, then steps until nothing is
    /// due. Returns false on shutdown (or a dropped queue).
    fn run_until_idle(&mut self, commands: &Receiver<WorkerCommand>) -> bool {
        loop {
            let work_start = Instant::now();
            loop {
                match commands.try_recv() {
                    Ok(c) => {
                        if !self.handle(c) {
                            return false;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return false,
                }
            }
            let due = self.sessions.iter().any(|s| s.pending_frames() > 0);
            if due {
                self.step_due();
            }
            self.busy += work_start.elapsed();
            self.local.sessions = self.sessions.len();
            self.stats.publish(&self.local);
            if !due {
                return true;
            }
        }
    }

    fn run(mut self, commands: Receiver<WorkerCommand>) {
        loop {
            let due = self.sessions.iter().any(|s| s.pending_frames() > 0);
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
            let work_start = Instant::now();
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
            self.busy += work_start.elapsed();
            let window = self.window_start.elapsed();
            if window >= BUSY_WINDOW {
                self.local.busy_fraction =
                    (self.busy.as_secs_f64() / window.as_secs_f64()).min(1.0);
                self.busy = Duration::ZERO;
                self.window_start = Instant::now();
            }
            self.local.sessions = self.sessions.len();
            self.stats.publish(&self.local);
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
                    let meta = Meta {
                        id,
                        #[cfg(feature = "test-hooks")]
                        inject_panic: false,
                        reported_nonfinite: 0,
                        controls: None,
                    };
                    match self.slot_of.get(&id) {
                        Some(&i) => {
                            self.sessions[i] = s;
                            self.meta[i] = meta;
                        }
                        None => {
                            self.slot_of.insert(id, self.sessions.len());
                            self.sessions.push(s);
                            self.meta.push(meta);
                        }
                    }
                }
                Err(e) => self.error(Some(id), WorkerFailure::Session(Arc::new(e))),
            },
            WorkerCommand::RemoveSession(id) => {
                if let Some(i) = self.slot_of.remove(&id) {
                    self.sessions.swap_remove(i);
                    self.meta.swap_remove(i);
                    if let Some(moved) = self.meta.get(i) {
                        self.slot_of.insert(moved.id, i);
                    }
                }
            }
            WorkerCommand::Audio(id, pcm) => self.push(id, Pcm::F32(&pcm)),
            WorkerCommand::AudioI16(id, pcm) => self.push(id, Pcm::I16(&pcm)),
            WorkerCommand::SetEmotion(id, e) => self.with(id, |s, _| s.set_emotion(e)),
            WorkerCommand::SetStyle(id, st) => self.with(id, |s, _| s.set_style(st)),
            WorkerCommand::Finish(id) => self.with(id, |s, _| s.finish()),
            #[cfg(feature = "test-hooks")]
            WorkerCommand::InjectPanic(id) => self.with(id, |_, m| m.inject_panic = true),
            WorkerCommand::AttachControls(id, c) => self.with(id, |_, m| m.controls = Some((c, 0))),
            WorkerCommand::SwapModel(model) => {
                if model.config() != self.model.config() {
                    self.error(None, WorkerFailure::ModelConfigMismatch);
                    return true;
                }
                self.sampler = self
                    .sampler_choice
                    .unwrap_or_else(|| model.default_sampler());
                self.model = model;
                for i in 0..self.sessions.len() {
                    if let Err(e) = self.sessions[i].recover(&self.model) {
                        let id = self.meta[i].id;
                        self.error(Some(id), WorkerFailure::Session(Arc::new(e)));
                    }
                }
            }
            WorkerCommand::Reset(id) => {
                let model = self.model.clone();
                let mut err = None;
                self.with(id, |s, _| {
                    if let Err(e) = s.reset(&model) {
                        err = Some(e);
                    }
                });
                if let Some(e) = err {
                    self.error(Some(id), WorkerFailure::Session(Arc::new(e)));
                }
            }
        }
        true
    }

    fn with(&mut self, id: SessionId, f: impl FnOnce(&mut Session, &mut Meta)) {
        match self.slot_of.get(&id) {
            Some(&i) => f(&mut self.sessions[i], &mut self.meta[i]),
            None => self.error(Some(id), WorkerFailure::UnknownSession(id)),
        }
    }

    fn push(&mut self, id: SessionId, pcm: Pcm<'_>) {
        let Some(&i) = self.slot_of.get(&id) else {
            self.error(Some(id), WorkerFailure::AudioForUnknownSession(id));
            return;
        };
        if let Err(err) = self.sessions[i].push(pcm) {
            self.error(Some(id), WorkerFailure::Session(Arc::new(err)));
            return;
        }
        let total = self.sessions[i].nonfinite_samples();
        let meta = &mut self.meta[i];
        if total > meta.reported_nonfinite {
            meta.reported_nonfinite = total;
            self.emit(WorkerEvent::NonFiniteSamples { session: id, total });
        }
    }

    /// Applies control slots written since the last step.
    fn apply_controls(&mut self) {
        for (s, m) in self.sessions.iter_mut().zip(self.meta.iter_mut()) {
            if let Some((c, seen)) = &mut m.controls {
                let v = c.version();
                if v != *seen {
                    *seen = v;
                    s.set_emotion(c.emotion());
                    s.set_style(c.style());
                }
            }
        }
    }

    fn step_due(&mut self) {
        self.apply_controls();
        let start = Instant::now();
        let model = self.model.clone();
        let sampler = self.sampler;
        self.frames.clear();
        let result = {
            let Self {
                sessions,
                meta,
                buffers,
                frames,
                ..
            } = self;
            #[cfg(not(feature = "test-hooks"))]
            let _ = meta;
            catch_unwind(AssertUnwindSafe(|| {
                #[cfg(feature = "test-hooks")]
                if let Some(m) = sessions
                    .iter()
                    .zip(meta.iter_mut())
                    .find(|(s, m)| m.inject_panic && s.pending_frames() > 0)
                    .map(|(_, m)| m)
                {
                    m.inject_panic = false;
                    panic!("injected panic (test hook)");
                }
                step_sessions(&model, sessions, sampler, buffers, frames)
            }))
        };
        let batch = self.buffers.last_batch();
        if batch == 0 && matches!(result, Ok(Ok(()))) {
            return;
        }
        self.local.steps += 1;
        self.local.last_batch = batch;
        self.local.last_step_secs = start.elapsed().as_secs_f64();
        match result {
            Ok(Ok(())) => {
                self.local.frames += self.frames.len() as u64;
                for k in 0..self.frames.len() {
                    let (i, frame) = self.frames[k].clone();
                    self.emit(WorkerEvent::Frame {
                        session: self.meta[i].id,
                        frame,
                    });
                }
            }
            Ok(Err(e)) => self.reset_due(WorkerFailure::Model(Arc::new(e))),
            Err(panic) => {
                self.local.panics += 1;
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.reset_due(WorkerFailure::Panic(msg));
            }
        }
    }

    /// Recovers every session that was in the failed batch (those with a
    /// pending frame: a failed step consumes none).
    fn reset_due(&mut self, reason: WorkerFailure) {
        for i in 0..self.sessions.len() {
            if self.sessions[i].pending_frames() == 0 {
                continue;
            }
            let _ = self.sessions[i].recover(&self.model);
            let session = self.meta[i].id;
            self.emit(WorkerEvent::SessionReset {
                session,
                reason: reason.clone(),
            });
        }
    }
}
