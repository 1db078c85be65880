//! Streaming == batch parity of every stateful layer, and batching parity.

use super::*;
use candle_core::D;

fn small_config() -> ModelConfig {
    ModelConfig {
        d_model: 32,
        n_heads: 4,
        kv_heads: None, // multi-head; grouped-query has its own test
        n_layers: 2,
        d_ff: 64,
        context_frames: 12,
        history_frames: 4,
        denoiser_hidden: 48,
        ..ModelConfig::default()
    }
}

fn random_input(b: usize, t: usize, dim: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..b * t * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(v, (b, t, dim), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Steps the streaming encoder frame by frame over `x: [1, T, in]`.
fn step_all(model: &TalkingHeadModel, x: &Tensor) -> Tensor {
    let (_, t, dim) = x.dims3().unwrap();
    let d = model.config.d_model;
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let mut st = vec![model.fast_encoder.new_state()];
    let mut sc = StepScratch::default();
    let mut outs = Vec::with_capacity(t * d);
    for i in 0..t {
        sized(&mut sc.feats, dim).copy_from_slice(&xs[i * dim..(i + 1) * dim]);
        model
            .fast_encoder
            .step(&mut st, &[0], |s: &mut EncoderState| s, &mut sc);
        outs.extend_from_slice(&sc.h[..d]);
    }
    Tensor::from_vec(outs, (1, t, d), &Device::Cpu).unwrap()
}

#[test]
fn encoder_step_matches_forward_past_the_window() {
    // 40 frames through a 12-frame window: the rotating cache wraps 3 times.
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 1).unwrap();
    let x = random_input(1, 40, cfg.input_dim(), 2);
    let batch = model.encode(&x).unwrap();
    let streamed = step_all(&model, &x);
    let err = max_abs_diff(&batch, &streamed);
    assert!(err <= 1e-4, "max |step - forward| = {err}");
}

#[test]
fn encoder_step_matches_forward_default_size() {
    let cfg = ModelConfig::default();
    let model = TalkingHeadModel::random(cfg.clone(), 3).unwrap();
    let x = random_input(1, cfg.context_frames + 30, cfg.input_dim(), 4);
    let err = max_abs_diff(&model.encode(&x).unwrap(), &step_all(&model, &x));
    assert!(err <= 1e-4, "max |step - forward| = {err}");
}

#[test]
fn grouped_query_encoder_step_matches_forward() {
    // Grouped-query (2 key/value heads for 4 query heads) and multi-query
    // (1) attention: the rotating cache holds kv_heads heads and the step
    // still matches the batch network past the window.
    for kv in [2usize, 1] {
        let cfg = ModelConfig {
            kv_heads: Some(kv),
            ..small_config()
        };
        let model = TalkingHeadModel::random(cfg.clone(), 5).unwrap();
        let x = random_input(1, 40, cfg.input_dim(), 6);
        let err = max_abs_diff(&model.encode(&x).unwrap(), &step_all(&model, &x));
        assert!(err <= 1e-4, "kv_heads {kv}: max |step - forward| = {err}");
        let mha_cfg = ModelConfig {
            kv_heads: None,
            ..small_config()
        };
        let mha = TalkingHeadModel::random(mha_cfg, 5).unwrap();
        let bytes = |m: &TalkingHeadModel| m.fast_encoder.new_state().bytes();
        assert_eq!(
            bytes(&mha) - bytes(&model),
            (cfg.n_heads - kv)
                * 2
                * cfg.n_layers
                * cfg.context_frames
                * (cfg.d_model / cfg.n_heads)
                * 4,
            "the KV cache shrinks with kv_heads"
        );
    }
    let bad = ModelConfig {
        kv_heads: Some(3),
        ..small_config()
    };
    assert!(bad.validate().is_err(), "kv_heads must divide n_heads");
}

#[test]
fn batched_sessions_match_single_sessions() {
    // Three sessions at different stream positions (one past the window)
    // stepped as one batch give what each gives alone.
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 7).unwrap();
    let (dim, d) = (cfg.input_dim(), cfg.d_model);
    let lens = [5usize, 17, 30];
    let xs: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            random_input(1, l + 1, dim, 10 + i as u64)
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect();
    let enc = &model.fast_encoder;
    let mut solo: Vec<EncoderState> = (0..3).map(|_| enc.new_state()).collect();
    let mut sc = StepScratch::default();
    fn acc(s: &mut EncoderState) -> &mut EncoderState {
        s
    }
    for i in 0..3 {
        for f in 0..lens[i] {
            sized(&mut sc.feats, dim).copy_from_slice(&xs[i][f * dim..(f + 1) * dim]);
            enc.step(&mut solo, &[i], acc, &mut sc);
        }
    }
    let mut grouped = solo.clone();
    let mut singles = Vec::new();
    for i in 0..3 {
        let l = lens[i];
        sized(&mut sc.feats, dim).copy_from_slice(&xs[i][l * dim..(l + 1) * dim]);
        enc.step(&mut solo, &[i], acc, &mut sc);
        singles.push(sc.h[..d].to_vec());
    }
    // Batch in a shuffled order.
    let order = [2usize, 0, 1];
    let feats = sized(&mut sc.feats, 3 * dim);
    for (k, &i) in order.iter().enumerate() {
        let l = lens[i];
        feats[k * dim..(k + 1) * dim].copy_from_slice(&xs[i][l * dim..(l + 1) * dim]);
    }
    enc.step(&mut grouped, &order, acc, &mut sc);
    for (k, &i) in order.iter().enumerate() {
        let err = sc.h[k * d..(k + 1) * d]
            .iter()
            .zip(&singles[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= 1e-5, "session {i}: {err}");
    }
}

#[test]
fn fast_student_matches_candle_student() {
    for cfg in [small_config(), ModelConfig::default()] {
        let model = TalkingHeadModel::random(cfg.clone(), 8).unwrap();
        let net = model.student.as_ref().unwrap();
        let fast = model.fast_student.as_ref().unwrap();
        let n = 5;
        let h = random_input(1, n, cfg.d_model, 1).squeeze(0).unwrap();
        let hist = random_input(1, n, cfg.history_frames * 52, 2)
            .squeeze(0)
            .unwrap();
        let mut emotions = vec![NEUTRAL_EMOTION; n];
        emotions[1] = [0.2, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0];
        let emo = emotion_input(&emotions, false, &Device::Cpu).unwrap();
        let styles = vec![1usize, 0, 1, 0, 1];
        let style = style_input(&styles, &Device::Cpu).unwrap();
        let noise = random_input(1, n, 52, 3).squeeze(0).unwrap();
        let cond = net.condition(&h, &hist, &emo, &style).unwrap();
        let want = net.sample_one_step(&noise, &cond).unwrap();
        let mut sc = StepScratch::default();
        let rows = Tensor::cat(&[&h, &hist, &emo], 1).unwrap();
        sc.cond_in = rows.flatten_all().unwrap().to_vec1().unwrap();
        sc.noise = noise.flatten_all().unwrap().to_vec1().unwrap();
        sc.styles = styles.clone();
        fast.sample(n, &mut sc);
        let got = Tensor::from_vec(sc.y.clone(), (n, 52), &Device::Cpu).unwrap();
        let err = max_abs_diff(&want, &got);
        assert!(err <= 1e-4, "d_model {}: {err}", cfg.d_model);
    }
}

#[test]
fn denoiser_fused_matches_differentiable() {
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 8).unwrap();
    let net = model.student.as_ref().unwrap();
    let n = 6;
    let h = random_input(1, n, cfg.d_model, 1).squeeze(0).unwrap();
    let hist = random_input(1, n, cfg.history_frames * 52, 2)
        .squeeze(0)
        .unwrap();
    let emo = emotion_input(&vec![NEUTRAL_EMOTION; n], false, &Device::Cpu).unwrap();
    let style = style_input(&vec![1; n], &Device::Cpu).unwrap();
    let cond = net.condition(&h, &hist, &emo, &style).unwrap();
    let x = random_input(1, n, 52, 3).squeeze(0).unwrap();
    let t = vec![0.3f32; n];
    let a = net.predict(&x, &t, &cond, true).unwrap();
    let b = net.predict(&x, &t, &cond, false).unwrap();
    assert!(max_abs_diff(&a, &b) <= 1e-4);
    assert_eq!(a.dims(), &[n, 52]);
    let _ = a.sum(D::Minus1).unwrap();
}

