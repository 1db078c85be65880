//! Tests of `bevy_talking_head::audio`: streaming conditioning (chunking
//! parity, resampling frequency/timing/length, sanitising, downmix) and file
//! decoding (WAV round trips, error cases, the real corpora in `../shared`).

use std::f32::consts::PI;
use std::path::{Path, PathBuf};

use bevy_talking_head::audio::{
    AudioConditioner, AudioError, AudioFormat, MODEL_SAMPLE_RATE, load_mono_16k, read_audio_file,
};
use realfft::RealFftPlanner;

/// Deterministic xorshift64* generator (no `rand` dependency needed).
/// Seeded test randomness (rand's StdRng) with the few helpers the tests use.
struct Rng(rand::rngs::StdRng);
impl Rng {
    fn seeded(seed: u64) -> Self {
        use rand::SeedableRng;
        Self(rand::rngs::StdRng::seed_from_u64(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        use rand::Rng as _;
        self.0.random_range(0..n)
    }
    fn uniform(&mut self) -> f32 {
        use rand::Rng as _;
        self.0.random_range(-1.0..1.0)
    }
}

fn condition_whole(format: AudioFormat, x: &[f32]) -> Vec<f32> {
    let mut c = AudioConditioner::new(format).unwrap();
    let mut out = Vec::new();
    c.push_f32(x, &mut out);
    c.finish(&mut out);
    out
}

fn condition_chunked(format: AudioFormat, x: &[f32], chunks: &[usize]) -> Vec<f32> {
    let mut c = AudioConditioner::new(format).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < x.len() {
        let n = chunks[i % chunks.len()].min(x.len() - pos);
        c.push_f32(&x[pos..pos + n], &mut out);
        pos += n;
        i += 1;
    }
    c.finish(&mut out);
    out
}

fn test_signal(frames: usize, channels: usize, rng: &mut Rng) -> Vec<f32> {
    (0..frames * channels)
        .map(|i| {
            let t = (i / channels) as f32 / 1000.0;
            0.5 * (2.0 * PI * 3.7 * t * (1 + i % channels) as f32).sin() + 0.2 * rng.uniform()
        })
        .collect()
}

/// Dominant frequency (Hz) of a 16 kHz signal, from the largest FFT bin.
fn dominant_freq(x: &[f32]) -> f32 {
    let n = x.len();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let mut input: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (0.5 - 0.5 * (2.0 * PI * i as f32 / n as f32).cos()))
        .collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).unwrap();
    let (k, _) = spec
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.norm_sqr().total_cmp(&b.1.norm_sqr()))
        .unwrap();
    k as f32 * MODEL_SAMPLE_RATE as f32 / n as f32
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn sine(rate: u32, freq: f32, secs: f32, amp: f32) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

#[test]
fn chunking_parity_random_splits() {
    let mut rng = Rng::seeded(0x1234_5678_9abc_def1);
    for &(rate, channels) in &[
        (44_100u32, 2u16),
        (48_000, 1),
        (16_000, 2),
        (8_000, 3),
        (96_000, 2),
        (22_050, 1),
    ] {
        let frames = rate as usize * 13 / 10 + 7;
        let x = test_signal(frames, channels as usize, &mut rng);
        let format = AudioFormat::new(rate, channels);
        let whole = condition_whole(format, &x);
        assert_eq!(whole.len() as u64, format.output_len_16k(frames as u64));
        let mut splits: Vec<Vec<usize>> = vec![vec![1], vec![3], vec![1, 2, 5, 7], vec![4097]];
        for _ in 0..3 {
            splits.push((0..50).map(|_| 1 + rng.below(2000)).collect());
        }
        for chunks in &splits {
            let streamed = condition_chunked(format, &x, chunks);
            assert_eq!(
                streamed,
                whole,
                "{rate} Hz x {channels}: chunking {:?}... differs",
                &chunks[..chunks.len().min(4)]
            );
        }
    }
}

