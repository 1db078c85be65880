//! Integration tests for `bevy_talking_head::rig`: ARKit names and order,
//! Live Link Face CSV (real captures + synthetic bad input), retarget maps.

use std::path::{Path, PathBuf};

use bevy_talking_head::rig::{
    ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, Blendshape, Combine, FaceRegion, LIVE_LINK_FACE_NAMES,
    LIVE_LINK_FACE_ROTATION_NAMES, LiveLinkFaceError, LiveLinkFaceLayout, LiveLinkFaceTake,
    MOUTH_CHANNELS, MOUTH_MASK, RetargetError, RetargetMap, RetargetRule, Timecode,
    UPPER_FACE_CHANNELS, WeightedSource, blendshape_index, sanitize_weights,
};

const CAPTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/capture/livelinkface"
);
const VISEME_MAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/mappings/oculus_viseme_to_arkit.json"
);

/// The Live Link Face header order, verbatim from an export.
const LLF_ORDER: &str = "EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut";

// ---------------------------------------------------------------- ARKit ---

#[test]
fn arkit_order_matches_live_link_face() {
    let llf: Vec<&str> = LLF_ORDER.split(',').collect();
    assert_eq!(llf.len(), BLENDSHAPE_COUNT);
    assert_eq!(LIVE_LINK_FACE_NAMES.as_slice(), llf.as_slice());
    for (i, name) in llf.iter().enumerate() {
        assert_eq!(blendshape_index(name), Some(i));
        assert!(ARKIT_BLENDSHAPES[i].eq_ignore_ascii_case(name));
        assert!(ARKIT_BLENDSHAPES[i].starts_with(|c: char| c.is_ascii_lowercase()));
    }
    assert_eq!(ARKIT_BLENDSHAPES[0], "eyeBlinkLeft");
    assert_eq!(ARKIT_BLENDSHAPES[17], "jawOpen");
    assert_eq!(ARKIT_BLENDSHAPES[51], "tongueOut");
    assert_eq!(Blendshape::JawOpen.index(), 17);
    assert_eq!(Blendshape::JawOpen as usize, 17);
    assert_eq!(Blendshape::JawOpen.name(), "jawOpen");
    assert_eq!(Blendshape::JawOpen.live_link_name(), "JawOpen");
    assert_eq!(Blendshape::TongueOut.to_string(), "tongueOut");
    assert_eq!(Blendshape::ALL.len(), 52);
}

#[test]
fn arkit_name_lookup() {
    for name in ["jawOpen", "JawOpen", "JAWOPEN", "jawopen", " jawOpen "] {
        assert_eq!(
            Blendshape::from_name(name),
            Some(Blendshape::JawOpen),
            "{name}"
        );
    }
    assert_eq!(Blendshape::from_name("mouthSmile_L"), None);
    assert_eq!(Blendshape::from_name(""), None);
    assert_eq!(blendshape_index("viseme_aa"), None);
    assert_eq!(blendshape_index("browInnerUp"), Some(43));
}

