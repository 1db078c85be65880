//! Several talking heads at once: four heads, each speaking the clip from
//! a different point with a different emotion, all stepped as one batch
//! by the single inference worker. Pick the head in the panel.
//!
//! ```text
//! cargo run --release --example multi_speaker [-- AUDIO_FILE]
//! ```

mod common;

use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::prelude::*;
use kira::sound::static_sound::StaticSoundData;

const HEADS: [(&str, f64); 4] = [
    ("neutral", 0.0),
    ("happy", 2.0),
    ("sad", 4.0),
    ("surprised", 6.0),
];

fn main() -> AppExit {
    App::new()
        .add_plugins(DefaultPlugins)
        .add_plugins((TalkingHeadPlugin::default(), TalkingHeadUiPlugin))
        .add_systems(Startup, setup)
        .add_systems(Update, start_voices)
        .run()
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.0, 0.75, 1.9),
        Vec3::new(0.0, 0.68, 0.0),
    );
    let scene = assets.load(GltfAssetLabel::Scene(0).from_asset(common::HEAD));
    for (i, (emotion, _)) in HEADS.iter().enumerate() {
        let x = (i as f32 - 1.5) * 0.5;
        commands.spawn((
            Name::new(format!("head {i} ({emotion})")),
            WorldAssetRoot(scene.clone()),
            Transform::from_xyz(x, 0.0, 0.0),
            TalkingHead::default()
                .with_emotion(Emotion::named(emotion, 0.9).unwrap_or_default())
                .with_seed(i as u64),
        ));
    }
}

fn start_voices(
    mut commands: Commands,
    mut started: Local<bool>,
    runtime: Res<TalkingHeadRuntime>,
    audio: Res<TalkingHeadAudio>,
    heads: Query<(Entity, &Name), With<TalkingHead>>,
) {
    if *started || !runtime.is_ready() {
        return;
    }
    *started = true;
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{}/assets/audio/LJ001-0001.wav", env!("CARGO_MANIFEST_DIR")));
    let data = match StaticSoundData::from_file(&path) {
        Ok(d) => d,
        Err(e) => {
            error!("cannot read {path}: {e}");
            return;
        }
    };
    let mut heads: Vec<_> = heads.iter().collect();
    heads.sort_by_key(|(_, n)| n.as_str().to_string());
    for ((entity, _), (_, offset)) in heads.into_iter().zip(HEADS) {
        let clip = data.start_position(offset).loop_region(..);
        match KiraVoice::play(&audio, clip) {
            Ok(v) => {
                commands.entity(entity).insert(v);
            }
            Err(e) => error!("{e}"),
        }
    }
}
