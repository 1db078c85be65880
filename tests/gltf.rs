//! Baked dialogue end to end, headless (Bevy without a renderer): a take
//! written into the demo head's `.glb` re-imports through Bevy's glTF
//! loader and plays through `AnimationPlayer`; `bind_baked_clip` turns a
//! take into a clip for an avatar that has no animation.
#![cfg(feature = "gltf")]

use std::path::Path;
use std::time::Duration;

use bevy::animation::AnimationTargetId;
use bevy::gltf::Gltf;
use bevy::mesh::morph::MorphWeights;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::settings::WgpuSettings;
use bevy::time::TimeUpdateStrategy;
use bevy::winit::WinitPlugin;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::audio::load_mono_16k;
use bevy_talking_head::bake::{BakeOptions, BakedTake, bake, bind_baked_clip};
use bevy_talking_head::model::TalkingHeadModel;

const DT: Duration = Duration::from_millis(20);
const HEAD: &str = "assets/avatars/mh_arkit_head.glb";

fn take() -> BakedTake {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = TalkingHeadModel::load(&root.join("assets/models/default.safetensors")).unwrap();
    let (audio, _) = load_mono_16k(&root.join("assets/audio/LJ001-0001.wav")).unwrap();
    bake(&model, &audio, &BakeOptions::default(), |_| {}).unwrap()
}

/// Bevy with asset loading, glTF, scenes and animation but no renderer,
/// window or log subscriber, reading assets from `dir`.
fn headless_app(dir: &Path) -> App {
    headless_app_with(dir, |_| {})
}

/// [`headless_app`] with more plugins added by `extra` before it finishes.
fn headless_app_with(dir: &Path, extra: impl FnOnce(&mut App)) -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(AssetPlugin {
                file_path: dir.to_string_lossy().into_owned(),
                ..default()
            })
            .set(RenderPlugin {
                render_creation: WgpuSettings {
                    backends: None,
                    ..default()
                }
                .into(),
                ..default()
            })
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: bevy::window::ExitCondition::DontExit,
                ..default()
            })
            .disable::<WinitPlugin>()
            .disable::<bevy::audio::AudioPlugin>(),
    )
    .insert_resource(TimeUpdateStrategy::ManualDuration(DT));
    extra(&mut app);
    // What `App::run` does first: e.g. the glTF loader registers in `finish`.
    app.finish();
    app.cleanup();
    app
}

/// The head node (with `MorphWeights`) and the index of `jawOpen` in its targets.
fn head_node(app: &mut App) -> Option<(Entity, usize)> {
    let world = app.world_mut();
    let mut q = world.query::<(Entity, &MorphWeights)>();
    let (e, w) = q.iter(world).next()?;
    let mesh = world.resource::<Assets<Mesh>>().get(w.first_mesh()?)?;
    let jaw = mesh
        .morph_target_names()?
        .iter()
        .position(|n| n == "jawOpen")?;
    Some((e, jaw))
}

