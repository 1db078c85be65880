//! The 15 Oculus visemes, their articulator classes, ARKit targets and the
//! ARPAbet / IPA phone → viseme table.

use super::*;

/// Style id of the phonetic labels in a corpus.
pub const STYLE_ID: &str = "phonetic";

/// Number of visemes ([`Viseme::ALL`]).
pub const VISEME_COUNT: usize = 15;

/// The 15 Oculus (Meta) Lipsync visemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Viseme {
    /// `sil`: silence, neutral closed mouth.
    Sil,
    /// `PP`: bilabials `p b m` — lips pressed shut.
    PP,
    /// `FF`: labiodentals `f v` — lower lip under the upper teeth.
    FF,
    /// `TH`: dentals `th dh` — tongue tip between the teeth.
    TH,
    /// `DD`: alveolar stops `t d`.
    DD,
    /// `kk`: velars `k g ng`.
    Kk,
    /// `CH`: post-alveolars `ch jh sh zh` — lips protruded.
    CH,
    /// `SS`: sibilants `s z` — teeth together, lips spread.
    SS,
    /// `nn`: `n l`.
    Nn,
    /// `RR`: `r` and r-coloured `er` — slight rounding.
    RR,
    /// `aa`: open vowels `aa ae ah` (and the onsets of `ay aw`).
    Aa,
    /// `E`: mid front vowels `eh ey`.
    E,
    /// `I`: close front vowels `ih iy` and the glide `y` — lips spread.
    I,
    /// `O`: back rounded `ao ow oy`.
    O,
    /// `U`: close rounded `uh uw` and the glide `w`.
    U,
}

/// Coarticulation class of a viseme: which dominance parameters
/// ([`PhoneticLabelerConfig`]) it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisemeClass {
    /// Silence: strong, pulls every channel to neutral.
    Silence,
    /// Bilabial closure (`PP`): strongest, non-deferrable.
    Bilabial,
    /// Labiodental (`FF`): strong on the lips.
    Labiodental,
    /// Other consonants: weak on jaw and rounding.
    Consonant,
    /// Vowels: drive the jaw.
    Vowel,
}

/// Articulator groups: the channels that share one dominance function per
/// segment (Cohen & Massaro's "articulatory parameters").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Articulator {
    /// `jaw*`.
    Jaw,
    /// Lip closure: `mouthClose`, `mouthPress*`, `mouthRoll*`.
    Closure,
    /// Lip rounding / protrusion: `mouthFunnel`, `mouthPucker`.
    Rounding,
    /// Lip spreading: `mouthSmile*`, `mouthStretch*`, `mouthDimple*`, `cheekSquint*`.
    Spread,
    /// Everything else in the lower face (lip raise/lower, shrug, frown,
    /// sideways, `cheekPuff`, `tongueOut`).
    Other,
}

impl Articulator {
    /// The group of a lower-face channel (`None` for the upper face).
    pub fn of(shape: Blendshape) -> Option<Self> {
        use Blendshape as B;
        if !shape.is_lower_face() {
            return None;
        }
        Some(match shape {
            B::JawOpen | B::JawForward | B::JawLeft | B::JawRight => Self::Jaw,
            B::MouthClose
            | B::MouthPressLeft
            | B::MouthPressRight
            | B::MouthRollLower
            | B::MouthRollUpper => Self::Closure,
            B::MouthFunnel | B::MouthPucker => Self::Rounding,
            B::MouthSmileLeft
            | B::MouthSmileRight
            | B::MouthStretchLeft
            | B::MouthStretchRight
            | B::MouthDimpleLeft
            | B::MouthDimpleRight
            | B::CheekSquintLeft
            | B::CheekSquintRight => Self::Spread,
            _ => Self::Other,
        })
    }

    pub(super) const ALL: [Articulator; 5] = [
        Self::Jaw,
        Self::Closure,
        Self::Rounding,
        Self::Spread,
        Self::Other,
    ];

    pub(super) const fn slot(self) -> usize {
        match self {
            Self::Jaw => 0,
            Self::Closure => 1,
            Self::Rounding => 2,
            Self::Spread => 3,
            Self::Other => 4,
        }
    }
}

impl Viseme {
    /// All 15 visemes in Oculus order (`sil PP FF TH DD kk CH SS nn RR aa E I O U`).
    pub const ALL: [Viseme; VISEME_COUNT] = [
        Viseme::Sil,
        Viseme::PP,
        Viseme::FF,
        Viseme::TH,
        Viseme::DD,
        Viseme::Kk,
        Viseme::CH,
        Viseme::SS,
        Viseme::Nn,
        Viseme::RR,
        Viseme::Aa,
        Viseme::E,
        Viseme::I,
        Viseme::O,
        Viseme::U,
    ];

