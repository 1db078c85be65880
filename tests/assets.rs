//! Assets and the plugin group: retarget maps and models through the
//! `AssetServer` (hot reload, corrupt files), the embedded model as an
//! asset, and `TalkingHeadPlugins` with parts left out.
#![cfg(feature = "kira")]

mod common;
use common::*;

/// Morph targets the head drives now.
fn bound(app: &App, head: Entity) -> usize {
    app.world()
        .get::<MorphBinding>(head)
        .unwrap()
        .bound_targets()
}

/// A retarget map loaded as a RON asset through the `AssetServer` binds the
/// head once loaded and drives the mapped morph target; changing the asset
/// (what Bevy's file watcher does on an edit) rebinds it live.
#[test]
fn retarget_map_asset_loads_from_ron_and_hot_reloads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rig.retarget.ron"),
        r#"(
            name: Some("test rig"),
            rules: [
                (target: "mouth_open", sources: [(source: "jawOpen", weight: 1.0)]),
                (target: "lips_shut", sources: [(source: "mouthClose"), (source: "mouthPressLeft", weight: 0.5)], combine: max),
            ],
        )"#,
    )
    .unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Loaded(model()));
    app.update();
    let server = app.world().resource::<AssetServer>().clone();
    let retarget = FaceRetarget::asset(&server, "rig.retarget.ron");
    let FaceRetarget::Asset(handle) = retarget.clone() else {
        unreachable!()
    };
    let stream = VoiceStream::with_delay(Duration::from_millis(150));
    let head = app
        .world_mut()
        .spawn((TalkingHead::default(), stream.clone(), retarget))
        .id();
    let face = spawn_face_mesh(&mut app, head, &["mouth_open", "lips_shut", "smile"]);
    // The file loads on the IO task pool: update until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app
        .world()
        .get::<MorphBinding>(head)
        .unwrap()
        .bound_targets()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "retarget asset never bound: {:?}",
            server.get_load_state(&handle)
        );
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = app.world().get::<MorphBinding>(head).unwrap();
    assert_eq!(b.bound_targets(), 2);
    let mut max_open = 0.0f32;
    stream_through(&mut app, &stream, &speech()[..16_000 * 2], 20, |app| {
        max_open = max_open.max(morph(app, face, 0));
    });
    assert!(max_open > 0.05, "mouth_open did not move: {max_open}");

    // Edit the map: a third rule drives `smile`; the head rebinds.
    {
        let mut assets = app.world_mut().resource_mut::<Assets<RetargetAsset>>();
        let map = &mut assets.get_mut(&handle).unwrap().0;
        map.rules.push(RetargetRule::new(
            "smile",
            vec![WeightedSource::new("mouthSmileLeft", 1.0)],
            Combine::Sum,
        ));
    }
    app.update();
    app.update();
    assert_eq!(bound(&app, head), 3);
}

/// A corrupt retarget asset fails to load with an error naming the file;
/// the head stays unbound (its face does not move) rather than panicking.
#[test]
fn a_corrupt_retarget_asset_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.retarget.ron"), "(rules: [(target: 3)]").unwrap();
    std::fs::write(dir.path().join("bad.retarget.json"), "{\"rules\": 7}").unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Loaded(model()));
    app.update();
    let server = app.world().resource::<AssetServer>().clone();
    for file in ["bad.retarget.ron", "bad.retarget.json"] {
        let handle: Handle<RetargetAsset> = server.load(file);
        let head = app
            .world_mut()
            .spawn((TalkingHead::default(), FaceRetarget::Asset(handle.clone())))
            .id();
        spawn_face_mesh(&mut app, head, &["mouth_open"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let err = loop {
            app.update();
            if let bevy::asset::LoadState::Failed(e) = server.load_state(&handle) {
                break e;
            }
            assert!(std::time::Instant::now() < deadline, "{file} never failed");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(err.to_string().contains(file), "{err}");
        assert_eq!(bound(&app, head), 0);
    }
}

/// `ModelSource::Asset`: the checkpoint loads through the `AssetServer`,
/// the face moves; replacing the asset (what the file watcher does on an
/// edit) swaps the worker's model without dropping the session when the
/// configuration is the same, and restarts the worker when it is not.
#[test]
fn model_asset_loads_and_hot_reloads_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/default.safetensors"),
        dir.path().join("voice.safetensors"),
    )
    .unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Asset("voice.safetensors".into()));
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    let mut max_jaw = 0f32;
    stream_through(&mut app, &stream, &speech()[..16_000 * 2], 0, |app| {
        max_jaw = max_jaw.max(morph(app, node, jaw));
    });
    assert!(
        max_jaw > 0.05,
        "no movement from the asset model: {max_jaw}"
    );
    let newest = |app: &App| {
        let s = app.world().get::<TalkingHeadState>(head).unwrap();
        s.frames().map(|f| f.index).max().unwrap()
    };
    let before = newest(&app);

    // Same configuration: the worker swaps weights, the session continues.
    let handle: Handle<TalkingHeadModelAsset> = app
        .world()
        .resource::<AssetServer>()
        .load("voice.safetensors");
    let cfg = app
        .world()
        .resource::<TalkingHeadRuntime>()
        .model()
        .unwrap()
        .config()
        .clone();
    let same = Arc::new(TalkingHeadModel::random(cfg.clone(), 11).unwrap());
    app.world_mut()
        .resource_mut::<Assets<TalkingHeadModelAsset>>()
        .insert(&handle, TalkingHeadModelAsset(same.clone()))
        .unwrap();
    stream_through(
        &mut app,
        &stream,
        &speech()[16_000 * 2..16_000 * 3],
        0,
        |_| {},
    );
    let rt = app.world().resource::<TalkingHeadRuntime>();
    assert!(Arc::ptr_eq(rt.model().unwrap(), &same));
    assert_eq!(rt.restarts(), 0);
    assert_eq!(rt.sessions(), 1);
    let s = app.world().get::<TalkingHeadState>(head).unwrap();
    assert!(s.has_session());
    assert_eq!(s.resets(), 0);
    // The stream's frame numbering continued (same session, same clock).
    assert!(
        newest(&app) >= before + 40,
        "{} -> {}",
        before,
        newest(&app)
    );

    // Another configuration: a fresh worker; the face animates again.
    let other = Arc::new(TalkingHeadModel::random(ModelConfig { n_layers: 1, ..cfg }, 12).unwrap());
    app.world_mut()
        .resource_mut::<Assets<TalkingHeadModelAsset>>()
        .insert(&handle, TalkingHeadModelAsset(other.clone()))
        .unwrap();
    stream_through(
        &mut app,
        &stream,
        &speech()[16_000 * 3..16_000 * 4],
        10,
        |_| {},
    );
    let rt = app.world().resource::<TalkingHeadRuntime>();
    assert!(Arc::ptr_eq(rt.model().unwrap(), &other));
    assert!(rt.is_ready());
    let s = app.world().get::<TalkingHeadState>(head).unwrap();
    assert!(s.has_session() && s.buffered_frames() > 0);
}

