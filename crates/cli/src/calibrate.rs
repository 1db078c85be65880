//! The `calibrate` subcommand: one style's mouth channels mapped onto the
//! FACEGOOD animator's curves on training recordings (quantile mapping, or
//! the two-knot linear map).

use super::*;
use talking_head_train::calibrate::{CalibrationConfig, CalibrationMethod, fit_calibration};

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
    /// Recordings kept out of the fit (the validation recordings of `eval`;
    /// `none`: fit on every recording, for a model trained on all of them).
    #[arg(long, value_delimiter = ',', default_value = "1114_2_05,1114_3_15")]
    exclude: Vec<String>,
    /// `quantile`: the animator's whole distribution (33 knots); `linear`:
    /// a dead zone at the animator's share of closed frames and the gain
    /// that matches its standard deviation (keeps the Pearson r);
    /// `linear-anchored`: the same line, but through the animator's closed
    /// level at that share instead of 0 (a smaller dead zone).
    #[arg(long, value_enum, default_value_t = Method::Quantile)]
    method: Method,
    /// ARKit channels to calibrate (e.g. `jawOpen`); default: every mouth
    /// channel the animator uses.
    #[arg(long, value_delimiter = ',')]
    channels: Vec<String>,
    /// FACEGOOD → ARKit retarget map (JSON) that makes the animator's ARKit
    /// curves the fit aims at (as `corpus build --facegood-retarget`; e.g.
    /// `docs/retarget-v51.json`, whose mouthFunnel/mouthPucker are issue
    /// 10's rounding); default: the shipped map.
    #[arg(long)]
    facegood_retarget: Option<PathBuf>,
}

/// `--method` of `calibrate`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Method {
    Quantile,
    Linear,
    LinearAnchored,
}

pub(crate) fn calibrate_cmd(args: CalibrateArgs) -> Result<()> {
    let (model, path) = load_model(args.model)?;
    let fg = args.data.join("facegood");
    let known = talking_head_train::facegood::list_clips(&fg)
        .with_context(|| format!("listing {}", fg.display()))?;
    if let Some(bad) = args
        .exclude
        .iter()
        .find(|e| !e.eq_ignore_ascii_case("none") && !known.contains(e))
    {
        bail!(
            "--exclude names `{bad}`, which is not a FACEGOOD recording (have: {})",
            known.join(", ")
        );
    }
    let map = match &args.facegood_retarget {
        None => talking_head_train::facegood::default_retarget_map()?,
        Some(p) => talking_head_core::rig::retarget::RetargetMap::load_json(p)
            .with_context(|| format!("--facegood-retarget {}", p.display()))?,
    };
    let mut recordings = Vec::new();
    for id in known {
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
        &CalibrationConfig {
            method: match args.method {
                Method::Quantile => CalibrationMethod::Quantile,
                Method::Linear => CalibrationMethod::Linear,
                Method::LinearAnchored => CalibrationMethod::LinearAnchored,
            },
            channels: args.channels.clone(),
            ..CalibrationConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("calibration: {e}"))?;
    if !fit.channels.iter().any(|c| c.calibrated) {
        bail!(
            "no channel to calibrate: {} (the animator must use a mouth channel, std >= 0.01); nothing written",
            if args.channels.is_empty() {
                "the animator's curves move no mouth channel".to_string()
            } else {
                format!("none of {} is such a channel", args.channels.join(", "))
            }
        );
    }
    println!(
        "| channel | model mean / std | animator mean / std | model q10 / q50 / q90 | animator q10 / q50 / q90 |\n|---|---|---|---|---|"
    );
    for c in fit.channels.iter().filter(|c| c.calibrated) {
        if let Some(m) = fit
            .calibration
            .channels
            .iter()
            .find(|m| m.channel == c.channel)
        {
            eprintln!(
                "{}: map {:?} -> {:?}",
                c.channel,
                m.from
                    .iter()
                    .step_by(m.from.len().div_ceil(9).max(1))
                    .collect::<Vec<_>>(),
                m.to.iter()
                    .step_by(m.to.len().div_ceil(9).max(1))
                    .collect::<Vec<_>>()
            );
        }
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
        "({} frames at 30 fps; calibrated channels listed, the others pass through)",
        fit.frames
    );
    let out = model.with_calibration(fit.calibration)?;
    // Keep the input's storage: an f16 checkpoint stays f16 (exactly; the
    // calibration knots are metadata), anything else is written in f32.
    let f16 = model.matrices_in_f16();
    if f16 {
        out.save_f16(&args.out)
    } else {
        out.save(&args.out)
    }
    .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} (weight matrices in {})",
        args.out.display(),
        if f16 { "f16, as the input" } else { "f32" }
    );
    Ok(())
}