#[test]
fn arkit_regions() {
    let count = |r: FaceRegion| r.channels().len();
    assert_eq!(count(FaceRegion::Eyes), 14);
    assert_eq!(count(FaceRegion::Brows), 5);
    assert_eq!(count(FaceRegion::Jaw), 4);
    assert_eq!(count(FaceRegion::Mouth), 23);
    assert_eq!(count(FaceRegion::Cheeks), 3);
    assert_eq!(count(FaceRegion::Nose), 2);
    assert_eq!(count(FaceRegion::Tongue), 1);
    assert_eq!(MOUTH_CHANNELS.len(), 31);
    assert_eq!(UPPER_FACE_CHANNELS.len(), 21);
    assert_eq!(MOUTH_CHANNELS[0], Blendshape::JawForward.index());
    assert!(MOUTH_CHANNELS.contains(&Blendshape::JawOpen.index()));
    assert!(MOUTH_CHANNELS.contains(&Blendshape::CheekPuff.index()));
    assert!(MOUTH_CHANNELS.contains(&Blendshape::TongueOut.index()));
    assert!(UPPER_FACE_CHANNELS.contains(&Blendshape::EyeBlinkLeft.index()));
    assert!(UPPER_FACE_CHANNELS.contains(&Blendshape::BrowInnerUp.index()));
    assert!(UPPER_FACE_CHANNELS.contains(&Blendshape::NoseSneerRight.index()));
    for b in Blendshape::ALL {
        assert_eq!(MOUTH_MASK[b.index()], b.is_lower_face());
        assert_eq!(MOUTH_CHANNELS.contains(&b.index()), b.is_lower_face());
        assert_ne!(
            MOUTH_CHANNELS.contains(&b.index()),
            UPPER_FACE_CHANNELS.contains(&b.index())
        );
    }
    assert_eq!(Blendshape::MouthClose.region(), FaceRegion::Mouth);
    assert_eq!(Blendshape::BrowDownLeft.region(), FaceRegion::Brows);
    assert!(MOUTH_CHANNELS.windows(2).all(|w| w[0] < w[1]));
    assert!(UPPER_FACE_CHANNELS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn sanitize() {
    let mut w = [0.5f32; 52];
    w[0] = f32::NAN;
    w[1] = -0.2;
    w[2] = 1.7;
    w[3] = f32::INFINITY;
    w[4] = f32::NEG_INFINITY;
    sanitize_weights(&mut w);
    assert_eq!(&w[..6], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.5]);
}

// ------------------------------------------------------ Live Link Face ---

fn capture_files() -> Option<Vec<PathBuf>> {
    let dir = Path::new(CAPTURE_DIR);
    let Ok(rd) = std::fs::read_dir(dir) else {
        println!("note: {CAPTURE_DIR} not found; skipping real-capture tests");
        return None;
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .collect();
    files.sort();
    Some(files)
}

fn assert_takes_close(a: &LiveLinkFaceTake, b: &LiveLinkFaceTake, tol: f32) {
    assert_eq!(a.frames.len(), b.frames.len());
    assert_eq!(a.has_rotations, b.has_rotations);
    assert_eq!(a.untracked, b.untracked);
    for (fa, fb) in a.frames.iter().zip(&b.frames) {
        assert_eq!(fa.timecode, fb.timecode);
        for (x, y) in fa.blendshapes.iter().zip(&fb.blendshapes) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
        for (ra, rb) in [
            (fa.head, fb.head),
            (fa.left_eye, fb.left_eye),
            (fa.right_eye, fb.right_eye),
        ] {
            assert_eq!(ra.is_some(), rb.is_some());
            if let (Some(ra), Some(rb)) = (ra, rb) {
                for (x, y) in ra.iter().zip(&rb) {
                    assert!((x - y).abs() <= tol, "{x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn real_captures_parse_and_round_trip() {
    let Some(files) = capture_files() else { return };
    assert!(!files.is_empty(), "no CSV files in {CAPTURE_DIR}");
    let mut rates_seen = Vec::new();
    for path in &files {
        let take = LiveLinkFaceTake::read_file(path).unwrap_or_else(|e| panic!("{e}"));
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!take.frames.is_empty(), "{name}: no frames");
        assert!(take.has_rotations, "{name}: no rotation columns");
        assert!(
            take.frames
                .iter()
                .all(|f| f.head.is_some() && f.left_eye.is_some())
        );

        let fps = take.estimate_fps().expect("fps");
        let tc_rate = take.timecode_rate().expect("timecode rate");
        assert!(fps == 30.0 || fps == 60.0, "{name}: estimated fps {fps}");
        rates_seen.push(fps);

        let values: Vec<f32> = take.frames.iter().flat_map(|f| f.blendshapes).collect();
        let inside = values.iter().filter(|v| (0.0..=1.0).contains(*v)).count();
        let frac_inside = inside as f64 / values.len() as f64;
        assert!(
            frac_inside > 0.95,
            "{name}: only {frac_inside:.3} of weights in [0,1]"
        );
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);

        let times = take.frame_times(f64::from(tc_rate));
        assert!(
            times.windows(2).all(|w| w[1] >= w[0]),
            "{name}: time goes backwards"
        );
        let duration = times.last().copied().unwrap_or(0.0);
        println!(
            "{name}: {} frames, {} untracked rows, estimated {fps} fps (timecode rate {tc_rate}), \
             {duration:.1} s, weights in [{min:.3}, {max:.3}], {:.1}% in [0,1]",
            take.frames.len(),
            take.untracked.len(),
            frac_inside * 100.0
        );

        // Round trip: read -> write -> read.
        let mut buf = Vec::new();
        take.write(&mut buf).unwrap();
        let again = LiveLinkFaceTake::read(buf.as_slice()).unwrap();
        assert_takes_close(&take, &again, 1e-6);
        // The written text is row-for-row the same shape as the original.
        let original_rows = std::fs::read_to_string(path).unwrap().lines().count();
        assert_eq!(
            String::from_utf8(buf).unwrap().lines().count(),
            original_rows
        );
    }
    println!("estimated fps per file: {rates_seen:?}");
    if files.len() >= 7 {
        assert!(rates_seen.contains(&30.0) && rates_seen.contains(&60.0));
    }
}

#[test]
fn real_capture_file_round_trip_via_disk() {
    let Some(files) = capture_files() else { return };
    let Some(path) = files.first() else { return };
    let take = LiveLinkFaceTake::read_file(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("take.csv");
    take.write_file(&out).unwrap();
    let again = LiveLinkFaceTake::read_file(&out).unwrap();
    assert_takes_close(&take, &again, 1e-6);
}

fn header(rotations: bool) -> String {
    let mut h = format!("Timecode,BlendShapeCount,{LLF_ORDER}");
    if rotations {
        h.push(',');
        h.push_str(&LIVE_LINK_FACE_ROTATION_NAMES.join(","));
    }
    h
}

fn row(tc: &str, values: &[String]) -> String {
    format!("{tc},{},{}", values.len(), values.join(","))
}

fn values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{:.4}", i as f32 / 100.0)).collect()
}

#[test]
fn synthetic_52_columns_crlf_trailing_blank() {
    let text = format!(
        "\u{feff}{}\r\n{}\r\n{}\r\n\r\n",
        header(false),
        row("00:00:01:00.000", &values(52)),
        row("00:00:01:01.000", &values(52))
    );
    let take = LiveLinkFaceTake::read(text.as_bytes()).unwrap();
    assert_eq!(take.frames.len(), 2);
    assert!(!take.has_rotations);
    let f = &take.frames[1];
    assert_eq!(f.timecode.frame, 1);
    assert!(f.head.is_none() && f.left_eye.is_none() && f.right_eye.is_none());
    assert!((f.blendshapes[Blendshape::JawOpen.index()] - 0.17).abs() < 1e-6);
}

#[test]
fn synthetic_columns_found_by_name_in_any_order() {
    // Reverse every column and lower-case the header: values must still land right.
    let mut names: Vec<String> = header(true).split(',').map(|s| s.to_lowercase()).collect();
    let tc = "10:00:00:05.500".to_owned();
    let mut vals: Vec<String> = vec![tc, "61".into()];
    vals.extend(values(61));
    names.reverse();
    vals.reverse();
    let text = format!("{}\n{}\n", names.join(","), vals.join(","));
    let take = LiveLinkFaceTake::read(text.as_bytes()).unwrap();
    let f = &take.frames[0];
    assert_eq!(f.timecode.to_string(), "10:00:00:05.500");
    assert!((f.blendshapes[0] - 0.0).abs() < 1e-6);
    assert!((f.blendshapes[51] - 0.51).abs() < 1e-6);
    assert_eq!(f.head, Some([0.52, 0.53, 0.54]));
    assert_eq!(f.right_eye, Some([0.58, 0.59, 0.60]));
}

#[test]
fn synthetic_untracked_rows() {
    let text = format!(
        "{}\n{}\n00:00:00:01.000,0\n{}\n",
        header(true),
        row("00:00:00:00.000", &values(61)),
        row("00:00:00:02.000", &values(61))
    );
    let take = LiveLinkFaceTake::read(text.as_bytes()).unwrap();
    assert_eq!(take.frames.len(), 2);
    assert_eq!(take.untracked.len(), 1);
    assert_eq!(take.untracked[0].frame, 1);
    let mut out = Vec::new();
    take.write(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[2], "00:00:00:01.000,0");
}

fn parse_err(text: &str) -> (usize, usize, String, String) {
    match LiveLinkFaceTake::read(text.as_bytes()) {
        Err(LiveLinkFaceError::Parse {
            line,
            column,
            column_name,
            reason,
            ..
        }) => (line, column, column_name, reason),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn synthetic_missing_column() {
    let h = header(true).replace(",JawOpen,", ",");
    let mut v = values(60);
    v.insert(0, "00:00:00:00.000".into());
    let text = format!("{h}\n{}\n", v.join(","));
    match LiveLinkFaceTake::read(text.as_bytes()) {
        Err(e @ LiveLinkFaceError::MissingColumn { .. }) => {
            let LiveLinkFaceError::MissingColumn { name, .. } = &e else {
                unreachable!()
            };
            assert_eq!(name, "JawOpen");
            assert!(e.to_string().contains("JawOpen"));
        }
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    let text = header(true).replace("Timecode,", "") + "\n";
    assert!(matches!(
        LiveLinkFaceTake::read(text.as_bytes()),
        Err(LiveLinkFaceError::MissingColumn { name, .. }) if name == "Timecode"
    ));
}

#[test]
fn synthetic_non_numeric_value() {
    let mut bad = values(61);
    bad[Blendshape::JawOpen.index()] = "abc".into();
    let text = format!(
        "{}\n{}\n{}\n",
        header(true),
        row("00:00:00:00.000", &values(61)),
        row("00:00:00:01.000", &bad)
    );
    let (line, column, name, reason) = parse_err(&text);
    assert_eq!(line, 3);
    assert_eq!(column, 2 + Blendshape::JawOpen.index() + 1);
    assert_eq!(name, "JawOpen");
    assert!(reason.contains("abc"), "{reason}");
    // Display names line and column.
    let msg = LiveLinkFaceTake::read(text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("line 3") && msg.contains("column 20") && msg.contains("JawOpen"),
        "{msg}"
    );
}

#[test]
fn synthetic_nan_and_inf() {
    for (bad_value, word) in [("NaN", "NaN"), ("nan", "NaN"), ("inf", "infinite")] {
        let mut bad = values(61);
        bad[55] = bad_value.into();
        let text = format!("{}\n\n{}\n", header(true), row("00:00:00:00.000", &bad));
        let (line, column, name, reason) = parse_err(&text);
        assert_eq!(line, 3, "blank line still counts");
        assert_eq!(column, 58);
        assert_eq!(name, "LeftEyeYaw");
        assert!(reason.contains(word), "{reason}");
    }
}

#[test]
fn synthetic_structural_errors() {
    // Short row.
    let text = format!(
        "{}\n{}\n",
        header(true),
        row("00:00:00:00.000", &values(40))
    );
    let (line, column, name, reason) = parse_err(&text);
    assert_eq!((line, column), (2, 43));
    assert_eq!(name, "MouthUpperUpRight");
    assert!(reason.contains("fields"), "{reason}");
    // Extra non-empty field.
    let mut v = values(62);
    v[61] = "1".into();
    let text = format!("{}\n{}\n", header(true), row("00:00:00:00.000", &v));
    assert_eq!(parse_err(&text).1, 64);
    // A trailing comma is fine.
    let text = format!(
        "{}\n{},\n",
        header(true),
        row("00:00:00:00.000", &values(61))
    );
    assert_eq!(
        LiveLinkFaceTake::read(text.as_bytes())
            .unwrap()
            .frames
            .len(),
        1
    );
    // Bad timecode.
    let text = format!(
        "{}\n{}\n",
        header(true),
        row("00:00:xx:00.000", &values(61))
    );
    let (line, column, name, _) = parse_err(&text);
    assert_eq!((line, column, name.as_str()), (2, 1, "Timecode"));
    // Bad count.
    let text = format!("{}\n00:00:00:00.000,-1\n", header(true));
    assert_eq!(parse_err(&text).2, "BlendShapeCount");
    // Duplicate header column.
    let text = format!("{},JawOpen\n", header(true));
    let (line, column, name, _) = parse_err(&text);
    assert_eq!((line, column, name.as_str()), (1, 64, "JawOpen"));
    // Empty input.
    assert_eq!(parse_err("").0, 1);
    assert_eq!(parse_err("\n\n").2, "");
    // Invalid UTF-8.
    let mut bytes = format!("{}\n", header(true)).into_bytes();
    bytes.extend_from_slice(b"00:00:00:00.000,61,\xff\n");
    assert!(matches!(
        LiveLinkFaceTake::read(bytes.as_slice()),
        Err(LiveLinkFaceError::Parse {
            line: 2,
            column: 3,
            ..
        })
    ));
}

#[test]
fn file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = LiveLinkFaceTake::read_file(&missing).unwrap_err();
    assert!(matches!(err, LiveLinkFaceError::Io { path: Some(ref p), .. } if *p == missing));
    assert!(err.to_string().contains("nope.csv"));

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{}\n00:00:00:00.000,61,x\n", header(true))).unwrap();
    let msg = LiveLinkFaceTake::read_file(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("bad.csv") && msg.contains("line 2") && msg.contains("column 3"),
        "{msg}"
    );
}

#[test]
fn generated_animation_round_trip() {
    let frames: Vec<[f32; 52]> = (0..95)
        .map(|i| {
            let mut w = [0.0f32; 52];
            w[Blendshape::JawOpen.index()] = (i as f32 * 0.1).sin().abs();
            w[Blendshape::EyeBlinkLeft.index()] = 1.0 / 3.0;
            w
        })
        .collect();
    let take = LiveLinkFaceTake::from_weights(&frames, 30.0, 3600.0 + 10.0).unwrap();
    assert_eq!(take.frames[0].timecode.to_string(), "01:00:10:00.000");
    assert_eq!(take.frames[31].timecode.to_string(), "01:00:11:01.000");
    assert!(!take.has_rotations);

    // Default layout: 61 columns with zero rotations.
    let mut buf = Vec::new();
    take.write(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().split(',').count(), 63);
    let first = lines.next().unwrap();
    assert!(first.starts_with("01:00:10:00.000,61,0.3333333"), "{first}");
    assert!(first.ends_with(",0.0000000000,0.0000000000"));
    let back = LiveLinkFaceTake::read(text.as_bytes()).unwrap();
    assert!(back.has_rotations);
    assert_eq!(back.frames[5].head, Some([0.0; 3]));
    assert_eq!(back.timecode_rate(), Some(30));
    assert_eq!(back.estimate_fps(), Some(30.0));
    for (a, b) in back.weights().iter().zip(&frames) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6);
        }
    }
    let t = back.frame_times(30.0);
    assert!((t[94] - 94.0 / 30.0).abs() < 1e-9);

    // 52-column layout.
    let mut buf = Vec::new();
    take.write_with_layout(&mut buf, LiveLinkFaceLayout::BlendshapesOnly)
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("01:00:10:00.000,52,")
    );
    let back = LiveLinkFaceTake::read(text.as_bytes()).unwrap();
    assert!(!back.has_rotations && back.frames[0].head.is_none());

    // 60 fps generated take.
    let take60 = LiveLinkFaceTake::from_weights(&vec![[0.5; 52]; 200], 60.0, 0.0).unwrap();
    assert_eq!(take60.estimate_fps(), Some(60.0));
    assert_eq!(take60.timecode_rate(), Some(60));
    // Short take: fallback path.
    let short = LiveLinkFaceTake::from_weights(&vec![[0.5; 52]; 20], 30.0, 0.5).unwrap();
    assert_eq!(short.timecode_rate(), Some(30));
    assert_eq!(short.estimate_fps(), Some(30.0));
    // No wrap of the frame number: the rate cannot be known.
    let tiny = LiveLinkFaceTake::from_weights(&vec![[0.5; 52]; 10], 30.0, 0.5).unwrap();
    assert_eq!(tiny.timecode_rate(), None);
    assert_eq!(tiny.estimate_fps(), None);
    assert_eq!(LiveLinkFaceTake::default().estimate_fps(), None);
}

#[test]
fn generated_animation_errors() {
    for (fps, start) in [
        (0.0, 0.0),
        (-30.0, 0.0),
        (f64::NAN, 0.0),
        (30.0, -1.0),
        (30.0, f64::INFINITY),
    ] {
        assert!(matches!(
            LiveLinkFaceTake::from_weights(&[[0.0; 52]], fps, start),
            Err(LiveLinkFaceError::InvalidTiming { .. })
        ));
    }
    let mut w = [0.0f32; 52];
    w[Blendshape::MouthClose.index()] = f32::NAN;
    let take = LiveLinkFaceTake::from_weights(&[w], 30.0, 0.0).unwrap();
    let mut buf = Vec::new();
    match take.write(&mut buf) {
        Err(LiveLinkFaceError::NonFinite {
            frame: 0,
            column: "MouthClose",
            ..
        }) => {}
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert!(buf.is_empty(), "nothing written on error");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.csv");
    assert!(take.write_file(&p).is_err());
    assert!(!p.exists(), "no file created on a value error");
}

#[test]
fn timecode_round_trip() {
    let tc: Timecode = "16:48:39:43.245".parse().unwrap();
    assert_eq!(tc.to_string(), "16:48:39:43.245");
    let secs = tc.to_seconds(60.0);
    assert!((secs - (16.0 * 3600.0 + 48.0 * 60.0 + 39.0 + 43.245 / 60.0)).abs() < 1e-6);
    let back = Timecode::from_seconds(secs, 60.0);
    assert_eq!(back.to_string(), "16:48:39:43.245");
}

// ------------------------------------------------------------ Retarget ---

fn map(rules: Vec<RetargetRule>) -> RetargetMap {
    RetargetMap {
        name: Some("test".into()),
        notes: None,
        rules,
    }
}

#[test]
fn retarget_sum_clamps_and_max_picks_larger() {
    let m = map(vec![
        RetargetRule::new(
            "sum",
            vec![WeightedSource::new("a", 1.0), WeightedSource::new("b", 0.5)],
            Combine::Sum,
        ),
        RetargetRule::new(
            "max",
            vec![WeightedSource::new("a", 0.5), WeightedSource::new("b", 1.0)],
            Combine::Max,
        ),
        RetargetRule::new("neg", vec![WeightedSource::new("a", -2.0)], Combine::Sum),
        RetargetRule::new("empty", vec![], Combine::Max),
    ]);
    let c = m
        .compile(&["a", "b"], &["sum", "max", "neg", "empty", "untouched"])
        .unwrap();
    assert_eq!(c.covered_targets(), &[0, 1, 2, 3]);
    let mut out = [9.0f32; 5];
    c.apply(&[0.8, 0.6], &mut out);
    assert_eq!(out[0], 1.0, "0.8 + 0.3 clamps to 1");
    assert!((out[1] - 0.6).abs() < 1e-7, "max(0.4, 0.6)");
    assert_eq!(out[2], 0.0, "negative clamps to 0");
    assert_eq!(out[3], 0.0);
    assert_eq!(out[4], 9.0, "uncovered target untouched");
    c.apply(&[0.2, 0.1], &mut out);
    assert!((out[0] - 0.25).abs() < 1e-7);
    assert!((out[1] - 0.1).abs() < 1e-7);
    // Short slices never panic; try_apply reports them.
    let mut short = [0.0f32; 1];
    c.apply(&[1.0], &mut short);
    assert_eq!(short[0], 1.0);
    assert!(matches!(
        c.try_apply(&[1.0], &mut short),
        Err(RetargetError::LengthMismatch {
            expected_sources: 2,
            sources: 1,
            ..
        })
    ));
    // NaN source -> 0.
    c.apply(&[f32::NAN, 0.0], &mut out);
    assert_eq!(out[0], 0.0);
}

#[test]
fn retarget_name_errors() {
    let m = map(vec![
        RetargetRule::new(
            "t1",
            vec![WeightedSource::new("x", 1.0), WeightedSource::new("a", 1.0)],
            Combine::Sum,
        ),
        RetargetRule::new("t2", vec![WeightedSource::new("y", 1.0)], Combine::Sum),
        RetargetRule::new("t3", vec![WeightedSource::new("x", 1.0)], Combine::Sum),
    ]);
    let err = m.compile(&["a"], &["t1", "t2", "t3"]).unwrap_err();
    match &err {
        RetargetError::UnknownSources { names, available } => {
            assert_eq!(names, &["x", "y"]);
            assert_eq!(*available, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`x`, `y`"), "{err}");

    let ok = map(vec![RetargetRule::new(
        "T1",
        vec![WeightedSource::new("A", 1.0)],
        Combine::Sum,
    )]);
    // Case-insensitive fallback.
    assert!(ok.compile(&["a"], &["t1"]).is_ok());
    let err = ok.compile(&["a"], &["t2"]).unwrap_err();
    assert!(matches!(err, RetargetError::UnknownTargets { ref names, .. } if names == &["T1"]));
    let (c, skipped) = ok
        .compile_skipping_missing_targets(&["a"], &["t2"])
        .unwrap();
    assert_eq!(skipped, vec!["T1".to_string()]);
    assert!(c.covered_targets().is_empty());

    let dup = map(vec![
        RetargetRule::new("jawOpen", vec![WeightedSource::new("a", 1.0)], Combine::Sum),
        RetargetRule::new("JawOpen", vec![WeightedSource::new("a", 1.0)], Combine::Sum),
    ]);
    assert!(matches!(
        dup.compile(&["a"], &ARKIT_BLENDSHAPES),
        Err(RetargetError::DuplicateTarget { ref name }) if name == "JawOpen"
    ));

    let nan = map(vec![RetargetRule::new(
        "t",
        vec![WeightedSource::new("a", f32::NAN)],
        Combine::Sum,
    )]);
    assert!(matches!(
        nan.compile(&["a"], &["t"]),
        Err(RetargetError::InvalidWeight { .. })
    ));
}

#[test]
fn retarget_identity() {
    let c = RetargetMap::identity(&ARKIT_BLENDSHAPES)
        .compile(&ARKIT_BLENDSHAPES, &LIVE_LINK_FACE_NAMES)
        .unwrap();
    assert_eq!(c.covered_targets().len(), 52);
    let src: Vec<f32> = (0..52).map(|i| i as f32 / 51.0).collect();
    let mut out = vec![0.0; 52];
    c.try_apply(&src, &mut out).unwrap();
    assert_eq!(src, out);
}

#[test]
fn retarget_json_round_trip() {
    let mut m = map(vec![
        RetargetRule::new(
            "mouthFunnel",
            vec![
                WeightedSource::new("mouth_funnel_dl", 1.0),
                WeightedSource::new("mouth_funnel_ur", 0.75),
            ],
            Combine::Max,
        ),
        RetargetRule::new(
            "jawOpen",
            vec![WeightedSource::new("mouth_stretch_c", 0.6)],
            Combine::Sum,
        ),
    ]);
    m.notes = Some("synthetic".into());
    m.rules[1].notes = Some("jaw".into());
    let json = m.to_json_string_pretty();
    assert!(json.contains("\"combine\": \"max\""), "{json}");
    assert_eq!(RetargetMap::from_json_str(&json).unwrap(), m);

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("map.json");
    m.save_json(&p).unwrap();
    assert_eq!(RetargetMap::load_json(&p).unwrap(), m);

    // Defaults: combine = sum, weight = 1, name/notes optional.
    let m2 = RetargetMap::from_json_str(r#"{"rules":[{"target":"t","sources":[{"source":"s"}]}]}"#)
        .unwrap();
    assert_eq!(m2.rules[0].combine, Combine::Sum);
    assert_eq!(m2.rules[0].sources[0].weight, 1.0);
    assert_eq!(m2.name, None);

    // Typos and malformed JSON are errors with a position.
    let err = RetargetMap::from_json_str(r#"{"rules":[{"target":"t","soruces":[]}]}"#).unwrap_err();
    assert!(err.to_string().contains("soruces"), "{err}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"rules\": [\n    { \"target\": 3 }\n  ]\n}\n").unwrap();
    let err = RetargetMap::load_json(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.json") && msg.contains("line 3"), "{msg}");
    assert!(matches!(
        RetargetMap::load_json(dir.path().join("none.json")),
        Err(RetargetError::Io { .. })
    ));
}

#[test]
fn oculus_viseme_map() {
    let Ok(text) = std::fs::read_to_string(VISEME_MAP) else {
        println!("note: {VISEME_MAP} not found; skipping");
        return;
    };
    let m = RetargetMap::from_oculus_viseme_json(&text).unwrap();
    let visemes = [
        "viseme_sil",
        "viseme_PP",
        "viseme_FF",
        "viseme_TH",
        "viseme_DD",
        "viseme_kk",
        "viseme_CH",
        "viseme_SS",
        "viseme_nn",
        "viseme_RR",
        "viseme_aa",
        "viseme_E",
        "viseme_I",
        "viseme_O",
        "viseme_U",
    ];
    // Every target is an ARKit shape, in canonical order.
    let idx: Vec<usize> = m
        .rules
        .iter()
        .map(|r| blendshape_index(&r.target).unwrap())
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]));
    let c = m.compile(&visemes, &ARKIT_BLENDSHAPES).unwrap();
    assert_eq!(c.covered_targets(), idx.as_slice());
    println!(
        "oculus viseme map: {} ARKit targets: {:?}",
        idx.len(),
        m.rules.iter().map(|r| &r.target).collect::<Vec<_>>()
    );

    let drive = |viseme: &str| {
        let mut v = [0.0f32; 15];
        v[visemes.iter().position(|n| *n == viseme).unwrap()] = 1.0;
        let mut out = [0.0f32; 52];
        c.apply(&v, &mut out);
        out
    };
    let aa = drive("viseme_aa");
    assert!((aa[Blendshape::JawOpen.index()] - 0.6).abs() < 1e-6);
    assert_eq!(aa.iter().filter(|&&x| x != 0.0).count(), 1);
    let e = drive("viseme_E");
    assert!((e[Blendshape::MouthPressLeft.index()] - 0.8).abs() < 1e-6);
    assert!((e[Blendshape::MouthDimpleRight.index()] - 1.0).abs() < 1e-6);
    assert!((e[Blendshape::JawOpen.index()] - 0.3).abs() < 1e-6);
    assert!(drive("viseme_sil").iter().all(|&x| x == 0.0));
    // Only lower-face shapes are driven by visemes.
    assert!(idx.iter().all(|&i| MOUTH_MASK[i]));

    // Round trip through the generic JSON form.
    assert_eq!(
        RetargetMap::from_json_str(&m.to_json_string_pretty()).unwrap(),
        m
    );
    // Duplicate keys are reported.
    assert!(matches!(
        RetargetMap::from_oculus_viseme_json(r#"{"viseme_aa":{"jawOpen":0.5,"jawOpen":0.6}}"#),
        Err(RetargetError::DuplicateKey { .. })
    ));
    assert!(matches!(
        RetargetMap::from_oculus_viseme_json("[1]"),
        Err(RetargetError::Json { .. })
    ));
}
