//! The corpus builder end to end on a tiny subset of the shared data (one
//! clip per source, 6-second cuts, a few synthesised clips).

use std::path::PathBuf;

use talking_head_core::rig::{Blendshape, LiveLinkFaceTake};
use talking_head_train::corpus::{CorpusConfig, build};
use talking_head_train::manifest::{CorpusManifest, Split};

#[test]
fn tiny_corpus_builds_end_to_end() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../../../shared/data");
    if !data.join("facegood").exists() {
        eprintln!("shared data not found at {}: skipped", data.display());
        return;
    }
    if !talking_head_train::sphinx::is_available() {
        eprintln!("pocketsphinx not installed: skipped");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut cfg = CorpusConfig::new(
        data,
        root.join("../../assets/corpus/texts"),
        out.path().to_path_buf(),
    );
    cfg.limit_per_source = Some(1);
    cfg.tts_minutes = 0.4;
    cfg.max_clip_secs = Some(6.0);
    cfg.seed = 3;
    cfg.flite_female_minutes = 0.3;
    let report = build(&cfg, 2, |_, _| {}).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let m = CorpusManifest::load(out.path()).unwrap();
    let sources: std::collections::BTreeSet<_> =
        m.clips.iter().map(|c| c.source.as_str()).collect();
    for s in [
        "facegood",
        "librispeech",
        "ljspeech",
        "multilingual",
        "espeak",
    ] {
        assert!(sources.contains(s), "no {s} clip: {sources:?}");
    }
    assert!(
        report.speakers_in_both_splits.is_empty(),
        "{:?}",
        report.speakers_in_both_splits
    );
    assert!(m.clips.iter().any(|c| c.augmentation.is_some()));
    assert!(
        m.clips
            .iter()
            .all(|c| c.augmentation.is_none() || c.split == Split::Train)
    );
    assert!(out.path().join("report.md").exists());
    for c in &m.clips {
        let base = out.path().join("clips").join(&c.id);
        let take = LiveLinkFaceTake::read_file(format!("{}.csv", base.display())).unwrap();
        assert_eq!(take.frames.len(), c.frames, "{}", c.id);
        assert!(
            (c.frames as f64 - c.duration_secs * 50.0).abs() <= 1.0,
            "{}",
            c.id
        );
        let w: Vec<[f32; 52]> = take.frames.iter().map(|f| f.blendshapes).collect();
        assert!(
            w.iter().flatten().all(|v| (0.0..=1.0).contains(v)),
            "{}",
            c.id
        );
        // Labels are neutral outside the lower face: no emotion offsets and
        // no upper-face layer are baked in (emotion is applied when batches
        // are drawn, blinks and gaze at run time), so a neutral face rests.
        let mouth: std::collections::HashSet<usize> = talking_head_core::rig::MOUTH_CHANNELS
            .iter()
            .copied()
            .collect();
        let upper_max = w
            .iter()
            .flat_map(|f| (0..52).filter(|k| !mouth.contains(k)).map(move |k| f[k]))
            .fold(0f32, f32::max);
        assert!(upper_max < 1e-6, "{}: upper face {upper_max}", c.id);
        // The lower face moves.
        let jaw_motion: f32 = w
            .windows(2)
            .map(|p| (p[1][Blendshape::JawOpen.index()] - p[0][Blendshape::JawOpen.index()]).abs())
            .sum();
        assert!(jaw_motion > 0.0, "{}: frozen jaw", c.id);
        assert!(std::path::Path::new(&format!("{}.wav", base.display())).exists());
    }
    // Female-range flite speech keeps flite's exact phones, and they span
    // the converted audio (flite's diphone voices report their final pause
    // ~0.1 s past the audio's end, converted or not).
    let female: Vec<_> = m
        .clips
        .iter()
        .filter(|c| c.speaker.ends_with("+female") && c.augmentation.is_none())
        .collect();
    assert!(!female.is_empty(), "no converted flite clip");
    for c in female {
        assert_eq!(c.labels, "phonetic-exact", "{}", c.id);
        let tsv = std::fs::read_to_string(
            out.path()
                .join("clips")
                .join(format!("{}.phones.tsv", c.id)),
        )
        .unwrap();
        let end: f64 = tsv
            .lines()
            .last()
            .and_then(|l| l.split('\t').nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(
            (end - c.duration_secs).abs() < 0.15,
            "{}: phones end at {end} s, audio {} s",
            c.id,
            c.duration_secs
        );
    }
    // Real speech is neutral; emotional clips carry non-neutral weights.
    assert!(
        m.clips
            .iter()
            .filter(|c| c.source != "espeak" && c.source != "flite")
            .all(|c| c.emotion[0] == 1.0)
    );
}

/// `facegood_retarget` names a retarget map file: the shipped one loads,
/// a missing or malformed file is `CorpusError::InvalidConfig`, and `build`
/// refuses it before any work.
#[test]
fn facegood_retarget_file_is_loaded_or_refused() {
    use talking_head_train::corpus::{CorpusError, facegood_retarget_map};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CorpusConfig::new(
        dir.path().join("data"),
        dir.path().join("texts"),
        dir.path().join("out"),
    );
    let shipped = facegood_retarget_map(&cfg).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    cfg.facegood_retarget = Some(root.join("assets/retarget/facegood_to_arkit.json"));
    let from_file = facegood_retarget_map(&cfg).unwrap();
    assert_eq!(from_file.rules.len(), shipped.rules.len());
    for bad in ["missing.json", "garbage.json"] {
        let path = dir.path().join(bad);
        if bad == "garbage.json" {
            std::fs::write(&path, "{ not json").unwrap();
        }
        cfg.facegood_retarget = Some(path);
        let err = facegood_retarget_map(&cfg).unwrap_err();
        assert!(matches!(err, CorpusError::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains(bad), "{err}");
        let err = build(&cfg, 1, |_, _| {}).unwrap_err();
        assert!(matches!(err, CorpusError::InvalidConfig(_)), "{err}");
    }
    assert!(!dir.path().join("out").exists(), "nothing written");
}

/// `facegood_val` must name FACEGOOD recordings: a typo is
/// `CorpusError::InvalidConfig` naming it, not a silent all-train split.
#[test]
fn facegood_val_names_known_recordings() {
    use talking_head_train::corpus::CorpusError;
    let dir = tempfile::tempdir().unwrap();
    let fg = dir.path().join("data/facegood");
    for (sub, ext) in [("wav", "wav"), ("labels", "csv")] {
        std::fs::create_dir_all(fg.join(sub)).unwrap();
        std::fs::write(fg.join(sub).join(format!("1114_2_05.{ext}")), b"").unwrap();
    }
    let mut cfg = CorpusConfig::new(
        dir.path().join("data"),
        dir.path().join("texts"),
        dir.path().join("out"),
    );
    cfg.facegood_val = vec!["1114_2_5".into()];
    let err = build(&cfg, 1, |_, _| {}).unwrap_err();
    assert!(matches!(err, CorpusError::InvalidConfig(_)), "{err}");
    assert!(
        err.to_string().contains("`1114_2_5`") && err.to_string().contains("1114_2_05"),
        "{err}"
    );
}

/// The real recordings `eval` measures emotion on are exactly those whose
/// speakers the corpus split holds out: LibriSpeech by reader, multilingual
/// clips each their own speaker, other files and folders ignored.
#[test]
fn held_out_real_speech_follows_the_corpus_speaker_split() {
    use talking_head_train::corpus::{DEFAULT_VAL_FRACTION, held_out_real_speech, speaker_split};
    let dir = std::env::temp_dir().join(format!("th-heldout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let libri = dir.join("speech/librispeech");
    let multi = dir.join("speech/multilingual");
    std::fs::create_dir_all(&libri).unwrap();
    std::fs::create_dir_all(&multi).unwrap();
    for spk in 0..200 {
        for utt in 0..2 {
            std::fs::write(libri.join(format!("{spk}-100-{utt:04}.flac")), b"").unwrap();
        }
    }
    std::fs::write(libri.join("7-100-0000.txt"), b"").unwrap();
    for k in 0..40 {
        std::fs::write(multi.join(format!("clip{k}.wav")), b"").unwrap();
    }
    let got = held_out_real_speech(&dir, 0, DEFAULT_VAL_FRACTION);
    let want_libri: Vec<u32> = (0..200)
        .filter(|s| {
            speaker_split(&format!("librispeech:{s}"), 0, DEFAULT_VAL_FRACTION) == Split::Val
        })
        .collect();
    let want_multi = (0..40)
        .filter(|k| {
            speaker_split(&format!("multilingual:clip{k}"), 0, DEFAULT_VAL_FRACTION) == Split::Val
        })
        .count();
    // About a tenth held out, both utterances of each held-out reader.
    assert!((8..=35).contains(&want_libri.len()), "{}", want_libri.len());
    assert_eq!(got.len(), 2 * want_libri.len() + want_multi);
    for (spk, p) in &got {
        assert_eq!(
            speaker_split(spk, 0, DEFAULT_VAL_FRACTION),
            Split::Val,
            "{spk}"
        );
        assert!(
            p.extension().is_some_and(|e| e == "flac" || e == "wav"),
            "{}",
            p.display()
        );
    }
    // Another seed holds out other speakers; a missing folder gives nothing.
    assert_ne!(held_out_real_speech(&dir, 1, DEFAULT_VAL_FRACTION), got);
    assert!(held_out_real_speech(&dir.join("absent"), 0, DEFAULT_VAL_FRACTION).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
