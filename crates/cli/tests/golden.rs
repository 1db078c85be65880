//! Golden test: `talking-head bake` on the shipped model must reproduce a
//! recorded CSV (`tests/golden/LJ001-0001.csv`: `assets/audio/LJ001-0001.wav`,
//! `--emotion happy=0.5 --seed 7`, upper-face layer on). It pins the whole
//! user-visible path: decoding, resampling, log-mel, the streaming model,
//! emotion, the upper-face layer, the 30 fps resampler and the CSV writer.
//!
//! The file was recorded before the workspace move and the move kept it
//! byte-identical. A change that alters the output on purpose (a new shipped
//! model, a new sampler) regenerates it:
//!
//! ```text
//! cargo run --release -p talking_head_cli -- bake assets/audio/LJ001-0001.wav \
//!     -o crates/cli/tests/golden/LJ001-0001.csv \
//!     --model assets/models/default.safetensors --emotion happy=0.5 --seed 7
//! ```
//!
//! On this project's CI machine the output is byte-identical. On a CPU whose
//! matrix kernels differ (the `gemm` crate picks AVX2/AVX-512 code at run
//! time) rounding may differ in the last digits; the test then still
//! requires every value within 1e-5 and the same frames and header.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn bake_output_matches_the_golden_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bake.csv");
    let status = Command::new(env!("CARGO_BIN_EXE_talking-head"))
        .arg("bake")
        .arg(root().join("assets/audio/LJ001-0001.wav"))
        .arg("-o")
        .arg(&out)
        .arg("--model")
        .arg(root().join("assets/models/default.safetensors"))
        .args(["--emotion", "happy=0.5", "--seed", "7", "--jobs", "1"])
        .env_remove("TALKING_HEAD_MODEL")
        .status()
        .expect("runs talking-head");
    assert!(status.success(), "bake failed: {status}");
    let got = std::fs::read_to_string(&out).unwrap();
    let want = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/LJ001-0001.csv"),
    )
    .unwrap();
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    assert_eq!(g.len(), w.len(), "row count differs");
    assert_eq!(g[0], w[0], "header differs");
    let mut max = 0f64;
    for (row, (a, b)) in g.iter().zip(&w).enumerate().skip(1) {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!(fa.len(), fb.len(), "row {row}: column count differs");
        assert_eq!(fa[..2], fb[..2], "row {row}: timecode or count differs");
        for (x, y) in fa[2..].iter().zip(&fb[2..]) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            max = max.max((x - y).abs());
        }
    }
    eprintln!("bake output is not byte-identical to the golden CSV; max |difference| {max:.2e}");
    assert!(
        max <= 1e-5,
        "bake output moved by {max:.2e} (> 1e-5) from the golden CSV"
    );
}
