//! The streaming step on plain memory: the online encoder and the one-step
//! student as straight-line kernels over preallocated buffers, with every
//! matrix product going through the `gemm` crate (the GEMM library candle
//! itself uses) without candle's per-op dispatch, shape checks and
//! temporaries. The batch (`forward`) networks in [`super::encoder`] and
//! [`super::denoiser`] stay the reference: `tests` prove the step matches them
//! within 1e-4 and a batch of sessions matches each session alone.
//!
//! State layout (one session, fixed size): the causal-conv taps
//! `[conv_kernel - 1, d_model]` and, per layer, a rotating key/value cache
//! `[2, heads, context, head_dim]` (keys, then values) in which the frame
//! at absolute position `p` lives in slot `p % context`. Each session owns
//! its slot; a batched step reads every session's cache in place, so there
//! is no concatenation per step, and adding or removing a session never
//! touches the others.
//!
//! Steady state allocates nothing: every intermediate lives in
//! [`StepScratch`], which only grows when a larger batch is seen.

use candle_core::{Result, Tensor};
use candle_nn::Linear;

use super::ModelConfig;
use super::denoiser::{EMOTION_INPUT, alpha_bar};
use crate::rig::BLENDSHAPE_COUNT;

/// A dense layer `y = x W^T + b`. The weights are kept transposed,
/// `W^T: [in, out]` row-major, which is the column-major left operand the
/// GEMM micro-kernels read without packing (the product runs as
/// `y^T = W x^T`).
#[derive(Clone)]
pub(crate) struct Dense {
    wt: Vec<f32>,
    /// `wt` as f16 bits, when every weight is exactly an f16 (a checkpoint
    /// stored in f16, see `TalkingHeadModel::save_f16`): small batches read
    /// these, half the bytes, with the same values.
    wt16: Option<Vec<u16>>,
    /// Whether this CPU runs [`small_batch_f16`] (AVX2, FMA, F16C),
    /// detected once when the layer is built, not on every product.
    f16_kernel: bool,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

/// Whether this CPU has the AVX2 + FMA (+ F16C) the vectorised kernels of
/// this module are built for.
fn cpu_has(f16c: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && (!f16c || std::is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = f16c;
        false
    }
}

/// `w` as f16 bits when f16 holds it exactly (a weight stored by
/// `TalkingHeadModel::save_f16`), else `None`.
pub(crate) fn exact_f16_bits(w: f32) -> Option<u16> {
    let h = half::f16::from_f32(w);
    (h.to_f32().to_bits() == w.to_bits()).then_some(h.to_bits())
}

/// Batches of at most this many rows run a dense layer with f16 weights
/// through [`small_batch_f16`]: at these sizes the product streams the
/// weights once per step and is bound by their bytes, not by arithmetic.
pub(crate) const F16_MAX_ROWS: usize = 4;

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dense({} -> {})", self.n_in, self.n_out)
    }
}

