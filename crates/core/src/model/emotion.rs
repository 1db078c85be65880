//! The ARKit offsets of the basic emotions, and the face each emotion makes
//! at rest.
//!
//! The offsets follow the Facial Action Coding System prototypes of the
//! basic emotions (Ekman & Friesen 1978; EMFACS) expressed in ARKit
//! blendshapes: happy = AU6 + AU12 (cheekSquint, mouthSmile); sad = AU1 +
//! AU4 + AU15 (browInnerUp, browDown, mouthFrown); angry = AU4 + AU5 + AU7 +
//! AU23 (browDown, eyeSquint, mouthPress, noseSneer); surprised = AU1 + AU2 +
//! AU5 + AU26 (browInnerUp, browOuterUp, eyeWide, jawOpen); fearful = AU1 +
//! AU2 + AU4 + AU5 + AU20 (brows, eyeWide, mouthStretch); disgusted = AU9 +
//! AU10 + AU15 (noseSneer, mouthUpperUp, mouthFrown).
//!
//! The trainer blends them into every training label (real speech
//! included), so the model learns each emotion's face on any voice; at run
//! time they define the face of an emotion when nothing is being said: the
//! model's silence gate ([`super::ModelConfig::silence_gate_dbfs`]) and the
//! plugin's rest face when no voice plays both use [`emotion_rest_face`].

use super::EMOTION_COUNT;
use crate::rig::{BLENDSHAPE_COUNT, Blendshape};

/// ARKit offsets of emotion `emotion` ([`super::EMOTIONS`] order) at full
/// intensity: `(channel, weight)`, weights in (0, 1]. Neutral (0) and
/// out-of-range indices have none.
pub fn emotion_offsets(emotion: usize) -> &'static [(Blendshape, f32)] {
    use Blendshape::*;
    // The action units outside each emotion's evaluated signature
    // (`truth_report::signature` in the trainer) stay below half of it, so
    // the signature reads first.
    match emotion {
        1 => &[
            (MouthSmileLeft, 0.6),
            (MouthSmileRight, 0.6),
            (CheekSquintLeft, 0.4),
            (CheekSquintRight, 0.4),
            (EyeSquintLeft, 0.15),
            (EyeSquintRight, 0.15),
        ],
        2 => &[
            (BrowInnerUp, 0.6),
            (BrowDownLeft, 0.1),
            (BrowDownRight, 0.1),
            (MouthFrownLeft, 0.5),
            (MouthFrownRight, 0.5),
            (MouthShrugLower, 0.15),
        ],
        3 => &[
            (BrowDownLeft, 0.75),
            (BrowDownRight, 0.75),
            (EyeSquintLeft, 0.2),
            (EyeSquintRight, 0.2),
            (NoseSneerLeft, 0.45),
            (NoseSneerRight, 0.45),
            (MouthPressLeft, 0.2),
            (MouthPressRight, 0.2),
        ],
        4 => &[
            (BrowInnerUp, 0.55),
            (BrowOuterUpLeft, 0.65),
            (BrowOuterUpRight, 0.65),
            (EyeWideLeft, 0.55),
            (EyeWideRight, 0.55),
            (JawOpen, 0.12),
        ],
        5 => &[
            (BrowInnerUp, 0.65),
            (BrowOuterUpLeft, 0.15),
            (BrowOuterUpRight, 0.15),
            (BrowDownLeft, 0.1),
            (BrowDownRight, 0.1),
            (EyeWideLeft, 0.55),
            (EyeWideRight, 0.55),
            (MouthStretchLeft, 0.45),
            (MouthStretchRight, 0.45),
        ],
        6 => &[
            (NoseSneerLeft, 0.7),
            (NoseSneerRight, 0.7),
            (MouthUpperUpLeft, 0.45),
            (MouthUpperUpRight, 0.45),
            (MouthFrownLeft, 0.2),
            (MouthFrownRight, 0.2),
            (BrowDownLeft, 0.2),
            (BrowDownRight, 0.2),
        ],
        _ => &[],
    }
}

/// The face an emotion vector makes at rest (mouth closed, nothing said):
/// for each channel, the sum over the emotions but neutral of
/// `offset × weight` (weights clamped to [0, 1]; NaN, ±Inf and negative
/// weights count as 0), capped at 1: the neutral face (every weight 0) with
/// the emotion's offsets. Weights in [0, 1]; all 0 for neutral. These summed
/// offsets are also what the trainer blends into every label
/// (`w + (1 − w) × offset`), so they are the label of silence and
/// noise-floor windows, and a trained model's output on silence is close
/// to them.
pub fn emotion_rest_face(emotion: &[f32; EMOTION_COUNT]) -> [f32; BLENDSHAPE_COUNT] {
    let mut offset = [0f32; BLENDSHAPE_COUNT];
    for (k, &e) in emotion.iter().enumerate().skip(1) {
        if !e.is_finite() || e <= 0.0 {
            continue;
        }
        for &(ch, w) in emotion_offsets(k) {
            offset[ch.index()] = (offset[ch.index()] + w * e.min(1.0)).min(1.0);
        }
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NEUTRAL_EMOTION;

    #[test]
    fn every_emotion_but_neutral_has_offsets_in_range() {
        assert!(emotion_offsets(0).is_empty() && emotion_offsets(EMOTION_COUNT).is_empty());
        for k in 1..EMOTION_COUNT {
            let o = emotion_offsets(k);
            assert!(!o.is_empty(), "{k}");
            assert!(o.iter().all(|&(_, w)| w > 0.0 && w <= 1.0), "{k}");
        }
    }

    #[test]
    fn rest_face_scales_with_intensity_and_is_neutral_for_neutral() {
        assert!(
            emotion_rest_face(&NEUTRAL_EMOTION)
                .iter()
                .all(|&w| w == 0.0)
        );
        let mut happy = [0f32; EMOTION_COUNT];
        happy[1] = 1.0;
        let full = emotion_rest_face(&happy);
        assert_eq!(full[Blendshape::MouthSmileLeft.index()], 0.6);
        assert_eq!(full[Blendshape::JawOpen.index()], 0.0);
        happy[1] = 0.5;
        let half = emotion_rest_face(&happy);
        assert!((half[Blendshape::MouthSmileRight.index()] - 0.3).abs() < 1e-6);
        // Bad weights are safe: NaN/Inf/negative count as 0, > 1 as 1, and
        // a blend never exceeds 1.
        let hostile = [
            f32::NAN,
            f32::INFINITY,
            -3.0,
            7.0,
            f32::NEG_INFINITY,
            1.0,
            1.0,
        ];
        let f = emotion_rest_face(&hostile);
        assert!(f.iter().all(|w| w.is_finite() && (0.0..=1.0).contains(w)));
        assert_eq!(f[Blendshape::MouthSmileLeft.index()], 0.0);
        // angry 0.75 + fearful 0.1 + disgusted 0.2 = 1.05, capped.
        assert_eq!(f[Blendshape::BrowDownLeft.index()], 1.0);
        assert!((f[Blendshape::NoseSneerLeft.index()] - 1.0).abs() < 1e-6);
    }
}
