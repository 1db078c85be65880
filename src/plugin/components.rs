//! Components a game puts on (or reads from) an avatar.

use std::collections::VecDeque;

use bevy::prelude::*;

use crate::model::{EMOTION_COUNT, EMOTIONS, NEUTRAL_EMOTION};
use crate::rig::{ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, Blendshape, RetargetMap};
use crate::runtime::{ExpressionFrame, SessionId};
use crate::upper_face::{UpperFaceGenerator, UpperFaceStats};

/// Emotion conditioning of one talking head: 7 weights (order of
/// [`EMOTIONS`]: neutral, happy, sad, angry, surprised, fearful, disgusted),
/// each in `[0, 1]`, scaled by `intensity` in `[0, 1]`.
///
/// The model is conditioned on `weights * intensity` (the paper's emotion
/// input, Lee et al. 2025 §4); changes reach the worker within a frame
/// through its control channel (latest value wins). Out-of-range or NaN
/// values are clamped to `[0, 1]` (NaN reads as 0) before they are sent.
#[derive(Clone, Copy, Debug, PartialEq, Reflect)]
pub struct Emotion {
    /// Weights in `[0, 1]`, in the order of [`EMOTIONS`].
    pub weights: [f32; EMOTION_COUNT],
    /// Overall intensity in `[0, 1]`.
    pub intensity: f32,
}

impl Default for Emotion {
    fn default() -> Self {
        Self::neutral()
    }
}

impl Emotion {
    /// Neutral, full intensity.
    pub fn neutral() -> Self {
        Self {
            weights: NEUTRAL_EMOTION,
            intensity: 1.0,
        }
    }

    /// One named emotion (`"happy"`, `"sad"`, ... see [`EMOTIONS`],
    /// case-insensitive) at `intensity`. An unknown name gives `None`.
    pub fn named(name: &str, intensity: f32) -> Option<Self> {
        let i = EMOTIONS.iter().position(|e| e.eq_ignore_ascii_case(name))?;
        let mut weights = [0.0; EMOTION_COUNT];
        weights[i] = 1.0;
        Some(Self { weights, intensity })
    }

    /// The vector sent to the model: `weights * intensity`, clamped to
    /// `[0, 1]`, NaN as 0.
    pub fn conditioning(&self) -> [f32; EMOTION_COUNT] {
        let k = clamp01(self.intensity);
        let mut out = [0.0; EMOTION_COUNT];
        for (o, w) in out.iter_mut().zip(self.weights) {
            *o = clamp01(w) * k;
        }
        out
    }
}

pub(crate) fn clamp01(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// Marks an avatar root as a talking head: one session of the inference
/// worker. The voice comes from a voice component on the same entity
/// ([`VoiceStream`](super::VoiceStream), `KiraVoice` with feature `kira`,
/// `MicrophoneVoice` with feature `mic`); the morph targets are found on the
/// entity and its descendants (glTF meshes, including faces split over
/// several meshes).
///
/// Inserting it also inserts [`FaceExpression`], [`MorphBinding`] and the
/// internal [`TalkingHeadState`].
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component, Default)]
#[require(FaceExpression, MorphBinding, TalkingHeadState)]
pub struct TalkingHead {
    /// Emotion conditioning (live: change it at any time).
    pub emotion: Emotion,
    /// Animation style by name, one of the model's styles (the shipped
    /// model: `"phonetic"`, a phonetically labelled look, and `"facegood"`,
    /// the FACEGOOD animator's look). Unknown names fall back to the first
    /// style with a warning.
    pub style: String,
    /// Gain on the model's motion around the emotion's rest face
    /// ([`crate::model::emotion_rest_face`]): each weight is
    /// `rest + gain × (predicted − rest)`, so 1 = as predicted, 0 = the rest
    /// face (neutral for neutral), 2 = twice the motion; clamped to
    /// `[0, 2]` (NaN = 0), results clamped to `[0, 1]`.
    pub gain: f32,
    /// Add the procedural blink / saccade / brow layer (rates measured on
    /// real iPhone captures: see [`crate::upper_face`]).
    pub upper_face: bool,
    /// Seed of the model's noise and of the upper-face layer. 0 (the
    /// default) derives one from the entity, so heads in a crowd blink and
    /// look around independently; any other value is used as is (the same
    /// seed, the same blinks). A change takes effect in the layer at once
    /// and in the model at the head's next session.
    pub seed: u64,
}

