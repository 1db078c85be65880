//! Voice from a microphone through cpal (feature `mic`).
//!
//! The device callback only copies samples into a lock-free single-producer
//! ring ([`rtrb`]): no allocation, no lock, no logging. A small thread owns
//! the cpal stream (cpal streams are not `Send` on every platform); the
//! main thread drains the ring every frame and forwards the audio to the
//! inference worker. No device, or a device that fails, is a warning: the
//! app and the other heads keep running, the face rests, and the plugin
//! reopens the device with back-off ([`MIC_RETRY_SECS`] doubling to
//! [`MIC_RETRY_MAX_SECS`]) until it returns. Capture goes through a
//! [`MicrophoneBackend`] (cpal by default), the seam tests and voice-chat
//! integrations use.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bevy::prelude::*;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, Sender};

use super::VoiceFeed;
use crate::audio::AudioFormat;
use crate::plugin::components::{TalkingHead, TalkingHeadState};
use crate::plugin::runtime::TalkingHeadRuntime;

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

/// Seconds to wait before reopening a microphone that failed or was lost;
/// doubles after every failed attempt up to [`MIC_RETRY_MAX_SECS`].
pub const MIC_RETRY_SECS: f64 = 1.0;
/// Longest wait between reconnection attempts.
pub const MIC_RETRY_MAX_SECS: f64 = 16.0;

/// The device side of a capture ring, handed to the audio callback. Every
/// method is real-time safe: no allocation, no lock, no logging (an
/// [`rtrb`] push and relaxed atomics).
pub struct MicSink {
    producer: rtrb::Producer<f32>,
    overflows: Arc<AtomicU64>,
    fault: Arc<AtomicBool>,
}

