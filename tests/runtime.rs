//! Runtime: chunking parity through the whole pipeline, worker batching,
//! panic recovery, bounded memory over a long stream.

use std::sync::Arc;
use std::time::Duration;

use bevy_talking_head::audio::AudioFormat;
use bevy_talking_head::model::{ModelConfig, NEUTRAL_EMOTION, Sampler, TalkingHeadModel};
use bevy_talking_head::runtime::{
    ExpressionFrame, Pcm, Session, SessionId, Worker, WorkerCommand, WorkerConfig, WorkerEvent,
    WorkerFailure, run_to_end, step_batch,
};
use rand::{Rng, SeedableRng};

fn small() -> ModelConfig {
    ModelConfig::tiny()
}

/// A speech-like test signal: voiced harmonics with a syllable envelope.
fn speechy(rate: u32, secs: f64, channels: usize) -> Vec<f32> {
    let n = (rate as f64 * secs) as usize;
    let mut out = Vec::with_capacity(n * channels);
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let env = (t * 2.0 * std::f64::consts::PI * 3.0).sin().max(0.0);
        let f0 = 120.0 + 20.0 * (t * 1.3).sin();
        let v: f64 = (1..8)
            .map(|h| (t * 2.0 * std::f64::consts::PI * f0 * h as f64).sin() / h as f64)
            .sum();
        for c in 0..channels {
            out.push((0.3 * env * v * if c == 0 { 1.0 } else { 0.8 }) as f32);
        }
    }
    out
}

fn frames_for(
    model: &TalkingHeadModel,
    fmt: AudioFormat,
    pcm: &[f32],
    chunks: &[usize],
) -> Vec<ExpressionFrame> {
    let mut s = Session::new(model, fmt, 9).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < pcm.len() {
        let len = chunks[k % chunks.len()].min(pcm.len() - pos);
        s.push(Pcm::F32(&pcm[pos..pos + len])).unwrap();
        pos += len;
        k += 1;
        while s.pending_frames() > 0 {
            out.extend(
                step_batch(model, &mut [&mut s], Sampler::Student)
                    .unwrap()
                    .into_iter()
                    .map(|(_, f)| f),
            );
        }
    }
    s.finish();
    while s.pending_frames() > 0 {
        out.extend(
            step_batch(model, &mut [&mut s], Sampler::Student)
                .unwrap()
                .into_iter()
                .map(|(_, f)| f),
        );
    }
    out
}

#[test]
fn any_chunking_gives_the_same_frames() {
    let model = TalkingHeadModel::random(small(), 1).unwrap();
    for (rate, ch) in [(16_000u32, 1usize), (44_100, 2), (8_000, 1)] {
        let fmt = AudioFormat {
            sample_rate: rate,
            channels: ch as u16,
        };
        let pcm = speechy(rate, 1.3, ch);
        let whole = frames_for(&model, fmt, &pcm, &[pcm.len()]);
        let expected = (1.3f64 * 50.0).ceil() as usize;
        assert!(
            (whole.len() as i64 - expected as i64).abs() <= 1,
            "{rate} Hz: {} frames, expected {expected}",
            whole.len()
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(rate as u64);
        let random: Vec<usize> = (0..64).map(|_| rng.random_range(1..2000)).collect();
        for chunks in [vec![1usize, 7, 333], random, vec![160 * ch], vec![3]] {
            let got = frames_for(&model, fmt, &pcm, &chunks);
            assert_eq!(
                got.len(),
                whole.len(),
                "{rate} Hz chunks {:?}",
                &chunks[..3]
            );
            for (a, b) in got.iter().zip(&whole) {
                assert_eq!(a.index, b.index);
                assert_eq!(a.sample, b.sample);
                let err = a
                    .weights
                    .iter()
                    .zip(&b.weights)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(err <= 1e-4, "{rate} Hz frame {}: {err}", a.index);
            }
        }
    }
}

#[test]
fn frames_are_stamped_with_their_audio_time() {
    let model = TalkingHeadModel::random(small(), 1).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    let frames = frames_for(&model, fmt, &speechy(16_000, 0.5, 1), &[1000]);
    assert_eq!(frames.len(), 25);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!(f.sample, i as u64 * 320);
        assert!((f.time_secs(320) - (i as f64 + 0.5) / 50.0).abs() < 1e-9);
    }
}

