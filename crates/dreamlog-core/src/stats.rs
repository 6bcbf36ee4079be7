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

/// Past this many values in all, the bootstrap's percentile interval of a mean is the
/// normal one to within a rounding (the central limit theorem has long taken over), and
/// `resamples` × n draws would cost seconds: the normal interval is used instead.
pub const NORMAL_FROM: usize = 20_000;

/// The two-sided normal quantile of `level` (0.95 → 1.96), by bisection on `normal_upper`.
fn z_of(level: f64) -> f64 {
    let tail = (1.0 - level) / 2.0;
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if normal_upper(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Percentile bootstrap interval of `mean(after) - mean(before)` at `level` (e.g. 0.95),
/// resampling each group with replacement `resamples` times; past [`NORMAL_FROM`] values
/// the normal (Welch) interval. `None` when a group is empty.
pub fn bootstrap_diff_ci(before: &[f64], after: &[f64], resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    // Each value a cluster of its own: the same draws, and the sample variance over n.
    let ones = |xs: &[f64]| xs.iter().map(|x| (*x, 1.0)).collect::<Vec<ClusterSum>>();
    cluster_diff_ci(&ones(before), &ones(after), resamples, level, seed)
}

/// Cluster bootstrap interval of the mean over all values, at `level`: the clusters (the
/// tasks: trials of one task are not independent evidence) are resampled with
/// replacement `resamples` times, each replicate the mean of every value of the drawn
/// clusters. `None` with fewer than two clusters (one task alone says nothing of how
/// another would go).
pub fn cluster_bootstrap_mean_ci(clusters: &[Vec<f64>], resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    let sums: Vec<ClusterSum> =
        clusters.iter().filter(|c| !c.is_empty()).map(|c| (c.iter().sum::<f64>(), c.len() as f64)).collect();
    cluster_mean_ci(&sums, resamples, level, seed)
}

/// A cluster's values as drift keeps them: (sum, count).
pub type ClusterSum = (f64, f64);

/// The ratio mean of clusters and the variance of that mean (the linearised,
/// cluster-robust one: k/(k−1) · Σ (sᵢ − m·nᵢ)² / N²; with clusters of one value, the
/// sample variance over n).
fn cluster_mean_var(clusters: &[ClusterSum]) -> (f64, f64) {
    let k = clusters.len() as f64;
    let (total, n) = clusters.iter().fold((0.0, 0.0), |(t, c), (s, m)| (t + s, c + m));
    let m = total / n;
    let ss = clusters.iter().map(|(s, c)| (s - m * c) * (s - m * c)).sum::<f64>();
    (m, if clusters.len() > 1 { k / (k - 1.0) * ss / (n * n) } else { 0.0 })
}

/// One bootstrap replicate of the ratio mean of `clusters`: as many draws with
/// replacement as there are clusters.
fn resample_ratio(clusters: &[ClusterSum], rng: &mut SplitMix64) -> f64 {
    let (mut total, mut n) = (0.0, 0.0);
    for _ in 0..clusters.len() {
        let (s, c) = clusters[rng.below(clusters.len())];
        total += s;
        n += c;
    }
    total / n
}

/// [`cluster_bootstrap_mean_ci`] over clusters given as (sum, count); past
/// [`NORMAL_FROM`] clusters the normal interval with the cluster-robust variance.
pub fn cluster_mean_ci(clusters: &[ClusterSum], resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    if clusters.len() < 2 || resamples == 0 {
        return None;
    }
    if clusters.len() > NORMAL_FROM {
        let (m, v) = cluster_mean_var(clusters);
        let half = z_of(level) * v.sqrt();
        return Some((m - half, m + half));
    }
    let mut rng = SplitMix64::new(seed);
    let means = (0..resamples).map(|_| resample_ratio(clusters, &mut rng)).collect();
    Some(percentiles(means, level))
}

/// Interval of the difference of ratio means `after − before` at `level`, resampling
/// each side's clusters (tasks) with replacement `resamples` times; past [`NORMAL_FROM`]
/// clusters in all, the normal interval with cluster-robust variances. With clusters of
/// one value each it is [`bootstrap_diff_ci`]. `None` when a side is empty.
pub fn cluster_diff_ci(
    before: &[ClusterSum],
    after: &[ClusterSum],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    if before.is_empty() || after.is_empty() || resamples == 0 {
        return None;
    }
    if before.len() + after.len() > NORMAL_FROM {
        let ((mb, vb), (ma, va)) = (cluster_mean_var(before), cluster_mean_var(after));
        let half = z_of(level) * (vb + va).sqrt();
        return Some((ma - mb - half, ma - mb + half));
    }
    let mut rng = SplitMix64::new(seed);
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let b = resample_ratio(before, &mut rng);
        let a = resample_ratio(after, &mut rng);
        diffs.push(a - b);
    }
    Some(percentiles(diffs, level))
}

/// The central `level` interval of bootstrap replicates.
fn percentiles(mut xs: Vec<f64>, level: f64) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| xs[((q * (n - 1) as f64).round() as usize).min(n - 1)];
    (at(tail), at(1.0 - tail))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn trials_of_one_task_widen_the_interval_instead_of_narrowing_it() {
        // Ten tasks a side, each tried 20 times with the same outcome: 200 values but ten
        // pieces of evidence a side. Counted as values the interval is far too narrow.
        let side =
            |pass: usize| -> Vec<Vec<f64>> { (0..10).map(|t| vec![if t < pass { 1.0 } else { 0.0 }; 20]).collect() };
        let (b, a) = (side(6), side(4));
        let flat = |c: &[Vec<f64>]| c.concat();
        let sums = |c: &[Vec<f64>]| c.iter().map(|v| (v.iter().sum::<f64>(), v.len() as f64)).collect::<Vec<_>>();
        let (lo_v, hi_v) = bootstrap_diff_ci(&flat(&b), &flat(&a), 2000, 0.95, 3).unwrap();
        let (lo_c, hi_c) = cluster_diff_ci(&sums(&b), &sums(&a), 2000, 0.95, 3).unwrap();
        assert!(hi_v < 0.0, "as 400 independent values the fall looks certain: ({lo_v}, {hi_v})");
        assert!(hi_c > 0.0, "as 20 tasks it is not: ({lo_c}, {hi_c})");
        assert!(hi_c - lo_c > 2.0 * (hi_v - lo_v));
    }

    #[test]
    fn the_normal_interval_of_values_is_welch_s() {
        let before: Vec<f64> = (0..NORMAL_FROM).map(|i| (i % 3) as f64).collect();
        let after: Vec<f64> = (0..50).map(|i| (i % 2) as f64).collect();
        // Welch by hand: the difference of means ± z · √(s²_b/n_b + s²_a/n_a).
        let mean_var = |xs: &[f64]| {
            let n = xs.len() as f64;
            let m = xs.iter().sum::<f64>() / n;
            (m, xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0) / n)
        };
        let ((mb, vb), (ma, va)) = (mean_var(&before), mean_var(&after));
        let half = 1.959964 * (vb + va).sqrt();
        let (lo, hi) = bootstrap_diff_ci(&before, &after, 10, 0.95, 1).unwrap();
        assert!((lo - (ma - mb - half)).abs() < 1e-5 && (hi - (ma - mb + half)).abs() < 1e-5, "({lo}, {hi})");
        assert_eq!(cluster_diff_ci(&[], &[(1.0, 1.0)], 10, 0.95, 1), None);
    }

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

    /// Every value its own cluster: the plain (trial-level) bootstrap of a mean.
    fn singletons(xs: &[f64]) -> Vec<Vec<f64>> {
        xs.iter().map(|x| vec![*x]).collect()
    }

    #[test]
    fn a_mean_interval_holds_the_mean_and_narrows_with_more_clusters() {
        let few: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let many: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let (a, b) = cluster_bootstrap_mean_ci(&singletons(&few), 2000, 0.95, 3).unwrap();
        let (c, d) = cluster_bootstrap_mean_ci(&singletons(&many), 2000, 0.95, 3).unwrap();
        assert!(a < 0.5 && 0.5 < b && c < 0.5 && 0.5 < d, "({a}, {b}) ({c}, {d})");
        assert!(d - c < b - a, "({a}, {b}) ({c}, {d})");
        assert_eq!(cluster_bootstrap_mean_ci(&singletons(&[1.0; 5]), 100, 0.95, 3), Some((1.0, 1.0)));
        assert_eq!(cluster_bootstrap_mean_ci(&[], 100, 0.95, 3), None);
    }

    #[test]
    fn past_the_normal_threshold_the_interval_is_the_bootstrap_s() {
        // Just below and just above NORMAL_FROM: the bootstrap and the normal interval agree.
        let mut rng = SplitMix64::new(5);
        let xs: Vec<f64> = (0..NORMAL_FROM).map(|_| if rng.unit() < 0.3 { 1.0 } else { 0.0 }).collect();
        let mut more = xs.clone();
        more.push(0.0);
        let half: Vec<f64> = xs[..NORMAL_FROM / 2].to_vec();
        let (e, f) = bootstrap_diff_ci(&half, &xs[NORMAL_FROM / 2..], 2000, 0.95, 9).unwrap();
        let (g, i) = bootstrap_diff_ci(&half, &more[NORMAL_FROM / 2..], 2000, 0.95, 9).unwrap();
        assert!((e - g).abs() < 3e-3 && (f - i).abs() < 3e-3, "bootstrap ({e}, {f}) normal ({g}, {i})");
        assert!((z_of(0.95) - 1.959964).abs() < 1e-4);
    }

    #[test]
    fn a_cluster_interval_counts_tasks_not_trials() {
        // Five tasks, each always passed or always failed, 40 trials each: resampling trials
        // would give a narrow interval; resampling tasks gives the wide one five tasks warrant.
        let tasks: Vec<Vec<f64>> = (0..5).map(|t| vec![if t < 2 { 1.0 } else { 0.0 }; 40]).collect();
        let (a, b) = cluster_bootstrap_mean_ci(&tasks, 2000, 0.95, 1).unwrap();
        let (c, d) = cluster_bootstrap_mean_ci(&singletons(&tasks.concat()), 2000, 0.95, 1).unwrap();
        assert!(a <= 0.0 + 1e-9 && b >= 0.8 - 1e-9, "({a}, {b})");
        assert!(d - c < 0.2 && b - a > 0.6, "trials ({c}, {d}) tasks ({a}, {b})");
        assert_eq!(cluster_bootstrap_mean_ci(&tasks[..1], 100, 0.95, 1), None);
        assert_eq!(cluster_bootstrap_mean_ci(&[vec![1.0], vec![1.0, 1.0]], 100, 0.95, 1), Some((1.0, 1.0)));
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

/// One stratum (a task) of a stratified comparison: its trials that showed a behaviour
/// (exposed) and those that did not, and how many of each passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stratum {
    /// Trials with the behaviour.
    pub exposed: u64,
    /// Of those, passed.
    pub exposed_passed: u64,
    /// Trials without it.
    pub unexposed: u64,
    /// Of those, passed.
    pub unexposed_passed: u64,
}

