//! Renders the `demo` example headless (Xvfb + Mesa's lavapipe Vulkan) at a
//! silent and at a speaking moment and checks that the mouth region of the
//! two screenshots differs, while the (static) shoulders do not, that the
//! opening mouth darkens, that the skin is skin-toned and that the eyes
//! show (dark iris and pupil, white sclera, not skin). Also renders the
//! `vrm` example neutral and happy: the VRM `happy` preset shows at the mouth.
//!
//! `cargo test --test demo_screenshot` does not rebuild the demo binary:
//! run `cargo build --all-features --example demo` first (plain
//! `cargo test --all-features` builds it).
//!
//! Needs `xvfb-run` (package `xvfb`, plus `xauth`) and a Vulkan driver
//! (`mesa-vulkan-drivers`); the README's apt-get line installs them. The
//! demo binary is the one `cargo test` builds next to this test.
#![cfg(all(feature = "kira", feature = "egui", feature = "mic"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use bevy_talking_head::audio::AudioFormat;
use bevy_talking_head::audio::load_mono_16k;
use bevy_talking_head::model::{Sampler, TalkingHeadModel};
use bevy_talking_head::rig::Blendshape;
use bevy_talking_head::runtime::{Pcm, Session, run_to_end};

const W: usize = 1280;
const H: usize = 720;
/// The mouth in the demo's fixed screenshot camera, as pixel fractions
/// `(x0, y0, x1, y1)` of the window (found by looking at the screenshots).
const MOUTH: (f32, f32, f32, f32) = (0.31, 0.56, 0.43, 0.70);
/// The shoulders in the same camera: nothing there is animated.
const SHOULDERS: (f32, f32, f32, f32) = (0.24, 0.82, 0.34, 0.90);
/// The two eyes in the same camera (the subject's right eye first).
const EYES: [(f32, f32, f32, f32); 2] = [
    (0.3125, 0.4167, 0.3477, 0.4583),
    (0.3906, 0.4167, 0.4336, 0.4583),
];
/// A patch of cheek below the subject's left eye.
const CHEEK: (f32, f32, f32, f32) = (0.36, 0.50, 0.39, 0.53);

/// An example binary `cargo test` built next to this test.
fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/demo_screenshot-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join(name)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_demo(args: &[&str]) {
    run_example("demo", args);
}

/// Runs an example under Xvfb with `args`; panics with its stderr if it fails.
fn run_example(name: &str, args: &[&str]) {
    let demo = example_binary(name);
    assert!(
        demo.exists(),
        "{} not built (cargo test builds examples; run `cargo test --all-features`)",
        demo.display()
    );
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(&demo)
        .args(args)
        .env("BEVY_ASSET_ROOT", root())
        .env("WGPU_BACKEND", "vulkan")
        .current_dir(root())
        .output()
        .expect("xvfb-run not found: apt-get install xvfb xauth mesa-vulkan-drivers");
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn load_rgb(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.width as usize, info.height as usize),
        (W, H),
        "window size"
    );
    let ch = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// The pixels of a region.
fn region(a: &[[u8; 3]], r: (f32, f32, f32, f32)) -> Vec<[u8; 3]> {
    let (x0, y0) = ((r.0 * W as f32) as usize, (r.1 * H as f32) as usize);
    let (x1, y1) = ((r.2 * W as f32) as usize, (r.3 * H as f32) as usize);
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| a[y * W + x]))
        .collect()
}

fn luma(p: [u8; 3]) -> f64 {
    (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0
}

/// Both eyes show an eyeball: some dark pixels (iris, pupil) and some
/// bright, unsaturated ones (sclera). Closed lids or a skin-coloured
/// eyeball have neither.
fn eyes_open(a: &[[u8; 3]]) -> bool {
    EYES.iter().all(|&e| {
        let px = region(a, e);
        let dark = px.iter().filter(|p| luma(**p) < 60.0).count();
        let white = px
            .iter()
            .filter(|p| {
                let sat = p.iter().max().unwrap() - p.iter().min().unwrap();
                luma(**p) > 110.0 && sat < 25
            })
            .count();
        eprintln!("eye {e:?}: {dark} dark, {white} white pixels");
        dark >= 8 && white >= 40
    })
}

/// The cheek is skin-toned: red over green over blue, clearly warm, lit.
fn assert_skin(a: &[[u8; 3]], what: &str) {
    let px = region(a, CHEEK);
    let mean: [f64; 3] =
        std::array::from_fn(|c| px.iter().map(|p| p[c] as f64).sum::<f64>() / px.len() as f64);
    eprintln!("{what}: cheek {mean:.0?}");
    assert!(
        mean[0] > mean[1] && mean[1] > mean[2] && mean[0] - mean[2] > 40.0,
        "{what}: the cheek {mean:.0?} is not skin-toned"
    );
    assert!(
        (100.0..245.0).contains(&mean[0]),
        "{what}: cheek {mean:.0?}"
    );
}

/// Mean absolute RGB difference over a region.
fn region_diff(a: &[[u8; 3]], b: &[[u8; 3]], r: (f32, f32, f32, f32)) -> f64 {
    let (x0, y0) = ((r.0 * W as f32) as usize, (r.1 * H as f32) as usize);
    let (x1, y1) = ((r.2 * W as f32) as usize, (r.3 * H as f32) as usize);
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a[y * W + x], b[y * W + x]);
            sum += (0..3)
                .map(|c| (p[c] as f64 - q[c] as f64).abs())
                .sum::<f64>()
                / 3.0;
            n += 1.0;
        }
    }
    sum / n
}

