//! Voice from a clip played with kira (feature `kira`): the face follows
//! kira's playback position, across pause, resume, seek and loops.

use std::sync::Mutex;

use bevy::prelude::*;
use kira::backend::mock::{MockBackend, MockBackendSettings};
use kira::sound::PlaybackState;
use kira::sound::static_sound::{StaticSoundData, StaticSoundHandle};
use kira::{AudioManager, AudioManagerSettings, DefaultBackend, Tween};

use super::VoiceFeed;
use super::clip::ClipCursor;
pub use super::clip::{FEED_AHEAD_SECS, SEEK_THRESHOLD_SECS};
use crate::plugin::components::{TalkingHead, TalkingHeadState};
use crate::plugin::runtime::TalkingHeadRuntime;
/// Sample rate of the virtual (device-less) clock.
pub const VIRTUAL_SAMPLE_RATE: u32 = 48_000;

enum Backend {
    /// No clip played yet: no device opened (a game that never plays a
    /// `KiraVoice`, or a server, opens none).
    Unopened,
    Device(Box<AudioManager<DefaultBackend>>),
    Virtual {
        manager: Box<AudioManager<MockBackend>>,
        pending_frames: f64,
    },
}

/// Error from [`TalkingHeadAudio::play`].
#[derive(Debug, thiserror::Error)]
#[error("kira could not play the sound: {0}")]
pub struct PlayError(String);

/// The kira audio manager the plugin plays voice clips on.
///
/// With a sound device this is kira's default (cpal) backend. Without one
/// (servers, CI, a machine with no sound card) it is a **virtual clock**:
/// kira's `MockBackend`, advanced by real frame time, so clips "play"
/// silently and faces still animate in sync. The plugin inserts
/// [`TalkingHeadAudio::new`] unless the app inserted one first (tests
/// insert [`TalkingHeadAudio::virtual_clock`]).
#[derive(Resource)]
pub struct TalkingHeadAudio {
    backend: Mutex<Backend>,
    /// Bumped when the backend is replaced (device lost → virtual clock):
    /// voices re-play on the new manager from where they were.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TalkingHeadAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TalkingHeadAudio")
            .field("virtual", &self.is_virtual())
            .finish()
    }
}

impl Default for TalkingHeadAudio {
    fn default() -> Self {
        Self::new()
    }
}

impl TalkingHeadAudio {
    /// The default sound device, opened when the first clip is played
    /// ([`play`](Self::play)), so an app that never plays a [`KiraVoice`]
    /// opens no output stream; if there is no device then, a warning and the
    /// virtual clock.
    pub fn new() -> Self {
        Self {
            backend: Mutex::new(Backend::Unopened),
            generation: Default::default(),
        }
    }

    /// Opens the default device (or the virtual clock) if not yet done.
    fn open(b: &mut Backend) {
        if !matches!(b, Backend::Unopened) {
            return;
        }
        *b = match AudioManager::<DefaultBackend>::new(AudioManagerSettings::default()) {
            Ok(m) => Backend::Device(Box::new(m)),
            Err(e) => {
                warn!(
                    "talking-head: no audio output device ({e}); clips play silently on a virtual clock"
                );
                Self::virtual_backend()
            }
        };
    }

    /// A silent manager driven by frame time (no device needed).
    pub fn virtual_clock() -> Self {
        Self {
            backend: Mutex::new(Self::virtual_backend()),
            generation: Default::default(),
        }
    }

    fn virtual_backend() -> Backend {
        let manager = AudioManager::<MockBackend>::new(AudioManagerSettings {
            backend_settings: MockBackendSettings {
                sample_rate: VIRTUAL_SAMPLE_RATE,
            },
            ..Default::default()
        })
        .expect("kira's mock backend cannot fail to start");
        Backend::Virtual {
            manager: Box::new(manager),
            pending_frames: 0.0,
        }
    }

