//! Voice from a clip played with Bevy's own audio (feature `bevy_audio`):
//! the face follows the `AudioPlayer`'s sink — play, pause, seek, speed,
//! loop and despawn — and, with no sound device, a virtual clock.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::asset::AssetEvent;
use bevy::audio::{
    AudioPlayer, AudioSink, AudioSinkPlayback, AudioSource, PlaybackMode, PlaybackSettings,
    SpatialAudioSink,
};
use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, futures::check_ready};

use super::VoiceFeed;
use super::clip::ClipCursor;
use crate::audio::decode_audio_bytes;
use crate::plugin::components::{TalkingHead, TalkingHeadState};
use crate::plugin::runtime::TalkingHeadRuntime;

/// Drives a [`TalkingHead`] from a clip played with Bevy's audio: the
/// entity with the [`AudioPlayer`] (`player`, or the head itself).
///
/// The face follows that entity's [`AudioSink`] (or [`SpatialAudioSink`]):
/// its position × speed is the clip position, so pause, `try_seek`,
/// `set_speed`, [`PlaybackSettings`] (`start_position`, `duration`, loop)
/// and despawning the player all show on the face. The clip's audio is the
/// same [`AudioSource`] asset, decoded once per asset on the async compute
/// pool (a corrupt clip logs a warning naming it; the face rests).
///
/// With no sound device (CI, servers) Bevy creates no sink; the face then
/// follows a **virtual clock** that plays the clip as [`PlaybackSettings`]
/// say (speed, paused, start, duration, loop), in real time, and carries
/// out `Despawn` / `Remove` when it ends, so game logic waiting for the line
/// to finish still runs.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_talking_head::plugin::{TalkingHead, BevyAudioVoice};
/// fn spawn(mut commands: Commands, assets: Res<AssetServer>) {
///     // The head plays its own voice line:
///     commands.spawn((
///         TalkingHead::default(),
///         AudioPlayer::new(assets.load("audio/line.wav")),
///         PlaybackSettings::DESPAWN,
///         BevyAudioVoice::default(),
///     ));
/// }
/// ```
///
/// Timing note: a seek of less than about 0.15 s is not told apart from
/// playback (the face catches up as the clip plays on).
#[derive(Component, Debug, Clone, Default)]
pub struct BevyAudioVoice {
    /// The entity with the [`AudioPlayer`]; `None`: this entity.
    pub player: Option<Entity>,
    clip: Option<(AssetId<AudioSource>, ClipCursor)>,
    virtual_clock: VirtualClock,
    sink_clock: Option<SinkClock>,
}

/// Playback time from a sink's `position()`. rodio counts played samples
/// at the sped-up rate (wall time) on top of the last seek target (clip
/// time), so the clip advances by the change in position × speed, and a
/// jump that elapsed time cannot explain is a seek to the new position.
#[derive(Debug, Clone, Default)]
struct SinkClock {
    last: Option<f64>,
    raw: f64,
}

impl SinkClock {
    fn advance(&mut self, position: f64, speed: f64, dt: f64) -> f64 {
        match self.last {
            None => self.raw = position * speed,
            Some(last) => {
                let delta = position - last;
                if delta < -0.05 || delta > 2.0 * dt + 0.15 {
                    self.raw = position;
                } else {
                    self.raw += delta.max(0.0) * speed;
                }
            }
        }
        self.last = Some(position);
        self.raw
    }
}

#[derive(Debug, Clone, Default)]
struct VirtualClock {
    /// Frames seen with the clip ready but no sink.
    frames_without_sink: u32,
    /// Playback seconds on the virtual clock.
    elapsed: f64,
    done: bool,
}

impl BevyAudioVoice {
    /// The voice of the [`AudioPlayer`] on `player`.
    pub fn new(player: Entity) -> Self {
        Self {
            player: Some(player),
            ..default()
        }
    }

    /// Whether the clip is decoded and the face follows it.
    pub fn is_ready(&self) -> bool {
        self.clip.is_some()
    }

    /// Whether the face follows the virtual clock (no sink: no sound device).
    pub fn is_virtual(&self) -> bool {
        self.virtual_clock.frames_without_sink >= VIRTUAL_AFTER_FRAMES
    }

    /// The clip position the face shows, seconds (0 before the clip is decoded).
    pub fn position(&self) -> f64 {
        self.clip.as_ref().map_or(0.0, |(_, c)| c.last_pos())
    }
}