impl Dense {
    pub(crate) fn from_linear(l: &Linear) -> Result<Self> {
        let (n_out, n_in) = l.weight().dims2()?;
        let wt = l
            .weight()
            .t()?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = match l.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; n_out],
        };
        let wt16 = wt.iter().map(|&w| exact_f16_bits(w)).collect();
        Ok(Self {
            wt,
            wt16,
            f16_kernel: cpu_has(true),
            b,
            n_in,
            n_out,
        })
    }

    /// Whether small batches use f16 weights (see [`Dense::wt16`]).
    #[cfg(test)]
    pub(crate) fn has_f16(&self) -> bool {
        self.wt16.is_some()
    }

    /// FLOPs of one row (multiply-adds count 2).
    fn flops(&self) -> usize {
        2 * self.n_in * self.n_out
    }

    /// `y[m, out] = x[m, in] W^T + b`, or `y += x W^T + b` with `accumulate`.
    fn apply(&self, m: usize, x: &[f32], y: &mut [f32], accumulate: bool) {
        let (k, n) = (self.n_in, self.n_out);
        assert!(x.len() >= m * k && y.len() >= m * n, "dense sizes");
        if m == 0 {
            return;
        }
        for row in y[..m * n].chunks_exact_mut(n) {
            if accumulate {
                row.iter_mut().zip(&self.b).for_each(|(v, b)| *v += b);
            } else {
                row.copy_from_slice(&self.b);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(w16) = &self.wt16
            && m <= F16_MAX_ROWS
            && self.f16_kernel
        {
            // SAFETY: the CPU has AVX2, FMA and F16C (`f16_kernel`);
            // `x` holds m×k, `w16` k×n and `y` m×n values (asserted above
            // and by construction).
            unsafe { small_batch_f16(m, k, n, x, w16, y) };
            return;
        }
        // SAFETY: the asserts above keep every access of the m×k, k×n and m×n
        // views in bounds; the three buffers do not overlap (`y` is a unique
        // borrow).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.wt.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// `y[m, n] += x[m, k] W^T` for a few rows `m`, with `W^T: [k, n]` stored as
/// f16 bits, converted on load (F16C) and accumulated in f32 with FMA: the
/// same values as the f32 copy at half the bytes streamed. Four weight rows
/// are converted per pass over `y` and applied to every row of `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn small_batch_f16(m: usize, k: usize, n: usize, x: &[f32], w: &[u16], y: &mut [f32]) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_set1_ps, _mm256_storeu_ps,
    };
    assert!(x.len() >= m * k && w.len() >= k * n && y.len() >= m * n);
    let n8 = n / 8 * 8;
    let wp = w.as_ptr();
    let scalar = |i: usize, j: usize| half::f16::from_bits(w[i * n + j]).to_f32();
    let mut i = 0;
    while i + 4 <= k {
        let mut j = 0;
        while j < n8 {
            // SAFETY: rows i..i+4 < k and columns j..j+8 <= n8 <= n lie in
            // `w` (k×n); the loads read 8 u16 = 16 bytes unaligned.
            let (w0, w1, w2, w3) = unsafe {
                let at = |r: usize| {
                    _mm256_cvtph_ps(_mm_loadu_si128(wp.add(r * n + j) as *const __m128i))
                };
                (at(i), at(i + 1), at(i + 2), at(i + 3))
            };
            for r in 0..m {
                let xr = &x[r * k + i..r * k + i + 4];
                let yr = &mut y[r * n + j..r * n + j + 8];
                // SAFETY: `yr` holds exactly 8 floats.
                unsafe {
                    let mut acc = _mm256_loadu_ps(yr.as_ptr());
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(xr[0]), w0, acc);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(xr[1]), w1, acc);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(xr[2]), w2, acc);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(xr[3]), w3, acc);
                    _mm256_storeu_ps(yr.as_mut_ptr(), acc);
                }
            }
            j += 8;
        }
        for j in n8..n {
            for r in 0..m {
                let mut a = y[r * n + j];
                for ii in i..i + 4 {
                    a = x[r * k + ii].mul_add(scalar(ii, j), a);
                }
                y[r * n + j] = a;
            }
        }
        i += 4;
    }
    for ii in i..k {
        for r in 0..m {
            let xv = x[r * k + ii];
            for j in 0..n {
                y[r * n + j] = xv.mul_add(scalar(ii, j), y[r * n + j]);
            }
        }
    }
}

