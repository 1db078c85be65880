//! The worker side of the plugin: model loading off the main thread, the
//! inference worker, sessions, and the systems that talk to it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::Receiver;

use super::components::{HISTORY_LEN, TalkingHead, TalkingHeadState};
use crate::audio::{AudioFormat, MODEL_SAMPLE_RATE};
use crate::model::TalkingHeadModel;
pub use crate::model::{DEFAULT_MODEL_PATH, default_model_path};
use crate::runtime::{SessionId, Worker, WorkerCommand, WorkerConfig, WorkerError, WorkerEvent};

/// Where the plugin gets its model.
#[derive(Clone, Debug, Default)]
pub enum ModelSource {
    /// `$TALKING_HEAD_MODEL` if set, else `assets/models/default.safetensors`
    /// under the working directory, else the copy embedded in the binary
    /// (feature `embedded-model`, on by default; see
    /// [`crate::model::load_default_model`]).
    #[default]
    Default,
    /// A checkpoint file.
    Path(PathBuf),
    /// A checkpoint loaded through the `AssetServer` (a path under the
    /// asset folder, e.g. `"models/default.safetensors"`; see
    /// [`super::TalkingHeadModelAsset`]). Hot reload: when the asset
    /// changes, the worker swaps to the new model and every session
    /// continues. Needs an `AssetPlugin`; a missing or corrupt file fails
    /// the runtime with an error naming it ([`RuntimeState::Failed`]).
    Asset(String),
    /// A model already in memory.
    Loaded(Arc<TalkingHeadModel>),
}

impl ModelSource {
    /// The file this source loads: the explicit path, or for
    /// [`ModelSource::Default`] the file that [`crate::model::load_default_model`]
    /// would read first (`None` when it would use the embedded copy, and for
    /// [`ModelSource::Loaded`]).
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Self::Default => crate::model::model_path_from_env().or_else(|| {
                let p = PathBuf::from(crate::model::DEFAULT_MODEL_PATH);
                p.exists().then_some(p)
            }),
            Self::Path(p) => Some(p.clone()),
            Self::Loaded(_) | Self::Asset(_) => None,
        }
    }
}

/// Why the runtime could not start (the payload of [`RuntimeState::Failed`]).
/// Faces rest (each at its emotion's rest face) while the runtime is failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TalkingHeadError {
    /// An explicit model path ([`ModelSource::Path`]) does not exist.
    #[error("no model file at {} (set TalkingHeadPlugin::model or $TALKING_HEAD_MODEL)", .0.display())]
    ModelMissing(PathBuf),
    /// The checkpoint could not be read or parsed, or has no decoder
    /// (`what` names the file or "the default model").
    #[error("could not load {what}: {source}")]
    ModelLoad {
        /// The file, or "the default model".
        what: String,
        /// The checkpoint error.
        source: Arc<crate::model::ModelError>,
    },
    /// A thread (model loading or the inference worker) could not start or
    /// stopped without a result.
    #[error("{0}")]
    Thread(String),
    /// A [`ModelSource::Asset`] could not be loaded (missing, corrupt, or
    /// no `AssetPlugin` in the app).
    #[error("could not load the model asset {path}: {error}")]
    ModelAsset {
        /// The asset path.
        path: String,
        /// Why.
        error: String,
    },
}

impl PartialEq for TalkingHeadError {
    /// Same variant and same message.
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// The asset behind [`ModelSource::Asset`].
#[derive(Debug)]
pub(crate) struct ModelAssetLink {
    pub(crate) path: String,
    pub(crate) handle: Option<Handle<super::TalkingHeadModelAsset>>,
    /// The failure was reported.
    pub(crate) failed: bool,
}

/// Where the runtime stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeState {
    /// The model is loading on a background thread; faces rest (at their
    /// emotion's rest face).
    Loading,
    /// The worker runs.
    Ready,
    /// The model could not be loaded or the worker not started; faces rest
    /// at neutral. The error says why.
    Failed(TalkingHeadError),
}

