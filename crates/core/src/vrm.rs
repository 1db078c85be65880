//! VRM 1.0 expressions (feature `gltf`): ARKit-52 weights and the emotion
//! mix turned into the preset expressions of an avatar that carries the
//! `VRMC_vrm` glTF extension, then into its morph target weights.
//!
//! Source: the VRM 1.0 specification, `VRMC_vrm` → `expressions`
//! (`expressions.md`): each expression binds morph targets
//! (`morphTargetBinds`: node, target index, weight in [0, 1]), may be
//! binary (`isBinary`: > 0.5 → 1, else 0), and may override the blink,
//! look-at and mouth groups while active (`overrideBlink`, `overrideLookAt`,
//! `overrideMouth`: `"block"` silences the group whenever the expression's
//! weight is above 0, `"blend"` scales the group by 1 − weight).
//!
//! How this crate drives the presets ([`preset_weights`]):
//! | preset | from |
//! |---|---|
//! | `aa` | jawOpen · (1 − rounding) |
//! | `oh`, `ou` | mouthFunnel, mouthPucker |
//! | `ee`, `ih` | lip spread (mouthStretch + mouthSmile, L/R mean) · open, · (1 − open); open = min(1, 2 · jawOpen) |
//! | `blink`, `blinkLeft`, `blinkRight` | min(eyeBlinkL, eyeBlinkR), and what each eye closes beyond it |
//! | `lookUp`, `lookDown`, `lookLeft`, `lookRight` | eyeLook* of both eyes (left = left eye out + right eye in) |
//! | `happy`, `angry`, `sad`, `surprised` | the emotion mix; disgusted adds 0.6 to angry, fearful 0.5 to sad and to surprised |
//! | `relaxed`, `neutral` | 0 |
//!
//! The five mouth presets are scaled down together when they sum above 1.

use serde_json::Value;

use crate::model::{EMOTION_COUNT, EMOTIONS};
use crate::rig::{BLENDSHAPE_COUNT, Blendshape};

/// The VRM 1.0 preset expressions, in [`VrmPreset::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum VrmPreset {
    Happy,
    Angry,
    Sad,
    Relaxed,
    Surprised,
    Aa,
    Ih,
    Ou,
    Ee,
    Oh,
    Blink,
    BlinkLeft,
    BlinkRight,
    LookUp,
    LookDown,
    LookLeft,
    LookRight,
    Neutral,
}

/// Number of VRM 1.0 presets.
pub const VRM_PRESET_COUNT: usize = 18;

impl VrmPreset {
    /// Every preset, in index order.
    pub const ALL: [VrmPreset; VRM_PRESET_COUNT] = [
        Self::Happy,
        Self::Angry,
        Self::Sad,
        Self::Relaxed,
        Self::Surprised,
        Self::Aa,
        Self::Ih,
        Self::Ou,
        Self::Ee,
        Self::Oh,
        Self::Blink,
        Self::BlinkLeft,
        Self::BlinkRight,
        Self::LookUp,
        Self::LookDown,
        Self::LookLeft,
        Self::LookRight,
        Self::Neutral,
    ];

    /// The key in `expressions.preset` (`"aa"`, `"blinkLeft"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Happy => "happy",
            Self::Angry => "angry",
            Self::Sad => "sad",
            Self::Relaxed => "relaxed",
            Self::Surprised => "surprised",
            Self::Aa => "aa",
            Self::Ih => "ih",
            Self::Ou => "ou",
            Self::Ee => "ee",
            Self::Oh => "oh",
            Self::Blink => "blink",
            Self::BlinkLeft => "blinkLeft",
            Self::BlinkRight => "blinkRight",
            Self::LookUp => "lookUp",
            Self::LookDown => "lookDown",
            Self::LookLeft => "lookLeft",
            Self::LookRight => "lookRight",
            Self::Neutral => "neutral",
        }
    }

    /// The preset with key `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Index in [`VrmPreset::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The override group this preset belongs to, if any.
    pub const fn group(self) -> Option<OverrideGroup> {
        match self {
            Self::Aa | Self::Ih | Self::Ou | Self::Ee | Self::Oh => Some(OverrideGroup::Mouth),
            Self::Blink | Self::BlinkLeft | Self::BlinkRight => Some(OverrideGroup::Blink),
            Self::LookUp | Self::LookDown | Self::LookLeft | Self::LookRight => {
                Some(OverrideGroup::LookAt)
            }
            _ => None,
        }
    }
}