/// A square `n × n` fp32 matrix product `c = a b` on one thread through the
/// `gemm` crate, on fixed operands: the matmul-peak reference of
/// `talking-head bench` and the criterion benches (same library and thread
/// count as the streaming kernels).
#[derive(Debug)]
pub struct MatmulProbe {
    n: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl MatmulProbe {
    /// Operands of size `n × n` (deterministic values in [-0.5, 0.5]).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            a: (0..n * n)
                .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
                .collect(),
            b: (0..n * n)
                .map(|i| ((i % 89) as f32 - 44.0) * 0.01)
                .collect(),
            c: vec![0.0; n * n],
        }
    }

    /// FLOPs of one product (`2 n³`).
    pub fn flops(&self) -> u64 {
        2 * (self.n as u64).pow(3)
    }

    /// Runs one product; returns the result.
    pub fn run(&mut self) -> &[f32] {
        let n = self.n;
        // SAFETY: the three buffers hold n*n elements each (built in `new`);
        // `c` is a distinct allocation from `a` and `b`.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                self.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.a.as_ptr(),
                1,
                n as isize,
                self.b.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        &self.c
    }
}

/// LayerNorm parameters (eps 1e-5).
#[derive(Clone, Debug)]
pub(crate) struct Ln {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Ln {
    pub(crate) fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        Ok(Self {
            w: weight.to_vec1::<f32>()?,
            b: bias.to_vec1::<f32>()?,
        })
    }

    /// Normalises every row of `x` (`m` rows) into `y`.
    fn apply(&self, m: usize, x: &[f32], y: &mut [f32]) {
        let d = self.w.len();
        for (xr, yr) in x[..m * d]
            .chunks_exact(d)
            .zip(y[..m * d].chunks_exact_mut(d))
        {
            let mean = sum8(xr, |v| v) / d as f32;
            let var = sum8(xr, |v| (v - mean) * (v - mean)) / d as f32;
            let inv = 1.0 / (var + 1e-5).sqrt();
            for (((o, &v), &w), &b) in yr.iter_mut().zip(xr).zip(&self.w).zip(&self.b) {
                *o = (v - mean) * inv * w + b;
            }
        }
    }
}

/// tanh with Eigen's rational approximation (13/6 odd/even polynomials,
/// `generic_fast_tanh_float`): absolute error below 1e-6 on f32, and
/// vectorisable, unlike `f32::tanh`.
#[inline]
pub(crate) fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p * x2 + 2.000_188e-13;
    p = p * x2 + -8.604_672e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    p *= x;
    let mut q = 1.198_258_4e-6f32;
    q = q * x2 + 1.185_347e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    p / q
}

/// Dot product with eight independent partial sums, so the compiler can
/// vectorise it (a plain `sum` must keep the sequential order).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// Sum with eight independent partial sums (vectorisable).
#[inline]
fn sum8(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    for x in ac.chunks_exact(8) {
        for l in 0..8 {
            acc[l] += f(x[l]);
        }
    }
    acc.iter().sum::<f32>() + ar.iter().map(|&v| f(v)).sum::<f32>()
}

/// GELU, tanh form (as candle's `Tensor::gelu`), in place.
#[inline]
fn gelu(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + fast_tanh(C * u * (1.0 + 0.044715 * u * u)));
    }
}

/// One transformer layer's weights.
#[derive(Clone, Debug)]
pub(crate) struct LayerW {
    pub(crate) ln1: Ln,
    pub(crate) qkv: Dense,
    pub(crate) out: Dense,
    pub(crate) ln2: Ln,
    pub(crate) fc1: Dense,
    pub(crate) fc2: Dense,
}

/// The online encoder on plain memory (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct FastEncoder {
    pub(crate) in_proj: Dense,
    pub(crate) conv: Dense,
    pub(crate) layers: Vec<LayerW>,
    pub(crate) ln_f: Ln,
    d: usize,
    kernel: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    context: usize,
    inv_freq: Vec<f64>,
    /// Whether the attention runs its AVX2 + FMA build (detected once).
    simd: bool,
}

/// One session's encoder state: conv taps, KV caches and the absolute
/// position (frames stepped so far). Fixed size.
#[derive(Clone, Debug)]
pub(crate) struct EncoderState {
    conv: Vec<f32>,
    kv: Vec<f32>,
    pub(crate) pos: u64,
}

