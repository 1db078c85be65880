//! Criterion benchmarks of the real-time hot path.
//!
//! * `logmel_step`: [`LogMelStreamer::push`] of one 10 ms hop (160 samples)
//!   and of one 20 ms animation frame (320 samples) of 16 kHz audio.
//! * `student_step`: one [`TalkingHeadModel::step_items`] with the one-step
//!   student for 1, 8, 32 and 128 sessions at once, on a random model of
//!   the default (shipped) size and storage (weight matrices in f16).
//! * `matmul_peak`: a 256³ fp32 matrix product through `gemm` on one thread
//!   (throughput in FLOP/s), the peak the student step is compared with.
//! * `teacher_vs_student`: one student step against one teacher step (the
//!   config's DDIM steps and guidance scale) for a single session.
//!
//! Model steps are timed in the steady state of a long stream: past the
//! look-ahead (every step runs the denoiser) with a full attention window,
//! the same regime as `talking-head bench`.
//!
//! Run with `cargo bench --bench core` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bevy_talking_head::features::{LogMelStreamer, MelConfig};
use bevy_talking_head::model::{
    FrameInput, ModelConfig, OutputFrame, Sampler, StepScratch, StreamState, TalkingHeadModel,
};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Frames stepped past a full attention window before timing starts.
const WARM_FRAMES: usize = 8;

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

/// A deterministic speech-like 16 kHz signal (harmonics under a syllable
/// envelope), so the FFT sees realistic, non-zero input.
fn speechy(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let env = (t * 2.0 * std::f64::consts::PI * 3.0).sin().max(0.0);
            let v: f64 = (1..8)
                .map(|h| (t * 2.0 * std::f64::consts::PI * 130.0 * h as f64).sin() / h as f64)
                .sum();
            (0.3 * env * v) as f32
        })
        .collect()
}

fn logmel_step(c: &mut Criterion) {
    let audio = speechy(16_000);
    let mut group = c.benchmark_group("logmel_step");
    for (label, len) in [("hop_10ms", 160usize), ("frame_20ms", 320)] {
        let mut streamer = LogMelStreamer::new(MelConfig::default()).expect("default mel config");
        let mut out = Vec::with_capacity(4 * streamer.n_mels());
        // Fill the analysis window so every push emits frames.
        streamer.push(&audio[..1600], &mut out);
        let mut pos = 0;
        group.throughput(Throughput::Elements(len as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                if pos + len > audio.len() {
                    pos = 0;
                }
                out.clear();
                let n = streamer.push(black_box(&audio[pos..pos + len]), &mut out);
                pos += len;
                black_box((n, out.as_slice()));
            })
        });
    }
    group.finish();
}

/// `b` sessions of one model in the steady state of a long stream (past
/// the look-ahead, attention window full), stepped through
/// [`TalkingHeadModel::step_items`] with buffers kept between steps, as the
/// worker runs them.
struct Batch {
    model: TalkingHeadModel,
    states: Vec<StreamState>,
    feats: Vec<Vec<f32>>,
    scratch: StepScratch,
    out: Vec<(usize, OutputFrame)>,
}

impl Batch {
    fn new(model: TalkingHeadModel, b: usize, sampler: Sampler) -> Self {
        let cfg = model.config();
        let states = (0..b)
            .map(|i| model.new_state(i as u64).expect("state"))
            .collect();
        // Log-mel-like values (log10 energies around -4..1), different per session.
        let feats = (0..b)
            .map(|i| {
                (0..cfg.input_dim())
                    .map(|j| ((i * 31 + j * 7) % 17) as f32 * 0.3 - 4.0)
                    .collect()
            })
            .collect();
        let mut batch = Self {
            model,
            states,
            feats,
            scratch: StepScratch::default(),
            out: Vec::with_capacity(b),
        };
        let warm = batch.model.config().context_frames + WARM_FRAMES;
        for _ in 0..warm {
            batch.step(sampler);
        }
        batch
    }

