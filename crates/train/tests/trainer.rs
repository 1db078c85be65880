//! The trainer learns a simple audio → jaw mapping on a synthetic corpus,
//! checkpoints are loadable, marked trained, and training resumes.

use std::path::Path;

use talking_head_core::model::{EMOTION_COUNT, ModelConfig, MotionNorm, TalkingHeadModel};
use talking_head_core::rig::{Blendshape, LiveLinkFaceTake};
use talking_head_train::dataset::{feature_norm, load_split, motion_stats};
use talking_head_train::distill::{DistillConfig, Distiller};
use talking_head_train::manifest::{CORPUS_VERSION, ClipMeta, CorpusManifest, Split};
use talking_head_train::trainer::{TrainConfig, Trainer};

/// Writes a corpus whose jawOpen follows a syllable envelope of the audio.
fn synthetic_corpus(dir: &Path, clips: usize) {
    std::fs::create_dir_all(dir.join("clips")).unwrap();
    let mut metas = Vec::new();
    for c in 0..clips {
        let secs = 2.0 + c as f64 * 0.3;
        let n = (16_000.0 * secs) as usize;
        let rate = 2.5 + c as f64 * 0.4; // syllables per second
        let env: Vec<f64> = (0..n)
            .map(|i| {
                ((i as f64 / 16_000.0) * rate * std::f64::consts::PI)
                    .sin()
                    .abs()
            })
            .collect();
        let audio: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let f0 = 110.0 + 15.0 * c as f64;
                let v: f64 = (1..6)
                    .map(|h| (t * 2.0 * std::f64::consts::PI * f0 * h as f64).sin() / h as f64)
                    .sum();
                (0.4 * env[i].powi(2) * v) as f32
            })
            .collect();
        let id = format!("clip{c}");
        talking_head_train::corpus::write_wav(&dir.join("clips").join(format!("{id}.wav")), &audio)
            .unwrap();
        let frames = n.div_ceil(320);
        let labels: Vec<[f32; 52]> = (0..frames)
            .map(|f| {
                let mut x = [0f32; 52];
                let e = env[(f * 320 + 160).min(n - 1)];
                x[Blendshape::JawOpen.index()] = (e * e) as f32 * 0.8;
                x
            })
            .collect();
        LiveLinkFaceTake::from_weights(&labels, 50.0, 0.0)
            .unwrap()
            .write_file(dir.join("clips").join(format!("{id}.csv")))
            .unwrap();
        let mut emotion = [0f32; EMOTION_COUNT];
        emotion[0] = 1.0;
        metas.push(ClipMeta {
            id,
            source: "synthetic".into(),
            speaker: format!("s{c}"),
            language: "en".into(),
            style: "phonetic".into(),
            emotion,
            license: "test".into(),
            duration_secs: secs,
            split: if c == 0 { Split::Val } else { Split::Train },
            labels: "synthetic".into(),
            augmentation: None,
            augmented_from: None,
            has_phones: false,
            frames,
        });
    }
    let m = CorpusManifest {
        version: CORPUS_VERSION,
        fps: 50,
        seed: 0,
        clips: metas,
    };
    std::fs::write(dir.join("corpus.json"), serde_json::to_string(&m).unwrap()).unwrap();
}

#[test]
fn trainer_learns_and_checkpoints_resume() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_corpus(dir.path(), 6);
    let cfg = ModelConfig::tiny();
    let train = load_split(dir.path(), Split::Train, &cfg, None, |_, _| {}).unwrap();
    let val = load_split(dir.path(), Split::Val, &cfg, None, |_, _| {}).unwrap();
    assert_eq!(train.len(), 5);
    assert_eq!(val.len(), 1);
    let (mean, std) = motion_stats(&train);
    let tcfg = TrainConfig {
        steps: 150,
        batch: 4,
        window: 40,
        warmup: 10,
        lr: 3e-3,
        checkpoint_every: 50,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(
        cfg.clone(),
        tcfg.clone(),
        feature_norm(&train, 80),
        MotionNorm { mean, std },
    )
    .unwrap();
    let before = t.validate(&train, 4).unwrap().diffusion;
    let out = dir.path().join("teacher.safetensors");
    let mut losses = Vec::new();
    t.train(&train, &out, |_, _, l| losses.push(l.diffusion))
        .unwrap();
    let after = t.validate(&train, 4).unwrap().diffusion;
    assert!(after < 0.7 * before, "loss {before} -> {after}");
    let first: f32 = losses[..20].iter().sum::<f32>() / 20.0;
    let last: f32 = losses[losses.len() - 20..].iter().sum::<f32>() / 20.0;
    assert!(last < first, "{first} -> {last}");
    // The checkpoint is a loadable, trained teacher-only model.
    let m = TalkingHeadModel::load(&out).unwrap();
    assert!(m.provenance().trained);
    assert!(m.has_teacher() && !m.has_student());
    // Resuming restores the step count and continues.
    let r = Trainer::resume(&out, TrainConfig { steps: 160, ..tcfg }).unwrap();
    assert_eq!(r.step, 150);

    // Distillation: the one-step student approaches the guided 8-step teacher.
    let dcfg = DistillConfig {
        steps: 60,
        batch: 4,
        window: 40,
        warmup: 5,
        lr: 2e-3,
        checkpoint_every: 30,
        ..DistillConfig::default()
    };
    let mut d = Distiller::new(m, dcfg).unwrap();
    let before = d.validate(&train, 3).unwrap();
    let student_path = dir.path().join("student.safetensors");
    d.run(&train, &student_path, |_, _, _| {}).unwrap();
    let after = d.validate(&train, 3).unwrap();
    assert!(after < before, "distillation loss {before} -> {after}");
    let s = TalkingHeadModel::load(&student_path).unwrap();
    assert!(s.has_student() && !s.has_teacher() && s.provenance().trained);
}

