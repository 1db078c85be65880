//! A rig whose morph targets are not ARKit-named: the head is driven only
//! through its 15 Oculus viseme targets (`viseme_aa`, `viseme_PP`, ...)
//! with a retarget map loaded as an asset
//! (`assets/retarget/arkit_to_oculus_visemes.retarget.json`, the same JSON
//! type as the corpus's maps; `*.retarget.ron` works too). Targets the map names but the
//! mesh lacks are listed in one warning; the rest animates.
//!
//! ```text
//! cargo run --release --example custom_rig
//! ```

mod common;

use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::prelude::*;
use kira::sound::static_sound::StaticSoundData;

fn main() -> AppExit {
    App::new()
        .add_plugins(DefaultPlugins)
        .add_plugins((TalkingHeadPlugin::default(), TalkingHeadUiPlugin))
        .add_systems(Startup, setup)
        .add_systems(Update, start_voice)
        .run()
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) -> Result {
    // An asset: with Bevy's `file_watcher` feature, edits to the file are live.
    let map = FaceRetarget::asset(&assets, "retarget/arkit_to_oculus_visemes.retarget.json");
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.2, 0.72, 0.75),
        Vec3::new(0.0, 0.69, 0.05),
    );
    commands.spawn((
        Name::new("viseme-driven head"),
        WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(common::HEAD))),
        TalkingHead {
            upper_face: false,
            ..default()
        },
        map,
    ));
    Ok(())
}

fn start_voice(
    mut commands: Commands,
    mut started: Local<bool>,
    runtime: Res<TalkingHeadRuntime>,
    audio: Res<TalkingHeadAudio>,
    heads: Query<(Entity, &MorphBinding), With<TalkingHead>>,
) -> Result {
    let Ok((head, binding)) = heads.single() else {
        return Ok(());
    };
    if *started || !runtime.is_ready() || binding.bound_targets() == 0 {
        return Ok(());
    }
    *started = true;
    info!("bound {} viseme targets", binding.bound_targets());
    let data = StaticSoundData::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/audio/LJ001-0001.wav"
    ))?;
    commands
        .entity(head)
        .insert(KiraVoice::play(&audio, data.loop_region(..))?);
    Ok(())
}
