//! The Bevy plugin: talking heads on avatars.
//!
//! Add [`TalkingHeadPlugin`], spawn an avatar (a glTF scene whose meshes
//! have ARKit-named morph targets) with a [`TalkingHead`] and a voice
//! component — [`VoiceStream`] (pushed PCM, e.g. network voice),
//! `KiraVoice` (a clip played with kira, feature `kira`) or
//! `MicrophoneVoice` (feature `mic`) — and its morph targets follow the
//! voice every frame.
//!
//! Inference never runs on the main thread: the model loads on a
//! background thread (faces rest, showing their emotion's rest face, until it is ready) and one
//! worker thread steps every head's session, batched (see
//! [`crate::runtime::Worker`]). The main thread only forwards audio,
//! drains stamped expression frames and samples them at each listener's
//! playback time.
//!
//! # Schedule
//! [`TalkingHeadSystems`] run in this order:
//!
//! | set | schedule | does |
//! |---|---|---|
//! | `IngestAudio` | `PreUpdate` | model loading / worker (re)start, voice sources → worker, playheads |
//! | `PollWorker` | `PreUpdate` | emotion/style changes → worker; expression frames ← worker |
//! | `Interpolate` | `PreUpdate` | frames sampled at playhead − delay, gain, smoothing, upper-face layer → [`FaceExpression`] |
//! | *(game code)* | `Update` | may read or edit [`FaceExpression`] |
//! | `Bind` | `PostUpdate`, after `AnimationSystems` | resolves morph target names on new meshes |
//! | `ApplyMorphs` | `PostUpdate`, after `AnimationSystems` | [`SensorOverrides`], retarget, writes `MorphWeights` |
//!
//! `ApplyMorphs` runs after Bevy's `AnimationSystems`, so where an
//! `AnimationPlayer` and a talking head drive the same morph target, the
//! talking head wins; targets it does not bind (e.g. body morphs) keep the
//! animation's values.

mod assets;
mod binding;
mod components;
mod morph;
mod runtime;
mod sources;
#[cfg(feature = "vrm")]
mod vrm;

use bevy::prelude::*;

pub use assets::{
    ModelAssetFailed, ModelAssetLoader, ModelLoadError, RetargetAsset, RetargetLoadError,
    RetargetMapLoader, TalkingHeadModelAsset,
};
pub use components::{
    Emotion, FaceExpression, FaceRetarget, HISTORY_LEN, MorphBinding, SensorOverrides, SensorValue,
    TalkingHead, TalkingHeadState,
};
pub use runtime::{
    DEFAULT_MODEL_PATH, ModelSource, RuntimeState, TalkingHeadError, TalkingHeadRuntime,
    default_model_path,
};
#[cfg(feature = "bevy_audio")]
pub use sources::bevy_audio::{BevyAudioVoice, BevyAudioVoicePlugin};
#[cfg(feature = "kira")]
pub use sources::kira::KiraVoicePlugin;
#[cfg(feature = "kira")]
pub use sources::kira::{
    FEED_AHEAD_SECS, KiraVoice, PlayError, SEEK_THRESHOLD_SECS, TalkingHeadAudio,
    VIRTUAL_SAMPLE_RATE,
};
#[cfg(feature = "mic")]
pub use sources::mic::MicrophonePlugin;
#[cfg(feature = "mic")]
pub use sources::mic::{
    CpalMicrophone, MIC_RETRY_MAX_SECS, MIC_RETRY_SECS, MIC_RING_SECS, MicSink, MicrophoneBackend,
    MicrophoneBackendResource, MicrophoneCapture, MicrophoneRequest, MicrophoneVoice,
    input_device_names,
};
pub use sources::{
    STALL_SECS, VOICE_STREAM_CAPACITY, VoiceSourceSystems, VoiceStream, VoiceStreamError,
    VoiceStreamPlugin,
};
#[cfg(feature = "vrm")]
pub use vrm::{PERFECT_SYNC_MIN, VrmAvatar, VrmNode, VrmPlugin};

