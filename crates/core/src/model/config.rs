//! Model configuration (serde), stored in every checkpoint's metadata.

use serde::{Deserialize, Serialize};

use crate::features::MelConfig;
use crate::model::ModelError;

/// Number of emotion weights the model is conditioned on, in [`EMOTIONS`] order.
pub const EMOTION_COUNT: usize = 7;

/// The seven emotion names, in the order of an emotion vector.
pub const EMOTIONS: [&str; EMOTION_COUNT] = [
    "neutral",
    "happy",
    "sad",
    "angry",
    "surprised",
    "fearful",
    "disgusted",
];

/// Which quantity the denoiser predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The clean frame `x0` (default).
    #[default]
    X0,
    /// The velocity `v = sqrt(a) eps - sqrt(1 - a) x0` (Salimans & Ho 2022).
    V,
}

/// Diffusion settings shared by the teacher and the student.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffusionConfig {
    /// What the network predicts.
    pub prediction: Prediction,
    /// Offset `s` of the cosine schedule `abar(t) = cos^2((t + s) / (1 + s) * pi / 2)`
    /// (Nichol & Dhariwal 2021), with `t` in [0, 1].
    pub cosine_offset: f64,
    /// Default number of DDIM steps of the teacher sampler.
    pub teacher_steps: usize,
    /// Default classifier-free guidance scale on emotion for the teacher
    /// (1 = no guidance).
    pub guidance_scale: f32,
    /// Scale of the initial noise at sampling time (1 = the trained prior).
    pub noise_scale: f32,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        Self {
            prediction: Prediction::X0,
            cosine_offset: 0.008,
            teacher_steps: 8,
            guidance_scale: 1.5,
            noise_scale: 1.0,
        }
    }
}

/// Limit of `fps` (frames per second).
pub const MAX_FPS: usize = 1000;
/// Limit of `d_model` and `time_embed_dim`.
pub const MAX_WIDTH: usize = 2048;
/// Limit of `n_heads`.
pub const MAX_HEADS: usize = 64;
/// Limit of `n_layers` and `denoiser_blocks`.
pub const MAX_LAYERS: usize = 32;
/// Limit of `d_ff` and `denoiser_hidden`.
pub const MAX_FF: usize = 8192;
/// Limit of `conv_kernel` (frames).
pub const MAX_CONV_KERNEL: usize = 64;
/// Limit of `context_frames` (KV cache length).
pub const MAX_CONTEXT_FRAMES: usize = 4096;
/// Limit of `lookahead_frames`.
pub const MAX_LOOKAHEAD_FRAMES: usize = 100;
/// Limit of `history_frames`.
pub const MAX_HISTORY_FRAMES: usize = 256;
/// Limit of the number of styles.
pub const MAX_STYLES: usize = 256;
/// Limit of a style name, in bytes.
pub const MAX_STYLE_NAME: usize = 128;
/// Limit of `mel.n_mels`.
pub const MAX_MELS: usize = 256;
/// Limit of `mel.n_fft`.
pub const MAX_N_FFT: usize = 8192;
/// Limit of `diffusion.teacher_steps`.
pub const MAX_TEACHER_STEPS: usize = 1000;

