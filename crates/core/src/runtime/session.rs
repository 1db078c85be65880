//! One speaker's stream: audio front-end (downmix/resample → log-mel →
//! animation-frame assembly) plus the model's [`StreamState`].

use std::collections::VecDeque;

use crate::audio::{AudioConditioner, AudioError, AudioFormat, MODEL_SAMPLE_RATE};
use crate::features::LogMelStreamer;
use crate::model::{
    EMOTION_COUNT, FrameInput, ModelConfig, ModelError, OutputFrame, Sampler, StepItem,
    StepScratch, StreamState, TalkingHeadModel,
};
use crate::rig::BLENDSHAPE_COUNT;
use crate::upper_face::SpeechActivity;

/// PCM samples in one of the two accepted sample formats, interleaved when
/// multichannel.
#[derive(Clone, Copy, Debug)]
pub enum Pcm<'a> {
    /// Floating point, nominal range [-1, 1].
    F32(&'a [f32]),
    /// 16-bit integers.
    I16(&'a [i16]),
}

/// An expression frame stamped with the audio time it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpressionFrame {
    /// Frame index in the stream (0, 1, 2, ...).
    pub index: u64,
    /// First sample of the frame's audio span, at 16 kHz. The span is
    /// `[sample, sample + samples_per_frame)`; the weights describe the face
    /// at the span's centre.
    pub sample: u64,
    /// 52 ARKit weights in [0, 1], canonical order.
    pub weights: [f32; BLENDSHAPE_COUNT],
    /// RMS level of the frame's 16 kHz audio span in dBFS
    /// ([`crate::audio::rms_dbfs`]; `-inf` for digital silence), so
    /// consumers (the upper-face layer, level meters) need not recompute
    /// it from the PCM.
    pub level_dbfs: f32,
    /// Speech activity in `[0, 1]` of the frame: its level above the
    /// stream's tracked noise floor
    /// ([`crate::upper_face::SpeechActivity`]; 0 on silence and on steady
    /// background noise). Drives the upper-face layer's brow raises.
    pub speech_activity: f32,
}

impl ExpressionFrame {
    /// Centre of the frame's span in seconds of stream audio.
    pub fn time_secs(&self, samples_per_frame: usize) -> f64 {
        (self.sample as f64 + samples_per_frame as f64 / 2.0) / MODEL_SAMPLE_RATE as f64
    }
}

/// Front-end output for one animation frame, waiting for the model.
#[derive(Clone, Debug)]
struct ReadyFrame {
    log_mel: Vec<f32>,
    rms_dbfs: f32,
    activity: f32,
}

/// One speaker's streaming state: audio front-end, pending frames, model
/// state (KV caches, motion history), audio clock. All buffers are bounded
/// by the config except the queue of frames waiting for the model, which
/// the caller drains by stepping ([`Session::pending_frames`]).
#[derive(Debug)]
pub struct Session {
    conditioner: AudioConditioner,
    mel: LogMelStreamer,
    mel_buf: Vec<f32>,
    frame_pcm: Vec<f32>,
    pcm_16k: Vec<f32>,
    ready: VecDeque<ReadyFrame>,
    /// Log-mel buffers of consumed frames, reused for the next ones.
    spare: Vec<Vec<f32>>,
    state: StreamState,
    /// Emotion set by the caller; `state.emotion` glides towards it.
    emotion_target: [f32; EMOTION_COUNT],
    samples_16k: u64,
    samples_per_frame: usize,
    mels_per_frame: usize,
    n_mels: usize,
    lookahead: usize,
    finished: bool,
    frames_assembled: u64,
    frame_base: u64,
    /// Levels (dBFS) and speech activities of the last `lookahead + 1`
    /// consumed frames: an output frame lags its input by the look-ahead.
    recent_levels: VecDeque<(f32, f32)>,
    /// Noise-floor tracker giving each assembled frame its speech activity.
    activity: SpeechActivity,
    /// Frames consumed by the model since the last reset.
    consumed: u64,
    /// Real (not padding) samples of the partial frame that `finish`
    /// completes with silence: its level covers only those.
    real_in_frame: Option<usize>,
}