use crate::audio::MODEL_SAMPLE_RATE;
use crate::rig::{BLENDSHAPE_COUNT, Blendshape};
use crate::runtime::{FramePosition, WorkerConfig};
use components::clamp01;

/// The plugin's system sets, in execution order (see the [module
/// docs](self) for schedules).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TalkingHeadSystems {
    /// `PreUpdate`: runtime upkeep and voice sources → worker.
    IngestAudio,
    /// `PreUpdate`: control changes → worker, frames ← worker.
    PollWorker,
    /// `PreUpdate`: frames → [`FaceExpression`] at the listener's time.
    Interpolate,
    /// `PostUpdate` (after `AnimationSystems`): morph binding.
    Bind,
    /// `PostUpdate` (after `AnimationSystems`): [`FaceExpression`] →
    /// `MorphWeights`. The only system that writes `MorphWeights`.
    ApplyMorphs,
}

/// Runtime-tunable settings (a resource; change them while running).
/// Every field is read each frame; a NaN or infinite value acts as its
/// default's neutral case (no extra delay, no smoothing, no hold).
#[derive(Resource, Clone, Debug, Reflect)]
#[reflect(Resource, Default)]
pub struct TalkingHeadSettings {
    /// Extra delay of every face behind its audio, seconds (positive =
    /// later; default 0; NaN/Inf count as 0). Use it when the audio path
    /// has latency the plugin cannot see (e.g. a large output buffer).
    /// Per-stream network delay is on [`VoiceStream`].
    pub output_delay_secs: f32,
    /// Time constant of the smoothing of model output, seconds (default
    /// 0.02; 0, negative or NaN = none).
    pub smoothing_secs: f32,
    /// Time constant of the ease to the rest face when no voice plays,
    /// seconds (default 0.08; 0, negative or NaN = at once). The rest face
    /// is the head's emotion at rest
    /// ([`crate::model::emotion_rest_face`]: neutral for neutral, a
    /// closed-mouth smile for happy).
    pub rest_secs: f32,
    /// How long the last frame is held when the playhead runs past the
    /// newest frame (worker late, stream underrun), seconds (default 0.15;
    /// 0, negative or NaN = no hold).
    pub hold_secs: f32,
    /// Master switch of the procedural blink / saccade / brow layer
    /// (each head also has [`TalkingHead::upper_face`]; default on).
    pub upper_face: bool,
}

impl Default for TalkingHeadSettings {
    fn default() -> Self {
        Self {
            output_delay_secs: 0.0,
            smoothing_secs: 0.02,
            rest_secs: 0.08,
            hold_secs: 0.15,
            upper_face: true,
        }
    }
}

/// Adds talking heads: model loading, the inference worker, voice
/// sources, interpolation and morph-target application.
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_talking_head::prelude::*;
///
/// App::new()
///     .add_plugins(MinimalPlugins)
///     .add_plugins(TalkingHeadPlugin::default())
///     .run();
/// ```
#[derive(Clone, Debug)]
pub struct TalkingHeadPlugin {
    /// Which model to load (default: the shipped one).
    pub model: ModelSource,
    /// Initial [`TalkingHeadSettings::output_delay_secs`].
    pub output_delay_secs: f32,
    /// Inference worker settings (sampler, queue sizes, threads).
    pub worker: WorkerConfig,
    /// Initial [`TalkingHeadSettings::upper_face`].
    pub upper_face: bool,
    /// Also add every voice-source plugin the crate's features enable, and
    /// `VrmPlugin` (feature `vrm`) (`true`, the default). [`TalkingHeadPlugins`] sets it to `false` and
    /// adds the sources itself, so a game can disable them one by one.
    pub voice_sources: bool,
}

impl Default for TalkingHeadPlugin {
    fn default() -> Self {
        Self {
            model: ModelSource::Default,
            output_delay_secs: 0.0,
            worker: WorkerConfig::default(),
            upper_face: true,
            voice_sources: true,
        }
    }
}

