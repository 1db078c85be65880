//! Building blocks of the model, each with a batch `forward` (differentiable,
//! used by the trainer) and, for the streaming ones, a `step` (fused CPU ops,
//! used at run time). Tests in `tests/streaming_parity.rs` prove that
//! stepping reproduces `forward` within 1e-4.

use candle_core::{D, DType, Device, Module, Result, Tensor};
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

    /// Fused CPU kernel (no backward), used by `step`.
    pub(crate) fn step(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
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

/// One session's rotating key/value cache for one attention layer:
/// `k, v: [1, heads, window, head_dim]`; the key of absolute position `p`
/// lives in slot `p % window`. Memory is fixed whatever the stream length.
/// The cache is written in place, so it is deliberately not `Clone` (a
/// shallow clone would alias the storage).
#[derive(Debug)]
pub(crate) struct KvCache {
    k: Tensor,
    v: Tensor,
}

impl KvCache {
    pub(crate) fn new(heads: usize, window: usize, head_dim: usize, dev: &Device) -> Result<Self> {
        Ok(Self {
            k: Tensor::zeros((1, heads, window, head_dim), DType::F32, dev)?,
            v: Tensor::zeros((1, heads, window, head_dim), DType::F32, dev)?,
        })
    }

    /// Bytes held by this cache.
    pub(crate) fn bytes(&self) -> usize {
        2 * self.k.elem_count() * 4
    }
}

/// Multi-head self-attention over a sliding window of `window` frames
/// (the current frame and the `window - 1` before it), with RoPE.
#[derive(Clone, Debug)]
pub(crate) struct WindowAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
    window: usize,
    scale: f64,
}

impl WindowAttention {
    pub(crate) fn new(dim: usize, heads: usize, window: usize, vb: VarBuilder) -> Result<Self> {
        let head_dim = dim / heads;
        Ok(Self {
            qkv: linear(dim, 3 * dim, vb.pp("qkv"))?,
            out: linear(dim, dim, vb.pp("out"))?,
            heads,
            head_dim,
            window,
            scale: 1.0 / (head_dim as f64).sqrt(),
        })
    }

    fn split_qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        Ok((q, k, v))
    }

    /// Batch form: `x: [B, T, dim]`, frame `i` at absolute position `i`.
    pub(crate) fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let (b, t, dim) = x.dims3()?;
        let dev = x.device();
        let (q, k, v) = self.split_qkv(x)?;
        let positions: Vec<u64> = (0..t as u64).collect();
        let (cos, sin) = rope.tables(&positions, dev)?;
        let q = rope_diff(&q, &cos, &sin)?;
        let k = rope_diff(&k, &cos, &sin)?;
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

    /// Streaming form: `x: [B, 1, dim]`, one frame for each of `B` sessions,
    /// whose absolute positions are `positions[b]`; writes this frame's key
    /// and value into each session's rotating cache.
    pub(crate) fn step(
        &self,
        x: &Tensor,
        positions: &[u64],
        rope: &Rope,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (b, _, dim) = x.dims3()?;
        let dev = x.device();
        let (q, k, v) = self.split_qkv(x)?;
        let (cos, sin) = rope.tables(positions, dev)?;
        let half = self.head_dim / 2;
        let cos = cos.reshape((b, 1, half))?;
        let sin = sin.reshape((b, 1, half))?;
        let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
        let mut any_partial = false;
        for (i, cache) in caches.iter_mut().enumerate() {
            let slot = (positions[i] % self.window as u64) as usize;
            cache.k.slice_set(&k.narrow(0, i, 1)?, 2, slot)?;
            cache.v.slice_set(&v.narrow(0, i, 1)?, 2, slot)?;
            any_partial |= positions[i] + 1 < self.window as u64;
        }
        let (keys, values) = if b == 1 {
            (caches[0].k.clone(), caches[0].v.clone())
        } else {
            let ks: Vec<&Tensor> = caches.iter().map(|c| &c.k).collect();
            let vs: Vec<&Tensor> = caches.iter().map(|c| &c.v).collect();
            (Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?)
        };
        let mut scores = (q.matmul(&keys.t()?)? * self.scale)?;
        if any_partial {
            // Slots not written yet (stream shorter than the window) are masked.
            let mut mask = vec![0f32; b * self.window];
            for (i, &p) in positions.iter().enumerate() {
                for s in (p as usize + 1).min(self.window)..self.window {
                    mask[i * self.window + s] = f32::NEG_INFINITY;
                }
            }
            let mask = Tensor::from_vec(mask, (b, 1, 1, self.window), dev)?;
            scores = scores.broadcast_add(&mask)?;
        }
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let o = p.matmul(&values)?.transpose(1, 2)?.reshape((b, 1, dim))?;
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
        heads: usize,
        ffn: usize,
        window: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            ln1: Norm::new(dim, vb.pp("ln1"))?,
            attn: WindowAttention::new(dim, heads, window, vb.pp("attn"))?,
            ln2: Norm::new(dim, vb.pp("ln2"))?,
            mlp: Mlp::new(dim, ffn, vb.pp("mlp"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, rope)?)?;
        &x + self.mlp.forward(&self.ln2.forward(&x)?)?
    }

    pub(crate) fn step(
        &self,
        x: &Tensor,
        positions: &[u64],
        rope: &Rope,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let x = (x + self
            .attn
            .step(&self.ln1.step(x)?, positions, rope, caches)?)?;
        &x + self.mlp.forward(&self.ln2.step(&x)?)?
    }

    pub(crate) fn new_cache(&self, dev: &Device) -> Result<KvCache> {
        KvCache::new(self.attn.heads, self.attn.window, self.attn.head_dim, dev)
    }
}

/// Causal 1-D convolution over time (kernel `k`, left padding `k - 1`),
/// stored as one linear map over the `k` most recent frames concatenated
/// oldest first: `y_t = W [x_{t-k+1}; ...; x_t] + b`.
#[derive(Clone, Debug)]
pub(crate) struct CausalConv1d {
    proj: Linear,
    kernel: usize,
    in_dim: usize,
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
            in_dim,
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

    /// Zeroed streaming state `[1, k - 1, in]` for one session.
    pub(crate) fn new_state(&self, dev: &Device) -> Result<Tensor> {
        Tensor::zeros((1, self.kernel - 1, self.in_dim), DType::F32, dev)
    }

    /// `x: [B, 1, in]`; `states[b]: [1, k - 1, in]` are the previous frames
    /// of each session, updated in place.
    pub(crate) fn step(&self, x: &Tensor, states: &mut [&mut Tensor]) -> Result<Tensor> {
        let b = x.dim(0)?;
        let prev = if b == 1 {
            states[0].clone()
        } else {
            let refs: Vec<&Tensor> = states.iter().map(|s| &**s).collect();
            Tensor::cat(&refs, 0)?
        };
        let window = Tensor::cat(&[&prev, x], 1)?; // [B, k, in]
        let y = self
            .proj
            .forward(&window.reshape((b, 1, self.kernel * self.in_dim))?)?;
        for (i, s) in states.iter_mut().enumerate() {
            **s = window
                .narrow(0, i, 1)?
                .narrow(1, 1, self.kernel - 1)?
                .contiguous()?;
        }
        Ok(y)
    }
}