/// The groups an expression can override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OverrideGroup {
    Mouth,
    Blink,
    LookAt,
}

/// `overrideMouth` / `overrideBlink` / `overrideLookAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Override {
    /// No effect (the default).
    #[default]
    None,
    /// The group is silenced while this expression's weight is above 0.
    Block,
    /// The group is scaled by 1 − this expression's weight.
    Blend,
}

impl Override {
    fn parse(v: Option<&Value>) -> Self {
        match v.and_then(Value::as_str) {
            Some("block") => Self::Block,
            Some("blend") => Self::Blend,
            _ => Self::None,
        }
    }

    /// The factor this override applies to its group at weight `w`.
    pub fn factor(self, w: f32) -> f32 {
        match self {
            Self::None => 1.0,
            Self::Block => {
                if w > 0.0 {
                    0.0
                } else {
                    1.0
                }
            }
            Self::Blend => (1.0 - w).clamp(0.0, 1.0),
        }
    }
}

/// One `morphTargetBinds` entry: glTF node index, morph target index, weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MorphBind {
    /// glTF node index (a node with a mesh).
    pub node: usize,
    /// Morph target index in that mesh.
    pub index: usize,
    /// Weight of the target at expression weight 1, in [0, 1].
    pub weight: f32,
}

/// One expression of the avatar (a preset or a custom one).
#[derive(Debug, Clone, PartialEq)]
pub struct VrmExpression {
    /// The preset, `None` for a custom expression.
    pub preset: Option<VrmPreset>,
    /// The key (`"aa"`, or the custom name).
    pub name: String,
    /// Morph targets it moves.
    pub binds: Vec<MorphBind>,
    /// Weights snap to 0 or 1.
    pub is_binary: bool,
    /// `overrideBlink`.
    pub override_blink: Override,
    /// `overrideLookAt`.
    pub override_look_at: Override,
    /// `overrideMouth`.
    pub override_mouth: Override,
}

/// The expressions of a VRM 1.0 avatar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VrmExpressions {
    /// `specVersion` (e.g. `"1.0"`).
    pub spec_version: String,
    /// Every expression, presets first.
    pub expressions: Vec<VrmExpression>,
}

/// Errors reading `VRMC_vrm`.
#[derive(Debug, thiserror::Error)]
pub enum VrmError {
    /// Not an object, or `expressions` malformed.
    #[error("VRMC_vrm extension is malformed: {0}")]
    Malformed(String),
    /// A VRM 0.x file (`VRM` extension): not supported.
    #[error("this is a VRM 0.x avatar (extension `VRM`); only VRM 1.0 (`VRMC_vrm`) is supported")]
    Vrm0,
}

impl VrmExpressions {
    /// Reads the value of the `VRMC_vrm` root extension.
    ///
    /// # Errors
    /// [`VrmError::Malformed`] when it is not an object or a bind is not
    /// `{node, index, weight}` with non-negative integers.
    pub fn from_extension(v: &Value) -> Result<Self, VrmError> {
        let obj = v
            .as_object()
            .ok_or_else(|| VrmError::Malformed("not an object".into()))?;
        let spec_version = obj
            .get("specVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut expressions = Vec::new();
        let groups = obj.get("expressions");
        for (group, is_preset) in [("preset", true), ("custom", false)] {
            let Some(map) = groups.and_then(|g| g.get(group)).and_then(Value::as_object) else {
                continue;
            };
            for (name, e) in map {
                let preset = if is_preset {
                    match VrmPreset::from_name(name) {
                        Some(p) => Some(p),
                        None => continue, // an unknown preset key: ignored
                    }
                } else {
                    None
                };
                let mut binds = Vec::new();
                for b in e
                    .get("morphTargetBinds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let int = |k: &str| {
                        b.get(k).and_then(Value::as_u64).ok_or_else(|| {
                            VrmError::Malformed(format!(
                                "expression `{name}`: a bind has no valid `{k}`"
                            ))
                        })
                    };
                    let weight = b.get("weight").and_then(Value::as_f64).unwrap_or(1.0) as f32;
                    binds.push(MorphBind {
                        node: int("node")? as usize,
                        index: int("index")? as usize,
                        weight: if weight.is_finite() {
                            weight.clamp(0.0, 1.0)
                        } else {
                            0.0
                        },
                    });
                }
                expressions.push(VrmExpression {
                    preset,
                    name: name.clone(),
                    binds,
                    is_binary: e.get("isBinary").and_then(Value::as_bool).unwrap_or(false),
                    override_blink: Override::parse(e.get("overrideBlink")),
                    override_look_at: Override::parse(e.get("overrideLookAt")),
                    override_mouth: Override::parse(e.get("overrideMouth")),
                });
            }
        }
        Ok(Self {
            spec_version,
            expressions,
        })
    }