    fn step(&mut self, sampler: Sampler) {
        let mut items: Vec<(&mut StreamState, FrameInput<'_>)> = self
            .states
            .iter_mut()
            .zip(&self.feats)
            .map(|(s, f)| {
                (
                    s,
                    FrameInput {
                        log_mel: f,
                        rms_dbfs: -20.0,
                    },
                )
            })
            .collect();
        let due: Vec<usize> = (0..items.len()).collect();
        self.out.clear();
        self.model
            .step_items(&mut items, &due, sampler, &mut self.scratch, &mut self.out)
            .expect("model step");
        black_box(&self.out);
    }

    /// Times `iters` steps (the two small index vectors built per step are
    /// included; they are what a caller without a worker would build).
    fn time(&mut self, iters: u64, sampler: Sampler) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            self.step(sampler);
        }
        t.elapsed()
    }
}

/// A random model of the default (shipped) size, stored and loaded back as
/// the shipped file is (weight matrices in f16), so the kernels take the
/// shipped model's paths.
fn default_model() -> TalkingHeadModel {
    let model =
        TalkingHeadModel::random(ModelConfig::default(), 0).expect("random default-size model");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("default-f16.safetensors");
    model.save_f16(&path).expect("write the f16 checkpoint");
    TalkingHeadModel::load(&path).expect("load the f16 checkpoint")
}

fn student_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("student_step");
    for b in [1usize, 8, 32, 128] {
        let mut batch = Batch::new(default_model(), b, Sampler::Student);
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::new("batch", b), &b, |bench, _| {
            bench.iter_custom(|iters| batch.time(iters, Sampler::Student))
        });
    }
    group.finish();
}

/// The machine's fp32 matrix-product rate through the `gemm` crate (the
/// library the streaming kernels call), one thread: the reference for the
/// student step's GFLOP/s (`talking-head bench` prints both).
fn matmul_peak(c: &mut Criterion) {
    let mut probe = bevy_talking_head::model::MatmulProbe::new(256);
    let mut group = c.benchmark_group("matmul_peak");
    group.throughput(Throughput::Elements(probe.flops()));
    group.bench_function("sgemm_256", |bench| {
        bench.iter(|| {
            black_box(probe.run());
        })
    });
    group.finish();
}

fn teacher_vs_student(c: &mut Criterion) {
    let model = default_model();
    let d = &model.config().diffusion;
    let teacher = Sampler::Teacher {
        steps: d.teacher_steps,
        guidance: d.guidance_scale,
    };
    let teacher_label = format!("teacher_{}_steps", d.teacher_steps);
    let mut group = c.benchmark_group("teacher_vs_student");
    let mut student = Batch::new(default_model(), 1, Sampler::Student);
    group.bench_function("student", |bench| {
        bench.iter_custom(|iters| student.time(iters, Sampler::Student))
    });
    let mut teacher_batch = Batch::new(model, 1, teacher);
    group.bench_function(teacher_label, |bench| {
        bench.iter_custom(|iters| teacher_batch.time(iters, teacher))
    });
    group.finish();
}

fn main() {
    // The product runs the model on ONE compute thread (the worker installs a
    // 1-thread rayon pool; `talking-head` sets RAYON_NUM_THREADS=1). candle's
    // CPU matmul parallelises on the current rayon pool and sizes its split
    // from RAYON_NUM_THREADS (default: every physical core), so measure the
    // same way: a 1-thread pool, and RAYON_NUM_THREADS=1 unless the caller
    // chose a value.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet (first statement of `main`).
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let pool = rayon_core::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("1-thread rayon pool");
    pool.install(|| {
        let mut c = criterion().configure_from_args();
        logmel_step(&mut c);
        student_step(&mut c);
        matmul_peak(&mut c);
        teacher_vs_student(&mut c);
        c.final_summary();
    });
}
