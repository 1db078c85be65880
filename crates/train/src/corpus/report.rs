//! The corpus report: labeler vs animator on FACEGOOD, per-source summary, `report.md`.

use super::*;

/// The phonetic labeler's jawOpen against the animator's on FACEGOOD, with
/// the loudness baseline (log-RMS vs jawOpen).
pub(super) fn labeler_vs_animator(
    cfg: &CorpusConfig,
    labeler: &PhoneticLabeler,
    map: &talking_head_core::rig::RetargetMap,
) -> Vec<(String, bool, f32, f32)> {
    let dir = cfg.data_dir.join("facegood");
    let tuned = ["1114_2_01", "1114_2_02", "1114_2_03"];
    let Ok(ids) = facegood::list_clips(&dir) else {
        return Vec::new();
    };
    let jaw = Blendshape::JawOpen.index();
    let mut out = Vec::new();
    for id in ids.iter().take(cfg.limit_per_source.unwrap_or(usize::MAX)) {
        let Ok(clip) = facegood::load_clip(&dir, id, map) else {
            continue;
        };
        let mut clip = clip;
        if let Some(max) = cfg.max_clip_secs {
            clip.audio_16k.truncate((max * 16_000.0) as usize);
            clip.arkit.truncate((max * facegood::FACEGOOD_FPS) as usize);
        }
        // Reuse the phones the build computed for this audio.
        let cached = read_phones_tsv(
            &cfg.out_dir
                .join("clips")
                .join(format!("facegood_audio_{id}.phones.tsv")),
        )
        .map(|v| {
            v.into_iter()
                .map(|(p, a, b)| Phone::new(p, a, b))
                .collect::<Vec<_>>()
        });
        let phones = match cached {
            Some(p) if !p.is_empty() => p,
            _ => match sphinx::allphone(&clip.audio_16k) {
                Ok(p) => p,
                Err(_) => continue,
            },
        };
        let n = clip.arkit.len();
        // FACEGOOD frame k is at k / 30 s: label frame starts here.
        let lab = labeler.label(&clip.audio_16k, &phones, n, facegood::FACEGOOD_FPS);
        let a: Vec<f32> = clip.arkit.iter().map(|f| f[jaw]).collect();
        let b: Vec<f32> = lab.iter().map(|f| f[jaw]).collect();
        let rms = facegood::frame_log_rms(&clip.audio_16k, facegood::FACEGOOD_FPS, n);
        out.push((
            id.clone(),
            !tuned.contains(&id.as_str()),
            facegood::pearson(&b, &a),
            facegood::pearson(&rms, &a),
        ));
    }
    out
}