/// Largest absolute difference between two tensors of one shape.
fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .unwrap()
}

/// A tiny model's training set on a synthetic corpus of `clips` clips, a
/// short schedule (batch 2 × 24 frames, no checkpoint until the end) and
/// the data's normalisation.
fn tiny_run(
    dir: &Path,
    clips: usize,
    steps: usize,
    warmup: usize,
) -> (
    ModelConfig,
    Vec<talking_head_train::dataset::ClipData>,
    TrainConfig,
    talking_head_core::features::FeatureNorm,
    MotionNorm,
) {
    synthetic_corpus(dir, clips);
    let cfg = ModelConfig::tiny();
    let train = load_split(dir, Split::Train, &cfg, None, |_, _| {}).unwrap();
    let (mean, std) = motion_stats(&train);
    let tcfg = TrainConfig {
        steps,
        batch: 2,
        window: 24,
        warmup,
        checkpoint_every: 100,
        ..TrainConfig::default()
    };
    let fnorm = feature_norm(&train, 80);
    (cfg, train, tcfg, fnorm, MotionNorm { mean, std })
}

/// A run split in two (checkpoint, optimiser state, resume) equals one run:
/// AdamW moments, step and the per-step random streams are all restored.
#[test]
fn split_run_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 4, 12, 3);
    let one = dir.path().join("one.safetensors");
    let mut t = Trainer::new(cfg.clone(), tcfg.clone(), fnorm.clone(), norm.clone()).unwrap();
    t.train(&train, &one, |_, _, _| {}).unwrap();
    let split = dir.path().join("split.safetensors");
    let mut a = Trainer::new(cfg, tcfg.clone(), fnorm, norm).unwrap();
    a.train_until(5, &train, &split, |_, _, _| {}).unwrap();
    assert_eq!(a.step, 5);
    drop(a);
    let mut b = Trainer::resume(&split, tcfg).unwrap();
    assert!(b.resumes_optimizer());
    assert_eq!(b.step, 5);
    b.train(&train, &split, |_, _, _| {}).unwrap();
    let x = TalkingHeadModel::load(&one).unwrap();
    let y = TalkingHeadModel::load(&split).unwrap();
    let mut worst = 0f32;
    for (k, t) in x.tensors() {
        let u = &y.tensors()[k];
        worst = worst.max(max_abs_diff(t, u));
    }
    assert!(worst < 1e-5, "split run differs from one run by {worst}");
    // Without the optimiser state the same resume differs (moments restart).
    std::fs::remove_file(talking_head_train::trainer::optimizer_path(&split)).unwrap();
    let r = Trainer::resume(&split, TrainConfig::default()).unwrap();
    assert!(!r.resumes_optimizer());
}

