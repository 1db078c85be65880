//! Seeded, recorded parameter initialisation and shape probing of the
//! networks (candle's CPU RNG cannot be seeded).

use super::*;

/// Seeded initialiser: produces the same weights for the same seed and name
/// (candle's CPU RNG cannot be seeded), and records what it made.
pub(super) struct SeededInit {
    pub(super) seed: u64,
    pub(super) made: Mutex<BTreeMap<String, Tensor>>,
}

pub(super) fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        use candle_nn::Init;
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(name_seed(self.seed, name));
        let n = s.elem_count();
        let data: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| (mean + stdev * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect(),
            Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..up) as f32).collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(&s) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
                    }
                    candle_nn::init::NormalOrUniform::Normal => (0..n)
                        .map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32)
                        .collect(),
                }
            }
        };
        let t = Tensor::from_vec(data, s, dev)?.to_dtype(dtype)?;
        self.made
            .lock()
            .map_err(|_| candle_core::Error::Msg("initialiser lock poisoned".into()))?
            .insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("seeded initialiser cannot create {name} without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// Records parameter shapes without allocating their data (each tensor is
/// a broadcast scalar), so a hostile config is sized before anything big
/// is allocated.
pub(super) struct ShapeProbe {
    pub(super) shapes: Mutex<BTreeMap<String, Vec<usize>>>,
}

impl candle_nn::var_builder::SimpleBackend for ShapeProbe {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.shapes
            .lock()
            .map_err(|_| candle_core::Error::Msg("shape probe lock poisoned".into()))?
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("shape probe cannot create {name} without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A shared handle to a backend, so the caller keeps it after the
/// `VarBuilder` that owns the box is dropped.
pub(super) struct Shared<B>(std::sync::Arc<B>);

impl<B: candle_nn::var_builder::SimpleBackend> candle_nn::var_builder::SimpleBackend for Shared<B> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, d: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, d, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// Builds the encoder, student and teacher over `backend`, so it sees (and
/// creates, or records) every parameter.
pub(super) fn build_all<B: candle_nn::var_builder::SimpleBackend>(
    config: &ModelConfig,
    backend: &std::sync::Arc<B>,
) -> Result<(), ModelError> {
    let vb = VarBuilder::from_backend(Box::new(Shared(backend.clone())), DType::F32, Device::Cpu);
    OnlineEncoder::new(config, vb.pp("encoder"))?;
    Denoiser::new(config, vb.pp("student"))?;
    Denoiser::new(config, vb.pp("teacher"))?;
    Ok(())
}