#[test]
fn chunking_parity_i16_odd_stereo_splits() {
    let mut rng = Rng::seeded(99);
    let frames = 30_001;
    let x: Vec<i16> = (0..frames * 2)
        .map(|_| (rng.uniform() * 20_000.0) as i16)
        .collect();
    let format = AudioFormat::new(44_100, 2);
    let mut c = AudioConditioner::new(format).unwrap();
    let mut whole = Vec::new();
    c.push_i16(&x, &mut whole);
    c.finish(&mut whole);
    // Odd chunk sizes split stereo frames in the middle.
    for chunks in [vec![1usize], vec![3, 5, 1, 7], vec![999, 1001]] {
        let mut c = AudioConditioner::new(format).unwrap();
        let mut out = Vec::new();
        let (mut pos, mut i) = (0, 0);
        while pos < x.len() {
            let n = chunks[i % chunks.len()].min(x.len() - pos);
            c.push_i16(&x[pos..pos + n], &mut out);
            pos += n;
            i += 1;
        }
        assert_eq!(c.input_frames(), frames as u64);
        c.finish(&mut out);
        assert_eq!(out, whole);
    }
    // i16 input equals the same samples given as f32 / 32768.
    let xf: Vec<f32> = x.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert_eq!(condition_whole(format, &xf), whole);
}

#[test]
fn streaming_output_is_available_early() {
    // With 10 ms chunks the output lags the input by at most ~20 ms.
    let format = AudioFormat::new(48_000, 1);
    let mut c = AudioConditioner::new(format).unwrap();
    let mut out = Vec::new();
    let x = sine(48_000, 440.0, 1.0, 0.5);
    for block in x.chunks(480) {
        c.push_f32(block, &mut out);
    }
    let expected = 16_000usize;
    assert!(
        out.len() + 20 * 16 >= expected,
        "only {} of {expected} samples out before finish",
        out.len()
    );
}

#[test]
fn resampled_sine_keeps_frequency_and_level() {
    for &rate in &[48_000u32, 44_100, 8_000, 96_000, 22_050, 16_000, 11_025] {
        for &freq in &[440.0f32, 1000.0, 3000.0] {
            if freq >= rate as f32 / 2.0 * 0.9 {
                continue;
            }
            let x = sine(rate, freq, 1.0, 0.5);
            let y = condition_whole(AudioFormat::new(rate, 1), &x);
            assert_eq!(y.len(), 16_000, "{rate} Hz");
            let f = dominant_freq(&y);
            assert!(
                (f - freq).abs() <= 1.5,
                "{rate} Hz input, {freq} Hz tone came out at {f} Hz"
            );
            // Level: ignore the edges; sine RMS = 0.5 / sqrt 2.
            let level = rms(&y[800..15_200]);
            let want = 0.5 / 2f32.sqrt();
            assert!(
                (level / want - 1.0).abs() < 0.02,
                "{rate} Hz, {freq} Hz: RMS {level} vs {want}"
            );
        }
    }
}

#[test]
fn resampler_rejects_content_above_8khz() {
    // A 12 kHz tone at 48 kHz would alias to 4 kHz without an anti-alias filter.
    for &rate in &[48_000u32, 44_100, 96_000] {
        let x = sine(rate, 12_000.0, 0.5, 0.5);
        let y = condition_whole(AudioFormat::new(rate, 1), &x);
        let level = rms(&y[400..y.len() - 400]);
        assert!(
            level < 0.5 / 2f32.sqrt() * 0.01,
            "{rate} Hz: alias RMS {level}"
        );
    }
}

#[test]
fn click_timing_is_compensated() {
    for &rate in &[
        8_000u32, 11_025, 16_000, 22_050, 24_000, 44_100, 48_000, 96_000,
    ] {
        let n = rate as usize;
        let mut x = vec![0.0f32; n];
        x[n / 2] = 1.0;
        for chunks in [vec![n], vec![1, 160, 33]] {
            let y = condition_chunked(AudioFormat::new(rate, 1), &x, &chunks);
            assert_eq!(y.len(), 16_000);
            let (peak, _) = y
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            assert!(
                (peak as i64 - 8000).abs() <= 2,
                "{rate} Hz: click at 0.5 s came out at sample {peak}"
            );
        }
    }
}

