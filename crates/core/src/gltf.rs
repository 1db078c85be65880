//! A baked take written into an avatar's glTF binary (`.glb`, `.vrm`) as a
//! morph-target weight animation (feature `gltf`).
//!
//! glTF 2.0 (Khronos, §3.11 "Animations"): one channel per node that
//! carries a mesh with morph targets, `target.path = "weights"`, a LINEAR
//! sampler whose input is the frame times (seconds, `FLOAT` `SCALAR`, with
//! min/max) and whose output holds `frames × targets` weights. Morph target
//! names come from the mesh's `extras.targetNames` (the de-facto convention
//! of Blender, three.js and Bevy's loader). ARKit weights reach them
//! through a [`RetargetMap`] (by default the identity on the 52 ARKit names,
//! matched ignoring case). Everything else in the file — nodes, skins,
//! materials, extensions such as `VRMC_vrm`, the binary data — is kept; the
//! animation's data is appended to the binary chunk.
//!
//! Parsing and writing go through the `gltf` crate's GLB container and
//! `gltf-json` document types.

use gltf::Glb;
use gltf::json;
use gltf::json::validation::{Checked, USize64};

use crate::bake::BakedTake;
use crate::rig::{RetargetError, RetargetMap};

/// Errors of [`bake_into_glb`].
#[derive(Debug, thiserror::Error)]
pub enum GltfBakeError {
    /// Not a glTF binary, or its JSON chunk is not valid glTF.
    #[error("not a valid glTF binary (.glb/.vrm): {0}")]
    Parse(String),
    /// No mesh has morph targets named in `extras.targetNames`.
    #[error(
        "the avatar has no mesh with named morph targets (extras.targetNames); nothing to animate"
    )]
    NoMorphTargets,
    /// No morph target of the avatar is driven by the retarget map.
    #[error(
        "none of the avatar's morph targets is driven by the retarget map (targets: {targets}); pass a retarget map for this rig"
    )]
    NothingBound {
        /// The first few morph target names found.
        targets: String,
    },
    /// The retarget map does not fit the ARKit channels.
    #[error(transparent)]
    Retarget(#[from] RetargetError),
    /// The take is empty or not finite.
    #[error("the take has no frames or a non-finite frame rate")]
    EmptyTake,
    /// The avatar's VRM extension cannot drive it (VRM 0.x, or a malformed
    /// `VRMC_vrm`), and no morph target has an ARKit name.
    #[error("no morph target has an ARKit name, and the VRM expressions cannot be used: {0}")]
    Vrm(String),
    /// The file already has an animation of that name.
    #[error(
        "the avatar already has an animation named `{0}`; bake under another name or into the original avatar"
    )]
    DuplicateName(String),
    /// The output would exceed glTF's 4 GiB binary limit.
    #[error("the animation does not fit in a glTF binary chunk")]
    TooLarge,
}

/// What [`bake_into_glb`] animated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GltfBakeReport {
    /// Per animated node: its name (or `node N`), targets driven, targets in all.
    pub nodes: Vec<(String, usize, usize)>,
    /// Morph target names no rule drives (they stay at 0 in the animation).
    pub unbound: Vec<String>,
    /// When the avatar was driven through its VRM 1.0 expressions (no
    /// ARKit-named targets): how many expressions it has; 0 otherwise.
    pub vrm_expressions: usize,
}

/// Morph target names of `mesh` from its `extras.targetNames`.
pub fn target_names(mesh: &json::Mesh) -> Option<Vec<String>> {
    let extras = mesh.extras.as_ref()?;
    let v: serde_json::Value = serde_json::from_str(extras.get()).ok()?;
    let names = v.get("targetNames")?.as_array()?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
}