impl MicSink {
    /// A sink and the consumer end of its ring of `capacity` samples, apart
    /// from the plugin (benchmarks, tests of the real-time path).
    pub fn with_capacity(capacity: usize) -> (Self, rtrb::Consumer<f32>) {
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity.max(1));
        (
            Self {
                producer,
                overflows: Arc::new(AtomicU64::new(0)),
                fault: Arc::new(AtomicBool::new(false)),
            },
            consumer,
        )
    }

    /// Samples dropped because the ring was full.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Copies interleaved `f32` samples into the ring (samples that do not
    /// fit are counted as overflows).
    pub fn push_f32(&mut self, data: &[f32]) {
        for &s in data {
            if self.producer.push(s).is_err() {
                self.overflows.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Copies interleaved `i16` samples (scaled to `[-1, 1)`).
    pub fn push_i16(&mut self, data: &[i16]) {
        for &s in data {
            if self.producer.push(s as f32 / 32768.0).is_err() {
                self.overflows.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reports a device error (from cpal's error callback): the plugin
    /// warns, lets the face rest and reconnects later.
    pub fn fault(&self) {
        self.fault.store(true, Ordering::Release);
    }

    /// A flag the error callback can set without holding the sink.
    pub fn fault_flag(&self) -> Arc<AtomicBool> {
        self.fault.clone()
    }
}

/// One request to capture from a device, handed to a
/// [`MicrophoneBackend`] on a dedicated thread.
pub struct MicrophoneRequest {
    /// Input device name (substring match), `None` = default device.
    pub device: Option<String>,
    /// Fires (or disconnects) when capture must stop.
    pub stop: Receiver<()>,
    ready: Sender<Opened>,
    overflows: Arc<AtomicU64>,
    fault: Arc<AtomicBool>,
}

impl MicrophoneRequest {
    /// Reports the device open with `format` and returns the sink its
    /// callback writes into (a ring of [`MIC_RING_SECS`]); `None` when the
    /// plugin no longer waits for it (the head is gone).
    pub fn opened(&self, format: AudioFormat) -> Option<MicSink> {
        let cap = ((format.sample_rate as f32 * format.channels.max(1) as f32 * MIC_RING_SECS)
            as usize)
            .clamp(4096, 1 << 24);
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(cap);
        self.ready.send(Ok((format, consumer))).ok()?;
        Some(MicSink {
            producer,
            overflows: self.overflows.clone(),
            fault: self.fault.clone(),
        })
    }

    /// Reports that the device could not be opened, and why.
    pub fn failed(&self, why: impl Into<String>) {
        let _ = self.ready.send(Err(why.into()));
    }
}

/// Where microphone audio comes from. The plugin runs
/// [`capture`](Self::capture) on a dedicated thread per microphone; it
/// opens the device, calls [`MicrophoneRequest::opened`] (or `failed`),
/// feeds the returned [`MicSink`] from the device callback and returns when
/// `request.stop` fires or the device is gone. The default is cpal
/// ([`CpalMicrophone`]); insert a [`MicrophoneBackendResource`] to capture
/// from elsewhere (a voice-chat SDK, a test double).
pub trait MicrophoneBackend: Send + Sync + 'static {
    /// Captures until told to stop (see the trait docs).
    fn capture(&self, request: MicrophoneRequest);
}

/// The [`MicrophoneBackend`] the plugin uses (default: [`CpalMicrophone`]).
#[derive(Resource, Clone)]
pub struct MicrophoneBackendResource(pub Arc<dyn MicrophoneBackend>);

impl Default for MicrophoneBackendResource {
    fn default() -> Self {
        Self(Arc::new(CpalMicrophone))
    }
}

/// Capture state of a [`MicrophoneVoice`] (added by the plugin).
#[derive(Component)]
pub struct MicrophoneCapture {
    /// The device asked for ([`MicrophoneVoice::device`]) when it opened.
    device: Option<String>,
    opening: Option<Mutex<Receiver<Opened>>>,
    consumer: Option<Mutex<rtrb::Consumer<f32>>>,
    format: Option<AudioFormat>,
    stop: Option<Sender<()>>,
    overflows: Arc<AtomicU64>,
    fault: Arc<AtomicBool>,
    captured_16k: f64,
    failed: Option<String>,
    /// App time (seconds) of the next reconnection attempt, when closed.
    retry_at: Option<f64>,
    retry_delay: f64,
    faults: u64,
}

impl std::fmt::Debug for MicrophoneCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrophoneCapture")
            .field("format", &self.format)
            .field("failed", &self.failed)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl MicrophoneCapture {
    /// The device's format once open.
    pub fn format(&self) -> Option<AudioFormat> {
        self.format
    }

    /// Why the microphone is not capturing now, if it is not (it may be
    /// reconnecting).
    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Whether audio is flowing from an open device.
    pub fn is_open(&self) -> bool {
        self.consumer.is_some()
    }

    /// Device errors seen so far (each one closed the device; the plugin
    /// reconnects).
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Samples dropped: the ring was full, or the device delivered faster
    /// than real time.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    fn close(&mut self, why: String, now: f64) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.opening = None;
        self.consumer = None;
        self.format = None;
        self.failed = Some(why);
        self.retry_at = Some(now + self.retry_delay);
        self.retry_delay = (self.retry_delay * 2.0).min(MIC_RETRY_MAX_SECS);
    }
}

impl Drop for MicrophoneCapture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Microphone capture through cpal's default host.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpalMicrophone;

impl MicrophoneBackend for CpalMicrophone {
    fn capture(&self, request: MicrophoneRequest) {
        let host = cpal::default_host();
        let device = match &request.device {
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
            request.failed(match &request.device {
                Some(n) => format!(
                    "no input device named like '{n}' (available: {:?})",
                    input_device_names()
                ),
                None => "no default input device".to_string(),
            });
            return;
        };
        let supported = match device.default_input_config() {
            Ok(c) => c,
            Err(e) => {
                request.failed(format!("input device has no usable config: {e}"));
                return;
            }
        };
        let format = AudioFormat {
            sample_rate: supported.sample_rate(),
            channels: supported.channels(),
        };
        let config = supported.config();
        let sample_format = supported.sample_format();
        if !matches!(
            sample_format,
            cpal::SampleFormat::F32 | cpal::SampleFormat::I16
        ) {
            request.failed(format!("unsupported input sample format {sample_format:?}"));
            return;
        }
        let Some(mut sink) = request.opened(format) else {
            return;
        };
        // cpal's error callback: flag it (no allocation in the audio thread).
        let fault = sink.fault_flag();
        let err_fn = move |_e: cpal::Error| fault.store(true, Ordering::Release);
        let stream = match sample_format {
            cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
                config,
                move |data: &[i16], _| sink.push_i16(data),
                err_fn,
                None,
            ),
            _ => device.build_input_stream::<f32, _, _>(
                config,
                move |data: &[f32], _| sink.push_f32(data),
                err_fn,
                None,
            ),
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // The plugin already has the ring: report through the fault path.
                warn!("could not open the input stream: {e}");
                request.fault.store(true, Ordering::Release);
                return;
            }
        };
        if let Err(e) = stream.play() {
            warn!("could not start the input stream: {e}");
            request.fault.store(true, Ordering::Release);
            return;
        }
        // Keep the stream alive until told to stop (or the component is gone).
        let _ = request.stop.recv();
        drop(stream);
    }
}

fn start_capture(
    backend: &MicrophoneBackendResource,
    device: Option<String>,
    overflows: Arc<AtomicU64>,
    fault: Arc<AtomicBool>,
) -> (Receiver<Opened>, Sender<()>, Option<String>) {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let request = MicrophoneRequest {
        device,
        stop: stop_rx,
        ready: ready_tx,
        overflows,
        fault,
    };
    let b = backend.0.clone();
    let failed = std::thread::Builder::new()
        .name("talking-head-mic".into())
        .spawn(move || b.capture(request))
        .err()
        .map(|e| format!("could not start the microphone thread: {e}"));
    (ready_rx, stop_tx, failed)
}

/// Starts capture for new [`MicrophoneVoice`]s, and reconnects closed ones
/// when their retry time has come.
/// Stops the capture of heads whose [`MicrophoneVoice`] was removed (a mute
/// or push-to-talk toggle; the OS "microphone in use" indicator goes off),
/// and restarts it when its `device` changed.
/// A microphone capture, its voice (if still there) and the head's state.
type CaptureItem = (
    Entity,
    Option<Ref<'static, MicrophoneVoice>>,
    &'static MicrophoneCapture,
    Option<&'static mut crate::plugin::TalkingHeadState>,
);

pub(crate) fn close_microphones(
    mut commands: Commands,
    mut runtime: ResMut<crate::plugin::TalkingHeadRuntime>,
    mut removed: RemovedComponents<MicrophoneVoice>,
    mut captures: Query<CaptureItem>,
) {
    let gone: Vec<Entity> = removed.read().collect();
    for (e, mic, cap, state) in &mut captures {
        let close = match &mic {
            None => gone.contains(&e),
            Some(m) => m.is_changed() && m.device != cap.device,
        };
        if !close {
            continue;
        }
        // The next capture's clock starts at 0: its audio must open a new
        // session, not continue the old one's.
        if let Some(mut s) = state {
            runtime.close_session(&mut s);
        }
        commands.entity(e).remove::<MicrophoneCapture>();
    }
}

pub(crate) fn open_microphones(
    mut commands: Commands,
    time: Res<Time<Real>>,
    backend: Option<Res<MicrophoneBackendResource>>,
    new: Query<(Entity, &MicrophoneVoice), Without<MicrophoneCapture>>,
    mut closed: Query<(Entity, &MicrophoneVoice, &mut MicrophoneCapture)>,
) {
    let default_backend;
    let backend = match &backend {
        Some(b) => &**b,
        None => {
            default_backend = MicrophoneBackendResource::default();
            &default_backend
        }
    };
    let now = time.elapsed_secs_f64();
    for (entity, mic) in &new {
        let overflows = Arc::new(AtomicU64::new(0));
        let fault = Arc::new(AtomicBool::new(false));
        let (rx, stop, failed) = start_capture(
            backend,
            mic.device.clone(),
            overflows.clone(),
            fault.clone(),
        );
        if let Some(f) = &failed {
            warn!("TalkingHead {entity}: {f}");
        }
        commands.entity(entity).insert(MicrophoneCapture {
            device: mic.device.clone(),
            opening: Some(Mutex::new(rx)),
            consumer: None,
            format: None,
            stop: Some(stop),
            overflows,
            fault,
            captured_16k: 0.0,
            failed,
            retry_at: None,
            retry_delay: MIC_RETRY_SECS,
            faults: 0,
        });
    }
    for (entity, mic, mut cap) in &mut closed {
        let due = cap.retry_at.is_some_and(|t| now >= t);
        if !due || cap.opening.is_some() || cap.consumer.is_some() {
            continue;
        }
        debug!("TalkingHead {entity}: reopening the microphone");
        cap.fault.store(false, Ordering::Release);
        let (rx, stop, failed) = start_capture(
            backend,
            mic.device.clone(),
            cap.overflows.clone(),
            cap.fault.clone(),
        );
        cap.opening = Some(Mutex::new(rx));
        cap.stop = Some(stop);
        cap.retry_at = None;
        if let Some(f) = failed {
            cap.close(f, now);
        }
    }
}

/// Drains the capture rings into the worker; the playhead is "now".
pub(crate) fn ingest_microphones(
    time: Res<Time<Real>>,
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut heads: Query<(
        Entity,
        &TalkingHead,
        &mut MicrophoneCapture,
        &mut TalkingHeadState,
    )>,
) {
    let now = time.elapsed_secs_f64();
    for (entity, head, mut cap, mut state) in &mut heads {
        let cap = &mut *cap;
        let mut feed = VoiceFeed::new(&mut runtime, entity, head, &mut state);
        if cap.consumer.is_some() && cap.fault.load(Ordering::Acquire) {
            cap.faults += 1;
            warn!(
                "TalkingHead {entity}: microphone error; the face rests and the device is \
                 reopened in {:.0} s",
                cap.retry_delay
            );
            cap.close("microphone stream error".into(), now);
        }
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
                    cap.failed = None;
                    cap.retry_delay = MIC_RETRY_SECS;
                }
                Ok(Err(e)) => {
                    if cap.retry_delay <= MIC_RETRY_SECS {
                        warn!(
                            "TalkingHead {entity}: microphone unavailable: {e}; the face rests \
                             and the device is retried with back-off"
                        );
                    }
                    cap.close(e, now);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    cap.close("microphone thread stopped".into(), now);
                }
            }
        }
        let (Some(format), Some(consumer)) = (cap.format, &cap.consumer) else {
            feed.set_playhead(None);
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
            cap.captured_16k = feed.push(format, samples, cap.captured_16k);
        }
        // The newest captured sample, less the model's algorithmic latency:
        // frames for that moment exist, so the face interpolates between
        // them instead of holding the newest one (at a low frame rate the
        // hold could run out and the face would flicker to rest).
        let latency = feed.model_latency_16k();
        feed.set_playhead(Some((cap.captured_16k - latency).max(0.0)));
    }
}

/// [`MicrophoneVoice`]: a microphone through the [`MicrophoneBackend`]
/// (cpal by default), opened off the main thread, read from a lock-free
/// ring. Part of [`TalkingHeadPlugins`](crate::plugin::TalkingHeadPlugins).
pub struct MicrophonePlugin;

impl Plugin for MicrophonePlugin {
    fn is_unique(&self) -> bool {
        false
    }

    fn build(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "build") {
            return;
        }
        app.add_systems(
            PreUpdate,
            (close_microphones, open_microphones)
                .chain()
                .before(crate::plugin::TalkingHeadSystems::IngestAudio),
        )
        .add_systems(
            PreUpdate,
            ingest_microphones.in_set(super::VoiceSourceSystems),
        );
    }
}