/// `Trainer::init_from` starts a new run from a checkpoint; with fewer
/// key/value heads each group's key and value projections are the mean of
/// the checkpoint's (GQA uptraining). Other differences are refused.
#[test]
fn init_from_pools_key_value_heads() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 3, 1);
    assert_eq!(cfg.kv_heads(), 2, "the tiny config is multi-head");
    let src = dir.path().join("mha.safetensors");
    let mut t = Trainer::new(cfg.clone(), tcfg.clone(), fnorm, norm).unwrap();
    t.train(&train, &src, |_, _, _| {}).unwrap();
    let mqa_cfg = ModelConfig {
        kv_heads: Some(1),
        ..cfg.clone()
    };
    let mut u = Trainer::init_from(&src, mqa_cfg.clone(), tcfg.clone()).unwrap();
    assert_eq!(u.step, 0);
    assert!(!u.resumes_optimizer());
    let dst = dir.path().join("mqa.safetensors");
    u.train_until(1, &train, &dst, |_, _, _| {}).unwrap();
    let a = TalkingHeadModel::load(&src).unwrap();
    let b = TalkingHeadModel::load(&dst).unwrap();
    assert_eq!(b.config().kv_heads(), 1);
    let (d, hd) = (cfg.d_model, cfg.d_model / cfg.n_heads);
    let w = &a.tensors()["encoder.layers.0.attn.qkv.weight"];
    assert_eq!(w.dims(), &[3 * d, d]);
    assert_eq!(
        b.tensors()["encoder.layers.0.attn.qkv.weight"].dims(),
        &[d + 2 * hd, d]
    );
    // The pooled rows, before the one training step moved them a little.
    let fresh = dir.path().join("fresh.safetensors");
    Trainer::init_from(&src, mqa_cfg, tcfg.clone())
        .unwrap()
        .save(&fresh, "init")
        .unwrap();
    let c = TalkingHeadModel::load(&fresh).unwrap();
    let pooled = &c.tensors()["encoder.layers.0.attn.qkv.weight"];
    for (part, base) in [(0usize, d), (1, d + 2 * hd)] {
        let want =
            ((w.narrow(0, base, hd).unwrap() + w.narrow(0, base + hd, hd).unwrap()).unwrap() / 2.0)
                .unwrap();
        let got = pooled.narrow(0, d + part * hd, hd).unwrap();
        let err = max_abs_diff(&want, &got);
        assert!(err < 1e-6, "part {part}: {err}");
    }
    // Other differences, or more key/value heads than the checkpoint, are errors.
    let wider = ModelConfig {
        d_ff: cfg.d_ff * 2,
        ..cfg.clone()
    };
    assert!(Trainer::init_from(&src, wider, tcfg.clone()).is_err());
    let mqa_src = dir.path().join("fresh.safetensors");
    assert!(Trainer::init_from(&mqa_src, cfg, tcfg).is_err());
}

/// `Trainer::init_from` deepens the encoder by block expansion: with twice
/// (three times) the layers, the checkpoint's layers are spread out with
/// identity-initialised layers between them, so the new encoder computes
/// exactly the checkpoint's function; one training step then moves the new
/// layers' zero projections. A layer count that is not a multiple, or fewer
/// layers, is refused.
#[test]
fn init_from_deepens_by_block_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 3, 1);
    let src = dir.path().join("shallow.safetensors");
    let mut t = Trainer::new(cfg.clone(), tcfg.clone(), fnorm, norm).unwrap();
    t.train(&train, &src, |_, _, _| {}).unwrap();
    let a = TalkingHeadModel::load(&src).unwrap();
    let n0 = cfg.n_layers;
    let x = candle_core::Tensor::randn(
        0f32,
        1.0,
        (1, 40, cfg.input_dim()),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let want = a.encode(&x).unwrap();
    for k in [2, 3] {
        let deep = ModelConfig {
            n_layers: n0 * k,
            ..cfg.clone()
        };
        let fresh = dir.path().join(format!("deep{k}.safetensors"));
        Trainer::init_from(&src, deep.clone(), tcfg.clone())
            .unwrap()
            .save(&fresh, "init")
            .unwrap();
        let b = TalkingHeadModel::load(&fresh).unwrap();
        assert_eq!(b.config().n_layers, n0 * k);
        let err = max_abs_diff(&want, &b.encode(&x).unwrap());
        assert!(err < 1e-5, "x{k}: the expanded encoder differs by {err}");
        for i in 0..n0 {
            let name = format!("encoder.layers.{i}.attn.qkv.weight");
            let moved = format!("encoder.layers.{}.attn.qkv.weight", i * k);
            assert_eq!(max_abs_diff(&a.tensors()[&name], &b.tensors()[&moved]), 0.0);
        }
        let new_out = format!("encoder.layers.{}.mlp.fc2.weight", 1);
        assert_eq!(
            max_abs_diff(
                &b.tensors()[&new_out],
                &b.tensors()[&new_out].zeros_like().unwrap()
            ),
            0.0
        );
        // Training grows the new layers from the identity.
        let mut u = Trainer::init_from(&src, deep, tcfg.clone()).unwrap();
        let dst = dir.path().join(format!("deep{k}-trained.safetensors"));
        u.train_until(1, &train, &dst, |_, _, _| {}).unwrap();
        let c = TalkingHeadModel::load(&dst).unwrap();
        let w = &c.tensors()[&new_out];
        assert!(
            max_abs_diff(w, &w.zeros_like().unwrap()) > 0.0,
            "x{k}: new layer did not train"
        );
    }
    // From the two-layer checkpoint: three layers (not a multiple), one
    // (fewer) and none are refused; four are accepted.
    let two = dir.path().join("deep2.safetensors");
    for (n, ok) in [(3, false), (1, false), (0, false), (4, true)] {
        let asked = ModelConfig {
            n_layers: n * n0,
            ..cfg.clone()
        };
        assert_eq!(
            Trainer::init_from(&two, asked, tcfg.clone()).is_ok(),
            ok,
            "{n} layers"
        );
    }
}