/// A ready clip with no sink for this many frames plays on the virtual clock
/// (Bevy inserts the sink the frame after the asset loads, when there is a device).
const VIRTUAL_AFTER_FRAMES: u32 = 2;

/// A decoded clip: mono samples and their rate.
type MonoClip = (Arc<[f32]>, u32);

enum Decoded {
    Pending(Task<Result<MonoClip, String>>),
    Ready(Arc<[f32]>, u32),
    Failed,
}

/// The decoded (mono) audio of every [`AudioSource`] a [`BevyAudioVoice`]
/// plays, by asset: decoded once, on the async compute pool; dropped when
/// the asset changes (hot reload) or is removed.
#[derive(Resource, Default)]
pub(crate) struct DecodedVoiceClips {
    clips: HashMap<AssetId<AudioSource>, Decoded>,
}

impl DecodedVoiceClips {
    fn get(
        &mut self,
        id: AssetId<AudioSource>,
        sources: &Assets<AudioSource>,
        server: Option<&AssetServer>,
    ) -> Option<(Arc<[f32]>, u32)> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.clips.entry(id) {
            let source = sources.get(id)?;
            let bytes = source.bytes.clone();
            let name = server
                .and_then(|s| s.get_path(id))
                .map_or_else(|| format!("{id}"), |p| p.to_string());
            let task = AsyncComputeTaskPool::get().spawn(async move {
                let decoded = decode_audio_bytes(bytes, &name).map_err(|e| e.to_string())?;
                decoded
                    .format
                    .validate()
                    .map_err(|e| format!("{name}: {e}"))?;
                let ch = decoded.format.channels.max(1) as usize;
                let mono: Arc<[f32]> = decoded
                    .samples
                    .chunks_exact(ch)
                    .map(|f| f.iter().sum::<f32>() / ch as f32)
                    .collect();
                Ok((mono, decoded.format.sample_rate))
            });
            slot.insert(Decoded::Pending(task));
        }
        let entry = self.clips.get_mut(&id)?;
        if let Decoded::Pending(task) = entry
            && let Some(result) = check_ready(task)
        {
            *entry = match result {
                Ok((mono, rate)) => Decoded::Ready(mono, rate),
                Err(e) => {
                    warn!(
                        "talking-head: cannot use the voice clip for lip sync: {e}; the face rests"
                    );
                    Decoded::Failed
                }
            };
        }
        match entry {
            Decoded::Ready(mono, rate) => Some((mono.clone(), *rate)),
            _ => None,
        }
    }
}

/// Drops decoded clips whose asset changed or went away.
pub(crate) fn forget_changed_clips(
    mut events: MessageReader<AssetEvent<AudioSource>>,
    mut clips: ResMut<DecodedVoiceClips>,
) {
    for e in events.read() {
        match e {
            AssetEvent::Modified { id }
            | AssetEvent::Removed { id }
            | AssetEvent::Unused { id } => {
                clips.clips.remove(id);
            }
            _ => {}
        }
    }
}

type PlayerQuery<'w, 's> = Query<
    'w,
    's,
    (
        &'static AudioPlayer,
        Option<&'static PlaybackSettings>,
        Option<&'static AudioSink>,
        Option<&'static SpatialAudioSink>,
    ),
>;

