//! The speech → expression model: an online causal transformer encoder and a
//! conditional diffusion denoiser with a multi-step teacher sampler (DDIM +
//! classifier-free guidance on emotion) and a single-step distilled student.
//!
//! Follows *Audio Driven Real-Time Facial Animation for Social Telepresence*
//! (Lee et al., SIGGRAPH Asia 2025, "AudioRTA": online encoder + one-step
//! diffusion decoder with emotion conditioning) and *StreamingTalker* (Yang et
//! al. 2025: autoregressive diffusion over a short window of past motion).
//!
//! Streaming: [`TalkingHeadModel::step_items`] advances any number of
//! sessions ([`StreamState`]) by one animation frame as one batch, through
//! plain-memory kernels over each session's own fixed-size state (the
//! `fast` module: `gemm` for every matrix product, no allocation in steady
//! state; [`TalkingHeadModel::step`] is the allocating convenience form).
//! The batch form ([`TalkingHeadModel::encode`], candle) is what training
//! differentiates; the test suite proves the two agree within 1e-4.
//!
//! Look-ahead is an output delay: at encoder step `t` (audio up to the end of
//! frame `t`) the denoiser produces frame `t - L`, so the first `L` steps
//! output nothing ([`ModelConfig::lookahead_frames`]).

mod checkpoint;
mod config;
pub mod denoiser;
mod emotion;
pub mod encoder;
pub(crate) mod fast;
mod init;
pub(crate) mod nn;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

pub use checkpoint::{CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, ModelInfo, save_checkpoint};
pub use config::{
    ChannelMap, DiffusionConfig, EMOTION_COUNT, EMOTIONS, MAX_CALIBRATION_KNOTS, ModelConfig,
    OutputCalibration, Prediction,
};
pub use denoiser::alpha_bar;
pub use emotion::{emotion_offsets, emotion_rest_face};

/// Path of the shipped default model, relative to the crate root.
pub const DEFAULT_MODEL_PATH: &str = "assets/models/default.safetensors";

/// Where the default model is looked for on disk: `$TALKING_HEAD_MODEL`,
/// else `./assets/models/default.safetensors` under the working directory,
/// else the shipped copy in this crate's source tree (a development
/// convenience of the CLI; a game should use [`load_default_model`], which
/// falls back to the copy embedded in the binary instead).
pub fn default_model_path() -> std::path::PathBuf {
    if let Some(p) = model_path_from_env() {
        return p;
    }
    let local = std::path::PathBuf::from(DEFAULT_MODEL_PATH);
    if local.exists() {
        return local;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT_MODEL_PATH)
}