    /// How many times the backend was replaced (a lost device); voices
    /// compare it with their own to know when to re-play.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Reads the device backend's stream errors. A lost device
    /// (`DeviceNotAvailable`, `StreamInvalidated`) that kira could not
    /// replace with another output switches to the virtual clock: returns
    /// the reason when it did.
    pub fn poll_device(&self) -> Option<String> {
        use kira::backend::cpal::cpal::ErrorKind;
        let lost = {
            let mut b = self.backend.lock().unwrap_or_else(|p| p.into_inner());
            let Backend::Device(m) = &mut *b else {
                return None;
            };
            let mut lost = None;
            while let Some(e) = m.backend_mut().pop_error() {
                if matches!(
                    e.kind(),
                    ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated
                ) {
                    lost = Some(e.to_string());
                }
            }
            lost
        }?;
        // kira restarts the stream when a default output exists; fall back
        // only when there is none.
        use kira::backend::cpal::cpal::traits::HostTrait;
        let has_output = kira::backend::cpal::cpal::default_host()
            .default_output_device()
            .is_some();
        if has_output {
            return None;
        }
        self.device_lost(&lost);
        Some(lost)
    }

    /// Switches to the virtual clock as after losing the sound device (the
    /// path [`poll_device`](Self::poll_device) takes; also the seam tests
    /// use). Voices keep their positions and the faces keep animating.
    pub fn device_lost(&self, why: &str) {
        let mut b = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        warn!("talking-head: sound device lost ({why}); clips continue on a virtual clock");
        *b = Self::virtual_backend();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether a backend (the device or the virtual clock) is open: false
    /// for [`new`](Self::new) until the first clip is played.
    pub fn is_open(&self) -> bool {
        !matches!(
            *self.backend.lock().unwrap_or_else(|p| p.into_inner()),
            Backend::Unopened
        )
    }

    /// Whether this is the device-less virtual clock (false until the first
    /// clip opened a backend, for [`new`](Self::new)).
    pub fn is_virtual(&self) -> bool {
        matches!(
            *self.backend.lock().unwrap_or_else(|p| p.into_inner()),
            Backend::Virtual { .. }
        )
    }

    /// Plays `data`; give the handle to a [`KiraVoice`].
    ///
    /// # Errors
    /// [`PlayError`] when kira refuses (e.g. too many sounds playing).
    pub fn play(&self, data: StaticSoundData) -> Result<StaticSoundHandle, PlayError> {
        let mut b = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        Self::open(&mut b);
        match &mut *b {
            Backend::Unopened => Err(PlayError("no audio backend".into())),
            Backend::Device(m) => m.play(data).map_err(|e| PlayError(e.to_string())),
            Backend::Virtual { manager, .. } => {
                manager.play(data).map_err(|e| PlayError(e.to_string()))
            }
        }
    }

    /// Advances the virtual clock by `dt` seconds (no-op with a device).
    pub fn advance(&self, dt: f64) {
        let mut b = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        if let Backend::Virtual {
            manager,
            pending_frames,
        } = &mut *b
        {
            *pending_frames += dt.max(0.0) * VIRTUAL_SAMPLE_RATE as f64;
            // The mock renders one internal buffer (128 frames) per call.
            const BLOCK: f64 = 128.0;
            let mut started = false;
            while *pending_frames >= BLOCK {
                if !started {
                    manager.backend_mut().on_start_processing();
                    started = true;
                }
                manager.backend_mut().process();
                *pending_frames -= BLOCK;
            }
        }
    }
}

/// A voice clip played with kira that drives a [`TalkingHead`](crate::plugin::TalkingHead).
///
/// The whole clip is known, so its audio is queued on the worker a little
/// ahead of kira's playback position ([`FEED_AHEAD_SECS`]) and the face is
/// sampled at that position: pause freezes nothing in the past (the face
/// eases to rest while paused), a seek or loop restarts the session at the
/// new position.
#[derive(Component)]
pub struct KiraVoice {
    /// kira's handle to the playing sound (control playback through it).
    pub handle: StaticSoundHandle,
    data: StaticSoundData,
    generation: u64,
    cursor: ClipCursor,
}

impl std::fmt::Debug for KiraVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KiraVoice")
            .field("position", &self.handle.position())
            .field("state", &self.handle.state())
            .field("duration_secs", &self.duration_secs())
            .finish()
    }
}

