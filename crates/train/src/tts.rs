//! Speech synthesis for the corpus: espeak-ng (formant synthesis, 100+
//! languages, voice variants; prosody through SSML `<prosody>`) and flite
//! (English unit-selection / clustergen voices built from real recordings;
//! prosody through its `duration_stretch` and `int_f0_target_*` features).
//! Both are external programs from Debian (`espeak-ng`, `flite`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::emotion::EmotionProsody;
use talking_head_core::audio::{AudioError, load_mono_16k};

/// Errors of speech synthesis.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The synthesiser program is not installed.
    #[error("`{program}` is not installed (Debian package `{package}`): {source}")]
    NotInstalled {
        /// Program name.
        program: &'static str,
        /// Debian package that provides it.
        package: &'static str,
        /// The spawn error.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{program}` failed for voice {voice}: {stderr}")]
    Failed {
        /// Program name.
        program: &'static str,
        /// Voice used.
        voice: String,
        /// Its standard error.
        stderr: String,
    },
    /// Its output could not be read.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

/// A synthesiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtsEngine {
    /// espeak-ng.
    Espeak,
    /// flite.
    Flite,
}

/// One synthetic voice: engine, voice name (`de+f3` for espeak-ng language
/// `de` with variant `f3`; `slt` for flite) and language code.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsVoice {
    /// The synthesiser.
    pub engine: TtsEngine,
    /// Voice name as the program takes it.
    pub voice: String,
    /// Language code (espeak-ng voice language, `en` for flite).
    pub language: String,
    /// Voice conversion applied to flite's output (`None`: the voice as
    /// recorded; ignored for espeak-ng, whose variants already span voices).
    pub conversion: Option<VoiceConversion>,
}

impl TtsVoice {
    /// A voice as the synthesiser ships it (no conversion).
    pub fn new(engine: TtsEngine, voice: impl Into<String>, language: impl Into<String>) -> Self {
        Self {
            engine,
            voice: voice.into(),
            language: language.into(),
            conversion: None,
        }
    }

    /// A speaker id unique to this voice (used for the speaker split); a
    /// converted flite voice is its own speaker (`flite:awb+female`).
    pub fn speaker_id(&self) -> String {
        match (self.engine, &self.conversion) {
            (TtsEngine::Espeak, _) => format!("espeak:{}", self.voice),
            (TtsEngine::Flite, None) => format!("flite:{}", self.voice),
            (TtsEngine::Flite, Some(_)) => format!("flite:{}+female", self.voice),
        }
    }
}

/// Male-to-female voice conversion of a flite voice, keeping its exact phone
/// timings: flite synthesises with a raised F0 target
/// (`int_f0_target_mean`) and slower by the spectral ratio
/// (`duration_stretch`), then sox's `speed` effect (resampling) scales the
/// whole spectrum, F0 and formants together, like a shorter vocal tract, and
/// brings tempo and phone timings back to the voice's own. Adult female
/// formants sit ~15-20 % above male ones (Peterson & Barney 1952), F0 about
/// an octave higher; every training voice with exact phones is male, so this
/// is the corpus's source of female-range speech with clean labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceConversion {
    /// Mean F0 of the converted speech in Hz (after the spectral shift).
    pub f0_hz: f32,
    /// Spectral shift in cents (+300 = formants and F0 × 1.19; the tempo
    /// is kept).
    pub shift_cents: i32,
}

impl VoiceConversion {
    /// The spectral scale factor `2^(cents / 1200)`.
    pub fn ratio(&self) -> f32 {
        2f32.powf(self.shift_cents as f32 / 1200.0)
    }
}

/// flite's built-in voices (English; `kal` and `awb_time` are diphone /
/// limited-domain, `awb`, `rms`, `slt`, `kal16` are recorded speakers).
pub const FLITE_VOICES: [&str; 5] = ["kal16", "awb", "rms", "slt", "kal"];

/// flite voices never used for training: the articulation evaluation
/// (`talking-head eval`, section 2) synthesises held-out speech with them and
/// grades it against flite's own phone timings.
pub const FLITE_HELDOUT: [&str; 2] = ["slt", "rms"];

/// flite voices the corpus trains on (recorded `awb`, `kal16`, diphone `kal`).
pub const FLITE_TRAIN: [&str; 3] = ["kal16", "awb", "kal"];