/// `$TALKING_HEAD_MODEL` as a path; unset or empty gives `None` (an empty
/// value counts as unset, as shells leave it with `TALKING_HEAD_MODEL=`).
pub fn model_path_from_env() -> Option<PathBuf> {
    std::env::var_os("TALKING_HEAD_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The shipped default model (student + encoder, 1.7 MB with its weight
/// matrices in f16), compiled into the binary (feature `embedded-model`, on
/// by default), so a game copied to a player's machine animates with no
/// files next to it.
#[cfg(feature = "embedded-model")]
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../../../../assets/models/default.safetensors");

/// Loads the default model: `$TALKING_HEAD_MODEL` when set and not empty (an error if it
/// cannot be loaded), else `./assets/models/default.safetensors` under the
/// working directory when present, else the embedded copy
/// ([`EMBEDDED_MODEL`], feature `embedded-model`). Returns the model and a
/// description of where it came from.
///
/// Errors: [`ModelError`] from the file or the embedded bytes; without the
/// feature and with no file, [`ModelError::Io`] naming the path looked at.
pub fn load_default_model() -> Result<(TalkingHeadModel, String), ModelError> {
    let env = model_path_from_env();
    let local = PathBuf::from(DEFAULT_MODEL_PATH);
    if let Some(p) = env.or_else(|| local.exists().then_some(local.clone())) {
        let m = TalkingHeadModel::load(&p)?;
        return Ok((m, p.display().to_string()));
    }
    #[cfg(feature = "embedded-model")]
    {
        let m =
            TalkingHeadModel::load_from_bytes(EMBEDDED_MODEL, "<embedded default model>".as_ref())?;
        Ok((m, "the embedded default model".into()))
    }
    #[cfg(not(feature = "embedded-model"))]
    Err(ModelError::Io {
        path: local,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no model file (set $TALKING_HEAD_MODEL, or enable the `embedded-model` feature)",
        ),
    })
}

use crate::features::FeatureNorm;
use crate::rig::arkit::Blendshape;
use crate::rig::{BLENDSHAPE_COUNT, MOUTH_CHANNELS};
use denoiser::{Denoiser, emotion_input, style_input};
use encoder::OnlineEncoder;
use fast::{EncoderState, FastDenoiser, FastEncoder, sized};
pub use fast::{MatmulProbe, StepScratch};
use init::*;

/// Errors of model construction, checkpoint I/O and inference.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The checkpoint file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, garbage, ...).
    #[error("checkpoint {path} is corrupt or truncated: {reason}")]
    Corrupt {
        /// File path.
        path: PathBuf,
        /// What the safetensors parser reported.
        reason: String,
    },
    /// A safetensors file, but not one of ours.
    #[error("{path} is not a bevy_talking_head checkpoint (metadata `format` is {found:?})")]
    NotACheckpoint {
        /// File path.
        path: PathBuf,
        /// The `format` metadata found, if any.
        found: Option<String>,
    },
    /// Written by an incompatible version of the format.
    #[error("checkpoint {path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// File path.
        path: PathBuf,
        /// Version in the file.
        found: String,
        /// Version this build reads.
        supported: u32,
    },
    /// A required metadata entry is missing or malformed.
    #[error("checkpoint {path}: metadata `{key}` {reason}")]
    BadMetadata {
        /// File path.
        path: PathBuf,
        /// Metadata key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the config requires is absent.
    #[error("checkpoint {path}: missing tensor `{name}`")]
    MissingTensor {
        /// File path.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// A tensor has the wrong shape for the config.
    #[error("checkpoint {path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// File path.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Shape the config requires.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds non-finite values or an unsupported dtype.
    #[error("checkpoint {path}: tensor `{name}` {reason}")]
    BadTensor {
        /// File path.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A style name that the model does not know.
    #[error("unknown style `{name}`; this model has {available:?}")]
    UnknownStyle {
        /// The requested name.
        name: String,
        /// The model's styles.
        available: Vec<String>,
    },
    /// The requested sampler needs a network that this checkpoint lacks.
    #[error("this model has no {0} denoiser")]
    MissingDenoiser(&'static str),
    /// Bad arguments to a model call (sizes that do not match).
    #[error("bad input: {0}")]
    BadInput(String),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Per-channel normalisation of the motion space the diffusion runs in:
/// `y = (w - mean) / std` for ARKit weights `w` in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotionNorm {
    /// Mean weight per channel, `[52]` in ARKit order.
    pub mean: Vec<f32>,
    /// Standard deviation per channel, `[52]`, each > 0.
    pub std: Vec<f32>,
}

/// Smallest motion-normalisation std a checkpoint may hold (weights are in
/// [0, 1]; the trainer's stds are at least 0.05).
pub const MOTION_STD_FLOOR: f32 = 1e-4;

impl Default for MotionNorm {
    fn default() -> Self {
        Self {
            mean: vec![0.0; BLENDSHAPE_COUNT],
            std: vec![0.25; BLENDSHAPE_COUNT],
        }
    }
}

impl MotionNorm {
    fn validate(&self) -> Result<(), String> {
        if self.mean.len() != BLENDSHAPE_COUNT || self.std.len() != BLENDSHAPE_COUNT {
            return Err(format!("needs {BLENDSHAPE_COUNT} means and stds"));
        }
        if self.mean.iter().any(|v| !v.is_finite())
            || self
                .std
                .iter()
                .any(|v| !(v.is_finite() && *v >= MOTION_STD_FLOOR))
        {
            return Err(format!(
                "values must be finite and std >= {MOTION_STD_FLOOR} (a smaller std blows the decoder's motion history up)"
            ));
        }
        Ok(())
    }

    /// Weights → normalised motion space.
    pub fn normalize(&self, w: &[f32; BLENDSHAPE_COUNT]) -> [f32; BLENDSHAPE_COUNT] {
        std::array::from_fn(|i| (w[i] - self.mean[i]) / self.std[i])
    }
}

/// Which sampler produces a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// The distilled single-step student (the default, real-time path).
    Student,
    /// The multi-step teacher: DDIM with `steps` steps and classifier-free
    /// guidance scale `guidance` on emotion (1 = none).
    Teacher {
        /// Number of DDIM steps (≥ 1).
        steps: usize,
        /// Guidance scale.
        guidance: f32,
    },
}

/// Where a checkpoint's weights came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `true` only for weights produced by the trainer on real data. Tools
    /// refuse to write animation from untrained weights unless asked.
    pub trained: bool,
    /// Free text: recipe, data, commands.
    pub description: String,
}

/// One input frame of one session: the raw (un-normalised) log-mel frames
/// covering the animation frame, and its loudness.
#[derive(Clone, Copy, Debug)]
pub struct FrameInput<'a> {
    /// `[mels_per_frame, n_mels]` row-major log10-mel values (2 × 80 at the
    /// default 50 fps).
    pub log_mel: &'a [f32],
    /// RMS level of the frame's audio in dBFS (`-inf` for digital silence).
    pub rms_dbfs: f32,
}

