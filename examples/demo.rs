//! The demo: a head speaking a clip (played with kira) in sync, an orbit
//! camera and the emotion / diagnostics panel.
//!
//! ```text
//! cargo run --release --example demo                 # the bundled LJ Speech clip
//! cargo run --release --example demo -- --file my.wav  # any audio file (wav, flac, mp3, ogg)
//! cargo run --release --example demo -- --mic          # your microphone
//! cargo run --release --example demo -- --emotion happy
//! cargo run --release --example demo -- --screenshot out.png --exit-after 2.0
//! ```
//!
//! `--screenshot PATH --exit-after SECONDS` renders, saves a PNG when the
//! clip has played for SECONDS and exits. Screenshot mode uses a fixed
//! frame time (1/30 s) and kira's silent virtual clock, so the captured
//! moment is the same on a fast GPU and on a software rasteriser.
//! Drag with the left mouse button to orbit, scroll to zoom.

use std::path::PathBuf;
use std::time::Duration;

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::time::TimeUpdateStrategy;
use bevy::world_serialization::WorldAssetRoot;
use bevy_talking_head::prelude::*;
use kira::sound::static_sound::StaticSoundData;

const HEAD: &str = "avatars/mh_arkit_head.glb";
const CLIP: &str = "assets/audio/LJ001-0001.wav";
const FIXED_DT: f64 = 1.0 / 30.0;

#[derive(Resource, Clone, Debug, Default)]
struct Args {
    mic: bool,
    file: Option<PathBuf>,
    screenshot: Option<PathBuf>,
    exit_after: Option<f64>,
    emotion: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--mic" => a.mic = true,
            "--file" => a.file = Some(val("--file")?.into()),
            "--screenshot" => a.screenshot = Some(val("--screenshot")?.into()),
            "--exit-after" => {
                let v = val("--exit-after")?;
                a.exit_after = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x >= 0.0)
                        .ok_or(format!("--exit-after: '{v}' is not a number of seconds"))?,
                );
            }
            "--emotion" => a.emotion = Some(val("--emotion")?),
            "-h" | "--help" => {
                println!(
                    "demo [--mic] [--file PATH] [--emotion NAME] [--screenshot PATH --exit-after SECONDS]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    if a.screenshot.is_some() && a.exit_after.is_none() {
        return Err("--screenshot needs --exit-after SECONDS".into());
    }
    Ok(a)
}

fn main() -> AppExit {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            return AppExit::error();
        }
    };
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_talking_head demo".into(),
                    resolution: (1280u32, 720u32).into(),
                    ..default()
                }),
                ..default()
            })
            .set(AssetPlugin {
                file_path: asset_dir(),
                ..default()
            })
            .set(RenderPlugin {
                synchronous_pipeline_compilation: args.screenshot.is_some(),
                ..default()
            }),
    );
    if args.screenshot.is_some() {
        // Deterministic capture: fixed frame time, silent virtual audio clock.
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            FIXED_DT,
        )))
        .insert_resource(TalkingHeadAudio::virtual_clock());
    }
    app.add_plugins((TalkingHeadPlugin::default(), TalkingHeadUiPlugin))
        .insert_resource(args)
        .insert_resource(ClearColor(Color::srgb(0.12, 0.13, 0.15)))
        .init_resource::<Playback>()
        .add_systems(Startup, setup)
        .add_systems(Update, (start_voice, orbit_camera, capture_and_exit))
        .run()
}

/// `assets/` of the working directory when it has the head (or when
/// `BEVY_ASSET_ROOT` is set), else the copy in this crate's source tree, so
/// the demo binary also runs outside `cargo run`.
fn asset_dir() -> String {
    if std::env::var_os("BEVY_ASSET_ROOT").is_some() {
        return "assets".into();
    }
    let local = std::path::Path::new("assets");
    if local.join(HEAD).exists()
        && let Ok(abs) = std::path::absolute(local)
    {
        return abs.to_string_lossy().into_owned();
    }
    format!("{}/assets", env!("CARGO_MANIFEST_DIR"))
}

#[derive(Component)]
struct Orbit {
    yaw: f32,
    pitch: f32,
    distance: f32,
    target: Vec3,
}

impl Orbit {
    fn transform(&self) -> Transform {
        let rot = Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0);
        Transform::from_translation(self.target + rot * Vec3::Z * self.distance)
            .looking_at(self.target, Vec3::Y)
    }
}