impl Stratum {
    /// Whether the stratum can say anything: trials on both sides, and both outcomes.
    pub fn is_informative(&self) -> bool {
        let passed = self.exposed_passed + self.unexposed_passed;
        let n = self.exposed + self.unexposed;
        self.exposed > 0 && self.unexposed > 0 && passed > 0 && passed < n
    }
}

/// The exact stratified test of a 2×2×K table (the exact form of the Cochran–Mantel–
/// Haenszel test): conditional on every stratum's margins, the number of exposed passes
/// `T = Σ a_k` is a sum of independent hypergeometric counts, so its distribution is the
/// convolution of theirs. Only strata with a contrast contribute; trials of one stratum
/// are never pooled with another's, so task difficulty cannot pass for an effect.
#[derive(Clone, Debug, PartialEq)]
pub struct StratifiedTest {
    /// Strata with trials on both sides and both outcomes.
    pub informative: usize,
    /// Exposed passes observed in those strata.
    pub observed: u64,
    /// Their expectation under no effect.
    pub expected: f64,
    /// P(T ≤ observed): small when the behaviour goes with failing.
    pub p_less: f64,
    /// P(T ≥ observed): small when the behaviour goes with passing.
    pub p_greater: f64,
    /// Two-sided: P of every T at most as likely as the observed one.
    pub p_two_sided: f64,
    /// `exact` (the convolution) or `cmh` (the Cochran–Mantel–Haenszel normal
    /// approximation with continuity correction, used when the strata are too many for
    /// the exact distribution to be worth its cost and the normal one is accurate).
    pub method: &'static str,
}

