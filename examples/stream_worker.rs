//! Streams an audio file through the inference worker in 10 ms chunks, as a
//! game would feed microphone or network audio, and prints jawOpen per frame
//! with its audio time stamp.
//!
//! ```sh
//! cargo run --release --example stream_worker -- assets/audio/LJ001-0001.wav [MODEL]
//! ```
//!
//! Without a trained model (none ships yet) it uses a random model of the
//! default size, so the curve shows the plumbing and timing, not animation.

use std::sync::Arc;
use std::time::Duration;

use bevy_talking_head::audio::read_audio_file;
use bevy_talking_head::model::{ModelConfig, NEUTRAL_EMOTION, TalkingHeadModel};
use bevy_talking_head::rig::Blendshape;
use bevy_talking_head::runtime::{SessionId, Worker, WorkerCommand, WorkerConfig, WorkerEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let audio_path = args
        .next()
        .unwrap_or_else(|| "assets/audio/LJ001-0001.wav".into());
    let model = match args.next() {
        Some(p) => TalkingHeadModel::load(p.as_ref())?,
        None => {
            eprintln!("no model given: using a RANDOM model (plumbing demo, not animation)");
            TalkingHeadModel::random(ModelConfig::default(), 0)?
        }
    };
    let spf = model.config().samples_per_frame();
    let audio = read_audio_file(audio_path.as_ref())?;
    let worker = Worker::spawn(Arc::new(model), WorkerConfig::default())?;
    let id = SessionId(1);
    worker.send_blocking(WorkerCommand::AddSession {
        id,
        format: audio.format,
        emotion: NEUTRAL_EMOTION,
        style: 0,
        seed: 0,
    })?;
    // 10 ms chunks of interleaved samples, like an audio callback would deliver.
    let chunk = (audio.format.sample_rate as usize / 100) * audio.format.channels as usize;
    for c in audio.samples.chunks(chunk) {
        worker.send_blocking(WorkerCommand::Audio(id, c.to_vec()))?;
    }
    worker.send_blocking(WorkerCommand::Finish(id))?;
    let expected = (audio.duration_secs() * 50.0).ceil() as usize;
    let mut got = 0;
    while got < expected {
        match worker.events().recv_timeout(Duration::from_secs(10)) {
            Ok(WorkerEvent::Frame { frame, .. }) => {
                got += 1;
                let jaw = frame.weights[Blendshape::JawOpen.index()];
                if frame.index % 5 == 0 {
                    println!(
                        "{:7.3} s  {:<40} {jaw:.2}",
                        frame.time_secs(spf),
                        "#".repeat((jaw * 40.0) as usize)
                    );
                }
            }
            Ok(other) => eprintln!("{other:?}"),
            Err(_) => break,
        }
    }
    let stats = worker.stats();
    eprintln!(
        "{got} frames; worker: {} batched steps, last step {:.3} ms",
        stats.steps,
        stats.last_step_secs * 1e3
    );
    Ok(())
}
