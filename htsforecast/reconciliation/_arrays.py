"""The array core of reconciliation: base forecasts in node order in, ``S P ŷ`` and bounds out.

:func:`reconcile_arrays` takes one :class:`BaseArrays` per model (point forecasts, interval
bounds by level, in-sample actuals and residuals, sample paths, rows in the hierarchy's node
order) and returns one :class:`MethodResult` per (model, method), the unreconciled forecasts
included as method ``"base"``. No frames: :func:`htsforecast.reconcile` wraps it (frames in,
tidy frame out) and cross-validation calls it on each window's arrays directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import norm

from htsforecast import validation as v
from htsforecast.errors import DataError, ReconciliationError
from htsforecast.hierarchy import Hierarchy
from htsforecast.reconciliation._methods import Fitted, Problem

__all__ = ["BaseArrays", "MethodResult", "reconcile_arrays", "arrays_of_base", "Intervals"]

Intervals = Literal["gaussian", "bootstrap", "samples"]
Bounds = dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class BaseArrays:
    """One model's base forecasts, rows in the hierarchy's node order.

    Attributes
    ----------
    model : str
    dates : ndarray of datetime64, shape (h,)
    yhat : ndarray (n, h)
    bounds : dict level -> (lo, hi), each (n, h)
        The base prediction intervals (levels travel as keys, never as column names).
    y_insample, residuals : ndarray (n, T) or None
        In-sample actuals and residuals (NaN where a node has none).
    samples : ndarray (n, h, n_samples) or None
        The model's predictive sample paths.
    """

    model: str
    dates: np.ndarray
    yhat: np.ndarray
    bounds: Bounds = field(default_factory=dict)
    y_insample: np.ndarray | None = None
    residuals: np.ndarray | None = None
    samples: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class MethodResult:
    """One (model, method) output: reconciled points, bounds by level, optional sample paths."""

    model: str
    method: str
    ytilde: np.ndarray
    bounds: Bounds
    samples: np.ndarray | None = None
    diagnostics: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def arrays_of_base(base: Any, node_ids: list[str]) -> list[BaseArrays] | None:
    """Arrays of a :class:`~htsforecast.BaseForecasts` in ``node_ids`` order, without frames.

    None when the base does not line up with the hierarchy (other nodes, or series whose
    forecasts start at different dates); the caller then goes through the checked frame path,
    which names the problem.
    """
    panel = base.panel
    if set(map(str, panel.ids)) != set(node_ids) or len(panel.ids) != len(node_ids):
        return None
    if not (panel.end == panel.end[0]).all():
        return None
    pos = pd.Index([str(i) for i in panel.ids]).get_indexer(node_ids)
    keep = panel.observed_columns()
    y = panel.values[pos][:, keep]
    dates = base.future_dates[0]
    out = []
    for m in base.models:
        fitted = base.fitted[m][pos][:, keep]
        samples = base.samples.get(m)
        out.append(
            BaseArrays(
                model=m,
                dates=dates,
                yhat=base.mean[m][pos],
                bounds={lv: (base.lo[m][lv][pos], base.hi[m][lv][pos]) for lv in base.level},
                y_insample=y,
                residuals=y - fitted,
                samples=None if samples is None else samples[pos],
            )
        )
    return out


def reconcile_arrays(
    inputs: list[BaseArrays],
    hier: Hierarchy,
    methods: Mapping[str, Any],
    levels: tuple[int, ...],
    intervals: Intervals | None = "gaussian",
    n_samples: int = 1000,
    seed: int = 0,
    keep_samples: bool = False,
) -> list[MethodResult]:
    """Every method on every model's base arrays; the base itself first, as method ``"base"``.

    ``keep_samples``: keep the reconciled sample paths (bootstrap / samples intervals) in the
    results, for sample-based scores.
    """
    problem_base = problem_of(hier)
    out = []
    for base in inputs:
        problem = problem_base
        if base.y_insample is not None:  # shares the membership cache
            problem = replace(problem, y_insample=base.y_insample, residuals=base.residuals)
        out.append(
            MethodResult(
                base.model,
                "base",
                base.yhat,
                {lv: base.bounds[lv] for lv in levels if lv in base.bounds},
                base.samples if keep_samples else None,
            )
        )
        for name, method in methods.items():
            fitted = method.fit(problem, base.yhat)
            ytilde = np.asarray(hier.S @ fitted.bottom(base.yhat, "point"))
            nonneg = getattr(method, "nonnegative", False)
            bounds, paths = _interval_bounds(
                intervals, fitted, problem, hier, base, ytilde, levels, n_samples, seed, nonneg
            )
            out.append(
                MethodResult(
                    base.model,
                    name,
                    ytilde,
                    bounds,
                    paths if keep_samples else None,
                    _diagnostics(problem, base.model, name, base.yhat, ytilde),
                    dict(fitted.info),
                )
            )
    return out


def problem_of(hier: Hierarchy) -> Problem:
    """The method input that depends on the hierarchy only (S, levels, default path)."""
    index = {n: i for i, n in enumerate(hier.node_ids)}
    levels = {k: np.array([index[n] for n in ids]) for k, ids in hier.levels.items()}
    cols = list(hier.columns)
    path: list[str] | None
    if cols:
        path = ["total"] + ["/".join(cols[: k + 1]) for k in range(len(cols))]
        path = path if all(p in levels for p in path) else None
    else:
        path = list(levels) if hier.is_strict else None
    return Problem(S=hier.S, levels=levels, default_path=path)


# ----------------------------------------------------------------------------- intervals
def _base_sigma(base: BaseArrays, node_ids: list[str]) -> np.ndarray | None:
    """Base standard deviations (n, h) implied by the base intervals (Gaussian).

    Every level's half-width ``w_L`` is ``z_L σ`` for a Gaussian; ``σ`` is the least-squares fit
    over the levels, ``Σ w_L z_L / Σ z_L²``: exactly the Gaussian's ``σ`` when the intervals are
    Gaussian, and dominated by the wide levels when they are not (e.g. conformal intervals from
    a few windows, whose narrow levels are one or two small errors).
    """
    if not base.bounds:
        return None
    sigma = _interval_sigma(base.bounds)
    if not np.isfinite(sigma).all():
        rows = np.unique(np.nonzero(~np.isfinite(sigma))[0])
        raise DataError(
            f"base intervals of model {base.model!r} are missing for node(s) "
            f"{v.format_examples([node_ids[r] for r in rows])} (e.g. a one-observation "
            "fallback); use intervals='bootstrap' or intervals=None."
        )
    return sigma


def _interval_sigma(bounds: Bounds) -> np.ndarray:
    """The least-squares Gaussian ``σ`` of interval bounds (see :func:`_base_sigma`); NaN where
    a bound is missing."""
    num, den = 0.0, 0.0
    for lv, (lo, hi) in bounds.items():
        z = norm.ppf(0.5 + lv / 200)
        num, den = num + z * (hi - lo) / 2, den + z * z
    return np.asarray(num / den, dtype=float)


def _interval_bounds(
    intervals: Intervals | None,
    fitted: Fitted,
    problem: Problem,
    hier: Hierarchy,
    base: BaseArrays,
    ytilde: np.ndarray,
    levels: tuple[int, ...],
    n_samples: int,
    seed: int,
    nonnegative: bool,
) -> tuple[Bounds, np.ndarray | None]:
    """Reconciled bounds per level, and the reconciled sample paths when there are any."""
    if not levels or intervals is None:
        return {}, None
    if intervals == "gaussian":
        sigma = _base_sigma(base, hier.node_ids)
        if sigma is None:
            raise ReconciliationError(
                f"gaussian intervals need base intervals for model {base.model!r}: forecast "
                "with level=[...] or choose intervals='bootstrap'."
            )
        sd = np.sqrt(np.maximum(fitted.variance(sigma**2), 0.0))
        out = {}
        for lv in levels:
            z = norm.ppf(0.5 + lv / 200)
            lo, hi = ytilde - z * sd, ytilde + z * sd
            if nonnegative:
                lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
            out[lv] = (lo, hi)
        return out, None
    if intervals == "bootstrap":  # the base intervals' h-step spread, where a node has them
        sigma = _interval_sigma(base.bounds) if base.bounds else None
        paths = _bootstrap_paths(problem, base.yhat, n_samples, seed, base.model, sigma)
    elif intervals == "samples":
        if base.samples is None:
            raise ReconciliationError(f"model {base.model!r} has no predictive samples.")
        paths = base.samples
    else:
        raise ReconciliationError(f"unknown intervals {intervals!r}: gaussian, bootstrap, samples.")
    n, h, s = paths.shape
    flat = paths.reshape(n, h * s)
    steps = np.repeat(np.arange(h), s)
    rec = np.asarray(hier.S @ fitted.bottom(flat, "samples", steps)).reshape(n, h, s)
    out = {}
    for lv in levels:
        lo, hi = np.quantile(rec, [0.5 - lv / 200, 0.5 + lv / 200], axis=2)
        if nonnegative:
            # the point forecast comes from the non-negative projection and the paths are
            # clipped, so a bound can cross the point: widen the bound to it (only here)
            lo, hi = np.minimum(lo, ytilde), np.maximum(hi, ytilde)
        out[lv] = (lo, hi)
    return out, rec


def _bootstrap_paths(
    problem: Problem,
    yhat: np.ndarray,
    n_samples: int,
    seed: int,
    model: str,
    sigma: np.ndarray | None = None,
) -> np.ndarray:
    """``ŷ + e`` with in-sample residual vectors ``e`` drawn at the same time index for every node.

    Horizon-aware (see :func:`draw_scale`): the draws of node ``i`` at step ``j`` are the node's
    residuals standardised by their root mean square and multiplied by ``σ_ij``, the base
    forecast's own h-step standard deviation (``sigma``, (n, h), from the base intervals) made
    non-decreasing in ``j``. The paths thus have the base model's spread at every step, whatever
    the model (combinations, per-node selections, LightGBM whose in-sample residuals are far
    smaller than its out-of-sample errors), while keeping the empirical cross-series dependence
    and shape of the residuals (Panagiotelis et al. 2023). Nodes without base intervals (or
    without ``sigma``) keep their residuals unscaled. Step ``j`` draws its own time indices.
    """
    if problem.residuals is None:
        raise ReconciliationError(f"bootstrap intervals need in-sample residuals of {model!r}.")
    keep = np.all(np.isfinite(problem.residuals), axis=0)
    R = problem.residuals[:, keep]
    if R.shape[1] < 2:
        raise ReconciliationError("bootstrap intervals need at least 2 complete residual periods.")
    rng = np.random.default_rng(seed)
    h = yhat.shape[1]
    idx = rng.integers(0, R.shape[1], size=(h, n_samples))  # same time index for every node
    draws = R[:, idx]
    if sigma is not None:
        draws *= draw_scale(sigma, R)[:, :, None]
    return yhat[:, :, None] + draws


def draw_scale(sigma: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Per node and step, the factor that turns residual draws into h-step errors, (n, h).

    ``σ̃_ij / rms(e_i)``, with ``rms(e_i)`` the root mean square of the node's residuals
    (uncentred, as they are drawn) and ``σ̃_i·`` the least-squares fit to the base ``σ_i·`` that
    is non-decreasing along the horizon and at least ``rms(e_i)``: the isotonic regression,
    then floored (Barlow et al. 1972: a bounded isotonic fit is the clipped unbounded one).
    Why: the h-step error variance of a causal model never shrinks with ``h``
    (``σ² Σ_{k<h} ψ_k²``), nor is an out-of-sample error smaller than the in-sample fit says;
    base intervals estimated from a few windows (conformal, LightGBM) are noisy step by step.
    So the draws have standard deviation ``σ̃_ij``, the factors are >= 1, and the width ratio of
    step ``j`` to step 1 is ``σ̃_ij / σ̃_i1 >= 1``. A node whose ``σ`` is not finite at every
    step, or whose residuals are all zero, gets factor 1 (unscaled draws).
    """
    rms = np.sqrt(np.mean(residuals**2, axis=1))
    ok = np.isfinite(sigma).all(axis=1) & (rms > 0)
    out = np.ones(sigma.shape)
    if ok.any():
        tilde = np.maximum(_isotonic_rows(sigma[ok]), rms[ok, None])
        out[ok] = tilde / rms[ok, None]
    return out


