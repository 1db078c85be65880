//! Building blocks of the model, each with a batch `forward` (differentiable,
//! used by the trainer) and a `fast` copy of its weights for the streaming
//! kernels in [`super::fast`]. The tests in `crates/core/src/model/tests.rs` prove that
//! stepping reproduces `forward` within 1e-4.

use candle_core::{D, Device, Module, Result, Tensor};

use super::fast::{Dense, LayerW, Ln};
use candle_nn::{LayerNorm, Linear, VarBuilder};

/// A linear layer `y = x W^T + b` (`W: [out, in]`).
pub(crate) fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(in_dim, out_dim, vb)
}

/// Pre-norm LayerNorm (eps 1e-5) with weight and bias.
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
    inner: LayerNorm,
}

impl Norm {
    pub(crate) fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?;
        let inner = LayerNorm::new(weight.clone(), bias.clone(), 1e-5);
        Ok(Self {
            weight,
            bias,
            inner,
        })
    }

    /// Differentiable form (used by `forward`).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, 1e-5)
    }

    /// Fused CPU kernel (no backward), used by the teacher's sampler.
    pub(crate) fn step(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }

    /// The plain-memory copy used by the streaming kernels.
    pub(crate) fn fast(&self) -> Result<Ln> {
        Ln::new(&self.weight, &self.bias)
    }
}

/// Two-layer GELU MLP `W2 gelu(W1 x)`.
#[derive(Clone, Debug)]
pub(crate) struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub(crate) fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(dim, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, dim, vb.pp("fc2"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }

    /// Plain-memory copies of `fc1` and `fc2`.
    pub(crate) fn fast(&self) -> Result<(Dense, Dense)> {
        Ok((
            Dense::from_linear(&self.fc1)?,
            Dense::from_linear(&self.fc2)?,
        ))
    }
}

/// Rotary position embedding (RoFormer, Su et al. 2021), "rotate half"
/// layout. Angles are computed in f64 from absolute positions, so streams of
/// many hours keep exact relative phases.
#[derive(Clone, Debug)]
pub(crate) struct Rope {
    inv_freq: Vec<f64>,
}

impl Rope {
    pub(crate) fn new(head_dim: usize) -> Self {
        let half = head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| 1.0 / 10_000f64.powf(2.0 * i as f64 / head_dim as f64))
            .collect();
        Self { inv_freq }
    }

    /// cos/sin tables `[positions.len(), head_dim / 2]`.
    pub(crate) fn tables(&self, positions: &[u64], dev: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok((
            Tensor::from_vec(cos, (positions.len(), half), dev)?,
            Tensor::from_vec(sin, (positions.len(), half), dev)?,
        ))
    }
}

/// Differentiable rotary embedding of `x: [B, H, T, Dh]` with tables `[T, Dh/2]`.
fn rope_diff(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?
        .unsqueeze(0)?
        .unsqueeze(0)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?
        .unsqueeze(0)?
        .unsqueeze(0)?;
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

/// Multi-head self-attention over a sliding window of `window` frames
/// (the current frame and the `window - 1` before it), with RoPE; with
/// `kv_heads < heads`, grouped-query attention (query head `h` reads
/// key/value head `h / (heads / kv_heads)`). The `qkv` projection's rows
/// are `[q: heads · head_dim | k: kv_heads · head_dim | v: kv_heads ·
/// head_dim]`.
#[derive(Clone, Debug)]
pub(crate) struct WindowAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    window: usize,
    scale: f64,
}

impl WindowAttention {
    pub(crate) fn new(
        dim: usize,
        heads: usize,
        kv_heads: usize,
        window: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let head_dim = dim / heads;
        Ok(Self {
            qkv: linear(dim, dim + 2 * kv_heads * head_dim, vb.pp("qkv"))?,
            out: linear(dim, dim, vb.pp("out"))?,
            heads,
            kv_heads,
            head_dim,
            window,
            scale: 1.0 / (head_dim as f64).sqrt(),
        })
    }