pub(super) fn summarize(m: &CorpusManifest, dir: &Path) -> Result<CorpusReport, CorpusError> {
    let mut r = CorpusReport::default();
    let h = |s: f64| s / 3600.0;
    let mut speakers_split: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    let mut langs = std::collections::BTreeSet::new();
    for c in &m.clips {
        r.hours_total += h(c.duration_secs);
        *r.hours_by_style.entry(c.style.clone()).or_default() += h(c.duration_secs);
        let dom = (0..EMOTION_COUNT)
            .max_by(|&a, &b| c.emotion[a].total_cmp(&c.emotion[b]))
            .unwrap_or(0);
        *r.hours_by_emotion
            .entry(EMOTIONS[dom].to_string())
            .or_default() += h(c.duration_secs);
        *r.hours_by_split
            .entry(format!("{:?}", c.split).to_lowercase())
            .or_default() += h(c.duration_secs);
        let e = speakers_split.entry(&c.speaker).or_default();
        match c.split {
            Split::Train => e.0 = true,
            Split::Val => e.1 = true,
        }
        // FACEGOOD's audio appears twice (animator and phonetic labels):
        // count the audio once.
        if c.augmentation.is_none() && !c.id.starts_with("facegood_audio_") {
            r.hours_original += h(c.duration_secs);
            *r.hours_by_source.entry(c.source.clone()).or_default() += h(c.duration_secs);
            *r.hours_by_language.entry(c.language.clone()).or_default() += h(c.duration_secs);
            langs.insert(c.language.clone());
        }
    }
    r.voices = speakers_split.len();
    r.languages = langs.len();
    r.speakers_in_both_splits = speakers_split
        .iter()
        .filter(|(_, (t, v))| *t && *v)
        .map(|(s, _)| s.to_string())
        .collect();
    // Label statistics over original clips.
    let mut sums = [0f64; BLENDSHAPE_COUNT];
    let mut n = 0usize;
    let mut closed = 0usize;
    for c in m.clips.iter().filter(|c| c.augmentation.is_none()) {
        let p = dir.join("clips").join(format!("{}.csv", c.id));
        let take = LiveLinkFaceTake::read_file(&p)
            .map_err(|e| CorpusError::Format(p.clone(), e.to_string()))?;
        for f in &take.frames {
            for (s, w) in sums.iter_mut().zip(f.blendshapes) {
                *s += w as f64;
            }
            if f.blendshapes[Blendshape::MouthClose.index()] > 0.3
                && f.blendshapes[Blendshape::JawOpen.index()] < 0.1
            {
                closed += 1;
            }
            n += 1;
        }
    }
    for (i, s) in sums.iter().enumerate() {
        r.channel_mean.insert(
            talking_head_core::rig::ARKIT_BLENDSHAPES[i].to_string(),
            (s / n.max(1) as f64) as f32,
        );
    }
    r.closure_fraction = closed as f32 / n.max(1) as f32;
    Ok(r)
}

pub(super) fn table(title: &str, m: &BTreeMap<String, f64>) -> String {
    let mut s = format!("\n### {title}\n\n| | hours |\n|---|---|\n");
    for (k, v) in m {
        s.push_str(&format!("| {k} | {v:.2} |\n"));
    }
    s
}

pub(super) fn report_markdown(r: &CorpusReport, m: &CorpusManifest) -> String {
    let mut s = String::from("# Corpus report\n\n");
    s.push_str(&format!(
        "{} clips, {:.2} h in total ({:.2} h of distinct original audio; the rest are augmented copies and FACEGOOD's audio with a second, phonetic label track), {} voices, {} languages, labels at {} fps, seed {}.\n",
        m.clips.len(),
        r.hours_total,
        r.hours_original,
        r.voices,
        r.languages,
        m.fps,
        m.seed
    ));
    s.push_str(&format!(
        "\nSpeakers in both splits: {} ({}). Frames with closed lips: {:.1} %.\n",
        r.speakers_in_both_splits.len(),
        if r.speakers_in_both_splits.is_empty() {
            "none".to_string()
        } else {
            r.speakers_in_both_splits.join(", ")
        },
        100.0 * r.closure_fraction
    ));
    s.push_str(&table(
        "Hours by source (original audio)",
        &r.hours_by_source,
    ));
    s.push_str(&table(
        "Hours by language (original audio)",
        &r.hours_by_language,
    ));
    s.push_str(&table("Hours by style", &r.hours_by_style));
    s.push_str(&table("Hours by dominant emotion", &r.hours_by_emotion));
    s.push_str(&table("Hours by split", &r.hours_by_split));
    s.push_str("\n### Phonetic labeler vs the FACEGOOD animator (jawOpen Pearson r)\n\n| clip | held out from tuning | labeler r | loudness baseline r |\n|---|---|---|---|\n");
    for (id, held, a, b) in &r.labeler_facegood {
        s.push_str(&format!(
            "| {id} | {} | {a:.3} | {b:.3} |\n",
            if *held { "yes" } else { "no" }
        ));
    }
    s.push_str("\n### Mean label per channel\n\n| channel | mean |\n|---|---|\n");
    for (k, v) in &r.channel_mean {
        s.push_str(&format!("| {k} | {v:.3} |\n"));
    }
    if !r.failures.is_empty() {
        s.push_str("\n### Failed clips\n\n");
        for (id, e) in &r.failures {
            s.push_str(&format!("- {id}: {e}\n"));
        }
    }
    s
}