impl Default for TalkingHead {
    fn default() -> Self {
        Self {
            emotion: Emotion::neutral(),
            style: "phonetic".into(),
            gain: 1.0,
            upper_face: true,
            seed: 0,
        }
    }
}

impl TalkingHead {
    /// A talking head with the given emotion.
    pub fn with_emotion(mut self, emotion: Emotion) -> Self {
        self.emotion = emotion;
        self
    }

    /// A talking head with the given style name.
    pub fn with_style(mut self, style: impl Into<String>) -> Self {
        self.style = style.into();
        self
    }

    /// A talking head with the given seed (see [`TalkingHead::seed`]).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The seed used for `entity`: [`TalkingHead::seed`], or when it is 0 the
    /// entity's bits (the generators seed through rand's `seed_from_u64`,
    /// which scrambles nearby values apart).
    pub fn effective_seed(&self, entity: Entity) -> u64 {
        if self.seed != 0 {
            self.seed
        } else {
            entity.to_bits()
        }
    }
}

/// The current 52 ARKit weights of a talking head, in [`ARKIT_BLENDSHAPES`]
/// order, each in `[0, 1]`.
///
/// Written in `PreUpdate` by [`TalkingHeadSystems::Interpolate`](super::TalkingHeadSystems)
/// (model output sampled at the listener's playback time, plus the
/// upper-face layer), read in `PostUpdate` by
/// [`TalkingHeadSystems::ApplyMorphs`](super::TalkingHeadSystems). Game
/// code in `Update` sees this frame's face and may change it: a wink is
/// `face.set(Blendshape::EyeBlinkLeft, 1.0)`.
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component, Default)]
pub struct FaceExpression {
    /// Weights in `[0, 1]`, ARKit order.
    pub weights: [f32; BLENDSHAPE_COUNT],
}

impl Default for FaceExpression {
    fn default() -> Self {
        Self {
            weights: [0.0; BLENDSHAPE_COUNT],
        }
    }
}

impl FaceExpression {
    /// One channel's weight.
    pub fn get(&self, shape: Blendshape) -> f32 {
        self.weights[shape.index()]
    }

    /// Sets one channel (clamped to `[0, 1]`, NaN as 0).
    pub fn set(&mut self, shape: Blendshape, weight: f32) {
        self.weights[shape.index()] = clamp01(weight);
    }

    /// Iterates `(ARKit name, weight)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f32)> + '_ {
        ARKIT_BLENDSHAPES.iter().copied().zip(self.weights)
    }
}

/// One externally tracked channel: `weight` in `[0, 1]`, mixed into the
/// face with `blend` in `[0, 1]` (1 replaces the model's value, 0.5 is the
/// average).
#[derive(Clone, Copy, Debug, PartialEq, Reflect)]
pub struct SensorValue {
    /// Tracked weight in `[0, 1]`.
    pub weight: f32,
    /// Blend factor in `[0, 1]`: 1 = replace.
    pub blend: f32,
}

/// Channels measured by sensors (a headset's eye or face tracking) that
/// replace or blend the model's channels, per channel: the plugin's form
/// of the headset-sensor input of Lee et al. 2025 (§4.3). Applied in
/// [`TalkingHeadSystems::ApplyMorphs`](super::TalkingHeadSystems) after game
/// code, so sensors win.
#[derive(Component, Clone, Debug, Default, Reflect)]
#[reflect(Component, Default)]
pub struct SensorOverrides {
    values: Vec<Option<SensorValue>>,
}