/// Full model configuration. Defaults are the shipped model size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Log-mel front-end (16 kHz, 80 bins, 25 ms window, 10 ms hop).
    pub mel: MelConfig,
    /// Animation frames per second. `mel.sample_rate / fps` must be an
    /// integer multiple of `mel.hop_length` (50 fps = 320 samples = 2 hops).
    pub fps: u32,
    /// Width of the online encoder.
    pub d_model: usize,
    /// Attention heads of the encoder (must divide `d_model`, even head size).
    pub n_heads: usize,
    /// Key/value heads of the encoder's attention: grouped-query attention
    /// (GQA, Ainslie et al. 2023, "GQA: Training Generalized Multi-Query
    /// Transformer Models from Multi-Head Checkpoints"), where each group of
    /// `n_heads / kv_heads` query heads shares one key/value head, so the
    /// streaming KV cache holds `kv_heads / n_heads` of what multi-head
    /// attention needs. Must divide `n_heads`. `None` = `n_heads`
    /// (multi-head attention; every checkpoint written before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<usize>,
    /// Transformer layers of the encoder.
    pub n_layers: usize,
    /// Hidden width of the encoder's feed-forward blocks.
    pub d_ff: usize,
    /// Kernel (in animation frames) of the causal convolution in front of the
    /// transformer.
    pub conv_kernel: usize,
    /// Attention context in animation frames (sliding window / KV cache size).
    pub context_frames: usize,
    /// Look-ahead `L` in animation frames, implemented as an output delay:
    /// frame `t` is produced once audio up to frame `t + L` is in.
    pub lookahead_frames: usize,
    /// Frames of the model's own past output given to the denoiser
    /// (autoregressive motion history, StreamingTalker).
    pub history_frames: usize,
    /// Hidden width of the denoiser MLP.
    pub denoiser_hidden: usize,
    /// Residual blocks of the denoiser.
    pub denoiser_blocks: usize,
    /// Size of the sinusoidal diffusion-time embedding.
    pub time_embed_dim: usize,
    /// Style names; a style id is an index into this list.
    pub styles: Vec<String>,
    /// Diffusion settings.
    pub diffusion: DiffusionConfig,
    /// Frames whose audio (this frame, one before, and the look-ahead) stays
    /// below this RMS level in dBFS get the emotion's rest face on their
    /// lower-face channels ([`super::emotion_rest_face`]): a closed, neutral
    /// mouth for neutral; the closed-mouth smile of happy; surprise's slight
    /// jaw drop (FACS AU26, jawOpen 0.12 at intensity 1).
    /// `None` disables the gate.
    pub silence_gate_dbfs: Option<f32>,
    /// Per-style output calibration applied to the frames a session emits
    /// (not to the motion history the decoder is conditioned on); empty =
    /// none. Written by `talking-head calibrate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<OutputCalibration>,
}

/// One style's output calibration: for some ARKit channels, a monotone
/// piecewise-linear map applied to every frame a session emits.
///
/// `talking-head calibrate` fits it by **quantile mapping** (the model's
/// quantiles on training recordings onto the FACEGOOD animator's, as in
/// the bias correction of model output, e.g. Gudmundsson et al. 2012):
/// the output then has the animator's distribution (range, share of closed
/// frames, peak opening) while its ordering in time, and so its rank
/// correlation with the truth, is unchanged. It undoes the regression to
/// the mean of a decoder fitted by mean-squared error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputCalibration {
    /// The style it applies to (a name in [`ModelConfig::styles`]).
    pub style: String,
    /// The calibrated channels; the others pass through.
    pub channels: Vec<ChannelMap>,
}

/// A monotone piecewise-linear map of one channel's weight: `from[k] ↦
/// to[k]`, linear in between, `to[0]` below `from[0]`, and slope 1 above
/// the last knot; results clamped to `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMap {
    /// ARKit blendshape name (`jawOpen`).
    pub channel: String,
    /// Knots on the model's output, strictly increasing, in `[0, 1]`.
    pub from: Vec<f32>,
    /// Their images, non-decreasing, in `[0, 1]`; as many as `from`.
    pub to: Vec<f32>,
}

/// Most knots a [`ChannelMap`] may hold.
pub const MAX_CALIBRATION_KNOTS: usize = 257;

impl ChannelMap {
    /// The map at `w`.
    pub fn map(&self, w: f32) -> f32 {
        let (f, t) = (&self.from, &self.to);
        let Some(&last) = f.last() else {
            return w;
        };
        let v = if w <= f[0] {
            t[0]
        } else if w >= last {
            t[t.len() - 1] + (w - last)
        } else {
            // First knot above w (exists: w < last).
            let k = f.partition_point(|&x| x <= w);
            let a = (w - f[k - 1]) / (f[k] - f[k - 1]);
            t[k - 1] + a * (t[k] - t[k - 1])
        };
        v.clamp(0.0, 1.0)
    }