#[test]
fn output_length_matches_duration() {
    for &rate in &[8_000u32, 11_025, 16_000, 32_000, 44_100, 48_000, 96_000] {
        for &frames in &[0usize, 1, 2, 3, 7, 100, 441, 479, 480, 481, 12_345, 100_001] {
            let x = vec![0.1f32; frames];
            let format = AudioFormat::new(rate, 1);
            let y = condition_whole(format, &x);
            let expect = (frames as f64 * 16_000.0 / rate as f64).round() as usize;
            assert_eq!(y.len(), expect, "{rate} Hz, {frames} frames");
            assert!(y.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        }
    }
}

#[test]
fn finish_rearms_for_a_new_stream_and_reset_clears_counters() {
    let format = AudioFormat::new(44_100, 2);
    let mut rng = Rng::seeded(7);
    let x = test_signal(20_000, 2, &mut rng);
    let mut c = AudioConditioner::new(format).unwrap();
    let mut first = Vec::new();
    c.push_f32(&x, &mut first);
    c.finish(&mut first);
    let mut second = Vec::new();
    c.push_f32(&x, &mut second);
    c.finish(&mut second);
    assert_eq!(first, second);
    assert_eq!(c.input_frames(), 40_000);
    c.push_f32(&[f32::NAN, 0.0, 0.5], &mut Vec::new());
    assert_eq!(c.nonfinite_count(), 1);
    c.reset();
    assert_eq!(c.input_frames(), 0);
    assert_eq!(c.nonfinite_count(), 0);
    let mut third = Vec::new();
    c.push_f32(&x, &mut third);
    c.finish(&mut third);
    assert_eq!(first, third);
    assert_eq!(c.format(), format);
}

#[test]
fn nonfinite_samples_are_zeroed_and_counted() {
    let format = AudioFormat::new(16_000, 1);
    let mut c = AudioConditioner::new(format).unwrap();
    let mut out = Vec::new();
    c.push_f32(
        &[
            0.25,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            2.0,
            -3.0,
            -0.5,
        ],
        &mut out,
    );
    c.finish(&mut out);
    assert_eq!(out, vec![0.25, 0.0, 0.0, 0.0, 1.0, -1.0, -0.5]);
    assert_eq!(c.nonfinite_count(), 3);

    // Through the resampler: output stays finite and bounded.
    let mut x = sine(48_000, 300.0, 0.3, 0.9);
    for i in (0..x.len()).step_by(97) {
        x[i] = if i % 2 == 0 { f32::NAN } else { f32::INFINITY };
    }
    let mut c = AudioConditioner::new(AudioFormat::new(48_000, 1)).unwrap();
    let mut out = Vec::new();
    c.push_f32(&x, &mut out);
    c.finish(&mut out);
    assert_eq!(c.nonfinite_count(), x.len().div_ceil(97) as u64);
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.5));
}

#[test]
fn stereo_downmix_averages_channels() {
    let format = AudioFormat::new(16_000, 2);
    let mut c = AudioConditioner::new(format).unwrap();
    let mut out = Vec::new();
    c.push_f32(&[0.5, 0.25, -1.0, 1.0, 0.2, 0.2, 1.0], &mut out);
    // The trailing 1.0 is half a frame: kept, not emitted.
    assert_eq!(out, vec![0.375, 0.0, 0.2]);
    assert_eq!(c.input_frames(), 3);
    c.push_f32(&[0.0], &mut out);
    assert_eq!(out, vec![0.375, 0.0, 0.2, 0.5]);

    // Anti-phase stereo cancels after resampling, in-phase equals mono.
    let mono = sine(44_100, 500.0, 0.5, 0.6);
    let anti: Vec<f32> = mono.iter().flat_map(|&s| [s, -s]).collect();
    let same: Vec<f32> = mono.iter().flat_map(|&s| [s, s]).collect();
    let y_anti = condition_whole(AudioFormat::new(44_100, 2), &anti);
    assert!(y_anti.iter().all(|v| v.abs() < 1e-6));
    let y_same = condition_whole(AudioFormat::new(44_100, 2), &same);
    let y_mono = condition_whole(AudioFormat::new(44_100, 1), &mono);
    let max_diff = y_same
        .iter()
        .zip(&y_mono)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-6, "{max_diff}");
}