/// One produced expression frame.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputFrame {
    /// Frame index `f`: the frame covers audio samples
    /// `[f * samples_per_frame, (f + 1) * samples_per_frame)` at 16 kHz.
    pub index: u64,
    /// 52 ARKit weights in [0, 1], canonical order ([`crate::rig::ARKIT_BLENDSHAPES`]).
    pub weights: [f32; BLENDSHAPE_COUNT],
}

/// One speaker's streaming model state: encoder state (conv taps + rotating
/// KV caches), motion history, noise generator, emotion and style. Its size
/// is fixed by the config whatever the stream length.
#[derive(Debug)]
pub struct StreamState {
    enc: EncoderState,
    history: Vec<f32>,
    rng: StdRng,
    seed: u64,
    /// Emotion weights in [0, 1], [`EMOTIONS`] order.
    pub emotion: [f32; EMOTION_COUNT],
    /// Style id (index into [`ModelConfig::styles`]).
    pub style: usize,
    levels: VecDeque<f32>,
    frames_out: u64,
    nonfinite_frames: u64,
}

impl StreamState {
    /// Frames stepped through the encoder so far.
    pub fn frames_in(&self) -> u64 {
        self.enc.pos
    }

    /// Frames produced so far (`frames_in - lookahead`, at least 0).
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Frames in which the network produced a NaN or infinite weight (set
    /// to 0 in the emitted frame). Non-zero means a corrupt or hostile
    /// checkpoint, or a sampler setting (e.g. a huge guidance scale) that
    /// overflows.
    pub fn nonfinite_frames(&self) -> u64 {
        self.nonfinite_frames
    }

    /// Approximate bytes of tensor state held (constant over a stream).
    pub fn state_bytes(&self) -> usize {
        self.enc.bytes() + self.history.len() * 4 + self.levels.len() * 4
    }
}

/// The neutral emotion vector (`neutral = 1`, others 0).
pub const NEUTRAL_EMOTION: [f32; EMOTION_COUNT] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];

/// Trained or random model: encoder + student and/or teacher denoiser,
/// feature and motion normalisation, config. Cheap to share between threads
/// (`Arc`); tensors are immutable.
#[derive(Debug)]
pub struct TalkingHeadModel {
    config: ModelConfig,
    encoder: OnlineEncoder,
    student: Option<Denoiser>,
    teacher: Option<Denoiser>,
    fast_encoder: FastEncoder,
    fast_student: Option<FastDenoiser>,
    feature_norm: FeatureNorm,
    motion_norm: MotionNorm,
    /// Per style id: the calibrated channels (index, map) of
    /// `config.calibration`.
    calibration: Vec<Vec<(usize, ChannelMap)>>,
    provenance: Provenance,
    tensors: BTreeMap<String, Tensor>,
    device: Device,
}

/// Most parameters (encoder + student + teacher) a checkpoint may declare:
/// 16 M (64 MB as f32). The shipped model has about 1.4 M.
pub const MAX_PARAMETERS: usize = 16_000_000;