#[test]
fn frames_carry_speech_activity_above_the_noise_floor() {
    let model = TalkingHeadModel::random(small(), 1).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    // 2 s of −50 dBFS white noise, then 1 s of speech over it.
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let amp = 10f32.powf(-50.0 / 20.0) * 3f32.sqrt();
    let noise: Vec<f32> = (0..48_000)
        .map(|_| amp * rng.random_range(-1.0f32..1.0))
        .collect();
    let mut pcm = noise.clone();
    for (x, s) in pcm[32_000..].iter_mut().zip(speechy(16_000, 1.0, 1)) {
        *x += s;
    }
    // Chunking changes nothing.
    let frames = frames_for(&model, fmt, &pcm, &[777]);
    assert_eq!(frames, frames_for(&model, fmt, &pcm, &[4096, 160]));
    assert_eq!(frames.len(), 150);
    let mut tracker = bevy_talking_head::upper_face::SpeechActivity::new(50.0);
    for f in &frames {
        assert!(
            (-53.0..-47.0).contains(&f.level_dbfs) || f.index >= 100,
            "{f:?}"
        );
        assert_eq!(f.speech_activity, tracker.update(f.level_dbfs));
    }
    // The noise floor is not speech; speech over it is.
    assert!(frames[..100].iter().all(|f| f.speech_activity == 0.0));
    let loud = frames[100..]
        .iter()
        .filter(|f| f.speech_activity > 0.2)
        .count();
    assert!(loud > 20, "{loud} active frames of speech over noise");
}

#[test]
fn silence_gives_a_closed_mouth() {
    let model = TalkingHeadModel::random(small(), 1).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    let frames = frames_for(&model, fmt, &vec![0.0; 16_000], &[4096]);
    assert_eq!(frames.len(), 50);
    for f in &frames {
        for &c in bevy_talking_head::rig::MOUTH_CHANNELS.iter() {
            assert_eq!(f.weights[c], 0.0);
        }
    }
}

fn collect_frames(
    worker: &Worker,
    want: usize,
    timeout: Duration,
) -> (Vec<(SessionId, ExpressionFrame)>, Vec<WorkerEvent>) {
    let deadline = std::time::Instant::now() + timeout;
    let mut frames = Vec::new();
    let mut other = Vec::new();
    while frames.len() < want && std::time::Instant::now() < deadline {
        if let Ok(ev) = worker.events().recv_timeout(Duration::from_millis(100)) {
            match ev {
                WorkerEvent::Frame { session, frame } => frames.push((session, frame)),
                e => other.push(e),
            }
        }
    }
    (frames, other)
}

/// Adds neutral, style-0 sessions with seed 9.
fn add_neutral_sessions(worker: &Worker, ids: std::ops::Range<u64>, format: AudioFormat) {
    for id in ids {
        worker
            .send_blocking(WorkerCommand::AddSession {
                id: SessionId(id),
                format,
                emotion: NEUTRAL_EMOTION,
                style: 0,
                seed: 9,
            })
            .unwrap();
    }
}