/// Largest change of one emotion weight per animation frame once a stream
/// has started (0.1: a full change takes 10 frames, 200 ms at 50 fps).
pub const EMOTION_SLEW_PER_FRAME: f32 = 0.1;

/// Errors of a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The audio format is not accepted.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Audio pushed after [`Session::finish`].
    #[error("audio pushed after the stream was finished; reset the session first")]
    Finished,
}

impl Session {
    /// A new session for audio in `format`, noise seeded with `seed`.
    ///
    /// Errors: [`SessionError::Audio`] for an unsupported rate or channel
    /// count (8–96 kHz, 1–32 channels).
    pub fn new(
        model: &TalkingHeadModel,
        format: AudioFormat,
        seed: u64,
    ) -> Result<Self, SessionError> {
        let cfg: &ModelConfig = model.config();
        Ok(Self {
            conditioner: AudioConditioner::new(format)?,
            mel: LogMelStreamer::new(cfg.mel.clone())
                .map_err(|e| ModelError::InvalidConfig(e.to_string()))?,
            mel_buf: Vec::new(),
            frame_pcm: Vec::with_capacity(cfg.samples_per_frame()),
            pcm_16k: Vec::new(),
            ready: VecDeque::new(),
            spare: Vec::new(),
            state: model.new_state(seed)?,
            emotion_target: crate::model::NEUTRAL_EMOTION,
            samples_16k: 0,
            samples_per_frame: cfg.samples_per_frame(),
            mels_per_frame: cfg.mels_per_frame(),
            n_mels: cfg.mel.n_mels,
            lookahead: cfg.lookahead_frames,
            finished: false,
            frames_assembled: 0,
            frame_base: 0,
            recent_levels: VecDeque::with_capacity(cfg.lookahead_frames + 2),
            activity: SpeechActivity::new(cfg.fps as f32),
            consumed: 0,
            real_in_frame: None,
        })
    }

    /// The input audio format.
    pub fn format(&self) -> AudioFormat {
        self.conditioner.format()
    }

    /// Sets the emotion weights, in canonical form
    /// ([`crate::model::canonical_emotion`]: each clamped to [0, 1], NaN as
    /// 0, and the neutral weight `max(0, 1 − sum of the others)`), so
    /// `happy = 0.5` means the same face whether neutral is 0, 0.5 or 1.
    ///
    /// Before the first frame the emotion applies at once (a baked take is
    /// emotional from its first frame). Mid-stream the model's conditioning
    /// glides to it by at most [`EMOTION_SLEW_PER_FRAME`] per weight and
    /// frame (a full change in 200 ms at 50 fps), so a slider dragged
    /// mid-utterance changes the face without a pop.
    pub fn set_emotion(&mut self, emotion: [f32; EMOTION_COUNT]) {
        self.emotion_target = crate::model::canonical_emotion(emotion);
        if self.state.frames_in() == 0 {
            self.state.emotion = self.emotion_target;
        }
    }

    /// The emotion weights last set (the conditioning reaches them within
    /// `1 / EMOTION_SLEW_PER_FRAME` frames).
    pub fn emotion(&self) -> [f32; EMOTION_COUNT] {
        self.emotion_target
    }

    /// Moves the model's emotion conditioning one frame towards the target.
    fn slew_emotion(&mut self) {
        for (c, t) in self.state.emotion.iter_mut().zip(self.emotion_target) {
            *c += (t - *c).clamp(-EMOTION_SLEW_PER_FRAME, EMOTION_SLEW_PER_FRAME);
        }
    }

    /// Sets the style id (checked against the model at the next step).
    pub fn set_style(&mut self, style: usize) {
        self.state.style = style;
    }

    /// Non-finite input samples replaced by 0 so far.
    pub fn nonfinite_samples(&self) -> u64 {
        self.conditioner.nonfinite_count()
    }

    /// Frames whose network output held a NaN or infinite weight (emitted
    /// with those weights at 0; see [`StreamState::nonfinite_frames`]).
    pub fn nonfinite_frames(&self) -> u64 {
        self.state.nonfinite_frames()
    }

