//! Percentiles and medians: the pure arithmetic behind every figure in the table.

use std::time::Duration;

/// The nearest-rank percentile (`p` in 0–100) of sorted samples; `None` when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of values (mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Milliseconds, for display and JSON.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&s, 50.0), Some(d(50)));
        assert_eq!(percentile(&s, 99.0), Some(d(99)));
        assert_eq!(percentile(&s, 100.0), Some(d(100)));
        assert_eq!(percentile(&s, 0.0), Some(d(1)));
        let three = [d(1), d(2), d(30)];
        assert_eq!(percentile(&three, 50.0), Some(d(2)));
        assert_eq!(percentile(&three, 99.0), Some(d(30)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn medians_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