impl EncoderState {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        4 * (self.conv.capacity() + self.kv.capacity())
    }
}

/// Preallocated intermediates of a batched step. Reused across steps; only
/// grows (never shrinks) when a larger batch is seen.
#[derive(Debug, Default)]
pub struct StepScratch {
    pub(crate) feats: Vec<f32>,
    pub(crate) h: Vec<f32>,
    x: Vec<f32>,
    xn: Vec<f32>,
    win: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    hid: Vec<f32>,
    rope: Vec<f32>,
    scores: Vec<f32>,
    pub(crate) cond_in: Vec<f32>,
    pub(crate) noise: Vec<f32>,
    pub(crate) styles: Vec<usize>,
    pub(crate) active: Vec<usize>,
    cond: Vec<f32>,
    xin: Vec<f32>,
    z: Vec<f32>,
    zn: Vec<f32>,
    pub(crate) y: Vec<f32>,
}

impl StepScratch {
    /// Bytes held by the buffers (capacity).
    pub fn bytes(&self) -> usize {
        4 * [
            &self.feats,
            &self.h,
            &self.x,
            &self.xn,
            &self.win,
            &self.qkv,
            &self.att,
            &self.hid,
            &self.rope,
            &self.scores,
            &self.cond_in,
            &self.noise,
            &self.cond,
            &self.xin,
            &self.z,
            &self.zn,
            &self.y,
        ]
        .iter()
        .map(|v| v.capacity())
        .sum::<usize>()
            + std::mem::size_of::<usize>() * (self.styles.capacity() + self.active.capacity())
    }
}

/// `v` resized to `len` (zero-filled growth; capacity kept).
pub(crate) fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() != len {
        v.resize(len, 0.0);
    }
    &mut v[..]
}

impl FastEncoder {
    pub(crate) fn new(
        cfg: &ModelConfig,
        in_proj: Dense,
        conv: Dense,
        layers: Vec<LayerW>,
        ln_f: Ln,
    ) -> Self {
        let head_dim = cfg.d_model / cfg.n_heads;
        let half = head_dim / 2;
        Self {
            in_proj,
            conv,
            layers,
            ln_f,
            d: cfg.d_model,
            kernel: cfg.conv_kernel,
            heads: cfg.n_heads,
            kv_heads: cfg.kv_heads(),
            head_dim,
            context: cfg.context_frames,
            inv_freq: (0..half)
                .map(|i| 1.0 / 10_000f64.powf(2.0 * i as f64 / head_dim as f64))
                .collect(),
            simd: cpu_has(false),
        }
    }

    fn kv_len(&self) -> usize {
        2 * self.kv_heads * self.context * self.head_dim
    }

    /// A zeroed state.
    pub(crate) fn new_state(&self) -> EncoderState {
        EncoderState {
            conv: vec![0.0; (self.kernel - 1) * self.d],
            kv: vec![0.0; self.layers.len() * self.kv_len()],
            pos: 0,
        }
    }

    /// FLOPs of one session-step (matrix products and attention over a full
    /// window; element-wise work not counted).
    pub(crate) fn flops(&self) -> usize {
        let att = 2 * 2 * self.context * self.d; // q·k and p·v, every query head
        self.in_proj.flops()
            + self.conv.flops()
            + self
                .layers
                .iter()
                .map(|l| l.qkv.flops() + l.out.flops() + l.fc1.flops() + l.fc2.flops() + att)
                .sum::<usize>()
    }

