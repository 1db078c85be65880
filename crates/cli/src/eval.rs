//! The `eval` subcommand: truth-first evaluation (FACEGOOD animator curves, held-out articulation, emotion) and the pseudo-label diagnostics.

use super::*;

/// Arguments of `talking-head eval`.
#[derive(clap::Args, Debug)]
pub(crate) struct EvalArgs {
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
    /// JSON PhoneticLabelerConfig for the labeler rows (default: the
    /// settings the model was trained with, from its provenance, else the
    /// built-in ones).
    #[arg(long)]
    labeler: Option<PathBuf>,
    /// Baselines and labeler only (skip the model): a labeler experiment.
    #[arg(long)]
    baselines_only: bool,
    /// flite voices of section 2 and the emotion section (default: the
    /// held-out `slt,rms`); training voices (`kal16,awb,kal`) make it a
    /// diagnostic of fitting against generalisation, marked as such.
    #[arg(long, value_delimiter = ',')]
    voices: Option<Vec<String>>,
    /// FACEGOOD recordings of section 1 (comma-separated ids); the loudness
    /// and ridge baselines are fitted on the others (at least one must be
    /// left). An unknown id is an error.
    /// Another pair than the default gives a second fold of a recipe
    /// trained with `corpus build --facegood-val` on the same ids.
    #[arg(long, value_delimiter = ',', default_value = "1114_2_05,1114_3_15")]
    facegood_val: Vec<String>,
    /// The `corpus build --seed` the model's corpus was built with: its
    /// speaker split decides which real LibriSpeech / multilingual speakers
    /// the emotion section's real-voice rows may use (never trained on).
    #[arg(long, default_value_t = 0)]
    corpus_seed: u64,
}

pub(crate) fn eval_cmd(args: EvalArgs) -> Result<()> {
    use talking_head_train::eval::evaluate;
    use talking_head_train::truth_report::{TruthEvalConfig, evaluate_truth};
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
        voices,
        facegood_val,
        corpus_seed,
    } = args;
    let (m, path) = load_model(model)?;
    let t = teacher.map(|p| TalkingHeadModel::load(&p)).transpose()?;
    let dir = out.unwrap_or_else(|| path.parent().map(PathBuf::from).unwrap_or_default());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Sections 1, 2 and emotion: real truth first.
    let mut cfg = TruthEvalConfig::new(data);
    cfg.sentences = sentences;
    cfg.baselines_only = baselines_only;
    cfg.val_recordings = facegood_val;
    cfg.corpus_seed = corpus_seed;
    if let Some(v) = voices {
        if v.is_empty() {
            bail!("--voices needs at least one flite voice");
        }
        cfg.voices = v;
    }
    // The labeler rows use the labels the model was trained on when its
    // provenance records them (the teacher's `relabel`), so "label ceiling"
    // means what this model's labels teach.
    let trained_with = t
        .as_ref()
        .and_then(|t| talking_head_train::trainer::TrainConfig::from_provenance(t.provenance()))
        .or_else(|| talking_head_train::trainer::TrainConfig::from_provenance(m.provenance()))
        .and_then(|c| c.relabel);
    if let Some(p) = &labeler {
        cfg.labeler = crate::read_json_config(p)?;
        cfg.labeler_source = format!("the settings in `{}`", p.display());
    } else if let Some(l) = trained_with {
        cfg.labeler = l;
        cfg.labeler_source =
            "the settings the model's labels were made with (`relabel` in its training config)"
                .into();
    } else {
        cfg.labeler_source = "the labeler's built-in settings".into();
    }
    let truth = evaluate_truth(&m, &path.display().to_string(), t.as_ref(), &cfg, |msg| {
        eprintln!("eval: {msg}")
    })
    .map_err(|e| anyhow::anyhow!("truth-first evaluation: {e}"))?;
    if !truth.seen_in_training.is_empty() {
        eprintln!(
            "eval: note: the model or its teacher was trained on {}; section 1 is a fit, not a held-out figure",
            truth.seen_in_training.join(", ")
        );
    }
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
    let fps = talking_head_train::manifest::CorpusManifest::load(&corpus)?.fps as f64;
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
