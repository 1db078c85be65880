//! The 52 ARKit face blendshapes: names, canonical order and face regions.
//!
//! This is the single place in the crate that knows the ARKit channel order.
//! The order is the column order of Epic's Live Link Face CSV export (the
//! 52 columns after `Timecode,BlendShapeCount`), which is also the order in
//! which most ARKit-driven tools (Live Link, Audio2Face, MetaHuman) list the
//! shapes. Every `[f32; 52]` weight vector in this crate uses this order.
//!
//! Names follow Apple's `ARFaceAnchor.BlendShapeLocation` raw values
//! (camelCase, e.g. `jawOpen`); Live Link Face writes the same names in
//! PascalCase (e.g. `JawOpen`).

use std::fmt;

/// Number of ARKit face blendshapes (`ARFaceAnchor.BlendShapeLocation`).
pub const BLENDSHAPE_COUNT: usize = 52;

/// One frame of ARKit blendshape weights in canonical order
/// ([`ARKIT_BLENDSHAPES`]); each weight is nominally in `[0, 1]`
/// (0 = neutral, 1 = fully activated).
pub type ArkitWeights = [f32; BLENDSHAPE_COUNT];

/// Which part of the face a blendshape moves.
///
/// The grouping follows the name prefixes of Apple's
/// `ARFaceAnchor.BlendShapeLocation` (`eye*`, `brow*`, `jaw*`, `mouth*`,
/// `cheek*`, `nose*`, `tongue*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaceRegion {
    /// Eyelids and gaze: `eyeBlink*`, `eyeLook*`, `eyeSquint*`, `eyeWide*` (14 shapes).
    Eyes,
    /// Eyebrows: `browDown*`, `browInnerUp`, `browOuterUp*` (5 shapes).
    Brows,
    /// Lower jaw: `jawForward`, `jawRight`, `jawLeft`, `jawOpen` (4 shapes).
    Jaw,
    /// Lips and mouth corners: `mouthClose` … `mouthUpperUpRight` (23 shapes).
    Mouth,
    /// Cheeks: `cheekPuff`, `cheekSquintLeft`, `cheekSquintRight` (3 shapes).
    Cheeks,
    /// Nose: `noseSneerLeft`, `noseSneerRight` (2 shapes).
    Nose,
    /// Tongue: `tongueOut` (1 shape).
    Tongue,
}

impl FaceRegion {
    /// All seven regions (upper face first, then the lower face).
    pub const ALL: [FaceRegion; 7] = [
        FaceRegion::Eyes,
        FaceRegion::Brows,
        FaceRegion::Jaw,
        FaceRegion::Mouth,
        FaceRegion::Cheeks,
        FaceRegion::Nose,
        FaceRegion::Tongue,
    ];

    /// Canonical indices (into a `[f32; 52]`) of the shapes in this region, ascending.
    pub fn channels(self) -> Vec<usize> {
        Blendshape::ALL
            .iter()
            .filter(|b| b.region() == self)
            .map(|b| b.index())
            .collect()
    }

    /// Whether this region belongs to the speech-driven lower face
    /// ([`MOUTH_CHANNELS`]: jaw, mouth, cheeks, tongue).
    pub const fn is_lower_face(self) -> bool {
        matches!(
            self,
            FaceRegion::Jaw | FaceRegion::Mouth | FaceRegion::Cheeks | FaceRegion::Tongue
        )
    }
}

impl fmt::Display for FaceRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FaceRegion::Eyes => "eyes",
            FaceRegion::Brows => "brows",
            FaceRegion::Jaw => "jaw",
            FaceRegion::Mouth => "mouth",
            FaceRegion::Cheeks => "cheeks",
            FaceRegion::Nose => "nose",
            FaceRegion::Tongue => "tongue",
        };
        f.write_str(s)
    }
}

