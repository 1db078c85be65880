//! Small statistics on `f64` slices shared by the upper-face statistics,
//! their measurement (`talking_head_train`) and the evaluation: one
//! definition each.

/// Arithmetic mean; 0 for an empty slice.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Population standard deviation; 0 for fewer than 2 values.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Linear-interpolated quantile, `q` in `[0, 1]`; 0 for an empty slice.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Pearson correlation of the common prefix of `a` and `b`, in `[-1, 1]`;
/// `None` for fewer than 2 values or a constant series.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (ma, mb) = (mean(&a[..n]), mean(&b[..n]));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    let d = (saa * sbb).sqrt();
    (d > 1e-12).then(|| (sab / d).clamp(-1.0, 1.0))
}

/// Pearson correlation coefficient of two series, in `[-1, 1]`.
///
/// Uses the first `min(a.len(), b.len())` pairs and skips every pair in
/// which either value is NaN or infinite. Returns 0 — never NaN — when fewer
/// than 2 pairs remain or when either series is constant over them (zero
/// variance). Accumulates in `f64` (two-pass, so long series of large
/// values stay accurate).
pub fn pearson_f32(a: &[f32], b: &[f32]) -> f32 {
    let pairs = || {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(&x, &y)| (f64::from(x), f64::from(y)))
    };
    let (mut n, mut sa, mut sb) = (0usize, 0.0f64, 0.0f64);
    for (x, y) in pairs() {
        n += 1;
        sa += x;
        sb += y;
    }
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (sa / n as f64, sb / n as f64);
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in pairs() {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return 0.0;
    }
    let r = sab / (saa.sqrt() * sbb.sqrt());
    if r.is_finite() {
        r.clamp(-1.0, 1.0) as f32
    } else {
        0.0
    }
}

/// Population standard deviation of `f32` values, accumulated in `f64`; 0
/// for fewer than 2 values.
pub fn std_dev_f32(x: &[f32]) -> f32 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
    (x.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt() as f32
}