    /// 16 kHz samples received so far (the session's audio clock).
    pub fn samples_received(&self) -> u64 {
        self.samples_16k
    }

    /// Frames produced so far.
    pub fn frames_out(&self) -> u64 {
        self.state.frames_out()
    }

    /// Frames assembled by the front-end and waiting for a model step.
    pub fn pending_frames(&self) -> usize {
        self.ready.len()
    }

    /// Whether [`Session::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes held by the session's state and buffers (capacity, not length):
    /// constant over a stream when the caller keeps stepping.
    pub fn memory_bytes(&self) -> usize {
        self.state.state_bytes()
            + 4 * (self.mel_buf.capacity() + self.frame_pcm.capacity() + self.pcm_16k.capacity())
            + self.ready.capacity() * std::mem::size_of::<ReadyFrame>()
            + self
                .ready
                .iter()
                .map(|r| &r.log_mel)
                .chain(&self.spare)
                .map(|r| r.capacity() * 4)
                .sum::<usize>()
    }

    /// Feeds audio in the session's format (any chunk size).
    ///
    /// Errors: [`SessionError::Finished`] after [`Session::finish`].
    pub fn push(&mut self, pcm: Pcm<'_>) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::Finished);
        }
        let mut out = std::mem::take(&mut self.pcm_16k);
        out.clear();
        match pcm {
            Pcm::F32(x) => self.conditioner.push_f32(x, &mut out),
            Pcm::I16(x) => self.conditioner.push_i16(x, &mut out),
        }
        self.ingest_16k(&out);
        self.pcm_16k = out;
        Ok(())
    }

    /// Feeds audio already at 16 kHz mono (the model rate), bypassing the
    /// conditioner (used by the trainer). Non-finite samples become 0.
    pub fn push_16k(&mut self, samples: &[f32]) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::Finished);
        }
        let clean: Vec<f32> = samples
            .iter()
            .map(|v| {
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        self.ingest_16k(&clean);
        Ok(())
    }

    fn ingest_16k(&mut self, x: &[f32]) {
        self.samples_16k += x.len() as u64;
        self.mel.push(x, &mut self.mel_buf);
        let mut rest = x;
        while !rest.is_empty() {
            let take = (self.samples_per_frame - self.frame_pcm.len()).min(rest.len());
            self.frame_pcm.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame_pcm.len() == self.samples_per_frame {
                let need = self.mels_per_frame * self.n_mels;
                // The mel frames of this animation frame end with its last sample,
                // so they are always complete here.
                let mut log_mel = self.spare.pop().unwrap_or_default();
                log_mel.clear();
                log_mel.extend(self.mel_buf.drain(..need.min(self.mel_buf.len())));
                let rms_dbfs = {
                    let real = self.real_in_frame.take().unwrap_or(self.frame_pcm.len());
                    crate::audio::rms_dbfs(&self.frame_pcm[..real.min(self.frame_pcm.len())])
                };
                let activity = self.activity.update(rms_dbfs);
                self.ready.push_back(ReadyFrame {
                    log_mel,
                    rms_dbfs,
                    activity,
                });
                self.frame_pcm.clear();
                self.frames_assembled += 1;
            }
        }
    }

    /// Ends the stream: flushes the resampler, completes the last partial
    /// frame with silence and appends `lookahead` frames of silence so every
    /// frame of real audio is produced by the following steps.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        let mut out = Vec::new();
        self.conditioner.finish(&mut out);
        self.ingest_16k(&out);
        let real = self.samples_16k;
        let mut pad = 0;
        if !self.frame_pcm.is_empty() {
            pad += self.samples_per_frame - self.frame_pcm.len();
            self.real_in_frame = Some(self.frame_pcm.len());
        }
        if real > 0 {
            pad += self.lookahead * self.samples_per_frame;
        }
        let zeros = vec![0.0; pad];
        self.ingest_16k(&zeros);
        self.samples_16k = real;
        self.finished = true;
    }

    /// Back to the start of a stream (emotion and style kept).
    pub fn reset(&mut self, model: &TalkingHeadModel) -> Result<(), SessionError> {
        self.conditioner.reset();
        self.mel.reset();
        self.mel_buf.clear();
        self.frame_pcm.clear();
        self.ready.clear();
        model.reset_state(&mut self.state)?;
        self.state.emotion = self.emotion_target;
        self.samples_16k = 0;
        self.finished = false;
        self.frames_assembled = 0;
        self.frame_base = 0;
        self.recent_levels.clear();
        self.activity.reset();
        self.consumed = 0;
        self.real_in_frame = None;
        Ok(())
    }

    /// Recovers after a failed step: clears the model state and pending
    /// audio but keeps the audio clock, so later frames keep their true
    /// timestamps. The partial frame in progress is dropped (the next audio
    /// starts a new frame), and the look-ahead refills before output resumes.
    pub fn recover(&mut self, model: &TalkingHeadModel) -> Result<(), SessionError> {
        let assembled = self.frames_assembled + u64::from(!self.frame_pcm.is_empty());
        let samples = self.samples_16k;
        let finished = self.finished;
        self.reset(model)?;
        self.frame_base = assembled;
        self.frames_assembled = assembled;
        self.samples_16k = samples;
        self.finished = finished;
        Ok(())
    }
}