/// Adds `take` to the glTF binary `glb` as an animation named `name` and
/// returns the new file and what was bound.
///
/// Every node whose mesh has named morph targets gets a `weights` channel;
/// target `t` of it plays the ARKit weights mapped by `retarget` (identity
/// on the ARKit names when `None`), 0 where no rule drives it. A VRM 1.0
/// avatar (`VRMC_vrm`) whose targets none of that binds, with no
/// `retarget`, is driven through its expressions instead, as the plugin
/// drives it live: visemes `aa ih ou ee oh`, blinks, gaze and the emotion
/// presets from the ARKit weights and `take.emotion`
/// ([`crate::vrm::preset_weights`]), each expression's `morphTargetBinds`
/// summed per target and clamped to 1.
///
/// # Errors
/// [`GltfBakeError`]: an unreadable file, an avatar without named morph
/// targets or with none driven, a retarget map naming unknown ARKit
/// channels, an empty take, an animation already named `name`.
pub fn bake_into_glb(
    glb: &[u8],
    take: &BakedTake,
    retarget: Option<&RetargetMap>,
    name: &str,
) -> Result<(Vec<u8>, GltfBakeReport), GltfBakeError> {
    if take.frames.is_empty() || !(take.fps.is_finite() && take.fps > 0.0) {
        return Err(GltfBakeError::EmptyTake);
    }
    let parsed = Glb::from_slice(glb).map_err(|e| GltfBakeError::Parse(e.to_string()))?;
    let mut root: json::Root = json::deserialize::from_slice(&parsed.json)
        .map_err(|e| GltfBakeError::Parse(e.to_string()))?;
    let mut bin: Vec<u8> = parsed.bin.map(|b| b.into_owned()).unwrap_or_default();
    if root
        .animations
        .iter()
        .any(|a| a.name.as_deref() == Some(name))
    {
        return Err(GltfBakeError::DuplicateName(name.to_string()));
    }

    // Nodes that carry a mesh with named morph targets.
    let mut report = GltfBakeReport::default();
    let mut animated: Vec<(usize, Vec<f32>)> = Vec::new(); // node, [frames × targets]
    let mut any_targets = false;
    let mut all_names: Vec<String> = Vec::new();
    for (ni, node) in root.nodes.iter().enumerate() {
        let Some(mesh) = node.mesh.and_then(|m| root.meshes.get(m.value())) else {
            continue;
        };
        let Some(names) = target_names(mesh) else {
            continue;
        };
        if names.is_empty() {
            continue;
        }
        any_targets = true;
        let (out, covered) = take.morph_weights(&names, retarget)?;
        if covered.is_empty() {
            all_names.extend(names.iter().take(8).cloned());
            continue;
        }
        for (t, n) in names.iter().enumerate() {
            if !covered.contains(&t) && !report.unbound.contains(n) {
                report.unbound.push(n.clone());
            }
        }
        let label = node.name.clone().unwrap_or_else(|| format!("node {ni}"));
        report.nodes.push((label, covered.len(), names.len()));
        animated.push((ni, out));
    }
    // A VRM 1.0 avatar whose morph targets are not ARKit-named (no perfect
    // sync): drive its expression presets as the plugin does
    // (`vrm::preset_weights`, the take's emotion for happy/sad/…).
    if animated.is_empty()
        && retarget.is_none()
        && let Some(vrm) = vrm_expressions(&root)?
    {
        animated = vrm_morph_weights(&root, &vrm, take);
        for (ni, w) in &animated {
            let n = w.len() / take.frames.len().max(1);
            let label = root.nodes[*ni]
                .name
                .clone()
                .unwrap_or_else(|| format!("node {ni}"));
            let mut bound: Vec<usize> = Vec::new();
            for b in vrm.expressions.iter().flat_map(|e| &e.binds) {
                if b.node == *ni && !bound.contains(&b.index) {
                    bound.push(b.index);
                }
            }
            report.nodes.push((label, bound.len(), n));
        }
        report.vrm_expressions = vrm.expressions.len();
        any_targets |= !animated.is_empty();
    }
    if !any_targets {
        return Err(GltfBakeError::NoMorphTargets);
    }
    if animated.is_empty() {
        return Err(GltfBakeError::NothingBound {
            targets: all_names.join(", "),
        });
    }

    // One buffer (the GLB's BIN chunk, buffer 0): times, then each node's weights.
    if root.buffers.is_empty() {
        root.buffers.push(json::Buffer {
            byte_length: USize64(0),
            name: None,
            uri: None,
            extensions: None,
            extras: Default::default(),
        });
    }
    let times: Vec<f32> = (0..take.frames.len())
        .map(|k| take.time(k) as f32)
        .collect();
    let time_max = times.last().copied().unwrap_or(0.0);
    let input = push_accessor(
        &mut root,
        &mut bin,
        &times,
        Some((vec![0.0], vec![time_max])),
    );
    let mut channels = Vec::new();
    let mut samplers = Vec::new();
    for (node, weights) in &animated {
        let output = push_accessor(&mut root, &mut bin, weights, None);
        samplers.push(json::animation::Sampler {
            input,
            interpolation: Checked::Valid(json::animation::Interpolation::Linear),
            output,
            extensions: None,
            extras: Default::default(),
        });
        channels.push(json::animation::Channel {
            sampler: json::Index::new(samplers.len() as u32 - 1),
            target: json::animation::Target {
                node: json::Index::new(*node as u32),
                path: Checked::Valid(json::animation::Property::MorphTargetWeights),
                extensions: None,
                extras: Default::default(),
            },
            extensions: None,
            extras: Default::default(),
        });
    }
    root.animations.push(json::Animation {
        name: Some(name.to_owned()),
        channels,
        samplers,
        extensions: None,
        extras: Default::default(),
    });
    if bin.len() > u32::MAX as usize {
        return Err(GltfBakeError::TooLarge);
    }
    root.buffers[0].byte_length = USize64(bin.len() as u64);

    let json_bytes =
        json::serialize::to_vec(&root).map_err(|e| GltfBakeError::Parse(e.to_string()))?;
    let out = Glb {
        header: gltf::binary::Header {
            magic: *b"glTF",
            version: 2,
            length: 0, // set by to_vec
        },
        json: std::borrow::Cow::Owned(json_bytes),
        bin: Some(std::borrow::Cow::Owned(bin)),
    }
    .to_vec()
    .map_err(|e| GltfBakeError::Parse(e.to_string()))?;
    Ok((out, report))
}

