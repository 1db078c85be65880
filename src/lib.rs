//! # bevy_talking_head
//!
//! Real-time speech-driven facial animation: audio in, 52 ARKit blendshape
//! weights out, every frame. This crate is the Bevy plugin and its egui
//! panel; the engine-agnostic core (audio front-end, log-mel features, the
//! model: online causal transformer + one-step distilled diffusion decoder,
//! checkpoints, rig conventions, streaming runtime, upper-face layer) is the
//! `talking_head_core` crate, re-exported here module by module, so
//! `bevy_talking_head::model`, `::audio` etc. are the same items.
//!
//! Papers followed: *Audio Driven Real-Time Facial Animation for Social
//! Telepresence* (Lee et al., SIGGRAPH Asia 2025) and *StreamingTalker*
//! (Yang et al., 2025).
#![warn(missing_docs)]

pub use talking_head_core::{audio, features, model, rig, runtime, upper_face};
#[cfg(feature = "gltf")]
pub use talking_head_core::{gltf, vrm};

pub mod bake;
pub mod plugin;
#[cfg(feature = "egui")]
pub mod ui;

/// The names a Bevy app needs: `use bevy_talking_head::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "bevy_audio")]
    pub use crate::plugin::BevyAudioVoice;
    #[cfg(feature = "mic")]
    pub use crate::plugin::MicrophoneVoice;
    pub use crate::plugin::{
        Emotion, FaceExpression, FaceRetarget, ModelSource, MorphBinding, SensorOverrides,
        TalkingHead, TalkingHeadPlugin, TalkingHeadPlugins, TalkingHeadRuntime,
        TalkingHeadSettings, TalkingHeadState, TalkingHeadSystems, VoiceStream,
    };
    #[cfg(feature = "kira")]
    pub use crate::plugin::{KiraVoice, TalkingHeadAudio};
    pub use crate::rig::Blendshape;
    #[cfg(feature = "egui")]
    pub use crate::ui::{SelectedTalkingHead, TalkingHeadUiPlugin};
}

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