/// espeak-ng variants never used for training (held out for evaluation).
pub const ESPEAK_HELDOUT: [&str; 3] = ["f5", "m7", "Annie"];

/// flite's phone name (CMU lower case, `ax`, `pau`) → ARPAbet upper case
/// without stress (`AX`, `SIL`); `None` for names outside the set.
///
/// Schwa stays `AX`, ARPAbet's own symbol, apart from `AH` (/ʌ/ as in
/// "cut"): flite tells them apart and the two differ in articulation (schwa
/// is a reduced mid-central vowel, not an open one), so the articulation
/// evaluation's open set (`AH`, not `AX`) follows flite's own phone names.
/// Training treats `AX` as CMUdict does (`AH0`): the same phone class
/// ([`crate::dataset::phone_class`]) and viseme
/// ([`crate::phonetic::phone_visemes`]) as `AH`.
pub fn flite_phone_to_arpabet(p: &str) -> Option<&'static str> {
    const SET: [&str; 39] = [
        "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
        "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
        "UH", "UW", "V", "W", "Y", "Z", "ZH",
    ];
    let up = p.trim().to_ascii_uppercase();
    match up.as_str() {
        "PAU" | "SIL" | "H#" | "BRTH" => Some("SIL"),
        "AX" => Some("AX"),
        "AXR" => Some("ER"),
        _ => SET.iter().find(|s| **s == up).copied(),
    }
}

/// Phone spans: `(ARPAbet phone, start s, end s)`.
pub type PhoneSpans = Vec<(String, f64, f64)>;

/// Parses flite's `-psdur` output (`pau:0.184 dh:0.246 ...`: phone and its
/// end time in seconds) into `(ARPAbet phone, start, end)` spans; adjacent
/// silences are merged, unknown phones skipped.
pub fn parse_flite_psdur(text: &str) -> Vec<(String, f64, f64)> {
    let mut out: Vec<(String, f64, f64)> = Vec::new();
    let mut t0 = 0.0f64;
    for tok in text.split_whitespace() {
        let Some((p, e)) = tok.rsplit_once(':') else {
            continue;
        };
        let Ok(end) = e.parse::<f64>() else {
            continue;
        };
        if !end.is_finite() || end <= t0 {
            continue;
        }
        if let Some(a) = flite_phone_to_arpabet(p) {
            match out.last_mut() {
                Some(last) if last.0 == "SIL" && a == "SIL" => last.2 = end,
                _ => out.push((a.to_string(), t0, end)),
            }
        }
        t0 = end;
    }
    out
}

/// espeak-ng voice variants used for voice variety (files in
/// `espeak-ng-data/voices/!v`).
pub const ESPEAK_VARIANTS: [&str; 24] = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
    "klatt3", "croak", "whisper", "Alex", "Andrea", "Annie", "belinda", "boris", "david",
    "grandma",
];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn percent(x: f32) -> String {
    format!("{:+.0}%", x)
}

