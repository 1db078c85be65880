//! VRM 1.0 avatars (feature `vrm`): a [`TalkingHead`](super::TalkingHead)
//! over a spawned VRM animates through the avatar's expression presets.
//!
//! - [`VrmPlugin`] hooks Bevy's glTF loader (a `GltfExtensionHandler`):
//!   while a `.vrm`/`.glb` with the `VRMC_vrm` extension loads, it reads the
//!   expressions ([`VrmExpressions`]) onto the scene root ([`VrmAvatar`])
//!   and tags every node with its glTF index ([`VrmNode`]). It also lets
//!   the glTF loader read files named `.vrm`.
//! - The head's binding then drives the presets from the face
//!   (`aa ih ou ee oh` from the mouth, `blink*` and `look*` from the eye
//!   channels, `happy angry sad surprised` from the emotion; see
//!   [`preset_weights`](crate::vrm::preset_weights)), honouring `isBinary`
//!   and `overrideMouth` / `overrideBlink` / `overrideLookAt`.
//! - An avatar with ARKit "perfect sync" morph targets (at least
//!   [`PERFECT_SYNC_MIN`] of the 52 names on its meshes) is driven through
//!   them directly instead, as any ARKit avatar.

use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::gltf::extensions::{GltfExtensionHandler, GltfExtensionHandlers};
use bevy::gltf::{Gltf, GltfLoader, GltfLoaderSettings};
use bevy::prelude::*;

pub use crate::vrm::VrmExpressions;

/// ARKit names an avatar's meshes must have for it to be driven through
/// them ("perfect sync") rather than through its VRM presets.
pub const PERFECT_SYNC_MIN: usize = 40;

/// The expressions of a spawned VRM 1.0 avatar, on its scene root (put
/// there by [`VrmPlugin`] while the file loads).
#[derive(Component, Reflect, Clone)]
#[reflect(opaque)]
#[reflect(Component, Clone)]
pub struct VrmAvatar(pub Arc<VrmExpressions>);

impl std::fmt::Debug for VrmAvatar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrmAvatar")
            .field("spec_version", &self.0.spec_version)
            .field("expressions", &self.0.expressions.len())
            .finish()
    }
}

/// The glTF node index of a spawned node of a VRM avatar (what
/// `morphTargetBinds[].node` refers to).
#[derive(Component, Reflect, Clone, Copy, Debug, PartialEq, Eq)]
#[reflect(Component, Clone)]
pub struct VrmNode(pub usize);

/// Reads `VRMC_vrm` while a glTF loads (see the module docs).
#[derive(Clone, Default)]
struct VrmExtensionHandler {
    expressions: Option<Arc<VrmExpressions>>,
}

impl GltfExtensionHandler for VrmExtensionHandler {
    fn dyn_clone(&self) -> Box<dyn bevy::gltf::extensions::ErasedGltfExtensionHandler> {
        Box::new(self.clone())
    }

    fn on_root(
        &mut self,
        load_context: &mut LoadContext<'_>,
        gltf: &::gltf::Gltf,
        _settings: &GltfLoaderSettings,
    ) {
        self.expressions = None;
        let Some(ext) = gltf.extensions() else { return };
        match VrmExpressions::from_root_extensions(ext) {
            Ok(Some(x)) => self.expressions = Some(Arc::new(x)),
            Ok(None) => {}
            Err(e) => warn!(
                "talking-head: {}: {e}; the avatar is driven by morph target names only",
                load_context.path()
            ),
        }
    }

    fn on_gltf_node(
        &mut self,
        _load_context: &mut LoadContext<'_>,
        gltf_node: &::gltf::Node,
        entity: &mut EntityWorldMut,
    ) {
        if self.expressions.is_some() {
            entity.insert(VrmNode(gltf_node.index()));
        }
    }

    fn on_scene_completed(
        &mut self,
        _load_context: &mut LoadContext<'_>,
        _scene: &::gltf::Scene,
        world_root_id: Entity,
        scene_world: &mut World,
    ) {
        if let Some(x) = &self.expressions {
            scene_world
                .entity_mut(world_root_id)
                .insert(VrmAvatar(x.clone()));
        }
    }
}

/// Bevy's glTF loader for files named `.vrm` (a VRM is a glTF binary).
#[derive(TypePath)]
struct VrmFileLoader(GltfLoader);