#[test]
fn step_outputs_weights_in_range_after_lookahead() {
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 9).unwrap();
    let mut st = model.new_state(1).unwrap();
    let feats = vec![-3.0f32; cfg.input_dim()];
    for i in 0..10 {
        let out = model
            .step(
                &mut [&mut st],
                &[FrameInput {
                    log_mel: &feats,
                    rms_dbfs: -20.0,
                }],
                Sampler::Student,
            )
            .unwrap();
        if i < cfg.lookahead_frames {
            assert!(out[0].is_none());
        } else {
            let f = out[0].as_ref().unwrap();
            assert_eq!(f.index, (i - cfg.lookahead_frames) as u64);
            assert!(f.weights.iter().all(|w| (0.0..=1.0).contains(w)));
        }
    }
    // The teacher path works too, with guidance.
    let out = model
        .step(
            &mut [&mut st],
            &[FrameInput {
                log_mel: &feats,
                rms_dbfs: -20.0,
            }],
            Sampler::Teacher {
                steps: 4,
                guidance: 2.0,
            },
        )
        .unwrap();
    assert!(out[0].is_some());
}

#[test]
fn silence_gate_closes_the_mouth() {
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 11).unwrap();
    let mut st = model.new_state(1).unwrap();
    let feats = vec![-10.0f32; cfg.input_dim()];
    for _ in 0..8 {
        let out = model
            .step(
                &mut [&mut st],
                &[FrameInput {
                    log_mel: &feats,
                    rms_dbfs: f32::NEG_INFINITY,
                }],
                Sampler::Student,
            )
            .unwrap();
        if let Some(f) = &out[0] {
            assert!(
                crate::rig::MOUTH_CHANNELS
                    .iter()
                    .all(|&c| f.weights[c] == 0.0)
            );
        }
    }
}