/// The inference runtime: model, worker thread, sessions. Read it for
/// diagnostics (state, latency, load).
#[derive(Resource)]
pub struct TalkingHeadRuntime {
    pub(crate) state: RuntimeState,
    loader: Option<Receiver<Result<Arc<TalkingHeadModel>, TalkingHeadError>>>,
    model: Option<Arc<TalkingHeadModel>>,
    worker: Option<Worker>,
    config: WorkerConfig,
    generation: u64,
    next_session: u64,
    sessions: HashMap<SessionId, Entity>,
    stats: crate::runtime::WorkerStats,
    restarts: u64,
    /// The model's asset, for [`ModelSource::Asset`].
    pub(crate) asset: Option<ModelAssetLink>,
    load: f32,
    step_ema: f64,
}

impl std::fmt::Debug for TalkingHeadRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TalkingHeadRuntime")
            .field("state", &self.state)
            .field("sessions", &self.sessions.len())
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

impl TalkingHeadRuntime {
    pub(crate) fn start(source: ModelSource, config: WorkerConfig) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(1);
        match source {
            ModelSource::Asset(path) => {
                let mut rt = Self::new(RuntimeState::Loading, None, config);
                rt.asset = Some(ModelAssetLink {
                    path,
                    handle: None,
                    failed: false,
                });
                return rt;
            }
            ModelSource::Loaded(model) => {
                let _ = tx.send(Ok(model));
            }
            other => {
                let path = match other {
                    ModelSource::Path(p) => Some(p),
                    _ => None,
                };
                let spawned = std::thread::Builder::new()
                    .name("talking-head-load".into())
                    .spawn(move || {
                        let result = match &path {
                            Some(p) => load_model(p),
                            None => load_default(),
                        };
                        let _ = tx.send(result);
                    });
                if let Err(e) = spawned {
                    return Self::new(
                        RuntimeState::Failed(TalkingHeadError::Thread(format!(
                            "could not start the model-loading thread: {e}"
                        ))),
                        None,
                        config,
                    );
                }
            }
        }
        Self::new(RuntimeState::Loading, Some(rx), config)
    }

    fn new(
        state: RuntimeState,
        loader: Option<Receiver<Result<Arc<TalkingHeadModel>, TalkingHeadError>>>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            state,
            loader,
            model: None,
            worker: None,
            config,
            generation: 0,
            next_session: 1,
            sessions: HashMap::new(),
            stats: Default::default(),
            restarts: 0,
            asset: None,
            load: 0.0,
            step_ema: 0.0,
        }
    }

    /// Loading, ready or failed.
    pub fn state(&self) -> &RuntimeState {
        &self.state
    }

    /// Whether the worker is running.
    pub fn is_ready(&self) -> bool {
        self.state == RuntimeState::Ready
    }

    /// The loaded model.
    pub fn model(&self) -> Option<&Arc<TalkingHeadModel>> {
        self.model.as_ref()
    }

    /// The worker's counters as of this frame.
    pub fn stats(&self) -> &crate::runtime::WorkerStats {
        &self.stats
    }

    /// Times the worker thread had to be restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Live sessions (one per talking head with audio).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Worker load: the fraction of wall time the inference worker thread
    /// spent working (commands and steps) rather than waiting, measured by
    /// the worker over about half a second ([`crate::runtime::WorkerStats::busy_fraction`]);
    /// the share of one core it uses. 1.0 means it cannot keep up.
    pub fn worker_load(&self) -> f32 {
        self.load
    }

    /// Smoothed time of one batched step, seconds.
    pub fn step_secs(&self) -> f64 {
        self.step_ema
    }

    /// The model's algorithmic latency (look-ahead plus one frame), seconds.
    pub fn model_latency_secs(&self) -> Option<f64> {
        self.model
            .as_ref()
            .map(|m| m.config().algorithmic_latency_secs())
    }

    /// Test hook (feature `test-hooks`): makes the worker panic in the next
    /// step of `entity`'s session (the plugin must recover).
    #[cfg(feature = "test-hooks")]
    pub fn inject_panic(&self, entity: Entity) -> bool {
        let Some((&id, _)) = self.sessions.iter().find(|(_, e)| **e == entity) else {
            return false;
        };
        self.worker
            .as_ref()
            .is_some_and(|w| w.send(WorkerCommand::InjectPanic(id)).is_ok())
    }

    /// Test hook (feature `test-hooks`): stops the worker thread (the plugin
    /// must restart it).
    #[cfg(feature = "test-hooks")]
    pub fn kill_worker(&self) {
        if let Some(w) = &self.worker {
            let _ = w.send_blocking(WorkerCommand::Shutdown);
        }
    }

    fn send(&self, cmd: WorkerCommand) -> Result<(), WorkerError> {
        match &self.worker {
            Some(w) => w.send(cmd),
            None => Err(WorkerError::Disconnected),
        }
    }

    fn spawn_worker(&mut self) -> Result<(), TalkingHeadError> {
        let model = self
            .model
            .clone()
            .ok_or_else(|| TalkingHeadError::Thread("no model".into()))?;
        let worker = if self.config.inline {
            Worker::inline(model, self.config.clone())
        } else {
            Worker::spawn(model, self.config.clone())
                .map_err(|e| TalkingHeadError::Thread(e.to_string()))?
        };
        self.worker = Some(worker);
        self.generation += 1;
        self.sessions.clear();
        Ok(())
    }

    /// Starts a fresh session for `entity` whose sample 0 is at source
    /// position `base_16k`.
    fn open_session(
        &mut self,
        entity: Entity,
        state: &mut TalkingHeadState,
        format: AudioFormat,
        base_16k: f64,
        seed: u64,
    ) -> bool {
        if let Some(old) = state.link.session.take() {
            self.sessions.remove(&old);
            let _ = self.send(WorkerCommand::RemoveSession(old));
        }
        let id = SessionId(self.next_session);
        self.next_session += 1;
        // Emotion and style follow from `sync_controls` in the same frame.
        let seed = seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if let Err(e) = self.send(WorkerCommand::AddSession {
            id,
            format,
            emotion: crate::model::NEUTRAL_EMOTION,
            style: 0,
            seed,
        }) {
            warn!("TalkingHead {entity}: could not start a session: {e}");
            return false;
        }
        self.sessions.insert(id, entity);
        state.link.controls = self
            .worker
            .as_ref()
            .and_then(|w| w.attach_controls(id, crate::model::NEUTRAL_EMOTION, 0).ok());
        state.link.session = Some(id);
        state.link.generation = self.generation;
        state.link.format = Some(format);
        state.link.base_16k = base_16k;
        state.link.sent_16k = 0.0;
        state.link.frames.clear();
        state.link.sent_emotion = None;
        state.link.sent_style = None;
        true
    }

    pub(crate) fn style_id(
        &self,
        entity: Entity,
        name: &str,
        state: &mut TalkingHeadState,
    ) -> usize {
        let Some(model) = &self.model else { return 0 };
        match model.config().style_id(name) {
            Ok(i) => {
                state.link.style_warned = None;
                i
            }
            Err(e) => {
                if state.link.style_warned.as_deref() != Some(name) {
                    state.link.style_warned = Some(name.to_string());
                    warn!(
                        "TalkingHead {entity}: {e}; using style '{}'",
                        model
                            .config()
                            .styles
                            .first()
                            .map(String::as_str)
                            .unwrap_or("?")
                    );
                }
                0
            }
        }
    }

    /// Ends `entity`'s session (if any); the next audio starts a new one.
    pub(crate) fn close_session(&mut self, state: &mut TalkingHeadState) {
        if let Some(old) = state.link.session.take() {
            self.sessions.remove(&old);
            let _ = self.send(WorkerCommand::RemoveSession(old));
        }
        state.link.controls = None;
        state.link.frames.clear();
        state.link.sent_16k = 0.0;
    }

    /// Sends `samples` (interleaved, `format`) for `entity` (seeded with its
    /// [`TalkingHead::seed`](super::TalkingHead::seed)), whose first
    /// sample is at source position `source_16k` (16 kHz samples). Opens a
    /// session first when there is none (or the format changed, or the
    /// worker restarted). Does nothing until the runtime is ready.
    pub(crate) fn feed(
        &mut self,
        entity: Entity,
        state: &mut TalkingHeadState,
        format: AudioFormat,
        samples: Vec<f32>,
        source_16k: f64,
        seed: u64,
    ) {
        if !self.is_ready() {
            return;
        }
        // A device or clip outside 8–96 kHz or 1–32 channels: say so once
        // (per format) and let the face rest, instead of a session the
        // worker refuses and a warning every frame.
        if let Err(e) = format.validate() {
            if state.diag.bad_format != Some(format) {
                warn!("TalkingHead {entity}: its voice cannot be animated: {e}; the face rests");
                state.diag.bad_format = Some(format);
            }
            if state.link.session.is_some() {
                self.close_session(state);
            }
            return;
        }
        let stale = state.link.session.is_none()
            || state.link.generation != self.generation
            || state.link.format != Some(format);
        if stale {
            if state.link.generation != self.generation {
                state.link.session = None;
                state.link.controls = None;
            }
            if !self.open_session(entity, state, format, source_16k, seed) {
                return;
            }
        }
        let frames = samples.len() / format.channels.max(1) as usize;
        let Some(id) = state.link.session else { return };
        match self.send(WorkerCommand::Audio(id, samples)) {
            Ok(()) => {
                state.link.sent_16k +=
                    frames as f64 * MODEL_SAMPLE_RATE as f64 / format.sample_rate as f64;
            }
            Err(WorkerError::Full) => {
                state.diag.dropped_chunks += 1;
                if state.diag.dropped_chunks.is_power_of_two() {
                    warn!(
                        "TalkingHead {entity}: the inference worker is behind; {} audio chunk(s) dropped",
                        state.diag.dropped_chunks
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// Takes `model` and starts the worker on it (first load).
    pub(crate) fn adopt_model(&mut self, model: Arc<TalkingHeadModel>) {
        if !model.provenance().trained {
            warn!(
                "the talking-head model is UNTRAINED (random weights): faces will move, but not meaningfully"
            );
        }
        self.model = Some(model);
        match self.spawn_worker() {
            Ok(()) => {
                info!("talking-head model loaded; inference worker running");
                self.state = RuntimeState::Ready;
            }
            Err(e) => {
                error!("talking-head: could not start the inference worker: {e}");
                self.state = RuntimeState::Failed(e);
            }
        }
    }

    /// Hot reload: moves the worker to `model`. Same configuration: the
    /// worker swaps weights and every session continues (its model state
    /// restarts, its clock does not); another configuration: a fresh worker
    /// (sessions reopen with the next audio, as after a worker restart).
    pub(crate) fn replace_model(&mut self, model: Arc<TalkingHeadModel>) {
        let same = self
            .model
            .as_ref()
            .is_some_and(|m| m.config() == model.config());
        if !self.is_ready() || self.worker.is_none() {
            self.adopt_model(model);
            return;
        }
        if same {
            if let Some(w) = &self.worker
                && let Err(e) = w.send_blocking(WorkerCommand::SwapModel(model.clone()))
            {
                warn!("talking-head: could not hand the worker the new model: {e}");
                return;
            }
            self.model = Some(model);
            info!("talking-head: model reloaded; sessions continue");
        } else {
            self.model = Some(model);
            match self.spawn_worker() {
                Ok(()) => {
                    info!("talking-head: model reloaded (new configuration); sessions restart")
                }
                Err(e) => {
                    error!("talking-head: could not restart the worker for the new model: {e}");
                    self.state = RuntimeState::Failed(e);
                }
            }
        }
    }

    /// Tells the worker that `entity`'s stream ended (flushes the look-ahead).
    #[cfg_attr(not(feature = "kira"), allow(dead_code))]
    pub(crate) fn finish(&self, state: &TalkingHeadState) {
        if let Some(id) = state.link.session {
            let _ = self.send(WorkerCommand::Finish(id));
        }
    }
}

fn load_default() -> Result<Arc<TalkingHeadModel>, TalkingHeadError> {
    let (model, from) =
        crate::model::load_default_model().map_err(|e| TalkingHeadError::ModelLoad {
            what: "the default model".into(),
            source: Arc::new(e),
        })?;
    info!("talking-head: model from {from}");
    Ok(Arc::new(model))
}

fn load_model(path: &std::path::Path) -> Result<Arc<TalkingHeadModel>, TalkingHeadError> {
    if !path.exists() {
        return Err(TalkingHeadError::ModelMissing(path.to_owned()));
    }
    let model = TalkingHeadModel::load(path).map_err(|e| TalkingHeadError::ModelLoad {
        what: format!("the model {}", path.display()),
        source: Arc::new(e),
    })?;
    Ok(Arc::new(model))
}

/// Finishes model loading and (re)starts the worker.
pub(crate) fn maintain_runtime(mut runtime: ResMut<TalkingHeadRuntime>) {
    if let Some(rx) = &runtime.loader {
        match rx.try_recv() {
            Ok(Ok(model)) => {
                runtime.loader = None;
                runtime.adopt_model(model);
            }
            Ok(Err(e)) => {
                runtime.loader = None;
                error!("talking-head: {e}; faces rest");
                runtime.state = RuntimeState::Failed(e);
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {}
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                runtime.loader = None;
                let e = TalkingHeadError::Thread(
                    "the model-loading thread stopped without a result".into(),
                );
                error!("talking-head: {e}");
                runtime.state = RuntimeState::Failed(e);
            }
        }
    }
    if runtime.is_ready() && !runtime.worker.as_ref().is_some_and(Worker::is_running) {
        runtime.restarts += 1;
        warn!("talking-head: the inference worker stopped; restarting it (sessions restart)");
        if let Err(e) = runtime.spawn_worker() {
            error!("talking-head: could not restart the inference worker: {e}");
            runtime.state = RuntimeState::Failed(e);
        }
    }
}

/// Sends emotion / style changes (latest value wins).
pub(crate) fn sync_controls(
    runtime: Res<TalkingHeadRuntime>,
    mut heads: Query<(Entity, &TalkingHead, &mut TalkingHeadState)>,
) {
    if !runtime.is_ready() {
        return;
    }
    for (entity, head, mut state) in &mut heads {
        let Some(id) = state.link.session else {
            continue;
        };
        if state.link.generation != runtime.generation {
            continue;
        }
        let emotion = head.emotion.conditioning();
        let style = runtime.style_id(entity, &head.style, &mut state);
        // Through the session's latest-wins slots when attached, else
        // (queue was full at attach time) as commands.
        if let Some(c) = &state.link.controls {
            if state.link.sent_emotion != Some(emotion) {
                c.set_emotion(emotion);
            }
            if state.link.sent_style != Some(style) {
                c.set_style(style);
            }
            state.link.sent_emotion = Some(emotion);
            state.link.sent_style = Some(style);
            continue;
        }
        if state.link.sent_emotion != Some(emotion)
            && runtime.send(WorkerCommand::SetEmotion(id, emotion)).is_ok()
        {
            state.link.sent_emotion = Some(emotion);
        }
        if state.link.sent_style != Some(style)
            && runtime.send(WorkerCommand::SetStyle(id, style)).is_ok()
        {
            state.link.sent_style = Some(style);
        }
    }
}

/// Drains the worker's events into the heads' frame buffers.
pub(crate) fn poll_worker(
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut heads: Query<&mut TalkingHeadState>,
) {
    let Some(worker) = &runtime.worker else {
        return;
    };
    // An inline worker (`WorkerConfig::inline`) does its work here.
    worker.pump();
    let events: Vec<WorkerEvent> = worker.events().try_iter().collect();
    let stats = worker.stats();
    for ev in events {
        match ev {
            WorkerEvent::Frame { session, frame } => {
                let Some(&e) = runtime.sessions.get(&session) else {
                    continue;
                };
                if let Ok(mut s) = heads.get_mut(e)
                    && s.link.session == Some(session)
                {
                    s.link.frames.push_back(frame);
                    while s.link.frames.len() > 2048 {
                        s.link.frames.pop_front();
                    }
                }
            }
            WorkerEvent::SessionReset { session, reason } => {
                if let Some(&e) = runtime.sessions.get(&session)
                    && let Ok(mut s) = heads.get_mut(e)
                {
                    s.diag.resets += 1;
                    s.diag.last_error = Some(reason.clone());
                    warn!("TalkingHead {e}: session reset by the worker ({reason}); it continues");
                }
            }
            WorkerEvent::Error {
                session,
                error: message,
            } => {
                let entity = session.and_then(|s| runtime.sessions.get(&s).copied());
                if let Some(e) = entity
                    && let Ok(mut s) = heads.get_mut(e)
                {
                    s.diag.last_error = Some(message.clone());
                }
                warn!("talking-head worker: {message}");
            }
            WorkerEvent::NonFiniteSamples { session, total } => {
                if let Some(&e) = runtime.sessions.get(&session)
                    && let Ok(mut s) = heads.get_mut(e)
                {
                    if s.diag.nonfinite == 0 {
                        warn!(
                            "TalkingHead {e}: NaN/Inf samples in its voice were replaced by silence"
                        );
                    }
                    s.diag.nonfinite = total;
                }
            }
        }
    }
    let steps = stats.steps.saturating_sub(runtime.stats.steps);
    if steps > 0 {
        let a = 0.1;
        runtime.step_ema = runtime.step_ema * (1.0 - a) + stats.last_step_secs * a;
    }
    // The worker's own busy-time measurement.
    runtime.load = stats.busy_fraction as f32;
    runtime.stats = stats;
}

/// Removes the sessions of despawned heads and of entities whose
/// [`TalkingHead`] was removed (their required `TalkingHeadState` stays;
/// its link is cleared so a `TalkingHead` inserted later opens a new one).
pub(crate) fn cleanup_sessions(
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut removed: RemovedComponents<TalkingHead>,
    heads: Query<(), With<TalkingHead>>,
    mut states: Query<&mut TalkingHeadState, Without<TalkingHead>>,
) {
    for e in removed.read() {
        if heads.contains(e) {
            continue; // removed and inserted again: still a head
        }
        if let Ok(mut state) = states.get_mut(e) {
            runtime.close_session(&mut state);
        }
        let ids: Vec<SessionId> = runtime
            .sessions
            .iter()
            .filter(|(_, v)| **v == e)
            .map(|(k, _)| *k)
            .collect();
        for id in ids {
            runtime.sessions.remove(&id);
            let _ = runtime.send(WorkerCommand::RemoveSession(id));
        }
    }
}

pub(crate) fn push_history(state: &mut TalkingHeadState, jaw: f32) {
    let level = state.playback.level;
    state.playback.history.push_back((jaw, level));
    while state.playback.history.len() > HISTORY_LEN {
        state.playback.history.pop_front();
    }
}