    /// Advances the sessions `items[due[..]]` by one frame. `s.feats` holds
    /// their normalised input frames `[n, input_dim]` in `due` order; the
    /// encoder output `[n, d_model]` is left in `s.h`. `enc` reaches an
    /// item's state.
    pub(crate) fn step<S>(
        &self,
        items: &mut [S],
        due: &[usize],
        enc: impl Fn(&mut S) -> &mut EncoderState,
        s: &mut StepScratch,
    ) {
        let n = due.len();
        macro_rules! state {
            ($i:expr) => {
                enc(&mut items[due[$i]])
            };
        }
        let d = self.d;
        let k1 = self.kernel - 1;
        let (hd, half, ctx) = (self.head_dim, self.head_dim / 2, self.context);
        let StepScratch {
            feats,
            h,
            x,
            xn,
            win,
            qkv,
            att,
            hid,
            rope,
            scores,
            ..
        } = s;
        let x = sized(x, n * d);
        let xn = sized(xn, n * d);
        self.in_proj.apply(n, feats, x, false);
        // Causal conv over [taps; x], oldest first, then x += gelu(conv).
        let win = sized(win, n * self.kernel * d);
        for i in 0..n {
            let st = state!(i);
            let row = &mut win[i * self.kernel * d..(i + 1) * self.kernel * d];
            row[..k1 * d].copy_from_slice(&st.conv);
            row[k1 * d..].copy_from_slice(&x[i * d..(i + 1) * d]);
            st.conv.copy_from_slice(&row[d..]);
        }
        self.conv.apply(n, win, xn, false);
        gelu(xn);
        x.iter_mut().zip(xn.iter()).for_each(|(a, b)| *a += b);
        // RoPE tables per session: [n, half] cos then [n, half] sin.
        let rope = sized(rope, 2 * n * half);
        for i in 0..n {
            let p = state!(i).pos as f64;
            for (j, f) in self.inv_freq.iter().enumerate() {
                let a = p * f;
                rope[i * half + j] = a.cos() as f32;
                rope[(n + i) * half + j] = a.sin() as f32;
            }
        }
        let qkv_w = d + 2 * self.kv_heads * hd;
        let qkv = sized(qkv, n * qkv_w);
        let att = sized(att, n * d);
        let hid_len = self.layers.first().map_or(0, |l| l.fc1.n_out);
        let hid = sized(hid, n * hid_len);
        let scores = sized(scores, (self.heads / self.kv_heads) * ctx);
        let scale = 1.0 / (hd as f32).sqrt();
        let kv_len = self.kv_len();
        for (l, layer) in self.layers.iter().enumerate() {
            layer.ln1.apply(n, x, xn);
            layer.qkv.apply(n, xn, qkv, false);
            for i in 0..n {
                let st = state!(i);
                let pos = st.pos;
                let slot = (pos % ctx as u64) as usize;
                let valid = ((pos + 1) as usize).min(ctx);
                let cache = &mut st.kv[l * kv_len..(l + 1) * kv_len];
                let (kc, vc) = cache.split_at_mut(kv_len / 2);
                let row = &mut qkv[i * qkv_w..(i + 1) * qkv_w];
                let cos = &rope[i * half..(i + 1) * half];
                let sin = &rope[(n + i) * half..(n + i + 1) * half];
                let heads = Heads {
                    n: self.heads,
                    kv: self.kv_heads,
                    simd: self.simd,
                    hd,
                    ctx,
                    slot,
                    valid,
                    scale,
                };
                attend(
                    &heads,
                    AttnIo {
                        row,
                        kc,
                        vc,
                        cos,
                        sin,
                        o: &mut att[i * d..(i + 1) * d],
                        scores,
                    },
                );
            }
            layer.out.apply(n, att, x, true);
            layer.ln2.apply(n, x, xn);
            layer.fc1.apply(n, xn, hid, false);
            gelu(hid);
            layer.fc2.apply(n, hid, x, true);
        }
        for i in 0..n {
            state!(i).pos += 1;
        }
        let h = sized(h, n * d);
        self.ln_f.apply(n, x, h);
    }
}

/// Most query heads per key/value head (`n_heads` is at most this).
const MAX_GROUP: usize = super::config::MAX_HEADS;