/// Under the silence gate an emotion keeps its face: the lower face is the
/// emotion's rest face (the smile of happy, the frown of sad), not a blank
/// mouth, and the upper face is left to the model.
#[test]
fn silence_gate_keeps_the_emotion_rest_face() {
    use crate::rig::Blendshape;
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 11).unwrap();
    let feats = vec![-10.0f32; cfg.input_dim()];
    for (k, ch) in [
        (1, Blendshape::MouthSmileLeft),
        (2, Blendshape::MouthFrownRight),
    ] {
        let mut st = model.new_state(1).unwrap();
        st.emotion = [0.0; EMOTION_COUNT];
        st.emotion[k] = 0.8;
        let rest = crate::model::emotion_rest_face(&st.emotion);
        let mut seen = 0;
        for _ in 0..8 {
            let out = model
                .step(
                    &mut [&mut st],
                    &[FrameInput {
                        log_mel: &feats,
                        rms_dbfs: -90.0,
                    }],
                    Sampler::Student,
                )
                .unwrap();
            if let Some(f) = &out[0] {
                seen += 1;
                for &c in crate::rig::MOUTH_CHANNELS.iter() {
                    assert_eq!(f.weights[c], rest[c], "channel {c}");
                }
                assert!(
                    (f.weights[ch.index()] - 0.8 * if k == 1 { 0.6 } else { 0.5 }).abs() < 1e-6
                );
                assert_eq!(f.weights[Blendshape::JawOpen.index()], 0.0);
            }
        }
        assert!(seen > 0);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 12).unwrap();
    let mut st = model.new_state(1).unwrap();
    let short = vec![0.0f32; 3];
    assert!(matches!(
        model.step(
            &mut [&mut st],
            &[FrameInput {
                log_mel: &short,
                rms_dbfs: 0.0
            }],
            Sampler::Student
        ),
        Err(ModelError::BadInput(_))
    ));
    st.style = 99;
    let ok = vec![0.0f32; cfg.input_dim()];
    assert!(matches!(
        model.step(
            &mut [&mut st],
            &[FrameInput {
                log_mel: &ok,
                rms_dbfs: 0.0
            }],
            Sampler::Student
        ),
        Err(ModelError::UnknownStyle { .. })
    ));
    assert!(parse_emotion("happy=2").is_err());
    assert!(parse_emotion("joy=0.5").is_err());
    let twice = parse_emotion("happy=0.5,Happy=0.7")
        .unwrap_err()
        .to_string();
    assert!(twice.contains("given twice"), "{twice}");
    assert_eq!(parse_emotion("").unwrap(), NEUTRAL_EMOTION);
    assert_eq!(parse_emotion("happy=0.8").unwrap()[1], 0.8);
}

