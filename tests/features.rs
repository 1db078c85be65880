//! Tests of `bevy_talking_head::features`: agreement with an independent
//! librosa reference (tests/fixtures, made by make_logmel_fixture.py),
//! streaming/whole-buffer parity, causal framing, and feature normalisation.

use std::f64::consts::PI;

use bevy_talking_head::features::{
    FeatureError, FeatureNorm, LogMelStreamer, MelConfig, log_mel, mel_filterbank,
};
use serde_json::Value;

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Deterministic xorshift64* generator.
/// Seeded test randomness (rand's StdRng) with the few helpers the tests use.
struct Rng(rand::rngs::StdRng);
impl Rng {
    fn seeded(seed: u64) -> Self {
        use rand::SeedableRng;
        Self(rand::rngs::StdRng::seed_from_u64(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        use rand::Rng as _;
        self.0.random_range(0..n)
    }
    fn uniform(&mut self) -> f32 {
        use rand::Rng as _;
        self.0.random_range(-1.0..1.0)
    }
}

fn fixture_json() -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURE_DIR}/logmel_expected.json"))
        .expect("tests/fixtures/logmel_expected.json (run make_logmel_fixture.py)");
    serde_json::from_str(&text).unwrap()
}

fn fixture_input() -> Vec<f32> {
    let mut r = hound::WavReader::open(format!("{FIXTURE_DIR}/logmel_input.wav")).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16_000, 1, 16)
    );
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

fn f32_array(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn test_signal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seeded(seed);
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            (0.4 * (2.0 * PI * (200.0 + 3000.0 * t) * t).sin()) as f32 + 0.05 * rng.uniform()
        })
        .collect()
}

#[test]
fn matches_librosa_reference() {
    let fx = fixture_json();
    let cfg: MelConfig = serde_json::from_value(fx["config"].clone()).unwrap();
    assert_eq!(cfg, MelConfig::default());
    let x = fixture_input();
    assert_eq!(x.len() as u64, fx["n_samples"].as_u64().unwrap());
    let expected = f32_array(&fx["logmel"]);
    let got = log_mel(&cfg, &x).unwrap();
    assert_eq!(
        got.len(),
        expected.len(),
        "frame count differs from librosa"
    );
    assert_eq!(got.len(), fx["n_frames"].as_u64().unwrap() as usize * 80);
    let (mut max_err, mut at) = (0.0f32, 0);
    for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
        let e = (a - b).abs();
        if e > max_err {
            max_err = e;
            at = i;
        }
    }
    println!(
        "max |rust - librosa| = {max_err:.3e} log10 units (frame {}, band {}), librosa {}",
        at / 80,
        at % 80,
        fx["librosa_version"]
    );
    assert!(
        max_err <= 1e-3,
        "max error {max_err} at frame {} band {}",
        at / 80,
        at % 80
    );

    // The streaming front-end, fed in 10 ms blocks, gives the same frames.
    let mut s = LogMelStreamer::new(cfg).unwrap();
    let mut streamed = Vec::new();
    for block in x.chunks(160) {
        s.push(block, &mut streamed);
    }
    let stream_err = streamed
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(stream_err <= 1e-3, "{stream_err}");
}

#[test]
fn filterbank_matches_librosa() {
    let fx = fixture_json();
    let n_freqs = fx["n_freqs"].as_u64().unwrap() as usize;
    let cfg = MelConfig::default();
    assert_eq!(n_freqs, cfg.n_freqs());
    let fb = mel_filterbank(&cfg).unwrap();
    assert_eq!(fb.len(), 80 * n_freqs);
    let mut reference = vec![0.0f32; 80 * n_freqs];
    for (m, row) in fx["filterbank"].as_array().unwrap().iter().enumerate() {
        let start = row["start"].as_u64().unwrap() as usize;
        for (k, w) in f32_array(&row["weights"]).into_iter().enumerate() {
            reference[m * n_freqs + start + k] = w;
        }
    }
    let peak = reference.iter().fold(0.0f32, |a, &b| a.max(b));
    let max_err = fb
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("filterbank max |rust - librosa| = {max_err:.3e} (peak weight {peak:.4e})");
    assert!(max_err <= 1e-6 * peak, "{max_err}");
    // Same sparsity pattern (no filter leaks into bins librosa leaves at 0).
    for (i, (a, b)) in fb.iter().zip(&reference).enumerate() {
        assert_eq!(*a == 0.0, *b == 0.0, "bin {i}: {a} vs {b}");
    }
}

