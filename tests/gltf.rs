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
            app.world().get::<MorphWeights>(node).unwrap().weights()[jaw]
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
    std::fs::write(dir.path().join("head_baked.glb"), &glb).unwrap();

    let mut app = headless_app(dir.path());
    let gltf: Handle<Gltf> = app.world().resource::<AssetServer>().load("head_baked.glb");
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
