//! Baked dialogue: an NPC line turned into an `AnimationClip` of morph
//! weights once at startup (`bevy_talking_head::bake`), then played through
//! `AnimationPlayer` together with the audio — no inference while it plays.
//! The same take can be written into the avatar file instead:
//! `talking-head bake LINE.wav --avatar HEAD.glb --output HEAD_LINE.glb`.
//!
//! ```text
//! cargo run --release --example dialogue [-- AUDIO_FILE]
//! ```
//!
//! `--screenshot PATH --exit-after SECONDS` saves a PNG and exits.

mod common;

use std::sync::Arc;

use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::audio::load_mono_16k;
use bevy_talking_head::bake::{BakeClipError, BakeOptions, BakedTake, bake, bind_baked_clip};

const LINE: &str = "audio/LJ001-0001.wav";

/// The baked line and its audio file's bytes, ready before the avatar
/// spawns (the audio is an asset from the start, so clip and sound begin on
/// the same frame instead of the sound waiting for a load).
#[derive(Resource)]
struct Line(Arc<BakedTake>, Arc<[u8]>);

/// The line's sound.
#[derive(Resource)]
struct LineAudio(Handle<AudioSource>);

fn main() -> AppExit {
    let line = match bake_line() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot bake the line: {e}");
            return AppExit::error();
        }
    };
    let shot = match common::ScreenshotAt::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return AppExit::error();
        }
    };
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(bevy::render::RenderPlugin {
        synchronous_pipeline_compilation: shot.is_some(),
        ..default()
    }));
    if let Some(shot) = shot {
        shot.install(&mut app);
    }
    app.insert_resource(line)
        .insert_resource(ClearColor(Color::srgb(0.12, 0.13, 0.15)))
        .add_systems(Startup, setup)
        .add_systems(Update, play_line)
        .run()
}

/// Runs the shipped model over the whole line (offline, ~60× real time);
/// returns the take and the file's bytes (played as the sound, so a line
/// given on the command line is the one heard).
fn bake_line() -> Result<Line, Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| format!("{}/assets/{LINE}", env!("CARGO_MANIFEST_DIR")));
    let (model, _) = bevy_talking_head::model::load_default_model()?;
    let (audio, _) = load_mono_16k(std::path::Path::new(&path))?;
    let bytes: Arc<[u8]> = std::fs::read(&path)?.into();
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
    Ok(Line(Arc::new(take), bytes))
}

fn setup(
    mut commands: Commands,
    assets: Res<AssetServer>,
    line: Res<Line>,
    mut sounds: ResMut<Assets<AudioSource>>,
) {
    commands.insert_resource(LineAudio(sounds.add(AudioSource {
        bytes: line.1.clone(),
    })));
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.0, 0.7, 0.75),
        Vec3::new(0.0, 0.66, 0.0),
    );
    commands.spawn((
        Name::new("npc"),
        Npc,
        WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(common::HEAD))),
    ));
}

/// The avatar that says the line (until it does).
#[derive(Component)]
struct Npc;

/// Once the avatar's scene and meshes are there: bind the take to them,
/// then play the clip and the audio together, looping.
fn play_line(world: &mut World) {
    let Some(npc) = world
        .query_filtered::<Entity, With<Npc>>()
        .iter(world)
        .next()
    else {
        return;
    };
    let take = world.resource::<Line>().0.clone();
    {
        let baked = match bind_baked_clip(world, npc, &take, None) {
            Ok(b) => b,
            // The scene or its meshes are still loading: try next frame.
            Err(BakeClipError::NoMorphTargets(_)) => return,
            Err(e) => {
                error!("cannot bind the line: {e}");
                world.entity_mut(npc).remove::<Npc>();
                return;
            }
        };
        world.entity_mut(npc).remove::<Npc>();
        info!(
            "bound the line to {} mesh node(s), {} morph targets",
            baked.nodes.len(),
            baked.nodes.iter().map(|n| n.1).sum::<usize>()
        );
        let clip = world
            .resource_mut::<Assets<AnimationClip>>()
            .add(baked.clip);
        let (graph, index) = AnimationGraph::from_clip(clip);
        let graph = world.resource_mut::<Assets<AnimationGraph>>().add(graph);
        let audio = world.resource::<LineAudio>().0.clone();
        let mut player = world.entity_mut(baked.player);
        player.insert(AnimationGraphHandle(graph));
        if let Some(mut p) = player.get_mut::<AnimationPlayer>() {
            p.play(index).repeat();
        }
        // Audio and clip start on the same frame; a game would start both
        // from its dialogue system.
        world.spawn((AudioPlayer::new(audio), PlaybackSettings::LOOP));
    }
}