impl SensorOverrides {
    /// Sets a channel: `weight` and `blend` are clamped to `[0, 1]`.
    pub fn set(&mut self, shape: Blendshape, weight: f32, blend: f32) {
        if self.values.len() < BLENDSHAPE_COUNT {
            self.values.resize(BLENDSHAPE_COUNT, None);
        }
        self.values[shape.index()] = Some(SensorValue {
            weight: clamp01(weight),
            blend: clamp01(blend),
        });
    }

    /// Stops overriding a channel.
    pub fn clear(&mut self, shape: Blendshape) {
        if let Some(v) = self.values.get_mut(shape.index()) {
            *v = None;
        }
    }

    /// Stops overriding every channel (e.g. tracking lost).
    pub fn clear_all(&mut self) {
        self.values.clear();
    }

    /// The override of one channel.
    pub fn get(&self, shape: Blendshape) -> Option<SensorValue> {
        self.values.get(shape.index()).copied().flatten()
    }

    /// Mixes the overrides into `weights` (ARKit order).
    pub fn apply(&self, weights: &mut [f32; BLENDSHAPE_COUNT]) {
        for (w, v) in weights.iter_mut().zip(&self.values) {
            if let Some(v) = v {
                *w = clamp01(*w + (v.weight - *w) * v.blend);
            }
        }
    }
}

/// A retarget map for rigs whose morph targets are not named after the
/// ARKit blendshapes (e.g. Oculus `viseme_aa`, MetaHuman-style names):
/// sources are ARKit names, targets are the mesh's morph target names. The
/// same type as the corpus's retarget maps ([`RetargetMap`], JSON or RON
/// through serde). Without it the plugin binds morph targets by ARKit name
/// (case-insensitive).
#[derive(Component, Clone, Debug)]
pub enum FaceRetarget {
    /// A map held by value.
    Map(RetargetMap),
    /// A map loaded through the `AssetServer` (`*.retarget.json` or
    /// `*.retarget.ron`, see [`super::RetargetAsset`]); the head binds once
    /// it has loaded and rebinds whenever it changes (hot reload).
    Asset(Handle<super::RetargetAsset>),
}

impl FaceRetarget {
    /// Reads a JSON retarget map from a file now (no asset server).
    ///
    /// # Errors
    /// [`crate::rig::RetargetError`] if the file cannot be read or parsed.
    pub fn load_json(path: impl AsRef<std::path::Path>) -> Result<Self, crate::rig::RetargetError> {
        RetargetMap::load_json(path).map(Self::Map)
    }

    /// A map from the asset server, e.g.
    /// `FaceRetarget::asset(&server, "rigs/oculus.retarget.ron")`.
    pub fn asset(server: &AssetServer, path: impl Into<String>) -> Self {
        Self::Asset(server.load(path.into()))
    }
}

/// One mesh node driven by a head: its entity, the compiled map from the
/// ARKit channels to its morph targets, and how many targets it covers.
#[derive(Clone, Debug)]
pub(crate) struct BoundMesh {
    pub entity: Entity,
    pub map: crate::rig::CompiledRetarget,
    pub covered: usize,
}

/// How a talking head's channels reach its meshes, resolved automatically
/// from the morph target names of every mesh under the head (see
/// [`TalkingHeadSystems::Bind`](super::TalkingHeadSystems)).
#[derive(Component, Clone, Debug, Default)]
pub struct MorphBinding {
    pub(crate) meshes: Vec<BoundMesh>,
    /// Set when the avatar is a VRM 1.0 driven through its expression presets.
    #[cfg(feature = "vrm")]
    pub(crate) vrm: Option<super::vrm::VrmBinding>,
    pub(crate) missing: Vec<String>,
    pub(crate) dirty: bool,
    pub(crate) frames_without_targets: u32,
    pub(crate) warned_no_targets: bool,
    pub(crate) resolutions: u64,
}

impl MorphBinding {
    /// How many times this head's binding was resolved (at insertion, when
    /// a mesh with morph targets appeared below it, when its children or
    /// retarget map changed): a diagnostic of rebinding cost.
    pub fn resolutions(&self) -> u64 {
        self.resolutions
    }

