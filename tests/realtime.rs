//! Real-time rules of the microphone path: the device callback's work
//! ([`MicSink::push_f32`], [`MicSink::push_i16`], [`MicSink::fault`])
//! allocates nothing, counted by a global allocator. It takes no lock by
//! construction: a `MicSink` holds only an `rtrb` producer (wait-free) and
//! atomics.
#![cfg(feature = "mic")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bevy_talking_head::plugin::MicSink;

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

#[test]
fn the_microphone_callback_path_does_not_allocate() {
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