    fn validate(&self) -> Result<usize, String> {
        let c = crate::rig::arkit::Blendshape::from_name(&self.channel)
            .map(|b| b.index())
            .ok_or_else(|| format!("calibration of unknown channel `{}`", self.channel))?;
        let n = self.from.len();
        if !(2..=MAX_CALIBRATION_KNOTS).contains(&n) || self.to.len() != n {
            return Err(format!(
                "calibration of `{}` needs 2 to {MAX_CALIBRATION_KNOTS} knots in `from` and as many in `to`",
                self.channel
            ));
        }
        let unit = |v: &f32| v.is_finite() && (0.0..=1.0).contains(v);
        if !self.from.iter().chain(&self.to).all(unit)
            || self.from.windows(2).any(|w| w[1] <= w[0])
            || self.to.windows(2).any(|w| w[1] < w[0])
        {
            return Err(format!(
                "calibration of `{}`: knots must lie in [0, 1], `from` strictly increasing and `to` non-decreasing",
                self.channel
            ));
        }
        Ok(c)
    }
}

impl OutputCalibration {
    /// The identity map for `style` (no channel calibrated).
    pub fn identity(style: impl Into<String>) -> Self {
        Self {
            style: style.into(),
            channels: Vec::new(),
        }
    }

    /// Checks the style and every channel map; returns the channels'
    /// indices in canonical ARKit order.
    pub(crate) fn validate(&self, styles: &[String]) -> Result<Vec<usize>, String> {
        if !styles.contains(&self.style) {
            return Err(format!("calibration for unknown style `{}`", self.style));
        }
        let idx = self
            .channels
            .iter()
            .map(ChannelMap::validate)
            .collect::<Result<Vec<_>, _>>()?;
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != idx.len() {
            return Err(format!(
                "calibration of `{}` maps a channel twice",
                self.style
            ));
        }
        Ok(idx)
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            mel: MelConfig::default(),
            fps: 50,
            d_model: 128,
            n_heads: 4,
            kv_heads: Some(1),
            n_layers: 2,
            d_ff: 512,
            conv_kernel: 3,
            context_frames: 128,
            lookahead_frames: 2,
            history_frames: 8,
            denoiser_hidden: 256,
            denoiser_blocks: 2,
            time_embed_dim: 32,
            styles: vec!["phonetic".into(), "facegood".into()],
            diffusion: DiffusionConfig::default(),
            silence_gate_dbfs: Some(-70.0),
            calibration: Vec::new(),
        }
    }
}

impl ModelConfig {
    /// A tiny configuration (d_model 32, one layer, 16-frame context) for
    /// tests and examples that need a model quickly; not for animation.
    pub fn tiny() -> Self {
        Self {
            d_model: 32,
            n_heads: 2,
            kv_heads: None,
            n_layers: 1,
            d_ff: 64,
            context_frames: 16,
            history_frames: 4,
            denoiser_hidden: 32,
            denoiser_blocks: 1,
            ..Self::default()
        }
    }

    /// Key/value heads of the encoder's attention ([`ModelConfig::kv_heads`],
    /// `n_heads` when unset).
    pub fn kv_heads(&self) -> usize {
        self.kv_heads.unwrap_or(self.n_heads)
    }

    /// Audio samples (at `mel.sample_rate`) per animation frame.
    pub fn samples_per_frame(&self) -> usize {
        (self.mel.sample_rate / self.fps.max(1)) as usize
    }

    /// Mel frames stacked into one encoder input frame.
    pub fn mels_per_frame(&self) -> usize {
        self.samples_per_frame() / self.mel.hop_length.max(1)
    }

    /// Width of one encoder input frame (`mels_per_frame * n_mels`).
    pub fn input_dim(&self) -> usize {
        self.mels_per_frame() * self.mel.n_mels
    }

    /// Algorithmic latency in seconds: look-ahead plus one frame.
    pub fn algorithmic_latency_secs(&self) -> f64 {
        (self.lookahead_frames + 1) as f64 / self.fps as f64
    }

    /// Index of a style by name (case-insensitive).
    pub fn style_id(&self, name: &str) -> Result<usize, ModelError> {
        self.styles
            .iter()
            .position(|s| s.eq_ignore_ascii_case(name))
            .ok_or_else(|| ModelError::UnknownStyle {
                name: name.to_string(),
                available: self.styles.clone(),
            })
    }