impl Session {
    /// Drops the front frame after a step consumed it, keeping its buffer.
    fn consume_front(&mut self) {
        if let Some(f) = self.ready.pop_front() {
            self.spare.push(f.log_mel);
            if self.recent_levels.len() > self.lookahead {
                self.recent_levels.pop_front();
            }
            self.recent_levels.push_back((f.rms_dbfs, f.activity));
            self.consumed += 1;
        }
    }

    /// Level (dBFS) and speech activity of model frame `k` (counted since
    /// the last reset): the frame being stepped, or one of the last
    /// `lookahead` consumed ones.
    fn level_of(&self, k: u64) -> (f32, f32) {
        const SILENT: (f32, f32) = (f32::NEG_INFINITY, 0.0);
        if k == self.consumed {
            return self
                .ready
                .front()
                .map_or(SILENT, |f| (f.rms_dbfs, f.activity));
        }
        let first = self.consumed - self.recent_levels.len() as u64;
        k.checked_sub(first)
            .and_then(|i| self.recent_levels.get(i as usize).copied())
            .unwrap_or(SILENT)
    }

    fn stamp(&self, f: &OutputFrame, spf: u64) -> ExpressionFrame {
        let index = self.frame_base + f.index;
        let (level_dbfs, speech_activity) = self.level_of(f.index);
        ExpressionFrame {
            index,
            sample: index * spf,
            weights: f.weights,
            level_dbfs,
            speech_activity,
        }
    }
}

impl StepItem for Session {
    fn state(&mut self) -> &mut StreamState {
        &mut self.state
    }

    fn input(&self) -> FrameInput<'_> {
        match self.ready.front() {
            Some(f) => FrameInput {
                log_mel: &f.log_mel,
                rms_dbfs: f.rms_dbfs,
            },
            None => FrameInput {
                log_mel: &[],
                rms_dbfs: f32::NEG_INFINITY,
            },
        }
    }
}

impl StepItem for &mut Session {
    fn state(&mut self) -> &mut StreamState {
        &mut self.state
    }

    fn input(&self) -> FrameInput<'_> {
        (**self).input()
    }
}

/// Reusable buffers of [`step_sessions`]: keep one per caller so that
/// steady-state stepping allocates nothing.
#[derive(Debug, Default)]
pub struct StepBuffers {
    scratch: StepScratch,
    due: Vec<usize>,
    out: Vec<(usize, OutputFrame)>,
}

impl StepBuffers {
    /// Sessions in the last batched step.
    pub fn last_batch(&self) -> usize {
        self.due.len()
    }

    /// Bytes held (capacity).
    pub fn bytes(&self) -> usize {
        self.scratch.bytes()
            + self.due.capacity() * std::mem::size_of::<usize>()
            + self.out.capacity() * std::mem::size_of::<(usize, OutputFrame)>()
    }
}

