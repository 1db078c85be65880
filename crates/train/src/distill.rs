//! One-step distillation (`talking-head distill`): the single-step student
//! is regressed onto the deterministic DDIM trajectories of the guided
//! teacher — for the same initial noise `z` and conditioning, the student's
//! `x0 = S(z, t = 1)` is trained to equal the teacher's `N`-step DDIM result
//! with classifier-free guidance on emotion (knowledge distillation of
//! iterative generative models, Luhman & Luhman 2021).
//!
//! Why this and not consistency distillation: DDIM with eta = 0 makes the
//! teacher a deterministic map `z → x0`, so plain regression has a fixed
//! target, needs no extra schedule or EMA target network, and bakes the
//! guidance in (the student runs once per frame, not twice). The student
//! starts as a copy of the teacher; the encoder is shared and frozen.
//!
//! Streaming rollouts: for a fraction of the windows the motion history is
//! the student's own output, produced frame by frame (StreamingTalker's
//! autoregressive setting), so the student learns on the histories it will
//! see at run time and does not drift.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::dataset::ClipData;
use crate::manifest::LABEL_KINDS;
use crate::trainer::learning_rate;
use talking_head_core::model::denoiser::{Conditioning, Denoiser, style_input};
use talking_head_core::model::{
    EMOTION_COUNT, ModelError, Provenance, TalkingHeadModel, save_checkpoint,
};
use talking_head_core::rig::BLENDSHAPE_COUNT;

/// Distillation settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DistillConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Windows per batch.
    pub batch: usize,
    /// Frames per window.
    pub window: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Final learning rate.
    pub min_lr: f64,
    /// Teacher DDIM steps (default: the model config's).
    pub teacher_steps: Option<usize>,
    /// Guidance scale (default: the model config's).
    pub guidance: Option<f32>,
    /// Fraction of windows whose history is the student's own rollout.
    pub rollout_fraction: f64,
    /// Probability of replacing a window's emotion by a random one (so the
    /// student learns guided emotion on every voice).
    pub random_emotion: f64,
    /// Loss weight of the mouth channels.
    pub mouth_weight: f32,
    /// Per-channel loss weights that replace `mouth_weight`/`1` for the
    /// named ARKit channels (see [`crate::dataset::loss_channel_weights`]);
    /// empty: none.
    #[serde(default)]
    pub channel_weights: std::collections::BTreeMap<String, f32>,
    /// Seed.
    pub seed: u64,
    /// Checkpoint interval (steps).
    pub checkpoint_every: usize,
    /// Also store the teacher in the output checkpoint.
    pub keep_teacher: bool,
    /// Share of each batch drawn from animator-labelled clips (as in training).
    pub animator_fraction: f64,
    /// Emotion augmentation of the windows (as in training), so the student
    /// learns the guided emotion on every voice and through changes.
    pub emotion_augment: Option<crate::dataset::EmotionAugment>,
    /// Relabel phonetic clips at load time (as in training; `null`: stored labels).
    pub relabel: Option<crate::phonetic::PhoneticLabelerConfig>,
    /// Per label kind ([`crate::manifest::LABEL_KINDS`]), the share `m` in [0, 1] of named
    /// ARKit channels' target taken from the window's label instead of the
    /// teacher: `target = (1 − m) · teacher + m · label`. E.g.
    /// `{"animator": {"mouthFunnel": 1, "mouthPucker": 1}}`: the student of
    /// the `facegood` style learns those channels from the real animation
    /// (on the frozen encoder) while the other windows keep the teacher's
    /// targets. Empty (the default): pure distillation. An unknown label
    /// kind or channel name, or a share outside [0, 1], is
    /// `ModelError::InvalidConfig`.
    #[serde(default)]
    pub label_mix: BTreeMap<String, BTreeMap<String, f32>>,
    /// Probability that a window is a noise floor with no speech (as
    /// [`crate::trainer::TrainConfig::noise_windows`]); the student learns
    /// the teacher's output on it. `0` (the default) disables it.
    #[serde(default)]
    pub noise_windows: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            steps: 3000,
            batch: 8,
            window: 160,
            lr: 5e-4,
            warmup: 100,
            min_lr: 1e-5,
            teacher_steps: None,
            guidance: None,
            rollout_fraction: 0.5,
            random_emotion: 0.0,
            mouth_weight: 2.0,
            channel_weights: Default::default(),
            seed: 0,
            checkpoint_every: 250,
            keep_teacher: false,
            animator_fraction: 0.3,
            emotion_augment: Some(crate::dataset::EmotionAugment::default()),
            relabel: None,
            label_mix: BTreeMap::new(),
            noise_windows: 0.0,
        }
    }
}

