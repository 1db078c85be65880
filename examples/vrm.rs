//! A VRM 1.0 avatar driven through its expression presets (`aa ih ou ee
//! oh` from the mouth, `blink*`/`look*` from the eyes, `happy angry sad
//! surprised` from the emotion). The avatar is the demo head with its
//! viseme morphs bound as VRM presets (`assets/avatars/NOTICE-vrm.md`).
//! Keys 1–5 pick the emotion (neutral, happy, sad, angry, surprised).
//!
//! ```text
//! cargo run --release --example vrm [-- AVATAR.vrm] [--emotion NAME]
//! ```
//!
//! `--screenshot PATH --exit-after SECONDS` renders on a fixed 30 fps clock
//! with the audio on the virtual clock, saves a PNG and exits (the
//! screenshot test, `tests/vrm_screenshot.rs`).

mod common;

use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::prelude::*;

const AVATAR: &str = "avatars/mh_arkit_head_visemes.vrm";

/// The command line after the program name.
#[derive(Resource, Default)]
struct Args {
    avatar: Option<String>,
    emotion: Option<String>,
}

fn main() -> AppExit {
    let shot = match common::ScreenshotAt::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return AppExit::error();
        }
    };
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--emotion" => args.emotion = it.next(),
            "--screenshot" | "--exit-after" => {
                it.next();
            }
            flag if flag.starts_with("--") => {
                eprintln!(
                    "unknown option {flag}; usage: vrm [AVATAR.vrm] [--emotion NAME] [--screenshot PATH --exit-after SECONDS]"
                );
                return AppExit::error();
            }
            _ => args.avatar = Some(a),
        }
    }
    let mut app = App::new();
    let window = WindowPlugin {
        primary_window: Some(Window {
            title: "bevy_talking_head: VRM avatar".into(),
            resolution: (1280u32, 720u32).into(),
            ..default()
        }),
        ..default()
    };
    if shot.is_some() {
        // No sound device: the voice follows the virtual clock, which the
        // fixed frame time makes deterministic.
        app.add_plugins(
            DefaultPlugins
                .set(window)
                .set(bevy::render::RenderPlugin {
                    synchronous_pipeline_compilation: true,
                    ..default()
                })
                .disable::<bevy::audio::AudioPlugin>(),
        )
        .init_asset::<bevy::audio::AudioSource>()
        .init_asset_loader::<bevy::audio::AudioLoader>();
    } else {
        app.add_plugins(DefaultPlugins.set(window));
    }
    if let Some(shot) = shot {
        shot.install(&mut app);
    }
    app.add_plugins(TalkingHeadPlugins)
        .insert_resource(args)
        .insert_resource(ClearColor(Color::srgb(0.12, 0.13, 0.15)))
        .add_systems(Startup, setup)
        .add_systems(Update, emotion_keys)
        .run()
}

fn setup(mut commands: Commands, assets: Res<AssetServer>, args: Res<Args>) {
    common::spawn_stage(
        &mut commands,
        Vec3::new(0.0, 0.7, 0.75),
        Vec3::new(0.0, 0.66, 0.0),
    );
    let avatar = args.avatar.clone().unwrap_or_else(|| AVATAR.into());
    let emotion = args.emotion.as_deref().unwrap_or("happy");
    commands.spawn((
        Name::new("vrm avatar"),
        WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(avatar))),
        TalkingHead::default().with_emotion(Emotion::named(emotion, 1.0).unwrap_or_default()),
        AudioPlayer::new(assets.load("audio/LJ001-0001.wav")),
        PlaybackSettings::LOOP,
        BevyAudioVoice::default(),
    ));
}

fn emotion_keys(keys: Res<ButtonInput<KeyCode>>, mut heads: Query<&mut TalkingHead>) {
    let pick = [
        (KeyCode::Digit1, "neutral"),
        (KeyCode::Digit2, "happy"),
        (KeyCode::Digit3, "sad"),
        (KeyCode::Digit4, "angry"),
        (KeyCode::Digit5, "surprised"),
    ];
    for (key, name) in pick {
        if keys.just_pressed(key) {
            for mut head in &mut heads {
                head.emotion = Emotion::named(name, 1.0).unwrap_or_default();
            }
        }
    }
}