#[test]
fn worker_batches_sessions_and_matches_offline_results() {
    let model = Arc::new(TalkingHeadModel::random(small(), 2).unwrap());
    let worker = Worker::spawn(model.clone(), WorkerConfig::default()).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    let pcm = speechy(16_000, 0.6, 1);
    add_neutral_sessions(&worker, 0..8, fmt);
    for chunk in pcm.chunks(800) {
        for id in 0..8u64 {
            worker
                .send_blocking(WorkerCommand::Audio(SessionId(id), chunk.to_vec()))
                .unwrap();
        }
    }
    for id in 0..8u64 {
        worker
            .send_blocking(WorkerCommand::Finish(SessionId(id)))
            .unwrap();
    }
    let (frames, other) = collect_frames(&worker, 8 * 30, Duration::from_secs(60));
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(frames.len(), 8 * 30);
    let offline = frames_for(&model, fmt, &pcm, &[800]);
    for id in 0..8u64 {
        let mine: Vec<_> = frames
            .iter()
            .filter(|(s, _)| *s == SessionId(id))
            .map(|(_, f)| f)
            .collect();
        assert_eq!(mine.len(), offline.len());
        for (a, b) in mine.iter().zip(&offline) {
            assert_eq!(a.index, b.index);
            let err = a
                .weights
                .iter()
                .zip(&b.weights)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(err <= 1e-4, "session {id} frame {}: {err}", a.index);
        }
    }
    let stats = worker.stats();
    assert!(stats.last_batch >= 1);
    // Sessions were batched: far fewer steps than frames.
    assert!(stats.steps < stats.frames, "{stats:?}");
}

#[test]
#[cfg(feature = "test-hooks")]
fn worker_survives_an_injected_panic() {
    let model = Arc::new(TalkingHeadModel::random(small(), 3).unwrap());
    let worker = Worker::spawn(model, WorkerConfig::default()).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    let id = SessionId(7);
    worker
        .send_blocking(WorkerCommand::AddSession {
            id,
            format: fmt,
            emotion: NEUTRAL_EMOTION,
            style: 0,
            seed: 1,
        })
        .unwrap();
    worker
        .send_blocking(WorkerCommand::Audio(id, speechy(16_000, 0.2, 1)))
        .unwrap();
    let (before, _) = collect_frames(&worker, 8, Duration::from_secs(30));
    assert_eq!(before.len(), 8);
    worker
        .send_blocking(WorkerCommand::InjectPanic(id))
        .unwrap();
    worker
        .send_blocking(WorkerCommand::Audio(id, speechy(16_000, 0.2, 1)))
        .unwrap();
    // The panic is reported as a reset; then new audio animates again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut reset = None;
    while reset.is_none() && std::time::Instant::now() < deadline {
        if let Ok(WorkerEvent::SessionReset { session, reason }) =
            worker.events().recv_timeout(Duration::from_millis(100))
        {
            reset = Some((session, reason));
        }
    }
    let (session, reason) = reset.expect("a SessionReset event");
    assert_eq!(session, id);
    assert!(matches!(reason, WorkerFailure::Panic(_)), "{reason}");
    assert!(reason.to_string().contains("panic"), "{reason}");
    assert!(worker.is_running());
    worker
        .send_blocking(WorkerCommand::Audio(id, speechy(16_000, 0.4, 1)))
        .unwrap();
    let (after, _) = collect_frames(&worker, 5, Duration::from_secs(30));
    assert_eq!(after.len(), 5);
    // The audio clock continued: later frames are stamped after the first ones.
    assert!(after[0].1.sample > before.last().unwrap().1.sample);
    assert_eq!(worker.stats().panics, 1);
}

#[test]
fn unknown_session_and_bad_format_are_reported() {
    let model = Arc::new(TalkingHeadModel::random(small(), 3).unwrap());
    let worker = Worker::spawn(model, WorkerConfig::default()).unwrap();
    worker
        .send_blocking(WorkerCommand::Audio(SessionId(1), vec![0.0; 10]))
        .unwrap();
    worker
        .send_blocking(WorkerCommand::AddSession {
            id: SessionId(2),
            format: AudioFormat {
                sample_rate: 1_000,
                channels: 1,
            },
            emotion: NEUTRAL_EMOTION,
            style: 0,
            seed: 0,
        })
        .unwrap();
    let mut errors = 0;
    while let Ok(ev) = worker.events().recv_timeout(Duration::from_secs(5)) {
        if let WorkerEvent::Error { .. } = ev {
            errors += 1;
            if errors == 2 {
                break;
            }
        }
    }
    assert_eq!(errors, 2);
}

