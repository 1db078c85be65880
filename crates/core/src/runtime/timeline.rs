//! Sampling a sequence of frames at an arbitrary time: the one timeline
//! lookup shared by the plugin's frame sampler and `bake`'s resampling to
//! the output frame rate (values are then blended with
//! [`crate::rig::lerp_weights`]).

/// Where a time falls among `n` frames with increasing times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FramePosition {
    /// There are no frames.
    Empty,
    /// Before (or at) no frame's time: earlier than frame 0 by `gap`
    /// (same unit as the times, ≥ 0).
    Before {
        /// `time_of(0) - t`.
        gap: f64,
    },
    /// Between frames `lo` and `lo + 1`, at fraction `w` in `[0, 1]` of the
    /// way from `lo` to `lo + 1`.
    Between {
        /// The earlier frame.
        lo: usize,
        /// Interpolation weight of frame `lo + 1`.
        w: f32,
    },
    /// At or after the last frame's time by `gap` (≥ 0).
    After {
        /// `t - time_of(n - 1)`.
        gap: f64,
    },
}

/// Locates time `t` among `n` frames whose times `time_of(i)` increase with
/// `i` (binary search, `O(log n)`): frames with `time_of(i) <= t` are
/// behind it. Times and `t` share one unit (seconds, 16 kHz samples, ...).
pub fn locate(n: usize, time_of: impl Fn(usize) -> f64, t: f64) -> FramePosition {
    if n == 0 {
        return FramePosition::Empty;
    }
    // First index whose time is > t.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if time_of(mid) <= t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    match lo {
        0 => FramePosition::Before {
            gap: time_of(0) - t,
        },
        j if j == n => FramePosition::After {
            gap: t - time_of(n - 1),
        },
        j => {
            let (t0, t1) = (time_of(j - 1), time_of(j));
            FramePosition::Between {
                lo: j - 1,
                w: ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) as f32,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_before_between_after() {
        let times = [1.0, 2.0, 4.0];
        let at = |t| locate(times.len(), |i| times[i], t);
        assert_eq!(locate(0, |_| 0.0, 1.0), FramePosition::Empty);
        assert_eq!(at(0.5), FramePosition::Before { gap: 0.5 });
        assert_eq!(at(1.0), FramePosition::Between { lo: 0, w: 0.0 });
        assert_eq!(at(3.0), FramePosition::Between { lo: 1, w: 0.5 });
        assert_eq!(at(4.0), FramePosition::After { gap: 0.0 });
        assert_eq!(at(5.5), FramePosition::After { gap: 1.5 });
    }
}
