//! The online (causal) audio encoder, after AudioRTA (Lee et al., SIGGRAPH
//! Asia 2025, "Audio Driven Real-Time Facial Animation for Social
//! Telepresence"): stacked log-mel frames → linear projection → residual
//! causal convolution → pre-norm transformer layers with sliding-window
//! attention → final LayerNorm. The streaming step (rotating KV cache) is
//! `FastEncoder` (`model/fast.rs`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::fast::{Dense, FastEncoder};
use super::nn::{CausalConv1d, Norm, Rope, TransformerLayer, linear};
use crate::model::ModelConfig;

/// Causal transformer encoder; see the module docs.
#[derive(Clone, Debug)]
pub struct OnlineEncoder {
    in_proj: Linear,
    pub(crate) conv: CausalConv1d,
    layers: Vec<TransformerLayer>,
    ln_f: Norm,
    rope: Rope,
}

impl OnlineEncoder {
    /// Builds the network's variables under `vb` (fresh or loaded).
    ///
    /// # Errors
    /// A candle error if a variable is missing or has the wrong shape.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let layers = (0..cfg.n_layers)
            .map(|i| {
                TransformerLayer::new(
                    d,
                    (cfg.n_heads, cfg.kv_heads()),
                    cfg.d_ff,
                    cfg.context_frames,
                    vb.pp(format!("layers.{i}")),
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            in_proj: linear(cfg.input_dim(), d, vb.pp("in_proj"))?,
            conv: CausalConv1d::new(d, d, cfg.conv_kernel, vb.pp("conv"))?,
            layers,
            ln_f: Norm::new(d, vb.pp("ln_f"))?,
            rope: Rope::new(d / cfg.n_heads),
        })
    }

    /// Batch form: `x: [B, T, input_dim]` normalised log-mel stacks →
    /// `[B, T, d_model]`. Differentiable.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.in_proj.forward(x)?;
        let mut x = (&x + self.conv.forward(&x)?.gelu()?)?;
        for layer in &self.layers {
            x = layer.forward(&x, &self.rope)?;
        }
        self.ln_f.forward(&x)
    }

    /// The plain-memory streaming copy ([`FastEncoder`]).
    pub(crate) fn fast(&self, cfg: &ModelConfig) -> Result<FastEncoder> {
        Ok(FastEncoder::new(
            cfg,
            Dense::from_linear(&self.in_proj)?,
            self.conv.fast()?,
            self.layers
                .iter()
                .map(TransformerLayer::fast)
                .collect::<Result<_>>()?,
            self.ln_f.fast()?,
        ))
    }
}