#[test]
fn nonfinite_samples_are_zeroed_and_counted() {
    let model = TalkingHeadModel::random(small(), 4).unwrap();
    let mut pcm = speechy(16_000, 0.3, 1);
    pcm[100] = f32::NAN;
    pcm[200] = f32::INFINITY;
    pcm[300] = f32::NEG_INFINITY;
    let mut s = Session::new(
        &model,
        AudioFormat {
            sample_rate: 16_000,
            channels: 1,
        },
        0,
    )
    .unwrap();
    let frames = run_to_end(&model, &mut s, Pcm::F32(&pcm), Sampler::Student, |_| {}).unwrap();
    assert_eq!(s.nonfinite_samples(), 3);
    assert_eq!(frames.len(), 15);
    assert!(frames.iter().all(|f| {
        f.weights
            .iter()
            .all(|w| w.is_finite() && (0.0..=1.0).contains(w))
    }));
}

/// A one-hour stream holds the memory of a ten-second one: the session's
/// state and buffers stop growing once the attention window is full.
#[test]
fn memory_is_bounded_over_a_one_hour_stream() {
    // 10 fps keeps the test short (36 000 steps); the memory bound is
    // structural, not a matter of frame rate.
    let cfg = ModelConfig {
        fps: 10,
        d_model: 16,
        n_heads: 2,
        n_layers: 1,
        d_ff: 16,
        history_frames: 2,
        denoiser_hidden: 16,
        denoiser_blocks: 1,
        ..ModelConfig::default() // default 128-frame context
    };
    let model = TalkingHeadModel::random(cfg, 5).unwrap();
    let mut s = Session::new(
        &model,
        AudioFormat {
            sample_rate: 16_000,
            channels: 1,
        },
        0,
    )
    .unwrap();
    let chunk: Vec<f32> = speechy(16_000, 1.0, 1);
    let mut at_10s = 0;
    let mut frames = 0u64;
    // One compute thread, as in the worker.
    let pool = rayon_core::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for sec in 0..3600 {
            s.push(Pcm::F32(&chunk)).unwrap();
            while s.pending_frames() > 0 {
                frames += step_batch(&model, &mut [&mut s], Sampler::Student)
                    .unwrap()
                    .len() as u64;
            }
            if sec == 9 {
                at_10s = s.memory_bytes();
            }
        }
    });
    let at_1h = s.memory_bytes();
    assert!(frames >= 3600 * 10 - 5, "{frames}");
    assert_eq!(s.samples_received(), 3600 * 16_000);
    assert!(
        at_1h <= at_10s + 1024,
        "10 s: {at_10s} bytes, 1 h: {at_1h} bytes"
    );
}