    /// Entities (carrying `MorphWeights`) this head drives.
    pub fn mesh_entities(&self) -> impl Iterator<Item = Entity> + '_ {
        self.meshes.iter().map(|m| m.entity)
    }

    /// Number of morph targets driven, over all meshes.
    pub fn bound_targets(&self) -> usize {
        #[cfg(feature = "vrm")]
        if let Some(v) = &self.vrm {
            return v.touched.len();
        }
        self.meshes.iter().map(|m| m.covered).sum()
    }

    /// Whether the head drives a VRM 1.0 avatar through its expression
    /// presets (no ARKit perfect sync).
    pub fn is_vrm(&self) -> bool {
        #[cfg(feature = "vrm")]
        return self.vrm.is_some();
        #[cfg(not(feature = "vrm"))]
        false
    }

    /// Names that could not be bound: ARKit names no mesh has (no retarget
    /// map), or target names of the retarget map that no mesh has.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }
}

/// The head's link to its worker session: which session, what was sent,
/// the frames received and not yet shown.
#[derive(Debug, Default)]
pub(crate) struct SessionLink {
    pub(crate) session: Option<SessionId>,
    /// Worker generation the session belongs to (a restarted worker has
    /// none of the old sessions).
    pub(crate) generation: u64,
    pub(crate) format: Option<crate::audio::AudioFormat>,
    /// Source-clock position (16 kHz samples) of the session's sample 0.
    pub(crate) base_16k: f64,
    /// Audio given to the current session, in 16 kHz samples.
    pub(crate) sent_16k: f64,
    pub(crate) frames: VecDeque<ExpressionFrame>,
    pub(crate) sent_emotion: Option<[f32; EMOTION_COUNT]>,
    pub(crate) sent_style: Option<usize>,
    /// Latest-wins emotion/style slots of the session (no queued messages).
    pub(crate) controls: Option<std::sync::Arc<crate::runtime::SessionControls>>,
    /// The unknown style name last warned about (each new one is warned once).
    pub(crate) style_warned: Option<String>,
}

/// What the listener hears and sees now.
#[derive(Debug)]
pub(crate) struct Playback {
    /// Source-clock position (16 kHz samples) of what the listener hears
    /// now; `None` while nothing plays.
    pub(crate) playhead_16k: Option<f64>,
    /// A voice source reported this head this frame
    /// (`sources::VoiceFeed::set_playhead`).
    pub(crate) source_reported: bool,
    pub(crate) level: f32,
    pub(crate) smoothed: [f32; BLENDSHAPE_COUNT],
    pub(crate) history: VecDeque<(f32, f32)>,
}

impl Default for Playback {
    fn default() -> Self {
        Self {
            playhead_16k: None,
            source_reported: false,
            level: 0.0,
            smoothed: [0.0; BLENDSHAPE_COUNT],
            history: VecDeque::new(),
        }
    }
}

/// The procedural blink / gaze / brow layer.
#[derive(Debug)]
pub(crate) struct UpperLayer {
    /// The generator and the seed it was made with.
    pub(crate) generator: Option<(u64, UpperFaceGenerator)>,
    pub(crate) weights: [f32; BLENDSHAPE_COUNT],
}

impl Default for UpperLayer {
    fn default() -> Self {
        Self {
            generator: None,
            weights: [0.0; BLENDSHAPE_COUNT],
        }
    }
}

/// Counters and the last error, for the panel and tests.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) resets: u64,
    pub(crate) nonfinite: u64,
    pub(crate) dropped_chunks: u64,
    pub(crate) last_error: Option<crate::runtime::WorkerFailure>,
    /// The last unsupported voice format warned about (warned once).
    pub(crate) bad_format: Option<crate::audio::AudioFormat>,
}

