//! The `bake` subcommand: audio files to Live Link Face CSV through the streaming model, with the seeded upper-face layer.

use super::*;

pub(crate) struct BakeArgs {
    pub(crate) audio: Vec<PathBuf>,
    pub(crate) output: PathBuf,
    pub(crate) fps: f64,
    pub(crate) emotion: String,
    pub(crate) style: Option<String>,
    pub(crate) model: Option<PathBuf>,
    pub(crate) steps: usize,
    pub(crate) guidance: Option<f32>,
    pub(crate) seed: u64,
    pub(crate) no_upper_face: bool,
    pub(crate) jobs: Option<usize>,
    pub(crate) allow_untrained: bool,
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
    use talking_head_core::runtime::{FramePosition, locate};
    let time = |i: usize| frames[i].time_secs(spf);
    (0..n)
        .map(|k| match locate(frames.len(), time, k as f64 / fps) {
            FramePosition::Between { lo, w } => talking_head_core::rig::lerp_weights(
                &frames[lo].weights,
                &frames[lo + 1].weights,
                w,
            ),
            FramePosition::After { .. } => frames[frames.len() - 1].weights,
            _ => frames[0].weights,
        })
        .collect()
}

/// The plugin's upper-face layer (blinks, gaze, brow raises with speech;
/// neutral at rest), seeded, laid over baked frames the way the plugin
/// shows them ([`talking_head_core::upper_face::overlay_upper_face`]).
fn add_upper_face_layer(
    frames: &mut [talking_head_core::runtime::ExpressionFrame],
    fps: u32,
    seed: u64,
) {
    use talking_head_core::upper_face::{
        UpperFaceGenerator, UpperFaceStats, overlay_upper_face, speech_activity_from_db,
    };
    let mut g = UpperFaceGenerator::new(UpperFaceStats::default(), seed).with_neutral_rest(true);
    let dt = 1.0 / fps.max(1) as f32;
    for f in frames.iter_mut() {
        let mut layer = f.weights;
        g.step(dt, speech_activity_from_db(f.level_dbfs), &mut layer);
        overlay_upper_face(&mut f.weights, &layer);
    }
}

pub(crate) fn bake(args: BakeArgs) -> Result<()> {
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
                        add_upper_face_layer(&mut frames, model.config().fps, args.seed);
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
