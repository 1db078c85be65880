//! Baked dialogue: an NPC line turned into an `AnimationClip` of morph
//! weights once at startup (`bevy_talking_head::bake`), then played through
//! `AnimationPlayer` together with the audio — no inference while it plays.
//! The same take can be written into the avatar file instead:
//! `talking-head bake LINE.wav --avatar HEAD.glb --output HEAD_LINE.glb`.
//!
//! ```text
//! cargo run --release --example dialogue [-- AUDIO_FILE]
//! ```

mod common;

use std::sync::Arc;

use bevy::prelude::*;
use bevy::world_serialization::{WorldAssetRoot, WorldInstanceReady};
use bevy_talking_head::audio::load_mono_16k;
use bevy_talking_head::bake::{BakeOptions, BakedTake, bake, bind_baked_clip};

const LINE: &str = "audio/LJ001-0001.wav";

/// The baked line, ready before the avatar spawns.
#[derive(Resource)]
struct Line(Arc<BakedTake>);

fn main() -> AppExit {
    let take = match bake_line() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot bake the line: {e}");
            return AppExit::error();
        }
    };
    App::new()
        .add_plugins(DefaultPlugins)
        .insert_resource(Line(Arc::new(take)))
        .add_systems(Startup, setup)
        .run()
}

/// Runs the shipped model over the whole line (offline, ~60× real time).
fn bake_line() -> Result<BakedTake, Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{}/assets/{LINE}", env!("CARGO_MANIFEST_DIR")));
    let (model, _) = bevy_talking_head::model::load_default_model()?;
    let (audio, _) = load_mono_16k(std::path::Path::new(&path))?;
    let options = BakeOptions {
        emotion: bevy_talking_head::model::parse_emotion("happy=0.5")?,
        fps: 30.0,
        ..default()
    };
    let take = bake(&model, &audio, &options, |_| {})?;
    info!(
        "baked {} frames at {} fps from {path}",
        take.frames.len(),
        take.fps
    );
    Ok(take)
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.0, 0.7, 0.75),
        Vec3::new(0.0, 0.66, 0.0),
    );
    commands
        .spawn((
            Name::new("npc"),
            WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(common::HEAD))),
        ))
        .observe(play_line);
}

/// Once the avatar is spawned: bind the take to its meshes, then play the
/// clip and the audio together, looping.
fn play_line(ready: On<WorldInstanceReady>, mut commands: Commands) {
    let npc = ready.entity;
    commands.queue(move |world: &mut World| {
        let take = world.resource::<Line>().0.clone();
        let baked = match bind_baked_clip(world, npc, &take, None) {
            Ok(b) => b,
            Err(e) => {
                error!("cannot bind the line: {e}");
                return;
            }
        };
        let clip = world
            .resource_mut::<Assets<AnimationClip>>()
            .add(baked.clip);
        let (graph, index) = AnimationGraph::from_clip(clip);
        let graph = world.resource_mut::<Assets<AnimationGraph>>().add(graph);
        let audio = world.resource::<AssetServer>().load(LINE);
        let mut player = world.entity_mut(baked.player);
        player.insert(AnimationGraphHandle(graph));
        if let Some(mut p) = player.get_mut::<AnimationPlayer>() {
            p.play(index).repeat();
        }
        // Audio and clip start on the same frame; a game would start both
        // from its dialogue system.
        world.spawn((AudioPlayer::new(audio), PlaybackSettings::LOOP));
    });
}