def _isotonic_rows(x: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit of every row (pool adjacent violators, equal weights)."""
    out = x.copy()
    for r in np.flatnonzero((np.diff(x, axis=1) < 0).any(axis=1)):  # rows that need it
        vals: list[float] = []
        sizes: list[int] = []
        for value in x[r]:
            vals.append(float(value))
            sizes.append(1)
            while len(vals) > 1 and vals[-2] > vals[-1]:
                n = sizes[-2] + sizes[-1]
                vals[-2] = (vals[-2] * sizes[-2] + vals[-1] * sizes[-1]) / n
                sizes[-2] = n
                vals.pop()
                sizes.pop()
        out[r] = np.repeat(vals, sizes)
    return out


def count_negatives(x: np.ndarray, rtol: float = 1e-10) -> int:
    """Values below ``-rtol * max(1, max|x|)``: round-off such as -1e-14 is not a negative."""
    if x.size == 0:
        return 0
    tol = rtol * max(1.0, float(np.nanmax(np.abs(x))))
    return int((x < -tol).sum())


def _diagnostics(
    problem: Problem, model: str, method: str, yhat: np.ndarray, ytilde: np.ndarray
) -> dict[str, Any]:
    m = problem.m
    viol = np.abs(np.asarray(problem.S @ ytilde[-m:]) - ytilde).max() if ytilde.size else 0.0
    adj = np.abs(ytilde - yhat)
    row: dict[str, Any] = {
        "model": model,
        "method": method,
        "max_coherence_violation": float(viol),
        "negatives_before": count_negatives(yhat),
        "negatives_after": count_negatives(ytilde),
        "mean_abs_adjustment": float(adj.mean()),
    }
    for lv, rows in problem.levels.items():  # row indices of each level's nodes
        row[f"adjustment[{lv}]"] = float(adj[rows].mean())
    return row
