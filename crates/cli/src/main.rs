//! `talking-head`: bake speech to Live Link Face CSV, inspect and benchmark
//! models. Run `talking-head --help`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rayon::prelude::*;
use talking_head_core::audio::{AudioFormat, load_mono_16k};
use talking_head_core::model::{
    EMOTIONS, FrameInput, ModelConfig, Sampler, TalkingHeadModel, default_model_path, parse_emotion,
};
use talking_head_core::rig::LiveLinkFaceTake;
use talking_head_core::runtime::{Pcm, Session, run_to_end};

mod bake;
mod bench;
mod calibrate;
mod corpus;
mod distill;
mod eval;
mod info;
mod label;
mod train;

use bake::{BakeArgs, bake};
use bench::bench;
use calibrate::{CalibrateArgs, calibrate_cmd};
use corpus::corpus_cmd;
use distill::distill_cmd;
use eval::{EvalArgs, eval_cmd};
use info::{average, convert, info};
use label::label_cmd;
use train::train_cmd;

/// Reads a JSON config file (`train --config`, `distill --config`,
/// `eval --labeler`) into `T`. Keys that `T` does not have are an error
/// naming them, not silently ignored: a misspelt key would otherwise keep
/// its default and the run would not be the one the file describes.
pub(crate) fn read_json_config<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(&text);
    let value: T = serde_ignored::deserialize(&mut de, |p| unknown.push(key_path(&p)))
        .and_then(|v| de.end().map(|()| v))
        .with_context(|| format!("parsing {}", path.display()))?;
    if !unknown.is_empty() {
        bail!(
            "{}: unknown key{} {} (not a setting of this command's config; misspelt?)",
            path.display(),
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(value)
}

/// A JSON key path as a user writes it (`train.phone_weight`, `lips.0`):
/// `Option` and newtype layers, which `serde_ignored` shows as `?`, left out.
fn key_path(p: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    let join = |parent: &Path, last: String| match key_path(parent) {
        s if s.is_empty() => last,
        s => format!("{s}.{last}"),
    };
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => join(parent, index.to_string()),
        Path::Map { parent, key } => join(parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

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

/// `talking-head corpus build` arguments.
#[derive(clap::Args)]
pub(crate) struct CorpusBuildArgs {
    /// Output directory.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Shared data directory.
    #[arg(long, default_value = "../shared/data")]
    pub(crate) data: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Minutes of synthesised speech.
    #[arg(long, default_value_t = 110.0)]
    pub(crate) tts_minutes: f64,
    /// Minutes of female-range flite speech with exact phones (the male
    /// training voices converted: F0 raised, spectrum shifted +200-400 cents;
    /// 0: none, the corpus of the shipped model).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) flite_female_minutes: f64,
    /// Mean F0 range (Hz, after the shift) of the converted clips: `MIN,MAX`.
    #[arg(long, value_delimiter = ',', default_values_t = talking_head_train::corpus::DEFAULT_CONVERSION_F0_HZ)]
    pub(crate) conversion_f0_hz: Vec<f32>,
    /// Spectral shift range (cents) of the converted clips: `MIN,MAX`
    /// (`0,0`: F0 raised alone).
    #[arg(long, value_delimiter = ',', default_values_t = talking_head_train::corpus::DEFAULT_CONVERSION_SHIFT_CENTS, allow_negative_numbers = true)]
    pub(crate) conversion_shift_cents: Vec<i32>,
    /// FACEGOOD → ARKit retarget map (JSON, as
    /// `assets/retarget/facegood_to_arkit.json`) for the animator labels;
    /// default: the shipped map.
    #[arg(long)]
    pub(crate) facegood_retarget: Option<PathBuf>,
    /// FACEGOOD recordings held out for validation, comma-separated
    /// (`none`: every recording trains, for the shipped model once the
    /// recipe is chosen; `eval` then marks section 1 as seen in training).
    #[arg(long, value_delimiter = ',', default_value = "1114_2_05,1114_3_15")]
    pub(crate) facegood_val: Vec<String>,
    /// Augmented copies per training clip (fractional allowed).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) augment: f64,
    /// At most this many clips per source (quick subset).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Parallel jobs (default: all cores).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
}

#[derive(Subcommand)]
enum CorpusAction {
    /// Build the corpus: real paired data, pseudo-labelled real and synthetic speech,
    /// augmentation, splits, report.
    Build(CorpusBuildArgs),
}

#[derive(Subcommand)]
enum Command {
    /// Animate audio files and write Live Link Face CSV (one row per output frame).
    Bake {
        /// Audio files (WAV, FLAC, AIFF, MP3, OGG; any rate 8–96 kHz, any channel count).
        #[arg(required = true)]
        audio: Vec<PathBuf>,
        /// Output CSV file (one input) or directory (`<stem>.csv` per input);
        /// with `--avatar`, the output .glb/.vrm file.
        #[arg(short, long)]
        output: PathBuf,
        /// Write a glTF instead of CSV: this avatar (.glb or .vrm) with one
        /// morph-weight animation per audio file, named after the file.
        #[arg(long)]
        avatar: Option<PathBuf>,
        /// Retarget map (.retarget.json) from the ARKit channels to the
        /// avatar's morph target names (default: the ARKit names themselves).
        #[arg(long, requires = "avatar")]
        retarget: Option<PathBuf>,
        /// Output frame rate of the CSV or animation.
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
    /// Rewrite a checkpoint with its weight matrices stored in f16 (about
    /// half the file; the streaming kernels then read f16 weights at small
    /// batches) or back in f32.
    Convert {
        /// Input checkpoint.
        input: PathBuf,
        /// Output checkpoint.
        output: PathBuf,
        /// Store every weight matrix as f16, rounded to nearest (the default
        /// writes f32).
        #[arg(long)]
        f16: bool,
    },
    /// Average the weights of checkpoints fine-tuned from one checkpoint (a
    /// uniform model soup, Wortsman et al. 2022): e.g. teachers of one
    /// recipe trained with different seeds; the result trains, distils and
    /// evaluates like any teacher. Fails on different configs, shapes or
    /// normalisations.
    Average {
        /// Checkpoints to average (two or more).
        #[arg(required = true, num_args = 2..)]
        inputs: Vec<PathBuf>,
        /// Output checkpoint (f32).
        #[arg(long, short)]
        out: PathBuf,
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
    /// Train the encoder and the diffusion teacher on a corpus.
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
        /// Start a new run (step 0, fresh optimiser) from this trainer
        /// checkpoint's weights and normalisation; the model in --config may
        /// differ from it only in `kv_heads` (fewer: key/value heads
        /// mean-pooled, GQA uptraining). Ignored when --resume finds --out.
        #[arg(long, value_name = "CHECKPOINT")]
        init: Option<PathBuf>,
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
    /// with coarticulation, written as Live Link Face CSV.
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
    /// Build the training corpus.
    Corpus {
        #[command(subcommand)]
        action: CorpusAction,
    },
    /// Evaluate a model truth first: animator truth, articulation on held-out voices, emotion; labeler imitation with --corpus.
    Eval(EvalArgs),
    /// Map one style's mouth channels onto the FACEGOOD animator's distribution (quantile
    /// mapping fitted on training recordings, stored in the checkpoint).
    Calibrate(CalibrateArgs),
    /// Distil the N-step guided teacher into the one-step student.
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
    // Rust ignores SIGPIPE, so a closed stdout (`talking-head info m | head
    // -1`) made `println!` panic with "failed printing to stdout". Restore
    // the default disposition: the process ends quietly, as Unix tools do.
    #[cfg(unix)]
    // SAFETY: `signal` with a valid signal number and `SIG_DFL`, called
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = match &cli.command {
        Command::Bench { threads, .. } => *threads,
        Command::Train { threads, .. } | Command::Distill { threads, .. } => {
            threads.unwrap_or(cores)
        }
        _ => 1,
    };
    // More kernel threads than cores measures contention, not the model (and
    // thousands of them stall the machine).
    if matches!(cli.command, Command::Bench { .. }) && threads > cores {
        eprintln!(
            "error: --threads {threads} is more than the {cores} cores of this machine; pass at most {cores}"
        );
        std::process::exit(2);
    }
    // candle reads RAYON_NUM_THREADS for every matmul. Set it before any other
    // thread exists: one thread per model step is fastest at these sizes, and
    // `bake` parallelises across files instead.
    // SAFETY: no other thread is running yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
    let result = match cli.command {
        Command::Bake {
            audio,
            output,
            avatar,
            retarget,
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
            avatar,
            retarget,
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
        Command::Convert { input, output, f16 } => convert(input, output, f16),
        Command::Average { inputs, out } => average(&inputs, &out),
        Command::Bench {
            model,
            threads,
            file,
            iters,
            teacher,
        } => bench(model, threads, file, iters, teacher),
        Command::Train {
            corpus,
            out,
            config,
            steps,
            batch,
            seed,
            resume,
            init,
            stop_at,
            limit,
            threads: _,
        } => train_cmd(
            corpus, out, config, steps, batch, seed, resume, init, stop_at, limit,
        ),
        Command::Distill {
            teacher,
            out,
            corpus,
            config,
            steps,
            limit,
            threads: _,
        } => distill_cmd(teacher, out, corpus, config, steps, limit),
        Command::Label {
            audio,
            output,
            fps,
            transcript,
            jobs,
        } => label_cmd(audio, output, fps, transcript, jobs),
        Command::Corpus {
            action: CorpusAction::Build(args),
        } => corpus_cmd(args),
        Command::Eval(args) => eval_cmd(args),
        Command::Calibrate(args) => calibrate_cmd(args),
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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The progress bar of a training loop (`train`, `distill`).
fn step_bar(total: u64) -> ProgressBar {
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{pos}/{len} [{bar:30}] {elapsed}/{eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

/// Opens (appending, creating the folder) the per-step JSON-lines log next
/// to a checkpoint: `MODEL.log.jsonl`.
fn open_step_log(out: &std::path::Path) -> Result<std::fs::File> {
    let log_path = out.with_extension("log.jsonl");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))
}

fn load_model(path: Option<PathBuf>) -> Result<(TalkingHeadModel, PathBuf)> {
    let explicit = path.is_some();
    let path = path.unwrap_or_else(default_model_path);
    if !path.exists() {
        if explicit {
            bail!("model file {} does not exist", path.display());
        }
        bail!(
            "no model at {}: run from the repository root (the shipped model is \
             assets/models/default.safetensors), set $TALKING_HEAD_MODEL or pass --model PATH.",
            path.display()
        );
    }
    let model = TalkingHeadModel::load(&path)?;
    Ok((model, path))
}