impl TalkingHeadModel {
    /// The shape of every parameter (`encoder.*`, `student.*`, `teacher.*`)
    /// of a config, computed without allocating the tensors.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when the config is out of range
    /// ([`ModelConfig::validate`]) or the networks cannot be built.
    pub fn parameter_shapes(
        config: &ModelConfig,
    ) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
        config.validate()?;
        let probe = std::sync::Arc::new(ShapeProbe {
            shapes: Mutex::new(BTreeMap::new()),
        });
        build_all(config, &probe)?;
        let shapes = probe
            .shapes
            .lock()
            .map_err(|_| ModelError::InvalidConfig("shape probe lock poisoned".into()))?
            .clone();
        Ok(shapes)
    }

    /// Total parameters of a config (all three networks), checked against
    /// [`MAX_PARAMETERS`] without allocating them.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the count and the limit.
    pub fn check_size(config: &ModelConfig) -> Result<usize, ModelError> {
        let total: usize = Self::parameter_shapes(config)?
            .values()
            .map(|d| d.iter().product::<usize>())
            .sum();
        if total > MAX_PARAMETERS {
            return Err(ModelError::InvalidConfig(format!(
                "{total} parameters exceed the limit of {MAX_PARAMETERS}"
            )));
        }
        Ok(total)
    }

    /// A randomly initialised model (seeded, reproducible), marked untrained.
    /// Used by benchmarks, tests and as the trainer's starting point.
    pub fn random(config: ModelConfig, seed: u64) -> Result<Self, ModelError> {
        Self::check_size(&config)?;
        let tensors = Self::init_tensors(&config, seed)?;
        let feature_norm = FeatureNorm::identity(config.mel.n_mels);
        Self::from_parts(
            config,
            tensors,
            feature_norm,
            MotionNorm::default(),
            Provenance::default(),
        )
    }

    /// Seeded initial tensors for every parameter (`encoder.*`, `student.*`,
    /// `teacher.*`) of a config.
    pub fn init_tensors(
        config: &ModelConfig,
        seed: u64,
    ) -> Result<BTreeMap<String, Tensor>, ModelError> {
        let init = std::sync::Arc::new(SeededInit {
            seed,
            made: Mutex::new(BTreeMap::new()),
        });
        build_all(config, &init)?;
        let made = init
            .made
            .lock()
            .map_err(|_| ModelError::InvalidConfig("initialiser lock poisoned".into()))?
            .clone();
        Ok(made)
    }

    /// Builds a model from named tensors (as found in a checkpoint or a
    /// trainer's `VarMap`). `encoder.*` is required; `student.*` and
    /// `teacher.*` are each optional but one must be present.
    pub fn from_parts(
        config: ModelConfig,
        tensors: BTreeMap<String, Tensor>,
        feature_norm: FeatureNorm,
        motion_norm: MotionNorm,
        provenance: Provenance,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        feature_norm
            .validate(config.mel.n_mels)
            .map_err(|e| ModelError::InvalidConfig(format!("feature normalisation: {e}")))?;
        motion_norm
            .validate()
            .map_err(|e| ModelError::InvalidConfig(format!("motion normalisation: {e}")))?;
        let device = Device::Cpu;
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let has = |prefix: &str| map.keys().any(|k| k.starts_with(prefix));
        let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &device);
        let encoder = OnlineEncoder::new(&config, vb.pp("encoder"))?;
        let student = if has("student.") {
            Some(Denoiser::new(&config, vb.pp("student"))?)
        } else {
            None
        };
        let teacher = if has("teacher.") {
            Some(Denoiser::new(&config, vb.pp("teacher"))?)
        } else {
            None
        };
        if student.is_none() && teacher.is_none() {
            return Err(ModelError::MissingDenoiser("student or teacher"));
        }
        let fast_encoder = encoder.fast(&config)?;
        let fast_student = student.as_ref().map(Denoiser::fast).transpose()?;
        // Output calibration per style id, channel names resolved once
        // (`config.validate()` above checked every style and channel name).
        let mut calibration = vec![Vec::new(); config.styles.len()];
        for c in &config.calibration {
            if let Some(slot) = config.styles.iter().position(|s| *s == c.style) {
                calibration[slot] = c
                    .channels
                    .iter()
                    .filter_map(|m| Some((Blendshape::from_name(&m.channel)?.index(), m.clone())))
                    .collect();
            }
        }
        Ok(Self {
            calibration,
            config,
            encoder,
            student,
            teacher,
            fast_encoder,
            fast_student,
            feature_norm,
            motion_norm,
            provenance,
            tensors,
            device,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Feature normalisation (fixed, from training data).
    pub fn feature_norm(&self) -> &FeatureNorm {
        &self.feature_norm
    }

    /// Motion normalisation.
    pub fn motion_norm(&self) -> &MotionNorm {
        &self.motion_norm
    }

    /// A copy of this model with `calibration` as its output calibration
    /// (replacing any for the same style).
    ///
    /// Errors: [`ModelError::InvalidConfig`] when the calibration names an
    /// unknown style or holds out-of-range values.
    pub fn with_calibration(&self, calibration: OutputCalibration) -> Result<Self, ModelError> {
        let mut config = self.config.clone();
        config.calibration.retain(|c| c.style != calibration.style);
        config.calibration.push(calibration);
        Self::from_parts(
            config,
            self.tensors.clone(),
            self.feature_norm.clone(),
            self.motion_norm.clone(),
            self.provenance.clone(),
        )
    }

    /// Provenance (trained or not, description).
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Named parameter tensors (what a checkpoint stores).
    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// The encoder network (used by the trainer and distillation in `talking_head_train`).
    pub fn encoder_net(&self) -> &OnlineEncoder {
        &self.encoder
    }

    /// The teacher network, if present (used by distillation in `talking_head_train`).
    pub fn teacher_net(&self) -> Option<&Denoiser> {
        self.teacher.as_ref()
    }

    /// Whether the single-step student is present.
    pub fn has_student(&self) -> bool {
        self.student.is_some()
    }

    /// Whether the multi-step teacher is present.
    pub fn has_teacher(&self) -> bool {
        self.teacher.is_some()
    }

    /// Parameter count of the parts used by a sampler (encoder + that
    /// denoiser); `None` counts every stored tensor.
    pub fn parameter_count(&self, sampler: Option<Sampler>) -> usize {
        self.tensors
            .iter()
            .filter(|(k, _)| match sampler {
                None => true,
                Some(Sampler::Student) => !k.starts_with("teacher."),
                Some(Sampler::Teacher { .. }) => !k.starts_with("student."),
            })
            .map(|(_, t)| t.elem_count())
            .sum()
    }

    /// The sampler a config asks for by default: the student when present,
    /// else the teacher with its configured steps and guidance.
    pub fn default_sampler(&self) -> Sampler {
        if self.student.is_some() {
            Sampler::Student
        } else {
            Sampler::Teacher {
                steps: self.config.diffusion.teacher_steps,
                guidance: self.config.diffusion.guidance_scale,
            }
        }
    }

    /// A fresh session state: zero caches, neutral history, neutral
    /// emotion, style 0, noise seeded by `seed`.
    pub fn new_state(&self, seed: u64) -> Result<StreamState, ModelError> {
        let neutral = self.motion_norm.normalize(&[0.0; BLENDSHAPE_COUNT]);
        let mut history = Vec::with_capacity(self.config.history_frames * BLENDSHAPE_COUNT);
        for _ in 0..self.config.history_frames {
            history.extend_from_slice(&neutral);
        }
        Ok(StreamState {
            enc: self.fast_encoder.new_state(),
            history,
            rng: StdRng::seed_from_u64(seed),
            seed,
            emotion: NEUTRAL_EMOTION,
            style: 0,
            levels: VecDeque::with_capacity(self.config.lookahead_frames + 2),
            frames_out: 0,
            nonfinite_frames: 0,
        })
    }

    /// Resets a state to the start of a stream (keeps emotion and style).
    pub fn reset_state(&self, state: &mut StreamState) -> Result<(), ModelError> {
        let mut fresh = self.new_state(state.seed)?;
        fresh.emotion = state.emotion;
        fresh.style = state.style;
        *state = fresh;
        Ok(())
    }

    /// Batch encoder: `features: [B, T, input_dim]` of normalised log-mel
    /// stacks → encoder states `[B, T, d_model]`. Differentiable (trainer).
    pub fn encode(&self, features: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self.encoder.forward(features)?)
    }

    /// Normalises raw log-mel rows in place with the stored statistics.
    pub fn normalize_features(&self, log_mel: &mut [f32]) {
        self.feature_norm.apply(log_mel);
    }

    /// Advances `states.len()` sessions by one animation frame each, as one
    /// batch. `inputs[b]` is session `b`'s frame. Returns, per session, the
    /// frame completed by this step (`None` during the first
    /// `lookahead_frames` steps).
    ///
    /// A convenience over [`TalkingHeadModel::step_items`], which a real-time
    /// caller should use instead: this form allocates its buffers per call.
    ///
    /// Errors: [`ModelError::BadInput`] when the sizes disagree,
    /// [`ModelError::MissingDenoiser`] when the sampler's network is absent,
    /// [`ModelError::UnknownStyle`] for a style id out of range.
    pub fn step(
        &self,
        states: &mut [&mut StreamState],
        inputs: &[FrameInput<'_>],
        sampler: Sampler,
    ) -> Result<Vec<Option<OutputFrame>>, ModelError> {
        let b = states.len();
        if inputs.len() != b {
            return Err(ModelError::BadInput(format!(
                "{} inputs for {b} sessions",
                inputs.len()
            )));
        }
        let mut items: Vec<(&mut StreamState, FrameInput<'_>)> = states
            .iter_mut()
            .map(|s| &mut **s)
            .zip(inputs.iter().copied())
            .collect();
        let due: Vec<usize> = (0..b).collect();
        let mut scratch = StepScratch::default();
        let mut done = Vec::with_capacity(b);
        self.step_items(&mut items, &due, sampler, &mut scratch, &mut done)?;
        let mut out = vec![None; b];
        for (i, f) in done {
            out[i] = Some(f);
        }
        Ok(out)
    }

    /// Advances the sessions `items[due[..]]` by one animation frame each,
    /// as one batch, and appends `(index into items, frame)` to `out` for
    /// every frame completed (none during a session's first
    /// `lookahead_frames` steps). `due` must not repeat an index.
    ///
    /// The student path allocates nothing once `scratch` and `out` have seen
    /// a batch this large: it runs the plain-memory kernels of
    /// [`fast`](self) over each session's own state. The teacher path runs
    /// the candle denoiser (DDIM) and allocates.
    ///
    /// Errors: as [`TalkingHeadModel::step`]; on error no state has changed.
    pub fn step_items<S: StepItem>(
        &self,
        items: &mut [S],
        due: &[usize],
        sampler: Sampler,
        scratch: &mut StepScratch,
        out: &mut Vec<(usize, OutputFrame)>,
    ) -> Result<(), ModelError> {
        let b = due.len();
        if b == 0 {
            return Ok(());
        }
        let dim = self.config.input_dim();
        let styles = self.config.styles.len();
        for (k, &i) in due.iter().enumerate() {
            let Some(item) = items.get_mut(i) else {
                return Err(ModelError::BadInput(format!(
                    "due index {i} out of {} sessions",
                    b
                )));
            };
            let n = item.input().log_mel.len();
            if n != dim {
                return Err(ModelError::BadInput(format!(
                    "session {k}: {n} log-mel values, expected {dim}"
                )));
            }
            let style = item.state().style;
            if style >= styles {
                return Err(ModelError::UnknownStyle {
                    name: format!("#{style}"),
                    available: self.config.styles.clone(),
                });
            }
        }
        match sampler {
            Sampler::Student if self.fast_student.is_none() => {
                return Err(ModelError::MissingDenoiser("student"));
            }
            Sampler::Teacher { .. } if self.teacher.is_none() => {
                return Err(ModelError::MissingDenoiser("teacher"));
            }
            _ => {}
        }
        let feats = sized(&mut scratch.feats, b * dim);
        for (row, &i) in feats.chunks_exact_mut(dim).zip(due) {
            let inp = items[i].input();
            for (o, v) in row.iter_mut().zip(inp.log_mel) {
                *o = if v.is_finite() { *v } else { -10.0 };
            }
            self.feature_norm.apply(row);
        }
        self.fast_encoder
            .step(items, due, |it: &mut S| &mut it.state().enc, scratch);
        let lookahead = self.config.lookahead_frames;
        scratch.active.clear();
        for (k, &i) in due.iter().enumerate() {
            let level = items[i].input().rms_dbfs;
            let s = items[i].state();
            if s.levels.len() == s.levels.capacity() {
                s.levels.pop_front();
            }
            s.levels.push_back(level);
            while s.levels.len() > lookahead + 2 {
                s.levels.pop_front();
            }
            // Sessions past the look-ahead complete a frame this step.
            if s.enc.pos > lookahead as u64 {
                scratch.active.push(k);
            }
        }
        let n = scratch.active.len();
        if n == 0 {
            return Ok(());
        }
        let d = self.config.d_model;
        let hist_w = self.config.history_frames * BLENDSHAPE_COUNT;
        let noise_scale = self.config.diffusion.noise_scale;
        let cw = d + hist_w + fast::EMOTION_WIDTH;
        let StepScratch {
            h,
            cond_in,
            noise,
            styles,
            active,
            ..
        } = scratch;
        let cond_in = sized(cond_in, n * cw);
        let noise = sized(noise, n * BLENDSHAPE_COUNT);
        styles.clear();
        for (j, &k) in active.iter().enumerate() {
            let s = items[due[k]].state();
            let row = &mut cond_in[j * cw..(j + 1) * cw];
            row[..d].copy_from_slice(&h[k * d..(k + 1) * d]);
            row[d..d + hist_w].copy_from_slice(&s.history);
            let e = sanitize_emotion(&s.emotion);
            row[d + hist_w..d + hist_w + EMOTION_COUNT].copy_from_slice(&e);
            row[cw - 1] = 0.0;
            styles.push(s.style);
            for z in &mut noise[j * BLENDSHAPE_COUNT..(j + 1) * BLENDSHAPE_COUNT] {
                let v: f32 = StandardNormal.sample(&mut s.rng);
                *z = noise_scale * v;
            }
        }
        match sampler {
            Sampler::Student => {
                let net = self
                    .fast_student
                    .as_ref()
                    .ok_or(ModelError::MissingDenoiser("student"))?;
                net.sample(n, scratch);
            }
            Sampler::Teacher { steps, guidance } => {
                let y = self.teacher_sample(scratch, n, cw, steps, guidance)?;
                sized(&mut scratch.y, n * BLENDSHAPE_COUNT).copy_from_slice(&y);
            }
        }
        let gate_db = self.config.silence_gate_dbfs;
        for j in 0..n {
            let k = scratch.active[j];
            let i = due[k];
            let row = &scratch.y[j * BLENDSHAPE_COUNT..(j + 1) * BLENDSHAPE_COUNT];
            let s = items[i].state();
            let mut w = [0f32; BLENDSHAPE_COUNT];
            let mut nonfinite = false;
            for (c, wc) in w.iter_mut().enumerate() {
                let v = row[c] * self.motion_norm.std[c] + self.motion_norm.mean[c];
                *wc = if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    nonfinite = true;
                    0.0
                };
            }
            s.nonfinite_frames += u64::from(nonfinite);
            // Silence gate: this frame, the one before and the look-ahead all
            // below the threshold (NaN levels count as silent).
            let silent = |th: f32| {
                s.levels
                    .iter()
                    .all(|l| l.partial_cmp(&th) != Some(std::cmp::Ordering::Greater))
            };
            let gated = gate_db.is_some_and(silent);
            // A gated mouth is closed and neutral but for the emotion's own
            // expression (a smile stays a smile between sentences): the
            // emotion's rest face, the label of silence in training.
            let rest = gated.then(|| emotion_rest_face(&sanitize_emotion(&s.emotion)));
            if let Some(rest) = &rest {
                for &c in MOUTH_CHANNELS.iter() {
                    w[c] = rest[c];
                }
            }
            // The history keeps the model's own output; the calibration
            // (if any) only shapes what is emitted.
            let yn = self.motion_norm.normalize(&w);
            s.history.copy_within(BLENDSHAPE_COUNT.., 0);
            let tail = s.history.len() - BLENDSHAPE_COUNT;
            s.history[tail..].copy_from_slice(&yn);
            if let Some(cal) = self.calibration.get(s.style).filter(|c| !c.is_empty()) {
                for (c, m) in cal {
                    w[*c] = m.map(w[*c]);
                }
                if let Some(rest) = &rest {
                    for &c in MOUTH_CHANNELS.iter() {
                        w[c] = rest[c];
                    }
                }
            }
            let index = s.frames_out;
            s.frames_out += 1;
            out.push((i, OutputFrame { index, weights: w }));
        }
        Ok(())
    }

    /// The teacher's DDIM sampler (with guidance) on the conditioning rows
    /// gathered in `scratch.cond_in`; returns `x0 [n, 52]` flattened.
    fn teacher_sample(
        &self,
        scratch: &StepScratch,
        n: usize,
        cw: usize,
        steps: usize,
        guidance: f32,
    ) -> Result<Vec<f32>, ModelError> {
        let net = self
            .teacher
            .as_ref()
            .ok_or(ModelError::MissingDenoiser("teacher"))?;
        let d = self.config.d_model;
        let hist_w = self.config.history_frames * BLENDSHAPE_COUNT;
        let rows = Tensor::from_slice(&scratch.cond_in[..n * cw], (n, cw), &self.device)?;
        let h = rows.narrow(1, 0, d)?;
        let hist = rows.narrow(1, d, hist_w)?;
        let emotions: Vec<[f32; EMOTION_COUNT]> = (0..n)
            .map(|j| {
                let base = j * cw + d + hist_w;
                std::array::from_fn(|c| scratch.cond_in[base + c])
            })
            .collect();
        let style = style_input(&scratch.styles[..n], &self.device)?;
        let emo = emotion_input(&emotions, false, &self.device)?;
        let noise = Tensor::from_slice(
            &scratch.noise[..n * BLENDSHAPE_COUNT],
            (n, BLENDSHAPE_COUNT),
            &self.device,
        )?;
        let cond = net.condition(&h, &hist, &emo, &style)?;
        let uncond = if guidance != 1.0 {
            let emo_u = emotion_input(&emotions, true, &self.device)?;
            Some(net.condition(&h, &hist, &emo_u, &style)?)
        } else {
            None
        };
        let y = net.sample_ddim(&noise, &cond, uncond.as_ref(), steps.max(1), guidance)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    /// FLOPs of one student session-step (matrix products and attention
    /// over a full window), the figure `talking-head bench` divides by time.
    pub fn student_step_flops(&self) -> usize {
        self.fast_encoder.flops() + self.fast_student.as_ref().map_or(0, FastDenoiser::flops)
    }
}

/// One session's part of a batched step
/// ([`TalkingHeadModel::step_items`]): its model state and its next input
/// frame. Implemented by `(&mut StreamState, FrameInput)` and by
/// [`crate::runtime::Session`].
pub trait StepItem {
    /// The session's model state.
    fn state(&mut self) -> &mut StreamState;
    /// The session's next input frame.
    fn input(&self) -> FrameInput<'_>;
}

impl StepItem for (&mut StreamState, FrameInput<'_>) {
    fn state(&mut self) -> &mut StreamState {
        self.0
    }
    fn input(&self) -> FrameInput<'_> {
        self.1
    }
}

/// Clamps emotion weights to [0, 1], NaN → 0.
fn sanitize_emotion(e: &[f32; EMOTION_COUNT]) -> [f32; EMOTION_COUNT] {
    std::array::from_fn(|i| {
        if e[i].is_finite() {
            e[i].clamp(0.0, 1.0)
        } else {
            0.0
        }
    })
}

/// The canonical emotion vector the model is conditioned on: every weight
/// clamped to [0, 1] (NaN as 0), and the neutral weight replaced by
/// `max(0, 1 − sum of the other six)`. Sliders that leave neutral at 1, a
/// spec without neutral and `emotion_vector`-style vectors all map to the
/// same conditioning.
pub fn canonical_emotion(e: [f32; EMOTION_COUNT]) -> [f32; EMOTION_COUNT] {
    let mut out = [0f32; EMOTION_COUNT];
    for (o, v) in out.iter_mut().zip(e).skip(1) {
        *o = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    }
    let others: f32 = out[1..].iter().sum();
    out[0] = (1.0 - others).max(0.0);
    out
}

/// Parses `happy=0.8,sad=0.1` into an emotion vector (unnamed emotions 0;
/// when no weight is given at all, neutral = 1).
pub fn parse_emotion(spec: &str) -> Result<[f32; EMOTION_COUNT], ModelError> {
    let mut e = [0f32; EMOTION_COUNT];
    let mut seen = [false; EMOTION_COUNT];
    let mut any = false;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| ModelError::BadInput(format!("`{part}`: expected NAME=WEIGHT")))?;
        let i = EMOTIONS
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                ModelError::BadInput(format!(
                    "unknown emotion `{}`; known: {}",
                    name.trim(),
                    EMOTIONS.join(", ")
                ))
            })?;
        let v: f32 = value
            .trim()
            .parse()
            .map_err(|_| ModelError::BadInput(format!("`{part}`: weight is not a number")))?;
        if !(0.0..=1.0).contains(&v) {
            return Err(ModelError::BadInput(format!(
                "`{part}`: weight must be in [0, 1]"
            )));
        }
        if seen[i] {
            return Err(ModelError::BadInput(format!(
                "`{}` is given twice in `{spec}`",
                EMOTIONS[i]
            )));
        }
        seen[i] = true;
        e[i] = v;
        any = true;
    }
    if !any {
        e = NEUTRAL_EMOTION;
    }
    Ok(e)
}

#[cfg(test)]
mod tests;
