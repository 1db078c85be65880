//! Writing `MorphWeights`: the only module of the plugin that does
//! ([`TalkingHeadSystems::ApplyMorphs`](super::TalkingHeadSystems)).

use bevy::mesh::morph::MorphWeights;
use bevy::prelude::*;

use super::components::{FaceExpression, MorphBinding, SensorOverrides, clamp01};

/// Writes each head's face into the `MorphWeights` of its bound meshes.
pub(crate) fn apply_morphs(
    mut heads: Query<(&FaceExpression, Option<&SensorOverrides>, &mut MorphBinding)>,
    mut weights: Query<&mut MorphWeights>,
) {
    for (face, sensors, mut binding) in &mut heads {
        let mut w = face.weights;
        for v in &mut w {
            *v = clamp01(*v);
        }
        if let Some(s) = sensors {
            s.apply(&mut w);
        }
        let mut lost = false;
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
