//! A voice line played with Bevy's own audio (`AudioPlayer`): the head
//! follows the sink's position. Space pauses and resumes, Right seeks
//! 2 s ahead, Up/Down change the speed. Without a sound device the face
//! follows a virtual clock.
//!
//! ```text
//! cargo run --release --example bevy_audio
//! ```

mod common;

use bevy::audio::{AudioSink, AudioSinkPlayback};
use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::prelude::*;

fn main() -> AppExit {
    App::new()
        .add_plugins(DefaultPlugins)
        .add_plugins(TalkingHeadPlugins)
        .add_systems(Startup, setup)
        .add_systems(Update, controls)
        .run()
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.0, 0.7, 0.75),
        Vec3::new(0.0, 0.66, 0.0),
    );
    // The head plays its own line, looped, and follows it.
    commands.spawn((
        Name::new("speaker"),
        WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(common::HEAD))),
        TalkingHead::default(),
        AudioPlayer::new(assets.load("audio/LJ001-0001.wav")),
        PlaybackSettings::LOOP,
        BevyAudioVoice::default(),
    ));
    info!("Space: pause/resume   Right: seek +2 s   Up/Down: speed");
}

fn controls(keys: Res<ButtonInput<KeyCode>>, sinks: Query<(&AudioSink, &BevyAudioVoice)>) {
    for (sink, voice) in &sinks {
        if keys.just_pressed(KeyCode::Space) {
            sink.toggle_playback();
        }
        if keys.just_pressed(KeyCode::ArrowRight) {
            let to = std::time::Duration::from_secs_f64(voice.position() + 2.0);
            if let Err(e) = sink.try_seek(to) {
                warn!("seek: {e}");
            }
        }
        if keys.just_pressed(KeyCode::ArrowUp) {
            sink.set_speed((sink.speed() + 0.25).min(2.0));
        }
        if keys.just_pressed(KeyCode::ArrowDown) {
            sink.set_speed((sink.speed() - 0.25).max(0.5));
        }
    }
}