    /// `q: [B, heads, T, head_dim]`, `k, v: [B, kv_heads, T, head_dim]`.
    fn split_qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let (hd, kv) = (self.head_dim, self.kv_heads);
        let qkv = self.qkv.forward(x)?;
        let q = qkv.narrow(D::Minus1, 0, self.heads * hd)?;
        let k = qkv.narrow(D::Minus1, self.heads * hd, kv * hd)?;
        let v = qkv.narrow(D::Minus1, (self.heads + kv) * hd, kv * hd)?;
        let split = |x: Tensor, n: usize| -> Result<Tensor> {
            x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()
        };
        Ok((split(q, self.heads)?, split(k, kv)?, split(v, kv)?))
    }

    /// `[B, kv_heads, T, hd]` → `[B, heads, T, hd]`, each key/value head
    /// repeated for its group of query heads.
    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let group = self.heads / self.kv_heads;
        if group == 1 {
            return Ok(x);
        }
        let (b, kv, t, hd) = x.dims4()?;
        x.unsqueeze(2)?
            .expand((b, kv, group, t, hd))?
            .reshape((b, kv * group, t, hd))
    }

    /// Batch form: `x: [B, T, dim]`, frame `i` at absolute position `i`.
    pub(crate) fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let (b, t, dim) = x.dims3()?;
        let dev = x.device();
        let (q, k, v) = self.split_qkv(x)?;
        let positions: Vec<u64> = (0..t as u64).collect();
        let (cos, sin) = rope.tables(&positions, dev)?;
        let q = rope_diff(&q, &cos, &sin)?;
        let k = self.repeat_kv(rope_diff(&k, &cos, &sin)?)?;
        let v = self.repeat_kv(v)?;
        let mut mask = vec![0f32; t * t];
        for i in 0..t {
            for j in 0..t {
                if j > i || i - j >= self.window {
                    mask[i * t + j] = f32::NEG_INFINITY;
                }
            }
        }
        let mask = Tensor::from_vec(mask, (t, t), dev)?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(&mask)?;
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let o = p.matmul(&v)?.transpose(1, 2)?.reshape((b, t, dim))?;
        self.out.forward(&o)
    }
}

/// Pre-norm transformer layer: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Clone, Debug)]
pub(crate) struct TransformerLayer {
    ln1: Norm,
    attn: WindowAttention,
    ln2: Norm,
    mlp: Mlp,
}

impl TransformerLayer {
    pub(crate) fn new(
        dim: usize,
        (heads, kv_heads): (usize, usize),
        ffn: usize,
        window: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            ln1: Norm::new(dim, vb.pp("ln1"))?,
            attn: WindowAttention::new(dim, heads, kv_heads, window, vb.pp("attn"))?,
            ln2: Norm::new(dim, vb.pp("ln2"))?,
            mlp: Mlp::new(dim, ffn, vb.pp("mlp"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, rope)?)?;
        &x + self.mlp.forward(&self.ln2.forward(&x)?)?
    }

    /// Plain-memory copy used by the streaming kernels.
    pub(crate) fn fast(&self) -> Result<LayerW> {
        let (fc1, fc2) = self.mlp.fast()?;
        Ok(LayerW {
            ln1: self.ln1.fast()?,
            qkv: Dense::from_linear(&self.attn.qkv)?,
            out: Dense::from_linear(&self.attn.out)?,
            ln2: self.ln2.fast()?,
            fc1,
            fc2,
        })
    }
}

/// Causal 1-D convolution over time (kernel `k`, left padding `k - 1`),
/// stored as one linear map over the `k` most recent frames concatenated
/// oldest first: `y_t = W [x_{t-k+1}; ...; x_t] + b`.
#[derive(Clone, Debug)]
pub(crate) struct CausalConv1d {
    proj: Linear,
    kernel: usize,
}

impl CausalConv1d {
    pub(crate) fn new(
        in_dim: usize,
        out_dim: usize,
        kernel: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            proj: linear(in_dim * kernel, out_dim, vb)?,
            kernel,
        })
    }

    /// `x: [B, T, in]` → `[B, T, out]`, zeros before the first frame.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let pad = Tensor::zeros((b, self.kernel - 1, c), x.dtype(), x.device())?;
        let padded = Tensor::cat(&[&pad, x], 1)?;
        let taps: Vec<Tensor> = (0..self.kernel)
            .map(|j| padded.narrow(1, j, t))
            .collect::<Result<_>>()?;
        self.proj.forward(&Tensor::cat(&taps, D::Minus1)?)
    }

    /// Plain-memory copy of the projection, used by the streaming kernels.
    pub(crate) fn fast(&self) -> Result<Dense> {
        Dense::from_linear(&self.proj)
    }
}
