//! Retarget maps: named source channels → named target channels, as
//! weighted combinations.
//!
//! A [`RetargetMap`] is plain data (serde, JSON on disk): one
//! [`RetargetRule`] per target channel, each a list of weighted source
//! channels combined by [`Combine::Sum`] or [`Combine::Max`]. Typical uses:
//! FACEGOOD's 116-channel rig → the 52 ARKit shapes (its table uses
//! `max(a,b)`, i.e. [`Combine::Max`]), ARKit → an avatar's own morph target
//! names, or Oculus visemes → ARKit
//! ([`RetargetMap::from_oculus_viseme_json`]).
//!
//! Names are resolved to indices once by [`RetargetMap::compile`]; the
//! resulting [`CompiledRetarget::apply`] is the per-frame hot path (no
//! allocation, no name lookups).
//!
//! JSON layout (fields other than `target`/`sources`/`source` optional;
//! unknown fields are rejected to catch typos):
//!
//! ```json
//! {
//!   "name": "example",
//!   "notes": "free text",
//!   "rules": [
//!     { "target": "jawOpen", "sources": [ { "source": "mouth_stretch_c", "weight": 1.0 } ] },
//!     { "target": "mouthPucker", "combine": "max",
//!       "sources": [ { "source": "mouth_pucker_l" }, { "source": "mouth_pucker_r" } ] }
//!   ]
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use super::arkit::blendshape_index;

/// How a rule combines its weighted sources `wᵢ · sᵢ` into one target value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// `clamp(Σ wᵢ·sᵢ, 0, 1)` (JSON `"sum"`; the default). The linear
    /// blendshape model, clamped to the valid morph range.
    #[default]
    #[serde(alias = "Sum")]
    Sum,
    /// `clamp(maxᵢ wᵢ·sᵢ, 0, 1)` (JSON `"max"`): the strongest source wins,
    /// as in FACEGOOD's `max(a,b)` table entries.
    #[serde(alias = "Max")]
    Max,
}

/// One source channel and its weight in a [`RetargetRule`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedSource {
    /// Source channel name (matched exactly first, then ASCII case-insensitively).
    pub source: String,
    /// Multiplier applied to the source value (dimensionless; JSON default 1.0).
    #[serde(default = "default_weight")]
    pub weight: f32,
}

fn default_weight() -> f32 {
    1.0
}

impl WeightedSource {
    /// A source with the given name and weight.
    pub fn new(source: impl Into<String>, weight: f32) -> Self {
        Self {
            source: source.into(),
            weight,
        }
    }
}

/// How one target channel is computed from the source channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetargetRule {
    /// Target channel name (matched exactly first, then ASCII case-insensitively).
    pub target: String,
    /// The weighted sources; an empty list yields 0.
    pub sources: Vec<WeightedSource>,
    /// How the weighted sources are combined (JSON `"sum"` or `"max"`, default sum).
    #[serde(default)]
    pub combine: Combine,
    /// Free-text notes (not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl RetargetRule {
    /// A rule without notes.
    pub fn new(target: impl Into<String>, sources: Vec<WeightedSource>, combine: Combine) -> Self {
        Self {
            target: target.into(),
            sources,
            combine,
            notes: None,
        }
    }
}

/// A named set of retarget rules (serde; stored as JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetargetMap {
    /// Optional human-readable name of the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Optional free-text notes (provenance, licence, caveats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The rules, at most one per target channel.
    pub rules: Vec<RetargetRule>,
}

/// Errors from loading, compiling or applying a retarget map.
#[derive(Debug, Error)]
pub enum RetargetError {
    /// The JSON text is malformed or does not match the expected layout
    /// (serde_json's message includes line and column).
    #[error("{}invalid retarget map JSON: {source}", path_prefix(.path))]
    Json {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The underlying parse error.
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("{}: I/O error: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Rules name source channels that are not in the source name list.
    #[error("unknown source channel(s) {} (not among the {available} source names given)", list(.names))]
    UnknownSources {
        /// The unknown names, each once, in rule order.
        names: Vec<String>,
        /// How many source names were given.
        available: usize,
    },
    /// Rules name target channels that are not in the target name list.
    #[error("unknown target channel(s) {} (not among the {available} target names given)", list(.names))]
    UnknownTargets {
        /// The unknown names, each once, in rule order.
        names: Vec<String>,
        /// How many target names were given.
        available: usize,
    },
    /// Two rules resolve to the same target channel.
    #[error("more than one rule for target channel `{name}`")]
    DuplicateTarget {
        /// The target name as written in the second rule.
        name: String,
    },
    /// A weight is NaN or infinite.
    #[error("rule for `{target}`: weight of source `{source_name}` is {weight}")]
    InvalidWeight {
        /// The rule's target.
        target: String,
        /// The source whose weight is invalid.
        source_name: String,
        /// The weight.
        weight: f32,
    },
    /// The JSON object has the same key twice.
    #[error("duplicate key `{key}` in viseme table")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// Slices given to [`CompiledRetarget::try_apply`] do not have the
    /// lengths the map was compiled for.
    #[error(
        "retarget compiled for {expected_sources} sources → {expected_targets} targets, \
         got slices of {sources} → {targets}"
    )]
    LengthMismatch {
        /// Source count the map was compiled for.
        expected_sources: usize,
        /// Length of the source slice given.
        sources: usize,
        /// Target count the map was compiled for.
        expected_targets: usize,
        /// Length of the target slice given.
        targets: usize,
    },
}

