from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from htsforecast import metrics
from htsforecast.errors import DataError


def test_mae_rmse_bias_hand_computed() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    yhat = np.array([2.0, 2.0, 1.0, 5.0])  # errors yhat - y: 1, 0, -2, 1
    assert metrics.mae(y, yhat) == pytest.approx(4 / 4)
    assert metrics.mse(y, yhat) == pytest.approx(6 / 4)
    assert metrics.rmse(y, yhat) == pytest.approx(np.sqrt(6 / 4))
    assert metrics.bias(y, yhat) == pytest.approx(0 / 4)
    assert metrics.bias(y, yhat + 1) == pytest.approx(1.0)  # over-forecasting is positive
    assert isinstance(metrics.mae(y, yhat), float)


def test_metrics_reduce_last_axis_per_series() -> None:
    y = np.array([[1.0, 2.0], [10.0, 10.0]])
    yhat = np.array([[1.0, 4.0], [13.0, 6.0]])
    np.testing.assert_allclose(metrics.mae(y, yhat), [1.0, 3.5])
    np.testing.assert_allclose(metrics.rmse(y, yhat), [np.sqrt(2.0), np.sqrt(12.5)])


def test_nan_actuals_are_skipped_and_all_nan_gives_nan() -> None:
    y = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    yhat = np.array([[2.0, 100.0, 3.0], [1.0, 1.0, 1.0]])
    out = metrics.mae(y, yhat)
    assert out[0] == pytest.approx(0.5)
    assert np.isnan(out[1])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(DataError, match="shape"):
        metrics.mae(np.ones(3), np.ones(4))


def _snaive_mae_oracle(train: np.ndarray, m: int) -> float:
    """In-sample seasonal naive: forecast of y_t is y_{t-m}; loop written independently."""
    errs = [abs(train[t] - train[t - m]) for t in range(m, len(train))]
    return sum(errs) / len(errs)


def test_mase_against_seasonal_naive_oracle() -> None:
    rng = np.random.default_rng(1)
    train = 50 + 10 * np.sin(np.arange(24) * np.pi / 2) + rng.normal(0, 2, 24)
    y = rng.normal(50, 5, 8)
    yhat = rng.normal(50, 5, 8)
    expected = np.mean(np.abs(y - yhat)) / _snaive_mae_oracle(train, 4)
    assert metrics.mase(y, yhat, train, m=4) == pytest.approx(expected)
    # m = 1 gives the random-walk (naive) scale
    expected1 = np.mean(np.abs(y - yhat)) / _snaive_mae_oracle(train, 1)
    assert metrics.mase(y, yhat, train, m=1) == pytest.approx(expected1)


def test_mase_equals_one_for_seasonal_naive_errors_in_sample() -> None:
    # scoring the in-sample seasonal naive forecast itself gives MASE == 1 exactly
    train = np.array([3.0, 7.0, 1.0, 9.0, 4.0, 6.0, 2.0, 12.0, 5.0, 8.0, 0.0, 11.0])
    m = 4
    assert metrics.mase(train[m:], train[:-m], train, m=m) == pytest.approx(1.0)


def test_rmsse_hand_computed() -> None:
    train = np.array([1.0, 3.0, 2.0, 5.0])  # lag-1 diffs 2, -1, 3 -> mean square 14/3
    y, yhat = np.array([4.0, 6.0]), np.array([5.0, 3.0])  # mse (1 + 9)/2 = 5
    assert metrics.rmsse(y, yhat, train, m=1) == pytest.approx(np.sqrt(5 / (14 / 3)))


def test_mase_per_series_with_nan_padded_training() -> None:
    train = np.array([[1.0, 2.0, 4.0, 7.0], [np.nan, 0.0, 2.0, 4.0]])
    y = np.array([[8.0], [5.0]])
    yhat = np.array([[10.0], [6.0]])
    # scales: mean(1, 2, 3) = 2 and mean(2, 2) = 2 (the NaN-padded diff is ignored)
    np.testing.assert_allclose(metrics.mase(y, yhat, train, m=1), [1.0, 0.5])


def test_zero_scale_gives_inf_or_nan_without_warning() -> None:
    train = np.full(8, 5.0)
    with np.errstate(all="raise"):
        assert metrics.mase(np.array([6.0]), np.array([5.0]), train, m=4) == np.inf
        assert np.isnan(metrics.mase(np.array([5.0]), np.array([5.0]), train, m=4))


def test_scale_needs_more_than_m_observations() -> None:
    with pytest.raises(DataError, match="m \\+ 1"):
        metrics.mase(np.ones(2), np.ones(2), np.ones(4), m=4)
    with pytest.raises(DataError, match="positive integer"):
        metrics.seasonal_naive_scale(np.ones(8), m=0)