/// Sub-plugins ([`VoiceStreamPlugin`], the voice sources, `VrmPlugin`) are
/// not unique and build once: [`TalkingHeadPlugin`] with `voice_sources`
/// adds them, and a game (or [`TalkingHeadPlugins`] configured with a
/// `TalkingHeadPlugin { voice_sources: true, .. }`) may add them again
/// without Bevy's duplicate-plugin panic. Returns whether this is the first
/// `stage` ("build", "finish") of `P`.
pub(crate) fn first_time<P: 'static>(app: &mut App, stage: &'static str) -> bool {
    #[derive(Resource, Default)]
    struct BuiltSubPlugins(Vec<(std::any::TypeId, &'static str)>);
    let key = (std::any::TypeId::of::<P>(), stage);
    let mut built = app.world_mut().get_resource_or_init::<BuiltSubPlugins>();
    if built.0.contains(&key) {
        return false;
    }
    built.0.push(key);
    true
}

/// Every plugin of the crate as a group, so a game can leave parts out
/// (the avian style):
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_talking_head::prelude::*;
/// use bevy_talking_head::plugin::MicrophonePlugin;
///
/// App::new()
///     .add_plugins(DefaultPlugins)
///     .add_plugins(TalkingHeadPlugins.build().disable::<MicrophonePlugin>())
///     .run();
/// ```
///
/// Members: [`TalkingHeadPlugin`] (runtime, sampling, binding; with
/// `voice_sources: false`), [`VoiceStreamPlugin`], `BevyAudioVoicePlugin`
/// (feature `bevy_audio`), `VrmPlugin` (feature `vrm`), `KiraVoicePlugin`
/// (feature `kira`), `MicrophonePlugin` (feature `mic`) and
/// `TalkingHeadUiPlugin` (feature `egui`). The upper-face layer is a
/// run-time switch: [`TalkingHeadSettings::upper_face`]. To configure the
/// core through the group:
/// `TalkingHeadPlugins.set(TalkingHeadPlugin { model, ..default() })`
/// (the sub-plugins it would add are already in the group; each builds
/// once). To leave a source out, also set `voice_sources: false`, or its
/// own `disable` cannot take effect.
pub struct TalkingHeadPlugins;

impl PluginGroup for TalkingHeadPlugins {
    fn build(self) -> bevy::app::PluginGroupBuilder {
        let group = bevy::app::PluginGroupBuilder::start::<Self>()
            .add(TalkingHeadPlugin {
                voice_sources: false,
                ..Default::default()
            })
            .add(VoiceStreamPlugin);
        #[cfg(feature = "bevy_audio")]
        let group = group.add(BevyAudioVoicePlugin);
        #[cfg(feature = "vrm")]
        let group = group.add(VrmPlugin);
        #[cfg(feature = "kira")]
        let group = group.add(KiraVoicePlugin);
        #[cfg(feature = "mic")]
        let group = group.add(MicrophonePlugin);
        #[cfg(feature = "egui")]
        let group = group.add(crate::ui::TalkingHeadUiPlugin);
        group
    }
}

impl Plugin for TalkingHeadPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(TalkingHeadSettings {
            output_delay_secs: self.output_delay_secs,
            upper_face: self.upper_face,
            ..Default::default()
        })
        .insert_resource(runtime::TalkingHeadRuntime::start(
            self.model.clone(),
            self.worker.clone(),
        ))
        .configure_sets(
            PreUpdate,
            (
                TalkingHeadSystems::IngestAudio,
                TalkingHeadSystems::PollWorker,
                TalkingHeadSystems::Interpolate,
            )
                .chain(),
        )
        .configure_sets(
            PostUpdate,
            (TalkingHeadSystems::Bind, TalkingHeadSystems::ApplyMorphs)
                .chain()
                .after(bevy::app::AnimationSystems),
        )
        .configure_sets(
            PreUpdate,
            VoiceSourceSystems.in_set(TalkingHeadSystems::IngestAudio),
        )
        .add_systems(
            PreUpdate,
            (
                runtime::maintain_runtime.before(VoiceSourceSystems),
                sources::rest_unreported.after(VoiceSourceSystems),
            )
                .in_set(TalkingHeadSystems::IngestAudio),
        )
        .add_systems(
            PreUpdate,
            (
                runtime::cleanup_sessions,
                runtime::sync_controls,
                runtime::poll_worker,
            )
                .chain()
                .in_set(TalkingHeadSystems::PollWorker),
        )
        .add_systems(
            PreUpdate,
            interpolate.in_set(TalkingHeadSystems::Interpolate),
        )
        .add_systems(
            PostUpdate,
            (binding::mark_dirty, binding::bind)
                .chain()
                .in_set(TalkingHeadSystems::Bind),
        )
        .add_systems(
            PostUpdate,
            morph::apply_morphs.in_set(TalkingHeadSystems::ApplyMorphs),
        );
        if self.voice_sources {
            app.add_plugins(VoiceStreamPlugin);
            #[cfg(feature = "bevy_audio")]
            app.add_plugins(BevyAudioVoicePlugin);
            #[cfg(feature = "vrm")]
            app.add_plugins(VrmPlugin);
            #[cfg(feature = "kira")]
            app.add_plugins(KiraVoicePlugin);
            #[cfg(feature = "mic")]
            app.add_plugins(MicrophonePlugin);
        }
        register_assets(app);
    }

    fn finish(&self, app: &mut App) {
        // An AssetPlugin added after this plugin.
        register_assets(app);
        if !app.world().contains_resource::<AssetServer>() {
            let mut rt = app.world_mut().resource_mut::<TalkingHeadRuntime>();
            if let Some(link) = &rt.asset {
                let error = TalkingHeadError::ModelAsset {
                    path: link.path.clone(),
                    error: "the app has no AssetPlugin".into(),
                };
                error!("talking-head: {error}; faces rest");
                rt.state = RuntimeState::Failed(error);
            }
        }
    }
}