#[test]
fn streaming_equals_whole_buffer_for_random_chunkings() {
    let cfg = MelConfig::default();
    let x = test_signal(16_000 + 97, 11);
    let whole = log_mel(&cfg, &x).unwrap();
    assert_eq!(whole.len(), (x.len() / 160) * 80);
    let mut rng = Rng::seeded(5);
    let mut chunkings: Vec<Vec<usize>> =
        vec![vec![1], vec![159], vec![160], vec![161], vec![x.len()]];
    for _ in 0..6 {
        chunkings.push((0..40).map(|_| 1 + rng.below(900)).collect());
    }
    for chunks in chunkings {
        let mut s = LogMelStreamer::new(cfg.clone()).unwrap();
        let mut out = Vec::new();
        let (mut pos, mut i, mut frames) = (0, 0, 0);
        while pos < x.len() {
            let n = chunks[i % chunks.len()].min(x.len() - pos);
            frames += s.push(&x[pos..pos + n], &mut out);
            pos += n;
            i += 1;
        }
        assert_eq!(frames, x.len() / 160);
        assert_eq!(s.frames_emitted(), frames as u64);
        assert_eq!(out.len(), whole.len());
        let err = out
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err <= 1e-5,
            "chunking {:?}: {err}",
            &chunks[..chunks.len().min(3)]
        );
    }
}

#[test]
fn frame_is_emitted_when_its_last_sample_arrives() {
    let cfg = MelConfig::default();
    let x = test_signal(1_000, 3);
    let mut s = LogMelStreamer::new(cfg).unwrap();
    let mut out = Vec::new();
    for (i, &v) in x.iter().enumerate() {
        let n = s.push(&[v], &mut out);
        let expect = usize::from((i + 1) % 160 == 0);
        assert_eq!(n, expect, "after sample {i}");
    }
    assert_eq!(s.frames_emitted(), 6);
}