    /// Checks every constraint; a checkpoint with a bad config is refused.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        self.mel
            .validate()
            .map_err(|e| ModelError::InvalidConfig(format!("mel: {e}")))?;
        if self.fps == 0 || !self.mel.sample_rate.is_multiple_of(self.fps) {
            return bad(format!(
                "fps {} must divide the sample rate {}",
                self.fps, self.mel.sample_rate
            ));
        }
        if !self.samples_per_frame().is_multiple_of(self.mel.hop_length) {
            return bad(format!(
                "samples per frame {} must be a multiple of the hop length {}",
                self.samples_per_frame(),
                self.mel.hop_length
            ));
        }
        if self.n_heads == 0
            || !self.d_model.is_multiple_of(self.n_heads)
            || !(self.d_model / self.n_heads).is_multiple_of(2)
        {
            return bad(format!(
                "d_model {} must split into {} heads of even size",
                self.d_model, self.n_heads
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.n_heads.is_multiple_of(kv) {
            return bad(format!(
                "kv_heads {kv} must divide n_heads {}",
                self.n_heads
            ));
        }
        // Hard limits, checked before anything is allocated: a checkpoint's
        // config comes from a file the game did not make (see
        // `TalkingHeadModel::check_size` for the total parameter bound).
        for (name, v, max) in [
            ("fps", self.fps as usize, MAX_FPS),
            ("d_model", self.d_model, MAX_WIDTH),
            ("n_heads", self.n_heads, MAX_HEADS),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("d_ff", self.d_ff, MAX_FF),
            ("conv_kernel", self.conv_kernel, MAX_CONV_KERNEL),
            ("context_frames", self.context_frames, MAX_CONTEXT_FRAMES),
            (
                "lookahead_frames",
                self.lookahead_frames,
                MAX_LOOKAHEAD_FRAMES,
            ),
            ("history_frames", self.history_frames, MAX_HISTORY_FRAMES),
            ("denoiser_hidden", self.denoiser_hidden, MAX_FF),
            ("denoiser_blocks", self.denoiser_blocks, MAX_LAYERS),
            ("time_embed_dim", self.time_embed_dim, MAX_WIDTH),
            ("styles", self.styles.len(), MAX_STYLES),
            ("mel.n_mels", self.mel.n_mels, MAX_MELS),
            ("mel.n_fft", self.mel.n_fft, MAX_N_FFT),
            (
                "diffusion.teacher_steps",
                self.diffusion.teacher_steps,
                MAX_TEACHER_STEPS,
            ),
        ] {
            if v > max {
                return bad(format!("{name} is {v}; the limit is {max}"));
            }
        }
        if let Some(s) = self.styles.iter().find(|s| s.len() > MAX_STYLE_NAME) {
            return bad(format!(
                "style name of {} bytes; the limit is {MAX_STYLE_NAME}",
                s.len()
            ));
        }
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
            ("conv_kernel", self.conv_kernel),
            ("context_frames", self.context_frames),
            ("history_frames", self.history_frames),
            ("denoiser_hidden", self.denoiser_hidden),
            ("time_embed_dim", self.time_embed_dim),
        ] {
            if v == 0 {
                return bad(format!("{name} must be > 0"));
            }
        }
        if !self.time_embed_dim.is_multiple_of(2) {
            return bad("time_embed_dim must be even".into());
        }
        if self.styles.is_empty() {
            return bad("at least one style is required".into());
        }
        if self.diffusion.teacher_steps == 0 {
            return bad("diffusion.teacher_steps must be > 0".into());
        }
        if !(self.diffusion.guidance_scale.is_finite() && self.diffusion.noise_scale.is_finite()) {
            return bad("diffusion scales must be finite".into());
        }
        if let Some(g) = self
            .silence_gate_dbfs
            .filter(|g| !(g.is_finite() && *g <= 0.0))
        {
            return bad(format!(
                "silence_gate_dbfs is {g}; it must be a finite level <= 0 dBFS (or null for no gate)"
            ));
        }
        for (i, c) in self.calibration.iter().enumerate() {
            c.validate(&self.styles)
                .map_err(ModelError::InvalidConfig)?;
            if self.calibration[..i].iter().any(|o| o.style == c.style) {
                return bad(format!("style `{}` is calibrated twice", c.style));
            }
        }
        Ok(())
    }
}