macro_rules! blendshapes {
    ($( $variant:ident = $idx:literal, $camel:literal, $region:ident, $doc:literal; )*) => {
        /// One of the 52 ARKit face blendshapes; the discriminant is the canonical
        /// index (Live Link Face CSV column order, see the [module docs](self)).
        ///
        /// Descriptions follow Apple's `ARFaceAnchor.BlendShapeLocation`
        /// documentation. "Left"/"Right" are the subject's own left/right as
        /// named by ARKit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(usize)]
        pub enum Blendshape {
            $(
                #[doc = concat!("`", $camel, "` (index ", stringify!($idx), "): ", $doc)]
                $variant = $idx,
            )*
        }

        /// The 52 ARKit blendshape names (camelCase, as Apple's
        /// `ARFaceAnchor.BlendShapeLocation` raw values) in canonical order.
        pub const ARKIT_BLENDSHAPES: [&str; BLENDSHAPE_COUNT] = [$($camel,)*];

        /// The same 52 names in PascalCase, exactly as they appear in the header
        /// of an Epic Live Link Face CSV export, in canonical order.
        pub const LIVE_LINK_FACE_NAMES: [&str; BLENDSHAPE_COUNT] = [$(stringify!($variant),)*];

        impl Blendshape {
            /// All 52 blendshapes in canonical order (`ALL[i].index() == i`).
            pub const ALL: [Blendshape; BLENDSHAPE_COUNT] = [$(Blendshape::$variant,)*];

            /// The face region this shape moves.
            pub const fn region(self) -> FaceRegion {
                match self {
                    $(Blendshape::$variant => FaceRegion::$region,)*
                }
            }
        }
    };
}

blendshapes! {
    EyeBlinkLeft = 0, "eyeBlinkLeft", Eyes, "closure of the eyelids over the left eye.";
    EyeLookDownLeft = 1, "eyeLookDownLeft", Eyes, "movement of the left eyelids consistent with a downward gaze.";
    EyeLookInLeft = 2, "eyeLookInLeft", Eyes, "movement of the left eyelids consistent with a rightward gaze.";
    EyeLookOutLeft = 3, "eyeLookOutLeft", Eyes, "movement of the left eyelids consistent with a leftward gaze.";
    EyeLookUpLeft = 4, "eyeLookUpLeft", Eyes, "movement of the left eyelids consistent with an upward gaze.";
    EyeSquintLeft = 5, "eyeSquintLeft", Eyes, "contraction of the face around the left eye.";
    EyeWideLeft = 6, "eyeWideLeft", Eyes, "widening of the eyelids around the left eye.";
    EyeBlinkRight = 7, "eyeBlinkRight", Eyes, "closure of the eyelids over the right eye.";
    EyeLookDownRight = 8, "eyeLookDownRight", Eyes, "movement of the right eyelids consistent with a downward gaze.";
    EyeLookInRight = 9, "eyeLookInRight", Eyes, "movement of the right eyelids consistent with a leftward gaze.";
    EyeLookOutRight = 10, "eyeLookOutRight", Eyes, "movement of the right eyelids consistent with a rightward gaze.";
    EyeLookUpRight = 11, "eyeLookUpRight", Eyes, "movement of the right eyelids consistent with an upward gaze.";
    EyeSquintRight = 12, "eyeSquintRight", Eyes, "contraction of the face around the right eye.";
    EyeWideRight = 13, "eyeWideRight", Eyes, "widening of the eyelids around the right eye.";
    JawForward = 14, "jawForward", Jaw, "forward movement of the lower jaw.";
    JawRight = 15, "jawRight", Jaw, "rightward movement of the lower jaw.";
    JawLeft = 16, "jawLeft", Jaw, "leftward movement of the lower jaw.";
    JawOpen = 17, "jawOpen", Jaw, "opening of the lower jaw.";
    MouthClose = 18, "mouthClose", Mouth, "closure of the lips independent of jaw position.";
    MouthFunnel = 19, "mouthFunnel", Mouth, "contraction of both lips into an open shape.";
    MouthPucker = 20, "mouthPucker", Mouth, "contraction and compression of both closed lips.";
    MouthRight = 21, "mouthRight", Mouth, "rightward movement of both lips together.";
    MouthLeft = 22, "mouthLeft", Mouth, "leftward movement of both lips together.";
    MouthSmileLeft = 23, "mouthSmileLeft", Mouth, "upward movement of the left corner of the mouth.";
    MouthSmileRight = 24, "mouthSmileRight", Mouth, "upward movement of the right corner of the mouth.";
    MouthFrownLeft = 25, "mouthFrownLeft", Mouth, "downward movement of the left corner of the mouth.";
    MouthFrownRight = 26, "mouthFrownRight", Mouth, "downward movement of the right corner of the mouth.";
    MouthDimpleLeft = 27, "mouthDimpleLeft", Mouth, "backward movement of the left corner of the mouth.";
    MouthDimpleRight = 28, "mouthDimpleRight", Mouth, "backward movement of the right corner of the mouth.";
    MouthStretchLeft = 29, "mouthStretchLeft", Mouth, "leftward movement of the left corner of the mouth.";
    MouthStretchRight = 30, "mouthStretchRight", Mouth, "rightward movement of the right corner of the mouth.";
    MouthRollLower = 31, "mouthRollLower", Mouth, "movement of the lower lip toward the inside of the mouth.";
    MouthRollUpper = 32, "mouthRollUpper", Mouth, "movement of the upper lip toward the inside of the mouth.";
    MouthShrugLower = 33, "mouthShrugLower", Mouth, "outward movement of the lower lip.";
    MouthShrugUpper = 34, "mouthShrugUpper", Mouth, "outward movement of the upper lip.";
    MouthPressLeft = 35, "mouthPressLeft", Mouth, "upward compression of the lower lip on the left side.";
    MouthPressRight = 36, "mouthPressRight", Mouth, "upward compression of the lower lip on the right side.";
    MouthLowerDownLeft = 37, "mouthLowerDownLeft", Mouth, "downward movement of the lower lip on the left side.";
    MouthLowerDownRight = 38, "mouthLowerDownRight", Mouth, "downward movement of the lower lip on the right side.";
    MouthUpperUpLeft = 39, "mouthUpperUpLeft", Mouth, "upward movement of the upper lip on the left side.";
    MouthUpperUpRight = 40, "mouthUpperUpRight", Mouth, "upward movement of the upper lip on the right side.";
    BrowDownLeft = 41, "browDownLeft", Brows, "downward movement of the outer portion of the left eyebrow.";
    BrowDownRight = 42, "browDownRight", Brows, "downward movement of the outer portion of the right eyebrow.";
    BrowInnerUp = 43, "browInnerUp", Brows, "upward movement of the inner portion of both eyebrows.";
    BrowOuterUpLeft = 44, "browOuterUpLeft", Brows, "upward movement of the outer portion of the left eyebrow.";
    BrowOuterUpRight = 45, "browOuterUpRight", Brows, "upward movement of the outer portion of the right eyebrow.";
    CheekPuff = 46, "cheekPuff", Cheeks, "outward movement of both cheeks.";
    CheekSquintLeft = 47, "cheekSquintLeft", Cheeks, "upward movement of the cheek around and below the left eye.";
    CheekSquintRight = 48, "cheekSquintRight", Cheeks, "upward movement of the cheek around and below the right eye.";
    NoseSneerLeft = 49, "noseSneerLeft", Nose, "raising of the left side of the nose around the nostril.";
    NoseSneerRight = 50, "noseSneerRight", Nose, "raising of the right side of the nose around the nostril.";
    TongueOut = 51, "tongueOut", Tongue, "extension of the tongue.";
}

