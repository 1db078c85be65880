//! `talking-head`: bake speech to Live Link Face CSV, inspect and benchmark
//! models. Run `talking-head --help`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bevy_talking_head::audio::{AudioFormat, load_mono_16k};
use bevy_talking_head::model::{
    EMOTIONS, FrameInput, ModelConfig, Sampler, TalkingHeadModel, default_model_path, parse_emotion,
};
use bevy_talking_head::rig::{BLENDSHAPE_COUNT, LiveLinkFaceTake};
use bevy_talking_head::runtime::{ExpressionFrame, Pcm, Session, run_to_end};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rayon::prelude::*;

#[derive(Parser)]
#[command(
    name = "talking-head",
    version,
    about = "Speech → ARKit-52 facial animation (bevy_talking_head)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[cfg(feature = "train")]
#[derive(Subcommand)]
enum CorpusAction {
    /// Build the corpus: real paired data, pseudo-labelled real and synthetic speech,
    /// augmentation, splits, report.
    Build {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Shared data directory.
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Minutes of synthesised speech.
        #[arg(long, default_value_t = 110.0)]
        tts_minutes: f64,
        /// Augmented copies per training clip (fractional allowed).
        #[arg(long, default_value_t = 1.0)]
        augment: f64,
        /// At most this many clips per source (quick subset).
        #[arg(long)]
        limit: Option<usize>,
        /// Parallel jobs (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Animate audio files and write Live Link Face CSV (one row per output frame).
    Bake {
        /// Audio files (WAV, FLAC, AIFF, MP3, OGG; any rate 8–96 kHz, any channel count).
        #[arg(required = true)]
        audio: Vec<PathBuf>,
        /// Output CSV file (one input) or directory (`<stem>.csv` per input).
        #[arg(short, long)]
        output: PathBuf,
        /// Output frame rate of the CSV.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
        /// Emotion weights, e.g. `happy=0.8,surprised=0.2` (each in [0, 1]).
        #[arg(long, default_value = "")]
        emotion: String,
        /// Style name (see `talking-head info`); default: the model's first style.
        #[arg(long)]
        style: Option<String>,
        /// Model checkpoint; default: $TALKING_HEAD_MODEL or assets/models/default.safetensors.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Denoising steps: 1 = the distilled student; N > 1 = the N-step DDIM teacher.
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Classifier-free guidance scale on emotion for the teacher (default: the model's).
        #[arg(long)]
        guidance: Option<f32>,
        /// Noise seed (also seeds the upper-face layer).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Leave out the upper-face layer (blinks, gaze, brow raises) the
        /// plugin adds: the model's output alone.
        #[arg(long)]
        no_upper_face: bool,
        /// Files processed in parallel (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Accept a checkpoint that is marked untrained (tests of the pipeline only:
        /// its output is not animation).
        #[arg(long)]
        allow_untrained: bool,
    },
    /// Show a checkpoint's config, parameter count, size, styles and look-ahead.
    Info {
        /// Checkpoint (default: the shipped model).
        model: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure step latency (batch 1/8/32), teacher/student cost, model size and
    /// real-time factor; the last line printed is one JSON object.
    Bench {
        /// Checkpoint (default: the shipped model, else a random model of the default size).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Threads for the tensor kernels (default 1: one core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Audio file for the real-time factor (default: assets/audio/LJ001-0001.wav).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Timed iterations per measurement.
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Teacher checkpoint for the teacher/student ratio when the model file has
        /// none (default: assets/models/teacher.safetensors if present).
        #[arg(long)]
        teacher: Option<PathBuf>,
    },
    /// Train the encoder and the diffusion teacher on a corpus (feature `train`).
    #[cfg(feature = "train")]
    Train {
        /// Corpus directory (from `talking-head corpus build`).
        #[arg(long)]
        corpus: PathBuf,
        /// Output checkpoint (written every --checkpoint-every steps).
        #[arg(long)]
        out: PathBuf,
        /// JSON file with a ModelConfig (`model`) and/or TrainConfig (`train`); defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Optimiser steps (overrides the config).
        #[arg(long)]
        steps: Option<usize>,
        /// Windows per batch (overrides the config).
        #[arg(long)]
        batch: Option<usize>,
        /// Seed (overrides the config).
        #[arg(long)]
        seed: Option<u64>,
        /// Continue from --out if it exists (weights, step, and the AdamW
        /// moments from the `.optim.safetensors` file next to it).
        #[arg(long)]
        resume: bool,
        /// Stop after this step (checkpoint and optimiser state written);
        /// the schedule still spans --steps, and --resume continues exactly.
        #[arg(long)]
        stop_at: Option<usize>,
        /// Use at most this many training clips (quick runs).
        #[arg(long)]
        limit: Option<usize>,
        /// Compute threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Phonetic labeler: pocketsphinx phone timings → visemes → ARKit curves
    /// with coarticulation, written as Live Link Face CSV (feature `train`).
    #[cfg(feature = "train")]
    Label {
        /// Audio files.
        #[arg(required = true)]
        audio: Vec<PathBuf>,
        /// Output CSV file (one input) or directory.
        #[arg(short, long)]
        output: PathBuf,
        /// Output frame rate.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
        /// Transcript for forced alignment (one input only); default: allphone recognition.
        #[arg(long)]
        transcript: Option<String>,
        /// Files processed in parallel (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Build the training corpus (feature `train`).
    #[cfg(feature = "train")]
    Corpus {
        #[command(subcommand)]
        action: CorpusAction,
    },
    /// Evaluate a model truth first: animator truth, articulation on held-out voices, emotion; labeler imitation with --corpus (feature `train`).
    #[cfg(feature = "train")]
    Eval(EvalArgs),
    /// Distil the N-step guided teacher into the one-step student (feature `train`).
    #[cfg(feature = "train")]
    Distill {
        /// Teacher checkpoint (from `talking-head train`).
        #[arg(long)]
        teacher: PathBuf,
        /// Output student checkpoint (encoder + student).
        #[arg(long)]
        out: PathBuf,
        /// Corpus directory.
        #[arg(long)]
        corpus: PathBuf,
        /// JSON file with a DistillConfig; defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Optimiser steps (overrides the config).
        #[arg(long)]
        steps: Option<usize>,
        /// Use at most this many training clips.
        #[arg(long)]
        limit: Option<usize>,
        /// Compute threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() {
    let cli = Cli::parse();
    #[cfg(feature = "train")]
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = match &cli.command {
        Command::Bench { threads, .. } => *threads,
        #[cfg(feature = "train")]
        Command::Train { threads, .. } | Command::Distill { threads, .. } => {
            threads.unwrap_or(cores)
        }
        _ => 1,
    };
    // candle reads RAYON_NUM_THREADS for every matmul. Set it before any other
    // thread exists: one thread per model step is fastest at these sizes, and
    // `bake` parallelises across files instead.
    // SAFETY: no other thread is running yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
    let result = match cli.command {
        Command::Bake {
            audio,
            output,
            fps,
            emotion,
            style,
            model,
            steps,
            guidance,
            seed,
            no_upper_face,
            jobs,
            allow_untrained,
        } => bake(BakeArgs {
            audio,
            output,
            fps,
            emotion,
            style,
            model,
            steps,
            guidance,
            seed,
            no_upper_face,
            jobs,
            allow_untrained,
        }),
        Command::Info { model, json } => info(model, json),
        Command::Bench {
            model,
            threads,
            file,
            iters,
            teacher,
        } => bench(model, threads, file, iters, teacher),
        #[cfg(feature = "train")]
        Command::Train {
            corpus,
            out,
            config,
            steps,
            batch,
            seed,
            resume,
            stop_at,
            limit,
            threads: _,
        } => train_cmd(
            corpus, out, config, steps, batch, seed, resume, stop_at, limit,
        ),
        #[cfg(feature = "train")]
        Command::Distill {
            teacher,
            out,
            corpus,
            config,
            steps,
            limit,
            threads: _,
        } => distill_cmd(teacher, out, corpus, config, steps, limit),
        #[cfg(feature = "train")]
        Command::Label {
            audio,
            output,
            fps,
            transcript,
            jobs,
        } => label_cmd(audio, output, fps, transcript, jobs),
        #[cfg(feature = "train")]
        Command::Corpus {
            action:
                CorpusAction::Build {
                    out,
                    data,
                    seed,
                    tts_minutes,
                    augment,
                    limit,
                    jobs,
                },
        } => corpus_cmd(out, data, seed, tts_minutes, augment, limit, jobs),
        #[cfg(feature = "train")]
        Command::Eval(args) => eval_cmd(args),
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, skipping a cause whose text the message
/// before it already contains (library errors often quote their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Prints `input -> output` per file, or the error; fails if any file failed.
fn report_results(results: Vec<(PathBuf, Result<PathBuf>)>) -> Result<()> {
    let total = results.len();
    let mut failed = 0;
    for (input, r) in results {
        match r {
            Ok(out) => println!("{} -> {}", input.display(), out.display()),
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {}", input.display(), error_chain(&e));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} files failed");
    }
    Ok(())
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_model(path: Option<PathBuf>) -> Result<(TalkingHeadModel, PathBuf)> {
    let explicit = path.is_some();
    let path = path.unwrap_or_else(default_model_path);
    if !path.exists() {
        if explicit {
            bail!("model file {} does not exist", path.display());
        }
        bail!(
            "no trained model is present: {} does not exist.\n\
             The default model is trained by this repository's trainer and shipped in \
             assets/models/; until it is, pass --model PATH.",
            path.display()
        );
    }
    let model = TalkingHeadModel::load(&path)?;
    Ok((model, path))
}

/// Arguments of `talking-head eval`.
#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
struct EvalArgs {
    /// Model (student) checkpoint; default: the shipped model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Teacher checkpoint, when the model file has none.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Corpus directory: adds section 3, labeler imitation on its
    /// validation split (a training diagnostic, not quality).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Shared data directory (FACEGOOD recordings).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Where to write truth.md/json, eval.md/json and plots (default: next to the model).
    #[arg(long)]
    out: Option<PathBuf>,
    /// At most this many validation clips in section 3.
    #[arg(long)]
    limit: Option<usize>,
    /// Sentences per held-out voice in section 2 (from assets/eval/sentences_en.txt).
    #[arg(long, default_value_t = 40)]
    sentences: usize,
    /// JSON PhoneticLabelerConfig for the labeler rows (default: the built-in settings).
    #[arg(long)]
    labeler: Option<PathBuf>,
    /// Baselines and labeler only (skip the model): a labeler experiment.
    #[arg(long)]
    baselines_only: bool,
}

struct BakeArgs {
    audio: Vec<PathBuf>,
    output: PathBuf,
    fps: f64,
    emotion: String,
    style: Option<String>,
    model: Option<PathBuf>,
    steps: usize,
    guidance: Option<f32>,
    seed: u64,
    no_upper_face: bool,
    jobs: Option<usize>,
    allow_untrained: bool,
}

/// Samples the 50 fps stream at `k / fps` seconds for `k = 0..n`, linearly
/// interpolating between frame centres (clamped at the ends).
fn resample_frames(
    frames: &[ExpressionFrame],
    spf: usize,
    duration_secs: f64,
    fps: f64,
) -> Vec<[f32; BLENDSHAPE_COUNT]> {
    let n = (duration_secs * fps).ceil().max(1.0) as usize;
    if frames.is_empty() {
        return vec![[0.0; BLENDSHAPE_COUNT]; n];
    }
    let times: Vec<f64> = frames.iter().map(|f| f.time_secs(spf)).collect();
    (0..n)
        .map(|k| {
            let t = k as f64 / fps;
            let j = times.partition_point(|&x| x <= t);
            if j == 0 {
                return frames[0].weights;
            }
            if j >= frames.len() {
                return frames[frames.len() - 1].weights;
            }
            let (t0, t1) = (times[j - 1], times[j]);
            let a = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) as f32;
            std::array::from_fn(|c| frames[j - 1].weights[c] * (1.0 - a) + frames[j].weights[c] * a)
        })
        .collect()
}

/// The plugin's upper-face layer (blinks, gaze, brow raises with speech;
/// neutral at rest), seeded, laid over baked frames the way the plugin
/// shows them ([`bevy_talking_head::upper_face::overlay_upper_face`]).
fn add_upper_face_layer(
    frames: &mut [bevy_talking_head::runtime::ExpressionFrame],
    samples: &[f32],
    fps: u32,
    seed: u64,
) {
    use bevy_talking_head::upper_face::{
        UpperFaceGenerator, UpperFaceStats, overlay_upper_face, speech_activity_from_db,
    };
    let spf = (16_000 / fps.max(1)) as usize;
    let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), seed).with_neutral_rest(true);
    let dt = 1.0 / fps.max(1) as f32;
    for (i, f) in frames.iter_mut().enumerate() {
        let lo = (i * spf).min(samples.len());
        let hi = ((i + 1) * spf).min(samples.len());
        let n = (hi - lo).max(1) as f64;
        let ms: f64 = samples[lo..hi]
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            / n;
        let db = (10.0 * ms.max(1e-18).log10()) as f32;
        let mut layer = f.weights;
        g.step(dt, speech_activity_from_db(db), &mut layer);
        overlay_upper_face(&mut f.weights, &layer);
    }
}

fn bake(args: BakeArgs) -> Result<()> {
    if !(args.fps.is_finite() && args.fps > 0.0 && args.fps <= 1000.0) {
        bail!("--fps must be in (0, 1000], got {}", args.fps);
    }
    let (model, model_path) = load_model(args.model.clone())?;
    if !model.provenance().trained && !args.allow_untrained {
        bail!(
            "{} is marked untrained: its output would be noise, not animation. \
             Use a trained model (pass --allow-untrained only to test the pipeline).",
            model_path.display()
        );
    }
    let emotion = parse_emotion(&args.emotion)?;
    let style = match &args.style {
        Some(name) => model.config().style_id(name)?,
        None => 0,
    };
    let sampler = if args.steps <= 1 {
        if !model.has_student() {
            bail!(
                "{} has no one-step student; pass --steps N (N > 1) for the teacher",
                model_path.display()
            );
        }
        Sampler::Student
    } else {
        if !model.has_teacher() {
            bail!(
                "{} has no teacher denoiser; use --steps 1",
                model_path.display()
            );
        }
        Sampler::Teacher {
            steps: args.steps,
            guidance: args
                .guidance
                .unwrap_or(model.config().diffusion.guidance_scale),
        }
    };
    let to_dir = args.audio.len() > 1
        || args.output.is_dir()
        || args.output.to_string_lossy().ends_with('/')
        || args.output.extension().is_none();
    if to_dir {
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating output directory {}", args.output.display()))?;
    } else if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let bars = MultiProgress::new();
    let style_bar = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {percent:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let model = Arc::new(model);
    let spf = model.config().samples_per_frame();
    let outputs: Vec<PathBuf> = args
        .audio
        .iter()
        .enumerate()
        .map(|(i, path)| {
            if to_dir {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("clip{i}"));
                args.output.join(format!("{stem}.csv"))
            } else {
                args.output.clone()
            }
        })
        .collect();
    for (i, a) in outputs.iter().enumerate() {
        if let Some(j) = outputs[..i].iter().position(|b| b == a) {
            bail!(
                "{} and {} would both be written to {}; bake them into different directories",
                args.audio[j].display(),
                args.audio[i].display(),
                a.display()
            );
        }
    }
    let results: Vec<(PathBuf, Result<PathBuf>)> = pool.install(|| {
        args.audio
            .par_iter()
            .enumerate()
            .map(|(i, path)| {
                let out = outputs[i].clone();
                let r = (|| -> Result<PathBuf> {
                    let (samples, report) = load_mono_16k(path)?;
                    if report.nonfinite_samples > 0 {
                        bars.suspend(|| {
                            eprintln!(
                                "warning: {}: {} non-finite samples (NaN/Inf) were replaced by silence",
                                path.display(),
                                report.nonfinite_samples
                            )
                        });
                    }
                    let bar = bars.add(ProgressBar::new(samples.len() as u64));
                    bar.set_style(style_bar.clone());
                    bar.set_prefix(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
                    let mut session = Session::new(&model, AudioFormat::MODEL, args.seed)?;
                    session.set_emotion(emotion);
                    session.set_style(style);
                    let mut frames = run_to_end(&model, &mut session, Pcm::F32(&samples), sampler, |n| bar.inc(n))?;
                    bar.finish_and_clear();
                    if !args.no_upper_face {
                        add_upper_face_layer(&mut frames, &samples, model.config().fps, args.seed);
                    }
                    let duration = samples.len() as f64 / AudioFormat::MODEL.sample_rate as f64;
                    let rows = resample_frames(&frames, spf, duration, args.fps);
                    let take = LiveLinkFaceTake::from_weights(&rows, args.fps, 0.0)?;
                    take.write_file(&out)?;
                    Ok(out)
                })();
                (path.clone(), r)
            })
            .collect()
    });
    report_results(results)?;
    Ok(())
}

fn info(model: Option<PathBuf>, json: bool) -> Result<()> {
    let path = model.unwrap_or_else(default_model_path);
    if !path.exists() {
        bail!(
            "no model at {} (the default model ships once trained; pass a path)",
            path.display()
        );
    }
    let info = TalkingHeadModel::info(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let c = &info.config;
    println!("model:            {}", info.path.display());
    println!(
        "file size:        {} bytes ({:.2} MB)",
        info.file_bytes,
        info.file_bytes as f64 / 1e6
    );
    println!("trained:          {}", info.provenance.trained);
    if !info.provenance.description.is_empty() {
        println!("description:      {}", info.provenance.description);
    }
    if let Some(p) = info.student_parameters {
        println!("student params:   {p} (encoder + one-step student)");
    }
    if let Some(p) = info.teacher_parameters {
        println!("teacher params:   {p} (encoder + DDIM teacher)");
    }
    println!(
        "frame rate:       {} fps ({} samples per frame at {} Hz)",
        c.fps,
        c.samples_per_frame(),
        c.mel.sample_rate
    );
    println!(
        "look-ahead:       {} frames; algorithmic latency {:.0} ms",
        c.lookahead_frames, info.algorithmic_latency_ms
    );
    println!(
        "encoder:          d_model {}, {} layers, {} heads, ffn {}, context {} frames ({:.2} s), conv kernel {}",
        c.d_model,
        c.n_layers,
        c.n_heads,
        c.d_ff,
        c.context_frames,
        c.context_frames as f64 / c.fps as f64,
        c.conv_kernel
    );
    println!(
        "denoiser:         hidden {}, {} blocks, history {} frames, {:?}-prediction",
        c.denoiser_hidden, c.denoiser_blocks, c.history_frames, c.diffusion.prediction
    );
    println!(
        "teacher sampler:  {} DDIM steps, guidance {}",
        c.diffusion.teacher_steps, c.diffusion.guidance_scale
    );
    println!(
        "features:         {} log-mel bins, window {} / hop {} samples",
        c.mel.n_mels, c.mel.win_length, c.mel.hop_length
    );
    println!("styles:           {}", c.styles.join(", "));
    println!("emotions:         {}", EMOTIONS.join(", "));
    Ok(())
}

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
    let mut items: Vec<(&mut bevy_talking_head::model::StreamState, FrameInput<'_>)> = states
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
    let mut scratch = bevy_talking_head::model::StepScratch::default();
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
    let mut probe = bevy_talking_head::model::MatmulProbe::new(n);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) + 3 {
        let t = Instant::now();
        std::hint::black_box(probe.run());
        times.push(t.elapsed().as_secs_f64());
    }
    let secs = median(times.split_off(3));
    probe.flops() as f64 / secs / 1e9
}

fn bench(
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
        bevy_talking_head::model::save_checkpoint(
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
    println!(
        "model file: {model_bytes} bytes; algorithmic latency {:.0} ms",
        cfg.algorithmic_latency_secs() * 1e3
    );
    println!(
        "memory per session: {state_bytes} bytes of model state (KV caches, conv taps, history), {session_bytes} bytes with the audio front-end"
    );
    let json = serde_json::json!({
        "step_ms_median": medians,
        "gflops": gflops,
        "peak_gflops": round3(peak),
        "student_step_mflop": round3(flops / 1e6),
        "state_bytes_per_session": state_bytes,
        "session_bytes": session_bytes,
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

#[cfg(feature = "train")]
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TrainFile {
    model: Option<ModelConfig>,
    train: Option<bevy_talking_head::train::trainer::TrainConfig>,
}

/// The training split (at most `limit` clips) and up to 400 validation
/// clips, phonetic clips relabelled with `relabel` when given.
#[cfg(feature = "train")]
fn load_train_val(
    corpus: &std::path::Path,
    cfg: &bevy_talking_head::model::ModelConfig,
    limit: Option<usize>,
    relabel: Option<bevy_talking_head::train::phonetic::PhoneticLabelerConfig>,
    progress: impl FnMut(usize, usize),
) -> Result<(
    Vec<bevy_talking_head::train::dataset::ClipData>,
    Vec<bevy_talking_head::train::dataset::ClipData>,
)> {
    use bevy_talking_head::train::dataset::load_split_with;
    use bevy_talking_head::train::manifest::Split;
    let relabel = relabel.map(bevy_talking_head::train::phonetic::PhoneticLabeler::new);
    let train = load_split_with(corpus, Split::Train, cfg, limit, relabel.as_ref(), progress)?;
    let val = load_split_with(
        corpus,
        Split::Val,
        cfg,
        Some(400),
        relabel.as_ref(),
        |_, _| {},
    )?;
    Ok((train, val))
}

#[cfg(feature = "train")]
#[allow(clippy::too_many_arguments)]
fn train_cmd(
    corpus: PathBuf,
    out: PathBuf,
    config: Option<PathBuf>,
    steps: Option<usize>,
    batch: Option<usize>,
    seed: Option<u64>,
    resume: bool,
    stop_at: Option<usize>,
    limit: Option<usize>,
) -> Result<()> {
    use bevy_talking_head::model::MotionNorm;
    use bevy_talking_head::train::dataset::{feature_norm, motion_stats_augmented};
    use bevy_talking_head::train::trainer::Trainer;
    use std::io::Write;

    let file: TrainFile = match &config {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => TrainFile::default(),
    };
    let model_cfg = file.model.unwrap_or_default();
    let mut tcfg = file.train.unwrap_or_default();
    if let Some(s) = steps {
        tcfg.steps = s;
    }
    if let Some(b) = batch {
        tcfg.batch = b;
    }
    if let Some(s) = seed {
        tcfg.seed = s;
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("loading");
    let (train, val) = load_train_val(&corpus, &model_cfg, limit, tcfg.relabel.clone(), |i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
    })?;
    bar.finish_and_clear();
    let frames: usize = train.iter().map(|c| c.frames()).sum();
    eprintln!(
        "training clips: {} ({:.2} h); validation clips: {}",
        train.len(),
        frames as f64 / model_cfg.fps as f64 / 3600.0,
        val.len()
    );
    let mut trainer = if resume && out.exists() {
        let t = Trainer::resume(&out, tcfg.clone())?;
        eprintln!("resuming {} at step {}", out.display(), t.step);
        if !t.resumes_optimizer() {
            eprintln!(
                "warning: no optimiser state next to {} ({}); AdamW moments restart",
                out.display(),
                bevy_talking_head::train::trainer::optimizer_path(&out).display()
            );
        }
        t
    } else {
        let fnorm = feature_norm(&train, model_cfg.mel.n_mels);
        let (mean, std) = motion_stats_augmented(&train, tcfg.emotion_augment.as_ref(), tcfg.seed);
        Trainer::new(model_cfg, tcfg.clone(), fnorm, MotionNorm { mean, std })?
    };
    let log_path = out.with_extension("log.jsonl");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let pb = ProgressBar::new(tcfg.steps as u64).with_style(
        ProgressStyle::with_template("{pos}/{len} [{bar:30}] {elapsed}/{eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_position(trainer.step as u64);
    let mut ema: Option<(f32, f32, f32)> = None;
    let every = tcfg.checkpoint_every.max(1);
    let mut pending: Vec<(usize, f64, bevy_talking_head::train::trainer::Losses)> = Vec::new();
    let t0 = Instant::now();
    let until = stop_at.unwrap_or(tcfg.steps);
    let quiet = pb.is_hidden();
    trainer.train_until(until, &train, &out, |step, lr, l| {
        let e = ema.get_or_insert((l.diffusion, l.phone, l.phone_accuracy));
        e.0 = 0.98 * e.0 + 0.02 * l.diffusion;
        e.1 = 0.98 * e.1 + 0.02 * l.phone;
        e.2 = 0.98 * e.2 + 0.02 * l.phone_accuracy;
        pb.set_position(step as u64);
        pb.set_message(format!("diff {:.4} phone {:.3} acc {:.2} lr {lr:.2e}", e.0, e.1, e.2));
        if quiet && step % 50 == 0 {
            eprintln!(
                "step {step}/{}: diff {:.4} phone {:.3} acc {:.2} vel {:.4} grad {:.2} lr {lr:.2e} ({:.0} s)",
                tcfg.steps,
                e.0,
                e.1,
                e.2,
                l.velocity,
                l.grad_norm,
                t0.elapsed().as_secs_f64()
            );
        }
        pending.push((step, lr, *l));
        if step % every == 0 || step == until {
            for (s, lr, l) in pending.drain(..) {
                let _ = writeln!(log, "{}", serde_json::json!({"step": s, "lr": lr, "diffusion": l.diffusion, "phone": l.phone, "phone_accuracy": l.phone_accuracy, "velocity": l.velocity, "grad_norm": l.grad_norm}));
            }
        }
    })?;
    pb.finish_and_clear();
    let v = trainer.validate(&val, 8)?;
    let _ = writeln!(
        log,
        "{}",
        serde_json::json!({"step": trainer.step, "val_diffusion": v.diffusion, "val_phone": v.phone, "val_phone_accuracy": v.phone_accuracy})
    );
    trainer.save(
        &out,
        &format!(
            "validation diffusion {:.4}, phone accuracy {:.3}",
            v.diffusion, v.phone_accuracy
        ),
    )?;
    println!(
        "trained to step {} in {:.0} s; validation: diffusion loss {:.4}, phone loss {:.3}, phone accuracy {:.3}; wrote {}",
        trainer.step,
        t0.elapsed().as_secs_f64(),
        v.diffusion,
        v.phone,
        v.phone_accuracy,
        out.display()
    );
    Ok(())
}

#[cfg(feature = "train")]
fn distill_cmd(
    teacher: PathBuf,
    out: PathBuf,
    corpus: PathBuf,
    config: Option<PathBuf>,
    steps: Option<usize>,
    limit: Option<usize>,
) -> Result<()> {
    use bevy_talking_head::train::distill::{DistillConfig, Distiller};
    use std::io::Write;

    let mut cfg: DistillConfig = match &config {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => DistillConfig::default(),
    };
    if let Some(s) = steps {
        cfg.steps = s;
    }
    let model = TalkingHeadModel::load(&teacher)?;
    if !model.has_teacher() {
        bail!("{} has no teacher denoiser to distil", teacher.display());
    }
    let (train, val) = load_train_val(
        &corpus,
        model.config(),
        limit,
        cfg.relabel.clone(),
        |_, _| {},
    )?;
    eprintln!(
        "distilling on {} training clips ({} validation clips)",
        train.len(),
        val.len()
    );
    let total = cfg.steps as u64;
    let mut d = Distiller::new(model, cfg)?;
    let pb = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{pos}/{len} [{bar:30}] {elapsed}/{eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let log_path = out.with_extension("log.jsonl");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut ema: Option<f32> = None;
    let t0 = Instant::now();
    d.run(&train, &out, |step, lr, loss| {
        let e = ema.get_or_insert(loss);
        *e = 0.98 * *e + 0.02 * loss;
        pb.set_position(step as u64);
        pb.set_message(format!("loss {:.5} lr {lr:.2e}", *e));
        let _ = writeln!(
            log,
            "{}",
            serde_json::json!({"step": step, "lr": lr, "distill": loss})
        );
    })?;
    pb.finish_and_clear();
    let v = if val.is_empty() {
        f32::NAN
    } else {
        d.validate(&val, 4)?
    };
    let _ = writeln!(
        log,
        "{}",
        serde_json::json!({"step": d.step, "val_distill": v})
    );
    println!(
        "distilled {} steps in {:.0} s; validation student-vs-teacher loss {v:.5}; wrote {}",
        d.step,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

#[cfg(feature = "train")]
fn eval_cmd(args: EvalArgs) -> Result<()> {
    use bevy_talking_head::train::eval::evaluate;
    use bevy_talking_head::train::truth_report::{TruthEvalConfig, evaluate_truth};
    let EvalArgs {
        model,
        teacher,
        corpus,
        data,
        out,
        limit,
        sentences,
        labeler,
        baselines_only,
    } = args;
    let (m, path) = load_model(model)?;
    let t = teacher.map(|p| TalkingHeadModel::load(&p)).transpose()?;
    let dir = out.unwrap_or_else(|| path.parent().map(PathBuf::from).unwrap_or_default());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Sections 1, 2 and emotion: real truth first.
    let mut cfg = TruthEvalConfig::new(data);
    cfg.sentences = sentences;
    cfg.baselines_only = baselines_only;
    if let Some(p) = &labeler {
        cfg.labeler = serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?;
    }
    let truth = evaluate_truth(&m, &path.display().to_string(), t.as_ref(), &cfg, |msg| {
        eprintln!("eval: {msg}")
    })
    .map_err(|e| anyhow::anyhow!("truth-first evaluation: {e}"))?;
    let md = truth.markdown();
    std::fs::write(dir.join("truth.md"), &md)?;
    std::fs::write(
        dir.join("truth.json"),
        serde_json::to_string_pretty(&truth)?,
    )?;
    println!("{md}");
    for p in truth
        .write_plots(&dir)
        .map_err(|e| anyhow::anyhow!("plots: {e}"))?
    {
        println!("plot: {}", p.display());
    }
    println!(
        "wrote {} and {}",
        dir.join("truth.md").display(),
        dir.join("truth.json").display()
    );
    let Some(corpus) = corpus.filter(|_| !baselines_only) else {
        return Ok(());
    };
    // Section 3: labeler imitation (a training diagnostic).
    let pb = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("eval [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = evaluate(
        &m,
        &path.display().to_string(),
        t.as_ref(),
        &corpus,
        limit,
        |i, n| {
            pb.set_length(n as u64);
            pb.set_position(i as u64);
        },
    )?;
    pb.finish_and_clear();
    let md = format!(
        "## Section 3: labeler imitation (training diagnostic, not quality)\n\n{}",
        report.markdown()
    );
    std::fs::write(dir.join("eval.md"), &md)?;
    std::fs::write(
        dir.join("eval.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let fps = bevy_talking_head::train::manifest::CorpusManifest::load(&corpus)?.fps as f64;
    let plots = report
        .write_plots(&dir, fps)
        .map_err(|e| anyhow::anyhow!("plots: {e}"))?;
    println!("{md}");
    for p in &plots {
        println!("plot: {}", p.display());
    }
    println!(
        "wrote {} and {}",
        dir.join("eval.md").display(),
        dir.join("eval.json").display()
    );
    Ok(())
}

#[cfg(feature = "train")]
fn label_cmd(
    audio: Vec<PathBuf>,
    output: PathBuf,
    fps: f64,
    transcript: Option<String>,
    jobs: Option<usize>,
) -> Result<()> {
    use bevy_talking_head::train::phonetic::PhoneticLabeler;
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        bail!("--fps must be in (0, 1000], got {fps}");
    }
    if transcript.is_some() && audio.len() > 1 {
        bail!("--transcript applies to one input file only");
    }
    let to_dir = audio.len() > 1 || output.is_dir() || output.extension().is_none();
    if to_dir {
        std::fs::create_dir_all(&output)
            .with_context(|| format!("creating {}", output.display()))?;
    }
    let labeler = PhoneticLabeler::default();
    let jobs = jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let results: Vec<(PathBuf, Result<PathBuf>)> = pool.install(|| {
        audio
            .par_iter()
            .map(|path| {
                let out = if to_dir {
                    output.join(format!(
                        "{}.csv",
                        path.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ))
                } else {
                    output.clone()
                };
                let r = (|| -> Result<PathBuf> {
                    let (samples, _) = load_mono_16k(path)?;
                    // Weights at frame k describe time k / fps (Live Link Face rows are instants).
                    let (frames, _) = labeler.label_audio(&samples, transcript.as_deref(), fps)?;
                    LiveLinkFaceTake::from_weights(&frames, fps, 0.0)?.write_file(&out)?;
                    Ok(out)
                })();
                (path.clone(), r)
            })
            .collect()
    });
    report_results(results)?;
    Ok(())
}

#[cfg(feature = "train")]
fn corpus_cmd(
    out: PathBuf,
    data: PathBuf,
    seed: u64,
    tts_minutes: f64,
    augment: f64,
    limit: Option<usize>,
    jobs: Option<usize>,
) -> Result<()> {
    use bevy_talking_head::train::corpus::{CorpusConfig, build};
    let texts = repo_root().join("assets/corpus/texts");
    let mut cfg = CorpusConfig::new(data.clone(), texts, out.clone());
    cfg.seed = seed;
    cfg.tts_minutes = tts_minutes;
    cfg.augment_per_clip = augment;
    cfg.limit_per_source = limit;
    if !data.join("facegood").exists() {
        bail!(
            "{} does not look like the shared data directory (no facegood/); pass --data",
            data.display()
        );
    }
    let jobs = jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let pb = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("corpus [{bar:30}] {pos}/{len} clips {elapsed}/{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let report = build(&cfg, jobs, |d, n| {
        pb.set_length(n);
        pb.set_position(d);
    })?;
    pb.finish_and_clear();
    println!(
        "corpus in {}: {:.2} h total ({:.2} h original), {} voices, {} languages, {} failures, built in {:.0} s; see report.md",
        out.display(),
        report.hours_total,
        report.hours_original,
        report.voices,
        report.languages,
        report.failures.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
