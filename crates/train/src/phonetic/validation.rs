//! Validating the labeler against the FACEGOOD animator (`validate_on_facegood`).

use super::*;

// ---------------------------------------------------------------------------
// Validation on FACEGOOD
// ---------------------------------------------------------------------------

/// The mouth channels compared in [`validate_on_facegood`] (where the
/// animator's retargeted curve moves on the clip).
pub const VALIDATION_CHANNELS: [Blendshape; 15] = [
    Blendshape::JawOpen,
    Blendshape::MouthClose,
    Blendshape::MouthFunnel,
    Blendshape::MouthPucker,
    Blendshape::MouthSmileLeft,
    Blendshape::MouthSmileRight,
    Blendshape::MouthStretchLeft,
    Blendshape::MouthStretchRight,
    Blendshape::MouthPressLeft,
    Blendshape::MouthPressRight,
    Blendshape::MouthLowerDownLeft,
    Blendshape::MouthLowerDownRight,
    Blendshape::MouthUpperUpLeft,
    Blendshape::MouthUpperUpRight,
    Blendshape::MouthRollLower,
];

/// A channel counts as animated on a clip when the animator's standard
/// deviation exceeds this.
pub const ACTIVE_STD: f32 = 0.01;

/// Errors of [`validate_on_facegood`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Loading a clip or the retarget map failed.
    #[error(transparent)]
    Facegood(#[from] FacegoodError),
    /// The default retarget map does not parse.
    #[error(transparent)]
    Retarget(#[from] talking_head_core::rig::retarget::RetargetError),
    /// PocketSphinx failed.
    #[error(transparent)]
    Sphinx(#[from] SphinxError),
    /// A phone cache file could not be read or written.
    #[error("phone cache {}: {message}", .path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The labeler against the animator on one FACEGOOD clip (30 fps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipValidation {
    /// Clip id (e.g. `1114_2_04`).
    pub id: String,
    /// Number of frames compared.
    pub frames: usize,
    /// Pearson r of the labeler's `jawOpen` with the animator's (retargeted).
    pub jaw_r: f32,
    /// The loudness baseline: Pearson r of the frame log-RMS
    /// ([`facegood::frame_log_rms`]) with the animator's `jawOpen`.
    pub loudness_r: f32,
    /// Pearson r per animated [`VALIDATION_CHANNELS`] channel (ARKit name →
    /// r); channels the animator does not move on this clip are left out.
    pub channel_r: BTreeMap<String, f32>,
    /// Mean of `channel_r`.
    pub mean_channel_r: f32,
    /// Number of phones used, and how many were silence.
    pub phones: usize,
    /// Silence phones among them.
    pub silence_phones: usize,
}

/// Phones of a clip from PocketSphinx allphone, cached as JSON in
/// `cache_dir/<id>.phones.json` when a cache directory is given (the
/// phones depend only on the audio, so tuning the labeler need not rerun
/// the recogniser).
///
/// # Errors
/// [`ValidationError::Sphinx`] from [`sphinx::allphone`];
/// [`ValidationError::Cache`] if the cache cannot be read or written.
pub fn cached_allphone(
    audio_16k: &[f32],
    id: &str,
    cache_dir: Option<&Path>,
) -> Result<Vec<Phone>, ValidationError> {
    let Some(dir) = cache_dir else {
        return Ok(sphinx::allphone(audio_16k)?);
    };
    let path = dir.join(format!("{id}.phones.json"));
    let cache_err = |message: String| ValidationError::Cache {
        path: path.clone(),
        message,
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| cache_err(e.to_string()));
    }
    let phones = sphinx::allphone(audio_16k)?;
    std::fs::create_dir_all(dir).map_err(|e| cache_err(e.to_string()))?;
    let json = serde_json::to_string(&phones).map_err(|e| cache_err(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| cache_err(e.to_string()))?;
    Ok(phones)
}

/// Compares the labeler with the FACEGOOD animator on clips `ids` of the
/// FACEGOOD directory `dir` (`shared/data/facegood`): loads each clip with
/// [`facegood::load_clip`] and [`facegood::default_retarget_map`], gets
/// phones with [`cached_allphone`] (FACEGOOD is Mandarin: allphone with
/// English phones plus the acoustics is the cross-language case), labels
/// at 30 fps and reports per clip the `jawOpen` correlation, the loudness
/// baseline and the per-channel correlations.
///
/// # Errors
/// See [`ValidationError`].
pub fn validate_on_facegood(
    dir: &Path,
    labeler: &PhoneticLabeler,
    ids: &[&str],
    phone_cache: Option<&Path>,
) -> Result<Vec<ClipValidation>, ValidationError> {
    let map = facegood::default_retarget_map()?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let clip = facegood::load_clip(dir, id, &map)?;
        let phones = cached_allphone(&clip.audio_16k, id, phone_cache)?;
        out.push(compare_clip(labeler, &clip, &phones));
    }
    Ok(out)
}

/// The comparison of [`validate_on_facegood`] for one loaded clip and its
/// phones (exposed for tuning loops that keep clips in memory).
pub fn compare_clip(
    labeler: &PhoneticLabeler,
    clip: &facegood::FacegoodClip,
    phones: &[Phone],
) -> ClipValidation {
    let fps = facegood::FACEGOOD_FPS;
    let n = clip.frames();
    let labels = labeler.label(&clip.audio_16k, phones, n, fps);
    let column = |frames: &[ArkitWeights], b: Blendshape| -> Vec<f32> {
        frames.iter().map(|f| f[b.index()]).collect()
    };
    let jaw_ref = column(&clip.arkit, Blendshape::JawOpen);
    let jaw_r = pearson(&column(&labels, Blendshape::JawOpen), &jaw_ref);
    let loudness_r = pearson(&frame_log_rms(&clip.audio_16k, fps, n), &jaw_ref);
    let mut channel_r = BTreeMap::new();
    for b in VALIDATION_CHANNELS {
        let reference = column(&clip.arkit, b);
        if std_dev(&reference) > ACTIVE_STD {
            channel_r.insert(
                b.name().to_owned(),
                pearson(&column(&labels, b), &reference),
            );
        }
    }
    let mean_channel_r = if channel_r.is_empty() {
        0.0
    } else {
        channel_r.values().sum::<f32>() / channel_r.len() as f32
    };
    ClipValidation {
        id: clip.id.clone(),
        frames: n,
        jaw_r,
        loudness_r,
        channel_r,
        mean_channel_r,
        phones: phones.len(),
        silence_phones: phones.iter().filter(|p| p.is_silence()).count(),
    }
}

use talking_head_core::stats::std_dev_f32 as std_dev;