fn spawn_until_ready(app: &mut App, path: &str) -> (Entity, Entity, usize) {
    let scene = app
        .world()
        .resource::<AssetServer>()
        .load(GltfAssetLabel::Scene(0).from_asset(path.to_owned()));
    let root = app.world_mut().spawn(WorldAssetRoot(scene)).id();
    for _ in 0..1500 {
        app.update();
        if let Some((node, jaw)) = head_node(app) {
            return (root, node, jaw);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let state = app
        .world()
        .resource::<AssetServer>()
        .get_load_state(app.world().get::<WorldAssetRoot>(root).unwrap().0.id());
    let n = app.world().entities().len();
    panic!("the scene of {path} did not spawn: {state:?}, {n} entities");
}

/// Plays node `index` of a one-clip graph on `player`; returns jawOpen
/// after each of `frames` updates.
fn play(
    app: &mut App,
    player: Entity,
    clip: Handle<AnimationClip>,
    node: Entity,
    jaw: usize,
    frames: usize,
) -> Vec<f32> {
    let (graph, index) = AnimationGraph::from_clip(clip);
    let graph = app
        .world_mut()
        .resource_mut::<Assets<AnimationGraph>>()
        .add(graph);
    app.world_mut()
        .entity_mut(player)
        .insert(AnimationGraphHandle(graph));
    app.world_mut()
        .get_mut::<AnimationPlayer>(player)
        .expect("an AnimationPlayer")
        .play(index);
    (0..frames)
        .map(|_| {
            app.update();
            match app.world().get::<MorphWeights>(node) {
                Some(w) => w.weights()[jaw],
                None => {
                    let world = app.world_mut();
                    let mut q = world.query::<(Entity, &MorphWeights)>();
                    let all: Vec<Entity> = q.iter(world).map(|(e, _)| e).collect();
                    panic!("{node} lost its MorphWeights; now on {all:?}");
                }
            }
        })
        .collect()
}

/// The played jawOpen track follows the take (the player may lag by a frame).
fn assert_follows(played: &[f32], take: &BakedTake, jaw_channel: usize) {
    let expect: Vec<f32> = (1..=played.len())
        .map(|k| {
            let t = k as f64 * DT.as_secs_f64();
            let i = ((t * take.fps).round() as usize).min(take.frames.len() - 1);
            take.frames[i][jaw_channel]
        })
        .collect();
    let max = played.iter().cloned().fold(0.0f32, f32::max);
    assert!(max > 0.1, "the jaw never opened while playing: max {max}");
    let err = played
        .iter()
        .zip(&expect)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / played.len() as f32;
    assert!(
        err < 0.05,
        "played jawOpen differs from the take by {err} on average"
    );
}

#[test]
fn a_bake_into_the_glb_reimports_and_plays_in_bevy() {
    let take = take();
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(HEAD)).unwrap();
    let (glb, report) = bevy_talking_head::gltf::bake_into_glb(&src, &take, None, "line1").unwrap();
    assert_eq!(report.nodes.len(), 1);
    assert_eq!(report.nodes[0].1, 52, "all 52 ARKit targets bound");
    // A second take under the same name is refused; another name is added.
    let again = bevy_talking_head::gltf::bake_into_glb(&glb, &take, None, "line1").unwrap_err();
    assert!(
        matches!(again, bevy_talking_head::gltf::GltfBakeError::DuplicateName(ref n) if n == "line1"),
        "{again}"
    );
    assert!(bevy_talking_head::gltf::bake_into_glb(&glb, &take, None, "line2").is_ok());
    std::fs::write(dir.path().join("head_baked.glb"), &glb).unwrap();

    let mut app = headless_app(dir.path());
    let gltf: Handle<Gltf> = app.world().resource::<AssetServer>().load("head_baked.glb");
    // The whole file first: a scene spawned while the file still loads is
    // spawned again when it finishes.
    for _ in 0..1500 {
        app.update();
        if app
            .world()
            .resource::<AssetServer>()
            .is_loaded_with_dependencies(&gltf)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (_, node, jaw) = spawn_until_ready(&mut app, "head_baked.glb");
    let clip = {
        let gltfs = app.world().resource::<Assets<Gltf>>();
        let g = gltfs.get(&gltf).expect("the glTF asset loaded");
        g.named_animations
            .get("line1")
            .expect("the baked animation by name")
            .clone()
    };
    let clips = app.world().resource::<Assets<AnimationClip>>();
    let duration = clips.get(&clip).unwrap().duration();
    assert!(
        (f64::from(duration) - take.time(take.frames.len() - 1)).abs() < 1e-3,
        "clip lasts {duration} s"
    );
    // The loader gave the animated node a target id and the root a player.
    assert!(app.world().get::<AnimationTargetId>(node).is_some());
    let player = {
        let world = app.world_mut();
        let mut q = world.query_filtered::<Entity, With<AnimationPlayer>>();
        q.single(world).expect("one AnimationPlayer")
    };
    let played = play(&mut app, player, clip, node, jaw, 150);
    assert_follows(
        &played,
        &take,
        bevy_talking_head::rig::Blendshape::JawOpen.index(),
    );
}

#[test]
fn a_take_binds_to_an_avatar_without_animations_and_plays() {
    let take = take();
    let mut app = headless_app(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .as_path(),
    );
    let (root, node, jaw) = spawn_until_ready(&mut app, "avatars/mh_arkit_head.glb");
    assert!(app.world().get::<AnimationTargetId>(node).is_none());
    let baked = bind_baked_clip(app.world_mut(), root, &take, None).unwrap();
    assert_eq!(baked.nodes, vec![(node, 52, 67)]);
    let clip = app
        .world_mut()
        .resource_mut::<Assets<AnimationClip>>()
        .add(baked.clip);
    let played = play(&mut app, baked.player, clip, node, jaw, 150);
    assert_follows(
        &played,
        &take,
        bevy_talking_head::rig::Blendshape::JawOpen.index(),
    );
}

// ---------------------------------------------------------------- VRM 1.0

/// The VRM test asset: the demo head with the `VRMC_vrm` extension, its
/// 15 Oculus viseme morphs bound as the mouth presets and ARKit morphs as
/// the blink, look and emotion presets. The ARKit target names are
/// prefixed `morph_` so the avatar has no perfect sync and must be driven
/// through its presets. Rebuild with
/// `cargo test --all-features --test gltf -- --ignored write_vrm_test_asset`.
fn vrm_test_asset() -> Vec<u8> {
    use serde_json::{Value, json};
    let src = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(HEAD)).unwrap();
    let glb = gltf::Glb::from_slice(&src).unwrap();
    let mut doc: Value = serde_json::from_slice(&glb.json).unwrap();
    let names: Vec<String> = doc["meshes"][0]["extras"]["targetNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let idx = |n: &str| names.iter().position(|m| m == n).unwrap();
    let bind = |targets: &[(&str, f32)]| -> Value {
        let binds: Vec<Value> = targets
            .iter()
            .map(|(n, w)| json!({"node": 0, "index": idx(n), "weight": w}))
            .collect();
        json!({ "morphTargetBinds": binds })
    };
    let mut surprised = bind(&[
        ("browOuterUpLeft", 1.0),
        ("browOuterUpRight", 1.0),
        ("browInnerUp", 0.6),
        ("eyeWideLeft", 1.0),
        ("eyeWideRight", 1.0),
    ]);
    surprised["overrideBlink"] = json!("blend");
    let vrm = json!({
        "specVersion": "1.0",
        "meta": {
            "name": "bevy_talking_head VRM test head (expressions only)",
            "version": "1",
            "authors": ["bevy_talking_head", "MakeHuman (base mesh, CC0)"],
            "licenseUrl": "https://vrm.dev/licenses/1.0/",
            "avatarPermission": "everyone",
            "commercialUsage": "corporation",
            "allowRedistribution": true,
            "modification": "allowModificationRedistribution"
        },
        "humanoid": { "humanBones": { "head": { "node": 0 } } },
        "expressions": { "preset": {
            "aa": bind(&[("viseme_aa", 1.0)]),
            "ih": bind(&[("viseme_I", 1.0)]),
            "ou": bind(&[("viseme_U", 1.0)]),
            "ee": bind(&[("viseme_E", 1.0)]),
            "oh": bind(&[("viseme_O", 1.0)]),
            "blink": bind(&[("eyeBlinkLeft", 1.0), ("eyeBlinkRight", 1.0)]),
            "blinkLeft": bind(&[("eyeBlinkLeft", 1.0)]),
            "blinkRight": bind(&[("eyeBlinkRight", 1.0)]),
            "lookUp": bind(&[("eyeLookUpLeft", 1.0), ("eyeLookUpRight", 1.0)]),
            "lookDown": bind(&[("eyeLookDownLeft", 1.0), ("eyeLookDownRight", 1.0)]),
            "lookLeft": bind(&[("eyeLookOutLeft", 1.0), ("eyeLookInRight", 1.0)]),
            "lookRight": bind(&[("eyeLookInLeft", 1.0), ("eyeLookOutRight", 1.0)]),
            "happy": bind(&[("mouthSmileLeft", 1.0), ("mouthSmileRight", 1.0), ("cheekSquintLeft", 0.8), ("cheekSquintRight", 0.8)]),
            "angry": bind(&[("browDownLeft", 1.0), ("browDownRight", 1.0), ("noseSneerLeft", 0.7), ("noseSneerRight", 0.7)]),
            "sad": bind(&[("browInnerUp", 1.0), ("mouthFrownLeft", 1.0), ("mouthFrownRight", 1.0)]),
            "relaxed": bind(&[("eyeSquintLeft", 0.5), ("eyeSquintRight", 0.5)]),
            "surprised": surprised,
            "neutral": { "morphTargetBinds": [] }
        }}
    });
    let renamed: Vec<Value> = names
        .iter()
        .map(|n| {
            if bevy_talking_head::rig::blendshape_index(n).is_some() {
                json!(format!("morph_{n}"))
            } else {
                json!(n)
            }
        })
        .collect();
    doc["meshes"][0]["extras"]["targetNames"] = Value::Array(renamed);
    doc["extensions"] = json!({ "VRMC_vrm": vrm });
    doc["extensionsUsed"] = json!(["VRMC_vrm"]);
    let mut json = serde_json::to_vec(&doc).unwrap();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    gltf::Glb {
        header: gltf::binary::Header {
            magic: *b"glTF",
            version: 2,
            length: 0,
        },
        json: json.into(),
        bin: glb.bin.clone(),
    }
    .to_vec()
    .unwrap()
}

const VRM: &str = "assets/avatars/mh_arkit_head_visemes.vrm";

/// A VRM avatar without perfect sync is baked through its expressions, as
/// the plugin drives it: the `aa` viseme morph opens with speech, and the
/// take's emotion reaches the `happy` preset's morphs (0 when neutral).
#[test]
fn a_take_bakes_into_a_vrm_through_its_expressions() {
    let vrm = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(VRM)).unwrap();
    let mut neutral = take();
    let mut happy = neutral.clone();
    happy.emotion = [0.0; bevy_talking_head::model::EMOTION_COUNT];
    happy.emotion[1] = 1.0;
    neutral.emotion = bevy_talking_head::model::NEUTRAL_EMOTION;
    let doc = |glb: &[u8]| -> serde_json::Value {
        serde_json::from_slice(&gltf::Glb::from_slice(glb).unwrap().json).unwrap()
    };
    let names: Vec<String> = doc(&vrm)["meshes"][0]["extras"]["targetNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let n = names.len();
    let col = |name: &str| names.iter().position(|m| m == name).unwrap();
    let weights = |glb: &[u8]| -> Vec<f32> {
        let g = gltf::Gltf::from_slice(glb).unwrap();
        let blob = g.blob.clone().unwrap();
        let anim = g.animations().last().unwrap();
        let ch = anim.channels().next().unwrap();
        let reader = ch.reader(|_| Some(&blob));
        match reader.read_outputs().unwrap() {
            gltf::animation::util::ReadOutputs::MorphTargetWeights(w) => w.into_f32().collect(),
            _ => panic!("not a weights channel"),
        }
    };
    let (out_n, report) =
        bevy_talking_head::gltf::bake_into_glb(&vrm, &neutral, None, "neutral").unwrap();
    assert!(report.vrm_expressions >= 17, "{report:?}");
    let (out_h, _) = bevy_talking_head::gltf::bake_into_glb(&vrm, &happy, None, "happy").unwrap();
    let (wn, wh) = (weights(&out_n), weights(&out_h));
    assert_eq!(wn.len(), neutral.frames.len() * n);
    let max = |w: &[f32], c: usize| (0..w.len() / n).map(|k| w[k * n + c]).fold(0f32, f32::max);
    let mean = |w: &[f32], c: usize| {
        (0..w.len() / n).map(|k| w[k * n + c]).sum::<f32>() / (w.len() / n) as f32
    };
    assert!(
        max(&wn, col("viseme_aa")) > 0.2,
        "aa {}",
        max(&wn, col("viseme_aa"))
    );
    assert!(
        wn.iter()
            .chain(&wh)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
    );
    let smile = col("morph_mouthSmileLeft");
    assert!(
        mean(&wn, smile) < 0.05,
        "neutral smile {}",
        mean(&wn, smile)
    );
    assert!(mean(&wh, smile) > 0.3, "happy smile {}", mean(&wh, smile));
}

#[test]
#[ignore = "writes the VRM test asset"]
fn write_vrm_test_asset() {
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(VRM),
        vrm_test_asset(),
    )
    .unwrap();
}

#[test]
fn the_vrm_test_asset_is_what_the_recipe_builds() {
    let committed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(VRM)).unwrap();
    assert!(
        committed == vrm_test_asset(),
        "{VRM} is stale: rerun write_vrm_test_asset"
    );
}

