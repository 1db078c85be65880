//! The face rig: the 52 ARKit blendshapes, Live Link Face CSV files and
//! retarget maps.
//!
//! * [`arkit`] — the one place in the crate that knows the ARKit channel
//!   order ([`ARKIT_BLENDSHAPES`], [`Blendshape`]), face regions
//!   ([`FaceRegion`], [`MOUTH_CHANNELS`], [`UPPER_FACE_CHANNELS`]) and
//!   [`sanitize_weights`].
//! * [`live_link_face`] — read/write Epic Live Link Face CSV takes
//!   ([`LiveLinkFaceTake`]).
//! * [`retarget`] — weighted channel maps between rigs ([`RetargetMap`],
//!   compiled to [`CompiledRetarget`] for the per-frame path).
//!
//! Everything is re-exported here, so `rig::Blendshape`,
//! `rig::LiveLinkFaceTake`, `rig::RetargetMap` etc. work directly.
//!
//! ```
//! use talking_head_core::rig::{ARKIT_BLENDSHAPES, Blendshape, RetargetMap};
//!
//! assert_eq!(Blendshape::from_name("JawOpen"), Some(Blendshape::JawOpen));
//! assert_eq!(ARKIT_BLENDSHAPES[Blendshape::JawOpen.index()], "jawOpen");
//!
//! // Drive an avatar morph target `viseme_aa` from ARKit `jawOpen`.
//! let map = RetargetMap::from_json_str(
//!     r#"{ "rules": [ { "target": "viseme_aa", "sources": [ { "source": "jawOpen", "weight": 1.0 } ] } ] }"#,
//! )?;
//! let compiled = map.compile(&ARKIT_BLENDSHAPES, &["viseme_aa"])?;
//! let mut arkit = [0.0f32; 52];
//! arkit[Blendshape::JawOpen.index()] = 0.7;
//! let mut morphs = [0.0f32; 1];
//! compiled.apply(&arkit, &mut morphs);
//! assert_eq!(morphs[0], 0.7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arkit;
pub mod live_link_face;
pub mod retarget;

pub use arkit::{
    ARKIT_BLENDSHAPES, ArkitWeights, BLENDSHAPE_COUNT, Blendshape, FaceRegion,
    LIVE_LINK_FACE_NAMES, MOUTH_CHANNELS, MOUTH_MASK, UPPER_FACE_CHANNELS, blendshape_index,
    lerp_weights, mouth_channels, sanitize_weights, upper_face_channels,
};
pub use live_link_face::{
    LIVE_LINK_FACE_DECIMALS, LIVE_LINK_FACE_ROTATION_NAMES, LiveLinkFaceError, LiveLinkFaceFrame,
    LiveLinkFaceLayout, LiveLinkFaceTake, Timecode, TimecodeParseError,
};
pub use retarget::{
    Combine, CompiledRetarget, RetargetError, RetargetMap, RetargetRule, WeightedSource,
};
