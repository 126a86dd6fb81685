"""Forecast accuracy metrics: small pure numpy functions.

Conventions shared by every metric
----------------------------------
* Arrays are aligned on their **last axis, the forecast horizon**: ``y`` and ``yhat`` have shape
  ``(h,)`` for one series or ``(n_series, h)`` for many. Each metric averages over the last axis,
  so a 1-D input returns a ``float`` and an ``(n, h)`` input returns an array of shape ``(n,)``
  (one score per series). Average those per-series scores to summarise a level, as fpp3 does.
* Missing values: ``NaN`` in ``y`` (an actual that was not observed) is skipped, as fable's
  ``na.rm = TRUE``. A series with no observed actual scores ``NaN``.
* Scaled errors (:func:`mase`, :func:`rmsse`) follow fabletools exactly: the scale is the
  in-sample mean absolute (MASE) or mean squared (RMSSE) error of the seasonal-naive forecast
  with period ``m``, i.e. of the lag-``m`` differences ``y_t - y_{t-m}`` of the training series
  (``m = 1`` gives the naive, random-walk scale). ``NaN`` in the training series (e.g. padding for
  unequal lengths) is ignored.
* Zero scale: a training series whose lag-``m`` differences are all zero (a constant or exactly
  periodic series) has scale 0. The scaled error is then ``inf`` when the forecast errs and
  ``NaN`` when it is exact, the IEEE result of ``x / 0`` that R/fable also gives; no warning is
  emitted. Callers that average over series should decide whether to drop such series.

References
----------
Hyndman, R.J. & Athanasopoulos, G. (2021) *Forecasting: principles and practice*, 3rd ed.,
sections 5.8 (point accuracy), 5.9 (distributional accuracy) and 11.4 (Table 11.3, CRPS skill).
Gneiting, T. & Raftery, A.E. (2007) Strictly proper scoring rules, JASA 102, 359-378.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from htsforecast.errors import DataError

__all__ = [
    "mae",
    "rmse",
    "mse",
    "mase",
    "rmsse",
    "smape",
    "bias",
    "coverage",
    "crps_gaussian",
    "crps_sample",
    "crps_quantiles",
    "interval_quantiles",
    "seasonal_naive_scale",
    "skill_score",
    "Metric",
    "METRICS",
    "resolve",
]


def _pair(y: ArrayLike, yhat: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y, dtype=float)
    b = np.asarray(yhat, dtype=float)
    if a.shape != b.shape:
        raise DataError(
            f"{name}: actuals have shape {a.shape} but forecasts have shape {b.shape}; "
            "align them on the horizon (last) axis first."
        )
    if a.ndim == 0:
        raise DataError(f"{name}: expected arrays with a horizon axis, got scalars.")
    return a, b


def _mean_last(x: np.ndarray) -> float | np.ndarray:
    """Mean over the last axis ignoring NaN; all-NaN rows give NaN without a warning."""
    ok = ~np.isnan(x)
    n = ok.sum(axis=-1)
    total = np.where(ok, x, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def _divide(num: float | np.ndarray, den: float | np.ndarray) -> float | np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    return float(out) if out.ndim == 0 else out


def mae(y: ArrayLike, yhat: ArrayLike) -> float | np.ndarray:
    """Mean absolute error ``mean(|y - yhat|)`` over the horizon (last) axis."""
    a, b = _pair(y, yhat, "mae")
    return _mean_last(np.abs(a - b))


def mse(y: ArrayLike, yhat: ArrayLike) -> float | np.ndarray:
    """Mean squared error ``mean((y - yhat)**2)`` over the horizon (last) axis."""
    a, b = _pair(y, yhat, "mse")
    return _mean_last((a - b) ** 2)


def rmse(y: ArrayLike, yhat: ArrayLike) -> float | np.ndarray:
    """Root mean squared error ``sqrt(mean((y - yhat)**2))`` over the horizon (last) axis."""
    return np.sqrt(mse(y, yhat))


def bias(y: ArrayLike, yhat: ArrayLike) -> float | np.ndarray:
    """Mean forecast error ``mean(yhat - y)``: positive means over-forecasting.

    Note the sign: fable's ``ME`` is ``mean(y - yhat)``, the negative of this.
    """
    a, b = _pair(y, yhat, "bias")
    return _mean_last(b - a)


def smape(y: ArrayLike, yhat: ArrayLike) -> float | np.ndarray:
    """Symmetric MAPE in percent, ``mean(200 |y - yhat| / (|y| + |yhat|))`` (fable's ``sMAPE``).

    A step where both ``y`` and ``yhat`` are 0 is a perfect forecast and scores 0 (instead of
    the ``0/0`` NaN), so all-zero intermittent series do not poison a level's average.
    """
    a, b = _pair(y, yhat, "smape")
    den = np.abs(a) + np.abs(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(den > 0, 200.0 * np.abs(a - b) / den, 0.0)
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _mean_last(terms)


def seasonal_naive_scale(y_train: ArrayLike, m: int = 1, power: int = 1) -> float | np.ndarray:
    """In-sample seasonal-naive error used to scale MASE (``power=1``) and RMSSE (``power=2``).

    ``mean(|y_t - y_{t-m}| ** power)`` over ``t = m+1 .. T`` along the last axis, ignoring NaN.
    Series shorter than ``m + 1`` observations give NaN.

    Parameters
    ----------
    y_train : array, shape (T,) or (n_series, T)
        Training (in-sample) values, oldest first. Pad unequal lengths with NaN.
    m : int
        Seasonal period (4 for quarterly, 12 for monthly, 1 for the naive scale).
    power : {1, 2}
        1 for mean absolute, 2 for mean squared differences.
    """
    if int(m) != m or m < 1:
        raise DataError(f"seasonal period m must be a positive integer, got {m!r}.")
    x = np.asarray(y_train, dtype=float)
    if x.shape[-1] <= m:
        raise DataError(
            f"the training series has {x.shape[-1]} observations but the seasonal-naive "
            f"scale needs at least m + 1 = {m + 1}; use a smaller m or more history."
        )
    diffs = np.abs(x[..., m:] - x[..., :-m]) ** power
    return _mean_last(diffs)


def mase(y: ArrayLike, yhat: ArrayLike, y_train: ArrayLike, m: int = 1) -> float | np.ndarray:
    """Mean absolute scaled error (Hyndman & Koehler 2006; fabletools ``MASE``).

    ``MASE = mean(|y - yhat|) / mean(|y_t - y_{t-m}|)`` where the denominator is computed on
    the training series (see :func:`seasonal_naive_scale`). A value below 1 beats the
    in-sample one-step seasonal-naive forecast. Zero scale gives ``inf`` (or NaN for an exact
    forecast), see the module notes.

    Parameters
    ----------
    y, yhat : array, shape (h,) or (n_series, h)
    y_train : array, shape (T,) or (n_series, T)
    m : int
        Seasonal period of the scaling seasonal-naive forecast.
    """
    return _divide(mae(y, yhat), seasonal_naive_scale(y_train, m, power=1))


def rmsse(y: ArrayLike, yhat: ArrayLike, y_train: ArrayLike, m: int = 1) -> float | np.ndarray:
    """Root mean squared scaled error (fabletools ``RMSSE``, the M5 measure).

    ``RMSSE = sqrt(mean((y - yhat)**2) / mean((y_t - y_{t-m})**2))``, the squared-error analogue
    of :func:`mase`; zero scale is handled the same way.
    """
    return np.sqrt(_divide(mse(y, yhat), seasonal_naive_scale(y_train, m, power=2)))


def coverage(y: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> float | np.ndarray:
    """Fraction of actuals inside the closed prediction interval ``[lo, hi]``.

    Compare with the nominal level (0.8 for an 80 % interval). NaN actuals are skipped.
    """
    a, lo_ = _pair(y, lo, "coverage")
    _, hi_ = _pair(y, hi, "coverage")
    inside = ((a >= lo_) & (a <= hi_)).astype(float)
    inside[np.isnan(a)] = np.nan
    return _mean_last(inside)


def crps_gaussian(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> float | np.ndarray:
    """Continuous ranked probability score of a Gaussian forecast ``N(mu, sigma**2)``.

    Closed form (Gneiting & Raftery 2007, eq. 21), with ``z = (y - mu) / sigma``::

        CRPS = sigma * (z * (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))

    ``sigma = 0`` reduces to the absolute error ``|y - mu|``. Averaged over the horizon axis like
    the other metrics. Lower is better; same units as ``y``.
    """
    a, m = _pair(y, mu, "crps_gaussian")
    s = np.broadcast_to(np.asarray(sigma, dtype=float), a.shape)
    if np.any(s < 0):
        raise DataError("crps_gaussian: sigma must be non-negative (a standard deviation).")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(s > 0, (a - m) / np.where(s > 0, s, 1.0), 0.0)
    pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    crps = s * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / np.sqrt(np.pi))
    crps = np.where(s > 0, crps, np.abs(a - m))
    return _mean_last(crps)


def crps_sample(y: ArrayLike, samples: ArrayLike, estimator: str = "pwm") -> float | np.ndarray:
    """CRPS estimated from predictive sample paths (energy form).

    ``CRPS = E|X - y| - 0.5 E|X - X'|`` with ``X, X'`` independent draws from the forecast.

    * ``estimator="pwm"`` (default): the CRPS of the empirical distribution of the samples,
      ``E|X - X'|`` averaged over all ``n**2`` ordered pairs (divisor ``n**2``). This is what
      properscoring's ``crps_ensemble`` returns.
    * ``estimator="fair"``: the unbiased ("fair", Ferro 2014) estimator of the CRPS of the
      distribution the samples were drawn from: divisor ``n (n - 1)`` for the pair term.

    Computed in ``O(n log n)`` per step by sorting (``sum_{i,j}|x_i - x_j| =
    2 sum_i (2i - n - 1) x_(i)``).

    Parameters
    ----------
    y : array, shape (h,) or (n_series, h)
    samples : array, shape y.shape + (n_samples,)
    estimator : {"pwm", "fair"}
    """
    a = np.asarray(y, dtype=float)
    x = np.asarray(samples, dtype=float)
    if x.shape[:-1] != a.shape:
        raise DataError(
            f"crps_sample: samples have shape {x.shape}, expected {a.shape} + (n_samples,)."
        )
    n = x.shape[-1]
    if estimator not in ("pwm", "fair") or (estimator == "fair" and n < 2):
        raise DataError(
            f"crps_sample: estimator must be 'pwm' or 'fair' (fair needs >= 2 samples), "
            f"got {estimator!r} with {n} samples."
        )
    term1 = np.abs(x - a[..., None]).mean(axis=-1)
    xs = np.sort(x, axis=-1)
    weights = 2 * np.arange(1, n + 1) - n - 1
    pair_sum = 2 * (xs * weights).sum(axis=-1)  # sum over all ordered pairs |x_i - x_j|
    denom = n * n if estimator == "pwm" else n * (n - 1)
    return _mean_last(term1 - 0.5 * pair_sum / denom)


def crps_quantiles(y: ArrayLike, quantiles: ArrayLike, probs: ArrayLike) -> float | np.ndarray:
    """CRPS of a forecast given by some of its quantiles (e.g. interval bounds).

    ``CRPS = 2 * integral_0^1 pinball_tau(y - Q(tau)) dtau`` (Gneiting & Raftery 2007, eq. 32;
    Laio & Tamea 2007), computed exactly for the quantile function ``Q`` that is piecewise linear
    in the normal score ``z = Phi^-1(tau)`` through the given quantiles and continues the two
    outermost segments beyond them (Gaussian tails). Each segment ``Q = a + b z`` has a closed
    form (``int z Phi(z) phi(z) dz = -phi Phi + Phi(sqrt(2) z) / (2 sqrt(pi))``). The quantiles
    of a Gaussian forecast lie on one line in ``z``, so for them this **is**
    :func:`crps_gaussian`, for any set of levels; for other shapes (bootstrap quantiles, scaled or
    clipped intervals) it scores the distribution those quantiles describe, without the
    downward bias of a sum of pinball losses over a few levels.

    Parameters
    ----------
    y : array, shape (h,) or (n_series, h)
    quantiles : array, shape y.shape + (k,), k >= 2
        Sorted along the last axis first (crossing quantiles are rearranged, Chernozhukov et al.
        2010). A non-finite quantile makes that entry NaN.
    probs : array, shape (k,)
        Their probability levels, strictly increasing in (0, 1).

    Returns
    -------
    float or ndarray (n_series,)
        Averaged over the horizon (last) axis of ``y``, NaN skipped.
    """
    return _mean_last(_crps_quantiles(y, quantiles, probs))


def _crps_quantiles(y: ArrayLike, quantiles: ArrayLike, probs: ArrayLike) -> np.ndarray:
    """:func:`crps_quantiles` of every entry of ``y`` (no averaging)."""
    a = np.asarray(y, dtype=float)
    q = np.sort(np.asarray(quantiles, dtype=float), axis=-1)
    p = np.asarray(probs, dtype=float)
    if q.shape[:-1] != a.shape or p.ndim != 1 or q.shape[-1] != p.size or p.size < 2:
        raise DataError(
            f"crps_quantiles: quantiles have shape {q.shape} for actuals {a.shape} and "
            f"{p.size} probability level(s); expected {a.shape} + (k,) with k = len(probs) >= 2."
        )
    if not (np.all((p > 0) & (p < 1)) and np.all(np.diff(p) > 0)):
        raise DataError(
            f"crps_quantiles: probs must be strictly increasing in (0, 1), got {p.tolist()}."
        )
    z = ndtri(p)
    slope = np.diff(q, axis=-1) / np.diff(z)  # (..., k - 1), >= 0
    b = np.concatenate([slope[..., :1], slope, slope[..., -1:]], axis=-1)  # k + 1 segments
    knot = np.concatenate([q[..., :1], q], axis=-1)  # each segment passes through a knot
    zk = np.concatenate([z[:1], z])
    lo = np.concatenate([[-np.inf], z])
    hi = np.concatenate([z, [np.inf]])
    c = knot - b * zk - a[..., None]  # Q(z) - y = c + b z on the segment
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(b > 0, -c / np.where(b > 0, b, 1.0), np.where(c > 0, -np.inf, np.inf))
    start = np.clip(root, lo, hi)  # Q > y on [start, hi]

    def above(t: np.ndarray) -> np.ndarray:  # int (c + b z) phi(z) dz
        return c * ndtr(t) - b * _phi(t)

    def spread(t: np.ndarray) -> np.ndarray:  # int Phi(z) (c + b z) phi(z) dz
        cdf = ndtr(t)
        return c * cdf**2 / 2 + b * (ndtr(np.sqrt(2) * t) / (2 * np.sqrt(np.pi)) - _phi(t) * cdf)

    seg = above(hi) - above(start) - (spread(hi) - spread(lo))
    with np.errstate(invalid="ignore"):
        crps = 2 * seg.sum(axis=-1)
    return np.where(np.isfinite(q).all(axis=-1), crps, np.nan)


def _phi(t: np.ndarray) -> np.ndarray:
    """Standard normal density, 0 at +-inf."""
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * np.square(t)) / np.sqrt(2 * np.pi)


def interval_quantiles(
    intervals: Mapping[int, tuple[ArrayLike, ArrayLike]],
    median: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds as quantiles: ``(quantiles (..., k), probs (k,))`` for
    :func:`crps_quantiles`.

    The ``L`` % interval ``(lo, hi)`` gives the ``0.5 - L/200`` and ``0.5 + L/200`` quantiles;
    ``median`` (e.g. a point forecast that is the median) adds the 0.5 quantile.
    """
    if not intervals:
        raise DataError("interval_quantiles: no intervals given.")
    cols: dict[float, np.ndarray] = {}
    for lv, (lo, hi) in intervals.items():
        if not 0 < lv < 100:
            raise DataError(f"interval_quantiles: level must be in (0, 100), got {lv}.")
        cols[0.5 - lv / 200] = np.asarray(lo, dtype=float)
        cols[0.5 + lv / 200] = np.asarray(hi, dtype=float)
    if median is not None:
        cols[0.5] = np.asarray(median, dtype=float)
    probs = np.array(sorted(cols))
    return np.stack(np.broadcast_arrays(*(cols[t] for t in probs)), axis=-1), probs


def skill_score(score: ArrayLike, score_ref: ArrayLike) -> float | np.ndarray:
    """Skill score ``1 - score / score_ref`` (fpp3 section 5.9, Table 11.3 uses CRPS vs snaive).

    Positive when ``score`` beats the reference (1 is perfect), 0 when equal, negative when
    worse. A zero reference score gives ``-inf`` / NaN, as IEEE division.
    """
    return 1.0 - _divide(np.asarray(score, dtype=float), np.asarray(score_ref, dtype=float))


# ----------------------------------------------------------------------------- registry

Direction = Literal["minimize", "maximize", "zero", "nominal"]


@dataclass(frozen=True)
class Metric:
    """A score with the one signature every evaluator calls, and what it needs.

    ``fn(y, yhat, *, intervals, level, samples, scale)`` returns one score per series (averaged
    over the last, horizon axis) for arrays ``y``, ``yhat`` of shape (n, h). The keywords a
    metric does not need are ignored (pass ``**_``), as fabletools' measures take ``...``.

    Attributes
    ----------
    name : str
    fn : callable
    needs : frozenset of {"intervals", "samples", "scale"}
        ``intervals``: ``intervals`` maps level -> (lo, hi) arrays; ``samples``: ``samples`` is
        (n, h, n_samples) sample paths; ``scale``: ``scale`` is the in-sample seasonal-naive
        scale per series, ``mean |y_t - y_{t-m}| ** scale_power`` (:func:`seasonal_naive_scale`).
    direction : {"minimize", "maximize", "zero", "nominal"}
        Better is lower, higher, closer to 0 (bias), or closer to the nominal level (coverage).
    scale_power : int or None
        The power of the scale it needs (1 for MASE, 2 for RMSSE).
    per_level : bool
        One score per interval level, named ``<name>_<level>`` (``coverage_80``); ``level`` is
        then passed.
    """

    name: str
    fn: Callable[..., Any]
    needs: frozenset[str] = frozenset()
    direction: Direction = "minimize"
    scale_power: int | None = None
    per_level: bool = False

    def __call__(
        self,
        y: np.ndarray,
        yhat: np.ndarray,
        *,
        intervals: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
        level: int | None = None,
        samples: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Per-series scores (shape ``y.shape[:-1]``)."""
        out = self.fn(y, yhat, intervals=intervals, level=level, samples=samples, scale=scale)
        return np.asarray(out, dtype=float)

    def objective(self, values: Any, level: int | None = None) -> Any:
        """Lower is better: the value mapped through the metric's direction."""
        if self.direction == "zero":
            return abs(values)
        if self.direction == "nominal":
            return abs(values - (level or 0) / 100)
        return -values if self.direction == "maximize" else values


def _crps_from_intervals(y, yhat, *, intervals, **_):
    """CRPS of the distribution the interval bounds describe (:func:`crps_quantiles`; the exact
    Gaussian CRPS for Gaussian intervals); the absolute error where a bound is missing."""
    crps = _crps_quantiles(y, *interval_quantiles(intervals))
    return _mean_last(np.where(np.isfinite(crps), crps, np.abs(np.asarray(y, float) - yhat)))


def _register(*metrics: Metric) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


#: Every metric by name (one signature, see :class:`Metric`). A new metric is one entry here.
METRICS: dict[str, Metric] = _register(
    Metric("mae", lambda y, yhat, **_: mae(y, yhat)),
    Metric("mse", lambda y, yhat, **_: mse(y, yhat)),
    Metric("rmse", lambda y, yhat, **_: rmse(y, yhat)),
    Metric("smape", lambda y, yhat, **_: smape(y, yhat)),
    Metric("bias", lambda y, yhat, **_: bias(y, yhat), direction="zero"),
    Metric(
        "mase",
        lambda y, yhat, *, scale, **_: _divide(mae(y, yhat), scale),
        frozenset({"scale"}),
        scale_power=1,
    ),
    Metric(
        "rmsse",
        lambda y, yhat, *, scale, **_: np.sqrt(_divide(mse(y, yhat), scale)),
        frozenset({"scale"}),
        scale_power=2,
    ),
    Metric(
        "coverage",
        lambda y, yhat, *, intervals, level, **_: coverage(y, *intervals[level]),
        frozenset({"intervals"}),
        direction="nominal",
        per_level=True,
    ),
    Metric("crps", _crps_from_intervals, frozenset({"intervals"})),
    Metric(
        "crps_sample",
        lambda y, yhat, *, samples, **_: crps_sample(y, samples),
        frozenset({"samples"}),
    ),
)


def resolve(name: str) -> tuple[Metric, int | None]:
    """The metric of a score name and its level: ``"coverage_80"`` -> (coverage, 80)."""
    if name in METRICS:
        return METRICS[name], None
    base, _, lv = name.rpartition("_")
    if base in METRICS and METRICS[base].per_level and lv.isdigit():
        return METRICS[base], int(lv)
    raise DataError(f"unknown metric {name!r}; choose from {sorted(METRICS)}.")
