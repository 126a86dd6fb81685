"""Rolling-origin cross-validation of every model x reconciliation method.

Pipeline per window: cut the all-nodes long frame strictly at the cutoff -> :func:`forecast` ->
:func:`reconcile` -> score each node against the held-out actuals -> average per level.

Windows (expanding, fpp3 section 5.10 "time series cross-validation"): with ``T`` dates on the
common time grid, window ``k = 0 .. n_windows - 1`` trains on every date up to and including the
cutoff ``dates[T - h - 1 - (n_windows - 1 - k) * step_size]`` and is scored on the next ``h`` dates,
so the last window's test period is the last ``h`` dates of ``Y``.

Scores follow fpp3 (Table 11.2): a metric is computed per node over the ``h`` steps of a window;
a level's score is the mean over its nodes; the ``"all"`` row is the mean over every node; window
scores are then averaged over windows. Scaled metrics (MASE, RMSSE) are scaled per node and
window by that window's training data. Non-finite per-node scores (a zero seasonal-naive scale
gives ``inf``) are left out of the means, with one warning saying how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from htsforecast import metrics as _metrics
from htsforecast.errors import DataError
from htsforecast.validation import to_datetime

__all__ = ["cross_validate", "CVResult"]

ALL = "all"
_KEYS = ["model", "method"]


@dataclass(frozen=True)
class CVResult:
    """What :func:`cross_validate` returns (always this type).

    Attributes
    ----------
    table : DataFrame
        ``level, model, method, metric, value`` averaged over windows; levels in
        ``hier.levels`` order, then ``"all"`` (the mean over every node).
    by_window : DataFrame
        Same with a ``cutoff`` column, one score per window.
    forecasts : DataFrame
        Every window's tidy forecasts joined with the actuals: ``cutoff, unique_id, ds, horizon,
        model, method, y, yhat`` and interval columns.
    level : list of int
        The prediction-interval levels of the run.
    by_horizon : DataFrame
        ``level, model, method, metric, horizon, value``: per horizon step ``1..h``, the metric
        computed per node over the windows (errors scaled per window for MASE/RMSSE), averaged
        over the level's nodes. Computed on first access.
    """

    table: pd.DataFrame
    by_window: pd.DataFrame
    forecasts: pd.DataFrame
    level: list[int] = field(default_factory=list)
    _horizon_args: tuple = field(default=(), repr=False, compare=False)

    @cached_property
    def by_horizon(self) -> pd.DataFrame:
        """Per-horizon scores (see the class docstring)."""
        return _horizon_scores(self.forecasts, *self._horizon_args)


def _cutoffs(Y: pd.DataFrame, h: int, n_windows: int, step: int, min_train: int) -> list:
    if h < 1 or n_windows < 1 or step < 1:
        raise DataError(
            f"cross_validate needs h >= 1, n_windows >= 1 and step_size >= 1; got h={h}, "
            f"n_windows={n_windows}, step_size={step}."
        )
    dates = np.sort(Y["ds"].unique())
    first = len(dates) - h - 1 - (n_windows - 1) * step
    if first + 1 < min_train:
        raise DataError(
            f"Y has {len(dates)} dates, too few for {n_windows} windows of h={h} every "
            f"{step} step(s): the first window would train on {max(first + 1, 0)} dates "
            f"(need >= {min_train}). Use fewer windows, a smaller step_size or h."
        )
    idx = [first + k * step for k in range(n_windows)]
    return [(pd.Timestamp(dates[i]), dates[i + 1 : i + 1 + h]) for i in idx]


def _interval_parts(metric_names: Sequence[str], level: Sequence[int]) -> list[str]:
    """Expand 'coverage' to 'coverage_80', ...; validate names."""
    out: list[str] = []
    for name in metric_names:
        if name == "coverage":
            if not level:
                raise DataError("metric 'coverage' needs prediction intervals: pass level=[80].")
            out += [f"coverage_{lv}" for lv in level]
        elif name == "crps":
            if not level:
                raise DataError("metric 'crps' needs prediction intervals: pass level=[80].")
            out.append(name)
        elif name in _metrics.METRICS:
            out.append(name)
        else:
            known = sorted([*_metrics.METRICS, "coverage", "crps"])
            raise DataError(f"unknown metric {name!r}; choose from {known}.")
    return out


def _wide(df: pd.DataFrame, col: str, ids: Sequence[str], dates: Sequence) -> np.ndarray:
    pivot = df.pivot(index="unique_id", columns="ds", values=col)
    return pivot.reindex(index=list(ids), columns=list(dates)).to_numpy(dtype=float)


def _score_arrays(
    name: str, y: np.ndarray, part: pd.DataFrame, ids, dates, train: np.ndarray, m: int, level
) -> np.ndarray:
    """Per-node score of one metric; ``y`` and the forecasts are (n_nodes, h)."""
    yhat = _wide(part, "yhat", ids, dates)
    if name in _metrics.SCALED_METRICS:
        return _metrics.METRICS[name](y, yhat, train, m)
    if name in _metrics.METRICS:
        return _metrics.METRICS[name](y, yhat)
    if name.startswith("coverage_"):
        lv = name.split("_", 1)[1]
        lo = _wide(part, f"yhat_lo_{lv}", ids, dates)
        hi = _wide(part, f"yhat_hi_{lv}", ids, dates)
        return _metrics.coverage(y, lo, hi)
    top = max(level)  # crps: Gaussian with sigma implied by the widest interval
    lo = _wide(part, f"yhat_lo_{top}", ids, dates)
    hi = _wide(part, f"yhat_hi_{top}", ids, dates)
    sigma = np.clip((hi - lo) / (2 * norm.ppf(0.5 + top / 200)), 0, None)
    return _metrics.crps_gaussian(y, yhat, np.nan_to_num(sigma))


def _score_window(
    fc: pd.DataFrame,
    actual: pd.DataFrame,
    train: pd.DataFrame,
    ids: Sequence[str],
    names: Sequence[str],
    m: int,
    level: Sequence[int],
) -> pd.DataFrame:
    """Per-node scores of one window: ``unique_id, model, method, metric, value``."""
    dates = np.sort(actual["ds"].unique())
    y = _wide(actual, "y", ids, dates)
    tr = train.pivot(index="unique_id", columns="ds", values="y").reindex(list(ids))
    tr_arr = tr.to_numpy(dtype=float)
    rows = []
    for (model, method), part in fc.groupby(_KEYS, sort=False):
        for name in names:
            vals = _score_arrays(name, y, part, ids, dates, tr_arr, m, level)
            rows.append(
                pd.DataFrame(
                    {
                        "unique_id": ids,
                        "model": model,
                        "method": method,
                        "metric": name,
                        "value": np.atleast_1d(vals),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def _by_level(per_node: pd.DataFrame, level_of: Mapping[str, str], extra: Sequence[str] = ()):
    """Mean of finite per-node scores per level plus the 'all' row."""
    keys = [*extra, *_KEYS, "metric"]
    finite = per_node[np.isfinite(per_node["value"])]
    lv = finite.assign(level=finite["unique_id"].map(level_of))
    per_level = lv.groupby(["level", *keys], sort=False)["value"].mean().reset_index()
    overall = finite.groupby(keys, sort=False)["value"].mean().reset_index().assign(level=ALL)
    return pd.concat([per_level, overall], ignore_index=True)[["level", *keys, "value"]]


def _run_window(
    Y, hier, models, methods, h, freq, level, cutoff, forecast_kwargs, reconcile_kwargs, exog=()
) -> pd.DataFrame:
    """Fit on ``Y`` strictly up to ``cutoff``; return tidy reconciled forecasts."""
    from htsforecast._forecast import forecast
    from htsforecast.reconciliation import reconcile

    train = Y[Y["ds"] <= cutoff]
    if exog:  # known-future assumption: the window's actual regressor values
        forecast_kwargs = {**forecast_kwargs,
                           "X_future": Y[Y["ds"] > cutoff].reindex(columns=["unique_id", "ds", *exog])}  # fmt: skip
    base = forecast(
        train, models=models, h=h, freq=freq, level=list(level) or None, **forecast_kwargs
    )
    if not methods:
        return base.forecasts.assign(method="base")
    rec = reconcile(
        base, hier, methods=dict(methods), level=list(level) or None, **reconcile_kwargs
    )
    return rec.forecasts


def cross_validate(
    Y: pd.DataFrame,
    hier: Any,
    models: Mapping[str, Any],
    methods: Mapping[str, Any] | None,
    h: int,
    n_windows: int,
    step_size: int | None = None,
    *,
    freq: str,
    level: Sequence[int] | None = None,
    metrics: Sequence[str] = ("mae", "rmse", "mase"),
    season_length: int | None = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    forecast_kwargs: Mapping[str, Any] | None = None,
    reconcile_kwargs: Mapping[str, Any] | None = None,
    exog: Sequence[str] | None = None,
) -> CVResult:
    """Rolling-origin (expanding window) evaluation of every model x reconciliation method.

    Parameters
    ----------
    Y : DataFrame
        All-nodes long frame ``unique_id, ds, y`` (``hier.aggregate(df)``).
    hier : Hierarchy
        The fitted hierarchy ``Y`` came from (levels, ``S``).
    models : dict
        Name -> model, passed to :func:`htsforecast.forecast`.
    methods : dict or None
        Name -> reconciliation method, passed to :func:`htsforecast.reconcile`; the
        unreconciled forecasts are always scored as method ``"base"``. None/empty: base only.
    h : int
        Forecast horizon of each window.
    n_windows : int
        Number of forecast origins.
    step_size : int, optional
        Dates between consecutive cutoffs (default ``h``: non-overlapping test periods);
        statsforecast's name.
    freq : str
        pandas offset alias of ``Y`` (e.g. ``"QS"``); keyword-only, as in :func:`forecast`.
    level : list of int, optional
        Prediction interval levels; needed by the ``"coverage"`` and ``"crps"`` metrics.
    metrics : list of str
        Names from :data:`htsforecast.metrics.METRICS`, plus ``"coverage"`` (one
        ``coverage_{L}`` row per level) and ``"crps"`` (Gaussian CRPS with the sigma implied by
        the widest interval).
    season_length : int, optional
        Seasonal period ``m`` of the MASE/RMSSE scale (4 quarterly, 12 monthly; 1 = naive).
        Default: derived from ``freq`` (``season_length_for``).
    n_jobs, progress, forecast_kwargs, reconcile_kwargs
        Passed on to ``forecast`` (``n_jobs`` and ``forecast_kwargs``) and ``reconcile``;
        ``progress`` shows a bar over windows.
    exog : list of str, optional
        Regressor columns of ``Y`` (from ``hier.aggregate(df, exog=...)``). Each window
        forecasts with the *actual* regressor values of its test dates as ``X_future``: the
        standard "known future" assumption (exact for calendars and planned promotions; for
        forecast covariates such as weather, scores are optimistic).

    Returns
    -------
    CVResult
        ``.table`` is the tidy ``level, model, method, metric, value`` table; per-window and
        per-horizon scores and the forecasts joined with the actuals ride along.
    """
    from htsforecast._progress import progress_bar, progress_enabled

    _check_frame(Y)
    if step_size is not None and int(step_size) < 1:
        raise DataError(f"step_size must be a positive number of periods, got {step_size!r}.")
    if not pd.api.types.is_datetime64_any_dtype(Y["ds"]):
        Y = Y.assign(ds=to_datetime(Y, "ds"))
    if season_length is None:
        from htsforecast.models import season_length_for

        season_length = season_length_for(freq)
    level = sorted(set(level or []))
    names = _interval_parts(metrics, level)
    windows = _cutoffs(Y, h, n_windows, step_size or h, min_train=season_length + 1)
    ids = list(hier.node_ids)
    fkw = {"n_jobs": n_jobs, **(forecast_kwargs or {})}
    per_node, fcs = [], []
    bar = progress_bar(len(windows), "cross-validation windows", progress_enabled(progress))
    for cutoff, test_dates in windows:
        fc = _run_window(
            Y, hier, models, methods, h, freq, level, cutoff, fkw, reconcile_kwargs or {},
            list(exog or []),
        )  # fmt: skip
        actual = Y[Y["ds"].isin(test_dates)]
        train = Y[Y["ds"] <= cutoff]
        scores = _score_window(fc, actual, train, ids, names, season_length, level)
        per_node.append(scores.assign(cutoff=cutoff))
        fcs.append(_join_actuals(fc, actual, cutoff, test_dates))
        bar.update(1)
    bar.close()
    return _assemble(per_node, fcs, hier, names, season_length, level, Y)


def _check_frame(Y: pd.DataFrame) -> None:
    missing = [c for c in ("unique_id", "ds", "y") if c not in Y.columns]
    if missing:
        raise DataError(
            f"cross_validate: Y is missing column(s) {missing}; pass the all-nodes long frame "
            "from hier.aggregate(df) (columns unique_id, ds, y)."
        )


def _join_actuals(fc: pd.DataFrame, actual: pd.DataFrame, cutoff, test_dates) -> pd.DataFrame:
    horizon = pd.Series(np.arange(1, len(test_dates) + 1), index=pd.DatetimeIndex(test_dates))
    out = fc.merge(actual[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left")
    return out.assign(cutoff=cutoff, horizon=out["ds"].map(horizon).astype("Int64"))


def _order_levels(table: pd.DataFrame, hier: Any) -> pd.DataFrame:
    order = {name: i for i, name in enumerate([*hier.levels, ALL])}
    return table.sort_values("level", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )


def _assemble(per_node, fcs, hier, names, m, level, Y) -> CVResult:
    nodes = pd.concat(per_node, ignore_index=True)
    n_bad = int((~np.isfinite(nodes["value"]) & nodes["value"].notna()).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} node x window scores were infinite (zero seasonal-naive scale: a "
            "constant or exactly periodic training series) and were left out of the means.",
            RuntimeWarning,
            stacklevel=3,
        )
    n_nan = int(nodes["value"].isna().sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} node x window scores were NaN (e.g. no finite actuals or a zero scale with "
            "an exact forecast) and were left out of the means.",
            RuntimeWarning,
            stacklevel=3,
        )
    by_window = _by_level(nodes, hier.level_of, extra=["cutoff"])
    keys = ["level", *_KEYS, "metric"]
    table = by_window.groupby(keys, sort=False)["value"].mean().reset_index()
    table = _order_levels(table, hier)
    return CVResult(
        table=table,
        by_window=_order_levels(by_window, hier),
        forecasts=pd.concat(fcs, ignore_index=True),
        level=list(level),
        _horizon_args=(Y, hier, names, m, level),
    )


def _horizon_scores(forecasts, Y, hier, names, m, level) -> pd.DataFrame:
    """Per horizon step: metric over windows per node (scaled errors scaled per window)."""
    fc = forecasts.copy()
    scaled = [n for n in names if n in _metrics.SCALED_METRICS]
    for name in scaled:
        power = 1 if name == "mase" else 2
        scale = {}
        for cutoff in fc["cutoff"].unique():
            tr = Y[Y["ds"] <= cutoff].pivot(index="unique_id", columns="ds", values="y")
            s = _metrics.seasonal_naive_scale(tr.to_numpy(dtype=float), m, power)
            scale[cutoff] = pd.Series(np.atleast_1d(s) ** (1 / power), index=tr.index)
        s = pd.concat(scale, names=["cutoff", "unique_id"])
        fc[f"_scale_{name}"] = s.reindex(
            pd.MultiIndex.from_frame(fc[["cutoff", "unique_id"]])
        ).to_numpy()
    base_of = {"mase": "mae", "rmsse": "rmse"}
    rows = []
    for (hz, model, method), part in fc.groupby(["horizon", *_KEYS], sort=True):
        for name in names:
            if name.startswith("coverage_") or name == "crps":
                continue  # per-horizon detail for point metrics only
            y = part.pivot(index="unique_id", columns="cutoff", values="y")
            yh = part.pivot(index="unique_id", columns="cutoff", values="yhat").reindex_like(y)
            a, b = y.to_numpy(float), yh.to_numpy(float)
            if name in scaled:
                sc = part.pivot(index="unique_id", columns="cutoff", values=f"_scale_{name}")
                sc = sc.reindex_like(y).to_numpy(float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    a, b = a / sc, b / sc
                vals = _metrics.METRICS[base_of[name]](a, b)
            else:
                vals = _metrics.METRICS[name](a, b)
            rows.append(
                pd.DataFrame(
                    {
                        "unique_id": y.index,
                        "model": model,
                        "method": method,
                        "metric": name,
                        "horizon": int(hz),
                        "value": vals,
                    }
                )
            )
    out = _by_level(pd.concat(rows, ignore_index=True), hier.level_of, extra=["horizon"])
    return _order_levels(out, hier)[["level", "model", "method", "metric", "horizon", "value"]]


