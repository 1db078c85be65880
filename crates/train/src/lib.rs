//! # talking_head_train
//!
//! The training side of `bevy_talking_head`: corpus builder, phonetic
//! labeler, trainer, distillation, truth-first evaluation and the offline
//! upper-face measurement. Never needed at run time; built on
//! `talking_head_core`.
//!
//! External programs (Debian packages, installed by `.ci/run`):
//! `pocketsphinx` + `pocketsphinx-en-us` (phone timings), `espeak-ng` and
//! `flite` (speech synthesis), `sox` (audio effects).

pub mod calibrate;
pub mod corpus;
pub mod dataset;
pub mod distill;
pub mod emotion;
pub mod eval;
pub mod facegood;
pub mod manifest;
pub mod noise;
pub mod optim;
pub mod phonetic;
pub mod soup;
pub mod sphinx;
pub mod trainer;
pub mod truth;
pub mod truth_report;
pub mod tts;
pub mod upper_face;