impl AssetLoader for VrmFileLoader {
    type Asset = Gltf;
    type Settings = GltfLoaderSettings;
    type Error = bevy::gltf::GltfError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        settings: &Self::Settings,
        load_context: &mut LoadContext<'_>,
    ) -> Result<Gltf, Self::Error> {
        self.0.load(reader, settings, load_context).await
    }

    fn extensions(&self) -> &[&str] {
        &["vrm"]
    }
}

/// VRM 1.0 avatars: reads `VRMC_vrm` expressions while glTF files load and
/// loads `.vrm` files. Needs Bevy's `GltfPlugin` (add this after it, as
/// [`TalkingHeadPlugins`](super::TalkingHeadPlugins) after `DefaultPlugins`).
pub struct VrmPlugin;

impl Plugin for VrmPlugin {
    fn is_unique(&self) -> bool {
        false
    }

    fn build(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "build") {
            return;
        }
        app.register_type::<VrmAvatar>().register_type::<VrmNode>();
        let handlers = app
            .world_mut()
            .get_resource_or_init::<GltfExtensionHandlers>()
            .0
            .clone();
        handlers
            .write_blocking()
            .push(Box::new(VrmExtensionHandler::default()));
    }

    fn finish(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "finish") {
            return;
        }
        let world = app.world();
        // Without Bevy's glTF loader (e.g. `MinimalPlugins`) there is nothing to hook.
        if !world.contains_resource::<AssetServer>() || !world.contains_resource::<Assets<Gltf>>() {
            return;
        }
        let Some(handlers) = world.get_resource::<GltfExtensionHandlers>() else {
            return;
        };
        let formats = world
            .get_resource::<bevy::image::CompressedImageFormatSupport>()
            .map_or(bevy::image::CompressedImageFormats::NONE, |r| r.0);
        let sampler = world
            .get_resource::<bevy::gltf::DefaultGltfImageSampler>()
            .map_or_else(
                || {
                    Arc::new(std::sync::Mutex::new(
                        bevy::image::ImageSamplerDescriptor::linear(),
                    ))
                },
                |s| s.get_internal(),
            );
        let loader = GltfLoader {
            supported_compressed_formats: formats,
            custom_vertex_attributes: Default::default(),
            default_sampler: sampler,
            default_convert_coordinates: Default::default(),
            extensions: handlers.0.clone(),
            default_skinned_mesh_bounds_policy: Default::default(),
        };
        app.register_asset_loader(VrmFileLoader(loader));
    }
}

/// A head's VRM binding: for every expression, the (mesh node entity,
/// morph target index, weight) it moves.
#[derive(Debug, Clone)]
pub(crate) struct VrmBinding {
    pub(crate) expressions: Arc<VrmExpressions>,
    pub(crate) binds: Vec<Vec<(Entity, usize, f32)>>,
    /// Every (entity, target) some expression moves: reset each frame.
    pub(crate) touched: Vec<(Entity, usize)>,
    /// Per-frame expression weights (reused: no allocation per frame).
    pub(crate) scratch: Vec<f32>,
}

/// The VRM binding of the avatar below `head` when it has `VRMC_vrm`
/// expressions and no perfect sync (`arkit_bound` ARKit names found).
pub(crate) fn vrm_binding(
    head: Entity,
    arkit_bound: usize,
    children: &Query<&Children>,
    avatars: &Query<&VrmAvatar>,
    nodes: &Query<&VrmNode>,
) -> Option<VrmBinding> {
    if arkit_bound >= PERFECT_SYNC_MIN {
        return None;
    }
    let all: Vec<Entity> = std::iter::once(head)
        .chain(children.iter_descendants(head))
        .collect();
    let expressions = all.iter().find_map(|e| avatars.get(*e).ok())?.0.clone();
    let node_entity = |n: usize| {
        all.iter()
            .copied()
            .find(|e| nodes.get(*e).is_ok_and(|v| v.0 == n))
    };
    let mut touched = Vec::new();
    let binds = expressions
        .expressions
        .iter()
        .map(|x| {
            x.binds
                .iter()
                .filter_map(|b| {
                    let e = node_entity(b.node)?;
                    if !touched.contains(&(e, b.index)) {
                        touched.push((e, b.index));
                    }
                    Some((e, b.index, b.weight))
                })
                .collect()
        })
        .collect();
    Some(VrmBinding {
        scratch: Vec::with_capacity(expressions.expressions.len()),
        expressions,
        binds,
        touched,
    })
}
