//! Emotion labels for synthesised speech: per-emotion TTS prosody and
//! per-emotion ARKit offsets blended into the pseudo-labels with an
//! intensity. Real recordings are labelled neutral.
//!
//! The offsets follow the Facial Action Coding System prototypes of the
//! basic emotions (Ekman & Friesen 1978) expressed in ARKit blendshapes:
//! happy = AU6 + AU12 (cheekSquint, mouthSmile); sad = AU1 + AU4 + AU15
//! (browInnerUp, browDown, mouthFrown); angry = AU4 + AU5 + AU7 + AU23
//! (browDown, eyeWide, eyeSquint, mouthPress); surprised = AU1 + AU2 + AU5 +
//! AU26 (browInnerUp, browOuterUp, eyeWide, jawOpen); fearful = AU1 + AU2 +
//! AU4 + AU5 + AU20 (brows, eyeWide, mouthStretch); disgusted = AU9 + AU10 +
//! AU15 (noseSneer, mouthUpperUp, mouthFrown).

use talking_head_core::model::{EMOTION_COUNT, EMOTIONS};
use talking_head_core::rig::BLENDSHAPE_COUNT;

/// Relative TTS prosody of one emotion (Scherer 2003, "Vocal communication
/// of emotion": happy/angry/fearful raise pitch and rate, sad lowers both
/// and narrows the range, surprise widens the range).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmotionProsody {
    /// Pitch change in percent (+15 = 15 % higher mean F0).
    pub pitch_percent: f32,
    /// Pitch range multiplier (1 = normal).
    pub range: f32,
    /// Speaking-rate multiplier (1 = normal).
    pub rate: f32,
    /// Loudness multiplier (1 = normal).
    pub volume: f32,
}

/// Prosody per emotion, [`EMOTIONS`] order.
pub const EMOTION_PROSODY: [EmotionProsody; EMOTION_COUNT] = [
    EmotionProsody {
        pitch_percent: 0.0,
        range: 1.0,
        rate: 1.0,
        volume: 1.0,
    },
    EmotionProsody {
        pitch_percent: 15.0,
        range: 1.5,
        rate: 1.1,
        volume: 1.1,
    },
    EmotionProsody {
        pitch_percent: -12.0,
        range: 0.5,
        rate: 0.8,
        volume: 0.8,
    },
    EmotionProsody {
        pitch_percent: 8.0,
        range: 1.6,
        rate: 1.15,
        volume: 1.3,
    },
    EmotionProsody {
        pitch_percent: 25.0,
        range: 2.0,
        rate: 1.05,
        volume: 1.1,
    },
    EmotionProsody {
        pitch_percent: 20.0,
        range: 0.7,
        rate: 1.25,
        volume: 0.9,
    },
    EmotionProsody {
        pitch_percent: -6.0,
        range: 1.1,
        rate: 0.9,
        volume: 1.0,
    },
];

/// ARKit offsets of one emotion at full intensity (the FACS prototypes
/// above), defined in the core crate because the runtime uses them too
/// (an emotion's rest face).
pub use talking_head_core::model::emotion_offsets;

/// Blends the emotion offsets into frames in place: each weight moves
/// towards 1 by `offset * emotion[k]` (`w + (1 - w) * o`), so offsets never
/// push a weight past 1 and speech motion stays visible. `emotion` weights
/// are in [0, 1] (intensity already applied).
pub fn apply_emotion(frames: &mut [[f32; BLENDSHAPE_COUNT]], emotion: &[f32; EMOTION_COUNT]) {
    let offset = talking_head_core::model::emotion_rest_face(emotion);
    for f in frames.iter_mut() {
        for (w, o) in f.iter_mut().zip(offset) {
            *w = (*w + (1.0 - *w) * o).clamp(0.0, 1.0);
        }
    }
}

/// A one-hot emotion vector of `intensity` (`neutral` gets `1 - intensity`).
pub fn emotion_vector(emotion: usize, intensity: f32) -> [f32; EMOTION_COUNT] {
    let mut v = [0f32; EMOTION_COUNT];
    let i = intensity.clamp(0.0, 1.0);
    if emotion == 0 || emotion >= EMOTION_COUNT {
        v[0] = 1.0;
    } else {
        v[emotion] = i;
        v[0] = 1.0 - i;
    }
    v
}

/// The name of emotion `k`.
pub fn emotion_name(k: usize) -> &'static str {
    EMOTIONS.get(k).copied().unwrap_or("neutral")
}

#[cfg(test)]
mod tests {
    use super::*;
    use talking_head_core::rig::Blendshape;

    #[test]
    fn offsets_raise_the_right_channels_and_stay_in_range() {
        let mut f = vec![[0.5f32; BLENDSHAPE_COUNT]; 3];
        apply_emotion(&mut f, &emotion_vector(1, 1.0));
        assert!(f[0][Blendshape::MouthSmileLeft.index()] > 0.7);
        assert_eq!(f[0][Blendshape::BrowDownLeft.index()], 0.5);
        assert!(f.iter().flatten().all(|w| (0.0..=1.0).contains(w)));
        let mut g = vec![[0.0f32; BLENDSHAPE_COUNT]; 1];
        apply_emotion(&mut g, &emotion_vector(0, 1.0));
        assert!(g[0].iter().all(|w| *w == 0.0));
    }

    #[test]
    fn every_emotion_has_offsets_and_prosody() {
        for (k, p) in EMOTION_PROSODY.iter().enumerate().skip(1) {
            assert!(!emotion_offsets(k).is_empty(), "{}", emotion_name(k));
            assert!(p.rate > 0.0);
        }
    }
}
