//! The `corpus` subcommand: build or report the training corpus.

use super::*;

pub(crate) fn corpus_cmd(args: crate::CorpusBuildArgs) -> Result<()> {
    let crate::CorpusBuildArgs {
        out,
        data,
        seed,
        tts_minutes,
        flite_female_minutes,
        conversion_f0_hz,
        conversion_shift_cents,
        facegood_retarget,
        facegood_val,
        augment,
        limit,
        jobs,
    } = args;
    use talking_head_train::corpus::{CorpusConfig, build};
    let texts = repo_root().join("assets/corpus/texts");
    for (flag, v) in [
        ("--tts-minutes", tts_minutes),
        ("--flite-female-minutes", flite_female_minutes),
        ("--augment", augment),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{flag} must be a finite number >= 0, got {v}");
        }
    }
    let mut cfg = CorpusConfig::new(data.clone(), texts, out.clone());
    cfg.seed = seed;
    cfg.tts_minutes = tts_minutes;
    cfg.flite_female_minutes = flite_female_minutes;
    if let ([lo, hi], [c_lo, c_hi]) = (&conversion_f0_hz[..], &conversion_shift_cents[..]) {
        cfg.conversion_f0_hz = [*lo, *hi];
        cfg.conversion_shift_cents = [*c_lo, *c_hi];
    } else {
        bail!("--conversion-f0-hz and --conversion-shift-cents take two values: MIN,MAX");
    }
    cfg.facegood_retarget = facegood_retarget;
    cfg.facegood_val = match &facegood_val[..] {
        [one] if one.eq_ignore_ascii_case("none") => Vec::new(),
        ids => ids.iter().map(|s| s.trim().to_string()).collect(),
    };
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
