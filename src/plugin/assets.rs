//! Retarget maps as Bevy assets: `*.retarget.json` and `*.retarget.ron`
//! files load through the `AssetServer` as [`RetargetAsset`] (the same
//! serde type, [`RetargetMap`], as the JSON maps of the corpus), and a head
//! whose [`FaceRetarget::Asset`](super::FaceRetarget::Asset) points at one
//! is rebound whenever it loads or changes, so with Bevy's `file_watcher`
//! feature an edited map is live without a restart.
//!
//! The loaders are registered when the app has an `AssetPlugin` (any
//! `DefaultPlugins` app does).

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;

use super::components::{FaceRetarget, MorphBinding};
use crate::rig::{RetargetError, RetargetMap};

/// A retarget map loaded as an asset from `*.retarget.json` or
/// `*.retarget.ron` (the same serde type as the corpus's JSON maps). Put a
/// handle in [`FaceRetarget::Asset`]: the head binds once it has loaded and
/// rebinds whenever it changes, so with Bevy's `file_watcher` feature an
/// edited map is live without a restart. Registered when the app has an
/// `AssetPlugin`.
#[derive(Asset, TypePath, Clone, Debug)]
pub struct RetargetAsset(pub RetargetMap);

/// Why a retarget map asset did not load.
#[derive(Debug, thiserror::Error)]
pub enum RetargetLoadError {
    /// The bytes could not be read.
    #[error("could not read retarget map {path}: {source}")]
    Io {
        /// Asset path.
        path: String,
        /// The reader's error.
        source: std::io::Error,
    },
    /// A `.retarget.json` file that is not a valid map.
    #[error("retarget map {path}: {source}")]
    Json {
        /// Asset path.
        path: String,
        /// The parse error.
        source: RetargetError,
    },
    /// A `.retarget.ron` file that is not a valid map.
    #[error("retarget map {path}: invalid RON: {source}")]
    Ron {
        /// Asset path.
        path: String,
        /// The parse error (with line and column).
        source: ron::error::SpannedError,
    },
}

/// The asset's path (for error messages) and its bytes.
async fn read_asset(
    reader: &mut dyn Reader,
    load_context: &LoadContext<'_>,
) -> (String, std::io::Result<Vec<u8>>) {
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes).await.map(|_| bytes);
    (load_context.path().to_string(), read)
}

/// Loads `*.retarget.json` and `*.retarget.ron` as [`RetargetAsset`].
#[derive(Default, TypePath)]
pub struct RetargetMapLoader;

impl AssetLoader for RetargetMapLoader {
    type Asset = RetargetAsset;
    type Settings = ();
    type Error = RetargetLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<RetargetAsset, RetargetLoadError> {
        let (path, bytes) = read_asset(reader, load_context).await;
        let bytes = bytes.map_err(|source| RetargetLoadError::Io {
            path: path.clone(),
            source,
        })?;
        let map = if path.ends_with(".ron") {
            ron::de::from_bytes::<RetargetMap>(&bytes)
                .map_err(|source| RetargetLoadError::Ron { path, source })?
        } else {
            let text = String::from_utf8_lossy(&bytes);
            RetargetMap::from_json_str(&text)
                .map_err(|source| RetargetLoadError::Json { path, source })?
        };
        Ok(RetargetAsset(map))
    }

    fn extensions(&self) -> &[&str] {
        &["retarget.json", "retarget.ron"]
    }
}

/// Rebinds heads whose retarget asset loaded or changed (hot reload).
pub(crate) fn rebind_on_retarget_change(
    mut events: MessageReader<AssetEvent<RetargetAsset>>,
    mut heads: Query<(&FaceRetarget, &mut MorphBinding)>,
) {
    for ev in events.read() {
        let (AssetEvent::LoadedWithDependencies { id }
        | AssetEvent::Modified { id }
        | AssetEvent::Added { id }) = ev
        else {
            continue;
        };
        for (retarget, mut binding) in &mut heads {
            if let FaceRetarget::Asset(h) = retarget
                && h.id() == *id
            {
                binding.dirty = true;
            }
        }
    }
}