/// The 52 shares per label kind of [`DistillConfig::label_mix`] (0 for the
/// channels not named).
fn label_mix(
    map: &BTreeMap<String, BTreeMap<String, f32>>,
) -> Result<BTreeMap<String, Vec<f32>>, ModelError> {
    let mut out = BTreeMap::new();
    for (kind, channels) in map {
        if !LABEL_KINDS.contains(&kind.as_str()) {
            return Err(ModelError::InvalidConfig(format!(
                "label_mix: unknown label kind `{kind}` (expected one of {LABEL_KINDS:?})"
            )));
        }
        let mut m = vec![0f32; BLENDSHAPE_COUNT];
        crate::dataset::set_named_channels(
            &mut m,
            channels,
            "label_mix",
            "share",
            "in [0, 1]",
            |v| (0.0..=1.0).contains(&v),
        )?;
        out.insert(kind.clone(), m);
    }
    Ok(out)
}

/// Distils a loaded teacher checkpoint into a one-step student.
pub struct Distiller {
    teacher: TalkingHeadModel,
    cfg: DistillConfig,
    varmap: VarMap,
    student: Denoiser,
    rng: StdRng,
    /// `[1, 52]` normalised loss weight per channel
    /// ([`crate::dataset::loss_channel_weights`]), built once.
    loss_weights: Tensor,
    /// `[52]` shares of [`DistillConfig::label_mix`] per label kind.
    label_mix: BTreeMap<String, Vec<f32>>,
    /// Steps done.
    pub step: usize,
    /// [`crate::dataset::facegood_recordings_note`] of the clips distilled
    /// on, for the provenance.
    data_note: String,
}

impl Distiller {
    /// Prepares distillation from a model holding a teacher.
    pub fn new(teacher: TalkingHeadModel, cfg: DistillConfig) -> Result<Self, ModelError> {
        if teacher.teacher_net().is_none() {
            return Err(ModelError::MissingDenoiser("teacher"));
        }
        crate::dataset::animator_fraction_check(cfg.batch, cfg.animator_fraction)?;
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| ModelError::InvalidConfig("variable map lock poisoned".into()))?;
            for (k, t) in teacher.tensors() {
                if let Some(rest) = k.strip_prefix("teacher.") {
                    data.insert(format!("student.{rest}"), Var::from_tensor(&t.copy()?)?);
                }
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let student = Denoiser::new(teacher.config(), vb.pp("student"))?;
        let rng = StdRng::seed_from_u64(cfg.seed ^ 0xd15);
        let loss_weights = Tensor::from_vec(
            crate::dataset::loss_channel_weights(cfg.mouth_weight, &cfg.channel_weights)?,
            (1, BLENDSHAPE_COUNT),
            &Device::Cpu,
        )?;
        let label_mix = label_mix(&cfg.label_mix)?;
        Ok(Self {
            loss_weights,
            label_mix,
            teacher,
            cfg,
            varmap,
            student,
            rng,
            step: 0,
            data_note: String::new(),
        })
    }

    fn noise(&mut self, n: usize) -> Result<Tensor, ModelError> {
        let v: Vec<f32> = (0..n * BLENDSHAPE_COUNT)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Ok(Tensor::from_vec(v, (n, BLENDSHAPE_COUNT), &Device::Cpu)?)
    }