#[test]
fn same_seed_same_weights() {
    let a = TalkingHeadModel::init_tensors(&small_config(), 42).unwrap();
    let b = TalkingHeadModel::init_tensors(&small_config(), 42).unwrap();
    for (k, t) in &a {
        assert_eq!(max_abs_diff(t, &b[k]), 0.0, "{k}");
    }
}

#[test]
fn emotion_spellings_share_one_conditioning() {
    let mut a = [0f32; EMOTION_COUNT];
    a[1] = 0.5;
    let mut b = a;
    b[0] = 1.0;
    let mut c = a;
    c[0] = 0.5;
    assert_eq!(canonical_emotion(a), canonical_emotion(b));
    assert_eq!(canonical_emotion(a), canonical_emotion(c));
    assert_eq!(canonical_emotion(a)[0], 0.5);
    let mut d = [f32::NAN; EMOTION_COUNT];
    d[2] = 7.0;
    let d = canonical_emotion(d);
    assert_eq!(d[2], 1.0);
    assert_eq!(d[0], 0.0);
    assert!(d.iter().all(|v| v.is_finite()));
    assert_eq!(canonical_emotion(NEUTRAL_EMOTION), NEUTRAL_EMOTION);
}

#[cfg(feature = "embedded-model")]
#[test]
fn the_embedded_default_model_loads_and_is_the_shipped_file() {
    let shipped = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEFAULT_MODEL_PATH),
    )
    .unwrap();
    assert_eq!(EMBEDDED_MODEL, shipped.as_slice());
    let m = TalkingHeadModel::load_from_bytes(EMBEDDED_MODEL, "<embedded>".as_ref()).unwrap();
    assert!(m.has_student());
    assert!(m.provenance().trained);
}

