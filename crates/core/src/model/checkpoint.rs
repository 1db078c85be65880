//! Self-describing checkpoints: safetensors tensors plus metadata holding the
//! format and its version, the model config, feature and motion
//! normalisation, the ARKit channel order, the frame rate, style names and
//! provenance.
//!
//! Metadata keys (all strings; JSON where noted):
//! `format` = [`CHECKPOINT_FORMAT`], `format_version` = [`CHECKPOINT_FORMAT_VERSION`],
//! `config` (JSON [`ModelConfig`]), `feature_norm` (JSON [`FeatureNorm`]),
//! `motion_norm` (JSON [`MotionNorm`]), `channels` (JSON list of the 52 ARKit
//! names), `fps`, `styles` (JSON list), `provenance` (JSON [`Provenance`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, View};
use serde::{Serialize, de::DeserializeOwned};

use super::{ModelConfig, ModelError, MotionNorm, Provenance, Sampler, TalkingHeadModel};
use crate::features::FeatureNorm;
use crate::rig::ARKIT_BLENDSHAPES;

/// Value of the `format` metadata key.
pub const CHECKPOINT_FORMAT: &str = "bevy_talking_head";
/// Largest safetensors header (tensor index + metadata) accepted: 1 MiB.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Checkpoint format version this build writes and reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// Summary of a checkpoint, for `talking-head info`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// File path.
    pub path: PathBuf,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Parameters used by the student path (encoder + student).
    pub student_parameters: Option<usize>,
    /// Parameters used by the teacher path (encoder + teacher).
    pub teacher_parameters: Option<usize>,
    /// The config.
    pub config: ModelConfig,
    /// Provenance.
    pub provenance: Provenance,
    /// Algorithmic latency in ms (look-ahead + one frame).
    pub algorithmic_latency_ms: f64,
}

struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl TalkingHeadModel {
    /// Writes the model (all stored tensors as f32) and its metadata.
    ///
    /// Errors: [`ModelError::Io`] when the file cannot be written;
    /// [`ModelError::BadTensor`] (nothing written) for a NaN or infinite
    /// value, which loading would refuse.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.write(path, false)
    }

    fn write(&self, path: &Path, f16_matrices: bool) -> Result<(), ModelError> {
        write_checkpoint(
            path,
            &self.tensors,
            &self.config,
            &self.feature_norm,
            &self.motion_norm,
            &self.provenance,
            f16_matrices,
        )
    }

    /// Writes the model with every weight matrix (each 2-D tensor) stored
    /// as IEEE half precision, rounded to nearest, and everything else as
    /// f32: about half the file. Loading gives f32 tensors holding exactly
    /// those f16 values, so the batch networks and the streaming kernels
    /// compute with the same weights; the kernels then read the f16 copy at
    /// small batches (half the bytes streamed per step).
    ///
    /// Errors: [`ModelError::Io`] when the file cannot be written;
    /// [`ModelError::BadTensor`] (nothing written) for a NaN or infinite
    /// value, or a matrix value beyond f16's range (±65504).
    pub fn save_f16(&self, path: &Path) -> Result<(), ModelError> {
        self.write(path, true)
    }

    /// Whether every weight matrix (each 2-D tensor) holds only values that
    /// f16 represents exactly: true for a checkpoint written by
    /// [`TalkingHeadModel::save_f16`] (or `talking-head convert --f16`), so
    /// that re-saving it with `save_f16` loses nothing. A model without
    /// weight matrices returns false.
    pub fn matrices_in_f16(&self) -> bool {
        let mut any = false;
        for t in self.tensors.values().filter(|t| t.rank() == 2) {
            any = true;
            let Ok(v) = t.flatten_all().and_then(|t| t.to_vec1::<f32>()) else {
                return false;
            };
            if v.iter().any(|&w| super::fast::exact_f16_bits(w).is_none()) {
                return false;
            }
        }
        any
    }

    /// Loads a checkpoint written by [`TalkingHeadModel::save`] (or the
    /// trainer). Every problem is an error naming the file and the tensor or
    /// metadata key: unreadable file, truncated or non-safetensors data,
    /// foreign format, other format version, missing/malformed metadata,
    /// channel order that is not ours, missing tensor, wrong shape, wrong
    /// dtype, non-finite values.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load_from_bytes(&bytes, path)
    }

    /// As [`TalkingHeadModel::load`], from bytes in memory; `path` only
    /// names the source in errors.
    pub fn load_from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let p = || path.to_path_buf();
        // The header (tensor index + metadata JSON) is parsed in full by
        // safetensors: cap it before that.
        let header_len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .ok_or_else(|| ModelError::Corrupt {
                path: p(),
                reason: format!("{} bytes is too short for a safetensors file", bytes.len()),
            })?;
        if header_len > MAX_HEADER_BYTES {
            return Err(ModelError::Corrupt {
                path: p(),
                reason: format!("header of {header_len} bytes; the limit is {MAX_HEADER_BYTES}"),
            });
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Corrupt {
            path: p(),
            reason: e.to_string(),
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Corrupt {
            path: p(),
            reason: e.to_string(),
        })?;
        let meta = header.metadata().clone().unwrap_or_default();
        let format = meta.get("format").cloned();
        if format.as_deref() != Some(CHECKPOINT_FORMAT) {
            return Err(ModelError::NotACheckpoint {
                path: p(),
                found: format,
            });
        }
        let version = meta.get("format_version").cloned().unwrap_or_default();
        if version != CHECKPOINT_FORMAT_VERSION.to_string() {
            return Err(ModelError::UnsupportedVersion {
                path: p(),
                found: version,
                supported: CHECKPOINT_FORMAT_VERSION,
            });
        }
        let config: ModelConfig = json_meta(&meta, "config", path)?;
        config.validate().map_err(|e| ModelError::BadMetadata {
            path: p(),
            key: "config".into(),
            reason: e.to_string(),
        })?;
        let feature_norm: FeatureNorm = json_meta(&meta, "feature_norm", path)?;
        let motion_norm: MotionNorm = json_meta(&meta, "motion_norm", path)?;
        let provenance: Provenance = json_meta(&meta, "provenance", path)?;
        let channels: Vec<String> = json_meta(&meta, "channels", path)?;
        if channels.len() != ARKIT_BLENDSHAPES.len()
            || channels
                .iter()
                .zip(ARKIT_BLENDSHAPES.iter())
                .any(|(a, b)| a != b)
        {
            return Err(ModelError::BadMetadata {
                path: p(),
                key: "channels".into(),
                reason: "is not the 52 ARKit blendshapes in this crate's canonical order".into(),
            });
        }

        // The shapes this config needs, from a shape-only model build
        // (nothing allocated), bounded in total before any tensor is read.
        TalkingHeadModel::check_size(&config).map_err(|e| ModelError::BadMetadata {
            path: p(),
            key: "config".into(),
            reason: e.to_string(),
        })?;
        let spec = TalkingHeadModel::parameter_shapes(&config)?;
        let present: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        let want_student = present.iter().any(|n| n.starts_with("student."));
        let want_teacher = present.iter().any(|n| n.starts_with("teacher."));
        if !want_student && !want_teacher {
            return Err(ModelError::MissingTensor {
                path: p(),
                name: "student.* or teacher.*".into(),
            });
        }
        let mut tensors = BTreeMap::new();
        for (name, expected) in &spec {
            let needed = name.starts_with("encoder.")
                || (want_student && name.starts_with("student."))
                || (want_teacher && name.starts_with("teacher."));
            if !needed {
                continue;
            }
            let view = st.tensor(name).map_err(|_| ModelError::MissingTensor {
                path: p(),
                name: name.clone(),
            })?;
            let expected_shape = expected.clone();
            if view.shape() != expected_shape.as_slice() {
                return Err(ModelError::WrongShape {
                    path: p(),
                    name: name.clone(),
                    expected: expected_shape,
                    found: view.shape().to_vec(),
                });
            }
            let t = match view.dtype() {
                Dtype::F32 => {
                    let v: Vec<f32> = view
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    Tensor::from_vec(v, view.shape(), &Device::Cpu)?
                }
                Dtype::F16 => {
                    let v: Vec<half::f16> = view
                        .data()
                        .chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    Tensor::from_vec(v, view.shape(), &Device::Cpu)?.to_dtype(DType::F32)?
                }
                other => {
                    return Err(ModelError::BadTensor {
                        path: p(),
                        name: name.clone(),
                        reason: format!("has dtype {other:?}; expected F32 or F16"),
                    });
                }
            };
            let finite = t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.is_finite());
            if !finite {
                return Err(ModelError::BadTensor {
                    path: p(),
                    name: name.clone(),
                    reason: "holds NaN or infinite values".into(),
                });
            }
            tensors.insert(name.clone(), t);
        }
        TalkingHeadModel::from_parts(config, tensors, feature_norm, motion_norm, provenance)
    }

    /// Reads only what `talking-head info` shows.
    pub fn info(path: &Path) -> Result<ModelInfo, ModelError> {
        let model = Self::load(path)?;
        let file_bytes = std::fs::metadata(path)
            .map_err(|source| ModelError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(ModelInfo {
            path: path.to_path_buf(),
            file_bytes,
            student_parameters: model
                .has_student()
                .then(|| model.parameter_count(Some(Sampler::Student))),
            teacher_parameters: model.has_teacher().then(|| {
                model.parameter_count(Some(Sampler::Teacher {
                    steps: 1,
                    guidance: 1.0,
                }))
            }),
            algorithmic_latency_ms: model.config.algorithmic_latency_secs() * 1000.0,
            config: model.config.clone(),
            provenance: model.provenance.clone(),
        })
    }
}

