//! The `bevy_audio` voice source on `MinimalPlugins`: a head follows an
//! `AudioPlayer`'s sink (a rodio player pulled by the test at 16 kHz, as a
//! device would) and, with no sink, the virtual clock; pause, seek, speed,
//! loop and despawn.
#![cfg(feature = "bevy_audio")]

mod common;

use bevy::audio::{AudioPlayer, AudioSink, AudioSinkPlayback, AudioSource, PlaybackSettings};
use common::*;
use rodio::Source;

/// An app with the `AudioSource` asset type (no `AudioPlugin`: no device)
/// and the speech clip as an asset.
fn audio_app() -> (App, Handle<AudioSource>) {
    let mut app = app();
    app.init_asset::<AudioSource>();
    wait_ready(&mut app);
    let handle = app
        .world_mut()
        .resource_mut::<Assets<AudioSource>>()
        .add(AudioSource {
            bytes: wav_bytes(speech()).into(),
        });
    (app, handle)
}

fn position(app: &App, head: Entity) -> f64 {
    app.world().get::<BevyAudioVoice>(head).unwrap().position()
}

fn playhead(app: &App, head: Entity) -> Option<f64> {
    app.world()
        .get::<TalkingHeadState>(head)
        .unwrap()
        .playhead_secs()
}

