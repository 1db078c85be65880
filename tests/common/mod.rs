//! Helpers shared by the plugin test binaries (`plugin.rs`, `soak.rs`):
//! an app on `MinimalPlugins` with manual time, the shipped model, the
//! sample speech, face meshes as the glTF loader spawns them.
#![allow(dead_code, unused_imports)] // each test binary uses a subset

pub use std::path::Path;
pub use std::sync::{Arc, OnceLock};
pub use std::time::Duration;

pub use bevy::asset::RenderAssetUsages;
pub use bevy::mesh::morph::{MeshMorphWeights, MorphWeights};
pub use bevy::mesh::{Mesh, Mesh3d, PrimitiveTopology};
pub use bevy::prelude::*;
pub use bevy::time::TimeUpdateStrategy;
pub use bevy_talking_head::audio::load_mono_16k;
pub use bevy_talking_head::model::{ModelConfig, TalkingHeadModel};
pub use bevy_talking_head::plugin::{
    ModelAssetFailed, RetargetAsset, RuntimeState, TalkingHeadError, TalkingHeadModelAsset,
};
pub use bevy_talking_head::prelude::*;
pub use bevy_talking_head::rig::{
    ARKIT_BLENDSHAPES, Combine, MOUTH_CHANNELS, RetargetMap, RetargetRule, WeightedSource,
};

pub const DT: Duration = Duration::from_millis(20);
pub const CHUNK: usize = 320; // 20 ms at 16 kHz

/// The shipped model when present (the plugin's real configuration),
/// otherwise a random model of the default size.
pub fn model() -> Arc<TalkingHeadModel> {
    static M: OnceLock<Arc<TalkingHeadModel>> = OnceLock::new();
    M.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/default.safetensors");
        let m = TalkingHeadModel::load(&p)
            .unwrap_or_else(|_| TalkingHeadModel::random(ModelConfig::default(), 7).unwrap());
        Arc::new(m)
    })
    .clone()
}

pub fn speech() -> &'static [f32] {
    static S: OnceLock<Vec<f32>> = OnceLock::new();
    S.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/audio/LJ001-0001.wav");
        load_mono_16k(&p).unwrap().0
    })
}

pub fn app_with(model: ModelSource) -> App {
    app_with_worker(model, true)
}

/// An app on the shipped (or random) model with the worker inline or on
/// its own thread.
pub fn app_with_worker(model: ModelSource, inline: bool) -> App {
    build_app(model, inline, AssetPlugin::default())
}

/// An app with the inline worker on `model`, whose assets are read from
/// `root`.
pub fn app_with_asset_root(root: &Path, model: ModelSource) -> App {
    let assets = AssetPlugin {
        file_path: root.to_string_lossy().into_owned(),
        ..default()
    };
    build_app(model, true, assets)
}

fn build_app(model: ModelSource, inline: bool, assets: AssetPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, assets))
        .init_asset::<Mesh>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(DT))
        .insert_resource(TalkingHeadAudio::virtual_clock())
        // The inline worker: frames are back in the update that delivered
        // their audio, so tests assert exact timing without sleeping.
        .add_plugins(TalkingHeadPlugin {
            model,
            worker: bevy_talking_head::runtime::WorkerConfig {
                inline,
                ..default()
            },
            ..default()
        });
    app
}

pub fn app() -> App {
    app_with(ModelSource::Loaded(model()))
}

/// Updates until the runtime is ready (or panics after a while).
pub fn wait_ready(app: &mut App) {
    for _ in 0..500 {
        app.update();
        if app.world().resource::<TalkingHeadRuntime>().is_ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "runtime not ready: {:?}",
        app.world().resource::<TalkingHeadRuntime>().state()
    );
}

/// A mesh node with the given morph target names, as the glTF loader
/// spawns it: a node with `MorphWeights`, and a primitive child pointing at
/// it. Returns the node.
pub fn spawn_face_mesh(app: &mut App, parent: Entity, names: &[&str]) -> Entity {
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    );
    mesh.set_morph_target_names(names.iter().map(|s| s.to_string()).collect());
    let handle = app.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
    let node = app
        .world_mut()
        .spawn((
            MorphWeights::new(vec![0.0; names.len()], Some(handle.clone())).unwrap(),
            ChildOf(parent),
        ))
        .id();
    app.world_mut().spawn((
        Mesh3d(handle),
        MeshMorphWeights::Reference(node),
        ChildOf(node),
    ));
    node
}

pub fn morph(app: &App, node: Entity, index: usize) -> f32 {
    app.world().get::<MorphWeights>(node).unwrap().weights()[index]
}

pub fn spawn_streaming_head(app: &mut App, names: &[&str]) -> (Entity, Entity, VoiceStream) {
    // Faces are sampled 300 ms behind the pushed audio, as behind a
    // listener's jitter buffer.
    let stream = VoiceStream::with_delay(Duration::from_millis(300));
    let head = app
        .world_mut()
        .spawn((TalkingHead::default(), stream.clone()))
        .id();
    let node = spawn_face_mesh(app, head, names);
    (head, node, stream)
}

/// Pushes `audio` in 20 ms chunks, one per update, then keeps updating
/// `tail` more frames; calls `each` after every update.
pub fn stream_through(
    app: &mut App,
    stream: &VoiceStream,
    audio: &[f32],
    tail: usize,
    mut each: impl FnMut(&mut App),
) {
    for chunk in audio.chunks(CHUNK) {
        stream.push(chunk, 16_000).unwrap();
        app.update();
        each(app);
    }
    for _ in 0..tail {
        app.update();
        each(app);
    }
}

/// `samples` (16 kHz mono, [-1, 1]) as the bytes of a 16-bit WAV file.
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    }
    cursor.into_inner()
}
