//! Background-noise windows: stationary noise with no speech, the input a
//! microphone gives between utterances, for training the rest face on it.
//!
//! The corpus's pauses are near digital silence (studio and TTS audio) or
//! carry white noise a fixed SNR below the clip's own speech (its
//! augmented copies), so a model never learns what to do on a room's or a
//! headset's noise floor alone: the shipped student puckered its lips to
//! 0.15 on −50 dBFS white noise (session 18). [`noise_floor_audio`] draws
//! such a floor — coloured noise from white to brown at −75…−35 dBFS RMS,
//! sometimes with mains hum — and the batch builder
//! ([`crate::dataset::BatchOptions::noise_windows`]) pairs it with the
//! neutral face and the `SIL` phone.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use realfft::RealFftPlanner;

/// Range of the noise floor's RMS level, in dBFS (the runtime's silence
/// gate, `ModelConfig::silence_gate_dbfs`, is −70 dBFS; −35 dBFS is a loud
/// fan or a cheap headset).
pub const NOISE_FLOOR_DBFS: (f32, f32) = (-75.0, -35.0);

/// Range of the spectral exponent `a` of the noise's power spectrum
/// `∝ 1 / f^a`: 0 white, 1 pink, 2 brown (red).
pub const NOISE_EXPONENT: (f32, f32) = (0.0, 2.0);

/// Probability that a noise floor also carries mains hum (50 or 60 Hz and
/// its first three harmonics).
pub const HUM_PROBABILITY: f64 = 0.25;

/// `len` samples of Gaussian noise with power spectrum `∝ 1 / f^exponent`
/// (`exponent` 0 white, 1 pink, 2 brown; the DC bin is zeroed), shaped in
/// the frequency domain (realfft) and scaled to unit RMS. `len < 2` or a
/// non-finite exponent gives zeros.
pub fn coloured_noise(len: usize, exponent: f32, rng: &mut impl Rng) -> Vec<f32> {
    if len < 2 || !exponent.is_finite() {
        return vec![0.0; len];
    }
    let mut x: Vec<f32> = (0..len).map(|_| StandardNormal.sample(rng)).collect();
    if exponent != 0.0 {
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(len);
        let inv = planner.plan_fft_inverse(len);
        let mut spec = fwd.make_output_vec();
        if fwd.process(&mut x, &mut spec).is_err() {
            return vec![0.0; len];
        }
        for (k, c) in spec.iter_mut().enumerate() {
            // Amplitude ∝ f^(−a/2) gives power ∝ f^(−a).
            *c *= if k == 0 {
                0.0
            } else {
                (k as f32).powf(-exponent / 2.0)
            };
        }
        // The inverse wants a real DC and (even length) Nyquist bin.
        if let Some(last) = spec.last_mut()
            && len.is_multiple_of(2)
        {
            last.im = 0.0;
        }
        if inv.process(&mut spec, &mut x).is_err() {
            return vec![0.0; len];
        }
    }
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / len as f32).sqrt();
    if rms > 0.0 && rms.is_finite() {
        x.iter_mut().for_each(|v| *v /= rms);
    } else {
        x.iter_mut().for_each(|v| *v = 0.0);
    }
    x
}

/// Relative amplitudes of mains hum's fundamental and its first three
/// harmonics ([`add_mains_hum`]).
pub const HUM_HARMONICS: [f32; 4] = [1.0, 0.5, 0.35, 0.25];

/// Adds mains hum to `x` (samples at `sample_rate` Hz): the fundamental
/// `f0` (50 or 60 Hz) and its first three harmonics at [`HUM_HARMONICS`]
/// amplitudes with starting `phases` (radians), scaled to an RMS of `rms`.
pub fn add_mains_hum(x: &mut [f32], sample_rate: u32, f0: f32, rms: f32, phases: &[f32; 4]) {
    let norm = (HUM_HARMONICS.iter().map(|a| a * a / 2.0).sum::<f32>()).sqrt();
    let sr = sample_rate.max(1) as f32;
    for (i, v) in x.iter_mut().enumerate() {
        let t = i as f32 / sr;
        let h: f32 = HUM_HARMONICS
            .iter()
            .zip(phases)
            .enumerate()
            .map(|(k, (a, p))| a * (std::f32::consts::TAU * f0 * (k + 1) as f32 * t + p).sin())
            .sum();
        *v += h / norm * rms;
    }
}