fn step_any<S: AsSession>(
    model: &TalkingHeadModel,
    sessions: &mut [S],
    sampler: Sampler,
    buffers: &mut StepBuffers,
    frames: &mut Vec<(usize, ExpressionFrame)>,
) -> Result<(), ModelError> {
    let StepBuffers { scratch, due, out } = buffers;
    due.clear();
    due.extend((0..sessions.len()).filter(|&i| !sessions[i].session_ref().ready.is_empty()));
    if due.is_empty() {
        return Ok(());
    }
    for &i in due.iter() {
        sessions[i].session().slew_emotion();
    }
    out.clear();
    model.step_items(sessions, due, sampler, scratch, out)?;
    let spf = model.config().samples_per_frame() as u64;
    for &(i, ref f) in out.iter() {
        frames.push((i, sessions[i].session_ref().stamp(f, spf)));
    }
    for &i in due.iter() {
        sessions[i].session().consume_front();
    }
    Ok(())
}

/// Steps every session that has a pending frame, all in ONE batch, once,
/// and appends `(session index, frame)` to `frames` for the frames
/// completed. With `buffers` kept between calls, steady state allocates
/// nothing (`tests/realtime.rs`).
///
/// Errors: [`ModelError`] from the step; then no session has consumed its
/// frame.
pub fn step_sessions(
    model: &TalkingHeadModel,
    sessions: &mut [Session],
    sampler: Sampler,
    buffers: &mut StepBuffers,
    frames: &mut Vec<(usize, ExpressionFrame)>,
) -> Result<(), ModelError> {
    step_any(model, sessions, sampler, buffers, frames)
}

/// A [`Session`] or a `&mut Session`, for [`step_any`].
trait AsSession: StepItem {
    fn session(&mut self) -> &mut Session;
    fn session_ref(&self) -> &Session;
}

impl AsSession for Session {
    fn session(&mut self) -> &mut Session {
        self
    }
    fn session_ref(&self) -> &Session {
        self
    }
}

impl AsSession for &mut Session {
    fn session(&mut self) -> &mut Session {
        self
    }
    fn session_ref(&self) -> &Session {
        self
    }
}

/// Steps every session that has a pending frame, all in ONE batch, once.
/// Returns `(session index, frame)` for the frames completed. Allocates its
/// buffers per call: a real-time caller keeps [`StepBuffers`] and uses
/// [`step_sessions`].
pub fn step_batch(
    model: &TalkingHeadModel,
    sessions: &mut [&mut Session],
    sampler: Sampler,
) -> Result<Vec<(usize, ExpressionFrame)>, ModelError> {
    let mut frames = Vec::new();
    step_any(
        model,
        sessions,
        sampler,
        &mut StepBuffers::default(),
        &mut frames,
    )?;
    Ok(frames)
}

/// Runs one session to the end over a whole buffer of audio: the path of
/// `talking-head bake`. Feeds audio in 1-second chunks and steps in between,
/// so memory stays bounded. Returns every frame of the stream, in order.
pub fn run_to_end(
    model: &TalkingHeadModel,
    session: &mut Session,
    pcm: Pcm<'_>,
    sampler: Sampler,
    mut progress: impl FnMut(u64),
) -> Result<Vec<ExpressionFrame>, SessionError> {
    let fmt = session.format();
    let chunk = fmt.sample_rate as usize * fmt.channels as usize;
    let mut frames = Vec::new();
    let drain = |s: &mut Session, frames: &mut Vec<ExpressionFrame>| -> Result<(), SessionError> {
        while s.pending_frames() > 0 {
            for (_, f) in step_batch(model, &mut [&mut *s], sampler)? {
                frames.push(f);
            }
        }
        Ok(())
    };
    match pcm {
        Pcm::F32(x) => {
            for c in x.chunks(chunk.max(1)) {
                session.push(Pcm::F32(c))?;
                drain(session, &mut frames)?;
                progress(c.len() as u64);
            }
        }
        Pcm::I16(x) => {
            for c in x.chunks(chunk.max(1)) {
                session.push(Pcm::I16(c))?;
                drain(session, &mut frames)?;
                progress(c.len() as u64);
            }
        }
    }
    session.finish();
    drain(session, &mut frames)?;
    Ok(frames)
}
