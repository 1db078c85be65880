//! The `bench` subcommand: streaming step time per batch size, GFLOP/s against the machine's matmul peak, memory per session, real-time factor.

use super::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Median ms of one batched step of `b` sessions with `sampler`, in the
/// steady state of a long stream: every session is past its look-ahead and
/// its attention window is full (the most work a step does). Steps run
/// through [`TalkingHeadModel::step_items`] with buffers kept between steps,
/// as the worker runs them. Returns the median and the model-state bytes of
/// one session.
fn time_steps(
    model: &TalkingHeadModel,
    b: usize,
    sampler: Sampler,
    iters: usize,
) -> Result<(f64, usize)> {
    let cfg = model.config();
    let mut states = (0..b)
        .map(|i| model.new_state(i as u64))
        .collect::<Result<Vec<_>, _>>()?;
    let feats: Vec<Vec<f32>> = (0..b)
        .map(|i| {
            (0..cfg.input_dim())
                .map(|j| ((i * 31 + j * 7) % 17) as f32 * 0.3 - 4.0)
                .collect()
        })
        .collect();
    let mut items: Vec<(&mut talking_head_core::model::StreamState, FrameInput<'_>)> = states
        .iter_mut()
        .zip(&feats)
        .map(|(s, f)| {
            (
                s,
                FrameInput {
                    log_mel: f,
                    rms_dbfs: -20.0,
                },
            )
        })
        .collect();
    let due: Vec<usize> = (0..b).collect();
    let mut scratch = talking_head_core::model::StepScratch::default();
    let mut out = Vec::with_capacity(b);
    let warm = cfg.context_frames + cfg.lookahead_frames + 8;
    for _ in 0..warm {
        out.clear();
        model.step_items(&mut items, &due, sampler, &mut scratch, &mut out)?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        out.clear();
        let t = Instant::now();
        model.step_items(&mut items, &due, sampler, &mut scratch, &mut out)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let state_bytes = items[0].0.state_bytes();
    Ok((median(times), state_bytes))
}

/// The machine's fp32 matrix-product rate on one thread, GFLOP/s: the median
/// of square `n³` products through the `gemm` crate, the library the
/// streaming kernels call.
fn peak_gflops(n: usize, iters: usize) -> f64 {
    let mut probe = talking_head_core::model::MatmulProbe::new(n);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) + 3 {
        let t = Instant::now();
        std::hint::black_box(probe.run());
        times.push(t.elapsed().as_secs_f64());
    }
    let secs = median(times.split_off(3));
    probe.flops() as f64 / secs / 1e9
}

pub(crate) fn bench(
    model_path: Option<PathBuf>,
    threads: usize,
    file: Option<PathBuf>,
    iters: usize,
    teacher_path: Option<PathBuf>,
) -> Result<()> {
    let explicit = model_path.is_some();
    let path = model_path.unwrap_or_else(default_model_path);
    let (model, which, model_bytes) = if path.exists() {
        let m = TalkingHeadModel::load(&path)?;
        let bytes = std::fs::metadata(&path)?.len();
        let which = if m.provenance().trained {
            "trained"
        } else {
            "untrained checkpoint"
        };
        (m, format!("{which} {}", path.display()), bytes)
    } else {
        if explicit {
            bail!("model file {} does not exist", path.display());
        }
        let m = TalkingHeadModel::random(ModelConfig::default(), 0)?;
        // Size of the checkpoint the shipped student would have (encoder + student).
        let dir = std::env::temp_dir().join(format!("talking-head-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("random.safetensors");
        let student_only: std::collections::BTreeMap<_, _> = m
            .tensors()
            .iter()
            .filter(|(k, _)| !k.starts_with("teacher."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        talking_head_core::model::save_checkpoint(
            &tmp,
            &student_only,
            m.config(),
            m.feature_norm(),
            m.motion_norm(),
            m.provenance(),
        )?;
        let bytes = std::fs::metadata(&tmp)?.len();
        let _ = std::fs::remove_dir_all(&dir);
        (
            m,
            "random default-size model (no trained model present)".to_string(),
            bytes,
        )
    };
    println!("model: {which}");
    println!("threads: {threads}");
    let student = if model.has_student() {
        Sampler::Student
    } else {
        bail!("the model has no student to benchmark")
    };
    let mut medians = serde_json::Map::new();
    let mut gflops = serde_json::Map::new();
    let flops = model.student_step_flops() as f64;
    let mut state_bytes = 0;
    for b in [1usize, 8, 32, 128] {
        let n = if b == 1 { iters } else { (iters / 4).max(10) };
        let (ms, bytes) = time_steps(&model, b, student, n)?;
        state_bytes = bytes;
        let rate = flops * b as f64 / (ms * 1e-3) / 1e9;
        println!(
            "student step, batch {b:>3}: median {ms:.3} ms ({:.4} ms per session, {rate:.1} GFLOP/s)",
            ms / b as f64
        );
        medians.insert(b.to_string(), serde_json::json!(round3(ms)));
        if b >= 32 {
            gflops.insert(b.to_string(), serde_json::json!(round3(rate)));
        }
    }
    let peak = peak_gflops(256, 30);
    println!(
        "matmul peak (256³ fp32, gemm, one thread): {peak:.1} GFLOP/s; a student step is {:.2} MFLOP per session",
        flops / 1e6
    );
    let cfg = model.config();
    let teacher_steps = cfg.diffusion.teacher_steps;
    let teacher_sampler = Sampler::Teacher {
        steps: teacher_steps,
        guidance: cfg.diffusion.guidance_scale,
    };
    let separate_teacher = if model.has_teacher() {
        None
    } else {
        let p =
            teacher_path.unwrap_or_else(|| repo_root().join("assets/models/teacher.safetensors"));
        if p.exists() {
            println!("teacher: {}", p.display());
            Some(TalkingHeadModel::load(&p)?)
        } else {
            None
        }
    };
    let teacher_model = separate_teacher.as_ref().unwrap_or(&model);
    let (ratio, teacher_ms) = if teacher_model.has_teacher() {
        let (s, _) = time_steps(&model, 1, student, iters)?;
        let (t, _) = time_steps(teacher_model, 1, teacher_sampler, (iters / 4).max(10))?;
        println!(
            "teacher step ({teacher_steps} DDIM steps, guidance {}): median {t:.3} ms = {:.1}x the student",
            cfg.diffusion.guidance_scale,
            t / s
        );
        (Some(round3(t / s)), Some(round3(t)))
    } else {
        println!("teacher: not in this checkpoint (pass --teacher)");
        (None, None)
    };
    let audio = file.unwrap_or_else(|| repo_root().join("assets/audio/LJ001-0001.wav"));
    let t0 = Instant::now();
    let (samples, _) =
        load_mono_16k(&audio).with_context(|| format!("bench audio {}", audio.display()))?;
    let mut session = Session::new(&model, AudioFormat::MODEL, 0)?;
    let frames = run_to_end(&model, &mut session, Pcm::F32(&samples), student, |_| {})?;
    let session_bytes = session.memory_bytes();
    let compute = t0.elapsed().as_secs_f64();
    let audio_secs = samples.len() as f64 / 16_000.0;
    let rtf = audio_secs / compute;
    println!(
        "real-time factor: {rtf:.1}x ({audio_secs:.2} s of audio, {} frames, in {compute:.3} s, decode included) — {}",
        frames.len(),
        audio.display()
    );
    // A live session: the same file in 20 ms pushes (an audio callback's
    // worth), stepped as frames come due, as the plugin's worker runs it.
    let mut live = Session::new(&model, AudioFormat::MODEL, 0)?;
    for c in samples.chunks(320) {
        live.push(Pcm::F32(c))?;
        while live.pending_frames() > 0 {
            talking_head_core::runtime::step_batch(&model, &mut [&mut live], student)?;
        }
    }
    let live_bytes = live.memory_bytes();
    println!(
        "model file: {model_bytes} bytes; algorithmic latency {:.0} ms",
        cfg.algorithmic_latency_secs() * 1e3
    );
    println!(
        "memory per session: {state_bytes} bytes of model state (KV caches, conv taps, history); with the audio front-end {live_bytes} bytes in a live stream (20 ms pushes), {session_bytes} bytes after 1 s pushes"
    );
    let json = serde_json::json!({
        "step_ms_median": medians,
        "gflops": gflops,
        "peak_gflops": round3(peak),
        "student_step_mflop": round3(flops / 1e6),
        "state_bytes_per_session": state_bytes,
        "session_bytes": session_bytes,
        "live_session_bytes": live_bytes,
        "teacher_student_ratio": ratio,
        "teacher_step_ms_median": teacher_ms,
        "teacher_steps": teacher_steps,
        "model_bytes": model_bytes,
        "realtime_factor": round3(rtf),
        "algorithmic_latency_ms": cfg.algorithmic_latency_secs() * 1e3,
        "student_parameters": model.parameter_count(Some(Sampler::Student)),
        "threads": threads,
        "model": which,
        "audio": audio.display().to_string(),
    });
    println!("{json}");
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
