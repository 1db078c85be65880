//! The FACEGOOD-Audio2Face corpus (`../shared/data/facegood`) loads and its
//! ARKit retarget is plausible: frame counts match the audio, weights are in
//! range, jaw opening follows loudness, lip closures exist, the upper face is
//! untouched. Skipped (with a note) when the data directory is absent.

use std::path::Path;
use std::sync::OnceLock;

use talking_head_core::rig::arkit::{ARKIT_BLENDSHAPES, Blendshape, FaceRegion};
use talking_head_train::facegood::{
    FACEGOOD_FPS, FacegoodClip, default_retarget_map, frame_log_rms, list_clips, load_clip, pearson,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/facegood");

/// All clips, loaded once and shared by the tests; `None` if the data is absent.
fn corpus() -> Option<&'static [FacegoodClip]> {
    static CLIPS: OnceLock<Option<Vec<FacegoodClip>>> = OnceLock::new();
    CLIPS
        .get_or_init(|| {
            let dir = Path::new(DATA);
            if !dir.join("labels").is_dir() || !dir.join("wav").is_dir() {
                eprintln!("note: {DATA} not found; skipping the FACEGOOD corpus tests");
                return None;
            }
            let map = default_retarget_map().expect("shipped map parses");
            let ids = list_clips(dir).expect("list clips");
            assert!(!ids.is_empty(), "no clips in {DATA}");
            Some(
                ids.iter()
                    .map(|id| load_clip(dir, id, &map).unwrap_or_else(|e| panic!("{e}")))
                    .collect(),
            )
        })
        .as_deref()
}

fn at(frame: &[f32; 52], b: Blendshape) -> f32 {
    frame[b.index()]
}

#[test]
fn frame_counts_and_ranges() {
    let Some(clips) = corpus() else { return };
    println!("{} clips", clips.len());
    for c in clips {
        let audio_frames = c.audio_16k.len() as f64 * FACEGOOD_FPS / 16_000.0;
        println!(
            "{}: {} frames, audio {:.2} frames ({:.1} s), {} channels",
            c.id,
            c.frames(),
            audio_frames,
            c.audio_16k.len() as f64 / 16_000.0,
            c.channels.len()
        );
        assert_eq!(c.channels.len(), 116, "{}", c.id);
        assert_eq!(c.raw.len(), c.arkit.len(), "{}", c.id);
        assert!(c.raw.iter().all(|r| r.len() == c.channels.len()));
        // The README promises agreement within one frame.
        assert!(
            (c.frames() as f64 - audio_frames).abs() <= 1.0,
            "{}: {} vs {audio_frames}",
            c.id,
            c.frames()
        );
        for (f, frame) in c.arkit.iter().enumerate() {
            for (j, &v) in frame.iter().enumerate() {
                assert!(
                    (0.0..=1.0).contains(&v),
                    "{} frame {f} {} = {v}",
                    c.id,
                    ARKIT_BLENDSHAPES[j]
                );
            }
        }
        // The clip is animated at all.
        let max_jaw = c
            .arkit
            .iter()
            .map(|f| at(f, Blendshape::JawOpen))
            .fold(0.0f32, f32::max);
        assert!(max_jaw > 0.3, "{}: max jawOpen {max_jaw}", c.id);
    }
}