fn setup(mut commands: Commands, assets: Res<AssetServer>, args: Res<Args>) {
    let orbit = Orbit {
        yaw: 0.3,
        pitch: -0.08,
        distance: 0.52,
        target: Vec3::new(0.07, 0.70, 0.06),
    };
    commands.spawn((Camera3d::default(), orbit.transform(), orbit));
    commands.spawn((
        DirectionalLight {
            illuminance: 6_000.0,
            shadow_maps_enabled: false,
            ..default()
        },
        Transform::from_xyz(1.0, 2.0, 2.0).looking_at(Vec3::new(0.0, 0.7, 0.0), Vec3::Y),
    ));
    commands.spawn((
        PointLight {
            intensity: 80_000.0,
            color: Color::srgb(0.7, 0.8, 1.0),
            ..default()
        },
        Transform::from_xyz(-1.0, 1.0, 1.0),
    ));
    commands.insert_resource(GlobalAmbientLight {
        brightness: 300.0,
        ..default()
    });
    let emotion = args
        .emotion
        .as_deref()
        .and_then(|e| {
            let em = Emotion::named(e, 0.8);
            if em.is_none() {
                warn!("unknown emotion '{e}'; using neutral");
            }
            em
        })
        .unwrap_or_default();
    commands.spawn((
        Name::new("MakeHuman head"),
        WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(HEAD))),
        TalkingHead::default().with_emotion(emotion),
    ));
}

#[derive(Resource, Default)]
struct Playback {
    started_at: Option<f64>,
    screenshot_requested: bool,
    failed: bool,
}

/// Starts the voice once the model is ready and the head's morph targets
/// are bound (so the first syllable is not lost).
#[allow(clippy::too_many_arguments)] // a Bevy system: its parameters are its data access
fn start_voice(
    mut commands: Commands,
    args: Res<Args>,
    runtime: Res<TalkingHeadRuntime>,
    audio: Res<TalkingHeadAudio>,
    time: Res<Time>,
    mut playback: ResMut<Playback>,
    heads: Query<(Entity, &MorphBinding), With<TalkingHead>>,
    mut exit: MessageWriter<AppExit>,
) {
    if playback.started_at.is_some() || playback.failed {
        return;
    }
    if let bevy_talking_head::plugin::RuntimeState::Failed(e) = runtime.state() {
        error!("demo: the model did not load: {e}");
        playback.failed = true;
        if args.screenshot.is_some() {
            exit.write(AppExit::error());
        }
        return;
    }
    let Some((head, binding)) = heads.iter().next() else {
        return;
    };
    if !runtime.is_ready() || binding.bound_targets() == 0 {
        return;
    }
    if args.mic {
        commands.entity(head).insert(MicrophoneVoice::default());
    } else {
        let path = args.file.clone().unwrap_or_else(|| {
            let local = PathBuf::from(CLIP);
            if local.exists() {
                local
            } else {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(CLIP)
            }
        });
        let data = match StaticSoundData::from_file(&path) {
            Ok(d) => d,
            Err(e) => {
                error!("demo: cannot read {}: {e}", path.display());
                playback.failed = true;
                exit.write(AppExit::error());
                return;
            }
        };
        match KiraVoice::play(&audio, data) {
            Ok(v) => {
                commands.entity(head).insert(v);
            }
            Err(e) => {
                error!("demo: {e}");
                playback.failed = true;
                return;
            }
        }
        info!("playing {}", path.display());
    }
    playback.started_at = Some(time.elapsed_secs_f64());
}

fn capture_and_exit(
    mut commands: Commands,
    args: Res<Args>,
    time: Res<Time>,
    mut playback: ResMut<Playback>,
    mut exit: MessageWriter<AppExit>,
) {
    let (Some(t0), Some(after)) = (playback.started_at, args.exit_after) else {
        return;
    };
    // `after` seconds of playback have passed once the face for that
    // moment is on screen.
    if time.elapsed_secs_f64() - t0 + 1e-6 < after {
        return;
    }
    match &args.screenshot {
        None => {
            exit.write(AppExit::Success);
        }
        Some(path) if !playback.screenshot_requested => {
            playback.screenshot_requested = true;
            let _ = std::fs::remove_file(path);
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path.clone()));
        }
        Some(path) => {
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                info!("saved {}", path.display());
                exit.write(AppExit::Success);
            }
        }
    }
}

fn orbit_camera(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    mut egui: bevy_egui::EguiContexts,
    mut cams: Query<(&mut Orbit, &mut Transform)>,
) {
    let over_ui = egui
        .ctx_mut()
        .map(|c| c.egui_wants_pointer_input() || c.is_pointer_over_egui())
        .unwrap_or(false);
    for (mut orbit, mut tf) in &mut cams {
        if !over_ui && buttons.pressed(MouseButton::Left) {
            orbit.yaw -= motion.delta.x * 0.005;
            orbit.pitch = (orbit.pitch - motion.delta.y * 0.005).clamp(-1.2, 1.2);
        }
        if !over_ui && scroll.delta.y != 0.0 {
            orbit.distance = (orbit.distance * (1.0 - scroll.delta.y * 0.1)).clamp(0.2, 5.0);
        }
        *tf = orbit.transform();
    }
}