/// Geometry of one session's attention step.
struct Heads {
    /// Query heads.
    n: usize,
    /// Key/value heads (divides `n`).
    kv: usize,
    /// The CPU has AVX2 and FMA.
    simd: bool,
    hd: usize,
    ctx: usize,
    /// Cache slot of the current frame.
    slot: usize,
    /// Slots written so far (at most `ctx`).
    valid: usize,
    scale: f32,
}

/// The buffers of one session's attention step.
struct AttnIo<'a> {
    /// This frame's `[q: heads | k: kv heads | v: kv heads]`, rotated in
    /// place.
    row: &'a mut [f32],
    /// Key cache `[kv heads, ctx, head_dim]`.
    kc: &'a mut [f32],
    /// Value cache `[kv heads, ctx, head_dim]`.
    vc: &'a mut [f32],
    cos: &'a [f32],
    sin: &'a [f32],
    /// Output `[heads * head_dim]`.
    o: &'a mut [f32],
    /// Softmax scratch, at least `(heads / kv heads) · ctx` long.
    scores: &'a mut [f32],
}

/// One session's attention step over its rotating cache, every head: RoPE
/// on the queries and keys in `row`, each key/value head's key and value
/// written to slot `g.slot`, softmax over the valid slots, the weighted
/// values into `o`. The query heads of one group are scored in the same
/// pass over their shared keys and values (grouped-query attention reads
/// the cache once per group). Dispatches to an AVX2 + FMA build where the
/// CPU has it (`g.simd`; the crate is compiled for baseline x86-64).
fn attend(g: &Heads, io: AttnIo<'_>) {
    #[cfg(target_arch = "x86_64")]
    if g.simd {
        // SAFETY: the CPU supports AVX2 and FMA (`g.simd`, from `cpu_has`).
        unsafe { attend_avx2(g, io) };
        return;
    }
    attend_body(g, io);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attend_avx2(g: &Heads, io: AttnIo<'_>) {
    attend_body(g, io);
}

/// `e^x` for `x <= 0` (softmax after the max is taken out), Cephes `expf`
/// (range reduction by `ln 2` in two parts, degree-5 polynomial): relative
/// error about 1e-7, and vectorisable, unlike `f32::exp`. Below −87 it
/// returns `e^-87` (≈ 1.6e-38) rather than a denormal.
#[inline(always)]
fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.clamp(-87.0, 0.0);
    let fx = (x * LOG2E + 0.5).floor();
    let r = x - fx * 0.693_359_4 + fx * 2.121_944_4e-4;
    let z = r * r;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5;
    y = y * z + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) << 23) as u32)
}

