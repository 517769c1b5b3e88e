//! A fixed-size log-linear histogram of durations in microseconds.
//!
//! Why our own: it needs to be mergeable across processes (children send theirs as JSON to
//! the parent) and cheap to record into from thousands of tasks; 2,048 `u64` buckets do both.
//! Values below 128 µs get a bucket each; above that every power of two is split into 64
//! buckets, so a bucket is at most 1/64 (1.6 %) wide relative to its values. Percentiles
//! report a bucket's upper bound (never understating a latency), capped by the exact maximum.

use serde::{Deserialize, Serialize};

/// Values below this are counted exactly, one bucket per microsecond.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Enough for values up to 2^37 µs (38 hours); larger values land in the last bucket.
const BUCKETS: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let msb = 63 - u64::from(value.leading_zeros()); // >= 7
    let shift = msb - 6;
    let top = value >> shift; // in [64, 128)
    let index = LINEAR + (shift - 1) * SUB + (top - SUB);
    (index as usize).min(BUCKETS - 1)
}

/// The largest value that lands in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let shift = (index - LINEAR) / SUB + 1;
    let top = (index - LINEAR) % SUB + SUB;
    ((top + 1) << shift) - 1
}

impl Hist {
    pub fn record(&mut self, micros: u64) {
        self.counts[index_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    pub fn merge(&mut self, other: &Hist) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The smallest recorded-bucket bound with at least `p` percent of the samples at or
    /// below it (nearest-rank definition); 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                // The last bucket also holds everything too large for the others.
                if index == BUCKETS - 1 {
                    return self.max;
                }
                return upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

/// The wire form: only the non-empty buckets, as `[index, count]` pairs.
#[derive(Serialize, Deserialize)]
struct Sparse {
    buckets: Vec<(u32, u64)>,
    max: u64,
    sum: u128,
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Sparse {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(index, count)| (index as u32, *count))
                .collect(),
            max: self.max,
            sum: self.sum,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sparse = Sparse::deserialize(deserializer)?;
        let mut hist = Hist {
            max: sparse.max,
            sum: sparse.sum,
            ..Hist::default()
        };
        for (index, count) in sparse.buckets {
            let slot = hist
                .counts
                .get_mut(index as usize)
                .ok_or_else(|| serde::de::Error::custom("histogram bucket out of range"))?;
            *slot += count;
            hist.total += count;
        }
        Ok(hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut previous = None;
        for value in 0..1_000_000u64 {
            let index = index_of(value);
            if let Some(prev) = previous {
                assert!(index == prev || index == prev + 1, "gap at {value}");
            }
            assert!(upper_bound(index) >= value, "bound below value at {value}");
            if index > 0 {
                assert!(upper_bound(index - 1) < value, "overlap at {value}");
            }
            previous = Some(index);
        }
    }

    #[test]
    fn relative_error_is_bounded() {
        for value in [
            128u64,
            1000,
            12_345,
            999_999,
            5_000_000,
            60_000_000,
            1 << 36,
        ] {
            let bound = upper_bound(index_of(value));
            let error = (bound - value) as f64 / value as f64;
            assert!(error <= 1.0 / 64.0, "{value}: bound {bound}, error {error}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut hist = Hist::default();
        for value in 1..=100 {
            hist.record(value);
        }
        assert_eq!(hist.count(), 100);
        assert_eq!(hist.percentile(50.0), 50);
        assert_eq!(hist.percentile(90.0), 90);
        assert_eq!(hist.percentile(99.0), 99);
        assert_eq!(hist.percentile(100.0), 100);
        assert_eq!(hist.percentile(0.0), 1);
        assert_eq!(hist.max(), 100);
        assert_eq!(hist.mean(), 50);
    }

    #[test]
    fn percentiles_of_large_values_are_close_and_never_above_max() {
        let mut hist = Hist::default();
        // 1 ms .. 1000 ms in 1 ms steps.
        for ms in 1..=1000u64 {
            hist.record(ms * 1000);
        }
        for (p, exact) in [(50.0, 500_000u64), (90.0, 900_000), (99.0, 990_000)] {
            let got = hist.percentile(p);
            assert!(got >= exact, "p{p}: {got} < {exact}");
            assert!(
                got as f64 <= exact as f64 * (1.0 + 1.0 / 64.0),
                "p{p}: {got}"
            );
        }
        assert_eq!(hist.percentile(100.0), 1_000_000);
        assert_eq!(hist.max(), 1_000_000);
    }

    #[test]
    fn one_outlier_shows_in_p99_only_when_it_is_one_percent() {
        let mut hist = Hist::default();
        for _ in 0..99 {
            hist.record(10);
        }
        hist.record(5_000_000);
        assert_eq!(hist.percentile(99.0), 10);
        assert_eq!(hist.percentile(99.9), 5_000_000);
        assert_eq!(hist.max(), 5_000_000);
    }

    #[test]
    fn empty_is_zero() {
        let hist = Hist::default();
        assert_eq!(hist.percentile(50.0), 0);
        assert_eq!(hist.max(), 0);
        assert_eq!(hist.mean(), 0);
    }

    #[test]
    fn huge_values_saturate_in_the_last_bucket() {
        let mut hist = Hist::default();
        hist.record(u64::MAX);
        assert_eq!(hist.percentile(50.0), u64::MAX);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        let mut both = Hist::default();
        for value in 0..5000u64 {
            let v = value * value % 77_777;
            if value % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            both.record(v);
        }
        a.merge(&b);
        assert_eq!(a, both);
    }

    #[test]
    fn survives_json() {
        let mut hist = Hist::default();
        for value in [0, 5, 127, 128, 4000, 123_456_789] {
            hist.record(value);
        }
        let json = serde_json::to_string(&hist).unwrap();
        let back: Hist = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hist);
    }

    #[test]
    fn rejects_bad_bucket_indexes() {
        let bad = r#"{"buckets":[[99999,1]],"max":1,"sum":1}"#;
        assert!(serde_json::from_str::<Hist>(bad).is_err());
    }
}