def test_smape_hand_computed_and_zero_zero_is_perfect() -> None:
    y = np.array([100.0, 0.0, 50.0])
    yhat = np.array([110.0, 0.0, 0.0])
    expected = (200 * 10 / 210 + 0.0 + 200 * 50 / 50) / 3
    assert metrics.smape(y, yhat) == pytest.approx(expected)


def test_coverage_counts() -> None:
    y = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    lo = np.array([[0.0, 2.0, 3.5, 0.0, 6.0]])
    hi = np.array([[2.0, 3.0, 4.0, 4.0, 7.0]])
    # inside: 1 in [0,2] yes; 2 in [2,3] yes (closed); 3 in [3.5,4] no; 4 in [0,4] yes; 5 no
    np.testing.assert_allclose(metrics.coverage(y, lo, hi), [3 / 5])


def test_coverage_of_gaussian_interval_is_near_nominal() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=20000)
    z = stats.norm.ppf(0.9)
    assert metrics.coverage(y, np.full_like(y, -z), np.full_like(y, z)) == pytest.approx(
        0.8, abs=0.01
    )


@pytest.mark.parametrize(("y", "mu", "sigma"), [(0.3, 0.0, 1.0), (5.0, 2.0, 0.5), (-1.0, 1.0, 3)])
def test_crps_gaussian_matches_numerical_integration(y: float, mu: float, sigma: float) -> None:
    # CRPS = integral (F(x) - 1{x >= y})^2 dx
    cdf = stats.norm(mu, sigma).cdf
    left, _ = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y)
    right, _ = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf)
    got = metrics.crps_gaussian(np.array([y]), np.array([mu]), np.array([sigma]))
    assert got == pytest.approx(left + right, rel=1e-7)


def test_crps_gaussian_zero_sigma_is_absolute_error() -> None:
    got = metrics.crps_gaussian(np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    assert got == pytest.approx(1.0)
    with pytest.raises(DataError, match="non-negative"):
        metrics.crps_gaussian(np.array([1.0]), np.array([1.0]), np.array([-1.0]))


def test_crps_sample_pwm_equals_brute_force_pairs() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 7))
    y = rng.normal(size=(2, 3))
    term1 = np.abs(x - y[..., None]).mean(-1)
    pairs = np.abs(x[..., :, None] - x[..., None, :])
    brute_pwm = (term1 - 0.5 * pairs.mean(axis=(-1, -2))).mean(-1)
    brute_fair = (term1 - 0.5 * pairs.sum(axis=(-1, -2)) / (7 * 6)).mean(-1)
    np.testing.assert_allclose(metrics.crps_sample(y, x), brute_pwm)
    np.testing.assert_allclose(metrics.crps_sample(y, x, estimator="fair"), brute_fair)


def test_crps_sample_of_many_gaussian_draws_approaches_closed_form() -> None:
    rng = np.random.default_rng(7)
    y = np.array([0.4, -1.2, 2.5])
    x = rng.normal(0.0, 1.5, size=(3, 20000))
    closed = metrics.crps_gaussian(y, np.zeros(3), np.full(3, 1.5))
    assert metrics.crps_sample(y, x, estimator="fair") == pytest.approx(closed, rel=0.02)


def test_crps_sample_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="n_samples"):
        metrics.crps_sample(np.ones(3), np.ones((4, 10)))
    with pytest.raises(DataError, match="estimator"):
        metrics.crps_sample(np.ones(3), np.ones((3, 10)), estimator="nope")


@pytest.mark.parametrize("levels", [(80,), (80, 95), (10, 50, 90, 98)])
def test_crps_quantiles_of_gaussian_intervals_is_the_closed_form(levels) -> None:
    rng = np.random.default_rng(5)
    y, mu = rng.normal(0, 3, size=(4, 6)), rng.normal(size=(4, 6))
    sd = rng.uniform(0.1, 3.0, size=(4, 6))
    iv = {lv: (mu - stats.norm.ppf(0.5 + lv / 200) * sd, mu + stats.norm.ppf(0.5 + lv / 200) * sd)
          for lv in levels}  # fmt: skip
    closed = metrics.crps_gaussian(y, mu, sd)
    np.testing.assert_allclose(metrics.crps_quantiles(y, *metrics.interval_quantiles(iv)), closed,
                               rtol=1e-10)  # fmt: skip
    with_median = metrics.interval_quantiles(iv, median=mu)
    np.testing.assert_allclose(metrics.crps_quantiles(y, *with_median), closed, rtol=1e-10)
    np.testing.assert_allclose(metrics.METRICS["crps"](y, mu, intervals=iv), closed, rtol=1e-10)