/// Per-head runtime state kept by the plugin (read-only for games: the
/// panel and tests read it through its methods). Split by concern: the
/// worker session link, playback, the upper-face layer, diagnostics.
#[derive(Component, Debug, Default)]
pub struct TalkingHeadState {
    pub(crate) link: SessionLink,
    pub(crate) playback: Playback,
    pub(crate) upper: UpperLayer,
    pub(crate) diag: Diagnostics,
}

/// Entries kept for [`TalkingHeadState::history`].
pub const HISTORY_LEN: usize = 300;

impl TalkingHeadState {
    /// Whether the head has a live session on the worker.
    pub fn has_session(&self) -> bool {
        self.link.session.is_some()
    }

    /// The listener's playback position in seconds of the current session's
    /// audio (`None` while nothing plays).
    pub fn playhead_secs(&self) -> Option<f64> {
        self.playback
            .playhead_16k
            .map(|p| (p - self.link.base_16k) / crate::audio::MODEL_SAMPLE_RATE as f64)
    }

    /// Audio given to the current session, seconds.
    pub fn sent_secs(&self) -> f64 {
        self.link.sent_16k / crate::audio::MODEL_SAMPLE_RATE as f64
    }

    /// Time, in seconds of the current session's audio, of the end of the
    /// newest expression frame the worker has delivered (`None` before the
    /// first). When the worker keeps up it is at or ahead of
    /// [`playhead_secs`](Self::playhead_secs).
    pub fn latest_frame_secs(&self) -> Option<f64> {
        let n = self.link.frames.len();
        let last = self.link.frames.back()?;
        // Frame spacing from the last two frames (the model's frame length).
        let spf = match n {
            0 | 1 => 320,
            _ => last
                .sample
                .saturating_sub(self.link.frames[n - 2].sample)
                .max(1),
        };
        Some((last.sample + spf) as f64 / crate::audio::MODEL_SAMPLE_RATE as f64)
    }

    /// Expression frames buffered ahead of / around the playhead.
    pub fn buffered_frames(&self) -> usize {
        self.link.frames.len()
    }

    /// The frames received from the worker and not yet dropped (oldest
    /// first; the plugin keeps those near the playhead).
    pub fn frames(&self) -> impl Iterator<Item = &ExpressionFrame> + '_ {
        self.link.frames.iter()
    }

    /// Speech activity in `[0, 1]` of the audio under the face being shown
    /// (the frame sampled at playhead − output delay; the frames'
    /// [`speech_activity`](crate::runtime::ExpressionFrame::speech_activity):
    /// level above the stream's noise floor,
    /// [`crate::upper_face::SpeechActivity`]); 0 while no frame is shown.
    pub fn level(&self) -> f32 {
        self.playback.level
    }

    /// The last [`HISTORY_LEN`] rendered frames as `(jawOpen, level)`,
    /// oldest first.
    pub fn history(&self) -> &VecDeque<(f32, f32)> {
        &self.playback.history
    }

    /// Times the worker reset this head's session after an error or panic.
    pub fn resets(&self) -> u64 {
        self.diag.resets
    }

    /// Non-finite samples replaced by 0 so far.
    pub fn nonfinite_samples(&self) -> u64 {
        self.diag.nonfinite
    }

    /// Audio chunks dropped because the worker queue was full.
    pub fn dropped_chunks(&self) -> u64 {
        self.diag.dropped_chunks
    }

    /// The last error the worker reported for this head (a reset after a
    /// failed step, a refused command).
    pub fn last_error(&self) -> Option<&crate::runtime::WorkerFailure> {
        self.diag.last_error.as_ref()
    }

    /// The head's upper-face layer generator, made anew when `seed` changed.
    pub(crate) fn upper_generator(&mut self, seed: u64) -> &mut UpperFaceGenerator {
        if self
            .upper
            .generator
            .as_ref()
            .is_some_and(|(s, _)| *s != seed)
        {
            self.upper.generator = None;
        }
        &mut self
            .upper
            .generator
            .get_or_insert_with(|| {
                (
                    seed,
                    UpperFaceGenerator::new(UpperFaceStats::default(), seed)
                        .with_neutral_rest(true),
                )
            })
            .1
    }
}