#[inline(always)]
fn attend_body(g: &Heads, io: AttnIo<'_>) {
    let AttnIo {
        row,
        kc,
        vc,
        cos,
        sin,
        o,
        scores,
    } = io;
    let (hd, ctx, valid) = (g.hd, g.ctx, g.valid);
    let half = hd / 2;
    let group = g.n / g.kv;
    let d = g.n * hd;
    let kvd = g.kv * hd;
    // Rotate-half RoPE on every query and key head.
    for v in row[..d + kvd].chunks_exact_mut(hd) {
        for j in 0..half {
            let (a, b) = (v[j], v[j + half]);
            v[j] = a * cos[j] - b * sin[j];
            v[j + half] = a * sin[j] + b * cos[j];
        }
    }
    let (q_all, kv_row) = row.split_at(d);
    for kh in 0..g.kv {
        let base = (kh * ctx + g.slot) * hd;
        kc[base..base + hd].copy_from_slice(&kv_row[kh * hd..(kh + 1) * hd]);
        vc[base..base + hd].copy_from_slice(&kv_row[kvd + kh * hd..kvd + (kh + 1) * hd]);
        let q = &q_all[kh * group * hd..(kh + 1) * group * hd];
        let keys = &kc[kh * ctx * hd..(kh * ctx + valid) * hd];
        for (j, kr) in keys.chunks_exact(hd).enumerate() {
            for (qi, qh) in q.chunks_exact(hd).enumerate() {
                scores[qi * ctx + j] = dot(qh, kr) * g.scale;
            }
        }
        let o = &mut o[kh * group * hd..(kh + 1) * group * hd];
        o.fill(0.0);
        let mut inv = [0f32; MAX_GROUP];
        for (qi, inv) in inv.iter_mut().enumerate().take(group) {
            let sc = &mut scores[qi * ctx..qi * ctx + valid];
            let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            sc.iter_mut().for_each(|v| *v = exp_nonpos(*v - max));
            *inv = 1.0 / sum8(sc, |v| v);
        }
        let values = &vc[kh * ctx * hd..(kh * ctx + valid) * hd];
        for (j, vr) in values.chunks_exact(hd).enumerate() {
            for (qi, oh) in o.chunks_exact_mut(hd).enumerate() {
                let p = scores[qi * ctx + j];
                oh.iter_mut().zip(vr).for_each(|(a, b)| *a += p * b);
            }
        }
        for (oh, inv) in o.chunks_exact_mut(hd).zip(inv) {
            oh.iter_mut().for_each(|a| *a *= inv);
        }
    }
}

/// The one-step student decoder on plain memory: `x0 = f(noise, t = 1)`.
#[derive(Clone, Debug)]
pub(crate) struct FastDenoiser {
    pub(crate) in_cond: Dense,
    pub(crate) in_x: Dense,
    pub(crate) style: Vec<f32>,
    pub(crate) blocks: Vec<(Ln, Dense, Dense)>,
    pub(crate) ln_out: Ln,
    pub(crate) out: Dense,
    /// Time embedding at t = 1.
    pub(crate) temb: Vec<f32>,
    /// `x0 = a * x_t - b * out` (v-prediction) or `x0 = out` (`None`).
    pub(crate) v_coeffs: Option<(f32, f32)>,
}

impl FastDenoiser {
    /// `(sqrt(abar(1)), sqrt(1 - abar(1)))` for v-prediction.
    pub(crate) fn v_coeffs_at_one(offset: f64) -> (f32, f32) {
        let ab = alpha_bar(1.0, offset);
        (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32)
    }

    /// FLOPs of one session-step.
    pub(crate) fn flops(&self) -> usize {
        self.in_cond.flops()
            + self.in_x.flops()
            + self.out.flops()
            + self
                .blocks
                .iter()
                .map(|(_, a, b)| a.flops() + b.flops())
                .sum::<usize>()
    }

    /// One-step sampling of `n` frames. Reads `s.cond_in [n, cond_width]`,
    /// `s.styles [n]` and `s.noise [n, 52]`; leaves `x0 [n, 52]` in `s.y`.
    pub(crate) fn sample(&self, n: usize, s: &mut StepScratch) {
        let hdim = self.in_cond.n_out;
        let StepScratch {
            cond_in,
            noise,
            styles,
            cond,
            xin,
            z,
            zn,
            y,
            hid,
            ..
        } = s;
        let cond = sized(cond, n * hdim);
        self.in_cond.apply(n, cond_in, cond, false);
        for (i, &st) in styles[..n].iter().enumerate() {
            let e = &self.style[st * hdim..(st + 1) * hdim];
            cond[i * hdim..(i + 1) * hdim]
                .iter_mut()
                .zip(e)
                .for_each(|(a, b)| *a += b);
        }
        let tdim = self.temb.len();
        let xw = BLENDSHAPE_COUNT + tdim;
        let xin = sized(xin, n * xw);
        for i in 0..n {
            xin[i * xw..i * xw + BLENDSHAPE_COUNT]
                .copy_from_slice(&noise[i * BLENDSHAPE_COUNT..(i + 1) * BLENDSHAPE_COUNT]);
            xin[i * xw + BLENDSHAPE_COUNT..(i + 1) * xw].copy_from_slice(&self.temb);
        }
        let z = sized(z, n * hdim);
        z.copy_from_slice(cond);
        self.in_x.apply(n, xin, z, true);
        let zn = sized(zn, n * hdim);
        let hid_len = self.blocks.first().map_or(0, |b| b.1.n_out);
        let hid = sized(hid, n * hid_len);
        for (ln, fc1, fc2) in &self.blocks {
            ln.apply(n, z, zn);
            fc1.apply(n, zn, hid, false);
            gelu(hid);
            fc2.apply(n, hid, z, true);
        }
        self.ln_out.apply(n, z, zn);
        let y = sized(y, n * BLENDSHAPE_COUNT);
        self.out.apply(n, zn, y, false);
        if let Some((a, b)) = self.v_coeffs {
            for (o, &x) in y.iter_mut().zip(noise[..n * BLENDSHAPE_COUNT].iter()) {
                *o = a * x - b * *o;
            }
        }
    }
}

