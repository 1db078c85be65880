//! Bounded fuzzing (proptest) of every parser of untrusted input: mutated
//! checkpoints, Live Link Face CSV, retarget maps, mutated WAV/FLAC/MP3/OGG
//! bytes through the decoder, PCM pushed in random chunks, rates, channel
//! counts and NaN/Inf, and emotion/style inputs.
//!
//! Properties for every case: no panic; the largest single allocation stays
//! under [`ALLOC_BOUND`] (a counting global allocator, per thread); errors
//! name their cause (a non-empty message). CI runs `FUZZ_ITERS` cases per
//! property (default 48); long runs: `FUZZ_ITERS=5000 cargo test --release
//! --test fuzz`.
//!
//! Seeds: `tests/fixtures/fuzz_seeds/` (0.5 s 300 Hz tone, made with
//! `sox -n -r 16000 -c 1 seed.wav synth 0.5 sine 300 vol 0.5` and converted
//! with sox to FLAC, MP3 and OGG Vorbis), the shipped checkpoint and
//! retarget maps, and a real Live Link Face capture.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use bevy_talking_head::audio::{AudioConditioner, AudioFormat, read_audio_file};
use bevy_talking_head::model::{
    EMOTION_COUNT, ModelConfig, Sampler, TalkingHeadModel, canonical_emotion, parse_emotion,
};
use bevy_talking_head::rig::{LiveLinkFaceTake, RetargetMap};
use bevy_talking_head::runtime::{Pcm, Session, step_batch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Largest single allocation any case may make: 256 MiB.
const ALLOC_BOUND: usize = 256 << 20;

struct Counting;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.size())));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        unsafe { System.dealloc(ptr, l) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(new)));
        unsafe { System.realloc(ptr, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the largest single allocation it made.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    let r = f();
    (r, PEAK.with(|p| p.get()))
}

fn iters() -> u32 {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

/// A deterministic runner (the same cases on every run; `FUZZ_SEED` picks
/// another sequence for long runs).
fn runner() -> TestRunner {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases: iters(),
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ),
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Byte-level mutations of a seed: flips, overwrites with boundary values,
/// a truncation, an insertion.
fn mutate(seed: &[u8]) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seed = seed.to_vec();
    let n = seed.len().max(1);
    (
        prop::collection::vec((0..n, any::<u8>()), 0..24),
        prop::option::of(0..n),
        prop::option::of((0..n, prop::collection::vec(any::<u8>(), 1..64))),
        prop::collection::vec(
            (
                0..n.min(64),
                prop::sample::select(vec![0u8, 0x7f, 0x80, 0xff]),
            ),
            0..4,
        ),
    )
        .prop_map(move |(flips, cut, insert, header)| {
            let mut v = seed.clone();
            for (i, b) in flips {
                if i < v.len() {
                    v[i] ^= b;
                }
            }
            // Header bytes are where sizes and counts live.
            for (i, b) in header {
                if i < v.len() {
                    v[i] = b;
                }
            }
            if let Some((i, bytes)) = insert {
                let i = i.min(v.len());
                v.splice(i..i, bytes);
            }
            if let Some(c) = cut {
                v.truncate(c);
            }
            v
        })
}

#[test]
fn mutated_checkpoints_load_or_fail_cleanly() {
    let path = root().join("assets/models/default.safetensors");
    let seed = std::fs::read(&path).unwrap();
    let mut r = runner();
    let errors = Cell::new(0usize);
    r.run(&mutate(&seed), |bytes| {
        let (res, peak) =
            peak_of(|| TalkingHeadModel::load_from_bytes(&bytes, Path::new("fuzz.safetensors")));
        prop_assert!(peak < ALLOC_BOUND, "allocation of {peak} bytes");
        if let Err(e) = res {
            prop_assert!(!e.to_string().is_empty());
            errors.set(errors.get() + 1);
        }
        Ok(())
    })
    .unwrap();
    println!(
        "checkpoint byte mutations: {} cases, {} refused",
        iters(),
        errors.get()
    );
}

/// The shipped checkpoint with its metadata config fields set to hostile
/// values: always a named `ModelError`, never an abort or a huge allocation.
#[test]
fn hostile_configs_are_refused_before_allocating() {
    let path = root().join("assets/models/default.safetensors");
    let model = TalkingHeadModel::load(&path).unwrap();
    let base = serde_json::to_value(model.config()).unwrap();
    let fields = [
        "context_frames",
        "history_frames",
        "d_model",
        "n_layers",
        "n_heads",
        "kv_heads",
        "d_ff",
        "conv_kernel",
        "lookahead_frames",
        "denoiser_hidden",
        "denoiser_blocks",
        "time_embed_dim",
        "fps",
    ];
    let values: [u64; 6] = [0, 3, 1_000_000, 10_000_000, 1_000_000_000, u32::MAX as u64];
    let dir = tempfile::tempdir().unwrap();
    for f in fields {
        for v in values {
            let mut c = base.clone();
            c[f] = serde_json::json!(v);
            let Ok(cfg) = serde_json::from_value::<ModelConfig>(c) else {
                continue;
            };
            let p = dir.path().join("m.safetensors");
            bevy_talking_head::model::save_checkpoint(
                &p,
                model.tensors(),
                &cfg,
                model.feature_norm(),
                model.motion_norm(),
                model.provenance(),
            )
            .unwrap();
            let (res, peak) = peak_of(|| TalkingHeadModel::load(&p));
            assert!(peak < ALLOC_BOUND, "{f} = {v}: allocation of {peak} bytes");
            // Small values may be a valid (if odd) model; huge ones never are.
            if v < 1_000_000 {
                if let Err(e) = res {
                    assert!(!e.to_string().is_empty());
                }
                continue;
            }
            let e = res
                .err()
                .unwrap_or_else(|| panic!("{f} = {v} was accepted"));
            let msg = e.to_string();
            assert!(
                msg.contains("config") || msg.contains(f) || msg.contains("shape"),
                "{f} = {v}: unhelpful error {msg}"
            );
        }
    }
    // A header that claims to be huge.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&(64u64 << 20).to_le_bytes());
    let e = TalkingHeadModel::load_from_bytes(&bytes, Path::new("big-header.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("header"), "{e}");
}

#[test]
fn live_link_face_csv_reader_never_panics() {
    let seed = std::fs::read(
        root().join("../shared/data/capture/livelinkface/MySlate_3_Jason_Millers_iPhone.csv"),
    )
    .unwrap_or_else(|_| {
        let mut w = Vec::new();
        LiveLinkFaceTake::from_weights(&[[0.5f32; 52]; 30], 30.0, 0.0)
            .unwrap()
            .write(&mut w)
            .unwrap();
        w
    });
    // Keep the seed small so cases are quick.
    let seed: Vec<u8> = seed.into_iter().take(40_000).collect();
    let mut r = runner();
    let ok = Cell::new(0usize);
    r.run(&mutate(&seed), |bytes| {
        let (res, peak) = peak_of(|| LiveLinkFaceTake::read(bytes.as_slice()));
        prop_assert!(peak < ALLOC_BOUND);
        match res {
            Ok(t) => {
                ok.set(ok.get() + 1);
                for f in &t.frames {
                    prop_assert!(f.blendshapes.iter().all(|v| v.is_finite()));
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    })
    .unwrap();
    println!("Live Link Face CSV: {} cases, {} parsed", iters(), ok.get());
    // Arbitrary text too.
    r.run(&".{0,400}", |s| {
        let _ = LiveLinkFaceTake::read(s.as_bytes());
        Ok(())
    })
    .unwrap();
}

#[test]
fn retarget_maps_parse_or_fail_cleanly() {
    let seed = std::fs::read(root().join("assets/retarget/facegood_to_arkit.json")).unwrap();
    let mut r = runner();
    r.run(&mutate(&seed), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let (res, peak) = peak_of(|| RetargetMap::from_json_str(&text));
        prop_assert!(peak < ALLOC_BOUND);
        if let Ok(map) = res {
            // Compiling against any name list never panics.
            let names = ["jawOpen", "mouth_oh_c", "", "x"];
            let _ = map.compile(&names, &names);
            let _ = map.compile_skipping_missing_targets(&names, &names);
        }
        Ok(())
    })
    .unwrap();
    let oculus =
        std::fs::read(root().join("assets/retarget/arkit_to_oculus_visemes.retarget.json"))
            .unwrap();
    r.run(&mutate(&oculus), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let _ = RetargetMap::from_json_str(&text);
        let _ = RetargetMap::from_oculus_viseme_json(&text);
        Ok(())
    })
    .unwrap();
}

#[test]
fn mutated_audio_files_decode_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["wav", "flac", "mp3", "ogg"] {
        let seed =
            std::fs::read(root().join(format!("tests/fixtures/fuzz_seeds/seed.{ext}"))).unwrap();
        let path = dir.path().join(format!("case.{ext}"));
        let mut r = runner();
        let (decoded, refused) = (Cell::new(0usize), Cell::new(0usize));
        r.run(&mutate(&seed), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            let (res, peak) = peak_of(|| read_audio_file(&path));
            prop_assert!(peak < ALLOC_BOUND, "{ext}: allocation of {peak} bytes");
            match res {
                Ok(a) => {
                    decoded.set(decoded.get() + 1);
                    prop_assert!(a.samples.iter().all(|v| v.is_finite()));
                }
                Err(e) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            let (res, _) = peak_of(|| bevy_talking_head::audio::load_mono_16k(&path));
            if let Ok((s, _)) = res {
                prop_assert!(s.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
            }
            Ok(())
        })
        .unwrap();
        println!(
            "{ext}: {} cases, {} decoded, {} refused",
            iters(),
            decoded.get(),
            refused.get()
        );
    }
}

#[test]
fn pcm_pushes_with_any_rate_chunking_and_values_stay_finite() {
    let values = prop_oneof![
        8 => -1.5f32..1.5,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
    ];
    let case = (
        prop_oneof![
            Just(8_000u32),
            Just(16_000),
            Just(22_050),
            Just(44_100),
            Just(48_000),
            1u32..400_000
        ],
        1u16..9,
        prop::collection::vec(values, 0..6_000),
        prop::collection::vec(1usize..2_000, 1..8),
    );
    let model = TalkingHeadModel::random(ModelConfig::tiny(), 1).unwrap();
    let mut r = runner();
    r.run(&case, |(rate, channels, samples, chunks)| {
        let fmt = AudioFormat {
            sample_rate: rate,
            channels,
        };
        let (res, peak) = peak_of(|| -> Result<(), String> {
            let mut c = match AudioConditioner::new(fmt) {
                Ok(c) => c,
                Err(e) => return Err(e.to_string()),
            };
            let mut out = Vec::new();
            let mut i = 0;
            for &n in chunks.iter().cycle().take(64) {
                if i >= samples.len() {
                    break;
                }
                let j = (i + n).min(samples.len());
                c.push_f32(&samples[i..j], &mut out);
                i = j;
            }
            c.finish(&mut out);
            if out.iter().any(|v| !v.is_finite()) {
                return Err("non-finite output".into());
            }
            let mut s = Session::new(&model, fmt, 0).map_err(|e| e.to_string())?;
            s.push(Pcm::F32(&samples)).map_err(|e| e.to_string())?;
            while s.pending_frames() > 0 {
                for (_, f) in step_batch(&model, &mut [&mut s], Sampler::Student)
                    .map_err(|e| e.to_string())?
                {
                    if f.weights
                        .iter()
                        .any(|v| !v.is_finite() || *v < 0.0 || *v > 1.0)
                    {
                        return Err("weights out of range".into());
                    }
                }
            }
            Ok(())
        });
        prop_assert!(peak < ALLOC_BOUND);
        if let Err(e) = res {
            // Unsupported formats are refused with a reason; nothing else fails.
            prop_assert!(
                !e.contains("non-finite") && !e.contains("out of range"),
                "{rate} Hz x {channels}: {e}"
            );
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn emotion_and_style_inputs_are_sanitised_or_refused() {
    let mut r = runner();
    r.run(&".{0,60}", |spec| {
        match parse_emotion(&spec) {
            Ok(e) => prop_assert!(e.iter().all(|v| (0.0..=1.0).contains(v))),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    })
    .unwrap();
    r.run(&prop::array::uniform7(any::<f32>()), |e| {
        let c = canonical_emotion(e);
        prop_assert!(c.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        Ok(())
    })
    .unwrap();
    // A session with any emotion and any style id: frames stay in range or
    // the step is refused with a reason.
    let model = TalkingHeadModel::random(ModelConfig::tiny(), 2).unwrap();
    r.run(
        &(prop::array::uniform7(any::<f32>()), any::<usize>()),
        |(e, style)| {
            let mut s = Session::new(&model, AudioFormat::MODEL, 0).unwrap();
            s.set_emotion(e);
            s.set_style(style);
            s.push(Pcm::F32(&[0.1f32; 3_200])).unwrap();
            match step_batch(&model, &mut [&mut s], Sampler::Student) {
                Ok(frames) => {
                    for (_, f) in frames {
                        prop_assert!(f.weights.iter().all(|v| (0.0..=1.0).contains(v)));
                    }
                }
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
            Ok(())
        },
    )
    .unwrap();
    let _ = EMOTION_COUNT;
}