impl Blendshape {
    /// Canonical index of this shape in a `[f32; 52]` (0..=51).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The ARKit name in camelCase (e.g. `"jawOpen"`).
    pub const fn name(self) -> &'static str {
        ARKIT_BLENDSHAPES[self as usize]
    }

    /// The Live Link Face CSV column name in PascalCase (e.g. `"JawOpen"`).
    pub const fn live_link_name(self) -> &'static str {
        LIVE_LINK_FACE_NAMES[self as usize]
    }

    /// The shape at canonical index `index`, or `None` if `index >= 52`.
    pub const fn from_index(index: usize) -> Option<Self> {
        if index < BLENDSHAPE_COUNT {
            Some(Self::ALL[index])
        } else {
            None
        }
    }

    /// Looks a shape up by name, ignoring ASCII case and surrounding
    /// whitespace, so the ARKit camelCase (`jawOpen`), the Live Link Face
    /// PascalCase (`JawOpen`) and e.g. `JAWOPEN` are all accepted.
    /// Returns `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        blendshape_index(name).map(|i| Self::ALL[i])
    }

    /// Whether this shape is one of the speech-driven lower-face channels
    /// ([`MOUTH_CHANNELS`]).
    pub const fn is_lower_face(self) -> bool {
        self.region().is_lower_face()
    }
}

