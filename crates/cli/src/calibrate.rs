//! The `calibrate` subcommand: quantile mapping of one style's mouth
//! channels onto the FACEGOOD animator's curves on training recordings.

use super::*;
use talking_head_train::calibrate::{CalibrationConfig, fit_calibration};

/// Arguments of `talking-head calibrate`.
#[derive(clap::Args, Debug)]
pub(crate) struct CalibrateArgs {
    /// Checkpoint to calibrate (student, or a teacher-only file); default:
    /// the shipped model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where to write the calibrated checkpoint (may be the input file).
    #[arg(long)]
    out: PathBuf,
    /// Shared data directory (FACEGOOD recordings).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Style to calibrate: its output is matched to the animator's.
    #[arg(long, default_value = "facegood")]
    style: String,
    /// Recordings kept out of the fit (the validation recordings of `eval`).
    #[arg(long, value_delimiter = ',', default_value = "1114_2_05,1114_3_15")]
    exclude: Vec<String>,
}

pub(crate) fn calibrate_cmd(args: CalibrateArgs) -> Result<()> {
    let (model, path) = load_model(args.model)?;
    let fg = args.data.join("facegood");
    let map = talking_head_train::facegood::default_retarget_map()?;
    let mut recordings = Vec::new();
    for id in talking_head_train::facegood::list_clips(&fg)
        .with_context(|| format!("listing {}", fg.display()))?
    {
        if args.exclude.contains(&id) {
            continue;
        }
        recordings.push(
            talking_head_train::facegood::load_clip(&fg, &id, &map)
                .with_context(|| format!("loading FACEGOOD recording {id}"))?,
        );
    }
    if recordings.is_empty() {
        bail!(
            "no FACEGOOD training recordings in {} (after --exclude)",
            fg.display()
        );
    }
    let ids: Vec<&str> = recordings.iter().map(|r| r.id.as_str()).collect();
    eprintln!(
        "calibrate: style `{}` of {} on {ids:?}",
        args.style,
        path.display()
    );
    let fit = fit_calibration(
        &model,
        &recordings,
        &args.style,
        &CalibrationConfig::default(),
    )
    .map_err(|e| anyhow::anyhow!("calibration: {e}"))?;
    println!(
        "| channel | model mean / std | animator mean / std | model q10 / q50 / q90 | animator q10 / q50 / q90 |\n|---|---|---|---|---|"
    );
    for c in fit.channels.iter().filter(|c| c.calibrated) {
        let q = |v: [f32; 3]| format!("{:.3} / {:.3} / {:.3}", v[0], v[1], v[2]);
        println!(
            "| {} | {:.3} / {:.3} | {:.3} / {:.3} | {} | {} |",
            c.channel,
            c.pred_mean,
            c.pred_std,
            c.truth_mean,
            c.truth_std,
            q(c.pred_quantiles),
            q(c.truth_quantiles)
        );
    }
    println!(
        "({} frames at 30 fps; quantile-mapped channels listed, the others pass through)",
        fit.frames
    );
    let out = model.with_calibration(fit.calibration)?;
    out.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