/// Width of the emotion part of a conditioning row.
pub(crate) const EMOTION_WIDTH: usize = EMOTION_INPUT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_std_within_1e_6() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        for x in [-1e9f32, -50.0, 50.0, 1e9] {
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "worst {worst}");
    }

    #[test]
    fn exp_nonpos_matches_std_within_1e_6_relative() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = (x as f64).exp();
            worst = worst.max(((exp_nonpos(x) as f64) - want).abs() / want);
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert!(exp_nonpos(f32::NEG_INFINITY) >= 0.0 && exp_nonpos(-1e9) < 1e-37);
        assert_eq!(exp_nonpos(0.0), 1.0);
    }

    #[test]
    fn dense_matches_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let dense = Dense {
            wt,
            wt16: None,
            f16_kernel: false,
            b: b.clone(),
            n_in: k,
            n_out: n,
        };
        let mut y = vec![1.0; m * n];
        dense.apply(m, &x, &mut y, true);
        for r in 0..m {
            for c in 0..n {
                let want: f32 =
                    1.0 + b[c] + (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum::<f32>();
                assert!((y[r * n + c] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn f16_weights_match_the_f32_product_at_small_batches() {
        // Weights exactly representable in f16 take the f16 path for
        // 1..=F16_MAX_ROWS rows (odd k and n exercise the tails); results
        // match the f32 GEMM on the same values.
        let (k, n) = (11, 21);
        let w: Vec<f32> = (0..k * n)
            .map(|i| half::f16::from_f32((i as f32 * 0.37).sin()).to_f32())
            .collect();
        let lin = candle_nn::Linear::new(
            Tensor::from_vec(w, (n, k), &candle_core::Device::Cpu).unwrap(),
            Some(
                Tensor::from_vec(
                    (0..n).map(|i| i as f32 * 0.1).collect::<Vec<f32>>(),
                    n,
                    &candle_core::Device::Cpu,
                )
                .unwrap(),
            ),
        );
        let dense = Dense::from_linear(&lin).unwrap();
        assert!(dense.has_f16());
        let f32_only = Dense {
            wt16: None,
            ..dense.clone()
        };
        for m in 1..=F16_MAX_ROWS + 1 {
            let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let (mut a, mut b) = (vec![0.5; m * n], vec![0.5; m * n]);
            dense.apply(m, &x, &mut a, true);
            f32_only.apply(m, &x, &mut b, true);
            let err = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "m {m}: {err}");
        }
        let inexact = candle_nn::Linear::new(
            Tensor::from_vec(vec![0.1f32; k * n], (n, k), &candle_core::Device::Cpu).unwrap(),
            None,
        );
        assert!(
            !Dense::from_linear(&inexact).unwrap().has_f16(),
            "0.1 is no f16"
        );
    }
}