/// Feeds clip audio ahead of each sink's position and sets the heads' playheads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest_bevy_audio_voices(
    mut commands: Commands,
    mut runtime: ResMut<TalkingHeadRuntime>,
    mut clips: ResMut<DecodedVoiceClips>,
    sources: Option<Res<Assets<AudioSource>>>,
    server: Option<Res<AssetServer>>,
    time: Res<Time<Real>>,
    players: PlayerQuery,
    mut heads: Query<(
        Entity,
        &TalkingHead,
        &mut BevyAudioVoice,
        &mut TalkingHeadState,
    )>,
) {
    let Some(sources) = sources else { return };
    let dt = time.delta_secs_f64();
    for (entity, head, mut voice, mut state) in &mut heads {
        let voice = &mut *voice;
        let player_entity = voice.player.unwrap_or(entity);
        // No player (despawned, or its audio removed): the head is not reported and rests.
        let Ok((player, settings, sink, spatial)) = players.get(player_entity) else {
            voice.clip = None;
            voice.virtual_clock = VirtualClock::default();
            voice.sink_clock = None;
            continue;
        };
        let settings = settings.copied().unwrap_or_default();
        let mut feed = VoiceFeed::new(&mut runtime, entity, head, &mut state);
        let id = player.0.id();
        let Some((mono, rate)) = clips.get(id, &sources, server.as_deref()) else {
            feed.set_playhead(None);
            continue;
        };
        if voice.clip.as_ref().is_none_or(|(c, _)| *c != id) {
            // A new clip on this player: a new session.
            feed.close_session();
            voice.clip = Some((id, ClipCursor::new(mono, rate)));
            voice.virtual_clock = VirtualClock::default();
            voice.sink_clock = None;
        }
        let Some((_, cursor)) = voice.clip.as_mut() else {
            continue;
        };
        let clip_len = cursor.duration_secs();
        let (start, segment) = segment(&settings, clip_len);
        let sink: Option<&dyn AudioSinkPlayback> = sink
            .map(|s| s as &dyn AudioSinkPlayback)
            .or(spatial.map(|s| s as &dyn AudioSinkPlayback));
        let (raw, mut playing) = match sink {
            Some(sink) => {
                voice.virtual_clock = VirtualClock::default();
                let raw = voice.sink_clock.get_or_insert_default().advance(
                    sink.position().as_secs_f64(),
                    f64::from(sink.speed()),
                    dt,
                );
                (raw, !sink.is_paused() && !sink.empty())
            }
            None => {
                voice.sink_clock = None;
                let clock = &mut voice.virtual_clock;
                clock.frames_without_sink = clock.frames_without_sink.saturating_add(1);
                let running = clock.frames_without_sink >= VIRTUAL_AFTER_FRAMES
                    && !settings.paused
                    && !clock.done;
                if running {
                    clock.elapsed += dt * f64::from(settings.speed.max(0.0));
                }
                (clock.elapsed, running)
            }
        };
        let looping = matches!(settings.mode, PlaybackMode::Loop);
        let pos = if looping && segment > 0.0 {
            start + raw % segment
        } else {
            start + raw.min(segment)
        };
        let ended = !looping && raw >= segment;
        playing &= !ended;
        cursor.drive(&mut feed, pos, playing);
        // The virtual clock carries out what Bevy does when a clip ends.
        if sink.is_none() && ended && !voice.virtual_clock.done {
            voice.virtual_clock.done = true;
            match settings.mode {
                PlaybackMode::Despawn => {
                    commands.entity(player_entity).try_despawn();
                }
                PlaybackMode::Remove => {
                    commands
                        .entity(player_entity)
                        .try_remove::<(AudioPlayer, PlaybackSettings)>();
                }
                PlaybackMode::Once | PlaybackMode::Loop => {}
            }
        }
    }
}

/// [`BevyAudioVoice`]: clips played with Bevy's `AudioPlayer`, the face on
/// the sink's position (a virtual clock without a sound device). Needs
/// Bevy's `AudioPlugin` (in `DefaultPlugins` with the `bevy_audio`
/// feature), or at least the `AudioSource` asset type. Part of
/// [`TalkingHeadPlugins`](crate::plugin::TalkingHeadPlugins).
pub struct BevyAudioVoicePlugin;

impl Plugin for BevyAudioVoicePlugin {
    fn is_unique(&self) -> bool {
        false
    }

    fn build(&self, app: &mut App) {
        if !crate::plugin::first_time::<Self>(app, "build") {
            return;
        }
        app.init_resource::<DecodedVoiceClips>().add_systems(
            PreUpdate,
            (
                forget_changed_clips.run_if(resource_exists::<Messages<AssetEvent<AudioSource>>>),
                ingest_bevy_audio_voices,
            )
                .chain()
                .in_set(super::VoiceSourceSystems),
        );
    }
}

/// The played segment of a `clip_len`-second clip under `settings`:
/// (start, length) in seconds.
fn segment(settings: &PlaybackSettings, clip_len: f64) -> (f64, f64) {
    let start = settings
        .start_position
        .map_or(0.0, |d| d.as_secs_f64())
        .clamp(0.0, clip_len);
    let len = settings
        .duration
        .map_or(f64::INFINITY, |d| d.as_secs_f64())
        .min(clip_len - start)
        .max(0.0);
    (start, len)
}