fn mean_brightness(a: &[[u8; 3]]) -> f64 {
    a.iter()
        .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn demo_screenshot_mouth_moves_between_silence_and_speech() {
    let clip = root().join("assets/audio/LJ001-0001.wav");
    // The speaking moment: where the shipped model opens the jaw widest
    // (5-frame mean), away from the clip's ends.
    let model = TalkingHeadModel::load(&root().join("assets/models/default.safetensors"))
        .expect("the shipped model");
    let (audio, _) = load_mono_16k(&clip).unwrap();
    let mut session = Session::new(&model, AudioFormat::MODEL, 0).unwrap();
    let frames = run_to_end(
        &model,
        &mut session,
        Pcm::F32(&audio),
        Sampler::Student,
        |_| {},
    )
    .unwrap();
    let fps = model.config().fps as f64;
    let jaw: Vec<f32> = frames
        .iter()
        .map(|f| f.weights[Blendshape::JawOpen.index()])
        .collect();
    let (mut best, mut best_t) = (0.0f32, 1.0f64);
    for i in (fps as usize)..jaw.len().saturating_sub(fps as usize) {
        let m = jaw[i - 2..=i + 2].iter().sum::<f32>() / 5.0;
        if m > best {
            best = m;
            best_t = (i as f64 + 0.5) / fps;
        }
    }
    assert!(
        best > 0.15,
        "the model never opens the jaw on the clip: {best}"
    );

    let dir = tempfile::tempdir().unwrap();
    let silent_wav = dir.path().join("silence.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&silent_wav, spec).unwrap();
        for _ in 0..(16_000.0 * (best_t + 2.0)) as usize {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }
    let t = format!("{best_t:.3}");
    let silent_png = dir.path().join("silent.png");
    let speaking_png = dir.path().join("speaking.png");
    run_demo(&[
        "--file",
        silent_wav.to_str().unwrap(),
        "--screenshot",
        silent_png.to_str().unwrap(),
        "--exit-after",
        &t,
    ]);
    run_demo(&[
        "--screenshot",
        speaking_png.to_str().unwrap(),
        "--exit-after",
        &t,
    ]);
    // Keep copies for people to look at.
    let keep = root().join("target").join("screenshots");
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::copy(&silent_png, keep.join("demo_silent.png"));
    let _ = std::fs::copy(&speaking_png, keep.join("demo_speaking.png"));

    let a = load_rgb(&silent_png);
    let b = load_rgb(&speaking_png);
    assert!(mean_brightness(&a) > 10.0, "silent screenshot is black");
    assert!(mean_brightness(&b) > 10.0, "speaking screenshot is black");
    let mouth = region_diff(&a, &b, MOUTH);
    let shoulders = region_diff(&a, &b, SHOULDERS);
    eprintln!(
        "jaw {best:.2} at {best_t:.2} s; mouth diff {mouth:.2}, shoulders diff {shoulders:.2}"
    );
    assert!(mouth > 2.0, "mouth region barely differs: {mouth:.2}");
    assert!(
        mouth > 4.0 * shoulders,
        "mouth {mouth:.2} vs shoulders {shoulders:.2}"
    );
    // The open mouth reads as dark (the mouth interior, tongue and teeth
    // in shadow), not as lit skin: what changes gets darker.
    let (pa, pb) = (region(&a, MOUTH), region(&b, MOUTH));
    let changed: Vec<(f64, f64)> = pa
        .iter()
        .zip(&pb)
        .map(|(p, q)| (luma(*p), luma(*q)))
        .filter(|(p, q)| (p - q).abs() > 30.0)
        .collect();
    let n = changed.len().max(1) as f64;
    let before = changed.iter().map(|c| c.0).sum::<f64>() / n;
    let after = changed.iter().map(|c| c.1).sum::<f64>() / n;
    eprintln!(
        "mouth: {} pixels changed, mean luma {before:.0} -> {after:.0}",
        changed.len()
    );
    assert!(
        after < before - 20.0,
        "the opening mouth does not darken: luma {before:.0} -> {after:.0}"
    );
    assert_skin(&a, "silent");
    assert_skin(&b, "speaking");
    // A blink may close the eyes in one of the two.
    assert!(
        eyes_open(&a) || eyes_open(&b),
        "no eyes in either screenshot"
    );
}

/// The same audio moment rendered neutral and happy (`--emotion`, the
/// panel's emotion at 1): the mouth corners differ, the shoulders do not.
#[test]
fn demo_screenshot_happy_differs_from_neutral_at_the_mouth() {
    let dir = tempfile::tempdir().unwrap();
    let neutral_png = dir.path().join("neutral.png");
    let happy_png = dir.path().join("happy.png");
    for (emotion, png) in [("neutral", &neutral_png), ("happy", &happy_png)] {
        run_demo(&[
            "--emotion",
            emotion,
            "--screenshot",
            png.to_str().unwrap(),
            "--exit-after",
            "2.0",
        ]);
    }
    let keep = root().join("target").join("screenshots");
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::copy(&neutral_png, keep.join("demo_neutral.png"));
    let _ = std::fs::copy(&happy_png, keep.join("demo_happy.png"));
    let a = load_rgb(&neutral_png);
    let b = load_rgb(&happy_png);
    assert!(mean_brightness(&a) > 10.0 && mean_brightness(&b) > 10.0);
    let mouth = region_diff(&a, &b, MOUTH);
    let shoulders = region_diff(&a, &b, SHOULDERS);
    eprintln!("neutral vs happy: mouth diff {mouth:.2}, shoulders diff {shoulders:.2}");
    assert!(mouth > 1.0, "happy barely changes the mouth: {mouth:.2}");
    assert!(
        mouth > 4.0 * shoulders,
        "mouth {mouth:.2} vs shoulders {shoulders:.2}"
    );
    assert_skin(&a, "neutral");
    assert_skin(&b, "happy");
    assert!(
        eyes_open(&a) || eyes_open(&b),
        "no eyes in either screenshot"
    );
}

/// The `vrm` example (a VRM 1.0 avatar driven through its expression
/// presets) at the same moment with the emotion neutral and happy: the
/// `happy` preset (smile, cheek squint) changes the mouth region, the
/// static shoulder does not change.
#[cfg(all(feature = "vrm", feature = "bevy_audio"))]
#[test]
fn vrm_example_happy_preset_shows_at_the_mouth() {
    // The mouth and the left shoulder in the example's camera (found by
    // looking at the screenshots).
    const VRM_MOUTH: (f32, f32, f32, f32) = (0.45, 0.46, 0.55, 0.54);
    const VRM_SHOULDER: (f32, f32, f32, f32) = (0.33, 0.67, 0.38, 0.71);
    let dir = tempfile::tempdir().unwrap();
    let shoot = |emotion: &str| {
        let out = dir.path().join(format!("vrm_{emotion}.png"));
        let out_s = out.to_str().unwrap();
        run_example(
            "vrm",
            &[
                "--emotion",
                emotion,
                "--exit-after",
                "4",
                "--screenshot",
                out_s,
            ],
        );
        load_rgb(&out)
    };
    let neutral = shoot("neutral");
    let happy = shoot("happy");
    let head = region(&neutral, VRM_MOUTH);
    let brightness = head.iter().map(|p| luma(*p)).sum::<f64>() / head.len() as f64;
    assert!(
        brightness > 120.0,
        "no head at the mouth region: {brightness:.1}"
    );
    let mouth = region_diff(&neutral, &happy, VRM_MOUTH);
    let shoulder = region_diff(&neutral, &happy, VRM_SHOULDER);
    println!("vrm: mouth diff {mouth:.2}, shoulder diff {shoulder:.2}");
    assert!(mouth > 3.0, "happy does not show at the mouth: {mouth:.2}");
    assert!(shoulder < 0.5, "the static shoulder changed: {shoulder:.2}");
}
