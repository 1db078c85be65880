//! No window, no GPU: a clip runs through the plugin on `MinimalPlugins`
//! and the face's main mouth weights are printed, 10 times a second.
//!
//! ```text
//! cargo run --example headless [-- PATH_TO_AUDIO]
//! ```
//!
//! The loop pushes 20 ms of audio per update through a [`VoiceStream`] and
//! advances time by 20 ms, so it runs as fast as the worker allows.

use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_talking_head::audio::load_mono_16k;
use bevy_talking_head::prelude::*;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/audio/LJ001-0001.wav")
        });
    let (audio, _) = load_mono_16k(&path)?;

    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
            20,
        )));
    // No sound device is needed (or probed): kira runs on its silent clock.
    #[cfg(feature = "kira")]
    app.insert_resource(TalkingHeadAudio::virtual_clock());
    app.add_plugins(TalkingHeadPlugin::default());
    app.finish();
    app.cleanup();

    // Wait for the model (it loads on a background thread).
    while !app.world().resource::<TalkingHeadRuntime>().is_ready() {
        if let bevy_talking_head::plugin::RuntimeState::Failed(e) =
            app.world().resource::<TalkingHeadRuntime>().state()
        {
            anyhow::bail!("{e}");
        }
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    // Face 100 ms behind the audio: frames are ready when sampled.
    let stream = VoiceStream::with_delay(Duration::from_millis(100));
    let head = app
        .world_mut()
        .spawn((TalkingHead::default(), stream.clone()))
        .id();

    println!(
        "{:>6}  {:>7} {:>7} {:>7} {:>7} {:>7}",
        "t(s)", "jawOpen", "funnel", "pucker", "close", "blinkL"
    );
    let chunks: Vec<&[f32]> = audio.chunks(320).collect();
    let tail = 10;
    for i in 0..chunks.len() + tail {
        if let Some(c) = chunks.get(i) {
            stream.push(c, 16_000)?;
        }
        app.update();
        // Let the worker keep up with the 20 ms steps.
        std::thread::sleep(Duration::from_millis(2));
        if i % 5 == 0 {
            let f = app.world().get::<FaceExpression>(head).expect("head");
            println!(
                "{:6.2}  {:7.3} {:7.3} {:7.3} {:7.3} {:7.3}",
                i as f64 * 0.02,
                f.get(Blendshape::JawOpen),
                f.get(Blendshape::MouthFunnel),
                f.get(Blendshape::MouthPucker),
                f.get(Blendshape::MouthClose),
                f.get(Blendshape::EyeBlinkLeft),
            );
        }
    }
    let stats = app.world().resource::<TalkingHeadRuntime>().stats().clone();
    println!(
        "worker: {} steps, {} frames, {} dropped events",
        stats.steps, stats.frames, stats.dropped_events
    );
    Ok(())
}
