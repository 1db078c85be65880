//! Teacher training (`talking-head train`): the online encoder and the
//! diffusion denoiser trained jointly as a conditional diffusion model on the
//! corpus, plus an auxiliary phone-classification loss on the encoder.
//!
//! Recipe (per step): random windows of `window` frames; the encoder runs
//! over the window's normalised log-mel stacks; with look-ahead `L` the state
//! at frame `t` predicts label frame `t - L`. The denoiser gets the label
//! frame noised to a random diffusion time `tau ~ U(0, 1)` (cosine schedule),
//! the encoder state, the `H` previous label frames (teacher forcing) with
//! Gaussian noise of a random scale so the streaming rollout does not drift
//! (StreamingTalker), the emotion vector — dropped to the "unconditional"
//! flag with probability `emotion_dropout`, which classifier-free guidance
//! needs — and the style embedding. Loss: x0 MSE in normalised motion space
//! (mouth channels weighted `mouth_weight`, single channels re-weighted by
//! `channel_weights`) + `phone_weight` × cross-entropy
//! of a linear phone classifier on the encoder state (targets: the corpus
//! phone timings of frame `t - L`), which pushes the encoder towards
//! speaker-independent phonetic features as the seeds get from wav2vec2.
//! AdamW with linear warm-up and cosine decay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::dataset::{BatchOptions, ClipData, EmotionAugment, PHONE_CLASSES, make_batch_with};
use crate::optim::{AdamWParams, NamedAdamW};
use talking_head_core::features::FeatureNorm;
use talking_head_core::model::denoiser::{Denoiser, style_input};
use talking_head_core::model::encoder::OnlineEncoder;
use talking_head_core::model::{
    ModelConfig, ModelError, MotionNorm, Provenance, TalkingHeadModel, alpha_bar, save_checkpoint,
};
use talking_head_core::rig::{BLENDSHAPE_COUNT, Blendshape};

/// Label jawOpen below which an animator frame counts as closed for
/// [`TrainConfig::closure_weight_animator`]: issue 10's in-speech closure
/// level (map-jaw < 0.05, the FACEGOOD retarget of jawOpen).
pub const CLOSURE_LABEL: f32 = 0.05;

