//! The `info` subcommand (what a checkpoint holds) and `convert` (its storage precision).

use super::*;

pub(crate) fn info(model: Option<PathBuf>, json: bool) -> Result<()> {
    let path = model.unwrap_or_else(default_model_path);
    if !path.exists() {
        bail!(
            "no model at {}: run from the repository root (the shipped model is \
             assets/models/default.safetensors), set $TALKING_HEAD_MODEL or pass a path",
            path.display()
        );
    }
    let info = TalkingHeadModel::info(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let c = &info.config;
    println!("model:            {}", info.path.display());
    println!(
        "file size:        {} bytes ({:.2} MB)",
        info.file_bytes,
        info.file_bytes as f64 / 1e6
    );
    println!("trained:          {}", info.provenance.trained);
    if !info.provenance.description.is_empty() {
        println!("description:      {}", info.provenance.description);
    }
    if let Some(p) = info.student_parameters {
        println!("student params:   {p} (encoder + one-step student)");
    }
    if let Some(p) = info.teacher_parameters {
        println!("teacher params:   {p} (encoder + DDIM teacher)");
    }
    println!(
        "frame rate:       {} fps ({} samples per frame at {} Hz)",
        c.fps,
        c.samples_per_frame(),
        c.mel.sample_rate
    );
    println!(
        "look-ahead:       {} frames; algorithmic latency {:.0} ms",
        c.lookahead_frames, info.algorithmic_latency_ms
    );
    println!(
        "encoder:          d_model {}, {} layers, {} heads ({} key/value), ffn {}, context {} frames ({:.2} s), conv kernel {}",
        c.d_model,
        c.n_layers,
        c.n_heads,
        c.kv_heads(),
        c.d_ff,
        c.context_frames,
        c.context_frames as f64 / c.fps as f64,
        c.conv_kernel
    );
    println!(
        "denoiser:         hidden {}, {} blocks, history {} frames, {:?}-prediction",
        c.denoiser_hidden, c.denoiser_blocks, c.history_frames, c.diffusion.prediction
    );
    println!(
        "teacher sampler:  {} DDIM steps, guidance {}",
        c.diffusion.teacher_steps, c.diffusion.guidance_scale
    );
    println!(
        "features:         {} log-mel bins, window {} / hop {} samples",
        c.mel.n_mels, c.mel.win_length, c.mel.hop_length
    );
    println!("styles:           {}", c.styles.join(", "));
    println!("emotions:         {}", EMOTIONS.join(", "));
    for cal in c.calibration.iter().filter(|cal| !cal.channels.is_empty()) {
        let maps: Vec<String> = cal
            .channels
            .iter()
            .map(|m| {
                let knots: Vec<String> = m
                    .from
                    .iter()
                    .zip(&m.to)
                    .map(|(a, b)| format!("{a:.3}->{b:.3}"))
                    .collect();
                if knots.len() <= 4 {
                    format!("{} [{}]", m.channel, knots.join(", "))
                } else {
                    format!("{} ({} knots)", m.channel, knots.len())
                }
            })
            .collect();
        println!("calibration:      style {}: {}", cal.style, maps.join("; "));
    }
    Ok(())
}

/// `convert`: rewrites `input` as `output`, weight matrices in f16 when
/// `f16`, else everything in f32.
pub(crate) fn convert(input: PathBuf, output: PathBuf, f16: bool) -> Result<()> {
    let model =
        TalkingHeadModel::load(&input).with_context(|| format!("loading {}", input.display()))?;
    if f16 {
        model.save_f16(&output)?;
    } else {
        model.save(&output)?;
    }
    let bytes = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} bytes, weight matrices in {}; was {} bytes)",
        output.display(),
        bytes(&output),
        if f16 { "f16" } else { "f32" },
        bytes(&input)
    );
    Ok(())
}

pub(crate) fn average(inputs: &[PathBuf], output: &std::path::Path) -> Result<()> {
    let models = inputs
        .iter()
        .map(|p| TalkingHeadModel::load(p).with_context(|| format!("loading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&TalkingHeadModel> = models.iter().collect();
    let soup =
        talking_head_train::soup::uniform_soup(&refs).context("averaging the checkpoints")?;
    soup.save(output)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {}: the mean of {} checkpoints' weights",
        output.display(),
        inputs.len()
    );
    Ok(())
}
