"""Rolling-origin backtests *inside* a panel: the errors that drive selection and weights.

:class:`~htsforecast.models.Selected`, :class:`~htsforecast.models.Combination` (inverse-error
weights) and :class:`~htsforecast.models.Conformal` all need h-step errors measured on the data a
model is given, never on anything later. This module cuts a :class:`Panel` at rolling origins
and fits models on the pieces.

Windows (expanding, as :func:`htsforecast.evaluate.cross_validate`): for window ``k = 0 ..
n_windows - 1`` a series of length ``L`` trains on its first ``L - h - (n_windows - 1 - k) *
step`` observations and is scored on the next ``h``, so the last window's test period is the
last ``h`` observations *of the panel given* (in a cross-validation fold, of that fold's
training data). Series too short for a window (fewer than ``min_train`` training observations)
have NaN errors there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from htsforecast.errors import DataError
from htsforecast.metrics import seasonal_naive_scale
from htsforecast.models._execution import Executor
from htsforecast.models._fallback import _attempt
from htsforecast.models._protocol import Forecaster, ModelOutput, Panel

__all__ = [
    "Window",
    "cut_windows",
    "fit_output",
    "backtest_errors",
    "score_errors",
    "within_one_se",
    "METRICS",
]

#: Metrics a selection or a weighting can minimise (per node, mean over windows).
METRICS = ("mase", "rmsse", "mae", "rmse", "mse")

#: ``fit(model, panel, h, level, executor) -> (ok mask, output)``: how a model is run on a panel.
FitFn = Callable[[Forecaster, Panel, int, tuple, Executor], tuple[np.ndarray, ModelOutput]]


def fit_output(
    model: Forecaster, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
) -> tuple[np.ndarray, ModelOutput]:
    """Run ``model`` on ``panel`` robustly: (mask of series it forecast, full-size output).

    Series shorter than ``model.min_obs``, series it reports as failures, and series with a
    non-finite forecast are marked not-ok (their rows are NaN); exceptions fail every series.
    """
    ok, _, out = _attempt(model, repr(model), panel, h, level, executor, lenient=True)
    return ok, out


@dataclass(frozen=True, eq=False)
class Window:
    """One backtest origin.

    Attributes
    ----------
    rows : ndarray of int, shape (k,)
        Positions (in the full panel) of the series long enough for this window.
    train : Panel
        Those series cut at their origin.
    actual : ndarray, shape (k, h)
        The held-out values.
    """

    rows: np.ndarray
    train: Panel
    actual: np.ndarray


def _check(h: int, n_windows: int, step: int) -> None:
    for name, value in (("h", h), ("n_windows", n_windows), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise DataError(f"backtest {name} must be a positive integer, got {value!r}.")


def cut_windows(
    panel: Panel, h: int, n_windows: int, step: int | None = None, min_train: int = 1
) -> list[Window]:
    """Rolling origins of ``panel``, oldest first (see the module docstring)."""
    step = h if step is None else step
    _check(h, n_windows, step)
    out = []
    for k in range(n_windows):
        n_train = panel.lengths - h - (n_windows - 1 - k) * step
        rows = np.flatnonzero(n_train >= max(min_train, 1))
        keep = n_train[rows]
        starts = panel.indptr[:-1][rows]
        train_idx = np.repeat(starts, keep) + _ranges(keep)
        test_idx = (starts + keep)[:, None] + np.arange(h)[None, :]
        indptr = np.r_[0, np.cumsum(keep)].astype(np.int64)
        X, Xf = (None, None) if panel.X is None else (panel.X[train_idx], panel.X[test_idx])
        train = Panel(panel.ids[rows], indptr, panel.ds[train_idx], panel.y[train_idx], panel.freq,
                      X, Xf, panel.exog)  # regressors: known future of each window  # fmt: skip
        out.append(Window(rows, train, panel.y[test_idx] if rows.size else np.empty((0, h))))
    return out


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in lengths])`` without a loop."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def backtest_errors(
    panel: Panel,
    models: Mapping[str, Forecaster],
    windows: list[Window],
    h: int,
    executor: Executor,
    fit: FitFn = fit_output,
    level: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """Errors ``actual - forecast`` of every model, shape (n_series, n_windows, h), NaN where a
    series is too short for a window or the model failed on it.

    ``level`` is passed to the fits (only so that a memoising ``fit`` can reuse them later)."""
    out = {name: np.full((panel.n_series, len(windows), h), np.nan) for name in models}
    for k, win in enumerate(windows):
        if win.rows.size == 0:
            continue
        for name, model in models.items():
            ok, res = fit(model, win.train, h, level, executor)
            err = win.actual - res.mean
            err[~ok] = np.nan
            out[name][win.rows, k] = err
    return out


def window_scales(panel: Panel, windows: list[Window], m: int, power: int) -> np.ndarray:
    """Seasonal-naive in-sample scale of each series in each window, shape (n, n_windows).

    :func:`htsforecast.metrics.seasonal_naive_scale` (``mean |y_t - y_{t-m}|^power``, the scale
    :func:`htsforecast.cross_validate` uses) of the window's training data, each series padded
    with NaN to the longest; where it is 0 or undefined the scale is 1 (raw errors: the choice
    per node is unchanged).
    """
    out = np.ones((panel.n_series, len(windows)))
    for k, win in enumerate(windows):
        tr = win.train
        if tr.n_series == 0 or int(tr.lengths.max()) <= m:
            continue
        group = np.repeat(np.arange(tr.n_series), tr.lengths)
        padded = np.full((tr.n_series, int(tr.lengths.max())), np.nan)
        padded[group, np.arange(len(tr.y)) - tr.indptr[:-1][group]] = tr.y
        s = np.asarray(seasonal_naive_scale(padded, m, power))
        out[win.rows, k] = np.where(np.isfinite(s) & (s > 0), s, 1.0)
    return out


def score_errors(
    errors: np.ndarray,
    metric: str,
    panel: Panel,
    windows: list[Window],
    m: int,
    per_window: bool = False,
) -> np.ndarray:
    """Per-series score: ``metric`` per window, averaged over the windows with a value.

    Parameters
    ----------
    errors : ndarray, shape (n_series, n_windows, h)
    metric : {"mase", "rmsse", "mae", "rmse", "mse"}
    m : int
        Season length of the MASE / RMSSE scale.
    per_window : bool
        Return the score of every window instead of their mean.

    Returns
    -------
    ndarray, shape (n_series,), or (n_series, n_windows) with ``per_window``
        NaN where no window has an error.
    """
    if metric not in METRICS:
        raise DataError(f"unknown selection metric {metric!r}; choose from {list(METRICS)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
        if metric in ("mae", "mase"):
            per = np.nanmean(np.abs(errors), axis=2)
        else:
            per = np.nanmean(errors**2, axis=2)
        if metric == "mase":
            per = per / window_scales(panel, windows, m, 1)
        elif metric == "rmsse":
            per = np.sqrt(per / window_scales(panel, windows, m, 2))
        elif metric == "rmse":
            per = np.sqrt(per)
        return per if per_window else np.nanmean(per, axis=1)


def within_one_se(diff: np.ndarray) -> np.ndarray:
    """The one-standard-error rule on per-window score differences ``candidate - best``.

    Parameters
    ----------
    diff : ndarray, shape (n, n_windows)
        NaN where a window has no score for both.

    Returns
    -------
    ndarray of bool, shape (n,)
        True where at least two windows have a difference and its mean is at most its standard
        error ``sd / sqrt(k)`` (Hastie, Tibshirani & Friedman 2009, §7.10).
    """
    ok = np.isfinite(diff)
    n = ok.sum(axis=1)
    d = np.where(ok, diff, 0.0)
    mean = d.sum(axis=1) / np.maximum(n, 1)
    var = (np.where(ok, diff - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
    return (n >= 2) & (mean <= np.sqrt(var / np.maximum(n, 1)))