#[test]
fn framing_is_causal_and_left_padded() {
    let cfg = MelConfig::default();
    let x = test_signal(3_200, 4);
    let base = log_mel(&cfg, &x).unwrap();
    // Changing samples from index 1600 on must not alter frames 0..10
    // (frame j ends at sample (j + 1) * 160 - 1).
    let mut y = x.clone();
    for v in &mut y[1_600..] {
        *v = -*v * 0.3;
    }
    let changed = log_mel(&cfg, &y).unwrap();
    assert_eq!(base[..10 * 80], changed[..10 * 80]);
    assert_ne!(base[10 * 80..11 * 80], changed[10 * 80..11 * 80]);
    // Frame 0 sees 240 zeros then x[0..160]: identical to framing the
    // explicitly padded signal with no padding of its own.
    let padded: Vec<f32> = std::iter::repeat_n(0.0, 240)
        .chain(x[..160].iter().copied())
        .collect();
    let nopad = MelConfig {
        hop_length: 400,
        ..MelConfig::default()
    };
    let frame0 = log_mel(&nopad, &padded).unwrap();
    assert_eq!(frame0.len(), 80);
    for (a, b) in frame0.iter().zip(&base[..80]) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn frame_counts() {
    let cfg = MelConfig::default();
    for (len, frames) in [
        (0usize, 0usize),
        (1, 0),
        (159, 0),
        (160, 1),
        (319, 1),
        (320, 2),
        (16_000, 100),
    ] {
        let out = log_mel(&cfg, &vec![0.1; len]).unwrap();
        assert_eq!(out.len(), frames * 80, "len {len}");
        assert_eq!(cfg.frames_for(len), frames);
    }
}

#[test]
fn silence_is_log_floor_and_nonfinite_input_is_safe() {
    let cfg = MelConfig::default();
    let out = log_mel(&cfg, &[0.0; 800]).unwrap();
    assert!(out.iter().all(|&v| v == -10.0));
    let mut x = test_signal(800, 9);
    x[100] = f32::NAN;
    x[500] = f32::INFINITY;
    let out = log_mel(&cfg, &x).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn reset_restarts_the_stream() {
    let cfg = MelConfig::default();
    let x = test_signal(2_000, 8);
    let mut s = LogMelStreamer::new(cfg.clone()).unwrap();
    let mut a = Vec::new();
    s.push(&x, &mut a);
    s.push(&x[..77], &mut Vec::new());
    s.reset();
    assert_eq!(s.frames_emitted(), 0);
    let mut b = Vec::new();
    s.push(&x, &mut b);
    assert_eq!(a, b);
    assert_eq!(a, log_mel(&cfg, &x).unwrap());
}

/// Naive DFT reference for a configuration with `n_fft > win_length`.
#[test]
fn zero_padded_fft_matches_naive_dft() {
    let cfg = MelConfig {
        n_fft: 512,
        win_length: 320,
        hop_length: 160,
        n_mels: 40,
        f_min: 50.0,
        f_max: 7600.0,
        ..MelConfig::default()
    };
    let x = test_signal(1_600, 21);
    let got = log_mel(&cfg, &x).unwrap();
    assert_eq!(got.len(), 10 * 40);
    let fb = mel_filterbank(&cfg).unwrap();
    let n_freqs = cfg.n_freqs();
    let pad = cfg.win_length - cfg.hop_length;
    let padded: Vec<f64> = std::iter::repeat_n(0.0, pad)
        .chain(x.iter().map(|&v| f64::from(v)))
        .collect();
    for j in 0..10 {
        let seg = &padded[j * 160..j * 160 + cfg.win_length];
        let power: Vec<f64> = (0..n_freqs)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &v) in seg.iter().enumerate() {
                    let w = 0.5 - 0.5 * (2.0 * PI * n as f64 / cfg.win_length as f64).cos();
                    let ph = -2.0 * PI * (k * n) as f64 / cfg.n_fft as f64;
                    re += v * w * ph.cos();
                    im += v * w * ph.sin();
                }
                re * re + im * im
            })
            .collect();
        for m in 0..40 {
            let mel: f64 = (0..n_freqs)
                .map(|k| f64::from(fb[m * n_freqs + k]) * power[k])
                .sum();
            let want = mel.max(1e-10).log10() as f32;
            let have = got[j * 40 + m];
            assert!(
                (want - have).abs() < 1e-3,
                "frame {j} band {m}: {have} vs {want}"
            );
        }
    }
}