/// `train_labels` keeps the training clips of the listed label kinds; an
/// empty list keeps all, and a list that keeps none is an error.
#[test]
fn retain_label_kinds_filters_and_refuses_an_empty_run() {
    use talking_head_train::dataset::retain_label_kinds;
    let dir = tempfile::tempdir().unwrap();
    let (_, train, ..) = tiny_run(dir.path(), 3, 1, 1);
    let n = train.len();
    assert!(n > 0);
    let mut all = train.clone();
    assert_eq!(retain_label_kinds(&mut all, &[]).unwrap(), n);
    let mut kept = train.clone();
    let kinds = vec!["animator".to_string(), "synthetic".to_string()];
    assert_eq!(retain_label_kinds(&mut kept, &kinds).unwrap(), n);
    let mut none = train;
    let err = retain_label_kinds(&mut none, &["phonetic-exact".to_string()]).unwrap_err();
    assert!(err.to_string().contains("train_labels"), "{err}");
}

/// The losses of a one-step run of `t` from the tiny run's weights.
fn first_step_losses(
    cfg: &ModelConfig,
    t: TrainConfig,
    fnorm: &talking_head_core::features::FeatureNorm,
    norm: &MotionNorm,
    train: &[talking_head_train::dataset::ClipData],
    out: &Path,
) -> talking_head_train::trainer::Losses {
    let mut tr = Trainer::new(cfg.clone(), t, fnorm.clone(), norm.clone()).unwrap();
    let mut got = None;
    tr.train_until(1, train, out, |_, _, l| got = Some(*l))
        .unwrap();
    got.unwrap()
}

