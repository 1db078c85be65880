//! Offline baking: a whole recording to ARKit-52 weights at a chosen frame
//! rate, with the same upper-face layer the plugin shows. The path behind
//! `talking-head bake` (Live Link Face CSV, glTF morph-weight animation)
//! and the plugin's `AnimationClip` bake.

use crate::audio::{AudioFormat, MODEL_SAMPLE_RATE};
use crate::model::{EMOTION_COUNT, EMOTIONS, Sampler, TalkingHeadModel};
use crate::rig::{ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, RetargetError, RetargetMap, lerp_weights};
use crate::runtime::{
    ExpressionFrame, FramePosition, Pcm, Session, SessionError, locate, run_to_end,
};

/// How to bake a recording.
#[derive(Debug, Clone, Copy)]
pub struct BakeOptions {
    /// Emotion mix, weights in [0, 1] in [`EMOTIONS`] order (default: neutral = 1).
    pub emotion: [f32; EMOTION_COUNT],
    /// Speaking-style id (`ModelConfig::style_id`; 0 = the default style).
    pub style: usize,
    /// The one-step student (default) or the DDIM teacher.
    pub sampler: Sampler,
    /// Seed of the diffusion noise and of the upper-face layer.
    pub seed: u64,
    /// Lay the seeded upper-face layer (blinks, gaze, brows with speech) over the result (default on).
    pub upper_face: bool,
    /// Output frame rate, frames per second, in (0, 1000] (default 30).
    pub fps: f64,
}

impl Default for BakeOptions {
    fn default() -> Self {
        let mut emotion = [0.0; EMOTION_COUNT];
        if let Some(i) = EMOTIONS.iter().position(|e| *e == "neutral") {
            emotion[i] = 1.0;
        }
        Self {
            emotion,
            style: 0,
            sampler: Sampler::Student,
            seed: 0,
            upper_face: true,
            fps: 30.0,
        }
    }
}

/// A baked recording: ARKit-52 weights in [0, 1] ([`crate::rig::ARKIT_BLENDSHAPES`]
/// order) sampled at `fps`, frame `k` at `k / fps` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct BakedTake {
    /// Frames per second.
    pub fps: f64,
    /// Length of the recording, seconds.
    pub duration_secs: f64,
    /// `ceil(duration_secs · fps)` frames (at least 1).
    pub frames: Vec<[f32; BLENDSHAPE_COUNT]>,
    /// The emotion the take was baked with ([`EMOTIONS`] order, scaled by
    /// intensity): what a VRM avatar's emotion presets (`happy`, `sad`, …)
    /// are driven from when the take is written into it.
    pub emotion: [f32; EMOTION_COUNT],
    /// Model frames (50 fps) whose network output held a NaN or infinite
    /// weight, emitted with those weights at 0 ([`crate::runtime::Session::nonfinite_frames`]);
    /// non-zero means a broken checkpoint or sampler setting.
    pub nonfinite_frames: u64,
}

impl BakedTake {
    /// Time of frame `k`, seconds.
    pub fn time(&self, k: usize) -> f64 {
        k as f64 / self.fps
    }

    /// The take on a mesh whose morph targets are `names`: the ARKit
    /// channels mapped by `retarget` (the identity on the ARKit names,
    /// matched ignoring case, when `None`), `frames × names.len()` weights
    /// in [0, 1] (0 for targets no rule drives, and for non-finite values),
    /// and the indices of the targets that are driven.
    ///
    /// # Errors
    /// [`RetargetError`] when the map names unknown ARKit channels or has a
    /// non-finite weight.
    pub fn morph_weights(
        &self,
        names: &[String],
        retarget: Option<&RetargetMap>,
    ) -> Result<(Vec<f32>, Vec<usize>), RetargetError> {
        let identity;
        let map = match retarget {
            Some(m) => m,
            None => {
                identity = RetargetMap::identity(&ARKIT_BLENDSHAPES);
                &identity
            }
        };
        let (compiled, _) = map.compile_skipping_missing_targets(&ARKIT_BLENDSHAPES, names)?;
        let mut out = vec![0f32; self.frames.len() * names.len()];
        for (frame, row) in self
            .frames
            .iter()
            .zip(out.chunks_exact_mut(names.len().max(1)))
        {
            compiled.apply(frame, row);
            for w in row.iter_mut() {
                *w = if w.is_finite() {
                    w.clamp(0.0, 1.0)
                } else {
                    0.0
                };
            }
        }
        Ok((out, compiled.covered_targets().to_vec()))
    }
}