@pytest.mark.parametrize("y", [-4.0, 0.1, 0.35, 2.0, 9.0])
def test_crps_quantiles_skewed_matches_cdf_integral(y: float) -> None:
    # independent route: CRPS = integral (F(x) - 1{x >= y})^2 dx, F the CDF of the quantile
    # function that is linear in z = Phi^-1(tau) between the knots and beyond them
    probs = np.array([0.05, 0.3, 0.5, 0.9])
    q = np.array([-1.0, 0.2, 0.5, 3.0])
    z = stats.norm.ppf(probs)
    zq = np.concatenate([[z[0] - 50], z, [z[-1] + 50]])
    slope0, slope1 = (q[1] - q[0]) / (z[1] - z[0]), (q[-1] - q[-2]) / (z[-1] - z[-2])
    xq = np.concatenate([[q[0] - 50 * slope0], q, [q[-1] + 50 * slope1]])

    def cdf(x: float) -> float:
        return float(stats.norm.cdf(np.interp(x, xq, zq)))

    left, _ = integrate.quad(lambda x: cdf(x) ** 2, xq[0], y, points=list(q), limit=200)
    right, _ = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, xq[-1], points=list(q), limit=200)
    got = metrics.crps_quantiles(np.array([y]), q[None, :], probs)
    assert got == pytest.approx(left + right, rel=1e-6)


def test_crps_quantiles_point_mass_missing_bounds_and_bad_input() -> None:
    q = np.full((2, 3), 2.0)  # every quantile equal: a point mass, CRPS = |y - 2|
    got = metrics.crps_quantiles(np.array([5.0, 1.0]), q, np.array([0.1, 0.5, 0.9]))
    assert got == pytest.approx(2.0)
    crossing = np.array([[3.0, 1.0]])  # rearranged, not rejected
    np.testing.assert_allclose(metrics.crps_quantiles(np.array([0.0]), crossing, [0.1, 0.9]),
                               metrics.crps_quantiles(np.array([0.0]), crossing[:, ::-1],
                                                      [0.1, 0.9]))  # fmt: skip
    iv = {80: (np.array([[0.0, np.nan]]), np.array([[2.0, np.nan]]))}
    got = metrics.METRICS["crps"](np.array([[1.0, 4.0]]), np.array([[1.0, 1.0]]), intervals=iv)
    assert got[0] == pytest.approx((metrics.crps_gaussian(np.array([1.0]), np.array([1.0]),
                                    np.array([1 / stats.norm.ppf(0.9)])) + 3.0) / 2)  # fmt: skip
    with pytest.raises(DataError, match="k = len"):
        metrics.crps_quantiles(np.ones(3), np.ones((3, 1)), [0.5])
    with pytest.raises(DataError, match="strictly increasing"):
        metrics.crps_quantiles(np.ones(3), np.ones((3, 2)), [0.6, 0.4])
    with pytest.raises(DataError, match="level must be in"):
        metrics.interval_quantiles({100: (np.zeros(2), np.ones(2))})


def test_skill_score() -> None:
    assert metrics.skill_score(0.75, 1.0) == pytest.approx(0.25)
    assert metrics.skill_score(2.0, 1.0) == pytest.approx(-1.0)
    np.testing.assert_allclose(metrics.skill_score(np.array([1.0, 0.5]), 1.0), [0.0, 0.5])


def test_registry_names_and_signatures() -> None:
    y, yhat, train = np.arange(4.0), np.arange(4.0) + 1, np.arange(10.0)
    intervals = {80: (yhat - 1, yhat + 1)}
    samples = yhat[:, None] + np.linspace(-1, 1, 5)
    for name, metric in metrics.METRICS.items():  # one signature for all
        scale = metrics.seasonal_naive_scale(train, 1, metric.scale_power or 1)
        out = metric(y, yhat, intervals=intervals, level=80, samples=samples, scale=scale)
        assert np.isfinite(out), name
        assert metric.direction in ("minimize", "maximize", "zero", "nominal")
    assert metrics.METRICS["mase"](y, yhat, scale=metrics.seasonal_naive_scale(train, 1)) == (
        metrics.mase(y, yhat, train, 1)
    )
    assert metrics.METRICS["bias"].objective(-0.5) == 0.5
    assert metrics.resolve("coverage_95") == (metrics.METRICS["coverage"], 95)
    assert metrics.METRICS["coverage"].objective(0.85, 80) == pytest.approx(0.05)
