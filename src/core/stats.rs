//! Grade statistics for the lesson ledger and drift: means, pass rates and a seeded
//! (so reproducible) bootstrap confidence interval of a difference in means.

use serde::Serialize;

/// One graded session's outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Score in 0..1.
    pub score: f64,
    /// Result was `satisfied`.
    pub passed: bool,
}

/// Grades of a group of sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct GradeStats {
    /// Graded sessions.
    pub sessions: u64,
    /// Mean score (`None` without sessions).
    pub mean_score: Option<f64>,
    /// Share that passed.
    pub pass_rate: Option<f64>,
}

impl GradeStats {
    /// Statistics of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> GradeStats {
        if outcomes.is_empty() {
            return GradeStats::default();
        }
        let n = outcomes.len() as f64;
        GradeStats {
            sessions: outcomes.len() as u64,
            mean_score: Some(outcomes.iter().map(|o| o.score).sum::<f64>() / n),
            pass_rate: Some(outcomes.iter().filter(|o| o.passed).count() as f64 / n),
        }
    }
}

/// SplitMix64: tiny, seedable, good enough for resampling.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Percentile bootstrap interval of `mean(after) - mean(before)` at `level` (e.g. 0.95),
/// resampling each group with replacement `resamples` times. `None` when a group is empty.
pub fn bootstrap_diff_ci(before: &[f64], after: &[f64], resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    if before.is_empty() || after.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut diffs = Vec::with_capacity(resamples);
    let resample_mean = |xs: &[f64], rng: &mut SplitMix64| {
        let mut sum = 0.0;
        for _ in 0..xs.len() {
            sum += xs[rng.below(xs.len())];
        }
        sum / xs.len() as f64
    };
    for _ in 0..resamples {
        let b = resample_mean(before, &mut rng);
        let a = resample_mean(after, &mut rng);
        diffs.push(a - b);
    }
    diffs.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| diffs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Some((at(tail), at(1.0 - tail)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_drop_has_an_interval_below_zero() {
        let before = vec![1.0; 30];
        let mut after = vec![0.0; 25];
        after.extend([1.0; 5]);
        let (lo, hi) = bootstrap_diff_ci(&before, &after, 2000, 0.95, 7).unwrap();
        assert!(lo < hi && hi < 0.0, "({lo}, {hi})");
        // Same data, same seed: same interval.
        assert_eq!(bootstrap_diff_ci(&before, &after, 2000, 0.95, 7), Some((lo, hi)));
    }

    #[test]
    fn noise_has_an_interval_around_zero() {
        let mut rng = SplitMix64::new(1);
        let before: Vec<f64> = (0..40).map(|_| if rng.unit() < 0.5 { 1.0 } else { 0.0 }).collect();
        let after: Vec<f64> = (0..40).map(|_| if rng.unit() < 0.5 { 1.0 } else { 0.0 }).collect();
        let (lo, hi) = bootstrap_diff_ci(&before, &after, 2000, 0.95, 7).unwrap();
        assert!(lo < 0.0 && hi > 0.0, "({lo}, {hi})");
        assert_eq!(bootstrap_diff_ci(&[], &after, 10, 0.95, 7), None);
    }

    #[test]
    fn stats_of_outcomes() {
        let s = GradeStats::of(&[Outcome { score: 1.0, passed: true }, Outcome { score: 0.5, passed: false }]);
        assert_eq!((s.sessions, s.mean_score, s.pass_rate), (2, Some(0.75), Some(0.5)));
        assert_eq!(GradeStats::of(&[]).mean_score, None);
    }
}

/// Two-sided Fisher exact test of the 2×2 table `[[a, b], [c, d]]`: the probability,
/// with the margins fixed, of a table at most as likely as this one.
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let n = (a + b + c + d) as usize;
    let mut lf = Vec::with_capacity(n + 1);
    lf.push(0.0f64);
    for i in 1..=n {
        lf.push(lf[i - 1] + (i as f64).ln());
    }
    let (r1, r2, c1) = (a + b, c + d, a + c);
    // log P(table with top-left x) under the hypergeometric distribution.
    let lp = |x: u64| -> f64 {
        let (xb, xc) = (r1 - x, c1 - x);
        let xd = r2 - xc;
        lf[r1 as usize] + lf[r2 as usize] + lf[c1 as usize] + lf[n - c1 as usize]
            - lf[n]
            - lf[x as usize]
            - lf[xb as usize]
            - lf[xc as usize]
            - lf[xd as usize]
    };
    let observed = lp(a);
    let lo = c1.saturating_sub(r2);
    let hi = r1.min(c1);
    let mut p = 0.0;
    for x in lo..=hi {
        let l = lp(x);
        if l <= observed + 1e-7 {
            p += l.exp();
        }
    }
    p.min(1.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fisher_tests {
    use super::fisher_exact;

    #[test]
    fn matches_known_values() {
        // The tea-tasting table: p = 0.4857 (two-sided).
        assert!((fisher_exact(3, 1, 1, 3) - 0.4857).abs() < 1e-3);
        // A strong association.
        assert!(fisher_exact(10, 0, 0, 10) < 1e-4);
        assert!((fisher_exact(5, 5, 5, 5) - 1.0).abs() < 1e-9);
    }
}