#[test]
fn unsupported_formats_are_rejected_with_values() {
    for rate in [0u32, 7_999, 96_001, 192_000] {
        let err = AudioConditioner::new(AudioFormat::new(rate, 1)).unwrap_err();
        assert!(matches!(err, AudioError::UnsupportedSampleRate { rate: r } if r == rate));
        assert!(err.to_string().contains(&rate.to_string()));
    }
    for channels in [0u16, 33, 255] {
        let err = AudioConditioner::new(AudioFormat::new(16_000, channels)).unwrap_err();
        assert!(matches!(err, AudioError::UnsupportedChannels { channels: c } if c == channels));
        assert!(err.to_string().contains(&channels.to_string()));
    }
    assert!(AudioFormat::new(8_000, 1).validate().is_ok());
    assert!(AudioFormat::new(96_000, 32).validate().is_ok());
}

#[test]
fn many_channels_are_supported() {
    let frames = 4_800;
    let x: Vec<f32> = (0..frames * 32)
        .map(|i| if i % 32 == 0 { 0.64 } else { 0.0 })
        .collect();
    let y = condition_whole(AudioFormat::new(48_000, 32), &x);
    assert_eq!(y.len(), 1_600);
    // DC of 0.64 on one channel in 32 -> 0.02 after the average.
    assert!(y[400..1_200].iter().all(|v| (v - 0.02).abs() < 1e-4));
}

// ---------------------------------------------------------------- files --

fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn wav_i16_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo_i16.wav");
    let mut rng = Rng::seeded(3);
    let pcm: Vec<i16> = (0..2 * 22_050)
        .map(|_| (rng.uniform() * 32_000.0) as i16)
        .chain([i16::MIN, i16::MAX])
        .collect();
    write_wav_i16(&path, 22_050, 2, &pcm);
    let decoded = read_audio_file(&path).unwrap();
    assert_eq!(decoded.format, AudioFormat::new(22_050, 2));
    assert_eq!(decoded.samples.len(), pcm.len());
    assert_eq!(decoded.frames(), 22_051);
    for (&a, &b) in decoded.samples.iter().zip(&pcm) {
        assert!((a - f32::from(b) / 32768.0).abs() < 1e-6, "{a} vs {b}");
    }
    let (mono, report) = load_mono_16k(&path).unwrap();
    assert_eq!(
        mono.len(),
        (22_051.0f64 * 16_000.0 / 22_050.0).round() as usize
    );
    assert_eq!(report.source_format, AudioFormat::new(22_050, 2));
    assert_eq!(report.nonfinite_samples, 0);
    assert!((report.duration_secs - 22_051.0 / 22_050.0).abs() < 1e-9);
}

#[test]
fn wav_f32_round_trip_with_nonfinite_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mono_f32.wav");
    let mut x = sine(16_000, 440.0, 0.25, 0.8);
    x[10] = f32::NAN;
    x[20] = f32::INFINITY;
    write_wav_f32(&path, 16_000, 1, &x);
    let decoded = read_audio_file(&path).unwrap();
    assert_eq!(decoded.format, AudioFormat::new(16_000, 1));
    assert_eq!(decoded.samples.len(), x.len());
    for (i, (&a, &b)) in decoded.samples.iter().zip(&x).enumerate() {
        if b.is_finite() {
            assert_eq!(a, b, "sample {i}");
        }
    }
    let (mono, report) = load_mono_16k(&path).unwrap();
    assert_eq!(report.nonfinite_samples, 2);
    assert_eq!(mono.len(), x.len());
    assert_eq!(mono[10], 0.0);
    assert_eq!(mono[20], 0.0);
    assert_eq!(mono[30], x[30]);
}

