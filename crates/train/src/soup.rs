//! Uniform weight averaging of checkpoints fine-tuned from one starting
//! point (a "model soup": Wortsman et al. 2022, *Model soups: averaging
//! weights of multiple fine-tuned models improves accuracy without
//! increasing inference time*). Runs that differ only in their seed land in
//! one basin of the loss, so their average is a model of the same size that
//! is usually at least as good as each and less dependent on the seed.

use std::collections::BTreeMap;

use candle_core::DType;
use talking_head_core::model::{ModelError, Provenance, TalkingHeadModel};

/// The element-wise mean of `models`' tensors, as one model with the first
/// model's config and normalisation (in f32).
///
/// # Errors
/// [`ModelError::InvalidConfig`] when fewer than two models are given, or
/// when they differ in config, feature or motion normalisation, tensor
/// names or shapes (averaging is only meaningful for fine-tunes of one
/// checkpoint); candle errors from the arithmetic.
pub fn uniform_soup(models: &[&TalkingHeadModel]) -> Result<TalkingHeadModel, ModelError> {
    let [first, rest @ ..] = models else {
        return Err(ModelError::InvalidConfig(
            "a model soup needs at least two checkpoints".into(),
        ));
    };
    if rest.is_empty() {
        return Err(ModelError::InvalidConfig(
            "a model soup needs at least two checkpoints".into(),
        ));
    }
    for (i, m) in rest.iter().enumerate() {
        let n = i + 2;
        if m.config() != first.config() {
            return Err(ModelError::InvalidConfig(format!(
                "checkpoint {n} has another model config than the first"
            )));
        }
        if m.feature_norm() != first.feature_norm() || m.motion_norm() != first.motion_norm() {
            return Err(ModelError::InvalidConfig(format!(
                "checkpoint {n} has another feature or motion normalisation than the first \
                 (not a fine-tune of the same checkpoint)"
            )));
        }
        let (a, b) = (first.tensors(), m.tensors());
        if a.len() != b.len() || a.keys().any(|k| !b.contains_key(k)) {
            return Err(ModelError::InvalidConfig(format!(
                "checkpoint {n} has other tensors than the first"
            )));
        }
        for (k, t) in a {
            if t.dims() != b[k].dims() {
                return Err(ModelError::InvalidConfig(format!(
                    "tensor {k}: shape {:?} in checkpoint {n}, {:?} in the first",
                    b[k].dims(),
                    t.dims()
                )));
            }
        }
    }
    let scale = 1.0 / models.len() as f64;
    let mut tensors = BTreeMap::new();
    for (k, t) in first.tensors() {
        let mut sum = t.to_dtype(DType::F32)?;
        for m in rest {
            sum = (sum + m.tensors()[k].to_dtype(DType::F32)?)?;
        }
        tensors.insert(k.clone(), (sum * scale)?);
    }
    let description = format!(
        "uniform model soup (mean of {} checkpoints' weights, Wortsman et al. 2022) of: {}",
        models.len(),
        models
            .iter()
            .map(|m| format!("[{}]", m.provenance().description))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let trained = models.iter().all(|m| m.provenance().trained);
    like(first, tensors, trained, description)
}

/// A model with `m`'s config and normalisation and the given tensors.
fn like(
    m: &TalkingHeadModel,
    tensors: BTreeMap<String, candle_core::Tensor>,
    trained: bool,
    description: String,
) -> Result<TalkingHeadModel, ModelError> {
    TalkingHeadModel::from_parts(
        m.config().clone(),
        tensors,
        m.feature_norm().clone(),
        m.motion_norm().clone(),
        Provenance {
            trained,
            description,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use talking_head_core::model::ModelConfig;

    fn scaled(m: &TalkingHeadModel, s: f64, desc: &str) -> TalkingHeadModel {
        let tensors = m
            .tensors()
            .iter()
            .map(|(k, t)| (k.clone(), (t * s).unwrap()))
            .collect();
        like(m, tensors, true, desc.into()).unwrap()
    }

    #[test]
    fn averages_weights_and_refuses_mismatches() {
        let base = TalkingHeadModel::random(ModelConfig::tiny(), 3).unwrap();
        let (a, b) = (scaled(&base, 1.0, "a"), scaled(&base, 3.0, "b"));
        let soup = uniform_soup(&[&a, &b]).unwrap();
        for (k, t) in base.tensors() {
            let want = (t * 2.0).unwrap();
            let d = (&soup.tensors()[k] - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "{k}: {d}");
        }
        let p = &soup.provenance().description;
        assert!(p.contains("[a]") && p.contains("[b]"), "{p}");
        assert!(uniform_soup(&[&a]).is_err());
        // Another architecture is refused.
        let other = TalkingHeadModel::random(
            ModelConfig {
                d_model: ModelConfig::tiny().d_model * 2,
                ..ModelConfig::tiny()
            },
            3,
        )
        .unwrap();
        assert!(uniform_soup(&[&a, &other]).is_err());
    }
}