#[test]
fn control_slots_reach_the_session_without_commands_and_sessions_can_leave() {
    // Two sessions on identical audio; one is made happy through its
    // latest-wins slots (many writes, no queued command); a third session
    // is removed mid-stream, which must not disturb the others.
    let model = Arc::new(TalkingHeadModel::random(small(), 4).unwrap());
    let worker = Worker::spawn(model.clone(), WorkerConfig::default()).unwrap();
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    add_neutral_sessions(&worker, 0..3, fmt);
    let controls = worker
        .attach_controls(SessionId(1), NEUTRAL_EMOTION, 0)
        .unwrap();
    let mut happy = NEUTRAL_EMOTION;
    happy[1] = 1.0;
    for k in 0..100 {
        let mut e = NEUTRAL_EMOTION;
        e[1] = k as f32 / 100.0;
        controls.set_emotion(e);
    }
    controls.set_emotion(happy);
    let pcm = speechy(16_000, 0.6, 1);
    for (k, chunk) in pcm.chunks(800).enumerate() {
        for id in 0..3u64 {
            if id == 2 && k >= 5 {
                continue;
            }
            worker
                .send_blocking(WorkerCommand::Audio(SessionId(id), chunk.to_vec()))
                .unwrap();
        }
        if k == 5 {
            worker
                .send_blocking(WorkerCommand::RemoveSession(SessionId(2)))
                .unwrap();
        }
    }
    for id in 0..2u64 {
        worker
            .send_blocking(WorkerCommand::Finish(SessionId(id)))
            .unwrap();
    }
    let (frames, other) = collect_frames(&worker, 2 * 30, Duration::from_secs(60));
    assert!(other.is_empty(), "{other:?}");
    let of = |id: u64| -> Vec<[f32; 52]> {
        frames
            .iter()
            .filter(|(s, _)| *s == SessionId(id))
            .map(|(_, f)| f.weights)
            .collect()
    };
    let (neutral, happy_frames) = (of(0), of(1));
    assert_eq!(neutral.len(), 30);
    assert_eq!(happy_frames.len(), 30);
    // Session 0 is exactly the offline neutral run.
    let offline = frames_for(&model, fmt, &pcm, &[800]);
    for (a, b) in neutral.iter().zip(&offline) {
        let err = a
            .iter()
            .zip(&b.weights)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(err <= 1e-4, "{err}");
    }
    // Session 1 was conditioned differently from the first step.
    let diff: f32 = neutral
        .iter()
        .zip(&happy_frames)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>())
        .sum();
    assert!(diff > 0.0, "the control slot did not reach the session");
    let stats = worker.stats();
    assert_eq!(stats.sessions, 2, "{stats:?}");
    assert!((0.0..=1.0).contains(&stats.busy_fraction), "{stats:?}");
}

/// An inline worker does nothing until `pump`, then handles every queued
/// command and steps until idle; `send_blocking` into its full queue pumps
/// to make room instead of waiting forever. Its frames equal a threaded
/// worker's on the same input.
#[test]
fn inline_worker_pumps_and_never_deadlocks_on_a_full_queue() {
    let model = Arc::new(TalkingHeadModel::random(small(), 5).unwrap());
    let cfg = WorkerConfig {
        command_capacity: 2,
        ..WorkerConfig::default()
    };
    let fmt = AudioFormat {
        sample_rate: 16_000,
        channels: 1,
    };
    let audio = speechy(16_000, 0.5, 1);
    let run = |worker: &Worker| {
        let id = SessionId(1);
        worker
            .send_blocking(WorkerCommand::AddSession {
                id,
                format: fmt,
                emotion: NEUTRAL_EMOTION,
                style: 0,
                seed: 9,
            })
            .unwrap();
        for chunk in audio.chunks(320) {
            worker
                .send_blocking(WorkerCommand::Audio(id, chunk.to_vec()))
                .unwrap();
        }
        worker.send_blocking(WorkerCommand::Finish(id)).unwrap();
    };
    let inline = Worker::inline(model.clone(), cfg.clone());
    assert!(inline.is_inline());
    run(&inline);
    inline.pump();
    let got: Vec<ExpressionFrame> = inline
        .events()
        .try_iter()
        .filter_map(|e| match e {
            WorkerEvent::Frame { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    // 0.5 s at 50 fps.
    assert_eq!(got.len(), 25);
    let threaded = Worker::spawn(model, cfg).unwrap();
    run(&threaded);
    let (want, _) = collect_frames(&threaded, 25, Duration::from_secs(30));
    assert_eq!(want.len(), 25);
    for (a, (_, b)) in got.iter().zip(&want) {
        assert_eq!(a.index, b.index);
        assert_eq!(a.weights, b.weights);
    }
    assert!(inline.is_running());
    inline.send_blocking(WorkerCommand::Shutdown).unwrap();
    inline.pump();
    assert!(!inline.is_running());
}