/// WAVs with more channels than WAVE's 18 speaker positions (a 24- or
/// 32-channel microphone array) decode too, integer and float, and
/// downmix like any other; 33 channels is a clear channel-count error.
#[test]
fn wav_with_many_channels() {
    let dir = tempfile::tempdir().unwrap();
    let tone = sine(16_000, 440.0, 0.5, 0.5);
    for channels in [19u16, 24, 32] {
        // The tone on channel 0, silence elsewhere.
        let frames: Vec<f32> = tone
            .iter()
            .flat_map(|&v| {
                std::iter::once(v).chain(std::iter::repeat_n(0.0, channels as usize - 1))
            })
            .collect();
        let f = dir.path().join(format!("f{channels}.wav"));
        write_wav_f32(&f, 16_000, channels, &frames);
        let i = dir.path().join(format!("i{channels}.wav"));
        let pcm: Vec<i16> = frames.iter().map(|v| (v * 32_767.0) as i16).collect();
        write_wav_i16(&i, 16_000, channels, &pcm);
        for path in [&f, &i] {
            let decoded = read_audio_file(path).unwrap();
            assert_eq!(decoded.format, AudioFormat::new(16_000, channels));
            assert_eq!(decoded.frames(), tone.len());
            assert!((decoded.samples[channels as usize * 7] - tone[7]).abs() < 1e-3);
            let (mono, _) = load_mono_16k(path).unwrap();
            assert_eq!(mono.len(), tone.len());
            let want = rms(&tone) / f32::from(channels);
            assert!(
                (rms(&mono) - want).abs() < 0.05 * want,
                "{channels}: {} vs {want}",
                rms(&mono)
            );
            assert!((dominant_freq(&mono) - 440.0).abs() < 10.0);
        }
    }
    // The same from bytes (the path clips take through Bevy's assets).
    let bytes = std::fs::read(dir.path().join("i24.wav")).unwrap();
    let decoded = bevy_talking_head::audio::decode_audio_bytes(bytes, "i24.wav").unwrap();
    assert_eq!(decoded.format, AudioFormat::new(16_000, 24));
    let many = dir.path().join("c33.wav");
    write_wav_i16(&many, 16_000, 33, &vec![0; 33 * 100]);
    assert!(matches!(
        load_mono_16k(&many),
        Err(AudioError::UnsupportedChannels { .. })
    ));
}

#[test]
fn one_sample_file() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, expect) in [(16_000u32, 1usize), (8_000, 2), (48_000, 0)] {
        let path = dir.path().join(format!("one_{rate}.wav"));
        write_wav_i16(&path, rate, 1, &[16_384]);
        let decoded = read_audio_file(&path).unwrap();
        assert_eq!(decoded.samples, vec![0.5]);
        let (mono, report) = load_mono_16k(&path).unwrap();
        assert_eq!(mono.len(), expect, "{rate} Hz");
        assert_eq!(report.source_format.sample_rate, rate);
    }
}

#[test]
fn empty_wav_is_an_empty_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    write_wav_i16(&path, 16_000, 1, &[]);
    match read_audio_file(&path) {
        Err(AudioError::Empty { path: p }) => assert_eq!(p, path),
        other => panic!("expected Empty, got {other:?}"),
    }
    let err = load_mono_16k(&path).unwrap_err();
    assert!(matches!(err, AudioError::Empty { .. }));
    assert!(err.to_string().contains("empty.wav"), "{err}");
}

