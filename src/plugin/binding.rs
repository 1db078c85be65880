//! Resolving which morph target of which mesh each ARKit channel drives.
//!
//! A glTF node with morph targets carries Bevy's `MorphWeights` (its mesh
//! primitives point at it with `MeshMorphWeights::Reference`), and the
//! target names are stored in the mesh (`Mesh::morph_target_names`, from
//! the glTF `extras.targetNames`). Every such node under a [`TalkingHead`]
//! is bound: by ARKit name (case-insensitive), or through the head's
//! [`FaceRetarget`] map. A face split over several meshes (head, teeth,
//! tongue, eyes) is therefore driven as one.

use bevy::mesh::morph::MorphWeights;
use bevy::prelude::*;

use super::components::{BoundMesh, FaceRetarget, MorphBinding, TalkingHead};
use crate::rig::{ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, RetargetMap};

/// Frames a head may go without any morph target before the plugin warns.
pub(crate) const NO_TARGETS_WARN_FRAMES: u32 = 240;

/// Marks heads for (re)binding when morph-weight nodes appear below them, or
/// the head or its retarget map changes.
type HeadChanges = (
    Entity,
    &'static mut MorphBinding,
    Ref<'static, TalkingHead>,
    Option<Ref<'static, FaceRetarget>>,
    Option<Ref<'static, Children>>,
);

pub(crate) fn mark_dirty(
    added: Query<Entity, Added<MorphWeights>>,
    parents: Query<&ChildOf>,
    mut heads: Query<HeadChanges>,
) {
    // The heads above each new morph-weight node (or the node itself): an
    // avatar that finishes loading rebinds its own head, not every head in
    // a crowd.
    let mut touched: Vec<Entity> = Vec::new();
    for node in &added {
        let mut e = node;
        for _ in 0..4096 {
            if heads.contains(e) && !touched.contains(&e) {
                touched.push(e);
            }
            match parents.get(e) {
                Ok(p) => e = p.parent(),
                Err(_) => break,
            }
        }
    }
    for (entity, mut b, head, retarget, children) in &mut heads {
        if touched.contains(&entity)
            || head.is_added()
            || retarget.is_some_and(|r| r.is_changed())
            || children.is_some_and(|c| c.is_changed())
        {
            b.dirty = true;
        }
    }
}

/// Resolves the binding of every dirty head.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bind(
    mut heads: Query<(Entity, &mut MorphBinding, Option<&FaceRetarget>), With<TalkingHead>>,
    children: Query<&Children>,
    #[cfg(feature = "vrm")] vrm_avatars: Query<&super::vrm::VrmAvatar>,
    #[cfg(feature = "vrm")] vrm_nodes: Query<&super::vrm::VrmNode>,
    weights: Query<&MorphWeights>,
    meshes: Option<Res<Assets<Mesh>>>,
    retarget_assets: Option<Res<Assets<super::RetargetAsset>>>,
    mut identity: Local<Option<RetargetMap>>,
) {
    let identity = identity.get_or_insert_with(|| RetargetMap::identity(&ARKIT_BLENDSHAPES));
    for (head, mut binding, retarget) in &mut heads {
        if !binding.dirty {
            if binding.meshes.is_empty() && !binding.warned_no_targets {
                binding.frames_without_targets += 1;
                if binding.frames_without_targets == NO_TARGETS_WARN_FRAMES {
                    binding.warned_no_targets = true;
                    warn!(
                        "TalkingHead {head}: no mesh with morph targets under this entity yet; \
                         the face cannot move (is the glTF loaded, and does it have morph targets?)"
                    );
                }
            }
            continue;
        }
        let map = match retarget {
            None => &*identity,
            Some(FaceRetarget::Map(m)) => m,
            Some(FaceRetarget::Asset(h)) => {
                match retarget_assets.as_deref().and_then(|a| a.get(h)) {
                    Some(a) => &a.0,
                    // Not loaded (yet): bind when it does (a failed load is
                    // logged by the asset server, naming the file).
                    None => continue,
                }
            }
        };
        let mut bound = Vec::new();
        let mut pending = false;
        // Per rule target name: found on some mesh?
        let mut target_found: Vec<bool> = vec![false; map.rules.len()];
        let mut arkit_covered = [false; BLENDSHAPE_COUNT];
        for e in std::iter::once(head).chain(children.iter_descendants(head)) {
            let Ok(w) = weights.get(e) else { continue };
            let names: Vec<String> = match (w.first_mesh(), meshes.as_deref()) {
                (Some(handle), Some(meshes)) => match meshes.get(handle) {
                    Some(mesh) => match mesh.morph_target_names() {
                        Some(n) => n.to_vec(),
                        None => continue,
                    },
                    None => {
                        pending = true;
                        continue;
                    }
                },
                _ => continue,
            };
            let (compiled, _missing) =
                match map.compile_skipping_missing_targets(&ARKIT_BLENDSHAPES, &names) {
                    Ok(c) => c,
                    Err(err) => {
                        error!("TalkingHead {head}: retarget map cannot be used: {err}");
                        continue;
                    }
                };
            if compiled.covered_targets().is_empty() {
                continue;
            }
            for (i, rule) in map.rules.iter().enumerate() {
                if names.iter().any(|n| n.eq_ignore_ascii_case(&rule.target)) {
                    target_found[i] = true;
                    if retarget.is_none()
                        && let Some(k) = crate::rig::blendshape_index(&rule.target)
                    {
                        arkit_covered[k] = true;
                    }
                }
            }
            let covered = compiled.covered_targets().len();
            bound.push(BoundMesh {
                entity: e,
                map: compiled,
                covered,
            });
        }
        // A VRM 1.0 avatar without ARKit perfect sync: through its presets.
        #[cfg(feature = "vrm")]
        {
            let arkit_bound = arkit_covered.iter().filter(|c| **c).count();
            binding.vrm = if retarget.is_none() {
                super::vrm::vrm_binding(head, arkit_bound, &children, &vrm_avatars, &vrm_nodes)
            } else {
                None
            };
            if let Some(v) = &binding.vrm {
                debug!(
                    "TalkingHead {head}: VRM {} avatar, {} expressions on {} morph targets",
                    v.expressions.spec_version,
                    v.expressions.expressions.len(),
                    v.touched.len()
                );
                binding.meshes = Vec::new();
                binding.missing = Vec::new();
                binding.dirty = pending;
                binding.resolutions += 1;
                continue;
            }
        }
        let missing: Vec<String> = if retarget.is_none() {
            ARKIT_BLENDSHAPES
                .iter()
                .zip(arkit_covered)
                .filter(|(_, c)| !c)
                .map(|(n, _)| (*n).to_string())
                .collect()
        } else {
            map.rules
                .iter()
                .zip(&target_found)
                .filter(|(_, f)| !**f)
                .map(|(r, _)| r.target.clone())
                .collect()
        };
        if !bound.is_empty() && !missing.is_empty() && missing != binding.missing {
            warn!(
                "TalkingHead {head}: {} of the expected morph targets are missing on its meshes \
                 (these channels will not animate; the rest does): {}",
                missing.len(),
                missing.join(", ")
            );
        }
        if !bound.is_empty() {
            debug!(
                "TalkingHead {head}: bound {} morph targets on {} mesh node(s)",
                bound.iter().map(|b| b.covered).sum::<usize>(),
                bound.len()
            );
        }
        binding.missing = if bound.is_empty() {
            Vec::new()
        } else {
            missing
        };
        binding.meshes = bound;
        binding.dirty = pending;
        binding.resolutions += 1;
    }
}