/// The `VRMC_vrm` expressions of a glTF root, if it has them.
fn vrm_expressions(root: &json::Root) -> Result<Option<crate::vrm::VrmExpressions>, GltfBakeError> {
    let Some(ext) = root.extensions.as_ref() else {
        return Ok(None);
    };
    crate::vrm::VrmExpressions::from_root_extensions(&ext.others)
        .map_err(|e| GltfBakeError::Vrm(e.to_string()))
}

/// Morph weights `[frames × targets]` per mesh node that a VRM expression
/// binds, for every frame of `take`: presets from the ARKit weights and the
/// take's emotion ([`crate::vrm::preset_weights`]), expressions resolved
/// (`isBinary`, overrides), binds summed and clamped to 1. Binds naming a
/// node without a mesh, or a target the mesh does not have, are skipped.
fn vrm_morph_weights(
    root: &json::Root,
    vrm: &crate::vrm::VrmExpressions,
    take: &BakedTake,
) -> Vec<(usize, Vec<f32>)> {
    // Target count of each mesh node's first primitive.
    let targets = |ni: usize| -> usize {
        root.nodes
            .get(ni)
            .and_then(|n| n.mesh)
            .and_then(|m| root.meshes.get(m.value()))
            .and_then(|m| m.primitives.first())
            .and_then(|p| p.targets.as_ref())
            .map_or(0, Vec::len)
    };
    let mut nodes: Vec<(usize, usize)> = Vec::new(); // node, target count
    for b in vrm.expressions.iter().flat_map(|e| &e.binds) {
        let n = targets(b.node);
        if n > 0 && !nodes.iter().any(|(ni, _)| *ni == b.node) {
            nodes.push((b.node, n));
        }
    }
    nodes.sort_unstable();
    let frames = take.frames.len();
    let mut out: Vec<(usize, Vec<f32>)> = nodes
        .iter()
        .map(|&(ni, n)| (ni, vec![0f32; frames * n]))
        .collect();
    let mut exprs = Vec::with_capacity(vrm.expressions.len());
    for (k, frame) in take.frames.iter().enumerate() {
        let presets = crate::vrm::preset_weights(frame, &take.emotion);
        vrm.resolve_into(&presets, &mut exprs);
        vrm.for_each_bind(&exprs, |b, w| {
            if let Some(j) = nodes.iter().position(|(ni, _)| *ni == b.node) {
                let n = nodes[j].1;
                if b.index < n {
                    let v = &mut out[j].1[k * n + b.index];
                    *v = (*v + w).min(1.0);
                }
            }
        });
    }
    out
}

/// Appends `values` (f32, 4-byte aligned) to `bin` with a buffer view and a
/// `SCALAR` `FLOAT` accessor; returns the accessor.
fn push_accessor(
    root: &mut json::Root,
    bin: &mut Vec<u8>,
    values: &[f32],
    min_max: Option<(Vec<f32>, Vec<f32>)>,
) -> json::Index<json::Accessor> {
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let offset = bin.len();
    for v in values {
        bin.extend_from_slice(&v.to_le_bytes());
    }
    let view = root.push(json::buffer::View {
        buffer: json::Index::new(0),
        byte_length: USize64((values.len() * 4) as u64),
        byte_offset: Some(USize64(offset as u64)),
        byte_stride: None,
        name: None,
        target: None,
        extensions: None,
        extras: Default::default(),
    });
    let (min, max) = match min_max {
        Some((min, max)) => (
            Some(serde_json::Value::from(min)),
            Some(serde_json::Value::from(max)),
        ),
        None => (None, None),
    };
    root.push(json::Accessor {
        buffer_view: Some(view),
        byte_offset: None,
        count: USize64(values.len() as u64),
        component_type: Checked::Valid(json::accessor::GenericComponentType(
            json::accessor::ComponentType::F32,
        )),
        type_: Checked::Valid(json::accessor::Type::Scalar),
        min,
        max,
        name: None,
        normalized: false,
        sparse: None,
        extensions: None,
        extras: Default::default(),
    })
}
