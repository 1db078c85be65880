//! The `label` subcommand: the phonetic labeler on audio files.

use super::*;

pub(crate) fn label_cmd(
    audio: Vec<PathBuf>,
    output: PathBuf,
    fps: f64,
    transcript: Option<String>,
    jobs: Option<usize>,
) -> Result<()> {
    use talking_head_train::phonetic::PhoneticLabeler;
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
        .clamp(1, audio.len().max(1));
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
