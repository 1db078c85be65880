//! # bevy_talking_head
//!
//! Real-time speech-driven facial animation: audio in, 52 ARKit blendshape
//! weights out, every frame. The engine-agnostic core (this crate without
//! the `bevy` feature) holds the audio front-end, the log-mel features, the
//! model (online causal transformer + one-step distilled diffusion decoder),
//! checkpoints, the rig conventions and the streaming runtime.
//!
//! Papers followed: *Audio Driven Real-Time Facial Animation for Social
//! Telepresence* (Lee et al., SIGGRAPH Asia 2025) and *StreamingTalker*
//! (Yang et al., 2025).
#![warn(missing_docs)]

pub mod audio;
pub mod features;
pub mod model;
#[cfg(feature = "bevy")]
pub mod plugin;
pub mod rig;
pub mod runtime;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "egui")]
pub mod ui;
pub mod upper_face;

/// The names a Bevy app needs: `use bevy_talking_head::prelude::*;`.
#[cfg(feature = "bevy")]
pub mod prelude {
    #[cfg(feature = "mic")]
    pub use crate::plugin::MicrophoneVoice;
    pub use crate::plugin::{
        Emotion, FaceExpression, FaceRetarget, ModelSource, MorphBinding, SensorOverrides,
        TalkingHead, TalkingHeadPlugin, TalkingHeadRuntime, TalkingHeadSettings, TalkingHeadState,
        TalkingHeadSystems, VoiceStream,
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
