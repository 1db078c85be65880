//! Baked dialogue: a recording turned into a Bevy [`AnimationClip`] of morph
//! weights, so NPC lines play through [`AnimationPlayer`] with no inference
//! at run time (the bake-to-clip workflow of uLipSync).
//!
//! 1. [`bake`] runs the streaming model over the whole recording (16 kHz
//!    mono) exactly as the plugin would, with the seeded upper-face layer,
//!    and returns a [`BakedTake`]: ARKit-52 weights in [0, 1] at `fps`.
//! 2. [`bind_baked_clip`] turns the take into an [`AnimationClip`] for a
//!    spawned avatar: one [`WeightsCurve`] (linear keyframes) per mesh node
//!    with morph targets, ARKit channels mapped onto the mesh's morph target
//!    names (identity on the ARKit names, or a [`RetargetMap`]). It gives
//!    those nodes an [`AnimationTargetId`] and [`AnimatedBy`] and the avatar
//!    an [`AnimationPlayer`] where the glTF loader did not (avatars without
//!    animations get none).
//!
//! Do not put a [`TalkingHead`](crate::plugin::TalkingHead) on an avatar
//! that plays baked clips: both would write its `MorphWeights`.
//! The same take can be written into the avatar's glTF file instead with
//! `talking-head bake AUDIO --avatar AVATAR.glb --output OUT.glb`.

use bevy::animation::animation_curves::WeightsCurve;
use bevy::animation::gltf_curves::WideLinearKeyframeCurve;
use bevy::animation::{AnimatedBy, AnimationTargetId};
use bevy::mesh::morph::MorphWeights;
use bevy::prelude::*;

pub use talking_head_core::bake::{BakeError, BakeOptions, BakedTake, bake};

use crate::rig::{RetargetError, RetargetMap};

/// Errors of [`bind_baked_clip`].
#[derive(Debug, thiserror::Error)]
pub enum BakeClipError {
    /// The avatar entity does not exist.
    #[error("the avatar entity {0} does not exist")]
    NoAvatar(Entity),
    /// No mesh below the avatar has morph targets (or its meshes are not loaded yet).
    #[error(
        "no loaded mesh with named morph targets below {0}; wait until the avatar's scene is spawned and its meshes loaded"
    )]
    NoMorphTargets(Entity),
    /// None of the avatar's morph targets is driven by the retarget map.
    #[error("none of the avatar's morph targets is driven by the retarget map (targets: {0})")]
    NothingBound(String),
    /// The retarget map names unknown ARKit channels.
    #[error(transparent)]
    Retarget(#[from] RetargetError),
    /// The take has fewer than two frames or a bad frame rate.
    #[error("the take needs at least two frames and a finite frame rate")]
    ShortTake,
}

/// The clip [`bind_baked_clip`] built, and where it plays.
#[derive(Debug)]
pub struct BakedClip {
    /// One `weights` curve per animated mesh node; add it to `Assets<AnimationClip>`.
    pub clip: AnimationClip,
    /// The entity with the [`AnimationPlayer`] that animates the nodes.
    pub player: Entity,
    /// Per animated node: the entity, morph targets driven, morph targets in all.
    pub nodes: Vec<(Entity, usize, usize)>,
}

/// A morph-weights curve of linear keyframes, as the glTF loader builds them.
pub type MorphWeightsCurve = WeightsCurve<WideLinearKeyframeCurve<f32>>;

/// A [`WeightsCurve`] playing `take` on a mesh whose morph targets are
/// `names`, mapped by `retarget` (identity on the ARKit names when `None`);
/// `None` when no target is driven; also returns the number of targets driven.
///
/// # Errors
/// [`BakeClipError::Retarget`], [`BakeClipError::ShortTake`].
pub fn weights_curve(
    take: &BakedTake,
    names: &[String],
    retarget: Option<&RetargetMap>,
) -> Result<Option<(MorphWeightsCurve, usize)>, BakeClipError> {
    if take.frames.len() < 2 || !(take.fps.is_finite() && take.fps > 0.0) {
        return Err(BakeClipError::ShortTake);
    }
    let (values, covered) = take.morph_weights(names, retarget)?;
    let bound = covered.len();
    if bound == 0 {
        return Ok(None);
    }
    let times = (0..take.frames.len()).map(|k| take.time(k) as f32);
    let curve =
        WideLinearKeyframeCurve::new(times, values).map_err(|_| BakeClipError::ShortTake)?;
    Ok(Some((WeightsCurve(curve), bound)))
}