/// A random noise floor of `len` samples at `sample_rate` Hz: coloured
/// noise ([`coloured_noise`], exponent drawn from [`NOISE_EXPONENT`]) at an
/// RMS level drawn uniformly in dB from [`NOISE_FLOOR_DBFS`], plus with
/// probability [`HUM_PROBABILITY`] mains hum at −6…+6 dB of the noise.
/// Returns the samples and a short description.
pub fn noise_floor_audio(len: usize, sample_rate: u32, rng: &mut impl Rng) -> (Vec<f32>, String) {
    let a = rng.random_range(NOISE_EXPONENT.0..=NOISE_EXPONENT.1);
    let db = rng.random_range(NOISE_FLOOR_DBFS.0..=NOISE_FLOOR_DBFS.1);
    let rms = 10f32.powf(db / 20.0);
    let mut x = coloured_noise(len, a, rng);
    x.iter_mut().for_each(|v| *v *= rms);
    let mut what = format!("1/f^{a:.2} noise at {db:.1} dBFS");
    if rng.random_bool(HUM_PROBABILITY) {
        let f0 = if rng.random_bool(0.5) { 50.0f32 } else { 60.0 };
        let rel_db = rng.random_range(-6.0f32..=6.0);
        let phases: [f32; 4] =
            std::array::from_fn(|_| rng.random_range(0.0..std::f32::consts::TAU));
        let hum_rms = rms * 10f32.powf(rel_db / 20.0);
        add_mains_hum(&mut x, sample_rate, f0, hum_rms, &phases);
        what.push_str(&format!(" + {f0:.0} Hz hum at {rel_db:+.1} dB"));
    }
    (x, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rms_db(x: &[f32]) -> f32 {
        10.0 * (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).log10()
    }

    /// Power in a band of FFT bins `[lo, hi)` of `x`.
    fn band_power(x: &[f32], lo: usize, hi: usize) -> f32 {
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(x.len());
        let mut inp = x.to_vec();
        let mut spec = fwd.make_output_vec();
        fwd.process(&mut inp, &mut spec).unwrap();
        spec[lo..hi].iter().map(|c| c.norm_sqr()).sum::<f32>() / (hi - lo) as f32
    }

    #[test]
    fn coloured_noise_has_unit_rms_and_the_asked_slope() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 1 << 15;
        for a in [0.0f32, 1.0, 2.0] {
            let x = coloured_noise(n, a, &mut rng);
            assert!(rms_db(&x).abs() < 0.01, "rms {} dB", rms_db(&x));
            // Octave 256..512 bins vs 2048..4096: power ratio 8^a (9 dB per unit of a).
            let ratio_db = 10.0 * (band_power(&x, 256, 512) / band_power(&x, 2048, 4096)).log10();
            let want = 10.0 * 8f32.log10() * a;
            assert!(
                (ratio_db - want).abs() < 1.0,
                "exponent {a}: slope {ratio_db:.2} dB, want {want:.2}"
            );
        }
    }

    #[test]
    fn noise_floors_stay_in_their_level_range_and_are_never_garbage() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut hum = 0;
        for _ in 0..64 {
            let (x, what) = noise_floor_audio(16_000, 16_000, &mut rng);
            assert!(x.iter().all(|v| v.is_finite()), "{what}");
            let db = rms_db(&x);
            // Hum adds up to +7 dB of power on top of the noise.
            assert!(
                (NOISE_FLOOR_DBFS.0 - 0.5..=NOISE_FLOOR_DBFS.1 + 7.5).contains(&db),
                "{what}: {db:.1} dBFS"
            );
            hum += usize::from(what.contains("hum"));
        }
        assert!((5..=30).contains(&hum), "{hum} of 64 with hum");
        assert_eq!(coloured_noise(1, 1.0, &mut rng), vec![0.0]);
        assert_eq!(coloured_noise(8, f32::NAN, &mut rng), vec![0.0; 8]);
    }
}
