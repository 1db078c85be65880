//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
//! ICLR 2019) over named candle variables, with its state (first and second
//! moments, step count) saved and restored, so a resumed run continues
//! exactly where it stopped. candle-nn's `AdamW` keeps its moments private,
//! which forced a moment-less resume before; the update rule here is the
//! same as candle-nn 0.11's, plus optional global-norm gradient clipping.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use talking_head_core::model::ModelError;

/// AdamW hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient L2 norm to this value (`None`: no clipping).
    pub clip_norm: Option<f64>,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            clip_norm: None,
        }
    }
}

struct Slot {
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// AdamW over named variables with saveable state.
pub struct NamedAdamW {
    slots: BTreeMap<String, Slot>,
    /// Hyper-parameters (the learning rate may change every step).
    pub params: AdamWParams,
    /// Updates done.
    pub t: u64,
}

impl NamedAdamW {
    /// Fresh state (zero moments) for `vars`.
    pub fn new(vars: &BTreeMap<String, Var>, params: AdamWParams) -> Result<Self, ModelError> {
        let mut slots = BTreeMap::new();
        for (k, var) in vars {
            let z = var.as_tensor().zeros_like()?;
            slots.insert(
                k.clone(),
                Slot {
                    var: var.clone(),
                    m: z.clone(),
                    v: z,
                },
            );
        }
        Ok(Self {
            slots,
            params,
            t: 0,
        })
    }

    /// One AdamW update from `grads`; returns the global gradient norm
    /// before clipping.
    pub fn step(&mut self, grads: &GradStore) -> Result<f32, ModelError> {
        let mut sq = 0f64;
        for s in self.slots.values() {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        let norm = sq.sqrt();
        let scale = match self.params.clip_norm {
            Some(c) if norm.is_finite() && norm > c && c > 0.0 => c / norm,
            _ => 1.0,
        };
        if !norm.is_finite() {
            return Err(ModelError::BadInput(format!(
                "gradient norm is {norm}: training diverged"
            )));
        }
        self.t += 1;
        let p = self.params;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(self.t as i32));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(self.t as i32));
        for s in self.slots.values_mut() {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let g = (g * scale)?;
            let m = ((&s.m * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&s.v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&m * scale_m)?;
            let v_hat = (&v * scale_v)?;
            let theta = (s.var.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
            let upd = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            s.var.set(&(theta - (upd * p.lr)?)?)?;
            s.m = m;
            s.v = v;
        }
        Ok(norm as f32)
    }

    /// Writes the moments and step count to `path` (safetensors:
    /// `m.<name>`, `v.<name>`, metadata `t`).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let mut map: BTreeMap<String, Tensor> = BTreeMap::new();
        for (k, s) in &self.slots {
            map.insert(format!("m.{k}"), s.m.clone());
            map.insert(format!("v.{k}"), s.v.clone());
        }
        let tmp = path.with_extension("tmp");
        let meta: std::collections::HashMap<String, String> =
            [("t".to_string(), self.t.to_string())].into();
        let views: Vec<(String, Tensor)> = map.into_iter().collect();
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = views
            .iter()
            .map(|(k, t)| -> Result<_, ModelError> {
                let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Ok((k.clone(), bytes, t.dims().to_vec()))
            })
            .collect::<Result<_, _>>()?;
        let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(k, b, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, d.clone(), b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| ModelError::InvalidConfig(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        safetensors::serialize_to_file(tensors, Some(meta), &tmp)
            .map_err(|e| ModelError::InvalidConfig(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Restores moments and step count written by [`NamedAdamW::save`].
    /// Every variable must have both moments with its own shape.
    pub fn load(&mut self, path: &Path) -> Result<(), ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let t: u64 = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("t"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("no step count `t` in the metadata".into()))?;
        let st =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let read = |name: &str, like: &Tensor| -> Result<Tensor, ModelError> {
            let v = st
                .tensor(name)
                .map_err(|_| corrupt(format!("missing tensor `{name}`")))?;
            if v.dtype() != safetensors::Dtype::F32 || v.shape() != like.dims() {
                return Err(corrupt(format!(
                    "`{name}`: shape {:?} {:?}, expected {:?} F32",
                    v.shape(),
                    v.dtype(),
                    like.dims()
                )));
            }
            let data: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(Tensor::from_vec(data, like.dims(), &Device::Cpu)?.to_dtype(DType::F32)?)
        };
        for (k, s) in self.slots.iter_mut() {
            s.m = read(&format!("m.{k}"), s.var.as_tensor())?;
            s.v = read(&format!("v.{k}"), s.var.as_tensor())?;
        }
        self.t = t;
        Ok(())
    }

    /// First moment of variable `name` (tests).
    pub fn first_moment(&self, name: &str) -> Option<&Tensor> {
        self.slots.get(name).map(|s| &s.m)
    }
}
