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
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

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
        Ok(Self { wt, b, n_in, n_out })
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
    head_dim: usize,
    context: usize,
    inv_freq: Vec<f64>,
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
            head_dim,
            context: cfg.context_frames,
            inv_freq: (0..half)
                .map(|i| 1.0 / 10_000f64.powf(2.0 * i as f64 / head_dim as f64))
                .collect(),
        }
    }

    fn kv_len(&self) -> usize {
        2 * self.heads * self.context * self.head_dim
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
        let att = 2 * 2 * self.context * self.d;
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
        let qkv = sized(qkv, n * 3 * d);
        let att = sized(att, n * d);
        let hid_len = self.layers.first().map_or(0, |l| l.fc1.n_out);
        let hid = sized(hid, n * hid_len);
        let scores = sized(scores, ctx);
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
                let row = &mut qkv[i * 3 * d..(i + 1) * 3 * d];
                let cos = &rope[i * half..(i + 1) * half];
                let sin = &rope[(n + i) * half..(n + i + 1) * half];
                let heads = Heads {
                    n: self.heads,
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

/// Geometry of one session's attention step.
struct Heads {
    n: usize,
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
    /// This frame's `[q | k | v]`, rotated in place.
    row: &'a mut [f32],
    /// Key cache `[heads, ctx, head_dim]`.
    kc: &'a mut [f32],
    /// Value cache `[heads, ctx, head_dim]`.
    vc: &'a mut [f32],
    cos: &'a [f32],
    sin: &'a [f32],
    /// Output `[heads * head_dim]`.
    o: &'a mut [f32],
    /// Softmax scratch, at least `ctx` long.
    scores: &'a mut [f32],
}

/// One session's attention step over its rotating cache, every head: RoPE
/// on the query and key in `row = [q | k | v]`, the key and value written
/// to slot `g.slot`, softmax over the valid slots, the weighted values into
/// `o`. Dispatches to an AVX2 build where the CPU has it (the crate is
/// compiled for baseline x86-64).
fn attend(g: &Heads, io: AttnIo<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { attend_avx2(g, io) };
        return;
    }
    attend_body(g, io);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn attend_avx2(g: &Heads, io: AttnIo<'_>) {
    attend_body(g, io);
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
    let (hd, ctx) = (g.hd, g.ctx);
    let half = hd / 2;
    let d = g.n * hd;
    for hh in 0..g.n {
        // Rotate-half RoPE on this head's query and key.
        for part in 0..2 {
            let v = &mut row[part * d + hh * hd..part * d + (hh + 1) * hd];
            for j in 0..half {
                let (a, b) = (v[j], v[j + half]);
                v[j] = a * cos[j] - b * sin[j];
                v[j + half] = a * sin[j] + b * cos[j];
            }
        }
        let base = (hh * ctx + g.slot) * hd;
        kc[base..base + hd].copy_from_slice(&row[d + hh * hd..d + (hh + 1) * hd]);
        vc[base..base + hd].copy_from_slice(&row[2 * d + hh * hd..2 * d + (hh + 1) * hd]);
        let q = &row[hh * hd..(hh + 1) * hd];
        let keys = &kc[hh * ctx * hd..(hh * ctx + g.valid) * hd];
        let sc = &mut scores[..g.valid];
        let mut max = f32::NEG_INFINITY;
        for (sv, kr) in sc.iter_mut().zip(keys.chunks_exact(hd)) {
            *sv = dot(q, kr) * g.scale;
            max = max.max(*sv);
        }
        let mut sum = 0f32;
        for sv in sc.iter_mut() {
            *sv = (*sv - max).exp();
            sum += *sv;
        }
        let inv = 1.0 / sum;
        let o = &mut o[hh * hd..(hh + 1) * hd];
        o.fill(0.0);
        let values = &vc[hh * ctx * hd..(hh * ctx + g.valid) * hd];
        for (&p, vr) in sc.iter().zip(values.chunks_exact(hd)) {
            let p = p * inv;
            o.iter_mut().zip(vr).for_each(|(a, b)| *a += p * b);
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
    fn dense_matches_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let dense = Dense {
            wt,
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
}