fn path_prefix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Name → index lookup: exact match first, then ASCII case-insensitive.
/// The first occurrence of a name wins.
struct NameIndex<'a> {
    exact: HashMap<&'a str, usize>,
    folded: HashMap<String, usize>,
}

impl<'a> NameIndex<'a> {
    fn new<S: AsRef<str>>(names: &'a [S]) -> Self {
        let mut exact = HashMap::with_capacity(names.len());
        let mut folded = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let n = n.as_ref();
            exact.entry(n).or_insert(i);
            folded.entry(n.to_ascii_lowercase()).or_insert(i);
        }
        Self { exact, folded }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.exact
            .get(name)
            .or_else(|| self.folded.get(&name.to_ascii_lowercase()))
            .copied()
    }
}

impl RetargetMap {
    /// Parses a map from JSON text (layout in the [module docs](self)).
    ///
    /// # Errors
    /// [`RetargetError::Json`] with serde_json's line/column message.
    pub fn from_json_str(json: &str) -> Result<Self, RetargetError> {
        serde_json::from_str(json).map_err(|source| RetargetError::Json { path: None, source })
    }

    /// Loads a map from a JSON file.
    ///
    /// # Errors
    /// [`RetargetError::Io`] if the file cannot be read,
    /// [`RetargetError::Json`] (naming the file) if it does not parse.
    pub fn load_json(path: impl AsRef<Path>) -> Result<Self, RetargetError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| RetargetError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| RetargetError::Json {
            path: Some(path.to_owned()),
            source,
        })
    }

    /// The map as pretty-printed JSON (2-space indent; `None` fields and
    /// notes omitted).
    pub fn to_json_string_pretty(&self) -> String {
        // Only strings, numbers, sequences and unit enums: serialisation cannot fail
        // (non-finite weights become `null`, which `compile` would reject anyway).
        serde_json::to_string_pretty(self).expect("RetargetMap serialisation is infallible")
    }

    /// Writes [`to_json_string_pretty`](Self::to_json_string_pretty) to a file.
    ///
    /// # Errors
    /// [`RetargetError::Io`] if the file cannot be written.
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), RetargetError> {
        let path = path.as_ref();
        let mut text = self.to_json_string_pretty();
        text.push('\n');
        fs::write(path, text).map_err(|source| RetargetError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The identity map over `names`: one rule per name, `target = source = name`,
    /// weight 1, [`Combine::Sum`]. E.g. `RetargetMap::identity(&ARKIT_BLENDSHAPES)`
    /// drives an avatar whose morph targets carry the ARKit names.
    pub fn identity<S: AsRef<str>>(names: &[S]) -> Self {
        Self {
            name: Some("identity".to_owned()),
            notes: None,
            rules: names
                .iter()
                .map(|n| {
                    let n = n.as_ref();
                    RetargetRule::new(n, vec![WeightedSource::new(n, 1.0)], Combine::Sum)
                })
                .collect(),
        }
    }

    /// Builds a **viseme → ARKit** map from a TalkingHead-style table
    /// (`/shared/data/mappings/oculus_viseme_to_arkit.json`, MIT, Mika
    /// Suominen): a JSON object `{ "viseme_aa": { "jawOpen": 0.6 }, ... }`
    /// that defines each Oculus viseme as a weighted mix of ARKit shapes.
    ///
    /// Under the linear blendshape model, viseme weights `v` drive ARKit
    /// weights `a_j = Σ_v w_{v,j} · v`, so the result has one
    /// [`Combine::Sum`] rule per ARKit shape used (targets in canonical ARKit
    /// order for ARKit names, then others in first-use order; sources in file
    /// order). Visemes with an empty mix (`viseme_sil`) contribute nothing.
    /// This is the direction the table encodes; driving a viseme-only avatar
    /// from ARKit weights would need the (non-unique) inverse and is not
    /// provided.
    ///
    /// # Errors
    /// [`RetargetError::Json`] if the text is not an object of objects of
    /// numbers; [`RetargetError::DuplicateKey`] for a repeated key.
    pub fn from_oculus_viseme_json(json: &str) -> Result<Self, RetargetError> {
        let table: OrderedMap<OrderedMap<f32>> = serde_json::from_str(json)
            .map_err(|source| RetargetError::Json { path: None, source })?;
        if let Some(key) = table.duplicate.clone() {
            return Err(RetargetError::DuplicateKey { key });
        }
        let mut targets: Vec<String> = Vec::new();
        let mut by_target: HashMap<String, Vec<WeightedSource>> = HashMap::new();
        for (viseme, mix) in &table.entries {
            if let Some(key) = mix.duplicate.clone() {
                return Err(RetargetError::DuplicateKey { key });
            }
            for &(ref shape, w) in &mix.entries {
                by_target
                    .entry(shape.clone())
                    .or_insert_with(|| {
                        targets.push(shape.clone());
                        Vec::new()
                    })
                    .push(WeightedSource::new(viseme.clone(), w));
            }
        }
        // Canonical ARKit order first (stable for non-ARKit names).
        targets.sort_by_key(|t| blendshape_index(t).unwrap_or(usize::MAX));
        let rules = targets
            .into_iter()
            .map(|t| {
                let sources = by_target.remove(&t).unwrap_or_default();
                RetargetRule::new(t, sources, Combine::Sum)
            })
            .collect();
        Ok(Self {
            name: Some("oculus_viseme_to_arkit".to_owned()),
            notes: Some(
                "Oculus visemes -> ARKit: each ARKit weight is the clamped, weighted sum of \
                 the visemes whose TalkingHead definition uses that shape."
                    .to_owned(),
            ),
            rules,
        })
    }

    /// Resolves every name to an index in `source_names` / `target_names`
    /// (exact match first, then ASCII case-insensitive; the first occurrence
    /// of a repeated name wins) and returns the hot-path form.
    ///
    /// # Errors
    /// * [`RetargetError::UnknownSources`] listing every source name not found;
    /// * [`RetargetError::UnknownTargets`] listing every target name not found;
    /// * [`RetargetError::DuplicateTarget`] if two rules resolve to the same target;
    /// * [`RetargetError::InvalidWeight`] for a NaN or infinite weight.
    pub fn compile<S: AsRef<str>, T: AsRef<str>>(
        &self,
        source_names: &[S],
        target_names: &[T],
    ) -> Result<CompiledRetarget, RetargetError> {
        let (compiled, missing) = self.compile_impl(source_names, target_names)?;
        if missing.is_empty() {
            Ok(compiled)
        } else {
            Err(RetargetError::UnknownTargets {
                names: missing,
                available: target_names.len(),
            })
        }
    }

    /// Like [`compile`](Self::compile) but drops rules whose target is not in
    /// `target_names` instead of failing (for avatars that lack some morph
    /// targets); returns the dropped target names, each once, in rule order.
    ///
    /// # Errors
    /// As [`compile`](Self::compile) except [`RetargetError::UnknownTargets`].
    pub fn compile_skipping_missing_targets<S: AsRef<str>, T: AsRef<str>>(
        &self,
        source_names: &[S],
        target_names: &[T],
    ) -> Result<(CompiledRetarget, Vec<String>), RetargetError> {
        self.compile_impl(source_names, target_names)
    }

    fn compile_impl<S: AsRef<str>, T: AsRef<str>>(
        &self,
        source_names: &[S],
        target_names: &[T],
    ) -> Result<(CompiledRetarget, Vec<String>), RetargetError> {
        let sources = NameIndex::new(source_names);
        let targets = NameIndex::new(target_names);
        let mut unknown_sources: Vec<String> = Vec::new();
        let mut unknown_targets: Vec<String> = Vec::new();
        let mut seen_target = vec![false; target_names.len()];
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut terms = Vec::new();

        for rule in &self.rules {
            for s in &rule.sources {
                if !s.weight.is_finite() {
                    return Err(RetargetError::InvalidWeight {
                        target: rule.target.clone(),
                        source_name: s.source.clone(),
                        weight: s.weight,
                    });
                }
                if sources.get(&s.source).is_none() && !unknown_sources.contains(&s.source) {
                    unknown_sources.push(s.source.clone());
                }
            }
            let Some(t) = targets.get(&rule.target) else {
                if !unknown_targets.contains(&rule.target) {
                    unknown_targets.push(rule.target.clone());
                }
                continue;
            };
            if std::mem::replace(&mut seen_target[t], true) {
                return Err(RetargetError::DuplicateTarget {
                    name: rule.target.clone(),
                });
            }
            let start = terms.len();
            terms.extend(
                rule.sources
                    .iter()
                    .filter_map(|s| sources.get(&s.source).map(|i| (i, s.weight))),
            );
            rules.push(CompiledRule {
                target: t,
                combine: rule.combine,
                start,
                end: terms.len(),
            });
        }
        if !unknown_sources.is_empty() {
            return Err(RetargetError::UnknownSources {
                names: unknown_sources,
                available: source_names.len(),
            });
        }
        let mut covered: Vec<usize> = rules.iter().map(|r| r.target).collect();
        covered.sort_unstable();
        Ok((
            CompiledRetarget {
                rules,
                terms,
                covered,
                source_len: source_names.len(),
                target_len: target_names.len(),
            },
            unknown_targets,
        ))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct CompiledRule {
    target: usize,
    combine: Combine,
    start: usize,
    end: usize,
}

/// A [`RetargetMap`] with names resolved to indices; produced by
/// [`RetargetMap::compile`]. Cheap to clone and share.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRetarget {
    rules: Vec<CompiledRule>,
    /// `(source index, weight)` for every rule, rule after rule.
    terms: Vec<(usize, f32)>,
    covered: Vec<usize>,
    source_len: usize,
    target_len: usize,
}

impl CompiledRetarget {
    /// Computes every covered target from `source` and writes it into
    /// `target`. Targets not covered by any rule are **left untouched**, so
    /// the caller can layer other drivers (e.g. procedural blinks) or
    /// `target.fill(0.0)` first. Results are clamped to `[0, 1]` and NaN
    /// becomes 0 (see [`Combine`]). No allocation, no name lookups.
    ///
    /// Never panics: if `source` is shorter than the compiled source list
    /// the missing sources read as 0, and covered targets beyond
    /// `target.len()` are skipped. Use [`try_apply`](Self::try_apply) to get
    /// an error for wrong lengths instead.
    pub fn apply(&self, source: &[f32], target: &mut [f32]) {
        for rule in &self.rules {
            let Some(out) = target.get_mut(rule.target) else {
                continue;
            };
            let terms = &self.terms[rule.start..rule.end];
            let value = match rule.combine {
                Combine::Sum => terms
                    .iter()
                    .map(|&(i, w)| w * source.get(i).copied().unwrap_or(0.0))
                    .sum::<f32>(),
                Combine::Max => {
                    if terms.is_empty() {
                        0.0
                    } else {
                        terms.iter().fold(f32::NEG_INFINITY, |m, &(i, w)| {
                            m.max(w * source.get(i).copied().unwrap_or(0.0))
                        })
                    }
                }
            };
            *out = if value.is_nan() {
                0.0
            } else {
                value.clamp(0.0, 1.0)
            };
        }
    }

    /// [`apply`](Self::apply) after checking that `source.len()` and
    /// `target.len()` equal the name-list lengths given to `compile`.
    ///
    /// # Errors
    /// [`RetargetError::LengthMismatch`] (nothing is written).
    pub fn try_apply(&self, source: &[f32], target: &mut [f32]) -> Result<(), RetargetError> {
        if source.len() != self.source_len || target.len() != self.target_len {
            return Err(RetargetError::LengthMismatch {
                expected_sources: self.source_len,
                sources: source.len(),
                expected_targets: self.target_len,
                targets: target.len(),
            });
        }
        self.apply(source, target);
        Ok(())
    }

    /// Indices (into the target name list) that some rule writes, ascending.
    pub fn covered_targets(&self) -> &[usize] {
        &self.covered
    }

    /// Number of source names the map was compiled against.
    pub fn source_len(&self) -> usize {
        self.source_len
    }

    /// Number of target names the map was compiled against.
    pub fn target_len(&self) -> usize {
        self.target_len
    }
}

/// A JSON object read in document order, remembering the first repeated key.
struct OrderedMap<V> {
    entries: Vec<(String, V)>,
    duplicate: Option<String>,
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                let mut duplicate = None;
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if duplicate.is_none() && entries.iter().any(|(e, _)| *e == k) {
                        duplicate = Some(k.clone());
                    }
                    entries.push((k, v));
                }
                Ok(OrderedMap { entries, duplicate })
            }
        }
        deserializer.deserialize_map(V_(std::marker::PhantomData))
    }
}
