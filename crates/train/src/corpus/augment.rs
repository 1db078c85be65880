//! Audio augmentation of a clip copy (speed, pitch, reverb / telephone EQ via sox; gain and noise in Rust).

use super::*;

/// Audio augmentation of one copy: a seeded combination of speed
/// perturbation (labels time-scaled), pitch shift, reverb or telephone EQ
/// (sox), and gain + additive noise (in Rust).
pub(super) fn augment(
    clip: &Clip,
    copy: usize,
    cfg: &CorpusConfig,
    work: &Path,
) -> Result<Clip, String> {
    let id = format!("{}_aug{copy}", clip.meta.id);
    let mut rng = StdRng::seed_from_u64(hash64(&id, cfg.seed));
    let mut ops: Vec<String> = Vec::new();
    let mut sox_effects: Vec<String> = Vec::new();
    let mut speed = 1.0f64;
    if rng.random_bool(0.5) {
        speed = *[0.9, 0.95, 1.05, 1.1].choose(&mut rng).unwrap_or(&1.0);
        sox_effects.extend(["speed".into(), format!("{speed}")]);
        ops.push(format!("speed {speed}"));
    }
    if rng.random_bool(0.4) {
        let cents = rng.random_range(-300..=300);
        sox_effects.extend(["pitch".into(), cents.to_string()]);
        ops.push(format!("pitch {cents:+} cents"));
    }
    match rng.random_range(0..3) {
        0 => {
            let r = rng.random_range(20..=70);
            sox_effects.extend(["reverb".into(), r.to_string()]);
            ops.push(format!("reverb {r}"));
        }
        1 => {
            sox_effects.extend([
                "highpass".into(),
                "300".into(),
                "lowpass".into(),
                "3400".into(),
            ]);
            ops.push("telephone band".into());
        }
        _ => {}
    }
    let mut audio = if sox_effects.is_empty() {
        clip.audio.clone()
    } else {
        let inp = work.join(format!("{id}_in.wav"));
        let out = work.join(format!("{id}_out.wav"));
        write_wav(&inp, &clip.audio)?;
        // `-R`: sox's dither is random unless told to repeat, which made
        // two builds of one seed differ in every augmented copy.
        let status = Command::new("sox")
            .arg("-R")
            .arg(&inp)
            .arg("-r")
            .arg("16000")
            .arg(&out)
            .args(&sox_effects)
            .output()
            .map_err(|e| format!("sox (Debian package `sox`) could not run: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "sox failed: {}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        let (a, _) = load_mono_16k(&out).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&inp);
        let _ = std::fs::remove_file(&out);
        a
    };
    // Reverb tails lengthen the clip: keep the speed-scaled length.
    let target_len = (clip.audio.len() as f64 / speed).round() as usize;
    audio.resize(target_len.max(1), 0.0);
    let gain_db: f32 = rng.random_range(-6.0..=6.0);
    let snr_db: f32 = rng.random_range(10.0..=35.0);
    let rms = (audio.iter().map(|v| v * v).sum::<f32>() / audio.len() as f32)
        .sqrt()
        .max(1e-6);
    let noise_rms = rms / 10f32.powf(snr_db / 20.0);
    let g = 10f32.powf(gain_db / 20.0);
    for s in &mut audio {
        let n: f32 = rng.random_range(-1.0..1.0) * noise_rms * 3f32.sqrt();
        *s = ((*s + n) * g).clamp(-1.0, 1.0);
    }
    ops.push(format!(
        "gain {gain_db:+.1} dB, white noise at {snr_db:.0} dB SNR"
    ));
    let spf = 16_000 / cfg.fps as usize;
    let n = audio.len().div_ceil(spf);
    // Source label frame f sits at (f + 0.5) / fps; resample_curves expects
    // frame k at k / src_fps, so shift by half a frame via the time scale.
    let fps = cfg.fps as f64;
    let frames: Vec<[f32; BLENDSHAPE_COUNT]> = (0..n)
        .map(|f| {
            let t_src = (f as f64 + 0.5) / fps * speed; // seconds in the source clip
            let k = t_src * fps - 0.5;
            let i = k.floor().max(0.0) as usize;
            if i + 1 >= clip.frames.len() {
                return clip.frames[clip.frames.len().saturating_sub(1).min(i)];
            }
            let a = (k - i as f64).clamp(0.0, 1.0) as f32;
            std::array::from_fn(|c| clip.frames[i][c] * (1.0 - a) + clip.frames[i + 1][c] * a)
        })
        .collect();
    let phones = clip.phones.as_ref().map(|ps| {
        ps.iter()
            .map(|p| Phone {
                phone: p.phone.clone(),
                start: p.start / speed,
                end: p.end / speed,
            })
            .collect()
    });
    let mut meta = clip.meta.clone();
    meta.id = id;
    meta.augmentation = Some(ops.join(", "));
    meta.augmented_from = Some(clip.meta.id.clone());
    meta.duration_secs = audio.len() as f64 / 16_000.0;
    meta.frames = n;
    Ok(Clip {
        meta,
        audio,
        frames,
        phones,
    })
}