#[test]
fn config_validation_and_serde() {
    let ok = MelConfig::default();
    ok.validate().unwrap();
    let cases: Vec<(MelConfig, &str)> = vec![
        (
            MelConfig {
                sample_rate: 0,
                ..ok.clone()
            },
            "sample_rate",
        ),
        (
            MelConfig {
                n_fft: 0,
                ..ok.clone()
            },
            "n_fft",
        ),
        (
            MelConfig {
                win_length: 401,
                ..ok.clone()
            },
            "win_length",
        ),
        (
            MelConfig {
                hop_length: 0,
                ..ok.clone()
            },
            "hop_length",
        ),
        (
            MelConfig {
                hop_length: 500,
                ..ok.clone()
            },
            "hop_length",
        ),
        (
            MelConfig {
                n_mels: 0,
                ..ok.clone()
            },
            "n_mels",
        ),
        (
            MelConfig {
                f_min: -1.0,
                ..ok.clone()
            },
            "f_min",
        ),
        (
            MelConfig {
                f_min: f32::NAN,
                ..ok.clone()
            },
            "f_min",
        ),
        (
            MelConfig {
                f_max: 9000.0,
                ..ok.clone()
            },
            "f_max",
        ),
        (
            MelConfig {
                f_min: 500.0,
                f_max: 400.0,
                ..ok.clone()
            },
            "f_max",
        ),
    ];
    for (cfg, field) in cases {
        let err = cfg.validate().unwrap_err();
        assert!(
            matches!(err, FeatureError::InvalidConfig { field: f, .. } if f == field),
            "{cfg:?}: {err:?}"
        );
        assert!(err.to_string().contains(field));
        assert!(LogMelStreamer::new(cfg.clone()).is_err());
        assert!(log_mel(&cfg, &[0.0; 400]).is_err());
        assert!(mel_filterbank(&cfg).is_err());
    }
    let json = serde_json::to_string(&ok).unwrap();
    assert_eq!(serde_json::from_str::<MelConfig>(&json).unwrap(), ok);
    // Missing fields take their defaults.
    let partial: MelConfig = serde_json::from_str(r#"{"n_mels": 64}"#).unwrap();
    assert_eq!(
        partial,
        MelConfig {
            n_mels: 64,
            ..MelConfig::default()
        }
    );
}

#[test]
fn feature_norm() {
    let n = 3;
    let frames = [1.0f32, 10.0, 5.0, 3.0, 10.0, 5.0, 5.0, 10.0, f32::NAN, 99.0];
    let norm = FeatureNorm::from_frames(&frames, n);
    assert_eq!(norm.mean, vec![3.0, 10.0, 5.0]);
    let sd0 = (8.0f32 / 3.0).sqrt();
    assert!((norm.std[0] - sd0).abs() < 1e-6);
    assert_eq!(norm.std[1], 1e-3, "constant band is floored");
    assert_eq!(norm.std[2], 1e-3);
    norm.validate(n).unwrap();

    let mut x = vec![3.0f32 + sd0, 10.0, 5.0, 7.0];
    norm.apply(&mut x);
    assert!((x[0] - 1.0).abs() < 1e-6);
    assert_eq!(x[1], 0.0);
    assert_eq!(x[3], 7.0, "trailing partial frame untouched");

    let id = FeatureNorm::identity(4);
    let mut y = vec![1.5, -2.0, 3.0, 0.25];
    id.apply(&mut y);
    assert_eq!(y, vec![1.5, -2.0, 3.0, 0.25]);
    assert_eq!(FeatureNorm::from_frames(&[], 4), FeatureNorm::identity(4));

    assert!(matches!(
        id.validate(80),
        Err(FeatureError::NormShape {
            n_mels: 80,
            mean_len: 4,
            std_len: 4
        })
    ));
    let bad = FeatureNorm {
        mean: vec![0.0, 0.0],
        std: vec![1.0, 0.0],
    };
    assert!(matches!(
        bad.validate(2),
        Err(FeatureError::InvalidNorm { band: 1, .. })
    ));
    let bad = FeatureNorm {
        mean: vec![f32::NAN],
        std: vec![1.0],
    };
    assert!(matches!(
        bad.validate(1),
        Err(FeatureError::InvalidNorm { band: 0, .. })
    ));

    let json = serde_json::to_string(&norm).unwrap();
    assert_eq!(serde_json::from_str::<FeatureNorm>(&json).unwrap(), norm);

    // Normalising real features with their own statistics gives ~zero mean, unit std.
    let feats = log_mel(&MelConfig::default(), &test_signal(16_000, 2)).unwrap();
    let norm = FeatureNorm::from_frames(&feats, 80);
    let mut z = feats.clone();
    norm.apply(&mut z);
    let renorm = FeatureNorm::from_frames(&z, 80);
    assert!(renorm.mean.iter().all(|m| m.abs() < 1e-4));
    assert!(renorm.std.iter().all(|s| (s - 1.0).abs() < 1e-3));
}