/// `weak_labels`: a weak clip teaches only `jawOpen` and the upper face.
/// Its windows' phones are unknown (no phone loss), their loss weights are
/// zero on the other mouth channels, and the run differs from one without
/// the option; a kind no clip has is refused.
#[test]
fn weak_labels_mask_mouth_channels_and_phones() {
    use rand::SeedableRng;
    use talking_head_core::rig::arkit::MOUTH_CHANNELS;
    use talking_head_train::dataset::{
        BatchOptions, count_label_kinds, make_batch_with, weak_window_weights,
    };
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut train, tcfg, fnorm, norm) = tiny_run(dir.path(), 4, 1, 1);
    // Known phones, so masking them is visible.
    for c in &mut train {
        for (i, p) in c.phones.iter_mut().enumerate() {
            *p = (i % 5) as u32;
        }
    }
    let batch = |weak: Vec<String>| {
        let opts = BatchOptions {
            animator_fraction: 0.0,
            emotion: None,
            vtlp_range: 0.0,
            weak_labels: weak,
            weak_fraction: None,
            noise_windows: 0.0,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        make_batch_with(&train, &cfg, 4, 24, &fnorm, &norm, &opts, &mut rng)
    };
    let (plain, weak) = (batch(Vec::new()), batch(vec!["synthetic".into()]));
    assert!(plain.weak.iter().all(|&w| !w) && weak.weak.iter().all(|&w| w));
    assert!(plain.phones.iter().any(|&p| p != u32::MAX));
    assert!(weak.phones.iter().all(|&p| p == u32::MAX));
    assert_eq!(plain.labels, weak.labels, "the same windows, only masked");
    // Loss weights: weak rows keep jawOpen and the upper face.
    let base: Vec<f32> = (0..52).map(|k| 1.0 + k as f32).collect();
    let w = weak_window_weights(&base, &[false, true]);
    assert_eq!(&w[..52], &base[..]);
    for k in 0..52 {
        let masked = MOUTH_CHANNELS.contains(&k) && k != Blendshape::JawOpen.index();
        assert_eq!(w[52 + k], if masked { 0.0 } else { base[k] }, "channel {k}");
    }
    assert!(MOUTH_CHANNELS.contains(&Blendshape::MouthFunnel.index()));
    // In training: no phone loss, and a different run.
    let out = dir.path().join("w.safetensors");
    let first = |weak: Vec<String>| {
        let t = TrainConfig {
            weak_labels: weak,
            ..tcfg.clone()
        };
        first_step_losses(&cfg, t, &fnorm, &norm, &train, &out)
    };
    let (a, b) = (first(Vec::new()), first(vec!["synthetic".into()]));
    assert!(a.phone > 0.0 && b.phone == 0.0, "{} {}", a.phone, b.phone);
    assert_ne!(a.diffusion, b.diffusion);
    // `weak_fraction`: a fixed share of weak windows in every batch.
    let mut mixed = train.clone();
    mixed[0].meta.labels = "phonetic-allphone".into();
    for f in [0.25, 0.5, 0.75] {
        let opts = BatchOptions {
            animator_fraction: 0.0,
            emotion: None,
            vtlp_range: 0.0,
            weak_labels: vec!["phonetic-allphone".into()],
            weak_fraction: Some(f),
            noise_windows: 0.0,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..3 {
            let wb = make_batch_with(&mixed, &cfg, 8, 24, &fnorm, &norm, &opts, &mut rng);
            let n = wb.weak.iter().filter(|&&w| w).count();
            assert_eq!(n, (8.0 * f) as usize, "weak_fraction {f}");
        }
    }
    // A kind no clip has is refused rather than silently ignored.
    let err = count_label_kinds(&train, &["phonetic-allphone".into()]).unwrap_err();
    assert!(err.to_string().contains("weak_labels"), "{err}");
    assert_eq!(
        count_label_kinds(&train, &["synthetic".into()]).unwrap(),
        train.len()
    );
}

/// `noise_windows`: a noise-floor window has no speech in its features,
/// the neutral face as its labels (every frame counted) and `SIL` as its
/// phones; at 0 nothing is drawn and batches are those of a run without it.
#[test]
fn noise_windows_pair_a_noise_floor_with_the_rest_face() {
    use rand::SeedableRng;
    use talking_head_train::dataset::{BatchOptions, make_batch_with};
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut train, tcfg, fnorm, norm) = tiny_run(dir.path(), 4, 1, 1);
    for c in &mut train {
        for (i, p) in c.phones.iter_mut().enumerate() {
            *p = 1 + (i % 5) as u32;
        }
    }
    let batch = |p: f64, seed: u64| {
        let opts = BatchOptions {
            animator_fraction: 0.0,
            emotion: None,
            vtlp_range: 0.0,
            weak_labels: Vec::new(),
            weak_fraction: None,
            noise_windows: p,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        make_batch_with(&train, &cfg, 8, 24, &fnorm, &norm, &opts, &mut rng)
    };
    let (plain, noisy) = (batch(0.0, 4), batch(1.0, 4));
    assert!(plain.noise.iter().all(|&n| !n) && noisy.noise.iter().all(|&n| n));
    let rest = norm.normalize(&[0.0; 52]);
    assert!(noisy.labels.iter().all(|l| *l == rest), "neutral labels");
    assert!(noisy.before.iter().all(|l| *l == rest), "neutral history");
    assert!(noisy.mask.iter().all(|&m| m == 1.0));
    assert!(noisy.phones.iter().all(|&p| p == 0), "SIL phones");
    assert!(plain.labels.iter().any(|l| *l != rest));
    assert_eq!(noisy.features.len(), plain.features.len());
    assert!(noisy.features.iter().all(|v| v.is_finite()));
    assert_ne!(noisy.features, plain.features);
    // Stationary: the per-band spread over time is far below speech's.
    let dim = cfg.input_dim();
    let spread = |f: &[f32]| {
        let frames: Vec<&[f32]> = f.chunks_exact(dim).take(24).collect();
        let mut s = 0.0;
        for k in 0..dim {
            let m = frames.iter().map(|r| r[k]).sum::<f32>() / frames.len() as f32;
            s += frames.iter().map(|r| (r[k] - m).powi(2)).sum::<f32>() / frames.len() as f32;
        }
        (s / dim as f32).sqrt()
    };
    // Both are one window's frames; the tiny corpus's speech varies more.
    assert!(spread(&noisy.features) < spread(&plain.features));
    // A share draws some of each; the other windows keep their speech.
    let half = batch(0.5, 9);
    let n = half.noise.iter().filter(|&&n| n).count();
    assert!((1..8).contains(&n), "{n} of 8 noise windows");
    let n_out = half.n_out;
    for (w, &noise) in half.noise.iter().enumerate() {
        let rows = &half.labels[w * n_out..(w + 1) * n_out];
        assert_eq!(rows.iter().all(|l| *l == rest), noise, "window {w}");
    }
    // In training, the option changes the run.
    let out = dir.path().join("n.safetensors");
    let first = |p: f64| {
        let t = TrainConfig {
            noise_windows: p,
            ..tcfg.clone()
        };
        first_step_losses(&cfg, t, &fnorm, &norm, &train, &out)
    };
    assert_ne!(first(0.0).diffusion, first(1.0).diffusion);
}

/// The training config a checkpoint was trained with is read back from its
/// provenance, also where a distilled student quotes its teacher's.
#[test]
fn train_config_reads_back_from_provenance() {
    use talking_head_core::model::Provenance;
    let cfg = TrainConfig {
        steps: 123,
        relabel: Some(Default::default()),
        ..TrainConfig::default()
    };
    let json = serde_json::to_string(&cfg).unwrap();
    let teacher = format!("teacher trained by `talking-head train`; step=123; train config {json}");
    let student = format!("one-step student distilled from [{teacher}] on 10 clips");
    for d in [&teacher, &student] {
        let p = Provenance {
            trained: true,
            description: d.clone(),
        };
        let back = TrainConfig::from_provenance(&p).expect("parses");
        assert_eq!(back.steps, 123);
        assert!(back.relabel.is_some());
    }
    let none = Provenance {
        trained: true,
        description: "hand-made".into(),
    };
    assert!(TrainConfig::from_provenance(&none).is_none());
    // And from a real checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let (mcfg, _, tcfg, fnorm, norm) = tiny_run(dir.path(), 2, 1, 1);
    let tcfg = TrainConfig { steps: 77, ..tcfg };
    let path = dir.path().join("t.safetensors");
    Trainer::new(mcfg, tcfg, fnorm, norm)
        .unwrap()
        .save(&path, "note")
        .unwrap();
    let m = TalkingHeadModel::load(&path).unwrap();
    assert_eq!(
        TrainConfig::from_provenance(m.provenance()).unwrap().steps,
        77
    );
}

/// The dynamic-range loss weighs windows by their source: `std_weight`
/// every window, `std_weight_animator` only windows of animator clips (none
/// in the synthetic corpus, so that term alone is zero).
#[test]
fn animator_only_dynamic_range_loss_skips_other_windows() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 3, 1);
    let out = dir.path().join("m.safetensors");
    let run = |std_weight: f32, std_weight_animator: f32| -> Vec<f32> {
        let tc = TrainConfig {
            std_weight,
            std_weight_animator,
            ..tcfg.clone()
        };
        let mut t = Trainer::new(cfg.clone(), tc, fnorm.clone(), norm.clone()).unwrap();
        let mut d = Vec::new();
        t.train(&train, &out, |_, _, l| d.push(l.dynamics)).unwrap();
        d
    };
    let animator_only = run(0.0, 5.0);
    assert_eq!(animator_only.len(), 3);
    assert!(animator_only.iter().all(|&d| d == 0.0), "{animator_only:?}");
    let everywhere = run(1.0, 5.0);
    assert!(everywhere.iter().all(|&d| d > 0.0), "{everywhere:?}");
    // `std_channels` names ARKit channels; an unknown one is refused.
    let bad = TrainConfig {
        std_channels: vec!["jawOpen".into(), "notAChannel".into()],
        ..tcfg.clone()
    };
    let err = Trainer::new(cfg.clone(), bad, fnorm.clone(), norm.clone()).err();
    assert!(format!("{err:?}").contains("notAChannel"), "{err:?}");
    let jaw_only = TrainConfig {
        std_weight: 1.0,
        std_channels: vec!["jawOpen".into()],
        ..tcfg.clone()
    };
    let mut t = Trainer::new(cfg.clone(), jaw_only, fnorm.clone(), norm.clone()).unwrap();
    let mut d = Vec::new();
    t.train(&train, &out, |_, _, l| d.push(l.dynamics)).unwrap();
    assert!(d.iter().all(|&d| d > 0.0), "{d:?}");
}

