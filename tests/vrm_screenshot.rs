//! Renders the `vrm` example headless (Xvfb + Mesa's lavapipe Vulkan) at
//! the same moment with the emotion neutral and happy: the VRM `happy`
//! preset (smile, cheek squint) must change the mouth region, and the
//! (static) shoulders must not change.
//!
//! Needs `xvfb-run` (package `xvfb`, plus `xauth`) and a Vulkan driver
//! (`mesa-vulkan-drivers`); the README's apt-get line installs them. The
//! example binary is the one `cargo test` builds next to this test.
#![cfg(all(feature = "vrm", feature = "bevy_audio", feature = "egui"))]

use std::path::{Path, PathBuf};
use std::process::Command;

const W: usize = 1280;
const H: usize = 720;
/// The mouth in the example's camera, as pixel fractions `(x0, y0, x1, y1)`
/// of the window (found by looking at the screenshots).
const MOUTH: (f32, f32, f32, f32) = (0.45, 0.46, 0.55, 0.54);
/// The left shoulder in the same camera: nothing there is animated.
const SHOULDER: (f32, f32, f32, f32) = (0.33, 0.67, 0.38, 0.71);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shoot(emotion: &str, out: &Path) -> Vec<[u8; 3]> {
    // target/<profile>/deps/vrm_screenshot-<hash> -> target/<profile>/examples/vrm
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("vrm");
    assert!(
        bin.exists(),
        "{} not built (run `cargo test --all-features`)",
        bin.display()
    );
    let status = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(&bin)
        .args(["--emotion", emotion, "--exit-after", "4", "--screenshot"])
        .arg(out)
        .env("BEVY_ASSET_ROOT", root())
        .env("WGPU_BACKEND", "vulkan")
        .current_dir(root())
        .output()
        .expect("xvfb-run not found: apt-get install xvfb xauth mesa-vulkan-drivers");
    assert!(
        status.status.success(),
        "vrm example failed: {}\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width as usize, info.height as usize), (W, H));
    let ch = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Mean absolute RGB difference over a region.
fn region_diff(a: &[[u8; 3]], b: &[[u8; 3]], r: (f32, f32, f32, f32)) -> f64 {
    let (x0, y0) = ((r.0 * W as f32) as usize, (r.1 * H as f32) as usize);
    let (x1, y1) = ((r.2 * W as f32) as usize, (r.3 * H as f32) as usize);
    let mut sum = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a[y * W + x], b[y * W + x]);
            sum += (0..3)
                .map(|c| (p[c] as f64 - q[c] as f64).abs())
                .sum::<f64>()
                / 3.0;
        }
    }
    sum / ((x1 - x0) * (y1 - y0)) as f64
}

fn mean_brightness(a: &[[u8; 3]], r: (f32, f32, f32, f32)) -> f64 {
    let black = vec![[0u8; 3]; a.len()];
    region_diff(a, &black, r)
}

#[test]
fn vrm_example_happy_preset_shows_at_the_mouth() {
    let dir = tempfile::tempdir().unwrap();
    let neutral = shoot("neutral", &dir.path().join("neutral.png"));
    let happy = shoot("happy", &dir.path().join("happy.png"));
    // The head was drawn (skin, not the dark clear colour).
    assert!(
        mean_brightness(&neutral, MOUTH) > 120.0,
        "no head at the mouth region: {}",
        mean_brightness(&neutral, MOUTH)
    );
    let mouth = region_diff(&neutral, &happy, MOUTH);
    let shoulder = region_diff(&neutral, &happy, SHOULDER);
    println!("mouth diff {mouth:.2}, shoulder diff {shoulder:.2}");
    assert!(mouth > 3.0, "happy does not show at the mouth: {mouth:.2}");
    assert!(shoulder < 0.5, "the static shoulder changed: {shoulder:.2}");
}