/// Trainer settings (serde; stored in the checkpoint's provenance).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Windows per batch.
    pub batch: usize,
    /// Frames per window (the encoder sees this much context).
    pub window: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Probability of replacing the emotion by the unconditional flag.
    pub emotion_dropout: f64,
    /// Maximum std of the noise added to the motion history (normalised units).
    pub history_noise: f32,
    /// Weight of the auxiliary phone loss.
    pub phone_weight: f64,
    /// Loss weight of the mouth channels relative to the rest.
    pub mouth_weight: f32,
    /// Per-channel loss weights that replace `mouth_weight`/`1` for the
    /// named ARKit channels (see [`crate::dataset::loss_channel_weights`]),
    /// e.g. `{"jawOpen": 8}`; empty: none.
    #[serde(default)]
    pub channel_weights: BTreeMap<String, f32>,
    /// Seed.
    pub seed: u64,
    /// Save a checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Share of every batch's windows drawn from clips with real animator
    /// labels (FACEGOOD), whatever their share of the corpus hours.
    pub animator_fraction: f64,
    /// Emotion augmentation of every window (see
    /// [`crate::dataset::EmotionAugment`]); `null`: clips' own emotion.
    pub emotion_augment: Option<EmotionAugment>,
    /// Weight of the velocity loss: the frame-to-frame change of the
    /// predicted x0 against the labels' (keeps dynamics, not the mean).
    pub velocity_weight: f32,
    /// Weight of the dynamic-range loss: per window and channel, the squared
    /// difference between the standard deviation over time of the predicted
    /// x0 and of the labels (channel-weighted as the x0 loss). Counters the
    /// regression to the mean that leaves the face at ~2/3 of the animator's
    /// range (issue 10); `0` disables it.
    #[serde(default)]
    pub std_weight: f32,
    /// Extra weight of the dynamic-range loss on FACEGOOD animator windows
    /// only (added to `std_weight` there): sharpens the `facegood` style,
    /// whose truth is the animator's range, without pulling the phonetic
    /// style's rounding (which `std_weight` on every window costs, model
    /// card row v31). `0` (the default) disables it.
    #[serde(default)]
    pub std_weight_animator: f32,
    /// ARKit channels the dynamic-range loss covers (e.g. `["jawOpen"]`,
    /// the channel of the dynamic-range and closure targets); empty (the
    /// default): every channel, by its loss weight. An unknown name is
    /// `ModelError::InvalidConfig`.
    #[serde(default)]
    pub std_channels: Vec<String>,
    /// Weight of the closure loss on FACEGOOD animator windows: at frames
    /// whose label jawOpen is below [`CLOSURE_LABEL`] (the animator's mouth
    /// closed, as issue 10's in-speech closures define it), the squared
    /// excess of the predicted x0's jawOpen above that level (normalised
    /// units), averaged over those frames. A one-sided term: it pulls the
    /// troughs between syllables down without touching the peaks, which the
    /// dynamic-range loss widens. `0` (the default) disables it.
    #[serde(default)]
    pub closure_weight_animator: f32,
    /// Extra loss-weight factors of named ARKit channels on FACEGOOD
    /// animator windows only (e.g. `{"mouthFunnel": 10, "mouthPucker": 10}`):
    /// the channel's x0, velocity and dynamic-range terms are multiplied by
    /// the factor there, on top of `mouth_weight` / `channel_weights`: two
    /// lip channels on a third of the windows barely steer the `facegood`
    /// style's lips otherwise (model card, session 15; the factors also pull
    /// the phonetic style, whose weights it shares). Empty (the default):
    /// none. An unknown name or a factor that is negative or not finite is
    /// `ModelError::InvalidConfig`.
    #[serde(default)]
    pub animator_channel_weights: BTreeMap<String, f32>,
    /// Vocal tract length perturbation of the training windows: each
    /// window's log-mel frequency axis warped by a factor drawn from
    /// `[1 − r, 1 + r]` (Jaitly & Hinton 2013; 0.1 is theirs; capped at
    /// 0.5), so the encoder sees more vocal tracts than the corpus has
    /// voices. `0` (the default) disables it.
    #[serde(default)]
    pub vtlp_range: f64,
    /// Train only on the training clips whose label kind
    /// ([`ClipMeta::labels`](crate::manifest::ClipMeta::labels): `animator`,
    /// `phonetic-exact`, `phonetic-aligned`, `phonetic-allphone`) is listed;
    /// empty (the default) keeps every clip. Validation is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train_labels: Vec<String>,
    /// Label kinds (as [`TrainConfig::train_labels`]) whose training clips
    /// are *weak*: they teach only `jawOpen` (in the phonetic labels mostly
    /// acoustic: loudness and a first-formant proxy) and the channels outside
    /// the lower face (emotion offsets); their other mouth channels and their
    /// phone loss are masked, so noisy phones (PocketSphinx allphone, ~60 %
    /// phone accuracy) add voices and languages without teaching wrong lip
    /// shapes. Validation batches are not masked. Empty (the default): none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weak_labels: Vec<String>,
    /// Share of every training batch's windows drawn from the
    /// `weak_labels` clips (after the animator share), e.g. `0.25`; `null`
    /// (the default): they are drawn with the other clips, by length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_fraction: Option<f64>,
    /// Probability that a training window is a noise floor (stationary
    /// noise with no speech, white to brown at −75…−35 dBFS, sometimes mains
    /// hum; [`crate::noise::noise_floor_audio`]) labelled with the neutral
    /// face and the `SIL` phone, so the model keeps a rest face on a
    /// microphone's noise floor. `0` (the default) disables it. Validation
    /// batches never have them.
    #[serde(default)]
    pub noise_windows: f64,
    /// Clip the global gradient norm to this value (0: no clipping).
    pub clip_norm: f64,
    /// Relabel phonetic clips at load time with these labeler settings
    /// (`null`: the labels stored in the corpus).
    pub relabel: Option<crate::phonetic::PhoneticLabelerConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 20_000,
            batch: 16,
            window: 160,
            lr: 1e-3,
            warmup: 500,
            min_lr: 2e-5,
            weight_decay: 0.01,
            emotion_dropout: 0.15,
            history_noise: 0.3,
            phone_weight: 0.3,
            mouth_weight: 2.0,
            channel_weights: BTreeMap::new(),
            seed: 0,
            checkpoint_every: 500,
            animator_fraction: 0.3,
            emotion_augment: Some(EmotionAugment::default()),
            velocity_weight: 0.5,
            std_weight: 0.0,
            std_weight_animator: 0.0,
            std_channels: Vec::new(),
            closure_weight_animator: 0.0,
            animator_channel_weights: BTreeMap::new(),
            vtlp_range: 0.0,
            train_labels: Vec::new(),
            weak_labels: Vec::new(),
            weak_fraction: None,
            noise_windows: 0.0,
            clip_norm: 1.0,
            relabel: None,
        }
    }
}

/// Loss figures of one step or of a validation pass.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Losses {
    /// Weighted x0 MSE (normalised motion space).
    pub diffusion: f32,
    /// Phone cross-entropy.
    pub phone: f32,
    /// Phone classification accuracy on frames with a known phone.
    pub phone_accuracy: f32,
    /// Velocity loss (normalised units).
    #[serde(default)]
    pub velocity: f32,
    /// Dynamic-range (std matching) loss, weighted per window by
    /// `std_weight` (+ `std_weight_animator` on animator windows).
    #[serde(default)]
    pub dynamics: f32,
    /// Closure loss (normalised units), weighted by
    /// `closure_weight_animator`; 0 when off or no animator closure frame.
    #[serde(default)]
    pub closure: f32,
    /// Global gradient norm before clipping (training steps only).
    #[serde(default)]
    pub grad_norm: f32,
}

