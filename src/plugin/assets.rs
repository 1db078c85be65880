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
        let path = load_context.path().to_string();
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|source| RetargetLoadError::Io {
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
