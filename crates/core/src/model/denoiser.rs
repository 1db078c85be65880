//! The frame denoiser: a conditional diffusion model over one ARKit-52
//! frame (in normalised motion space), conditioned on the encoder state,
//! a window of the model's own past frames (autoregressive motion history,
//! StreamingTalker, Yang et al. 2025), an emotion vector (with a "null"
//! flag for classifier-free guidance, Ho & Salimans 2022) and a style id.
//!
//! The same network serves as the multi-step teacher (DDIM, Song et al.
//! 2021) and, after distillation, as the single-step student (AudioRTA's
//! one-step decoder).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::fast::{Dense, FastDenoiser};
use super::nn::{Mlp, Norm, linear};
use crate::model::{EMOTION_COUNT, ModelConfig, Prediction};
use crate::rig::BLENDSHAPE_COUNT;

/// Width of the emotion input: 7 weights plus the "unconditional" flag.
pub const EMOTION_INPUT: usize = EMOTION_COUNT + 1;

/// Cosine noise schedule `abar(t)`, `t` in [0, 1] (Nichol & Dhariwal 2021),
/// clamped to [1e-6, 1 - 1e-6].
pub fn alpha_bar(t: f64, offset: f64) -> f64 {
    let f = |t: f64| {
        ((t + offset) / (1.0 + offset) * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    (f(t) / f(0.0)).clamp(1e-6, 1.0 - 1e-6)
}

/// Sinusoidal embedding of diffusion times `t` in [0, 1] → `[N, dim]`.
pub fn time_embedding(ts: &[f32], dim: usize, dev: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(ts.len() * dim);
    for &t in ts {
        let t = t as f64 * 1000.0;
        for i in 0..half {
            let f = (-(10_000f64).ln() * i as f64 / half as f64).exp();
            out.push((t * f).sin() as f32);
        }
        for i in 0..half {
            let f = (-(10_000f64).ln() * i as f64 / half as f64).exp();
            out.push((t * f).cos() as f32);
        }
    }
    Tensor::from_vec(out, (ts.len(), dim), dev)
}

/// Conditioning of a batch of frames, projected once and reused by every
/// denoising step: `[N, hidden]`.
#[derive(Clone, Debug)]
pub struct Conditioning(pub Tensor);

/// Residual MLP denoiser; see the module docs.
#[derive(Clone, Debug)]
pub struct Denoiser {
    in_cond: Linear,
    in_x: Linear,
    style: Embedding,
    blocks: Vec<(Norm, Mlp)>,
    ln_out: Norm,
    out: Linear,
    time_dim: usize,
    prediction: Prediction,
    offset: f64,
}

impl Denoiser {
    /// Builds the network's variables under `vb` (fresh or loaded).
    ///
    /// # Errors
    /// A candle error if a variable is missing or has the wrong shape.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.denoiser_hidden;
        let cond_dim = cfg.d_model + cfg.history_frames * BLENDSHAPE_COUNT + EMOTION_INPUT;
        let blocks = (0..cfg.denoiser_blocks)
            .map(|i| {
                let vb = vb.pp(format!("blocks.{i}"));
                Ok((Norm::new(h, vb.pp("ln"))?, Mlp::new(h, h, vb.pp("mlp"))?))
            })
            .collect::<Result<_>>()?;
        let style = vb.get_with_hints(
            (cfg.styles.len(), h),
            "style.weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        Ok(Self {
            in_cond: linear(cond_dim, h, vb.pp("in_cond"))?,
            in_x: candle_nn::linear_no_bias(
                BLENDSHAPE_COUNT + cfg.time_embed_dim,
                h,
                vb.pp("in_x"),
            )?,
            style: Embedding::new(style, h),
            blocks,
            ln_out: Norm::new(h, vb.pp("ln_out"))?,
            out: linear(h, BLENDSHAPE_COUNT, vb.pp("out"))?,
            time_dim: cfg.time_embed_dim,
            prediction: cfg.diffusion.prediction,
            offset: cfg.diffusion.cosine_offset,
        })
    }

    /// The plain-memory one-step sampler ([`FastDenoiser`]).
    pub(crate) fn fast(&self) -> Result<FastDenoiser> {
        let (_, h) = self.style.embeddings().dims2()?;
        let blocks = self
            .blocks
            .iter()
            .map(|(ln, mlp)| {
                let (a, b) = mlp.fast()?;
                Ok((ln.fast()?, a, b))
            })
            .collect::<Result<_>>()?;
        let temb = time_embedding(&[1.0], self.time_dim, &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        debug_assert_eq!(h, self.in_x.weight().dims2()?.0);
        Ok(FastDenoiser {
            in_cond: Dense::from_linear(&self.in_cond)?,
            in_x: Dense::from_linear(&self.in_x)?,
            style: self.style.embeddings().flatten_all()?.to_vec1::<f32>()?,
            blocks,
            ln_out: self.ln_out.fast()?,
            out: Dense::from_linear(&self.out)?,
            temb,
            v_coeffs: match self.prediction {
                Prediction::X0 => None,
                Prediction::V => Some(FastDenoiser::v_coeffs_at_one(self.offset)),
            },
        })
    }

    /// Projects the conditioning. `enc: [N, d_model]`, `history: [N, H * 52]`
    /// (oldest frame first, normalised), `emotion: [N, 8]`, `style: [N]` (u32).
    pub fn condition(
        &self,
        enc: &Tensor,
        history: &Tensor,
        emotion: &Tensor,
        style: &Tensor,
    ) -> Result<Conditioning> {
        let c = Tensor::cat(&[enc, history, emotion], 1)?;
        Ok(Conditioning(
            (self.in_cond.forward(&c)? + self.style.forward(style)?)?,
        ))
    }

    /// Raw network output (x0 or v, per the config) for noisy frames
    /// `x_t: [N, 52]` at diffusion times `t` (one per row). `fused` picks the
    /// fused CPU kernels (inference) or the differentiable ops (training).
    pub fn predict(
        &self,
        x_t: &Tensor,
        t: &[f32],
        cond: &Conditioning,
        fused: bool,
    ) -> Result<Tensor> {
        let temb = time_embedding(t, self.time_dim, x_t.device())?;
        let mut z = (self.in_x.forward(&Tensor::cat(&[x_t, &temb], 1)?)? + &cond.0)?;
        for (ln, mlp) in &self.blocks {
            let n = if fused { ln.step(&z)? } else { ln.forward(&z)? };
            z = (&z + mlp.forward(&n)?)?;
        }
        let n = if fused {
            self.ln_out.step(&z)?
        } else {
            self.ln_out.forward(&z)?
        };
        self.out.forward(&n)
    }

    /// Clean-frame estimate `x0` from the network output.
    pub fn predict_x0(
        &self,
        x_t: &Tensor,
        t: &[f32],
        cond: &Conditioning,
        fused: bool,
    ) -> Result<Tensor> {
        let out = self.predict(x_t, t, cond, fused)?;
        match self.prediction {
            Prediction::X0 => Ok(out),
            Prediction::V => {
                // x0 = sqrt(abar) x_t - sqrt(1 - abar) v, per row.
                let (a, b): (Vec<f32>, Vec<f32>) = t
                    .iter()
                    .map(|&t| {
                        let ab = alpha_bar(t as f64, self.offset);
                        (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32)
                    })
                    .unzip();
                let n = t.len();
                let a = Tensor::from_vec(a, (n, 1), x_t.device())?;
                let b = Tensor::from_vec(b, (n, 1), x_t.device())?;
                x_t.broadcast_mul(&a)? - out.broadcast_mul(&b)?
            }
        }
    }

    /// Single-step sampling (the distilled student): `x0 = f(noise, t = 1)`.
    /// The reference of the streaming kernel (`FastDenoiser::sample`) in the parity tests; the
    /// distiller's differentiable student.
    pub fn sample_one_step(&self, noise: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let n = noise.dim(0)?;
        self.predict_x0(noise, &vec![1.0; n], cond, true)
    }

    /// Deterministic DDIM sampling (eta = 0) in `steps` steps from `t = 1`
    /// to `t = 0`, with classifier-free guidance
    /// `x0 = x0_u + g (x0_c - x0_u)` when `uncond` is given.
    pub fn sample_ddim(
        &self,
        noise: &Tensor,
        cond: &Conditioning,
        uncond: Option<&Conditioning>,
        steps: usize,
        guidance: f32,
    ) -> Result<Tensor> {
        let n = noise.dim(0)?;
        let both = match uncond {
            Some(u) if guidance != 1.0 => Some(Conditioning(Tensor::cat(&[&cond.0, &u.0], 0)?)),
            _ => None,
        };
        let mut x = noise.clone();
        let mut x0 = noise.clone();
        for i in 0..steps {
            let t = 1.0 - i as f64 / steps as f64;
            let t_next = 1.0 - (i + 1) as f64 / steps as f64;
            x0 = match &both {
                Some(c) => {
                    let xx = Tensor::cat(&[&x, &x], 0)?;
                    let p = self.predict_x0(&xx, &vec![t as f32; 2 * n], c, true)?;
                    let pc = p.narrow(0, 0, n)?;
                    let pu = p.narrow(0, n, n)?;
                    (&pu + ((pc - &pu)? * guidance as f64)?)?
                }
                None => self.predict_x0(&x, &vec![t as f32; n], cond, true)?,
            };
            if i + 1 == steps {
                break;
            }
            let ab = alpha_bar(t, self.offset);
            let ab_next = alpha_bar(t_next, self.offset);
            let eps = ((&x - (&x0 * ab.sqrt())?)? / (1.0 - ab).sqrt())?;
            x = ((&x0 * ab_next.sqrt())? + (eps * (1.0 - ab_next).sqrt())?)?;
        }
        Ok(x0)
    }
}

/// Emotion input rows `[N, 8]`: the 7 weights and a 0 flag (conditional), or
/// zeros and a 1 flag (unconditional, for guidance).
pub fn emotion_input(
    emotions: &[[f32; EMOTION_COUNT]],
    uncond: bool,
    dev: &Device,
) -> Result<Tensor> {
    let mut v = Vec::with_capacity(emotions.len() * EMOTION_INPUT);
    for e in emotions {
        if uncond {
            v.extend_from_slice(&[0.0; EMOTION_COUNT]);
            v.push(1.0);
        } else {
            v.extend_from_slice(e);
            v.push(0.0);
        }
    }
    Tensor::from_vec(v, (emotions.len(), EMOTION_INPUT), dev)
}

/// Style ids as a `[N]` u32 tensor.
pub fn style_input(styles: &[usize], dev: &Device) -> Result<Tensor> {
    let v: Vec<u32> = styles.iter().map(|&s| s as u32).collect();
    Tensor::from_vec(v, styles.len(), dev)?.to_dtype(DType::U32)
}