/// Where the embedded default model sits in Bevy's `embedded://` asset
/// source (feature `embedded-model`), without the source prefix.
pub const EMBEDDED_MODEL_ASSET_PATH: &str = "bevy_talking_head/models/default.safetensors";

/// The embedded default model as an asset path for
/// [`ModelSource::Asset`] (feature `embedded-model`; needs an
/// `AssetPlugin`): the same bytes as [`crate::model::EMBEDDED_MODEL`],
/// registered in Bevy's `embedded://` source, not a second copy.
pub const EMBEDDED_MODEL_ASSET: &str = "embedded://bevy_talking_head/models/default.safetensors";

/// Retarget maps and models as assets, when the app has an asset server
/// (once).
fn register_assets(app: &mut App) {
    if !app.world().contains_resource::<AssetServer>()
        || app.world().contains_resource::<Assets<RetargetAsset>>()
    {
        return;
    }
    #[cfg(feature = "embedded-model")]
    if let Some(embedded) = app
        .world()
        .get_resource::<bevy::asset::io::embedded::EmbeddedAssetRegistry>()
    {
        embedded.insert_asset(
            std::path::PathBuf::new(),
            std::path::Path::new(EMBEDDED_MODEL_ASSET_PATH),
            crate::model::EMBEDDED_MODEL,
        );
    }
    app.init_asset::<RetargetAsset>()
        .register_asset_loader(RetargetMapLoader)
        .init_asset::<TalkingHeadModelAsset>()
        .register_asset_loader(ModelAssetLoader)
        .add_message::<ModelAssetFailed>()
        .add_systems(
            PostUpdate,
            assets::rebind_on_retarget_change.before(TalkingHeadSystems::Bind),
        )
        .add_systems(
            PreUpdate,
            assets::track_model_asset
                .in_set(TalkingHeadSystems::IngestAudio)
                .before(runtime::maintain_runtime),
        );
}

