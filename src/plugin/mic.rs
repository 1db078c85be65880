//! Voice from a microphone through cpal (feature `mic`).
//!
//! The device callback only copies samples into a lock-free single-producer
//! ring ([`rtrb`]): no allocation, no lock, no logging. A small thread owns
//! the cpal stream (cpal streams are not `Send` on every platform); the
//! main thread drains the ring every frame and forwards the audio to the
//! inference worker. No device, or a device that fails, is a warning: the
//! app and the other heads keep running.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::prelude::*;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, Sender};

use super::components::TalkingHeadState;
use super::runtime::TalkingHeadRuntime;
use crate::audio::{AudioFormat, MODEL_SAMPLE_RATE};

/// Seconds of audio the capture ring holds.
pub const MIC_RING_SECS: f32 = 2.0;

/// Voice from a microphone. `device`: a substring of the input device's
/// name (case-insensitive), or `None` for the system default.
#[derive(Component, Clone, Debug, Default)]
pub struct MicrophoneVoice {
    /// Input device name (substring match), `None` = default device.
    pub device: Option<String>,
}

impl MicrophoneVoice {
    /// The named input device.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            device: Some(name.into()),
        }
    }
}

/// Names of the available input devices (empty without audio hardware).
pub fn input_device_names() -> Vec<String> {
    let host = cpal::default_host();
    match host.input_devices() {
        Ok(devs) => devs
            .filter_map(|d| d.description().ok().map(|d| d.name().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

type Opened = Result<(AudioFormat, rtrb::Consumer<f32>), String>;

/// Capture state of a [`MicrophoneVoice`] (added by the plugin).
#[derive(Component)]
pub struct MicrophoneCapture {
    opening: Option<Mutex<Receiver<Opened>>>,
    consumer: Option<Mutex<rtrb::Consumer<f32>>>,
    format: Option<AudioFormat>,
    stop: Option<Sender<()>>,
    overflows: Arc<AtomicU64>,
    captured_16k: f64,
    failed: Option<String>,
}

impl std::fmt::Debug for MicrophoneCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrophoneCapture")
            .field("format", &self.format)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl MicrophoneCapture {
    /// The device's format once open.
    pub fn format(&self) -> Option<AudioFormat> {
        self.format
    }

    /// Why the microphone could not be used, if it could not.
    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Samples dropped: the ring was full, or the device delivered faster
    /// than real time.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }
}

impl Drop for MicrophoneCapture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn open_device(
    name: Option<String>,
    overflows: Arc<AtomicU64>,
    ready: Sender<Opened>,
    stop: Receiver<()>,
) {
    let host = cpal::default_host();
    let device = match &name {
        None => host.default_input_device(),
        Some(want) => host.input_devices().ok().and_then(|mut devs| {
            let want = want.to_lowercase();
            devs.find(|d| {
                d.description()
                    .map(|x| x.name().to_lowercase().contains(&want))
                    .unwrap_or(false)
            })
        }),
    };
    let Some(device) = device else {
        let _ = ready.send(Err(match name {
            Some(n) => format!(
                "no input device named like '{n}' (available: {:?})",
                input_device_names()
            ),
            None => "no default input device".to_string(),
        }));
        return;
    };
    let supported = match device.default_input_config() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("input device has no usable config: {e}")));
            return;
        }
    };
    let format = AudioFormat {
        sample_rate: supported.sample_rate(),
        channels: supported.channels(),
    };
    let cap =
        ((format.sample_rate as f32 * format.channels as f32 * MIC_RING_SECS) as usize).max(4096);
    let (mut producer, consumer) = rtrb::RingBuffer::<f32>::new(cap);
    let config = supported.config();
    let err_fn = |e: cpal::Error| eprintln!("talking-head microphone stream error: {e}");
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => device.build_input_stream::<f32, _, _>(
            config,
            move |data: &[f32], _| {
                // Real-time callback: copy only.
                for &s in data {
                    if producer.push(s).is_err() {
                        overflows.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            err_fn,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
            config,
            move |data: &[i16], _| {
                for &s in data {
                    if producer.push(s as f32 / 32768.0).is_err() {
                        overflows.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            err_fn,
            None,
        ),
        other => {
            let _ = ready.send(Err(format!("unsupported input sample format {other:?}")));
            return;
        }
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("could not open the input stream: {e}")));
            return;
        }
    };
    if let Err(e) = stream.play() {
        let _ = ready.send(Err(format!("could not start the input stream: {e}")));
        return;
    }
    if ready.send(Ok((format, consumer))).is_err() {
        return;
    }
    // Keep the stream alive until told to stop (or the component is gone).
    let _ = stop.recv();
    drop(stream);
}

/// Starts capture for new [`MicrophoneVoice`]s.
pub(crate) fn open_microphones(
    mut commands: Commands,
    new: Query<(Entity, &MicrophoneVoice), Without<MicrophoneCapture>>,
) {
    for (entity, mic) in &new {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let overflows = Arc::new(AtomicU64::new(0));
        let o2 = overflows.clone();
        let name = mic.device.clone();
        let spawned = std::thread::Builder::new()
            .name("talking-head-mic".into())
            .spawn(move || open_device(name, o2, ready_tx, stop_rx));
        let failed = spawned
            .err()
            .map(|e| format!("could not start the microphone thread: {e}"));
        if let Some(f) = &failed {
            warn!("TalkingHead {entity}: {f}");
        }
        commands.entity(entity).insert(MicrophoneCapture {
            opening: Some(Mutex::new(ready_rx)),
            consumer: None,
            format: None,
            stop: Some(stop_tx),
            overflows,
            captured_16k: 0.0,
            failed,
        });
    }
}

/// Drains the capture rings into the worker; the playhead is "now".
pub(crate) fn ingest_microphones(
    time: Res<Time<Real>>,
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut heads: Query<(Entity, &mut MicrophoneCapture, &mut TalkingHeadState)>,
) {
    for (entity, mut cap, mut state) in &mut heads {
        let cap = &mut *cap;
        if let Some(rx) = &cap.opening {
            let msg = rx
                .lock()
                .map(|r| r.try_recv())
                .unwrap_or(Err(crossbeam_channel::TryRecvError::Disconnected));
            match msg {
                Ok(Ok((format, consumer))) => {
                    info!(
                        "TalkingHead {entity}: microphone open ({} Hz, {} ch)",
                        format.sample_rate, format.channels
                    );
                    cap.format = Some(format);
                    cap.consumer = Some(Mutex::new(consumer));
                    cap.opening = None;
                }
                Ok(Err(e)) => {
                    warn!(
                        "TalkingHead {entity}: microphone unavailable: {e}; continuing without it"
                    );
                    cap.failed = Some(e);
                    cap.opening = None;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    cap.failed = Some("microphone thread stopped".into());
                    cap.opening = None;
                }
            }
        }
        let (Some(format), Some(consumer)) = (cap.format, &cap.consumer) else {
            state.playhead_16k = None;
            continue;
        };
        // A real device delivers audio in real time. A device that delivers
        // far more (ALSA's `null` device runs unthrottled) must not flood the
        // worker: forward at most twice the real-time amount, drop the rest.
        let ch = format.channels.max(1) as usize;
        let budget =
            ((time.delta_secs_f64() + 0.05) * 2.0 * format.sample_rate as f64) as usize * ch;
        let samples: Vec<f32> = match consumer.lock() {
            Ok(mut c) => {
                let n = c.slots();
                let n = n - n % ch;
                let skip = n.saturating_sub(budget);
                let skip = skip - skip % ch;
                if skip > 0 {
                    if let Ok(chunk) = c.read_chunk(skip) {
                        chunk.commit_all();
                    }
                    cap.overflows.fetch_add(skip as u64, Ordering::Relaxed);
                }
                match c.read_chunk(n - skip) {
                    Ok(chunk) => chunk.into_iter().collect(),
                    Err(_) => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        if !samples.is_empty() {
            let frames = samples.len() / format.channels.max(1) as usize;
            let start = cap.captured_16k;
            runtime.feed(entity, &mut state, format, samples, start);
            cap.captured_16k +=
                frames as f64 * MODEL_SAMPLE_RATE as f64 / format.sample_rate as f64;
        }
        state.playhead_16k = Some(cap.captured_16k);
    }
}