fn run(
    program: &'static str,
    package: &'static str,
    voice: &str,
    cmd: &mut Command,
) -> Result<String, TtsError> {
    let out = cmd.output().map_err(|source| TtsError::NotInstalled {
        program,
        package,
        source,
    })?;
    if !out.status.success() {
        return Err(TtsError::Failed {
            program,
            voice: voice.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Synthesises `text` with `voice` and `prosody`; returns 16 kHz mono
/// samples. `work` is a scratch file path (overwritten, then removed).
pub fn synthesize(
    voice: &TtsVoice,
    text: &str,
    prosody: &EmotionProsody,
    work: &Path,
) -> Result<Vec<f32>, TtsError> {
    synthesize_with_phones(voice, text, prosody, work).map(|(a, _)| a)
}

/// Like [`synthesize`], and for flite also the synthesiser's own phone
/// timings (`-psdur`: exact, `(ARPAbet phone, start s, end s)`); `None` for
/// espeak-ng, which does not report them.
pub fn synthesize_with_phones(
    voice: &TtsVoice,
    text: &str,
    prosody: &EmotionProsody,
    work: &Path,
) -> Result<(Vec<f32>, Option<PhoneSpans>), TtsError> {
    let wav: PathBuf = work.with_extension("wav");
    let mut phones = None;
    match voice.engine {
        TtsEngine::Espeak => {
            let ssml = format!(
                "<speak><prosody pitch=\"{}\" range=\"{}\" rate=\"{}\" volume=\"{}\">{}</prosody></speak>",
                percent(prosody.pitch_percent),
                percent((prosody.range - 1.0) * 100.0),
                percent((prosody.rate - 1.0) * 100.0),
                percent((prosody.volume - 1.0) * 100.0),
                xml_escape(text)
            );
            run(
                "espeak-ng",
                "espeak-ng",
                &voice.voice,
                Command::new("espeak-ng")
                    .arg("-m")
                    .arg("-v")
                    .arg(&voice.voice)
                    .arg("-w")
                    .arg(&wav)
                    .arg(&ssml),
            )?;
        }
        TtsEngine::Flite => {
            // flite's default F0 mean is ~100-170 Hz depending on the voice;
            // scale a nominal 120 Hz (male) / 180 Hz (slt) by the pitch change.
            // A converted voice aims at its own F0 after the spectral shift.
            let base = match &voice.conversion {
                Some(c) => c.f0_hz / c.ratio(),
                None if voice.voice == "slt" => 180.0,
                None => 120.0,
            };
            let f0 = base * (1.0 + prosody.pitch_percent / 100.0);
            // A converted voice is synthesised slower by its spectral ratio
            // and sped back up by resampling below.
            let stretch = voice.conversion.map_or(1.0, |c| c.ratio());
            let sd = match &voice.conversion {
                Some(c) => c.f0_hz / 6.0 * prosody.range,
                None => 20.0 * prosody.range,
            };
            let stdout = run(
                "flite",
                "flite",
                &voice.voice,
                Command::new("flite")
                    .arg("-psdur")
                    .arg("-voice")
                    .arg(&voice.voice)
                    .arg("-t")
                    .arg(text)
                    .arg("-o")
                    .arg(&wav)
                    .arg("--setf")
                    .arg(format!(
                        "duration_stretch={:.3}",
                        stretch / prosody.rate.max(0.2)
                    ))
                    .arg("--setf")
                    .arg(format!("int_f0_target_mean={f0:.1}"))
                    .arg("--setf")
                    .arg(format!("int_f0_target_stddev={sd:.1}")),
            )?;
            let p: PhoneSpans = parse_flite_psdur(&stdout)
                .into_iter()
                .map(|(ph, a, b)| (ph, a / stretch as f64, b / stretch as f64))
                .collect();
            if !p.is_empty() {
                phones = Some(p);
            }
        }
    }
    let wav = match (&voice.conversion, voice.engine) {
        (Some(c), TtsEngine::Flite) if c.shift_cents != 0 => {
            // `speed`: resampling, pitch and tempo together (no time-stretch
            // artefacts); the slower synthesis above brings the duration back.
            let shifted = work.with_extension("shifted.wav");
            run(
                "sox",
                "sox",
                &voice.voice,
                Command::new("sox")
                    .arg("-R")
                    .arg(&wav)
                    .arg("-r")
                    .arg("16000")
                    .arg(&shifted)
                    .arg("speed")
                    .arg(format!("{:.6}", c.ratio())),
            )?;
            let _ = std::fs::remove_file(&wav);
            shifted
        }
        _ => wav,
    };
    let (mut samples, _) = load_mono_16k(&wav)?;
    let _ = std::fs::remove_file(&wav);
    if voice.engine == TtsEngine::Flite && prosody.volume != 1.0 {
        for s in &mut samples {
            *s = (*s * prosody.volume).clamp(-1.0, 1.0);
        }
    }
    Ok((samples, phones))
}

/// Reads the prompt sentences of each language shipped in
/// `assets/corpus/texts/<lang>.txt`: `(language, sentences)`, sorted.
pub fn prompt_texts(dir: &Path) -> std::io::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let lang = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let lines: Vec<String> = std::fs::read_to_string(&path)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if !lines.is_empty() {
            out.push((lang, lines));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::EMOTION_PROSODY;

    #[test]
    fn flite_phone_timings_parse() {
        let p = parse_flite_psdur("pau:0.184 dh:0.246 ax:0.273 m:0.335 zz:0.4 pau:0.5 pau:0.6\n");
        let names: Vec<&str> = p.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["SIL", "DH", "AX", "M", "SIL"]);
        assert_eq!(p[0], ("SIL".to_string(), 0.0, 0.184));
        assert_eq!(p[3], ("M".to_string(), 0.273, 0.335));
        // The unknown `zz` is skipped but its time advances; silences merge.
        assert_eq!(p[4], ("SIL".to_string(), 0.4, 0.6));
        assert!(parse_flite_psdur("garbage :x nan:NaN").is_empty());
    }

    #[test]
    fn synthesises_when_installed() {
        let dir = std::env::temp_dir().join(format!("tts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = TtsVoice::new(TtsEngine::Espeak, "en+f3", "en");
        match synthesize(
            &v,
            "Hello there, <friend> & co.",
            &EMOTION_PROSODY[1],
            &dir.join("a"),
        ) {
            Ok(s) => assert!(s.len() > 8000, "{} samples", s.len()),
            Err(TtsError::NotInstalled { .. }) => eprintln!("espeak-ng not installed: skipped"),
            Err(e) => panic!("{e}"),
        }
        let f = TtsVoice::new(TtsEngine::Flite, "slt", "en");
        match synthesize(&f, "Good morning.", &EMOTION_PROSODY[2], &dir.join("b")) {
            Ok(s) => assert!(s.len() > 4000),
            Err(TtsError::NotInstalled { .. }) => eprintln!("flite not installed: skipped"),
            Err(e) => panic!("{e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Median F0 (Hz) of the loud 40 ms frames by autocorrelation (70-400 Hz).
    fn median_f0(x: &[f32]) -> f32 {
        let (n, hop, sr) = (640usize, 160usize, 16_000f32);
        let mut f0s = Vec::new();
        let mut i = 0;
        while i + n <= x.len() {
            let fr = &x[i..i + n];
            let e: f32 = fr.iter().map(|v| v * v).sum();
            if (e / n as f32).sqrt() > 0.02 {
                let ac = |k: usize| (0..n - k).map(|j| fr[j] * fr[j + k]).sum::<f32>();
                let (lo, hi) = ((sr / 400.0) as usize, (sr / 70.0) as usize);
                let (k, v) = (lo..hi)
                    .map(|k| (k, ac(k)))
                    .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
                if v > 0.4 * e {
                    f0s.push(sr / k as f32);
                }
            }
            i += hop;
        }
        f0s.sort_by(f32::total_cmp);
        f0s.get(f0s.len() / 2).copied().unwrap_or(0.0)
    }

    #[test]
    fn female_conversion_raises_f0_and_keeps_phone_timings() {
        let dir = std::env::temp_dir().join(format!("tts-conv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "Bob and Mary moved to a blue house by the pool.";
        let male = TtsVoice::new(TtsEngine::Flite, "awb", "en");
        let female = TtsVoice {
            conversion: Some(VoiceConversion {
                f0_hz: 210.0,
                shift_cents: 300,
            }),
            ..male.clone()
        };
        assert_eq!(male.speaker_id(), "flite:awb");
        assert_eq!(female.speaker_id(), "flite:awb+female");
        let prosody = &EMOTION_PROSODY[0];
        let (a, pa) = match synthesize_with_phones(&male, text, prosody, &dir.join("m")) {
            Ok(r) => r,
            Err(TtsError::NotInstalled { .. }) => {
                eprintln!("flite not installed: skipped");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let (b, pb) = match synthesize_with_phones(&female, text, prosody, &dir.join("f")) {
            Ok(r) => r,
            Err(TtsError::NotInstalled { program, .. }) => {
                eprintln!("{program} not installed: skipped");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        // Same phones at the same times: awb's durations scale with
        // `duration_stretch`, and resampling undoes the stretch, so the exact
        // labels still fit the converted audio.
        let (pa, pb) = (pa.unwrap(), pb.unwrap());
        assert_eq!(pa.len(), pb.len());
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(x.0, y.0);
            assert!(
                (x.1 - y.1).abs() < 0.015 && (x.2 - y.2).abs() < 0.015,
                "{x:?} vs {y:?}"
            );
        }
        let (la, lb) = (a.len() as f32, b.len() as f32);
        assert!((la - lb).abs() < 0.02 * la, "{la} vs {lb} samples");
        let end = pb.last().unwrap().2 as f32;
        assert!(
            (lb / 16_000.0 - end).abs() < 0.05,
            "{lb} samples, phones end {end} s"
        );
        let (fa, fb) = (median_f0(&a), median_f0(&b));
        assert!((90.0..150.0).contains(&fa), "male F0 {fa}");
        assert!((175.0..250.0).contains(&fb), "converted F0 {fb}");
    }
}