#[test]
fn jaw_open_follows_loudness_at_lag_zero() {
    let Some(clips) = corpus() else { return };
    let mut all_l = Vec::new();
    let mut all_j = Vec::new();
    for c in clips {
        let loud = frame_log_rms(&c.audio_16k, FACEGOOD_FPS, c.frames());
        let jaw: Vec<f32> = c.arkit.iter().map(|f| at(f, Blendshape::JawOpen)).collect();
        let r0 = pearson(&loud, &jaw);
        // Best lag within ±5 frames (jaw[i + lag] against loud[i]).
        let lagged = |lag: isize| {
            let (l, j) = if lag >= 0 {
                (&loud[..loud.len() - lag as usize], &jaw[lag as usize..])
            } else {
                (
                    &loud[(-lag) as usize..],
                    &jaw[..jaw.len() - (-lag) as usize],
                )
            };
            pearson(l, j)
        };
        let (best_lag, best_r) = (-5isize..=5)
            .map(|lag| (lag, lagged(lag)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        println!(
            "{}: r(log-RMS, jawOpen) at lag 0 = {r0:.3}; best lag {best_lag:+} frames (r = {best_r:.3})",
            c.id
        );
        assert!(r0 > 0.3, "{}: r = {r0}", c.id);
        assert!(best_lag.abs() <= 2, "{}: best lag {best_lag}", c.id);
        all_l.extend(loud);
        all_j.extend(jaw);
    }
    println!("pooled r = {:.3}", pearson(&all_l, &all_j));
}

#[test]
fn lip_closures_exist() {
    let Some(clips) = corpus() else { return };
    let mut press_closures = 0usize;
    for c in clips {
        // Lips held shut (closed, pressed or rolled in) with the jaw nearly shut.
        let closure = |f: &[f32; 52]| {
            [
                Blendshape::MouthClose,
                Blendshape::MouthPressLeft,
                Blendshape::MouthPressRight,
                Blendshape::MouthRollLower,
                Blendshape::MouthRollUpper,
            ]
            .iter()
            .map(|&b| at(f, b))
            .fold(0.0f32, f32::max)
        };
        let n = c
            .arkit
            .iter()
            .filter(|f| at(f, Blendshape::JawOpen) < 0.1 && closure(f) > 0.2)
            .count();
        let np = c
            .arkit
            .iter()
            .filter(|f| {
                let close_or_press = at(f, Blendshape::MouthClose)
                    .max(at(f, Blendshape::MouthPressLeft))
                    .max(at(f, Blendshape::MouthPressRight));
                at(f, Blendshape::JawOpen) < 0.1 && close_or_press > 0.3
            })
            .count();
        println!(
            "{}: {n} frames of lip closure (close/press/roll > 0.2, jawOpen < 0.1), \
             {np} of them mouthClose/mouthPress > 0.3",
            c.id
        );
        assert!(n > 0, "{}: no lip closure", c.id);
        press_closures += np;
    }
    // Only some sessions key mouth_press (the others roll the lips in).
    assert!(press_closures >= 10, "{press_closures} press closures");
}

#[test]
fn upper_face_is_zero() {
    let Some(clips) = corpus() else { return };
    let upper: Vec<usize> = FaceRegion::Eyes
        .channels()
        .into_iter()
        .chain(FaceRegion::Brows.channels())
        .collect();
    for c in clips {
        for (f, frame) in c.arkit.iter().enumerate() {
            for &j in &upper {
                assert_eq!(frame[j], 0.0, "{} frame {f} {}", c.id, ARKIT_BLENDSHAPES[j]);
            }
        }
    }
}

#[test]
fn rounded_vowels_get_lip_rounding() {
    let Some(clips) = corpus() else { return };
    let mut n = 0usize;
    for c in clips {
        let oh = c.channel_index("mouth_oh_c").expect("mouth_oh_c");
        let oo = c.channel_index("mouth_oo_c").expect("mouth_oo_c");
        for (raw, f) in c.raw.iter().zip(&c.arkit) {
            if raw[oh] > 0.3 || raw[oo] > 0.3 {
                n += 1;
                let rounding = at(f, Blendshape::MouthFunnel).max(at(f, Blendshape::MouthPucker));
                assert!(rounding > 0.15, "{}: oh {} oo {}", c.id, raw[oh], raw[oo]);
            }
        }
    }
    println!("{n} frames with mouth_oh_c or mouth_oo_c > 0.3, all rounded");
    assert!(n > 0);
}