/// The closure loss covers only animator windows' frames whose label
/// jawOpen is below `CLOSURE_LABEL`: zero without animator clips, zero at
/// weight 0, positive once an animator clip with closed frames is drawn.
#[test]
fn closure_loss_covers_only_closed_animator_frames() {
    use talking_head_core::rig::Blendshape;
    use talking_head_train::trainer::CLOSURE_LABEL;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 3, 1);
    let out = dir.path().join("m.safetensors");
    let run = |clips: &[talking_head_train::dataset::ClipData], weight: f32| -> Vec<f32> {
        let tc = TrainConfig {
            closure_weight_animator: weight,
            animator_fraction: 0.5,
            ..tcfg.clone()
        };
        let mut t = Trainer::new(cfg.clone(), tc, fnorm.clone(), norm.clone()).unwrap();
        let mut d = Vec::new();
        t.train(clips, &out, |_, _, l| d.push(l.closure)).unwrap();
        d
    };
    // No animator clip: nothing to close.
    assert!(run(&train, 5.0).iter().all(|&c| c == 0.0));
    // One clip relabelled as animator, its mouth shut on every other frame.
    let mut with_animator = train.clone();
    with_animator[0].meta.labels = "animator".into();
    let jaw = Blendshape::JawOpen.index();
    for (k, f) in with_animator[0].labels.iter_mut().enumerate() {
        f[jaw] = if k % 2 == 0 { 0.5 * CLOSURE_LABEL } else { 0.6 };
    }
    assert!(run(&with_animator, 0.0).iter().all(|&c| c == 0.0));
    let on = run(&with_animator, 5.0);
    assert_eq!(on.len(), 3);
    assert!(on.iter().all(|&c| c > 0.0 && c.is_finite()), "{on:?}");
}