/// Errors of [`bake`].
#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    /// `fps` outside (0, 1000].
    #[error("the frame rate must be in (0, 1000] fps, got {0}")]
    Fps(f64),
    /// The model or the audio was refused.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Bakes `samples` (mono, 16 kHz, nominally in [-1, 1]) through the
/// streaming model exactly as the plugin runs it (causal, with look-ahead),
/// resampled from the model's 50 fps to `options.fps` by linear
/// interpolation between frame centres. `progress` gets the number of
/// samples consumed after each second of audio.
///
/// # Errors
/// [`BakeError::Fps`] for a bad frame rate; [`BakeError::Session`] when the
/// model fails (e.g. a sampler the checkpoint has no weights for).
pub fn bake(
    model: &TalkingHeadModel,
    samples: &[f32],
    options: &BakeOptions,
    progress: impl FnMut(u64),
) -> Result<BakedTake, BakeError> {
    let fps = options.fps;
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(BakeError::Fps(fps));
    }
    let mut session = Session::new(model, AudioFormat::MODEL, options.seed)?;
    session.set_emotion(options.emotion);
    session.set_style(options.style);
    let mut frames = run_to_end(
        model,
        &mut session,
        Pcm::F32(samples),
        options.sampler,
        progress,
    )?;
    if options.upper_face {
        add_upper_face_layer(&mut frames, model.config().fps, options.seed);
    }
    let duration_secs = samples.len() as f64 / MODEL_SAMPLE_RATE as f64;
    let spf = model.config().samples_per_frame();
    Ok(BakedTake {
        fps,
        duration_secs,
        frames: resample_frames(&frames, spf, duration_secs, fps),
        emotion: session.emotion(),
        nonfinite_frames: session.nonfinite_frames(),
    })
}

/// Samples the model's frame stream at `k / fps` seconds for
/// `k = 0..ceil(duration · fps)`, linearly interpolating between frame
/// centres (clamped at the ends).
pub fn resample_frames(
    frames: &[ExpressionFrame],
    spf: usize,
    duration_secs: f64,
    fps: f64,
) -> Vec<[f32; BLENDSHAPE_COUNT]> {
    let n = (duration_secs * fps).ceil().max(1.0) as usize;
    if frames.is_empty() {
        return vec![[0.0; BLENDSHAPE_COUNT]; n];
    }
    let time = |i: usize| frames[i].time_secs(spf);
    (0..n)
        .map(|k| match locate(frames.len(), time, k as f64 / fps) {
            FramePosition::Between { lo, w } => {
                lerp_weights(&frames[lo].weights, &frames[lo + 1].weights, w)
            }
            FramePosition::After { .. } => frames[frames.len() - 1].weights,
            _ => frames[0].weights,
        })
        .collect()
}

/// The plugin's upper-face layer (blinks, gaze, brow raises with speech;
/// neutral at rest), seeded, laid over frames at the model's `fps` the way
/// the plugin shows them ([`crate::upper_face::overlay_upper_face`]).
pub fn add_upper_face_layer(frames: &mut [ExpressionFrame], fps: u32, seed: u64) {
    use crate::upper_face::{UpperFaceGenerator, UpperFaceStats, overlay_upper_face};
    let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), seed).with_neutral_rest(true);
    let dt = 1.0 / fps.max(1) as f32;
    for f in frames.iter_mut() {
        let mut layer = f.weights;
        g.step(dt, f.speech_activity, &mut layer);
        overlay_upper_face(&mut f.weights, &layer);
    }
}
