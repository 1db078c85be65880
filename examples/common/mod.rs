//! Scene pieces shared by the windowed examples.

use bevy::prelude::*;

/// The demo head shipped in `assets/`.
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
