//! The Bevy plugin on `MinimalPlugins` with manual time: morph weights
//! follow pushed speech and rest on silence, missing-target reporting,
//! retarget maps, faces split over several meshes, many avatars batched,
//! recovery from a worker panic and from a dead worker, kira sync across
//! pause and seek, and a missing model.
#![cfg(feature = "kira")]

mod common;
use common::*;

#[test]
fn morph_weights_follow_speech_and_rest_on_silence() {
    let mut app = app();
    wait_ready(&mut app);
    let (_head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    app.update();
    let jaw = ARKIT_BLENDSHAPES
        .iter()
        .position(|n| *n == "jawOpen")
        .unwrap();
    assert_eq!(morph(&app, node, jaw), 0.0, "rest before any voice");

    let mut max_jaw = 0.0f32;
    let mut distinct = Vec::new();
    stream_through(&mut app, &stream, &speech()[..16_000 * 3], 20, |app| {
        let j = morph(app, node, jaw);
        max_jaw = max_jaw.max(j);
        distinct.push((j * 1000.0) as i32);
    });
    distinct.sort();
    distinct.dedup();
    assert!(max_jaw > 0.05, "jawOpen never opened: max {max_jaw}");
    assert!(distinct.len() > 10, "jawOpen barely changes: {distinct:?}");

    // Digital silence: every mouth channel returns to rest.
    stream_through(&mut app, &stream, &vec![0.0; 16_000 * 2], 20, |_| {});
    let w = app
        .world()
        .get::<MorphWeights>(node)
        .unwrap()
        .weights()
        .to_vec();
    for &k in &MOUTH_CHANNELS {
        assert!(
            w[k] < 0.02,
            "{} still at {} after silence",
            ARKIT_BLENDSHAPES[k],
            w[k]
        );
    }
}

#[test]
fn missing_targets_are_listed_and_the_rest_animates() {
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(
        &mut app,
        &["jawOpen", "mouthClose", "eyeBlinkLeft", "bodyFat"],
    );
    app.update();
    let binding = app.world().get::<MorphBinding>(head).unwrap();
    assert_eq!(binding.bound_targets(), 3);
    assert_eq!(binding.missing().len(), 49);
    assert!(binding.missing().iter().any(|m| m == "mouthFunnel"));
    assert!(!binding.missing().iter().any(|m| m == "jawOpen"));
    let mut max_jaw = 0.0f32;
    stream_through(&mut app, &stream, &speech()[..16_000 * 2], 20, |app| {
        max_jaw = max_jaw.max(morph(app, node, 0));
    });
    assert!(max_jaw > 0.05, "jawOpen did not animate: {max_jaw}");
    assert_eq!(
        morph(&app, node, 3),
        0.0,
        "an unbound target must be left alone"
    );
}

#[test]
fn retarget_map_drives_other_names_and_faces_split_over_meshes() {
    let mut app = app();
    wait_ready(&mut app);
    let map = RetargetMap {
        name: Some("test visemes".into()),
        notes: None,
        rules: vec![
            RetargetRule::new(
                "viseme_aa",
                vec![WeightedSource::new("jawOpen", 1.0)],
                Combine::Sum,
            ),
            RetargetRule::new(
                "viseme_PP",
                vec![
                    WeightedSource::new("mouthClose", 1.0),
                    WeightedSource::new("mouthPressLeft", 0.5),
                ],
                Combine::Max,
            ),
            RetargetRule::new(
                "blink_L",
                vec![WeightedSource::new("eyeBlinkLeft", 1.0)],
                Combine::Sum,
            ),
            RetargetRule::new(
                "not_on_any_mesh",
                vec![WeightedSource::new("jawOpen", 1.0)],
                Combine::Sum,
            ),
        ],
    };
    let stream = VoiceStream::with_delay(Duration::from_millis(150));
    let head = app
        .world_mut()
        .spawn((
            TalkingHead::default(),
            stream.clone(),
            FaceRetarget::Map(map),
        ))
        .id();
    let face = spawn_face_mesh(&mut app, head, &["viseme_PP", "viseme_aa"]);
    // Teeth and eyes as separate meshes, deeper in the hierarchy.
    let group = app.world_mut().spawn(ChildOf(head)).id();
    let teeth = spawn_face_mesh(&mut app, group, &["viseme_aa"]);
    let eyes = spawn_face_mesh(&mut app, group, &["blink_L"]);
    app.update();
    let b = app.world().get::<MorphBinding>(head).unwrap();
    let mut bound: Vec<Entity> = b.mesh_entities().collect();
    bound.sort();
    let mut want = vec![face, teeth, eyes];
    want.sort();
    assert_eq!(bound, want);
    assert_eq!(b.missing(), ["not_on_any_mesh".to_string()]);

    let (mut max_face, mut max_teeth, mut max_blink) = (0.0f32, 0.0f32, 0.0f32);
    stream_through(&mut app, &stream, &speech()[..16_000 * 3], 400, |app| {
        max_face = max_face.max(morph(app, face, 1));
        max_teeth = max_teeth.max(morph(app, teeth, 0));
        max_blink = max_blink.max(morph(app, eyes, 0));
    });
    assert!(
        max_face > 0.05 && max_teeth > 0.05,
        "{max_face} {max_teeth}"
    );
    // The blink layer runs at ~14 blinks/min: over 11 s some blink shows.
    assert!(max_blink > 0.3, "no blink in 11 s: {max_blink}");
}

#[test]
fn game_code_and_sensors_edit_the_face() {
    let mut app = app();
    app.add_systems(Update, |mut faces: Query<&mut FaceExpression>| {
        for mut f in &mut faces {
            f.set(Blendshape::EyeBlinkRight, 1.0); // a wink
        }
    });
    wait_ready(&mut app);
    let (head, node, _stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let mut sensors = SensorOverrides::default();
    sensors.set(Blendshape::EyeLookUpLeft, 0.8, 1.0);
    sensors.set(Blendshape::BrowInnerUp, 1.0, 0.5);
    app.world_mut().entity_mut(head).insert((
        sensors,
        TalkingHead {
            upper_face: false,
            ..default()
        },
    ));
    app.update();
    app.update();
    assert_eq!(morph(&app, node, Blendshape::EyeBlinkRight.index()), 1.0);
    assert!((morph(&app, node, Blendshape::EyeLookUpLeft.index()) - 0.8).abs() < 1e-6);
    assert!((morph(&app, node, Blendshape::BrowInnerUp.index()) - 0.5).abs() < 1e-6);
}

#[test]
fn eight_avatars_are_batched() {
    let mut app = app();
    wait_ready(&mut app);
    let heads: Vec<(Entity, Entity, VoiceStream)> = (0..8)
        .map(|_| spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES))
        .collect();
    let audio = &speech()[..16_000 * 3];
    let mut max_batch = 0;
    let mut max_jaw = [0.0f32; 8];
    let jaw = Blendshape::JawOpen.index();
    for (i, chunk) in audio.chunks(CHUNK).enumerate() {
        for (k, (_, _, s)) in heads.iter().enumerate() {
            // Each avatar hears the clip from a different offset.
            let off = (k * 4000 + i * CHUNK) % (audio.len() - CHUNK);
            let _ = chunk;
            s.push(&audio[off..off + CHUNK], 16_000).unwrap();
        }
        app.update();
        max_batch = max_batch.max(
            app.world()
                .resource::<TalkingHeadRuntime>()
                .stats()
                .last_batch,
        );
        for (k, (_, node, _)) in heads.iter().enumerate() {
            max_jaw[k] = max_jaw[k].max(morph(&app, *node, jaw));
        }
    }
    for _ in 0..30 {
        app.update();
    }
    assert_eq!(app.world().resource::<TalkingHeadRuntime>().sessions(), 8);
    assert!(
        max_batch > 1,
        "sessions were never stepped together (max batch {max_batch})"
    );
    for (k, j) in max_jaw.iter().enumerate() {
        assert!(*j > 0.05, "avatar {k} never moved: {j}");
    }
}

#[test]
#[cfg(feature = "test-hooks")]
fn recovers_from_a_worker_panic_and_a_dead_worker() {
    // Inline (exact) and on the worker thread (the real restart path).
    recover_from_faults(true);
    recover_from_faults(false);
}

#[cfg(feature = "test-hooks")]
fn recover_from_faults(inline: bool) {
    let mut app = app_with_worker(ModelSource::Loaded(model()), inline);
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let audio = speech();
    // A worker thread needs wall time to keep up with the updates.
    let pace = move || {
        if !inline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    stream_through(&mut app, &stream, &audio[..16_000], 0, |_| pace());
    assert!(
        app.world()
            .resource::<TalkingHeadRuntime>()
            .inject_panic(head)
    );
    stream_through(&mut app, &stream, &audio[16_000..32_000], 10, |_| pace());
    if inline {
        // The step after the injection panicked, in this very run.
        let s = app.world().get::<TalkingHeadState>(head).unwrap();
        assert_eq!(s.resets(), 1, "inline: exactly one reset");
    }
    // The worker may be behind on a loaded machine: wait for its report.
    let resets = |app: &App| app.world().get::<TalkingHeadState>(head).unwrap().resets();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while resets(&app) == 0 && std::time::Instant::now() < deadline {
        app.update();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(resets(&app) >= 1, "the panic was not reported");

    // Kill the worker thread: the plugin restarts it and the face moves again.
    app.world().resource::<TalkingHeadRuntime>().kill_worker();
    std::thread::sleep(Duration::from_millis(50));
    let mut max_jaw = 0.0f32;
    stream_through(&mut app, &stream, &audio[32_000..80_000], 20, |app| {
        max_jaw = max_jaw.max(morph(app, node, Blendshape::JawOpen.index()));
        pace();
    });
    let rt = app.world().resource::<TalkingHeadRuntime>();
    assert_eq!(rt.restarts(), 1);
    assert!(rt.is_ready());
    assert!(
        max_jaw > 0.05,
        "face did not move after the restart: {max_jaw}"
    );
}

/// Runs `frames` updates (giving the worker time) and returns the largest
/// value morph target `index` of `node` took.
fn max_over_frames(app: &mut App, frames: usize, node: Entity, index: usize) -> f32 {
    let mut max = 0.0f32;
    for _ in 0..frames {
        app.update();
        max = max.max(morph(app, node, index));
    }
    max
}

#[test]
fn kira_clip_stays_in_sync_across_pause_and_seek() {
    use kira::sound::static_sound::StaticSoundData;
    let mut app = app();
    wait_ready(&mut app);
    let data = StaticSoundData::from_cursor(std::io::Cursor::new(wav_bytes(speech()))).unwrap();
    let voice = {
        let audio = app.world().resource::<TalkingHeadAudio>();
        assert!(audio.is_virtual());
        KiraVoice::play(audio, data).unwrap()
    };
    let head = app.world_mut().spawn((TalkingHead::default(), voice)).id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    let max_jaw = max_over_frames(&mut app, 100, node, jaw);
    let pos = app.world().get::<KiraVoice>(head).unwrap().position();
    assert!(
        (pos - 2.0).abs() < 0.15,
        "virtual clock at {pos} s after 2 s"
    );
    let state = app.world().get::<TalkingHeadState>(head).unwrap();
    let playhead = state.playhead_secs().unwrap();
    assert!(
        (playhead - pos).abs() < 0.01,
        "playhead {playhead} vs kira {pos}"
    );
    assert!(max_jaw > 0.05, "{max_jaw}");

    // Pause: playback stops, the face eases to rest.
    app.world_mut().get_mut::<KiraVoice>(head).unwrap().pause();
    for _ in 0..30 {
        app.update();
    }
    let state = app.world().get::<TalkingHeadState>(head).unwrap();
    assert!(state.playhead_secs().is_none());
    assert!(morph(&app, node, jaw) < 0.02);
    let paused_at = app.world().get::<KiraVoice>(head).unwrap().position();

    // Seek forward and resume: the session restarts at the new position.
    {
        let mut v = app.world_mut().get_mut::<KiraVoice>(head).unwrap();
        v.seek_to(5.0);
        v.resume();
    }
    let max_jaw = max_over_frames(&mut app, 60, node, jaw);
    let pos = app.world().get::<KiraVoice>(head).unwrap().position();
    assert!(
        paused_at < 2.5 && pos > 5.5 && pos < 6.5,
        "paused {paused_at}, now {pos}"
    );
    let state = app.world().get::<TalkingHeadState>(head).unwrap();
    // The session's audio starts at the seek target.
    let (playhead, sent) = (state.playhead_secs().unwrap(), state.sent_secs());
    assert!(
        playhead < 1.5 && sent > playhead,
        "playhead {playhead} s, sent {sent} s"
    );
    assert!(max_jaw > 0.05, "no movement after the seek: {max_jaw}");
}

/// A new `KiraVoice` on a head whose previous clip played to its end
/// starts a new session: the second line moves the face too (it used to be
/// pushed into the first clip's finished session and refused).
#[test]
fn a_second_kira_clip_on_the_same_head_speaks() {
    use kira::sound::static_sound::StaticSoundData;
    let mut app = app();
    wait_ready(&mut app);
    let clip =
        |a: &[f32]| StaticSoundData::from_cursor(std::io::Cursor::new(wav_bytes(a))).unwrap();
    let voice = {
        let audio = app.world().resource::<TalkingHeadAudio>();
        KiraVoice::play(audio, clip(&speech()[..32_000])).unwrap()
    };
    let head = app.world_mut().spawn((TalkingHead::default(), voice)).id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    assert!(max_over_frames(&mut app, 100, node, jaw) > 0.05);
    let _ = max_over_frames(&mut app, 50, node, jaw); // the clip has ended
    let voice = {
        let audio = app.world().resource::<TalkingHeadAudio>();
        KiraVoice::play(audio, clip(&speech()[32_000..80_000])).unwrap()
    };
    app.world_mut().entity_mut(head).insert(voice);
    let max_jaw = max_over_frames(&mut app, 100, node, jaw);
    assert!(
        max_jaw > 0.05,
        "the second clip did not move the face: {max_jaw}"
    );
    let sent = app
        .world()
        .get::<TalkingHeadState>(head)
        .unwrap()
        .sent_secs();
    assert!(
        sent < 3.01,
        "the second clip went into the first clip's session: {sent} s sent"
    );
}

/// The kira manager the plugin inserts opens no output stream until a clip
/// is played: an app (or a server) that never uses `KiraVoice` holds no
/// audio device.
#[test]
fn the_kira_manager_opens_no_device_until_a_clip_plays() {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Mesh>()
        .add_plugins(TalkingHeadPlugin {
            model: ModelSource::Loaded(model()),
            ..default()
        });
    app.update();
    let audio = app.world().resource::<TalkingHeadAudio>();
    assert!(!audio.is_open() && !audio.is_virtual());
    assert!(TalkingHeadAudio::virtual_clock().is_open());
}

#[test]
fn a_missing_model_fails_cleanly_and_faces_rest() {
    let mut app = app_with(ModelSource::Path("/nonexistent/model.safetensors".into()));
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    stream_through(&mut app, &stream, &speech()[..8000], 20, |_| {});
    let rt = app.world().resource::<TalkingHeadRuntime>();
    match rt.state() {
        RuntimeState::Failed(e) => {
            assert!(matches!(e, TalkingHeadError::ModelMissing(_)), "{e}");
            assert!(e.to_string().contains("no model file"), "{e}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        !app.world()
            .get::<TalkingHeadState>(head)
            .unwrap()
            .has_session()
    );
    assert_eq!(morph(&app, node, Blendshape::JawOpen.index()), 0.0);
}

#[test]
fn bad_voice_input_is_refused_or_sanitised() {
    let stream = VoiceStream::new();
    assert!(stream.push(&[0.0; 10], 4_000).is_err());
    assert!(stream.push_interleaved(&[0.0; 3], 16_000, 2).is_err());
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let mut bad = speech()[..16_000].to_vec();
    for s in bad.iter_mut().step_by(7) {
        *s = f32::NAN;
    }
    stream_through(&mut app, &stream, &bad, 30, |_| {});
    let state = app.world().get::<TalkingHeadState>(head).unwrap();
    assert!(state.nonfinite_samples() > 0);
    for w in app.world().get::<MorphWeights>(node).unwrap().weights() {
        assert!(w.is_finite() && (0.0..=1.0).contains(w));
    }
}

#[test]
fn a_stalled_stream_or_a_removed_voice_lets_the_face_rest() {
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    // Speech cut off mid-stream, then nothing: the face must not freeze open.
    let mut max_jaw = 0.0f32;
    stream_through(&mut app, &stream, &speech()[..24_000], 0, |app| {
        max_jaw = max_jaw.max(morph(app, node, jaw));
    });
    assert!(max_jaw > 0.05, "{max_jaw}");
    let _ = max_over_frames(&mut app, 75, node, jaw); // 1.5 s without audio
    assert!(
        morph(&app, node, jaw) < 0.02,
        "stalled stream left jawOpen at {}",
        morph(&app, node, jaw)
    );

    // Voice back, then the game removes the voice component.
    stream_through(&mut app, &stream, &speech()[24_000..48_000], 0, |_| {});
    app.world_mut().entity_mut(head).remove::<VoiceStream>();
    let _ = max_over_frames(&mut app, 40, node, jaw);
    assert!(
        morph(&app, node, jaw) < 0.02,
        "removed voice left jawOpen at {}",
        morph(&app, node, jaw)
    );
}

/// A happy head keeps smiling when nothing is said: through a pause of
/// digital silence in its voice (the model's silence gate keeps the
/// emotion's rest face), after its voice stops (the plugin's rest face), and
/// before any voice at all; back at neutral the smile goes.
#[test]
fn an_emotion_shows_while_silent_and_with_no_voice() {
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let smile = Blendshape::MouthSmileLeft.index();
    let jaw = Blendshape::JawOpen.index();
    let happy = bevy_talking_head::model::EMOTIONS
        .iter()
        .position(|e| *e == "happy")
        .unwrap();
    app.world_mut()
        .get_mut::<TalkingHead>(head)
        .unwrap()
        .emotion
        .weights[happy] = 1.0;
    // No voice pushed yet: the rest face is already the smile.
    let _ = max_over_frames(&mut app, 30, node, jaw);
    assert!(
        morph(&app, node, smile) > 0.4,
        "idle: {}",
        morph(&app, node, smile)
    );
    assert!(morph(&app, node, jaw) < 0.02);
    // Speech, 1.2 s of digital silence, speech: the smile holds in the gap.
    let mut audio = speech()[..24_000].to_vec();
    audio.extend(std::iter::repeat_n(0.0f32, 19_200));
    audio.extend_from_slice(&speech()[24_000..40_000]);
    let mut trace = Vec::new();
    stream_through(&mut app, &stream, &audio, 0, |app| {
        trace.push((morph(app, node, smile), morph(app, node, jaw)));
    });
    // Pushed updates 75..135 are silence; with the 300 ms delay (15
    // updates) and the look-ahead, 95..145 show it.
    let gap = &trace[95..145];
    let min_smile = gap.iter().map(|t| t.0).fold(1.0f32, f32::min);
    let max_jaw = gap.iter().map(|t| t.1).fold(0.0f32, f32::max);
    assert!(min_smile > 0.4, "smile fell to {min_smile:.3} in the pause");
    assert!(max_jaw < 0.05, "jaw {max_jaw:.3} in the pause");
    // The voice stops: the face eases to the rest face, still smiling.
    let _ = max_over_frames(&mut app, 75, node, jaw);
    assert!(
        morph(&app, node, smile) > 0.4,
        "stopped: {}",
        morph(&app, node, smile)
    );
    assert!(morph(&app, node, jaw) < 0.02);
    // Neutral again: no smile.
    app.world_mut()
        .get_mut::<TalkingHead>(head)
        .unwrap()
        .emotion
        .weights[happy] = 0.0;
    let _ = max_over_frames(&mut app, 30, node, jaw);
    assert!(
        morph(&app, node, smile) < 0.02,
        "neutral: {}",
        morph(&app, node, smile)
    );
}

/// Removing `TalkingHead` (the entity stays) frees its worker session;
/// inserting it again opens a new one and the face speaks.
#[test]
fn removing_talking_head_frees_its_session() {
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    stream_through(&mut app, &stream, &speech()[..16_000], 0, |_| {});
    assert_eq!(app.world().resource::<TalkingHeadRuntime>().sessions(), 1);
    app.world_mut().entity_mut(head).remove::<TalkingHead>();
    app.update();
    app.update();
    assert_eq!(app.world().resource::<TalkingHeadRuntime>().sessions(), 0);
    app.world_mut()
        .entity_mut(head)
        .insert(TalkingHead::default());
    let mut max_jaw = 0f32;
    stream_through(&mut app, &stream, &speech()[16_000..48_000], 20, |app| {
        max_jaw = max_jaw.max(morph(app, node, jaw));
    });
    assert_eq!(app.world().resource::<TalkingHeadRuntime>().sessions(), 1);
    assert!(
        max_jaw > 0.05,
        "no speech after re-inserting TalkingHead: {max_jaw}"
    );
}

/// The sub-plugins build once however they are added: the group configured
/// with a default `TalkingHeadPlugin` (which adds them too), or the core
/// plugin next to a source plugin added by hand. Bevy used to panic with
/// "duplicate plugin".
#[test]
fn sub_plugins_added_twice_do_not_panic() {
    use bevy::app::PluginGroup;
    use bevy::prelude::*;
    for by_group in [true, false] {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()))
            .init_asset::<Mesh>()
            .insert_resource(bevy::time::TimeUpdateStrategy::ManualDuration(
                std::time::Duration::from_millis(20),
            ))
            .insert_resource(bevy_talking_head::plugin::TalkingHeadAudio::virtual_clock());
        let core = TalkingHeadPlugin {
            model: ModelSource::Loaded(model()),
            worker: bevy_talking_head::runtime::WorkerConfig {
                inline: true,
                ..default()
            },
            ..default()
        };
        if by_group {
            let group = TalkingHeadPlugins.set(core);
            #[cfg(feature = "egui")]
            let group = group.disable::<bevy_talking_head::ui::TalkingHeadUiPlugin>();
            app.add_plugins(group);
        } else {
            app.add_plugins((core, bevy_talking_head::plugin::VoiceStreamPlugin));
        }
        wait_ready(&mut app);
        let (_, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
        let mut max_jaw = 0f32;
        stream_through(&mut app, &stream, &speech()[..32_000], 20, |app| {
            max_jaw = max_jaw.max(morph(app, node, Blendshape::JawOpen.index()));
        });
        assert!(max_jaw > 0.05, "group {by_group}: {max_jaw}");
    }
}

/// Heads left at the default seed blink independently (the seed is derived
/// from the entity); an explicit seed is honoured exactly.
#[test]
fn default_seeds_differ_per_head_and_explicit_seeds_repeat() {
    let mut app = app();
    wait_ready(&mut app);
    let blink = Blendshape::EyeBlinkLeft.index();
    let mut nodes = Vec::new();
    for seed in [0u64, 0, 7, 7] {
        let head = app
            .world_mut()
            .spawn(TalkingHead::default().with_seed(seed))
            .id();
        nodes.push(spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES));
    }
    let mut traces = vec![Vec::new(); nodes.len()];
    for _ in 0..750 {
        app.update();
        for (t, n) in traces.iter_mut().zip(&nodes) {
            t.push(morph(&app, *n, blink));
        }
    }
    assert!(traces[0].iter().any(|&v| v > 0.5), "no blink in 15 s");
    assert_ne!(
        traces[0], traces[1],
        "two default-seed heads blink in lockstep"
    );
    assert_eq!(traces[2], traces[3], "the same explicit seed differs");
}

/// An avatar that appears (its morph-target meshes added) rebinds its own
/// head only, not every head already bound.
#[test]
fn a_new_avatar_rebinds_only_its_own_head() {
    let mut app = app();
    wait_ready(&mut app);
    let (a, _, _) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    let (b, _, _) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    for _ in 0..3 {
        app.update();
    }
    let resolved = |app: &App, e: Entity| app.world().get::<MorphBinding>(e).unwrap().resolutions();
    let (ra, rb) = (resolved(&app, a), resolved(&app, b));
    assert!(ra >= 1 && rb >= 1);
    let (c, node, _) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    for _ in 0..3 {
        app.update();
    }
    assert_eq!(
        (resolved(&app, a), resolved(&app, b)),
        (ra, rb),
        "bound heads were rebound"
    );
    assert!(resolved(&app, c) >= 1);
    let bound: Vec<Entity> = app
        .world()
        .get::<MorphBinding>(c)
        .unwrap()
        .mesh_entities()
        .collect();
    assert_eq!(bound, vec![node]);
}

/// Emotion through the path the egui panel uses (`TalkingHead::emotion`
/// weights, neutral left at 1): mid-utterance, happy = 1 makes the smile rise
/// within 300 ms of audio time (the face runs `VoiceStream`'s 300 ms delay
/// behind the pushed audio, so that is 600 ms of app time), with no
/// frame-to-frame jump above 0.15 on any channel. The blink / gaze layer is
/// off for this head: its saccades are meant to be jumps and do not depend
/// on the emotion.
#[test]
fn happy_from_the_panel_path_smiles_within_300_ms_without_a_pop() {
    let mut app = app();
    wait_ready(&mut app);
    let (head, node, stream) = spawn_streaming_head(&mut app, &ARKIT_BLENDSHAPES);
    app.world_mut()
        .get_mut::<TalkingHead>(head)
        .unwrap()
        .upper_face = false;
    app.update();
    let smile = ARKIT_BLENDSHAPES
        .iter()
        .position(|n| *n == "mouthSmileLeft")
        .unwrap();
    let audio = &speech()[..16_000 * 4];
    let switch = 100; // updates (2 s)
    let mut frames: Vec<Vec<f32>> = Vec::new();
    for (i, chunk) in audio.chunks(CHUNK).enumerate() {
        if i == switch {
            let mut h = app.world_mut().get_mut::<TalkingHead>(head).unwrap();
            let k = bevy_talking_head::model::EMOTIONS
                .iter()
                .position(|e| *e == "happy")
                .unwrap();
            h.emotion.weights[k] = 1.0;
        }
        stream.push(chunk, 16_000).unwrap();
        app.update();
        frames.push(
            app.world()
                .get::<MorphWeights>(node)
                .unwrap()
                .weights()
                .to_vec(),
        );
    }
    let before: f32 = frames[switch - 40..switch]
        .iter()
        .map(|w| w[smile])
        .sum::<f32>()
        / 40.0;
    // 300 ms delay + 300 ms of audio = 30 updates after the switch.
    let after = frames[switch + 30][smile];
    assert!(
        after > before + 0.1,
        "mouthSmileLeft {before:.3} before, {after:.3} 300 ms of audio after happy = 1"
    );
    let mut worst = (0f32, 0usize, 0usize);
    for (i, p) in frames[switch - 5..].windows(2).enumerate() {
        for (c, (a, b)) in p[0].iter().zip(&p[1]).enumerate() {
            if (a - b).abs() > worst.0 {
                worst = ((a - b).abs(), c, i);
            }
        }
    }
    assert!(
        worst.0 <= 0.15,
        "a frame-to-frame jump of {:.3} on {} at update {} after the switch",
        worst.0,
        ARKIT_BLENDSHAPES[worst.1],
        worst.2 as i64 - 5
    );
}

/// A microphone test double: opens with a format unless "unplugged", feeds
/// what the test sends, and fails on command (like cpal's error callback).
#[cfg(feature = "mic")]
mod fake_mic {
    use std::sync::{Arc, Mutex};

    use bevy_talking_head::audio::AudioFormat;
    use bevy_talking_head::plugin::{MicrophoneBackend, MicrophoneRequest};

    pub enum Cmd {
        Samples(Vec<f32>),
        Fail,
    }

    #[derive(Default)]
    pub struct State {
        pub plugged: bool,
        pub opens: u32,
        pub tx: Option<crossbeam_channel::Sender<Cmd>>,
    }

    #[derive(Clone, Default)]
    pub struct FakeMic(pub Arc<Mutex<State>>);

    impl MicrophoneBackend for FakeMic {
        fn capture(&self, request: MicrophoneRequest) {
            let rx = {
                let mut s = self.0.lock().unwrap();
                if !s.plugged {
                    drop(s);
                    request.failed("no default input device");
                    return;
                }
                s.opens += 1;
                let (tx, rx) = crossbeam_channel::unbounded();
                s.tx = Some(tx);
                rx
            };
            let Some(mut sink) = request.opened(AudioFormat {
                sample_rate: 16_000,
                channels: 1,
            }) else {
                return;
            };
            loop {
                if request.stop.try_recv().is_ok() {
                    return;
                }
                match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                    Ok(Cmd::Samples(v)) => sink.push_f32(&v),
                    Ok(Cmd::Fail) => {
                        sink.fault();
                        // A dead device: wait to be stopped.
                        let _ = request.stop.recv();
                        return;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

/// A microphone that errors mid-stream: the head warns (the capture
/// reports the error), rests, and reconnects when a device returns.
#[cfg(feature = "mic")]
#[test]
fn a_failing_microphone_rests_the_face_and_reconnects() {
    use bevy_talking_head::plugin::{MicrophoneBackendResource, MicrophoneCapture};
    let fake = fake_mic::FakeMic::default();
    fake.0.lock().unwrap().plugged = true;
    let mut app = app();
    app.insert_resource(MicrophoneBackendResource(Arc::new(fake.clone())));
    wait_ready(&mut app);
    let head = app
        .world_mut()
        .spawn((TalkingHead::default(), MicrophoneVoice::default()))
        .id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    let open = |app: &App| {
        app.world()
            .get::<MicrophoneCapture>(head)
            .is_some_and(|c| c.is_open())
    };
    let speak = |app: &mut App, secs: f64| -> f32 {
        let mut max_jaw = 0f32;
        let n = (secs / 0.02) as usize;
        for i in 0..n {
            if let Some(tx) = &fake.0.lock().unwrap().tx {
                let off = (i * CHUNK) % (speech().len() - CHUNK);
                let _ = tx.send(fake_mic::Cmd::Samples(speech()[off..off + CHUNK].to_vec()));
            }
            app.update();
            std::thread::sleep(Duration::from_millis(20));
            max_jaw = max_jaw.max(morph(app, node, jaw));
        }
        max_jaw
    };
    let _ = speak(&mut app, 0.2);
    assert!(open(&app), "the fake microphone did not open");
    assert!(speak(&mut app, 2.0) > 0.05, "no face from the microphone");
    // The device fails and stays unplugged.
    {
        let mut s = fake.0.lock().unwrap();
        s.plugged = false;
        let _ = s.tx.take().unwrap().send(fake_mic::Cmd::Fail);
    }
    let _ = speak(&mut app, 1.0);
    let cap = app.world().get::<MicrophoneCapture>(head).unwrap();
    assert_eq!(cap.faults(), 1);
    assert!(!cap.is_open());
    assert!(cap.error().is_some());
    assert!(morph(&app, node, jaw) < 0.02, "the face did not rest");
    // The device returns: the plugin reopens it and the face moves again.
    fake.0.lock().unwrap().plugged = true;
    let mut moved = 0f32;
    for _ in 0..10 {
        moved = moved.max(speak(&mut app, 1.0));
        if open(&app) && moved > 0.05 {
            break;
        }
    }
    assert!(open(&app), "the microphone was not reopened");
    assert!(moved > 0.05, "no face after reconnecting");
    assert!(fake.0.lock().unwrap().opens >= 2);
    // Removing the voice (mute) stops the capture: the device thread ends
    // and its channel closes.
    let opens = fake.0.lock().unwrap().opens;
    app.world_mut().entity_mut(head).remove::<MicrophoneVoice>();
    let _ = speak(&mut app, 0.2);
    assert!(app.world().get::<MicrophoneCapture>(head).is_none());
    let tx = fake.0.lock().unwrap().tx.clone().unwrap();
    assert!(
        tx.send(fake_mic::Cmd::Samples(vec![0.0; CHUNK])).is_err(),
        "the capture thread still runs after MicrophoneVoice was removed"
    );
    // Back, on another device: a new capture opens.
    app.world_mut()
        .entity_mut(head)
        .insert(MicrophoneVoice::named("another"));
    let moved = speak(&mut app, 1.5);
    assert!(open(&app));
    assert_eq!(fake.0.lock().unwrap().opens, opens + 1);
    assert!(
        moved > 0.05,
        "no face from the re-inserted microphone: {moved}"
    );
    // Changing the device of a live voice reopens it, and the face follows
    // the new capture at once.
    app.world_mut()
        .get_mut::<MicrophoneVoice>(head)
        .unwrap()
        .device = Some("a third".into());
    let moved = speak(&mut app, 1.5);
    assert!(open(&app));
    assert_eq!(fake.0.lock().unwrap().opens, opens + 2);
    assert!(moved > 0.05, "no face after the device change: {moved}");
}

/// The sound device is lost mid-clip (the seam `TalkingHeadAudio::device_lost`,
/// which `poll_device` takes when cpal reports `DeviceNotAvailable` and no
/// output is left): the clip continues on the virtual clock from where it
/// was, and the face keeps following it.
#[test]
fn kira_device_loss_falls_back_to_the_virtual_clock() {
    use kira::sound::static_sound::StaticSoundData;
    let mut app = app();
    wait_ready(&mut app);
    let data = StaticSoundData::from_cursor(std::io::Cursor::new(wav_bytes(speech()))).unwrap();
    let voice = {
        let audio = app.world().resource::<TalkingHeadAudio>();
        KiraVoice::play(audio, data).unwrap()
    };
    let head = app.world_mut().spawn((TalkingHead::default(), voice)).id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    let _ = max_over_frames(&mut app, 75, node, jaw);
    let before = app.world().get::<KiraVoice>(head).unwrap().position();
    let generation = app.world().resource::<TalkingHeadAudio>().generation();
    app.world()
        .resource::<TalkingHeadAudio>()
        .device_lost("test: device unplugged");
    let max_jaw = max_over_frames(&mut app, 75, node, jaw);
    let audio = app.world().resource::<TalkingHeadAudio>();
    assert!(audio.is_virtual());
    assert_eq!(audio.generation(), generation + 1);
    let after = app.world().get::<KiraVoice>(head).unwrap().position();
    assert!(
        after > before + 1.2 && after < before + 1.8,
        "clip at {before} s before the loss, {after} s 1.5 s later"
    );
    let state = app.world().get::<TalkingHeadState>(head).unwrap();
    assert!((state.playhead_secs().unwrap() - after).abs() < 0.05);
    assert!(max_jaw > 0.05, "the face stopped after the loss: {max_jaw}");
}

/// With the inline worker (`WorkerConfig::inline`) the plugin is exact and
/// needs no sleeping: every 20 ms chunk pushed in an update has its frames
/// back in the same update, and they are bit-identical to a `Session`
/// stepped directly on the same audio with the same seed.
#[test]
fn inline_worker_frames_are_immediate_and_exact() {
    use bevy_talking_head::audio::AudioFormat;
    use bevy_talking_head::runtime::{Pcm, Session, StepBuffers, WorkerConfig, step_sessions};
    use std::collections::BTreeMap;

    let model = model();
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Mesh>()
        .insert_resource(TimeUpdateStrategy::ManualDuration(DT))
        .insert_resource(TalkingHeadAudio::virtual_clock())
        .add_plugins(TalkingHeadPlugin {
            model: ModelSource::Loaded(model.clone()),
            worker: WorkerConfig {
                inline: true,
                ..default()
            },
            ..default()
        });
    app.update();
    assert!(app.world().resource::<TalkingHeadRuntime>().is_ready());
    let stream = VoiceStream::new();
    let head = app
        .world_mut()
        .spawn((TalkingHead::default().with_seed(5), stream.clone()))
        .id();

    // The same audio through a session of our own, seeded as the plugin
    // seeds its first session (`TalkingHead::seed` 5, session id 1).
    let seed = 5 ^ 0x9E37_79B9_7F4A_7C15u64;
    let mut direct = Session::new(&model, AudioFormat::MODEL, seed).unwrap();
    let mut buffers = StepBuffers::default();
    let mut want = Vec::new();
    let sampler = model.default_sampler();
    let lookahead = model.config().lookahead_frames as u64;

    let mut got = BTreeMap::new();
    let chunks: Vec<&[f32]> = speech().chunks(CHUNK).take(100).collect();
    for (k, chunk) in chunks.iter().enumerate() {
        stream.push(chunk, 16_000).unwrap();
        app.update();
        let state = app.world().get::<TalkingHeadState>(head).unwrap();
        for f in state.frames() {
            got.insert(f.index, f.weights);
        }
        direct.push(Pcm::F32(chunk)).unwrap();
        while direct.pending_frames() > 0 {
            let mut out = Vec::new();
            step_sessions(
                &model,
                std::slice::from_mut(&mut direct),
                sampler,
                &mut buffers,
                &mut out,
            )
            .unwrap();
            want.extend(out.into_iter().map(|(_, f)| f));
        }
        // Frames arrive in the update that delivered their audio.
        let newest = got.keys().next_back().copied();
        let expect = (k as u64 + 1).checked_sub(lookahead + 1);
        assert_eq!(newest, expect, "after chunk {k}");
    }
    assert_eq!(want.len(), got.len());
    for f in &want {
        assert_eq!(got.get(&f.index), Some(&f.weights), "frame {}", f.index);
    }
}