#[test]
fn f16_checkpoint_streams_like_its_batch_network() {
    // A model saved with f16 weight matrices loads back to exactly those
    // values; its streaming step (f16 kernels at small batches, f32 GEMM at
    // large ones) matches the batch network, and a batch past F16_MAX_ROWS
    // matches the same session stepped alone.
    let cfg = ModelConfig {
        kv_heads: Some(2),
        ..ModelConfig::default()
    };
    let model = TalkingHeadModel::random(cfg.clone(), 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (p32, p16) = (
        dir.path().join("m32.safetensors"),
        dir.path().join("m16.safetensors"),
    );
    model.save(&p32).unwrap();
    model.save_f16(&p16).unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64;
    assert!(
        size(&p16) < 0.55 * size(&p32),
        "{} vs {}",
        size(&p16),
        size(&p32)
    );
    let m16 = TalkingHeadModel::load(&p16).unwrap();
    assert!(m16.fast_encoder.layers[0].qkv.has_f16());
    let t = 40;
    let x = random_input(1, t, cfg.input_dim(), 12);
    let streamed = step_all(&m16, &x);
    let err = max_abs_diff(&m16.encode(&x).unwrap(), &streamed);
    assert!(err <= 1e-4, "max |step - forward| = {err}");
    // Six copies of the stream as one batch (f32 GEMM) vs alone (f16).
    let (dim, d, n) = (cfg.input_dim(), cfg.d_model, fast::F16_MAX_ROWS + 2);
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let enc = &m16.fast_encoder;
    let mut states: Vec<EncoderState> = (0..n).map(|_| enc.new_state()).collect();
    let mut sc = StepScratch::default();
    let due: Vec<usize> = (0..n).collect();
    let alone: Vec<f32> = streamed.flatten_all().unwrap().to_vec1().unwrap();
    let mut worst = 0f32;
    for f in 0..t {
        let feats = sized(&mut sc.feats, n * dim);
        for k in 0..n {
            feats[k * dim..(k + 1) * dim].copy_from_slice(&xs[f * dim..(f + 1) * dim]);
        }
        enc.step(&mut states, &due, |s: &mut EncoderState| s, &mut sc);
        for k in 0..n {
            for (a, b) in sc.h[k * d..(k + 1) * d]
                .iter()
                .zip(&alone[f * d..(f + 1) * d])
            {
                worst = worst.max((a - b).abs());
            }
        }
    }
    assert!(worst <= 1e-5, "batch of {n} vs alone: {worst}");
}

/// A checkpoint config with a silence gate that is not a finite level at or
/// below 0 dBFS, or a motion std that would blow the history up, is refused.
#[test]
fn hostile_gate_and_norms_are_refused() {
    for g in [f32::INFINITY, f32::NAN, 10.0] {
        let cfg = ModelConfig {
            silence_gate_dbfs: Some(g),
            ..small_config()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("silence_gate_dbfs"), "{e}");
    }
    for g in [None, Some(-70.0), Some(0.0)] {
        let cfg = ModelConfig {
            silence_gate_dbfs: g,
            ..small_config()
        };
        cfg.validate().unwrap();
    }
    let mut m = MotionNorm::default();
    m.std[3] = 1e-30;
    assert!(m.validate().unwrap_err().contains("std >="));
    let mut f = crate::features::FeatureNorm::identity(8);
    f.std[2] = 1e-38;
    assert!(f.validate(8).is_err());
}

/// Writing refuses what loading would refuse: a NaN tensor, or (in f16) a
/// weight past f16's range, so `convert` and `average` cannot produce a
/// file their own loader rejects.
#[test]
fn checkpoints_with_values_that_would_not_load_are_not_written() {
    let cfg = small_config();
    let model = TalkingHeadModel::random(cfg.clone(), 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with = |v: f32| {
        let mut t = model.tensors().clone();
        let (name, x) = t
            .iter()
            .find(|(_, x)| x.rank() == 2)
            .map(|(k, x)| (k.clone(), x.clone()))
            .unwrap();
        let mut vals: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        vals[0] = v;
        t.insert(name, Tensor::from_vec(vals, x.dims(), x.device()).unwrap());
        t
    };
    let nan = dir.path().join("nan.safetensors");
    let e = save_checkpoint(
        &nan,
        &with(f32::NAN),
        model.config(),
        model.feature_norm(),
        model.motion_norm(),
        model.provenance(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("NaN") && e.contains("not written"), "{e}");
    assert!(!nan.exists());
    let big = TalkingHeadModel::from_parts(
        cfg.clone(),
        with(1e6),
        model.feature_norm().clone(),
        model.motion_norm().clone(),
        model.provenance().clone(),
    )
    .unwrap();
    let f16 = dir.path().join("big16.safetensors");
    let e = big.save_f16(&f16).unwrap_err().to_string();
    assert!(e.contains("f16"), "{e}");
    // f32 keeps it, and loads.
    let f32p = dir.path().join("big32.safetensors");
    big.save(&f32p).unwrap();
    TalkingHeadModel::load(&f32p).unwrap();
}