/// Updates until the head's clip is decoded (on the async pool).
fn until_decoded(app: &mut App, head: Entity) {
    for _ in 0..500 {
        app.update();
        if app.world().get::<BevyAudioVoice>(head).unwrap().is_ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the clip was not decoded");
}

fn run(app: &mut App, frames: usize, node: Entity) -> f32 {
    let jaw = Blendshape::JawOpen.index();
    let mut max = 0.0f32;
    for _ in 0..frames {
        app.update();
        max = max.max(morph(app, node, jaw));
    }
    max
}

#[test]
fn without_a_device_the_face_follows_a_virtual_clock_and_despawn_happens() {
    let (mut app, clip) = audio_app();
    let clip_len = speech().len() as f64 / 16_000.0;
    // The head plays its own line, from 1.5 s before its end, then despawns.
    let start = clip_len - 1.5;
    let head = app
        .world_mut()
        .spawn((
            TalkingHead::default(),
            AudioPlayer(clip.clone()),
            PlaybackSettings::DESPAWN.with_start_position(Duration::from_secs_f64(start)),
            BevyAudioVoice::default(),
        ))
        .id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    until_decoded(&mut app, head);
    let max_jaw = run(&mut app, 50, node);
    let voice = app.world().get::<BevyAudioVoice>(head).unwrap();
    assert!(voice.is_virtual());
    let pos = voice.position();
    // 50 frames of 20 ms, less the frame before the clock starts.
    assert!(
        (pos - (start + 0.98)).abs() < 0.021,
        "virtual clock at {pos} s, started at {start} s"
    );
    assert!(max_jaw > 0.05, "the face did not move: {max_jaw}");
    // The clip ends: the entity (head and voice) is despawned as Bevy would.
    for _ in 0..40 {
        app.update();
    }
    assert!(app.world().get_entity(head).is_err(), "not despawned");
}

#[test]
fn a_separate_player_paused_looped_and_removed() {
    let (mut app, clip) = audio_app();
    // Paused in its settings: the clock does not run, the face rests.
    let player = app
        .world_mut()
        .spawn((AudioPlayer(clip.clone()), PlaybackSettings::ONCE.paused()))
        .id();
    let head = app
        .world_mut()
        .spawn((TalkingHead::default(), BevyAudioVoice::new(player)))
        .id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    until_decoded(&mut app, head);
    let max_jaw = run(&mut app, 30, node);
    assert_eq!(position(&app, head), 0.0);
    assert!(playhead(&app, head).is_none());
    assert!(max_jaw < 0.02, "{max_jaw}");

    // A 1 s loop: after 1.6 s the face is 0.6 s into the loop, in a new session.
    app.world_mut().entity_mut(player).insert(
        PlaybackSettings::LOOP
            .with_start_position(Duration::from_secs(1))
            .with_duration(Duration::from_secs(1)),
    );
    let max_jaw = run(&mut app, 80, node);
    let pos = position(&app, head);
    assert!(pos > 1.3 && pos < 1.8, "loop position {pos}");
    let ph = playhead(&app, head).unwrap();
    assert!(
        ph < 0.9,
        "session playhead {ph} s: the loop did not restart it"
    );
    assert!(max_jaw > 0.05, "{max_jaw}");

    // The player loses its audio: the head is not reported and rests.
    app.world_mut()
        .entity_mut(player)
        .remove::<(AudioPlayer, PlaybackSettings)>();
    run(&mut app, 30, node);
    assert!(playhead(&app, head).is_none());
    assert!(morph(&app, node, Blendshape::JawOpen.index()) < 0.02);
}

/// Runs `frames` updates, pulling 20 ms of output before each as a device
/// would (at whatever speed the sink plays); the largest jawOpen seen.
fn device(
    app: &mut App,
    output: &mut rodio::queue::SourcesQueueOutput,
    node: Entity,
    frames: usize,
) -> f32 {
    let jaw = Blendshape::JawOpen.index();
    let mut max = 0.0f32;
    for _ in 0..frames {
        for _ in 0..320 {
            output.next();
        }
        app.update();
        max = max.max(morph(app, node, jaw));
    }
    max
}

#[test]
fn the_face_follows_the_sink_through_pause_seek_and_speed() {
    let (mut app, clip) = audio_app();
    // A rodio player that the test pulls at 16 kHz, as an output device would.
    let (player, mut output) = rodio::Player::new();
    // Paused until the clip is decoded, so the face starts with the sink.
    player.pause();
    let samples = speech().to_vec();
    player.append(rodio::buffer::SamplesBuffer::new(
        std::num::NonZero::new(1).unwrap(),
        std::num::NonZero::new(16_000).unwrap(),
        samples,
    ));
    let head = app
        .world_mut()
        .spawn((
            TalkingHead::default(),
            AudioPlayer(clip),
            PlaybackSettings::ONCE,
            AudioSink::new(player),
            BevyAudioVoice::default(),
        ))
        .id();
    let node = spawn_face_mesh(&mut app, head, &ARKIT_BLENDSHAPES);
    let jaw = Blendshape::JawOpen.index();
    until_decoded(&mut app, head);
    app.world().get::<AudioSink>(head).unwrap().play();
    let max_jaw = device(&mut app, &mut output, node, 100);
    let voice = app.world().get::<BevyAudioVoice>(head).unwrap();
    assert!(!voice.is_virtual());
    let pos = voice.position();
    assert!((pos - 2.0).abs() < 0.05, "sink position {pos} after 2 s");
    let ph = playhead(&app, head).unwrap();
    assert!((ph - pos).abs() < 0.01, "playhead {ph} vs sink {pos}");
    assert!(max_jaw > 0.05, "{max_jaw}");

    // Pause through the sink: the face rests.
    app.world().get::<AudioSink>(head).unwrap().pause();
    device(&mut app, &mut output, node, 30);
    assert!(playhead(&app, head).is_none());
    assert!(morph(&app, node, jaw) < 0.02);

    // Seek and resume at double speed: the face follows the clip position.
    {
        let sink = app.world().get::<AudioSink>(head).unwrap();
        // `try_seek` waits for the output to apply it: pull while it waits.
        std::thread::scope(|s| {
            let seek = s.spawn(|| sink.try_seek(Duration::from_secs(5)));
            while !seek.is_finished() {
                output.next();
            }
            seek.join().unwrap().unwrap();
        });
        sink.set_speed(2.0);
        sink.play();
    }
    let max_jaw = device(&mut app, &mut output, node, 25);
    let pos = position(&app, head);
    assert!(pos > 5.0 && pos < 7.5, "position after seek at 2x: {pos}");
    let ph = playhead(&app, head).unwrap();
    assert!(ph < 2.5, "the seek did not start a new session: {ph}");
    assert!(max_jaw > 0.05, "no movement after the seek: {max_jaw}");
    let _ = output.total_duration();
}