impl TrainConfig {
    /// The trainer settings a checkpoint was trained with, read back from
    /// its provenance (written by [`Trainer::save`] as `train config {json}`
    /// in the description; a distilled student quotes its teacher's);
    /// `None` for files without them.
    pub fn from_provenance(p: &Provenance) -> Option<Self> {
        const KEY: &str = "train config ";
        let i = p.description.rfind(KEY)?;
        serde_json::Deserializer::from_str(&p.description[i + KEY.len()..])
            .into_iter::<Self>()
            .next()?
            .ok()
    }
}

/// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
pub fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    if step < cfg.warmup {
        return cfg.lr * (step + 1) as f64 / cfg.warmup as f64;
    }
    let p = ((step - cfg.warmup) as f64 / (cfg.steps.saturating_sub(cfg.warmup)).max(1) as f64)
        .min(1.0);
    cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
}

/// The networks being trained.
pub struct Trainer {
    /// Model config.
    pub model_cfg: ModelConfig,
    /// Trainer config.
    pub cfg: TrainConfig,
    varmap: VarMap,
    encoder: OnlineEncoder,
    teacher: Denoiser,
    phone_head: Linear,
    feature_norm: FeatureNorm,
    motion_norm: MotionNorm,
    /// Steps done (restored on resume).
    pub step: usize,
    rng: StdRng,
    device: Device,
    /// Optimiser state to restore when training starts (resume).
    resume_optimizer: Option<PathBuf>,
    /// [`crate::dataset::facegood_recordings_note`] of the clips trained
    /// on, for the provenance.
    data_note: String,
    /// `[1, 52]` normalised loss weight per channel
    /// ([`crate::dataset::loss_channel_weights`]), built once.
    loss_weights: Tensor,
    /// `[1, 52]` 0/1 mask of the dynamic-range loss's channels
    /// (`TrainConfig::std_channels`); `None`: every channel.
    std_mask: Option<Tensor>,
    /// Per-channel factors on animator windows
    /// (`TrainConfig::animator_channel_weights`); `None` when empty.
    animator_factors: Option<Vec<f32>>,
}

/// The 52 factors of [`TrainConfig::animator_channel_weights`] (1 for the
/// channels not named); `None` when the map is empty.
fn animator_factors(map: &BTreeMap<String, f32>) -> Result<Option<Vec<f32>>, ModelError> {
    if map.is_empty() {
        return Ok(None);
    }
    let mut f = vec![1f32; BLENDSHAPE_COUNT];
    crate::dataset::set_named_channels(
        &mut f,
        map,
        "animator_channel_weights",
        "factor",
        "finite and >= 0",
        |w| w.is_finite() && w >= 0.0,
    )?;
    Ok(Some(f))
}

/// The `[1, 52]` 0/1 channel mask of `names` (ARKit names); `None` when empty.
fn channel_mask(names: &[String]) -> Result<Option<Tensor>, ModelError> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut m = vec![0f32; BLENDSHAPE_COUNT];
    for name in names {
        let b = Blendshape::from_name(name).ok_or_else(|| {
            ModelError::InvalidConfig(format!("std_channels: unknown ARKit blendshape `{name}`"))
        })?;
        m[b.index()] = 1.0;
    }
    Ok(Some(Tensor::from_vec(
        m,
        (1, BLENDSHAPE_COUNT),
        &Device::Cpu,
    )?))
}

/// The optimiser-state file kept next to a checkpoint: `x.safetensors` →
/// `x.optim.safetensors`.
pub fn optimizer_path(checkpoint: &Path) -> PathBuf {
    checkpoint.with_extension("optim.safetensors")
}

/// The random stream of training step `step` under `seed`: every step
/// derives its own, so a resumed run draws exactly the batches, noise and
/// dropout an uninterrupted run would have.
pub fn step_rng(seed: u64, step: usize) -> StdRng {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

fn build(
    varmap: &VarMap,
    cfg: &ModelConfig,
) -> Result<(OnlineEncoder, Denoiser, Linear), ModelError> {
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
    let encoder = OnlineEncoder::new(cfg, vb.pp("encoder"))?;
    let teacher = Denoiser::new(cfg, vb.pp("teacher"))?;
    let phone_head = candle_nn::linear(cfg.d_model, PHONE_CLASSES.len(), vb.pp("aux.phone"))?;
    Ok((encoder, teacher, phone_head))
}

fn insert_vars(varmap: &VarMap, tensors: &BTreeMap<String, Tensor>) -> Result<(), ModelError> {
    let mut data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("variable map lock poisoned".into()))?;
    for (k, t) in tensors {
        data.insert(k.clone(), Var::from_tensor(t)?);
    }
    Ok(())
}