    /// One batch: returns the loss tensor (student vs guided teacher).
    fn batch_loss(&mut self, clips: &[ClipData]) -> Result<(Tensor, f32), ModelError> {
        let mcfg = self.teacher.config().clone();
        let (b, t) = (self.cfg.batch, self.cfg.window);
        let (l, h, c) = (mcfg.lookahead_frames, mcfg.history_frames, BLENDSHAPE_COUNT);
        let opts = crate::dataset::BatchOptions {
            animator_fraction: self.cfg.animator_fraction,
            emotion: self.cfg.emotion_augment.clone(),
            // The student learns the teacher's map on the corpus's voices.
            vtlp_range: 0.0,
            // No labels are learned here: nothing to mask.
            weak_labels: Vec::new(),
            weak_fraction: None,
            noise_windows: self.cfg.noise_windows,
        };
        let wb = crate::dataset::make_batch_with(
            clips,
            &mcfg,
            b,
            t,
            self.teacher.feature_norm(),
            self.teacher.motion_norm(),
            &opts,
            &mut self.rng,
        );
        let n_out = wb.n_out;
        let dev = Device::Cpu;
        let x = Tensor::from_vec(wb.features.clone(), (b, t, mcfg.input_dim()), &dev)?;
        let enc = self
            .teacher
            .encoder_net()
            .forward(&x)?
            .narrow(1, l, n_out)?
            .contiguous()?; // [B, n_out, d]
        // Emotions: per frame from the batch (augmented), or with
        // probability `random_emotion` a random one-hot for the whole window.
        let mut row_emotions = wb.frame_emotions.clone();
        for w in 0..b {
            if self.rng.random_bool(self.cfg.random_emotion) {
                let k = self.rng.random_range(0..EMOTION_COUNT);
                let i: f32 = self.rng.random_range(0.3..=1.0);
                let e = crate::emotion::emotion_vector(k, i);
                for r in row_emotions.iter_mut().skip(w * n_out).take(n_out) {
                    *r = e;
                }
            }
        }
        let steps = self
            .cfg
            .teacher_steps
            .unwrap_or(mcfg.diffusion.teacher_steps);
        let guidance = self.cfg.guidance.unwrap_or(mcfg.diffusion.guidance_scale);
        let z = self.noise(b * n_out)?; // [(w, j)] rows
        let row_styles: Vec<usize> = (0..b * n_out).map(|r| wb.styles[r / n_out]).collect();
        let emo_c = talking_head_core::model::denoiser::emotion_input(&row_emotions, false, &dev)?;
        let emo_u = talking_head_core::model::denoiser::emotion_input(&row_emotions, true, &dev)?;
        let style = style_input(&row_styles, &dev)?;
        let enc_rows = enc.reshape((b * n_out, mcfg.d_model))?;
        // Motion history: teacher-forced (noisy labels) or the student's own rollout.
        let rollout: Vec<bool> = (0..b)
            .map(|_| self.rng.random_bool(self.cfg.rollout_fraction))
            .collect();
        let sigma: Vec<f32> = (0..b)
            .map(|w| {
                if rollout[w] {
                    0.0
                } else {
                    self.rng.random_range(0.0..=0.3)
                }
            })
            .collect();
        let mut hist = wb.history(h, &sigma, &mut self.rng);
        if rollout.iter().any(|&r| r) {
            let ws: Vec<usize> = (0..b).filter(|&w| rollout[w]).collect();
            let mut own: Vec<Vec<[f32; BLENDSHAPE_COUNT]>> = ws
                .iter()
                .map(|&w| wb.before[w * h..(w + 1) * h].to_vec())
                .collect();
            let zv: Vec<Vec<f32>> = z.to_vec2()?;
            for j in 0..n_out {
                let rows: Vec<u32> = ws.iter().map(|&w| (w * n_out + j) as u32).collect();
                let idx = Tensor::from_vec(rows.clone(), rows.len(), &dev)?;
                let hrows: Vec<f32> = own
                    .iter()
                    .flat_map(|o| o[o.len() - h..].iter().flatten().copied())
                    .collect();
                // The rollout's history is what the model saw when producing frame j.
                for (k, &r) in rows.iter().enumerate() {
                    let dst = r as usize * h * c;
                    hist[dst..dst + h * c].copy_from_slice(&hrows[k * h * c..(k + 1) * h * c]);
                }
                let ht = Tensor::from_vec(hrows, (rows.len(), h * c), &dev)?;
                let cond = self.student.condition(
                    &enc_rows.index_select(&idx, 0)?,
                    &ht,
                    &emo_c.index_select(&idx, 0)?,
                    &style.index_select(&idx, 0)?,
                )?;
                let zz: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| zv[r as usize].iter().copied())
                    .collect();
                let zz = Tensor::from_vec(zz, (rows.len(), c), &dev)?;
                let y = self.student.sample_one_step(&zz, &cond)?.detach();
                let y: Vec<Vec<f32>> = y.to_vec2()?;
                for (o, row) in own.iter_mut().zip(y) {
                    let mut f = [0f32; BLENDSHAPE_COUNT];
                    f.copy_from_slice(&row);
                    o.push(f);
                }
            }
        }
        let hist = Tensor::from_vec(hist, (b * n_out, h * c), &dev)?;
        // Guided teacher targets (no gradient: the teacher's tensors are not variables).
        let teacher = self
            .teacher
            .teacher_net()
            .ok_or(ModelError::MissingDenoiser("teacher"))?;
        let cond_t = teacher.condition(&enc_rows, &hist, &emo_c, &style)?;
        let uncond_t = teacher.condition(&enc_rows, &hist, &emo_u, &style)?;
        let mut target = teacher
            .sample_ddim(&z, &cond_t, Some(&uncond_t), steps, guidance)?
            .detach();
        // Windows of the label kinds of `label_mix`: some channels' targets
        // from their labels.
        let mixes: Vec<Option<&Vec<f32>>> = wb
            .label_kinds
            .iter()
            .map(|k| self.label_mix.get(k))
            .collect();
        if mixes.iter().any(Option::is_some) {
            let rows = b * n_out;
            let zero = [0f32; BLENDSHAPE_COUNT];
            let m: Vec<f32> = (0..rows)
                .flat_map(|r| mixes[r / n_out].map_or(&zero[..], |mix| &mix[..]))
                .copied()
                .collect();
            let m = Tensor::from_vec(m, (rows, c), &dev)?;
            let y: Vec<f32> = wb.labels.iter().flatten().copied().collect();
            let y = Tensor::from_vec(y, (rows, c), &dev)?;
            target = (&target + (y - &target)?.mul(&m)?)?;
        }
        let cond_s = self.student.condition(&enc_rows, &hist, &emo_c, &style)?;
        let n = b * n_out;
        let pred = self
            .student
            .predict_x0(&z, &vec![1.0; n], &Conditioning(cond_s.0), false)?;
        let cw = self.loss_weights.clone(); // shares the storage
        let mask_sum = wb.mask.iter().sum::<f32>().max(1.0);
        let mask = Tensor::from_vec(wb.mask.clone(), (n, 1), &dev)?;
        let loss = ((pred - target)?
            .sqr()?
            .broadcast_mul(&cw)?
            .broadcast_mul(&mask)?
            .sum_all()?
            / mask_sum as f64)?;
        let v = loss.to_scalar::<f32>()?;
        Ok((loss, v))
    }

    /// Trains to `cfg.steps`, checkpointing to `out`.
    pub fn run(
        &mut self,
        clips: &[ClipData],
        out: &Path,
        mut on_step: impl FnMut(usize, f64, f32),
    ) -> Result<(), ModelError> {
        if clips.is_empty() {
            return Err(ModelError::BadInput("no training clips".into()));
        }
        self.data_note = crate::dataset::facegood_recordings_note(clips);
        let sched = crate::trainer::TrainConfig {
            steps: self.cfg.steps,
            lr: self.cfg.lr,
            warmup: self.cfg.warmup,
            min_lr: self.cfg.min_lr,
            ..Default::default()
        };
        let mut opt = AdamW::new(
            self.varmap.all_vars(),
            ParamsAdamW {
                lr: learning_rate(&sched, self.step),
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        while self.step < self.cfg.steps {
            let lr = learning_rate(&sched, self.step);
            opt.set_learning_rate(lr);
            let (loss, v) = self.batch_loss(clips)?;
            opt.backward_step(&loss)?;
            self.step += 1;
            on_step(self.step, lr, v);
            if self.step.is_multiple_of(self.cfg.checkpoint_every.max(1))
                || self.step == self.cfg.steps
            {
                self.save(out)?;
            }
        }
        Ok(())
    }

    /// Mean distillation loss over `batches` batches (fixed seed).
    pub fn validate(&mut self, clips: &[ClipData], batches: usize) -> Result<f32, ModelError> {
        let saved = self.rng.clone();
        self.rng = StdRng::seed_from_u64(777);
        let mut acc = 0.0;
        for _ in 0..batches.max(1) {
            acc += self.batch_loss(clips)?.1 / batches.max(1) as f32;
        }
        self.rng = saved;
        Ok(acc)
    }

    /// Writes encoder + student (and the teacher when `keep_teacher`).
    pub fn save(&self, out: &Path) -> Result<(), ModelError> {
        let mut tensors: BTreeMap<String, Tensor> = self
            .teacher
            .tensors()
            .iter()
            .filter(|(k, _)| {
                k.starts_with("encoder.") || (self.cfg.keep_teacher && k.starts_with("teacher."))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| ModelError::InvalidConfig("variable map lock poisoned".into()))?;
        for (k, v) in data.iter() {
            tensors.insert(k.clone(), v.as_tensor().clone());
        }
        let provenance = Provenance {
            trained: true,
            description: format!(
                "one-step student distilled by `talking-head distill` from [{}]; distill step={}; {}; config {}",
                self.teacher.provenance().description,
                self.step,
                self.data_note,
                serde_json::to_string(&self.cfg).unwrap_or_default()
            ),
        };
        save_checkpoint(
            out,
            &tensors,
            self.teacher.config(),
            self.teacher.feature_norm(),
            self.teacher.motion_norm(),
            &provenance,
        )
    }
}
