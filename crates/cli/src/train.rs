//! The `train` subcommand: the encoder and diffusion teacher, checkpointed and resumable.

use super::*;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TrainFile {
    model: Option<ModelConfig>,
    train: Option<talking_head_train::trainer::TrainConfig>,
}

/// The training split (at most `limit` clips) and up to 400 validation
/// clips, phonetic clips relabelled with `relabel` when given.
pub(crate) fn load_train_val(
    corpus: &std::path::Path,
    cfg: &talking_head_core::model::ModelConfig,
    limit: Option<usize>,
    relabel: Option<talking_head_train::phonetic::PhoneticLabelerConfig>,
    progress: impl FnMut(usize, usize),
) -> Result<(
    Vec<talking_head_train::dataset::ClipData>,
    Vec<talking_head_train::dataset::ClipData>,
)> {
    use talking_head_train::dataset::load_split_with;
    use talking_head_train::manifest::Split;
    let relabel = relabel.map(talking_head_train::phonetic::PhoneticLabeler::new);
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn train_cmd(
    corpus: PathBuf,
    out: PathBuf,
    config: Option<PathBuf>,
    steps: Option<usize>,
    batch: Option<usize>,
    seed: Option<u64>,
    resume: bool,
    init: Option<PathBuf>,
    stop_at: Option<usize>,
    limit: Option<usize>,
) -> Result<()> {
    use std::io::Write;
    use talking_head_core::model::MotionNorm;
    use talking_head_train::dataset::{feature_norm, motion_stats_augmented};
    use talking_head_train::trainer::Trainer;

    let file: TrainFile = match &config {
        Some(p) => crate::read_json_config(p)?,
        None => TrainFile::default(),
    };
    let resuming = resume && out.exists();
    let init = init.filter(|_| !resuming);
    let model_cfg = match (file.model, &init) {
        (Some(m), _) => m,
        (None, Some(p)) => talking_head_core::model::TalkingHeadModel::load(p)
            .with_context(|| format!("loading --init {}", p.display()))?
            .config()
            .clone(),
        (None, None) => ModelConfig::default(),
    };
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
    if let Some(note) =
        talking_head_train::dataset::animator_fraction_check(tcfg.batch, tcfg.animator_fraction)?
    {
        eprintln!("note: {note}");
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("loading");
    let (mut train, val) =
        load_train_val(&corpus, &model_cfg, limit, tcfg.relabel.clone(), |i, n| {
            bar.set_length(n as u64);
            bar.set_position(i as u64);
        })?;
    bar.finish_and_clear();
    if !tcfg.train_labels.is_empty() {
        let before = train.len();
        let kept = talking_head_train::dataset::retain_label_kinds(&mut train, &tcfg.train_labels)?;
        eprintln!(
            "train_labels {:?}: {kept} of {before} training clips kept",
            tcfg.train_labels
        );
    }
    if !tcfg.weak_labels.is_empty() {
        let weak = talking_head_train::dataset::count_label_kinds(&train, &tcfg.weak_labels)?;
        eprintln!(
            "weak_labels {:?}: {weak} of {} training clips teach only jawOpen and the upper face",
            tcfg.weak_labels,
            train.len()
        );
    }
    let frames: usize = train.iter().map(|c| c.frames()).sum();
    eprintln!(
        "training clips: {} ({:.2} h); validation clips: {}",
        train.len(),
        frames as f64 / model_cfg.fps as f64 / 3600.0,
        val.len()
    );
    let mut trainer = if resuming {
        let t = Trainer::resume(&out, tcfg.clone())?;
        eprintln!("resuming {} at step {}", out.display(), t.step);
        if !t.resumes_optimizer() {
            eprintln!(
                "warning: no optimiser state next to {} ({}); AdamW moments restart",
                out.display(),
                talking_head_train::trainer::optimizer_path(&out).display()
            );
        }
        t
    } else if let Some(p) = &init {
        let t = Trainer::init_from(p, model_cfg, tcfg.clone())
            .with_context(|| format!("initialising from {}", p.display()))?;
        eprintln!("starting from the weights of {}", p.display());
        t
    } else {
        let fnorm = feature_norm(&train, model_cfg.mel.n_mels);
        let (mean, std) = motion_stats_augmented(&train, tcfg.emotion_augment.as_ref(), tcfg.seed);
        Trainer::new(model_cfg, tcfg.clone(), fnorm, MotionNorm { mean, std })?
    };
    let mut log = open_step_log(&out)?;
    let pb = step_bar(tcfg.steps as u64);
    pb.set_position(trainer.step as u64);
    let mut ema: Option<(f32, f32, f32)> = None;
    let every = tcfg.checkpoint_every.max(1);
    let mut pending: Vec<(usize, f64, talking_head_train::trainer::Losses)> = Vec::new();
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
                let _ = writeln!(log, "{}", serde_json::json!({"step": s, "lr": lr, "diffusion": l.diffusion, "phone": l.phone, "phone_accuracy": l.phone_accuracy, "velocity": l.velocity, "dynamics": l.dynamics, "closure": l.closure, "grad_norm": l.grad_norm}));
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

#[cfg(test)]
mod tests {
    use super::TrainFile;
    use talking_head_train::distill::DistillConfig;

    fn docs() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    }

    /// Every training and distillation config in `docs/` (the recipes of
    /// the model card) parses with no unknown key.
    #[test]
    fn every_recipe_config_parses_strictly() {
        let mut n = 0;
        for e in std::fs::read_dir(docs()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("train-") && name.ends_with(".json") {
                crate::read_json_config::<TrainFile>(&p).unwrap();
                n += 1;
            } else if name.starts_with("distill-") && name.ends_with(".json") {
                crate::read_json_config::<DistillConfig>(&p).unwrap();
                n += 1;
            }
        }
        assert!(n > 50, "{n} configs");
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"train": {"steps": 5, "phone_wieght": 1.0}, "modle": {}}"#,
        )
        .unwrap();
        let e = format!(
            "{:#}",
            crate::read_json_config::<TrainFile>(&p).err().unwrap()
        );
        assert!(
            e.contains("`train.phone_wieght`") && e.contains("`modle`"),
            "{e}"
        );
        std::fs::write(&p, r#"{"steps": 5, "batch": 4}"#).unwrap();
        let d: DistillConfig = crate::read_json_config(&p).unwrap();
        assert_eq!((d.steps, d.batch), (5, 4));
        std::fs::write(&p, r#"{"steps": 5} trailing"#).unwrap();
        assert!(crate::read_json_config::<DistillConfig>(&p).is_err());
        std::fs::write(&p, "").unwrap();
        assert!(crate::read_json_config::<DistillConfig>(&p).is_err());
        assert!(crate::read_json_config::<DistillConfig>(&dir.path().join("none.json")).is_err());
    }
}
