//! # talking_head_core
//!
//! The engine-agnostic core of `bevy_talking_head`: speech in, 52 ARKit
//! blendshape weights out, every frame. It holds the audio front-end
//! (any file or stream to mono 16 kHz), the log-mel features
//! (`[frames, n_mels]`), the model (online causal transformer + one-step
//! distilled diffusion decoder) and its checkpoints, the rig conventions
//! (ARKit order, Live Link Face CSV, retarget maps), the streaming runtime
//! (sessions, worker thread) and the upper-face layer (blinks, gaze, brows).
//!
//! This crate has no Bevy dependency (the compiler enforces it: Bevy is not
//! in its `Cargo.toml`); the plugin lives in `bevy_talking_head`, the
//! trainer in `talking_head_train`.
//!
//! Papers followed: *Audio Driven Real-Time Facial Animation for Social
//! Telepresence* (Lee et al., SIGGRAPH Asia 2025) and *StreamingTalker*
//! (Yang et al., 2025).
#![warn(missing_docs)]

pub mod audio;
pub mod bake;
pub mod features;
#[cfg(feature = "gltf")]
pub mod gltf;
pub mod model;
pub mod rig;
pub mod runtime;
pub mod stats;
pub mod upper_face;
#[cfg(feature = "gltf")]
pub mod vrm;