    /// The Oculus name (`"sil"`, `"PP"`, `"kk"`, `"aa"`, ...); the morph
    /// target is `viseme_<name>`.
    pub const fn oculus_name(self) -> &'static str {
        match self {
            Viseme::Sil => "sil",
            Viseme::PP => "PP",
            Viseme::FF => "FF",
            Viseme::TH => "TH",
            Viseme::DD => "DD",
            Viseme::Kk => "kk",
            Viseme::CH => "CH",
            Viseme::SS => "SS",
            Viseme::Nn => "nn",
            Viseme::RR => "RR",
            Viseme::Aa => "aa",
            Viseme::E => "E",
            Viseme::I => "I",
            Viseme::O => "O",
            Viseme::U => "U",
        }
    }

    /// Coarticulation class.
    pub const fn class(self) -> VisemeClass {
        match self {
            Viseme::Sil => VisemeClass::Silence,
            Viseme::PP => VisemeClass::Bilabial,
            Viseme::FF => VisemeClass::Labiodental,
            Viseme::Aa | Viseme::E | Viseme::I | Viseme::O | Viseme::U => VisemeClass::Vowel,
            _ => VisemeClass::Consonant,
        }
    }

    /// Whether the lips are rounded/protruded (`O`, `U`, `CH`, `RR`): these
    /// use [`PhoneticLabelerConfig::rounding`] on the rounding channels.
    pub const fn is_rounded(self) -> bool {
        matches!(self, Viseme::O | Viseme::U | Viseme::CH | Viseme::RR)
    }

    /// The sparse ARKit target of this viseme: `(shape, weight)` pairs,
    /// weights in `[0, 1]`, lower face only.
    ///
    /// Started from TalkingHead's Oculus → ARKit mix
    /// (`shared/data/mappings/oculus_viseme_to_arkit.json`, MIT) and changed
    /// where it contradicts articulation: `PP` closes the lips with
    /// `mouthClose` + `mouthPress*` (+ a little roll) and `jawOpen` 0;
    /// `FF` rolls the lower lip in instead of puckering; `U`/`O` combine
    /// funnel and pucker; `aa` opens the jaw most; `E`/`I` spread the lips
    /// (stretch, smile) instead of pressing them; consonants keep a small
    /// jaw opening.
    pub fn target_pairs(self) -> &'static [(Blendshape, f32)] {
        use Blendshape as B;
        match self {
            Viseme::Sil => &[],
            Viseme::PP => &[
                (B::MouthClose, 0.6),
                (B::MouthPressLeft, 0.6),
                (B::MouthPressRight, 0.6),
                (B::MouthRollLower, 0.3),
                (B::MouthRollUpper, 0.2),
            ],
            Viseme::FF => &[
                (B::JawOpen, 0.06),
                (B::MouthRollLower, 0.6),
                (B::MouthShrugUpper, 0.3),
                (B::MouthUpperUpLeft, 0.15),
                (B::MouthUpperUpRight, 0.15),
                (B::MouthPressLeft, 0.1),
                (B::MouthPressRight, 0.1),
            ],
            Viseme::TH => &[
                (B::JawOpen, 0.15),
                (B::MouthRollUpper, 0.2),
                (B::TongueOut, 0.4),
            ],
            Viseme::DD => &[
                (B::JawOpen, 0.15),
                (B::MouthPressLeft, 0.15),
                (B::MouthPressRight, 0.15),
                (B::MouthLowerDownLeft, 0.15),
                (B::MouthLowerDownRight, 0.15),
                (B::MouthStretchLeft, 0.1),
                (B::MouthStretchRight, 0.1),
            ],
            Viseme::Kk => &[
                (B::JawOpen, 0.2),
                (B::MouthLowerDownLeft, 0.2),
                (B::MouthLowerDownRight, 0.2),
                (B::MouthStretchLeft, 0.15),
                (B::MouthStretchRight, 0.15),
            ],
            Viseme::CH => &[
                (B::JawOpen, 0.15),
                (B::MouthFunnel, 0.5),
                (B::MouthPucker, 0.4),
                (B::MouthUpperUpLeft, 0.2),
                (B::MouthUpperUpRight, 0.2),
                (B::MouthLowerDownLeft, 0.2),
                (B::MouthLowerDownRight, 0.2),
            ],
            Viseme::SS => &[
                (B::JawOpen, 0.08),
                (B::MouthStretchLeft, 0.3),
                (B::MouthStretchRight, 0.3),
                (B::MouthSmileLeft, 0.15),
                (B::MouthSmileRight, 0.15),
                (B::MouthLowerDownLeft, 0.1),
                (B::MouthLowerDownRight, 0.1),
                (B::MouthUpperUpLeft, 0.1),
                (B::MouthUpperUpRight, 0.1),
            ],
            Viseme::Nn => &[
                (B::JawOpen, 0.15),
                (B::MouthLowerDownLeft, 0.15),
                (B::MouthLowerDownRight, 0.15),
                (B::MouthStretchLeft, 0.1),
                (B::MouthStretchRight, 0.1),
            ],
            Viseme::RR => &[
                (B::JawOpen, 0.15),
                (B::MouthPucker, 0.35),
                (B::MouthFunnel, 0.25),
            ],
            Viseme::Aa => &[
                (B::JawOpen, 0.65),
                (B::MouthLowerDownLeft, 0.3),
                (B::MouthLowerDownRight, 0.3),
                (B::MouthUpperUpLeft, 0.1),
                (B::MouthUpperUpRight, 0.1),
                (B::MouthStretchLeft, 0.1),
                (B::MouthStretchRight, 0.1),
            ],
            Viseme::E => &[
                (B::JawOpen, 0.35),
                (B::MouthStretchLeft, 0.3),
                (B::MouthStretchRight, 0.3),
                (B::MouthSmileLeft, 0.15),
                (B::MouthSmileRight, 0.15),
                (B::MouthDimpleLeft, 0.2),
                (B::MouthDimpleRight, 0.2),
                (B::MouthLowerDownLeft, 0.2),
                (B::MouthLowerDownRight, 0.2),
                (B::MouthUpperUpLeft, 0.1),
                (B::MouthUpperUpRight, 0.1),
            ],
            Viseme::I => &[
                (B::JawOpen, 0.2),
                (B::MouthStretchLeft, 0.35),
                (B::MouthStretchRight, 0.35),
                (B::MouthSmileLeft, 0.3),
                (B::MouthSmileRight, 0.3),
                (B::MouthDimpleLeft, 0.25),
                (B::MouthDimpleRight, 0.25),
                (B::MouthUpperUpLeft, 0.1),
                (B::MouthUpperUpRight, 0.1),
            ],
            Viseme::O => &[
                (B::JawOpen, 0.4),
                (B::MouthFunnel, 0.6),
                (B::MouthPucker, 0.3),
                (B::MouthLowerDownLeft, 0.1),
                (B::MouthLowerDownRight, 0.1),
            ],
            Viseme::U => &[
                (B::JawOpen, 0.15),
                (B::MouthPucker, 0.7),
                (B::MouthFunnel, 0.5),
            ],
        }
    }

    /// The dense ARKit target ([`Viseme::target_pairs`] in canonical order,
    /// all other channels 0).
    pub fn target(self) -> ArkitWeights {
        let mut w = [0.0; BLENDSHAPE_COUNT];
        for &(b, v) in self.target_pairs() {
            w[b.index()] = v;
        }
        w
    }
}

