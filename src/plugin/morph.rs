//! Writing `MorphWeights`: the only module of the plugin that does
//! ([`TalkingHeadSystems::ApplyMorphs`](super::TalkingHeadSystems)).

use bevy::mesh::morph::MorphWeights;
use bevy::prelude::*;

use super::components::{FaceExpression, MorphBinding, SensorOverrides, TalkingHead, clamp01};

/// Writes each head's face into the `MorphWeights` of its bound meshes.
pub(crate) fn apply_morphs(
    mut heads: Query<(
        &TalkingHead,
        &FaceExpression,
        Option<&SensorOverrides>,
        &mut MorphBinding,
    )>,
    mut weights: Query<&mut MorphWeights>,
) {
    for (head, face, sensors, mut binding) in &mut heads {
        let mut w = face.weights;
        for v in &mut w {
            *v = clamp01(*v);
        }
        if let Some(s) = sensors {
            s.apply(&mut w);
        }
        let mut lost = false;
        #[cfg(feature = "vrm")]
        if let Some(vrm) = binding.vrm.as_mut() {
            lost |= apply_vrm(vrm, &w, &head.emotion.conditioning(), &mut weights);
        }
        #[cfg(not(feature = "vrm"))]
        let _ = head;
        for m in &binding.meshes {
            match weights.get_mut(m.entity) {
                Ok(mut mw) => m.map.apply(&w, mw.weights_mut()),
                Err(_) => lost = true,
            }
        }
        if lost {
            binding.dirty = true;
        }
    }
}

/// Writes a VRM avatar's expressions for the face `w` and `emotion`;
/// returns whether a bound node is gone.
#[cfg(feature = "vrm")]
fn apply_vrm(
    vrm: &mut super::vrm::VrmBinding,
    w: &[f32; crate::rig::BLENDSHAPE_COUNT],
    emotion: &[f32; crate::model::EMOTION_COUNT],
    weights: &mut Query<&mut MorphWeights>,
) -> bool {
    let mut lost = false;
    for (e, i) in &vrm.touched {
        match weights.get_mut(*e) {
            Ok(mut mw) => {
                if let Some(v) = mw.weights_mut().get_mut(*i) {
                    *v = 0.0;
                }
            }
            Err(_) => lost = true,
        }
    }
    let presets = crate::vrm::preset_weights(w, emotion);
    vrm.expressions.resolve_into(&presets, &mut vrm.scratch);
    for (x, binds) in vrm.scratch.iter().zip(&vrm.binds) {
        if *x <= 0.0 {
            continue;
        }
        for (e, i, bw) in binds {
            if let Ok(mut mw) = weights.get_mut(*e)
                && let Some(v) = mw.weights_mut().get_mut(*i)
            {
                *v = (*v + x * bw).min(1.0);
            }
        }
    }
    lost
}
