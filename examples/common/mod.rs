//! Scene pieces shared by the windowed examples.

use bevy::prelude::*;

/// The demo head shipped in `assets/`.
#[allow(dead_code)] // not every example uses it
pub const HEAD: &str = "avatars/mh_arkit_head.glb";

/// A camera at `eye` looking at `target`, a key light and ambient light.
pub fn spawn_stage(commands: &mut Commands, eye: Vec3, target: Vec3) {
    commands.spawn((
        Camera3d::default(),
        Transform::from_translation(eye).looking_at(target, Vec3::Y),
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 6_000.0,
            ..default()
        },
        Transform::from_xyz(1.0, 2.0, 2.0).looking_at(Vec3::new(0.0, 0.7, 0.0), Vec3::Y),
    ));
    commands.insert_resource(GlobalAmbientLight {
        brightness: 300.0,
        ..default()
    });
}

/// `--screenshot PATH --exit-after SECONDS`: render with a fixed 30 fps
/// frame time, save a PNG of the window once `SECONDS` of app time have
/// passed, then exit (how the screenshot tests drive the examples).
#[derive(Resource, Clone, Debug)]
#[allow(dead_code)] // not every example uses it
pub struct ScreenshotAt {
    /// Where the PNG goes.
    pub path: std::path::PathBuf,
    /// App time of the capture, seconds.
    pub secs: f64,
    requested: bool,
}

#[allow(dead_code)]
impl ScreenshotAt {
    /// Reads `--screenshot PATH --exit-after SECONDS` from the command line.
    pub fn from_args() -> Result<Option<Self>, String> {
        let args: Vec<String> = std::env::args().collect();
        let get = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| {
                    args.get(i + 1)
                        .cloned()
                        .ok_or(format!("{flag} needs a value"))
                })
                .transpose()
        };
        match (get("--screenshot")?, get("--exit-after")?) {
            (None, None) => Ok(None),
            (Some(path), Some(secs)) => Ok(Some(Self {
                path: path.into(),
                secs: secs
                    .parse()
                    .map_err(|_| format!("--exit-after: not a number: {secs}"))?,
                requested: false,
            })),
            _ => Err("--screenshot and --exit-after go together".into()),
        }
    }

    /// Fixed frame time and the capture system.
    pub fn install(self, app: &mut App) {
        app.insert_resource(bevy::time::TimeUpdateStrategy::ManualDuration(
            std::time::Duration::from_secs_f64(1.0 / 30.0),
        ))
        .insert_resource(self)
        .add_systems(Last, capture_and_exit);
    }
}

#[allow(dead_code)]
fn capture_and_exit(
    mut commands: Commands,
    mut shot: ResMut<ScreenshotAt>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
) {
    use bevy::render::view::screenshot::{Screenshot, save_to_disk};
    if time.elapsed_secs_f64() + 1e-6 < shot.secs {
        return;
    }
    if !shot.requested {
        shot.requested = true;
        let _ = std::fs::remove_file(&shot.path);
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(shot.path.clone()));
    } else if std::fs::metadata(&shot.path).is_ok_and(|m| m.len() > 0) {
        info!("saved {}", shot.path.display());
        exit.write(AppExit::Success);
    }
}