/// Builds an [`AnimationClip`] that plays `take` on the avatar below
/// `avatar` (every descendant, or the entity itself, with `MorphWeights`
/// and a loaded mesh with morph target names), and makes it playable:
/// nodes without an [`AnimationTargetId`] get one (from the `Name` path
/// below the avatar, as the glTF loader does) and [`AnimatedBy`] the
/// avatar, which gets an [`AnimationPlayer`] if it has none.
///
/// Call it once the avatar's scene is spawned and its meshes loaded (e.g.
/// on `SceneInstanceReady`); play the clip with an `AnimationGraph`.
///
/// # Errors
/// [`BakeClipError`]: no avatar, no morph targets yet, none driven by the
/// map, a bad map or a take shorter than two frames.
pub fn bind_baked_clip(
    world: &mut World,
    avatar: Entity,
    take: &BakedTake,
    retarget: Option<&RetargetMap>,
) -> Result<BakedClip, BakeClipError> {
    if world.get_entity(avatar).is_err() {
        return Err(BakeClipError::NoAvatar(avatar));
    }
    // Mesh nodes below the avatar with their morph target names.
    let mut nodes: Vec<(Entity, Vec<String>)> = Vec::new();
    let mut stack = vec![avatar];
    while let Some(e) = stack.pop() {
        if let Some(children) = world.get::<Children>(e) {
            stack.extend(children.iter());
        }
        let Some(w) = world.get::<MorphWeights>(e) else {
            continue;
        };
        let names = w
            .first_mesh()
            .and_then(|h| world.get_resource::<Assets<Mesh>>()?.get(h))
            .and_then(|m| m.morph_target_names().map(<[String]>::to_vec));
        if let Some(names) = names.filter(|n| !n.is_empty()) {
            nodes.push((e, names));
        }
    }
    if nodes.is_empty() {
        return Err(BakeClipError::NoMorphTargets(avatar));
    }
    let mut clip = AnimationClip::default();
    let mut bound_nodes = Vec::new();
    let mut player = None;
    for (e, names) in &nodes {
        let Some((curve, bound)) = weights_curve(take, names, retarget)? else {
            continue;
        };
        let id = match world.get::<AnimationTargetId>(*e) {
            Some(id) => *id,
            None => {
                let id = AnimationTargetId::from_names(name_path(world, avatar, *e).iter());
                world.entity_mut(*e).insert(id);
                id
            }
        };
        let animated_by = match world.get::<AnimatedBy>(*e) {
            Some(a) => a.0,
            None => {
                world.entity_mut(*e).insert(AnimatedBy(avatar));
                avatar
            }
        };
        player.get_or_insert(animated_by);
        clip.add_curve_to_target(id, curve);
        bound_nodes.push((*e, bound, names.len()));
    }
    if bound_nodes.is_empty() {
        let sample: Vec<&str> = nodes
            .iter()
            .flat_map(|(_, n)| n.iter().take(8).map(String::as_str))
            .collect();
        return Err(BakeClipError::NothingBound(sample.join(", ")));
    }
    let player = player.unwrap_or(avatar);
    if world.get::<AnimationPlayer>(player).is_none() {
        world.entity_mut(player).insert(AnimationPlayer::default());
    }
    Ok(BakedClip {
        clip,
        player,
        nodes: bound_nodes,
    })
}

/// The `Name`s from `root` (inclusive) down to `node`, as the glTF loader
/// builds animation target paths (an unnamed entity is named by its id).
fn name_path(world: &World, root: Entity, node: Entity) -> Vec<Name> {
    let mut path = Vec::new();
    let mut e = node;
    loop {
        path.push(
            world
                .get::<Name>(e)
                .cloned()
                .unwrap_or_else(|| Name::new(format!("{e}"))),
        );
        if e == root {
            break;
        }
        match world.get::<ChildOf>(e) {
            Some(c) => e = c.parent(),
            None => break,
        }
    }
    path.reverse();
    path
}
