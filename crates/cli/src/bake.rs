//! The `bake` subcommand: audio files to Live Link Face CSV through the streaming model, with the seeded upper-face layer.

use super::*;
use talking_head_core::bake::BakeOptions;

pub(crate) struct BakeArgs {
    pub(crate) audio: Vec<PathBuf>,
    pub(crate) output: PathBuf,
    pub(crate) avatar: Option<PathBuf>,
    pub(crate) retarget: Option<PathBuf>,
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

/// Highest `--fps` (the model itself runs at 50 fps; Live Link Face takes
/// are 30 or 60 fps).
const MAX_FPS: f64 = 240.0;
/// Most `--steps` for the teacher (its DDIM schedule is trained with far
/// fewer; more only costs time).
const MAX_STEPS: usize = 1000;
/// Largest `--guidance` (classifier-free guidance scales in use are 1–5).
const MAX_GUIDANCE: f32 = 100.0;

pub(crate) fn bake(args: BakeArgs) -> Result<()> {
    if !(args.fps.is_finite() && (1.0..=MAX_FPS).contains(&args.fps)) {
        bail!("--fps must be in [1, {MAX_FPS}], got {}", args.fps);
    }
    if !(1..=MAX_STEPS).contains(&args.steps) {
        bail!(
            "--steps must be in [1, {MAX_STEPS}] (1 = the one-step student), got {}",
            args.steps
        );
    }
    if let Some(g) = args
        .guidance
        .filter(|g| !(g.is_finite() && (0.0..=MAX_GUIDANCE).contains(g)))
    {
        bail!("--guidance must be a finite scale in [0, {MAX_GUIDANCE}], got {g}");
    }
    if args.guidance.is_some() && args.steps == 1 {
        eprintln!(
            "note: --guidance applies to the teacher (--steps N > 1); the one-step student ignores it"
        );
    }
    // Never write over an input (`-o clip.wav` for `clip.wav`).
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize())
    {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if let Some(a) = args.audio.iter().find(|a| same(a, &args.output)) {
        bail!(
            "the output {} is the input {}: choose another output file",
            args.output.display(),
            a.display()
        );
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
    let sampler = if args.steps == 1 {
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
    let avatar = match &args.avatar {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the avatar {}", path.display()))?;
            let map = match &args.retarget {
                Some(p) => Some(
                    talking_head_core::rig::RetargetMap::load_json(p)
                        .with_context(|| format!("reading the retarget map {}", p.display()))?,
                ),
                None => None,
            };
            let ext = args
                .output
                .extension()
                .and_then(|x| x.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("glb" | "vrm")) && !args.output.is_dir() {
                bail!(
                    "with --avatar the output is a binary glTF: name it .glb or .vrm, not {}",
                    args.output.display()
                );
            }
            if args.output.is_dir() || args.output.to_string_lossy().ends_with('/') {
                bail!(
                    "with --avatar the output is one glTF file (one animation per audio file), not the directory {}",
                    args.output.display()
                );
            }
            Some((bytes, map))
        }
        None => None,
    };
    let to_dir = avatar.is_none()
        && (args.audio.len() > 1
            || args.output.is_dir()
            || args.output.to_string_lossy().ends_with('/')
            || args.output.extension().is_none());
    if to_dir && args.output.is_file() {
        bail!(
            "{} is a file, but with several inputs (or an output without an extension) \
             the output is a directory of CSVs; name a directory",
            args.output.display()
        );
    }
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
        .clamp(1, args.audio.len().max(1));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let bars = MultiProgress::new();
    let style_bar = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {percent:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let model = Arc::new(model);
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
    if avatar.is_some() {
        // One animation per file, named after its stem: the names must differ.
        let stems: Vec<String> = args
            .audio
            .iter()
            .map(|p| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        for (i, a) in stems.iter().enumerate() {
            if let Some(j) = stems[..i].iter().position(|b| b == a) {
                bail!(
                    "{} and {} would both become the animation `{a}`; rename one",
                    args.audio[j].display(),
                    args.audio[i].display()
                );
            }
        }
    }
    for (i, a) in outputs.iter().enumerate() {
        if avatar.is_some() {
            break;
        }
        if let Some(j) = outputs[..i].iter().position(|b| b == a) {
            bail!(
                "{} and {} would both be written to {}; bake them into different directories",
                args.audio[j].display(),
                args.audio[i].display(),
                a.display()
            );
        }
    }
    let takes = std::sync::Mutex::new(Vec::new());
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
                    let options = BakeOptions {
                        emotion,
                        style,
                        sampler,
                        seed: args.seed,
                        upper_face: !args.no_upper_face,
                        fps: args.fps,
                    };
                    let baked = talking_head_core::bake::bake(&model, &samples, &options, |n| bar.inc(n))?;
                    bar.finish_and_clear();
                    if baked.nonfinite_frames > 0 {
                        bail!(
                            "{}: the model produced NaN or infinite weights in {} frames; \
                             the checkpoint or the sampler settings (--steps, --guidance) are broken",
                            path.display(),
                            baked.nonfinite_frames
                        );
                    }
                    if avatar.is_some() {
                        takes.lock().unwrap_or_else(|p| p.into_inner()).push((i, baked));
                        return Ok(out);
                    }
                    let take = LiveLinkFaceTake::from_weights(&baked.frames, args.fps, 0.0)?;
                    take.write_file(&out)?;
                    Ok(out)
                })();
                (path.clone(), r)
            })
            .collect()
    });
    if let Some((mut glb, map)) = avatar {
        if results.iter().any(|(_, r)| r.is_err()) {
            return report_results(results);
        }
        let mut takes = takes.into_inner().unwrap_or_else(|p| p.into_inner());
        takes.sort_by_key(|(i, _)| *i);
        for (i, take) in &takes {
            let name = args.audio[*i]
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("clip{i}"));
            let (out, report) =
                talking_head_core::gltf::bake_into_glb(&glb, take, map.as_ref(), &name)
                    .with_context(|| {
                        format!("baking {} into the avatar", args.audio[*i].display())
                    })?;
            glb = out;
            if *i == 0 {
                for (node, bound, total) in &report.nodes {
                    eprintln!("{node}: {bound} of {total} morph targets animated");
                }
                if !report.unbound.is_empty() {
                    eprintln!("not driven (stay at 0): {}", report.unbound.join(", "));
                }
                if report.vrm_expressions > 0 {
                    eprintln!(
                        "no ARKit-named morph targets: driven through the avatar's {} VRM 1.0 expressions",
                        report.vrm_expressions
                    );
                }
            }
            eprintln!(
                "animation `{name}`: {} frames at {} fps",
                take.frames.len(),
                take.fps
            );
        }
        std::fs::write(&args.output, &glb)
            .with_context(|| format!("writing {}", args.output.display()))?;
        eprintln!("wrote {}", args.output.display());
        return Ok(());
    }
    report_results(results)?;
    Ok(())
}