/// Samples each head's frames at its listener's playback time.
fn interpolate(
    time: Res<Time<Real>>,
    settings: Res<TalkingHeadSettings>,
    runtime: Res<TalkingHeadRuntime>,
    mut heads: Query<(
        Entity,
        &TalkingHead,
        &mut TalkingHeadState,
        &mut FaceExpression,
    )>,
) {
    let dt = time.delta_secs();
    let spf = runtime
        .model()
        .map(|m| m.config().samples_per_frame())
        .unwrap_or(320) as f64;
    let sr = MODEL_SAMPLE_RATE as f64;
    for (entity, head, mut state, mut face) in &mut heads {
        let state = &mut *state;
        let mut target = [0.0f32; BLENDSHAPE_COUNT];
        let mut have = false;
        let mut level = 0.0;
        if let Some(p) = state.playback.playhead_16k {
            let activity = |f: &crate::runtime::ExpressionFrame| f.speech_activity;
            let delay = if settings.output_delay_secs.is_finite() {
                settings.output_delay_secs as f64
            } else {
                0.0
            };
            let t = p - state.link.base_16k - delay * sr;
            let frames = &state.link.frames;
            let n = frames.len();
            if n > 0 {
                let hold = if settings.hold_secs.is_finite() {
                    settings.hold_secs as f64 * sr
                } else {
                    0.0
                };
                let centre = |i: usize| frames[i].sample as f64 + spf / 2.0;
                match crate::runtime::locate(n, centre, t) {
                    FramePosition::Before { gap } if gap <= spf => {
                        target = frames[0].weights;
                        level = activity(&frames[0]);
                        have = true;
                    }
                    FramePosition::After { gap } if gap <= hold => {
                        target = frames[n - 1].weights;
                        level = activity(&frames[n - 1]);
                        have = true;
                    }
                    FramePosition::Between { lo, w } => {
                        let (a, b) = (&frames[lo], &frames[lo + 1]);
                        target = crate::rig::lerp_weights(&a.weights, &b.weights, w);
                        level = activity(a) + (activity(b) - activity(a)) * w;
                        have = true;
                    }
                    _ => {}
                }
                // Forget frames well behind the playhead.
                while state.link.frames.len() > 2
                    && (state.link.frames[0].sample as f64 + spf) < t - 0.5 * sr
                {
                    state.link.frames.pop_front();
                }
            }
        }
        // The emotion's rest face (neutral: all 0): what the head shows with
        // nothing to say (a happy head smiles while it listens), and what
        // gain 0 scales the model's motion down to.
        let rest = || {
            crate::model::emotion_rest_face(&crate::model::canonical_emotion(
                head.emotion.conditioning(),
            ))
        };
        let gain = if head.gain.is_nan() {
            0.0
        } else {
            head.gain.clamp(0.0, 2.0)
        };
        if !have {
            target = rest();
        } else if gain != 1.0 {
            for (v, r) in target.iter_mut().zip(rest()) {
                *v = clamp01(r + (*v - r) * gain);
            }
        }
        let tau = if have {
            settings.smoothing_secs
        } else {
            settings.rest_secs
        };
        let alpha = if tau <= 0.0 || !tau.is_finite() {
            1.0
        } else {
            1.0 - (-dt / tau).exp()
        };
        for (s, t) in state.playback.smoothed.iter_mut().zip(target) {
            *s += (t - *s) * alpha;
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        state.playback.level = level;
        let mut out = state.playback.smoothed;
        if head.upper_face && settings.upper_face {
            let seed = head.effective_seed(entity);
            let mut upper = state.upper.weights;
            state.upper_generator(seed).step(dt, level, &mut upper);
            state.upper.weights = upper;
            // Gaze cannot be predicted from audio: the layer owns it. Blinks,
            // squint, widening and brows take the larger of the model (which
            // carries the emotion offsets) and the layer.
            crate::upper_face::overlay_upper_face(&mut out, &upper);
        }
        face.weights = out;
        runtime::push_history(state, out[Blendshape::JawOpen.index()]);
    }
}