#[test]
fn garbage_file_is_a_decode_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::seeded(0xdead_beef);
    for (name, len) in [
        ("garbage.wav", 10_000usize),
        ("tiny.wav", 3),
        ("zero.flac", 0),
    ] {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        let err = read_audio_file(&path).unwrap_err();
        assert!(matches!(err, AudioError::Decode { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(name), "message does not name the file: {msg}");
        assert!(load_mono_16k(&path).is_err());
    }
}

#[test]
fn truncated_file_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.wav");
    write_wav_i16(&full, 16_000, 1, &vec![1000i16; 16_000]);
    let bytes = std::fs::read(&full).unwrap();
    // Cut inside the header: not recognisable any more.
    let cut_header = dir.path().join("cut_header.wav");
    std::fs::write(&cut_header, &bytes[..30]).unwrap();
    let err = read_audio_file(&cut_header).unwrap_err();
    assert!(matches!(err, AudioError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("cut_header.wav"));
    // Cut inside the data: the header promises more samples than there are.
    let cut_data = dir.path().join("cut_data.wav");
    std::fs::write(&cut_data, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let err = read_audio_file(&cut_data).unwrap_err();
    assert!(matches!(err, AudioError::Decode { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("cut_data.wav") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_an_io_error_with_path() {
    let path = PathBuf::from("/definitely/not/here/speech.wav");
    let err = read_audio_file(&path).unwrap_err();
    match &err {
        AudioError::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().contains("/definitely/not/here/speech.wav"));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn unsupported_rate_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hi_rate.wav");
    write_wav_i16(&path, 192_000, 1, &[0; 1000]);
    // Decoding works (the caller may resample it itself) ...
    assert_eq!(read_audio_file(&path).unwrap().format.sample_rate, 192_000);
    // ... but conditioning names the unsupported rate.
    let err = load_mono_16k(&path).unwrap_err();
    assert!(matches!(
        err,
        AudioError::UnsupportedSampleRate { rate: 192_000 }
    ));
}

// ------------------------------------------------------- shared corpora --

fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found; skipping tests on the shared speech corpora",
            dir.display()
        );
        None
    }
}

fn check_loaded(path: &Path) {
    let decoded = read_audio_file(path).unwrap_or_else(|e| panic!("{e}"));
    let (mono, report) = load_mono_16k(path).unwrap_or_else(|e| panic!("{e}"));
    let frames = decoded.frames() as f64;
    let expect = (frames * 16_000.0 / f64::from(decoded.format.sample_rate)).round() as usize;
    assert_eq!(mono.len(), expect, "{}", path.display());
    assert_eq!(report.source_format, decoded.format);
    assert!(report.duration_secs > 0.1, "{}", path.display());
    assert!(mono.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    let level = rms(&mono);
    assert!(
        level > 1e-4,
        "{} is silent after conditioning",
        path.display()
    );
    eprintln!(
        "{:<70} {:>6} Hz x {} ch {:>7.2} s -> {} samples, rms {:.4}",
        path.file_name().unwrap().to_string_lossy(),
        decoded.format.sample_rate,
        decoded.format.channels,
        report.duration_secs,
        mono.len(),
        level
    );
}

#[test]
fn reads_a_librispeech_flac() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("speech/librispeech");
    let Some(path) = std::fs::read_dir(&dir).ok().and_then(|rd| {
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "flac"))
            .collect();
        files.sort();
        files.into_iter().next()
    }) else {
        eprintln!("note: no .flac in {}; skipping", dir.display());
        return;
    };
    let decoded = read_audio_file(&path).unwrap();
    assert_eq!(decoded.format, AudioFormat::new(16_000, 1));
    check_loaded(&path);
}

#[test]
fn reads_the_multilingual_files() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("speech/multilingual");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} not found; skipping", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut n = 0;
    for path in files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["wav", "flac", "aiff", "aif", "mp3", "ogg"].contains(&ext) {
            continue;
        }
        check_loaded(&path);
        n += 1;
    }
    eprintln!("read {n} files from {}", dir.display());
}
