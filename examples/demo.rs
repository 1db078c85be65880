//! The demo: a head speaking a clip (played with kira) in sync, an orbit
//! camera and the emotion / diagnostics panel.
//!
//! The MakeHuman head is one mesh with one material, so the demo dresses it
//! in code: a skin material, vertex colours for the lips, teeth, tongue and
//! a dark mouth interior, and eyeballs (sclera, iris, pupil) that the ARKit gaze
//! channels turn every frame; the eyelids are the head's own `eyeBlink`
//! morph targets, which close over them.
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
        .add_systems(
            Update,
            (
                start_voice,
                orbit_camera,
                capture_and_exit,
                dress_head,
                turn_eyes,
            ),
        )
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

fn setup(
    mut commands: Commands,
    assets: Res<AssetServer>,
    args: Res<Args>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let orbit = Orbit {
        yaw: 0.3,
        pitch: -0.08,
        distance: 0.52,
        target: Vec3::new(0.07, 0.70, 0.06),
    };
    commands.spawn((Camera3d::default(), orbit.transform(), orbit));
    commands.spawn((
        DirectionalLight {
            illuminance: 8_000.0,
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
        brightness: 150.0,
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
    commands.insert_resource(Looks {
        skin: materials.add(skin_material()),
    });
    let head = commands
        .spawn((
            Name::new("MakeHuman head"),
            WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(HEAD))),
            TalkingHead::default().with_emotion(emotion),
        ))
        .id();
    spawn_eyes(&mut commands, head, &mut meshes, &mut materials);
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

// ---------------------------------------------------------------------------
// Dressing the head: skin, mouth and eyes.
//
// `mh_arkit_head.glb` is one mesh, one material. Split into connected
// components (vertices welded by position) it is: the skin (4537 vertices,
// closed but for the neck, with a mouth bag behind the lips), the tongue
// (226), the upper and lower teeth (68 each) and two 72-vertex eyeballs,
// all in the same pale material, so blinks and gaze did not show and the
// open mouth showed lit skin. (Found with a one-off numpy script over the
// glTF buffers: connected components, a least-squares sphere fit of each
// eyeball, a Kabsch fit of its `eyeLook*` morph displacements, rays cast
// from the eye centres against the lids at `eyeBlink` 0 and 1.)

/// Eye centres in the head's mesh space (metres; the glTF node has an
/// identity transform, so this is also the `TalkingHead` entity's space):
/// least-squares sphere fits of the head's own eyeball vertices, subject's
/// left eye (+x) first.
const EYE_CENTRES: [Vec3; 2] = [
    Vec3::new(0.03078, 0.72841, 0.12454),
    Vec3::new(-0.03078, 0.72841, 0.12454),
];
/// The fitted eyeball radius is 0.01495 m (vertices up to 0.014997 m):
/// the sphere is a hair larger so it covers the mesh's low-poly eyeball,
/// and the lids still close over it (closed, their outer surface is at
/// least 16.6 mm from the centre over the eye opening: rays cast from the
/// centre up to 45° sideways and 30° up or down).
const EYEBALL_RADIUS: f32 = 0.01505;
/// Iris: radius of the visible disc and how far its apex stands out from
/// the centre (a cornea-like bulge, 0.35 mm proud of the eyeball).
const IRIS_RADIUS: f32 = 0.0056;
const IRIS_FRONT: f32 = 0.0154;
const PUPIL_RADIUS: f32 = 0.0022;
const PUPIL_FRONT: f32 = 0.01545;
/// Gaze angles (degrees) at weight 1 of `eyeLookUp/Down/In/Out`: what the
/// rig's own eyeball morph targets do (rotation fitted to their
/// displacements), so the eyes and the lids that follow them agree.
const LOOK_UP_DEG: f32 = 9.8;
const LOOK_DOWN_DEG: f32 = 11.4;
const LOOK_IN_DEG: f32 = 15.4;
const LOOK_OUT_DEG: f32 = 15.0;

/// Skin tone (sRGB) of the head's material.
const SKIN: Color = Color::srgb(0.78, 0.58, 0.49);

/// One eyeball, a direct child of its head; turned by [`turn_eyes`].
#[derive(Component)]
struct Eye {
    /// The subject's left eye (+x).
    left: bool,
}

/// A mesh under the head that [`dress_head`] has handled (or must leave
/// alone: the eyes).
#[derive(Component)]
struct Dressed;

#[derive(Resource)]
struct Looks {
    skin: Handle<StandardMaterial>,
}

fn skin_material() -> StandardMaterial {
    StandardMaterial {
        base_color: SKIN,
        perceptual_roughness: 0.55,
        // Skin's specular reflectance is about 2.8 % (F0), reflectance 0.42.
        reflectance: 0.42,
        ..default()
    }
}

/// A sphere that stands out of a base sphere (centred `base_z` along +z,
/// radius `base_r`) as a cap of radius `cap` whose apex is at `front`:
/// returns its centre along +z and its radius. Everything of it but the cap
/// lies inside the base sphere.
fn cap_sphere(base_z: f32, base_r: f32, cap: f32, front: f32) -> (f32, f32) {
    let f = front - base_z;
    let h = (base_r * base_r - cap * cap).sqrt();
    let d = (f * f - base_r * base_r) / (2.0 * (f - h));
    (base_z + d, f - d)
}

fn spawn_eyes(
    commands: &mut Commands,
    head: Entity,
    meshes: &mut Assets<Mesh>,
    materials: &mut Assets<StandardMaterial>,
) {
    let (iris_z, iris_r) = cap_sphere(0.0, EYEBALL_RADIUS, IRIS_RADIUS, IRIS_FRONT);
    let (pupil_z, pupil_r) = cap_sphere(iris_z, iris_r, PUPIL_RADIUS, PUPIL_FRONT);
    let ball = meshes.add(Sphere::new(EYEBALL_RADIUS).mesh().uv(64, 48));
    let iris = meshes.add(Sphere::new(iris_r).mesh().uv(64, 48));
    let pupil = meshes.add(Sphere::new(pupil_r).mesh().uv(48, 32));
    let wet = |c: Color, roughness: f32| StandardMaterial {
        base_color: c,
        perceptual_roughness: roughness,
        reflectance: 0.5,
        ..default()
    };
    let sclera = materials.add(wet(Color::srgb(0.80, 0.77, 0.72), 0.3));
    let iris_mat = materials.add(wet(Color::srgb(0.33, 0.22, 0.12), 0.2));
    let pupil_mat = materials.add(wet(Color::srgb(0.015, 0.012, 0.01), 0.15));
    for (i, centre) in EYE_CENTRES.into_iter().enumerate() {
        let eye = commands
            .spawn((
                Name::new(if i == 0 { "left eye" } else { "right eye" }),
                Eye { left: i == 0 },
                Dressed,
                Mesh3d(ball.clone()),
                MeshMaterial3d(sclera.clone()),
                Transform::from_translation(centre),
                ChildOf(head),
            ))
            .id();
        commands.spawn((
            Dressed,
            Mesh3d(iris.clone()),
            MeshMaterial3d(iris_mat.clone()),
            Transform::from_xyz(0.0, 0.0, iris_z),
            ChildOf(eye),
        ));
        commands.spawn((
            Dressed,
            Mesh3d(pupil.clone()),
            MeshMaterial3d(pupil_mat.clone()),
            Transform::from_xyz(0.0, 0.0, pupil_z),
            ChildOf(eye),
        ));
    }
}

/// Turns each eye by its head's gaze channels (this frame's face: the
/// plugin writes it in `PreUpdate`).
fn turn_eyes(heads: Query<&FaceExpression>, mut eyes: Query<(&Eye, &ChildOf, &mut Transform)>) {
    for (eye, parent, mut tf) in &mut eyes {
        let Ok(face) = heads.get(parent.parent()) else {
            continue;
        };
        let (up, down, look_in, out) = if eye.left {
            (
                Blendshape::EyeLookUpLeft,
                Blendshape::EyeLookDownLeft,
                Blendshape::EyeLookInLeft,
                Blendshape::EyeLookOutLeft,
            )
        } else {
            (
                Blendshape::EyeLookUpRight,
                Blendshape::EyeLookDownRight,
                Blendshape::EyeLookInRight,
                Blendshape::EyeLookOutRight,
            )
        };
        // Outward is +x for the left eye, -x for the right; a positive
        // rotation about y turns +z towards +x.
        let outward = face.get(out) * LOOK_OUT_DEG - face.get(look_in) * LOOK_IN_DEG;
        let yaw = if eye.left { outward } else { -outward };
        // A positive rotation about x turns +z towards -y.
        let pitch = face.get(down) * LOOK_DOWN_DEG - face.get(up) * LOOK_UP_DEG;
        tf.rotation =
            Quat::from_rotation_y(yaw.to_radians()) * Quat::from_rotation_x(pitch.to_radians());
    }
}

/// Gives the head's glTF mesh the skin material and vertex colours for the
/// parts that share it, once the mesh has loaded.
fn dress_head(
    mut commands: Commands,
    looks: Res<Looks>,
    heads: Query<Entity, With<TalkingHead>>,
    children: Query<&Children>,
    parts: Query<&Mesh3d, Without<Dressed>>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    for head in &heads {
        for e in children.iter_descendants(head) {
            let Ok(mesh3d) = parts.get(e) else {
                continue;
            };
            let Some(mut mesh) = meshes.get_mut(&mesh3d.0) else {
                continue;
            };
            match part_colours(&mesh) {
                Some(colours) => {
                    if let Err(err) = mesh.try_insert_attribute(Mesh::ATTRIBUTE_COLOR, colours) {
                        warn!("demo: cannot colour the head mesh: {err}");
                    }
                }
                None => warn!("demo: the head mesh has no positions or indices"),
            }
            commands
                .entity(e)
                .insert((MeshMaterial3d(looks.skin.clone()), Dressed));
        }
    }
}

/// Linear colour that, multiplied by the skin material's base colour, gives
/// `target` (sRGB).
fn tint(target: Color) -> [f32; 4] {
    let (t, s) = (target.to_linear(), SKIN.to_linear());
    [t.red / s.red, t.green / s.green, t.blue / s.blue, 1.0]
}

/// Per-vertex colours (multipliers of the skin material) of the head mesh:
/// skin 1; per connected component the eyeballs (hidden by the demo's eyes,
/// painted white anyway), the tongue (the one part over 150 vertices) and
/// the teeth; a rosy tint on the lips; and the mouth bag:
/// skin vertices with skin in front of them (a ray towards +z, the face's
/// forward, hits the lips or chin) darken with the depth behind that skin.
fn part_colours(mesh: &Mesh) -> Option<Vec<[f32; 4]>> {
    use bevy::mesh::VertexAttributeValues;
    let Ok(VertexAttributeValues::Float32x3(pos)) = mesh.try_attribute(Mesh::ATTRIBUTE_POSITION)
    else {
        return None;
    };
    let pos: Vec<Vec3> = pos.iter().map(|p| Vec3::from_array(*p)).collect();
    let tris: Vec<[usize; 3]> = mesh
        .try_indices()
        .ok()?
        .iter()
        .collect::<Vec<_>>()
        .chunks_exact(3)
        .map(|t| [t[0], t[1], t[2]])
        .collect();
    let comp = components(&pos, &tris);
    let mut size = std::collections::HashMap::<usize, usize>::new();
    for &c in &comp {
        *size.entry(c).or_default() += 1;
    }
    let skin = *size.iter().max_by_key(|(_, n)| **n)?.0;
    let mut centroid = std::collections::HashMap::<usize, Vec3>::new();
    for (p, &c) in pos.iter().zip(&comp) {
        *centroid.entry(c).or_default() += *p / size[&c] as f32;
    }
    let white = tint(Color::srgb(0.80, 0.77, 0.72));
    let teeth = tint(Color::srgb(0.74, 0.70, 0.62));
    let tongue = tint(Color::srgb(0.44, 0.16, 0.16));
    // No shadows reach into the mouth: teeth and tongue darken with depth
    // behind the lips (z 0.15 at the front teeth, 0.065 at the tongue's root).
    let in_shadow = |z: f32, c: [f32; 4]| {
        let k = 0.15 + 0.85 * ((z - 0.065) / 0.085).clamp(0.0, 1.0).powi(2);
        [c[0] * k, c[1] * k, c[2] * k, 1.0]
    };
    let mut colours: Vec<[f32; 4]> = comp
        .iter()
        .zip(&pos)
        .map(|(&c, p)| {
            if c == skin {
                [1.0; 4]
            } else if EYE_CENTRES.iter().any(|e| e.distance(centroid[&c]) < 0.005) {
                white
            } else if size[&c] > 150 {
                in_shadow(p.z, tongue)
            } else {
                in_shadow(p.z, teeth)
            }
        })
        .collect();
    let smooth = |x: f32| {
        let x = x.clamp(0.0, 1.0);
        x * x * (3.0 - 2.0 * x)
    };
    // Lips: a rosy tint over an ellipse around the mouth line (centre
    // y 0.6625, corners at x ±0.0235, vermilion up to y 0.676 and down to
    // 0.648 at the centre line, read off the mesh's profile), fading out at
    // its rim; the front of the face only.
    let lip = tint(Color::srgb(0.72, 0.48, 0.45));
    for (i, p) in pos.iter().enumerate() {
        if comp[i] != skin || p.z < 0.135 {
            continue;
        }
        let ry = if p.y > 0.6625 { 0.0135 } else { 0.0145 };
        let rho = Vec2::new(p.x / 0.025, (p.y - 0.6625) / ry).length();
        let w = smooth((1.1 - rho) / 0.3);
        colours[i] = std::array::from_fn(|c| 1.0 + (lip[c] - 1.0) * w);
    }
    // The mouth bag: near the mouth, behind the face.
    let near_mouth = |p: Vec3| p.x.abs() < 0.045 && (0.595..0.71).contains(&p.y) && p.z > 0.04;
    let skin_tris: Vec<[Vec3; 3]> = tris
        .iter()
        .filter(|t| comp[t[0]] == skin && t.iter().any(|&i| near_mouth(pos[i])))
        .map(|t| t.map(|i| pos[i]))
        .collect();
    let inner_lip = tint(Color::srgb(0.45, 0.22, 0.21));
    let dark = tint(Color::srgb(0.05, 0.025, 0.025));
    for (i, p) in pos.iter().enumerate() {
        if comp[i] != skin || !near_mouth(*p) || p.x.abs() > 0.04 || p.y > 0.705 {
            continue;
        }
        let Some(depth) = skin_tris
            .iter()
            .filter_map(|t| ray_hit(*p, Vec3::Z, t))
            .filter(|&t| t > 1e-4)
            .min_by(f32::total_cmp)
        else {
            continue;
        };
        // The surface colour at the lips' edge, lip-red 4 mm behind it,
        // dark from 15 mm.
        let (a, b) = (smooth(depth / 0.004), smooth((depth - 0.004) / 0.011));
        let outer = colours[i];
        colours[i] = std::array::from_fn(|c| {
            let l = outer[c] + (inner_lip[c] - outer[c]) * a;
            l + (dark[c] - l) * b
        });
    }
    Some(colours)
}

/// Connected component of each vertex (vertices at the same position are
/// one: glTF splits them along normal seams).
fn components(pos: &[Vec3], tris: &[[usize; 3]]) -> Vec<usize> {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..pos.len()).collect();
    let mut welded = std::collections::HashMap::new();
    for (i, p) in pos.iter().enumerate() {
        let key = (*p * 1e5).round().as_ivec3();
        let first = *welded.entry(key).or_insert(i);
        let (a, b) = (find(&mut parent, first), find(&mut parent, i));
        parent[a] = b;
    }
    for t in tris {
        for k in 0..2 {
            let (a, b) = (find(&mut parent, t[k]), find(&mut parent, t[k + 1]));
            parent[a] = b;
        }
    }
    (0..pos.len()).map(|i| find(&mut parent, i)).collect()
}

/// Distance along `dir` at which the ray from `origin` meets triangle `t`
/// (Möller–Trumbore), if it does.
fn ray_hit(origin: Vec3, dir: Vec3, t: &[Vec3; 3]) -> Option<f32> {
    let (e1, e2) = (t[1] - t[0], t[2] - t[0]);
    let h = dir.cross(e2);
    let det = e1.dot(h);
    if det.abs() < 1e-12 {
        return None;
    }
    let s = origin - t[0];
    let u = s.dot(h) / det;
    let q = s.cross(e1);
    let v = dir.dot(q) / det;
    if u < 0.0 || v < 0.0 || u + v > 1.0 {
        return None;
    }
    Some(e2.dot(q) / det)
}