/// Support points of the exact distribution above which [`stratified_test`] uses the
/// normal approximation (by then the variance of `T` is large and the two agree).
pub const EXACT_SUPPORT_LIMIT: u64 = 1500;

/// The stratified test of `strata`: exact ([`stratified_exact`]) unless the exact
/// distribution would have more than [`EXACT_SUPPORT_LIMIT`] points, then the
/// Cochran–Mantel–Haenszel test with continuity correction.
pub fn stratified_test(strata: &[Stratum]) -> StratifiedTest {
    let support: u64 = strata
        .iter()
        .filter(|s| s.is_informative())
        .map(|s| {
            let c1 = s.exposed_passed + s.unexposed_passed;
            s.exposed.min(c1) - c1.saturating_sub(s.unexposed)
        })
        .sum();
    if support <= EXACT_SUPPORT_LIMIT {
        return stratified_exact(strata);
    }
    let (mut observed, mut expected, mut variance, mut informative) = (0u64, 0.0f64, 0.0f64, 0usize);
    for s in strata.iter().filter(|s| s.is_informative()) {
        let (r1, r2) = (s.exposed as f64, s.unexposed as f64);
        let c1 = (s.exposed_passed + s.unexposed_passed) as f64;
        let n = r1 + r2;
        observed += s.exposed_passed;
        expected += r1 * c1 / n;
        variance += r1 * r2 * c1 * (n - c1) / (n * n * (n - 1.0));
        informative += 1;
    }
    let sd = variance.sqrt();
    let o = observed as f64;
    let p_greater = normal_upper((o - 0.5 - expected) / sd).min(1.0);
    let p_less = normal_upper((expected - o - 0.5) / sd).min(1.0);
    StratifiedTest {
        informative,
        observed,
        expected,
        p_less,
        p_greater,
        p_two_sided: (2.0 * p_less.min(p_greater)).min(1.0),
        method: "cmh",
    }
}