fn json_meta<T: DeserializeOwned>(
    meta: &HashMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<T, ModelError> {
    let raw = meta.get(key).ok_or_else(|| ModelError::BadMetadata {
        path: path.to_path_buf(),
        key: key.into(),
        reason: "is missing".into(),
    })?;
    serde_json::from_str(raw).map_err(|e| ModelError::BadMetadata {
        path: path.to_path_buf(),
        key: key.into(),
        reason: format!("is not valid: {e}"),
    })
}

/// Writes named f32 tensors and full metadata; shared by
/// [`TalkingHeadModel::save`] and the trainer.
pub fn save_checkpoint(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    config: &ModelConfig,
    feature_norm: &FeatureNorm,
    motion_norm: &MotionNorm,
    provenance: &Provenance,
) -> Result<(), ModelError> {
    write_checkpoint(
        path,
        tensors,
        config,
        feature_norm,
        motion_norm,
        provenance,
        false,
    )
}

fn write_checkpoint(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    config: &ModelConfig,
    feature_norm: &FeatureNorm,
    motion_norm: &MotionNorm,
    provenance: &Provenance,
    f16_matrices: bool,
) -> Result<(), ModelError> {
    let mut raw = BTreeMap::new();
    for (name, t) in tensors {
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        // Refuse to write what `load` would refuse: NaN/Inf, or a value
        // past f16's range in a matrix stored as f16.
        let f16_max = f32::from(half::f16::MAX);
        let stored_as_f16 = f16_matrices && t.rank() == 2;
        if let Some(x) = v
            .iter()
            .find(|x| !x.is_finite() || (stored_as_f16 && x.abs() > f16_max))
        {
            return Err(ModelError::BadTensor {
                path: path.to_path_buf(),
                name: name.clone(),
                reason: format!(
                    "holds {x}{}; not written",
                    if x.is_finite() {
                        ", beyond f16's range"
                    } else {
                        ""
                    }
                ),
            });
        }
        let (dtype, bytes) = if stored_as_f16 {
            let b = v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            (Dtype::F16, b)
        } else {
            (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        };
        raw.insert(
            name.clone(),
            RawTensor {
                dtype,
                shape: t.dims().to_vec(),
                bytes,
            },
        );
    }
    let mut meta = HashMap::new();
    meta.insert("format".into(), CHECKPOINT_FORMAT.into());
    meta.insert(
        "format_version".into(),
        CHECKPOINT_FORMAT_VERSION.to_string(),
    );
    meta.insert("config".into(), to_json(config));
    meta.insert("feature_norm".into(), to_json(feature_norm));
    meta.insert("motion_norm".into(), to_json(motion_norm));
    meta.insert("provenance".into(), to_json(provenance));
    meta.insert("channels".into(), to_json(&ARKIT_BLENDSHAPES.to_vec()));
    meta.insert("fps".into(), config.fps.to_string());
    meta.insert("styles".into(), to_json(&config.styles));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let data = safetensors::serialize(raw.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
        .map_err(|e| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    std::fs::write(path, data).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
