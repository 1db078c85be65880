//! The online (causal) audio encoder, after AudioRTA (Lee et al., SIGGRAPH
//! Asia 2025, "Audio Driven Real-Time Facial Animation for Social
//! Telepresence"): stacked log-mel frames → linear projection → residual
//! causal convolution → pre-norm transformer layers with sliding-window
//! attention over a rotating KV cache → final LayerNorm.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::nn::{CausalConv1d, KvCache, Norm, Rope, TransformerLayer, linear};
use crate::model::ModelConfig;

/// One session's encoder state: convolution taps, one rotating KV cache per
/// layer and the absolute position (frames stepped so far). Fixed size.
#[derive(Debug)]
pub(crate) struct EncoderState {
    conv: Tensor,
    caches: Vec<KvCache>,
    pub(crate) pos: u64,
}

impl EncoderState {
    pub(crate) fn bytes(&self) -> usize {
        self.conv.elem_count() * 4 + self.caches.iter().map(KvCache::bytes).sum::<usize>()
    }
}

/// Causal transformer encoder; see the module docs.
#[derive(Clone, Debug)]
pub(crate) struct OnlineEncoder {
    in_proj: Linear,
    pub(crate) conv: CausalConv1d,
    layers: Vec<TransformerLayer>,
    ln_f: Norm,
    rope: Rope,
}

impl OnlineEncoder {
    pub(crate) fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let layers = (0..cfg.n_layers)
            .map(|i| {
                TransformerLayer::new(
                    d,
                    cfg.n_heads,
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

    pub(crate) fn new_state(&self, dev: &Device) -> Result<EncoderState> {
        Ok(EncoderState {
            conv: self.conv.new_state(dev)?,
            caches: self
                .layers
                .iter()
                .map(|l| l.new_cache(dev))
                .collect::<Result<_>>()?,
            pos: 0,
        })
    }

    /// Batch form: `x: [B, T, input_dim]` normalised log-mel stacks →
    /// `[B, T, d_model]`. Differentiable.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.in_proj.forward(x)?;
        let mut x = (&x + self.conv.forward(&x)?.gelu()?)?;
        for layer in &self.layers {
            x = layer.forward(&x, &self.rope)?;
        }
        self.ln_f.forward(&x)
    }

    /// Streaming form: `x: [B, 1, input_dim]`, one frame for each of `B`
    /// sessions → `[B, 1, d_model]`; advances every state by one frame.
    pub(crate) fn step(&self, x: &Tensor, states: &mut [&mut EncoderState]) -> Result<Tensor> {
        let positions: Vec<u64> = states.iter().map(|s| s.pos).collect();
        let x = self.in_proj.forward(x)?;
        let conv = {
            let mut taps: Vec<&mut Tensor> = states.iter_mut().map(|s| &mut s.conv).collect();
            self.conv.step(&x, &mut taps)?
        };
        let mut x = (&x + conv.gelu()?)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let mut caches: Vec<&mut KvCache> =
                states.iter_mut().map(|s| &mut s.caches[l]).collect();
            x = layer.step(&x, &positions, &self.rope, &mut caches)?;
        }
        for s in states.iter_mut() {
            s.pos += 1;
        }
        self.ln_f.step(&x)
    }
}