/// P(Z ≥ z) for a standard normal Z, with small relative error far into the tail
/// (the complementary error function of Numerical Recipes, fractional error < 1.2e-7).
pub fn normal_upper(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The Mantel–Haenszel risk difference over strata (pass rate of the exposed minus the
/// unexposed, within strata, weighted by `n1·n0/n`) with a 95 % interval from the
/// stratified variance of the same weights, each stratum's rates taken with half a pass
/// and half a failure added (so a stratum whose sides differ completely still has a
/// variance: with a handful of trials per task that is the common case, and the plain
/// variance would call it certain). Strata without trials on both sides are left out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct RiskDifference {
    /// Strata with trials on both sides.
    pub strata: usize,
    /// The estimate.
    pub estimate: f64,
    /// 95 % interval, within [-1, 1].
    pub interval: (f64, f64),
}

/// [`RiskDifference`] of `strata`; `None` without a stratum with trials on both sides.
pub fn mh_risk_difference(strata: &[Stratum]) -> Option<RiskDifference> {
    let (mut num, mut w, mut var, mut used) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for s in strata.iter().filter(|s| s.exposed > 0 && s.unexposed > 0) {
        let (n1, n0) = (s.exposed as f64, s.unexposed as f64);
        let (y1, y0) = (s.exposed_passed as f64, s.unexposed_passed as f64);
        let n = n1 + n0;
        let wk = n1 * n0 / n;
        num += wk * (y1 / n1 - y0 / n0);
        w += wk;
        let (a1, a0) = ((y1 + 0.5) / (n1 + 1.0), (y0 + 0.5) / (n0 + 1.0));
        var += wk * wk * (a1 * (1.0 - a1) / n1 + a0 * (1.0 - a0) / n0);
        used += 1;
    }
    if used == 0 {
        return None;
    }
    let estimate = num / w;
    let half = 1.959_963_984_540_054 * (var / (w * w)).sqrt();
    Some(RiskDifference { strata: used, estimate, interval: ((estimate - half).max(-1.0), (estimate + half).min(1.0)) })
}

/// Runs [`StratifiedTest`] over `strata` (non-informative ones are left out; with none
/// left, every p-value is 1).
pub fn stratified_exact(strata: &[Stratum]) -> StratifiedTest {
    let used: Vec<&Stratum> = strata.iter().filter(|s| s.is_informative()).collect();
    let n_max = used.iter().map(|s| s.exposed + s.unexposed).max().unwrap_or(0) as usize;
    let mut lf = Vec::with_capacity(n_max + 1);
    lf.push(0.0f64);
    for i in 1..=n_max {
        lf.push(lf[i - 1] + (i as f64).ln());
    }
    let ln_choose = |n: u64, k: u64| lf[n as usize] - lf[k as usize] - lf[(n - k) as usize];
    // The distribution of T as (offset, probabilities).
    let mut dist: Vec<f64> = vec![1.0];
    let mut offset = 0u64;
    let mut observed = 0u64;
    let mut expected = 0.0;
    for s in &used {
        let (r1, r2) = (s.exposed, s.unexposed);
        let c1 = s.exposed_passed + s.unexposed_passed;
        let n = r1 + r2;
        let (lo, hi) = (c1.saturating_sub(r2), r1.min(c1));
        let denom = ln_choose(n, c1);
        let pmf: Vec<f64> = (lo..=hi).map(|x| (ln_choose(r1, x) + ln_choose(r2, c1 - x) - denom).exp()).collect();
        let mut next = vec![0.0; dist.len() + pmf.len() - 1];
        for (i, p) in dist.iter().enumerate() {
            for (j, q) in pmf.iter().enumerate() {
                next[i + j] += p * q;
            }
        }
        dist = next;
        offset += lo;
        observed += s.exposed_passed;
        expected += r1 as f64 * c1 as f64 / n as f64;
    }
    let at = (observed - offset) as usize;
    let p_obs = dist[at];
    let total: f64 = dist.iter().sum();
    let p_less = dist[..=at].iter().sum::<f64>() / total;
    let p_greater = dist[at..].iter().sum::<f64>() / total;
    let p_two_sided = dist.iter().filter(|p| **p <= p_obs * (1.0 + 1e-7)).sum::<f64>() / total;
    StratifiedTest {
        informative: used.len(),
        observed,
        expected,
        p_less: p_less.min(1.0),
        p_greater: p_greater.min(1.0),
        p_two_sided: p_two_sided.min(1.0),
        method: "exact",
    }
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given: reject the
/// hypotheses whose q is at most the false discovery rate wanted.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod stratified_tests {
    use super::*;

    fn s(exposed: u64, exposed_passed: u64, unexposed: u64, unexposed_passed: u64) -> Stratum {
        Stratum { exposed, exposed_passed, unexposed, unexposed_passed }
    }

    #[test]
    fn one_stratum_is_fishers_exact_test() {
        for (a, b, c, d) in [(3, 1, 1, 3), (4, 0, 1, 3), (2, 2, 2, 2), (5, 1, 0, 6)] {
            let t = stratified_exact(&[s(a + b, a, c + d, c)]);
            assert!((t.p_two_sided - fisher_exact(a, b, c, d)).abs() < 1e-9, "{a} {b} {c} {d}: {t:?}");
        }
    }

    #[test]
    fn task_difficulty_does_not_pass_for_an_effect() {
        // The behaviour is seen mostly in a hard task (everyone fails) and rarely in an
        // easy one (everyone passes): pooled, it looks harmful; within tasks there is no
        // contrast, so the stratified test finds nothing.
        let strata = [s(1, 1, 3, 3), s(3, 0, 1, 0)];
        assert!(fisher_exact(1, 3, 3, 1) < 0.5);
        let t = stratified_exact(&strata);
        assert_eq!(t.informative, 0);
        assert_eq!((t.p_two_sided, t.p_less, t.p_greater), (1.0, 1.0, 1.0));
    }

    #[test]
    fn consistent_strata_add_up_and_the_direction_is_kept() {
        // In each of six tasks the trials with the behaviour pass and those without fail.
        let strata = [s(2, 2, 2, 0); 6];
        let t = stratified_exact(&strata);
        assert_eq!((t.informative, t.observed), (6, 12));
        assert!((t.expected - 6.0).abs() < 1e-9);
        // Each stratum alone: P = 1/6 one-sided; six together: (1/6)^6.
        assert!((t.p_greater - (1.0f64 / 6.0).powi(6)).abs() < 1e-12, "{t:?}");
        assert!(t.p_less > 0.99);
        // Swapping the sides mirrors the one-sided p-values and keeps the two-sided one.
        let mirrored = stratified_exact(&[s(2, 0, 2, 2); 6]);
        assert!((mirrored.p_less - t.p_greater).abs() < 1e-12);
        assert!((mirrored.p_two_sided - t.p_two_sided).abs() < 1e-12);
    }

    #[test]
    fn many_strata_use_the_normal_approximation_and_agree_with_the_exact_test() {
        // 1,000 tasks of four trials, a mild effect: past the exact limit.
        let strata: Vec<Stratum> = (0..1000).map(|i| if i % 3 == 0 { s(2, 2, 2, 0) } else { s(2, 1, 2, 1) }).collect();
        let approx = stratified_test(&strata);
        assert_eq!(approx.method, "cmh");
        let exact = stratified_exact(&strata);
        assert!(approx.p_greater > 0.0 && exact.p_greater > 0.0);
        let ratio = approx.p_greater.ln() / exact.p_greater.ln();
        assert!((ratio - 1.0).abs() < 0.05, "{approx:?} {exact:?}");
        assert_eq!(stratified_test(&strata[..10]).method, "exact");
        assert!((normal_upper(1.959_963_984_540_054) - 0.025).abs() < 1e-7);
        assert!((normal_upper(-1.0) - 0.841_344_746).abs() < 1e-7);
    }

    #[test]
    fn the_mantel_haenszel_risk_difference_matches_a_hand_computation() {
        // Two strata: (3/4 vs 1/4) and (2/2 vs 0/2); weights 2 and 1; differences 0.5 and 1.
        let rd = mh_risk_difference(&[s(4, 3, 4, 1), s(2, 2, 2, 0)]).unwrap();
        assert_eq!(rd.strata, 2);
        assert!((rd.estimate - (2.0 * 0.5 + 1.0) / 3.0).abs() < 1e-12, "{rd:?}");
        let (lo, hi) = rd.interval;
        assert!(lo < rd.estimate && rd.estimate < hi && hi - lo < 2.0, "{rd:?}");
        // A harmful behaviour: the interval lies below zero once there are enough tasks,
        // and a single task is not enough to be sure.
        let harm = mh_risk_difference(&[s(2, 0, 2, 2); 12]).unwrap();
        assert!(harm.estimate == -1.0 && harm.interval.1 < 0.0, "{harm:?}");
        let one = mh_risk_difference(&[s(1, 0, 1, 1)]).unwrap();
        assert!(one.estimate == -1.0 && one.interval.1 > 0.0, "{one:?}");
        assert_eq!(mh_risk_difference(&[s(0, 0, 3, 1)]), None);
    }

    #[test]
    fn benjamini_hochberg_matches_a_worked_example() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        for (got, want) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.9, 0.95]), vec![0.95, 0.95]);
    }
}
