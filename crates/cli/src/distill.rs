//! The `distill` subcommand: the one-step student from the teacher.

use super::*;
use crate::train::load_train_val;

pub(crate) fn distill_cmd(
    teacher: PathBuf,
    out: PathBuf,
    corpus: PathBuf,
    config: Option<PathBuf>,
    steps: Option<usize>,
    limit: Option<usize>,
) -> Result<()> {
    use std::io::Write;
    use talking_head_train::distill::{DistillConfig, Distiller};

    let mut cfg: DistillConfig = match &config {
        Some(p) => crate::read_json_config(p)?,
        None => DistillConfig::default(),
    };
    if let Some(s) = steps {
        cfg.steps = s;
    }
    let model = TalkingHeadModel::load(&teacher)?;
    if !model.has_teacher() {
        bail!("{} has no teacher denoiser to distil", teacher.display());
    }
    if let Some(note) =
        talking_head_train::dataset::animator_fraction_check(cfg.batch, cfg.animator_fraction)?
    {
        eprintln!("note: {note}");
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
    let pb = step_bar(total);
    let mut log = open_step_log(&out)?;
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