impl KiraVoice {
    /// Starts playing `data` on `audio` and returns the voice component.
    ///
    /// # Errors
    /// [`PlayError`] if kira cannot play it.
    pub fn play(audio: &TalkingHeadAudio, data: StaticSoundData) -> Result<Self, PlayError> {
        let mono: std::sync::Arc<[f32]> = data
            .frames
            .iter()
            .map(|f| 0.5 * (f.left + f.right))
            .collect();
        let sample_rate = data.sample_rate;
        let handle = audio.play(data.clone())?;
        Ok(Self {
            handle,
            data,
            generation: audio.generation(),
            cursor: ClipCursor::new(mono, sample_rate),
        })
    }

    /// Length of the clip, seconds.
    pub fn duration_secs(&self) -> f64 {
        self.cursor.duration_secs()
    }

    /// kira's playback position, seconds.
    pub fn position(&self) -> f64 {
        self.handle.position()
    }

    /// Pauses playback (the face eases to rest).
    pub fn pause(&mut self) {
        self.handle.pause(Tween::default());
    }

    /// Resumes playback.
    pub fn resume(&mut self) {
        self.handle.resume(Tween::default());
    }

    /// Seeks to `secs` (the face follows).
    pub fn seek_to(&mut self, secs: f64) {
        self.handle.seek_to(secs);
    }
}

/// Watches the sound device (a lost one falls back to the virtual clock)
/// and advances the virtual clock (before positions are read).
pub(crate) fn advance_virtual_clock(audio: Option<Res<TalkingHeadAudio>>, time: Res<Time<Real>>) {
    if let Some(audio) = audio {
        let _ = audio.poll_device();
        audio.advance(time.delta_secs_f64());
    }
}

/// Feeds clip audio ahead of kira's playhead and sets the heads' playheads.
pub(crate) fn ingest_kira_voices(
    audio: Option<Res<TalkingHeadAudio>>,
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut heads: Query<(Entity, &TalkingHead, &mut KiraVoice, &mut TalkingHeadState)>,
) {
    for (entity, head, mut voice, mut state) in &mut heads {
        let voice = &mut *voice;
        let mut feed = VoiceFeed::new(&mut runtime, entity, head, &mut state);
        // The backend was replaced (device lost): re-play from where it was.
        if let Some(audio) = &audio
            && audio.generation() != voice.generation
        {
            let state_before = voice.handle.state();
            let at = voice.cursor.last_pos();
            match audio.play(voice.data.start_position(at)) {
                Ok(mut h) => {
                    if matches!(state_before, PlaybackState::Paused | PlaybackState::Pausing) {
                        h.pause(Tween::default());
                    }
                    if matches!(
                        state_before,
                        PlaybackState::Stopped | PlaybackState::Stopping
                    ) {
                        h.stop(Tween::default());
                    }
                    voice.handle = h;
                }
                Err(e) => {
                    warn!("TalkingHead {entity}: could not move the clip to the virtual clock: {e}")
                }
            }
            voice.generation = audio.generation();
        }
        let pos = voice.handle.position();
        let playing = matches!(
            voice.handle.state(),
            PlaybackState::Playing | PlaybackState::Resuming | PlaybackState::Pausing
        );
        voice.cursor.drive(&mut feed, pos, playing);
    }
}

/// [`KiraVoice`]: clips played with kira, the face on kira's playback
/// position. Inserts a [`TalkingHeadAudio`] (default device, virtual clock
/// without one) unless the app already has one. Part of
/// [`TalkingHeadPlugins`](crate::plugin::TalkingHeadPlugins).
pub struct KiraVoicePlugin;

impl Plugin for KiraVoicePlugin {
    fn is_unique(&self) -> bool {
        false
    }

    fn build(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "build") {
            return;
        }
        if !app.world().contains_resource::<TalkingHeadAudio>() {
            app.insert_resource(TalkingHeadAudio::new());
        }
        app.add_systems(
            PreUpdate,
            (advance_virtual_clock, ingest_kira_voices)
                .chain()
                .in_set(super::VoiceSourceSystems),
        );
    }
}