/// A trainer checkpoint's model, its trainable tensors (encoder, teacher and
/// the auxiliary phone head) and the step recorded in its provenance.
fn load_trainable(
    path: &Path,
) -> Result<(TalkingHeadModel, BTreeMap<String, Tensor>, usize), ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let model = TalkingHeadModel::load_from_bytes(&bytes, path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut tensors: BTreeMap<String, Tensor> = model
        .tensors()
        .iter()
        .filter(|(k, _)| !k.starts_with("student."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for name in ["aux.phone.weight", "aux.phone.bias"] {
        let v = st.tensor(name).map_err(|_| ModelError::MissingTensor {
            path: path.to_path_buf(),
            name: name.into(),
        })?;
        let data: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name.into(),
            Tensor::from_vec(data, v.shape(), &Device::Cpu)?,
        );
    }
    let step = model
        .provenance()
        .description
        .split("step=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((model, tensors, step))
}

/// An attention `qkv` projection's weight `[d + 2·kv0·hd, d]` (or bias
/// `[d + 2·kv0·hd]`) with `kv0` key/value heads, as `kv1` heads: the query
/// rows kept, each group of `kv0 / kv1` key (and value) heads replaced by
/// their mean.
fn pool_kv_heads(
    t: &Tensor,
    d: usize,
    hd: usize,
    kv0: usize,
    kv1: usize,
) -> Result<Tensor, ModelError> {
    let r = kv0 / kv1;
    let mut parts = vec![t.narrow(0, 0, d)?];
    for base in [d, d + kv0 * hd] {
        for g in 0..kv1 {
            let heads = (0..r)
                .map(|j| t.narrow(0, base + (g * r + j) * hd, hd))
                .collect::<candle_core::Result<Vec<_>>>()?;
            parts.push((Tensor::stack(&heads, 0)?.sum(0)? / r as f64)?);
        }
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Block expansion (Wu et al. 2024, "LLaMA Pro: Progressive LLaMA with
/// Block Expansion"): the checkpoint's `n0` encoder layers spread over the
/// `cfg.n_layers` of `cfg`, layer `i` becoming layer `i · k` (`k =
/// n_layers / n0`), each followed by `k − 1` fresh layers whose attention
/// output and second feed-forward projections are zero. A pre-norm layer
/// with those zero is the identity, so the expanded encoder computes
/// exactly what the checkpoint's did, and training grows the new layers from
/// there.
fn expand_layers(
    tensors: BTreeMap<String, Tensor>,
    cfg: &ModelConfig,
    n0: usize,
    seed: u64,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let k = cfg.n_layers / n0;
    let layer = |name: &str| -> Option<(usize, String)> {
        let (i, tail) = name.strip_prefix("encoder.layers.")?.split_once('.')?;
        Some((i.parse().ok()?, tail.to_string()))
    };
    let mut out = BTreeMap::new();
    for (name, t) in tensors {
        match layer(&name) {
            Some((i, tail)) => out.insert(format!("encoder.layers.{}.{tail}", i * k), t),
            None => out.insert(name, t),
        };
    }
    for (name, t) in TalkingHeadModel::init_tensors(cfg, seed)? {
        let Some((_, tail)) = layer(&name).filter(|(i, _)| i % k != 0) else {
            continue;
        };
        let zero = tail.starts_with("attn.out.") || tail.starts_with("mlp.fc2.");
        out.insert(name, if zero { t.zeros_like()? } else { t });
    }
    Ok(out)
}

impl Trainer {
    /// A fresh trainer: seeded initial weights, normalisation from the data.
    pub fn new(
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        feature_norm: FeatureNorm,
        motion_norm: MotionNorm,
    ) -> Result<Self, ModelError> {
        model_cfg.validate()?;
        let mut init: BTreeMap<String, Tensor> =
            TalkingHeadModel::init_tensors(&model_cfg, cfg.seed)?
                .into_iter()
                .filter(|(k, _)| !k.starts_with("student."))
                .collect();
        let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xa0c);
        let n = PHONE_CLASSES.len() * model_cfg.d_model;
        let w: Vec<f32> = (0..n)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                0.02 * z
            })
            .collect();
        init.insert(
            "aux.phone.weight".into(),
            Tensor::from_vec(w, (PHONE_CLASSES.len(), model_cfg.d_model), &Device::Cpu)?,
        );
        init.insert(
            "aux.phone.bias".into(),
            Tensor::zeros(PHONE_CLASSES.len(), DType::F32, &Device::Cpu)?,
        );
        Self::from_tensors(model_cfg, cfg, init, feature_norm, motion_norm, 0)
    }

    fn from_tensors(
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        tensors: BTreeMap<String, Tensor>,
        feature_norm: FeatureNorm,
        motion_norm: MotionNorm,
        step: usize,
    ) -> Result<Self, ModelError> {
        crate::dataset::animator_fraction_check(cfg.batch, cfg.animator_fraction)?;
        let varmap = VarMap::new();
        insert_vars(&varmap, &tensors)?;
        let (encoder, teacher, phone_head) = build(&varmap, &model_cfg)?;
        let rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(step as u64 * 7919));
        let loss_weights = Tensor::from_vec(
            crate::dataset::loss_channel_weights(cfg.mouth_weight, &cfg.channel_weights)?,
            (1, BLENDSHAPE_COUNT),
            &Device::Cpu,
        )?;
        let std_mask = channel_mask(&cfg.std_channels)?;
        let animator_factors = animator_factors(&cfg.animator_channel_weights)?;
        Ok(Self {
            loss_weights,
            std_mask,
            animator_factors,
            model_cfg,
            cfg,
            varmap,
            encoder,
            teacher,
            phone_head,
            feature_norm,
            motion_norm,
            step,
            rng,
            device: Device::Cpu,
            resume_optimizer: None,
            data_note: String::new(),
        })
    }

    /// Resumes from a checkpoint written by [`Trainer::save`]: weights,
    /// normalisation and step count, and — when [`optimizer_path`] of `path`
    /// exists — the AdamW moments and step (a true resume: with per-step
    /// random streams, see [`step_rng`], the run continues as if it had never
    /// stopped). Without that file the moments restart (a warning is the
    /// caller's to print; see [`Trainer::resumes_optimizer`]).
    pub fn resume(path: &Path, cfg: TrainConfig) -> Result<Self, ModelError> {
        let (model, tensors, step) = load_trainable(path)?;
        let mut t = Self::from_tensors(
            model.config().clone(),
            cfg,
            tensors,
            model.feature_norm().clone(),
            model.motion_norm().clone(),
            step,
        )?;
        let opt = optimizer_path(path);
        t.resume_optimizer = opt.exists().then_some(opt);
        Ok(t)
    }

    /// Starts a new run (step 0, fresh AdamW moments, the schedule of `cfg`)
    /// from the weights and normalisation of a checkpoint written by
    /// [`Trainer::save`], as the network `model_cfg`, which must equal the
    /// checkpoint's configuration except that
    /// [`kv_heads`](ModelConfig::kv_heads) may be lower (and divide the
    /// checkpoint's): each group's key and value projections are then
    /// mean-pooled into one head, the conversion of GQA uptraining (Ainslie
    /// et al. 2023, "GQA: Training Generalized Multi-Query Transformer Models
    /// from Multi-Head Checkpoints", section 2.1) that the run then
    /// fine-tunes; and [`n_layers`](ModelConfig::n_layers) may be a multiple
    /// of the checkpoint's: the encoder is deepened by block expansion (each
    /// layer followed by new identity-initialised layers, Wu et al. 2024,
    /// "LLaMA Pro"), so the run starts from the checkpoint's exact function.
    ///
    /// Errors: the checkpoint's [`ModelError`]s, and
    /// [`ModelError::InvalidConfig`] when `model_cfg` differs otherwise.
    pub fn init_from(
        path: &Path,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
    ) -> Result<Self, ModelError> {
        model_cfg.validate()?;
        let (model, mut tensors, _) = load_trainable(path)?;
        let from = model.config();
        let (kv0, kv1) = (from.kv_heads(), model_cfg.kv_heads());
        let (n0, n1) = (from.n_layers, model_cfg.n_layers);
        let same_but_kv = ModelConfig {
            kv_heads: from.kv_heads,
            n_layers: from.n_layers,
            calibration: from.calibration.clone(),
            ..model_cfg.clone()
        };
        if &same_but_kv != from
            || kv1 > kv0
            || !kv0.is_multiple_of(kv1)
            || n1 < n0
            || !n1.is_multiple_of(n0)
        {
            return Err(ModelError::InvalidConfig(format!(
                "{} cannot initialise this model: the configurations may differ only in kv_heads, \
                 which must divide the checkpoint's {kv0} (asked {kv1}), and in n_layers, which \
                 must be a multiple of the checkpoint's {n0} (asked {n1})",
                path.display()
            )));
        }
        if kv1 < kv0 {
            let hd = from.d_model / from.n_heads;
            for l in 0..from.n_layers {
                for part in ["weight", "bias"] {
                    let name = format!("encoder.layers.{l}.attn.qkv.{part}");
                    let t = tensors
                        .get(&name)
                        .ok_or_else(|| ModelError::MissingTensor {
                            path: path.to_path_buf(),
                            name: name.clone(),
                        })?;
                    let pooled = pool_kv_heads(t, from.d_model, hd, kv0, kv1)?;
                    tensors.insert(name, pooled);
                }
            }
        }
        if n1 > n0 {
            tensors = expand_layers(tensors, &model_cfg, n0, cfg.seed)?;
        }
        Self::from_tensors(
            model_cfg,
            cfg,
            tensors,
            model.feature_norm().clone(),
            model.motion_norm().clone(),
            0,
        )
    }

    /// Whether [`Trainer::train`] will restore optimiser moments.
    pub fn resumes_optimizer(&self) -> bool {
        self.resume_optimizer.is_some()
    }

    fn named_vars(&self) -> Result<BTreeMap<String, Var>, ModelError> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| ModelError::InvalidConfig("variable map lock poisoned".into()))?;
        Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Writes a checkpoint (encoder, teacher and the auxiliary head),
    /// marked trained, with the recipe and step in its provenance.
    pub fn save(&self, path: &Path, note: &str) -> Result<(), ModelError> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| ModelError::InvalidConfig("variable map lock poisoned".into()))?;
        let tensors: BTreeMap<String, Tensor> = data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let provenance = Provenance {
            trained: true,
            description: format!(
                "teacher trained by `talking-head train`; step={}; {note}; {}; train config {}",
                self.step,
                self.data_note,
                serde_json::to_string(&self.cfg).unwrap_or_default()
            ),
        };
        save_checkpoint(
            path,
            &tensors,
            &self.model_cfg,
            &self.feature_norm,
            &self.motion_norm,
            &provenance,
        )
    }

    /// Builds one batch and returns the total loss tensor and its parts.
    fn batch_loss(
        &mut self,
        clips: &[ClipData],
        train: bool,
    ) -> Result<(Tensor, Losses), ModelError> {
        let cfg = &self.model_cfg;
        let (b, t, l, h) = (
            self.cfg.batch,
            self.cfg.window,
            cfg.lookahead_frames,
            cfg.history_frames,
        );
        let dim = cfg.input_dim();
        let c = BLENDSHAPE_COUNT;
        let opts = BatchOptions {
            animator_fraction: self.cfg.animator_fraction,
            emotion: self.cfg.emotion_augment.clone(),
            vtlp_range: self.cfg.vtlp_range,
            weak_labels: if train {
                self.cfg.weak_labels.clone()
            } else {
                Vec::new()
            },
            weak_fraction: if train { self.cfg.weak_fraction } else { None },
            noise_windows: if train { self.cfg.noise_windows } else { 0.0 },
        };
        let wb = make_batch_with(
            clips,
            cfg,
            b,
            t,
            &self.feature_norm,
            &self.motion_norm,
            &opts,
            &mut self.rng,
        );
        let n_out = wb.n_out;
        let sigma: Vec<f32> = (0..b)
            .map(|_| {
                if train {
                    self.rng.random_range(0.0..=self.cfg.history_noise)
                } else {
                    0.0
                }
            })
            .collect();
        let hist = wb.history(h, &sigma, &mut self.rng);
        let drop: Vec<bool> = (0..b)
            .map(|_| train && self.rng.random_bool(self.cfg.emotion_dropout))
            .collect();
        let mut emo_rows =
            Vec::with_capacity(b * n_out * (talking_head_core::model::EMOTION_COUNT + 1));
        let mut styles = Vec::with_capacity(b * n_out);
        for (w, &dropped) in drop.iter().enumerate() {
            for j in 0..n_out {
                if dropped {
                    emo_rows.extend_from_slice(&[0.0; talking_head_core::model::EMOTION_COUNT]);
                    emo_rows.push(1.0);
                } else {
                    emo_rows.extend_from_slice(&wb.frame_emotions[w * n_out + j]);
                    emo_rows.push(0.0);
                }
                styles.push(wb.styles[w]);
            }
        }
        let y: Vec<f32> = wb.labels.iter().flatten().copied().collect();
        // Closure frames of animator windows: label jawOpen < CLOSURE_LABEL.
        let jaw = Blendshape::JawOpen.index();
        let closure_thr = (CLOSURE_LABEL - self.motion_norm.mean[jaw]) / self.motion_norm.std[jaw];
        let closure_frames: Vec<f32> = if self.cfg.closure_weight_animator > 0.0 {
            (0..b * n_out)
                .map(|i| {
                    let closed =
                        wb.animator[i / n_out] && wb.mask[i] > 0.0 && y[i * c + jaw] < closure_thr;
                    if closed { 1.0 } else { 0.0 }
                })
                .collect()
        } else {
            Vec::new()
        };
        // Per-window channel weights `[B, 1, C]` when some windows are weak
        // (only jawOpen and the upper face train on them) or animator windows
        // scale the channels of `animator_channel_weights`; `None`: `cw` alone.
        let scale_animator = self.animator_factors.is_some() && wb.animator.iter().any(|&a| a);
        let window_weights = if wb.weak.iter().any(|&w| w) || scale_animator {
            let base: Vec<f32> = self.loss_weights.flatten_all()?.to_vec1()?;
            let mut rows = crate::dataset::weak_window_weights(&base, &wb.weak);
            if let Some(f) = self.animator_factors.as_ref().filter(|_| scale_animator) {
                for (row, _) in rows.chunks_mut(c).zip(&wb.animator).filter(|(_, a)| **a) {
                    row.iter_mut().zip(f).for_each(|(v, k)| *v *= k);
                }
            }
            Some(Tensor::from_vec(rows, (b, 1, c), &self.device)?)
        } else {
            None
        };
        let (feats, mask, phones, animator) = (wb.features, wb.mask, wb.phones, wb.animator);
        let dev = &self.device;
        let x = Tensor::from_vec(feats, (b, t, dim), dev)?;
        let enc = self.encoder.forward(&x)?; // [B, T, d]
        let enc_used = enc.narrow(1, l, n_out)?.reshape((b * n_out, cfg.d_model))?;
        let n = b * n_out;
        let y = Tensor::from_vec(y, (n, c), dev)?;
        let hist = Tensor::from_vec(hist, (n, h * c), dev)?;
        let emo = Tensor::from_vec(
            emo_rows,
            (n, talking_head_core::model::EMOTION_COUNT + 1),
            dev,
        )?;
        let style = style_input(&styles, dev)?;
        let taus: Vec<f32> = (0..n).map(|_| self.rng.random_range(0.0..1.0f32)).collect();
        let (sa, sb): (Vec<f32>, Vec<f32>) = taus
            .iter()
            .map(|&tau| {
                let ab = alpha_bar(tau as f64, cfg.diffusion.cosine_offset);
                (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32)
            })
            .unzip();
        let eps: Vec<f32> = (0..n * c)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        let eps = Tensor::from_vec(eps, (n, c), dev)?;
        let sa = Tensor::from_vec(sa, (n, 1), dev)?;
        let sb = Tensor::from_vec(sb, (n, 1), dev)?;
        let x_t = (y.broadcast_mul(&sa)? + eps.broadcast_mul(&sb)?)?;
        let cond = self.teacher.condition(&enc_used, &hist, &emo, &style)?;
        let x0 = self.teacher.predict_x0(&x_t, &taus, &cond, false)?;
        let cw = self.loss_weights.clone(); // shares the storage
        let mask_sum: f32 = mask.iter().sum::<f32>().max(1.0);
        let mask_t = Tensor::from_vec(mask, (n, 1), dev)?;
        let se = (&x0 - &y)?.sqr()?;
        let se = match &window_weights {
            Some(ww) => se
                .reshape((b, n_out, c))?
                .broadcast_mul(ww)?
                .reshape((n, c))?,
            None => se.broadcast_mul(&cw)?,
        }
        .broadcast_mul(&mask_t)?;
        let diff_loss = (se.sum_all()? / mask_sum as f64)?;
        // Velocity loss between adjacent output frames of each window.
        let vel_loss = if self.cfg.velocity_weight > 0.0 && n_out > 1 {
            let x0w = x0.reshape((b, n_out, c))?;
            let yw = y.reshape((b, n_out, c))?;
            let mw = mask_t.reshape((b, n_out, 1))?;
            let dv = (x0w.narrow(1, 1, n_out - 1)? - x0w.narrow(1, 0, n_out - 1)?)?;
            let dy = (yw.narrow(1, 1, n_out - 1)? - yw.narrow(1, 0, n_out - 1)?)?;
            let m2 = (mw.narrow(1, 1, n_out - 1)? * mw.narrow(1, 0, n_out - 1)?)?;
            let m2_sum = m2.sum_all()?.to_scalar::<f32>()?.max(1.0);
            let e = match &window_weights {
                Some(ww) => (dv - dy)?.sqr()?.broadcast_mul(ww)?,
                None => (dv - dy)?.sqr()?.broadcast_mul(&cw)?,
            }
            .broadcast_mul(&m2)?;
            (e.sum_all()? / m2_sum as f64)?
        } else {
            Tensor::new(0f32, dev)?
        };
        // Dynamic-range loss: std over each window's valid frames, per channel.
        // Per-window weight of the dynamic-range loss `[B, 1]`.
        let std_rows: Vec<f32> = animator
            .iter()
            .map(|&a| self.cfg.std_weight + if a { self.cfg.std_weight_animator } else { 0.0 })
            .collect();
        let std_loss = if std_rows.iter().any(|&w| w > 0.0) && n_out > 1 {
            let x0w = x0.reshape((b, n_out, c))?;
            let yw = y.reshape((b, n_out, c))?;
            let mw = mask_t.reshape((b, n_out, 1))?;
            let cnt = mw.sum_keepdim(1)?.clamp(1.0, f64::MAX)?; // [B,1,1]
            let wstd = |v: &Tensor| -> candle_core::Result<Tensor> {
                let mean = v.broadcast_mul(&mw)?.sum_keepdim(1)?.broadcast_div(&cnt)?;
                let d = v.broadcast_sub(&mean)?.sqr()?.broadcast_mul(&mw)?;
                (d.sum_keepdim(1)?.broadcast_div(&cnt)? + 1e-6)?.sqrt() // [B,1,C]
            };
            let e = (wstd(&x0w)? - wstd(&yw)?)?.sqr()?;
            let e = match &self.std_mask {
                Some(m) => e.broadcast_mul(m)?,
                None => e,
            };
            let e = match &window_weights {
                Some(ww) => e.broadcast_mul(ww)?.reshape((b, c))?,
                None => e.reshape((b, c))?.broadcast_mul(&cw)?,
            };
            let sw = Tensor::from_vec(std_rows, (b, 1), dev)?;
            (e.broadcast_mul(&sw)?.sum_all()? / b as f64)?
        } else {
            Tensor::new(0f32, dev)?
        };
        // Closure loss: one-sided, on the closure frames of animator windows.
        let closure_count: f32 = closure_frames.iter().sum();
        let closure_loss = if closure_count > 0.0 {
            let w = Tensor::from_vec(closure_frames, (n, 1), dev)?;
            let excess = x0
                .narrow(1, jaw, 1)?
                .affine(1.0, -(closure_thr as f64))?
                .relu()?;
            ((excess.sqr()? * w)?.sum_all()? / closure_count as f64)?
        } else {
            Tensor::new(0f32, dev)?
        };
        // Phone loss on frames with a known phone.
        let known: Vec<u32> = (0..n as u32)
            .filter(|&i| phones[i as usize] != u32::MAX)
            .collect();
        let (phone_loss, acc) = if known.is_empty() {
            (Tensor::new(0f32, dev)?, 0.0)
        } else {
            let idx = Tensor::from_vec(known.clone(), known.len(), dev)?;
            let targets: Vec<u32> = known.iter().map(|&i| phones[i as usize]).collect();
            let tgt = Tensor::from_vec(targets.clone(), targets.len(), dev)?;
            let logits = self.phone_head.forward(&enc_used.index_select(&idx, 0)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &tgt)?;
            let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            let correct = pred.iter().zip(&targets).filter(|(a, b)| a == b).count();
            (loss, correct as f32 / targets.len() as f32)
        };
        let total = ((&diff_loss + (&phone_loss * self.cfg.phone_weight)?)?
            + (&vel_loss * self.cfg.velocity_weight as f64)?
            + &std_loss
            + (&closure_loss * self.cfg.closure_weight_animator as f64)?)?;
        Ok((
            total,
            Losses {
                diffusion: diff_loss.to_scalar()?,
                phone: phone_loss.to_scalar()?,
                phone_accuracy: acc,
                velocity: vel_loss.to_scalar()?,
                dynamics: std_loss.to_scalar()?,
                closure: (closure_loss.to_scalar::<f32>()? * self.cfg.closure_weight_animator),
                grad_norm: 0.0,
            },
        ))
    }

    /// Runs training to `cfg.steps`, calling `on_step(step, lr, losses)` and
    /// writing a checkpoint to `out` every `checkpoint_every` steps and at the end.
    pub fn train(
        &mut self,
        train: &[ClipData],
        out: &Path,
        on_step: impl FnMut(usize, f64, &Losses),
    ) -> Result<(), ModelError> {
        let end = self.cfg.steps;
        self.train_until(end, train, out, on_step)
    }

    /// As [`Trainer::train`], but stops after step `until` (at most
    /// `cfg.steps`), with a checkpoint and the optimiser state there; the
    /// learning-rate schedule still spans `cfg.steps`. A later
    /// [`Trainer::resume`] continues exactly (a run split across sessions
    /// equals one run).
    pub fn train_until(
        &mut self,
        until: usize,
        train: &[ClipData],
        out: &Path,
        mut on_step: impl FnMut(usize, f64, &Losses),
    ) -> Result<(), ModelError> {
        let until = until.min(self.cfg.steps);
        if train.is_empty() {
            return Err(ModelError::BadInput("no training clips".into()));
        }
        let params = AdamWParams {
            lr: learning_rate(&self.cfg, self.step),
            weight_decay: self.cfg.weight_decay,
            clip_norm: (self.cfg.clip_norm > 0.0).then_some(self.cfg.clip_norm),
            ..Default::default()
        };
        self.data_note = crate::dataset::facegood_recordings_note(train);
        let mut opt = NamedAdamW::new(&self.named_vars()?, params)?;
        if let Some(p) = self.resume_optimizer.take() {
            opt.load(&p)?;
        }
        while self.step < until {
            let lr = learning_rate(&self.cfg, self.step);
            opt.params.lr = lr;
            self.rng = step_rng(self.cfg.seed, self.step);
            let (loss, mut parts) = self.batch_loss(train, true)?;
            let grads = loss.backward()?;
            parts.grad_norm = opt.step(&grads)?;
            self.step += 1;
            on_step(self.step, lr, &parts);
            if self.step.is_multiple_of(self.cfg.checkpoint_every.max(1)) || self.step == until {
                // Optimiser state first: a checkpoint never points at older moments.
                opt.save(&optimizer_path(out))?;
                self.save(out, "in progress")?;
            }
        }
        Ok(())
    }

    /// Mean losses over `batches` validation batches (no gradient, no dropout).
    pub fn validate(&mut self, val: &[ClipData], batches: usize) -> Result<Losses, ModelError> {
        let mut acc = Losses::default();
        if val.is_empty() {
            return Ok(acc);
        }
        let saved = self.rng.clone();
        self.rng = StdRng::seed_from_u64(12345);
        for _ in 0..batches.max(1) {
            let (_, l) = self.batch_loss(val, false)?;
            acc.diffusion += l.diffusion / batches.max(1) as f32;
            acc.phone += l.phone / batches.max(1) as f32;
            acc.phone_accuracy += l.phone_accuracy / batches.max(1) as f32;
            acc.velocity += l.velocity / batches.max(1) as f32;
        }
        self.rng = saved;
        Ok(acc)
    }
}

/// Where `train` writes by default.
pub fn default_teacher_path() -> PathBuf {
    PathBuf::from("assets/models/teacher.safetensors")
}