/// Visemes of an ARPAbet phone (stress digits ignored, case-insensitive),
/// each with the fraction of the phone's duration it occupies (fractions sum
/// to 1). `SIL` (and PocketSphinx fillers) → `[(Sil, 1)]`; diphthongs are two
/// visemes (`AY`: `aa` 0.6 then `I` 0.4); `HH` and unknown labels → `[]`
/// (transparent: the neighbours' dominance fills the gap).
pub fn phone_visemes(phone: &str) -> &'static [(Viseme, f32)] {
    use Viseme as V;
    let p: String = phone
        .trim()
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect::<String>()
        .to_ascii_uppercase();
    match p.as_str() {
        "SIL" | "<SIL>" | "<S>" | "</S>" | "+NSN+" | "+SPN+" | "+BREATH+" | "+NOISE+" => {
            &[(V::Sil, 1.0)]
        }
        "P" | "B" | "M" => &[(V::PP, 1.0)],
        "F" | "V" => &[(V::FF, 1.0)],
        "TH" | "DH" => &[(V::TH, 1.0)],
        "T" | "D" => &[(V::DD, 1.0)],
        "K" | "G" | "NG" => &[(V::Kk, 1.0)],
        "CH" | "JH" | "SH" | "ZH" => &[(V::CH, 1.0)],
        "S" | "Z" => &[(V::SS, 1.0)],
        "N" | "L" => &[(V::Nn, 1.0)],
        "R" | "ER" => &[(V::RR, 1.0)],
        // Schwa (`AX`, flite's `ax`) as CMUdict's `AH0`.
        "AA" | "AE" | "AH" | "AX" => &[(V::Aa, 1.0)],
        "AY" => &[(V::Aa, 0.6), (V::I, 0.4)],
        "AW" => &[(V::Aa, 0.6), (V::U, 0.4)],
        "EH" => &[(V::E, 1.0)],
        "EY" => &[(V::E, 0.6), (V::I, 0.4)],
        "IH" | "IY" | "Y" => &[(V::I, 1.0)],
        "AO" => &[(V::O, 1.0)],
        "OW" => &[(V::O, 0.6), (V::U, 0.4)],
        "OY" => &[(V::O, 0.6), (V::I, 0.4)],
        "UH" | "UW" | "W" => &[(V::U, 1.0)],
        _ => &[],
    }
}

/// The main viseme of an ARPAbet phone (the first of [`phone_visemes`]),
/// `None` for transparent phones (`HH`, unknown labels).
pub fn viseme_of(phone: &str) -> Option<Viseme> {
    phone_visemes(phone).first().map(|&(v, _)| v)
}
