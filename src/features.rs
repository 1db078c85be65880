//! TEMPORARY stand-in (replaced by the features module being written).
#![allow(missing_docs)]
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MelConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub win_length: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub f_min: f32,
    pub f_max: f32,
}
impl Default for MelConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16000,
            n_fft: 400,
            win_length: 400,
            hop_length: 160,
            n_mels: 80,
            f_min: 0.0,
            f_max: 8000.0,
        }
    }
}
impl MelConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}
impl FeatureNorm {
    pub fn identity(n: usize) -> Self {
        Self {
            mean: vec![0.0; n],
            std: vec![1.0; n],
        }
    }
    pub fn validate(&self, _n: usize) -> Result<(), String> {
        Ok(())
    }
    pub fn apply(&self, frames: &mut [f32]) {
        let n = self.mean.len();
        for (i, v) in frames.iter_mut().enumerate() {
            *v = (*v - self.mean[i % n]) / self.std[i % n];
        }
    }
}
