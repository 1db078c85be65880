//! Real-time rules, counted by a global allocator (per thread):
//!
//! - the microphone path: the device callback's work
//!   ([`MicSink::push_f32`], [`MicSink::push_i16`], [`MicSink::fault`])
//!   allocates nothing. It takes no lock by construction: a `MicSink` holds
//!   only an `rtrb` producer (wait-free) and atomics;
//! - the model's student step ([`TalkingHeadModel::step_items`]) allocates
//!   nothing of its own once its scratch buffers have seen the batch size.
//!   A single session's step allocates nothing at all. A batched step's only
//!   allocations are inside the `gemm` crate, which takes a small workspace
//!   per matrix product with more than one row (its `did_pack_lhs` flags
//!   and, when it packs, a packing buffer): at most two for each of the
//!   step's [`GEMM_CALLS`] products (18 measured per step);
//! - a session's front-end (audio in, log-mel frames out) allocates
//!   nothing in steady state.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bevy_talking_head::audio::AudioFormat;
use bevy_talking_head::model::{
    FrameInput, ModelConfig, Sampler, StepScratch, StreamState, TalkingHeadModel,
};
use bevy_talking_head::runtime::{Pcm, Session, StepBuffers, step_sessions};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(|c| c.get());
    f();
    ALLOCS.with(|c| c.get()) - before
}

#[cfg(feature = "mic")]
#[test]
fn the_microphone_callback_path_does_not_allocate() {
    use bevy_talking_head::plugin::MicSink;

    let (mut sink, mut consumer) = MicSink::with_capacity(40_000);
    let f32s: Vec<f32> = (0..480).map(|i| (i as f32 * 0.01).sin()).collect();
    let i16s: Vec<i16> = (0..480).map(|i| (i * 37 % 2000) as i16).collect();
    // 10 s of 48 kHz callbacks of 10 ms, the ring drained as the plugin does;
    // then a full ring (overflows) and a device error.
    let n = allocations_in(|| {
        for k in 0..1000 {
            if k % 2 == 0 {
                sink.push_f32(&f32s);
            } else {
                sink.push_i16(&i16s);
            }
            if k < 900 {
                while consumer.pop().is_ok() {}
            }
        }
        sink.fault();
    });
    assert_eq!(n, 0, "the callback path allocated {n} times");
    assert!(sink.overflows() > 0, "the full ring must count overflows");
}

/// Matrix products of one student step of the default model: encoder
/// input projection and conv, 4 per transformer layer (2 layers), denoiser
/// conditioning, input, 2 per residual block (2 blocks) and output.
const GEMM_CALLS: u64 = 2 + 4 * 2 + 2 + 2 * 2 + 1;

/// Allocations per steady-state student step of `b` sessions, on the
/// shipped model (its kernels: multi-query attention, f16 weights at small
/// batches).
fn allocations_per_step(b: usize) -> f64 {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/default.safetensors");
    let model = TalkingHeadModel::load(&path).unwrap();
    let cfg = model.config().clone();
    let feats = vec![-3.0f32; cfg.input_dim()];
    let mut states: Vec<StreamState> = (0..b as u64).map(|i| model.new_state(i).unwrap()).collect();
    let mut items: Vec<(&mut StreamState, FrameInput<'_>)> = states
        .iter_mut()
        .map(|s| {
            (
                s,
                FrameInput {
                    log_mel: &feats,
                    rms_dbfs: -20.0,
                },
            )
        })
        .collect();
    let due: Vec<usize> = (0..b).collect();
    let mut scratch = StepScratch::default();
    let mut out = Vec::with_capacity(b);
    let mut step = |out: &mut Vec<_>| {
        out.clear();
        model
            .step_items(&mut items, &due, Sampler::Student, &mut scratch, out)
            .unwrap();
    };
    for _ in 0..4 {
        step(&mut out);
    }
    let n = allocations_in(|| {
        for _ in 0..200 {
            step(&mut out);
        }
    });
    assert_eq!(out.len(), b);
    n as f64 / 200.0
}

#[test]
fn a_single_session_step_allocates_nothing() {
    let per_step = allocations_per_step(1);
    assert_eq!(per_step, 0.0, "{per_step} allocations per step");
}

#[test]
fn a_batched_step_allocates_only_the_gemm_workspaces() {
    for b in [8, 32] {
        let per_step = allocations_per_step(b);
        println!("batch {b}: {per_step} allocations per step");
        assert!(
            per_step <= 2.0 * GEMM_CALLS as f64,
            "batch {b}: {per_step} allocations per step, more than the GEMM workspaces"
        );
    }
}

#[test]
fn session_front_ends_allocate_nothing_in_steady_state() {
    let model = TalkingHeadModel::random(ModelConfig::default(), 6).unwrap();
    let fmt = AudioFormat {
        sample_rate: 48_000,
        channels: 2,
    };
    let mut sessions: Vec<Session> = (0..4)
        .map(|i| Session::new(&model, fmt, i).unwrap())
        .collect();
    // 10 ms of stereo 48 kHz speech-like audio per push, as a game sends it.
    let chunk: Vec<f32> = (0..960)
        .map(|i| 0.3 * (i as f32 * 0.07).sin() * (i as f32 * 0.003).cos())
        .collect();
    let mut buffers = StepBuffers::default();
    let mut frames = Vec::with_capacity(64);
    let (mut front, mut steps, mut in_steps) = (0u64, 0u64, 0u64);
    for k in 0..400 {
        let n = allocations_in(|| {
            for s in sessions.iter_mut() {
                s.push(Pcm::F32(&chunk)).unwrap();
            }
        });
        // Warm-up (resampler, mel window, look-ahead, buffers) is not counted.
        if k >= 100 {
            front += n;
        }
        while sessions.iter().any(|s| s.pending_frames() > 0) {
            frames.clear();
            let n = allocations_in(|| {
                step_sessions(
                    &model,
                    &mut sessions,
                    Sampler::Student,
                    &mut buffers,
                    &mut frames,
                )
                .unwrap();
            });
            if k >= 100 {
                steps += 1;
                in_steps += n;
            }
        }
    }
    assert!(sessions.iter().all(|s| s.frames_out() > 100));
    assert!(steps >= 140, "{steps}");
    assert_eq!(
        front, 0,
        "3 s of audio into 4 sessions' front-ends allocated {front} times"
    );
    assert!(
        in_steps <= steps * 2 * GEMM_CALLS,
        "{in_steps} allocations in {steps} batched steps: more than the GEMM workspaces"
    );
}