/// A corrupt model asset fails the runtime with an error naming the file
/// and a `ModelAssetFailed` message; faces rest.
#[test]
fn a_corrupt_model_asset_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.safetensors"), b"not a checkpoint").unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Asset("broken.safetensors".into()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let err = loop {
        app.update();
        if let RuntimeState::Failed(e) = app.world().resource::<TalkingHeadRuntime>().state() {
            break e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "never failed");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(err, TalkingHeadError::ModelAsset { .. }), "{err}");
    assert!(err.to_string().contains("broken.safetensors"), "{err}");
    assert!(
        !app.world()
            .resource::<Messages<ModelAssetFailed>>()
            .is_empty()
    );
}

/// A reload that fails (a broken edit of the model file) keeps the running
/// model: the runtime stays ready, faces keep speaking, and
/// `ModelAssetFailed` names the file.
#[test]
fn a_failed_reload_keeps_the_running_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voice.safetensors");
    model().save(&path).unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Asset("voice.safetensors".into()));
    wait_ready(&mut app);
    let loaded = app
        .world()
        .resource::<TalkingHeadRuntime>()
        .model()
        .unwrap()
        .clone();
    std::fs::write(&path, b"half-written checkpoint").unwrap();
    app.world()
        .resource::<AssetServer>()
        .reload("voice.safetensors");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app
        .world()
        .resource::<Messages<ModelAssetFailed>>()
        .is_empty()
    {
        app.update();
        assert!(
            std::time::Instant::now() < deadline,
            "the failed reload was not reported"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let rt = app.world().resource::<TalkingHeadRuntime>();
    assert!(rt.is_ready(), "{:?}", rt.state());
    assert!(Arc::ptr_eq(rt.model().unwrap(), &loaded));
    let (_, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let mut max_jaw = 0f32;
    stream_through(&mut app, &stream, &speech()[..16_000 * 2], 0, |app| {
        max_jaw = max_jaw.max(morph(app, node, Blendshape::JawOpen.index()));
    });
    assert!(
        max_jaw > 0.05,
        "faces stopped after a failed reload: {max_jaw}"
    );
}

/// The embedded default model is also an asset
/// (`embedded://bevy_talking_head/models/default.safetensors`): a game can
/// name it like any other model asset, with no file on disk.
#[cfg(feature = "embedded-model")]
#[test]
fn the_embedded_model_loads_as_an_asset() {
    use bevy_talking_head::plugin::EMBEDDED_MODEL_ASSET;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with_asset_root(dir.path(), ModelSource::Asset(EMBEDDED_MODEL_ASSET.into()));
    wait_ready(&mut app);
    let rt = app.world().resource::<TalkingHeadRuntime>();
    assert_eq!(
        rt.model().unwrap().config(),
        model().config(),
        "not the shipped model"
    );
}

/// `TalkingHeadPlugins` is a group: a game leaves parts out. Without the
/// kira, microphone and UI plugins the app has no kira audio resource, and
/// pushed voice still animates the face.
#[test]
fn the_plugin_group_lets_a_game_leave_sources_out() {
    use bevy_talking_head::plugin::{KiraVoicePlugin, MicrophonePlugin};
    use bevy_talking_head::runtime::WorkerConfig;
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Mesh>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(DT))
        .add_plugins(
            TalkingHeadPlugins
                .set(TalkingHeadPlugin {
                    model: ModelSource::Loaded(model()),
                    worker: WorkerConfig {
                        inline: true,
                        ..default()
                    },
                    voice_sources: false,
                    ..default()
                })
                .disable::<KiraVoicePlugin>()
                .disable::<MicrophonePlugin>()
                .disable::<TalkingHeadUiPlugin>(),
        );
    wait_ready(&mut app);
    assert!(!app.world().contains_resource::<TalkingHeadAudio>());
    let (_, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let mut max_jaw = 0f32;
    stream_through(&mut app, &stream, &speech()[..16_000 * 2], 20, |app| {
        max_jaw = max_jaw.max(morph(app, node, Blendshape::JawOpen.index()));
    });
    assert!(max_jaw > 0.05, "{max_jaw}");
}