impl fmt::Display for Blendshape {
    /// Writes the ARKit camelCase name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Canonical index of the blendshape called `name` (camelCase or PascalCase,
/// ASCII case-insensitive, surrounding whitespace ignored), or `None` if the
/// name is not one of the 52 ARKit shapes.
pub fn blendshape_index(name: &str) -> Option<usize> {
    let name = name.trim();
    ARKIT_BLENDSHAPES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
}

const fn region_indices<const N: usize>(lower_face: bool) -> [usize; N] {
    let mut out = [0usize; N];
    let mut n = 0;
    let mut i = 0;
    while i < BLENDSHAPE_COUNT {
        if Blendshape::ALL[i].is_lower_face() == lower_face {
            out[n] = i;
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "region channel count mismatch");
    out
}

/// Canonical indices of the speech-driven lower face, ascending: every
/// `jaw*`, `mouth*`, `cheek*` and `tongue*` shape (4 + 23 + 3 + 1 = 31 channels).
///
/// `cheekSquint*` is included because ARKit couples it to smiling
/// (`mouthSmile*`), and `cheekPuff` is articulatory. Together with
/// [`UPPER_FACE_CHANNELS`] this partitions `0..52`.
pub const MOUTH_CHANNELS: [usize; 31] = region_indices::<31>(true);

/// Canonical indices of the upper face, ascending: every `eye*`, `brow*` and
/// `nose*` shape (14 + 5 + 2 = 21 channels) — blinks, gaze, brows and the
/// nose sneer, which are not driven by articulation.
///
/// `noseSneer*` is counted as upper face (it is driven by the levator muscles
/// shared with expression, not by speech). Complement of [`MOUTH_CHANNELS`].
pub const UPPER_FACE_CHANNELS: [usize; 21] = region_indices::<21>(false);

const fn lower_face_mask() -> [bool; BLENDSHAPE_COUNT] {
    let mut out = [false; BLENDSHAPE_COUNT];
    let mut i = 0;
    while i < BLENDSHAPE_COUNT {
        out[i] = Blendshape::ALL[i].is_lower_face();
        i += 1;
    }
    out
}

/// Per-channel mask in canonical order: `true` for the [`MOUTH_CHANNELS`]
/// (lower face), `false` for the [`UPPER_FACE_CHANNELS`].
pub const MOUTH_MASK: [bool; BLENDSHAPE_COUNT] = lower_face_mask();

/// Canonical indices of the speech-driven lower face as a slice
/// (same as [`MOUTH_CHANNELS`]).
pub fn mouth_channels() -> &'static [usize] {
    &MOUTH_CHANNELS
}

/// Canonical indices of the upper face as a slice
/// (same as [`UPPER_FACE_CHANNELS`]).
pub fn upper_face_channels() -> &'static [usize] {
    &UPPER_FACE_CHANNELS
}

/// Linear interpolation of two weight frames: `a · (1 − w) + b · w` per
/// channel (`w` = 0 gives `a`, 1 gives `b`; not clamped). The one timeline
/// interpolation shared by the plugin's frame sampler, `bake`'s resampling
/// to the output frame rate and the corpus's label resampling.
pub fn lerp_weights(a: &ArkitWeights, b: &ArkitWeights, w: f32) -> ArkitWeights {
    std::array::from_fn(|c| a[c] * (1.0 - w) + b[c] * w)
}

/// Makes a weight vector safe to apply to morph targets: NaN becomes 0 and
/// every value is clamped to `[0, 1]` (so `+inf` → 1, `-inf` → 0). In place,
/// no allocation.
pub fn sanitize_weights(w: &mut ArkitWeights) {
    for v in w.iter_mut() {
        *v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_agree() {
        for (i, b) in Blendshape::ALL.iter().enumerate() {
            assert_eq!(b.index(), i);
            assert!(b.name().eq_ignore_ascii_case(b.live_link_name()));
            assert_eq!(Blendshape::from_name(b.name()), Some(*b));
            assert_eq!(Blendshape::from_name(b.live_link_name()), Some(*b));
            assert_eq!(Blendshape::from_index(i), Some(*b));
            // camelCase: first letter lower, rest identical.
            let mut c = b.live_link_name().chars();
            let first = c.next().unwrap().to_ascii_lowercase();
            assert_eq!(format!("{first}{}", c.as_str()), b.name());
        }
        assert_eq!(Blendshape::from_index(52), None);
    }

    #[test]
    fn partition() {
        let mut seen = [0u8; BLENDSHAPE_COUNT];
        for &i in MOUTH_CHANNELS.iter().chain(UPPER_FACE_CHANNELS.iter()) {
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&c| c == 1));
        let total: usize = FaceRegion::ALL.iter().map(|r| r.channels().len()).sum();
        assert_eq!(total, BLENDSHAPE_COUNT);
    }
}