/// `animator_channel_weights` scales its channels' loss on animator windows
/// only: the same first step gives the same diffusion loss without animator
/// clips and a larger one with them; an unknown channel or a negative factor
/// is refused.
#[test]
fn animator_channel_weights_scale_only_animator_windows() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 1, 1);
    let out = dir.path().join("m.safetensors");
    let first = |clips: &[talking_head_train::dataset::ClipData], w: &[(&str, f32)]| -> f32 {
        let tc = TrainConfig {
            animator_fraction: 0.5,
            animator_channel_weights: w.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..tcfg.clone()
        };
        let mut t = Trainer::new(cfg.clone(), tc, fnorm.clone(), norm.clone()).unwrap();
        let mut d = Vec::new();
        t.train(clips, &out, |_, _, l| d.push(l.diffusion)).unwrap();
        d[0]
    };
    let heavy = [("mouthFunnel", 50.0), ("mouthPucker", 50.0)];
    assert_eq!(first(&train, &[]), first(&train, &heavy));
    let mut with_animator = train.clone();
    with_animator[0].meta.labels = "animator".into();
    let (plain, weighted) = (first(&with_animator, &[]), first(&with_animator, &heavy));
    assert!(
        weighted > plain && weighted.is_finite(),
        "{plain} vs {weighted}"
    );
    for bad in [
        BTreeMap::from([("mouthFunel".to_string(), 2.0)]),
        BTreeMap::from([("mouthFunnel".to_string(), -1.0)]),
        BTreeMap::from([("mouthFunnel".to_string(), f32::NAN)]),
    ] {
        let tc = TrainConfig {
            animator_channel_weights: bad,
            ..tcfg.clone()
        };
        match Trainer::new(cfg.clone(), tc, fnorm.clone(), norm.clone()) {
            Err(talking_head_core::model::ModelError::InvalidConfig(m)) => {
                assert!(m.contains("animator_channel_weights"), "{m}")
            }
            other => panic!("expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
}

/// `label_mix` replaces the teacher's target by the label on the windows
/// of the named label kind only: the same (seeded) validation loss without
/// animator clips, a different one with them; bad shares are refused.
#[test]
fn distill_label_mix_changes_only_animator_targets() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, train, _, _, _) = tiny_run(dir.path(), 3, 1, 1);
    let channels = BTreeMap::from([
        ("mouthFunnel".to_string(), 1.0),
        ("jawOpen".to_string(), 0.5),
    ]);
    let mix = BTreeMap::from([("animator".to_string(), channels)]);
    let loss = |clips: &[talking_head_train::dataset::ClipData],
                m: &BTreeMap<String, BTreeMap<String, f32>>| {
        let dcfg = DistillConfig {
            batch: 2,
            window: 24,
            animator_fraction: 0.5,
            label_mix: m.clone(),
            ..DistillConfig::default()
        };
        Distiller::new(TalkingHeadModel::random(cfg.clone(), 5).unwrap(), dcfg)
            .unwrap()
            .validate(clips, 2)
            .unwrap()
    };
    assert_eq!(loss(&train, &BTreeMap::new()), loss(&train, &mix));
    let mut with_animator = train.clone();
    with_animator[0].meta.labels = "animator".into();
    let (plain, mixed) = (
        loss(&with_animator, &BTreeMap::new()),
        loss(&with_animator, &mix),
    );
    assert!(mixed.is_finite() && mixed != plain, "{plain} vs {mixed}");
    for bad in [
        ("animator", "mouthFunel", 1.0),
        ("animator", "jawOpen", 1.5),
        ("animator", "jawOpen", f32::NAN),
        ("animatr", "jawOpen", 1.0),
    ] {
        let dcfg = DistillConfig {
            label_mix: BTreeMap::from([(
                bad.0.to_string(),
                BTreeMap::from([(bad.1.to_string(), bad.2)]),
            )]),
            ..DistillConfig::default()
        };
        match Distiller::new(TalkingHeadModel::random(cfg.clone(), 5).unwrap(), dcfg) {
            Err(talking_head_core::model::ModelError::InvalidConfig(m)) => {
                assert!(m.contains("label_mix"), "{m}")
            }
            other => panic!("expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
}

/// Checkpoints list the FACEGOOD recordings they were trained on (the
/// teacher's and the student's own), so `eval` can tell a held-out section 1
/// from a fit to training data; other clips and old files list none.
#[test]
fn provenance_lists_the_facegood_recordings_trained_on() {
    use talking_head_train::dataset::{facegood_recordings, facegood_recordings_seen};
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut train, tcfg, fnorm, norm) = tiny_run(dir.path(), 4, 2, 1);
    assert!(facegood_recordings(&train).is_empty());
    for (c, (id, from)) in train.iter_mut().zip([
        ("facegood_1114_2_01", None),
        ("facegood_1114_2_01_aug0", Some("facegood_1114_2_01")),
        ("facegood_audio_1114_2_05", None),
    ]) {
        c.meta.source = "facegood".into();
        c.meta.id = id.into();
        c.meta.augmented_from = from.map(str::to_string);
    }
    assert_eq!(facegood_recordings(&train), ["1114_2_01", "1114_2_05"]);
    let teacher_path = dir.path().join("teacher.safetensors");
    let mut t = Trainer::new(cfg, tcfg, fnorm, norm).unwrap();
    t.train(&train, &teacher_path, |_, _, _| {}).unwrap();
    let teacher = TalkingHeadModel::load(&teacher_path).unwrap();
    let seen = facegood_recordings_seen(&teacher.provenance().description);
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["1114_2_01", "1114_2_05"]
    );
    // The student distilled on the first clip alone still quotes its teacher.
    let dcfg = DistillConfig {
        steps: 1,
        batch: 2,
        window: 24,
        checkpoint_every: 1,
        ..DistillConfig::default()
    };
    let student_path = dir.path().join("student.safetensors");
    let mut d = Distiller::new(teacher, dcfg).unwrap();
    d.run(&train[..1], &student_path, |_, _, _| {}).unwrap();
    let desc = TalkingHeadModel::load(&student_path)
        .unwrap()
        .provenance()
        .description
        .clone();
    assert_eq!(facegood_recordings_seen(&desc).len(), 2, "{desc}");
    assert!(
        desc.matches("FACEGOOD recordings in training: [1114_2_01]")
            .count()
            == 1
    );
    assert!(facegood_recordings_seen("teacher trained by `talking-head train`; step=3").is_empty());
}

/// `animator_fraction` rounds to whole windows per batch: the check says
/// what a batch draws when the product is fractional and refuses shares
/// outside [0, 1]; the trainer and the distiller refuse them too.
#[test]
fn animator_fraction_rounds_to_whole_windows_and_is_checked() {
    use talking_head_train::dataset::{animator_fraction_check, animator_windows};
    assert_eq!(animator_windows(8, 0.2), 2);
    assert_eq!(animator_windows(8, 0.3), 2);
    assert_eq!(animator_windows(8, 0.5), 4);
    assert_eq!(animator_windows(8, 0.0), 0);
    assert_eq!(animator_fraction_check(8, 0.5).unwrap(), None);
    let note = animator_fraction_check(8, 0.2).unwrap().unwrap();
    assert!(
        note.contains("1.60 windows") && note.contains("draws 2"),
        "{note}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _, tcfg, fnorm, norm) = tiny_run(dir.path(), 3, 1, 1);
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(animator_fraction_check(8, bad).is_err());
        let t = Trainer::new(
            cfg.clone(),
            TrainConfig {
                animator_fraction: bad,
                ..tcfg.clone()
            },
            fnorm.clone(),
            norm.clone(),
        );
        assert!(
            matches!(t, Err(talking_head_core::model::ModelError::InvalidConfig(ref m)) if m.contains("animator_fraction")),
            "{bad}"
        );
        let d = Distiller::new(
            TalkingHeadModel::random(cfg.clone(), 1).unwrap(),
            DistillConfig {
                animator_fraction: bad,
                ..DistillConfig::default()
            },
        );
        assert!(
            matches!(d, Err(talking_head_core::model::ModelError::InvalidConfig(ref m)) if m.contains("animator_fraction")),
            "{bad}"
        );
    }
}