    /// Reads `VRMC_vrm` from a glTF root's `extensions` object (`None`
    /// without it).
    ///
    /// # Errors
    /// [`VrmError::Vrm0`] for a VRM 0.x file; as [`from_extension`](Self::from_extension).
    pub fn from_root_extensions(
        extensions: &serde_json::Map<String, Value>,
    ) -> Result<Option<Self>, VrmError> {
        match extensions.get("VRMC_vrm") {
            Some(v) => Self::from_extension(v).map(Some),
            None if extensions.contains_key("VRM") => Err(VrmError::Vrm0),
            None => Ok(None),
        }
    }

    /// The expression weights for `presets` ([`preset_weights`]), custom
    /// expressions at 0, after `isBinary` and the overrides.
    pub fn resolve(&self, presets: &[f32; VRM_PRESET_COUNT]) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.expressions.len());
        self.resolve_into(presets, &mut w);
        w
    }

    /// [`resolve`](Self::resolve) into `w` (cleared first): no allocation
    /// once `w` has grown to the expression count (the per-frame path).
    pub fn resolve_into(&self, presets: &[f32; VRM_PRESET_COUNT], w: &mut Vec<f32>) {
        w.clear();
        w.extend(self.expressions.iter().map(|e| {
            let v = e.preset.map_or(0.0, |p| presets[p.index()]).clamp(0.0, 1.0);
            if e.is_binary {
                if v > 0.5 { 1.0 } else { 0.0 }
            } else {
                v
            }
        }));
        let (mut mouth, mut blink, mut look) = (1.0f32, 1.0f32, 1.0f32);
        for (e, &v) in self.expressions.iter().zip(w.iter()) {
            mouth = mouth.min(e.override_mouth.factor(v));
            blink = blink.min(e.override_blink.factor(v));
            look = look.min(e.override_look_at.factor(v));
        }
        for (e, v) in self.expressions.iter().zip(w.iter_mut()) {
            match e.preset.and_then(VrmPreset::group) {
                Some(OverrideGroup::Mouth) => *v *= mouth,
                Some(OverrideGroup::Blink) => *v *= blink,
                Some(OverrideGroup::LookAt) => *v *= look,
                None => {}
            }
        }
    }
}

impl VrmExpressions {
    /// Adds the morph weights of resolved expression weights `exprs`
    /// ([`resolve`](Self::resolve) order) through `add(bind, weight)`: each
    /// bind of an expression with weight `x > 0` gets `x × bind.weight`.
    /// Callers sum per `(node, index)` and clamp to 1, as VRM 1.0 specifies
    /// for overlapping binds.
    pub fn for_each_bind(&self, exprs: &[f32], mut add: impl FnMut(&MorphBind, f32)) {
        for (x, e) in exprs.iter().zip(&self.expressions) {
            if *x > 0.0 {
                for b in &e.binds {
                    add(b, x * b.weight);
                }
            }
        }
    }
}