/// A talking-head checkpoint loaded as an asset (`*.safetensors`, the files
/// `talking-head train` / `distill` write): use it with
/// [`ModelSource::Asset`](super::ModelSource::Asset). Parsing and
/// validation are those of [`TalkingHeadModel::load`](crate::model::TalkingHeadModel::load)
/// (a file that is not a talking-head checkpoint, or a hostile one, fails
/// with an error naming it).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct TalkingHeadModelAsset(pub std::sync::Arc<crate::model::TalkingHeadModel>);

/// Why a model asset did not load.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// The bytes could not be read.
    #[error("could not read model {path}: {source}")]
    Io {
        /// Asset path.
        path: String,
        /// The reader's error.
        source: std::io::Error,
    },
    /// Not a valid talking-head checkpoint.
    #[error("model {path}: {source}")]
    Model {
        /// Asset path.
        path: String,
        /// The checkpoint error.
        source: crate::model::ModelError,
    },
}

/// Loads `*.safetensors` talking-head checkpoints as [`TalkingHeadModelAsset`].
#[derive(Default, TypePath)]
pub struct ModelAssetLoader;

impl AssetLoader for ModelAssetLoader {
    type Asset = TalkingHeadModelAsset;
    type Settings = ();
    type Error = ModelLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<TalkingHeadModelAsset, ModelLoadError> {
        let (path, bytes) = read_asset(reader, load_context).await;
        let bytes = bytes.map_err(|source| ModelLoadError::Io {
            path: path.clone(),
            source,
        })?;
        let model = crate::model::TalkingHeadModel::load_from_bytes(&bytes, path.as_ref())
            .map_err(|source| ModelLoadError::Model { path, source })?;
        Ok(TalkingHeadModelAsset(std::sync::Arc::new(model)))
    }

    fn extensions(&self) -> &[&str] {
        &["safetensors"]
    }
}

/// Sent when a [`ModelSource::Asset`](super::ModelSource::Asset) fails to
/// load. On the first load the runtime is then
/// [`RuntimeState::Failed`](super::RuntimeState::Failed) and faces rest; a
/// failed reload (a broken edit of a running model) keeps the loaded model.
#[derive(Message, Clone, Debug)]
pub struct ModelAssetFailed {
    /// The asset path.
    pub path: String,
    /// Why (names the file).
    pub error: String,
}

/// Loads [`ModelSource::Asset`](super::ModelSource::Asset), starts the
/// worker when it arrives and swaps models when it changes (hot reload).
pub(crate) fn track_model_asset(
    server: Res<AssetServer>,
    assets: Res<Assets<TalkingHeadModelAsset>>,
    mut events: MessageReader<AssetEvent<TalkingHeadModelAsset>>,
    mut runtime: ResMut<super::TalkingHeadRuntime>,
    mut failed: MessageWriter<ModelAssetFailed>,
) {
    let Some(link) = runtime.asset.as_mut() else {
        events.clear();
        return;
    };
    let handle = link
        .handle
        .get_or_insert_with(|| server.load(link.path.clone()))
        .clone();
    let mut newest = None;
    for ev in events.read() {
        if let AssetEvent::LoadedWithDependencies { id } | AssetEvent::Modified { id } = ev
            && *id == handle.id()
            && let Some(a) = assets.get(*id)
        {
            newest = Some(a.0.clone());
        }
    }
    if let bevy::asset::LoadState::Failed(e) = server.load_state(&handle)
        && !link.failed
    {
        link.failed = true;
        let error = super::TalkingHeadError::ModelAsset {
            path: link.path.clone(),
            error: e.to_string(),
        };
        failed.write(ModelAssetFailed {
            path: link.path.clone(),
            error: e.to_string(),
        });
        // A broken edit of a model that is already running (hot reload):
        // keep animating with the loaded model.
        if runtime.is_ready() && runtime.model().is_some() {
            warn!("talking-head: {error}; the loaded model keeps running");
        } else {
            error!("talking-head: {error}; faces rest");
            runtime.state = super::RuntimeState::Failed(error);
        }
        return;
    }
    if let Some(model) = newest {
        link.failed = false;
        if runtime
            .model()
            .is_some_and(|m| std::sync::Arc::ptr_eq(m, &model))
        {
            return;
        }
        runtime.replace_model(model);
    }
}