#[test]
fn a_vrm_avatar_speaks_through_its_presets_and_shows_emotion() {
    use bevy_talking_head::prelude::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = std::sync::Arc::new(
        TalkingHeadModel::load(&root.join("assets/models/default.safetensors")).unwrap(),
    );
    let mut app = headless_app_with(&root.join("assets"), |app| {
        app.add_plugins(TalkingHeadPlugin {
            model: ModelSource::Loaded(model),
            worker: bevy_talking_head::runtime::WorkerConfig {
                inline: true,
                ..default()
            },
            ..default()
        });
    });
    let (speech, _) = load_mono_16k(&root.join("assets/audio/LJ001-0001.wav")).unwrap();
    let stream = VoiceStream::with_delay(Duration::from_millis(300));
    let scene = app
        .world()
        .resource::<AssetServer>()
        .load(GltfAssetLabel::Scene(0).from_asset("avatars/mh_arkit_head_visemes.vrm"));
    let head = app
        .world_mut()
        .spawn((
            WorldAssetRoot(scene.clone()),
            TalkingHead::default(),
            stream.clone(),
        ))
        .id();
    // Wait for the scene and the binding.
    let mut node = None;
    for _ in 0..1500 {
        app.update();
        node = head_node_named(&mut app, "viseme_aa");
        let loaded = app
            .world()
            .resource::<AssetServer>()
            .is_loaded_with_dependencies(&scene);
        if loaded
            && node.is_some()
            && app
                .world()
                .get::<MorphBinding>(head)
                .is_some_and(|b| b.is_vrm())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (node, aa) = node.expect("the VRM scene spawned");
    let b = app.world().get::<MorphBinding>(head).unwrap();
    assert!(b.is_vrm(), "driven through the VRM presets");
    assert!(b.bound_targets() >= 30, "{} targets", b.bound_targets());
    let names = mesh_names(&mut app, node);
    let jaw = names.iter().position(|n| n == "morph_jawOpen").unwrap();
    let smile = names
        .iter()
        .position(|n| n == "morph_mouthSmileLeft")
        .unwrap();
    let mut max_aa = 0.0f32;
    let mut max_jaw = 0.0f32;
    let mut happy_smile = 0.0f32;
    for (k, chunk) in speech.chunks(320).enumerate() {
        if k == 250 {
            app.world_mut()
                .get_mut::<TalkingHead>(head)
                .unwrap()
                .emotion = Emotion::named("happy", 1.0).unwrap();
        }
        stream.push(chunk, 16_000).unwrap();
        app.update();
        let w = app.world().get::<MorphWeights>(node).unwrap().weights();
        max_aa = max_aa.max(w[aa]);
        max_jaw = max_jaw.max(w[jaw]);
        if k > 270 {
            happy_smile = happy_smile.max(w[smile]);
        }
    }
    assert!(
        max_aa > 0.1,
        "the `aa` preset never opened the mouth: {max_aa}"
    );
    assert_eq!(max_jaw, 0.0, "a morph no expression binds was written");
    assert!(
        happy_smile > 0.9,
        "happy did not reach the smile: {happy_smile}"
    );
}

fn mesh_names(app: &mut App, node: Entity) -> Vec<String> {
    let world = app.world();
    let w = world.get::<MorphWeights>(node).unwrap();
    let mesh = world
        .resource::<Assets<Mesh>>()
        .get(w.first_mesh().unwrap())
        .unwrap();
    mesh.morph_target_names().unwrap().to_vec()
}

fn head_node_named(app: &mut App, target: &str) -> Option<(Entity, usize)> {
    let world = app.world_mut();
    let mut q = world.query::<(Entity, &MorphWeights)>();
    let (e, w) = q.iter(world).next()?;
    let mesh = world.resource::<Assets<Mesh>>().get(w.first_mesh()?)?;
    let i = mesh
        .morph_target_names()?
        .iter()
        .position(|n| n == target)?;
    Some((e, i))
}