/// The preset weights (in [0, 1], [`VrmPreset::ALL`] order) for one frame
/// of ARKit-52 weights and the emotion mix (weights in [`EMOTIONS`] order,
/// already scaled by intensity). See the module table.
pub fn preset_weights(
    arkit: &[f32; BLENDSHAPE_COUNT],
    emotion: &[f32; EMOTION_COUNT],
) -> [f32; VRM_PRESET_COUNT] {
    use Blendshape as B;
    // The visemes read articulation only: the emotion's own offsets (the
    // smile of happy, the stretch of fearful), which the model blends in as
    // `w + (1 - w) * offset`, are taken out first, so a resting happy face is
    // the `happy` preset, not `happy` plus a spread-lips `ih`.
    let off = crate::model::emotion_rest_face(emotion);
    let a = |b: B| {
        let (w, o) = (arkit[b.index()].clamp(0.0, 1.0), off[b.index()]);
        if o <= 0.0 {
            w
        } else if o >= 1.0 {
            0.0
        } else {
            ((w - o) / (1.0 - o)).clamp(0.0, 1.0)
        }
    };
    let e = |name: &str| {
        EMOTIONS
            .iter()
            .position(|n| *n == name)
            .map_or(0.0, |i| emotion[i].clamp(0.0, 1.0))
    };
    let mut p = [0f32; VRM_PRESET_COUNT];
    let jaw = a(B::JawOpen);
    let (funnel, pucker) = (a(B::MouthFunnel), a(B::MouthPucker));
    let rounding = (funnel + pucker).min(1.0);
    let spread = (0.5 * (a(B::MouthStretchLeft) + a(B::MouthStretchRight))
        + 0.5 * (a(B::MouthSmileLeft) + a(B::MouthSmileRight)))
    .min(1.0);
    let open = (2.0 * jaw).min(1.0);
    p[VrmPreset::Aa.index()] = jaw * (1.0 - rounding);
    p[VrmPreset::Oh.index()] = funnel;
    p[VrmPreset::Ou.index()] = pucker;
    p[VrmPreset::Ee.index()] = spread * open;
    p[VrmPreset::Ih.index()] = spread * (1.0 - open);
    let mouth = [
        VrmPreset::Aa,
        VrmPreset::Ih,
        VrmPreset::Ou,
        VrmPreset::Ee,
        VrmPreset::Oh,
    ];
    let sum: f32 = mouth.iter().map(|m| p[m.index()]).sum();
    if sum > 1.0 {
        for m in mouth {
            p[m.index()] /= sum;
        }
    }
    let (bl, br) = (a(B::EyeBlinkLeft), a(B::EyeBlinkRight));
    let both = bl.min(br);
    p[VrmPreset::Blink.index()] = both;
    p[VrmPreset::BlinkLeft.index()] = bl - both;
    p[VrmPreset::BlinkRight.index()] = br - both;
    p[VrmPreset::LookUp.index()] = 0.5 * (a(B::EyeLookUpLeft) + a(B::EyeLookUpRight));
    p[VrmPreset::LookDown.index()] = 0.5 * (a(B::EyeLookDownLeft) + a(B::EyeLookDownRight));
    p[VrmPreset::LookLeft.index()] = 0.5 * (a(B::EyeLookOutLeft) + a(B::EyeLookInRight));
    p[VrmPreset::LookRight.index()] = 0.5 * (a(B::EyeLookInLeft) + a(B::EyeLookOutRight));
    p[VrmPreset::Happy.index()] = e("happy");
    p[VrmPreset::Angry.index()] = (e("angry") + 0.6 * e("disgusted")).min(1.0);
    p[VrmPreset::Sad.index()] = (e("sad") + 0.5 * e("fearful")).min(1.0);
    p[VrmPreset::Surprised.index()] = (e("surprised") + 0.5 * e("fearful")).min(1.0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resting happy face (its smile from the emotion offsets) is the
    /// `happy` preset alone: no spread-lips viseme; a smile on top of the
    /// offsets still reads as `ih`.
    #[test]
    fn emotion_offsets_are_not_read_as_visemes() {
        let mut happy = [0f32; EMOTION_COUNT];
        happy[1] = 1.0;
        let rest = crate::model::emotion_rest_face(&happy);
        let p = preset_weights(&rest, &happy);
        assert_eq!(p[VrmPreset::Happy.index()], 1.0);
        for m in [
            VrmPreset::Ih,
            VrmPreset::Ee,
            VrmPreset::Aa,
            VrmPreset::Ou,
            VrmPreset::Oh,
        ] {
            assert!(p[m.index()] < 1e-6, "{m:?} {}", p[m.index()]);
        }
        let mut wide = rest;
        wide[Blendshape::MouthSmileLeft.index()] = 1.0;
        wide[Blendshape::MouthSmileRight.index()] = 1.0;
        assert!(preset_weights(&wide, &happy)[VrmPreset::Ih.index()] > 0.3);
        // Neutral: unchanged mapping.
        let neutral = crate::model::NEUTRAL_EMOTION;
        assert!(preset_weights(&wide, &neutral)[VrmPreset::Ih.index()] > 0.3);
    }

    fn expr(binds: &[(usize, usize)]) -> Value {
        let b: Vec<Value> = binds
            .iter()
            .map(|(n, i)| serde_json::json!({"node": n, "index": i, "weight": 1.0}))
            .collect();
        serde_json::json!({ "morphTargetBinds": b })
    }

    #[test]
    fn parses_presets_overrides_and_binary() {
        let mut happy = expr(&[(0, 3)]);
        happy["overrideMouth"] = "block".into();
        happy["isBinary"] = true.into();
        let v = serde_json::json!({
            "specVersion": "1.0",
            "expressions": {
                "preset": { "aa": expr(&[(0, 1)]), "happy": happy, "bogus": expr(&[]) },
                "custom": { "wink": expr(&[(0, 2)]) }
            }
        });
        let x = VrmExpressions::from_extension(&v).unwrap();
        assert_eq!(x.expressions.len(), 3);
        let mut p = [0f32; VRM_PRESET_COUNT];
        p[VrmPreset::Aa.index()] = 0.8;
        let w = x.resolve(&p);
        let aa = x.expressions.iter().position(|e| e.name == "aa").unwrap();
        let happy = x
            .expressions
            .iter()
            .position(|e| e.name == "happy")
            .unwrap();
        assert!((w[aa] - 0.8).abs() < 1e-6);
        // happy 0.6 is binary → 1, and blocks the mouth.
        p[VrmPreset::Happy.index()] = 0.6;
        let w = x.resolve(&p);
        assert_eq!(w[happy], 1.0);
        assert_eq!(w[aa], 0.0);
        // happy 0.4 → 0: the mouth is back.
        p[VrmPreset::Happy.index()] = 0.4;
        let w = x.resolve(&p);
        assert_eq!(w[happy], 0.0);
        assert!((w[aa] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn malformed_and_vrm0_are_errors() {
        assert!(VrmExpressions::from_extension(&serde_json::json!(3)).is_err());
        let bad = serde_json::json!({"expressions": {"preset": {"aa": {"morphTargetBinds": [{"node": -1, "index": 0}]}}}});
        assert!(VrmExpressions::from_extension(&bad).is_err());
        let mut ext = serde_json::Map::new();
        ext.insert("VRM".into(), serde_json::json!({}));
        assert!(matches!(
            VrmExpressions::from_root_extensions(&ext),
            Err(VrmError::Vrm0)
        ));
    }

    #[test]
    fn presets_follow_the_face() {
        let mut f = [0f32; BLENDSHAPE_COUNT];
        f[Blendshape::JawOpen.index()] = 0.7;
        let p = preset_weights(&f, &[0.0; EMOTION_COUNT]);
        assert!(p[VrmPreset::Aa.index()] > 0.6);
        f[Blendshape::JawOpen.index()] = 0.2;
        f[Blendshape::MouthPucker.index()] = 0.8;
        f[Blendshape::EyeBlinkLeft.index()] = 1.0;
        f[Blendshape::EyeBlinkRight.index()] = 0.6;
        let mut e = [0f32; EMOTION_COUNT];
        e[EMOTIONS.iter().position(|n| *n == "happy").unwrap()] = 1.0;
        let p = preset_weights(&f, &e);
        assert!(p[VrmPreset::Ou.index()] > p[VrmPreset::Aa.index()]);
        assert!((p[VrmPreset::Blink.index()] - 0.6).abs() < 1e-6);
        assert!((p[VrmPreset::BlinkLeft.index()] - 0.4).abs() < 1e-6);
        assert_eq!(p[VrmPreset::Happy.index()], 1.0);
    }
}
